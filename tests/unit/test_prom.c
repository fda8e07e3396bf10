/* prom: exact exposition text (0.0.4) for counters, gauges and histograms; escaping;
 * number formatting; every rule it enforces leaves the buffer untouched. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "histogram.h"
#include "prom.h"

#define OUT_MAX (1 << 20)

struct fixture {
    struct buf out;
    struct prom w;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    buf_init(&f->out, OUT_MAX);
    prom_init(&f->w, &f->out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    buf_release(&f->out);
    free(f);
    return 0;
}

static void test_counter_and_gauge(void **state)
{
    struct fixture *f = *state;
    const struct prom_label ok[] = {{"route", "/v1/links"}, {"code", "200"}};
    const struct prom_label limited[] = {{"route", "/v1/links"}, {"code", "429"}};
    assert_int_equal(prom_family(&f->w, "sluice_requests_total", PROM_COUNTER, "Requests proxied."),
                     SL_OK);
    assert_int_equal(prom_sample(&f->w, ok, 2, 1027), SL_OK);
    assert_int_equal(prom_sample(&f->w, limited, 2, 3), SL_OK);
    assert_int_equal(prom_family(&f->w, "sluice_in_flight", PROM_GAUGE, "Requests being proxied."),
                     SL_OK);
    assert_int_equal(prom_sample(&f->w, NULL, 0, 2), SL_OK);
    assert_int_equal(prom_family(&f->w, "sluice:up", PROM_UNTYPED, "Up."), SL_OK);
    assert_int_equal(prom_sample(&f->w, NULL, 0, 1), SL_OK);
    assert_string_equal(buf_str(&f->out),
                        "# HELP sluice_requests_total Requests proxied.\n"
                        "# TYPE sluice_requests_total counter\n"
                        "sluice_requests_total{route=\"/v1/links\",code=\"200\"} 1027\n"
                        "sluice_requests_total{route=\"/v1/links\",code=\"429\"} 3\n"
                        "# HELP sluice_in_flight Requests being proxied.\n"
                        "# TYPE sluice_in_flight gauge\n"
                        "sluice_in_flight 2\n"
                        "# HELP sluice:up Up.\n"
                        "# TYPE sluice:up untyped\n"
                        "sluice:up 1\n");
}

static void test_escaping(void **state)
{
    struct fixture *f = *state;
    const struct prom_label l[] = {{"path", "a\\b\"c\nd"}, {"empty", ""}, {"utf8", "é→"}};
    assert_int_equal(prom_family(&f->w, "x", PROM_GAUGE, "Line one\nback\\slash \"q\""), SL_OK);
    assert_int_equal(prom_sample(&f->w, l, 3, 1), SL_OK);
    assert_string_equal(buf_str(&f->out), "# HELP x Line one\\nback\\\\slash \"q\"\n"
                                          "# TYPE x gauge\n"
                                          "x{path=\"a\\\\b\\\"c\\nd\",empty=\"\",utf8=\"é→\"} 1\n");
}

static void check_number(struct fixture *f, double v, const char *want)
{
    char line[96];
    buf_reset(&f->out);
    prom_init(&f->w, &f->out);
    assert_int_equal(prom_family(&f->w, "g", PROM_GAUGE, "h"), SL_OK);
    assert_int_equal(prom_sample(&f->w, NULL, 0, v), SL_OK);
    snprintf(line, sizeof(line), "# HELP g h\n# TYPE g gauge\ng %s\n", want);
    assert_string_equal(buf_str(&f->out), line);
}

static void test_numbers(void **state)
{
    struct fixture *f = *state;
    check_number(f, 0, "0");
    check_number(f, -0.0, "-0");
    check_number(f, 100, "100");
    check_number(f, 0.1, "0.1");
    check_number(f, 0.5, "0.5");
    check_number(f, 1.0 / 3, "0.3333333333333333");
    check_number(f, 123456789, "123456789");
    check_number(f, 9007199254740992.0, "9007199254740992");
    check_number(f, 1e15, "1e+15");
    check_number(f, 1e21, "1e+21");
    check_number(f, 1e-7, "1e-07");
    check_number(f, -2.5, "-2.5");
    check_number(f, 5e-324, "4.94065645841247e-324"); /* %.15g reads back */
    check_number(f, 1.7976931348623157e308, "1.7976931348623157e+308");
    check_number(f, NAN, "NaN");
    check_number(f, INFINITY, "+Inf");
    check_number(f, -INFINITY, "-Inf");
}

/* With a locale whose decimal point is ',' the output still uses '.'. Skipped where no
 * such locale is installed. */
static void test_numbers_under_comma_locale(void **state)
{
    struct fixture *f = *state;
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ru_RU.UTF-8",
                                        "de_DE"};
    const char *got = NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !got; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (!got)
        skip();
    check_number(f, 0.25, "0.25");
    check_number(f, 1.0 / 3, "0.3333333333333333");
    check_number(f, 2.5e-7, "2.5e-07");
    setlocale(LC_NUMERIC, "C");
}

