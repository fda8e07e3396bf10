#include "policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "hashring.h"
#include "ratelimit_redis.h"

static const char *const scope_names[] = {"sidecar", "gateway"};
static const char *const key_names[] = {"ip", "route", "header:", "global"};
static const char *const store_names[] = {"local", "redis", "redis_lease"};
static const char *const on_error_names[] = {"open", "closed", "local"};
static const char *const mode_names[] = {"enforce", "shadow"};
static const char *const policy_fields[] = {
    "name",  "scope",     "match", "key",   "algorithm",      "limit",
    "window_ms", "burst", "store", "on_store_error", "mode", NULL};

/* An error about one field of one policy: field "<prefix><field>". */
static void perr(struct field_errors *fe, const char *prefix, const char *field,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void perr(struct field_errors *fe, const char *prefix, const char *field,
                 const char *fmt, ...)
{
    char name[160], msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(name, sizeof(name), "%s%s", prefix, field);
    field_errors_add(fe, name, "%s", msg);
}

const char *policy_scope_name(enum policy_scope s)
{
    return scope_names[s];
}

const char *policy_store_name(enum policy_store s)
{
    return store_names[s];
}

/* An optional string member that must be one of names (n of them). */
static bool one_of(const json_t *doc, const char *field, const char *const *names, int n,
                   int *out, struct field_errors *fe, const char *prefix)
{
    const json_t *v = json_object_get(doc, field);
    if (!v)
        return true; /* default kept */
    for (int i = 0; json_is_string(v) && i < n; i++) {
        if (strcmp(json_string_value(v), names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    char list[160] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                 names[i]);
    perr(fe, prefix, field, "must be one of: %s", list);
    return false;
}

/* The field an rl_params_check message is about (it names it first, or the limit). */
static const char *params_field(const char *why)
{
    static const char *const fields[] = {"window_ms", "burst", "algorithm", "limit"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strncmp(why, fields[i], strlen(fields[i])) == 0)
            return fields[i];
    return "limit"; /* "sliding_log allows at most ...": a bound on the limit */
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= POLICY_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static void parse_key(const json_t *doc, struct policy *p, struct field_errors *fe,
                      const char *prefix)
{
    const char *key = json_string_value(json_object_get(doc, "key"));
    if (!json_object_get(doc, "key")) {
        p->key = POLICY_KEY_IP;
    } else if (!key) {
        perr(fe, prefix, "key", "must be ip, route, header:NAME or global");
    } else if (strncmp(key, "header:", 7) == 0 && key[7] && strlen(key + 7) < POLICY_HEADER_MAX &&
               !strpbrk(key + 7, " :\t\r\n")) {
        p->key = POLICY_KEY_HEADER;
        snprintf(p->header, sizeof(p->header), "%s", key + 7);
    } else if (strcmp(key, "ip") == 0 || strcmp(key, "route") == 0 ||
               strcmp(key, "global") == 0) {
        p->key = strcmp(key, "ip") == 0      ? POLICY_KEY_IP
                 : strcmp(key, "route") == 0 ? POLICY_KEY_ROUTE
                                             : POLICY_KEY_GLOBAL;
    } else {
        perr(fe, prefix, "key", "must be ip, route, header:NAME or global, not '%.40s'", key);
    }
}

static void parse_match(const json_t *doc, struct policy *p, struct field_errors *fe,
                        const char *prefix)
{
    const json_t *m = json_object_get(doc, "match");
    if (!m)
        return;
    static const char *const fields[] = {"methods", "path_prefix", NULL};
    const json_t *methods = json_object_get(m, "methods");
    const char *pp = json_string_value(json_object_get(m, "path_prefix"));
    struct field_errors local;
    field_errors_init(&local);
    if (json_is_object(m))
        json_reject_unknown(m, fields, &local);
    if (!json_is_object(m) || field_errors_any(&local))
        perr(fe, prefix, "match", "must be {\"methods\": [...], \"path_prefix\": \"/...\"}");
    field_errors_release(&local);
    if (json_object_get(m, "path_prefix") &&
        (!pp || pp[0] != '/' || strlen(pp) >= POLICY_PREFIX_MAX))
        perr(fe, prefix, "match.path_prefix", "must be a path starting with '/'");
    else if (pp)
        snprintf(p->path_prefix, sizeof(p->path_prefix), "%s", pp);
    size_t i;
    const json_t *v;
    if (methods && (!json_is_array(methods) || json_array_size(methods) > POLICY_METHODS_MAX)) {
        perr(fe, prefix, "match.methods", "must be a list of up to %d methods",
             POLICY_METHODS_MAX);
        return;
    }
    json_array_foreach(methods, i, v) {
        const char *s = json_string_value(v);
        if (!s || !*s || strlen(s) >= 16 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(s)) {
            char f[48];
            snprintf(f, sizeof(f), "match.methods[%u]", (unsigned)i);
            perr(fe, prefix, f, "must be an upper-case method name");
            continue;
        }
        snprintf(p->methods[p->nmethods++], 16, "%s", s);
    }
}

static void parse_numbers(const json_t *doc, struct policy *p, struct field_errors *fe,
                          const char *prefix)
{
    static const struct {
        const char *field;
        bool required;
        int64_t min, max;
    } nums[] = {{"limit", true, 1, 1000000000}, {"window_ms", true, 1, RL_WINDOW_MAX_MS},
                {"burst", false, 0, 1000000000}};
    uint64_t *dst[] = {&p->params.limit, &p->params.window_ms, &p->params.burst};
    for (size_t k = 0; k < 3; k++) {
        struct field_errors local;
        field_errors_init(&local);
        int64_t v;
        if (json_field_int(doc, nums[k].field, nums[k].required, nums[k].min, nums[k].max, &v,
                           &local))
            *dst[k] = (uint64_t)v;
        size_t i;
        json_t *e;
        json_array_foreach(local.list, i, e)
            perr(fe, prefix, nums[k].field, "%s", json_string_value(json_object_get(e, "message")));
        field_errors_release(&local);
    }
}

int policy_parse(const json_t *doc, struct policy *p, struct field_errors *fe,
                 const char *prefix)
{
    size_t before = json_array_size(fe->list);
    memset(p, 0, sizeof(*p));
    if (!json_is_object(doc)) {
        perr(fe, prefix, "", "a policy must be a JSON object");
        return SL_EINVAL;
    }
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (!name || !name_ok(name))
        perr(fe, prefix, "name", "must be 1-63 of A-Z a-z 0-9 - _ .");
    else
        snprintf(p->name, sizeof(p->name), "%s", name);
    p->id = (uint32_t)hash64(p->name, strlen(p->name));
    struct field_errors unknown;
    field_errors_init(&unknown);
    json_reject_unknown(doc, policy_fields, &unknown);
    size_t i;
    json_t *e;
    json_array_foreach(unknown.list, i, e)
        perr(fe, prefix, json_string_value(json_object_get(e, "field")), "is not a known field");
    field_errors_release(&unknown);
    int v = 0;
    if (one_of(doc, "scope", scope_names, 2, &v, fe, prefix))
        p->scope = (enum policy_scope)v;
    v = 0;
    if (one_of(doc, "store", store_names, 3, &v, fe, prefix))
        p->store = (enum policy_store)v;
    v = 0;
    if (one_of(doc, "on_store_error", on_error_names, 3, &v, fe, prefix))
        p->on_store_error = (enum policy_on_error)v;
    v = 0;
    if (one_of(doc, "mode", mode_names, 2, &v, fe, prefix))
        p->mode = (enum policy_mode)v;
    const char *alg = json_string_value(json_object_get(doc, "algorithm"));
    if (!alg || !rl_algorithm_parse(alg, &p->params.alg))
        perr(fe, prefix, "algorithm", "must be one of: fixed_window, sliding_log, "
             "sliding_window, token_bucket, leaky_bucket, gcra");
    parse_key(doc, p, fe, prefix);
    parse_match(doc, p, fe, prefix);
    parse_numbers(doc, p, fe, prefix);
    const char *why;
    if (json_array_size(fe->list) == before && rl_params_check(&p->params, &why))
        perr(fe, prefix, params_field(why), "%s", why);
    else if (json_array_size(fe->list) == before && p->store != POLICY_STORE_LOCAL &&
             !rl_redis_params_exact(&p->params))
        perr(fe, prefix, "limit", "× window_ms is too large for exact arithmetic in Redis");
    return json_array_size(fe->list) == before ? SL_OK : SL_EINVAL;
}

struct policy_set *policy_set_empty(uint64_t version)
{
    struct policy_set *s = calloc(1, sizeof(*s));
    if (s) {
        atomic_store(&s->refs, 1);
        s->version = version;
    }
    return s;
}

struct policy_set *policy_set_parse(const json_t *docs, uint64_t version,
                                    struct field_errors *fe)
{
    const json_t *list = json_is_object(docs) ? json_object_get(docs, "policies") : docs;
    if (!json_is_array(list) || json_array_size(list) > POLICIES_MAX) {
        field_errors_add(fe, "policies", "must be a list of at most %d policies", POLICIES_MAX);
        return NULL;
    }
    struct policy_set *s = policy_set_empty(version);
    if (!s)
        return NULL;
    size_t i;
    const json_t *doc;
    json_array_foreach(list, i, doc) {
        const char *name = json_string_value(json_object_get(doc, "name"));
        char prefix[POLICY_NAME_MAX + 16];
        if (name && strlen(name) < POLICY_NAME_MAX)
            snprintf(prefix, sizeof(prefix), "%s.", name);
        else
            snprintf(prefix, sizeof(prefix), "policies[%zu].", i);
        if (policy_parse(doc, &s->items[s->n], fe, prefix) == SL_OK) {
            if (policy_set_find(s, s->items[s->n].name))
                perr(fe, prefix, "name", "is used by another policy of the set");
            else
                s->n++;
        }
    }
    if (field_errors_any(fe)) {
        policy_set_unref(s);
        return NULL;
    }
    return s;
}

void policy_set_ref(struct policy_set *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void policy_set_unref(struct policy_set *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        free(s);
}

const struct policy *policy_set_find(const struct policy_set *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->items[i].name, name) == 0)
            return &s->items[i];
    return NULL;
}

json_t *policy_to_json(const struct policy *p)
{
    json_t *methods = json_array();
    for (unsigned i = 0; i < p->nmethods; i++)
        json_array_append_new(methods, json_string(p->methods[i]));
    char key[POLICY_HEADER_MAX + 8];
    snprintf(key, sizeof(key), "%s%s", key_names[p->key],
             p->key == POLICY_KEY_HEADER ? p->header : "");
    json_t *o = json_pack("{s:s, s:s, s:{s:o, s:s}, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s}",
                          "name", p->name, "scope", scope_names[p->scope], "match", "methods",
                          methods, "path_prefix", p->path_prefix[0] ? p->path_prefix : "/",
                          "key", key, "algorithm", rl_algorithm_name(p->params.alg), "limit",
                          (json_int_t)p->params.limit, "window_ms",
                          (json_int_t)p->params.window_ms, "burst",
                          (json_int_t)p->params.burst, "store", store_names[p->store],
                          "on_store_error", on_error_names[p->on_store_error], "mode",
                          mode_names[p->mode]);
    return o;
}

json_t *policy_set_to_json(const struct policy_set *s)
{
    json_t *list = json_array();
    for (size_t i = 0; s && i < s->n; i++)
        json_array_append_new(list, policy_to_json(&s->items[i]));
    return list;
}

bool policy_matches(const struct policy *p, enum policy_scope scope, const char *method,
                    const char *path)
{
    if (p->scope != scope)
        return false;
    if (p->path_prefix[0] && strncmp(path, p->path_prefix, strlen(p->path_prefix)) != 0)
        return false;
    if (p->nmethods == 0)
        return true;
    for (unsigned i = 0; i < p->nmethods; i++)
        if (strcmp(p->methods[i], method) == 0)
            return true;
    return false;
}
