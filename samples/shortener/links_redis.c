#include "links_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "link.h"
#include "log.h"

#define KEY_MAX 160

/* A reply is usable when Redis answered and did not answer with an error. */
static int reply_status(const redisReply *r)
{
    if (!r)
        return SL_ESTORE;
    if (r->type == REDIS_REPLY_ERROR) {
        log_event(LOG_WARN, NULL, NULL, "redis error reply", "error", r->str, NULL);
        return SL_ESTORE;
    }
    return SL_OK;
}

static void link_key(char out[KEY_MAX], const char *kind, const char *code)
{
    snprintf(out, KEY_MAX, "app:%s:{%s}", kind, code);
}

static void owner_key(char out[KEY_MAX], const char *owner)
{
    snprintf(out, KEY_MAX, "app:owner:{%s}:links", owner);
}

int links_put(struct shortener *s, const char *code, const json_t *record, int64_t expires_ms)
{
    char key[KEY_MAX];
    link_key(key, "link", code);
    char *json = json_dump_compact(record);
    if (!json)
        return SL_ENOMEM;
    struct redis_pool *pool = shortener_link_pool(s, code);
    redisReply *r;
    if (expires_ms > 0)
        r = redis_pool_command(pool, "SET %s %s NX PXAT %lld", key, json,
                               (long long)(expires_ms + LINK_GONE_WINDOW_MS));
    else
        r = redis_pool_command(pool, "SET %s %s NX", key, json);
    free(json);
    int rc = reply_status(r);
    if (rc == SL_OK && r->type == REDIS_REPLY_NIL)
        rc = SL_EEXISTS;
    freeReplyObject(r);
    return rc;
}

static int links_get_from(struct redis_pool *pool, const char *key, json_t **record)
{
    redisReply *r = redis_pool_command(pool, "GET %s", key);
    int rc = reply_status(r);
    if (rc == SL_OK && r->type != REDIS_REPLY_STRING)
        rc = SL_ENOTFOUND;
    if (rc == SL_OK) {
        char err[JSON_ERR_MAX];
        if (json_parse(r->str, r->len, record, err) || !json_is_object(*record)) {
            log_event(LOG_ERROR, NULL, NULL, "corrupt link record", "key", key, NULL);
            rc = SL_ESTORE;
        }
    }
    freeReplyObject(r);
    return rc;
}

int links_get(struct shortener *s, const char *code, bool fresh, json_t **record)
{
    char key[KEY_MAX];
    link_key(key, "link", code);
    *record = NULL;
    if (s->replica && !fresh) {
        int rc = links_get_from(s->replica, key, record);
        if (rc != SL_ESTORE)
            return rc;
        json_decref(*record);
        *record = NULL;
    }
    return links_get_from(shortener_link_pool(s, code), key, record);
}

int links_delete(struct shortener *s, const char *code, const char *owner)
{
    char k1[KEY_MAX], k2[KEY_MAX], k3[KEY_MAX], k4[KEY_MAX];
    link_key(k1, "link", code);
    link_key(k2, "clicks", code);
    link_key(k3, "daily", code);
    link_key(k4, "uv", code);
    redisReply *r = redis_pool_command(shortener_link_pool(s, code), "DEL %s %s %s %s", k1, k2,
                                       k3, k4);
    int rc = reply_status(r);
    freeReplyObject(r);
    if (rc)
        return rc;
    return links_index_remove(s, owner, code);
}

int links_next_seq(struct shortener *s, uint64_t *seq)
{
    redisReply *r = redis_pool_command(s->primary, "INCR app:seq");
    int rc = reply_status(r);
    if (rc == SL_OK && r->type != REDIS_REPLY_INTEGER)
        rc = SL_ESTORE;
    if (rc == SL_OK)
        *seq = (uint64_t)r->integer;
    freeReplyObject(r);
    return rc;
}

int links_index_add(struct shortener *s, const char *owner, const char *code, uint64_t seq)
{
    char key[KEY_MAX];
    owner_key(key, owner);
    redisReply *r = redis_pool_command(s->primary, "ZADD %s %llu %s", key,
                                       (unsigned long long)seq, code);
    int rc = reply_status(r);
    freeReplyObject(r);
    return rc;
}

int links_index_remove(struct shortener *s, const char *owner, const char *code)
{
    char key[KEY_MAX];
    owner_key(key, owner);
    redisReply *r = redis_pool_command(s->primary, "ZREM %s %s", key, code);
    int rc = reply_status(r);
    freeReplyObject(r);
    return rc;
}

