/*
 * queue — see queue.h for the contract. How it is built:
 *
 *  - Every script gets the same KEYS (the lanes high normal low, delayed, dead, stats,
 *    sluice:queues) and the same first ARGV (COMMON_ARGS below: job-record and marker key
 *    prefixes, consumer, visibility_ms, max_attempts, the two TTLs), then its own. So one
 *    Lua prelude serves them all: lane names, the transition table (compiled in from
 *    QUEUE_TRANSITION_MAP), Redis TIME, counters, XADD that makes the group, XACK that
 *    trims, and dead letters. Job-record and marker keys are built in the scripts from
 *    the prefixes: they share the queue's hash tag, so they are in the same slot.
 *  - queue_fetch runs the fetch script (promote, reclaim, read, deliver: one round trip);
 *    only when every lane is empty does it block in XREADGROUP from C, on a pooled
 *    connection whose socket timeout is stretched for the wait, then hands what it got to
 *    the same script, which delivers the most urgent entry and puts the others back.
 */
#include "queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "clock.h"
#include "encode.h"
#include "err.h"
#include "log.h"
#include "rng.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

#define QUEUE_GROUP_NAME "workers"
#define NAME_CHARS       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
#define ID_CHARS         NAME_CHARS ":"
#define KEY_SIZE         160 /* "sluice:q:{" 63 "}:done:" 63 */
#define FETCH_ROUNDS_MAX 8   /* script runs in a row while it says there is more to do */

/* KEYS of every script, in this order. */
enum { K_HIGH, K_NORMAL, K_LOW, K_DELAYED, K_DEAD, K_STATS, K_QUEUES, NKEYS };
/* The common ARGV after the keys; scripts add theirs after these. */
enum {
    A_JOB_PREFIX,
    A_DONE_PREFIX,
    A_CONSUMER,
    A_VISIBILITY,
    A_MAX_ATTEMPTS,
    A_STATUS_TTL,
    A_DONE_TTL,
    COMMON_ARGS
};
#define ARGS_MAX (NKEYS + COMMON_ARGS + 2 * QUEUE_PRIORITIES + 2)
#define NUMS_MAX 8

#define NAME_OF(id, name) name,
static const char *const priority_names[QUEUE_PRIORITIES] = {QUEUE_PRIORITY_MAP(NAME_OF)};
static const char *const state_names[QUEUE_STATES] = {QUEUE_STATE_MAP(NAME_OF)};
#undef NAME_OF

static const struct {
    enum queue_state from, to;
} moves[] = {
#define MOVE(f, t) {QUEUE_STATE_##f, QUEUE_STATE_##t},
    QUEUE_TRANSITION_MAP(MOVE)
#undef MOVE
};

/* One call: the queue's keys and options, and the argument vector being built. */
struct ctx {
    struct queue_opts o;
    char key[NKEYS][KEY_SIZE];
    char job_prefix[KEY_SIZE], done_prefix[KEY_SIZE];
    char num[NUMS_MAX][24];
    int nnum;
    const char *argv[ARGS_MAX];
    size_t len[ARGS_MAX];
    int argc;
};

/* --- the Lua scripts -------------------------------------------------------------------- */
/* clang-format off */

#define LUA_LANE(id, name) "'" name "',"
#define LUA_MOVE(f, t)     "['" #f ">" #t "']=true,"

