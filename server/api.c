/*
 * api — sluice-server's HTTP API (DESIGN §4.3, docs/server.md): routes, roles, and the
 * calls forwarded to the agents' admin APIs with the fleet's admin token.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "drills.h"
#include "err.h"
#include "fleet.h"
#include "http.h"
#include "http_mhd.h"
#include "log.h"
#include "prom.h"
#include "server.h"
#include "version.h"

static struct server *srv_of(const struct http_req *req)
{
    return req->app;
}

static void h_healthz(struct http_req *req, struct http_resp *resp)
{
    (void)req;
    http_resp_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_fleet(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (auth_require(s, req, resp, ROLE_VIEWER, NULL))
        http_resp_json(resp, 200, fleet_snapshot(s->fleet));
}

static void h_events(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (!auth_require(s, req, resp, ROLE_VIEWER, NULL))
        return;
    fleet_publish_snapshot(s->fleet);
    if (!events_subscribe(s->events, resp))
        http_problem(resp, req, 503, "too-many-viewers", "Service Unavailable",
                     "too many event streams are open; poll GET /v1/fleet instead", NULL);
}

/* ---- forwarding to an agent's admin API ------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == SL_OK ? size * n : 0;
}

long server_agent_call(struct server *s, const char *admin, const char *method, const char *path,
                       const json_t *body, json_t **answer)
{
    char base[160];
    snprintf(base, sizeof(base), "http://%s", admin);
    return server_url_call(s, base, method, path, body, answer);
}

long server_url_call(struct server *s, const char *base, const char *method, const char *path,
                     const json_t *body, json_t **answer)
{
    char url[512], auth[300];
    json_t *ignored = NULL;
    answer = answer ? answer : &ignored;
    snprintf(url, sizeof(url), "%s%s", base, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
             s->cfg.agent_token ? s->cfg.agent_token : "");
    char *text = body ? json_dump_compact(body) : NULL;
    struct buf out;
    buf_init(&out, 1 << 20);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    long code = 0;
    if (c && h) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)s->cfg.agent_timeout_ms * 2);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
        if (text)
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    }
    *answer = code && out.len ? json_loadb(out.data, out.len, 0, NULL) : NULL;
    json_decref(ignored);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    buf_release(&out);
    free(text);
    return code;
}

/* A mutation of one replica through its agent: operator role, audited. */
static void replica_action(struct http_req *req, struct http_resp *resp, const char *method,
                           const char *agent_path, const char *action, bool want_body)
{
    struct server *s = srv_of(req);
    struct caller who;
    if (!auth_require(s, req, resp, ROLE_OPERATOR, &who))
        return;
    const char *id = http_req_param(req, "id");
    char admin[128];
    if (!fleet_agent_admin(s->fleet, id, admin)) {
        http_problem(resp, req, 404, "no-such-replica", "Not Found",
                     "no live agent has that id in the registry", NULL);
        return;
    }
    json_t *body = NULL;
    if (want_body && req->body_len &&
        !json_is_object(body = json_loadb(req->body, req->body_len, 0, NULL))) {
        json_decref(body);
        http_problem(resp, req, 400, "bad-json", "Bad Request", "the body must be a JSON object",
                     NULL);
        return;
    }
    json_t *before = fleet_replica_json(s->fleet, id), *answer = NULL;
    json_t *send = body ? json_incref(body) : json_object();
    long code = server_agent_call(s, admin, method, agent_path, send, &answer);
    json_decref(send);
    if (!code) {
        http_problem(resp, req, 502, "agent-unreachable", "Bad Gateway",
                     "the agent's admin API did not answer", NULL);
        json_decref(before);
    } else if (code >= 400) { /* the agent's own problem (validation ...) passes through */
        json_decref(before);
        http_resp_json(resp, (int)code, answer ? answer : json_pack("{s:i}", "status", (int)code));
        answer = NULL;
    } else {
        audit_record(s, &who, action, id, before, json_incref(answer ? answer : body));
        http_resp_json(resp, (int)code,
                       json_pack("{s:s, s:o, s:o}", "replica", id, "agent",
                                 answer ? json_incref(answer) : json_null(), "replica_now",
                                 fleet_replica_json(s->fleet, id) ?: json_null()));
    }
    json_decref(answer);
    json_decref(body);
}

