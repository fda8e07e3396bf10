#include "policy_sync.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "policy.h"
#include "redis_url.h"

struct policy_sync {
    struct agent *agent;
    pthread_mutex_t lock;      /* override, status */
    atomic_bool overridden;
    uint64_t applied_version;  /* the Redis version in force (0 = none yet) */
    uint64_t rejected_version; /* last version that failed validation */
    json_t *rejected_errors;
    uint64_t next_poll_ms;
    atomic_bool dirty;         /* the subscriber heard of a change */
    /* subscriber thread */
    char *redis_url;
    pthread_t thread;
    bool thread_started;
    int stop_fd;
};

/* ---- the subscriber (pub/sub hint) ---------------------------------------------------- */

static redisContext *subscribe(const char *url)
{
    struct redis_url u;
    char err[128];
    if (redis_url_parse(url, &u, err))
        return NULL;
    struct timeval tv = {1, 0};
    redisContext *c = u.unix_path[0] ? redisConnectUnixWithTimeout(u.unix_path, tv)
                                     : redisConnectWithTimeout(u.host, u.port, tv);
    if (!c || c->err)
        goto fail;
    redisSetTimeout(c, tv);
    redisReply *r = NULL;
    if (u.password[0]) {
        r = u.user[0] ? redisCommand(c, "AUTH %s %s", u.user, u.password)
                      : redisCommand(c, "AUTH %s", u.password);
        bool ok = r && r->type != REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (!ok)
            goto fail;
    }
    r = redisCommand(c, "SUBSCRIBE %s %s", POLICIES_CHANNEL, CACHE_INVALIDATE_CHANNEL);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        goto fail;
    }
    freeReplyObject(r);
    return c;
fail:
    if (c)
        redisFree(c);
    return NULL;
}

/* Waits for the connection or the stop fd; false when stopping. */
static bool wait_readable(int redis_fd, int stop_fd, int timeout_ms, bool *readable)
{
    struct pollfd p[2] = {{.fd = stop_fd, .events = POLLIN}, {.fd = redis_fd, .events = POLLIN}};
    int n = poll(p, redis_fd >= 0 ? 2 : 1, timeout_ms);
    *readable = n > 0 && redis_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR));
    return !(n > 0 && (p[0].revents & POLLIN));
}

/* A cache invalidation goes to the agent's cache; anything else is a policy hint. */
static void on_message(struct policy_sync *ps, const redisReply *r)
{
    bool cache = r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                 r->element[0]->type == REDIS_REPLY_STRING &&
                 strcmp(r->element[0]->str, "message") == 0 &&
                 strcmp(r->element[1]->str, CACHE_INVALIDATE_CHANNEL) == 0;
    if (!cache)
        atomic_store(&ps->dirty, true);
    else if (ps->agent->on_cache_invalidate)
        ps->agent->on_cache_invalidate(ps->agent, r->element[2]->str, r->element[2]->len);
}

static void *subscriber_main(void *arg)
{
    struct policy_sync *ps = arg;
    unsigned backoff_ms = 200;
    bool readable;
    while (true) {
        redisContext *c = subscribe(ps->redis_url);
        if (!c) {
            if (!wait_readable(-1, ps->stop_fd, (int)backoff_ms, &readable))
                return NULL;
            backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
            continue;
        }
        backoff_ms = 200;
        atomic_store(&ps->dirty, true); /* we may have missed announcements meanwhile */
        while (wait_readable(c->fd, ps->stop_fd, -1, &readable)) {
            void *reply = NULL;
            if (!readable || redisGetReply(c, &reply) != REDIS_OK)
                break;
            on_message(ps, reply);
            freeReplyObject(reply);
        }
        bool stopping = !wait_readable(-1, ps->stop_fd, 0, &readable);
        redisFree(c);
        if (stopping)
            return NULL;
    }
}

struct policy_sync *policy_sync_new(struct agent *a, const char *redis_url)
{
    struct policy_sync *ps = calloc(1, sizeof(*ps));
    if (!ps)
        return NULL;
    ps->agent = a;
    ps->stop_fd = -1;
    pthread_mutex_init(&ps->lock, NULL);
    atomic_store(&ps->dirty, true);
    ps->rejected_version = UINT64_MAX; /* none yet: version 0 (no key) is a real answer */
    if (!redis_url)
        return ps;
    ps->redis_url = strdup(redis_url);
    ps->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ps->redis_url && ps->stop_fd >= 0 &&
        pthread_create(&ps->thread, NULL, subscriber_main, ps) == 0)
        ps->thread_started = true;
    else
        log_event(LOG_WARN, NULL, NULL, "policy subscriber not started: polling only", NULL);
    return ps;
}

void policy_sync_free(struct policy_sync *ps)
{
    if (!ps)
        return;
    if (ps->thread_started) {
        uint64_t one = 1;
        if (write(ps->stop_fd, &one, sizeof(one)) < 0)
            log_msgf(LOG_WARN, "policy subscriber stop: %s", strerror(errno));
        pthread_join(ps->thread, NULL);
    }
    if (ps->stop_fd >= 0)
        close(ps->stop_fd);
    json_decref(ps->rejected_errors);
    free(ps->redis_url);
    pthread_mutex_destroy(&ps->lock);
    free(ps);
}

