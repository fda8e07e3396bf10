/*
 * Tests for shared/queue against a real redis-server (redis_fixture.h). The pure parts
 * (backoff, transitions) are checked value by value; the rest drives jobs through
 * enqueue → fetch → complete / fail / stall and reads the keys of docs/queues.md back with
 * plain commands. Each test uses its own queue name. Waiting for Redis's clock (delays,
 * visibility timeouts) is a poll with a deadline; nothing sleeps a fixed time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "json.h"
#include "queue.h"
#include "redis_fixture.h"
#include "store_redis.h"

#define DEADLINE_MS 5000
#define POLL_MS     20 /* block_ms of the polling fetches */

static struct redis_fixture server;
static struct redis_pool *pool;

/* A pool on the fixture; user_at is "" or "user:password@". */
static struct redis_pool *pool_on_server(const char *user_at, const struct redis_opts *ro)
{
    char url[128];
    snprintf(url, sizeof(url), "redis://%s127.0.0.1:%u", user_at, server.port);
    return redis_pool_new(url, ro, NULL);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* store_redis.h */
    if (redis_fixture_start(&server) == SL_OK)
        pool = pool_on_server("", NULL);
    return pool ? 0 : -1;
}

static int group_teardown(void **state)
{
    redis_pool_free(pool);
    return redis_fixture_teardown(state);
}

/* --- helpers ------------------------------------------------------------------------ */

/* A command that must not fail (hiredis format); the caller frees the reply. */
static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisContext *c = redis_pool_get(pool);
    assert_non_null(c);
    redisReply *r = redisvCommand(c, fmt, ap);
    redis_pool_put(pool, c);
    va_end(ap);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", fmt, r->str);
    return r;
}

static long long cmd_int(const char *fmt, const char *key)
{
    redisReply *r = cmd(fmt, key);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* A counter of sluice:q:{name}:stats; 0 when the field is missing. */
static long long stat(const char *name, const char *field)
{
    redisReply *r = cmd("HGET sluice:q:{%s}:stats %s", name, field);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return v;
}

/* Orders "field=value" strings by field. */
static int field_cmp(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    size_t nx = strcspn(x, "="), ny = strcspn(y, "=");
    int c = strncmp(x, y, nx < ny ? nx : ny);
    return c ? c : (int)nx - (int)ny;
}

/* The whole stats hash of a queue, "field=value" sorted by field and joined by spaces,
 * must be want: no counter more, none less. */
static void assert_stats(const char *name, const char *want)
{
    redisReply *r = cmd("HGETALL sluice:q:{%s}:stats", name);
    char pairs[32][48], got[1024] = "";
    const char *sorted[32];
    size_t n = r->elements / 2;
    assert_true(n <= 32);
    for (size_t i = 0; i < n; i++) {
        snprintf(pairs[i], sizeof(pairs[i]), "%s=%s", r->element[2 * i]->str,
                 r->element[2 * i + 1]->str);
        sorted[i] = pairs[i];
    }
    freeReplyObject(r);
    qsort(sorted, n, sizeof(sorted[0]), field_cmp);
    for (size_t i = 0; i < n; i++)
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? " " : "", sorted[i]);
    assert_string_equal(got, want);
}

static long long xlen(const char *name, const char *suffix)
{
    char key[160];
    snprintf(key, sizeof(key), "sluice:q:{%s}:%s", name, suffix);
    return cmd_int("XLEN %s", key);
}

/* XPENDING summary count of the workers group on a lane. */
static long long pending(const char *name, const char *lane)
{
    redisReply *r = cmd("XPENDING sluice:q:{%s}:%s workers", name, lane);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    long long v = r->element[0]->integer;
    freeReplyObject(r);
    return v;
}

/* The ids of the job ids in a lane, in stream order, joined with ','. */
static void lane_jobs(const char *name, const char *lane, char *out, size_t cap)
{
    redisReply *r = cmd("XRANGE sluice:q:{%s}:%s - +", name, lane);
    out[0] = '\0';
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *f = r->element[i]->element[1];
        assert_string_equal(f->element[0]->str, "id");
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s", n ? "," : "", f->element[1]->str);
    }
    freeReplyObject(r);
}

/* The lag Redis reports for the workers group (-1 when nil: the inspector's "unknown"). */
static long long lag(const char *name, const char *lane)
{
    redisReply *r = cmd("XINFO GROUPS sluice:q:{%s}:%s", name, lane);
    assert_int_equal(r->elements, 1);
    const redisReply *g = r->element[0];
    long long v = -2;
    for (size_t i = 0; i + 1 < g->elements; i += 2)
        if (strcmp(g->element[i]->str, "lag") == 0)
            v = g->element[i + 1]->type == REDIS_REPLY_INTEGER ? g->element[i + 1]->integer : -1;
    freeReplyObject(r);
    return v;
}

static json_t *status(const struct queue_opts *o, const char *id)
{
    json_t *j = NULL;
    assert_int_equal(queue_status(pool, o, id, &j), SL_OK);
    return j;
}

static void assert_state(const struct queue_opts *o, const char *id, const char *state)
{
    json_t *j = status(o, id);
    assert_string_equal(json_string_value(json_object_get(j, "state")), state);
    json_decref(j);
}

static long long status_int(const struct queue_opts *o, const char *id, const char *field)
{
    json_t *j = status(o, id);
    json_t *v = json_object_get(j, field);
    assert_true(json_is_integer(v));
    long long n = json_integer_value(v);
    json_decref(j);
    return n;
}

static void enqueue(const struct queue_opts *o, const char *id, const char *payload,
                    enum queue_priority lane, uint64_t delay_ms)
{
    assert_int_equal(queue_enqueue(pool, o, id, payload, strlen(payload), lane, delay_ms, NULL),
                     SL_OK);
}

