#include "respcache.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cache.h"
#include "clock.h"
#include "err.h"
#include "http.h"
#include "http_cache.h"
#include "log.h"
#include "evloop_redis.h"
#include "gateway.h"
#include "store_redis.h"
#include "policy_sync.h"
#include "proxy.h"
#include "worker.h"

#define KEY_MAX 2048
#define VARY_MAX 256

/* A stored response: this header, the Vary names, the head lines, the body. A "marker"
 * (head_len 0, vary_len > 0) under the bare target says which Vary names select the
 * variant stored under target + "\n" + vary key. */
struct blob {
    struct hc_entry entry;
    uint32_t status;
    uint32_t vary_len, head_len, body_len;
    uint32_t etag_off, etag_len; /* into the head lines; len 0 = none */
};

struct rc_counters {
    _Atomic uint64_t hits, misses, bypass, not_modified, invalidations, stale, coalesced,
        revalidated, reval_started, reval_failed, reval_dropped, tier_hits, tier_misses,
        tier_errors, tier_writes, tier_too_big;
};

/* Background revalidation (stale-while-revalidate, RFC 5861 §3): one thread, a bounded
 * queue, at most one job per stored key queued or running. */
#define REVAL_QUEUE_MAX 256

struct reval_job {
    struct reval_job *next;
    char *skey; /* the storage key: target "\n", plus the Vary key for a variant */
    size_t sklen;
    char *url;
    struct curl_slist *headers;
    struct hc_request req;
    const struct hc_policy *policy;
};

struct reval {
    pthread_t thread;
    bool started, stop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct reval_job *head, *tail;
    unsigned n;
    char *busy; /* the key being revalidated now */
    size_t busy_len;
};

/* Miss coalescing: one fill per key in flight; the others wait (bounded) for it. */
#define FILLS_MAX 1024
#define FILL_WAITERS_MAX 4096

struct waiter {
    struct worker_core *wc;
    struct conn *c;
    struct waiter *next;
};

struct fill {
    char *key;
    struct conn *filler;
    struct waiter *waiters;
    unsigned nwaiters;
    struct fill *next;
};

#define CACHE_RULES_MAX 64

struct cache_rule {
    char prefix[256];
    size_t len;
    struct hc_policy policy;
};

struct respcache {
    pthread_mutex_t fill_lock; /* fills and their waiters: every worker's misses */
    struct fill *fills;
    unsigned nfills;
    struct cache *cache;
    struct hc_policy policy;
    uint64_t max_entry_bytes;
    struct rc_counters n;
    struct reval reval;
    _Atomic int reval_stop;
    struct agent *agent;
    struct redis_pool *tier_pool; /* --cache-redis, for purges (admin thread) */
    uint64_t tier_max_bytes;
    struct cache_rule rules[CACHE_RULES_MAX];
    unsigned nrules;
};

static struct respcache *rc_of(const struct conn *c)
{
    return c->wc->agent->respcache;
}

static void bump(_Atomic uint64_t *v)
{
    atomic_fetch_add_explicit(v, 1, memory_order_relaxed);
}

/* The windowed hit ratio's inputs, per worker (single writer: rate.h). */
static void count_lookup(struct conn *c, bool hit)
{
    uint64_t now = evloop_now_ms(c->wc->loop);
    rate_add(&c->wc->stats->cache_lookups, now, 1);
    if (hit)
        rate_add(&c->wc->stats->cache_hits, now, 1);
}

/* ---- hc_fields over the parser's spans ---------------------------------------------- */

struct span_fields {
    const struct http1_header *fields;
    unsigned n;
    const char *buf;
};

static bool span_get(const void *ctx, const char *name, size_t idx, const char **value,
                     size_t *len)
{
    const struct span_fields *f = ctx;
    for (unsigned i = 0; i < f->n; i++) {
        if (!http1_span_equals(f->buf, f->fields[i].name, name) || idx-- > 0)
            continue;
        *value = f->buf + f->fields[i].value.off;
        *len = f->fields[i].value.len;
        return true;
    }
    return false;
}

/* hc_fields over stored head lines ("Name: value\r\n" each). */
struct lines {
    const char *p;
    size_t len;
};

static bool lines_get(const void *ctx, const char *name, size_t idx, const char **value,
                      size_t *len)
{
    const struct lines *l = ctx;
    size_t nlen = strlen(name);
    for (size_t i = 0; i < l->len;) {
        const char *line = l->p + i;
        const char *eol = memchr(line, '\n', l->len - i);
        const char *end = eol ? eol : l->p + l->len;
        i += (size_t)(end - line) + (eol ? 1 : 0);
        if ((size_t)(end - line) <= nlen || line[nlen] != ':' ||
            strncasecmp(line, name, nlen) != 0 || idx-- > 0)
            continue;
        const char *v = line + nlen + 1;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *value = v;
        *len = (size_t)(end - v);
        return true;
    }
    return false;
}

/* Whether a response field line is stored (RFC 9111 §3.1): not hop-by-hop, not one the
 * cache generates; not Content-Length either (the only KEEP_STORED field): it is written
 * from the stored body, since a chunked answer had none; not X-Request-Id (each answer
 * carries its own request's). */
static bool stored_field(const char *name, size_t len)
{
    return hc_field_rule(name, len) == HC_FIELD_KEEP &&
           !(len == 12 && !strncasecmp(name, "X-Request-Id", 12)); /* per request: ours */
}

static bool append_line(struct iobuf *o, const char *name, size_t nlen, const char *value,
                        size_t vlen)
{
    return iobuf_append(o, name, nlen) && iobuf_append(o, ": ", 2) &&
           iobuf_append(o, value, vlen) && iobuf_append(o, "\r\n", 2);
}

/* The stored head lines of a parsed response. */
static bool head_from_spans(struct iobuf *o, const struct http1_header *f, unsigned n,
                            const char *buf)
{
    for (unsigned i = 0; i < n; i++)
        if (!f[i].hop_by_hop && stored_field(buf + f[i].name.off, f[i].name.len) &&
            !append_line(o, buf + f[i].name.off, f[i].name.len, buf + f[i].value.off,
                         f[i].value.len))
            return false;
    return true;
}

/* The request head's bytes (still in c->in until forwarded; after, just behind off). */
static const char *req_buf(const struct conn *c)
{
    return c->in.data + c->in.off - (c->head_consumed ? c->req.msg.head_bytes : 0);
}

static enum hc_method method_of(const struct conn *c)
{
    return hc_method_classify(req_buf(c) + c->req.msg.method_name.off,
                              c->req.msg.method_name.len);
}

/* ---- per-route rules (--cache-rules FILE) ------------------------------------------- */

/* The policy for a request path: the rule with the longest matching prefix, else the
 * default. Rules are read once at start and never change. */
static const struct hc_policy *policy_for(const struct respcache *rc, const char *path)
{
    const struct hc_policy *p = &rc->policy;
    size_t best = 0;
    for (unsigned i = 0; i < rc->nrules; i++) {
        const struct cache_rule *r = &rc->rules[i];
        if (r->len >= best && !strncmp(path, r->prefix, r->len)) {
            best = r->len;
            p = &r->policy;
        }
    }
    return p;
}