static void test_histogram_exposition(void **state)
{
    struct fixture *f = *state;
    struct histogram *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    /* 100 ≤ 500 µs; 700 ∈ [688, 704) ≤ 1 ms; 1000 ∈ [992, 1008) straddles 1 ms → 2.5 ms;
     * 3000 ∈ [2944, 3008) ≤ 5 ms; 20 s only in +Inf. */
    static const uint64_t us[] = {100, 700, 1000, 3000, 20000000};
    for (size_t i = 0; i < 5; i++)
        histogram_record(h, us[i]);
    const struct prom_label l[] = {{"r", "/v1"}};
    assert_int_equal(prom_family(&f->w, "rd_seconds", PROM_HISTOGRAM, "Latency."), SL_OK);
    assert_int_equal(prom_histogram(&f->w, l, 1, h, &prom_le_latency_us), SL_OK);
    assert_string_equal(buf_str(&f->out), "# HELP rd_seconds Latency.\n"
                                          "# TYPE rd_seconds histogram\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"0.0005\"} 1\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"0.001\"} 2\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"0.0025\"} 3\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"0.005\"} 4\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"0.01\"} 4\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"0.025\"} 4\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"0.05\"} 4\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"0.1\"} 4\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"0.25\"} 4\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"0.5\"} 4\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"1\"} 4\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"2.5\"} 4\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"5\"} 4\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"10\"} 4\n"
                                          "rd_seconds_bucket{r=\"/v1\",le=\"+Inf\"} 5\n"
                                          "rd_seconds_sum{r=\"/v1\"} 20.0048\n"
                                          "rd_seconds_count{r=\"/v1\"} 5\n");
    free(h);
}

static void test_histogram_empty_no_labels(void **state)
{
    struct fixture *f = *state;
    struct histogram *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    static const uint64_t bounds[] = {63, 1007};
    const struct prom_le_set le = {bounds, 2, 1};
    assert_int_equal(prom_family(&f->w, "d", PROM_HISTOGRAM, "D."), SL_OK);
    assert_int_equal(prom_histogram(&f->w, NULL, 0, h, &le), SL_OK);
    assert_string_equal(buf_str(&f->out), "# HELP d D.\n# TYPE d histogram\n"
                                          "d_bucket{le=\"63\"} 0\nd_bucket{le=\"1007\"} 0\n"
                                          "d_bucket{le=\"+Inf\"} 0\nd_sum 0\nd_count 0\n");
    free(h);
}

