/*
 * tally — what sluice-loadgen measured: counts by status, kind and key, latency
 * histograms (shared/histogram.h, microseconds), late sends, and a per-second timeline.
 * Pure: times are arguments (monotonic ns), no I/O; report.c turns a tally into text and
 * JSON. One writer (the run's loop thread); the admin endpoint reads it on that thread.
 *
 * Two latencies per answered request:
 *  - latency: completion - intended send time (the pacer's schedule). The headline
 *    number: it includes any time the request spent waiting for the client (all
 *    connections busy, the loop late), so a server stall is charged to every request
 *    that should have been sent during it (no coordinated omission);
 *  - service time: completion - actual send. What a closed-loop tool would report;
 *    the gap between the two shows how far behind the client fell.
 * Requests that got no HTTP answer (refused, reset, timed out) count as "transport"
 * errors and are not in the histograms; every status code is counted, so a 404 or a 503
 * is in the latency (an answer is an answer) and in its class.
 *
 * A send is late when it left more than TALLY_LATE_NS after its intended time: the
 * client, not the server, was the bottleneck for it (raise --connections).
 *
 * Timeline: one entry per second since the start, by the second an event happened in
 * (sends when sent, answers when answered); a ring of TALLY_TIMELINE_MAX seconds, the
 * oldest dropped (and counted) beyond it.
 */
#ifndef SLUICE_LOADGEN_TALLY_H
#define SLUICE_LOADGEN_TALLY_H

#include <stdbool.h>
#include <stdint.h>

#include "histogram.h"
#include "scenario.h"

#define TALLY_LATE_NS      (UINT64_C(10) * 1000000) /* 10 ms behind schedule */
#define TALLY_TIMELINE_MAX 3600                     /* seconds kept (one hour) */
#define TALLY_STATUS_MIN   100
#define TALLY_STATUS_MAX   599 /* others count as "other" */
#define TALLY_STATUS_SLOTS (TALLY_STATUS_MAX - TALLY_STATUS_MIN + 1)
#define TALLY_CHANGES_MAX  256 /* rate changes listed (all counted) */

enum tally_class {
    CLASS_2XX,
    CLASS_3XX,
    CLASS_4XX,
    CLASS_429,
    CLASS_5XX,
    CLASS_TRANSPORT,
    CLASS_COUNT
};

/* Why a request got no answer. */
enum tally_transport { TRANSPORT_TIMEOUT, TRANSPORT_CONNECT, TRANSPORT_OTHER, TRANSPORT_COUNT };

struct tally_counts {
    uint64_t sent, done; /* done: answered or failed (not aborted) */
    uint64_t classes[CLASS_COUNT];
    uint64_t status[TALLY_STATUS_SLOTS];
    uint64_t status_other; /* codes outside 100..599 */
};

struct tally_second {
    uint64_t t_s; /* seconds since the start */
    double rate;  /* target rate (requests/s) at the end of the second */
    uint64_t sent, done, late;
    uint64_t classes[CLASS_COUNT];
    uint64_t p50_us, p99_us; /* of the answers in this second */
};

struct tally_change {
    uint64_t at_ms;  /* since the start */
    double rate;     /* requests/s from then on */
    uint64_t first;  /* the first request at that rate */
    char source[16]; /* "admin", "SIGUSR1", ... */
};

struct tally {
    uint64_t start_ns;
    struct tally_counts total, kind[KIND_COUNT], key[SCENARIO_KEYS_MAX];
    struct histogram latency, service, kind_latency[KIND_COUNT];
    uint64_t late, max_lag_ns, aborted;
    uint64_t transport[TRANSPORT_COUNT];
    /* timeline */
    struct tally_second ring[TALLY_TIMELINE_MAX];
    uint64_t seconds; /* closed seconds so far (ring holds the last TALLY_TIMELINE_MAX) */
    struct tally_second cur;
    struct histogram cur_latency;
    /* rate changes */
    struct tally_change changes[TALLY_CHANGES_MAX];
    uint64_t nchanges;
};

/* Zero it and start the clock (the schedule's start). ~0.3 MB: allocate it. */
void tally_init(struct tally *t, uint64_t start_ns, double rate);
/* Close the seconds that ended by now_ns (rate: the target rate to note in them). Call it
 * before each record and on every progress tick. */
void tally_roll(struct tally *t, uint64_t now_ns, double rate);

void tally_sent(struct tally *t, enum req_kind kind, unsigned key, uint64_t intended_ns,
                uint64_t sent_ns);
/* An HTTP answer with this status. */
void tally_answer(struct tally *t, enum req_kind kind, unsigned key, int status,
                  uint64_t intended_ns, uint64_t sent_ns, uint64_t done_ns);
/* No answer. */
void tally_failure(struct tally *t, enum req_kind kind, unsigned key, enum tally_transport why);
/* Given up at shutdown (neither answered nor failed). */
void tally_aborted(struct tally *t, uint64_t n);
void tally_rate_change(struct tally *t, uint64_t now_ns, double rate, uint64_t first,
                       const char *source);

enum tally_class tally_class_of(int status);
const char *tally_class_name(enum tally_class c);
const char *tally_transport_name(enum tally_transport why);

/* The i-th closed second still kept (0 = oldest kept); NULL past the end. */
const struct tally_second *tally_second_at(const struct tally *t, uint64_t i);
/* Seconds kept, and seconds dropped from the front of the ring. */
uint64_t tally_seconds_kept(const struct tally *t);
uint64_t tally_seconds_dropped(const struct tally *t);

#endif
