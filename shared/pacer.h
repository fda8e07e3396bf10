/*
 * pacer — the send schedule of an open-loop load generator (wrk2's model; Gil Tene,
 * "How NOT to measure latency"): request k has an *intended* send time fixed by the rate
 * alone, whatever happened to the requests before it. A client that waits for answers
 * before sending more (closed loop) sends less exactly when the server is slow, so the
 * slow moments are measured by few requests: coordinated omission. Measuring each
 * latency from the intended time instead charges a stall to every request that should
 * have gone out during it.
 *
 * The rate may change while running (a drill's spike). A change applies from `now`:
 * requests already due keep their intended times (a backlog stays a backlog), and the
 * first request of the new rate is intended at max(now, previous intended + the new
 * interval), so the gap after a change is never shorter than the new rate allows.
 * Within a segment of constant rate, request base+j is intended at
 *     epoch + floor(j * 10^12 / rate_mps) ns        (rate in milli-requests per second)
 * with exact integer arithmetic: 200/s gives exactly 5 ms steps, 3/s gives 0, 333333333,
 * 666666666, 1000000000 ns.
 *
 * Pure: time is an argument (monotonic ns); no I/O, no allocation. Requests are numbered
 * from 0 in the order they are handed out (pacer_take). Nothing is intended at or after
 * end_ns, so a run of D seconds at a constant rate R schedules exactly ceil(R * D)
 * requests.
 */
#ifndef SLUICE_PACER_H
#define SLUICE_PACER_H

#include <stdbool.h>
#include <stdint.h>

#define PACER_RATE_MPS_MAX (UINT64_C(1000000) * 1000) /* one million requests per second */
#define PACER_NO_END       UINT64_MAX
#define PACER_SEGMENTS_MAX 16 /* rates kept for a backlog that spans changes (SL_ETOOBIG) */

/* Requests first.. (up to the next segment's first) at one rate. */
struct pacer_segment {
    uint64_t first;    /* number of its first request */
    uint64_t epoch_ns; /* intended time of that request */
    uint64_t rate_mps; /* milli-requests per second; 0: paused (only the last segment) */
};

struct pacer {
    struct pacer_segment seg[PACER_SEGMENTS_MAX]; /* seg[0] holds request `next` */
    unsigned nseg;                                /* seg[nseg - 1] is the current rate */
    uint64_t next;    /* requests handed out so far (the next one's number) */
    uint64_t end_ns;  /* nothing is intended at or after this; PACER_NO_END: no end */
    uint64_t last_ns; /* intended time of request seg[nseg - 1].first - 1, if any */
};

/* Rate rate_mps (clamped to PACER_RATE_MPS_MAX) from start_ns; request 0 at start_ns. */
void pacer_init(struct pacer *p, uint64_t rate_mps, uint64_t start_ns, uint64_t end_ns);
/* The next request's intended time: false when there is none (paused, or past the end). */
bool pacer_peek(const struct pacer *p, uint64_t *intended_ns);
/* Hand the next request out (after pacer_peek said there is one). */
void pacer_take(struct pacer *p);
/* Requests intended at or before now_ns and not handed out yet: the backlog when it is
 * more than one. */
uint64_t pacer_due(const struct pacer *p, uint64_t now_ns);
/* Change the rate from now_ns on, as described above; *first (may be NULL) gets the
 * number of the first request at the new rate. SL_ETOOBIG, nothing changed, when the
 * backlog already spans PACER_SEGMENTS_MAX rates (try again once it has drained). */
int pacer_set_rate(struct pacer *p, uint64_t rate_mps, uint64_t now_ns, uint64_t *first);
/* Requests handed out. */
uint64_t pacer_taken(const struct pacer *p);
/* The current rate in milli-requests per second. */
uint64_t pacer_rate(const struct pacer *p);

#endif
