/*
 * test_http — the pure HTTP core: routing (captures, literal precedence, 404 vs 405 and
 * the exact Allow value, HEAD → GET), query decoding, problem bodies, response header
 * validation, media types, entity-tag matching and request ids.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "http.h"

/* ---- a route table with a handler per route that names itself in the body ----------- */

#define NAMED_HANDLER(fn)                                                                          \
    static void fn(struct http_req *req, struct http_resp *resp)                                   \
    {                                                                                              \
        (void)req;                                                                                 \
        http_resp_text(resp, 200, "%s", #fn);                                                      \
    }

NAMED_HANDLER(h_code)
NAMED_HANDLER(h_health)
NAMED_HANDLER(h_stats)
NAMED_HANDLER(h_create)
NAMED_HANDLER(h_list)
NAMED_HANDLER(h_delete)
NAMED_HANDLER(h_put)
NAMED_HANDLER(h_ping_head)
NAMED_HANDLER(h_ping_get)
NAMED_HANDLER(h_ab)
NAMED_HANDLER(h_xb)
NAMED_HANDLER(h_root)

static void h_silent(struct http_req *req, struct http_resp *resp)
{
    (void)req;
    (void)resp;
}

static const struct http_route routes[] = {
    {"GET", "/{code}", h_code},
    {"GET", "/healthz", h_health},
    {"GET", "/v1/links/{code}/stats", h_stats},
    {"POST", "/v1/links", h_create},
    {"GET", "/v1/links", h_list},
    {"DELETE", "/v1/links/{code}", h_delete},
    {"PUT", "/v1/links/{code}", h_put},
    {"HEAD", "/v1/ping", h_ping_head},
    {"GET", "/v1/ping", h_ping_get},
    {"GET", "/v1/{a}/{b}", h_ab},
    {"GET", "/v1/x/{b}", h_xb},
    {"GET", "/", h_root},
    {"GET", "/silent/now", h_silent},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Dispatch method + path; returns the status, body in *body (static storage). */
static int run(const char *method, const char *path, struct http_req *req, struct http_resp *resp)
{
    http_req_init(req, method, path, NULL);
    http_resp_init(resp);
    http_dispatch(routes, NROUTES, req, resp);
    return resp->status;
}

static void expect_handler(const char *method, const char *path, const char *handler)
{
    struct http_req req;
    struct http_resp resp;
    assert_int_equal(run(method, path, &req, &resp), 200);
    assert_string_equal(buf_str(&resp.body), handler);
    http_resp_release(&resp);
}

static void expect_status(const char *method, const char *path, int status, const char *allow)
{
    struct http_req req;
    struct http_resp resp;
    assert_int_equal(run(method, path, &req, &resp), status);
    const char *got = http_resp_header_get(&resp, "Allow");
    if (allow)
        assert_string_equal(got, allow);
    else
        assert_null(got);
    http_resp_release(&resp);
}

static void test_literal_beats_capture(void **state)
{
    (void)state;
    expect_handler("GET", "/healthz", "h_health");
    expect_handler("GET", "/abc", "h_code");
    expect_handler("GET", "/", "h_root");
    expect_handler("GET", "/v1/x/y", "h_xb");
    expect_handler("GET", "/v1/q/y", "h_ab");
    expect_handler("GET", "/v1/links/abc/stats", "h_stats");
    expect_handler("POST", "/v1/links", "h_create");
    expect_handler("PUT", "/v1/links/abc", "h_put");
}

static void test_captures(void **state)
{
    (void)state;
    struct http_req req;
    struct http_resp resp;
    assert_int_equal(run("GET", "/v1/q%2Fr/b%20c", &req, &resp), 200);
    assert_string_equal(req.route_pattern, "/v1/{a}/{b}");
    assert_int_equal(req.nparams, 2);
    assert_string_equal(http_req_param(&req, "a"), "q/r");
    assert_string_equal(http_req_param(&req, "b"), "b c");
    assert_null(http_req_param(&req, "c"));
    assert_null(http_req_param(&req, "ab"));
    http_resp_release(&resp);

    assert_int_equal(run("GET", "/v1/links/Zx9/stats", &req, &resp), 200);
    assert_string_equal(http_req_param(&req, "code"), "Zx9");
    http_resp_release(&resp);
}

static void test_not_found(void **state)
{
    (void)state;
    expect_status("GET", "/v1/links/abc/nope", 404, NULL);
    expect_status("GET", "/v1/links//stats", 404, NULL); /* captures are non-empty */
    expect_status("GET", "/v1/links/", 404, NULL);       /* trailing slash is a segment */
    expect_status("GET", "/%00", 404, NULL);             /* capture must decode */
    expect_status("GET", "/%zz", 404, NULL);
    expect_status("GET", "relative", 404, NULL);
    expect_status("GET", "", 404, NULL);
    char deep[3 * 40 + 1] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "/aa");
    expect_status("GET", deep, 404, NULL);
}

static void test_method_not_allowed_allow(void **state)
{
    (void)state;
    expect_status("DELETE", "/v1/links", 405, "POST, GET, HEAD");
    /* every route whose pattern matches counts, captures included: /v1/{a}/{b} too */
    expect_status("PATCH", "/v1/links/abc", 405, "DELETE, PUT, GET, HEAD");
    expect_status("PATCH", "/v1/links/abc/stats", 405, "GET, HEAD");
    expect_status("POST", "/v1/ping", 405, "HEAD, GET");
    expect_status("POST", "/healthz", 405, "GET, HEAD");
    expect_status("get", "/healthz", 405, "GET, HEAD"); /* methods are case-sensitive */
}

static void test_head_dispatches_to_get(void **state)
{
    (void)state;
    expect_handler("HEAD", "/v1/links", "h_list");
    expect_handler("HEAD", "/healthz", "h_health");
    expect_handler("HEAD", "/v1/ping", "h_ping_head"); /* an explicit HEAD route wins */
    expect_handler("GET", "/v1/ping", "h_ping_get");
}

static void test_match_api(void **state)
{
    (void)state;
    struct http_req req;
    const struct http_route *found = NULL;
    char allow[HTTP_ALLOW_MAX];
    http_req_init(&req, "GET", "/v1/links/k1/stats", NULL);
    assert_int_equal(http_route_match(routes, NROUTES, &req, &found, allow), HTTP_MATCH_FOUND);
    assert_ptr_equal(found, &routes[2]);
    http_req_init(&req, "PUT", "/healthz", NULL);
    assert_int_equal(http_route_match(routes, NROUTES, &req, &found, allow),
                     HTTP_MATCH_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "GET, HEAD");
    http_req_init(&req, "GET", "/a/b/c/d", NULL);
    assert_int_equal(http_route_match(routes, NROUTES, &req, &found, allow), HTTP_MATCH_NOT_FOUND);
    assert_string_equal(allow, "");
    assert_int_equal(http_route_match(routes, 0, &req, &found, allow), HTTP_MATCH_NOT_FOUND);
}

/* ---- problem bodies ----------------------------------------------------------------- */

static void test_dispatch_problem_bodies(void **state)
{
    (void)state;
    struct http_req req;
    struct http_resp resp;
    http_req_init(&req, "GET", "/nope/x", NULL);
    strcpy(req.request_id, "rid-1");
    http_resp_init(&resp);
    http_dispatch(routes, NROUTES, &req, &resp);
    assert_int_equal(resp.status, 404);
    assert_string_equal(http_resp_header_get(&resp, "content-type"), "application/problem+json");
    assert_string_equal(buf_str(&resp.body),
                        "{\"type\":\"urn:sluice:problem:not-found\",\"title\":\"Not Found\","
                        "\"status\":404,\"detail\":\"no resource matches this path\","
                        "\"instance\":\"/nope/x\",\"request_id\":\"rid-1\"}");
    http_resp_release(&resp);

    http_req_init(&req, "DELETE", "/v1/links", NULL);
    strcpy(req.request_id, "rid-2");
    http_dispatch(routes, NROUTES, &req, &resp);
    assert_int_equal(resp.status, 405);
    assert_string_equal(http_resp_header_get(&resp, "Allow"), "POST, GET, HEAD");
    assert_string_equal(buf_str(&resp.body),
                        "{\"type\":\"urn:sluice:problem:method-not-allowed\","
                        "\"title\":\"Method Not Allowed\",\"status\":405,"
                        "\"detail\":\"this resource allows POST, GET, HEAD\","
                        "\"instance\":\"/v1/links\",\"request_id\":\"rid-2\"}");
    http_resp_release(&resp);
}

static void test_handler_without_answer_is_500(void **state)
{
    (void)state;
    struct http_req req;
    struct http_resp resp;
    assert_int_equal(run("GET", "/silent/now", &req, &resp), 500);
    assert_string_equal(http_resp_header_get(&resp, "Content-Type"), "application/problem+json");
    assert_non_null(strstr(buf_str(&resp.body), "\"type\":\"urn:sluice:problem:internal\""));
    http_resp_release(&resp);
}

static void test_problem_extra_and_omissions(void **state)
{
    (void)state;
    struct http_req req;
    struct http_resp resp;
    http_req_init(&req, "POST", "/v1/links", NULL);
    strcpy(req.request_id, "r9");
    http_resp_init(&resp);
    http_resp_header(&resp, "ETag", "\"stale\""); /* dropped: the problem replaces all */
    json_t *extra = json_pack("{s:[{s:s,s:s}],s:i}", "errors", "field", "url", "message",
                              "is required", "status", 999);
    http_problem(&resp, &req, 422, "validation", "Invalid link", NULL, extra);
    assert_int_equal(resp.status, 422);
    assert_int_equal(resp.nheaders, 1);
    assert_string_equal(buf_str(&resp.body),
                        "{\"type\":\"urn:sluice:problem:validation\",\"title\":\"Invalid link\","
                        "\"status\":422,\"instance\":\"/v1/links\",\"request_id\":\"r9\","
                        "\"errors\":[{\"field\":\"url\",\"message\":\"is required\"}]}");
    http_problem(&resp, NULL, 429, "rate-limited", NULL, "slow down", NULL);
    assert_int_equal(http_resp_header(&resp, "Retry-After", "%d", 12), SL_OK);
    assert_string_equal(buf_str(&resp.body), "{\"type\":\"urn:sluice:problem:rate-limited\","
                                             "\"title\":\"Too Many Requests\",\"status\":429,"
                                             "\"detail\":\"slow down\"}");
    assert_string_equal(http_resp_header_get(&resp, "retry-after"), "12");
    http_resp_release(&resp);
}

/* ---- response headers and bodies ---------------------------------------------------- */

static void test_header_validation(void **state)
{
    (void)state;
    struct http_resp resp;
    http_resp_init(&resp);
    assert_int_equal(http_resp_header(&resp, "X-A", "a\r\nSet-Cookie: x=1"), SL_EINVAL);
    assert_int_equal(http_resp_header(&resp, "X-A", "a\nb"), SL_EINVAL);
    assert_int_equal(http_resp_header(&resp, "X-A", "a%cb", 0), SL_EINVAL);
    assert_int_equal(http_resp_header(&resp, "X-A", "a\x7f"), SL_EINVAL);
    assert_int_equal(http_resp_header(&resp, "X-A\r\nX-B", "v"), SL_EINVAL);
    assert_int_equal(http_resp_header(&resp, "Bad Name", "v"), SL_EINVAL);
    assert_int_equal(http_resp_header(&resp, "X:Y", "v"), SL_EINVAL);
    assert_int_equal(http_resp_header(&resp, "", "v"), SL_EINVAL);
    assert_int_equal(resp.nheaders, 0);
    assert_int_equal(http_resp_header(&resp, "X-Tab", "a\tb %d", 7), SL_OK);
    assert_string_equal(http_resp_header_get(&resp, "x-tab"), "a\tb 7");
    /* set replaces (case-insensitively), add appends */
    assert_int_equal(http_resp_header(&resp, "x-TAB", "second"), SL_OK);
    assert_int_equal(resp.nheaders, 1);
    assert_string_equal(http_resp_header_get(&resp, "X-Tab"), "second");
    assert_int_equal(http_resp_header_add(&resp, "Set-Cookie", "a=1"), SL_OK);
    assert_int_equal(http_resp_header_add(&resp, "Set-Cookie", "b=2"), SL_OK);
    assert_int_equal(resp.nheaders, 3);
    assert_string_equal(resp.headers[2].value, "b=2");
    assert_int_equal(http_resp_header_add(&resp, "X-Bad", "\r"), SL_EINVAL);
    http_resp_release(&resp);
}

static void test_header_bounds(void **state)
{
    (void)state;
    struct http_resp resp;
    http_resp_init(&resp);
    for (int i = 0; i < HTTP_RESP_HEADERS_MAX; i++)
        assert_int_equal(http_resp_header_add(&resp, "X-N", "%d", i), SL_OK);
    assert_int_equal(resp.nheaders, HTTP_RESP_HEADERS_MAX);
    assert_int_equal(http_resp_header_add(&resp, "X-Over", "1"), SL_ETOOBIG);
    assert_int_equal(http_resp_header(&resp, "X-N", "replaced"), SL_OK); /* replace fits */
    http_resp_release(&resp);

    http_resp_init(&resp);
    char *big = malloc(HTTP_HEADER_VALUE_MAX + 2);
    memset(big, 'v', HTTP_HEADER_VALUE_MAX + 1);
    big[HTTP_HEADER_VALUE_MAX + 1] = '\0';
    assert_int_equal(http_resp_header(&resp, "X-Big", "%s", big), SL_ETOOBIG);
    big[HTTP_HEADER_VALUE_MAX] = '\0';
    assert_int_equal(http_resp_header(&resp, "X-Big", "%s", big), SL_OK);
    free(big);
    http_resp_release(&resp);
}

static void test_bodies(void **state)
{
    (void)state;
    struct http_resp resp;
    http_resp_init(&resp);
    http_resp_json(&resp, 201, json_pack("{s:s,s:i}", "code", "abc", "n", 2));
    assert_int_equal(resp.status, 201);
    assert_string_equal(http_resp_header_get(&resp, "Content-Type"), "application/json");
    assert_string_equal(buf_str(&resp.body), "{\"code\":\"abc\",\"n\":2}");

    http_resp_text(&resp, 200, "up %d", 3);
    assert_string_equal(http_resp_header_get(&resp, "Content-Type"), "text/plain; charset=utf-8");
    assert_string_equal(buf_str(&resp.body), "up 3");
    assert_int_equal(resp.nheaders, 1);

    assert_int_equal(http_resp_bytes(&resp, 200, "application/octet-stream", "a\0b", 3), SL_OK);
    assert_int_equal(resp.body.len, 3);
    assert_memory_equal(resp.body.data, "a\0b", 3);
    assert_int_equal(http_resp_bytes(&resp, 200, "x/y", "", HTTP_RESP_BODY_MAX + 1), SL_ETOOBIG);
    assert_int_equal(resp.body.len, 3);
    http_resp_release(&resp);

    /* A body over the bound becomes a 500 problem. */
    http_resp_init(&resp);
    char *big = malloc(HTTP_RESP_BODY_MAX + 1);
    memset(big, 'x', HTTP_RESP_BODY_MAX);
    big[HTTP_RESP_BODY_MAX] = '\0';
    http_resp_json(&resp, 200, json_string(big));
    assert_int_equal(resp.status, 500);
    assert_string_equal(http_resp_header_get(&resp, "Content-Type"), "application/problem+json");
    http_resp_text(&resp, 200, "%s!", big);
    assert_int_equal(resp.status, 500);
    free(big);
    http_resp_json(&resp, 200, NULL);
    assert_int_equal(resp.status, 500);
    http_resp_release(&resp);
}

/* ---- requests: headers and queries --------------------------------------------------- */

static const char *fake_header(const void *ctx, const char *name)
{
    const char *const *kv = ctx;
    for (; kv[0]; kv += 2)
        if (strcasecmp(kv[0], name) == 0)
            return kv[1];
    return NULL;
}

static void test_req_header(void **state)
{
    (void)state;
    static const char *const headers[] = {"Content-Type", "application/json", NULL};
    struct http_req req;
    http_req_init(&req, "GET", "/", NULL);
    assert_null(http_req_header(&req, "Content-Type"));
    req.header_fn = fake_header;
    req.header_ctx = headers;
    assert_string_equal(http_req_header(&req, "content-type"), "application/json");
    assert_null(http_req_header(&req, "Accept"));
    assert_string_equal(req.body, "");
}

static void test_query_decoding(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool found;
        const char *value;
    } cases[] = {
        {"a", true, "1"},        {"b", true, "hello world"},
        {"c", true, "AB/"},      {"d", true, ""},
        {"e", true, ""},         {"f", false, NULL},
        {"g", false, NULL},      {"h", false, NULL},
        {"sp ace", true, "x"},   {"missing", false, NULL},
        {"u", true, "\xc3\xa9"}, {"", false, NULL},
    };
    struct http_req req;
    char out[64];
    http_req_init(&req, "GET", "/",
                  "a=1&b=hello+world&c=%41%42%2f&d&e=&&f=%zz&g=%00&h=%4&a=2&sp%20ace=x&u=%C3%A9");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = http_req_query(&req, cases[i].name, out, sizeof(out));
        assert_int_equal(got, cases[i].found);
        if (got)
            assert_string_equal(out, cases[i].value);
    }
    assert_false(http_req_query(&req, "b", out, 11)); /* "hello world" + NUL needs 12 */
    assert_true(http_req_query(&req, "b", out, 12));
    assert_string_equal(out, "hello world");
    http_req_init(&req, "GET", "/", NULL);
    assert_false(http_req_query(&req, "a", out, sizeof(out)));
    http_req_init(&req, "GET", "/", "");
    assert_false(http_req_query(&req, "a", out, sizeof(out)));
    /* the same decoding for form bodies */
    assert_true(http_form_get("grant_type=client_credentials&scope=links%3Aread+x", "scope", out,
                              sizeof(out)));
    assert_string_equal(out, "links:read x");
    assert_false(http_form_get(NULL, "scope", out, sizeof(out)));
    assert_false(http_form_get("scope=a", "scope", out, 0));
}

