#include "agent.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "clock.h"
#include "control.h"
#include "err.h"
#include "flags.h"
#include "log.h"
#include "policy.h"
#include "policy_sync.h"
#include <curl/curl.h>

#include "gateway.h"
#include "respcache.h"
#include "ratelimit.h"
#include "routes.h"
#include "version.h"
#include "worker.h"

#define AGENT_USAGE                                                                        \
    "usage: sluice-agent [--role sidecar] --upstream HOST:PORT [options]\n"               \
    "       sluice-agent --role gateway --upstreams HOST:PORT,... | --discover SERVICE\n"  \
    "\nThe sluice data plane: a proxy in front of one API server (sidecar) or of the\n"    \
    "fleet (gateway) that balances, limits, caches, records metrics and traces, injects\n" \
    "faults on demand and can be drained (docs/agent.md, docs/gateway.md)."

/* ---- shared state (see agent.h) ------------------------------------------------------ */

unsigned agent_in_flight(const struct agent *a)
{
    unsigned n = 0;
    for (unsigned i = 0; i < a->nworkers; i++)
        n += worker_in_flight(a->workers[i]);
    return n;
}

const char *agent_state_name(enum agent_state s)
{
    static const char *const names[] = {"serving", "draining", "drained", "maint"};
    return (unsigned)s < 4 ? names[s] : "unknown";
}

void agent_drain(struct agent *a, unsigned timeout_s)
{
    uint64_t now = clock_mono_ms();
    atomic_store(&a->drain_started_ms, now);
    atomic_store(&a->drain_deadline_ms, now + (uint64_t)timeout_s * 1000);
    int serving = AGENT_SERVING;
    atomic_compare_exchange_strong(&a->state, &serving, AGENT_DRAINING);
}

void agent_undrain(struct agent *a)
{
    atomic_store(&a->drain_started_ms, 0);
    atomic_store(&a->drain_deadline_ms, 0);
    atomic_store(&a->state, AGENT_SERVING);
}

void agent_set_faults(struct agent *a, const struct fault_set *set)
{
    pthread_mutex_lock(&a->faults_lock);
    a->faults = *set;
    atomic_fetch_add_explicit(&a->faults_version, 1, memory_order_release);
    pthread_mutex_unlock(&a->faults_lock);
}

size_t agent_expire_faults(struct agent *a, uint64_t now_ms)
{
    size_t cleared = 0;
    pthread_mutex_lock(&a->faults_lock);
    if (a->faults.n && fault_set_active(&a->faults, now_ms) == 0) {
        cleared = a->faults.n;
        memset(&a->faults, 0, sizeof(a->faults));
        atomic_fetch_add_explicit(&a->faults_version, 1, memory_order_release);
    }
    pthread_mutex_unlock(&a->faults_lock);
    return cleared;
}

void agent_get_faults(struct agent *a, struct fault_set *out)
{
    pthread_mutex_lock(&a->faults_lock);
    *out = a->faults;
    pthread_mutex_unlock(&a->faults_lock);
}

struct policy_set *agent_policies(struct agent *a)
{
    pthread_mutex_lock(&a->policies_lock);
    struct policy_set *s = a->policies;
    if (s)
        policy_set_ref(s);
    pthread_mutex_unlock(&a->policies_lock);
    return s;
}

/* Limiter state follows a live retune: same policy, new parameters (DESIGN §4.2). */
static void retune_changed(struct agent *a, const struct policy_set *old,
                           const struct policy_set *new_set)
{
    uint64_t now = clock_mono_ms();
    for (size_t i = 0; old && a->rl_local && i < old->n; i++) {
        const struct policy *o = &old->items[i], *n = policy_set_find(new_set, o->name);
        if (!n)
            rl_local_forget(a->rl_local, o->id);
        else if (memcmp(&o->params, &n->params, sizeof(o->params)) != 0)
            rl_local_retune(a->rl_local, o->id, &o->params, &n->params, now);
    }
}

void agent_publish_policies(struct agent *a, struct policy_set *set)
{
    limits_assign_slots(&a->policy_stats, set);
    pthread_mutex_lock(&a->policies_lock);
    struct policy_set *old = a->policies;
    retune_changed(a, old, set);
    a->policies = set;
    atomic_fetch_add_explicit(&a->policies_gen, 1, memory_order_release);
    pthread_mutex_unlock(&a->policies_lock);
    policy_set_unref(old);
}

/* ---- configuration ------------------------------------------------------------------- */

