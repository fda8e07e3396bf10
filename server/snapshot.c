#include "snapshot.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "jscan.h"

#define NELEM(a)   (sizeof(a) / sizeof((a)[0]))
#define CLASSES    6
#define CLASS_NONE 0
#define CLASS_5XX  5

static const char *const role_names[] = {"sidecar", "gateway"};
static const char *const state_names[] = {"serving", "draining", "drained", "maint", "down"};

/* A sample of nothing: the "previous" sample of a window that starts at the agent's start,
 * and the empty traffic of lookups that found nothing. */
static const struct agent_sample origin;

const char *replica_role_name(enum replica_role r)
{
    return (unsigned)r < NELEM(role_names) ? role_names[r] : "unknown";
}

const char *replica_state_name(enum replica_state s)
{
    return (unsigned)s < NELEM(state_names) ? state_names[s] : "unknown";
}

/* ---- traffic --------------------------------------------------------------------------- */

static uint64_t errors_of(const struct traffic *t)
{
    return t->by_class[CLASS_5XX] + t->by_class[CLASS_NONE];
}

static void traffic_add(struct traffic *dst, const struct traffic *src)
{
    dst->requests += src->requests;
    for (int c = 0; c < CLASSES; c++)
        dst->by_class[c] += src->by_class[c];
    histogram_merge(&dst->latency_us, &src->latency_us);
}

/* win = cur - prev; SL_ERANGE if any counter of prev is larger (cur is not a later sample
 * of the same cumulative counters). */
static int traffic_subtract(struct traffic *win, const struct traffic *cur,
                            const struct traffic *prev)
{
    if (cur->requests < prev->requests)
        return SL_ERANGE;
    win->requests = cur->requests - prev->requests;
    for (int c = 0; c < CLASSES; c++) {
        if (cur->by_class[c] < prev->by_class[c])
            return SL_ERANGE;
        win->by_class[c] = cur->by_class[c] - prev->by_class[c];
    }
    histogram_copy(&win->latency_us, &cur->latency_us);
    return histogram_subtract(&win->latency_us, &prev->latency_us);
}

static const struct route_traffic *find_route(const struct route_traffic *routes, unsigned n,
                                              const char *name)
{
    for (unsigned i = 0; i < n; i++)
        if (strcmp(routes[i].name, name) == 0)
            return &routes[i];
    return NULL;
}

static double per_s(uint64_t n, uint64_t interval_ms)
{
    return interval_ms ? (double)n * 1000.0 / (double)interval_ms : 0.0;
}

static double ratio(uint64_t part, uint64_t whole)
{
    return whole ? (double)part / (double)whole : NAN;
}

static void summarize(const struct traffic *t, double rps, double errors_per_s,
                      struct window_summary *out)
{
    out->requests = t->requests;
    out->errors = errors_of(t);
    out->rps = rps;
    out->errors_per_s = errors_per_s;
    out->error_ratio = ratio(out->errors, out->requests);
    out->latency_count = histogram_count(&t->latency_us);
    out->p50_us = histogram_percentile(&t->latency_us, 50);
    out->p95_us = histogram_percentile(&t->latency_us, 95);
    out->p99_us = histogram_percentile(&t->latency_us, 99);
}

static void counts_of(const struct traffic *t, uint64_t threshold_us, struct window_counts *out)
{
    uint64_t le[1] = {threshold_us}, below[2];
    histogram_le_counts(&t->latency_us, le, 1, below); /* one bound: always ascending */
    uint64_t errors = errors_of(t);
    out->total = t->requests;
    out->good_avail = errors < t->requests ? t->requests - errors : 0;
    out->good_latency = below[0] < t->requests ? below[0] : t->requests;
}

/* ---- parsing /v1/stats ------------------------------------------------------------------ */

/* The body is walked once with jscan, nothing allocated but the routes array: a thousand
 * agents a second made a jansson tree of each body the control plane's largest cost. Paths
 * in messages are prefixes ending in '.' ("routes[3]."), or "" for the root. A null member
 * is an absent one: "this agent did not send it". Members read here that come twice: the
 * last one counts. */
#define KEY_MAX 128 /* longer keys are nobody's member; route names are bounded below it */

struct reader {
    struct jscan js;
    char *err;
    char key[KEY_MAX];
    size_t klen;
};

static int fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SNAPSHOT_ERR_MAX, fmt, ap);
    va_end(ap);
    return SL_EPARSE;
}

/* rc from a jscan call: a syntax error becomes the message; others are the caller's. */
static int syntax(struct reader *r)
{
    return fail(r->err, "%s", jscan_error(&r->js));
}

/* The next member of the current object: 1 (its key in r->key), 0 at the end, or the
 * syntax error. */
static int next_member(struct reader *r)
{
    int more = jscan_member(&r->js, r->key, sizeof(r->key), &r->klen);
    return more < 0 ? syntax(r) : more;
}

static bool is_key(const struct reader *r, const char *name)
{
    return r->klen < sizeof(r->key) && strcmp(r->key, name) == 0;
}

static int skip(struct reader *r)
{
    return jscan_skip(&r->js) ? syntax(r) : SL_OK;
}

static int get_u64(struct reader *r, uint64_t *out, const char *path)
{
    int64_t v;
    if (jscan_null(&r->js))
        return SL_OK;
    int rc = jscan_int(&r->js, &v);
    if (rc == SL_EPARSE)
        return syntax(r);
    if (rc || v < 0)
        return fail(r->err, "%s%s: must be a non-negative integer", path, r->key);
    *out = (uint64_t)v;
    return SL_OK;
}

