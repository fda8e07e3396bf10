/* webhook: Standard Webhooks signing and verification against known vectors, rotation,
 * tampering, the time window at its edges, malformed headers, secrets, and the SSRF checks
 * (address classification table, URL parsing, allow-lists).
 *
 * Where the vectors come from:
 *  - SPEC_*: the Standard Webhooks reference libraries' signing test
 *    (github.com/standard-webhooks/standard-webhooks, libraries/go/webhook_test.go,
 *    TestWebhookSign), re-checked with Python's hmac/hashlib/base64.
 *  - K32_*, K64_*: computed independently with Python 3 (hmac.new(key, msg,
 *    hashlib.sha256), base64.b64encode), keys bytes(range(32)) and bytes(range(64, 128));
 *    the K32 messages use the id, timestamp and minified body of the spec's example. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "encode.h"
#include "err.h"
#include "webhook.h"

#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID     "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS     1614265330
#define SPEC_TS_S   "1614265330"
#define SPEC_BODY   "{\"test\": 2432232314}"
#define SPEC_SIG    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

#define K32_SECRET "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define K32_ID     "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
#define K32_TS     1674087231
#define K32_BODY                                                                                   \
    "{\"type\":\"contact.created\",\"timestamp\":\"2022-11-03T20:26:10.344522Z\",\"data\":{"       \
    "\"id\":\"1f81eb52-5198-4599-803e-771906343485\"}}"
#define K32_SIG       "v1,4PMU5Dl90B4kgwxDpwuMZ/cnZ5ztf+Y+kviYQD66rJg="
#define K32_SIG_EMPTY "v1,ET/52+LuqQDyNkDsD8ylJcB7/dWj/MMfGFzSP9D5S+o="

#define K64_SECRET                                                                                 \
    "whsec_QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9gYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+"   \
    "fw=="
#define K64_SIG "v1,uUSLw0uki5Xxm8JWFnAa+OFMO9wfRKlZrkjvythEn+M="

/* A signature that is well-formed but matches nothing here (from the reference tests). */
#define OTHER_SIG "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="

static const char *const spec_only[] = {SPEC_SECRET, NULL};

/* Verify the spec message with the given headers at now_s, tolerance 300 s. */
static int verify_spec(const char *id, const char *ts, const char *sig, const char *body,
                       int64_t now_s)
{
    return webhook_verify(spec_only, id, ts, sig, body, body ? strlen(body) : 0, now_s,
                          WEBHOOK_TOLERANCE_S);
}

static void test_sign_known_vectors(void **state)
{
    (void)state;
    char sig[WEBHOOK_SIG_MAX];
    assert_int_equal(webhook_sign(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), sig),
                     SL_OK);
    assert_string_equal(sig, SPEC_SIG);
    assert_int_equal(webhook_sign(K32_SECRET, K32_ID, K32_TS, K32_BODY, strlen(K32_BODY), sig),
                     SL_OK);
    assert_string_equal(sig, K32_SIG);
    assert_int_equal(webhook_sign(K32_SECRET, K32_ID, K32_TS, NULL, 0, sig), SL_OK);
    assert_string_equal(sig, K32_SIG_EMPTY);
    assert_int_equal(webhook_sign(K32_SECRET, K32_ID, K32_TS, "", 0, sig), SL_OK);
    assert_string_equal(sig, K32_SIG_EMPTY);
    assert_int_equal(webhook_sign(K64_SECRET, "evt-1", 0, "hello", 5, sig), SL_OK);
    assert_string_equal(sig, K64_SIG);
    assert_int_equal(strlen(sig) + 1, WEBHOOK_SIG_MAX);
}

