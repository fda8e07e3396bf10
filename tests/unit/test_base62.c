/* base62: exact encodings, decode errors, overflow at UINT64_MAX, random strings. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "base62.h"
#include "err.h"

static const struct {
    uint64_t v;
    const char *s;
} vectors[] = {
    {0, "0"},
    {1, "1"},
    {9, "9"},
    {10, "A"},
    {35, "Z"},
    {36, "a"},
    {61, "z"},
    {62, "10"},
    {3843, "zz"},
    {3844, "100"},
    {1234567890, "1LY7VK"},
    {4294967296ULL, "4gfFC4"},
    {UINT64_MAX, "LygHa16AHYF"},
};

static void test_encode_decode_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char out[12];
        assert_int_equal(base62_encode_u64(vectors[i].v, out), strlen(vectors[i].s));
        assert_string_equal(out, vectors[i].s);
        uint64_t v = 0;
        assert_int_equal(base62_decode_u64(out, strlen(out), &v), SL_OK);
        assert_true(v == vectors[i].v);
    }
}

static void test_decode_leading_zeros_and_length(void **state)
{
    (void)state;
    uint64_t v = 99;
    assert_int_equal(base62_decode_u64("007", 3, &v), SL_OK);
    assert_int_equal(v, 7);
    /* Only len characters are read. */
    assert_int_equal(base62_decode_u64("10zz", 2, &v), SL_OK);
    assert_int_equal(v, 62);
}

static void test_decode_errors(void **state)
{
    (void)state;
    uint64_t v = 99;
    assert_int_equal(base62_decode_u64("", 0, &v), SL_EPARSE);
    assert_int_equal(base62_decode_u64("ab-c", 4, &v), SL_EPARSE);
    assert_int_equal(base62_decode_u64("ab c", 4, &v), SL_EPARSE);
    assert_int_equal(base62_decode_u64("a\0", 2, &v), SL_EPARSE);
    /* UINT64_MAX + 1 and a 12-digit value overflow. */
    assert_int_equal(base62_decode_u64("LygHa16AHYG", 11, &v), SL_ERANGE);
    assert_int_equal(base62_decode_u64("100000000000", 12, &v), SL_ERANGE);
    /* A bad character wins over overflow: parse errors are checked first. */
    assert_int_equal(base62_decode_u64("zzzzzzzzzzzz!", 13, &v), SL_EPARSE);
    assert_int_equal(v, 99);
}

static void test_is_valid(void **state)
{
    (void)state;
    assert_true(base62_is_valid("0aZ", 3));
    assert_true(base62_is_valid("0aZ!", 3));
    assert_false(base62_is_valid("0aZ!", 4));
    assert_false(base62_is_valid("", 0));
    assert_false(base62_is_valid("_", 1));
    assert_false(base62_is_valid("\xc3\xa9", 2));
}

static void test_random(void **state)
{
    (void)state;
    char a[41], b[41];
    memset(a, 'x', sizeof(a));
    assert_int_equal(base62_random(a, 40), SL_OK);
    assert_int_equal(strlen(a), 40);
    assert_true(base62_is_valid(a, 40));
    assert_int_equal(base62_random(b, 40), SL_OK);
    assert_string_not_equal(a, b);

    char empty[1] = {'x'};
    assert_int_equal(base62_random(empty, 0), SL_OK);
    assert_string_equal(empty, "");
}

/* Coarse uniformity: 62 * 1000 characters, every symbol between 800 and 1200 times
 * (expected 1000, sd ~31; the bounds are > 6 sd, so this never flakes, but a modulo bias
 * of 5/4 on the first 8 symbols, or a dead symbol, would fail it). */
static void test_random_covers_alphabet(void **state)
{
    (void)state;
    static char s[62 * 1000 + 1];
    unsigned counts[128] = {0};
    assert_int_equal(base62_random(s, sizeof(s) - 1), SL_OK);
    for (size_t i = 0; i < sizeof(s) - 1; i++)
        counts[(unsigned char)s[i]]++;
    const char *alpha = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (size_t i = 0; i < 62; i++) {
        assert_in_range(counts[(unsigned char)alpha[i]], 800, 1200);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_decode_vectors),
        cmocka_unit_test(test_decode_leading_zeros_and_length),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_is_valid),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_random_covers_alphabet),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
