#!/usr/bin/env bash
# bench/controlplane.sh — the control plane at fleet scale (issue 7): sluice-server polling
# 1,000 simulated agents at 1 Hz, next to a bare libcurl multi loop fetching the same
# bodies from the same agents, same run.
#
#   bench/controlplane.sh [BINDIR]      (make bench)
#   BENCH_SECONDS=10                    each measured window
#   BENCH_AGENTS=1000                   simulated agents
#   BENCH_VIEWERS=0                     SSE viewers (curl -N /v1/events) during the window
#   BENCH_POLL_THREADS=2                sluice-server --poll-threads
#
# The agents: bench/fake_agents.py, one Python process listening on BENCH_AGENTS loopback
# admin ports and registered in a Redis of the benchmark's own, each serving a real
# sluice-agent's /v1/stats document (captured here from an agent in front of a dead
# upstream after ~50 requests on a few paths: 3 routes, ~3 KB) with its id and service
# changed and its counters growing consistently (fake_agents.py says how).
# The server: sluice-server --poll-ms 1000, measured once every agent is up: its CPU over
# the window (user+system, all threads, /proc) as a share of one core (goal <= 5 %) and the
# sweep time it exports (sluice_server_sweep_seconds, the last sweep: registry read, every
# poll, the snapshot merge; sampled every 0.5 s, one value per sweep; goal <= 100 ms). The
# fleet JSON is rendered only for somebody (GET /v1/fleet, SSE viewers, drills): with
# BENCH_VIEWERS=N, N event streams stay open through the window and the server renders and
# sends the snapshot to them every sweep (its CPU includes that; the sweep time does not).
# The peer: bench/curl_sweep.c, run after the server was stopped, against the same agents
# for the same time: its own CPU (getrusage) and sweep time (first transfer to last).
# Also shown: connections the agents accepted during each window (keep-alive or not) and
# the agents' own CPU. Asserts nothing.
set -euo pipefail
bindir=${1:-build/bin}
cd "$(dirname "$0")/.."
. bench/lib.sh

secs=${BENCH_SECONDS:-10}
n=${BENCH_AGENTS:-1000}
hz=$(getconf CLK_TCK)

# 1,000 listening sockets + the server's and the peer's connections to them.
want=$((3 * n + 1024))
hard=$(ulimit -Hn)
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
	[ "$hard" = unlimited ] || [ "$hard" -ge "$want" ] || want=$hard
	ulimit -n "$want"
fi


now_ns() { date +%s%N; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
# median and max of the numbers on stdin, "MEDIAN MAX" (ms with one decimal)
median_max() {
	sort -g | awk '{v[NR] = $1} END { if (!NR) { print "n/a n/a"; exit }
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.1f %.1f\n", m, v[NR] }'
}
status_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }

# --- the peer, compiled on the fly -----------------------------------------------------------
gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra bench/curl_sweep.c \
	$(pkg-config --cflags --libs libcurl) -o "$BENCH_TMP/curl_sweep"

# --- a Redis of its own, and a realistic stats body from a real agent ----------------------
start_redis
capture_stats_template "$bindir" "$BENCH_TMP/stats_template.json"
template_info=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
print("%d bytes, %d routes (%s), %d requests" % (len(open(sys.argv[1]).read()), len(d.get("routes", [])),
      ", ".join(r.get("route", "?") for r in d.get("routes", [])), d["totals"]["requests"]))' \
	"$BENCH_TMP/stats_template.json")

# --- the fleet ------------------------------------------------------------------------------
python3 bench/fake_agents.py --template "$BENCH_TMP/stats_template.json" \
	--redis "127.0.0.1:$redis_port" --count "$n" --ports-out "$BENCH_TMP/ports" \
	--status "$BENCH_TMP/fake_status.json" >"$BENCH_TMP/fake.out" 2>"$BENCH_TMP/fake.log" &
fake_pid=$!
BENCH_PIDS+=("$fake_pid")
deadline=$((SECONDS + 60))
until grep -q "^ready $n\$" "$BENCH_TMP/fake.out" 2>/dev/null; do
	if [ $SECONDS -ge $deadline ] || ! kill -0 "$fake_pid" 2>/dev/null; then
		echo "bench: fake_agents.py not ready" >&2
		cat "$BENCH_TMP/fake.out" "$BENCH_TMP/fake.log" >&2
		exit 1
	fi
	sleep 0.1
