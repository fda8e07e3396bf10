/*
 * http1 — the strict, incremental HTTP/1.1 message parser of the agent's data plane
 * (DESIGN.md §3). The epoll proxy reads a connection into its own buffer and asks this
 * module where the message head ends, what it says, and which of the following bytes
 * belong to the body, so that it can forward them verbatim (or de-chunked) and know
 * exactly where the next pipelined message starts. Requests (client → proxy) and
 * responses (upstream → proxy) use the same parser; the caller picks one at init.
 *
 * Hot path: no allocation, no copying. Header fields are spans (offset, length) into the
 * caller's buffer; the caller supplies the field array. Every input byte is examined a
 * bounded number of times (O(n)), whatever the split of the input into reads.
 *
 * Strictness (RFC 9112 unless noted). Rejected with an error:
 *   - a line ended by a bare LF, and a CR not followed by LF, anywhere in the head, the
 *     chunk framing or the trailers (§2.2 allows a lenient LF terminator; we don't);
 *   - obs-fold, and whitespace at the start of the first field line (§5.2, §2.2);
 *   - whitespace between a field name and the colon (§5.1), a name that is not a token;
 *   - NUL, DEL and every control character but HTAB in a field value (RFC 9110 §5.5);
 *   - more than limits.max_headers field lines, or a head longer than
 *     limits.max_header_bytes (distinct codes → 431; a request-target still unfinished
 *     at the bound → 414);
 *   - a Content-Length that is not 1*DIGIT (lists "5, 5", "+5", overflow), two
 *     Content-Length lines (even identical), Content-Length with Transfer-Encoding
 *     (§6.3: a smuggling signal), Transfer-Encoding in an HTTP/1.0 message (§6.1);
 *   - in requests, a transfer-coding list whose last member is not "chunked" or that
 *     names chunked twice (→ 400, §6.3), or another coding before chunked (→ 501, §6.1);
 *     in responses, chunked twice (chunked not last = read until close, §6.3 item 4);
 *   - a chunk size that is not 1–16 hex digits or exceeds limits.max_chunk_size;
 *     chunk extensions are tolerated (any field-vchar) but their bytes, summed over the
 *     message, are bounded by limits.max_chunk_ext_bytes;
 *   - requests: HTTP/1.1 without Host, two Host lines, a Host value with characters no
 *     uri-host[:port] has (RFC 9112 §3.2); a request-target that is not origin-form,
 *     absolute-form with "scheme://", authority-form (CONNECT only) or "*" (OPTIONS only),
 *     or that holds '#', a control or a non-ASCII byte (§3.2);
 *   - a version other than "HTTP/" DIGIT "." DIGIT (400/502), a major version other than
 *     1 (505); a status code outside 100–599;
 *   - a Connection list that is not tokens, that names Content-Length or Host (a client
 *     could otherwise make the proxy drop the framing), or has more than
 *     HTTP1_CONNECTION_TOKENS_MAX members.
 * Tolerated: empty lines before a request-line (§2.2), empty list members (RFC 9110
 * §5.6.1), a status-line without the SP before an empty reason, HTTP/1.x with x > 1
 * (treated as 1.1, RFC 9110 §6.2).
 *
 * Head: http1_parse_head(p, buf, len) where buf[0] is the first byte of the message. It
 * returns HTTP1_NEED_MORE until the empty line ending the head has arrived; call it again
 * with the same message bytes plus more, possibly at another address (the caller may
 * realloc or compact its buffer): scanning resumes at the byte where it stopped. This is
 * why spans are uint32 offsets from the message start, not pointers: they survive a
 * moved buffer, and they keep a field entry at 20 bytes (max_header_bytes must fit).
 *
 * Body: http1_parse_body() takes the bytes after the head as a stream (each call gets
 * only new bytes) and says how many belong to this message's body, validating the
 * chunked framing as it goes. Two modes:
 *   - pass-through (out == NULL): the proxy forwards in[0..consumed) verbatim; the
 *     parser consumes as much as it can in one call. This is the fast, usual mode.
 *   - decoded (out != NULL): each call yields at most one segment: payload bytes without
 *     framing (HTTP1_SEG_DATA) or raw trailer field lines (HTTP1_SEG_TRAILER), so the
 *     proxy can re-frame ("%x\r\n" data "\r\n" ... "0\r\n" trailers "\r\n").
 * When it returns HTTP1_DONE the message is complete; in[consumed] is the first byte of
 * the next message (pipelining, RFC 9112 §9.3.2): call http1_parser_reset_for_next().
 *
 * Errors are sticky: once a call fails, every later call returns the same code. On an
 * error *consumed is the offset of the offending byte (from the message start for the
 * head, from `in` for the body) — for logs. A request error maps to the status the proxy
 * answers (http1_err_status); it must then also send Connection: close and close, since
 * the framing can no longer be trusted. Any response error → 502.
 *
 * What the proxy must do with the facts:
 *   - hop_by_hop fields (RFC 9110 §7.6.1) are not forwarded. That includes
 *     Transfer-Encoding: when it forwards a chunked body verbatim it must send its own
 *     "Transfer-Encoding: chunked" (and Content-Length is not hop-by-hop: it is forwarded
 *     as is). Trailer field names are not inspected; pass-through forwards them.
 *   - keep_alive false → close after this message (responses read until close are
 *     never keep-alive). A 1xx other than 101 is interim: parse another response for the
 *     same request (reset_for_next keeps the request method). HTTP1_BODY_TUNNEL (101,
 *     2xx to CONNECT) means the connection is no longer HTTP: relay bytes both ways.
 *   - absolute-form targets carry the authority; RFC 9112 §3.2.2 says Host is then
 *     ignored and replaced by it.
 *
 * Ownership: the caller owns the parser (no release needed), the field array (at least
 * limits.max_headers entries, or NULL when the caller needs only the summary facts) and
 * the buffers; the parser keeps no pointer into the buffers between calls.
 * Thread safety: one parser per direction of a connection; no shared mutable state.
 */
