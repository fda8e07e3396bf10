#include "base62.h"

#include "crypto.h"
#include "err.h"

static const char base62_alphabet[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Largest multiple of 62 that fits in a byte: accepting only bytes below it makes
 * byte % 62 exactly uniform. */
#define BASE62_REJECT_AT 248
/* Random bytes fetched per call to the CSPRNG. */
#define BASE62_RANDOM_BATCH 64

static int base62_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 36;
    return -1;
}

size_t base62_encode_u64(uint64_t v, char out[12])
{
    char rev[BASE62_U64_MAX_CHARS];
    size_t n = 0;

    do {
        rev[n++] = base62_alphabet[v % 62];
        v /= 62;
    } while (v > 0);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    out[n] = '\0';
    return n;
}

int base62_decode_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (!base62_is_valid(s, len))
        return SL_EPARSE;
    for (size_t i = 0; i < len; i++) {
        uint64_t d = (uint64_t)base62_value(s[i]);
        if (v > (UINT64_MAX - d) / 62)
            return SL_ERANGE;
        v = v * 62 + d;
    }
    *out = v;
    return SL_OK;
}

int base62_random(char *out, size_t nchars)
{
    uint8_t batch[BASE62_RANDOM_BATCH];
    size_t used = sizeof(batch); /* empty: refill on first use */
    size_t n = 0;

    while (n < nchars) {
        if (used == sizeof(batch)) {
            if (crypto_random_bytes(batch, sizeof(batch)) != SL_OK) {
                out[0] = '\0';
                return SL_ECRYPTO;
            }
            used = 0;
        }
        uint8_t b = batch[used++];
        if (b < BASE62_REJECT_AT)
            out[n++] = base62_alphabet[b % 62];
    }
    out[n] = '\0';
    return SL_OK;
}

bool base62_is_valid(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (base62_value(s[i]) < 0)
            return false;
    return true;
}
