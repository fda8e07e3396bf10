#include "proxy.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "rng.h"
#include "gateway.h"
#include "respcache.h"
#include "upstream_health.h"
#include "routes.h"

static void conn_on_io(struct evloop *loop, int fd, unsigned events, void *arg);
static void up_on_io(struct evloop *loop, int fd, unsigned events, void *arg);
static void conn_process(struct conn *c);
static void conn_update_watch(struct conn *c);
static void up_update_watch(struct upconn *u);
static void up_release(struct upconn *u, bool reusable);
static void request_finish(struct conn *c);
static void gateway_release(struct conn *c);
static bool retry_elsewhere(struct conn *c, struct upconn *u, bool nothing_sent);

#define OUTCOME_NEUTRAL (-1) /* the attempt ended without saying anything about the upstream */

/* ---- bounded byte buffers ------------------------------------------------------------ */

static size_t iobuf_pending(const struct iobuf *b)
{
    return b->len - b->off;
}

static void iobuf_compact(struct iobuf *b)
{
    if (b->off == 0)
        return;
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
}

/* Room for n more bytes at the end (compacting first); false past the hard bound. */
static bool iobuf_reserve(struct iobuf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return true;
    iobuf_compact(b);
    if (b->cap - b->len >= n)
        return true;
    if (b->len + n > b->max)
        return false;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
        cap *= 2;
    if (cap > b->max)
        cap = b->max;
    char *p = realloc(b->data, cap);
    if (!p)
        return false;
    b->data = p;
    b->cap = cap;
    return true;
}

