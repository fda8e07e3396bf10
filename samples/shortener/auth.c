#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "crypto.h"
#include "encode.h"
#include "err.h"
#include "jwt.h"
#include "log.h"

static const struct {
    unsigned bit;
    const char *name;
} scope_table[] = {
    {SCOPE_LINKS_READ, "links:read"},
    {SCOPE_LINKS_WRITE, "links:write"},
};
#define NSCOPES (sizeof(scope_table) / sizeof(scope_table[0]))

const char *scope_name(unsigned one_scope)
{
    for (size_t i = 0; i < NSCOPES; i++)
        if (scope_table[i].bit == one_scope)
            return scope_table[i].name;
    return "?";
}

bool scopes_parse(const char *text, unsigned *mask, char bad[64])
{
    *mask = 0;
    const char *p = text;
    while (*p) {
        size_t len = strcspn(p, " ,");
        if (len) {
            bool found = false;
            for (size_t i = 0; i < NSCOPES && !found; i++) {
                if (strlen(scope_table[i].name) == len &&
                    strncmp(scope_table[i].name, p, len) == 0) {
                    *mask |= scope_table[i].bit;
                    found = true;
                }
            }
            if (!found) {
                snprintf(bad, 64, "%.*s", (int)(len < 60 ? len : 60), p);
                return false;
            }
        }
        p += len;
        p += strspn(p, " ,");
    }
    return true;
}

void scopes_format(unsigned mask, char out[SCOPES_TEXT_MAX])
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NSCOPES; i++)
        if (mask & scope_table[i].bit)
            n += (size_t)snprintf(out + n, SCOPES_TEXT_MAX - n, "%s%s", n ? " " : "",
                                  scope_table[i].name);
}

int auth_lookup_key(struct shortener *s, const char *key, struct principal *out)
{
    if (!apikey_looks_valid(key))
        return SL_ENOTFOUND;
    char hash[APIKEY_HASH_HEX_LEN + 1];
    apikey_hash(key, hash);
    redisReply *r = redis_pool_command(s->primary, "HMGET app:key:{%s} id scopes", hash);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        freeReplyObject(r);
        return SL_ESTORE;
    }
    int rc = SL_ENOTFOUND;
    if (r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
        char bad[64];
        snprintf(out->key_id, sizeof(out->key_id), "%s", r->element[0]->str);
        rc = scopes_parse(r->element[1]->str, &out->scopes, bad) ? SL_OK : SL_ENOTFOUND;
    }
    freeReplyObject(r);
    return rc;
}

int auth_mint_token(struct shortener *s, const struct principal *p, int64_t now_s,
                    int64_t ttl_s, char **token)
{
    uint8_t key[SHORTENER_JWT_KEY_BYTES], jti_raw[12];
    char scopes[SCOPES_TEXT_MAX], jti[25];
    int rc = shortener_jwt_key(s, key);
    if (rc)
        return rc;
    rc = crypto_random_bytes(jti_raw, sizeof(jti_raw));
    if (rc)
        return rc;
    hex_encode(jti_raw, sizeof(jti_raw), jti);
    scopes_format(p->scopes, scopes);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s}", "iss", "sluice-shortener",
                               "sub", p->key_id, "scope", scopes, "iat", (json_int_t)now_s,
                               "nbf", (json_int_t)now_s, "exp", (json_int_t)(now_s + ttl_s),
                               "jti", jti);
    if (!claims)
        return SL_ENOMEM;
    rc = jwt_sign_hs256(claims, key, sizeof(key), token);
    json_decref(claims);
    return rc;
}

