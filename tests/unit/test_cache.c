/* cache: exact victims of each policy on small hand-computed traces (one stripe, a budget
 * of a few entries), LFU aging (exact halving, a formerly hot key losing, the rescale), TTL
 * order with expirations and evictions counted apart, stale windows, dead entries first,
 * S3-FIFO's ghost and scan resistance, replacement, handles that outlive eviction, deletion
 * and the cache, purge by prefix, reap, the byte budget under a seeded random workload
 * (checked after every operation), and two threads on shared keys. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "err.h"

#define DATA 63            /* value bytes of the standard test entry ... */
#define C    UINT64_C(320) /* ... whose cost, with a 1-byte key, is 256 + 1 + 63 */
#define SEED UINT64_C(0x5eed)

static const struct cache_meta forever = {0};

static struct cache *cache_of(enum cache_policy p, uint64_t budget, uint64_t half_life_ms)
{
    struct cache_opts o = {.budget_bytes = budget,
                           .policy = p,
                           .stripes = 1,
                           .lfu_half_life_ms = half_life_ms,
                           .seed = SEED};
    const char *why = NULL;
    assert_int_equal(cache_opts_check(&o, &why), SL_OK);
    struct cache *c = cache_new(&o);
    assert_non_null(c);
    return c;
}

static void check(struct cache *c)
{
    const char *why = NULL;
    struct cache_stats st;
    if (!cache_is_consistent(c, &why))
        fail_msg("inconsistent: %s", why);
    cache_stats(c, &st);
    assert_true(st.bytes <= st.budget_bytes);
    assert_int_equal(st.entries,
                     st.inserts - st.replaces - st.evictions - st.expirations - st.deletes);
}

static void put_meta(struct cache *c, const char *key, size_t data_len, const struct cache_meta *m,
                     uint64_t now)
{
    unsigned char data[2048];
    assert_true(data_len <= sizeof(data));
    memset(data, key[0], data_len);
    assert_int_equal(cache_put(c, key, strlen(key), data, data_len, m, now), SL_OK);
    check(c);
}

static void put(struct cache *c, const char *key, uint64_t now)
{
    put_meta(c, key, DATA, &forever, now);
}

static void put_exp(struct cache *c, const char *key, uint64_t now, uint64_t expires,
                    uint64_t stale_until)
{
    struct cache_meta m = {.stored_ms = now, .expires_ms = expires, .stale_until_ms = stale_until};
    put_meta(c, key, DATA, &m, now);
}

/* A fresh hit, n times. */
static void hit(struct cache *c, const char *key, int n, uint64_t now)
{
    while (n-- > 0) {
        struct cache_entry *e = cache_get(c, key, strlen(key), now);
        assert_non_null(e);
        cache_entry_release(e);
    }
}

/* Exactly the one-letter keys in `want` (of a..z) are stored. */
#define EXPECT_KEYS(c, want)                                                                       \
    do {                                                                                           \
        for (char k_ = 'a'; k_ <= 'z'; k_++) {                                                     \
            char s_[2] = {k_, 0};                                                                  \
            if (cache_contains((c), s_, 1) != (strchr((want), k_) != NULL))                        \
                fail_msg("key %c: expected %s", k_, strchr((want), k_) ? "present" : "absent");    \
        }                                                                                          \
    } while (0)

static struct cache_stats stats(const struct cache *c)
{
    struct cache_stats st;
    cache_stats(c, &st);
    return st;
}

static void test_policy_names(void **state)
{
    (void)state;
    enum cache_policy p;
    for (unsigned i = 0; i < CACHE_POLICIES; i++) {
        assert_true(cache_policy_parse(cache_policy_name((enum cache_policy)i), &p));
        assert_int_equal(p, i);
    }
    assert_string_equal(cache_policy_name(CACHE_S3FIFO), "s3fifo");
    assert_string_equal(cache_policy_name((enum cache_policy)9), "unknown");
    assert_false(cache_policy_parse("arc", &p));
    assert_false(cache_policy_parse(NULL, &p));
}

static void test_opts_check(void **state)
{
    (void)state;
    const char *why;
    struct cache_opts o = {.budget_bytes = 1 << 20};
    assert_int_equal(cache_opts_check(&o, &why), SL_OK);
    assert_null(why);
    o.policy = (enum cache_policy)7;
    assert_int_equal(cache_opts_check(&o, &why), SL_EINVAL);
    assert_non_null(strstr(why, "policy"));
    o.policy = CACHE_LRU;
    o.stripes = 3;
    assert_int_equal(cache_opts_check(&o, &why), SL_EINVAL);
    assert_non_null(strstr(why, "stripes"));
    o.stripes = 512;
    assert_int_equal(cache_opts_check(&o, &why), SL_EINVAL);
    o.stripes = 4;
    o.budget_bytes = 4 * CACHE_ENTRY_OVERHEAD - 1; /* a stripe without room for one entry */
    assert_int_equal(cache_opts_check(&o, &why), SL_EINVAL);
    assert_non_null(strstr(why, "budget_bytes"));
    assert_null(cache_new(&o));
    o.budget_bytes = CACHE_BUDGET_MAX + 1;
    assert_int_equal(cache_opts_check(&o, &why), SL_EINVAL);
    o.budget_bytes = 1 << 20;
    o.max_entry_bytes = 100;
    assert_int_equal(cache_opts_check(&o, &why), SL_EINVAL);
    assert_non_null(strstr(why, "max_entry_bytes"));
}