done

echo "sluice-server vs a bare libcurl multi loop, $n simulated agents polled at 1 Hz, $(nproc) cores"
echo "agent stats body: $template_info (captured from sluice-agent, counters growing)"
echo "registry: $(redis-cli -p "$redis_port" scard sluice:agents) agents in sluice:agents"

# --- the server -----------------------------------------------------------------------------
poll_threads=${BENCH_POLL_THREADS:-2}
start_server "$bindir" --poll-threads "$poll_threads"

metrics() { # "SWEEPS SWEEP_SECONDS POLLS POLL_FAILURES AGENTS_UP"
	curl -fsS --max-time 2 "http://127.0.0.1:$sv_port/metrics" | awk '
		$1 == "sluice_server_sweeps_total" {s = $2}
		$1 == "sluice_server_sweep_seconds" {t = $2}
		$1 == "sluice_server_agent_polls_total" {p = $2}
		$1 == "sluice_server_agent_poll_failures_total" {f = $2}
		$1 == "sluice_server_agents_up" {u = $2}
		END {printf "%d %.6f %d %d %d\n", s, t, p, f, u}'
}

t_start=$SECONDS
up=0
deadline=$((SECONDS + 60))
while :; do
	kill -0 "$sv_pid" 2>/dev/null || server_failed "sluice-server exited while waiting for the agents"
	up=$(curl -fsS --max-time 5 "http://127.0.0.1:$sv_port/v1/fleet" 2>/dev/null |
		python3 -c 'import json,sys; print(json.load(sys.stdin).get("agents_up", 0))' 2>/dev/null || echo 0)
	[ "$up" -ge "$n" ] && break
	[ $SECONDS -lt $deadline ] || server_failed "GET /v1/fleet shows agents_up $up of $n after 60 s"
	sleep 0.5
done
echo "server: all $n agents up after $((SECONDS - t_start)) s"
# Two more sweeps: every agent has a previous sample, windows are computed.
read -r s0 _ _ _ _ <<<"$(metrics)"
deadline=$((SECONDS + 30))
while read -r s _ _ _ _ <<<"$(metrics)" && [ "$s" -lt $((s0 + 2)) ]; do
	[ $SECONDS -lt $deadline ] || server_failed "no sweep completed in 30 s (sweeps_total $s)"
	sleep 0.2
done

viewers=${BENCH_VIEWERS:-0}
viewer_pids=()
for ((k = 0; k < viewers; k++)); do
	curl -sN "$sv_url/v1/events" >"$BENCH_TMP/viewer$k" 2>/dev/null &
	viewer_pids+=("$!")
	BENCH_PIDS+=("$!")
done
read -r sw0 _ polls0 fail0 _ <<<"$(metrics)"
conns0=$(status_field "$BENCH_TMP/fake_status.json" conns)
fk0=$(cpu_ticks "$fake_pid")
c0=$(cpu_ticks "$sv_pid")
w0=$(now_ns)
last=$sw0
: >"$BENCH_TMP/server_sweeps"
for ((k = 1; k <= 2 * secs; k++)); do
	delay=$((w0 + k * 500000000 - $(now_ns)))
	[ "$delay" -le 0 ] || sleep "$(printf '%d.%09d' $((delay / 1000000000)) $((delay % 1000000000)))"
	kill -0 "$sv_pid" 2>/dev/null || server_failed "sluice-server exited during the window"
	read -r s t _ _ _ <<<"$(metrics)"
	if [ "$s" -gt "$last" ]; then
		echo "$t" >>"$BENCH_TMP/server_sweeps"
		last=$s
	fi
done
c1=$(cpu_ticks "$sv_pid")
viewer_events=0
for ((k = 0; k < viewers; k++)); do
	stop_pid "${viewer_pids[$k]}"
	viewer_events=$((viewer_events + $(grep -c '^event: snapshot' "$BENCH_TMP/viewer$k" || true)))
