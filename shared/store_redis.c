#include "store_redis.h"

#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "crypto.h"
#include "encode.h"
#include "log.h"
#include "redis_url.h"

#define URL_TEXT_MAX 512
#define WHY_MAX      192 /* room for a context label + hiredis errstr[128] */

struct redis_pool {
    struct redis_url url;
    char url_text[URL_TEXT_MAX]; /* password-free, for logs */
    struct timeval connect_tv;
    struct timeval command_tv;
    unsigned max_idle;

    pthread_mutex_t lock; /* guards idle and nidle only; never held during I/O */
    redisContext **idle;  /* LIFO stack: the warmest connection is reused first */
    unsigned nidle;

    _Atomic uint64_t last_log_ms; /* monotonic time of the last failure line; 0 = never */
    atomic_uint suppressed;       /* failures not logged since that line */
    atomic_bool down;             /* the last connect failed: log the recovery once */
};

static struct timeval tv_from_ms(unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static void pool_set_opts(struct redis_pool *p, const struct redis_opts *opts)
{
    unsigned connect_ms = opts && opts->connect_timeout_ms ? opts->connect_timeout_ms
                                                           : REDIS_CONNECT_TIMEOUT_MS_DEFAULT;
    unsigned command_ms = opts && opts->command_timeout_ms ? opts->command_timeout_ms
                                                           : REDIS_COMMAND_TIMEOUT_MS_DEFAULT;
    unsigned max_idle = opts && opts->max_idle ? opts->max_idle : REDIS_MAX_IDLE_DEFAULT;
    p->connect_tv = tv_from_ms(connect_ms);
    p->command_tv = tv_from_ms(command_ms);
    p->max_idle = max_idle < REDIS_MAX_IDLE_LIMIT ? max_idle : REDIS_MAX_IDLE_LIMIT;
}

struct redis_pool *redis_pool_new(const char *url, const struct redis_opts *opts, char err[128])
{
    struct redis_url parsed;
    if (redis_url_parse(url, &parsed, err) != 0)
        return NULL;
    struct redis_pool *p = calloc(1, sizeof(*p));
    if (!p)
        goto err_nomem;
    p->url = parsed;
    redis_url_format(&p->url, p->url_text, sizeof(p->url_text));
    pool_set_opts(p, opts);
    p->idle = calloc(p->max_idle, sizeof(*p->idle));
    if (!p->idle)
        goto err_free_pool;
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        goto err_free_idle;
    return p;

err_free_idle:
    free(p->idle);
err_free_pool:
    free(p);
err_nomem:
    if (err)
        snprintf(err, 128, "out of memory");
    return NULL;
}

void redis_pool_free(struct redis_pool *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->nidle; i++)
        redisFree(p->idle[i]);
    pthread_mutex_destroy(&p->lock);
    free(p->idle);
    free(p);
}

const char *redis_pool_url(const struct redis_pool *p)
{
    return p->url_text;
}

/* One warning per REDIS_LOG_INTERVAL_MS per pool, so an outage does not flood the log. */
static void pool_log_failure(struct redis_pool *p, const char *msg, const char *why)
{
    uint64_t now = clock_mono_ms();
    uint64_t last = atomic_load(&p->last_log_ms);
    if ((last != 0 && now - last < REDIS_LOG_INTERVAL_MS) ||
        !atomic_compare_exchange_strong(&p->last_log_ms, &last, now ? now : 1)) {
        atomic_fetch_add(&p->suppressed, 1);
        return;
    }
    char suppressed[16];
    snprintf(suppressed, sizeof(suppressed), "%u", atomic_exchange(&p->suppressed, 0));
    log_event(LOG_WARN, NULL, NULL, msg, "redis", p->url_text, "error", why, "suppressed",
              suppressed, NULL);
}

/* "OK"-or-expected status reply; otherwise why says what went wrong. */
static bool reply_is_status(const redisContext *c, const redisReply *r, const char *want,
                            const char *cmd, char why[WHY_MAX])
{
    if (r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, want) == 0)
        return true;
    if (!r)
        snprintf(why, WHY_MAX, "%s: %s", cmd, c->errstr);
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(why, WHY_MAX, "%s: %s", cmd, r->str);
    else
        snprintf(why, WHY_MAX, "%s: unexpected reply type %d", cmd, r->type);
    return false;
}