/* now, counters, lanes and the helpers every script may use (queue.h has the layout). */
#define LUA_PRELUDE                                                                                \
    "local GROUP = '" QUEUE_GROUP_NAME "'\n"                                                       \
    "local LANES = {" QUEUE_PRIORITY_MAP(LUA_LANE) "}\n"                                           \
    "local LANE = {}\n"                                                                            \
    "for i, l in ipairs(LANES) do LANE[l] = i end\n"                                               \
    "local MOVES = {" QUEUE_TRANSITION_MAP(LUA_MOVE) "}\n"                                         \
    "local TTL = tonumber(ARGV[6]) * 1000\n"                                                       \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                      \
    "local function allowed(from, to)\n"                                                           \
    "  return MOVES[string.upper(from) .. '>' .. string.upper(to)] == true\n"                      \
    "end\n"                                                                                        \
    "local function record(id) return ARGV[1] .. id end\n"                                         \
    "local function fields(flat)\n"                                                               \
    "  local f = {}\n"                                                                             \
    "  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end\n"                                      \
    "  return f\n"                                                                                 \
    "end\n"                                                                                        \
    "local function count(what, lane)\n"                                                           \
    "  redis.call('HINCRBY', KEYS[6], what, 1)\n"                                                  \
    "  redis.call('HINCRBY', KEYS[6], what .. ':' .. LANES[lane], 1)\n"                            \
    "end\n"                                                                                        \
    /* docs/queues.md rules 2 and 3: the group before the first entry, ids from Redis */          \
    "local function xadd(lane, id, payload, attempts)\n"                                           \
    "  if redis.call('EXISTS', KEYS[lane]) == 0 then\n"                                            \
    "    redis.call('XGROUP', 'CREATE', KEYS[lane], GROUP, '0', 'MKSTREAM')\n"                     \
    "  end\n"                                                                                      \
    "  return redis.call('XADD', KEYS[lane], '*', 'id', id, 'payload', payload,\n"                 \
    "                    'attempts', attempts)\n"                                                  \
    "end\n"                                                                                        \
    "local function id_less(a, b)\n"                                                               \
    "  local am, as = string.match(a, '^(%d+)-(%d+)$')\n"                                          \
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$')\n"                                          \
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n"                  \
    "  return am < bm or (am == bm and as < bs)\n"                                                 \
    "end\n"                                                                                        \
    /* queue.h "Bounded": below every group's oldest pending id or cursor, never beyond */        \
    "local function trim(lane)\n"                                                                  \
    "  local keep\n"                                                                               \
    "  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[lane])) do\n"                         \
    "    local f = fields(g)\n"                                                                    \
    "    local id = f['last-delivered-id']\n"                                                      \
    "    if f.pending > 0 then id = redis.call('XPENDING', KEYS[lane], f.name)[2] end\n"           \
    "    if keep == nil or id_less(id, keep) then keep = id end\n"                                 \
    "  end\n"                                                                                      \
    "  if keep then redis.call('XTRIM', KEYS[lane], 'MINID', keep) end\n"                          \
    "end\n"                                                                                        \
    "local function ack(lane, eid)\n"                                                              \
    "  local n = redis.call('XACK', KEYS[lane], GROUP, eid)\n"                                     \
    "  if n > 0 then trim(lane) end\n"                                                             \
    "  return n\n"                                                                                 \
    "end\n"                                                                                        \
    "local function to_dead(lane, id, payload, err, attempts)\n"                                   \
    "  redis.call('XADD', KEYS[5], 'MAXLEN', '~', " STR(QUEUE_DEAD_MAXLEN) ", '*', 'id', id,\n"    \
    "             'payload', payload, 'error', err, 'attempts', attempts, 'lane', LANES[lane])\n"  \
    "  local r = record(id)\n"                                                                     \
    "  redis.call('HSET', r, 'state', 'dead', 'lane', LANES[lane], 'error', err,\n"                \
    "             'attempts', attempts, 'finished_ms', now, 'updated_ms', now)\n"                  \
    "  redis.call('HDEL', r, 'payload', 'due_ms')\n"                                               \
    "  redis.call('PEXPIRE', r, TTL)\n"                                                            \
    "  count('dead', lane)\n"                                                                      \
    "end\n"

/* ARGV 8 id, 9 payload, 10 lane (1-based), 11 delay_ms, 12 queue name.
 * 1 added, 0 when the id has a record or a marker. */
static struct redis_script enqueue_script = REDIS_SCRIPT_INIT(
    LUA_PRELUDE
    "local id, lane, delay = ARGV[8], tonumber(ARGV[10]), tonumber(ARGV[11])\n"
    "local r = record(id)\n"
    "if redis.call('EXISTS', r, ARGV[2] .. id) > 0 then return 0 end\n"
    "local state, ttl = 'waiting', TTL\n"
    "if delay > 0 then\n"
    "  state, ttl = 'delayed', TTL + delay\n"
    "  redis.call('ZADD', KEYS[4], now + delay, id)\n"
    "  redis.call('HSET', r, 'due_ms', now + delay, 'payload', ARGV[9])\n"
    "else\n"
    "  redis.call('HSET', r, 'entry', xadd(lane, id, ARGV[9], 0))\n"
    "end\n"
    "redis.call('HSET', r, 'state', state, 'lane', LANES[lane], 'attempts', 0,\n"
    "           'max_attempts', ARGV[5], 'created_ms', now, 'updated_ms', now)\n"
    "redis.call('PEXPIRE', r, ttl)\n"
    "count('enqueued', lane)\n"
    "redis.call('SADD', KEYS[7], ARGV[12])\n"
    "return 1\n");

/* ARGV 8.. optional (lane, entry id) pairs the consumer holds from a blocking read, most
 * urgent first. Reply: {promoted, dropped, dead, next_due_in_ms (-1: none), more (0|1)}
 * and, when a job is delivered, {lane, entry id, job id, payload, attempt, max_attempts,
 * processed (0|1)}. */
