#!/usr/bin/env bash
# bench/tui.sh — the dashboard at fleet scale (issue 8): `sluice` following sluice-server's
# event stream for 100 replicas updated at 1 Hz, in a 200x60 tmux pane, measured twice:
# as it is (only changed rows are drawn) and with SLUICE_FULL_REPAINT=1 (every row, every
# frame: the baseline, tui/term_curses.c).
#
#   bench/tui.sh [BINDIR]               (make bench)
#   BENCH_SECONDS=60                    each measured window
#   BENCH_AGENTS=100                    simulated agents (replicas)
#   BENCH_COLS=200 BENCH_ROWS=60        the pane's size
#   BENCH_WARMUP=0                      seconds the TUI runs before the window (the Fleet
#                                       screen's sparklines fill in the first minute)
#   BENCH_KEEP=DIR                      keep the captures there: NAME.bytes (every byte
#                                       written), NAME.frames (bytes per frame), NAME.screen
#
# The fleet: as in bench/controlplane.sh — a Redis of its own, bench/fake_agents.py
# registering BENCH_AGENTS agents that serve a real sluice-agent's /v1/stats body (counters
# growing), sluice-server --no-auth --poll-ms 1000. Once /v1/fleet shows every agent up,
# `sluice --server URL` runs in a tmux server of the benchmark's own (a private socket
# under the benchmark's temporary directory); `tmux pipe-pane` appends every byte the TUI
# writes to its terminal to a file.
# A frame is drawn per snapshot the server pushes (one per sweep, 1 Hz; nothing else
# redraws the Fleet screen while no key is pressed): the window starts and ends 0.4 s after
# a sweep (sluice_server_sweeps_total went up), the file's size is read 0.4 s after each
# sweep in between, so frames = sweeps in the window and every frame's bytes are known.
# Reported: sluice's CPU (user+system, all threads, /proc) as a share of one core (goal
# <= 1 %), bytes written per frame, incremental vs full repaint, and their ratio (goal
# <= 10 %); also the tmux server's CPU (the terminal's side). Asserts nothing.
set -euo pipefail
if [ -n "${1:-}" ]; then
	bindir=$(cd "$1" && pwd)
	cd "$(dirname "$0")/.."
else
	cd "$(dirname "$0")/.."
	bindir=$PWD/build/bin
fi
. bench/lib.sh

secs=${BENCH_SECONDS:-60}
n=${BENCH_AGENTS:-100}
cols=${BENCH_COLS:-200}
rows=${BENCH_ROWS:-60}
hz=$(getconf CLK_TCK)
command -v tmux >/dev/null || { echo "bench: tmux is not installed" >&2; exit 1; }

# --- the benchmark's own tmux server, stopped first on exit ---------------------------------
tmux_sock=$BENCH_TMP/tmux.sock
tmux_pid=
tmx() { env -u TMUX tmux -S "$tmux_sock" -f /dev/null "$@"; }
tui_cleanup() {
	if [ -S "$tmux_sock" ]; then tmx kill-server 2>/dev/null || true; fi
	if [ -n "$tmux_pid" ]; then
		local deadline=$((SECONDS + 5))
		while kill -0 "$tmux_pid" 2>/dev/null && [ $SECONDS -lt $deadline ] &&
			[ "$(awk '{print $3}' "/proc/$tmux_pid/stat" 2>/dev/null)" != Z ]; do sleep 0.05; done
		[ "$(awk '{print $3}' "/proc/$tmux_pid/stat" 2>/dev/null)" = Z ] || kill -KILL "$tmux_pid" 2>/dev/null || true
	fi
	bench_cleanup
}
# A signal ends the run (the cleanup runs once, on exit).
trap tui_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


now_ns() { date +%s%N; }
fsize() { stat -c %s "$1" 2>/dev/null || echo 0; }
# median and max of the integers on stdin, "MEDIAN MAX"
median_max() {
	sort -n | awk '{v[NR] = $1} END { if (!NR) { print "n/a n/a"; exit }
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%d %d\n", m, v[NR] }'
}

# --- a Redis of its own, and a realistic stats body from a real agent ----------------------
start_redis
capture_stats_template "$bindir" "$BENCH_TMP/stats_template.json"

