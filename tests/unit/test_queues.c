/*
 * Tests for server/queues against a real redis-server (redis_fixture.h): the keys of
 * docs/queues.md are written with XADD / XGROUP / XREADGROUP / ZADD / HSET, then inspected
 * with a given now_ms, so every length, lag, pending count and age is exact. Stream ids are
 * explicit ("1000-0") so that ages are known. Each test uses its own queue names.
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
#include "json.h"
#include "queues.h"
#include "redis_fixture.h"
#include "store_redis.h"

#define NOW_MS 10000 /* the ids below are 500..8000 ms: ages are NOW_MS - ms */

static struct redis_fixture server;
static struct redis_pool *pool;

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* store_redis.h */
    if (redis_fixture_start(&server) != SL_OK)
        return -1;
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", server.port);
    pool = redis_pool_new(url, NULL, NULL);
    return pool ? 0 : -1;
}

static int group_teardown(void **state)
{
    redis_pool_free(pool);
    return redis_fixture_teardown(state);
}

/* --- helpers ------------------------------------------------------------------------ */

/* Run a command (hiredis format) that must not fail; returns the reply for inspection. */
static redisReply *vrun(const char *fmt, va_list ap)
{
    redisContext *c = redis_pool_get(pool);
    assert_non_null(c);
    redisReply *r = redisvCommand(c, fmt, ap);
    redis_pool_put(pool, c);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", fmt, r->str);
    return r;
}

static void run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    freeReplyObject(vrun(fmt, ap));
    va_end(ap);
}

/* The lag field of the "workers" group as Redis reports it: nil is what the tests that
 * exercise queues.c's own lag rules need, so they check it first. */
static bool redis_lag_is_nil(const char *key)
{
    redisReply *r = redis_pool_command(pool, "XINFO GROUPS %s", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 1);
    const redisReply *g = r->element[0];
    bool nil = false, seen = false;
    for (size_t i = 0; i + 1 < g->elements; i += 2)
        if (strcmp(g->element[i]->str, "lag") == 0) {
            seen = true;
            nil = g->element[i + 1]->type == REDIS_REPLY_NIL;
        }
    freeReplyObject(r);
    assert_true(seen);
    return nil;
}

static void assert_lane(const struct queue_lane_info *l, uint64_t length, bool group,
                        uint64_t pending, int64_t lag, const char *oldest_id, uint64_t age_ms,
                        uint64_t consumers)
{
    assert_int_equal(l->length, length);
    assert_int_equal(l->group, group);
    assert_int_equal(l->pending, pending);
    assert_int_equal(l->lag, lag);
    assert_string_equal(l->oldest_pending_id, oldest_id);
    assert_int_equal(l->oldest_pending_age_ms, age_ms);
    assert_int_equal(l->consumers, consumers);
}

static void assert_counters(const uint64_t *got, uint64_t enq, uint64_t done, uint64_t failed,
                            uint64_t retried, uint64_t dead)
{
    assert_int_equal(got[QUEUE_ENQUEUED], enq);
    assert_int_equal(got[QUEUE_COMPLETED], done);
    assert_int_equal(got[QUEUE_FAILED], failed);
    assert_int_equal(got[QUEUE_RETRIED], retried);
    assert_int_equal(got[QUEUE_DEAD], dead);
}

static void assert_json(const struct queue_info *q, const struct queue_rates *rates,
                        const char *want)
{
    json_t *doc = queue_info_json(q, rates);
    assert_non_null(doc);
    char *got = json_dump_compact(doc);
    assert_string_equal(got, want);
    free(got);
    json_decref(doc);
}

/* Queue "mail" (made once, by whichever test needs it first): high has 4 entries, 2 of them claimed
 * by c1 and not acknowledged, c2 idle; normal has 3, one delivered and acknowledged; low has 1 and
 * no group yet; two delayed jobs, two dead letters, and counters. */
