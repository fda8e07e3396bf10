#include "snapshot.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

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

/* Paths in messages are prefixes ending in '.' ("routes[3]."), or "" for the root. */
static int fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(char *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SNAPSHOT_ERR_MAX, fmt, ap);
    va_end(ap);
    return SL_EPARSE;
}

/* The member, or NULL when absent or null: both mean "this agent did not send it". */
static const json_t *member(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int get_u64(const json_t *obj, const char *key, uint64_t *out, const char *path, char *err)
{
    const json_t *v = member(obj, key);
    if (!v)
        return SL_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail(err, "%s%s: must be a non-negative integer", path, key);
    *out = (uint64_t)json_integer_value(v);
    return SL_OK;
}

struct u64_field {
    const char *key;
    uint64_t *out;
};

static int get_u64_fields(const json_t *obj, const struct u64_field *f, size_t n, const char *path,
                          char *err)
{
    int rc = SL_OK;
    for (size_t i = 0; rc == SL_OK && i < n; i++)
        rc = get_u64(obj, f[i].key, f[i].out, path, err);
    return rc;
}

static int get_str(const json_t *obj, const char *key, char *buf, size_t size, const char *path,
                   char *err)
{
    const json_t *v = member(obj, key);
    if (!v)
        return SL_OK;
    if (!json_is_string(v))
        return fail(err, "%s%s: must be a string", path, key);
    if (json_string_length(v) >= size)
        return fail(err, "%s%s: longer than %zu bytes", path, key, size - 1);
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return SL_OK;
}

/* A string that must be one of names[0..n). */
static int get_enum(const json_t *obj, const char *key, const char *const *names, size_t n,
                    int *out, char *err)
{
    const json_t *v = member(obj, key);
    if (!v)
        return SL_OK;
    if (!json_is_string(v))
        return fail(err, "%s: must be a string", key);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(json_string_value(v), names[i]) == 0) {
            *out = (int)i;
            return SL_OK;
        }
    }
    return fail(err, "%s: unknown value \"%.32s\"", key, json_string_value(v));
}

/* *out = the member if it is an object (NULL if not sent); wrong type is an error. */
static int get_obj(const json_t *obj, const char *key, const json_t **out, const char *path,
                   char *err)
{
    *out = member(obj, key);
    if (*out && !json_is_object(*out))
        return fail(err, "%s%s: must be an object", path, key);
    return SL_OK;
}

static int get_array(const json_t *obj, const char *key, const json_t **out, const char *path,
                     char *err)
{
    *out = member(obj, key);
    if (*out && !json_is_array(*out))
        return fail(err, "%s%s: must be an array", path, key);
    return SL_OK;
}

/* [[index, count], ...] with strictly ascending indices; *total = the sum of the counts. */
static int parse_buckets(const json_t *list, struct histogram *h, uint64_t *total, const char *path,
                         char *err)
{
    size_t i, last = 0;
    const json_t *pair;
    *total = 0;
    json_array_foreach(list, i, pair)
    {
        const json_t *ji = json_array_get(pair, 0), *jc = json_array_get(pair, 1);
        if (!json_is_array(pair) || json_array_size(pair) != 2 || !json_is_integer(ji) ||
            !json_is_integer(jc) || json_integer_value(ji) < 0 || json_integer_value(jc) < 0)
            return fail(err, "%sbuckets[%zu]: must be [index, count]", path, i);
        uint64_t idx = (uint64_t)json_integer_value(ji), count = (uint64_t)json_integer_value(jc);
        if (i > 0 && idx <= last)
            return fail(err, "%sbuckets[%zu]: indices must ascend", path, i);
        if (idx >= HISTOGRAM_BUCKETS || count > UINT64_MAX - *total ||
            histogram_add_bucket(h, (size_t)idx, count) != SL_OK)
            return fail(err, "%sbuckets[%zu]: out of range", path, i);
        *total += count;
        last = (size_t)idx;
    }
    return SL_OK;
}

/* The sparse form agent/stats.c writes: {"layout", "unit", "count", "sum", "min", "max",
 * "buckets"}. */
