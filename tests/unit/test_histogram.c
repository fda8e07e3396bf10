/* histogram: exact bucket geometry, nearest-rank percentiles within the documented bound,
 * merge == record-all, subtract, sparse round trip, Prometheus le mapping. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "histogram.h"

#define NRAND 20000

/* Deterministic values spread over the whole range, overflow included. */
static uint64_t next_value(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    unsigned bits = (unsigned)(*s >> 59); /* 0..31: magnitude */
    return (*s >> 16) & ((UINT64_C(1) << bits) - 1);
}

static struct histogram *hist_new(void)
{
    struct histogram *h = calloc(1, sizeof(*h)); /* zeroed == empty */
    assert_non_null(h);
    return h;
}

static void assert_same(const struct histogram *a, const struct histogram *b)
{
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++)
        assert_true(histogram_bucket_count(a, i) == histogram_bucket_count(b, i));
    assert_true(histogram_count(a) == histogram_count(b));
    assert_true(histogram_sum(a) == histogram_sum(b));
    assert_true(histogram_min(a) == histogram_min(b));
    assert_true(histogram_max(a) == histogram_max(b));
}

static void check_bucket(uint64_t v, size_t idx, uint64_t lower, uint64_t upper)
{
    assert_int_equal(histogram_index(v), idx);
    assert_true(histogram_bucket_lower(idx) == lower);
    assert_true(histogram_bucket_upper(idx) == upper);
}

static void test_bucket_boundaries(void **state)
{
    (void)state;
    assert_int_equal(HISTOGRAM_BUCKETS, 737);
    check_bucket(0, 0, 0, 1);
    check_bucket(1, 1, 1, 2);
    check_bucket(15, 15, 15, 16);
    check_bucket(16, 16, 16, 17);
    check_bucket(17, 17, 17, 18);
    check_bucket(63, 63, 63, 64);
    check_bucket(64, 64, 64, 66);
    check_bucket(65, 64, 64, 66);
    check_bucket(1000, 190, 992, 1008);
    check_bucket(1000000, 509, 999424, 1015808);
    check_bucket(HISTOGRAM_OVERFLOW - 1, 735, 132120576, HISTOGRAM_OVERFLOW);
    check_bucket(HISTOGRAM_OVERFLOW, 736, HISTOGRAM_OVERFLOW, UINT64_MAX);
    check_bucket(UINT64_MAX, 736, HISTOGRAM_OVERFLOW, UINT64_MAX);
}

/* Every bucket: contiguous, maps back to itself, width within the error bound. */
static void test_bucket_geometry_all(void **state)
{
    (void)state;
    assert_true(histogram_bucket_lower(0) == 0);
    for (size_t i = 0; i + 1 < HISTOGRAM_BUCKETS; i++) {
        uint64_t lo = histogram_bucket_lower(i), up = histogram_bucket_upper(i);
        assert_true(lo < up);
        assert_true(histogram_bucket_lower(i + 1) == up);
        assert_int_equal(histogram_index(lo), i);
        assert_int_equal(histogram_index(up - 1), i);
        if (lo < 64)
            assert_true(up - lo == 1);
        else
            assert_true((up - lo) * 32 <= lo);
    }
}

static void test_empty(void **state)
{
    (void)state;
    struct histogram *h = hist_new();
    assert_true(histogram_count(h) == 0);
    assert_true(histogram_sum(h) == 0);
    assert_true(histogram_min(h) == 0);
    assert_true(histogram_max(h) == 0);
    assert_true(histogram_percentile(h, 50) == 0);
    assert_true(histogram_percentile(h, 100) == 0);
    size_t cur = 0;
    struct histogram_bucket b;
    assert_false(histogram_next_bucket(h, &cur, &b));
    histogram_record(h, 7);
    histogram_reset(h);
    assert_true(histogram_count(h) == 0 && histogram_min(h) == 0 && histogram_max(h) == 0);
    free(h);
}

static void test_single_value(void **state)
{
    (void)state;
    struct histogram *h = hist_new();
    histogram_record(h, 1000);
    assert_true(histogram_count(h) == 1);
    assert_true(histogram_sum(h) == 1000);
    assert_true(histogram_min(h) == 1000 && histogram_max(h) == 1000);
    /* The bucket [992, 1008) is clamped to the recorded maximum. */
    assert_true(histogram_percentile(h, 0) == 1000);
    assert_true(histogram_percentile(h, 50) == 1000);
    assert_true(histogram_percentile(h, 99.9) == 1000);
    assert_true(histogram_percentile(h, 100) == 1000);
    histogram_reset(h);
    histogram_record(h, 0);
    assert_true(histogram_count(h) == 1 && histogram_min(h) == 0 && histogram_max(h) == 0);
    assert_true(histogram_percentile(h, 99) == 0);
    free(h);
}

