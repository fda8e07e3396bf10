#include "fleet.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "evloop.h"
#include "evloop_curl.h"
#include "jscan.h"
#include "log.h"
#include "queues.h"
#include "server.h"
#include "slo.h"
#include "snapshot.h"
#include "store_redis.h"
#include "traces.h"

#define AGENTS_MAX 4096
#define POLLERS_MAX 8 /* --poll-threads */
#define INDEX_SLOTS (2 * AGENTS_MAX) /* id -> slot, open addressing, at most half full */
#define BACKOFF_MAX_TICKS 8
#define GONE_KEEP_MS 60000     /* an agent out of the registry is shown down this long */
#define STATS_BODY_MAX (4u << 20)
#define SLOS_MAX 64
#define QUEUES_MAX 64
#define QUEUE_EVERY_MS 2000
#define SLO_SAVE_EVERY_MS 10000
#define SPANS_STREAM "sluice:spans"
#define SPANS_GROUP "sluice-server"
#define SPANS_CONSUMER "server-1"
#define SLO_DEFS_KEY "sluice:slo:defs"

struct fleet;

struct agent_rec {
    bool used;
    struct fleet *f;
    char id[SAMPLE_ID_MAX];
    char admin[128];
    char service[SAMPLE_SERVICE_MAX];
    bool in_registry;
    uint64_t gone_since_ms; /* left the registry (mono ms); 0 while listed */
    /* polling (the poll thread only) */
    CURL *easy;
    char url[192]; /* the easy handle's, set when the admin address changes */
    struct buf body;
    bool polling;
    unsigned fails;
    uint64_t next_tick; /* back-off: poll again at this tick */
    /* state (under the lock for readers) */
    struct agent_sample prev, cur;
    bool have_cur;
    uint64_t cur_ms; /* mono ms of cur */
    struct replica_view view;
    bool up;
    uint64_t last_seen_wall_ms;
};

struct slo_entry {
    bool used;
    struct slo_def def;
    struct slo_series *series;
};

struct queue_entry {
    char name[QUEUE_NAME_SIZE];
    struct queue_info prev, cur;
    bool have_prev, have_cur;
};

/* One poller thread: its event loop and libcurl multi handle, and the agents in slots
 * id, id + n, id + 2n, ... (n pollers). Poller 0 also owns the tick: it reads the registry,
 * then kicks the others (a tick number through their pipe) and polls its own share; the
 * poller whose share finishes last builds the snapshot. */
struct poller {
    struct fleet *f;
    unsigned id;
    struct evloop *loop;
    struct evcurl *curl;
    pthread_t thread;
    bool started;
    int kick[2]; /* pollers 1..n-1: the pipe poller 0 writes each tick's number into */
    uint64_t tick;
    unsigned outstanding; /* this poller's transfers out */
};

struct fleet {
    struct server *s;
    pthread_mutex_t lock;
    struct agent_rec *agents; /* AGENTS_MAX */
    uint16_t *index;          /* INDEX_SLOTS: slot + 1 of the agent whose id hashes here; 0 free */
    struct snapshot *snap; /* the last sweep's; NULL before the first */
    unsigned snap_agents, snap_up;
    json_t *doc;            /* snap rendered when first asked for after the sweep */
    uint64_t published;     /* the sweep last sent to the SSE viewers */
    struct slo_entry slos[SLOS_MAX];
    struct trace_store *traces;
    struct queue_entry queues[QUEUES_MAX];
    size_t nqueues;
    struct fleet_stats st;
    /* pollers */
    struct poller pollers[POLLERS_MAX];
    unsigned npollers;
    unsigned shards_out; /* pollers whose share of the sweep is still out (under the lock) */
    pthread_t spans_thread;
    bool spans_started;
    atomic_bool stop;
    uint64_t tick;            /* poller 0's */
    uint64_t sweep_started_ns; /* under the lock */
    uint64_t next_queue_ms, next_slo_save_ms;
    struct redis_pool *spans_redis; /* its own pool: XREADGROUP blocks */
};

/* ---- SLO definitions and history ---------------------------------------------------------- */

static struct slo_entry *slo_find(struct fleet *f, const char *name)
{
    for (int i = 0; i < SLOS_MAX; i++)
        if (f->slos[i].used && !strcmp(f->slos[i].def.name, name))
            return &f->slos[i];
    return NULL;
}

/* Under the lock: add or replace (a new window restarts the series). */
static int slo_install(struct fleet *f, const struct slo_def *def)
{
    struct slo_entry *e = slo_find(f, def->name);
    for (int i = 0; !e && i < SLOS_MAX; i++)
        if (!f->slos[i].used)
            e = &f->slos[i];
    if (!e)
        return SL_ETOOBIG;
    if (e->used && e->def.window_s == def->window_s) {
        e->def = *def;
        return SL_OK;
    }
    struct slo_series *series = slo_series_new(def->window_s);
    if (!series)
        return SL_ENOMEM;
    slo_series_free(e->series);
    e->series = series;
    e->def = *def;
    e->used = true;
    return SL_OK;
}

static void slo_load_history(struct fleet *f, struct slo_entry *e)
{
    redisReply *r = redis_pool_command(f->s->redis, "GET %s%s", SLO_REDIS_KEY_PREFIX, e->def.name);
    if (r && r->type == REDIS_REPLY_STRING &&
        slo_series_decode(e->series, r->str, r->len, (uint64_t)clock_wall_s()) != SL_OK)
        log_event(LOG_WARN, NULL, NULL, "SLO history unreadable: starting afresh", "slo",
                  e->def.name, NULL);
    freeReplyObject(r);
}

