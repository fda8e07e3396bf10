#include "traceparent.h"

#include <string.h>

#include "encode.h"
#include "err.h"
#include "rng.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase is invalid (§3.2.2) */
}

static bool hex_field(const char *s, size_t nbytes, uint8_t *out)
{
    bool nonzero = false;
    for (size_t i = 0; i < nbytes; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
        nonzero |= out[i] != 0;
    }
    return nonzero || nbytes == 1;
}

int traceparent_parse(const char *value, size_t len, struct trace_ctx *out)
{
    uint8_t version;
    if (len < TRACEPARENT_LEN || !hex_field(value, 1, &version) || version == 0xff)
        return SL_EPARSE;
    if (version == 0 && len != TRACEPARENT_LEN)
        return SL_EPARSE;
    if (version != 0 && len > TRACEPARENT_LEN && value[TRACEPARENT_LEN] != '-')
        return SL_EPARSE;
    if (value[2] != '-' || value[35] != '-' || value[52] != '-')
        return SL_EPARSE;
    struct trace_ctx t;
    if (!hex_field(value + 3, 16, t.trace_id) || !hex_field(value + 36, 8, t.span_id) ||
        !hex_field(value + 53, 1, &t.flags))
        return SL_EPARSE;
    *out = t;
    return SL_OK;
}

void traceparent_format(const struct trace_ctx *ctx, char out[TRACEPARENT_LEN + 1])
{
    memcpy(out, "00-", 3);
    hex_encode(ctx->trace_id, 16, out + 3);
    out[35] = '-';
    hex_encode(ctx->span_id, 8, out + 36);
    out[52] = '-';
    hex_encode(&ctx->flags, 1, out + 53);
}

bool trace_is_sampled(const struct trace_ctx *ctx)
{
    return ctx->flags & TRACE_FLAG_SAMPLED;
}

uint64_t trace_random_u64(void)
{
    return rng_u64();
}

static void random_nonzero(uint8_t *out, size_t n)
{
    do {
        rng_bytes(out, n);
    } while (out[0] == 0 && memcmp(out, out + 1, n - 1) == 0);
}

void trace_new_trace_id(uint8_t out[16])
{
    random_nonzero(out, 16);
}

void trace_new_span_id(uint8_t out[8])
{
    random_nonzero(out, 8);
}

void trace_id_hex(const uint8_t id[16], char out[33])
{
    hex_encode(id, 16, out);
}

void span_id_hex(const uint8_t id[8], char out[17])
{
    hex_encode(id, 8, out);
}
