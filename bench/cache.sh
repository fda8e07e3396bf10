#!/usr/bin/env bash
# bench/cache.sh — agent response-cache hits vs nginx proxy_cache hits for the same object,
# same run (the caching issue's benchmark). Both in front of the same static upstream
# (nginx answering with Cache-Control: max-age=3600), one worker each, wrk at fixed
# connections; prints CPU per request of each cache process and the ratios, plus the
# eviction-policy hit ratios of bench/cache_policies.c. Asserts nothing.
#
#   bench/cache.sh [BINDIR]          (make bench)
#   BENCH_SECONDS=5 BENCH_CONNS=32
set -euo pipefail
bindir=${1:-build/bin}
cd "$(dirname "$0")/.."
. bench/lib.sh

up_port=$(free_port)
nc_port=$(free_port)
body=$(python3 -c 'print("x" * 512)')
start_nginx up "access_log off;
  server { listen 127.0.0.1:$up_port;
    location / { default_type application/json; add_header Cache-Control \"max-age=3600\";
                 return 200 '{\"body\":\"$body\"}'; } }"
mkdir -p "$BENCH_TMP/nc/cache"
start_nginx nc "access_log off; keepalive_requests 1000000;
  proxy_cache_path $BENCH_TMP/nc/cache keys_zone=c:10m max_size=100m;
  upstream api { server 127.0.0.1:$up_port; keepalive 64; }
  server { listen 127.0.0.1:$nc_port;
    location / { proxy_pass http://api; proxy_http_version 1.1; proxy_set_header Connection \"\";
                 proxy_cache c; add_header X-Cache \$upstream_cache_status; } }"
nc_pid=$NGINX_PID
ag_port=$(free_port)
adm_port=$(free_port)
"$bindir/sluice-agent" --listen "127.0.0.1:$ag_port" --admin "127.0.0.1:$adm_port" \
	--upstream "127.0.0.1:$up_port" --workers 1 --cache-bytes 64000000 --trace-sample 0 \
	--log-level warn 2>"$BENCH_TMP/agent.log" &
ag_pid=$!
BENCH_PIDS+=("$ag_pid")
wait_http "http://127.0.0.1:$up_port/obj"
wait_http "http://127.0.0.1:$nc_port/obj"
wait_http "http://127.0.0.1:$ag_port/obj"
for u in "http://127.0.0.1:$nc_port/obj" "http://127.0.0.1:$ag_port/obj"; do
	for _ in 1 2 3; do curl -fsS -o /dev/null "$u"; done # warm: the object is cached
	echo "  $(curl -fsSI "$u" | tr -d '\r' | grep -i '^x-cache') from $u"
done

echo "agent cache vs nginx proxy_cache, hits of one 530-byte object, $(nproc) cores"
measure "nginx proxy_cache hit" "http://127.0.0.1:$nc_port/obj" "$nc_pid"
ng_rps=$R_RPS ng_cpu=$R_CPU_US
measure "sluice-agent cache hit" "http://127.0.0.1:$ag_port/obj" "$ag_pid"
ag_rps=$R_RPS ag_cpu=$R_CPU_US
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "CPU per hit, agent / nginx: $(ratio "$ag_cpu" "$ng_cpu")x (goal <= 0.6)"
echo "requests/s, agent / nginx:  $(ratio "$ag_rps" "$ng_rps")x"

echo
echo "eviction policies on a Zipf trace with scans (bench/cache_policies.c):"
make --no-print-directory build/release/libshared.a >/dev/null
gcc -std=c11 -D_GNU_SOURCE -O2 -Ishared bench/cache_policies.c build/release/libshared.a \
	$(pkg-config --libs libcrypto jansson) -lpthread -lm -o "$BENCH_TMP/cache_policies"
"$BENCH_TMP/cache_policies"
