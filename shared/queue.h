/*
 * queue — the job queue: jobs in Redis Streams with one consumer group, three priority
 * lanes, delayed jobs, retries with backoff, dead letters and per-job status records.
 * docs/queues.md is the key layout (the control plane's server/queues.c reads it); this
 * module is the producer and worker side of it.
 *
 * Where it sits: the sample API enqueues (webhook deliveries, bulk link creation) and
 * polls queue_status; sluice-worker loops queue_fetch → handler → queue_complete or
 * queue_fail. Everything goes through a blocking struct redis_pool (store_redis.h), and
 * every step that changes a job is one Lua script, so a job's record, its stream entry,
 * the delayed set and the counters never disagree (docs/queues.md rule 6).
 *
 * Keys (NAME = opts->name; the braces are the Cluster hash tag, so every key of a queue is
 * in one slot; scripts also touch the job:ID and done:ID keys they build from NAME, which
 * share that slot):
 *   sluice:q:{NAME}:high|normal|low  streams, group "workers" created at 0 (MKSTREAM) by
 *                                    the first enqueue or fetch that finds it missing.
 *                                    Entry fields: id (job id), payload, attempts (attempts
 *                                    made before this entry)
 *   sluice:q:{NAME}:delayed          sorted set: member = job id, score = due Unix ms
 *                                    (Redis TIME + delay); the payload waits in the record
 *   sluice:q:{NAME}:dead             stream of dead letters: id, payload, error, attempts,
 *                                    lane; XADD MAXLEN ~ QUEUE_DEAD_MAXLEN
 *   sluice:q:{NAME}:job:ID           hash, the job record (fields below), with a TTL
 *   sluice:q:{NAME}:done:ID          string "1", the processed marker, TTL processed_ttl_s
 *   sluice:q:{NAME}:stats            counters enqueued completed failed retried dead, each
 *                                    also per lane ("failed:low")
 *   sluice:queues                    set of queue names (SADD on every enqueue)
 *
 * Job record fields: state, lane, attempts (started so far), max_attempts, created_ms,
 * updated_ms; entry (its current stream entry id); consumer, started_ms (last fetch);
 * due_ms and payload (only while delayed or failed); error (last failure); result,
 * finished_ms (completed or dead); progress_done, progress_total (queue_progress). All
 * times are Redis TIME in Unix ms. TTL: status_ttl_s after each write, plus the delay
 * while the job waits in the delayed set (so the payload outlives any delay).
 *
 * States and transitions (QUEUE_TRANSITION_MAP is the one table: queue_transition_ok
 * reads it, and the scripts get it compiled in, so both refuse the same moves):
 *
 *   from \ to   waiting  delayed  active  completed  failed  dead
 *   (none)      E        E
 *   waiting                       F
 *   delayed     P
 *   active                        R       C          X       X,R
 *   failed      P
 *   E enqueue · P promotion when due · F fetch · C queue_complete · X queue_fail (failed
 *   while attempts < max_attempts, the retry waiting in the delayed set; else dead) ·
 *   R reclaim of a stalled delivery (counted failed + retried, or failed + dead).
 *   completed and dead are final. Any other state (a record set to "cancelled", as
 *   docs/queues.md rule 5 cancels a waiting job) cannot become active: its entry is
 *   acknowledged unrun.
 *
 * Delivery contract (at-least-once):
 *  - queue_fetch first promotes due delayed jobs (at most QUEUE_PROMOTE_BATCH per call),
 *    then, per lane from high to low: reclaims a stalled delivery (pending and idle for
 *    visibility_ms: XPENDING IDLE finds the oldest, XAUTOCLAIM takes it; that walks the
 *    lane's pending entries, as many as jobs are running), else reads a new entry
 *    (XREADGROUP COUNT 1). Only when every lane is empty does it block, up to block_ms
 *    (shortened to the next delayed job's due time), on all three lanes at once; if that
 *    read hands over entries of several lanes (jobs that came in together just before it,
 *    or on Redis ≥ 7.2 while it waited), the most urgent is delivered and the others are
 *    acknowledged and added again at the end of their lane, so a worker never holds more
 *    than the one job it runs.
 *  - A delivery is held until queue_complete or queue_fail. A job still running after
 *    visibility_ms is handed to the next fetch of any worker (attempt + 1, the stalled
 *    attempt counted failed + retried, or failed + dead when none is left). Of the two
 *    deliveries the first to complete or fail settles the job; the other then answers
 *    SL_ECONFLICT and counts nothing. Pick visibility_ms above the slowest job.
 *  - Idempotent effects: queue_complete sets the processed marker in the same script as
 *    the XACK; a handler can set it as soon as its effect is done (queue_mark_processed),
 *    before any slower work. A job whose marker exists is delivered with
 *    already_processed: the caller must not apply the effect again, only complete it.
 *    A crash between the effect and the marker still runs the effect twice.
 *  - Enqueue is idempotent by job id: an id whose record or marker exists is SL_EEXISTS,
 *    so re-sending within status_ttl_s (record) or processed_ttl_s (marker) adds nothing.
 *  - An entry whose record says the job moved on (another entry is its current one, or it
 *    is completed or dead) is acknowledged unrun; a delayed member whose record expired is
 *    dropped with a warning (its payload is gone).
 *
 * Bounded: every lane is trimmed after every acknowledgement with XTRIM MINID m, where m is
 * the smallest, over the stream's groups, of the oldest pending id (XPENDING) or, for a
 * group with nothing pending, its last-delivered-id; XTRIM MINID keeps ids ≥ m, so nothing
 * pending or undelivered is removed (at most one acknowledged entry per group stays).
 * Dead letters: QUEUE_DEAD_MAXLEN. Payloads and results: QUEUE_PAYLOAD_MAX; error texts
 * are cut at QUEUE_ERROR_MAX. A fetch touches at most QUEUE_PROMOTE_BATCH delayed jobs and
 * QUEUE_SCAN_MAX stale or stalled entries.
 *
 * Redis: ≥ 6.2 (XAUTOCLAIM, XPENDING IDLE, XTRIM MINID), and a maxmemory-policy that does
 * not evict these keys: programs call queue_check_redis at start and refuse to run when it
 * fails.
 *
 * Errors: SL_EINVAL (bad name, id, consumer, options), SL_ETOOBIG, SL_ERANGE (delay),
 * SL_EEXISTS, SL_ENOTFOUND, SL_ECONFLICT, SL_ESTORE (Redis unreachable or an error reply,
 * logged), SL_EPARSE (a key that breaks the layout), SL_ENOMEM. Thread-safe: no state
 * besides the pool's; any number of threads may fetch with the same or different consumer
 * names (names only label the deliveries in XINFO CONSUMERS).
 */
