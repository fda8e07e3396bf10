/*
 * ratelimit_redis — see ratelimit_redis.h for the contract. How it is built:
 *
 *  - struct script_call is one script call in flight: it holds the argument vector (so a
 *    NOSCRIPT reply can be answered by re-sending the same call as EVAL) and either the
 *    caller's callback (exact) or the fast-path entry whose waiters it serves (lease).
 *    Calls in flight sit on rr->pending; rl_redis_free answers their callers and orphans
 *    them (rr = NULL), and the evredis callback that comes later frees them.
 *  - struct lease_entry is one key's fast-path state: leased units, the local deadlines of
 *    the lease and of a cached denial, and the FIFO of requests waiting on the one lease
 *    call in flight. Invariant: waiters exist only while a call is in flight (entry->call).
 *    Entries live in a chained hash table with an LRU list; only idle entries (no call in
 *    flight) are evicted.
 *  - Answers are computed and the state updated before any caller's callback runs, so a
 *    callback that calls rl_redis_decide again finds consistent state.
 */
#include "ratelimit_redis.h"

#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "encode.h"
#include "err.h"
#include "log.h"
#include "rng.h"

#define CALL_SPARE_MAX     256  /* spare request records kept for reuse */
#define EVICT_SCAN_MAX     16   /* LRU entries looked at for an idle one */
#define ERROR_LOG_INTERVAL 1000 /* ms between two script-error log lines */

/* The argument vector of a script call: EVALSHA sha 1 key limit window burst cost want now */
enum {
    ARG_CMD,
    ARG_SCRIPT,
    ARG_NKEYS,
    ARG_KEY,
    ARG_LIMIT,
    ARG_WINDOW,
    ARG_BURST,
    ARG_COST,
    ARG_WANT,
    ARG_NOW,
    ARGC
};
#define NUMS (ARGC - ARG_LIMIT)

struct lease_entry;

struct script_call {
    struct script_call *prev, *next; /* rr->pending, or the free list (next only) */
    struct rl_redis *rr;             /* NULL once orphaned by rl_redis_free */
    struct lease_entry *entry;       /* lease call: whose waiters it serves */
    rl_redis_fn cb;                  /* exact call */
    void *arg;
    uint64_t sent_ms; /* loop time when first sent */
    enum rl_algorithm alg;
    bool eval_sent; /* NOSCRIPT answered once already */
    const char *argv[ARGC];
    size_t lens[ARGC];
    char key[RL_REDIS_KEY_MAX];
    char num[NUMS][24];
};

struct lease_waiter {
    struct lease_waiter *next;
    rl_redis_fn cb;
    void *arg;
    uint64_t cost;
    struct rl_decision d; /* the answer, computed before any callback runs */
    int err;
};

struct lease_entry {
    struct lease_entry *hnext;               /* hash chain */
    struct lease_entry *lru_prev, *lru_next; /* most recently used first */
    uint64_t hash;
    struct rl_params params;  /* of the latest request: what a chained lease call asks */
    struct script_call *call; /* lease call in flight, or NULL */
    struct lease_waiter *wait_head, *wait_tail;
    unsigned waiters;
    uint64_t units;          /* leased units not spent yet */
    uint64_t lease_until_ms; /* local loop time: the units are usable before it */
    uint64_t deny_until_ms;  /* local loop time: denied without asking before it */
    uint64_t reset_at_ms;    /* local loop time of Redis's reset at the last answer */
    uint64_t remaining;      /* Redis's remaining at the last answer */
    uint64_t limit;
    size_t policy_end; /* key[..policy_end] is "sluice:rl:{POLICY:" */
    size_t key_len;
    char key[RL_REDIS_KEY_MAX];
};

struct rl_redis {
    struct evloop *loop;
    struct evredis *r;
    char sha[RL_ALGORITHMS][41];
    struct script_call *pending; /* calls in flight (doubly linked) */
    struct script_call *spare;   /* free list */
    unsigned spare_count;
    struct lease_entry **buckets;
    size_t bucket_mask, max_keys, nkeys;
    struct lease_entry lru; /* sentinel: lru.lru_next is the most recent */
    uint64_t lease_ttl_ms;
    unsigned instances;
    uint64_t seed; /* of the table's hash */
    uint64_t fake_now_ms;
    uint64_t last_error_log_ms;
    bool freeing;
    struct rl_redis_stats st;
};

/* --- the Lua scripts ------------------------------------------------------------------
 * Each is PRELUDE + the algorithm's body + EPILOGUE, and reproduces ratelimit.c's integer
 * arithmetic (its comments derive it) in Lua's doubles, exact below 2^53 (params_exact).
 * A body reads and brings the state to now, sets cap (rl_capacity) and avail (requests of
 * cost 1 admissible now, the pure "remaining" before the decision), defines take(n) that
 * admits n units and writes the state with its TTL, answer() that sets remaining and reset
 * after it, and retry(k), the wait until k units would be admitted (called when denied).
 * A decision that admits nothing writes nothing (a flood of denials costs Redis no writes,
 * no replication): the states evolve with time alone (windows roll, levels drain), so with
 * a clock that moves forward, writing the brought-forward state or not changes no later
 * answer. Only when Redis's clock steps back does it show: the key has not remembered the
 * latest time that only denials saw, and decides at Redis's time where the pure state
 * would decide at that remembered time. Times are whole ms; numbers reach Redis through
 * format('%d') (Lua would print large ones with an exponent). */