/* {"rules": [{"path_prefix": "/v1/", "cache": true, "ttl_cap_s": 60, "stale_cap_s": 30}]} */
static int rules_load(struct respcache *rc, const char *path, char err[256])
{
    static const char *const fields[] = {"path_prefix", "cache", "ttl_cap_s", "stale_cap_s",
                                         NULL};
    json_t *doc;
    char jerr[JSON_ERR_MAX];
    if (json_parse_file(path, &doc, jerr)) {
        snprintf(err, 256, "--cache-rules: %s", jerr);
        return SL_EINVAL;
    }
    json_t *list = json_object_get(doc, "rules");
    int rc2 = SL_OK;
    if (!json_is_array(list) || json_array_size(list) > CACHE_RULES_MAX) {
        snprintf(err, 256, "--cache-rules: %s: expected {\"rules\": [{\"path_prefix\": ...}, ...]} "
                 "with at most %d rules", path, CACHE_RULES_MAX);
        rc2 = SL_EINVAL;
    }
    size_t i;
    json_t *v;
    json_array_foreach(rc2 == SL_OK ? list : NULL, i, v) {
        struct field_errors fe;
        field_errors_init(&fe);
        const char *prefix = NULL;
        int64_t ttl = HC_NO_CAP, stale = HC_NO_CAP;
        struct cache_rule *r = &rc->rules[i];
        r->policy = rc->policy;
        if (!json_is_object(v)) {
            field_errors_add(&fe, "", "must be an object");
        } else {
            json_reject_unknown(v, fields, &fe);
            if (json_field_string(v, "path_prefix", true, sizeof(r->prefix) - 1, &prefix, &fe) &&
                prefix[0] != '/')
                field_errors_add(&fe, "path_prefix", "must start with '/'");
            json_t *on = json_object_get(v, "cache");
            if (on && !json_is_boolean(on))
                field_errors_add(&fe, "cache", "must be true or false");
            r->policy.enabled = !on || json_is_true(on);
            json_field_int(v, "ttl_cap_s", false, 0, 31536000, &ttl, &fe);
            json_field_int(v, "stale_cap_s", false, 0, 31536000, &stale, &fe);
        }
        if (field_errors_any(&fe)) {
            json_t *e0 = json_array_get(fe.list, 0);
            snprintf(err, 256, "--cache-rules: %s: rules[%zu].%s: %s", path, i,
                     json_string_value(json_object_get(e0, "field")),
                     json_string_value(json_object_get(e0, "message")));
            rc2 = SL_EINVAL;
        } else {
            snprintf(r->prefix, sizeof(r->prefix), "%s", prefix);
            r->len = strlen(r->prefix);
            r->policy.ttl_cap_s = (uint32_t)ttl;
            r->policy.stale_cap_s = (uint32_t)stale;
            rc->nrules++;
        }
        field_errors_release(&fe);
        if (rc2 != SL_OK)
            break;
    }
    json_decref(doc);
    return rc2;
}

json_t *respcache_rules_json(const struct agent *a)
{
    const struct respcache *rc = a->respcache;
    json_t *list = json_array();
    for (unsigned i = 0; rc && i < rc->nrules; i++) {
        const struct cache_rule *r = &rc->rules[i];
        json_t *o = json_pack("{s:s, s:b}", "path_prefix", r->prefix, "cache", r->policy.enabled);
        if (r->policy.ttl_cap_s != HC_NO_CAP)
            json_object_set_new(o, "ttl_cap_s", json_integer(r->policy.ttl_cap_s));
        if (r->policy.stale_cap_s != HC_NO_CAP)
            json_object_set_new(o, "stale_cap_s", json_integer(r->policy.stale_cap_s));
        json_array_append_new(list, o);
    }
    return list;
}

/* ---- start / stop ------------------------------------------------------------------- */

static int reval_start(struct respcache *rc);
static void reval_stop(struct respcache *rc);
static void tier_detach(struct conn *c);

/* "SERVICE\nTARGET\n" from another agent of the fleet (or this one: harmless twice). */
static void on_remote_invalidate(struct agent *a, const char *msg, size_t len)
{
    const char *nl = memchr(msg, '\n', len);
    if (!nl || !a->respcache || (size_t)(nl - msg) != strlen(a->cfg.service) ||
        memcmp(msg, a->cfg.service, (size_t)(nl - msg)) != 0)
        return;
    const char *key = nl + 1;
    size_t klen = len - (size_t)(key - msg);
    if (klen && cache_purge_prefix(a->respcache->cache, key, klen))
        atomic_fetch_add_explicit(&a->respcache->n.invalidations, 1, memory_order_relaxed);
}

static void on_published(const redisReply *reply, int err, void *arg)
{
    (void)reply;
    (void)arg;
    if (err) /* the other agents keep the entry until it expires: logged, not retried */
        log_event(LOG_WARN, NULL, NULL, "cache invalidation not published", "error",
                  err_str(err), NULL);
}

/* RFC 9111 §4.4 across the fleet: every agent of the service drops the target too. */
static void publish_invalidation(struct conn *c)
{
    struct evredis *r = c->wc->redis;
    if (!r)
        return;
    const char *svc = c->wc->agent->cfg.service;
    char msg[KEY_MAX + 128];
    int n = snprintf(msg, sizeof(msg), "%s\n%s", svc, c->rc_key);
    if (n > 0 && (size_t)n < sizeof(msg))
        evredis_command(r, on_published, NULL, "PUBLISH %s %b", CACHE_INVALIDATE_CHANNEL, msg,
                        (size_t)n);
}

int respcache_start(struct agent *a, char err[256])
{
    if (a->cfg.cache_bytes == 0)
        return SL_OK;
    struct respcache *rc = calloc(1, sizeof(*rc));
    struct cache_opts o = {.budget_bytes = a->cfg.cache_bytes,
                           .max_entry_bytes = a->cfg.cache_max_entry_bytes};
    const char *why = NULL;
    if (!rc || !cache_policy_parse(a->cfg.cache_policy, &o.policy)) {
        snprintf(err, 256, "--cache-policy: expected lru, lfu, ttl or s3fifo, got '%.40s'",
                 a->cfg.cache_policy);
        free(rc);
        return SL_EINVAL;
    }
    if (cache_opts_check(&o, &why) || !(rc->cache = cache_new(&o))) {
        snprintf(err, 256, "--cache-bytes: %.200s", why ? why : "out of memory");
        free(rc);
        return SL_EINVAL;
    }
    rc->policy = hc_policy_default;
    /* the gateway is the fleet's edge: s-maxage and CDN-Cache-Control (RFC 9213) apply */
    rc->policy.role = a->role == AGENT_ROLE_GATEWAY ? HC_ROLE_EDGE : HC_ROLE_SIDECAR;
    if (a->cfg.cache_rules && rules_load(rc, a->cfg.cache_rules, err) != SL_OK) {
        cache_free(rc->cache);
        free(rc);
        return SL_EINVAL;
    }
    pthread_mutex_init(&rc->fill_lock, NULL);
    rc->max_entry_bytes = a->cfg.cache_max_entry_bytes;
    rc->agent = a;
    rc->tier_max_bytes = a->cfg.cache_redis_max_entry_bytes;
    char perr[128];
    if (a->cfg.cache_redis && !(rc->tier_pool = redis_pool_new(a->cfg.cache_redis, NULL, perr))) {
        snprintf(err, 256, "--cache-redis: %.200s", perr);
        cache_free(rc->cache);
        free(rc);
        return SL_EINVAL;
    }
    if (reval_start(rc) != SL_OK) {
        redis_pool_free(rc->tier_pool);
        snprintf(err, 256, "cache: cannot start the revalidation thread");
        cache_free(rc->cache);
        free(rc);
        return SL_ENOMEM;
    }
    a->respcache = rc;
    a->on_cache_invalidate = on_remote_invalidate;
    return SL_OK;
}

void respcache_stop(struct agent *a)
{
    if (!a->respcache)
        return;
    reval_stop(a->respcache);
    redis_pool_free(a->respcache->tier_pool);
    cache_free(a->respcache->cache);
    pthread_mutex_destroy(&a->respcache->fill_lock);
    free(a->respcache);
    a->respcache = NULL;
}

/* ---- lookup and answering from the cache --------------------------------------------- */

/* The entry's header, copied out (cache data need not be aligned for struct blob); rest
 * points at the Vary names that follow it. false for a NULL or short entry. */
static bool blob_read(const struct cache_entry *e, struct blob *out, const char **rest)
{
    if (!e || cache_entry_len(e) < sizeof(*out))
        return false;
    memcpy(out, cache_entry_data(e), sizeof(*out));
    *rest = (const char *)cache_entry_data(e) + sizeof(*out);
    return true;
}

static void blob_find_etag(struct blob *b, const char *head)
{
    struct lines l = {head, b->head_len};
    const char *v;
    size_t n;
    b->etag_off = b->etag_len = 0;
    if (lines_get(&l, "ETag", 0, &v, &n)) {
        b->etag_off = (uint32_t)(v - head);
        b->etag_len = (uint32_t)n;
    }
}

/* A whole stored response: header (lengths and ETag set here), Vary names, head, body. */
static bool blob_build(struct iobuf *o, const struct blob *hdr, const char *vary,
                       const char *head, size_t hlen, const char *body, size_t blen)
{
    struct blob b = *hdr;
    b.head_len = (uint32_t)hlen;
    b.body_len = (uint32_t)blen;
    blob_find_etag(&b, head);
    return iobuf_append(o, &b, sizeof(b)) && iobuf_append(o, vary, b.vary_len) &&
           iobuf_append(o, head, hlen) && iobuf_append(o, body, blen);
}

