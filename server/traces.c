/*
 * traces — the trace store (traces.h): OTLP JSON in, bounded traces held, lists and
 * trees out.
 *
 * Layout: a trace is found by id through a chained hash table and sits on one of three
 * lists, one per class (ordinary, slow, error), each in arrival order, so eviction takes
 * the head of the lowest non-empty list. A trace holds its spans in an array in arrival
 * order; each span's strings live in one allocation. Nothing about a trace's shape
 * (roots, orphans, tree, critical path) is stored: struct view computes it when a trace
 * is read, from the spans held at that moment, so spans arriving in any order need no
 * repair work.
 */
#include "traces.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "traceparent.h"

#define NS_PER_MS 1000000u

/* OTLP span flags (trace.proto SpanFlags): the parent's is_remote is known, and true. */
#define OTLP_FLAGS_HAS_IS_REMOTE 0x100u
#define OTLP_FLAGS_IS_REMOTE     0x200u
#define OTLP_STATUS_ERROR        2
#define OTLP_KIND_MAX            5 /* SPAN_KIND_CONSUMER */

enum trace_class { CLASS_ORDINARY, CLASS_SLOW, CLASS_ERROR, CLASS_COUNT };

/* A span's strings: its own, then its agent's (the resource). */
enum span_str {
    STR_NAME,
    STR_ROUTE,
    STR_METHOD,
    STR_REQUEST_ID,
    STR_SERVICE,
    STR_AGENT,
    STR_ROLE,
    STR_COUNT
};

struct tspan {
    uint64_t span_id;
    uint64_t parent_id; /* 0: none */
    uint64_t start_ns, end_ns;
    uint64_t upstream_ns;
    bool has_upstream, faulted;
    bool parent_remote; /* flags say so, or a gateway recorded it (traces.h "Shape") */
    int kind, status_code, http_status;
    char *str[STR_COUNT]; /* one allocation, owned through str[0] */
};

struct trace {
    uint8_t id[16];
    struct trace *hnext;       /* hash chain */
    struct trace *prev, *next; /* class list, arrival order */
    uint64_t seq;              /* arrival order in the store */
    uint64_t received_ms;
    uint64_t start_ns, end_ns; /* min start, max end of the spans held */
    enum trace_class cls;
    bool error;
    struct tspan *spans;
    size_t n, cap;
};

struct trace_list {
    struct trace *head, *tail; /* oldest first */
};

struct trace_store {
    struct trace_store_limits lim;
    struct trace **buckets;
    size_t bucket_mask;
    struct trace_list lists[CLASS_COUNT];
    uint64_t next_seq;
    struct trace_store_stats stats;
};

/* --- small helpers -------------------------------------------------------------------- */

static bool span_is_error(const struct tspan *sp)
{
    return sp->status_code == OTLP_STATUS_ERROR || sp->http_status >= 500;
}

static uint64_t trace_duration_ns(const struct trace *t)
{
    return t->end_ns - t->start_ns;
}

/* Milliseconds with microsecond precision. */
static double ns_to_ms(uint64_t ns)
{
    return (double)(ns / 1000u) / 1000.0;
}

/* Lowercase hex only (W3C Trace Context §3.2.2.3); false also for an all-zero id. */
static bool hex_decode_id(const char *hex, uint8_t *out, size_t len)
{
    if (!hex || strlen(hex) != 2 * len)
        return false;
    bool nonzero = false;
    for (size_t i = 0; i < 2 * len; i++) {
        char c = hex[i];
        unsigned v;
        if (c >= '0' && c <= '9')
            v = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = (unsigned)(c - 'a' + 10);
        else
            return false;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
        nonzero = nonzero || v != 0;
    }
    return nonzero;
}

static bool span_id_decode(const char *hex, uint64_t *out)
{
    uint8_t b[8];
    if (!hex_decode_id(hex, b, sizeof(b)))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(b); i++)
        v = v << 8 | b[i];
    *out = v;
    return true;
}

static void span_id_format(uint64_t id, char out[17])
{
    snprintf(out, 17, "%016" PRIx64, id);
}

/* An OTLP 64-bit integer: a decimal string (the JSON encoding) or a JSON integer. */
static bool json_u64(const json_t *v, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0)
            return false;
        *out = (uint64_t)i;
        return true;
    }
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) > 20)
        return false;
    uint64_t r = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (r > (UINT64_MAX - d) / 10)
            return false;
        r = r * 10 + d;
    }
    *out = r;
    return true;
}

/* Bytes of s to keep: all, or at most TRACE_STR_MAX - 1 cut before a UTF-8 continuation
 * byte, so the copy stays valid UTF-8 (jansson refuses anything else). */
