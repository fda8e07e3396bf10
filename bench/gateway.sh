#!/usr/bin/env bash
# bench/gateway.sh — the gateway (round robin, active health checks on) against HAProxy
# (roundrobin, http-reuse always, httpchk) over the same three upstreams, same run (the
# gateway issue's benchmark). The upstreams are three nginx answering a small body on /
# and 200 on /readyz; both proxies run one worker/thread. The two are loaded in turns
# (gateway, haproxy, gateway, haproxy, ...) so drift in the machine hits both; prints
# the median CPU time per request of each proxy process, the median requests/s, and the
# ratios gateway/haproxy. Asserts nothing.
#
#   bench/gateway.sh [BINDIR]         (make bench)
#   BENCH_SECONDS=5 BENCH_CONNS=32    wrk duration and connections
#   BENCH_ROUNDS=3                    turns per proxy (at least 2)
set -euo pipefail
bindir=${1:-build/bin}
cd "$(dirname "$0")/.."
. bench/lib.sh

rounds=${BENCH_ROUNDS:-3}
[ "$rounds" -ge 2 ] || rounds=2

up_ports=()
for name in up1 up2 up3; do
	port=$(free_port)
	start_nginx "$name" "access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$port;
    location / { default_type application/json; return 200 '{\"ok\":true,\"from\":\"$name\"}'; }
    location = /readyz { return 200 'ready'; } }"
	up_ports+=("$port")
done
upstreams=$(printf '127.0.0.1:%s,' "${up_ports[@]}")
upstreams=${upstreams%,}

gw_port=$(free_port)
adm_port=$(free_port)
"$bindir/sluice-agent" --role gateway --upstreams "$upstreams" \
	--listen "127.0.0.1:$gw_port" --admin "127.0.0.1:$adm_port" --workers 1 \
	--trace-sample 0 --log-level warn --health-interval-ms 2000 2>"$BENCH_TMP/gateway.log" &
gw_pid=$!
BENCH_PIDS+=("$gw_pid")

# The gateway's check defaults: GET /readyz every 2 s, up after 2 passes, down after 3 fails.
hp_port=$(free_port)
cat >"$BENCH_TMP/haproxy.cfg" <<CONF
global
	nbthread 1
	maxconn 4096

defaults
	mode http
	timeout connect 2s
	timeout client 60s
	timeout server 30s
	timeout http-keep-alive 60s

frontend fe
	bind 127.0.0.1:$hp_port
	default_backend be

backend be
	balance roundrobin
	http-reuse always
	option httpchk GET /readyz
$(for i in 0 1 2; do
	printf '\tserver up%d 127.0.0.1:%s check inter 2s rise 2 fall 3\n' $((i + 1)) "${up_ports[$i]}"
done)
CONF
haproxy -f "$BENCH_TMP/haproxy.cfg" -db >"$BENCH_TMP/haproxy.log" 2>&1 &
hp_pid=$!
BENCH_PIDS+=("$hp_pid")

for port in "${up_ports[@]}"; do wait_http "http://127.0.0.1:$port/readyz"; done
wait_http "http://127.0.0.1:$adm_port/v1/stats"

# Wait until the gateway routes to all three on its own checks: routable == 3 alone also
# holds before any check and in panic mode (down upstreams balanced over anyway), so also
# ask for no panic and every upstream "serving" (a first check passed).
gw_health() { # prints "ROUTABLE PANIC STATE..."
	curl -fsS "http://127.0.0.1:$adm_port/v1/stats" 2>/dev/null | python3 -c '
import json, sys
g = json.load(sys.stdin)["gateway"]
print(g["routable"], str(g["panic"]).lower(), *[u["state"] for u in g["upstreams"]])' 2>/dev/null ||
		echo "0 unknown"
}
deadline=$((SECONDS + 15))
until [ "$(gw_health)" = "3 false serving serving serving" ]; do
	[ $SECONDS -lt $deadline ] || { echo "bench: gateway not ready: $(gw_health)" >&2; exit 1; }
	sleep 0.1
done
wait_http "http://127.0.0.1:$gw_port/"
if ! kill -0 "$hp_pid" 2>/dev/null; then
	echo "bench: haproxy exited:" >&2
	cat "$BENCH_TMP/haproxy.log" >&2
	exit 1
fi
wait_http "http://127.0.0.1:$hp_port/"

echo "sluice gateway vs HAProxy $(haproxy -v | awk 'NR == 1 {print $3}')," \
	"round robin over 3 nginx, health checks every 2 s, 1 worker each, $(nproc) cores"
# Both rotate over all three (each answers with its name).
answered_from() {
	local i
	for i in 1 2 3 4 5 6; do curl -fsS "$1" | sed 's/.*"from":"\([^"]*\)".*/\1/' && echo; done |
		sort -u | xargs
}
echo "answered from: gateway $(answered_from "http://127.0.0.1:$gw_port/")," \
	"haproxy $(answered_from "http://127.0.0.1:$hp_port/")"
gw_cpus=() gw_rpss=() hp_cpus=() hp_rpss=() gw_errors=0 hp_errors=0
for r in $(seq "$rounds"); do
	measure "gateway, round $r" "http://127.0.0.1:$gw_port/" "$gw_pid"
	gw_cpus+=("$R_CPU_US") gw_rpss+=("$R_RPS") gw_errors=$((gw_errors + R_ERRORS))
	measure "haproxy, round $r" "http://127.0.0.1:$hp_port/" "$hp_pid"
	hp_cpus+=("$R_CPU_US") hp_rpss+=("$R_RPS") hp_errors=$((hp_errors + R_ERRORS))
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
	if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
gw_cpu=$(median "${gw_cpus[@]}") gw_rps=$(median "${gw_rpss[@]}")
hp_cpu=$(median "${hp_cpus[@]}") hp_rps=$(median "${hp_rpss[@]}")
echo
echo "medians of $rounds rounds, ${BENCH_CONNS:-32} connections, ${BENCH_SECONDS:-5} s each:"
echo "  gateway: $gw_cpu us CPU/req, $gw_rps req/s"
echo "  haproxy: $hp_cpu us CPU/req, $hp_rps req/s"
echo "CPU per request, gateway / haproxy: $(ratio "$gw_cpu" "$hp_cpu")x (goal <= 1.0)"
echo "requests/s, gateway / haproxy:      $(ratio "$gw_rps" "$hp_rps")x"
echo "failed answers (non-2xx/3xx, socket errors): gateway $gw_errors, haproxy $hp_errors"
echo "gateway after the runs: $(gw_health | awk '{print $1 "/3 routable, panic " $2}')"