/* The member is one of f[]'s keys: read it into its place (1 when it was one, else 0). */
struct u64_field {
    const char *key;
    uint64_t *out;
};

static int get_u64_field(struct reader *r, const struct u64_field *f, size_t n, const char *path,
                         int *rc)
{
    for (size_t i = 0; i < n; i++)
        if (is_key(r, f[i].key)) {
            *rc = get_u64(r, f[i].out, path);
            return 1;
        }
    return 0;
}

/* A string into buf (size with the NUL); *sent false when null. */
static int get_str(struct reader *r, char *buf, size_t size, const char *path, bool *sent)
{
    size_t len;
    if (sent)
        *sent = false;
    if (jscan_null(&r->js))
        return SL_OK;
    int rc = jscan_string(&r->js, buf, size, &len);
    if (rc == SL_EPARSE)
        return syntax(r);
    if (rc)
        return fail(r->err, "%s%s: must be a string", path, r->key);
    if (len >= size)
        return fail(r->err, "%s%s: longer than %zu bytes", path, r->key, size - 1);
    if (sent)
        *sent = true;
    return SL_OK;
}

/* A string that must be one of names[0..n); msg, when given, is the whole message for a
 * string of another value or a value of another type. */
static int get_choice(struct reader *r, const char *const *names, size_t n, int *out,
                      const char *msg)
{
    char v[SAMPLE_ID_MAX];
    size_t len;
    if (jscan_null(&r->js))
        return SL_OK;
    int rc = jscan_string(&r->js, v, sizeof(v), &len);
    if (rc == SL_EPARSE)
        return syntax(r);
    for (size_t i = 0; !rc && len < sizeof(v) && i < n; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = (int)i;
            return SL_OK;
        }
    if (msg)
        return fail(r->err, "%s", msg);
    if (rc)
        return fail(r->err, "%s: must be a string", r->key);
    return fail(r->err, "%s: unknown value \"%.32s\"", r->key, v);
}

static int get_enum(struct reader *r, const char *const *names, size_t n, int *out)
{
    return get_choice(r, names, n, out, NULL);
}

/* A string member that, when sent, must be exactly want. */
static int get_fixed(struct reader *r, const char *want, const char *msg)
{
    int which;
    return get_choice(r, &want, 1, &which, msg);
}

/* Enters the member's object (or array): 1 if entered, 0 if null; a wrong type is an
 * error. */
static int open_container(struct reader *r, const char *path, bool array)
{
    if (jscan_null(&r->js))
        return 0;
    int rc = array ? jscan_array(&r->js) : jscan_object(&r->js);
    if (rc == SL_EPARSE)
        return syntax(r);
    return rc ? fail(r->err, "%s%s: must be an %s", path, r->key, array ? "array" : "object") : 1;
}

static int open_obj(struct reader *r, const char *path)
{
    return open_container(r, path, false);
}

static int open_array(struct reader *r, const char *path)
{
    return open_container(r, path, true);
}

/* One [index, count] pair; SL_EINVAL when it is not one (the caller's message). */
static int bucket_pair(struct reader *r, int64_t *idx, int64_t *count)
{
    int rc = jscan_array(&r->js);
    if (!rc && (rc = jscan_element(&r->js)) == 1)
        rc = jscan_int(&r->js, idx);
    else if (rc == 0)
        rc = SL_EINVAL;
    if (!rc && (rc = jscan_element(&r->js)) == 1)
        rc = jscan_int(&r->js, count);
    else if (rc == 0)
        rc = SL_EINVAL;
    if (!rc && (rc = jscan_element(&r->js)) == 1)
        rc = SL_EINVAL;
    if (r->js.failed)
        return SL_EPARSE;
    return rc || *idx < 0 || *count < 0 ? SL_EINVAL : SL_OK;
}

/* [[index, count], ...] with strictly ascending indices; *total = the sum of the counts. */
static int parse_buckets(struct reader *r, struct histogram *h, uint64_t *total, const char *path)
{
    int more, rc = open_array(r, path);
    histogram_reset(h);
    *total = 0;
    if (rc <= 0)
        return rc;
    uint64_t last = 0;
    for (size_t i = 0; (more = jscan_element(&r->js)) == 1; i++) {
        int64_t idx, count;
        rc = bucket_pair(r, &idx, &count);
        if (rc == SL_EPARSE)
            return syntax(r);
        if (rc)
            return fail(r->err, "%sbuckets[%zu]: must be [index, count]", path, i);
        if (i > 0 && (uint64_t)idx <= last)
            return fail(r->err, "%sbuckets[%zu]: indices must ascend", path, i);
        if ((uint64_t)idx >= HISTOGRAM_BUCKETS || (uint64_t)count > UINT64_MAX - *total ||
            histogram_add_bucket(h, (size_t)idx, (uint64_t)count) != SL_OK)
            return fail(r->err, "%sbuckets[%zu]: out of range", path, i);
        *total += (uint64_t)count;
        last = (uint64_t)idx;
    }
    return more < 0 ? syntax(r) : SL_OK;
}

/* The sparse form agent/stats.c writes: {"layout", "unit", "count", "sum", "min", "max",
 * "buckets"}. A missing count is the buckets' sum. */
