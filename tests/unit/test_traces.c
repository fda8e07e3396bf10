/* Unit tests for server/traces.c: assembly, validation, bounds, retention, listing and the
 * critical path. Documents come from the agents' own encoder (spans_otlp_json) where they
 * can, so the store is tested against what the agents really ship. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json.h"
#include "spans.h"
#include "traces.h"

#define T0_NS 1700000000000000000ull /* every span time is T0 + some milliseconds */
#define MS    1000000ull

/* Trace ids (32 hex) and span ids (16 hex) used below. */
#define TRACE_A "4bf92f3577b34da6a3ce929d0e0e4736"
#define TRACE_B "00000000000000000000000000000b0b"
#define SPAN_R  "00000000000000a1" /* gateway root */
#define SPAN_S  "00000000000000b2" /* sidecar, child of R */
#define SPAN_G  "00000000000000c3" /* shortener, child of S */

/* One span as a test states it: ids as hex, times in ms after T0. */
struct spec {
    const char *trace, *id, *parent; /* parent NULL: a root */
    const char *name;
    uint64_t start_ms, end_ms;
    int http_status;
    bool error;
    const char *route;
};

static void hex_bytes(const char *hex, uint8_t *out, size_t len)
{
    assert_int_equal(strlen(hex), 2 * len);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(sscanf(hex + 2 * i, "%2hhx", &out[i]), 1);
}

/* The OTLP document one agent (service, role) would ship for these spans. */
static json_t *doc_of(const char *service, const char *role, const struct spec *v, size_t n)
{
    struct span sp[16];
    assert_true(n <= 16);
    memset(sp, 0, sizeof(sp));
    for (size_t i = 0; i < n; i++) {
        hex_bytes(v[i].trace, sp[i].trace_id, 16);
        hex_bytes(v[i].id, sp[i].span_id, 8);
        if (v[i].parent)
            hex_bytes(v[i].parent, sp[i].parent_id, 8);
        snprintf(sp[i].name, sizeof(sp[i].name), "%s", v[i].name ? v[i].name : "op");
        snprintf(sp[i].route, sizeof(sp[i].route), "%s", v[i].route ? v[i].route : "");
        snprintf(sp[i].method, sizeof(sp[i].method), "GET");
        sp[i].start_unix_ns = T0_NS + v[i].start_ms * MS;
        sp[i].duration_ns = (v[i].end_ms - v[i].start_ms) * MS;
        sp[i].http_status = v[i].http_status;
        sp[i].error = v[i].error;
    }
    json_t *doc = spans_otlp_json(sp, (unsigned)n, service, "agent-1", role);
    assert_non_null(doc);
    return doc;
}

/* Zero limits take the defaults. */
static struct trace_store *store_new(size_t max_traces, size_t max_spans_per_trace)
{
    struct trace_store_limits lim = {max_traces, max_spans_per_trace, 0};
    struct trace_store *s = trace_store_new(&lim);
    assert_non_null(s);
    return s;
}

static void add_doc(struct trace_store *s, json_t *doc, uint64_t now_ms)
{
    assert_int_equal(trace_store_add_otlp(s, doc, now_ms), SL_OK);
    json_decref(doc);
}

static void add_one(struct trace_store *s, const char *service, const char *role,
                    const struct spec *sp, uint64_t now_ms)
{
    add_doc(s, doc_of(service, role, sp, 1), now_ms);
}

static void add_raw(struct trace_store *s, const char *text, int want)
{
    json_t *doc;
    char err[JSON_ERR_MAX];
    assert_int_equal(json_parse(text, strlen(text), &doc, err), SL_OK);
    assert_int_equal(trace_store_add_otlp(s, doc, 1), want);
    json_decref(doc);
}

static struct trace_store_stats stats_of(const struct trace_store *s)
{
    struct trace_store_stats st;
    trace_store_stats(s, &st);
    return st;
}

/* --- reading the JSON out -------------------------------------------------------------- */

static const char *str(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    if (!v)
        fail_msg("no string member %s", key);
    return v;
}

static json_int_t num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("no integer member %s", key);
    return json_integer_value(v);
}

static double real(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_real(v))
        fail_msg("no real member %s", key);
    return json_real_value(v);
}

static bool flag(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_boolean(v))
        fail_msg("no boolean member %s", key);
    return json_is_true(v);
}

static json_t *top(const json_t *trace, size_t i)
{
    json_t *v = json_array_get(json_object_get(trace, "spans"), i);
    assert_non_null(v);
    return v;
}

static json_t *child(const json_t *span, size_t i)
{
    json_t *v = json_array_get(json_object_get(span, "children"), i);
    assert_non_null(v);
    return v;
}

static size_t count(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    assert_true(json_is_array(v));
    return json_array_size(v);
}

/* trace_store_get, with the trace's shape checked: complete or not, how many orphans,
 * how many top-level spans. */
static json_t *get_shaped(const struct trace_store *s, const char *trace_id, bool complete,
                          json_int_t orphans, size_t tops)
{
    json_t *t = trace_store_get(s, trace_id);
    assert_non_null(t);
    assert_int_equal(flag(t, "complete"), complete);
    assert_int_equal(num(t, "orphans"), orphans);
    assert_int_equal(count(t, "spans"), tops);
    return t;
}

