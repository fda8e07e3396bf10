/* Unit tests for shared/traceparent.c (W3C Trace Context §3.2). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "err.h"
#include "traceparent.h"

#define VALID "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static int parse(const char *s, struct trace_ctx *t)
{
    return traceparent_parse(s, strlen(s), t);
}

static void test_valid(void **state)
{
    (void)state;
    struct trace_ctx t;
    char out[TRACEPARENT_LEN + 1], hex[33], shex[17];
    assert_int_equal(parse(VALID, &t), SL_OK);
    trace_id_hex(t.trace_id, hex);
    span_id_hex(t.span_id, shex);
    assert_string_equal(hex, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(shex, "00f067aa0ba902b7");
    assert_int_equal(t.flags, 1);
    assert_true(trace_is_sampled(&t));
    traceparent_format(&t, out);
    assert_string_equal(out, VALID);
    assert_int_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &t), SL_OK);
    assert_false(trace_is_sampled(&t));
}

static void test_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",    /* short */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* v00 with suffix */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero parent id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* uppercase */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",   /* not hex */
        "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    struct trace_ctx t;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &t), SL_EPARSE);
}

static void test_future_version(void **state)
{
    (void)state;
    struct trace_ctx t;
    /* §3.2.4: a higher version is read by its version-00 prefix; more must follow a '-' */
    assert_int_equal(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", &t),
                     SL_OK);
    assert_int_equal(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t), SL_OK);
    assert_int_equal(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", &t),
                     SL_EPARSE);
}

static void test_new_ids(void **state)
{
    (void)state;
    uint8_t a[16], b[16], zero[16] = {0};
    uint8_t s1[8], s2[8];
    trace_new_trace_id(a);
    trace_new_trace_id(b);
    trace_new_span_id(s1);
    trace_new_span_id(s2);
    assert_memory_not_equal(a, zero, 16);
    assert_memory_not_equal(a, b, 16);
    assert_memory_not_equal(s1, s2, 8);
    /* A formatted context with fresh ids parses back to itself. */
    struct trace_ctx t = {.flags = 1}, back;
    memcpy(t.trace_id, a, 16);
    memcpy(t.span_id, s1, 8);
    char out[TRACEPARENT_LEN + 1];
    traceparent_format(&t, out);
    assert_int_equal(parse(out, &back), SL_OK);
    assert_memory_equal(&t, &back, sizeof(t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_future_version),
        cmocka_unit_test(test_new_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