#ifndef SLUICE_HTTP1_H
#define SLUICE_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP1_CONNECTION_TOKENS_MAX 16 /* Connection list members; more is HTTP1_E_CONNECTION */

/* name, status the proxy answers to a request failing so, short reason */
#define HTTP1_ERR_MAP(X)                                                                           \
    X(REQUEST_LINE, 400, "malformed request line")                                                 \
    X(TARGET, 400, "malformed request target")                                                     \
    X(TARGET_TOO_LONG, 414, "request target too long")                                             \
    X(VERSION, 505, "HTTP version not supported")                                                  \
    X(STATUS_LINE, 502, "malformed status line")                                                   \
    X(BARE_CR, 400, "CR not followed by LF")                                                       \
    X(BARE_LF, 400, "line ended by LF without CR")                                                 \
    X(OBS_FOLD, 400, "folded or indented field line")                                              \
    X(HEADER_NAME, 400, "malformed field name")                                                    \
    X(HEADER_VALUE, 400, "control character in field value")                                       \
    X(TOO_MANY_HEADERS, 431, "too many header fields")                                             \
    X(HEADERS_TOO_LARGE, 431, "header section too large")                                          \
    X(HOST_MISSING, 400, "HTTP/1.1 request without Host")                                          \
    X(HOST_DUP, 400, "more than one Host")                                                         \
    X(HOST, 400, "malformed Host")                                                                 \
    X(CONNECTION, 400, "malformed Connection")                                                     \
    X(CONTENT_LENGTH, 400, "malformed Content-Length")                                             \
    X(DUP_CONTENT_LENGTH, 400, "more than one Content-Length")                                     \
    X(CL_AND_TE, 400, "both Content-Length and Transfer-Encoding")                                 \
    X(TRANSFER_ENCODING, 400, "bad Transfer-Encoding")                                             \
    X(UNSUPPORTED_TE, 501, "unsupported transfer coding")                                          \
    X(CHUNK_SIZE, 400, "malformed chunk size")                                                     \
    X(CHUNK_TOO_LARGE, 413, "chunk too large")                                                     \
    X(CHUNK_EXT, 400, "malformed or too long chunk extension")                                     \
    X(CHUNK, 400, "chunk data not followed by CRLF")                                               \
    X(BODY_TOO_LARGE, 413, "body too large")                                                       \
    X(TRUNCATED, 400, "connection closed mid-message")

/* What the parse functions return. Errors are negative, in their own range (below the
 * SL_E* codes of err.h), so they never collide with them. */
enum http1_result {
    HTTP1_DONE = 0,
    HTTP1_NEED_MORE = 1,
    HTTP1_E_FIRST_ = -2000,
#define HTTP1_ERR_ENUM(name, status, msg) HTTP1_E_##name,
    HTTP1_ERR_MAP(HTTP1_ERR_ENUM) HTTP1_E_LAST_
#undef HTTP1_ERR_ENUM
};

enum http1_kind { HTTP1_REQUEST, HTTP1_RESPONSE };

