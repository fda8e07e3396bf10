#include "prom.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define NUM_MAX 48 /* "-1.2345678901234567e-308" and the like */

static const uint64_t latency_le_us[] = {500,     1000,    2500,    5000,    10000,
                                         25000,   50000,   100000,  250000,  500000,
                                         1000000, 2500000, 5000000, 10000000};

const struct prom_le_set prom_le_latency_us = {
    latency_le_us, sizeof(latency_le_us) / sizeof(latency_le_us[0]), 1e6};

static const char *const type_names[] = {
    [PROM_COUNTER] = "counter",
    [PROM_GAUGE] = "gauge",
    [PROM_HISTOGRAM] = "histogram",
    [PROM_UNTYPED] = "untyped",
};

void prom_init(struct prom *w, struct buf *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
}

/* --- validation -------------------------------------------------------------------- */

static bool is_alpha_(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool name_ok(const char *name, bool colon)
{
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        bool ok = is_alpha_(*p) || (colon && *p == ':') || (n > 0 && is_digit(*p));
        if (!ok || n == PROM_NAME_MAX)
            return false;
    }
    return n > 0;
}

bool prom_name_is_valid(const char *name)
{
    return name && name_ok(name, true);
}

bool prom_label_name_is_valid(const char *name)
{
    return name && name_ok(name, false) && strncmp(name, "__", 2) != 0;
}

/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned n, cp, min;
        if (*p < 0x80) {
            p++;
            continue;
        }
        if ((*p & 0xE0) == 0xC0)
            n = 1, cp = *p & 0x1Fu, min = 0x80;
        else if ((*p & 0xF0) == 0xE0)
            n = 2, cp = *p & 0x0Fu, min = 0x800;
        else if ((*p & 0xF8) == 0xF0)
            n = 3, cp = *p & 0x07u, min = 0x10000;
        else
            return false;
        for (unsigned i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80) /* also stops at the NUL */
                return false;
            cp = cp << 6 | (p[i] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += n + 1;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static int check_labels(const struct prom_label *labels, size_t n, bool histogram)
{
    if (n > PROM_MAX_LABELS || (n && !labels))
        return SL_EINVAL;
    for (size_t i = 0; i < n; i++) {
        const char *name = labels[i].name;
        if (!prom_label_name_is_valid(name) || !labels[i].value || !utf8_valid(labels[i].value))
            return SL_EINVAL;
        if (histogram && strcmp(name, "le") == 0)
            return SL_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[j].name, name) == 0)
                return SL_EINVAL;
    }
    return SL_OK;
}

static bool le_set_valid(const struct prom_le_set *le)
{
    if (!le || le->n > PROM_LE_MAX || (le->n && !le->bounds))
        return false;
    if (!(le->divisor > 0) || isinf(le->divisor))
        return false;
    for (size_t i = 1; i < le->n; i++)
        if (le->bounds[i] <= le->bounds[i - 1])
            return false;
    return true;
}

/* Whether name was opened as a family in this exposition: compared against the "# TYPE"
 * lines already in the buffer, so no copy of every name is kept. */
static bool family_seen(const struct prom *w, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < w->nfamilies; i++) {
        const char *at = w->out->data + w->family_at[i];
        if (strncmp(at, name, len) == 0 && at[len] == ' ')
            return true;
    }
    return false;
}

/* --- output ------------------------------------------------------------------------ */

