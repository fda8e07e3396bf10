#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "control.h"
#include "crypto.h"
#include "err.h"
#include "flags.h"
#include "http.h"
#include "http_mhd.h"
#include "log.h"
#include "policy.h"
#include "policy_sync.h"
#include "ratelimit.h"
#include "gateway.h"
#include "respcache.h"
#include "routes.h"
#include "version.h"
#include "worker.h"

#define DRAIN_DEFAULT_S 30
#define DRAIN_MAX_S 3600

/* ---- reads --------------------------------------------------------------------------- */

static void merged_view(struct agent *a, struct stats_view *v)
{
    stats_view_reset(v);
    for (unsigned i = 0; i < a->nworkers; i++)
        stats_view_add(v, worker_stats(a->workers[i]));
    stats_view_finish(v);
}

static json_t *drain_json(const struct agent *a)
{
    uint64_t started = atomic_load(&a->drain_started_ms);
    uint64_t deadline = atomic_load(&a->drain_deadline_ms), now = clock_mono_ms();
    if (!started)
        return json_null();
    return json_pack("{s:I, s:I, s:i}", "elapsed_ms", (json_int_t)(now - started),
                     "remaining_ms", (json_int_t)(deadline > now ? deadline - now : 0),
                     "in_flight", (int)agent_in_flight(a));
}

json_t *admin_stats_json(struct agent *a)
{
    struct stats_view *v = malloc(sizeof(*v));
    if (!v)
        return NULL;
    merged_view(a, v);
    uint64_t now = clock_mono_ms();
    json_t *routes = json_array();
    unsigned n = routes_count(a->routes);
    for (unsigned i = 0; i < n && i < STATS_ROUTES_MAX; i++) {
        if (!atomic_load(&v->routes[i].requests))
            continue;
        json_t *r = stats_route_json(&v->routes[i], now);
        json_object_set_new(r, "route", json_string(routes_name(a->routes, i)));
        json_array_append_new(routes, r);
    }
    unsigned conns = 0;
    uint64_t dropped = 0;
    struct fault_set faults;
    agent_get_faults(a, &faults);
    for (unsigned i = 0; i < a->nworkers; i++) {
        conns += worker_connections(a->workers[i]);
        dropped += span_buffer_dropped(worker_spans(a->workers[i]));
    }
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:s, s:I, s:i, s:o, s:{s:i, s:I}, s:{s:I, s:I}, s:o,"
        " s:{s:i}, s:{s:b}, s:{s:I}, s:i}",
        "id", a->id, "role", a->role == AGENT_ROLE_SIDECAR ? "sidecar" : "gateway", "service",
        a->cfg.service, "state", agent_state_name(atomic_load(&a->state)), "weight",
        atomic_load(&a->weight), "version", SLUICE_VERSION, "uptime_s",
        (json_int_t)((clock_wall_ms() - a->started_wall_ms) / 1000), "in_flight",
        (int)v->in_flight, "totals", stats_route_json(&v->total, now), "connections", "open",
        (int)conns, "accepted", (json_int_t)v->connections_accepted, "upstream", "connects",
        (json_int_t)v->upstream_connects, "reused", (json_int_t)v->upstream_reused, "routes",
        routes, "faults", "active", (int)fault_set_active(&faults, now), "cache", "enabled",
        0, "spans", "dropped", (json_int_t)dropped, "policy_version", 0);
    json_object_set_new(o, "drain", drain_json(a));
    json_object_set_new(o, "exec", a->cfg.exec && a->cfg.exec[0] ? json_pack("{s:i, s:i}", "pid", control_child_pid(a),
                                                           "restarts", (int)control_child_restarts(a))
                                               : json_null());
    json_object_set_new(o, "cache", respcache_stats_json(a));
    if (a->gateway)
        json_object_set_new(o, "gateway", gateway_stats_json(a));
    struct policy_set *set = agent_policies(a);
    json_object_set_new(o, "policy_version", json_integer(set ? (json_int_t)set->version : 0));
    json_object_set_new(o, "limiter",
                        json_pack("{s:o, s:o, s:I, s:I, s:i}", "policies", limits_stats_json(a),
                                  "sync", policy_sync_status(a->policy_sync), "local_keys",
                                  (json_int_t)rl_local_keys(a->rl_local), "local_evictions",
                                  (json_int_t)rl_local_evictions(a->rl_local), "live_agents",
                                  (int)atomic_load(&a->live_agents)));
    policy_set_unref(set);
    free(v);
    return o;
}

