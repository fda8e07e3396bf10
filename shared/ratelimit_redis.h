/*
 * ratelimit_redis — the Redis store of the rate limiters (DESIGN.md §4.2 store "redis" and
 * "redis_lease"): one Lua script per algorithm, with the arithmetic of ratelimit.c, run
 * through the asynchronous client of a worker's event loop (evloop_redis.h), so agents
 * that share a Redis share their limits and no decision blocks the loop.
 *
 * Where it sits: each data-plane worker thread owns one struct rl_redis on its own evredis.
 * The proxy asks rl_redis_decide for a policy's decision on a client key and gets a
 * struct rl_decision (ratelimit.h), the same answer the local store gives. What to do when
 * Redis fails (on_store_error open | closed | local) is the caller's policy: errors come
 * back as distinct codes and are counted here, and nothing is cached from a failure, so
 * recovery is automatic when Redis answers again.
 *
 * Keys (REFERENCE.md "Redis", DESIGN.md §4.4): one key per (policy, client key, algorithm),
 *     sluice:rl:{POLICY:KEY}:ALG          ALG = fw sl sw tb lb gcra
 * The braces are a Redis Cluster hash tag, so a policy's key for one client lives in one
 * slot whatever state it holds. POLICY and KEY are written as they are when they are at
 * most RL_REDIS_NAME_RAW_MAX printable ASCII bytes without '{', '}', '#' (and, for the
 * policy, ':'); otherwise as '#' and 32 hex digits of their SHA-256, so client-chosen
 * bytes (binary, huge, or containing braces) can neither split a hash tag, nor collide
 * with a raw name, nor grow a key past RL_REDIS_KEY_MAX. Key and arguments travel as
 * separate RESP bulk strings (KEYS/ARGV of EVALSHA), never inside script text, so no
 * client byte is ever interpreted. The algorithm is part of the name so that a policy
 * switched to another algorithm starts from fresh state instead of WRONGTYPE errors.
 *
 * Scripts (one per algorithm, atomic, no other keys touched):
 *     EVALSHA sha 1 key limit window_ms burst cost want now_ms
 *  - now_ms is 0 in service: the script reads Redis TIME (ms = s·1000 + µs/1000), so every
 *    agent decides on one clock. Non-zero is a clock injected by tests (rl_redis_fake_now);
 *    keys then get TTLs of at least 60 s, as they expire on Redis's clock, not that one.
 *  - want 0: an exact decision for `cost` units (0: a peek), with the arithmetic and the
 *    five answers of rl_decide for the same state, checked answer by answer in the tests.
 *    One difference, by design: a decision that admits nothing writes nothing (so denials
 *    cost Redis no writes and no replication). With a clock that moves forward that changes
 *    no answer; if Redis's clock steps back, a key decides at Redis's time where the pure
 *    state would remember the latest time a denial saw.
 *  - want > 0 (lease): take min(want, capacity, available) units, and admit nothing if not
 *    even one is available; a denial's retry_after_ms is then the wait until
 *    min(want, capacity) units are, so a cached denial lasts until a whole slice is there.
 *  - Reply: {allowed 0|1, limit, remaining, reset_ms, retry_after_ms, granted}, integers.
 *  - State is packed in one string ("a b" or "a b c" in decimal; a sorted set of admission
 *    times for the sliding log), and every write sets a TTL: the time after which the
 *    state would read as a fresh key (fixed window: to the window's end; sliding window:
 *    to the end of the next window; sliding log: one window after the newest entry;
 *    buckets and GCRA: until the level has drained) — at least 1 ms, so never more than
 *    two windows. A lost key (eviction, failover: REFERENCE.md) only forgets admissions.
 *  - Retuned params apply to the stored state as it is (windows keep their counts, a
 *    bucket's or GCRA's level is kept and drains at the new rate); no rescaling as
 *    rl_state_retune does for the local store.
 *  - Arithmetic is exact in Lua's doubles below 2^53: sliding window, buckets and GCRA
 *    are accepted when max(limit, capacity) × window_ms ≤ RL_REDIS_UNITS_MAX (2^50:
 *    e.g. 1e6 per day, 1e9 per second), others are SL_ERANGE; the window counters and the
 *    sliding log take every valid rl_params.
 *  - Scripts go as EVALSHA; a NOSCRIPT reply (script cache empty after a restart,
 *    failover or SCRIPT FLUSH) re-sends the same call, arguments kept, as EVAL, which
 *    loads it again. Each such re-send is counted (noscript_fallbacks).
 *
 * Fast path: store "redis_lease" (struct rl_redis_policy.lease). The agent leases a slice
 * of the shared budget — slice = max(1, limit ÷ (RL_REDIS_LEASE_DIVISOR × instances)),
 * instances being how many rl_redis share the limit (live agents × workers per agent, set
 * with rl_redis_set_instances) — with one script call that takes up to `slice`
 * units from the same Redis state the exact store uses, then admits locally until the
 * units are spent or the lease expires (lease_ttl_ms, at most one window, on this agent's
 * clock from when the call was sent). A denied lease call is cached: "over limit until T"
 * is answered locally until T without asking Redis. At most one lease call per key is in
 * flight per rl_redis; requests arriving meanwhile wait for it (at most
 * RL_REDIS_WAITERS_MAX per key) and are served in order from what it grants. A request
 * whose cost exceeds the slice goes the exact way. Local answers: remaining = Redis's
 * remaining at the last lease call + the units still leased here (an estimate: other
 * agents' leases are not seen); denied: remaining 0, retry_after_ms = T − now.
 *
 *   Over-admission bound: Redis counts leased units when it grants them, and each rl_redis
 *   holds at most one lease per key at a time. So over any interval the admissions of all
 *   agents are at most what the algorithm itself admits over it (the window counters:
 *   limit per window; the buckets: capacity + rate × interval) plus, per rl_redis sharing
 *   the key, the units of the lease it held when the interval began (≤ slice):
 *       admitted per window ≤ limit + Σ slice = limit + instances × slice,
 *   ≈ limit × (1 + 1/RL_REDIS_LEASE_DIVISOR) when `instances` is right (an underestimate
 *   widens it in proportion). Unspent units that expire are lost: fewer admissions,
 *   never more. GCRA and the leaky bucket grant at most burst + 1 units at a time, so
 *   their leases save round trips only with a burst of at least a slice.
 *   Redis round trips: one per slice of admitted requests plus one per denial period,
 *   whatever the request rate: ≈ 1/slice + 1/(requests per denial period) per request.
 *
 * Answers: rl_redis_decide either decides at once from the fast path (RL_REDIS_NOW, the
 * decision written to *now) or sends a script and calls back exactly once, later, from
 * the loop, never from inside rl_redis_decide: cb(decision, SL_OK, arg), or cb(NULL, err,
 * arg) with err SL_ETIMEOUT (no reply in the evredis command timeout), SL_ECONNECT (Redis
 * down, in back-off, or the connection broke), SL_EAUTH, SL_ESTORE (the script failed or
 * answered something unexpected), SL_EGONE (the evredis or the rl_redis was freed), or
 * SL_ENOMEM / SL_ETOOBIG (a lease call for requests still waiting could not be sent).
 * Each kind is counted apart (struct rl_redis_stats); no failure is cached, so the first
 * request after Redis is back is decided by Redis again.
 *
 * Bounds: the fast-path table holds at most max_keys keys (~330 bytes each, plus an
 * 8-byte bucket per key of max_keys); when full, the least recently used idle key is
 * evicted, forgetting its unspent lease (fewer admissions, never more), and when none is
 * idle a request goes the exact way. At most RL_REDIS_WAITERS_MAX requests wait on one
 * key; script calls in flight are bounded by EVREDIS_PENDING_MAX (SL_ETOOBIG beyond).
 *
 * Ownership and threading: an rl_redis belongs to one loop and thread, like its evredis,
 * which it does not own. Free it after its evredis (the evredis's callbacks then answer
 * SL_EGONE through it) or before (pending callers are answered SL_EGONE at once); never
 * from inside one of its callbacks.
 */
