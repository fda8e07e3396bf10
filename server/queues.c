/*
 * queues — read-only inspection of the job queues' keys (queues.h, docs/queues.md).
 *
 * One queue is one MULTI/EXEC of CMD_COUNT commands, pipelined on one connection: one
 * round trip, and a snapshot in which lengths, pending counts and counters agree. Missing
 * keys answer "ERR no such key" or "NOGROUP" inside EXEC; those mean "not there yet" and
 * read as zeros. Replies are RESP2 (hiredis 0.14): XINFO maps are flat name/value arrays,
 * read by name so that fields added by later Redis versions do not matter.
 */
#include "queues.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define ERR_SIZE 128

static const char *const lane_names[QUEUE_LANES] = {
#define QUEUE_LANE_NAME(id, name) name,
    QUEUE_LANE_MAP(QUEUE_LANE_NAME)
#undef QUEUE_LANE_NAME
};

static const char *const counter_names[QUEUE_COUNTERS] = {
#define QUEUE_COUNTER_NAME(id, name) name,
    QUEUE_COUNTER_MAP(QUEUE_COUNTER_NAME)
#undef QUEUE_COUNTER_NAME
};

/* The replies of one snapshot, in the order they are sent (append_commands). */
enum { LANE_STREAM, LANE_GROUPS, LANE_CONSUMERS, LANE_PENDING, LANE_CMDS };
enum {
    CMD_DELAYED_COUNT = QUEUE_LANES * LANE_CMDS,
    CMD_DELAYED_NEXT,
    CMD_DEAD,
    CMD_STATS,
    CMD_TIME,
    CMD_COUNT
};

struct stream_id {
    uint64_t ms, seq;
};

const char *queue_lane_name(enum queue_lane lane)
{
    return (unsigned)lane < QUEUE_LANES ? lane_names[lane] : "unknown";
}

const char *queue_counter_name(enum queue_counter counter)
{
    return (unsigned)counter < QUEUE_COUNTERS ? counter_names[counter] : "unknown";
}

bool queue_name_is_valid(const char *name)
{
    if (!name)
        return false;
    size_t len = strlen(name);
    if (len == 0 || len >= QUEUE_NAME_SIZE)
        return false;
    for (const char *c = name; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool queue_key(char *out, size_t cap, const char *name, const char *suffix)
{
    if (!queue_name_is_valid(name))
        return false;
    int n = snprintf(out, cap, QUEUE_KEY_PREFIX "{%s}:%s", name, suffix);
    return n >= 0 && (size_t)n < cap;
}

__attribute__((format(printf, 2, 3))) static void set_err(char *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, ERR_SIZE, fmt, ap);
    va_end(ap);
}

/* ---- reading replies ------------------------------------------------------------------ */

/* Digits only (no sign, no spaces), at most INT64_MAX so that JSON can carry it. */
static bool parse_count(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > INT64_MAX)
        return false;
    *out = v;
    return true;
}

/* An integer reply ≥ 0, or a string of digits (hash values, TIME). */
static bool reply_count(const redisReply *r, uint64_t *out)
{
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
        *out = (uint64_t)r->integer;
        return true;
    }
    return r && r->type == REDIS_REPLY_STRING && parse_count(r->str, out);
}

/* "ms-seq" */
static bool id_parse(const char *s, struct stream_id *id)
{
    const char *dash = strchr(s, '-');
    char ms[24];
    if (!dash || (size_t)(dash - s) >= sizeof(ms))
        return false;
    memcpy(ms, s, (size_t)(dash - s));
    ms[dash - s] = '\0';
    return parse_count(ms, &id->ms) && parse_count(dash + 1, &id->seq);
}

static bool reply_id(const redisReply *r, struct stream_id *id)
{
    return r && r->type == REDIS_REPLY_STRING && id_parse(r->str, id);
}