static void test_default_stripes_and_budget_split(void **state)
{
    (void)state;
    /* 16 stripes of at least 1 MiB: 3 MiB gets 2, 1 GiB gets 16; the budget is what the
     * stripes add up to. */
    struct cache_opts o = {.budget_bytes = 3 << 20, .policy = CACHE_S3FIFO};
    struct cache *c = cache_new(&o);
    assert_non_null(c);
    struct cache_stats st = stats(c);
    assert_int_equal(st.budget_bytes, 3 << 20);
    assert_true(st.fixed_bytes > 0 && st.fixed_bytes < (3 << 20) / 32);
    cache_free(c);
    o.budget_bytes = (UINT64_C(1) << 30) + 5; /* not a multiple of 16: 5 bytes unused */
    o.policy = CACHE_LRU;
    c = cache_new(&o);
    assert_non_null(c);
    assert_int_equal(stats(c).budget_bytes, UINT64_C(1) << 30);
    assert_true(stats(c).fixed_bytes < 64 * 1024);
    cache_free(c);
}

static void test_cost_and_limits(void **state)
{
    (void)state;
    assert_int_equal(cache_entry_cost(1, DATA), C);
    assert_int_equal(cache_entry_cost(0, 0), CACHE_ENTRY_OVERHEAD);
    struct cache *c = cache_of(CACHE_LRU, 4 * C, 0);
    unsigned char big[1100] = {0};
    char key[CACHE_KEY_MAX + 2];
    memset(key, 'k', sizeof(key));
    /* cost 256 + 1 + 1024 = 1281 > 1280: refused, nothing changes */
    put(c, "a", 0);
    assert_int_equal(cache_put(c, "z", 1, big, 1024, &forever, 0), SL_ETOOBIG);
    assert_int_equal(stats(c).rejected, 1);
    EXPECT_KEYS(c, "a");
    /* a key over CACHE_KEY_MAX: refused; exactly CACHE_KEY_MAX: stored */
    assert_int_equal(cache_put(c, key, CACHE_KEY_MAX + 1, big, 0, &forever, 0), SL_ETOOBIG);
    assert_null(cache_get(c, key, CACHE_KEY_MAX + 1, 0));
    assert_int_equal(cache_put(c, key, CACHE_KEY_MAX, big, 0, &forever, 0), SL_OK);
    assert_true(cache_contains(c, key, CACHE_KEY_MAX));
    /* cost exactly the budget: fits, after evicting everything */
    assert_int_equal(cache_put(c, "z", 1, big, 1023, &forever, 0), SL_OK);
    check(c);
    EXPECT_KEYS(c, "z");
    assert_int_equal(stats(c).bytes, 4 * C);
    assert_int_equal(stats(c).evictions, 2);
    cache_free(c);

    struct cache_opts o = {.budget_bytes = 4 * C, .stripes = 1, .max_entry_bytes = 400};
    c = cache_new(&o);
    assert_int_equal(cache_put(c, "a", 1, big, 400 - 257, &forever, 0), SL_OK);
    assert_int_equal(cache_put(c, "b", 1, big, 400 - 256, &forever, 0), SL_ETOOBIG);
    assert_int_equal(stats(c).rejected, 1);
    cache_free(c);
}

static void test_lru_victims(void **state)
{
    (void)state;
    struct cache *c = cache_of(CACHE_LRU, 4 * C, 0);
    put(c, "a", 1);
    put(c, "b", 2);
    put(c, "c", 3);
    put(c, "d", 4);    /* least → most recent: a b c d */
    hit(c, "a", 1, 5); /* b c d a */
    put(c, "e", 6);    /* evicts b: c d a e */
    EXPECT_KEYS(c, "acde");
    hit(c, "c", 1, 7); /* d a e c */
    put(c, "f", 8);    /* evicts d: a e c f */
    EXPECT_KEYS(c, "acef");
    put(c, "a", 9); /* replacing is an access: e c f a, nothing evicted */
    EXPECT_KEYS(c, "acef");
    put(c, "g", 10); /* evicts e: c f a g */
    EXPECT_KEYS(c, "acfg");
    struct cache_stats st = stats(c);
    assert_int_equal(st.evictions, 3);
    assert_int_equal(st.replaces, 1);
    assert_int_equal(st.inserts, 8);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.bytes, 4 * C);
    assert_int_equal(st.hits, 2);
    cache_free(c);
}

