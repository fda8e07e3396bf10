/*
 * fuzz_http1 — the data-plane HTTP/1.1 parser on arbitrary bytes, as a stream of
 * pipelined requests and as a stream of responses. The first byte is control: it picks
 * where the rest is split into two reads, the request method a response answers, and
 * small or default limits. Each stream is parsed four ways — whole and split, decoded
 * and pass-through body — and every message's outcome (code, offset, head facts, field
 * spans and hop-by-hop marks, and for complete messages the body bytes) must agree, or
 * the target aborts. It also aborts when a call breaks the API contract: consumed counts
 * past the input, spans outside the head, no progress, pass-through not taking all.
 * Each read lands in a buffer of exactly its size, so ASan sees any read past it.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http1.h"

#define MAX_MSGS 16

static const struct http1_limits small_limits = {
    .max_header_bytes = 256,
    .max_headers = 8,
    .max_body_bytes = 512,
    .max_chunk_size = 300,
    .max_chunk_ext_bytes = 24,
};

struct outcome {
    int rc;
    size_t at;
    bool head_done;
    uint64_t facts; /* hash of the head's facts and fields */
    uint64_t body;  /* hash of the body bytes (decoded payload, or raw) */
    uint64_t trailers;
};

struct run {
    struct http1_parser p;
    struct http1_header fields[100];
    bool decoded;
    const char *buf;
    size_t avail, start, pos;
    bool in_body, stopped;
    struct outcome out[MAX_MSGS];
    unsigned n;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v;
    h *= 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static uint64_t mix_bytes(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = mix(h, (unsigned char)s[i]);
    return h;
}

static void check_span(struct http1_span s, uint32_t head)
{
    if ((uint64_t)s.off + s.len > head)
        abort();
}

static uint64_t head_facts(const struct run *r)
{
    const struct http1_message *m = &r->p.msg;
    uint64_t h = 0xcbf29ce484222325ULL;
    const struct http1_span spans[] = {m->method_name, m->target, m->host, m->reason};
    for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++) {
        check_span(spans[i], m->head_bytes);
        h = mix(mix(h, spans[i].off), spans[i].len);
    }
    const uint64_t v[] = {
        m->method,         m->target_form, m->has_host,       m->expect_continue,   m->status,
        m->version_minor,  m->body,        m->content_length, m->keep_alive,        m->upgrade,
        m->has_connection, m->nfields,     m->head_bytes,     m->has_content_length};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        h = mix(h, v[i]);
    for (unsigned i = 0; i < m->nfields; i++) {
        const struct http1_header *f = &r->fields[i];
        check_span(f->name, m->head_bytes);
        check_span(f->value, m->head_bytes);
        h = mix(mix(mix(h, f->name.off), f->name.len), mix(f->value.off, f->value.len));
        h = mix(mix(h, f->id), f->hop_by_hop);
    }
    return h;
}

static void finish(struct run *r, int rc, size_t at)
{
    r->out[r->n].rc = rc;
    r->out[r->n].at = at;
    if (++r->n == MAX_MSGS || rc < 0)
        r->stopped = true;
}

static bool step_head(struct run *r)
{
    struct outcome *o = &r->out[r->n];
    size_t c, len = r->avail - r->start;
    int rc = http1_parse_head(&r->p, r->buf + r->start, len, &c);
    if (rc == HTTP1_NEED_MORE) {
        if (c != 0)
            abort();
        return false;
    }
    if (rc < 0) {
        finish(r, rc, c);
        return false;
    }
    if (rc != HTTP1_DONE || c != r->p.msg.head_bytes || c > len || c > r->p.limits.max_header_bytes)
        abort();
    o->head_done = true;
    o->facts = head_facts(r);
    r->in_body = true;
    r->pos = r->start + c;
    return true;
}

static void record(struct run *r, const struct http1_chunk_out *seg, size_t c)
{
    struct outcome *o = &r->out[r->n];
    const char *in = r->buf + r->pos;
    if (!r->decoded) {
        o->body = mix_bytes(o->body, in, c);
        return;
    }
    if (seg->off + seg->len > c || (seg->kind == HTTP1_SEG_NONE && seg->len != 0))
        abort();
    if (seg->kind == HTTP1_SEG_DATA)
        o->body = mix_bytes(o->body, in + seg->off, seg->len);
    else if (seg->kind == HTTP1_SEG_TRAILER)
        o->trailers = mix_bytes(o->trailers, in + seg->off, seg->len);
}

