/*
 * server — sluice-server's flags, start-up checks and lifecycle (server.h has the threads).
 */
#include "server.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "flags.h"
#include "drills.h"
#include "fleet.h"
#include "http_mhd.h"
#include "log.h"
#include "store_redis.h"
#include "version.h"

#define SERVER_USAGE                                                                       \
    "usage: sluice-server [--listen 127.0.0.1:7700] [--redis URL] [options]\n"            \
    "       sluice-server keys create|revoke ...   operator API keys (keys --help)\n"     \
    "\nThe sluice control plane: fleet aggregation, live limits, drain, SLOs, traces,\n"    \
    "queues and the audit trail, over HTTP (docs/server.md)."

static bool is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (!strcmp(host, "localhost"))
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

static int server_init(struct server *s, char err[256])
{
    char host[64];
    if (flags_split_hostport(s->cfg.listen, host, sizeof(host), &s->listen_port)) {
        snprintf(err, 256, "--listen: expected HOST:PORT, got '%.100s'", s->cfg.listen);
        return SL_EINVAL;
    }
    snprintf(s->listen_host, sizeof(s->listen_host), "%s", host);
    char rerr[128];
    struct redis_opts o = {.connect_timeout_ms = 500, .command_timeout_ms = 1000};
    if (!(s->redis = redis_pool_new(s->cfg.redis, &o, rerr))) {
        snprintf(err, 256, "--redis: %.200s", rerr);
        return SL_EINVAL;
    }
    bool loopback = is_loopback(host);
    if (s->cfg.no_auth && !loopback) {
        snprintf(err, 256, "--no-auth: only on a loopback address (--listen %.100s is not)",
                 s->cfg.listen);
        return SL_EINVAL;
    }
    if (!loopback && !auth_configured(s)) {
        snprintf(err, 256, "--listen %.100s is not loopback and no operator key or "
                           "--jwt-secret is configured: create one with 'sluice-server keys "
                           "create --role admin' first", s->cfg.listen);
        return SL_EINVAL;
    }
    if (!(s->events = events_new(64)) || !(s->fleet = fleet_new(s, err)) ||
        !(s->drills = drills_new(s, s->cfg.drills, err)))
        return s->events ? SL_EINVAL : SL_ENOMEM;
    s->started_ms = clock_mono_ms();
    return SL_OK;
}

static void server_release(struct server *s)
{
    drills_free(s->drills); /* first: a running drill reverts its faults through the agents */
    s->drills = NULL;
    api_stop(s);
    fleet_free(s->fleet);
    s->fleet = NULL;
    events_free(s->events);
    s->events = NULL;
    redis_pool_free(s->redis);
    s->redis = NULL;
}

static int server_run(struct server *s)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* before any thread: all inherit it */
    signal(SIGPIPE, SIG_IGN);
    char err[256];
    int rc = server_init(s, err);
    if (!rc)
        rc = fleet_start(s->fleet, err);
    if (!rc)
        rc = api_start(s, err);
    if (rc) {
        fprintf(stderr, "sluice-server: %s\n", err);
        server_release(s);
        return rc == SL_EINVAL ? 2 : 1;
    }
    if (s->cfg.no_auth)
        log_event(LOG_WARN, NULL, NULL, "--no-auth: every caller is an admin", NULL);
    char listen[96];
    snprintf(listen, sizeof(listen), "%s:%u", s->listen_host,
             (unsigned)http_server_port(s->http));
    log_event(LOG_INFO, NULL, NULL, "serving", "listen", listen, "redis", redis_pool_url(s->redis),
              "version", SLUICE_VERSION, NULL);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    log_event(LOG_INFO, NULL, NULL, "stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT",
              NULL);
    atomic_store(&s->stopping, true);
    server_release(s);
    return 0;
}

int server_main(int argc, char **argv)
{
    static struct server srv; /* the HTTP threads point into it until they are joined */
    struct server *s = &srv;
    struct server_config *c = &s->cfg;
    *c = (struct server_config){.listen = "127.0.0.1:7700", .redis = "redis://127.0.0.1:6379",
                                .log_level = "info", .poll_ms = 1000, .agent_timeout_ms = 800,
                                .poll_threads = 2, .threads = 8};
    const struct flag table[] = {
        {"listen", FLAG_STRING, &c->listen, "HOST:PORT", "where to serve (127.0.0.1:7700)", 0, 0,
         NULL},
        {"redis", FLAG_STRING, &c->redis, "URL", "the fleet's Redis (redis://127.0.0.1:6379)", 0,
         0, NULL},
        {"agent-token", FLAG_STRING, &c->agent_token, "TOKEN",
         "the agents' admin token, for drain, weight and faults (none: those fail)", 0, 0, NULL},
        {"jwt-secret", FLAG_STRING, &c->jwt_secret, "SECRET",
         "accept HS256 JWTs signed with it (claims sub, role)", 0, 0, NULL},
        {"slos", FLAG_STRING, &c->slos, "FILE", "SLO definitions ({\"slos\":[...]})", 0, 0, NULL},
        {"drills", FLAG_STRING, &c->drills, "DIR",
         "chaos drill files (samples/drills; none: no drills)", 0, 0, NULL},
        {"queues", FLAG_STRING, &c->queues, "NAME,...",
         "job queues to inspect (also those in sluice:queues)", 0, 0, NULL},
        {"poll-ms", FLAG_UINT, &c->poll_ms, "MS", "fleet poll interval (1000)", 100, 60000, NULL},
        {"agent-timeout-ms", FLAG_UINT, &c->agent_timeout_ms, "MS",
         "an agent's stats deadline (800)", 50, 60000, NULL},
        {"poll-threads", FLAG_UINT, &c->poll_threads, "N",
         "poller threads, each fetching and reading its share of the agents (2)", 1, 8, NULL},
        {"threads", FLAG_UINT, &c->threads, "N", "unused with a thread per connection (8)", 1,
         64, NULL},
        {"no-auth", FLAG_BOOL, &c->no_auth, NULL,
         "loopback only: no keys needed, every caller is admin", 0, 0, NULL},
        {"log-level", FLAG_STRING, &c->log_level, "LEVEL", "debug, info, warn or error (info)", 0,
         0, NULL},
        {0},
    };
    if (argc > 1 && !strcmp(argv[1], "keys"))
        return keys_main(argc - 1, argv + 1);
    if (flags_wants(argc, argv, "--help")) {
        flags_usage(stdout, SERVER_USAGE, table);
        return 0;
    }
    if (flags_wants(argc, argv, "--version")) {
        printf("sluice-server %s\n", SLUICE_VERSION);
        return 0;
    }
    char err[FLAGS_ERR_MAX];
    int pos;
    enum log_level level;
    if (flags_parse(table, argc, argv, &pos, err) || flags_apply_env(table, err)) {
        fprintf(stderr, "sluice-server: %s\n", err);
        return 2;
    }
    if (pos != argc) {
        fprintf(stderr, "sluice-server: unexpected argument '%s' (see --help)\n", argv[pos]);
        return 2;
    }
    if (!log_level_parse(c->log_level, &level)) {
        fprintf(stderr, "sluice-server: --log-level: expected debug, info, warn or error\n");
        return 2;
    }
    log_setup("sluice-server", level, 2);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = server_run(s);
    curl_global_cleanup();
    return rc;
}
