#include "handlers.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "base62.h"
#include "clock.h"
#include "crypto.h"
#include "encode.h"
#include "err.h"
#include "idem.h"
#include "link.h"
#include "links_redis.h"
#include "log.h"
#include "shortener.h"
#include "webhooks.h"

#define LIST_LIMIT_DEFAULT 20
#define REDIRECT_MAX_AGE_S 86400
#define CODE_ATTEMPTS 5
#define FORM_VALUE_MAX 512

/* /v0 is the previous version: still served, marked for removal (RFC 8594, RFC 9745). */
#define V0_DEPRECATION "@1767225600"
#define V0_SUNSET "Tue, 01 Jun 2027 00:00:00 GMT"

static void store_down(const struct http_req *req, struct http_resp *resp)
{
    http_problem(resp, req, 503, "store-unavailable", "Service unavailable",
                 "the data store is not reachable; retry shortly", NULL);
    http_resp_header(resp, "Retry-After", "1");
}

/* 404, 410 or 503 for a lookup that did not yield a live link. */
static void link_missing(const struct http_req *req, struct http_resp *resp, int rc)
{
    if (rc == SL_ESTORE)
        store_down(req, resp);
    else if (rc == SL_EGONE)
        http_problem(resp, req, 410, "link-expired", "Link expired",
                     "this link has expired", NULL);
    else
        http_problem(resp, req, 404, "link-not-found", "Link not found",
                     "no link has this code", NULL);
}

/* The live link for the {code} of the request: SL_OK, SL_ENOTFOUND, SL_EGONE, SL_ESTORE. */
static int load_link(struct shortener *s, const struct http_req *req, bool fresh,
                     bool allow_expired, const char **code, json_t **record)
{
    *record = NULL;
    *code = http_req_param(req, "code");
    if (!*code || !link_code_is_plausible(*code))
        return SL_ENOTFOUND;
    int rc = links_get(s, *code, fresh, record);
    if (rc == SL_OK && !allow_expired && link_is_expired(*record, (int64_t)clock_wall_ms())) {
        json_decref(*record);
        *record = NULL;
        rc = SL_EGONE;
    }
    return rc;
}

static void h_healthz(struct http_req *req, struct http_resp *resp)
{
    (void)req;
    http_resp_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    bool ok = redis_pool_ping(s->primary) && (!s->replica || redis_pool_ping(s->replica));
    for (size_t i = 0; ok && i < s->nshards; i++)
        ok = redis_pool_ping(s->shards[i]);
    if (ok)
        http_resp_json(resp, 200, json_pack("{s:s}", "status", "ready"));
    else
        store_down(req, resp);
}

/* ---- POST /v1/links ------------------------------------------------------------------ */

/* Stores the link under a fresh code (or the alias). SL_EEXISTS only for an alias. */
static int create_store(struct shortener *s, const struct link_input *in, const json_t *record,
                        int64_t expires_ms, char code[LINK_CODE_MAX])
{
    if (in->alias) {
        snprintf(code, LINK_CODE_MAX, "%s", in->alias);
        return links_put(s, code, record, expires_ms);
    }
    for (int i = 0; i < CODE_ATTEMPTS; i++) {
        int rc = link_code_generate(base62_random, code);
        if (rc == SL_OK)
            rc = links_put(s, code, record, expires_ms);
        if (rc != SL_EEXISTS)
            return rc;
        log_event(LOG_WARN, NULL, NULL, "code collision, drawing another", "code", code, NULL);
    }
    return SL_ESTORE;
}

