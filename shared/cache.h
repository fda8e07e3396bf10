/*
 * cache — the storage half of the agent's response cache: a bounded, striped, thread-safe
 * table of key bytes → opaque value bytes with a byte budget and a selectable eviction
 * policy. It knows nothing about HTTP: the caller (the proxy's RFC 9111 layer) decides
 * what to store, builds the key, and sets the times in struct cache_meta; this module
 * keeps the bytes, expires them, and evicts by policy when the budget is full.
 *
 * Pure core, thin shell (STYLE): every function takes the time as now_ms and no function
 * reads a clock, so tests drive expiry, aging and eviction exactly. Times are absolute
 * milliseconds of whatever clock the caller uses (the agent: clock_mono_ms()); they only
 * need to be comparable with each other.
 *
 * Entries and handles
 *  - An entry is one allocation holding key, value and meta; the cache copies both on
 *    cache_put and never changes them afterwards, so readers need no lock.
 *  - cache_get returns a reference-counted handle: the bytes stay readable until
 *    cache_entry_release, even if the entry is evicted, deleted, replaced, purged or the
 *    cache itself freed meanwhile (the proxy can send a body while another thread evicts
 *    it). Every handle must be released exactly once.
 *
 * Expiry (times from struct cache_meta; expires_ms = 0 means "never expires")
 *  - fresh    while now_ms < expires_ms (or expires_ms = 0): cache_get returns it;
 *  - stale    while expires_ms <= now_ms < stale_until_ms: cache_get misses, but
 *             cache_get_stale returns it (stale-while-revalidate, stale-if-error, or a
 *             validator for a conditional request, RFC 9111 §4.2.4, §4.3);
 *  - dead     from max(expires_ms, stale_until_ms) on: never returned; removed when a
 *             lookup finds it, when room is needed (before any live entry is evicted,
 *             under every policy), or by cache_reap.
 *  Removing a dead entry counts as an expiration; removing a fresh or stale entry to make
 *  room counts as an eviction. The two counters never overlap.
 *
 * Byte budget (the invariant the tests check after every operation)
 *  - Each entry costs cache_entry_cost(key_len, data_len) = key + value +
 *    CACHE_ENTRY_OVERHEAD bytes. The overhead is an upper bound (not an estimate) of what
 *    the cache allocates per entry: its header, the allocator's rounding and header, and
 *    its share of the hash index and of the two heaps, which shrink as entries leave.
 *  - The budget is split evenly across stripes; each stripe keeps the sum of its entries'
 *    costs at or below its share at every moment (eviction happens before insertion), so
 *    cache_stats().bytes <= budget_bytes always.
 *  - Outside the budget, and reported as fixed_bytes: the stripes themselves, the minimum
 *    sizes of index and heaps, and (S3-FIFO only) the ghost table, about 1/64 of the
 *    budget, allocated once by cache_new. And entries already removed but still held by a
 *    reader: they are freed at the last cache_entry_release.
 *  - A put that cannot fit even in an empty stripe (or exceeds max_entry_bytes or
 *    CACHE_KEY_MAX) is refused with SL_ETOOBIG and counted in rejected.
 *
 * Policies (per stripe; victims are chosen only when a put needs room)
 *  - CACHE_LRU    least recently used (get or put) first.
 *  - CACHE_LFU    least frequently used first, with aging: every access adds 1 to a
 *                 count that halves every lfu_half_life_ms of the caller's clock
 *                 (exactly: an access at time t weighs 2^(t/H − now/H) at now, with t/H
 *                 rounded down to whole half-lives), so yesterday's hot keys fade behind
 *                 today's. Ties go to the least recently used. A put of a new key counts
 *                 as its first access; a put replacing a key keeps the old count + 1.
 *  - CACHE_TTL    expiry only: the entry that expires soonest (smallest expires_ms;
 *                 entries without expiry last) goes first; ties in insertion order.
 *                 Gets do not change the order.
 *  - CACHE_S3FIFO S3-FIFO (Yang et al., "FIFO queues are all you need for cache
 *                 eviction", SOSP 2023): a small FIFO (10% of the stripe's bytes) on
 *                 probation, a main FIFO with 2-bit CLOCK reinsertion, and a ghost queue
 *                 of the keys recently dropped from the small queue. New keys enter the
 *                 small queue; one hit there promotes a key to main when it reaches the
 *                 tail, a miss drops it into the ghost; a key found in the ghost on
 *                 insertion goes straight to main. One-hit wonders and scans therefore
 *                 pass through 10% of the cache without displacing the hot set.
 *                 Why S3-FIFO rather than W-TinyLFU or SIEVE: SIEVE has no probation
 *                 queue, so a long scan can push out hot keys whose visited bit its hand
 *                 has just cleared; W-TinyLFU needs a probabilistic frequency sketch (its
 *                 decisions depend on hash collisions, so "exact victims" tests are not
 *                 exact) and reorders an LRU on every hit. S3-FIFO is reported at or
 *                 above W-TinyLFU on most of the paper's traces, a hit only bumps a 2-bit
 *                 counter under the stripe lock, and its decisions are deterministic.
 *                 bench/cache_policies.c measures it against the others here.
 *                 The ghost remembers fingerprints (no bytes) of keys whose entries'
 *                 costs add up to the main queue's share of the stripe (byte-FIFO), in
 *                 a fixed 4-way table: when a table bucket is full its oldest record is
 *                 forgotten early.
 *  Replacing a key (cache_put of a present key) is an access of that key for LRU, LFU and
 *  S3-FIFO (it keeps its queue); cache_get_stale on a stale entry is an access too.
 *
 * Concurrency: CACHE_STRIPES_MAX stripes at most, each a mutex, a chained hash index and
 * the policy's queues or heap; a key's stripe comes from a hash seeded per cache (random
 * unless opts.seed is set), so clients cannot aim keys at one stripe. No global lock:
 * counters are per stripe and summed by cache_stats without locks (each is exact, the
 * sum a moment's snapshot). Copying the value happens outside the lock; so does freeing.
 */