static void h_healthz(struct http_req *req, struct http_resp *resp)
{
    (void)req;
    http_resp_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    int state = atomic_load(&a->state);
    if (state == AGENT_SERVING && !atomic_load(&a->stopping)) {
        http_resp_json(resp, 200, json_pack("{s:s}", "state", "serving"));
        return;
    }
    http_problem(resp, req, 503, "not-ready", "Not ready", "this replica is not taking new work",
                 json_pack("{s:s}", "state", agent_state_name(state)));
    http_resp_header(resp, "Retry-After", "5");
}

static void h_stats(struct http_req *req, struct http_resp *resp)
{
    json_t *o = admin_stats_json(req->app);
    if (!o)
        http_problem(resp, req, 500, "internal", NULL, "out of memory", NULL);
    else
        http_resp_json(resp, 200, o);
}

static void h_metrics(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    struct stats_view *v = malloc(sizeof(*v));
    struct buf out;
    buf_init(&out, HTTP_RESP_BODY_MAX);
    if (!v) {
        http_problem(resp, req, 500, "internal", NULL, "out of memory", NULL);
        return;
    }
    merged_view(a, v);
    const char *names[ROUTES_MAX];
    routes_names(a->routes, names);
    struct prom w;
    prom_init(&w, &out);
    stats_prom(&w, v, names, routes_count(a->routes), a->id);
    prom_family(&w, "sluice_agent_state", PROM_GAUGE,
                "Traffic state: 0 serving, 1 draining, 2 drained, 3 maintenance");
    prom_sample(&w, NULL, 0, atomic_load(&a->state));
    prom_family(&w, "sluice_agent_weight", PROM_GAUGE, "Load-balancing weight (0-100)");
    prom_sample(&w, NULL, 0, atomic_load(&a->weight));
    limits_prom(&w, a);
    respcache_prom(&w, a);
    gateway_prom(&w, a);
    struct policy_set *set = agent_policies(a);
    prom_family(&w, "sluice_policy_version", PROM_GAUGE, "Version of the policy set applied");
    prom_sample(&w, NULL, 0, set ? (double)set->version : 0);
    policy_set_unref(set);
    http_resp_bytes(resp, 200, PROM_CONTENT_TYPE, buf_str(&out), out.len);
    buf_release(&out);
    free(v);
}

static void h_config(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    const struct agent_config *c = &a->cfg;
    json_t *cache = json_pack("{s:I, s:s, s:I, s:s?, s:I, s:o}", "bytes", (json_int_t)c->cache_bytes,
                              "policy", c->cache_policy, "max_entry_bytes",
                              (json_int_t)c->cache_max_entry_bytes, "redis",
                              c->cache_redis ? "set" : NULL, "redis_max_entry_bytes",
                              (json_int_t)c->cache_redis_max_entry_bytes, "rules",
                              respcache_rules_json(a));
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:b, s:s?, s:s?, s:s?, s:i, s:f, s:{s:I,"
                  " s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:b, s:s, s:o}",
                  "id", a->id, "role", c->role, "service", c->service, "listen", a->listen_str,
                  "admin", a->admin_str, "upstream", a->upstream_str, "redis", c->redis,
                  "admin_token_set", c->admin_token != NULL, "exec", c->exec, "agent_check",
                  c->agent_check, "routes", c->routes, "workers", (int)a->nworkers,
                  "trace_sample", a->trace_sample, "limits", "max_conns",
                  (json_int_t)c->max_conns, "max_header_bytes", (json_int_t)c->max_header_bytes,
                  "max_body_bytes", (json_int_t)c->max_body_bytes, "header_timeout_ms",
                  (json_int_t)c->header_timeout_ms, "idle_timeout_ms",
                  (json_int_t)c->idle_timeout_ms, "connect_timeout_ms",
                  (json_int_t)c->connect_timeout_ms, "upstream_timeout_ms",
                  (json_int_t)c->upstream_timeout_ms, "drain_timeout_s",
                  (json_int_t)c->drain_timeout_s, "trace_slow_ms", (json_int_t)c->trace_slow_ms,
                  "access_log", c->access_log, "version", SLUICE_VERSION, "cache", cache);
    if (a->gateway)
        json_object_set_new(o, "gateway",
                            json_pack("{s:s?, s:s?, s:s, s:I, s:I, s:I, s:I, s:s, s:I}",
                                      "upstreams", c->upstreams, "discover", c->discover, "lb",
                                      c->lb, "health_interval_ms",
                                      (json_int_t)c->health_interval_ms, "health_timeout_ms",
                                      (json_int_t)c->health_timeout_ms, "health_rise",
                                      (json_int_t)c->health_rise, "health_fall",
                                      (json_int_t)c->health_fall, "health_path", c->health_path,
                                      "retries", (json_int_t)c->retries));
    http_resp_json(resp, 200, o);
}

