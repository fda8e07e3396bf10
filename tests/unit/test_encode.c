/* encode: RFC 4648 §10 test vectors, the url alphabet, and strict rejection. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "encode.h"
#include "err.h"

static void test_hex(void **state)
{
    (void)state;
    const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[13];
    hex_encode(in, sizeof(in), out);
    assert_string_equal(out, "00017f80abff");
    hex_encode(in, 0, out);
    assert_string_equal(out, "");

    uint8_t dec[8];
    size_t n = 99;
    assert_int_equal(hex_decode("00017F80abFF", 12, dec, sizeof(dec), &n), SL_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(dec, in, 6);
    assert_int_equal(hex_decode("", 0, dec, 0, &n), SL_OK);
    assert_int_equal(n, 0);
}

static void test_hex_rejects(void **state)
{
    (void)state;
    uint8_t dec[8];
    size_t n = 99;
    assert_int_equal(hex_decode("abc", 3, dec, sizeof(dec), &n), SL_EPARSE);
    assert_int_equal(hex_decode("zz", 2, dec, sizeof(dec), &n), SL_EPARSE);
    assert_int_equal(hex_decode("0g", 2, dec, sizeof(dec), &n), SL_EPARSE);
    assert_int_equal(hex_decode(" 0", 2, dec, sizeof(dec), &n), SL_EPARSE);
    assert_int_equal(hex_decode("001122", 6, dec, 2, &n), SL_ETOOBIG);
    assert_int_equal(n, 99);
}

/* RFC 4648 §10 */
static const struct {
    const char *plain, *std, *url;
} rfc4648[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void test_base64_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const char *p = rfc4648[i].plain;
        size_t plen = strlen(p);
        char enc[16];
        uint8_t dec[16];
        size_t n = 99;

        assert_int_equal(base64_encoded_len(plen, false), strlen(rfc4648[i].std));
        assert_int_equal(base64_encode((const uint8_t *)p, plen, enc, false),
                         strlen(rfc4648[i].std));
        assert_string_equal(enc, rfc4648[i].std);
        assert_int_equal(base64_decode(enc, strlen(enc), dec, sizeof(dec), &n, false), SL_OK);
        assert_int_equal(n, plen);
        assert_memory_equal(dec, p, plen);

        assert_int_equal(base64_encoded_len(plen, true), strlen(rfc4648[i].url));
        assert_int_equal(base64_encode((const uint8_t *)p, plen, enc, true),
                         strlen(rfc4648[i].url));
        assert_string_equal(enc, rfc4648[i].url);
        n = 99;
        assert_int_equal(base64_decode(enc, strlen(enc), dec, sizeof(dec), &n, true), SL_OK);
        assert_int_equal(n, plen);
        assert_memory_equal(dec, p, plen);
    }
}

/* Bytes whose encoding uses values 62 and 63: '+' '/' in §4, '-' '_' in §5. */
static void test_base64_alphabets(void **state)
{
    (void)state;
    const uint8_t in[] = {0xfb, 0xff, 0xbf, 0xfe};
    char enc[16];
    uint8_t dec[8];
    size_t n;

    base64_encode(in, sizeof(in), enc, false);
    assert_string_equal(enc, "+/+//g==");
    base64_encode(in, sizeof(in), enc, true);
    assert_string_equal(enc, "-_-__g");

    assert_int_equal(base64_decode("-_-__g", 6, dec, sizeof(dec), &n, true), SL_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(dec, in, 4);
    /* Each alphabet refuses the other's characters. */
    assert_int_equal(base64_decode("+/+//g", 6, dec, sizeof(dec), &n, true), SL_EPARSE);
    assert_int_equal(base64_decode("-_-__g==", 8, dec, sizeof(dec), &n, false), SL_EPARSE);
}

static void test_base64_all_bytes_round_trip(void **state)
{
    (void)state;
    uint8_t in[256], dec[256];
    char enc[400];
    for (int i = 0; i < 256; i++)
        in[i] = (uint8_t)i;
    for (size_t len = 0; len <= sizeof(in); len++) {
        for (int url = 0; url <= 1; url++) {
            size_t elen = base64_encode(in, len, enc, url);
            assert_int_equal(elen, base64_encoded_len(len, url));
            size_t n = 0;
            assert_int_equal(base64_decode(enc, elen, dec, len, &n, url), SL_OK);
            assert_int_equal(n, len);
            assert_memory_equal(dec, in, len);
        }
    }
}

static void test_base64_rejects_std(void **state)
{
    (void)state;
    uint8_t dec[16];
    size_t n = 99;
    const char *bad[] = {
        "Zg",       /* padding required */
        "Zg=",      /* short padding */
        "Zg===",    /* too much padding */
        "Z===",     /* one data char cannot make a byte */
        "====",     /* all padding */
        "Zm=v",     /* padding in the middle */
        "Zg==Zg==", /* padding before more data */
        "Zm9v\n",   /* whitespace */
        "Zm 9",     /* whitespace */
        "Zh==",     /* non-canonical: trailing bits set ("f" is Zg==) */
        "Zm9=",     /* non-canonical: "fo" is Zm8= */
        "Zm9*",     /* not in the alphabet */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(base64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec), &n, false),
                         SL_EPARSE);
    assert_int_equal(n, 99);
    /* A NUL inside the given length is a bad character, not a terminator. */
    assert_int_equal(base64_decode("Zm\0v", 4, dec, sizeof(dec), &n, false), SL_EPARSE);
}

static void test_base64_rejects_url(void **state)
{
    (void)state;
    uint8_t dec[16];
    size_t n = 99;
    const char *bad[] = {
        "Zg==",  /* no padding in the url form */
        "Zm8=",  /* no padding in the url form */
        "Z",     /* one char left over */
        "Zm9vY", /* one char left over */
        "Zh",    /* non-canonical trailing bits */
        "Zm9",   /* non-canonical trailing bits */
        "Zm9v.", /* not in the alphabet */
        "Zm9v+", /* standard alphabet */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(base64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec), &n, true),
                         SL_EPARSE);
    assert_int_equal(n, 99);
}

static void test_base64_capacity(void **state)
{
    (void)state;
    uint8_t dec[6];
    size_t n = 99;
    assert_int_equal(base64_decode("Zm9vYmFy", 8, dec, 5, &n, false), SL_ETOOBIG);
    assert_int_equal(base64_decode("Zm9vYmE", 7, dec, 4, &n, true), SL_ETOOBIG);
    assert_int_equal(n, 99);
    assert_int_equal(base64_decode("Zm9vYmE", 7, dec, 5, &n, true), SL_OK);
    assert_int_equal(n, 5);
    assert_true(base64_decoded_max(8) >= 6);
    assert_true(base64_decoded_max(7) >= 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_hex_rejects),
        cmocka_unit_test(test_base64_rfc4648_vectors),
        cmocka_unit_test(test_base64_alphabets),
        cmocka_unit_test(test_base64_all_bytes_round_trip),
        cmocka_unit_test(test_base64_rejects_std),
        cmocka_unit_test(test_base64_rejects_url),
        cmocka_unit_test(test_base64_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