int links_create(struct shortener *s, const char *owner, const char *body, size_t len,
                 struct field_errors *fe, char jerr[JSON_ERR_MAX], json_t **repr,
                 char code[LINK_CODE_MAX])
{
    struct link_input in;
    *repr = NULL;
    int rc = link_input_parse(body, len, &in, fe, jerr);
    if (rc) {
        link_input_release(&in);
        return rc;
    }
    int64_t now = (int64_t)clock_wall_ms();
    int64_t expires = in.ttl_s ? now + in.ttl_s * 1000 : 0;
    json_t *record = link_record_new(in.url, owner, now, expires);
    uint64_t seq;
    rc = create_store(s, &in, record, expires, code);
    if (rc == SL_OK && (links_next_seq(s, &seq) || links_index_add(s, owner, code, seq))) {
        links_delete(s, code, owner); /* no orphan link the owner cannot list */
        rc = SL_ESTORE;
    }
    if (rc == SL_OK) {
        *repr = link_repr(code, record, s->public_url);
        events_publish(s, "link.created", owner, json_pack("{s:s, s:s}", "code", code, "url", in.url));
    }
    json_decref(record);
    link_input_release(&in);
    return rc;
}

static void create_link(struct shortener *s, struct http_req *req, struct http_resp *resp,
                        const struct principal *p)
{
    struct field_errors fe;
    char jerr[JSON_ERR_MAX], code[LINK_CODE_MAX];
    json_t *repr;
    field_errors_init(&fe);
    int rc = links_create(s, p->key_id, req->body, req->body_len, &fe, jerr, &repr, code);
    if (rc == SL_EPARSE)
        http_problem(resp, req, 400, "malformed-json", "Malformed JSON", jerr, NULL);
    else if (rc == SL_EINVAL)
        http_problem(resp, req, 422, "validation-failed", "Validation failed",
                     "the request body has invalid fields", json_pack("{s:O}", "errors", fe.list));
    else if (rc == SL_EEXISTS)
        http_problem(resp, req, 409, "alias-taken", "Alias taken",
                     "another link already uses this alias", NULL);
    else if (rc)
        store_down(req, resp);
    else {
        http_resp_json(resp, 201, repr);
        http_resp_header(resp, "Location", "/v1/links/%s", code);
    }
    field_errors_release(&fe);
}

static void replay(const struct http_req *req, struct http_resp *resp, const json_t *stored)
{
    const char *body = json_string_value(json_object_get(stored, "body"));
    const char *ctype = json_string_value(json_object_get(stored, "content_type"));
    const char *location = json_string_value(json_object_get(stored, "location"));
    int status = (int)json_integer_value(json_object_get(stored, "status"));
    if (!body || status < 200 || status > 499) {
        store_down(req, resp);
        return;
    }
    http_resp_bytes(resp, status, ctype ? ctype : "application/json", body, strlen(body));
    if (location)
        http_resp_header(resp, "Location", "%s", location);
    http_resp_header(resp, "Idempotent-Replayed", "true");
}

/* Runs create_link under the Idempotency-Key protocol (idem.h). */
static void create_idempotent(struct shortener *s, struct http_req *req, struct http_resp *resp,
                              const struct principal *p, const char *key)
{
    struct idem ctx;
    enum idem_state state;
    json_t *stored = NULL;
    if (idem_begin(s, p->key_id, key, req->body, req->body_len, &ctx, &state, &stored)) {
        store_down(req, resp);
        return;
    }
    switch (state) {
    case IDEM_REPLAY:
        replay(req, resp, stored);
        break;
    case IDEM_MISMATCH:
        http_problem(resp, req, 422, "idempotency-key-reused", "Idempotency key reused",
                     "this Idempotency-Key was used with a different request body", NULL);
        break;
    case IDEM_IN_FLIGHT:
        http_problem(resp, req, 409, "idempotency-key-in-flight", "Request in progress",
                     "a request with this Idempotency-Key is still being processed", NULL);
        break;
    case IDEM_PROCEED:
        create_link(s, req, resp, p);
        if (resp->status >= 500)
            idem_abort(s, &ctx);
        else if (idem_finish(s, &ctx, resp->status, http_resp_header_get(resp, "Content-Type"),
                             http_resp_header_get(resp, "Location"), buf_str(&resp->body)))
            log_event(LOG_WARN, req->request_id, NULL, "idempotency record not stored", NULL);
        break;
    }
    json_decref(stored);
}

