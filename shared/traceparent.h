/*
 * traceparent — W3C Trace Context (https://www.w3.org/TR/trace-context/) header values.
 *
 *   traceparent: 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>
 *
 * Pure: parsing and formatting, plus id generation from rng.h (trace ids must be
 * unique, not secret, and a syscall per request would cost more than the rest of the
 * trace bookkeeping). All-zero ids are invalid (§3.2.2.3,
 * §3.2.2.4); only lowercase hex is accepted; version ff is invalid; a higher version is
 * parsed by its version-00 prefix (§3.2.4). tracestate is forwarded untouched by callers.
 */
#ifndef SLUICE_TRACEPARENT_H
#define SLUICE_TRACEPARENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACEPARENT_LEN 55
#define TRACE_FLAG_SAMPLED 0x01

struct trace_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8]; /* the parent-id field: the caller's span */
    uint8_t flags;
};

/* SL_OK or SL_EPARSE. */
int traceparent_parse(const char *value, size_t len, struct trace_ctx *out);
/* Version 00 form, NUL-terminated (56 bytes). */
void traceparent_format(const struct trace_ctx *ctx, char out[TRACEPARENT_LEN + 1]);
bool trace_is_sampled(const struct trace_ctx *ctx);

/* Random non-zero ids. */
void trace_new_trace_id(uint8_t out[16]);
void trace_new_span_id(uint8_t out[8]);
/* Hex forms for logs and spans (33 and 17 bytes with the NUL). */
void trace_id_hex(const uint8_t id[16], char out[33]);
void span_id_hex(const uint8_t id[8], char out[17]);
/* A uniformly distributed 64-bit number from the same per-thread generator. */
uint64_t trace_random_u64(void);

#endif
