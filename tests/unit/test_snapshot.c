/* Unit tests for server/snapshot.c: parsing /v1/stats, per-interval windows, restarts,
 * merging replicas into services, down replicas, SLO counts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "snapshot.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static int parse(const char *text, struct agent_sample *s, char *err)
{
    return agent_sample_parse(text, strlen(text), s, err);
}

static void sample_start(struct agent_sample *s, const char *id, const char *service,
                         uint64_t uptime_s)
{
    agent_sample_init(s);
    snprintf(s->who.id, sizeof(s->who.id), "%s", id);
    snprintf(s->who.service, sizeof(s->who.service), "%s", service);
    s->who.weight = 100;
    s->uptime_s = uptime_s;
}

static struct traffic *route_of(struct agent_sample *s, const char *name)
{
    for (unsigned i = 0; i < s->nroutes; i++)
        if (strcmp(s->routes[i].name, name) == 0)
            return &s->routes[i].t;
    s->routes = realloc(s->routes, (s->nroutes + 1) * sizeof(*s->routes));
    assert_non_null(s->routes);
    struct route_traffic *r = &s->routes[s->nroutes++];
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    return &r->t;
}

/* n requests of status class cls taking latency_us, as the agent counts them: in the totals
 * and (route not NULL) in the route. */
static void record(struct agent_sample *s, const char *route, int cls, uint64_t latency_us,
                   unsigned n)
{
    struct traffic *ts[2] = {&s->totals, route ? route_of(s, route) : NULL};
    for (int k = 0; k < 2 && ts[k]; k++) {
        for (unsigned i = 0; i < n; i++) {
            ts[k]->requests++;
            ts[k]->by_class[cls]++;
            histogram_record(&ts[k]->latency_us, latency_us);
        }
    }
}

static json_t *path_get(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    return b ? json_object_get(v, b) : v;
}

static double real_at(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_real(v))
        fail_msg("%s is not a real", key);
    return json_real_value(v);
}

static void expect_identity(const struct agent_identity *got, const struct agent_identity *want)
{
    assert_string_equal(got->id, want->id);
    assert_string_equal(got->service, want->service);
    assert_string_equal(got->version, want->version);
    assert_int_equal(got->role, want->role);
    assert_int_equal(got->state, want->state);
    assert_int_equal(got->weight, want->weight);
    assert_int_equal(got->policy_version, want->policy_version);
}

/* ---- parsing -------------------------------------------------------------------------------- */

/* What a draining sidecar with a cache and two rate-limit policies answers (the shape of
 * agent/admin.c admin_stats_json; histograms taken from a real agent). */
static const char real_doc[] =
    "{\"id\":\"web-1\",\"role\":\"sidecar\",\"service\":\"web\",\"state\":\"draining\","
    "\"weight\":50,\"version\":\"0.1.0\",\"uptime_s\":3600,\"in_flight\":4,"
    "\"totals\":{\"requests\":6,\"status\":{\"1xx\":0,\"2xx\":3,\"3xx\":0,\"4xx\":1,"
    "\"5xx\":1,\"none\":1},\"bytes_in\":492,\"bytes_out\":1320,\"upstream_errors\":1,"
    "\"upstream_timeouts\":0,\"faulted\":0,\"rejected\":0,"
    "\"rate\":{\"1s\":5.0,\"10s\":0.5,\"60s\":0.0833333333},"
    "\"error_rate\":{\"1s\":2.0,\"10s\":0.2,\"60s\":0.0333333333},"
    "\"latency_ms\":{\"p50\":0.065,\"p90\":0.187,\"p99\":0.187,\"p999\":0.187},"
    "\"upstream_latency_ms\":{\"p50\":0.0,\"p90\":0.0,\"p99\":0.0,\"p999\":0.0},"
    "\"latency_histogram\":{\"layout\":\"loglin-32-2^27\",\"unit\":\"us\",\"count\":6,"
    "\"sum\":580,\"min\":53,\"max\":187,"
    "\"buckets\":[[53,1],[55,1],[64,1],[77,1],[96,1],[110,1]]}},"
    "\"connections\":{\"open\":0,\"accepted\":6},\"upstream\":{\"connects\":6,\"reused\":0},"
    "\"routes\":["
    "{\"requests\":3,\"status\":{\"1xx\":0,\"2xx\":2,\"3xx\":0,\"4xx\":0,\"5xx\":1,\"none\":0},"
    "\"bytes_in\":240,\"rate\":{\"1s\":3.0,\"10s\":0.3,\"60s\":0.05},"
    "\"latency_histogram\":{\"layout\":\"loglin-32-2^27\",\"unit\":\"us\",\"count\":3,"
    "\"sum\":408,\"min\":91,\"max\":187,\"buckets\":[[77,1],[96,1],[110,1]]},"
    "\"route\":\"/x\"},"
    "{\"requests\":3,\"status\":{\"1xx\":0,\"2xx\":1,\"3xx\":0,\"4xx\":1,\"5xx\":0,\"none\":1},"
    "\"latency_histogram\":{\"layout\":\"loglin-32-2^27\",\"unit\":\"us\",\"count\":3,"
    "\"sum\":172,\"min\":53,\"max\":64,\"buckets\":[[53,1],[55,1],[64,1]]},"
    "\"route\":\"/api/...\"}],"
    "\"faults\":{\"active\":0},"
    "\"cache\":{\"enabled\":true,\"policy\":\"s3fifo\",\"hit_ratio\":0.8,"
    "\"hit_ratio_window\":{\"1s\":null,\"10s\":0.75,\"60s\":0.8},\"shared\":null,"
    "\"hits\":40,\"misses\":10,\"stale\":2,\"revalidated\":0,\"bypass\":1,"
    "\"evictions\":3,\"expirations\":4,\"entries\":5,\"bytes\":600,\"budget_bytes\":100000},"
    "\"spans\":{\"dropped\":0},\"policy_version\":7,"
    "\"drain\":{\"elapsed_ms\":1500,\"remaining_ms\":28500,\"in_flight\":4},"
    "\"limiter\":{\"policies\":["
    "{\"policy\":\"per-ip\",\"allowed\":100,\"limited\":7,\"shadow_limited\":0,"
    "\"store_errors\":0,\"fallback_local\":0,\"failed_open\":0,\"failed_closed\":0},"
    "{\"policy\":\"global\",\"allowed\":50,\"limited\":3,\"shadow_limited\":1,"
    "\"store_errors\":0,\"fallback_local\":0,\"failed_open\":0,\"failed_closed\":0}],"
    "\"sync\":{\"local_override\":false,\"redis_version\":0},\"local_keys\":0,"
    "\"local_evictions\":0,\"live_agents\":1}}";