static void make_mail_queue(void)
{
    static bool made;
    if (made)
        return;
    made = true;
    static const char *const ids[] = {"1000-0", "2000-0", "3000-0", "4000-0"};
    for (int i = 0; i < 4; i++)
        run("XADD sluice:q:{mail}:high %s job h%d", ids[i], i);
    run("XGROUP CREATE sluice:q:{mail}:high workers 0");
    run("XREADGROUP GROUP workers c1 COUNT 2 STREAMS sluice:q:{mail}:high >");
    run("XGROUP CREATECONSUMER sluice:q:{mail}:high workers c2");

    run("XADD sluice:q:{mail}:normal 5000-0 job n0");
    run("XADD sluice:q:{mail}:normal 6000-0 job n1");
    run("XADD sluice:q:{mail}:normal 7000-0 job n2");
    run("XGROUP CREATE sluice:q:{mail}:normal workers 0");
    run("XREADGROUP GROUP workers c1 COUNT 1 STREAMS sluice:q:{mail}:normal >");
    run("XACK sluice:q:{mail}:normal workers 5000-0");

    run("XADD sluice:q:{mail}:low 8000-0 job l0");

    run("ZADD sluice:q:{mail}:delayed 20000 j1 15000 j2");
    run("XADD sluice:q:{mail}:dead 500-0 job d0");
    run("XADD sluice:q:{mail}:dead 600-0 job d1");
    run("HSET sluice:q:{mail}:stats enqueued 10 completed 4 failed 3 retried 2 dead 1 "
        "enqueued:high 6 enqueued:normal 3 enqueued:low 1 completed:high 3 failed:low 3 "
        "dead:low 1 retried:low 2 other 7 enqueued:nope 5");
}

/* --- tests -------------------------------------------------------------------------- */