static int parse_histogram(struct reader *r, struct histogram *h, const char *path)
{
    uint64_t total = 0, count = 0, sum = 0, min = 0, max = 0;
    bool have_count = false;
    char msg[SNAPSHOT_ERR_MAX];
    int more, rc = SL_OK;
    while (!rc && (more = next_member(r)) == 1) {
        if (is_key(r, "layout")) {
            snprintf(msg, sizeof(msg), "%slayout: only \"%s\" is understood", path,
                     HISTOGRAM_LAYOUT);
            rc = get_fixed(r, HISTOGRAM_LAYOUT, msg);
        } else if (is_key(r, "unit")) {
            snprintf(msg, sizeof(msg), "%sunit: only \"us\" is understood", path);
            rc = get_fixed(r, "us", msg);
        } else if (is_key(r, "buckets")) {
            rc = parse_buckets(r, h, &total, path);
        } else if (is_key(r, "count")) {
            have_count = !jscan_null(&r->js);
            rc = have_count ? get_u64(r, &count, path) : SL_OK;
        } else {
            const struct u64_field f[] = {{"sum", &sum}, {"min", &min}, {"max", &max}};
            if (!get_u64_field(r, f, NELEM(f), path, &rc))
                rc = skip(r);
        }
    }
    if (rc || (rc = more) < 0)
        return rc;
    if (have_count && count != total)
        return fail(r->err, "%scount: %" PRIu64 " but the buckets hold %" PRIu64, path, count,
                    total);
    histogram_merge_totals(h, total, sum, min, max);
    return SL_OK;
}

static int parse_status(struct reader *r, struct traffic *t, const char *path)
{
    static const char *const classes[CLASSES] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    char sub[64];
    int more, rc = open_obj(r, path);
    if (rc <= 0)
        return rc;
    rc = SL_OK;
    snprintf(sub, sizeof(sub), "%sstatus.", path);
    while (!rc && (more = next_member(r)) == 1) {
        const struct u64_field f[CLASSES] = {
            {classes[0], &t->by_class[0]}, {classes[1], &t->by_class[1]},
            {classes[2], &t->by_class[2]}, {classes[3], &t->by_class[3]},
            {classes[4], &t->by_class[4]}, {classes[5], &t->by_class[5]},
        };
        if (!get_u64_field(r, f, CLASSES, sub, &rc))
            rc = skip(r);
    }
    return rc ? rc : more;
}

/* What agent/stats.c stats_route_json writes, of it what the fleet view needs; the
 * object is entered. name: also read "route" (the array form), *named when it was sent. */
static int parse_traffic(struct reader *r, struct traffic *t, const char *path, char *name,
                         size_t name_size, bool *named)
{
    char sub[64];
    int more, rc = SL_OK;
    while (!rc && (more = next_member(r)) == 1) {
        if (is_key(r, "requests")) {
            rc = get_u64(r, &t->requests, path);
        } else if (is_key(r, "status")) {
            rc = parse_status(r, t, path);
        } else if (is_key(r, "latency_histogram")) {
            snprintf(sub, sizeof(sub), "%slatency_histogram.", path);
            histogram_reset(&t->latency_us);
            if ((rc = open_obj(r, path)) > 0)
                rc = parse_histogram(r, &t->latency_us, sub);
        } else if (name && is_key(r, "route")) {
            rc = get_str(r, name, name_size, path, named);
        } else {
            rc = skip(r);
        }
    }
    return rc ? rc : more;
}

/* The next route of the list into *rt: i its position; name NULL for the array form. */
static int parse_route(struct reader *r, const char *name, size_t name_len,
                       struct route_traffic *rt, size_t i)
{
    char path[32];
    snprintf(path, sizeof(path), "routes[%zu].", i);
    if (name && name_len >= sizeof(rt->name))
        return fail(r->err, "routes[%zu]: name longer than %zu bytes", i, sizeof(rt->name) - 1);
    int rc = jscan_object(&r->js);
    if (rc == SL_EPARSE)
        return syntax(r);
    if (rc)
        return fail(r->err, "routes[%zu]: must be an object", i);
    bool named = name != NULL;
    if (name)
        memcpy(rt->name, name, name_len + 1);
    rc = parse_traffic(r, &rt->t, path, name ? NULL : rt->name, sizeof(rt->name), &named);
    if (!rc && !named)
        rc = fail(r->err, "%sroute: missing", path);
    return rc;
}

/* One more route slot (zeroed), growing the array; NULL past the bound or out of memory. */
static struct route_traffic *route_slot(struct agent_sample *s, unsigned *cap, int *rc)
{
    if (s->nroutes == SAMPLE_ROUTES_MAX)
        return NULL;
    if (s->nroutes == *cap) {
        unsigned ncap = *cap ? *cap * 2 : 4;
        ncap = ncap < SAMPLE_ROUTES_MAX ? ncap : SAMPLE_ROUTES_MAX;
        struct route_traffic *grown = realloc(s->routes, ncap * sizeof(*grown));
        if (!grown) {
            *rc = SL_ENOMEM;
            return NULL;
        }
        memset(grown + *cap, 0, (ncap - *cap) * sizeof(*grown));
        s->routes = grown;
        *cap = ncap;
    }
    return &s->routes[s->nroutes++];
}

/* "routes": the agent's [{..., "route": name}, ...] or {name: {...}, ...}. Routes past
 * SAMPLE_ROUTES_MAX are counted in routes_dropped and not read. */