static void test_sign_rejects(void **state)
{
    (void)state;
    char sig[WEBHOOK_SIG_MAX];
    const char *bad_ids[] = {"", "a.b", "has space", "tab\t", "\x7f", "caf\xc3\xa9", NULL};
    for (size_t i = 0; bad_ids[i]; i++) {
        assert_int_equal(webhook_sign(SPEC_SECRET, bad_ids[i], 1, "x", 1, sig), SL_EINVAL);
        assert_string_equal(sig, "");
    }
    char long_id[WEBHOOK_ID_MAX + 2];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[WEBHOOK_ID_MAX + 1] = '\0';
    assert_int_equal(webhook_sign(SPEC_SECRET, long_id, 1, "x", 1, sig), SL_EINVAL);
    long_id[WEBHOOK_ID_MAX] = '\0'; /* exactly the bound is fine */
    assert_int_equal(webhook_sign(SPEC_SECRET, long_id, 1, "x", 1, sig), SL_OK);
    assert_int_equal(webhook_sign(SPEC_SECRET, NULL, 1, "x", 1, sig), SL_EINVAL);
    assert_int_equal(webhook_sign(SPEC_SECRET, SPEC_ID, -1, "x", 1, sig), SL_EINVAL);
    assert_int_equal(webhook_sign(SPEC_SECRET, SPEC_ID, 1, NULL, 1, sig), SL_EINVAL);
    assert_int_equal(webhook_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SPEC_ID, 1, "x", 1, sig),
                     SL_EINVAL);
    assert_int_equal(webhook_sign(NULL, SPEC_ID, 1, "x", 1, sig), SL_EINVAL);
    assert_int_equal(webhook_sign(SPEC_SECRET, SPEC_ID, 1, "x", 1, NULL), SL_EINVAL);
    assert_int_equal(webhook_sign(SPEC_SECRET, SPEC_ID, INT64_MAX, "x", 1, sig), SL_OK);
}

static void test_secret_new(void **state)
{
    (void)state;
    char a[WEBHOOK_SECRET_MAX], b[WEBHOOK_SECRET_MAX];
    uint8_t key[WEBHOOK_KEY_MAX];
    size_t len = 0;
    assert_int_equal(webhook_secret_new(a), SL_OK);
    assert_int_equal(webhook_secret_new(b), SL_OK);
    assert_int_equal(strlen(a), 6 + 44);
    assert_memory_equal(a, "whsec_", 6);
    assert_string_not_equal(a, b);
    assert_int_equal(webhook_secret_decode(a, key, &len), SL_OK);
    assert_int_equal(len, WEBHOOK_KEY_NEW_BYTES);
}

static void test_secret_decode(void **state)
{
    (void)state;
    uint8_t key[WEBHOOK_KEY_MAX];
    size_t len = 0;
    assert_int_equal(webhook_secret_decode(SPEC_SECRET, key, &len), SL_OK);
    assert_int_equal(len, 24);
    assert_int_equal(key[0], 0x31); /* 'M','f','K','Q' → 31 f2 90 */
    assert_int_equal(key[1], 0xf2);
    assert_int_equal(key[2], 0x90);
    assert_int_equal(webhook_secret_decode(K64_SECRET, key, &len), SL_OK);
    assert_int_equal(len, 64);
    assert_int_equal(key[0], 64);
    assert_int_equal(key[63], 127);
    const char *bad[] = {
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",                  /* no prefix */
        "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",            /* the prefix is case-sensitive */
        "whsec_",                                            /* empty key */
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",            /* 23 bytes: too short */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",             /* not a multiple of 4 */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w",            /* base64url alphabet */
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La LaS",            /* whitespace */
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", /* padding missing */
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAA=", /* 65 bytes: too long */
        NULL,
    };
    for (size_t i = 0; bad[i]; i++)
        assert_int_equal(webhook_secret_decode(bad[i], key, &len), SL_EINVAL);
    assert_int_equal(webhook_secret_decode(NULL, key, &len), SL_EINVAL);
    assert_int_equal(webhook_secret_decode(SPEC_SECRET, NULL, &len), SL_EINVAL);
    assert_int_equal(webhook_secret_decode(SPEC_SECRET, key, NULL), SL_EINVAL);
}

