/*
 * auth — who is calling and what they may do: API keys (hashed in Redis) and HS256
 * access tokens minted by POST /v1/oauth/token.
 *
 * Scopes are a bitmask; scope strings are "links:read" and "links:write". auth_require is
 * the one gate every protected handler calls: on refusal it has already written the
 * problem response (401 with WWW-Authenticate, 403 insufficient-scope, or 503).
 */
#ifndef SHORTENER_AUTH_H
#define SHORTENER_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "apikey.h"
#include "http.h"
#include "shortener.h"

enum scope {
    SCOPE_LINKS_READ = 1u << 0,
    SCOPE_LINKS_WRITE = 1u << 1,
};
#define SCOPE_ALL (SCOPE_LINKS_READ | SCOPE_LINKS_WRITE)
#define SCOPES_TEXT_MAX 64

struct principal {
    char key_id[APIKEY_ID_MAX];
    unsigned scopes;
};

/* "links:read links:write" or "links:read,links:write" → mask. false names the first
 * unknown word in bad (at most 64 bytes). */
bool scopes_parse(const char *text, unsigned *mask, char bad[64]);
/* Space-separated, in a fixed order. */
void scopes_format(unsigned mask, char out[SCOPES_TEXT_MAX]);
const char *scope_name(unsigned one_scope);

/* Looks up an API key by its hash. SL_ENOTFOUND, SL_ESTORE. */
int auth_lookup_key(struct shortener *s, const char *key, struct principal *out);
/* Mints an access token for p (scopes already narrowed) valid ttl_s from now_s. */
int auth_mint_token(struct shortener *s, const struct principal *p, int64_t now_s,
                    int64_t ttl_s, char **token);

/* Authenticates the request and checks need (a scope mask). On false the response has
 * been written. */
bool auth_require(struct shortener *s, const struct http_req *req, struct http_resp *resp,
                  unsigned need, struct principal *out);

#endif
