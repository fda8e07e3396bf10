#include "prng.h"

#define SPLITMIX_GAMMA UINT64_C(0x9E3779B97F4A7C15) /* 2^64 / golden ratio, odd */

uint64_t prng_at(uint64_t seed, uint64_t n)
{
    uint64_t z = seed + (n + 1) * SPLITMIX_GAMMA; /* the state after n+1 steps */
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

double prng_unit(uint64_t r)
{
    return (double)(r >> 11) * 0x1.0p-53;
}
