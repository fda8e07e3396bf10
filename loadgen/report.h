/*
 * report — sluice-loadgen's output, from a tally: the progress line (stderr, each
 * second), the HDR-style summary at the end (stdout), and the JSON report (--report).
 * Pure formatting: no clocks; the caller passes what the tally does not know.
 *
 * JSON report (all latencies in microseconds, times since the start in ms):
 *   { "tool": "sluice-loadgen", "version",
 *     "config": {target, scenario, seed, rate, duration_s, connections, timeout_ms,
 *                mix, links, zipf_s, bulk_size, keys: [{name, share, mix}]},   (no secrets)
 *     "started_at", "ended_at" (ISO 8601), "elapsed_s", "stopped_by": duration|signal|error,
 *     "setup": {links, created, retries, seconds},
 *     "schedule": {planned, rate, rate_changes: [{at_ms, rate, first, source}],
 *                  rate_changes_total},
 *     "totals": {sent, done, aborted, in_flight, late, max_lag_ms, classes: {2xx, ...},
 *                status: {"200": n, ...}, transport: {timeout, connect, other}},
 *     "latency_us": {count, min, mean, max, percentiles: {"50": ..., "99.99": ...}},
 *     "service_time_us": the same,
 *     "kinds": {create: {sent, done, classes, status, latency_us}, ...},
 *     "keys": {NAME: {sent, done, classes, status}, ...},
 *     "timeline": [{t, rate, sent, done, late, classes, p50_us, p99_us, partial?}],
 *     "timeline_dropped": n }
 */
#ifndef SLUICE_LOADGEN_REPORT_H
#define SLUICE_LOADGEN_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "scenario.h"
#include "tally.h"

#define REPORT_LINE_MAX 320

/* What the run knew that the tally does not. */
struct report_run {
    const char *target;
    const char *scenario; /* path, or "(built-in)" */
    uint64_t seed;
    double rate;         /* as started */
    double rate_now;     /* at the end */
    uint64_t duration_s; /* 0: until a signal */
    unsigned connections;
    uint64_t timeout_ms;
    uint64_t started_wall_ms, ended_wall_ms;
    uint64_t elapsed_ns; /* schedule start to the end */
    const char *stopped_by;
    uint64_t planned; /* requests the schedule handed out */
    unsigned in_flight;
    size_t links_created;
    uint64_t setup_retries;
    uint64_t setup_ms;
};

/* "[  12s] sent 2400  200.0/s (target 200/s)  in flight 1 | p50 1.21ms p99 3.40ms | 2xx 1900
 * 3xx 480 4xx 0 429 0 5xx 0 transport 0 | late 0": the last closed second's rate and
 * percentiles, cumulative counts. */
void report_progress(const struct tally *t, double target_rate, unsigned in_flight,
                     char out[REPORT_LINE_MAX]);
/* The final summary: latency percentiles (50 75 90 99 99.9 99.99 100, service time
 * alongside), then per kind, per key and per status. */
void report_summary(FILE *out, const struct tally *t, const struct scenario *sc,
                    const struct report_run *run);
/* The JSON report (a new reference; NULL when out of memory). */
json_t *report_json(const struct tally *t, const struct scenario *sc, const struct report_run *run);
/* Status of the whole run for the admin endpoint: counts, rate, in flight, last second. */
json_t *report_status_json(const struct tally *t, double target_rate, unsigned in_flight,
                           uint64_t elapsed_ns);
/* Write report_json to path atomically (a temporary file renamed over it). 0, or SL_IO
 * with a message in err. */
int report_write(const char *path, const json_t *report, char err[256]);

#endif
