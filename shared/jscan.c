#include "jscan.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define NUMBER_TEXT_MAX 128 /* jscan_double: longer number texts are SL_ERANGE */

static int syntax_at(struct jscan *js, const char *at, const char *what)
{
    if (!js->failed) {
        js->failed = true;
        snprintf(js->err, sizeof(js->err), "offset %zu: %s", (size_t)(at - js->text), what);
    }
    return SL_EPARSE;
}

static int syntax(struct jscan *js, const char *what)
{
    return syntax_at(js, js->p, what);
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static bool is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static void skip_ws(struct jscan *js)
{
    while (js->p < js->end && is_ws(*js->p))
        js->p++;
}

void jscan_init(struct jscan *js, const char *text, size_t len)
{
    memset(js, 0, sizeof(*js));
    js->text = js->p = text;
    js->end = text + len;
}

enum jscan_type jscan_peek(struct jscan *js)
{
    if (js->failed)
        return JSCAN_NONE;
    skip_ws(js);
    if (js->p == js->end)
        return JSCAN_NONE;
    switch (*js->p) {
    case '{': return JSCAN_OBJECT;
    case '[': return JSCAN_ARRAY;
    case '"': return JSCAN_STRING;
    case 't':
    case 'f': return JSCAN_BOOL;
    case 'n': return JSCAN_NULL;
    default: return *js->p == '-' || is_digit(js->p, js->end) ? JSCAN_NUMBER : JSCAN_NONE;
    }
}

/* The next value's type, or SL_EPARSE when there is no value at all. */
static int expect(struct jscan *js, enum jscan_type want)
{
    if (js->failed)
        return SL_EPARSE;
    enum jscan_type t = jscan_peek(js);
    if (t == JSCAN_NONE)
        return syntax(js, js->p == js->end ? "unexpected end of the text" : "expected a value");
    return t == want ? SL_OK : SL_EINVAL;
}

static bool literal(struct jscan *js, const char *word, size_t n)
{
    if ((size_t)(js->end - js->p) < n || memcmp(js->p, word, n) != 0)
        return false;
    js->p += n;
    return true;
}

bool jscan_null(struct jscan *js)
{
    return jscan_peek(js) == JSCAN_NULL && literal(js, "null", 4);
}

int jscan_bool(struct jscan *js, bool *out)
{
    int rc = expect(js, JSCAN_BOOL);
    if (rc)
        return rc;
    if (literal(js, "true", 4))
        *out = true;
    else if (literal(js, "false", 5))
        *out = false;
    else
        return syntax(js, "invalid literal");
    return SL_OK;
}

/* ---- containers ---------------------------------------------------------------------------- */

static int enter(struct jscan *js, enum jscan_type type)
{
    int rc = expect(js, type);
    if (rc)
        return rc;
    if (js->depth == JSCAN_DEPTH_MAX)
        return syntax(js, "nested too deeply");
    js->p++;
    js->fresh |= UINT64_C(1) << js->depth;
    js->depth++;
    return SL_OK;
}

int jscan_object(struct jscan *js)
{
    return enter(js, JSCAN_OBJECT);
}

int jscan_array(struct jscan *js)
{
    return enter(js, JSCAN_ARRAY);
}

/* Before the next member or element: 1 if one follows (a ',' consumed when needed), 0 when
 * the container ends (closer consumed), SL_EPARSE. */
static int next_in(struct jscan *js, char closer)
{
    if (js->failed)
        return SL_EPARSE;
    if (!js->depth)
        return syntax(js, "not inside an object or array");
    skip_ws(js);
    if (js->p == js->end)
        return syntax(js, "unexpected end of the text");
    uint64_t bit = UINT64_C(1) << (js->depth - 1);
    bool first = js->fresh & bit;
    js->fresh &= ~bit;
    if (*js->p == closer) {
        js->p++;
        js->depth--;
        return 0;
    }
    if (!first) {
        if (*js->p != ',')
            return syntax(js, closer == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
        js->p++;
        skip_ws(js);
    }
    return 1;
}

int jscan_element(struct jscan *js)
{
    return next_in(js, ']');
}

/* ---- strings --------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence of 2..4 bytes at p, 0 if it is not one. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlongs */
        hi = c == 0xED ? 0x9F : 0xBF; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF; /* <= U+10FFFF */
    } else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

static size_t utf8_put(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static bool hex4(const char *p, const char *end, uint32_t *out)
{
    if (end - p < 4)
        return false;
    *out = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned v = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (v == 16)
            return false;
        *out = *out << 4 | v;
    }
    return true;
}

/* The escape after a backslash at *pp (pp past the backslash): its code point; *pp moves
 * past it. 0 on a bad escape (U+0000 is refused too). */
static uint32_t unescape(const char **pp, const char *end)
{
    const char *p = *pp;
    uint32_t cp = 0, lo;
    if (p >= end)
        return 0;
    switch (*p) {
    case '"': cp = '"'; break;
    case '\\': cp = '\\'; break;
    case '/': cp = '/'; break;
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u':
        if (!hex4(p + 1, end, &cp))
            return 0;
        p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return 0; /* a low surrogate alone */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end - p < 7 || p[1] != '\\' || p[2] != 'u' || !hex4(p + 3, end, &lo) ||
                lo < 0xDC00 || lo > 0xDFFF)
                return 0;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        break;
    default: return 0;
    }
    *pp = p + 1;
    return cp;
}

