/*
 * stats — the agent's request metrics (DESIGN §4.1 /v1/stats and /metrics).
 *
 * Each worker records into its own struct worker_stats, one struct route_stats per route
 * (index 0 collects paths no route matched, and learned routes past the bound), without
 * locks: single writer, relaxed atomics, as histogram.h and rate.h are. Readers (the
 * admin API) merge every worker's routes into a private struct stats_view and render it
 * as JSON or Prometheus text.
 */
#ifndef AGENT_STATS_H
#define AGENT_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "histogram.h"
#include "json.h"
#include "prom.h"
#include "rate.h"

#define STATS_ROUTES_MAX 64 /* route index 0 = "other" */

struct route_stats {
    _Atomic uint64_t requests;
    _Atomic uint64_t by_class[6]; /* [1] 1xx … [5] 5xx, [0] no answer (reset, blackhole) */
    _Atomic uint64_t bytes_in;    /* request bytes from clients (head + body) */
    _Atomic uint64_t bytes_out;   /* response bytes to clients */
    _Atomic uint64_t upstream_errors;   /* connect failures and resets → 502 */
    _Atomic uint64_t upstream_timeouts; /* → 504 */
    _Atomic uint64_t faulted;           /* requests a fault was applied to */
    _Atomic uint64_t rejected;          /* malformed requests answered 4xx by the agent */
    struct histogram latency_us;        /* request head received → response complete */
    struct histogram upstream_us;       /* request sent → upstream response head */
    struct rate rate_requests;
    struct rate rate_errors;            /* 5xx and no answer */
};

struct worker_stats {
    struct route_stats routes[STATS_ROUTES_MAX];
    _Atomic unsigned in_flight;
    _Atomic uint64_t connections_accepted;
    _Atomic uint64_t upstream_connects;  /* new upstream connections opened */
    _Atomic uint64_t upstream_reused;    /* requests sent on a kept-alive connection */
    struct rate cache_hits;    /* answered from the response cache (fresh or stale) */
    struct rate cache_lookups; /* cacheable requests looked up (hits + misses) */
};

/* One finished request, as the proxy saw it. */
struct stats_request {
    unsigned route;
    int status;        /* 0 = no answer */
    uint64_t bytes_in, bytes_out;
    uint64_t latency_us, upstream_us;
    bool upstream_error, upstream_timeout, faulted, rejected;
};

void stats_record(struct worker_stats *ws, const struct stats_request *r, uint64_t now_ms);

/* A merged, private copy for rendering. */
struct stats_view {
    struct route_stats routes[STATS_ROUTES_MAX];
    struct route_stats total;
    unsigned in_flight;
    uint64_t connections_accepted, upstream_connects, upstream_reused;
};

/* Zeroes view and adds ws into it (call once per worker), then stats_view_finish. */
void stats_view_reset(struct stats_view *v);
void stats_view_add(struct stats_view *v, const struct worker_stats *ws);
void stats_view_finish(struct stats_view *v);

/* {"requests", "status":{"2xx":..}, "bytes_in", ..., "rate":{"1s","10s","60s"},
 *  "error_rate":{...}, "latency_ms":{"p50","p90","p99","p999"}, "latency_histogram":{...}} */
json_t *stats_route_json(const struct route_stats *r, uint64_t now_ms);
/* Prometheus families for every route with traffic (label route="..."). names[i] is the
 * route name for index i. */
int stats_prom(struct prom *w, const struct stats_view *v, const char *const *names,
               unsigned nroutes, const char *agent_id);

#endif