static void truncate_to(struct buf *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

/* Copy s, writing each byte of specials as a backslash escape. */
static int append_escaped(struct buf *b, const char *s, const char *specials)
{
    while (*s) {
        size_t run = strcspn(s, specials);
        int rc = buf_append(b, s, run);
        if (rc || !s[run])
            return rc;
        s += run;
        const char *esc = *s == '\n' ? "\\n" : *s == '"' ? "\\\"" : "\\\\";
        if ((rc = buf_append(b, esc, 2)))
            return rc;
        s++;
    }
    return SL_OK;
}

static bool num_char(char c)
{
    return is_digit(c) || c == '+' || c == '-' || c == 'e' || c == 'E';
}

static void format_value(char out[NUM_MAX], double v)
{
    if (isnan(v) || isinf(v)) {
        snprintf(out, NUM_MAX, "%s", isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[NUM_MAX];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) /* same locale both ways */
            break;
    }
    /* %g writes LC_NUMERIC's decimal point (maybe "," or several bytes); the format wants
     * '.'. Nothing else %g writes is outside [0-9eE+-]. */
    size_t j = 0;
    for (const char *p = tmp; *p;) {
        if (num_char(*p)) {
            out[j++] = *p++;
            continue;
        }
        out[j++] = '.';
        while (*p && !num_char(*p))
            p++;
    }
    out[j] = '\0';
}

static int write_labels(struct buf *b, const struct prom_label *labels, size_t n, const char *le)
{
    int rc = buf_append(b, "{", 1);
    for (size_t i = 0; i < n && !rc; i++) {
        rc = buf_appendf(b, "%s%s=\"", i ? "," : "", labels[i].name);
        if (!rc)
            rc = append_escaped(b, labels[i].value, "\\\"\n");
        if (!rc)
            rc = buf_append(b, "\"", 1);
    }
    if (!rc && le)
        rc = buf_appendf(b, "%sle=\"%s\"", n ? "," : "", le);
    return rc ? rc : buf_append(b, "}", 1);
}

/* family + suffix {labels, le} value */
static int write_sample(struct prom *w, const char *suffix, const struct prom_label *labels,
                        size_t n, const char *le, const char *value)
{
    struct buf *b = w->out;
    int rc = buf_appendf(b, "%s%s", w->family, suffix);
    if (!rc && (n || le))
        rc = write_labels(b, labels, n, le);
    return rc ? rc : buf_appendf(b, " %s\n", value);
}

static int write_family(struct buf *b, const char *name, enum prom_type type, const char *help,
                        size_t *name_at)
{
    int rc = buf_appendf(b, "# HELP %s ", name);
    if (!rc)
        rc = append_escaped(b, help, "\\\n");
    if (!rc)
        rc = buf_append_str(b, "\n# TYPE ");
    *name_at = b->len;
    return rc ? rc : buf_appendf(b, "%s %s\n", name, type_names[type]);
}

int prom_family(struct prom *w, const char *name, enum prom_type type, const char *help)
{
    if (!prom_name_is_valid(name) || (unsigned)type > PROM_UNTYPED)
        return SL_EINVAL;
    if (!help || !help[0] || !utf8_valid(help))
        return SL_EINVAL;
    if (type == PROM_COUNTER && !ends_with(name, "_total"))
        return SL_EINVAL;
    if (family_seen(w, name))
        return SL_EEXISTS;
    if (w->nfamilies == PROM_MAX_FAMILIES)
        return SL_ERANGE;
    size_t mark = w->out->len, name_at;
    int rc = write_family(w->out, name, type, help, &name_at);
    if (rc) {
        truncate_to(w->out, mark);
        return rc;
    }
    w->family_at[w->nfamilies++] = name_at;
    memcpy(w->family, name, strlen(name) + 1);
    w->type = type;
    return SL_OK;
}

int prom_sample(struct prom *w, const struct prom_label *labels, size_t nlabels, double value)
{
    if (!w->family[0] || w->type == PROM_HISTOGRAM)
        return SL_EINVAL;
    int rc = check_labels(labels, nlabels, false);
    if (rc)
        return rc;
    if (w->type == PROM_COUNTER && !(value >= 0))
        return SL_ERANGE;
    char num[NUM_MAX];
    format_value(num, value);
    size_t mark = w->out->len;
    if ((rc = write_sample(w, "", labels, nlabels, NULL, num)))
        truncate_to(w->out, mark);
    return rc;
}

static int write_histogram(struct prom *w, const struct prom_label *labels, size_t n,
                           const uint64_t *cum, uint64_t sum, const struct prom_le_set *le)
{
    char num[NUM_MAX], bound[NUM_MAX];
    int rc = SL_OK;
    for (size_t i = 0; i <= le->n && !rc; i++) { /* i == le->n: +Inf */
        if (i < le->n)
            format_value(bound, (double)le->bounds[i] / le->divisor);
        snprintf(num, sizeof(num), "%" PRIu64, cum[i]);
        rc = write_sample(w, "_bucket", labels, n, i < le->n ? bound : "+Inf", num);
    }
    format_value(bound, (double)sum / le->divisor);
    if (!rc)
        rc = write_sample(w, "_sum", labels, n, NULL, bound);
    snprintf(num, sizeof(num), "%" PRIu64, cum[le->n]);
    return rc ? rc : write_sample(w, "_count", labels, n, NULL, num);
}

int prom_histogram(struct prom *w, const struct prom_label *labels, size_t nlabels,
                   const struct histogram *h, const struct prom_le_set *le)
{
    if (!w->family[0] || w->type != PROM_HISTOGRAM || !h || !le_set_valid(le))
        return SL_EINVAL;
    int rc = check_labels(labels, nlabels, true);
    if (rc)
        return rc;
    /* One pass over a possibly live histogram: the buckets, +Inf and _count agree. */
    uint64_t cum[PROM_LE_MAX + 1];
    if ((rc = histogram_le_counts(h, le->bounds, le->n, cum)))
        return rc;
    uint64_t sum = histogram_sum(h);
    size_t mark = w->out->len;
    if ((rc = write_histogram(w, labels, nlabels, cum, sum, le)))
        truncate_to(w->out, mark);
    return rc;
}
