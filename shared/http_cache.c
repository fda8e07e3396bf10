/*
 * http_cache — RFC 9111 / 5861 / 9213 decisions for the shared response cache. The contract,
 * with the RFC section behind every rule, is in http_cache.h; this file cites sections where
 * the code makes a choice.
 */
#include "http_cache.h"

#include <string.h>

#include "err.h"

#define VARY_NAME_MAX 128 /* one Vary field name, NUL included; longer → SL_ETOOBIG */

const struct hc_policy hc_policy_default = {
    .enabled = true,
    .role = HC_ROLE_SIDECAR,
    .ttl_cap_s = HC_NO_CAP,
    .stale_cap_s = HC_NO_CAP,
    .keep_stale_s = 600,
};

/* ---- characters and spans -------------------------------------------------------------- */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char to_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* RFC 9110 §5.6.2 */
static bool is_tchar(char c)
{
    return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_ows((*s)[0])) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && is_ows((*s)[*len - 1]))
        (*len)--;
}

/* Case-insensitive comparison of s[0..len) with a NUL-terminated string. */
static bool span_ieq(const char *s, size_t len, const char *lit)
{
    size_t i = 0;
    for (; i < len && lit[i] != '\0'; i++)
        if (to_lower(s[i]) != to_lower(lit[i]))
            return false;
    return i == len && lit[i] == '\0';
}

static int span_icmp(struct hc_span a, struct hc_span b)
{
    for (size_t i = 0; i < a.len && i < b.len; i++) {
        char x = to_lower(a.p[i]), y = to_lower(b.p[i]);
        if (x != y)
            return (unsigned char)x < (unsigned char)y ? -1 : 1;
    }
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

static uint32_t clamp_delta(int64_t d)
{
    if (d <= 0)
        return 0;
    return d > (int64_t)HC_DELTA_MAX ? HC_DELTA_MAX : (uint32_t)d;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* ---- field access ------------------------------------------------------------------------ */

bool hc_field_list_get(const void *ctx, const char *name, size_t idx, const char **value,
                       size_t *len)
{
    const struct hc_field_list *l = ctx;
    for (size_t i = 0; i < l->n && l->v[i].name != NULL; i++) {
        if (!span_ieq(l->v[i].name, strlen(l->v[i].name), name) || idx-- > 0)
            continue;
        *value = l->v[i].value ? l->v[i].value : "";
        *len = strlen(*value);
        return true;
    }
    return false;
}

/* The idx-th `name` line, OWS-trimmed. */
static bool field_get(const struct hc_fields *f, const char *name, size_t idx, struct hc_span *out)
{
    const char *v = NULL;
    size_t len = 0;
    if (f == NULL || f->get == NULL || !f->get(f->ctx, name, idx, &v, &len))
        return false;
    if (v == NULL) {
        v = "";
        len = 0;
    }
    trim(&v, &len);
    out->p = v;
    out->len = len;
    return true;
}

static size_t field_count(const struct hc_fields *f, const char *name)
{
    struct hc_span v;
    size_t n = 0;
    while (field_get(f, name, n, &v))
        n++;
    return n;
}

/* The value of a singleton field sent on exactly one line. */
static bool field_single(const struct hc_fields *f, const char *name, struct hc_span *out)
{
    struct hc_span extra;
    return field_get(f, name, 0, out) && !field_get(f, name, 1, &extra);
}

/* ---- numbers and dates ------------------------------------------------------------------- */

bool hc_delta_parse(const char *s, size_t len, uint32_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]))
            return false;
        if (v < HC_DELTA_MAX) /* §1.2.2: saturate, never wrap */
            v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v > HC_DELTA_MAX ? HC_DELTA_MAX : (uint32_t)v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int64_t year_of(int64_t t)
{
    int64_t z = (t >= 0 ? t / 86400 : (t - 86399) / 86400) + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    return (int64_t)yoe + era * 400 + (mp >= 10); /* months Jan, Feb belong to the next year */
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

struct cursor {
    const char *s;
    size_t len, pos;
};

static bool take_lit(struct cursor *c, const char *lit)
{
    size_t n = strlen(lit);
    if (c->len - c->pos < n || memcmp(c->s + c->pos, lit, n) != 0)
        return false;
    c->pos += n;
    return true;
}

static bool take_digits(struct cursor *c, unsigned n, unsigned *out)
{
    unsigned v = 0;
    if (c->len - c->pos < n)
        return false;
    for (unsigned i = 0; i < n; i++) {
        char ch = c->s[c->pos + i];
        if (!is_digit(ch))
            return false;
        v = v * 10 + (unsigned)(ch - '0');
    }
    c->pos += n;
    *out = v;
    return true;
}

/* One of names[0..n) (case-sensitive, RFC 9110 §5.6.7); its index in *out. */
static bool take_name(struct cursor *c, const char *const *names, unsigned n, unsigned *out)
{
    for (unsigned i = 0; i < n; i++)
        if (take_lit(c, names[i])) {
            *out = i;
            return true;
        }
    return false;
}

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const day_names[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
/* Longest first where one is a prefix of another is not needed: none is. */
static const char *const day_names_long[7] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                              "Friday", "Saturday", "Sunday"};

struct date_parts {
    int64_t year;
    unsigned mon, day, hour, min, sec; /* mon 1..12 */
};

static bool take_time(struct cursor *c, struct date_parts *d)
{
    return take_digits(c, 2, &d->hour) && take_lit(c, ":") && take_digits(c, 2, &d->min) &&
           take_lit(c, ":") && take_digits(c, 2, &d->sec);
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static bool parse_imf(struct cursor *c, struct date_parts *d)
{
    unsigned wd, y;
    if (!take_name(c, day_names, 7, &wd) || !take_lit(c, ", ") || !take_digits(c, 2, &d->day) ||
        !take_lit(c, " ") || !take_name(c, month_names, 12, &d->mon) || !take_lit(c, " ") ||
        !take_digits(c, 4, &y) || !take_lit(c, " ") || !take_time(c, d))
        return false;
    d->mon++;
    d->year = y;
    return take_lit(c, " GMT");
}

/* "Sunday, 06-Nov-94 08:49:37 GMT"; the century from now (RFC 9110 §5.6.7). */
static bool parse_rfc850(struct cursor *c, struct date_parts *d, int64_t now_s)
{
    unsigned wd, yy;
    if (!take_name(c, day_names_long, 7, &wd) || !take_lit(c, ", ") ||
        !take_digits(c, 2, &d->day) || !take_lit(c, "-") ||
        !take_name(c, month_names, 12, &d->mon) || !take_lit(c, "-") || !take_digits(c, 2, &yy) ||
        !take_lit(c, " ") || !take_time(c, d) || !take_lit(c, " GMT"))
        return false;
    int64_t now_year = year_of(now_s);
    d->mon++;
    d->year = now_year - ((now_year % 100) + 100) % 100 + yy;
    if (d->year > now_year + 50)
        d->year -= 100;
    return true;
}

/* "Sun Nov  6 08:49:37 1994" */
static bool parse_asctime(struct cursor *c, struct date_parts *d)
{
    unsigned wd, y;
    if (!take_name(c, day_names, 7, &wd) || !take_lit(c, " ") ||
        !take_name(c, month_names, 12, &d->mon) || !take_lit(c, " "))
        return false;
    if (!take_digits(c, 2, &d->day) && !(take_lit(c, " ") && take_digits(c, 1, &d->day)))
        return false;
    if (!take_lit(c, " ") || !take_time(c, d) || !take_lit(c, " ") || !take_digits(c, 4, &y))
        return false;
    d->mon++;
    d->year = y;
    return true;
}

bool hc_http_date_parse(const char *s, size_t len, int64_t now_s, int64_t *out)
{
    struct date_parts d = {0};
    trim(&s, &len);
    struct cursor a = {s, len, 0}, b = a, c = a;
    bool ok = (parse_imf(&a, &d) && a.pos == len) ||
              (parse_rfc850(&b, &d, now_s) && b.pos == len) ||
              (parse_asctime(&c, &d) && c.pos == len);
    if (!ok || d.day < 1 || d.day > days_in_month(d.year, d.mon) || d.hour > 23 || d.min > 59 ||
        d.sec > 60)
        return false;
    *out = days_from_civil(d.year, d.mon, d.day) * 86400 + d.hour * 3600 + d.min * 60 + d.sec;
    return true;
}

/* ---- Cache-Control (RFC 9111 §5.2) ------------------------------------------------------- */

enum cc_kind {
    CC_FLAG,      /* no argument */
    CC_LIST,      /* optional #field-name argument (no-cache, private): treated as a flag */
    CC_DELTA,     /* delta-seconds argument required */
    CC_OPT_DELTA, /* optional delta-seconds (max-stale) */
};

struct cc_directive {
    const char *name;
    uint32_t bit;
    enum cc_kind kind;
    bool restrictive; /* honoured even when malformed (conservative) */
};

static const struct cc_directive cc_table[] = {
    {"max-age", HC_CC_MAX_AGE, CC_DELTA, false},
    {"s-maxage", HC_CC_S_MAXAGE, CC_DELTA, false},
    {"max-stale", HC_CC_MAX_STALE, CC_OPT_DELTA, false},
    {"min-fresh", HC_CC_MIN_FRESH, CC_DELTA, false},
    {"stale-while-revalidate", HC_CC_SWR, CC_DELTA, false},
    {"stale-if-error", HC_CC_SIE, CC_DELTA, false},
    {"no-store", HC_CC_NO_STORE, CC_FLAG, true},
    {"no-cache", HC_CC_NO_CACHE, CC_LIST, true},
    {"private", HC_CC_PRIVATE, CC_LIST, true},
    {"public", HC_CC_PUBLIC, CC_FLAG, false},
    {"must-revalidate", HC_CC_MUST_REVALIDATE, CC_FLAG, true},
    {"proxy-revalidate", HC_CC_PROXY_REVALIDATE, CC_FLAG, true},
    {"must-understand", HC_CC_MUST_UNDERSTAND, CC_FLAG, false},
    {"no-transform", HC_CC_NO_TRANSFORM, CC_FLAG, false},
    {"only-if-cached", HC_CC_ONLY_IF_CACHED, CC_FLAG, false},
};

static const struct cc_directive *cc_lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(cc_table) / sizeof(cc_table[0]); i++)
        if (span_ieq(name, len, cc_table[i].name))
            return &cc_table[i];
    return NULL;
}

