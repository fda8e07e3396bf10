/*
 * store_redis — the hiredis adapter (STYLE.md "Adapters"): a pool of blocking
 * connections and Lua scripts with EVALSHA → EVAL fallback.
 *
 * Where it sits: every program that keeps state in Redis (agents' limiters and registry,
 * the control plane, the sample API and worker) holds one struct redis_pool per Redis URL
 * and runs commands through it from any thread. Modules that run commands are Redis
 * adapters themselves, so this header includes <hiredis/hiredis.h>.
 *
 * Contract:
 *  - Connecting is lazy: redis_pool_new only parses the URL, so a program whose Redis is
 *    down still starts; each redis_pool_get connects when no idle connection is left.
 *  - Every connection has a connect timeout and a command (read/write) timeout
 *    (DESIGN.md §3), and is authenticated (AUTH [user] password) and switched to the
 *    URL's db (SELECT) before it is handed out. Name resolution (getaddrinfo) is not
 *    bounded by the timeout: prefer addresses over names for Redis.
 *  - Failures return NULL (get, command) or false (ping) and are logged with log.h at
 *    most once per REDIS_LOG_INTERVAL_MS per pool (the line says how many were
 *    suppressed); the first success after a failure is logged once. A reply of type
 *    REDIS_REPLY_ERROR is a reply, not a failure: the caller gets it.
 *  - Connections taken with redis_pool_get must come back through redis_pool_put (or be
 *    redisFree'd) with no replies outstanding; a context with c->err set is freed, never
 *    reused. An idle connection the server has closed (restart, CLIENT KILL, idle
 *    timeout) is noticed before reuse (a zero-timeout poll) and replaced.
 *  - Bounded: at most max_idle idle connections are kept; extras are closed. The number
 *    of connections in use is bounded by the number of callers (threads) only.
 *  - Thread-safe: a mutex guards the idle list and is never held during I/O.
 *  - hiredis writes with write(2): programs must ignore SIGPIPE, or a write to a
 *    connection the server just closed kills the process.
 *  - Lua scripts (struct redis_script) are shared by any number of threads and
 *    connections: the SHA1 is computed once (crypto.h), EVALSHA is sent, and a NOSCRIPT
 *    reply (empty script cache after a restart or failover, REFERENCE.md) is answered by
 *    EVAL, which also loads the script again.
 */
#ifndef SLUICE_STORE_REDIS_H
#define SLUICE_STORE_REDIS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define REDIS_CONNECT_TIMEOUT_MS_DEFAULT 500
#define REDIS_COMMAND_TIMEOUT_MS_DEFAULT 1000
#define REDIS_MAX_IDLE_DEFAULT           16
#define REDIS_MAX_IDLE_LIMIT             1024 /* larger max_idle values are cut to this */
#define REDIS_LOG_INTERVAL_MS            1000 /* at most one failure line per pool per interval */
#define REDIS_SCRIPT_MAX_ARGS            128  /* keys + arguments of one script call */

struct redis_opts {
    unsigned connect_timeout_ms; /* 0 = REDIS_CONNECT_TIMEOUT_MS_DEFAULT */
    unsigned command_timeout_ms; /* 0 = REDIS_COMMAND_TIMEOUT_MS_DEFAULT */
    unsigned max_idle;           /* idle connections kept; 0 = REDIS_MAX_IDLE_DEFAULT */
};

struct redis_pool;

/* Parse url (redis_url.h) and make a pool; opts NULL = defaults. Does not connect.
 * NULL with a message in err (may be NULL) on a bad URL or out of memory. */
struct redis_pool *redis_pool_new(const char *url, const struct redis_opts *opts, char err[128]);
/* Close the idle connections and free the pool. Every connection taken with
 * redis_pool_get must have been returned first. NULL is a no-op. */
void redis_pool_free(struct redis_pool *p);

/* An idle connection, or a new one (connected, timeouts set, AUTH and SELECT done).
 * NULL when Redis cannot be reached or refuses AUTH/SELECT. */
redisContext *redis_pool_get(struct redis_pool *p);
/* Give c back: kept idle (up to max_idle), or freed if c->err is set, if it has unsent
 * or unread data, or if the idle list is full. NULL c is a no-op. */
void redis_pool_put(struct redis_pool *p, redisContext *c);

/* get + redisvCommand + put. hiredis format (%s, %b with pointer and size_t length, %d,
 * %lld, ...). NULL on any connection failure; the caller frees the reply with
 * freeReplyObject. */
redisReply *redis_pool_command(struct redis_pool *p, const char *fmt, ...);
/* The same with binary-safe arguments (argvlen NULL = strlen of each). */
redisReply *redis_pool_command_argv(struct redis_pool *p, int argc, const char **argv,
                                    const size_t *argvlen);
/* True when PING answers PONG within the pool's timeouts. */
bool redis_pool_ping(struct redis_pool *p);
/* The URL without the password, for logs and status pages. */
const char *redis_pool_url(const struct redis_pool *p);

/* A Lua script. source must outlive the struct (a string literal, typically). Either
 * redis_script_init() it before threads share it, or define it with REDIS_SCRIPT_INIT:
 *   static struct redis_script incr_capped = REDIS_SCRIPT_INIT("return ...");
 * in which case the SHA1 is computed on first use. */
struct redis_script {
    const char *source;
    char sha1[41];                           /* lowercase hex; valid once state is READY */
    atomic_int state;                        /* private: REDIS_SCRIPT_* below */
    atomic_uint_fast64_t noscript_fallbacks; /* EVALSHA answered NOSCRIPT → EVAL sent */
};

#define REDIS_SCRIPT_NEW     0 /* sha1 not computed yet */
#define REDIS_SCRIPT_HASHING 1 /* one thread is computing it; others send EVAL */
#define REDIS_SCRIPT_READY   2 /* sha1 valid and immutable */
#define REDIS_SCRIPT_INIT(src)                                                                     \
    {                                                                                              \
        .source = (src), .sha1 = "", .state = REDIS_SCRIPT_NEW                                     \
    }

void redis_script_init(struct redis_script *s, const char *source);
/* Run s on c: args holds nkeys keys and then nargs arguments (arglens NULL = strlen of
 * each); nkeys + nargs ≤ REDIS_SCRIPT_MAX_ARGS. EVALSHA, then EVAL on NOSCRIPT. Returns
 * the reply (possibly REDIS_REPLY_ERROR, e.g. from redis.error_reply), or NULL on a
 * connection failure (c->err set) or bad counts (c untouched). */
redisReply *redis_script_eval(redisContext *c, struct redis_script *s, int nkeys, int nargs,
                              const char **args, const size_t *arglens);
/* The same on a connection from p (get + eval + put). */
redisReply *redis_script_eval_pool(struct redis_pool *p, struct redis_script *s, int nkeys,
                                   int nargs, const char **args, const size_t *arglens);

#endif