#define LUA_PRELUDE                                                                                \
    "local key = KEYS[1]\n"                                                                        \
    "local L, W, B = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"                    \
    "local cost, want, now = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])\n"            \
    "local ttl_min = 60000\n"                                                                      \
    "if now == 0 then\n"                                                                           \
    "  local t = redis.call('TIME')\n"                                                             \
    "  now = t[1] * 1000 + math.floor(t[2] / 1000)\n"                                              \
    "  ttl_min = 1\n"                                                                              \
    "end\n"                                                                                        \
    "local floor, format = math.floor, string.format\n"                                            \
    "local function idiv(a, b)\n"                                                                  \
    "  local q = floor(a / b)\n"                                                                   \
    "  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end\n"                   \
    "  return q\n"                                                                                 \
    "end\n"                                                                                        \
    "local function cdiv(a, b)\n"                                                                  \
    "  local q = idiv(a, b)\n"                                                                     \
    "  if q * b < a then q = q + 1 end\n"                                                          \
    "  return q\n"                                                                                 \
    "end\n"                                                                                        \
    "local function px(ms) return format('%d', ms > ttl_min and ms or ttl_min) end\n"              \
    "local function put(ttl, fmt, ...)\n"                                                          \
    "  redis.call('SET', key, format(fmt, ...), 'PX', px(ttl))\n"                                  \
    "end\n"

#define LUA_EPILOGUE                                                                               \
    "local never = want == 0 and cost > cap\n"                                                     \
    "local k = cost\n"                                                                             \
    "if want > 0 then k = math.min(want, cap) end\n"                                               \
    "local n = 0\n"                                                                                \
    "if want > 0 then\n"                                                                           \
    "  n = math.min(k, avail)\n"                                                                   \
    "elseif not never and cost <= avail then\n"                                                    \
    "  n = cost\n"                                                                                 \
    "end\n"                                                                                        \
    "local allowed = n > 0 or (want == 0 and cost == 0)\n"                                         \
    "if n > 0 then take(n) end\n"                                                                  \
    "local remaining, reset = answer()\n"                                                          \
    "local wait = 0\n"                                                                             \
    "if never then wait = math.max(reset, W) elseif not allowed then wait = retry(k) end\n"        \
    "return {allowed and 1 or 0, L, remaining, reset, wait, n}\n"

/* a = start of the current window, b = requests admitted in it */
static const char lua_fixed_window[] = LUA_PRELUDE
    "local a, b, s = 0, 0, redis.call('GET', key)\n"
    "if s then\n"
    "  local x, y = string.match(s, '^(%d+) (%d+)$')\n"
    "  if x then a, b = tonumber(x), tonumber(y) end\n"
    "end\n"
    "local ws = idiv(now, W) * W\n"
    "if ws > a then a, b = ws, 0 end\n"
    "local cap = L\n"
    "local avail = b < L and L - b or 0\n"
    "local function take(n)\n"
    "  b = b + n\n"
    "  put(a + W - now, '%d %d', a, b)\n"
    "end\n"
    "local function answer() return (b < L and L - b or 0), (b > 0 and a + W - now or 0) end\n"
    "local function retry(k) return a + W - now end\n" LUA_EPILOGUE;

/* a = current window start, b = its count, c = the previous window's count; the estimate
 * c × (W − elapsed) / W + b is compared by cross-multiplication, in units of 1/W */
static const char lua_sliding_window[] = LUA_PRELUDE
    "local a, b, c, s = 0, 0, 0, redis.call('GET', key)\n"
    "if s then\n"
    "  local x, y, z = string.match(s, '^(%d+) (%d+) (%d+)$')\n"
    "  if x then a, b, c = tonumber(x), tonumber(y), tonumber(z) end\n"
    "end\n"
    "local ws = idiv(now, W) * W\n"
    "if ws > a then\n"
    "  if ws - a == W then c = b else c = 0 end\n"
    "  b, a = 0, ws\n"
    "end\n"
    "local elapsed = now > a and now - a or 0\n"
    "local full, prev = L * W, c * (W - elapsed)\n"
    "local function left()\n"
    "  local used = prev + b * W\n"
    "  return used < full and idiv(full - used, W) or 0\n"
    "end\n"
    "local cap = L\n"
    "local avail = left()\n"
    "local function take(n)\n"
    "  b = b + n\n"
    "  put(a + 2 * W - now, '%d %d %d', a, b, c)\n"
    "end\n"
    "local function answer()\n"
    "  local reset = 0\n"
    "  if b > 0 then reset = a + 2 * W - now elseif c > 0 then reset = a + W - now end\n"
    "  return left(), reset\n"
    "end\n"
    "local function retry(k)\n"
    "  if b + k <= L then return a + W - idiv((L - b - k) * W, c) - now end\n"
    "  return a + 2 * W - idiv((L - k) * W, b) - now\n"
    "end\n" LUA_EPILOGUE;