static uint32_t *cc_slot(struct hc_cc *cc, uint32_t bit)
{
    switch (bit) {
    case HC_CC_MAX_AGE:
        return &cc->max_age_s;
    case HC_CC_S_MAXAGE:
        return &cc->s_maxage_s;
    case HC_CC_MAX_STALE:
        return &cc->max_stale_s;
    case HC_CC_MIN_FRESH:
        return &cc->min_fresh_s;
    case HC_CC_SWR:
        return &cc->swr_s;
    default:
        return &cc->sie_s;
    }
}

/* Record a valued directive. overwrite (Structured Fields): the last occurrence wins;
 * otherwise a repeat with another value makes it invalid (§4.2.1). */
static void cc_set_value(struct hc_cc *cc, uint32_t bit, bool good, uint32_t n, bool overwrite)
{
    uint32_t *slot = cc_slot(cc, bit);
    if (overwrite)
        cc->invalid &= ~bit;
    else if ((cc->has & bit) && (!good || *slot != n || (cc->invalid & bit)))
        good = false;
    cc->has |= bit;
    if (good) {
        *slot = n;
        return;
    }
    cc->invalid |= bit;
    *slot = 0;
}

/* A directive's argument as found: absent, or a token / quoted-string's content. */
struct cc_arg {
    bool present;
    bool ok; /* syntactically proper member */
    const char *p;
    size_t len;
};

static void cc_apply(struct hc_cc *cc, const struct cc_directive *d, const struct cc_arg *a)
{
    uint32_t n = 0;
    switch (d->kind) {
    case CC_FLAG:
        if ((a->ok && !a->present) || d->restrictive)
            cc->has |= d->bit;
        return;
    case CC_LIST:
        cc->has |= d->bit; /* qualified forms treated as unqualified (§5.2.2.4, §5.2.2.7) */
        return;
    case CC_OPT_DELTA:
        if (a->ok && !a->present) {
            cc_set_value(cc, d->bit, true, HC_DELTA_MAX, false);
            return;
        }
        break;
    case CC_DELTA:
        break;
    }
    bool good = a->ok && a->present && hc_delta_parse(a->p, a->len, &n);
    cc_set_value(cc, d->bit, good, n, false);
}

/* Index past the next ',' that is outside a quoted-string (or len). */
static size_t skip_member(const char *s, size_t len, size_t i)
{
    bool quoted = false;
    for (; i < len; i++) {
        if (quoted && s[i] == '\\')
            i++;
        else if (s[i] == '"')
            quoted = !quoted;
        else if (!quoted && s[i] == ',')
            return i;
    }
    return len;
}