static int id_cmp(const struct stream_id *a, const struct stream_id *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* The value after name in a flat [name, value, ...] array (a RESP2 map); NULL if absent. */
static const redisReply *map_get(const redisReply *map, const char *name)
{
    if (!map || map->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2) {
        const redisReply *k = map->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
            return map->element[i + 1];
    }
    return NULL;
}

/* A missing stream or group: zeros, not an error. */
static bool reply_is_missing(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR &&
           (strncmp(r->str, "ERR no such key", 15) == 0 || strncmp(r->str, "NOGROUP", 7) == 0);
}

/* A key that breaks the layout (WRONGTYPE, a reply of the wrong shape). */
static int layout_error(char *err, const char *key, const char *cmd, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR)
        set_err(err, "%s: %s", key, r->str);
    else
        set_err(err, "%s: unexpected reply to %s", key, cmd);
    return SL_EPARSE;
}

/* ---- the snapshot --------------------------------------------------------------------- */

static bool append_lane(redisContext *c, const char *key)
{
    /* the order of enum LANE_* */
    return redisAppendCommand(c, "XINFO STREAM %s", key) == REDIS_OK &&
           redisAppendCommand(c, "XINFO GROUPS %s", key) == REDIS_OK &&
           redisAppendCommand(c, "XINFO CONSUMERS %s %s", key, QUEUE_GROUP) == REDIS_OK &&
           redisAppendCommand(c, "XPENDING %s %s", key, QUEUE_GROUP) == REDIS_OK;
}

static bool append_commands(redisContext *c, const char *name)
{
    char key[QUEUE_KEY_SIZE];
    bool ok = redisAppendCommand(c, "MULTI") == REDIS_OK;
    for (int l = 0; l < QUEUE_LANES && ok; l++)
        ok = queue_key(key, sizeof(key), name, lane_names[l]) && append_lane(c, key);
    /* the order of CMD_DELAYED_COUNT .. CMD_TIME */
    ok = ok && queue_key(key, sizeof(key), name, "delayed") &&
         redisAppendCommand(c, "ZCARD %s", key) == REDIS_OK &&
         redisAppendCommand(c, "ZRANGE %s 0 0 WITHSCORES", key) == REDIS_OK;
    ok = ok && queue_key(key, sizeof(key), name, "dead") &&
         redisAppendCommand(c, "XLEN %s", key) == REDIS_OK;
    ok = ok && queue_key(key, sizeof(key), name, "stats") &&
         redisAppendCommand(c, "HGETALL %s", key) == REDIS_OK;
    return ok && redisAppendCommand(c, "TIME") == REDIS_OK &&
           redisAppendCommand(c, "EXEC") == REDIS_OK;
}

/* MULTI, the commands, EXEC: the EXEC reply (CMD_COUNT replies) into *exec. */
static int snapshot(struct redis_pool *p, const char *name, redisReply **exec, char *err)
{
    redisContext *c = redis_pool_get(p);
    if (!c) {
        set_err(err, "redis unreachable (%s)", redis_pool_url(p));
        return SL_ESTORE;
    }
    if (!append_commands(c, name)) {
        redisFree(c);
        set_err(err, "out of memory");
        return SL_ENOMEM;
    }
    redisReply *r = NULL;
    for (int i = 0; i < CMD_COUNT + 2; i++) { /* MULTI's +OK, CMD_COUNT +QUEUED, EXEC */
        freeReplyObject(r);
        r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            set_err(err, "redis failed (%s): %s", redis_pool_url(p), c->errstr);
            redis_pool_put(p, c); /* c->err is set: freed */
            return SL_ESTORE;
        }
    }
    redis_pool_put(p, c);
    if (r->type != REDIS_REPLY_ARRAY || r->elements != CMD_COUNT) {
        set_err(err, "redis refused the snapshot: %s",
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply to EXEC");
        freeReplyObject(r);
        return SL_ESTORE;
    }
    *exec = r;
    return SL_OK;
}

/* ---- one lane ------------------------------------------------------------------------- */

struct stream_summary {
    uint64_t length;
    bool has_entries;
    struct stream_id first, last; /* valid when has_entries */
};

struct group_summary {
    bool found;
    uint64_t consumers;
    struct stream_id delivered; /* last-delivered-id: the group's cursor */
    bool lag_known;
    uint64_t lag;
};

