/*
 * test_slo — SLO definitions (every field's error by name, unknown fields, window
 * strings), the bucket ring (boundaries, wrap-around, late and too-old adds, the memory
 * bound), burn rates and budget on constructed series with exact values, each alert rule
 * at and just above its threshold, time to exhaustion, the status JSON, and the
 * persistence format (exact bytes, roundtrip, merging, malformed input).
 */
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
#include "json.h"
#include "slo.h"

#define T0    UINT64_C(1700000000) /* a bucket boundary: bucket 170,000,000 */
#define DAY_S 86400u

static void assert_exact(double got, double want)
{
    if (!(got == want))
        fail_msg("got %.17g, want %.17g", got, want);
}

static void assert_near(double got, double want)
{
    if (!(fabs(got - want) <= 1e-9 * fmax(1, fabs(want))))
        fail_msg("got %.17g, want %.17g", got, want);
}

static void assert_dump(const json_t *v, const char *want)
{
    char *s = json_dump_compact(v);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
}

/* Parses text as an SLO with prefix; the result code and the exact error list. */
static int def_parse(const char *text, const char *prefix, struct slo_def *out,
                     const char *want_errors)
{
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    struct field_errors fe;
    field_errors_init(&fe);
    int rc = slo_def_from_json(doc, out, &fe, prefix);
    assert_dump(fe.list, want_errors);
    assert_int_equal(rc, field_errors_any(&fe) ? SL_EINVAL : SL_OK);
    field_errors_release(&fe);
    json_decref(doc);
    return rc;
}

#define DEF_ERRORS(text, want)                                                                     \
    do {                                                                                           \
        struct slo_def d_;                                                                         \
        assert_int_equal(def_parse((text), NULL, &d_, (want)), SL_EINVAL);                         \
    } while (0)

/* A valid availability SLO with one extra member spliced in ("" for none). */
static void def_with(char *buf, size_t n, const char *extra)
{
    snprintf(buf, n,
             "{\"name\":\"api\",\"service\":\"shortener\",\"kind\":\"availability\","
             "\"objective\":0.999%s}",
             extra);
}

/* --- definitions ------------------------------------------------------------------- */

static void test_def_parse(void **state)
{
    (void)state;
    struct slo_def d;
    assert_int_equal(def_parse("{\"name\":\"links-read.p99\",\"service\":\"Shortener_1\","
                               "\"route\":\"/v1/links/{code}\",\"kind\":\"latency\","
                               "\"threshold_ms\":250,\"objective\":0.99,\"window\":\"7d\","
                               "\"description\":\"reads under 250 ms\"}",
                               NULL, &d, "[]"),
                     SL_OK);
    assert_string_equal(d.name, "links-read.p99");
    assert_string_equal(d.service, "Shortener_1");
    assert_string_equal(d.route, "/v1/links/{code}");
    assert_int_equal(d.kind, SLO_LATENCY);
    assert_int_equal(d.threshold_ms, 250);
    assert_exact(d.objective, 0.99);
    assert_int_equal(d.window_s, 7 * DAY_S);
    assert_string_equal(d.description, "reads under 250 ms");

    /* Defaults: the whole service, 30 days, no description. */
    char doc[512];
    def_with(doc, sizeof(doc), "");
    assert_int_equal(def_parse(doc, NULL, &d, "[]"), SL_OK);
    assert_string_equal(d.route, "");
    assert_int_equal(d.kind, SLO_AVAILABILITY);
    assert_int_equal(d.threshold_ms, 0);
    assert_int_equal(d.window_s, 30 * DAY_S);
    assert_string_equal(d.description, "");
    def_with(doc, sizeof(doc), ",\"route\":\"other\"");
    assert_int_equal(def_parse(doc, NULL, &d, "[]"), SL_OK);
    assert_string_equal(d.route, "other");
}

static void test_def_roundtrip(void **state)
{
    (void)state;
    struct slo_def d, back;
    assert_int_equal(def_parse("{\"name\":\"lat\",\"service\":\"s\",\"kind\":\"latency\","
                               "\"threshold_ms\":300,\"objective\":0.75,\"window\":\"36h\"}",
                               NULL, &d, "[]"),
                     SL_OK);
    json_t *j = slo_def_to_json(&d);
    assert_dump(j, "{\"name\":\"lat\",\"service\":\"s\",\"route\":\"\",\"kind\":\"latency\","
                   "\"threshold_ms\":300,\"objective\":0.75,\"window\":\"36h\","
                   "\"window_s\":129600,\"description\":\"\"}");
    struct field_errors fe;
    field_errors_init(&fe);
    assert_int_equal(slo_def_from_json(j, &back, &fe, NULL), SL_OK);
    assert_memory_equal(&d, &back, sizeof(d));
    field_errors_release(&fe);
    json_decref(j);

    /* Availability has no threshold_ms; the window in its largest exact unit. */
    char doc[512];
    def_with(doc, sizeof(doc), ",\"window_s\":5400");
    assert_int_equal(def_parse(doc, NULL, &d, "[]"), SL_OK);
    j = slo_def_to_json(&d);
    assert_dump(j, "{\"name\":\"api\",\"service\":\"shortener\",\"route\":\"\","
                   "\"kind\":\"availability\",\"objective\":0.999,\"window\":\"90m\","
                   "\"window_s\":5400,\"description\":\"\"}");
    json_decref(j);
}

/* Every field wrong at once: one error each, named with the prefix, in field order. */
static void test_def_every_field_bad(void **state)
{
    (void)state;
    struct slo_def d;
    assert_int_equal(
        def_parse("{\"name\":\"API\",\"service\":\"a b\",\"route\":\"v1\",\"kind\":\"speed\","
                  "\"threshold_ms\":0,\"objective\":1,\"window\":\"30x\",\"window_s\":7,"
                  "\"description\":7,\"owner\":\"me\"}",
                  "slos[2].", &d,
                  "[{\"field\":\"slos[2].owner\",\"message\":\"is not a known field\"},"
                  "{\"field\":\"slos[2].name\",\"message\":\"must be 1-63 of a-z 0-9 . _ -\"},"
                  "{\"field\":\"slos[2].service\","
                  "\"message\":\"must be 1-63 of A-Z a-z 0-9 . _ -\"},"
                  "{\"field\":\"slos[2].route\",\"message\":\"must be \\\"\\\", \\\"other\\\" "
                  "or a route template starting with '/' without spaces\"},"
                  "{\"field\":\"slos[2].description\",\"message\":\"must be a string\"},"
                  "{\"field\":\"slos[2].kind\","
                  "\"message\":\"must be one of: availability, latency\"},"
                  "{\"field\":\"slos[2].threshold_ms\","
                  "\"message\":\"must be between 1 and 600000\"},"
                  "{\"field\":\"slos[2].objective\","
                  "\"message\":\"must be a number between 0 and 1, exclusive\"},"
                  "{\"field\":\"slos[2].window\","
                  "\"message\":\"must be a duration like 30d, 12h, 90m or 3600s\"},"
                  "{\"field\":\"slos[2].window_s\","
                  "\"message\":\"must be between 3600 and 2678400\"}]"),
        SL_EINVAL);
}