/* Fetch until a job comes or DEADLINE_MS pass. */
static int fetch_within(const struct queue_opts *o, const char *consumer, struct queue_job *job)
{
    int rv = SL_ENOTFOUND;
    for (uint64_t end = clock_mono_ms() + DEADLINE_MS; rv == SL_ENOTFOUND && clock_mono_ms() < end;)
        rv = queue_fetch(pool, o, consumer, POLL_MS, job);
    return rv;
}

/* Enqueue id (payload "work") and fetch it as consumer A, which then holds it. */
static void enqueue_held(const struct queue_opts *o, const char *id, enum queue_priority lane,
                         struct queue_job *job)
{
    enqueue(o, id, "work", lane, 0);
    assert_int_equal(queue_fetch(pool, o, "A", 0, job), SL_OK);
    assert_string_equal(job->id, id);
    assert_int_equal(job->attempt, 1);
}

static void fetch_expect(const struct queue_opts *o, const char *consumer, const char *id,
                         unsigned attempt, struct queue_job *job)
{
    assert_int_equal(fetch_within(o, consumer, job), SL_OK);
    assert_string_equal(job->id, id);
    assert_int_equal(job->attempt, attempt);
}

/* --- pure parts ------------------------------------------------------------------------ */

static void test_backoff_schedule(void **state)
{
    (void)state;
    const struct queue_opts o = {.name = "b", .backoff_base_ms = 1000, .backoff_max_ms = 300000};
    /* d = 1000 × 2^(attempt−1) capped at 300000; rnd 0 → d − d/2, rnd max → d */
    static const uint32_t d[] = {1000,  2000,   4000,   8000,   16000,  32000,
                                 64000, 128000, 256000, 300000, 300000, 300000};
    for (unsigned a = 1; a <= 12; a++) {
        assert_int_equal(queue_backoff_ms(&o, a, 0), d[a - 1] - d[a - 1] / 2);
        assert_int_equal(queue_backoff_ms(&o, a, UINT64_MAX), d[a - 1]);
    }
    assert_int_equal(queue_backoff_ms(&o, 1, 1ULL << 63), 750);    /* 500 + (2^31 × 501) >> 32 */
    assert_int_equal(queue_backoff_ms(&o, 1, 0xffffffffULL), 500); /* low bits are not used */
    assert_int_equal(queue_backoff_ms(&o, 0, 0), 500);             /* attempt 0 reads as 1 */
    assert_int_equal(queue_backoff_ms(&o, 1000000, UINT64_MAX), 300000);
    assert_int_equal(queue_backoff_ms(&o, UINT32_MAX, 0), 150000);

    const struct queue_opts odd = {.name = "b", .backoff_base_ms = 3, .backoff_max_ms = 5};
    assert_int_equal(queue_backoff_ms(&odd, 1, 0), 2); /* ceil(3/2) fixed */
    assert_int_equal(queue_backoff_ms(&odd, 1, UINT64_MAX), 3);
    assert_int_equal(queue_backoff_ms(&odd, 2, 0), 3); /* capped at 5 */
    assert_int_equal(queue_backoff_ms(&odd, 2, UINT64_MAX), 5);

    const struct queue_opts one = {.name = "b", .backoff_base_ms = 1, .backoff_max_ms = 1};
    assert_int_equal(queue_backoff_ms(&one, 1, 0), 1); /* never 0 */

    const struct queue_opts defaults = {.name = "b"};
    assert_int_equal(queue_backoff_ms(&defaults, 1, UINT64_MAX), QUEUE_BACKOFF_BASE_MS_DEFAULT);
    assert_int_equal(queue_backoff_ms(&defaults, 30, UINT64_MAX), QUEUE_BACKOFF_MAX_MS_DEFAULT);
}

static void test_transitions(void **state)
{
    (void)state;
    enum {
        N = QUEUE_STATE_NONE,
        W = QUEUE_STATE_WAITING,
        D = QUEUE_STATE_DELAYED,
        A = QUEUE_STATE_ACTIVE,
        C = QUEUE_STATE_COMPLETED,
        F = QUEUE_STATE_FAILED,
        X = QUEUE_STATE_DEAD
    };
    /* the table of queue.h, row by row: 1 = allowed */
    static const int allowed[QUEUE_STATES][QUEUE_STATES] = {
        /*        N  W  D  A  C  F  X */
        [N] = {0, 1, 1, 0, 0, 0, 0}, [W] = {0, 0, 0, 1, 0, 0, 0}, [D] = {0, 1, 0, 0, 0, 0, 0},
        [A] = {0, 0, 0, 1, 1, 1, 1}, [C] = {0, 0, 0, 0, 0, 0, 0}, [F] = {0, 1, 0, 0, 0, 0, 0},
        [X] = {0, 0, 0, 0, 0, 0, 0},
    };
    for (int from = 0; from < QUEUE_STATES; from++)
        for (int to = 0; to < QUEUE_STATES; to++)
            if (queue_transition_ok(from, to) != (allowed[from][to] == 1))
                fail_msg("%s -> %s", queue_state_name(from), queue_state_name(to));
    assert_false(queue_transition_ok(QUEUE_STATES, QUEUE_STATE_WAITING));

    assert_string_equal(queue_state_name(QUEUE_STATE_FAILED), "failed");
    assert_string_equal(queue_state_name(QUEUE_STATES), "unknown");
    assert_string_equal(queue_priority_name(QUEUE_PRIORITY_LOW), "low");
    enum queue_priority p;
    assert_true(queue_priority_parse("high", &p));
    assert_int_equal(p, QUEUE_PRIORITY_HIGH);
    assert_false(queue_priority_parse("urgent", &p));
    assert_false(queue_priority_parse(NULL, &p));
}

