#include "slo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define PPB              1000000000LL /* the error budget is kept in parts per billion */
#define ENCODING_VERSION 1
#define VARINT_MAX_BYTES 10

/* --- definition ---------------------------------------------------------------------- */

static const char *const kind_names[] = {"availability", "latency"};
static const char *const def_fields[] = {"name",         "service",   "route",  "kind",
                                         "threshold_ms", "objective", "window", "window_s",
                                         "description",  NULL};

const char *slo_kind_name(enum slo_kind kind)
{
    return kind_names[kind];
}

/* The error budget of an objective in parts per billion; 0 if the objective is not
 * strictly between 0 and 1 or leaves less than one part per billion. */
static uint32_t budget_ppb(double objective)
{
    if (!(objective > 0 && objective < 1))
        return 0;
    return (uint32_t)(PPB - llround(objective * (double)PPB)); /* round(..) in [0, PPB] */
}

/* 1-63 of a-z 0-9 . _ - (and A-Z when upper). */
static bool ident_ok(const char *s, bool upper)
{
    size_t n = strlen(s);
    if (n == 0 || n >= SLO_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '-' || (upper && c >= 'A' && c <= 'Z');
        if (!ok)
            return false;
    }
    return true;
}

/* "", "other" or a template starting with '/' of printable ASCII without spaces. */
static bool route_ok(const char *s)
{
    if (s[0] == '\0' || strcmp(s, "other") == 0)
        return true;
    if (s[0] != '/' || strlen(s) >= SLO_ROUTE_MAX)
        return false;
    for (const char *c = s; *c; c++)
        if (*c < 0x21 || *c > 0x7e)
            return false;
    return true;
}

static void parse_strings(const json_t *obj, struct slo_def *out, struct field_errors *fe)
{
    const char *v;
    if (json_field_string(obj, "name", true, SLO_NAME_MAX - 1, &v, fe)) {
        if (ident_ok(v, false))
            snprintf(out->name, sizeof(out->name), "%s", v);
        else
            field_errors_add(fe, "name", "must be 1-63 of a-z 0-9 . _ -");
    }
    if (json_field_string(obj, "service", true, SLO_SERVICE_MAX - 1, &v, fe)) {
        if (ident_ok(v, true))
            snprintf(out->service, sizeof(out->service), "%s", v);
        else
            field_errors_add(fe, "service", "must be 1-63 of A-Z a-z 0-9 . _ -");
    }
    if (json_field_string(obj, "route", false, SLO_ROUTE_MAX - 1, &v, fe)) {
        if (route_ok(v))
            snprintf(out->route, sizeof(out->route), "%s", v);
        else
            field_errors_add(fe, "route",
                             "must be \"\", \"other\" or a route template "
                             "starting with '/' without spaces");
    }
    if (json_field_string(obj, "description", false, SLO_DESC_MAX_CHARS, &v, fe))
        snprintf(out->description, sizeof(out->description), "%s", v);
}

static bool present(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v);
}

static void parse_kind(const json_t *obj, struct slo_def *out, struct field_errors *fe)
{
    const char *k;
    int kind = -1;
    if (json_field_string(obj, "kind", true, 32, &k, fe)) {
        for (int i = 0; i < 2; i++)
            if (strcmp(k, kind_names[i]) == 0)
                kind = i;
        if (kind < 0)
            field_errors_add(fe, "kind", "must be one of: availability, latency");
    }
    bool has_threshold = present(obj, "threshold_ms");
    if (kind == SLO_AVAILABILITY && has_threshold) {
        field_errors_add(fe, "threshold_ms", "applies only to kind latency");
    } else if (kind == SLO_LATENCY && !has_threshold) {
        field_errors_add(fe, "threshold_ms", "is required for kind latency");
    } else {
        int64_t t = 0;
        if (json_field_int(obj, "threshold_ms", false, 1, SLO_THRESHOLD_MAX_MS, &t, fe))
            out->threshold_ms = (uint32_t)t;
    }
    if (kind >= 0)
        out->kind = (enum slo_kind)kind;
}

