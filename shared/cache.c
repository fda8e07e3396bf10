/*
 * cache — the agent's response store: striped table, byte accounting, expiry, and the four
 * eviction policies behind one table of operations. cache.h is the contract.
 *
 * Layout of a stripe (everything below is touched only under the stripe's mutex):
 *  - index: chained hash buckets (the chain pointer lives in the entry), a power of two,
 *    grown when the load passes 2 and shrunk below 1/2, so buckets ≤ 2 × entries;
 *  - dead heap: the entries that expire, min-heap on the time they become dead, so room
 *    is made from dead entries first and cache_reap is O(dead × log n);
 *  - the policy's structure: a list (LRU), two FIFO lists and a ghost table (S3-FIFO), or
 *    a min-heap of victims (LFU on (score, last access), TTL on (expires, insertion)).
 *    Heaps grow by doubling and shrink below a quarter, so each holds ≤ 4 slots per entry.
 *  Those bounds are what CACHE_ENTRY_OVERHEAD pays for (the _Static_assert below).
 *
 * An entry is one allocation: header, key bytes, value bytes. The table holds one
 * reference; cache_get hands out more. Entries removed under the lock are chained on a
 * local "grave" list and released after the lock is dropped, so free() of a large body
 * never runs under a stripe lock, and a reader's handle keeps the bytes alive.
 *
 * LFU aging without touching every entry: a score is Σ 2^(epoch(access) − base) over the
 * accesses, epoch = now / half-life. Comparing scores compares counts that halve every
 * half-life, exactly, because every score is scaled by the same 2^(now − base). When the
 * exponent reaches LFU_RESCALE_EPOCHS the stripe shifts every score right (rounding down:
 * an access older than that many half-lives is worth 0) and rebuilds its heap: O(n) once
 * per 32 half-lives.
 */
#include "cache.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hashring.h"
#include "rng.h"

#define NONE               UINT32_MAX
#define BUCKETS_MIN        16
#define HEAP_MIN           16
#define ALLOC_OVERHEAD     23 /* glibc: 8-byte chunk header + rounding up to 16 */
#define LFU_RESCALE_EPOCHS 32
#define S3_SMALL_PERCENT   10   /* the small (probation) FIFO's share of a stripe's bytes */
#define S3_FREQ_MAX        3    /* 2-bit counter */
#define GHOST_WAYS         4    /* records per ghost bucket */
#define GHOST_BUDGET_SLOT  1024 /* one ghost record per KiB of stripe budget ... */
#define GHOST_SLOTS_MIN    64   /* ... at least this many ... */
#define GHOST_SLOTS_MAX    (UINT32_C(1) << 24) /* ... and at most (256 MiB per stripe) */

enum queue { Q_NONE, Q_SMALL, Q_MAIN };
enum heap_id { H_VICTIM, H_DEAD };

enum counter {
    C_HITS,
    C_STALE_HITS,
    C_MISSES,
    C_INSERTS,
    C_REPLACES,
    C_EVICTIONS,
    C_EXPIRATIONS,
    C_DELETES,
    C_REJECTED,
    C_COUNTERS
};

struct cache_entry {
    _Atomic uint32_t refs;
    uint32_t key_len;
    uint64_t hash;
    size_t data_len;
    struct cache_meta meta;
    struct cache_entry *chain;       /* next in the hash bucket; then in the grave list */
    struct cache_entry *prev, *next; /* LRU list / S3-FIFO queue (head = newest) */
    uint64_t vkey;                   /* victims heap key: LFU score, TTL expiry */
    uint64_t seq;                    /* LFU: last access; TTL: insertion (ties) */
    uint32_t heap_at[2];             /* position in the victims / dead heap, or NONE */
    uint8_t queue;                   /* enum queue (S3-FIFO) */
    uint8_t freq;                    /* S3-FIFO hits, 0..S3_FREQ_MAX */
    unsigned char bytes[];           /* key, then data */
};
/* Header + allocator + index (≤ 2 buckets) + two heaps (≤ 4 slots each), per entry. */
_Static_assert(sizeof(struct cache_entry) + ALLOC_OVERHEAD + 2 * sizeof(void *) +
                       2 * 4 * sizeof(void *) <=
                   CACHE_ENTRY_OVERHEAD,
               "CACHE_ENTRY_OVERHEAD must bound the memory of an entry");

struct list {
    struct cache_entry *head, *tail;
    uint64_t bytes;
};

struct heap {
    struct cache_entry **a;
    uint32_t n, cap;
    enum heap_id id;
};

struct ghost_slot {
    uint64_t fp; /* key hash, never 0; 0 = empty */
    uint64_t at; /* ghost byte clock when it was added */
};

struct stripe;

/* One eviction policy. admit runs before anything changes (old: the entry being replaced,
 * still linked); insert links the new entry once there is room (old is unlinked by then
 * but still readable); victim picks the next entry to evict, still linked (S3-FIFO may
 * move entries between its queues on the way). */