/* --- producer and worker ----------------------------------------------------------------- */

static void test_enqueue_fetch_complete(void **state)
{
    (void)state;
    const struct queue_opts o = {.name = "mail"};
    char id[QUEUE_JOB_ID_SIZE];
    assert_int_equal(queue_enqueue(pool, &o, NULL, "hello", 5, QUEUE_PRIORITY_NORMAL, 0, id),
                     SL_OK);
    assert_int_equal(strlen(id), 32);
    assert_int_equal(strspn(id, "0123456789abcdef"), 32);
    assert_state(&o, id, "waiting");
    assert_int_equal(status_int(&o, id, "attempts"), 0);
    assert_int_equal(status_int(&o, id, "max_attempts"), QUEUE_MAX_ATTEMPTS_DEFAULT);
    assert_stats("mail", "enqueued=1 enqueued:normal=1");
    assert_int_equal(cmd_int("SISMEMBER %s mail", "sluice:queues"), 1);
    char key[160];
    snprintf(key, sizeof(key), "sluice:q:{mail}:job:%s", id);
    long long ttl = cmd_int("TTL %s", key);
    assert_true(ttl > QUEUE_STATUS_TTL_S_DEFAULT - 5 && ttl <= QUEUE_STATUS_TTL_S_DEFAULT);

    struct queue_job job;
    assert_int_equal(queue_fetch(pool, &o, "c1", 0, &job), SL_OK);
    assert_string_equal(job.id, id);
    assert_int_equal(job.lane, QUEUE_PRIORITY_NORMAL);
    assert_int_equal(job.attempt, 1);
    assert_int_equal(job.max_attempts, QUEUE_MAX_ATTEMPTS_DEFAULT);
    assert_int_equal(job.payload_len, 5);
    assert_string_equal(job.payload, "hello");
    assert_false(job.already_processed);
    assert_int_equal(pending("mail", "normal"), 1);
    json_t *j = status(&o, id);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "active");
    assert_string_equal(json_string_value(json_object_get(j, "consumer")), "c1");
    assert_string_equal(json_string_value(json_object_get(j, "entry")), job.entry_id);
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 1);
    assert_null(json_object_get(j, "payload"));
    json_decref(j);

    assert_int_equal(queue_complete(pool, &o, &job, "{\"sent\":true}"), SL_OK);
    j = status(&o, id);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "completed");
    assert_string_equal(json_string_value(json_object_get(j, "result")), "{\"sent\":true}");
    assert_true(json_integer_value(json_object_get(j, "finished_ms")) >=
                json_integer_value(json_object_get(j, "started_ms")));
    json_decref(j);
    assert_stats("mail", "completed=1 completed:normal=1 enqueued=1 enqueued:normal=1");
    assert_int_equal(pending("mail", "normal"), 0);
    assert_int_equal(lag("mail", "normal"), 0);
    snprintf(key, sizeof(key), "sluice:q:{mail}:done:%s", id);
    ttl = cmd_int("TTL %s", key);
    assert_true(ttl > QUEUE_PROCESSED_TTL_S_DEFAULT - 5 && ttl <= QUEUE_PROCESSED_TTL_S_DEFAULT);

    /* the delivery is settled: a second complete or fail changes nothing */
    assert_int_equal(queue_complete(pool, &o, &job, NULL), SL_ECONFLICT);
    assert_int_equal(queue_fail(pool, &o, &job, "late", NULL), SL_ECONFLICT);
    assert_stats("mail", "completed=1 completed:normal=1 enqueued=1 enqueued:normal=1");
    queue_job_release(&job);
    assert_null(job.payload);
    assert_int_equal(queue_fetch(pool, &o, "c1", 0, &job), SL_ENOTFOUND);
}

