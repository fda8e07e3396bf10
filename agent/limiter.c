#include "limiter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "proxy.h"
#include "ratelimit_redis.h"
#include "routes.h"

#define KEY_MAX 256

/* A Redis decision outlives its connection when the client goes away: the ticket does. */
struct limit_wait {
    struct conn *c; /* NULL once abandoned */
    unsigned pending;
};

struct limit_reply {
    struct limit_wait *lw;
    unsigned index;
};

/* ---- counters ------------------------------------------------------------------------ */

void limits_assign_slots(struct policy_stats *ps, struct policy_set *set)
{
    pthread_mutex_lock(&ps->lock);
    for (size_t i = 0; set && i < set->n; i++) {
        struct policy *p = &set->items[i];
        unsigned n = atomic_load(&ps->n), slot = n;
        for (unsigned k = 0; k < n; k++)
            if (strcmp(ps->slots[k].name, p->name) == 0)
                slot = k;
        if (slot == n && n < POLICY_STATS_MAX) {
            snprintf(ps->slots[n].name, sizeof(ps->slots[n].name), "%s", p->name);
            atomic_store(&ps->n, n + 1);
        }
        p->stats_slot = slot < POLICY_STATS_MAX ? slot : POLICY_STATS_MAX - 1;
    }
    pthread_mutex_unlock(&ps->lock);
}

static struct policy_counters *counters(const struct conn *c, const struct policy *p)
{
    return &c->wc->agent->policy_stats.slots[p->stats_slot];
}

static void count(_Atomic uint64_t *v)
{
    atomic_fetch_add_explicit(v, 1, memory_order_relaxed);
}

/* ---- keys ---------------------------------------------------------------------------- */

/* The client key of a request for a policy: ip, route, header:NAME or global. */
static size_t policy_key(const struct conn *c, const struct policy *p, char out[KEY_MAX])
{
    const char *buf = c->in.data + c->in.off;
    switch (p->key) {
    case POLICY_KEY_IP: {
        size_t n = strnlen(c->peer_ip, sizeof(c->peer_ip) - 1);
        memcpy(out, c->peer_ip, n + 1);
        return n;
    }
    case POLICY_KEY_ROUTE:
        return (size_t)snprintf(out, KEY_MAX, "%s", routes_name(c->wc->agent->routes, c->route));
    case POLICY_KEY_GLOBAL:
        out[0] = '\0';
        return 0;
    case POLICY_KEY_HEADER: {
        int i = http1_field_find(&c->req, buf, p->header);
        if (i < 0)
            return (size_t)snprintf(out, KEY_MAX, "-"); /* one shared bucket for "absent" */
        uint32_t n = c->fields[i].value.len < KEY_MAX - 2 ? c->fields[i].value.len : KEY_MAX - 2;
        out[0] = '=';
        memcpy(out + 1, buf + c->fields[i].value.off, n);
        out[n + 1] = '\0';
        return n + 1;
    }
    }
    return 0;
}

/* ---- deciding ------------------------------------------------------------------------ */

/* on_store_error = local: this agent's share of the limit (DESIGN §4.2). */
static void decide_fallback(struct conn *c, struct limit_verdict *v, const char *key,
                            size_t key_len)
{
    struct agent *a = c->wc->agent;
    struct rl_params share = v->p->params;
    unsigned agents = atomic_load(&a->live_agents);
    share.limit = share.limit / (agents ? agents : 1);
    if (share.limit == 0)
        share.limit = 1;
    if (share.burst)
        share.burst = share.burst / (agents ? agents : 1) + 1;
    rl_local_decide(a->rl_local, v->p->id ^ 0x9E3779B9u, &share, key, key_len,
                    evloop_now_ms(c->wc->loop), 1, &v->d);
    v->decided = true;
    count(&counters(c, v->p)->fallback_local);
}

