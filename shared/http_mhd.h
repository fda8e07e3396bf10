/*
 * http_mhd — an HTTP server on libmicrohttpd (0.9.75) that serves a struct http_route
 * table: the sample API, the agent's admin API and the control plane all start one.
 * The only file that includes <microhttpd.h>; handlers see struct http_req/http_resp
 * (http.h) and never an MHD type. Not for the data plane (DESIGN §3): keep these
 * listeners on loopback unless a key protects them.
 *
 * Per request: the adapter keeps or makes an X-Request-Id (echoed on every answer),
 * collects the body up to max_body_bytes (a larger Content-Length, or a chunked body
 * that grows past it, gets a 413 problem), calls http_dispatch() on one of MHD's
 * threads, and queues the response on the access handler's second call, never the
 * first, which is what keeps 0.9.75's keep-alive working. Request state lives in a
 * per-request context; the server's only shared mutable state is an atomic counter, so
 * handlers run concurrently on up to `threads` threads and must be thread-safe.
 *
 * Ownership: the config's routes and app must outlive the server; host and name are only
 * read (name copied) by http_server_start.
 */
#ifndef SLUICE_HTTP_MHD_H
#define SLUICE_HTTP_MHD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

struct evloop;

#define HTTP_SERVER_ERR_MAX     256
#define HTTP_SERVER_NAME_MAX    32 /* longer names are cut in logs */
#define HTTP_SERVER_THREADS_MAX 64

/* Zero means "the default" for every number below, except per_ip_conn_limit, where 0
 * means no per-IP limit (it is still passed to MHD explicitly). */
struct http_server_config {
    const char *host;           /* IPv4/IPv6 literal, "[::1]" or "localhost"; NULL: 127.0.0.1 */
    uint16_t port;              /* 0: the kernel picks a free port (http_server_port) */
    unsigned threads;           /* MHD epoll thread pool size; default 4 */
    unsigned conn_limit;        /* connections in total; default 1024; split over threads */
    unsigned per_ip_conn_limit; /* 0: off */
    unsigned conn_timeout_s;    /* idle connection timeout; default 30 */
    size_t conn_memory_limit;   /* MHD per-connection pool (headers); default 64 KiB */
    size_t max_body_bytes;      /* request body bound; default 64 KiB */
    const struct http_route *routes;
    size_t nroutes;
    /* Optional front handler: when set, every request goes to it instead of
     * http_dispatch(routes) (it usually wraps http_dispatch with middleware: path
     * rewriting, limits...); routes may then be empty. */
    http_handler_fn handler;
    void *app;        /* handed to handlers as req->app */
    bool access_log;  /* one log_event per request: method, path, status, duration_ms */
    const char *name; /* for logs; NULL: "http" */
    bool thread_per_connection; /* a thread per connection (MHD's poll mode), so that
                                 * streamed answers (http_resp_stream, SSE) may block:
                                 * for the control plane; not with loop */
    struct evloop *loop; /* external mode: no MHD thread; the server runs on this loop
                          * (MHD_USE_EPOLL, its epoll fd watched, MHD_get_timeout as a
                          * timer) and handlers run on the loop's thread. NULL: MHD's own
                          * thread pool. Stop the loop (or call from its thread) before
                          * http_server_stop. */
};

struct http_server;

/* Bind, listen and start serving. NULL with a message in err when the config is invalid
 * or the address cannot be bound. */
struct http_server *http_server_start(const struct http_server_config *cfg,
                                      char err[HTTP_SERVER_ERR_MAX]);
/* The bound port (the real one when the config asked for 0). */
uint16_t http_server_port(const struct http_server *srv);
/* Requests started and not yet completed (read, handled or being sent). */
unsigned http_server_in_flight(const struct http_server *srv);
/* Stop accepting: new connection attempts are refused at once, while open connections
 * finish their requests (drain: poll http_server_in_flight). Idempotent. */
void http_server_quiesce(struct http_server *srv);
/* Close every connection, stop the threads and free the server. NULL is fine.
 * Start, quiesce and stop belong to one controlling thread (not to handlers). */
void http_server_stop(struct http_server *srv);

#endif