static bool entry_id(const redisReply *entry, struct stream_id *id)
{
    return entry && entry->type == REDIS_REPLY_ARRAY && entry->elements >= 1 &&
           reply_id(entry->element[0], id);
}

static int parse_stream(const redisReply *r, const char *key, struct stream_summary *s,
                        bool *exists, char *err)
{
    *exists = !reply_is_missing(r);
    if (!*exists)
        return SL_OK;
    if (!reply_count(map_get(r, "length"), &s->length))
        return layout_error(err, key, "XINFO STREAM", r);
    s->has_entries = entry_id(map_get(r, "first-entry"), &s->first) &&
                     entry_id(map_get(r, "last-entry"), &s->last);
    return SL_OK;
}

static int parse_groups(const redisReply *r, const char *key, struct group_summary *g, char *err)
{
    if (reply_is_missing(r))
        return SL_OK;
    if (r->type != REDIS_REPLY_ARRAY)
        return layout_error(err, key, "XINFO GROUPS", r);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i], *name = map_get(e, "name");
        if (!name || name->type != REDIS_REPLY_STRING || strcmp(name->str, QUEUE_GROUP) != 0)
            continue; /* other groups are not this layout's business */
        if (!reply_count(map_get(e, "consumers"), &g->consumers) ||
            !reply_id(map_get(e, "last-delivered-id"), &g->delivered))
            return layout_error(err, key, "XINFO GROUPS", r);
        g->lag_known = reply_count(map_get(e, "lag"), &g->lag); /* nil, or Redis < 7 */
        g->found = true;
    }
    return SL_OK;
}

static int64_t lane_lag(const struct stream_summary *s, const struct group_summary *g)
{
    if (!g->found)
        return (int64_t)s->length; /* nobody reads yet: every entry waits */
    if (g->lag_known)
        return (int64_t)g->lag;
    /* Redis 7 has no lag when entries were deleted after the cursor (Redis 6 never has
     * one); entries_added − entries_read would count the deleted ones, so only the cases
     * the ids settle exactly are answered. */
    if (!s->has_entries || id_cmp(&g->delivered, &s->last) >= 0)
        return 0;
    if (id_cmp(&g->delivered, &s->first) < 0)
        return (int64_t)s->length;
    return QUEUE_LAG_UNKNOWN;
}

/* XPENDING summary: [count, smallest id, largest id, [[consumer, count], ...]]. */
static int parse_pending(const redisReply *r, const char *key, uint64_t now_ms,
                         struct queue_lane_info *lane, char *err)
{
    if (reply_is_missing(r))
        return SL_OK;
    struct stream_id oldest;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        !reply_count(r->element[0], &lane->pending))
        return layout_error(err, key, "XPENDING", r);
    if (lane->pending == 0)
        return SL_OK;
    if (!reply_id(r->element[1], &oldest))
        return layout_error(err, key, "XPENDING", r);
    snprintf(lane->oldest_pending_id, sizeof(lane->oldest_pending_id), "%s", r->element[1]->str);
    lane->oldest_pending_age_ms = now_ms > oldest.ms ? now_ms - oldest.ms : 0;
    return SL_OK;
}

static int parse_consumers(const redisReply *r, const char *key, struct queue_lane_info *lane,
                           char *err)
{
    if (reply_is_missing(r))
        return SL_OK;
    if (r->type != REDIS_REPLY_ARRAY)
        return layout_error(err, key, "XINFO CONSUMERS", r);
    for (size_t i = 0; i < r->elements && lane->consumers_listed < QUEUE_CONSUMERS_MAX; i++) {
        struct queue_consumer *c = &lane->consumer[lane->consumers_listed];
        const redisReply *name = map_get(r->element[i], "name");
        if (!name || name->type != REDIS_REPLY_STRING ||
            !reply_count(map_get(r->element[i], "pending"), &c->pending) ||
            !reply_count(map_get(r->element[i], "idle"), &c->idle_ms))
            return layout_error(err, key, "XINFO CONSUMERS", r);
        snprintf(c->name, sizeof(c->name), "%s", name->str);
        lane->consumers_listed++;
    }
    return SL_OK;
}

