/*
 * apikey — API keys for the admin and gateway APIs: generation, a cheap shape check, and
 * the hash that is the only thing ever stored.
 *
 * A key is "sk_" followed by 40 base62 characters: 40 * log2(62) ~ 238 bits from the
 * CSPRNG. The prefix makes a leaked key recognisable to secret scanners and to people.
 * The plaintext is shown to its owner once, at creation; sluice keeps only
 * apikey_hash(key), and a short public id derived from that hash for logs and URLs.
 *
 * Why plain SHA-256 and not a password hash (bcrypt, scrypt, Argon2): slow, salted
 * hashes exist to protect low-entropy secrets that an attacker can guess. A 238-bit
 * random key cannot be guessed however fast the hash is, so a stolen hash table yields
 * nothing, and a salt adds nothing because no two keys collide and there is no dictionary
 * to precompute. A fast, unsalted hash keeps verification to one lookup by hash on the
 * request path instead of a deliberately expensive computation that would also be a
 * denial-of-service lever. This reasoning holds only for generated keys: never use it
 * for anything a person chose.
 *
 * All functions are pure apart from apikey_generate (CSPRNG); buffers are caller-owned.
 */
#ifndef SLUICE_APIKEY_H
#define SLUICE_APIKEY_H

#include <stdbool.h>

#define APIKEY_PREFIX       "sk_"
#define APIKEY_PREFIX_LEN   3
#define APIKEY_RANDOM_CHARS 40
#define APIKEY_LEN          (APIKEY_PREFIX_LEN + APIKEY_RANDOM_CHARS) /* 43 */
#define APIKEY_HASH_HEX_LEN 64
#define APIKEY_ID_PREFIX    "key_"
#define APIKEY_ID_HEX_CHARS 12
#define APIKEY_ID_MAX       32 /* "key_" + 12 hex + NUL = 17, with room to grow */

/* A fresh key, NUL-terminated. 0 or SL_ECRYPTO (out is then ""). */
int apikey_generate(char out[APIKEY_LEN + 1]);
/* Prefix, exact length and alphabet only: a fast reject before any lookup, not proof
 * that the key exists. NULL is not valid. */
bool apikey_looks_valid(const char *key);
/* Lowercase hex SHA-256 of the whole key string, prefix included. */
void apikey_hash(const char *key, char out_hex[APIKEY_HASH_HEX_LEN + 1]);
/* "key_" + the first 12 hex characters of a hash from apikey_hash: a stable, public
 * handle (48 bits: unique enough to name a key, useless for finding it). */
void apikey_id(const char *hash_hex, char out[APIKEY_ID_MAX]);

#endif