bool iobuf_append(struct iobuf *b, const void *p, size_t n)
{
    if (!iobuf_reserve(b, n))
        return false;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

bool iobuf_printf(struct iobuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < sizeof(tmp) && iobuf_append(b, tmp, (size_t)n);
}

static void iobuf_free(struct iobuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* read() into the buffer: >0 bytes, 0 EOF, -1 nothing now (EAGAIN), -2 error or full. */
static ssize_t iobuf_read(struct iobuf *b, int fd)
{
    size_t want = b->max - iobuf_pending(b) < 16384 ? b->max - iobuf_pending(b) : 16384;
    if (want == 0 || !iobuf_reserve(b, want))
        return -2;
    ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
    if (n > 0)
        b->len += (size_t)n;
    else if (n < 0)
        return errno == EAGAIN || errno == EINTR ? -1 : -2;
    return n;
}

/* write() what is pending: 1 all written, 0 some left, -1 error. */
static int iobuf_flush(struct iobuf *b, int fd, bool keep_for_replay)
{
    while (iobuf_pending(b)) {
        ssize_t n = send(fd, b->data + b->off, iobuf_pending(b), MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        b->off += (size_t)n;
    }
    if (!keep_for_replay)
        b->off = b->len = 0;
    return 1;
}

/* ---- client connections: open, close -------------------------------------------------- */

static uint64_t now_ms(const struct worker_core *wc)
{
    return evloop_now_ms(wc->loop);
}

static void conn_arm(struct conn *c, uint64_t delay_ms, evloop_task_fn fn)
{
    evloop_cancel(c->wc->loop, c->timer);
    c->timer = 0;
    evloop_timer_add(c->wc->loop, delay_ms, 0, fn, c, &c->timer);
}

static void conn_free(struct conn *c)
{
    struct worker_core *wc = c->wc;
    evloop_cancel(wc->loop, c->timer);
    evloop_watch_del(wc->loop, c->fd);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        wc->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    wc->nconns--;
    limits_abandon(c);
    respcache_unwait(c);
    respcache_done(c);
    gateway_release(c);
    policy_set_unref(c->pset);
    iobuf_free(&c->in);
    iobuf_free(&c->out);
    free(c->fields);
    free(c);
}

/* Ends a connection; a request in flight is recorded first (status 0 = no answer). */
static void conn_close(struct conn *c, bool rst)
{
    if (c->up) {
        up_release(c->up, false);
        c->up = NULL;
    }
    if (c->start_ns)
        request_finish(c);
    if (rst) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* RST, not FIN: a "reset" fault */
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    conn_free(c);
}

static void on_idle_timeout(struct evloop *loop, void *arg);
static void conn_next_request(struct conn *c);

/* The answer is complete in c->out: flush, then close or wait for the next request. */
static void conn_response_done(struct conn *c)
{
    int rc = iobuf_flush(&c->out, c->fd, false);
    if (rc < 0) {
        conn_close(c, false);
    } else if (c->close_after) {
        c->state = CONN_CLOSING;
        if (rc == 1)
            conn_close(c, false);
        else
            conn_update_watch(c);
    } else {
        conn_next_request(c);
    }
}

void proxy_conn_open(struct worker_core *wc, int fd, const char *peer_ip)
{
    struct conn *c = calloc(1, sizeof(*c));
    const struct agent_config *cfg = &wc->agent->cfg;
    if (c)
        c->fields = calloc(wc->req_limits.max_headers, sizeof(*c->fields));
    if (!c || !c->fields) {
        free(c);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->wc = wc;
    c->fd = fd;
    snprintf(c->peer_ip, sizeof(c->peer_ip), "%s", peer_ip);
    c->in.max = cfg->max_header_bytes + PROXY_BODY_CHUNK;
    c->out.max = PROXY_HIGH_WATER + PROXY_BODY_CHUNK + cfg->max_header_bytes;
    http1_parser_init(&c->req, HTTP1_REQUEST, &wc->req_limits, c->fields,
                      wc->req_limits.max_headers);
    c->next = wc->conns;
    if (wc->conns)
        wc->conns->prev = c;
    wc->conns = c;
    wc->nconns++;
    if (evloop_watch_add(wc->loop, fd, EV_READ, conn_on_io, c)) {
        conn_free(c);
        return;
    }
    conn_arm(c, cfg->idle_timeout_ms, on_idle_timeout);
}

/* ---- answers the agent makes itself (RFC 9457 problem documents) ---------------------- */

/* A JSON string body for a value the client chose (the path may hold '"' or '\\'). */
static void json_escape(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20 || *p >= 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
}

static bool append_problem(struct conn *c, int status, const char *slug, const char *title,
                           const char *detail)
{
    char body[1024], path[6 * SPAN_ROUTE_MAX + 1];
    json_escape(c->path[0] ? c->path : "/", path, sizeof(path));
    int n = snprintf(body, sizeof(body),
                     "{\"type\":\"urn:sluice:problem:%s\",\"title\":\"%s\",\"status\":%d,"
                     "\"detail\":\"%s\",\"instance\":\"%s\",\"request_id\":\"%s\"}",
                     slug, title, status, detail, path, c->request_id);
    if (n < 0 || (size_t)n >= sizeof(body))
        n = snprintf(body, sizeof(body), "{\"status\":%d}", status);
    unsigned long long retry = status == 429 && c->limited_retry_s ? c->limited_retry_s : 1;
    bool ok = iobuf_printf(&c->out,
                           "HTTP/1.1 %d %s\r\nContent-Type: application/problem+json\r\n"
                           "Content-Length: %d\r\nVia: 1.1 %s\r\nX-Request-Id: %s\r\n",
                           status, http_reason(status), n, c->wc->agent->id, c->request_id) &&
              (status != 503 && status != 429
                   ? true
                   : iobuf_printf(&c->out, "Retry-After: %llu\r\n", retry)) &&
              limits_headers(c, &c->out) &&
              iobuf_printf(&c->out, "%s\r\n", c->close_after ? "Connection: close\r\n" : "") &&
              iobuf_append(&c->out, body, (size_t)n);
    c->status = status;
    c->bytes_out += (uint64_t)n;
    return ok;
}

/* An answer for a request that cannot go on; keep-alive only when the framing is intact
 * and no body bytes are pending. */
static void conn_answer(struct conn *c, int status, const char *slug, const char *title,
                        const char *detail, bool close);

void proxy_answer(struct conn *c, int status, const char *slug, const char *title,
                  const char *detail, bool close)
{
    conn_answer(c, status, slug, title, detail, close);
}

void proxy_answered(struct conn *c, int status)
{
    c->req_body_done = c->req.msg.body == HTTP1_BODY_NONE;
    c->close_after |= !c->req_body_done;
    if (!c->head_consumed) {
        c->in.off += c->req.msg.head_bytes;
        c->head_consumed = true;
    }
    c->status = status;
    c->resp_started = true;
    request_finish(c);
    conn_response_done(c);
}

static void conn_answer(struct conn *c, int status, const char *slug, const char *title,
                        const char *detail, bool close)
{
    if (c->up) {
        up_release(c->up, false);
        c->up = NULL;
    }
    c->close_after |= close || !c->req_body_done;
    if (!c->head_consumed && c->req.msg.head_bytes) { /* answered without forwarding */
        c->in.off += c->req.msg.head_bytes;
        c->head_consumed = true;
    }
    if (c->resp_started) { /* bytes of another answer went out already: only closing is honest */
        conn_close(c, false);
        return;
    }
    append_problem(c, status, slug, title, detail);
    c->resp_started = true;
    request_finish(c);
    conn_response_done(c);
}

/* ---- finishing a request: metrics, span, access log ---------------------------------- */

static void record_span(struct conn *c, uint64_t end_ns, bool error)
{
    struct worker_core *wc = c->wc;
    uint64_t dur = end_ns - c->start_ns;
    if (!span_should_keep(error, dur, wc->agent->cfg.trace_slow_ms * 1000000u,
                          trace_is_sampled(&c->trace)))
        return;
    struct span s = {0};
    memcpy(s.trace_id, c->trace.trace_id, 16);
    memcpy(s.span_id, c->trace.span_id, 8);
    memcpy(s.parent_id, c->parent_id, 8);
    const char *route = routes_name(wc->agent->routes, c->route);
    snprintf(s.name, sizeof(s.name), "%s %s", c->method, route);
    snprintf(s.route, sizeof(s.route), "%s", route);
    snprintf(s.method, sizeof(s.method), "%s", c->method);
    snprintf(s.request_id, sizeof(s.request_id), "%s", c->request_id);
    s.start_unix_ns = clock_wall_ms() * 1000000u - dur;
    s.duration_ns = dur;
    s.upstream_ns = c->sent_ns && c->resp_started ? end_ns - c->sent_ns : 0;
    s.http_status = c->status;
    s.error = error;
    s.faulted = c->faulted;
    span_buffer_push(wc->spans, &s);
}

static void access_log(const struct conn *c, uint64_t latency_us)
{
    char status[8], dur[24], trace[33];
    snprintf(status, sizeof(status), "%d", c->status);
    snprintf(dur, sizeof(dur), "%.3f", (double)latency_us / 1000.0);
    trace_id_hex(c->trace.trace_id, trace);
    log_event(LOG_INFO, c->request_id, trace, "request", "method", c->method, "path", c->path,
              "route", routes_name(c->wc->agent->routes, c->route), "status", status,
              "duration_ms", dur, "client", c->peer_ip, NULL);
}

static void request_finish(struct conn *c)
{
    struct worker_core *wc = c->wc;
    gateway_release(c);
    if (!c->start_ns)
        return;
    uint64_t end_ns = clock_mono_ns();
    struct stats_request r = {
        .route = c->route,
        .status = c->status,
        .bytes_in = c->bytes_in,
        .bytes_out = c->bytes_out,
        .latency_us = (end_ns - c->start_ns) / 1000u,
        .upstream_us = c->sent_ns && c->resp_started && !c->upstream_error &&
                               !c->upstream_timeout && c->status
                           ? 1 + (end_ns - c->sent_ns) / 1000u
                           : 0,
        .upstream_error = c->upstream_error,
        .upstream_timeout = c->upstream_timeout,
        .faulted = c->faulted,
        .rejected = c->rejected,
    };
    stats_record(wc->stats, &r, now_ms(wc));
    atomic_fetch_sub_explicit(&wc->stats->in_flight, 1, memory_order_relaxed);
    if (!c->rejected)
        record_span(c, end_ns, c->status >= 500 || c->status == 0);
    if (wc->agent->cfg.access_log)
        access_log(c, r.latency_us);
    c->start_ns = 0;
}

/* ---- starting a request -------------------------------------------------------------- */

static void span_copy(const char *buf, struct http1_span s, char *out, size_t cap)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    memcpy(out, buf + s.off, n);
    out[n] = '\0';
}

static bool request_id_ok(const char *buf, struct http1_span v)
{
    if (v.len == 0 || v.len >= PROXY_REQUEST_ID_MAX)
        return false;
    for (uint32_t i = 0; i < v.len; i++) {
        char ch = buf[v.off + i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* Request id and trace context: kept from the caller when valid, created otherwise. */
static void request_ids(struct conn *c, const char *buf)
{
    int i = http1_field_find(&c->req, buf, "X-Request-Id");
    if (i >= 0 && request_id_ok(buf, c->fields[i].value)) {
        span_copy(buf, c->fields[i].value, c->request_id, sizeof(c->request_id));
    } else {
        uint8_t raw[16];
        rng_bytes(raw, sizeof(raw));
        trace_id_hex(raw, c->request_id);
    }
    i = http1_field_find(&c->req, buf, "traceparent");
    struct trace_ctx in;
    if (i >= 0 && traceparent_parse(buf + c->fields[i].value.off, c->fields[i].value.len,
                                    &in) == SL_OK) {
        c->trace = in;
        memcpy(c->parent_id, in.span_id, 8);
    } else {
        trace_new_trace_id(c->trace.trace_id);
        memset(c->parent_id, 0, 8);
        double p = c->wc->agent->trace_sample;
        c->trace.flags = p > 0 && (double)(rng_u64() >> 11) * 0x1p-53 < p ? TRACE_FLAG_SAMPLED
                                                                         : 0;
    }
    trace_new_span_id(c->trace.span_id);
}

/* The path without query, for routing, spans and problem "instance". */
static void request_path(struct conn *c, const char *buf)
{
    const struct http1_message *m = &c->req.msg;
    const char *t = buf + m->target.off;
    size_t len = m->target.len;
    if (m->target_form == HTTP1_TARGET_ABSOLUTE) { /* "http://host/path" → "/path" */
        const char *p = memmem(t, len, "://", 3);
        const char *slash = p ? memchr(p + 3, '/', len - (size_t)(p + 3 - t)) : NULL;
        len = slash ? len - (size_t)(slash - t) : 0;
        t = slash ? slash : "/";
    }
    size_t q = 0;
    while (q < len && t[q] != '?')
        q++;
    size_t n = q < sizeof(c->path) - 1 ? q : sizeof(c->path) - 1;
    memcpy(c->path, len ? t : "/", len ? n : 1);
    c->path[len ? n : 1] = '\0';
    c->route = routes_match(c->wc->agent->routes, t, q ? q : 0);
}

static uint32_t fault_rnd(void *arg)
{
    (void)arg;
    return (uint32_t)rng_u64();
}

static void faults_refresh(struct worker_core *wc)
{
    struct agent *a = wc->agent;
    uint64_t v = atomic_load_explicit(&a->faults_version, memory_order_acquire);
    if (v == wc->faults_version)
        return;
    pthread_mutex_lock(&a->faults_lock);
    wc->faults = a->faults;
    wc->faults_version = atomic_load_explicit(&a->faults_version, memory_order_relaxed);
    pthread_mutex_unlock(&a->faults_lock);
}

/* ---- upstream connections ------------------------------------------------------------ */

static void up_report(struct upconn *u, int outcome);

static void up_free(struct upconn *u)
{
    struct worker_core *wc = u->wc;
    up_report(u, OUTCOME_NEUTRAL);
    evloop_cancel(wc->loop, u->timer);
    evloop_watch_del(wc->loop, u->fd);
    close(u->fd);
    iobuf_free(&u->in);
    iobuf_free(&u->out);
    free(u->fields);
    free(u);
}

static void pool_remove(struct worker_core *wc, struct upconn *u)
{
    for (struct upconn **p = &wc->idle; *p; p = &(*p)->next_idle) {
        if (*p == u) {
            *p = u->next_idle;
            wc->nidle--;
            return;
        }
    }
}

static void on_pool_idle_timeout(struct evloop *loop, void *arg)
{
    (void)loop;
    struct upconn *u = arg;
    u->timer = 0;
    pool_remove(u->wc, u);
    up_free(u);
}

/* Back to the pool (watched for EOF while idle) or closed. */
static void up_release(struct upconn *u, bool reusable)
{
    struct worker_core *wc = u->wc;
    up_report(u, OUTCOME_NEUTRAL);
    u->client = NULL;
    if (!reusable || wc->quiescing || wc->nidle >= PROXY_IDLE_POOL_MAX ||
        iobuf_pending(&u->in) || u->connecting) {
        up_free(u);
        return;
    }
    u->in.off = u->in.len = 0;
    u->out.off = u->out.len = 0;
    u->head_done = u->got_bytes = u->decode = false;
    http1_parser_reset_for_next(&u->resp);
    u->next_idle = wc->idle;
    wc->idle = u;
    wc->nidle++;
    evloop_cancel(wc->loop, u->timer);
    u->timer = 0;
    evloop_timer_add(wc->loop, PROXY_UPSTREAM_IDLE_MS, 0, on_pool_idle_timeout, u, &u->timer);
    up_update_watch(u);
}

/* The upstream of one attempt: the sidecar's one, or the slot the gateway picked. */
struct target {
    int slot;
    const struct sockaddr_storage *addr;
    socklen_t addr_len;
    const char *name;
};

static struct upconn *up_connect(struct worker_core *wc, const struct target *t)
{
    struct upconn *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->fields = calloc(wc->resp_limits.max_headers, sizeof(*u->fields));
    u->fd = socket(t->addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!u->fields || u->fd < 0)
        goto err_free;
    int one = 1;
    setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    u->slot = t->slot;
    u->host = t->name;
    if (connect(u->fd, (const struct sockaddr *)t->addr, t->addr_len) < 0 &&
        errno != EINPROGRESS)
        goto err_close;
    u->connecting = true;
    u->wc = wc;
    u->in.max = wc->resp_limits.max_header_bytes + PROXY_BODY_CHUNK;
    u->out.max = PROXY_HIGH_WATER + PROXY_BODY_CHUNK + wc->req_limits.max_header_bytes;
    http1_parser_init(&u->resp, HTTP1_RESPONSE, &wc->resp_limits, u->fields,
                      wc->resp_limits.max_headers);
    if (evloop_watch_add(wc->loop, u->fd, EV_WRITE, up_on_io, u))
        goto err_close;
    atomic_fetch_add_explicit(&wc->stats->upstream_connects, 1, memory_order_relaxed);
    return u;
err_close:
    close(u->fd);
err_free:
    free(u->fields);
    free(u);
    return NULL;
}

static struct upconn *up_acquire(struct worker_core *wc, const struct target *t)
{
    for (struct upconn **p = &wc->idle; *p; p = &(*p)->next_idle) {
        struct upconn *u = *p;
        if (u->slot != t->slot)
            continue;
        *p = u->next_idle;
        wc->nidle--;
        evloop_cancel(wc->loop, u->timer);
        u->timer = 0;
        u->reused = true;
        atomic_fetch_add_explicit(&wc->stats->upstream_reused, 1, memory_order_relaxed);
        return u;
    }
    return up_connect(wc, t);
}

/* ---- the gateway's side of an attempt ------------------------------------------------- */

/* Every attempt's end reaches the gateway once (passive health, balancer state). */
static void up_report(struct upconn *u, int outcome)
{
    if (u->slot < 0 || u->reported)
        return;
    u->reported = true;
    gateway_outcome(u->wc, u->slot, (clock_mono_ns() - u->attempt_ns) / 1000u, outcome);
}

/* A connection for a new attempt of c's request (exclude: the slot that just failed), or
 * NULL with *no_upstream when the gateway has nothing routable. */
static struct upconn *attempt_open(struct conn *c, int exclude, bool *no_upstream)
{
    struct worker_core *wc = c->wc;
    const struct agent *a = wc->agent;
    struct target t = {-1, &a->upstream_addr, a->upstream_addr_len, a->upstream_str};
    *no_upstream = false;
    if (wc->gw) {
        t.slot = gateway_pick(wc, c->gw_key_len ? c->gw_key : NULL, c->gw_key_len, exclude,
                              &t.addr, &t.addr_len, &t.name);
        if (t.slot < 0) {
            *no_upstream = true;
            return NULL;
        }
    }
    struct upconn *u = up_acquire(wc, &t);
    if (!u) {
        if (t.slot >= 0)
            gateway_outcome(wc, t.slot, 0, OUTCOME_NEUTRAL);
        return NULL;
    }
    u->host = t.name;
    u->attempt_ns = clock_mono_ns();
    u->reported = false;
    return u;
}

/* Gateway: the request's hash key, idempotency (RFC 9110 §9.2.2, or Idempotency-Key) and
 * its place in the retry budget. Read while the head is still in c->in. */
static void gateway_prepare(struct conn *c, const char *buf)
{
    const char *header;
    enum http1_method m = c->req.msg.method;
    c->gw_idempotent = m != HTTP1_METHOD_POST && m != HTTP1_METHOD_PATCH &&
                       m != HTTP1_METHOD_CONNECT && m != HTTP1_METHOD_OTHER;
    c->gw_key_len = 0;
    bool hashing = gateway_wants_header(c->wc->agent, &header);
    for (unsigned i = 0; i < c->req.msg.nfields; i++) {
        const struct http1_header *h = &c->fields[i];
        if (http1_span_equals(buf, h->name, "Idempotency-Key"))
            c->gw_idempotent = true;
        if (header && http1_span_equals(buf, h->name, header) && !c->gw_key_len) {
            c->gw_key_len = h->value.len < sizeof(c->gw_key) ? h->value.len : sizeof(c->gw_key);
            memcpy(c->gw_key, buf + h->value.off, c->gw_key_len);
        }
    }
    if (hashing && !header) { /* hash:ip */
        c->gw_key_len = strlen(c->peer_ip);
        memcpy(c->gw_key, c->peer_ip, c->gw_key_len);
    }
    if (!c->gw_counted) {
        c->gw_counted = true;
        gateway_request_started(c->wc->agent);
    }
}

/* Gateway: the budget's view of a finished request. */
static void gateway_release(struct conn *c)
{
    if (!c->gw_counted)
        return;
    for (; c->gw_retries; c->gw_retries--)
        gateway_retry_done(c->wc->agent);
    gateway_request_finished(c->wc->agent);
    c->gw_counted = false;
}

/* ---- the forwarded request head ------------------------------------------------------ */

static bool is_field(const char *buf, const struct http1_header *h, const char *name)
{
    return http1_span_equals(buf, h->name, name);
}

/* Request line in origin-form (RFC 9112 §3.2.1): absolute-form targets lose the authority. */
static bool head_request_line(struct iobuf *o, const struct conn *c, const char *buf)
{
    const struct http1_message *m = &c->req.msg;
    const char *t = buf + m->target.off;
    size_t len = m->target.len;
    if (m->target_form == HTTP1_TARGET_ABSOLUTE) {
        const char *p = memmem(t, len, "://", 3);
        const char *slash = p ? memchr(p + 3, '/', len - (size_t)(p + 3 - t)) : NULL;
        len = slash ? len - (size_t)(slash - t) : 1;
        t = slash ? slash : "/";
    }
    return iobuf_append(o, buf + m->method_name.off, m->method_name.len) &&
           iobuf_append(o, " ", 1) && iobuf_append(o, t, len) &&
           iobuf_append(o, " HTTP/1.1\r\n", 11);
}

static bool head_fields(struct iobuf *o, const struct conn *c, const char *buf,
                        struct http1_span *xff)
{
    const char *validators; /* the cache revalidates: its conditionals replace the client's */
    bool ours = respcache_validators(c, &validators);
    for (unsigned i = 0; i < c->req.msg.nfields; i++) {
        const struct http1_header *h = &c->fields[i];
        if (h->hop_by_hop || is_field(buf, h, "X-Request-Id") || is_field(buf, h, "traceparent"))
            continue;
        if (ours && (is_field(buf, h, "If-None-Match") || is_field(buf, h, "If-Modified-Since")))
            continue;
        if (is_field(buf, h, "X-Forwarded-For")) {
            *xff = h->value; /* the last one; ours is appended to it */
            continue;
        }
        if (!iobuf_append(o, buf + h->name.off, h->name.len) || !iobuf_append(o, ": ", 2) ||
            !iobuf_append(o, buf + h->value.off, h->value.len) || !iobuf_append(o, "\r\n", 2))
            return false;
    }
    return !ours || iobuf_append(o, validators, strlen(validators));
}

static bool build_upstream_head(struct conn *c, struct upconn *u)
{
    const char *buf = c->in.data + c->in.off;
    const struct http1_message *m = &c->req.msg;
    struct iobuf *o = &u->out;
    struct http1_span xff = {0, 0};
    char tp[TRACEPARENT_LEN + 1];
    traceparent_format(&c->trace, tp);
    if (!head_request_line(o, c, buf) || !head_fields(o, c, buf, &xff))
        return false;
    bool ok = true;
    if (!m->has_host)
        ok = iobuf_printf(o, "Host: %s\r\n", u->host);
    if (ok && xff.len)
        ok = iobuf_append(o, "X-Forwarded-For: ", 17) && iobuf_append(o, buf + xff.off, xff.len) &&
             iobuf_printf(o, ", %s\r\n", c->peer_ip);
    else if (ok)
        ok = iobuf_printf(o, "X-Forwarded-For: %s\r\n", c->peer_ip);
    /* RFC 9110 §7.6.3: Via names the protocol version the agent received */
    return ok &&
           iobuf_printf(o, "X-Request-Id: %s\r\ntraceparent: %s\r\nVia: 1.%u %s\r\n%s\r\n",
                        c->request_id, tp, m->version_minor ? 1 : 0, c->wc->agent->id,
                        m->body == HTTP1_BODY_CHUNKED ? "Transfer-Encoding: chunked\r\n" : "");
}

/* Moves request body bytes from the client's buffer to the upstream's, verbatim. */
static int forward_body(struct conn *c)
{
    struct upconn *u = c->up;
    while (!c->req_body_done && iobuf_pending(&c->in)) {
        if (iobuf_pending(&u->out) >= PROXY_HIGH_WATER)
            return HTTP1_NEED_MORE; /* backpressure: resume when the upstream drains */
        size_t used, room = u->out.max - iobuf_pending(&u->out);
        size_t n = iobuf_pending(&c->in) < room ? iobuf_pending(&c->in) : room;
        int rc = http1_parse_body(&c->req, c->in.data + c->in.off, n, &used, NULL);
        if (rc < 0)
            return rc;
        if (!iobuf_append(&u->out, c->in.data + c->in.off, used))
            return HTTP1_E_BODY_TOO_LARGE;
        c->in.off += used;
        c->bytes_in += used;
        if (rc == HTTP1_DONE)
            c->req_body_done = true;
        if (u->out.len > PROXY_REPLAY_MAX)
            u->replayable = false;
    }
    return c->req_body_done ? HTTP1_DONE : HTTP1_NEED_MORE;
}

/* ---- relaying the response ----------------------------------------------------------- */

static void on_upstream_timeout(struct evloop *loop, void *arg);
static void up_failed(struct upconn *u, bool timeout);

static void up_arm(struct upconn *u, uint64_t ms)
{
    if (u->timer && evloop_timer_reset(u->wc->loop, u->timer, ms) == SL_OK)
        return;
    u->timer = 0;
    evloop_timer_add(u->wc->loop, ms, 0, on_upstream_timeout, u, &u->timer);
}

static bool build_client_head(struct conn *c, struct upconn *u, const char *buf)
{
    const struct http1_message *m = &u->resp.msg;
    struct iobuf *o = &c->out;
    bool has_rid = false;
    if (m->body == HTTP1_BODY_UNTIL_CLOSE || (m->body == HTTP1_BODY_CHUNKED && c->http10))
        c->close_after = true; /* framing only a close can end for this client */
    u->decode = m->body == HTTP1_BODY_CHUNKED && c->http10;
    bool ok = iobuf_printf(o, "HTTP/1.1 %u ", m->status) &&
              iobuf_append(o, buf + m->reason.off, m->reason.len) && iobuf_append(o, "\r\n", 2);
    for (unsigned i = 0; ok && i < m->nfields; i++) {
        const struct http1_header *h = &u->fields[i];
        if (h->hop_by_hop)
            continue;
        has_rid |= is_field(buf, h, "X-Request-Id");
        ok = iobuf_append(o, buf + h->name.off, h->name.len) && iobuf_append(o, ": ", 2) &&
             iobuf_append(o, buf + h->value.off, h->value.len) && iobuf_append(o, "\r\n", 2);
    }
    if (ok && !has_rid)
        ok = iobuf_printf(o, "X-Request-Id: %s\r\n", c->request_id);
    if (ok && m->body == HTTP1_BODY_CHUNKED && !u->decode)
        ok = iobuf_append(o, "Transfer-Encoding: chunked\r\n", 28);
    if (ok)
        ok = limits_headers(c, o) && respcache_response_head(c, u, buf, o);
    if (ok && c->close_after)
        ok = iobuf_append(o, "Connection: close\r\n", 19);
    else if (ok && c->http10)
        ok = iobuf_append(o, "Connection: keep-alive\r\n", 24);
    return ok && iobuf_printf(o, "Via: 1.1 %s\r\n\r\n", c->wc->agent->id);
}

static void response_complete(struct conn *c, struct upconn *u);

/* The response head: interim 1xx relayed, the final one rewritten. <0 on error. */
#define RELAY_ANSWERED 2 /* relay_head answered from the cache and freed the upstream */

static int relay_head(struct conn *c, struct upconn *u)
{
    for (;;) {
        size_t used, before = c->out.len;
        const char *buf = u->in.data + u->in.off;
        int rc = http1_parse_head(&u->resp, buf, iobuf_pending(&u->in), &used);
        if (rc == HTTP1_NEED_MORE)
            return iobuf_pending(&u->in) >= u->in.max ? HTTP1_E_HEADERS_TOO_LARGE : rc;
        if (rc < 0 || u->resp.msg.body == HTTP1_BODY_TUNNEL)
            return rc < 0 ? rc : HTTP1_E_STATUS_LINE;
        unsigned status = u->resp.msg.status;
        if (status < 200) { /* interim (RFC 9110 §15.2): pass it on, read the next head */
            if (!c->http10 && !iobuf_append(&c->out, buf, used))
                return HTTP1_E_HEADERS_TOO_LARGE;
            u->in.off += used;
            http1_parser_reset_for_next(&u->resp);
            continue;
        }
        if (c->wc->gw && (status == 502 || status == 503 || status == 504)) {
            up_report(u, UH_OUTCOME_HTTP_5XX); /* another replica may answer instead */
            if (retry_elsewhere(c, u, false))
                return RELAY_ANSWERED; /* u is gone; c goes on with the retry */
        }
        const char *validators;
        if (status == 304 && respcache_validators(c, &validators)) {
            /* our revalidation (RFC 9111 §4.3.3): a 304 has no body; the stored response,
             * freshened, answers */
            u->in.off += used;
            int answered = respcache_revalidated(c, u, buf);
            up_report(u, UH_OUTCOME_OK);
            c->up = NULL;
            up_release(u, u->resp.msg.keep_alive && c->req_body_done);
            if (answered)
                proxy_answered(c, answered);
            else
                conn_answer(c, 502, "bad-upstream-response", "Bad Gateway",
                            "the upstream answered 304 to a revalidation of a response that "
                            "is no longer stored, or for another ETag", true);
            return RELAY_ANSWERED; /* c may be gone, u is released */
        }
        if (hc_is_error_status(status) && respcache_can_serve_stale(c)) {
            c->up = NULL; /* RFC 5861 §4: the error answer is dropped, unread */
            up_free(u);
            c->upstream_error = true;
            if (!respcache_stale_if_error(c))
                conn_answer(c, 502, "upstream-unavailable", "Bad Gateway",
                            "the upstream answered with an error", true);
            return RELAY_ANSWERED; /* c may be gone, u is */
        }
        if (!build_client_head(c, u, buf))
            return HTTP1_E_HEADERS_TOO_LARGE;
        u->in.off += used;
        u->head_done = true;
        c->resp_started = true;
        c->status = (int)status;
        c->bytes_out += c->out.len - before;
        return HTTP1_DONE;
    }
}

static int relay_body(struct conn *c, struct upconn *u)
{
    while (iobuf_pending(&u->in) || u->resp.msg.body == HTTP1_BODY_NONE) {
        if (iobuf_pending(&c->out) >= PROXY_HIGH_WATER)
            return HTTP1_NEED_MORE;
        size_t used;
        struct http1_chunk_out seg = {0};
        const char *in = u->in.data + u->in.off;
        /* segments when re-framing for an HTTP/1.0 client or storing a chunked answer */
        bool segs = u->decode || (c->rc_capture && u->resp.msg.body == HTTP1_BODY_CHUNKED);
        int rc = http1_parse_body(&u->resp, in, iobuf_pending(&u->in), &used,
                                  segs ? &seg : NULL);
        if (rc < 0)
            return rc;
        bool ok = u->decode ? (seg.kind != HTTP1_SEG_DATA ||
                               iobuf_append(&c->out, in + seg.off, seg.len))
                            : iobuf_append(&c->out, in, used);
        if (ok && c->rc_capture && (!segs || seg.kind == HTTP1_SEG_DATA))
            respcache_body(c, segs ? in + seg.off : in, segs ? seg.len : used);
        if (!ok)
            return HTTP1_E_BODY_TOO_LARGE;
        c->bytes_out += u->decode ? (seg.kind == HTTP1_SEG_DATA ? seg.len : 0) : used;
        u->in.off += used;
        if (rc == HTTP1_DONE)
            return rc;
    }
    return HTTP1_NEED_MORE;
}

/* Gateway: another replica takes the failed attempt's request, if RFC 9110 §9.2.2 and the
 * retry budget allow (gateway.h); u (already reported) is freed. false: nothing changed. */
static bool retry_elsewhere(struct conn *c, struct upconn *u, bool nothing_sent)
{
    struct worker_core *wc = c->wc;
    if (c->resp_started || !u->replayable || !c->req_body_done ||
        !gateway_may_retry(wc->agent, c->gw_retries, c->gw_idempotent, nothing_sent))
        return false;
    c->gw_retries++;
    bool none;
    struct upconn *fresh = attempt_open(c, u->slot, &none);
    if (!fresh || !iobuf_append(&fresh->out, u->out.data, u->out.len)) {
        if (fresh)
            up_free(fresh);
        return false;
    }
    fresh->client = c;
    fresh->replayable = true;
    http1_parser_set_request_method(&fresh->resp, c->req.msg.method);
    c->up = fresh;
    c->retried = true;
    up_free(u);
    up_arm(fresh, fresh->connecting ? wc->agent->cfg.connect_timeout_ms
                                    : wc->agent->cfg.upstream_timeout_ms);
    if (!fresh->connecting && iobuf_flush(&fresh->out, fresh->fd, true) < 0) {
        up_failed(fresh, false);
        return true;
    }
    up_update_watch(fresh);
    return true;
}

/* Upstream failed: the gateway retries on another replica when it may; the sidecar retries
 * a reused connection that died before answering (a keep-alive race) once for an
 * idempotent request; else 502/504 — or a cut if the answer began. */
static void up_failed(struct upconn *u, bool timeout)
{
    struct conn *c = u->client;
    enum http1_method m = c->req.msg.method;
    bool idempotent = m != HTTP1_METHOD_POST && m != HTTP1_METHOD_PATCH &&
                      m != HTTP1_METHOD_CONNECT && m != HTTP1_METHOD_OTHER;
    bool nothing_sent = u->connecting; /* never connected: any method may go elsewhere */
    /* a kept-alive connection the upstream closed first says nothing about its health */
    up_report(u, u->connecting                           ? UH_OUTCOME_CONNECT_FAIL
                 : !timeout && u->reused && !u->got_bytes ? OUTCOME_NEUTRAL
                 : !timeout && !u->got_bytes              ? UH_OUTCOME_CONNECT_FAIL
                                                          : UH_OUTCOME_HTTP_5XX);
    if (c->wc->gw) { /* anything of the answer relayed already stops it (retry_elsewhere) */
        if (retry_elsewhere(c, u, nothing_sent))
            return;
    } else if (!timeout && u->reused && !u->got_bytes && u->replayable && c->req_body_done &&
               !c->retried && idempotent) {
        struct target t = {-1, &c->wc->agent->upstream_addr, c->wc->agent->upstream_addr_len,
                           c->wc->agent->upstream_str};
        struct upconn *fresh = up_connect(c->wc, &t);
        if (fresh && iobuf_append(&fresh->out, u->out.data, u->out.len)) {
            c->retried = true;
            fresh->client = c;
            fresh->replayable = true;
            http1_parser_set_request_method(&fresh->resp, m);
            c->up = fresh;
            up_free(u);
            up_arm(fresh, c->wc->agent->cfg.connect_timeout_ms);
            return;
        }
        if (fresh)
            up_free(fresh);
    }
    c->upstream_timeout = timeout;
    c->upstream_error = !timeout;
    if (c->up == u) { /* the cache may answer instead: the upstream connection is done */
        c->up = NULL;
        up_free(u);
    }
    if (respcache_stale_if_error(c))
        return; /* answered from the cache (RFC 5861 §4); c may be gone */
    if (timeout)
        conn_answer(c, 504, "upstream-timeout", "Gateway Timeout",
                    "the upstream did not answer in time", false);
    else
        conn_answer(c, 502, "upstream-unavailable", "Bad Gateway",
                    "the upstream could not be reached or broke the connection", false);
}

static void on_upstream_timeout(struct evloop *loop, void *arg)
{
    (void)loop;
    struct upconn *u = arg;
    u->timer = 0;
    up_failed(u, !u->connecting);
}

/* New bytes from the upstream: head, then body, then completion. */
static void up_process(struct upconn *u)
{
    struct conn *c = u->client;
    int rc = HTTP1_DONE;
    if (!u->head_done) {
        rc = relay_head(c, u);
        if (rc == RELAY_ANSWERED)
            return;
        if (rc == HTTP1_DONE) /* from now on the timer bounds a stall of the body */
            up_arm(u, u->wc->agent->cfg.upstream_timeout_ms);
    }
    if (rc == HTTP1_DONE)
        rc = relay_body(c, u);
    if (rc == HTTP1_DONE) {
        response_complete(c, u);
        return;
    }
    if (rc < 0) {
        log_event(LOG_WARN, c->request_id, NULL, "bad upstream response", "error",
                  http1_err_str(rc), NULL);
        c->upstream_error = true;
        conn_answer(c, 502, "bad-upstream-response", "Bad Gateway",
                    "the upstream's response was not valid HTTP/1.1", true);
        return;
    }
    if (iobuf_flush(&c->out, c->fd, false) < 0) {
        conn_close(c, false);
        return;
    }
    conn_update_watch(c);
    up_update_watch(u);
}

static void response_complete(struct conn *c, struct upconn *u)
{
    up_report(u, u->resp.msg.status >= 500 ? UH_OUTCOME_HTTP_5XX : UH_OUTCOME_OK);
    respcache_complete(c, u);
    bool reuse = u->resp.msg.keep_alive && c->req_body_done;
    if (!c->req_body_done)
        c->close_after = true; /* answered early: the rest of the body cannot be framed */
    c->up = NULL;
    up_release(u, reuse);
    request_finish(c);
    conn_response_done(c);
}

/* ---- the request path ---------------------------------------------------------------- */

static void on_delay_done(struct evloop *loop, void *arg);
static void on_blackhole_timeout(struct evloop *loop, void *arg);
static void on_header_timeout(struct evloop *loop, void *arg);

static void request_forward(struct conn *c)
{
    struct worker_core *wc = c->wc;
    if (wc->gw)
        gateway_prepare(c, c->in.data + c->in.off);
    bool no_upstream;
    struct upconn *u = attempt_open(c, -1, &no_upstream);
    if (!u) {
        c->upstream_error = true;
        if (no_upstream)
            conn_answer(c, 503, "no-upstream", "Service Unavailable",
                        "no upstream is healthy and serving", false);
        else
            conn_answer(c, 502, "upstream-unavailable", "Bad Gateway",
                        "no connection to the upstream could be opened", false);
        return;
    }
    u->client = c;
    c->up = u;
    http1_parser_set_request_method(&u->resp, c->req.msg.method);
    c->req_body_done = c->req.msg.body == HTTP1_BODY_NONE;
    if (!build_upstream_head(c, u)) {
        conn_answer(c, 431, "headers-too-large", "Request Header Fields Too Large",
                    "the forwarded request head would be too large", true);
        return;
    }
    c->bytes_in += c->req.msg.head_bytes;
    c->in.off += c->req.msg.head_bytes;
    c->head_consumed = true;
    u->replayable = true;
    int rc = forward_body(c);
    if (rc < 0) {
        c->rejected = true;
        conn_answer(c, http1_err_status(HTTP1_REQUEST, rc), "bad-request", "Bad Request",
                    http1_err_str(rc), true);
        return;
    }
    c->state = CONN_FORWARD;
    c->sent_ns = clock_mono_ns();
    up_arm(u, u->connecting ? wc->agent->cfg.connect_timeout_ms
                            : wc->agent->cfg.upstream_timeout_ms);
    if (!u->connecting && iobuf_flush(&u->out, u->fd, u->replayable) < 0) {
        up_failed(u, false);
        return;
    }
    up_update_watch(u);
    conn_update_watch(c);
}

static void request_after_limits(struct conn *c);
static void on_cache_wait_timeout(struct evloop *loop, void *arg);
static void cache_step(struct conn *c);

/* A request head arrived: identify it, then rate limits, faults, forwarding. */
static void request_start(struct conn *c)
{
    struct worker_core *wc = c->wc;
    const char *buf = c->in.data + c->in.off;
    const struct http1_message *m = &c->req.msg;
    c->start_ns = clock_mono_ns();
    atomic_fetch_add_explicit(&wc->stats->in_flight, 1, memory_order_relaxed);
    span_copy(buf, m->method_name, c->method, sizeof(c->method));
    request_path(c, buf);
    request_ids(c, buf);
    c->http10 = m->version_minor == 0;
    c->close_after = !m->keep_alive || wc->quiescing ||
                     atomic_load_explicit(&wc->agent->stopping, memory_order_relaxed);
    evloop_cancel(wc->loop, c->timer);
    c->timer = 0;
    if (limits_start(c)) { /* Redis decides: the loop goes on meanwhile */
        c->state = CONN_LIMIT;
        conn_update_watch(c);
        return;
    }
    request_after_limits(c);
}

/* Rate limits have spoken: a 429 here, else faults (DESIGN §4.1), then forwarding. */
static void request_after_limits(struct conn *c)
{
    struct worker_core *wc = c->wc;
    const struct http1_message *m = &c->req.msg;
    if (!limits_verdict(c))
        return;
    faults_refresh(wc);
    c->faulted = fault_decide(&wc->faults, c->path, strlen(c->path), now_ms(wc), fault_rnd,
                              NULL, &c->fault);
    if (c->faulted && c->fault.reset) {
        conn_close(c, true);
    } else if (c->faulted && c->fault.blackhole) {
        c->state = CONN_BLACKHOLE; /* swallow: no answer until the client gives up */
        conn_arm(c, wc->agent->cfg.upstream_timeout_ms, on_blackhole_timeout);
        conn_update_watch(c);
    } else if (c->faulted && c->fault.delay_ms) {
        c->state = CONN_DELAY;
        conn_arm(c, c->fault.delay_ms, on_delay_done);
        conn_update_watch(c);
    } else if (c->faulted && c->fault.abort_status) {
        c->req_body_done = m->body == HTTP1_BODY_NONE;
        conn_answer(c, c->fault.abort_status, "fault-injected", "Injected fault",
                    "this response was injected by a fault rule", false);
    } else {
        cache_step(c);
    }
}

/* The response cache answers, parks the request (another request fetches this key, or
 * the shared tier is asked), or it goes upstream. */
static void cache_step(struct conn *c)
{
    int r = respcache_lookup(c); /* RC_ANSWERED: c may be gone */
    if (r == RC_MISS) {
        request_forward(c);
    } else if (r == RC_WAITING) {
        c->state = CONN_CACHE_WAIT;
        conn_arm(c, RESPCACHE_WAIT_MS, on_cache_wait_timeout);
        conn_update_watch(c);
    }
}

/* The coalesced fetch took too long: go upstream ourselves. */
static void on_cache_wait_timeout(struct evloop *loop, void *arg)
{
    (void)loop;
    struct conn *c = arg;
    c->timer = 0;
    respcache_unwait(c);
    c->rc_no_coalesce = true;
    request_forward(c);
}

void proxy_cache_resume(struct conn *c)
{
    evloop_cancel(c->wc->loop, c->timer);
    c->timer = 0;
    c->rc_waiting = false;
    c->rc_no_coalesce = true; /* one wait per request: now a hit, or upstream */
    cache_step(c);
}

void proxy_cache_retry(struct conn *c)
{
    evloop_cancel(c->wc->loop, c->timer);
    c->timer = 0;
    cache_step(c);
}

void proxy_limits_done(struct conn *c)
{
    c->state = CONN_HEAD; /* not forwarding yet: answers keep the connection */
    request_after_limits(c);
}

static void on_delay_done(struct evloop *loop, void *arg)
{
    (void)loop;
    struct conn *c = arg;
    c->timer = 0;
    if (c->fault.abort_status) {
        c->req_body_done = c->req.msg.body == HTTP1_BODY_NONE;
        conn_answer(c, c->fault.abort_status, "fault-injected", "Injected fault",
                    "this response was injected by a fault rule", false);
        return;
    }
    request_forward(c);
}

static void on_blackhole_timeout(struct evloop *loop, void *arg)
{
    (void)loop;
    struct conn *c = arg;
    c->timer = 0;
    conn_close(c, false);
}

static void on_idle_timeout(struct evloop *loop, void *arg)
{
    (void)loop;
    struct conn *c = arg;
    c->timer = 0;
    conn_close(c, false); /* no request in progress: nothing to answer */
}

/* RFC 9110 §15.5.9: the head did not arrive in time. */
static void on_header_timeout(struct evloop *loop, void *arg)
{
    (void)loop;
    struct conn *c = arg;
    c->timer = 0;
    c->start_ns = clock_mono_ns();
    atomic_fetch_add_explicit(&c->wc->stats->in_flight, 1, memory_order_relaxed);
    snprintf(c->method, sizeof(c->method), "-");
    rng_bytes(c->trace.trace_id, 16);
    trace_id_hex(c->trace.trace_id, c->request_id);
    c->rejected = true;
    c->close_after = true;
    conn_answer(c, 408, "request-timeout", "Request Timeout",
                "the request head did not arrive in time", true);
}

/* A malformed head: answer with the parser's status and close (framing is lost). */
static void request_reject(struct conn *c, int rc)
{
    c->start_ns = clock_mono_ns();
    atomic_fetch_add_explicit(&c->wc->stats->in_flight, 1, memory_order_relaxed);
    snprintf(c->method, sizeof(c->method), "-");
    uint8_t raw[16];
    rng_bytes(raw, sizeof(raw));
    trace_id_hex(raw, c->request_id);
    c->rejected = true;
    c->close_after = true;
    int status = http1_err_status(HTTP1_REQUEST, rc);
    conn_answer(c, status, "bad-request", http1_err_str(rc), http1_err_str(rc), true);
}

/* Bytes in the input while reading a head: parse, then start or reject. */
static void conn_process(struct conn *c)
{
    if (c->state != CONN_HEAD || !iobuf_pending(&c->in))
        return;
    size_t used;
    int rc = http1_parse_head(&c->req, c->in.data + c->in.off, iobuf_pending(&c->in), &used);
    if (rc == HTTP1_NEED_MORE)
        return; /* the header timer runs since the first byte (conn_read) */
    if (rc < 0)
        request_reject(c, rc);
    else
        request_start(c);
}

static void conn_next_request(struct conn *c)
{
    c->state = CONN_HEAD;
    http1_parser_reset_for_next(&c->req);
    c->status = 0;
    c->bytes_in = c->bytes_out = c->sent_ns = 0;
    c->faulted = c->upstream_error = c->upstream_timeout = c->rejected = false;
    c->retried = c->resp_started = c->req_body_done = c->head_consumed = false;
    c->path[0] = '\0';
    c->nlv = 0;
    c->limited_retry_s = 0;
    respcache_done(c);
    policy_set_unref(c->pset);
    c->pset = NULL;
    iobuf_compact(&c->in);
    if (iobuf_pending(&c->in)) { /* pipelined: the next head is already here */
        conn_arm(c, c->wc->agent->cfg.header_timeout_ms, on_header_timeout);
        conn_process(c);
    } else {
        conn_arm(c, c->wc->agent->cfg.idle_timeout_ms, on_idle_timeout);
        conn_update_watch(c);
    }
}

/* ---- I/O callbacks and interest ------------------------------------------------------ */

static void conn_update_watch(struct conn *c)
{
    unsigned ev = 0;
    bool want_read = c->state == CONN_HEAD || c->state == CONN_BLACKHOLE ||
                     (c->state == CONN_FORWARD && !c->req_body_done && c->up &&
                      iobuf_pending(&c->up->out) < PROXY_HIGH_WATER);
    if (want_read && !c->client_eof)
        ev |= EV_READ;
    if (iobuf_pending(&c->out))
        ev |= EV_WRITE;
    evloop_watch_mod(c->wc->loop, c->fd, ev);
}

static void up_update_watch(struct upconn *u)
{
    unsigned ev = EV_READ; /* idle: EOF detection; active: the response */
    if (u->connecting || iobuf_pending(&u->out))
        ev = u->connecting ? EV_WRITE : EV_READ | EV_WRITE;
    if (u->client && iobuf_pending(&u->client->out) >= PROXY_HIGH_WATER)
        ev &= ~EV_READ; /* backpressure from a slow client */
    evloop_watch_mod(u->wc->loop, u->fd, ev);
}

/* Client bytes arrived (or EOF). */
static void conn_read(struct conn *c)
{
    size_t before = iobuf_pending(&c->in);
    ssize_t n = iobuf_read(&c->in, c->fd);
    if (n == -1)
        return;
    if (n <= 0) { /* EOF or error: whatever was in progress cannot be answered */
        c->client_eof = true;
        conn_close(c, false);
        return;
    }
    if (c->state == CONN_BLACKHOLE) {
        c->in.off = c->in.len = 0; /* swallowed */
    } else if (c->state == CONN_HEAD) {
        if (before == 0 && c->req.msg.head_bytes == 0)
            conn_arm(c, c->wc->agent->cfg.header_timeout_ms, on_header_timeout);
        conn_process(c);
    } else if (c->state == CONN_FORWARD && !c->req_body_done) {
        int rc = forward_body(c);
        if (rc < 0) {
            c->rejected = true;
            conn_answer(c, http1_err_status(HTTP1_REQUEST, rc), "bad-request", "Bad Request",
                        http1_err_str(rc), true);
            return;
        }
        struct upconn *u = c->up;
        if (!u->connecting && iobuf_flush(&u->out, u->fd, u->replayable) < 0) {
            up_failed(u, false);
            return;
        }
        up_update_watch(u);
        conn_update_watch(c);
    }
}

static void conn_write(struct conn *c)
{
    int rc = iobuf_flush(&c->out, c->fd, false);
    if (rc < 0) {
        conn_close(c, false);
        return;
    }
    if (rc == 1 && c->state == CONN_CLOSING) {
        conn_close(c, false);
        return;
    }
    if (c->up) { /* room again: let the upstream's bytes flow */
        up_process(c->up);
        return;
    }
    conn_update_watch(c);
}

static void conn_on_io(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    struct conn *c = arg;
    if (events & EV_WRITE) {
        struct worker_core *wc = c->wc;
        unsigned n = wc->nconns;
        conn_write(c);
        if (wc->nconns != n)
            return; /* closed */
    }
    if (events & (EV_READ | EV_ERROR))
        conn_read(c);
}

static void up_connected(struct upconn *u)
{
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        up_failed(u, false);
        return;
    }
    u->connecting = false;
    up_arm(u, u->wc->agent->cfg.upstream_timeout_ms);
    if (iobuf_flush(&u->out, u->fd, u->replayable) < 0) {
        up_failed(u, false);
        return;
    }
    up_update_watch(u);
}

static void up_read(struct upconn *u)
{
    ssize_t n = iobuf_read(&u->in, u->fd);
    if (n == -1)
        return;
    if (n > 0) {
        u->got_bytes = true;
        up_arm(u, u->wc->agent->cfg.upstream_timeout_ms);
        up_process(u);
        return;
    }
    struct conn *c = u->client;
    if (n == 0 && u->head_done && http1_parse_eof(&u->resp) == HTTP1_DONE) {
        u->resp.msg.keep_alive = false;
        response_complete(c, u); /* a body delimited by the close (RFC 9112 §6.3 item 8) */
        return;
    }
    up_failed(u, false);
}

static void up_on_io(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    struct upconn *u = arg;
    if (!u->client) { /* idle in the pool: any event is the upstream closing it */
        pool_remove(u->wc, u);
        up_free(u);
        return;
    }
    if (u->connecting) {
        up_connected(u);
        return;
    }
    if (events & EV_WRITE) {
        struct conn *c = u->client;
        if (iobuf_flush(&u->out, u->fd, u->replayable && !u->got_bytes) < 0) {
            up_failed(u, false);
            return;
        }
        if (!c->req_body_done && iobuf_pending(&c->in)) {
            conn_read(c); /* resumes forwarding from what is buffered */
            return;
        }
        conn_update_watch(c);
        up_update_watch(u);
    }
    if (events & (EV_READ | EV_ERROR))
        up_read(u);
}

/* ---- shutdown ------------------------------------------------------------------------ */

void proxy_quiesce(struct worker_core *wc)
{
    wc->quiescing = true;
    for (struct conn *c = wc->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == CONN_HEAD && !iobuf_pending(&c->in) && !c->start_ns)
            conn_close(c, false); /* idle keep-alive connection */
        else
            c->close_after = true;
    }
    while (wc->idle) {
        struct upconn *u = wc->idle;
        wc->idle = u->next_idle;
        up_free(u);
    }
    wc->nidle = 0;
}

void proxy_close_all(struct worker_core *wc)
{
    while (wc->conns)
        conn_close(wc->conns, false);
    proxy_quiesce(wc);
    policy_set_unref(wc->policies);
    wc->policies = NULL;
}
