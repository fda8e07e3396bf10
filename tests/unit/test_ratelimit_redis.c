/*
 * test_ratelimit_redis — the Redis store of the rate limiters against real redis-server
 * processes (redis_fixture.h) on free loopback ports, always stopped by PID (group
 * teardown, and atexit should a test abort). Every wait runs the loop until a condition
 * holds or a deadline passes; nothing sleeps a fixed time.
 *
 * The scripts' arithmetic is checked against the pure rl_decide (ratelimit.h) on the same
 * sequence of instants, with the scripts' clock injected (rl_redis_fake_now); the tests
 * that need Redis TIME itself use windows long enough that a burst cannot straddle two.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "evloop.h"
#include "evloop_redis.h"
#include "log.h"
#include "ratelimit.h"
#include "ratelimit_redis.h"
#include "redis_fixture.h"

#define DEADLINE_MS 5000
#define T0_MS       UINT64_C(1800000000000) /* an injected Redis clock, epoch ms */

enum { SRV_MAIN, SRV_RESTART, SRV_COUNT };
static struct redis_fixture servers[SRV_COUNT];

/* --- harness ------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    static const char *const debug[] = {"--enable-debug-command", "yes", NULL};
    signal(SIGPIPE, SIG_IGN); /* evloop_redis.h: programs must ignore SIGPIPE */
    log_setup("test_ratelimit_redis", LOG_ERROR + 1, 2); /* expected failures stay quiet */
    for (int i = 0; i < SRV_COUNT; i++) {
        servers[i].args = debug;
        if (redis_fixture_start(&servers[i]) != SL_OK)
            return -1;
    }
    return 0;
}

/* --- helpers ------------------------------------------------------------------------ */

/* A synchronous connection for looking at what the scripts left in Redis. */
static redisReply *sync_command(const struct redis_fixture *s, const char *fmt, ...)
{
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    assert_true(c && !c->err);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(r);
    return r;
}

