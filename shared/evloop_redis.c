/*
 * evloop_redis — see evloop_redis.h for the contract. How it is built:
 *
 *  - struct evredis_conn wraps one redisAsyncContext. hiredis calls our ev hooks with it,
 *    and it outlives the context: the cleanup hook (run by hiredis whenever it frees a
 *    context, whatever the reason) marks it dead, and it is freed when the last of our
 *    frames that called into hiredis with it returns (depth), so no hook, callback or
 *    caller up the stack ever touches freed memory.
 *  - A connection is detached from its evredis (owner = NULL, r->conn = NULL, back-off
 *    state updated) as soon as we decide to drop it or learn that hiredis is tearing it
 *    down, so commands issued from callbacks during a teardown go to a new connection or
 *    fail fast, never to the dying one.
 *  - struct evredis_cmd is the per-command record: hiredis holds it as privdata until it
 *    calls reply_cb (with a reply, or NULL when it frees the context), which is where it
 *    is freed. Delivery to the caller is a separate, idempotent step (cmd_deliver), so a
 *    timeout or evredis_free can answer a caller before hiredis lets go of the record.
 *    Commands that fail fast never reach hiredis and sit in failq until a deferred call.
 *  - hiredis never frees a context re-entrantly from inside one of its reply callbacks
 *    (REDIS_IN_CALLBACK makes redisAsyncFree wait until the callback returns); we never
 *    free one from its connect callback, where hiredis 0.14 does not protect itself.
 */
#include "evloop_redis.h"

#include <hiredis/async.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "redis_url.h"

#define URL_TEXT_MAX 400

struct evredis_cmd;

struct cmd_list {
    struct evredis_cmd *head, *tail;
    unsigned len;
};

struct evredis_cmd {
    struct evredis_cmd *prev, *next;
    struct cmd_list *list;     /* inflight or failq of owner; NULL once delivered */
    struct evredis *owner;     /* NULL once delivered */
    struct evredis_conn *conn; /* the connection it was sent on (inflight only) */
    evredis_reply_fn cb;
    void *arg;
    uint64_t timer_id;
    bool timed_out;
};

struct evredis_conn {
    struct evredis *owner; /* NULL once detached */
    struct evloop *loop;
    redisAsyncContext *ac; /* NULL once hiredis freed it */
    int fd;                /* watched fd, or -1 */
    unsigned want;         /* EV_READ|EV_WRITE asked of the loop */
    uint64_t connect_timer;
    uint64_t flush_id;
    int depth;          /* our frames inside hiredis with this connection */
    int drop_err;       /* what outstanding commands get when we drop it (0: SL_ECONNECT) */
    int handshake_left; /* AUTH/SELECT replies still awaited */
    bool ready, dropping, in_flush;
};

struct evredis {
    struct evloop *loop;
    struct redis_url url;
    char url_text[URL_TEXT_MAX];
    unsigned connect_timeout_ms, command_timeout_ms;
    struct evredis_conn *conn; /* connecting or connected; NULL when down */
    struct cmd_list inflight, failq;
    uint64_t failq_defer;
    uint64_t retry_at_ms; /* no dialling before this (back-off) */
    unsigned failures;    /* consecutive failed attempts */
    int depth;            /* our frames that touch r after calling back */
    bool freed;
    bool down_logged;
    struct evredis_stats stats;
};

static const char hs_auth[] = "AUTH", hs_select[] = "SELECT";

/* --- command records --------------------------------------------------------------- */

static void cmd_list_push(struct cmd_list *l, struct evredis_cmd *c)
{
    c->list = l;
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->len++;
}

static void cmd_list_unlink(struct evredis_cmd *c)
{
    struct cmd_list *l = c->list;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    l->len--;
    c->list = NULL;
    c->prev = c->next = NULL;
}

/* Answer the caller, once: later calls for the same record do nothing. */
static void cmd_deliver(struct evredis_cmd *c, const redisReply *reply, int err)
{
    struct evredis *r = c->owner;
    if (!r)
        return;
    c->owner = NULL;
    if (c->timer_id)
        evloop_cancel(r->loop, c->timer_id);
    c->timer_id = 0;
    cmd_list_unlink(c);
    if (reply)
        r->stats.replies++;
    else if (err == SL_ETIMEOUT)
        r->stats.timeouts++;
    else
        r->stats.failures++;
    c->cb(reply, err, c->arg); /* r may be freed from here on */
}