static void test_def_required_and_unknown(void **state)
{
    (void)state;
    DEF_ERRORS("{}", "[{\"field\":\"name\",\"message\":\"is required\"},"
                     "{\"field\":\"service\",\"message\":\"is required\"},"
                     "{\"field\":\"kind\",\"message\":\"is required\"},"
                     "{\"field\":\"objective\",\"message\":\"is required\"}]");
    char doc[512];
    def_with(doc, sizeof(doc), ",\"Objective\":0.9,\"slo\":{}");
    DEF_ERRORS(doc, "[{\"field\":\"Objective\",\"message\":\"is not a known field\"},"
                    "{\"field\":\"slo\",\"message\":\"is not a known field\"}]");
    struct slo_def d;
    assert_int_equal(def_parse("[1]", "slos[0].", &d,
                               "[{\"field\":\"slos[0].\","
                               "\"message\":\"an SLO must be a JSON object\"}]"),
                     SL_EINVAL);
    /* null is absent. */
    DEF_ERRORS("{\"name\":null,\"service\":\"s\",\"kind\":\"availability\",\"objective\":0.9}",
               "[{\"field\":\"name\",\"message\":\"is required\"}]");
}

static void test_def_strings(void **state)
{
    (void)state;
    char doc[1024], extra[600];
    DEF_ERRORS("{\"name\":\"x\",\"service\":\"\",\"kind\":\"availability\",\"objective\":0.9}",
               "[{\"field\":\"service\",\"message\":\"must be 1-63 of A-Z a-z 0-9 . _ -\"}]");
    DEF_ERRORS("{\"name\":\"\",\"service\":\"s\",\"kind\":\"availability\",\"objective\":0.9}",
               "[{\"field\":\"name\",\"message\":\"must be 1-63 of a-z 0-9 . _ -\"}]");
    /* 63 characters fit, 64 do not. */
    struct slo_def d;
    char name[65];
    memset(name, 'n', 64);
    name[63] = '\0';
    snprintf(doc, sizeof(doc),
             "{\"name\":\"%s\",\"service\":\"s\",\"kind\":\"availability\",\"objective\":0.9}",
             name);
    assert_int_equal(def_parse(doc, NULL, &d, "[]"), SL_OK);
    name[63] = 'n';
    name[64] = '\0';
    snprintf(doc, sizeof(doc),
             "{\"name\":\"%s\",\"service\":\"s\",\"kind\":\"availability\",\"objective\":0.9}",
             name);
    DEF_ERRORS(doc, "[{\"field\":\"name\",\"message\":\"must be at most 63 characters\"}]");
    def_with(doc, sizeof(doc), ",\"route\":\"/a b\"");
    DEF_ERRORS(doc, "[{\"field\":\"route\",\"message\":\"must be \\\"\\\", \\\"other\\\" or a "
                    "route template starting with '/' without spaces\"}]");
    def_with(doc, sizeof(doc), ",\"route\":\"\"");
    assert_int_equal(def_parse(doc, NULL, &d, "[]"), SL_OK);
    /* description: 200 characters (here 2-byte UTF-8 ones) fit, 201 do not. */
    strcpy(extra, ",\"description\":\"");
    for (int i = 0; i < 200; i++)
        strcat(extra, "\xc3\xa9");
    strcat(extra, "\"");
    def_with(doc, sizeof(doc), extra);
    assert_int_equal(def_parse(doc, NULL, &d, "[]"), SL_OK);
    assert_int_equal(strlen(d.description), 400);
    extra[strlen(extra) - 1] = '\0';
    strcat(extra, "x\"");
    def_with(doc, sizeof(doc), extra);
    DEF_ERRORS(doc, "[{\"field\":\"description\",\"message\":\"must be at most 200 characters\"}]");
}

static void test_def_kind_threshold(void **state)
{
    (void)state;
    DEF_ERRORS("{\"name\":\"a\",\"service\":\"s\",\"kind\":\"latency\",\"objective\":0.9}",
               "[{\"field\":\"threshold_ms\",\"message\":\"is required for kind latency\"}]");
    char doc[512];
    def_with(doc, sizeof(doc), ",\"threshold_ms\":100");
    DEF_ERRORS(doc, "[{\"field\":\"threshold_ms\",\"message\":\"applies only to kind latency\"}]");
    static const char *const bad[] = {"0", "600001", "-5", "1.5", "\"100\""};
    static const char *const msg[] = {
        "must be between 1 and 600000", "must be between 1 and 600000",
        "must be between 1 and 600000", "must be an integer", "must be an integer"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[200];
        snprintf(doc, sizeof(doc),
                 "{\"name\":\"a\",\"service\":\"s\",\"kind\":\"latency\",\"objective\":0.9,"
                 "\"threshold_ms\":%s}",
                 bad[i]);
        snprintf(want, sizeof(want), "[{\"field\":\"threshold_ms\",\"message\":\"%s\"}]", msg[i]);
        DEF_ERRORS(doc, want);
    }
    struct slo_def d;
    assert_int_equal(def_parse("{\"name\":\"a\",\"service\":\"s\",\"kind\":\"latency\","
                               "\"objective\":0.9,\"threshold_ms\":600000}",
                               NULL, &d, "[]"),
                     SL_OK);
    assert_int_equal(d.threshold_ms, 600000);
    DEF_ERRORS("{\"name\":\"a\",\"service\":\"s\",\"kind\":\"Latency\",\"objective\":0.9}",
               "[{\"field\":\"kind\",\"message\":\"must be one of: availability, latency\"}]");
    DEF_ERRORS("{\"name\":\"a\",\"service\":\"s\",\"kind\":1,\"objective\":0.9}",
               "[{\"field\":\"kind\",\"message\":\"must be a string\"}]");
}

