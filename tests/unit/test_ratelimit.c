/* ratelimit: per algorithm an exact admit/deny sequence with injected time; an oracle that
 * checks every answer (remaining, reset_ms, retry_after_ms) by replaying copies of the
 * state; property tests over random arrivals against each algorithm's documented bound
 * (docs/ratelimiting.md); the bounds reached in constructed cases (the fixed-window
 * boundary spike at exactly 2× the limit); retune; params; and the local store (bounded,
 * LRU, keys, two threads on one key, forget). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "ratelimit.h"

#define T0 UINT64_C(10000) /* a multiple of every window of the sequences */

static struct rl_params params(enum rl_algorithm alg, uint64_t limit, uint64_t window_ms,
                               uint64_t burst)
{
    struct rl_params p = {.alg = alg, .limit = limit, .window_ms = window_ms, .burst = burst};
    assert_int_equal(rl_params_check(&p, NULL), SL_OK);
    return p;
}

/* One decision and its exact answer; a macro so that a failure names the caller's line. */
#define DECIDE(p, st, now, cost, allow, rem, reset, retry)                                         \
    do {                                                                                           \
        struct rl_decision d_;                                                                     \
        assert_int_equal(rl_decide((p), (st), (now), (cost), &d_), SL_OK);                         \
        assert_int_equal(d_.allowed, (allow));                                                     \
        assert_int_equal(d_.limit, (p)->limit);                                                    \
        assert_int_equal(d_.remaining, (rem));                                                     \
        assert_int_equal(d_.reset_ms, (reset));                                                    \
        assert_int_equal(d_.retry_after_ms, (retry));                                              \
    } while (0)

static struct rl_state state_copy(const struct rl_state *st)
{
    struct rl_state c = *st;
    if (st->log) {
        c.log = malloc(st->log_cap * sizeof(*c.log));
        assert_non_null(c.log);
        memcpy(c.log, st->log, st->log_cap * sizeof(*c.log));
    }
    return c;
}

static struct rl_decision decide_on_copy(const struct rl_params *p, const struct rl_state *st,
                                         uint64_t now, uint64_t cost)
{
    struct rl_state c = state_copy(st);
    struct rl_decision d;
    assert_int_equal(rl_decide(p, &c, now, cost, &d), SL_OK);
    rl_state_release(&c);
    return d;
}

/* The oracle: d, taken at now for cost, left the state st. Its answers must be exact:
 *  - remaining: that many requests of cost 1 are admitted now, one more is not;
 *  - reset_ms: at now + reset_ms the key is fresh (remaining = capacity), a ms before not;
 *  - retry_after_ms: the same request is admitted at now + retry_after_ms, not a ms before. */
static void check_answers(const struct rl_params *p, const struct rl_state *st, uint64_t now,
                          uint64_t cost, const struct rl_decision *d)
{
    uint64_t cap = rl_capacity(p);
    struct rl_decision x;
    assert_true(d->remaining <= cap);
    struct rl_state c = state_copy(st);
    if (d->remaining > 64) {
        assert_int_equal(rl_decide(p, &c, now, d->remaining, &x), SL_OK);
        assert_true(x.allowed);
    } else {
        for (uint64_t i = 0; i < d->remaining; i++) {
            assert_int_equal(rl_decide(p, &c, now, 1, &x), SL_OK);
            assert_true(x.allowed);
        }
    }
    assert_int_equal(rl_decide(p, &c, now, 1, &x), SL_OK);
    assert_false(x.allowed);
    rl_state_release(&c);

    assert_int_equal(decide_on_copy(p, st, now + d->reset_ms, 0).remaining, cap);
    if (d->reset_ms)
        assert_true(decide_on_copy(p, st, now + d->reset_ms - 1, 0).remaining < cap);

    if (d->allowed) {
        assert_int_equal(d->retry_after_ms, 0);
    } else if (cost <= cap) {
        assert_true(d->retry_after_ms >= 1);
        assert_false(decide_on_copy(p, st, now + d->retry_after_ms - 1, cost).allowed);
        assert_true(decide_on_copy(p, st, now + d->retry_after_ms, cost).allowed);
    } else {
        assert_int_equal(d->retry_after_ms,
                         d->reset_ms > p->window_ms ? d->reset_ms : p->window_ms);
    }
}

/* Decide and run the oracle. */
static struct rl_decision decide_checked(const struct rl_params *p, struct rl_state *st,
                                         uint64_t now, uint64_t cost)
{
    struct rl_decision d;
    assert_int_equal(rl_decide(p, st, now, cost, &d), SL_OK);
    assert_int_equal(d.limit, p->limit);
    check_answers(p, st, now, cost, &d);
    return d;
}

/* ---- names and params ----------------------------------------------------------------- */

static void test_algorithm_names(void **state)
{
    (void)state;
    static const char *const names[RL_ALGORITHMS] = {
        "fixed_window", "sliding_log", "sliding_window", "token_bucket", "leaky_bucket", "gcra"};
    for (int i = 0; i < RL_ALGORITHMS; i++) {
        enum rl_algorithm a = RL_FIXED_WINDOW;
        assert_string_equal(rl_algorithm_name((enum rl_algorithm)i), names[i]);
        assert_true(rl_algorithm_parse(names[i], &a));
        assert_int_equal(a, i);
    }
    enum rl_algorithm a = RL_GCRA;
    assert_false(rl_algorithm_parse("leaky-bucket", &a));
    assert_false(rl_algorithm_parse("", &a));
    assert_false(rl_algorithm_parse(NULL, &a));
    assert_int_equal(a, RL_GCRA);
    assert_string_equal(rl_algorithm_name((enum rl_algorithm)99), "unknown");
}

static void assert_rejected(struct rl_params p, const char *message)
{
    const char *why = NULL;
    assert_int_equal(rl_params_check(&p, &why), SL_EINVAL);
    assert_string_equal(why, message);
}