static void test_parse_real_document(void **state)
{
    (void)state;
    struct agent_sample s;
    char err[SNAPSHOT_ERR_MAX];
    agent_sample_init(&s);
    assert_int_equal(parse(real_doc, &s, err), SL_OK);
    assert_string_equal(err, "");
    const struct agent_identity want = {"web-1",          "web", "0.1.0", REPLICA_SIDECAR,
                                        REPLICA_DRAINING, 50,    7};
    expect_identity(&s.who, &want);
    assert_int_equal(s.uptime_s, 3600);
    assert_int_equal(s.in_flight, 4);
    /* totals */
    assert_int_equal(s.totals.requests, 6);
    assert_int_equal(s.totals.by_class[0], 1);
    assert_int_equal(s.totals.by_class[2], 3);
    assert_int_equal(s.totals.by_class[4], 1);
    assert_int_equal(s.totals.by_class[5], 1);
    assert_int_equal(histogram_count(&s.totals.latency_us), 6);
    assert_int_equal(histogram_sum(&s.totals.latency_us), 580);
    assert_int_equal(histogram_min(&s.totals.latency_us), 53);
    assert_int_equal(histogram_max(&s.totals.latency_us), 187);
    assert_int_equal(histogram_bucket_count(&s.totals.latency_us, 110), 1);
    /* the agent's own "p50": 0.065 ms, "p99": 0.187 ms — the rebuilt histogram agrees */
    assert_int_equal(histogram_percentile(&s.totals.latency_us, 50), 65);
    assert_int_equal(histogram_percentile(&s.totals.latency_us, 99), 187);
    /* routes, in the agent's order */
    assert_int_equal(s.nroutes, 2);
    assert_int_equal(s.routes_dropped, 0);
    assert_string_equal(s.routes[0].name, "/x");
    assert_string_equal(s.routes[1].name, "/api/...");
    assert_int_equal(s.routes[0].t.requests, 3);
    assert_int_equal(s.routes[0].t.by_class[5], 1);
    assert_int_equal(s.routes[1].t.by_class[0], 1);
    assert_int_equal(histogram_count(&s.routes[1].t.latency_us), 3);
    assert_int_equal(histogram_max(&s.routes[1].t.latency_us), 64);
    /* cache */
    assert_true(s.cache.enabled);
    assert_int_equal(s.cache.hits, 40);
    assert_int_equal(s.cache.misses, 10);
    assert_int_equal(s.cache.stale, 2);
    assert_int_equal(s.cache.evictions, 3);
    assert_int_equal(s.cache.expirations, 4);
    assert_int_equal(s.cache.entries, 5);
    assert_int_equal(s.cache.bytes, 600);
    assert_true(isnan(s.cache.hit_ratio_window[0]));
    assert_true(s.cache.hit_ratio_window[1] == 0.75);
    assert_true(s.cache.hit_ratio_window[2] == 0.8);
    /* limiter, summed over the policies */
    assert_int_equal(s.limiter_allowed, 150);
    assert_int_equal(s.limiter_limited, 10);
    /* drain */
    assert_true(s.drain.active);
    assert_int_equal(s.drain.elapsed_ms, 1500);
    assert_int_equal(s.drain.remaining_ms, 28500);
    assert_int_equal(s.drain.in_flight, 4);
    agent_sample_release(&s);
}