static void parse_objective(const json_t *obj, struct slo_def *out, struct field_errors *fe)
{
    const json_t *v = json_object_get(obj, "objective");
    double o = json_number_value(v);
    if (!present(obj, "objective"))
        field_errors_add(fe, "objective", "is required");
    else if (!json_is_number(v) || !(o > 0 && o < 1))
        field_errors_add(fe, "objective", "must be a number between 0 and 1, exclusive");
    else if (budget_ppb(o) == 0)
        field_errors_add(fe, "objective",
                         "must be at most 0.999999999 (the error budget is "
                         "kept in parts per billion)");
    else
        out->objective = o;
}

/* "N" + s|m|h|d, N of 1-9 digits. */
static bool parse_duration(const char *s, uint64_t *out_s)
{
    static const struct {
        char unit;
        uint64_t s;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
    size_t digits = strspn(s, "0123456789");
    if (digits == 0 || digits > 9 || s[digits] == '\0' || s[digits + 1] != '\0')
        return false;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (s[digits] == units[i].unit) {
            *out_s = strtoull(s, NULL, 10) * units[i].s;
            return true;
        }
    }
    return false;
}

/* The window in the largest unit that divides it: "30d", "12h", "90m", "3610s". */
static void format_window(uint32_t window_s, char buf[16])
{
    if (window_s % 86400 == 0)
        snprintf(buf, 16, "%ud", window_s / 86400);
    else if (window_s % 3600 == 0)
        snprintf(buf, 16, "%uh", window_s / 3600);
    else if (window_s % 60 == 0)
        snprintf(buf, 16, "%um", window_s / 60);
    else
        snprintf(buf, 16, "%us", window_s);
}

/* The window from "window" (a duration string); 0 if absent or wrong (reported). */
static uint64_t window_from_string(const json_t *obj, struct field_errors *fe)
{
    uint64_t w = 0;
    if (!present(obj, "window"))
        return 0;
    const char *s = json_string_value(json_object_get(obj, "window"));
    if (!s || !parse_duration(s, &w))
        field_errors_add(fe, "window", "must be a duration like 30d, 12h, 90m or 3600s");
    else if (w < SLO_WINDOW_MIN_S || w > SLO_WINDOW_MAX_S)
        field_errors_add(fe, "window", "must be between 1h and 31d");
    else if (w % SLO_BUCKET_S != 0)
        field_errors_add(fe, "window", "must be a whole number of %d-second buckets", SLO_BUCKET_S);
    else
        return w;
    return 0;
}

static void parse_window(const json_t *obj, struct slo_def *out, struct field_errors *fe)
{
    uint64_t from_string = window_from_string(obj, fe);
    int64_t from_number = 0;
    if (json_field_int(obj, "window_s", false, SLO_WINDOW_MIN_S, SLO_WINDOW_MAX_S, &from_number,
                       fe) &&
        from_number % SLO_BUCKET_S != 0) {
        field_errors_add(fe, "window_s", "must be a multiple of %d", SLO_BUCKET_S);
        from_number = 0;
    }
    if (from_string && from_number && from_string != (uint64_t)from_number)
        field_errors_add(fe, "window_s", "must equal window (%llu seconds)",
                         (unsigned long long)from_string);
    out->window_s = from_string   ? (uint32_t)from_string
                    : from_number ? (uint32_t)from_number
                                  : SLO_WINDOW_DEFAULT_S;
}

/* Copy every error of from into fe, the field named "<prefix><field>". */
static void move_errors(struct field_errors *fe, const struct field_errors *from,
                        const char *prefix)
{
    for (size_t i = 0; i < json_array_size(from->list); i++) {
        const json_t *e = json_array_get(from->list, i);
        char field[160];
        snprintf(field, sizeof(field), "%s%s", prefix ? prefix : "",
                 json_string_value(json_object_get(e, "field")));
        field_errors_add(fe, field, "%s", json_string_value(json_object_get(e, "message")));
    }
}

