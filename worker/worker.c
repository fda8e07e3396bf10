/*
 * sluice-worker — the sample API's asynchronous half (issue 9, docs/worker.md).
 *
 *   fan-out thread: SUBSCRIBE sluice:events; each event → one delivery job per subscription
 *     of the event's owner that wants its type (queue "webhooks"; job id = event id + "." +
 *     subscription id, so a repeated event is not enqueued twice)
 *   N job threads: fetch from "webhooks", then "bulk" (and --test-queue), run the handler,
 *     then complete (ack + processed marker, one script) or fail (retry with back-off, or
 *     dead letter after max attempts)
 *
 * Deliveries follow Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature
 * (v1, HMAC-SHA256 of id.timestamp.body with the subscription's secret); a 2xx completes, a
 * 410 completes and turns the subscription off, anything else (5xx, timeout, refused) is a
 * failure that is retried with back-off. Targets on private, loopback or link-local
 * addresses are refused unless --allow names them (SSRF). Each subscription has its own
 * delivery rate limit (the shared limiter engine), so one flooded endpoint cannot hold every
 * thread. Every attempt leaves a receipt in app:webhook:{id}:deliveries.
 *
 * SIGTERM: the threads finish the job in hand and stop; a job fetched but not finished is
 * reclaimed by another worker after the visibility timeout (at-least-once).
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "flags.h"
#include "handlers.h"
#include "log.h"
#include "queue.h"
#include "ratelimit.h"
#include "rng.h"
#include "shortener.h"
#include "store_redis.h"
#include "version.h"
#include "webhook.h"
#include "webhooks.h"

#define THREADS_MAX 64
#define RECEIPTS_KEEP 100

struct worker_cfg {
    const char *redis;
    const char *allow;
    const char *test_queue; /* a queue whose jobs count their effect (tests, bench) */
    const char *log_level;
    unsigned long concurrency, timeout_ms, max_attempts, visibility_ms, rate_per_s, backoff_ms;
};

static struct {
    struct worker_cfg cfg;
    struct redis_pool *pool;
    struct shortener sh; /* the bulk job creates links through the sample API's code */
    struct rl_local *limits;
    const char *allow[32];
    atomic_bool stop;
    _Atomic uint64_t done, failed;
} W;

static struct queue_opts qopts(const char *name)
{
    struct queue_opts o = {.name = name, .max_attempts = (unsigned)W.cfg.max_attempts,
                           .visibility_ms = (uint32_t)W.cfg.visibility_ms,
                           .backoff_base_ms = (uint32_t)W.cfg.backoff_ms};
    return o;
}

/* ---- deliveries ---------------------------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

static void receipt(const char *sub, const struct queue_job *j, long status, double ms,
                    const char *outcome, uint32_t retry_in_ms)
{
    char at[32];
    clock_format_iso8601(clock_wall_ms(), at);
    json_t *r = json_pack("{s:s, s:i, s:i, s:f, s:s, s:s}", "job", j->id, "attempt", (int)j->attempt,
                          "status", (int)status, "latency_ms", ms, "outcome", outcome, "at", at);
    if (retry_in_ms)
        json_object_set_new(r, "next_retry_in_ms", json_integer(retry_in_ms));
    char *text = json_dump_compact(r);
    json_decref(r);
    redisReply *a = redis_pool_command(W.pool, "LPUSH app:webhook:{%s}:deliveries %s", sub, text);
    redisReply *b = redis_pool_command(W.pool, "LTRIM app:webhook:{%s}:deliveries 0 %d", sub,
                                       RECEIPTS_KEEP - 1);
    freeReplyObject(a);
    freeReplyObject(b);
    free(text);
}

/* POST the signed event; the HTTP status, 0 when there was no answer. */
static long post_event(const json_t *sub, const char *event_id, const char *body, double *ms)
{
    char sig[WEBHOOK_SIG_MAX], h_id[160], h_ts[64], h_sig[WEBHOOK_SIG_MAX + 32];
    int64_t ts = clock_wall_s();
    const char *secret = json_string_value(json_object_get(sub, "secret"));
    if (webhook_sign(secret, event_id, ts, body, strlen(body), sig) != SL_OK)
        return 0;
    snprintf(h_id, sizeof(h_id), "webhook-id: %s", event_id);
    snprintf(h_ts, sizeof(h_ts), "webhook-timestamp: %lld", (long long)ts);
    snprintf(h_sig, sizeof(h_sig), "webhook-signature: %s", sig);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, h_id);
    h = curl_slist_append(h, h_ts);
    h = curl_slist_append(h, h_sig);
    h = curl_slist_append(h, "User-Agent: sluice-worker");
    CURL *c = curl_easy_init();
    long code = 0;
    uint64_t t0 = clock_mono_ns();
    curl_easy_setopt(c, CURLOPT_URL, json_string_value(json_object_get(sub, "url")));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)W.cfg.timeout_ms);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect could aim anywhere */
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    *ms = (double)(clock_mono_ns() - t0) / 1e6;
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return code;
}

