/*
 * admin — sluice-loadgen's control endpoint, so a drill (or a person with curl) can
 * change the load while it runs. It serves on the driver's loop thread (http_mhd's
 * external mode), so its handlers touch the driver directly, without locks. Keep it on
 * loopback: it has no authentication.
 *
 *   GET /healthz     200 "ok"
 *   GET /v1/status   phase (setup, run, stopping), rate, counts by class and status,
 *                    latency percentiles (µs), in flight, late, the last second
 *   PUT /v1/rate     {"rate": N}, N requests/s from 0 (pause) to 1000000: 200 with
 *                    {"rate", "previous"}; 422 for a bad body; 409 when a backlog
 *                    already spans too many rate changes (retry once it drains)
 */
#ifndef SLUICE_LOADGEN_ADMIN_H
#define SLUICE_LOADGEN_ADMIN_H

#include "driver.h"

struct evloop;
struct http_server;

/* Serve on hostport ("127.0.0.1:7900"; port 0 picks one, printed on stderr). 0 with
 * *out set, or SL_EINVAL with a message in err. */
int admin_start(struct driver *d, struct evloop *loop, const char *hostport,
                struct http_server **out, char err[DRIVER_ERR_MAX]);

#endif
