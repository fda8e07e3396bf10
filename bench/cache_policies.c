/*
 * cache_policies — hit ratio of each response-cache policy (cache.h) on the same generated
 * traffic: a Zipf(s) popularity over KEYS keys, interrupted every SCAN_EVERY requests by a
 * sequential sweep of SCAN_LEN one-off keys (a crawler, a batch export), with a fixed seed so
 * every run and every policy sees the same requests. A second trace moves the popularity
 * halfway (the ranks are reshuffled: yesterday's hot keys go cold), which is what LFU's aging
 * is for. Each request is a cache_get; a miss is followed by a cache_put of the key's value
 * (200–1800 bytes, fixed per key), as the proxy would after fetching from upstream. Time is
 * simulated: 1 ms per request. Entries expire after an hour, so nothing expires during the
 * run and "ttl" behaves as FIFO here. LFU runs three times: the default half-life (10 min,
 * 600000 requests here), 60 s, and no aging.
 *
 * Prints, per budget (1% and 5% of the bytes of all keys) and trace, each policy's hit
 * ratio over all requests and over the Zipf requests alone (scans can never hit), its
 * evictions and CPU per request, then S3-FIFO against LRU. Asserts nothing (DESIGN §7).
 *
 * Build (the lead wires it into a bench script):
 *   make build/release/libshared.a
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Ishared bench/cache_policies.c \
 *       build/release/libshared.a -lpthread -lm -o build/bin/cache_policies
 * Run: build/bin/cache_policies [zipf requests, default 2000000] [zipf s, default 0.99]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"

#define KEYS       100000
#define SCAN_EVERY 100000 /* Zipf requests between two scans */
#define SCAN_LEN   10000  /* one-off keys per scan */
#define VALUE_MIN  200
#define VALUE_MAX  1800
#define SEED       1
#define SCAN_FLAG  0x80000000u /* marks a one-off key in the trace */

struct trace {
    uint32_t *req; /* key ids; SCAN_FLAG | n for the n-th one-off key */
    size_t n, zipf;
};

struct variant {
    const char *name;
    enum cache_policy policy;
    uint64_t half_life_ms;
};

static const struct variant variants[] = {
    {"lru", CACHE_LRU, 0},
    {"lfu", CACHE_LFU, 0}, /* default half-life: 10 min = 600000 requests */
    {"lfu-half-60s", CACHE_LFU, 60000},
    {"lfu-no-aging", CACHE_LFU, CACHE_LFU_NO_AGING},
    {"ttl (fifo)", CACHE_TTL, 0},
    {"s3fifo", CACHE_S3FIFO, 0},
};
#define VARIANTS (sizeof(variants) / sizeof(variants[0]))

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *x)
{
    return (double)(splitmix(x) >> 11) / 9007199254740992.0; /* [0, 1) */
}

static size_t value_len(uint32_t id)
{
    uint64_t x = id;
    return VALUE_MIN + splitmix(&x) % (VALUE_MAX - VALUE_MIN + 1);
}

static int key_of(uint32_t id, char *buf, size_t size)
{
    if (id & SCAN_FLAG)
        return snprintf(buf, size, "/v1/export/%u", id & ~SCAN_FLAG);
    return snprintf(buf, size, "/v1/links/%u", id);
}

static void shuffle(uint32_t *rank_to_id, uint64_t *x)
{
    for (uint32_t i = KEYS - 1; i > 0; i--) {
        uint32_t j = (uint32_t)(splitmix(x) % (i + 1)), t = rank_to_id[i];
        rank_to_id[i] = rank_to_id[j];
        rank_to_id[j] = t;
    }
}

/* Zipf by inverse CDF: P(rank r) ∝ 1 / r^s. shift: reshuffle the ranks halfway. */
static int trace_make(struct trace *t, size_t zipf, double s, int shift)
{
    double *cdf = malloc(KEYS * sizeof(*cdf));
    uint32_t *rank_to_id = malloc(KEYS * sizeof(*rank_to_id));
    t->n = zipf + zipf / SCAN_EVERY * SCAN_LEN;
    t->zipf = zipf;
    t->req = malloc(t->n * sizeof(*t->req));
    if (!cdf || !rank_to_id || !t->req)
        return -1;
    double sum = 0;
    for (uint32_t r = 0; r < KEYS; r++)
        cdf[r] = sum += 1.0 / pow(r + 1, s);
    uint64_t x = SEED;
    for (uint32_t i = 0; i < KEYS; i++)
        rank_to_id[i] = i;
    shuffle(rank_to_id, &x);
    uint32_t scanned = 0;
    size_t n = 0;
    for (size_t i = 0; i < zipf; i++) {
        if (shift && i == zipf / 2)
            shuffle(rank_to_id, &x);
        double u = uniform(&x) * sum;
        size_t lo = 0, hi = KEYS - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        t->req[n++] = rank_to_id[lo];
        if ((i + 1) % SCAN_EVERY == 0)
            for (uint32_t k = 0; k < SCAN_LEN; k++)
                t->req[n++] = SCAN_FLAG | scanned++;
    }
    free(cdf);
    free(rank_to_id);
    return 0;
}

