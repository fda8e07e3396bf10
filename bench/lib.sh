# bench/lib.sh — helpers the benchmarks share: free ports, CPU time of a process, wrk runs.
# Sourced, not run. Every process a benchmark starts is recorded in BENCH_PIDS and stopped
# by PID on exit.

BENCH_PIDS=()
BENCH_TMP=$(mktemp -d /tmp/sluice-bench.XXXXXX)

bench_cleanup() {
	local pid
	for pid in "${BENCH_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT INT TERM

# start_nginx NAME HTTP_BLOCK — an nginx (one worker, no daemon, files under
# $BENCH_TMP/NAME) serving the given http { } contents; its pid in NGINX_PID.
start_nginx() {
	local dir="$BENCH_TMP/$1"
	mkdir -p "$dir/logs"
	cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log;
events { worker_connections 4096; }
http { $2 }
CONF
	nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off; master_process off;' &
	NGINX_PID=$!
	BENCH_PIDS+=("$NGINX_PID")
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# CPU time (user+system, all threads) of a process, in clock ticks.
cpu_ticks() {
	awk '{print $14 + $15}' "/proc/$1/stat"
}

wait_http() { # wait_http URL (10 s deadline)
	local deadline=$((SECONDS + 10))
	until curl -fsS -o /dev/null "$1" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || { echo "bench: $1 did not answer" >&2; exit 1; }
		sleep 0.05
	done
}

# measure NAME URL PID [HELPER_PID] → prints a line and sets R_RPS, R_CPU_US (PID's CPU
# per request) and R_CPU2_US (PID + HELPER_PID, e.g. the Redis server behind the API);
# R_ERRORS counts wrk's non-2xx/3xx answers and socket errors (a failing proxy is cheap).
measure() {
	local name=$1 url=$2 pid=$3 helper=${4:-}
	local b1 b2=0 a1 a2=0 out reqs secs hz
	b1=$(cpu_ticks "$pid")
	[ -z "$helper" ] || b2=$(cpu_ticks "$helper")
	out=$(wrk -t1 -c"${BENCH_CONNS:-32}" -d"${BENCH_SECONDS:-5}s" --latency "$url")
	a1=$(cpu_ticks "$pid")
	[ -z "$helper" ] || a2=$(cpu_ticks "$helper")
	reqs=$(echo "$out" | awk '/requests in/ {print $1}')
	secs=$(echo "$out" | awk '/requests in/ {gsub("s,","",$4); print $4}')
	hz=$(getconf CLK_TCK)
	R_RPS=$(awk -v r="$reqs" -v s="$secs" 'BEGIN {printf "%.0f", r / s}')
	R_CPU_US=$(awk -v t=$((a1 - b1)) -v hz="$hz" -v r="$reqs" 'BEGIN {printf "%.2f", t * 1e6 / hz / r}')
	R_CPU2_US=$(awk -v t=$((a1 - b1 + a2 - b2)) -v hz="$hz" -v r="$reqs" 'BEGIN {printf "%.2f", t * 1e6 / hz / r}')
	R_P50=$(echo "$out" | awk '$1 == "50%" {print $2}')
	R_P99=$(echo "$out" | awk '$1 == "99%" {print $2}')
	R_ERRORS=$(echo "$out" | awk '/Non-2xx/ {n += $NF}
		/Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}')
	printf '  %-32s %8s req/s  %7s us CPU/req' "$name" "$R_RPS" "$R_CPU_US"
	[ -z "$helper" ] || printf ' (%s with helper)' "$R_CPU2_US"
	printf '  p50 %s p99 %s\n' "$R_P50" "$R_P99"
}

# stop_pid PID [SECONDS] — TERM one process this script started, wait for it (KILL after
# the deadline, 10 s), take it off BENCH_PIDS; its exit status in STOP_RC.
stop_pid() {
	local pid=$1 deadline=$((SECONDS + ${2:-10})) p keep=()
	kill -TERM "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; do
		if [ $SECONDS -ge $deadline ]; then
			echo "bench: pid $pid still running after SIGTERM: SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.05
	done
	STOP_RC=0
	wait "$pid" 2>/dev/null || STOP_RC=$?
	for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	BENCH_PIDS=("${keep[@]}")
}

# start_redis — a redis-server of the benchmark's own on a free port, no persistence; sets
# redis_port and redis_pid (in BENCH_PIDS).
start_redis() {
	redis_port=$(free_port)
	redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
		--dir "$BENCH_TMP" >"$BENCH_TMP/redis.log" 2>&1 &
	redis_pid=$!
	BENCH_PIDS+=("$redis_pid")
	local deadline=$((SECONDS + 10))
	until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || { echo "bench: redis did not start" >&2; cat "$BENCH_TMP/redis.log" >&2; exit 1; }
		sleep 0.05
	done
}

# capture_stats_template BINDIR FILE — a realistic agent stats body: a real sluice-agent in
# front of a dead upstream after 50 requests on five routes (for bench/fake_agents.py).
capture_stats_template() {
	local bindir=$1 out=$2 ag_port adm_port ag_pid i path
	ag_port=$(free_port)
	adm_port=$(free_port)
	"$bindir/sluice-agent" --upstream 127.0.0.1:9 --listen "127.0.0.1:$ag_port" \
		--admin "127.0.0.1:$adm_port" --workers 1 --log-level warn 2>"$BENCH_TMP/agent.log" &
	ag_pid=$!
	BENCH_PIDS+=("$ag_pid")
	wait_http "http://127.0.0.1:$adm_port/v1/stats"
	for i in $(seq 1 50); do
		case $((i % 5)) in
		0) path=/v1/links/abc$i ;; 1) path=/r/xyz$i ;; 2) path=/v1/links ;;
		3) path=/v1/users/$i/links ;; 4) path=/healthz ;;
		esac
		curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$ag_port$path" || true
	done
	curl -fsS --max-time 5 -o "$out" "http://127.0.0.1:$adm_port/v1/stats"
	stop_pid "$ag_pid"
}