int agent_resolve(const char *flag, const char *hostport, struct sockaddr_storage *out,
                  socklen_t *len, char *canon, size_t canon_cap, char err[256])
{
    char host[AGENT_ADDR_MAX], port[8];
    uint16_t p;
    if (!hostport || flags_split_hostport(hostport, host, sizeof(host), &p)) {
        snprintf(err, 256, "%s: expected HOST:PORT, got '%.100s'", flag,
                 hostport ? hostport : "(nothing)");
        return SL_EINVAL;
    }
    snprintf(port, sizeof(port), "%u", (unsigned)p);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc) {
        snprintf(err, 256, "%s: cannot resolve '%.100s': %s", flag, host, gai_strerror(rc));
        return SL_EINVAL;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    snprintf(canon, canon_cap, "%s", hostport);
    return SL_OK;
}

static int configure(struct agent *a, char err[256])
{
    const struct agent_config *c = &a->cfg;
    if (strcmp(c->role, "sidecar") != 0 && strcmp(c->role, "gateway") != 0) {
        snprintf(err, 256, "--role: expected sidecar or gateway, got '%.40s'", c->role);
        return SL_EINVAL;
    }
    a->role = strcmp(c->role, "gateway") == 0 ? AGENT_ROLE_GATEWAY : AGENT_ROLE_SIDECAR;
    char *end;
    errno = 0;
    a->trace_sample = strtod(c->trace_sample, &end);
    if (errno || *end || end == c->trace_sample || a->trace_sample < 0 || a->trace_sample > 1) {
        snprintf(err, 256, "--trace-sample: expected a number from 0 to 1, got '%.40s'",
                 c->trace_sample);
        return SL_EINVAL;
    }
    if (agent_resolve("--listen", c->listen, &a->listen_addr, &a->listen_addr_len, a->listen_str,
                      sizeof(a->listen_str), err))
        return SL_EINVAL;
    if (a->role == AGENT_ROLE_SIDECAR && (c->upstreams || c->discover)) {
        snprintf(err, 256, "%s: only with --role gateway (a sidecar has one --upstream)",
                 c->upstreams ? "--upstreams" : "--discover");
        return SL_EINVAL;
    }
    if (a->role == AGENT_ROLE_GATEWAY ? gateway_new(a, err) != SL_OK
                                      : agent_resolve("--upstream", c->upstream, &a->upstream_addr,
                                                      &a->upstream_addr_len, a->upstream_str,
                                                      sizeof(a->upstream_str), err) != SL_OK)
        return SL_EINVAL;
    if (c->id) {
        snprintf(a->id, sizeof(a->id), "%s", c->id);
    } else {
        char host[64] = "agent";
        gethostname(host, sizeof(host));
        host[sizeof(host) - 1] = '\0';
        snprintf(a->id, sizeof(a->id), "%.40s-%d", host, (int)getpid());
    }
    a->routes = c->routes ? routes_load(c->routes, err) : routes_new_learned();
    return a->routes ? SL_OK : SL_EINVAL;
}

/* ---- lifecycle ----------------------------------------------------------------------- */

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
}

static int start_workers(struct agent *a, char err[256])
{
    for (unsigned i = 0; i < a->cfg.workers; i++) {
        a->workers[i] = worker_new(a, i, err);
        if (!a->workers[i])
            return SL_EINVAL;
        a->nworkers++;
        if (i == 0) { /* port 0: every other worker binds the port the first one got */
            uint16_t port = worker_listen_port(a->workers[0]);
            set_port(&a->listen_addr, port);
            char *colon = strrchr(a->listen_str, ':');
            if (colon)
                snprintf(colon + 1, sizeof(a->listen_str) - (size_t)(colon + 1 - a->listen_str),
                         "%u", (unsigned)port);
        }
    }
    for (unsigned i = 0; i < a->nworkers; i++)
        if (worker_start(a->workers[i])) {
            snprintf(err, 256, "cannot start worker threads");
            return SL_ENOMEM;
        }
    return SL_OK;
}

/* SIGTERM: stop accepting, let in-flight requests finish (up to the drain timeout). */
static void shutdown_drain(struct agent *a)
{
    atomic_store(&a->stopping, true);
    agent_drain(a, (unsigned)a->cfg.drain_timeout_s);
    for (unsigned i = 0; i < a->nworkers; i++)
        worker_quiesce(a->workers[i]);
    uint64_t deadline = clock_mono_ms() + a->cfg.drain_timeout_s * 1000;
    struct timespec tick = {0, 10 * 1000 * 1000};
    while (agent_in_flight(a) > 0) {
        if (clock_mono_ms() >= deadline) {
            log_event(LOG_WARN, NULL, NULL, "drain timeout: closing open requests", NULL);
            break;
        }
        nanosleep(&tick, NULL);
    }
}

