/*
 * server — sluice-server, the control plane (DESIGN §4.3, docs/server.md): what the TUI
 * and scripts talk to. One process, these threads:
 *
 *   HTTP API (libmicrohttpd, a thread per connection so Server-Sent Events may block)
 *   fleet     (fleet.c: an evloop + libcurl multi) every --poll-ms: the registry, every
 *             agent's /v1/stats in parallel, the merged snapshot (snapshot.c), SLO
 *             series (slo.c), queue inspection (queues.c); publishes the snapshot to
 *             every SSE viewer at once (events.c)
 *   spans     (fleet.c) XREADGROUP on sluice:spans into the trace store (traces.c)
 *
 * Shared state below lives under `lock` unless a field says otherwise. Handlers read the
 * latest snapshot (a JSON string, replaced whole each tick) and call into Redis through
 * the pool (hiredis, blocking, with timeouts).
 */
#ifndef SERVER_SERVER_H
#define SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "json.h"

#define SERVER_KEY_MAX 128

enum role { ROLE_NONE, ROLE_VIEWER, ROLE_OPERATOR, ROLE_ADMIN };

struct server_config {
    const char *listen;
    const char *redis;
    const char *agent_token; /* Bearer token for the agents' admin APIs */
    const char *jwt_secret;  /* HS256 secret for operator JWTs (none: keys only) */
    const char *slos;        /* SLO definitions file */
    const char *queues;      /* comma-separated queue names (also discovered) */
    const char *drills;      /* folder of drill files (samples/drills) */
    const char *log_level;
    unsigned long poll_ms;
    unsigned long agent_timeout_ms;
    unsigned long poll_threads; /* the agents are split across this many poller threads */
    unsigned long threads;
    bool no_auth; /* loopback only: every caller is admin */
};

struct redis_pool;
struct http_server;
struct events;
struct fleet;
struct trace_store;
struct slo_registry;

struct server {
    struct server_config cfg;
    char listen_host[64];
    uint16_t listen_port;
    struct redis_pool *redis;
    struct http_server *http;
    struct events *events; /* SSE hub (own lock) */
    struct fleet *fleet;   /* poller (own lock) */
    struct drills *drills; /* chaos drills (own lock) */
    uint64_t started_ms;
    atomic_bool stopping;
    /* counters for /metrics */
    _Atomic uint64_t requests, mutations, denied;
};

int server_main(int argc, char **argv);

/* ---- auth.c ---------------------------------------------------------------------------- */
struct http_req;
struct http_resp;

struct caller {
    enum role role;
    char who[SERVER_KEY_MAX]; /* key id, JWT subject, or "anonymous" (--no-auth) */
};

const char *role_name(enum role r);
bool role_parse(const char *s, enum role *out);
/* The caller of req, checked against need: false when the answer (401/403) is written. */
bool auth_require(struct server *s, struct http_req *req, struct http_resp *resp,
                  enum role need, struct caller *out);
/* Append one audit record (who, action, target, before → after) to sluice:audit and
 * tell the SSE viewers. before/after may be NULL (stolen references). */
void audit_record(struct server *s, const struct caller *c, const char *action,
                  const char *target, json_t *before, json_t *after);
/* GET /v1/audit?limit=N, newest first. */
json_t *audit_list(struct server *s, unsigned limit, char err[128]);
/* Keys: `sluice-server keys create --role R [--name N] --redis URL`. */
int keys_main(int argc, char **argv);
/* Are there keys (or a JWT secret) to authenticate with? */
bool auth_configured(struct server *s);

/* ---- limits.c -------------------------------------------------------------------------- */
void limits_routes_list(struct server *s, struct http_req *req, struct http_resp *resp);
void limits_routes_get(struct server *s, struct http_req *req, struct http_resp *resp);
void limits_routes_put(struct server *s, struct http_req *req, struct http_resp *resp);
void limits_routes_delete(struct server *s, struct http_req *req, struct http_resp *resp);
void limits_routes_history(struct server *s, struct http_req *req, struct http_resp *resp);
void limits_routes_rollback(struct server *s, struct http_req *req, struct http_resp *resp);

/* ---- events.c: Server-Sent Events hub --------------------------------------------------- */
struct events *events_new(unsigned ring);
void events_free(struct events *e);
/* Broadcast one event (type "snapshot", "audit", ...; data: one JSON line). */
void events_publish(struct events *e, const char *type, const char *data);
/* End every stream (shutdown). */
void events_close(struct events *e);
/* Start a stream for one viewer into resp (text/event-stream); false when too many. */
bool events_subscribe(struct events *e, struct http_resp *resp);
unsigned events_viewers(struct events *e);

/* ---- api.c ------------------------------------------------------------------------------ */
/* A call to an agent's admin API (admin "host:port") or any sluice HTTP API (base URL), with
 * the fleet's admin token; body borrowed (may be NULL), *answer the JSON answer (answer may
 * be NULL). The HTTP status, 0 when there was no answer. */
long server_agent_call(struct server *s, const char *admin, const char *method, const char *path,
                       const json_t *body, json_t **answer);
long server_url_call(struct server *s, const char *base, const char *method, const char *path,
                     const json_t *body, json_t **answer);
int api_start(struct server *s, char err[256]);
void api_stop(struct server *s);

#endif