/* Stored until until_s (Unix seconds): the storage TTL; freshness is hc_serve's. */
static void put_entry(struct respcache *rc, const char *key, size_t klen, const void *data,
                      size_t len, int64_t until_s)
{
    uint64_t now_ms = clock_wall_ms();
    struct cache_meta meta = {.stored_ms = now_ms, .expires_ms = (uint64_t)until_s * 1000};
    meta.stale_until_ms = meta.expires_ms;
    cache_put(rc->cache, key, klen, data, len, &meta, now_ms);
}

/* Fields a 304 carries (RFC 9110 §15.4.5). */
static bool keep_in_304(const char *line, size_t len)
{
    static const char *const names[] = {"Cache-Control:", "Content-Location:", "Date:",
                                        "ETag:", "Expires:", "Vary:"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (len >= strlen(names[i]) && strncasecmp(line, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

static bool append_head_lines(struct iobuf *o, const char *head, size_t len, bool only_304)
{
    for (size_t i = 0; i < len;) {
        const char *eol = memchr(head + i, '\n', len - i);
        size_t n = eol ? (size_t)(eol - (head + i)) + 1 : len - i;
        if ((!only_304 || keep_in_304(head + i, n)) && !iobuf_append(o, head + i, n))
            return false;
        i += n;
    }
    return true;
}

/* Writes the answer into c->out; its status, or 0 when it did not fit. */
static int answer_from_cache(struct conn *c, const struct blob *b, const char *vary,
                             bool not_modified, bool head_only, enum hc_xcache x)
{
    const char *head = vary + b->vary_len;
    const char *body = head + b->head_len;
    char age[HC_AGE_VALUE_MAX];
    int status = not_modified ? 304 : (int)b->status;
    hc_age_value(hc_current_age(&b->entry, clock_wall_s()), age);
    size_t before = c->out.len;
    bool ok = iobuf_printf(&c->out, "HTTP/1.1 %d %s\r\n", status, http_reason(status)) &&
              append_head_lines(&c->out, head, b->head_len, not_modified) &&
              (not_modified || b->status == 204 ||
               iobuf_printf(&c->out, "Content-Length: %u\r\n", b->body_len)) &&
              iobuf_printf(&c->out, "Age: %s\r\nX-Cache: %s\r\nX-Request-Id: %s\r\n", age,
                           hc_xcache_str(x), c->request_id) &&
              limits_headers(c, &c->out) &&
              iobuf_printf(&c->out, "%sVia: 1.1 %s\r\n\r\n",
                           c->close_after ? "Connection: close\r\n"
                           : c->http10    ? "Connection: keep-alive\r\n"
                                          : "",
                           c->wc->agent->id) &&
              (not_modified || head_only || iobuf_append(&c->out, body, b->body_len));
    if (!ok) { /* larger than the client buffer allows: let the upstream answer instead */
        c->out.len = before;
        return 0;
    }
    c->bytes_out += c->out.len - before;
    return status;
}

static size_t target_key(const struct conn *c, const char *buf, char *out)
{
    const struct http1_span t = c->req.msg.target;
    size_t n = t.len < KEY_MAX - 2 ? t.len : KEY_MAX - 2;
    memcpy(out, buf + t.off, n);
    out[n++] = '\n';
    out[n] = '\0';
    return n;
}

/* Where a response is stored: the target's key, or target + Vary key for a variant. */
struct skey {
    char k[KEY_MAX + VARY_MAX * 4];
    size_t len;
};

/* The entry for this request: the target's, or the variant its Vary marker selects; its
 * storage key in *sk (when not NULL). */
static struct cache_entry *find(struct respcache *rc, const char *key, size_t klen,
                                const struct hc_fields *req, uint64_t now_ms, struct skey *sk)
{
    struct skey local;
    sk = sk ? sk : &local;
    memcpy(sk->k, key, klen);
    sk->len = klen;
    struct cache_entry *e = cache_get(rc->cache, key, klen, now_ms);
    struct blob b;
    const char *vary;
    if (!blob_read(e, &b, &vary) || b.head_len || !b.vary_len)
        return e;
    size_t vlen;
    int rc2 = hc_vary_key(vary, b.vary_len, req, sk->k + klen, sizeof(sk->k) - klen, &vlen);
    cache_entry_release(e);
    if (rc2 != SL_OK)
        return NULL;
    sk->len = klen + vlen;
    return cache_get(rc->cache, sk->k, sk->len, now_ms);
}

/* ---- miss coalescing -------------------------------------------------------------- */

static void post(struct worker_core *wc, struct conn *c)
{
    struct conn_msg *m = malloc(sizeof(*m));
    if (!m)
        return; /* the waiter's timer will release it */
    m->c = c;
    pthread_mutex_lock(&wc->mbox_lock);
    m->next = wc->mbox;
    wc->mbox = m;
    pthread_mutex_unlock(&wc->mbox_lock);
    uint64_t one = 1;
    if (write(wc->wake_fd, &one, sizeof(one)) < 0)
        log_msgf(LOG_WARN, "cache wake: %s", strerror(errno));
}

/* A miss: wait for the fill of this key in flight (true), or become its filler (false). */
static bool coalesce(struct respcache *rc, struct conn *c)
{
    if (c->rc_no_coalesce || c->rc_filler)
        return false;
    bool wait = false;
    pthread_mutex_lock(&rc->fill_lock);
    struct fill *f = rc->fills;
    while (f && strcmp(f->key, c->rc_key) != 0)
        f = f->next;
    struct waiter *w = f && f->nwaiters < FILL_WAITERS_MAX ? malloc(sizeof(*w)) : NULL;
    if (w) {
        *w = (struct waiter){.wc = c->wc, .c = c, .next = f->waiters};
        f->waiters = w;
        f->nwaiters++;
        c->rc_waiting = wait = true;
    } else if (!f && rc->nfills < FILLS_MAX && (f = calloc(1, sizeof(*f))) != NULL) {
        f->key = strdup(c->rc_key);
        f->filler = c;
        f->next = rc->fills;
        rc->fills = f;
        rc->nfills++;
        c->rc_filler = true;
    }
    pthread_mutex_unlock(&rc->fill_lock);
    return wait;
}

/* The filler is done (stored or not): every waiter is resumed on its own worker. */
static void fill_release(struct respcache *rc, struct conn *c)
{
    pthread_mutex_lock(&rc->fill_lock);
    struct fill **pf = &rc->fills;
    while (*pf && (*pf)->filler != c)
        pf = &(*pf)->next;
    struct fill *f = *pf;
    if (f) {
        *pf = f->next;
        rc->nfills--;
    }
    for (struct waiter *w = f ? f->waiters : NULL, *next; w; w = next) {
        next = w->next;
        post(w->wc, w->c);
        free(w);
    }
    pthread_mutex_unlock(&rc->fill_lock);
    if (f) {
        free(f->key);
        free(f);
    }
    c->rc_filler = false;
}

/* A waiter gives up (timeout, or its connection closes): out of its fill's list and out
 * of its worker's mailbox (a release may have posted it already). */
void respcache_unwait(struct conn *c)
{
    struct respcache *rc = rc_of(c);
    tier_detach(c);
    if (!rc || !c->rc_waiting)
        return;
    pthread_mutex_lock(&rc->fill_lock);
    for (struct fill *f = rc->fills; f; f = f->next) {
        for (struct waiter **pw = &f->waiters; *pw; pw = &(*pw)->next) {
            if ((*pw)->c == c) {
                struct waiter *w = *pw;
                *pw = w->next;
                f->nwaiters--;
                free(w);
                break;
            }
        }
    }
    pthread_mutex_unlock(&rc->fill_lock);
    struct worker_core *wc = c->wc;
    pthread_mutex_lock(&wc->mbox_lock);
    for (struct conn_msg **pm = &wc->mbox; *pm;) {
        struct conn_msg *m = *pm;
        if (m->c == c) {
            *pm = m->next;
            free(m);
        } else {
            pm = &m->next;
        }
    }
    pthread_mutex_unlock(&wc->mbox_lock);
    c->rc_waiting = false;
}

/* ---- the shared tier in Redis (--cache-redis) ------------------------------------------ */

/* A stored value: this header, then the blob bytes. The magic changes with struct blob, so
 * agents of another build ignore each other's entries instead of misreading them. */
#define TIER_MAGIC 0x534c4332u /* "SLC2" */
#define TIER_PREFIX "sluice:cache:"

struct tier_hdr {
    uint32_t magic;
    uint32_t blob_size; /* sizeof(struct blob) of the writer */
    uint64_t until_ms;  /* the entry's storage deadline (wall clock) */
};

/* A GET in flight outlives its connection when the client goes away: the ticket does. */
struct tier_ticket {
    struct conn *c; /* NULL: the request went on without the answer */
    struct skey sk;
};

static size_t tier_key(const struct agent *a, const char *skey, size_t sklen, char *out,
                       size_t cap)
{
    int n = snprintf(out, cap, TIER_PREFIX "%s:", a->cfg.service);
    if (n < 0 || (size_t)n + sklen > cap)
        return 0;
    memcpy(out + n, skey, sklen);
    return (size_t)n + sklen;
}

static void on_tier_written(const redisReply *reply, int err, void *arg)
{
    struct respcache *rc = arg;
    if (err || !reply || reply->type == REDIS_REPLY_ERROR)
        bump(&rc->n.tier_errors);
}

/* Write-through: what this agent stores, the other replicas of the service may read. */
static void tier_put(struct respcache *rc, struct conn *c, const char *skey, size_t sklen,
                     const void *data, size_t len, int64_t until_s)
{
    struct evredis *r = c->wc->cache_redis;
    char key[sizeof(TIER_PREFIX) + 256 + sizeof(((struct skey *)0)->k)];
    size_t klen = r ? tier_key(c->wc->agent, skey, sklen, key, sizeof(key)) : 0;
    if (!klen)
        return;
    if (len + sizeof(struct tier_hdr) > rc->tier_max_bytes) {
        bump(&rc->n.tier_too_big);
        return;
    }
    struct tier_hdr h = {TIER_MAGIC, sizeof(struct blob), (uint64_t)until_s * 1000};
    char *v = malloc(sizeof(h) + len);
    if (!v)
        return;
    memcpy(v, &h, sizeof(h));
    memcpy(v + sizeof(h), data, len);
    if (evredis_command(r, on_tier_written, rc, "SET %b %b PXAT %llu", key, klen, v,
                        sizeof(h) + len, (unsigned long long)h.until_ms) == SL_OK)
        bump(&rc->n.tier_writes);
    free(v);
}

static void tier_del(struct conn *c, const char *skey, size_t sklen)
{
    struct evredis *r = c->wc->cache_redis;
    char key[sizeof(TIER_PREFIX) + 256 + sizeof(((struct skey *)0)->k)];
    size_t klen = r ? tier_key(c->wc->agent, skey, sklen, key, sizeof(key)) : 0;
    if (klen)
        evredis_command(r, on_tier_written, c->wc->agent->respcache, "DEL %b", key, klen);
}

static void on_tier_reply(const redisReply *reply, int err, void *arg);

/* Ask the shared tier for sk; true when c now waits for the answer (RC_WAITING). */
static bool tier_get(struct conn *c, const char *skey, size_t sklen)
{
    struct evredis *r = c->wc->cache_redis;
    struct tier_ticket *t = r ? malloc(sizeof(*t)) : NULL;
    char key[sizeof(TIER_PREFIX) + 256 + sizeof(((struct skey *)0)->k)];
    size_t klen = t ? tier_key(c->wc->agent, skey, sklen, key, sizeof(key)) : 0;
    if (!klen || evredis_command(r, on_tier_reply, t, "GET %b", key, klen) != SL_OK) {
        free(t);
        return false;
    }
    t->c = c;
    memcpy(t->sk.k, skey, sklen);
    t->sk.len = sklen;
    c->rc_ticket = t;
    return true;
}

static void tier_detach(struct conn *c)
{
    if (c->rc_ticket) {
        c->rc_ticket->c = NULL;
        c->rc_ticket = NULL;
    }
}

/* The tier answered: a blob is stored locally (and the lookup repeated: now a hit); a Vary
 * marker is stored and its variant asked for; anything else is a miss. */
static void on_tier_reply(const redisReply *reply, int err, void *arg)
{
    struct tier_ticket *t = arg;
    struct conn *c = t->c;
    if (!c) {
        free(t);
        return;
    }
    c->rc_ticket = NULL;
    struct respcache *rc = rc_of(c);
    struct tier_hdr h;
    struct blob b;
    bool ok = !err && reply && reply->type == REDIS_REPLY_STRING &&
              reply->len >= sizeof(h) + sizeof(b);
    if (ok) {
        memcpy(&h, reply->str, sizeof(h));
        memcpy(&b, reply->str + sizeof(h), sizeof(b));
        ok = h.magic == TIER_MAGIC && h.blob_size == sizeof(b) &&
             reply->len == sizeof(h) + sizeof(b) + b.vary_len + b.head_len + b.body_len &&
             b.vary_len < VARY_MAX;
    }
    bump(err ? &rc->n.tier_errors : ok ? &rc->n.tier_hits : &rc->n.tier_misses);
    if (ok) {
        put_entry(rc, t->sk.k, t->sk.len, reply->str + sizeof(h), reply->len - sizeof(h),
                  (int64_t)(h.until_ms / 1000));
        if (!b.head_len && b.vary_len) { /* a marker: the variant this request selects */
            struct span_fields sf = {c->fields, c->req.msg.nfields, req_buf(c)};
            struct hc_fields req = {span_get, &sf};
            struct skey v = t->sk;
            size_t vlen;
            if (hc_vary_key(reply->str + sizeof(h) + sizeof(b), b.vary_len, &req, v.k + v.len,
                            sizeof(v.k) - v.len, &vlen) == SL_OK &&
                tier_get(c, v.k, v.len + vlen)) {
                free(t);
                return;
            }
        }
    }
    free(t);
    c->rc_tier_done = true;
    proxy_cache_retry(c); /* may answer and close c */
}

/* POST /v1/cache/purge also empties the shared tier under the prefix (on the admin
 * thread, blocking: SCAN + DEL in one script). */
static struct redis_script tier_purge_script = REDIS_SCRIPT_INIT(
    "local n, cur = 0, '0'\n"
    "repeat\n"
    "  local r = redis.call('SCAN', cur, 'MATCH', ARGV[1], 'COUNT', 1000)\n"
    "  cur = r[1]\n"
    "  for _, k in ipairs(r[2]) do redis.call('DEL', k); n = n + 1 end\n"
    "until cur == '0'\n"
    "return n\n");

static long long tier_purge(struct respcache *rc, const char *prefix, size_t len)
{
    if (!rc->tier_pool)
        return 0;
    char pat[2 * KEY_MAX + 320];
    int n = snprintf(pat, sizeof(pat), TIER_PREFIX "%s:", rc->agent->cfg.service);
    for (size_t i = 0; n > 0 && i < len && (size_t)n + 3 < sizeof(pat); i++) {
        if (strchr("*?[]\\", prefix[i])) /* glob characters match themselves */
            pat[n++] = '\\';
        pat[n++] = prefix[i];
    }
    if (n <= 0 || (size_t)n + 2 > sizeof(pat))
        return -1;
    pat[n++] = '*';
    pat[n] = '\0';
    const char *args[] = {pat};
    redisReply *r = redis_script_eval_pool(rc->tier_pool, &tier_purge_script, 0, 1, args, NULL);
    long long removed = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return removed;
}

/* ---- revalidation (RFC 9111 §4.3) ---------------------------------------------------- */

/* RFC 9111 §4.3.4: the response stored under skey, its fields updated by the 304's
 * (l304: stored-field lines), its freshness recomputed from the merged fields; stored
 * again, or dropped when no longer storable. The whole blob goes to out for answering.
 * SL_OK; SL_ENOTFOUND (nothing stored there any more); SL_CONFLICT (the 304 is for another
 * ETag: the entry is outdated and dropped); SL_ENOMEM. */
static int freshen(struct respcache *rc, const struct hc_policy *pol,
                   const struct hc_request *req, const char *skey,
                   size_t sklen, const char *l304, size_t n304, int64_t request_s,
                   struct iobuf *out, int64_t *until_s)
{
    *until_s = 0;
    struct cache_entry *e = cache_get_stale(rc->cache, skey, sklen, clock_wall_ms());
    struct blob b;
    const char *vary;
    if (!blob_read(e, &b, &vary) || !b.head_len) {
        cache_entry_release(e);
        return SL_ENOTFOUND;
    }
    const char *head = vary + b.vary_len;
    struct lines upd = {l304, n304};
    struct hc_fields f304 = {lines_get, &upd};
    if (!hc_freshen_matches(b.etag_len ? head + b.etag_off : NULL, b.etag_len, &f304)) {
        cache_entry_release(e);
        cache_delete(rc->cache, skey, sklen);
        return SL_ECONFLICT;
    }
    /* merged head: the stored lines the 304 does not replace, then the 304's lines */
    struct iobuf merged = {.max = (size_t)b.head_len + n304 + 1};
    bool ok = true;
    for (size_t i = 0; ok && i < b.head_len;) {
        const char *line = head + i, *eol = memchr(line, '\n', b.head_len - i);
        size_t n = eol ? (size_t)(eol - line) + 1 : b.head_len - i;
        const char *colon = memchr(line, ':', n);
        char name[64];
        size_t nlen = colon ? (size_t)(colon - line) : 0;
        const char *v;
        size_t vl;
        bool replaced = nlen && nlen < sizeof(name) &&
                        (memcpy(name, line, nlen), name[nlen] = '\0',
                         lines_get(&upd, name, 0, &v, &vl));
        if (!replaced)
            ok = iobuf_append(&merged, line, n);
        i += n;
    }
    ok = ok && iobuf_append(&merged, l304, n304);
    struct lines ml = {merged.data, merged.len};
    struct hc_fields mf = {lines_get, &ml};
    struct hc_store st;
    int64_t now_s = clock_wall_s();
    bool storable = ok && hc_response_storable(pol, req, b.status, &mf, request_s,
                                               now_s, &st);
    struct blob nb = b;
    if (storable) {
        nb.entry = st.entry;
    } else { /* answers this request once more, as just validated */
        nb.entry.response_s = now_s;
        nb.entry.initial_age_s = 0;
    }
    ok = ok && blob_build(out, &nb, vary, merged.data, merged.len, head + b.head_len, b.body_len);
    cache_entry_release(e);
    free(merged.data);
    if (!ok)
        return SL_ENOMEM;
    if (storable) {
        *until_s = request_s + st.keep_s;
        put_entry(rc, skey, sklen, out->data, out->len, *until_s);
    } else
        cache_delete(rc->cache, skey, sklen);
    return SL_OK;
}

/* The entry's validators for the forwarded request (they replace the client's). */
static void set_validators(struct conn *c, const struct blob *b, const char *vary)
{
    free(c->rc_validators);
    c->rc_validators = NULL;
    char date[40];
    if (b->etag_len) {
        const char *etag = vary + b->vary_len + b->etag_off;
        if (asprintf(&c->rc_validators, "If-None-Match: %.*s\r\n", (int)b->etag_len, etag) < 0)
            c->rc_validators = NULL;
    } else if (b->entry.has_last_modified) {
        clock_format_http(b->entry.last_modified_s, date);
        if (asprintf(&c->rc_validators, "If-Modified-Since: %s\r\n", date) < 0)
            c->rc_validators = NULL;
    }
}

int respcache_revalidated(struct conn *c, struct upconn *u, const char *buf)
{
    struct respcache *rc = rc_of(c);
    const char *rbuf = req_buf(c);
    struct span_fields sf = {c->fields, c->req.msg.nfields, rbuf};
    struct hc_fields req = {span_get, &sf};
    struct skey sk;
    cache_entry_release(find(rc, c->rc_key, strlen(c->rc_key), &req, clock_wall_ms(), &sk));
    struct iobuf l304 = {.max = 65536}, blob = {.max = rc->max_entry_bytes + 65536};
    int status = 0;
    int64_t until_s;
    if (head_from_spans(&l304, u->fields, u->resp.msg.nfields, buf) &&
        freshen(rc, c->rc_policy, &c->rc_req, sk.k, sk.len, l304.data, l304.len, c->rc_request_s,
                &blob,
                &until_s) == SL_OK) {
        if (until_s)
            tier_put(rc, c, sk.k, sk.len, blob.data, blob.len, until_s);
        struct blob b;
        const char *vary = blob.data + sizeof(b);
        memcpy(&b, blob.data, sizeof(b));
        const char *etag = b.etag_len ? vary + b.vary_len + b.etag_off : NULL;
        bool nm = hc_not_modified(&req, (enum hc_method)c->rc_method, &b.entry, etag, b.etag_len,
                                  clock_wall_s());
        c->rc_xcache = HC_X_REVALIDATED;
        status = answer_from_cache(c, &b, vary, nm, c->rc_method == HC_METHOD_HEAD,
                                   HC_X_REVALIDATED);
        if (status) {
            bump(&rc->n.revalidated);
            if (nm)
                bump(&rc->n.not_modified);
        }
    }
    free(l304.data);
    free(blob.data);
    respcache_abandon(c); /* waiters for this key now find the freshened entry */
    return status;
}

/* ---- background revalidation (stale-while-revalidate) --------------------------------- */

static void job_free(struct reval_job *j)
{
    if (!j)
        return;
    free(j->skey);
    free(j->url);
    curl_slist_free_all(j->headers);
    free(j);
}

/* Request fields the revalidation repeats: end-to-end ones, minus the client's own
 * conditionals and cache directives (ours replace them). */
static bool reval_field(const char *buf, const struct http1_header *h)
{
    static const char *const skip[] = {"If-None-Match", "If-Modified-Since", "If-Match",
                                       "If-Unmodified-Since", "If-Range", "Cache-Control",
                                       "Pragma", "Content-Length", "X-Request-Id",
                                       "traceparent"};
    if (h->hop_by_hop)
        return false;
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (http1_span_equals(buf, h->name, skip[i]))
            return false;
    return true;
}

static struct curl_slist *add_header(struct curl_slist *l, bool *ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct curl_slist *add_header(struct curl_slist *l, bool *ok, const char *fmt, ...)
{
    char line[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    struct curl_slist *next = *ok && n > 0 && (size_t)n < sizeof(line)
                                  ? curl_slist_append(l, line) : NULL;
    *ok = next != NULL;
    return next ? next : l;
}

/* A stale answer went out (X-Cache: STALE): revalidate its entry in the background, at
 * most once per key at a time; a full queue drops the job (the next stale hit retries). */
static void reval_enqueue(struct respcache *rc, struct conn *c, const struct skey *sk,
                          const struct blob *b, const char *vary)
{
    struct reval *r = &rc->reval;
    const char *buf = req_buf(c);
    const struct http1_message *m = &c->req.msg;
    if (!r->started || m->target_form != HTTP1_TARGET_ORIGIN)
        return;
    char up[AGENT_ADDR_MAX > GATEWAY_NAME_MAX ? AGENT_ADDR_MAX : GATEWAY_NAME_MAX];
    snprintf(up, sizeof(up), "%s", c->wc->agent->upstream_str);
    if (c->wc->gw && !gateway_any_upstream(c->wc->agent, up))
        return; /* nothing routable: the next stale hit tries again */
    struct reval_job *j = calloc(1, sizeof(*j));
    bool ok = j && (j->skey = malloc(sk->len)) != NULL &&
              asprintf(&j->url, "http://%s%.*s", up, (int)m->target.len, buf + m->target.off) > 0;
    if (ok) {
        memcpy(j->skey, sk->k, sk->len);
        j->sklen = sk->len;
        j->req = c->rc_req;
        j->policy = c->rc_policy;
    } else if (j) {
        j->url = NULL; /* asprintf leaves it undefined on failure */
    }
    for (unsigned i = 0; ok && i < m->nfields; i++) {
        const struct http1_header *h = &c->fields[i];
        if (reval_field(buf, h))
            j->headers = add_header(j->headers, &ok, "%.*s: %.*s", (int)h->name.len,
                                    buf + h->name.off, (int)h->value.len, buf + h->value.off);
    }
    set_validators(c, b, vary);
    if (ok && c->rc_validators) /* without its CRLF */
        j->headers = add_header(j->headers, &ok, "%.*s", (int)strlen(c->rc_validators) - 2,
                                c->rc_validators);
    free(c->rc_validators);
    c->rc_validators = NULL;
    if (ok)
        j->headers = add_header(j->headers, &ok, "Via: 1.1 %s", c->wc->agent->id);
    if (ok)
        j->headers = add_header(j->headers, &ok, "X-Request-Id: %s", c->request_id);
    pthread_mutex_lock(&r->lock);
    bool dup = r->busy && r->busy_len == sk->len && !memcmp(r->busy, sk->k, sk->len);
    for (struct reval_job *q = r->head; !dup && q; q = q->next)
        dup = q->sklen == sk->len && !memcmp(q->skey, sk->k, sk->len);
    bool queued = ok && !dup && r->n < REVAL_QUEUE_MAX;
    if (queued) {
        if (r->tail)
            r->tail->next = j;
        else
            r->head = j;
        r->tail = j;
        r->n++;
        pthread_cond_signal(&r->cond);
    }
    pthread_mutex_unlock(&r->lock);
    if (!queued) {
        if (!dup)
            bump(&rc->n.reval_dropped);
        job_free(j);
    }
}

struct fetch {
    struct respcache *rc;
    unsigned status;
    struct iobuf head, body;
};

/* libcurl's header callback: the status line starts a response (a 100 may precede the
 * final one); stored-field lines are kept. */
static size_t on_fetch_header(char *p, size_t size, size_t nitems, void *arg)
{
    struct fetch *f = arg;
    size_t n = size * nitems;
    if (n >= 5 && !memcmp(p, "HTTP/", 5)) {
        const char *sp = memchr(p, ' ', n);
        f->status = sp && (size_t)(sp - p) + 4 <= n ? (unsigned)strtoul(sp + 1, NULL, 10) : 0;
        f->head.len = 0;
        return n;
    }
    const char *colon = memchr(p, ':', n);
    if (!colon || !stored_field(p, (size_t)(colon - p)))
        return n;
    size_t len = n;
    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    return iobuf_append(&f->head, p, len) && iobuf_append(&f->head, "\r\n", 2) ? n : 0;
}

static size_t on_fetch_body(char *p, size_t size, size_t nitems, void *arg)
{
    struct fetch *f = arg;
    return iobuf_append(&f->body, p, size * nitems) ? size * nitems : 0; /* 0: too large */
}

static int on_fetch_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c2,
                             curl_off_t d)
{
    (void)a, (void)b, (void)c2, (void)d;
    struct respcache *rc = arg;
    return atomic_load_explicit(&rc->reval_stop, memory_order_relaxed); /* 1 aborts */
}

/* A 200 to the revalidation replaces the entry when it is storable with the same Vary. */
static bool replace_entry(struct respcache *rc, const struct reval_job *j, struct fetch *f,
                          int64_t request_s)
{
    struct lines l = {f->head.data, f->head.len};
    struct hc_fields resp = {lines_get, &l};
    struct hc_store st;
    char vary[VARY_MAX];
    size_t vlen = 0;
    if (!hc_response_storable(j->policy, &j->req, f->status, &resp, request_s, clock_wall_s(),
                              &st) ||
        hc_vary_names(&resp, vary, sizeof(vary), &vlen) != SL_OK)
        return false;
    struct cache_entry *e = cache_get_stale(rc->cache, j->skey, j->sklen, clock_wall_ms());
    struct blob old;
    const char *ovary;
    bool same = blob_read(e, &old, &ovary) && old.head_len && old.vary_len == vlen &&
                !memcmp(ovary, vary, vlen);
    cache_entry_release(e);
    struct blob hdr = {.entry = st.entry, .status = f->status, .vary_len = (uint32_t)vlen};
    struct iobuf out = {.max = rc->max_entry_bytes + 65536};
    bool ok = same && blob_build(&out, &hdr, vary, f->head.data, f->head.len, f->body.data,
                                 f->body.len);
    if (ok)
        put_entry(rc, j->skey, j->sklen, out.data, out.len, request_s + st.keep_s);
    free(out.data);
    return ok;
}

static void reval_run(struct respcache *rc, CURL *easy, const struct reval_job *j)
{
    const struct agent_config *cfg = &rc->agent->cfg;
    struct fetch f = {.rc = rc,
                      .head = {.max = 65536},
                      .body = {.max = rc->max_entry_bytes}};
    curl_easy_reset(easy); /* keeps the connection cache: keep-alive to the upstream */
    curl_easy_setopt(easy, CURLOPT_URL, j->url);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, j->headers);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                     (long)(cfg->connect_timeout_ms + cfg->upstream_timeout_ms));
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_fetch_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, &f);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_fetch_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &f);
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_fetch_progress);
    curl_easy_setopt(easy, CURLOPT_XFERINFODATA, rc);
    bump(&rc->n.reval_started);
    int64_t request_s = clock_wall_s();
    CURLcode res = curl_easy_perform(easy);
    struct iobuf out = {.max = rc->max_entry_bytes + 65536};
    bool ok = res == CURLE_OK;
    int64_t until_s; /* the shared tier is not written from here: it has no loop */
    if (ok && f.status == 304)
        ok = freshen(rc, j->policy, &j->req, j->skey, j->sklen, f.head.data, f.head.len,
                     request_s, &out,
                     &until_s) == SL_OK;
    else if (ok)
        ok = replace_entry(rc, j, &f, request_s);
    if (ok && f.status == 304)
        bump(&rc->n.revalidated);
    else if (!ok) /* the stale entry stays until it expires; stale-if-error may use it */
        bump(&rc->n.reval_failed);
    if (res != CURLE_OK)
        log_event(LOG_WARN, NULL, NULL, "background revalidation failed", "error",
                  curl_easy_strerror(res), "url", j->url, NULL);
    free(out.data);
    free(f.head.data);
    free(f.body.data);
}