/* A store error: admit, refuse or fall back, as the policy says. */
static void resolve_store_error(struct conn *c, struct limit_verdict *v)
{
    const struct policy *p = v->p;
    char key[KEY_MAX];
    size_t n = policy_key(c, p, key);
    v->store_error = true;
    count(&counters(c, p)->store_errors);
    switch (p->on_store_error) {
    case POLICY_ON_ERROR_OPEN:
        v->d = (struct rl_decision){.allowed = true, .limit = p->params.limit,
                                    .remaining = p->params.limit};
        v->decided = true;
        count(&counters(c, p)->failed_open);
        break;
    case POLICY_ON_ERROR_CLOSED:
        v->d = (struct rl_decision){.allowed = false, .limit = p->params.limit,
                                    .retry_after_ms = 1000, .reset_ms = 1000};
        v->decided = true;
        count(&counters(c, p)->failed_closed);
        break;
    case POLICY_ON_ERROR_LOCAL:
        decide_fallback(c, v, key, n);
        break;
    }
}

static void on_redis_decision(const struct rl_decision *d, int err, void *arg)
{
    struct limit_reply *r = arg;
    struct limit_wait *lw = r->lw;
    struct conn *c = lw->c;
    if (c) {
        struct limit_verdict *v = &c->lv[r->index];
        if (err || !d) {
            resolve_store_error(c, v);
        } else {
            v->d = *d;
            v->decided = true;
        }
    }
    free(r);
    if (--lw->pending > 0)
        return;
    if (c) {
        c->lw = NULL;
        proxy_limits_done(c);
    }
    free(lw);
}

static int decide_redis(struct conn *c, unsigned i)
{
    struct worker_core *wc = c->wc;
    struct limit_verdict *v = &c->lv[i];
    char key[KEY_MAX];
    size_t n = policy_key(c, v->p, key);
    struct limit_reply *r = wc->rl_redis ? malloc(sizeof(*r)) : NULL;
    if (!c->lw && r) {
        c->lw = calloc(1, sizeof(*c->lw));
        if (c->lw)
            c->lw->c = c;
    }
    if (!r || !c->lw) {
        free(r);
        resolve_store_error(c, v);
        return 0;
    }
    r->lw = c->lw;
    r->index = i;
    struct rl_redis_policy pol = {.name = v->p->name, .params = v->p->params,
                                  .lease = v->p->store == POLICY_STORE_REDIS_LEASE};
    struct rl_decision now;
    int rc = rl_redis_decide(wc->rl_redis, &pol, key, n, 1, &now, on_redis_decision, r);
    if (rc == RL_REDIS_NOW) { /* the lease answered without Redis */
        free(r);
        v->d = now;
        v->decided = true;
        return 0;
    }
    if (rc) {
        free(r);
        resolve_store_error(c, v);
        return 0;
    }
    c->lw->pending++;
    return 1;
}

static void policies_refresh(struct worker_core *wc)
{
    struct agent *a = wc->agent;
    uint64_t gen = atomic_load_explicit(&a->policies_gen, memory_order_acquire);
    if (gen == wc->policies_gen)
        return;
    struct policy_set *s = agent_policies(a), *old = wc->policies;
    for (size_t i = 0; old && wc->rl_redis && i < old->n; i++) {
        const struct policy *n = s ? policy_set_find(s, old->items[i].name) : NULL;
        if (!n || memcmp(&n->params, &old->items[i].params, sizeof(n->params)) != 0)
            rl_redis_forget(wc->rl_redis, old->items[i].name); /* leases of the old terms */
    }
    policy_set_unref(old);
    wc->policies = s;
    wc->policies_gen = gen;
}

static void agents_refresh(struct worker_core *wc)
{
    unsigned live = atomic_load_explicit(&wc->agent->live_agents, memory_order_relaxed);
    if (wc->rl_redis && live != wc->live_agents) {
        rl_redis_set_instances(wc->rl_redis, live * wc->agent->nworkers);
        wc->live_agents = live;
    }
}

