/*
 * rate — windowed event rates (1 s, 10 s, 60 s) plus the cumulative total, for the
 * agent's per-route counters (requests, errors, 429s, ...) and for the control plane,
 * which feeds it the deltas of counters it polls. Pure: time is an argument (now_ms from
 * one monotonic clock), no I/O, no allocation, no locks; a zero-initialised struct is
 * empty.
 *
 * A ring of RATE_SLOTS per-second slots. Each slot is one 64-bit word holding the second
 * it counts (now_ms / 1000, mod 2^32) and that second's count, so slot and count can never
 * be read apart. rate_add lands in the slot of now's second and recycles a slot that
 * still holds an older second; a reader only counts slots whose second lies in its window,
 * so stale slots (after a gap of any length) read as 0 without being swept.
 *
 * Windows use complete seconds only: rate over w seconds at now_ms = (events in seconds
 * [s - w, s - 1]) / w, where s = now_ms / 1000 is the current, partial second, which is
 * left out. So a rate never counts a second twice, reads the same throughout a second,
 * and lags by up to one second (a 1 s rate is "last second").
 *
 * Edges: time going backwards (now's second older than the newest seen) counts the
 * events in the newest second seen (clamp): nothing is lost or counted in the past. A
 * second's count saturates at 2^32 - 1 (the total does not). Seconds are compared mod
 * 2^32 (136 years). Queries with now earlier than the newest recorded second are not
 * supported: they see only the slots not yet recycled.
 *
 * Concurrency: one writer per instance; counters are C11 atomics accessed with relaxed
 * loads/stores, so a reader on another thread may query a live instance or merge it into
 * a private one; no slot or total is ever torn.
 */
#ifndef SLUICE_RATE_H
#define SLUICE_RATE_H

#include <stdatomic.h>
#include <stdint.h>

#define RATE_SLOTS        64 /* > 60 complete seconds + the current one + slack */
#define RATE_MAX_WINDOW_S 60

struct rate {
    _Atomic uint64_t slots[RATE_SLOTS]; /* (second mod 2^32) << 32 | count */
    _Atomic uint64_t newest_s;          /* newest second written */
    _Atomic uint64_t total;             /* every event ever added */
};

/* Empty the ring (writer only). */
void rate_reset(struct rate *r);
/* Count n events at now_ms. A few ns; never fails. */
void rate_add(struct rate *r, uint64_t now_ms, uint64_t n);
/* Events in the window_s complete seconds before now's second; window_s is clamped to
 * [1, RATE_MAX_WINDOW_S]. */
uint64_t rate_count(const struct rate *r, uint64_t now_ms, unsigned window_s);
/* rate_count / window_s: events per second. */
double rate_per_s(const struct rate *r, uint64_t now_ms, unsigned window_s);
/* Every event ever added (a Prometheus counter). */
uint64_t rate_total(const struct rate *r);
/* dst += src, second by second (dst's writer only; src may be live): afterwards every
 * window of dst reads the sum of both. Where the two hold different seconds in a slot
 * the newer one wins: the older is at least RATE_SLOTS seconds old. */
void rate_merge(struct rate *dst, const struct rate *src);

#endif