static void test_verify_known_vectors(void **state)
{
    (void)state;
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY, SPEC_TS), SL_OK);
    const char *k32[] = {K32_SECRET, NULL};
    assert_int_equal(webhook_verify(k32, K32_ID, "1674087231", K32_SIG, K32_BODY, strlen(K32_BODY),
                                    K32_TS + 10, WEBHOOK_TOLERANCE_S),
                     SL_OK);
    assert_int_equal(webhook_verify(k32, K32_ID, "1674087231", K32_SIG_EMPTY, NULL, 0, K32_TS,
                                    WEBHOOK_TOLERANCE_S),
                     SL_OK);
    /* a round trip through webhook_sign with a fresh secret */
    char secret[WEBHOOK_SECRET_MAX], sig[WEBHOOK_SIG_MAX];
    assert_int_equal(webhook_secret_new(secret), SL_OK);
    assert_int_equal(webhook_sign(secret, "evt_1", 1700000000, "{}", 2, sig), SL_OK);
    const char *fresh[] = {secret, NULL};
    assert_int_equal(webhook_verify(fresh, "evt_1", "1700000000", sig, "{}", 2, 1700000000, 300),
                     SL_OK);
}

static void test_verify_rotation(void **state)
{
    (void)state;
    /* the receiver holds the new and the old secret: either may have signed */
    const char *both[] = {K32_SECRET, SPEC_SECRET, NULL};
    assert_int_equal(webhook_verify(both, SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY,
                                    strlen(SPEC_BODY), SPEC_TS, WEBHOOK_TOLERANCE_S),
                     SL_OK);
    const char *k32_only[] = {K32_SECRET, NULL};
    assert_int_equal(webhook_verify(k32_only, SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY,
                                    strlen(SPEC_BODY), SPEC_TS, WEBHOOK_TOLERANCE_S),
                     SL_EAUTH);
    /* the sender signs with several: any matching entry will do, wherever it stands;
     * other versions and undecodable v1 values are skipped */
    const char *lists[] = {
        OTHER_SIG " " SPEC_SIG,
        SPEC_SIG " " OTHER_SIG,
        "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/"
        "enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg== " SPEC_SIG,
        "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " SPEC_SIG,
        "v1,!!notbase64!! " SPEC_SIG,
        "v1,AAAA " SPEC_SIG,
        "  " SPEC_SIG "  ",
        NULL,
    };
    for (size_t i = 0; lists[i]; i++)
        assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, lists[i], SPEC_BODY, SPEC_TS), SL_OK);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, OTHER_SIG " " OTHER_SIG, SPEC_BODY, SPEC_TS),
                     SL_EAUTH);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, "v1a,AAAA", SPEC_BODY, SPEC_TS), SL_EAUTH);
}

static void test_verify_tampered(void **state)
{
    (void)state;
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, SPEC_SIG, "{\"test\": 2432232315}", SPEC_TS),
                     SL_EAUTH);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, SPEC_SIG, "{\"test\":2432232314}", SPEC_TS),
                     SL_EAUTH);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, SPEC_SIG, "", SPEC_TS), SL_EAUTH);
    assert_int_equal(
        verify_spec("msg_p5jXN8AQM9LWM0D4loKWxJeK", SPEC_TS_S, SPEC_SIG, SPEC_BODY, SPEC_TS),
        SL_EAUTH);
    assert_int_equal(verify_spec(SPEC_ID, "1614265331", SPEC_SIG, SPEC_BODY, SPEC_TS), SL_EAUTH);
    /* one flipped bit of the MAC (g0hM → g0hN) */
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S,
                                 "v1,g0hN9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", SPEC_BODY,
                                 SPEC_TS),
                     SL_EAUTH);
    /* the body's length counts, not its NUL */
    assert_int_equal(webhook_verify(spec_only, SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY "x",
                                    strlen(SPEC_BODY), SPEC_TS, 300),
                     SL_OK);
    assert_int_equal(webhook_verify(spec_only, SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY,
                                    strlen(SPEC_BODY) - 1, SPEC_TS, 300),
                     SL_EAUTH);
}

