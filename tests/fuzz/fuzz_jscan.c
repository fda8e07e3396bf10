/*
 * fuzz_jscan — jscan against jansson on the same bytes. Whatever the input: no crash, no
 * read past the end, and every failure explains itself ("offset N: ..."). jscan reads the
 * whole text back into a jansson tree (every string decoded, every number read); then:
 *  - both accept: the trees are json_equal;
 *  - only jansson accepts: the text nests deeper than JSCAN_DEPTH_MAX;
 *  - only jscan accepts: never.
 * Texts with a number out of int64/double range, a string longer than the harness's
 * buffer, or a NUL byte are left out of the comparison (jansson refuses the first, this
 * harness the second, and jansson ends the text at the third where jscan refuses it). Skipping (jscan_skip) accepts whatever reading accepts.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "fuzz.h"
#include "jscan.h"

#define STR_MAX 4096

struct walk {
    struct jscan js;
    bool unsure; /* a number out of range or a string too long: no comparison */
    char buf[STR_MAX];
};

static json_t *build(struct walk *w)
{
    size_t len;
    int64_t i;
    double d;
    bool b;
    int more;
    json_t *o;
    switch (jscan_peek(&w->js)) {
    case JSCAN_OBJECT:
        if (jscan_object(&w->js) || !(o = json_object()))
            return NULL;
        while ((more = jscan_member(&w->js, w->buf, sizeof(w->buf), &len)) == 1) {
            char key[STR_MAX];
            w->unsure |= len >= sizeof(w->buf);
            memcpy(key, w->buf, strlen(w->buf) + 1);
            json_t *v = build(w);
            if (!v || json_object_set_new(o, key, v)) {
                json_decref(o);
                return NULL;
            }
        }
        if (more < 0)
            json_decref(o);
        return more < 0 ? NULL : o;
    case JSCAN_ARRAY:
        if (jscan_array(&w->js) || !(o = json_array()))
            return NULL;
        while ((more = jscan_element(&w->js)) == 1) {
            json_t *v = build(w);
            if (!v || json_array_append_new(o, v)) {
                json_decref(o);
                return NULL;
            }
        }
        if (more < 0)
            json_decref(o);
        return more < 0 ? NULL : o;
    case JSCAN_STRING:
        if (jscan_string(&w->js, w->buf, sizeof(w->buf), &len))
            return NULL;
        w->unsure |= len >= sizeof(w->buf);
        return json_string(w->buf);
    case JSCAN_NUMBER: {
        int rc = jscan_int(&w->js, &i);
        if (rc == SL_OK)
            return json_integer(i);
        if (rc == SL_EINVAL && (rc = jscan_double(&w->js, &d)) == SL_OK)
            return json_real(d);
        if (rc != SL_ERANGE)
            return NULL;
        w->unsure = true;
        return jscan_skip(&w->js) ? NULL : json_null();
    }
    case JSCAN_BOOL: return jscan_bool(&w->js, &b) ? NULL : json_boolean(b);
    case JSCAN_NULL:
        if (jscan_null(&w->js))
            return json_null();
        break;
    case JSCAN_NONE: break;
    }
    jscan_skip(&w->js); /* sets the syntax error ("nul", a stray character) */
    return NULL;
}

static void explained(const struct jscan *js)
{
    if (strncmp(jscan_error(js), "offset ", 7) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct walk w;
    memset(&w, 0, sizeof(w));
    jscan_init(&w.js, (const char *)data, size);
    json_t *mine = build(&w);
    if (mine && jscan_finish(&w.js)) {
        json_decref(mine);
        mine = NULL;
    }
    if (!mine)
        explained(&w.js);

    struct jscan skip;
    jscan_init(&skip, (const char *)data, size);
    bool skipped = jscan_skip(&skip) == SL_OK && jscan_finish(&skip) == SL_OK;
    if (!skipped)
        explained(&skip);
    if (mine && !skipped)
        abort();

    json_error_t e;
    json_t *theirs = json_loadb((const char *)data, size, JSON_DECODE_ANY, &e);
    if (!w.unsure && !memchr(data, 0, size)) {
        if (mine && theirs && !json_equal(mine, theirs))
            abort();
        if (mine && !theirs)
            abort();
        if (!mine && theirs && !strstr(jscan_error(&w.js), "nested too deeply"))
            abort();
    }
    json_decref(mine);
    json_decref(theirs);
    return 0;
}