/* ---- mutations ----------------------------------------------------------------------- */

/* Bearer admin token, compared in constant time. false: the response is written. */
static bool authorized(struct http_req *req, struct http_resp *resp)
{
    const struct agent *a = req->app;
    const char *token = a->cfg.admin_token;
    if (!token || !*token) {
        http_problem(resp, req, 403, "mutations-disabled", "Forbidden",
                     "this agent was started without --admin-token: changes are refused", NULL);
        return false;
    }
    const char *h = http_req_header(req, "Authorization");
    size_t n = strlen(token);
    bool ok = h && strncmp(h, "Bearer ", 7) == 0 && strlen(h + 7) == n &&
              crypto_equal(h + 7, token, n);
    if (!ok) {
        http_problem(resp, req, 401, "unauthorized", "Unauthorized",
                     "send the admin token as 'Authorization: Bearer ...'", NULL);
        http_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"sluice-agent\"");
    }
    return ok;
}

/* A JSON object body (an empty body counts as {} when allow_empty). NULL: answered. */
static json_t *json_body(struct http_req *req, struct http_resp *resp, bool allow_empty)
{
    if (req->body_len == 0 && allow_empty)
        return json_object();
    char err[JSON_ERR_MAX];
    json_t *doc;
    if (json_parse(req->body, req->body_len, &doc, err)) {
        http_problem(resp, req, 400, "malformed-json", "Malformed JSON", err, NULL);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        http_problem(resp, req, 422, "validation-failed", "Validation failed",
                     "the body must be a JSON object", NULL);
        return NULL;
    }
    return doc;
}

static void invalid(struct http_req *req, struct http_resp *resp, struct field_errors *fe)
{
    http_problem(resp, req, 422, "validation-failed", "Validation failed",
                 "the request body has invalid fields", json_pack("{s:O}", "errors", fe->list));
}

static void h_drain(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    json_t *doc;
    if (!authorized(req, resp) || !(doc = json_body(req, resp, true)))
        return;
    static const char *const fields[] = {"timeout_s", NULL};
    struct field_errors fe;
    field_errors_init(&fe);
    int64_t timeout_s = DRAIN_DEFAULT_S;
    json_reject_unknown(doc, fields, &fe);
    json_field_int(doc, "timeout_s", false, 1, DRAIN_MAX_S, &timeout_s, &fe);
    if (field_errors_any(&fe)) {
        invalid(req, resp, &fe);
    } else {
        agent_drain(a, (unsigned)timeout_s);
        log_event(LOG_INFO, req->request_id, NULL, "drain requested", NULL);
        http_resp_json(resp, 202, json_pack("{s:s, s:i, s:o}", "state",
                                            agent_state_name(atomic_load(&a->state)),
                                            "in_flight", (int)agent_in_flight(a), "drain",
                                            drain_json(a)));
    }
    field_errors_release(&fe);
    json_decref(doc);
}

static void h_undrain(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    if (!authorized(req, resp))
        return;
    agent_undrain(a);
    log_event(LOG_INFO, req->request_id, NULL, "undrain requested", NULL);
    http_resp_json(resp, 200, json_pack("{s:s}", "state", agent_state_name(atomic_load(&a->state))));
}

static void h_weight(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    json_t *doc;
    if (!authorized(req, resp) || !(doc = json_body(req, resp, false)))
        return;
    static const char *const fields[] = {"weight", NULL};
    struct field_errors fe;
    field_errors_init(&fe);
    int64_t weight = 0;
    json_reject_unknown(doc, fields, &fe);
    bool ok = json_field_int(doc, "weight", true, 0, 100, &weight, &fe);
    if (!ok || field_errors_any(&fe)) {
        invalid(req, resp, &fe);
    } else {
        atomic_store(&a->weight, (int)weight);
        http_resp_json(resp, 200, json_pack("{s:i}", "weight", (int)weight));
    }
    field_errors_release(&fe);
    json_decref(doc);
}