static void test_uniform_percentiles(void **state)
{
    (void)state;
    struct histogram *h = hist_new();
    for (uint64_t v = 1; v <= 10000; v++)
        histogram_record(h, v);
    assert_true(histogram_count(h) == 10000);
    assert_true(histogram_sum(h) == 50005000);
    assert_true(histogram_min(h) == 1 && histogram_max(h) == 10000);
    /* rank 5000 → 5000 ∈ [4992, 5120) → 5119: within 1/32 of 5000, never below. */
    uint64_t p50 = histogram_percentile(h, 50);
    assert_true(p50 == 5119);
    assert_true(p50 >= 5000 && (p50 - 5000) * 32 < 5000);
    assert_true(histogram_percentile(h, 90) == 9215);    /* 9000 ∈ [8960, 9216) */
    assert_true(histogram_percentile(h, 99) == 9983);    /* 9900 ∈ [9728, 9984) */
    assert_true(histogram_percentile(h, 99.9) == 10000); /* 9990 ∈ [9984, 10240) → max */
    assert_true(histogram_percentile(h, 100) == 10000);
    assert_true(histogram_percentile(h, 0) == 1);
    assert_true(histogram_percentile(h, -5) == 1);
    assert_true(histogram_percentile(h, 250) == 10000);
    assert_true(histogram_percentile(h, 0.01) == 1); /* rank 1 */
    free(h);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The documented bound against exact nearest-rank percentiles of random data. */
static void test_percentile_error_bound(void **state)
{
    (void)state;
    struct histogram *h = hist_new();
    uint64_t *v = malloc(NRAND * sizeof(*v));
    assert_non_null(v);
    uint64_t s = 42;
    for (size_t i = 0; i < NRAND; i++) {
        v[i] = next_value(&s) % HISTOGRAM_OVERFLOW;
        histogram_record(h, v[i]);
    }
    qsort(v, NRAND, sizeof(*v), cmp_u64);
    static const double ps[] = {0, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100};
    for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
        uint64_t ppm = (uint64_t)llround(ps[k] * 10000);
        uint64_t rank = (ppm * NRAND + 999999) / 1000000; /* nearest rank, 0 → 1 */
        uint64_t V = v[rank ? rank - 1 : 0], P = histogram_percentile(h, ps[k]);
        assert_true(V <= P);
        if (V < 64)
            assert_true(P == V);
        else
            assert_true((P - V) * 32 < V);
    }
    assert_true(histogram_percentile(h, 100) == v[NRAND - 1]);
    free(v);
    free(h);
}

static void test_small_values_exact(void **state)
{
    (void)state;
    struct histogram *h = hist_new();
    for (uint64_t v = 0; v < 64; v++)
        histogram_record(h, v);
    for (uint64_t r = 1; r <= 64; r++) /* p = r/64: rank r → value r-1 */
        assert_true(histogram_percentile(h, (double)r * 100.0 / 64.0) == r - 1);
    free(h);
}

static void test_overflow_bucket(void **state)
{
    (void)state;
    struct histogram *h = hist_new();
    histogram_record(h, 10);
    histogram_record(h, 500000000); /* 500 s */
    assert_true(histogram_bucket_count(h, HISTOGRAM_BUCKETS - 1) == 1);
    assert_true(histogram_percentile(h, 50) == 10);
    assert_true(histogram_percentile(h, 99) == 500000000);
    assert_true(histogram_max(h) == 500000000);
    free(h);
}

static void test_merge_equals_record_all(void **state)
{
    (void)state;
    struct histogram *a = hist_new(), *b = hist_new(), *all = hist_new(), *m = hist_new();
    uint64_t s = 7;
    for (int i = 0; i < NRAND; i++) {
        uint64_t v = next_value(&s);
        if (i == 100)
            v = HISTOGRAM_OVERFLOW + 5;
        histogram_record(i % 3 ? a : b, v);
        histogram_record(all, v);
    }
    histogram_merge(m, a);
    histogram_merge(m, b);
    assert_same(m, all);
    /* Merging an empty histogram changes nothing; copy is a faithful snapshot. */
    struct histogram *e = hist_new();
    histogram_merge(m, e);
    assert_same(m, all);
    histogram_copy(e, all);
    assert_same(e, all);
    free(a), free(b), free(all), free(m), free(e);
}

static void test_subtract(void **state)
{
    (void)state;
    struct histogram *cum = hist_new(), *before = hist_new(), *win = hist_new();
    for (uint64_t v = 100; v < 200; v++)
        histogram_record(cum, v);
    histogram_copy(before, cum);
    for (uint64_t v = 1000; v <= 3000; v += 10) { /* the window: 1000..3000 */
        histogram_record(cum, v);
        histogram_record(win, v);
    }
    struct histogram *older = hist_new();
    assert_int_equal(histogram_subtract(older, cum), SL_ERANGE); /* wrong way round */
    assert_true(histogram_count(older) == 0);

    assert_int_equal(histogram_subtract(cum, before), SL_OK);
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++)
        assert_true(histogram_bucket_count(cum, i) == histogram_bucket_count(win, i));
    assert_true(histogram_count(cum) == 201);
    assert_true(histogram_sum(cum) == histogram_sum(win));
    /* min: max(100, lower of [992,1008)) = 992; max: min(3000, last of [2944,3008)). */
    assert_true(histogram_min(cum) == 992);
    assert_true(histogram_max(cum) == 3000);
    assert_true(histogram_percentile(cum, 50) == histogram_percentile(win, 50));

    /* Subtracting an empty snapshot is exact; subtracting itself empties. */
    assert_int_equal(histogram_subtract(win, older), SL_OK);
    assert_true(histogram_min(win) == 1000 && histogram_max(win) == 3000);
    histogram_copy(older, win);
    assert_int_equal(histogram_subtract(win, older), SL_OK);
    assert_true(histogram_count(win) == 0 && histogram_sum(win) == 0);
    assert_true(histogram_min(win) == 0 && histogram_max(win) == 0);
    free(cum), free(before), free(win), free(older);
}

