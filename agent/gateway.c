#include "gateway.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "agent.h"
#include "balancer.h"
#include "clock.h"
#include "control.h"
#include "err.h"
#include "evloop.h"
#include "evloop_curl.h"
#include "flags.h"
#include "log.h"
#include "proxy.h"
#include "store_redis.h"
#include "upstream_health.h"

#define TICK_MS 100          /* ejection ends, due checks */
#define DISCOVER_MS 1000     /* the registry */
#define PROBE_BODY_MAX 256
#define EWMA_ALPHA 0.3

struct gw_slot {
    bool used;
    bool discovered;
    char name[GATEWAY_NAME_MAX];  /* the upstream's proxy address, host:port */
    char id[AGENT_ID_MAX];        /* registry id (discovered), else the name */
    char check_url[GATEWAY_NAME_MAX + 160];
    struct sockaddr_storage addr;
    socklen_t addr_len;
    unsigned weight;              /* effective 0–100 */
    int reg_weight;               /* last weight seen in the registry; -1 none */
    enum uh_admin reg_admin;      /* from the registry */
    enum uh_admin probe_admin;    /* from readyz */
    uint64_t seen_ms;             /* last time the registry listed it */
    CURL *probe;                  /* in flight when probing */
    bool probing;
    char body[PROBE_BODY_MAX];
    size_t body_len;
    /* stats (atomics: workers write them without the lock) */
    _Atomic uint64_t picks, in_flight, answered_5xx, connect_failures, retried_from;
    double ewma_us; /* under the lock */
    struct gateway *g;
};

struct gateway {
    pthread_mutex_t lock;
    struct gw_slot slots[GATEWAY_MAX_UPSTREAMS];
    struct uh_pool *health;
    _Atomic uint64_t gen; /* bumped on every change a balancer must see */
    enum balancer_alg alg;
    char hash_header[64];
    char health_path[128];
    unsigned max_retries;
    /* retry budget (Envoy): retries in flight ≤ max(3, ratio × requests in flight) */
    struct retry_budget budget; /* under the lock */
    _Atomic uint64_t retries, retries_refused, no_upstream;
    /* the health thread */
    struct agent *agent;
    struct evloop *loop;
    struct evcurl *curl;
    struct redis_pool *redis; /* --discover */
    pthread_t thread;
    bool started;
    uint64_t next_discover_ms;
    bool discover_ok; /* the last registry read worked (log once on change) */
};

struct gw_worker {
    struct balancer *b;
    uint64_t gen;
    int slot_of[BALANCER_MAX];           /* balancer index → slot */
    int idx_of[GATEWAY_MAX_UPSTREAMS];   /* slot → balancer index, -1 none */
};

static struct gateway *gw_of(const struct agent *a)
{
    return a->gateway;
}

static void bump_gen(struct gateway *g)
{
    atomic_fetch_add_explicit(&g->gen, 1, memory_order_release);
}

static void log_events(const struct gw_slot *s, unsigned ev)
{
    static const unsigned shown[] = {UH_EV_UP, UH_EV_DOWN, UH_EV_EJECTED, UH_EV_RETURNED,
                                     UH_EV_PANIC_ON, UH_EV_PANIC_OFF};
    for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++)
        if (ev & shown[i])
            log_event(shown[i] == UH_EV_UP || shown[i] == UH_EV_RETURNED ||
                              shown[i] == UH_EV_PANIC_OFF
                          ? LOG_INFO
                          : LOG_WARN,
                      NULL, NULL, "upstream", "upstream", s ? s->name : "(pool)", "event",
                      uh_event_str(shown[i]), NULL);
}

/* Under the lock: a change the balancers must see. */
static void changed(struct gateway *g, struct gw_slot *s, unsigned ev)
{
    if (ev)
        log_events(s, ev);
    if (ev & (UH_EV_ELIGIBLE | UH_EV_INELIGIBLE | UH_EV_PANIC_ON | UH_EV_PANIC_OFF |
              UH_EV_ADMIN | UH_EV_EJECTED | UH_EV_RETURNED | UH_EV_UP | UH_EV_DOWN))
        bump_gen(g);
}

static enum uh_admin worst(enum uh_admin a, enum uh_admin b)
{
    return a > b ? a : b; /* serving < draining < drained < maint */
}