static void test_def_objective(void **state)
{
    (void)state;
    static const char *const bad[] = {"0", "1", "0.0", "1.0", "-0.5", "1.5", "\"0.99\"", "true"};
    char doc[512], extra[64];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(doc, sizeof(doc),
                 "{\"name\":\"a\",\"service\":\"s\",\"kind\":\"availability\",\"objective\":%s}",
                 bad[i]);
        DEF_ERRORS(doc, "[{\"field\":\"objective\","
                        "\"message\":\"must be a number between 0 and 1, exclusive\"}]");
    }
    DEF_ERRORS("{\"name\":\"a\",\"service\":\"s\",\"kind\":\"availability\","
               "\"objective\":0.9999999996}",
               "[{\"field\":\"objective\",\"message\":\"must be at most 0.999999999 (the error "
               "budget is kept in parts per billion)\"}]");
    struct slo_def d;
    static const double good[] = {0.5, 0.999999999, 1e-12};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(extra, sizeof(extra), "%.17g", good[i]);
        snprintf(doc, sizeof(doc),
                 "{\"name\":\"a\",\"service\":\"s\",\"kind\":\"availability\",\"objective\":%s}",
                 extra);
        assert_int_equal(def_parse(doc, NULL, &d, "[]"), SL_OK);
        assert_exact(d.objective, good[i]);
    }
}

static void test_def_window(void **state)
{
    (void)state;
    static const struct {
        const char *extra;
        uint32_t window_s;  /* when valid */
        const char *errors; /* else */
    } cases[] = {
        {",\"window\":\"30d\"", 30 * DAY_S, NULL},
        {",\"window\":\"28d\"", 28 * DAY_S, NULL},
        {",\"window\":\"7d\"", 7 * DAY_S, NULL},
        {",\"window\":\"1d\"", DAY_S, NULL},
        {",\"window\":\"12h\"", 12 * 3600, NULL},
        {",\"window\":\"1h\"", 3600, NULL},
        {",\"window\":\"90m\"", 5400, NULL},
        {",\"window\":\"3600s\"", 3600, NULL},
        {",\"window\":\"31d\"", 31 * DAY_S, NULL},
        {",\"window\":\"0030d\"", 30 * DAY_S, NULL},
        {",\"window_s\":86400", DAY_S, NULL},
        {",\"window\":\"1d\",\"window_s\":86400", DAY_S, NULL},
        {",\"window\":null", 30 * DAY_S, NULL},
        {",\"window\":\"32d\"", 0,
         "[{\"field\":\"window\",\"message\":\"must be between 1h and 31d\"}]"},
        {",\"window\":\"59m\"", 0,
         "[{\"field\":\"window\",\"message\":\"must be between 1h and 31d\"}]"},
        {",\"window\":\"0d\"", 0,
         "[{\"field\":\"window\",\"message\":\"must be between 1h and 31d\"}]"},
        {",\"window\":\"3605s\"", 0,
         "[{\"field\":\"window\",\"message\":\"must be a whole number of 10-second buckets\"}]"},
        {",\"window_s\":86405", 0,
         "[{\"field\":\"window_s\",\"message\":\"must be a multiple of 10\"}]"},
        {",\"window_s\":3599", 0,
         "[{\"field\":\"window_s\",\"message\":\"must be between 3600 and 2678400\"}]"},
        {",\"window_s\":\"3600\"", 0,
         "[{\"field\":\"window_s\",\"message\":\"must be an integer\"}]"},
        {",\"window\":\"1d\",\"window_s\":3600", 0,
         "[{\"field\":\"window_s\",\"message\":\"must equal window (86400 seconds)\"}]"},
    };
    static const char *const syntax[] = {"30",   "d",   "30x", "1.5d",        " 30d",
                                         "30dd", "-1d", "30D", "1234567890s", ""};
    char doc[512], extra[64], want[200];
    struct slo_def d;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        def_with(doc, sizeof(doc), cases[i].extra);
        if (!cases[i].errors) {
            assert_int_equal(def_parse(doc, NULL, &d, "[]"), SL_OK);
            assert_int_equal(d.window_s, cases[i].window_s);
        } else {
            DEF_ERRORS(doc, cases[i].errors);
        }
    }
    snprintf(want, sizeof(want),
             "[{\"field\":\"window\",\"message\":\"must be a duration like "
             "30d, 12h, 90m or 3600s\"}]");
    for (size_t i = 0; i < sizeof(syntax) / sizeof(syntax[0]); i++) {
        snprintf(extra, sizeof(extra), ",\"window\":\"%s\"", syntax[i]);
        def_with(doc, sizeof(doc), extra);
        DEF_ERRORS(doc, want);
    }
    def_with(doc, sizeof(doc), ",\"window\":2592000");
    DEF_ERRORS(doc, want);
}

/* --- the ring ---------------------------------------------------------------------- */

static void assert_sum(const struct slo_series *s, uint64_t now_s, uint64_t span_s,
                       uint64_t want_good, uint64_t want_total)
{
    uint64_t good = 7, total = 7;
    slo_series_sum(s, now_s, span_s, &good, &total);
    if (good != want_good || total != want_total)
        fail_msg("sum(now %llu, span %llu) = %llu/%llu, want %llu/%llu", (unsigned long long)now_s,
                 (unsigned long long)span_s, (unsigned long long)good, (unsigned long long)total,
                 (unsigned long long)want_good, (unsigned long long)want_total);
}

