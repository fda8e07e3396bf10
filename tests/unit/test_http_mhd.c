/*
 * test_http_mhd — a real libmicrohttpd server on 127.0.0.1 (port 0) driven by libcurl:
 * answers and request ids, 404/405 problems, bodies (plain and chunked) and their 413s,
 * keep-alive (the second request on a handle opens no connection), access log,
 * concurrency, in-flight accounting, quiesce and stop. Nothing sleeps: waits poll with a
 * deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "http.h"
#include "evloop.h"
#include "http_mhd.h"
#include "log.h"

#define BODY_LIMIT_BYTES (64 * 1024)
#define REPLY_BODY_MAX   (1024 * 1024)
#define WAIT_MS          5000

/* ---- the server under test ---------------------------------------------------------- */

static void h_hello(struct http_req *req, struct http_resp *resp)
{
    (void)req;
    http_resp_text(resp, 200, "hello");
}

static void h_item(struct http_req *req, struct http_resp *resp)
{
    char q[64];
    bool has_q = http_req_query(req, "q", q, sizeof(q));
    http_resp_json(resp, 200,
                   json_pack("{s:s, s:s?, s:s, s:s}", "id", http_req_param(req, "id"), "q",
                             has_q ? q : NULL, "ip", req->remote_ip, "app", (char *)req->app));
}

static void h_echo(struct http_req *req, struct http_resp *resp)
{
    const char *type = http_req_header(req, "Content-Type");
    if (http_resp_bytes(resp, 200, type ? type : "application/octet-stream", req->body,
                        req->body_len) != SL_OK)
        http_problem(resp, req, 500, "internal", NULL, "echo failed", NULL);
    http_resp_header(resp, "X-Body-Bytes", "%zu", req->body_len);
}

static const struct http_route routes[] = {
    {"GET", "/hello", h_hello},
    {"GET", "/items/{id}", h_item},
    {"POST", "/echo", h_echo},
    {"PUT", "/echo", h_echo},
};

static char app_name[] = "test-app";

struct fixture {
    struct http_server *srv;
    uint16_t port;
    FILE *log;
};

static struct http_server *start(const char *host, uint16_t port, char err[HTTP_SERVER_ERR_MAX])
{
    struct http_server_config cfg = {
        .host = host,
        .port = port,
        .threads = 2,
        .max_body_bytes = BODY_LIMIT_BYTES,
        .routes = routes,
        .nroutes = sizeof(routes) / sizeof(routes[0]),
        .app = app_name,
        .access_log = true,
        .name = "test",
    };
    return http_server_start(&cfg, err);
}

static int group_setup(void **state)
{
    static struct fixture fx;
    char err[HTTP_SERVER_ERR_MAX] = "";
    fx.log = tmpfile();
    if (!fx.log)
        return -1;
    log_setup("test_http_mhd", LOG_DEBUG, getenv("TEST_LOG") ? 2 : fileno(fx.log));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    fx.srv = start(NULL, 0, err);
    if (!fx.srv) {
        fprintf(stderr, "server: %s\n", err);
        return -1;
    }
    fx.port = http_server_port(fx.srv);
    *state = &fx;
    return fx.port ? 0 : -1;
}

static int group_teardown(void **state)
{
    struct fixture *fx = *state;
    http_server_stop(fx->srv);
    fclose(fx->log);
    curl_global_cleanup();
    return 0;
}

/* ---- a small libcurl client ---------------------------------------------------------- */

struct request {
    const char *method;
    const char *path;
    const char *const *headers; /* NULL-terminated, may be NULL */
    const char *body;           /* sent with Content-Length unless chunked */
    size_t body_len;
    bool chunked;
};

struct reply {
    CURLcode rc;
    long status;
    long num_connects;
    struct buf body;
    char request_id[128];
    char allow[HTTP_ALLOW_MAX];
    char content_type[128];
    char body_bytes[32];
};

struct upload {
    const char *data;
    size_t len, off;
};

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    return buf_append(ud, p, size * n) == SL_OK ? size * n : 0;
}

