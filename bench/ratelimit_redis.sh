#!/usr/bin/env bash
# bench/ratelimit_redis.sh — Redis-backed rate-limit decisions (shared/ratelimit_redis.c)
# against redis-benchmark running the same Lua script with the same arguments, at the same
# pipeline depth on one connection, against the same redis-server, in the same run.
#
#   bench/ratelimit_redis.sh [OBJDIR]      (OBJDIR holds libshared.a; default build/release)
#   BENCH_N=200000 BENCH_DEPTH=16 BENCH_KEYS=10000 BENCH_LEASE_SECONDS=3 BENCH_ROUNDS=3
#
# For each algorithm: decisions/s through rl_redis_decide (exact store: one EVALSHA per
# decision, BENCH_DEPTH decisions in flight), redis-benchmark's EVALSHA/s for the same
# script, key pattern (BENCH_KEYS random keys, redis-benchmark's __rand_int__) and ARGV,
# and the ratio (goal ≥ 0.7). Then the lease fast path (store "redis_lease") under a
# steady load offered at 0.5× and 5× the limit, paced by a 1 ms timer: Redis operations
# per request (goal ≤ 0.05). The driver is a small C program embedded below, compiled
# against libshared.a. Asserts nothing.
set -euo pipefail
objdir=${1:-build/release}
cd "$(dirname "$0")/.."
. bench/lib.sh

N=${BENCH_N:-200000}
DEPTH=${BENCH_DEPTH:-16}
KEYS=${BENCH_KEYS:-10000}
LEASE_SECONDS=${BENCH_LEASE_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-3}

make --no-print-directory "$objdir/libshared.a" O="${objdir%/*}" >/dev/null

cat >"$BENCH_TMP/driver.c" <<'C'
/* The rl_redis side of bench/ratelimit_redis.sh. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "clock.h"
#include "err.h"
#include "evloop.h"
#include "evloop_redis.h"
#include "ratelimit_redis.h"

struct run {
    struct rl_redis *rr;
    struct rl_redis_policy pol;
    uint64_t issued, answered, allowed, errors, target, keys, per_ms, start_ns;
    uint64_t rng;
};

static uint64_t next_rand(struct run *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

static void issue(struct run *r);

static void answer(struct run *r, const struct rl_decision *d, int err)
{
    r->answered++;
    if (err)
        r->errors++;
    else
        r->allowed += d->allowed;
}

static void on_decision(const struct rl_decision *d, int err, void *arg)
{
    struct run *r = arg;
    answer(r, d, err);
    if (r->target && r->issued < r->target)
        issue(r); /* keep the pipeline full */
}

static void issue(struct run *r)
{
    char key[16];
    snprintf(key, sizeof(key), "%012" PRIu64, next_rand(r) % r->keys);
    struct rl_decision d;
    r->issued++;
    int rc = rl_redis_decide(r->rr, &r->pol, key, 12, 1, &d, on_decision, r);
    if (rc == RL_REDIS_NOW)
        answer(r, &d, 0);
    else if (rc != SL_OK)
        answer(r, NULL, rc);
}

/* per_ms requests for every ms since the start, however often the timer runs */
static void tick(struct evloop *loop, void *arg)
{
    (void)loop;
    struct run *r = arg;
    uint64_t due = (clock_mono_ns() - r->start_ns) / 1000000 * r->per_ms;
    while (r->issued < due)
        issue(r);
}