static void h_link_create(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    struct principal p;
    if (!auth_require(s, req, resp, SCOPE_LINKS_WRITE, &p))
        return;
    if (!http_media_type_is(http_req_header(req, "Content-Type"), "application/json")) {
        http_problem(resp, req, 415, "unsupported-media-type", "Unsupported media type",
                     "send the body as Content-Type: application/json", NULL);
        http_resp_header(resp, "Accept-Post", "application/json");
        return;
    }
    const char *key = http_req_header(req, "Idempotency-Key");
    if (!key) {
        create_link(s, req, resp, &p);
    } else if (!idem_key_is_valid(key)) {
        http_problem(resp, req, 400, "invalid-idempotency-key", "Invalid Idempotency-Key",
                     "Idempotency-Key must be 1 to 255 visible ASCII characters", NULL);
    } else {
        create_idempotent(s, req, resp, &p, key);
    }
}

/* ---- reads --------------------------------------------------------------------------- */

static void h_link_get(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    const char *code;
    json_t *record;
    int rc = load_link(s, req, false, false, &code, &record);
    if (rc) {
        link_missing(req, resp, rc);
        return;
    }
    json_t *repr = link_repr(code, record, s->public_url);
    char *text = json_dump_compact(repr);
    char etag[LINK_ETAG_MAX];
    link_etag(text ? text : "", etag);
    int64_t now = (int64_t)clock_wall_ms();
    int64_t expires = json_integer_value(json_object_get(record, "expires_ms"));
    if (http_etag_matches(http_req_header(req, "If-None-Match"), etag)) {
        json_decref(repr);
        resp->status = 304; /* RFC 9110 §15.4.5: no body, same validators */
    } else {
        http_resp_json(resp, 200, repr);
    }
    http_resp_header(resp, "ETag", "%s", etag);
    http_resp_header(resp, "Cache-Control", "public, max-age=%lld",
                     (long long)link_max_age_s(expires, now, LINK_MAX_AGE_S));
    free(text);
    json_decref(record);
}

/* The visitor identity for the HyperLogLog: client address + User-Agent, hashed. */
static void visitor_id(const struct http_req *req, char out[33])
{
    const char *ua = http_req_header(req, "User-Agent");
    char raw[HTTP_REMOTE_IP_MAX + 512];
    int n = snprintf(raw, sizeof(raw), "%s|%.500s", req->remote_ip, ua ? ua : "");
    uint8_t digest[32];
    crypto_sha256(raw, (size_t)n, digest);
    hex_encode(digest, 16, out);
}

static void h_redirect(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    const char *code;
    json_t *record;
    int rc = load_link(s, req, false, false, &code, &record);
    if (rc) {
        link_missing(req, resp, rc);
        return;
    }
    int64_t now = (int64_t)clock_wall_ms();
    int64_t expires = json_integer_value(json_object_get(record, "expires_ms"));
    if (strcmp(req->method, "HEAD") != 0) {
        char day[11], visitor[33];
        link_day(now, day);
        visitor_id(req, visitor);
        /* A click that cannot be counted still redirects: availability over statistics. */
        long long clicks;
        if (links_count_click(s, code, day, visitor, expires ? expires + LINK_GONE_WINDOW_MS : 0,
                              &clicks))
            log_event(LOG_WARN, req->request_id, NULL, "click not counted", "code", code, NULL);
        else if (events_click_milestone(clicks)) /* 1, 10, 100 ...: not an event per click */
            events_publish(s, "link.clicked",
                           json_string_value(json_object_get(record, "owner")) ?: "",
                           json_pack("{s:s, s:I}", "code", code, "clicks", (json_int_t)clicks));
    }
    int status = (int)s->cfg.redirect_status;
    http_resp_bytes(resp, status, "text/plain; charset=utf-8", "", 0);
    http_resp_header(resp, "Location", "%s", json_string_value(json_object_get(record, "url")));
    if (status == 301)
        http_resp_header(resp, "Cache-Control", "public, max-age=%lld",
                         (long long)link_max_age_s(expires, now, REDIRECT_MAX_AGE_S));
    else
        http_resp_header(resp, "Cache-Control", "no-store");
    json_decref(record);
}