/* A sorted set of admission times; members are "time-i", i counting the members that
 * share a time, so equal times stay distinct (they expire together). */
static const char lua_sliding_log[] =
    LUA_PRELUDE "redis.call('ZREMRANGEBYSCORE', key, '-inf', format('%d', now - W))\n"
                "local len = redis.call('ZCARD', key)\n"
                "local function newest()\n"
                "  local e = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')\n"
                "  return e[2] and tonumber(e[2]) or nil\n"
                "end\n"
                "local cap = L\n"
                "local avail = len < L and L - len or 0\n"
                "local function take(n)\n"
                "  local t = now\n"
                "  local top = len > 0 and newest() or nil\n"
                "  if top and top > t then t = top end\n"
                "  local ts = format('%d', t)\n"
                "  local base = redis.call('ZCOUNT', key, ts, ts)\n"
                "  local i = 0\n"
                "  while i < n do\n"
                "    local args = {}\n"
                "    for j = 1, math.min(n - i, 200) do\n"
                "      args[#args + 1] = ts\n"
                "      args[#args + 1] = ts .. '-' .. format('%d', base + i + j)\n"
                "    end\n"
                "    redis.call('ZADD', key, unpack(args))\n"
                "    i = i + #args / 2\n"
                "  end\n"
                "  len = len + n\n"
                "  redis.call('PEXPIRE', key, px(t + W - now))\n"
                "end\n"
                "local function answer()\n"
                "  local reset = 0\n"
                "  if len > 0 then reset = newest() + W - now end\n"
                "  return (len < L and L - len or 0), reset\n"
                "end\n"
                "local function retry(k)\n"
                "  local idx = len + k - L - 1\n"
                "  local e = redis.call('ZRANGE', key, idx, idx, 'WITHSCORES')\n"
                "  return tonumber(e[2]) + W - now\n"
                "end\n" LUA_EPILOGUE;

/* a = last decision (ms), b = level: one request is W units, draining L units per ms */
#define LUA_BUCKET(size)                                                                           \
    LUA_PRELUDE                                                                                    \
    "local a, lvl, s = 0, 0, redis.call('GET', key)\n"                                             \
    "if s then\n"                                                                                  \
    "  local x, y = string.match(s, '^(%d+) (%d+)$')\n"                                            \
    "  if x then a, lvl = tonumber(x), tonumber(y) end\n"                                          \
    "end\n"                                                                                        \
    "local size = " size "\n"                                                                      \
    "if now > a then\n"                                                                            \
    "  local d = (now - a) * L\n"                                                                  \
    "  if d >= lvl then lvl = 0 else lvl = lvl - d end\n"                                          \
    "  a = now\n"                                                                                  \
    "end\n"                                                                                        \
    "local skew, full = a - now, size * W\n"                                                       \
    "local function left() return lvl < full and idiv(full - lvl, W) or 0 end\n"                   \
    "local cap = size\n"                                                                           \
    "local avail = left()\n"                                                                       \
    "local function take(n)\n"                                                                     \
    "  lvl = lvl + n * W\n"                                                                        \
    "  put(skew + cdiv(lvl, L), '%d %d', a, lvl)\n"                                                \
    "end\n"                                                                                        \
    "local function answer() return left(), (lvl > 0 and skew + cdiv(lvl, L) or 0) end\n"          \
    "local function retry(k) return skew + cdiv(lvl + k * W - full, L) end\n" LUA_EPILOGUE

static const char lua_token_bucket[] = LUA_BUCKET("(B > 0 and B or L)");
static const char lua_leaky_bucket[] = LUA_BUCKET("B + 1");

/* TAT = a + r / L ms (0 ≤ r < L); level = max(TAT − now, 0) × L, one request W units */
static const char lua_gcra[] =
    LUA_PRELUDE "local a, r, s = 0, 0, redis.call('GET', key)\n"
                "if s then\n"
                "  local x, y = string.match(s, '^(%d+) (%d+)$')\n"
                "  if x then a, r = tonumber(x), tonumber(y) end\n"
                "end\n"
                "local lvl = 0\n"
                "if a >= now then lvl = (a - now) * L + r end\n"
                "local full = (B + 1) * W\n"
                "local function left() return lvl < full and idiv(full - lvl, W) or 0 end\n"
                "local cap = B + 1\n"
                "local avail = left()\n"
                "local function take(n)\n"
                "  lvl = lvl + n * W\n"
                "  local q = idiv(lvl, L)\n"
                "  put(cdiv(lvl, L), '%d %d', now + q, lvl - q * L)\n"
                "end\n"
                "local function answer() return left(), cdiv(lvl, L) end\n"
                "local function retry(k) return cdiv(lvl + k * W - full, L) end\n" LUA_EPILOGUE;

static const char *const rl_lua_scripts[RL_ALGORITHMS] = {
    [RL_FIXED_WINDOW] = lua_fixed_window,     [RL_SLIDING_LOG] = lua_sliding_log,
    [RL_SLIDING_WINDOW] = lua_sliding_window, [RL_TOKEN_BUCKET] = lua_token_bucket,
    [RL_LEAKY_BUCKET] = lua_leaky_bucket,     [RL_GCRA] = lua_gcra,
};

