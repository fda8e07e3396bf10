/*
 * traces — the control plane's trace store: spans read from the Redis stream
 * "sluice:spans" (agent/spans.h, DESIGN §4.6) are assembled into traces, kept in bounded
 * memory with errors and slow traces kept longest, and served to GET /v1/traces (list
 * with filters) and GET /v1/traces/{trace_id} (one trace as a tree with its critical
 * path).
 *
 * Pure core (STYLE "Structure"): no I/O, no clock (now_ms is passed in, any clock whose
 * values compare), not thread-safe (the caller holds its lock around every call). The
 * store copies what it keeps from the documents; the caller keeps ownership of them.
 *
 * Input: OTLP/HTTP JSON documents, as agent/spans.c writes them
 *   resourceSpans[].resource.attributes  service.name, sluice.agent.id, sluice.role
 *   resourceSpans[].scopeSpans[].spans[] traceId (32 lowercase hex), spanId (16),
 *     parentSpanId (16; absent or "" for a root), name, kind, flags, startTimeUnixNano,
 *     endTimeUnixNano (decimal strings, or JSON integers), status.code, attributes
 *     http.request.method, http.route, http.response.status_code, sluice.request_id,
 *     sluice.upstream_ns, sluice.faulted.
 *   A span is invalid, skipped and counted in spans_invalid (never fatal for the rest of
 *   the document) when: an id (parentSpanId too, when not empty) is not lowercase hex of
 *   the right length or is all zero; a time is missing, not a non-negative integer that
 *   fits 64 bits, or end < start; name, kind (0..5), flags (32 bits), status (code
 *   0..2) or attributes (an array) have the wrong type or range. Absent members are
 *   empty or zero. A resourceSpans or scopeSpans entry of the wrong shape (its spans
 *   cannot be reached) counts as one invalid span. Strings of
 *   TRACE_STR_MAX bytes or more are cut shorter, at a UTF-8 character boundary. An
 *   HTTP status outside 100..599 is ignored (treated as absent).
 *   Spans of one trace may arrive in any order, in several documents, from several
 *   agents (the gateway's span is the parent of the sidecar's). A span whose id the trace
 *   already holds is a duplicate: the first copy is kept, the later one counted in
 *   spans_duplicate.
 *
 * Bounds (what happens at them)
 *   - max_traces: adding a span of a new trace to a full store first evicts one trace
 *     (below); the new trace is always admitted.
 *   - max_spans_per_trace: a trace's later spans are dropped and counted in
 *     spans_dropped (the first ones kept; a root that arrives after the bound is lost,
 *     and the trace then shows incomplete).
 *   - Memory: at most max_traces × max_spans_per_trace spans, each at most
 *     sizeof(span) + 7 × TRACE_STR_MAX bytes (about 1.8 KiB; ~200 bytes typical). The
 *     defaults bound it to 512k spans.
 *   - A trace id hash table of fixed size (the next power of two ≥ max_traces), so a
 *     lookup is O(1) on average and O(max_traces) at worst (trace ids come from clients).
 *   - A duplicate check is a scan of the trace's spans: O(max_spans_per_trace) per span.
 *
 * Classes and retention ("errors and slow traces first", DESIGN §4.6)
 *   - error:    some span has status.code 2 (ERROR) or http.response.status_code ≥ 500;
 *   - slow:     not an error, and duration ≥ slow_ms;
 *   - ordinary: the rest.
 *   A trace's duration is max(end) − min(start) over the spans it holds, so its class
 *   only ever rises as spans arrive. Eviction takes the oldest ordinary trace, else the
 *   oldest slow one, else the oldest error; "oldest" is arrival order (when the store
 *   first saw the trace), not the agents' timestamps, whose clocks need not agree and
 *   which a late batch would otherwise turn into an instant victim. A span arriving for
 *   an evicted trace starts it again, as a new trace.
 *
 * Shape of a trace (decided when a trace is read, from the spans held at that moment)
 *   - A span is a root when it has no parent, or when its parent is not in the trace and
 *     known to be remote: OTLP span flags have both HAS_IS_REMOTE (0x100) and IS_REMOTE
 *     (0x200) set, or the span was recorded by a gateway (sluice.role "gateway": the
 *     fleet's edge, whose parent is the client's span and never reaches this store).
 *   - An orphan is a span whose parent is not in the trace and not known to be remote (a
 *     span lost, dropped, or not shipped yet). Orphans are shown as extra top-level spans
 *     flagged "orphan": true. Spans whose parents form a cycle (bad input) are not
 *     reachable from any top-level span: one span of each cycle is cut loose and shown as
 *     an orphan, so every span appears exactly once.
 *   - A trace is complete when it holds at least one root and no orphan.
 *   - The entry span is the first root in start order (ties: the one that ends later,
 *     then the smaller span id); with no root, the first orphan. The trace's name,
 *     service and status are the entry span's.
 *
 * Critical path (the spans that determine the end-to-end time; Jaeger's algorithm)
 *   Start at the entry span with cursor = its end. Repeatedly pick, among its children
 *   that start before the cursor, the one whose end clamped to the cursor is latest
 *   (ties: the later start, then the child listed first), mark it critical, descend into
 *   it with its clamped end as its own cursor limit, and move the cursor to its start;
 *   stop when no child starts before the cursor. So of two parallel children only the
 *   one that finishes later is critical, and sequential children are all critical. The
 *   clamp keeps a child that (by clock skew) ends after its parent from being ignored.
 *   Orphans and other roots are not on the path.
 */
