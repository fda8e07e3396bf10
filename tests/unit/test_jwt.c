/* jwt: exact tokens, the RFC 8725 rejections (alg allow-list, crit, signature), time
 * claims at their boundaries, and malformed input. Tokens that jwt_sign_hs256 would never
 * produce are built with forge(), from the separately tested encode and crypto modules. */
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
#include "jwt.h"

#define KEY     ((const uint8_t *)"0123456789abcdef0123456789abcdef")
#define KEY_LEN 32

/* From jwt.io: HS256 over {"sub":"1234567890","name":"John Doe","iat":1516239022}. */
#define JWTIO_TOKEN                                                                                \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."                                                        \
    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."                  \
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
#define JWTIO_SECRET "your-256-bit-secret"

/* Computed independently (Python hmac/base64) for KEY and the claims in test_sign_exact. */
#define ALICE_TOKEN                                                                                \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."                                                        \
    "eyJzdWIiOiJhbGljZSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ."                          \
    "B5vWXHhsUo6l84gIB5FOXK0ItITzejyoRjel1C1Oyfs"

#define FORGE_MAX 20000

/* "b64url(header).b64url(payload).b64url(HMAC-SHA256(key, first two))", or with an empty
 * signature when key is NULL. Caller frees. */
static char *forge(const char *header, const char *payload, const char *key)
{
    char *t = malloc(FORGE_MAX);
    assert_non_null(t);
    size_t n = base64_encode((const uint8_t *)header, strlen(header), t, true);
    t[n++] = '.';
    n += base64_encode((const uint8_t *)payload, strlen(payload), t + n, true);
    uint8_t mac[32];
    if (key)
        crypto_hmac_sha256(key, strlen(key), t, n, mac);
    t[n++] = '.';
    if (key)
        n += base64_encode(mac, sizeof(mac), t + n, true);
    t[n] = '\0';
    assert_true(n < FORGE_MAX);
    return t;
}

static int verify_at(const char *token, int64_t now_s, int64_t leeway_s)
{
    json_t *claims = (json_t *)1; /* must be reset to NULL on failure */
    int rc = jwt_verify_hs256(token, KEY, KEY_LEN, now_s, leeway_s, &claims);
    if (rc == SL_OK) {
        assert_true(json_is_object(claims));
        json_decref(claims);
    } else {
        assert_null(claims);
    }
    return rc;
}

static int verify_forged(const char *header, const char *payload, int64_t now_s, int64_t leeway_s)
{
    char *t = forge(header, payload, (const char *)KEY);
    int rc = verify_at(t, now_s, leeway_s);
    free(t);
    return rc;
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static void test_sign_exact(void **state)
{
    (void)state;
    json_t *claims = json_pack("{s:s, s:I, s:I}", "sub", "alice", "iat", (json_int_t)1700000000,
                               "exp", (json_int_t)1700003600);
    char *token = NULL;
    assert_int_equal(jwt_sign_hs256(claims, KEY, KEY_LEN, &token), SL_OK);
    assert_string_equal(token, ALICE_TOKEN);
    free(token);
    json_decref(claims);
}

static void test_round_trip(void **state)
{
    (void)state;
    json_t *claims = json_pack("{s:s, s:[s,s], s:I}", "sub", "ops@example.com", "scope",
                               "links:read", "links:write", "exp", (json_int_t)2000);
    char *token = NULL;
    assert_int_equal(jwt_sign_hs256(claims, KEY, KEY_LEN, &token), SL_OK);

    json_t *got = NULL;
    assert_int_equal(jwt_verify_hs256(token, KEY, KEY_LEN, 1999, 0, &got), SL_OK);
    assert_true(json_equal(got, claims));
    json_decref(got);
    /* out_claims may be NULL */
    assert_int_equal(jwt_verify_hs256(token, KEY, KEY_LEN, 1999, 0, NULL), SL_OK);
    /* another key */
    assert_int_equal(jwt_verify_hs256(token, (const uint8_t *)"k", 1, 1999, 0, &got),
                     SL_EJWT_SIGNATURE);
    assert_null(got);
    free(token);
    json_decref(claims);
}

static void test_verify_jwtio_example(void **state)
{
    (void)state;
    json_t *claims = NULL;
    const uint8_t *secret = (const uint8_t *)JWTIO_SECRET;
    size_t secret_len = strlen(JWTIO_SECRET);
    assert_int_equal(jwt_verify_hs256(JWTIO_TOKEN, secret, secret_len, 1516239022, 0, &claims),
                     SL_OK);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "1234567890");
    assert_string_equal(json_string_value(json_object_get(claims, "name")), "John Doe");
    assert_int_equal(json_integer_value(json_object_get(claims, "iat")), 1516239022);
    json_decref(claims);
    assert_int_equal(jwt_verify_hs256(JWTIO_TOKEN, secret, secret_len - 1, 0, 0, &claims),
                     SL_EJWT_SIGNATURE);
}

