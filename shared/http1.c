#include "http1.h"

#include <assert.h>
#include <string.h>

const struct http1_limits http1_limits_default = {
    .max_header_bytes = 16 * 1024,
    .max_headers = 100,
    .max_body_bytes = 0,
    .max_chunk_size = (uint64_t)1 << 30,
    .max_chunk_ext_bytes = 4096,
};

/* ---- character classes, one table lookup per byte ------------------------------------ */

enum {
    C_TCHAR = 1 << 0,  /* token (RFC 9110 §5.6.2) */
    C_FIELD = 1 << 1,  /* field-vchar: VCHAR / obs-text (RFC 9110 §5.5) */
    C_WS = 1 << 2,     /* SP / HTAB */
    C_TARGET = 1 << 3, /* request-target: VCHAR but '#' (RFC 9112 §3.2) */
    C_HEX = 1 << 4,
    C_HOST = 1 << 5,   /* uri-host [":" port] (RFC 3986 §3.2.2): reg-name, IP literal */
    C_SCHEME = 1 << 6, /* scheme characters after the first (RFC 3986 §3.1) */
};

#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_VCHAR(c) ((c) >= 0x21 && (c) <= 0x7e)
#define IS_TCHAR(c)                                                                                \
    (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||         \
     (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||          \
     (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define IS_HOSTC(c)                                                                                \
    (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' ||         \
     (c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||          \
     (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=' || (c) == ':' ||           \
     (c) == '[' || (c) == ']' || (c) == '%')
#define IS_HEX(c) (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))
#define CLASS(c)                                                                                   \
    ((IS_TCHAR(c) ? C_TCHAR : 0) | ((IS_VCHAR(c) || (c) >= 0x80) ? C_FIELD : 0) |                  \
     (((c) == ' ' || (c) == '\t') ? C_WS : 0) | ((IS_VCHAR(c) && (c) != '#') ? C_TARGET : 0) |     \
     (IS_HEX(c) ? C_HEX : 0) | (IS_HOSTC(c) ? C_HOST : 0) |                                        \
     ((IS_ALPHA(c) || IS_DIGIT(c) || (c) == '+' || (c) == '-' || (c) == '.') ? C_SCHEME : 0))
#define R4(n)  CLASS(n), CLASS((n) + 1), CLASS((n) + 2), CLASS((n) + 3)
#define R16(n) R4(n), R4((n) + 4), R4((n) + 8), R4((n) + 12)
#define R64(n) R16(n), R16((n) + 16), R16((n) + 32), R16((n) + 48)
static const uint8_t ctab[256] = {R64(0), R64(64), R64(128), R64(192)};

static size_t skip(const unsigned char *b, size_t i, size_t end, unsigned cls)
{
    while (i < end && (ctab[b[i]] & cls))
        i++;
    return i;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* s[0..n) equals the lowercase literal lit, ignoring case. */
static bool ieq(const unsigned char *s, size_t n, const char *lit)
{
    if (strlen(lit) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

static bool ieq_mem(const unsigned char *a, const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

static bool all_of(const unsigned char *s, size_t n, unsigned cls)
{
    return skip(s, 0, n, cls) == n;
}

static struct http1_span mkspan(size_t off, size_t end)
{
    return (struct http1_span){(uint32_t)off, (uint32_t)(end - off)};
}

/* Records err in *rc and returns the offending offset (the scanners' error convention). */
static size_t err_at(int *rc, int err, size_t at)
{
    *rc = err;
    return at;
}

/* ---- parser states ------------------------------------------------------------------- */

enum state {
    /* start line */
    S_START,
    S_START_LF, /* requests: CR of an empty line before the request-line */
    S_METHOD,
    S_TARGET,
    S_VERSION,
    S_RESP_VERSION,
    S_STATUS,
    S_REASON,
    S_LINE_LF,
    /* a field section: the head's fields or the trailers (in_trailers) */
    S_FIELD_LINE,
    S_NAME,
    S_OWS,
    S_VALUE,
    S_VALUE_LF,
    S_END_LF,
    /* body */
    S_BODY_LENGTH,
    S_BODY_CLOSE, /* until close, or a tunnel */
    S_CHUNK_SIZE,
    S_CHUNK_BWS,
    S_CHUNK_EXT,
    S_CHUNK_SIZE_LF,
    S_CHUNK_DATA,
    S_CHUNK_DATA_CR,
    S_CHUNK_DATA_LF,
    S_DONE,
};

void http1_parser_init(struct http1_parser *p, enum http1_kind kind,
                       const struct http1_limits *limits, struct http1_header *fields,
                       unsigned fields_cap)
{
    if (!limits)
        limits = &http1_limits_default;
    assert(limits->max_header_bytes <= UINT32_MAX);
    assert(!fields || fields_cap >= limits->max_headers);
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->request_method = HTTP1_METHOD_GET;
    p->limits = *limits;
    p->fields = fields;
    p->fields_cap = fields_cap;
    p->state = S_START;
}

void http1_parser_reset_for_next(struct http1_parser *p)
{
    const struct http1_limits limits = p->limits;
    enum http1_method method = p->request_method;
    http1_parser_init(p, p->kind, &limits, p->fields, p->fields_cap);
    p->request_method = method;
}

void http1_parser_set_request_method(struct http1_parser *p, enum http1_method method)
{
    p->request_method = method;
}

/* ---- start line ---------------------------------------------------------------------- */

#define LIT(s) s, sizeof(s) - 1

static const struct {
    const char *name;
    size_t len;
    enum http1_method method;
} methods[] = {
    {LIT("GET"), HTTP1_METHOD_GET},         {LIT("HEAD"), HTTP1_METHOD_HEAD},
    {LIT("POST"), HTTP1_METHOD_POST},       {LIT("PUT"), HTTP1_METHOD_PUT},
    {LIT("DELETE"), HTTP1_METHOD_DELETE},   {LIT("CONNECT"), HTTP1_METHOD_CONNECT},
    {LIT("OPTIONS"), HTTP1_METHOD_OPTIONS}, {LIT("TRACE"), HTTP1_METHOD_TRACE},
    {LIT("PATCH"), HTTP1_METHOD_PATCH},
};

/* Methods are case-sensitive (RFC 9110 §9.1). */
static void set_method(struct http1_parser *p, const unsigned char *b, size_t end)
{
    size_t n = end - p->tok;
    p->msg.method_name = mkspan(p->tok, end);
    p->msg.method = HTTP1_METHOD_OTHER;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (methods[i].len == n && memcmp(methods[i].name, b + p->tok, n) == 0)
            p->msg.method = methods[i].method;
}

/* "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3): malformed → bad, major other than 1 → 505. */
static int parse_version(const unsigned char *s, size_t n, unsigned *minor, int bad)
{
    if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || !IS_DIGIT(s[5]) || s[6] != '.' || !IS_DIGIT(s[7]))
        return bad;
    if (s[5] != '1')
        return HTTP1_E_VERSION;
    *minor = (unsigned)(s[7] - '0');
    return 0;
}

/* absolute-form with an authority: scheme "://" ... (RFC 3986 §3) */
static bool is_absolute(const unsigned char *t, size_t n)
{
    if (!IS_ALPHA(t[0]))
        return false;
    size_t i = skip(t, 1, n, C_SCHEME);
    return n - i >= 3 && memcmp(t + i, "://", 3) == 0;
}

/* authority-form: uri-host ":" port, port 1*DIGIT (RFC 9112 §3.2.3) */
static bool is_authority(const unsigned char *t, size_t n)
{
    if (!all_of(t, n, C_HOST))
        return false;
    size_t colon = n;
    while (colon > 0 && IS_DIGIT(t[colon - 1]))
        colon--;
    return colon >= 2 && colon < n && t[colon - 1] == ':';
}

/* RFC 9112 §3.2: which form the target has, and whether the method allows it. */
static int check_target(struct http1_parser *p, const unsigned char *b)
{
    struct http1_message *m = &p->msg;
    const unsigned char *t = b + m->target.off;
    size_t n = m->target.len;
    if (m->method == HTTP1_METHOD_CONNECT) {
        m->target_form = HTTP1_TARGET_AUTHORITY;
        return is_authority(t, n) ? 0 : HTTP1_E_TARGET;
    }
    if (t[0] == '/') {
        m->target_form = HTTP1_TARGET_ORIGIN;
    } else if (n == 1 && t[0] == '*') {
        m->target_form = HTTP1_TARGET_ASTERISK;
        if (m->method != HTTP1_METHOD_OPTIONS)
            return HTTP1_E_TARGET;
    } else if (is_absolute(t, n)) {
        m->target_form = HTTP1_TARGET_ABSOLUTE;
    } else {
        return HTTP1_E_TARGET;
    }
    return 0;
}

/* request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 §3) */
static size_t scan_request_line(struct http1_parser *p, const unsigned char *b, size_t i,
                                size_t end, int *rc)
{
    int e;
    while (i < end) {
        switch (p->state) {
        case S_START: /* RFC 9112 §2.2: ignore empty lines before the request-line */
            if (b[i] == '\r') {
                p->state = S_START_LF;
                i++;
            } else if (b[i] == '\n') {
                return err_at(rc, HTTP1_E_BARE_LF, i);
            } else {
                p->tok = (uint32_t)i;
                p->state = S_METHOD;
            }
            break;
        case S_START_LF:
            if (b[i] != '\n')
                return err_at(rc, HTTP1_E_BARE_CR, i);
            p->state = S_START;
            i++;
            break;
        case S_METHOD:
            i = skip(b, i, end, C_TCHAR);
            if (i == end)
                return i;
            if (b[i] != ' ' || i == p->tok)
                return err_at(rc, HTTP1_E_REQUEST_LINE, i);
            set_method(p, b, i);
            p->tok = (uint32_t)++i;
            p->state = S_TARGET;
            break;
        case S_TARGET:
            i = skip(b, i, end, C_TARGET);
            if (i == end)
                return i;
            if (b[i] != ' ' || i == p->tok) /* "GET /\r\n" (HTTP/0.9) is a bad line */
                return err_at(rc, ctab[b[i]] & C_FIELD ? HTTP1_E_TARGET : HTTP1_E_REQUEST_LINE, i);
            p->msg.target = mkspan(p->tok, i);
            p->tok = (uint32_t)++i;
            p->state = S_VERSION;
            break;
        case S_VERSION:
            i = skip(b, i, end, C_TARGET);
            if (i == end)
                return i;
            if (b[i] != '\r')
                return err_at(rc, b[i] == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_REQUEST_LINE, i);
            e = parse_version(b + p->tok, i - p->tok, &p->msg.version_minor, HTTP1_E_REQUEST_LINE);
            if (e == 0)
                e = check_target(p, b); /* after the version: an h2 preface gets 505 */
            if (e < 0)
                return err_at(rc, e, i);
            p->state = S_LINE_LF;
            i++;
            break;
        default: /* S_LINE_LF */
            if (b[i] != '\n')
                return err_at(rc, HTTP1_E_BARE_CR, i);
            p->state = S_FIELD_LINE;
            return i + 1;
        }
    }
    return i;
}

/* The three status digits end at SP or CR; RFC 9110 §15: 100–599. */
static size_t status_end(struct http1_parser *p, const unsigned char *b, size_t i, int *rc)
{
    const unsigned char *d = b + p->tok;
    unsigned status = (unsigned)((d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0'));
    if (status < 100 || status > 599 || (b[i] != ' ' && b[i] != '\r'))
        return err_at(rc, b[i] == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_STATUS_LINE, i);
    p->msg.status = status;
    if (b[i] == '\r') { /* no SP before an empty reason: tolerated */
        p->msg.reason = mkspan(i, i);
        p->state = S_LINE_LF;
    } else {
        p->tok = (uint32_t)(i + 1);
        p->state = S_REASON;
    }
    return i + 1;
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (RFC 9112 §4) */
static size_t scan_status_line(struct http1_parser *p, const unsigned char *b, size_t i, size_t end,
                               int *rc)
{
    int e;
    while (i < end) {
        switch (p->state) {
        case S_START:
            p->tok = (uint32_t)i;
            p->state = S_RESP_VERSION;
            break;
        case S_RESP_VERSION:
            i = skip(b, i, end, C_TARGET);
            if (i == end)
                return i;
            e = b[i] != ' ' ? HTTP1_E_STATUS_LINE
                            : parse_version(b + p->tok, i - p->tok, &p->msg.version_minor,
                                            HTTP1_E_STATUS_LINE);
            if (e < 0)
                return err_at(rc, e, i);
            p->tok = (uint32_t)++i;
            p->state = S_STATUS;
            break;
        case S_STATUS:
            while (i < end && i - p->tok < 3 && IS_DIGIT(b[i]))
                i++;
            if (i == end)
                return i;
            if (i - p->tok < 3)
                return err_at(rc, HTTP1_E_STATUS_LINE, i);
            i = status_end(p, b, i, rc);
            if (*rc < 0)
                return i;
            break;
        case S_REASON: /* reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ) */
            i = skip(b, i, end, C_FIELD | C_WS);
            if (i == end)
                return i;
            if (b[i] != '\r')
                return err_at(rc, b[i] == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_STATUS_LINE, i);
            p->msg.reason = mkspan(p->tok, i);
            p->state = S_LINE_LF;
            i++;
            break;
        default: /* S_LINE_LF */
            if (b[i] != '\n')
                return err_at(rc, HTTP1_E_BARE_CR, i);
            p->state = S_FIELD_LINE;
            return i + 1;
        }
    }
    return i;
}

/* ---- field values the parser interprets ---------------------------------------------- */

/* Next member of a #list (RFC 9110 §5.6.1) in v[*pos..n), OWS trimmed, empty members
 * skipped; false at the end. */
static bool list_next(const unsigned char *v, size_t n, size_t *pos, size_t *off, size_t *len)
{
    size_t i = *pos;
    while (i < n && (is_ws(v[i]) || v[i] == ','))
        i++;
    if (i == n) {
        *pos = n;
        return false;
    }
    size_t start = i;
    while (i < n && v[i] != ',')
        i++;
    size_t end = i;
    while (is_ws(v[end - 1]))
        end--;
    *pos = i;
    *off = start;
    *len = end - start;
    return true;
}

typedef int (*field_fn)(struct http1_parser *p, const unsigned char *v, struct http1_span value);

/* RFC 9112 §3.2: exactly one Host in a request; its value a uri-host [":" port]. */
static int on_host(struct http1_parser *p, const unsigned char *v, struct http1_span value)
{
    if (p->kind != HTTP1_REQUEST)
        return 0;
    if (p->msg.has_host)
        return HTTP1_E_HOST_DUP;
    if (!all_of(v, value.len, C_HOST))
        return HTTP1_E_HOST;
    p->msg.has_host = true;
    p->msg.host = value;
    return 0;
}

/* RFC 9110 §8.6 Content-Length = 1*DIGIT; one line only (RFC 9112 §6.3 item 5). */
static int on_content_length(struct http1_parser *p, const unsigned char *v,
                             struct http1_span value)
{
    if (p->msg.has_content_length)
        return HTTP1_E_DUP_CONTENT_LENGTH;
    if (value.len == 0)
        return HTTP1_E_CONTENT_LENGTH;
    uint64_t n = 0;
    for (size_t i = 0; i < value.len; i++) {
        if (!IS_DIGIT(v[i]))
            return HTTP1_E_CONTENT_LENGTH;
        unsigned d = (unsigned)(v[i] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return HTTP1_E_CONTENT_LENGTH;
        n = n * 10 + d;
    }
    p->msg.has_content_length = true;
    p->msg.content_length = n;
    return 0;
}

/* RFC 9112 §6.1: the codings of every Transfer-Encoding line, in order; checked at the
 * end of the head. A coding with parameters is not accepted. */
static int on_transfer_encoding(struct http1_parser *p, const unsigned char *v,
                                struct http1_span value)
{
    size_t pos = 0, off, len;
    p->saw_te = true;
    while (list_next(v, value.len, &pos, &off, &len)) {
        if (!all_of(v + off, len, C_TCHAR))
            return HTTP1_E_TRANSFER_ENCODING;
        p->te_codings++;
        p->te_chunked_last = ieq(v + off, len, "chunked");
        p->te_chunked += p->te_chunked_last;
    }
    return 0;
}

/* RFC 9110 §7.6.1: connection options; each names a field that is hop-by-hop. */
static int on_connection(struct http1_parser *p, const unsigned char *v, struct http1_span value)
{
    size_t pos = 0, off, len;
    while (list_next(v, value.len, &pos, &off, &len)) {
        const unsigned char *t = v + off;
        if (!all_of(t, len, C_TCHAR) || p->nconn == HTTP1_CONNECTION_TOKENS_MAX)
            return HTTP1_E_CONNECTION;
        if (ieq(t, len, "content-length") || ieq(t, len, "host"))
            return HTTP1_E_CONNECTION;
        p->conn_close |= ieq(t, len, "close");
        p->conn_keep_alive |= ieq(t, len, "keep-alive");
        p->conn_upgrade |= ieq(t, len, "upgrade");
        p->conn[p->nconn++] = (struct http1_span){(uint32_t)(value.off + off), (uint32_t)len};
        p->msg.has_connection = true;
    }
    return 0;
}

static int on_expect(struct http1_parser *p, const unsigned char *v, struct http1_span value)
{
    if (p->kind == HTTP1_REQUEST && ieq(v, value.len, "100-continue"))
        p->saw_expect = true;
    return 0;
}

static int on_upgrade(struct http1_parser *p, const unsigned char *v, struct http1_span value)
{
    (void)v;
    (void)value;
    p->saw_upgrade = true;
    return 0;
}

static const struct known_field {
    const char *name; /* lowercase */
    size_t len;
    uint8_t id;
    bool hop_by_hop; /* RFC 9110 §7.6.1 */
    field_fn handle;
} known_fields[] = {
    {LIT("host"), HTTP1_FIELD_HOST, false, on_host},
    {LIT("content-length"), HTTP1_FIELD_CONTENT_LENGTH, false, on_content_length},
    {LIT("transfer-encoding"), HTTP1_FIELD_TRANSFER_ENCODING, true, on_transfer_encoding},
    {LIT("connection"), HTTP1_FIELD_CONNECTION, true, on_connection},
    {LIT("keep-alive"), HTTP1_FIELD_KEEP_ALIVE, true, NULL},
    {LIT("proxy-connection"), HTTP1_FIELD_PROXY_CONNECTION, true, NULL},
    {LIT("te"), HTTP1_FIELD_TE, true, NULL},
    {LIT("trailer"), HTTP1_FIELD_TRAILER, true, NULL},
    {LIT("upgrade"), HTTP1_FIELD_UPGRADE, true, on_upgrade},
    {LIT("expect"), HTTP1_FIELD_EXPECT, false, on_expect},
};

static const struct known_field *known_field_find(const unsigned char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(known_fields) / sizeof(known_fields[0]); i++)
        if (known_fields[i].len == n &&
            ieq_mem(name, (const unsigned char *)known_fields[i].name, n))
            return &known_fields[i];
    return NULL;
}

/* A head field line is complete: record it and interpret it. */
static int field_done(struct http1_parser *p, const unsigned char *b)
{
    struct http1_header h = {
        .name = {p->tok, p->name_len},
        .value = {p->value_off, p->value_end - p->value_off},
    };
    const struct known_field *k = known_field_find(b + h.name.off, h.name.len);
    h.id = k ? k->id : HTTP1_FIELD_OTHER;
    h.hop_by_hop = k && k->hop_by_hop;
    if (p->fields)
        p->fields[p->msg.nfields] = h;
    p->msg.nfields++;
    return k && k->handle ? k->handle(p, b + h.value.off, h.value) : 0;
}

/* ---- field sections (RFC 9112 §5), shared by the head and the trailers ----------------- */

static int line_start_error(unsigned char c)
{
    if (is_ws(c))
        return HTTP1_E_OBS_FOLD; /* obs-fold (§5.2), or SP after the start line (§2.2) */
    return c == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_HEADER_NAME;
}

/* field-line = field-name ":" OWS field-value OWS CRLF, up to the empty line. Trailers
 * arrive as a stream (earlier bytes are gone), so there only the syntax is checked. */
static size_t scan_fields(struct http1_parser *p, const unsigned char *b, size_t i, size_t end,
                          int *rc)
{
    int e;
    while (i < end) {
        switch (p->state) {
        case S_FIELD_LINE:
            if (b[i] == '\r') {
                p->state = S_END_LF;
                i++;
                break;
            }
            if (!(ctab[b[i]] & C_TCHAR))
                return err_at(rc, line_start_error(b[i]), i);
            if (p->nlines++ == p->limits.max_headers)
                return err_at(rc, HTTP1_E_TOO_MANY_HEADERS, i);
            p->tok = (uint32_t)i++;
            p->state = S_NAME;
            break;
        case S_NAME:
            i = skip(b, i, end, C_TCHAR);
            if (i == end)
                return i;
            if (b[i] != ':') /* includes whitespace before the colon (§5.1) */
                return err_at(rc, HTTP1_E_HEADER_NAME, i);
            p->name_len = (uint32_t)(i - p->tok);
            p->state = S_OWS;
            i++;
            break;
        case S_OWS:
            i = skip(b, i, end, C_WS);
            if (i == end)
                return i;
            p->value_off = (uint32_t)i;
            p->state = S_VALUE;
            break;
        case S_VALUE:
            i = skip(b, i, end, C_FIELD | C_WS);
            if (i == end)
                return i;
            if (b[i] != '\r')
                return err_at(rc, b[i] == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_HEADER_VALUE, i);
            if (!p->in_trailers) { /* trim trailing OWS; the head bytes are all there */
                size_t v = i;
                while (v > p->value_off && is_ws(b[v - 1]))
                    v--;
                p->value_end = (uint32_t)v;
            }
            p->state = S_VALUE_LF;
            i++;
            break;
        case S_VALUE_LF:
            if (b[i] != '\n')
                return err_at(rc, HTTP1_E_BARE_CR, i);
            e = p->in_trailers ? 0 : field_done(p, b);
            if (e < 0)
                return err_at(rc, e, i);
            p->state = S_FIELD_LINE;
            i++;
            break;
        default: /* S_END_LF */
            if (b[i] != '\n')
                return err_at(rc, HTTP1_E_BARE_CR, i);
            *rc = HTTP1_DONE;
            return i + 1;
        }
    }
    return i;
}

/* ---- end of the head: framing (RFC 9112 §6) ------------------------------------------- */

static int check_framing(const struct http1_parser *p)
{
    if (!p->saw_te)
        return 0;
    if (p->msg.has_content_length)
        return HTTP1_E_CL_AND_TE; /* §6.3 item 3: a smuggling signal, never "TE wins" */
    if (p->msg.version_minor == 0)
        return HTTP1_E_TRANSFER_ENCODING; /* §6.1: faulty framing in HTTP/1.0 */
    if (p->te_codings == 0 || p->te_chunked > 1)
        return HTTP1_E_TRANSFER_ENCODING; /* §7: chunked at most once */
    if (p->kind == HTTP1_REQUEST && !p->te_chunked_last)
        return HTTP1_E_TRANSFER_ENCODING; /* §6.3 item 4: length unknowable → 400 */
    if (p->kind == HTTP1_REQUEST && p->te_codings > 1)
        return HTTP1_E_UNSUPPORTED_TE; /* §6.1: a coding we do not implement → 501 */
    return 0;
}

static enum http1_body request_body(const struct http1_parser *p)
{
    if (p->saw_te)
        return HTTP1_BODY_CHUNKED;
    return p->msg.content_length ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
}

/* §6.3, in its order. */
static enum http1_body response_body(const struct http1_parser *p)
{
    unsigned s = p->msg.status;
    if (s == 101 || (p->request_method == HTTP1_METHOD_CONNECT && s / 100 == 2))
        return HTTP1_BODY_TUNNEL;
    if (p->request_method == HTTP1_METHOD_HEAD || s / 100 == 1 || s == 204 || s == 304)
        return HTTP1_BODY_NONE;
    if (p->saw_te)
        return p->te_chunked_last ? HTTP1_BODY_CHUNKED : HTTP1_BODY_UNTIL_CLOSE;
    if (p->msg.has_content_length)
        return p->msg.content_length ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
    return HTTP1_BODY_UNTIL_CLOSE;
}

/* Marks the fields named by Connection options hop-by-hop (RFC 9110 §7.6.1). At most
 * HTTP1_CONNECTION_TOKENS_MAX options, so this stays linear in the field count. */
static void mark_nominated(struct http1_parser *p, const unsigned char *b)
{
    if (!p->fields)
        return;
    for (unsigned f = 0; f < p->msg.nfields; f++) {
        struct http1_header *h = &p->fields[f];
        for (unsigned t = 0; t < p->nconn && !h->hop_by_hop; t++)
            h->hop_by_hop = h->name.len == p->conn[t].len &&
                            ieq_mem(b + h->name.off, b + p->conn[t].off, h->name.len);
    }
}

static void enter_body(struct http1_parser *p)
{
    switch (p->msg.body) {
    case HTTP1_BODY_NONE:
        p->state = S_DONE;
        break;
    case HTTP1_BODY_LENGTH:
        p->remaining = p->msg.content_length;
        p->state = S_BODY_LENGTH;
        break;
    case HTTP1_BODY_CHUNKED:
        p->state = S_CHUNK_SIZE;
        break;
    default:
        p->state = S_BODY_CLOSE;
        break;
    }
}

static int head_finish(struct http1_parser *p, const unsigned char *b)
{
    struct http1_message *m = &p->msg;
    int e = check_framing(p);
    if (e < 0)
        return e;
    if (p->kind == HTTP1_REQUEST && m->version_minor >= 1 && !m->has_host)
        return HTTP1_E_HOST_MISSING;
    m->body = p->kind == HTTP1_REQUEST ? request_body(p) : response_body(p);
    if (m->body == HTTP1_BODY_LENGTH && p->limits.max_body_bytes &&
        m->content_length > p->limits.max_body_bytes)
        return HTTP1_E_BODY_TOO_LARGE;
    mark_nominated(p, b);
    bool v11 = m->version_minor >= 1;
    /* RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive" */
    m->keep_alive = !p->conn_close && (v11 || p->conn_keep_alive) &&
                    m->body != HTTP1_BODY_UNTIL_CLOSE && m->body != HTTP1_BODY_TUNNEL;
    m->upgrade = v11 && p->saw_upgrade && p->conn_upgrade; /* RFC 9110 §7.8 */
    m->expect_continue = v11 && p->saw_expect;             /* RFC 9110 §10.1.1 */
    enter_body(p);
    return HTTP1_DONE;
}

static int fail(struct http1_parser *p, int err, size_t at, size_t *consumed)
{
    p->err = err;
    *consumed = at;
    return err;
}

int http1_parse_head(struct http1_parser *p, const char *buf, size_t len, size_t *consumed)
{
    const unsigned char *b = (const unsigned char *)buf;
    *consumed = 0;
    if (p->err)
        return p->err;
    if (p->head_done) {
        *consumed = p->msg.head_bytes;
        return HTTP1_DONE;
    }
    assert(len >= p->pos);
    size_t end = len < p->limits.max_header_bytes ? len : p->limits.max_header_bytes;
    size_t i = p->pos;
    int rc = HTTP1_NEED_MORE;
    while (i < end && rc == HTTP1_NEED_MORE) {
        if (p->state >= S_FIELD_LINE)
            i = scan_fields(p, b, i, end, &rc);
        else if (p->kind == HTTP1_REQUEST)
            i = scan_request_line(p, b, i, end, &rc);
        else
            i = scan_status_line(p, b, i, end, &rc);
    }
    p->pos = (uint32_t)i;
    if (rc == HTTP1_NEED_MORE && end < len) /* the byte past the bound has arrived */
        rc = p->state == S_TARGET ? HTTP1_E_TARGET_TOO_LONG : HTTP1_E_HEADERS_TOO_LARGE;
    else if (rc == HTTP1_DONE)
        rc = head_finish(p, b);
    if (rc < 0)
        return fail(p, rc, i, consumed);
    if (rc == HTTP1_DONE) {
        p->head_done = true;
        p->msg.head_bytes = (uint32_t)i;
        *consumed = i;
    }
    return rc;
}

/* ---- body ------------------------------------------------------------------------------ */

static void emit(struct http1_chunk_out *out, enum http1_seg kind, size_t off, size_t len)
{
    if (out && len > 0)
        *out = (struct http1_chunk_out){kind, off, len};
}

static size_t body_length(struct http1_parser *p, size_t len, struct http1_chunk_out *out, int *rc)
{
    size_t n = len < p->remaining ? len : (size_t)p->remaining;
    p->remaining -= n;
    p->body_bytes += n;
    emit(out, HTTP1_SEG_DATA, 0, n);
    if (p->remaining == 0) {
        p->state = S_DONE;
        *rc = HTTP1_DONE;
    }
    return n;
}

static size_t body_until_close(struct http1_parser *p, size_t len, struct http1_chunk_out *out,
                               int *rc)
{
    uint64_t max = p->limits.max_body_bytes;
    size_t n = len;
    if (max && p->msg.body != HTTP1_BODY_TUNNEL && n > max - p->body_bytes) {
        n = (size_t)(max - p->body_bytes);
        *rc = HTTP1_E_BODY_TOO_LARGE;
    }
    p->body_bytes += n;
    emit(out, HTTP1_SEG_DATA, 0, n);
    return n;
}

/* chunk-size = 1*HEXDIG (RFC 9112 §7.1), at most 16 digits so it cannot overflow. */
static int chunk_digit(struct http1_parser *p, unsigned char c)
{
    if (++p->chunk_digits > 16)
        return HTTP1_E_CHUNK_SIZE;
    unsigned v = IS_DIGIT(c) ? (unsigned)(c - '0') : (unsigned)(lower(c) - 'a' + 10);
    p->remaining = p->remaining << 4 | v;
    if (p->limits.max_chunk_size && p->remaining > p->limits.max_chunk_size)
        return HTTP1_E_CHUNK_TOO_LARGE;
    return 0;
}

/* The byte after the size digits: the size is final. */
static int chunk_size_end(struct http1_parser *p, unsigned char c)
{
    uint64_t max = p->limits.max_body_bytes;
    if (p->chunk_digits == 0)
        return c == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_CHUNK_SIZE;
    if (max && p->remaining > max - p->body_bytes)
        return HTTP1_E_BODY_TOO_LARGE;
    if (c == '\r') {
        p->state = S_CHUNK_SIZE_LF;
        return 0;
    }
    if (c != ';' && !is_ws(c))
        return c == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_CHUNK_SIZE;
    p->state = c == ';' ? S_CHUNK_EXT : S_CHUNK_BWS;
    return ++p->ext_bytes > p->limits.max_chunk_ext_bytes ? HTTP1_E_CHUNK_EXT : 0;
}

/* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ): tolerated as any field-vchar
 * and whitespace after the first ';', bounded by max_chunk_ext_bytes. */
static int chunk_ext_byte(struct http1_parser *p, unsigned char c)
{
    if (c == '\r' && p->state == S_CHUNK_EXT) {
        p->state = S_CHUNK_SIZE_LF;
        return 0;
    }
    if (p->state == S_CHUNK_BWS && !is_ws(c) && c != ';')
        return c == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_CHUNK_SIZE;
    if (!(ctab[c] & (C_FIELD | C_WS)))
        return c == '\n' ? HTTP1_E_BARE_LF : HTTP1_E_CHUNK_EXT;
    if (c == ';')
        p->state = S_CHUNK_EXT;
    return ++p->ext_bytes > p->limits.max_chunk_ext_bytes ? HTTP1_E_CHUNK_EXT : 0;
}

/* The chunk-size line and the CRLF after chunk-data, byte by byte (they are short);
 * returns at the start of chunk-data or of the trailer section. */
static size_t chunk_line(struct http1_parser *p, const unsigned char *b, size_t i, size_t len,
                         int *rc)
{
    for (int e = 0; i < len; i++) {
        unsigned char c = b[i];
        switch (p->state) {
        case S_CHUNK_SIZE:
            e = (ctab[c] & C_HEX) ? chunk_digit(p, c) : chunk_size_end(p, c);
            break;
        case S_CHUNK_BWS:
        case S_CHUNK_EXT:
            e = chunk_ext_byte(p, c);
            break;
        case S_CHUNK_SIZE_LF:
            if (c != '\n')
                return err_at(rc, HTTP1_E_BARE_CR, i);
            p->in_trailers = p->remaining == 0; /* last-chunk: trailer section follows */
            p->state = p->in_trailers ? S_FIELD_LINE : S_CHUNK_DATA;
            return i + 1;
        case S_CHUNK_DATA_CR:
            e = c == '\r' ? 0 : HTTP1_E_CHUNK;
            p->state = S_CHUNK_DATA_LF;
            break;
        default: /* S_CHUNK_DATA_LF */
            e = c == '\n' ? 0 : HTTP1_E_BARE_CR;
            p->state = S_CHUNK_SIZE;
            p->chunk_digits = 0;
            p->remaining = 0;
            break;
        }
        if (e < 0)
            return err_at(rc, e, i);
    }
    return i;
}

static size_t chunk_data(struct http1_parser *p, size_t i, size_t len, struct http1_chunk_out *out)
{
    size_t n = len - i < p->remaining ? len - i : (size_t)p->remaining;
    p->remaining -= n;
    p->body_bytes += n;
    emit(out, HTTP1_SEG_DATA, i, n);
    if (p->remaining == 0)
        p->state = S_CHUNK_DATA_CR;
    return i + n;
}

/* trailer-section (RFC 9112 §7.1.2), counted in the head's limits. Its field lines are one
 * contiguous TRAILER segment; the final CRLF is framing, not part of it. */
static size_t trailers(struct http1_parser *p, const unsigned char *b, size_t i, size_t len,
                       struct http1_chunk_out *out, int *rc)
{
    size_t budget = p->limits.max_header_bytes - p->msg.head_bytes - p->trailer_bytes;
    size_t end = len - i > budget ? i + budget : len;
    size_t start = i;
    bool had_cr = p->state == S_END_LF;
    i = scan_fields(p, b, i, end, rc);
    if (*rc < 0)
        return i;
    p->trailer_bytes += i - start;
    if (*rc == HTTP1_NEED_MORE && end < len)
        return err_at(rc, HTTP1_E_HEADERS_TOO_LARGE, i);
    size_t seg_end = i;
    if (*rc == HTTP1_DONE)
        seg_end = had_cr ? start : i - 2;
    else if (p->state == S_END_LF)
        seg_end = i - 1;
    emit(out, HTTP1_SEG_TRAILER, start, seg_end - start);
    if (*rc == HTTP1_DONE)
        p->state = S_DONE;
    return i;
}

static size_t body_chunked(struct http1_parser *p, const unsigned char *b, size_t len,
                           struct http1_chunk_out *out, int *rc)
{
    size_t i = 0;
    while (i < len && *rc == HTTP1_NEED_MORE) {
        if (p->in_trailers) {
            i = trailers(p, b, i, len, out, rc);
        } else if (p->state == S_CHUNK_DATA) {
            i = chunk_data(p, i, len, out);
            if (out) /* decoded mode: one segment per call */
                break;
        } else {
            i = chunk_line(p, b, i, len, rc);
        }
    }
    return i;
}

int http1_parse_body(struct http1_parser *p, const char *in, size_t len, size_t *consumed,
                     struct http1_chunk_out *out)
{
    const unsigned char *b = (const unsigned char *)in;
    int rc = HTTP1_NEED_MORE;
    size_t i;
    *consumed = 0;
    if (out)
        *out = (struct http1_chunk_out){HTTP1_SEG_NONE, 0, 0};
    if (p->err)
        return p->err;
    assert(p->head_done);
    if (p->state == S_DONE)
        return HTTP1_DONE;
    if (p->state == S_BODY_LENGTH)
        i = body_length(p, len, out, &rc);
    else if (p->state == S_BODY_CLOSE)
        i = body_until_close(p, len, out, &rc);
    else
        i = body_chunked(p, b, len, out, &rc);
    if (rc < 0) {
        if (out)
            *out = (struct http1_chunk_out){HTTP1_SEG_NONE, 0, 0};
        return fail(p, rc, i, consumed);
    }
    *consumed = i;
    return rc;
}

int http1_parse_eof(struct http1_parser *p)
{
    if (p->err)
        return p->err;
    if (p->head_done && (p->state == S_DONE || p->state == S_BODY_CLOSE)) {
        p->state = S_DONE;
        return HTTP1_DONE;
    }
    p->err = HTTP1_E_TRUNCATED;
    return p->err;
}

/* ---- errors and lookups -------------------------------------------------------------- */

static const struct {
    int status;
    const char *name;
    const char *msg;
} errors[] = {
#define HTTP1_ERR_ROW(name, status, msg) {status, "HTTP1_E_" #name, msg},
    HTTP1_ERR_MAP(HTTP1_ERR_ROW)
#undef HTTP1_ERR_ROW
};

static bool err_known(int err)
{
    return err > HTTP1_E_FIRST_ && err < HTTP1_E_LAST_;
}

int http1_err_status(enum http1_kind kind, int err)
{
    if (!err_known(err))
        return 500;
    return kind == HTTP1_RESPONSE ? 502 : errors[err - HTTP1_E_FIRST_ - 1].status;
}

const char *http1_err_str(int err)
{
    return err_known(err) ? errors[err - HTTP1_E_FIRST_ - 1].msg : "unknown error";
}

const char *http1_err_name(int err)
{
    return err_known(err) ? errors[err - HTTP1_E_FIRST_ - 1].name : "?";
}

bool http1_span_equals(const char *buf, struct http1_span span, const char *s)
{
    size_t n = strlen(s);
    return span.len == n &&
           ieq_mem((const unsigned char *)buf + span.off, (const unsigned char *)s, n);
}

int http1_field_find(const struct http1_parser *p, const char *buf, const char *name)
{
    if (!p->fields)
        return -1;
    for (unsigned i = 0; i < p->msg.nfields; i++)
        if (http1_span_equals(buf, p->fields[i].name, name))
            return (int)i;
    return -1;
}
