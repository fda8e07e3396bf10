/*
 * ratelimit — the six algorithms and the agent's local store. ratelimit.h is the contract;
 * docs/ratelimiting.md derives each formula and bound.
 *
 * Units (L = limit, W = window_ms, whole milliseconds, integers only):
 *  - Fixed window and sliding window counter count requests. The counter's estimate
 *    prev × (W − elapsed) / W + cur is compared by cross-multiplication,
 *    prev × (W − elapsed) + (cur + cost) × W ≤ L × W, so nothing is rounded.
 *  - Token bucket, leaky bucket and GCRA keep a level in units where one request is W
 *    units and the level drains by L units per ms: a rate of exactly L per W. Token
 *    bucket: tokens missing from a full bucket (so a zeroed state is a full bucket); leaky
 *    bucket: water in the bucket; GCRA: (TAT − now) × L, the TAT stored as whole ms plus a
 *    remainder in 1/L ms. Leaky bucket and GCRA therefore decide identically; the tests
 *    check it.
 *  - The sliding log keeps one timestamp per admitted request in a sorted ring.
 */
#include "ratelimit.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "err.h"
#include "hashring.h"
#include "rng.h"

#define XSTR(x) #x
#define STR(x)  XSTR(x)

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static inline uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

/* ceil(v × to / from), saturated: rescales a level between two capacities (retune). */
static uint64_t rescale_up(uint64_t v, uint64_t from, uint64_t to)
{
    unsigned __int128 x = (unsigned __int128)v * to;
    unsigned __int128 q = x / from + (x % from != 0);
    return q > UINT64_MAX / 4 ? UINT64_MAX / 4 : (uint64_t)q;
}

/* ---- fixed window: a = start of the current window, b = requests admitted in it ---- */

static int fw_decide(const struct rl_params *p, struct rl_state *st, uint64_t now, uint64_t cost,
                     struct rl_decision *out)
{
    uint64_t ws = now - now % p->window_ms;
    if (ws > st->a) {
        st->a = ws;
        st->b = 0;
    }
    uint64_t end = st->a + p->window_ms; /* > now */
    out->allowed = st->b + cost <= p->limit;
    if (out->allowed)
        st->b += cost;
    out->remaining = st->b < p->limit ? p->limit - st->b : 0;
    out->reset_ms = st->b ? end - now : 0;
    out->retry_after_ms = out->allowed ? 0 : end - now;
    return SL_OK;
}

static void fw_retune(const struct rl_params *from, const struct rl_params *to, struct rl_state *st,
                      uint64_t now)
{
    if (from->window_ms == to->window_ms)
        return;
    if (st->a < now - now % from->window_ms) { /* that window is over: nothing to carry */
        st->a = st->b = 0;
        return;
    }
    st->a = now - now % to->window_ms;
}

/* ---- sliding window counter: a = current window start, b = its count, c = previous's -- */

static void sw_roll(struct rl_state *st, uint64_t ws, uint64_t w)
{
    if (ws <= st->a)
        return;
    st->c = ws - st->a == w ? st->b : 0;
    st->b = 0;
    st->a = ws;
}

/* Denied at now (cost ≤ L): the first ms at which prev × (W − e) + (cur + cost) × W ≤ L × W
 * holds, in this window (prev's weight decays) or the next (cur becomes prev). */
static uint64_t sw_retry(const struct rl_params *p, const struct rl_state *st, uint64_t now,
                         uint64_t cost)
{
    uint64_t w = p->window_ms, l = p->limit, cur = st->b, prev = st->c;
    if (cur + cost <= l) /* then prev > 0, or it would have been admitted */
        return st->a + w - (l - cur - cost) * w / prev - now;
    return st->a + 2 * w - (l - cost) * w / cur - now; /* cur > l - cost ≥ 0 */
}

static int sw_decide(const struct rl_params *p, struct rl_state *st, uint64_t now, uint64_t cost,
                     struct rl_decision *out)
{
    uint64_t w = p->window_ms;
    sw_roll(st, now - now % w, w);
    uint64_t elapsed = now > st->a ? now - st->a : 0; /* 0 if the clock is behind */
    uint64_t full = p->limit * w, prev_w = st->c * (w - elapsed);
    out->allowed = prev_w + (st->b + cost) * w <= full;
    if (out->allowed)
        st->b += cost;
    uint64_t used = prev_w + st->b * w;
    out->remaining = used < full ? (full - used) / w : 0;
    out->reset_ms = st->b ? st->a + 2 * w - now : st->c ? st->a + w - now : 0;
    out->retry_after_ms = out->allowed ? 0 : sw_retry(p, st, now, cost);
    return SL_OK;
}