static struct redis_script fetch_script = REDIS_SCRIPT_INIT(
    LUA_PRELUDE
    "local budget, promoted, dropped, dead = " STR(QUEUE_SCAN_MAX) ", 0, 0, 0\n"
    "local function promote()\n"
    "  local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, "
    STR(QUEUE_PROMOTE_BATCH) ")\n"
    "  for _, id in ipairs(due) do\n"
    "    redis.call('ZREM', KEYS[4], id)\n"
    "    local r = record(id)\n"
    "    local st = redis.call('HMGET', r, 'state', 'lane', 'payload', 'attempts')\n"
    "    local lane = LANE[st[2]]\n"
    "    if st[1] and allowed(st[1], 'waiting') and lane and st[3] then\n"
    "      local e = xadd(lane, id, st[3], st[4] or 0)\n"
    "      redis.call('HSET', r, 'state', 'waiting', 'entry', e, 'updated_ms', now)\n"
    "      redis.call('HDEL', r, 'payload', 'due_ms')\n"
    "      redis.call('PEXPIRE', r, TTL)\n"
    "      promoted = promoted + 1\n"
    "    else\n"
    "      dropped = dropped + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    /* a command on a lane's group; a lane without the group gets it (at 0) first */
    "local function gcall(lane, ...)\n"
    "  local r = redis.pcall(...)\n"
    "  if type(r) == 'table' and r.err then\n"
    "    if not string.find(r.err, 'NOGROUP', 1, true) then error(r) end\n"
    "    redis.pcall('XGROUP', 'CREATE', KEYS[lane], GROUP, '0', 'MKSTREAM')\n"
    "    r = redis.call(...)\n"
    "  end\n"
    "  return r\n"
    "end\n"
    /* the delivery of entry eid as the reply's tail, or nil: a stale entry (its record
     * names another entry or a state that cannot become active) is acknowledged unrun, a
     * reclaimed one without attempts left goes dead */
    "local function deliver(lane, eid, f, reclaimed)\n"
    "  if not f.id then ack(lane, eid) return nil end\n"
    "  local r = record(f.id)\n"
    "  local st = redis.call('HMGET', r, 'state', 'attempts', 'max_attempts', 'entry')\n"
    "  if (st[4] and st[4] ~= eid) or (st[1] and not allowed(st[1], 'active')) then\n"
    "    ack(lane, eid)\n"
    "    return nil\n"
    "  end\n"
    "  local attempts = tonumber(st[2]) or tonumber(f.attempts) or 0\n"
    "  local max = tonumber(st[3]) or tonumber(ARGV[5])\n"
    "  if reclaimed then\n"
    "    count('failed', lane)\n"
    "    if attempts >= max then\n"
    "      ack(lane, eid)\n"
    "      to_dead(lane, f.id, f.payload or '', 'stalled: not finished within the "
    "visibility timeout', attempts)\n"
    "      dead = dead + 1\n"
    "      return nil\n"
    "    end\n"
    "    count('retried', lane)\n"
    "  end\n"
    "  attempts = attempts + 1\n"
    "  redis.call('HSET', r, 'state', 'active', 'lane', LANES[lane], 'attempts', attempts,\n"
    "             'max_attempts', max, 'entry', eid, 'consumer', ARGV[3], 'started_ms', now,\n"
    "             'updated_ms', now)\n"
    "  redis.call('HSETNX', r, 'created_ms', now)\n"
    "  redis.call('PEXPIRE', r, TTL)\n"
    "  return {lane, eid, f.id, f.payload or '', attempts, max,\n"
    "          redis.call('EXISTS', ARGV[2] .. f.id)}\n"
    "end\n"
    "local function requeue(lane, eid, f)\n"
    "  ack(lane, eid)\n"
    "  if not f.id then return end\n"
    "  local e = xadd(lane, f.id, f.payload or '', f.attempts or 0)\n"
    "  local r = record(f.id)\n"
    "  if redis.call('HGET', r, 'entry') == eid then\n"
    "    redis.call('HSET', r, 'entry', e, 'updated_ms', now)\n"
    "  end\n"
    "end\n"
    "local function reclaim(lane)\n"
    "  while budget > 0 do\n"
    "    local p = gcall(lane, 'XPENDING', KEYS[lane], GROUP, 'IDLE', ARGV[4], '-', '+', 1)\n"
    "    if #p == 0 then return nil end\n"
    "    budget = budget - 1\n"
    "    local c = redis.call('XAUTOCLAIM', KEYS[lane], GROUP, ARGV[3], ARGV[4], p[1][1],\n"
    "                         'COUNT', 1)\n"
    "    local e = c[2][1]\n"
    "    local job = e and deliver(lane, e[1], fields(e[2]), true)\n"
    "    if job then return job end\n"
    "  end\n"
    "end\n"
    "local function read(lane)\n"
    "  while budget > 0 do\n"
    "    local r = gcall(lane, 'XREADGROUP', 'GROUP', GROUP, ARGV[3], 'COUNT', 1,\n"
    "                    'STREAMS', KEYS[lane], '>')\n"
    "    if not r then return nil end\n"
    "    budget = budget - 1\n"
    "    local e = r[1][2][1]\n"
    "    local job = deliver(lane, e[1], fields(e[2]), false)\n"
    "    if job then return job end\n"
    "  end\n"
    "end\n"
    "local function reply(job)\n"
    "  local next_due = -1\n"
    "  local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')\n"
    "  if first[2] then next_due = math.max(0, tonumber(first[2]) - now) end\n"
    "  local more = (budget == 0 or promoted == " STR(QUEUE_PROMOTE_BATCH) ") and 1 or 0\n"
    "  local out = {promoted, dropped, dead, next_due, more}\n"
    "  for _, v in ipairs(job or {}) do out[#out + 1] = v end\n"
    "  return out\n"
    "end\n"
    "promote()\n"
    "if #ARGV > 7 then\n"
    "  local job\n"
    "  for i = 8, #ARGV, 2 do\n"
    "    local lane, eid = tonumber(ARGV[i]), ARGV[i + 1]\n"
    "    local e = redis.call('XRANGE', KEYS[lane], eid, eid)[1]\n"
    "    if not e then ack(lane, eid)\n"
    "    elseif job then requeue(lane, eid, fields(e[2]))\n"
    "    else job = deliver(lane, eid, fields(e[2]), false) end\n"
    "  end\n"
    "  return reply(job)\n"
    "end\n"
    "for lane = 1, #LANES do\n"
    "  local job = reclaim(lane) or read(lane)\n"
    "  if job then return reply(job) end\n"
    "end\n"
    "return reply(nil)\n");