static void h_drain(struct http_req *req, struct http_resp *resp)
{
    replica_action(req, resp, "POST", "/v1/drain", "replica.drain", true);
}

static void h_undrain(struct http_req *req, struct http_resp *resp)
{
    replica_action(req, resp, "POST", "/v1/undrain", "replica.undrain", false);
}

static void h_weight(struct http_req *req, struct http_resp *resp)
{
    replica_action(req, resp, "PUT", "/v1/weight", "replica.weight", true);
}

static void h_faults_put(struct http_req *req, struct http_resp *resp)
{
    replica_action(req, resp, "PUT", "/v1/faults", "faults.set", true);
}

static void h_faults_delete(struct http_req *req, struct http_resp *resp)
{
    replica_action(req, resp, "DELETE", "/v1/faults", "faults.clear", false);
}

static void h_cache_purge(struct http_req *req, struct http_resp *resp)
{
    replica_action(req, resp, "POST", "/v1/cache/purge", "cache.purge", true);
}

/* Who the caller is: the TUI hides actions from viewers. */
static void h_whoami(struct http_req *req, struct http_resp *resp)
{
    struct caller who;
    if (auth_require(srv_of(req), req, resp, ROLE_VIEWER, &who))
        http_resp_json(resp, 200, json_pack("{s:s, s:s}", "who", who.who, "role", role_name(who.role)));
}

static void h_faults_get(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (!auth_require(s, req, resp, ROLE_VIEWER, NULL))
        return;
    char admin[128];
    json_t *answer = NULL;
    const char *id = http_req_param(req, "id");
    if (!fleet_agent_admin(s->fleet, id, admin)) {
        http_problem(resp, req, 404, "no-such-replica", "Not Found",
                     "no live agent has that id in the registry", NULL);
    } else if (server_agent_call(s, admin, "GET", "/v1/faults", NULL, &answer) != 200) {
        json_decref(answer);
        http_problem(resp, req, 502, "agent-unreachable", "Bad Gateway",
                     "the agent's admin API did not answer", NULL);
    } else {
        http_resp_json(resp, 200, answer);
    }
}

static void h_replica(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (!auth_require(s, req, resp, ROLE_VIEWER, NULL))
        return;
    json_t *r = fleet_replica_json(s->fleet, http_req_param(req, "id"));
    if (r)
        http_resp_json(resp, 200, r);
    else
        http_problem(resp, req, 404, "no-such-replica", "Not Found", "no replica has that id",
                     NULL);
}

/* ---- limits (limits.c) ------------------------------------------------------------------- */

static void h_limits(struct http_req *req, struct http_resp *resp)
{
    limits_routes_list(srv_of(req), req, resp);
}
static void h_limit_get(struct http_req *req, struct http_resp *resp)
{
    limits_routes_get(srv_of(req), req, resp);
}
static void h_limit_put(struct http_req *req, struct http_resp *resp)
{
    limits_routes_put(srv_of(req), req, resp);
}
static void h_limit_delete(struct http_req *req, struct http_resp *resp)
{
    limits_routes_delete(srv_of(req), req, resp);
}
static void h_limit_history(struct http_req *req, struct http_resp *resp)
{
    limits_routes_history(srv_of(req), req, resp);
}
static void h_limit_rollback(struct http_req *req, struct http_resp *resp)
{
    limits_routes_rollback(srv_of(req), req, resp);
}

/* ---- SLOs, traces, queues, audit ----------------------------------------------------------- */

static void h_slos(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (auth_require(s, req, resp, ROLE_VIEWER, NULL))
        http_resp_json(resp, 200, fleet_slos_json(s->fleet));
}

