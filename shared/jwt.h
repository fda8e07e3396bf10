/*
 * jwt — JSON Web Tokens signed with HMAC-SHA256 (RFC 7519, JWS compact serialization of
 * RFC 7515 §7.1, algorithm HS256 of RFC 7518 §3.2), following RFC 8725 (JWT BCP).
 *
 * Tokens authenticate callers of the admin API. Only HS256 exists here: the algorithm is
 * an allow-list of one, taken from our configuration and never from the token, so "none",
 * other HMAC sizes and public-key algorithms are all refused (RFC 8725 §2.1, §3.1).
 *
 * Verification order, and why:
 *   1. size (<= JWT_MAX_BYTES) and shape (three base64url segments, RFC 7515 §7.1)
 *   2. header: a JSON object (RFC 7515 §5.2 step 3-4); duplicate names rejected
 *   3. algorithm: "alg" exactly "HS256"; any "crit" member is refused because we
 *      implement no extensions (RFC 7515 §4.1.11)                   -> SL_EJWT_ALG
 *   4. signature: HMAC over the ASCII "header.payload" as received (RFC 7515 §5.2 step
 *      8), compared in constant time                                -> SL_EJWT_SIGNATURE
 *   5. payload: only now parsed as JSON, so the parser never sees unauthenticated claims;
 *      it must be an object whose "exp", "nbf", "iat" are integers when present
 *   6. time: expired when now >= exp + leeway (RFC 7519 §4.1.4), not yet valid when
 *      now < nbf - leeway (RFC 7519 §4.1.5). Time is a parameter, so this is pure.
 * Shape and JSON problems are SL_EJWT_MALFORMED. Misuse by the caller (NULL token or key,
 * empty key, negative leeway) is SL_EINVAL.
 *
 * Keys: RFC 7518 §3.2 requires an HS256 key of at least 32 bytes. Enforcing that is the
 * job of whoever loads keys from configuration; this module accepts any non-empty key so
 * that published test vectors with shorter secrets still verify.
 *
 * Ownership: jwt_sign_hs256 returns a malloc'd string the caller frees; on success
 * jwt_verify_hs256 gives the caller a new reference to the claims (json_decref it).
 * On failure outputs are set to NULL.
 */
#ifndef SLUICE_JWT_H
#define SLUICE_JWT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Longest token accepted or produced; larger input is refused before decoding. */
#define JWT_MAX_BYTES 8192

/* Sign claims (a JSON object, serialized compactly in insertion order) under the header
 * {"alg":"HS256","typ":"JWT"}. 0, SL_EINVAL (claims not an object, empty key),
 * SL_ETOOBIG (token would exceed JWT_MAX_BYTES) or SL_ENOMEM. */
int jwt_sign_hs256(const json_t *claims, const uint8_t *key, size_t keylen, char **out_token);

/* Verify a NUL-terminated token at Unix time now_s, tolerating leeway_s (>= 0) seconds
 * of clock skew. out_claims may be NULL when only the verdict is wanted. */
int jwt_verify_hs256(const char *token, const uint8_t *key, size_t keylen, int64_t now_s,
                     int64_t leeway_s, json_t **out_claims);

#endif
