#include "shortener.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "encode.h"
#include "err.h"
#include "flags.h"
#include "handlers.h"
#include "hashring.h"
#include "http_mhd.h"
#include "keys.h"
#include "log.h"
#include "version.h"

#define SHORTENER_VNODES 160
#define SHORTENER_USAGE                                                                    \
    "usage: sluice-shortener [options]          serve the API\n"                           \
    "       sluice-shortener keys create|revoke  manage API keys (keys --help)\n"          \
    "\nThe sample URL shortener of sluice; see docs/shortener.md."

static int add_shards(struct shortener *s, const char *list, char err[256])
{
    char copy[4096], rerr[128];
    if (strlen(list) >= sizeof(copy)) {
        snprintf(err, 256, "--redis-shards: the list is too long");
        return SL_EINVAL;
    }
    snprintf(copy, sizeof(copy), "%s", list);
    s->ring = hashring_new(SHORTENER_VNODES);
    if (!s->ring)
        return SL_ENOMEM;
    char *save = NULL;
    for (char *url = strtok_r(copy, ",", &save); url; url = strtok_r(NULL, ",", &save)) {
        if (s->nshards == SHORTENER_SHARDS_MAX) {
            snprintf(err, 256, "--redis-shards: at most %d shards", SHORTENER_SHARDS_MAX);
            return SL_EINVAL;
        }
        struct redis_pool *pool = redis_pool_new(url, NULL, rerr);
        if (!pool) {
            snprintf(err, 256, "--redis-shards: '%s': %s", url, rerr);
            return SL_EINVAL;
        }
        s->shards[s->nshards] = pool;
        /* Ring nodes are named by URL without password: placement survives a reorder. */
        if (hashring_add(s->ring, redis_pool_url(pool)) != (int)s->nshards) {
            snprintf(err, 256, "--redis-shards: '%s' is listed twice", url);
            return SL_EINVAL;
        }
        s->nshards++;
    }
    if (s->nshards == 0) {
        snprintf(err, 256, "--redis-shards: expected a comma-separated list of redis:// URLs");
        return SL_EINVAL;
    }
    return SL_OK;
}

static int init_pools(struct shortener *s, const struct shortener_config *cfg, char err[256])
{
    char rerr[128];
    s->primary = redis_pool_new(cfg->redis, NULL, rerr);
    if (!s->primary) {
        snprintf(err, 256, "--redis: %s", rerr);
        return SL_EINVAL;
    }
    if (cfg->redis_replica && cfg->redis_shards) {
        snprintf(err, 256, "--redis-replica and --redis-shards cannot be combined");
        return SL_EINVAL;
    }
    if (cfg->redis_replica) {
        s->replica = redis_pool_new(cfg->redis_replica, NULL, rerr);
        if (!s->replica) {
            snprintf(err, 256, "--redis-replica: %s", rerr);
            return SL_EINVAL;
        }
    }
    if (cfg->redis_shards)
        return add_shards(s, cfg->redis_shards, err);
    return SL_OK;
}

int shortener_init(struct shortener *s, const struct shortener_config *cfg, char err[256])
{
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    pthread_mutex_init(&s->jwt_lock, NULL);
    if (flags_split_hostport(cfg->listen, s->host, sizeof(s->host), &s->port)) {
        snprintf(err, 256, "--listen: expected HOST:PORT, got '%s'", cfg->listen);
        return SL_EINVAL;
    }
    if (cfg->redirect_status != 301 && cfg->redirect_status != 302) {
        snprintf(err, 256, "--redirect: expected 301 or 302, got %lu", cfg->redirect_status);
        return SL_EINVAL;
    }
    if (cfg->public_url) {
        size_t n = strlen(cfg->public_url);
        if (n >= sizeof(s->public_url) || (strncmp(cfg->public_url, "http://", 7) != 0 &&
                                           strncmp(cfg->public_url, "https://", 8) != 0)) {
            snprintf(err, 256, "--public-url: expected an http:// or https:// URL");
            return SL_EINVAL;
        }
        snprintf(s->public_url, sizeof(s->public_url), "%.*s", (int)n, cfg->public_url);
        if (n > 0 && s->public_url[n - 1] == '/')
            s->public_url[n - 1] = '\0';
    }
    return init_pools(s, cfg, err);
}

