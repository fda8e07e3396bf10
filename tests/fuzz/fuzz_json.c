/*
 * fuzz_json — json_parse on arbitrary bytes; when the result is an object, the field
 * getters and json_reject_unknown run over it the way a request handler would (including
 * on the keys the input itself chose), and the error list is serialized.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "json.h"

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void fuzz_fields(const json_t *obj)
{
    static const char *const allowed[] = {"url", "alias", "ttl_s", "", NULL};
    struct field_errors fe;
    const char *s;
    int64_t n;

    field_errors_init(&fe);
    json_field_string(obj, "url", true, 2048, &s, &fe);
    json_field_string(obj, "alias", false, 4, &s, &fe);
    json_field_int(obj, "ttl_s", false, 1, 86400, &n, &fe);
    json_field_int(obj, "big", true, INT64_MIN, INT64_MAX, &n, &fe);
    /* Every member through both getters, with tight and loose bounds. */
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (json_field_string(obj, key, true, 8, &s, &fe) && utf8_chars(s) > 8)
            abort(); /* the bound counts characters (code points), not bytes */
        if (json_field_int(obj, key, true, -5, 5, &n, &fe) && (n < -5 || n > 5))
            abort();
    }
    json_reject_unknown(obj, allowed, &fe);
    char *dump = json_dump_compact(fe.list);
    free(dump);
    field_errors_release(&fe);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v;
    char err[JSON_ERR_MAX];
    int rc = json_parse((const char *)data, size, &v, err);
    if (rc != SL_OK) {
        /* Every failure explains itself the same way. */
        if (rc != SL_EPARSE || strncmp(err, "line ", 5) != 0)
            abort();
        return 0;
    }
    if (json_is_object(v))
        fuzz_fields(v);
    json_decref(v);
    return 0;
}
