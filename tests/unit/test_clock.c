/*
 * test_clock — the fake clock (set, advance, clear) and the two timestamp formats for
 * known instants, leap days and the ends of the supported range.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "clock.h"

static int teardown_clear(void **state)
{
    (void)state;
    clock_fake_clear();
    return 0;
}

static void test_fake_set(void **state)
{
    (void)state;
    clock_fake_set(5000000000u, 1700000000123u);
    assert_int_equal(clock_mono_ns(), 5000000000u);
    assert_int_equal(clock_mono_ms(), 5000u);
    assert_int_equal(clock_wall_ms(), 1700000000123u);
    assert_int_equal(clock_wall_s(), 1700000000);
    /* Fake time does not move on its own. */
    assert_int_equal(clock_mono_ns(), 5000000000u);
    assert_int_equal(clock_wall_ms(), 1700000000123u);
}

static void test_fake_mono_ms_rounds_down(void **state)
{
    (void)state;
    clock_fake_set(1999999u, 999u);
    assert_int_equal(clock_mono_ms(), 1u);
    assert_int_equal(clock_wall_s(), 0);
}

static void test_fake_advance(void **state)
{
    (void)state;
    clock_fake_set(5000000000u, 1700000000123u);
    clock_fake_advance_ms(1500);
    assert_int_equal(clock_mono_ns(), 6500000000u);
    assert_int_equal(clock_mono_ms(), 6500u);
    assert_int_equal(clock_wall_ms(), 1700000001623u);
    assert_int_equal(clock_wall_s(), 1700000001);
    clock_fake_advance_ms(0);
    assert_int_equal(clock_mono_ns(), 6500000000u);
    assert_int_equal(clock_wall_ms(), 1700000001623u);
    clock_fake_advance_ms(86400000u);
    assert_int_equal(clock_mono_ms(), 86406500u);
    assert_int_equal(clock_wall_ms(), 1700086401623u);
}

static void test_fake_set_replaces(void **state)
{
    (void)state;
    clock_fake_set(1, 2);
    clock_fake_set(7000000u, 42u);
    assert_int_equal(clock_mono_ns(), 7000000u);
    assert_int_equal(clock_mono_ms(), 7u);
    assert_int_equal(clock_wall_ms(), 42u);
}

static void test_fake_clear(void **state)
{
    (void)state;
    clock_fake_set(1000000u, 1000u);
    clock_fake_clear();
    /* Real clocks: wall time is after the fake instant (1970) and after 2023-11-14;
     * monotonic time never goes back. */
    assert_true(clock_wall_ms() > 1700000000000u);
    assert_true(clock_wall_s() > 1700000000);
    uint64_t a = clock_mono_ns();
    uint64_t b = clock_mono_ns();
    assert_true(b >= a);
    /* Faking again after a clear works. */
    clock_fake_set(3000000u, 3u);
    assert_int_equal(clock_mono_ms(), 3u);
    assert_int_equal(clock_wall_ms(), 3u);
}

struct iso_case {
    uint64_t wall_ms;
    const char *want;
};

static void test_iso8601(void **state)
{
    (void)state;
    static const struct iso_case cases[] = {
        {0u, "1970-01-01T00:00:00.000Z"},
        {1u, "1970-01-01T00:00:00.001Z"},
        {999u, "1970-01-01T00:00:00.999Z"},
        {1700000000123u, "2023-11-14T22:13:20.123Z"},
        {951782400000u, "2000-02-29T00:00:00.000Z"},  /* 2000 is a leap year */
        {1709164800999u, "2024-02-29T00:00:00.999Z"}, /* leap day */
        {1709251199999u, "2024-02-29T23:59:59.999Z"}, /* its last millisecond */
        {1709251200000u, "2024-03-01T00:00:00.000Z"},
        {1735689599999u, "2024-12-31T23:59:59.999Z"}, /* day 366 */
        {4107542399000u, "2100-02-28T23:59:59.000Z"}, /* 2100 is not */
        {4107542400000u, "2100-03-01T00:00:00.000Z"},
        {2147483648000u, "2038-01-19T03:14:08.000Z"},   /* past 32-bit time_t */
        {253402300799999u, "9999-12-31T23:59:59.999Z"}, /* last supported instant */
        {253402300800000u, "9999-12-31T23:59:59.999Z"}, /* clamped */
        {UINT64_MAX, "9999-12-31T23:59:59.999Z"},       /* clamped */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[32];
        memset(out, 'X', sizeof(out));
        clock_format_iso8601(cases[i].wall_ms, out);
        assert_string_equal(out, cases[i].want);
        assert_int_equal(strlen(out), 24);
    }
}

struct http_case {
    int64_t wall_s;
    const char *want;
};

static void test_http(void **state)
{
    (void)state;
    static const struct http_case cases[] = {
        {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
        {1700000000, "Tue, 14 Nov 2023 22:13:20 GMT"},
        {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"}, /* the RFC 9110 §5.6.7 example */
        {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
        {1709164800, "Thu, 29 Feb 2024 00:00:00 GMT"},
        {1709251199, "Thu, 29 Feb 2024 23:59:59 GMT"},
        {1709251200, "Fri, 01 Mar 2024 00:00:00 GMT"},
        {4107542399, "Sun, 28 Feb 2100 23:59:59 GMT"},
        {4107542400, "Mon, 01 Mar 2100 00:00:00 GMT"},
        {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
        {253402300799, "Fri, 31 Dec 9999 23:59:59 GMT"},
        {INT64_MAX, "Fri, 31 Dec 9999 23:59:59 GMT"}, /* clamped */
        {-62167219200, "Sat, 01 Jan 0000 00:00:00 GMT"},
        {INT64_MIN, "Sat, 01 Jan 0000 00:00:00 GMT"}, /* clamped */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[40];
        memset(out, 'X', sizeof(out));
        clock_format_http(cases[i].wall_s, out);
        assert_string_equal(out, cases[i].want);
        assert_int_equal(strlen(out), 29);
    }
}

static void test_formats_agree_with_fake_clock(void **state)
{
    (void)state;
    clock_fake_set(0, 1700000000123u);
    char iso[32], http[40];
    clock_format_iso8601(clock_wall_ms(), iso);
    clock_format_http(clock_wall_s(), http);
    assert_string_equal(iso, "2023-11-14T22:13:20.123Z");
    assert_string_equal(http, "Tue, 14 Nov 2023 22:13:20 GMT");
    clock_fake_advance_ms(877u);
    clock_format_iso8601(clock_wall_ms(), iso);
    clock_format_http(clock_wall_s(), http);
    assert_string_equal(iso, "2023-11-14T22:13:21.000Z");
    assert_string_equal(http, "Tue, 14 Nov 2023 22:13:21 GMT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fake_set, teardown_clear),
        cmocka_unit_test_teardown(test_fake_mono_ms_rounds_down, teardown_clear),
        cmocka_unit_test_teardown(test_fake_advance, teardown_clear),
        cmocka_unit_test_teardown(test_fake_set_replaces, teardown_clear),
        cmocka_unit_test_teardown(test_fake_clear, teardown_clear),
        cmocka_unit_test(test_iso8601),
        cmocka_unit_test(test_http),
        cmocka_unit_test_teardown(test_formats_agree_with_fake_clock, teardown_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