static void test_params_check(void **state)
{
    (void)state;
    assert_rejected((struct rl_params){RL_FIXED_WINDOW, 0, 1000, 0}, "limit must be at least 1");
    assert_rejected((struct rl_params){RL_GCRA, 1000000001, 1000, 0},
                    "limit must be at most 1000000000");
    assert_rejected((struct rl_params){RL_TOKEN_BUCKET, 10, 0, 0}, "window_ms must be at least 1");
    assert_rejected((struct rl_params){RL_TOKEN_BUCKET, 10, 2678400001, 0},
                    "window_ms must be at most 2678400000 (31 days)");
    assert_rejected((struct rl_params){RL_TOKEN_BUCKET, 10, 1000, 1000000001},
                    "burst must be at most 1000000000");
    assert_rejected((struct rl_params){RL_SLIDING_LOG, 10001, 1000, 0},
                    "sliding_log allows at most 10000 per window");
    assert_rejected((struct rl_params){(enum rl_algorithm)6, 10, 1000, 0}, "algorithm is unknown");

    const char *why = NULL;
    struct rl_params ok = {RL_SLIDING_LOG, 10000, 2678400000, 1000000000};
    assert_int_equal(rl_params_check(&ok, &why), SL_OK);
    assert_string_equal(why, "ok");
    ok = (struct rl_params){RL_FIXED_WINDOW, 1000000000, 1, 0};
    assert_int_equal(rl_params_check(&ok, NULL), SL_OK);
}

static void test_capacity(void **state)
{
    (void)state;
    assert_int_equal(rl_capacity(&(struct rl_params){RL_FIXED_WINDOW, 10, 1000, 5}), 10);
    assert_int_equal(rl_capacity(&(struct rl_params){RL_SLIDING_LOG, 10, 1000, 5}), 10);
    assert_int_equal(rl_capacity(&(struct rl_params){RL_SLIDING_WINDOW, 10, 1000, 5}), 10);
    assert_int_equal(rl_capacity(&(struct rl_params){RL_TOKEN_BUCKET, 10, 1000, 0}), 10);
    assert_int_equal(rl_capacity(&(struct rl_params){RL_TOKEN_BUCKET, 10, 1000, 25}), 25);
    assert_int_equal(rl_capacity(&(struct rl_params){RL_LEAKY_BUCKET, 10, 1000, 0}), 1);
    assert_int_equal(rl_capacity(&(struct rl_params){RL_GCRA, 10, 1000, 4}), 5);
}

/* ---- exact sequences ------------------------------------------------------------------ */

static void test_fixed_window_sequence(void **state)
{
    (void)state;
    struct rl_params p = params(RL_FIXED_WINDOW, 3, 1000, 0);
    struct rl_state st = {0};
    /*     now        cost allow rem reset retry */
    DECIDE(&p, &st, T0, 1, true, 2, 1000, 0);
    DECIDE(&p, &st, T0 + 400, 1, true, 1, 600, 0);
    DECIDE(&p, &st, T0 + 500, 1, true, 0, 500, 0);
    DECIDE(&p, &st, T0 + 600, 1, false, 0, 400, 400);
    DECIDE(&p, &st, T0 + 999, 1, false, 0, 1, 1);
    DECIDE(&p, &st, T0 + 1000, 1, true, 2, 1000, 0); /* a new window */
    DECIDE(&p, &st, T0 + 1000, 2, true, 0, 1000, 0);
    DECIDE(&p, &st, T0 + 1001, 0, true, 0, 999, 0); /* a peek */
    DECIDE(&p, &st, T0 + 1001, 1, false, 0, 999, 999);
    DECIDE(&p, &st, T0 + 2500, 0, true, 3, 0, 0); /* a window skipped: fresh */
    DECIDE(&p, &st, T0 + 2500, 1, true, 2, 500, 0);
    DECIDE(&p, &st, T0 + 2500, 4, false, 2, 500, 1000); /* never: cost > limit */
    DECIDE(&p, &st, T0 + 2500, 2, true, 0, 500, 0);
    rl_state_release(&st);
}

static void test_sliding_log_sequence(void **state)
{
    (void)state;
    struct rl_params p = params(RL_SLIDING_LOG, 3, 1000, 0);
    struct rl_state st = {0};
    DECIDE(&p, &st, T0, 0, true, 3, 0, 0);
    assert_null(st.log); /* nothing admitted yet: nothing allocated */
    DECIDE(&p, &st, T0, 1, true, 2, 1000, 0);
    assert_non_null(st.log);
    DECIDE(&p, &st, T0 + 100, 1, true, 1, 1000, 0);
    DECIDE(&p, &st, T0 + 200, 1, true, 0, 1000, 0);
    DECIDE(&p, &st, T0 + 300, 1, false, 0, 900, 700); /* until T0 leaves the window */
    DECIDE(&p, &st, T0 + 999, 1, false, 0, 201, 1);
    DECIDE(&p, &st, T0 + 1000, 1, true, 0, 1000, 0);   /* T0 expired */
    DECIDE(&p, &st, T0 + 1050, 2, false, 0, 950, 150); /* two must expire: T0+100, +200 */
    DECIDE(&p, &st, T0 + 1200, 2, true, 0, 1000, 0);
    DECIDE(&p, &st, T0 + 1300, 0, true, 0, 900, 0);
    DECIDE(&p, &st, T0 + 1300, 4, false, 0, 900, 1000); /* never */
    DECIDE(&p, &st, T0 + 2200, 1, true, 2, 1000, 0);
    assert_true(st.log_cap <= 3);
    rl_state_release(&st);
    assert_null(st.log);
}

static void test_sliding_window_sequence(void **state)
{
    (void)state;
    struct rl_params p = params(RL_SLIDING_WINDOW, 10, 1000, 0);
    struct rl_state st = {0};
    DECIDE(&p, &st, T0 + 500, 10, true, 0, 1500, 0);
    /* cur + 1 > 10: wait for the next window, until 10 × (1000 − e) + 1000 ≤ 10000: e = 100 */
    DECIDE(&p, &st, T0 + 600, 1, false, 0, 1400, 500);
    DECIDE(&p, &st, T0 + 1099, 1, false, 0, 901, 1); /* 10 × 901 + 1000 = 10010 */
    DECIDE(&p, &st, T0 + 1100, 1, true, 0, 1900, 0); /* 10 × 900 + 1000 = 10000 */
    DECIDE(&p, &st, T0 + 1500, 1, true, 3, 1500, 0); /* 10 × 500 + 2000 = 7000 */
    DECIDE(&p, &st, T0 + 1500, 3, true, 0, 1500, 0);
    DECIDE(&p, &st, T0 + 1500, 1, false, 0, 1500, 100); /* 10 × 400 + 6000 at e = 600 */
    DECIDE(&p, &st, T0 + 1600, 1, true, 0, 1400, 0);
    DECIDE(&p, &st, T0 + 2000, 0, true, 4, 1000, 0); /* prev 6, weight 1: 10 − 6 */
    DECIDE(&p, &st, T0 + 3000, 0, true, 10, 0, 0);   /* both windows over */
    DECIDE(&p, &st, T0 + 3000, 1, true, 9, 2000, 0);
    DECIDE(&p, &st, T0 + 3000, 11, false, 9, 2000, 2000); /* never */
    rl_state_release(&st);
}

