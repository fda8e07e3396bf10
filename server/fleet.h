/*
 * fleet — the control plane's view of the running fleet, kept fresh by its own threads:
 *
 *   poller thread (an evloop + libcurl multi): every --poll-ms the registry
 *     (sluice:agents, sluice:agent:{id}), then every agent's admin GET /v1/stats in
 *     parallel (--agent-timeout-ms each; an agent that fails is shown down, and polled
 *     with back-off: 1, 2, 4 ... 8 ticks); when the sweep is complete the snapshot
 *     (snapshot.c) is merged, rendered once and handed to every SSE viewer (events.c);
 *     the SLO series (slo.c) get the sweep's good/total counts; every 2 s the job queues
 *     (queues.c) are inspected; every 10 s the SLO history is saved to Redis.
 *   spans thread: XREADGROUP (group sluice-server) on sluice:spans into the trace store
 *     (traces.c), acknowledged once stored: a restarted server resumes where it stopped.
 *
 * Readers (the API) take the fleet's lock briefly and get copies or fresh JSON.
 */
#ifndef SERVER_FLEET_H
#define SERVER_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include "json.h"

struct server;
struct fleet;

struct fleet *fleet_new(struct server *s, char err[256]);
int fleet_start(struct fleet *f, char err[256]);
/* Stop the threads (saving the SLO history once more) and free. NULL: no-op. */
void fleet_free(struct fleet *f);

/* The latest snapshot (GET /v1/fleet): a new reference; an empty fleet before the first
 * sweep. */
json_t *fleet_snapshot(struct fleet *f);
/* Send the last sweep to the SSE viewers as a "snapshot" event unless it was sent: after
 * each sweep while anybody watches, and before a new viewer subscribes (it starts with
 * the latest snapshot). */
void fleet_publish_snapshot(struct fleet *f);
/* Which agents run which policy-set version: {"version", "agents", "applied",
 * "by_version": {"N": count}, "pending": [ids]}. */
json_t *fleet_convergence_json(struct fleet *f, uint64_t set_version);
/* The admin address of a live agent (from the registry); false when unknown. */
bool fleet_agent_admin(struct fleet *f, const char *id, char admin[128]);
/* One replica as the snapshot shows it, plus drain progress; NULL when unknown. */
json_t *fleet_replica_json(struct fleet *f, const char *id);

/* SLOs: definitions (from --slos and the API, stored in Redis) and their status. */
json_t *fleet_slos_json(struct fleet *f);
json_t *fleet_slo_json(struct fleet *f, const char *name);
/* Add or replace a definition (validated; errors into fe under the field names). 0, or
 * SL_EINVAL (fe filled), SL_ESTORE. before gets the old definition or NULL. */
struct field_errors;
int fleet_slo_put(struct fleet *f, const char *name, const json_t *def, struct field_errors *fe,
                  json_t **before);

/* Traces. */
json_t *fleet_traces_json(struct fleet *f, const char *route, const char *status,
                          unsigned min_ms, const char *service, unsigned limit);
json_t *fleet_trace_json(struct fleet *f, const char *trace_id);

/* Queues (with rates over the last two inspections). */
json_t *fleet_queues_json(struct fleet *f);
json_t *fleet_queue_json(struct fleet *f, const char *name);

/* For /metrics. */
struct fleet_stats {
    uint64_t sweeps, polls, poll_failures, spans_read, sweep_us_last, sweep_us_max;
    unsigned agents, agents_up;
};
void fleet_stats(struct fleet *f, struct fleet_stats *out);

#endif