static void h_slo_get(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (!auth_require(s, req, resp, ROLE_VIEWER, NULL))
        return;
    json_t *o = fleet_slo_json(s->fleet, http_req_param(req, "name"));
    if (o)
        http_resp_json(resp, 200, o);
    else
        http_problem(resp, req, 404, "no-such-slo", "Not Found", "no SLO has that name", NULL);
}

static void h_slo_put(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    struct caller who;
    if (!auth_require(s, req, resp, ROLE_OPERATOR, &who))
        return;
    const char *name = http_req_param(req, "name");
    json_t *doc = json_loadb(req->body, req->body_len, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        http_problem(resp, req, 400, "bad-json", "Bad Request",
                     "the body must be one JSON object (an SLO)", NULL);
        return;
    }
    struct field_errors fe;
    field_errors_init(&fe);
    json_t *before = NULL;
    int rc = fleet_slo_put(s->fleet, name, doc, &fe, &before);
    if (rc == SL_EINVAL) {
        http_problem(resp, req, 422, "validation-failed", "Validation failed",
                     "the SLO has invalid fields", json_pack("{s:O}", "errors", fe.list));
    } else if (rc != SL_OK) {
        http_problem(resp, req, 503, "store-unavailable", "Service Unavailable",
                     "the SLO store (Redis) cannot be reached", NULL);
    } else {
        audit_record(s, &who, "slos.put", name, before, json_incref(doc));
        before = NULL;
        json_t *now = fleet_slo_json(s->fleet, name);
        http_resp_json(resp, 200, now ? now : json_object());
    }
    json_decref(before);
    field_errors_release(&fe);
    json_decref(doc);
}

static unsigned query_uint(const struct http_req *req, const char *name, unsigned dflt,
                           unsigned max)
{
    char v[16];
    if (!http_req_query(req, name, v, sizeof(v)))
        return dflt;
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    return *end || end == v ? dflt : n > max ? max : (unsigned)n;
}

static void h_traces(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (!auth_require(s, req, resp, ROLE_VIEWER, NULL))
        return;
    char route[128], status[16], service[64];
    bool has_route = http_req_query(req, "route", route, sizeof(route));
    bool has_status = http_req_query(req, "status", status, sizeof(status));
    bool has_service = http_req_query(req, "service", service, sizeof(service));
    http_resp_json(resp, 200,
                   fleet_traces_json(s->fleet, has_route ? route : NULL,
                                     has_status ? status : NULL,
                                     query_uint(req, "min_duration_ms", 0, 3600000),
                                     has_service ? service : NULL,
                                     query_uint(req, "limit", 50, 500)));
}

static void h_trace(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (!auth_require(s, req, resp, ROLE_VIEWER, NULL))
        return;
    json_t *t = fleet_trace_json(s->fleet, http_req_param(req, "id"));
    if (t)
        http_resp_json(resp, 200, t);
    else
        http_problem(resp, req, 404, "no-such-trace", "Not Found",
                     "no trace with that id is held (traces are kept bounded)", NULL);
}

static void h_queues(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (auth_require(s, req, resp, ROLE_VIEWER, NULL))
        http_resp_json(resp, 200, fleet_queues_json(s->fleet));
}

static void h_queue(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (!auth_require(s, req, resp, ROLE_VIEWER, NULL))
        return;
    json_t *q = fleet_queue_json(s->fleet, http_req_param(req, "name"));
    if (q)
        http_resp_json(resp, 200, q);
    else
        http_problem(resp, req, 404, "no-such-queue", "Not Found", "no queue has that name",
                     NULL);
}

static void h_audit(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (!auth_require(s, req, resp, ROLE_VIEWER, NULL))
        return;
    char err[128];
    json_t *list = audit_list(s, query_uint(req, "limit", 100, 10000), err);
    if (list)
        http_resp_json(resp, 200, json_pack("{s:o}", "records", list));
    else
        http_problem(resp, req, 503, "store-unavailable", "Service Unavailable", err, NULL);
}

