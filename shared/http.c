#include "http.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "clock.h"
#include "err.h"
#include "json.h"
#include "rng.h"

#define HTTP_QUERY_NAME_MAX   128 /* a longer (decoded) query parameter name never matches */
#define HTTP_PROBLEM_TYPE_MAX 160

/* ---- percent-decoding (RFC 3986 §2.1; '+' only in form-encoded queries) -------------- */

static int hex_val(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode src[0..len) into out (NUL-terminated, cap bytes with the NUL); out may be NULL
 * to only validate and measure. Returns the decoded length, or -1 for a bad %XX, a %00,
 * or a result that does not fit. */
static ssize_t pct_decode(const char *src, size_t len, bool plus_space, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++, n++) {
        int c = (unsigned char)src[i];
        if (c == '%') {
            if (i + 2 >= len || hex_val(src[i + 1]) < 0 || hex_val(src[i + 2]) < 0)
                return -1;
            c = hex_val(src[i + 1]) * 16 + hex_val(src[i + 2]);
            if (c == 0)
                return -1;
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (n + 1 >= cap)
            return -1;
        if (out)
            out[n] = (char)c;
    }
    if (out)
        out[n] = '\0';
    return (ssize_t)n;
}

/* ---- requests ----------------------------------------------------------------------- */

void http_req_init(struct http_req *req, const char *method, const char *path, const char *query)
{
    memset(req, 0, sizeof(*req));
    req->method = method;
    req->path = path;
    req->query = query;
    req->body = "";
}

const char *http_req_header(const struct http_req *req, const char *name)
{
    return req->header_fn ? req->header_fn(req->header_ctx, name) : NULL;
}

const char *http_req_param(const struct http_req *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nparams; i++) {
        const struct http_param *p = &req->params[i];
        if (p->name_len == n && memcmp(p->name, name, n) == 0)
            return p->value;
    }
    return NULL;
}

static bool query_name_is(const char *raw, size_t len, const char *name)
{
    char decoded[HTTP_QUERY_NAME_MAX];
    return pct_decode(raw, len, true, decoded, sizeof(decoded)) >= 0 && strcmp(decoded, name) == 0;
}

bool http_req_query(const struct http_req *req, const char *name, char *out, size_t cap)
{
    return http_form_get(req->query, name, out, cap);
}

bool http_form_get(const char *form, const char *name, char *out, size_t cap)
{
    if (!form || cap == 0)
        return false;
    for (const char *p = form; *p;) {
        size_t pair_len = strcspn(p, "&");
        const char *eq = memchr(p, '=', pair_len);
        size_t key_len = eq ? (size_t)(eq - p) : pair_len;
        if (pair_len > 0 && query_name_is(p, key_len, name)) {
            if (!eq) {
                out[0] = '\0';
                return true;
            }
            return pct_decode(eq + 1, pair_len - key_len - 1, true, out, cap) >= 0;
        }
        p += pair_len;
        if (*p == '&')
            p++;
    }
    return false;
}

/* ---- responses ---------------------------------------------------------------------- */

void http_resp_init(struct http_resp *resp)
{
    resp->status = 0;
    resp->nheaders = 0;
    buf_init(&resp->body, HTTP_RESP_BODY_MAX);
    resp->stream = NULL;
    resp->stream_ctx = NULL;
    resp->stream_free = NULL;
}

static void resp_clear_headers(struct http_resp *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    resp->nheaders = 0;
}

void http_resp_release(struct http_resp *resp)
{
    resp_clear_headers(resp);
    buf_release(&resp->body);
    resp->status = 0;
    if (resp->stream_free)
        resp->stream_free(resp->stream_ctx);
    resp->stream = NULL;
    resp->stream_ctx = NULL;
    resp->stream_free = NULL;
}

void http_resp_stream(struct http_resp *resp, int status, const char *content_type,
                      http_stream_fn fn, void *ctx, void (*free_fn)(void *ctx))
{
    buf_reset(&resp->body);
    resp->status = status;
    resp->stream = fn;
    resp->stream_ctx = ctx;
    resp->stream_free = free_fn;
    http_resp_header(resp, "Content-Type", "%s", content_type);
}

/* RFC 9110 §5.6.2: token = 1*tchar. */
static bool is_token(const char *s)
{
    static const char tchar_punct[] = "!#$%&'*+-.^_`|~";
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool alnum = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
        if (!alnum && !strchr(tchar_punct, c))
            return false;
    }
    return true;
}