static int parse_lane(redisReply *const *r, const char *key, uint64_t now_ms,
                      struct queue_lane_info *lane, bool *exists, char *err)
{
    struct stream_summary s = {0};
    struct group_summary g = {0};
    int rv = parse_stream(r[LANE_STREAM], key, &s, exists, err);
    if (rv == SL_OK)
        rv = parse_groups(r[LANE_GROUPS], key, &g, err);
    if (rv == SL_OK && g.found)
        rv = parse_pending(r[LANE_PENDING], key, now_ms, lane, err);
    if (rv == SL_OK && g.found)
        rv = parse_consumers(r[LANE_CONSUMERS], key, lane, err);
    lane->length = s.length;
    lane->group = g.found;
    lane->consumers = g.consumers;
    lane->lag = lane_lag(&s, &g);
    return rv;
}

/* ---- the rest of the queue ------------------------------------------------------------ */

/* "enqueued" → the queue-wide counter, "enqueued:high" → the lane's; NULL otherwise. */
static uint64_t *counter_slot(struct queue_info *q, const char *field)
{
    for (int c = 0; c < QUEUE_COUNTERS; c++) {
        size_t n = strlen(counter_names[c]);
        if (strncmp(field, counter_names[c], n) != 0)
            continue;
        if (field[n] == '\0')
            return &q->counters[c];
        for (int l = 0; l < QUEUE_LANES && field[n] == ':'; l++)
            if (strcmp(field + n + 1, lane_names[l]) == 0)
                return &q->lane[l].counters[c];
    }
    return NULL;
}

static int parse_stats(const redisReply *r, const char *key, struct queue_info *q, char *err)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return layout_error(err, key, "HGETALL", r);
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *field = r->element[i];
        uint64_t *slot = field->type == REDIS_REPLY_STRING ? counter_slot(q, field->str) : NULL;
        if (slot && !reply_count(r->element[i + 1], slot)) {
            set_err(err, "%s: field '%s' is not a count", key, field->str);
            return SL_EPARSE;
        }
    }
    q->exists |= r->elements > 0;
    return SL_OK;
}

static int parse_delayed(redisReply *const *r, const char *key, struct queue_info *q, char *err)
{
    const redisReply *count = r[CMD_DELAYED_COUNT], *next = r[CMD_DELAYED_NEXT];
    if (!reply_count(count, &q->delayed))
        return layout_error(err, key, "ZCARD", count);
    if (next->type != REDIS_REPLY_ARRAY || (q->delayed > 0 && next->elements != 2))
        return layout_error(err, key, "ZRANGE", next);
    if (q->delayed == 0)
        return SL_OK;
    const redisReply *score = next->element[1];
    char *end = NULL;
    double due = score->type == REDIS_REPLY_STRING ? strtod(score->str, &end) : NAN;
    if (!end || *end || !isfinite(due) || fabs(due) >= 9.2e18)
        return layout_error(err, key, "ZRANGE", next);
    q->next_due_ms = (int64_t)due;
    q->exists = true;
    return SL_OK;
}

/* TIME: [seconds, microseconds] as strings. */
static bool reply_time_ms(const redisReply *r, uint64_t *ms)
{
    uint64_t s, us;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !reply_count(r->element[0], &s) ||
        !reply_count(r->element[1], &us))
        return false;
    *ms = s * 1000 + us / 1000;
    return true;
}

static void sum_lanes(struct queue_info *q)
{
    for (int l = 0; l < QUEUE_LANES; l++) {
        const struct queue_lane_info *lane = &q->lane[l];
        q->length += lane->length;
        q->active += lane->pending;
        if (q->waiting != QUEUE_LAG_UNKNOWN)
            q->waiting =
                lane->lag == QUEUE_LAG_UNKNOWN ? QUEUE_LAG_UNKNOWN : q->waiting + lane->lag;
        if (lane->oldest_pending_age_ms > q->oldest_pending_age_ms)
            q->oldest_pending_age_ms = lane->oldest_pending_age_ms;
    }
}

