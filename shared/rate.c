#include "rate.h"

#include <stddef.h>

#define COUNT_MAX UINT32_MAX

static inline uint64_t ld(const _Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static inline void st(_Atomic uint64_t *p, uint64_t v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

static inline uint32_t slot_sec(uint64_t w)
{
    return (uint32_t)(w >> 32);
}

static inline uint64_t slot_count(uint64_t w)
{
    return w & COUNT_MAX;
}

static inline uint64_t slot_pack(uint64_t sec, uint64_t count)
{
    return (uint64_t)(uint32_t)sec << 32 | (count < COUNT_MAX ? count : COUNT_MAX);
}

static inline unsigned clamp_window(unsigned window_s)
{
    if (window_s < 1)
        return 1;
    return window_s > RATE_MAX_WINDOW_S ? RATE_MAX_WINDOW_S : window_s;
}

void rate_reset(struct rate *r)
{
    for (size_t i = 0; i < RATE_SLOTS; i++)
        st(&r->slots[i], 0);
    st(&r->newest_s, 0);
    st(&r->total, 0);
}

void rate_add(struct rate *r, uint64_t now_ms, uint64_t n)
{
    uint64_t sec = now_ms / 1000, newest = ld(&r->newest_s);
    if (sec > newest)
        st(&r->newest_s, sec);
    else
        sec = newest; /* same second, or time went backwards: clamp */
    _Atomic uint64_t *slot = &r->slots[sec % RATE_SLOTS];
    uint64_t w = ld(slot);
    uint64_t count = slot_sec(w) == (uint32_t)sec ? slot_count(w) : 0;
    st(slot, slot_pack(sec, n > COUNT_MAX - count ? COUNT_MAX : count + n));
    st(&r->total, ld(&r->total) + n);
}

uint64_t rate_count(const struct rate *r, uint64_t now_ms, unsigned window_s)
{
    uint64_t now_s = now_ms / 1000, sum = 0;
    window_s = clamp_window(window_s);
    for (uint64_t k = 1; k <= window_s && k <= now_s; k++) {
        uint64_t sec = now_s - k;
        uint64_t w = ld(&r->slots[sec % RATE_SLOTS]);
        if (slot_sec(w) == (uint32_t)sec)
            sum += slot_count(w);
    }
    return sum;
}

double rate_per_s(const struct rate *r, uint64_t now_ms, unsigned window_s)
{
    window_s = clamp_window(window_s);
    return (double)rate_count(r, now_ms, window_s) / (double)window_s;
}

uint64_t rate_total(const struct rate *r)
{
    return ld(&r->total);
}

void rate_merge(struct rate *dst, const struct rate *src)
{
    for (size_t i = 0; i < RATE_SLOTS; i++) {
        uint64_t s = ld(&src->slots[i]), d = ld(&dst->slots[i]);
        if (slot_count(s) == 0)
            continue;
        if (slot_count(d) == 0 || (int32_t)(slot_sec(s) - slot_sec(d)) > 0)
            st(&dst->slots[i], s); /* dst empty here, or holding an older second */
        else if (slot_sec(s) == slot_sec(d))
            st(&dst->slots[i], slot_pack(slot_sec(d), slot_count(d) + slot_count(s)));
    }
    uint64_t newest = ld(&src->newest_s);
    if (newest > ld(&dst->newest_s))
        st(&dst->newest_s, newest);
    st(&dst->total, ld(&dst->total) + ld(&src->total));
}
