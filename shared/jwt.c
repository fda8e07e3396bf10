#include "jwt.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "encode.h"
#include "err.h"
#include "json.h"

/* base64url of {"alg":"HS256","typ":"JWT"}: fixed, so signing never serializes it. */
static const char jwt_header_b64[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
#define JWT_HEADER_B64_LEN (sizeof(jwt_header_b64) - 1)
/* 32-byte MAC in unpadded base64url. */
#define JWT_SIG_B64_LEN 43

int jwt_sign_hs256(const json_t *claims, const uint8_t *key, size_t keylen, char **out_token)
{
    int rc;
    *out_token = NULL;
    if (!json_is_object(claims) || !key || keylen == 0)
        return SL_EINVAL;

    char *payload = json_dump_compact(claims);
    if (!payload)
        return SL_ENOMEM;
    size_t payload_len = strlen(payload);
    if (payload_len > JWT_MAX_BYTES) {
        rc = SL_ETOOBIG;
        goto err_free_payload;
    }
    size_t payload_b64_len = base64_encoded_len(payload_len, true);
    size_t total = JWT_HEADER_B64_LEN + 1 + payload_b64_len + 1 + JWT_SIG_B64_LEN;
    if (total > JWT_MAX_BYTES) {
        rc = SL_ETOOBIG;
        goto err_free_payload;
    }
    char *token = malloc(total + 1);
    if (!token) {
        rc = SL_ENOMEM;
        goto err_free_payload;
    }

    /* RFC 7515 §7.1: BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature),
     * the signature taken over the first two segments and the dot between them. */
    size_t n = 0;
    memcpy(token, jwt_header_b64, JWT_HEADER_B64_LEN);
    n += JWT_HEADER_B64_LEN;
    token[n++] = '.';
    n += base64_encode((const uint8_t *)payload, payload_len, token + n, true);
    uint8_t mac[CRYPTO_SHA256_BYTES];
    crypto_hmac_sha256(key, keylen, token, n, mac);
    token[n++] = '.';
    n += base64_encode(mac, sizeof(mac), token + n, true);

    free(payload);
    *out_token = token;
    return SL_OK;

err_free_payload:
    free(payload);
    return rc;
}

/* One decoded segment of a token. */
struct jwt_segment {
    const char *b64;
    size_t b64_len;
    uint8_t *bytes; /* malloc'd, NUL-terminated for the JSON parser */
    size_t len;
};

static int jwt_segment_decode(struct jwt_segment *s)
{
    size_t cap = base64_decoded_max(s->b64_len);
    s->bytes = malloc(cap + 1);
    if (!s->bytes)
        return SL_ENOMEM;
    if (base64_decode(s->b64, s->b64_len, s->bytes, cap, &s->len, true) != SL_OK)
        return SL_EJWT_MALFORMED;
    s->bytes[s->len] = '\0';
    return SL_OK;
}

/* Parse a decoded segment that must be a JSON object (RFC 7515 §5.2, RFC 7519 §7.2). */
static int jwt_parse_object(const struct jwt_segment *s, json_t **out)
{
    char err[JSON_ERR_MAX];
    if (json_parse((const char *)s->bytes, s->len, out, err) != SL_OK)
        return SL_EJWT_MALFORMED;
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return SL_EJWT_MALFORMED;
    }
    return SL_OK;
}

/* RFC 8725 §3.1: the one algorithm we allow, and no extensions we do not understand. */
static int jwt_check_header(const json_t *header)
{
    const json_t *alg = json_object_get(header, "alg");
    if (!json_is_string(alg) || json_string_length(alg) != 5 ||
        memcmp(json_string_value(alg), "HS256", 5) != 0)
        return SL_EJWT_ALG;
    if (json_object_get(header, "crit"))
        return SL_EJWT_ALG;
    return SL_OK;
}

static int jwt_check_signature(const char *signing_input, size_t signing_len,
                               const struct jwt_segment *sig, const uint8_t *key, size_t keylen)
{
    uint8_t mac[CRYPTO_SHA256_BYTES];
    if (sig->len != sizeof(mac))
        return SL_EJWT_SIGNATURE;
    crypto_hmac_sha256(key, keylen, signing_input, signing_len, mac);
    return crypto_equal(mac, sig->bytes, sizeof(mac)) ? SL_OK : SL_EJWT_SIGNATURE;
}

