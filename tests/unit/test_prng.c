/* Unit tests for shared/prng.c: the splitmix64 reference values, random access equals the
 * sequence, the unit interval. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "prng.h"

static void test_reference_values(void **state)
{
    (void)state;
    /* splitmix64 seeded with 0 and 42 (the reference C code's first three outputs) */
    assert_true(prng_at(0, 0) == UINT64_C(0xe220a8397b1dcdaf));
    assert_true(prng_at(0, 1) == UINT64_C(0x6e789e6aa1b965f4));
    assert_true(prng_at(0, 2) == UINT64_C(0x06c45d188009454f));
    assert_true(prng_at(42, 0) == UINT64_C(0xbdd732262feb6e95));
    assert_true(prng_at(42, 1) == UINT64_C(0x28efe333b266f103));
    assert_true(prng_at(42, 2) == UINT64_C(0x47526757130f9f52));
}

static void test_positions_are_independent_of_order(void **state)
{
    (void)state;
    uint64_t forward[64];
    for (uint64_t n = 0; n < 64; n++)
        forward[n] = prng_at(7, n);
    for (uint64_t n = 64; n-- > 0;)
        assert_true(prng_at(7, n) == forward[n]);
    assert_true(prng_at(8, 0) != forward[0]); /* another seed, another stream */
}

static void test_unit_interval(void **state)
{
    (void)state;
    assert_true(prng_unit(0) == 0.0);
    assert_true(prng_unit(UINT64_MAX) < 1.0);
    assert_true(prng_unit(UINT64_MAX) == 1.0 - 0x1.0p-53);
    assert_true(prng_unit(UINT64_C(1) << 63) == 0.5);
    assert_true(prng_unit((UINT64_C(1) << 11) - 1) == 0.0); /* the low 11 bits are dropped */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_values),
        cmocka_unit_test(test_positions_are_independent_of_order),
        cmocka_unit_test(test_unit_interval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