static void test_token_bucket_sequence(void **state)
{
    (void)state;
    /* 10 per 1000 ms (one token per 100 ms), bucket of 5 */
    struct rl_params p = params(RL_TOKEN_BUCKET, 10, 1000, 5);
    struct rl_state st = {0};
    DECIDE(&p, &st, T0, 1, true, 4, 100, 0);
    DECIDE(&p, &st, T0, 1, true, 3, 200, 0);
    DECIDE(&p, &st, T0, 1, true, 2, 300, 0);
    DECIDE(&p, &st, T0, 1, true, 1, 400, 0);
    DECIDE(&p, &st, T0, 1, true, 0, 500, 0);
    DECIDE(&p, &st, T0, 1, false, 0, 500, 100);
    DECIDE(&p, &st, T0 + 99, 1, false, 0, 401, 1); /* 0.99 of a token back */
    DECIDE(&p, &st, T0 + 100, 1, true, 0, 500, 0);
    DECIDE(&p, &st, T0 + 350, 2, true, 0, 450, 0); /* 2.5 back, 2 taken */
    DECIDE(&p, &st, T0 + 350, 1, false, 0, 450, 50);
    DECIDE(&p, &st, T0 + 1000, 0, true, 5, 0, 0);     /* full again */
    DECIDE(&p, &st, T0 + 1000, 6, false, 5, 0, 1000); /* never: cost > bucket */
    DECIDE(&p, &st, T0 + 1000, 5, true, 0, 500, 0);
    rl_state_release(&st);

    /* burst 0: the bucket holds limit tokens */
    p = params(RL_TOKEN_BUCKET, 4, 1000, 0);
    st = (struct rl_state){0};
    DECIDE(&p, &st, T0, 4, true, 0, 1000, 0);
    DECIDE(&p, &st, T0 + 1, 1, false, 0, 999, 249);
    rl_state_release(&st);
}

/* GCRA and the leaky bucket (a meter) with burst b decide as a token bucket of b + 1. */
static void gcra_like_sequence(struct rl_params p)
{
    /* 3 per 1000 ms: T = 333⅓ ms, exact; capacity 3 */
    struct rl_state st = {0};
    DECIDE(&p, &st, T0, 1, true, 2, 334, 0);
    DECIDE(&p, &st, T0, 1, true, 1, 667, 0);
    DECIDE(&p, &st, T0, 1, true, 0, 1000, 0);
    DECIDE(&p, &st, T0, 1, false, 0, 1000, 334); /* TAT − τ = T0 + 333⅓ */
    DECIDE(&p, &st, T0 + 333, 1, false, 0, 667, 1);
    DECIDE(&p, &st, T0 + 334, 1, true, 0, 1000, 0); /* TAT = T0 + 1333⅓ */
    DECIDE(&p, &st, T0 + 500, 1, false, 0, 834, 167);
    DECIDE(&p, &st, T0 + 667, 1, true, 0, 1000, 0);
    DECIDE(&p, &st, T0 + 2000, 0, true, 3, 0, 0);
    DECIDE(&p, &st, T0 + 2000, 4, false, 3, 0, 1000); /* never: cost > burst + 1 */
    DECIDE(&p, &st, T0 + 2000, 2, true, 1, 667, 0);
    rl_state_release(&st);
}

static void test_gcra_sequence(void **state)
{
    (void)state;
    gcra_like_sequence(params(RL_GCRA, 3, 1000, 2));

    /* burst 0 (the default): one request per emission interval, T = 600 ms */
    struct rl_params p = params(RL_GCRA, 100, 60000, 0);
    struct rl_state st = {0};
    DECIDE(&p, &st, T0, 1, true, 0, 600, 0);
    DECIDE(&p, &st, T0 + 1, 1, false, 0, 599, 599);
    DECIDE(&p, &st, T0 + 600, 1, true, 0, 600, 0);
    DECIDE(&p, &st, T0 + 600, 2, false, 0, 600, 60000); /* never */
    rl_state_release(&st);
}

static void test_leaky_bucket_sequence(void **state)
{
    (void)state;
    gcra_like_sequence(params(RL_LEAKY_BUCKET, 3, 1000, 2));
}

static void test_token_bucket_as_gcra_sequence(void **state)
{
    (void)state;
    gcra_like_sequence(params(RL_TOKEN_BUCKET, 3, 1000, 3));
}

/* "3 per 1000 ms" is exact: a client that waits exactly retry_after_ms each time is admitted
 * 3 times per second on average, forever — no drift from rounding 333⅓ ms. */
static void test_three_per_second_is_exact(void **state)
{
    (void)state;
    for (int alg = RL_TOKEN_BUCKET; alg <= RL_GCRA; alg++) {
        struct rl_params p =
            params((enum rl_algorithm)alg, 3, 1000, alg == RL_TOKEN_BUCKET ? 0 : 2);
        struct rl_state st = {0};
        struct rl_decision d;
        uint64_t now = T0, admitted = 0;
        while (now < T0 + 100000) {
            assert_int_equal(rl_decide(&p, &st, now, 1, &d), SL_OK);
            if (d.allowed) {
                admitted++;
            } else {
                assert_true(d.retry_after_ms >= 1);
                now += d.retry_after_ms;
            }
        }
        /* the first 3 at T0, then 3 in each second; the last one at T0 + 99667 */
        assert_int_equal(admitted, 3 + 299);
        rl_state_release(&st);
    }
}

/* ---- inadmissible cost, peeks, clock going backwards ----------------------------------- */

static const struct rl_params every_alg[] = {
    {RL_FIXED_WINDOW, 5, 1000, 0}, {RL_SLIDING_LOG, 5, 1000, 0},  {RL_SLIDING_WINDOW, 5, 1000, 0},
    {RL_TOKEN_BUCKET, 5, 1000, 3}, {RL_LEAKY_BUCKET, 5, 1000, 2}, {RL_GCRA, 5, 1000, 2},
};