/* quoted-string at s[*i] == '"' (RFC 9110 §5.6.4): content (escapes left in) into a. */
static bool take_quoted(const char *s, size_t len, size_t *i, struct cc_arg *a)
{
    size_t j = *i + 1;
    a->p = s + j;
    for (; j < len && s[j] != '"'; j++)
        if (s[j] == '\\')
            j++;
    if (j >= len)
        return false;
    a->len = (size_t)(s + j - a->p);
    *i = j + 1;
    return true;
}

/* One list member at s[*pos] (not OWS or ','); leaves *pos at the ',' ending it, or len. */
static void cc_member(struct hc_cc *cc, const char *s, size_t len, size_t *pos)
{
    size_t i = *pos, name = i;
    struct cc_arg a = {.ok = true};
    while (i < len && is_tchar(s[i]))
        i++;
    size_t name_len = i - name;
    if (i < len && s[i] == '=') {
        a.present = true;
        i++;
        if (i < len && s[i] == '"') {
            a.ok = take_quoted(s, len, &i, &a);
        } else {
            a.p = s + i;
            while (i < len && is_tchar(s[i]))
                i++;
            a.len = (size_t)(s + i - a.p);
            a.ok = a.len > 0;
        }
    }
    while (i < len && is_ows(s[i]))
        i++;
    if (i < len && s[i] != ',') {
        a.ok = false;
        i = skip_member(s, len, i);
    }
    *pos = i;
    const struct cc_directive *d = name_len > 0 ? cc_lookup(s + name, name_len) : NULL;
    if (d != NULL) /* §5.2.3: unknown directives are ignored */
        cc_apply(cc, d, &a);
}

void hc_cc_parse(struct hc_cc *cc, const char *value, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (value[i] == ',' || is_ows(value[i]))
            i++;
        else
            cc_member(cc, value, len, &i);
    }
}

void hc_cc_from_fields(struct hc_cc *cc, const struct hc_fields *fields, const char *name)
{
    struct hc_span v;
    memset(cc, 0, sizeof(*cc));
    for (size_t i = 0; field_get(fields, name, i, &v); i++)
        hc_cc_parse(cc, v.p, v.len);
}

/* ---- Structured Fields Dictionary (RFC 8941 §4.2.2), for RFC 9213 -------------------------- */

enum sf_type { SF_BOOL, SF_INT, SF_DECIMAL, SF_STRING, SF_TOKEN, SF_BYTES, SF_INNER_LIST };

struct sf_value {
    enum sf_type type;
    bool boolean;
    int64_t integer;
};

static bool sf_is_lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

/* key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ) */
static bool sf_key(struct cursor *c, struct hc_span *key)
{
    size_t start = c->pos;
    if (c->pos >= c->len || !(sf_is_lcalpha(c->s[c->pos]) || c->s[c->pos] == '*'))
        return false;
    while (c->pos < c->len) {
        char ch = c->s[c->pos];
        if (!sf_is_lcalpha(ch) && !is_digit(ch) && ch != '_' && ch != '-' && ch != '.' && ch != '*')
            break;
        c->pos++;
    }
    key->p = c->s + start;
    key->len = c->pos - start;
    return true;
}

/* sf-integer / sf-decimal (§4.2.4) */
static bool sf_number(struct cursor *c, struct sf_value *v)
{
    bool neg = c->pos < c->len && c->s[c->pos] == '-';
    size_t int_digits = 0, frac_digits = 0;
    int64_t n = 0;
    c->pos += neg;
    for (; c->pos < c->len && is_digit(c->s[c->pos]); c->pos++, int_digits++)
        if (int_digits < 15)
            n = n * 10 + (c->s[c->pos] - '0');
    v->type = SF_INT;
    if (c->pos < c->len && c->s[c->pos] == '.') {
        v->type = SF_DECIMAL;
        for (c->pos++; c->pos < c->len && is_digit(c->s[c->pos]); c->pos++)
            frac_digits++;
        if (int_digits > 12 || frac_digits < 1 || frac_digits > 3)
            return false;
    }
    v->integer = neg ? -n : n;
    return int_digits >= 1 && int_digits <= 15;
}

/* sf-string (§4.2.5): printable ASCII, only \" and \\ escapes. */
static bool sf_string(struct cursor *c)
{
    for (c->pos++; c->pos < c->len; c->pos++) {
        char ch = c->s[c->pos];
        if (ch == '"') {
            c->pos++;
            return true;
        }
        if (ch == '\\') {
            c->pos++;
            if (c->pos >= c->len || (c->s[c->pos] != '"' && c->s[c->pos] != '\\'))
                return false;
        } else if (ch < 0x20 || ch > 0x7e) {
            return false;
        }
    }
    return false;
}

/* sf-token (§4.2.6) */
static void sf_token(struct cursor *c)
{
    for (c->pos++; c->pos < c->len; c->pos++) {
        char ch = c->s[c->pos];
        if (!is_tchar(ch) && ch != ':' && ch != '/')
            break;
    }
}

/* sf-binary (§4.2.7) */
static bool sf_bytes(struct cursor *c)
{
    for (c->pos++; c->pos < c->len; c->pos++) {
        char ch = c->s[c->pos];
        if (ch == ':') {
            c->pos++;
            return true;
        }
        if (!is_alpha(ch) && !is_digit(ch) && ch != '+' && ch != '/' && ch != '=')
            return false;
    }
    return false;
}

static bool sf_bare_item(struct cursor *c, struct sf_value *v)
{
    if (c->pos >= c->len)
        return false;
    char ch = c->s[c->pos];
    if (ch == '-' || is_digit(ch))
        return sf_number(c, v);
    if (ch == '"') {
        v->type = SF_STRING;
        return sf_string(c);
    }
    if (is_alpha(ch) || ch == '*') {
        v->type = SF_TOKEN;
        sf_token(c);
        return true;
    }
    if (ch == ':') {
        v->type = SF_BYTES;
        return sf_bytes(c);
    }
    if (ch == '?' && c->pos + 1 < c->len && (c->s[c->pos + 1] == '0' || c->s[c->pos + 1] == '1')) {
        v->type = SF_BOOL;
        v->boolean = c->s[c->pos + 1] == '1';
        c->pos += 2;
        return true;
    }
    return false;
}

static void sf_skip_sp(struct cursor *c)
{
    while (c->pos < c->len && c->s[c->pos] == ' ')
        c->pos++;
}

/* parameters (§4.2.3.2): validated and ignored (RFC 9213 §2.1). */
static bool sf_params(struct cursor *c)
{
    while (c->pos < c->len && c->s[c->pos] == ';') {
        struct hc_span key;
        struct sf_value v;
        c->pos++;
        sf_skip_sp(c);
        if (!sf_key(c, &key))
            return false;
        if (c->pos < c->len && c->s[c->pos] == '=') {
            c->pos++;
            if (!sf_bare_item(c, &v))
                return false;
        }
    }
    return true;
}

