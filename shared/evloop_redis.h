/*
 * evloop_redis — asynchronous Redis on an evloop (evloop.h): the hiredis async adapter
 * (STYLE.md "Adapters"; the only file that includes <hiredis/async.h>) plus what hiredis
 * 0.14's async API lacks: command and connect timeouts, reconnection with back-off, and
 * a callback guarantee that makes it safe to free things.
 *
 * Where it sits: each data-plane worker thread holds one struct evredis per Redis URL on
 * its own loop (limiter scripts, cache tier, registry writes), so a Redis round trip costs
 * no thread hand-off. Blocking callers use store_redis.h instead.
 *
 * Contract:
 *  - Every evredis_command* that returns 0 calls its callback exactly once, later, from
 *    the loop, never from inside evredis_command*: cb(reply, 0, arg) with the reply
 *    (possibly REDIS_REPLY_ERROR, which is a reply, not a failure), or cb(NULL, err, arg)
 *    with err one of
 *      SL_ETIMEOUT  this command got no reply within command_timeout_ms;
 *      SL_ECONNECT  Redis is down or in back-off (failed fast, on the next iteration), or
 *                   the connection broke or was dropped with this command outstanding
 *                   (also when another command on it timed out);
 *      SL_EAUTH     the AUTH or SELECT that the URL asks for was refused;
 *      SL_EGONE     evredis_free was called (the callback runs inside evredis_free).
 *    A command that returns an error (SL_EINVAL for a bad format or arguments, SL_ENOMEM,
 *    SL_ETOOBIG beyond EVREDIS_PENDING_MAX outstanding, SL_EGONE from a callback during
 *    evredis_free) never calls its callback. The reply belongs to hiredis and is valid
 *    only during the callback. Callbacks may issue commands and may call evredis_free.
 *  - Timeouts: each command has its own timer from the moment it is issued. On expiry
 *    the connection is dropped (freed, not gracefully closed), so a late reply can never
 *    reach a caller that has moved on; the other commands on it fail with SL_ECONNECT.
 *    Connecting (TCP connect plus AUTH/SELECT) has its own connect_timeout_ms.
 *  - Connection state: connected → (broken by the server or the network) → down, and the
 *    next command reconnects at once; a failed connect, a refused AUTH/SELECT or a command
 *    timeout start a back-off of EVREDIS_BACKOFF_MIN_MS doubling to EVREDIS_BACKOFF_MAX_MS
 *    during which commands fail fast with SL_ECONNECT and nothing is dialled. Reconnection
 *    is lazy: the first command after the back-off (or evredis_connect) dials. A success
 *    resets the back-off. Down/up transitions are logged once each (log.h), without the
 *    password.
 *  - Commands issued while connecting are queued in order behind AUTH and SELECT.
 *  - Fast path: commands issued during one loop iteration go out in one write(2) at its
 *    end (a deferred flush), and the socket is watched for writing only when the kernel
 *    buffer is full, so a steady request/reply stream costs no epoll_ctl.
 *  - Not for SUBSCRIBE/PSUBSCRIBE/MONITOR (their replies are not one per command).
 *  - Name resolution (getaddrinfo for a host name) blocks the loop: use addresses.
 *  - hiredis writes with write(2): programs must ignore SIGPIPE.
 *
 * Ownership and threading: the evredis belongs to one loop and its thread; free it before
 * the loop. Nothing here is thread-safe.
 */
#ifndef SLUICE_EVLOOP_REDIS_H
#define SLUICE_EVLOOP_REDIS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "evloop.h"

#define EVREDIS_CONNECT_TIMEOUT_MS_DEFAULT 500
#define EVREDIS_COMMAND_TIMEOUT_MS_DEFAULT 1000
#define EVREDIS_BACKOFF_MIN_MS             100
#define EVREDIS_BACKOFF_MAX_MS             5000
#define EVREDIS_PENDING_MAX                65536 /* outstanding commands (SL_ETOOBIG beyond) */

struct evredis;

/* reply non-NULL and err 0, or reply NULL and err a negative SL_E code (see the top). */
typedef void (*evredis_reply_fn)(const redisReply *reply, int err, void *arg);

struct evredis_stats {
    uint64_t commands;    /* accepted (returned 0) */
    uint64_t replies;     /* callbacks with a reply */
    uint64_t timeouts;    /* callbacks with SL_ETIMEOUT */
    uint64_t failures;    /* callbacks with any other error */
    uint64_t connects;    /* connection attempts */
    uint64_t connects_ok; /* attempts that became ready (AUTH/SELECT done) */
};

/* Parse redis_url (redis_url.h), start connecting (without blocking) and return the
 * handle; timeouts of 0 take the defaults above. NULL with a message in err (may be NULL)
 * for a bad URL, a NULL loop or out of memory. An unreachable Redis is not an error here. */
struct evredis *evredis_new(struct evloop *loop, const char *redis_url, unsigned connect_timeout_ms,
                            unsigned command_timeout_ms, char err[128]);
/* Call every outstanding callback with (NULL, SL_EGONE), close the connection and free r.
 * May be called from any callback of r. NULL is a no-op. */
void evredis_free(struct evredis *r);

/* Send a command in hiredis format (%s, %b with pointer and size_t length, %d, %lld...). */
int evredis_command(struct evredis *r, evredis_reply_fn cb, void *arg, const char *fmt, ...);
int evredis_vcommand(struct evredis *r, evredis_reply_fn cb, void *arg, const char *fmt,
                     va_list ap);
/* Binary-safe arguments (argvlen NULL = strlen of each); argc >= 1. */
int evredis_command_argv(struct evredis *r, evredis_reply_fn cb, void *arg, int argc,
                         const char **argv, const size_t *argvlen);

/* Dial now unless connected or connecting: 0, or SL_ECONNECT when in back-off or the
 * attempt failed at once. For readiness checks; commands dial on their own. */
int evredis_connect(struct evredis *r);
/* Connected, with AUTH/SELECT done. */
bool evredis_is_connected(const struct evredis *r);
/* The URL without the password, for logs and status pages. */
const char *evredis_url(const struct evredis *r);
void evredis_get_stats(const struct evredis *r, struct evredis_stats *out);

#endif