static void *reval_main(void *arg)
{
    struct respcache *rc = arg;
    struct reval *r = &rc->reval;
    CURL *easy = curl_easy_init();
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (!r->stop && !r->head)
            pthread_cond_wait(&r->cond, &r->lock);
        if (r->stop)
            break;
        struct reval_job *j = r->head;
        r->head = j->next;
        if (!r->head)
            r->tail = NULL;
        r->n--;
        r->busy = j->skey;
        r->busy_len = j->sklen;
        pthread_mutex_unlock(&r->lock);
        if (easy)
            reval_run(rc, easy, j);
        pthread_mutex_lock(&r->lock);
        r->busy = NULL;
        job_free(j);
    }
    pthread_mutex_unlock(&r->lock);
    curl_easy_cleanup(easy);
    return NULL;
}

static int reval_start(struct respcache *rc)
{
    struct reval *r = &rc->reval;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (pthread_create(&r->thread, NULL, reval_main, rc) != 0)
        return SL_ENOMEM;
    r->started = true;
    return SL_OK;
}

static void reval_stop(struct respcache *rc)
{
    struct reval *r = &rc->reval;
    if (r->started) {
        atomic_store(&rc->reval_stop, 1);
        pthread_mutex_lock(&r->lock);
        r->stop = true;
        pthread_cond_signal(&r->cond);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
    }
    for (struct reval_job *j = r->head, *next; j; j = next) {
        next = j->next;
        job_free(j);
    }
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
}