/* Gateway: PUT /v1/lb {"algorithm": "least_conn"} switches balancing live. */
static void h_lb(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    json_t *doc;
    if (!authorized(req, resp) || !(doc = json_body(req, resp, false)))
        return;
    static const char *const fields[] = {"algorithm", NULL};
    struct field_errors fe;
    field_errors_init(&fe);
    const char *alg = NULL;
    json_reject_unknown(doc, fields, &fe);
    if (json_field_string(doc, "algorithm", true, 128, &alg, &fe) && a->gateway &&
        gateway_set_algorithm(a, alg) != SL_OK)
        field_errors_add(&fe, "algorithm", "expected round_robin, weighted, least_conn, p2c, "
                                           "hash:ip or hash:header:NAME");
    if (!a->gateway)
        http_problem(resp, req, 409, "not-a-gateway", "Not a gateway",
                     "balancing is the gateway's (--role gateway)", NULL);
    else if (field_errors_any(&fe))
        invalid(req, resp, &fe);
    else
        http_resp_json(resp, 200, json_pack("{s:s}", "algorithm", alg));
    field_errors_release(&fe);
    json_decref(doc);
}

/* Gateway: PUT /v1/upstreams/weight {"upstream": "host:port or id", "weight": 0..100}. */
static void h_upstream_weight(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    json_t *doc;
    if (!authorized(req, resp) || !(doc = json_body(req, resp, false)))
        return;
    static const char *const fields[] = {"upstream", "weight", NULL};
    struct field_errors fe;
    field_errors_init(&fe);
    const char *up = NULL;
    int64_t weight = 0;
    json_reject_unknown(doc, fields, &fe);
    bool ok = json_field_string(doc, "upstream", true, 255, &up, &fe);
    ok = json_field_int(doc, "weight", true, 0, 100, &weight, &fe) && ok;
    if (!a->gateway)
        http_problem(resp, req, 409, "not-a-gateway", "Not a gateway",
                     "upstream weights are the gateway's (--role gateway)", NULL);
    else if (!ok || field_errors_any(&fe))
        invalid(req, resp, &fe);
    else if (gateway_set_weight(a, up, (unsigned)weight) != SL_OK)
        http_problem(resp, req, 404, "no-such-upstream", "No such upstream",
                     "no upstream has that address or registry id", NULL);
    else
        http_resp_json(resp, 200, json_pack("{s:s, s:i}", "upstream", up, "weight", (int)weight));
    field_errors_release(&fe);
    json_decref(doc);
}

static void h_faults_get(struct http_req *req, struct http_resp *resp)
{
    struct fault_set set;
    agent_get_faults(req->app, &set);
    http_resp_json(resp, 200, fault_set_to_json(&set, clock_mono_ms()));
}

static void h_faults_put(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    if (!authorized(req, resp))
        return;
    struct fault_set set;
    struct field_errors fe;
    char jerr[JSON_ERR_MAX];
    field_errors_init(&fe);
    uint64_t now = clock_mono_ms();
    int rc = fault_set_parse(req->body, req->body_len, now, &set, &fe, jerr);
    if (rc == SL_EPARSE) {
        http_problem(resp, req, 400, "malformed-json", "Malformed JSON", jerr, NULL);
    } else if (rc) {
        invalid(req, resp, &fe);
    } else {
        agent_set_faults(a, &set);
        log_event(LOG_INFO, req->request_id, NULL, "faults replaced", NULL);
        http_resp_json(resp, 200, fault_set_to_json(&set, now));
    }
    field_errors_release(&fe);
}

static void h_faults_delete(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    if (!authorized(req, resp))
        return;
    struct fault_set empty = {0};
    agent_set_faults(a, &empty);
    log_event(LOG_INFO, req->request_id, NULL, "faults cleared", NULL);
    resp->status = 204;
}

static void h_policies_get(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    struct policy_set *set = agent_policies(a);
    json_t *o = json_pack("{s:I, s:s, s:o, s:o}", "version",
                          (json_int_t)(set ? set->version : 0), "source",
                          set && set->local_override ? "local" : "redis", "policies",
                          policy_set_to_json(set), "sync", policy_sync_status(a->policy_sync));
    policy_set_unref(set);
    http_resp_json(resp, 200, o);
}

/* A local override (works without Redis): replaces the Redis set until DELETE. */
static void h_policies_put(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    json_t *doc;
    if (!authorized(req, resp) || !(doc = json_body(req, resp, false)))
        return;
    struct field_errors fe;
    field_errors_init(&fe);
    if (policy_sync_override(a->policy_sync, doc, &fe)) {
        invalid(req, resp, &fe);
    } else {
        log_event(LOG_INFO, req->request_id, NULL, "local policy override set", NULL);
        h_policies_get(req, resp);
    }
    field_errors_release(&fe);
    json_decref(doc);
}

static void h_policies_delete(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    if (!authorized(req, resp))
        return;
    policy_sync_override(a->policy_sync, NULL, NULL);
    log_event(LOG_INFO, req->request_id, NULL, "local policy override removed", NULL);
    resp->status = 204;
}