/* Under the lock: the administrative state is the worse of the registry's and readyz's. */
static void apply_admin(struct gateway *g, int slot, uint64_t now)
{
    struct gw_slot *s = &g->slots[slot];
    changed(g, s, uh_set_admin(g->health, slot, worst(s->reg_admin, s->probe_admin), now));
}

/* ---- slots -------------------------------------------------------------------------- */

static int find_slot(const struct gateway *g, const char *name)
{
    for (int i = 0; i < GATEWAY_MAX_UPSTREAMS; i++)
        if (g->slots[i].used && strcmp(g->slots[i].name, name) == 0)
            return i;
    return -1;
}

/* Under the lock. check: "host:port" of the readyz to probe (the sidecar's admin), or
 * NULL to probe the upstream itself at --health-path. */
static int add_slot(struct gateway *g, const char *name, const char *id, const char *check,
                    unsigned weight, bool discovered, char err[256])
{
    int slot = -1;
    for (int i = 0; i < GATEWAY_MAX_UPSTREAMS && slot < 0; i++)
        if (!g->slots[i].used)
            slot = i;
    if (slot < 0) {
        snprintf(err, 256, "more than %d upstreams", GATEWAY_MAX_UPSTREAMS);
        return SL_ERANGE;
    }
    struct gw_slot *s = &g->slots[slot];
    s->g = g;
    char canon[AGENT_ADDR_MAX];
    if (strlen(name) >= sizeof(s->name) ||
        agent_resolve("--upstreams", name, &s->addr, &s->addr_len, canon, sizeof(canon), err))
        return SL_EINVAL;
    snprintf(s->name, sizeof(s->name), "%s", name);
    snprintf(s->id, sizeof(s->id), "%s", id ? id : name);
    snprintf(s->check_url, sizeof(s->check_url), "http://%s%s", check ? check : name,
             check ? "/readyz" : g->health_path);
    s->weight = weight;
    s->reg_weight = discovered ? (int)weight : -1;
    s->reg_admin = s->probe_admin = UH_SERVING;
    s->discovered = discovered;
    s->seen_ms = clock_mono_ms();
    s->probing = false;
    s->body_len = 0;
    atomic_store(&s->picks, 0);
    atomic_store(&s->in_flight, 0);
    atomic_store(&s->answered_5xx, 0);
    atomic_store(&s->connect_failures, 0);
    atomic_store(&s->retried_from, 0);
    s->ewma_us = 0;
    unsigned ev = 0;
    uh_add(g->health, slot, clock_mono_ms(), &ev);
    s->used = true;
    changed(g, s, ev | UH_EV_ADMIN);
    log_event(LOG_INFO, NULL, NULL, "upstream added", "upstream", s->name, "id", s->id, NULL);
    return slot;
}

/* Under the lock, on the health thread (its probe is cancelled). */
static void remove_slot(struct gateway *g, int slot)
{
    struct gw_slot *s = &g->slots[slot];
    if (s->probing && g->curl)
        evcurl_remove(g->curl, s->probe);
    s->probing = false;
    unsigned ev = 0;
    uh_remove(g->health, slot, clock_mono_ms(), &ev);
    s->used = false;
    changed(g, s, ev | UH_EV_ADMIN);
    log_event(LOG_INFO, NULL, NULL, "upstream removed", "upstream", s->name, "id", s->id, NULL);
}

/* ---- configuration ----------------------------------------------------------------- */

static int parse_static(struct gateway *g, const char *list, char err[256])
{
    char *copy = strdup(list), *save = NULL;
    int rc = copy ? SL_OK : SL_ENOMEM;
    unsigned n = 0;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && rc == SL_OK;
         t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        if (find_slot(g, t) >= 0) {
            snprintf(err, 256, "--upstreams: '%.100s' is listed twice", t);
            rc = SL_EINVAL;
        } else if ((rc = add_slot(g, t, NULL, NULL, 100, false, err)) >= 0) {
            rc = SL_OK;
            n++;
        }
    }
    free(copy);
    if (rc == SL_OK && n == 0) {
        snprintf(err, 256, "--upstreams: expected HOST:PORT[,HOST:PORT...], got '%.100s'", list);
        rc = SL_EINVAL;
    }
    return rc;
}