static int parse_routes(struct reader *r, struct agent_sample *s)
{
    enum jscan_type t = jscan_peek(&r->js);
    if (jscan_null(&r->js))
        return SL_OK;
    if (t != JSCAN_ARRAY && t != JSCAN_OBJECT) {
        if (t == JSCAN_NONE)
            return skip(r);
        return fail(r->err, "routes: must be an array or an object");
    }
    free(s->routes); /* a second "routes" replaces the first */
    s->routes = NULL;
    s->nroutes = s->routes_dropped = 0;
    unsigned cap = 0;
    int more, rc = t == JSCAN_ARRAY ? jscan_array(&r->js) : jscan_object(&r->js);
    for (size_t i = 0; !rc; i++) {
        char name[KEY_MAX];
        size_t name_len = 0;
        if (t == JSCAN_ARRAY)
            more = jscan_element(&r->js);
        else
            more = jscan_member(&r->js, name, sizeof(name), &name_len);
        if (more <= 0)
            return more < 0 ? syntax(r) : SL_OK;
        struct route_traffic *rt = route_slot(s, &cap, &rc);
        if (rc) {
            snprintf(r->err, SNAPSHOT_ERR_MAX, "out of memory");
            return rc;
        }
        if (!rt) {
            s->routes_dropped++;
            rc = skip(r);
        } else {
            rc = parse_route(r, t == JSCAN_OBJECT ? name : NULL, name_len, rt, i);
        }
    }
    return rc;
}

/* The agent's identity members; 1 if the member was one of them. */
static int parse_identity_member(struct reader *r, struct agent_identity *who, bool *have_id,
                                 int *rc)
{
    int v;
    uint64_t n;
    if (is_key(r, "id")) {
        *rc = get_str(r, who->id, sizeof(who->id), "", have_id);
        if (!*rc && *have_id && !who->id[0])
            *rc = fail(r->err, "id: must not be empty");
    } else if (is_key(r, "service")) {
        *rc = get_str(r, who->service, sizeof(who->service), "", NULL);
    } else if (is_key(r, "version")) {
        *rc = get_str(r, who->version, sizeof(who->version), "", NULL);
    } else if (is_key(r, "role")) {
        v = (int)who->role;
        *rc = get_enum(r, role_names, NELEM(role_names), &v);
        who->role = (enum replica_role)v;
    } else if (is_key(r, "state")) { /* an agent never says "down": only the poller knows */
        v = (int)who->state;
        *rc = get_enum(r, state_names, REPLICA_DOWN, &v);
        who->state = (enum replica_state)v;
    } else if (is_key(r, "weight")) {
        n = who->weight;
        *rc = get_u64(r, &n, "");
        if (!*rc && n > 100)
            *rc = fail(r->err, "weight: must be 0..100");
        who->weight = (unsigned)n;
    } else if (is_key(r, "policy_version")) {
        *rc = get_u64(r, &who->policy_version, "");
    } else {
        return 0;
    }
    return 1;
}

/* agent/respcache.c respcache_stats_json; {"enabled": false} without a cache. Without
 * "enabled", a cache that sends its hits is on. */
static int parse_cache(struct reader *r, struct sample_cache *c)
{
    static const char *const windows[3] = {"1s", "10s", "60s"};
    int more, rc = open_obj(r, "");
    bool have_enabled = false, have_hits = false;
    if (rc <= 0)
        return rc;
    rc = SL_OK;
    while (!rc && (more = next_member(r)) == 1) {
        const struct u64_field f[] = {
            {"misses", &c->misses},
            {"stale", &c->stale},         {"evictions", &c->evictions},
            {"expirations", &c->expirations}, {"entries", &c->entries},
            {"bytes", &c->bytes},
        };
        if (is_key(r, "enabled")) {
            have_enabled = !jscan_null(&r->js);
            rc = have_enabled ? jscan_bool(&r->js, &c->enabled) : SL_OK;
            if (rc == SL_EPARSE)
                rc = syntax(r);
            else if (rc)
                rc = fail(r->err, "cache.enabled: must be a boolean");
        } else if (is_key(r, "hit_ratio_window")) {
            int in = open_obj(r, "cache.");
            rc = in < 0 ? in : SL_OK;
            while (!rc && in > 0 && (in = next_member(r)) == 1) {
                int w = 0;
                while (w < 3 && !is_key(r, windows[w]))
                    w++;
                if (w == 3 || jscan_null(&r->js)) {
                    rc = w == 3 ? skip(r) : SL_OK;
                    continue;
                }
                rc = jscan_double(&r->js, &c->hit_ratio_window[w]);
                if (rc == SL_EPARSE)
                    rc = syntax(r);
                else if (rc)
                    rc = fail(r->err, "cache.hit_ratio_window.%s: must be a number", windows[w]);
            }
            if (!rc && in < 0)
                rc = in;
        } else if (is_key(r, "hits")) {
            have_hits = jscan_peek(&r->js) != JSCAN_NULL;
            rc = get_u64(r, &c->hits, "cache.");
        } else if (!get_u64_field(r, f, NELEM(f), "cache.", &rc)) {
            rc = skip(r);
        }
    }
    if (rc || (rc = more) < 0)
        return rc;
    if (!have_enabled)
        c->enabled = have_hits;
    return SL_OK;
}

/* agent/limiter.c limits_stats_json, summed over the policies. */
static int parse_limiter(struct reader *r, struct agent_sample *s)
{
    int more, rc = open_obj(r, "");
    if (rc <= 0)
        return rc;
    rc = SL_OK;
    while (!rc && (more = next_member(r)) == 1) {
        if (!is_key(r, "policies")) {
            rc = skip(r);
            continue;
        }
        int in = open_array(r, "limiter.");
        rc = in < 0 ? in : SL_OK;
        s->limiter_allowed = s->limiter_limited = 0;
        for (size_t i = 0; !rc && in > 0 && (in = jscan_element(&r->js)) == 1; i++) {
            char path[48];
            uint64_t allowed = 0, limited = 0;
            snprintf(path, sizeof(path), "limiter.policies[%zu].", i);
            int pm = jscan_object(&r->js);
            if (pm == SL_EPARSE)
                return syntax(r);
            if (pm)
                return fail(r->err, "limiter.policies[%zu]: must be an object", i);
            while (!rc && (pm = next_member(r)) == 1) {
                const struct u64_field f[] = {{"allowed", &allowed}, {"limited", &limited}};
                if (!get_u64_field(r, f, NELEM(f), path, &rc))
                    rc = skip(r);
            }
            if (!rc && pm < 0)
                rc = pm;
            s->limiter_allowed += allowed;
            s->limiter_limited += limited;
        }
        if (!rc && in < 0)
            rc = syntax(r);
    }
    return rc ? rc : more;
}