#ifndef SLUICE_RATELIMIT_REDIS_H
#define SLUICE_RATELIMIT_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evloop.h"
#include "evloop_redis.h"
#include "ratelimit.h"

#define RL_REDIS_NAME_RAW_MAX     64   /* longer policy names / client keys are hashed */
#define RL_REDIS_KEY_MAX          160  /* bytes of a built key, NUL included */
#define RL_REDIS_LEASE_DIVISOR    10   /* slice = limit ÷ (10 × instances): ≤ ~10% over */
#define RL_REDIS_WAITERS_MAX      4096 /* requests waiting on one key's lease call */
#define RL_REDIS_MAX_KEYS_DEFAULT 65536
#define RL_REDIS_NOW              1                   /* rl_redis_decide answered at once (*now) */
#define RL_REDIS_UNITS_MAX        (UINT64_C(1) << 50) /* capacity × window_ms (doubles) */

struct rl_redis;

/* A policy as the store sees it. name identifies the shared state together with the
 * client key; params are checked with rl_params_check. */
struct rl_redis_policy {
    const char *name;
    struct rl_params params;
    bool lease; /* store "redis_lease": fast path; false: one script per decision */
};

struct rl_redis_opts {
    size_t max_keys;       /* fast-path table; 0 = RL_REDIS_MAX_KEYS_DEFAULT */
    uint64_t lease_ttl_ms; /* 0 = one window; never more than one window */
    unsigned instances;    /* rl_redis sharing each limit (slice size); 0 = 1 */
};

