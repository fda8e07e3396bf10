#include "histogram.h"

#include <assert.h>
#include <math.h>

#include "err.h"

#define SUB_COUNT    (UINT64_C(1) << HISTOGRAM_SUB_BITS)
#define OVERFLOW_IDX ((size_t)HISTOGRAM_BUCKETS - 1)
#define PPM          UINT64_C(1000000)

/* Relaxed atomics: single writer, readers on other threads see whole counters. */
static inline uint64_t ld(const _Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static inline void st(_Atomic uint64_t *p, uint64_t v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

/* Load + store, not a read-modify-write: there is one writer, and a locked RMW would
 * cost ~20 cycles on the request path. */
static inline void add(_Atomic uint64_t *p, uint64_t v)
{
    st(p, ld(p) + v);
}

static inline size_t index_of(uint64_t v)
{
    if (v >= HISTOGRAM_OVERFLOW)
        return OVERFLOW_IDX;
    /* v | SUB_COUNT makes the exponent at least SUB_BITS, so values below 2*SUB_COUNT get
     * shift 0 and index v: no branch for small values. */
    unsigned e = 63u - (unsigned)__builtin_clzll(v | SUB_COUNT);
    unsigned shift = e - HISTOGRAM_SUB_BITS;
    return ((size_t)shift << HISTOGRAM_SUB_BITS) + (size_t)(v >> shift);
}

size_t histogram_index(uint64_t value)
{
    return index_of(value);
}

uint64_t histogram_bucket_lower(size_t index)
{
    assert(index < HISTOGRAM_BUCKETS);
    if (index == OVERFLOW_IDX)
        return HISTOGRAM_OVERFLOW;
    if (index < 2 * SUB_COUNT)
        return index;
    unsigned shift = (unsigned)(index >> HISTOGRAM_SUB_BITS) - 1;
    uint64_t m = SUB_COUNT + (index & (SUB_COUNT - 1)); /* 32 <= m < 64 */
    return m << shift;
}

uint64_t histogram_bucket_upper(size_t index)
{
    assert(index < HISTOGRAM_BUCKETS);
    if (index == OVERFLOW_IDX)
        return UINT64_MAX;
    if (index + 1 == OVERFLOW_IDX)
        return HISTOGRAM_OVERFLOW;
    return histogram_bucket_lower(index + 1);
}

/* The largest value a bucket holds. */
static uint64_t bucket_last(size_t index)
{
    uint64_t up = histogram_bucket_upper(index);
    return index == OVERFLOW_IDX ? up : up - 1;
}

void histogram_reset(struct histogram *h)
{
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++)
        st(&h->counts[i], 0);
    st(&h->sum, 0);
    st(&h->inv_min, 0);
    st(&h->max, 0);
}

void histogram_record(struct histogram *h, uint64_t value)
{
    add(&h->counts[index_of(value)], 1);
    add(&h->sum, value);
    if (~value > ld(&h->inv_min))
        st(&h->inv_min, ~value);
    if (value > ld(&h->max))
        st(&h->max, value);
}

uint64_t histogram_count(const struct histogram *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++)
        n += ld(&h->counts[i]);
    return n;
}

uint64_t histogram_sum(const struct histogram *h)
{
    return ld(&h->sum);
}

uint64_t histogram_min(const struct histogram *h)
{
    uint64_t inv_min = ld(&h->inv_min);
    return inv_min == 0 && ld(&h->max) == 0 ? 0 : ~inv_min; /* empty → 0 */
}

uint64_t histogram_max(const struct histogram *h)
{
    return ld(&h->max);
}

/* Percent → parts per million, rounded, so that 99.9 is exactly 999000. */
static uint64_t ppm_of(double percent)
{
    if (!(percent > 0.0))
        return 0;
    if (percent >= 100.0)
        return PPM;
    return (uint64_t)llround(percent * 10000.0);
}

/* max(1, ceil(ppm * total / 1e6)) without overflowing 64 bits. */
static uint64_t rank_of(uint64_t total, uint64_t ppm)
{
    uint64_t rank = total / PPM * ppm + (total % PPM * ppm + PPM - 1) / PPM;
    return rank ? rank : 1;
}

