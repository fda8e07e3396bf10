#include "rng.h"

#include <stdbool.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static _Thread_local uint64_t rng_state[4];
static _Thread_local bool rng_seeded;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static void rng_seed(void)
{
    if (getrandom(rng_state, sizeof(rng_state), GRND_NONBLOCK) != (ssize_t)sizeof(rng_state)) {
        /* No entropy yet (early boot): unique, not secret, is all callers need. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rng_state[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15u;
        rng_state[1] = (uint64_t)(uintptr_t)&rng_state;
        rng_state[2] = (uint64_t)ts.tv_sec;
    }
    rng_state[3] |= 1; /* never all zero */
    rng_seeded = true;
}

uint64_t rng_u64(void)
{
    if (!rng_seeded)
        rng_seed();
    uint64_t *s = rng_state;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rng_below(uint64_t bound)
{
    /* Rejection of the top partial range (Lemire-style threshold). */
    uint64_t threshold = -bound % bound;
    for (;;) {
        uint64_t r = rng_u64();
        if (r >= threshold)
            return r % bound;
    }
}

void rng_bytes(void *out, size_t n)
{
    unsigned char *p = out;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = rng_u64();
        memcpy(p + i, &r, n - i < 8 ? n - i : 8);
    }
}