static long long sync_integer(const struct redis_fixture *s, const char *fmt, const char *arg)
{
    redisReply *r = sync_command(s, fmt, arg);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void sync_ok(const struct redis_fixture *s, const char *cmd)
{
    redisReply *r = sync_command(s, cmd);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

struct answer {
    int calls;
    int err;
    struct rl_decision d;
};

static void on_answer(const struct rl_decision *d, int err, void *arg)
{
    struct answer *a = arg;
    a->calls++;
    a->err = err;
    if (d)
        a->d = *d;
    else
        memset(&a->d, 0, sizeof(a->d));
}

static bool run_until_calls(struct evloop *loop, const int *calls, int want, unsigned timeout_ms)
{
    uint64_t end = clock_mono_ms() + timeout_ms;
    while (*calls < want) {
        if (clock_mono_ms() > end)
            return false;
        assert_int_equal(evloop_run_once(loop, 10), 0);
    }
    return true;
}

/* One agent: a loop, an evredis on a server and an rl_redis on it. */
struct agent {
    struct evredis *r;
    struct rl_redis *rr;
};

static void agent_open(struct agent *a, struct evloop *loop, const struct redis_fixture *s,
                       const struct rl_redis_opts *opts, unsigned command_timeout_ms)
{
    char url[64], err[128] = "";
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", s->port);
    a->r = evredis_new(loop, url, 500, command_timeout_ms, err);
    if (!a->r)
        fail_msg("evredis_new(%s): %s", url, err);
    a->rr = rl_redis_new(loop, a->r, opts);
    assert_non_null(a->rr);
}

static void agent_close(struct agent *a)
{
    rl_redis_free(a->rr);
    evredis_free(a->r);
}

static struct rl_redis_stats stats_of(const struct rl_redis *rr)
{
    struct rl_redis_stats st;
    rl_redis_get_stats(rr, &st);
    return st;
}

/* Decide and wait for the answer (at once or called back): the error, *d filled. */
static int decide_wait(struct evloop *loop, struct rl_redis *rr, const struct rl_redis_policy *pol,
                       const void *key, size_t key_len, uint64_t cost, struct rl_decision *d)
{
    struct answer a = {0};
    int rc = rl_redis_decide(rr, pol, key, key_len, cost, &a.d, on_answer, &a);
    if (rc == RL_REDIS_NOW) {
        *d = a.d;
        return SL_OK;
    }
    if (rc != SL_OK)
        return rc;
    assert_int_equal(a.calls, 0); /* never from inside rl_redis_decide */
    assert_true(run_until_calls(loop, &a.calls, 1, DEADLINE_MS));
    *d = a.d;
    return a.err;
}

static struct rl_redis_policy policy(const char *name, enum rl_algorithm alg, uint64_t limit,
                                     uint64_t window_ms, uint64_t burst, bool lease)
{
    return (struct rl_redis_policy){
        .name = name,
        .params = {.alg = alg, .limit = limit, .window_ms = window_ms, .burst = burst},
        .lease = lease,
    };
}

static void assert_decision_equal(const struct rl_decision *want, const struct rl_decision *got,
                                  const char *what, int step)
{
    if (want->allowed != got->allowed || want->limit != got->limit ||
        want->remaining != got->remaining || want->reset_ms != got->reset_ms ||
        want->retry_after_ms != got->retry_after_ms)
        fail_msg("%s step %d: pure {%d %llu %llu %llu %llu} redis {%d %llu %llu %llu %llu}", what,
                 step, want->allowed, (unsigned long long)want->limit,
                 (unsigned long long)want->remaining, (unsigned long long)want->reset_ms,
                 (unsigned long long)want->retry_after_ms, got->allowed,
                 (unsigned long long)got->limit, (unsigned long long)got->remaining,
                 (unsigned long long)got->reset_ms, (unsigned long long)got->retry_after_ms);
}

/* --- keys ----------------------------------------------------------------------------- */

static void test_key_names(void **state)
{
    (void)state;
    char k[RL_REDIS_KEY_MAX], k2[RL_REDIS_KEY_MAX];
    assert_int_equal(rl_redis_key("links-write", "abc", 3, RL_TOKEN_BUCKET, k), 30);
    assert_string_equal(k, "sluice:rl:{links-write:abc}:tb");
    rl_redis_key("p", "", 0, RL_FIXED_WINDOW, k);
    assert_string_equal(k, "sluice:rl:{p:}:fw"); /* key "global" */
    rl_redis_key("p", "1.2.3.4", 7, RL_SLIDING_LOG, k);
    assert_string_equal(k, "sluice:rl:{p:1.2.3.4}:sl");
    rl_redis_key("p", "k:with:colons", 13, RL_SLIDING_WINDOW, k);
    assert_string_equal(k, "sluice:rl:{p:k:with:colons}:sw");
    rl_redis_key("p", "x", 1, RL_LEAKY_BUCKET, k);
    assert_string_equal(k, "sluice:rl:{p:x}:lb");
    rl_redis_key("p", "x", 1, RL_GCRA, k);
    assert_string_equal(k, "sluice:rl:{p:x}:gcra");
    /* Braces, '#', spaces, binary, or longer than RL_REDIS_NAME_RAW_MAX: hashed (SHA-256,
     * 128 bits in hex), so the hash tag stays whole and the key bounded. */
    const char *hashed[] = {"a}b", "{x}", "#abc", "has space", "\xff\x01"};
    for (size_t i = 0; i < sizeof(hashed) / sizeof(hashed[0]); i++) {
        int n = rl_redis_key("p", hashed[i], strlen(hashed[i]), RL_GCRA, k);
        assert_int_equal(n, 11 + 2 + 33 + 2 + 4);
        assert_memory_equal(k, "sluice:rl:{p:#", 14);
        assert_int_equal(strchr(k, '{') - k, 10);
        assert_int_equal(strchr(k, '}') - k, 13 + 33);
        assert_null(strchr(strchr(k, '{') + 1, '{'));
    }
    char big[1000];
    memset(big, 'a', sizeof(big));
    assert_int_equal(rl_redis_key("p", big, RL_REDIS_NAME_RAW_MAX, RL_GCRA, k),
                     11 + 2 + RL_REDIS_NAME_RAW_MAX + 2 + 4);
    assert_int_equal(rl_redis_key("p", big, RL_REDIS_NAME_RAW_MAX + 1, RL_GCRA, k), 52);
    rl_redis_key("p", big, sizeof(big), RL_GCRA, k2);
    assert_string_not_equal(k, k2);
    /* A NUL inside a binary key is part of it. */
    rl_redis_key("p", "a\0b", 3, RL_GCRA, k);
    rl_redis_key("p", "a\0c", 3, RL_GCRA, k2);
    assert_string_not_equal(k, k2);
    /* Policies: ':' would make "a:b"+"c" and "a"+"b:c" the same tag, so it is hashed. */
    rl_redis_key("a:b", "c", 1, RL_GCRA, k);
    rl_redis_key("a", "b:c", 3, RL_GCRA, k2);
    assert_string_not_equal(k, k2);
    assert_memory_equal(k, "sluice:rl:{#", 12);
    /* The longest key fits. */
    big[sizeof(big) - 1] = '\0';
    assert_true(rl_redis_key(big, big, sizeof(big), RL_GCRA, k) < RL_REDIS_KEY_MAX);
    assert_int_equal(rl_redis_key("", "x", 1, RL_GCRA, k), SL_EINVAL);
    assert_int_equal(rl_redis_key(NULL, "x", 1, RL_GCRA, k), SL_EINVAL);
    assert_int_equal(rl_redis_key("p", "x", 1, (enum rl_algorithm)RL_ALGORITHMS, k), SL_EINVAL);
    char sha[41];
    assert_non_null(rl_redis_script_sha1(RL_GCRA, sha));
    assert_int_equal(strlen(sha), 40);
    assert_null(rl_redis_script_source((enum rl_algorithm)RL_ALGORITHMS));
}

/* --- the scripts against the pure algorithms ---------------------------------------- */

struct pure_case {
    enum rl_algorithm alg;
    uint64_t limit, window_ms, burst;
};

/* Instants (ms after T0) of a burst at one instant, then steps across windows. */
static const uint64_t steps_ms[] = {
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    1,    1,
    2,    3,    5,    8,    13,   21,   34,   55,   89,   144,  233,  377,  610,  987,  999,
    1000, 1001, 1002, 1500, 1999, 2000, 2000, 2000, 2000, 2000, 2000, 2001, 2500, 3000, 3001,
    3999, 4000, 4003, 4007, 4011, 9000, 9000, 9000, 9000, 9001, 9002, 9003, 9004,
};
/* A clock that goes back now and then (a failover to a Redis whose clock is behind).
 * Here the scripts differ from rl_decide by design: a decision that admits nothing writes
 * nothing, so the key does not remember the latest time that only denials saw (the pure
 * state does, and decides later requests at that time). With a clock that only moves
 * forward the two are the same (the other sequences check it). */
static const uint64_t steps_back_ms[] = {
    5000, 5000, 5000, 4990, 4990, 4000, 5001, 5002,  3000,  6000,  6000,  5999,  5500,  7000,
    6999, 6998, 6000, 8000, 8000, 8000, 7999, 12000, 11000, 12000, 12001, 12002, 12003,
};

static void compare_with_pure(struct evloop *loop, struct rl_redis *rr, const struct pure_case *c,
                              int index, const uint64_t *steps, size_t n_steps, unsigned cost_mod,
                              unsigned cost_add, bool denials_write_nothing)
{
    char name[64];
    snprintf(name, sizeof(name), "pure-%d-%s-%u-%u-%zu", index, rl_algorithm_name(c->alg), cost_mod,
             cost_add, n_steps);
    struct rl_redis_policy pol = policy(name, c->alg, c->limit, c->window_ms, c->burst, false);
    struct rl_state st = {0};
    for (size_t i = 0; i < n_steps; i++) {
        uint64_t now = T0_MS + steps[i];
        uint64_t cost = cost_add + i % cost_mod;
        struct rl_decision want, got;
        struct rl_state before = st; /* not the sliding log: its expiry is written too */
        assert_int_equal(rl_decide(&pol.params, &st, now, cost, &want), SL_OK);
        if (denials_write_nothing && c->alg != RL_SLIDING_LOG && (!want.allowed || !cost))
            st = before;
        rl_redis_fake_now(rr, now);
        assert_int_equal(decide_wait(loop, rr, &pol, "client", 6, cost, &got), SL_OK);
        assert_decision_equal(&want, &got, name, (int)i);
    }
    rl_state_release(&st);
}

static void test_scripts_match_pure(void **state)
{
    (void)state;
    static const struct pure_case cases[] = {
        {RL_FIXED_WINDOW, 5, 1000, 0},
        {RL_FIXED_WINDOW, 1, 7, 0},
        {RL_FIXED_WINDOW, 100, 60000, 0},
        {RL_SLIDING_LOG, 5, 1000, 0},
        {RL_SLIDING_LOG, 3, 333, 0},
        {RL_SLIDING_LOG, 50, 2000, 0},
        {RL_SLIDING_WINDOW, 5, 1000, 0},
        {RL_SLIDING_WINDOW, 7, 300, 0},
        {RL_SLIDING_WINDOW, 100, 3000, 0},
        {RL_TOKEN_BUCKET, 5, 1000, 0},
        {RL_TOKEN_BUCKET, 5, 1000, 8},
        {RL_TOKEN_BUCKET, 3, 1000, 1},
        {RL_TOKEN_BUCKET, 7, 999, 2},
        {RL_TOKEN_BUCKET, 1000, 1000, 0},
        {RL_LEAKY_BUCKET, 5, 1000, 0},
        {RL_LEAKY_BUCKET, 5, 1000, 3},
        {RL_LEAKY_BUCKET, 7, 1000, 2},
        {RL_GCRA, 5, 1000, 0},
        {RL_GCRA, 5, 1000, 4},
        {RL_GCRA, 3, 1001, 1},
        {RL_GCRA, 1000, 60000, 10},
    };
    struct evloop *loop = evloop_new();
    struct agent a;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct pure_case *c = &cases[i];
        const size_t n = sizeof(steps_ms) / sizeof(steps_ms[0]);
        const size_t n_back = sizeof(steps_back_ms) / sizeof(steps_back_ms[0]);
        compare_with_pure(loop, a.rr, c, (int)i, steps_ms, n, 1, 1, false);
        compare_with_pure(loop, a.rr, c, (int)i, steps_ms, n, 3, 1, false); /* 1, 2, 3, 1, ... */
        compare_with_pure(loop, a.rr, c, (int)i, steps_ms, n, 5, 0, false); /* peeks, > cap */
        compare_with_pure(loop, a.rr, c, (int)i, steps_back_ms, n_back, 2, 1, true);
    }
    struct rl_redis_stats st = stats_of(a.rr);
    assert_int_equal(st.errors_script + st.errors_connect + st.errors_timeout, 0);
    assert_int_equal(st.lease_calls, 0);
    agent_close(&a);
    evloop_free(loop);
}

/* With Redis TIME: a burst inside one long window admits exactly the quota. */
static void test_redis_time_burst(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    for (int alg = 0; alg < RL_ALGORITHMS; alg++) {
        char name[32];
        snprintf(name, sizeof(name), "time-%d", alg);
        struct rl_redis_policy pol = policy(name, (enum rl_algorithm)alg, 10, 3600000, 0, false);
        if (alg == RL_LEAKY_BUCKET || alg == RL_GCRA)
            pol.params.burst = 9; /* capacity burst + 1 = 10 at one instant */
        int admitted = 0;
        for (int i = 0; i < 15; i++) {
            struct rl_decision d;
            assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_OK);
            assert_int_equal(d.limit, 10);
            if (d.allowed) {
                admitted++;
                assert_int_equal(d.retry_after_ms, 0);
            } else {
                assert_true(d.retry_after_ms >= 1);
                assert_true(d.reset_ms <= 2 * 3600000);
            }
        }
        assert_int_equal(admitted, 10);
    }
    agent_close(&a);
    evloop_free(loop);
}

