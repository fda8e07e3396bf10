/*
 * gateway — the upstream pool of `sluice-agent --role gateway`: which replicas exist, which
 * may take a new request, and which one each request goes to (DESIGN §4.1, issue 6).
 *
 *   --upstreams a,b,c  or  --discover SERVICE (Redis registry, DESIGN §4.1 "Registration")
 *        │
 *        ▼
 *   struct gateway (one per agent, under its mutex)          health thread (one):
 *     slots: name, address, weight, registry id/state          every health interval: GET
 *     uh_pool (shared/upstream_health.h): active health,       readyz of each upstream
 *       administrative state, outlier ejection, panic          (libcurl multi, timeouts);
 *     generation: bumped on every change a balancer sees       every second: the registry
 *        │                                                      (--discover), ejection ends
 *        ▼
 *   per worker: struct balancer (shared/balancer.h), resynced when the generation moves;
 *   picks take no lock. Request outcomes come back through gateway_outcome (a short lock).
 *
 * Health checks: a discovered replica is checked at its sidecar's admin address
 * (`GET /readyz`); a static upstream at its own address and --health-path. A 200 is a
 * passed check. A 503 whose body names a state (draining, drained, maint) sets that
 * administrative state at once (no new requests from that moment), anything else is a
 * failed check (fall). The registry's state does the same for discovered replicas.
 *
 * Retries (RFC 9110 §9.2.2): gateway_may_retry says whether a failed attempt may go to
 * another replica: at most --retries per request, within the retry budget (--retry-budget
 * percent of requests in flight, at least 3 at once, as Envoy), and only if the request
 * is idempotent or carries Idempotency-Key, or nothing of it was sent (a connect failure).
 */
#ifndef AGENT_GATEWAY_H
#define AGENT_GATEWAY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "json.h"
#include "prom.h"

struct agent;
struct worker_core;

#define GATEWAY_MAX_UPSTREAMS 64
#define GATEWAY_NAME_MAX 64

/* Build the pool from the configuration (--upstreams / --discover, --lb, health and
 * outlier flags). SL_OK, or SL_EINVAL with a message naming the flag. */
int gateway_new(struct agent *a, char err[256]);
/* Start the health thread (after the workers exist). */
int gateway_start(struct agent *a, char err[256]);
void gateway_free(struct agent *a);

/* Per worker: its balancer. */
struct gw_worker *gateway_worker_new(struct agent *a);
void gateway_worker_free(struct gw_worker *w);

/* The upstream for a new attempt: a slot (≥ 0) and its address, or -1 when no upstream
 * may take it. key: the hash key (client IP or header value) for hash balancing; exclude:
 * the slot of the failed attempt (−1 none), avoided when another is routable. */
int gateway_pick(struct worker_core *wc, const char *key, size_t key_len, int exclude,
                 const struct sockaddr_storage **addr, socklen_t *addr_len, const char **name);
/* An attempt on slot ended: latency (µs) and how (uh_outcome: OK, HTTP_5XX,
 * CONNECT_FAIL; or -1: neutral, e.g. the client went away). Every gateway_pick is matched
 * by one gateway_outcome. */
void gateway_outcome(struct worker_core *wc, int slot, uint64_t latency_us, int outcome);
/* The hash key of a request per --lb (hash:ip: the client address; hash:header:NAME:
 * that field's value). NULL/0 when the algorithm does not hash. */
bool gateway_wants_header(const struct agent *a, const char **name);

/* Whether the failed attempt may be retried on another replica (counts the retry in the
 * budget when true; call gateway_retry_done when that retry ends). */
bool gateway_may_retry(struct agent *a, unsigned retries_so_far, bool idempotent,
                       bool nothing_sent);
void gateway_retry_done(struct agent *a);
/* Requests in flight through the gateway (the retry budget's base). */
void gateway_request_started(struct agent *a);
void gateway_request_finished(struct agent *a);

/* Live changes from the admin API: SL_OK or SL_EINVAL/SL_ENOTFOUND. */
int gateway_set_algorithm(struct agent *a, const char *alg);
int gateway_set_weight(struct agent *a, const char *upstream, unsigned weight);
/* A name of a routable upstream, for background cache revalidation; false when none. */
bool gateway_any_upstream(struct agent *a, char out[GATEWAY_NAME_MAX]);

json_t *gateway_stats_json(struct agent *a);
int gateway_prom(struct prom *w, struct agent *a);

#endif