static void test_lru_evicts_until_it_fits(void **state)
{
    (void)state;
    struct cache *c = cache_of(CACHE_LRU, 4 * C, 0);
    put(c, "a", 1);
    put(c, "b", 2);
    put(c, "c", 3);
    /* cost 256 + 1 + 543 = 800: 960 + 800 > 1280, evict a (1440), evict b (1120) fits */
    put_meta(c, "x", 543, &forever, 4);
    EXPECT_KEYS(c, "cx");
    assert_int_equal(stats(c).evictions, 2);
    assert_int_equal(stats(c).bytes, C + 800);
    cache_free(c);
}

static void test_lfu_victims(void **state)
{
    (void)state;
    struct cache *c = cache_of(CACHE_LFU, 4 * C, CACHE_LFU_NO_AGING);
    put(c, "a", 0);
    put(c, "b", 0);
    put(c, "c", 0);
    put(c, "d", 0);
    hit(c, "a", 3, 0); /* counts a 4, b 3, c 2, d 1 */
    hit(c, "b", 2, 0);
    hit(c, "c", 1, 0);
    put(c, "e", 0); /* evicts d (1) */
    EXPECT_KEYS(c, "abce");
    put(c, "f", 0); /* evicts e (1): the new key is the least used */
    EXPECT_KEYS(c, "abcf");
    hit(c, "f", 2, 0); /* f 3 */
    put(c, "g", 0);    /* evicts c (2) */
    EXPECT_KEYS(c, "abfg");
    hit(c, "g", 2, 0); /* a 4, b 3, f 3, g 3: a tie at 3 */
    put(c, "h", 0);    /* evicts b, the least recently used of the three */
    EXPECT_KEYS(c, "afgh");
    hit(c, "h", 3, 0); /* h 4 */
    put(c, "f", 0);    /* replacing keeps the count and adds one: f 4 */
    put(c, "i", 0);    /* g 3 goes */
    EXPECT_KEYS(c, "afhi");
    assert_int_equal(stats(c).evictions, 5);
    cache_free(c);
}

static void test_lfu_halves_exactly(void **state)
{
    (void)state;
    /* Half-life 1000 ms. a: 8 accesses at t=0. b: 4 accesses at t=1000, worth 8 of t=0.
     * Equal counts: the tie goes to the least recently used, a. */
    struct cache *c = cache_of(CACHE_LFU, 2 * C, 1000);
    put(c, "a", 0);
    hit(c, "a", 7, 0);
    put(c, "b", 1000);
    hit(c, "b", 3, 1000);
    put(c, "c", 1000);
    EXPECT_KEYS(c, "bc");
    cache_free(c);
    /* b with 3 accesses (6 of t=0) loses to a's 8. */
    c = cache_of(CACHE_LFU, 2 * C, 1000);
    put(c, "a", 0);
    hit(c, "a", 7, 0);
    put(c, "b", 1000);
    hit(c, "b", 2, 1000);
    put(c, "c", 1000);
    EXPECT_KEYS(c, "ac");
    cache_free(c);
    /* Within one half-life nothing decays: 1999 ms is still epoch 1. */
    c = cache_of(CACHE_LFU, 2 * C, 1000);
    put(c, "a", 1000);
    hit(c, "a", 1, 1000);
    put(c, "b", 1999);
    put(c, "c", 1999);
    EXPECT_KEYS(c, "ac");
    cache_free(c);
}

static void test_lfu_aging_hot_key_fades(void **state)
{
    (void)state;
    /* a is hot at t=0 (100 accesses); 10 half-lives later it weighs 100/1024 of an access,
     * less than c's one access now: a goes when room is needed. */
    struct cache *c = cache_of(CACHE_LFU, 2 * C, 1000);
    put(c, "a", 0);
    hit(c, "a", 99, 0);
    put(c, "c", 10000);
    put(c, "d", 10000);
    EXPECT_KEYS(c, "cd");
    cache_free(c);
    /* Without aging the same trace keeps a and evicts c. */
    c = cache_of(CACHE_LFU, 2 * C, CACHE_LFU_NO_AGING);
    put(c, "a", 0);
    hit(c, "a", 99, 0);
    put(c, "c", 10000);
    put(c, "d", 10000);
    EXPECT_KEYS(c, "ad");
    cache_free(c);
}

static void test_lfu_rescale(void **state)
{
    (void)state;
    /* 40 half-lives later (past the 32 that trigger a rescale) a's 1000 accesses round down
     * to 0; the order keeps working after the rescale. */
    struct cache *c = cache_of(CACHE_LFU, 2 * C, 1000);
    put(c, "a", 0);
    hit(c, "a", 999, 0);
    put(c, "b", 40000); /* rescale: a 0, b 1 */
    put(c, "c", 40000); /* evicts a */
    EXPECT_KEYS(c, "bc");
    hit(c, "c", 1, 41000); /* c = 1 + 2 */
    put(c, "d", 41000);    /* evicts b (1) */
    EXPECT_KEYS(c, "cd");
    /* time going backwards decides at the stripe's latest epoch */
    hit(c, "d", 2, 5000); /* d = 2 + 2 + 2 = 6 > c's 3 */
    put(c, "e", 5000);    /* evicts c */
    EXPECT_KEYS(c, "de");
    cache_free(c);
    /* The rescale turns different counts into ties, which the last access decides: a (6,
     * accessed first) sat below b and c (1 each) in the heap; after the shift all three
     * are 0 and a, the least recently used, goes first. */
    c = cache_of(CACHE_LFU, 4 * C, 1000);
    put(c, "a", 0);
    hit(c, "a", 5, 0);
    put(c, "b", 0);
    put(c, "c", 0);
    put(c, "d", 40000); /* rescale; no eviction (check() verifies the heap) */
    put(c, "e", 40000);
    EXPECT_KEYS(c, "bcde");
    cache_free(c);
}