/* An older agent: only what it sent; routes as an object and no totals. */
static void test_parse_defaults_and_route_object(void **state)
{
    (void)state;
    struct agent_sample s;
    char err[SNAPSHOT_ERR_MAX];
    const char *old = "{\"id\":\"old\",\"drain\":null,\"cache\":{\"enabled\":false},"
                      "\"routes\":{\"/a\":{\"requests\":2,\"status\":{\"2xx\":2},"
                      "\"latency_histogram\":{\"buckets\":[[10,2]],\"sum\":20,\"min\":10,"
                      "\"max\":10}},\"/b\":{\"requests\":1,\"status\":{\"5xx\":1}}}}";
    agent_sample_init(&s);
    assert_int_equal(parse(old, &s, err), SL_OK);
    const struct agent_identity defaults = {"old",           "default", "", REPLICA_SIDECAR,
                                            REPLICA_SERVING, 100,       0};
    expect_identity(&s.who, &defaults);
    assert_false(s.cache.enabled);
    assert_true(isnan(s.cache.hit_ratio_window[1]));
    assert_false(s.drain.active);
    assert_int_equal(s.limiter_limited, 0);
    assert_int_equal(s.nroutes, 2);
    assert_string_equal(s.routes[0].name, "/a");
    assert_string_equal(s.routes[1].name, "/b");
    /* totals = the sum of the routes */
    assert_int_equal(s.totals.requests, 3);
    assert_int_equal(s.totals.by_class[2], 2);
    assert_int_equal(s.totals.by_class[5], 1);
    assert_int_equal(histogram_count(&s.totals.latency_us), 2);
    assert_int_equal(histogram_max(&s.totals.latency_us), 10);

    /* a gateway, with more routes than the bound */
    json_t *doc = json_loads("{\"id\":\"gw\",\"role\":\"gateway\",\"state\":\"maint\","
                             "\"gateway\":{\"lb\":\"p2c\"},\"routes\":[]}",
                             0, NULL);
    json_t *routes = json_object_get(doc, "routes");
    for (int i = 0; i < SAMPLE_ROUTES_MAX + 6; i++) {
        char name[16];
        snprintf(name, sizeof(name), "/r%d", i);
        json_array_append_new(routes, json_pack("{s:s, s:i}", "route", name, "requests", 1));
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_int_equal(parse(text, &s, err), SL_OK);
    free(text);
    assert_int_equal(s.who.role, REPLICA_GATEWAY);
    assert_int_equal(s.who.state, REPLICA_MAINT);
    assert_int_equal(s.nroutes, SAMPLE_ROUTES_MAX);
    assert_int_equal(s.routes_dropped, 6);
    assert_string_equal(s.routes[SAMPLE_ROUTES_MAX - 1].name, "/r63");
    assert_int_equal(s.totals.requests, SAMPLE_ROUTES_MAX); /* only the kept ones, no totals */
    agent_sample_release(&s);
    json_decref(doc);
}

/* What a tree parser gave for free: escapes decoded, the last of two members, null as
 * absent, unknown members of any shape skipped. */
static void test_parse_json_details(void **state)
{
    (void)state;
    struct agent_sample s;
    char err[SNAPSHOT_ERR_MAX];
    agent_sample_init(&s);
    assert_int_equal(parse("{\"id\":\"a\",\"id\":\"b\",\"totals\":null,\"x\":[{\"y\":[1,{}]}],"
                           "\"routes\":{\"/caf\\u00e9\":{\"requests\":1,\"route\":5}},"
                           "\"cache\":{\"hits\":null,\"misses\":2},\"weight\":null}",
                           &s, err),
                     SL_OK);
    assert_string_equal(s.who.id, "b");
    assert_int_equal(s.who.weight, 100);
    assert_int_equal(s.nroutes, 1);
    assert_string_equal(s.routes[0].name, "/caf\xc3\xa9");
    assert_int_equal(s.totals.requests, 1); /* totals null: the routes' sum */
    assert_false(s.cache.enabled);          /* hits null: not sent */
    assert_int_equal(s.cache.misses, 2);
    agent_sample_release(&s);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *err;
    } cases[] = {
        {"[]", "the stats document must be a JSON object"},
        {"{}", "id: missing"},
        {"{\"id\":\"\"}", "id: must not be empty"},
        {"{\"id\":5}", "id: must be a string"},
        {"{\"id\":\"0123456789012345678901234567890123456789012345678901234567890123\"}",
         "id: longer than 63 bytes"},
        {"{\"id\":\"a\",\"state\":\"gone\"}", "state: unknown value \"gone\""},
        {"{\"id\":\"a\",\"state\":\"down\"}", "state: unknown value \"down\""},
        {"{\"id\":\"a\",\"role\":\"proxy\"}", "role: unknown value \"proxy\""},
        {"{\"id\":\"a\",\"weight\":101}", "weight: must be 0..100"},
        {"{\"id\":\"a\",\"uptime_s\":-1}", "uptime_s: must be a non-negative integer"},
        {"{\"id\":\"a\",\"totals\":[]}", "totals: must be an object"},
        {"{\"id\":\"a\",\"totals\":{\"requests\":\"5\"}}",
         "totals.requests: must be a non-negative integer"},
        {"{\"id\":\"a\",\"totals\":{\"status\":{\"5xx\":1.5}}}",
         "totals.status.5xx: must be a non-negative integer"},
        {"{\"id\":\"a\",\"totals\":{\"latency_histogram\":{\"layout\":\"hdr\"}}}",
         "totals.latency_histogram.layout: only \"loglin-32-2^27\" is understood"},
        {"{\"id\":\"a\",\"totals\":{\"latency_histogram\":{\"unit\":\"ms\"}}}",
         "totals.latency_histogram.unit: only \"us\" is understood"},
        {"{\"id\":\"a\",\"totals\":{\"latency_histogram\":{\"count\":3,\"buckets\":[[1,1]]}}}",
         "totals.latency_histogram.count: 3 but the buckets hold 1"},
        {"{\"id\":\"a\",\"totals\":{\"latency_histogram\":{\"buckets\":[[737,1]]}}}",
         "totals.latency_histogram.buckets[0]: out of range"},
        {"{\"id\":\"a\",\"totals\":{\"latency_histogram\":{\"buckets\":[[5,1],[5,1]]}}}",
         "totals.latency_histogram.buckets[1]: indices must ascend"},
        {"{\"id\":\"a\",\"totals\":{\"latency_histogram\":{\"buckets\":[[5]]}}}",
         "totals.latency_histogram.buckets[0]: must be [index, count]"},
        {"{\"id\":\"a\",\"totals\":{\"latency_histogram\":{\"buckets\":{}}}}",
         "totals.latency_histogram.buckets: must be an array"},
        {"{\"id\":\"a\",\"routes\":\"x\"}", "routes: must be an array or an object"},
        {"{\"id\":\"a\",\"routes\":[5]}", "routes[0]: must be an object"},
        {"{\"id\":\"a\",\"routes\":[{\"requests\":1}]}", "routes[0].route: missing"},
        {"{\"id\":\"a\",\"routes\":[{\"route\":\"/a\"},{\"route\":\"/b\",\"requests\":-2}]}",
         "routes[1].requests: must be a non-negative integer"},
        {"{\"id\":\"a\",\"routes\":{\"/a\":{\"status\":[]}}}",
         "routes[0].status: must be an object"},
        {"{\"id\":\"a\",\"cache\":{\"enabled\":\"yes\"}}", "cache.enabled: must be a boolean"},
        {"{\"id\":\"a\",\"cache\":{\"hits\":\"x\"}}", "cache.hits: must be a non-negative integer"},
        {"{\"id\":\"a\",\"cache\":{\"hit_ratio_window\":{\"10s\":\"x\"}}}",
         "cache.hit_ratio_window.10s: must be a number"},
        {"{\"id\":\"a\",\"limiter\":{\"policies\":{}}}", "limiter.policies: must be an array"},
        {"{\"id\":\"a\",\"limiter\":{\"policies\":[{\"limited\":true}]}}",
         "limiter.policies[0].limited: must be a non-negative integer"},
        {"{\"id\":\"a\",\"drain\":5}", "drain: must be an object"},
        {"{\"id\":\"a\"", "offset 9: unexpected end of the text"},
        {"{\"id\":\"a\"} x", "offset 11: text after the value"},
        {"{\"id\":\"a\",\"routes\":[{\"route\":\"/a\",\"status\":{\"2xx\":1,}}]}",
         "offset 52: expected a key"},
        {"{\"id\":\"a\",\"routes\":{\"/0123456789012345678901234567890123456789012345678901234567"
         "890123456789012345678901234567890123456789\":{}}}",
         "routes[0]: name longer than 95 bytes"},
        {"{\"id\":\"a\",\"routes\":[{\"route\":\"/a\"},{\"route\":7}]}",
         "routes[1].route: must be a string"},
    };
    struct agent_sample s;
    char err[SNAPSHOT_ERR_MAX];
    agent_sample_init(&s);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(parse(real_doc, &s, err), SL_OK);
        assert_int_equal(parse(cases[i].doc, &s, err), SL_EPARSE);
        assert_string_equal(err, cases[i].err);
        /* a failed parse leaves the sample empty, not half of the previous one */
        assert_null(s.routes);
        assert_int_equal(s.nroutes, 0);
        assert_string_equal(s.who.id, "");
        assert_int_equal(s.totals.requests, 0);
        assert_int_equal(histogram_count(&s.totals.latency_us), 0);
    }
    agent_sample_release(&s);
}