int main(int argc, char **argv)
{
    if (argc != 10) {
        fprintf(stderr, "usage: driver PORT ALG exact|lease N|SECONDS DEPTH|PER_MS KEYS LIMIT "
                        "WINDOW_MS BURST\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct evloop *loop = evloop_new();
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%s", argv[1]);
    struct evredis *er = evredis_new(loop, url, 1000, 5000, NULL);
    struct run r = {.rr = rl_redis_new(loop, er, NULL), .rng = 88172645463325252ull};
    r.pol.name = "bench";
    if (!loop || !er || !r.rr || !rl_algorithm_parse(argv[2], &r.pol.params.alg))
        return 2;
    r.pol.lease = strcmp(argv[3], "lease") == 0;
    uint64_t amount = strtoull(argv[4], NULL, 10), depth = strtoull(argv[5], NULL, 10);
    r.keys = strtoull(argv[6], NULL, 10);
    r.pol.params.limit = strtoull(argv[7], NULL, 10);
    r.pol.params.window_ms = strtoull(argv[8], NULL, 10);
    r.pol.params.burst = strtoull(argv[9], NULL, 10);
    uint64_t start = clock_mono_ns();
    r.start_ns = start;
    if (!r.pol.lease) { /* closed loop: `depth` in flight until amount are answered */
        r.target = amount;
        for (uint64_t i = 0; i < depth && i < amount; i++)
            issue(&r);
        while (r.answered < amount)
            evloop_run_once(loop, 100);
    } else { /* open loop: depth requests each ms for amount seconds */
        r.per_ms = depth;
        uint64_t id;
        evloop_timer_add(loop, 0, 1, tick, &r, &id);
        while (clock_mono_ns() - start < amount * 1000000000ull)
            evloop_run_once(loop, 10);
        evloop_cancel(loop, id);
        while (r.answered < r.issued)
            evloop_run_once(loop, 100);
    }
    double secs = (double)(clock_mono_ns() - start) / 1e9;
    struct rl_redis_stats st;
    rl_redis_get_stats(r.rr, &st);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec +
                    ru.ru_stime.tv_usec;
    printf("%.0f %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %.2f\n",
           r.answered / secs, r.answered, r.allowed, r.errors, st.redis_calls,
           st.noscript_fallbacks, cpu_us / (double)r.answered);
    rl_redis_free(r.rr);
    evredis_free(er);
    evloop_free(loop);
    return 0;
}
C

# The SHA1 of each script, from the same library.
cat >"$BENCH_TMP/sha.c" <<'C'
#include <stdio.h>
#include "ratelimit_redis.h"
int main(void)
{
    char sha[41];
    for (int a = 0; a < RL_ALGORITHMS; a++)
        printf("%s %s\n", rl_algorithm_name((enum rl_algorithm)a),
               rl_redis_script_sha1((enum rl_algorithm)a, sha));
    return 0;
}
C
cflags="-std=c11 -D_GNU_SOURCE -O2 -Ishared $(pkg-config --cflags hiredis libcrypto)"
libs="$objdir/libshared.a $(pkg-config --libs hiredis jansson libcrypto libcurl libmicrohttpd) -lpthread -lm"
# shellcheck disable=SC2086
gcc $cflags -o "$BENCH_TMP/driver" "$BENCH_TMP/driver.c" $libs
# shellcheck disable=SC2086
gcc $cflags -o "$BENCH_TMP/sha" "$BENCH_TMP/sha.c" $libs

port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
	--dir "$BENCH_TMP" >"$BENCH_TMP/redis.log" 2>&1 &
redis_pid=$!
BENCH_PIDS+=("$redis_pid")
deadline=$((SECONDS + 10))
until redis-cli -p "$port" ping >/dev/null 2>&1; do
	[ $SECONDS -lt $deadline ] || { echo "bench: redis-server did not start" >&2; exit 1; }
	sleep 0.05
done

# limit, window_ms, burst per algorithm: a large quota, so most decisions admit and write
params() {
	case $1 in
	sliding_log) echo "10000 1000 0" ;; # RL_SLIDING_LOG_MAX: the log holds the quota
	*) echo "1000000 1000 0" ;;
	esac
}
tag() {
	case $1 in
	fixed_window) echo fw ;; sliding_log) echo sl ;; sliding_window) echo sw ;;
	token_bucket) echo tb ;; leaky_bucket) echo lb ;; gcra) echo gcra ;;
	esac
}

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

echo "rl_redis vs redis-benchmark: $N decisions, pipeline depth $DEPTH, one connection," \
	"$KEYS keys, median of $ROUNDS alternating rounds"