int respcache_lookup(struct conn *c)
{
    struct respcache *rc = rc_of(c);
    if (!rc)
        return RC_MISS;
    const char *buf = req_buf(c);
    struct span_fields sf = {c->fields, c->req.msg.nfields, buf};
    struct hc_fields req = {span_get, &sf};
    char key[KEY_MAX];
    size_t klen = target_key(c, buf, key);
    enum hc_method m = method_of(c);
    free(c->rc_key);
    c->rc_key = strndup(key, klen);
    c->rc_method = m;
    c->rc_request_s = clock_wall_s();
    c->rc_xcache = HC_X_BYPASS;
    /* a GET with a body is odd; its head could move in the buffer while the body streams */
    c->rc_policy = policy_for(rc, c->path);
    if (!hc_request_cacheable(c->rc_policy, m, &req, &c->rc_req) ||
        c->req.msg.body != HTTP1_BODY_NONE) {
        if (m == HC_METHOD_GET || m == HC_METHOD_HEAD)
            bump(&rc->n.bypass);
        return RC_MISS;
    }
    c->rc_xcache = HC_X_MISS;
    free(c->rc_validators);
    c->rc_validators = NULL;
    struct skey sk;
    struct cache_entry *e = find(rc, key, klen, &req, clock_wall_ms(), &sk);
    struct blob b = {0};
    const char *vary = "";
    bool stored = blob_read(e, &b, &vary) && b.head_len;
    enum hc_serve sv = hc_serve(stored ? &b.entry : NULL, &c->rc_req, c->rc_request_s);
    if (sv == HC_SERVE_GATEWAY_TIMEOUT) { /* §5.2.1.7 only-if-cached, nothing usable */
        cache_entry_release(e);
        bump(&rc->n.misses);
        count_lookup(c, false);
        proxy_answer(c, 504, "not-cached", "Gateway Timeout",
                     "only-if-cached: no usable response is stored", false);
        return RC_ANSWERED;
    }
    if (sv == HC_SERVE_REVALIDATE) /* forwarded with the entry's validators */
        set_validators(c, &b, vary);
    if (sv == HC_SERVE_MISS || sv == HC_SERVE_REVALIDATE) {
        cache_entry_release(e);
        if (coalesce(rc, c)) { /* someone is fetching it: wait for that (bounded) */
            bump(&rc->n.coalesced);
            return RC_WAITING;
        }
        /* nothing here: another replica may have it (the filler asks, once) */
        if (!stored && !c->rc_tier_done && tier_get(c, key, klen))
            return RC_WAITING;
        bump(&rc->n.misses);
        count_lookup(c, false);
        return RC_MISS;
    }
    /* FRESH (HIT), or STALE within stale-while-revalidate (RFC 5861 §3) */
    enum hc_xcache x = sv == HC_SERVE_STALE ? HC_X_STALE : HC_X_HIT;
    const char *etag = b.etag_len ? vary + b.vary_len + b.etag_off : NULL;
    bool nm = hc_not_modified(&req, m, &b.entry, etag, b.etag_len, c->rc_request_s);
    int status = answer_from_cache(c, &b, vary, nm, m == HC_METHOD_HEAD, x);
    if (status && x == HC_X_STALE)
        reval_enqueue(rc, c, &sk, &b, vary);
    cache_entry_release(e);
    if (!status) {
        bump(&rc->n.misses);
        return RC_MISS;
    }
    bump(x == HC_X_STALE ? &rc->n.stale : &rc->n.hits);
    count_lookup(c, true);
    if (nm)
        bump(&rc->n.not_modified);
    c->rc_xcache = x;
    proxy_answered(c, status); /* may close c: nothing after this */
    return RC_ANSWERED;
}