/* ---- windows ------------------------------------------------------------------------------- */

/* What the second poll of web-1 holds: the first poll's 10 × 100 µs on /a, then 100 more on
 * /a (90 × 1000 µs, 10 × 3000 µs: 90 2xx, 2 4xx, 5 5xx, 3 unanswered) and 4 × 50 µs on
 * the new route /b; cache 40 hits, 20 misses; 25 limited. */
static void cur_traffic(struct agent_sample *cur)
{
    record(cur, "/a", 2, 100, 10);
    record(cur, "/a", 2, 1000, 80);
    record(cur, "/a", 4, 1000, 2);
    record(cur, "/a", 5, 1000, 5);
    record(cur, "/a", 0, 1000, 3);
    record(cur, "/a", 2, 3000, 10);
    record(cur, "/b", 2, 50, 4);
    cur->cache.enabled = true;
    cur->cache.hits = 40;
    cur->cache.misses = 20;
    cur->limiter_limited = 25;
}

/* prev: 10 × 100 µs on /a, cache 10 hits, 10 misses, 5 limited. cur: cur_traffic. */
static void two_polls(struct agent_sample *prev, struct agent_sample *cur)
{
    sample_start(prev, "web-1", "web", 100);
    record(prev, "/a", 2, 100, 10);
    prev->cache.enabled = true;
    prev->cache.hits = 10;
    prev->cache.misses = 10;
    prev->limiter_limited = 5;
    sample_start(cur, "web-1", "web", 102);
    cur_traffic(cur);
}

/* two_polls and their window, 2 s apart; polls_release undoes it. */
static void polls_window(struct agent_sample *prev, struct agent_sample *cur,
                         struct replica_view *v)
{
    two_polls(prev, cur);
    replica_view_init(v);
    assert_int_equal(replica_view_compute(v, prev, cur, 2000), SL_OK);
}

static void polls_release(struct agent_sample *prev, struct agent_sample *cur,
                          struct replica_view *v)
{
    replica_view_release(v);
    agent_sample_release(prev);
    agent_sample_release(cur);
}