static void h_drills(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (auth_require(s, req, resp, ROLE_VIEWER, NULL))
        http_resp_json(resp, 200, drills_list(s->drills));
}

static void h_drill_start(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    struct caller who;
    if (!auth_require(s, req, resp, ROLE_OPERATOR, &who))
        return;
    const char *name = http_req_param(req, "name");
    char run[64], err[256] = "";
    int rc = drills_start(s->drills, name, who.who, run, err);
    if (rc == SL_ENOTFOUND)
        http_problem(resp, req, 404, "no-such-drill", "Not Found", "no drill has that name", NULL);
    else if (rc == SL_EEXISTS || rc == SL_EINVAL)
        http_problem(resp, req, 409, rc == SL_EEXISTS ? "drill-running" : "not-steady", "Conflict",
                     err, NULL);
    else if (rc)
        http_problem(resp, req, 500, "drill-failed", "Internal Server Error", err_str(rc), NULL);
    else {
        audit_record(s, &who, "drills.start", name, NULL, json_pack("{s:s}", "run", run));
        http_resp_header(resp, "Location", "/v1/drills/runs/%s", run);
        http_resp_json(resp, 202, json_pack("{s:s, s:s}", "run", run, "state", "running"));
    }
}

static void abort_runs(struct http_req *req, struct http_resp *resp, const char *run)
{
    struct server *s = srv_of(req);
    struct caller who;
    if (!auth_require(s, req, resp, ROLE_OPERATOR, &who))
        return;
    int n = drills_abort(s->drills, run, "aborted by an operator");
    audit_record(s, &who, run ? "drills.abort" : "drills.abort_all", run ? run : "all", NULL,
                 json_pack("{s:i}", "aborted", n));
    if (run && !n)
        http_problem(resp, req, 404, "no-such-run", "Not Found", "no running drill has that id",
                     NULL);
    else
        http_resp_json(resp, 200, json_pack("{s:i}", "aborted", n));
}

static void h_drill_abort(struct http_req *req, struct http_resp *resp)
{
    abort_runs(req, resp, http_req_param(req, "run"));
}

static void h_drills_abort_all(struct http_req *req, struct http_resp *resp)
{
    abort_runs(req, resp, NULL);
}

static void h_drill_run(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    if (!auth_require(s, req, resp, ROLE_VIEWER, NULL))
        return;
    json_t *j = drills_run(s->drills, http_req_param(req, "run"));
    if (j)
        http_resp_json(resp, 200, j);
    else
        http_problem(resp, req, 404, "no-such-run", "Not Found", "no drill run has that id", NULL);
}