uint64_t histogram_percentile(const struct histogram *h, double percent)
{
    uint64_t total = histogram_count(h);
    if (total == 0)
        return 0;
    uint64_t rank = rank_of(total, ppm_of(percent));
    uint64_t max = ld(&h->max);
    uint64_t seen = 0;
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
        seen += ld(&h->counts[i]);
        if (seen >= rank) {
            uint64_t last = bucket_last(i);
            return last < max ? last : max;
        }
    }
    return max; /* only if reset while being read */
}

void histogram_merge(struct histogram *dst, const struct histogram *src)
{
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
        uint64_t c = ld(&src->counts[i]);
        if (c)
            add(&dst->counts[i], c);
    }
    add(&dst->sum, ld(&src->sum));
    uint64_t inv_min = ld(&src->inv_min), max = ld(&src->max);
    if (inv_min > ld(&dst->inv_min))
        st(&dst->inv_min, inv_min);
    if (max > ld(&dst->max))
        st(&dst->max, max);
}

void histogram_copy(struct histogram *dst, const struct histogram *src)
{
    histogram_reset(dst);
    histogram_merge(dst, src);
}

static bool subtract_fits(const struct histogram *h, const struct histogram *older)
{
    if (ld(&older->sum) > ld(&h->sum))
        return false;
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++)
        if (ld(&older->counts[i]) > ld(&h->counts[i]))
            return false;
    return true;
}

int histogram_subtract(struct histogram *h, const struct histogram *older)
{
    if (!subtract_fits(h, older))
        return SL_ERANGE;
    size_t first = HISTOGRAM_BUCKETS, last = 0;
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
        uint64_t c = ld(&h->counts[i]) - ld(&older->counts[i]);
        st(&h->counts[i], c);
        if (c && first == HISTOGRAM_BUCKETS)
            first = i;
        if (c)
            last = i;
    }
    st(&h->sum, ld(&h->sum) - ld(&older->sum));
    if (first == HISTOGRAM_BUCKETS) {
        st(&h->inv_min, 0);
        st(&h->max, 0);
        return SL_OK;
    }
    uint64_t min = histogram_min(h), lo = histogram_bucket_lower(first);
    uint64_t max = ld(&h->max), hi = bucket_last(last);
    st(&h->inv_min, ~(min > lo ? min : lo));
    st(&h->max, max < hi ? max : hi);
    return SL_OK;
}

uint64_t histogram_bucket_count(const struct histogram *h, size_t index)
{
    return index < HISTOGRAM_BUCKETS ? ld(&h->counts[index]) : 0;
}

bool histogram_next_bucket(const struct histogram *h, size_t *cursor, struct histogram_bucket *out)
{
    for (size_t i = *cursor; i < HISTOGRAM_BUCKETS; i++) {
        uint64_t c = ld(&h->counts[i]);
        if (!c)
            continue;
        out->index = i;
        out->lower = histogram_bucket_lower(i);
        out->upper = histogram_bucket_upper(i);
        out->count = c;
        *cursor = i + 1;
        return true;
    }
    *cursor = HISTOGRAM_BUCKETS;
    return false;
}

int histogram_add_bucket(struct histogram *h, size_t index, uint64_t count)
{
    if (index >= HISTOGRAM_BUCKETS)
        return SL_ERANGE;
    uint64_t c = ld(&h->counts[index]);
    if (count > UINT64_MAX - c)
        return SL_ERANGE;
    st(&h->counts[index], c + count);
    return SL_OK;
}

void histogram_merge_totals(struct histogram *h, uint64_t count, uint64_t sum, uint64_t min,
                            uint64_t max)
{
    add(&h->sum, sum);
    if (count == 0)
        return;
    if (~min > ld(&h->inv_min))
        st(&h->inv_min, ~min);
    if (max > ld(&h->max))
        st(&h->max, max);
}

int histogram_le_counts(const struct histogram *h, const uint64_t *le, size_t n, uint64_t *out)
{
    for (size_t j = 1; j < n; j++)
        if (le[j] <= le[j - 1])
            return SL_EINVAL;
    uint64_t seen = 0;
    size_t j = 0;
    for (size_t i = 0; i < HISTOGRAM_BUCKETS; i++) {
        /* Close every bound this bucket passes before adding it. */
        for (; j < n && bucket_last(i) > le[j]; j++)
            out[j] = seen;
        seen += ld(&h->counts[i]);
    }
    for (; j < n; j++)
        out[j] = seen;
    out[n] = seen;
    return SL_OK;
}