/* The window of route (NULL: the totals) holds exactly these numbers. */
static void expect_window(const struct replica_view *v, const char *route, uint64_t requests,
                          double rps, double error_ratio, uint64_t p50_us, uint64_t p99_us)
{
    struct window_summary w;
    assert_true(replica_view_summary(v, route, &w));
    assert_int_equal(w.requests, requests);
    assert_true(w.rps == rps);
    assert_true(w.error_ratio == error_ratio);
    assert_int_equal(w.p50_us, p50_us);
    assert_int_equal(w.p99_us, p99_us);
}

static void test_window_rates_and_percentiles(void **state)
{
    (void)state;
    struct agent_sample prev, cur;
    struct replica_view v;
    struct window_summary w;
    polls_window(&prev, &cur, &v);
    assert_false(v.restarted);
    assert_int_equal(v.interval_ms, 2000);
    assert_string_equal(v.who.id, "web-1");

    /* ranks 52, 99, 103 of 104: 1000 µs is in bucket [992, 1008) → its last value 1007;
     * 3000 µs in [2944, 3008), clamped to the recorded max 3000 */
    expect_window(&v, NULL, 104, 52.0, 8.0 / 104.0, 1007, 3000);
    replica_view_summary(&v, NULL, &w);
    assert_int_equal(w.errors, 8);
    assert_true(w.errors_per_s == 4.0);
    assert_int_equal(w.latency_count, 104); /* the 10 × 100 µs of prev are not in it */
    assert_int_equal(w.p95_us, 3000);
    expect_window(&v, "/a", 100, 50.0, 0.08, 1007, 3000);
    /* a route new since prev: all of it is in the window */
    expect_window(&v, "/b", 4, 2.0, 0.0, 50, 50);
    assert_false(replica_view_summary(&v, "/nope", &w));
    assert_int_equal(w.requests, 0);
    assert_true(isnan(w.error_ratio));

    assert_int_equal(v.cache_hits, 30);
    assert_int_equal(v.cache_misses, 10);
    assert_int_equal(v.limiter_limited, 20);

    /* the first poll of an agent has no window */
    assert_int_equal(replica_view_compute(&v, NULL, &cur, 0), SL_OK);
    assert_int_equal(v.interval_ms, 0);
    assert_int_equal(v.nroutes, 0);
    replica_view_summary(&v, NULL, &w);
    assert_int_equal(w.requests, 0);
    assert_true(w.rps == 0.0);
    assert_int_equal(replica_view_compute(&v, &prev, &cur, 0), SL_EINVAL);
    polls_release(&prev, &cur, &v);
}

static void expect_restart(const struct agent_sample *prev, const struct agent_sample *cur,
                           uint64_t requests)
{
    struct replica_view v;
    struct window_summary w;
    replica_view_init(&v);
    assert_int_equal(replica_view_compute(&v, prev, cur, 1000), SL_OK);
    assert_true(v.restarted);
    replica_view_summary(&v, NULL, &w);
    assert_int_equal(w.requests, requests);
    assert_int_equal(w.latency_count, requests);
    replica_view_release(&v);
}

static void test_restart_detection(void **state)
{
    (void)state;
    struct agent_sample prev, cur;
    two_polls(&prev, &cur);

    /* counters went down: the agent restarted and served 30 since */
    struct agent_sample again;
    sample_start(&again, "web-1", "web", 5);
    record(&again, "/a", 2, 1000, 30);
    expect_restart(&cur, &again, 30);

    /* uptime went back although the counters grew past the old ones */
    again.uptime_s = 101;
    record(&again, "/a", 2, 1000, 100);
    expect_restart(&cur, &again, 130);

    /* only a histogram bucket went down (same request count, other latencies) */
    struct agent_sample shifted;
    sample_start(&shifted, "web-1", "web", 200);
    record(&shifted, "/a", 2, 7, 20);
    struct agent_sample base;
    sample_start(&base, "web-1", "web", 199);
    record(&base, "/a", 2, 5, 20);
    expect_restart(&base, &shifted, 20);

    /* a route the agent reported is gone */
    struct agent_sample fewer;
    sample_start(&fewer, "web-1", "web", 300);
    record(&fewer, "/b", 2, 50, 500);
    expect_restart(&cur, &fewer, 500);

    /* one signal at a time, every other counter a superset of cur's (10 more on /a) */
    struct agent_sample lim, hits, other;
    sample_start(&lim, "web-1", "web", 300);
    cur_traffic(&lim);
    record(&lim, "/a", 2, 100, 10);
    lim.limiter_limited = 24; /* a limiter counter went down */
    expect_restart(&cur, &lim, 124);
    sample_start(&hits, "web-1", "web", 300);
    cur_traffic(&hits);
    record(&hits, "/a", 2, 100, 10);
    hits.cache.hits = 39; /* a cache counter went down */
    expect_restart(&cur, &hits, 124);
    sample_start(&other, "web-2", "web", 300); /* another agent in the same slot */
    cur_traffic(&other);
    record(&other, "/a", 2, 100, 10);
    expect_restart(&cur, &other, 124);
    /* the control: the same superset under the same id is a window of the 10 */
    struct replica_view w;
    replica_view_init(&w);
    snprintf(other.who.id, sizeof(other.who.id), "web-1");
    assert_int_equal(replica_view_compute(&w, &cur, &other, 1000), SL_OK);
    assert_false(w.restarted);
    assert_int_equal(w.totals.requests, 10);
    assert_int_equal(w.limiter_limited, 0);
    replica_view_release(&w);

    /* and the same sample twice is an empty window, not a restart */
    struct replica_view v;
    replica_view_init(&v);
    assert_int_equal(replica_view_compute(&v, &cur, &cur, 1000), SL_OK);
    assert_false(v.restarted);
    assert_int_equal(v.totals.requests, 0);
    replica_view_release(&v);

    agent_sample_release(&prev);
    agent_sample_release(&cur);
    agent_sample_release(&again);
    agent_sample_release(&shifted);
    agent_sample_release(&base);
    agent_sample_release(&fewer);
    agent_sample_release(&lim);
    agent_sample_release(&hits);
    agent_sample_release(&other);
}

