/* rate: exact windowed rates over fake time — steady traffic, partial seconds, bursts,
 * long gaps, time going backwards, saturation, merging. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "rate.h"

#define T0_MS UINT64_C(1000000000) /* second 1,000,000: a multiple of RATE_SLOTS */

static struct rate *rate_new(void)
{
    struct rate *r = calloc(1, sizeof(*r)); /* zeroed == empty */
    assert_non_null(r);
    return r;
}

static void assert_rates(const struct rate *r, uint64_t now_ms, double r1, double r10, double r60)
{
    assert_true(rate_per_s(r, now_ms, 1) == r1);
    assert_true(rate_per_s(r, now_ms, 10) == r10);
    assert_true(rate_per_s(r, now_ms, 60) == r60);
}

static void test_empty(void **state)
{
    (void)state;
    struct rate *r = rate_new();
    assert_rates(r, 0, 0, 0, 0);
    assert_rates(r, T0_MS, 0, 0, 0);
    assert_true(rate_total(r) == 0);
    free(r);
}

/* One event every 10 ms for 120 s: exactly 100/s in every window, at any point in a
 * second, from the moment the window holds only complete seconds of traffic. */
static void test_steady_100_per_s(void **state)
{
    (void)state;
    struct rate *r = rate_new();
    for (uint64_t t = 0; t < 120000; t += 10) {
        rate_add(r, T0_MS + t, 1);
        if (t == 5000) /* 5 complete seconds so far, the 6th partial and left out */
            assert_rates(r, T0_MS + t, 100, 50, 500.0 / 60);
        if (t == 60000 || t == 60990 || t == 119990)
            assert_rates(r, T0_MS + t, 100, 100, 100);
    }
    assert_true(rate_total(r) == 12000);
    assert_true(rate_count(r, T0_MS + 120000, 60) == 6000);
    free(r);
}

static void test_partial_second_left_out(void **state)
{
    (void)state;
    struct rate *r = rate_new();
    rate_add(r, T0_MS + 500, 50);
    assert_rates(r, T0_MS + 999, 0, 0, 0); /* same second: not complete yet */
    assert_rates(r, T0_MS + 1000, 50, 5, 50.0 / 60);
    assert_rates(r, T0_MS + 1999, 50, 5, 50.0 / 60);
    assert_rates(r, T0_MS + 2000, 0, 5, 50.0 / 60);
    assert_rates(r, T0_MS + 10999, 0, 5, 50.0 / 60);
    assert_rates(r, T0_MS + 11000, 0, 0, 50.0 / 60);
    assert_rates(r, T0_MS + 61000, 0, 0, 0);
    free(r);
}

static void test_burst(void **state)
{
    (void)state;
    struct rate *r = rate_new();
    for (int i = 0; i < 1000; i++)
        rate_add(r, T0_MS + 200 + (uint64_t)i / 10, 1); /* 1000 within 100 ms */
    rate_add(r, T0_MS + 3000, 30);
    assert_rates(r, T0_MS + 1000, 1000, 100, 1000.0 / 60);
    assert_rates(r, T0_MS + 4000, 30, 103, 1030.0 / 60);
    assert_true(rate_count(r, T0_MS + 4000, 3) == 30);
    assert_true(rate_count(r, T0_MS + 4000, 4) == 1030);
    free(r);
}

/* Five minutes of silence: every slot is stale and reads 0; traffic afterwards reuses the
 * slots without the old seconds leaking into the new windows. */
static void test_gap_of_five_minutes(void **state)
{
    (void)state;
    struct rate *r = rate_new();
    for (uint64_t s = 0; s < 64; s++)
        rate_add(r, T0_MS + s * 1000, 7);
    assert_rates(r, T0_MS + 64000, 7, 7, 7);
    uint64_t later = T0_MS + 64000 + 300000;
    assert_rates(r, later, 0, 0, 0);
    rate_add(r, later, 3); /* second 1,000,364: the slot of second 1,000,044 */
    rate_add(r, later + 2000, 5);
    assert_rates(r, later + 1000, 3, 0.3, 0.05);
    assert_rates(r, later + 3000, 5, 0.8, 8.0 / 60);
    assert_true(rate_total(r) == 64 * 7 + 8);
    free(r);
}

/* A gap that is an exact multiple of the ring size lands on the same slots. */
static void test_gap_multiple_of_ring(void **state)
{
    (void)state;
    struct rate *r = rate_new();
    rate_add(r, T0_MS, 9);
    rate_add(r, T0_MS + RATE_SLOTS * 1000, 1);
    assert_true(rate_count(r, T0_MS + RATE_SLOTS * 1000 + 1000, 60) == 1);
    free(r);
}

