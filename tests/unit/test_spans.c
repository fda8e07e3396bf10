/* Unit tests for agent/spans.c: the bounded ring, the keep decision, the OTLP JSON shape. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "spans.h"

static struct span numbered(unsigned i)
{
    struct span s;
    memset(&s, 0, sizeof(s));
    s.start_unix_ns = i;
    snprintf(s.name, sizeof(s.name), "span %u", i);
    return s;
}

static void test_push_drain_order(void **state)
{
    (void)state;
    struct span_buffer b;
    struct span out[8];
    assert_int_equal(span_buffer_init(&b), SL_OK);
    for (unsigned i = 0; i < 5; i++) {
        struct span s = numbered(i);
        span_buffer_push(&b, &s);
    }
    assert_int_equal(span_buffer_drain(&b, out, 3), 3);
    assert_int_equal(out[0].start_unix_ns, 0);
    assert_int_equal(out[2].start_unix_ns, 2);
    assert_string_equal(out[2].name, "span 2");
    /* Wrap around the ring: the remaining two come out first, oldest first. */
    for (unsigned i = 5; i < 7; i++) {
        struct span s = numbered(i);
        span_buffer_push(&b, &s);
    }
    assert_int_equal(span_buffer_drain(&b, out, 8), 4);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(out[i].start_unix_ns, 3 + i);
    assert_int_equal(span_buffer_drain(&b, out, 8), 0);
    assert_int_equal(span_buffer_dropped(&b), 0);
    span_buffer_release(&b);
}

static void test_overflow_drops_newest(void **state)
{
    (void)state;
    struct span_buffer b;
    assert_int_equal(span_buffer_init(&b), SL_OK);
    for (unsigned i = 0; i < SPAN_BUFFER_MAX + 10; i++) {
        struct span s = numbered(i);
        span_buffer_push(&b, &s);
    }
    assert_int_equal(span_buffer_dropped(&b), 10);
    struct span *out = calloc(SPAN_BUFFER_MAX + 10, sizeof(*out));
    assert_non_null(out);
    assert_int_equal(span_buffer_drain(&b, out, SPAN_BUFFER_MAX + 10), SPAN_BUFFER_MAX);
    assert_int_equal(out[0].start_unix_ns, 0);
    assert_int_equal(out[SPAN_BUFFER_MAX - 1].start_unix_ns, SPAN_BUFFER_MAX - 1);
    /* Room again after the drain; the drop count stays. */
    struct span s = numbered(99);
    span_buffer_push(&b, &s);
    assert_int_equal(span_buffer_drain(&b, out, 1), 1);
    assert_int_equal(out[0].start_unix_ns, 99);
    assert_int_equal(span_buffer_dropped(&b), 10);
    free(out);
    span_buffer_release(&b);
}