/* decision non-NULL and err SL_OK, or decision NULL and err < 0 (see the top). The
 * decision is valid during the callback only. */
typedef void (*rl_redis_fn)(const struct rl_decision *decision, int err, void *arg);

struct rl_redis_stats {
    uint64_t decisions; /* answered with a decision (at once or called back) */
    uint64_t allowed;
    uint64_t denied;
    uint64_t redis_calls;        /* scripts sent: EVALSHA, and EVAL after NOSCRIPT */
    uint64_t noscript_fallbacks; /* EVALSHA answered NOSCRIPT → EVAL sent */
    uint64_t lease_calls;        /* lease scripts sent (included in redis_calls) */
    uint64_t leased_units;       /* units granted by lease calls */
    uint64_t lease_hits;         /* admitted from a local lease, without Redis */
    uint64_t deny_cache_hits;    /* denied locally: "over limit until T" */
    uint64_t errors_timeout;     /* callbacks with SL_ETIMEOUT */
    uint64_t errors_connect;     /* SL_ECONNECT or SL_EAUTH */
    uint64_t errors_script;      /* SL_ESTORE: error reply or malformed answer */
    uint64_t errors_gone;        /* SL_EGONE */
    uint64_t errors_other;       /* SL_ENOMEM, SL_ETOOBIG: a lease call re-sent for waiters */
    uint64_t keys;               /* fast-path keys held now */
    uint64_t evictions;          /* fast-path keys evicted */
};

/* An rl_redis deciding on r (not owned) and loop (the loop r runs on). opts NULL =
 * defaults. NULL when out of memory or on NULL arguments. */
struct rl_redis *rl_redis_new(struct evloop *loop, struct evredis *r,
                              const struct rl_redis_opts *opts);
/* Answer every pending request SL_EGONE, drop the fast-path state and free. NULL: no-op. */
void rl_redis_free(struct rl_redis *rr);

/* Decide for one request of `cost` units (normally 1) on the client key (any bytes).
 * Returns
 *   RL_REDIS_NOW  decided from the fast path: *now holds the decision; no callback;
 *   SL_OK         pending: cb is called exactly once, later, from the loop;
 *   < 0           not accepted, no callback: SL_EINVAL (bad params, with rl_params_check's
 *                 reason; NULL arguments), SL_ERANGE (params beyond exact arithmetic),
 *                 SL_ETOOBIG (too many requests waiting or in flight), SL_ENOMEM, or
 *                 the error with which evredis refused the command at once.
 * A cost above the slice goes the exact way. */
int rl_redis_decide(struct rl_redis *rr, const struct rl_redis_policy *pol, const void *key,
                    size_t key_len, uint64_t cost, struct rl_decision *now, rl_redis_fn cb,
                    void *arg);

/* True when valid params (rl_params_check) are also within the scripts' exact arithmetic
 * (max(limit, capacity) × window_ms ≤ RL_REDIS_UNITS_MAX): check policies with it when
 * they are loaded, rather than meeting SL_ERANGE per request. */
bool rl_redis_params_exact(const struct rl_params *p);
/* How many rl_redis share each limit — live agents (registry) × workers per agent — which
 * sets the slice size of later leases; 0 counts as 1. */
void rl_redis_set_instances(struct rl_redis *rr, unsigned instances);
/* Drop the fast-path state (leases, cached denials) of one policy, or of all when name is
 * NULL: call it when a policy is changed or removed. Lease calls in flight still answer
 * their waiters. Unspent leased units are forgotten. */
void rl_redis_forget(struct rl_redis *rr, const char *name);
/* Tests only: scripts use now_ms instead of Redis TIME (0: back to TIME). */
void rl_redis_fake_now(struct rl_redis *rr, uint64_t now_ms);
void rl_redis_get_stats(const struct rl_redis *rr, struct rl_redis_stats *out);

/* The Redis key of (policy, client key, algorithm) into out; its length, or SL_EINVAL for
 * an empty or NULL policy name. */
int rl_redis_key(const char *policy, const void *key, size_t key_len, enum rl_algorithm alg,
                 char out[RL_REDIS_KEY_MAX]);
/* The Lua source of an algorithm's script and its SHA1 (40 lowercase hex digits), for
 * tools and benchmarks (redis-benchmark ... EVALSHA). NULL for an unknown algorithm. */
const char *rl_redis_script_source(enum rl_algorithm alg);
const char *rl_redis_script_sha1(enum rl_algorithm alg, char out[41]);

#endif
