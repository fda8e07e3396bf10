/*
 * worker — one data-plane thread of the agent: an evloop, a SO_REUSEPORT listener on the
 * agent's address, the client connections it accepted, an upstream keep-alive pool, its
 * own metrics and span buffer (proxy.c holds the per-connection state machine).
 *
 * The kernel spreads new connections over the workers' listeners; a connection and the
 * upstream connections serving it stay on one worker for life, so the request path takes
 * no lock and wakes no other thread. Other threads only read the worker's atomics
 * (in-flight, metrics) and take its span buffer's mutex.
 */
#ifndef AGENT_WORKER_H
#define AGENT_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "spans.h"
#include "stats.h"

struct worker *worker_new(struct agent *a, unsigned index, char err[256]);
/* Runs the worker's loop on a new thread. */
int worker_start(struct worker *w);
/* Stop accepting (close the listener); open connections finish their requests. Called
 * from another thread: it only flags and wakes the loop. */
void worker_quiesce(struct worker *w);
/* Stop the loop, join the thread, close everything, free. */
void worker_free(struct worker *w);

unsigned worker_in_flight(const struct worker *w);
unsigned worker_connections(const struct worker *w);
struct span_buffer *worker_spans(struct worker *w);
const struct worker_stats *worker_stats(const struct worker *w);
/* The port the listener is bound to (the real one when --listen asked for port 0). */
uint16_t worker_listen_port(const struct worker *w);

#endif
