/*
 * http — the HTTP server core every libmicrohttpd-based server in sluice shares (sample
 * API, agent admin API, control plane): request and response types, the routing table,
 * RFC 9457 problem responses and a few header helpers.
 *
 * Pure: no libmicrohttpd here (http_mhd.c adapts it), so handlers and routes are unit
 * tested with hand-built requests. Data flow: the adapter fills a struct http_req, calls
 * http_dispatch(), which matches the route table and calls one handler, which fills a
 * struct http_resp; the adapter writes that out.
 *
 * Ownership: a request's strings belong to the adapter and live until the handler
 * returns. A response owns copies of its header fields and its body; http_resp_release
 * frees them. Every table here has a named bound and says what happens at it.
 * Thread safety: no shared mutable state; one request is handled by one thread.
 */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "buf.h"

#define HTTP_PARAMS_MAX        8    /* {name} captures per route pattern */
#define HTTP_PARAM_BYTES_MAX   1024 /* decoded capture values of one request, NULs included */
#define HTTP_PATH_SEGMENTS_MAX 32   /* a longer path matches no route (404) */
#define HTTP_REQUEST_ID_MAX    65   /* 64 characters + NUL */
#define HTTP_REMOTE_IP_MAX     64
#define HTTP_RESP_HEADERS_MAX  24            /* a 25th field fails with SL_ETOOBIG */
#define HTTP_HEADER_VALUE_MAX  8192          /* one field value; longer fails with SL_ETOOBIG */
#define HTTP_RESP_BODY_MAX     (1024 * 1024) /* a larger body turns the answer into a 500 */
#define HTTP_ALLOW_MAX         128           /* the Allow value of a 405 */

/* Looks a request header field up by name (case-insensitive); NULL when absent. */
typedef const char *(*http_header_fn)(const void *ctx, const char *name);

struct http_param {
    const char *name; /* into the route pattern, NOT NUL-terminated: use name_len */
    size_t name_len;
    const char *value; /* percent-decoded, NUL-terminated, inside param_bytes */
};

struct http_req {
    const char *method;
    const char *path;  /* raw request path as sent (still percent-encoded), no query */
    const char *query; /* raw query after '?', NULL when the target had no '?' */
    const char *body;  /* "" when none; the MHD adapter NUL-terminates it, but it may hold
                        * NULs: body_len is the length */
    size_t body_len;
    char request_id[HTTP_REQUEST_ID_MAX];
    char remote_ip[HTTP_REMOTE_IP_MAX];
    void *app;                 /* the server's user data (http_server_config.app) */
    const char *route_pattern; /* the matched route's pattern, set by routing */
    const char *instance;      /* problem "instance" when not the path (a rewritten path) */
    struct http_param params[HTTP_PARAMS_MAX];
    size_t nparams;
    char param_bytes[HTTP_PARAM_BYTES_MAX];
    /* adapter-private: how http_req_header finds fields */
    http_header_fn header_fn;
    const void *header_ctx;
};

/* Zero the request and set its target (strings are borrowed, not copied). */
void http_req_init(struct http_req *req, const char *method, const char *path, const char *query);
/* A request header field (case-insensitive name), NULL when absent. */
const char *http_req_header(const struct http_req *req, const char *name);
/* A {name} capture of the matched route, percent-decoded; NULL when the route has none. */
const char *http_req_param(const struct http_req *req, const char *name);
/* The first query parameter called name (application/x-www-form-urlencoded: '+' is a
 * space, %XX decoded; "a" alone is a present, empty value). false when absent, badly
 * encoded, containing %00, or when the value and its NUL do not fit in cap. */
bool http_req_query(const struct http_req *req, const char *name, char *out, size_t cap);
/* The same lookup in any application/x-www-form-urlencoded text (a NUL-terminated
 * request body, say); false for NULL. */
bool http_form_get(const char *form, const char *name, char *out, size_t cap);

struct http_header {
    char *name;
    char *value;
};

/* A streamed body (Server-Sent Events): called on the server's thread for that connection
 * until it returns -1 (end). It returns how many bytes it put in buf (at most max), and
 * may block a while for them (the server runs streaming responses on a thread per
 * connection); 0 means "nothing yet, call again". */
typedef long (*http_stream_fn)(void *ctx, char *buf, size_t max);

struct http_resp {
    int status; /* 0 until a handler answers */
    struct http_header headers[HTTP_RESP_HEADERS_MAX];
    size_t nheaders;
    struct buf body; /* bounded by HTTP_RESP_BODY_MAX */
    http_stream_fn stream; /* set by http_resp_stream: the body comes from it */
    void *stream_ctx;
    void (*stream_free)(void *ctx); /* called once when the stream ends or is dropped */
};

void http_resp_init(struct http_resp *resp);
/* A streamed answer: status, Content-Type, then fn's bytes until it ends. The response
 * owns ctx from here (free_fn(ctx) when done, also when the answer is never sent). Only
 * servers started with thread_per_connection should stream (http_mhd.h). */
void http_resp_stream(struct http_resp *resp, int status, const char *content_type,
                      http_stream_fn fn, void *ctx, void (*free_fn)(void *ctx));
