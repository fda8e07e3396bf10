/*
 * crypto — the one adapter over OpenSSL libcrypto (STYLE.md "Adapters"): random bytes,
 * SHA-256, SHA-1, HMAC-SHA256 and a constant-time comparison. No other file includes an
 * OpenSSL header, so a change of library touches only crypto.c.
 *
 * Contract:
 *  - Digests write fixed-size outputs into caller-owned arrays; nothing is allocated that
 *    the caller must free.
 *  - The hash functions cannot fail on valid arguments. If OpenSSL itself fails (out of
 *    memory inside a provider, a broken FIPS module) they abort the process rather than
 *    return a digest that is not one: an all-zero "MAC" that a verifier then compares
 *    against would fail open. Only crypto_random_bytes reports failure (SL_ECRYPTO),
 *    because an exhausted entropy source is an environmental, recoverable condition.
 *  - crypto_equal takes time that depends only on n, never on where a and b differ, so
 *    MACs and key hashes compare without a timing side channel (RFC 8725 §3.1 spirit,
 *    RFC 2104 §5 on MAC verification).
 *  - SHA-1 is here for protocols that require it (WebSocket accept key, RFC 6455 §4.2.2);
 *    it must not be used where collision resistance matters.
 */
#ifndef SLUICE_CRYPTO_H
#define SLUICE_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA256_BYTES 32
#define CRYPTO_SHA1_BYTES   20

/* Fill out with n bytes from the CSPRNG. 0, or SL_ECRYPTO if the generator failed (out is
 * then unspecified and must not be used). */
int crypto_random_bytes(void *out, size_t n);

void crypto_sha256(const void *data, size_t len, uint8_t out[32]);
void crypto_sha1(const void *data, size_t len, uint8_t out[20]);
/* HMAC-SHA256 (RFC 2104, FIPS 198-1). Any key length, including 0 and longer than the
 * 64-byte block (such keys are hashed first, RFC 2104 §3). */
void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        uint8_t out[32]);

/* True when the n bytes at a and b are equal; constant time in their contents. */
bool crypto_equal(const void *a, const void *b, size_t n);

#endif