/* ARGV 8 lane, 9 entry id, 10 job id, 11 result (optional). 1 done, 0 not held. */
static struct redis_script complete_script = REDIS_SCRIPT_INIT(
    LUA_PRELUDE
    "local lane, eid, id = tonumber(ARGV[8]), ARGV[9], ARGV[10]\n"
    "redis.call('SET', ARGV[2] .. id, '1', 'EX', ARGV[7])\n"
    "if ack(lane, eid) == 0 then return 0 end\n"
    "local r = record(id)\n"
    "redis.call('HSET', r, 'state', 'completed', 'lane', LANES[lane], 'finished_ms', now,\n"
    "           'updated_ms', now)\n"
    "if ARGV[11] then redis.call('HSET', r, 'result', ARGV[11]) end\n"
    "redis.call('PEXPIRE', r, TTL)\n"
    "count('completed', lane)\n"
    "return 1\n");

/* ARGV 8 lane, 9 entry id, 10 job id, 11 payload, 12 error, 13 attempt, 14 delay_ms (0:
 * dead). The due time of the retry, 0 when dead, -1 when not held. */
static struct redis_script fail_script = REDIS_SCRIPT_INIT(
    LUA_PRELUDE
    "local lane, eid, id, payload, err = tonumber(ARGV[8]), ARGV[9], ARGV[10], ARGV[11],\n"
    "                                    ARGV[12]\n"
    "local attempt, delay = tonumber(ARGV[13]), tonumber(ARGV[14])\n"
    "if ack(lane, eid) == 0 then return -1 end\n"
    "count('failed', lane)\n"
    "if delay == 0 then\n"
    "  to_dead(lane, id, payload, err, attempt)\n"
    "  return 0\n"
    "end\n"
    "local r = record(id)\n"
    "redis.call('ZADD', KEYS[4], now + delay, id)\n"
    "redis.call('HSET', r, 'state', 'failed', 'lane', LANES[lane], 'error', err,\n"
    "           'due_ms', now + delay, 'payload', payload, 'updated_ms', now)\n"
    "redis.call('PEXPIRE', r, TTL + delay)\n"
    "count('retried', lane)\n"
    "return now + delay\n");

/* ARGV 8 job id, 9 done, 10 total. 1 recorded, 0 no record. The TTL is only lengthened: a
 * job waiting in the delayed set keeps the delay in its TTL. */
static struct redis_script progress_script = REDIS_SCRIPT_INIT(
    LUA_PRELUDE
    "local r = record(ARGV[8])\n"
    "if redis.call('EXISTS', r) == 0 then return 0 end\n"
    "redis.call('HSET', r, 'progress_done', ARGV[9], 'progress_total', ARGV[10],\n"
    "           'updated_ms', now)\n"
    "redis.call('PEXPIRE', r, math.max(TTL, redis.call('PTTL', r)))\n"
    "return 1\n");

/* clang-format on */

/* --- pure parts ------------------------------------------------------------------------- */

const char *queue_priority_name(enum queue_priority lane)
{
    return (unsigned)lane < QUEUE_PRIORITIES ? priority_names[lane] : "unknown";
}

bool queue_priority_parse(const char *s, enum queue_priority *out)
{
    for (int l = 0; s && l < QUEUE_PRIORITIES; l++) {
        if (strcmp(s, priority_names[l]) == 0) {
            *out = (enum queue_priority)l;
            return true;
        }
    }
    return false;
}

const char *queue_state_name(enum queue_state state)
{
    return (unsigned)state < QUEUE_STATES ? state_names[state] : "unknown";
}

bool queue_transition_ok(enum queue_state from, enum queue_state to)
{
    for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++)
        if (moves[i].from == from && moves[i].to == to)
            return true;
    return false;
}

/* Defaults for zero fields; false when the options contradict each other. */
static bool opts_resolve(const struct queue_opts *in, struct queue_opts *o)
{
#define OR_DEFAULT(field, value) (o->field = o->field ? o->field : (value))
    *o = *in;
    OR_DEFAULT(max_attempts, QUEUE_MAX_ATTEMPTS_DEFAULT);
    OR_DEFAULT(visibility_ms, QUEUE_VISIBILITY_MS_DEFAULT);
    OR_DEFAULT(backoff_base_ms, QUEUE_BACKOFF_BASE_MS_DEFAULT);
    OR_DEFAULT(backoff_max_ms, QUEUE_BACKOFF_MAX_MS_DEFAULT);
    OR_DEFAULT(status_ttl_s, QUEUE_STATUS_TTL_S_DEFAULT);
    OR_DEFAULT(processed_ttl_s, QUEUE_PROCESSED_TTL_S_DEFAULT);
#undef OR_DEFAULT
    return o->max_attempts <= QUEUE_ATTEMPTS_MAX && o->backoff_base_ms <= o->backoff_max_ms;
}