static void test_tampered(void **state)
{
    (void)state;
    /* Payload swapped for {"sub":"1234567890","name":"John Doe","admin":true}, original
     * signature kept. */
    const char *t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                    "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4iOnRydWV9."
                    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    const uint8_t *secret = (const uint8_t *)JWTIO_SECRET;
    assert_int_equal(jwt_verify_hs256(t, secret, strlen(JWTIO_SECRET), 0, 0, NULL),
                     SL_EJWT_SIGNATURE);

    /* Last signature character s -> o: a different MAC, still canonical base64url. */
    char *u = strdup(ALICE_TOKEN);
    u[strlen(u) - 1] = 'o';
    assert_int_equal(verify_at(u, 0, 0), SL_EJWT_SIGNATURE);
    /* s -> t sets the unused low bits: a second spelling of the same MAC, refused as
     * malformed (RFC 4648 §3.5) rather than silently accepted. */
    u[strlen(u) - 1] = 't';
    assert_int_equal(verify_at(u, 0, 0), SL_EJWT_MALFORMED);
    /* Signature of the wrong length (31 bytes, canonical base64url), and an empty one. */
    strcpy(strrchr(u, '.') + 1, "B5vWXHhsUo6l84gIB5FOXK0ItITzejyoRjel1C1Oyw");
    assert_int_equal(verify_at(u, 0, 0), SL_EJWT_SIGNATURE);
    strrchr(u, '.')[1] = '\0';
    assert_int_equal(verify_at(u, 0, 0), SL_EJWT_SIGNATURE);
    free(u);
}

static void test_alg_none(void **state)
{
    (void)state;
    /* RFC 7519 §6.1 unsecured JWT: empty signature. */
    char *t = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", "{\"sub\":\"admin\"}", NULL);
    assert_int_equal(verify_at(t, 0, 0), SL_EJWT_ALG);
    free(t);
    /* Even when a valid HS256 MAC is attached, the header's claim is refused. */
    assert_int_equal(verify_forged("{\"alg\":\"none\"}", "{}", 0, 0), SL_EJWT_ALG);
    assert_int_equal(verify_forged("{\"alg\":\"None\"}", "{}", 0, 0), SL_EJWT_ALG);
}

static void test_alg_allow_list(void **state)
{
    (void)state;
    assert_int_equal(verify_forged("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", "{}", 0, 0), SL_EJWT_ALG);
    assert_int_equal(verify_forged("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{}", 0, 0), SL_EJWT_ALG);
    assert_int_equal(verify_forged("{\"alg\":\"hs256\"}", "{}", 0, 0), SL_EJWT_ALG);
    assert_int_equal(verify_forged("{\"alg\":\"HS256 \"}", "{}", 0, 0), SL_EJWT_ALG);
    assert_int_equal(verify_forged("{\"alg\":\"\"}", "{}", 0, 0), SL_EJWT_ALG);
    assert_int_equal(verify_forged("{\"alg\":256}", "{}", 0, 0), SL_EJWT_ALG);
    assert_int_equal(verify_forged("{\"alg\":[\"HS256\"]}", "{}", 0, 0), SL_EJWT_ALG);
    assert_int_equal(verify_forged("{\"typ\":\"JWT\"}", "{}", 0, 0), SL_EJWT_ALG);
    assert_int_equal(verify_forged("{}", "{}", 0, 0), SL_EJWT_ALG);
    /* Minimal header without typ is fine. */
    assert_int_equal(verify_forged("{\"alg\":\"HS256\"}", "{}", 0, 0), SL_OK);
}

static void test_alg_checked_before_signature(void **state)
{
    (void)state;
    /* Wrong key and wrong algorithm: the algorithm is reported. */
    char *t = forge("{\"alg\":\"HS512\"}", "{}", "another key");
    assert_int_equal(verify_at(t, 0, 0), SL_EJWT_ALG);
    free(t);
}

