/*
 * test_err — the error table: every code distinct and negative, and the name/message
 * lookups for known, zero and unknown codes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "err.h"

static const int all_codes[] = {
#define CODE(name, msg) SL_E##name,
    SL_ERR_MAP(CODE)
#undef CODE
};
#define NCODES (sizeof(all_codes) / sizeof(all_codes[0]))

static void test_codes_negative_and_distinct(void **state)
{
    (void)state;
    /* The enum counts up from SL_ERR_FIRST_: one value per row, none skipped. */
    assert_int_equal(NCODES, SL_ERR_LAST_ - SL_ERR_FIRST_ - 1);
    assert_true(SL_ERR_LAST_ < 0);
    for (size_t i = 0; i < NCODES; i++) {
        assert_true(all_codes[i] < 0);
        for (size_t j = i + 1; j < NCODES; j++)
            assert_int_not_equal(all_codes[i], all_codes[j]);
    }
    assert_int_equal(SL_OK, 0);
}

static void test_names_and_messages_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        assert_string_not_equal(err_str(all_codes[i]), "unknown error");
        assert_string_not_equal(err_name(all_codes[i]), "SL_E?");
        for (size_t j = i + 1; j < NCODES; j++) {
            assert_string_not_equal(err_name(all_codes[i]), err_name(all_codes[j]));
            assert_string_not_equal(err_str(all_codes[i]), err_str(all_codes[j]));
        }
    }
}

static void test_known_codes(void **state)
{
    (void)state;
    assert_string_equal(err_str(SL_ENOMEM), "out of memory");
    assert_string_equal(err_name(SL_ENOMEM), "SL_ENOMEM");
    assert_string_equal(err_str(SL_ETOOBIG), "too large");
    assert_string_equal(err_name(SL_ETOOBIG), "SL_ETOOBIG");
    assert_string_equal(err_str(SL_EPARSE), "malformed input");
    assert_string_equal(err_name(SL_EPARSE), "SL_EPARSE");
    assert_string_equal(err_str(SL_EJWT_NOT_YET), "token is not valid yet");
    assert_string_equal(err_name(SL_EJWT_NOT_YET), "SL_EJWT_NOT_YET");
    assert_string_equal(err_str(SL_ECRYPTO), "cryptography failure");
    assert_string_equal(err_name(SL_ECRYPTO), "SL_ECRYPTO");
}

static void test_every_name_has_prefix(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++)
        assert_int_equal(strncmp(err_name(all_codes[i]), "SL_E", 4), 0);
}

static void test_zero(void **state)
{
    (void)state;
    assert_string_equal(err_str(0), "ok");
    assert_string_equal(err_name(0), "SL_OK");
}

static void test_unknown(void **state)
{
    (void)state;
    static const int unknown[] = {1, 42, -1, -2, -1000, SL_ERR_LAST_, -5000, INT32_MIN};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_string_equal(err_str(unknown[i]), "unknown error");
        assert_string_equal(err_name(unknown[i]), "SL_E?");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_negative_and_distinct),
        cmocka_unit_test(test_names_and_messages_distinct),
        cmocka_unit_test(test_known_codes),
        cmocka_unit_test(test_every_name_has_prefix),
        cmocka_unit_test(test_zero),
        cmocka_unit_test(test_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
