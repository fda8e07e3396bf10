#!/usr/bin/env bash
# bench/shortener.sh — GET /v1/links/{code} and the redirect under wrk, next to nginx
# serving a static response in the same run (DESIGN §7: ratios, not absolute numbers).
#
#   bench/shortener.sh [BINDIR]     (make bench)
#   BENCH_SECONDS=5 BENCH_CONNS=32  wrk duration and connections
#
# CPU per request is user+system time of the server process(es) over the run divided by
# the requests served. "shortener+redis" adds the Redis server's CPU, the full cost of a
# request. Prints ratios against nginx; asserts nothing.
set -euo pipefail
bindir=${1:-build/bin}
cd "$(dirname "$0")/.."
. bench/lib.sh

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$BENCH_TMP" >"$BENCH_TMP/redis.log" 2>&1 &
redis_pid=$!
BENCH_PIDS+=("$redis_pid")
redis_url="redis://127.0.0.1:$redis_port"

api_port=$(free_port)
"$bindir/sluice-shortener" --listen "127.0.0.1:$api_port" --redis "$redis_url" \
	--threads 2 --log-level warn 2>"$BENCH_TMP/shortener.log" &
api_pid=$!
BENCH_PIDS+=("$api_pid")
wait_http "http://127.0.0.1:$api_port/readyz"

key=$("$bindir/sluice-shortener" keys create --scopes links:write --redis "$redis_url" | head -1)
code=$(curl -fsS -X POST "http://127.0.0.1:$api_port/v1/links" \
	-H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
	-d '{"url":"https://example.com/some/long/path"}' |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["code"])')

nginx_port=$(free_port)
start_nginx nginx "access_log off;
  server { listen 127.0.0.1:$nginx_port;
    location / { default_type application/json;
                 return 200 '{\"code\":\"aZ3kP9q\",\"url\":\"https://example.com/some/long/path\"}'; } }"
nginx_pid=$NGINX_PID
wait_http "http://127.0.0.1:$nginx_port/"

echo "sluice-shortener vs nginx static, wrk -t1 -c${BENCH_CONNS:-32} -d${BENCH_SECONDS:-5}s, $(nproc) cores"
measure "nginx static 200" "http://127.0.0.1:$nginx_port/" "$nginx_pid"
ng_rps=$R_RPS ng_cpu=$R_CPU_US
measure "GET /v1/links/{code}" "http://127.0.0.1:$api_port/v1/links/$code" "$api_pid" "$redis_pid"
get_rps=$R_RPS get_cpu=$R_CPU_US getr_cpu=$R_CPU2_US
measure "GET /{code} (302, counted)" "http://127.0.0.1:$api_port/$code" "$api_pid" "$redis_pid"
red_rps=$R_RPS red_cpu=$R_CPU_US redr_cpu=$R_CPU2_US

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo
echo "ratios against nginx static (same run; 'with redis' adds the Redis server's CPU):"
printf '  GET /v1/links/{code}: CPU/req %sx (with redis %sx), req/s %sx\n' \
	"$(ratio "$get_cpu" "$ng_cpu")" "$(ratio "$getr_cpu" "$ng_cpu")" "$(ratio "$get_rps" "$ng_rps")"
printf '  GET /{code} redirect: CPU/req %sx (with redis %sx), req/s %sx\n' \
	"$(ratio "$red_cpu" "$ng_cpu")" "$(ratio "$redr_cpu" "$ng_cpu")" "$(ratio "$red_rps" "$ng_rps")"