static size_t str_keep_len(const char *s)
{
    size_t len = strnlen(s, TRACE_STR_MAX);
    if (len < TRACE_STR_MAX)
        return len;
    len = TRACE_STR_MAX - 1;
    while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
        len--;
    return len;
}

/* --- reading OTLP JSON ---------------------------------------------------------------- */

struct resource {
    const char *service, *agent_id, *role;
};

/* A span as read from the document: sp without its strings, which point into the
 * document until tspan_copy. */
struct incoming {
    uint8_t trace_id[16];
    struct tspan sp;
    const char *str[STR_COUNT];
};

/* The "value" of the first attribute named key, or NULL. */
static const json_t *attr_value(const json_t *attrs, const char *key)
{
    size_t i;
    const json_t *a;
    json_array_foreach(attrs, i, a)
    {
        const char *k = json_string_value(json_object_get(a, "key"));
        if (k && strcmp(k, key) == 0)
            return json_object_get(a, "value");
    }
    return NULL;
}

static const char *attr_string(const json_t *attrs, const char *key)
{
    const char *v = json_string_value(json_object_get(attr_value(attrs, key), "stringValue"));
    return v ? v : "";
}

static void resource_read(const json_t *rs, struct resource *res)
{
    const json_t *attrs = json_object_get(json_object_get(rs, "resource"), "attributes");
    res->service = attr_string(attrs, "service.name");
    if (!*res->service)
        res->service = "unknown_service"; /* OpenTelemetry's default service.name */
    res->agent_id = attr_string(attrs, "sluice.agent.id");
    res->role = attr_string(attrs, "sluice.role");
}

/* An optional integer member in [0, max]: absent leaves *out alone. */
static bool member_int(const json_t *obj, const char *key, json_int_t max, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return false;
    *out = json_integer_value(v);
    return true;
}

static bool span_read_ids(const json_t *js, struct incoming *in)
{
    if (!hex_decode_id(json_string_value(json_object_get(js, "traceId")), in->trace_id, 16))
        return false;
    if (!span_id_decode(json_string_value(json_object_get(js, "spanId")), &in->sp.span_id))
        return false;
    const json_t *parent = json_object_get(js, "parentSpanId");
    in->sp.parent_id = 0;
    if (!parent || json_is_null(parent) ||
        (json_is_string(parent) && json_string_length(parent) == 0))
        return true;
    return span_id_decode(json_string_value(parent), &in->sp.parent_id);
}

static bool span_read_attributes(const json_t *attrs, struct incoming *in)
{
    if (attrs && !json_is_array(attrs))
        return false;
    in->str[STR_ROUTE] = attr_string(attrs, "http.route");
    in->str[STR_METHOD] = attr_string(attrs, "http.request.method");
    in->str[STR_REQUEST_ID] = attr_string(attrs, "sluice.request_id");
    uint64_t status;
    const json_t *st = json_object_get(attr_value(attrs, "http.response.status_code"), "intValue");
    if (json_u64(st, &status) && status >= 100 && status <= 599)
        in->sp.http_status = (int)status;
    const json_t *up = json_object_get(attr_value(attrs, "sluice.upstream_ns"), "intValue");
    in->sp.has_upstream = json_u64(up, &in->sp.upstream_ns);
    in->sp.faulted =
        json_is_true(json_object_get(attr_value(attrs, "sluice.faulted"), "boolValue"));
    return true;
}

/* False when the span is invalid (traces.h "Input"). */
static bool span_read(const json_t *js, const struct resource *res, struct incoming *in)
{
    memset(in, 0, sizeof(*in));
    if (!json_is_object(js) || !span_read_ids(js, in))
        return false;
    const json_t *name = json_object_get(js, "name");
    if (name && !json_is_string(name))
        return false;
    in->str[STR_NAME] = name ? json_string_value(name) : "";
    int64_t kind = 0, flags = 0, code = 0;
    if (!member_int(js, "kind", OTLP_KIND_MAX, &kind) ||
        !member_int(js, "flags", UINT32_MAX, &flags))
        return false;
    const json_t *status = json_object_get(js, "status");
    if (status && (!json_is_object(status) || !member_int(status, "code", 2, &code)))
        return false;
    if (!json_u64(json_object_get(js, "startTimeUnixNano"), &in->sp.start_ns) ||
        !json_u64(json_object_get(js, "endTimeUnixNano"), &in->sp.end_ns) ||
        in->sp.end_ns < in->sp.start_ns)
        return false;
    if (!span_read_attributes(json_object_get(js, "attributes"), in))
        return false;
    in->sp.kind = (int)kind;
    in->sp.status_code = (int)code;
    uint64_t remote = OTLP_FLAGS_HAS_IS_REMOTE | OTLP_FLAGS_IS_REMOTE;
    in->sp.parent_remote =
        ((uint64_t)flags & remote) == remote || strcmp(res->role, "gateway") == 0;
    in->str[STR_SERVICE] = res->service;
    in->str[STR_AGENT] = res->agent_id;
    in->str[STR_ROLE] = res->role;
    return true;
}