static int parse_drain(struct reader *r, struct sample_drain *d)
{
    int more, rc = open_obj(r, "");
    if (rc <= 0)
        return rc;
    rc = SL_OK;
    d->active = true;
    while (!rc && (more = next_member(r)) == 1) {
        const struct u64_field f[] = {{"elapsed_ms", &d->elapsed_ms},
                                      {"remaining_ms", &d->remaining_ms},
                                      {"in_flight", &d->in_flight}};
        if (!get_u64_field(r, f, NELEM(f), "drain.", &rc))
            rc = skip(r);
    }
    return rc ? rc : more;
}

void agent_sample_init(struct agent_sample *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < 3; i++)
        s->cache.hit_ratio_window[i] = NAN;
}

void agent_sample_release(struct agent_sample *s)
{
    free(s->routes);
    agent_sample_init(s);
}

static int parse_root(struct reader *r, struct agent_sample *out)
{
    bool have_id = false, have_totals = false;
    int more, rc = jscan_object(&r->js);
    if (rc)
        return fail(r->err, "the stats document must be a JSON object");
    snprintf(out->who.service, sizeof(out->who.service), "default");
    out->who.weight = 100;
    while (!rc && (more = next_member(r)) == 1) {
        const struct u64_field f[] = {{"uptime_s", &out->uptime_s},
                                      {"in_flight", &out->in_flight}};
        if (parse_identity_member(r, &out->who, &have_id, &rc) ||
            get_u64_field(r, f, NELEM(f), "", &rc))
            continue;
        if (is_key(r, "totals")) {
            memset(&out->totals, 0, sizeof(out->totals));
            if ((rc = open_obj(r, "")) > 0) {
                have_totals = true;
                rc = parse_traffic(r, &out->totals, "totals.", NULL, 0, NULL);
            }
        } else if (is_key(r, "routes")) {
            rc = parse_routes(r, out);
        } else if (is_key(r, "cache")) {
            rc = parse_cache(r, &out->cache);
        } else if (is_key(r, "limiter")) {
            rc = parse_limiter(r, out);
        } else if (is_key(r, "drain")) {
            out->drain = (struct sample_drain){0};
            rc = parse_drain(r, &out->drain);
        } else {
            rc = skip(r);
        }
    }
    if (rc || (rc = more) < 0)
        return rc;
    if (jscan_finish(&r->js))
        return syntax(r);
    if (!have_id)
        return fail(r->err, "id: missing");
    for (unsigned i = 0; !have_totals && i < out->nroutes; i++)
        traffic_add(&out->totals, &out->routes[i].t);
    return SL_OK;
}

int agent_sample_parse(const char *text, size_t len, struct agent_sample *out,
                       char err[SNAPSHOT_ERR_MAX])
{
    struct reader r = {.err = err};
    agent_sample_release(out);
    err[0] = '\0';
    jscan_init(&r.js, text, len);
    int rc = parse_root(&r, out);
    if (rc)
        agent_sample_release(out);
    return rc;
}

/* ---- one replica's window ---------------------------------------------------------------- */

void replica_view_init(struct replica_view *v)
{
    memset(v, 0, sizeof(*v));
}

void replica_view_release(struct replica_view *v)
{
    free(v->routes);
    replica_view_init(v);
}

static bool delta(uint64_t cur, uint64_t prev, uint64_t *out)
{
    if (cur < prev)
        return false;
    *out = cur - prev;
    return true;
}

/* Same id, uptime not gone back, every route still there: the checks that need no
 * counter. */
static bool same_life(const struct agent_sample *prev, const struct agent_sample *cur)
{
    if (strcmp(prev->who.id, cur->who.id) != 0 || cur->uptime_s < prev->uptime_s)
        return false;
    for (unsigned i = 0; i < prev->nroutes; i++)
        if (!find_route(cur->routes, cur->nroutes, prev->routes[i].name))
            return false;
    return true;
}

/* v's window from prev to cur (prev = &origin: since the agent started); SL_ERANGE if a
 * counter went down, the window then partly written (the caller redoes it from origin). */
static int window(struct replica_view *v, const struct agent_sample *prev,
                  const struct agent_sample *cur)
{
    const struct sample_cache *c = &cur->cache, *p = &prev->cache;
    bool ok = delta(c->hits, p->hits, &v->cache_hits);
    ok = delta(c->misses, p->misses, &v->cache_misses) && ok;
    ok = delta(c->stale, p->stale, &v->cache_stale) && ok;
    ok = delta(cur->limiter_allowed, prev->limiter_allowed, &v->limiter_allowed) && ok;
    ok = delta(cur->limiter_limited, prev->limiter_limited, &v->limiter_limited) && ok;
    int rc = traffic_subtract(&v->totals, &cur->totals, &prev->totals);
    for (unsigned i = 0; i < cur->nroutes; i++) {
        const struct route_traffic *r = &cur->routes[i];
        const struct route_traffic *old = find_route(prev->routes, prev->nroutes, r->name);
        memcpy(v->routes[i].name, r->name, sizeof(r->name));
        if (traffic_subtract(&v->routes[i].t, &r->t, old ? &old->t : &origin.totals) != SL_OK)
            rc = SL_ERANGE;
    }
    return ok && rc == SL_OK ? SL_OK : SL_ERANGE;
}

