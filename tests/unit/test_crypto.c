/* crypto: digests against FIPS 180-4 examples, HMAC against RFC 4231, constant-time
 * equality. Expected values are the published ones, written out in hex. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "encode.h"
#include "err.h"

#define ABC448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

static void sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t d[32];
    crypto_sha256(data, len, d);
    hex_encode(d, sizeof(d), out);
}

static void sha1_hex(const void *data, size_t len, char out[41])
{
    uint8_t d[20];
    crypto_sha1(data, len, d);
    hex_encode(d, sizeof(d), out);
}

static void hmac_hex(const void *key, size_t keylen, const void *data, size_t len, char out[65])
{
    uint8_t d[32];
    crypto_hmac_sha256(key, keylen, data, len, d);
    hex_encode(d, sizeof(d), out);
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    char hex[65];
    sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex(NULL, 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha256_hex(ABC448, strlen(ABC448), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_million_a(void **state)
{
    (void)state;
    size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    char hex[65];
    sha256_hex(a, n, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

static void test_sha1_vectors(void **state)
{
    (void)state;
    char hex[41];
    sha1_hex("abc", 3, hex);
    assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    sha1_hex("", 0, hex);
    assert_string_equal(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    sha1_hex(ABC448, strlen(ABC448), hex);
    assert_string_equal(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

/* RFC 4231 §4.2-§4.4 */
static void test_hmac_rfc4231_short_keys(void **state)
{
    (void)state;
    char hex[65];
    uint8_t key[25], data[50];

    memset(key, 0x0b, 20);
    hmac_hex(key, 20, "Hi There", 8, hex);
    assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    hmac_hex("Jefe", 4, "what do ya want for nothing?", 28, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    memset(key, 0xaa, 20);
    memset(data, 0xdd, 50);
    hmac_hex(key, 20, data, 50, hex);
    assert_string_equal(hex, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");

    for (int i = 0; i < 25; i++)
        key[i] = (uint8_t)(i + 1);
    memset(data, 0xcd, 50);
    hmac_hex(key, 25, data, 50, hex);
    assert_string_equal(hex, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
}

/* RFC 4231 §4.6 (truncated to 128 bits), §4.7, §4.8: keys longer than the block. */
static void test_hmac_rfc4231_truncation_and_long_keys(void **state)
{
    (void)state;
    char hex[65];
    uint8_t key[131];

    memset(key, 0x0c, 20);
    hmac_hex(key, 20, "Test With Truncation", 20, hex);
    hex[32] = '\0';
    assert_string_equal(hex, "a3b6167473100ee06e0c796c2955552b");

    memset(key, 0xaa, sizeof(key));
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    hmac_hex(key, sizeof(key), d6, strlen(d6), hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

    const char *d7 = "This is a test using a larger than block-size key and a larger than "
                     "block-size data. The key needs to be hashed before being used by the "
                     "HMAC algorithm.";
    hmac_hex(key, sizeof(key), d7, strlen(d7), hex);
    assert_string_equal(hex, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

/* A 64-byte key is used as is; a 65-byte one is hashed: both must match the definition. */
static void test_hmac_block_boundary_key(void **state)
{
    (void)state;
    uint8_t key[65], hashed[32], a[32], b[32];
    memset(key, 0x5a, sizeof(key));
    crypto_sha256(key, 65, hashed);
    crypto_hmac_sha256(key, 65, "x", 1, a);
    crypto_hmac_sha256(hashed, 32, "x", 1, b);
    assert_memory_equal(a, b, 32);
    crypto_hmac_sha256(key, 64, "x", 1, a);
    assert_memory_not_equal(a, b, 32);
}

static void test_hmac_empty_key(void **state)
{
    (void)state;
    char hex[65];
    /* HMAC-SHA256(key="", data="") — a widely published value. */
    hmac_hex(NULL, 0, "", 0, hex);
    assert_string_equal(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

static void test_equal(void **state)
{
    (void)state;
    assert_true(crypto_equal("abcdef", "abcdef", 6));
    assert_false(crypto_equal("abcdef", "abcdeF", 6));
    assert_false(crypto_equal("xbcdef", "abcdef", 6));
    assert_true(crypto_equal("abc", "abd", 2));
    assert_true(crypto_equal(NULL, NULL, 0));
}

static void test_random_bytes(void **state)
{
    (void)state;
    uint8_t a[32] = {0}, b[32] = {0}, zero[32] = {0};
    assert_int_equal(crypto_random_bytes(a, sizeof(a)), SL_OK);
    assert_int_equal(crypto_random_bytes(b, sizeof(b)), SL_OK);
    /* 2^-256 chance of a false failure. */
    assert_memory_not_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_int_equal(crypto_random_bytes(a, 0), SL_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_million_a),
        cmocka_unit_test(test_sha1_vectors),
        cmocka_unit_test(test_hmac_rfc4231_short_keys),
        cmocka_unit_test(test_hmac_rfc4231_truncation_and_long_keys),
        cmocka_unit_test(test_hmac_block_boundary_key),
        cmocka_unit_test(test_hmac_empty_key),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_random_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