#ifndef SLUICE_QUEUE_H
#define SLUICE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store_redis.h"

#define QUEUE_JOB_ID_SIZE   64        /* 1..63 bytes of A-Z a-z 0-9 . _ - : */
#define QUEUE_ENTRY_ID_SIZE 48        /* a stream id "ms-seq" */
#define QUEUE_CONSUMER_SIZE 64        /* consumer names are 1..63 bytes, no spaces */
#define QUEUE_PAYLOAD_MAX   (1 << 20) /* bytes of a payload or a result; more is SL_ETOOBIG */
#define QUEUE_ERROR_MAX     1024      /* bytes of a failure's text kept; the rest is cut */
#define QUEUE_DEAD_MAXLEN   10000     /* dead letters kept (approximately, MAXLEN ~) */
#define QUEUE_PROMOTE_BATCH 100       /* due delayed jobs moved per fetch */
#define QUEUE_SCAN_MAX      16        /* stale or stalled entries handled per fetch */
#define QUEUE_DELAY_MAX_MS  (365ULL * 24 * 3600 * 1000) /* longer delays are SL_ERANGE */
#define QUEUE_BLOCK_MAX_MS  60000                       /* a fetch blocks at most this long */
#define QUEUE_ATTEMPTS_MAX  100                         /* max_attempts above this is SL_EINVAL */
#define QUEUE_ERR_SIZE      256

