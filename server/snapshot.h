/*
 * snapshot — the control plane's view of the fleet: every agent's GET /v1/stats turned
 * into per-interval rates and percentiles, merged service → replica → route.
 *
 * Data flow. The poller (the I/O shell) fetches each agent's /v1/stats every interval and
 * parses the body's text with agent_sample_parse into a struct agent_sample: counters cumulative since
 * that agent started. Two consecutive samples of one agent and the time between them give
 * a struct replica_view (replica_view_compute): what happened in that interval — request
 * and status-class counts and the latency histogram of exactly the interval's requests
 * (histogram_subtract). Each round the caller builds a struct snapshot and adds every
 * replica's view (snapshot_add_replica). A service sums its replicas' counts and rates and
 * MERGES their interval histograms, so a service percentile is the percentile of all its
 * replicas' requests, never an average of replica percentiles. snapshot_json renders the
 * round for the API and the TUI; the window_counts functions feed the SLO module.
 *
 * Rules
 *  - Errors are 5xx plus "none" (no answer: reset, timeout without a response); 4xx, 429
 *    included, are the client's and count as available.
 *  - Rates are interval counts / (interval_ms / 1000). A service's rps is the sum of its
 *    replicas' rps (each replica over its own interval); its error_ratio, percentiles and
 *    cache hit ratio come from summed counts and the merged histogram.
 *  - Percentiles follow histogram.h (nearest rank, the answer is the last value of the
 *    bucket reaching the rank, clamped to the window's max) and are reported in ms.
 *  - Restart: if the agent's id changed, its uptime went down, a route it reported is
 *    gone, or any cumulative counter (requests, a status class, a histogram bucket or its
 *    sum, cache hits/misses/stale, limiter allowed/limited) went down, the agent restarted
 *    between the polls; the window is then the current sample alone (everything since the
 *    restart happened within the interval) and view->restarted is set.
 *  - No previous sample (first poll of an agent): the view has no window
 *    (interval_ms == 0): identity and gauges only, no rates.
 *  - JSON: a value that cannot be known is null, never 0 — ratios with a zero
 *    denominator, percentiles of an empty window, every metric of a down replica or of a
 *    replica without a window. A rate of a window without requests is 0.
 *  - Only up replicas with a window enter the service totals (in_flight: every up one).
 *
 * Bounds: routes per sample SAMPLE_ROUTES_MAX (the agent's own bound; more are dropped and
 * counted in routes_dropped, the totals still cover them), routes per service the same
 * (more are left out of the service's route list, not its totals), services per snapshot
 * SNAPSHOT_SERVICES_MAX and replicas per service SNAPSHOT_REPLICAS_MAX (SL_ETOOBIG past
 * them). Names longer than their bound are a parse error, not truncated (ids must not
 * collide).
 *
 * Memory: a struct traffic embeds a histogram (5.9 KB), so a sample or view is ~6 KB plus
 * ~6 KB per route, held in a heap array the object owns (init/release). Pure: no I/O, no
 * clock reads (times are arguments), not thread-safe: one thread owns each object.
 */
#ifndef SERVER_SNAPSHOT_H
#define SERVER_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "histogram.h"

#define SNAPSHOT_ERR_MAX      128
#define SAMPLE_ROUTES_MAX     64 /* the agent's STATS_ROUTES_MAX */
#define SAMPLE_ID_MAX         64 /* bytes with the NUL, as AGENT_ID_MAX */
#define SAMPLE_SERVICE_MAX    64
#define SAMPLE_VERSION_MAX    32
#define SAMPLE_ROUTE_NAME_MAX 96 /* as ROUTE_NAME_MAX */
#define SNAPSHOT_SERVICES_MAX 64
#define SNAPSHOT_REPLICAS_MAX 256 /* per service */

enum replica_role { REPLICA_SIDECAR, REPLICA_GATEWAY };
/* The agent's states (agent_state_name) plus DOWN, which only the caller can know. */
enum replica_state {
    REPLICA_SERVING,
    REPLICA_DRAINING,
    REPLICA_DRAINED,
    REPLICA_MAINT,
    REPLICA_DOWN
};

const char *replica_role_name(enum replica_role r);   /* "sidecar", "gateway" */
const char *replica_state_name(enum replica_state s); /* "serving" … "maint", "down" */

/* Who a replica says it is. */
struct agent_identity {
    char id[SAMPLE_ID_MAX];
    char service[SAMPLE_SERVICE_MAX]; /* "default" when not sent, as the agent's default */
    char version[SAMPLE_VERSION_MAX]; /* "" when not sent */
    enum replica_role role;           /* sidecar when not sent */
    enum replica_state state;         /* serving when not sent */
    unsigned weight;                  /* 0..100; 100 when not sent */
    uint64_t policy_version;
};

/* Request counters of the totals or of one route: cumulative in a sample, the interval's
 * in a view, summed in a service. */
struct traffic {
    uint64_t requests;
    uint64_t by_class[6];        /* [0] no answer, [1] 1xx … [5] 5xx (agent/stats.h) */
    struct histogram latency_us; /* request head → response complete */
};

struct route_traffic {
    char name[SAMPLE_ROUTE_NAME_MAX];
    struct traffic t;
};

struct sample_cache {
    bool enabled;
    uint64_t hits, misses, stale, evictions, expirations; /* cumulative */
    uint64_t entries, bytes;                              /* gauges */
    double hit_ratio_window[3]; /* the agent's 1 s, 10 s, 60 s ratios; NAN: null / not sent */
};

struct sample_drain {
    bool active; /* the agent sent a drain object (not null) */
    uint64_t elapsed_ms, remaining_ms, in_flight;
};

/* One parsed poll of one agent. Missing fields (older agents) keep the defaults above and
 * zero; a missing "totals" is the sum of the routes. */
