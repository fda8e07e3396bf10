/*
 * client — blocking calls to sluice-server with libcurl's easy interface (tui/client.h).
 *
 * The one file of the TUI and the CLI that includes curl.h (STYLE.md "adapters"). Each call
 * uses its own easy handle, so calls from several threads do not share state (the program
 * calls curl_global_init once at start, tui/main.c). Answers are read into a buffer bounded
 * by CLIENT_BODY_MAX; a larger answer is a bad response.
 */
#include "client.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"

#define CLIENT_DEFAULT_BASE       "http://127.0.0.1:7700"
#define CLIENT_DEFAULT_TIMEOUT_MS 5000
#define CLIENT_BODY_MAX           (16u << 20) /* an answer larger than this is refused */
#define CLIENT_HEADERS_MAX        16          /* extra header lines per call; more are ignored */

/* ---- configuration ------------------------------------------------------------------- */

static const char *first_set(const char *a, const char *env, const char *dflt)
{
    if (a && *a)
        return a;
    const char *e = getenv(env);
    return e && *e ? e : dflt;
}

void client_init(struct client *c, const char *base, const char *token)
{
    const char *b = first_set(base, "SLUICE_SERVER", CLIENT_DEFAULT_BASE);
    /* "127.0.0.1:7700" is taken as http:// */
    snprintf(c->base, sizeof(c->base), "%s%s", strstr(b, "://") ? "" : "http://", b);
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    snprintf(c->token, sizeof(c->token), "%s", first_set(token, "SLUICE_TOKEN", ""));
    c->timeout_ms = CLIENT_DEFAULT_TIMEOUT_MS;
}

/* ---- the error sentence --------------------------------------------------------------- */

static void say(struct client_reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends to r->error; what does not fit is cut (the sentence stays NUL-terminated). */
static void say(struct client_reply *r, const char *fmt, ...)
{
    size_t n = strlen(r->error);
    if (n + 1 >= sizeof(r->error))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error + n, sizeof(r->error) - n, fmt, ap);
    va_end(ap);
}

/* "needs the operator role" in a 403 detail → "operator" (at most 15 chars). */
static bool needed_role(const char *detail, char role[16])
{
    const char *p = detail ? strstr(detail, "needs the ") : NULL;
    if (!p || sscanf(p, "needs the %15[a-z] role", role) != 1)
        return false;
    return true;
}

static void say_auth_hint(struct client_reply *r, const struct client *c, const char *detail)
{
    char role[16];
    if (r->status == 401 && !c->token[0])
        say(r, " (set --token or SLUICE_TOKEN to an API key: sluice-server keys create --role "
               "viewer)");
    else if (r->status == 401)
        say(r, " (the key in --token or SLUICE_TOKEN was not accepted: create one with "
               "sluice-server keys create --role viewer)");
    else if (r->status == 403 && needed_role(detail, role))
        say(r,
            " (use a key with the %s role in --token or SLUICE_TOKEN: sluice-server keys "
            "create --role %s)",
            role, role);
}

