/*
 * driver — the shell of sluice-loadgen: one thread, one event loop (shared/evloop.h),
 * libcurl's multi interface on it (shared/evloop_curl.h), a timerfd that wakes the loop at
 * the next intended send time (nanosecond-precise, unlike the loop's millisecond
 * timers), a signalfd, and the optional admin endpoint (admin.h) on the same loop, so
 * nothing here is shared between threads.
 *
 * Phases:
 *  1. setup: create the scenario's links (POST /v1/links, link i with key i mod nkeys),
 *     `connections` at a time; 429 and 503 are retried after Retry-After (1 s when
 *     absent), other 5xx with a doubling back-off (200 ms to 3.2 s), each link at most
 *     DRIVER_SETUP_ATTEMPTS times; no answer at all (refused, timed out) is retried
 *     DRIVER_SETUP_REACH_ATTEMPTS times (~3 s), then the run ends: the target is not
 *     there. Any other answer (401, 403, 422 ...) ends the run with the status and the
 *     start of the body, since every later request would fail the same way.
 *  2. run: the pacer (shared/pacer.h) says when request n is intended; the plan (plan.h)
 *     says what it is. A request goes out as soon as it is due and one of the
 *     `connections` slots is free (an easy handle each, so connections are kept alive and
 *     at most `connections` requests are in flight); with every slot busy, due requests
 *     wait, and their latency still counts from their intended time.
 *  3. stop: at the end of the duration, requests already due are still sent, then the
 *     run waits for those in flight (each bounded by timeout_ms). SIGTERM/SIGINT stop
 *     sending at once and give those in flight DRIVER_STOP_GRACE_MS before aborting them
 *     (counted as aborted); a second signal aborts at once.
 *
 * Rate changes: SIGUSR1 doubles the rate, SIGUSR2 halves it, PUT /v1/rate sets it;
 * each is recorded with its time and the first request it applies to (tally.h).
 */
#ifndef SLUICE_LOADGEN_DRIVER_H
#define SLUICE_LOADGEN_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "plan.h"
#include "report.h"
#include "scenario.h"
#include "tally.h"

#define DRIVER_CONNECTIONS_MAX      4096
#define DRIVER_RATE_MAX             1000000.0 /* requests per second */
#define DRIVER_SETUP_ATTEMPTS       30        /* per link, for 429, 503 and other 5xx */
#define DRIVER_SETUP_REACH_ATTEMPTS 5         /* per link, for no answer */
#define DRIVER_STOP_GRACE_MS        2000
#define DRIVER_CODE_MAX             64    /* characters of a link code the API returns */
#define DRIVER_RESP_KEEP            16384 /* response bytes kept (setup reads the code) */
#define DRIVER_ERR_MAX              512
#define DRIVER_TARGET_MAX           512 /* bytes of the target URL, NUL included */

struct driver_config {
    const char *target;  /* "http://host:port", no trailing slash */
    const char *admin;   /* HOST:PORT of the admin endpoint, or NULL */
    double rate;         /* requests/s, 0 to DRIVER_RATE_MAX */
    uint64_t duration_s; /* 0: until a signal */
    unsigned connections;
    uint64_t timeout_ms;
    bool quiet; /* no progress lines */
};

struct driver;

/* Run the three phases; fills *tally and *run. 0 when the run took place (whatever the
 * answers were), or an error with a message in err: the admin address cannot be bound,
 * or the setup failed. */
int driver_run(const struct driver_config *cfg, const struct scenario *sc, const struct plan *plan,
               struct tally *tally, struct report_run *run, char err[DRIVER_ERR_MAX]);

/* For the admin endpoint (loop thread only). Set the rate (0 pauses): 0, SL_ERANGE
 * (outside 0..DRIVER_RATE_MAX), or SL_ETOOBIG (a backlog spans too many rate changes). */
int driver_set_rate(struct driver *d, double rate, const char *source);
double driver_rate(const struct driver *d);
/* The admin status document (a new reference). */
json_t *driver_status(const struct driver *d);

#endif