printf '  %-16s %10s %10s %6s  %21s  %s\n' algorithm "rl_redis/s" "r-bench/s" ratio \
	"Redis CPU us/decision" "client CPU us/decision"
printf '  %-16s %10s %10s %6s  %10s %10s  %10s\n' "" "" "" "" rl_redis r-bench rl_redis
hz=$(getconf CLK_TCK)
"$BENCH_TMP/sha" | while read -r alg sha; do
	read -r limit window burst < <(params "$alg")
	: >"$BENCH_TMP/ours" && : >"$BENCH_TMP/theirs" && : >"$BENCH_TMP/ours_us"
	: >"$BENCH_TMP/theirs_us" && : >"$BENCH_TMP/client_us"
	errors_all=0
	for _ in $(seq "$ROUNDS"); do
		redis-cli -p "$port" flushall >/dev/null
		c0=$(cpu_ticks "$redis_pid")
		read -r ours n _ errors _ _ client_us < <("$BENCH_TMP/driver" "$port" "$alg" exact \
			"$N" "$DEPTH" "$KEYS" "$limit" "$window" "$burst")
		c1=$(cpu_ticks "$redis_pid")
		errors_all=$((errors_all + errors))
		echo "$ours" >>"$BENCH_TMP/ours"
		echo "$client_us" >>"$BENCH_TMP/client_us"
		awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN {print t * 1e6 / hz / n}' >>"$BENCH_TMP/ours_us"
		redis-cli -p "$port" flushall >/dev/null
		t0=$(cpu_ticks "$redis_pid")
		theirs=$(redis-benchmark -p "$port" -c 1 -n "$N" -P "$DEPTH" -r "$KEYS" -q \
			EVALSHA "$sha" 1 "sluice:rl:{bench:__rand_int__}:$(tag "$alg")" \
			"$limit" "$window" "$burst" 1 0 0 2>&1 | tr '\r' '\n' |
			sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
		t1=$(cpu_ticks "$redis_pid")
		echo "${theirs:-0}" >>"$BENCH_TMP/theirs"
		awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$N" 'BEGIN {print t * 1e6 / hz / n}' >>"$BENCH_TMP/theirs_us"
	done
	ours=$(median <"$BENCH_TMP/ours")
	theirs=$(median <"$BENCH_TMP/theirs")
	ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "%.2f", b ? a / b : 0}')
	printf '  %-16s %10.0f %10.0f %5sx  %10.1f %10.1f  %10.2f' "$alg" "$ours" "$theirs" "$ratio" \
		"$(median <"$BENCH_TMP/ours_us")" "$(median <"$BENCH_TMP/theirs_us")" \
		"$(median <"$BENCH_TMP/client_us")"
	[ "$errors_all" = 0 ] || printf '  (%s errors)' "$errors_all"
	printf '\n'
done

echo
echo "lease fast path (store redis_lease), one agent, $LEASE_SECONDS s per run, 1 ms pacing"
printf '  %-16s %8s %10s %10s %10s %12s\n' algorithm offered requests admitted "Redis ops" "ops/request"
for alg in fixed_window sliding_window token_bucket gcra; do
	for per_ms in 5 50; do # limit 10000/s: 0.5x and 5x
		burst=0
		[ "$alg" = gcra ] && burst=9999
		read -r _ n allowed _ calls _ _ < <("$BENCH_TMP/driver" "$port" "$alg" lease \
			"$LEASE_SECONDS" "$per_ms" 1 10000 1000 "$burst")
		offered=$(awk -v p="$per_ms" 'BEGIN {printf "%.1fx", p * 1000 / 10000}')
		ops=$(awk -v c="$calls" -v n="$n" 'BEGIN {printf "%.4f", c / n}')
		printf '  %-16s %8s %10s %10s %10s %12s\n' "$alg" "$offered" "$n" "$allowed" "$calls" "$ops"
	done
done