static void test_should_keep(void **state)
{
    (void)state;
    static const struct {
        bool error;
        uint64_t duration_ns, slow_ns;
        bool sampled, want;
    } cases[] = {
        {false, 1000, 5000, false, false}, /* fast, unsampled: dropped */
        {false, 1000, 5000, true, true},   /* sampled */
        {true, 1000, 5000, false, true},   /* errors always */
        {false, 5000, 5000, false, true},  /* exactly slow counts as slow */
        {false, 4999, 5000, false, false},
        {false, 9000000, 0, false, false}, /* slow_ns 0: no slow rule */
        {false, 9000000, 0, true, true},
        {true, 0, 0, false, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = span_should_keep(cases[i].error, cases[i].duration_ns, cases[i].slow_ns,
                                    cases[i].sampled);
        if (got != cases[i].want)
            fail_msg("case %zu: got %d", i, got);
    }
}

static void fill_ids(struct span *s, uint8_t span_first, uint8_t parent_first)
{
    static const uint8_t trace[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                      0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
    memcpy(s->trace_id, trace, sizeof(trace));
    for (int i = 0; i < 8; i++) {
        s->span_id[i] = (uint8_t)(span_first + i);
        s->parent_id[i] = parent_first ? (uint8_t)(parent_first + i) : 0;
    }
}

#define RESOURCE                                                                                   \
    "{\"resourceSpans\":[{\"resource\":{\"attributes\":["                                          \
    "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"shortener\"}},"                        \
    "{\"key\":\"sluice.agent.id\",\"value\":{\"stringValue\":\"r1\"}},"                            \
    "{\"key\":\"sluice.role\",\"value\":{\"stringValue\":\"sidecar\"}}]},"                         \
    "\"scopeSpans\":[{\"scope\":{\"name\":\"sluice-agent\",\"version\":\"0.1.0\"},\"spans\":["

#define ROOT_SPAN                                                                                  \
    "{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"a0a1a2a3a4a5a6a7\","           \
    "\"name\":\"GET /v1/links/{code}\",\"kind\":2,"                                                \
    "\"startTimeUnixNano\":\"1700000000000000000\","                                               \
    "\"endTimeUnixNano\":\"1700000000001500000\",\"attributes\":["                                 \
    "{\"key\":\"http.request.method\",\"value\":{\"stringValue\":\"GET\"}},"                       \
    "{\"key\":\"http.route\",\"value\":{\"stringValue\":\"/v1/links/{code}\"}},"                   \
    "{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"200\"}},"                    \
    "{\"key\":\"sluice.request_id\",\"value\":{\"stringValue\":\"req-1\"}},"                       \
    "{\"key\":\"sluice.upstream_ns\",\"value\":{\"intValue\":\"1200000\"}},"                       \
    "{\"key\":\"sluice.faulted\",\"value\":{\"boolValue\":false}}],"                               \
    "\"status\":{\"code\":0}}"

/* The child: upstream failed (no status attribute), error status, faulted, a request id
 * with a byte that is not ASCII (replaced), no route. */
#define CHILD_SPAN                                                                                 \
    "{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"f0f1f2f3f4f5f6f7\","           \
    "\"parentSpanId\":\"a0a1a2a3a4a5a6a7\",\"name\":\"POST /v1/links\",\"kind\":2,"                \
    "\"startTimeUnixNano\":\"1700000000000100000\","                                               \
    "\"endTimeUnixNano\":\"1700000002000100000\",\"attributes\":["                                 \
    "{\"key\":\"http.request.method\",\"value\":{\"stringValue\":\"POST\"}},"                      \
    "{\"key\":\"sluice.request_id\",\"value\":{\"stringValue\":\"r?2\"}},"                         \
    "{\"key\":\"sluice.upstream_ns\",\"value\":{\"intValue\":\"0\"}},"                             \
    "{\"key\":\"sluice.faulted\",\"value\":{\"boolValue\":true}}],"                                \
    "\"status\":{\"code\":2}}"

static void make_spans(struct span sp[2])
{
    memset(sp, 0, 2 * sizeof(*sp));
    fill_ids(&sp[0], 0xa0, 0);
    snprintf(sp[0].name, sizeof(sp[0].name), "GET /v1/links/{code}");
    snprintf(sp[0].route, sizeof(sp[0].route), "/v1/links/{code}");
    snprintf(sp[0].method, sizeof(sp[0].method), "GET");
    snprintf(sp[0].request_id, sizeof(sp[0].request_id), "req-1");
    sp[0].start_unix_ns = 1700000000000000000ull;
    sp[0].duration_ns = 1500000;
    sp[0].upstream_ns = 1200000;
    sp[0].http_status = 200;

    fill_ids(&sp[1], 0xf0, 0xa0);
    snprintf(sp[1].name, sizeof(sp[1].name), "POST /v1/links");
    snprintf(sp[1].method, sizeof(sp[1].method), "POST");
    snprintf(sp[1].request_id, sizeof(sp[1].request_id),
             "r\xff"
             "2");
    sp[1].start_unix_ns = 1700000000000100000ull;
    sp[1].duration_ns = 2000000000ull;
    sp[1].error = true;
    sp[1].faulted = true;
}

static void test_otlp_two_spans(void **state)
{
    (void)state;
    struct span sp[2];
    make_spans(sp);
    json_t *doc = spans_otlp_json(sp, 2, "shortener", "r1", "sidecar");
    assert_non_null(doc);
    char *got = json_dump_compact(doc);
    assert_string_equal(got, RESOURCE ROOT_SPAN "," CHILD_SPAN "]}]}]}");
    free(got);
    json_decref(doc);
}

static void test_otlp_empty_and_defaults(void **state)
{
    (void)state;
    json_t *doc = spans_otlp_json(NULL, 0, NULL, "gw", "gateway");
    assert_non_null(doc);
    char *got = json_dump_compact(doc);
    assert_string_equal(
        got, "{\"resourceSpans\":[{\"resource\":{\"attributes\":["
             "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"unknown_service\"}},"
             "{\"key\":\"sluice.agent.id\",\"value\":{\"stringValue\":\"gw\"}},"
             "{\"key\":\"sluice.role\",\"value\":{\"stringValue\":\"gateway\"}}]},"
             "\"scopeSpans\":[{\"scope\":{\"name\":\"sluice-agent\",\"version\":\"0.1.0\"},"
             "\"spans\":[]}]}]}");
    free(got);
    json_decref(doc);
}

/* A name that fills its array with no NUL must not be read past its end. */
static void test_otlp_unterminated_name(void **state)
{
    (void)state;
    struct span sp[2];
    make_spans(sp);
    memset(sp[0].name, 'x', sizeof(sp[0].name));
    json_t *doc = spans_otlp_json(sp, 1, "s", "r1", "sidecar");
    assert_non_null(doc);
    json_t *span = json_array_get(
        json_object_get(
            json_array_get(json_object_get(json_array_get(json_object_get(doc, "resourceSpans"), 0),
                                           "scopeSpans"),
                           0),
            "spans"),
        0);
    const char *name = json_string_value(json_object_get(span, "name"));
    assert_non_null(name);
    assert_int_equal(strlen(name), SPAN_NAME_MAX - 1);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_drain_order),
        cmocka_unit_test(test_overflow_drops_newest),
        cmocka_unit_test(test_should_keep),
        cmocka_unit_test(test_otlp_two_spans),
        cmocka_unit_test(test_otlp_empty_and_defaults),
        cmocka_unit_test(test_otlp_unterminated_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