# --- the fleet ------------------------------------------------------------------------------
python3 bench/fake_agents.py --template "$BENCH_TMP/stats_template.json" \
	--redis "127.0.0.1:$redis_port" --count "$n" \
	>"$BENCH_TMP/fake.out" 2>"$BENCH_TMP/fake.log" &
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

# --- the server -----------------------------------------------------------------------------
start_server "$bindir"

sweeps() { # sluice_server_sweeps_total
	curl -fsS --max-time 2 "$sv_url/metrics" | awk '$1 == "sluice_server_sweeps_total" {s = $2} END {printf "%d\n", s}'
}

t_start=$SECONDS
up=0
deadline=$((SECONDS + 60))
while :; do
	kill -0 "$sv_pid" 2>/dev/null || server_failed "sluice-server exited while waiting for the agents"
	up=$(curl -fsS --max-time 5 "$sv_url/v1/fleet" 2>/dev/null |
		python3 -c 'import json,sys; print(json.load(sys.stdin).get("agents_up", 0))' 2>/dev/null || echo 0)
	[ "$up" -ge "$n" ] && break
	[ $SECONDS -lt $deadline ] || server_failed "GET /v1/fleet shows agents_up $up of $n after 60 s"
	sleep 0.5
done
fleet_info=$(curl -fsS --max-time 5 "$sv_url/v1/fleet" | python3 -c 'import json,sys
d = json.load(sys.stdin); s = d.get("services", [])
print("%d agents up in %d services, snapshot %d bytes" % (d.get("agents_up", 0), len(s),
      len(json.dumps(d, separators=(",", ":")))))')

echo "sluice (the dashboard) following sluice-server, $n simulated replicas at 1 Hz, ${cols}x${rows} tmux pane, $(nproc) cores"
echo "server: all $n agents up after $((SECONDS - t_start)) s; $fleet_info"

# --- the dashboard in tmux ------------------------------------------------------------------

# after_sweep — wait (10 s at most) for the next sweep to end, then 0.4 s for its frame to
# reach the terminal; the sweep count in SWEEP.
after_sweep() {
	local s0 s deadline=$((SECONDS + 10))
	s0=$(sweeps)
	while s=$(sweeps) && [ "$s" -le "$s0" ]; do
		kill -0 "$sv_pid" 2>/dev/null || server_failed "sluice-server exited during the run"
		[ $SECONDS -lt $deadline ] || server_failed "no sweep completed in 10 s (sweeps_total $s)"
		sleep 0.05
	done
	sleep 0.4
	SWEEP=$s
}

tui_failed() { # tui_failed SESSION WHAT — what was seen and the screen, then exit 1
	echo "bench: $2" >&2
	echo "--- the screen:" >&2
	tmx capture-pane -p -t "$1" | awk '{l[NR] = $0} NF {last = NR} END {for (i = 1; i <= last; i++) print l[i]}' >&2 || true
	exit 1
}

quit_failed() { # quit_failed SESSION PID — what a TUI that ignored 'q' is doing
	local t
	echo "bench: sluice ($1, pid $2) did not quit on 'q' in 5 s; its threads (state, wchan):" >&2
	for t in /proc/"$2"/task/*; do
		echo "  $(basename "$t") $(awk '{print $3}' "$t/stat" 2>/dev/null) $(cat "$t/wchan" 2>/dev/null)" >&2
	done
	echo "--- the screen:" >&2
	tmx capture-pane -p -t "$1" | awk 'NR <= 3 || NR >= '"$((rows - 2))" >&2 || true
}

# run_tui NAME ENV — one session; sets R_CPU (% of a core), R_TMUX_CPU, R_FRAMES, R_BYTES,
# R_BPF (bytes per frame), R_MED/R_MAX (one frame's bytes), R_WALL, R_RSS (KiB), R_LINES.
run_tui() {
	local name=$1 envs=$2 out=$BENCH_TMP/$1.bytes go=$BENCH_TMP/$1.go rc=$BENCH_TMP/$1.rc pane pid="" deadline
	: >"$out"
	# The pane's shell waits for the pipe to be in place before it starts the TUI (every
	# byte is seen), and writes down how it exited.
	tmx new-session -d -s "$name" -x "$cols" -y "$rows" \
		"until [ -e '$go' ]; do sleep 0.02; done; env -u NO_COLOR -u SLUICE_FULL_REPAINT $envs '$bindir/sluice' --server '$sv_url'; echo \$? >'$rc'"
	# The server (a new one each run: the last session's end stops it).
	tmux_pid=$(tmx display -p '#{pid}')
	tmx set-option -g remain-on-exit on >/dev/null # a TUI that dies leaves its screen
	tmx pipe-pane -o -t "$name" "cat >> '$out'"
	touch "$go"
	pane=$(tmx display -p -t "$name" '#{pane_pid}')
	deadline=$((SECONDS + 10))
	while :; do # sluice: the child of the pane's shell
		pid=$(pgrep -P "$pane" -x sluice || true)
		[ -z "$pid" ] || break
		[ ! -e "$rc" ] || tui_failed "$name" "sluice exited at start, status $(cat "$rc")"
		[ $SECONDS -lt $deadline ] || tui_failed "$name" "no sluice process under the pane after 10 s"
		sleep 0.05
	done
	# Live, with the fleet on screen, and two more snapshots drawn.
	deadline=$((SECONDS + 15))
	until tmx capture-pane -p -t "$name" >"$BENCH_TMP/$name.screen" &&
		awk 'NR == 1 && / live *$/ {l = 1} /^fake-/ {r++} END {exit !(l && r)}' "$BENCH_TMP/$name.screen"; do
		[ ! -e "$rc" ] || tui_failed "$name" "sluice exited before showing the fleet, status $(cat "$rc")"
		[ $SECONDS -lt $deadline ] || tui_failed "$name" "the Fleet screen did not show the replicas and 'live' in 15 s"
		sleep 0.1
	done
	# Two more snapshots drawn (or BENCH_WARMUP seconds: the LAST MINUTE sparklines fill
	# one sample a second, so the steady state starts after a minute).
	local until_ns=$(($(now_ns) + ${BENCH_WARMUP:-0} * 1000000000))
	after_sweep
	after_sweep
	while [ "$(now_ns)" -lt "$until_ns" ]; do
		[ ! -e "$rc" ] || tui_failed "$name" "sluice exited during the warm-up, status $(cat "$rc")"
		after_sweep
	done

	local sw0 sw1 c0 c1 m0 m1 b0 b1 w0 w1 prev cur
	: >"$BENCH_TMP/$name.frames"
	sw0=$SWEEP
	c0=$(cpu_ticks "$pid")
	m0=$(cpu_ticks "$tmux_pid")
	b0=$(fsize "$out")
	w0=$(now_ns)
	prev=$b0
	while :; do
		after_sweep
		[ ! -e "$rc" ] || tui_failed "$name" "sluice exited during the window, status $(cat "$rc")"
		cur=$(fsize "$out")
		echo $((cur - prev)) >>"$BENCH_TMP/$name.frames"
		prev=$cur
		[ $(($(now_ns) - w0)) -lt $((secs * 1000000000 - 500000000)) ] || break
	done
	c1=$(cpu_ticks "$pid")
	m1=$(cpu_ticks "$tmux_pid")
	b1=$(fsize "$out")
	w1=$(now_ns)
	sw1=$SWEEP
	R_RSS=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
	R_TERM=$(tr '\0' '\n' <"/proc/$pid/environ" | awk -F= '$1 == "TERM" {print $2}')
	tmx capture-pane -p -t "$name" >"$BENCH_TMP/$name.screen"
	R_LINES=$(awk '/^fake-/ {r++} END {print r + 0}' "$BENCH_TMP/$name.screen")

	R_WALL=$(awk -v a="$w0" -v b="$w1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
	R_CPU=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v w="$R_WALL" 'BEGIN {printf "%.2f", 100 * t / hz / w}')
	R_TMUX_CPU=$(awk -v t=$((m1 - m0)) -v hz="$hz" -v w="$R_WALL" 'BEGIN {printf "%.2f", 100 * t / hz / w}')
	R_FRAMES=$((sw1 - sw0))
	R_BYTES=$((b1 - b0))
	R_BPF=$(awk -v b="$R_BYTES" -v f="$R_FRAMES" 'BEGIN {printf "%.0f", f ? b / f : 0}')
	read -r R_MED R_MAX <<<"$(median_max <"$BENCH_TMP/$name.frames")"
	R_ZERO=$(awk '$1 == 0 {z++} END {print z + 0}' "$BENCH_TMP/$name.frames")

	# Quit as an operator would; the status it exits with is reported.
	tmx send-keys -t "$name" q
	deadline=$((SECONDS + 5))
	until [ -s "$rc" ]; do
		if [ $SECONDS -ge $deadline ]; then
			quit_failed "$name" "$pid"
			break
		fi
		sleep 0.05
	done
	R_EXIT=$(cat "$rc" 2>/dev/null || echo running)
	R_TOTAL=$(fsize "$out")
	[ -z "${BENCH_KEEP:-}" ] || { mkdir -p "$BENCH_KEEP" && cp "$out" "$BENCH_TMP/$name.frames" "$BENCH_TMP/$name.screen" "$BENCH_KEEP/"; }
	tmx kill-session -t "$name" # the server's last session: it exits
	deadline=$((SECONDS + 5))
	while kill -0 "$tmux_pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$tmux_pid/stat" 2>/dev/null)" != Z ]; do
		[ $SECONDS -lt $deadline ] || { echo "bench: the tmux server did not exit after its last session" >&2; return; }
		sleep 0.05
	done
	tmux_pid= # gone: nothing for the cleanup to stop (the pid may be reused)
}

run_tui inc ""
i_cpu=$R_CPU i_tmux=$R_TMUX_CPU i_frames=$R_FRAMES i_bytes=$R_BYTES i_bpf=$R_BPF
i_med=$R_MED i_max=$R_MAX i_wall=$R_WALL i_rss=$R_RSS i_lines=$R_LINES i_exit=$R_EXIT
i_zero=$R_ZERO i_total=$R_TOTAL i_term=$R_TERM
run_tui full "SLUICE_FULL_REPAINT=1"
f_cpu=$R_CPU f_tmux=$R_TMUX_CPU f_frames=$R_FRAMES f_bytes=$R_BYTES f_bpf=$R_BPF
f_med=$R_MED f_max=$R_MAX f_wall=$R_WALL f_rss=$R_RSS f_lines=$R_LINES f_exit=$R_EXIT
f_zero=$R_ZERO f_total=$R_TOTAL f_term=$R_TERM

stop_pid "$sv_pid"
stop_pid "$fake_pid"

pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", 100 * a / b; else printf "n/a" }'; }
echo "window after ${BENCH_WARMUP:-0} s of warm-up (+2 snapshots); TERM in the pane: $i_term ($f_term); fleet rows on screen (replica lines): $i_lines incremental, $f_lines full"
echo
printf '%-34s %12s %12s   %s\n' "" incremental "full repaint" goal
printf '%-34s %12s %12s\n' "window (s)" "$i_wall" "$f_wall"
printf '%-34s %12s %12s\n' "frames (snapshots drawn)" "$i_frames" "$f_frames"
printf '%-34s %12s %12s   %s\n' "sluice CPU, % of one core" "$i_cpu" "$f_cpu" "incremental <= 1 %"
printf '%-34s %12s %12s\n' "tmux server CPU, % of one core" "$i_tmux" "$f_tmux"
printf '%-34s %12s %12s\n' "bytes to the terminal, window" "$i_bytes" "$f_bytes"
printf '%-34s %12s %12s   %s\n' "bytes per frame" "$i_bpf" "$f_bpf" \
	"incremental <= 10 % of full: $(pct "$i_bpf" "$f_bpf") %"
printf '%-34s %12s %12s\n' "one frame's bytes, median" "$i_med" "$f_med"
printf '%-34s %12s %12s\n' "one frame's bytes, max" "$i_max" "$f_max"
printf '%-34s %12s %12s\n' "samples with no bytes" "$i_zero" "$f_zero"
printf '%-34s %12s %12s\n' "bytes, whole run (start to quit)" "$i_total" "$f_total"
printf '%-34s %12s %12s\n' "sluice RSS (KiB)" "$i_rss" "$f_rss"
printf '%-34s %12s %12s\n' "exit status on 'q'" "$i_exit" "$f_exit"