static void test_enqueue_is_idempotent(void **state)
{
    (void)state;
    const struct queue_opts o = {.name = "idem"};
    char id[QUEUE_JOB_ID_SIZE] = "";
    assert_int_equal(queue_enqueue(pool, &o, "order-42", "a", 1, QUEUE_PRIORITY_HIGH, 0, id),
                     SL_OK);
    assert_string_equal(id, "order-42");
    assert_int_equal(queue_enqueue(pool, &o, "order-42", "b", 1, QUEUE_PRIORITY_LOW, 0, NULL),
                     SL_EEXISTS);
    assert_int_equal(stat("idem", "enqueued"), 1);
    assert_int_equal(xlen("idem", "high"), 1);
    assert_int_equal(cmd_int("EXISTS %s", "sluice:q:{idem}:low"), 0);

    /* done and its record expired: the marker still refuses the id */
    struct queue_job job;
    fetch_expect(&o, "c", "order-42", 1, &job);
    assert_int_equal(queue_complete(pool, &o, &job, NULL), SL_OK);
    queue_job_release(&job);
    cmd_int("DEL %s", "sluice:q:{idem}:job:order-42");
    assert_int_equal(queue_enqueue(pool, &o, "order-42", "c", 1, QUEUE_PRIORITY_HIGH, 0, NULL),
                     SL_EEXISTS);
    assert_int_equal(stat("idem", "enqueued"), 1);

    char a[QUEUE_JOB_ID_SIZE], b[QUEUE_JOB_ID_SIZE];
    assert_int_equal(queue_enqueue(pool, &o, NULL, "", 0, QUEUE_PRIORITY_LOW, 0, a), SL_OK);
    assert_int_equal(queue_enqueue(pool, &o, NULL, NULL, 0, QUEUE_PRIORITY_LOW, 0, b), SL_OK);
    assert_string_not_equal(a, b);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    const struct queue_opts o = {.name = "args"};
    char big_id[80];
    memset(big_id, 'x', 64);
    big_id[64] = '\0';
    const char *const bad_ids[] = {"", "a{b}", "a b", "é", big_id};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++)
        assert_int_equal(queue_enqueue(pool, &o, bad_ids[i], "p", 1, QUEUE_PRIORITY_LOW, 0, NULL),
                         SL_EINVAL);
    big_id[63] = '\0';
    assert_int_equal(queue_enqueue(pool, &o, big_id, "p", 1, QUEUE_PRIORITY_LOW, 0, NULL), SL_OK);
    assert_int_equal(queue_enqueue(pool, &o, "x", "p", 1, QUEUE_PRIORITIES, 0, NULL), SL_EINVAL);
    assert_int_equal(queue_enqueue(pool, &o, "x", NULL, 1, QUEUE_PRIORITY_LOW, 0, NULL), SL_EINVAL);
    char *huge = calloc(1, QUEUE_PAYLOAD_MAX + 1);
    assert_non_null(huge);
    assert_int_equal(
        queue_enqueue(pool, &o, "x", huge, QUEUE_PAYLOAD_MAX + 1, QUEUE_PRIORITY_LOW, 0, NULL),
        SL_ETOOBIG);
    free(huge);
    assert_int_equal(
        queue_enqueue(pool, &o, "x", "p", 1, QUEUE_PRIORITY_LOW, QUEUE_DELAY_MAX_MS + 1, NULL),
        SL_ERANGE);

    static const struct queue_opts bad_opts[] = {
        {.name = NULL},
        {.name = ""},
        {.name = "a{b}"},
        {.name = "a:b"},
        {.name = "q", .backoff_base_ms = 10, .backoff_max_ms = 5},
        {.name = "q", .max_attempts = QUEUE_ATTEMPTS_MAX + 1},
    };
    struct queue_job job;
    for (size_t i = 0; i < sizeof(bad_opts) / sizeof(bad_opts[0]); i++) {
        assert_int_equal(
            queue_enqueue(pool, &bad_opts[i], "x", "p", 1, QUEUE_PRIORITY_LOW, 0, NULL), SL_EINVAL);
        assert_int_equal(queue_fetch(pool, &bad_opts[i], "c", 0, &job), SL_EINVAL);
    }
    assert_int_equal(queue_fetch(pool, &o, "", 0, &job), SL_EINVAL);
    assert_int_equal(queue_fetch(pool, &o, "a b", 0, &job), SL_EINVAL);
    assert_int_equal(queue_fetch(pool, &o, NULL, 0, &job), SL_EINVAL);
    assert_int_equal(queue_complete(pool, &o, &job, NULL), SL_EINVAL); /* zeroed: no id */
    assert_int_equal(queue_mark_processed(pool, &o, "a}b"), SL_EINVAL);
    assert_int_equal(queue_progress(pool, &o, "", 1, 2), SL_EINVAL);
    json_t *j;
    assert_int_equal(queue_status(pool, &o, NULL, &j), SL_EINVAL);
    assert_int_equal(queue_status(pool, &o, "nobody", &j), SL_ENOTFOUND);
    assert_null(j);
    assert_int_equal(queue_progress(pool, &o, "nobody", 1, 2), SL_ENOTFOUND);
}

static void test_priority_order(void **state)
{
    (void)state;
    const struct queue_opts o = {.name = "prio"};
    enqueue(&o, "l1", "low", QUEUE_PRIORITY_LOW, 0);
    enqueue(&o, "n1", "normal", QUEUE_PRIORITY_NORMAL, 0);
    enqueue(&o, "h1", "high", QUEUE_PRIORITY_HIGH, 0);
    enqueue(&o, "n2", "normal", QUEUE_PRIORITY_NORMAL, 0);
    static const char *const order[] = {"h1", "n1", "n2", "l1"};
    static const enum queue_priority lanes[] = {QUEUE_PRIORITY_HIGH, QUEUE_PRIORITY_NORMAL,
                                                QUEUE_PRIORITY_NORMAL, QUEUE_PRIORITY_LOW};
    for (int i = 0; i < 4; i++) {
        struct queue_job job;
        assert_int_equal(queue_fetch(pool, &o, "w", 0, &job), SL_OK);
        assert_string_equal(job.id, order[i]);
        assert_int_equal(job.lane, lanes[i]);
        assert_string_equal(job.payload, queue_priority_name(lanes[i]));
        /* one job held at a time: nothing else was delivered */
        assert_int_equal(
            pending("prio", "high") + pending("prio", "normal") + pending("prio", "low"), 1);
        assert_int_equal(queue_complete(pool, &o, &job, NULL), SL_OK);
        queue_job_release(&job);
    }
    assert_stats("prio", "completed=4 completed:high=1 completed:low=1 completed:normal=2 "
                         "enqueued=4 enqueued:high=1 enqueued:low=1 enqueued:normal=2");
}

