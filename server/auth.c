/*
 * auth — who may call the control plane, and the audit trail of what they changed.
 *
 * Operator API keys (`sk_...`, shared/apikey.h) are stored only as their SHA-256:
 *   sluice:server:key:{hash}   hash: id, role, name, created_at
 *   sluice:server:keyid:{id}   the hash (for revocation)
 *   sluice:server:keys         set of ids (are any keys configured?)
 * `Authorization: Bearer <key>` or `Bearer <JWT>` (HS256 with --jwt-secret; claims "sub"
 * and "role"). Roles: viewer < operator < admin (DESIGN §4.3). --no-auth (loopback only)
 * makes every caller an admin called "anonymous".
 *
 * Audit: every mutation is one entry of the stream sluice:audit (MAXLEN ~ 10000): who,
 * role, action, target, before and after (JSON), at; and one SSE event "audit".
 */
#include <stdio.h>
#include <string.h>

#include "apikey_store.h"
#include "clock.h"
#include "err.h"
#include "flags.h"
#include "http.h"
#include "jwt.h"
#include "log.h"
#include "server.h"
#include "store_redis.h"

#define AUDIT_STREAM "sluice:audit"
#define KEYS_PREFIX "sluice:server:" /* apikey_store.h layout */
#define AUDIT_MAXLEN 10000

static const char *const role_names[] = {"none", "viewer", "operator", "admin"};

const char *role_name(enum role r)
{
    return (unsigned)r < 4 ? role_names[r] : "none";
}

bool role_parse(const char *s, enum role *out)
{
    for (int i = ROLE_VIEWER; i <= ROLE_ADMIN; i++)
        if (s && !strcmp(s, role_names[i])) {
            *out = (enum role)i;
            return true;
        }
    return false;
}

bool auth_configured(struct server *s)
{
    if (s->cfg.jwt_secret && *s->cfg.jwt_secret)
        return true;
    redisReply *r = redis_pool_command(s->redis, "SCARD sluice:server:keys");
    bool any = r && r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    return any;
}

/* The key's role and id; false when unknown (or Redis cannot be asked: *down). */
static bool key_lookup(struct server *s, const char *key, struct caller *out, bool *down)
{
    char hash[APIKEY_HASH_HEX_LEN + 1];
    apikey_hash(key, hash);
    redisReply *r = redis_pool_command(s->redis, "HMGET sluice:server:key:{%s} id role", hash);
    *down = !r || r->type == REDIS_REPLY_ERROR;
    bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
              r->element[0]->type == REDIS_REPLY_STRING &&
              r->element[1]->type == REDIS_REPLY_STRING &&
              role_parse(r->element[1]->str, &out->role);
    if (ok)
        snprintf(out->who, sizeof(out->who), "%s", r->element[0]->str);
    freeReplyObject(r);
    return ok;
}

static bool jwt_lookup(struct server *s, const char *token, struct caller *out)
{
    const char *secret = s->cfg.jwt_secret;
    json_t *claims = NULL;
    if (!secret || !*secret ||
        jwt_verify_hs256(token, (const uint8_t *)secret, strlen(secret), clock_wall_s(), 60,
                         &claims) != SL_OK)
        return false;
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    bool ok = role_parse(json_string_value(json_object_get(claims, "role")), &out->role);
    snprintf(out->who, sizeof(out->who), "jwt:%s", sub ? sub : "?");
    json_decref(claims);
    return ok;
}

bool auth_require(struct server *s, struct http_req *req, struct http_resp *resp,
                  enum role need, struct caller *out)
{
    struct caller c = {ROLE_NONE, "anonymous"};
    if (s->cfg.no_auth) {
        c.role = ROLE_ADMIN;
    } else {
        const char *h = http_req_header(req, "Authorization");
        const char *cred = h && !strncasecmp(h, "Bearer ", 7) ? h + 7 : NULL;
        bool down = false;
        bool known = cred && (apikey_looks_valid(cred) ? key_lookup(s, cred, &c, &down)
                                                       : jwt_lookup(s, cred, &c));
        if (down) {
            http_problem(resp, req, 503, "store-unavailable", "Service Unavailable",
                         "the key store (Redis) cannot be reached", NULL);
            return false;
        }
        if (!known) {
            atomic_fetch_add(&s->denied, 1);
            http_problem(resp, req, 401, "unauthorized", "Unauthorized",
                         cred ? "the API key or token is not valid"
                              : "send Authorization: Bearer <API key or JWT>",
                         NULL);
            http_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"sluice\"");
            return false;
        }
    }
    if (c.role < need) {
        atomic_fetch_add(&s->denied, 1);
        char detail[128];
        snprintf(detail, sizeof(detail), "this needs the %s role; the caller is %s",
                 role_name(need), role_name(c.role));
        http_problem(resp, req, 403, "forbidden", "Forbidden", detail, NULL);
        return false;
    }
    if (out)
        *out = c;
    return true;
}

