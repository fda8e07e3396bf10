/*
 * balancer — the gateway's choice of upstream replica for one request: a set of named
 * backends and one picking algorithm. The proxy asks balancer_pick for a backend index,
 * reports balancer_started / balancer_finished around the upstream exchange, and keeps
 * the `eligible` flag up to date from health checks, draining and outlier ejection.
 *
 * Pure core (STYLE "Structure"): no I/O, no clock, no locks, no allocation after
 * balancer_new except when the hash algorithm or table size is set. Latencies arrive as
 * arguments; randomness comes from an injectable source (balancer_set_rnd) so tests
 * drive p2c exactly. One instance per worker thread; nothing here is thread-safe.
 *
 * Backends
 *  - At most BALANCER_MAX backends, names of 1..BALANCER_NAME_MAX bytes (copied, usually
 *    "host:port"), weights 0..BALANCER_WEIGHT_MAX. Weight 0 gets nothing.
 *  - A backend's index is stable until it is removed; a freed index may be reused by a
 *    later balancer_add. A request started before its backend was removed must not be
 *    reported afterwards (check balancer_name(b, idx) is still the name it was sent to):
 *    the report would land on whichever backend reused the index.
 *  - A backend is *usable* when it is eligible (the default on add) and its weight is
 *    above 0. Only usable backends are picked.
 *
 * Algorithms (balancer_set_algorithm; switching resets rotation state, not statistics)
 *  - BALANCER_ROUND_ROBIN  usable backends in index order, one each, ignoring weights.
 *  - BALANCER_WEIGHTED     smooth weighted round robin (nginx ngx_http_upstream_round_robin):
 *                          every pick adds each weight to its backend's `current`, takes
 *                          the largest (lowest index on a tie) and subtracts the total.
 *                          Over any cycle of sum(w) picks each backend gets exactly w,
 *                          interleaved (5,1,1 -> a a b a c a a). A change of the usable set
 *                          (add, remove, weight, eligibility) restarts the cycle.
 *  - BALANCER_LEAST_CONN   fewest in-flight requests per unit of weight (in_flight / w,
 *                          compared exactly by cross-multiplication); ties go round robin,
 *                          so idle backends share the load.
 *  - BALANCER_P2C          power of two choices (Mitzenmacher 2001): two distinct usable
 *                          backends drawn at random; the lower cost wins, cost =
 *                          ewma_us * (in_flight + 1) / weight, the first drawn on a tie. A
 *                          backend without a latency sample is costed at the mean EWMA of
 *                          the usable backends that have one (1 µs when none has); EWMAs
 *                          below 1 µs count as 1 µs, so in_flight always matters.
 *  - BALANCER_HASH_IP,     Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4) of
 *    BALANCER_HASH_HEADER  the key bytes the caller passes (client address, or the value
 *                          of the header named in the algorithm string). Two lookup tables
 *                          of table_size entries (a prime): the *primary* table fills
 *                          from every backend with weight > 0, healthy or not; the
 *                          *fallback* table from the usable ones only. A key hashes to
 *                          position p = hash64_seeded(key) mod table_size; it goes to
 *                          primary[p] if that backend is usable, else to fallback[p]. So
 *                          a backend turning ineligible moves exactly its own keys (spread
 *                          over the others as Maglev would) and gets them back when it
 *                          returns. Adding or removing a backend, or changing a weight,
 *                          rebuilds both tables: about 1/N of the keys move (Maglev is not
 *                          perfectly minimal, a small fraction of other keys move too).
 *                          Weights are honoured: entries are claimed in proportion to w
 *                          (the Envoy weighted-Maglev turn rule). Placement depends only
 *                          on the names, weights, eligibility and table_size, never on
 *                          the order of adds, so every worker and every gateway instance
 *                          maps a key alike. Tables are rebuilt lazily by the next pick
 *                          (~1-5 ms at 65537 entries). A NULL key (header absent) is
 *                          picked round robin.
 *
 * Retries: `exclude` in balancer_pick names a backend to avoid (the one that just failed)
 * when another usable backend exists; with no other, exclude itself is returned. Hash
 * picks avoid it deterministically: the same key and exclude give the same alternative.
 */
#ifndef SLUICE_BALANCER_H
#define SLUICE_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BALANCER_MAX           256
#define BALANCER_NAME_MAX      255
#define BALANCER_WEIGHT_MAX    100
#define BALANCER_TABLE_DEFAULT 65537 /* the paper's M: imbalance < 1% up to ~650 backends */
#define BALANCER_TABLE_MIN     257   /* Maglev needs table_size > BALANCER_MAX */
#define BALANCER_TABLE_MAX     65537
#define BALANCER_EWMA_ALPHA    0.3 /* weight of the newest latency sample */

enum balancer_alg {
    BALANCER_ROUND_ROBIN,
    BALANCER_WEIGHTED,
    BALANCER_LEAST_CONN,
    BALANCER_P2C,
    BALANCER_HASH_IP,
    BALANCER_HASH_HEADER,
};

/* A source of uniform 64-bit random numbers (p2c); arg is the one given to set_rnd. */
typedef uint64_t (*balancer_rnd_fn)(void *arg);

struct balancer;