static void test_delayed_jobs(void **state)
{
    (void)state;
    const struct queue_opts o = {.name = "later"};
    enqueue(&o, "d1", "x", QUEUE_PRIORITY_HIGH, 300);
    assert_state(&o, "d1", "delayed");
    long long due = status_int(&o, "d1", "due_ms");
    assert_int_equal(due - status_int(&o, "d1", "created_ms"), 300);
    assert_int_equal(cmd_int("ZCARD %s", "sluice:q:{later}:delayed"), 1);
    assert_int_equal(stat("later", "enqueued:high"), 1);
    long long ttl_ms = cmd_int("PTTL %s", "sluice:q:{later}:job:d1");
    assert_true(ttl_ms > QUEUE_STATUS_TTL_S_DEFAULT * 1000LL); /* the delay on top */

    struct queue_job job;
    assert_int_equal(queue_fetch(pool, &o, "w", 0, &job), SL_ENOTFOUND);
    fetch_expect(&o, "w", "d1", 1, &job);
    assert_true(status_int(&o, "d1", "started_ms") >= due);
    assert_string_equal(job.payload, "x");
    assert_int_equal(cmd_int("ZCARD %s", "sluice:q:{later}:delayed"), 0);
    assert_int_equal(queue_complete(pool, &o, &job, NULL), SL_OK);
    queue_job_release(&job);
    assert_int_equal(stat("later", "enqueued"), 1); /* a promotion is no new enqueue */

    /* one long fetch wakes up for a job that comes due while it blocks */
    enqueue(&o, "d2", "y", QUEUE_PRIORITY_LOW, 200);
    uint64_t t0 = clock_mono_ms();
    assert_int_equal(queue_fetch(pool, &o, "w", 4000, &job), SL_OK);
    assert_string_equal(job.id, "d2");
    assert_true(clock_mono_ms() - t0 < 2000);
    queue_job_release(&job);

    /* a delayed member whose record is gone is dropped, not delivered */
    cmd_int("ZADD sluice:q:{later}:delayed 1 %s", "ghost");
    assert_int_equal(queue_fetch(pool, &o, "w", 0, &job), SL_ENOTFOUND);
    assert_int_equal(cmd_int("ZCARD %s", "sluice:q:{later}:delayed"), 0);
}

static void test_retry_then_dead(void **state)
{
    (void)state;
    const struct queue_opts o = {
        .name = "flaky", .max_attempts = 3, .backoff_base_ms = 20, .backoff_max_ms = 30};
    enqueue(&o, "j", "payload", QUEUE_PRIORITY_LOW, 0);
    static const uint32_t low[] = {10, 15}, high[] = {20, 30}; /* equal jitter of 20, 40→30 */
    struct queue_job job;
    for (unsigned a = 1; a <= 2; a++) {
        fetch_expect(&o, "w", "j", a, &job);
        uint32_t wait = 0;
        assert_int_equal(queue_fail(pool, &o, &job, "boom", &wait), SL_OK);
        assert_in_range(wait, low[a - 1], high[a - 1]);
        json_t *j = status(&o, "j");
        assert_string_equal(json_string_value(json_object_get(j, "state")), "failed");
        assert_string_equal(json_string_value(json_object_get(j, "error")), "boom");
        assert_int_equal(json_integer_value(json_object_get(j, "attempts")), a);
        assert_int_equal(json_integer_value(json_object_get(j, "due_ms")) -
                             json_integer_value(json_object_get(j, "updated_ms")),
                         wait);
        json_decref(j);
        assert_int_equal(cmd_int("ZCARD %s", "sluice:q:{flaky}:delayed"), 1);
        queue_job_release(&job);
    }
    fetch_expect(&o, "w", "j", 3, &job);
    uint32_t wait = 99;
    char long_error[QUEUE_ERROR_MAX + 100];
    memset(long_error, 'e', sizeof(long_error) - 1);
    long_error[sizeof(long_error) - 1] = '\0';
    assert_int_equal(queue_fail(pool, &o, &job, long_error, &wait), SL_OK);
    assert_int_equal(wait, 0);
    queue_job_release(&job);
    assert_state(&o, "j", "dead");
    assert_int_equal(status_int(&o, "j", "attempts"), 3);

    redisReply *r = cmd("XRANGE sluice:q:{flaky}:dead - +");
    assert_int_equal(r->elements, 1);
    const redisReply *f = r->element[0]->element[1];
    static const char *const want[] = {"id",       "j", "payload", "payload",
                                       "attempts", "3", "lane",    "low"};
    for (size_t i = 0; i < f->elements; i += 2)
        for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w += 2)
            if (strcmp(f->element[i]->str, want[w]) == 0)
                assert_string_equal(f->element[i + 1]->str, want[w + 1]);
    for (size_t i = 0; i < f->elements; i += 2)
        if (strcmp(f->element[i]->str, "error") == 0)
            assert_int_equal(f->element[i + 1]->len, QUEUE_ERROR_MAX);
    freeReplyObject(r);

    /* failed = retried + dead, in the queue and in the lane */
    assert_stats("flaky", "dead=1 dead:low=1 enqueued=1 enqueued:low=1 failed=3 failed:low=3 "
                          "retried=2 retried:low=2");
    assert_int_equal(pending("flaky", "low"), 0);
    assert_int_equal(cmd_int("ZCARD %s", "sluice:q:{flaky}:delayed"), 0);
    assert_int_equal(queue_fetch(pool, &o, "w", 0, &job), SL_ENOTFOUND);
}

