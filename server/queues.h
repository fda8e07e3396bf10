/*
 * queues — the control plane's view of the job queues (GET /v1/queues[/{name}],
 * DESIGN.md §4.3): how long each priority lane is, how much of it is waiting or being
 * worked on, who is working on it, how old the oldest unfinished job is, what is delayed
 * or dead, and how fast jobs come and go.
 *
 * Where it sits: the job queue (producers in the sample API, consumers in sluice-worker)
 * writes the keys below; this module only reads them, with one MULTI/EXEC per queue so
 * that one answer is one consistent snapshot. The HTTP handlers call queue_list, then
 * queue_inspect per name, keep the previous queue_info of each queue and turn two of them
 * into rates with queue_rates_between. docs/queues.md is the full contract.
 *
 * Key layout (the contract the job queue follows; NAME is the queue's name, the braces are
 * literal: a Redis Cluster hash tag, so every key of one queue lives in one slot):
 *   sluice:q:{NAME}:high, :normal, :low  streams, one per priority lane, each with the
 *                                         consumer group "workers" (created at id 0)
 *   sluice:q:{NAME}:delayed               sorted set, score = due time (Unix ms)
 *   sluice:q:{NAME}:dead                  stream of dead letters
 *   sluice:q:{NAME}:job:ID                hash, one job's status (state, attempts, ...), TTL
 *   sluice:q:{NAME}:stats                 hash of counters: enqueued, completed, failed,
 *                                         retried, dead, and each per lane ("enqueued:high")
 *   sluice:queues                         set of the queue names, for discovery
 *
 * Contract:
 *  - A queue with no keys is not an error: every number is 0 and exists is false.
 *  - Redis unreachable (no connection, or it breaks mid-way) → SL_ESTORE; a key that holds
 *    something this layout does not allow (WRONGTYPE, a counter that is not a count) →
 *    SL_EPARSE. Either way err says which (and out is zeroed).
 *  - Ages are measured against a clock: the caller's now_ms, or Redis TIME when it passes
 *    0 (the clock that stamped the stream ids, so no skew between hosts).
 *  - Bounded: at most QUEUE_CONSUMERS_MAX consumers are listed per lane (more are counted
 *    in consumers, not listed); queue_list keeps at most cap names.
 *  - Not thread-safe per struct; the pool is. queue_rates_between is pure.
 */
#ifndef SLUICE_QUEUES_H
#define SLUICE_QUEUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store_redis.h"

#define QUEUES_SET_KEY           "sluice:queues"
#define QUEUE_KEY_PREFIX         "sluice:q:" /* + "{" NAME "}:" + suffix */
#define QUEUE_GROUP              "workers"   /* the one consumer group on every lane stream */
#define QUEUE_NAME_SIZE          64          /* a name is 1..63 bytes of A-Z a-z 0-9 . _ - */
#define QUEUE_KEY_SIZE           (sizeof(QUEUE_KEY_PREFIX) + QUEUE_NAME_SIZE + 16)
#define QUEUE_CONSUMER_NAME_SIZE 64 /* longer consumer names are cut to 63 bytes */
#define QUEUE_CONSUMERS_MAX      32 /* listed per lane; the rest are only counted */
#define QUEUE_ID_SIZE            48 /* "ms-seq" of a stream id, both 64-bit */
#define QUEUE_LAG_UNKNOWN        (-1)

/* Priority lanes, most urgent first: workers read high before normal before low. */
#define QUEUE_LANE_MAP(X) X(HIGH, "high") X(NORMAL, "normal") X(LOW, "low")
enum queue_lane {
#define QUEUE_LANE_ENUM(id, name) QUEUE_LANE_##id,
    QUEUE_LANE_MAP(QUEUE_LANE_ENUM) QUEUE_LANES
#undef QUEUE_LANE_ENUM
};

/* Counters of the stats hash. Every failed attempt is either retried or dead, so
 * failed = retried + dead when the job queue keeps the contract. */
#define QUEUE_COUNTER_MAP(X)                                                                       \
    X(ENQUEUED, "enqueued")                                                                        \
    X(COMPLETED, "completed")                                                                      \
    X(FAILED, "failed")                                                                            \
    X(RETRIED, "retried")                                                                          \
    X(DEAD, "dead")
enum queue_counter {
#define QUEUE_COUNTER_ENUM(id, name) QUEUE_##id,
    QUEUE_COUNTER_MAP(QUEUE_COUNTER_ENUM) QUEUE_COUNTERS
#undef QUEUE_COUNTER_ENUM
};