/* ---- helpers ------------------------------------------------------------------------ */

static void test_media_types(void **state)
{
    (void)state;
    static const struct {
        const char *content_type;
        const char *type;
        bool is;
    } cases[] = {
        {"application/json", "application/json", true},
        {"application/json; charset=utf-8", "application/json", true},
        {"Application/JSON;charset=UTF-8", "application/json", true},
        {"  application/json  ; x=y", "application/json", true},
        {"application/json-patch+json", "application/json", false},
        {"application/jsonx", "application/json", false},
        {"application/problem+json", "application/json", false},
        {"text/plain", "application/json", false},
        {"application/json garbage", "application/json", false},
        {"", "application/json", false},
        {NULL, "application/json", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(http_media_type_is(cases[i].content_type, cases[i].type), cases[i].is);
}

static void test_etag_matching(void **state)
{
    (void)state;
    static const struct {
        const char *if_none_match;
        const char *etag;
        bool match;
    } cases[] = {
        {"\"abc\"", "\"abc\"", true},
        {"W/\"abc\"", "\"abc\"", true}, /* weak comparison ignores W/ */
        {"\"abc\"", "W/\"abc\"", true},
        {"W/\"abc\"", "W/\"abc\"", true},
        {"\"xyz\", \"abc\"", "\"abc\"", true},
        {"\"xyz\",W/\"abc\"", "\"abc\"", true},
        {" , ,\"abc\" ,", "\"abc\"", true},
        {"\"ab,c\"", "\"ab,c\"", true},
        {"\"\"", "\"\"", true},
        {"*", "\"abc\"", true},
        {" * ", "W/\"abc\"", true},
        {"*", NULL, false},
        {"\"abcd\"", "\"abc\"", false},
        {"\"ab\"", "\"abc\"", false},
        {"\"xyz\", \"uvw\"", "\"abc\"", false},
        {"abc", "\"abc\"", false},
        {"w/\"abc\"", "\"abc\"", false}, /* "W/" is case-sensitive */
        {"\"xyz\" junk, \"abc\"", "\"abc\"", false},
        {"\"abc", "\"abc\"", false},
        {"\"abc\"", "abc", false},
        {"*, \"abc\"", "\"abc\"", false},
        {"", "\"abc\"", false},
        {NULL, "\"abc\"", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = http_etag_matches(cases[i].if_none_match, cases[i].etag);
        if (got != cases[i].match)
            fail_msg("case %zu: If-None-Match %s vs %s", i, cases[i].if_none_match, cases[i].etag);
    }
}

static void test_reasons(void **state)
{
    (void)state;
    assert_string_equal(http_reason(200), "OK");
    assert_string_equal(http_reason(404), "Not Found");
    assert_string_equal(http_reason(413), "Content Too Large");
    assert_string_equal(http_reason(429), "Too Many Requests");
    assert_string_equal(http_reason(503), "Service Unavailable");
    assert_string_equal(http_reason(299), "Success");
    assert_string_equal(http_reason(599), "Server Error");
    assert_string_equal(http_reason(42), "Unknown");
    assert_string_equal(http_reason(600), "Unknown");
}

static bool is_hex32(const char *s)
{
    return strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

static void test_request_ids(void **state)
{
    (void)state;
    char id[HTTP_REQUEST_ID_MAX], other[HTTP_REQUEST_ID_MAX], max[65];
    http_request_id_accept("abc-123._XYZ", id);
    assert_string_equal(id, "abc-123._XYZ");
    memset(max, 'a', 64);
    max[64] = '\0';
    http_request_id_accept(max, id);
    assert_string_equal(id, max);
    static const char *const rejected[] = {"", "a b", "a/b", "id\r\n", "\xc3\xa9", NULL};
    for (const char *const *r = rejected; *r; r++) {
        http_request_id_accept(*r, id);
        assert_true(is_hex32(id));
    }
    char long_id[66];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    http_request_id_accept(long_id, id);
    assert_true(is_hex32(id));
    http_request_id_accept(NULL, other);
    assert_true(is_hex32(other));
    assert_string_not_equal(id, other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_beats_capture),
        cmocka_unit_test(test_captures),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_method_not_allowed_allow),
        cmocka_unit_test(test_head_dispatches_to_get),
        cmocka_unit_test(test_match_api),
        cmocka_unit_test(test_dispatch_problem_bodies),
        cmocka_unit_test(test_handler_without_answer_is_500),
        cmocka_unit_test(test_problem_extra_and_omissions),
        cmocka_unit_test(test_header_validation),
        cmocka_unit_test(test_header_bounds),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_req_header),
        cmocka_unit_test(test_query_decoding),
        cmocka_unit_test(test_media_types),
        cmocka_unit_test(test_etag_matching),
        cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_request_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
