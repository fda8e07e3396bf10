#!/usr/bin/env bash
# bench/queue.sh — the job queue (shared/queue.c, issue 9): jobs per second through
# enqueue → worker → ack with a no-op handler, next to redis-benchmark issuing the bare
# stream commands against the same redis-server, in the same run. Asserts nothing.
#
#   bench/queue.sh [BINDIR]          (make bench; BINDIR holds sluice-worker, default build/bin)
#   BENCH_JOBS=20000 BENCH_CONCURRENCY=4 BENCH_ROUNDS=3 BENCH_DEADLINE=120
#
# Each round, on a flushed redis-server of its own (free port, no persistence):
#  1. enqueue: `sluice-worker enqueue --count N` (one connection, one job after the other:
#     one EVALSHA each) → enqueues/s, and CPU per job of that process and of redis-server.
#  2. end to end: `sluice-worker --test-queue bench --concurrency C` started on those N
#     waiting jobs; timed from its start until sluice:q:{bench}:stats completed == N
#     (polled every 100 ms, so ±0.1 s) → jobs/s, CPU per job of the worker (all threads)
#     and of redis-server, and the Redis commands run per job (INFO commandstats, the calls
#     made inside the Lua scripts included). Per job the worker runs queue_fetch on the
#     "webhooks" and "bulk" queues (empty: its loop polls them before the test queue), then
#     on "bench" (promotion of due delayed jobs, per lane a reclaim check with XPENDING IDLE,
#     XREADGROUP COUNT 1, the job record's status update), the test handler (one EVAL: SET NX
#     of the processed marker, then HINCRBY, RPUSH, HSET recording the effect) and
#     queue_complete (marker, XACK, record → completed, counters, trim of the lane).
#  3. the peer: redis-benchmark -n N -P 1, at -c 1 and at -c C, raw commands with the shape
#     of the queue's stream entries (fields id, payload, attempts):
#       XADD bench:add * id j1 payload x attempts 0
#       XREADGROUP GROUP g c COUNT 1 STREAMS bench:s:<c> >     (a stream pre-filled with N
#            entries 1-0 … 1-(N-1), group g created at 0: every call delivers one entry)
#       XACK bench:s:<c> g 1-__rand_int__                       (-r N: random entries of that
#            now pending list; a repeated id is a miss, so about 63% acknowledge one — the
#            hits are printed; redis-benchmark has no sequential placeholder)
#
# Ratios (medians of the rounds):
#  - enqueue/s ÷ XADD/s at -c 1 (the enqueue command is one connection, one at a time): what
#    an enqueue costs beyond the XADD itself — the EVALSHA of a Lua script that checks the id
#    against the record and the marker (EXISTS), creates the group if needed, writes the job
#    record (HSET ×2, PEXPIRE), counts (HINCRBY ×2), registers the queue (SADD), TIME.
#  - jobs/s ÷ min(XADD/s, XREADGROUP/s) at -c C: issue 9's figure, the bare stream cost
#    approximated by the slower of the two stream commands.
#  - jobs/s ÷ (XREADGROUP then XACK) at -c C, the rate if each job cost Redis one XREADGROUP
#    plus one XACK (1 / (1/XREADGROUP/s + 1/XACK/s)); this is the consumer side alone, which
#    is what phase 2 runs (its jobs were enqueued before).
#  - Redis CPU per job ÷ Redis CPU per XREADGROUP + XACK at -c C: the same comparison in
#    server time instead of throughput.
#  What separates the queue from the bare commands: job records and their status updates,
#  counters, the processed marker, the promotion and reclaim checks on every fetch, trimming
#  after every XACK, Lua, and the worker's polling of its two other (empty) queues.
set -euo pipefail
bindir=${1:-build/bin}
cd "$(dirname "$0")/.."
. bench/lib.sh