/* Registered time claims (RFC 7519 §4.1.4-4.1.6) must be integers when present. */
static bool jwt_time_claim(const json_t *claims, const char *name, bool *present, int64_t *value)
{
    const json_t *v = json_object_get(claims, name);
    *present = v != NULL;
    if (!v)
        return true;
    if (!json_is_integer(v))
        return false;
    *value = json_integer_value(v);
    return true;
}

/* a + b and a - b for b >= 0, saturating, so extreme exp/nbf values cannot overflow. */
static int64_t sat_add(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

static int64_t sat_sub(int64_t a, int64_t b)
{
    return a < INT64_MIN + b ? INT64_MIN : a - b;
}

static int jwt_check_claims(const json_t *claims, int64_t now_s, int64_t leeway_s)
{
    bool has_exp, has_nbf, has_iat;
    int64_t exp = 0, nbf = 0, iat = 0;

    if (!jwt_time_claim(claims, "exp", &has_exp, &exp) ||
        !jwt_time_claim(claims, "nbf", &has_nbf, &nbf) ||
        !jwt_time_claim(claims, "iat", &has_iat, &iat))
        return SL_EJWT_MALFORMED;
    /* RFC 7519 §4.1.4: "on or after" exp the token MUST NOT be accepted. */
    if (has_exp && now_s >= sat_add(exp, leeway_s))
        return SL_EJWT_EXPIRED;
    /* RFC 7519 §4.1.5: "before" nbf the token MUST NOT be accepted. */
    if (has_nbf && now_s < sat_sub(nbf, leeway_s))
        return SL_EJWT_NOT_YET;
    return SL_OK;
}

/* Split into three segments at the two dots (RFC 7515 §7.1); false otherwise. */
static bool jwt_split(const char *token, size_t len, struct jwt_segment seg[3])
{
    const char *dot1 = memchr(token, '.', len);
    if (!dot1)
        return false;
    const char *rest = dot1 + 1;
    const char *dot2 = memchr(rest, '.', len - (size_t)(rest - token));
    if (!dot2)
        return false;
    const char *sig = dot2 + 1;
    if (memchr(sig, '.', len - (size_t)(sig - token)))
        return false;
    seg[0].b64 = token;
    seg[0].b64_len = (size_t)(dot1 - token);
    seg[1].b64 = rest;
    seg[1].b64_len = (size_t)(dot2 - rest);
    seg[2].b64 = sig;
    seg[2].b64_len = len - (size_t)(sig - token);
    /* Header and payload are JSON objects, so neither encodes to nothing. */
    return seg[0].b64_len > 0 && seg[1].b64_len > 0;
}

int jwt_verify_hs256(const char *token, const uint8_t *key, size_t keylen, int64_t now_s,
                     int64_t leeway_s, json_t **out_claims)
{
    struct jwt_segment seg[3] = {{0}};
    json_t *header = NULL, *claims = NULL;
    int rc;

    if (out_claims)
        *out_claims = NULL;
    if (!token || !key || keylen == 0 || leeway_s < 0)
        return SL_EINVAL;
    size_t len = strnlen(token, JWT_MAX_BYTES + 1);
    if (len > JWT_MAX_BYTES || !jwt_split(token, len, seg))
        return SL_EJWT_MALFORMED;
    for (int i = 0; i < 3; i++) {
        rc = jwt_segment_decode(&seg[i]);
        if (rc != SL_OK)
            goto free_segments;
    }

    rc = jwt_parse_object(&seg[0], &header);
    if (rc != SL_OK)
        goto free_segments;
    rc = jwt_check_header(header);
    if (rc != SL_OK)
        goto free_header;
    rc = jwt_check_signature(token, seg[0].b64_len + 1 + seg[1].b64_len, &seg[2], key, keylen);
    if (rc != SL_OK)
        goto free_header;
    rc = jwt_parse_object(&seg[1], &claims);
    if (rc != SL_OK)
        goto free_header;
    rc = jwt_check_claims(claims, now_s, leeway_s);
    if (rc == SL_OK && out_claims) {
        *out_claims = claims;
        claims = NULL;
    }
    json_decref(claims);
    /* Success falls through too: these free what verification used, not what it returns. */
free_header:
    json_decref(header);
free_segments:
    for (int i = 0; i < 3; i++)
        free(seg[i].bytes);
    return rc;
}