static void slo_save_all(struct fleet *f)
{
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < SLOS_MAX; i++) {
        struct slo_entry *e = &f->slos[i];
        char *data = NULL;
        size_t len = 0;
        if (!e->used || slo_series_encode(e->series, (uint64_t)clock_wall_s(), &data, &len))
            continue;
        redisReply *r = redis_pool_command(f->s->redis, "SET %s%s %b", SLO_REDIS_KEY_PREFIX,
                                           e->def.name, data, len);
        if (!r || r->type == REDIS_REPLY_ERROR)
            log_event(LOG_WARN, NULL, NULL, "SLO history not saved", "slo", e->def.name, NULL);
        freeReplyObject(r);
        free(data);
    }
    pthread_mutex_unlock(&f->lock);
}

/* From --slos FILE ({"slos": [...]}) and the definitions stored through the API. */
static int slo_load_defs(struct fleet *f, char err[256])
{
    json_t *list = NULL, *file = NULL;
    if (f->s->cfg.slos) {
        char jerr[JSON_ERR_MAX];
        if (json_parse_file(f->s->cfg.slos, &file, jerr)) {
            snprintf(err, 256, "--slos: %s", jerr);
            return SL_EINVAL;
        }
        list = json_object_get(file, "slos");
        if (!json_is_array(list)) {
            snprintf(err, 256, "--slos: %s: expected {\"slos\": [{...}, ...]}", f->s->cfg.slos);
            json_decref(file);
            return SL_EINVAL;
        }
    }
    size_t i;
    json_t *v;
    int rc = SL_OK;
    json_array_foreach(list, i, v) {
        struct field_errors fe;
        field_errors_init(&fe);
        struct slo_def def;
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "slos[%zu].", i);
        if (slo_def_from_json(v, &def, &fe, prefix) != SL_OK) {
            json_t *e0 = json_array_get(fe.list, 0);
            snprintf(err, 256, "--slos: %s: %s: %s", f->s->cfg.slos,
                     json_string_value(json_object_get(e0, "field")),
                     json_string_value(json_object_get(e0, "message")));
            rc = SL_EINVAL;
        } else {
            rc = slo_install(f, &def);
            if (rc)
                snprintf(err, 256, "--slos: more than %d SLOs", SLOS_MAX);
        }
        field_errors_release(&fe);
        if (rc)
            break;
    }
    json_decref(file);
    redisReply *r = rc ? NULL : redis_pool_command(f->s->redis, "HGETALL %s", SLO_DEFS_KEY);
    for (size_t k = 0; r && r->type == REDIS_REPLY_ARRAY && k + 1 < r->elements; k += 2) {
        json_t *doc = json_loads(r->element[k + 1]->str, 0, NULL);
        struct field_errors fe;
        field_errors_init(&fe);
        struct slo_def def;
        if (doc && slo_def_from_json(doc, &def, &fe, "") == SL_OK)
            slo_install(f, &def);
        field_errors_release(&fe);
        json_decref(doc);
    }
    freeReplyObject(r);
    for (int k = 0; rc == SL_OK && k < SLOS_MAX; k++)
        if (f->slos[k].used)
            slo_load_history(f, &f->slos[k]);
    return rc;
}

int fleet_slo_put(struct fleet *f, const char *name, const json_t *def_json,
                  struct field_errors *fe, json_t **before)
{
    json_t *doc = json_deep_copy(def_json);
    json_t *n = json_object_get(doc, "name");
    if (!n)
        json_object_set_new(doc, "name", json_string(name));
    else if (!json_is_string(n) || strcmp(json_string_value(n), name) != 0)
        field_errors_add(fe, "name", "must be the name in the path ('%s')", name);
    struct slo_def def;
    if (field_errors_any(fe) || slo_def_from_json(doc, &def, fe, "") != SL_OK) {
        json_decref(doc);
        return SL_EINVAL;
    }
    char *text = json_dump_compact(doc);
    json_decref(doc);
    redisReply *r = text ? redis_pool_command(f->s->redis, "HSET %s %s %s", SLO_DEFS_KEY, name, text)
                         : NULL;
    bool stored = r && r->type == REDIS_REPLY_INTEGER;
    freeReplyObject(r);
    free(text);
    if (!stored)
        return SL_ESTORE;
    pthread_mutex_lock(&f->lock);
    struct slo_entry *old = slo_find(f, name);
    *before = old ? slo_def_to_json(&old->def) : NULL;
    bool fresh = !old || old->def.window_s != def.window_s;
    int rc = slo_install(f, &def);
    if (rc == SL_OK && fresh)
        slo_load_history(f, slo_find(f, name));
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static json_t *slo_entry_json(const struct slo_entry *e)
{
    struct slo_status st;
    if (slo_evaluate(&e->def, e->series, (uint64_t)clock_wall_s(), &st) != SL_OK)
        return NULL;
    json_t *o = slo_status_to_json(&e->def, &st);
    if (o && e->def.description[0])
        json_object_set_new(o, "description", json_string(e->def.description));
    if (o && e->def.kind == SLO_LATENCY)
        json_object_set_new(o, "threshold_ms", json_integer(e->def.threshold_ms));
    return o;
}

json_t *fleet_slos_json(struct fleet *f)
{
    json_t *list = json_array();
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < SLOS_MAX; i++)
        if (f->slos[i].used) {
            json_t *o = slo_entry_json(&f->slos[i]);
            if (o)
                json_array_append_new(list, o);
        }
    pthread_mutex_unlock(&f->lock);
    return json_pack("{s:o}", "slos", list);
}

