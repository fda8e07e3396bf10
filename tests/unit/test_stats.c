/* Unit tests for agent/stats.c: recording, merging workers, JSON and Prometheus output. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "stats.h"

static void record(struct worker_stats *ws, unsigned route, int status, uint64_t us,
                   uint64_t now_ms)
{
    struct stats_request r = {.route = route, .status = status, .bytes_in = 100,
                              .bytes_out = 1000, .latency_us = us, .upstream_us = us / 2,
                              .upstream_error = status == 502, .faulted = status == 503};
    stats_record(ws, &r, now_ms);
}

static void test_record_and_merge(void **state)
{
    (void)state;
    struct worker_stats *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
    struct stats_view *v = calloc(1, sizeof(*v));
    for (int i = 0; i < 10; i++)
        record(a, 1, 200, 1000, 5000);
    record(a, 1, 502, 10, 5000);
    record(b, 1, 404, 2000, 5000);
    record(b, 2, 503, 30, 5000);
    record(b, 2, 0, 30, 5000);
    stats_view_reset(v);
    stats_view_add(v, a);
    stats_view_add(v, b);
    stats_view_finish(v);
    assert_int_equal(v->routes[1].requests, 12);
    assert_int_equal(v->routes[1].by_class[2], 10);
    assert_int_equal(v->routes[1].by_class[4], 1);
    assert_int_equal(v->routes[1].by_class[5], 1);
    assert_int_equal(v->routes[1].upstream_errors, 1);
    assert_int_equal(v->routes[2].by_class[0], 1);
    assert_int_equal(v->routes[2].faulted, 1);
    assert_int_equal(v->total.requests, 14);
    assert_int_equal(v->total.bytes_in, 1400);
    assert_int_equal(histogram_count(&v->total.latency_us), 14);
    /* p50 of the merged latencies: ten 1000 µs values among 14 */
    assert_true(histogram_percentile(&v->total.latency_us, 50) >= 1000);
    assert_true(histogram_percentile(&v->total.latency_us, 50) < 1032);
    /* errors: the 502, the 503 and the unanswered one, in the second that ended at 6 s */
    assert_int_equal(rate_count(&v->total.rate_errors, 6000, 1), 3);
    free(a);
    free(b);
    free(v);
}

static void test_json_and_prom(void **state)
{
    (void)state;
    struct worker_stats *a = calloc(1, sizeof(*a));
    struct stats_view *v = calloc(1, sizeof(*v));
    record(a, 1, 200, 1000, 5000);
    stats_view_reset(v);
    stats_view_add(v, a);
    stats_view_finish(v);
    json_t *j = stats_route_json(&v->total, 6000);
    assert_int_equal(json_integer_value(json_object_get(j, "requests")), 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "status"), "2xx")), 1);
    assert_true(json_real_value(json_object_get(json_object_get(j, "rate"), "1s")) == 1.0);
    json_t *hist = json_object_get(j, "latency_histogram");
    assert_string_equal(json_string_value(json_object_get(hist, "layout")), HISTOGRAM_LAYOUT);
    assert_int_equal(json_array_size(json_object_get(hist, "buckets")), 1);
    json_decref(j);

    struct buf out;
    struct prom w;
    buf_init(&out, 1 << 20);
    prom_init(&w, &out);
    const char *names[] = {"other", "/v1/links/{code}"};
    assert_int_equal(stats_prom(&w, v, names, 2, "r1"), SL_OK);
    const char *text = buf_str(&out);
    assert_non_null(strstr(text, "# TYPE sluice_requests_total counter\n"));
    assert_non_null(
        strstr(text, "sluice_requests_total{route=\"/v1/links/{code}\",code=\"2xx\"} 1\n"));
    assert_non_null(strstr(text, "sluice_request_duration_seconds_count{route=\"/v1/links/"
                                 "{code}\"} 1\n"));
    assert_non_null(strstr(text, "sluice_in_flight_requests 0\n"));
    assert_null(strstr(text, "route=\"other\"")); /* no traffic, no series */
    buf_release(&out);
    free(a);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_and_merge),
        cmocka_unit_test(test_json_and_prom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