/* Copies in's span and its strings (one allocation) into *out. */
static int tspan_copy(const struct incoming *in, struct tspan *out)
{
    size_t len[STR_COUNT], total = 0;
    for (size_t i = 0; i < STR_COUNT; i++) {
        len[i] = str_keep_len(in->str[i]);
        total += len[i] + 1;
    }
    char *p = malloc(total);
    if (!p)
        return SL_ENOMEM;
    *out = in->sp;
    for (size_t i = 0; i < STR_COUNT; i++) {
        memcpy(p, in->str[i], len[i]);
        p[len[i]] = '\0';
        out->str[i] = p;
        p += len[i] + 1;
    }
    return SL_OK;
}

/* --- the store: hash table, class lists, eviction ------------------------------------- */

static size_t trace_hash(const struct trace_store *s, const uint8_t id[16])
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < 16; i++)
        h = (h ^ id[i]) * 0x100000001b3u;
    return (size_t)(h ^ h >> 32) & s->bucket_mask;
}

static struct trace *trace_find(const struct trace_store *s, const uint8_t id[16])
{
    struct trace *t = s->buckets[trace_hash(s, id)];
    while (t && memcmp(t->id, id, 16) != 0)
        t = t->hnext;
    return t;
}

static void list_remove(struct trace_list *l, struct trace *t)
{
    *(t->prev ? &t->prev->next : &l->head) = t->next;
    *(t->next ? &t->next->prev : &l->tail) = t->prev;
    t->prev = t->next = NULL;
}

/* Keeps the list in arrival order; a trace changing class is usually recent, so the walk
 * from the tail is short (at worst the whole list). */
static void list_insert(struct trace_list *l, struct trace *t)
{
    struct trace *after = l->tail;
    while (after && after->seq > t->seq)
        after = after->prev;
    t->prev = after;
    t->next = after ? after->next : l->head;
    *(t->next ? &t->next->prev : &l->tail) = t;
    *(after ? &after->next : &l->head) = t;
}

static void trace_destroy(struct trace *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->spans[i].str[0]);
    free(t->spans);
    free(t);
}

static void store_evict_one(struct trace_store *s)
{
    struct trace *victim = NULL;
    for (int c = 0; c < CLASS_COUNT && !victim; c++)
        victim = s->lists[c].head;
    if (!victim)
        return;
    struct trace **p = &s->buckets[trace_hash(s, victim->id)];
    while (*p != victim)
        p = &(*p)->hnext;
    *p = victim->hnext;
    list_remove(&s->lists[victim->cls], victim);
    s->stats.traces--;
    s->stats.spans -= victim->n;
    s->stats.traces_evicted++;
    trace_destroy(victim);
}

static struct trace *trace_create(struct trace_store *s, const uint8_t id[16], uint64_t now_ms)
{
    struct trace *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cap = s->lim.max_spans_per_trace < 4 ? s->lim.max_spans_per_trace : 4;
    t->spans = malloc(t->cap * sizeof(*t->spans));
    if (!t->spans) {
        free(t);
        return NULL;
    }
    memcpy(t->id, id, 16);
    t->seq = s->next_seq++;
    t->received_ms = now_ms;
    t->start_ns = UINT64_MAX;
    size_t b = trace_hash(s, id);
    t->hnext = s->buckets[b];
    s->buckets[b] = t;
    list_insert(&s->lists[CLASS_ORDINARY], t);
    s->stats.traces++;
    return t;
}

static bool trace_has_span(const struct trace *t, uint64_t span_id)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->spans[i].span_id == span_id)
            return true;
    return false;
}

static void trace_reclassify(struct trace_store *s, struct trace *t)
{
    enum trace_class c = CLASS_ORDINARY;
    if (t->error)
        c = CLASS_ERROR;
    else if (trace_duration_ns(t) / NS_PER_MS >= s->lim.slow_ms)
        c = CLASS_SLOW;
    if (c == t->cls)
        return;
    list_remove(&s->lists[t->cls], t);
    t->cls = c;
    list_insert(&s->lists[c], t);
}