json_t *fleet_slo_json(struct fleet *f, const char *name)
{
    pthread_mutex_lock(&f->lock);
    struct slo_entry *e = slo_find(f, name);
    json_t *o = e ? slo_entry_json(e) : NULL;
    pthread_mutex_unlock(&f->lock);
    return o;
}

/* Under the lock, after a sweep: each SLO gets the sweep's counts. */
static void slo_feed(struct fleet *f, const struct snapshot *snap, uint64_t now_s)
{
    for (int i = 0; i < SLOS_MAX; i++) {
        struct slo_entry *e = &f->slos[i];
        struct window_counts wc;
        if (!e->used ||
            !snapshot_service_counts(snap, e->def.service, e->def.route[0] ? e->def.route : NULL,
                                     (uint64_t)e->def.threshold_ms * 1000, &wc) ||
            !wc.total)
            continue;
        slo_series_add(e->series, now_s,
                       e->def.kind == SLO_LATENCY ? wc.good_latency : wc.good_avail, wc.total);
    }
}

/* ---- the registry ----------------------------------------------------------------------- */

/* FNV-1a: ids are short and chosen by the agents, the table is ours and never full. */
static size_t id_slot(const char *id)
{
    uint64_t h = 14695981039346656037u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 1099511628211u;
    return (size_t)(h & (INDEX_SLOTS - 1));
}

static void index_add(struct fleet *f, const struct agent_rec *a)
{
    size_t h = id_slot(a->id);
    while (f->index[h])
        h = (h + 1) & (INDEX_SLOTS - 1);
    f->index[h] = (uint16_t)(a - f->agents + 1);
}

/* After agents were dropped (rare: 60 s after they left the registry). */
static void index_rebuild(struct fleet *f)
{
    memset(f->index, 0, INDEX_SLOTS * sizeof(*f->index));
    for (int i = 0; i < AGENTS_MAX; i++)
        if (f->agents[i].used)
            index_add(f, &f->agents[i]);
}

static struct agent_rec *agent_find(struct fleet *f, const char *id)
{
    for (size_t h = id_slot(id); f->index[h]; h = (h + 1) & (INDEX_SLOTS - 1)) {
        struct agent_rec *a = &f->agents[f->index[h] - 1];
        if (a->used && !strcmp(a->id, id))
            return a;
    }
    return NULL;
}

/* One registry record, {"id", "admin", "service", ...} as agent/registry.c writes it;
 * false without a string id (< SAMPLE_ID_MAX bytes) and admin. Other members skipped. */
static bool record_parse(const char *text, size_t len, char id[SAMPLE_ID_MAX], char admin[128],
                         char service[SAMPLE_SERVICE_MAX])
{
    struct jscan js;
    char key[16];
    size_t klen, n;
    bool have_id = false, have_admin = false;
    int more, rc = SL_OK;
    snprintf(service, SAMPLE_SERVICE_MAX, "default");
    jscan_init(&js, text, len);
    if (jscan_object(&js))
        return false;
    while (!rc && (more = jscan_member(&js, key, sizeof(key), &klen)) == 1) {
        rc = SL_EINVAL; /* a member of no interest, or of another type: skipped */
        if (klen == 2 && !strcmp(key, "id") && !(rc = jscan_string(&js, id, SAMPLE_ID_MAX, &n)))
            have_id = n && n < SAMPLE_ID_MAX;
        if (klen == 5 && !strcmp(key, "admin") && !(rc = jscan_string(&js, admin, 128, &n)))
            have_admin = n && n < 128;
        if (klen == 7 && !strcmp(key, "service") &&
            !(rc = jscan_string(&js, service, SAMPLE_SERVICE_MAX, &n)) && n >= SAMPLE_SERVICE_MAX)
            snprintf(service, SAMPLE_SERVICE_MAX, "default");
        if (rc == SL_EINVAL)
            rc = jscan_skip(&js);
    }
    return !rc && more == 0 && have_id && have_admin;
}

static void agent_drop(struct agent_rec *a)
{
    if (a->easy)
        curl_easy_cleanup(a->easy);
    buf_release(&a->body);
    agent_sample_release(&a->prev);
    agent_sample_release(&a->cur);
    replica_view_release(&a->view);
    memset(a, 0, sizeof(*a));
}