static void test_ttl_victims(void **state)
{
    (void)state;
    struct cache *c = cache_of(CACHE_TTL, 4 * C, 0);
    put_exp(c, "a", 0, 500, 0);
    put_exp(c, "b", 0, 100, 0);
    put(c, "c", 0); /* no expiry: last */
    put_exp(c, "d", 0, 300, 0);
    hit(c, "b", 5, 10);          /* gets change nothing */
    put_exp(c, "e", 50, 400, 0); /* all fresh: b expires soonest — an eviction */
    EXPECT_KEYS(c, "acde");
    struct cache_stats st = stats(c);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.expirations, 0);
    put_exp(c, "f", 350, 1000, 0); /* d died at 300 — an expiration */
    EXPECT_KEYS(c, "acef");
    put_exp(c, "g", 450, 2000, 0); /* e died at 400 */
    EXPECT_KEYS(c, "acfg");
    put_exp(c, "h", 460, 3000, 0); /* a (500) is soonest, still fresh: eviction */
    EXPECT_KEYS(c, "cfgh");
    put(c, "i", 470); /* f (1000) */
    EXPECT_KEYS(c, "cghi");
    put(c, "j", 480); /* g (2000) */
    put(c, "k", 490); /* h (3000) */
    EXPECT_KEYS(c, "cijk");
    put(c, "l", 500); /* none expires: insertion order, c first */
    EXPECT_KEYS(c, "ijkl");
    st = stats(c);
    assert_int_equal(st.evictions, 6);
    assert_int_equal(st.expirations, 2);
    cache_free(c);
}

static void test_stale_window(void **state)
{
    (void)state;
    struct cache *c = cache_of(CACHE_LRU, 4 * C, 0);
    put_exp(c, "a", 0, 100, 200);
    struct cache_entry *e = cache_get(c, "a", 1, 50);
    assert_non_null(e);
    assert_true(cache_entry_is_fresh(e, 50));
    assert_int_equal(cache_entry_meta(e)->expires_ms, 100);
    assert_int_equal(cache_entry_meta(e)->stale_until_ms, 200);
    cache_entry_release(e);
    e = cache_get_stale(c, "a", 1, 99); /* fresh is fresh for get_stale too */
    assert_true(cache_entry_is_fresh(e, 99));
    cache_entry_release(e);
    assert_null(cache_get(c, "a", 1, 100)); /* expired: a miss for get ... */
    e = cache_get_stale(c, "a", 1, 199);    /* ... a stale hit for get_stale */
    assert_non_null(e);
    assert_false(cache_entry_is_fresh(e, 199));
    cache_entry_release(e);
    assert_true(cache_contains(c, "a", 1));
    assert_null(cache_get_stale(c, "a", 1, 200)); /* dead: removed */
    assert_false(cache_contains(c, "a", 1));
    struct cache_stats st = stats(c);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.stale_hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.evictions, 0);
    /* stale_until before expires: no stale window */
    put_exp(c, "b", 0, 100, 50);
    assert_null(cache_get_stale(c, "b", 1, 100));
    /* a stale entry removed for room is an eviction, not an expiration */
    put_exp(c, "s", 0, 100, 1000);
    put(c, "x", 1);
    put(c, "y", 2);
    put(c, "z", 3);
    put(c, "w", 150); /* LRU: s, stale, goes */
    EXPECT_KEYS(c, "wxyz");
    st = stats(c);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.expirations, 2);
    cache_free(c);
}

static void test_dead_entries_go_first(void **state)
{
    (void)state;
    struct cache *c = cache_of(CACHE_LRU, 4 * C, 0);
    put_exp(c, "a", 0, 100, 0);
    put(c, "b", 1);
    put(c, "c", 2);
    put(c, "d", 3);
    hit(c, "a", 1, 10); /* a is the most recent: b c d a */
    put(c, "e", 200);   /* a is dead: it goes, not b */
    EXPECT_KEYS(c, "bcde");
    assert_int_equal(stats(c).expirations, 1);
    assert_int_equal(stats(c).evictions, 0);
    put(c, "f", 200); /* then LRU: b */
    EXPECT_KEYS(c, "cdef");
    assert_int_equal(stats(c).evictions, 1);
    cache_free(c);
}

