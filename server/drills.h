/*
 * drills — chaos drills run by the control plane (issue 10, docs/drills.md).
 *
 * A drill file (samples/drills/NAME.json, loaded from --drills DIR):
 *   { "name": "replica-latency", "description": "...",
 *     "service": "shortener",                       the replicas the targets pick from
 *     "hypothesis": { "min_availability": 0.99,     steady state, from the fleet view:
 *                     "max_p99_ms": 300 },          checked before, every second during, after
 *     "abort": { "max_error_ratio": 0.2,            stop and revert when crossed
 *                "slo": "shortener-availability", "max_burn_5m": 50 },
 *     "blast_radius": { "max_replicas": 1 },        never more replicas than this
 *     "settle_s": 5,                                after the last step, before the last check
 *     "steps": [ { "at_s": 0, "duration_s": 30, "target": "random:1",
 *                  "action": "fault", "fault": { "kind": "delay", "ms": 300, "percent": 100 } } ] }
 * target: "replica:ID", "service:NAME" (all of it), "random:N", "percent:P" (of the
 * service's replicas, at least one). action: "fault" (the agent's fault set, with ttl_s =
 * duration_s, so nothing outlives the drill), "drain" (drain, undrain at the end),
 * "crash" (fault kind "reset" at 100% for the duration: the sidecar refuses as a crashed
 * replica would; with --exec supervision the agent can also restart its process),
 * "weight" ("weight": N, back to 100 at the end), "cache_flush" (purge prefix "/"),
 * "loadgen_rate" ("rate": N on the load generator's admin API, "loadgen" URL in the file).
 *
 * A run: checks the hypothesis (a failing steady state refuses to start), applies each step
 * at its time, reverts each at its end, checks every second, aborts (reverting everything)
 * on an abort condition, on POST /v1/drills/{run}/abort or abort-all, and writes a journal:
 * steps with times and targets, every check, the verdict ("passed", "failed": the
 * hypothesis did not hold, "aborted"). Journals go to sluice:drills:journal (a list,
 * newest first) and to SSE viewers ("drill" events).
 */
#ifndef SERVER_DRILLS_H
#define SERVER_DRILLS_H

#include "json.h"

struct server;
struct drills;

/* Loads the .json files of dir (NULL: no drills). NULL with err naming the file and field. */
struct drills *drills_new(struct server *s, const char *dir, char err[256]);
/* Aborts every run (reverting) and frees. */
void drills_free(struct drills *d);

/* GET /v1/drills: {"drills": [definitions], "runs": [latest runs]} */
json_t *drills_list(struct drills *d);
/* Start NAME: 0 with the run id, SL_ENOTFOUND, SL_EEXISTS (one run per drill at a time),
 * SL_EINVAL (the steady state does not hold now: why in err). */
int drills_start(struct drills *d, const char *name, const char *who, char run_id[64],
                 char err[256]);
/* Abort one run or all (run NULL); returns how many were running. */
int drills_abort(struct drills *d, const char *run, const char *why);
/* The journal of a run (running or finished), NULL when unknown. */
json_t *drills_run(struct drills *d, const char *run);

#endif