static bool step_body(struct run *r)
{
    struct http1_chunk_out seg;
    size_t c, len = r->avail - r->pos;
    int rc = http1_parse_body(&r->p, r->buf + r->pos, len, &c, r->decoded ? &seg : NULL);
    if (rc < 0) {
        finish(r, rc, r->pos - r->start + c);
        return false;
    }
    if (c > len || (rc == HTTP1_NEED_MORE && len > 0 && c == 0) ||
        (rc == HTTP1_NEED_MORE && !r->decoded && c != len))
        abort();
    record(r, &seg, c);
    r->pos += c;
    if (rc == HTTP1_DONE) {
        finish(r, HTTP1_DONE, r->pos - r->start);
        r->start = r->pos;
        r->in_body = false;
        http1_parser_reset_for_next(&r->p);
        return true;
    }
    return r->pos < r->avail;
}

/* The bytes so far are buf[0..avail): parse as far as they allow. */
static void run_to_end_of_input(struct run *r)
{
    for (bool more = true; more && !r->stopped;)
        more = r->in_body ? step_body(r) : step_head(r);
}

static void run_eof(struct run *r)
{
    if (r->stopped || (!r->in_body && r->avail == r->start))
        return;
    int rc = http1_parse_eof(&r->p);
    finish(r, rc, rc == HTTP1_DONE ? r->pos - r->start : r->avail - r->start);
}

/* Parses data[0..n) delivered as data[0..split) then the rest, each read copied into a
 * fresh buffer of exactly the bytes received so far (the parser must keep offsets only). */
static void run_stream(struct run *r, enum http1_kind kind, enum http1_method method,
                       const struct http1_limits *limits, bool decoded, const uint8_t *data,
                       size_t n, size_t split)
{
    memset(r, 0, sizeof(*r));
    http1_parser_init(&r->p, kind, limits, r->fields, 100);
    http1_parser_set_request_method(&r->p, method);
    r->decoded = decoded;
    const size_t cuts[2] = {split, n};
    char *prev = NULL;
    for (int k = 0; k < 2; k++) {
        char *b = malloc(cuts[k] ? cuts[k] : 1);
        if (!b)
            abort();
        memcpy(b, data, cuts[k]);
        free(prev);
        prev = b;
        r->buf = b;
        r->avail = cuts[k];
        run_to_end_of_input(r);
    }
    run_eof(r);
    free(prev);
}

static bool same(const struct run *a, const struct run *b, bool bodies)
{
    if (a->n != b->n)
        return false;
    for (unsigned i = 0; i < a->n; i++) {
        const struct outcome *x = &a->out[i], *y = &b->out[i];
        if (x->rc != y->rc || x->at != y->at || x->head_done != y->head_done ||
            x->facts != y->facts)
            return false;
        if (bodies && x->rc == HTTP1_DONE && (x->body != y->body || x->trailers != y->trailers))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static struct run runs[4]; /* whole/split × decoded/pass-through; ~9 KB each */
    const uint8_t ctl = data[0];
    const uint8_t *msg = data + 1;
    size_t n = size - 1;
    size_t split = n * (ctl & 0x1f) / 31;
    static const enum http1_method methods[] = {HTTP1_METHOD_GET, HTTP1_METHOD_HEAD,
                                                HTTP1_METHOD_CONNECT, HTTP1_METHOD_POST};
    const struct http1_limits *limits = (ctl & 0x20) ? &small_limits : NULL;
    for (int kind = 0; kind < 2; kind++) {
        enum http1_method method = methods[ctl >> 6];
        for (int decoded = 0; decoded < 2; decoded++) {
            run_stream(&runs[decoded * 2], kind, method, limits, decoded, msg, n, n);
            run_stream(&runs[decoded * 2 + 1], kind, method, limits, decoded, msg, n, split);
            if (!same(&runs[decoded * 2], &runs[decoded * 2 + 1], true))
                abort();
        }
        if (!same(&runs[0], &runs[2], false)) /* the body mode changes no verdict */
            abort();
    }
    return 0;
}