int replica_view_compute(struct replica_view *out, const struct agent_sample *prev,
                         const struct agent_sample *cur, uint64_t interval_ms)
{
    if (prev && interval_ms == 0)
        return SL_EINVAL;
    replica_view_release(out);
    out->who = cur->who;
    out->uptime_s = cur->uptime_s;
    out->in_flight = cur->in_flight;
    out->drain = cur->drain;
    out->cache_enabled = cur->cache.enabled;
    out->cache = cur->cache;
    if (!prev)
        return SL_OK;
    if (cur->nroutes && !(out->routes = calloc(cur->nroutes, sizeof(*out->routes))))
        return SL_ENOMEM;
    out->nroutes = cur->nroutes;
    out->interval_ms = interval_ms;
    if (!same_life(prev, cur) || window(out, prev, cur) != SL_OK) {
        out->restarted = true;
        window(out, &origin, cur); /* from zero nothing can go down */
    }
    return SL_OK;
}

static void view_summary_of(const struct replica_view *v, const struct traffic *t,
                            struct window_summary *out)
{
    summarize(t, per_s(t->requests, v->interval_ms), per_s(errors_of(t), v->interval_ms), out);
}

static const struct traffic *view_traffic(const struct replica_view *v, const char *route)
{
    if (!route)
        return &v->totals;
    const struct route_traffic *r = find_route(v->routes, v->nroutes, route);
    return r ? &r->t : NULL;
}

bool replica_view_summary(const struct replica_view *v, const char *route,
                          struct window_summary *out)
{
    const struct traffic *t = view_traffic(v, route);
    view_summary_of(v, t ? t : &origin.totals, out);
    return t != NULL;
}

bool replica_view_counts(const struct replica_view *v, const char *route, uint64_t threshold_us,
                         struct window_counts *out)
{
    const struct traffic *t = view_traffic(v, route);
    counts_of(t ? t : &origin.totals, threshold_us, out);
    return t != NULL;
}

/* ---- the fleet ------------------------------------------------------------------------------ */

/* A service's totals or one of its routes: summed counts and rates, merged histogram. */
struct agg {
    char name[SAMPLE_ROUTE_NAME_MAX];
    struct traffic t;
    double rps, errors_per_s; /* sums of the replicas' rates, each over its own interval */
};

struct row_route {
    char name[SAMPLE_ROUTE_NAME_MAX];
    struct window_summary s;
};

/* What the JSON shows of one replica: numbers only, no histograms. */
struct replica_row {
    struct agent_identity who;
    bool up, windowed, restarted, cache_enabled;
    uint64_t in_flight, last_seen_ms, cache_hits, cache_misses;
    struct sample_cache cache;
    double limited_per_s;
    struct window_summary total;
    struct row_route *routes;
    unsigned nroutes;
};

struct service {
    char name[SAMPLE_SERVICE_MAX];
    struct agg totals;
    struct agg *routes[SAMPLE_ROUTES_MAX]; /* first-seen order */
    unsigned nroutes;
    struct replica_row *replicas[SNAPSHOT_REPLICAS_MAX]; /* sorted by id */
    unsigned nreplicas, replicas_up;
    uint64_t in_flight, cache_hits, cache_misses;
    bool cache_enabled;
    double limited_per_s;
};

struct snapshot {
    uint64_t ts_ms;
    struct service *services[SNAPSHOT_SERVICES_MAX]; /* sorted by name */
    unsigned nservices;
};

struct snapshot *snapshot_new(uint64_t ts_ms)
{
    struct snapshot *s = calloc(1, sizeof(*s));
    if (s)
        s->ts_ms = ts_ms;
    return s;
}

static void row_free(struct replica_row *r)
{
    if (r)
        free(r->routes);
    free(r);
}

static void service_free(struct service *svc)
{
    for (unsigned i = 0; i < svc->nroutes; i++)
        free(svc->routes[i]);
    for (unsigned i = 0; i < svc->nreplicas; i++)
        row_free(svc->replicas[i]);
    free(svc);
}

void snapshot_free(struct snapshot *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->nservices; i++)
        service_free(s->services[i]);
    free(s);
}

/* Where name is or would go in the sorted service list. */
static unsigned service_pos(const struct snapshot *s, const char *name)
{
    unsigned i = 0;
    while (i < s->nservices && strcmp(s->services[i]->name, name) < 0)
        i++;
    return i;
}

static struct service *find_service(const struct snapshot *s, const char *name)
{
    unsigned i = service_pos(s, name);
    return i < s->nservices && strcmp(s->services[i]->name, name) == 0 ? s->services[i] : NULL;
}

static int service_get(struct snapshot *s, const char *name, struct service **out, bool *created)
{
    *created = false;
    if ((*out = find_service(s, name)))
        return SL_OK;
    if (s->nservices == SNAPSHOT_SERVICES_MAX)
        return SL_ETOOBIG;
    struct service *svc = calloc(1, sizeof(*svc));
    if (!svc)
        return SL_ENOMEM;
    snprintf(svc->name, sizeof(svc->name), "%s", name);
    unsigned at = service_pos(s, name);
    memmove(&s->services[at + 1], &s->services[at], (s->nservices - at) * sizeof(svc));
    s->services[at] = svc;
    s->nservices++;
    *out = svc;
    *created = true;
    return SL_OK;
}

static void service_remove(struct snapshot *s, struct service *svc)
{
    unsigned at = service_pos(s, svc->name);
    memmove(&s->services[at], &s->services[at + 1], (s->nservices - at - 1) * sizeof(svc));
    s->nservices--;
    service_free(svc);
}