/* RFC 9110 §5.5: no CR, LF or NUL; other controls except HTAB are refused as well. */
static bool is_field_value(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

static struct http_header *resp_find(const struct http_resp *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return (struct http_header *)&resp->headers[i];
    return NULL;
}

/* Store an already validated value (ownership taken in every case). */
static int resp_put(struct http_resp *resp, bool replace, const char *name, char *value)
{
    struct http_header *h = replace ? resp_find(resp, name) : NULL;
    if (h) {
        free(h->value);
        h->value = value;
        return SL_OK;
    }
    if (resp->nheaders == HTTP_RESP_HEADERS_MAX) {
        free(value);
        return SL_ETOOBIG;
    }
    char *n = strdup(name);
    if (!n) {
        free(value);
        return SL_ENOMEM;
    }
    resp->headers[resp->nheaders++] = (struct http_header){n, value};
    return SL_OK;
}

__attribute__((format(printf, 4, 0))) static int
resp_header_v(struct http_resp *resp, bool replace, const char *name, const char *fmt, va_list ap)
{
    if (!is_token(name))
        return SL_EINVAL;
    struct buf v;
    buf_init(&v, HTTP_HEADER_VALUE_MAX);
    int rc = buf_vappendf(&v, fmt, ap);
    if (rc)
        goto err_release_value;
    if (!is_field_value(buf_str(&v), v.len)) {
        rc = SL_EINVAL;
        goto err_release_value;
    }
    char *value = buf_detach(&v);
    if (!value)
        return SL_ENOMEM;
    return resp_put(resp, replace, name, value);

err_release_value:
    buf_release(&v);
    return rc;
}

int http_resp_header(struct http_resp *resp, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = resp_header_v(resp, true, name, fmt, ap);
    va_end(ap);
    return rc;
}

int http_resp_header_add(struct http_resp *resp, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = resp_header_v(resp, false, name, fmt, ap);
    va_end(ap);
    return rc;
}

const char *http_resp_header_get(const struct http_resp *resp, const char *name)
{
    const struct http_header *h = resp_find(resp, name);
    return h ? h->value : NULL;
}

/* The answer when the real one cannot be built: a fixed 500 problem. */
static void resp_fallback_500(struct http_resp *resp)
{
    static const char body[] = "{\"type\":\"urn:sluice:problem:internal\","
                               "\"title\":\"Internal Server Error\",\"status\":500,"
                               "\"detail\":\"the response could not be built\"}";
    resp_clear_headers(resp);
    buf_reset(&resp->body);
    resp->status = 500;
    (void)buf_append_str(&resp->body, body);
    (void)http_resp_header(resp, "Content-Type", "application/problem+json");
}

/* Serialize v (reference stolen) as the body. */
static int resp_set_json(struct http_resp *resp, int status, json_t *v, const char *type)
{
    char *text = v ? json_dump_compact(v) : NULL;
    json_decref(v);
    if (!text)
        return SL_ENOMEM;
    buf_reset(&resp->body);
    int rc = buf_append_str(&resp->body, text);
    free(text);
    if (rc == SL_OK)
        rc = http_resp_header(resp, "Content-Type", "%s", type);
    if (rc == SL_OK)
        resp->status = status;
    return rc;
}

void http_resp_json(struct http_resp *resp, int status, json_t *body)
{
    if (resp_set_json(resp, status, body, "application/json") != SL_OK)
        resp_fallback_500(resp);
}

void http_resp_text(struct http_resp *resp, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_reset(&resp->body);
    int rc = buf_vappendf(&resp->body, fmt, ap);
    va_end(ap);
    if (rc == SL_OK)
        rc = http_resp_header(resp, "Content-Type", "text/plain; charset=utf-8");
    if (rc != SL_OK) {
        resp_fallback_500(resp);
        return;
    }
    resp->status = status;
}

int http_resp_bytes(struct http_resp *resp, int status, const char *content_type, const void *data,
                    size_t len)
{
    if (len > resp->body.max)
        return SL_ETOOBIG;
    int rc = http_resp_header(resp, "Content-Type", "%s", content_type);
    if (rc)
        return rc;
    buf_reset(&resp->body);
    rc = buf_append(&resp->body, data, len);
    if (rc == SL_OK)
        resp->status = status;
    return rc;
}

/* Strings that are not valid UTF-8 (a raw path may hold any byte) are left out. */
static void obj_set_str(json_t *obj, const char *key, const char *value)
{
    json_t *s = json_string(value);
    if (s)
        json_object_set_new(obj, key, s);
}

/* RFC 9457 §3. */
void http_problem(struct http_resp *resp, const struct http_req *req, int status, const char *slug,
                  const char *title, const char *detail, json_t *extra)
{
    char type[HTTP_PROBLEM_TYPE_MAX];
    snprintf(type, sizeof(type), "urn:sluice:problem:%s", slug);
    resp_clear_headers(resp);
    json_t *o = json_object();
    if (o) {
        obj_set_str(o, "type", type);
        obj_set_str(o, "title", title ? title : http_reason(status));
        json_object_set_new(o, "status", json_integer(status));
        if (detail)
            obj_set_str(o, "detail", detail);
        if (req && req->path)
            obj_set_str(o, "instance", req->instance ? req->instance : req->path);
        if (req && req->request_id[0])
            obj_set_str(o, "request_id", req->request_id);
        if (json_is_object(extra))
            json_object_update_missing(o, extra);
    }
    json_decref(extra);
    if (resp_set_json(resp, status, o, "application/problem+json") != SL_OK)
        resp_fallback_500(resp);
}

/* ---- routing ------------------------------------------------------------------------ */

struct seg {
    const char *p;
    size_t len;
};

struct seg_list {
    struct seg s[HTTP_PATH_SEGMENTS_MAX];
    size_t n;
};

/* "/a/b" → {"a","b"}; "/" → {""}. false unless it starts with '/' or when too long. */
static bool split_segments(const char *path, struct seg_list *out)
{
    if (!path || path[0] != '/')
        return false;
    out->n = 0;
    for (const char *p = path + 1;;) {
        if (out->n == HTTP_PATH_SEGMENTS_MAX)
            return false;
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        out->s[out->n++] = (struct seg){p, len};
        if (!slash)
            return true;
        p = slash + 1;
    }
}

static bool seg_is_capture(const struct seg *s)
{
    return s->len >= 3 && s->p[0] == '{' && s->p[s->len - 1] == '}';
}

/* Does the pattern match the path? *literal_mask gets a bit per literal segment, the
 * first segment most significant, so a larger mask is a more specific pattern. Captures
 * must be non-empty and decode (and all fit HTTP_PARAM_BYTES_MAX together). */
static bool pattern_fits(const struct seg_list *pat, const struct seg_list *path,
                         uint32_t *literal_mask)
{
    size_t captures = 0, bytes = 0;
    if (pat->n != path->n)
        return false;
    *literal_mask = 0;
    for (size_t i = 0; i < pat->n; i++) {
        const struct seg *ps = &pat->s[i], *xs = &path->s[i];
        if (!seg_is_capture(ps)) {
            if (ps->len != xs->len || memcmp(ps->p, xs->p, xs->len) != 0)
                return false;
            *literal_mask |= 1u << (HTTP_PATH_SEGMENTS_MAX - 1 - i);
            continue;
        }
        ssize_t n = pct_decode(xs->p, xs->len, false, NULL, SIZE_MAX);
        if (xs->len == 0 || n < 0 || ++captures > HTTP_PARAMS_MAX)
            return false;
        bytes += (size_t)n + 1;
        if (bytes > HTTP_PARAM_BYTES_MAX)
            return false;
    }
    return true;
}

/* Fill req->params from a pattern that pattern_fits() accepted. */
static void fill_params(struct http_req *req, const struct seg_list *pat,
                        const struct seg_list *path)
{
    size_t off = 0;
    req->nparams = 0;
    for (size_t i = 0; i < pat->n; i++) {
        if (!seg_is_capture(&pat->s[i]))
            continue;
        char *dst = req->param_bytes + off;
        ssize_t n =
            pct_decode(path->s[i].p, path->s[i].len, false, dst, HTTP_PARAM_BYTES_MAX - off);
        req->params[req->nparams++] = (struct http_param){pat->s[i].p + 1, pat->s[i].len - 2, dst};
        off += (size_t)n + 1;
    }
}

/* 2: the route's method is the request's; 1: a HEAD request served by a GET route. */
static int method_fit(const char *route_method, const char *req_method)
{
    if (strcmp(route_method, req_method) == 0)
        return 2;
    return strcmp(req_method, "HEAD") == 0 && strcmp(route_method, "GET") == 0 ? 1 : 0;
}

static bool allow_has(const char *allow, const char *method)
{
    size_t n = strlen(method);
    for (const char *p = allow; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && memcmp(p, method, n) == 0)
            return true;
        p += len;
        p += strspn(p, ", ");
    }
    return false;
}

