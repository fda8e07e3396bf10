#include "faults.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

static const char *const kind_names[] = {"delay", "abort", "reset", "blackhole"};
static const char *const fault_fields[] = {"kind",    "ms",          "jitter_ms", "status",
                                           "percent", "path_prefix", "ttl_s",     NULL};

const char *fault_kind_name(enum fault_kind kind)
{
    return kind_names[kind];
}

static bool kind_parse(const char *s, enum fault_kind *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, kind_names[i]) == 0) {
            *out = (enum fault_kind)i;
            return true;
        }
    }
    return false;
}

/* Validates one element; errors are named "faults[i].field". */
static void fault_parse_one(const json_t *o, size_t i, uint64_t now_ms, struct fault *f,
                            struct field_errors *fe)
{
    struct field_errors local;
    field_errors_init(&local);
    memset(f, 0, sizeof(*f));
    f->percent = 100;
    const char *kind = NULL, *prefix = NULL;
    int64_t v;
    json_reject_unknown(o, fault_fields, &local);
    bool kind_ok = json_field_string(o, "kind", true, 16, &kind, &local);
    if (kind_ok && !(kind_ok = kind_parse(kind, &f->kind)))
        field_errors_add(&local, "kind", "must be delay, abort, reset or blackhole");
    if (json_field_int(o, "ttl_s", true, 1, FAULT_TTL_MAX_S, &v, &local)) {
        f->ttl_s = (uint32_t)v;
        f->expires_ms = now_ms + (uint64_t)v * 1000;
    }
    if (json_field_int(o, "percent", false, 0, 100, &v, &local))
        f->percent = (uint32_t)v;
    if (json_field_string(o, "path_prefix", false, FAULT_PREFIX_MAX - 1, &prefix, &local))
        snprintf(f->path_prefix, sizeof(f->path_prefix), "%s", prefix);
    bool delay = kind_ok && f->kind == FAULT_DELAY, abort_ = kind_ok && f->kind == FAULT_ABORT;
    if (json_field_int(o, "ms", delay, 0, FAULT_DELAY_MAX_MS, &v, &local))
        f->ms = (uint32_t)v;
    if (json_field_int(o, "jitter_ms", false, 0, FAULT_DELAY_MAX_MS, &v, &local))
        f->jitter_ms = (uint32_t)v;
    if (json_field_int(o, "status", abort_, 400, 599, &v, &local))
        f->status = (int)v;
    /* Re-home the element's errors under their full name. */
    size_t k;
    json_t *e;
    json_array_foreach(local.list, k, e) {
        char name[64];
        snprintf(name, sizeof(name), "faults[%zu].%s", i,
                 json_string_value(json_object_get(e, "field")));
        json_array_append_new(fe->list, json_pack("{s:s, s:O}", "field", name, "message",
                                                  json_object_get(e, "message")));
    }
    field_errors_release(&local);
}

int fault_set_parse(const char *body, size_t len, uint64_t now_ms, struct fault_set *out,
                    struct field_errors *fe, char jerr[JSON_ERR_MAX])
{
    json_t *doc;
    memset(out, 0, sizeof(*out));
    if (json_parse(body, len, &doc, jerr))
        return SL_EPARSE;
    static const char *const top[] = {"faults", NULL};
    json_t *list = json_object_get(doc, "faults");
    if (!json_is_object(doc)) {
        field_errors_add(fe, "", "the body must be a JSON object");
    } else if (!json_is_array(list)) {
        json_reject_unknown(doc, top, fe);
        field_errors_add(fe, "faults", "is required and must be an array");
    } else if (json_array_size(list) > FAULTS_MAX) {
        field_errors_add(fe, "faults", "at most %d faults", FAULTS_MAX);
    } else {
        json_reject_unknown(doc, top, fe);
        size_t i;
        json_t *o;
        json_array_foreach(list, i, o) {
            if (!json_is_object(o)) {
                char name[32];
                snprintf(name, sizeof(name), "faults[%zu]", i);
                field_errors_add(fe, name, "must be an object");
                continue;
            }
            fault_parse_one(o, i, now_ms, &out->items[out->n++], fe);
        }
    }
    json_decref(doc);
    if (field_errors_any(fe)) {
        memset(out, 0, sizeof(*out));
        return SL_EINVAL;
    }
    return SL_OK;
}

static bool fault_active(const struct fault *f, uint64_t now_ms)
{
    return now_ms < f->expires_ms;
}

size_t fault_set_active(const struct fault_set *set, uint64_t now_ms)
{
    size_t n = 0;
    for (size_t i = 0; i < set->n; i++)
        n += fault_active(&set->items[i], now_ms);
    return n;
}

json_t *fault_set_to_json(const struct fault_set *set, uint64_t now_ms)
{
    json_t *list = json_array();
    for (size_t i = 0; i < set->n; i++) {
        const struct fault *f = &set->items[i];
        if (!fault_active(f, now_ms))
            continue;
        json_t *o = json_pack("{s:s, s:i, s:s, s:i, s:I}", "kind", kind_names[f->kind],
                              "percent", (int)f->percent, "path_prefix", f->path_prefix,
                              "ttl_s", (int)f->ttl_s, "expires_in_s",
                              (json_int_t)((f->expires_ms - now_ms + 999) / 1000));
        if (f->kind == FAULT_DELAY) {
            json_object_set_new(o, "ms", json_integer(f->ms));
            json_object_set_new(o, "jitter_ms", json_integer(f->jitter_ms));
        }
        if (f->kind == FAULT_ABORT)
            json_object_set_new(o, "status", json_integer(f->status));
        json_array_append_new(list, o);
    }
    return json_pack("{s:o}", "faults", list);
}

static bool fault_matches(const struct fault *f, const char *path, size_t path_len)
{
    size_t n = strlen(f->path_prefix);
    return n <= path_len && memcmp(f->path_prefix, path, n) == 0;
}

static void fault_apply(const struct fault *f, uint32_t (*rnd)(void *), void *rnd_arg,
                        struct fault_decision *out)
{
    switch (f->kind) {
    case FAULT_DELAY: {
        int64_t d = f->ms;
        if (f->jitter_ms)
            d += (int64_t)(rnd(rnd_arg) % (2 * f->jitter_ms + 1)) - f->jitter_ms;
        out->delay_ms += d > 0 ? (uint32_t)d : 0;
        break;
    }
    case FAULT_ABORT:
        if (!out->abort_status)
            out->abort_status = f->status;
        break;
    case FAULT_RESET:
        out->reset = true;
        break;
    case FAULT_BLACKHOLE:
        out->blackhole = true;
        break;
    }
}

bool fault_decide(const struct fault_set *set, const char *path, size_t path_len,
                  uint64_t now_ms, uint32_t (*rnd)(void *), void *rnd_arg,
                  struct fault_decision *out)
{
    memset(out, 0, sizeof(*out));
    bool any = false;
    for (size_t i = 0; i < set->n; i++) {
        const struct fault *f = &set->items[i];
        if (!fault_active(f, now_ms) || !fault_matches(f, path, path_len))
            continue;
        if (f->percent < 100 && rnd(rnd_arg) % 100 >= f->percent)
            continue;
        fault_apply(f, rnd, rnd_arg, out);
        any = true;
    }
    return any;
}
