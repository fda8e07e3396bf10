#include "idem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "encode.h"
#include "err.h"

bool idem_key_is_valid(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > IDEM_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
            return false;
    return true;
}

static int idem_read(struct shortener *s, const struct idem *ctx, enum idem_state *state,
                     json_t **stored)
{
    redisReply *r = redis_pool_command(s->primary, "GET %s", ctx->redis_key);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        return SL_ESTORE;
    }
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return SL_ENOTFOUND; /* expired between SET NX and GET: claim again */
    }
    char err[JSON_ERR_MAX];
    json_t *rec = NULL;
    int rc = json_parse(r->str, r->len, &rec, err);
    freeReplyObject(r);
    if (rc || !json_is_object(rec)) {
        json_decref(rec);
        return SL_ESTORE;
    }
    const char *hash = json_string_value(json_object_get(rec, "hash"));
    const char *st = json_string_value(json_object_get(rec, "state"));
    if (!hash || strcmp(hash, ctx->hash) != 0)
        *state = IDEM_MISMATCH;
    else if (!st || strcmp(st, "done") != 0)
        *state = IDEM_IN_FLIGHT;
    else
        *state = IDEM_REPLAY;
    if (*state == IDEM_REPLAY)
        *stored = rec;
    else
        json_decref(rec);
    return SL_OK;
}

int idem_begin(struct shortener *s, const char *owner, const char *key, const char *body,
               size_t len, struct idem *ctx, enum idem_state *state, json_t **stored)
{
    uint8_t digest[32];
    crypto_sha256(body, len, digest);
    hex_encode(digest, sizeof(digest), ctx->hash);
    snprintf(ctx->redis_key, sizeof(ctx->redis_key), "app:idem:{%s}:{%s}", owner, key);
    *stored = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        redisReply *r = redis_pool_command(s->primary,
                                           "SET %s {\"state\":\"in_flight\",\"hash\":\"%s\"} "
                                           "NX EX %d",
                                           ctx->redis_key, ctx->hash, SHORTENER_IDEM_TTL_S);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            freeReplyObject(r);
            return SL_ESTORE;
        }
        bool claimed = r->type != REDIS_REPLY_NIL;
        freeReplyObject(r);
        if (claimed) {
            *state = IDEM_PROCEED;
            return SL_OK;
        }
        int rc = idem_read(s, ctx, state, stored);
        if (rc != SL_ENOTFOUND)
            return rc;
    }
    return SL_ESTORE;
}

int idem_finish(struct shortener *s, const struct idem *ctx, int status,
                const char *content_type, const char *location, const char *body)
{
    json_t *rec = json_pack("{s:s, s:s, s:i, s:s?, s:s?, s:s}", "state", "done", "hash",
                            ctx->hash, "status", status, "content_type", content_type,
                            "location", location, "body", body);
    char *text = rec ? json_dump_compact(rec) : NULL;
    json_decref(rec);
    if (!text)
        return SL_ENOMEM;
    redisReply *r = redis_pool_command(s->primary, "SET %s %s XX EX %d", ctx->redis_key, text,
                                       SHORTENER_IDEM_TTL_S);
    free(text);
    int rc = r && r->type != REDIS_REPLY_ERROR ? SL_OK : SL_ESTORE;
    freeReplyObject(r);
    return rc;
}

void idem_abort(struct shortener *s, const struct idem *ctx)
{
    freeReplyObject(redis_pool_command(s->primary, "DEL %s", ctx->redis_key));
}
