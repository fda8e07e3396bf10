#include "scenario.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "json.h"

#define MIX_WEIGHT_MAX 1e9
#define SHARE_MIN      1e-9 /* shares are relative: "greater than 0" */

static const char *const kind_names[KIND_COUNT] = {"create", "read", "redirect", "stats", "bulk"};

/* Built in: the workshop's mix over 100 links; keys come from --keys. */
static const char default_scenario[] =
    "{\"mix\": {\"create\": 5, \"read\": 20, \"redirect\": 70, \"stats\": 4, \"bulk\": 1},"
    " \"links\": 100, \"zipf_s\": 1.1, \"bulk_size\": 10}";

const char *kind_name(enum req_kind kind)
{
    return (unsigned)kind < KIND_COUNT ? kind_names[kind] : "unknown";
}

/* The errors of fe as "field: message" lines in err. */
static int errors_out(const struct field_errors *fe, char err[SCENARIO_ERR_MAX])
{
    size_t i, used = 0;
    json_t *e;
    err[0] = '\0';
    json_array_foreach(fe->list, i, e)
    {
        int n = snprintf(err + used, SCENARIO_ERR_MAX - used, "%s%s: %s", used ? "\n" : "",
                         json_string_value(json_object_get(e, "field")),
                         json_string_value(json_object_get(e, "message")));
        if (n < 0 || (size_t)n >= SCENARIO_ERR_MAX - used)
            break;
        used += (size_t)n;
    }
    return SL_EINVAL;
}

/* A number in [min, max] at obj.key (path names it in errors); absent: false, no error. */
static bool get_number(const json_t *obj, const char *key, const char *path, double min, double max,
                       double *out, struct field_errors *fe)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return false;
    double d = json_number_value(v);
    if (!json_is_number(v) || !(d >= min && d <= max)) {
        if (min > 0)
            field_errors_add(fe, path, "must be a number greater than 0 (at most %.10g)", max);
        else
            field_errors_add(fe, path, "must be a number from %.10g to %.10g", min, max);
        return false;
    }
    *out = d;
    return true;
}

static bool get_count(const json_t *obj, const char *key, int64_t min, int64_t max, size_t *out,
                      struct field_errors *fe)
{
    int64_t n;
    if (!json_field_int(obj, key, false, min, max, &n, fe))
        return false;
    *out = (size_t)n;
    return true;
}

/* "mix": {"create": w, ...} at path into mix[]. */
static void parse_mix(const json_t *v, const char *path, double mix[KIND_COUNT],
                      struct field_errors *fe)
{
    char field[96];
    if (!json_is_object(v)) {
        field_errors_add(fe, path, "must be an object of weights: {\"redirect\": 70, ...}");
        return;
    }
    const char *name;
    json_t *w;
    json_object_foreach((json_t *)v, name, w)
    {
        unsigned k = 0;
        while (k < KIND_COUNT && strcmp(name, kind_names[k]) != 0)
            k++;
        snprintf(field, sizeof(field), "%s.%.40s", path, name);
        if (k == KIND_COUNT)
            field_errors_add(fe, field,
                             "is not a request kind (create, read, redirect, "
                             "stats, bulk)");
        else
            get_number(v, name, field, 0, MIX_WEIGHT_MAX, &mix[k], fe);
    }
    double sum = 0;
    for (unsigned k = 0; k < KIND_COUNT; k++)
        sum += mix[k];
    if (!(sum > 0))
        field_errors_add(fe, path, "needs at least one weight greater than 0");
}