enum http1_method {
    HTTP1_METHOD_OTHER, /* a valid token we have no name for (or: not a request) */
    HTTP1_METHOD_GET,
    HTTP1_METHOD_HEAD,
    HTTP1_METHOD_POST,
    HTTP1_METHOD_PUT,
    HTTP1_METHOD_DELETE,
    HTTP1_METHOD_CONNECT,
    HTTP1_METHOD_OPTIONS,
    HTTP1_METHOD_TRACE,
    HTTP1_METHOD_PATCH,
};

/* RFC 9112 §3.2 */
enum http1_target_form {
    HTTP1_TARGET_ORIGIN,    /* "/path?query" */
    HTTP1_TARGET_ABSOLUTE,  /* "http://host/path" */
    HTTP1_TARGET_AUTHORITY, /* "host:port", CONNECT only */
    HTTP1_TARGET_ASTERISK,  /* "*", OPTIONS only */
};

/* How the body is delimited (RFC 9112 §6.3). */
enum http1_body {
    HTTP1_BODY_NONE,        /* no body bytes follow the head */
    HTTP1_BODY_LENGTH,      /* content_length (> 0) bytes follow */
    HTTP1_BODY_CHUNKED,     /* chunked framing follows */
    HTTP1_BODY_UNTIL_CLOSE, /* responses: everything until the upstream closes */
    HTTP1_BODY_TUNNEL,      /* responses: 101, or 2xx to CONNECT: no longer HTTP */
};

/* Fields the parser recognises (names are case-insensitive). */
enum http1_field {
    HTTP1_FIELD_OTHER,
    HTTP1_FIELD_HOST,
    HTTP1_FIELD_CONTENT_LENGTH,
    HTTP1_FIELD_TRANSFER_ENCODING,
    HTTP1_FIELD_CONNECTION,
    HTTP1_FIELD_KEEP_ALIVE,
    HTTP1_FIELD_PROXY_CONNECTION,
    HTTP1_FIELD_TE,
    HTTP1_FIELD_TRAILER,
    HTTP1_FIELD_UPGRADE,
    HTTP1_FIELD_EXPECT,
};

struct http1_limits {
    size_t max_header_bytes;    /* start line + fields + CRLF, and then the trailer section
                                 * counted on top of it; 431 past it; ≤ UINT32_MAX */
    unsigned max_headers;       /* field lines, head and trailers together; 431 past it */
    uint64_t max_body_bytes;    /* payload bytes, framing excluded; 0 = unlimited; 413 */
    uint64_t max_chunk_size;    /* one chunk's size; 0 = only the 16-hex-digit bound; 413 */
    size_t max_chunk_ext_bytes; /* chunk-extension bytes summed over one message; 400 */
};

/* 16 KiB, 100 fields, unlimited body, 1 GiB chunks, 4 KiB of chunk extensions. */
extern const struct http1_limits http1_limits_default;

/* Bytes [off, off + len) of the message, counted from its first byte. */
struct http1_span {
    uint32_t off;
    uint32_t len;
};

struct http1_header {
    struct http1_span name;  /* a token, as sent (case preserved) */
    struct http1_span value; /* OWS around it trimmed; may be empty */
    uint8_t id;              /* enum http1_field */
    bool hop_by_hop;         /* RFC 9110 §7.6.1: do not forward; set at HTTP1_DONE */
};

/* The facts of one message head, valid once http1_parse_head returned HTTP1_DONE. */
struct http1_message {
    /* requests */
    enum http1_method method;
    struct http1_span method_name;
    struct http1_span target;
    enum http1_target_form target_form;
    struct http1_span host; /* the Host value (may be empty); {0, 0} when absent */
    bool has_host;
    bool expect_continue; /* HTTP/1.1 with "Expect: 100-continue" (RFC 9110 §10.1.1) */
    /* responses */
    unsigned status; /* 100–599 */
    struct http1_span reason;
    /* both */
    unsigned version_minor; /* HTTP/1.<minor>; 0 or more */
    enum http1_body body;
    uint64_t content_length; /* 0 when absent */
    bool has_content_length; /* also for HEAD/204/304 answers, whose body is NONE */
    bool keep_alive;         /* the connection may carry another message afterwards */
    bool upgrade;            /* HTTP/1.1, Upgrade field and "upgrade" in Connection */
    bool has_connection;     /* Connection listed at least one option */
    unsigned nfields;        /* header fields (trailers are not counted here) */
    uint32_t head_bytes;     /* length of the head; the body starts there */
};

/* Caller-owned; initialise with http1_parser_init. Read `msg` (and the field array);
 * everything after it is private. */
struct http1_parser {
    struct http1_message msg;