/* Round robin, table size BALANCER_TABLE_DEFAULT, alpha BALANCER_EWMA_ALPHA, rng_u64.
 * NULL when out of memory. */
struct balancer *balancer_new(void);
void balancer_free(struct balancer *b);

/* Parse an algorithm name, exactly (case-sensitive): "round_robin", "weighted",
 * "least_conn", "p2c", "hash:ip", "hash:header:NAME". For the last, NAME (an RFC 9110
 * §5.6.2 token) is copied NUL-terminated into header_name. 0, SL_EINVAL (unknown name,
 * empty or non-token NAME) or SL_ETOOBIG (NAME does not fit in cap bytes with its NUL);
 * *out and header_name are left alone on error. */
int balancer_parse_algorithm(const char *s, enum balancer_alg *out, char *header_name, size_t cap);
/* The name of alg as parsed ("hash:header" without a header name); "?" for others. */
const char *balancer_alg_str(enum balancer_alg alg);

/* 0, SL_EINVAL (unknown alg) or SL_ENOMEM (hash tables); resets rotation state. */
int balancer_set_algorithm(struct balancer *b, enum balancer_alg alg);
enum balancer_alg balancer_algorithm(const struct balancer *b);
/* Maglev table size: a prime in [BALANCER_TABLE_MIN, BALANCER_TABLE_MAX]. 0, SL_EINVAL
 * or SL_ENOMEM (the old size stays). Changing it remaps keys. */
int balancer_set_table_size(struct balancer *b, unsigned size);
/* EWMA weight of a new sample, 0 < alpha <= 1: 0 or SL_EINVAL. */
int balancer_set_ewma_alpha(struct balancer *b, double alpha);
/* Random source for p2c; fn NULL restores rng_u64. */
void balancer_set_rnd(struct balancer *b, balancer_rnd_fn fn, void *arg);

/* Add an eligible backend. Its index (>= 0), or SL_EEXISTS (name present), SL_ERANGE
 * (BALANCER_MAX backends, or weight > BALANCER_WEIGHT_MAX), SL_EINVAL (name empty or
 * longer than BALANCER_NAME_MAX). */
int balancer_add(struct balancer *b, const char *name, unsigned weight);
/* 0 or SL_ENOTFOUND. The backend's statistics go with it. */
int balancer_remove(struct balancer *b, const char *name);
/* Index of the backend called name, or -1. */
int balancer_find(const struct balancer *b, const char *name);
/* 0, SL_ENOTFOUND (no backend at idx) or SL_ERANGE (weight > BALANCER_WEIGHT_MAX). */
int balancer_set_weight(struct balancer *b, int idx, unsigned weight);
/* 0 or SL_ENOTFOUND. The caller's verdict: healthy, not draining, not ejected. */
int balancer_set_eligible(struct balancer *b, int idx, bool eligible);

/* The backend for one request: its index, or -1 when no backend is usable. key/key_len
 * are the hash algorithms' key (ignored by the others; NULL: round robin). exclude is an
 * index to avoid when possible, -1 for none. Counts a pick for the backend returned. */
int balancer_pick(struct balancer *b, const void *key, size_t key_len, int exclude);

/* A request to backend idx began / ended after latency_us. Only ok requests feed the
 * latency EWMA (a fast error must not make a broken backend look fast); both keep the
 * in-flight count. Reports for an index without a backend are ignored; in_flight does
 * not go below 0. */
void balancer_started(struct balancer *b, int idx);
void balancer_finished(struct balancer *b, int idx, uint64_t latency_us, bool ok);

/* Accessors; for an index without a backend: NULL, 0, false. */
const char *balancer_name(const struct balancer *b, int idx);
unsigned balancer_weight(const struct balancer *b, int idx);
bool balancer_is_eligible(const struct balancer *b, int idx);
unsigned balancer_in_flight(const struct balancer *b, int idx);
uint64_t balancer_picks(const struct balancer *b, int idx);
/* Latency EWMA in µs; 0 until the first ok sample, which seeds it. */
double balancer_ewma_us(const struct balancer *b, int idx);
/* Number of backends (usable or not). */
size_t balancer_size(const struct balancer *b);

/*
 * retry_budget — Envoy-style retry budget for one upstream cluster: retries are allowed
 * while the retries in flight stay below max(min_concurrent, ratio × active_requests),
 * so a failing cluster sees at most ratio extra load from retries instead of a retry
 * storm, while a quiet cluster can still retry min_concurrent at once. Pure: the caller
 * owns the counts, increments them when a request (active_requests, retries included) or
 * a retry (active_retries) starts and decrements them when it ends.
 */
struct retry_budget {
    double ratio;            /* 0..1: retries in flight per active request */
    unsigned min_concurrent; /* retries always allowed in flight at once */
    unsigned active_requests;
    unsigned active_retries;
};

/* Zero counts and set the limits: 0 or SL_EINVAL (ratio outside [0, 1] or NaN). */
int retry_budget_init(struct retry_budget *rb, double ratio, unsigned min_concurrent);
/* May one more retry start now? ratio × active_requests is taken to 6 decimals, so binary
 * rounding cannot grant an extra retry (0.1 × 30 allows 3). */
bool retry_budget_allow(const struct retry_budget *rb);

#endif