#ifndef SLUICE_CACHE_H
#define SLUICE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cache_policy {
    CACHE_LRU,
    CACHE_LFU,
    CACHE_TTL,
    CACHE_S3FIFO,
};
#define CACHE_POLICIES 4

#define CACHE_ENTRY_OVERHEAD   256                 /* bytes charged per entry, see above */
#define CACHE_KEY_MAX          1024                /* longer keys: SL_ETOOBIG / miss */
#define CACHE_BUDGET_MAX       (UINT64_C(1) << 39) /* 512 GiB */
#define CACHE_STRIPES_MAX      256
#define CACHE_STRIPES_DEFAULT  16                  /* with at least ... */
#define CACHE_STRIPE_MIN_BYTES (UINT64_C(1) << 20) /* ... 1 MiB each (default only) */
#define CACHE_LFU_HALF_LIFE_MS 600000              /* default: counts halve every 10 min */
#define CACHE_LFU_NO_AGING     UINT64_MAX          /* lfu_half_life_ms: pure LFU */

struct cache_opts {
    uint64_t budget_bytes; /* CACHE_ENTRY_OVERHEAD × stripes .. CACHE_BUDGET_MAX */
    enum cache_policy policy;
    unsigned stripes;          /* a power of two ≤ CACHE_STRIPES_MAX; 0: default (above) */
    uint64_t max_entry_bytes;  /* largest cache_entry_cost stored; 0: a stripe's budget */
    uint64_t lfu_half_life_ms; /* 0: CACHE_LFU_HALF_LIFE_MS; CACHE_LFU_NO_AGING: never */
    uint64_t seed;             /* hash seed; 0: random. Fix it only in tests and benches */
};

/* Opaque to the cache except the three times (see "Expiry"); the HTTP layer's own. */
struct cache_meta {
    uint64_t stored_ms;      /* when the response was received (Age, RFC 9111 §4.2.3) */
    uint64_t expires_ms;     /* end of freshness; 0 = never expires */
    uint64_t stale_until_ms; /* may be served stale until; ≤ expires_ms: not at all */
    uint32_t flags;          /* caller-defined */
};

