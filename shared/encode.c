#include "encode.h"

#include "err.h"

static const char hex_digits[] = "0123456789abcdef";

/* RFC 4648 §4 (Table 1) and §5 (Table 2): they differ only in values 62 and 63. */
static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void hex_encode(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if (len % 2 != 0)
        return SL_EPARSE;
    if (cap < len / 2)
        return SL_ETOOBIG;
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex_value(in[i]);
        int lo = hex_value(in[i + 1]);
        if (hi < 0 || lo < 0)
            return SL_EPARSE;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    *out_len = len / 2;
    return SL_OK;
}

size_t base64_encoded_len(size_t n, bool url)
{
    if (!url)
        return (n + 2) / 3 * 4;
    /* Unpadded: a final group of 1 or 2 bytes takes 2 or 3 characters (RFC 4648 §3.2). */
    static const size_t tail_chars[3] = {0, 2, 3};
    return n / 3 * 4 + tail_chars[n % 3];
}

size_t base64_encode(const uint8_t *in, size_t n, char *out, bool url)
{
    const char *alpha = url ? b64_url : b64_std;
    size_t o = 0, i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        out[o++] = alpha[v >> 6 & 63];
        out[o++] = alpha[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        if (!url) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        out[o++] = alpha[v >> 6 & 63];
        if (!url)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

size_t base64_decoded_max(size_t len)
{
    return len / 4 * 3 + 2;
}

static int b64_value(char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

/* Decode n characters (n is 2, 3 or 4) into n-1 (or 3) bytes. Rejects bad characters
 * and, for a short final group, set bits below the last byte (RFC 4648 §3.5). */
static int b64_group(const char *in, size_t n, bool url, uint8_t *out)
{
    uint32_t v = 0;
    for (size_t k = 0; k < 4; k++) {
        int d = k < n ? b64_value(in[k], url) : 0;
        if (d < 0)
            return SL_EPARSE;
        v = v << 6 | (uint32_t)d;
    }
    if ((n == 2 && (v & 0xffff)) || (n == 3 && (v & 0xff)))
        return SL_EPARSE;
    out[0] = (uint8_t)(v >> 16);
    if (n >= 3)
        out[1] = (uint8_t)(v >> 8);
    if (n == 4)
        out[2] = (uint8_t)v;
    return SL_OK;
}

int base64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len, bool url)
{
    size_t data_len = len;

    if (!url) {
        /* RFC 4648 §4: padded to a multiple of 4 with at most two '='. A '=' anywhere
         * else is not in the alphabet and fails in b64_group. */
        if (len % 4 != 0)
            return SL_EPARSE;
        if (data_len > 0 && in[data_len - 1] == '=')
            data_len--;
        if (data_len > 0 && in[data_len - 1] == '=')
            data_len--;
    }
    size_t rem = data_len % 4;
    if (rem == 1)
        return SL_EPARSE; /* 6 bits cannot make a byte */
    size_t need = data_len / 4 * 3 + (rem ? rem - 1 : 0);
    if (cap < need)
        return SL_ETOOBIG;

    size_t i = 0, o = 0;
    for (; i + 4 <= data_len; i += 4, o += 3)
        if (b64_group(in + i, 4, url, out + o) != SL_OK)
            return SL_EPARSE;
    if (rem && b64_group(in + i, rem, url, out + o) != SL_OK)
        return SL_EPARSE;
    *out_len = need;
    return SL_OK;
}