static void test_series_new_and_memory(void **state)
{
    (void)state;
    static const uint32_t bad[] = {0, 3599, 3605, SLO_WINDOW_MAX_S + 10, UINT32_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_null(slo_series_new(bad[i]));
    struct slo_series *hour = slo_series_new(3600);
    struct slo_series *month = slo_series_new(30 * DAY_S);
    struct slo_series *max = slo_series_new(SLO_WINDOW_MAX_S);
    assert_non_null(hour);
    assert_non_null(month);
    assert_non_null(max);
    assert_int_equal(slo_series_window_s(month), 30 * DAY_S);
    /* 16 bytes a bucket plus a small fixed header. */
    size_t header = slo_series_bytes(hour) - 360 * 16;
    assert_true(header <= 64);
    assert_int_equal(slo_series_bytes(month), header + 259200 * 16);
    assert_int_equal(slo_series_bytes(month) - header, 4147200);
    assert_int_equal(slo_series_bytes(max), header + 4285440);
    assert_int_equal(SLO_BUCKETS_MAX, 267840);
    slo_series_free(hour);
    slo_series_free(month);
    slo_series_free(max);
    slo_series_free(NULL);
}

static void test_series_buckets(void **state)
{
    (void)state;
    struct slo_series *s = slo_series_new(3600);
    assert_sum(s, T0, 3600, 0, 0); /* empty */
    assert_int_equal(slo_series_add(s, T0, 9, 10), SL_OK);
    assert_int_equal(slo_series_add(s, T0 + 9, 1, 1), SL_OK); /* same bucket */
    assert_int_equal(slo_series_add(s, T0 + 10, 0, 5), SL_OK);
    assert_int_equal(slo_series_add(s, T0 + 10, 6, 5), SL_EINVAL); /* good > total */
    assert_sum(s, T0 + 10, 10, 0, 5);                              /* the current bucket only */
    assert_sum(s, T0 + 19, 10, 0, 5);                              /* anywhere in it */
    assert_sum(s, T0 + 10, 11, 10, 16); /* a second into the previous one: all of it */
    assert_sum(s, T0 + 10, 20, 10, 16);
    assert_sum(s, T0 + 10, 0, 0, 0);
    assert_sum(s, T0 + 9, 10, 10, 11); /* a query before head: only what it covers */
    assert_sum(s, T0 - 1, 3600, 0, 0);
    assert_sum(s, T0 + 20, 10, 0, 0); /* a bucket with nothing yet */
    assert_sum(s, T0 + 20, 20, 0, 5);
    assert_sum(s, T0 + 10, UINT64_MAX, 10, 16); /* clipped to the window */
    slo_series_free(s);
}

/* Spans ending at exact bucket boundaries: bucket i (of 400) holds i + 1 requests. */
static void test_series_span_boundaries(void **state)
{
    (void)state;
    struct slo_series *s = slo_series_new(DAY_S);
    for (uint64_t i = 0; i < 400; i++)
        assert_int_equal(slo_series_add(s, T0 + i * 10, i + 1, i + 1), SL_OK);
    uint64_t now = T0 + 399 * 10;               /* bucket 399, holding 400 */
    assert_sum(s, now, 300, 11565, 11565);      /* buckets 370..399: 371 + ... + 400 */
    assert_sum(s, now + 9, 300, 11565, 11565);  /* the same until the bucket ends */
    assert_sum(s, now, 290, 11194, 11194);      /* 29 buckets: 371 left out */
    assert_sum(s, now, 291, 11565, 11565);      /* a second more: the whole 30th */
    assert_sum(s, now, 301, 11935, 11935);      /* 31 buckets: 370 more */
    assert_sum(s, now - 1, 300, 11535, 11535);  /* ending in bucket 398: 370 + ... + 399 */
    assert_sum(s, now + 10, 300, 11194, 11194); /* bucket 400 empty: 371..399 */
    assert_sum(s, now, 3990, 80199, 80199);     /* 399 buckets: all but bucket 0 */
    assert_sum(s, now, 4000, 80200, 80200);
    assert_sum(s, now, 4010, 80200, 80200);
    assert_sum(s, now, 3600, 79380, 79380); /* 1 h: buckets 40..399 */
    slo_series_free(s);
}

static void test_series_wrap(void **state)
{
    (void)state;
    struct slo_series *s = slo_series_new(3600); /* 360 buckets */
    for (uint64_t i = 0; i < 360; i++)
        assert_int_equal(slo_series_add(s, T0 + i * 10, 1, 1), SL_OK);
    uint64_t last = T0 + 3590;
    assert_sum(s, last, 3600, 360, 360);
    assert_sum(s, T0 + 3600, 3600, 359, 359);       /* bucket 0 left the window */
    assert_sum(s, T0 + 3600, UINT64_MAX, 359, 359); /* spans are clipped to the window */
    /* Bucket 360 takes bucket 0's slot, which is reset first. */
    assert_int_equal(slo_series_add(s, T0 + 3600, 0, 5), SL_OK);
    assert_sum(s, T0 + 3600, 10, 0, 5);
    assert_sum(s, T0 + 3600, 3600, 359, 364);
    /* Late adds: the oldest bucket held (361 - 360 + 1 = bucket 1) still counts; bucket
     * 0 is gone. */
    assert_int_equal(slo_series_add(s, T0 + 10, 1, 1), SL_OK);
    assert_sum(s, T0 + 3600, 3600, 360, 365);
    assert_int_equal(slo_series_add(s, T0 + 9, 1, 1), SL_ERANGE);
    assert_sum(s, T0 + 3600, 3600, 360, 365);
    /* Half a window later: 180 buckets reset, the 180 newest of the old ones remain
     * (buckets 181..359 hold 1 each, bucket 360 holds 5). */
    assert_int_equal(slo_series_add(s, T0 + 5400, 2, 2), SL_OK);
    assert_sum(s, T0 + 5400, 3600, 179 + 0 + 2, 179 + 5 + 2);
    /* A gap longer than the window: everything older is gone. */
    assert_int_equal(slo_series_add(s, T0 + 10 * 3600, 3, 4), SL_OK);
    assert_sum(s, T0 + 10 * 3600, 3600, 3, 4);
    assert_sum(s, T0 + 10 * 3600, 10, 3, 4);
    /* Time passing without adds: stale buckets read as nothing. */
    assert_sum(s, T0 + 11 * 3600 - 10, 3600, 3, 4);
    assert_sum(s, T0 + 11 * 3600, 3600, 0, 0);
    slo_series_free(s);
}

static void test_series_saturates(void **state)
{
    (void)state;
    struct slo_series *s = slo_series_new(3600);
    assert_int_equal(slo_series_add(s, T0, UINT64_MAX - 1, UINT64_MAX), SL_OK);
    assert_int_equal(slo_series_add(s, T0, 5, 5), SL_OK);
    assert_int_equal(slo_series_add(s, T0 + 10, 5, 5), SL_OK);
    assert_sum(s, T0 + 10, 20, UINT64_MAX, UINT64_MAX);
    slo_series_free(s);
}

/* --- burn rates, budget, alerts -------------------------------------------------------- */

static struct slo_def def_of(double objective, uint32_t window_s)
{
    struct slo_def d;
    memset(&d, 0, sizeof(d));
    strcpy(d.name, "api");
    strcpy(d.service, "shortener");
    d.kind = SLO_AVAILABILITY;
    d.objective = objective;
    d.window_s = window_s;
    return d;
}

static struct slo_status eval(const struct slo_def *d, const struct slo_series *s, uint64_t now)
{
    struct slo_status st;
    assert_int_equal(slo_evaluate(d, s, now, &st), SL_OK);
    return st;
}

/* Objective 0.999, 1% errors throughout the last hour, good traffic two days earlier. */
static void test_burn_one_percent_last_hour(void **state)
{
    (void)state;
    struct slo_def d = def_of(0.999, 30 * DAY_S);
    struct slo_series *s = slo_series_new(30 * DAY_S);
    uint64_t now = T0 + 5;
    assert_int_equal(slo_series_add(s, now - 2 * DAY_S, 640000, 640000), SL_OK);
    for (uint64_t i = 0; i < 360; i++)
        assert_int_equal(slo_series_add(s, now - i * 10, 990, 1000), SL_OK);
    struct slo_status st = eval(&d, s, now);
    assert_true(st.has_data);
    assert_int_equal(st.total, 1000000);
    assert_int_equal(st.good, 1000000 - 3600);
    assert_exact(st.sli, 0.9964);
    for (int w = SLO_BURN_5M; w <= SLO_BURN_1D; w++)
        assert_exact(st.burn[w], 10);
    assert_exact(st.burn[SLO_BURN_3D], 3.6);
    assert_exact(st.budget_remaining, 1 - 3.6);
    assert_int_equal(st.exhaustion, SLO_EXHAUST_EXHAUSTED);
    assert_exact(st.exhaustion_s, 0);
    /* 1 h at 10 is not > 14.4; 6 h and 30 m at 10 are > 6. */
    assert_int_equal(st.alert, SLO_ALERT_PAGE);
    assert_int_equal(st.rule, SLO_RULE_PAGE_6H_30M);
    /* An hour later the errors have left the 1 h window but not the 2 h one. */
    st = eval(&d, s, now + 3600);
    assert_exact(st.burn[SLO_BURN_1H], 0);
    assert_exact(st.burn[SLO_BURN_2H], 10);
    slo_series_free(s);
}

/* Three days of good traffic, then nothing but errors for the last 5 minutes. */
static void test_burn_all_errors_last_5m(void **state)
{
    (void)state;
    struct slo_def d = def_of(0.999, 30 * DAY_S);
    struct slo_series *s = slo_series_new(30 * DAY_S);
    uint64_t buckets = 3 * DAY_S / 10, now = T0 + (buckets - 1) * 10;
    for (uint64_t i = 0; i < buckets; i++)
        assert_int_equal(slo_series_add(s, T0 + i * 10, i < buckets - 30 ? 100 : 0, 100), SL_OK);
    struct slo_status st = eval(&d, s, now);
    assert_exact(st.burn[SLO_BURN_5M], 1000);
    assert_near(st.burn[SLO_BURN_30M], 1000.0 * 30 / 180);
    assert_near(st.burn[SLO_BURN_1H], 1000.0 * 30 / 360);
    assert_near(st.burn[SLO_BURN_2H], 1000.0 * 30 / 720);
    assert_near(st.burn[SLO_BURN_6H], 1000.0 * 30 / 2160);
    assert_near(st.burn[SLO_BURN_1D], 1000.0 * 30 / 8640);
    assert_near(st.burn[SLO_BURN_3D], 1000.0 * 30 / 25920);
    assert_int_equal(st.alert, SLO_ALERT_PAGE);
    assert_int_equal(st.rule, SLO_RULE_PAGE_1H_5M);
    /* Budget: 3000 errors of 2,592,000 allowed 2592: over by 408. */
    assert_near(st.budget_remaining, 1 - 3000.0 / 2592);
    slo_series_free(s);
}

static void burn_all(double burn[SLO_BURN_WINDOWS], double v)
{
    for (int w = 0; w < SLO_BURN_WINDOWS; w++)
        burn[w] = v;
}

/* Each rule: not at its threshold, not with one window above, yes with both above. */
static void test_alert_rules_at_thresholds(void **state)
{
    (void)state;
    static const struct {
        enum slo_rule rule;
        enum slo_alert alert;
        enum slo_burn_window long_w, short_w;
        double threshold;
    } rules[] = {
        {SLO_RULE_PAGE_1H_5M, SLO_ALERT_PAGE, SLO_BURN_1H, SLO_BURN_5M, 14.4},
        {SLO_RULE_PAGE_6H_30M, SLO_ALERT_PAGE, SLO_BURN_6H, SLO_BURN_30M, 6},
        {SLO_RULE_TICKET_1D_2H, SLO_ALERT_TICKET, SLO_BURN_1D, SLO_BURN_2H, 3},
        {SLO_RULE_TICKET_3D_6H, SLO_ALERT_TICKET, SLO_BURN_3D, SLO_BURN_6H, 1},
    };
    double burn[SLO_BURN_WINDOWS];
    enum slo_rule rule = SLO_RULE_PAGE_1H_5M;
    burn_all(burn, 0);
    assert_int_equal(slo_alert_classify(burn, &rule), SLO_ALERT_NONE);
    assert_int_equal(rule, SLO_RULE_NONE);
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        double above = nextafter(rules[i].threshold, INFINITY);
        burn_all(burn, 0);
        burn[rules[i].long_w] = burn[rules[i].short_w] = rules[i].threshold;
        assert_int_equal(slo_alert_classify(burn, &rule), SLO_ALERT_NONE);
        burn[rules[i].long_w] = above;
        assert_int_equal(slo_alert_classify(burn, &rule), SLO_ALERT_NONE);
        burn[rules[i].long_w] = rules[i].threshold;
        burn[rules[i].short_w] = above;
        assert_int_equal(slo_alert_classify(burn, &rule), SLO_ALERT_NONE);
        burn[rules[i].long_w] = above;
        assert_int_equal(slo_alert_classify(burn, &rule), rules[i].alert);
        assert_int_equal(rule, rules[i].rule);
    }
    /* Everything burning: the first page rule wins. */
    burn_all(burn, 100);
    assert_int_equal(slo_alert_classify(burn, &rule), SLO_ALERT_PAGE);
    assert_int_equal(rule, SLO_RULE_PAGE_1H_5M);
    assert_string_equal(slo_rule_name(SLO_RULE_TICKET_3D_6H), "ticket_3d_6h");
    assert_null(slo_rule_name(SLO_RULE_NONE));
    assert_string_equal(slo_alert_name(SLO_ALERT_TICKET), "ticket");
}