/* inner-list (§4.2.1.2) at '(' */
static bool sf_inner_list(struct cursor *c)
{
    c->pos++;
    for (;;) {
        struct sf_value v;
        sf_skip_sp(c);
        if (c->pos < c->len && c->s[c->pos] == ')') {
            c->pos++;
            return sf_params(c);
        }
        if (!sf_bare_item(c, &v) || !sf_params(c))
            return false;
        if (c->pos < c->len && c->s[c->pos] != ' ' && c->s[c->pos] != ')')
            return false;
    }
}

/* A member's value as RFC 9213 §2.1 maps it onto a directive. */
static void sf_apply(struct hc_cc *cc, const struct cc_directive *d, const struct sf_value *v)
{
    bool is_true = v->type == SF_BOOL && v->boolean;
    switch (d->kind) {
    case CC_FLAG:
        if (is_true || d->restrictive)
            cc->has |= d->bit;
        return;
    case CC_LIST:
        cc->has |= d->bit;
        return;
    case CC_OPT_DELTA:
        if (is_true) {
            cc_set_value(cc, d->bit, true, HC_DELTA_MAX, true);
            return;
        }
        break;
    case CC_DELTA:
        break;
    }
    bool good = v->type == SF_INT && v->integer >= 0;
    cc_set_value(cc, d->bit, good, good ? clamp_delta(v->integer) : 0, true);
}

static bool sf_member(struct cursor *c, struct hc_cc *cc)
{
    struct hc_span key;
    struct sf_value v = {.type = SF_BOOL, .boolean = true};
    if (!sf_key(c, &key))
        return false;
    if (c->pos < c->len && c->s[c->pos] == '=') {
        c->pos++;
        if (c->pos < c->len && c->s[c->pos] == '(') {
            v.type = SF_INNER_LIST;
            if (!sf_inner_list(c))
                return false;
        } else if (!sf_bare_item(c, &v) || !sf_params(c)) {
            return false;
        }
    } else if (!sf_params(c)) {
        return false;
    }
    const struct cc_directive *d = cc_lookup(key.p, key.len);
    if (d != NULL)
        sf_apply(cc, d, &v);
    return true;
}

static int sf_dict_parse(struct hc_cc *cc, const char *s, size_t len, size_t *members)
{
    struct cursor c = {s, len, 0};
    *members = 0;
    sf_skip_sp(&c);
    while (c.len > c.pos && s[c.len - 1] == ' ')
        c.len--;
    if (c.pos == c.len)
        return SL_OK;
    for (;;) {
        if (!sf_member(&c, cc))
            return SL_EPARSE;
        (*members)++;
        while (c.pos < c.len && is_ows(s[c.pos]))
            c.pos++;
        if (c.pos == c.len)
            return SL_OK;
        if (s[c.pos] != ',')
            return SL_EPARSE;
        c.pos++;
        while (c.pos < c.len && is_ows(s[c.pos]))
            c.pos++;
        if (c.pos == c.len)
            return SL_EPARSE; /* trailing comma */
    }
}

int hc_cc_parse_sf(struct hc_cc *cc, const char *value, size_t len)
{
    size_t members;
    return sf_dict_parse(cc, value, len, &members);
}

/* RFC 9213 §2.2: the CDN-Cache-Control lines, when all parse and hold at least one member. */
static bool targeted_cc(const struct hc_fields *resp, struct hc_cc *out)
{
    struct hc_cc cc = {0};
    struct hc_span v;
    size_t members = 0, m;
    for (size_t i = 0; field_get(resp, "cdn-cache-control", i, &v); i++) {
        if (sf_dict_parse(&cc, v.p, v.len, &m) != SL_OK)
            return false;
        members += m;
    }
    if (members == 0)
        return false;
    *out = cc;
    return true;
}

/* ---- methods, reasons, requests ---------------------------------------------------------- */

enum hc_method hc_method_classify(const char *name, size_t len)
{
    if (len == 3 && memcmp(name, "GET", 3) == 0)
        return HC_METHOD_GET;
    if (len == 4 && memcmp(name, "HEAD", 4) == 0)
        return HC_METHOD_HEAD;
    if ((len == 7 && memcmp(name, "OPTIONS", 7) == 0) ||
        (len == 5 && memcmp(name, "TRACE", 5) == 0))
        return HC_METHOD_SAFE;
    return HC_METHOD_UNSAFE;
}

static const char *const reason_str[] = {
#define HC_REASON_STR(name, msg) msg,
    HC_REASON_MAP(HC_REASON_STR)
#undef HC_REASON_STR
};

static const char *const reason_name[] = {
#define HC_REASON_NAME(name, msg) #name,
    HC_REASON_MAP(HC_REASON_NAME)
#undef HC_REASON_NAME
};

const char *hc_reason_str(enum hc_reason r)
{
    return (unsigned)r < HC_R_COUNT_ ? reason_str[r] : "?";
}

const char *hc_reason_name(enum hc_reason r)
{
    return (unsigned)r < HC_R_COUNT_ ? reason_name[r] : "?";
}

/* Pragma: no-cache (RFC 9111 §5.4; honoured only when there is no Cache-Control). */
static bool pragma_no_cache(const struct hc_fields *req)
{
    struct hc_span v;
    for (size_t i = 0; field_get(req, "pragma", i, &v); i++) {
        for (size_t p = 0; p < v.len;) {
            size_t end = skip_member(v.p, v.len, p);
            const char *m = v.p + p;
            size_t mlen = end - p;
            trim(&m, &mlen);
            if (span_ieq(m, mlen, "no-cache"))
                return true;
            p = end + 1;
        }
    }
    return false;
}

bool hc_request_cacheable(const struct hc_policy *policy, enum hc_method method,
                          const struct hc_fields *req, struct hc_request *out)
{
    memset(out, 0, sizeof(*out));
    out->method = method;
    hc_cc_from_fields(&out->cc, req, "cache-control");
    if (field_count(req, "cache-control") == 0 && pragma_no_cache(req))
        out->cc.has |= HC_CC_NO_CACHE;
    out->authorization = field_count(req, "authorization") > 0;
    if (policy == NULL || !policy->enabled) {
        out->reason = HC_R_DISABLED;
    } else if (method != HC_METHOD_GET && method != HC_METHOD_HEAD) {
        out->reason = HC_R_METHOD; /* §2: only GET responses stored; HEAD reuses them */
    } else {
        out->lookup = true;
        out->store = method == HC_METHOD_GET && !(out->cc.has & HC_CC_NO_STORE);
        if (out->cc.has & HC_CC_NO_STORE)
            out->reason = HC_R_REQ_NO_STORE; /* §5.2.1.5: stored responses may still answer */
        else if (method == HC_METHOD_HEAD)
            out->reason = HC_R_METHOD;
    }
    return out->lookup;
}