/* Takes sp (its strings) on success. */
static int trace_append(struct trace_store *s, struct trace *t, const struct tspan *sp)
{
    if (t->n == t->cap) {
        size_t cap =
            t->cap * 2 < s->lim.max_spans_per_trace ? t->cap * 2 : s->lim.max_spans_per_trace;
        struct tspan *grown = realloc(t->spans, cap * sizeof(*grown));
        if (!grown)
            return SL_ENOMEM;
        t->spans = grown;
        t->cap = cap;
    }
    t->spans[t->n++] = *sp;
    s->stats.spans++;
    if (sp->start_ns < t->start_ns)
        t->start_ns = sp->start_ns;
    if (sp->end_ns > t->end_ns)
        t->end_ns = sp->end_ns;
    t->error = t->error || span_is_error(sp);
    trace_reclassify(s, t);
    return SL_OK;
}

static int store_add_span(struct trace_store *s, const struct incoming *in, uint64_t now_ms)
{
    struct trace *t = trace_find(s, in->trace_id);
    if (t && trace_has_span(t, in->sp.span_id)) {
        s->stats.spans_duplicate++;
        return SL_OK;
    }
    if (t && t->n >= s->lim.max_spans_per_trace) {
        s->stats.spans_dropped++;
        return SL_OK;
    }
    struct tspan sp;
    if (tspan_copy(in, &sp) != SL_OK)
        return SL_ENOMEM;
    if (!t) {
        if (s->stats.traces >= s->lim.max_traces)
            store_evict_one(s);
        t = trace_create(s, in->trace_id, now_ms);
        if (!t)
            goto err_free_span;
    }
    /* A new trace has room for its first span, so only an existing one can fail here. */
    if (trace_append(s, t, &sp) != SL_OK)
        goto err_free_span;
    return SL_OK;

err_free_span:
    free(sp.str[0]);
    return SL_ENOMEM;
}

static int store_add_spans(struct trace_store *s, const json_t *spans, const struct resource *res,
                           uint64_t now_ms)
{
    size_t i;
    const json_t *js;
    json_array_foreach(spans, i, js)
    {
        struct incoming in;
        if (!span_read(js, res, &in)) {
            s->stats.spans_invalid++;
            continue;
        }
        int rc = store_add_span(s, &in, now_ms);
        if (rc != SL_OK)
            return rc;
    }
    return SL_OK;
}

/* An optional array member: absent is empty (NULL, true); another type is false. */
static bool member_array(const json_t *obj, const char *key, const json_t **out)
{
    *out = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    return json_is_object(obj) && (!*out || json_is_array(*out));
}

static int store_add_resource(struct trace_store *s, const json_t *rs, uint64_t now_ms)
{
    const json_t *scopes, *spans;
    if (!member_array(rs, "scopeSpans", &scopes)) {
        s->stats.spans_invalid++;
        return SL_OK;
    }
    struct resource res;
    resource_read(rs, &res);
    size_t i;
    const json_t *ss;
    json_array_foreach(scopes, i, ss)
    {
        if (!member_array(ss, "spans", &spans)) {
            s->stats.spans_invalid++;
            continue;
        }
        int rc = store_add_spans(s, spans, &res, now_ms);
        if (rc != SL_OK)
            return rc;
    }
    return SL_OK;
}

int trace_store_add_otlp(struct trace_store *s, const json_t *doc, uint64_t now_ms)
{
    const json_t *list = json_object_get(doc, "resourceSpans");
    if (!json_is_array(list))
        return SL_EPARSE;
    size_t i;
    const json_t *rs;
    json_array_foreach(list, i, rs)
    {
        int rc = store_add_resource(s, rs, now_ms);
        if (rc != SL_OK)
            return rc;
    }
    return SL_OK;
}

struct trace_store *trace_store_new(const struct trace_store_limits *limits)
{
    struct trace_store_limits lim = {0};
    if (limits)
        lim = *limits;
    if (lim.max_traces == 0)
        lim.max_traces = TRACE_STORE_MAX_TRACES;
    if (lim.max_spans_per_trace == 0)
        lim.max_spans_per_trace = TRACE_STORE_MAX_SPANS_PER_TRACE;
    if (lim.slow_ms == 0)
        lim.slow_ms = TRACE_STORE_SLOW_MS;
    if (lim.max_traces > TRACE_STORE_TRACES_CAP || lim.max_spans_per_trace > TRACE_STORE_SPANS_CAP)
        return NULL;
    struct trace_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->lim = lim;
    size_t nb = 1;
    while (nb < lim.max_traces)
        nb *= 2;
    s->bucket_mask = nb - 1;
    s->buckets = calloc(nb, sizeof(*s->buckets));
    if (!s->buckets) {
        free(s);
        return NULL;
    }
    return s;
}