/* The i-th top-level span has this id and is (or is not) an orphan. */
static void expect_top(const json_t *t, size_t i, const char *span_id, bool orphan)
{
    assert_string_equal(str(top(t, i), "span_id"), span_id);
    assert_int_equal(flag(top(t, i), "orphan"), orphan);
}

/* The array of strings under key, joined with commas. */
static const char *joined(const json_t *o, const char *key)
{
    static char buf[512];
    buf[0] = '\0';
    size_t i;
    const json_t *v;
    json_array_foreach(json_object_get(o, key), i, v)
    {
        if (i > 0)
            strcat(buf, ",");
        strcat(buf, json_string_value(v));
    }
    return buf;
}

/* The trace ids of a list, as "a,b,c" by their last two hex digits. */
static const char *listed(const json_t *list)
{
    static char buf[256];
    buf[0] = '\0';
    size_t i;
    const json_t *item;
    json_array_foreach(json_object_get(list, "traces"), i, item)
    {
        const char *id = str(item, "trace_id");
        if (i > 0)
            strcat(buf, ",");
        strncat(buf, id + 30, 2);
    }
    return buf;
}

/* --- assembly -------------------------------------------------------------------------- */

static const struct spec three[] = {
    {TRACE_A, SPAN_R, NULL, "GET /v1/links/{code}", 0, 100, 200, false, "/v1/links/{code}"},
    {TRACE_A, SPAN_S, SPAN_R, "GET /v1/links/{code}", 10, 90, 200, false, "/v1/links/{code}"},
    {TRACE_A, SPAN_G, SPAN_S, "redis GET", 20, 80, 0, false, NULL},
};

/* Grandchild first, gateway root last, each from its own agent: the tree comes out
 * right, and until the root arrives the sidecar's span is an orphan. */
static void test_reverse_order_tree(void **state)
{
    (void)state;
    struct trace_store *s = store_new(0, 0);
    add_one(s, "shortener", "app", &three[2], 1000);
    add_one(s, "shortener", "sidecar", &three[1], 1001);

    json_t *t = get_shaped(s, TRACE_A, false, 1, 1);
    expect_top(t, 0, SPAN_S, true);
    assert_string_equal(str(top(t, 0), "parent_span_id"), SPAN_R);
    assert_string_equal(str(child(top(t, 0), 0), "span_id"), SPAN_G);
    json_decref(t);

    add_one(s, "gateway", "gateway", &three[0], 1002);
    t = get_shaped(s, TRACE_A, true, 0, 1);
    assert_string_equal(str(t, "trace_id"), TRACE_A);
    assert_int_equal(num(t, "span_count"), 3);
    assert_true(real(t, "duration_ms") == 100.0);
    assert_string_equal(str(t, "start_unix_nano"), "1700000000000000000");
    assert_int_equal(num(t, "start_unix_ms"), 1700000000000);
    assert_int_equal(num(t, "received_ms"), 1000);
    assert_string_equal(str(t, "name"), "GET /v1/links/{code}");
    assert_string_equal(str(t, "service"), "gateway");
    assert_string_equal(joined(t, "services"), "gateway,shortener");

    assert_int_equal(count(t, "spans"), 1);
    json_t *r = top(t, 0), *sc = child(r, 0), *g = child(sc, 0);
    assert_string_equal(str(r, "span_id"), SPAN_R);
    assert_null(json_object_get(r, "parent_span_id"));
    assert_string_equal(str(r, "role"), "gateway");
    assert_string_equal(str(r, "agent_id"), "agent-1");
    assert_string_equal(str(r, "method"), "GET");
    assert_string_equal(str(r, "route"), "/v1/links/{code}");
    assert_int_equal(num(r, "http_status"), 200);
    assert_int_equal(num(r, "kind"), 2);
    assert_true(real(r, "upstream_ms") == 0.0);
    assert_false(flag(r, "orphan"));
    assert_int_equal(count(r, "children"), 1);
    assert_string_equal(str(sc, "span_id"), SPAN_S);
    assert_string_equal(str(sc, "parent_span_id"), SPAN_R);
    assert_false(flag(sc, "orphan"));
    assert_true(real(sc, "offset_ms") == 10.0);
    assert_true(real(sc, "duration_ms") == 80.0);
    assert_string_equal(str(g, "span_id"), SPAN_G);
    assert_string_equal(str(g, "service"), "shortener");
    assert_true(real(g, "offset_ms") == 20.0);
    assert_true(real(g, "duration_ms") == 60.0);
    assert_int_equal(count(g, "children"), 0);
    assert_string_equal(joined(t, "critical_path"), SPAN_R "," SPAN_S "," SPAN_G);
    assert_true(flag(g, "critical"));
    json_decref(t);

    struct trace_store_stats st = stats_of(s);
    assert_int_equal(st.traces, 1);
    assert_int_equal(st.spans, 3);
    trace_store_free(s);
}