static void allow_add(char allow[HTTP_ALLOW_MAX], const char *method)
{
    size_t used = strlen(allow);
    if (!allow_has(allow, method))
        snprintf(allow + used, HTTP_ALLOW_MAX - used, "%s%s", used ? ", " : "", method);
    if (strcmp(method, "GET") == 0)
        allow_add(allow, "HEAD"); /* RFC 9110 §9.3.2: HEAD wherever GET */
}

enum http_match http_route_match(const struct http_route *routes, size_t nroutes,
                                 struct http_req *req, const struct http_route **found,
                                 char allow[HTTP_ALLOW_MAX])
{
    struct seg_list path, pat, best_pat;
    const struct http_route *best = NULL;
    uint32_t best_mask = 0;
    int best_fit = 0;
    allow[0] = '\0';
    if (!split_segments(req->path, &path))
        return HTTP_MATCH_NOT_FOUND;
    for (size_t i = 0; i < nroutes; i++) {
        uint32_t mask;
        if (!split_segments(routes[i].pattern, &pat) || !pattern_fits(&pat, &path, &mask))
            continue;
        allow_add(allow, routes[i].method);
        int fit = method_fit(routes[i].method, req->method);
        if (!fit || (best && (mask < best_mask || (mask == best_mask && fit <= best_fit))))
            continue;
        best = &routes[i];
        best_mask = mask;
        best_fit = fit;
        best_pat = pat;
    }
    if (!best)
        return allow[0] ? HTTP_MATCH_METHOD_NOT_ALLOWED : HTTP_MATCH_NOT_FOUND;
    fill_params(req, &best_pat, &path);
    req->route_pattern = best->pattern;
    *found = best;
    return HTTP_MATCH_FOUND;
}

