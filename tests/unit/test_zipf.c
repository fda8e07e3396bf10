/* Unit tests for shared/zipf.c: exact probabilities and CDF boundaries, weighted tables
 * (zero weights never drawn), the rank distribution of many draws, determinism by seed,
 * and the argument checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "err.h"
#include "prng.h"
#include "zipf.h"

/* The 64-bit draw whose prng_unit is exactly u (u a multiple of 2^-53 in [0, 1)). */
static uint64_t draw_for(double u)
{
    return (uint64_t)(u * 0x1.0p53) << 11;
}

static void test_zipf_probabilities_exact(void **state)
{
    (void)state;
    struct zipf z;
    assert_int_equal(zipf_init(&z, 4, 1.0), SL_OK);
    /* H(4,1) = 25/12: P = 12/25, 6/25, 4/25, 3/25 */
    assert_float_equal(zipf_prob(&z, 0), 12.0 / 25, 1e-15);
    assert_float_equal(zipf_prob(&z, 1), 6.0 / 25, 1e-15);
    assert_float_equal(zipf_prob(&z, 2), 4.0 / 25, 1e-15);
    assert_float_equal(zipf_prob(&z, 3), 3.0 / 25, 1e-15);
    assert_true(zipf_prob(&z, 4) == 0);
    assert_true(z.cdf[3] == 1.0);
    /* inverse CDF: [0, .48) -> 0, [.48, .72) -> 1, [.72, .88) -> 2, [.88, 1) -> 3 */
    assert_int_equal(zipf_sample(&z, 0), 0);
    assert_int_equal(zipf_sample(&z, draw_for(0.25)), 0);
    assert_int_equal(zipf_sample(&z, draw_for(0.5)), 1);
    assert_int_equal(zipf_sample(&z, draw_for(0.75)), 2);
    assert_int_equal(zipf_sample(&z, draw_for(0.875)), 2);
    assert_int_equal(zipf_sample(&z, draw_for(0.9)), 3);
    assert_int_equal(zipf_sample(&z, UINT64_MAX), 3);
    zipf_release(&z);
    assert_null(z.cdf);
}

static void test_s_zero_is_uniform_and_s_two(void **state)
{
    (void)state;
    struct zipf z;
    assert_int_equal(zipf_init(&z, 8, 0.0), SL_OK);
    for (size_t k = 0; k < 8; k++)
        assert_float_equal(zipf_prob(&z, k), 0.125, 1e-15);
    assert_int_equal(zipf_sample(&z, draw_for(0.125)), 1); /* boundaries are exact */
    assert_int_equal(zipf_sample(&z, draw_for(0.5)), 4);
    zipf_release(&z);
    assert_int_equal(zipf_init(&z, 3, 2.0), SL_OK); /* 1, 1/4, 1/9: sum 49/36 */
    assert_float_equal(zipf_prob(&z, 0), 36.0 / 49, 1e-15);
    assert_float_equal(zipf_prob(&z, 2), 4.0 / 49, 1e-15);
    zipf_release(&z);
}

static void test_weights_and_zero_weights(void **state)
{
    (void)state;
    struct zipf z;
    const double w[] = {0, 5, 0, 15, 0};
    assert_int_equal(zipf_init_weights(&z, w, 5), SL_OK);
    assert_float_equal(zipf_prob(&z, 1), 0.25, 1e-15);
    assert_float_equal(zipf_prob(&z, 3), 0.75, 1e-15);
    assert_true(zipf_prob(&z, 0) == 0 && zipf_prob(&z, 2) == 0 && zipf_prob(&z, 4) == 0);
    assert_int_equal(zipf_sample(&z, 0), 1); /* u = 0 skips the zero weight before it */
    assert_int_equal(zipf_sample(&z, draw_for(0.25)), 3);
    assert_int_equal(zipf_sample(&z, UINT64_MAX), 3); /* never the trailing zero */
    for (uint64_t i = 0; i < 10000; i++) {
        size_t k = zipf_sample(&z, prng_at(1, i));
        assert_true(k == 1 || k == 3);
    }
    zipf_release(&z);
}

/* 200000 draws over 100 ranks with s = 1.1: every rank's count within 5 standard
 * deviations of n*P(k), and the head's share as the formula says. */
static void test_rank_distribution(void **state)
{
    (void)state;
    enum { N = 100, DRAWS = 200000 };
    struct zipf z;
    assert_int_equal(zipf_init(&z, N, 1.1), SL_OK);
    unsigned *count = calloc(N, sizeof(*count));
    assert_non_null(count);
    for (uint64_t i = 0; i < DRAWS; i++)
        count[zipf_sample(&z, prng_at(2024, i))]++;
    double h = 0;
    for (int k = 1; k <= N; k++)
        h += pow(k, -1.1);
    for (size_t k = 0; k < N; k++) {
        double p = pow((double)(k + 1), -1.1) / h, mean = DRAWS * p;
        double sd = sqrt(DRAWS * p * (1 - p));
        assert_float_equal(zipf_prob(&z, k), p, 1e-12);
        assert_true(fabs(count[k] - mean) < 5 * sd + 1);
    }
    assert_true(count[0] > count[1] && count[1] > count[9] && count[9] > count[99]);
    free(count);
    zipf_release(&z);
}

static void test_same_seed_same_picks(void **state)
{
    (void)state;
    struct zipf z;
    assert_int_equal(zipf_init(&z, 1000, 1.1), SL_OK);
    size_t a[256], differ = 0;
    for (uint64_t i = 0; i < 256; i++)
        a[i] = zipf_sample(&z, prng_at(99, i));
    for (uint64_t i = 0; i < 256; i++) {
        assert_int_equal(zipf_sample(&z, prng_at(99, i)), a[i]);
        differ += zipf_sample(&z, prng_at(100, i)) != a[i];
    }
    assert_true(differ > 64); /* another seed is another sequence */
    zipf_release(&z);
}

static void test_argument_checks(void **state)
{
    (void)state;
    struct zipf z;
    assert_int_equal(zipf_init(&z, 0, 1.0), SL_EINVAL);
    assert_null(z.cdf);
    assert_int_equal(zipf_init(&z, ZIPF_N_MAX + 1, 1.0), SL_ERANGE);
    assert_int_equal(zipf_init(&z, 10, -0.5), SL_EINVAL);
    assert_int_equal(zipf_init(&z, 10, NAN), SL_EINVAL);
    assert_int_equal(zipf_init(&z, 10, ZIPF_S_MAX + 1), SL_EINVAL);
    const double zero[] = {0, 0}, neg[] = {1, -1}, inf[] = {1, INFINITY};
    assert_int_equal(zipf_init_weights(&z, zero, 2), SL_EINVAL);
    assert_int_equal(zipf_init_weights(&z, neg, 2), SL_EINVAL);
    assert_int_equal(zipf_init_weights(&z, inf, 2), SL_EINVAL);
    assert_null(z.cdf);
    assert_int_equal(zipf_init(&z, 1, 3.0), SL_OK); /* one rank: always 0 */
    assert_int_equal(zipf_sample(&z, UINT64_MAX), 0);
    zipf_release(&z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zipf_probabilities_exact),
        cmocka_unit_test(test_s_zero_is_uniform_and_s_two),
        cmocka_unit_test(test_weights_and_zero_weights),
        cmocka_unit_test(test_rank_distribution),
        cmocka_unit_test(test_same_seed_same_picks),
        cmocka_unit_test(test_argument_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