int links_index_page(struct shortener *s, const char *owner, uint64_t before_seq,
                     size_t limit, char (*codes)[33], uint64_t *seqs, size_t *n, int *more)
{
    char key[KEY_MAX], max[32];
    owner_key(key, owner);
    if (before_seq)
        snprintf(max, sizeof(max), "(%llu", (unsigned long long)before_seq);
    else
        snprintf(max, sizeof(max), "+inf");
    redisReply *r = redis_pool_command(s->primary,
                                       "ZREVRANGEBYSCORE %s %s -inf WITHSCORES LIMIT 0 %llu",
                                       key, max, (unsigned long long)(limit + 1));
    int rc = reply_status(r);
    if (rc == SL_OK && r->type != REDIS_REPLY_ARRAY)
        rc = SL_ESTORE;
    *n = 0;
    *more = 0;
    for (size_t i = 0; rc == SL_OK && i + 1 < r->elements; i += 2) {
        if (*n == limit) {
            *more = 1;
            break;
        }
        snprintf(codes[*n], 33, "%s", r->element[i]->str);
        seqs[*n] = strtoull(r->element[i + 1]->str, NULL, 10);
        (*n)++;
    }
    freeReplyObject(r);
    return rc;
}

/* Pipelined: one round trip for the four or eight commands of a click. */
int links_count_click(struct shortener *s, const char *code, const char *day,
                      const char *visitor, int64_t expire_at_ms, long long *total)
{
    *total = 0;
    char kc[KEY_MAX], kd[KEY_MAX], ku[KEY_MAX];
    link_key(kc, "clicks", code);
    link_key(kd, "daily", code);
    link_key(ku, "uv", code);
    struct redis_pool *pool = shortener_link_pool(s, code);
    redisContext *c = redis_pool_get(pool);
    if (!c)
        return SL_ESTORE;
    int cmds = 3;
    redisAppendCommand(c, "INCR %s", kc);
    redisAppendCommand(c, "HINCRBY %s %s 1", kd, day);
    redisAppendCommand(c, "PFADD %s %s", ku, visitor);
    if (expire_at_ms > 0) {
        const char *keys[3] = {kc, kd, ku};
        for (int i = 0; i < 3; i++, cmds++)
            redisAppendCommand(c, "PEXPIREAT %s %lld", keys[i], (long long)expire_at_ms);
    }
    int rc = SL_OK;
    for (int i = 0; i < cmds; i++) {
        void *reply = NULL;
        if (redisGetReply(c, &reply) != REDIS_OK) {
            rc = SL_ESTORE;
            break;
        }
        if (reply_status(reply))
            rc = SL_ESTORE;
        else if (i == 0) /* INCR: the link's clicks so far */
            *total = ((redisReply *)reply)->integer;
        freeReplyObject(reply);
    }
    redis_pool_put(pool, c);
    return rc;
}

static int stats_daily(struct redis_pool *pool, const char *key, const char *oldest_day,
                       json_t *daily)
{
    redisReply *r = redis_pool_command(pool, "HGETALL %s", key);
    int rc = reply_status(r);
    for (size_t i = 0; rc == SL_OK && i + 1 < r->elements; i += 2) {
        const char *day = r->element[i]->str;
        if (strcmp(day, oldest_day) < 0) {
            /* Older than the window: drop it, so the hash stays bounded. */
            redisReply *d = redis_pool_command(pool, "HDEL %s %s", key, day);
            freeReplyObject(d);
            continue;
        }
        json_object_set_new(daily, day, json_integer(strtoll(r->element[i + 1]->str, NULL, 10)));
    }
    freeReplyObject(r);
    return rc;
}

int links_stats(struct shortener *s, const char *code, const char *oldest_day, json_t **out)
{
    char kc[KEY_MAX], kd[KEY_MAX], ku[KEY_MAX];
    link_key(kc, "clicks", code);
    link_key(kd, "daily", code);
    link_key(ku, "uv", code);
    struct redis_pool *pool = shortener_link_pool(s, code);
    redisReply *clicks = redis_pool_command(pool, "GET %s", kc);
    redisReply *uv = redis_pool_command(pool, "PFCOUNT %s", ku);
    json_t *daily = json_object();
    int rc = reply_status(clicks);
    if (rc == SL_OK)
        rc = reply_status(uv);
    if (rc == SL_OK)
        rc = stats_daily(pool, kd, oldest_day, daily);
    if (rc == SL_OK) {
        long long n = clicks->type == REDIS_REPLY_STRING ? strtoll(clicks->str, NULL, 10) : 0;
        *out = json_pack("{s:s, s:I, s:I, s:O}", "code", code, "clicks", (json_int_t)n,
                         "unique_visitors", (json_int_t)uv->integer, "daily", daily);
    }
    json_decref(daily);
    freeReplyObject(clicks);
    freeReplyObject(uv);
    return rc;
}
