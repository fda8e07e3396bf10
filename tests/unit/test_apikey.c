/* apikey: generated keys have the documented shape; the hash and id are exact. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "apikey.h"
#include "err.h"

/* A fixed, well-formed key; its SHA-256 was computed independently (Python hashlib). */
#define KEY        "sk_0123456789ABCDEFGHIJabcdefghijklmnopqrst"
#define KEY_SHA256 "49366186925db6508905361cafd39020cee0898f13d6c9ae7048de46319163d6"

static void test_constants(void **state)
{
    (void)state;
    assert_int_equal(APIKEY_LEN, 43);
    assert_int_equal(strlen(APIKEY_PREFIX), APIKEY_PREFIX_LEN);
    assert_int_equal(strlen(KEY), APIKEY_LEN);
}

static void test_generate(void **state)
{
    (void)state;
    char a[APIKEY_LEN + 1], b[APIKEY_LEN + 1];
    assert_int_equal(apikey_generate(a), SL_OK);
    assert_int_equal(apikey_generate(b), SL_OK);
    assert_int_equal(strlen(a), APIKEY_LEN);
    assert_memory_equal(a, "sk_", 3);
    assert_true(apikey_looks_valid(a));
    assert_true(apikey_looks_valid(b));
    assert_string_not_equal(a, b);
}

static void test_looks_valid(void **state)
{
    (void)state;
    assert_true(apikey_looks_valid(KEY));
    assert_false(apikey_looks_valid(NULL));
    assert_false(apikey_looks_valid(""));
    assert_false(apikey_looks_valid("sk_"));
    /* one short, one long */
    assert_false(apikey_looks_valid("sk_0123456789ABCDEFGHIJabcdefghijklmnopqr"));
    assert_false(apikey_looks_valid(KEY "u"));
    /* wrong prefix, same length */
    assert_false(apikey_looks_valid("pk_0123456789ABCDEFGHIJabcdefghijklmnopqrst"));
    assert_false(apikey_looks_valid("SK_0123456789ABCDEFGHIJabcdefghijklmnopqrst"));
    /* characters outside base62 */
    assert_false(apikey_looks_valid("sk_0123456789ABCDEFGHIJabcdefghijklmnopqrs-"));
    assert_false(apikey_looks_valid("sk_0123456789ABCDEFGHIJ_bcdefghijklmnopqrst"));
    assert_false(apikey_looks_valid("sk_0123456789ABCDEFGHIJ bcdefghijklmnopqrst"));
}

static void test_hash_and_id(void **state)
{
    (void)state;
    char hex[APIKEY_HASH_HEX_LEN + 1];
    char id[APIKEY_ID_MAX];
    apikey_hash(KEY, hex);
    assert_string_equal(hex, KEY_SHA256);
    apikey_id(hex, id);
    assert_string_equal(id, "key_49366186925d");
    /* SHA-256("") — the hash is of exactly the string given. */
    apikey_hash("", hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constants),
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_looks_valid),
        cmocka_unit_test(test_hash_and_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
