/*
 * evloop_curl — see evloop_curl.h for the contract. libcurl tells us which sockets to
 * watch (sock_cb) and when it next needs time (timer_cb); we tell it what happened
 * (curl_multi_socket_action) and then collect finished transfers (collect_done). Each
 * transfer has a small record (CURLOPT_PRIVATE) holding the caller's callback, linked in
 * a list so that evcurl_free and evcurl_remove can find them.
 */
#include "evloop_curl.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "err.h"

struct transfer {
    struct transfer *prev, *next;
    CURL *easy;
    evcurl_done_fn cb;
    void *arg;
};

struct sock_watch {
    struct sock_watch *prev, *next;
    curl_socket_t fd;
};

struct evcurl {
    struct evloop *loop;
    struct sock_watch *socks; /* sockets watched on the loop */
    CURLM *multi;
    uint64_t timer_id; /* mirrors libcurl's timeout; 0 when none */
    struct transfer *head;
    unsigned running;
    int depth; /* our frames that touch ec after calling back */
    bool freed;
    struct evcurl_stats stats;
};

static void transfer_unlink(struct evcurl *ec, struct transfer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        ec->head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    ec->running--;
}

static void sock_forget(struct evcurl *ec, struct sock_watch *sw)
{
    evloop_watch_del(ec->loop, sw->fd);
    if (sw->prev)
        sw->prev->next = sw->next;
    else
        ec->socks = sw->next;
    if (sw->next)
        sw->next->prev = sw->prev;
    free(sw);
}

static void evcurl_leave(struct evcurl *ec)
{
    if (--ec->depth == 0 && ec->freed)
        free(ec);
}

/* Hand every finished transfer back to its caller; stops if a callback frees ec. */
static void collect_done(struct evcurl *ec)
{
    ec->depth++;
    CURLMsg *msg;
    int left;
    while (!ec->freed && (msg = curl_multi_info_read(ec->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        struct transfer *t = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
        if (!t)
            continue; /* not ours: every handle on this multi is added by evcurl_add */
        curl_multi_remove_handle(ec->multi, easy);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)NULL);
        transfer_unlink(ec, t);
        if (result == CURLE_OK)
            ec->stats.completed++;
        else
            ec->stats.failed++;
        evcurl_done_fn cb = t->cb;
        void *arg = t->arg;
        free(t);
        cb(easy, result, arg);
    }
    evcurl_leave(ec);
}

static void on_io(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    struct evcurl *ec = arg;
    int action = ((events & EV_READ) ? CURL_CSELECT_IN : 0) |
                 ((events & EV_WRITE) ? CURL_CSELECT_OUT : 0) |
                 ((events & EV_ERROR) ? CURL_CSELECT_ERR : 0);
    int still_running;
    curl_multi_socket_action(ec->multi, fd, action, &still_running);
    collect_done(ec);
}

static void on_timer(struct evloop *loop, void *arg)
{
    (void)loop;
    struct evcurl *ec = arg;
    ec->timer_id = 0;
    int still_running;
    curl_multi_socket_action(ec->multi, CURL_SOCKET_TIMEOUT, 0, &still_running);
    collect_done(ec);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what libcurl asks (CURL_POLL_*). The socket's
 * record (socketp, via curl_multi_assign) lists it, so evcurl_free can unwatch sockets
 * libcurl closes in curl_multi_cleanup without telling us. */
static int sock_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)easy;
    struct evcurl *ec = userp;
    struct sock_watch *sw = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sw)
            sock_forget(ec, sw);
        return 0;
    }
    unsigned events =
        ((what & CURL_POLL_IN) ? EV_READ : 0u) | ((what & CURL_POLL_OUT) ? EV_WRITE : 0u);
    if (sw)
        return evloop_watch_mod(ec->loop, s, events) == 0 ? 0 : -1;
    sw = calloc(1, sizeof(*sw));
    if (!sw)
        return -1; /* libcurl fails the transfer using s */
    if (evloop_watch_add(ec->loop, s, events, on_io, ec) != 0) {
        free(sw);
        return -1;
    }
    *sw = (struct sock_watch){.fd = s, .next = ec->socks};
    if (ec->socks)
        ec->socks->prev = sw;
    ec->socks = sw;
    curl_multi_assign(ec->multi, s, sw);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle; -1 deletes it. A 0 ms
 * timeout still goes through the loop, so libcurl is never re-entered from here. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct evcurl *ec = userp;
    if (timeout_ms < 0) {
        evloop_cancel(ec->loop, ec->timer_id);
        ec->timer_id = 0;
        return 0;
    }
    if (ec->timer_id && evloop_timer_reset(ec->loop, ec->timer_id, (uint64_t)timeout_ms) == 0)
        return 0;
    return evloop_timer_add(ec->loop, (uint64_t)timeout_ms, 0, on_timer, ec, &ec->timer_id) == 0
               ? 0
               : -1;
}