static void sw_retune(const struct rl_params *from, const struct rl_params *to, struct rl_state *st,
                      uint64_t now)
{
    if (from->window_ms == to->window_ms)
        return;
    sw_roll(st, now - now % from->window_ms, from->window_ms);
    st->a = now - now % to->window_ms;
}

/* ---- sliding log: ring of admission times, oldest at log_head, sorted ---------------- */

static inline uint64_t log_at(const struct rl_state *st, uint64_t i)
{
    uint64_t j = st->log_head + i;
    return st->log[j < st->log_cap ? j : j - st->log_cap];
}

static void sl_expire(struct rl_state *st, uint64_t now, uint64_t w)
{
    while (st->log_len && st->log[st->log_head] + w <= now) {
        if (++st->log_head == st->log_cap)
            st->log_head = 0;
        st->log_len--;
    }
    if (!st->log_len)
        st->log_head = 0;
}

/* Linearise the ring into a new one of cap entries, dropping the oldest `drop`. */
static int sl_move(struct rl_state *st, uint64_t cap, uint64_t drop)
{
    uint64_t keep = st->log_len - drop;
    uint64_t *ring = malloc(cap * sizeof(*ring));
    if (!ring)
        return SL_ENOMEM;
    for (uint64_t i = 0; i < keep; i++)
        ring[i] = log_at(st, drop + i);
    free(st->log);
    st->log = ring;
    st->log_cap = (uint32_t)cap;
    st->log_head = 0;
    st->log_len = (uint32_t)keep;
    return SL_OK;
}

/* Room for `need` entries: the ring doubles from 4 up to the limit. */
static int sl_reserve(struct rl_state *st, uint64_t need, uint64_t limit)
{
    if (need <= st->log_cap)
        return SL_OK;
    uint64_t cap = st->log_cap ? st->log_cap : 4;
    while (cap < need)
        cap *= 2;
    return sl_move(st, min_u64(cap, limit), 0);
}

static int sl_decide(const struct rl_params *p, struct rl_state *st, uint64_t now, uint64_t cost,
                     struct rl_decision *out)
{
    assert(p->limit <= RL_SLIDING_LOG_MAX);
    uint64_t w = p->window_ms, l = p->limit;
    sl_expire(st, now, w);
    out->allowed = st->log_len + cost <= l;
    if (out->allowed && cost) {
        int err = sl_reserve(st, st->log_len + cost, l);
        if (err)
            return err;
        /* the clock may be behind the newest entry: keep the ring sorted */
        uint64_t t = st->log_len ? max_u64(now, log_at(st, st->log_len - 1)) : now;
        for (uint64_t k = 0; k < cost; k++) {
            uint64_t j = st->log_head + st->log_len++;
            st->log[j < st->log_cap ? j : j - st->log_cap] = t;
        }
    }
    uint64_t len = st->log_len;
    out->remaining = len < l ? l - len : 0;
    out->reset_ms = len ? log_at(st, len - 1) + w - now : 0;
    /* admitted once the (len + cost - l) oldest entries have left the window */
    out->retry_after_ms = out->allowed ? 0 : log_at(st, len + cost - l - 1) + w - now;
    return SL_OK;
}

static void sl_retune(const struct rl_params *from, const struct rl_params *to, struct rl_state *st,
                      uint64_t now)
{
    sl_expire(st, now, from->window_ms);
    if (st->log_cap <= to->limit)
        return;
    uint64_t drop = st->log_len > to->limit ? st->log_len - to->limit : 0;
    if (st->log_len == drop) {
        rl_state_release(st);
        return;
    }
    if (sl_move(st, st->log_len - drop, drop) != SL_OK) {
        /* no memory to shrink: drop in place and keep the larger ring */
        st->log_head = (uint32_t)((st->log_head + drop) % st->log_cap);
        st->log_len -= (uint32_t)drop;
    }
}

/* ---- token bucket and leaky bucket: a = last decision (ms), b = level (units) -------- */

