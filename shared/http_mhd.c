#include "http_mhd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "evloop.h"
#include "log.h"

#define DEFAULT_THREADS           4
#define DEFAULT_CONN_LIMIT        1024
#define DEFAULT_CONN_TIMEOUT_S    30
#define DEFAULT_CONN_MEMORY_BYTES (64 * 1024)
#define DEFAULT_MAX_BODY_BYTES    (64 * 1024)
#define CONN_MEMORY_MIN_BYTES     4096
/* After a 413 is decided mid-body, up to this many further body bytes are read and
 * dropped so that the client, still sending, gets to read the 413; past it the
 * connection is closed without an answer. */
#define HTTP_MHD_DISCARD_MAX (1024 * 1024)
#define METHOD_LOG_MAX       24 /* longer methods are cut in the access log */
#define MHD_MSG_MAX          512

struct http_server {
    struct MHD_Daemon *daemon;
    struct evloop *loop; /* external mode (http_mhd.h); NULL with internal threads */
    bool thread_per_connection;
    int epoll_fd;
    uint64_t timer;
    const struct http_route *routes;
    size_t nroutes;
    http_handler_fn handler; /* NULL: http_dispatch(routes) */
    void *app;
    size_t max_body_bytes;
    bool access_log;
    char name[HTTP_SERVER_NAME_MAX];
    uint16_t port;
    atomic_uint in_flight;
    int quiesced_fd; /* listen socket handed back by MHD_quiesce_daemon; -1 */
    /* The first MHD message while starting, for the error of a failed start. Claimed
     * once through the flag, read only after MHD_start_daemon failed (threads gone). */
    atomic_flag start_msg_claimed;
    char start_msg[HTTP_SERVER_ERR_MAX];
};

/* One request, from the URI log callback to the completion callback. Only the MHD
 * thread serving its connection touches it. */
struct mhd_req {
    struct http_server *srv;
    char *target; /* raw request target; req.path and req.query point into it */
    uint64_t start_ns;
    bool started;   /* the access handler has had its first call */
    bool answered;  /* a response is queued */
    bool too_large; /* the body passed max_body_bytes: the answer is 413 */
    size_t discarded_bytes;
    int status;
    char method[METHOD_LOG_MAX];
    struct buf body;
    struct http_req req;
};

/* ---- responses ---------------------------------------------------------------------- */

static void add_headers(const struct http_server *srv, struct MHD_Response *m,
                        const struct http_resp *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct http_header *h = &resp->headers[i];
        if (MHD_add_response_header(m, h->name, h->value) != MHD_YES)
            log_event(LOG_WARN, NULL, NULL, "response header refused", "server", srv->name,
                      "header", h->name, NULL);
    }
}

/* A streamed body (http_resp_stream) as MHD's content reader. */
struct stream {
    http_stream_fn fn;
    void *ctx;
    void (*free_fn)(void *ctx);
};

static ssize_t on_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *s = cls;
    long n = s->fn(s->ctx, buf, max);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void on_stream_free(void *cls)
{
    struct stream *s = cls;
    if (s->free_fn)
        s->free_fn(s->ctx);
    free(s);
}

/* Queue resp (released here, whatever happens). The body buffer moves to MHD. */
static bool queue_resp(struct mhd_req *r, struct MHD_Connection *con, struct http_resp *resp)
{
    struct MHD_Response *m;
    (void)http_resp_header(resp, "X-Request-Id", "%s", r->req.request_id);
    size_t len = resp->body.len;
    struct stream *s = resp->stream ? malloc(sizeof(*s)) : NULL;
    if (s) { /* the stream's context moves to MHD */
        *s = (struct stream){resp->stream, resp->stream_ctx, resp->stream_free};
        resp->stream_free = NULL;
        m = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, on_stream_read, s,
                                              on_stream_free);
        if (!m)
            on_stream_free(s);
    } else if (len > 0) {
        char *body = buf_detach(&resp->body);
        m = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        if (!m)
            free(body);
    } else {
        m = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    bool queued = false;
    if (m) {
        add_headers(r->srv, m, resp);
        queued = MHD_queue_response(con, (unsigned)resp->status, m) == MHD_YES;
        MHD_destroy_response(m);
    }
    if (queued) {
        r->answered = true;
        r->status = resp->status;
    }
    http_resp_release(resp);
    return queued;
}