uint32_t queue_backoff_ms(const struct queue_opts *opts, unsigned attempt, uint64_t rnd)
{
    struct queue_opts o;
    opts_resolve(opts, &o);
    uint64_t d = o.backoff_base_ms;
    for (unsigned i = 1; i < attempt && d < o.backoff_max_ms; i++)
        d *= 2;
    if (d > o.backoff_max_ms)
        d = o.backoff_max_ms;
    uint64_t half = d / 2; /* < 2^31, so (2^32 − 1) × (half + 1) fits in 64 bits */
    return (uint32_t)(d - half + (((rnd >> 32) * (half + 1)) >> 32));
}

/* 1..cap−1 bytes, all from chars. */
static bool text_ok(const char *s, size_t cap, const char *chars)
{
    if (!s)
        return false;
    size_t len = strlen(s);
    return len > 0 && len < cap && strspn(s, chars) == len;
}

static bool consumer_ok(const char *s)
{
    if (!s || !*s || strlen(s) >= QUEUE_CONSUMER_SIZE)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s > '~')
            return false;
    return true;
}

/* --- calls ------------------------------------------------------------------------------ */

static void push(struct ctx *q, const char *s, size_t len)
{
    q->argv[q->argc] = s;
    q->len[q->argc++] = len;
}

static void push_str(struct ctx *q, const char *s)
{
    push(q, s, strlen(s));
}

static void push_u64(struct ctx *q, uint64_t v)
{
    char *s = q->num[q->nnum++];
    snprintf(s, sizeof(q->num[0]), "%llu", (unsigned long long)v);
    push_str(q, s);
}

/* Keys and common arguments of q's queue; consumer may be NULL. SL_EINVAL on a bad name
 * or options. */
static int ctx_init(struct ctx *q, const struct queue_opts *opts, const char *consumer)
{
    static const char *const suffix[NKEYS] = {"high", "normal", "low", "delayed", "dead", "stats"};
    q->nnum = q->argc = 0;
    if (!opts || !text_ok(opts->name, QUEUE_JOB_ID_SIZE, NAME_CHARS) || !opts_resolve(opts, &q->o))
        return SL_EINVAL;
    for (int k = 0; k < K_QUEUES; k++)
        snprintf(q->key[k], KEY_SIZE, "sluice:q:{%s}:%s", opts->name, suffix[k]);
    snprintf(q->key[K_QUEUES], KEY_SIZE, "sluice:queues");
    snprintf(q->job_prefix, KEY_SIZE, "sluice:q:{%s}:job:", opts->name);
    snprintf(q->done_prefix, KEY_SIZE, "sluice:q:{%s}:done:", opts->name);
    for (int k = 0; k < NKEYS; k++)
        push_str(q, q->key[k]);
    push_str(q, q->job_prefix);
    push_str(q, q->done_prefix);
    push_str(q, consumer ? consumer : "");
    push_u64(q, q->o.visibility_ms);
    push_u64(q, q->o.max_attempts);
    push_u64(q, q->o.status_ttl_s);
    push_u64(q, q->o.processed_ttl_s);
    return SL_OK;
}

/* Run s with q's arguments. SL_OK with an integer or array reply in *out (free it);
 * SL_ESTORE (unreachable, or an error reply: logged), SL_EPARSE (WRONGTYPE: a key that
 * breaks the layout). */
static int run(struct redis_pool *p, struct redis_script *s, struct ctx *q, redisReply **out)
{
    redisReply *r = redis_script_eval_pool(p, s, NKEYS, q->argc - NKEYS, q->argv, q->len);
    *out = NULL;
    if (!r)
        return SL_ESTORE;
    if (r->type == REDIS_REPLY_ERROR) {
        int rv = strncmp(r->str, "WRONGTYPE", 9) == 0 ? SL_EPARSE : SL_ESTORE;
        log_warn("queue %s: %s", q->o.name, r->str);
        freeReplyObject(r);
        return rv;
    }
    *out = r;
    return SL_OK;
}

static long long element_int(const redisReply *r, size_t i)
{
    return i < r->elements && r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer
                                                                         : -1;
}

/* --- producer --------------------------------------------------------------------------- */

int queue_check_redis(struct redis_pool *p, char err[QUEUE_ERR_SIZE])
{
    err[0] = '\0';
    redisReply *r = redis_pool_command(p, "CONFIG GET maxmemory-policy");
    if (!r) {
        snprintf(err, QUEUE_ERR_SIZE, "redis unreachable (%s)", redis_pool_url(p));
        return SL_ESTORE;
    }
    int rv = SL_OK;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_STRING) {
        snprintf(err, QUEUE_ERR_SIZE,
                 "maxmemory-policy could not be checked (%s): make sure it is noeviction",
                 r->type == REDIS_REPLY_ERROR ? r->str : "no such setting");
    } else if (strncmp(r->element[1]->str, "allkeys-", 8) == 0) {
        snprintf(err, QUEUE_ERR_SIZE,
                 "maxmemory-policy is %s: the queue's keys could be evicted; set noeviction "
                 "(or volatile-*)",
                 r->element[1]->str);
        rv = SL_EINVAL;
    } else if (strncmp(r->element[1]->str, "volatile-", 9) == 0) {
        snprintf(err, QUEUE_ERR_SIZE,
                 "maxmemory-policy is %s: job records and processed markers (keys with a TTL) "
                 "could be evicted; noeviction keeps them",
                 r->element[1]->str);
    }
    freeReplyObject(r);
    return rv;
}