/* The job again, due in delay_ms, as a new job (id + ".d" + attempt); this one completes.
 * A rate-limited delivery so uses no attempt and holds no thread. */
static void defer(const struct queue_opts *o, const struct queue_job *j, uint64_t delay_ms)
{
    char id[QUEUE_JOB_ID_SIZE];
    snprintf(id, sizeof(id), "%.50s.d%u%04x", j->id, j->attempt, (unsigned)(rng_u64() & 0xffff));
    if (queue_enqueue(W.pool, o, id, j->payload, j->payload_len, j->lane, delay_ms, NULL) == SL_OK)
        queue_complete(W.pool, o, j, "{\"deferred\":true}");
}

static void deliver(const struct queue_job *j)
{
    struct queue_opts o = qopts(QUEUE_WEBHOOKS);
    json_t *job = json_loadb(j->payload, j->payload_len, 0, NULL);
    const char *sub_id = json_string_value(json_object_get(job, "subscription"));
    json_t *event = json_object_get(job, "event");
    redisReply *r = sub_id ? redis_pool_command(W.pool, "GET app:webhook:{%s}", sub_id) : NULL;
    json_t *sub = r && r->type == REDIS_REPLY_STRING ? json_loads(r->str, 0, NULL) : NULL;
    freeReplyObject(r);
    char why[128] = "";
    if (j->already_processed) { /* delivered before a crash took the ack: not twice */
        queue_complete(W.pool, &o, j, NULL);
    } else if (!sub || json_is_false(json_object_get(sub, "active"))) { /* deleted or off */
        queue_complete(W.pool, &o, j, "{\"skipped\":\"subscription gone or off\"}");
    } else if (!webhook_target_allowed(json_string_value(json_object_get(sub, "url")), W.allow, why)) {
        receipt(sub_id, j, 0, 0, why, 0);
        uint32_t retry = 0;
        queue_fail(W.pool, &o, j, why, &retry);
    } else {
        struct rl_params lim = {.alg = RL_TOKEN_BUCKET, .limit = W.cfg.rate_per_s,
                                .window_ms = 1000, .burst = W.cfg.rate_per_s};
        struct rl_decision d;
        rl_local_decide(W.limits, 1, &lim, sub_id, strlen(sub_id), clock_mono_ms(), 1, &d);
        if (!d.allowed) { /* this endpoint's share is used up: later, without an attempt */
            defer(&o, j, d.retry_after_ms ? d.retry_after_ms : 100);
        } else {
            char *body = json_dump_compact(event);
            double ms = 0;
            long status = post_event(sub, json_string_value(json_object_get(event, "id")), body, &ms);
            free(body);
            if (status >= 200 && status < 300) {
                receipt(sub_id, j, status, ms, "delivered", 0);
                queue_complete(W.pool, &o, j, NULL);
            } else if (status == 410) { /* the receiver says: stop (Standard Webhooks) */
                receipt(sub_id, j, status, ms, "gone: subscription turned off", 0);
                json_object_set_new(sub, "active", json_false());
                char *text = json_dump_compact(sub);
                freeReplyObject(redis_pool_command(W.pool, "SET app:webhook:{%s} %s", sub_id, text));
                free(text);
                queue_complete(W.pool, &o, j, "{\"stopped\":410}");
            } else {
                uint32_t retry = 0;
                queue_fail(W.pool, &o, j, status ? "endpoint error" : "no answer", &retry);
                receipt(sub_id, j, status, ms, status ? "failed" : "no answer", retry);
            }
        }
    }
    json_decref(sub);
    json_decref(job);
}

