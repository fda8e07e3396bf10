/*
 * prng — reproducible pseudo-random numbers from a seed, for runs that must repeat: the
 * load generator's plan (which request kind, which key, which link, for request n) is a
 * pure function of the seed and n. NOT for ids (rng.h: per-thread, seeded from the kernel)
 * and never for secrets (crypto.h).
 *
 * splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number generators",
 * OOPSLA 2014), used counter-based: prng_at(seed, n) is the (n+1)-th output of the
 * splitmix64 sequence started at seed, computed directly in O(1). So any position of a
 * stream can be read alone, in any order, from any thread, with no state to carry: two
 * runs with one seed draw the same numbers for the same positions even when they visit
 * the positions differently (a rate change, a stop, a --print-plan).
 * Reference values: prng_at(0, 0) = 0xe220a8397b1dcdaf, prng_at(0, 1) = 0x6e789e6aa1b965f4.
 */
#ifndef SLUICE_PRNG_H
#define SLUICE_PRNG_H

#include <stdint.h>

/* The (n+1)-th number of the splitmix64 stream seeded with seed. */
uint64_t prng_at(uint64_t seed, uint64_t n);
/* A 64-bit draw as a double uniform in [0, 1): its top 53 bits times 2^-53. */
double prng_unit(uint64_t r);

#endif
