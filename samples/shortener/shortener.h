/*
 * shortener — the sample API's process: configuration, the Redis pools it talks to, and
 * the HTTP server that serves the routes in handlers.c.
 *
 * Where data lives (docs/shortener.md "Redis key space"): API keys, idempotency records,
 * owner indexes and the token secret on the primary; links and their click statistics on
 * the primary, or on the shard the code hashes to (--redis-shards); link reads may go to
 * a replica (--redis-replica) and fall back to the primary when it fails.
 * One struct shortener per process; handlers reach it through req->app. After
 * shortener_init it is read-only except the token-secret cache (mutex) and counters.
 */
#ifndef SHORTENER_SHORTENER_H
#define SHORTENER_SHORTENER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store_redis.h"

#define SHORTENER_SHARDS_MAX 16
#define SHORTENER_URL_MAX 256
#define SHORTENER_JWT_KEY_BYTES 32
#define SHORTENER_JWT_LEEWAY_S 30
#define SHORTENER_IDEM_TTL_S 86400

struct shortener_config {
    const char *listen;
    const char *redis;
    const char *redis_replica;
    const char *redis_shards; /* comma-separated URLs */
    const char *public_url;
    unsigned long redirect_status; /* 301 or 302 */
    unsigned long threads;
    unsigned long max_body_bytes;
    unsigned long token_ttl_s;
    unsigned long drain_timeout_s;
    const char *log_level;
    bool access_log;
};

struct shortener {
    struct shortener_config cfg;
    char host[SHORTENER_URL_MAX];
    uint16_t port;
    char public_url[SHORTENER_URL_MAX];
    struct redis_pool *primary;
    struct redis_pool *replica; /* NULL unless --redis-replica */
    struct redis_pool *shards[SHORTENER_SHARDS_MAX];
    size_t nshards;
    struct hashring *ring; /* over shards[]; NULL unless sharded */
    pthread_mutex_t jwt_lock;
    bool jwt_loaded;
    uint8_t jwt_key[SHORTENER_JWT_KEY_BYTES];
    struct http_server *http;
};

/* Checks the configuration and builds the pools (no connection yet: Redis may be down).
 * Returns SL_OK or SL_EINVAL with a message naming the option. */
int shortener_init(struct shortener *s, const struct shortener_config *cfg, char err[256]);
/* Serves until SIGTERM/SIGINT, then drains (DESIGN §4.0). Returns 0 on a clean stop. */
int shortener_run(struct shortener *s);
void shortener_release(struct shortener *s);

/* The pool that holds a link (and its statistics): the shard for the code, else primary. */
struct redis_pool *shortener_link_pool(const struct shortener *s, const char *code);
/* The token signing key, created in Redis on first use. SL_ESTORE when Redis is down. */
int shortener_jwt_key(struct shortener *s, uint8_t out[SHORTENER_JWT_KEY_BYTES]);

/* Entry point of the program (main.c calls it): flags, sub-commands, serve. */
int shortener_main(int argc, char **argv);

#endif