int queue_enqueue(struct redis_pool *p, const struct queue_opts *opts, const char *job_id,
                  const void *payload, size_t len, enum queue_priority lane, uint64_t delay_ms,
                  char id_out[QUEUE_JOB_ID_SIZE])
{
    struct ctx q;
    char id[QUEUE_JOB_ID_SIZE];
    if (ctx_init(&q, opts, NULL) != SL_OK || (unsigned)lane >= QUEUE_PRIORITIES ||
        (!payload && len) || (job_id && !text_ok(job_id, QUEUE_JOB_ID_SIZE, ID_CHARS)))
        return SL_EINVAL;
    if (len > QUEUE_PAYLOAD_MAX)
        return SL_ETOOBIG;
    if (delay_ms > QUEUE_DELAY_MAX_MS)
        return SL_ERANGE;
    if (job_id) {
        snprintf(id, sizeof(id), "%s", job_id);
    } else {
        uint8_t raw[16];
        rng_bytes(raw, sizeof(raw));
        hex_encode(raw, sizeof(raw), id);
    }
    push_str(&q, id);
    push(&q, payload ? payload : "", len);
    push_u64(&q, (uint64_t)lane + 1);
    push_u64(&q, delay_ms);
    push_str(&q, opts->name);
    redisReply *r;
    int rv = run(p, &enqueue_script, &q, &r);
    if (rv != SL_OK)
        return rv;
    rv = r->type == REDIS_REPLY_INTEGER ? (r->integer == 1 ? SL_OK : SL_EEXISTS) : SL_ESTORE;
    freeReplyObject(r);
    if (rv == SL_OK && id_out)
        memcpy(id_out, id, sizeof(id));
    return rv;
}

/* --- worker ----------------------------------------------------------------------------- */

/* An entry a blocking read handed to this consumer. */
struct held {
    int lane;
    char id[QUEUE_ENTRY_ID_SIZE];
};

/* What one run of the fetch script said besides the job. */
struct fetch_round {
    long long next_due_in_ms; /* −1: nothing delayed */
    bool more;                /* it stopped at a bound: run it again before blocking */
    bool found;
};

static bool copy_str(char *dst, size_t cap, const redisReply *r)
{
    if (r->type != REDIS_REPLY_STRING || r->len >= cap)
        return false;
    memcpy(dst, r->str, r->len + 1);
    return true;
}

/* The job tail of the fetch script's reply (from element 5) into out. */
static int parse_job(const redisReply *r, struct queue_job *out)
{
    const redisReply *payload = r->element[8];
    long long lane = element_int(r, 5), attempt = element_int(r, 9), max = element_int(r, 10);
    if (lane < 1 || lane > QUEUE_PRIORITIES || attempt < 1 || max < 1 ||
        !copy_str(out->entry_id, sizeof(out->entry_id), r->element[6]) ||
        !copy_str(out->id, sizeof(out->id), r->element[7]) || payload->type != REDIS_REPLY_STRING)
        return SL_EPARSE;
    out->payload = malloc(payload->len + 1);
    if (!out->payload)
        return SL_ENOMEM;
    memcpy(out->payload, payload->str, payload->len + 1);
    out->payload_len = payload->len;
    out->lane = (enum queue_priority)(lane - 1);
    out->attempt = (unsigned)attempt;
    out->max_attempts = (unsigned)max;
    out->already_processed = element_int(r, 11) == 1;
    return SL_OK;
}

static int fetch_round(struct redis_pool *p, struct ctx *q, const struct held *held, size_t n,
                       struct queue_job *out, struct fetch_round *fr)
{
    int base = q->argc, nnum = q->nnum;
    for (size_t i = 0; i < n; i++) {
        push_u64(q, (uint64_t)held[i].lane + 1);
        push_str(q, held[i].id);
    }
    redisReply *r;
    int rv = run(p, &fetch_script, q, &r);
    q->argc = base, q->nnum = nnum;
    if (rv != SL_OK)
        return rv;
    fr->found = false;
    if (r->type != REDIS_REPLY_ARRAY || (r->elements != 5 && r->elements != 12)) {
        rv = SL_EPARSE;
    } else {
        if (element_int(r, 1) > 0)
            log_warn("queue %s: %lld delayed jobs dropped: their records had expired", q->o.name,
                     element_int(r, 1));
        fr->next_due_in_ms = element_int(r, 3);
        fr->more = element_int(r, 4) == 1;
        fr->found = r->elements == 12;
        if (fr->found)
            rv = parse_job(r, out);
    }
    freeReplyObject(r);
    return rv;
}

/* The entries of an XREADGROUP reply, most urgent lane first. */
static size_t held_from_reply(const struct ctx *q, const redisReply *r,
                              struct held held[QUEUE_PRIORITIES])
{
    bool got[QUEUE_PRIORITIES] = {false};
    struct held by_lane[QUEUE_PRIORITIES];
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *s = r->element[i];
        if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
            s->element[0]->type != REDIS_REPLY_STRING || s->element[1]->type != REDIS_REPLY_ARRAY ||
            s->element[1]->elements == 0)
            continue;
        const redisReply *e = s->element[1]->element[0];
        for (int l = 0; l < QUEUE_PRIORITIES; l++) {
            if (strcmp(s->element[0]->str, q->key[l]) == 0 && e->type == REDIS_REPLY_ARRAY &&
                e->elements >= 1 && copy_str(by_lane[l].id, QUEUE_ENTRY_ID_SIZE, e->element[0])) {
                by_lane[l].lane = l;
                got[l] = true;
            }
        }
    }
    size_t n = 0;
    for (int l = 0; l < QUEUE_PRIORITIES; l++)
        if (got[l])
            held[n++] = by_lane[l];
    return n;
}