/* Reads sluice:agents and every record in one MGET; updates the table under the lock. */
static void registry_read(struct fleet *f, uint64_t now_ms)
{
    redisReply *ids = redis_pool_command(f->s->redis, "SMEMBERS sluice:agents");
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(ids);
        return; /* Redis blip: keep polling the agents we know */
    }
    size_t n = ids->elements;
    const char **argv = calloc(n + 1, sizeof(*argv));
    char **keys = calloc(n + 1, sizeof(*keys));
    redisReply *recs = NULL;
    if (argv && keys && n) {
        argv[0] = "MGET";
        for (size_t i = 0; i < n; i++) {
            if (asprintf(&keys[i], "sluice:agent:{%s}", ids->element[i]->str) < 0)
                keys[i] = NULL;
            argv[i + 1] = keys[i] ? keys[i] : "";
        }
        recs = redis_pool_command_argv(f->s->redis, (int)n + 1, argv, NULL);
    }
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < AGENTS_MAX; i++)
        f->agents[i].in_registry = false;
    for (size_t i = 0; recs && recs->type == REDIS_REPLY_ARRAY && i < recs->elements; i++) {
        if (recs->element[i]->type != REDIS_REPLY_STRING)
            continue;
        char id[SAMPLE_ID_MAX], admin[128], svc[SAMPLE_SERVICE_MAX];
        if (!record_parse(recs->element[i]->str, recs->element[i]->len, id, admin, svc))
            continue;
        struct agent_rec *a = agent_find(f, id);
        for (int k = 0; !a && k < AGENTS_MAX; k++)
            if (!f->agents[k].used) {
                a = &f->agents[k];
                a->used = true;
                a->f = f;
                snprintf(a->id, sizeof(a->id), "%s", id);
                buf_init(&a->body, STATS_BODY_MAX);
                agent_sample_init(&a->prev);
                agent_sample_init(&a->cur);
                replica_view_init(&a->view);
                a->next_tick = f->tick;
                index_add(f, a);
            }
        if (a) {
            snprintf(a->admin, sizeof(a->admin), "%s", admin);
            snprintf(a->service, sizeof(a->service), "%s", svc);
            a->in_registry = true;
            a->gone_since_ms = 0;
        }
    }
    bool dropped = false;
    for (int i = 0; i < AGENTS_MAX; i++) {
        struct agent_rec *a = &f->agents[i];
        if (!a->used || a->in_registry)
            continue;
        if (!a->gone_since_ms)
            a->gone_since_ms = now_ms;
        if (now_ms - a->gone_since_ms > GONE_KEEP_MS && !a->polling) {
            agent_drop(a);
            dropped = true;
        }
    }
    if (dropped)
        index_rebuild(f);
    pthread_mutex_unlock(&f->lock);
    for (size_t i = 0; keys && i < n; i++)
        free(keys[i]);
    free(keys);
    free(argv);
    freeReplyObject(recs);
    freeReplyObject(ids);
}

/* ---- polling ------------------------------------------------------------------------------- */

static void sweep_finish(struct fleet *f);

static size_t on_stats_body(char *p, size_t size, size_t n, void *arg)
{
    return buf_append(arg, p, size * n) == SL_OK ? size * n : 0;
}

static struct poller *poller_of(struct fleet *f, const struct agent_rec *a)
{
    return &f->pollers[(size_t)(a - f->agents) % f->npollers];
}

/* This poller's share of the sweep is done; the last one to finish builds the snapshot. */
static void shard_done(struct poller *p)
{
    struct fleet *f = p->f;
    pthread_mutex_lock(&f->lock);
    bool last = f->shards_out && --f->shards_out == 0;
    pthread_mutex_unlock(&f->lock);
    if (last && !atomic_load(&f->stop))
        sweep_finish(f);
}

static void poll_failed(struct fleet *f, struct agent_rec *a, uint64_t tick)
{
    pthread_mutex_lock(&f->lock);
    if (a->up)
        log_event(LOG_WARN, NULL, NULL, "agent down", "agent", a->id, "admin", a->admin, NULL);
    a->up = false;
    a->fails++;
    unsigned backoff = 1u << (a->fails < 4 ? a->fails - 1 : 3);
    a->next_tick = tick + (backoff < BACKOFF_MAX_TICKS ? backoff : BACKOFF_MAX_TICKS);
    f->st.poll_failures++;
    pthread_mutex_unlock(&f->lock);
}

static void on_stats(CURL *easy, CURLcode res, void *arg)
{
    struct agent_rec *a = arg;
    struct fleet *f = a->f;
    struct poller *p = poller_of(f, a);
    a->polling = false;
    p->outstanding--;
    long code = 0;
    if (res == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    struct agent_sample fresh;
    agent_sample_init(&fresh);
    char perr[SNAPSHOT_ERR_MAX];
    bool ok = code == 200 && agent_sample_parse(a->body.data, a->body.len, &fresh, perr) == SL_OK;
    if (code == 200 && !ok)
        log_event(LOG_WARN, NULL, NULL, "agent stats unreadable", "agent", a->id, "error", perr,
                  NULL);
    if (!ok) {
        agent_sample_release(&fresh);
        poll_failed(f, a, p->tick);
    } else {
        uint64_t now = clock_mono_ms();
        pthread_mutex_lock(&f->lock);
        if (!a->up)
            log_event(LOG_INFO, NULL, NULL, "agent up", "agent", a->id, NULL);
        agent_sample_release(&a->prev);
        a->prev = a->cur; /* moves the routes array */
        agent_sample_init(&a->cur);
        a->cur = fresh;
        bool had = a->have_cur;
        uint64_t interval = now - a->cur_ms;
        a->have_cur = true;
        a->cur_ms = now;
        a->up = true;
        a->fails = 0;
        a->next_tick = p->tick + 1;
        a->last_seen_wall_ms = clock_wall_ms();
        f->st.polls++;
        if (replica_view_compute(&a->view, had ? &a->prev : NULL, &a->cur,
                                 had && interval ? interval : 1) != SL_OK)
            replica_view_compute(&a->view, NULL, &a->cur, 1);
        pthread_mutex_unlock(&f->lock);
    }
    if (!p->outstanding)
        shard_done(p);
}

static void poll_agent(struct fleet *f, struct agent_rec *a)
{
    if (!a->easy) { /* one handle per agent, options set once: it keeps its connection */
        if (!(a->easy = curl_easy_init()))
            return;
        curl_easy_setopt(a->easy, CURLOPT_TIMEOUT_MS, (long)f->s->cfg.agent_timeout_ms);
        curl_easy_setopt(a->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)f->s->cfg.agent_timeout_ms);
        curl_easy_setopt(a->easy, CURLOPT_WRITEFUNCTION, on_stats_body);
        curl_easy_setopt(a->easy, CURLOPT_WRITEDATA, &a->body);
        curl_easy_setopt(a->easy, CURLOPT_USERAGENT, "sluice-server");
        a->url[0] = '\0';
    }
    char url[sizeof(a->url)];
    snprintf(url, sizeof(url), "http://%s/v1/stats", a->admin);
    if (strcmp(url, a->url) != 0) {
        memcpy(a->url, url, sizeof(url));
        curl_easy_setopt(a->easy, CURLOPT_URL, a->url);
    }
    buf_reset(&a->body);
    struct poller *p = poller_of(f, a);
    if (evcurl_add(p->curl, a->easy, on_stats, a) == SL_OK) {
        a->polling = true;
        p->outstanding++;
    }
}