void http_resp_release(struct http_resp *resp);
/* Set a header field, replacing any field of the same name (case-insensitive). The value
 * is printf-style. The name must be an RFC 9110 §5.6.2 token and the value may not hold
 * CR, LF, NUL or other controls except HTAB (§5.5): SL_EINVAL, nothing changed.
 * SL_ETOOBIG past HTTP_RESP_HEADERS_MAX fields or HTTP_HEADER_VALUE_MAX bytes. */
int http_resp_header(struct http_resp *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, but always adds another field line (for Set-Cookie, Link, ...). */
int http_resp_header_add(struct http_resp *resp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The first field called name, NULL when absent. */
const char *http_resp_header_get(const struct http_resp *resp, const char *name);
/* Body = compact JSON of body (reference stolen), Content-Type: application/json.
 * A body that cannot be serialized or is over HTTP_RESP_BODY_MAX gives a 500 problem. */
void http_resp_json(struct http_resp *resp, int status, json_t *body);
/* Body = printf-style text, Content-Type: text/plain; charset=utf-8 (a later
 * http_resp_header may replace it, e.g. for Prometheus). Over the bound: 500 problem. */
void http_resp_text(struct http_resp *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Body = len bytes with the given Content-Type. SL_ETOOBIG (response untouched) past
 * HTTP_RESP_BODY_MAX. */
int http_resp_bytes(struct http_resp *resp, int status, const char *content_type, const void *data,
                    size_t len);

/* RFC 9457 problem details, Content-Type: application/problem+json. Body members in
 * order: "type":"urn:sluice:problem:<slug>", "title" (http_reason(status) when NULL),
 * "status", "detail" (omitted when NULL), "instance" (req->path) and "request_id" (both
 * omitted when req is NULL), then the members of extra (stolen, may be NULL; it cannot
 * override the members above), e.g. "errors". Replaces whatever resp held, headers
 * included. For 429 and 503 the caller adds Retry-After itself (RFC 9110 §10.2.3). */
void http_problem(struct http_resp *resp, const struct http_req *req, int status, const char *slug,
                  const char *title, const char *detail, json_t *extra);

/* ---- routing ------------------------------------------------------------------------ */

typedef void (*http_handler_fn)(struct http_req *req, struct http_resp *resp);

/* A pattern is '/'-separated segments: literals and {name} captures, each capture
 * exactly one non-empty segment: "/v1/links/{code}/stats", "/{code}". Matching is on
 * the raw (percent-encoded) path; captured values are percent-decoded. */
struct http_route {
    const char *method;
    const char *pattern;
    http_handler_fn handler;
};

enum http_match {
    HTTP_MATCH_FOUND,
    HTTP_MATCH_NOT_FOUND,
    HTTP_MATCH_METHOD_NOT_ALLOWED,
};

/* Among the routes whose method fits (a HEAD request also fits GET routes; an explicit
 * HEAD route wins a tie) and whose pattern matches the path, pick the most specific: at
 * the first segment where two patterns differ, a literal beats a capture, whatever the
 * table order. FOUND: *found is set and req->params / route_pattern are filled.
 * METHOD_NOT_ALLOWED: some pattern matches the path; allow lists, in table order without
 * repeats, every method of such routes, with HEAD right after GET ("GET, HEAD, PUT").
 * A capture whose decoded value is invalid (%00, bad %XX) or does not fit
 * HTTP_PARAM_BYTES_MAX does not match. */
enum http_match http_route_match(const struct http_route *routes, size_t nroutes,
                                 struct http_req *req, const struct http_route **found,
                                 char allow[HTTP_ALLOW_MAX]);
/* Match and call the handler; otherwise a 404 problem (slug not-found) or a 405 problem
 * (slug method-not-allowed) with Allow (RFC 9110 §15.5.6). A handler that leaves
 * resp->status at 0 gets a 500 problem. */
void http_dispatch(const struct http_route *routes, size_t nroutes, struct http_req *req,
                   struct http_resp *resp);

/* ---- helpers ------------------------------------------------------------------------ */

/* Does the Content-Type value name this media type? Parameters, surrounding whitespace
 * and case are ignored (RFC 9110 §8.3.1): "Application/JSON; charset=utf-8" is
 * "application/json". false for NULL. */
bool http_media_type_is(const char *content_type, const char *type);
/* If-None-Match against the current entity-tag, with the weak comparison of RFC 9110
 * §8.8.3.2 (W/ ignored) as §13.1.2 requires; a list matches when any member does; "*"
 * matches any current etag. A malformed list does not match (a full answer is safe). */
bool http_etag_matches(const char *if_none_match, const char *etag);
/* Reason phrase for a status ("Not Found"); the class name for unknown codes. */
const char *http_reason(int status);

/* Keep a valid incoming X-Request-Id (1–64 of [A-Za-z0-9._-]); otherwise make a new one,
 * 32 lowercase hex characters from rng.h (per-thread, no syscall). incoming may be NULL. */
void http_request_id_accept(const char *incoming, char out[HTTP_REQUEST_ID_MAX]);

#endif