/* ---- polling and applying ------------------------------------------------------------- */

/* HGETALL → a set; NULL with errors (or a store failure: *store_failed). */
static struct policy_set *fetch(struct redis_pool *pool, uint64_t version,
                                struct field_errors *fe, bool *store_failed)
{
    redisReply *r = redis_pool_command(pool, "HGETALL %s", POLICIES_KEY);
    *store_failed = !r || r->type != REDIS_REPLY_ARRAY;
    if (*store_failed) {
        freeReplyObject(r);
        return NULL;
    }
    json_t *docs = json_array();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        json_t *doc;
        char jerr[JSON_ERR_MAX];
        if (json_parse(r->element[i + 1]->str, r->element[i + 1]->len, &doc, jerr)) {
            field_errors_add(fe, r->element[i]->str, "is not JSON: %s", jerr);
            continue;
        }
        json_array_append_new(docs, doc);
    }
    freeReplyObject(r);
    struct policy_set *s = field_errors_any(fe) ? NULL : policy_set_parse(docs, version, fe);
    json_decref(docs);
    return s;
}

static void reject(struct policy_sync *ps, uint64_t version, struct field_errors *fe)
{
    char *text = json_dump_compact(fe->list);
    char v[24];
    snprintf(v, sizeof(v), "%llu", (unsigned long long)version);
    log_event(LOG_ERROR, NULL, NULL, "policies rejected; the previous set stays in force",
              "version", v, "errors", text ? text : "?", NULL);
    free(text);
    pthread_mutex_lock(&ps->lock);
    json_decref(ps->rejected_errors);
    ps->rejected_errors = json_incref(fe->list);
    ps->rejected_version = version;
    pthread_mutex_unlock(&ps->lock);
}

static bool read_version(struct redis_pool *pool, uint64_t *version)
{
    redisReply *r = redis_pool_command(pool, "GET %s", POLICIES_VERSION_KEY);
    bool ok = r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL);
    *version = ok && r->type == REDIS_REPLY_STRING ? strtoull(r->str, NULL, 10) : 0;
    freeReplyObject(r);
    return ok;
}

void policy_sync_tick(struct policy_sync *ps, struct redis_pool *pool, uint64_t now_ms)
{
    if (!pool || atomic_load(&ps->overridden))
        return;
    bool dirty = atomic_exchange(&ps->dirty, false);
    if (!dirty && now_ms < ps->next_poll_ms)
        return;
    ps->next_poll_ms = now_ms + POLICY_POLL_MS;
    uint64_t version;
    if (!read_version(pool, &version) || version == ps->applied_version ||
        version == ps->rejected_version)
        return;
    struct field_errors fe;
    field_errors_init(&fe);
    bool store_failed;
    struct policy_set *s = fetch(pool, version, &fe, &store_failed);
    if (s) {
        agent_publish_policies(ps->agent, s);
        ps->applied_version = version;
        char v[24];
        snprintf(v, sizeof(v), "%llu", (unsigned long long)version);
        log_event(LOG_INFO, NULL, NULL, "policies applied", "version", v, NULL);
    } else if (!store_failed) {
        reject(ps, version, &fe);
    }
    field_errors_release(&fe);
}

int policy_sync_override(struct policy_sync *ps, const json_t *docs, struct field_errors *fe)
{
    if (!docs) {
        pthread_mutex_lock(&ps->lock);
        ps->overridden = false;
        ps->applied_version = 0; /* re-read Redis's set on the next tick */
        pthread_mutex_unlock(&ps->lock);
        atomic_store(&ps->dirty, true);
        struct policy_set *empty = policy_set_empty(0);
        if (empty)
            agent_publish_policies(ps->agent, empty);
        return SL_OK;
    }
    struct policy_set *s = policy_set_parse(docs, 0, fe);
    if (!s)
        return SL_EINVAL;
    s->local_override = true;
    pthread_mutex_lock(&ps->lock);
    ps->overridden = true;
    pthread_mutex_unlock(&ps->lock);
    agent_publish_policies(ps->agent, s);
    return SL_OK;
}

bool policy_sync_overridden(const struct policy_sync *ps)
{
    return atomic_load(&ps->overridden);
}

json_t *policy_sync_status(const struct policy_sync *ps)
{
    struct policy_sync *m = (struct policy_sync *)ps;
    pthread_mutex_lock(&m->lock);
    json_t *o = json_pack("{s:b, s:I}", "local_override", (int)atomic_load(&m->overridden), "redis_version",
                          (json_int_t)m->applied_version);
    if (m->rejected_errors)
        json_object_set_new(o, "rejected", json_pack("{s:I, s:O}", "version",
                                                     (json_int_t)m->rejected_version, "errors",
                                                     m->rejected_errors));
    pthread_mutex_unlock(&m->lock);
    return o;
}