static void test_cost_above_capacity(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(every_alg) / sizeof(every_alg[0]); i++) {
        const struct rl_params *p = &every_alg[i];
        struct rl_state st = {0};
        struct rl_decision d;
        /* fresh: denied, nothing consumed, retry after one window */
        assert_int_equal(rl_decide(p, &st, T0, rl_capacity(p) + 1, &d), SL_OK);
        assert_false(d.allowed);
        assert_int_equal(d.remaining, rl_capacity(p));
        assert_int_equal(d.reset_ms, 0);
        assert_int_equal(d.retry_after_ms, 1000);
        assert_int_equal(rl_decide(p, &st, T0, UINT64_MAX, &d), SL_OK);
        assert_false(d.allowed);
        /* the whole capacity at once is admissible */
        d = decide_checked(p, &st, T0 + 10, rl_capacity(p));
        assert_true(d.allowed);
        assert_int_equal(d.remaining, 0);
        d = decide_checked(p, &st, T0 + 10, rl_capacity(p) + 1);
        assert_false(d.allowed);
        assert_true(d.retry_after_ms >= 1000);
        rl_state_release(&st);
    }
}

/* Threads read the clock, then lock: a key may see now earlier than it already saw. The
 * answer is the state's time's, conservative and still exact from the caller's now. */
static void test_clock_behind_state(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(every_alg) / sizeof(every_alg[0]); i++) {
        const struct rl_params *p = &every_alg[i];
        struct rl_state st = {0};
        uint64_t times[] = {T0 + 1500, T0 + 1400, T0 + 1499, T0 + 900,  T0 + 1501,
                            T0 + 1000, T0 + 1700, T0 + 1600, T0 + 2600, T0 + 2599};
        for (size_t k = 0; k < sizeof(times) / sizeof(times[0]); k++) {
            struct rl_decision d = decide_checked(p, &st, times[k], 1);
            assert_true(d.reset_ms <= 3000);
            assert_true(d.retry_after_ms <= 3000);
        }
        rl_state_release(&st);
    }
}

/* The largest parameters and times: no intermediate product overflows. */
static void test_extreme_params(void **state)
{
    (void)state;
    const uint64_t w = RL_WINDOW_MAX_MS, big = RL_LIMIT_MAX, now = UINT64_C(1) << 52;
    const struct rl_params ps[] = {
        {RL_FIXED_WINDOW, big, w, 0},
        {RL_SLIDING_LOG, RL_SLIDING_LOG_MAX, w, 0},
        {RL_SLIDING_WINDOW, big, w, 0},
        {RL_TOKEN_BUCKET, big, w, RL_BURST_MAX},
        {RL_LEAKY_BUCKET, big, w, RL_BURST_MAX - 1},
        {RL_GCRA, big, w, RL_BURST_MAX - 1},
        {RL_GCRA, 1, w, 0},
        {RL_TOKEN_BUCKET, 1, w, RL_BURST_MAX},
    };
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        const struct rl_params *p = &ps[i];
        assert_int_equal(rl_params_check(p, NULL), SL_OK);
        struct rl_state st = {0};
        uint64_t cap = rl_capacity(p);
        assert_true(decide_checked(p, &st, now, cap - 1).allowed);
        assert_true(decide_checked(p, &st, now + 1, 1).allowed);
        assert_false(decide_checked(p, &st, now + 2, cap).allowed);
        decide_checked(p, &st, now + w - 1, cap);
        decide_checked(p, &st, now + w + w / 2, cap / 2);
        decide_checked(p, &st, now + 5 * w, cap);
        rl_state_release(&st);
    }
}

/* ---- properties over random arrivals --------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Bursts, steady traffic around the rate, and idle gaps of up to three windows. */
static uint64_t next_gap(uint64_t *rng, const struct rl_params *p)
{
    uint64_t kind = splitmix(rng) % 16, mean = p->window_ms / p->limit + 1;
    if (kind == 0)
        return splitmix(rng) % (3 * p->window_ms + 1);
    if (kind < 5)
        return 0;
    return splitmix(rng) % (2 * mean + 1);
}

static uint64_t next_cost(uint64_t *rng, const struct rl_params *p)
{
    if (splitmix(rng) % 16)
        return 1;
    return 1 + splitmix(rng) % (rl_capacity(p) + 1); /* sometimes more than admissible */
}

/* The documented bound (docs/ratelimiting.md): the most units any window of window_ms
 * (any ms-aligned (t − W, t]) can admit. */
static uint64_t window_bound(const struct rl_params *p)
{
    uint64_t l = p->limit, w = p->window_ms, drift = l * (w - 1) / w;
    switch (p->alg) {
    case RL_FIXED_WINDOW:
        return 2 * l;
    case RL_SLIDING_LOG:
        return l;
    case RL_SLIDING_WINDOW:
        return 2 * l - 1;
    case RL_TOKEN_BUCKET:
        return rl_capacity(p) + drift;
    default:
        return p->burst + 1 + drift;
    }
}

struct trace {
    uint64_t *t, *cost;
    size_t n;
};

/* Units admitted in (t − w, t] ending at each admission; returns the largest. */
static uint64_t max_in_any_window(const struct trace *tr, uint64_t w)
{
    uint64_t sum = 0, best = 0;
    for (size_t i = 0, j = 0; i < tr->n; i++) {
        sum += tr->cost[i];
        while (tr->t[j] + w <= tr->t[i])
            sum -= tr->cost[j++];
        if (sum > best)
            best = sum;
    }
    return best;
}

/* Units admitted in the aligned window [k·w, (k+1)·w) of each admission; the largest. */
static uint64_t max_in_aligned_window(const struct trace *tr, uint64_t w)
{
    uint64_t sum = 0, best = 0;
    for (size_t i = 0; i < tr->n; i++) {
        if (i && tr->t[i] / w != tr->t[i - 1] / w)
            sum = 0;
        sum += tr->cost[i];
        if (sum > best)
            best = sum;
    }
    return best;
}

/* What an exact reference would decide: sliding log (units in (now − W, now]) and fixed
 * window (units in now's aligned window), from the trace of admissions so far. */
static bool reference_admits(const struct rl_params *p, const struct trace *tr, uint64_t now,
                             uint64_t cost)
{
    uint64_t sum = 0;
    for (size_t i = tr->n; i-- > 0;) {
        bool in = p->alg == RL_SLIDING_LOG ? tr->t[i] + p->window_ms > now
                                           : tr->t[i] / p->window_ms == now / p->window_ms;
        if (!in)
            break;
        sum += tr->cost[i];
    }
    return sum + cost <= p->limit;
}