struct policy_ops {
    const char *name;
    bool heap; /* uses the victims heap */
    void (*admit)(struct stripe *s, struct cache_entry *e, const struct cache_entry *old,
                  uint64_t now_ms);
    void (*insert)(struct stripe *s, struct cache_entry *e, const struct cache_entry *old);
    void (*touch)(struct stripe *s, struct cache_entry *e, uint64_t now_ms);
    void (*unlink)(struct stripe *s, struct cache_entry *e);
    struct cache_entry *(*victim)(struct stripe *s);
};

struct stripe {
    _Alignas(64) pthread_mutex_t lock;
    const struct policy_ops *ops;
    uint64_t budget; /* bytes */
    uint64_t bytes;  /* Σ entry costs ≤ budget */
    size_t entries;
    struct cache_entry **buckets;
    size_t bucket_mask;
    uint64_t seq; /* access / insertion counter */
    struct heap victims, dead;
    struct list small, main; /* LRU uses main only */
    uint64_t small_target;   /* S3-FIFO */
    struct ghost_slot *ghost;
    uint32_t ghost_mask;   /* buckets − 1 */
    uint64_t ghost_clock;  /* bytes of entries ever dropped into the ghost */
    uint64_t ghost_window; /* a record lives while ≤ this many bytes follow it */
    uint64_t half_life_ms; /* LFU */
    uint64_t lfu_epoch, lfu_base;
    _Atomic uint64_t n[C_COUNTERS];
    _Atomic uint64_t pub_bytes, pub_entries;
};

struct cache {
    uint64_t seed;
    uint64_t budget;
    uint64_t max_entry;
    uint64_t fixed_bytes;
    unsigned nstripes; /* a power of two */
    struct stripe stripes[];
};

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static void count(struct stripe *s, enum counter k)
{
    uint64_t v = atomic_load_explicit(&s->n[k], memory_order_relaxed);
    atomic_store_explicit(&s->n[k], v + 1, memory_order_relaxed);
}

/* ---- hashing: seeded (hashring.h), so clients cannot aim keys at one stripe or chain -- */

static uint64_t key_hash(uint64_t seed, const unsigned char *b, size_t n)
{
    return hash64_seeded(seed, b, n);
}

static struct stripe *stripe_of(struct cache *c, uint64_t hash)
{
    return &c->stripes[(hash >> 56) & (c->nstripes - 1)];
}

/* ---- entries ------------------------------------------------------------------------- */

uint64_t cache_entry_cost(size_t key_len, size_t data_len)
{
    if (key_len > CACHE_BUDGET_MAX || data_len > CACHE_BUDGET_MAX)
        return UINT64_MAX;
    return CACHE_ENTRY_OVERHEAD + (uint64_t)key_len + (uint64_t)data_len;
}

static uint64_t entry_cost(const struct cache_entry *e)
{
    return cache_entry_cost(e->key_len, e->data_len);
}

static bool has_expiry(const struct cache_meta *m)
{
    return m->expires_ms != 0;
}

/* When the entry can no longer be served at all (UINT64_MAX: never). */
static uint64_t dead_ms(const struct cache_meta *m)
{
    return has_expiry(m) ? max_u64(m->expires_ms, m->stale_until_ms) : UINT64_MAX;
}

static bool is_dead(const struct cache_entry *e, uint64_t now_ms)
{
    return now_ms >= dead_ms(&e->meta);
}

bool cache_entry_is_fresh(const struct cache_entry *e, uint64_t now_ms)
{
    return !has_expiry(&e->meta) || now_ms < e->meta.expires_ms;
}

const void *cache_entry_data(const struct cache_entry *e)
{
    return e->bytes + e->key_len;
}

size_t cache_entry_len(const struct cache_entry *e)
{
    return e->data_len;
}

const void *cache_entry_key(const struct cache_entry *e)
{
    return e->bytes;
}

size_t cache_entry_key_len(const struct cache_entry *e)
{
    return e->key_len;
}

const struct cache_meta *cache_entry_meta(const struct cache_entry *e)
{
    return &e->meta;
}