/* XREADGROUP COUNT 1 BLOCK wait_ms on the three lanes. The connection's socket timeout (the
 * pool's command timeout) is stretched by wait_ms for this one command, then put back. */
static int block_read(struct redis_pool *p, const struct ctx *q, const char *consumer,
                      uint64_t wait_ms, struct held held[QUEUE_PRIORITIES], size_t *n)
{
    *n = 0;
    redisContext *c = redis_pool_get(p);
    if (!c)
        return SL_ESTORE;
    struct timeval saved = {0, 0};
    socklen_t slen = sizeof(saved);
    bool stretch = getsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &saved, &slen) == 0 &&
                   (saved.tv_sec || saved.tv_usec);
    if (stretch) {
        struct timeval tv = saved;
        tv.tv_sec += (time_t)(wait_ms / 1000);
        tv.tv_usec += (suseconds_t)(wait_ms % 1000) * 1000;
        tv.tv_sec += tv.tv_usec / 1000000;
        tv.tv_usec %= 1000000;
        redisSetTimeout(c, tv);
    }
    redisReply *r = redisCommand(c,
                                 "XREADGROUP GROUP " QUEUE_GROUP_NAME " %s COUNT 1 BLOCK %llu "
                                 "STREAMS %s %s %s > > >",
                                 consumer, (unsigned long long)wait_ms, q->key[K_HIGH],
                                 q->key[K_NORMAL], q->key[K_LOW]);
    if (stretch && !c->err)
        redisSetTimeout(c, saved);
    redis_pool_put(p, c);
    if (!r)
        return SL_ESTORE;
    /* NOGROUP: a lane was deleted while we waited; the next fetch round makes it again. */
    if (r->type != REDIS_REPLY_ERROR)
        *n = held_from_reply(q, r, held);
    freeReplyObject(r);
    return SL_OK;
}

int queue_fetch(struct redis_pool *p, const struct queue_opts *opts, const char *consumer,
                uint32_t block_ms, struct queue_job *out)
{
    struct ctx q;
    memset(out, 0, sizeof(*out));
    if (ctx_init(&q, opts, consumer) != SL_OK || !consumer_ok(consumer))
        return SL_EINVAL;
    if (block_ms > QUEUE_BLOCK_MAX_MS)
        block_ms = QUEUE_BLOCK_MAX_MS;
    uint64_t deadline = clock_mono_ms() + block_ms;
    struct held held[QUEUE_PRIORITIES];
    size_t nheld = 0;
    for (int rounds = 0;;) {
        struct fetch_round fr;
        int rv = fetch_round(p, &q, held, nheld, out, &fr);
        if (rv != SL_OK || fr.found)
            return rv;
        nheld = 0;
        if (fr.more && ++rounds < FETCH_ROUNDS_MAX)
            continue;
        uint64_t now = clock_mono_ms();
        if (now >= deadline)
            return SL_ENOTFOUND;
        uint64_t wait = deadline - now;
        if (fr.next_due_in_ms >= 0 && (uint64_t)fr.next_due_in_ms < wait)
            wait = fr.next_due_in_ms ? (uint64_t)fr.next_due_in_ms : 1;
        rv = block_read(p, &q, consumer, wait, held, &nheld);
        if (rv != SL_OK)
            return rv;
        rounds = 0;
    }
}

void queue_job_release(struct queue_job *job)
{
    if (!job)
        return;
    free(job->payload);
    memset(job, 0, sizeof(*job));
}

int queue_mark_processed(struct redis_pool *p, const struct queue_opts *opts, const char *job_id)
{
    struct ctx q;
    if (ctx_init(&q, opts, NULL) != SL_OK || !text_ok(job_id, QUEUE_JOB_ID_SIZE, ID_CHARS))
        return SL_EINVAL;
    redisReply *r = redis_pool_command(p, "SET %s%s 1 NX EX %u", q.done_prefix, job_id,
                                       (unsigned)q.o.processed_ttl_s);
    if (!r)
        return SL_ESTORE;
    int rv = r->type == REDIS_REPLY_STATUS ? SL_OK
             : r->type == REDIS_REPLY_NIL  ? SL_EEXISTS
                                           : SL_ESTORE;
    freeReplyObject(r);
    return rv;
}

/* ctx for a call about a delivery: its lane, entry id and job id pushed. */
static int ctx_for_job(struct ctx *q, const struct queue_opts *opts, const struct queue_job *job)
{
    if (ctx_init(q, opts, NULL) != SL_OK || !job || (unsigned)job->lane >= QUEUE_PRIORITIES ||
        !text_ok(job->id, QUEUE_JOB_ID_SIZE, ID_CHARS) || !job->entry_id[0])
        return SL_EINVAL;
    push_u64(q, (uint64_t)job->lane + 1);
    push_str(q, job->entry_id);
    push_str(q, job->id);
    return SL_OK;
}