N=${BENCH_JOBS:-20000}
C=${BENCH_CONCURRENCY:-4}
ROUNDS=${BENCH_ROUNDS:-3}
DEADLINE=${BENCH_DEADLINE:-120}
Q=bench
worker=$bindir/sluice-worker
[ -x "$worker" ] || { echo "bench: $worker not built (make)" >&2; exit 1; }
command -v redis-benchmark >/dev/null || { echo "bench: redis-benchmark missing (redis-tools)" >&2; exit 1; }

port=$(free_port)
url=redis://127.0.0.1:$port
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$BENCH_TMP" >"$BENCH_TMP/redis.log" 2>&1 &
redis_pid=$!
BENCH_PIDS+=("$redis_pid")
deadline=$((SECONDS + 10))
until redis-cli -p "$port" ping >/dev/null 2>&1; do
	[ $SECONDS -lt $deadline ] || { echo "bench: redis-server did not start" >&2; exit 1; }
	sleep 0.05
done

rcli() { redis-cli -p "$port" "$@"; }
hz=$(getconf CLK_TCK)
now_ns() { date +%s%N; }
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
per_job_us() { awk -v t="$1" -v hz="$hz" -v n="$2" 'BEGIN {printf "%.1f\n", t * 1e6 / hz / n}'; }
rate() { awk -v n="$1" -v ns="$2" 'BEGIN {printf "%.0f\n", n * 1e9 / ns}'; }
# "name calls" per command from INFO commandstats
cmdstats() { rcli info commandstats | tr -d '\r' | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p'; }

# rb CONNS [-r K] CMD... → ops/s of redis-benchmark; redis-server CPU ticks in RB_TICKS
rb() {
	local conns=$1 out t0 t1
	shift
	t0=$(cpu_ticks "$redis_pid")
	out=$(redis-benchmark -p "$port" -n "$N" -c "$conns" -P 1 -q "$@" 2>&1 | tr '\r' '\n' |
		sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
	t1=$(cpu_ticks "$redis_pid")
	RB_TICKS=$((t1 - t0))
	echo "${out:-0}"
}

# N entries 1-0 … 1-(N-1) shaped like the queue's, then group g at 0
prefill() {
	awk -v n="$N" -v k="$1" 'BEGIN {
		for (i = 0; i < n; i++) {
			id = "1-" i
			printf "*9\r\n$4\r\nXADD\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(id), id
			printf "$2\r\nid\r\n$2\r\nj1\r\n$7\r\npayload\r\n$1\r\nx\r\n$8\r\nattempts\r\n$1\r\n0\r\n"
		} }' | rcli --pipe >/dev/null
	rcli xgroup create "$1" g 0 >/dev/null
}
pending() { rcli xpending "$1" g | head -1; }

for f in enq enq_client enq_redis e2e e2e_worker e2e_redis e2e_cmds e2e_odd; do : >"$BENCH_TMP/$f"; done
for c in 1 "$C"; do
	for f in xadd xadd_us xrg xrg_us xack xack_us xack_hits; do : >"$BENCH_TMP/$f.$c"; done
done

for round in $(seq "$ROUNDS"); do
	rcli flushall >/dev/null

	# 1. enqueue
	r0=$(cpu_ticks "$redis_pid")
	t0=$(now_ns)
	{
		TIMEFORMAT='%3U %3S'
		time "$worker" enqueue --redis "$url" --queue "$Q" --count "$N" --id-prefix "r$round-" \
			>"$BENCH_TMP/added" 2>"$BENCH_TMP/enqueue.log"
	} 2>"$BENCH_TMP/enqueue.time"
	t1=$(now_ns)
	r1=$(cpu_ticks "$redis_pid")
	added=$(cat "$BENCH_TMP/added")
	[ "$added" = "$N" ] || { echo "bench: enqueue added $added of $N:" >&2; cat "$BENCH_TMP/enqueue.log" >&2; exit 1; }
	rate "$N" $((t1 - t0)) >>"$BENCH_TMP/enq"
	awk -v n="$N" '{printf "%.1f\n", ($1 + $2) * 1e6 / n}' "$BENCH_TMP/enqueue.time" >>"$BENCH_TMP/enq_client"
	per_job_us $((r1 - r0)) "$N" >>"$BENCH_TMP/enq_redis"

	# 2. end to end
	cmdstats >"$BENCH_TMP/cmd0"
	r0=$(cpu_ticks "$redis_pid")
	t0=$(now_ns)
	"$worker" --redis "$url" --test-queue "$Q" --concurrency "$C" --log-level warn \
		2>"$BENCH_TMP/worker.log" &
	wpid=$!
	BENCH_PIDS+=("$wpid")
	stop=$((SECONDS + DEADLINE))
	while :; do
		done_n=$(rcli hget "sluice:q:{$Q}:stats" completed)
		[ "${done_n:-0}" -lt "$N" ] || break
		if ! kill -0 "$wpid" 2>/dev/null; then
			echo "bench: sluice-worker exited:" >&2
			cat "$BENCH_TMP/worker.log" >&2
			exit 1
		fi
		if [ $SECONDS -ge $stop ]; then
			echo "bench: ${done_n:-0} of $N jobs completed after ${DEADLINE}s" >&2
			exit 1
		fi
		sleep 0.1
	done
	t1=$(now_ns)
	w1=$(cpu_ticks "$wpid")
	r1=$(cpu_ticks "$redis_pid")
	cmdstats >"$BENCH_TMP/cmd1"
	stop_pid "$wpid"
	# nothing should fail with a no-op handler: say so if something did
	rcli hmget "sluice:q:{$Q}:stats" failed retried dead | awk -v r="$round" '{v[NR] = $1 + 0}
		END {if (v[1] + v[2] + v[3] > 0) print "round " r ": failed " v[1] ", retried " v[2] ", dead " v[3] ";"}' \
		>>"$BENCH_TMP/e2e_odd"
	rate "$N" $((t1 - t0)) >>"$BENCH_TMP/e2e"
	per_job_us "$w1" "$N" >>"$BENCH_TMP/e2e_worker"
	per_job_us $((r1 - r0)) "$N" >>"$BENCH_TMP/e2e_redis"
	# commands per job in this round (the last round's are printed)
	awk -v n="$N" 'NR == FNR {b[$1] = $2; next} {d = ($2 - b[$1]) / n; if (d >= 0.005) printf "%s %.2f\n", $1, d}' \
		"$BENCH_TMP/cmd0" "$BENCH_TMP/cmd1" | sort -k2,2gr -k1,1 >"$BENCH_TMP/e2e_cmds"

	# 3. the peer, same redis-server
	rcli flushall >/dev/null
	for c in 1 "$C"; do
		s="bench:s:$c"
		rb "$c" XADD bench:add '*' id j1 payload x attempts 0 >>"$BENCH_TMP/xadd.$c"
		per_job_us "$RB_TICKS" "$N" >>"$BENCH_TMP/xadd_us.$c"
		prefill "$s"
		rb "$c" XREADGROUP GROUP g c COUNT 1 STREAMS "$s" '>' >>"$BENCH_TMP/xrg.$c"
		per_job_us "$RB_TICKS" "$N" >>"$BENCH_TMP/xrg_us.$c"
		p0=$(pending "$s")
		rb "$c" -r "$N" XACK "$s" g '1-__rand_int__' >>"$BENCH_TMP/xack.$c"
		per_job_us "$RB_TICKS" "$N" >>"$BENCH_TMP/xack_us.$c"
		echo $((p0 - $(pending "$s"))) >>"$BENCH_TMP/xack_hits.$c"
	done
done

m() { median <"$BENCH_TMP/$1"; }
enq=$(m enq)
e2e=$(m e2e)
echo "job queue (sluice-worker, queue \"$Q\") vs redis-benchmark: $N jobs, worker concurrency $C," \
	"one redis-server, median of $ROUNDS rounds"
printf '  %-46s %9s %14s %13s\n' "" "jobs/s" "client us/job" "Redis us/job"
printf '  %-46s %9s %14s %13s\n' "enqueue (one connection, one job at a time)" "$enq" "$(m enq_client)" "$(m enq_redis)"
printf '  %-46s %9s %14s %13s\n' "end to end: fetch, no-op handler, complete" "$e2e" "$(m e2e_worker)" "$(m e2e_redis)"
echo "  (client: the enqueue command's CPU, then the worker's, all threads, its start included)"
echo "  Redis commands per job, end to end (last round; calls inside scripts included):"
awk '{printf "%s%s %s", (NR % 8 == 1 ? "    " : "  "), $1, $2; if (NR % 8 == 0) print ""} END {if (NR % 8) print ""}' \
	"$BENCH_TMP/e2e_cmds"
awk '{s += $2} END {printf "    total %.1f\n", s}' "$BENCH_TMP/e2e_cmds"
[ -z "$(cat "$BENCH_TMP/e2e_odd")" ] || echo "  note: $(sort -u "$BENCH_TMP/e2e_odd" | tr '\n' ' ')"
echo
echo "redis-benchmark -n $N -P 1 on the same redis-server (ops/s; Redis CPU us per op)"
printf '  %-56s %9s %7s %9s %7s\n' command "c=1" "us/op" "c=$C" "us/op"
printf '  %-56s %9.0f %7s %9.0f %7s\n' "XADD bench:add * id j1 payload x attempts 0" \
	"$(m xadd.1)" "$(m xadd_us.1)" "$(m "xadd.$C")" "$(m "xadd_us.$C")"
printf '  %-56s %9.0f %7s %9.0f %7s\n' "XREADGROUP GROUP g c COUNT 1 STREAMS bench:s:<c> >" \
	"$(m xrg.1)" "$(m xrg_us.1)" "$(m "xrg.$C")" "$(m "xrg_us.$C")"
printf '  %-56s %9.0f %7s %9.0f %7s\n' "XACK bench:s:<c> g 1-__rand_int__   (-r $N)" \
	"$(m xack.1)" "$(m xack_us.1)" "$(m "xack.$C")" "$(m "xack_us.$C")"
echo "  (XACK acknowledged $(m xack_hits.1) (c=1) and $(m "xack_hits.$C") (c=$C) of its $N calls; the rest were repeated ids)"
echo
xrgc=$(m "xrg.$C")
xackc=$(m "xack.$C")
echo "ratios"
awk -v a="$enq" -v b="$(m xadd.1)" 'BEGIN {printf "  %6.3f  enqueue/s ÷ XADD/s (c=1)\n", b ? a / b : 0}'
awk -v a="$e2e" -v x="$(m "xadd.$C")" -v r="$xrgc" -v c="$C" 'BEGIN {m = x < r ? x : r
	printf "  %6.3f  end-to-end jobs/s ÷ min(XADD/s, XREADGROUP/s) (c=%s)\n", m ? a / m : 0, c}'
awk -v a="$e2e" -v r="$xrgc" -v k="$xackc" -v c="$C" 'BEGIN {p = r && k ? 1 / (1 / r + 1 / k) : 0
	printf "  %6.3f  end-to-end jobs/s ÷ (XREADGROUP then XACK: 1/(1/XREADGROUP/s + 1/XACK/s) = %.0f/s) (c=%s)\n", p ? a / p : 0, p, c}'
awk -v a="$(m e2e_redis)" -v r="$(m "xrg_us.$C")" -v k="$(m "xack_us.$C")" -v c="$C" 'BEGIN {
	printf "  %6.1f  Redis CPU per job ÷ Redis CPU per XREADGROUP + XACK (c=%s): %.1f us vs %.1f us\n", r + k ? a / (r + k) : 0, c, a, r + k}'