/* Every key a script writes has a TTL, and no longer than the state can matter. */
static void test_every_key_has_ttl(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    const uint64_t window_ms = 10000;
    for (int alg = 0; alg < RL_ALGORITHMS; alg++) {
        for (int lease = 0; lease < 2; lease++) {
            char name[32], key[RL_REDIS_KEY_MAX];
            snprintf(name, sizeof(name), "ttl-%d-%d", alg, lease);
            struct rl_redis_policy pol =
                policy(name, (enum rl_algorithm)alg, 4, window_ms, 2, lease != 0);
            rl_redis_key(name, "who", 3, (enum rl_algorithm)alg, key);
            for (int i = 0; i < 8; i++) { /* admitted, then denied: TTL stays set */
                struct rl_decision d;
                assert_int_equal(decide_wait(loop, a.rr, &pol, "who", 3, 1, &d), SL_OK);
                long long pttl = sync_integer(&servers[SRV_MAIN], "PTTL %s", key);
                if (pttl <= 0 || pttl > (long long)(2 * window_ms))
                    fail_msg("%s after %d decisions: PTTL %lld", key, i + 1, pttl);
            }
        }
    }
    agent_close(&a);
    evloop_free(loop);
}

/* Client keys with braces, binary bytes or huge lengths decide like any other, under one
 * hash tag, and two such keys never share state. */
static void test_hostile_client_keys(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    struct rl_redis_policy pol = policy("hostile", RL_FIXED_WINDOW, 2, 3600000, 0, false);
    static char big[100000];
    memset(big, '}', sizeof(big));
    struct {
        const char *bytes;
        size_t len;
    } keys[] = {
        {"}{", 2},
        {"a\0b\r\n*1\r\n$4\r\nPING\r\n", 20},
        {"'); redis.call('FLUSHALL') --", 30},
        {big, sizeof(big)},
        {big, sizeof(big) - 1},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        for (int n = 0; n < 3; n++) {
            struct rl_decision d;
            assert_int_equal(decide_wait(loop, a.rr, &pol, keys[i].bytes, keys[i].len, 1, &d),
                             SL_OK);
            assert_int_equal(d.allowed, n < 2); /* each key has its own quota of 2 */
        }
        char key[RL_REDIS_KEY_MAX];
        rl_redis_key("hostile", keys[i].bytes, keys[i].len, RL_FIXED_WINDOW, key);
        assert_int_equal(sync_integer(&servers[SRV_MAIN], "EXISTS %s", key), 1);
    }
    /* Nothing was flushed or run from the key bytes. */
    assert_true(sync_integer(&servers[SRV_MAIN], "DBSIZE", NULL) >= 6);
    agent_close(&a);
    evloop_free(loop);
}

