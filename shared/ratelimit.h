/*
 * ratelimit — the six rate-limit algorithms, pure: state and time are passed in, nothing
 * here does I/O or reads a clock (STYLE "pure core, thin shell"). The agent's local store
 * (rl_local, below) and the Redis store (ratelimit_redis.h, Lua scripts that implement the
 * same arithmetic) both answer with a struct rl_decision, so the proxy does not care which
 * decided. docs/ratelimiting.md explains each algorithm's trade-offs.
 *
 * Units: limit = requests admitted per window_ms; burst = extra capacity of the bucket
 * algorithms (token bucket: bucket size; leaky bucket / GCRA: burst tolerance in
 * requests); 0 means "limit" for token bucket and 0 for GCRA/leaky bucket (no burst
 * beyond the steady rate). Times in milliseconds.
 *
 * Contract of every decision (all integer arithmetic, no floating point):
 *  - Exact: the same state, params, now and cost always give the same answer; the
 *    arithmetic of each algorithm is spelled out in docs/ratelimiting.md so the Redis
 *    scripts can reproduce it. 3 per 1000 ms is exactly 3 per 1000 ms (GCRA and the
 *    buckets count in units of 1/window_ms of a request, or 1/limit of a ms).
 *  - remaining: how many requests of cost 1 would be admitted now, one after the other
 *    (never negative). reset_ms: until remaining is back to rl_capacity (0 if it is
 *    now). retry_after_ms (denied only): the smallest wait after which this same request
 *    (its cost) would be admitted if nothing else arrives; ≥ 1.
 *  - Windows are aligned to multiples of window_ms of the clock passed in (fixed window,
 *    sliding window counter); a request at t counts in the sliding log until t+window_ms.
 *  - cost 0 is a peek: always allowed, consumes nothing, reports the state.
 *  - cost > rl_capacity(p) can never be admitted: denied, nothing consumed, and
 *    retry_after_ms = max(reset_ms, window_ms) — the longest wait that can change
 *    anything. Callers that want to tell "never" from "later" compare cost with
 *    rl_capacity(p) themselves.
 *  - now earlier than the time the state last saw (threads reading the clock in one order
 *    and locking in another) is decided at the state's time: conservative, no underflow.
 *  - Bounds (RL_*_MAX) keep every intermediate product below 2^63.
 */
#ifndef SLUICE_RATELIMIT_H
#define SLUICE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rl_algorithm {
    RL_FIXED_WINDOW,
    RL_SLIDING_LOG,
    RL_SLIDING_WINDOW, /* two-counter approximation (Cloudflare) */
    RL_TOKEN_BUCKET,
    RL_LEAKY_BUCKET, /* as a meter: equivalent to GCRA, kept as its own teaching name */
    RL_GCRA,
};
#define RL_ALGORITHMS      6
#define RL_SLIDING_LOG_MAX 10000      /* sliding log memory is ∝ limit: bounded */
#define RL_LIMIT_MAX       1000000000 /* requests per window */
#define RL_BURST_MAX       1000000000
#define RL_WINDOW_MAX_MS   2678400000 /* 31 days */

struct rl_params {
    enum rl_algorithm alg;
    uint64_t limit;     /* ≥ 1 */
    uint64_t window_ms; /* ≥ 1 */
    uint64_t burst;
};

struct rl_decision {
    bool allowed;
    uint64_t limit;          /* the quota in the window (RateLimit-Policy q=) */
    uint64_t remaining;      /* requests still admissible now (RateLimit r=) */
    uint64_t reset_ms;       /* until the quota is fully available again (RateLimit t=) */
    uint64_t retry_after_ms; /* when denied: until this request would be admitted; else 0 */
};

/* Per-key state. Fixed size for every algorithm but the sliding log, whose timestamps
 * live in a separately allocated ring (rl_state_release frees it). Zeroed = fresh key. */
struct rl_state {
    uint64_t a, b, c; /* algorithm-specific: window start / counts / TAT / tokens ... */
    uint64_t *log;    /* sliding log: ring of admission times, capacity log_cap */
    uint32_t log_cap, log_head, log_len;
};