/* ---- the bulk job ----------------------------------------------------------------------------- */

/* Each link is created once even when the job is redelivered: the code of link i is kept
 * under app:bulk:{JOB}:{i} (a crash between creating a link and recording it can still
 * leave one extra link: the window is one Redis round trip). */
static void bulk(const struct queue_job *j)
{
    struct queue_opts o = qopts(QUEUE_BULK);
    json_t *job = json_loadb(j->payload, j->payload_len, 0, NULL);
    const char *owner = json_string_value(json_object_get(job, "owner"));
    json_t *links = json_object_get(job, "links"), *results = json_array();
    size_t n = json_array_size(links), ok = 0;
    for (size_t i = 0; owner && i < n; i++) {
        redisReply *r = redis_pool_command(W.pool, "GET app:bulk:{%s}:%zu", j->id, i);
        if (r && r->type == REDIS_REPLY_STRING) {
            json_array_append_new(results, json_pack("{s:i, s:s}", "index", (int)i, "code", r->str));
            ok++;
            freeReplyObject(r);
            continue;
        }
        freeReplyObject(r);
        char *text = json_dump_compact(json_array_get(links, i));
        struct field_errors fe;
        field_errors_init(&fe);
        char jerr[JSON_ERR_MAX], code[LINK_CODE_MAX];
        json_t *repr = NULL;
        int rc = text ? links_create(&W.sh, owner, text, strlen(text), &fe, jerr, &repr, code) : SL_ENOMEM;
        if (rc == SL_OK) {
            freeReplyObject(redis_pool_command(W.pool, "SET app:bulk:{%s}:%zu %s EX 86400", j->id, i, code));
            json_array_append_new(results, json_pack("{s:i, s:s}", "index", (int)i, "code", code));
            ok++;
        } else {
            json_array_append_new(results, json_pack("{s:i, s:s, s:O}", "index", (int)i, "error",
                                                     err_str(rc), "errors", fe.list));
        }
        json_decref(repr);
        field_errors_release(&fe);
        free(text);
        if ((i + 1) % 10 == 0 || i + 1 == n)
            queue_progress(W.pool, &o, j->id, (unsigned)(i + 1), (unsigned)n);
    }
    json_t *result = json_pack("{s:i, s:i, s:o}", "created", (int)ok, "failed", (int)(n - ok),
                               "links", results);
    char *text = json_dump_compact(result);
    queue_complete(W.pool, &o, j, text);
    free(text);
    json_decref(result);
    json_decref(job);
}

/* --test-queue: the effect is one counter increment per job, done with the processed
 * marker in one step, so a redelivered job (a worker killed before its ack) has no second
 * effect. The tests count effects per job id. */
static void count_job(const struct queue_job *j)
{
    struct queue_opts o = qopts(W.cfg.test_queue);
    if (!strcmp(j->payload, "fail")) { /* a job that always fails: retries, then dead */
        queue_fail(W.pool, &o, j, "this job always fails", NULL);
        return;
    }
    char marker[160];
    snprintf(marker, sizeof(marker), "sluice:q:{%s}:done:%s", W.cfg.test_queue, j->id);
    if (!j->already_processed) /* the effect and the marker in one step (docs/queues.md) */
        freeReplyObject(redis_pool_command(
            W.pool, "EVAL %s 4 %s sluice:test:effects:{%s} sluice:test:order:{%s} sluice:test:at:{%s} %s %llu",
            "if redis.call('SET', KEYS[1], '1', 'NX', 'EX', 604800) then "
            "redis.call('HINCRBY', KEYS[2], ARGV[1], 1) redis.call('RPUSH', KEYS[3], ARGV[1]) "
            "redis.call('HSET', KEYS[4], ARGV[1], ARGV[2]) end return 1",
            marker, W.cfg.test_queue, W.cfg.test_queue, W.cfg.test_queue, j->id,
            (unsigned long long)clock_wall_ms()));
    queue_complete(W.pool, &o, j, NULL);
}

/* ---- threads ----------------------------------------------------------------------------------- */

struct source {
    const char *queue;
    void (*handle)(const struct queue_job *j);
};

