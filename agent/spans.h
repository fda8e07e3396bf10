/*
 * spans — finished spans of proxied requests, buffered per worker and shipped to Redis in
 * batches (DESIGN §4.6) by the control thread, never on the request path.
 *
 * A worker fills a struct span on its stack and calls span_buffer_push: a short mutex
 * hold (the only contender is the shipper, a few times a second) and a copy into a
 * bounded ring; when the ring is full the span is dropped and counted. The control thread
 * calls span_buffer_drain to take everything at once, builds spans_otlp_json and XADDs
 * it (control.c, the Redis side), one entry per batch, to the stream "sluice:spans"
 * (MAXLEN ~ SPANS_STREAM_MAXLEN), field "otlp" holding an OTLP/HTTP JSON document
 * (resourceSpans[].scopeSpans[].spans[]: ids as lowercase hex, times as decimal-string
 * nanoseconds, kind and status code as integers) so an OTLP collector could take the
 * same bytes.
 */
#ifndef AGENT_SPANS_H
#define AGENT_SPANS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "json.h"

#define SPAN_BUFFER_MAX 2048 /* per worker; more between two shipments are dropped */
#define SPANS_STREAM_KEY "sluice:spans"
#define SPANS_STREAM_MAXLEN 2000 /* entries of ≤ 128 spans: ≤ 256k spans, ~160 MB at worst */ /* entries (batches), trimmed approximately (MAXLEN ~) */
#define SPAN_NAME_MAX 64
#define SPAN_ROUTE_MAX 96
#define SPAN_ID_MAX 65 /* a request id: 64 characters + NUL */

struct span {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_id[8]; /* all zero: a root span */
    char name[SPAN_NAME_MAX];   /* "GET /v1/links/{code}" */
    char route[SPAN_ROUTE_MAX]; /* route template */
    char method[16];
    char request_id[SPAN_ID_MAX];
    uint64_t start_unix_ns;
    uint64_t duration_ns;
    uint64_t upstream_ns; /* time waiting for the upstream's answer */
    int http_status;      /* 0 when the upstream failed before answering */
    bool error;           /* 5xx or upstream failure: OTLP status code 2 (ERROR) */
    bool faulted;         /* a fault was injected into this request */
};

struct span_buffer {
    pthread_mutex_t lock;
    struct span *ring; /* SPAN_BUFFER_MAX entries */
    unsigned head, count;
    uint64_t dropped; /* under lock */
};

int span_buffer_init(struct span_buffer *b);
void span_buffer_release(struct span_buffer *b);
void span_buffer_push(struct span_buffer *b, const struct span *s);
/* Moves up to max spans into out (oldest first); returns how many. */
unsigned span_buffer_drain(struct span_buffer *b, struct span *out, unsigned max);
uint64_t span_buffer_dropped(struct span_buffer *b);

/* Whether to keep a finished request's span: errors and slow requests (duration_ns ≥
 * slow_ns; slow_ns 0 turns that rule off) always, others when the trace is sampled (the
 * caller's traceparent flag or our head decision). */
bool span_should_keep(bool error, uint64_t duration_ns, uint64_t slow_ns, bool sampled);

/* The OTLP JSON document for n spans of one agent (resource attributes service.name,
 * sluice.agent.id, sluice.role). New reference. */
json_t *spans_otlp_json(const struct span *spans, unsigned n, const char *service,
                        const char *agent_id, const char *role);

#endif