static void evredis_leave(struct evredis *r)
{
    if (--r->depth == 0 && r->freed)
        free(r);
}

/* --- connection state -------------------------------------------------------------- */

static void conn_enter(struct evredis_conn *conn)
{
    conn->depth++;
}

static void conn_leave(struct evredis_conn *conn)
{
    if (--conn->depth == 0 && conn->ac == NULL)
        free(conn);
}

static void backoff_fail(struct evredis *r, const char *reason)
{
    unsigned shift = r->failures < 16 ? r->failures : 16;
    uint64_t delay_ms = (uint64_t)EVREDIS_BACKOFF_MIN_MS << shift;
    if (delay_ms > EVREDIS_BACKOFF_MAX_MS)
        delay_ms = EVREDIS_BACKOFF_MAX_MS;
    r->failures++;
    r->retry_at_ms = evloop_now_ms(r->loop) + delay_ms;
    if (!r->down_logged)
        log_warn("redis %s unavailable (%s); retrying with back-off", r->url_text, reason);
    r->down_logged = true;
}

/* Take conn away from its owner: from now on commands dial anew or fail fast. */
static void conn_detach(struct evredis_conn *conn, bool failure, const char *reason)
{
    struct evredis *r = conn->owner;
    if (!r)
        return;
    conn->owner = NULL;
    if (r->conn == conn)
        r->conn = NULL;
    evloop_cancel(conn->loop, conn->connect_timer);
    conn->connect_timer = 0;
    if (failure) {
        backoff_fail(r, reason);
        return;
    }
    r->retry_at_ms = evloop_now_ms(r->loop); /* a healthy connection broke: redial now */
    log_warn("redis %s connection lost (%s)", r->url_text, reason);
    r->down_logged = true;
}

static const char *conn_reason(const struct evredis_conn *conn)
{
    if (conn->ac && conn->ac->c.err)
        return conn->ac->c.errstr;
    return "connection closed";
}

/* Free the context (deferred by hiredis until its callback returns, when inside one):
 * every command still on it is answered with drop_err (or SL_ETIMEOUT if it timed out). */
static void conn_drop(struct evredis_conn *conn, int err, bool failure, const char *reason)
{
    if (!conn->ac || conn->dropping)
        return;
    conn->dropping = true;
    conn->drop_err = err;
    conn_detach(conn, failure, reason);
    conn_enter(conn);
    redisAsyncFree(conn->ac);
    conn_leave(conn);
}

static void conn_ready(struct evredis_conn *conn)
{
    struct evredis *r = conn->owner;
    if (!r || conn->dropping || conn->ready)
        return;
    conn->ready = true;
    evloop_cancel(conn->loop, conn->connect_timer);
    conn->connect_timer = 0;
    r->failures = 0;
    r->stats.connects_ok++;
    if (r->down_logged)
        log_info("redis %s connected", r->url_text);
    r->down_logged = false;
}

static void conn_want(struct evredis_conn *conn, unsigned want)
{
    conn->want = want;
    int rc = evloop_watch_mod(conn->loop, conn->fd, want);
    if (rc != 0) /* the commands' timers will drop this connection */
        log_error("redis: cannot watch fd %d: %s", conn->fd, err_str(rc));
}

/* --- hiredis ev hooks -------------------------------------------------------------- */

static void conn_flush(struct evloop *loop, void *arg)
{
    (void)loop;
    struct evredis_conn *conn = arg;
    conn->flush_id = 0;
    if (!conn->ac || conn->dropping)
        return;
    conn_enter(conn);
    conn->in_flush = true;
    redisAsyncHandleWrite(conn->ac); /* EAGAIN: it calls addWrite, which now watches */
    conn->in_flush = false;
    conn_leave(conn);
}

static void hook_add_read(void *data)
{
    struct evredis_conn *conn = data;
    if (!conn->ac)
        return; /* after cleanup (newer hiredis runs callbacks then) */
    if (!(conn->want & EV_READ))
        conn_want(conn, conn->want | EV_READ);
}

static void hook_del_read(void *data)
{
    struct evredis_conn *conn = data;
    if (!conn->ac)
        return;
    if (conn->want & EV_READ)
        conn_want(conn, conn->want & ~EV_READ);
}

/* While connecting, or when a write would block, wait for EPOLLOUT; otherwise write at
 * the end of this iteration, batching every command issued until then. */