/* Under the lock: the last sweep as JSON, rendered at most once a sweep and only when
 * somebody asks (GET /v1/fleet, an SSE viewer, a drill): with nobody watching, a sweep
 * costs its polls and the merge. NULL before the first sweep or out of memory. */
static json_t *snapshot_doc(struct fleet *f)
{
    if (f->doc || !f->snap)
        return f->doc;
    f->doc = snapshot_json(f->snap);
    if (f->doc) {
        json_object_set_new(f->doc, "agents", json_integer(f->snap_agents));
        json_object_set_new(f->doc, "agents_up", json_integer(f->snap_up));
    }
    return f->doc;
}

void fleet_publish_snapshot(struct fleet *f)
{
    pthread_mutex_lock(&f->lock);
    json_t *doc = f->published != f->st.sweeps ? snapshot_doc(f) : NULL;
    char *text = doc ? json_dump_compact(doc) : NULL;
    if (text) { /* formatted once for every viewer; in sweep order (under the lock) */
        f->published = f->st.sweeps;
        events_publish(f->s->events, "snapshot", text);
    }
    pthread_mutex_unlock(&f->lock);
    free(text);
}

/* The snapshot of this sweep: every known agent, up or down. */
static void sweep_finish(struct fleet *f)
{
    uint64_t now_wall = clock_wall_ms();
    struct snapshot *snap = snapshot_new(now_wall);
    if (!snap)
        return;
    pthread_mutex_lock(&f->lock);
    unsigned agents = 0, up = 0;
    for (int i = 0; i < AGENTS_MAX; i++) {
        struct agent_rec *a = &f->agents[i];
        if (!a->used)
            continue;
        agents++;
        up += a->up;
        if (!a->have_cur) { /* never answered: only its registry identity */
            struct replica_view v;
            replica_view_init(&v);
            snprintf(v.who.id, sizeof(v.who.id), "%s", a->id);
            snprintf(v.who.service, sizeof(v.who.service), "%s", a->service);
            snapshot_add_replica(snap, &v, false, 0);
            replica_view_release(&v);
            continue;
        }
        snapshot_add_replica(snap, &a->view, a->up, a->last_seen_wall_ms);
    }
    slo_feed(f, snap, now_wall / 1000);
    snapshot_free(f->snap);
    f->snap = snap;
    f->snap_agents = agents;
    f->snap_up = up;
    json_decref(f->doc);
    f->doc = NULL;
    f->st.sweeps++;
    f->st.agents = agents;
    f->st.agents_up = up;
    f->st.sweep_us_last = (clock_mono_ns() - f->sweep_started_ns) / 1000;
    if (f->st.sweep_us_last > f->st.sweep_us_max)
        f->st.sweep_us_max = f->st.sweep_us_last;
    pthread_mutex_unlock(&f->lock);
    if (events_viewers(f->s->events))
        fleet_publish_snapshot(f);
}

static void queues_inspect(struct fleet *f, uint64_t now_ms)
{
    const char *configured[QUEUES_MAX + 1] = {0};
    char *copy = f->s->cfg.queues ? strdup(f->s->cfg.queues) : NULL, *save = NULL;
    size_t nc = 0;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && nc < QUEUES_MAX;
         t = strtok_r(NULL, ",", &save))
        configured[nc++] = t;
    static char names[QUEUES_MAX][QUEUE_NAME_SIZE];
    size_t n = 0;
    if (queue_list(f->s->redis, configured, names, QUEUES_MAX, &n) != SL_OK)
        n = 0;
    free(copy);
    for (size_t i = 0; i < n; i++) {
        struct queue_info info;
        char err[128];
        if (queue_inspect(f->s->redis, names[i], clock_wall_ms(), &info, err) != SL_OK)
            continue;
        pthread_mutex_lock(&f->lock);
        struct queue_entry *q = NULL;
        for (size_t k = 0; k < f->nqueues && !q; k++)
            if (!strcmp(f->queues[k].name, names[i]))
                q = &f->queues[k];
        if (!q && f->nqueues < QUEUES_MAX) {
            q = &f->queues[f->nqueues++];
            memset(q, 0, sizeof(*q));
            snprintf(q->name, sizeof(q->name), "%s", names[i]);
        }
        if (q) {
            q->prev = q->cur;
            q->have_prev = q->have_cur;
            q->cur = info;
            q->have_cur = true;
        }
        pthread_mutex_unlock(&f->lock);
    }
    (void)now_ms;
}