struct agent_sample {
    struct agent_identity who;
    uint64_t uptime_s;
    uint64_t in_flight;
    struct traffic totals;
    struct route_traffic *routes; /* nroutes, in the agent's order; owned */
    unsigned nroutes;
    unsigned routes_dropped; /* routes past SAMPLE_ROUTES_MAX */
    struct sample_cache cache;
    uint64_t limiter_allowed, limiter_limited; /* summed over the agent's policies */
    struct sample_drain drain;
};

void agent_sample_init(struct agent_sample *s);
void agent_sample_release(struct agent_sample *s);
/* Replace *out with the parse of one /v1/stats document: len bytes of JSON text, read in
 * one pass without building a tree (jscan.h); unknown members are skipped, a member sent
 * twice counts once, the last. Accepts "routes" as the agent's array of route objects
 * named by "route" or as an object {name: route}. A member that is absent or null keeps
 * its default; malformed JSON ("offset N: reason"), a member of the wrong type or range, a
 * histogram of another layout or unit, or whose "count" disagrees with its buckets, is
 * SL_EPARSE with "path: reason" in err; SL_ENOMEM. On error *out is empty (as after
 * init). */
int agent_sample_parse(const char *text, size_t len, struct agent_sample *out,
                       char err[SNAPSHOT_ERR_MAX]);

/* What one replica did between two polls. */
struct replica_view {
    struct agent_identity who; /* from the current sample */
    uint64_t uptime_s, in_flight;
    struct sample_drain drain;
    bool cache_enabled;
    struct sample_cache cache; /* the current sample's (counters cumulative, gauges) */
    uint64_t interval_ms; /* 0: no window (first sample); the fields below are then 0 */
    bool restarted;       /* the window is the current sample alone (see Rules) */
    struct traffic totals;
    struct route_traffic *routes; /* the current sample's routes, same order; owned */
    unsigned nroutes;
    uint64_t cache_hits, cache_misses, cache_stale;
    uint64_t limiter_allowed, limiter_limited;
};

void replica_view_init(struct replica_view *v);
void replica_view_release(struct replica_view *v);
/* Replace *out with the window from prev (NULL: none, the first poll) to cur, interval_ms
 * apart (> 0 when prev is given, else SL_EINVAL). SL_ENOMEM. */
int replica_view_compute(struct replica_view *out, const struct agent_sample *prev,
                         const struct agent_sample *cur, uint64_t interval_ms);

/* A window's traffic in numbers. */
struct window_summary {
    uint64_t requests, errors; /* errors: 5xx + no answer */
    double rps, errors_per_s;
    double error_ratio;     /* errors / requests; NAN without requests */
    uint64_t latency_count; /* values in the histogram; the percentiles are 0 without */
    uint64_t p50_us, p95_us, p99_us;
};

/* SLI counts over a window: total = requests, good_avail = not 5xx and answered,
 * good_latency = requests whose latency is <= threshold_us. The latency count is
 * conservative (histogram_le_counts): a bucket straddling the threshold counts as bad, so
 * pick thresholds one below a bucket boundary (e.g. 1007, 255, 63) to be exact. */
struct window_counts {
    uint64_t total, good_avail, good_latency;
};

/* route NULL: the totals. false if the route is not in the view; *out then describes an
 * empty window (counts 0, error_ratio NAN). */
bool replica_view_summary(const struct replica_view *v, const char *route,
                          struct window_summary *out);
bool replica_view_counts(const struct replica_view *v, const char *route, uint64_t threshold_us,
                         struct window_counts *out);

/* One round of the fleet. Opaque. */
struct snapshot;

/* ts_ms: the round's time, on the clock the caller uses for last_seen_ms (wall clock ms
 * since the epoch suggested: it is shown as "ts"). NULL on allocation failure. */
struct snapshot *snapshot_new(uint64_t ts_ms);
void snapshot_free(struct snapshot *s);
/* Add one replica under v->who.service. up false: the poll failed; v holds the last known
 * identity (the last view computed, or a released view with who filled in), shown with
 * state "down" and null metrics, and nothing of it enters the totals. last_seen_ms: when
 * the replica last answered, 0 for never (null in the JSON). SL_EEXISTS if the service
 * already has this id, SL_ETOOBIG past a bound, SL_ENOMEM; the snapshot is then unchanged
 * but for empty service routes. */
int snapshot_add_replica(struct snapshot *s, const struct replica_view *v, bool up,
                         uint64_t last_seen_ms);

/* A service's totals or one of its routes (route NULL: totals), over its up replicas with a
 * window. false if the service or route is unknown; *out is then an empty window's. */
bool snapshot_service_summary(const struct snapshot *s, const char *service, const char *route,
                              struct window_summary *out);
bool snapshot_service_counts(const struct snapshot *s, const char *service, const char *route,
                             uint64_t threshold_us, struct window_counts *out);

/* {"ts", "services":[{"name", "replicas":[{"id", "role", "state", "up", "weight", "version",
 *   "rps", "error_ratio", "p50_ms", "p95_ms", "p99_ms", "in_flight", "cache_hit_ratio",
 *   "limited_per_s", "policy_version", "restarted", "last_seen_ms_ago",
 *   "routes":[{"name", "rps", "error_ratio", "p50_ms", "p95_ms", "p99_ms"}]}],
 *   "totals":{"rps", "error_ratio", "p50_ms", "p95_ms", "p99_ms", "in_flight",
 *   "cache_hit_ratio", "limited_per_s", "replicas", "replicas_up"},
 *   "routes":[{"name", "rps", ...} merged over the replicas]}]}
 * Services sorted by name, replicas by id, routes in first-seen order. NULL on allocation
 * failure. */
json_t *snapshot_json(const struct snapshot *s);

#endif