# start_server BINDIR [FLAG...] — sluice-server (--no-auth, 1 s polls, then the FLAGs) on the
# benchmark's Redis; sets sv_port, sv_url, sv_pid; exits with what was seen (metrics, its
# log) if it does not come up.
start_server() {
	local bindir=$1
	shift
	sv_port=$(free_port)
	sv_url=http://127.0.0.1:$sv_port
	"$bindir/sluice-server" --listen "127.0.0.1:$sv_port" --redis "redis://127.0.0.1:$redis_port" \
		--no-auth --poll-ms 1000 --log-level info "$@" 2>"$BENCH_TMP/server.log" &
	sv_pid=$!
	BENCH_PIDS+=("$sv_pid")
	local deadline=$((SECONDS + 10))
	until curl -fsS -o /dev/null --max-time 1 "$sv_url/healthz" 2>/dev/null; do
		kill -0 "$sv_pid" 2>/dev/null || server_failed "sluice-server exited at start"
		[ $SECONDS -lt $deadline ] || server_failed "GET /healthz did not answer in 10 s"
		sleep 0.05
	done
}

server_failed() { # server_failed WHAT — what was seen, then exit 1
	local rc
	echo "bench: $1" >&2
	if kill -0 "$sv_pid" 2>/dev/null; then
		echo "--- /metrics (sluice_server_*):" >&2
		curl -sS --max-time 2 "$sv_url/metrics" | grep '^sluice_server_' >&2 || true
	else
		wait "$sv_pid" && rc=0 || rc=$?
		echo "--- sluice-server exited, status $rc" >&2
	fi
	echo "--- server log (last 40 lines of $(wc -l <"$BENCH_TMP/server.log")):" >&2
	tail -n 40 "$BENCH_TMP/server.log" >&2
	exit 1
}