/* RFC 9110 §15.5.14. false when MHD cannot take a response at this point. */
static bool answer_too_large(struct mhd_req *r, struct MHD_Connection *con)
{
    char detail[96];
    struct http_resp resp;
    snprintf(detail, sizeof(detail), "the request body is larger than %zu bytes",
             r->srv->max_body_bytes);
    r->too_large = true;
    http_resp_init(&resp);
    http_problem(&resp, &r->req, 413, "payload-too-large", NULL, detail, NULL);
    return queue_resp(r, con, &resp);
}

/* ---- the access handler: first call, body calls, last call ------------------------- */

static const char *mhd_header(const void *ctx, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)ctx, MHD_HEADER_KIND, name);
}

static void client_ip(struct MHD_Connection *con, char out[HTTP_REMOTE_IP_MAX])
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = '\0';
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  HTTP_REMOTE_IP_MAX);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  HTTP_REMOTE_IP_MAX);
}

/* MHD has already refused a malformed or repeated Content-Length with a 400. */
static bool content_length_over(struct MHD_Connection *con, size_t max_bytes)
{
    const char *cl =
        MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return false;
    return strtoull(cl, NULL, 10) > max_bytes;
}

/* First call: headers are in; set the request up. Answering here would make 0.9.75
 * close the connection, so only a hopeless request (body declared too large) is. */
static enum MHD_Result on_first_call(struct mhd_req *r, struct MHD_Connection *con,
                                     const char *method)
{
    r->started = true;
    snprintf(r->method, sizeof(r->method), "%s", method);
    char *query = strchr(r->target, '?');
    if (query)
        *query++ = '\0';
    http_req_init(&r->req, method, r->target, query);
    r->req.app = r->srv->app;
    r->req.header_fn = mhd_header;
    r->req.header_ctx = con;
    http_request_id_accept(mhd_header(con, "X-Request-Id"), r->req.request_id);
    client_ip(con, r->req.remote_ip);
    if (content_length_over(con, r->srv->max_body_bytes))
        return answer_too_large(r, con) ? MHD_YES : MHD_NO;
    return MHD_YES;
}