static struct agg *service_route(const struct service *svc, const char *name)
{
    for (unsigned i = 0; i < svc->nroutes; i++)
        if (strcmp(svc->routes[i]->name, name) == 0)
            return svc->routes[i];
    return NULL;
}

/* A service route for each of v's routes, up to the bound; those past it are left out. */
static int service_reserve_routes(struct service *svc, const struct replica_view *v)
{
    for (unsigned i = 0; i < v->nroutes && svc->nroutes < SAMPLE_ROUTES_MAX; i++) {
        if (service_route(svc, v->routes[i].name))
            continue;
        struct agg *a = calloc(1, sizeof(*a));
        if (!a)
            return SL_ENOMEM;
        memcpy(a->name, v->routes[i].name, sizeof(a->name));
        svc->routes[svc->nroutes++] = a;
    }
    return SL_OK;
}

static void agg_add(struct agg *a, const struct traffic *t, uint64_t interval_ms)
{
    traffic_add(&a->t, t);
    a->rps += per_s(t->requests, interval_ms);
    a->errors_per_s += per_s(errors_of(t), interval_ms);
}

static void service_merge(struct service *svc, const struct replica_view *v,
                          const struct replica_row *row)
{
    svc->replicas_up++;
    svc->in_flight += v->in_flight;
    if (!row->windowed)
        return;
    agg_add(&svc->totals, &v->totals, v->interval_ms);
    for (unsigned i = 0; i < v->nroutes; i++) {
        struct agg *a = service_route(svc, v->routes[i].name);
        if (a)
            agg_add(a, &v->routes[i].t, v->interval_ms);
    }
    svc->cache_enabled = svc->cache_enabled || v->cache_enabled;
    svc->cache_hits += v->cache_hits;
    svc->cache_misses += v->cache_misses;
    svc->limited_per_s += row->limited_per_s;
}

static int row_new(const struct replica_view *v, bool up, uint64_t last_seen_ms,
                   struct replica_row **out)
{
    struct replica_row *r = calloc(1, sizeof(*r));
    bool windowed = up && v->interval_ms;
    unsigned n = windowed ? v->nroutes : 0;
    if (!r || (n && !(r->routes = calloc(n, sizeof(*r->routes))))) {
        free(r);
        return SL_ENOMEM;
    }
    r->who = v->who;
    if (!up)
        r->who.state = REPLICA_DOWN;
    r->up = up;
    r->windowed = windowed;
    r->restarted = up && v->restarted;
    r->cache_enabled = v->cache_enabled;
    r->cache = v->cache;
    r->in_flight = v->in_flight;
    r->last_seen_ms = last_seen_ms;
    r->cache_hits = v->cache_hits;
    r->cache_misses = v->cache_misses;
    r->limited_per_s = per_s(v->limiter_limited, v->interval_ms);
    view_summary_of(v, &v->totals, &r->total);
    for (unsigned i = 0; i < n; i++) {
        memcpy(r->routes[i].name, v->routes[i].name, sizeof(r->routes[i].name));
        view_summary_of(v, &v->routes[i].t, &r->routes[i].s);
    }
    r->nroutes = n;
    *out = r;
    return SL_OK;
}

static unsigned replica_pos(const struct service *svc, const char *id)
{
    unsigned i = 0;
    while (i < svc->nreplicas && strcmp(svc->replicas[i]->who.id, id) < 0)
        i++;
    return i;
}

int snapshot_add_replica(struct snapshot *s, const struct replica_view *v, bool up,
                         uint64_t last_seen_ms)
{
    struct service *svc;
    struct replica_row *row = NULL;
    bool created;
    int rc = service_get(s, v->who.service, &svc, &created);
    if (rc)
        return rc;
    unsigned at = replica_pos(svc, v->who.id);
    if (at < svc->nreplicas && strcmp(svc->replicas[at]->who.id, v->who.id) == 0)
        rc = SL_EEXISTS;
    else if (svc->nreplicas == SNAPSHOT_REPLICAS_MAX)
        rc = SL_ETOOBIG;
    if (!rc)
        rc = row_new(v, up, last_seen_ms, &row);
    if (!rc && row->windowed)
        rc = service_reserve_routes(svc, v);
    if (rc) {
        row_free(row);
        if (created)
            service_remove(s, svc);
        return rc;
    }
    memmove(&svc->replicas[at + 1], &svc->replicas[at], (svc->nreplicas - at) * sizeof(row));
    svc->replicas[at] = row;
    svc->nreplicas++;
    if (up)
        service_merge(svc, v, row);
    return SL_OK;
}

static const struct agg *service_agg(const struct snapshot *s, const char *service,
                                     const char *route)
{
    const struct service *svc = find_service(s, service);
    if (!svc)
        return NULL;
    return route ? service_route(svc, route) : &svc->totals;
}

static void agg_summary(const struct agg *a, struct window_summary *out)
{
    summarize(&a->t, a->rps, a->errors_per_s, out);
}

bool snapshot_service_summary(const struct snapshot *s, const char *service, const char *route,
                              struct window_summary *out)
{
    const struct agg *a = service_agg(s, service, route);
    if (a)
        agg_summary(a, out);
    else
        summarize(&origin.totals, 0, 0, out);
    return a != NULL;
}