/* Loads the link for an owner-only operation: false when the response is written. */
static bool load_owned(struct shortener *s, struct http_req *req, struct http_resp *resp,
                       const struct principal *p, const char **code, json_t **record)
{
    int rc = load_link(s, req, true, true, code, record);
    if (rc) {
        link_missing(req, resp, rc);
        return false;
    }
    const char *owner = json_string_value(json_object_get(*record, "owner"));
    if (!owner || strcmp(owner, p->key_id) != 0) {
        http_problem(resp, req, 403, "forbidden", "Forbidden",
                     "only the owner of a link may do this", NULL);
        json_decref(*record);
        return false;
    }
    return true;
}

static void h_link_stats(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    struct principal p;
    const char *code;
    json_t *record, *stats;
    if (!auth_require(s, req, resp, SCOPE_LINKS_READ, &p) ||
        !load_owned(s, req, resp, &p, &code, &record))
        return;
    char oldest[11];
    link_day((int64_t)clock_wall_ms() - (int64_t)(LINKS_DAILY_DAYS - 1) * 86400000, oldest);
    if (links_stats(s, code, oldest, &stats))
        store_down(req, resp);
    else
        http_resp_json(resp, 200, stats);
    json_decref(record);
}

static void h_link_delete(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    struct principal p;
    const char *code;
    json_t *record;
    if (!auth_require(s, req, resp, SCOPE_LINKS_WRITE, &p) ||
        !load_owned(s, req, resp, &p, &code, &record))
        return;
    if (links_delete(s, code, p.key_id)) {
        store_down(req, resp);
    } else {
        resp->status = 204;
        events_publish(s, "link.deleted", p.key_id, json_pack("{s:s}", "code", code));
    }
    json_decref(record);
}

/* ---- GET /v1/links ------------------------------------------------------------------- */

static bool list_query(const struct http_req *req, struct http_resp *resp, size_t *limit,
                       uint64_t *before)
{
    char v[64];
    struct field_errors fe;
    field_errors_init(&fe);
    *limit = LIST_LIMIT_DEFAULT;
    *before = 0;
    if (http_req_query(req, "limit", v, sizeof(v))) {
        char *end;
        long n = strtol(v, &end, 10);
        if (!isdigit((unsigned char)v[0]) || *end || n < 1 || n > LINKS_PAGE_MAX)
            field_errors_add(&fe, "limit", "must be an integer from 1 to %d", LINKS_PAGE_MAX);
        else
            *limit = (size_t)n;
    }
    if (http_req_query(req, "cursor", v, sizeof(v)) && v[0] && !link_cursor_decode(v, before))
        field_errors_add(&fe, "cursor", "is not a cursor from this API");
    bool ok = !field_errors_any(&fe);
    if (!ok)
        http_problem(resp, req, 400, "invalid-query", "Invalid query",
                     "the query parameters are invalid", json_pack("{s:O}", "errors", fe.list));
    field_errors_release(&fe);
    return ok;
}

static void h_links_list(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    struct principal p;
    size_t limit, n;
    uint64_t before, seqs[LINKS_PAGE_MAX];
    char codes[LINKS_PAGE_MAX][33];
    int more;
    if (!auth_require(s, req, resp, SCOPE_LINKS_READ, &p) || !list_query(req, resp, &limit, &before))
        return;
    if (links_index_page(s, p.key_id, before, limit, codes, seqs, &n, &more)) {
        store_down(req, resp);
        return;
    }
    json_t *list = json_array();
    int rc = SL_OK;
    for (size_t i = 0; i < n && rc != SL_ESTORE; i++) {
        json_t *record;
        rc = links_get(s, codes[i], false, &record);
        if (rc == SL_OK)
            json_array_append_new(list, link_repr(codes[i], record, s->public_url));
        else if (rc == SL_ENOTFOUND) /* gone for good: tidy the index */
            links_index_remove(s, p.key_id, codes[i]);
        json_decref(record);
    }
    if (rc == SL_ESTORE) {
        json_decref(list);
        store_down(req, resp);
        return;
    }
    char cursor[16] = "";
    if (more)
        link_cursor_encode(seqs[n - 1], cursor);
    http_resp_json(resp, 200, json_pack("{s:o, s:s?}", "links", list, "next_cursor",
                                        more ? cursor : NULL));
    if (more)
        http_resp_header(resp, "Link", "</v1/links?cursor=%s&limit=%zu>; rel=\"next\"", cursor,
                         limit);
}