static int parse_snapshot(redisReply *const *r, const char *name, uint64_t now_ms,
                          struct queue_info *q, char *err)
{
    char key[QUEUE_KEY_SIZE];
    uint64_t redis_ms;
    if (!reply_time_ms(r[CMD_TIME], &redis_ms))
        return layout_error(err, "TIME", "TIME", r[CMD_TIME]);
    q->at_ms = now_ms ? now_ms : redis_ms;
    for (int l = 0; l < QUEUE_LANES; l++) {
        bool exists;
        queue_key(key, sizeof(key), name, lane_names[l]);
        int rv = parse_lane(r + l * LANE_CMDS, key, q->at_ms, &q->lane[l], &exists, err);
        if (rv != SL_OK)
            return rv;
        q->exists |= exists;
    }
    queue_key(key, sizeof(key), name, "delayed");
    int rv = parse_delayed(r, key, q, err);
    if (rv != SL_OK)
        return rv;
    queue_key(key, sizeof(key), name, "dead");
    if (!reply_count(r[CMD_DEAD], &q->dead))
        return layout_error(err, key, "XLEN", r[CMD_DEAD]);
    q->exists |= q->dead > 0;
    queue_key(key, sizeof(key), name, "stats");
    rv = parse_stats(r[CMD_STATS], key, q, err);
    if (rv == SL_OK)
        sum_lanes(q);
    return rv;
}

int queue_inspect(struct redis_pool *p, const char *name, uint64_t now_ms, struct queue_info *out,
                  char err[128])
{
    memset(out, 0, sizeof(*out));
    set_err(err, "%s", "");
    if (!queue_name_is_valid(name)) {
        set_err(err, "queue name must be 1-%d characters of A-Z a-z 0-9 . _ -",
                QUEUE_NAME_SIZE - 1);
        return SL_EINVAL;
    }
    redisReply *exec;
    int rv = snapshot(p, name, &exec, err);
    if (rv != SL_OK)
        return rv;
    rv = parse_snapshot(exec->element, name, now_ms, out, err);
    freeReplyObject(exec);
    if (rv != SL_OK)
        memset(out, 0, sizeof(*out));
    else
        memcpy(out->name, name, strlen(name) + 1);
    return rv;
}

/* ---- rates, discovery, JSON ----------------------------------------------------------- */

int queue_rates_between(const struct queue_info *prev, const struct queue_info *cur, uint64_t dt_ms,
                        struct queue_rates *out)
{
    memset(out, 0, sizeof(*out));
    if (dt_ms == 0 || strcmp(prev->name, cur->name) != 0)
        return SL_EINVAL;
    out->window_ms = dt_ms;
    for (int c = 0; c < QUEUE_COUNTERS; c++) {
        uint64_t now = cur->counters[c], before = prev->counters[c];
        uint64_t increase = now >= before ? now - before : now; /* reset: counts from 0 */
        out->per_s[c] = (double)increase * 1000.0 / (double)dt_ms;
    }
    return SL_OK;
}

/* Insert name into the sorted, duplicate-free names[0..*n), keeping the cap smallest.
 * False when a name had to be dropped (this one, or the largest so far). */
static bool name_insert(char names[][QUEUE_NAME_SIZE], size_t cap, size_t *n, const char *name)
{
    size_t at = 0;
    while (at < *n && strcmp(names[at], name) < 0)
        at++;
    if (at < *n && strcmp(names[at], name) == 0)
        return true;
    if (at == cap)
        return false;
    bool full = *n == cap;
    size_t keep = full ? *n - 1 : *n;
    memmove(names[at + 1], names[at], (keep - at) * QUEUE_NAME_SIZE);
    memcpy(names[at], name, strlen(name) + 1); /* valid names fit */
    *n = keep + 1;
    return !full;
}