static void h_metrics(struct http_req *req, struct http_resp *resp)
{
    struct server *s = srv_of(req);
    struct fleet_stats fs;
    fleet_stats(s->fleet, &fs);
    struct buf out;
    buf_init(&out, 1 << 20);
    struct prom w;
    prom_init(&w, &out);
    const struct {
        const char *name, *help;
        enum prom_type type;
        double v;
    } rows[] = {
        {"sluice_server_requests_total", "API requests", PROM_COUNTER,
         (double)atomic_load(&s->requests)},
        {"sluice_server_mutations_total", "Audited changes", PROM_COUNTER,
         (double)atomic_load(&s->mutations)},
        {"sluice_server_denied_total", "Requests refused 401/403", PROM_COUNTER,
         (double)atomic_load(&s->denied)},
        {"sluice_server_sweeps_total", "Fleet polls completed", PROM_COUNTER, (double)fs.sweeps},
        {"sluice_server_agent_polls_total", "Agent stats fetched", PROM_COUNTER,
         (double)fs.polls},
        {"sluice_server_agent_poll_failures_total", "Agent polls that failed", PROM_COUNTER,
         (double)fs.poll_failures},
        {"sluice_server_sweep_seconds", "Duration of the last fleet sweep", PROM_GAUGE,
         (double)fs.sweep_us_last / 1e6},
        {"sluice_server_agents", "Agents in the registry", PROM_GAUGE, (double)fs.agents},
        {"sluice_server_agents_up", "Agents that answered the last poll", PROM_GAUGE,
         (double)fs.agents_up},
        {"sluice_server_spans_read_total", "Spans read from sluice:spans", PROM_COUNTER,
         (double)fs.spans_read},
        {"sluice_server_event_viewers", "Open /v1/events streams", PROM_GAUGE,
         (double)events_viewers(s->events)},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        prom_family(&w, rows[i].name, rows[i].type, rows[i].help);
        prom_sample(&w, NULL, 0, rows[i].v);
    }
    http_resp_bytes(resp, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    buf_release(&out);
}

static const struct http_route routes[] = {
    {"GET", "/healthz", h_healthz},
    {"GET", "/metrics", h_metrics},
    {"GET", "/v1/fleet", h_fleet},
    {"GET", "/v1/events", h_events},
    {"GET", "/v1/replicas/{id}", h_replica},
    {"POST", "/v1/replicas/{id}/drain", h_drain},
    {"POST", "/v1/replicas/{id}/undrain", h_undrain},
    {"PUT", "/v1/replicas/{id}/weight", h_weight},
    {"POST", "/v1/replicas/{id}/cache/purge", h_cache_purge},
    {"GET", "/v1/whoami", h_whoami},
    {"GET", "/v1/faults/{id}", h_faults_get},
    {"PUT", "/v1/faults/{id}", h_faults_put},
    {"DELETE", "/v1/faults/{id}", h_faults_delete},
    {"GET", "/v1/limits", h_limits},
    {"GET", "/v1/limits/{name}", h_limit_get},
    {"PUT", "/v1/limits/{name}", h_limit_put},
    {"DELETE", "/v1/limits/{name}", h_limit_delete},
    {"GET", "/v1/limits/{name}/history", h_limit_history},
    {"POST", "/v1/limits/{name}/rollback", h_limit_rollback},
    {"GET", "/v1/slos", h_slos},
    {"GET", "/v1/slos/{name}", h_slo_get},
    {"PUT", "/v1/slos/{name}", h_slo_put},
    {"GET", "/v1/traces", h_traces},
    {"GET", "/v1/traces/{id}", h_trace},
    {"GET", "/v1/queues", h_queues},
    {"GET", "/v1/queues/{name}", h_queue},
    {"GET", "/v1/audit", h_audit},
    {"GET", "/v1/drills", h_drills},
    {"POST", "/v1/drills/abort-all", h_drills_abort_all},
    {"POST", "/v1/drills/{name}/start", h_drill_start},
    {"POST", "/v1/drills/{run}/abort", h_drill_abort},
    {"GET", "/v1/drills/runs/{run}", h_drill_run},
};

static void front(struct http_req *req, struct http_resp *resp)
{
    atomic_fetch_add(&srv_of(req)->requests, 1);
    http_dispatch(routes, sizeof(routes) / sizeof(routes[0]), req, resp);
}

int api_start(struct server *s, char err[256])
{
    struct http_server_config cfg = {
        .host = s->listen_host,
        .port = s->listen_port,
        .threads = (unsigned)s->cfg.threads,
        .conn_limit = 256,
        .max_body_bytes = 256 * 1024,
        .routes = routes,
        .nroutes = sizeof(routes) / sizeof(routes[0]),
        .handler = front,
        .app = s,
        .name = "api",
        .thread_per_connection = true,
    };
    char herr[HTTP_SERVER_ERR_MAX];
    s->http = http_server_start(&cfg, herr);
    if (!s->http) {
        snprintf(err, 256, "--listen: %.200s", herr);
        return SL_EINVAL;
    }
    return SL_OK;
}

void api_stop(struct server *s)
{
    if (s->http) {
        events_close(s->events); /* streams end: their threads can be joined */
        http_server_stop(s->http);
        s->http = NULL;
    }
}