static void test_s3fifo_victims(void **state)
{
    (void)state;
    /* Budget 4C: the small queue's share is 128 bytes, so it is "full" whenever it holds an
     * entry; the ghost keeps records while ≤ 1152 bytes (3.6 entries) follow them. Queues
     * are written newest first. */
    struct cache *c = cache_of(CACHE_S3FIFO, 4 * C, 0);
    put(c, "a", 0);
    put(c, "b", 0);
    put(c, "c", 0);
    put(c, "d", 0); /* S: d c b a */
    hit(c, "a", 1, 0);
    hit(c, "b", 1, 0);
    put(c, "e", 0); /* a, b hit: to M; c not: to the ghost, evicted. S: e d, M: b a */
    EXPECT_KEYS(c, "abde");
    put(c, "c", 0); /* c in the ghost: straight to M; d evicted (ghost). S: e, M: c b a */
    EXPECT_KEYS(c, "abce");
    hit(c, "e", 1, 0);
    put(c, "f", 0); /* e to M; S empty, so M's tail a (no hit since) goes. S: f, M: e c b */
    EXPECT_KEYS(c, "bcef");
    hit(c, "b", 1, 0);
    hit(c, "f", 1, 0);
    put(c, "g", 0); /* f to M; b hit: once round again; c goes. S: g, M: b f e */
    EXPECT_KEYS(c, "befg");
    put(c, "a", 0); /* a was evicted from M: not in the ghost; g goes. S: a, M: b f e */
    EXPECT_KEYS(c, "abef");
    put(c, "d", 0); /* d in the ghost (640 bytes since): to M; a goes. M: d b f e */
    EXPECT_KEYS(c, "bdef");
    struct cache_stats st = stats(c);
    assert_int_equal(st.evictions, 6);
    assert_int_equal(st.entries, 4);
    cache_free(c);
}

static void test_s3fifo_ghost_window(void **state)
{
    (void)state;
    struct cache *c = cache_of(CACHE_S3FIFO, 4 * C, 0);
    put(c, "a", 0);
    put(c, "b", 0);
    put(c, "c", 0);
    put(c, "d", 0);
    put(c, "e", 0); /* a → ghost at 0 (ghost clock 320) */
    put(c, "f", 0); /* b at 320 (640) */
    put(c, "g", 0); /* c at 640 (960) */
    put(c, "h", 0); /* d at 960 (1280) */
    EXPECT_KEYS(c, "efgh");
    put(c, "a", 0); /* 1280 − 0 > 1152: forgotten, a enters S; e → ghost (1600) */
    EXPECT_KEYS(c, "afgh");
    put(c, "c", 0); /* 1600 − 640 ≤ 1152: remembered, c enters M; f goes. S: a h g, M: c */
    EXPECT_KEYS(c, "acgh");
    put(c, "x", 0); /* S's tail each time: g, h, a — c stays in M */
    put(c, "y", 0);
    put(c, "z", 0);
    EXPECT_KEYS(c, "cxyz");
    put(c, "w", 0);
    EXPECT_KEYS(c, "cwyz");
    cache_free(c);
}

static void test_s3fifo_replace_is_a_hit(void **state)
{
    (void)state;
    struct cache *c = cache_of(CACHE_S3FIFO, 4 * C, 0);
    put(c, "a", 0);
    put(c, "b", 0);
    put(c, "c", 0);
    put(c, "d", 0);
    put(c, "a", 0); /* each replacement: one hit, back to S's head. S: a d c b */
    put(c, "b", 0);
    put(c, "c", 0);
    put(c, "d", 0); /* S: d c b a, every one hit once */
    put(c, "e", 0); /* all four to M; S empty, so M's tail a goes. S: e, M: d c b */
    EXPECT_KEYS(c, "bcde");
    put(c, "f", 0); /* S holds its share: e (no hit) goes, M untouched */
    EXPECT_KEYS(c, "bcdf");
    assert_int_equal(stats(c).replaces, 4);
    cache_free(c);
}

/* Main is a CLOCK with a 2-bit counter: b, hit three times in main, survives three passes
 * of the hand and goes on the fourth. */
static void test_s3fifo_main_clock(void **state)
{
    (void)state;
    static const struct {
        const char *put, *want;
    } steps[] = {
        {"f", "bcdf"}, /* e to M; b 3→2, c 1→0, d 1→0 go round; e (0) goes */
        {"g", "bdfg"}, /* f to M; b 2→1; c goes */
        {"h", "bfgh"}, /* g to M; d goes */
        {"i", "bghi"}, /* h to M; f goes */
        {"j", "bhij"}, /* i to M; b 1→0; g goes */
        {"k", "bijk"}, /* j to M; h goes */
        {"l", "bjkl"}, /* k to M; i goes */
        {"m", "jklm"}, /* l to M; b (0) goes */
    };
    struct cache *c = cache_of(CACHE_S3FIFO, 4 * C, 0);
    const char *first[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++)
        put(c, first[i], 0);
    for (int i = 0; i < 4; i++)
        hit(c, first[i], 1, 0);
    put(c, "e", 0); /* a b c d to M (counters cleared); S empty: a goes. S: e, M: d c b */
    EXPECT_KEYS(c, "bcde");
    hit(c, "b", 3, 0);
    hit(c, "c", 1, 0);
    hit(c, "d", 1, 0);
    const char *prev = "e";
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        hit(c, prev, 1, 0); /* the key on probation is hit: promoted at the next put */
        put(c, steps[i].put, 0);
        EXPECT_KEYS(c, steps[i].want);
        prev = steps[i].put;
    }
    cache_free(c);
}