int gateway_new(struct agent *a, char err[256])
{
    const struct agent_config *c = &a->cfg;
    if (!!c->upstreams == !!c->discover) {
        snprintf(err, 256, "--role gateway: give exactly one of --upstreams HOST:PORT,... or "
                           "--discover SERVICE");
        return SL_EINVAL;
    }
    if (c->discover && !c->redis) {
        snprintf(err, 256, "--discover: needs --redis (the registry lives there)");
        return SL_EINVAL;
    }
    struct gateway *g = calloc(1, sizeof(*g));
    if (!g)
        return SL_ENOMEM;
    g->agent = a;
    pthread_mutex_init(&g->lock, NULL);
    if (balancer_parse_algorithm(c->lb, &g->alg, g->hash_header, sizeof(g->hash_header))) {
        snprintf(err, 256, "--lb: expected round_robin, weighted, least_conn, p2c, hash:ip or "
                           "hash:header:NAME, got '%.60s'", c->lb);
        goto err;
    }
    if (c->health_path[0] != '/') {
        snprintf(err, 256, "--health-path: must start with '/', got '%.60s'", c->health_path);
        goto err;
    }
    snprintf(g->health_path, sizeof(g->health_path), "%s", c->health_path);
    struct uh_config hc;
    uh_config_default(&hc);
    hc.interval_ms = (uint32_t)c->health_interval_ms;
    hc.timeout_ms = (uint32_t)c->health_timeout_ms;
    hc.rise = (uint32_t)c->health_rise;
    hc.fall = (uint32_t)c->health_fall;
    hc.consecutive_5xx = (uint32_t)c->outlier_5xx;
    hc.consecutive_connect_failures = (uint32_t)c->outlier_connect_failures;
    hc.base_ejection_ms = (uint32_t)c->outlier_ejection_ms;
    if (hc.max_ejection_ms < hc.base_ejection_ms)
        hc.max_ejection_ms = hc.base_ejection_ms;
    hc.max_ejection_percent = (uint32_t)c->outlier_max_percent;
    hc.panic_threshold_percent = (uint32_t)c->panic_percent;
    const char *why = NULL;
    if (uh_config_check(&hc, &why) || !(g->health = uh_pool_new(&hc))) {
        snprintf(err, 256, "health settings: %.200s", why ? why : "out of memory");
        goto err;
    }
    g->max_retries = (unsigned)c->retries;
    retry_budget_init(&g->budget, (double)c->retry_budget_percent / 100.0, 3);
    a->gateway = g;
    if (c->upstreams && parse_static(g, c->upstreams, err) != SL_OK)
        goto err_set;
    if (c->discover) {
        char rerr[128];
        struct redis_opts o = {.connect_timeout_ms = 300, .command_timeout_ms = 500};
        if (!(g->redis = redis_pool_new(c->redis, &o, rerr))) {
            snprintf(err, 256, "--redis: %.200s", rerr);
            goto err_set;
        }
    }
    return SL_OK;
err_set:
    a->gateway = NULL;
err:
    uh_pool_free(g->health);
    pthread_mutex_destroy(&g->lock);
    free(g);
    return SL_EINVAL;
}

/* ---- health probes (the health thread) ------------------------------------------------ */

static size_t on_probe_body(char *p, size_t size, size_t n, void *arg)
{
    struct gw_slot *s = arg;
    size_t len = size * n, room = sizeof(s->body) - 1 - s->body_len;
    memcpy(s->body + s->body_len, p, len < room ? len : room);
    s->body_len += len < room ? len : room;
    s->body[s->body_len] = '\0';
    return len;
}

/* readyz: 200 passes; a 503 naming a state sets it (alive, not taking work); anything
 * else fails the check. */