/* --- keys and scripts --------------------------------------------------------------- */

static const char *const alg_tag[RL_ALGORITHMS] = {
    [RL_FIXED_WINDOW] = "fw", [RL_SLIDING_LOG] = "sl",  [RL_SLIDING_WINDOW] = "sw",
    [RL_TOKEN_BUCKET] = "tb", [RL_LEAKY_BUCKET] = "lb", [RL_GCRA] = "gcra",
};

/* Written as is: short, printable, and unable to end a hash tag or look hashed. */
static bool name_is_raw(const uint8_t *s, size_t n, bool policy)
{
    if (n > RL_REDIS_NAME_RAW_MAX || (policy && n == 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c < 0x21 || c > 0x7e || c == '{' || c == '}' || c == '#' || (policy && c == ':'))
            return false;
    }
    return true;
}

static size_t put_name(char *out, const void *s, size_t n, bool policy)
{
    if (name_is_raw(s, n, policy)) {
        memcpy(out, s, n);
        return n;
    }
    uint8_t digest[CRYPTO_SHA256_BYTES];
    crypto_sha256(s, n, digest);
    out[0] = '#';
    hex_encode(digest, 16, out + 1);
    return 33;
}

#define KEY_PREFIX "sluice:rl:{"

/* The key, and in *policy_end the length of its "sluice:rl:{POLICY:" prefix. */
static int build_key(const char *policy, const void *key, size_t key_len, enum rl_algorithm alg,
                     char out[RL_REDIS_KEY_MAX], size_t *policy_end)
{
    if (!policy || !policy[0] || (unsigned)alg >= RL_ALGORITHMS || (!key && key_len))
        return SL_EINVAL;
    size_t n = sizeof(KEY_PREFIX) - 1;
    memcpy(out, KEY_PREFIX, n);
    n += put_name(out + n, policy, strlen(policy), true);
    out[n++] = ':';
    if (policy_end)
        *policy_end = n;
    n += put_name(out + n, key, key_len, false);
    out[n++] = '}';
    out[n++] = ':';
    size_t tag = strlen(alg_tag[alg]);
    memcpy(out + n, alg_tag[alg], tag + 1);
    return (int)(n + tag);
}

int rl_redis_key(const char *policy, const void *key, size_t key_len, enum rl_algorithm alg,
                 char out[RL_REDIS_KEY_MAX])
{
    return build_key(policy, key, key_len, alg, out, NULL);
}

const char *rl_redis_script_source(enum rl_algorithm alg)
{
    return (unsigned)alg < RL_ALGORITHMS ? rl_lua_scripts[alg] : NULL;
}

const char *rl_redis_script_sha1(enum rl_algorithm alg, char out[41])
{
    const char *src = rl_redis_script_source(alg);
    if (!src)
        return NULL;
    uint8_t digest[CRYPTO_SHA1_BYTES];
    crypto_sha1(src, strlen(src), digest);
    hex_encode(digest, sizeof(digest), out);
    return out;
}

/* --- requests ----------------------------------------------------------------------- */

static size_t u64_text(uint64_t v, char out[24])
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

static struct script_call *call_get(struct rl_redis *rr)
{
    struct script_call *q = rr->spare;
    if (q) {
        rr->spare = q->next;
        rr->spare_count--;
    } else if (!(q = malloc(sizeof(*q)))) {
        return NULL;
    }
    q->prev = q->next = NULL;
    q->rr = rr;
    q->entry = NULL;
    q->cb = NULL;
    q->arg = NULL;
    q->eval_sent = false;
    return q;
}

static void call_put(struct rl_redis *rr, struct script_call *q)
{
    if (rr->spare_count >= CALL_SPARE_MAX) {
        free(q);
        return;
    }
    q->next = rr->spare;
    rr->spare = q;
    rr->spare_count++;
}

static void pending_link(struct rl_redis *rr, struct script_call *q)
{
    q->prev = NULL;
    q->next = rr->pending;
    if (rr->pending)
        rr->pending->prev = q;
    rr->pending = q;
}

static void pending_unlink(struct rl_redis *rr, struct script_call *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        rr->pending = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
}

/* Fill q's arguments for one call of the algorithm's script. */
static void call_args(struct rl_redis *rr, struct script_call *q, const struct rl_params *p,
                      int key_len, uint64_t cost, uint64_t want)
{
    const uint64_t v[NUMS] = {p->limit, p->window_ms, p->burst, cost, want, rr->fake_now_ms};
    q->alg = p->alg;
    q->argv[ARG_CMD] = "EVALSHA";
    q->argv[ARG_SCRIPT] = rr->sha[p->alg];
    q->argv[ARG_NKEYS] = "1";
    q->argv[ARG_KEY] = q->key;
    q->lens[ARG_CMD] = 7;
    q->lens[ARG_SCRIPT] = 40;
    q->lens[ARG_NKEYS] = 1;
    q->lens[ARG_KEY] = (size_t)key_len;
    for (int i = 0; i < NUMS; i++) {
        q->lens[ARG_LIMIT + i] = u64_text(v[i], q->num[i]);
        q->argv[ARG_LIMIT + i] = q->num[i];
    }
}