/* ---- storing (§3) ------------------------------------------------------------------------ */

bool hc_status_cacheable_by_default(unsigned status)
{
    static const unsigned short codes[] = {200, 203, 204, 206, 300, 301,
                                           308, 404, 405, 410, 414, 501};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i] == status)
            return true;
    return false;
}

/* §5.2.2.3: statuses whose caching rules we implement (RFC 9110 §15), so must-understand may
 * override no-store for them. Not 206 (no ranges), not 304 (not stored). */
static bool status_understood(unsigned status)
{
    return (status >= 200 && status <= 205) || (status >= 300 && status <= 303) || status == 305 ||
           status == 307 || status == 308 || (status >= 400 && status <= 417) || status == 421 ||
           status == 422 || status == 426 || (status >= 500 && status <= 505);
}

static enum hc_reason check_request_status(const struct hc_policy *policy,
                                           const struct hc_request *req, unsigned status)
{
    if (policy == NULL || !policy->enabled)
        return HC_R_DISABLED;
    if (req->method != HC_METHOD_GET)
        return HC_R_METHOD;
    if (req->cc.has & HC_CC_NO_STORE)
        return HC_R_REQ_NO_STORE;
    if (status < 200 || status > 599 || status == 304)
        return HC_R_STATUS;
    if (status == 206)
        return HC_R_PARTIAL;
    return HC_R_OK;
}

static enum hc_reason check_directives(const struct hc_cc *cc, const struct hc_request *req,
                                       unsigned status)
{
    bool understood = (cc->has & HC_CC_MUST_UNDERSTAND) && status_understood(status);
    if ((cc->has & HC_CC_MUST_UNDERSTAND) && !understood)
        return HC_R_MUST_UNDERSTAND;
    if ((cc->has & HC_CC_NO_STORE) && !understood)
        return HC_R_NO_STORE;
    if (cc->has & HC_CC_PRIVATE)
        return HC_R_PRIVATE;
    if (req->authorization && !(cc->has & (HC_CC_PUBLIC | HC_CC_S_MAXAGE | HC_CC_MUST_REVALIDATE)))
        return HC_R_AUTHORIZATION;
    return HC_R_OK;
}

static int vary_collect(const char *s, size_t len, struct hc_span *names, size_t *n);

static enum hc_reason check_fields(const struct hc_fields *resp)
{
    struct hc_span names[HC_VARY_FIELDS_MAX], v;
    size_t n = 0;
    if (field_count(resp, "set-cookie") > 0)
        return HC_R_SET_COOKIE;
    for (size_t i = 0; field_get(resp, "vary", i, &v); i++) {
        int rc = vary_collect(v.p, v.len, names, &n);
        if (rc == SL_EINVAL)
            return HC_R_VARY_STAR;
        if (rc != SL_OK)
            return HC_R_VARY;
    }
    return HC_R_OK;
}

/* §4.2.1: s-maxage, else max-age, else Expires - Date. *explicit false when none applies. */
static uint32_t lifetime_of(const struct hc_cc *cc, const struct hc_fields *resp, bool use_expires,
                            int64_t date_s, int64_t now_s, bool *explicit)
{
    struct hc_span v;
    int64_t expires_s;
    *explicit = true;
    if (cc->has & HC_CC_S_MAXAGE)
        return cc->s_maxage_s; /* 0 when invalid: stale at once */
    if (cc->has & HC_CC_MAX_AGE)
        return cc->max_age_s;
    if (use_expires && field_count(resp, "expires") > 0) {
        /* §5.3: invalid ("0") = already expired; §4.2.1: two lines → stale */
        if (!field_single(resp, "expires", &v) ||
            !hc_http_date_parse(v.p, v.len, now_s, &expires_s))
            return 0;
        return clamp_delta(expires_s - date_s);
    }
    *explicit = false;
    return 0;
}

/* §5.1: the first member of the first Age line; invalid → 0. */
static uint32_t age_value_of(const struct hc_fields *resp)
{
    struct hc_span v;
    uint32_t age = 0;
    if (!field_get(resp, "age", 0, &v))
        return 0;
    const char *p = v.p;
    size_t len = skip_member(v.p, v.len, 0);
    trim(&p, &len);
    return hc_delta_parse(p, len, &age) ? age : 0;
}

/* Validators and dates of a response. */
static void entry_validators(struct hc_entry *e, const struct hc_fields *resp, int64_t date_s)
{
    struct hc_span v;
    int64_t lm;
    e->has_etag = hc_etag(resp, &v);
    e->has_last_modified = field_single(resp, "last-modified", &v) &&
                           hc_http_date_parse(v.p, v.len, e->response_s, &lm);
    e->last_modified_s = e->has_last_modified ? lm : date_s; /* §4.3.2 */
}

static uint32_t cap_stale(const struct hc_cc *cc, uint32_t bit, uint32_t cap)
{
    if (!(cc->has & bit) || (cc->invalid & bit))
        return 0;
    return min_u32(bit == HC_CC_SWR ? cc->swr_s : cc->sie_s, cap);
}

static void fill_entry(struct hc_store *out, const struct hc_policy *policy, const struct hc_cc *cc,
                       const struct hc_fields *resp, int64_t request_s, int64_t response_s)
{
    struct hc_entry *e = &out->entry;
    struct hc_span v;
    int64_t date_s = response_s; /* RFC 9110 §6.6.1: no (valid) Date → when it was received */
    if (field_single(resp, "date", &v))
        (void)hc_http_date_parse(v.p, v.len, response_s, &date_s); /* writes only when valid */
    e->response_s = response_s;
    e->initial_age_s = hc_initial_age(date_s, age_value_of(resp), request_s, response_s);
    e->lifetime_s =
        min_u32(lifetime_of(cc, resp, !out->targeted, date_s, response_s, &out->explicit_freshness),
                policy->ttl_cap_s);
    e->no_cache = (cc->has & HC_CC_NO_CACHE) != 0;
    /* §5.2.2.2, §5.2.2.8, §5.2.2.10: s-maxage implies proxy-revalidate in a shared cache */
    e->must_revalidate =
        (cc->has & (HC_CC_MUST_REVALIDATE | HC_CC_PROXY_REVALIDATE | HC_CC_S_MAXAGE)) != 0;
    bool stale_ok = !e->no_cache && !e->must_revalidate; /* §4.2.4 */
    e->swr_s = stale_ok ? cap_stale(cc, HC_CC_SWR, policy->stale_cap_s) : 0;
    e->sie_s = stale_ok ? cap_stale(cc, HC_CC_SIE, policy->stale_cap_s) : 0;
    entry_validators(e, resp, date_s);
}