bool snapshot_service_counts(const struct snapshot *s, const char *service, const char *route,
                             uint64_t threshold_us, struct window_counts *out)
{
    const struct agg *a = service_agg(s, service, route);
    counts_of(a ? &a->t : &origin.totals, threshold_us, out);
    return a != NULL;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

/* A finite number, else null (jansson refuses NaN). */
static json_t *number(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static json_t *ms_or_null(uint64_t us, bool known)
{
    return known ? json_real((double)us / 1000.0) : json_null();
}

/* rps, error_ratio, p50_ms, p95_ms, p99_ms; all null when the window is not known. */
static void summary_set(json_t *o, const struct window_summary *w, bool known)
{
    bool latency = known && w->latency_count > 0;
    json_object_set_new(o, "rps", known ? number(w->rps) : json_null());
    json_object_set_new(o, "error_ratio", known ? number(w->error_ratio) : json_null());
    json_object_set_new(o, "p50_ms", ms_or_null(w->p50_us, latency));
    json_object_set_new(o, "p95_ms", ms_or_null(w->p95_us, latency));
    json_object_set_new(o, "p99_ms", ms_or_null(w->p99_us, latency));
}

static json_t *route_json(const char *name, const struct window_summary *w)
{
    json_t *o = json_pack("{s:s}", "name", name);
    if (o)
        summary_set(o, w, true);
    return o;
}

static json_t *cache_ratio(bool enabled, uint64_t hits, uint64_t misses)
{
    return enabled ? number(ratio(hits, hits + misses)) : json_null();
}

/* The replica's cache as its agent last reported it (the Cache screen); NULL without. */
static json_t *replica_cache_json(const struct sample_cache *c)
{
    static const char *const names[] = {"1s", "10s", "60s"};
    if (!c->enabled)
        return NULL;
    json_t *w = json_object();
    for (int n = 0; w && n < 3; n++)
        json_object_set_new(w, names[n], isnan(c->hit_ratio_window[n])
                                             ? json_null()
                                             : json_real(c->hit_ratio_window[n]));
    return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "enabled", 1, "hits",
                     (json_int_t)c->hits, "misses", (json_int_t)c->misses, "stale",
                     (json_int_t)c->stale, "evictions", (json_int_t)c->evictions, "expirations",
                     (json_int_t)c->expirations, "entries", (json_int_t)c->entries, "bytes",
                     (json_int_t)c->bytes, "hit_ratio_window", w);
}

static json_t *replica_json(const struct replica_row *r, uint64_t ts_ms)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:i, s:s}", "id", r->who.id, "role",
                          replica_role_name(r->who.role), "state", replica_state_name(r->who.state),
                          "up", r->up, "weight", (int)r->who.weight, "version", r->who.version);
    json_t *routes = json_array();
    if (!o || !routes) {
        json_decref(o);
        json_decref(routes);
        return NULL;
    }
    summary_set(o, &r->total, r->windowed);
    json_object_set_new(o, "in_flight",
                        r->up ? json_integer((json_int_t)r->in_flight) : json_null());
    json_object_set_new(o, "cache_hit_ratio",
                        r->windowed ? cache_ratio(r->cache_enabled, r->cache_hits, r->cache_misses)
                                    : json_null());
    json_object_set_new(o, "limited_per_s", r->windowed ? number(r->limited_per_s) : json_null());
    json_object_set_new(o, "policy_version", json_integer((json_int_t)r->who.policy_version));
    json_object_set_new(o, "restarted", json_boolean(r->restarted));
    json_object_set_new(
        o, "last_seen_ms_ago",
        r->last_seen_ms
            ? json_integer((json_int_t)(ts_ms > r->last_seen_ms ? ts_ms - r->last_seen_ms : 0))
            : json_null());
    for (unsigned i = 0; i < r->nroutes; i++)
        json_array_append_new(routes, route_json(r->routes[i].name, &r->routes[i].s));
    json_object_set_new(o, "routes", routes);
    json_t *cache = replica_cache_json(&r->cache);
    if (cache)
        json_object_set_new(o, "cache", cache);
    return o;
}

static json_t *totals_json(const struct service *svc)
{
    struct window_summary w;
    json_t *o = json_object();
    if (!o)
        return NULL;
    agg_summary(&svc->totals, &w);
    summary_set(o, &w, true);
    json_object_set_new(o, "in_flight", json_integer((json_int_t)svc->in_flight));
    json_object_set_new(o, "cache_hit_ratio",
                        cache_ratio(svc->cache_enabled, svc->cache_hits, svc->cache_misses));
    json_object_set_new(o, "limited_per_s", number(svc->limited_per_s));
    json_object_set_new(o, "replicas", json_integer(svc->nreplicas));
    json_object_set_new(o, "replicas_up", json_integer(svc->replicas_up));
    return o;
}

static json_t *service_json(const struct service *svc, uint64_t ts_ms)
{
    json_t *o = json_pack("{s:s, s:[], s:o, s:[]}", "name", svc->name, "replicas", "totals",
                          totals_json(svc), "routes");
    if (!o)
        return NULL;
    json_t *replicas = json_object_get(o, "replicas"), *routes = json_object_get(o, "routes");
    for (unsigned i = 0; i < svc->nreplicas; i++)
        json_array_append_new(replicas, replica_json(svc->replicas[i], ts_ms));
    for (unsigned i = 0; i < svc->nroutes; i++) {
        struct window_summary w;
        agg_summary(svc->routes[i], &w);
        json_array_append_new(routes, route_json(svc->routes[i]->name, &w));
    }
    return o;
}

json_t *snapshot_json(const struct snapshot *s)
{
    json_t *o = json_pack("{s:I, s:[]}", "ts", (json_int_t)s->ts_ms, "services");
    if (!o)
        return NULL;
    json_t *services = json_object_get(o, "services");
    for (unsigned i = 0; i < s->nservices; i++)
        json_array_append_new(services, service_json(s->services[i], s->ts_ms));
    return o;
}