/* A sidecar span whose parent never arrived stays an orphan beside the root; a gateway's
 * span and a span flagged remote-parent are roots although their parent is missing; a
 * parent cycle is cut so that every span shows once. */
static void test_missing_parent(void **state)
{
    (void)state;
    struct trace_store *s = store_new(0, 0);
    const struct spec v[] = {
        {TRACE_A, SPAN_R, NULL, "root", 0, 50, 200, false, NULL},
        {TRACE_A, SPAN_G, "00000000000000ff", "lost parent", 5, 40, 200, false, NULL},
    };
    add_doc(s, doc_of("shortener", "sidecar", v, 2), 1);
    json_t *t = get_shaped(s, TRACE_A, false, 1, 2);
    expect_top(t, 0, SPAN_R, false);
    expect_top(t, 1, SPAN_G, true);
    assert_string_equal(str(top(t, 1), "parent_span_id"), "00000000000000ff");
    assert_string_equal(str(t, "name"), "root");
    assert_string_equal(joined(t, "critical_path"), SPAN_R);
    json_decref(t);

    /* The gateway's parent is the client's span: the trace is complete. */
    const struct spec gw = {TRACE_B, SPAN_R, "00000000000000ee", "edge", 0, 10, 200, false, NULL};
    add_one(s, "gateway", "gateway", &gw, 2);
    t = get_shaped(s, TRACE_B, true, 0, 1);
    expect_top(t, 0, SPAN_R, false);
    assert_string_equal(str(top(t, 0), "parent_span_id"), "00000000000000ee");
    json_decref(t);

    /* OTLP flags HAS_IS_REMOTE | IS_REMOTE (0x300) mark the parent remote; the cycle
     * d1 -> d2 -> d1 has no way up: d1 (first in start order) is cut loose. */
    add_raw(s,
            "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":["
            "{\"traceId\":\"000000000000000000000000000000cc\",\"spanId\":\"00000000000000e1\","
            "\"parentSpanId\":\"00000000000000e0\",\"flags\":768,\"name\":\"remote child\","
            "\"startTimeUnixNano\":\"100\",\"endTimeUnixNano\":\"200\"},"
            "{\"traceId\":\"000000000000000000000000000000cc\",\"spanId\":\"00000000000000d1\","
            "\"parentSpanId\":\"00000000000000d2\",\"startTimeUnixNano\":110,"
            "\"endTimeUnixNano\":\"150\"},"
            "{\"traceId\":\"000000000000000000000000000000cc\",\"spanId\":\"00000000000000d2\","
            "\"parentSpanId\":\"00000000000000d1\",\"startTimeUnixNano\":\"120\","
            "\"endTimeUnixNano\":\"130\"}]}]}]}",
            SL_OK);
    t = get_shaped(s, "000000000000000000000000000000cc", false, 1, 2);
    expect_top(t, 0, "00000000000000e1", false);
    expect_top(t, 1, "00000000000000d1", true);
    assert_string_equal(str(t, "service"), "unknown_service");
    assert_string_equal(str(child(top(t, 1), 0), "span_id"), "00000000000000d2");
    assert_int_equal(count(child(top(t, 1), 0), "children"), 0);
    json_decref(t);

    /* With no root at all, the earliest orphan names the trace. */
    const struct spec lone = {
        "000000000000000000000000000000dd", SPAN_S, SPAN_R, "lone", 0, 5, 200, false, NULL};
    add_one(s, "shortener", "sidecar", &lone, 3);
    t = get_shaped(s, "000000000000000000000000000000dd", false, 1, 1);
    expect_top(t, 0, SPAN_S, true);
    assert_string_equal(str(t, "name"), "lone");
    assert_string_equal(joined(t, "critical_path"), SPAN_S);
    json_decref(t);
    trace_store_free(s);
}

static void test_duplicates_ignored(void **state)
{
    (void)state;
    struct trace_store *s = store_new(0, 0);
    add_doc(s, doc_of("shortener", "sidecar", three, 3), 1);
    add_doc(s, doc_of("shortener", "sidecar", three, 3), 2);
    /* Same id, other content: the first copy stays. */
    struct spec again = three[0];
    again.name = "changed";
    add_one(s, "shortener", "sidecar", &again, 3);
    struct trace_store_stats st = stats_of(s);
    assert_int_equal(st.traces, 1);
    assert_int_equal(st.spans, 3);
    assert_int_equal(st.spans_duplicate, 4);
    assert_int_equal(st.spans_invalid, 0);
    json_t *t = trace_store_get(s, TRACE_A);
    assert_non_null(t);
    assert_string_equal(str(top(t, 0), "name"), "GET /v1/links/{code}");
    assert_int_equal(num(t, "received_ms"), 1);
    json_decref(t);
    trace_store_free(s);
}

#define RAW_SPAN(trace, span, parent, start, end)                                                  \
    "{\"traceId\":\"" trace "\",\"spanId\":\"" span "\"" parent ",\"startTimeUnixNano\":" start    \
    ",\"endTimeUnixNano\":" end "}"
#define OK_TRACE "0af7651916cd43dd8448eb211c80319c"
#define OK_SPAN  "b7ad6b7169203331"

/* Each is invalid on its own (traces.h "Input"). */
static const char *const bad_spans[] = {
    RAW_SPAN("0AF7651916CD43DD8448EB211C80319C", OK_SPAN, "", "\"1\"", "\"2\""),
    RAW_SPAN("0af7651916cd43dd8448eb211c80319", OK_SPAN, "", "\"1\"", "\"2\""),
    RAW_SPAN("00000000000000000000000000000000", OK_SPAN, "", "\"1\"", "\"2\""),
    RAW_SPAN(OK_TRACE, "0000000000000000", "", "\"1\"", "\"2\""),
    RAW_SPAN(OK_TRACE, "b7ad6b716920333g", "", "\"1\"", "\"2\""),
    RAW_SPAN(OK_TRACE, OK_SPAN, ",\"parentSpanId\":\"0000000000000000\"", "\"1\"", "\"2\""),
    RAW_SPAN(OK_TRACE, OK_SPAN, ",\"parentSpanId\":\"b7ad\"", "\"1\"", "\"2\""),
    RAW_SPAN(OK_TRACE, OK_SPAN, "", "\"5\"", "\"4\""),
    RAW_SPAN(OK_TRACE, OK_SPAN, "", "\"-1\"", "\"4\""),
    RAW_SPAN(OK_TRACE, OK_SPAN, "", "\"1.5\"", "\"4\""),
    RAW_SPAN(OK_TRACE, OK_SPAN, "", "\"18446744073709551616\"", "\"4\""),
    RAW_SPAN(OK_TRACE, OK_SPAN, ",\"status\":{\"code\":7}", "\"1\"", "\"2\""),
    RAW_SPAN(OK_TRACE, OK_SPAN, ",\"kind\":6", "\"1\"", "\"2\""),
    RAW_SPAN(OK_TRACE, OK_SPAN, ",\"name\":3", "\"1\"", "\"2\""),
    RAW_SPAN(OK_TRACE, OK_SPAN, ",\"attributes\":{}", "\"1\"", "\"2\""),
    "{\"traceId\":\"" OK_TRACE "\",\"spanId\":\"" OK_SPAN "\"}",
    "17",
};

/* Documents whose resourceSpans or scopeSpans entry has the wrong shape: one each. */
static const char *const bad_shapes[] = {
    "{\"resourceSpans\":[[]]}",
    "{\"resourceSpans\":[{\"scopeSpans\":{}}]}",
    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":\"none\"}]}]}",
    "{\"resourceSpans\":[{\"scopeSpans\":[7]}]}",
};

static void test_bad_spans_skipped(void **state)
{
    (void)state;
    struct trace_store *s = store_new(0, 0);
    char doc[512];
    size_t n_spans = sizeof(bad_spans) / sizeof(bad_spans[0]);
    for (size_t i = 0; i < n_spans; i++) {
        snprintf(doc, sizeof(doc), "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[%s]}]}]}",
                 bad_spans[i]);
        add_raw(s, doc, SL_OK);
        if (stats_of(s).spans_invalid != i + 1 || stats_of(s).spans != 0)
            fail_msg("bad span %zu was taken: %s", i, bad_spans[i]);
    }
    for (size_t i = 0; i < sizeof(bad_shapes) / sizeof(bad_shapes[0]); i++) {
        add_raw(s, bad_shapes[i], SL_OK);
        if (stats_of(s).spans_invalid != n_spans + i + 1)
            fail_msg("bad shape %zu not counted: %s", i, bad_shapes[i]);
    }
    /* Not an OTLP document at all; an empty one; absent members are empty. */
    add_raw(s, "{\"spans\":[]}", SL_EPARSE);
    add_raw(s, "[1]", SL_EPARSE);
    add_raw(s, "{\"resourceSpans\":[{},{\"scopeSpans\":[{}]}]}", SL_OK);
    assert_int_equal(stats_of(s).spans_invalid, n_spans + 4);

    /* The good one, with an empty parent and a time as a JSON integer. */
    add_raw(s,
            "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[" RAW_SPAN(
                OK_TRACE, OK_SPAN, ",\"parentSpanId\":\"\"", "\"1000\"", "1000") "]}]}]}",
            SL_OK);
    struct trace_store_stats st = stats_of(s);
    assert_int_equal(st.spans_invalid, n_spans + 4);
    assert_int_equal(st.spans, 1);
    assert_int_equal(st.traces, 1);
    json_t *t = trace_store_get(s, OK_TRACE);
    assert_non_null(t);
    assert_true(flag(t, "complete"));
    assert_true(real(t, "duration_ms") == 0.0);
    json_decref(t);
    trace_store_free(s);
}

/* A name of 300 two-byte characters is cut at a character boundary below the cap. */
static void test_long_string_cut(void **state)
{
    (void)state;
    struct trace_store *s = store_new(0, 0);
    char name[601], doc[1200];
    for (size_t i = 0; i < 300; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    name[600] = '\0';
    snprintf(doc, sizeof(doc),
             "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"" OK_TRACE
             "\",\"spanId\":\"" OK_SPAN "\",\"name\":\"%s\",\"startTimeUnixNano\":\"1\","
             "\"endTimeUnixNano\":\"2\"}]}]}]}",
             name);
    add_raw(s, doc, SL_OK);
    json_t *t = trace_store_get(s, OK_TRACE);
    assert_non_null(t);
    assert_int_equal(strlen(str(t, "name")), 254);
    assert_int_equal(memcmp(str(t, "name"), name, 254), 0);
    json_decref(t);
    trace_store_free(s);
}

/* --- bounds and retention --------------------------------------------------------------- */

/* A one-span trace: id ends in hex digits n; ms long; error or not. */
static void add_trace(struct trace_store *s, unsigned n, uint64_t start_ms, uint64_t ms, bool error,
                      uint64_t now_ms)
{
    char trace[33];
    snprintf(trace, sizeof(trace), "%032x", n);
    struct spec sp = {trace, SPAN_R, NULL, "op", start_ms, start_ms + ms, error ? 503 : 200,
                      false, NULL};
    add_one(s, "svc", "sidecar", &sp, now_ms);
}

static bool held(const struct trace_store *s, unsigned n)
{
    char trace[33];
    snprintf(trace, sizeof(trace), "%032x", n);
    json_t *t = trace_store_get(s, trace);
    json_decref(t);
    return t != NULL;
}

/* Adding one-span trace `add` makes trace `gone` leave (0: none); the store then holds
 * `add` and the eviction counter counts exactly the steps with a `gone`. */
struct step {
    unsigned add;
    uint64_t start_ms, ms;
    bool error;
    unsigned gone;
};

static void run_steps(struct trace_store *s, const struct step *v, size_t n)
{
    uint64_t evicted = stats_of(s).traces_evicted;
    for (size_t i = 0; i < n; i++) {
        add_trace(s, v[i].add, v[i].start_ms, v[i].ms, v[i].error, 100 + i);
        evicted += v[i].gone != 0;
        if (!held(s, v[i].add) || (v[i].gone && held(s, v[i].gone)))
            fail_msg("step %zu: adding %#x should evict %#x", i, v[i].add, v[i].gone);
        assert_int_equal(stats_of(s).traces_evicted, evicted);
    }
}

static void test_eviction_order(void **state)
{
    (void)state;
    struct trace_store *s = store_new(3, 0); /* slow_ms: the default 500 */
    static const struct step steps[] = {
        {0x11, 0, 10, false, 0},     /* ordinary */
        {0x12, 0, 10, true, 0},      /* error */
        {0x13, 0, 500, false, 0},    /* slow (exactly slow_ms) */
        {0x14, 0, 499, false, 0x11}, /* ordinary: the oldest ordinary goes */
        {0x15, 0, 10, true, 0x14},
        {0x16, 0, 10, false, 0x13}, /* no ordinary left: the slow one */
        {0x17, 0, 10, true, 0x16},
        {0x18, 0, 10, true, 0x12}, /* all errors: the oldest error */
        {0x12, 0, 10, true, 0x15}, /* an evicted trace's late span starts it again */
    };
    run_steps(s, steps, sizeof(steps) / sizeof(steps[0]));
    struct trace_store_stats st = stats_of(s);
    assert_int_equal(st.traces, 3);
    assert_int_equal(st.spans, 3);
    assert_int_equal(st.traces_evicted, 6);
    assert_true(held(s, 0x17) && held(s, 0x18) && held(s, 0x12));
    trace_store_free(s);
}

/* A trace's class rises with its late spans, and "oldest" is arrival order, not the
 * agents' timestamps. */
static void test_eviction_class_rises(void **state)
{
    (void)state;
    struct trace_store *s = store_new(3, 0);
    static const struct step before[] = {
        {0x21, 5000, 10, false, 0}, /* arrives first, starts last */
        {0x22, 0, 10, false, 0},
        {0x23, 0, 10, false, 0},
        {0x24, 0, 10, false, 0x21}, /* 0x21 goes: first to arrive */
    };
    run_steps(s, before, 4);
    /* 0x22 turns error (a late failed child), 0x23 slow (a late child ending at 600 ms,
     * the default slow_ms is 500). */
    struct spec late[] = {
        {"00000000000000000000000000000022", SPAN_S, SPAN_R, "child", 1, 2, 0, true, NULL},
        {"00000000000000000000000000000023", SPAN_S, SPAN_R, "child", 1, 600, 200, false, NULL},
    };
    add_doc(s, doc_of("svc", "sidecar", late, 2), 5);
    static const struct step after[] = {
        {0x25, 0, 10, false, 0x24}, {0x26, 0, 10, false, 0x25},
        {0x27, 0, 10, true, 0x26},  {0x28, 0, 10, true, 0x23}, /* no ordinary: the slow one */
        {0x29, 0, 10, true, 0x22}, /* the oldest error, though it turned error late */
    };
    run_steps(s, after, 5);
    trace_store_free(s);

    /* A trace turning error joins the error class in its arrival place: 0x31 arrived
     * before 0x32, so it is the oldest error and goes first. */
    s = store_new(3, 0);
    static const struct step three_errors[] = {
        {0x31, 0, 10, false, 0}, {0x32, 0, 10, true, 0}, {0x33, 0, 10, true, 0}};
    run_steps(s, three_errors, 3);
    struct spec fails = {
        "00000000000000000000000000000031", SPAN_S, SPAN_R, "child", 1, 2, 500, false, NULL};
    add_one(s, "svc", "sidecar", &fails, 4);
    static const struct step next = {0x34, 0, 10, true, 0x31};
    run_steps(s, &next, 1);
    trace_store_free(s);
}

static void test_span_bound(void **state)
{
    (void)state;
    struct trace_store *s = store_new(0, 2);
    struct spec v[4];
    const char *ids[4] = {"0000000000000001", "0000000000000002", "0000000000000003",
                          "0000000000000004"};
    for (size_t i = 0; i < 4; i++)
        v[i] = (struct spec){TRACE_A, ids[i], i ? ids[0] : NULL, "op", i, 10, 200, false, NULL};
    add_doc(s, doc_of("svc", "sidecar", v, 4), 1);
    add_doc(s, doc_of("svc", "sidecar", v, 1), 2); /* a duplicate is not a drop */
    struct trace_store_stats st = stats_of(s);
    assert_int_equal(st.spans, 2);
    assert_int_equal(st.spans_dropped, 2);
    assert_int_equal(st.spans_duplicate, 1);
    json_t *t = trace_store_get(s, TRACE_A);
    assert_non_null(t);
    assert_int_equal(num(t, "span_count"), 2);
    assert_string_equal(str(child(top(t, 0), 0), "span_id"), ids[1]);
    json_decref(t);
    trace_store_free(s);
}

static void test_limits(void **state)
{
    (void)state;
    struct trace_store_limits too_many = {.max_traces = TRACE_STORE_TRACES_CAP + 1};
    assert_null(trace_store_new(&too_many));
    struct trace_store_limits too_long = {.max_spans_per_trace = TRACE_STORE_SPANS_CAP + 1};
    assert_null(trace_store_new(&too_long));
    struct trace_store_limits at_caps = {TRACE_STORE_TRACES_CAP, TRACE_STORE_SPANS_CAP, 1};
    struct trace_store *s = trace_store_new(&at_caps);
    assert_non_null(s);
    trace_store_free(s);
    trace_store_free(NULL);
}

/* --- listing ------------------------------------------------------------------------------ */

/* Five traces, ids ...a1 to ...a5:
 *   a1 ordinary  /a  svc-1  200  starts at 1000 ms, 10 ms
 *   a2 error     /b  svc-1  200, child on svc-2 answered 503; starts at 2000 ms
 *   a3 slow      /a  svc-1  200  starts at 500 ms, 600 ms
 *   a4 ordinary  /b  svc-1  404  starts at 3000 ms
 *   a5 error     /c  svc-1  OTLP status ERROR, no HTTP status; starts at 100 ms */
static struct trace_store *five_traces(void)
{
    struct trace_store *s = store_new(0, 0);
    const char *ids[5] = {"000000000000000000000000000000a1", "000000000000000000000000000000a2",
                          "000000000000000000000000000000a3", "000000000000000000000000000000a4",
                          "000000000000000000000000000000a5"};
    struct spec roots[5] = {
        {ids[0], SPAN_R, NULL, "GET /a", 1000, 1010, 200, false, "/a"},
        {ids[1], SPAN_R, NULL, "GET /b", 2000, 2050, 200, false, "/b"},
        {ids[2], SPAN_R, NULL, "GET /a", 500, 1100, 200, false, "/a"},
        {ids[3], SPAN_R, NULL, "GET /b", 3000, 3005, 404, false, "/b"},
        {ids[4], SPAN_R, NULL, "GET /c", 100, 120, 0, true, "/c"},
    };
    for (unsigned i = 0; i < 5; i++)
        add_one(s, "svc-1", "gateway", &roots[i], 10 + i);
    struct spec failed = {ids[1], SPAN_S, SPAN_R, "GET /b", 2001, 2040, 503, true, "/b"};
    add_one(s, "svc-2", "sidecar", &failed, 20);
    return s;
}

static const char *list_ids(const struct trace_store *s, const struct trace_filter *f, size_t limit,
                            json_int_t want_matched)
{
    json_t *l = trace_store_list(s, f, limit);
    assert_non_null(l);
    assert_int_equal(num(l, "matched"), want_matched);
    const char *ids = listed(l);
    json_decref(l);
    return ids;
}

static void test_list_order_and_item(void **state)
{
    (void)state;
    struct trace_store *s = five_traces();
    assert_string_equal(list_ids(s, NULL, 0, 5), "a2,a5,a3,a4,a1");
    assert_string_equal(list_ids(s, NULL, 2, 5), "a2,a5");

    json_t *l = trace_store_list(s, NULL, 1);
    assert_non_null(l);
    char *got = json_dump_compact(json_array_get(json_object_get(l, "traces"), 0));
    assert_string_equal(got, "{\"trace_id\":\"000000000000000000000000000000a2\","
                             "\"name\":\"GET /b\",\"service\":\"svc-1\",\"status\":200,"
                             "\"error\":true,\"slow\":false,\"complete\":true,"
                             "\"duration_ms\":50.0,\"span_count\":2,"
                             "\"start_unix_ms\":1700000002000,\"received_ms\":11,"
                             "\"services\":[\"svc-1\",\"svc-2\"]}");
    free(got);
    json_decref(l);

    struct trace_store *empty = store_new(0, 0);
    assert_string_equal(list_ids(empty, NULL, 10, 0), "");
    trace_store_free(empty);
    trace_store_free(s);
}

static void test_list_filters(void **state)
{
    (void)state;
    struct trace_store *s = five_traces();
    struct trace_filter f = {.route = "/a"};
    assert_string_equal(list_ids(s, &f, 0, 2), "a3,a1");
    f = (struct trace_filter){.route = "/nope"};
    assert_string_equal(list_ids(s, &f, 0, 0), "");
    f = (struct trace_filter){.service = "svc-2"};
    assert_string_equal(list_ids(s, &f, 0, 1), "a2");
    f = (struct trace_filter){.min_duration_ms = 50};
    assert_string_equal(list_ids(s, &f, 0, 2), "a2,a3");
    f = (struct trace_filter){.min_duration_ms = 51};
    assert_string_equal(list_ids(s, &f, 0, 1), "a3");

    f = (struct trace_filter){0};
    assert_int_equal(trace_filter_parse_status(&f, "404"), SL_OK);
    assert_int_equal(f.status_match, TRACE_STATUS_CODE);
    assert_int_equal(f.status, 404);
    assert_string_equal(list_ids(s, &f, 0, 1), "a4");
    assert_int_equal(trace_filter_parse_status(&f, "503"), SL_OK);
    assert_string_equal(list_ids(s, &f, 0, 1), "a2"); /* the child's status counts */
    assert_int_equal(trace_filter_parse_status(&f, "5xx"), SL_OK);
    assert_int_equal(f.status_match, TRACE_STATUS_CLASS);
    assert_int_equal(f.status, 5);
    assert_string_equal(list_ids(s, &f, 0, 1), "a2");
    assert_int_equal(trace_filter_parse_status(&f, "2XX"), SL_OK);
    assert_string_equal(list_ids(s, &f, 0, 3), "a2,a3,a1"); /* a4 answered 404 only */
    assert_int_equal(trace_filter_parse_status(&f, "error"), SL_OK);
    assert_int_equal(f.status_match, TRACE_STATUS_ERROR);
    assert_string_equal(list_ids(s, &f, 0, 2), "a2,a5");
    f.route = "/c"; /* conditions combine */
    assert_string_equal(list_ids(s, &f, 0, 1), "a5");

    static const char *const bad[] = {"600", "099",  "6xx", "0xx", "4x4",
                                      "40",  "4044", "err", "",    "5Xx"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct trace_filter g = {.status = 7};
        if (trace_filter_parse_status(&g, bad[i]) != SL_EINVAL || g.status != 7)
            fail_msg("status \"%s\" was accepted", bad[i]);
    }
    trace_store_free(s);
}

/* --- critical path ------------------------------------------------------------------------ */

static json_t *one_trace(const struct spec *v, size_t n)
{
    struct trace_store *s = store_new(0, 0);
    add_doc(s, doc_of("svc", "sidecar", v, n), 1);
    json_t *t = trace_store_get(s, v[0].trace);
    assert_non_null(t);
    trace_store_free(s);
    return t;
}

#define C(id) "00000000000000" id

/* Parallel children: only the one that finishes later is critical (and its own child);
 * the shorter branch is not, nor is its child. */
static void test_critical_parallel(void **state)
{
    (void)state;
    const struct spec v[] = {
        {TRACE_A, C("01"), NULL, "root", 0, 100, 200, false, NULL},
        {TRACE_A, C("02"), C("01"), "short", 10, 50, 200, false, NULL},
        {TRACE_A, C("03"), C("01"), "long", 10, 90, 200, false, NULL},
        {TRACE_A, C("04"), C("02"), "under short", 20, 40, 200, false, NULL},
        {TRACE_A, C("05"), C("03"), "under long", 20, 85, 200, false, NULL},
    };
    json_t *t = one_trace(v, 5);
    assert_string_equal(joined(t, "critical_path"), C("01") "," C("03") "," C("05"));
    json_t *r = top(t, 0);
    /* Same start: the one ending later is listed first. */
    assert_string_equal(str(child(r, 0), "span_id"), C("03"));
    assert_true(flag(child(r, 0), "critical"));
    assert_string_equal(str(child(r, 1), "span_id"), C("02"));
    assert_false(flag(child(r, 1), "critical"));
    assert_false(flag(child(child(r, 1), 0), "critical"));
    assert_true(flag(child(child(r, 0), 0), "critical"));
    json_decref(t);
}

/* Critical paths (in tree order) of small trees under a root 01 spanning 0..100 ms. */
#define ROOT_01                                                                                    \
    {                                                                                              \
        TRACE_A, C("01"), NULL, "root", 0, 100, 200, false, NULL                                   \
    }
#define KID_OF_01(id, start_ms, end_ms)                                                            \
    {                                                                                              \
        TRACE_A, C(id), C("01"), "child " id, start_ms, end_ms, 200, false, NULL                   \
    }
static const struct {
    const char *what;
    struct spec v[4];
    size_t n;
    const char *want;
} crit_cases[] = {
    {"sequential children are all critical",
     {ROOT_01, KID_OF_01("02", 0, 40), KID_OF_01("03", 40, 100)},
     3,
     C("01") "," C("02") "," C("03")},
    {"after a sequential child, only the longer of a parallel pair",
     {ROOT_01, KID_OF_01("02", 0, 30), KID_OF_01("03", 30, 60), KID_OF_01("04", 30, 95)},
     4,
     C("01") "," C("02") "," C("04")},
    /* 03 (clamped to 100), then back from 50: 04 ends at 48, then back from 45: 02. */
    {"a child ending after its parent (clock skew) is clamped, not ignored",
     {ROOT_01, KID_OF_01("02", 0, 40), KID_OF_01("03", 50, 120), KID_OF_01("04", 45, 48)},
     4,
     C("01") "," C("02") "," C("04") "," C("03")},
    /* Clamped to 100 both tie and the later start (03) wins; 02, clamped again to 03's
     * start, is critical too. Unclamped, 02 alone would be. */
    {"two children overrun the root",
     {ROOT_01, KID_OF_01("02", 10, 130), KID_OF_01("03", 60, 120)},
     3,
     C("01") "," C("02") "," C("03")},
};

static void test_critical_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(crit_cases) / sizeof(crit_cases[0]); i++) {
        json_t *t = one_trace(crit_cases[i].v, crit_cases[i].n);
        const char *got = joined(t, "critical_path");
        if (strcmp(got, crit_cases[i].want) != 0)
            fail_msg("%s: critical path %s, want %s", crit_cases[i].what, got, crit_cases[i].want);
        json_decref(t);
    }
}

