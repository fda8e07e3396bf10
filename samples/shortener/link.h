/*
 * link — the pure part of the shortener's domain: validating what a client sends,
 * generating codes, and building what it gets back. No I/O; time is a parameter.
 *
 * Data flow: handlers.c parses a request with link_input_parse, asks links_redis.c to
 * store it, then answers with link_repr (and its ETag). Codes are base62; an alias is a
 * code chosen by the client.
 */
#ifndef SHORTENER_LINK_H
#define SHORTENER_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

#define LINK_URL_MAX 2048
#define LINK_CODE_LEN 7                 /* generated codes */
#define LINK_ALIAS_MIN 3
#define LINK_ALIAS_MAX 32
#define LINK_CODE_MAX (LINK_ALIAS_MAX + 1) /* buffer size for any code */
#define LINK_TTL_MAX_S 31536000         /* one year */
#define LINK_GONE_WINDOW_MS (7LL * 24 * 3600 * 1000) /* answer 410 this long after expiry */
#define LINK_ETAG_MAX 40
#define LINK_MAX_AGE_S 60               /* Cache-Control of GET /v1/links/{code} */

/* A parsed POST /v1/links body. The strings point into doc, which the struct owns. */
struct link_input {
    json_t *doc;
    const char *url;
    const char *alias; /* NULL when absent */
    int64_t ttl_s;     /* 0 when absent */
};

/* Returns SL_OK; SL_EPARSE (not JSON: message in json_err → 400); or SL_EINVAL (JSON but
 * invalid: fe lists every field → 422). link_input_release is safe after any result. */
int link_input_parse(const char *body, size_t len, struct link_input *in,
                     struct field_errors *fe, char json_err[JSON_ERR_MAX]);
void link_input_release(struct link_input *in);

bool link_url_is_valid(const char *url, const char **why);
/* Aliases: 3–32 of [A-Za-z0-9_-], not reserved. */
bool link_alias_is_valid(const char *alias, const char **why);
/* Words that would shadow a route or a version prefix: v<digits>, healthz, readyz, metrics. */
bool link_code_is_reserved(const char *code);
/* Anything that could be a code or alias (used to reject path segments early). */
bool link_code_is_plausible(const char *code);

/* Draws a LINK_CODE_LEN code (never a reserved word) from rand_fn (base62_random in
 * production, a fake in tests). */
typedef int (*link_rand_fn)(char *out, size_t nchars);
int link_code_generate(link_rand_fn rand_fn, char out[LINK_CODE_MAX]);

/* The stored record: {"url","owner","created_ms","expires_ms"} (expires_ms 0 = never). */
json_t *link_record_new(const char *url, const char *owner, int64_t created_ms,
                        int64_t expires_ms);

/* The public representation (docs/shortener.md) built from a stored record. */
json_t *link_repr(const char *code, const json_t *record, const char *public_url);
/* Strong ETag over the serialized representation: "\"" + 32 hex + "\"". */
void link_etag(const char *repr_json, char out[LINK_ETAG_MAX]);
/* Seconds of freshness for GET /v1/links/{code}: min(max_age_s, seconds left). */
int64_t link_max_age_s(int64_t expires_ms, int64_t now_ms, int64_t max_age_s);
bool link_is_expired(const json_t *record, int64_t now_ms);

/* Opaque list cursor <-> creation sequence. */
void link_cursor_encode(uint64_t seq, char out[16]);
bool link_cursor_decode(const char *cursor, uint64_t *seq);

/* "2026-11-29" (UTC) for a Unix millisecond time. */
void link_day(int64_t wall_ms, char out[11]);

#endif