/* The same through the series: all traffic in now's bucket, so every window burns the
 * same, exactly at a threshold or one error in a million above it. */
static void test_alert_thresholds_evaluated(void **state)
{
    (void)state;
    static const struct {
        uint64_t bad_per_million;
        double burn;
        enum slo_alert alert;
        enum slo_rule rule;
    } cases[] = {
        {14400, 14.4, SLO_ALERT_PAGE, SLO_RULE_PAGE_6H_30M}, /* 14.4 is not > 14.4 */
        {14401, 14.401, SLO_ALERT_PAGE, SLO_RULE_PAGE_1H_5M},
        {6000, 6, SLO_ALERT_TICKET, SLO_RULE_TICKET_1D_2H},
        {6001, 6.001, SLO_ALERT_PAGE, SLO_RULE_PAGE_6H_30M},
        {3000, 3, SLO_ALERT_TICKET, SLO_RULE_TICKET_3D_6H},
        {3001, 3.001, SLO_ALERT_TICKET, SLO_RULE_TICKET_1D_2H},
        {1000, 1, SLO_ALERT_NONE, SLO_RULE_NONE},
        {1001, 1.001, SLO_ALERT_TICKET, SLO_RULE_TICKET_3D_6H},
        {0, 0, SLO_ALERT_NONE, SLO_RULE_NONE},
    };
    struct slo_def d = def_of(0.999, 30 * DAY_S);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct slo_series *s = slo_series_new(30 * DAY_S);
        assert_int_equal(slo_series_add(s, T0, 1000000 - cases[i].bad_per_million, 1000000), SL_OK);
        struct slo_status st = eval(&d, s, T0);
        for (int w = 0; w < SLO_BURN_WINDOWS; w++)
            assert_exact(st.burn[w], cases[i].burn);
        assert_int_equal(st.alert, cases[i].alert);
        assert_int_equal(st.rule, cases[i].rule);
        slo_series_free(s);
    }
}