void respcache_done(struct conn *c)
{
    tier_detach(c);
    c->rc_tier_done = false;
    respcache_abandon(c);
    free(c->rc_key);
    free(c->rc_validators);
    c->rc_key = c->rc_validators = NULL;
    c->rc_no_coalesce = false;
}

bool respcache_validators(const struct conn *c, const char **lines)
{
    *lines = c->rc_validators;
    return c->rc_validators != NULL;
}

/* RFC 5861 §4: the upstream failed; a stored answer whose stale-if-error window is still
 * open answers instead (X-Cache: STALE). true when answered (c may be gone). */
/* Whether respcache_stale_if_error would answer (looked up, not answered). */
bool respcache_can_serve_stale(struct conn *c)
{
    struct respcache *rc = rc_of(c);
    if (!rc || !c->rc_key || c->resp_started ||
        (c->rc_method != HC_METHOD_GET && c->rc_method != HC_METHOD_HEAD))
        return false;
    const char *buf = req_buf(c);
    struct span_fields sf = {c->fields, c->req.msg.nfields, buf};
    struct hc_fields req = {span_get, &sf};
    struct cache_entry *e = find(rc, c->rc_key, strlen(c->rc_key), &req, clock_wall_ms(), NULL);
    struct blob b;
    const char *vary;
    bool ok = blob_read(e, &b, &vary) && b.head_len &&
              hc_stale_if_error(&b.entry, &c->rc_req, clock_wall_s());
    cache_entry_release(e);
    return ok;
}