static void test_crit_rejected(void **state)
{
    (void)state;
    assert_int_equal(verify_forged("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "{}", 0, 0),
                     SL_EJWT_ALG);
    assert_int_equal(verify_forged("{\"alg\":\"HS256\",\"crit\":[]}", "{}", 0, 0), SL_EJWT_ALG);
}

static void test_exp(void **state)
{
    (void)state;
    const char *p = "{\"exp\":1000}";
    assert_int_equal(verify_forged(HS256, p, 999, 0), SL_OK);
    /* RFC 7519 §4.1.4: on or after exp is expired. */
    assert_int_equal(verify_forged(HS256, p, 1000, 0), SL_EJWT_EXPIRED);
    assert_int_equal(verify_forged(HS256, p, 1000, 30), SL_OK);
    assert_int_equal(verify_forged(HS256, p, 1029, 30), SL_OK);
    assert_int_equal(verify_forged(HS256, p, 1030, 30), SL_EJWT_EXPIRED);
    assert_int_equal(verify_forged(HS256, p, INT64_MAX, 30), SL_EJWT_EXPIRED);
}

static void test_nbf(void **state)
{
    (void)state;
    const char *p = "{\"nbf\":1000,\"exp\":2000}";
    assert_int_equal(verify_forged(HS256, p, 999, 0), SL_EJWT_NOT_YET);
    assert_int_equal(verify_forged(HS256, p, 1000, 0), SL_OK);
    assert_int_equal(verify_forged(HS256, p, 970, 30), SL_OK);
    assert_int_equal(verify_forged(HS256, p, 969, 30), SL_EJWT_NOT_YET);
    assert_int_equal(verify_forged(HS256, p, 1999, 0), SL_OK);
    assert_int_equal(verify_forged(HS256, p, 2000, 0), SL_EJWT_EXPIRED);
}

static void test_time_extremes(void **state)
{
    (void)state;
    /* exp + leeway and nbf - leeway must not overflow. */
    assert_int_equal(verify_forged(HS256, "{\"exp\":9223372036854775807}", 0, 300), SL_OK);
    assert_int_equal(verify_forged(HS256, "{\"nbf\":-9223372036854775808}", 0, 300), SL_OK);
    assert_int_equal(verify_forged(HS256, "{\"exp\":-9223372036854775808}", 0, 300),
                     SL_EJWT_EXPIRED);
    assert_int_equal(verify_forged(HS256, "{\"nbf\":9223372036854775807}", 0, 300),
                     SL_EJWT_NOT_YET);
    /* Beyond int64: jansson refuses the number, so the payload is not JSON. */
    assert_int_equal(verify_forged(HS256, "{\"exp\":9223372036854775808}", 0, 0),
                     SL_EJWT_MALFORMED);
}

static void test_time_claims_must_be_integers(void **state)
{
    (void)state;
    assert_int_equal(verify_forged(HS256, "{\"exp\":\"2000\"}", 0, 0), SL_EJWT_MALFORMED);
    assert_int_equal(verify_forged(HS256, "{\"exp\":2000.5}", 0, 0), SL_EJWT_MALFORMED);
    assert_int_equal(verify_forged(HS256, "{\"nbf\":null}", 0, 0), SL_EJWT_MALFORMED);
    assert_int_equal(verify_forged(HS256, "{\"iat\":true}", 0, 0), SL_EJWT_MALFORMED);
    assert_int_equal(verify_forged(HS256, "{\"iat\":1}", 0, 0), SL_OK);
}

static void test_malformed_shape(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        ".",
        "..",
        "abc",
        "eyJhbGciOiJIUzI1NiJ9.e30",          /* 2 parts */
        "eyJhbGciOiJIUzI1NiJ9.e30.sig.more", /* 4 parts */
        ALICE_TOKEN ".",                     /* 4 parts, last empty */
        ".e30.c2ln",                         /* empty header */
        "eyJhbGciOiJIUzI1NiJ9..c2ln",        /* empty payload */
        "eyJhbGciOiJIUzI1NiJ9!.e30.c2ln",    /* bad base64url in header */
        "eyJhbGciOiJIUzI1NiJ9.e30=.c2ln",    /* padding is not base64url */
        "eyJhbGciOiJIUzI1NiJ9.e30.c2ln+",    /* bad base64url in signature */
        "eyJhbGciOiJIUzI1NiJ9.e.c2ln",       /* 1 char left over */
        "eyJhbGciOiJIUzI1NiJ9 .e30.c2ln",    /* whitespace */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(verify_at(bad[i], 0, 0), SL_EJWT_MALFORMED);
}

static void test_malformed_header(void **state)
{
    (void)state;
    assert_int_equal(verify_forged("[\"alg\",\"HS256\"]", "{}", 0, 0), SL_EJWT_MALFORMED);
    assert_int_equal(verify_forged("\"HS256\"", "{}", 0, 0), SL_EJWT_MALFORMED);
    assert_int_equal(verify_forged("{\"alg\":\"HS256\"", "{}", 0, 0), SL_EJWT_MALFORMED);
    assert_int_equal(verify_forged("{\"alg\":\"HS256\"} x", "{}", 0, 0), SL_EJWT_MALFORMED);
    /* RFC 7515 §5.2: duplicate member names are rejected, not "last one wins". */
    assert_int_equal(verify_forged("{\"alg\":\"none\",\"alg\":\"HS256\"}", "{}", 0, 0),
                     SL_EJWT_MALFORMED);
}

static void test_malformed_payload(void **state)
{
    (void)state;
    assert_int_equal(verify_forged(HS256, "[]", 0, 0), SL_EJWT_MALFORMED);
    assert_int_equal(verify_forged(HS256, "42", 0, 0), SL_EJWT_MALFORMED);
    assert_int_equal(verify_forged(HS256, "not json", 0, 0), SL_EJWT_MALFORMED);
    /* The payload is parsed only after the signature verifies. */
    char *t = forge(HS256, "not json", "wrong key");
    assert_int_equal(verify_at(t, 0, 0), SL_EJWT_SIGNATURE);
    free(t);
}

/* {"x":"aaa...a"} with n a's; caller frees. */
static char *long_payload(size_t n)
{
    char *p = malloc(n + 16);
    assert_non_null(p);
    strcpy(p, "{\"x\":\"");
    memset(p + 6, 'a', n);
    strcpy(p + 6 + n, "\"}");
    return p;
}

static void test_size_limit(void **state)
{
    (void)state;
    /* 6075 a's: 6083 payload bytes -> 8111 base64url chars; 36 + 1 + 8111 + 1 + 43 is
     * exactly JWT_MAX_BYTES, accepted both ways. One more byte is refused both ways. */
    char *payload = long_payload(6075);
    char *t = forge(HS256, payload, (const char *)KEY);
    assert_int_equal(strlen(t), JWT_MAX_BYTES);
    assert_int_equal(verify_at(t, 0, 0), SL_OK);
    json_t *claims = json_object();
    json_object_set_new(claims, "x", json_stringn(payload + 6, 6075));
    char *token = NULL;
    assert_int_equal(jwt_sign_hs256(claims, KEY, KEY_LEN, &token), SL_OK);
    assert_string_equal(token, t);
    free(token);
    json_decref(claims);
    free(t);
    free(payload);

    payload = long_payload(6076);
    t = forge(HS256, payload, (const char *)KEY);
    assert_int_equal(strlen(t), JWT_MAX_BYTES + 1);
    assert_int_equal(verify_at(t, 0, 0), SL_EJWT_MALFORMED);
    claims = json_object();
    json_object_set_new(claims, "x", json_stringn(payload + 6, 6076));
    token = (char *)1;
    assert_int_equal(jwt_sign_hs256(claims, KEY, KEY_LEN, &token), SL_ETOOBIG);
    assert_null(token);
    json_decref(claims);
    free(t);
    free(payload);
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    json_t *claims = NULL;
    assert_int_equal(jwt_verify_hs256(NULL, KEY, KEY_LEN, 0, 0, &claims), SL_EINVAL);
    assert_int_equal(jwt_verify_hs256(ALICE_TOKEN, KEY, 0, 0, 0, &claims), SL_EINVAL);
    assert_int_equal(jwt_verify_hs256(ALICE_TOKEN, NULL, KEY_LEN, 0, 0, &claims), SL_EINVAL);
    assert_int_equal(jwt_verify_hs256(ALICE_TOKEN, KEY, KEY_LEN, 0, -1, &claims), SL_EINVAL);
    assert_null(claims);

    char *token = NULL;
    json_t *arr = json_array();
    assert_int_equal(jwt_sign_hs256(arr, KEY, KEY_LEN, &token), SL_EINVAL);
    assert_int_equal(jwt_sign_hs256(NULL, KEY, KEY_LEN, &token), SL_EINVAL);
    json_t *obj = json_object();
    assert_int_equal(jwt_sign_hs256(obj, KEY, 0, &token), SL_EINVAL);
    assert_null(token);
    json_decref(arr);
    json_decref(obj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_exact),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_verify_jwtio_example),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_allow_list),
        cmocka_unit_test(test_alg_checked_before_signature),
        cmocka_unit_test(test_crit_rejected),
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_nbf),
        cmocka_unit_test(test_time_extremes),
        cmocka_unit_test(test_time_claims_must_be_integers),
        cmocka_unit_test(test_malformed_shape),
        cmocka_unit_test(test_malformed_header),
        cmocka_unit_test(test_malformed_payload),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_invalid_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
