/*
 * ratelimit_local — decisions per second of the local rate-limit store (ratelimit.h): one
 * thread, then two, on 1000 distinct keys, for token bucket and GCRA (and the other
 * algorithms for comparison), plus rl_decide alone on one state. Prints decisions/s and
 * ns/decision per line; asserts nothing about time (DESIGN §7: quote ratios of one run).
 *
 * Build (the lead wires it into bench/ratelimit.sh):
 *   make build/release/libshared.a
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -Ishared bench/ratelimit_local.c \
 *       build/release/libshared.a $(pkg-config --libs libcrypto) -lpthread \
 *       -o build/bin/ratelimit_local
 * Run: build/bin/ratelimit_local [decisions per thread, default 20000000]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ratelimit.h"

#define KEYS     1000
#define SEQ      65536 /* a random order of key indices, cycled */
#define KEY_SIZE 24

static char keys[2][KEYS][KEY_SIZE]; /* a key set per thread; [0] also for "shared" */
static size_t key_len[2][KEYS];
static uint16_t seq[SEQ];

struct run {
    struct rl_local *l;
    struct rl_params p;
    int set;
    uint64_t n;
    uint64_t admitted;
    uint64_t cpu_ns;
    int err;
};

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Simulated time: one ms per 1000 decisions, so each key sees about one request per ms. */
static void *run_thread(void *arg)
{
    struct run *r = arg;
    struct rl_decision d;
    uint64_t t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    for (uint64_t i = 0; i < r->n; i++) {
        unsigned k = seq[i & (SEQ - 1)];
        int err = rl_local_decide(r->l, 1, &r->p, keys[r->set][k], key_len[r->set][k],
                                  1000000 + i / 1000, 1, &d);
        if (err) {
            r->err = err;
            break;
        }
        r->admitted += d.allowed;
    }
    r->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
    return NULL;
}

static void report(const char *what, const char *alg, int threads, uint64_t decisions,
                   uint64_t wall_ns, uint64_t cpu_ns, uint64_t admitted)
{
    printf("%-22s %-14s threads=%d decisions/s=%-10.0f ns/decision=%5.1f admitted=%.0f%%\n", what,
           alg, threads, (double)decisions / ((double)wall_ns / 1e9),
           (double)cpu_ns / (double)decisions, 100.0 * (double)admitted / (double)decisions);
}

/* threads 1 or 2; shared: both threads on the same 1000 keys. */
static int bench_store(const struct rl_params *p, int threads, int shared, uint64_t n)
{
    struct rl_local *l = rl_local_new(65536);
    if (!l)
        return -1;
    struct run r[2];
    pthread_t th[2];
    for (int i = 0; i < threads; i++)
        r[i] = (struct run){l, *p, shared ? 0 : i, n, 0, 0, 0};
    run_thread(&(struct run){l, *p, 0, KEYS * 10, 0, 0, 0}); /* warm: every key present */
    if (threads == 2)
        run_thread(&(struct run){l, *p, 1, KEYS * 10, 0, 0, 0});
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < threads; i++)
        if (pthread_create(&th[i], NULL, run_thread, &r[i]) != 0)
            return -1;
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    uint64_t wall = clock_ns(CLOCK_MONOTONIC) - t0, cpu = 0, admitted = 0;
    for (int i = 0; i < threads; i++) {
        if (r[i].err)
            return r[i].err;
        admitted += r[i].admitted;
        cpu += r[i].cpu_ns;
    }
    const char *what = threads == 1 ? "local, 1000 keys"
                       : shared     ? "local, same 1000 keys"
                                    : "local, 1000 keys each";
    report(what, rl_algorithm_name(p->alg), threads, n * (uint64_t)threads, wall, cpu, admitted);
    rl_local_free(l);
    return 0;
}

static void bench_pure(const struct rl_params *p, uint64_t n)
{
    struct rl_state st = {0};
    struct rl_decision d;
    uint64_t admitted = 0, t0 = clock_ns(CLOCK_MONOTONIC), c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    for (uint64_t i = 0; i < n; i++) {
        rl_decide(p, &st, 1000000 + i / 1000, 1, &d);
        admitted += d.allowed;
    }
    report("rl_decide, one state", rl_algorithm_name(p->alg), 1, n, clock_ns(CLOCK_MONOTONIC) - t0,
           clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0, admitted);
    rl_state_release(&st);
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000000;
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < KEYS; k++)
            key_len[s][k] = (size_t)snprintf(keys[s][k], KEY_SIZE, "203.0.%d.%d", 113 + s, k);
    for (int i = 0; i < SEQ; i++) { /* xorshift64: a fixed random order */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        seq[i] = (uint16_t)(x % KEYS);
    }
    /* 1000 per second per key: about as many requests as the limit, so both answers occur */
    const struct rl_params ps[] = {
        {RL_TOKEN_BUCKET, 1000, 1000, 100}, {RL_GCRA, 1000, 1000, 100},
        {RL_FIXED_WINDOW, 1000, 1000, 0},   {RL_SLIDING_WINDOW, 1000, 1000, 0},
        {RL_LEAKY_BUCKET, 1000, 1000, 100}, {RL_SLIDING_LOG, 1000, 1000, 0},
    };
    for (size_t i = 0; i < 2; i++)
        bench_pure(&ps[i], n);
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        if (bench_store(&ps[i], 1, 0, n) ||
            (i < 2 && (bench_store(&ps[i], 2, 0, n) || bench_store(&ps[i], 2, 1, n)))) {
            fprintf(stderr, "ratelimit_local: the store failed\n");
            return 1;
        }
    }
    return 0;
}