#define QUEUE_MAX_ATTEMPTS_DEFAULT    5
#define QUEUE_VISIBILITY_MS_DEFAULT   30000
#define QUEUE_BACKOFF_BASE_MS_DEFAULT 1000
#define QUEUE_BACKOFF_MAX_MS_DEFAULT  300000
#define QUEUE_STATUS_TTL_S_DEFAULT    86400
#define QUEUE_PROCESSED_TTL_S_DEFAULT (7 * 86400)

/* Zero fields take the defaults above. */
struct queue_opts {
    const char *name;         /* 1..63 bytes of A-Z a-z 0-9 . _ - (docs/queues.md) */
    unsigned max_attempts;    /* attempts before a job is dead, ≤ QUEUE_ATTEMPTS_MAX; the
                               * producer's is kept in each job's record, a worker's only
                               * stands in for records that expired */
    uint32_t visibility_ms;   /* a delivery idle this long is reclaimed */
    uint32_t backoff_base_ms; /* queue_backoff_ms */
    uint32_t backoff_max_ms;  /* ≥ backoff_base_ms */
    uint32_t status_ttl_s;    /* job records live this long after their last write */
    uint32_t processed_ttl_s; /* processed markers (and the enqueue dedup window) */
};

/* Priority lanes, most urgent first (the order fetch drains them). */
#define QUEUE_PRIORITY_MAP(X) X(HIGH, "high") X(NORMAL, "normal") X(LOW, "low")
enum queue_priority {
#define QUEUE_PRIORITY_ENUM(id, name) QUEUE_PRIORITY_##id,
    QUEUE_PRIORITY_MAP(QUEUE_PRIORITY_ENUM) QUEUE_PRIORITIES
#undef QUEUE_PRIORITY_ENUM
};

/* Job states as stored in the record's "state" field; NONE is "no record yet". */
#define QUEUE_STATE_MAP(X)                                                                         \
    X(NONE, "none")                                                                                \
    X(WAITING, "waiting")                                                                          \
    X(DELAYED, "delayed")                                                                          \
    X(ACTIVE, "active")                                                                            \
    X(COMPLETED, "completed")                                                                      \
    X(FAILED, "failed")                                                                            \
    X(DEAD, "dead")
enum queue_state {
#define QUEUE_STATE_ENUM(id, name) QUEUE_STATE_##id,
    QUEUE_STATE_MAP(QUEUE_STATE_ENUM) QUEUE_STATES
#undef QUEUE_STATE_ENUM
};

/* The allowed moves (from, to); the table at the top of this file. */
#define QUEUE_TRANSITION_MAP(X)                                                                    \
    X(NONE, WAITING)                                                                               \
    X(NONE, DELAYED)                                                                               \
    X(WAITING, ACTIVE)                                                                             \
    X(DELAYED, WAITING)                                                                            \
    X(FAILED, WAITING)                                                                             \
    X(ACTIVE, ACTIVE)                                                                              \
    X(ACTIVE, COMPLETED)                                                                           \
    X(ACTIVE, FAILED)                                                                              \
    X(ACTIVE, DEAD)

/* One delivery, filled by queue_fetch; queue_job_release frees the payload. */
struct queue_job {
    char id[QUEUE_JOB_ID_SIZE];
    enum queue_priority lane;
    char entry_id[QUEUE_ENTRY_ID_SIZE]; /* the stream entry delivered */
    unsigned attempt;                   /* 1 on the first delivery */
    unsigned max_attempts;
    char *payload; /* payload_len bytes and a NUL; owned by the job */
    size_t payload_len;
    bool already_processed; /* the marker exists: do not apply the effect, just complete */
};

const char *queue_priority_name(enum queue_priority lane);
bool queue_priority_parse(const char *s, enum queue_priority *out);
const char *queue_state_name(enum queue_state state);
/* Pure: whether QUEUE_TRANSITION_MAP has (from, to). */
bool queue_transition_ok(enum queue_state from, enum queue_state to);