int slo_def_from_json(const json_t *obj, struct slo_def *out, struct field_errors *fe,
                      const char *prefix)
{
    struct field_errors local;
    field_errors_init(&local);
    memset(out, 0, sizeof(*out));
    if (!json_is_object(obj)) {
        field_errors_add(&local, "", "an SLO must be a JSON object");
    } else {
        json_reject_unknown(obj, def_fields, &local);
        parse_strings(obj, out, &local);
        parse_kind(obj, out, &local);
        parse_objective(obj, out, &local);
        parse_window(obj, out, &local);
    }
    int rc = field_errors_any(&local) ? SL_EINVAL : SL_OK;
    move_errors(fe, &local, prefix);
    field_errors_release(&local);
    return rc;
}

json_t *slo_def_to_json(const struct slo_def *def)
{
    char window[16];
    format_window(def->window_s, window);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "name", def->name, "service", def->service,
                          "route", def->route, "kind", slo_kind_name(def->kind));
    if (!o)
        return NULL;
    int rc = 0;
    if (def->kind == SLO_LATENCY)
        rc |= json_object_set_new(o, "threshold_ms", json_integer(def->threshold_ms));
    rc |= json_object_set_new(o, "objective", json_real(def->objective));
    rc |= json_object_set_new(o, "window", json_string(window));
    rc |= json_object_set_new(o, "window_s", json_integer(def->window_s));
    rc |= json_object_set_new(o, "description", json_string(def->description));
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* --- series -------------------------------------------------------------------------- */

struct slo_bucket {
    uint64_t good, total;
};

struct slo_series {
    uint32_t window_s;
    uint32_t nbuckets;
    bool has_head;               /* false until the first add */
    uint64_t head;               /* the newest bucket index (now_s / SLO_BUCKET_S) */
    struct slo_bucket buckets[]; /* bucket b in slot b % nbuckets */
};

struct slo_series *slo_series_new(uint32_t window_s)
{
    if (window_s < SLO_WINDOW_MIN_S || window_s > SLO_WINDOW_MAX_S || window_s % SLO_BUCKET_S != 0)
        return NULL;
    uint32_t n = window_s / SLO_BUCKET_S;
    struct slo_series *s = calloc(1, sizeof(*s) + (size_t)n * sizeof(s->buckets[0]));
    if (!s)
        return NULL;
    s->window_s = window_s;
    s->nbuckets = n;
    return s;
}

void slo_series_free(struct slo_series *s)
{
    free(s);
}

uint32_t slo_series_window_s(const struct slo_series *s)
{
    return s->window_s;
}

