/*
 * spans — per-worker span rings and their OTLP/HTTP JSON form (spans.h).
 *
 * OTLP JSON encoding (opentelemetry-proto docs/specification.md, "JSON Protobuf
 * Encoding"): field names in lowerCamelCase; traceId/spanId/parentSpanId as lowercase
 * hex, not base64; enums (kind, status.code) as integers; 64-bit integers (times,
 * intValue) as decimal strings; fields holding their default value may be omitted, so a
 * root span has no parentSpanId.
 */
#include "spans.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "traceparent.h"
#include "version.h"

#define OTLP_SPAN_KIND_SERVER 2
#define OTLP_STATUS_UNSET     0
#define OTLP_STATUS_ERROR     2

int span_buffer_init(struct span_buffer *b)
{
    memset(b, 0, sizeof(*b));
    b->ring = calloc(SPAN_BUFFER_MAX, sizeof(*b->ring));
    if (!b->ring)
        return SL_ENOMEM;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        free(b->ring);
        b->ring = NULL;
        return SL_ENOMEM;
    }
    return SL_OK;
}

void span_buffer_release(struct span_buffer *b)
{
    if (!b->ring)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b->ring);
    b->ring = NULL;
    b->head = b->count = 0;
}

void span_buffer_push(struct span_buffer *b, const struct span *s)
{
    pthread_mutex_lock(&b->lock);
    if (b->count == SPAN_BUFFER_MAX) {
        b->dropped++; /* the bound: newest spans are dropped until the next shipment */
    } else {
        b->ring[(b->head + b->count) % SPAN_BUFFER_MAX] = *s;
        b->count++;
    }
    pthread_mutex_unlock(&b->lock);
}

unsigned span_buffer_drain(struct span_buffer *b, struct span *out, unsigned max)
{
    pthread_mutex_lock(&b->lock);
    unsigned n = b->count < max ? b->count : max;
    for (unsigned i = 0; i < n; i++)
        out[i] = b->ring[(b->head + i) % SPAN_BUFFER_MAX];
    b->head = (b->head + n) % SPAN_BUFFER_MAX;
    b->count -= n;
    pthread_mutex_unlock(&b->lock);
    return n;
}

uint64_t span_buffer_dropped(struct span_buffer *b)
{
    pthread_mutex_lock(&b->lock);
    uint64_t d = b->dropped;
    pthread_mutex_unlock(&b->lock);
    return d;
}

bool span_should_keep(bool error, uint64_t duration_ns, uint64_t slow_ns, bool sampled)
{
    if (error)
        return true;
    if (slow_ns > 0 && duration_ns >= slow_ns)
        return true;
    return sampled;
}

/* --- OTLP JSON ------------------------------------------------------------------------ */

static json_t *attr_string(const char *key, const char *value)
{
    return json_pack("{s:s, s:{s:s}}", "key", key, "value", "stringValue", value);
}

/* intValue is an int64: a decimal string in OTLP JSON. */
static json_t *attr_int(const char *key, int64_t value)
{
    char num[24];
    snprintf(num, sizeof(num), "%" PRId64, value);
    return json_pack("{s:s, s:{s:s}}", "key", key, "value", "intValue", num);
}

static json_t *attr_bool(const char *key, bool value)
{
    return json_pack("{s:s, s:{s:b}}", "key", key, "value", "boolValue", value);
}

/* Appends item (stolen); false when it is NULL (allocation failed) or cannot be added. */
static bool append(json_t *array, json_t *item)
{
    return item && json_array_append_new(array, item) == 0;
}

static bool id_is_zero(const uint8_t *id, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (id[i])
            return false;
    return true;
}

/* Copies src with every byte outside printable ASCII replaced by '?'. jansson refuses
 * strings that are not UTF-8, and one bad byte from a client (a request id, a raw path)
 * must not cost the whole batch; HTTP fields are ASCII anyway (RFC 9110 §5.5). */
static void ascii_copy(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; i + 1 < cap && src[i]; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[i] = '\0';
}

