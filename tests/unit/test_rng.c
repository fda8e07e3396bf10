/* Unit tests for shared/rng.c: range, spread, independence of threads' streams. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "rng.h"

static void test_below_range_and_spread(void **state)
{
    (void)state;
    unsigned counts[10] = {0};
    for (int i = 0; i < 100000; i++) {
        uint64_t v = rng_below(10);
        assert_true(v < 10);
        counts[v]++;
    }
    /* each bucket expects 10000; ±5 % is > 15 standard deviations */
    for (int i = 0; i < 10; i++)
        assert_in_range(counts[i], 9500, 10500);
    assert_int_equal(rng_below(1), 0);
}

static void test_bytes_fill_all_lengths(void **state)
{
    (void)state;
    for (size_t n = 1; n <= 33; n++) {
        unsigned char buf[40];
        memset(buf, 0xAA, sizeof(buf));
        rng_bytes(buf, n);
        for (size_t i = n; i < sizeof(buf); i++)
            assert_int_equal(buf[i], 0xAA); /* nothing written past n */
    }
}

static void *first_value(void *arg)
{
    *(uint64_t *)arg = rng_u64();
    return NULL;
}

static void test_threads_get_distinct_streams(void **state)
{
    (void)state;
    uint64_t a = 0, b = 0;
    pthread_t t1, t2;
    pthread_create(&t1, NULL, first_value, &a);
    pthread_create(&t2, NULL, first_value, &b);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    assert_true(a != b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_below_range_and_spread),
        cmocka_unit_test(test_bytes_fill_all_lengths),
        cmocka_unit_test(test_threads_get_distinct_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
