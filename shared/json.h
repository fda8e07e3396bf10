/*
 * json — helpers over jansson: parsing with errors a person can act on, and collecting
 * field validation errors for RFC 9457 "errors" lists.
 *
 * Ownership follows jansson: functions returning json_t * return a new reference.
 */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define JSON_ERR_MAX 200

/* Parse a whole document (no trailing garbage; any JSON value; at most 64 nesting
 * levels). On failure returns SL_EPARSE and writes "line L, column C: reason" to err. */
int json_parse(const char *data, size_t len, json_t **out, char err[JSON_ERR_MAX]);
/* Parse a file; the message starts with the path. */
int json_parse_file(const char *path, json_t **out, char err[JSON_ERR_MAX]);

/* Compact serialization (caller frees), keys in insertion order. NULL on failure. */
char *json_dump_compact(const json_t *v);

/* Field validation: an array of {"field":..., "message":...}. */
struct field_errors {
    json_t *list;
};
void field_errors_init(struct field_errors *fe);
void field_errors_release(struct field_errors *fe);
void field_errors_add(struct field_errors *fe, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool field_errors_any(const struct field_errors *fe);

/* Typed getters that report what was wrong. Each returns true when the member is present
 * and valid; when absent, returns false without an error unless required; when present
 * but wrong, adds an error ("must be a string", ...) and returns false. */
bool json_field_string(const json_t *obj, const char *key, bool required, size_t max_len,
                       const char **out, struct field_errors *fe);
bool json_field_int(const json_t *obj, const char *key, bool required, int64_t min,
                    int64_t max, int64_t *out, struct field_errors *fe);
/* Adds "is not a known field" for every member not in allowed (NULL-terminated), in
 * document order. */
void json_reject_unknown(const json_t *obj, const char *const *allowed,
                         struct field_errors *fe);

#endif