static void on_probe_done(CURL *easy, CURLcode res, void *arg)
{
    struct gw_slot *s = arg;
    struct gateway *g = s->g;
    long code = 0;
    if (res == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    uint64_t now = clock_mono_ms();
    int slot = (int)(s - g->slots);
    pthread_mutex_lock(&g->lock);
    s->probing = false;
    enum uh_admin probe_admin = UH_SERVING;
    bool ok = code == 200;
    if (code == 503) {
        if (strstr(s->body, "\"drained\""))
            probe_admin = UH_DRAINED;
        else if (strstr(s->body, "\"draining\""))
            probe_admin = UH_DRAINING;
        else if (strstr(s->body, "\"maint\""))
            probe_admin = UH_MAINT;
        ok = probe_admin != UH_SERVING; /* alive: it said why it takes no work */
    }
    if (ok && s->probe_admin != probe_admin) {
        s->probe_admin = probe_admin;
        apply_admin(g, slot, now);
    }
    changed(g, s, uh_check_result(g->health, slot, ok, now));
    pthread_mutex_unlock(&g->lock);
}

/* Under the lock: start the probes that are due. */
static void start_probes(struct gateway *g, uint64_t now)
{
    const struct uh_config *hc = uh_pool_config(g->health);
    for (int i = 0; i < GATEWAY_MAX_UPSTREAMS; i++) {
        struct gw_slot *s = &g->slots[i];
        if (!s->used || s->probing || now < uh_next_check_ms(g->health, i))
            continue;
        if (!s->probe && !(s->probe = curl_easy_init()))
            continue;
        curl_easy_reset(s->probe);
        s->body_len = 0;
        s->body[0] = '\0';
        curl_easy_setopt(s->probe, CURLOPT_URL, s->check_url);
        curl_easy_setopt(s->probe, CURLOPT_TIMEOUT_MS, (long)hc->timeout_ms);
        curl_easy_setopt(s->probe, CURLOPT_CONNECTTIMEOUT_MS, (long)hc->timeout_ms);
        curl_easy_setopt(s->probe, CURLOPT_WRITEFUNCTION, on_probe_body);
        curl_easy_setopt(s->probe, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(s->probe, CURLOPT_USERAGENT, "sluice-gateway-check");
        if (evcurl_add(g->curl, s->probe, on_probe_done, s) == SL_OK)
            s->probing = true;
    }
}

/* ---- discovery (--discover SERVICE) ------------------------------------------------- */

struct reg_entry {
    char id[AGENT_ID_MAX];
    char listen[GATEWAY_NAME_MAX];
    char admin[GATEWAY_NAME_MAX];
    enum uh_admin state;
    unsigned weight;
};

/* The sidecars of the service in the registry; -1 when Redis could not be read. */
static int read_registry(struct gateway *g, struct reg_entry *out, int cap)
{
    redisReply *ids = redis_pool_command(g->redis, "SMEMBERS %s", REGISTRY_SET_KEY);
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        if (ids)
            freeReplyObject(ids);
        return -1;
    }
    int n = 0;
    for (size_t i = 0; i < ids->elements && n < cap; i++) {
        redisReply *rec = redis_pool_command(g->redis, "GET %s{%s}", REGISTRY_KEY_PREFIX,
                                             ids->element[i]->str);
        json_t *doc = rec && rec->type == REDIS_REPLY_STRING ? json_loads(rec->str, 0, NULL)
                                                             : NULL;
        const char *svc = json_string_value(json_object_get(doc, "service"));
        const char *role = json_string_value(json_object_get(doc, "role"));
        const char *listen = json_string_value(json_object_get(doc, "listen"));
        const char *admin = json_string_value(json_object_get(doc, "admin"));
        const char *state = json_string_value(json_object_get(doc, "state"));
        json_t *w = json_object_get(doc, "weight");
        struct reg_entry *e = &out[n];
        if (svc && role && listen && admin && !strcmp(svc, g->agent->cfg.discover) &&
            !strcmp(role, "sidecar") && strlen(listen) < sizeof(e->listen) &&
            strlen(admin) < sizeof(e->admin)) {
            snprintf(e->id, sizeof(e->id), "%s", ids->element[i]->str);
            snprintf(e->listen, sizeof(e->listen), "%s", listen);
            snprintf(e->admin, sizeof(e->admin), "%s", admin);
            e->state = UH_SERVING;
            if (state && strcmp(state, "serving") != 0)
                e->state = !strcmp(state, "drained") ? UH_DRAINED
                           : !strcmp(state, "maint") ? UH_MAINT
                                                     : UH_DRAINING;
            e->weight = json_is_integer(w) && json_integer_value(w) >= 0 &&
                                json_integer_value(w) <= 100
                            ? (unsigned)json_integer_value(w)
                            : 100;
            n++;
        }
        json_decref(doc);
        if (rec)
            freeReplyObject(rec);
    }
    freeReplyObject(ids);
    return n;
}

/* Registered → added (checked before it takes traffic); gone from the registry (its
 * record expired: 5 s after its last refresh) → removed; state and weight followed. */
static void discover(struct gateway *g, uint64_t now)
{
    static struct reg_entry found[GATEWAY_MAX_UPSTREAMS];
    int n = read_registry(g, found, GATEWAY_MAX_UPSTREAMS);
    if ((n >= 0) != g->discover_ok) {
        g->discover_ok = n >= 0;
        log_event(n >= 0 ? LOG_INFO : LOG_WARN, NULL, NULL,
                  n >= 0 ? "registry readable" : "registry unreadable: keeping the pool as is",
                  "service", g->agent->cfg.discover, NULL);
    }
    if (n < 0)
        return; /* Redis down: keep what we have (health checks still run) */
    pthread_mutex_lock(&g->lock);
    for (int i = 0; i < n; i++) {
        struct reg_entry *e = &found[i];
        int slot = find_slot(g, e->listen);
        char err[256];
        if (slot < 0 && (slot = add_slot(g, e->listen, e->id, e->admin, e->weight, true, err)) < 0) {
            log_event(LOG_WARN, NULL, NULL, "upstream not added", "upstream", e->listen, "error",
                      err, NULL);
            continue;
        }
        struct gw_slot *s = &g->slots[slot];
        s->seen_ms = now;
        if (s->reg_weight != (int)e->weight) { /* the registry's weight wins when it moves */
            s->reg_weight = (int)e->weight;
            s->weight = e->weight;
            bump_gen(g);
        }
        if (s->reg_admin != e->state) {
            s->reg_admin = e->state;
            apply_admin(g, slot, now);
        }
    }
    for (int i = 0; i < GATEWAY_MAX_UPSTREAMS; i++)
        if (g->slots[i].used && g->slots[i].discovered && g->slots[i].seen_ms != now)
            remove_slot(g, i);
    pthread_mutex_unlock(&g->lock);
}

static void on_tick(struct evloop *loop, void *arg)
{
    struct gateway *g = arg;
    uint64_t now = clock_mono_ms();
    (void)loop;
    if (g->redis && now >= g->next_discover_ms) {
        g->next_discover_ms = now + DISCOVER_MS;
        discover(g, now); /* blocking Redis reads on this thread only: bounded by timeouts */
    }
    struct uh_change ch[UH_MAX_UPSTREAMS + 1];
    pthread_mutex_lock(&g->lock);
    size_t n = uh_tick(g->health, now, ch, sizeof(ch) / sizeof(ch[0]));
    for (size_t i = 0; i < n; i++)
        changed(g, ch[i].idx >= 0 ? &g->slots[ch[i].idx] : NULL, ch[i].events);
    start_probes(g, now);
    pthread_mutex_unlock(&g->lock);
}

static void *health_main(void *arg)
{
    struct gateway *g = arg;
    evloop_run(g->loop);
    return NULL;
}

int gateway_start(struct agent *a, char err[256])
{
    struct gateway *g = gw_of(a);
    if (!g)
        return SL_OK;
    char cerr[128];
    if (!(g->loop = evloop_new()) || !(g->curl = evcurl_new(g->loop, cerr)) ||
        evloop_timer_add(g->loop, 0, TICK_MS, on_tick, g, NULL) ||
        pthread_create(&g->thread, NULL, health_main, g) != 0) {
        snprintf(err, 256, "gateway: cannot start the health checker");
        return SL_ENOMEM;
    }
    g->started = true;
    return SL_OK;
}

void gateway_free(struct agent *a)
{
    struct gateway *g = gw_of(a);
    if (!g)
        return;
    if (g->started) {
        evloop_stop_async(g->loop);
        pthread_join(g->thread, NULL);
    }
    evcurl_free(g->curl); /* probe callbacks run here: the lock is free */
    g->curl = NULL;
    for (int i = 0; i < GATEWAY_MAX_UPSTREAMS; i++)
        if (g->slots[i].probe)
            curl_easy_cleanup(g->slots[i].probe);
    evloop_free(g->loop);
    redis_pool_free(g->redis);
    uh_pool_free(g->health);
    pthread_mutex_destroy(&g->lock);
    free(g);
    a->gateway = NULL;
}

/* ---- the workers' side ----------------------------------------------------------------- */

struct gw_worker *gateway_worker_new(struct agent *a)
{
    struct gateway *g = gw_of(a);
    struct gw_worker *w = g ? calloc(1, sizeof(*w)) : NULL;
    if (!w)
        return NULL;
    if (!(w->b = balancer_new()) || balancer_set_algorithm(w->b, g->alg)) {
        balancer_free(w->b);
        free(w);
        return NULL;
    }
    w->gen = UINT64_MAX; /* resync on the first pick */
    for (int i = 0; i < GATEWAY_MAX_UPSTREAMS; i++)
        w->idx_of[i] = -1;
    return w;
}

void gateway_worker_free(struct gw_worker *w)
{
    if (!w)
        return;
    balancer_free(w->b);
    free(w);
}

/* The worker's balancer takes the pool's membership, weights and routability. */
static void resync(struct gw_worker *w, struct gateway *g)
{
    bool routable[UH_MAX_UPSTREAMS];
    pthread_mutex_lock(&g->lock);
    uint64_t gen = atomic_load_explicit(&g->gen, memory_order_acquire);
    uh_routable_all(g->health, clock_mono_ms(), routable);
    if (balancer_algorithm(w->b) != g->alg)
        balancer_set_algorithm(w->b, g->alg);
    for (int i = 0; i < GATEWAY_MAX_UPSTREAMS; i++) { /* the gone and the replaced */
        int idx = w->idx_of[i];
        if (idx >= 0 && (!g->slots[i].used ||
                         strcmp(balancer_name(w->b, idx) ? balancer_name(w->b, idx) : "",
                                g->slots[i].name) != 0)) {
            balancer_remove(w->b, balancer_name(w->b, idx));
            w->idx_of[i] = -1;
        }
    }
    for (int i = 0; i < GATEWAY_MAX_UPSTREAMS; i++) {
        const struct gw_slot *s = &g->slots[i];
        if (!s->used)
            continue;
        int idx = w->idx_of[i];
        if (idx < 0 && (idx = balancer_add(w->b, s->name, s->weight)) < 0)
            continue;
        w->idx_of[i] = idx;
        w->slot_of[idx] = i;
        balancer_set_weight(w->b, idx, s->weight);
        balancer_set_eligible(w->b, idx, routable[i]);
    }
    w->gen = gen;
    pthread_mutex_unlock(&g->lock);
}

int gateway_pick(struct worker_core *wc, const char *key, size_t key_len, int exclude,
                 const struct sockaddr_storage **addr, socklen_t *addr_len, const char **name)
{
    struct gateway *g = gw_of(wc->agent);
    struct gw_worker *w = wc->gw;
    if (atomic_load_explicit(&g->gen, memory_order_acquire) != w->gen)
        resync(w, g);
    int ex = exclude >= 0 && exclude < GATEWAY_MAX_UPSTREAMS ? w->idx_of[exclude] : -1;
    int idx = balancer_pick(w->b, key, key_len, ex);
    if (idx < 0) {
        atomic_fetch_add_explicit(&g->no_upstream, 1, memory_order_relaxed);
        return -1;
    }
    int slot = w->slot_of[idx];
    struct gw_slot *s = &g->slots[slot];
    balancer_started(w->b, idx);
    atomic_fetch_add_explicit(&s->picks, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->in_flight, 1, memory_order_relaxed);
    *addr = &s->addr;
    *addr_len = s->addr_len;
    *name = s->name;
    return slot;
}

void gateway_outcome(struct worker_core *wc, int slot, uint64_t latency_us, int outcome)
{
    struct gateway *g = gw_of(wc->agent);
    struct gw_worker *w = wc->gw;
    if (slot < 0 || slot >= GATEWAY_MAX_UPSTREAMS)
        return;
    struct gw_slot *s = &g->slots[slot];
    int idx = w->idx_of[slot];
    if (idx >= 0)
        balancer_finished(w->b, idx, latency_us, outcome == UH_OUTCOME_OK);
    atomic_fetch_sub_explicit(&s->in_flight, 1, memory_order_relaxed);
    if (outcome < 0)
        return; /* neutral: the attempt ended without saying anything about the upstream */
    if (outcome == UH_OUTCOME_HTTP_5XX)
        atomic_fetch_add_explicit(&s->answered_5xx, 1, memory_order_relaxed);
    else if (outcome == UH_OUTCOME_CONNECT_FAIL)
        atomic_fetch_add_explicit(&s->connect_failures, 1, memory_order_relaxed);
    pthread_mutex_lock(&g->lock);
    if (s->used) {
        if (outcome == UH_OUTCOME_OK)
            s->ewma_us = s->ewma_us ? EWMA_ALPHA * (double)latency_us + (1 - EWMA_ALPHA) * s->ewma_us
                                    : (double)latency_us;
        changed(g, s, uh_request_result(g->health, slot, (enum uh_outcome)outcome,
                                        clock_mono_ms()));
    }
    pthread_mutex_unlock(&g->lock);
}

bool gateway_wants_header(const struct agent *a, const char **name)
{
    const struct gateway *g = gw_of(a);
    *name = g && g->alg == BALANCER_HASH_HEADER ? g->hash_header : NULL;
    return g && (g->alg == BALANCER_HASH_HEADER || g->alg == BALANCER_HASH_IP);
}

bool gateway_may_retry(struct agent *a, unsigned retries_so_far, bool idempotent,
                       bool nothing_sent)
{
    struct gateway *g = gw_of(a);
    if (!g || retries_so_far >= g->max_retries || !(idempotent || nothing_sent))
        return false;
    pthread_mutex_lock(&g->lock);
    bool ok = retry_budget_allow(&g->budget);
    if (ok)
        g->budget.active_retries++;
    pthread_mutex_unlock(&g->lock);
    atomic_fetch_add_explicit(ok ? &g->retries : &g->retries_refused, 1, memory_order_relaxed);
    return ok;
}

void gateway_retry_done(struct agent *a)
{
    struct gateway *g = gw_of(a);
    pthread_mutex_lock(&g->lock);
    if (g->budget.active_retries)
        g->budget.active_retries--;
    pthread_mutex_unlock(&g->lock);
}

void gateway_request_started(struct agent *a)
{
    struct gateway *g = gw_of(a);
    pthread_mutex_lock(&g->lock);
    g->budget.active_requests++;
    pthread_mutex_unlock(&g->lock);
}

void gateway_request_finished(struct agent *a)
{
    struct gateway *g = gw_of(a);
    pthread_mutex_lock(&g->lock);
    if (g->budget.active_requests)
        g->budget.active_requests--;
    pthread_mutex_unlock(&g->lock);
}

/* ---- admin ------------------------------------------------------------------------------ */

int gateway_set_algorithm(struct agent *a, const char *alg)
{
    struct gateway *g = gw_of(a);
    enum balancer_alg v;
    char header[64];
    if (!g || balancer_parse_algorithm(alg, &v, header, sizeof(header)))
        return SL_EINVAL;
    pthread_mutex_lock(&g->lock);
    g->alg = v;
    snprintf(g->hash_header, sizeof(g->hash_header), "%s", v == BALANCER_HASH_HEADER ? header : "");
    bump_gen(g);
    pthread_mutex_unlock(&g->lock);
    log_event(LOG_INFO, NULL, NULL, "balancing changed", "lb", alg, NULL);
    return SL_OK;
}

int gateway_set_weight(struct agent *a, const char *upstream, unsigned weight)
{
    struct gateway *g = gw_of(a);
    if (!g || weight > 100)
        return SL_EINVAL;
    pthread_mutex_lock(&g->lock);
    int slot = find_slot(g, upstream);
    if (slot < 0) { /* by registry id too */
        for (int i = 0; i < GATEWAY_MAX_UPSTREAMS && slot < 0; i++)
            if (g->slots[i].used && strcmp(g->slots[i].id, upstream) == 0)
                slot = i;
    }
    if (slot >= 0) {
        g->slots[slot].weight = weight;
        bump_gen(g);
    }
    pthread_mutex_unlock(&g->lock);
    return slot >= 0 ? SL_OK : SL_ENOTFOUND;
}

bool gateway_any_upstream(struct agent *a, char out[GATEWAY_NAME_MAX])
{
    struct gateway *g = gw_of(a);
    bool found = false;
    if (!g)
        return false;
    uint64_t now = clock_mono_ms();
    pthread_mutex_lock(&g->lock);
    for (int i = 0; i < GATEWAY_MAX_UPSTREAMS && !found; i++)
        if (g->slots[i].used && uh_routable(g->health, i, now)) {
            snprintf(out, GATEWAY_NAME_MAX, "%s", g->slots[i].name);
            found = true;
        }
    pthread_mutex_unlock(&g->lock);
    return found;
}

/* ---- stats ------------------------------------------------------------------------------ */

json_t *gateway_stats_json(struct agent *a)
{
    struct gateway *g = gw_of(a);
    if (!g)
        return json_null();
    uint64_t now = clock_mono_ms();
    json_t *list = json_array();
    pthread_mutex_lock(&g->lock);
    struct uh_pool_stats ps;
    uh_pool_stats(g->health, now, &ps);
    for (int i = 0; i < GATEWAY_MAX_UPSTREAMS; i++) {
        const struct gw_slot *s = &g->slots[i];
        struct uh_snapshot sn;
        if (!s->used || !uh_snapshot(g->health, i, now, &sn))
            continue;
        json_t *o = json_pack(
            "{s:s, s:s, s:s, s:b, s:i, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "name",
            s->name, "id", s->id, "state", sn.state, "routable", sn.routable, "weight",
            (int)s->weight, "picks", (json_int_t)atomic_load(&s->picks), "in_flight",
            (json_int_t)atomic_load(&s->in_flight), "latency_ewma_ms", s->ewma_us / 1000.0,
            "errors_5xx", (json_int_t)atomic_load(&s->answered_5xx), "connect_failures",
            (json_int_t)atomic_load(&s->connect_failures), "ejections",
            (json_int_t)sn.counters.ejections, "checks_ok", (json_int_t)sn.counters.checks_ok,
            "checks_failed", (json_int_t)sn.counters.checks_failed, "transitions",
            (json_int_t)sn.counters.transitions, "discovered", s->discovered);
        json_array_append_new(list, o);
    }
    json_t *out = json_pack(
        "{s:s, s:s?, s:b, s:i, s:i, s:i, s:I, s:I, s:I, s:i, s:o}", "lb", balancer_alg_str(g->alg),
        "hash_header", g->hash_header[0] ? g->hash_header : NULL, "panic", ps.panic, "routable",
        (int)ps.routable, "ejected", (int)ps.ejected, "upstreams_total", (int)ps.upstreams,
        "retries", (json_int_t)atomic_load(&g->retries), "retries_refused",
        (json_int_t)atomic_load(&g->retries_refused), "no_upstream",
        (json_int_t)atomic_load(&g->no_upstream), "max_retries", (int)g->max_retries,
        "upstreams", list);
    pthread_mutex_unlock(&g->lock);
    return out;
}

int gateway_prom(struct prom *w, struct agent *a)
{
    struct gateway *g = gw_of(a);
    if (!g)
        return SL_OK;
    static const struct {
        const char *name, *help;
        enum prom_type type;
    } fam[] = {
        {"sluice_gateway_upstream_picks_total", "Requests sent to the upstream", PROM_COUNTER},
        {"sluice_gateway_upstream_in_flight", "Requests in flight to the upstream", PROM_GAUGE},
        {"sluice_gateway_upstream_5xx_total", "5xx answers from the upstream", PROM_COUNTER},
        {"sluice_gateway_upstream_connect_failures_total", "Failed connects to the upstream",
         PROM_COUNTER},
        {"sluice_gateway_upstream_ejections_total", "Outlier ejections", PROM_COUNTER},
        {"sluice_gateway_upstream_routable", "1 when the upstream takes new requests",
         PROM_GAUGE},
    };
    uint64_t now = clock_mono_ms();
    int rc = SL_OK;
    pthread_mutex_lock(&g->lock);
    for (size_t f = 0; rc == SL_OK && f < sizeof(fam) / sizeof(fam[0]); f++) {
        rc = prom_family(w, fam[f].name, fam[f].type, fam[f].help);
        for (int i = 0; rc == SL_OK && i < GATEWAY_MAX_UPSTREAMS; i++) {
            const struct gw_slot *s = &g->slots[i];
            struct uh_snapshot sn;
            if (!s->used || !uh_snapshot(g->health, i, now, &sn))
                continue;
            double v[] = {(double)atomic_load(&s->picks), (double)atomic_load(&s->in_flight),
                          (double)atomic_load(&s->answered_5xx),
                          (double)atomic_load(&s->connect_failures),
                          (double)sn.counters.ejections, sn.routable ? 1.0 : 0.0};
            struct prom_label label = {"upstream", s->name};
            rc = prom_sample(w, &label, 1, v[f]);
        }
    }
    pthread_mutex_unlock(&g->lock);
    return rc;
}