/* A level that drains per_ms units each ms since `last`, at now. */
static uint64_t drained(uint64_t level, uint64_t last, uint64_t now, uint64_t per_ms)
{
    uint64_t d;
    if (now <= last)
        return level;
    if (__builtin_mul_overflow(now - last, per_ms, &d) || d >= level)
        return 0;
    return level - d;
}

/* size = the bucket in requests; the level counts requests in it (W units each). */
static int bucket_decide(uint64_t size, const struct rl_params *p, struct rl_state *st,
                         uint64_t now, uint64_t cost, struct rl_decision *out)
{
    uint64_t w = p->window_ms, l = p->limit, full = size * w;
    uint64_t level = drained(st->b, st->a, now, l);
    st->a = max_u64(st->a, now);
    uint64_t skew = st->a - now; /* > 0 only when the clock is behind the state */
    out->allowed = level + cost * w <= full;
    if (out->allowed)
        level += cost * w;
    st->b = level;
    out->remaining = level < full ? (full - level) / w : 0;
    out->reset_ms = level ? skew + ceil_div(level, l) : 0;
    out->retry_after_ms = out->allowed ? 0 : skew + ceil_div(level + cost * w - full, l);
    return SL_OK;
}

static uint64_t tb_size(const struct rl_params *p)
{
    return p->burst ? p->burst : p->limit;
}

static int tb_decide(const struct rl_params *p, struct rl_state *st, uint64_t now, uint64_t cost,
                     struct rl_decision *out)
{
    return bucket_decide(tb_size(p), p, st, now, cost, out);
}

static int lb_decide(const struct rl_params *p, struct rl_state *st, uint64_t now, uint64_t cost,
                     struct rl_decision *out)
{
    return bucket_decide(p->burst + 1, p, st, now, cost, out);
}

static void bucket_retune(uint64_t from_size, uint64_t to_size, const struct rl_params *from,
                          const struct rl_params *to, struct rl_state *st, uint64_t now)
{
    uint64_t level = drained(st->b, st->a, now, from->limit);
    st->b = rescale_up(level, from_size * from->window_ms, to_size * to->window_ms);
    st->a = max_u64(st->a, now);
}

static void tb_retune(const struct rl_params *from, const struct rl_params *to, struct rl_state *st,
                      uint64_t now)
{
    bucket_retune(tb_size(from), tb_size(to), from, to, st, now);
}

static void lb_retune(const struct rl_params *from, const struct rl_params *to, struct rl_state *st,
                      uint64_t now)
{
    bucket_retune(from->burst + 1, to->burst + 1, from, to, st, now);
}

/* ---- GCRA: TAT = a + b / L ms (0 ≤ b < L); level = max(TAT − now, 0) × L ------------- */

static uint64_t gcra_level(const struct rl_state *st, uint64_t now, uint64_t l)
{
    uint64_t d;
    if (st->a < now) /* TAT < a + 1 ≤ now */
        return 0;
    if (__builtin_mul_overflow(st->a - now, l, &d) || __builtin_add_overflow(d, st->b, &d))
        return UINT64_MAX / 4;
    return d;
}

static void gcra_set(struct rl_state *st, uint64_t now, uint64_t level, uint64_t l)
{
    st->a = level ? now + level / l : 0;
    st->b = level ? level % l : 0;
}

/* Admit if the new TAT, max(TAT, now) + cost × T, is at most now + τ + T, with T = W/L
 * and τ = burst × T: in units, level + cost × W ≤ (burst + 1) × W. */
static int gcra_decide(const struct rl_params *p, struct rl_state *st, uint64_t now, uint64_t cost,
                       struct rl_decision *out)
{
    uint64_t w = p->window_ms, l = p->limit, full = (p->burst + 1) * w;
    uint64_t level = gcra_level(st, now, l);
    out->allowed = level + cost * w <= full;
    if (out->allowed && cost) {
        level += cost * w;
        gcra_set(st, now, level, l);
    }
    out->remaining = level < full ? (full - level) / w : 0;
    out->reset_ms = ceil_div(level, l);
    out->retry_after_ms = out->allowed ? 0 : ceil_div(level + cost * w - full, l);
    return SL_OK;
}