/* ---- POST /v1/oauth/token (RFC 6749 §4.4) -------------------------------------------- */

static void oauth_error(const struct http_req *req, struct http_resp *resp, int status,
                        const char *error, const char *detail)
{
    http_problem(resp, req, status, "oauth-error", "OAuth error", detail,
                 json_pack("{s:s}", "error", error));
    if (status == 401)
        http_resp_header(resp, "WWW-Authenticate", "Basic realm=\"sluice-shortener\"");
    http_resp_header(resp, "Cache-Control", "no-store");
}

/* Client credentials from HTTP Basic (RFC 6749 §2.3.1) or the form. */
static bool oauth_client(const struct http_req *req, const char *form, char id[FORM_VALUE_MAX],
                         char secret[FORM_VALUE_MAX])
{
    const char *h = http_req_header(req, "Authorization");
    if (h && strncasecmp(h, "Basic ", 6) == 0) {
        uint8_t raw[FORM_VALUE_MAX * 2];
        size_t n;
        const char *b64 = h + 6;
        if (base64_decode(b64, strlen(b64), raw, sizeof(raw) - 1, &n, false))
            return false;
        raw[n] = '\0';
        char *colon = strchr((char *)raw, ':');
        if (!colon || memchr(raw, '\0', n))
            return false;
        *colon = '\0';
        size_t id_len = (size_t)(colon - (char *)raw), secret_len = n - id_len - 1;
        if (id_len >= FORM_VALUE_MAX || secret_len >= FORM_VALUE_MAX)
            return false;
        memcpy(id, raw, id_len + 1);
        memcpy(secret, colon + 1, secret_len + 1);
        return true;
    }
    return http_form_get(form, "client_id", id, FORM_VALUE_MAX) &&
           http_form_get(form, "client_secret", secret, FORM_VALUE_MAX);
}

static void oauth_issue(struct shortener *s, const struct http_req *req, struct http_resp *resp,
                        const char *form)
{
    char id[FORM_VALUE_MAX], secret[FORM_VALUE_MAX], scope[FORM_VALUE_MAX], bad[64];
    struct principal p;
    if (!oauth_client(req, form, id, secret)) {
        oauth_error(req, resp, 401, "invalid_client", "client authentication is required");
        return;
    }
    int rc = auth_lookup_key(s, secret, &p);
    if (rc == SL_ESTORE) {
        store_down(req, resp);
        return;
    }
    if (rc || strcmp(p.key_id, id) != 0) {
        oauth_error(req, resp, 401, "invalid_client", "unknown client or wrong secret");
        return;
    }
    if (http_form_get(form, "scope", scope, sizeof(scope)) && scope[0]) {
        unsigned want;
        if (!scopes_parse(scope, &want, bad) || (want & ~p.scopes)) {
            oauth_error(req, resp, 400, "invalid_scope",
                        "the requested scope is unknown or exceeds the client's scopes");
            return;
        }
        p.scopes = want;
    }
    char *token = NULL;
    if (auth_mint_token(s, &p, clock_wall_s(), (int64_t)s->cfg.token_ttl_s, &token)) {
        store_down(req, resp);
        return;
    }
    char scopes[SCOPES_TEXT_MAX];
    scopes_format(p.scopes, scopes);
    http_resp_json(resp, 200, json_pack("{s:s, s:s, s:I, s:s}", "access_token", token,
                                        "token_type", "Bearer", "expires_in",
                                        (json_int_t)s->cfg.token_ttl_s, "scope", scopes));
    http_resp_header(resp, "Cache-Control", "no-store");
    free(token);
}