/* AUTH and SELECT as the URL says; argv form so any password bytes are safe. */
static bool pool_handshake(const struct redis_pool *p, redisContext *c, char why[WHY_MAX])
{
    const struct redis_url *u = &p->url;
    bool ok = true;
    if (u->password[0]) {
        const char *argv[3] = {"AUTH", u->user, u->password};
        int argc = 3;
        if (!u->user[0]) { /* legacy AUTH password (the "default" user) */
            argv[1] = u->password;
            argc = 2;
        }
        redisReply *r = redisCommandArgv(c, argc, argv, NULL);
        ok = reply_is_status(c, r, "OK", "AUTH", why);
        freeReplyObject(r);
    }
    if (ok && u->db != 0) {
        redisReply *r = redisCommand(c, "SELECT %d", u->db);
        ok = reply_is_status(c, r, "OK", "SELECT", why);
        freeReplyObject(r);
    }
    return ok;
}

/* Timeouts, then AUTH and SELECT; false with the reason in why. */
static bool conn_setup(const struct redis_pool *p, redisContext *c, char why[WHY_MAX])
{
    if (c->err) {
        snprintf(why, WHY_MAX, "%s", c->errstr);
        return false;
    }
    if (redisSetTimeout(c, p->command_tv) != REDIS_OK) {
        snprintf(why, WHY_MAX, "setting the command timeout: %s", c->errstr);
        return false;
    }
    return pool_handshake(p, c, why);
}

static redisContext *pool_connect(struct redis_pool *p)
{
    char why[WHY_MAX] = "out of memory";
    redisContext *c = p->url.unix_path[0]
                          ? redisConnectUnixWithTimeout(p->url.unix_path, p->connect_tv)
                          : redisConnectWithTimeout(p->url.host, p->url.port, p->connect_tv);
    if (c && conn_setup(p, c, why)) {
        if (atomic_exchange(&p->down, false))
            log_event(LOG_INFO, NULL, NULL, "redis reachable again", "redis", p->url_text, NULL);
        return c;
    }
    atomic_store(&p->down, true);
    pool_log_failure(p, "redis connect failed", why);
    if (c)
        redisFree(c);
    return NULL;
}

/* An idle connection has nothing to read: readable means the server closed it (or sent
 * something nobody asked for), so it must not be reused. */
static bool conn_is_alive(const redisContext *c)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    return c->err == 0 && poll(&pfd, 1, 0) == 0;
}

/* No error, nothing unsent, nothing read but not yet returned as a reply. */
static bool conn_is_clean(const redisContext *c)
{
    const redisReader *r = c->reader;
    return c->err == 0 && (c->flags & REDIS_CONNECTED) && sdslen(c->obuf) == 0 &&
           r->pos == r->len && r->ridx == -1;
}

static redisContext *pool_pop_idle(struct redis_pool *p)
{
    redisContext *c = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->nidle > 0)
        c = p->idle[--p->nidle];
    pthread_mutex_unlock(&p->lock);
    return c;
}

redisContext *redis_pool_get(struct redis_pool *p)
{
    redisContext *c;
    while ((c = pool_pop_idle(p)) != NULL) {
        if (conn_is_alive(c))
            return c;
        redisFree(c);
    }
    return pool_connect(p);
}