/* --- reading ------------------------------------------------------------------------------ */

static void test_get_unknown(void **state)
{
    (void)state;
    struct trace_store *s = store_new(0, 0);
    add_doc(s, doc_of("svc", "sidecar", three, 3), 1);
    assert_null(trace_store_get(s, "4bf92f3577b34da6a3ce929d0e0e4737"));
    assert_null(trace_store_get(s, "4BF92F3577B34DA6A3CE929D0E0E4736"));
    assert_null(trace_store_get(s, "4bf92f35"));
    assert_null(trace_store_get(s, ""));
    assert_null(trace_store_get(s, NULL));
    trace_store_free(s);
}

/* A chain 30 spans deep: the first TRACE_TREE_DEPTH_MAX levels nest, the rest hang from
 * a detached top-level span, and the document parses within json_parse's depth limit. */
static void test_deep_chain(void **state)
{
    (void)state;
    struct trace_store *s = store_new(0, 0);
    char ids[30][17];
    for (unsigned i = 0; i < 30; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%016x", i + 1);
        struct spec sp = {TRACE_A, ids[i], i ? ids[i - 1] : NULL, "op", i, 100 - i, 200,
                          false,   NULL};
        add_one(s, "svc", "sidecar", &sp, 1);
    }
    json_t *t = trace_store_get(s, TRACE_A);
    assert_non_null(t);
    assert_int_equal(count(t, "spans"), 2);
    json_t *n = top(t, 0);
    for (unsigned d = 1; d < TRACE_TREE_DEPTH_MAX; d++)
        n = child(n, 0);
    assert_string_equal(str(n, "span_id"), ids[TRACE_TREE_DEPTH_MAX - 1]);
    assert_int_equal(count(n, "children"), 0);
    json_t *d = top(t, 1);
    assert_string_equal(str(d, "span_id"), ids[TRACE_TREE_DEPTH_MAX]);
    assert_true(flag(d, "detached"));
    assert_false(flag(d, "orphan"));
    assert_null(json_object_get(top(t, 0), "detached"));
    assert_true(flag(t, "complete"));
    assert_int_equal(count(t, "critical_path"), 30);

    char *text = json_dump_compact(t);
    json_t *back;
    char err[JSON_ERR_MAX];
    assert_int_equal(json_parse(text, strlen(text), &back, err), SL_OK);
    json_decref(back);
    free(text);
    json_decref(t);
    trace_store_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reverse_order_tree),
        cmocka_unit_test(test_missing_parent),
        cmocka_unit_test(test_duplicates_ignored),
        cmocka_unit_test(test_bad_spans_skipped),
        cmocka_unit_test(test_long_string_cut),
        cmocka_unit_test(test_eviction_order),
        cmocka_unit_test(test_eviction_class_rises),
        cmocka_unit_test(test_span_bound),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_list_order_and_item),
        cmocka_unit_test(test_list_filters),
        cmocka_unit_test(test_critical_parallel),
        cmocka_unit_test(test_critical_cases),
        cmocka_unit_test(test_get_unknown),
        cmocka_unit_test(test_deep_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