/* POST /v1/exec/kill: crash the --exec child (SIGKILL to its group); the supervision
 * restarts it. For chaos drills. */
static void h_exec_kill(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    int pid;
    if (!authorized(req, resp))
        return;
    if (control_child_kill(a, &pid) != SL_OK) {
        http_problem(resp, req, 409, "no-exec-child", "No child to kill",
                     a->cfg.exec && a->cfg.exec[0] ? "the --exec child is not running right now (restarting)"
                                 : "this agent supervises no API server (no --exec)",
                     NULL);
        return;
    }
    http_resp_json(resp, 202, json_pack("{s:i, s:i}", "killed_pid", pid, "restarts",
                                        (int)control_child_restarts(a)));
}

/* POST /v1/cache/purge {"prefix":"/v1/links/"}: drop every entry whose target starts so. */
static void h_cache_purge(struct http_req *req, struct http_resp *resp)
{
    struct agent *a = req->app;
    json_t *doc;
    if (!authorized(req, resp) || !(doc = json_body(req, resp, false)))
        return;
    static const char *const fields[] = {"prefix", NULL};
    struct field_errors fe;
    field_errors_init(&fe);
    const char *prefix = NULL;
    json_reject_unknown(doc, fields, &fe);
    if (json_field_string(doc, "prefix", true, 1024, &prefix, &fe) && prefix[0] != '/')
        field_errors_add(&fe, "prefix", "must start with '/'");
    if (field_errors_any(&fe)) {
        invalid(req, resp, &fe);
    } else if (!a->respcache) {
        http_problem(resp, req, 409, "cache-disabled", "Cache disabled",
                     "this agent runs without a cache (--cache-bytes 0)", NULL);
    } else {
        long long shared;
        size_t n = respcache_purge(a, prefix, strlen(prefix), &shared);
        http_resp_json(resp, 200, json_pack("{s:s, s:I, s:I}", "prefix", prefix, "purged",
                                            (json_int_t)n, "purged_shared", (json_int_t)shared));
    }
    field_errors_release(&fe);
    json_decref(doc);
}

static const struct http_route admin_routes[] = {
    {"GET", "/healthz", h_healthz},
    {"GET", "/readyz", h_readyz},
    {"GET", "/metrics", h_metrics},
    {"GET", "/v1/stats", h_stats},
    {"GET", "/v1/config", h_config},
    {"POST", "/v1/drain", h_drain},
    {"POST", "/v1/undrain", h_undrain},
    {"PUT", "/v1/weight", h_weight},
    {"PUT", "/v1/lb", h_lb},
    {"PUT", "/v1/upstreams/weight", h_upstream_weight},
    {"GET", "/v1/faults", h_faults_get},
    {"PUT", "/v1/faults", h_faults_put},
    {"DELETE", "/v1/faults", h_faults_delete},
    {"GET", "/v1/policies", h_policies_get},
    {"POST", "/v1/cache/purge", h_cache_purge},
    {"POST", "/v1/exec/kill", h_exec_kill},
    {"PUT", "/v1/policies", h_policies_put},
    {"DELETE", "/v1/policies", h_policies_delete},
};

int admin_start(struct agent *a, char err[256])
{
    char host[AGENT_ADDR_MAX];
    uint16_t port;
    if (flags_split_hostport(a->cfg.admin, host, sizeof(host), &port)) {
        snprintf(err, 256, "--admin: expected HOST:PORT, got '%s'", a->cfg.admin);
        return SL_EINVAL;
    }
    struct http_server_config hc = {
        .host = host,
        .port = port,
        .threads = 2,
        .conn_limit = 64,
        .per_ip_conn_limit = 0,
        .conn_timeout_s = 30,
        .max_body_bytes = 64 * 1024,
        .routes = admin_routes,
        .nroutes = sizeof(admin_routes) / sizeof(admin_routes[0]),
        .app = a,
        .name = "admin",
    };
    char herr[HTTP_SERVER_ERR_MAX];
    a->admin = http_server_start(&hc, herr);
    if (!a->admin) {
        snprintf(err, 256, "--admin %.60s: %.180s", a->cfg.admin, herr);
        return SL_EINVAL;
    }
    snprintf(a->admin_str, sizeof(a->admin_str), "%.100s:%u", host,
             (unsigned)http_server_port(a->admin));
    return SL_OK;
}

void admin_stop(struct agent *a)
{
    http_server_stop(a->admin);
    a->admin = NULL;
}