static void parse_key(const json_t *v, size_t i, struct scenario *sc, struct field_errors *fe)
{
    static const char *const allowed[] = {"name", "key", "share", "mix", NULL};
    struct scenario_key *k = &sc->keys[i];
    char path[64], field[96];
    snprintf(path, sizeof(path), "keys[%zu]", i);
    snprintf(k->name, sizeof(k->name), "key%zu", i + 1);
    k->share = 1;
    if (!json_is_object(v)) {
        field_errors_add(fe, path, "must be an object: {\"name\", \"share\", \"key\"?, \"mix\"?}");
        return;
    }
    struct field_errors local;
    field_errors_init(&local);
    json_reject_unknown(v, allowed, &local);
    const char *s;
    if (json_field_string(v, "name", false, SCENARIO_NAME_MAX, &s, &local))
        snprintf(k->name, sizeof(k->name), "%s", s);
    if (json_field_string(v, "key", false, SCENARIO_SECRET_MAX, &s, &local))
        snprintf(k->secret, sizeof(k->secret), "%s", s);
    size_t n;
    json_t *e;
    json_array_foreach(local.list, n, e)
    { /* the shared getters name the bare member */
        snprintf(field, sizeof(field), "%s.%s", path,
                 json_string_value(json_object_get(e, "field")));
        field_errors_add(fe, field, "%s", json_string_value(json_object_get(e, "message")));
    }
    field_errors_release(&local);
    snprintf(field, sizeof(field), "%s.share", path);
    if (json_object_get(v, "share"))
        get_number(v, "share", field, SHARE_MIN, 1e9, &k->share, fe);
    memcpy(k->mix, sc->mix, sizeof(k->mix));
    if (json_object_get(v, "mix")) {
        snprintf(field, sizeof(field), "%s.mix", path);
        memset(k->mix, 0, sizeof(k->mix));
        parse_mix(json_object_get(v, "mix"), field, k->mix, fe);
        k->own_mix = true;
    }
    for (size_t j = 0; j < i; j++)
        if (strcmp(sc->keys[j].name, k->name) == 0)
            field_errors_add(fe, path, "name '%s' is also keys[%zu]'s", k->name, j);
}

static void parse_keys(const json_t *v, struct scenario *sc, struct field_errors *fe)
{
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > SCENARIO_KEYS_MAX) {
        field_errors_add(fe, "keys", "must be an array of 1 to %d key objects", SCENARIO_KEYS_MAX);
        return;
    }
    sc->nkeys = json_array_size(v);
    for (size_t i = 0; i < sc->nkeys; i++)
        parse_key(json_array_get(v, i), i, sc, fe);
}

static void parse_doc(const json_t *doc, struct scenario *sc, struct field_errors *fe)
{
    static const char *const allowed[] = {"description", "mix",        "links", "zipf_s",
                                          "bulk_size",   "url_prefix", "keys",  NULL};
    *sc = (struct scenario){.links = 100, .zipf_s = 1.0, .bulk_size = 10};
    snprintf(sc->url_prefix, sizeof(sc->url_prefix), "https://example.com/sluice-loadgen/");
    if (!json_is_object(doc)) {
        field_errors_add(fe, "", "the scenario must be a JSON object");
        return;
    }
    json_reject_unknown(doc, allowed, fe);
    const char *s;
    json_field_string(doc, "description", false, 4096, &s, fe);
    if (!json_object_get(doc, "mix"))
        field_errors_add(fe, "mix", "is required: {\"create\": 5, \"redirect\": 70, ...}");
    else
        parse_mix(json_object_get(doc, "mix"), "mix", sc->mix, fe);
    get_count(doc, "links", 0, SCENARIO_LINKS_MAX, &sc->links, fe);
    get_count(doc, "bulk_size", 1, SCENARIO_BULK_MAX, &sc->bulk_size, fe);
    get_number(doc, "zipf_s", "zipf_s", 0, 10, &sc->zipf_s, fe);
    if (json_field_string(doc, "url_prefix", false, SCENARIO_URL_PREFIX_MAX, &s, fe)) {
        if (strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0)
            field_errors_add(fe, "url_prefix", "must start with http:// or https://");
        else
            snprintf(sc->url_prefix, sizeof(sc->url_prefix), "%s", s);
    }
    if (json_object_get(doc, "keys")) /* after the mix: keys copy it */
        parse_keys(json_object_get(doc, "keys"), sc, fe);
}

static int from_doc(struct scenario *sc, const json_t *doc, char err[SCENARIO_ERR_MAX])
{
    struct field_errors fe;
    field_errors_init(&fe);
    parse_doc(doc, sc, &fe);
    int rc = field_errors_any(&fe) ? errors_out(&fe, err) : SL_OK;
    field_errors_release(&fe);
    return rc;
}

int scenario_parse(struct scenario *sc, const char *text, size_t len, char err[SCENARIO_ERR_MAX])
{
    json_t *doc;
    char jerr[JSON_ERR_MAX];
    if (json_parse(text, len, &doc, jerr) != SL_OK) {
        snprintf(err, SCENARIO_ERR_MAX, "%s", jerr);
        return SL_EPARSE;
    }
    int rc = from_doc(sc, doc, err);
    json_decref(doc);
    return rc;
}