struct queue_consumer {
    char name[QUEUE_CONSUMER_NAME_SIZE];
    uint64_t pending; /* delivered to it, not acknowledged */
    uint64_t idle_ms; /* since its last read or claim (XINFO CONSUMERS "idle") */
};

struct queue_lane_info {
    uint64_t length;  /* entries in the stream (XLEN), acknowledged ones included */
    bool group;       /* the "workers" group exists */
    uint64_t pending; /* delivered, not acknowledged: the jobs being worked on */
    int64_t lag;      /* entries not delivered yet; QUEUE_LAG_UNKNOWN when Redis
                       * cannot tell (entries deleted after the group's cursor).
                       * Without the group every entry waits: lag = length. */
    char oldest_pending_id[QUEUE_ID_SIZE]; /* "" when nothing is pending */
    uint64_t oldest_pending_age_ms;        /* now − the ms part of that id (its enqueue time) */
    uint64_t consumers;                    /* in the group */
    size_t consumers_listed;               /* ≤ QUEUE_CONSUMERS_MAX, in Redis's (name) order */
    struct queue_consumer consumer[QUEUE_CONSUMERS_MAX];
    uint64_t counters[QUEUE_COUNTERS]; /* the lane's fields of the stats hash */
};

struct queue_info {
    char name[QUEUE_NAME_SIZE];
    bool exists;    /* a lane stream, a delayed job, a dead letter or a counter is there */
    uint64_t at_ms; /* the clock the ages were measured against (Unix ms) */
    struct queue_lane_info lane[QUEUE_LANES];
    /* totals over the lanes */
    uint64_t length;
    int64_t waiting; /* sum of the lags; QUEUE_LAG_UNKNOWN when any lane's is unknown */
    uint64_t active; /* sum of pending */
    uint64_t oldest_pending_age_ms;    /* the largest of the lanes' */
    uint64_t delayed;                  /* ZCARD of the delayed set */
    int64_t next_due_ms;               /* lowest score of the delayed set; valid when delayed */
    uint64_t dead;                     /* XLEN of the dead-letter stream */
    uint64_t counters[QUEUE_COUNTERS]; /* the stats hash's queue-wide fields */
};

struct queue_rates {
    uint64_t window_ms;           /* between the two snapshots */
    double per_s[QUEUE_COUNTERS]; /* counter increase per second */
};

const char *queue_lane_name(enum queue_lane lane);
const char *queue_counter_name(enum queue_counter counter);
/* 1..63 bytes, each of A-Z a-z 0-9 '.' '_' '-' (so the name cannot break the hash tag). */
bool queue_name_is_valid(const char *name);
/* "sluice:q:{NAME}:" suffix into out; false when name is invalid or out is too small. */
bool queue_key(char *out, size_t cap, const char *name, const char *suffix);

/* Snapshot one queue into out (zeroed first). now_ms: Unix ms to measure ages against, or
 * 0 for Redis TIME. 0; SL_EINVAL (bad name), SL_ESTORE (Redis unreachable, or it refused
 * the transaction), SL_EPARSE (a key breaks the layout) or SL_ENOMEM, with a message in err
 * (may be NULL). */
int queue_inspect(struct redis_pool *p, const char *name, uint64_t now_ms, struct queue_info *out,
                  char err[128]);

/* Rates from two snapshots of the same queue taken dt_ms apart (cur after prev). A counter
 * that went down was reset (its hash deleted), so its whole current value is the increase.
 * 0; SL_EINVAL when dt_ms is 0 or the names differ (out is then zeroed). */
int queue_rates_between(const struct queue_info *prev, const struct queue_info *cur, uint64_t dt_ms,
                        struct queue_rates *out);

/* The queue names to show: configured (NULL-terminated, may be NULL) and the members of
 * sluice:queues, deduplicated and sorted bytewise. Members that are not valid names are
 * skipped. 0; SL_EINVAL for an invalid configured name; SL_ETOOBIG when there are more than
 * cap (names holds the cap first ones); SL_ESTORE when Redis cannot be reached (names holds
 * the configured ones); SL_EPARSE when sluice:queues is not a set. *n is always the number
 * written. */
int queue_list(struct redis_pool *p, const char *const *configured, char names[][QUEUE_NAME_SIZE],
               size_t cap, size_t *n);

/* The JSON document of GET /v1/queues/{name} (docs/queues.md); rates NULL → "rates":null.
 * A new reference, NULL when out of memory. */
json_t *queue_info_json(const struct queue_info *info, const struct queue_rates *rates);

#endif