size_t slo_series_bytes(const struct slo_series *s)
{
    return sizeof(*s) + (size_t)s->nbuckets * sizeof(s->buckets[0]);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* The oldest bucket index a series with newest bucket b may hold. */
static uint64_t oldest_of(const struct slo_series *s, uint64_t b)
{
    return b + 1 >= s->nbuckets ? b + 1 - s->nbuckets : 0;
}

/* Make b the newest bucket, zeroing the slots of the buckets passed over. */
static void advance(struct slo_series *s, uint64_t b)
{
    if (s->has_head && b <= s->head)
        return;
    if (s->has_head && b - s->head >= s->nbuckets)
        memset(s->buckets, 0, (size_t)s->nbuckets * sizeof(s->buckets[0]));
    else if (s->has_head)
        for (uint64_t i = s->head + 1; i <= b; i++)
            s->buckets[i % s->nbuckets] = (struct slo_bucket){0, 0};
    s->head = b;
    s->has_head = true;
}

int slo_series_add(struct slo_series *s, uint64_t now_s, uint64_t good, uint64_t total)
{
    uint64_t b = now_s / SLO_BUCKET_S;
    if (good > total)
        return SL_EINVAL;
    if (s->has_head && b < oldest_of(s, s->head))
        return SL_ERANGE;
    advance(s, b);
    struct slo_bucket *k = &s->buckets[b % s->nbuckets];
    k->good = sat_add(k->good, good);
    k->total = sat_add(k->total, total);
    return SL_OK;
}

void slo_series_sum(const struct slo_series *s, uint64_t now_s, uint64_t span_s, uint64_t *good,
                    uint64_t *total)
{
    uint64_t n = span_s / SLO_BUCKET_S + (span_s % SLO_BUCKET_S != 0);
    uint64_t now_b = now_s / SLO_BUCKET_S;
    *good = *total = 0;
    if (!s->has_head || n == 0)
        return;
    if (n > s->nbuckets)
        n = s->nbuckets;
    uint64_t lo = now_b + 1 >= n ? now_b + 1 - n : 0;
    if (lo < oldest_of(s, s->head))
        lo = oldest_of(s, s->head);
    uint64_t hi = now_b < s->head ? now_b : s->head;
    for (uint64_t i = lo; i <= hi; i++) {
        *good = sat_add(*good, s->buckets[i % s->nbuckets].good);
        *total = sat_add(*total, s->buckets[i % s->nbuckets].total);
    }
}

/* --- persistence ----------------------------------------------------------------------- */

static size_t put_varint(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
        p[n++] = (unsigned char)(v | 0x80);
    p[n++] = (unsigned char)v;
    return n;
}

static bool get_varint(const unsigned char **p, const unsigned char *end, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char c = *(*p)++;
        if (shift == 63 && c > 1)
            return false; /* more than 64 bits */
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* The buckets to encode at now: held, and within the window ending with now's bucket
 * (or with head, if that is newer). False if there are none. */
static bool encode_range(const struct slo_series *s, uint64_t now_s, uint64_t *lo, uint64_t *hi)
{
    if (!s->has_head)
        return false;
    uint64_t now_b = now_s / SLO_BUCKET_S;
    *hi = s->head;
    *lo = oldest_of(s, now_b > s->head ? now_b : s->head);
    return *lo <= *hi;
}

int slo_series_encode(const struct slo_series *s, uint64_t now_s, char **out, size_t *len)
{
    uint64_t lo = 1, hi = 0, count = 0, ref = 0;
    bool any = encode_range(s, now_s, &lo, &hi);
    for (uint64_t i = hi + 1; any && i-- > lo;) {
        if (s->buckets[i % s->nbuckets].total && count++ == 0)
            ref = i;
    }
    unsigned char *buf = malloc(1 + 2 * VARINT_MAX_BYTES + count * 3 * VARINT_MAX_BYTES);
    if (!buf)
        return SL_ENOMEM;
    size_t n = 0;
    buf[n++] = ENCODING_VERSION;
    n += put_varint(buf + n, ref);
    n += put_varint(buf + n, count);
    uint64_t prev = ref;
    for (uint64_t i = hi + 1; count && i-- > lo;) {
        const struct slo_bucket *k = &s->buckets[i % s->nbuckets];
        if (!k->total)
            continue;
        n += put_varint(buf + n, prev - i);
        n += put_varint(buf + n, k->total);
        n += put_varint(buf + n, k->total - k->good);
        prev = i;
    }
    *out = (char *)buf;
    *len = n;
    return SL_OK;
}

/* Walk encoded bytes: check every rule; when s is not NULL also add the buckets within
 * the window at now_s into s (only after a walk without s succeeded). */
static int decode_walk(struct slo_series *s, const unsigned char *p, const unsigned char *end,
                       uint64_t now_s)
{
    uint64_t ref, count, now_b = now_s / SLO_BUCKET_S;
    if (p == end || *p++ != ENCODING_VERSION || !get_varint(&p, end, &ref) ||
        !get_varint(&p, end, &count) || count > SLO_BUCKETS_MAX)
        return SL_EPARSE;
    uint64_t b = ref;
    for (uint64_t k = 0; k < count; k++) {
        uint64_t back, total, bad;
        if (!get_varint(&p, end, &back) || !get_varint(&p, end, &total) ||
            !get_varint(&p, end, &bad))
            return SL_EPARSE;
        if ((k > 0 && back == 0) || back > b || total == 0 || bad > total)
            return SL_EPARSE;
        b -= back;
        if (s && b <= now_b && now_b - b < s->nbuckets)
            (void)slo_series_add(s, b * SLO_BUCKET_S, total - bad, total); /* ERANGE: too old */
    }
    return p == end ? SL_OK : SL_EPARSE;
}

int slo_series_decode(struct slo_series *s, const char *data, size_t len, uint64_t now_s)
{
    const unsigned char *p = (const unsigned char *)data;
    if (!data || decode_walk(NULL, p, p + len, now_s) != SL_OK)
        return SL_EPARSE;
    return decode_walk(s, p, p + len, now_s);
}

/* --- evaluation ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    uint32_t s;
} burn_windows[SLO_BURN_WINDOWS] = {
    [SLO_BURN_5M] = {"5m", 300},    [SLO_BURN_30M] = {"30m", 1800}, [SLO_BURN_1H] = {"1h", 3600},
    [SLO_BURN_2H] = {"2h", 7200},   [SLO_BURN_6H] = {"6h", 21600},  [SLO_BURN_1D] = {"1d", 86400},
    [SLO_BURN_3D] = {"3d", 259200},
};

/* SRE workbook table 5-8, most severe first: the first rule that fires wins. */
static const struct alert_rule {
    enum slo_rule rule;
    const char *name;
    enum slo_alert alert;
    enum slo_burn_window long_w, short_w;
    double threshold; /* both windows strictly above */
} alert_rules[] = {
    {SLO_RULE_PAGE_1H_5M, "page_1h_5m", SLO_ALERT_PAGE, SLO_BURN_1H, SLO_BURN_5M, 14.4},
    {SLO_RULE_PAGE_6H_30M, "page_6h_30m", SLO_ALERT_PAGE, SLO_BURN_6H, SLO_BURN_30M, 6},
    {SLO_RULE_TICKET_1D_2H, "ticket_1d_2h", SLO_ALERT_TICKET, SLO_BURN_1D, SLO_BURN_2H, 3},
    {SLO_RULE_TICKET_3D_6H, "ticket_3d_6h", SLO_ALERT_TICKET, SLO_BURN_3D, SLO_BURN_6H, 1},
};
#define ALERT_RULES (sizeof(alert_rules) / sizeof(alert_rules[0]))

const char *slo_burn_window_name(enum slo_burn_window w)
{
    return burn_windows[w].name;
}

uint32_t slo_burn_window_s(enum slo_burn_window w)
{
    return burn_windows[w].s;
}

const char *slo_alert_name(enum slo_alert a)
{
    static const char *const names[] = {"none", "ticket", "page"};
    return names[a];
}

const char *slo_rule_name(enum slo_rule r)
{
    for (size_t i = 0; i < ALERT_RULES; i++)
        if (alert_rules[i].rule == r)
            return alert_rules[i].name;
    return NULL;
}

const char *slo_exhaustion_name(enum slo_exhaustion e)
{
    static const char *const names[] = {"never", "projected", "exhausted"};
    return names[e];
}

enum slo_alert slo_alert_classify(const double burn[SLO_BURN_WINDOWS], enum slo_rule *rule)
{
    for (size_t i = 0; i < ALERT_RULES; i++) {
        const struct alert_rule *r = &alert_rules[i];
        if (burn[r->long_w] > r->threshold && burn[r->short_w] > r->threshold) {
            *rule = r->rule;
            return r->alert;
        }
    }
    *rule = SLO_RULE_NONE;
    return SLO_ALERT_NONE;
}

/* error ratio / (1 - objective), as bad * 1e9 / (total * budget_ppb); 0 without traffic. */
static double burn_rate(uint64_t good, uint64_t total, uint32_t ppb)
{
    if (total == 0)
        return 0;
    return ((double)(total - good) * (double)PPB) / ((double)total * (double)ppb);
}

int slo_evaluate(const struct slo_def *def, const struct slo_series *s, uint64_t now_s,
                 struct slo_status *out)
{
    uint32_t ppb = budget_ppb(def->objective);
    if (ppb == 0)
        return SL_EINVAL;
    memset(out, 0, sizeof(*out));
    out->window_s = def->window_s && def->window_s < s->window_s ? def->window_s : s->window_s;
    slo_series_sum(s, now_s, out->window_s, &out->good, &out->total);
    out->has_data = out->total > 0;
    out->sli = out->has_data ? (double)out->good / (double)out->total : NAN;
    for (int w = 0; w < SLO_BURN_WINDOWS; w++) {
        uint64_t good, total;
        uint32_t span = burn_windows[w].s < out->window_s ? burn_windows[w].s : out->window_s;
        slo_series_sum(s, now_s, span, &good, &total);
        out->burn[w] = burn_rate(good, total, ppb);
    }
    out->budget_remaining = 1.0 - burn_rate(out->good, out->total, ppb);
    if (out->budget_remaining <= 0) {
        out->exhaustion = SLO_EXHAUST_EXHAUSTED;
        out->exhaustion_s = 0;
    } else if (out->burn[SLO_BURN_1H] > 0) {
        out->exhaustion = SLO_EXHAUST_PROJECTED;
        out->exhaustion_s = out->budget_remaining * out->window_s / out->burn[SLO_BURN_1H];
    } else {
        out->exhaustion = SLO_EXHAUST_NEVER;
        out->exhaustion_s = INFINITY;
    }
    out->alert = slo_alert_classify(out->burn, &out->rule);
    return SL_OK;
}

static json_t *burn_json(const struct slo_status *st)
{
    json_t *o = json_object();
    for (int w = 0; o && w < SLO_BURN_WINDOWS; w++) {
        if (json_object_set_new(o, burn_windows[w].name, json_real(st->burn[w]))) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* A saturated count stays positive in JSON. */
static json_int_t json_count(uint64_t n)
{
    return n > INT64_MAX ? INT64_MAX : (json_int_t)n;
}

/* Every json_t argument of the pack is new; json_pack steals them, even on failure. */
json_t *slo_status_to_json(const struct slo_def *def, const struct slo_status *st)
{
    const char *rule = slo_rule_name(st->rule);
    json_t *exhaust_s = json_null();
    if (st->exhaustion != SLO_EXHAUST_NEVER) /* clamped far below INT64_MAX */
        exhaust_s = json_integer((json_int_t)floor(fmin(st->exhaustion_s, 1e18)));
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:f, s:I, s:I, s:I, s:b, s:o, s:o, s:f, s:s, s:o,"
        " s:s, s:o}",
        "name", def->name, "service", def->service, "route", def->route, "kind",
        slo_kind_name(def->kind), "objective", def->objective, "window_s", (json_int_t)st->window_s,
        "good", json_count(st->good), "total", json_count(st->total), "has_data", st->has_data,
        "sli", st->has_data ? json_real(st->sli) : json_null(), "burn_rates", burn_json(st),
        "error_budget_remaining", st->budget_remaining, "exhaustion",
        slo_exhaustion_name(st->exhaustion), "time_to_exhaustion_s", exhaust_s, "alert",
        slo_alert_name(st->alert), "rule", rule ? json_string(rule) : json_null());
}