struct result {
    uint64_t hits, zipf_hits, evictions;
    double ns_per_req;
};

static int run(const struct trace *t, const struct variant *v, uint64_t budget, struct result *out)
{
    static unsigned char value[VALUE_MAX];
    struct cache_opts o = {.budget_bytes = budget,
                           .policy = v->policy,
                           .lfu_half_life_ms = v->half_life_ms,
                           .seed = SEED};
    struct cache *c = cache_new(&o);
    if (!c)
        return -1;
    memset(out, 0, sizeof(*out));
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (size_t i = 0; i < t->n; i++) {
        char key[32];
        int klen = key_of(t->req[i], key, sizeof(key));
        uint64_t now = 1000000 + i;
        struct cache_entry *e = cache_get(c, key, (size_t)klen, now);
        if (e) {
            out->hits++;
            out->zipf_hits += !(t->req[i] & SCAN_FLAG);
            cache_entry_release(e);
            continue;
        }
        struct cache_meta m = {.stored_ms = now, .expires_ms = now + 3600000};
        if (cache_put(c, key, (size_t)klen, value, value_len(t->req[i]), &m, now) != 0) {
            cache_free(c);
            return -1;
        }
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    struct cache_stats st;
    cache_stats(c, &st);
    out->evictions = st.evictions;
    out->ns_per_req =
        ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)t->n;
    cache_free(c);
    return 0;
}

static int compare(const struct trace *t, const char *what, uint64_t budget, int percent)
{
    struct result r[VARIANTS];
    printf("\n%s, budget %d%% = %llu bytes (about %llu entries)\n", what, percent,
           (unsigned long long)budget,
           (unsigned long long)(budget / cache_entry_cost(16, (VALUE_MIN + VALUE_MAX) / 2)));
    printf("  %-13s %9s %10s %10s %8s\n", "policy", "hit ratio", "zipf only", "evictions",
           "ns/req");
    for (size_t i = 0; i < VARIANTS; i++) {
        if (run(t, &variants[i], budget, &r[i]))
            return -1;
        printf("  %-13s %8.2f%% %9.2f%% %10llu %8.0f\n", variants[i].name,
               100.0 * (double)r[i].hits / (double)t->n,
               100.0 * (double)r[i].zipf_hits / (double)t->zipf, (unsigned long long)r[i].evictions,
               r[i].ns_per_req);
    }
    double lru = (double)r[0].hits, s3 = (double)r[VARIANTS - 1].hits;
    printf("  s3fifo vs lru: %+.2f points, %.3fx the hits, %.1f%% fewer misses\n",
           100.0 * (s3 - lru) / (double)t->n, s3 / lru,
           100.0 * (1 - ((double)t->n - s3) / ((double)t->n - lru)));
    return 0;
}

int main(int argc, char **argv)
{
    size_t zipf = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    double s = argc > 2 ? strtod(argv[2], NULL) : 0.99;
    uint64_t space = 0;
    for (uint32_t id = 0; id < KEYS; id++) {
        char key[32];
        space += cache_entry_cost((size_t)key_of(id, key, sizeof(key)), value_len(id));
    }
    printf("cache_policies: Zipf s=%.2f over %d keys (%llu bytes with overhead), %zu requests "
           "+ a scan of %d one-off keys every %d; values %d-%d bytes; seed %d\n",
           s, KEYS, (unsigned long long)space, zipf, SCAN_LEN, SCAN_EVERY, VALUE_MIN, VALUE_MAX,
           SEED);
    static const char *names[] = {"steady popularity + scans", "popularity moves halfway + scans"};
    for (int shift = 0; shift < 2; shift++) {
        struct trace t;
        if (trace_make(&t, zipf, s, shift)) {
            fprintf(stderr, "cache_policies: out of memory\n");
            return 1;
        }
        for (int percent = 1; percent <= 5; percent += 4) {
            if (compare(&t, names[shift], space * (uint64_t)percent / 100, percent)) {
                fprintf(stderr, "cache_policies: the cache failed\n");
                return 1;
            }
        }
        free(t.req);
    }
    return 0;
}