static int parse_histogram(const json_t *o, struct histogram *h, const char *path, char *err)
{
    const json_t *layout = member(o, "layout"), *unit = member(o, "unit"), *buckets;
    if (layout && (!json_is_string(layout) || strcmp(json_string_value(layout), HISTOGRAM_LAYOUT)))
        return fail(err, "%slayout: only \"%s\" is understood", path, HISTOGRAM_LAYOUT);
    if (unit && (!json_is_string(unit) || strcmp(json_string_value(unit), "us")))
        return fail(err, "%sunit: only \"us\" is understood", path);
    uint64_t total = 0, count, sum = 0, min = 0, max = 0;
    int rc = get_array(o, "buckets", &buckets, path, err);
    if (!rc && buckets)
        rc = parse_buckets(buckets, h, &total, path, err);
    count = total;
    const struct u64_field f[] = {{"count", &count}, {"sum", &sum}, {"min", &min}, {"max", &max}};
    if (!rc)
        rc = get_u64_fields(o, f, NELEM(f), path, err);
    if (!rc && count != total)
        rc = fail(err, "%scount: %" PRIu64 " but the buckets hold %" PRIu64, path, count, total);
    if (!rc)
        histogram_merge_totals(h, count, sum, min, max);
    return rc;
}

/* What agent/stats.c stats_route_json writes, of it what the fleet view needs. */
static int parse_traffic(const json_t *o, struct traffic *t, const char *path, char *err)
{
    static const char *const classes[CLASSES] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    const json_t *status = NULL, *hist = NULL;
    char sub[64];
    int rc = get_u64(o, "requests", &t->requests, path, err);
    if (!rc)
        rc = get_obj(o, "status", &status, path, err);
    snprintf(sub, sizeof(sub), "%sstatus.", path);
    for (int c = 0; !rc && status && c < CLASSES; c++)
        rc = get_u64(status, classes[c], &t->by_class[c], sub, err);
    if (!rc)
        rc = get_obj(o, "latency_histogram", &hist, path, err);
    snprintf(sub, sizeof(sub), "%slatency_histogram.", path);
    if (!rc && hist)
        rc = parse_histogram(hist, &t->latency_us, sub, err);
    return rc;
}

static int parse_route(const json_t *o, const char *name, struct route_traffic *r, size_t i,
                       char *err)
{
    char path[32];
    snprintf(path, sizeof(path), "routes[%zu].", i);
    if (!json_is_object(o))
        return fail(err, "routes[%zu]: must be an object", i);
    if (!name && !member(o, "route"))
        return fail(err, "%sroute: missing", path);
    if (name && strlen(name) >= sizeof(r->name))
        return fail(err, "routes[%zu]: name longer than %zu bytes", i, sizeof(r->name) - 1);
    if (name)
        memcpy(r->name, name, strlen(name) + 1);
    int rc = name ? SL_OK : get_str(o, "route", r->name, sizeof(r->name), path, err);
    return rc ? rc : parse_traffic(o, &r->t, path, err);
}

/* "routes": the agent's [{..., "route": name}, ...] or {name: {...}, ...}. */
static int parse_routes(const json_t *root, struct agent_sample *s, char *err)
{
    const json_t *routes = member(root, "routes"), *o;
    if (!routes)
        return SL_OK;
    if (!json_is_array(routes) && !json_is_object(routes))
        return fail(err, "routes: must be an array or an object");
    size_t n = json_is_array(routes) ? json_array_size(routes) : json_object_size(routes);
    size_t keep = n < SAMPLE_ROUTES_MAX ? n : SAMPLE_ROUTES_MAX, i;
    if (keep && !(s->routes = calloc(keep, sizeof(*s->routes)))) {
        snprintf(err, SNAPSHOT_ERR_MAX, "out of memory");
        return SL_ENOMEM;
    }
    s->routes_dropped = (unsigned)(n - keep);
    int rc = SL_OK;
    const char *name;
    if (json_is_array(routes)) {
        for (i = 0; rc == SL_OK && i < keep; i++)
            rc = parse_route(json_array_get(routes, i), NULL, &s->routes[i], i, err);
        s->nroutes = (unsigned)i;
        return rc;
    }
    i = 0; /* jansson's object iteration takes a non-const object; it does not modify it */
    json_object_foreach((json_t *)routes, name, o)
    {
        if (rc != SL_OK || i == keep)
            break;
        rc = parse_route(o, name, &s->routes[i], i, err);
        i++;
    }
    s->nroutes = (unsigned)i;
    return rc;
}

static int parse_identity(const json_t *root, struct agent_identity *who, char *err)
{
    int role = REPLICA_SIDECAR, state = REPLICA_SERVING;
    uint64_t weight = 100;
    snprintf(who->service, sizeof(who->service), "default");
    if (!member(root, "id"))
        return fail(err, "id: missing");
    int rc = get_str(root, "id", who->id, sizeof(who->id), "", err);
    if (!rc && !who->id[0])
        rc = fail(err, "id: must not be empty");
    if (!rc)
        rc = get_str(root, "service", who->service, sizeof(who->service), "", err);
    if (!rc)
        rc = get_str(root, "version", who->version, sizeof(who->version), "", err);
    if (!rc)
        rc = get_enum(root, "role", role_names, NELEM(role_names), &role, err);
    if (!rc) /* an agent never says "down": only the poller knows that */
        rc = get_enum(root, "state", state_names, REPLICA_DOWN, &state, err);
    if (!rc)
        rc = get_u64(root, "weight", &weight, "", err);
    if (!rc && weight > 100)
        rc = fail(err, "weight: must be 0..100");
    if (!rc)
        rc = get_u64(root, "policy_version", &who->policy_version, "", err);
    who->role = (enum replica_role)role;
    who->state = (enum replica_state)state;
    who->weight = (unsigned)weight;
    return rc;
}