/* Hot keys h0..h4 seen three times, then a scan of 30 one-off keys through a 10-entry
 * cache: S3-FIFO and LFU keep the hot set, LRU and TTL (FIFO without expiry) lose it. */
static void test_scan_resistance(void **state)
{
    (void)state;
    static const bool keeps[CACHE_POLICIES] = {[CACHE_LFU] = true, [CACHE_S3FIFO] = true};
    for (unsigned p = 0; p < CACHE_POLICIES; p++) {
        struct cache *c = cache_of((enum cache_policy)p, 10 * (C + 1), CACHE_LFU_NO_AGING);
        char key[16];
        for (int i = 0; i < 5; i++) {
            snprintf(key, sizeof(key), "h%d", i);
            put(c, key, 0);
            hit(c, key, 2, 0);
        }
        for (int i = 0; i < 30; i++) {
            snprintf(key, sizeof(key), "s%d", i);
            assert_null(cache_get(c, key, strlen(key), 0));
            put(c, key, 0);
        }
        for (int i = 0; i < 5; i++) {
            snprintf(key, sizeof(key), "h%d", i);
            if (cache_contains(c, key, strlen(key)) != keeps[p])
                fail_msg("%s: hot key %s %s", cache_policy_name((enum cache_policy)p), key,
                         keeps[p] ? "lost" : "kept");
        }
        cache_free(c);
    }
}

static void test_replace_and_handles(void **state)
{
    (void)state;
    struct cache *c = cache_of(CACHE_S3FIFO, 4 * C, 0);
    struct cache_meta m = {.flags = 7};
    assert_int_equal(cache_put(c, "a", 1, "one", 3, &m, 0), SL_OK);
    assert_int_equal(stats(c).bytes, cache_entry_cost(1, 3));
    struct cache_entry *old = cache_get(c, "a", 1, 0);
    m.flags = 8;
    assert_int_equal(cache_put(c, "a", 1, "four", 4, &m, 0), SL_OK);
    check(c);
    assert_int_equal(stats(c).bytes, cache_entry_cost(1, 4));
    assert_int_equal(stats(c).replaces, 1);
    struct cache_entry *cur = cache_get(c, "a", 1, 0);
    assert_memory_equal(cache_entry_data(old), "one", 3); /* the old handle is untouched */
    assert_int_equal(cache_entry_len(old), 3);
    assert_int_equal(cache_entry_meta(old)->flags, 7);
    assert_memory_equal(cache_entry_data(cur), "four", 4);
    assert_memory_equal(cache_entry_key(cur), "a", 1);
    assert_int_equal(cache_entry_key_len(cur), 1);
    assert_int_equal(cache_entry_meta(cur)->flags, 8);
    cache_entry_release(old);
    cache_entry_release(cur);
    cache_entry_release(NULL);
    /* empty key and empty value are fine */
    assert_int_equal(cache_put(c, "", 0, NULL, 0, &forever, 0), SL_OK);
    cur = cache_get(c, "", 0, 0);
    assert_non_null(cur);
    assert_int_equal(cache_entry_len(cur), 0);
    cache_entry_release(cur);
    cache_free(c);
}

/* A handle keeps its bytes through delete, eviction and cache_free (ASan checks the reads). */
static void test_handle_outlives_removal(void **state)
{
    (void)state;
    struct cache *c = cache_of(CACHE_LRU, 4 * C, 0);
    put(c, "a", 0);
    put(c, "b", 0);
    struct cache_entry *a = cache_get(c, "a", 1, 0), *a2 = cache_get(c, "a", 1, 0);
    struct cache_entry *b = cache_get(c, "b", 1, 0);
    assert_int_equal(cache_delete(c, "a", 1), SL_OK);
    assert_int_equal(cache_delete(c, "a", 1), SL_ENOTFOUND);
    assert_false(cache_contains(c, "a", 1));
    cache_entry_release(a2);
    const unsigned char *d = cache_entry_data(a);
    for (int i = 0; i < DATA; i++)
        assert_int_equal(d[i], 'a');
    cache_entry_release(a);
    put(c, "c", 1);
    put(c, "d", 2);
    put(c, "e", 3);
    put(c, "f", 4); /* b is the least recent: evicted while held */
    EXPECT_KEYS(c, "cdef");
    d = cache_entry_data(b);
    for (int i = 0; i < DATA; i++)
        assert_int_equal(d[i], 'b');
    cache_entry_release(b);
    struct cache_entry *f = cache_get(c, "f", 1, 5);
    cache_free(c);
    d = cache_entry_data(f);
    for (int i = 0; i < DATA; i++)
        assert_int_equal(d[i], 'f');
    cache_entry_release(f);
}