/* n random arrivals; every answer checked by the oracle; the trace of admissions bounded. */
static uint64_t run_property(const struct rl_params *p, uint64_t seed, size_t n)
{
    uint64_t rng = seed, now = UINT64_C(1700000000000) + splitmix(&rng) % 100000;
    struct trace tr = {calloc(n, sizeof(uint64_t)), calloc(n, sizeof(uint64_t)), 0};
    assert_non_null(tr.t);
    assert_non_null(tr.cost);
    struct rl_state st = {0};
    uint64_t denied = 0;
    for (size_t i = 0; i < n; i++) {
        now += next_gap(&rng, p);
        uint64_t cost = next_cost(&rng, p);
        bool expect = false;
        if (p->alg == RL_SLIDING_LOG || p->alg == RL_FIXED_WINDOW)
            expect = reference_admits(p, &tr, now, cost);
        struct rl_decision d = decide_checked(p, &st, now, cost);
        if (p->alg == RL_SLIDING_LOG || p->alg == RL_FIXED_WINDOW)
            assert_int_equal(d.allowed, expect);
        if (d.allowed) {
            tr.t[tr.n] = now;
            tr.cost[tr.n++] = cost;
        } else {
            denied++;
        }
    }
    assert_true(denied > n / 20); /* the traffic did press on the limit */
    assert_true(tr.n > n / 4);
    uint64_t most = max_in_any_window(&tr, p->window_ms);
    assert_true(most <= window_bound(p));
    if (p->alg == RL_FIXED_WINDOW || p->alg == RL_SLIDING_WINDOW)
        assert_true(max_in_aligned_window(&tr, p->window_ms) <= p->limit);
    rl_state_release(&st);
    free(tr.t);
    free(tr.cost);
    return most;
}

#define PROPERTY_N 20000

static void run_properties(enum rl_algorithm alg, const uint64_t (*sets)[3], size_t nsets)
{
    for (size_t i = 0; i < nsets; i++) {
        struct rl_params p = params(alg, sets[i][0], sets[i][1], sets[i][2]);
        run_property(&p, 42 + i, PROPERTY_N);
    }
}

static const uint64_t window_sets[][3] = {{10, 1000, 0},   {3, 1000, 0}, {7, 13, 0},
                                          {100, 60000, 0}, {1, 1, 0},    {5, 1, 0}};
static const uint64_t bucket_sets[][3] = {{10, 1000, 0}, {3, 1000, 2},     {10, 1000, 25},
                                          {7, 13, 2},    {100, 60000, 20}, {1, 1, 0}};

static void test_fixed_window_property(void **state)
{
    (void)state;
    run_properties(RL_FIXED_WINDOW, window_sets, sizeof(window_sets) / sizeof(window_sets[0]));
}

static void test_sliding_log_property(void **state)
{
    (void)state;
    run_properties(RL_SLIDING_LOG, window_sets, sizeof(window_sets) / sizeof(window_sets[0]));
}

static void test_sliding_window_property(void **state)
{
    (void)state;
    run_properties(RL_SLIDING_WINDOW, window_sets, sizeof(window_sets) / sizeof(window_sets[0]));
}

static void test_token_bucket_property(void **state)
{
    (void)state;
    run_properties(RL_TOKEN_BUCKET, bucket_sets, sizeof(bucket_sets) / sizeof(bucket_sets[0]));
}

static void test_leaky_bucket_property(void **state)
{
    (void)state;
    run_properties(RL_LEAKY_BUCKET, bucket_sets, sizeof(bucket_sets) / sizeof(bucket_sets[0]));
}

static void test_gcra_property(void **state)
{
    (void)state;
    run_properties(RL_GCRA, bucket_sets, sizeof(bucket_sets) / sizeof(bucket_sets[0]));
}

static void assert_same_decision(const struct rl_decision *a, const struct rl_decision *b)
{
    assert_int_equal(a->allowed, b->allowed);
    assert_int_equal(a->limit, b->limit);
    assert_int_equal(a->remaining, b->remaining);
    assert_int_equal(a->reset_ms, b->reset_ms);
    assert_int_equal(a->retry_after_ms, b->retry_after_ms);
}

/* GCRA (a TAT), the leaky bucket (a level) and a token bucket of burst + 1 (a deficit) are
 * three encodings of one algorithm: every answer agrees over random traffic. */
static void test_gcra_leaky_token_agree(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bucket_sets) / sizeof(bucket_sets[0]); i++) {
        uint64_t l = bucket_sets[i][0], w = bucket_sets[i][1], b = bucket_sets[i][2];
        struct rl_params g = params(RL_GCRA, l, w, b), lb = params(RL_LEAKY_BUCKET, l, w, b),
                         tb = params(RL_TOKEN_BUCKET, l, w, b + 1);
        struct rl_state sg = {0}, sl = {0}, st = {0};
        uint64_t rng = 7 + i, now = 123456789;
        for (int k = 0; k < PROPERTY_N; k++) {
            now += next_gap(&rng, &g);
            uint64_t cost = next_cost(&rng, &g);
            struct rl_decision dg, dl, dt;
            assert_int_equal(rl_decide(&g, &sg, now, cost, &dg), SL_OK);
            assert_int_equal(rl_decide(&lb, &sl, now, cost, &dl), SL_OK);
            assert_int_equal(rl_decide(&tb, &st, now, cost, &dt), SL_OK);
            assert_same_decision(&dg, &dl);
            assert_same_decision(&dg, &dt);
        }
    }
}

/* ---- the bounds, reached ---------------------------------------------------------------- */

static struct trace trace_new(size_t n)
{
    struct trace tr = {calloc(n, sizeof(uint64_t)), calloc(n, sizeof(uint64_t)), 0};
    assert_non_null(tr.t);
    assert_non_null(tr.cost);
    return tr;
}

static void trace_free(struct trace *tr)
{
    free(tr->t);
    free(tr->cost);
}

static void admit_into(const struct rl_params *p, struct rl_state *st, struct trace *tr,
                       uint64_t now, size_t tries)
{
    for (size_t i = 0; i < tries; i++) {
        struct rl_decision d;
        assert_int_equal(rl_decide(p, st, now, 1, &d), SL_OK);
        if (d.allowed) {
            tr->t[tr->n] = now;
            tr->cost[tr->n++] = 1;
        }
    }
}

/* The documented property of fixed windows: L at the end of one window and L at the start
 * of the next, 2 × L within 2 ms. */
static void test_fixed_window_boundary_spike(void **state)
{
    (void)state;
    struct rl_params p = params(RL_FIXED_WINDOW, 100, 1000, 0);
    struct rl_state st = {0};
    struct trace tr = trace_new(400);
    admit_into(&p, &st, &tr, T0 + 999, 150);
    admit_into(&p, &st, &tr, T0 + 1000, 150);
    assert_int_equal(tr.n, 200);
    assert_int_equal(max_in_any_window(&tr, 2), 200);
    assert_int_equal(max_in_any_window(&tr, p.window_ms), 2 * p.limit);
    assert_int_equal(window_bound(&p), 200);
    /* the sliding log, same traffic: exactly the limit */
    p.alg = RL_SLIDING_LOG;
    struct rl_state sl = {0};
    struct trace tl = trace_new(400);
    admit_into(&p, &sl, &tl, T0 + 999, 150);
    admit_into(&p, &sl, &tl, T0 + 1000, 150);
    assert_int_equal(tl.n, 100);
    trace_free(&tr);
    trace_free(&tl);
    rl_state_release(&sl);
}