void shortener_release(struct shortener *s)
{
    http_server_stop(s->http);
    redis_pool_free(s->primary);
    redis_pool_free(s->replica);
    for (size_t i = 0; i < s->nshards; i++)
        redis_pool_free(s->shards[i]);
    hashring_free(s->ring);
    pthread_mutex_destroy(&s->jwt_lock);
    memset(s, 0, sizeof(*s));
}

struct redis_pool *shortener_link_pool(const struct shortener *s, const char *code)
{
    if (!s->ring)
        return s->primary;
    int idx = hashring_lookup(s->ring, code, strlen(code));
    return idx >= 0 ? s->shards[idx] : s->primary;
}

/* SET NX makes the first replica's secret everyone's; then every replica reads it. */
static int jwt_key_fetch(struct shortener *s, uint8_t out[SHORTENER_JWT_KEY_BYTES])
{
    uint8_t fresh[SHORTENER_JWT_KEY_BYTES];
    char hex[2 * SHORTENER_JWT_KEY_BYTES + 1];
    if (crypto_random_bytes(fresh, sizeof(fresh)))
        return SL_ECRYPTO;
    hex_encode(fresh, sizeof(fresh), hex);
    redisReply *r = redis_pool_command(s->primary, "SET app:jwt:secret %s NX", hex);
    freeReplyObject(r);
    if (!r)
        return SL_ESTORE;
    r = redis_pool_command(s->primary, "GET app:jwt:secret");
    size_t n = 0;
    int rc = SL_ESTORE;
    if (r && r->type == REDIS_REPLY_STRING &&
        hex_decode(r->str, r->len, out, SHORTENER_JWT_KEY_BYTES, &n) == SL_OK &&
        n == SHORTENER_JWT_KEY_BYTES)
        rc = SL_OK;
    freeReplyObject(r);
    return rc;
}

int shortener_jwt_key(struct shortener *s, uint8_t out[SHORTENER_JWT_KEY_BYTES])
{
    int rc = SL_OK;
    pthread_mutex_lock(&s->jwt_lock);
    if (!s->jwt_loaded) {
        rc = jwt_key_fetch(s, s->jwt_key);
        s->jwt_loaded = rc == SL_OK;
    }
    if (rc == SL_OK)
        memcpy(out, s->jwt_key, SHORTENER_JWT_KEY_BYTES);
    pthread_mutex_unlock(&s->jwt_lock);
    return rc;
}

/* Wait for in-flight requests to finish, up to the drain timeout. */
static void drain(struct shortener *s)
{
    http_server_quiesce(s->http);
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (unsigned long waited_ms = 0; http_server_in_flight(s->http) > 0; waited_ms += 10) {
        if (waited_ms >= s->cfg.drain_timeout_s * 1000) {
            log_event(LOG_WARN, NULL, NULL, "drain timeout: closing open requests", NULL);
            break;
        }
        nanosleep(&tick, NULL);
    }
}

int shortener_run(struct shortener *s)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    /* Block before the server threads exist, so they inherit the mask and only sigwait
     * below receives the stop signals. */
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct http_server_config hc = {
        .host = s->host,
        .port = s->port,
        .threads = (unsigned)s->cfg.threads,
        .max_body_bytes = s->cfg.max_body_bytes,
        .handler = shortener_handle,
        .app = s,
        .access_log = s->cfg.access_log,
        .name = "sluice-shortener",
    };
    char err[HTTP_SERVER_ERR_MAX];
    s->http = http_server_start(&hc, err);
    if (!s->http) {
        log_event(LOG_ERROR, NULL, NULL, "cannot serve", "error", err, NULL);
        return 1;
    }
    if (!s->public_url[0])
        snprintf(s->public_url, sizeof(s->public_url), "http://%.200s:%u", s->host,
                 (unsigned)http_server_port(s->http));
    char listen[SHORTENER_URL_MAX + 8];
    snprintf(listen, sizeof(listen), "%.200s:%u", s->host, (unsigned)http_server_port(s->http));
    log_event(LOG_INFO, NULL, NULL, "serving", "listen", listen, "redis",
              redis_pool_url(s->primary), "version", SLUICE_VERSION, NULL);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    log_event(LOG_INFO, NULL, NULL, "stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT",
              NULL);
    drain(s);
    return 0;
}