int limits_start(struct conn *c)
{
    struct worker_core *wc = c->wc;
    policies_refresh(wc);
    agents_refresh(wc);
    struct policy_set *set = wc->policies;
    c->nlv = 0;
    if (!set || set->n == 0)
        return 0;
    enum policy_scope scope =
        wc->agent->role == AGENT_ROLE_GATEWAY ? POLICY_SCOPE_GATEWAY : POLICY_SCOPE_SIDECAR;
    for (size_t i = 0; i < set->n && c->nlv < LIMITS_PER_REQUEST; i++)
        if (policy_matches(&set->items[i], scope, c->method, c->path))
            c->lv[c->nlv++] = (struct limit_verdict){.p = &set->items[i]};
    if (c->nlv == 0)
        return 0;
    policy_set_ref(set);
    c->pset = set;
    int pending = 0;
    for (unsigned i = 0; i < c->nlv; i++) {
        struct limit_verdict *v = &c->lv[i];
        if (v->p->store == POLICY_STORE_LOCAL) {
            char key[KEY_MAX];
            size_t n = policy_key(c, v->p, key);
            rl_local_decide(wc->agent->rl_local, v->p->id, &v->p->params, key, n,
                            evloop_now_ms(wc->loop), 1, &v->d);
            v->decided = true;
        } else {
            pending += decide_redis(c, i);
        }
    }
    if (!pending && c->lw) { /* every Redis policy answered at once (lease, or refused) */
        free(c->lw);
        c->lw = NULL;
    }
    return pending ? 1 : 0;
}

void limits_abandon(struct conn *c)
{
    if (c->lw) {
        c->lw->c = NULL; /* the callbacks free it */
        c->lw = NULL;
    }
}

/* ---- the verdict and the headers ----------------------------------------------------- */

static uint64_t ceil_s(uint64_t ms)
{
    return (ms + 999) / 1000;
}

bool limits_verdict(struct conn *c)
{
    const struct limit_verdict *deny = NULL;
    for (unsigned i = 0; i < c->nlv; i++) {
        const struct limit_verdict *v = &c->lv[i];
        struct policy_counters *k = counters(c, v->p);
        if (v->d.allowed) {
            count(&k->allowed);
        } else if (v->p->mode == POLICY_MODE_SHADOW) {
            count(&k->shadow_limited); /* decided and counted, never enforced */
        } else {
            count(&k->limited);
            if (!deny || v->d.retry_after_ms > deny->d.retry_after_ms)
                deny = v;
        }
    }
    if (!deny)
        return true;
    char detail[200];
    snprintf(detail, sizeof(detail), "policy '%s' allows %llu requests per %llu ms%s",
             deny->p->name, (unsigned long long)deny->p->params.limit,
             (unsigned long long)deny->p->params.window_ms,
             deny->store_error ? " (limiter unavailable: failing closed)" : "");
    char slug[POLICY_NAME_MAX + 16];
    snprintf(slug, sizeof(slug), "rate-limited:%s", deny->p->name); /* the type names it */
    c->limited_retry_s = ceil_s(deny->d.retry_after_ms) ? ceil_s(deny->d.retry_after_ms) : 1;
    /* without a body the connection stays usable: the client may retry on it */
    c->req_body_done = c->req.msg.body == HTTP1_BODY_NONE;
    proxy_answer(c, 429, slug, "Too Many Requests", detail, false);
    return false;
}

/* A small append-only text builder: the headers are written on every covered response,
 * so no printf here (measured: snprintf made the limiter cost ~5 % of a proxied request). */
struct hdr {
    char buf[1024];
    size_t n;
    bool full;
};

static void hdr_str(struct hdr *h, const char *s, size_t len)
{
    if (h->full || len > sizeof(h->buf) - h->n) {
        h->full = true;
        return;
    }
    memcpy(h->buf + h->n, s, len);
    h->n += len;
}

static void hdr_u64(struct hdr *h, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    hdr_str(h, tmp + i, sizeof(tmp) - i);
}

