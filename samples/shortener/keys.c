#include "keys.h"

#include <stdio.h>
#include <string.h>

#include "apikey.h"
#include "auth.h"
#include "clock.h"
#include "err.h"
#include "flags.h"
#include "store_redis.h"
#include "version.h"

#define KEYS_USAGE                                                                         \
    "usage: sluice-shortener keys create --scopes SCOPES [--name NAME] [--redis URL]\n"    \
    "       sluice-shortener keys revoke KEY_ID [--redis URL]\n"                           \
    "\nSCOPES is a comma- or space-separated list of links:read, links:write."

struct keys_opts {
    const char *redis;
    const char *scopes;
    const char *name;
};

static int keys_create(struct redis_pool *pool, const struct keys_opts *o)
{
    unsigned mask;
    char bad[64], scopes[SCOPES_TEXT_MAX];
    if (!o->scopes || !scopes_parse(o->scopes, &mask, bad) || !mask) {
        fprintf(stderr, "sluice-shortener: --scopes: %s%s%s (expected links:read, links:write)\n",
                o->scopes ? "unknown scope '" : "is required", o->scopes ? bad : "",
                o->scopes ? "'" : "");
        return 2;
    }
    scopes_format(mask, scopes);
    char key[APIKEY_LEN + 1], hash[APIKEY_HASH_HEX_LEN + 1], id[APIKEY_ID_MAX], created[32];
    if (apikey_generate(key)) {
        fprintf(stderr, "sluice-shortener: cannot draw random bytes\n");
        return 1;
    }
    apikey_hash(key, hash);
    apikey_id(hash, id);
    clock_format_iso8601(clock_wall_ms(), created);
    redisReply *r = redis_pool_command(pool, "HSET app:key:{%s} id %s scopes %s name %s "
                                             "created_at %s", hash, id, scopes,
                                       o->name ? o->name : "", created);
    redisReply *r2 = r && r->type != REDIS_REPLY_ERROR
                         ? redis_pool_command(pool, "SET app:keyid:{%s} %s", id, hash)
                         : NULL;
    int ok = r2 && r2->type != REDIS_REPLY_ERROR;
    freeReplyObject(r);
    freeReplyObject(r2);
    if (!ok) {
        fprintf(stderr, "sluice-shortener: cannot store the key in %s\n", redis_pool_url(pool));
        return 1;
    }
    printf("%s\nid: %s\nscopes: %s\n", key, id, scopes);
    return 0;
}

static int keys_revoke(struct redis_pool *pool, const char *id)
{
    redisReply *r = redis_pool_command(pool, "GET app:keyid:{%s}", id);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        fprintf(stderr, "sluice-shortener: cannot reach %s\n", redis_pool_url(pool));
        return 1;
    }
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        fprintf(stderr, "sluice-shortener: no key with id '%s'\n", id);
        return 1;
    }
    redisReply *d = redis_pool_command(pool, "DEL app:key:{%s} app:keyid:{%s}", r->str, id);
    int ok = d && d->type == REDIS_REPLY_INTEGER;
    freeReplyObject(d);
    freeReplyObject(r);
    if (!ok) {
        fprintf(stderr, "sluice-shortener: cannot reach %s\n", redis_pool_url(pool));
        return 1;
    }
    printf("revoked %s\n", id);
    return 0;
}

int keys_main(int argc, char **argv)
{
    struct keys_opts o = {.redis = "redis://127.0.0.1:6379"};
    const struct flag table[] = {
        {"redis", FLAG_STRING, &o.redis, "URL", "Redis holding the keys", 0, 0, NULL},
        {"scopes", FLAG_STRING, &o.scopes, "SCOPES", "scopes of the new key", 0, 0, ""},
        {"name", FLAG_STRING, &o.name, "NAME", "a label for the new key", 0, 0, ""},
        {0},
    };
    if (flags_wants(argc, argv, "--help") || argc < 2) {
        flags_usage(argc < 2 ? stderr : stdout, KEYS_USAGE, table);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1], *id = NULL;
    char err[FLAGS_ERR_MAX], rerr[128];
    int shift = 1, pos;
    if (argc > 2 && argv[2][0] != '-') { /* "keys revoke KEY_ID --redis URL" */
        id = argv[2];
        shift = 2;
    }
    if (flags_parse(table, argc - shift, argv + shift, &pos, err) ||
        flags_apply_env(table, err)) {
        fprintf(stderr, "sluice-shortener: %s\n", err);
        return 2;
    }
    pos += shift; /* index into argv */
    if (!id && pos < argc)
        id = argv[pos++];
    bool create = strcmp(verb, "create") == 0, revoke = strcmp(verb, "revoke") == 0;
    if ((!create && !revoke) || pos != argc || (create && id) || (revoke && !id)) {
        fprintf(stderr, "%s\n", KEYS_USAGE);
        return 2;
    }
    struct redis_pool *pool = redis_pool_new(o.redis, NULL, rerr);
    if (!pool) {
        fprintf(stderr, "sluice-shortener: --redis: %s\n", rerr);
        return 2;
    }
    int rc = create ? keys_create(pool, &o) : keys_revoke(pool, id);
    redis_pool_free(pool);
    return rc;
}
