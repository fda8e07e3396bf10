/*
 * histogram — log-linear (HDR-style) histogram of non-negative integers, the latency
 * record of sluice. Each agent worker records into its own instance on every proxied
 * request (values in microseconds); /v1/stats ships a sparse form that the control plane
 * merges; /metrics maps it onto Prometheus "le" buckets (prom.h). Pure: no I/O, no
 * allocation, no locks; the struct is embeddable and a zero-initialised one (static,
 * calloc, = {0}) is empty.
 *
 * Bucket layout (HISTOGRAM_LAYOUT; it is part of the /v1/stats wire contract):
 *  - values 0..63 each have their own bucket (index = value): exact;
 *  - each power of two [2^e, 2^(e+1)), 6 <= e <= 26, is split into 32 linear sub-buckets
 *    of width 2^(e-5): index = (e-5)*32 + (value >> (e-5));
 *  - values >= HISTOGRAM_OVERFLOW (2^27 µs = 134.2 s) share the last bucket.
 *  So a bucket [lower, upper) has upper - lower <= lower/32 for lower >= 64.
 *
 * Percentiles (nearest rank, exactly defined): rank = max(1, ceil(p/100 * count)) with p
 * taken at 1e-4 resolution (parts per million, rounded); the answer is the largest value
 * of the first bucket where the cumulative count reaches rank, clamped to the recorded
 * maximum. If V is the rank-th smallest value recorded and P the answer:
 *      V <= P,  P - V < V/32 (relative error < 3.125 %),  P == V when V < 64,
 * and P == max for p = 100 (and whenever the rank falls in the maximum's bucket). It
 * never reports a latency lower than the true one. In the overflow bucket the answer is
 * the recorded maximum (V <= P still holds; the relative bound does not).
 *
 * Merging adds counts and sums and takes min/max: the merge of histograms equals the one
 * histogram that recorded all their values, bucket for bucket.
 *
 * Concurrency: one writer per instance (histogram_record, reset, merge into it, ...).
 * Every counter is a C11 atomic accessed with relaxed loads/stores (plain moves on
 * x86-64), so a reader on another thread may call the const functions (or copy/merge
 * from it into a private instance) while it is written: no single counter is ever torn,
 * but a copy may hold a record's bucket and not yet its sum. Counts are always derived
 * from the buckets, so a copy is self-consistent in count and percentiles. Readers
 * wanting several answers from one moment copy first (histogram_copy).
 */
#ifndef SLUICE_HISTOGRAM_H
#define SLUICE_HISTOGRAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HISTOGRAM_LAYOUT   "loglin-32-2^27" /* ship with the sparse form; refuse others */
#define HISTOGRAM_SUB_BITS 5                /* 32 sub-buckets per power of two */
#define HISTOGRAM_TOP_EXP  27
#define HISTOGRAM_OVERFLOW (UINT64_C(1) << HISTOGRAM_TOP_EXP)
/* 736 log-linear buckets + 1 overflow bucket (5.9 KB of counters). */
#define HISTOGRAM_BUCKETS                                                                          \
    ((HISTOGRAM_TOP_EXP - HISTOGRAM_SUB_BITS + 1) * (1 << HISTOGRAM_SUB_BITS) + 1)

struct histogram {
    _Atomic uint64_t counts[HISTOGRAM_BUCKETS];
    _Atomic uint64_t sum;     /* of recorded values (wraps after 2^64: 584k years of µs) */
    _Atomic uint64_t inv_min; /* ~min, so that all-zero means empty */
    _Atomic uint64_t max;
};

/* One non-empty bucket: count values v with lower <= v < upper. The overflow bucket has
 * upper == UINT64_MAX, meaning "no upper bound". */
struct histogram_bucket {
    size_t index;
    uint64_t lower;
    uint64_t upper;
    uint64_t count;
};

/* Bucket geometry; index must be < HISTOGRAM_BUCKETS. */
size_t histogram_index(uint64_t value);
uint64_t histogram_bucket_lower(size_t index);
uint64_t histogram_bucket_upper(size_t index);

/* Empty the histogram (writer only). */
void histogram_reset(struct histogram *h);
/* Record one value, typically a latency in µs. A few ns; never fails. */
void histogram_record(struct histogram *h, uint64_t value);

/* Number of values (the sum of the bucket counts), their sum, min and max; 0 if empty. */
uint64_t histogram_count(const struct histogram *h);
uint64_t histogram_sum(const struct histogram *h);
uint64_t histogram_min(const struct histogram *h);
uint64_t histogram_max(const struct histogram *h);
/* Nearest-rank percentile as defined above; percent is clamped to [0, 100] (NaN → 0).
 * 0 when empty. */
uint64_t histogram_percentile(const struct histogram *h, double percent);

/* dst += src (dst's writer only; src may be live). Exact. */
void histogram_merge(struct histogram *dst, const struct histogram *src);
/* dst = src: a snapshot of a live histogram into a private one. */
void histogram_copy(struct histogram *dst, const struct histogram *src);
/* h -= older, for the window between two snapshots of one cumulative histogram. Bucket
 * counts and sum are exact. The window's min/max cannot be known from two snapshots: min
 * becomes max(h's min, lower bound of the lowest non-empty bucket) and max becomes
 * min(h's max, largest value of the highest non-empty bucket), i.e. exact to a bucket
 * (and exact when older is empty). SL_ERANGE, h unchanged, if older has more in any
 * bucket or a larger sum than h (it is not an earlier snapshot of h). */
int histogram_subtract(struct histogram *h, const struct histogram *older);

/* Sparse form, for JSON: [[index, count], ...] plus count/sum/min/max. */
uint64_t histogram_bucket_count(const struct histogram *h, size_t index);
/* Iterate the non-empty buckets in ascending order:
 *     size_t cur = 0; struct histogram_bucket b;
 *     while (histogram_next_bucket(h, &cur, &b)) ...
 * false when there are no more. */
bool histogram_next_bucket(const struct histogram *h, size_t *cursor, struct histogram_bucket *out);
/* Add count values to bucket index, leaving sum/min/max alone (rebuilding from the sparse
 * form). SL_ERANGE if index >= HISTOGRAM_BUCKETS or the bucket would overflow. */
int histogram_add_bucket(struct histogram *h, size_t index, uint64_t count);
/* Merge the totals shipped with a sparse form: sum += sum; min/max widened to include
 * min and max unless count is 0 (an empty histogram's min/max mean nothing). */
void histogram_merge_totals(struct histogram *h, uint64_t count, uint64_t sum, uint64_t min,
                            uint64_t max);

/* Cumulative counts for Prometheus "le" bounds (same unit as the values, strictly
 * ascending): out[i] = number of values in buckets whose every value is <= le[i], i.e.
 * buckets with upper <= le[i] + 1; out[n] = count (the +Inf bucket). out has n + 1
 * entries. Exact when le[i] + 1 is a bucket boundary (le[i] < 64, or le[i] + 1 = m * 2^s
 * with 32 <= m < 64); otherwise the values of the bucket straddling le[i] — a band
 * (lower, le[i]] narrower than le[i]/32 — are counted from the next bound on: never early,
 * in line with the percentiles. Decimal bounds such as 500 µs or 1000 µs straddle.
 * SL_EINVAL if le is not strictly ascending. */
int histogram_le_counts(const struct histogram *h, const uint64_t *le, size_t n, uint64_t *out);

#endif