static void hook_add_write(void *data)
{
    struct evredis_conn *conn = data;
    if (!conn->ac)
        return;
    if (conn->want & EV_WRITE)
        return;
    if (conn->in_flush || !(conn->ac->c.flags & REDIS_CONNECTED)) {
        conn_want(conn, conn->want | EV_WRITE);
        return;
    }
    if (conn->flush_id && evloop_is_pending(conn->loop, conn->flush_id))
        return;
    if (evloop_defer(conn->loop, conn_flush, conn, &conn->flush_id) != 0)
        conn_want(conn, conn->want | EV_WRITE);
}

static void hook_del_write(void *data)
{
    struct evredis_conn *conn = data;
    if (!conn->ac)
        return;
    if (conn->want & EV_WRITE)
        conn_want(conn, conn->want & ~EV_WRITE);
}

/* hiredis is freeing the context (our drop, a broken socket, a failed connect). */
static void hook_cleanup(void *data)
{
    struct evredis_conn *conn = data;
    if (!conn->ac)
        return; /* newer hiredis may call it twice */
    conn_detach(conn, !conn->ready, conn_reason(conn));
    if (conn->fd >= 0)
        evloop_watch_del(conn->loop, conn->fd);
    conn->fd = -1;
    evloop_cancel(conn->loop, conn->flush_id);
    evloop_cancel(conn->loop, conn->connect_timer);
    conn->flush_id = conn->connect_timer = 0;
    conn->ac = NULL; /* freed by conn_leave in the frame that called hiredis */
}

static void conn_io(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    struct evredis_conn *conn = arg;
    conn_enter(conn);
    if ((events & EV_READ) && conn->ac)
        redisAsyncHandleRead(conn->ac);
    if ((events & EV_WRITE) && conn->ac)
        redisAsyncHandleWrite(conn->ac);
    conn_leave(conn);
}

/* --- hiredis callbacks ------------------------------------------------------------- */

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct evredis_conn *conn = ac->data;
    /* On failure hiredis frees the context right after this returns; the cleanup hook
     * records the failure. Never free here. */
    if (status == REDIS_OK && conn->handshake_left == 0)
        conn_ready(conn);
}

static void handshake_reply(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
    struct evredis_conn *conn = ac->data;
    const redisReply *reply = reply_ptr;
    const char *what = privdata;
    if (!reply || conn->dropping || !conn->owner)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        log_error("redis %s refused %s: %s", conn->owner->url_text, what, reply->str);
        conn_drop(conn, SL_EAUTH, true, what == hs_auth ? "AUTH refused" : "SELECT refused");
        return;
    }
    if (--conn->handshake_left == 0)
        conn_ready(conn);
}

static void reply_cb(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
    struct evredis_conn *conn = ac->data;
    struct evredis_cmd *c = privdata;
    const redisReply *reply = reply_ptr;
    int err = 0;
    if (!reply) {
        /* hiredis is tearing the context down: detach before anyone is called back. */
        conn_detach(conn, !conn->ready, conn_reason(conn));
        err = c->timed_out ? SL_ETIMEOUT : conn->drop_err ? conn->drop_err : SL_ECONNECT;
    }
    cmd_deliver(c, reply, err);
    free(c);
}

static void cmd_timeout(struct evloop *loop, void *arg)
{
    (void)loop;
    struct evredis_cmd *c = arg;
    struct evredis_conn *conn = c->conn;
    c->timer_id = 0;
    c->timed_out = true;
    if (conn && conn->ac && !conn->dropping)
        conn_drop(conn, SL_ECONNECT, true, "command timed out"); /* answers c too */
    else
        cmd_deliver(c, NULL, SL_ETIMEOUT);
}

static void connect_timeout(struct evloop *loop, void *arg)
{
    (void)loop;
    struct evredis_conn *conn = arg;
    conn->connect_timer = 0;
    conn_drop(conn, SL_ECONNECT, true, "connect timed out");
}

/* --- dialling ---------------------------------------------------------------------- */

static redisAsyncContext *dial(const struct redis_url *u)
{
    if (u->unix_path[0])
        return redisAsyncConnectUnix(u->unix_path);
    return redisAsyncConnect(u->host, u->port);
}

static void conn_attach(struct evredis_conn *conn, redisAsyncContext *ac)
{
    conn->ac = ac;
    ac->data = conn;
    ac->ev.data = conn;
    ac->ev.addRead = hook_add_read;
    ac->ev.delRead = hook_del_read;
    ac->ev.addWrite = hook_add_write;
    ac->ev.delWrite = hook_del_write;
    ac->ev.cleanup = hook_cleanup;
}