static void test_verify_time_window(void **state)
{
    (void)state;
    /* |now - timestamp| <= tolerance passes, one second more does not */
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY, SPEC_TS + 300), SL_OK);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY, SPEC_TS + 301), SL_EGONE);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY, SPEC_TS + 86400),
                     SL_EGONE);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY, SPEC_TS - 300), SL_OK);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY, SPEC_TS - 301),
                     SL_ERANGE);
    /* the signature is judged first: an old forgery is a forgery */
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, OTHER_SIG, SPEC_BODY, SPEC_TS + 301),
                     SL_EAUTH);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, OTHER_SIG, SPEC_BODY, SPEC_TS - 301),
                     SL_EAUTH);
    /* tolerance 0: only the exact second */
    assert_int_equal(webhook_verify(spec_only, SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY,
                                    strlen(SPEC_BODY), SPEC_TS, 0),
                     SL_OK);
    assert_int_equal(webhook_verify(spec_only, SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY,
                                    strlen(SPEC_BODY), SPEC_TS + 1, 0),
                     SL_EGONE);
    /* extremes do not overflow */
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY, INT64_MAX), SL_EGONE);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY, INT64_MIN), SL_ERANGE);
    assert_int_equal(webhook_verify(spec_only, SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY,
                                    strlen(SPEC_BODY), 0, INT64_MAX),
                     SL_OK);
    char sig[WEBHOOK_SIG_MAX];
    assert_int_equal(webhook_sign(SPEC_SECRET, "m", INT64_MAX, "", 0, sig), SL_OK);
    assert_int_equal(
        webhook_verify(spec_only, "m", "9223372036854775807", sig, "", 0, INT64_MIN, 300),
        SL_ERANGE);
    assert_int_equal(
        webhook_verify(spec_only, "m", "9223372036854775807", sig, "", 0, INT64_MAX, 0), SL_OK);
}

static void test_verify_malformed(void **state)
{
    (void)state;
    const char *bad_ts[] = {"",
                            "abc",
                            "-1",
                            "+1614265330",
                            " 1614265330",
                            "1614265330 ",
                            "01614265330",
                            "1614265330.0",
                            "1e9",
                            "0x10",
                            "9223372036854775808",
                            "10000000000000000000",
                            NULL};
    for (size_t i = 0; bad_ts[i]; i++)
        assert_int_equal(verify_spec(SPEC_ID, bad_ts[i], SPEC_SIG, SPEC_BODY, SPEC_TS), SL_EPARSE);
    const char *bad_ids[] = {"", "msg.1", "msg 1", "msg\t1", "msg\x01", "caf\xc3\xa9", NULL};
    for (size_t i = 0; bad_ids[i]; i++)
        assert_int_equal(verify_spec(bad_ids[i], SPEC_TS_S, SPEC_SIG, SPEC_BODY, SPEC_TS),
                         SL_EPARSE);
    char long_id[WEBHOOK_ID_MAX + 2];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[WEBHOOK_ID_MAX + 1] = '\0';
    assert_int_equal(verify_spec(long_id, SPEC_TS_S, SPEC_SIG, SPEC_BODY, SPEC_TS), SL_EPARSE);
    const char *bad_sigs[] = {
        "",    "   ",   "v1",          SPEC_SIG " v1",
        "v1,", ",AAAA", SPEC_SIG " ,", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        NULL};
    for (size_t i = 0; bad_sigs[i]; i++)
        assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, bad_sigs[i], SPEC_BODY, SPEC_TS),
                         SL_EPARSE);
    assert_int_equal(verify_spec(NULL, SPEC_TS_S, SPEC_SIG, SPEC_BODY, SPEC_TS), SL_EPARSE);
    assert_int_equal(verify_spec(SPEC_ID, NULL, SPEC_SIG, SPEC_BODY, SPEC_TS), SL_EPARSE);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, NULL, SPEC_BODY, SPEC_TS), SL_EPARSE);
}