static void on_control_tick(struct agent *a, struct redis_pool *pool, uint64_t now_ms)
{
    policy_sync_tick(a->policy_sync, pool, now_ms);
}

/* Rate limiting: the shared local store, an empty policy set, and the sync with Redis. */
static int start_limits(struct agent *a, char err[256])
{
    a->rl_local = rl_local_new(a->cfg.ratelimit_max_keys);
    struct policy_set *empty = policy_set_empty(0);
    a->policy_sync = policy_sync_new(a, a->cfg.redis);
    if (!a->rl_local || !empty || !a->policy_sync) {
        policy_set_unref(empty);
        snprintf(err, 256, "out of memory");
        return SL_ENOMEM;
    }
    agent_publish_policies(a, empty);
    a->on_control_tick = on_control_tick;
    return SL_OK;
}

static void agent_release(struct agent *a)
{
    admin_stop(a); /* first: its handlers read the control thread's state */
    control_stop(a);
    for (unsigned i = 0; i < a->nworkers; i++)
        worker_free(a->workers[i]);
    a->nworkers = 0;
    gateway_free(a);
    policy_sync_free(a->policy_sync);
    a->policy_sync = NULL;
    policy_set_unref(a->policies);
    a->policies = NULL;
    rl_local_free(a->rl_local);
    a->rl_local = NULL;
    respcache_stop(a);
    routes_free(a->routes);
    pthread_mutex_destroy(&a->faults_lock);
}

static int agent_run(struct agent *a)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* before any thread: all inherit it */
    signal(SIGPIPE, SIG_IGN);
    char err[256];
    int rc = configure(a, err);
    if (!rc) /* before the policy subscriber starts: it calls into the cache */
        rc = respcache_start(a, err);
    if (!rc)
        rc = start_limits(a, err);
    if (!rc)
        rc = start_workers(a, err);
    if (!rc)
        rc = gateway_start(a, err);
    if (!rc)
        rc = admin_start(a, err);
    if (!rc)
        rc = control_start(a, err);
    if (rc) {
        fprintf(stderr, "sluice-agent: %s\n", err);
        agent_release(a);
        return rc == SL_EINVAL ? 2 : 1;
    }
    log_event(LOG_INFO, NULL, NULL, "serving", "id", a->id, "listen", a->listen_str, "admin",
              a->admin_str, "upstream", a->upstream_str, "version", SLUICE_VERSION, NULL);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    log_event(LOG_INFO, NULL, NULL, "stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT",
              NULL);
    shutdown_drain(a);
    agent_release(a);
    return 0;
}