static void gcra_retune(const struct rl_params *from, const struct rl_params *to,
                        struct rl_state *st, uint64_t now)
{
    uint64_t level = gcra_level(st, now, from->limit);
    level = rescale_up(level, (from->burst + 1) * from->window_ms, (to->burst + 1) * to->window_ms);
    gcra_set(st, now, level, to->limit);
}

/* ---- dispatch ------------------------------------------------------------------------ */

typedef int (*rl_decide_fn)(const struct rl_params *p, struct rl_state *st, uint64_t now_ms,
                            uint64_t cost, struct rl_decision *out);
typedef void (*rl_retune_fn)(const struct rl_params *from, const struct rl_params *to,
                             struct rl_state *st, uint64_t now_ms);

static const struct {
    const char *name;
    rl_decide_fn decide;
    rl_retune_fn retune;
} algs[RL_ALGORITHMS] = {
    [RL_FIXED_WINDOW] = {"fixed_window", fw_decide, fw_retune},
    [RL_SLIDING_LOG] = {"sliding_log", sl_decide, sl_retune},
    [RL_SLIDING_WINDOW] = {"sliding_window", sw_decide, sw_retune},
    [RL_TOKEN_BUCKET] = {"token_bucket", tb_decide, tb_retune},
    [RL_LEAKY_BUCKET] = {"leaky_bucket", lb_decide, lb_retune},
    [RL_GCRA] = {"gcra", gcra_decide, gcra_retune},
};

const char *rl_algorithm_name(enum rl_algorithm alg)
{
    return (unsigned)alg < RL_ALGORITHMS ? algs[alg].name : "unknown";
}

bool rl_algorithm_parse(const char *name, enum rl_algorithm *out)
{
    for (unsigned i = 0; name && i < RL_ALGORITHMS; i++) {
        if (strcmp(name, algs[i].name) == 0) {
            *out = (enum rl_algorithm)i;
            return true;
        }
    }
    return false;
}

int rl_params_check(const struct rl_params *p, const char **why)
{
    const char *w = NULL;
    if ((unsigned)p->alg >= RL_ALGORITHMS)
        w = "algorithm is unknown";
    else if (p->limit < 1)
        w = "limit must be at least 1";
    else if (p->limit > RL_LIMIT_MAX)
        w = "limit must be at most " STR(RL_LIMIT_MAX);
    else if (p->window_ms < 1)
        w = "window_ms must be at least 1";
    else if (p->window_ms > RL_WINDOW_MAX_MS)
        w = "window_ms must be at most " STR(RL_WINDOW_MAX_MS) " (31 days)";
    else if (p->burst > RL_BURST_MAX)
        w = "burst must be at most " STR(RL_BURST_MAX);
    else if (p->alg == RL_SLIDING_LOG && p->limit > RL_SLIDING_LOG_MAX)
        w = "sliding_log allows at most " STR(RL_SLIDING_LOG_MAX) " per window";
    if (why)
        *why = w ? w : "ok";
    return w ? SL_EINVAL : SL_OK;
}

uint64_t rl_capacity(const struct rl_params *p)
{
    switch (p->alg) {
    case RL_TOKEN_BUCKET:
        return tb_size(p);
    case RL_LEAKY_BUCKET:
    case RL_GCRA:
        return p->burst + 1;
    default:
        return p->limit;
    }
}

int rl_decide(const struct rl_params *p, struct rl_state *st, uint64_t now_ms, uint64_t cost,
              struct rl_decision *out)
{
    assert((unsigned)p->alg < RL_ALGORITHMS && p->limit >= 1 && p->window_ms >= 1);
    bool never = cost > rl_capacity(p);
    int err = algs[p->alg].decide(p, st, now_ms, never ? 0 : cost, out);
    if (err)
        return err;
    out->limit = p->limit;
    if (never) {
        out->allowed = false;
        out->retry_after_ms = max_u64(out->reset_ms, p->window_ms);
    } else if (cost == 0) {
        out->allowed = true; /* a peek, even when over the limit after a retune */
        out->retry_after_ms = 0;
    }
    return SL_OK;
}

void rl_state_retune(const struct rl_params *from, const struct rl_params *to, struct rl_state *st,
                     uint64_t now_ms)
{
    if (from->alg != to->alg) {
        rl_state_release(st);
        return;
    }
    algs[from->alg].retune(from, to, st, now_ms);
}

void rl_state_release(struct rl_state *st)
{
    free(st->log);
    memset(st, 0, sizeof(*st));
}