/* ---- merging ------------------------------------------------------------------------------ */

/* A view of one interval_ms in which the agent served exactly what fill() records. */
static void view_of(struct replica_view *v, const char *id, const char *service,
                    void (*fill)(struct agent_sample *))
{
    struct agent_sample prev, cur;
    sample_start(&prev, id, service, 10);
    sample_start(&cur, id, service, 11);
    fill(&cur);
    replica_view_init(v);
    assert_int_equal(replica_view_compute(v, &prev, &cur, 1000), SL_OK);
    assert_false(v->restarted);
    agent_sample_release(&prev);
    agent_sample_release(&cur);
}

/* A: 100 × 1000 µs, 9 hits of 10 lookups. B: 90 × 1000 µs + 10 × 3000 µs (5xx), 1 hit of
 * 30 lookups, 20 limited. */
static void fill_a(struct agent_sample *s)
{
    record(s, "/a", 2, 1000, 100);
    s->cache.enabled = true;
    s->cache.hits = 9;
    s->cache.misses = 1;
    s->in_flight = 3;
}

static void fill_b(struct agent_sample *s)
{
    record(s, "/a", 2, 1000, 90);
    record(s, "/slow", 5, 3000, 10);
    s->cache.enabled = true;
    s->cache.hits = 1;
    s->cache.misses = 29;
    s->limiter_limited = 20;
    s->in_flight = 4;
}

static void fill_api(struct agent_sample *s)
{
    record(s, "/v1", 2, 20, 5);
}

static void test_merge_two_replicas(void **state)
{
    (void)state;
    struct replica_view a, b, api;
    struct window_summary sa, sb, svc;
    view_of(&a, "web-a", "web", fill_a);
    view_of(&b, "web-b", "web", fill_b);
    view_of(&api, "api-1", "api", fill_api);
    replica_view_summary(&a, NULL, &sa);
    replica_view_summary(&b, NULL, &sb);
    assert_int_equal(sa.p99_us, 1000);
    assert_int_equal(sb.p99_us, 3000);

    struct snapshot *s = snapshot_new(50000);
    assert_non_null(s);
    assert_int_equal(snapshot_add_replica(s, &b, true, 49000), SL_OK);
    assert_int_equal(snapshot_add_replica(s, &a, true, 49500), SL_OK);
    assert_int_equal(snapshot_add_replica(s, &api, true, 50000), SL_OK);
    assert_int_equal(snapshot_add_replica(s, &a, true, 50000), SL_EEXISTS);

    /* the service's percentiles are those of every request of both replicas */
    struct histogram *all = calloc(1, sizeof(*all));
    for (int i = 0; i < 190; i++)
        histogram_record(all, 1000);
    for (int i = 0; i < 10; i++)
        histogram_record(all, 3000);
    assert_true(snapshot_service_summary(s, "web", NULL, &svc));
    assert_int_equal(svc.requests, 200);
    assert_true(svc.rps == 200.0);
    assert_true(svc.error_ratio == 0.05);
    assert_int_equal(svc.p99_us, histogram_percentile(all, 99));
    assert_int_equal(svc.p95_us, histogram_percentile(all, 95));
    assert_int_equal(svc.p50_us, histogram_percentile(all, 50));
    assert_int_equal(svc.p99_us, 3000);
    assert_int_equal(svc.p95_us, 1007);
    /* ... and not averages of the replicas' */
    assert_int_not_equal(svc.p99_us, (sa.p99_us + sb.p99_us) / 2); /* 2000 */
    assert_int_not_equal(svc.p95_us, (sa.p95_us + sb.p95_us) / 2); /* 2000 */
    /* per route, merged over replicas; /slow only on B */
    assert_true(snapshot_service_summary(s, "web", "/a", &svc));
    assert_int_equal(svc.requests, 190);
    assert_true(svc.rps == 190.0);
    assert_true(snapshot_service_summary(s, "web", "/slow", &svc));
    assert_int_equal(svc.p50_us, 3000);
    assert_false(snapshot_service_summary(s, "nope", NULL, &svc));
    assert_false(snapshot_service_summary(s, "web", "/nope", &svc));

    json_t *doc = snapshot_json(s);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "ts")), 50000);
    json_t *services = json_object_get(doc, "services");
    assert_int_equal(json_array_size(services), 2);
    assert_string_equal(json_string_value(path_get(json_array_get(services, 0), "name", NULL)),
                        "api");
    json_t *web = json_array_get(services, 1);
    json_t *totals = json_object_get(web, "totals");
    assert_true(real_at(totals, "rps") == 200.0);
    assert_true(real_at(totals, "error_ratio") == 0.05);
    assert_true(real_at(totals, "p50_ms") == 1.007);
    assert_true(real_at(totals, "p95_ms") == 1.007);
    assert_true(real_at(totals, "p99_ms") == 3.0);
    assert_int_equal(json_integer_value(json_object_get(totals, "in_flight")), 7);
    /* 10 hits of 40 lookups, not the mean of 0.9 and 1/30 */
    assert_true(real_at(totals, "cache_hit_ratio") == 0.25);
    assert_true(real_at(totals, "limited_per_s") == 20.0);
    assert_int_equal(json_integer_value(json_object_get(totals, "replicas_up")), 2);
    /* replicas sorted by id, each with its own numbers and routes */
    json_t *replicas = json_object_get(web, "replicas");
    assert_int_equal(json_array_size(replicas), 2);
    json_t *ra = json_array_get(replicas, 0), *rb = json_array_get(replicas, 1);
    assert_string_equal(json_string_value(json_object_get(ra, "id")), "web-a");
    assert_string_equal(json_string_value(json_object_get(rb, "id")), "web-b");
    assert_string_equal(json_string_value(json_object_get(rb, "state")), "serving");
    assert_true(json_is_true(json_object_get(rb, "up")));
    assert_true(real_at(rb, "rps") == 100.0);
    assert_true(real_at(rb, "error_ratio") == 0.1);
    assert_true(real_at(rb, "p99_ms") == 3.0);
    assert_true(real_at(ra, "p99_ms") == 1.0);
    assert_true(real_at(ra, "cache_hit_ratio") == 0.9);
    assert_true(real_at(rb, "limited_per_s") == 20.0);
    assert_int_equal(json_integer_value(json_object_get(rb, "last_seen_ms_ago")), 1000);
    json_t *rb_routes = json_object_get(rb, "routes");
    assert_int_equal(json_array_size(rb_routes), 2);
    assert_string_equal(json_string_value(path_get(json_array_get(rb_routes, 1), "name", NULL)),
                        "/slow");
    assert_true(real_at(json_array_get(rb_routes, 1), "error_ratio") == 1.0);
    json_t *svc_routes = json_object_get(web, "routes");
    assert_int_equal(json_array_size(svc_routes), 2);
    assert_true(real_at(json_array_get(svc_routes, 0), "rps") == 190.0);

    json_decref(doc);
    free(all);
    snapshot_free(s);
    replica_view_release(&a);
    replica_view_release(&b);
    replica_view_release(&api);
}

