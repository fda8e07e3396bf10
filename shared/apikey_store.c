#include "apikey_store.h"

#include "clock.h"
#include "err.h"
#include "store_redis.h"

/* Every reply is checked and freed here: true when none is missing or an error. */
static bool all_ok(redisReply **r, size_t n)
{
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        ok = ok && r[i] && r[i]->type != REDIS_REPLY_ERROR;
        freeReplyObject(r[i]);
    }
    return ok;
}

int apikey_store_create(struct redis_pool *pool, const char *prefix, const char *attr,
                        const char *value, const char *name, char key_out[APIKEY_LEN + 1],
                        char id_out[APIKEY_ID_MAX])
{
    char hash[APIKEY_HASH_HEX_LEN + 1], created[32];
    if (apikey_generate(key_out))
        return SL_ECRYPTO;
    apikey_hash(key_out, hash);
    apikey_id(hash, id_out);
    clock_format_iso8601(clock_wall_ms(), created);
    redisReply *r[3] = {0};
    r[0] = redis_pool_command(pool, "HSET %skey:{%s} id %s %s %s name %s created_at %s", prefix,
                              hash, id_out, attr, value, name ? name : "", created);
    if (r[0] && r[0]->type != REDIS_REPLY_ERROR)
        r[1] = redis_pool_command(pool, "SET %skeyid:{%s} %s", prefix, id_out, hash);
    if (r[1] && r[1]->type != REDIS_REPLY_ERROR)
        r[2] = redis_pool_command(pool, "SADD %skeys %s", prefix, id_out);
    return all_ok(r, 3) ? SL_OK : SL_ESTORE;
}

int apikey_store_revoke(struct redis_pool *pool, const char *prefix, const char *id)
{
    redisReply *h = redis_pool_command(pool, "GET %skeyid:{%s}", prefix, id);
    if (!h || h->type == REDIS_REPLY_ERROR) {
        freeReplyObject(h);
        return SL_ESTORE;
    }
    if (h->type != REDIS_REPLY_STRING) {
        freeReplyObject(h);
        return SL_ENOTFOUND;
    }
    redisReply *r[2];
    r[0] = redis_pool_command(pool, "DEL %skey:{%s} %skeyid:{%s}", prefix, h->str, prefix, id);
    r[1] = redis_pool_command(pool, "SREM %skeys %s", prefix, id);
    freeReplyObject(h);
    return all_ok(r, 2) ? SL_OK : SL_ESTORE;
}