static void on_script_reply(const redisReply *reply, int err, void *arg);

static int call_send(struct rl_redis *rr, struct script_call *q)
{
    int rc = evredis_command_argv(rr->r, on_script_reply, q, ARGC, q->argv, q->lens);
    if (rc != 0)
        return rc;
    rr->st.redis_calls++;
    return 0;
}

/* --- answers ------------------------------------------------------------------------ */

static void count_error(struct rl_redis *rr, int err)
{
    switch (err) {
    case SL_ETIMEOUT:
        rr->st.errors_timeout++;
        break;
    case SL_ECONNECT:
    case SL_EAUTH:
        rr->st.errors_connect++;
        break;
    case SL_EGONE:
        rr->st.errors_gone++;
        break;
    case SL_ESTORE:
        rr->st.errors_script++;
        break;
    default:
        rr->st.errors_other++;
        break;
    }
}

static void count_decision(struct rl_redis *rr, const struct rl_decision *d)
{
    rr->st.decisions++;
    if (d->allowed)
        rr->st.allowed++;
    else
        rr->st.denied++;
}

static void log_script_error(struct rl_redis *rr, const struct script_call *q,
                             const redisReply *reply)
{
    uint64_t now = evloop_now_ms(rr->loop);
    if (rr->last_error_log_ms && now - rr->last_error_log_ms < ERROR_LOG_INTERVAL)
        return;
    rr->last_error_log_ms = now;
    log_warn("rate-limit script %s on %s: %s", rl_algorithm_name(q->alg), evredis_url(rr->r),
             reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
}

/* The script's reply: {allowed, limit, remaining, reset_ms, retry_after_ms, granted}. */
static bool parse_reply(const redisReply *reply, struct rl_decision *d, uint64_t *granted)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 6)
        return false;
    long long v[6];
    for (int i = 0; i < 6; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_INTEGER || e->integer < 0)
            return false;
        v[i] = e->integer;
    }
    d->allowed = v[0] != 0;
    d->limit = (uint64_t)v[1];
    d->remaining = (uint64_t)v[2];
    d->reset_ms = (uint64_t)v[3];
    d->retry_after_ms = (uint64_t)v[4];
    *granted = (uint64_t)v[5];
    return true;
}