int scenario_load(struct scenario *sc, const char *path, char err[SCENARIO_ERR_MAX])
{
    json_t *doc;
    char jerr[JSON_ERR_MAX];
    if (json_parse_file(path, &doc, jerr) != SL_OK) {
        snprintf(err, SCENARIO_ERR_MAX, "%s", jerr);
        return SL_EPARSE;
    }
    int rc = from_doc(sc, doc, err);
    json_decref(doc);
    return rc;
}

void scenario_default(struct scenario *sc)
{
    char err[SCENARIO_ERR_MAX];
    int rc = scenario_parse(sc, default_scenario, sizeof(default_scenario) - 1, err);
    (void)rc;
    assert(rc == SL_OK); /* a programmer error: the text above is fixed */
}

int scenario_apply_secrets(struct scenario *sc, const char *csv, char err[SCENARIO_ERR_MAX])
{
    char secrets[SCENARIO_KEYS_MAX][SCENARIO_SECRET_MAX + 1];
    size_t n = 0;
    for (const char *p = csv;; n++) {
        size_t len = strcspn(p, ",");
        if (n == SCENARIO_KEYS_MAX) {
            snprintf(err, SCENARIO_ERR_MAX, "--keys: at most %d keys", SCENARIO_KEYS_MAX);
            return SL_EINVAL;
        }
        if (len == 0 || len > SCENARIO_SECRET_MAX) {
            snprintf(err, SCENARIO_ERR_MAX, "--keys: key %zu is %s (expected KEY1,KEY2,...)", n + 1,
                     len ? "longer than 256 bytes" : "empty");
            return SL_EINVAL;
        }
        memcpy(secrets[n], p, len);
        secrets[n][len] = '\0';
        if (!p[len]) {
            n++;
            break;
        }
        p += len + 1;
    }
    if (sc->nkeys && n != sc->nkeys) {
        snprintf(err, SCENARIO_ERR_MAX, "--keys: the scenario has %zu keys (", sc->nkeys);
        for (size_t i = 0; i < sc->nkeys; i++)
            snprintf(err + strlen(err), SCENARIO_ERR_MAX - strlen(err), "%s%s", i ? ", " : "",
                     sc->keys[i].name);
        snprintf(err + strlen(err), SCENARIO_ERR_MAX - strlen(err),
                 "), got %zu: give one secret per key, in that order", n);
        return SL_EINVAL;
    }
    if (!sc->nkeys) { /* one entry per secret, equal shares */
        sc->nkeys = n;
        for (size_t i = 0; i < n; i++) {
            struct scenario_key *k = &sc->keys[i];
            *k = (struct scenario_key){.share = 1};
            snprintf(k->name, sizeof(k->name), "key%zu", i + 1);
            memcpy(k->mix, sc->mix, sizeof(k->mix));
        }
    }
    for (size_t i = 0; i < n; i++)
        memcpy(sc->keys[i].secret, secrets[i], sizeof(secrets[i]));
    return SL_OK;
}

int scenario_check(const struct scenario *sc, bool need_secrets, char err[SCENARIO_ERR_MAX])
{
    if (!sc->nkeys) {
        snprintf(err, SCENARIO_ERR_MAX,
                 "no API keys: give --keys KEY1,KEY2,... (or SLUICE_LOADGEN_KEYS), or \"keys\" "
                 "in the scenario");
        return SL_EINVAL;
    }
    bool reads = false, stats = false;
    for (size_t i = 0; i < sc->nkeys; i++) {
        const struct scenario_key *k = &sc->keys[i];
        if (need_secrets && !k->secret[0]) {
            snprintf(err, SCENARIO_ERR_MAX,
                     "keys[%zu] (%s): no secret: give it as \"key\" in the scenario or with "
                     "--keys",
                     i, k->name);
            return SL_EINVAL;
        }
        reads |= k->mix[KIND_READ] > 0 || k->mix[KIND_REDIRECT] > 0 || k->mix[KIND_STATS] > 0;
        stats |= k->mix[KIND_STATS] > 0;
    }
    if (reads && sc->links == 0) {
        snprintf(err, SCENARIO_ERR_MAX,
                 "links: is 0, but the mix reads links (read, redirect or stats): give 1 or more");
        return SL_EINVAL;
    }
    if (stats && sc->links < sc->nkeys) {
        snprintf(err, SCENARIO_ERR_MAX,
                 "links: %zu is fewer than the %zu keys, but the mix has stats, which a key "
                 "reads only for links it owns (links are shared round-robin)",
                 sc->links, sc->nkeys);
        return SL_EINVAL;
    }
    return SL_OK;
}