static void header_copy(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    if (len <= nlen || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return;
    const char *v = line + nlen + 1;
    size_t vlen = len - nlen - 1;
    while (vlen && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    snprintf(out, cap, "%.*s", (int)vlen, v);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct reply *r = ud;
    header_copy(p, size * n, "X-Request-Id", r->request_id, sizeof(r->request_id));
    header_copy(p, size * n, "Allow", r->allow, sizeof(r->allow));
    header_copy(p, size * n, "Content-Type", r->content_type, sizeof(r->content_type));
    header_copy(p, size * n, "X-Body-Bytes", r->body_bytes, sizeof(r->body_bytes));
    return size * n;
}

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
    struct upload *u = ud;
    size_t k = size * n < u->len - u->off ? size * n : u->len - u->off;
    memcpy(p, u->data + u->off, k);
    u->off += k;
    return k;
}

static void set_body(CURL *h, const struct request *rq, struct upload *up, struct curl_slist **hdrs)
{
    if (!rq->body)
        return;
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    if (!rq->chunked) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
        return;
    }
    *up = (struct upload){rq->body, rq->body_len, 0};
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, up);
    *hdrs = curl_slist_append(*hdrs, "Transfer-Encoding: chunked");
}

static void perform_on(CURL *h, const char *host, uint16_t port, const struct request *rq,
                       struct reply *out)
{
    char url[256];
    struct curl_slist *hdrs = NULL;
    struct upload up;
    memset(out, 0, sizeof(*out));
    buf_init(&out->body, REPLY_BODY_MAX);
    snprintf(url, sizeof(url), "http://%s:%u%s", host, (unsigned)port, rq->path);
    curl_easy_reset(h); /* keeps the connection cache */
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, out);
    set_body(h, rq, &up, &hdrs);
    if (strcmp(rq->method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (strcmp(rq->method, "GET") != 0 && strcmp(rq->method, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    for (const char *const *x = rq->headers; x && *x; x++)
        hdrs = curl_slist_append(hdrs, *x);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    out->rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &out->num_connects);
    curl_slist_free_all(hdrs);
}

static void perform(CURL *h, uint16_t port, const struct request *rq, struct reply *out)
{
    perform_on(h, "127.0.0.1", port, rq, out);
}

/* One request on a fresh handle. */
static void fetch(uint16_t port, const struct request *rq, struct reply *out)
{
    CURL *h = curl_easy_init();
    perform(h, port, rq, out);
    curl_easy_cleanup(h);
}

static bool is_hex32(const char *s)
{
    return strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

static json_t *body_json(const struct reply *r)
{
    json_error_t je;
    json_t *v = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &je);
    assert_non_null(v);
    return v;
}

static void assert_problem(const struct reply *r, int status, const char *type,
                           const char *instance)
{
    assert_int_equal(r->status, status);
    assert_string_equal(r->content_type, "application/problem+json");
    json_t *v = body_json(r);
    assert_string_equal(json_string_value(json_object_get(v, "type")), type);
    assert_int_equal(json_integer_value(json_object_get(v, "status")), status);
    assert_string_equal(json_string_value(json_object_get(v, "instance")), instance);
    assert_string_equal(json_string_value(json_object_get(v, "request_id")), r->request_id);
    json_decref(v);
}

static bool wait_idle(const struct http_server *srv)
{
    uint64_t deadline = clock_mono_ms() + WAIT_MS;
    while (http_server_in_flight(srv) != 0) {
        if (clock_mono_ms() > deadline)
            return false;
        sched_yield();
    }
    return true;
}

static char *pattern(size_t len)
{
    char *p = malloc(len);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)('a' + (i * 7 + i / 251) % 26);
    return p;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_get_and_request_id(void **state)
{
    struct fixture *fx = *state;
    static const char *const with_id[] = {"X-Request-Id: client-id.42", NULL};
    struct reply r;
    fetch(fx->port, &(struct request){"GET", "/hello", with_id, NULL, 0, false}, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(buf_str(&r.body), "hello");
    assert_string_equal(r.content_type, "text/plain; charset=utf-8");
    assert_string_equal(r.request_id, "client-id.42");
    buf_release(&r.body);

    static const char *const bad_id[] = {"X-Request-Id: no spaces allowed", NULL};
    fetch(fx->port, &(struct request){"GET", "/hello", bad_id, NULL, 0, false}, &r);
    assert_int_equal(r.status, 200);
    assert_true(is_hex32(r.request_id));
    buf_release(&r.body);
}

static void test_params_query_ip_app(void **state)
{
    struct fixture *fx = *state;
    struct reply r;
    fetch(fx->port, &(struct request){"GET", "/items/a%20b?q=x+y%21&z=1", NULL, NULL, 0, false},
          &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(
        buf_str(&r.body),
        "{\"id\":\"a b\",\"q\":\"x y!\",\"ip\":\"127.0.0.1\",\"app\":\"test-app\"}");
    buf_release(&r.body);
}

static void test_head(void **state)
{
    struct fixture *fx = *state;
    struct reply r;
    fetch(fx->port, &(struct request){"HEAD", "/hello", NULL, NULL, 0, false}, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    assert_true(is_hex32(r.request_id));
    buf_release(&r.body);
}

static void test_not_found_and_method_not_allowed(void **state)
{
    struct fixture *fx = *state;
    struct reply r;
    fetch(fx->port, &(struct request){"GET", "/nope?x=1", NULL, NULL, 0, false}, &r);
    assert_problem(&r, 404, "urn:sluice:problem:not-found", "/nope");
    assert_string_equal(r.allow, "");
    buf_release(&r.body);

    fetch(fx->port, &(struct request){"DELETE", "/hello", NULL, NULL, 0, false}, &r);
    assert_problem(&r, 405, "urn:sluice:problem:method-not-allowed", "/hello");
    assert_string_equal(r.allow, "GET, HEAD");
    buf_release(&r.body);

    fetch(fx->port, &(struct request){"GET", "/echo", NULL, NULL, 0, false}, &r);
    assert_problem(&r, 405, "urn:sluice:problem:method-not-allowed", "/echo");
    assert_string_equal(r.allow, "POST, PUT");
    buf_release(&r.body);
}

static void test_post_body_intact(void **state)
{
    struct fixture *fx = *state;
    static const char *const type[] = {"Content-Type: application/x-test", NULL};
    const size_t len = 40 * 1024;
    char *body = pattern(len);
    struct reply r;
    fetch(fx->port, &(struct request){"POST", "/echo", type, body, len, false}, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/x-test");
    assert_string_equal(r.body_bytes, "40960");
    assert_int_equal(r.body.len, len);
    assert_memory_equal(r.body.data, body, len);
    buf_release(&r.body);

    /* exactly at the limit is fine, and so is a chunked body */
    char *at_limit = pattern(BODY_LIMIT_BYTES);
    fetch(fx->port, &(struct request){"PUT", "/echo", NULL, at_limit, BODY_LIMIT_BYTES, true}, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, BODY_LIMIT_BYTES);
    assert_memory_equal(r.body.data, at_limit, BODY_LIMIT_BYTES);
    buf_release(&r.body);
    free(at_limit);
    free(body);
}

static void test_content_length_too_large(void **state)
{
    struct fixture *fx = *state;
    static const char *const expect[] = {"Expect: 100-continue", NULL};
    const size_t len = BODY_LIMIT_BYTES + 1;
    char *body = pattern(len);
    struct reply r;
    fetch(fx->port, &(struct request){"POST", "/echo", expect, body, len, false}, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_problem(&r, 413, "urn:sluice:problem:payload-too-large", "/echo");
    buf_release(&r.body);
    free(body);
}

static void test_chunked_too_large(void **state)
{
    struct fixture *fx = *state;
    const size_t len = 200 * 1024;
    char *body = pattern(len);
    struct reply r;
    fetch(fx->port, &(struct request){"POST", "/echo", NULL, body, len, true}, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_problem(&r, 413, "urn:sluice:problem:payload-too-large", "/echo");
    buf_release(&r.body);
    free(body);
}

/* Past the body bound plus the discard allowance the server hangs up instead. */
static void test_endless_chunked_upload_is_cut_off(void **state)
{
    struct fixture *fx = *state;
    const size_t len = 3 * 1024 * 1024;
    char *body = pattern(len);
    struct reply r;
    fetch(fx->port, &(struct request){"POST", "/echo", NULL, body, len, true}, &r);
    assert_int_not_equal(r.status, 200); /* 0 (connection closed) or 413, never served */
    buf_release(&r.body);
    free(body);
    assert_true(wait_idle(fx->srv));
}

static void test_keep_alive_reuses_connection(void **state)
{
    struct fixture *fx = *state;
    struct reply r;
    CURL *h = curl_easy_init();
    perform(h, fx->port, &(struct request){"GET", "/hello", NULL, NULL, 0, false}, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.num_connects, 1);
    buf_release(&r.body);
    perform(h, fx->port, &(struct request){"GET", "/hello", NULL, NULL, 0, false}, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.num_connects, 0); /* same connection: not "Connection: close" */
    buf_release(&r.body);
    perform(h, fx->port, &(struct request){"POST", "/echo", NULL, "abc", 3, false}, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.num_connects, 0);
    buf_release(&r.body);
    perform(h, fx->port, &(struct request){"GET", "/nope", NULL, NULL, 0, false}, &r);
    assert_int_equal(r.status, 404);
    assert_int_equal(r.num_connects, 0); /* problems keep the connection too */
    buf_release(&r.body);
    curl_easy_cleanup(h);
    assert_true(wait_idle(fx->srv));
}

static void test_access_log(void **state)
{
    struct fixture *fx = *state;
    static const char *const id[] = {"X-Request-Id: access-log-check", NULL};
    struct reply r;
    fetch(fx->port, &(struct request){"GET", "/items/7?q=1", id, NULL, 0, false}, &r);
    assert_int_equal(r.status, 200);
    buf_release(&r.body);
    assert_true(wait_idle(fx->srv)); /* the line is written when the request completes */
    if (getenv("TEST_LOG"))
        skip();
    struct stat st;
    assert_int_equal(fstat(fileno(fx->log), &st), 0);
    char *text = calloc(1, (size_t)st.st_size + 1);
    assert_int_equal(pread(fileno(fx->log), text, (size_t)st.st_size, 0), st.st_size);
    const char *line = strstr(text, "\"request_id\":\"access-log-check\"");
    assert_non_null(line);
    while (line > text && line[-1] != '\n')
        line--;
    char one[1024];
    snprintf(one, sizeof(one), "%.*s", (int)strcspn(line, "\n"), line);
    assert_non_null(strstr(one, "\"msg\":\"request\""));
    assert_non_null(strstr(one, "\"server\":\"test\""));
    assert_non_null(strstr(one, "\"method\":\"GET\""));
    assert_non_null(strstr(one, "\"path\":\"/items/7\""));
    assert_non_null(strstr(one, "\"status\":\"200\""));
    assert_non_null(strstr(one, "\"duration_ms\":\""));
    assert_null(strstr(one, "\"outcome\""));
    free(text);
}

struct worker {
    uint16_t port;
    int ok;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    CURL *h = curl_easy_init();
    for (int i = 0; i < 25; i++) {
        struct reply r;
        char path[64];
        snprintf(path, sizeof(path), "/items/%d", i);
        perform(h, w->port, &(struct request){"GET", path, NULL, NULL, 0, false}, &r);
        w->ok += r.status == 200 && strstr(buf_str(&r.body), path + 7) != NULL;
        buf_release(&r.body);
    }
    curl_easy_cleanup(h);
    return NULL;
}

static void test_concurrent_clients(void **state)
{
    struct fixture *fx = *state;
    pthread_t t[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){fx->port, 0};
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, 25);
    }
    assert_true(wait_idle(fx->srv));
}

static void test_start_errors(void **state)
{
    struct fixture *fx = *state;
    char err[HTTP_SERVER_ERR_MAX] = "";
    assert_null(start("example.com", 0, err));
    assert_string_equal(err, "host 'example.com' is not an IP address");
    err[0] = '\0';
    assert_null(start(NULL, fx->port, err)); /* taken: SO_REUSEADDR only, no REUSEPORT */
    assert_non_null(strstr(err, "cannot serve on 127.0.0.1 port"));
    struct http_server_config cfg = {.threads = 65, .routes = routes, .nroutes = 1};
    assert_null(http_server_start(&cfg, err));
    assert_string_equal(err, "threads must be 1..64");
    cfg = (struct http_server_config){.threads = 8, .conn_limit = 4};
    assert_null(http_server_start(&cfg, err));
    assert_string_equal(err, "conn_limit must be at least threads (8)");
    http_server_stop(NULL);
}

static void test_ipv6_loopback(void **state)
{
    (void)state;
    char err[HTTP_SERVER_ERR_MAX] = "";
    struct http_server *srv = start("[::1]", 0, err);
    if (!srv)
        skip(); /* no IPv6 on this machine */
    struct reply r;
    CURL *h = curl_easy_init();
    perform_on(h, "[::1]", http_server_port(srv),
               &(struct request){"GET", "/items/v6", NULL, NULL, 0, false}, &r);
    curl_easy_cleanup(h);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(buf_str(&r.body), "\"ip\":\"::1\""));
    buf_release(&r.body);
    assert_true(wait_idle(srv));
    http_server_stop(srv);
}

/* A front handler sees every request and may wrap the route table. */
static void front(struct http_req *req, struct http_resp *resp)
{
    if (strcmp(req->path, "/silent") == 0)
        return; /* no answer: the server makes it a 500 */
    const char *orig = req->path;
    if (strncmp(req->path, "/old/", 5) == 0)
        req->path += 4;
    http_dispatch(routes, sizeof(routes) / sizeof(routes[0]), req, resp);
    req->path = orig;
    http_resp_header(resp, "X-Front", "1");
}

static void test_front_handler(void **state)
{
    (void)state;
    char err[HTTP_SERVER_ERR_MAX] = "";
    struct http_server_config cfg = {.threads = 1, .handler = front, .app = app_name};
    struct http_server *srv = http_server_start(&cfg, err);
    assert_non_null(srv);
    uint16_t port = http_server_port(srv);
    struct reply r;
    fetch(port, &(struct request){"GET", "/old/items/9", NULL, NULL, 0, false}, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(buf_str(&r.body), "\"id\":\"9\""));
    buf_release(&r.body);
    fetch(port, &(struct request){"GET", "/silent", NULL, NULL, 0, false}, &r);
    assert_problem(&r, 500, "urn:sluice:problem:internal", "/silent");
    buf_release(&r.body);
    assert_true(wait_idle(srv));
    http_server_stop(srv);
}

static void test_quiesce_then_stop(void **state)
{
    (void)state;
    char err[HTTP_SERVER_ERR_MAX] = "";
    struct http_server *srv = start(NULL, 0, err);
    assert_non_null(srv);
    uint16_t port = http_server_port(srv);
    struct reply r;
    CURL *kept = curl_easy_init();
    perform(kept, port, &(struct request){"GET", "/hello", NULL, NULL, 0, false}, &r);
    assert_int_equal(r.status, 200);
    buf_release(&r.body);

    http_server_quiesce(srv);
    http_server_quiesce(srv); /* idempotent */
    /* an open connection is still served ... */
    perform(kept, port, &(struct request){"GET", "/hello", NULL, NULL, 0, false}, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.num_connects, 0);
    buf_release(&r.body);
    /* ... a new one is refused */
    fetch(port, &(struct request){"GET", "/hello", NULL, NULL, 0, false}, &r);
    assert_int_equal(r.rc, CURLE_COULDNT_CONNECT);
    buf_release(&r.body);

    curl_easy_cleanup(kept);
    assert_true(wait_idle(srv));
    assert_int_equal(http_server_in_flight(srv), 0);
    http_server_stop(srv);
}

/* External mode (DESIGN §3): no MHD thread; the server runs on an evloop's thread. */
static void *loop_thread(void *arg)
{
    evloop_run(arg);
    return NULL;
}

static void test_external_mode_on_an_evloop(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    assert_non_null(loop);
    struct http_server_config cfg = {
        .routes = routes,
        .nroutes = sizeof(routes) / sizeof(routes[0]),
        .app = app_name,
        .name = "external",
        .loop = loop,
    };
    char err[HTTP_SERVER_ERR_MAX];
    struct http_server *srv = http_server_start(&cfg, err);
    assert_non_null(srv);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, loop_thread, loop), 0);
    struct reply r;
    CURL *h = curl_easy_init();
    perform(h, http_server_port(srv), &(struct request){"GET", "/hello", NULL, NULL, 0, false},
            &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(buf_str(&r.body), "hello");
    buf_release(&r.body);
    perform(h, http_server_port(srv), &(struct request){"POST", "/echo", NULL, "abc", 3, false},
            &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.num_connects, 0); /* keep-alive works on the loop too */
    assert_string_equal(buf_str(&r.body), "abc");
    buf_release(&r.body);
    curl_easy_cleanup(h);
    assert_true(wait_idle(srv));
    evloop_stop_async(loop);
    pthread_join(t, NULL);
    http_server_stop(srv);
    evloop_free(loop);
}

static void test_in_flight_returns_to_zero(void **state)
{
    struct fixture *fx = *state;
    assert_true(wait_idle(fx->srv));
    assert_int_equal(http_server_in_flight(fx->srv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_and_request_id),
        cmocka_unit_test(test_params_query_ip_app),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_not_found_and_method_not_allowed),
        cmocka_unit_test(test_post_body_intact),
        cmocka_unit_test(test_content_length_too_large),
        cmocka_unit_test(test_chunked_too_large),
        cmocka_unit_test(test_endless_chunked_upload_is_cut_off),
        cmocka_unit_test(test_keep_alive_reuses_connection),
        cmocka_unit_test(test_access_log),
        cmocka_unit_test(test_concurrent_clients),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_ipv6_loopback),
        cmocka_unit_test(test_front_handler),
        cmocka_unit_test(test_quiesce_then_stop),
        cmocka_unit_test(test_in_flight_returns_to_zero),
        cmocka_unit_test(test_external_mode_on_an_evloop),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