/* Seconds the entry is worth keeping; 0 = not reusable at all. */
static uint32_t keep_of(const struct hc_entry *e, const struct hc_policy *policy)
{
    int64_t usable = 0;
    if (!e->no_cache) {
        uint32_t window = e->swr_s > e->sie_s ? e->swr_s : e->sie_s;
        usable = (int64_t)e->lifetime_s + window - e->initial_age_s;
        if (usable < 0)
            usable = 0;
    }
    if (e->has_etag || e->has_last_modified)
        usable += policy->keep_stale_s;
    return clamp_delta(usable);
}

bool hc_response_storable(const struct hc_policy *policy, const struct hc_request *req,
                          unsigned status, const struct hc_fields *resp, int64_t request_s,
                          int64_t response_s, struct hc_store *out)
{
    struct hc_cc cc;
    memset(out, 0, sizeof(*out));
    out->reason = check_request_status(policy, req, status);
    if (out->reason != HC_R_OK)
        return false;
    out->targeted = policy->role == HC_ROLE_EDGE && targeted_cc(resp, &cc); /* RFC 9213 §2.2 */
    if (!out->targeted)
        hc_cc_from_fields(&cc, resp, "cache-control");
    out->reason = check_directives(&cc, req, status);
    if (out->reason == HC_R_OK)
        out->reason = check_fields(resp);
    if (out->reason != HC_R_OK)
        return false;
    fill_entry(out, policy, &cc, resp, request_s, response_s);
    if (!hc_status_cacheable_by_default(status) && !out->explicit_freshness &&
        !(cc.has & HC_CC_PUBLIC)) {
        out->reason = HC_R_STATUS; /* §3: not heuristically cacheable, nothing explicit */
        return false;
    }
    out->keep_s = keep_of(&out->entry, policy);
    if (out->keep_s == 0) {
        out->reason = HC_R_NOT_REUSABLE;
        return false;
    }
    out->storable = true;
    return true;
}

/* ---- age and freshness (§4.2.3) ---------------------------------------------------------- */

uint32_t hc_initial_age(int64_t date_s, uint32_t age_value_s, int64_t request_s, int64_t response_s)
{
    int64_t apparent_age = response_s - date_s;
    int64_t response_delay = response_s - request_s;
    if (apparent_age < 0)
        apparent_age = 0;
    if (response_delay < 0)
        response_delay = 0;
    int64_t corrected_age_value = (int64_t)age_value_s + response_delay;
    return clamp_delta(apparent_age > corrected_age_value ? apparent_age : corrected_age_value);
}

uint32_t hc_current_age(const struct hc_entry *e, int64_t now_s)
{
    int64_t resident_time = now_s - e->response_s;
    if (resident_time < 0)
        resident_time = 0;
    return clamp_delta((int64_t)e->initial_age_s + resident_time);
}

bool hc_is_fresh(const struct hc_entry *e, int64_t now_s)
{
    return e->lifetime_s > hc_current_age(e, now_s); /* §4.2 */
}