/* At most WEBHOOK_SIGS_MAX entries: the last one may be the match, one more is refused. */
static void test_verify_signature_list_bound(void **state)
{
    (void)state;
    char list[WEBHOOK_SIGS_MAX * 64];
    size_t n = 0;
    for (int i = 0; i < WEBHOOK_SIGS_MAX - 1; i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s ", OTHER_SIG);
    snprintf(list + n, sizeof(list) - n, "%s", SPEC_SIG);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, list, SPEC_BODY, SPEC_TS), SL_OK);
    char more[sizeof(list) + 64];
    snprintf(more, sizeof(more), "%s %s", OTHER_SIG, list);
    assert_int_equal(verify_spec(SPEC_ID, SPEC_TS_S, more, SPEC_BODY, SPEC_TS), SL_EPARSE);
}

static void test_verify_invalid_arguments(void **state)
{
    (void)state;
    const char *none[] = {NULL};
    const char *bad_secret[] = {SPEC_SECRET, "not-a-secret", NULL};
    size_t len = strlen(SPEC_BODY);
    assert_int_equal(
        webhook_verify(NULL, SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY, len, SPEC_TS, 300),
        SL_EINVAL);
    assert_int_equal(
        webhook_verify(none, SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY, len, SPEC_TS, 300),
        SL_EINVAL);
    /* a bad secret in the list is a configuration error even when another one matches */
    assert_int_equal(
        webhook_verify(bad_secret, SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY, len, SPEC_TS, 300),
        SL_EINVAL);
    assert_int_equal(
        webhook_verify(spec_only, SPEC_ID, SPEC_TS_S, SPEC_SIG, SPEC_BODY, len, SPEC_TS, -1),
        SL_EINVAL);
    assert_int_equal(webhook_verify(spec_only, SPEC_ID, SPEC_TS_S, SPEC_SIG, NULL, 1, SPEC_TS, 300),
                     SL_EINVAL);
    /* configuration errors come before header errors */
    assert_int_equal(webhook_verify(none, NULL, NULL, NULL, NULL, 0, 0, 300), SL_EINVAL);
}

/* ---- addresses ---------------------------------------------------------------------- */

struct addr_case {
    const char *addr;
    bool is_private;
};

static const struct addr_case addr_cases[] = {
    {"0.0.0.0", true},
    {"0.255.255.255", true},
    {"10.0.0.1", true},
    {"10.255.255.255", true},
    {"11.0.0.1", false},
    {"100.63.255.255", false},
    {"100.64.0.1", true},
    {"100.127.255.255", true},
    {"100.128.0.0", false},
    {"126.255.255.255", false},
    {"127.0.0.1", true},
    {"127.255.255.254", true},
    {"128.0.0.0", false},
    {"169.253.255.255", false},
    {"169.254.169.254", true},
    {"169.255.0.0", false},
    {"172.15.255.255", false},
    {"172.16.0.0", true},
    {"172.31.255.255", true},
    {"172.32.0.0", false},
    {"192.0.0.1", true},
    {"192.0.2.1", false},
    {"192.167.255.255", false},
    {"192.168.0.1", true},
    {"192.168.255.255", true},
    {"192.169.0.0", false},
    {"198.17.255.255", false},
    {"198.18.0.1", true},
    {"198.19.255.255", true},
    {"198.20.0.0", false},
    {"223.255.255.255", false},
    {"224.0.0.1", true},
    {"239.255.255.255", true},
    {"240.0.0.1", true},
    {"255.255.255.255", true},
    {"1.1.1.1", false},
    {"8.8.8.8", false},
    {"93.184.216.34", false},

    {"::", true},
    {"::1", true},
    {"::2", true},
    {"::8.8.8.8", true},
    {"::ffff:127.0.0.1", true},
    {"::ffff:10.1.2.3", true},
    {"::ffff:8.8.8.8", false},
    {"64:ff9b::7f00:1", true},
    {"64:ff9b::808:808", false},
    {"64:ff9b:1::1", true},
    {"100::1", true},
    {"100:0:0:1::1", false},
    {"2001::1", true},
    {"2001:1::1", false},
    {"2002:7f00:1::", true},
    {"2002:c0a8:101::1", true},
    {"2002:808:808::1", false},
    {"2606:4700::1111", false},
    {"2001:4860:4860::8888", false},
    {"fbff:ffff::1", false},
    {"fc00::1", true},
    {"fd12:3456::1", true},
    {"fe7f:ffff::1", false},
    {"fe80::1", true},
    {"febf:ffff::1", true},
    {"fec0::1", true},
    {"feff::1", true},
    {"ff02::1", true},
    {"ffff:ffff::1", true},
};