void cache_entry_release(struct cache_entry *e)
{
    if (e && atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        free(e);
}

static struct cache_entry *entry_new(uint64_t hash, const void *key, size_t key_len,
                                     const void *data, size_t data_len,
                                     const struct cache_meta *meta)
{
    struct cache_entry *e = malloc(sizeof(*e) + key_len + data_len);
    if (!e)
        return NULL;
    memset(e, 0, sizeof(*e));
    atomic_init(&e->refs, 1);
    e->key_len = (uint32_t)key_len;
    e->hash = hash;
    e->data_len = data_len;
    e->meta = *meta;
    e->heap_at[H_VICTIM] = e->heap_at[H_DEAD] = NONE;
    if (key_len)
        memcpy(e->bytes, key, key_len);
    if (data_len)
        memcpy(e->bytes + key_len, data, data_len);
    return e;
}

/* Release the table's references of entries removed under the lock (lock dropped). */
static void bury(struct cache_entry *grave)
{
    while (grave) {
        struct cache_entry *next = grave->chain;
        cache_entry_release(grave);
        grave = next;
    }
}

/* ---- index --------------------------------------------------------------------------- */

static struct cache_entry *index_find(const struct stripe *s, uint64_t hash, const void *key,
                                      size_t key_len)
{
    for (struct cache_entry *e = s->buckets[hash & s->bucket_mask]; e; e = e->chain)
        if (e->hash == hash && e->key_len == key_len &&
            (key_len == 0 || memcmp(e->bytes, key, key_len) == 0))
            return e;
    return NULL;
}

/* Rehash into n buckets; on allocation failure keep the old array (longer chains). */
static void index_resize(struct stripe *s, size_t n)
{
    struct cache_entry **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i <= s->bucket_mask; i++) {
        for (struct cache_entry *e = s->buckets[i], *next; e; e = next) {
            next = e->chain;
            e->chain = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->bucket_mask = n - 1;
}

static void index_add(struct stripe *s, struct cache_entry *e)
{
    struct cache_entry **b = &s->buckets[e->hash & s->bucket_mask];
    e->chain = *b;
    *b = e;
    if (s->entries + 1 > 2 * (s->bucket_mask + 1))
        index_resize(s, 2 * (s->bucket_mask + 1));
}

static void index_del(struct stripe *s, struct cache_entry *e)
{
    struct cache_entry **pp = &s->buckets[e->hash & s->bucket_mask];
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    e->chain = NULL;
}

/* ---- heaps --------------------------------------------------------------------------- */

static bool heap_less(const struct heap *h, const struct cache_entry *a,
                      const struct cache_entry *b)
{
    if (h->id == H_DEAD)
        return dead_ms(&a->meta) < dead_ms(&b->meta);
    return a->vkey != b->vkey ? a->vkey < b->vkey : a->seq < b->seq;
}

static void heap_set(struct heap *h, uint32_t i, struct cache_entry *e)
{
    h->a[i] = e;
    e->heap_at[h->id] = i;
}

static void heap_up(struct heap *h, uint32_t i)
{
    struct cache_entry *e = h->a[i];
    while (i > 0 && heap_less(h, e, h->a[(i - 1) / 2])) {
        heap_set(h, i, h->a[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(h, i, e);
}

static void heap_down(struct heap *h, uint32_t i)
{
    struct cache_entry *e = h->a[i];
    for (;;) {
        uint32_t l = 2 * i + 1, m = l;
        if (l >= h->n)
            break;
        if (l + 1 < h->n && heap_less(h, h->a[l + 1], h->a[l]))
            m = l + 1;
        if (!heap_less(h, h->a[m], e))
            break;
        heap_set(h, i, h->a[m]);
        i = m;
    }
    heap_set(h, i, e);
}

static int heap_reserve(struct heap *h)
{
    if (h->n < h->cap)
        return SL_OK;
    struct cache_entry **a = realloc(h->a, (size_t)h->cap * 2 * sizeof(*a));
    if (!a)
        return SL_ENOMEM;
    h->a = a;
    h->cap *= 2;
    return SL_OK;
}

/* The caller reserved room (heap_reserve) before changing anything. */
static void heap_push(struct heap *h, struct cache_entry *e)
{
    assert(h->n < h->cap);
    heap_set(h, h->n, e);
    heap_up(h, h->n++);
}

static void heap_remove(struct heap *h, struct cache_entry *e)
{
    uint32_t i = e->heap_at[h->id];
    struct cache_entry *last = h->a[--h->n];
    e->heap_at[h->id] = NONE;
    if (i == h->n)
        return;
    heap_set(h, i, last);
    heap_up(h, i);
    heap_down(h, last->heap_at[h->id]);
}

static void heapify(struct heap *h)
{
    for (uint32_t i = h->n / 2; i-- > 0;)
        heap_down(h, i);
}

/* Halve while under a quarter full (never below HEAP_MIN); a failed realloc keeps it. */
static void heap_trim(struct heap *h)
{
    uint32_t cap = h->cap;
    while (cap > HEAP_MIN && h->n < cap / 4)
        cap /= 2;
    if (cap == h->cap)
        return;
    struct cache_entry **a = realloc(h->a, (size_t)cap * sizeof(*a));
    if (a) {
        h->a = a;
        h->cap = cap;
    }
}

/* ---- lists --------------------------------------------------------------------------- */

static void list_push(struct list *l, struct cache_entry *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head)
        l->head->prev = e;
    else
        l->tail = e;
    l->head = e;
    l->bytes += entry_cost(e);
}

static void list_del(struct list *l, struct cache_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
    l->bytes -= entry_cost(e);
}

/* ---- LRU ----------------------------------------------------------------------------- */

static void lru_insert(struct stripe *s, struct cache_entry *e, const struct cache_entry *old)
{
    (void)old;
    e->queue = Q_MAIN;
    list_push(&s->main, e);
}

static void lru_touch(struct stripe *s, struct cache_entry *e, uint64_t now_ms)
{
    (void)now_ms;
    list_del(&s->main, e);
    list_push(&s->main, e);
}

static void lru_unlink(struct stripe *s, struct cache_entry *e)
{
    list_del(&s->main, e);
}

static struct cache_entry *lru_victim(struct stripe *s)
{
    return s->main.tail;
}

/* ---- LFU with aging ------------------------------------------------------------------ */

static void lfu_rescale(struct stripe *s)
{
    uint64_t d = s->lfu_epoch - s->lfu_base;
    for (uint32_t i = 0; i < s->victims.n; i++) {
        struct cache_entry *e = s->victims.a[i];
        e->vkey = d >= 64 ? 0 : e->vkey >> d;
    }
    s->lfu_base = s->lfu_epoch;
    heapify(&s->victims); /* rounding made ties: the order by last access decides them */
}

/* Bring the stripe's epoch to now (never backwards); rescale when the weight grows big. */
static void lfu_advance(struct stripe *s, uint64_t now_ms)
{
    if (s->half_life_ms != CACHE_LFU_NO_AGING)
        s->lfu_epoch = max_u64(s->lfu_epoch, now_ms / s->half_life_ms);
    if (s->lfu_epoch - s->lfu_base >= LFU_RESCALE_EPOCHS)
        lfu_rescale(s);
}

static uint64_t lfu_add(const struct stripe *s, uint64_t score)
{
    uint64_t w = UINT64_C(1) << (s->lfu_epoch - s->lfu_base);
    return score > UINT64_MAX - w ? UINT64_MAX : score + w;
}

static void lfu_admit(struct stripe *s, struct cache_entry *e, const struct cache_entry *old,
                      uint64_t now_ms)
{
    (void)e;
    (void)old;
    lfu_advance(s, now_ms);
}

static void lfu_insert(struct stripe *s, struct cache_entry *e, const struct cache_entry *old)
{
    e->vkey = lfu_add(s, old ? old->vkey : 0);
    e->seq = ++s->seq;
    heap_push(&s->victims, e);
}

static void lfu_touch(struct stripe *s, struct cache_entry *e, uint64_t now_ms)
{
    lfu_advance(s, now_ms);
    e->vkey = lfu_add(s, e->vkey);
    e->seq = ++s->seq;
    heap_down(&s->victims, e->heap_at[H_VICTIM]);
}

static void heap_unlink(struct stripe *s, struct cache_entry *e)
{
    heap_remove(&s->victims, e);
}

static struct cache_entry *heap_victim(struct stripe *s)
{
    return s->victims.n ? s->victims.a[0] : NULL;
}

/* ---- TTL ----------------------------------------------------------------------------- */

static void ttl_insert(struct stripe *s, struct cache_entry *e, const struct cache_entry *old)
{
    (void)old;
    e->vkey = has_expiry(&e->meta) ? e->meta.expires_ms : UINT64_MAX;
    e->seq = ++s->seq;
    heap_push(&s->victims, e);
}

static void ttl_touch(struct stripe *s, struct cache_entry *e, uint64_t now_ms)
{
    (void)s;
    (void)e;
    (void)now_ms;
}

/* ---- S3-FIFO ------------------------------------------------------------------------- */

static struct ghost_slot *ghost_bucket(const struct stripe *s, uint64_t fp)
{
    return &s->ghost[((fp >> 24) & s->ghost_mask) * GHOST_WAYS];
}

static bool ghost_alive(const struct stripe *s, const struct ghost_slot *g)
{
    return g->fp && s->ghost_clock - g->at <= s->ghost_window;
}

/* Remember an entry dropped from the small queue: the same key, else an empty or expired
 * record of its bucket, else the bucket's oldest. */
static void ghost_add(struct stripe *s, const struct cache_entry *e)
{
    uint64_t fp = e->hash ? e->hash : 1;
    struct ghost_slot *b = ghost_bucket(s, fp), *g = NULL;
    for (int i = 0; i < GHOST_WAYS && !g; i++)
        if (b[i].fp == fp)
            g = &b[i];
    for (int i = 0; i < GHOST_WAYS && !g; i++)
        if (!ghost_alive(s, &b[i]))
            g = &b[i];
    if (!g) {
        g = &b[0];
        for (int i = 1; i < GHOST_WAYS; i++)
            if (b[i].at < g->at)
                g = &b[i];
    }
    g->fp = fp;
    g->at = s->ghost_clock;
    s->ghost_clock += entry_cost(e);
}

/* Whether the key is remembered; forgets it if so. */
static bool ghost_take(struct stripe *s, uint64_t hash)
{
    uint64_t fp = hash ? hash : 1;
    struct ghost_slot *b = ghost_bucket(s, fp);
    for (int i = 0; i < GHOST_WAYS; i++) {
        if (b[i].fp == fp && ghost_alive(s, &b[i])) {
            b[i].fp = 0;
            return true;
        }
    }
    return false;
}

static struct list *s3_list(struct stripe *s, const struct cache_entry *e)
{
    return e->queue == Q_SMALL ? &s->small : &s->main;
}

static void s3_admit(struct stripe *s, struct cache_entry *e, const struct cache_entry *old,
                     uint64_t now_ms)
{
    (void)now_ms;
    if (old) { /* a replacement is an access: same queue, one more hit */
        e->queue = old->queue;
        e->freq = (uint8_t)min_u64(old->freq + 1u, S3_FREQ_MAX);
    } else {
        e->queue = ghost_take(s, e->hash) ? Q_MAIN : Q_SMALL;
        e->freq = 0;
    }
}

static void s3_insert(struct stripe *s, struct cache_entry *e, const struct cache_entry *old)
{
    (void)old;
    list_push(s3_list(s, e), e);
}

static void s3_touch(struct stripe *s, struct cache_entry *e, uint64_t now_ms)
{
    (void)s;
    (void)now_ms;
    if (e->freq < S3_FREQ_MAX)
        e->freq++;
}

static void s3_unlink(struct stripe *s, struct cache_entry *e)
{
    list_del(s3_list(s, e), e);
}

/* From the small queue while it holds its share (or main is empty): a key hit while on
 * probation moves to main, the first one that was not is the victim (and goes to the
 * ghost). Else from main: CLOCK, a hit key goes round again with one hit less. */
static struct cache_entry *s3_victim(struct stripe *s)
{
    for (;;) {
        struct cache_entry *t;
        if (s->small.tail && (s->small.bytes >= s->small_target || !s->main.tail)) {
            t = s->small.tail;
            if (t->freq == 0) {
                ghost_add(s, t);
                return t;
            }
            list_del(&s->small, t);
            t->queue = Q_MAIN;
            t->freq = 0;
            list_push(&s->main, t);
        } else if ((t = s->main.tail) != NULL) {
            if (t->freq == 0)
                return t;
            list_del(&s->main, t);
            t->freq--;
            list_push(&s->main, t);
        } else {
            return NULL;
        }
    }
}

static const struct policy_ops policies[CACHE_POLICIES] = {
    [CACHE_LRU] = {"lru", false, NULL, lru_insert, lru_touch, lru_unlink, lru_victim},
    [CACHE_LFU] = {"lfu", true, lfu_admit, lfu_insert, lfu_touch, heap_unlink, heap_victim},
    [CACHE_TTL] = {"ttl", true, NULL, ttl_insert, ttl_touch, heap_unlink, heap_victim},
    [CACHE_S3FIFO] = {"s3fifo", false, s3_admit, s3_insert, s3_touch, s3_unlink, s3_victim},
};

const char *cache_policy_name(enum cache_policy p)
{
    return (unsigned)p < CACHE_POLICIES ? policies[p].name : "unknown";
}

bool cache_policy_parse(const char *name, enum cache_policy *out)
{
    for (unsigned i = 0; name && i < CACHE_POLICIES; i++) {
        if (strcmp(name, policies[i].name) == 0) {
            *out = (enum cache_policy)i;
            return true;
        }
    }
    return false;
}

/* ---- stripe operations (lock held) --------------------------------------------------- */

/* Unlink e from everything and chain it on the grave (released after unlock). */
static void entry_remove(struct stripe *s, struct cache_entry *e, struct cache_entry **grave)
{
    index_del(s, e);
    s->ops->unlink(s, e);
    if (e->heap_at[H_DEAD] != NONE)
        heap_remove(&s->dead, e);
    s->bytes -= entry_cost(e);
    s->entries--;
    e->chain = *grave;
    *grave = e;
}

/* Dead entries first (expirations), then the policy's victims (evictions). */
static void make_room(struct stripe *s, uint64_t need, uint64_t now_ms, struct cache_entry **grave)
{
    while (s->bytes + need > s->budget) {
        struct cache_entry *v = s->dead.n ? s->dead.a[0] : NULL;
        if (!v || !is_dead(v, now_ms))
            v = s->ops->victim(s);
        if (!v)
            break; /* unreachable: need ≤ budget, checked by cache_put */
        count(s, is_dead(v, now_ms) ? C_EXPIRATIONS : C_EVICTIONS);
        entry_remove(s, v, grave);
    }
}

/* Heap room for e before anything changes, so a failure leaves the stripe as it was. */
static int stripe_reserve(struct stripe *s, const struct cache_entry *e)
{
    if (s->ops->heap && heap_reserve(&s->victims))
        return SL_ENOMEM;
    if (has_expiry(&e->meta) && heap_reserve(&s->dead))
        return SL_ENOMEM;
    return SL_OK;
}

static void stripe_link(struct stripe *s, struct cache_entry *e, const struct cache_entry *old)
{
    s->ops->insert(s, e, old);
    index_add(s, e);
    if (has_expiry(&e->meta))
        heap_push(&s->dead, e);
    s->bytes += entry_cost(e);
    s->entries++;
    count(s, C_INSERTS);
}

/* Shrink what entries left behind, publish the sizes for cache_stats, unlock. */
static void stripe_unlock(struct stripe *s)
{
    size_t nb = s->bucket_mask + 1;
    while (nb > BUCKETS_MIN && s->entries < nb / 2)
        nb /= 2;
    if (nb != s->bucket_mask + 1)
        index_resize(s, nb);
    heap_trim(&s->dead);
    if (s->ops->heap)
        heap_trim(&s->victims);
    atomic_store_explicit(&s->pub_bytes, s->bytes, memory_order_relaxed);
    atomic_store_explicit(&s->pub_entries, s->entries, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
}

/* ---- the cache ----------------------------------------------------------------------- */

static unsigned stripe_count(const struct cache_opts *o)
{
    if (o->stripes)
        return o->stripes;
    unsigned n = 1;
    while (n < CACHE_STRIPES_DEFAULT && o->budget_bytes / (n * 2) >= CACHE_STRIPE_MIN_BYTES)
        n *= 2;
    return n;
}

int cache_opts_check(const struct cache_opts *o, const char **why)
{
    const char *msg = NULL;
    if ((unsigned)o->policy >= CACHE_POLICIES)
        msg = "policy must be lru, lfu, ttl or s3fifo";
    else if (o->stripes > CACHE_STRIPES_MAX || (o->stripes & (o->stripes - 1)))
        msg = "stripes must be 0 or a power of two up to 256";
    else if (o->budget_bytes > CACHE_BUDGET_MAX)
        msg = "budget_bytes must be at most 512 GiB";
    else if (o->budget_bytes / stripe_count(o) < CACHE_ENTRY_OVERHEAD)
        msg = "budget_bytes must give each stripe room for one entry (256 bytes)";
    else if (o->max_entry_bytes && o->max_entry_bytes < CACHE_ENTRY_OVERHEAD)
        msg = "max_entry_bytes must be 0 or at least 256 (the per-entry overhead)";
    if (why)
        *why = msg;
    return msg ? SL_EINVAL : SL_OK;
}

static int stripe_init(struct stripe *s, const struct cache_opts *o, uint64_t budget)
{
    s->ops = &policies[o->policy];
    s->budget = budget;
    s->half_life_ms = o->lfu_half_life_ms ? o->lfu_half_life_ms : CACHE_LFU_HALF_LIFE_MS;
    s->small_target = budget * S3_SMALL_PERCENT / 100;
    s->bucket_mask = BUCKETS_MIN - 1;
    s->victims = (struct heap){.cap = HEAP_MIN, .id = H_VICTIM};
    s->dead = (struct heap){.cap = HEAP_MIN, .id = H_DEAD};
    s->buckets = calloc(BUCKETS_MIN, sizeof(*s->buckets));
    s->dead.a = malloc(HEAP_MIN * sizeof(*s->dead.a));
    s->victims.a = malloc(HEAP_MIN * sizeof(*s->victims.a));
    if (!s->buckets || !s->dead.a || !s->victims.a)
        return SL_ENOMEM;
    if (o->policy == CACHE_S3FIFO) {
        uint64_t slots = GHOST_SLOTS_MIN;
        while (slots < GHOST_SLOTS_MAX && slots * 2 * GHOST_BUDGET_SLOT <= budget)
            slots *= 2;
        s->ghost = calloc(slots, sizeof(*s->ghost));
        if (!s->ghost)
            return SL_ENOMEM;
        s->ghost_mask = (uint32_t)(slots / GHOST_WAYS - 1);
        s->ghost_window = budget - s->small_target;
    }
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        return SL_ENOMEM;
    return SL_OK;
}

static uint64_t stripe_fixed_bytes(const struct stripe *s)
{
    uint64_t ghost = s->ghost ? (uint64_t)(s->ghost_mask + 1) * GHOST_WAYS * sizeof(*s->ghost) : 0;
    return sizeof(*s) + BUCKETS_MIN * sizeof(void *) + 2 * HEAP_MIN * sizeof(void *) + ghost;
}

static void stripe_release(struct stripe *s)
{
    for (size_t i = 0; s->buckets && i <= s->bucket_mask; i++) {
        for (struct cache_entry *e = s->buckets[i], *next; e; e = next) {
            next = e->chain;
            cache_entry_release(e);
        }
    }
    free(s->buckets);
    free(s->dead.a);
    free(s->victims.a);
    free(s->ghost);
}

struct cache *cache_new(const struct cache_opts *o)
{
    if (cache_opts_check(o, NULL) != SL_OK)
        return NULL;
    unsigned n = stripe_count(o);
    size_t size = sizeof(struct cache) + n * sizeof(struct stripe);
    struct cache *c = aligned_alloc(64, (size + 63) / 64 * 64);
    if (!c)
        return NULL;
    memset(c, 0, size);
    c->seed = o->seed ? o->seed : rng_u64();
    c->nstripes = n;
    c->budget = o->budget_bytes / n * n;
    c->max_entry = o->budget_bytes / n;
    if (o->max_entry_bytes)
        c->max_entry = min_u64(c->max_entry, o->max_entry_bytes);
    c->fixed_bytes = size;
    for (unsigned i = 0; i < n; i++) {
        if (stripe_init(&c->stripes[i], o, o->budget_bytes / n) != SL_OK) {
            stripe_release(&c->stripes[i]);
            while (i--) {
                stripe_release(&c->stripes[i]);
                pthread_mutex_destroy(&c->stripes[i].lock);
            }
            free(c);
            return NULL;
        }
        c->fixed_bytes += stripe_fixed_bytes(&c->stripes[i]) - sizeof(struct stripe);
    }
    return c;
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nstripes; i++) {
        stripe_release(&c->stripes[i]);
        pthread_mutex_destroy(&c->stripes[i].lock);
    }
    free(c);
}

/* A key over CACHE_KEY_MAX is never stored, so it is not hashed: its refusal or miss is
 * counted on the first stripe. */
static struct stripe *stripe_for(struct cache *c, const void *key, size_t key_len, uint64_t *h)
{
    if (key_len > CACHE_KEY_MAX)
        return &c->stripes[0];
    *h = key_hash(c->seed, key, key_len);
    return stripe_of(c, *h);
}

static struct cache_entry *lookup(struct cache *c, const void *key, size_t key_len, uint64_t now_ms,
                                  bool stale_ok)
{
    uint64_t h = 0;
    struct stripe *s = stripe_for(c, key, key_len, &h);
    struct cache_entry *grave = NULL, *e = NULL;
    pthread_mutex_lock(&s->lock);
    if (key_len <= CACHE_KEY_MAX)
        e = index_find(s, h, key, key_len);
    if (e && is_dead(e, now_ms)) {
        count(s, C_EXPIRATIONS);
        entry_remove(s, e, &grave);
        e = NULL;
    }
    if (e && !stale_ok && !cache_entry_is_fresh(e, now_ms))
        e = NULL;
    if (e) {
        count(s, cache_entry_is_fresh(e, now_ms) ? C_HITS : C_STALE_HITS);
        s->ops->touch(s, e, now_ms);
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    } else {
        count(s, C_MISSES);
    }
    stripe_unlock(s);
    bury(grave);
    return e;
}

struct cache_entry *cache_get(struct cache *c, const void *key, size_t key_len, uint64_t now_ms)
{
    return lookup(c, key, key_len, now_ms, false);
}

struct cache_entry *cache_get_stale(struct cache *c, const void *key, size_t key_len,
                                    uint64_t now_ms)
{
    return lookup(c, key, key_len, now_ms, true);
}

bool cache_contains(struct cache *c, const void *key, size_t key_len)
{
    if (key_len > CACHE_KEY_MAX)
        return false;
    uint64_t h = key_hash(c->seed, key, key_len);
    struct stripe *s = stripe_of(c, h);
    pthread_mutex_lock(&s->lock);
    bool found = index_find(s, h, key, key_len) != NULL;
    pthread_mutex_unlock(&s->lock);
    return found;
}

/* A put that stores nothing: count it, and delete the superseded entry if asked. */
static void put_refused(struct stripe *s, uint64_t h, const void *key, size_t key_len,
                        bool drop_old)
{
    struct cache_entry *grave = NULL, *old;
    pthread_mutex_lock(&s->lock);
    count(s, C_REJECTED);
    if (drop_old && (old = index_find(s, h, key, key_len)) != NULL) {
        count(s, C_DELETES);
        entry_remove(s, old, &grave);
    }
    stripe_unlock(s);
    bury(grave);
}

int cache_put(struct cache *c, const void *key, size_t key_len, const void *data, size_t data_len,
              const struct cache_meta *meta, uint64_t now_ms)
{
    uint64_t h = 0;
    struct stripe *s = stripe_for(c, key, key_len, &h);
    if (key_len > CACHE_KEY_MAX || cache_entry_cost(key_len, data_len) > c->max_entry) {
        put_refused(s, h, key, key_len, false);
        return SL_ETOOBIG;
    }
    if (now_ms >= dead_ms(meta)) {
        put_refused(s, h, key, key_len, true);
        return SL_OK;
    }
    struct cache_entry *e = entry_new(h, key, key_len, data, data_len, meta), *grave = NULL;
    if (!e)
        return SL_ENOMEM;
    pthread_mutex_lock(&s->lock);
    if (stripe_reserve(s, e) != SL_OK) {
        pthread_mutex_unlock(&s->lock);
        free(e);
        return SL_ENOMEM;
    }
    struct cache_entry *old = index_find(s, h, key, key_len);
    if (s->ops->admit)
        s->ops->admit(s, e, old, now_ms);
    if (old) {
        count(s, C_REPLACES);
        entry_remove(s, old, &grave);
    }
    make_room(s, entry_cost(e), now_ms, &grave);
    stripe_link(s, e, old);
    stripe_unlock(s);
    bury(grave);
    return SL_OK;
}

int cache_delete(struct cache *c, const void *key, size_t key_len)
{
    if (key_len > CACHE_KEY_MAX)
        return SL_ENOTFOUND;
    uint64_t h = key_hash(c->seed, key, key_len);
    struct stripe *s = stripe_of(c, h);
    struct cache_entry *grave = NULL;
    pthread_mutex_lock(&s->lock);
    struct cache_entry *e = index_find(s, h, key, key_len);
    if (e) {
        count(s, C_DELETES);
        entry_remove(s, e, &grave);
    }
    stripe_unlock(s);
    bury(grave);
    return e ? SL_OK : SL_ENOTFOUND;
}

size_t cache_purge_prefix(struct cache *c, const void *prefix, size_t prefix_len)
{
    size_t removed = 0;
    for (unsigned i = 0; i < c->nstripes; i++) {
        struct stripe *s = &c->stripes[i];
        struct cache_entry *grave = NULL;
        pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b <= s->bucket_mask; b++) {
            for (struct cache_entry *e = s->buckets[b], *next; e; e = next) {
                next = e->chain;
                if (e->key_len < prefix_len || memcmp(e->bytes, prefix, prefix_len) != 0)
                    continue;
                count(s, C_DELETES);
                entry_remove(s, e, &grave);
                removed++;
            }
        }
        stripe_unlock(s);
        bury(grave);
    }
    return removed;
}

void cache_clear(struct cache *c)
{
    cache_purge_prefix(c, "", 0);
}

size_t cache_reap(struct cache *c, uint64_t now_ms)
{
    size_t removed = 0;
    for (unsigned i = 0; i < c->nstripes; i++) {
        struct stripe *s = &c->stripes[i];
        struct cache_entry *grave = NULL;
        pthread_mutex_lock(&s->lock);
        while (s->dead.n && is_dead(s->dead.a[0], now_ms)) {
            count(s, C_EXPIRATIONS);
            entry_remove(s, s->dead.a[0], &grave);
            removed++;
        }
        stripe_unlock(s);
        bury(grave);
    }
    return removed;
}

void cache_stats(const struct cache *c, struct cache_stats *out)
{
    uint64_t n[C_COUNTERS] = {0}, bytes = 0, entries = 0;
    for (unsigned i = 0; i < c->nstripes; i++) {
        const struct stripe *s = &c->stripes[i];
        for (int k = 0; k < C_COUNTERS; k++)
            n[k] += atomic_load_explicit(&s->n[k], memory_order_relaxed);
        bytes += atomic_load_explicit(&s->pub_bytes, memory_order_relaxed);
        entries += atomic_load_explicit(&s->pub_entries, memory_order_relaxed);
    }
    *out = (struct cache_stats){
        .hits = n[C_HITS],
        .stale_hits = n[C_STALE_HITS],
        .misses = n[C_MISSES],
        .inserts = n[C_INSERTS],
        .replaces = n[C_REPLACES],
        .evictions = n[C_EVICTIONS],
        .expirations = n[C_EXPIRATIONS],
        .deletes = n[C_DELETES],
        .rejected = n[C_REJECTED],
        .entries = entries,
        .bytes = bytes,
        .budget_bytes = c->budget,
        .fixed_bytes = c->fixed_bytes,
    };
}

/* ---- invariants (tests) -------------------------------------------------------------- */

static const char *check_heap(const struct heap *h, size_t want)
{
    if (h->n != want || h->n > h->cap)
        return "a heap does not hold the entries it should";
    for (uint32_t i = 0; i < h->n; i++) {
        if (h->a[i]->heap_at[h->id] != i)
            return "a heap position is stale";
        if (i > 0 && heap_less(h, h->a[i], h->a[(i - 1) / 2]))
            return "a heap is out of order";
    }
    return NULL;
}

static const char *check_list(const struct stripe *s, const struct list *l, enum queue q, size_t *n)
{
    uint64_t bytes = 0;
    const struct cache_entry *prev = NULL;
    for (const struct cache_entry *e = l->head; e; prev = e, e = e->next) {
        if (e->prev != prev || e->queue != q || e->freq > S3_FREQ_MAX)
            return "a queue's links or tags are broken";
        if (index_find(s, e->hash, e->bytes, e->key_len) != e)
            return "a queued entry is not in the index";
        bytes += entry_cost(e);
        ++*n;
    }
    if (l->tail != prev || l->bytes != bytes)
        return "a queue's tail or byte count is wrong";
    return NULL;
}

static const char *check_stripe(const struct stripe *s)
{
    size_t n = 0, expiring = 0, queued = 0;
    uint64_t bytes = 0;
    for (size_t b = 0; b <= s->bucket_mask; b++) {
        for (const struct cache_entry *e = s->buckets[b]; e; e = e->chain) {
            if ((e->hash & s->bucket_mask) != b || atomic_load(&e->refs) < 1)
                return "an indexed entry is in the wrong bucket or has no reference";
            n++;
            bytes += entry_cost(e);
            expiring += has_expiry(&e->meta);
        }
    }
    if (n != s->entries || bytes != s->bytes)
        return "the entry or byte count does not match the index";
    if (s->bytes > s->budget)
        return "the stripe is over its budget";
    const char *why = check_heap(&s->dead, expiring);
    if (!why && s->ops->heap)
        why = check_heap(&s->victims, n);
    if (!why && !s->ops->heap) {
        why = check_list(s, &s->small, Q_SMALL, &queued);
        if (!why)
            why = check_list(s, &s->main, Q_MAIN, &queued);
        if (!why && queued != n)
            why = "the queues do not hold every entry";
    }
    return why;
}

bool cache_is_consistent(struct cache *c, const char **why)
{
    const char *msg = NULL;
    uint64_t bytes = 0;
    for (unsigned i = 0; i < c->nstripes && !msg; i++) {
        struct stripe *s = &c->stripes[i];
        pthread_mutex_lock(&s->lock);
        msg = check_stripe(s);
        bytes += s->bytes;
        pthread_mutex_unlock(&s->lock);
    }
    if (!msg && bytes > c->budget)
        msg = "the cache is over its budget";
    if (why)
        *why = msg;
    return msg == NULL;
}