void trace_store_free(struct trace_store *s)
{
    if (!s)
        return;
    for (int c = 0; c < CLASS_COUNT; c++) {
        struct trace *t = s->lists[c].head;
        while (t) {
            struct trace *next = t->next;
            trace_destroy(t);
            t = next;
        }
    }
    free(s->buckets);
    free(s);
}

void trace_store_stats(const struct trace_store *s, struct trace_store_stats *out)
{
    *out = s->stats;
}

/* --- the shape of one trace: struct view ---------------------------------------------- */

enum node_kind { NODE_CHILD, NODE_ROOT, NODE_ORPHAN };

struct vnode {
    int32_t parent; /* in the tree; -1 for a top-level span */
    int32_t first_child, last_child, next_sibling;
    uint8_t kind; /* enum node_kind */
    uint8_t mark; /* cycle search: 0 unseen, 1 on the current walk, 2 done */
    bool critical, detached;
};

struct view {
    const struct trace *t;
    struct vnode *nodes;
    uint32_t *order; /* span indices by (start, later end first, span id) */
    int32_t entry;
    size_t roots, orphans;
};

struct span_key {
    uint64_t start_ns, end_ns, id;
    uint32_t idx;
};

static int cmp_key_id(const void *a, const void *b)
{
    const struct span_key *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_key_start(const void *a, const void *b)
{
    const struct span_key *x = a, *y = b;
    if (x->start_ns != y->start_ns)
        return x->start_ns < y->start_ns ? -1 : 1;
    if (x->end_ns != y->end_ns)
        return x->end_ns > y->end_ns ? -1 : 1;
    return cmp_key_id(a, b);
}

/* Links each span to its parent, or makes it a root or an orphan (traces.h "Shape").
 * keys are sorted by id. */
static void view_link_parents(struct view *v, const struct span_key *keys)
{
    const struct trace *t = v->t;
    for (size_t i = 0; i < t->n; i++) {
        const struct tspan *sp = &t->spans[i];
        struct vnode *nd = &v->nodes[i];
        nd->parent = -1;
        nd->first_child = nd->last_child = nd->next_sibling = -1;
        if (sp->parent_id == 0) {
            nd->kind = NODE_ROOT;
            continue;
        }
        struct span_key want = {.id = sp->parent_id};
        const struct span_key *p = bsearch(&want, keys, t->n, sizeof(*keys), cmp_key_id);
        if (p && p->idx != i) {
            nd->kind = NODE_CHILD;
            nd->parent = (int32_t)p->idx;
        } else {
            nd->kind = sp->parent_remote && !p ? NODE_ROOT : NODE_ORPHAN;
        }
    }
}

/* Parent links that loop never reach a top-level span: walk up from every span, and
 * where a walk meets itself, cut the span it met loose as an orphan. Each span is
 * walked over once after which it is marked done, so this is O(n). */
static void view_break_cycles(struct view *v)
{
    for (size_t k = 0; k < v->t->n; k++) {
        int32_t j = (int32_t)v->order[k];
        while (v->nodes[j].mark == 0 && v->nodes[j].kind == NODE_CHILD) {
            v->nodes[j].mark = 1;
            j = v->nodes[j].parent;
        }
        bool cycle = v->nodes[j].mark == 1;
        for (int32_t w = (int32_t)v->order[k]; v->nodes[w].mark == 1; w = v->nodes[w].parent)
            v->nodes[w].mark = 2;
        if (cycle) {
            v->nodes[j].kind = NODE_ORPHAN;
            v->nodes[j].parent = -1;
        }
    }
}

/* Children lists in start order; roots, orphans and the entry span. */
static void view_link_children(struct view *v)
{
    v->entry = -1;
    int32_t first_orphan = -1;
    for (size_t k = 0; k < v->t->n; k++) {
        int32_t i = (int32_t)v->order[k];
        struct vnode *nd = &v->nodes[i];
        if (nd->kind == NODE_ROOT) {
            v->roots++;
            if (v->entry < 0)
                v->entry = i;
        } else if (nd->kind == NODE_ORPHAN) {
            v->orphans++;
            if (first_orphan < 0)
                first_orphan = i;
        } else {
            struct vnode *p = &v->nodes[nd->parent];
            *(p->last_child >= 0 ? &v->nodes[p->last_child].next_sibling : &p->first_child) = i;
            p->last_child = i;
        }
    }
    if (v->entry < 0)
        v->entry = first_orphan;
}

struct crit_item {
    int32_t node;
    uint64_t limit_ns;
};

/* The child of node that the critical path takes before cursor (traces.h), or -1; *end
 * gets its end clamped to the cursor. */
static int32_t critical_child(const struct view *v, int32_t node, uint64_t cursor, uint64_t *end)
{
    const struct tspan *spans = v->t->spans;
    int32_t best = -1;
    for (int32_t c = v->nodes[node].first_child; c >= 0; c = v->nodes[c].next_sibling) {
        if (spans[c].start_ns >= cursor)
            continue;
        uint64_t c_end = spans[c].end_ns < cursor ? spans[c].end_ns : cursor;
        if (best < 0 || c_end > *end ||
            (c_end == *end && spans[c].start_ns > spans[best].start_ns)) {
            best = c;
            *end = c_end;
        }
    }
    return best;
}

/* stack has room for every span: each is pushed at most once, by its parent, since the
 * cursor only moves back. */
static void view_mark_critical(struct view *v, struct crit_item *stack)
{
    const struct tspan *spans = v->t->spans;
    size_t top = 0;
    stack[top++] = (struct crit_item){v->entry, spans[v->entry].end_ns};
    while (top > 0) {
        struct crit_item it = stack[--top];
        v->nodes[it.node].critical = true;
        uint64_t cursor = spans[it.node].end_ns < it.limit_ns ? spans[it.node].end_ns : it.limit_ns;
        uint64_t end = 0;
        for (int32_t c; (c = critical_child(v, it.node, cursor, &end)) >= 0;) {
            stack[top++] = (struct crit_item){c, end};
            cursor = spans[c].start_ns;
        }
    }
}

static void view_release(struct view *v)
{
    free(v->nodes);
    free(v->order);
}

static int view_build(struct view *v, const struct trace *t)
{
    memset(v, 0, sizeof(*v));
    v->t = t;
    v->nodes = calloc(t->n, sizeof(*v->nodes));
    v->order = malloc(t->n * sizeof(*v->order));
    struct span_key *keys = malloc(t->n * sizeof(*keys));
    struct crit_item *stack = malloc(t->n * sizeof(*stack));
    if (!v->nodes || !v->order || !keys || !stack)
        goto err_free;
    for (size_t i = 0; i < t->n; i++)
        keys[i] = (struct span_key){t->spans[i].start_ns, t->spans[i].end_ns, t->spans[i].span_id,
                                    (uint32_t)i};
    qsort(keys, t->n, sizeof(*keys), cmp_key_id);
    view_link_parents(v, keys);
    qsort(keys, t->n, sizeof(*keys), cmp_key_start);
    for (size_t k = 0; k < t->n; k++)
        v->order[k] = keys[k].idx;
    view_break_cycles(v);
    view_link_children(v);
    view_mark_critical(v, stack);
    free(keys);
    free(stack);
    return SL_OK;

err_free:
    free(keys);
    free(stack);
    view_release(v);
    return SL_ENOMEM;
}

/* --- JSON out ------------------------------------------------------------------------- */

/* Consumes value, even on failure (jansson frees it then); NULL is a failure. */
static bool set_new(json_t *obj, const char *key, json_t *value)
{
    return value && json_object_set_new(obj, key, value) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Distinct service names, sorted. */
static json_t *services_json(const struct trace *t)
{
    const char **names = malloc(t->n * sizeof(*names));
    json_t *list = json_array();
    if (!names || !list)
        goto err_free;
    for (size_t i = 0; i < t->n; i++)
        names[i] = t->spans[i].str[STR_SERVICE];
    qsort(names, t->n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < t->n; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
            continue;
        if (json_array_append_new(list, json_string(names[i])) != 0)
            goto err_free;
    }
    free(names);
    return list;

err_free:
    free(names);
    json_decref(list);
    return NULL;
}

/* What the list item and the trace document share (traces.h). */
static json_t *summary_json(const struct view *v)
{
    const struct trace *t = v->t;
    const struct tspan *entry = &t->spans[v->entry];
    char id[33];
    trace_id_hex(t->id, id);
    return json_pack("{s:s, s:s, s:s, s:i, s:b, s:b, s:b, s:f, s:I, s:I, s:I, s:o}", "trace_id", id,
                     "name", entry->str[STR_NAME], "service", entry->str[STR_SERVICE], "status",
                     entry->http_status, "error", t->error, "slow", t->cls == CLASS_SLOW,
                     "complete", v->roots > 0 && v->orphans == 0, "duration_ms",
                     ns_to_ms(trace_duration_ns(t)), "span_count", (json_int_t)t->n,
                     "start_unix_ms", (json_int_t)(t->start_ns / NS_PER_MS), "received_ms",
                     (json_int_t)t->received_ms, "services", services_json(t));
}

static json_t *span_json(const struct view *v, int32_t i)
{
    const struct tspan *sp = &v->t->spans[i];
    const struct vnode *nd = &v->nodes[i];
    char id[17], parent[17];
    span_id_format(sp->span_id, id);
    span_id_format(sp->parent_id, parent);
    json_t *o = json_pack(
        "{s:s, s:s*, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:i, s:i, s:b, s:b, s:f, s:f, "
        "s:b, s:b}",
        "span_id", id, "parent_span_id", sp->parent_id ? parent : NULL, "name", sp->str[STR_NAME],
        "service", sp->str[STR_SERVICE], "agent_id", sp->str[STR_AGENT], "role", sp->str[STR_ROLE],
        "kind", sp->kind, "method", sp->str[STR_METHOD], "route", sp->str[STR_ROUTE], "request_id",
        sp->str[STR_REQUEST_ID], "http_status", sp->http_status, "status_code", sp->status_code,
        "error", span_is_error(sp), "faulted", sp->faulted, "offset_ms",
        ns_to_ms(sp->start_ns - v->t->start_ns), "duration_ms", ns_to_ms(sp->end_ns - sp->start_ns),
        "critical", nd->critical, "orphan", nd->kind == NODE_ORPHAN);
    bool ok = o != NULL;
    if (ok && sp->has_upstream)
        ok = set_new(o, "upstream_ms", json_real(ns_to_ms(sp->upstream_ns)));
    if (ok && nd->detached)
        ok = set_new(o, "detached", json_true());
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static bool append_span_id(json_t *list, uint64_t span_id)
{
    char id[17];
    span_id_format(span_id, id);
    return json_array_append_new(list, json_string(id)) == 0;
}

/* Where trace_store_get's tree is built: the top-level queue (roots, orphans, then spans
 * detached for depth) and the critical path in tree order. */
struct tree_out {
    struct view *v;
    int32_t *queue;
    size_t queued;
    json_t *critical;
};

static json_t *tree_node_json(struct tree_out *out, int32_t i, unsigned depth)
{
    struct view *v = out->v;
    json_t *node = span_json(v, i);
    json_t *children = json_array();
    if (!node || !children)
        goto err_free;
    if (v->nodes[i].critical && !append_span_id(out->critical, v->t->spans[i].span_id))
        goto err_free;
    for (int32_t c = v->nodes[i].first_child; c >= 0; c = v->nodes[c].next_sibling) {
        if (depth + 1 >= TRACE_TREE_DEPTH_MAX) {
            v->nodes[c].detached = true;
            out->queue[out->queued++] = c;
            continue;
        }
        json_t *child = tree_node_json(out, c, depth + 1);
        if (!child || json_array_append_new(children, child) != 0)
            goto err_free;
    }
    if (!set_new(node, "children", children))
        goto err_free_node;
    return node;

err_free:
    json_decref(children);
err_free_node:
    json_decref(node);
    return NULL;
}

/* Adds "critical_path" and "spans" to doc. */
static bool tree_json(struct view *v, json_t *doc)
{
    struct tree_out out = {.v = v, .queue = malloc(v->t->n * sizeof(int32_t))};
    json_t *spans = json_array();
    out.critical = json_array();
    bool ok = out.queue && spans && out.critical;
    for (int kind = NODE_ROOT; ok && kind <= NODE_ORPHAN; kind++)
        for (size_t k = 0; k < v->t->n; k++)
            if (v->nodes[v->order[k]].kind == kind)
                out.queue[out.queued++] = (int32_t)v->order[k];
    /* The queue grows while it is read: spans detached for depth join at its end. */
    for (size_t q = 0; ok && q < out.queued; q++) {
        json_t *node = tree_node_json(&out, out.queue[q], 0);
        ok = node && json_array_append_new(spans, node) == 0;
    }
    free(out.queue);
    if (!ok) {
        json_decref(out.critical);
        json_decref(spans);
        return false;
    }
    bool path_ok = set_new(doc, "critical_path", out.critical); /* both consume */
    return set_new(doc, "spans", spans) && path_ok;
}

json_t *trace_store_get(const struct trace_store *s, const char *trace_id)
{
    uint8_t id[16];
    if (!trace_id || !hex_decode_id(trace_id, id, sizeof(id)))
        return NULL;
    const struct trace *t = trace_find(s, id);
    struct view v;
    if (!t || view_build(&v, t) != SL_OK)
        return NULL;
    char start[24];
    snprintf(start, sizeof(start), "%" PRIu64, t->start_ns);
    json_t *doc = summary_json(&v);
    bool ok = doc && set_new(doc, "orphans", json_integer((json_int_t)v.orphans)) &&
              set_new(doc, "start_unix_nano", json_string(start)) && tree_json(&v, doc);
    view_release(&v);
    if (!ok) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* --- listing -------------------------------------------------------------------------- */

int trace_filter_parse_status(struct trace_filter *f, const char *text)
{
    if (!text)
        return SL_EINVAL;
    if (strcmp(text, "error") == 0) {
        f->status_match = TRACE_STATUS_ERROR;
        f->status = 0;
        return SL_OK;
    }
    if (strlen(text) != 3 || text[0] < '1' || text[0] > '5')
        return SL_EINVAL;
    if ((text[1] == 'x' && text[2] == 'x') || (text[1] == 'X' && text[2] == 'X')) {
        f->status_match = TRACE_STATUS_CLASS;
        f->status = text[0] - '0';
        return SL_OK;
    }
    if (text[1] < '0' || text[1] > '9' || text[2] < '0' || text[2] > '9')
        return SL_EINVAL;
    f->status_match = TRACE_STATUS_CODE;
    f->status = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
    return SL_OK;
}

static bool status_matches(const struct trace_filter *f, int http_status)
{
    switch (f->status_match) {
    case TRACE_STATUS_CODE:
        return http_status == f->status;
    case TRACE_STATUS_CLASS:
        return http_status / 100 == f->status;
    default:
        return true;
    }
}

static bool trace_matches(const struct trace *t, const struct trace_filter *f)
{
    if (trace_duration_ns(t) / NS_PER_MS < f->min_duration_ms)
        return false;
    if (f->status_match == TRACE_STATUS_ERROR && !t->error)
        return false;
    bool route = !f->route, service = !f->service;
    bool status = f->status_match != TRACE_STATUS_CODE && f->status_match != TRACE_STATUS_CLASS;
    for (size_t i = 0; i < t->n && !(route && service && status); i++) {
        const struct tspan *sp = &t->spans[i];
        route = route || strcmp(sp->str[STR_ROUTE], f->route) == 0;
        service = service || strcmp(sp->str[STR_SERVICE], f->service) == 0;
        status = status || status_matches(f, sp->http_status);
    }
    return route && service && status;
}

/* Errors, then slow, then ordinary; newest start first; then the later arrival. */
static int cmp_listed(const void *a, const void *b)
{
    const struct trace *x = *(const struct trace *const *)a, *y = *(const struct trace *const *)b;
    if (x->cls != y->cls)
        return x->cls > y->cls ? -1 : 1;
    if (x->start_ns != y->start_ns)
        return x->start_ns > y->start_ns ? -1 : 1;
    return (x->seq < y->seq) - (x->seq > y->seq);
}

/* The traces that pass f, sorted; *n gets their number. NULL when out of memory. */
static const struct trace **store_select(const struct trace_store *s, const struct trace_filter *f,
                                         size_t *n)
{
    const struct trace **hits = malloc((s->stats.traces + 1) * sizeof(*hits));
    if (!hits)
        return NULL;
    *n = 0;
    for (int c = 0; c < CLASS_COUNT; c++)
        for (const struct trace *t = s->lists[c].head; t; t = t->next)
            if (trace_matches(t, f))
                hits[(*n)++] = t;
    qsort(hits, *n, sizeof(*hits), cmp_listed);
    return hits;
}

json_t *trace_store_list(const struct trace_store *s, const struct trace_filter *f, size_t limit)
{
    static const struct trace_filter all;
    if (limit == 0)
        limit = TRACE_LIST_DEFAULT;
    if (limit > TRACE_LIST_MAX)
        limit = TRACE_LIST_MAX;
    size_t n = 0;
    const struct trace **hits = store_select(s, f ? f : &all, &n);
    json_t *items = json_array();
    json_t *doc = json_pack("{s:I, s:O}", "matched", (json_int_t)n, "traces", items);
    bool ok = hits && doc;
    for (size_t k = 0; ok && k < n && k < limit; k++) {
        struct view v;
        ok = view_build(&v, hits[k]) == SL_OK;
        if (!ok)
            break;
        json_t *item = summary_json(&v);
        ok = item && json_array_append_new(items, item) == 0;
        view_release(&v);
    }
    free(hits);
    json_decref(items);
    if (!ok) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}