static void *job_main(void *arg)
{
    (void)arg;
    char consumer[96];
    snprintf(consumer, sizeof(consumer), "%d-%lx", (int)getpid(), (unsigned long)pthread_self());
    struct source sources[3] = {{QUEUE_WEBHOOKS, deliver}, {QUEUE_BULK, bulk}, {NULL, NULL}};
    int n = 2;
    if (W.cfg.test_queue)
        sources[n++] = (struct source){W.cfg.test_queue, count_job};
    while (!atomic_load(&W.stop)) {
        bool any = false;
        for (int i = 0; i < n && !atomic_load(&W.stop); i++) {
            struct queue_opts o = qopts(sources[i].queue);
            struct queue_job j;
            int rc = queue_fetch(W.pool, &o, consumer, i == n - 1 ? 200 : 0, &j);
            if (rc == SL_OK) {
                any = true;
                sources[i].handle(&j);
                queue_job_release(&j);
                atomic_fetch_add(&W.done, 1);
            } else if (rc != SL_ENOTFOUND) {
                struct timespec ts = {0, 200 * 1000 * 1000}; /* Redis away: a short pause */
                nanosleep(&ts, NULL);
            }
        }
        (void)any;
    }
    return NULL;
}

/* SUBSCRIBE sluice:events → one delivery job per matching subscription. */
static void fan_out(const char *text)
{
    json_t *e = json_loads(text, 0, NULL);
    const char *owner = json_string_value(json_object_get(e, "owner"));
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *eid = json_string_value(json_object_get(e, "id"));
    redisReply *ids = owner ? redis_pool_command(W.pool, "SMEMBERS app:webhooks:owner:{%s}", owner) : NULL;
    for (size_t i = 0; ids && ids->type == REDIS_REPLY_ARRAY && type && eid && i < ids->elements; i++) {
        const char *sid = ids->element[i]->str;
        redisReply *r = redis_pool_command(W.pool, "GET app:webhook:{%s}", sid);
        json_t *sub = r && r->type == REDIS_REPLY_STRING ? json_loads(r->str, 0, NULL) : NULL;
        freeReplyObject(r);
        bool wants = false;
        size_t k;
        json_t *t;
        json_array_foreach(json_object_get(sub, "events"), k, t)
            wants |= !strcmp(json_string_value(t) ?: "", type);
        if (wants && !json_is_false(json_object_get(sub, "active"))) {
            json_t *job = json_pack("{s:s, s:O}", "subscription", sid, "event", e);
            char *payload = json_dump_compact(job), jid[QUEUE_JOB_ID_SIZE];
            char id[QUEUE_JOB_ID_SIZE];
            snprintf(id, sizeof(id), "%.30s.%.28s", eid, sid);
            struct queue_opts o = qopts(QUEUE_WEBHOOKS);
            queue_enqueue(W.pool, &o, id, payload, strlen(payload), QUEUE_PRIORITY_NORMAL, 0, jid);
            free(payload);
            json_decref(job);
        }
        json_decref(sub);
    }
    freeReplyObject(ids);
    json_decref(e);
}

