/*
 * events — the Server-Sent Events hub behind GET /v1/events (WHATWG HTML §9.2).
 *
 * The fleet thread publishes one snapshot per tick, the API one event per audit record;
 * each is formatted once ("id: N\nevent: TYPE\ndata: JSON\n\n") into a ring of the last
 * `ring` events. A viewer's stream (one connection thread each, http_resp_stream) waits
 * on the hub's condition variable and copies the next event out: many viewers cost one
 * aggregation and one formatting. A viewer that falls more than the ring behind skips to
 * the oldest event kept. A new viewer starts with the latest snapshot. Every 15 s without
 * an event a comment line keeps proxies from closing the stream.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"
#include "http.h"

#define VIEWERS_MAX 64
#define KEEPALIVE_S 15

struct event {
    char *text;
    size_t len;
};

struct events {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct event *ring;
    unsigned cap;
    uint64_t next; /* sequence number of the next event */
    struct event snapshot; /* the latest snapshot event, for new viewers */
    unsigned viewers;
    bool closed;
};

struct viewer {
    struct events *e;
    uint64_t seq; /* next event to send */
    char *cur;    /* the event being sent */
    size_t len, off;
};

struct events *events_new(unsigned ring)
{
    struct events *e = calloc(1, sizeof(*e));
    if (!e || !(e->ring = calloc(ring, sizeof(*e->ring)))) {
        free(e);
        return NULL;
    }
    e->cap = ring;
    pthread_mutex_init(&e->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cond, &ca);
    pthread_condattr_destroy(&ca);
    return e;
}

void events_free(struct events *e)
{
    if (!e)
        return;
    for (unsigned i = 0; i < e->cap; i++)
        free(e->ring[i].text);
    free(e->ring);
    free(e->snapshot.text);
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

void events_publish(struct events *e, const char *type, const char *data)
{
    pthread_mutex_lock(&e->lock);
    char *text = NULL;
    int n = asprintf(&text, "id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)e->next,
                     type, data);
    if (n > 0) {
        struct event *slot = &e->ring[e->next % e->cap];
        free(slot->text);
        *slot = (struct event){text, (size_t)n};
        e->next++;
        if (!strcmp(type, "snapshot")) {
            free(e->snapshot.text);
            e->snapshot.text = strdup(text);
            e->snapshot.len = e->snapshot.text ? (size_t)n : 0;
        }
        pthread_cond_broadcast(&e->cond);
    }
    pthread_mutex_unlock(&e->lock);
}

void events_close(struct events *e)
{
    pthread_mutex_lock(&e->lock);
    e->closed = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
}

unsigned events_viewers(struct events *e)
{
    pthread_mutex_lock(&e->lock);
    unsigned n = e->viewers;
    pthread_mutex_unlock(&e->lock);
    return n;
}

/* Under the lock: the viewer's next bytes (an event, or a keep-alive after a quiet wait). */
static bool next_event(struct viewer *v)
{
    struct events *e = v->e;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += KEEPALIVE_S;
    while (!e->closed && v->seq >= e->next) {
        if (pthread_cond_timedwait(&e->cond, &e->lock, &until) == ETIMEDOUT) {
            free(v->cur);
            v->cur = strdup(": keep-alive\n\n");
            v->len = v->cur ? strlen(v->cur) : 0;
            v->off = 0;
            return v->cur != NULL;
        }
    }
    if (e->closed)
        return false;
    if (e->next - v->seq > e->cap) /* fell behind: the oldest kept */
        v->seq = e->next - e->cap;
    const struct event *ev = &e->ring[v->seq % e->cap];
    v->seq++;
    char *copy = malloc(ev->len);
    if (!copy)
        return false;
    memcpy(copy, ev->text, ev->len);
    free(v->cur);
    v->cur = copy;
    v->len = ev->len;
    v->off = 0;
    return true;
}

static long viewer_read(void *ctx, char *buf, size_t max)
{
    struct viewer *v = ctx;
    if (v->off >= v->len) {
        pthread_mutex_lock(&v->e->lock);
        bool more = next_event(v);
        pthread_mutex_unlock(&v->e->lock);
        if (!more)
            return -1;
    }
    size_t n = v->len - v->off < max ? v->len - v->off : max;
    memcpy(buf, v->cur + v->off, n);
    v->off += n;
    return (long)n;
}

static void viewer_free(void *ctx)
{
    struct viewer *v = ctx;
    pthread_mutex_lock(&v->e->lock);
    v->e->viewers--;
    pthread_mutex_unlock(&v->e->lock);
    free(v->cur);
    free(v);
}

bool events_subscribe(struct events *e, struct http_resp *resp)
{
    struct viewer *v = calloc(1, sizeof(*v));
    if (!v)
        return false;
    v->e = e;
    pthread_mutex_lock(&e->lock);
    bool ok = e->viewers < VIEWERS_MAX && !e->closed;
    if (ok) {
        e->viewers++;
        v->seq = e->next;
        if (e->snapshot.text && (v->cur = malloc(e->snapshot.len)) != NULL) {
            memcpy(v->cur, e->snapshot.text, e->snapshot.len);
            v->len = e->snapshot.len;
        }
    }
    pthread_mutex_unlock(&e->lock);
    if (!ok) {
        free(v);
        return false;
    }
    http_resp_stream(resp, 200, "text/event-stream", viewer_read, v, viewer_free);
    http_resp_header(resp, "Cache-Control", "no-store");
    return true;
}