/* ---- local store --------------------------------------------------------------------- */

#define NONE            UINT32_MAX
#define KEY_INLINE      56 /* key bytes kept in the entry; longer ones are allocated */
#define STRIPE_MIN_KEYS 16 /* small tables get fewer stripes, so LRU has room to work */
#define STRIPE_FIRST    8  /* entries allocated at a stripe's first key; doubles after */
#define LOCAL_MAX_KEYS  (UINT64_C(1) << 36)

struct rl_entry {
    uint64_t hash;
    struct rl_state st;
    uint32_t policy_id;
    uint32_t prev, next; /* LRU neighbours (more / less recent); next links the free list */
    uint16_t key_len;
    uint8_t key_hashed; /* the key is the SHA-256 of a key longer than RL_LOCAL_KEY_MAX */
    union {
        unsigned char bytes[KEY_INLINE];
        unsigned char *heap;
    } key;
};
_Static_assert(sizeof(struct rl_entry) <= 128, "an entry is two cache lines at most");

/* One lock's worth of the table. Entries live in e[0 .. used): each is either on the LRU
 * list (mru → lru via next) or on the free list. index is open addressing with linear
 * probing, at most half full; a slot holds (hash & 0xffffffff) << 32 | (entry + 1), so
 * probing compares hashes without touching entries and deletion can shift back. */
struct rl_stripe {
    _Alignas(64) pthread_mutex_t lock;
    struct rl_entry *e;
    uint64_t *index;
    uint32_t index_mask;
    uint32_t cap, used, max; /* entries allocated, handed out, allowed */
    uint32_t mru, lru, free_list;
    _Atomic size_t keys;
    _Atomic uint64_t evictions;
};

struct rl_local {
    uint64_t seed;
    unsigned nstripes; /* a power of two */
    struct rl_stripe stripes[];
};

struct rl_key {
    uint32_t policy;
    bool hashed;
    const unsigned char *bytes;
    size_t len;
    uint64_t hash;
};

static uint64_t key_hash(uint64_t seed, const struct rl_key *k)
{
    /* the policy and the hashed flag go into the seed: same bytes, other policy, other slot */
    return hash64_seeded(seed ^ ((uint64_t)k->policy << 32 | (uint64_t)k->hashed << 1),
                         k->bytes, k->len);
}

static inline const unsigned char *entry_key(const struct rl_entry *e)
{
    return e->key_len > KEY_INLINE ? e->key.heap : e->key.bytes;
}

static bool entry_is(const struct rl_entry *e, const struct rl_key *k)
{
    return e->hash == k->hash && e->policy_id == k->policy && e->key_len == k->len &&
           e->key_hashed == k->hashed && memcmp(entry_key(e), k->bytes, k->len) == 0;
}

static uint32_t stripe_find(const struct rl_stripe *s, const struct rl_key *k)
{
    if (!s->index)
        return NONE;
    uint64_t tag = k->hash << 32;
    for (uint32_t i = (uint32_t)k->hash & s->index_mask;; i = (i + 1) & s->index_mask) {
        uint64_t v = s->index[i];
        if (!v)
            return NONE;
        if ((v & ~UINT64_C(0xffffffff)) == tag && entry_is(&s->e[(uint32_t)v - 1], k))
            return (uint32_t)v - 1;
    }
}

static void index_put(struct rl_stripe *s, uint64_t hash, uint32_t slot)
{
    uint32_t i = (uint32_t)hash & s->index_mask;
    while (s->index[i])
        i = (i + 1) & s->index_mask;
    s->index[i] = hash << 32 | (slot + 1);
}

/* Backward-shift deletion (Knuth 6.4 algorithm R): no tombstones, probes stay short. */
static void index_del(struct rl_stripe *s, uint64_t hash, uint32_t slot)
{
    uint32_t m = s->index_mask, i = (uint32_t)hash & m;
    while ((uint32_t)s->index[i] != slot + 1)
        i = (i + 1) & m;
    for (uint32_t j = (i + 1) & m; s->index[j]; j = (j + 1) & m) {
        uint32_t home = (uint32_t)(s->index[j] >> 32) & m;
        if (((j - home) & m) >= ((j - i) & m)) { /* the hole lies on j's probe path */
            s->index[i] = s->index[j];
            i = j;
        }
    }
    s->index[i] = 0;
}