static void test_budget_remaining(void **state)
{
    (void)state;
    struct slo_def d = def_of(0.999, 30 * DAY_S);
    struct slo_series *s = slo_series_new(30 * DAY_S);
    struct slo_status st = eval(&d, s, T0); /* no traffic */
    assert_false(st.has_data);
    assert_true(isnan(st.sli));
    assert_exact(st.budget_remaining, 1.0);
    assert_int_equal(st.exhaustion, SLO_EXHAUST_NEVER);
    assert_true(isinf(st.exhaustion_s));
    assert_int_equal(st.alert, SLO_ALERT_NONE);

    assert_int_equal(slo_series_add(s, T0, 1000, 1000), SL_OK); /* no errors */
    st = eval(&d, s, T0);
    assert_exact(st.sli, 1.0);
    assert_exact(st.budget_remaining, 1.0);
    assert_int_equal(st.exhaustion, SLO_EXHAUST_NEVER);

    assert_int_equal(slo_series_add(s, T0 - DAY_S, 999, 1000), SL_OK); /* 1 in 2000 */
    st = eval(&d, s, T0);
    assert_exact(st.budget_remaining, 0.5);
    assert_int_equal(slo_series_add(s, T0 - DAY_S, 998, 1000), SL_OK); /* 3 in 3000 */
    st = eval(&d, s, T0);
    assert_int_equal(st.total, 3000);
    assert_exact(st.budget_remaining, 0.0); /* exactly at budget */
    assert_int_equal(st.exhaustion, SLO_EXHAUST_EXHAUSTED);
    assert_exact(st.exhaustion_s, 0);
    assert_int_equal(slo_series_add(s, T0 - DAY_S, 997, 1000), SL_OK); /* 6 in 4000 */
    st = eval(&d, s, T0);
    assert_exact(st.budget_remaining, -0.5); /* over by half */
    slo_series_free(s);

    /* Over by exactly the budget again: -1; a window clipped to the def's. */
    d = def_of(0.99, 3600);
    s = slo_series_new(30 * DAY_S);
    assert_int_equal(slo_series_add(s, T0 - 7200, 0, 1000), SL_OK); /* outside 1 h */
    assert_int_equal(slo_series_add(s, T0, 98, 100), SL_OK);
    st = eval(&d, s, T0);
    assert_int_equal(st.window_s, 3600);
    assert_int_equal(st.total, 100);
    assert_exact(st.budget_remaining, -1.0);
    assert_exact(st.burn[SLO_BURN_3D], 2); /* clipped to 1 h too */
    slo_series_free(s);

    struct slo_def bad = def_of(1.0, 3600);
    s = slo_series_new(3600);
    assert_int_equal(slo_evaluate(&bad, s, T0, &st), SL_EINVAL);
    slo_series_free(s);
}

static void test_time_to_exhaustion(void **state)
{
    (void)state;
    struct slo_def d = def_of(0.999, 30 * DAY_S);
    struct slo_series *s = slo_series_new(30 * DAY_S);
    /* Half the budget spent 20 days ago; 1% errors in the last hour (burn 10). */
    assert_int_equal(slo_series_add(s, T0 - 20 * DAY_S, 990000 - 400, 990000), SL_OK);
    struct slo_status st = eval(&d, s, T0);
    assert_near(st.budget_remaining, 1 - 0.4 / 0.99);
    assert_int_equal(st.exhaustion, SLO_EXHAUST_NEVER); /* nothing burning now */
    assert_int_equal(slo_series_add(s, T0 - 1800, 9900, 10000), SL_OK);
    st = eval(&d, s, T0);
    assert_exact(st.burn[SLO_BURN_1H], 10);
    assert_exact(st.budget_remaining, 0.5);
    assert_int_equal(st.exhaustion, SLO_EXHAUST_PROJECTED);
    assert_exact(st.exhaustion_s, 0.5 * 30 * DAY_S / 10); /* 129600 s = 1.5 days */
    json_t *j = slo_status_to_json(&d, &st);
    assert_int_equal(json_integer_value(json_object_get(j, "time_to_exhaustion_s")), 129600);
    assert_string_equal(json_string_value(json_object_get(j, "exhaustion")), "projected");
    json_decref(j);
    slo_series_free(s);

    /* The same over 7 days: the projection scales with the window. */
    d = def_of(0.999, 7 * DAY_S);
    s = slo_series_new(7 * DAY_S);
    assert_int_equal(slo_series_add(s, T0 - 5 * DAY_S, 990000 - 400, 990000), SL_OK);
    assert_int_equal(slo_series_add(s, T0 - 3590, 9900, 10000), SL_OK);
    st = eval(&d, s, T0);
    assert_exact(st.budget_remaining, 0.5);
    assert_exact(st.exhaustion_s, 0.5 * 7 * DAY_S / 10); /* 30240 s */
    /* Errors 2 hours ago burn in the 6 h window but not in the 1 h one: never. */
    st = eval(&d, s, T0 + 3600);
    assert_exact(st.burn[SLO_BURN_1H], 0);
    assert_exact(st.burn[SLO_BURN_6H], 10);
    assert_int_equal(st.exhaustion, SLO_EXHAUST_NEVER);
    assert_true(isinf(st.exhaustion_s));
    slo_series_free(s);
}