void redis_pool_put(struct redis_pool *p, redisContext *c)
{
    if (!c)
        return;
    if (c->err)
        pool_log_failure(p, "redis connection failed", c->errstr);
    if (conn_is_clean(c)) {
        pthread_mutex_lock(&p->lock);
        if (p->nidle < p->max_idle) {
            p->idle[p->nidle++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&p->lock);
    }
    if (c)
        redisFree(c);
}

redisReply *redis_pool_command(struct redis_pool *p, const char *fmt, ...)
{
    redisContext *c = redis_pool_get(p);
    if (!c)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redis_pool_put(p, c);
    return r;
}

redisReply *redis_pool_command_argv(struct redis_pool *p, int argc, const char **argv,
                                    const size_t *argvlen)
{
    redisContext *c = redis_pool_get(p);
    if (!c)
        return NULL;
    redisReply *r = redisCommandArgv(c, argc, argv, argvlen);
    redis_pool_put(p, c);
    return r;
}

bool redis_pool_ping(struct redis_pool *p)
{
    redisReply *r = redis_pool_command(p, "PING");
    bool ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    freeReplyObject(r);
    return ok;
}

/* --- Lua scripts ------------------------------------------------------------------- */

static void script_hash(struct redis_script *s)
{
    uint8_t digest[CRYPTO_SHA1_BYTES];
    crypto_sha1(s->source, strlen(s->source), digest);
    hex_encode(digest, sizeof(digest), s->sha1);
}

void redis_script_init(struct redis_script *s, const char *source)
{
    s->source = source;
    script_hash(s);
    atomic_init(&s->noscript_fallbacks, 0);
    atomic_init(&s->state, REDIS_SCRIPT_READY);
}

/* The SHA1, computing it on first use for REDIS_SCRIPT_INIT scripts. NULL while another
 * thread computes it: the caller then sends EVAL, which is always correct. */
static const char *script_sha1(struct redis_script *s)
{
    int state = atomic_load_explicit(&s->state, memory_order_acquire);
    if (state == REDIS_SCRIPT_READY)
        return s->sha1;
    if (state != REDIS_SCRIPT_NEW ||
        !atomic_compare_exchange_strong(&s->state, &state, REDIS_SCRIPT_HASHING))
        return NULL;
    script_hash(s);
    atomic_store_explicit(&s->state, REDIS_SCRIPT_READY, memory_order_release);
    return s->sha1;
}

static bool reply_is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* argv[2..argc) are filled in; this sets the command and its first argument. */
static redisReply *script_send(redisContext *c, int argc, const char **argv, size_t *lens,
                               const char *cmd, const char *body)
{
    argv[0] = cmd;
    lens[0] = strlen(cmd);
    argv[1] = body;
    lens[1] = strlen(body);
    return redisCommandArgv(c, argc, argv, lens);
}

redisReply *redis_script_eval(redisContext *c, struct redis_script *s, int nkeys, int nargs,
                              const char **args, const size_t *arglens)
{
    const char *argv[3 + REDIS_SCRIPT_MAX_ARGS];
    size_t lens[3 + REDIS_SCRIPT_MAX_ARGS];
    char numkeys[16];
    if (nkeys < 0 || nargs < 0 || nkeys > REDIS_SCRIPT_MAX_ARGS - nargs) {
        log_error("redis script called with %d keys and %d arguments (at most %d in all)", nkeys,
                  nargs, REDIS_SCRIPT_MAX_ARGS);
        return NULL;
    }
    int argc = 3 + nkeys + nargs;
    snprintf(numkeys, sizeof(numkeys), "%d", nkeys);
    argv[2] = numkeys;
    lens[2] = strlen(numkeys);
    for (int i = 3; i < argc; i++) {
        argv[i] = args[i - 3];
        lens[i] = arglens ? arglens[i - 3] : strlen(args[i - 3]);
    }
    const char *sha1 = script_sha1(s);
    if (sha1) {
        redisReply *r = script_send(c, argc, argv, lens, "EVALSHA", sha1);
        if (!reply_is_noscript(r))
            return r;
        freeReplyObject(r);
        atomic_fetch_add(&s->noscript_fallbacks, 1);
    }
    return script_send(c, argc, argv, lens, "EVAL", s->source);
}

redisReply *redis_script_eval_pool(struct redis_pool *p, struct redis_script *s, int nkeys,
                                   int nargs, const char **args, const size_t *arglens)
{
    redisContext *c = redis_pool_get(p);
    if (!c)
        return NULL;
    redisReply *r = redis_script_eval(c, s, nkeys, nargs, args, arglens);
    redis_pool_put(p, c);
    return r;
}