size_t hc_age_value(uint32_t age_s, char out[HC_AGE_VALUE_MAX])
{
    char tmp[HC_AGE_VALUE_MAX];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + age_s % 10);
        age_s /= 10;
    } while (age_s > 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* ---- serving ----------------------------------------------------------------------------- */

/* The client's max-age and min-fresh (§5.2.1.1, §5.2.1.3); an invalid max-age is 0. */
static bool client_accepts(const struct hc_cc *cc, const struct hc_entry *e, uint32_t age)
{
    if ((cc->has & HC_CC_MAX_AGE) && age > cc->max_age_s)
        return false;
    if ((cc->has & HC_CC_MIN_FRESH) && !(cc->invalid & HC_CC_MIN_FRESH) &&
        (uint64_t)age + cc->min_fresh_s >= (uint64_t)e->lifetime_s + 1)
        return false;
    return true;
}

/* A valid request max-stale covering this staleness (§5.2.1.2). */
static bool client_max_stale(const struct hc_cc *cc, uint32_t staleness)
{
    return (cc->has & HC_CC_MAX_STALE) && !(cc->invalid & HC_CC_MAX_STALE) &&
           staleness <= cc->max_stale_s;
}

enum hc_serve hc_serve(const struct hc_entry *e, const struct hc_request *req, int64_t now_s)
{
    bool only_if_cached = (req->cc.has & HC_CC_ONLY_IF_CACHED) != 0;
    if (!req->lookup)
        return HC_SERVE_MISS;
    if (e == NULL)
        return only_if_cached ? HC_SERVE_GATEWAY_TIMEOUT : HC_SERVE_MISS; /* §5.2.1.7 */
    uint32_t age = hc_current_age(e, now_s);
    bool fresh = age < e->lifetime_s;
    bool validate =
        e->no_cache || (req->cc.has & HC_CC_NO_CACHE) || !client_accepts(&req->cc, e, age);
    if (!validate && fresh)
        return HC_SERVE_FRESH;
    if (!validate && !e->must_revalidate) {
        uint32_t staleness = age - e->lifetime_s;
        if (staleness < e->swr_s || client_max_stale(&req->cc, staleness))
            return HC_SERVE_STALE; /* RFC 5861 §3, §5.2.1.2 */
    }
    if (only_if_cached)
        return HC_SERVE_GATEWAY_TIMEOUT; /* §5.2.1.7 */
    return e->has_etag || e->has_last_modified ? HC_SERVE_REVALIDATE : HC_SERVE_MISS;
}

bool hc_stale_if_error(const struct hc_entry *e, const struct hc_request *req, int64_t now_s)
{
    if (e == NULL || e->no_cache)
        return false;
    uint32_t age = hc_current_age(e, now_s);
    if (age < e->lifetime_s)
        return true; /* still fresh: only the client's preferences sent us upstream */
    if (e->must_revalidate)
        return false; /* §5.2.2.2: an error (504), never the stale response */
    uint32_t staleness = age - e->lifetime_s;
    const struct hc_cc *cc = &req->cc;
    bool req_sie = (cc->has & HC_CC_SIE) && !(cc->invalid & HC_CC_SIE) && staleness < cc->sie_s;
    return staleness < e->sie_s || req_sie || client_max_stale(cc, staleness);
}

bool hc_is_error_status(unsigned status)
{
    return status == 500 || status == 502 || status == 503 || status == 504;
}

/* ---- entity tags and conditionals -------------------------------------------------------- */

/* entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE (RFC 9110 §8.8.3) at s[*i]; *opaque = the quoted
 * part. etagc = %x21 / %x23-7E / obs-text. */
static bool take_etag(const char *s, size_t len, size_t *i, struct hc_span *opaque)
{
    size_t j = *i;
    if (len - j >= 2 && s[j] == 'W' && s[j + 1] == '/')
        j += 2;
    if (j >= len || s[j] != '"')
        return false;
    size_t start = j++;
    for (; j < len && s[j] != '"'; j++) {
        unsigned char ch = (unsigned char)s[j];
        if (ch < 0x21 || ch == 0x7f)
            return false;
    }
    if (j >= len)
        return false;
    opaque->p = s + start;
    opaque->len = j + 1 - start;
    *i = j + 1;
    return true;
}

static bool parse_one_etag(const char *s, size_t len, struct hc_span *opaque)
{
    size_t i = 0;
    trim(&s, &len);
    return take_etag(s, len, &i, opaque) && i == len;
}

bool hc_etag(const struct hc_fields *resp, struct hc_span *out)
{
    struct hc_span v, opaque;
    if (!field_single(resp, "etag", &v) || !parse_one_etag(v.p, v.len, &opaque))
        return false;
    *out = v;
    return true;
}

static bool opaque_eq(struct hc_span a, struct hc_span b)
{
    return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

/* One If-None-Match line: 1 match, 0 no match, -1 malformed. */
static int inm_eval(const char *s, size_t len, const struct hc_span *stored)
{
    size_t i = 0;
    bool match = false;
    trim(&s, &len);
    if (len == 1 && s[0] == '*')
        return 1; /* RFC 9110 §13.1.2: any current representation; the entry is one */
    while (i < len) {
        struct hc_span opaque;
        if (s[i] == ',' || is_ows(s[i])) {
            i++;
            continue;
        }
        if (!take_etag(s, len, &i, &opaque))
            return -1;
        if (stored != NULL && opaque_eq(opaque, *stored)) /* weak comparison: W/ ignored */
            match = true;
        while (i < len && is_ows(s[i]))
            i++;
        if (i < len && s[i] != ',')
            return -1;
    }
    return match ? 1 : 0;
}

bool hc_if_none_match(const char *inm, size_t inm_len, const char *etag, size_t etag_len)
{
    struct hc_span stored;
    bool have = etag != NULL && parse_one_etag(etag, etag_len, &stored);
    return inm_eval(inm, inm_len, have ? &stored : NULL) == 1;
}

bool hc_not_modified(const struct hc_fields *req, enum hc_method method, const struct hc_entry *e,
                     const char *etag, size_t etag_len, int64_t now_s)
{
    struct hc_span v, stored;
    int64_t ims;
    if (method != HC_METHOD_GET && method != HC_METHOD_HEAD)
        return false;
    bool have = etag != NULL && parse_one_etag(etag, etag_len, &stored);
    if (field_count(req, "if-none-match") > 0) { /* RFC 9110 §13.2.2 step 3 */
        bool match = false;
        for (size_t i = 0; field_get(req, "if-none-match", i, &v); i++) {
            int r = inm_eval(v.p, v.len, have ? &stored : NULL);
            if (r < 0)
                return false; /* malformed: ignore the condition, answer in full */
            match = match || r == 1;
        }
        return match;
    }
    /* step 4; RFC 9110 §13.1.3: one valid HTTP-date, else ignored */
    if (!field_single(req, "if-modified-since", &v) || !hc_http_date_parse(v.p, v.len, now_s, &ims))
        return false;
    return e->last_modified_s <= ims;
}

bool hc_freshen_matches(const char *stored_etag, size_t stored_len, const struct hc_fields *resp304)
{
    struct hc_span v, got, stored;
    if (field_count(resp304, "etag") == 0)
        return true; /* it answers the conditional we built from this entry */
    if (!hc_etag(resp304, &v) || !parse_one_etag(v.p, v.len, &got))
        return false;
    if (stored_etag == NULL || !parse_one_etag(stored_etag, stored_len, &stored))
        return false;
    return opaque_eq(got, stored);
}

/* ---- Vary (§4.1) ------------------------------------------------------------------------- */

/* Adds the names of one Vary value to names[0..*n), deduplicated. SL_EINVAL for "*". */
static int vary_collect(const char *s, size_t len, struct hc_span *names, size_t *n)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] == ',' || is_ows(s[i])) {
            i++;
            continue;
        }
        struct hc_span name = {s + i, 0};
        while (i < len && is_tchar(s[i]))
            i++;
        name.len = (size_t)(s + i - name.p);
        while (i < len && is_ows(s[i]))
            i++;
        if (name.len == 1 && name.p[0] == '*')
            return SL_EINVAL;
        if (name.len == 0 || (i < len && s[i] != ','))
            return SL_EPARSE;
        if (name.len >= VARY_NAME_MAX)
            return SL_ETOOBIG;
        size_t k = 0;
        while (k < *n && span_icmp(names[k], name) != 0)
            k++;
        if (k < *n)
            continue;
        if (*n == HC_VARY_FIELDS_MAX)
            return SL_ETOOBIG;
        names[(*n)++] = name;
    }
    return SL_OK;
}

static void vary_sort(struct hc_span *names, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct hc_span x = names[i];
        size_t j = i;
        for (; j > 0 && span_icmp(names[j - 1], x) > 0; j--)
            names[j] = names[j - 1];
        names[j] = x;
    }
}

struct wbuf {
    char *p;
    size_t cap, len;
    bool overflow;
};

static void w_put(struct wbuf *w, const char *s, size_t n, bool lower)
{
    if (w->overflow || w->cap - w->len <= n) { /* keep room for the NUL */
        w->overflow = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        w->p[w->len++] = lower ? to_lower(s[i]) : s[i];
}

static int w_finish(struct wbuf *w, size_t *out_len)
{
    if (w->cap > 0)
        w->p[w->overflow ? 0 : w->len] = '\0';
    *out_len = w->overflow ? 0 : w->len;
    return w->overflow ? SL_ETOOBIG : SL_OK;
}

int hc_vary_names(const struct hc_fields *resp, char *out, size_t cap, size_t *out_len)
{
    struct hc_span names[HC_VARY_FIELDS_MAX], v;
    struct wbuf w = {out, cap, 0, false};
    size_t n = 0;
    *out_len = 0;
    if (cap > 0)
        out[0] = '\0';
    for (size_t i = 0; field_get(resp, "vary", i, &v); i++) {
        int rc = vary_collect(v.p, v.len, names, &n);
        if (rc != SL_OK)
            return rc;
    }
    vary_sort(names, n);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            w_put(&w, ",", 1, false);
        w_put(&w, names[i].p, names[i].len, true);
    }
    return w_finish(&w, out_len);
}