#ifndef SERVER_TRACES_H
#define SERVER_TRACES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

#define TRACE_STORE_MAX_TRACES          2000   /* default max_traces */
#define TRACE_STORE_MAX_SPANS_PER_TRACE 256    /* default max_spans_per_trace */
#define TRACE_STORE_SLOW_MS             500    /* default slow_ms */
#define TRACE_STORE_TRACES_CAP          100000 /* largest max_traces accepted */
#define TRACE_STORE_SPANS_CAP           4096   /* largest max_spans_per_trace accepted */
#define TRACE_STR_MAX                   256    /* bytes kept of any string, with the NUL */
#define TRACE_LIST_DEFAULT              50     /* trace_store_list limit 0 */
#define TRACE_LIST_MAX                  1000   /* larger limits are cut to this */
/* Spans nested deeper than this in trace_store_get's tree are shown as top-level spans
 * flagged "detached" (so the document stays within json_parse's 64 levels: each span
 * level costs two). */
#define TRACE_TREE_DEPTH_MAX 24

struct trace_store;

/* Zero fields take the defaults above. */
struct trace_store_limits {
    size_t max_traces;          /* 1..TRACE_STORE_TRACES_CAP */
    size_t max_spans_per_trace; /* 1..TRACE_STORE_SPANS_CAP */
    uint64_t slow_ms;           /* a trace this long or longer is slow */
};

/* NULL when a limit is above its cap, or out of memory. limits NULL: all defaults. */
struct trace_store *trace_store_new(const struct trace_store_limits *limits);
void trace_store_free(struct trace_store *s);

/* Adds every valid span of one OTLP document (see "Input"). SL_OK, even when spans were
 * skipped (counted in the stats); SL_EPARSE when doc is not an object with a
 * "resourceSpans" array (nothing added); SL_ENOMEM when an allocation failed (the spans
 * before it stay added, the rest of the document is not read). now_ms becomes the
 * received_ms of the traces it starts. */
int trace_store_add_otlp(struct trace_store *s, const json_t *doc, uint64_t now_ms);

/* Which status a listed trace must have: a span with this exact HTTP status, a span with
 * a status in this class (code 5 for "5xx"), or the error class (see "Classes"). */
enum trace_status_match {
    TRACE_STATUS_ANY = 0,
    TRACE_STATUS_CODE,
    TRACE_STATUS_CLASS,
    TRACE_STATUS_ERROR,
};

/* All conditions must hold; zero / NULL members match every trace. Strings match
 * exactly (case matters). */
struct trace_filter {
    const char *route;        /* some span's http.route */
    const char *service;      /* some span's service.name */
    uint64_t min_duration_ms; /* duration ≥ this */
    enum trace_status_match status_match;
    int status; /* TRACE_STATUS_CODE: 100..599; TRACE_STATUS_CLASS: 1..5 */
};

/* Parses a status filter as a URL would carry it: "404" (100..599), "5xx" (1xx..5xx,
 * "5XX" too) or "error" into f's status members. SL_OK or SL_EINVAL (f unchanged). */
int trace_filter_parse_status(struct trace_filter *f, const char *text);

/* {"matched": N, "traces": [...]}: the traces that pass f (NULL: all), errors first, then
 * slow ones, then the rest; within each group the newest start first (ties: the later
 * arrival). At most limit items (0: TRACE_LIST_DEFAULT; above TRACE_LIST_MAX: that);
 * matched counts all that passed. Each item:
 *   trace_id, name (entry span's), service (entry span's), status (entry span's HTTP
 *   status, 0 if none), error, slow, complete, duration_ms (real, microsecond
 *   precision), span_count, start_unix_ms (the earliest span's start), received_ms (the
 *   now_ms of its first span), services (distinct service.name values, sorted).
 * New reference; NULL when out of memory. Cost: a scan of every held span, then
 * O(n log n) per listed trace of n spans. */
json_t *trace_store_list(const struct trace_store *s, const struct trace_filter *f, size_t limit);

/* One trace, or NULL when the id is unknown (any string, valid or not) or out of memory:
 *   trace_id, name, service, status, error, slow, complete, orphans (count),
 *   span_count, duration_ms, start_unix_ms, start_unix_nano (decimal string),
 *   received_ms, services, critical_path (span ids in tree order), spans: the top-level
 *   spans (roots in start order, then orphans, then detached ones), each
 *     span_id, parent_span_id (when it has one), name, service, agent_id, role, kind,
 *     method, route, request_id ("" when absent), http_status (0 when absent),
 *     status_code, error, faulted, upstream_ms (when present), offset_ms (start − the
 *     trace's start), duration_ms, critical, orphan, detached (only when true),
 *     children: the same objects, in start order (ties: later end first, then span id).
 * New reference. */
json_t *trace_store_get(const struct trace_store *s, const char *trace_id);

struct trace_store_stats {
    size_t traces;            /* held now */
    size_t spans;             /* held now */
    uint64_t spans_dropped;   /* over max_spans_per_trace */
    uint64_t spans_invalid;   /* skipped as malformed */
    uint64_t spans_duplicate; /* span ids already held */
    uint64_t traces_evicted;  /* to make room for a new trace */
};
void trace_store_stats(const struct trace_store *s, struct trace_store_stats *out);

#endif
