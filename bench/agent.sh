#!/usr/bin/env bash
# bench/agent.sh — the sidecar proxy against nginx proxy_pass (upstream keepalive pool),
# both in front of the same trivial upstream (nginx returning a static 200), same run.
#
#   bench/agent.sh [BINDIR]           (make bench)
#   BENCH_SECONDS=5 BENCH_CONNS=32    wrk duration and connections
#
# Both proxies run one worker (one core each; wrk and the upstream share the other).
# Prints CPU time per request of each proxy process (user+system over the run ÷ requests),
# the ratio agent/nginx, requests/s, unloaded added latency (p50/p99 at 1 connection,
# minus the upstream's own), and the agent's idle RSS. Metrics and tracing stay on
# (--trace-sample 0.01, spans shipped to a real Redis). Asserts nothing.
set -euo pipefail
bindir=${1:-build/bin}
cd "$(dirname "$0")/.."
. bench/lib.sh

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$BENCH_TMP" >"$BENCH_TMP/redis.log" 2>&1 &
BENCH_PIDS+=($!)

up_port=$(free_port)
px_port=$(free_port)
start_nginx up "access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$up_port;
    location / { default_type application/json; return 200 '{\"ok\":true}'; } }"
start_nginx px "access_log off; keepalive_requests 1000000;
  upstream api { server 127.0.0.1:$up_port; keepalive 64; }
  server { listen 127.0.0.1:$px_port;
    location / { proxy_pass http://api; proxy_http_version 1.1;
                 proxy_set_header Connection \"\"; } }"
px_pid=$NGINX_PID

ag_port=$(free_port)
adm_port=$(free_port)
"$bindir/sluice-agent" --listen "127.0.0.1:$ag_port" --admin "127.0.0.1:$adm_port" \
	--upstream "127.0.0.1:$up_port" --redis "redis://127.0.0.1:$redis_port" --workers 1 \
	--id bench --trace-sample 0.01 --log-level warn 2>"$BENCH_TMP/agent.log" &
ag_pid=$!
BENCH_PIDS+=("$ag_pid")
wait_http "http://127.0.0.1:$up_port/"
wait_http "http://127.0.0.1:$px_port/"
wait_http "http://127.0.0.1:$ag_port/"

rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$ag_pid/status")
echo "sluice-agent vs nginx proxy_pass (keepalive 64), 1 worker each, $(nproc) cores"
echo "idle RSS of sluice-agent: $((rss_kb / 1024)) MiB ($rss_kb KiB)"

BENCH_CONNS=1 BENCH_SECONDS=3 measure "upstream direct, 1 conn" "http://127.0.0.1:$up_port/" "$px_pid" >/dev/null
direct_p50=$R_P50 direct_p99=$R_P99
BENCH_CONNS=1 BENCH_SECONDS=3 measure "nginx proxy, 1 conn" "http://127.0.0.1:$px_port/" "$px_pid"
ng1_p50=$R_P50 ng1_p99=$R_P99
BENCH_CONNS=1 BENCH_SECONDS=3 measure "sluice-agent, 1 conn" "http://127.0.0.1:$ag_port/" "$ag_pid"
ag1_p50=$R_P50 ag1_p99=$R_P99
measure "nginx proxy, ${BENCH_CONNS:-32} conns" "http://127.0.0.1:$px_port/" "$px_pid"
ng_rps=$R_RPS ng_cpu=$R_CPU_US
measure "sluice-agent, ${BENCH_CONNS:-32} conns" "http://127.0.0.1:$ag_port/" "$ag_pid"
ag_rps=$R_RPS ag_cpu=$R_CPU_US

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
us() { awk -v v="$1" 'BEGIN { if (v ~ /ms$/) {sub("ms","",v); v*=1000} else if (v ~ /us$/) sub("us","",v); else if (v ~ /s$/) {sub("s","",v); v*=1e6}; printf "%.0f", v }'; }
echo
echo "CPU per request, agent / nginx:   $(ratio "$ag_cpu" "$ng_cpu")x  ($ag_cpu us vs $ng_cpu us)"
echo "requests/s, agent / nginx:        $(ratio "$ag_rps" "$ng_rps")x  ($ag_rps vs $ng_rps)"
echo "added latency at 1 connection (proxy p50/p99 minus upstream direct p50/p99):"
echo "  nginx:  p50 +$(( $(us "$ng1_p50") - $(us "$direct_p50") )) us, p99 +$(( $(us "$ng1_p99") - $(us "$direct_p99") )) us"
echo "  agent:  p50 +$(( $(us "$ag1_p50") - $(us "$direct_p50") )) us, p99 +$(( $(us "$ag1_p99") - $(us "$direct_p99") )) us"