static void test_stalled_jobs_are_reclaimed(void **state)
{
    (void)state;
    const struct queue_opts o = {.name = "stall", .visibility_ms = 200};
    struct queue_job a, b;
    enqueue_held(&o, "s1", QUEUE_PRIORITY_NORMAL, &a);
    uint64_t t0 = clock_mono_ms();
    assert_int_equal(queue_fetch(pool, &o, "B", 0, &b), SL_ENOTFOUND);
    fetch_expect(&o, "B", "s1", 2, &b);
    assert_true(clock_mono_ms() - t0 >= 150);
    assert_string_equal(b.entry_id, a.entry_id);
    assert_string_equal(b.payload, "work");
    assert_false(b.already_processed);
    json_t *j = status(&o, "s1");
    assert_string_equal(json_string_value(json_object_get(j, "consumer")), "B");
    json_decref(j);
    assert_int_equal(stat("stall", "failed:normal"), 1);
    assert_int_equal(stat("stall", "retried:normal"), 1);

    /* the first to finish settles the job; the other delivery is told so */
    assert_int_equal(queue_complete(pool, &o, &b, "by B"), SL_OK);
    assert_int_equal(queue_complete(pool, &o, &a, "by A"), SL_ECONFLICT);
    assert_int_equal(stat("stall", "completed"), 1);
    j = status(&o, "s1");
    assert_string_equal(json_string_value(json_object_get(j, "result")), "by B");
    json_decref(j);
    queue_job_release(&a);
    queue_job_release(&b);

    /* a stalled job without attempts left goes dead */
    const struct queue_opts o2 = {.name = "stall2", .visibility_ms = 100, .max_attempts = 2};
    enqueue_held(&o2, "s2", QUEUE_PRIORITY_HIGH, &a);
    fetch_expect(&o2, "B", "s2", 2, &b);
    struct queue_job c;
    uint64_t end = clock_mono_ms() + DEADLINE_MS;
    while (stat("stall2", "dead") == 0 && clock_mono_ms() < end)
        assert_int_equal(queue_fetch(pool, &o2, "C", POLL_MS, &c), SL_ENOTFOUND);
    assert_state(&o2, "s2", "dead");
    assert_int_equal(xlen("stall2", "dead"), 1);
    assert_stats("stall2", "dead=1 dead:high=1 enqueued=1 enqueued:high=1 failed=2 "
                           "failed:high=2 retried=1 retried:high=1");
    assert_int_equal(pending("stall2", "high"), 0);
    assert_int_equal(queue_fail(pool, &o2, &b, "too late", NULL), SL_ECONFLICT);
    assert_int_equal(stat("stall2", "failed"), 2);
    queue_job_release(&a);
    queue_job_release(&b);
}

static void test_processed_marker(void **state)
{
    (void)state;
    const struct queue_opts o = {.name = "once", .visibility_ms = 100};
    struct queue_job a, b;
    enqueue_held(&o, "p1", QUEUE_PRIORITY_NORMAL, &a);
    assert_false(a.already_processed);
    /* the effect happened, then the worker died before acknowledging */
    assert_int_equal(queue_mark_processed(pool, &o, "p1"), SL_OK);
    assert_int_equal(queue_mark_processed(pool, &o, "p1"), SL_EEXISTS);
    fetch_expect(&o, "B", "p1", 2, &b);
    assert_true(b.already_processed);
    assert_int_equal(queue_complete(pool, &o, &b, NULL), SL_OK);
    assert_state(&o, "p1", "completed");
    queue_job_release(&a);
    queue_job_release(&b);

    /* the group made again at 0 redelivers the entry trimming kept (the cursor): it is
     * acknowledged unrun, as its record says completed */
    assert_int_equal(xlen("once", "normal"), 1);
    freeReplyObject(cmd("XGROUP DESTROY sluice:q:{once}:normal workers"));
    freeReplyObject(cmd("XGROUP CREATE sluice:q:{once}:normal workers 0"));
    assert_int_equal(queue_fetch(pool, &o, "A", 0, &a), SL_ENOTFOUND);
    assert_int_equal(pending("once", "normal"), 0);

    /* so is an entry that is not the job's current one */
    freeReplyObject(cmd("XADD sluice:q:{once}:normal * id p1 payload work attempts 0"));
    assert_int_equal(queue_fetch(pool, &o, "A", 0, &a), SL_ENOTFOUND);
    assert_int_equal(pending("once", "normal"), 0);
    assert_int_equal(stat("once", "completed"), 1);
    assert_int_equal(stat("once", "failed"), 1); /* the stalled first attempt, nothing else */

    /* a job cancelled while waiting (docs/queues.md rule 5) is acknowledged unrun */
    enqueue(&o, "p3", "work", QUEUE_PRIORITY_NORMAL, 0);
    freeReplyObject(cmd("HSET sluice:q:{once}:job:p3 state cancelled"));
    assert_int_equal(queue_fetch(pool, &o, "A", 0, &a), SL_ENOTFOUND);
    assert_int_equal(pending("once", "normal"), 0);
    assert_state(&o, "p3", "cancelled");

    /* ... also while the job is running */
    enqueue(&o, "p2", "mail", QUEUE_PRIORITY_NORMAL, 0);
    freeReplyObject(cmd("XADD sluice:q:{once}:normal * id p2 payload mail attempts 0"));
    fetch_expect(&o, "A", "p2", 1, &a);
    assert_int_equal(queue_fetch(pool, &o, "B", 0, &b), SL_ENOTFOUND);
    assert_int_equal(pending("once", "normal"), 1);
    assert_int_equal(queue_complete(pool, &o, &a, NULL), SL_OK);
    queue_job_release(&a);
}

/* Trimming removes acknowledged entries only: never one that is pending or undelivered. */
static void test_trim_keeps_pending(void **state)
{
    (void)state;
    /* retries wait a minute: t3's stays in the delayed set */
    const struct queue_opts o = {.name = "trim", .backoff_base_ms = 60000, .backoff_max_ms = 60000};
    static const char *const ids[] = {"t1", "t2", "t3", "t4", "t5"};
    for (int i = 0; i < 5; i++)
        enqueue(&o, ids[i], "x", QUEUE_PRIORITY_NORMAL, 0);
    struct queue_job job[5];
    for (int i = 0; i < 3; i++)
        fetch_expect(&o, "w", ids[i], 1, &job[i]);
    char got[64];

    assert_int_equal(queue_complete(pool, &o, &job[1], NULL), SL_OK); /* t1 still pending */
    lane_jobs("trim", "normal", got, sizeof(got));
    assert_string_equal(got, "t1,t2,t3,t4,t5");
    assert_int_equal(queue_complete(pool, &o, &job[0], NULL), SL_OK); /* oldest pending: t3 */
    lane_jobs("trim", "normal", got, sizeof(got));
    assert_string_equal(got, "t3,t4,t5");
    assert_int_equal(pending("trim", "normal"), 1);
    assert_int_equal(lag("trim", "normal"), 2);
    assert_int_equal(queue_fail(pool, &o, &job[2], "x", NULL), SL_OK); /* none pending */
    lane_jobs("trim", "normal", got, sizeof(got));
    assert_string_equal(got, "t3,t4,t5"); /* t4, t5 undelivered; t3 is the cursor */
    assert_int_equal(lag("trim", "normal"), 2);
    for (int i = 3; i < 5; i++) {
        fetch_expect(&o, "w", ids[i], 1, &job[i]);
        assert_int_equal(queue_complete(pool, &o, &job[i], NULL), SL_OK);
    }
    lane_jobs("trim", "normal", got, sizeof(got));
    assert_string_equal(got, "t5");
    assert_int_equal(lag("trim", "normal"), 0);
    for (int i = 0; i < 5; i++)
        queue_job_release(&job[i]);

    /* another group on the lane is protected too */
    enqueue(&o, "t6", "x", QUEUE_PRIORITY_NORMAL, 0);
    freeReplyObject(cmd("XGROUP CREATE sluice:q:{trim}:normal audit 0"));
    fetch_expect(&o, "w", "t6", 1, &job[0]);
    assert_int_equal(queue_complete(pool, &o, &job[0], NULL), SL_OK);
    queue_job_release(&job[0]);
    assert_int_equal(xlen("trim", "normal"), 2);
}

