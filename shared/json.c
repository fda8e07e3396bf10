#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define JSON_DEPTH_MAX 64

/* jansson 2.14 has no depth option: measure nesting before parsing, so a hostile body of
 * [[[[... cannot run its recursive parser deep. Strings are skipped properly. */
static bool json_depth_ok(const char *p, size_t len, size_t *bad_at)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > JSON_DEPTH_MAX) {
                *bad_at = i;
                return false;
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return true;
}

/* Line and column of data[at], counted as jansson counts them (both from 1, columns in
 * characters, not bytes), so every json_parse error reads the same way. */
static void json_position(const char *data, size_t at, int *line, int *column)
{
    *line = 1;
    *column = 0;
    for (size_t i = 0; i <= at; i++) {
        if (data[i] == '\n') {
            (*line)++;
            *column = 0;
        } else if (((unsigned char)data[i] & 0xc0) != 0x80) {
            (*column)++;
        }
    }
}

int json_parse(const char *data, size_t len, json_t **out, char err[JSON_ERR_MAX])
{
    size_t bad_at;
    *out = NULL;
    if (!json_depth_ok(data, len, &bad_at)) {
        int line, column;
        json_position(data, bad_at, &line, &column);
        snprintf(err, JSON_ERR_MAX, "line %d, column %d: nested deeper than %d levels", line,
                 column, JSON_DEPTH_MAX);
        return SL_EPARSE;
    }
    json_error_t je;
    json_t *v = json_loadb(data, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!v) {
        snprintf(err, JSON_ERR_MAX, "line %d, column %d: %s", je.line, je.column, je.text);
        return SL_EPARSE;
    }
    *out = v;
    return SL_OK;
}

int json_parse_file(const char *path, json_t **out, char err[JSON_ERR_MAX])
{
    json_error_t je;
    *out = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!*out) {
        snprintf(err, JSON_ERR_MAX, "%s: line %d, column %d: %s", path, je.line, je.column,
                 je.text);
        return SL_EPARSE;
    }
    return SL_OK;
}

char *json_dump_compact(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER |
                             JSON_REAL_PRECISION(9));
}

void field_errors_init(struct field_errors *fe)
{
    fe->list = json_array();
}

void field_errors_release(struct field_errors *fe)
{
    json_decref(fe->list);
    fe->list = NULL;
}

void field_errors_add(struct field_errors *fe, const char *field, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_array_append_new(fe->list, json_pack("{s:s, s:s}", "field", field, "message", msg));
}

bool field_errors_any(const struct field_errors *fe)
{
    return json_array_size(fe->list) > 0;
}

/* Characters (code points) of valid UTF-8, which is all jansson hands out. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

bool json_field_string(const json_t *obj, const char *key, bool required, size_t max_len,
                       const char **out, struct field_errors *fe)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            field_errors_add(fe, key, "is required");
        return false;
    }
    if (!json_is_string(v)) {
        field_errors_add(fe, key, "must be a string");
        return false;
    }
    if (utf8_chars(json_string_value(v), json_string_length(v)) > max_len) {
        field_errors_add(fe, key, "must be at most %zu characters", max_len);
        return false;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        field_errors_add(fe, key, "must not contain NUL characters");
        return false;
    }
    *out = json_string_value(v);
    return true;
}

bool json_field_int(const json_t *obj, const char *key, bool required, int64_t min,
                    int64_t max, int64_t *out, struct field_errors *fe)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            field_errors_add(fe, key, "is required");
        return false;
    }
    if (!json_is_integer(v)) {
        field_errors_add(fe, key, "must be an integer");
        return false;
    }
    json_int_t n = json_integer_value(v);
    if (n < min || n > max) {
        field_errors_add(fe, key, "must be between %lld and %lld", (long long)min,
                         (long long)max);
        return false;
    }
    *out = (int64_t)n;
    return true;
}

void json_reject_unknown(const json_t *obj, const char *const *allowed,
                         struct field_errors *fe)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, key) == 0;
        if (!known)
            field_errors_add(fe, key, "is not a known field");
    }
}