done
w1=$(now_ns)
fk1=$(cpu_ticks "$fake_pid")
read -r sw1 _ polls1 fail1 up1 <<<"$(metrics)"
sleep 1.1 # the status file is rewritten every second
conns1=$(status_field "$BENCH_TMP/fake_status.json" conns)
wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
sv_cpu=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v w="$wall" 'BEGIN {printf "%.2f", 100 * t / hz / w}')
fk_sv_cpu=$(awk -v t=$((fk1 - fk0)) -v hz="$hz" -v w="$wall" 'BEGIN {printf "%.1f", 100 * t / hz / w}')
read -r sv_med sv_max <<<"$(awk '{print $1 * 1000}' "$BENCH_TMP/server_sweeps" | median_max)"
sv_sampled=$(wc -l <"$BENCH_TMP/server_sweeps")
sv_rss=$(awk '/VmRSS/ {print $2}' "/proc/$sv_pid/status")
sv_threads=$(awk '/Threads/ {print $2}' "/proc/$sv_pid/status")
stop_pid "$sv_pid"
sv_rc=$STOP_RC

# --- the peer -------------------------------------------------------------------------------
sleep 1.1
pconns0=$(status_field "$BENCH_TMP/fake_status.json" conns)
fk0=$(cpu_ticks "$fake_pid")
pw0=$(now_ns)
peer=$("$BENCH_TMP/curl_sweep" "$BENCH_TMP/ports" "$secs" 1000)
pw1=$(now_ns)
fk1=$(cpu_ticks "$fake_pid")
sleep 1.1
pconns1=$(status_field "$BENCH_TMP/fake_status.json" conns)
kv() { echo "$peer" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
pr_cpu=$(kv cpu_pct)
pr_med=$(kv sweep_median_ms)
pr_max=$(kv sweep_max_ms)
# the peer's run includes its unmeasured first sweep: the agents' CPU is over the whole run
fk_pr_cpu=$(awk -v t=$((fk1 - fk0)) -v hz="$hz" -v w="$(awk -v a="$pw0" -v b="$pw1" 'BEGIN {print (b - a) / 1e9}')" \
	'BEGIN {printf "%.1f", 100 * t / hz / w}')

# --- the agents leave ------------------------------------------------------------------------
stop_pid "$fake_pid"
left=$(redis-cli -p "$redis_port" scard sluice:agents)

echo
echo "sluice-server (--poll-ms 1000 --poll-threads $poll_threads), ${wall} s window:"
echo "  sweeps $((sw1 - sw0)) (sampled $sv_sampled), agent polls $((polls1 - polls0)), poll failures $((fail1 - fail0)), agents_up $up1 at the end"
echo "  connections the agents accepted during the window: $((conns1 - conns0)) (0 = every one kept alive)"
echo "  SSE viewers $viewers, snapshots they received $viewer_events"
echo "  RSS $((sv_rss / 1024)) MiB, $sv_threads threads; exit status on SIGTERM $sv_rc"
echo "bare libcurl multi loop (bench/curl_sweep.c), same agents, ${secs} s after one warm-up sweep:"
echo "  $peer"
echo "  connections the agents accepted during its run: $((pconns1 - pconns0)) (the warm-up sweep opens $n)"
echo "the agents' own CPU (one Python process): ${fk_sv_cpu} % of a core under the server, ${fk_pr_cpu} % under the peer"
echo "after the agents stopped: $left agents left in sluice:agents"
echo
printf '%-34s %10s %10s %10s   %s\n' "" server peer ratio goal
printf '%-34s %10s %10s %10s   %s\n' "CPU, % of one core" "$sv_cpu" "$pr_cpu" "$(ratio "$sv_cpu" "$pr_cpu")x" "server <= 5 %"
printf '%-34s %10s %10s %10s   %s\n' "sweep time, median (ms)" "$sv_med" "$pr_med" "$(ratio "$sv_med" "$pr_med")x" "server <= 100 ms"
printf '%-34s %10s %10s %10s\n' "sweep time, max (ms)" "$sv_max" "$pr_max" "$(ratio "$sv_max" "$pr_max")x"