static bool reply_is_noscript(const redisReply *reply)
{
    return reply && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

static void lease_answer(struct rl_redis *rr, struct lease_entry *e, uint64_t sent_ms,
                         const struct rl_decision *d, uint64_t granted, int err);

static void on_script_reply(const redisReply *reply, int err, void *arg)
{
    struct script_call *q = arg;
    struct rl_redis *rr = q->rr;
    if (!rr) { /* orphaned by rl_redis_free, whose callers were answered then */
        free(q);
        return;
    }
    if (err == 0 && reply_is_noscript(reply) && !q->eval_sent) {
        q->eval_sent = true;
        q->argv[ARG_CMD] = "EVAL";
        q->argv[ARG_SCRIPT] = rl_lua_scripts[q->alg];
        q->lens[ARG_CMD] = 4;
        q->lens[ARG_SCRIPT] = strlen(rl_lua_scripts[q->alg]);
        rr->st.noscript_fallbacks++;
        err = call_send(rr, q);
        if (err == 0)
            return;
        reply = NULL;
    }
    pending_unlink(rr, q);
    struct rl_decision d = {0};
    uint64_t granted = 0;
    if (err == 0 && !parse_reply(reply, &d, &granted)) {
        log_script_error(rr, q, reply);
        err = SL_ESTORE;
    }
    struct lease_entry *e = q->entry;
    rl_redis_fn cb = q->cb;
    void *cb_arg = q->arg;
    uint64_t sent_ms = q->sent_ms;
    call_put(rr, q);
    if (e) {
        lease_answer(rr, e, sent_ms, &d, granted, err);
    } else if (err) {
        count_error(rr, err);
        cb(NULL, err, cb_arg);
    } else {
        count_decision(rr, &d);
        cb(&d, SL_OK, cb_arg);
    }
}

/* --- fast-path table ---------------------------------------------------------------- */

static void lru_unlink(struct lease_entry *e)
{
    e->lru_prev->lru_next = e->lru_next;
    e->lru_next->lru_prev = e->lru_prev;
}

static void lru_push_front(struct rl_redis *rr, struct lease_entry *e)
{
    e->lru_prev = &rr->lru;
    e->lru_next = rr->lru.lru_next;
    rr->lru.lru_next->lru_prev = e;
    rr->lru.lru_next = e;
}

static inline uint64_t rotl64(uint64_t x, int r)
{
    return x << r | x >> (64 - r);
}

static inline uint64_t mix_word(uint64_t h, uint64_t w)
{
    h ^= rotl64(w * 0xC2B2AE3D27D4EB4FULL, 31) * 0x9E3779B185EBCA87ULL;
    return rotl64(h, 27) * 0x9E3779B185EBCA87ULL + 0x85EBCA77C2B2AE63ULL;
}

/* Seeded per rl_redis (xxHash64 rounds, murmur3 fmix64), so clients cannot aim their keys
 * at one hash chain without knowing the seed. Not a MAC. */
static uint64_t key_hash(uint64_t seed, const char *key, size_t len)
{
    uint64_t w, h = mix_word(seed, len);
    for (; len >= 8; key += 8, len -= 8) {
        memcpy(&w, key, 8);
        h = mix_word(h, w);
    }
    if (len) {
        w = 0;
        memcpy(&w, key, len);
        h = mix_word(h, w);
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

static struct lease_entry *entry_find(struct rl_redis *rr, const char *key, size_t len,
                                      uint64_t hash)
{
    for (struct lease_entry *e = rr->buckets[hash & rr->bucket_mask]; e; e = e->hnext)
        if (e->hash == hash && e->key_len == len && memcmp(e->key, key, len) == 0)
            return e;
    return NULL;
}

static void entry_remove(struct rl_redis *rr, struct lease_entry *e)
{
    struct lease_entry **pp = &rr->buckets[e->hash & rr->bucket_mask];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(e);
    rr->nkeys--;
    free(e);
}

/* Make room for one more entry: evict the least recently used idle one. */
static bool entry_make_room(struct rl_redis *rr)
{
    if (rr->nkeys < rr->max_keys)
        return true;
    struct lease_entry *e = rr->lru.lru_prev;
    for (int i = 0; i < EVICT_SCAN_MAX && e != &rr->lru; i++, e = e->lru_prev) {
        if (!e->call) {
            entry_remove(rr, e);
            rr->st.evictions++;
            return true;
        }
    }
    return false;
}

static struct lease_entry *entry_get(struct rl_redis *rr, const char *key, size_t len,
                                     size_t policy_end)
{
    uint64_t hash = key_hash(rr->seed, key, len);
    struct lease_entry *e = entry_find(rr, key, len, hash);
    if (e) {
        lru_unlink(e);
        lru_push_front(rr, e);
        return e;
    }
    if (!entry_make_room(rr) || !(e = calloc(1, sizeof(*e))))
        return NULL;
    e->hash = hash;
    e->key_len = len;
    e->policy_end = policy_end;
    memcpy(e->key, key, len + 1);
    e->hnext = rr->buckets[hash & rr->bucket_mask];
    rr->buckets[hash & rr->bucket_mask] = e;
    lru_push_front(rr, e);
    rr->nkeys++;
    return e;
}

static void entry_clear(struct lease_entry *e)
{
    e->units = 0;
    e->lease_until_ms = e->deny_until_ms = e->reset_at_ms = 0;
    e->remaining = 0;
}

/* --- the lease path ----------------------------------------------------------------- */

static uint64_t lease_slice(const struct rl_redis *rr, const struct rl_params *p)
{
    uint64_t slice = p->limit / ((uint64_t)RL_REDIS_LEASE_DIVISOR * rr->instances);
    return slice ? slice : 1;
}

static uint64_t lease_ttl(const struct rl_redis *rr, const struct rl_params *p)
{
    return rr->lease_ttl_ms && rr->lease_ttl_ms < p->window_ms ? rr->lease_ttl_ms : p->window_ms;
}

static uint64_t until(uint64_t deadline, uint64_t now)
{
    return deadline > now ? deadline - now : 0;
}

/* A decision from the entry's local state at now (after the units were taken). */
static void entry_decision(const struct lease_entry *e, bool allowed, uint64_t now,
                           struct rl_decision *d)
{
    d->allowed = allowed;
    d->limit = e->limit;
    d->remaining = allowed ? e->remaining + e->units : 0;
    d->retry_after_ms = allowed ? 0 : until(e->deny_until_ms, now);
    d->reset_ms = until(e->reset_at_ms, now);
    if (d->reset_ms < d->retry_after_ms)
        d->reset_ms = d->retry_after_ms;
}

/* Answer from the local state if it can: true with *d filled. */
static bool entry_try_local(struct rl_redis *rr, struct lease_entry *e, uint64_t cost, uint64_t now,
                            struct rl_decision *d)
{
    if (e->units && now >= e->lease_until_ms)
        e->units = 0; /* expired unspent: forgotten */
    if (e->units >= cost) {
        e->units -= cost;
        entry_decision(e, true, now, d);
        rr->st.lease_hits++;
        return true;
    }
    if (now < e->deny_until_ms) {
        entry_decision(e, false, now, d);
        rr->st.deny_cache_hits++;
        return true;
    }
    return false;
}

static int lease_call(struct rl_redis *rr, struct lease_entry *e)
{
    struct script_call *q = call_get(rr);
    if (!q)
        return SL_ENOMEM;
    memcpy(q->key, e->key, e->key_len + 1);
    call_args(rr, q, &e->params, (int)e->key_len, 1, lease_slice(rr, &e->params));
    q->entry = e;
    q->sent_ms = evloop_now_ms(rr->loop);
    int rc = call_send(rr, q);
    if (rc != 0) {
        call_put(rr, q);
        return rc;
    }
    pending_link(rr, q);
    e->call = q;
    rr->st.lease_calls++;
    return 0;
}

static void waiter_push(struct lease_entry *e, struct lease_waiter *w)
{
    w->next = NULL;
    if (e->wait_tail)
        e->wait_tail->next = w;
    else
        e->wait_head = w;
    e->wait_tail = w;
    e->waiters++;
}

static struct lease_waiter *waiters_take(struct lease_entry *e)
{
    struct lease_waiter *list = e->wait_head;
    e->wait_head = e->wait_tail = NULL;
    e->waiters = 0;
    return list;
}

/* Call back a detached list whose answers are set; touches no entry (a callback may
 * evict or forget any of them). */
static void waiters_call(struct rl_redis *rr, struct lease_waiter *w)
{
    while (w) {
        struct lease_waiter *next = w->next;
        if (w->err) {
            count_error(rr, w->err);
            w->cb(NULL, w->err, w->arg);
        } else {
            count_decision(rr, &w->d);
            w->cb(&w->d, SL_OK, w->arg);
        }
        free(w);
        w = next;
    }
}

static void waiters_set(struct lease_waiter *w, const struct rl_decision *d, int err)
{
    for (; w; w = w->next) {
        w->err = err;
        if (d)
            w->d = *d;
    }
}

/* Take the entry's state from a lease answer. */
static void entry_update(struct rl_redis *rr, struct lease_entry *e, uint64_t sent_ms,
                         const struct rl_decision *d, uint64_t granted)
{
    e->limit = d->limit;
    e->remaining = d->remaining;
    e->reset_at_ms = sent_ms + d->reset_ms;
    if (granted) {
        if (evloop_now_ms(rr->loop) >= e->lease_until_ms)
            e->units = 0;
        e->units += granted;
        e->lease_until_ms = sent_ms + lease_ttl(rr, &e->params);
        e->deny_until_ms = 0;
        rr->st.leased_units += granted;
    } else {
        e->deny_until_ms = sent_ms + d->retry_after_ms;
    }
}

static void lease_answer(struct rl_redis *rr, struct lease_entry *e, uint64_t sent_ms,
                         const struct rl_decision *d, uint64_t granted, int err)
{
    e->call = NULL;
    struct lease_waiter *list = waiters_take(e), *rest;
    if (err) {
        waiters_set(list, NULL, err);
        waiters_call(rr, list);
        return;
    }
    entry_update(rr, e, sent_ms, d, granted);
    /* The units just granted serve the waiters in order even if the lease has expired by
     * now: Redis counted them when it granted them, and this instance holds one lease at
     * a time, which is all the over-admission bound needs. */
    uint64_t now = evloop_now_ms(rr->loop);
    struct lease_waiter **tail = &list;
    while (*tail && e->units >= (*tail)->cost) {
        e->units -= (*tail)->cost;
        (*tail)->err = 0;
        entry_decision(e, true, now, &(*tail)->d);
        tail = &(*tail)->next;
    }
    rest = *tail;
    *tail = NULL;
    if (rest && granted) { /* served in part: the rest wait for another lease call */
        for (struct lease_waiter *w = rest, *next; w; w = next) {
            next = w->next;
            waiter_push(e, w);
        }
        int rc = lease_call(rr, e);
        rest = rc ? waiters_take(e) : NULL;
        waiters_set(rest, NULL, rc);
    } else if (rest) {
        waiters_set(rest, d, 0); /* denied: retry_after says when a slice is there */
    }
    waiters_call(rr, list);
    waiters_call(rr, rest);
}

/* SL_ENOTFOUND when the table has no room: the caller goes the exact way. */
static int lease_decide(struct rl_redis *rr, const struct rl_params *p, const char *key,
                        size_t key_len, size_t policy_end, uint64_t cost, struct rl_decision *now,
                        rl_redis_fn cb, void *arg)
{
    struct lease_entry *e = entry_get(rr, key, key_len, policy_end);
    if (!e)
        return SL_ENOTFOUND;
    e->params = *p;
    if (!e->call && entry_try_local(rr, e, cost, evloop_now_ms(rr->loop), now)) {
        count_decision(rr, now);
        return RL_REDIS_NOW;
    }
    if (e->waiters >= RL_REDIS_WAITERS_MAX)
        return SL_ETOOBIG;
    struct lease_waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return SL_ENOMEM;
    w->cb = cb;
    w->arg = arg;
    w->cost = cost;
    if (!e->call) {
        int rc = lease_call(rr, e);
        if (rc != 0) {
            free(w);
            return rc;
        }
    }
    waiter_push(e, w);
    return SL_OK;
}

/* --- the exact path and the API ----------------------------------------------------- */

static int exact_decide(struct rl_redis *rr, const struct rl_params *p, const char *key,
                        size_t key_len, uint64_t cost, rl_redis_fn cb, void *arg)
{
    struct script_call *q = call_get(rr);
    if (!q)
        return SL_ENOMEM;
    memcpy(q->key, key, key_len + 1);
    call_args(rr, q, p, (int)key_len, cost, 0);
    q->cb = cb;
    q->arg = arg;
    q->sent_ms = evloop_now_ms(rr->loop);
    int rc = call_send(rr, q);
    if (rc != 0) {
        call_put(rr, q);
        return rc;
    }
    pending_link(rr, q);
    return SL_OK;
}

/* The scripts compute in doubles: the largest level or product, capacity (or limit) ×
 * window_ms, must stay well below 2^53. The window counters multiply nothing. */
bool rl_redis_params_exact(const struct rl_params *p)
{
    if (p->alg == RL_FIXED_WINDOW || p->alg == RL_SLIDING_LOG)
        return true;
    uint64_t cap = rl_capacity(p);
    uint64_t big = cap > p->limit ? cap : p->limit;
    return big <= RL_REDIS_UNITS_MAX / p->window_ms;
}

int rl_redis_decide(struct rl_redis *rr, const struct rl_redis_policy *pol, const void *key,
                    size_t key_len, uint64_t cost, struct rl_decision *now, rl_redis_fn cb,
                    void *arg)
{
    if (!rr || !pol || !now || !cb)
        return SL_EINVAL;
    if (rr->freeing)
        return SL_EGONE;
    const char *why = NULL;
    int rc = rl_params_check(&pol->params, &why);
    if (rc != 0)
        return rc;
    if (!rl_redis_params_exact(&pol->params))
        return SL_ERANGE;
    char k[RL_REDIS_KEY_MAX];
    size_t policy_end = 0;
    int klen = build_key(pol->name, key, key_len, pol->params.alg, k, &policy_end);
    if (klen < 0)
        return klen;
    if (pol->lease && cost <= lease_slice(rr, &pol->params)) {
        rc = lease_decide(rr, &pol->params, k, (size_t)klen, policy_end, cost, now, cb, arg);
        if (rc != SL_ENOTFOUND)
            return rc;
    }
    return exact_decide(rr, &pol->params, k, (size_t)klen, cost, cb, arg);
}

struct rl_redis *rl_redis_new(struct evloop *loop, struct evredis *r,
                              const struct rl_redis_opts *opts)
{
    if (!loop || !r)
        return NULL;
    struct rl_redis *rr = calloc(1, sizeof(*rr));
    if (!rr)
        return NULL;
    rr->loop = loop;
    rr->r = r;
    rr->max_keys = opts && opts->max_keys ? opts->max_keys : RL_REDIS_MAX_KEYS_DEFAULT;
    rr->lease_ttl_ms = opts ? opts->lease_ttl_ms : 0;
    rr->instances = opts && opts->instances ? opts->instances : 1;
    size_t nb = 16;
    while (nb < rr->max_keys && nb < (SIZE_MAX >> 2))
        nb <<= 1;
    rr->buckets = calloc(nb, sizeof(*rr->buckets));
    if (!rr->buckets) {
        free(rr);
        return NULL;
    }
    rr->bucket_mask = nb - 1;
    rr->seed = rng_u64();
    rr->lru.lru_next = rr->lru.lru_prev = &rr->lru;
    for (int a = 0; a < RL_ALGORITHMS; a++)
        rl_redis_script_sha1((enum rl_algorithm)a, rr->sha[a]);
    return rr;
}

void rl_redis_free(struct rl_redis *rr)
{
    if (!rr)
        return;
    rr->freeing = true;
    while (rr->pending) {
        struct script_call *q = rr->pending;
        pending_unlink(rr, q);
        q->rr = NULL; /* orphaned: the evredis callback frees it */
        if (q->entry) {
            q->entry->call = NULL;
            struct lease_waiter *list = waiters_take(q->entry);
            waiters_set(list, NULL, SL_EGONE);
            waiters_call(rr, list);
        } else {
            count_error(rr, SL_EGONE);
            q->cb(NULL, SL_EGONE, q->arg);
        }
    }
    while (rr->lru.lru_next != &rr->lru)
        entry_remove(rr, rr->lru.lru_next);
    while (rr->spare) {
        struct script_call *q = rr->spare;
        rr->spare = q->next;
        free(q);
    }
    free(rr->buckets);
    free(rr);
}

void rl_redis_set_instances(struct rl_redis *rr, unsigned instances)
{
    rr->instances = instances ? instances : 1;
}

void rl_redis_forget(struct rl_redis *rr, const char *name)
{
    char prefix[RL_REDIS_KEY_MAX];
    size_t plen = 0;
    if (name && build_key(name, "", 0, RL_FIXED_WINDOW, prefix, &plen) < 0)
        return;
    for (struct lease_entry *e = rr->lru.lru_next, *next; e != &rr->lru; e = next) {
        next = e->lru_next;
        if (name && (e->policy_end != plen || memcmp(e->key, prefix, plen) != 0))
            continue;
        if (e->call)
            entry_clear(e); /* the call in flight still answers its waiters */
        else
            entry_remove(rr, e);
    }
}

void rl_redis_fake_now(struct rl_redis *rr, uint64_t now_ms)
{
    rr->fake_now_ms = now_ms;
}

void rl_redis_get_stats(const struct rl_redis *rr, struct rl_redis_stats *out)
{
    *out = rr->st;
    out->keys = rr->nkeys;
}