static void test_down_and_unwindowed_replicas(void **state)
{
    (void)state;
    struct replica_view up, down, first;
    view_of(&up, "web-a", "web", fill_a);
    view_of(&down, "web-b", "web", fill_b); /* its last view before the poll failed */
    struct agent_sample only;
    sample_start(&only, "web-c", "web", 1);
    only.in_flight = 2;
    replica_view_init(&first);
    assert_int_equal(replica_view_compute(&first, NULL, &only, 0), SL_OK);

    struct snapshot *s = snapshot_new(90000);
    assert_int_equal(snapshot_add_replica(s, &up, true, 90000), SL_OK);
    assert_int_equal(snapshot_add_replica(s, &down, false, 60000), SL_OK);
    assert_int_equal(snapshot_add_replica(s, &first, true, 90000), SL_OK);

    /* nothing of the down replica is in the totals */
    struct window_summary w;
    assert_true(snapshot_service_summary(s, "web", NULL, &w));
    assert_int_equal(w.requests, 100);
    assert_true(w.rps == 100.0);
    assert_int_equal(w.p99_us, 1000);

    json_t *doc = snapshot_json(s);
    json_t *web = json_array_get(json_object_get(doc, "services"), 0);
    json_t *replicas = json_object_get(web, "replicas");
    assert_int_equal(json_array_size(replicas), 3);
    json_t *d = json_array_get(replicas, 1);
    assert_string_equal(json_string_value(json_object_get(d, "id")), "web-b");
    assert_string_equal(json_string_value(json_object_get(d, "state")), "down");
    assert_true(json_is_false(json_object_get(d, "up")));
    assert_int_equal(json_integer_value(json_object_get(d, "weight")), 100);
    assert_true(json_is_null(json_object_get(d, "rps")));
    assert_true(json_is_null(json_object_get(d, "p99_ms")));
    assert_true(json_is_null(json_object_get(d, "error_ratio")));
    assert_true(json_is_null(json_object_get(d, "in_flight")));
    assert_true(json_is_null(json_object_get(d, "cache_hit_ratio")));
    assert_int_equal(json_integer_value(json_object_get(d, "last_seen_ms_ago")), 30000);
    assert_int_equal(json_array_size(json_object_get(d, "routes")), 0);
    /* up, but polled once: gauges yes, rates unknown */
    json_t *f = json_array_get(replicas, 2);
    assert_true(json_is_true(json_object_get(f, "up")));
    assert_true(json_is_null(json_object_get(f, "rps")));
    assert_int_equal(json_integer_value(json_object_get(f, "in_flight")), 2);
    json_t *totals = json_object_get(web, "totals");
    assert_int_equal(json_integer_value(json_object_get(totals, "in_flight")), 5);
    assert_int_equal(json_integer_value(json_object_get(totals, "replicas")), 3);
    assert_int_equal(json_integer_value(json_object_get(totals, "replicas_up")), 2);
    assert_true(real_at(totals, "rps") == 100.0);
    assert_true(real_at(totals, "cache_hit_ratio") == 0.9);

    /* a service whose only replica is down: zero rate, unknown everything else */
    struct replica_view gone;
    replica_view_init(&gone);
    snprintf(gone.who.id, sizeof(gone.who.id), "db-1");
    snprintf(gone.who.service, sizeof(gone.who.service), "db");
    assert_int_equal(snapshot_add_replica(s, &gone, false, 0), SL_OK);
    json_decref(doc);
    doc = snapshot_json(s);
    json_t *db = json_array_get(json_object_get(doc, "services"), 0);
    assert_string_equal(json_string_value(json_object_get(db, "name")), "db");
    totals = json_object_get(db, "totals");
    assert_true(real_at(totals, "rps") == 0.0);
    assert_true(json_is_null(json_object_get(totals, "error_ratio")));
    assert_true(json_is_null(json_object_get(totals, "p99_ms")));
    assert_true(json_is_null(json_object_get(totals, "cache_hit_ratio")));
    json_t *g = json_array_get(json_object_get(db, "replicas"), 0);
    assert_true(json_is_null(json_object_get(g, "last_seen_ms_ago")));

    json_decref(doc);
    snapshot_free(s);
    agent_sample_release(&only);
    replica_view_release(&up);
    replica_view_release(&down);
    replica_view_release(&first);
}

