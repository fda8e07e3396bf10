/*
 * test_http1 — the data plane's HTTP/1.1 parser. The core is a table of valid and
 * hostile messages (smuggling vectors, limits, responses and their framing) with the
 * exact expected outcome; every row is parsed whole, byte by byte and in 200 random
 * splits (fixed seed), in decoded and in pass-through body mode, into a buffer that is
 * reallocated at its exact size before every call (so offsets, not pointers, must carry
 * the state, and ASan sees any read past what has arrived) — and all runs must agree.
 * Then pipelining, body decoding with extensions and trailers, limits at their exact
 * bounds, sticky errors and the error table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

/* ---- a streaming driver: what the proxy does with a connection ------------------------ */

#define MAX_FIELDS 100
#define MAX_MSGS   8
#define TEXT_MAX   512

struct result {
    int rc;         /* HTTP1_DONE or the error that ended the message */
    size_t at;      /* DONE: bytes of the message; error: offset of the bad byte */
    bool head_done; /* the facts below are valid */
    enum http1_method method;
    unsigned status, minor, nfields;
    enum http1_body body;
    uint64_t cl;
    bool keep_alive, expect, upgrade;
    char hop[TEXT_MAX]; /* names of hop-by-hop fields, lowercase, comma-joined */
    char host[TEXT_MAX];
    char target[TEXT_MAX];
    char payload[TEXT_MAX]; /* decoded mode: payload; pass-through: raw body bytes */
    size_t payload_len;
    char trailers[TEXT_MAX];
    size_t trailers_len;
};

struct stream {
    struct http1_parser p;
    struct http1_header fields[MAX_FIELDS];
    bool decoded;
    char *buf; /* every byte delivered so far, reallocated at exact size */
    size_t avail, start, pos;
    bool in_body, stopped;
    struct result res[MAX_MSGS];
    unsigned nres;
};

static void stream_init(struct stream *s, enum http1_kind kind, enum http1_method req_method,
                        const struct http1_limits *limits, bool decoded)
{
    memset(s, 0, sizeof(*s));
    http1_parser_init(&s->p, kind, limits, s->fields, MAX_FIELDS);
    http1_parser_set_request_method(&s->p, req_method);
    s->decoded = decoded;
}

static void copy_span(char *dst, const char *buf, struct http1_span sp)
{
    assert_true(sp.len < TEXT_MAX);
    memcpy(dst, buf + sp.off, sp.len);
    dst[sp.len] = '\0';
}

static void append(char *dst, size_t *len, const char *src, size_t n)
{
    assert_true(*len + n < TEXT_MAX);
    memcpy(dst + *len, src, n);
    *len += n;
}