/* One list member: "name";K1=V1;K2=V2 (RFC 9651 sf-string: names are tokens, policy.c). */
static void hdr_member(struct hdr *h, bool first, const char *name, const char *k1,
                       uint64_t v1, const char *k2, uint64_t v2)
{
    if (!first)
        hdr_str(h, ", ", 2);
    hdr_str(h, "\"", 1);
    hdr_str(h, name, strlen(name));
    hdr_str(h, "\";", 2);
    hdr_str(h, k1, 2);
    hdr_u64(h, v1);
    hdr_str(h, ";", 1);
    hdr_str(h, k2, 2);
    hdr_u64(h, v2);
}

bool limits_headers(const struct conn *c, struct iobuf *out)
{
    if (c->nlv == 0)
        return true;
    struct hdr h = {.n = 0};
    const struct limit_verdict *tight = NULL;
    for (int line = 0; line < 2; line++) {
        hdr_str(&h, line ? "RateLimit: " : "RateLimit-Policy: ", line ? 11 : 18);
        bool first = true;
        for (unsigned i = 0; i < c->nlv; i++) {
            const struct limit_verdict *v = &c->lv[i];
            if (!v->decided)
                continue;
            if (line == 0)
                hdr_member(&h, first, v->p->name, "q=", v->d.limit, "w=",
                           ceil_s(v->p->params.window_ms));
            else
                hdr_member(&h, first, v->p->name, "r=", v->d.remaining, "t=",
                           ceil_s(v->d.reset_ms));
            first = false;
            if (!tight || v->d.remaining < tight->d.remaining)
                tight = v;
        }
        hdr_str(&h, "\r\n", 2);
    }
    if (!tight || h.full)
        return true; /* nothing decided, or a list too long to be worth a broken header */
    bool ok = iobuf_append(out, h.buf, h.n);
    if (ok && c->wc->agent->legacy_ratelimit_headers)
        ok = iobuf_printf(out, "X-RateLimit-Limit: %llu\r\nX-RateLimit-Remaining: %llu\r\n"
                               "X-RateLimit-Reset: %llu\r\n",
                          (unsigned long long)tight->d.limit,
                          (unsigned long long)tight->d.remaining,
                          (unsigned long long)ceil_s(tight->d.reset_ms));
    return ok;
}

/* ---- stats --------------------------------------------------------------------------- */

#define COUNTER_FIELDS(X)                                                                  \
    X(allowed, "requests the policy admitted")                                             \
    X(limited, "requests the policy refused (429)")                                        \
    X(shadow_limited, "requests a shadow policy would have refused")                       \
    X(store_errors, "decisions the limiter store could not make")                          \
    X(fallback_local, "decisions made locally because the store failed")                   \
    X(failed_open, "requests admitted because the store failed (open)")                    \
    X(failed_closed, "requests refused because the store failed (closed)")

json_t *limits_stats_json(struct agent *a)
{
    json_t *list = json_array();
    struct policy_stats *ps = &a->policy_stats;
    unsigned n = atomic_load(&ps->n);
    for (unsigned i = 0; i < n; i++) {
        struct policy_counters *k = &ps->slots[i];
        json_t *o = json_pack("{s:s}", "policy", k->name);
#define JSON_FIELD(f, help) json_object_set_new(o, #f, json_integer((json_int_t)atomic_load(&k->f)));
        COUNTER_FIELDS(JSON_FIELD)
#undef JSON_FIELD
        json_array_append_new(list, o);
    }
    return list;
}

int limits_prom(struct prom *w, struct agent *a)
{
    struct policy_stats *ps = &a->policy_stats;
    unsigned n = atomic_load(&ps->n);
    int rc = SL_OK;
#define PROM_FIELD(f, help)                                                                \
    if (rc == SL_OK)                                                                       \
        rc = prom_family(w, "sluice_ratelimit_" #f "_total", PROM_COUNTER, help);          \
    for (unsigned i = 0; rc == SL_OK && i < n; i++) {                                      \
        struct prom_label l[] = {{"policy", ps->slots[i].name}};                           \
        prom_sample(w, l, 1, (double)atomic_load(&ps->slots[i].f));                        \
    }
    COUNTER_FIELDS(PROM_FIELD)
#undef PROM_FIELD
    return rc;
}