/* "token_bucket" for RL_TOKEN_BUCKET ...; "unknown" out of range. */
const char *rl_algorithm_name(enum rl_algorithm alg);
/* "token_bucket" → RL_TOKEN_BUCKET; false if unknown. */
bool rl_algorithm_parse(const char *name, enum rl_algorithm *out);
/* SL_OK or SL_EINVAL with the offending field named in why ("limit must be at least 1");
 * why may be NULL. burst is ignored by the three window algorithms. */
int rl_params_check(const struct rl_params *p, const char **why);
/* The largest cost one decision can admit (the quota of a fresh key): limit for the
 * window algorithms, the bucket size for token bucket, burst + 1 for GCRA/leaky bucket. */
uint64_t rl_capacity(const struct rl_params *p);

/* Decide for one request of `cost` (normally 1) at now_ms and update the state.
 * Returns SL_OK, or SL_ENOMEM (sliding log ring allocation; nothing is admitted, the
 * state stays valid and *out is unspecified). The sliding log's ring is allocated on the
 * first admission and grows by doubling up to limit entries, so its memory follows the
 * admissions in the window. */
int rl_decide(const struct rl_params *p, struct rl_state *st, uint64_t now_ms, uint64_t cost,
              struct rl_decision *out);
/* Carry state over a change of parameters (live retune): a token bucket keeps its balance
 * in proportion to the new size; windows keep their counts; GCRA rescales its TAT.
 * Precisely: the state is first brought to now_ms under `from`; then the buckets and GCRA
 * keep the fraction of their capacity in use (rounded up: never more room than before);
 * fixed window and sliding window counter keep their counts, rebased onto the new window
 * grid when window_ms changes; the sliding log keeps its newest min(count, new limit)
 * timestamps. A change of algorithm starts the key fresh. */
void rl_state_retune(const struct rl_params *from, const struct rl_params *to, struct rl_state *st,
                     uint64_t now_ms);
void rl_state_release(struct rl_state *st);

/* ---- local store: per-key state for the agent's workers ------------------------------ */

/* A bounded table of keys → state, shared by a process's threads (striped locks). When
 * full, the least recently used key of the stripe is evicted, so a flood of distinct keys
 * costs bounded memory and only forgets idle keys. Keys are (policy id, key bytes).
 *
 * RL_LOCAL_STRIPES stripes (fewer for small tables: at least 16 keys each), each a mutex,
 * an open-addressing index and an intrusive LRU list; a key's stripe comes from a hash
 * seeded per table, so clients cannot aim keys at one stripe. Each stripe holds at most
 * max_keys / stripes keys (so never more than max_keys in all) and evicts its own least
 * recently used key when full. Key bytes up to RL_LOCAL_KEY_MAX are kept and compared
 * exactly; longer keys are replaced by their SHA-256. Memory per key: 128 bytes + 16–32
 * bytes of index, + the key when longer than 56 bytes, + the sliding log's ring
 * (8 bytes per admission in the window). Evicting a key forgets its admissions (the key
 * starts fresh if it comes back): harmless for a key idle for longer than its window. */
#define RL_LOCAL_STRIPES 64
#define RL_LOCAL_KEY_MAX 256

struct rl_local;

/* NULL when out of memory or max_keys is 0 or above 2^36. */
struct rl_local *rl_local_new(size_t max_keys);
void rl_local_free(struct rl_local *l);
/* rl_decide on the state of (policy_id, key) — a fresh state if the key is new, evicting
 * the stripe's least recently used key when the stripe is full. Thread-safe; the stripe's
 * lock is held for the decision only. SL_OK or SL_ENOMEM. */
int rl_local_decide(struct rl_local *l, uint32_t policy_id, const struct rl_params *p,
                    const void *key, size_t key_len, uint64_t now_ms, uint64_t cost,
                    struct rl_decision *out);
/* Apply rl_state_retune to every key of a policy. */
void rl_local_retune(struct rl_local *l, uint32_t policy_id, const struct rl_params *from,
                     const struct rl_params *to, uint64_t now_ms);
/* Forget every key of a policy (policy removed). */
void rl_local_forget(struct rl_local *l, uint32_t policy_id);
size_t rl_local_keys(const struct rl_local *l);
uint64_t rl_local_evictions(const struct rl_local *l);

#endif