/* Pure: the wait before retrying after failed attempt `attempt` (1-based): d = base ×
 * 2^(attempt−1), capped at backoff_max_ms, with "equal jitter": ceil(d/2) fixed plus a
 * random part in [0, floor(d/2)] taken from the high 32 bits of rnd (rnd 0 → ceil(d/2),
 * rnd UINT64_MAX → d). Never 0. Half fixed, so a failing dependency always gets a pause;
 * half random, so workers that failed together do not retry together. */
uint32_t queue_backoff_ms(const struct queue_opts *opts, unsigned attempt, uint64_t rnd);

/* CONFIG GET maxmemory-policy. allkeys-* → SL_EINVAL with the fix in err. noeviction →
 * SL_OK, err "". volatile-* → SL_OK with a warning in err (job records and markers have
 * TTLs, so they can be evicted). CONFIG refused (renamed, ACL) → SL_OK with err saying the
 * policy could not be checked. Unreachable → SL_ESTORE. */
int queue_check_redis(struct redis_pool *p, char err[QUEUE_ERR_SIZE]);

/* Add a job: job_id NULL → 32 random hex digits. delay_ms 0 → into its lane (waiting),
 * else into the delayed set (delayed) due at Redis TIME + delay_ms. Counts enqueued (and
 * enqueued:LANE), registers the queue. The id used goes to id_out (may be NULL).
 * SL_EEXISTS when the id has a record or a processed marker (nothing is changed). */
int queue_enqueue(struct redis_pool *p, const struct queue_opts *opts, const char *job_id,
                  const void *payload, size_t len, enum queue_priority lane, uint64_t delay_ms,
                  char id_out[QUEUE_JOB_ID_SIZE]);

/* The next job for consumer (contract above): state active, attempts + 1. block_ms 0 =
 * do not block; at most QUEUE_BLOCK_MAX_MS. SL_OK with *out filled (release it), or
 * SL_ENOTFOUND when nothing came within block_ms (*out zeroed either way first). */
int queue_fetch(struct redis_pool *p, const struct queue_opts *opts, const char *consumer,
                uint32_t block_ms, struct queue_job *out);
/* Free the payload and zero the job. NULL is a no-op. */
void queue_job_release(struct queue_job *job);

/* Set the processed marker (SET NX, processed_ttl_s). SL_OK when set now, SL_EEXISTS when
 * it was there already. */
int queue_mark_processed(struct redis_pool *p, const struct queue_opts *opts, const char *job_id);

/* Finish a delivery: marker, XACK, state completed (+ result when not NULL), counts
 * completed, trims the lane. SL_ECONFLICT when the delivery is no longer held (reclaimed
 * by another worker, or already finished): the marker is set, nothing is counted. */
int queue_complete(struct redis_pool *p, const struct queue_opts *opts, const struct queue_job *job,
                   const char *result);

/* A failed attempt: XACK, counts failed; if job->attempt < job->max_attempts the job
 * waits queue_backoff_ms (rng jitter) in the delayed set, state failed, counts retried,
 * and *retry_in_ms is that wait; else it goes to the dead stream, state dead, counts
 * dead, and *retry_in_ms is 0. retry_in_ms may be NULL. SL_ECONFLICT as queue_complete. */
int queue_fail(struct redis_pool *p, const struct queue_opts *opts, const struct queue_job *job,
               const char *error, uint32_t *retry_in_ms);

/* The job record as a new JSON object: "id", then those of state, lane, attempts,
 * max_attempts, created_ms, updated_ms, due_ms, started_ms, finished_ms, consumer, entry,
 * error, result, progress_done, progress_total that are set (times and counts as
 * integers, the rest as strings; never the payload). SL_ENOTFOUND when there is none. */
int queue_status(struct redis_pool *p, const struct queue_opts *opts, const char *job_id,
                 json_t **out);

/* Record progress (done of total) in the job's record. SL_ENOTFOUND without a record. */
int queue_progress(struct redis_pool *p, const struct queue_opts *opts, const char *job_id,
                   unsigned done, unsigned total);

#endif