/* "=v1, v2" for the request's lines of `name`, nothing when it has none. */
static int vary_value(struct wbuf *w, const struct hc_fields *req, const char *name)
{
    struct hc_span v;
    bool first = true;
    for (size_t i = 0; field_get(req, name, i, &v); i++) {
        for (size_t k = 0; k < v.len; k++)
            if (((unsigned char)v.p[k] < 0x20 && v.p[k] != '\t') || v.p[k] == 0x7f)
                return SL_EPARSE;
        if (i == 0)
            w_put(w, "=", 1, false);
        if (v.len == 0)
            continue;
        if (!first)
            w_put(w, ", ", 2, false);
        w_put(w, v.p, v.len, false);
        first = false;
    }
    return SL_OK;
}

int hc_vary_key(const char *vary, size_t vary_len, const struct hc_fields *req, char *out,
                size_t cap, size_t *out_len)
{
    struct hc_span names[HC_VARY_FIELDS_MAX];
    struct wbuf w = {out, cap, 0, false};
    size_t n = 0;
    *out_len = 0;
    if (cap > 0)
        out[0] = '\0';
    int rc = vary_collect(vary, vary_len, names, &n);
    if (rc != SL_OK)
        return rc;
    vary_sort(names, n);
    for (size_t i = 0; i < n; i++) {
        char name[VARY_NAME_MAX];
        for (size_t k = 0; k < names[i].len; k++)
            name[k] = to_lower(names[i].p[k]);
        name[names[i].len] = '\0';
        w_put(&w, name, names[i].len, false);
        rc = vary_value(&w, req, name);
        if (rc != SL_OK)
            return rc;
        w_put(&w, "\n", 1, false);
    }
    return w_finish(&w, out_len);
}

bool hc_vary_matches(const char *vary, size_t vary_len, const char *stored_key, size_t stored_len,
                     const struct hc_fields *req)
{
    char key[HC_VARY_KEY_MAX];
    size_t len;
    if (hc_vary_key(vary, vary_len, req, key, sizeof(key), &len) != SL_OK)
        return false;
    return len == stored_len && memcmp(key, stored_key, len) == 0;
}

/* ---- invalidation (§4.4) ----------------------------------------------------------------- */

bool hc_invalidates(enum hc_method method, unsigned status)
{
    return method == HC_METHOD_UNSAFE && status >= 200 && status <= 399;
}

/* host[:port] without the scheme's default port ("a:80" → "a" for http). */
static struct hc_span authority_norm(struct hc_span a, const char *scheme)
{
    const char *dflt = span_ieq(scheme, strlen(scheme), "https") ? ":443" : ":80";
    size_t dlen = strlen(dflt);
    if (a.len > 0 && a.p[a.len - 1] == ':')
        a.len--; /* empty port = default (RFC 3986 §3.2.3) */
    else if (a.len > dlen && memcmp(a.p + a.len - dlen, dflt, dlen) == 0)
        a.len -= dlen;
    return a;
}

static bool is_scheme_char(char c)
{
    return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
}

/* Index of the first '/', '?' or '#' at or after i (RFC 3986 §3.2: ends the authority). */
static size_t authority_end(struct hc_span v, size_t i)
{
    while (i < v.len && v.p[i] != '/' && v.p[i] != '?' && v.p[i] != '#')
        i++;
    return i;
}

/* The path (and query) of a same-origin reference, fragment dropped; false otherwise. */
static bool same_origin_path(struct hc_span v, const char *scheme, struct hc_span origin,
                             struct hc_span *path)
{
    size_t i = 0;
    if (v.len == 0 || v.p[0] != '/') { /* must be an absolute URI: scheme "://" */
        while (i < v.len && is_scheme_char(v.p[i]))
            i++;
        if (i == 0 || v.len - i < 3 || memcmp(v.p + i, "://", 3) != 0 || !span_ieq(v.p, i, scheme))
            return false;
        i++; /* at "//" */
    }
    if (v.len - i >= 2 && v.p[i] == '/' && v.p[i + 1] == '/') {
        size_t end = authority_end(v, i + 2);
        struct hc_span auth = {v.p + i + 2, end - i - 2};
        if (memchr(auth.p, '@', auth.len) != NULL ||
            span_icmp(authority_norm(auth, scheme), authority_norm(origin, scheme)) != 0)
            return false;
        i = end;
    }
    size_t end = i;
    while (end < v.len && v.p[end] != '#')
        end++;
    if (end > i && v.p[i] == '/')
        *path = (struct hc_span){v.p + i, end - i};
    else
        *path = (struct hc_span){"/", 1}; /* "http://host" or "http://host?q": the root */
    return true;
}

size_t hc_invalidation_uris(const struct hc_fields *resp, const char *scheme, const char *authority,
                            size_t authority_len, struct hc_span out[2])
{
    static const char *const names[2] = {"location", "content-location"};
    struct hc_span origin = {authority, authority_len}, v;
    size_t n = 0;
    for (size_t k = 0; k < 2; k++)
        if (field_single(resp, names[k], &v) && same_origin_path(v, scheme, origin, &out[n]))
            n++;
    return n;
}

/* ---- answering --------------------------------------------------------------------------- */

const char *hc_xcache_str(enum hc_xcache x)
{
    static const char *const s[] = {"HIT", "MISS", "STALE", "REVALIDATED", "BYPASS"};
    return (unsigned)x < sizeof(s) / sizeof(s[0]) ? s[x] : "?";
}

enum hc_field_rule hc_field_rule(const char *name, size_t len)
{
    static const struct {
        const char *name;
        enum hc_field_rule rule;
    } table[] = {
        {"connection", HC_FIELD_DROP},
        {"keep-alive", HC_FIELD_DROP},
        {"proxy-connection", HC_FIELD_DROP},
        {"te", HC_FIELD_DROP},
        {"trailer", HC_FIELD_DROP},
        {"transfer-encoding", HC_FIELD_DROP},
        {"upgrade", HC_FIELD_DROP},
        {"proxy-authenticate", HC_FIELD_DROP},
        {"proxy-authentication-info", HC_FIELD_DROP},
        {"age", HC_FIELD_GENERATED},
        {"x-cache", HC_FIELD_GENERATED},
        {"content-length", HC_FIELD_KEEP_STORED},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (span_ieq(name, len, table[i].name))
            return table[i].rule;
    return HC_FIELD_KEEP;
}