/* "title: detail -- field: message; field: message (hint)" from an RFC 9457 problem. */
static void say_problem(struct client_reply *r, const struct client *c)
{
    const json_t *p = r->body;
    const char *title = json_string_value(json_object_get(p, "title"));
    const char *detail = json_string_value(json_object_get(p, "detail"));
    if (title)
        say(r, "%s", title);
    else
        say(r, "sluice-server answered HTTP %ld", r->status);
    if (detail)
        say(r, ": %s", detail);
    const json_t *errors = json_object_get(p, "errors"), *e;
    size_t i;
    json_array_foreach(errors, i, e)
    {
        const char *field = json_string_value(json_object_get(e, "field"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        say(r, "%s%s: %s", i ? "; " : " -- ", field ? field : "?", msg ? msg : "invalid");
    }
    say_auth_hint(r, c, detail);
}

static void say_unreachable(struct client_reply *r, const struct client *c, CURLcode rc,
                            const char *detail)
{
    r->result = CLIENT_UNREACHABLE;
    if (rc == CURLE_URL_MALFORMAT)
        say(r,
            "'%s' is not a URL sluice can call (%s): give --server or SLUICE_SERVER as "
            "http://HOST:PORT",
            c->base, detail);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        say(r,
            "sluice-server at %s did not answer within %ld ms: is it running and reachable? "
            "(--server, SLUICE_SERVER)",
            c->base, c->timeout_ms);
    else
        say(r,
            "sluice-server at %s did not answer (%s): is it running? (--server, "
            "SLUICE_SERVER)",
            c->base, detail);
}

/* ---- the call -------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == SL_OK ? size * n : 0;
}

/* Keeps the ETag header's value (RFC 9110 §8.8.3), quotes included. */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct client_reply *r = arg;
    size_t len = size * n;
    if (len > 5 && strncasecmp(p, "ETag:", 5) == 0) {
        const char *v = p + 5;
        size_t vlen = len - 5;
        while (vlen && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
            vlen--;
        if (vlen < sizeof(r->etag)) {
            memcpy(r->etag, v, vlen);
            r->etag[vlen] = '\0';
        }
    }
    return len;
}

static struct curl_slist *header_list(const struct client *c, bool has_body,
                                      const char *const *extra)
{
    char auth[sizeof(c->token) + 32];
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    if (h && c->token[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
        h = curl_slist_append(h, auth);
    }
    if (h && has_body)
        h = curl_slist_append(h, "Content-Type: application/json");
    for (int i = 0; h && extra && extra[i] && i < CLIENT_HEADERS_MAX; i++)
        h = curl_slist_append(h, extra[i]);
    return h;
}

/* What the answer was: OK, an HTTP error with its sentence, or not JSON. */
static void classify(struct client_reply *r, const struct client *c, const struct buf *in)
{
    r->body = in->len ? json_loadb(in->data, in->len, 0, NULL) : NULL;
    if (r->status >= 200 && r->status < 300) {
        r->result = in->len && !r->body ? CLIENT_BAD_RESPONSE : CLIENT_OK;
        if (r->result == CLIENT_BAD_RESPONSE)
            say(r,
                "sluice-server at %s answered HTTP %ld with something that is not JSON: does "
                "--server point at sluice-server?",
                c->base, r->status);
        return;
    }
    r->result = CLIENT_HTTP_ERROR;
    say_problem(r, c);
}

/* Runs the prepared handle; r gets what happened. */
static void perform(CURL *e, const struct client *c, const char *method, const char *path,
                    struct client_reply *r)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct buf in;
    buf_init(&in, CLIENT_BODY_MAX);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &in);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    CURLcode rc = curl_easy_perform(e);
    if (rc == CURLE_WRITE_ERROR) {
        r->result = CLIENT_BAD_RESPONSE;
        say(r, "sluice-server's answer to %s %s is larger than %u bytes", method, path,
            CLIENT_BODY_MAX);
    } else if (rc == CURLE_WEIRD_SERVER_REPLY || rc == CURLE_UNSUPPORTED_PROTOCOL) {
        r->result = CLIENT_BAD_RESPONSE; /* something answered, but not in HTTP */
        say(r,
            "%s answered something that is not HTTP (%s): does --server point at "
            "sluice-server?",
            c->base, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else if (rc != CURLE_OK) {
        say_unreachable(r, c, rc, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
        classify(r, c, &in);
    }
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    buf_release(&in);
}

void client_call(const struct client *c, const char *method, const char *path, const json_t *body,
                 const char *const *headers, struct client_reply *r)
{
    memset(r, 0, sizeof(*r));
    char url[sizeof(c->base) + 1024];
    snprintf(url, sizeof(url), "%s%s", c->base, path);
    char *text = body ? json_dump_compact(body) : NULL;
    CURL *e = curl_easy_init();
    struct curl_slist *h = header_list(c, text != NULL, headers);
    if (!e || !h || (body && !text)) {
        r->result = CLIENT_UNREACHABLE;
        say(r, "out of memory preparing the request to %s", c->base);
    } else if (strncmp(c->base, "http://", 7) != 0 && strncmp(c->base, "https://", 8) != 0) {
        say_unreachable(r, c, CURLE_URL_MALFORMAT, "only http and https");
    } else {
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms);
        /* POST and PUT always carry a body, empty when there is none */
        if (text || !strcmp(method, "POST") || !strcmp(method, "PUT"))
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, text ? text : "");
        perform(e, c, method, path, r);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    free(text);
}

void client_reply_release(struct client_reply *r)
{
    json_decref(r->body);
    r->body = NULL;
}