/* The span with its strings made safe for JSON (and NUL-terminated). */
static void span_clean(const struct span *in, struct span *out)
{
    *out = *in;
    ascii_copy(out->name, sizeof(out->name), in->name);
    ascii_copy(out->route, sizeof(out->route), in->route);
    ascii_copy(out->method, sizeof(out->method), in->method);
    ascii_copy(out->request_id, sizeof(out->request_id), in->request_id);
}

/* Span attributes (OpenTelemetry HTTP semantic conventions, then ours). Empty strings and
 * a missing status (the upstream failed before answering) are left out. */
static json_t *span_attributes(const struct span *s)
{
    json_t *attrs = json_array();
    if (!attrs)
        return NULL;
    bool ok = true;
    if (s->method[0])
        ok = ok && append(attrs, attr_string("http.request.method", s->method));
    if (s->route[0])
        ok = ok && append(attrs, attr_string("http.route", s->route));
    if (s->http_status > 0)
        ok = ok && append(attrs, attr_int("http.response.status_code", s->http_status));
    if (s->request_id[0])
        ok = ok && append(attrs, attr_string("sluice.request_id", s->request_id));
    ok = ok && append(attrs, attr_int("sluice.upstream_ns", (int64_t)s->upstream_ns));
    ok = ok && append(attrs, attr_bool("sluice.faulted", s->faulted));
    if (!ok) {
        json_decref(attrs);
        return NULL;
    }
    return attrs;
}

static json_t *span_json(const struct span *raw)
{
    struct span clean, *s = &clean;
    span_clean(raw, &clean);
    char trace[33], id[17], parent[17], start[24], end[24];
    trace_id_hex(s->trace_id, trace);
    span_id_hex(s->span_id, id);
    span_id_hex(s->parent_id, parent);
    snprintf(start, sizeof(start), "%" PRIu64, s->start_unix_ns);
    snprintf(end, sizeof(end), "%" PRIu64, s->start_unix_ns + s->duration_ns);
    bool root = id_is_zero(s->parent_id, sizeof(s->parent_id));
    /* "s*": the member is left out when the value is NULL; "o" steals, NULL fails. */
    return json_pack("{s:s, s:s, s:s*, s:s, s:i, s:s, s:s, s:o, s:{s:i}}", "traceId", trace,
                     "spanId", id, "parentSpanId", root ? NULL : parent, "name", s->name, "kind",
                     OTLP_SPAN_KIND_SERVER, "startTimeUnixNano", start, "endTimeUnixNano", end,
                     "attributes", span_attributes(s), "status", "code",
                     s->error ? OTLP_STATUS_ERROR : OTLP_STATUS_UNSET);
}

static json_t *resource_json(const char *service, const char *agent_id, const char *role)
{
    json_t *attrs = json_array();
    if (!attrs)
        return NULL;
    /* OpenTelemetry resource semantic conventions: service.name defaults to
     * "unknown_service" when the service is not known. */
    bool ok = append(attrs, attr_string("service.name", service ? service : "unknown_service"));
    ok = ok && append(attrs, attr_string("sluice.agent.id", agent_id ? agent_id : ""));
    ok = ok && append(attrs, attr_string("sluice.role", role ? role : ""));
    if (!ok) {
        json_decref(attrs);
        return NULL;
    }
    return json_pack("{s:o}", "attributes", attrs);
}

json_t *spans_otlp_json(const struct span *spans, unsigned n, const char *service,
                        const char *agent_id, const char *role)
{
    json_t *list = json_array();
    if (!list)
        return NULL;
    for (unsigned i = 0; i < n; i++) {
        if (!append(list, span_json(&spans[i]))) {
            json_decref(list);
            return NULL;
        }
    }
    return json_pack("{s:[{s:o, s:[{s:{s:s, s:s}, s:o}]}]}", "resourceSpans", "resource",
                     resource_json(service, agent_id, role), "scopeSpans", "scope", "name",
                     "sluice-agent", "version", SLUICE_VERSION, "spans", list);
}
