/*
 * policy_sync — keeps the agent's rate-limit policies in step with Redis (DESIGN §4.2):
 * the hash sluice:policies (name → JSON), the counter sluice:policies:version, and the
 * channel sluice:policies:changed.
 *
 * Pub/sub is at-most-once, so it is only a hint: a subscriber thread (its own blocking
 * hiredis connection, woken by poll(2)) marks the set dirty when a change is announced,
 * and the control thread's tick (policy_sync_tick, every CONTROL_TICK_MS) reads the version
 * when dirty and in any case every POLICY_POLL_MS, then fetches and applies a new set.
 * A set that fails validation is logged once per version with every bad field, and the
 * previous good set stays in force. A local override from the admin API wins over Redis
 * until it is removed.
 */
#ifndef AGENT_POLICY_SYNC_H
#define AGENT_POLICY_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "json.h"
#include "store_redis.h"

#define POLICY_POLL_MS 500
#define POLICIES_KEY "sluice:policies"
#define POLICIES_VERSION_KEY "sluice:policies:version"
#define POLICIES_CHANNEL "sluice:policies:changed"
/* The subscriber also carries the response caches' invalidations (respcache.c). */
#define CACHE_INVALIDATE_CHANNEL "sluice:cache:invalidate"

/* NULL redis_url: no Redis, only local overrides. */
struct policy_sync *policy_sync_new(struct agent *a, const char *redis_url);
void policy_sync_free(struct policy_sync *ps);
/* Control thread, periodically: pick up changes from Redis. */
void policy_sync_tick(struct policy_sync *ps, struct redis_pool *pool, uint64_t now_ms);
/* Admin API: set (docs = {"policies":[...]}) or clear (NULL) the local override.
 * SL_EINVAL with fe filled when invalid. */
int policy_sync_override(struct policy_sync *ps, const json_t *docs, struct field_errors *fe);
bool policy_sync_overridden(const struct policy_sync *ps);
/* The last rejected version and its errors (for /v1/stats), NULL when none. */
json_t *policy_sync_status(const struct policy_sync *ps);

#endif