/* This poller's share of sweep `tick`. */
static void shard_sweep(struct poller *p, uint64_t tick)
{
    struct fleet *f = p->f;
    p->tick = tick;
    for (unsigned i = p->id; i < AGENTS_MAX; i += f->npollers) {
        struct agent_rec *a = &f->agents[i];
        if (a->used && !a->polling && a->in_registry && tick >= a->next_tick)
            poll_agent(f, a);
        else if (a->used && !a->in_registry && a->up) { /* left the registry: down */
            pthread_mutex_lock(&f->lock);
            a->up = false;
            pthread_mutex_unlock(&f->lock);
        }
    }
    if (!p->outstanding)
        shard_done(p);
}

/* Pollers 1..n-1: poller 0 says a sweep starts. */
static void on_kick(struct evloop *loop, int fd, unsigned events, void *arg)
{
    struct poller *p = arg;
    uint64_t tick;
    (void)loop;
    (void)events;
    while (read(fd, &tick, sizeof(tick)) == (ssize_t)sizeof(tick))
        shard_sweep(p, tick);
}

/* Poller 0, every --poll-ms: unless the last sweep is still out (timeouts < the interval),
 * the registry, then every poller's share. */
static void on_tick(struct evloop *loop, void *arg)
{
    struct poller *p0 = arg;
    struct fleet *f = p0->f;
    (void)loop;
    uint64_t now = clock_mono_ms();
    pthread_mutex_lock(&f->lock);
    bool busy = f->shards_out != 0;
    if (!busy) {
        f->shards_out = f->npollers;
        f->sweep_started_ns = clock_mono_ns();
    }
    pthread_mutex_unlock(&f->lock);
    if (busy)
        return;
    uint64_t tick = ++f->tick;
    registry_read(f, now);
    for (unsigned k = 1; k < f->npollers; k++)
        if (write(f->pollers[k].kick[1], &tick, sizeof(tick)) != (ssize_t)sizeof(tick))
            shard_done(&f->pollers[k]); /* cannot happen: 8 bytes into an empty pipe */
    shard_sweep(p0, tick);
    if (now >= f->next_queue_ms) {
        f->next_queue_ms = now + QUEUE_EVERY_MS;
        queues_inspect(f, now);
    }
    if (now >= f->next_slo_save_ms) {
        f->next_slo_save_ms = now + SLO_SAVE_EVERY_MS;
        slo_save_all(f);
    }
}

static void *poll_main(void *arg)
{
    struct poller *p = arg;
    evloop_run(p->loop);
    return NULL;
}

/* ---- spans ---------------------------------------------------------------------------------- */

/* Stores one XREADGROUP reply's entries; returns the ids to acknowledge. */
static size_t spans_store(struct fleet *f, const redisReply *r, const char **ids, size_t cap)
{
    size_t n = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY || !r->elements)
        return 0;
    const redisReply *entries = r->element[0]->element[1];
    for (size_t i = 0; i < entries->elements && n < cap; i++) {
        const redisReply *e = entries->element[i];
        const redisReply *kv = e->element[1];
        ids[n++] = e->element[0]->str;
        for (size_t k = 0; kv->type == REDIS_REPLY_ARRAY && k + 1 < kv->elements; k += 2) {
            if (strcmp(kv->element[k]->str, "otlp") != 0)
                continue;
            json_t *doc = json_loadb(kv->element[k + 1]->str, kv->element[k + 1]->len, 0, NULL);
            if (doc) {
                pthread_mutex_lock(&f->lock);
                trace_store_add_otlp(f->traces, doc, clock_mono_ms());
                f->st.spans_read++;
                pthread_mutex_unlock(&f->lock);
            }
            json_decref(doc);
        }
    }
    return n;
}

/* XREADGROUP sluice-server: first this consumer's unacknowledged entries (a restart
 * resumes), then new ones; each batch acknowledged once stored. */
static void *spans_main(void *arg)
{
    struct fleet *f = arg;
    bool backlog = true;
    uint64_t retry_ms = 0;
    while (!atomic_load(&f->stop)) {
        if (clock_mono_ms() < retry_ms) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        redisReply *g = redis_pool_command(f->spans_redis,
                                           "XGROUP CREATE %s %s 0 MKSTREAM", SPANS_STREAM,
                                           SPANS_GROUP);
        freeReplyObject(g); /* BUSYGROUP after the first time: fine */
        redisReply *r = redis_pool_command(f->spans_redis,
                                           "XREADGROUP GROUP %s %s COUNT 200 BLOCK 500 STREAMS %s %s",
                                           SPANS_GROUP, SPANS_CONSUMER, SPANS_STREAM,
                                           backlog ? "0" : ">");
        if (!r || r->type == REDIS_REPLY_ERROR) {
            freeReplyObject(r);
            retry_ms = clock_mono_ms() + 1000;
            continue;
        }
        const char *ids[200];
        size_t n = spans_store(f, r, ids, 200);
        if (n) {
            const char *argv[203] = {"XACK", SPANS_STREAM, SPANS_GROUP};
            for (size_t i = 0; i < n; i++)
                argv[3 + i] = ids[i];
            freeReplyObject(redis_pool_command_argv(f->spans_redis, (int)n + 3, argv, NULL));
        } else if (backlog) {
            backlog = false; /* the pending entries are done: new ones from here */
        }
        freeReplyObject(r);
    }
    return NULL;
}