/* Sliding window counter: L at a window's last ms, then one request per ms: the estimate
 * admits L − 1 more before that ms leaves the sliding window — 2L − 1, the bound. */
static void test_sliding_window_worst_case(void **state)
{
    (void)state;
    struct rl_params p = params(RL_SLIDING_WINDOW, 100, 1000, 0);
    struct rl_state st = {0};
    struct trace tr = trace_new(400);
    admit_into(&p, &st, &tr, T0 + 999, 100);
    for (uint64_t t = T0 + 1000; t < T0 + 1999; t++)
        admit_into(&p, &st, &tr, t, 1);
    assert_int_equal(tr.t[tr.n - 1], T0 + 1990); /* admitted at e = 10, 20, ..., 990 */
    assert_int_equal(tr.n, 199);
    assert_int_equal(max_in_any_window(&tr, p.window_ms), 2 * p.limit - 1);
    assert_int_equal(max_in_aligned_window(&tr, p.window_ms), 100);
    trace_free(&tr);
    rl_state_release(&st);
}

/* Buckets: a full bucket at the window's first ms, then one request per ms: capacity plus
 * what refills in W − 1 ms, L × (W − 1) / W. */
static void test_bucket_bounds_reached(void **state)
{
    (void)state;
    const struct rl_params ps[] = {
        {RL_TOKEN_BUCKET, 10, 1000, 5}, {RL_LEAKY_BUCKET, 10, 1000, 4}, {RL_GCRA, 10, 1000, 4}};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        struct rl_state st = {0};
        struct trace tr = trace_new(2000);
        for (uint64_t t = T0; t < T0 + 1000; t++)
            admit_into(&ps[i], &st, &tr, t, 1);
        assert_int_equal(window_bound(&ps[i]), 5 + 9);
        assert_int_equal(tr.n, 14);
        assert_int_equal(max_in_any_window(&tr, 1000), 14);
        trace_free(&tr);
        rl_state_release(&st);
    }
}

/* ---- retune ------------------------------------------------------------------------------ */

static void test_retune_token_bucket_proportional(void **state)
{
    (void)state;
    struct rl_params from = params(RL_TOKEN_BUCKET, 100, 1000, 0);
    struct rl_params to = params(RL_TOKEN_BUCKET, 200, 1000, 0);
    struct rl_state st = {0};
    DECIDE(&from, &st, T0, 50, true, 50, 500, 0); /* 50 of 100 left */
    rl_state_retune(&from, &to, &st, T0);
    DECIDE(&to, &st, T0, 0, true, 100, 500, 0); /* 100 of 200: half full, same refill time */
    rl_state_retune(&to, &from, &st, T0);
    DECIDE(&from, &st, T0, 0, true, 50, 500, 0);

    /* refilled under the old rate up to now first: 100 ms at 100/s = 10 tokens back */
    rl_state_retune(&from, &to, &st, T0 + 100);
    DECIDE(&to, &st, T0 + 100, 0, true, 120, 400, 0); /* 60/100 → 120/200 */

    /* a bigger bucket, same rate: 40 missing of 100 → 80 missing of 200 (rounded up) */
    struct rl_params big = params(RL_TOKEN_BUCKET, 200, 1000, 400);
    rl_state_retune(&to, &big, &st, T0 + 100);
    DECIDE(&big, &st, T0 + 100, 0, true, 240, 800, 0);
    rl_state_release(&st);

    /* rounded up, never more room than before: 1 of 3 used → 2⅓ of 7, kept as 2.334 */
    struct rl_params three = params(RL_TOKEN_BUCKET, 1, 1000, 3);
    struct rl_params seven = params(RL_TOKEN_BUCKET, 1, 1000, 7);
    st = (struct rl_state){0};
    DECIDE(&three, &st, T0, 1, true, 2, 1000, 0);
    rl_state_retune(&three, &seven, &st, T0);
    DECIDE(&seven, &st, T0, 0, true, 4, 2334, 0);
    rl_state_release(&st);
}

static void test_retune_gcra_and_leaky(void **state)
{
    (void)state;
    for (int alg = RL_LEAKY_BUCKET; alg <= RL_GCRA; alg++) {
        struct rl_params from = params((enum rl_algorithm)alg, 100, 1000, 99);
        struct rl_params to = params((enum rl_algorithm)alg, 200, 1000, 199);
        struct rl_state st = {0};
        DECIDE(&from, &st, T0, 50, true, 50, 500, 0);
        rl_state_retune(&from, &to, &st, T0);
        DECIDE(&to, &st, T0, 0, true, 100, 500, 0);
        /* a smaller capacity, same rate: 50 in a bucket of 100 → 25 in one of 50 */
        struct rl_params small = params((enum rl_algorithm)alg, 200, 1000, 49);
        rl_state_retune(&to, &small, &st, T0);
        DECIDE(&small, &st, T0, 0, true, 25, 125, 0);
        /* 3 per second exactly, from a third used */
        struct rl_params three = params((enum rl_algorithm)alg, 3, 1000, 2);
        rl_state_retune(&small, &three, &st, T0);
        DECIDE(&three, &st, T0, 0, true, 1, 500, 0); /* level 1.5 of 3 */
        rl_state_release(&st);
    }
}