/* At the opening quote. buf NULL: check the grammar only. Otherwise decode and check
 * UTF-8, writing whole characters while they fit in size - 1 bytes; *len the full length. */
static int read_string(struct jscan *js, char *buf, size_t size, size_t *len)
{
    const char *p = js->p + 1, *end = js->end;
    size_t n = 0, w = 0;
    bool full = !buf || !size;
    for (;;) {
        if (p >= end)
            return syntax_at(js, p, "unterminated string");
        unsigned char c = (unsigned char)*p;
        char enc[4];
        size_t k;
        if (c == '"')
            break;
        if (c < 0x20)
            return syntax_at(js, p, "control character in a string");
        if (c == '\\') {
            const char *at = p++;
            uint32_t cp = unescape(&p, end);
            if (!cp)
                return syntax_at(js, at, "invalid escape");
            if (!buf)
                continue;
            k = utf8_put(cp, enc);
        } else if (!buf || c < 0x80) {
            p++;
            n++;
            if (!full && w + 1 < size)
                buf[w++] = (char)c;
            else
                full = true;
            continue;
        } else {
            k = utf8_seq((const unsigned char *)p, (const unsigned char *)end);
            if (!k)
                return syntax_at(js, p, "invalid UTF-8 in a string");
            memcpy(enc, p, k);
            p += k;
        }
        n += k;
        if (!full && w + k < size) {
            memcpy(buf + w, enc, k);
            w += k;
        } else {
            full = true;
        }
    }
    js->p = p + 1;
    if (buf && size)
        buf[w] = '\0';
    if (len)
        *len = n;
    return SL_OK;
}

int jscan_string(struct jscan *js, char *buf, size_t size, size_t *len)
{
    int rc = expect(js, JSCAN_STRING);
    return rc ? rc : read_string(js, buf, size, len);
}

/* key NULL: the key is checked, not decoded (jscan_skip). */
static int next_member(struct jscan *js, char *key, size_t size, size_t *len)
{
    int more = next_in(js, '}');
    if (more != 1)
        return more;
    if (js->p == js->end || *js->p != '"')
        return syntax(js, "expected a key");
    int rc = read_string(js, key, size, len);
    if (rc)
        return rc;
    skip_ws(js);
    if (js->p == js->end || *js->p != ':')
        return syntax(js, "expected ':'");
    js->p++;
    return 1;
}

int jscan_member(struct jscan *js, char *key, size_t size, size_t *len)
{
    size_t ignored;
    return next_member(js, key, size, len ? len : &ignored);
}