static void test_status_and_progress(void **state)
{
    (void)state;
    const struct queue_opts o = {.name = "bulk", .max_attempts = 2};
    enqueue(&o, "links-1", "[...]", QUEUE_PRIORITY_LOW, 0);
    assert_int_equal(queue_progress(pool, &o, "links-1", 3, 10), SL_OK);
    json_t *j = status(&o, "links-1");
    assert_true(json_integer_value(json_object_get(j, "updated_ms")) >=
                json_integer_value(json_object_get(j, "created_ms")));
    json_object_del(j, "created_ms");
    json_object_del(j, "updated_ms");
    json_object_del(j, "entry");
    char *s = json_dump_compact(j);
    assert_string_equal(s, "{\"id\":\"links-1\",\"state\":\"waiting\",\"lane\":\"low\","
                           "\"attempts\":0,\"max_attempts\":2,\"progress_done\":3,"
                           "\"progress_total\":10}");
    free(s);
    json_decref(j);

    /* progress keeps a delayed job's longer TTL */
    enqueue(&o, "links-2", "[...]", QUEUE_PRIORITY_LOW, 3600 * 1000);
    assert_int_equal(queue_progress(pool, &o, "links-2", 0, 1), SL_OK);
    assert_true(cmd_int("TTL %s", "sluice:q:{bulk}:job:links-2") > QUEUE_STATUS_TTL_S_DEFAULT);

    /* a record that breaks the layout */
    freeReplyObject(cmd("HSET sluice:q:{bulk}:job:bad state waiting attempts many"));
    assert_int_equal(queue_status(pool, &o, "bad", &j), SL_EPARSE);
    freeReplyObject(cmd("SET sluice:q:{bulk}:job:str x"));
    assert_int_equal(queue_progress(pool, &o, "str", 1, 1), SL_EPARSE);
}

/* A fetch blocked on the lanes is woken by an enqueue, on a pool whose command timeout is
 * shorter than the wait. */
static void *enqueue_when_blocked(void *arg)
{
    const struct queue_opts *o = arg;
    for (uint64_t end = clock_mono_ms() + DEADLINE_MS; clock_mono_ms() < end;) {
        redisReply *r = redis_pool_command(pool, "CLIENT LIST");
        bool blocked = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cmd=xreadgroup");
        freeReplyObject(r);
        if (blocked)
            break;
    }
    queue_enqueue(pool, o, "wake", "now", 3, QUEUE_PRIORITY_LOW, 0, NULL);
    return NULL;
}

static void test_blocking_fetch(void **state)
{
    (void)state;
    const struct redis_opts ro = {.command_timeout_ms = 100};
    struct redis_pool *quick = pool_on_server("", &ro);
    assert_non_null(quick);
    const struct queue_opts o = {.name = "block"};
    struct queue_job job;
    uint64_t t0 = clock_mono_ms();
    assert_int_equal(queue_fetch(quick, &o, "w", 300, &job), SL_ENOTFOUND);
    uint64_t took = clock_mono_ms() - t0;
    assert_in_range(took, 290, 2000);

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, enqueue_when_blocked, (void *)&o), 0);
    assert_int_equal(queue_fetch(quick, &o, "w", 4000, &job), SL_OK);
    pthread_join(t, NULL);
    assert_string_equal(job.id, "wake");
    assert_int_equal(job.lane, QUEUE_PRIORITY_LOW);
    assert_int_equal(queue_complete(quick, &o, &job, NULL), SL_OK);
    queue_job_release(&job);
    redis_pool_free(quick);
}

/* Clients whose commands CLIENT PAUSE WRITE holds back (flag b). */
static int postponed_clients(void)
{
    redisReply *r = cmd("CLIENT LIST");
    int n = 0;
    for (const char *at = r->str; (at = strstr(at, " flags=")) != NULL;) {
        at += strlen(" flags=");
        n += memchr(at, 'b', strcspn(at, " ")) != NULL;
    }
    freeReplyObject(r);
    return n;
}

static void wait_postponed(int n)
{
    uint64_t end = clock_mono_ms() + DEADLINE_MS;
    while (postponed_clients() < n && clock_mono_ms() < end)
        ;
    assert_int_equal(postponed_clients(), n);
}

struct fetch_call {
    const struct queue_opts *o;
    struct queue_job job;
    int rv;
};

static void *fetch_thread(void *arg)
{
    struct fetch_call *f = arg;
    f->rv = queue_fetch(pool, f->o, "w", 2000, &f->job);
    return NULL;
}

static const struct queue_opts two_lanes = {.name = "two"};

