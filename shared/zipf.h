/*
 * zipf — sampling a discrete distribution over 0..n-1 by inverse CDF: Zipf ranks for the
 * load generator's link popularity (a few hot links, a long tail: what makes a cache
 * worth having), and any weighted choice (the request mix, the API keys' shares), which
 * is the same table built from other weights.
 *
 * Zipf with exponent s: P(k) = (k+1)^-s / H(n,s), H(n,s) = sum of j^-s for j = 1..n, so
 * rank 0 is the most popular; s = 0 is uniform, s ~ 1 is the classic web popularity
 * curve, larger s concentrates more on the head.
 *
 * Pure and deterministic: zipf_sample takes the random draw as an argument (a 64-bit
 * number, e.g. prng_at(seed, i)), so a seed fixes every pick. Sampling is a binary search
 * of the cumulative table, O(log n); the table costs 8 bytes per rank, bounded by
 * ZIPF_N_MAX (SL_ERANGE beyond). The table is owned by the struct (zipf_release frees it);
 * a built table is only read, so threads may share it.
 */
#ifndef SLUICE_ZIPF_H
#define SLUICE_ZIPF_H

#include <stddef.h>
#include <stdint.h>

#define ZIPF_N_MAX ((size_t)1 << 22) /* 4 Mi ranks: a 32 MiB table */
#define ZIPF_S_MAX 10.0

struct zipf {
    size_t n;
    double *cdf; /* cdf[k] = P(rank <= k); non-decreasing; cdf[n-1] == 1.0 exactly */
};

/* Zipf over n ranks (1 <= n <= ZIPF_N_MAX) with exponent s (0 <= s <= ZIPF_S_MAX).
 * SL_EINVAL (s out of range or NaN, n == 0), SL_ERANGE (n too large), SL_ENOMEM. */
int zipf_init(struct zipf *z, size_t n, double s);
/* P(k) proportional to w[k]: each weight finite and >= 0, their sum > 0 (a zero weight
 * is never drawn). SL_EINVAL, SL_ERANGE, SL_ENOMEM as above. */
int zipf_init_weights(struct zipf *z, const double *w, size_t n);
void zipf_release(struct zipf *z);

/* The rank drawn by r: the first k with u < cdf[k], u = prng_unit(r) in [0, 1). */
size_t zipf_sample(const struct zipf *z, uint64_t r);
/* P(k) from the table (0 for k >= n). */
double zipf_prob(const struct zipf *z, size_t k);

#endif