static int auth_token(struct shortener *s, const char *token, struct principal *out,
                      int *jwt_err)
{
    uint8_t key[SHORTENER_JWT_KEY_BYTES];
    int rc = shortener_jwt_key(s, key);
    if (rc)
        return rc;
    json_t *claims = NULL;
    *jwt_err = jwt_verify_hs256(token, key, sizeof(key), clock_wall_s(),
                                SHORTENER_JWT_LEEWAY_S, &claims);
    if (*jwt_err)
        return SL_EAUTH;
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    const char *scope = json_string_value(json_object_get(claims, "scope"));
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    char bad[64];
    rc = SL_EAUTH;
    *jwt_err = SL_EJWT_MALFORMED;
    if (sub && scope && iss && strcmp(iss, "sluice-shortener") == 0 &&
        strlen(sub) < sizeof(out->key_id) && scopes_parse(scope, &out->scopes, bad)) {
        snprintf(out->key_id, sizeof(out->key_id), "%s", sub);
        rc = SL_OK;
        *jwt_err = SL_OK;
    }
    json_decref(claims);
    return rc;
}

/* The credential: "Authorization: Bearer X" or "X-API-Key: X". NULL when none. */
static const char *auth_credential(const struct http_req *req, bool *malformed)
{
    *malformed = false;
    const char *h = http_req_header(req, "Authorization");
    if (h) {
        if (strncasecmp(h, "Bearer ", 7) != 0) {
            *malformed = true;
            return NULL;
        }
        h += 7;
        while (*h == ' ')
            h++;
        return h;
    }
    return http_req_header(req, "X-API-Key");
}

static void auth_refuse(const struct http_req *req, struct http_resp *resp, int status,
                        const char *slug, const char *title, const char *detail,
                        const char *challenge)
{
    http_problem(resp, req, status, slug, title, detail, NULL);
    http_resp_header(resp, "WWW-Authenticate", "%s", challenge);
}

static bool auth_store_down(const struct http_req *req, struct http_resp *resp)
{
    http_problem(resp, req, 503, "store-unavailable", "Service unavailable",
                 "the data store is not reachable; retry shortly", NULL);
    http_resp_header(resp, "Retry-After", "1");
    return false;
}

bool auth_require(struct shortener *s, const struct http_req *req, struct http_resp *resp,
                  unsigned need, struct principal *out)
{
    bool malformed;
    const char *cred = auth_credential(req, &malformed);
    if (!cred || !*cred) {
        auth_refuse(req, resp, 401, "unauthorized", "Unauthorized",
                    malformed ? "the Authorization header must use the Bearer scheme"
                              : "send an API key or access token as 'Authorization: Bearer ...'",
                    "Bearer realm=\"sluice-shortener\"");
        return false;
    }
    int rc, jwt_err = SL_OK;
    if (strncmp(cred, APIKEY_PREFIX, strlen(APIKEY_PREFIX)) == 0)
        rc = auth_lookup_key(s, cred, out);
    else
        rc = auth_token(s, cred, out, &jwt_err);
    if (rc == SL_ESTORE)
        return auth_store_down(req, resp);
    if (rc) {
        char challenge[160];
        snprintf(challenge, sizeof(challenge),
                 "Bearer realm=\"sluice-shortener\", error=\"invalid_token\", "
                 "error_description=\"%s\"",
                 jwt_err ? err_str(jwt_err) : "unknown or revoked API key");
        auth_refuse(req, resp, 401, "invalid-credentials", "Invalid credentials",
                    jwt_err ? err_str(jwt_err) : "unknown or revoked API key", challenge);
        return false;
    }
    unsigned missing = need & ~out->scopes;
    if (missing) {
        char detail[128], challenge[160];
        const char *name = scope_name(missing & SCOPE_LINKS_READ ? SCOPE_LINKS_READ
                                                                 : SCOPE_LINKS_WRITE);
        snprintf(detail, sizeof(detail), "this credential lacks the scope '%s'", name);
        snprintf(challenge, sizeof(challenge),
                 "Bearer realm=\"sluice-shortener\", error=\"insufficient_scope\", scope=\"%s\"",
                 name);
        auth_refuse(req, resp, 403, "insufficient-scope", "Insufficient scope", detail,
                    challenge);
        return false;
    }
    return true;
}