static enum MHD_Result on_body(struct mhd_req *r, struct MHD_Connection *con, const char *data,
                               size_t *size)
{
    size_t n = *size;
    *size = 0;
    if (r->too_large) {
        r->discarded_bytes += n;
        return r->discarded_bytes > HTTP_MHD_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    int rc = buf_append(&r->body, data, n);
    if (rc == SL_OK)
        return MHD_YES;
    if (rc != SL_ETOOBIG) {
        log_event(LOG_ERROR, r->req.request_id, NULL, "request body dropped", "server",
                  r->srv->name, "error", err_str(rc), NULL);
        return MHD_NO;
    }
    /* The body grew past the bound (chunked, or longer than its Content-Length said).
     * 0.9.75 refuses a response in the middle of a body (MHD_queue_response says MHD_NO,
     * checked): then the 413 goes out after the last chunk, see on_last_call. */
    buf_release(&r->body);
    r->discarded_bytes = n;
    (void)answer_too_large(r, con);
    return MHD_YES;
}

static void serve(const struct http_server *srv, struct http_req *req, struct http_resp *resp)
{
    if (!srv->handler) {
        http_dispatch(srv->routes, srv->nroutes, req, resp);
        return;
    }
    srv->handler(req, resp);
    if (resp->status == 0)
        http_problem(resp, req, 500, "internal", NULL, "the handler gave no response", NULL);
}

/* Last call: the whole body is in. */
static enum MHD_Result on_last_call(struct mhd_req *r, struct MHD_Connection *con)
{
    if (r->too_large)
        return answer_too_large(r, con) ? MHD_YES : MHD_NO;
    struct http_resp resp;
    http_resp_init(&resp);
    r->req.body = r->body.data ? r->body.data : "";
    r->req.body_len = r->body.len;
    serve(r->srv, &r->req, &resp);
    return queue_resp(r, con, &resp) ? MHD_YES : MHD_NO;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *con, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct mhd_req *r = *con_cls;
    (void)cls;
    (void)url; /* already unescaped by MHD; the raw target came to on_uri */
    (void)version;
    if (!r)
        return MHD_NO; /* on_uri ran out of memory: drop the connection */
    if (!r->started)
        return on_first_call(r, con, method);
    if (*upload_data_size > 0)
        return on_body(r, con, upload_data, upload_data_size);
    if (r->answered)
        return MHD_YES;
    return on_last_call(r, con);
}

/* ---- per-request context: URI log callback → completion callback -------------------- */

/* Called once per request, with the raw target, before the headers are parsed; what it
 * returns is the request's *con_cls. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
    struct http_server *srv = cls;
    (void)con;
    struct mhd_req *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->target = strdup(uri);
    if (!r->target) {
        free(r);
        return NULL;
    }
    r->srv = srv;
    r->start_ns = clock_mono_ns();
    buf_init(&r->body, srv->max_body_bytes);
    atomic_fetch_add(&srv->in_flight, 1);
    return r;
}

struct outcome {
    enum MHD_RequestTerminationCode code;
    const char *name;
};

static const struct outcome outcomes[] = {
    {MHD_REQUEST_TERMINATED_COMPLETED_OK, "ok"},
    {MHD_REQUEST_TERMINATED_WITH_ERROR, "error"},
    {MHD_REQUEST_TERMINATED_TIMEOUT_REACHED, "timeout"},
    {MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN, "shutdown"},
    {MHD_REQUEST_TERMINATED_READ_ERROR, "read-error"},
    {MHD_REQUEST_TERMINATED_CLIENT_ABORT, "client-abort"},
};

static const char *outcome_name(enum MHD_RequestTerminationCode code)
{
    for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
        if (outcomes[i].code == code)
            return outcomes[i].name;
    return "unknown";
}

static void log_access(const struct mhd_req *r, enum MHD_RequestTerminationCode code)
{
    char status[16], duration[32];
    snprintf(status, sizeof(status), "%d", r->status);
    snprintf(duration, sizeof(duration), "%.3f", (double)(clock_mono_ns() - r->start_ns) / 1e6);
    bool ok = code == MHD_REQUEST_TERMINATED_COMPLETED_OK;
    log_event(LOG_INFO, r->req.request_id, NULL, "request", "server", r->srv->name, "method",
              r->method, "path", r->req.path, "status", status, "duration_ms", duration,
              ok ? NULL : "outcome", outcome_name(code), NULL);
}

static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    struct http_server *srv = cls;
    struct mhd_req *r = *con_cls;
    (void)con;
    if (!r)
        return;
    *con_cls = NULL;
    if (srv->access_log && r->started)
        log_access(r, code);
    buf_release(&r->body);
    free(r->target);
    free(r);
    atomic_fetch_sub(&srv->in_flight, 1);
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct http_server *srv = cls;
    char msg[MHD_MSG_MAX];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    if (!atomic_flag_test_and_set(&srv->start_msg_claimed))
        snprintf(srv->start_msg, sizeof(srv->start_msg), "%.200s", msg);
    log_event(LOG_WARN, NULL, NULL, "libmicrohttpd", "server", srv->name, "detail", msg, NULL);
}

/* ---- start and stop ----------------------------------------------------------------- */

struct server_limits {
    unsigned threads, conn_limit, per_ip_conn_limit, conn_timeout_s;
    size_t conn_memory_bytes, max_body_bytes;
};

union sockaddr_any {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

static unsigned or_default(unsigned v, unsigned dflt)
{
    return v ? v : dflt;
}

static int resolve_limits(const struct http_server_config *cfg, struct server_limits *lim,
                          char err[HTTP_SERVER_ERR_MAX])
{
    lim->threads = or_default(cfg->threads, DEFAULT_THREADS);
    lim->conn_limit = or_default(cfg->conn_limit, DEFAULT_CONN_LIMIT);
    lim->per_ip_conn_limit = cfg->per_ip_conn_limit;
    lim->conn_timeout_s = or_default(cfg->conn_timeout_s, DEFAULT_CONN_TIMEOUT_S);
    lim->conn_memory_bytes =
        cfg->conn_memory_limit ? cfg->conn_memory_limit : DEFAULT_CONN_MEMORY_BYTES;
    lim->max_body_bytes = cfg->max_body_bytes ? cfg->max_body_bytes : DEFAULT_MAX_BODY_BYTES;
    if (lim->threads > HTTP_SERVER_THREADS_MAX)
        snprintf(err, HTTP_SERVER_ERR_MAX, "threads must be 1..%d", HTTP_SERVER_THREADS_MAX);
    else if (lim->conn_limit < lim->threads) /* MHD splits the limit over its threads */
        snprintf(err, HTTP_SERVER_ERR_MAX, "conn_limit must be at least threads (%u)",
                 lim->threads);
    else if (lim->conn_memory_bytes < CONN_MEMORY_MIN_BYTES)
        snprintf(err, HTTP_SERVER_ERR_MAX, "conn_memory_limit must be at least %d bytes",
                 CONN_MEMORY_MIN_BYTES);
    else if (!cfg->routes && cfg->nroutes)
        snprintf(err, HTTP_SERVER_ERR_MAX, "routes is NULL but nroutes is %zu", cfg->nroutes);
    else
        return SL_OK;
    return SL_EINVAL;
}

/* An IP literal ("127.0.0.1", "::1", "[::1]") or "localhost" (IPv4 loopback). */
static int parse_host(const char *host, uint16_t port, union sockaddr_any *out, bool *ipv6)
{
    char lit[INET6_ADDRSTRLEN];
    size_t n = strlen(host);
    if (strcmp(host, "localhost") == 0) {
        host = "127.0.0.1";
    } else if (host[0] == '[' && n >= 2 && host[n - 1] == ']' && n - 2 < sizeof(lit)) {
        memcpy(lit, host + 1, n - 2);
        lit[n - 2] = '\0';
        host = lit;
    }
    memset(out, 0, sizeof(*out));
    *ipv6 = false;
    if (inet_pton(AF_INET, host, &out->in4.sin_addr) == 1) {
        out->in4.sin_family = AF_INET;
        out->in4.sin_port = htons(port);
        return SL_OK;
    }
    if (inet_pton(AF_INET6, host, &out->in6.sin6_addr) == 1) {
        out->in6.sin6_family = AF_INET6;
        out->in6.sin6_port = htons(port);
        *ipv6 = true;
        return SL_OK;
    }
    return SL_EINVAL;
}

static struct MHD_Daemon *start_daemon(struct http_server *srv, const struct server_limits *lim,
                                       const union sockaddr_any *addr, uint16_t port, bool ipv6)
{
    /* MHD_USE_ITC: MHD_quiesce_daemon needs it with internal threads. SO_REUSEADDR is
     * MHD's default; MHD_OPTION_LISTENING_ADDRESS_REUSE=1 would add SO_REUSEPORT and let
     * a second server share the port silently, so it is not set. */
    unsigned flags = (srv->loop                    ? MHD_USE_EPOLL
                      : srv->thread_per_connection ? MHD_USE_THREAD_PER_CONNECTION |
                                                         MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ITC
                                                   : MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC) |
                     MHD_USE_ERROR_LOG | (ipv6 ? MHD_USE_IPv6 : 0);
    /* one option and its arguments per line */
    /* clang-format off */
    return MHD_start_daemon(
        flags, port /* only for MHD's messages: SOCK_ADDR decides */, NULL, NULL,
        &on_access, srv,
        MHD_OPTION_EXTERNAL_LOGGER, (MHD_LogCallback)on_mhd_log, srv, /* first: see docs */
        MHD_OPTION_SOCK_ADDR, &addr->sa,
        MHD_OPTION_CONNECTION_LIMIT, lim->conn_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, lim->per_ip_conn_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, lim->conn_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, lim->conn_memory_bytes,
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1, /* RFC 9112 §3.2, §5.1: Host, no "name :" */
        MHD_OPTION_URI_LOG_CALLBACK, &on_uri, srv,
        MHD_OPTION_NOTIFY_COMPLETED, &on_completed, srv,
        /* last, so that external mode can end the list before it: no pool without threads */
        srv->loop || srv->thread_per_connection ? MHD_OPTION_END : MHD_OPTION_THREAD_POOL_SIZE,
        lim->threads,
        MHD_OPTION_END);
    /* clang-format on */
}

static struct http_server *server_new(const struct http_server_config *cfg,
                                      const struct server_limits *lim)
{
    struct http_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->routes = cfg->routes;
    srv->nroutes = cfg->nroutes;
    srv->handler = cfg->handler;
    srv->app = cfg->app;
    srv->max_body_bytes = lim->max_body_bytes;
    srv->access_log = cfg->access_log;
    snprintf(srv->name, sizeof(srv->name), "%s", cfg->name ? cfg->name : "http");
    atomic_init(&srv->in_flight, 0);
    atomic_flag_clear(&srv->start_msg_claimed);
    srv->quiesced_fd = -1;
    return srv;
}

static void log_listening(const struct http_server *srv, const char *host, bool ipv6)
{
    char listen[INET6_ADDRSTRLEN + 16];
    bool bracket = ipv6 && host[0] != '['; /* RFC 3986 §3.2.2: "[::1]:8080" */
    snprintf(listen, sizeof(listen), "%s%.*s%s:%u", bracket ? "[" : "", INET6_ADDRSTRLEN, host,
             bracket ? "]" : "", (unsigned)srv->port);
    log_event(LOG_INFO, NULL, NULL, "listening", "server", srv->name, "listen", listen, NULL);
}

/* ---- external mode: MHD on an evloop (REFERENCE: watch MHD_DAEMON_INFO_EPOLL_FD, call
 * MHD_run when it is readable and when MHD_get_timeout says) -------------------------- */

static void mhd_run(struct http_server *srv);

static void on_mhd_timer(struct evloop *loop, void *arg)
{
    (void)loop;
    struct http_server *srv = arg;
    srv->timer = 0;
    mhd_run(srv);
}

static void on_mhd_ready(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    (void)fd;
    (void)events;
    mhd_run(arg);
}

static void mhd_run(struct http_server *srv)
{
    MHD_run(srv->daemon); /* non-blocking in external mode */
    MHD_UNSIGNED_LONG_LONG ms;
    evloop_cancel(srv->loop, srv->timer);
    srv->timer = 0;
    if (MHD_get_timeout(srv->daemon, &ms) == MHD_YES)
        evloop_timer_add(srv->loop, ms, 0, on_mhd_timer, srv, &srv->timer);
}

static int attach_loop(struct http_server *srv)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon,
                                                           MHD_DAEMON_INFO_EPOLL_FD);
    if (!info || info->epoll_fd < 0)
        return SL_EINVAL;
    srv->epoll_fd = info->epoll_fd;
    int rc = evloop_watch_add(srv->loop, srv->epoll_fd, EV_READ, on_mhd_ready, srv);
    if (rc == SL_OK)
        mhd_run(srv); /* arms the first timer */
    return rc;
}