static void test_names_and_keys(void **state)
{
    (void)state;
    char key[QUEUE_KEY_SIZE];
    char longest[QUEUE_NAME_SIZE];
    memset(longest, 'x', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    assert_true(queue_name_is_valid("mail"));
    assert_true(queue_name_is_valid("A.b_c-9"));
    assert_true(queue_name_is_valid(longest));
    assert_true(queue_key(key, sizeof(key), longest, "delayed"));
    char too_long[QUEUE_NAME_SIZE + 1];
    memset(too_long, 'x', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';
    assert_false(queue_name_is_valid(too_long));
    assert_false(queue_name_is_valid(""));
    assert_false(queue_name_is_valid(NULL));
    assert_false(queue_name_is_valid("a{b}"));
    assert_false(queue_name_is_valid("a:b"));
    assert_false(queue_name_is_valid("a b"));

    assert_true(queue_key(key, sizeof(key), "mail", "high"));
    assert_string_equal(key, "sluice:q:{mail}:high");
    assert_false(queue_key(key, 20, "mail", "high")); /* 20 bytes + NUL do not fit in 20 */
    assert_false(queue_key(key, sizeof(key), "a}b", "high"));
    assert_string_equal(queue_lane_name(QUEUE_LANE_LOW), "low");
    assert_string_equal(queue_lane_name(QUEUE_LANES), "unknown");
    assert_string_equal(queue_counter_name(QUEUE_RETRIED), "retried");

    struct queue_info q;
    char err[128];
    assert_int_equal(queue_inspect(pool, "a b", NOW_MS, &q, err), SL_EINVAL);
    assert_string_equal(err, "queue name must be 1-63 characters of A-Z a-z 0-9 . _ -");
}

static void test_inspect_exact(void **state)
{
    (void)state;
    make_mail_queue();
    struct queue_info q;
    char err[128] = "x";
    assert_int_equal(queue_inspect(pool, "mail", NOW_MS, &q, err), SL_OK);
    assert_string_equal(err, "");
    assert_string_equal(q.name, "mail");
    assert_true(q.exists);
    assert_int_equal(q.at_ms, NOW_MS);

    const struct queue_lane_info *high = &q.lane[QUEUE_LANE_HIGH];
    assert_lane(high, 4, true, 2, 2, "1000-0", NOW_MS - 1000, 2);
    assert_int_equal(high->consumers_listed, 2);
    assert_string_equal(high->consumer[0].name, "c1");
    assert_int_equal(high->consumer[0].pending, 2);
    assert_string_equal(high->consumer[1].name, "c2");
    assert_int_equal(high->consumer[1].pending, 0);
    assert_true(high->consumer[0].idle_ms < 60000);
    assert_lane(&q.lane[QUEUE_LANE_NORMAL], 3, true, 0, 2, "", 0, 1);
    assert_lane(&q.lane[QUEUE_LANE_LOW], 1, false, 0, 1, "", 0, 0);
    assert_int_equal(q.lane[QUEUE_LANE_LOW].consumers_listed, 0);

    assert_int_equal(q.length, 8);
    assert_int_equal(q.waiting, 5);
    assert_int_equal(q.active, 2);
    assert_int_equal(q.oldest_pending_age_ms, 9000);
    assert_int_equal(q.delayed, 2);
    assert_int_equal(q.next_due_ms, 15000);
    assert_int_equal(q.dead, 2);
    assert_counters(q.counters, 10, 4, 3, 2, 1);
    assert_counters(q.lane[QUEUE_LANE_HIGH].counters, 6, 3, 0, 0, 0);
    assert_counters(q.lane[QUEUE_LANE_NORMAL].counters, 3, 0, 0, 0, 0);
    assert_counters(q.lane[QUEUE_LANE_LOW].counters, 1, 0, 3, 2, 1);

    /* now_ms 0: ages against Redis TIME, which is this machine's clock */
    assert_int_equal(queue_inspect(pool, "mail", 0, &q, NULL), SL_OK);
    uint64_t wall = clock_wall_ms();
    assert_in_range(q.at_ms, wall - 5000, wall + 5000);
    assert_int_equal(q.oldest_pending_age_ms, q.at_ms - 1000);
    /* a clock behind the ids: ages are 0, not a wrap-around */
    assert_int_equal(queue_inspect(pool, "mail", 1500, &q, NULL), SL_OK);
    assert_int_equal(q.lane[QUEUE_LANE_HIGH].oldest_pending_age_ms, 500);
    assert_int_equal(queue_inspect(pool, "mail", 999, &q, NULL), SL_OK);
    assert_int_equal(q.oldest_pending_age_ms, 0);
}

static void test_json_document(void **state)
{
    (void)state;
    struct queue_info q;
    make_mail_queue();
    assert_int_equal(queue_inspect(pool, "mail", NOW_MS, &q, NULL), SL_OK);
    for (size_t i = 0; i < q.lane[QUEUE_LANE_HIGH].consumers_listed; i++)
        q.lane[QUEUE_LANE_HIGH].consumer[i].idle_ms = 100 * (i + 1); /* Redis's clock */
    q.lane[QUEUE_LANE_NORMAL].consumer[0].idle_ms = 7;
    struct queue_rates rates = {.window_ms = 2000, .per_s = {1.5, 0.5, 0, 0, 0.25}};
    assert_json(
        &q, &rates,
        "{\"name\":\"mail\",\"exists\":true,\"at_ms\":10000,\"length\":8,\"waiting\":5,"
        "\"active\":2,\"oldest_pending_age_ms\":9000,\"delayed\":2,\"next_due_ms\":15000,"
        "\"next_due_in_ms\":5000,\"dead\":2,\"counters\":{\"enqueued\":10,\"completed\":4,"
        "\"failed\":3,\"retried\":2,\"dead\":1},\"lanes\":{"
        "\"high\":{\"length\":4,\"group\":true,\"pending\":2,\"lag\":2,"
        "\"oldest_pending_id\":\"1000-0\",\"oldest_pending_age_ms\":9000,\"consumer_count\":2,"
        "\"consumers\":[{\"name\":\"c1\",\"pending\":2,\"idle_ms\":100},"
        "{\"name\":\"c2\",\"pending\":0,\"idle_ms\":200}],\"counters\":{\"enqueued\":6,"
        "\"completed\":3,\"failed\":0,\"retried\":0,\"dead\":0}},"
        "\"normal\":{\"length\":3,\"group\":true,\"pending\":0,\"lag\":2,"
        "\"oldest_pending_id\":null,\"oldest_pending_age_ms\":0,\"consumer_count\":1,"
        "\"consumers\":[{\"name\":\"c1\",\"pending\":0,\"idle_ms\":7}],\"counters\":{"
        "\"enqueued\":3,\"completed\":0,\"failed\":0,\"retried\":0,\"dead\":0}},"
        "\"low\":{\"length\":1,\"group\":false,\"pending\":0,\"lag\":1,"
        "\"oldest_pending_id\":null,\"oldest_pending_age_ms\":0,\"consumer_count\":0,"
        "\"consumers\":[],\"counters\":{\"enqueued\":1,\"completed\":0,\"failed\":3,"
        "\"retried\":2,\"dead\":1}}},"
        "\"rates\":{\"window_ms\":2000,\"enqueued_per_s\":1.5,\"completed_per_s\":0.5,"
        "\"failed_per_s\":0.0,\"retried_per_s\":0.0,\"dead_per_s\":0.25}}");
}

/* Entries deleted after the group's cursor: Redis 7 reports no lag. The ids still settle
 * it when the cursor is before the first entry (all wait) or at/after the last (none
 * waits); otherwise the lag is unknown, and so is the total. */
static void test_lag_without_redis_lag(void **state)
{
    (void)state;
    for (int i = 1; i <= 4; i++)
        run("XADD sluice:q:{tomb}:high %d-0 job x", i);
    run("XGROUP CREATE sluice:q:{tomb}:high workers 0");
    run("XREADGROUP GROUP workers c1 COUNT 1 STREAMS sluice:q:{tomb}:high >");
    run("XDEL sluice:q:{tomb}:high 3-0");
    for (int i = 1; i <= 3; i++)
        run("XADD sluice:q:{tomb}:normal %d-0 job x", i);
    run("XGROUP CREATE sluice:q:{tomb}:normal workers 0");
    run("XDEL sluice:q:{tomb}:normal 2-0");
    run("XADD sluice:q:{tomb}:low 1-0 job x");
    run("XGROUP CREATE sluice:q:{tomb}:low workers 9999-0");
    assert_true(redis_lag_is_nil("sluice:q:{tomb}:high"));
    assert_true(redis_lag_is_nil("sluice:q:{tomb}:normal"));
    assert_true(redis_lag_is_nil("sluice:q:{tomb}:low"));

    struct queue_info q;
    assert_int_equal(queue_inspect(pool, "tomb", NOW_MS, &q, NULL), SL_OK);
    assert_lane(&q.lane[QUEUE_LANE_HIGH], 3, true, 1, QUEUE_LAG_UNKNOWN, "1-0", NOW_MS - 1, 1);
    assert_lane(&q.lane[QUEUE_LANE_NORMAL], 2, true, 0, 2, "", 0, 0);
    assert_lane(&q.lane[QUEUE_LANE_LOW], 1, true, 0, 0, "", 0, 0);
    assert_int_equal(q.waiting, QUEUE_LAG_UNKNOWN);
    assert_int_equal(q.active, 1);
    assert_int_equal(q.length, 6);

    json_t *doc = queue_info_json(&q, NULL);
    assert_true(json_is_null(json_object_get(doc, "waiting")));
    json_t *lanes = json_object_get(doc, "lanes");
    assert_true(json_is_null(json_object_get(json_object_get(lanes, "high"), "lag")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(lanes, "normal"), "lag")),
                     2);
    json_decref(doc);

    /* the undelivered entry after the tombstone is read: the cursor passes the last entry */
    run("XREADGROUP GROUP workers c1 STREAMS sluice:q:{tomb}:high >");
    assert_int_equal(queue_inspect(pool, "tomb", NOW_MS, &q, NULL), SL_OK);
    assert_int_equal(q.lane[QUEUE_LANE_HIGH].lag, 0);
    assert_int_equal(q.lane[QUEUE_LANE_HIGH].pending, 3);
    assert_int_equal(q.waiting, 2);
}

static void test_missing_and_empty_queues(void **state)
{
    (void)state;
    struct queue_info q;
    memset(&q, 0xa5, sizeof(q));
    char err[128];
    assert_int_equal(queue_inspect(pool, "ghost", NOW_MS, &q, err), SL_OK);
    assert_string_equal(err, "");
    assert_false(q.exists);
    assert_int_equal(q.at_ms, NOW_MS);
    for (int l = 0; l < QUEUE_LANES; l++) {
        assert_lane(&q.lane[l], 0, false, 0, 0, "", 0, 0);
        assert_int_equal(q.lane[l].consumers_listed, 0);
        assert_counters(q.lane[l].counters, 0, 0, 0, 0, 0);
    }
    assert_int_equal(q.length + q.active + q.delayed + q.dead + q.oldest_pending_age_ms, 0);
    assert_int_equal(q.waiting, 0);
    assert_counters(q.counters, 0, 0, 0, 0, 0);
    json_t *doc = queue_info_json(&q, NULL);
    assert_true(json_is_null(json_object_get(doc, "next_due_ms")));
    assert_true(json_is_null(json_object_get(doc, "next_due_in_ms")));
    assert_true(json_is_null(json_object_get(doc, "rates")));
    assert_true(json_is_false(json_object_get(doc, "exists")));
    json_decref(doc);

    /* a worker made the lane (MKSTREAM) before any job: it exists, and is empty */
    run("XGROUP CREATE sluice:q:{fresh}:normal workers 0 MKSTREAM");
    assert_int_equal(queue_inspect(pool, "fresh", NOW_MS, &q, NULL), SL_OK);
    assert_true(q.exists);
    assert_lane(&q.lane[QUEUE_LANE_NORMAL], 0, true, 0, 0, "", 0, 0);
    assert_int_equal(q.waiting, 0);
    /* only a stats hash, or only dead letters, is a queue too */
    run("HSET sluice:q:{counted}:stats enqueued 1");
    assert_int_equal(queue_inspect(pool, "counted", NOW_MS, &q, NULL), SL_OK);
    assert_true(q.exists);
    run("XADD sluice:q:{buried}:dead * job x");
    assert_int_equal(queue_inspect(pool, "buried", NOW_MS, &q, NULL), SL_OK);
    assert_true(q.exists);
    assert_int_equal(q.dead, 1);
}

/* More consumers than QUEUE_CONSUMERS_MAX: all counted, the first ones (by name) listed. */
static void test_consumer_bound(void **state)
{
    (void)state;
    int total = QUEUE_CONSUMERS_MAX + 3;
    run("XGROUP CREATE sluice:q:{crowd}:low workers 0 MKSTREAM");
    for (int i = 0; i < total; i++)
        run("XGROUP CREATECONSUMER sluice:q:{crowd}:low workers k%02d", i);
    struct queue_info q;
    assert_int_equal(queue_inspect(pool, "crowd", NOW_MS, &q, NULL), SL_OK);
    const struct queue_lane_info *low = &q.lane[QUEUE_LANE_LOW];
    assert_int_equal(low->consumers, total);
    assert_int_equal(low->consumers_listed, QUEUE_CONSUMERS_MAX);
    assert_string_equal(low->consumer[0].name, "k00");
    char last[8];
    snprintf(last, sizeof(last), "k%02d", QUEUE_CONSUMERS_MAX - 1);
    assert_string_equal(low->consumer[QUEUE_CONSUMERS_MAX - 1].name, last);
}

static void test_rates(void **state)
{
    (void)state;
    struct queue_info a, b;
    struct queue_rates r;
    run("HSET sluice:q:{flow}:stats enqueued 10 completed 5 failed 6 dead 2");
    assert_int_equal(queue_inspect(pool, "flow", NOW_MS, &a, NULL), SL_OK);
    run("HINCRBY sluice:q:{flow}:stats enqueued 30");
    run("HINCRBY sluice:q:{flow}:stats completed 15");
    run("HINCRBY sluice:q:{flow}:stats dead 1");
    run("HSET sluice:q:{flow}:stats failed 2"); /* went down: reset, counts from 0 */
    assert_int_equal(queue_inspect(pool, "flow", NOW_MS + 2000, &b, NULL), SL_OK);

    assert_int_equal(queue_rates_between(&a, &b, 2000, &r), SL_OK);
    assert_int_equal(r.window_ms, 2000);
    assert_true(r.per_s[QUEUE_ENQUEUED] == 15.0);
    assert_true(r.per_s[QUEUE_COMPLETED] == 7.5);
    assert_true(r.per_s[QUEUE_FAILED] == 1.0);
    assert_true(r.per_s[QUEUE_RETRIED] == 0.0);
    assert_true(r.per_s[QUEUE_DEAD] == 0.5);
    assert_int_equal(queue_rates_between(&b, &b, 500, &r), SL_OK);
    assert_true(r.per_s[QUEUE_ENQUEUED] == 0.0);

    assert_int_equal(queue_rates_between(&a, &b, 0, &r), SL_EINVAL);
    assert_int_equal(r.window_ms, 0);
    struct queue_info other;
    make_mail_queue();
    assert_int_equal(queue_inspect(pool, "mail", NOW_MS, &other, NULL), SL_OK);
    assert_int_equal(queue_rates_between(&a, &other, 1000, &r), SL_EINVAL);
}

static void test_list(void **state)
{
    (void)state;
    char names[4][QUEUE_NAME_SIZE];
    size_t n = 99;
    run("DEL sluice:queues");
    assert_int_equal(queue_list(pool, NULL, names, 4, &n), SL_OK);
    assert_int_equal(n, 0);

    run("SADD sluice:queues mail b %s %s", "bad name", "{x}");
    const char *const configured[] = {"c", "mail", NULL};
    assert_int_equal(queue_list(pool, configured, names, 4, &n), SL_OK);
    assert_int_equal(n, 3);
    assert_string_equal(names[0], "b");
    assert_string_equal(names[1], "c");
    assert_string_equal(names[2], "mail");

    assert_int_equal(queue_list(pool, configured, names, 2, &n), SL_ETOOBIG);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "b");
    assert_string_equal(names[1], "c");
    assert_int_equal(queue_list(pool, configured, names, 0, &n), SL_ETOOBIG);
    assert_int_equal(n, 0);

    const char *const bad[] = {"ok", "no good", NULL};
    assert_int_equal(queue_list(pool, bad, names, 4, &n), SL_EINVAL);

    run("DEL sluice:queues");
    run("SET sluice:queues oops");
    assert_int_equal(queue_list(pool, NULL, names, 4, &n), SL_EPARSE);
    run("DEL sluice:queues");
}