static void h_oauth_token(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    if (!http_media_type_is(http_req_header(req, "Content-Type"),
                            "application/x-www-form-urlencoded")) {
        oauth_error(req, resp, 400, "invalid_request",
                    "send the form as application/x-www-form-urlencoded");
        return;
    }
    char form[4096], grant[64];
    if (req->body_len >= sizeof(form)) {
        oauth_error(req, resp, 400, "invalid_request", "the form is too large");
        return;
    }
    memcpy(form, req->body, req->body_len);
    form[req->body_len] = '\0';
    if (!http_form_get(form, "grant_type", grant, sizeof(grant)))
        oauth_error(req, resp, 400, "invalid_request", "grant_type is required");
    else if (strcmp(grant, "client_credentials") != 0)
        oauth_error(req, resp, 400, "unsupported_grant_type",
                    "only grant_type=client_credentials is supported");
    else
        oauth_issue(s, req, resp, form);
}

/* ---- the table and the front handler ------------------------------------------------- */

static const struct http_route routes[] = {
    {"GET", "/healthz", h_healthz},
    {"GET", "/readyz", h_readyz},
    {"POST", "/v1/links", h_link_create},
    {"GET", "/v1/links", h_links_list},
    {"GET", "/v1/links/{code}", h_link_get},
    {"DELETE", "/v1/links/{code}", h_link_delete},
    {"GET", "/v1/links/{code}/stats", h_link_stats},
    {"POST", "/v1/links/bulk", h_links_bulk},
    {"GET", "/v1/jobs/{id}", h_job_get},
    {"POST", "/v1/webhooks", h_webhook_create},
    {"GET", "/v1/webhooks", h_webhooks_list},
    {"GET", "/v1/webhooks/{id}", h_webhook_get},
    {"DELETE", "/v1/webhooks/{id}", h_webhook_delete},
    {"GET", "/v1/webhooks/{id}/deliveries", h_webhook_deliveries},
    {"POST", "/v1/oauth/token", h_oauth_token},
    {"GET", "/{code}", h_redirect},
};

/* "/vN/..." → N, or -1 when the path has no version prefix. */
static long path_version(const char *path, const char **rest)
{
    if (path[0] != '/' || path[1] != 'v' || !isdigit((unsigned char)path[2]))
        return -1;
    char *end;
    long v = strtol(path + 2, &end, 10);
    if (*end != '/')
        return -1;
    *rest = end;
    return v;
}

void shortener_handle(struct http_req *req, struct http_resp *resp)
{
    const size_t nroutes = sizeof(routes) / sizeof(routes[0]);
    const char *rest, *orig = req->path;
    long version = path_version(req->path, &rest);
    if (version < 0 || version == 1) {
        http_dispatch(routes, nroutes, req, resp);
        return;
    }
    if (version != 0) {
        http_problem(resp, req, 404, "unknown-api-version", "Unknown API version",
                     "this API serves /v1 (and the deprecated /v0)", NULL);
        return;
    }
    char v1[2048];
    if (snprintf(v1, sizeof(v1), "/v1%s", rest) >= (int)sizeof(v1)) {
        http_problem(resp, req, 404, "not-found", NULL, "no such resource", NULL);
        return;
    }
    req->path = v1;
    req->instance = orig; /* problems name the path the client asked for */
    http_dispatch(routes, nroutes, req, resp);
    req->path = orig;
    req->instance = NULL;
    http_resp_header(resp, "Deprecation", V0_DEPRECATION);
    http_resp_header(resp, "Sunset", V0_SUNSET);
    http_resp_header_add(resp, "Link", "<%s>; rel=\"successor-version\"", v1);
}