static void test_bounds(void **state)
{
    (void)state;
    struct replica_view v;
    replica_view_init(&v);
    struct snapshot *s = snapshot_new(1);
    for (int i = 0; i < SNAPSHOT_REPLICAS_MAX; i++) {
        snprintf(v.who.id, sizeof(v.who.id), "r%03d", i);
        snprintf(v.who.service, sizeof(v.who.service), "web");
        assert_int_equal(snapshot_add_replica(s, &v, true, 1), SL_OK);
    }
    snprintf(v.who.id, sizeof(v.who.id), "one-more");
    assert_int_equal(snapshot_add_replica(s, &v, true, 1), SL_ETOOBIG);
    for (int i = 1; i < SNAPSHOT_SERVICES_MAX; i++) {
        snprintf(v.who.service, sizeof(v.who.service), "svc%02d", i);
        assert_int_equal(snapshot_add_replica(s, &v, true, 1), SL_OK);
    }
    snprintf(v.who.service, sizeof(v.who.service), "svc-too-many");
    assert_int_equal(snapshot_add_replica(s, &v, true, 1), SL_ETOOBIG);
    json_t *doc = snapshot_json(s);
    assert_int_equal(json_array_size(json_object_get(doc, "services")), SNAPSHOT_SERVICES_MAX);
    json_decref(doc);
    snapshot_free(s);
}

/* ---- SLO counts ---------------------------------------------------------------------------- */

static void test_slo_counts(void **state)
{
    (void)state;
    struct agent_sample prev, cur;
    struct replica_view v;
    struct window_counts c;
    polls_window(&prev, &cur, &v);

    /* /a: 100 requests, 8 errors; 90 at 1000 µs (bucket [992, 1008)), 10 at 3000 µs */
    assert_true(replica_view_counts(&v, "/a", 1007, &c));
    assert_int_equal(c.total, 100);
    assert_int_equal(c.good_avail, 92);
    assert_int_equal(c.good_latency, 90);
    /* a threshold inside the bucket counts the bucket as too slow: never early */
    assert_true(replica_view_counts(&v, "/a", 1000, &c));
    assert_int_equal(c.good_latency, 0);
    assert_true(replica_view_counts(&v, "/a", 3007, &c));
    assert_int_equal(c.good_latency, 100);
    /* the totals add /b's 4 fast successes */
    assert_true(replica_view_counts(&v, NULL, 1007, &c));
    assert_int_equal(c.total, 104);
    assert_int_equal(c.good_avail, 96);
    assert_int_equal(c.good_latency, 94);
    assert_false(replica_view_counts(&v, "/nope", 1007, &c));
    assert_int_equal(c.total, 0);
    assert_int_equal(c.good_avail, 0);
    assert_int_equal(c.good_latency, 0);

    /* per service: the sum over its replicas */
    struct replica_view b;
    view_of(&b, "web-b", "web", fill_b);
    struct snapshot *s = snapshot_new(1);
    assert_int_equal(snapshot_add_replica(s, &v, true, 1), SL_OK);
    assert_int_equal(snapshot_add_replica(s, &b, true, 1), SL_OK);
    assert_true(snapshot_service_counts(s, "web", NULL, 1007, &c));
    assert_int_equal(c.total, 204);
    assert_int_equal(c.good_avail, 96 + 90);
    assert_int_equal(c.good_latency, 94 + 90);
    assert_true(snapshot_service_counts(s, "web", "/a", 1007, &c));
    assert_int_equal(c.total, 190);
    assert_int_equal(c.good_avail, 182);
    assert_int_equal(c.good_latency, 180);
    assert_false(snapshot_service_counts(s, "web", "/nope", 1007, &c));
    assert_int_equal(c.total, 0);

    snapshot_free(s);
    replica_view_release(&b);
    polls_release(&prev, &cur, &v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_real_document),
        cmocka_unit_test(test_parse_defaults_and_route_object),
        cmocka_unit_test(test_parse_json_details),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_window_rates_and_percentiles),
        cmocka_unit_test(test_restart_detection),
        cmocka_unit_test(test_merge_two_replicas),
        cmocka_unit_test(test_down_and_unwindowed_replicas),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_slo_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