/* Decisions pipelined in one loop iteration are answered in order, exactly as the pure
 * algorithm would answer them one after the other. */
static void test_pipelined_burst(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    enum { N = 500 };
    static struct answer ans[N];
    memset(ans, 0, sizeof(ans));
    struct rl_redis_policy pol = policy("pipelined", RL_SLIDING_WINDOW, 300, 60000, 0, false);
    rl_redis_fake_now(a.rr, T0_MS + 12345);
    struct rl_state st = {0};
    for (int i = 0; i < N; i++)
        assert_int_equal(rl_redis_decide(a.rr, &pol, "k", 1, 1, &ans[i].d, on_answer, &ans[i]),
                         SL_OK);
    assert_true(run_until_calls(loop, &ans[N - 1].calls, 1, DEADLINE_MS));
    for (int i = 0; i < N; i++) {
        struct rl_decision want;
        assert_int_equal(rl_decide(&pol.params, &st, T0_MS + 12345, 1, &want), SL_OK);
        assert_int_equal(ans[i].calls, 1);
        assert_int_equal(ans[i].err, SL_OK);
        assert_decision_equal(&want, &ans[i].d, "pipelined", i);
    }
    rl_state_release(&st);
    agent_close(&a);
    evloop_free(loop);
}

/* Two agents (two evredis connections, two rl_redis) share one exact limit. */
static void test_two_agents_exact(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a, b;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    agent_open(&b, loop, &servers[SRV_MAIN], NULL, 2000);
    for (int alg = 0; alg < RL_ALGORITHMS; alg++) {
        char name[32];
        snprintf(name, sizeof(name), "shared-%d", alg);
        struct rl_redis_policy pol = policy(name, (enum rl_algorithm)alg, 50, 3600000, 49, false);
        if (alg == RL_TOKEN_BUCKET)
            pol.params.burst = 0; /* bucket size = limit */
        enum { N = 80 };
        static struct answer ans[2][N];
        memset(ans, 0, sizeof(ans));
        for (int i = 0; i < N; i++) { /* interleaved, all in flight together */
            assert_int_equal(
                rl_redis_decide(a.rr, &pol, "c", 1, 1, &ans[0][i].d, on_answer, &ans[0][i]), SL_OK);
            assert_int_equal(
                rl_redis_decide(b.rr, &pol, "c", 1, 1, &ans[1][i].d, on_answer, &ans[1][i]), SL_OK);
        }
        assert_true(run_until_calls(loop, &ans[0][N - 1].calls, 1, DEADLINE_MS));
        assert_true(run_until_calls(loop, &ans[1][N - 1].calls, 1, DEADLINE_MS));
        int admitted = 0;
        for (int i = 0; i < N; i++)
            admitted += ans[0][i].d.allowed + ans[1][i].d.allowed;
        assert_int_equal(admitted, 50);
    }
    agent_close(&a);
    agent_close(&b);
    evloop_free(loop);
}

/* --- the lease fast path ------------------------------------------------------------ */

static void test_lease_counts_round_trips(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    struct rl_redis_policy pol = policy("lease-count", RL_FIXED_WINDOW, 100, 60000, 0, true);
    rl_redis_fake_now(a.rr, T0_MS + 1000);
    int admitted = 0, at_once = 0;
    for (int i = 0; i < 1000; i++) {
        struct answer ans = {0};
        int rc = rl_redis_decide(a.rr, &pol, "k", 1, 1, &ans.d, on_answer, &ans);
        if (rc == RL_REDIS_NOW) {
            at_once++;
        } else {
            assert_int_equal(rc, SL_OK);
            assert_true(run_until_calls(loop, &ans.calls, 1, DEADLINE_MS));
            assert_int_equal(ans.err, SL_OK);
        }
        assert_int_equal(ans.d.limit, 100);
        if (ans.d.allowed) {
            admitted++;
            assert_int_equal(ans.d.remaining, (uint64_t)(100 - admitted));
        } else {
            /* the window's end, on the local clock once cached */
            assert_true(ans.d.retry_after_ms <= 59000 && ans.d.retry_after_ms > 50000);
            assert_int_equal(ans.d.remaining, 0);
        }
    }
    assert_int_equal(admitted, 100);
    struct rl_redis_stats st = stats_of(a.rr);
    /* slice = 100 / 10: ten leases, then one denied call cached until the window ends */
    assert_int_equal(st.lease_calls, 11);
    assert_int_equal(st.redis_calls, 11);
    assert_int_equal(st.leased_units, 100);
    assert_int_equal(st.lease_hits, 90);
    assert_int_equal(st.deny_cache_hits, 899);
    assert_int_equal(at_once, 90 + 899);
    assert_int_equal(st.decisions, 1000);
    assert_int_equal(st.allowed, 100);
    assert_int_equal(st.denied, 900);
    assert_int_equal(st.keys, 1);
    /* A cost above the slice goes the exact way. */
    struct rl_decision d;
    rl_redis_forget(a.rr, NULL);
    assert_int_equal(decide_wait(loop, a.rr, &pol, "k2", 2, 11, &d), SL_OK);
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 89);
    assert_int_equal(stats_of(a.rr).lease_calls, 11);
    assert_int_equal(stats_of(a.rr).redis_calls, 12);
    agent_close(&a);
    evloop_free(loop);
}