static void test_status_json(void **state)
{
    (void)state;
    struct slo_def d = def_of(0.75, 3600);
    strcpy(d.route, "/v1/links");
    struct slo_series *s = slo_series_new(3600);
    struct slo_status st = eval(&d, s, T0);
    json_t *j = slo_status_to_json(&d, &st);
    assert_dump(j, "{\"name\":\"api\",\"service\":\"shortener\",\"route\":\"/v1/links\","
                   "\"kind\":\"availability\",\"objective\":0.75,\"window_s\":3600,\"good\":0,"
                   "\"total\":0,\"has_data\":false,\"sli\":null,\"burn_rates\":{\"5m\":0.0,"
                   "\"30m\":0.0,\"1h\":0.0,\"2h\":0.0,\"6h\":0.0,\"1d\":0.0,\"3d\":0.0},"
                   "\"error_budget_remaining\":1.0,\"exhaustion\":\"never\","
                   "\"time_to_exhaustion_s\":null,\"alert\":\"none\",\"rule\":null}");
    json_decref(j);
    /* 2 errors in 4 at objective 0.75: burn 2 everywhere, budget -1, a ticket. */
    assert_int_equal(slo_series_add(s, T0, 2, 4), SL_OK);
    st = eval(&d, s, T0);
    j = slo_status_to_json(&d, &st);
    assert_dump(j, "{\"name\":\"api\",\"service\":\"shortener\",\"route\":\"/v1/links\","
                   "\"kind\":\"availability\",\"objective\":0.75,\"window_s\":3600,\"good\":2,"
                   "\"total\":4,\"has_data\":true,\"sli\":0.5,\"burn_rates\":{\"5m\":2.0,"
                   "\"30m\":2.0,\"1h\":2.0,\"2h\":2.0,\"6h\":2.0,\"1d\":2.0,\"3d\":2.0},"
                   "\"error_budget_remaining\":-1.0,\"exhaustion\":\"exhausted\","
                   "\"time_to_exhaustion_s\":0,\"alert\":\"ticket\","
                   "\"rule\":\"ticket_3d_6h\"}");
    json_decref(j);
    slo_series_free(s);
}

/* --- persistence ----------------------------------------------------------------------- */

static void assert_bytes(const char *got, size_t got_len, const unsigned char *want,
                         size_t want_len)
{
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
}

static void test_encode_exact_bytes(void **state)
{
    (void)state;
    struct slo_series *s = slo_series_new(3600);
    char *buf;
    size_t len;
    assert_int_equal(slo_series_encode(s, T0, &buf, &len), SL_OK);
    static const unsigned char empty[] = {1, 0, 0};
    assert_bytes(buf, len, empty, sizeof(empty));
    free(buf);

    assert_int_equal(slo_series_add(s, T0 - 20, 5, 5), SL_OK);
    assert_int_equal(slo_series_add(s, T0 - 10, 0, 0), SL_OK); /* empty: not written */
    assert_int_equal(slo_series_add(s, T0, 299, 300), SL_OK);
    assert_int_equal(slo_series_encode(s, T0 + 5, &buf, &len), SL_OK);
    /* ref = bucket 170,000,000; 2 entries: {back 0, 300, 1}, {back 2, 5, 0}. */
    static const unsigned char two[] = {1, 0x80, 0xfd, 0x87, 0x51, 2, 0, 0xac, 0x02, 1, 2, 5, 0};
    assert_bytes(buf, len, two, sizeof(two));
    free(buf);
    /* At a later now only the buckets still in the window are written. */
    assert_int_equal(slo_series_encode(s, T0 - 20 + 3600, &buf, &len), SL_OK);
    static const unsigned char one[] = {1, 0x80, 0xfd, 0x87, 0x51, 1, 0, 0xac, 0x02, 1};
    assert_bytes(buf, len, one, sizeof(one));
    free(buf);
    assert_int_equal(slo_series_encode(s, T0 + 3600, &buf, &len), SL_OK);
    assert_bytes(buf, len, empty, sizeof(empty));
    free(buf);
    slo_series_free(s);
}

/* Every bucket of a and b over a's window at now holds the same counts. */
static void assert_same_buckets(const struct slo_series *a, const struct slo_series *b,
                                uint64_t now)
{
    uint32_t n = slo_series_window_s(a) / SLO_BUCKET_S;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t ga, ta, gb, tb;
        slo_series_sum(a, now - i * 10, 10, &ga, &ta);
        slo_series_sum(b, now - i * 10, 10, &gb, &tb);
        if (ga != gb || ta != tb)
            fail_msg("bucket -%llu: %llu/%llu vs %llu/%llu", (unsigned long long)i,
                     (unsigned long long)ga, (unsigned long long)ta, (unsigned long long)gb,
                     (unsigned long long)tb);
    }
}

static void test_encode_roundtrip(void **state)
{
    (void)state;
    struct slo_series *s = slo_series_new(DAY_S);
    uint64_t now = T0 + DAY_S, x = 88172645463325252ULL;
    for (uint64_t i = 0; i < DAY_S / 10; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        if (x % 3 == 0)
            continue; /* a third of the buckets empty */
        uint64_t total = x % 100000 + 1, bad = (x >> 20) % (total + 1);
        assert_int_equal(slo_series_add(s, T0 + 10 + i * 10, total - bad, total), SL_OK);
    }
    assert_int_equal(slo_series_add(s, now, 1ULL << 62, UINT64_MAX), SL_OK); /* 10-byte varints */
    char *buf;
    size_t len;
    assert_int_equal(slo_series_encode(s, now, &buf, &len), SL_OK);
    struct slo_series *back = slo_series_new(DAY_S);
    assert_int_equal(slo_series_decode(back, buf, len, now), SL_OK);
    assert_same_buckets(s, back, now);
    uint64_t g1, t1, g2, t2;
    slo_series_sum(s, now, DAY_S, &g1, &t1);
    slo_series_sum(back, now, DAY_S, &g2, &t2);
    assert_true(t1 > 0 && g1 == g2 && t1 == t2);

    /* Decoding again merges: every count doubles (all but the saturated newest bucket). */
    assert_int_equal(slo_series_decode(back, buf, len, now), SL_OK);
    slo_series_sum(back, now - 10, DAY_S - 10, &g2, &t2);
    slo_series_sum(s, now - 10, DAY_S - 10, &g1, &t1);
    assert_true(t1 > 0 && g2 == 2 * g1 && t2 == 2 * t1);
    slo_series_free(back);

    /* Restored an hour later into a 1 h series: only the last hour's buckets, up to now. */
    back = slo_series_new(3600);
    assert_int_equal(slo_series_decode(back, buf, len, now - 3600), SL_OK);
    slo_series_sum(back, now - 3600, 3600, &g2, &t2);
    slo_series_sum(s, now - 3600, 3600, &g1, &t1);
    assert_true(t1 > 0 && g1 == g2 && t1 == t2);
    assert_sum(back, now, 10, 0, 0); /* the bucket newer than now was ignored */
    slo_series_free(back);
    back = slo_series_new(3600);
    assert_int_equal(slo_series_decode(back, buf, len, now + 3600), SL_OK);
    assert_sum(back, now + 3600, 3600, 0, 0); /* all older than the window */
    free(buf);
    slo_series_free(back);
    slo_series_free(s);
}