/* ---- life ------------------------------------------------------------------------------------ */

struct fleet *fleet_new(struct server *s, char err[256])
{
    struct fleet *f = calloc(1, sizeof(*f));
    if (!f || !(f->agents = calloc(AGENTS_MAX, sizeof(*f->agents))) ||
        !(f->index = calloc(INDEX_SLOTS, sizeof(*f->index))) ||
        !(f->traces = trace_store_new(NULL))) {
        snprintf(err, 256, "out of memory");
        goto err;
    }
    f->s = s;
    pthread_mutex_init(&f->lock, NULL);
    char rerr[128];
    struct redis_opts o = {.connect_timeout_ms = 500, .command_timeout_ms = 3000, .max_idle = 2};
    if (!(f->spans_redis = redis_pool_new(s->cfg.redis, &o, rerr))) {
        snprintf(err, 256, "--redis: %.200s", rerr);
        goto err_lock;
    }
    if (slo_load_defs(f, err) != SL_OK)
        goto err_lock;
    return f;
err_lock:
    pthread_mutex_destroy(&f->lock);
err:
    if (f) {
        for (int i = 0; i < SLOS_MAX; i++)
            slo_series_free(f->slos[i].series);
        redis_pool_free(f->spans_redis);
        trace_store_free(f->traces);
        free(f->agents);
        free(f->index);
    }
    free(f);
    return NULL;
}

static int poller_start(struct fleet *f, struct poller *p, unsigned id)
{
    char cerr[128];
    p->f = f;
    p->id = id;
    if (!(p->loop = evloop_new()) || !(p->curl = evcurl_new(p->loop, cerr)))
        return SL_ENOMEM;
    evcurl_set_max_connects(p->curl, AGENTS_MAX); /* a kept-alive connection per agent */
    if (id == 0 && evloop_timer_add(p->loop, 0, f->s->cfg.poll_ms, on_tick, p, NULL))
        return SL_ENOMEM;
    if (id > 0 && (pipe2(p->kick, O_CLOEXEC | O_NONBLOCK) != 0 ||
                   evloop_watch_add(p->loop, p->kick[0], EV_READ, on_kick, p) != 0))
        return SL_EIO;
    if (pthread_create(&p->thread, NULL, poll_main, p) != 0)
        return SL_ENOMEM;
    p->started = true;
    return SL_OK;
}

int fleet_start(struct fleet *f, char err[256])
{
    f->npollers = (unsigned)f->s->cfg.poll_threads;
    if (f->npollers < 1 || f->npollers > POLLERS_MAX)
        f->npollers = 1;
    for (unsigned k = 0; k < f->npollers; k++)
        f->pollers[k].kick[0] = f->pollers[k].kick[1] = -1;
    for (unsigned k = f->npollers; k-- > 0;) /* poller 0 last: its first tick kicks the others */
        if (poller_start(f, &f->pollers[k], k) != SL_OK) {
            snprintf(err, 256, "cannot start the fleet poller");
            return SL_ENOMEM;
        }
    if (pthread_create(&f->spans_thread, NULL, spans_main, f) != 0) {
        snprintf(err, 256, "cannot start the span reader");
        return SL_ENOMEM;
    }
    f->spans_started = true;
    return SL_OK;
}

void fleet_free(struct fleet *f)
{
    if (!f)
        return;
    atomic_store(&f->stop, true);
    for (unsigned k = 0; k < f->npollers; k++)
        if (f->pollers[k].started) {
            evloop_stop_async(f->pollers[k].loop);
            pthread_join(f->pollers[k].thread, NULL);
        }
    if (f->spans_started)
        pthread_join(f->spans_thread, NULL);
    for (unsigned k = 0; k < f->npollers; k++) {
        struct poller *p = &f->pollers[k];
        evcurl_free(p->curl); /* callbacks for transfers still out: they only count down */
        evloop_free(p->loop);
        for (int e = 0; e < 2; e++)
            if (p->kick[e] >= 0)
                close(p->kick[e]);
    }
    slo_save_all(f);
    for (int i = 0; i < AGENTS_MAX; i++)
        if (f->agents[i].used)
            agent_drop(&f->agents[i]);
    for (int i = 0; i < SLOS_MAX; i++)
        slo_series_free(f->slos[i].series);
    trace_store_free(f->traces);
    redis_pool_free(f->spans_redis);
    snapshot_free(f->snap);
    json_decref(f->doc);
    pthread_mutex_destroy(&f->lock);
    free(f->agents);
    free(f->index);
    free(f);
}

/* ---- readers ----------------------------------------------------------------------------------- */

