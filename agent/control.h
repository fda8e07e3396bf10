/*
 * control — the agent's control thread: everything periodic or slow that must stay off
 * the workers' request path. It owns one evloop and, on it:
 *   - registration (DESIGN §4.1): every second SET sluice:agent:{id} <json> EX 5 and SADD
 *     sluice:agents id; DEL + SREM on clean shutdown. Redis down → keep trying with
 *     back-off; the data plane does not care.
 *   - span shipping: every SPAN_SHIP_INTERVAL_MS, drain every worker's span buffer and
 *     XADD the batch (spans.h).
 *   - drain progress: DRAINING → DRAINED when no request is in flight or the deadline
 *     passed; fault sets whose TTLs all expired are cleared (and republished) so the
 *     admin API and stats show the revert.
 *   - --exec supervision: start the API server command (/bin/sh -c CMD) in its own process
 *     group, restart it with exponential back-off when it dies, forward SIGTERM on stop.
 *   - --agent-check HOST:PORT: HAProxy agent-check replies ("up 100%", "drain", ...).
 * Redis is used through the synchronous pool (store_redis.h) with short timeouts: this
 * thread may block for a few hundred milliseconds without harming traffic.
 */
#ifndef AGENT_CONTROL_H
#define AGENT_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "agent.h"

#define SPAN_SHIP_INTERVAL_MS 250
#define REGISTRY_INTERVAL_MS 1000
#define REGISTRY_TTL_S 5
#define REGISTRY_KEY_PREFIX "sluice:agent:" /* + "{" id "}": a Redis Cluster hash tag */
#define REGISTRY_SET_KEY "sluice:agents"

/* Starts the thread. SL_EINVAL with a message when --agent-check cannot be bound or
 * --exec cannot be started. */
int control_start(struct agent *a, char err[256]);
/* Stops supervising (SIGTERM to the child, SIGKILL after the drain timeout), ships the
 * last spans, deregisters, joins the thread and frees it. */
void control_stop(struct agent *a);
/* The registration record (also used by GET /v1/config). New reference. */
json_t *control_registration_json(const struct agent *a);
/* The --exec child's pid (0 when none is running) and how many times it was restarted. */
int control_child_pid(const struct agent *a);
unsigned control_child_restarts(const struct agent *a);
/* SIGKILL to the --exec child's process group, as a crash would: the supervision restarts
 * it after its back-off. *pid: the child killed. SL_ENOTFOUND when no child runs (no
 * --exec, or between a death and its restart). Any thread. */
int control_child_kill(const struct agent *a, int *pid);

/* --- pure helpers, declared here for tests ------------------------------------------- */

#define REGISTRY_BACKOFF_MIN_MS 1000 /* Redis failures: 1 s, 2 s, 4 s, 5 s, 5 s, ... */
#define REGISTRY_BACKOFF_MAX_MS 5000
#define EXEC_BACKOFF_MIN_MS 200    /* --exec restarts: 200 ms doubling ... */
#define EXEC_BACKOFF_MAX_MS 10000  /* ... up to 10 s ... */
#define EXEC_STABLE_MS 30000       /* ... back to 200 ms once a child ran this long */
#define AGENT_CHECK_LINE_MAX 32

/* Exponential back-off: min_ms when prev_ms < min_ms (0: the first failure), else
 * prev_ms doubled, capped at max_ms. */
uint64_t control_backoff_next_ms(uint64_t prev_ms, uint64_t min_ms, uint64_t max_ms);
/* Delay before restarting an --exec child that died after running ran_ms, given the delay
 * used before it was (re)started (0 for the first start). */
uint64_t control_exec_restart_delay_ms(uint64_t prev_delay_ms, uint64_t ran_ms);
/* The HAProxy agent-check reply (REFERENCE "Load balancing"): SERVING → "up ready W%\n"
 * (weight clamped to 0–100; "ready" leaves a drain/maint an earlier reply set, and 0%
 * shows as DRAIN in HAProxy, as weight 0 means here); DRAINING and DRAINED → "drain\n";
 * MAINT → "maint\n". Writes a NUL-terminated line; returns its length. */
size_t control_agent_check_line(enum agent_state state, int weight,
                                char out[AGENT_CHECK_LINE_MAX]);

#endif