static void test_purge_prefix(void **state)
{
    (void)state;
    static const char *keys[] = {"/v1/links/1", "/v1/links/22", "/v1/link",
                                 "/v1/other",   "/v2/links/1",  "/v1/links/"};
    struct cache_opts o = {.budget_bytes = 64 * 1024, .stripes = 4, .seed = SEED};
    struct cache *c = cache_new(&o);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        put(c, keys[i], 0);
    assert_int_equal(cache_purge_prefix(c, "/v1/links/", 10), 3);
    check(c);
    assert_false(cache_contains(c, "/v1/links/1", 11));
    assert_false(cache_contains(c, "/v1/links/", 10));
    assert_true(cache_contains(c, "/v1/link", 8));
    assert_true(cache_contains(c, "/v2/links/1", 11));
    assert_int_equal(cache_purge_prefix(c, "/v1/links/", 10), 0);
    assert_int_equal(cache_purge_prefix(c, "/v1/", 4), 2);
    assert_int_equal(stats(c).deletes, 5);
    assert_int_equal(stats(c).entries, 1);
    cache_clear(c);
    check(c);
    assert_int_equal(stats(c).entries, 0);
    assert_int_equal(stats(c).bytes, 0);
    assert_int_equal(stats(c).deletes, 6);
    cache_free(c);
}

static void test_reap_and_dead_on_arrival(void **state)
{
    (void)state;
    struct cache *c = cache_of(CACHE_S3FIFO, 8 * C, 0);
    put_exp(c, "a", 0, 100, 0);
    put_exp(c, "b", 0, 200, 300);
    put_exp(c, "c", 0, 250, 0);
    put(c, "d", 0);
    assert_int_equal(cache_reap(c, 99), 0);
    assert_int_equal(cache_reap(c, 260), 2); /* a, c; b is stale until 300 */
    check(c);
    EXPECT_KEYS(c, "bd");
    assert_int_equal(cache_reap(c, 300), 1);
    EXPECT_KEYS(c, "d");
    assert_int_equal(stats(c).expirations, 3);
    /* A put already dead stores nothing, deletes what it supersedes, returns SL_OK. */
    struct cache_meta dead = {.expires_ms = 400, .stale_until_ms = 450};
    assert_int_equal(cache_put(c, "d", 1, "x", 1, &dead, 450), SL_OK);
    assert_int_equal(cache_put(c, "e", 1, "x", 1, &dead, 500), SL_OK);
    check(c);
    EXPECT_KEYS(c, "");
    struct cache_stats st = stats(c);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(st.deletes, 1);
    assert_int_equal(st.inserts, 4);
    cache_free(c);
}

/* ---- randomized: the budget and every invariant after each operation ------------------ */

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Values are filled with one byte, kept in meta.flags: a handle can check its bytes. */
static void check_handle(const struct cache_entry *e)
{
    const unsigned char *d = cache_entry_data(e);
    for (size_t i = 0; i < cache_entry_len(e); i++)
        if (d[i] != (unsigned char)cache_entry_meta(e)->flags)
            fail_msg("handle bytes changed");
}

static void random_op(struct cache *c, uint64_t *rs, uint64_t now, struct cache_entry **held)
{
    static unsigned char data[8192];
    char key[16];
    uint64_t r = xorshift(rs), op = r % 100;
    int klen = snprintf(key, sizeof(key), "k%u", (unsigned)(r >> 8) % 64);
    if (op < 45) {
        size_t len = (r >> 16) % 100 == 0 ? 6000 : (r >> 24) % 600;
        struct cache_meta m = {.flags = (uint32_t)(r >> 40) & 0xff};
        if ((r >> 32) % 3 == 1)
            m.expires_ms = now + (r >> 48) % 200;
        if ((r >> 32) % 3 == 2)
            m.stale_until_ms = (m.expires_ms = now + (r >> 48) % 100) + (r >> 56);
        memset(data, (int)m.flags, len);
        int err = cache_put(c, key, (size_t)klen, data, len, &m, now);
        assert_true(err == SL_OK || (err == SL_ETOOBIG && len == 6000));
    } else if (op < 80) {
        struct cache_entry *e = op < 60 ? cache_get(c, key, (size_t)klen, now)
                                        : cache_get_stale(c, key, (size_t)klen, now);
        if (e) {
            check_handle(e);
            unsigned slot = (unsigned)(r >> 36) % 8;
            if (held[slot]) {
                check_handle(held[slot]);
                cache_entry_release(held[slot]);
            }
            held[slot] = e;
        }
    } else if (op < 95) {
        int err = cache_delete(c, key, (size_t)klen);
        assert_true(err == SL_OK || err == SL_ENOTFOUND);
    } else if (op < 97) {
        cache_purge_prefix(c, "k1", 2);
    } else {
        cache_reap(c, now);
    }
}