int agent_main(int argc, char **argv)
{
    static struct agent agent; /* lives until exit; the admin threads point into it */
    struct agent *a = &agent;
    struct agent_config *c = &a->cfg;
    *c = (struct agent_config){
        .role = "sidecar", .service = "default", .listen = "127.0.0.1:8001",
        .admin = "127.0.0.1:8101", .trace_sample = "0.01", .log_level = "info",
        .workers = (unsigned long)(sysconf(_SC_NPROCESSORS_ONLN) > 0
                                       ? sysconf(_SC_NPROCESSORS_ONLN) : 1),
        .weight = 100, .max_conns = 10000, .max_header_bytes = 16384, .max_body_bytes = 0,
        .header_timeout_ms = 10000, .idle_timeout_ms = 60000, .connect_timeout_ms = 2000,
        .upstream_timeout_ms = 30000, .drain_timeout_s = 30, .trace_slow_ms = 500,
        .cache_policy = "s3fifo", .ratelimit_max_keys = 100000,
        .cache_max_entry_bytes = 1048576,
        .cache_redis_max_entry_bytes = 262144,
        .lb = "round_robin", .health_path = "/readyz", .health_interval_ms = 2000,
        .health_timeout_ms = 1000, .health_rise = 2, .health_fall = 3, .outlier_5xx = 5,
        .outlier_connect_failures = 3, .outlier_ejection_ms = 30000, .outlier_max_percent = 10,
        .panic_percent = 50, .retries = 2, .retry_budget_percent = 20,
    };
    const struct flag table[] = {
        {"role", FLAG_STRING, &c->role, "ROLE", "sidecar or gateway (sidecar)", 0, 0, NULL},
        {"id", FLAG_STRING, &c->id, "ID", "replica id (hostname-pid)", 0, 0, NULL},
        {"service", FLAG_STRING, &c->service, "NAME", "service name (default)", 0, 0, NULL},
        {"listen", FLAG_STRING, &c->listen, "HOST:PORT", "proxy address (127.0.0.1:8001)", 0,
         0, NULL},
        {"admin", FLAG_STRING, &c->admin, "HOST:PORT", "admin API (127.0.0.1:8101)", 0, 0,
         NULL},
        {"upstream", FLAG_STRING, &c->upstream, "HOST:PORT", "the API server to front", 0, 0,
         NULL},
        {"redis", FLAG_STRING, &c->redis, "URL", "registration and spans (none: local only)",
         0, 0, NULL},
        {"upstreams", FLAG_STRING, &c->upstreams, "HOST:PORT,...",
         "gateway: a static pool of sidecars", 0, 0, NULL},
        {"discover", FLAG_STRING, &c->discover, "SERVICE",
         "gateway: the pool is the service's sidecars in the registry (needs --redis)", 0, 0,
         NULL},
        {"lb", FLAG_STRING, &c->lb, "ALG",
         "gateway: round_robin, weighted, least_conn, p2c, hash:ip, hash:header:NAME "
         "(round_robin)", 0, 0, NULL},
        {"health-interval-ms", FLAG_UINT, &c->health_interval_ms, "MS",
         "gateway: active check interval (2000)", 10, 3600000, NULL},
        {"health-timeout-ms", FLAG_UINT, &c->health_timeout_ms, "MS",
         "gateway: a check's deadline (1000)", 10, 3600000, NULL},
        {"health-rise", FLAG_UINT, &c->health_rise, "N",
         "gateway: passed checks to be up again (2)", 1, 1000, NULL},
        {"health-fall", FLAG_UINT, &c->health_fall, "N", "gateway: failed checks to be down (3)",
         1, 1000, NULL},
        {"health-path", FLAG_STRING, &c->health_path, "PATH",
         "gateway: checked path of --upstreams (/readyz)", 0, 0, NULL},
        {"outlier-5xx", FLAG_UINT, &c->outlier_5xx, "N",
         "gateway: consecutive 5xx that eject an upstream, 0 off (5)", 0, 1000, NULL},
        {"outlier-connect-failures", FLAG_UINT, &c->outlier_connect_failures, "N",
         "gateway: consecutive connect failures that eject, 0 off (3)", 0, 1000, NULL},
        {"outlier-ejection-ms", FLAG_UINT, &c->outlier_ejection_ms, "MS",
         "gateway: base ejection time, grows with repeats (30000)", 1, 86400000, NULL},
        {"outlier-max-percent", FLAG_UINT, &c->outlier_max_percent, "P",
         "gateway: most of the pool ejected at once, at least one (10)", 0, 100, NULL},
        {"panic-percent", FLAG_UINT, &c->panic_percent, "P",
         "gateway: below this share healthy, balance over all (50)", 0, 100, NULL},
        {"retries", FLAG_UINT, &c->retries, "N",
         "gateway: retries per request on another replica (2)", 0, 10, NULL},
        {"retry-budget-percent", FLAG_UINT, &c->retry_budget_percent, "P",
         "gateway: retries in flight per request in flight, at least 3 (20)", 0, 100, NULL},
        {"workers", FLAG_UINT, &c->workers, "N", "worker threads (cores)", 1, AGENT_WORKERS_MAX,
         NULL},
        {"admin-token", FLAG_STRING, &c->admin_token, "TOKEN",
         "required for admin mutations (none: mutations refused)", 0, 0, NULL},
        {"exec", FLAG_STRING, &c->exec, "CMD", "start and supervise the API server", 0, 0, NULL},
        {"agent-check", FLAG_STRING, &c->agent_check, "HOST:PORT",
         "HAProxy agent-check port (off)", 0, 0, NULL},
        {"routes", FLAG_STRING, &c->routes, "FILE", "route templates (learned otherwise)", 0, 0,
         NULL},
        {"trace-sample", FLAG_STRING, &c->trace_sample, "P",
         "share of requests traced, 0-1 (0.01)", 0, 0, NULL},
        {"trace-slow-ms", FLAG_UINT, &c->trace_slow_ms, "MS",
         "always trace requests slower than this (500)", 1, 3600000, NULL},
        {"weight", FLAG_UINT, &c->weight, "N", "initial load-balancing weight (100)", 0, 100,
         NULL},
        {"max-conns", FLAG_UINT, &c->max_conns, "N", "client connections per worker (10000)", 1,
         1000000, NULL},
        {"max-header-bytes", FLAG_UINT, &c->max_header_bytes, "N", "request head bound (16384)",
         1024, 1048576, NULL},
        {"max-body-bytes", FLAG_UINT, &c->max_body_bytes, "N", "request body bound (0: none)", 0,
         (unsigned long)1 << 40, NULL},
        {"header-timeout-ms", FLAG_UINT, &c->header_timeout_ms, "MS",
         "request head deadline, then 408 (10000)", 1, 3600000, NULL},
        {"idle-timeout-ms", FLAG_UINT, &c->idle_timeout_ms, "MS",
         "idle keep-alive connections close (60000)", 1, 3600000, NULL},
        {"connect-timeout-ms", FLAG_UINT, &c->connect_timeout_ms, "MS",
         "upstream connect deadline, then 502 (2000)", 1, 600000, NULL},
        {"upstream-timeout-ms", FLAG_UINT, &c->upstream_timeout_ms, "MS",
         "upstream answer deadline, then 504 (30000)", 1, 3600000, NULL},
        {"drain-timeout-s", FLAG_UINT, &c->drain_timeout_s, "S",
         "on SIGTERM, wait this long for in-flight requests (30)", 0, 3600, NULL},
        {"cache-bytes", FLAG_UINT, &c->cache_bytes, "N",
         "response cache budget in bytes (0: off)", 0, (unsigned long)1 << 40, NULL},
        {"cache-policy", FLAG_STRING, &c->cache_policy, "NAME",
         "eviction: lru, lfu, ttl or s3fifo (s3fifo)", 0, 0, NULL},
        {"cache-max-entry-bytes", FLAG_UINT, &c->cache_max_entry_bytes, "N",
         "largest response cached (1048576)", 1024, (unsigned long)1 << 32, NULL},
        {"cache-rules", FLAG_STRING, &c->cache_rules, "FILE",
         "per-route cache rules: {\"rules\":[{\"path_prefix\",\"cache\",\"ttl_cap_s\","
         "\"stale_cap_s\"}]} (none)", 0, 0, NULL},
        {"cache-redis", FLAG_STRING, &c->cache_redis, "URL",
         "shared cache tier: replicas fill and read each other's entries (none)", 0, 0, NULL},
        {"cache-redis-max-entry-bytes", FLAG_UINT, &c->cache_redis_max_entry_bytes, "N",
         "largest entry written to the shared tier (262144)", 1024, 64UL << 20, NULL},
        {"log-level", FLAG_STRING, &c->log_level, "LEVEL", "debug, info, warn or error (info)", 0,
         0, NULL},
        {"access-log", FLAG_BOOL, &c->access_log, NULL, "one JSON line per request", 0, 0, NULL},
        {"ratelimit-legacy-headers", FLAG_BOOL, &a->legacy_ratelimit_headers, NULL,
         "also send X-RateLimit-Limit/Remaining/Reset", 0, 0, NULL},
        {"ratelimit-max-keys", FLAG_UINT, &c->ratelimit_max_keys, "N",
         "local limiter keys kept (100000); idle ones are evicted", 64, 100000000, NULL},
        {0},
    };
    if (flags_wants(argc, argv, "--help")) {
        flags_usage(stdout, AGENT_USAGE, table);
        return 0;
    }
    if (flags_wants(argc, argv, "--version")) {
        printf("sluice-agent %s\n", SLUICE_VERSION);
        return 0;
    }
    char err[FLAGS_ERR_MAX];
    int pos;
    enum log_level level;
    if (flags_parse(table, argc, argv, &pos, err) || flags_apply_env(table, err)) {
        fprintf(stderr, "sluice-agent: %s\n", err);
        return 2;
    }
    if (pos != argc) {
        fprintf(stderr, "sluice-agent: unexpected argument '%s' (see --help)\n", argv[pos]);
        return 2;
    }
    if (!c->upstream && strcmp(c->role, "gateway") != 0) {
        fprintf(stderr, "sluice-agent: --upstream HOST:PORT is required for a sidecar\n");
        return 2;
    }
    if (!log_level_parse(c->log_level, &level)) {
        fprintf(stderr, "sluice-agent: --log-level: expected debug, info, warn or error\n");
        return 2;
    }
    log_setup("sluice-agent", level, 2);
    pthread_mutex_init(&a->faults_lock, NULL);
    pthread_mutex_init(&a->policies_lock, NULL);
    pthread_mutex_init(&a->policy_stats.lock, NULL);
    atomic_store(&a->live_agents, 1);
    atomic_store(&a->weight, (int)c->weight);
    a->started_wall_ms = clock_wall_ms();
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread: the health checker and the
                                             * cache's revalidation use libcurl */
    int rc = agent_run(a);
    curl_global_cleanup();
    return rc;
}