static void test_retune_windows_keep_counts(void **state)
{
    (void)state;
    struct rl_params from = params(RL_FIXED_WINDOW, 10, 1000, 0);
    struct rl_params low = params(RL_FIXED_WINDOW, 5, 1000, 0);
    struct rl_params high = params(RL_FIXED_WINDOW, 20, 1000, 0);
    struct rl_params longer = params(RL_FIXED_WINDOW, 20, 3000, 0);
    struct rl_state st = {0};
    DECIDE(&from, &st, T0 + 100, 6, true, 4, 900, 0);
    rl_state_retune(&from, &low, &st, T0 + 200);
    DECIDE(&low, &st, T0 + 200, 1, false, 0, 800, 800);
    rl_state_retune(&low, &high, &st, T0 + 200);
    DECIDE(&high, &st, T0 + 200, 0, true, 14, 800, 0);
    rl_state_retune(&high, &longer, &st, T0 + 200); /* T0 + 200 is in [9000, 12000) */
    DECIDE(&longer, &st, T0 + 200, 0, true, 14, 1800, 0);
    rl_state_retune(&longer, &from, &st, T0 + 5000); /* that window is over: fresh */
    DECIDE(&from, &st, T0 + 5000, 0, true, 10, 0, 0);
    rl_state_release(&st);

    struct rl_params sw = params(RL_SLIDING_WINDOW, 10, 1000, 0);
    struct rl_params sw2 = params(RL_SLIDING_WINDOW, 10, 2000, 0);
    st = (struct rl_state){0};
    DECIDE(&sw, &st, T0 + 500, 4, true, 6, 1500, 0);
    DECIDE(&sw, &st, T0 + 1500, 2, true, 6, 1500, 0);  /* 4 × 500 + 2 × 1000 = 4000 */
    rl_state_retune(&sw, &sw2, &st, T0 + 1500);        /* counts kept, window [10000, 12000) */
    DECIDE(&sw2, &st, T0 + 1500, 0, true, 7, 2500, 0); /* 4 × 500 + 2 × 2000 = 6000 of 20000 */
    rl_state_release(&st);
}

static void test_retune_sliding_log(void **state)
{
    (void)state;
    struct rl_params five = params(RL_SLIDING_LOG, 5, 1000, 0);
    struct rl_params three = params(RL_SLIDING_LOG, 3, 1000, 0);
    struct rl_params ten = params(RL_SLIDING_LOG, 10, 1000, 0);
    struct rl_state st = {0};
    for (uint64_t t = 0; t < 5; t++)
        DECIDE(&five, &st, T0 + t, 1, true, 4 - t, 1000, 0);
    rl_state_retune(&five, &three, &st, T0 + 5); /* keeps T0+2, +3, +4 */
    assert_int_equal(st.log_len, 3);
    assert_true(st.log_cap <= 3);
    DECIDE(&three, &st, T0 + 1001, 1, false, 0, 3, 1);
    DECIDE(&three, &st, T0 + 1002, 1, true, 0, 1000, 0);
    rl_state_retune(&three, &ten, &st, T0 + 1002);
    DECIDE(&ten, &st, T0 + 1002, 0, true, 7, 1000, 0);
    /* a change of algorithm starts fresh and frees the log */
    struct rl_params fw = params(RL_FIXED_WINDOW, 10, 1000, 0);
    rl_state_retune(&ten, &fw, &st, T0 + 1002);
    assert_null(st.log);
    DECIDE(&fw, &st, T0 + 1002, 0, true, 10, 0, 0);
    /* shrinking to nothing in the window frees the ring */
    st = (struct rl_state){0};
    DECIDE(&ten, &st, T0, 1, true, 9, 1000, 0);
    rl_state_retune(&ten, &three, &st, T0 + 1000);
    assert_null(st.log);
    rl_state_release(&st);
}

/* ---- local store ------------------------------------------------------------------------- */

static struct rl_decision local(struct rl_local *l, uint32_t policy, const struct rl_params *p,
                                const char *key, uint64_t now)
{
    struct rl_decision d;
    assert_int_equal(rl_local_decide(l, policy, p, key, strlen(key), now, 1, &d), SL_OK);
    return d;
}

static void test_local_new_bounds(void **state)
{
    (void)state;
    assert_null(rl_local_new(0));
    struct rl_local *l = rl_local_new(1);
    assert_non_null(l);
    assert_int_equal(rl_local_keys(l), 0);
    assert_int_equal(rl_local_evictions(l), 0);
    rl_local_free(l);
    rl_local_free(NULL);
}

/* 10 × max_keys distinct keys: the table stays within max_keys, each eviction counted. */
static void test_local_bounded(void **state)
{
    (void)state;
    const size_t max = 1000, n = 10 * max;
    struct rl_params p = params(RL_SLIDING_LOG, 10, 1000, 0); /* evictions free the rings */
    struct rl_local *l = rl_local_new(max);
    assert_non_null(l);
    char key[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "client-%zu", i);
        assert_true(local(l, 1, &p, key, T0 + i).allowed);
        assert_true(rl_local_keys(l) <= max);
    }
    size_t keys = rl_local_keys(l);
    assert_true(keys <= max);
    assert_true(keys >= max * 9 / 10); /* stripes fill evenly: little of the bound is lost */
    assert_int_equal(rl_local_evictions(l), n - keys);
    rl_local_free(l);
}

/* One stripe (small table): the least recently used key is the one evicted. */
static void test_local_lru(void **state)
{
    (void)state;
    struct rl_params p = params(RL_FIXED_WINDOW, 2, 1000, 0);
    struct rl_local *l = rl_local_new(3);
    assert_int_equal(local(l, 1, &p, "a", T0).remaining, 1);
    assert_int_equal(local(l, 1, &p, "b", T0).remaining, 1);
    assert_int_equal(local(l, 1, &p, "c", T0).remaining, 1);
    assert_int_equal(local(l, 1, &p, "a", T0).remaining, 0); /* a is now the most recent */
    assert_int_equal(local(l, 1, &p, "d", T0).remaining, 1); /* evicts b */
    assert_int_equal(rl_local_evictions(l), 1);
    assert_false(local(l, 1, &p, "a", T0).allowed);          /* a kept its count */
    assert_int_equal(local(l, 1, &p, "c", T0).remaining, 0); /* c kept; d is now LRU */
    assert_int_equal(local(l, 1, &p, "b", T0).remaining, 1); /* b fresh; evicts d */
    assert_int_equal(local(l, 1, &p, "d", T0).remaining, 1); /* d fresh; evicts a */
    assert_int_equal(rl_local_evictions(l), 3);
    assert_int_equal(rl_local_keys(l), 3);
    rl_local_free(l);
}