static void test_random_budget_invariant(void **state)
{
    (void)state;
    for (unsigned p = 0; p < CACHE_POLICIES; p++) {
        for (unsigned stripes = 1; stripes <= 4; stripes *= 4) {
            struct cache_opts o = {.budget_bytes = stripes * 6000 + 3,
                                   .policy = p,
                                   .stripes = stripes,
                                   .lfu_half_life_ms = 500,
                                   .seed = SEED};
            struct cache *c = cache_new(&o);
            assert_non_null(c);
            struct cache_entry *held[8] = {0};
            uint64_t rs = 0x9E3779B97F4A7C15u + p * 7 + stripes, now = 1000;
            for (int i = 0; i < 20000; i++) {
                now += xorshift(&rs) % 4;
                random_op(c, &rs, now, held);
                check(c);
            }
            /* every kind of event happened (TTL evicts the soonest-expiring first, so few
             * of its entries live long enough to expire) */
            struct cache_stats st = stats(c);
            assert_true(st.evictions > 100 && st.expirations > 10 && st.hits > 100);
            assert_true(st.stale_hits > 0 && st.rejected > 0 && st.replaces > 0);
            for (int i = 0; i < 8; i++) {
                if (held[i])
                    check_handle(held[i]);
                cache_entry_release(held[i]);
            }
            cache_free(c);
        }
    }
}

/* ---- two threads ----------------------------------------------------------------------- */

struct worker {
    struct cache *c;
    uint64_t seed;
    uint64_t gets, bad, errors;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    unsigned char data[700];
    char key[16];
    for (int i = 0; i < 50000; i++) {
        uint64_t r = xorshift(&w->seed);
        int klen = snprintf(key, sizeof(key), "key%u", (unsigned)(r >> 8) % 200);
        if (r % 3 == 0) {
            struct cache_meta m = {.flags = (uint32_t)(r >> 20) & 0xff,
                                   .expires_ms = (r >> 30) % 2 ? (uint64_t)i + 50 : 0};
            size_t len = (r >> 40) % sizeof(data);
            memset(data, (int)m.flags, len);
            w->errors += cache_put(w->c, key, (size_t)klen, data, len, &m, (uint64_t)i) != SL_OK;
        } else if (r % 17 == 1) {
            cache_delete(w->c, key, (size_t)klen);
        } else {
            struct cache_entry *e = cache_get(w->c, key, (size_t)klen, (uint64_t)i);
            w->gets++;
            if (!e)
                continue;
            const unsigned char *d = cache_entry_data(e);
            for (size_t j = 0; j < cache_entry_len(e); j++)
                w->bad += d[j] != (unsigned char)cache_entry_meta(e)->flags;
            cache_entry_release(e);
        }
    }
    return NULL;
}

static void test_two_threads(void **state)
{
    (void)state;
    for (unsigned p = 0; p < CACHE_POLICIES; p++) {
        struct cache_opts o = {.budget_bytes = 64 * 1024, .policy = p, .stripes = 4};
        struct cache *c = cache_new(&o);
        struct worker w[2] = {{.c = c, .seed = 11}, {.c = c, .seed = 23}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_join(th[i], NULL), 0);
        check(c);
        struct cache_stats st = stats(c);
        assert_int_equal(w[0].bad + w[1].bad, 0);
        assert_int_equal(w[0].errors + w[1].errors, 0);
        assert_int_equal(st.hits + st.misses, w[0].gets + w[1].gets);
        assert_true(st.hits > 1000 && st.evictions > 1000);
        cache_free(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_names),
        cmocka_unit_test(test_opts_check),
        cmocka_unit_test(test_default_stripes_and_budget_split),
        cmocka_unit_test(test_cost_and_limits),
        cmocka_unit_test(test_lru_victims),
        cmocka_unit_test(test_lru_evicts_until_it_fits),
        cmocka_unit_test(test_lfu_victims),
        cmocka_unit_test(test_lfu_halves_exactly),
        cmocka_unit_test(test_lfu_aging_hot_key_fades),
        cmocka_unit_test(test_lfu_rescale),
        cmocka_unit_test(test_ttl_victims),
        cmocka_unit_test(test_stale_window),
        cmocka_unit_test(test_dead_entries_go_first),
        cmocka_unit_test(test_s3fifo_victims),
        cmocka_unit_test(test_s3fifo_ghost_window),
        cmocka_unit_test(test_s3fifo_replace_is_a_hit),
        cmocka_unit_test(test_s3fifo_main_clock),
        cmocka_unit_test(test_scan_resistance),
        cmocka_unit_test(test_replace_and_handles),
        cmocka_unit_test(test_handle_outlives_removal),
        cmocka_unit_test(test_purge_prefix),
        cmocka_unit_test(test_reap_and_dead_on_arrival),
        cmocka_unit_test(test_random_budget_invariant),
        cmocka_unit_test(test_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