struct http_server *http_server_start(const struct http_server_config *cfg,
                                      char err[HTTP_SERVER_ERR_MAX])
{
    struct server_limits lim;
    union sockaddr_any addr;
    bool ipv6;
    const char *host = cfg->host && cfg->host[0] ? cfg->host : "127.0.0.1";
    if (resolve_limits(cfg, &lim, err) != SL_OK)
        return NULL;
    if (parse_host(host, cfg->port, &addr, &ipv6) != SL_OK) {
        snprintf(err, HTTP_SERVER_ERR_MAX, "host '%.64s' is not an IP address", host);
        return NULL;
    }
    struct http_server *srv = server_new(cfg, &lim);
    if (!srv) {
        snprintf(err, HTTP_SERVER_ERR_MAX, "out of memory");
        return NULL;
    }
    srv->loop = cfg->loop;
    srv->thread_per_connection = cfg->thread_per_connection && !cfg->loop;
    srv->daemon = start_daemon(srv, &lim, &addr, cfg->port, ipv6);
    if (srv->daemon && srv->loop && attach_loop(srv) != SL_OK) {
        MHD_stop_daemon(srv->daemon);
        srv->daemon = NULL;
    }
    if (!srv->daemon) {
        snprintf(err, HTTP_SERVER_ERR_MAX, "cannot serve on %.64s port %u: %.160s", host,
                 (unsigned)cfg->port, srv->start_msg[0] ? srv->start_msg : "MHD refused");
        free(srv);
        return NULL;
    }
    (void)atomic_flag_test_and_set(&srv->start_msg_claimed); /* runtime messages: log only */
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info && info->port ? info->port : cfg->port;
    log_listening(srv, host, ipv6);
    return srv;
}

uint16_t http_server_port(const struct http_server *srv)
{
    return srv->port;
}

unsigned http_server_in_flight(const struct http_server *srv)
{
    return atomic_load(&srv->in_flight);
}

void http_server_quiesce(struct http_server *srv)
{
    if (srv->quiesced_fd >= 0)
        return;
    MHD_socket fd = MHD_quiesce_daemon(srv->daemon);
    if (fd == MHD_INVALID_SOCKET)
        return;
    /* MHD forbids close() before MHD_stop_daemon while its threads may still hold the fd.
     * shutdown() takes a Linux socket out of LISTEN now: queued and new connection
     * attempts are refused, and with SO_REUSEADDR another process may bind the port. */
    (void)shutdown(fd, SHUT_RDWR);
    srv->quiesced_fd = fd;
}

void http_server_stop(struct http_server *srv)
{
    if (!srv)
        return;
    if (srv->loop) {
        evloop_cancel(srv->loop, srv->timer);
        evloop_watch_del(srv->loop, srv->epoll_fd);
    }
    MHD_stop_daemon(srv->daemon);
    if (srv->quiesced_fd >= 0)
        close(srv->quiesced_fd);
    free(srv);
}