static void test_local_keys_distinct(void **state)
{
    (void)state;
    struct rl_params p = params(RL_FIXED_WINDOW, 1, 1000, 0);
    struct rl_local *l = rl_local_new(10000);
    struct rl_decision d;
    /* the policy is part of the key */
    assert_true(local(l, 1, &p, "k", T0).allowed);
    assert_true(local(l, 2, &p, "k", T0).allowed);
    assert_false(local(l, 1, &p, "k", T0).allowed);
    /* a prefix is another key; so is the empty key (NULL is allowed for it) */
    assert_true(local(l, 1, &p, "kk", T0).allowed);
    assert_int_equal(rl_local_decide(l, 1, &p, NULL, 0, T0, 1, &d), SL_OK);
    assert_true(d.allowed);
    assert_int_equal(rl_local_decide(l, 1, &p, "", 0, T0, 1, &d), SL_OK);
    assert_false(d.allowed);
    /* keys around the inline size and the hashing threshold, all distinct, all exact */
    static const size_t lens[] = {7, 8, 9, 55, 56, 57, 255, 256, 257, 300, 4096};
    static char a[4096], b[4096];
    memset(a, 'x', sizeof(a));
    memcpy(b, a, sizeof(b));
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t n = lens[i];
        b[n - 1] = 'y'; /* differs only in the last byte */
        assert_int_equal(rl_local_decide(l, 3, &p, a, n, T0, 1, &d), SL_OK);
        assert_true(d.allowed);
        assert_int_equal(rl_local_decide(l, 3, &p, b, n, T0, 1, &d), SL_OK);
        assert_true(d.allowed);
        assert_int_equal(rl_local_decide(l, 3, &p, a, n, T0, 1, &d), SL_OK);
        assert_false(d.allowed);
        b[n - 1] = 'x';
    }
    /* a 32-byte key equal to the digest that stands for a long key is still another key */
    uint8_t digest[CRYPTO_SHA256_BYTES];
    crypto_sha256(a, 300, digest);
    assert_int_equal(rl_local_decide(l, 3, &p, digest, sizeof(digest), T0, 1, &d), SL_OK);
    assert_true(d.allowed);
    rl_local_free(l);
}

static void test_local_forget_and_retune(void **state)
{
    (void)state;
    struct rl_params p = params(RL_TOKEN_BUCKET, 100, 1000, 0);
    struct rl_params p2 = params(RL_TOKEN_BUCKET, 200, 1000, 0);
    struct rl_local *l = rl_local_new(1000);
    char key[16];
    struct rl_decision d;
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(rl_local_decide(l, 1, &p, key, strlen(key), T0, 50, &d), SL_OK);
        assert_int_equal(rl_local_decide(l, 2, &p, key, strlen(key), T0, 10, &d), SL_OK);
    }
    assert_int_equal(rl_local_keys(l), 100);
    rl_local_retune(l, 1, &p, &p2, T0);
    assert_int_equal(rl_local_decide(l, 1, &p2, "k7", 2, T0, 0, &d), SL_OK);
    assert_int_equal(d.remaining, 100); /* 50/100 → 100/200 */
    assert_int_equal(rl_local_decide(l, 2, &p, "k7", 2, T0, 0, &d), SL_OK);
    assert_int_equal(d.remaining, 90); /* the other policy untouched */

    rl_local_forget(l, 1);
    assert_int_equal(rl_local_keys(l), 50);
    assert_int_equal(rl_local_evictions(l), 0);
    assert_int_equal(rl_local_decide(l, 1, &p, "k7", 2, T0, 0, &d), SL_OK);
    assert_int_equal(d.remaining, 100); /* fresh */
    assert_int_equal(rl_local_decide(l, 2, &p, "k7", 2, T0, 0, &d), SL_OK);
    assert_int_equal(d.remaining, 90);
    rl_local_forget(l, 2);
    rl_local_forget(l, 99);
    assert_int_equal(rl_local_keys(l), 1);
    /* slots freed by forget are reused */
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "n%d", i);
        assert_true(local(l, 3, &p, key, T0).allowed);
    }
    assert_int_equal(rl_local_keys(l), 201);
    rl_local_free(l);
}

struct hammer {
    struct rl_local *l;
    struct rl_params p;
    const char *key;
    uint64_t now;
    int tries;
    uint64_t admitted;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    char other[32];
    for (int i = 0; i < h->tries; i++) {
        struct rl_decision d;
        if (rl_local_decide(h->l, 1, &h->p, h->key, strlen(h->key), h->now, 1, &d) != SL_OK)
            abort();
        if (d.allowed)
            h->admitted++;
        /* churn other keys through the same stripes: inserts, evictions, LRU moves */
        snprintf(other, sizeof(other), "%s-%d", h->key, i % 5000);
        if (rl_local_decide(h->l, 2, &h->p, other, strlen(other), h->now, 1, &d) != SL_OK)
            abort();
    }
    return NULL;
}

/* Two threads on one key within one window: exactly the limit, never more. */
static void test_local_threads_one_key(void **state)
{
    (void)state;
    struct rl_local *l = rl_local_new(2048);
    struct hammer h[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        h[i] = (struct hammer){l, params(RL_FIXED_WINDOW, 1000, 1000, 0), "shared", T0, 20000, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_run, &h[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(h[0].admitted + h[1].admitted, 1000);
    assert_true(rl_local_keys(l) <= 2048);
    assert_true(rl_local_evictions(l) > 0);
    rl_local_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_algorithm_names),
        cmocka_unit_test(test_params_check),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_fixed_window_sequence),
        cmocka_unit_test(test_sliding_log_sequence),
        cmocka_unit_test(test_sliding_window_sequence),
        cmocka_unit_test(test_token_bucket_sequence),
        cmocka_unit_test(test_gcra_sequence),
        cmocka_unit_test(test_leaky_bucket_sequence),
        cmocka_unit_test(test_token_bucket_as_gcra_sequence),
        cmocka_unit_test(test_three_per_second_is_exact),
        cmocka_unit_test(test_cost_above_capacity),
        cmocka_unit_test(test_clock_behind_state),
        cmocka_unit_test(test_extreme_params),
        cmocka_unit_test(test_fixed_window_property),
        cmocka_unit_test(test_sliding_log_property),
        cmocka_unit_test(test_sliding_window_property),
        cmocka_unit_test(test_token_bucket_property),
        cmocka_unit_test(test_leaky_bucket_property),
        cmocka_unit_test(test_gcra_property),
        cmocka_unit_test(test_gcra_leaky_token_agree),
        cmocka_unit_test(test_fixed_window_boundary_spike),
        cmocka_unit_test(test_sliding_window_worst_case),
        cmocka_unit_test(test_bucket_bounds_reached),
        cmocka_unit_test(test_retune_token_bucket_proportional),
        cmocka_unit_test(test_retune_gcra_and_leaky),
        cmocka_unit_test(test_retune_windows_keep_counts),
        cmocka_unit_test(test_retune_sliding_log),
        cmocka_unit_test(test_local_new_bounds),
        cmocka_unit_test(test_local_bounded),
        cmocka_unit_test(test_local_lru),
        cmocka_unit_test(test_local_keys_distinct),
        cmocka_unit_test(test_local_forget_and_retune),
        cmocka_unit_test(test_local_threads_one_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