    /* private: configuration, kept by reset_for_next */
    enum http1_kind kind;
    enum http1_method request_method; /* responses: the request they answer */
    struct http1_limits limits;
    struct http1_header *fields;
    unsigned fields_cap;
    /* private: progress through the current message */
    int err; /* sticky; 0 when none */
    uint8_t state;
    bool head_done, in_trailers;
    uint32_t pos; /* head: bytes scanned so far */
    uint32_t tok; /* head: where the current token or field name starts */
    uint32_t name_len, value_off, value_end;
    unsigned nlines; /* field lines so far, head and trailers */
    size_t trailer_bytes;
    size_t ext_bytes;
    unsigned chunk_digits;
    uint64_t remaining; /* body bytes left (length), or bytes left in this chunk */
    uint64_t body_bytes;
    /* private: what the fields said, resolved at the end of the head */
    bool conn_close, conn_keep_alive, conn_upgrade, saw_upgrade, saw_expect, saw_te;
    bool te_chunked_last;
    unsigned te_codings, te_chunked;
    unsigned nconn;
    struct http1_span conn[HTTP1_CONNECTION_TOKENS_MAX];
};

/* One piece of decoded body: in[off, off + len) of the http1_parse_body call. */
enum http1_seg { HTTP1_SEG_NONE, HTTP1_SEG_DATA, HTTP1_SEG_TRAILER };
struct http1_chunk_out {
    enum http1_seg kind; /* NONE when the call produced nothing to emit */
    size_t off;
    size_t len;
};

/* limits NULL = http1_limits_default. fields: room for limits->max_headers entries
 * (fields_cap must be at least that), or NULL not to record fields (hop-by-hop marks
 * then have nowhere to go; the message summary is still filled in). */
void http1_parser_init(struct http1_parser *p, enum http1_kind kind,
                       const struct http1_limits *limits, struct http1_header *fields,
                       unsigned fields_cap);
/* Start over for the next message on the same connection: clears everything but the
 * kind, limits, field array and request method. */
void http1_parser_reset_for_next(struct http1_parser *p);
/* Responses: the method of the request being answered (GET until set). HEAD makes the
 * body NONE, CONNECT makes a 2xx a TUNNEL (RFC 9112 §6.3). */
void http1_parser_set_request_method(struct http1_parser *p, enum http1_method method);

/* Parse the head in buf[0..len), buf[0] being the message's first byte.
 * HTTP1_NEED_MORE: *consumed = 0; call again with these bytes plus more (len must not
 * shrink). HTTP1_DONE: *consumed = msg.head_bytes; the body (or next message) starts at
 * buf + *consumed. Negative: an HTTP1_E_* code, *consumed = offset of the bad byte.
 * Called again after HTTP1_DONE, it returns HTTP1_DONE. */
int http1_parse_head(struct http1_parser *p, const char *buf, size_t len, size_t *consumed);
/* After the head: take in[0..len), the bytes following what earlier calls consumed, and
 * consume those that belong to the body. out NULL = pass-through (consume all it can);
 * otherwise decoded: *out gets this call's one segment (kind NONE for none).
 * HTTP1_NEED_MORE: the body continues; when len > 0, *consumed ≥ 1 (decoded mode may
 * stop early, after a segment: call again with the rest). HTTP1_DONE: the message is
 * complete and in[*consumed] starts the next one (BODY_NONE: at once, *consumed = 0).
 * Negative: an HTTP1_E_* code; *consumed = body bytes in this call before the bad one. */
int http1_parse_body(struct http1_parser *p, const char *in, size_t len, size_t *consumed,
                     struct http1_chunk_out *out);
/* The peer closed the connection: HTTP1_DONE if the message is complete (finished, or
 * a body read until close / a tunnel), else HTTP1_E_TRUNCATED (also sticky). */
int http1_parse_eof(struct http1_parser *p);

/* The HTTP status the proxy answers when a message of this kind fails with err: the
 * table's status for requests, 502 for every response error. 500 for an unknown code. */
int http1_err_status(enum http1_kind kind, int err);
/* Short reason ("more than one Content-Length"), "unknown error" for other codes. */
const char *http1_err_str(int err);
/* Symbolic name ("HTTP1_E_CL_AND_TE"), for logs and tests; "?" for other codes. */
const char *http1_err_name(int err);

/* Index in the field array of the first field called name (case-insensitive), -1 when
 * absent or fields are not recorded. buf is the message buffer the spans refer to. */
int http1_field_find(const struct http1_parser *p, const char *buf, const char *name);
/* Case-insensitive comparison of the bytes under a span with a NUL-terminated string. */
bool http1_span_equals(const char *buf, struct http1_span span, const char *s);

#endif