/* Requests that arrive while a lease call is in flight wait for it: one call per slice. */
static void test_lease_waiters_share_calls(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    struct rl_redis_policy pol = policy("lease-wait", RL_TOKEN_BUCKET, 100, 60000, 0, true);
    rl_redis_fake_now(a.rr, T0_MS);
    enum { N = 35 };
    struct answer ans[N];
    memset(ans, 0, sizeof(ans));
    for (int i = 0; i < N; i++)
        assert_int_equal(rl_redis_decide(a.rr, &pol, "k", 1, 1, &ans[i].d, on_answer, &ans[i]),
                         SL_OK);
    assert_int_equal(stats_of(a.rr).redis_calls, 1); /* one in flight, 34 waiting */
    assert_true(run_until_calls(loop, &ans[N - 1].calls, 1, DEADLINE_MS));
    for (int i = 0; i < N; i++) {
        assert_int_equal(ans[i].calls, 1);
        assert_int_equal(ans[i].err, SL_OK);
        assert_true(ans[i].d.allowed);
    }
    struct rl_redis_stats st = stats_of(a.rr);
    assert_int_equal(st.lease_calls, 4); /* 10 + 10 + 10 + 10 units for 35 requests */
    assert_int_equal(st.leased_units, 40);
    /* The next five come from the lease at once. */
    for (int i = 0; i < 5; i++) {
        struct answer one = {0};
        assert_int_equal(rl_redis_decide(a.rr, &pol, "k", 1, 1, &one.d, on_answer, &one),
                         RL_REDIS_NOW);
        assert_true(one.d.allowed);
        assert_int_equal(one.calls, 0);
    }
    agent_close(&a);
    evloop_free(loop);
}

/* Leased units expire after lease_ttl_ms on the local clock (never more than a window),
 * and the slice follows the number of instances sharing the limit. */
static void test_lease_expiry_and_slice(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a;
    struct rl_redis_opts opts = {.lease_ttl_ms = 50};
    agent_open(&a, loop, &servers[SRV_MAIN], &opts, 2000);
    struct rl_redis_policy pol = policy("lease-ttl", RL_FIXED_WINDOW, 1000, 3600000, 0, true);
    struct rl_decision d;
    assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_OK); /* 100 leased */
    assert_int_equal(stats_of(a.rr).leased_units, 100);
    assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_OK);
    assert_int_equal(stats_of(a.rr).lease_calls, 1);
    uint64_t start = clock_mono_ms();
    while (clock_mono_ms() - start < 60)
        assert_int_equal(evloop_run_once(loop, 10), 0);
    assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_OK);
    struct rl_redis_stats st = stats_of(a.rr);
    assert_int_equal(st.lease_calls, 2); /* the 98 left expired unspent */
    assert_int_equal(d.remaining, 1000 - 200 + 99);
    /* Four instances share the limit: slices of 1000 / (10 × 4). */
    rl_redis_set_instances(a.rr, 4);
    rl_redis_forget(a.rr, "lease-ttl");
    assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_OK);
    st = stats_of(a.rr);
    assert_int_equal(st.lease_calls, 3);
    assert_int_equal(st.leased_units, 225);
    agent_close(&a);
    evloop_free(loop);
}

/* Two agents with leases on one limit: a lease taken at the end of a window is spent in
 * the next, which is the documented over-admission (≤ agents × slice per window). */
static void test_lease_two_agents_bound(void **state)
{
    (void)state;
    static const struct {
        enum rl_algorithm alg;
        uint64_t burst;
    } algs[] = {
        {RL_FIXED_WINDOW, 0}, {RL_SLIDING_LOG, 0},   {RL_SLIDING_WINDOW, 0},
        {RL_TOKEN_BUCKET, 0}, {RL_LEAKY_BUCKET, 99}, {RL_GCRA, 99},
    };
    const uint64_t limit = 100, window_ms = 60000, slice = 5; /* 100 / (10 × 2 agents) */
    struct evloop *loop = evloop_new();
    struct rl_redis_opts opts = {.instances = 2};
    for (size_t k = 0; k < sizeof(algs) / sizeof(algs[0]); k++) {
        struct agent ag[2];
        agent_open(&ag[0], loop, &servers[SRV_MAIN], &opts, 2000);
        agent_open(&ag[1], loop, &servers[SRV_MAIN], &opts, 2000);
        char name[32];
        snprintf(name, sizeof(name), "lease-bound-%d", (int)algs[k].alg);
        struct rl_redis_policy pol =
            policy(name, algs[k].alg, limit, window_ms, algs[k].burst, true);
        /* The last millisecond of a window: agent 0 spends 1 of its slice, agent 1 3. */
        int first = 0;
        for (int i = 0; i < 2; i++) {
            rl_redis_fake_now(ag[i].rr, T0_MS + window_ms - 1);
            for (int n = 0; n < (i == 0 ? 1 : 3); n++) {
                struct rl_decision d;
                assert_int_equal(decide_wait(loop, ag[i].rr, &pol, "c", 1, 1, &d), SL_OK);
                first += d.allowed;
            }
        }
        assert_int_equal(first, 4);
        /* The next window: both agents hammer it. */
        int admitted = 0;
        for (int i = 0; i < 2; i++)
            rl_redis_fake_now(ag[i].rr, T0_MS + window_ms);
        for (int n = 0; n < 300; n++) {
            struct rl_decision d;
            assert_int_equal(decide_wait(loop, ag[n % 2].rr, &pol, "c", 1, 1, &d), SL_OK);
            admitted += d.allowed;
        }
        if ((uint64_t)admitted > limit + 2 * slice)
            fail_msg("%s: %d admitted in one window, bound %llu", name, admitted,
                     (unsigned long long)(limit + 2 * slice));
        if (algs[k].alg == RL_FIXED_WINDOW) /* the new window's 100 + the 4 + 2 carried */
            assert_int_equal(admitted, 106);
        for (int i = 0; i < 2; i++) {
            struct rl_redis_stats st = stats_of(ag[i].rr);
            assert_int_equal(st.errors_script + st.errors_connect + st.errors_timeout, 0);
            agent_close(&ag[i]);
        }
    }
    evloop_free(loop);
}

/* Steady load at five times the limit with Redis TIME: Redis operations per request. */
struct load {
    struct rl_redis *rr;
    const struct rl_redis_policy *pol;
    uint64_t start_ms;
    int issued, answered, admitted, errors;
};

static void on_load_answer(const struct rl_decision *d, int err, void *arg)
{
    struct load *l = arg;
    l->answered++;
    if (err)
        l->errors++;
    else
        l->admitted += d->allowed;
}