static void *enqueue_high(void *arg)
{
    (void)arg;
    queue_enqueue(pool, &two_lanes, "H", "h", 1, QUEUE_PRIORITY_HIGH, 0, NULL);
    return NULL;
}

static void *enqueue_low(void *arg)
{
    (void)arg;
    queue_enqueue(pool, &two_lanes, "L", "l", 1, QUEUE_PRIORITY_LOW, 0, NULL);
    return NULL;
}

/* Jobs that arrive in two lanes between a fetch's empty script run and its blocking read
 * come back from that one XREADGROUP together: the high one is delivered, the low one is
 * given back to its lane, not held. CLIENT PAUSE WRITE lines the commands up: the fetch
 * script, then both enqueues, then the read. */
static void test_blocked_read_gives_back_extras(void **state)
{
    (void)state;
    const struct queue_opts *o = &two_lanes;
    struct queue_job job;
    enqueue(o, "warm", "w", QUEUE_PRIORITY_NORMAL, 0); /* scripts loaded: no NOSCRIPT later */
    fetch_expect(o, "w", "warm", 1, &job);
    assert_int_equal(queue_complete(pool, o, &job, NULL), SL_OK);
    queue_job_release(&job);

    freeReplyObject(cmd("CLIENT PAUSE 3000 WRITE"));
    struct fetch_call f = {.o = o};
    pthread_t tf, th, tl;
    assert_int_equal(pthread_create(&tf, NULL, fetch_thread, &f), 0);
    wait_postponed(1);
    assert_int_equal(pthread_create(&th, NULL, enqueue_high, NULL), 0);
    wait_postponed(2);
    assert_int_equal(pthread_create(&tl, NULL, enqueue_low, NULL), 0);
    wait_postponed(3);
    freeReplyObject(cmd("CLIENT UNPAUSE"));
    pthread_join(tf, NULL);
    pthread_join(th, NULL);
    pthread_join(tl, NULL);

    assert_int_equal(f.rv, SL_OK);
    assert_string_equal(f.job.id, "H");
    assert_int_equal(pending("two", "high"), 1);
    assert_int_equal(pending("two", "low"), 0);
    assert_int_equal(lag("two", "low"), 1);
    char got[32];
    lane_jobs("two", "low", got, sizeof(got));
    assert_string_equal(got, "L,L"); /* the acknowledged first entry is kept as the cursor */
    assert_int_equal(queue_complete(pool, o, &f.job, NULL), SL_OK);
    queue_job_release(&f.job);

    fetch_expect(o, "w", "L", 1, &job);
    assert_int_equal(queue_complete(pool, o, &job, NULL), SL_OK);
    queue_job_release(&job);
    assert_stats("two", "completed=3 completed:high=1 completed:low=1 completed:normal=1 "
                        "enqueued=3 enqueued:high=1 enqueued:low=1 enqueued:normal=1");
}

static void test_maxmemory_policy(void **state)
{
    (void)state;
    char err[QUEUE_ERR_SIZE];
    freeReplyObject(cmd("CONFIG SET maxmemory-policy allkeys-lru"));
    assert_int_equal(queue_check_redis(pool, err), SL_EINVAL);
    assert_string_equal(err, "maxmemory-policy is allkeys-lru: the queue's keys could be "
                             "evicted; set noeviction (or volatile-*)");
    freeReplyObject(cmd("CONFIG SET maxmemory-policy volatile-ttl"));
    assert_int_equal(queue_check_redis(pool, err), SL_OK);
    assert_string_equal(err, "maxmemory-policy is volatile-ttl: job records and processed markers "
                             "(keys with a TTL) could be evicted; noeviction keeps them");
    freeReplyObject(cmd("CONFIG SET maxmemory-policy noeviction"));
    assert_int_equal(queue_check_redis(pool, err), SL_OK);
    assert_string_equal(err, "");

    /* a user that may not run CONFIG: said, but allowed */
    freeReplyObject(cmd("ACL SETUSER noconf on >pw ~* &* +@all -config"));
    struct redis_pool *limited = pool_on_server("noconf:pw@", NULL);
    assert_non_null(limited);
    assert_int_equal(queue_check_redis(limited, err), SL_OK);
    assert_non_null(strstr(err, "maxmemory-policy could not be checked (NOPERM"));
    assert_non_null(strstr(err, "make sure it is noeviction"));
    redis_pool_free(limited);

    struct redis_pool *down = redis_pool_new("redis://127.0.0.1:1", NULL, NULL);
    assert_int_equal(queue_check_redis(down, err), SL_ESTORE);
    assert_string_equal(err, "redis unreachable (redis://127.0.0.1:1/0)");
    const struct queue_opts o = {.name = "down"};
    struct queue_job job;
    assert_int_equal(queue_enqueue(down, &o, NULL, "p", 1, QUEUE_PRIORITY_LOW, 0, NULL), SL_ESTORE);
    assert_int_equal(queue_fetch(down, &o, "w", 0, &job), SL_ESTORE);
    redis_pool_free(down);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_schedule),
        cmocka_unit_test(test_transitions),
        cmocka_unit_test(test_enqueue_fetch_complete),
        cmocka_unit_test(test_enqueue_is_idempotent),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_priority_order),
        cmocka_unit_test(test_delayed_jobs),
        cmocka_unit_test(test_retry_then_dead),
        cmocka_unit_test(test_stalled_jobs_are_reclaimed),
        cmocka_unit_test(test_processed_marker),
        cmocka_unit_test(test_trim_keeps_pending),
        cmocka_unit_test(test_status_and_progress),
        cmocka_unit_test(test_blocking_fetch),
        cmocka_unit_test(test_blocked_read_gives_back_extras),
        cmocka_unit_test(test_maxmemory_policy),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