/* Ship as [[index, count], ...] + totals, rebuild, compare. */
static void test_sparse_round_trip(void **state)
{
    (void)state;
    struct histogram *h = hist_new(), *r = hist_new();
    uint64_t s = 99;
    for (int i = 0; i < 5000; i++)
        histogram_record(h, next_value(&s));
    uint64_t pairs[HISTOGRAM_BUCKETS][2];
    size_t n = 0, cur = 0;
    struct histogram_bucket b;
    while (histogram_next_bucket(h, &cur, &b)) {
        assert_true(b.lower == histogram_bucket_lower(b.index));
        assert_true(b.upper == histogram_bucket_upper(b.index));
        pairs[n][0] = b.index;
        pairs[n][1] = b.count;
        n++;
    }
    assert_false(histogram_next_bucket(h, &cur, &b)); /* stays exhausted */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(histogram_add_bucket(r, (size_t)pairs[i][0], pairs[i][1]), SL_OK);
    histogram_merge_totals(r, histogram_count(h), histogram_sum(h), histogram_min(h),
                           histogram_max(h));
    assert_same(r, h);
    /* An empty shipped histogram leaves min/max alone. */
    histogram_merge_totals(r, 0, 0, 0, 0);
    assert_same(r, h);

    assert_int_equal(histogram_add_bucket(r, HISTOGRAM_BUCKETS, 1), SL_ERANGE);
    assert_int_equal(histogram_add_bucket(r, 3, UINT64_MAX), SL_ERANGE);
    assert_int_equal(histogram_add_bucket(r, 3, 0), SL_OK);
    assert_same(r, h);
    free(h), free(r);
}

static void test_next_bucket_order(void **state)
{
    (void)state;
    struct histogram *h = hist_new();
    histogram_record(h, 1000);
    histogram_record(h, 1);
    histogram_record(h, 1007);
    histogram_record(h, UINT64_MAX);
    size_t cur = 0;
    struct histogram_bucket b;
    assert_true(histogram_next_bucket(h, &cur, &b));
    assert_true(b.index == 1 && b.lower == 1 && b.upper == 2 && b.count == 1);
    assert_true(histogram_next_bucket(h, &cur, &b));
    assert_true(b.index == 190 && b.lower == 992 && b.upper == 1008 && b.count == 2);
    assert_true(histogram_next_bucket(h, &cur, &b));
    assert_true(b.index == 736 && b.lower == HISTOGRAM_OVERFLOW && b.upper == UINT64_MAX);
    assert_false(histogram_next_bucket(h, &cur, &b));
    free(h);
}

static void test_le_counts(void **state)
{
    (void)state;
    struct histogram *h = hist_new();
    /* 63 and 1007 are exact (64 and 1008 are bucket boundaries); 500 and 1000 straddle
     * [496, 504) and [992, 1008). */
    static const uint64_t vals[] = {
        10, 63, 64, 495, 496, 500, 991, 992, 1000, 1007, 1008, 5000000, HISTOGRAM_OVERFLOW};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        histogram_record(h, vals[i]);
    const uint64_t le[] = {63, 500, 1000, 1007, 10000000};
    uint64_t out[6];
    assert_int_equal(histogram_le_counts(h, le, 5, out), SL_OK);
    assert_true(out[0] == 2);  /* 10, 63 */
    assert_true(out[1] == 4);  /* + 64, 495; 496 and 500 wait for the next bound */
    assert_true(out[2] == 7);  /* + 496, 500, 991; 992..1007 wait */
    assert_true(out[3] == 10); /* + 992, 1000, 1007: exact */
    assert_true(out[4] == 12); /* + 1008, 5 s */
    assert_true(out[5] == 13); /* +Inf == count */

    assert_int_equal(histogram_le_counts(h, le, 0, out), SL_OK);
    assert_true(out[0] == 13);
    const uint64_t bad[] = {10, 10};
    assert_int_equal(histogram_le_counts(h, bad, 2, out), SL_EINVAL);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_boundaries),
        cmocka_unit_test(test_bucket_geometry_all),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_single_value),
        cmocka_unit_test(test_uniform_percentiles),
        cmocka_unit_test(test_percentile_error_bound),
        cmocka_unit_test(test_small_values_exact),
        cmocka_unit_test(test_overflow_bucket),
        cmocka_unit_test(test_merge_equals_record_all),
        cmocka_unit_test(test_subtract),
        cmocka_unit_test(test_sparse_round_trip),
        cmocka_unit_test(test_next_bucket_order),
        cmocka_unit_test(test_le_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