/* The integer reply of a script about a delivery, into *v. */
static int run_int(struct redis_pool *p, struct redis_script *s, struct ctx *q, long long *v)
{
    redisReply *r;
    int rv = run(p, s, q, &r);
    if (rv != SL_OK)
        return rv;
    rv = r->type == REDIS_REPLY_INTEGER ? SL_OK : SL_EPARSE;
    *v = r->integer;
    freeReplyObject(r);
    return rv;
}

int queue_complete(struct redis_pool *p, const struct queue_opts *opts, const struct queue_job *job,
                   const char *result)
{
    struct ctx q;
    if (ctx_for_job(&q, opts, job) != SL_OK)
        return SL_EINVAL;
    if (result && strlen(result) > QUEUE_PAYLOAD_MAX)
        return SL_ETOOBIG;
    if (result)
        push_str(&q, result);
    long long held;
    int rv = run_int(p, &complete_script, &q, &held);
    return rv == SL_OK && held != 1 ? SL_ECONFLICT : rv;
}

int queue_fail(struct redis_pool *p, const struct queue_opts *opts, const struct queue_job *job,
               const char *error, uint32_t *retry_in_ms)
{
    struct ctx q;
    if (ctx_for_job(&q, opts, job) != SL_OK)
        return SL_EINVAL;
    size_t elen = error ? strnlen(error, QUEUE_ERROR_MAX) : 0;
    uint32_t delay =
        job->attempt < job->max_attempts ? queue_backoff_ms(&q.o, job->attempt, rng_u64()) : 0;
    push(&q, job->payload ? job->payload : "", job->payload ? job->payload_len : 0);
    push(&q, error ? error : "", elen);
    push_u64(&q, job->attempt);
    push_u64(&q, delay);
    long long due;
    int rv = run_int(p, &fail_script, &q, &due);
    if (rv == SL_OK && due < 0)
        rv = SL_ECONFLICT;
    if (retry_in_ms)
        *retry_in_ms = rv == SL_OK ? delay : 0;
    return rv;
}

/* --- status ----------------------------------------------------------------------------- */

static const struct {
    const char *field;
    bool number;
} status_fields[] = {
    {"state", false},       {"lane", false},         {"attempts", true},
    {"max_attempts", true}, {"created_ms", true},    {"updated_ms", true},
    {"due_ms", true},       {"started_ms", true},    {"finished_ms", true},
    {"consumer", false},    {"entry", false},        {"error", false},
    {"result", false},      {"progress_done", true}, {"progress_total", true},
};

/* The value of field in an HGETALL reply, or NULL. */
static const redisReply *hash_get(const redisReply *r, const char *field)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, field) == 0)
            return r->element[i + 1];
    return NULL;
}

static json_t *status_value(const redisReply *v, bool number)
{
    if (v->type != REDIS_REPLY_STRING)
        return NULL;
    if (!number)
        return json_stringn(v->str, v->len);
    char *end;
    long long n = strtoll(v->str, &end, 10);
    return end != v->str && *end == '\0' ? json_integer(n) : NULL;
}

static int status_json(const redisReply *r, const char *job_id, json_t **out)
{
    json_t *o = json_object();
    if (!o || json_object_set_new(o, "id", json_string(job_id)) != 0) {
        json_decref(o);
        return SL_ENOMEM;
    }
    for (size_t i = 0; i < sizeof(status_fields) / sizeof(status_fields[0]); i++) {
        const redisReply *v = hash_get(r, status_fields[i].field);
        if (!v)
            continue;
        json_t *j = status_value(v, status_fields[i].number);
        if (!j || json_object_set_new(o, status_fields[i].field, j) != 0) {
            json_decref(o);
            return SL_EPARSE; /* not a number, or not UTF-8 */
        }
    }
    *out = o;
    return SL_OK;
}

int queue_status(struct redis_pool *p, const struct queue_opts *opts, const char *job_id,
                 json_t **out)
{
    struct ctx q;
    *out = NULL;
    if (ctx_init(&q, opts, NULL) != SL_OK || !text_ok(job_id, QUEUE_JOB_ID_SIZE, ID_CHARS))
        return SL_EINVAL;
    redisReply *r = redis_pool_command(p, "HGETALL %s%s", q.job_prefix, job_id);
    if (!r)
        return SL_ESTORE;
    int rv = r->type != REDIS_REPLY_ARRAY ? SL_EPARSE
             : r->elements == 0           ? SL_ENOTFOUND
                                          : status_json(r, job_id, out);
    freeReplyObject(r);
    return rv;
}

int queue_progress(struct redis_pool *p, const struct queue_opts *opts, const char *job_id,
                   unsigned done, unsigned total)
{
    struct ctx q;
    if (ctx_init(&q, opts, NULL) != SL_OK || !text_ok(job_id, QUEUE_JOB_ID_SIZE, ID_CHARS))
        return SL_EINVAL;
    push_str(&q, job_id);
    push_u64(&q, done);
    push_u64(&q, total);
    long long recorded;
    int rv = run_int(p, &progress_script, &q, &recorded);
    return rv == SL_OK && recorded != 1 ? SL_ENOTFOUND : rv;
}