void http_dispatch(const struct http_route *routes, size_t nroutes, struct http_req *req,
                   struct http_resp *resp)
{
    const struct http_route *route = NULL;
    char allow[HTTP_ALLOW_MAX], detail[HTTP_ALLOW_MAX + 64];
    switch (http_route_match(routes, nroutes, req, &route, allow)) {
    case HTTP_MATCH_FOUND:
        route->handler(req, resp);
        if (resp->status == 0)
            http_problem(resp, req, 500, "internal", NULL, "the handler gave no response", NULL);
        return;
    case HTTP_MATCH_NOT_FOUND:
        http_problem(resp, req, 404, "not-found", NULL, "no resource matches this path", NULL);
        return;
    case HTTP_MATCH_METHOD_NOT_ALLOWED:
        snprintf(detail, sizeof(detail), "this resource allows %s", allow);
        http_problem(resp, req, 405, "method-not-allowed", NULL, detail, NULL);
        (void)http_resp_header(resp, "Allow", "%s", allow); /* RFC 9110 §15.5.6 */
        return;
    }
}

/* ---- helpers ------------------------------------------------------------------------ */

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

bool http_media_type_is(const char *content_type, const char *type)
{
    if (!content_type || !type)
        return false;
    const char *p = skip_ows(content_type);
    size_t n = strcspn(p, "; \t");
    if (n != strlen(type) || strncasecmp(p, type, n) != 0)
        return false;
    p = skip_ows(p + n);
    return *p == '\0' || *p == ';';
}

/* entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE (RFC 9110 §8.8.3); *opaque is the quoted
 * part, which is what weak comparison compares. */
static bool etag_next(const char **p, const char **opaque, size_t *len)
{
    const char *s = *p;
    if (s[0] == 'W' && s[1] == '/')
        s += 2;
    if (*s != '"')
        return false;
    const char *end = strchr(s + 1, '"');
    if (!end)
        return false;
    *opaque = s;
    *len = (size_t)(end - s) + 1;
    *p = end + 1;
    return true;
}

bool http_etag_matches(const char *if_none_match, const char *etag)
{
    const char *cur, *o;
    size_t cur_len, n;
    if (!if_none_match || !etag || !etag_next(&etag, &cur, &cur_len))
        return false;
    const char *p = skip_ows(if_none_match);
    if (p[0] == '*' && *skip_ows(p + 1) == '\0')
        return true;
    while (*p) {
        p += strspn(p, ", \t"); /* RFC 9110 §5.6.1: empty list elements are allowed */
        if (!*p)
            break;
        if (!etag_next(&p, &o, &n))
            return false;
        if (n == cur_len && memcmp(o, cur, n) == 0)
            return true;
        p = skip_ows(p);
        if (*p && *p != ',')
            return false;
    }
    return false;
}

struct reason {
    int status;
    const char *text;
};

/* RFC 9110 §15, RFC 6585 (428, 429, 431), RFC 8470 (425). */
static const struct reason reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

static const char *const status_classes[] = {"Unknown",     "Informational", "Success",
                                             "Redirection", "Client Error",  "Server Error"};

const char *http_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].text;
    return status >= 100 && status <= 599 ? status_classes[status / 100] : status_classes[0];
}

static bool request_id_valid(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
    return n >= 1 && n < HTTP_REQUEST_ID_MAX && s[n] == '\0';
}

void http_request_id_accept(const char *incoming, char out[HTTP_REQUEST_ID_MAX])
{
    static const char hex[] = "0123456789abcdef";
    if (incoming && request_id_valid(incoming)) {
        memcpy(out, incoming, strlen(incoming) + 1);
        return;
    }
    unsigned char rnd[16];
    rng_bytes(rnd, sizeof(rnd)); /* no syscall per request (rng.h) */
    for (size_t i = 0; i < sizeof(rnd); i++) {
        out[2 * i] = hex[rnd[i] >> 4];
        out[2 * i + 1] = hex[rnd[i] & 15];
    }
    out[2 * sizeof(rnd)] = '\0';
}