bool respcache_stale_if_error(struct conn *c)
{
    struct respcache *rc = rc_of(c);
    if (!rc || !c->rc_key || c->resp_started ||
        (c->rc_method != HC_METHOD_GET && c->rc_method != HC_METHOD_HEAD))
        return false;
    const char *buf = req_buf(c); /* GET/HEAD without a body: the head has not moved */
    struct span_fields sf = {c->fields, c->req.msg.nfields, buf};
    struct hc_fields req = {span_get, &sf};
    struct cache_entry *e = find(rc, c->rc_key, strlen(c->rc_key), &req, clock_wall_ms(), NULL);
    struct blob b;
    const char *vary;
    int status = 0;
    if (blob_read(e, &b, &vary) && b.head_len &&
        hc_stale_if_error(&b.entry, &c->rc_req, clock_wall_s())) {
        respcache_abandon(c);
        c->out.len = c->out.off = 0; /* nothing of the failed answer was sent */
        status = answer_from_cache(c, &b, vary, false, c->rc_method == HC_METHOD_HEAD,
                                   HC_X_STALE);
    }
    cache_entry_release(e);
    if (!status)
        return false;
    atomic_fetch_add_explicit(&rc->n.stale, 1, memory_order_relaxed);
    rate_add(&c->wc->stats->cache_hits, evloop_now_ms(c->wc->loop), 1); /* looked up before */
    c->rc_xcache = HC_X_STALE;
    proxy_answered(c, status);
    return true;
}

/* ---- storing what the upstream answered ----------------------------------------------- */

static bool capture_append(struct conn *c, const void *p, size_t n)
{
    if (!c->rc_capture)
        return false;
    if (!iobuf_append(c->rc_capture, p, n)) {
        respcache_abandon(c); /* over the entry bound: stop capturing */
        return false;
    }
    return true;
}

/* The stored head: the response's fields minus hop-by-hop and generated ones (RFC 9111
 * §3.1). The blob header is updated at the end: appending may move the buffer. */
static bool capture_head(struct conn *c, struct upconn *u, const char *buf)
{
    size_t start = c->rc_capture->len;
    if (!head_from_spans(c->rc_capture, u->fields, u->resp.msg.nfields, buf)) {
        respcache_abandon(c); /* over the entry bound */
        return false;
    }
    struct blob b;
    memcpy(&b, c->rc_capture->data, sizeof(b));
    b.head_len = (uint32_t)(c->rc_capture->len - start);
    blob_find_etag(&b, c->rc_capture->data + start);
    memcpy(c->rc_capture->data, &b, sizeof(b));
    return true;
}

bool respcache_response_head(struct conn *c, struct upconn *u, const char *buf,
                             struct iobuf *out)
{
    struct respcache *rc = rc_of(c);
    if (!rc || !c->rc_key)
        return true;
    const struct http1_message *m = &u->resp.msg;
    if (c->rc_xcache == HC_X_MISS) {
        struct span_fields sf = {u->fields, m->nfields, buf};
        struct hc_fields resp = {span_get, &sf};
        struct hc_store st;
        char vary[VARY_MAX];
        size_t vlen = 0;
        bool body_known = m->body == HTTP1_BODY_NONE || m->body == HTTP1_BODY_LENGTH ||
                          m->body == HTTP1_BODY_CHUNKED; /* stored decoded, with a length */
        if (hc_response_storable(c->rc_policy, &c->rc_req, m->status, &resp, c->rc_request_s,
                                 clock_wall_s(), &st) &&
            body_known && hc_vary_names(&resp, vary, sizeof(vary), &vlen) == SL_OK &&
            cache_entry_cost(strlen(c->rc_key) + VARY_MAX, sizeof(struct blob) + vlen +
                                                               m->content_length + 2048) <=
                rc->max_entry_bytes) {
            struct blob b = {.entry = st.entry, .status = m->status, .vary_len = (uint32_t)vlen};
            c->rc_capture = calloc(1, sizeof(*c->rc_capture));
            if (c->rc_capture) {
                c->rc_capture->max = rc->max_entry_bytes;
                c->rc_keep_s = st.keep_s;
            }
            if (!capture_append(c, &b, sizeof(b)) || !capture_append(c, vary, vlen) ||
                !capture_head(c, u, buf))
                respcache_abandon(c);
        }
        if (!c->rc_capture) {
            c->rc_xcache = HC_X_BYPASS;
            bump(&rc->n.bypass);
        }
    }
    return iobuf_printf(out, "X-Cache: %s\r\n", hc_xcache_str(c->rc_xcache));
}

void respcache_body(struct conn *c, const char *data, size_t n)
{
    capture_append(c, data, n);
}

