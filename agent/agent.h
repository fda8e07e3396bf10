/*
 * agent — sluice-agent, the data plane (DESIGN §3, §4.1): one binary, two roles. As a
 * sidecar it fronts one API server; as a gateway (later) a pool of sidecars.
 *
 * Threads and ownership:
 *   - N worker threads (worker.c), each with its own evloop, SO_REUSEPORT listener,
 *     client connections, upstream keep-alive pool, metrics (stats.h) and span buffer.
 *     Nothing crosses threads on the request path.
 *   - one control thread (control.c) with its own evloop: Redis registration heartbeat,
 *     span shipping, --exec supervision, the HAProxy agent-check port, drain progress.
 *   - the admin API (admin.c) on libmicrohttpd's threads: reads merge the workers'
 *     metrics; mutations change the few shared values below, which are atomics or are
 *     published through a version counter that workers check once per request.
 * struct agent is created by agent_main and lives until the process exits.
 */
#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "faults.h"
#include "limiter.h"

#define AGENT_WORKERS_MAX 64
#define AGENT_ID_MAX 64
#define AGENT_ADDR_MAX 128

enum agent_role { AGENT_ROLE_SIDECAR, AGENT_ROLE_GATEWAY };

/* Traffic state (DESIGN §4.1): readyz is 200 only when SERVING. DRAINING becomes DRAINED
 * when no request is in flight (or the drain timeout passes); undrain returns to SERVING. */
enum agent_state { AGENT_SERVING, AGENT_DRAINING, AGENT_DRAINED, AGENT_MAINT };

struct agent_config {
    const char *role;
    const char *id;
    const char *service;
    const char *listen;
    const char *admin;
    const char *upstream;
    const char *redis;
    const char *admin_token;
    const char *exec;
    const char *agent_check;
    const char *routes;
    const char *trace_sample;
    const char *log_level;
    unsigned long workers;
    unsigned long weight;
    unsigned long max_conns;            /* client connections per worker */
    unsigned long max_header_bytes;
    unsigned long max_body_bytes;       /* 0 = unlimited */
    unsigned long header_timeout_ms;    /* a request head must arrive within this → 408 */
    unsigned long idle_timeout_ms;      /* keep-alive connection with no request → closed */
    unsigned long connect_timeout_ms;   /* upstream connect → 502 */
    unsigned long upstream_timeout_ms;  /* upstream response head → 504 */
    unsigned long drain_timeout_s;      /* SIGTERM: wait this long for in-flight requests */
    unsigned long trace_slow_ms;        /* slower requests are always traced */
    unsigned long cache_bytes;          /* issue 5; 0 = off */
    unsigned long ratelimit_max_keys;   /* local limiter state bound */
    unsigned long cache_max_entry_bytes; /* largest response stored */
    const char *cache_policy;
    const char *cache_redis;                   /* shared tier; NULL = none */
    const char *cache_rules;                   /* per-route rules file; NULL = none */
    unsigned long cache_redis_max_entry_bytes; /* largest entry written there */
    bool access_log;
    /* gateway (issue 6; gateway.h) */
    const char *upstreams; /* static pool: host:port,... */
    const char *discover;  /* or the service whose sidecars the registry lists */
    const char *lb;
    const char *health_path;
    unsigned long health_interval_ms, health_timeout_ms, health_rise, health_fall;
    unsigned long outlier_5xx, outlier_connect_failures, outlier_ejection_ms;
    unsigned long outlier_max_percent, panic_percent;
    unsigned long retries, retry_budget_percent;
};

struct worker;
struct control;
struct policy_set;
struct policy_sync;
struct rl_local;
struct redis_pool;
struct respcache;
struct http_server;
struct route_table;
struct gateway;

struct agent {
    struct agent_config cfg;
    enum agent_role role;
    char id[AGENT_ID_MAX];
    double trace_sample; /* 0–1 */
    struct sockaddr_storage listen_addr;
    socklen_t listen_addr_len;
    struct sockaddr_storage upstream_addr;
    socklen_t upstream_addr_len;
    char listen_str[AGENT_ADDR_MAX], upstream_str[AGENT_ADDR_MAX], admin_str[AGENT_ADDR_MAX];
    uint64_t started_wall_ms;

    atomic_int state;  /* enum agent_state */
    atomic_int weight; /* 0–100 */
    _Atomic uint64_t drain_started_ms, drain_deadline_ms; /* monotonic; 0 = none */
    atomic_bool stopping;                                 /* SIGTERM received */

    /* Faults: the master copy under a mutex; workers copy it when the version moves. */
    pthread_mutex_t faults_lock;
    struct fault_set faults;
    _Atomic uint64_t faults_version;

    /* Rate-limit policies: the current set under a mutex, published by bumping the
     * generation; workers take a reference when it moves (policy.h). */
    pthread_mutex_t policies_lock;
    struct policy_set *policies;
    _Atomic uint64_t policies_gen;
    struct policy_sync *policy_sync;
    struct rl_local *rl_local;   /* local limiter state, shared by the workers */
    struct policy_stats policy_stats;
    struct respcache *respcache; /* NULL when --cache-bytes is 0 */
    struct gateway *gateway;     /* --role gateway: the upstream pool */
    atomic_uint live_agents;     /* agents of this service in the registry (≥ 1) */
    bool legacy_ratelimit_headers;
    /* Called on the control thread every tick (policy sync); pool NULL without Redis. */
    void (*on_control_tick)(struct agent *a, struct redis_pool *pool, uint64_t now_ms);
    /* Called on the policy subscriber's thread for a message of the cache invalidation
     * channel (respcache.c sets it when the cache is on). */
    void (*on_cache_invalidate)(struct agent *a, const char *msg, size_t len);

    struct route_table *routes; /* read-only after start (templates), or learned (locked) */
    struct worker *workers[AGENT_WORKERS_MAX];
    unsigned nworkers;
    struct control *control;
    struct http_server *admin;
};

/* Entry point of the program (main.c calls it). */
int agent_main(int argc, char **argv);

/* Resolve HOST:PORT (numeric port) for flag; canon gets the text back. SL_OK or
 * SL_EINVAL with a message naming the flag. */
int agent_resolve(const char *flag, const char *hostport, struct sockaddr_storage *out,
                  socklen_t *len, char *canon, size_t canon_cap, char err[256]);

/* Requests in flight over all workers. */
unsigned agent_in_flight(const struct agent *a);
const char *agent_state_name(enum agent_state s);
/* Start draining (timeout_s ≥ 1) or return to serving. */
void agent_drain(struct agent *a, unsigned timeout_s);
void agent_undrain(struct agent *a);
/* Replace the fault set (copied) and publish it to the workers. */
void agent_set_faults(struct agent *a, const struct fault_set *set);
/* Copy the current set out. */
void agent_get_faults(struct agent *a, struct fault_set *out);
/* Clear the set when every TTL has passed (atomically with respect to agent_set_faults);
 * returns how many faults were cleared. */
size_t agent_expire_faults(struct agent *a, uint64_t now_ms);
/* The current policy set, referenced (policy_set_unref when done). */
struct policy_set *agent_policies(struct agent *a);
/* Replace the policy set (takes the caller's reference); state of policies whose
 * parameters changed is retuned in the local store. */
void agent_publish_policies(struct agent *a, struct policy_set *set);

#endif