/* agent/respcache.c respcache_stats_json; {"enabled": false} without a cache. */
static int parse_cache(const json_t *root, struct sample_cache *c, char *err)
{
    static const char *const windows[3] = {"1s", "10s", "60s"};
    const json_t *o, *win = NULL, *enabled;
    int rc = get_obj(root, "cache", &o, "", err);
    if (rc || !o)
        return rc;
    enabled = member(o, "enabled");
    if (enabled && !json_is_boolean(enabled))
        return fail(err, "cache.enabled: must be a boolean");
    c->enabled = enabled ? json_is_true(enabled) : member(o, "hits") != NULL;
    const struct u64_field f[] = {
        {"hits", &c->hits},           {"misses", &c->misses},           {"stale", &c->stale},
        {"evictions", &c->evictions}, {"expirations", &c->expirations}, {"entries", &c->entries},
        {"bytes", &c->bytes},
    };
    rc = get_u64_fields(o, f, NELEM(f), "cache.", err);
    if (!rc)
        rc = get_obj(o, "hit_ratio_window", &win, "cache.", err);
    for (int i = 0; !rc && win && i < 3; i++) {
        const json_t *v = member(win, windows[i]);
        if (v && !json_is_number(v))
            rc = fail(err, "cache.hit_ratio_window.%s: must be a number", windows[i]);
        else if (v)
            c->hit_ratio_window[i] = json_number_value(v);
    }
    return rc;
}

/* agent/limiter.c limits_stats_json, summed over the policies. */
static int parse_limiter(const json_t *root, struct agent_sample *s, char *err)
{
    const json_t *o, *list = NULL, *p;
    size_t i;
    int rc = get_obj(root, "limiter", &o, "", err);
    if (!rc && o)
        rc = get_array(o, "policies", &list, "limiter.", err);
    if (rc || !list)
        return rc;
    json_array_foreach(list, i, p)
    {
        char path[48];
        uint64_t allowed = 0, limited = 0;
        snprintf(path, sizeof(path), "limiter.policies[%zu].", i);
        if (!json_is_object(p))
            return fail(err, "limiter.policies[%zu]: must be an object", i);
        const struct u64_field f[] = {{"allowed", &allowed}, {"limited", &limited}};
        if ((rc = get_u64_fields(p, f, NELEM(f), path, err)) != SL_OK)
            return rc;
        s->limiter_allowed += allowed;
        s->limiter_limited += limited;
    }
    return SL_OK;
}

static int parse_drain(const json_t *root, struct sample_drain *d, char *err)
{
    const json_t *o;
    int rc = get_obj(root, "drain", &o, "", err);
    if (rc || !o)
        return rc;
    d->active = true;
    const struct u64_field f[] = {{"elapsed_ms", &d->elapsed_ms},
                                  {"remaining_ms", &d->remaining_ms},
                                  {"in_flight", &d->in_flight}};
    return get_u64_fields(o, f, NELEM(f), "drain.", err);
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

int agent_sample_parse(const json_t *stats, struct agent_sample *out, char err[SNAPSHOT_ERR_MAX])
{
    agent_sample_release(out);
    err[0] = '\0';
    if (!json_is_object(stats))
        return fail(err, "the stats document must be a JSON object");
    const json_t *totals = NULL;
    const struct u64_field f[] = {{"uptime_s", &out->uptime_s}, {"in_flight", &out->in_flight}};
    int rc = parse_identity(stats, &out->who, err);
    if (!rc)
        rc = get_u64_fields(stats, f, NELEM(f), "", err);
    if (!rc)
        rc = get_obj(stats, "totals", &totals, "", err);
    if (!rc && totals)
        rc = parse_traffic(totals, &out->totals, "totals.", err);
    if (!rc)
        rc = parse_routes(stats, out, err);
    for (unsigned i = 0; !rc && !totals && i < out->nroutes; i++)
        traffic_add(&out->totals, &out->routes[i].t);
    if (!rc)
        rc = parse_cache(stats, &out->cache, err);
    if (!rc)
        rc = parse_limiter(stats, out, err);
    if (!rc)
        rc = parse_drain(stats, &out->drain, err);
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
