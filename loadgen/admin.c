#include "admin.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "flags.h"
#include "http.h"
#include "http_mhd.h"
#include "json.h"

static void h_healthz(struct http_req *req, struct http_resp *resp)
{
    (void)req;
    http_resp_text(resp, 200, "ok\n");
}

static void h_status(struct http_req *req, struct http_resp *resp)
{
    http_resp_json(resp, 200, driver_status(req->app));
}

static void h_rate(struct http_req *req, struct http_resp *resp)
{
    struct driver *d = req->app;
    json_t *doc = NULL, *v;
    char jerr[JSON_ERR_MAX];
    if (json_parse(req->body, req->body_len, &doc, jerr) != SL_OK) {
        http_problem(resp, req, 400, "malformed-json", "Malformed JSON", jerr, NULL);
        return;
    }
    double previous = driver_rate(d), rate = json_number_value(v = json_object_get(doc, "rate"));
    bool ok = json_is_object(doc) && json_is_number(v) && json_object_size(doc) == 1;
    json_decref(doc);
    int rc = ok ? driver_set_rate(d, rate, "admin") : SL_EINVAL;
    if (rc == SL_OK) {
        http_resp_json(resp, 200, json_pack("{s:f, s:f}", "rate", rate, "previous", previous));
    } else if (rc == SL_ETOOBIG) {
        http_problem(resp, req, 409, "backlog-spans-changes", "Try again",
                     "the client is behind schedule across many rate changes; try again once "
                     "it has caught up",
                     NULL);
    } else {
        http_problem(resp, req, 422, "validation-failed", "Validation failed",
                     "the body is {\"rate\": N}, N requests per second from 0 to 1000000",
                     json_pack("{s:[{s:s, s:s}]}", "errors", "field", "rate", "message",
                               "must be a number from 0 to 1000000"));
    }
}

static const struct http_route routes[] = {
    {"GET", "/healthz", h_healthz},
    {"GET", "/v1/status", h_status},
    {"PUT", "/v1/rate", h_rate},
};

int admin_start(struct driver *d, struct evloop *loop, const char *hostport,
                struct http_server **out, char err[DRIVER_ERR_MAX])
{
    char host[256], serr[HTTP_SERVER_ERR_MAX];
    uint16_t port;
    if (flags_split_hostport(hostport, host, sizeof(host), &port) != SL_OK) {
        snprintf(err, DRIVER_ERR_MAX, "--admin: expected HOST:PORT, got '%.100s'", hostport);
        return SL_EINVAL;
    }
    struct http_server_config cfg = {
        .host = host,
        .port = port,
        .routes = routes,
        .nroutes = sizeof(routes) / sizeof(routes[0]),
        .app = d,
        .name = "loadgen-admin",
        .conn_limit = 64,
        .max_body_bytes = 4096,
        .loop = loop,
    };
    *out = http_server_start(&cfg, serr);
    if (!*out) {
        snprintf(err, DRIVER_ERR_MAX, "--admin: %s", serr);
        return SL_EINVAL;
    }
    fprintf(stderr, "sluice-loadgen: admin on http://%s:%u (GET /v1/status, PUT /v1/rate)\n", host,
            (unsigned)http_server_port(*out));
    return SL_OK;
}