/* Offers 5 requests per ms since the start, however often the timer gets to run. */
static void load_tick(struct evloop *loop, void *arg)
{
    (void)loop;
    struct load *l = arg;
    int due = (int)(clock_mono_ms() - l->start_ms) * 5 - l->issued;
    for (int i = 0; i < due; i++) {
        struct rl_decision d;
        int rc = rl_redis_decide(l->rr, l->pol, "steady", 6, 1, &d, on_load_answer, l);
        l->issued++;
        if (rc == RL_REDIS_NOW)
            on_load_answer(&d, 0, l);
        else if (rc != SL_OK)
            on_load_answer(NULL, rc, l);
    }
}

static void test_lease_ops_per_request(void **state)
{
    (void)state;
    static const struct {
        enum rl_algorithm alg;
        uint64_t burst;
    } algs[] = {
        {RL_FIXED_WINDOW, 0},
        {RL_SLIDING_WINDOW, 0},
        {RL_TOKEN_BUCKET, 0},
        {RL_GCRA, 199},
    };
    struct evloop *loop = evloop_new();
    for (size_t k = 0; k < sizeof(algs) / sizeof(algs[0]); k++) {
        struct agent a;
        agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
        char name[32];
        snprintf(name, sizeof(name), "steady-%d", (int)algs[k].alg);
        /* 1000 requests/s allowed, 5 per ms offered */
        struct rl_redis_policy pol = policy(name, algs[k].alg, 200, 200, algs[k].burst, true);
        uint64_t start = clock_mono_ms();
        struct load l = {.rr = a.rr, .pol = &pol, .start_ms = start};
        uint64_t tick;
        assert_int_equal(evloop_timer_add(loop, 0, 1, load_tick, &l, &tick), 0);
        while (clock_mono_ms() - start < 600)
            assert_int_equal(evloop_run_once(loop, 10), 0);
        evloop_cancel(loop, tick);
        uint64_t elapsed = clock_mono_ms() - start;
        assert_true(run_until_calls(loop, &l.answered, l.issued, DEADLINE_MS));
        struct rl_redis_stats st = stats_of(a.rr);
        double ops = (double)st.redis_calls / l.issued;
        print_message("      %-16s %5d requests in %llu ms, %4d admitted, %3llu Redis calls: "
                      "%.4f per request\n",
                      rl_algorithm_name(algs[k].alg), l.issued, (unsigned long long)elapsed,
                      l.admitted, (unsigned long long)st.redis_calls, ops);
        assert_int_equal(l.errors, 0);
        assert_true(ops <= 0.05);
        /* Never more than the quota of the windows the run touched, plus the bound. */
        assert_true((uint64_t)l.admitted <= (elapsed / 200 + 2) * 200 + 20);
        agent_close(&a);
    }
    evloop_free(loop);
}

/* --- failures ----------------------------------------------------------------------- */

/* Redis stopped mid-run: every request is answered quickly with an error (leased units
 * are still spent locally), nothing is cached from the failure, and decisions resume by
 * themselves once Redis is back (with an empty script cache). */
static void test_redis_stopped_mid_run(void **state)
{
    (void)state;
    struct redis_fixture *s = &servers[SRV_RESTART];
    struct evloop *loop = evloop_new();
    struct agent a;
    agent_open(&a, loop, s, NULL, 1000);
    struct rl_redis_policy exact = policy("outage", RL_SLIDING_WINDOW, 1000, 60000, 0, false);
    struct rl_redis_policy lease = policy("outage-lease", RL_FIXED_WINDOW, 100, 3600000, 0, true);
    struct rl_decision d;
    for (int i = 0; i < 5; i++)
        assert_int_equal(decide_wait(loop, a.rr, &exact, "k", 1, 1, &d), SL_OK);
    assert_int_equal(decide_wait(loop, a.rr, &lease, "k", 1, 1, &d), SL_OK); /* 9 units left */
    redis_fixture_stop(s);
    uint64_t start = clock_mono_ms();
    for (int i = 0; i < 20; i++) {
        uint64_t t = clock_mono_ms();
        assert_int_equal(decide_wait(loop, a.rr, &exact, "k", 1, 1, &d), SL_ECONNECT);
        assert_true(clock_mono_ms() - t < 1000);
    }
    for (int i = 0; i < 9; i++) { /* the lease outlives the outage */
        struct answer ans = {0};
        assert_int_equal(rl_redis_decide(a.rr, &lease, "k", 1, 1, &ans.d, on_answer, &ans),
                         RL_REDIS_NOW);
        assert_true(ans.d.allowed);
    }
    assert_int_equal(decide_wait(loop, a.rr, &lease, "k", 1, 1, &d), SL_ECONNECT);
    assert_true(clock_mono_ms() - start < 3000);
    struct rl_redis_stats st = stats_of(a.rr);
    assert_int_equal(st.errors_connect, 21);
    assert_int_equal(st.errors_timeout + st.errors_script, 0);
    /* Restarted: decisions come back once the back-off lets evredis dial again. */
    assert_int_equal(redis_fixture_start(s), SL_OK);
    uint64_t end = clock_mono_ms() + DEADLINE_MS + EVREDIS_BACKOFF_MAX_MS;
    int rc;
    while ((rc = decide_wait(loop, a.rr, &exact, "k", 1, 1, &d)) != SL_OK) {
        assert_int_equal(rc, SL_ECONNECT);
        assert_true(clock_mono_ms() < end);
        uint64_t until = clock_mono_ms() + 20;
        while (clock_mono_ms() < until)
            assert_int_equal(evloop_run_once(loop, 5), 0);
    }
    assert_true(d.allowed);
    assert_int_equal(d.remaining, 999); /* a fresh Redis: the state was lost with it */
    assert_true(stats_of(a.rr).noscript_fallbacks >= 1);
    assert_int_equal(decide_wait(loop, a.rr, &lease, "k", 1, 1, &d), SL_OK);
    assert_true(d.allowed);
    agent_close(&a);
    evloop_free(loop);
}

/* SCRIPT FLUSH mid-run: the next decisions go EVALSHA → NOSCRIPT → EVAL, pipelined ones
 * included, in order and with the same answers. */