json_t *fleet_snapshot(struct fleet *f)
{
    pthread_mutex_lock(&f->lock);
    json_t *doc = snapshot_doc(f), *o = doc ? json_deep_copy(doc) : NULL;
    pthread_mutex_unlock(&f->lock);
    return o ? o : json_pack("{s:n, s:[], s:i, s:i}", "ts", "services", "agents", 0, "agents_up", 0);
}

json_t *fleet_convergence_json(struct fleet *f, uint64_t set_version)
{
    json_t *by = json_object(), *pending = json_array();
    unsigned agents = 0, applied = 0;
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < AGENTS_MAX; i++) {
        const struct agent_rec *a = &f->agents[i];
        if (!a->used || !a->up || !a->have_cur)
            continue;
        agents++;
        uint64_t v = a->cur.who.policy_version;
        char key[24];
        snprintf(key, sizeof(key), "%llu", (unsigned long long)v);
        json_object_set_new(by, key, json_integer(json_integer_value(json_object_get(by, key)) + 1));
        if (v >= set_version)
            applied++;
        else
            json_array_append_new(pending, json_string(a->id));
    }
    pthread_mutex_unlock(&f->lock);
    return json_pack("{s:I, s:i, s:i, s:b, s:o, s:o}", "version", (json_int_t)set_version,
                     "agents", (int)agents, "applied", (int)applied, "converged",
                     agents == applied, "by_version", by, "pending", pending);
}

bool fleet_agent_admin(struct fleet *f, const char *id, char admin[128])
{
    pthread_mutex_lock(&f->lock);
    struct agent_rec *a = agent_find(f, id);
    bool ok = a && a->in_registry;
    if (ok)
        snprintf(admin, 128, "%s", a->admin);
    pthread_mutex_unlock(&f->lock);
    return ok;
}

json_t *fleet_replica_json(struct fleet *f, const char *id)
{
    pthread_mutex_lock(&f->lock);
    const struct agent_rec *a = agent_find(f, id);
    json_t *o = NULL;
    if (a) {
        const struct agent_sample *c = &a->cur;
        o = json_pack("{s:s, s:s, s:s, s:b, s:s, s:i, s:I, s:I, s:b}", "id", a->id, "service",
                      a->service, "admin", a->admin, "up", a->up, "state",
                      a->up && a->have_cur ? replica_state_name(c->who.state) : "down", "weight",
                      (int)c->who.weight, "in_flight", (json_int_t)c->in_flight, "policy_version",
                      (json_int_t)c->who.policy_version, "in_registry", a->in_registry);
        if (o && a->have_cur && c->drain.active)
            json_object_set_new(o, "drain",
                                json_pack("{s:I, s:I, s:I}", "elapsed_ms",
                                          (json_int_t)c->drain.elapsed_ms, "remaining_ms",
                                          (json_int_t)c->drain.remaining_ms, "in_flight",
                                          (json_int_t)c->drain.in_flight));
    }
    pthread_mutex_unlock(&f->lock);
    return o;
}

json_t *fleet_traces_json(struct fleet *f, const char *route, const char *status,
                          unsigned min_ms, const char *service, unsigned limit)
{
    struct trace_filter flt = {.route = route, .service = service, .min_duration_ms = min_ms};
    if (status && trace_filter_parse_status(&flt, status) != SL_OK)
        return json_pack("{s:s}", "error", "status: expected a code like 404, a class like 5xx, "
                                           "or error");
    pthread_mutex_lock(&f->lock);
    json_t *o = trace_store_list(f->traces, &flt, limit);
    struct trace_store_stats ts;
    trace_store_stats(f->traces, &ts);
    pthread_mutex_unlock(&f->lock);
    if (o)
        json_object_set_new(o, "held", json_pack("{s:I, s:I, s:I}", "traces", (json_int_t)ts.traces,
                                                 "spans", (json_int_t)ts.spans, "evicted",
                                                 (json_int_t)ts.traces_evicted));
    return o ? o : json_object();
}

json_t *fleet_trace_json(struct fleet *f, const char *trace_id)
{
    pthread_mutex_lock(&f->lock);
    json_t *o = trace_store_get(f->traces, trace_id);
    pthread_mutex_unlock(&f->lock);
    return o;
}

static json_t *queue_entry_json(const struct queue_entry *q)
{
    struct queue_rates rates;
    bool have_rates = q->have_prev && q->cur.at_ms > q->prev.at_ms &&
                      queue_rates_between(&q->prev, &q->cur, q->cur.at_ms - q->prev.at_ms,
                                          &rates) == SL_OK;
    return queue_info_json(&q->cur, have_rates ? &rates : NULL);
}

json_t *fleet_queues_json(struct fleet *f)
{
    json_t *list = json_array();
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nqueues; i++)
        if (f->queues[i].have_cur)
            json_array_append_new(list, queue_entry_json(&f->queues[i]));
    pthread_mutex_unlock(&f->lock);
    return json_pack("{s:o}", "queues", list);
}

json_t *fleet_queue_json(struct fleet *f, const char *name)
{
    json_t *o = NULL;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nqueues && !o; i++)
        if (f->queues[i].have_cur && !strcmp(f->queues[i].name, name))
            o = queue_entry_json(&f->queues[i]);
    pthread_mutex_unlock(&f->lock);
    return o;
}

void fleet_stats(struct fleet *f, struct fleet_stats *out)
{
    pthread_mutex_lock(&f->lock);
    *out = f->st;
    pthread_mutex_unlock(&f->lock);
}