int queue_list(struct redis_pool *p, const char *const *configured, char names[][QUEUE_NAME_SIZE],
               size_t cap, size_t *n)
{
    bool dropped = false;
    *n = 0;
    for (size_t i = 0; configured && configured[i]; i++) {
        if (!queue_name_is_valid(configured[i]))
            return SL_EINVAL;
        dropped |= !name_insert(names, cap, n, configured[i]);
    }
    redisReply *r = redis_pool_command(p, "SMEMBERS %s", QUEUES_SET_KEY);
    if (!r)
        return SL_ESTORE;
    int rv = r->type == REDIS_REPLY_ARRAY ? SL_OK : SL_EPARSE;
    for (size_t i = 0; rv == SL_OK && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING && queue_name_is_valid(e->str))
            dropped |= !name_insert(names, cap, n, e->str);
    }
    freeReplyObject(r);
    if (rv != SL_OK)
        return rv;
    return dropped ? SL_ETOOBIG : SL_OK;
}

static json_t *count_or_null(int64_t v)
{
    return v == QUEUE_LAG_UNKNOWN ? json_null() : json_integer(v);
}

static json_t *counters_json(const uint64_t counters[QUEUE_COUNTERS])
{
    json_t *o = json_object();
    for (int c = 0; o && c < QUEUE_COUNTERS; c++)
        json_object_set_new(o, counter_names[c], json_integer((json_int_t)counters[c]));
    return o;
}

static json_t *lane_json(const struct queue_lane_info *l)
{
    json_t *consumers = json_array();
    for (size_t i = 0; consumers && i < l->consumers_listed; i++)
        json_array_append_new(consumers, json_pack("{s:s, s:I, s:I}", "name", l->consumer[i].name,
                                                   "pending", (json_int_t)l->consumer[i].pending,
                                                   "idle_ms", (json_int_t)l->consumer[i].idle_ms));
    return json_pack("{s:I, s:b, s:I, s:o, s:o, s:I, s:I, s:o, s:o}", "length",
                     (json_int_t)l->length, "group", l->group, "pending", (json_int_t)l->pending,
                     "lag", count_or_null(l->lag), "oldest_pending_id",
                     l->oldest_pending_id[0] ? json_string(l->oldest_pending_id) : json_null(),
                     "oldest_pending_age_ms", (json_int_t)l->oldest_pending_age_ms,
                     "consumer_count", (json_int_t)l->consumers, "consumers", consumers, "counters",
                     counters_json(l->counters));
}

static json_t *rates_json(const struct queue_rates *rates)
{
    if (!rates)
        return json_null();
    json_t *o = json_pack("{s:I}", "window_ms", (json_int_t)rates->window_ms);
    for (int c = 0; o && c < QUEUE_COUNTERS; c++) {
        char key[32];
        snprintf(key, sizeof(key), "%s_per_s", counter_names[c]);
        json_object_set_new(o, key, json_real(rates->per_s[c]));
    }
    return o;
}

json_t *queue_info_json(const struct queue_info *q, const struct queue_rates *rates)
{
    json_t *lanes = json_object();
    for (int l = 0; lanes && l < QUEUE_LANES; l++)
        json_object_set_new(lanes, lane_names[l], lane_json(&q->lane[l]));
    bool due = q->delayed > 0;
    return json_pack(
        "{s:s, s:b, s:I, s:I, s:o, s:I, s:I, s:I, s:o, s:o, s:I, s:o, s:o, s:o}", "name", q->name,
        "exists", q->exists, "at_ms", (json_int_t)q->at_ms, "length", (json_int_t)q->length,
        "waiting", count_or_null(q->waiting), "active", (json_int_t)q->active,
        "oldest_pending_age_ms", (json_int_t)q->oldest_pending_age_ms, "delayed",
        (json_int_t)q->delayed, "next_due_ms", due ? json_integer(q->next_due_ms) : json_null(),
        "next_due_in_ms", due ? json_integer(q->next_due_ms - (int64_t)q->at_ms) : json_null(),
        "dead", (json_int_t)q->dead, "counters", counters_json(q->counters), "lanes", lanes,
        "rates", rates_json(rates));
}