void audit_record(struct server *s, const struct caller *c, const char *action,
                  const char *target, json_t *before, json_t *after)
{
    char at[32];
    clock_format_iso8601(clock_wall_ms(), at);
    json_t *rec = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:s}", "who", c->who, "role",
                            role_name(c->role), "action", action, "target", target, "before",
                            before ? before : json_null(), "after", after ? after : json_null(),
                            "at", at);
    char *text = rec ? json_dump_compact(rec) : NULL;
    json_decref(rec);
    if (!text)
        return;
    atomic_fetch_add(&s->mutations, 1);
    redisReply *r = redis_pool_command(s->redis, "XADD %s MAXLEN ~ %d * record %s", AUDIT_STREAM,
                                       AUDIT_MAXLEN, text);
    if (!r || r->type == REDIS_REPLY_ERROR) /* the change happened: say it was not audited */
        log_event(LOG_ERROR, NULL, NULL, "audit record not stored", "record", text, NULL);
    freeReplyObject(r);
    log_event(LOG_INFO, NULL, NULL, "audit", "who", c->who, "action", action, "target", target,
              NULL);
    events_publish(s->events, "audit", text);
    free(text);
}

json_t *audit_list(struct server *s, unsigned limit, char err[128])
{
    redisReply *r = redis_pool_command(s->redis, "XREVRANGE %s + - COUNT %u", AUDIT_STREAM, limit);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        snprintf(err, 128, "%s", r && r->type == REDIS_REPLY_ERROR ? r->str : "Redis unreachable");
        freeReplyObject(r);
        return NULL;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[1]->elements != 2)
            continue;
        json_t *rec = json_loads(e->element[1]->element[1]->str, 0, NULL);
        if (rec) {
            json_object_set_new(rec, "id", json_string(e->element[0]->str));
            json_array_append_new(list, rec);
        }
    }
    freeReplyObject(r);
    return list;
}

/* ---- `sluice-server keys` ------------------------------------------------------------- */

#define KEYS_USAGE                                                                         \
    "usage: sluice-server keys create --role viewer|operator|admin [--name NAME] [--redis URL]\n" \
    "       sluice-server keys revoke KEY_ID [--redis URL]\n"                              \
    "\nThe new key is printed once, alone on the first line; only its hash is stored."

static int keys_create(struct redis_pool *pool, const char *role_s, const char *name)
{
    enum role role;
    if (!role_parse(role_s, &role)) {
        fprintf(stderr, "sluice-server: --role: expected viewer, operator or admin, got '%s'\n",
                role_s ? role_s : "(nothing)");
        return 2;
    }
    char key[APIKEY_LEN + 1], id[APIKEY_ID_MAX];
    int rc = apikey_store_create(pool, KEYS_PREFIX, "role", role_name(role), name, key, id);
    if (rc) {
        fprintf(stderr, "sluice-server: %s\n", rc == SL_ECRYPTO ? "cannot draw random bytes"
                                                               : "cannot store the key in Redis");
        return 1;
    }
    printf("%s\nid: %s\nrole: %s\n", key, id, role_name(role));
    return 0;
}

static int keys_revoke(struct redis_pool *pool, const char *id)
{
    int rc = apikey_store_revoke(pool, KEYS_PREFIX, id);
    if (rc) {
        if (rc == SL_ENOTFOUND)
            fprintf(stderr, "sluice-server: no key with id '%s'\n", id);
        else
            fprintf(stderr, "sluice-server: cannot reach %s\n", redis_pool_url(pool));
        return 1;
    }
    printf("revoked %s\n", id);
    return 0;
}

int keys_main(int argc, char **argv)
{
    const char *redis = "redis://127.0.0.1:6379", *role = NULL, *name = NULL;
    const struct flag table[] = {
        {"redis", FLAG_STRING, &redis, "URL", "Redis holding the keys", 0, 0, NULL},
        {"role", FLAG_STRING, &role, "ROLE", "viewer, operator or admin", 0, 0, ""},
        {"name", FLAG_STRING, &name, "NAME", "a label for the new key", 0, 0, ""},
        {0},
    };
    if (flags_wants(argc, argv, "--help") || argc < 2) {
        flags_usage(argc < 2 ? stderr : stdout, KEYS_USAGE, table);
        return argc < 2 ? 2 : 0;
    }
    const char *verb = argv[1], *id = NULL;
    char err[FLAGS_ERR_MAX], rerr[128];
    int shift = 1, pos;
    if (argc > 2 && argv[2][0] != '-') {
        id = argv[2];
        shift = 2;
    }
    if (flags_parse(table, argc - shift, argv + shift, &pos, err) ||
        flags_apply_env(table, err)) {
        fprintf(stderr, "sluice-server: %s\n", err);
        return 2;
    }
    pos += shift;
    bool create = !strcmp(verb, "create"), revoke = !strcmp(verb, "revoke");
    if ((!create && !revoke) || pos != argc || (create && id) || (revoke && !id)) {
        fprintf(stderr, "%s\n", KEYS_USAGE);
        return 2;
    }
    struct redis_pool *pool = redis_pool_new(redis, NULL, rerr);
    if (!pool) {
        fprintf(stderr, "sluice-server: --redis: %s\n", rerr);
        return 2;
    }
    int rc = create ? keys_create(pool, role, name) : keys_revoke(pool, id);
    redis_pool_free(pool);
    return rc;
}