struct cache_stats {
    uint64_t hits;        /* cache_get / cache_get_stale found a fresh entry */
    uint64_t stale_hits;  /* cache_get_stale found a stale entry */
    uint64_t misses;      /* every other lookup (including stale seen by cache_get) */
    uint64_t inserts;     /* entries stored (new keys and replacements) */
    uint64_t replaces;    /* ... of which replaced a present key */
    uint64_t evictions;   /* fresh or stale entries removed to make room */
    uint64_t expirations; /* dead entries removed (lookup, room, cache_reap) */
    uint64_t deletes;     /* removed by cache_delete, cache_purge_prefix, cache_clear, or
                             superseded by a put that was already dead */
    uint64_t rejected;    /* puts refused: too big, or already dead on arrival */
    uint64_t entries;     /* = inserts − replaces − evictions − expirations − deletes */
    uint64_t bytes;       /* Σ cache_entry_cost of the entries; ≤ budget_bytes */
    uint64_t budget_bytes;
    uint64_t fixed_bytes; /* memory outside the budget (see "Byte budget") */
};

struct cache;
struct cache_entry;

/* "lru", "lfu", "ttl", "s3fifo"; "unknown" out of range. */
const char *cache_policy_name(enum cache_policy p);
/* "s3fifo" → CACHE_S3FIFO; false if unknown. */
bool cache_policy_parse(const char *name, enum cache_policy *out);
/* SL_OK or SL_EINVAL with the offending field named in why (may be NULL). */
int cache_opts_check(const struct cache_opts *o, const char **why);
/* NULL if cache_opts_check fails or out of memory. */
struct cache *cache_new(const struct cache_opts *o);
/* Drops the cache's references; handles still held stay valid until released. */
void cache_free(struct cache *c);

/* What an entry of these sizes costs against the budget. */
uint64_t cache_entry_cost(size_t key_len, size_t data_len);

/* The fresh entry for key, or NULL (absent, stale, dead, or key longer than
 * CACHE_KEY_MAX). A hit is an access for the policy. Release the handle. */
struct cache_entry *cache_get(struct cache *c, const void *key, size_t key_len, uint64_t now_ms);
/* Like cache_get, but also returns a stale entry (counted in stale_hits); tell the two
 * apart with cache_entry_is_fresh. */
struct cache_entry *cache_get_stale(struct cache *c, const void *key, size_t key_len,
                                    uint64_t now_ms);
/* Whether key is stored (in any state) — no access, no counting, no expiry. For tests and
 * admin pages. */
bool cache_contains(struct cache *c, const void *key, size_t key_len);

const void *cache_entry_data(const struct cache_entry *e);
size_t cache_entry_len(const struct cache_entry *e);
const void *cache_entry_key(const struct cache_entry *e);
size_t cache_entry_key_len(const struct cache_entry *e);
const struct cache_meta *cache_entry_meta(const struct cache_entry *e);
bool cache_entry_is_fresh(const struct cache_entry *e, uint64_t now_ms);
/* Drop the reference from cache_get; the last one frees the entry. NULL is a no-op. */
void cache_entry_release(struct cache_entry *e);

/* Store a copy of (key, data, *meta), replacing any entry for key; evicts by policy until
 * it fits (dead entries first). SL_OK; SL_ETOOBIG (key longer than CACHE_KEY_MAX, cost
 * above max_entry_bytes or the stripe's budget: nothing changes but rejected); SL_ENOMEM
 * (nothing changes). A put already dead at now_ms stores nothing and returns SL_OK; it
 * counts in rejected, and the older entry for key, if any, is deleted (superseded). */
int cache_put(struct cache *c, const void *key, size_t key_len, const void *data, size_t data_len,
              const struct cache_meta *meta, uint64_t now_ms);
/* SL_OK, or SL_ENOTFOUND if key is not stored. */
int cache_delete(struct cache *c, const void *key, size_t key_len);
/* Remove every key starting with prefix (an empty prefix removes all); returns how many.
 * Walks every entry, one stripe lock at a time: for admin requests, not the hot path. */
size_t cache_purge_prefix(struct cache *c, const void *prefix, size_t prefix_len);
void cache_clear(struct cache *c);
/* Remove every dead entry (counted as expirations); returns how many. Optional: dead
 * entries are also removed lazily. Cost: O(dead × log n) per stripe. */
size_t cache_reap(struct cache *c, uint64_t now_ms);

void cache_stats(const struct cache *c, struct cache_stats *out);
/* Walk every stripe and verify the internal invariants (index, queues, heaps, byte sums,
 * budget). For tests: O(entries). On failure, why says what broke. */
bool cache_is_consistent(struct cache *c, const char **why);

#endif