/* Keys that break the layout: an error that names the key, and out is zeroed. */
static void test_layout_errors(void **state)
{
    (void)state;
    struct queue_info q;
    char err[128];
    run("SET sluice:q:{bad}:normal oops");
    assert_int_equal(queue_inspect(pool, "bad", NOW_MS, &q, err), SL_EPARSE);
    assert_string_equal(err, "sluice:q:{bad}:normal: WRONGTYPE Operation against a key "
                             "holding the wrong kind of value");
    assert_false(q.exists);
    assert_string_equal(q.name, "");

    run("HSET sluice:q:{bad2}:stats failed lots enqueued 3");
    assert_int_equal(queue_inspect(pool, "bad2", NOW_MS, &q, err), SL_EPARSE);
    assert_string_equal(err, "sluice:q:{bad2}:stats: field 'failed' is not a count");
    run("HSET sluice:q:{bad3}:stats failed -1");
    assert_int_equal(queue_inspect(pool, "bad3", NOW_MS, &q, err), SL_EPARSE);

    run("SET sluice:q:{bad4}:delayed oops");
    assert_int_equal(queue_inspect(pool, "bad4", NOW_MS, &q, err), SL_EPARSE);
    assert_string_equal(err, "sluice:q:{bad4}:delayed: WRONGTYPE Operation against a key "
                             "holding the wrong kind of value");
}