static void capture_head(struct stream *s, struct result *r)
{
    const struct http1_message *m = &s->p.msg;
    const char *b = s->buf + s->start;
    r->head_done = true;
    r->method = m->method;
    r->status = m->status;
    r->minor = m->version_minor;
    r->nfields = m->nfields;
    r->body = m->body;
    r->cl = m->content_length;
    r->keep_alive = m->keep_alive;
    r->expect = m->expect_continue;
    r->upgrade = m->upgrade;
    copy_span(r->host, b, m->host);
    copy_span(r->target, b, m->target);
    for (unsigned i = 0; i < m->nfields; i++) {
        if (!s->fields[i].hop_by_hop)
            continue;
        size_t n = strlen(r->hop);
        if (n)
            r->hop[n++] = ',';
        copy_span(r->hop + n, b, s->fields[i].name);
        for (char *c = r->hop + n; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    }
}

static void finish(struct stream *s, int rc, size_t at)
{
    s->res[s->nres].rc = rc;
    s->res[s->nres].at = at;
    s->nres++;
    if (rc < 0 || s->nres == MAX_MSGS)
        s->stopped = true;
}

static void record_body(struct stream *s, struct result *r, const struct http1_chunk_out *out,
                        size_t consumed)
{
    const char *in = s->buf + s->pos;
    if (!s->decoded) {
        append(r->payload, &r->payload_len, in, consumed);
        return;
    }
    assert_true(out->off + out->len <= consumed);
    if (out->kind == HTTP1_SEG_DATA)
        append(r->payload, &r->payload_len, in + out->off, out->len);
    else if (out->kind == HTTP1_SEG_TRAILER)
        append(r->trailers, &r->trailers_len, in + out->off, out->len);
    else
        assert_int_equal(out->len, 0);
}

/* Parses as far as the delivered bytes allow. */
static void stream_run(struct stream *s)
{
    size_t c;
    while (!s->stopped) {
        struct result *r = &s->res[s->nres];
        if (!s->in_body) {
            int rc = http1_parse_head(&s->p, s->buf + s->start, s->avail - s->start, &c);
            if (rc == HTTP1_NEED_MORE) {
                assert_int_equal(c, 0);
                assert_int_equal(s->p.pos, s->avail - s->start); /* no byte left unscanned */
                return;
            }
            if (rc < 0)
                return finish(s, rc, c);
            assert_int_equal(c, s->p.msg.head_bytes);
            capture_head(s, r);
            s->in_body = true;
            s->pos = s->start + c;
        }
        struct http1_chunk_out out;
        size_t len = s->avail - s->pos;
        int rc = http1_parse_body(&s->p, s->buf + s->pos, len, &c, s->decoded ? &out : NULL);
        if (rc < 0)
            return finish(s, rc, s->pos - s->start + c);
        assert_true(c <= len);
        if (rc == HTTP1_NEED_MORE && len > 0)
            assert_true(c > 0); /* progress */
        if (rc == HTTP1_NEED_MORE && !s->decoded)
            assert_int_equal(c, len); /* pass-through takes all it is given */
        record_body(s, r, &out, c);
        s->pos += c;
        if (rc == HTTP1_DONE) {
            finish(s, HTTP1_DONE, s->pos - s->start);
            s->start = s->pos;
            s->in_body = false;
            http1_parser_reset_for_next(&s->p);
        } else if (s->pos == s->avail) {
            return;
        }
    }
}

static void stream_deliver(struct stream *s, const char *data, size_t n)
{
    char *nb = malloc(s->avail + n + 1); /* a new address every time, like a moved buffer */
    assert_non_null(nb);
    if (s->avail)
        memcpy(nb, s->buf, s->avail);
    memcpy(nb + s->avail, data, n);
    free(s->buf);
    s->buf = realloc(nb, s->avail + n ? s->avail + n : 1); /* exact size for ASan */
    assert_non_null(s->buf);
    s->avail += n;
    stream_run(s);
}

static void stream_eof(struct stream *s)
{
    if (!s->stopped && (s->in_body || s->avail > s->start)) {
        int rc = http1_parse_eof(&s->p);
        finish(s, rc, rc == HTTP1_DONE ? s->pos - s->start : s->avail - s->start);
    }
    free(s->buf);
    s->buf = NULL;
}

/* Deterministic xorshift64*, so every run of the suite tries the same splits. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM };

static void stream_feed(struct stream *s, const char *msg, size_t len, enum split how)
{
    size_t piece_max = 1 + (size_t)(rng_next() % (len + 1));
    for (size_t off = 0; off < len;) {
        size_t n = len - off;
        if (how == SPLIT_BYTES)
            n = 1;
        else if (how == SPLIT_RANDOM && n > 1)
            n = 1 + (size_t)(rng_next() % (n < piece_max ? n : piece_max));
        stream_deliver(s, msg + off, n);
        off += n;
    }
    if (len == 0)
        stream_deliver(s, "", 0);
    stream_eof(s);
}

/* ---- the table ------------------------------------------------------------------------- */

struct row {
    const char *name;
    enum http1_kind kind;
    enum http1_method req_method; /* responses: the request answered (GET when 0) */
    const char *msg;
    size_t len;
    const struct http1_limits *limits;
    int rc;
    bool body_err; /* the error comes after a good head: check the head facts too */
    enum http1_body body;
    uint64_t cl;
    bool ka;
    const char *hop;     /* expected hop-by-hop names ("" = none) */
    const char *payload; /* expected decoded payload, NULL = empty */
    const char *trailers;
    const char *host;
    bool expect, upgrade;
};

#define MSG(s) .msg = s, .len = sizeof(s) - 1
#define REQ    .kind = HTTP1_REQUEST
#define RESP   .kind = HTTP1_RESPONSE
#define ERR(e) .rc = HTTP1_E_##e
#define OK     .rc = HTTP1_DONE

static const struct http1_limits small_head = {64, 100, 0, 1 << 30, 4096};
static const struct http1_limits few_fields = {16384, 4, 0, 1 << 30, 4096};
static const struct http1_limits small_body = {16384, 100, 16, 1 << 30, 4096};
static const struct http1_limits small_ext = {16384, 100, 0, 1 << 30, 8};
static const struct http1_limits small_chunk = {16384, 100, 0, 255, 4096};

#define H11   " HTTP/1.1\r\nHost: a\r\n"
#define CHUNK "Transfer-Encoding: chunked\r\n"

static const struct row rows[] = {
    /* ---- valid requests ---- */
    {"get", REQ, MSG("GET /" H11 "\r\n"), OK, .ka = true, .hop = "", .host = "a"},
    {"get_curl", REQ,
     MSG("GET /v1/links/abc?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\n"
         "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"),
     OK, .ka = true, .hop = "", .host = "example.com:8080"},
    {"post_length", REQ, MSG("POST /l" H11 "Content-Length: 5\r\n\r\nhello"), OK,
     .body = HTTP1_BODY_LENGTH, .cl = 5, .ka = true, .hop = "", .payload = "hello"},
    {"post_chunked", REQ, MSG("POST /l" H11 CHUNK "\r\n5\r\nhello\r\n0\r\n\r\n"), OK,
     .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding", .payload = "hello"},
    {"chunked_ext_trailers", REQ,
     MSG("POST /" H11 CHUNK "Trailer: X-Sum\r\n\r\n5;name=val\r\nhello\r\n"
         "6 ; q=\"a b\";z\r\n world\r\nA\r\n0123456789\r\n0;end\r\n"
         "X-Sum: 42\r\nX-Two:  t \r\n\r\n"),
     OK, .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding,trailer",
     .payload = "hello world0123456789", .trailers = "X-Sum: 42\r\nX-Two:  t \r\n"},
    {"chunked_leading_zeros", REQ,
     MSG("POST /" H11 CHUNK "\r\n0005\r\nhello\r\n0000000000000000\r\n\r\n"), OK,
     .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding", .payload = "hello"},
    {"chunked_uppercase_te", REQ,
     MSG("POST /" H11 "transfer-encoding: CHUNKED\r\n\r\n1\r\nx\r\n0\r\n\r\n"), OK,
     .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding", .payload = "x"},
    {"te_odd_whitespace_ok", REQ,
     MSG("POST /" H11 "Transfer-Encoding: \t chunked \t\r\n\r\n0\r\n\r\n"), OK,
     .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding"},
    {"http10_no_host", REQ, MSG("GET / HTTP/1.0\r\n\r\n"), OK, .ka = false, .hop = ""},
    {"http10_keep_alive", REQ, MSG("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), OK,
     .ka = true, .hop = "connection"},
    {"http11_close", REQ, MSG("GET /" H11 "Connection: close\r\n\r\n"), OK, .ka = false,
     .hop = "connection"},
    {"connection_nominates", REQ,
     MSG("GET / HTTP/1.1\r\nX-Foo: 1\r\nHost: a\r\nConnection: keep-alive , X-Foo,, x-bar\r\n"
         "Keep-Alive: timeout=5\r\nX-Bar: 2\r\nProxy-Connection: x\r\nTE: trailers\r\n"
         "Upgrade-Insecure-Requests: 1\r\n\r\n"),
     OK, .ka = true, .hop = "x-foo,connection,keep-alive,x-bar,proxy-connection,te"},
    {"ows_trimmed", REQ,
     MSG("GET / HTTP/1.1\r\nHost: \t example.com \t \r\nX-Empty:\r\nX-Sp:   \r\n\r\n"), OK,
     .ka = true, .hop = "", .host = "example.com"},
    {"absolute_form", REQ, MSG("GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     OK, .ka = true, .hop = "", .host = "example.com"},
    {"options_asterisk", REQ, MSG("OPTIONS *" H11 "\r\n"), OK, .ka = true, .hop = ""},
    {"connect_authority", REQ,
     MSG("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), OK, .ka = true,
     .hop = ""},
    {"expect_continue", REQ,
     MSG("PUT /x" H11 "Expect: 100-Continue\r\nContent-Length: 3\r\n\r\nabc"), OK,
     .body = HTTP1_BODY_LENGTH, .cl = 3, .ka = true, .hop = "", .payload = "abc", .expect = true},
    {"upgrade_websocket", REQ,
     MSG("GET /chat" H11
         "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: k\r\n\r\n"),
     OK, .ka = true, .hop = "upgrade,connection", .upgrade = true},
    {"leading_empty_lines", REQ, MSG("\r\n\r\nGET /" H11 "\r\n"), OK, .ka = true, .hop = ""},
    {"content_length_zero", REQ, MSG("POST /" H11 "Content-Length: 0\r\n\r\n"), OK, .ka = true,
     .hop = ""},
    {"http_1_2_as_1_1", REQ, MSG("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), OK, .ka = true, .hop = ""},
    {"unknown_method", REQ, MSG("PURGE /x" H11 "\r\n"), OK, .ka = true, .hop = ""},
    {"obs_text_value", REQ, MSG("GET /" H11 "X-Name: caf\xc3\xa9\r\n\r\n"), OK, .ka = true,
     .hop = ""},
    {"head_exactly_at_limit", REQ, .limits = &small_head,
     MSG("GET /" H11 "X-Pad: 0123456789012345678901234567\r\n\r\n"), OK, .ka = true, .hop = ""},
    {"fields_exactly_at_limit", REQ, .limits = &few_fields,
     MSG("GET /" H11 "A: 1\r\nB: 2\r\nC: 3\r\n\r\n"), OK, .ka = true, .hop = ""},

    /* ---- Content-Length and Transfer-Encoding: smuggling vectors ---- */
    {"cl_cl_different", REQ,
     MSG("POST /" H11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
     ERR(DUP_CONTENT_LENGTH)},
    {"cl_cl_identical", REQ,
     MSG("POST /" H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
     ERR(DUP_CONTENT_LENGTH)},
    {"cl_list", REQ, MSG("POST /" H11 "Content-Length: 5, 5\r\n\r\nhello"), ERR(CONTENT_LENGTH)},
    {"cl_plus", REQ, MSG("POST /" H11 "Content-Length: +5\r\n\r\nhello"), ERR(CONTENT_LENGTH)},
    {"cl_negative", REQ, MSG("POST /" H11 "Content-Length: -1\r\n\r\n"), ERR(CONTENT_LENGTH)},
    {"cl_overflow", REQ, MSG("POST /" H11 "Content-Length: 18446744073709551616\r\n\r\n"),
     ERR(CONTENT_LENGTH)},
    {"cl_empty", REQ, MSG("POST /" H11 "Content-Length: \r\n\r\n"), ERR(CONTENT_LENGTH)},
    {"cl_hex", REQ, MSG("POST /" H11 "Content-Length: 0x5\r\n\r\n"), ERR(CONTENT_LENGTH)},
    {"cl_te", REQ, MSG("POST /" H11 "Content-Length: 5\r\n" CHUNK "\r\n0\r\n\r\n"), ERR(CL_AND_TE)},
    {"te_cl", REQ, MSG("POST /" H11 CHUNK "Content-Length: 5\r\n\r\n0\r\n\r\n"), ERR(CL_AND_TE)},
    {"te_chunked_identity", REQ, MSG("POST /" H11 "Transfer-Encoding: chunked, identity\r\n\r\n"),
     ERR(TRANSFER_ENCODING)},
    {"te_identity", REQ, MSG("POST /" H11 "Transfer-Encoding: identity\r\n\r\n"),
     ERR(TRANSFER_ENCODING)},
    {"te_gzip_chunked", REQ, MSG("POST /" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
     ERR(UNSUPPORTED_TE)},
    {"te_chunked_twice", REQ, MSG("POST /" H11 CHUNK CHUNK "\r\n0\r\n\r\n"),
     ERR(TRANSFER_ENCODING)},
    {"te_space_before_colon", REQ, MSG("POST /" H11 "Transfer-Encoding : chunked\r\n\r\n"),
     ERR(HEADER_NAME)},
    {"te_xchunked", REQ, MSG("POST /" H11 "Transfer-Encoding: xchunked\r\n\r\n"),
     ERR(TRANSFER_ENCODING)},
    {"te_vertical_tab", REQ,
     MSG("POST /" H11 "Transfer-Encoding:\x0b"
         "chunked\r\n\r\n"),
     ERR(HEADER_VALUE)},
    {"te_parameter", REQ, MSG("POST /" H11 "Transfer-Encoding: chunked;q=1\r\n\r\n"),
     ERR(TRANSFER_ENCODING)},
    {"te_empty", REQ, MSG("POST /" H11 "Transfer-Encoding: ,\r\n\r\n"), ERR(TRANSFER_ENCODING)},
    {"te_in_http10", REQ, MSG("POST / HTTP/1.0\r\n" CHUNK "\r\n0\r\n\r\n"), ERR(TRANSFER_ENCODING)},
    {"connection_names_cl", REQ, MSG("POST /" H11 "Connection: Content-Length\r\n\r\n"),
     ERR(CONNECTION)},
    {"connection_not_token", REQ, MSG("GET /" H11 "Connection: a b\r\n\r\n"), ERR(CONNECTION)},

    /* ---- chunked framing ---- */
    {"chunk_0x_prefix", REQ, MSG("POST /" H11 CHUNK "\r\n0x10\r\n"), ERR(CHUNK_SIZE),
     .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding"},
    {"chunk_negative", REQ, MSG("POST /" H11 CHUNK "\r\n-1\r\n"), ERR(CHUNK_SIZE), .body_err = true,
     .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding"},
    {"chunk_17_digits", REQ, MSG("POST /" H11 CHUNK "\r\n00000000000000010\r\n"), ERR(CHUNK_SIZE),
     .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding"},
    {"chunk_huge", REQ, MSG("POST /" H11 CHUNK "\r\nFFFFFFFFFFFFFFFF\r\n"), ERR(CHUNK_TOO_LARGE),
     .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding"},
    {"chunk_over_max", REQ, .limits = &small_chunk, MSG("POST /" H11 CHUNK "\r\n100\r\n"),
     ERR(CHUNK_TOO_LARGE), .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true,
     .hop = "transfer-encoding"},
    {"chunk_data_too_long", REQ, MSG("POST /" H11 CHUNK "\r\n3\r\nhello\r\n0\r\n\r\n"), ERR(CHUNK),
     .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding",
     .payload = "hel"},
    {"chunk_no_final_crlf", REQ, MSG("POST /" H11 CHUNK "\r\n5\r\nhello\r\n0\r\n"), ERR(TRUNCATED),
     .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding",
     .payload = "hello"},
    {"chunk_ext_too_long", REQ, .limits = &small_ext,
     MSG("POST /" H11 CHUNK "\r\n5;abcdefghijk\r\nhello\r\n0\r\n\r\n"), ERR(CHUNK_EXT),
     .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding"},
    {"chunk_ext_bare_lf", REQ, MSG("POST /" H11 CHUNK "\r\n5;a\nb\r\nhello\r\n0\r\n\r\n"),
     ERR(BARE_LF), .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true,
     .hop = "transfer-encoding"},
    {"chunk_size_bare_lf", REQ, MSG("POST /" H11 CHUNK "\r\n5\nhello\r\n0\r\n\r\n"), ERR(BARE_LF),
     .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding"},
    {"chunk_size_empty", REQ, MSG("POST /" H11 CHUNK "\r\n\r\n"), ERR(CHUNK_SIZE), .body_err = true,
     .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding"},
    {"chunk_bws_without_ext", REQ, MSG("POST /" H11 CHUNK "\r\n5 \r\nhello\r\n0\r\n\r\n"),
     ERR(CHUNK_SIZE), .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true,
     .hop = "transfer-encoding"},
    {"chunk_body_too_large", REQ, .limits = &small_body,
     MSG("POST /" H11 CHUNK "\r\na\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"),
     ERR(BODY_TOO_LARGE), .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true,
     .hop = "transfer-encoding", .payload = "0123456789"},
    {"trailer_bare_lf", REQ, MSG("POST /" H11 CHUNK "\r\n0\r\nX: 1\n\r\n"), ERR(BARE_LF),
     .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding"},
    {"chunk_size_bare_cr", REQ, MSG("POST /" H11 CHUNK "\r\n5\rhello\r\n0\r\n\r\n"), ERR(BARE_CR),
     .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding"},
    {"trailers_too_large", REQ, .limits = &small_head,
     MSG("POST /" H11 CHUNK "\r\n0\r\nX-Long: 0123456789\r\n\r\n"), ERR(HEADERS_TOO_LARGE),
     .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding"},
    {"trailer_too_many", REQ, .limits = &few_fields,
     MSG("POST /" H11 CHUNK "\r\n0\r\nT1: 1\r\nT2: 2\r\nT3: 3\r\n\r\n"), ERR(TOO_MANY_HEADERS),
     .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding"},

    /* ---- field syntax ---- */
    {"obs_fold", REQ, MSG("GET /" H11 "X-A: 1\r\n  continued\r\n\r\n"), ERR(OBS_FOLD)},
    {"ws_before_first_field", REQ, MSG("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), ERR(OBS_FOLD)},
    {"bare_lf_field", REQ, MSG("GET / HTTP/1.1\r\nHost: a\nX: 1\r\n\r\n"), ERR(BARE_LF)},
    {"bare_lf_request_line", REQ, MSG("GET / HTTP/1.1\nHost: a\r\n\r\n"), ERR(BARE_LF)},
    {"bare_lf_end_of_head", REQ, MSG("GET /" H11 "\n"), ERR(BARE_LF)},
    {"bare_cr_value", REQ, MSG("GET /" H11 "X: a\rb\r\n\r\n"), ERR(BARE_CR)},
    {"bare_cr_end_of_head", REQ, MSG("GET /" H11 "\rX"), ERR(BARE_CR)},
    {"nul_in_value", REQ, MSG("GET /" H11 "X: a\0b\r\n\r\n"), ERR(HEADER_VALUE)},
    {"nul_in_name", REQ, MSG("GET /" H11 "X\0: a\r\n\r\n"), ERR(HEADER_NAME)},
    {"del_in_value", REQ, MSG("GET /" H11 "X: a\x7f\r\n\r\n"), ERR(HEADER_VALUE)},
    {"empty_name", REQ, MSG("GET /" H11 ": x\r\n\r\n"), ERR(HEADER_NAME)},
    {"no_colon", REQ, MSG("GET /" H11 "X-No-Colon\r\n\r\n"), ERR(HEADER_NAME)},
    {"head_too_large", REQ, .limits = &small_head,
     MSG("GET /" H11 "X-Pad: 01234567890123456789012345678\r\n\r\n"), ERR(HEADERS_TOO_LARGE)},
    {"too_many_fields", REQ, .limits = &few_fields,
     MSG("GET /" H11 "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n"), ERR(TOO_MANY_HEADERS)},
    {"target_too_long", REQ, .limits = &small_head,
     MSG("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" H11 "\r\n"),
     ERR(TARGET_TOO_LONG)},

    /* ---- request line and Host ---- */
    {"missing_host", REQ, MSG("GET / HTTP/1.1\r\nX: 1\r\n\r\n"), ERR(HOST_MISSING)},
    {"two_hosts", REQ, MSG("GET /" H11 "Host: b\r\n\r\n"), ERR(HOST_DUP)},
    {"host_with_slash", REQ, MSG("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), ERR(HOST)},
    {"http2_version", REQ, MSG("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), ERR(VERSION)},
    {"h2_preface", REQ, MSG("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), ERR(VERSION)},
    {"version_two_digits", REQ, MSG("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), ERR(REQUEST_LINE)},
    {"version_lowercase", REQ, MSG("GET / http/1.1\r\nHost: a\r\n\r\n"), ERR(REQUEST_LINE)},
    {"http09", REQ, MSG("GET /\r\n"), ERR(REQUEST_LINE)},
    {"empty_line_bare_lf", REQ, MSG("\nGET /" H11 "\r\n"), ERR(BARE_LF)},
    {"empty_line_bare_cr", REQ, MSG("\rGET /" H11 "\r\n"), ERR(BARE_CR)},
    {"request_line_bare_cr", REQ, MSG("GET / HTTP/1.1\rHost: a\r\n\r\n"), ERR(BARE_CR)},
    {"target_no_scheme", REQ, MSG("GET %2F" H11 "\r\n"), ERR(TARGET)},
    {"double_space", REQ, MSG("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), ERR(REQUEST_LINE)},
    {"method_not_token", REQ, MSG("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), ERR(REQUEST_LINE)},
    {"target_fragment", REQ, MSG("GET /a#b" H11 "\r\n"), ERR(TARGET)},
    {"target_relative", REQ, MSG("GET a/b" H11 "\r\n"), ERR(TARGET)},
    {"target_non_ascii", REQ, MSG("GET /caf\xc3\xa9" H11 "\r\n"), ERR(TARGET)},
    {"asterisk_not_options", REQ, MSG("GET *" H11 "\r\n"), ERR(TARGET)},
    {"connect_origin_form", REQ, MSG("CONNECT /" H11 "\r\n"), ERR(TARGET)},
    {"body_too_large_cl", REQ, .limits = &small_body,
     MSG("POST /" H11 "Content-Length: 17\r\n\r\n01234567890123456"), ERR(BODY_TOO_LARGE)},
    {"body_truncated", REQ, MSG("POST /" H11 "Content-Length: 10\r\n\r\nhello"), ERR(TRUNCATED),
     .body_err = true, .body = HTTP1_BODY_LENGTH, .cl = 10, .ka = true, .hop = "",
     .payload = "hello"},
    {"head_truncated", REQ, MSG("GET /" H11), ERR(TRUNCATED)},

    /* ---- responses ---- */
    {"resp_200_length", RESP, MSG("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"), OK,
     .body = HTTP1_BODY_LENGTH, .cl = 5, .ka = true, .hop = "", .payload = "hello"},
    {"resp_204_with_cl", RESP, MSG("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), OK,
     .cl = 5, .ka = true, .hop = ""},
    {"resp_304", RESP,
     MSG("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n"), OK, .cl = 100,
     .ka = true, .hop = ""},
    {"resp_head_with_cl", RESP, .req_method = HTTP1_METHOD_HEAD,
     MSG("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"), OK, .cl = 10, .ka = true, .hop = ""},
    {"resp_until_close", RESP,
     MSG("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this"), OK,
     .body = HTTP1_BODY_UNTIL_CLOSE, .ka = false, .hop = "", .payload = "all of this"},
    {"resp_100_continue", RESP, MSG("HTTP/1.1 100 Continue\r\n\r\n"), OK, .ka = true, .hop = ""},
    {"resp_101_tunnel", RESP,
     MSG("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
         "\x81\x05hello"),
     OK, .body = HTTP1_BODY_TUNNEL, .ka = false, .hop = "upgrade,connection",
     .payload = "\x81\x05hello", .upgrade = true},
    {"resp_connect_200", RESP, .req_method = HTTP1_METHOD_CONNECT,
     MSG("HTTP/1.1 200 Connection Established\r\n\r\nTLS"), OK, .body = HTTP1_BODY_TUNNEL,
     .ka = false, .hop = "", .payload = "TLS"},
    {"resp_chunked", RESP, MSG("HTTP/1.1 200 OK\r\n" CHUNK "\r\n5\r\nhello\r\n0\r\n\r\n"), OK,
     .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding", .payload = "hello"},
    {"resp_gzip_chunked", RESP,
     MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n"), OK,
     .body = HTTP1_BODY_CHUNKED, .ka = true, .hop = "transfer-encoding", .payload = "zz"},
    {"resp_chunked_gzip_until_close", RESP,
     MSG("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nraw"), OK,
     .body = HTTP1_BODY_UNTIL_CLOSE, .ka = false, .hop = "transfer-encoding", .payload = "raw"},
    {"resp_empty_reason", RESP, MSG("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), OK, .ka = true,
     .hop = ""},
    {"resp_no_sp_before_crlf", RESP, MSG("HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n"), OK,
     .ka = true, .hop = ""},
    {"resp_http10_keep_alive", RESP,
     MSG("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"), OK,
     .body = HTTP1_BODY_LENGTH, .cl = 2, .ka = true, .hop = "connection", .payload = "ok"},
    {"resp_http10_default_close", RESP, MSG("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"), OK,
     .body = HTTP1_BODY_LENGTH, .cl = 2, .ka = false, .hop = "", .payload = "ok"},
    {"resp_host_not_special", RESP,
     MSG("HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n"), OK, .ka = true,
     .hop = ""},
    {"resp_status_two_digits", RESP, MSG("HTTP/1.1 20 OK\r\n\r\n"), ERR(STATUS_LINE)},
    {"resp_status_four_digits", RESP, MSG("HTTP/1.1 2000 OK\r\n\r\n"), ERR(STATUS_LINE)},
    {"resp_status_below_100", RESP, MSG("HTTP/1.1 099 Odd\r\n\r\n"), ERR(STATUS_LINE)},
    {"resp_version_short", RESP, MSG("HTTP/2 200\r\n\r\n"), ERR(STATUS_LINE)},
    {"resp_http2", RESP, MSG("HTTP/2.0 200 OK\r\n\r\n"), ERR(VERSION)},
    {"resp_cl_te", RESP, MSG("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n" CHUNK "\r\n"),
     ERR(CL_AND_TE)},
    {"resp_dup_cl", RESP,
     MSG("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"),
     ERR(DUP_CONTENT_LENGTH)},
    {"resp_status_line_bare_cr", RESP, MSG("HTTP/1.1 200 OK\rX"), ERR(BARE_CR)},
    {"resp_reason_ctl", RESP, MSG("HTTP/1.1 200 O\x01K\r\n\r\n"), ERR(STATUS_LINE)},
    {"resp_chunked_truncated", RESP, MSG("HTTP/1.1 200 OK\r\n" CHUNK "\r\n5\r\nhel"),
     ERR(TRUNCATED), .body_err = true, .body = HTTP1_BODY_CHUNKED, .ka = true,
     .hop = "transfer-encoding", .payload = "hel"},
    {"resp_nothing", RESP, MSG("HTTP/1.1 2"), ERR(TRUNCATED)},
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

static void run_row(const struct row *row, enum split how, bool decoded, struct result *out)
{
    struct stream *s = malloc(sizeof(*s));
    assert_non_null(s);
    enum http1_method m = row->req_method ? row->req_method : HTTP1_METHOD_GET;
    stream_init(s, row->kind, m, row->limits, decoded);
    stream_feed(s, row->msg, row->len, how);
    assert_int_equal(s->nres, 1);
    *out = s->res[0];
    free(s);
}

/* Payloads are compared for complete messages only: before an error, earlier calls of a
 * split run have already handed out the valid prefix of a segment that the whole run's
 * failing call does not report. */
static bool same_result(const struct result *a, const struct result *b, bool payloads)
{
    payloads = payloads && a->rc == HTTP1_DONE;
    if (a->rc != b->rc || a->at != b->at || a->head_done != b->head_done)
        return false;
    if (payloads && (a->payload_len != b->payload_len || a->trailers_len != b->trailers_len ||
                     memcmp(a->payload, b->payload, a->payload_len) != 0 ||
                     memcmp(a->trailers, b->trailers, a->trailers_len) != 0))
        return false;
    return a->method == b->method && a->status == b->status && a->minor == b->minor &&
           a->nfields == b->nfields && a->body == b->body && a->cl == b->cl &&
           a->keep_alive == b->keep_alive && a->expect == b->expect && a->upgrade == b->upgrade &&
           strcmp(a->hop, b->hop) == 0 && strcmp(a->host, b->host) == 0 &&
           strcmp(a->target, b->target) == 0;
}

static const char *rc_name(int rc)
{
    return rc == HTTP1_DONE ? "DONE" : http1_err_name(rc);
}

static void check_row_expected(const struct row *row, const struct result *r)
{
    print_message("row %s: got %s at %zu\n", row->name, rc_name(r->rc), r->at);
    assert_int_equal(r->rc, row->rc);
    if (row->rc == HTTP1_DONE)
        assert_int_equal(r->at, row->len); /* consumed the whole message, exactly */
    assert_int_equal(r->head_done, row->rc == HTTP1_DONE || row->body_err);
    if (!r->head_done)
        return;
    assert_int_equal(r->body, row->body);
    assert_int_equal(r->cl, row->cl);
    assert_int_equal(r->keep_alive, row->ka);
    assert_int_equal(r->expect, row->expect);
    assert_int_equal(r->upgrade, row->upgrade);
    assert_string_equal(r->hop, row->hop);
    const char *payload = row->payload ? row->payload : "";
    assert_int_equal(r->payload_len, strlen(payload));
    assert_memory_equal(r->payload, payload, r->payload_len);
    const char *trailers = row->trailers ? row->trailers : "";
    assert_int_equal(r->trailers_len, strlen(trailers));
    assert_memory_equal(r->trailers, trailers, r->trailers_len);
    if (row->host)
        assert_string_equal(r->host, row->host);
}

static void check_same(const struct row *row, const struct result *want, const struct result *got,
                       const char *how, bool payloads)
{
    if (same_result(want, got, payloads))
        return;
    print_error("row %s: %s differs: %s at %zu vs %s at %zu\n", row->name, how, rc_name(want->rc),
                want->at, rc_name(got->rc), got->at);
    fail();
}

static void check_rows(enum http1_kind kind)
{
    for (size_t i = 0; i < NROWS; i++) {
        const struct row *row = &rows[i];
        if (row->kind != kind)
            continue;
        struct result whole, other;
        run_row(row, SPLIT_WHOLE, true, &whole);
        check_row_expected(row, &whole);
        run_row(row, SPLIT_BYTES, true, &other);
        check_same(row, &whole, &other, "byte by byte", true);
        run_row(row, SPLIT_WHOLE, false, &other);
        check_same(row, &whole, &other, "whole, pass-through",
                   !whole.head_done || whole.body != HTTP1_BODY_CHUNKED);
        run_row(row, SPLIT_BYTES, false, &other);
        check_same(row, &whole, &other, "bytes, pass-through", false);
        for (int k = 0; k < 200; k++) {
            run_row(row, SPLIT_RANDOM, k & 1, &other);
            check_same(row, &whole, &other, k & 1 ? "random split" : "random, pass-through", k & 1);
        }
    }
}

static void test_table_has_enough_rows(void **state)
{
    (void)state;
    assert_true(NROWS >= 40);
    for (size_t i = 0; i < NROWS; i++)
        for (size_t j = i + 1; j < NROWS; j++)
            assert_string_not_equal(rows[i].name, rows[j].name);
}

static void test_table_requests(void **state)
{
    (void)state;
    check_rows(HTTP1_REQUEST);
}

static void test_table_responses(void **state)
{
    (void)state;
    check_rows(HTTP1_RESPONSE);
}

/* ---- pipelining ------------------------------------------------------------------------ */

static const char pipeline[] = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                               "POST /two HTTP/1.1\r\nHost: a\r\n" CHUNK "\r\n"
                               "3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n"
                               "PUT /three HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nwxyz";

static void check_pipeline(const struct stream *s)
{
    assert_int_equal(s->nres, 3);
    const struct result *r = s->res;
    assert_int_equal(r[0].rc, HTTP1_DONE);
    assert_int_equal(r[0].method, HTTP1_METHOD_GET);
    assert_string_equal(r[0].target, "/one");
    assert_int_equal(r[0].at, strlen("GET /one HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_int_equal(r[1].rc, HTTP1_DONE);
    assert_int_equal(r[1].method, HTTP1_METHOD_POST);
    assert_string_equal(r[1].target, "/two");
    assert_int_equal(r[1].body, HTTP1_BODY_CHUNKED);
    assert_int_equal(r[1].rc, HTTP1_DONE);
    assert_int_equal(r[2].method, HTTP1_METHOD_PUT);
    assert_string_equal(r[2].target, "/three");
    assert_int_equal(r[2].cl, 4);
    assert_int_equal(r[0].at + r[1].at + r[2].at, sizeof(pipeline) - 1);
    if (s->decoded) {
        assert_int_equal(r[1].payload_len, 5);
        assert_memory_equal(r[1].payload, "abcde", 5);
        assert_int_equal(r[1].trailers_len, 6);
        assert_memory_equal(r[1].trailers, "T: v\r\n", 6);
        assert_memory_equal(r[2].payload, "wxyz", 4);
    }
}

static void test_pipelining(void **state)
{
    (void)state;
    struct stream *s = malloc(sizeof(*s));
    assert_non_null(s);
    const enum split hows[] = {SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM, SPLIT_RANDOM};
    for (size_t h = 0; h < sizeof(hows) / sizeof(hows[0]); h++) {
        for (int decoded = 0; decoded < 2; decoded++) {
            stream_init(s, HTTP1_REQUEST, HTTP1_METHOD_GET, NULL, decoded);
            stream_feed(s, pipeline, sizeof(pipeline) - 1, hows[h]);
            check_pipeline(s);
        }
    }
    free(s);
}

/* The proxy's own loop, by hand: exact consumed counts, and the body of a keep-alive
 * message followed at once by the next head. */
static void test_pipelining_by_hand(void **state)
{
    (void)state;
    struct http1_header fields[100];
    struct http1_parser p;
    http1_parser_init(&p, HTTP1_REQUEST, NULL, fields, 100);
    const char *buf = pipeline;
    size_t len = sizeof(pipeline) - 1, c;
    assert_int_equal(http1_parse_head(&p, buf, len, &c), HTTP1_DONE);
    assert_int_equal(c, 30);
    assert_int_equal(p.msg.body, HTTP1_BODY_NONE);
    assert_int_equal(http1_parse_body(&p, buf + c, len - c, &c, NULL), HTTP1_DONE);
    assert_int_equal(c, 0);
    buf += 30;
    len -= 30;
    http1_parser_reset_for_next(&p);
    assert_int_equal(http1_parse_head(&p, buf, len, &c), HTTP1_DONE);
    assert_true(http1_span_equals(buf, p.msg.target, "/two"));
    size_t head = c, body;
    assert_int_equal(http1_parse_body(&p, buf + head, len - head, &body, NULL), HTTP1_DONE);
    assert_int_equal(body, strlen("3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n"));
    buf += head + body;
    len -= head + body;
    http1_parser_reset_for_next(&p);
    assert_int_equal(http1_parse_head(&p, buf, len, &c), HTTP1_DONE);
    assert_true(http1_span_equals(buf, p.msg.method_name, "PUT"));
    assert_int_equal(http1_parse_body(&p, buf + c, len - c, &body, NULL), HTTP1_DONE);
    assert_int_equal(c + body, len);
}

/* ---- body decoding --------------------------------------------------------------------- */

/* Decoded mode gives the payload and the trailers; re-framing them gives a message the
 * parser accepts with the same payload. */
static void test_chunked_decode_and_reframe(void **state)
{
    (void)state;
    const char body[] = "4;a=1;b=\"x y\"\r\nWiki\r\n5\r\npedia\r\nE ; ext\r\n in\r\n\r\nchunks."
                        "\r\n0;last\r\nExpires: never\r\nX-Sum:\t7\r\n\r\nNEXT";
    struct http1_parser p;
    http1_parser_init(&p, HTTP1_RESPONSE, NULL, NULL, 0);
    const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t c;
    assert_int_equal(http1_parse_head(&p, head, sizeof(head) - 1, &c), HTTP1_DONE);
    assert_int_equal(p.msg.body, HTTP1_BODY_CHUNKED);
    char reframed[512], payload[128];
    size_t rlen = 0, plen = 0, pos = 0, len = sizeof(body) - 1, segs = 0;
    int rc;
    do {
        struct http1_chunk_out out;
        rc = http1_parse_body(&p, body + pos, len - pos, &c, &out);
        assert_true(rc == HTTP1_NEED_MORE || rc == HTTP1_DONE);
        if (out.kind == HTTP1_SEG_DATA) {
            memcpy(payload + plen, body + pos + out.off, out.len);
            plen += out.len;
            rlen += (size_t)sprintf(reframed + rlen, "%zx\r\n%.*s\r\n", out.len, (int)out.len,
                                    body + pos + out.off);
        } else if (out.kind == HTTP1_SEG_TRAILER) {
            assert_memory_equal(body + pos + out.off, "Expires: never\r\nX-Sum:\t7\r\n", out.len);
            rlen +=
                (size_t)sprintf(reframed + rlen, "0\r\n%.*s", (int)out.len, body + pos + out.off);
        }
        segs += out.kind != HTTP1_SEG_NONE;
        pos += c;
    } while (rc == HTTP1_NEED_MORE);
    assert_int_equal(pos, len - 4); /* "NEXT" belongs to the next message */
    assert_int_equal(plen, 23);
    assert_memory_equal(payload, "Wikipedia in\r\n\r\nchunks.", 23);
    assert_int_equal(segs, 4);
    rlen += (size_t)sprintf(reframed + rlen, "\r\n");

    http1_parser_reset_for_next(&p);
    assert_int_equal(http1_parse_head(&p, head, sizeof(head) - 1, &c), HTTP1_DONE);
    assert_int_equal(http1_parse_body(&p, reframed, rlen, &c, NULL), HTTP1_DONE);
    assert_int_equal(c, rlen);
}

static void test_body_none_and_eof(void **state)
{
    (void)state;
    struct http1_parser p;
    size_t c;
    http1_parser_init(&p, HTTP1_RESPONSE, NULL, NULL, 0);
    const char until_close[] = "HTTP/1.1 200 OK\r\n\r\n";
    assert_int_equal(http1_parse_head(&p, until_close, sizeof(until_close) - 1, &c), HTTP1_DONE);
    assert_int_equal(p.msg.body, HTTP1_BODY_UNTIL_CLOSE);
    assert_int_equal(http1_parse_body(&p, "abc", 3, &c, NULL), HTTP1_NEED_MORE);
    assert_int_equal(c, 3);
    assert_int_equal(http1_parse_eof(&p), HTTP1_DONE);
    assert_int_equal(http1_parse_body(&p, "x", 1, &c, NULL), HTTP1_DONE);
    assert_int_equal(c, 0);

    http1_parser_init(&p, HTTP1_RESPONSE, NULL, NULL, 0);
    assert_int_equal(http1_parse_eof(&p), HTTP1_E_TRUNCATED); /* closed before any byte */
}

/* ---- limits, errors, API details ------------------------------------------------------- */

static void test_until_close_body_limit(void **state)
{
    (void)state;
    struct http1_parser p;
    size_t c;
    http1_parser_init(&p, HTTP1_RESPONSE, &small_body, NULL, 0);
    const char head[] = "HTTP/1.1 200 OK\r\n\r\n";
    assert_int_equal(http1_parse_head(&p, head, sizeof(head) - 1, &c), HTTP1_DONE);
    assert_int_equal(http1_parse_body(&p, "0123456789", 10, &c, NULL), HTTP1_NEED_MORE);
    assert_int_equal(http1_parse_body(&p, "0123456789", 10, &c, NULL), HTTP1_E_BODY_TOO_LARGE);
    assert_int_equal(c, 6); /* 16 accepted in all */
}

static void test_errors_are_sticky(void **state)
{
    (void)state;
    struct http1_parser p;
    size_t c;
    http1_parser_init(&p, HTTP1_REQUEST, NULL, NULL, 0);
    const char bad[] = "GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n";
    assert_int_equal(http1_parse_head(&p, bad, sizeof(bad) - 1, &c), HTTP1_E_HEADER_VALUE);
    assert_int_equal(c, 28);
    const char good[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(http1_parse_head(&p, good, sizeof(good) - 1, &c), HTTP1_E_HEADER_VALUE);
    assert_int_equal(http1_parse_eof(&p), HTTP1_E_HEADER_VALUE);
    assert_int_equal(http1_parse_body(&p, "x", 1, &c, NULL), HTTP1_E_HEADER_VALUE);
    http1_parser_reset_for_next(&p);
    assert_int_equal(http1_parse_head(&p, good, sizeof(good) - 1, &c), HTTP1_DONE);
    /* again after DONE: the same answer */
    assert_int_equal(http1_parse_head(&p, good, sizeof(good) - 1, &c), HTTP1_DONE);
    assert_int_equal(c, sizeof(good) - 1);
}

static void test_err_status_and_names(void **state)
{
    (void)state;
    assert_int_equal(http1_err_status(HTTP1_REQUEST, HTTP1_E_BARE_LF), 400);
    assert_int_equal(http1_err_status(HTTP1_REQUEST, HTTP1_E_TOO_MANY_HEADERS), 431);
    assert_int_equal(http1_err_status(HTTP1_REQUEST, HTTP1_E_HEADERS_TOO_LARGE), 431);
    assert_int_equal(http1_err_status(HTTP1_REQUEST, HTTP1_E_TARGET_TOO_LONG), 414);
    assert_int_equal(http1_err_status(HTTP1_REQUEST, HTTP1_E_BODY_TOO_LARGE), 413);
    assert_int_equal(http1_err_status(HTTP1_REQUEST, HTTP1_E_CHUNK_TOO_LARGE), 413);
    assert_int_equal(http1_err_status(HTTP1_REQUEST, HTTP1_E_UNSUPPORTED_TE), 501);
    assert_int_equal(http1_err_status(HTTP1_REQUEST, HTTP1_E_VERSION), 505);
    assert_int_equal(http1_err_status(HTTP1_REQUEST, HTTP1_E_CL_AND_TE), 400);
    assert_int_equal(http1_err_status(HTTP1_RESPONSE, HTTP1_E_HEADERS_TOO_LARGE), 502);
    assert_int_equal(http1_err_status(HTTP1_RESPONSE, HTTP1_E_VERSION), 502);
    assert_int_equal(http1_err_status(HTTP1_REQUEST, -1), 500);
    assert_int_equal(http1_err_status(HTTP1_REQUEST, HTTP1_DONE), 500);
    assert_string_equal(http1_err_name(HTTP1_E_CL_AND_TE), "HTTP1_E_CL_AND_TE");
    assert_string_equal(http1_err_str(HTTP1_E_DUP_CONTENT_LENGTH), "more than one Content-Length");
    assert_string_equal(http1_err_str(HTTP1_NEED_MORE), "unknown error");
    assert_string_equal(http1_err_name(HTTP1_E_FIRST_), "?");
    assert_string_equal(http1_err_name(HTTP1_E_LAST_), "?");
    for (int e = HTTP1_E_FIRST_ + 1; e < HTTP1_E_LAST_; e++) {
        assert_true(e < 0);
        assert_string_not_equal(http1_err_name(e), "?");
        int st = http1_err_status(HTTP1_REQUEST, e);
        assert_true(st >= 400 && st <= 505);
    }
}

static void test_fields_and_lookup(void **state)
{
    (void)state;
    struct http1_header fields[100];
    struct http1_parser p;
    size_t c;
    http1_parser_init(&p, HTTP1_REQUEST, NULL, fields, 100);
    const char req[] = "DELETE /x?y=1 HTTP/1.1\r\nhOST:  h.example \r\nX-Trace: a b\r\n"
                       "Content-Length: 0\r\nTE: trailers\r\n\r\n";
    assert_int_equal(http1_parse_head(&p, req, sizeof(req) - 1, &c), HTTP1_DONE);
    assert_int_equal(p.msg.method, HTTP1_METHOD_DELETE);
    assert_int_equal(p.msg.target_form, HTTP1_TARGET_ORIGIN);
    assert_int_equal(p.msg.version_minor, 1);
    assert_int_equal(p.msg.nfields, 4);
    assert_true(p.msg.has_content_length);
    assert_int_equal(http1_field_find(&p, req, "host"), 0);
    assert_int_equal(http1_field_find(&p, req, "X-TRACE"), 1);
    assert_int_equal(http1_field_find(&p, req, "X-Trac"), -1);
    assert_int_equal(fields[0].id, HTTP1_FIELD_HOST);
    assert_int_equal(fields[1].id, HTTP1_FIELD_OTHER);
    assert_int_equal(fields[2].id, HTTP1_FIELD_CONTENT_LENGTH);
    assert_int_equal(fields[3].id, HTTP1_FIELD_TE);
    assert_true(fields[3].hop_by_hop);
    assert_true(http1_span_equals(req, fields[0].name, "Host"));
    assert_true(http1_span_equals(req, fields[0].value, "h.example"));
    assert_true(http1_span_equals(req, p.msg.host, "h.example"));
    assert_true(http1_span_equals(req, fields[1].value, "a b"));
    assert_true(http1_span_equals(req, p.msg.target, "/x?y=1"));
    assert_false(http1_span_equals(req, p.msg.target, "/x?y=2"));

    const char resp[] = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n";
    http1_parser_init(&p, HTTP1_RESPONSE, NULL, NULL, 0);
    assert_int_equal(http1_parse_head(&p, resp, sizeof(resp) - 1, &c), HTTP1_DONE);
    assert_int_equal(p.msg.status, 503);
    assert_true(http1_span_equals(resp, p.msg.reason, "service unavailable"));
    assert_int_equal(p.msg.nfields, 1);
    assert_int_equal(http1_field_find(&p, resp, "Retry-After"), -1); /* not recorded */
}

/* A 1xx is interim: the same request's method still applies to the final response. */
static void test_interim_then_final_response(void **state)
{
    (void)state;
    struct http1_parser p;
    size_t c;
    http1_parser_init(&p, HTTP1_RESPONSE, NULL, NULL, 0);
    http1_parser_set_request_method(&p, HTTP1_METHOD_HEAD);
    const char r[] = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
    assert_int_equal(http1_parse_head(&p, r, sizeof(r) - 1, &c), HTTP1_DONE);
    assert_int_equal(p.msg.status, 103);
    assert_int_equal(http1_parse_body(&p, r + c, sizeof(r) - 1 - c, &c, NULL), HTTP1_DONE);
    const char *next = r + p.msg.head_bytes;
    http1_parser_reset_for_next(&p);
    assert_int_equal(http1_parse_head(&p, next, strlen(next), &c), HTTP1_DONE);
    assert_int_equal(p.msg.status, 200);
    assert_int_equal(p.msg.body, HTTP1_BODY_NONE); /* answer to HEAD */
    assert_int_equal(p.msg.content_length, 1000);
    assert_int_equal(c, strlen(next));
}

/* Scanning resumes where it stopped: a head trickled in byte by byte costs one pass. */
static void test_resume_scans_each_byte_once(void **state)
{
    (void)state;
    struct http1_parser p;
    size_t c;
    http1_parser_init(&p, HTTP1_REQUEST, NULL, NULL, 0);
    const char req[] = "GET /path HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
    for (size_t n = 0; n < sizeof(req) - 1; n++) {
        assert_int_equal(http1_parse_head(&p, req, n, &c), HTTP1_NEED_MORE);
        assert_int_equal(p.pos, n);
    }
    assert_int_equal(http1_parse_head(&p, req, sizeof(req) - 1, &c), HTTP1_DONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_has_enough_rows),
        cmocka_unit_test(test_table_requests),
        cmocka_unit_test(test_table_responses),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_pipelining_by_hand),
        cmocka_unit_test(test_chunked_decode_and_reframe),
        cmocka_unit_test(test_body_none_and_eof),
        cmocka_unit_test(test_until_close_body_limit),
        cmocka_unit_test(test_errors_are_sticky),
        cmocka_unit_test(test_err_status_and_names),
        cmocka_unit_test(test_fields_and_lookup),
        cmocka_unit_test(test_interim_then_final_response),
        cmocka_unit_test(test_resume_scans_each_byte_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
