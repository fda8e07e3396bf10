#include "crypto.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "err.h"

/* RAND_bytes takes an int count: feed large requests in bounded chunks. */
#define CRYPTO_RAND_CHUNK_BYTES (1 << 20)
/* SHA-256 block size; longer HMAC keys are replaced by their digest (RFC 2104 §3). */
#define CRYPTO_SHA256_BLOCK_BYTES 64

/* Fail closed: a digest routine that returned without a digest would let a caller compare
 * against uninitialised or zero bytes. See the header. */
static void crypto_die(const char *what)
{
    fprintf(stderr, "sluice: fatal: OpenSSL %s failed\n", what);
    abort();
}

int crypto_random_bytes(void *out, size_t n)
{
    unsigned char *p = out;
    while (n > 0) {
        size_t chunk = n < CRYPTO_RAND_CHUNK_BYTES ? n : CRYPTO_RAND_CHUNK_BYTES;
        if (RAND_bytes(p, (int)chunk) != 1)
            return SL_ECRYPTO;
        p += chunk;
        n -= chunk;
    }
    return SL_OK;
}

static void crypto_digest(const EVP_MD *md, const void *data, size_t len, uint8_t *out,
                          const char *what)
{
    /* EVP_Digest with a NULL pointer and zero length is valid; keep it non-NULL anyway. */
    static const unsigned char empty;
    if (!data)
        data = &empty;
    if (EVP_Digest(data, len, out, NULL, md, NULL) != 1)
        crypto_die(what);
}

void crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
    crypto_digest(EVP_sha256(), data, len, out, "SHA-256");
}

void crypto_sha1(const void *data, size_t len, uint8_t out[20])
{
    crypto_digest(EVP_sha1(), data, len, out, "SHA-1");
}

void crypto_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        uint8_t out[32])
{
    static const unsigned char empty;
    uint8_t key_digest[CRYPTO_SHA256_BYTES];
    unsigned int out_len = 0;

    /* HMAC() takes an int key length. Hashing an over-long key ourselves is exactly what
     * HMAC does internally (RFC 2104 §3), so the result is identical for every length. */
    if (keylen > CRYPTO_SHA256_BLOCK_BYTES) {
        crypto_sha256(key, keylen, key_digest);
        key = key_digest;
        keylen = sizeof(key_digest);
    }
    if (!key)
        key = &empty;
    if (!data)
        data = &empty;
    if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &out_len) ||
        out_len != CRYPTO_SHA256_BYTES)
        crypto_die("HMAC-SHA256");
    OPENSSL_cleanse(key_digest, sizeof(key_digest));
}

bool crypto_equal(const void *a, const void *b, size_t n)
{
    if (n == 0)
        return true;
    return CRYPTO_memcmp(a, b, n) == 0;
}
