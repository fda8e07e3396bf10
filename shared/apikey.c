#include "apikey.h"

#include <stdio.h>
#include <string.h>

#include "base62.h"
#include "crypto.h"
#include "encode.h"
#include "err.h"

int apikey_generate(char out[APIKEY_LEN + 1])
{
    memcpy(out, APIKEY_PREFIX, APIKEY_PREFIX_LEN);
    int rc = base62_random(out + APIKEY_PREFIX_LEN, APIKEY_RANDOM_CHARS);
    if (rc != SL_OK) {
        out[0] = '\0';
        return rc;
    }
    return SL_OK;
}

bool apikey_looks_valid(const char *key)
{
    if (!key)
        return false;
    /* Bounded scan: a hostile header value may be long. */
    if (strnlen(key, APIKEY_LEN + 1) != APIKEY_LEN)
        return false;
    if (memcmp(key, APIKEY_PREFIX, APIKEY_PREFIX_LEN) != 0)
        return false;
    return base62_is_valid(key + APIKEY_PREFIX_LEN, APIKEY_RANDOM_CHARS);
}

void apikey_hash(const char *key, char out_hex[APIKEY_HASH_HEX_LEN + 1])
{
    uint8_t digest[CRYPTO_SHA256_BYTES];
    crypto_sha256(key, strlen(key), digest);
    hex_encode(digest, sizeof(digest), out_hex);
}

void apikey_id(const char *hash_hex, char out[APIKEY_ID_MAX])
{
    snprintf(out, APIKEY_ID_MAX, APIKEY_ID_PREFIX "%.*s", APIKEY_ID_HEX_CHARS, hash_hex);
}