static void test_time_backwards(void **state)
{
    (void)state;
    struct rate *r = rate_new();
    rate_add(r, T0_MS + 10000, 4);
    rate_add(r, T0_MS + 5000, 6);  /* backwards: counted in second +10 */
    rate_add(r, T0_MS + 10999, 1); /* still second +10 */
    assert_true(rate_count(r, T0_MS + 11000, 1) == 11);
    assert_true(rate_count(r, T0_MS + 10000, 10) == 0); /* nothing landed in the past */
    rate_add(r, T0_MS + 12000, 2);
    rate_add(r, T0_MS + 11000, 1); /* clamped to +12 */
    assert_rates(r, T0_MS + 13000, 3, 1.4, 14.0 / 60);
    assert_true(rate_total(r) == 14);
    free(r);
}

static void test_window_clamped(void **state)
{
    (void)state;
    struct rate *r = rate_new();
    for (uint64_t s = 0; s < 70; s++)
        rate_add(r, T0_MS + s * 1000, 2);
    uint64_t now = T0_MS + 70000;
    assert_true(rate_per_s(r, now, 0) == 2);
    assert_true(rate_count(r, now, 0) == 2);
    assert_true(rate_count(r, now, 1000) == 120);
    assert_true(rate_per_s(r, now, 1000) == 2);
    assert_true(rate_count(r, now, 30) == 60);
    free(r);
}

/* Near time zero the window is cut at second 0. */
static void test_early_time(void **state)
{
    (void)state;
    struct rate *r = rate_new();
    rate_add(r, 0, 5);
    rate_add(r, 1500, 5);
    assert_true(rate_count(r, 2000, 60) == 10);
    assert_true(rate_per_s(r, 2000, 10) == 1);
    free(r);
}

static void test_saturation(void **state)
{
    (void)state;
    struct rate *r = rate_new();
    rate_add(r, T0_MS, UINT32_MAX - 1);
    rate_add(r, T0_MS, 5);
    rate_add(r, T0_MS, UINT64_C(1) << 40);
    assert_true(rate_count(r, T0_MS + 1000, 1) == UINT32_MAX);
    assert_true(rate_total(r) == (uint64_t)UINT32_MAX + 4 + (UINT64_C(1) << 40));
    free(r);
}

static void test_reset(void **state)
{
    (void)state;
    struct rate *r = rate_new();
    rate_add(r, T0_MS, 5);
    rate_reset(r);
    assert_true(rate_count(r, T0_MS + 1000, 60) == 0 && rate_total(r) == 0);
    rate_add(r, 1000, 1); /* newest second forgotten too: no clamp to T0 */
    assert_true(rate_count(r, 2000, 1) == 1);
    free(r);
}

/* Two workers' rings merged read as the sum, window by window. */
static void test_merge(void **state)
{
    (void)state;
    struct rate *a = rate_new(), *b = rate_new(), *m = rate_new();
    for (uint64_t t = 0; t < 90000; t += 10)
        rate_add(a, T0_MS + t, 1); /* 100/s for 90 s */
    /* Long ago, in a slot (27) b never reuses but a has since (second T0 + 27). */
    rate_add(b, T0_MS - 293000, 1000);
    for (uint64_t t = 30000; t < 90000; t += 250)
        rate_add(b, T0_MS + t, 1); /* 4/s for the last 60 s */
    rate_merge(m, a);
    rate_merge(m, b);
    uint64_t now = T0_MS + 90000;
    for (unsigned w = 1; w <= 60; w++)
        assert_true(rate_count(m, now, w) == rate_count(a, now, w) + rate_count(b, now, w));
    assert_rates(m, now, 104, 104, 104);
    assert_true(rate_total(m) == 9000 + 240 + 1000);
    /* Merging an empty ring changes nothing; the merged ring keeps counting. */
    struct rate *e = rate_new();
    rate_merge(m, e);
    assert_rates(m, now, 104, 104, 104);
    rate_add(m, now, 6);
    assert_true(rate_count(m, now + 1000, 1) == 6);
    free(a), free(b), free(m), free(e);
}

/* The older ring's second is dropped when the other holds a newer one in that slot. */
static void test_merge_newer_wins(void **state)
{
    (void)state;
    struct rate *a = rate_new(), *b = rate_new();
    rate_add(a, T0_MS, 5);
    rate_add(b, T0_MS + RATE_SLOTS * 1000, 7);
    struct rate *m = rate_new();
    rate_merge(m, b);
    rate_merge(m, a);
    assert_true(rate_count(m, T0_MS + RATE_SLOTS * 1000 + 1000, 1) == 7);
    rate_merge(a, b); /* the other way round */
    assert_true(rate_count(a, T0_MS + RATE_SLOTS * 1000 + 1000, 1) == 7);
    free(a), free(b), free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_steady_100_per_s),
        cmocka_unit_test(test_partial_second_left_out),
        cmocka_unit_test(test_burst),
        cmocka_unit_test(test_gap_of_five_minutes),
        cmocka_unit_test(test_gap_multiple_of_ring),
        cmocka_unit_test(test_time_backwards),
        cmocka_unit_test(test_window_clamped),
        cmocka_unit_test(test_early_time),
        cmocka_unit_test(test_saturation),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_merge_newer_wins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