static void store(struct respcache *rc, struct conn *c, const struct hc_fields *req)
{
    struct blob *b = (struct blob *)c->rc_capture->data;
    size_t total = c->rc_capture->len;
    b->body_len = (uint32_t)(total - sizeof(*b) - b->vary_len - b->head_len);
    int64_t until_s = c->rc_request_s + c->rc_keep_s;
    size_t klen = strlen(c->rc_key);
    if (!b->vary_len) {
        put_entry(rc, c->rc_key, klen, b, total, until_s);
        tier_put(rc, c, c->rc_key, klen, b, total, until_s);
        return;
    }
    char k2[KEY_MAX + VARY_MAX * 4];
    size_t vlen;
    memcpy(k2, c->rc_key, klen);
    if (hc_vary_key((const char *)(b + 1), b->vary_len, req, k2 + klen, sizeof(k2) - klen,
                    &vlen) != SL_OK)
        return;
    struct blob marker = {.vary_len = b->vary_len};
    char mbuf[sizeof(marker) + VARY_MAX];
    memcpy(mbuf, &marker, sizeof(marker));
    memcpy(mbuf + sizeof(marker), b + 1, b->vary_len);
    put_entry(rc, c->rc_key, klen, mbuf, sizeof(marker) + b->vary_len, until_s);
    put_entry(rc, k2, klen + vlen, b, total, until_s);
    tier_put(rc, c, c->rc_key, klen, mbuf, sizeof(marker) + b->vary_len, until_s);
    tier_put(rc, c, k2, klen + vlen, b, total, until_s);
}

void respcache_complete(struct conn *c, struct upconn *u)
{
    struct respcache *rc = rc_of(c);
    if (!rc || !c->rc_key)
        return;
    const char *buf = req_buf(c); /* GET/HEAD without a body: the head has not moved */
    if (hc_invalidates((enum hc_method)c->rc_method, u->resp.msg.status)) {
        /* RFC 9111 §4.4: every variant of the target goes */
        if (cache_purge_prefix(rc->cache, c->rc_key, strlen(c->rc_key)))
            bump(&rc->n.invalidations);
        tier_del(c, c->rc_key, strlen(c->rc_key)); /* the marker or entry: variants follow */
        publish_invalidation(c);
    } else if (c->rc_capture) {
        struct span_fields sf = {c->fields, c->req.msg.nfields, buf};
        struct hc_fields req = {span_get, &sf};
        store(rc, c, &req);
    }
    respcache_abandon(c);
}

void respcache_abandon(struct conn *c)
{
    if (c->rc_filler)
        fill_release(rc_of(c), c);
    if (c->rc_capture) {
        free(c->rc_capture->data);
        free(c->rc_capture);
        c->rc_capture = NULL;
    }
}

size_t respcache_purge(struct agent *a, const char *prefix, size_t len, long long *shared)
{
    *shared = 0;
    if (!a->respcache)
        return 0;
    *shared = tier_purge(a->respcache, prefix, len);
    return cache_purge_prefix(a->respcache->cache, prefix, len);
}

/* ---- stats ------------------------------------------------------------------------- */

/* Hits ÷ lookups over the last 1, 10 and 60 s, merged over the workers. */
static json_t *hit_ratio_windows(struct agent *a)
{
    struct rate hits, lookups;
    rate_reset(&hits);
    rate_reset(&lookups);
    for (unsigned i = 0; i < a->nworkers; i++) {
        rate_merge(&hits, &worker_stats(a->workers[i])->cache_hits);
        rate_merge(&lookups, &worker_stats(a->workers[i])->cache_lookups);
    }
    uint64_t now = clock_mono_ms();
    static const unsigned windows[] = {1, 10, 60};
    static const char *const names[] = {"1s", "10s", "60s"};
    json_t *o = json_object();
    for (int i = 0; i < 3; i++) {
        uint64_t h = rate_count(&hits, now, windows[i]), l = rate_count(&lookups, now, windows[i]);
        json_object_set_new(o, names[i], l ? json_real((double)h / (double)l) : json_null());
    }
    return o;
}

/* The shared tier's counters; null without --cache-redis. */
static json_t *tier_json(struct agent *a)
{
    const struct respcache *rc = a->respcache;
    if (!rc->tier_pool)
        return json_null();
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "hits",
                     (json_int_t)atomic_load(&rc->n.tier_hits), "misses",
                     (json_int_t)atomic_load(&rc->n.tier_misses), "errors",
                     (json_int_t)atomic_load(&rc->n.tier_errors), "writes",
                     (json_int_t)atomic_load(&rc->n.tier_writes), "too_big",
                     (json_int_t)atomic_load(&rc->n.tier_too_big), "max_entry_bytes",
                     (json_int_t)rc->tier_max_bytes);
}

json_t *respcache_stats_json(struct agent *a)
{
    struct respcache *rc = a->respcache;
    if (!rc)
        return json_pack("{s:b}", "enabled", 0);
    struct cache_stats st;
    cache_stats(rc->cache, &st);
    uint64_t hits = atomic_load(&rc->n.hits), misses = atomic_load(&rc->n.misses);
    const struct {
        const char *name;
        uint64_t v;
    } counts[] = {
        {"hits", hits},
        {"misses", misses},
        {"stale", atomic_load(&rc->n.stale)},
        {"revalidated", atomic_load(&rc->n.revalidated)},
        {"bypass", atomic_load(&rc->n.bypass)},
        {"not_modified", atomic_load(&rc->n.not_modified)},
        {"coalesced", atomic_load(&rc->n.coalesced)},
        {"invalidations", atomic_load(&rc->n.invalidations)},
        {"reval_started", atomic_load(&rc->n.reval_started)},
        {"reval_failed", atomic_load(&rc->n.reval_failed)},
        {"reval_dropped", atomic_load(&rc->n.reval_dropped)},
        {"evictions", st.evictions},
        {"expirations", st.expirations},
        {"entries", st.entries},
        {"bytes", st.bytes},
        {"budget_bytes", st.budget_bytes},
    };
    json_t *o = json_pack("{s:b, s:s, s:f, s:o, s:o}", "enabled", 1, "policy",
                          a->cfg.cache_policy, "hit_ratio",
                          hits + misses ? (double)hits / (double)(hits + misses) : 0.0,
                          "hit_ratio_window", hit_ratio_windows(a), "shared", tier_json(a));
    for (size_t i = 0; o && i < sizeof(counts) / sizeof(counts[0]); i++)
        json_object_set_new(o, counts[i].name, json_integer((json_int_t)counts[i].v));
    return o;
}

int respcache_prom(struct prom *w, struct agent *a)
{
    struct respcache *rc = a->respcache;
    if (!rc)
        return SL_OK;
    struct cache_stats st;
    cache_stats(rc->cache, &st);
    const struct {
        const char *name, *help;
        enum prom_type type;
        double v;
    } rows[] = {
        {"sluice_cache_hits_total", "Answers from the response cache", PROM_COUNTER,
         (double)atomic_load(&rc->n.hits)},
        {"sluice_cache_misses_total", "Cacheable requests sent upstream", PROM_COUNTER,
         (double)atomic_load(&rc->n.misses)},
        {"sluice_cache_bypass_total", "Requests or responses the cache could not use",
         PROM_COUNTER, (double)atomic_load(&rc->n.bypass)},
        {"sluice_cache_stale_total", "Stale answers (stale-while-revalidate, stale-if-error)",
         PROM_COUNTER, (double)atomic_load(&rc->n.stale)},
        {"sluice_cache_revalidated_total", "Stored answers validated upstream by a 304",
         PROM_COUNTER, (double)atomic_load(&rc->n.revalidated)},
        {"sluice_cache_shared_hits_total", "Entries read from the shared tier in Redis",
         PROM_COUNTER, (double)atomic_load(&rc->n.tier_hits)},
        {"sluice_cache_shared_misses_total", "Shared-tier lookups that found nothing",
         PROM_COUNTER, (double)atomic_load(&rc->n.tier_misses)},
        {"sluice_cache_evictions_total", "Entries evicted for room", PROM_COUNTER,
         (double)st.evictions},
        {"sluice_cache_expirations_total", "Entries removed after expiry", PROM_COUNTER,
         (double)st.expirations},
        {"sluice_cache_entries", "Entries stored", PROM_GAUGE, (double)st.entries},
        {"sluice_cache_bytes", "Bytes charged against the budget", PROM_GAUGE, (double)st.bytes},
    };
    int rc2 = SL_OK;
    for (size_t i = 0; rc2 == SL_OK && i < sizeof(rows) / sizeof(rows[0]); i++) {
        rc2 = prom_family(w, rows[i].name, rows[i].type, rows[i].help);
        if (rc2 == SL_OK)
            rc2 = prom_sample(w, NULL, 0, rows[i].v);
    }
    return rc2;
}