static void test_script_flush_mid_run(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    for (int alg = 0; alg < RL_ALGORITHMS; alg++) {
        char name[32];
        snprintf(name, sizeof(name), "flush-%d", alg);
        struct rl_redis_policy pol = policy(name, (enum rl_algorithm)alg, 10, 60000, 3, false);
        struct rl_state pure = {0};
        struct rl_decision want, d;
        rl_redis_fake_now(a.rr, T0_MS + 777);
        assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_OK);
        assert_int_equal(rl_decide(&pol.params, &pure, T0_MS + 777, 1, &want), SL_OK);
        assert_decision_equal(&want, &d, name, 0);
        sync_ok(&servers[SRV_MAIN], "SCRIPT FLUSH");
        uint64_t fallbacks = stats_of(a.rr).noscript_fallbacks;
        enum { N = 8 };
        struct answer ans[N];
        memset(ans, 0, sizeof(ans));
        for (int i = 0; i < N; i++)
            assert_int_equal(rl_redis_decide(a.rr, &pol, "k", 1, 1, &ans[i].d, on_answer, &ans[i]),
                             SL_OK);
        assert_true(run_until_calls(loop, &ans[N - 1].calls, 1, DEADLINE_MS));
        for (int i = 0; i < N; i++) {
            assert_int_equal(ans[i].err, SL_OK);
            assert_int_equal(rl_decide(&pol.params, &pure, T0_MS + 777, 1, &want), SL_OK);
            assert_decision_equal(&want, &ans[i].d, name, i + 1);
        }
        fallbacks += N; /* every EVALSHA of the pipeline met the empty cache */
        assert_int_equal(stats_of(a.rr).noscript_fallbacks, fallbacks);
        /* Loaded again: no more fallbacks. */
        assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_OK);
        assert_int_equal(stats_of(a.rr).noscript_fallbacks, fallbacks);
        rl_state_release(&pure);
    }
    assert_int_equal(stats_of(a.rr).errors_script, 0);
    agent_close(&a);
    evloop_free(loop);
}

/* A key of the wrong type (written by something else): a script error, SL_ESTORE. */
static void test_script_error(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    char key[RL_REDIS_KEY_MAX];
    rl_redis_key("wrongtype", "k", 1, RL_SLIDING_LOG, key);
    redisReply *r = sync_command(&servers[SRV_MAIN], "SET %s oops", key);
    freeReplyObject(r);
    struct rl_redis_policy pol = policy("wrongtype", RL_SLIDING_LOG, 10, 1000, 0, false);
    struct rl_decision d;
    assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_ESTORE);
    pol.lease = true;
    assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_ESTORE);
    struct rl_redis_stats st = stats_of(a.rr);
    assert_int_equal(st.errors_script, 2);
    assert_int_equal(st.decisions, 0);
    /* Not cached: once the key is gone, decisions work. */
    assert_int_equal(sync_integer(&servers[SRV_MAIN], "DEL %s", key), 1);
    assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_OK);
    assert_true(d.allowed);
    agent_close(&a);
    evloop_free(loop);
}

static void ignore_reply(const redisReply *reply, int err, void *arg)
{
    (void)reply;
    (void)err;
    (void)arg;
}

/* Redis busy past the command timeout: SL_ETIMEOUT, counted apart. */
static void test_command_timeout(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 100);
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", servers[SRV_MAIN].port);
    struct evredis *sleeper = evredis_new(loop, url, 500, 2000, NULL);
    assert_non_null(sleeper);
    struct rl_redis_policy pol = policy("timeout", RL_GCRA, 10, 1000, 0, false);
    struct rl_decision d;
    assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_OK); /* connected */
    assert_int_equal(evredis_command(sleeper, ignore_reply, NULL, "DEBUG SLEEP 0.3"), 0);
    evloop_run_once(loop, 0); /* the sleep goes out first */
    uint64_t t = clock_mono_ms();
    assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_ETIMEOUT);
    assert_true(clock_mono_ms() - t < 300);
    assert_int_equal(stats_of(a.rr).errors_timeout, 1);
    evredis_free(sleeper);
    agent_close(&a);
    evloop_free(loop);
}

/* --- lifetimes, arguments, bounds ----------------------------------------------------- */

