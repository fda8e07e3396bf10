/*
 * limiter — rate limiting on the agent's request path (DESIGN §4.2), between reading a
 * request head and faults/forwarding.
 *
 * For a request, every policy of the current set that matches it (scope, method, path
 * prefix; at most LIMITS_PER_REQUEST, in set order) decides: local policies at once in
 * the shared local store, Redis policies asynchronously on the worker's own Redis
 * connection (the request waits in CONN_LIMIT; the loop never blocks). A store error is
 * resolved per policy by on_store_error: open (admit), closed (refuse), local (decide
 * locally at limit ÷ live agents). Then, if an enforcing policy said no, the agent answers
 * 429 itself; shadow policies only count. Every response a policy covered carries
 * RateLimit-Policy / RateLimit (draft-ietf-httpapi-ratelimit-headers-10).
 */
#ifndef AGENT_LIMITER_H
#define AGENT_LIMITER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "json.h"
#include "policy.h"
#include "prom.h"

#define LIMITS_PER_REQUEST 4
#define POLICY_STATS_MAX 64

struct conn;
struct iobuf;
struct agent;

/* Per-policy decision counters, one table per agent (slot per policy name). */
struct policy_counters {
    char name[POLICY_NAME_MAX];
    _Atomic uint64_t allowed, limited, shadow_limited, store_errors, fallback_local,
        failed_open, failed_closed;
};

struct policy_stats {
    pthread_mutex_t lock; /* slot assignment only */
    struct policy_counters slots[POLICY_STATS_MAX];
    atomic_uint n;
};

/* Assigns each policy of the set its counter slot (by name); control/admin thread. */
void limits_assign_slots(struct policy_stats *ps, struct policy_set *set);

/* 0: no policy applies or all decided (continue: limits_verdict); 1: waiting for Redis
 * (proxy_limits_done is called later). */
int limits_start(struct conn *c);
/* After every decision: false → the request was answered (429). */
bool limits_verdict(struct conn *c);
/* The headers for the response (RateLimit-Policy / RateLimit and, when configured,
 * X-RateLimit-*). */
bool limits_headers(const struct conn *c, struct iobuf *out);
/* The conn is going away while decisions are pending. */
void limits_abandon(struct conn *c);

json_t *limits_stats_json(struct agent *a);
int limits_prom(struct prom *w, struct agent *a);

#endif