static void lru_unlink(struct rl_stripe *s, uint32_t i)
{
    struct rl_entry *e = &s->e[i];
    if (e->prev != NONE)
        s->e[e->prev].next = e->next;
    else
        s->mru = e->next;
    if (e->next != NONE)
        s->e[e->next].prev = e->prev;
    else
        s->lru = e->prev;
}

static void lru_push(struct rl_stripe *s, uint32_t i)
{
    struct rl_entry *e = &s->e[i];
    e->prev = NONE;
    e->next = s->mru;
    if (s->mru != NONE)
        s->e[s->mru].prev = i;
    else
        s->lru = i;
    s->mru = i;
}

static void stripe_count(struct rl_stripe *s, int delta)
{
    size_t n = atomic_load_explicit(&s->keys, memory_order_relaxed);
    atomic_store_explicit(&s->keys, delta > 0 ? n + 1 : n - 1, memory_order_relaxed);
}

/* Unlink a live entry, free what it owns and put it on the free list. */
static void entry_drop(struct rl_stripe *s, uint32_t i)
{
    struct rl_entry *e = &s->e[i];
    index_del(s, e->hash, i);
    lru_unlink(s, i);
    rl_state_release(&e->st);
    if (e->key_len > KEY_INLINE)
        free(e->key.heap);
    e->next = s->free_list;
    s->free_list = i;
    stripe_count(s, -1);
}

/* Double the entries (up to max) and keep the index at most half full. */
static int stripe_grow(struct rl_stripe *s)
{
    uint32_t cap = s->cap ? (uint32_t)min_u64((uint64_t)s->cap * 2, s->max)
                          : (uint32_t)min_u64(STRIPE_FIRST, s->max);
    struct rl_entry *e = realloc(s->e, (size_t)cap * sizeof(*e));
    if (!e)
        return SL_ENOMEM;
    s->e = e;
    size_t slots = 1;
    while (slots < (size_t)cap * 2)
        slots *= 2;
    if (!s->index || slots > (size_t)s->index_mask + 1) {
        uint64_t *index = calloc(slots, sizeof(*index));
        if (!index)
            return SL_ENOMEM;
        free(s->index);
        s->index = index;
        s->index_mask = (uint32_t)(slots - 1);
        for (uint32_t i = s->mru; i != NONE; i = s->e[i].next)
            index_put(s, s->e[i].hash, i);
    }
    s->cap = cap;
    return SL_OK;
}

/* An entry slot for a new key: the stripe's least recently used key when full. */
static int stripe_take(struct rl_stripe *s, uint32_t *slot)
{
    if (atomic_load_explicit(&s->keys, memory_order_relaxed) >= s->max) {
        entry_drop(s, s->lru);
        uint64_t n = atomic_load_explicit(&s->evictions, memory_order_relaxed);
        atomic_store_explicit(&s->evictions, n + 1, memory_order_relaxed);
    }
    if (s->free_list != NONE) {
        *slot = s->free_list;
        s->free_list = s->e[*slot].next;
        return SL_OK;
    }
    if (s->used == s->cap) {
        int err = stripe_grow(s);
        if (err)
            return err;
    }
    *slot = s->used++;
    return SL_OK;
}

static int stripe_insert(struct rl_stripe *s, const struct rl_key *k, uint32_t *slot)
{
    uint32_t i;
    int err = stripe_take(s, &i);
    if (err)
        return err;
    struct rl_entry *e = &s->e[i];
    unsigned char *dst = e->key.bytes;
    if (k->len > KEY_INLINE) {
        dst = malloc(k->len);
        if (!dst) {
            e->next = s->free_list;
            s->free_list = i;
            return SL_ENOMEM;
        }
        e->key.heap = dst;
    }
    if (k->len)
        memcpy(dst, k->bytes, k->len);
    e->hash = k->hash;
    memset(&e->st, 0, sizeof(e->st));
    e->policy_id = k->policy;
    e->key_len = (uint16_t)k->len;
    e->key_hashed = k->hashed;
    index_put(s, k->hash, i);
    lru_push(s, i);
    stripe_count(s, +1);
    *slot = i;
    return SL_OK;
}