static void test_names(void **state)
{
    (void)state;
    static const char *const good[] = {"a", "_", ":", "a:b_c9", "sluice_requests_total", "A1"};
    static const char *const bad[] = {"", "1a", "a-b", "a b", "a.b", "é", "a\n"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(prom_name_is_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(prom_name_is_valid(bad[i]));
        assert_false(prom_label_name_is_valid(bad[i]));
    }
    assert_false(prom_name_is_valid(NULL));
    assert_true(prom_label_name_is_valid("route"));
    assert_true(prom_label_name_is_valid("_x"));
    assert_false(prom_label_name_is_valid("a:b"));      /* colons only in metric names */
    assert_false(prom_label_name_is_valid("__name__")); /* reserved */
    char longname[PROM_NAME_MAX + 2];
    memset(longname, 'a', PROM_NAME_MAX + 1);
    longname[PROM_NAME_MAX + 1] = '\0';
    assert_false(prom_name_is_valid(longname));
    longname[PROM_NAME_MAX] = '\0';
    assert_true(prom_name_is_valid(longname));
}

/* Every rule broken: the error code, and not one byte written. */
static void test_rules_write_nothing(void **state)
{
    struct fixture *f = *state;
    struct histogram *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    const struct prom_label bad_name[] = {{"bad-name", "v"}};
    const struct prom_label dup[] = {{"a", "1"}, {"a", "2"}};
    const struct prom_label le[] = {{"le", "1"}};
    const struct prom_label bad_utf8[] = {{"a", "\xc3\x28"}};
    const struct prom_label overlong[] = {{"a", "\xc0\xaf"}};
    const struct prom_label null_value[] = {{"a", NULL}};

    assert_int_equal(prom_sample(&f->w, NULL, 0, 1), SL_EINVAL); /* no family yet */
    assert_int_equal(prom_family(&f->w, "requests", PROM_COUNTER, "R."), SL_EINVAL);
    assert_int_equal(prom_family(&f->w, "9x", PROM_GAUGE, "R."), SL_EINVAL);
    assert_int_equal(prom_family(&f->w, "x", PROM_GAUGE, ""), SL_EINVAL);
    assert_int_equal(prom_family(&f->w, "x", PROM_GAUGE, NULL), SL_EINVAL);
    assert_int_equal(prom_family(&f->w, "x", PROM_GAUGE, "\xff"), SL_EINVAL);
    assert_int_equal(prom_family(&f->w, "x", (enum prom_type)9, "X."), SL_EINVAL);
    assert_int_equal(buf_str(&f->out)[0], '\0');

    assert_int_equal(prom_family(&f->w, "r_total", PROM_COUNTER, "R."), SL_OK);
    size_t len = f->out.len;
    assert_int_equal(prom_sample(&f->w, bad_name, 1, 1), SL_EINVAL);
    assert_int_equal(prom_sample(&f->w, dup, 2, 1), SL_EINVAL);
    assert_int_equal(prom_sample(&f->w, bad_utf8, 1, 1), SL_EINVAL);
    assert_int_equal(prom_sample(&f->w, overlong, 1, 1), SL_EINVAL);
    assert_int_equal(prom_sample(&f->w, null_value, 1, 1), SL_EINVAL);
    assert_int_equal(prom_sample(&f->w, NULL, 1, 1), SL_EINVAL);
    assert_int_equal(prom_sample(&f->w, dup, PROM_MAX_LABELS + 1, 1), SL_EINVAL);
    assert_int_equal(prom_sample(&f->w, NULL, 0, -1), SL_ERANGE);
    assert_int_equal(prom_sample(&f->w, NULL, 0, NAN), SL_ERANGE);
    assert_int_equal(prom_histogram(&f->w, NULL, 0, h, &prom_le_latency_us), SL_EINVAL);
    assert_int_equal(prom_family(&f->w, "r_total", PROM_COUNTER, "Again."), SL_EEXISTS);
    assert_int_equal(f->out.len, len);

    assert_int_equal(prom_family(&f->w, "lat", PROM_HISTOGRAM, "L."), SL_OK);
    len = f->out.len;
    static const uint64_t desc[] = {10, 5};
    const struct prom_le_set bad_le = {desc, 2, 1};
    const struct prom_le_set zero_div = {desc, 1, 0};
    assert_int_equal(prom_histogram(&f->w, le, 1, h, &prom_le_latency_us), SL_EINVAL);
    assert_int_equal(prom_histogram(&f->w, NULL, 0, h, &bad_le), SL_EINVAL);
    assert_int_equal(prom_histogram(&f->w, NULL, 0, h, &zero_div), SL_EINVAL);
    assert_int_equal(prom_histogram(&f->w, NULL, 0, h, NULL), SL_EINVAL);
    assert_int_equal(prom_sample(&f->w, NULL, 0, 1), SL_EINVAL);
    /* Families are checked against all earlier ones, not just the last. */
    assert_int_equal(prom_family(&f->w, "r_total", PROM_COUNTER, "Again."), SL_EEXISTS);
    assert_int_equal(f->out.len, len);
    /* A prefix of an earlier family is a different family. */
    assert_int_equal(prom_family(&f->w, "la", PROM_GAUGE, "L."), SL_OK);
    free(h);
}

static void test_buffer_full(void **state)
{
    (void)state;
    struct buf out;
    struct prom w;
    buf_init(&out, 60);
    prom_init(&w, &out);
    assert_int_equal(prom_family(&w, "g", PROM_GAUGE, "h"), SL_OK); /* 26 bytes */
    assert_int_equal(prom_sample(&w, NULL, 0, 1), SL_OK);           /* 4 */
    const struct prom_label l[] = {{"long", "0123456789012345678901234567890123456789"}};
    assert_int_equal(prom_sample(&w, l, 1, 1), SL_ETOOBIG);
    assert_string_equal(buf_str(&out), "# HELP g h\n# TYPE g gauge\ng 1\n");
    assert_int_equal(prom_family(&w, "a_much_longer_family_name_total", PROM_COUNTER,
                                 "Too long for what is left."),
                     SL_ETOOBIG);
    assert_string_equal(buf_str(&out), "# HELP g h\n# TYPE g gauge\ng 1\n");
    assert_int_equal(prom_sample(&w, NULL, 0, 2), SL_OK); /* still the open family */
    buf_release(&out);
}

static void test_family_limit(void **state)
{
    struct fixture *f = *state;
    char name[32];
    for (int i = 0; i < PROM_MAX_FAMILIES; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        assert_int_equal(prom_family(&f->w, name, PROM_GAUGE, "F."), SL_OK);
    }
    assert_int_equal(prom_family(&f->w, "f0", PROM_GAUGE, "F."), SL_EEXISTS);
    assert_int_equal(prom_family(&f->w, "one_more", PROM_GAUGE, "F."), SL_ERANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counter_and_gauge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_numbers_under_comma_locale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_exposition, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_empty_no_labels, setup, teardown),
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_rules_write_nothing, setup, teardown),
        cmocka_unit_test(test_buffer_full),
        cmocka_unit_test_setup_teardown(test_family_limit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