/* Nothing listens: SL_ESTORE with the URL; queue_list keeps the configured names. The
 * store's own log line goes to stderr. */
static void test_redis_down(void **state)
{
    (void)state;
    uint16_t port = redis_fixture_free_port();
    assert_true(port > 0);
    char url[64], want[128];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", port);
    struct redis_pool *down = redis_pool_new(url, NULL, NULL);
    assert_non_null(down);

    struct queue_info q;
    memset(&q, 0xa5, sizeof(q));
    char err[128];
    assert_int_equal(queue_inspect(down, "mail", NOW_MS, &q, err), SL_ESTORE);
    snprintf(want, sizeof(want), "redis unreachable (redis://127.0.0.1:%u/0)", port);
    assert_string_equal(err, want);
    assert_false(q.exists);
    assert_int_equal(q.at_ms, 0);

    char names[4][QUEUE_NAME_SIZE];
    size_t n = 99;
    const char *const configured[] = {"mail", NULL};
    assert_int_equal(queue_list(down, configured, names, 4, &n), SL_ESTORE);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "mail");
    redis_pool_free(down);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_keys),
        cmocka_unit_test(test_inspect_exact),
        cmocka_unit_test(test_json_document),
        cmocka_unit_test(test_lag_without_redis_lag),
        cmocka_unit_test(test_missing_and_empty_queues),
        cmocka_unit_test(test_consumer_bound),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_layout_errors),
        cmocka_unit_test(test_redis_down),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
