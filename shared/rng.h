/*
 * rng — fast per-thread pseudo-random numbers for ids and sampling (request ids, trace
 * and span ids, fault percentages, load-balancer choices). NOT for secrets: use
 * crypto_random_bytes for keys and tokens.
 *
 * xoshiro256** per thread, seeded from getrandom(2) on the thread's first call, so the
 * request path makes no syscall for randomness. Never returns a stuck all-zero state.
 */
#ifndef SLUICE_RNG_H
#define SLUICE_RNG_H

#include <stddef.h>
#include <stdint.h>

uint64_t rng_u64(void);
/* Uniform in [0, bound) (bound > 0), without modulo bias. */
uint64_t rng_below(uint64_t bound);
void rng_bytes(void *out, size_t n);

#endif