/* Queue AUTH and SELECT as the URL asks, and arm the connect timer. */
static int conn_start(struct evredis_conn *conn, const struct evredis *r)
{
    const struct redis_url *u = &r->url;
    redisAsyncContext *ac = conn->ac;
    if (redisAsyncSetConnectCallback(ac, on_connect) != REDIS_OK)
        return SL_ENOMEM;
    int rc = REDIS_OK;
    if (u->password[0] && u->user[0])
        rc = redisAsyncCommand(ac, handshake_reply, (void *)hs_auth, "AUTH %s %s", u->user,
                               u->password);
    else if (u->password[0])
        rc = redisAsyncCommand(ac, handshake_reply, (void *)hs_auth, "AUTH %s", u->password);
    conn->handshake_left += u->password[0] ? 1 : 0;
    if (rc == REDIS_OK && u->db != 0) {
        rc = redisAsyncCommand(ac, handshake_reply, (void *)hs_select, "SELECT %d", u->db);
        conn->handshake_left++;
    }
    if (rc != REDIS_OK)
        return SL_ENOMEM;
    return evloop_timer_add(conn->loop, r->connect_timeout_ms, 0, connect_timeout, conn,
                            &conn->connect_timer);
}

static void dial_failed(struct evredis *r, redisAsyncContext *ac, const char *reason)
{
    char why[128];
    snprintf(why, sizeof(why), "%s", ac && ac->err ? ac->errstr : reason);
    if (ac)
        redisAsyncFree(ac);
    backoff_fail(r, why);
}

/* Start a connection; on failure r->conn stays NULL and back-off is armed. */
static void conn_open(struct evredis *r)
{
    r->stats.connects++;
    redisAsyncContext *ac = dial(&r->url);
    if (!ac || ac->err) {
        dial_failed(r, ac, "out of memory");
        return;
    }
    struct evredis_conn *conn = calloc(1, sizeof(*conn));
    if (!conn) {
        dial_failed(r, ac, "out of memory");
        return;
    }
    conn->loop = r->loop;
    conn->fd = -1;
    int rc = evloop_watch_add(r->loop, ac->c.fd, 0, conn_io, conn);
    if (rc != 0) {
        free(conn);
        dial_failed(r, ac, err_str(rc));
        return;
    }
    conn->fd = ac->c.fd;
    conn->owner = r;
    r->conn = conn;
    conn_attach(conn, ac);
    conn_enter(conn);
    rc = conn_start(conn, r);
    if (rc != 0)
        conn_drop(conn, SL_ECONNECT, true, err_str(rc));
    conn_leave(conn);
}

int evredis_connect(struct evredis *r)
{
    if (r->freed)
        return SL_EGONE;
    if (!r->conn && evloop_now_ms(r->loop) >= r->retry_at_ms)
        conn_open(r);
    return r->conn ? 0 : SL_ECONNECT;
}

/* --- commands ---------------------------------------------------------------------- */

static void failq_drain(struct evloop *loop, void *arg)
{
    (void)loop;
    struct evredis *r = arg;
    r->failq_defer = 0;
    unsigned n = r->failq.len; /* ones queued by these callbacks wait for the next drain */
    r->depth++;
    while (n-- > 0 && r->failq.head && !r->freed) {
        struct evredis_cmd *c = r->failq.head;
        cmd_deliver(c, NULL, SL_ECONNECT);
        free(c);
    }
    evredis_leave(r);
}

static int fail_fast(struct evredis *r, struct evredis_cmd *c)
{
    if (!r->failq_defer && evloop_defer(r->loop, failq_drain, r, &r->failq_defer) != 0)
        return SL_ENOMEM;
    cmd_list_push(&r->failq, c);
    return 0;
}

static int send_on_conn(struct evredis *r, struct evredis_cmd *c, const char *buf, int len)
{
    struct evredis_conn *conn = r->conn;
    int rc = evloop_timer_add(r->loop, r->command_timeout_ms, 0, cmd_timeout, c, &c->timer_id);
    if (rc != 0)
        return rc;
    if (redisAsyncFormattedCommand(conn->ac, reply_cb, c, buf, (size_t)len) != REDIS_OK) {
        evloop_cancel(r->loop, c->timer_id);
        c->timer_id = 0;
        return SL_ECONNECT;
    }
    c->conn = conn;
    cmd_list_push(&r->inflight, c);
    return 0;
}