int shortener_main(int argc, char **argv)
{
    struct shortener_config cfg = {
        .listen = "127.0.0.1:9001",
        .redis = "redis://127.0.0.1:6379",
        .redirect_status = 302,
        .threads = 4,
        .max_body_bytes = 65536,
        .token_ttl_s = 900,
        .drain_timeout_s = 10,
        .log_level = "info",
    };
    const struct flag table[] = {
        {"listen", FLAG_STRING, &cfg.listen, "HOST:PORT", "where to serve (127.0.0.1:9001)", 0, 0, NULL},
        {"redis", FLAG_STRING, &cfg.redis, "URL", "primary Redis (redis://127.0.0.1:6379)", 0, 0, NULL},
        {"redis-replica", FLAG_STRING, &cfg.redis_replica, "URL", "replica for link reads", 0,
         0, NULL},
        {"redis-shards", FLAG_STRING, &cfg.redis_shards, "URL,URL,...",
         "spread links over these Redis servers", 0, 0, NULL},
        {"public-url", FLAG_STRING, &cfg.public_url, "URL", "base of short_url (http://HOST:PORT)", 0, 0, NULL},
        {"redirect", FLAG_UINT, &cfg.redirect_status, "301|302", "redirect status (302)", 301, 302,
         NULL},
        {"threads", FLAG_UINT, &cfg.threads, "N", "HTTP worker threads (4)", 1, 64, NULL},
        {"max-body-bytes", FLAG_UINT, &cfg.max_body_bytes, "N", "request body limit (65536)", 1,
         16 * 1024 * 1024, NULL},
        {"token-ttl-s", FLAG_UINT, &cfg.token_ttl_s, "N", "access token lifetime in seconds (900)", 1, 86400,
         NULL},
        {"drain-timeout-s", FLAG_UINT, &cfg.drain_timeout_s, "N",
         "on SIGTERM, wait this long for in-flight requests (10)", 0, 3600, NULL},
        {"log-level", FLAG_STRING, &cfg.log_level, "LEVEL", "debug, info, warn or error (info)", 0, 0,
         NULL},
        {"access-log", FLAG_BOOL, &cfg.access_log, NULL, "log every request", 0, 0, NULL},
        {0},
    };
    if (argc > 1 && strcmp(argv[1], "keys") == 0)
        return keys_main(argc - 1, argv + 1);
    if (flags_wants(argc, argv, "--help")) {
        flags_usage(stdout, SHORTENER_USAGE, table);
        return 0;
    }
    if (flags_wants(argc, argv, "--version")) {
        printf("sluice-shortener %s\n", SLUICE_VERSION);
        return 0;
    }
    char err[256];
    int pos;
    enum log_level level;
    if (flags_parse(table, argc, argv, &pos, err) || flags_apply_env(table, err)) {
        fprintf(stderr, "sluice-shortener: %s\n", err);
        return 2;
    }
    if (pos != argc) {
        fprintf(stderr, "sluice-shortener: unexpected argument '%s' (see --help)\n", argv[pos]);
        return 2;
    }
    if (!log_level_parse(cfg.log_level, &level)) {
        fprintf(stderr, "sluice-shortener: --log-level: expected debug, info, warn or error\n");
        return 2;
    }
    log_setup("sluice-shortener", level, 2);
    struct shortener s;
    int rc = shortener_init(&s, &cfg, err);
    if (rc) {
        fprintf(stderr, "sluice-shortener: %s\n", err);
        shortener_release(&s);
        return 2;
    }
    rc = shortener_run(&s);
    shortener_release(&s);
    return rc;
}
