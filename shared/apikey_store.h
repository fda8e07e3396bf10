/*
 * apikey_store — API keys in Redis, the way the sample API and the control plane both keep
 * them (only the SHA-256 is stored, shared/apikey.h):
 *
 *   PREFIX key:{HASH}    hash: id, ATTR (scopes, role ...), name, created_at
 *   PREFIX keyid:{ID}    the hash, to revoke by id
 *   PREFIX keys          set of ids (are any keys configured?)
 *
 * PREFIX is the program's namespace ("app:", "sluice:server:"). Blocking hiredis calls
 * through a pool: for command-line tools and start-up checks.
 */
#ifndef SLUICE_APIKEY_STORE_H
#define SLUICE_APIKEY_STORE_H

#include "apikey.h"

struct redis_pool;

/* A new key with attr=value and name: key_out (shown once) and id_out. SL_OK, SL_ECRYPTO
 * (no random bytes), SL_ESTORE (Redis). */
int apikey_store_create(struct redis_pool *pool, const char *prefix, const char *attr,
                        const char *value, const char *name, char key_out[APIKEY_LEN + 1],
                        char id_out[APIKEY_ID_MAX]);
/* SL_OK, SL_ENOTFOUND (no key with that id), SL_ESTORE. */
int apikey_store_revoke(struct redis_pool *pool, const char *prefix, const char *id);

#endif