static void test_free_with_pending(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct rl_redis_policy exact = policy("free", RL_FIXED_WINDOW, 10, 1000, 0, false);
    struct rl_redis_policy lease = policy("free-lease", RL_FIXED_WINDOW, 10, 1000, 0, true);
    /* The rl_redis first: its callers are answered SL_EGONE at once; the evredis replies
     * that come later find orphaned records. */
    struct agent a;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    struct answer ans[3];
    memset(ans, 0, sizeof(ans));
    assert_int_equal(rl_redis_decide(a.rr, &exact, "k", 1, 1, &ans[0].d, on_answer, &ans[0]), 0);
    assert_int_equal(rl_redis_decide(a.rr, &lease, "k", 1, 1, &ans[1].d, on_answer, &ans[1]), 0);
    assert_int_equal(rl_redis_decide(a.rr, &lease, "k", 1, 1, &ans[2].d, on_answer, &ans[2]), 0);
    rl_redis_free(a.rr);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ans[i].calls, 1);
        assert_int_equal(ans[i].err, SL_EGONE);
    }
    for (int i = 0; i < 20; i++)
        assert_int_equal(evloop_run_once(loop, 10), 0); /* the replies arrive */
    evredis_free(a.r);
    for (int i = 0; i < 3; i++)
        assert_int_equal(ans[i].calls, 1);
    /* The evredis first: its callbacks answer SL_EGONE through the rl_redis. */
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    memset(ans, 0, sizeof(ans));
    assert_int_equal(rl_redis_decide(a.rr, &exact, "k", 1, 1, &ans[0].d, on_answer, &ans[0]), 0);
    assert_int_equal(rl_redis_decide(a.rr, &lease, "k", 1, 1, &ans[1].d, on_answer, &ans[1]), 0);
    evredis_free(a.r);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ans[i].calls, 1);
        assert_int_equal(ans[i].err, SL_EGONE);
    }
    assert_int_equal(stats_of(a.rr).errors_gone, 2);
    rl_redis_free(a.rr);
    evloop_free(loop);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a;
    agent_open(&a, loop, &servers[SRV_MAIN], NULL, 2000);
    assert_null(rl_redis_new(NULL, a.r, NULL));
    assert_null(rl_redis_new(loop, NULL, NULL));
    struct answer ans = {0};
    struct rl_redis_policy ok = policy("args", RL_TOKEN_BUCKET, 10, 1000, 0, false);
    struct rl_redis_policy bad = ok;
    assert_int_equal(rl_redis_decide(a.rr, &ok, "k", 1, 1, NULL, on_answer, &ans), SL_EINVAL);
    assert_int_equal(rl_redis_decide(a.rr, &ok, "k", 1, 1, &ans.d, NULL, &ans), SL_EINVAL);
    assert_int_equal(rl_redis_decide(a.rr, NULL, "k", 1, 1, &ans.d, on_answer, &ans), SL_EINVAL);
    assert_int_equal(rl_redis_decide(a.rr, &ok, NULL, 1, 1, &ans.d, on_answer, &ans), SL_EINVAL);
    bad.params.limit = 0;
    assert_int_equal(rl_redis_decide(a.rr, &bad, "k", 1, 1, &ans.d, on_answer, &ans), SL_EINVAL);
    bad = ok;
    bad.params.window_ms = 0;
    assert_int_equal(rl_redis_decide(a.rr, &bad, "k", 1, 1, &ans.d, on_answer, &ans), SL_EINVAL);
    bad = ok;
    bad.params.alg = (enum rl_algorithm)RL_ALGORITHMS;
    assert_int_equal(rl_redis_decide(a.rr, &bad, "k", 1, 1, &ans.d, on_answer, &ans), SL_EINVAL);
    bad = ok;
    bad.name = "";
    assert_int_equal(rl_redis_decide(a.rr, &bad, "k", 1, 1, &ans.d, on_answer, &ans), SL_EINVAL);
    /* Valid for the pure algorithms, beyond what doubles compute exactly. */
    bad = ok;
    bad.params.limit = RL_LIMIT_MAX;
    bad.params.window_ms = RL_WINDOW_MAX_MS;
    assert_int_equal(rl_redis_decide(a.rr, &bad, "k", 1, 1, &ans.d, on_answer, &ans), SL_ERANGE);
    assert_false(rl_redis_params_exact(&bad.params));
    assert_true(rl_redis_params_exact(&ok.params));
    bad.params.alg = RL_FIXED_WINDOW; /* counts only: any valid params */
    assert_true(rl_redis_params_exact(&bad.params));
    bad.params.alg = RL_GCRA;
    bad.params.limit = 1000000;
    bad.params.window_ms = 86400000;
    assert_true(rl_redis_params_exact(&bad.params)); /* a million a day */
    bad.params.burst = RL_BURST_MAX;
    assert_false(rl_redis_params_exact(&bad.params));
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(ans.calls, 0);
    assert_int_equal(stats_of(a.rr).redis_calls, 0);
    agent_close(&a);
    evloop_free(loop);
}

static void test_forget_and_eviction(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct agent a;
    struct rl_redis_opts opts = {.max_keys = 4};
    agent_open(&a, loop, &servers[SRV_MAIN], &opts, 2000);
    struct rl_redis_policy pol = policy("forget", RL_FIXED_WINDOW, 1, 60000, 0, true);
    struct rl_redis_policy other = policy("forget-not", RL_FIXED_WINDOW, 1, 60000, 0, true);
    rl_redis_fake_now(a.rr, T0_MS);
    struct rl_decision d;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_OK);
        assert_int_equal(d.allowed, i == 0);
        assert_int_equal(decide_wait(loop, a.rr, &other, "k", 1, 1, &d), SL_OK);
    }
    struct rl_redis_stats st = stats_of(a.rr);
    assert_int_equal(st.lease_calls, 4); /* one lease and one denial each */
    assert_int_equal(st.deny_cache_hits, 2);
    /* A forgotten policy asks Redis again (the retuned limit applies at once). */
    rl_redis_forget(a.rr, "forget");
    pol.params.limit = 2;
    assert_int_equal(decide_wait(loop, a.rr, &pol, "k", 1, 1, &d), SL_OK);
    assert_true(d.allowed);
    assert_int_equal(decide_wait(loop, a.rr, &other, "k", 1, 1, &d), SL_OK);
    assert_false(d.allowed);
    st = stats_of(a.rr);
    assert_int_equal(st.lease_calls, 5);
    assert_int_equal(st.deny_cache_hits, 3);
    /* The table holds at most max_keys keys. */
    for (int i = 0; i < 10; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(decide_wait(loop, a.rr, &pol, key, strlen(key), 1, &d), SL_OK);
    }
    st = stats_of(a.rr);
    assert_int_equal(st.keys, 4);
    assert_int_equal(st.evictions, 8);
    rl_redis_forget(a.rr, NULL);
    assert_int_equal(stats_of(a.rr).keys, 0);
    agent_close(&a);
    evloop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_names),
        cmocka_unit_test(test_scripts_match_pure),
        cmocka_unit_test(test_redis_time_burst),
        cmocka_unit_test(test_every_key_has_ttl),
        cmocka_unit_test(test_hostile_client_keys),
        cmocka_unit_test(test_pipelined_burst),
        cmocka_unit_test(test_two_agents_exact),
        cmocka_unit_test(test_lease_counts_round_trips),
        cmocka_unit_test(test_lease_waiters_share_calls),
        cmocka_unit_test(test_lease_expiry_and_slice),
        cmocka_unit_test(test_lease_two_agents_bound),
        cmocka_unit_test(test_lease_ops_per_request),
        cmocka_unit_test(test_redis_stopped_mid_run),
        cmocka_unit_test(test_script_flush_mid_run),
        cmocka_unit_test(test_script_error),
        cmocka_unit_test(test_command_timeout),
        cmocka_unit_test(test_free_with_pending),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_forget_and_eviction),
    };
    return cmocka_run_group_tests(tests, group_setup, redis_fixture_teardown);
}