/* Takes a formatted command (len < 0: hiredis' format error code) and frees buf. */
static int submit(struct evredis *r, evredis_reply_fn cb, void *arg, char *buf, int len)
{
    int rc = len == -1 ? SL_ENOMEM : len < 0 ? SL_EINVAL : 0;
    if (rc == 0 && r->inflight.len + r->failq.len >= EVREDIS_PENDING_MAX)
        rc = SL_ETOOBIG;
    struct evredis_cmd *c = rc == 0 ? calloc(1, sizeof(*c)) : NULL;
    if (rc == 0 && !c)
        rc = SL_ENOMEM;
    if (rc == 0) {
        *c = (struct evredis_cmd){.owner = r, .cb = cb, .arg = arg};
        evredis_connect(r);
        rc = r->conn ? send_on_conn(r, c, buf, len) : SL_ECONNECT;
        if (rc == SL_ECONNECT)
            rc = fail_fast(r, c);
        if (rc != 0)
            free(c);
        else
            r->stats.commands++;
    }
    if (len > 0)
        redisFreeCommand(buf);
    return rc;
}

int evredis_vcommand(struct evredis *r, evredis_reply_fn cb, void *arg, const char *fmt, va_list ap)
{
    if (!r || !cb || !fmt)
        return SL_EINVAL;
    if (r->freed)
        return SL_EGONE;
    char *buf = NULL;
    int len = redisvFormatCommand(&buf, fmt, ap);
    return submit(r, cb, arg, buf, len);
}

int evredis_command(struct evredis *r, evredis_reply_fn cb, void *arg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = evredis_vcommand(r, cb, arg, fmt, ap);
    va_end(ap);
    return rc;
}

int evredis_command_argv(struct evredis *r, evredis_reply_fn cb, void *arg, int argc,
                         const char **argv, const size_t *argvlen)
{
    if (!r || !cb || argc < 1 || !argv)
        return SL_EINVAL;
    if (r->freed)
        return SL_EGONE;
    char *buf = NULL;
    int len = redisFormatCommandArgv(&buf, argc, argv, argvlen);
    return submit(r, cb, arg, buf, len);
}

/* --- lifetime and queries ---------------------------------------------------------- */

struct evredis *evredis_new(struct evloop *loop, const char *redis_url, unsigned connect_timeout_ms,
                            unsigned command_timeout_ms, char err[128])
{
    char scratch[128];
    char *msg = err ? err : scratch;
    if (!loop) {
        snprintf(msg, 128, "no event loop");
        return NULL;
    }
    struct evredis *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(msg, 128, "out of memory");
        return NULL;
    }
    if (redis_url_parse(redis_url, &r->url, msg) != 0) {
        free(r);
        return NULL;
    }
    redis_url_format(&r->url, r->url_text, sizeof(r->url_text));
    r->loop = loop;
    r->connect_timeout_ms =
        connect_timeout_ms ? connect_timeout_ms : EVREDIS_CONNECT_TIMEOUT_MS_DEFAULT;
    r->command_timeout_ms =
        command_timeout_ms ? command_timeout_ms : EVREDIS_COMMAND_TIMEOUT_MS_DEFAULT;
    evredis_connect(r);
    return r;
}

void evredis_free(struct evredis *r)
{
    if (!r || r->freed)
        return;
    r->freed = true;
    r->depth++;
    evloop_cancel(r->loop, r->failq_defer);
    struct evredis_conn *conn = r->conn;
    if (conn) {
        conn->owner = NULL; /* detached without back-off bookkeeping: r is going away */
        r->conn = NULL;
        evloop_cancel(conn->loop, conn->connect_timer);
        conn->connect_timer = 0;
    }
    while (r->inflight.head) /* records stay with hiredis until it lets go of them */
        cmd_deliver(r->inflight.head, NULL, SL_EGONE);
    while (r->failq.head) {
        struct evredis_cmd *c = r->failq.head;
        cmd_deliver(c, NULL, SL_EGONE);
        free(c);
    }
    if (conn)
        conn_drop(conn, SL_EGONE, false, NULL);
    evredis_leave(r);
}

bool evredis_is_connected(const struct evredis *r)
{
    return r->conn && r->conn->ready && !r->conn->dropping;
}

const char *evredis_url(const struct evredis *r)
{
    return r->url_text;
}

void evredis_get_stats(const struct evredis *r, struct evredis_stats *out)
{
    *out = r->stats;
}