static void *fanout_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&W.stop)) {
        redisContext *c = redis_pool_get(W.pool);
        redisReply *r = c ? redisCommand(c, "SUBSCRIBE %s", EVENTS_CHANNEL) : NULL;
        freeReplyObject(r);
        struct timeval tv = {0, 500 * 1000}; /* wake twice a second to see SIGTERM */
        if (c)
            redisSetTimeout(c, tv);
        while (c && r && !atomic_load(&W.stop)) {
            void *reply = NULL;
            if (redisGetReply(c, &reply) != REDIS_OK) {
                if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    c->err = 0; /* only the timeout: keep listening */
                    continue;
                }
                break;
            }
            redisReply *m = reply;
            if (m && m->type == REDIS_REPLY_ARRAY && m->elements == 3 &&
                !strcmp(m->element[0]->str, "message"))
                fan_out(m->element[2]->str);
            freeReplyObject(m);
        }
        if (c)
            redisFree(c); /* a subscribed connection never goes back to the pool */
        if (!atomic_load(&W.stop)) {
            struct timespec ts = {1, 0}; /* Redis away: try again in a second */
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* ---- main ------------------------------------------------------------------------------------------ */

#define WORKER_USAGE                                                                       \
    "usage: sluice-worker [--redis URL] [--concurrency N] [--allow HOST,...] [options]\n"   \
    "\nDelivers the sample API's webhooks and runs its bulk jobs from the Redis Streams\n"  \
    "queues (docs/worker.md). For the receiving end: sluice-webhook-receiver."

/* `sluice-worker enqueue --queue NAME --count N [--lane L] [--delay-ms MS] [--payload P]
 * [--id-prefix P]`: jobs for tests and the benchmark; prints how many were added. */
static int enqueue_main(int argc, char **argv)
{
    const char *redis = "redis://127.0.0.1:6379", *queue = NULL, *lane_s = "normal", *payload = "x",
               *prefix = NULL;
    unsigned long count = 1, delay = 0, attempts = QUEUE_MAX_ATTEMPTS_DEFAULT;
    const struct flag table[] = {
        {"redis", FLAG_STRING, &redis, "URL", "the queue's Redis", 0, 0, NULL},
        {"queue", FLAG_STRING, &queue, "NAME", "the queue", 0, 0, ""},
        {"count", FLAG_UINT, &count, "N", "jobs to add (1)", 1, 10000000, NULL},
        {"lane", FLAG_STRING, &lane_s, "LANE", "high, normal or low (normal)", 0, 0, NULL},
        {"delay-ms", FLAG_UINT, &delay, "MS", "due this much later (0)", 0, 86400000, NULL},
        {"payload", FLAG_STRING, &payload, "TEXT", "each job's payload (x)", 0, 0, NULL},
        {"id-prefix", FLAG_STRING, &prefix, "P", "job ids P0, P1 ... (random otherwise)", 0, 0, NULL},
        {"max-attempts", FLAG_UINT, &attempts, "N", "attempts before a dead letter (5)", 1, 100, NULL},
        {0},
    };
    char err[256], rerr[128];
    int pos;
    enum queue_priority lane;
    if (flags_wants(argc, argv, "--help")) {
        flags_usage(stdout, "usage: sluice-worker enqueue --queue NAME [--count N] ...", table);
        return 0;
    }
    if (flags_parse(table, argc, argv, &pos, err) || !queue || !queue_priority_parse(lane_s, &lane)) {
        fprintf(stderr, "sluice-worker enqueue: %s\n", !queue ? "--queue NAME is required" : err);
        return 2;
    }
    struct redis_pool *p = redis_pool_new(redis, NULL, rerr);
    if (!p) {
        fprintf(stderr, "sluice-worker enqueue: --redis: %s\n", rerr);
        return 2;
    }
    struct queue_opts o = {.name = queue, .max_attempts = (unsigned)attempts};
    unsigned long added = 0;
    for (unsigned long i = 0; i < count; i++) {
        char id[QUEUE_JOB_ID_SIZE];
        snprintf(id, sizeof(id), "%s%lu", prefix ? prefix : "", i);
        int rc = queue_enqueue(p, &o, prefix ? id : NULL, payload, strlen(payload), lane, delay, NULL);
        if (rc == SL_OK)
            added++;
        else if (rc != SL_EEXISTS) {
            fprintf(stderr, "sluice-worker enqueue: %s after %lu jobs\n", err_str(rc), added);
            redis_pool_free(p);
            return 1;
        }
    }
    printf("%lu\n", added);
    redis_pool_free(p);
    return 0;
}

static void split_allow(char *list)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t && n < 31; t = strtok_r(NULL, ",", &save))
        W.allow[n++] = t;
    W.allow[n] = NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "enqueue"))
        return enqueue_main(argc - 1, argv + 1);
    struct worker_cfg *c = &W.cfg;
    *c = (struct worker_cfg){.redis = "redis://127.0.0.1:6379", .log_level = "info",
                             .concurrency = 4, .timeout_ms = 5000, .max_attempts = 5,
                             .visibility_ms = 30000, .rate_per_s = 20, .backoff_ms = 1000};
    const struct flag table[] = {
        {"redis", FLAG_STRING, &c->redis, "URL", "the sample API's Redis", 0, 0, NULL},
        {"concurrency", FLAG_UINT, &c->concurrency, "N", "jobs at once (4)", 1, THREADS_MAX, NULL},
        {"allow", FLAG_STRING, &c->allow, "HOST,...",
         "private or loopback webhook targets allowed anyway (the demo: 127.0.0.1)", 0, 0, NULL},
        {"timeout-ms", FLAG_UINT, &c->timeout_ms, "MS", "a delivery's deadline (5000)", 100, 120000,
         NULL},
        {"max-attempts", FLAG_UINT, &c->max_attempts, "N", "attempts before a dead letter (5)", 1,
         100, NULL},
        {"visibility-ms", FLAG_UINT, &c->visibility_ms, "MS",
         "a job in hand this long is given to another worker (30000)", 100, 3600000, NULL},
        {"rate-per-s", FLAG_UINT, &c->rate_per_s, "N", "deliveries per second per subscription (20)",
         1, 100000, NULL},
        {"backoff-ms", FLAG_UINT, &c->backoff_ms, "MS",
         "first retry's back-off, doubling up to 5 min, with jitter (1000)", 1, 600000, NULL},
        {"test-queue", FLAG_STRING, &c->test_queue, "NAME",
         "also run jobs of this queue, counting their effect once each (tests, bench)", 0, 0, NULL},
        {"log-level", FLAG_STRING, &c->log_level, "LEVEL", "debug, info, warn or error (info)", 0, 0,
         NULL},
        {0},
    };
    if (flags_wants(argc, argv, "--help")) {
        flags_usage(stdout, WORKER_USAGE, table);
        return 0;
    }
    if (flags_wants(argc, argv, "--version")) {
        printf("sluice-worker %s\n", SLUICE_VERSION);
        return 0;
    }
    char err[256];
    int pos;
    enum log_level level;
    if (flags_parse(table, argc, argv, &pos, err) || flags_apply_env(table, err)) {
        fprintf(stderr, "sluice-worker: %s\n", err);
        return 2;
    }
    if (pos != argc || !log_level_parse(c->log_level, &level)) {
        fprintf(stderr, "sluice-worker: %s (see --help)\n",
                pos != argc ? "unexpected argument" : "--log-level: expected debug, info, warn or error");
        return 2;
    }
    log_setup("sluice-worker", level, 2);
    char *allow = strdup(c->allow ? c->allow : "");
    split_allow(allow);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char rerr[128];
    struct shortener_config sc = {.listen = "127.0.0.1:0", .redis = c->redis, .redirect_status = 302,
                                  .threads = 1, .max_body_bytes = 65536, .token_ttl_s = 900,
                                  .log_level = c->log_level};
    if (!(W.pool = redis_pool_new(c->redis, NULL, rerr)) || shortener_init(&W.sh, &sc, err) ||
        !(W.limits = rl_local_new(100000))) {
        fprintf(stderr, "sluice-worker: --redis: %s\n", W.pool ? err : rerr);
        return 2;
    }
    char qerr[QUEUE_ERR_SIZE];
    int qc = queue_check_redis(W.pool, qerr);
    if (qc == SL_EINVAL) { /* a Redis that may evict jobs: refuse, and say how to fix it */
        fprintf(stderr, "sluice-worker: %s\n", qerr);
        return 2;
    }
    if (qerr[0])
        log_event(LOG_WARN, NULL, NULL, "queue store", "note", qerr, NULL);
    pthread_t threads[THREADS_MAX + 1];
    unsigned n = (unsigned)c->concurrency;
    for (unsigned i = 0; i < n; i++)
        pthread_create(&threads[i], NULL, job_main, NULL);
    pthread_create(&threads[n], NULL, fanout_main, NULL);
    log_event(LOG_INFO, NULL, NULL, "working", "redis", redis_pool_url(W.pool), "version",
              SLUICE_VERSION, NULL);
    int sig;
    while (sigwait(&stop, &sig) != 0)
        ;
    log_event(LOG_INFO, NULL, NULL, "stopping: finishing the jobs in hand", NULL);
    atomic_store(&W.stop, true);
    for (unsigned i = 0; i <= n; i++)
        pthread_join(threads[i], NULL);
    rl_local_free(W.limits);
    shortener_release(&W.sh);
    redis_pool_free(W.pool);
    free(allow);
    curl_global_cleanup();
    return 0;
}