struct rl_local *rl_local_new(size_t max_keys)
{
    if (max_keys == 0 || max_keys > LOCAL_MAX_KEYS)
        return NULL;
    unsigned n = 1;
    while (n < RL_LOCAL_STRIPES && (size_t)n * 2 * STRIPE_MIN_KEYS <= max_keys)
        n *= 2;
    size_t size = sizeof(struct rl_local) + n * sizeof(struct rl_stripe);
    struct rl_local *l = aligned_alloc(64, (size + 63) / 64 * 64);
    if (!l)
        return NULL;
    memset(l, 0, size);
    l->seed = rng_u64();
    l->nstripes = n;
    for (unsigned i = 0; i < n; i++) {
        struct rl_stripe *s = &l->stripes[i];
        if (pthread_mutex_init(&s->lock, NULL) != 0) {
            while (i--)
                pthread_mutex_destroy(&l->stripes[i].lock);
            free(l);
            return NULL;
        }
        s->max = (uint32_t)(max_keys / n);
        s->mru = s->lru = s->free_list = NONE;
        atomic_init(&s->keys, 0);
        atomic_init(&s->evictions, 0);
    }
    return l;
}

void rl_local_free(struct rl_local *l)
{
    if (!l)
        return;
    for (unsigned i = 0; i < l->nstripes; i++) {
        struct rl_stripe *s = &l->stripes[i];
        for (uint32_t j = s->mru; j != NONE; j = s->e[j].next) {
            rl_state_release(&s->e[j].st);
            if (s->e[j].key_len > KEY_INLINE)
                free(s->e[j].key.heap);
        }
        free(s->e);
        free(s->index);
        pthread_mutex_destroy(&s->lock);
    }
    free(l);
}

int rl_local_decide(struct rl_local *l, uint32_t policy_id, const struct rl_params *p,
                    const void *key, size_t key_len, uint64_t now_ms, uint64_t cost,
                    struct rl_decision *out)
{
    uint8_t digest[CRYPTO_SHA256_BYTES];
    struct rl_key k = {.policy = policy_id, .bytes = key ? key : (const void *)"", .len = key_len};
    if (key_len > RL_LOCAL_KEY_MAX) {
        crypto_sha256(key, key_len, digest);
        k.bytes = digest;
        k.len = sizeof(digest);
        k.hashed = true;
    }
    k.hash = key_hash(l->seed, &k);
    struct rl_stripe *s = &l->stripes[(k.hash >> 40) & (l->nstripes - 1)];

    pthread_mutex_lock(&s->lock);
    int err = SL_OK;
    uint32_t i = stripe_find(s, &k);
    if (i == NONE) {
        err = stripe_insert(s, &k, &i);
    } else if (i != s->mru) {
        lru_unlink(s, i);
        lru_push(s, i);
    }
    if (!err)
        err = rl_decide(p, &s->e[i].st, now_ms, cost, out);
    pthread_mutex_unlock(&s->lock);
    return err;
}

void rl_local_retune(struct rl_local *l, uint32_t policy_id, const struct rl_params *from,
                     const struct rl_params *to, uint64_t now_ms)
{
    for (unsigned i = 0; i < l->nstripes; i++) {
        struct rl_stripe *s = &l->stripes[i];
        pthread_mutex_lock(&s->lock);
        for (uint32_t j = s->mru; j != NONE; j = s->e[j].next)
            if (s->e[j].policy_id == policy_id)
                rl_state_retune(from, to, &s->e[j].st, now_ms);
        pthread_mutex_unlock(&s->lock);
    }
}

void rl_local_forget(struct rl_local *l, uint32_t policy_id)
{
    for (unsigned i = 0; i < l->nstripes; i++) {
        struct rl_stripe *s = &l->stripes[i];
        pthread_mutex_lock(&s->lock);
        for (uint32_t j = s->mru, next; j != NONE; j = next) {
            next = s->e[j].next;
            if (s->e[j].policy_id == policy_id)
                entry_drop(s, j);
        }
        pthread_mutex_unlock(&s->lock);
    }
}

size_t rl_local_keys(const struct rl_local *l)
{
    size_t n = 0;
    for (unsigned i = 0; i < l->nstripes; i++)
        n += atomic_load_explicit(&l->stripes[i].keys, memory_order_relaxed);
    return n;
}

uint64_t rl_local_evictions(const struct rl_local *l)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < l->nstripes; i++)
        n += atomic_load_explicit(&l->stripes[i].evictions, memory_order_relaxed);
    return n;
}