static void sockaddr_of(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        return;
    }
    assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    in6->sin6_family = AF_INET6;
}

static void test_addr_is_private_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
        struct sockaddr_storage ss;
        sockaddr_of(addr_cases[i].addr, &ss);
        bool got = webhook_addr_is_private((const struct sockaddr *)&ss);
        if (got != addr_cases[i].is_private)
            fail_msg("%s: expected %s", addr_cases[i].addr,
                     addr_cases[i].is_private ? "private" : "public");
    }
    struct sockaddr_storage other = {.ss_family = AF_UNIX};
    assert_true(webhook_addr_is_private((const struct sockaddr *)&other));
}

static void test_addr_allowed_cidr(void **state)
{
    (void)state;
    const char *allow[] = {"127.0.0.0/8", "fd00::/8",    "10.1.2.3/32", "bogus/x",
                           "1.2.3.4/33",  "example.com", NULL};
    struct {
        const char *addr;
        bool allowed;
    } cases[] = {
        {"127.0.0.1", true}, {"127.9.9.9", true},       {"::ffff:127.0.0.1", true},
        {"fd00::1", true},   {"fc00::1", false},        {"10.1.2.3", true},
        {"10.1.2.4", false}, {"192.168.1.1", false},    {"::1", false},
        {"8.8.8.8", true},   {"2606:4700::1111", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage ss;
        sockaddr_of(cases[i].addr, &ss);
        if (webhook_addr_allowed((const struct sockaddr *)&ss, allow) != cases[i].allowed)
            fail_msg("%s: expected %s", cases[i].addr, cases[i].allowed ? "allowed" : "refused");
    }
    struct sockaddr_storage ss;
    sockaddr_of("127.0.0.1", &ss);
    assert_false(webhook_addr_allowed((const struct sockaddr *)&ss, NULL));
    const char *everything[] = {"0.0.0.0/0", "::/0", NULL};
    assert_true(webhook_addr_allowed((const struct sockaddr *)&ss, everything));
}

/* ---- delivery targets (IP literals and localhost: no DNS traffic) ------------------- */

struct target_case {
    const char *url;
    const char *const *allow;
    bool allowed;
    const char *why; /* a substring of the explanation */
};

static const char *const allow_demo[] = {"127.0.0.1", NULL};
static const char *const allow_port[] = {"127.0.0.1:9100", "[::1]:9100", NULL};
static const char *const allow_v6[] = {"::1", NULL};
static const char *const allow_cidr[] = {"10.0.0.0/8", NULL};
static const char *const allow_name[] = {"LocalHost.", NULL};

static const struct target_case target_cases[] = {
    {"http://93.184.216.34/hook", NULL, true, "public"},
    {"https://93.184.216.34:8443/hook?x=1", NULL, true, "public"},
    {"HTTPS://[2606:4700::1111]/", NULL, true, "public"},
    {"http://127.0.0.1:9100/hook", NULL, false, "127.0.0.1 is a private"},
    {"http://127.0.0.1:9100/hook", allow_demo, true, "allow-listed"},
    {"http://127.0.0.1/hook", allow_port, false, "127.0.0.1 is a private"},
    {"http://127.0.0.1:9100", allow_port, true, "allow-listed"},
    {"http://127.0.0.1:9101/", allow_port, false, "private"},
    {"http://[::1]:9100/", allow_port, true, "allow-listed"},
    {"http://[0:0::1]:80/", allow_v6, true, "allow-listed"},
    {"http://[::1]/", NULL, false, "::1 is a private"},
    {"http://10.0.0.7/", NULL, false, "10.0.0.7 is a private"},
    {"http://10.0.0.7/", allow_cidr, true, "public or allow-listed"},
    {"http://192.168.1.1/", allow_cidr, false, "192.168.1.1"},
    {"http://169.254.169.254/latest/meta-data/", NULL, false, "169.254.169.254"},
    {"http://[::ffff:127.0.0.1]/", NULL, false, "private"},
    {"http://[fe80::1]/", NULL, false, "private"},
    {"http://0.0.0.0:80/", NULL, false, "private"},
    {"http://2130706433/", NULL, false, "127.0.0.1"}, /* inet_aton spelling of 127.0.0.1 */
    {"http://127.1/", allow_demo, false, "127.0.0.1"},
    {"http://localhost:9100/", NULL, false, "private"},
    {"http://localhost:9100/", allow_name, true, "allow-listed"},
    {"ftp://93.184.216.34/", NULL, false, "only http"},
    {"file:///etc/passwd", NULL, false, "only http"},
    {"gopher://127.0.0.1/", allow_demo, false, "only http"},
    {"//93.184.216.34/", NULL, false, "only http"},
    {"http://user:pw@93.184.216.34/", NULL, false, "user information"},
    {"http://127.0.0.1@93.184.216.34/", allow_demo, false, "user information"},
    {"http:///path", NULL, false, "no valid host"},
    {"http://", NULL, false, "no valid host"},
    {"http://93.184.216.34:0/", NULL, false, "no valid host"},
    {"http://93.184.216.34:65536/", NULL, false, "no valid host"},
    {"http://93.184.216.34:/", NULL, false, "no valid host"},
    {"http://93.184.216.34:80x/", NULL, false, "no valid host"},
    {"http://::1/", allow_v6, false, "no valid host"},
    {"http://[::1/", NULL, false, "no valid host"},
    {"http://[example.com]/", NULL, false, "no valid host"},
    {"http://[fe80::1%25eth0]/", NULL, false, "no valid host"},
    {"http://exa%6dple.com/", NULL, false, "no valid host"},
    {"http://93.184.216.34 /", NULL, false, "space"},
    {"http://93.184.216.34\\@127.0.0.1/", NULL, false, "backslash"},
};

static void test_target_allowed_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(target_cases) / sizeof(target_cases[0]); i++) {
        const struct target_case *c = &target_cases[i];
        char why[WEBHOOK_WHY_MAX] = "";
        bool got = webhook_target_allowed(c->url, c->allow, why);
        if (got != c->allowed || !strstr(why, c->why))
            fail_msg("%s: got %s (%s), expected %s (%s)", c->url, got ? "allowed" : "refused", why,
                     c->allowed ? "allowed" : "refused", c->why);
    }
    assert_false(webhook_target_allowed(NULL, NULL, NULL));
    assert_true(webhook_target_allowed("http://93.184.216.34/", NULL, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_known_vectors),
        cmocka_unit_test(test_sign_rejects),
        cmocka_unit_test(test_secret_new),
        cmocka_unit_test(test_secret_decode),
        cmocka_unit_test(test_verify_known_vectors),
        cmocka_unit_test(test_verify_rotation),
        cmocka_unit_test(test_verify_tampered),
        cmocka_unit_test(test_verify_time_window),
        cmocka_unit_test(test_verify_malformed),
        cmocka_unit_test(test_verify_signature_list_bound),
        cmocka_unit_test(test_verify_invalid_arguments),
        cmocka_unit_test(test_addr_is_private_table),
        cmocka_unit_test(test_addr_allowed_cidr),
        cmocka_unit_test(test_target_allowed_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
