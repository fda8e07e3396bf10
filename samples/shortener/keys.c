#include "keys.h"

#include <stdio.h>
#include <string.h>

#include "apikey_store.h"
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
    char key[APIKEY_LEN + 1], id[APIKEY_ID_MAX];
    int rc = apikey_store_create(pool, "app:", "scopes", scopes, o->name, key, id);
    if (rc) {
        fprintf(stderr, "sluice-shortener: %s\n", rc == SL_ECRYPTO ? "cannot draw random bytes"
                                                                  : "cannot store the key in Redis");
        return 1;
    }
    printf("%s\nid: %s\nscopes: %s\n", key, id, scopes);
    return 0;
}

static int keys_revoke(struct redis_pool *pool, const char *id)
{
    int rc = apikey_store_revoke(pool, "app:", id);
    if (rc) {
        if (rc == SL_ENOTFOUND)
            fprintf(stderr, "sluice-shortener: no key with id '%s'\n", id);
        else
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