/* ---- numbers ----------------------------------------------------------------------------------- */

/* The number text at js->p: its end and whether it is an integer; SL_EPARSE. */
static int number_text(struct jscan *js, const char **endp, bool *integer)
{
    const char *p = js->p, *end = js->end;
    *integer = true;
    if (p < end && *p == '-')
        p++;
    if (!is_digit(p, end))
        return syntax_at(js, p, "invalid number");
    if (*p == '0')
        p++;
    else
        while (is_digit(p, end))
            p++;
    if (p < end && *p == '.') {
        *integer = false;
        if (!is_digit(++p, end))
            return syntax_at(js, p, "invalid number");
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        *integer = false;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return syntax_at(js, p, "invalid number");
        while (is_digit(p, end))
            p++;
    }
    *endp = p;
    return SL_OK;
}

/* The next value is a number: its text's end and whether it is an integer. */
static int number_next(struct jscan *js, const char **endp, bool *integer)
{
    int rc = expect(js, JSCAN_NUMBER);
    return rc ? rc : number_text(js, endp, integer);
}

int jscan_int(struct jscan *js, int64_t *out)
{
    const char *end;
    bool integer;
    int rc = number_next(js, &end, &integer);
    if (rc)
        return rc;
    if (!integer)
        return SL_EINVAL;
    const char *p = js->p;
    bool neg = *p == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (p += neg; p < end; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return SL_ERANGE;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    js->p = end;
    return SL_OK;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

int jscan_double(struct jscan *js, double *out)
{
    const char *end;
    bool integer;
    int rc = number_next(js, &end, &integer);
    if (rc)
        return rc;
    char text[NUMBER_TEXT_MAX];
    size_t n = (size_t)(end - js->p);
    pthread_once(&c_locale_once, c_locale_init);
    if (n >= sizeof(text) || !c_locale)
        return SL_ERANGE;
    memcpy(text, js->p, n);
    text[n] = '\0';
    double v = strtod_l(text, NULL, c_locale);
    if (isinf(v))
        return SL_ERANGE;
    *out = v;
    js->p = end;
    return SL_OK;
}

/* ---- the rest ------------------------------------------------------------------------------------ */

int jscan_skip(struct jscan *js)
{
    const char *end;
    bool integer;
    int rc, more;
    switch (jscan_peek(js)) {
    case JSCAN_OBJECT:
        rc = jscan_object(js);
        while (!rc && (more = next_member(js, NULL, 0, NULL)) == 1)
            rc = jscan_skip(js);
        return rc ? rc : js->failed ? SL_EPARSE : SL_OK;
    case JSCAN_ARRAY:
        rc = jscan_array(js);
        while (!rc && (more = jscan_element(js)) == 1)
            rc = jscan_skip(js);
        return rc ? rc : js->failed ? SL_EPARSE : SL_OK;
    case JSCAN_STRING: return read_string(js, NULL, 0, NULL);
    case JSCAN_NUMBER:
        rc = number_text(js, &end, &integer);
        if (!rc)
            js->p = end;
        return rc;
    case JSCAN_BOOL: {
        bool b;
        return jscan_bool(js, &b);
    }
    case JSCAN_NULL: return jscan_null(js) ? SL_OK : syntax(js, "invalid literal");
    case JSCAN_NONE: break;
    }
    return expect(js, JSCAN_NULL); /* the syntax error (or the sticky one) */
}

int jscan_finish(struct jscan *js)
{
    if (js->failed)
        return SL_EPARSE;
    if (js->depth)
        return syntax(js, "unexpected end of the text");
    const char *p = js->text;
    while (p < js->end && is_ws(*p))
        p++;
    if (p == js->end)
        return syntax(js, "no value");
    skip_ws(js);
    return js->p == js->end ? SL_OK : syntax(js, "text after the value");
}

const char *jscan_error(const struct jscan *js)
{
    return js->err;
}