static void test_decode_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *why;
        unsigned char bytes[24];
        size_t len;
    } bad[] = {
        {"empty", {0}, 0},
        {"version 2", {2, 0, 0}, 3},
        {"version only", {1}, 1},
        {"ref truncated", {1, 0x80}, 2},
        {"count missing", {1, 5}, 2},
        {"count over the bound", {1, 5, 0xc1, 0xac, 0x10}, 5},
        {"entry truncated", {1, 5, 1, 0, 3}, 5},
        {"fewer entries than counted", {1, 5, 2, 0, 3, 1}, 6},
        {"total 0", {1, 5, 1, 0, 0, 0}, 6},
        {"bad > total", {1, 5, 1, 0, 3, 4}, 6},
        {"second back 0", {1, 5, 2, 0, 3, 1, 0, 3, 1}, 9},
        {"back past bucket 0", {1, 5, 2, 0, 3, 1, 6, 3, 1}, 9},
        {"trailing byte", {1, 5, 1, 0, 3, 1, 0}, 7},
        {"varint over 64 bits",
         {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0},
         12},
        {"varint over 10 bytes",
         {1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0},
         13},
    };
    struct slo_series *s = slo_series_new(3600);
    assert_int_equal(slo_series_add(s, T0, 7, 9), SL_OK);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (slo_series_decode(s, (const char *)bad[i].bytes, bad[i].len, T0) != SL_EPARSE)
            fail_msg("accepted: %s", bad[i].why);
        assert_sum(s, T0, 3600, 7, 9); /* untouched */
    }
    assert_int_equal(slo_series_decode(s, NULL, 0, T0), SL_EPARSE);
    /* The edges of the valid: bucket 0 is reachable, a 10-byte varint is fine. */
    static const unsigned char edge[] = {1, 5, 2, 0, 3, 1, 5, 3, 1};
    assert_int_equal(slo_series_decode(s, (const char *)edge, sizeof(edge), T0), SL_OK);
    assert_sum(s, T0, 3600, 7, 9); /* buckets 5 and 0 are far older than the window */

    /* At most SLO_BUCKETS_MAX entries, even when all of them are there. */
    for (uint64_t count = SLO_BUCKETS_MAX; count <= SLO_BUCKETS_MAX + 1; count++) {
        size_t n = 0;
        unsigned char *big = malloc(16 + count * 3);
        assert_non_null(big);
        big[n++] = 1;
        big[n++] = 0xc1; /* ref = bucket 529985: count - 1 backs of 1 stay above 0 */
        big[n++] = 0xac;
        big[n++] = 0x20;
        big[n++] = (unsigned char)(0x80 | (count & 0x7f));
        big[n++] = (unsigned char)(0x80 | ((count >> 7) & 0x7f));
        big[n++] = (unsigned char)(count >> 14);
        for (uint64_t k = 0; k < count; k++) {
            big[n++] = k > 0; /* back */
            big[n++] = 1;     /* total */
            big[n++] = 0;     /* bad */
        }
        assert_int_equal(slo_series_decode(s, (const char *)big, n, T0),
                         count == SLO_BUCKETS_MAX ? SL_OK : SL_EPARSE);
        free(big);
    }
    assert_sum(s, T0, 3600, 7, 9); /* all far older than the window */

    /* Every proper prefix of a valid encoding is malformed; every one-byte change is
     * either valid or SL_EPARSE (ASan watches the rest). */
    assert_int_equal(slo_series_add(s, T0 - 50, 1000, 1001), SL_OK);
    char *buf;
    size_t len;
    assert_int_equal(slo_series_encode(s, T0, &buf, &len), SL_OK);
    for (size_t n = 0; n < len; n++)
        assert_int_equal(slo_series_decode(s, buf, n, T0), SL_EPARSE);
    assert_sum(s, T0, 3600, 1007, 1010);
    for (size_t i = 0; i < len; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            buf[i] = (char)(buf[i] ^ (1 << bit));
            int rc = slo_series_decode(s, buf, len, T0);
            assert_true(rc == SL_OK || rc == SL_EPARSE);
            buf[i] = (char)(buf[i] ^ (1 << bit));
        }
    }
    free(buf);
    slo_series_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_def_parse),
        cmocka_unit_test(test_def_roundtrip),
        cmocka_unit_test(test_def_every_field_bad),
        cmocka_unit_test(test_def_required_and_unknown),
        cmocka_unit_test(test_def_strings),
        cmocka_unit_test(test_def_kind_threshold),
        cmocka_unit_test(test_def_objective),
        cmocka_unit_test(test_def_window),
        cmocka_unit_test(test_series_new_and_memory),
        cmocka_unit_test(test_series_buckets),
        cmocka_unit_test(test_series_span_boundaries),
        cmocka_unit_test(test_series_wrap),
        cmocka_unit_test(test_series_saturates),
        cmocka_unit_test(test_burn_one_percent_last_hour),
        cmocka_unit_test(test_burn_all_errors_last_5m),
        cmocka_unit_test(test_alert_rules_at_thresholds),
        cmocka_unit_test(test_alert_thresholds_evaluated),
        cmocka_unit_test(test_budget_remaining),
        cmocka_unit_test(test_time_to_exhaustion),
        cmocka_unit_test(test_status_json),
        cmocka_unit_test(test_encode_exact_bytes),
        cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test(test_decode_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