struct evcurl *evcurl_new(struct evloop *loop, char err[128])
{
    char scratch[128];
    char *msg = err ? err : scratch;
    struct evcurl *ec = loop ? calloc(1, sizeof(*ec)) : NULL;
    if (!ec) {
        snprintf(msg, 128, "%s", loop ? "out of memory" : "no event loop");
        return NULL;
    }
    ec->loop = loop;
    ec->multi = curl_multi_init();
    if (!ec->multi) {
        snprintf(msg, 128, "curl_multi_init failed");
        free(ec);
        return NULL;
    }
    curl_multi_setopt(ec->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(ec->multi, CURLMOPT_SOCKETDATA, (void *)ec);
    curl_multi_setopt(ec->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(ec->multi, CURLMOPT_TIMERDATA, (void *)ec);
    return ec;
}

int evcurl_add(struct evcurl *ec, CURL *easy, evcurl_done_fn cb, void *arg)
{
    if (!ec || !easy || !cb || ec->freed)
        return SL_EINVAL;
    if (ec->running >= EVCURL_TRANSFERS_MAX)
        return SL_ETOOBIG;
    struct transfer *t = calloc(1, sizeof(*t));
    if (!t)
        return SL_ENOMEM;
    *t = (struct transfer){.easy = easy, .cb = cb, .arg = arg, .next = ec->head};
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    /* Nothing completes inside curl_multi_add_handle, so PRIVATE can follow it; a refused
     * handle (already added here or elsewhere) keeps its PRIVATE untouched. */
    CURLMcode mc = curl_multi_add_handle(ec->multi, easy);
    if (mc != CURLM_OK) {
        free(t);
        return mc == CURLM_OUT_OF_MEMORY ? SL_ENOMEM : SL_EINVAL;
    }
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)t);
    if (ec->head)
        ec->head->prev = t;
    ec->head = t;
    ec->running++;
    ec->stats.added++;
    return 0;
}

static struct transfer *transfer_find(const struct evcurl *ec, const CURL *easy)
{
    for (struct transfer *t = ec->head; t; t = t->next)
        if (t->easy == easy)
            return t;
    return NULL;
}

int evcurl_remove(struct evcurl *ec, CURL *easy)
{
    struct transfer *t = ec && easy ? transfer_find(ec, easy) : NULL;
    if (!t)
        return SL_ENOTFOUND;
    curl_multi_remove_handle(ec->multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)NULL);
    transfer_unlink(ec, t);
    free(t);
    ec->stats.cancelled++;
    return 0;
}

void evcurl_free(struct evcurl *ec)
{
    if (!ec || ec->freed)
        return;
    ec->freed = true;
    ec->depth++;
    while (ec->head) {
        struct transfer *t = ec->head;
        CURL *easy = t->easy;
        evcurl_done_fn cb = t->cb;
        void *arg = t->arg;
        curl_multi_remove_handle(ec->multi, easy);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, (void *)NULL);
        transfer_unlink(ec, t);
        free(t);
        ec->stats.failed++;
        cb(easy, CURLE_ABORTED_BY_CALLBACK, arg);
    }
    curl_multi_cleanup(ec->multi);
    ec->multi = NULL;
    while (ec->socks) /* cached connections closed without CURL_POLL_REMOVE */
        sock_forget(ec, ec->socks);
    evloop_cancel(ec->loop, ec->timer_id);
    evcurl_leave(ec);
}

unsigned evcurl_running(const struct evcurl *ec)
{
    return ec->running;
}

void evcurl_get_stats(const struct evcurl *ec, struct evcurl_stats *out)
{
    *out = ec->stats;
}

void evcurl_set_max_connects(struct evcurl *ec, long n)
{
    curl_multi_setopt(ec->multi, CURLMOPT_MAXCONNECTS, n);
}
