#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "err.h"
#include "evloop.h"
#include "log.h"
#include "evloop_redis.h"
#include "gateway.h"
#include "proxy.h"
#include "ratelimit_redis.h"

#define ACCEPT_BATCH 64

struct worker {
    struct worker_core core; /* first: proxy.c sees only this */
    unsigned index;
    pthread_t thread;
    bool running;
    int listen_fd;
    atomic_bool want_quiesce;
    struct worker_stats *stats;
    struct span_buffer spans;
};

/* The listener: SO_REUSEPORT so every worker binds the same address and the kernel
 * spreads connections over them (DESIGN §3). */
static int listen_socket(const struct agent *a, char err[256])
{
    int fd = socket(a->listen_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, 256, "--listen: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->listen_addr, a->listen_addr_len) < 0 ||
        listen(fd, 1024) < 0) {
        snprintf(err, 256, "--listen %s: %s", a->listen_str, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void peer_name(const struct sockaddr_storage *ss, char out[64])
{
    const void *addr = ss->ss_family == AF_INET6
                           ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                           : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    if (!inet_ntop(ss->ss_family, addr, out, 64))
        snprintf(out, 64, "unknown");
}

static void on_accept(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    struct worker *w = arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_msgf(LOG_WARN, "accept: %s", strerror(errno));
            return;
        }
        atomic_fetch_add_explicit(&w->stats->connections_accepted, 1, memory_order_relaxed);
        if (w->core.nconns >= w->core.agent->cfg.max_conns) {
            close(cfd); /* bounded: past max_conns a connection costs nothing */
            continue;
        }
        char peer[64];
        peer_name(&ss, peer);
        proxy_conn_open(&w->core, cfd, peer);
    }
}

static void close_listener(struct worker *w)
{
    if (w->listen_fd < 0)
        return;
    evloop_watch_del(w->core.loop, w->listen_fd);
    close(w->listen_fd);
    w->listen_fd = -1;
}

static void on_wake(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)events;
    struct worker *w = arg;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_msgf(LOG_WARN, "worker wake: %s", strerror(errno));
    pthread_mutex_lock(&w->core.mbox_lock); /* coalesced requests released elsewhere */
    struct conn_msg *m = w->core.mbox;
    w->core.mbox = NULL;
    pthread_mutex_unlock(&w->core.mbox_lock);
    while (m) {
        struct conn_msg *next = m->next;
        struct conn *c = m->c; /* alive: a closing conn removes its messages first */
        free(m);
        proxy_cache_resume(c);
        m = next;
    }
    if (atomic_load(&w->want_quiesce) && !w->core.quiescing) {
        close_listener(w);
        proxy_quiesce(&w->core);
    }
}

struct worker *worker_new(struct agent *a, unsigned index, char err[256])
{
    struct worker *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, 256, "out of memory");
        return NULL;
    }
    w->index = index;
    w->listen_fd = w->core.wake_fd = -1;
    pthread_mutex_init(&w->core.mbox_lock, NULL);
    w->stats = calloc(1, sizeof(*w->stats));
    w->core.loop = evloop_new();
    if (!w->stats || !w->core.loop || span_buffer_init(&w->spans)) {
        snprintf(err, 256, "out of memory");
        goto err_free;
    }
    w->core.agent = a;
    w->core.stats = w->stats;
    w->core.spans = &w->spans;
    w->core.req_limits = http1_limits_default;
    w->core.req_limits.max_header_bytes = a->cfg.max_header_bytes;
    w->core.req_limits.max_body_bytes = a->cfg.max_body_bytes;
    w->core.resp_limits = http1_limits_default;
    w->core.resp_limits.max_header_bytes = 64 * 1024; /* upstreams are trusted more */
    if (a->cfg.redis) { /* the limiter's own connection on this loop (never blocks it) */
        char rerr[128];
        w->core.redis = evredis_new(w->core.loop, a->cfg.redis, 200, 250, rerr);
        w->core.rl_redis = w->core.redis ? rl_redis_new(w->core.loop, w->core.redis, NULL) : NULL;
        if (!w->core.rl_redis) {
            snprintf(err, 256, "--redis: %.200s", w->core.redis ? "out of memory" : rerr);
            goto err_free;
        }
    }
    if (a->gateway && !(w->core.gw = gateway_worker_new(a))) {
        snprintf(err, 256, "worker %u: out of memory", index);
        goto err_free;
    }
    if (a->cfg.cache_redis && a->cfg.cache_bytes) { /* the shared cache tier, async */
        char rerr[128];
        w->core.cache_redis = evredis_new(w->core.loop, a->cfg.cache_redis, 200, 250, rerr);
        if (!w->core.cache_redis) {
            snprintf(err, 256, "--cache-redis: %.200s", rerr);
            goto err_free;
        }
    }
    w->listen_fd = listen_socket(a, err);
    w->core.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->listen_fd < 0 || w->core.wake_fd < 0 ||
        evloop_watch_add(w->core.loop, w->listen_fd, EV_READ, on_accept, w) ||
        evloop_watch_add(w->core.loop, w->core.wake_fd, EV_READ, on_wake, w)) {
        if (w->listen_fd >= 0)
            snprintf(err, 256, "worker %u: cannot set up its event loop", index);
        goto err_free;
    }
    return w;
err_free:
    worker_free(w);
    return NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    evloop_run(w->core.loop);
    return NULL;
}

int worker_start(struct worker *w)
{
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return SL_ENOMEM;
    w->running = true;
    return SL_OK;
}

void worker_quiesce(struct worker *w)
{
    atomic_store(&w->want_quiesce, true);
    uint64_t one = 1;
    if (write(w->core.wake_fd, &one, sizeof(one)) < 0)
        log_msgf(LOG_WARN, "worker wake: %s", strerror(errno));
}

void worker_free(struct worker *w)
{
    if (!w)
        return;
    if (w->running) {
        evloop_stop_async(w->core.loop);
        pthread_join(w->thread, NULL);
    }
    if (w->core.loop) {
        proxy_close_all(&w->core);
        rl_redis_free(w->core.rl_redis); /* answers its pending callers first */
        evredis_free(w->core.redis);
        evredis_free(w->core.cache_redis);
        gateway_worker_free(w->core.gw);
        close_listener(w);
        if (w->core.wake_fd >= 0) {
            evloop_watch_del(w->core.loop, w->core.wake_fd);
            close(w->core.wake_fd);
        }
        evloop_free(w->core.loop);
    }
    span_buffer_release(&w->spans);
    for (struct conn_msg *m = w->core.mbox, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    pthread_mutex_destroy(&w->core.mbox_lock);
    free(w->stats);
    free(w);
}

unsigned worker_in_flight(const struct worker *w)
{
    return atomic_load_explicit(&w->stats->in_flight, memory_order_relaxed);
}

unsigned worker_connections(const struct worker *w)
{
    return w->core.nconns;
}

struct span_buffer *worker_spans(struct worker *w)
{
    return &w->spans;
}

const struct worker_stats *worker_stats(const struct worker *w)
{
    return w->stats;
}

uint16_t worker_listen_port(const struct worker *w)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (w->listen_fd < 0 || getsockname(w->listen_fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}
