#include "drills.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "err.h"
#include "fleet.h"
#include "log.h"
#include "rng.h"
#include "server.h"
#include "store_redis.h"

#define DRILLS_MAX 32
#define STEPS_MAX 16
#define TOUCHED_MAX 64
#define JOURNAL_KEY "sluice:drills:journal"

struct step {
    unsigned at_s, duration_s;
    char target[96], action[24];
    json_t *spec; /* the step object (fault, weight, rate, loadgen) */
    bool applied, reverted;
    char ids[TOUCHED_MAX][64];
    int nids;
    double prev_rate; /* loadgen_rate: to restore */
    unsigned every_s;      /* crash: kill again this often while the step lasts (0: once) */
    uint64_t next_kill_ms; /* crash: when (mono ms) */
    bool reset[TOUCHED_MAX]; /* crash: the replica has no --exec child; a reset fault instead */
};

struct drill {
    char name[64];
    json_t *def;
};

struct run {
    struct drills *d;
    char id[64];
    const struct drill *drill;
    struct step steps[STEPS_MAX];
    int nsteps;
    json_t *journal; /* under d->lock */
    bool done, abort;
    char abort_why[160];
    pthread_t thread;
    struct run *next;
};

struct drills {
    struct server *s;
    pthread_mutex_t lock;
    struct drill drills[DRILLS_MAX];
    int n;
    struct run *runs; /* newest first */
};

/* ---- loading -------------------------------------------------------------------------------- */

static int check_def(const json_t *def, const char *path, char err[256])
{
    static const char *const actions[] = {"fault", "drain", "crash", "weight", "cache_flush",
                                          "loadgen_rate"};
    const char *name = json_string_value(json_object_get(def, "name"));
    json_t *steps = json_object_get(def, "steps");
    if (!name || !*name || strlen(name) >= 64) {
        snprintf(err, 256, "--drills: %.150s: name: expected a string of 1 to 63 characters", path);
        return SL_EINVAL;
    }
    if (!json_is_string(json_object_get(def, "service"))) {
        snprintf(err, 256, "--drills: %.150s: service: expected the service name", path);
        return SL_EINVAL;
    }
    if (!json_is_array(steps) || !json_array_size(steps) || json_array_size(steps) > STEPS_MAX) {
        snprintf(err, 256, "--drills: %.150s: steps: expected 1 to %d steps", path, STEPS_MAX);
        return SL_EINVAL;
    }
    size_t i;
    json_t *st;
    json_array_foreach(steps, i, st) {
        const char *a = json_string_value(json_object_get(st, "action"));
        bool known = false;
        for (size_t k = 0; a && k < sizeof(actions) / sizeof(actions[0]); k++)
            known |= !strcmp(a, actions[k]);
        json_int_t dur = json_integer_value(json_object_get(st, "duration_s"));
        const json_t *every = json_object_get(st, "every_s");
        if (every && (!a || strcmp(a, "crash") || !json_is_integer(every) ||
                      json_integer_value(every) < 1 || json_integer_value(every) > 3600)) {
            snprintf(err, 256, "--drills: %.100s: steps[%zu].every_s: expected 1..3600, with "
                     "action crash only", path, i);
            return SL_EINVAL;
        }
        if (!known || !json_is_string(json_object_get(st, "target")) || dur < 1 || dur > 3600) {
            snprintf(err, 256, "--drills: %.100s: steps[%zu]: expected action (fault, drain, crash, "
                     "weight, cache_flush, loadgen_rate), target and duration_s 1..3600", path, i);
            return SL_EINVAL;
        }
    }
    return SL_OK;
}

struct drills *drills_new(struct server *s, const char *dir, char err[256])
{
    struct drills *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->s = s;
    pthread_mutex_init(&d->lock, NULL);
    DIR *dh = dir ? opendir(dir) : NULL;
    if (dir && !dh) {
        snprintf(err, 256, "--drills: cannot open the folder '%.200s'", dir);
        drills_free(d);
        return NULL;
    }
    for (struct dirent *e; dh && (e = readdir(dh)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char path[512], jerr[JSON_ERR_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        json_t *def;
        if (json_parse_file(path, &def, jerr)) {
            snprintf(err, 256, "--drills: %s", jerr);
        } else if (check_def(def, path, err) == SL_OK && d->n < DRILLS_MAX) {
            snprintf(d->drills[d->n].name, 64, "%s", json_string_value(json_object_get(def, "name")));
            d->drills[d->n++].def = def;
            continue;
        }
        json_decref(def);
        closedir(dh);
        drills_free(d);
        return NULL;
    }
    if (dh)
        closedir(dh);
    return d;
}

/* ---- the fleet as the drill sees it ----------------------------------------------------------- */

/* The service's totals and its up replicas from the latest snapshot. */
static json_t *service_of(json_t *snap, const char *service)
{
    size_t i;
    json_t *svc;
    json_array_foreach(json_object_get(snap, "services"), i, svc)
        if (!strcmp(json_string_value(json_object_get(svc, "name")) ?: "", service))
            return svc;
    return NULL;
}

static void journal_add(struct run *r, const char *kind, json_t *what)
{
    char at[32];
    clock_format_iso8601(clock_wall_ms(), at);
    json_object_set_new(what, "at", json_string(at));
    json_object_set_new(what, "kind", json_string(kind));
    pthread_mutex_lock(&r->d->lock);
    json_array_append(json_object_get(r->journal, "events"), what);
    pthread_mutex_unlock(&r->d->lock);
    json_object_set_new(what, "run", json_string(r->id));
    char *text = json_dump_compact(what);
    if (text)
        events_publish(r->d->s->events, "drill", text);
    free(text);
    json_decref(what);
}

/* The hypothesis at this moment: true when it holds (why says what did not). */
static bool steady(struct run *r, char why[160])
{
    const json_t *def = r->drill->def, *h = json_object_get(def, "hypothesis");
    json_t *snap = fleet_snapshot(r->d->s->fleet);
    json_t *svc = service_of(snap, json_string_value(json_object_get(def, "service")));
    json_t *t = json_object_get(svc, "totals");
    double err = json_number_value(json_object_get(t, "error_ratio"));
    double p99 = json_number_value(json_object_get(t, "p99_ms"));
    double min_av = json_number_value(json_object_get(h, "min_availability"));
    double max_p99 = json_number_value(json_object_get(h, "max_p99_ms"));
    bool ok = true;
    why[0] = '\0';
    if (!svc) {
        snprintf(why, 160, "the service is not in the fleet view");
        ok = false;
    } else if (min_av > 0 && json_is_number(json_object_get(t, "error_ratio")) && 1 - err < min_av) {
        snprintf(why, 160, "availability %.4f is below %.4f", 1 - err, min_av);
        ok = false;
    } else if (max_p99 > 0 && json_is_number(json_object_get(t, "p99_ms")) && p99 > max_p99) {
        snprintf(why, 160, "p99 %.1f ms is above %.1f ms", p99, max_p99);
        ok = false;
    }
    json_decref(snap);
    return ok;
}

/* Abort conditions: the error ratio, or an SLO's burn rate. */
static bool must_abort(struct run *r, char why[160])
{
    const json_t *a = json_object_get(r->drill->def, "abort");
    json_t *snap = fleet_snapshot(r->d->s->fleet);
    json_t *t = json_object_get(service_of(snap, json_string_value(json_object_get(r->drill->def, "service"))),
                                "totals");
    double max_err = json_number_value(json_object_get(a, "max_error_ratio"));
    double err = json_number_value(json_object_get(t, "error_ratio"));
    bool stop = max_err > 0 && json_is_number(json_object_get(t, "error_ratio")) && err > max_err;
    if (stop)
        snprintf(why, 160, "error ratio %.3f is above the abort threshold %.3f", err, max_err);
    json_decref(snap);
    const char *slo = json_string_value(json_object_get(a, "slo"));
    double max_burn = json_number_value(json_object_get(a, "max_burn_5m"));
    json_t *st = !stop && slo && max_burn > 0 ? fleet_slo_json(r->d->s->fleet, slo) : NULL;
    double burn = json_number_value(json_object_get(json_object_get(st, "burn_rates"), "5m"));
    if (st && burn > max_burn) {
        snprintf(why, 160, "SLO %s burns %.1fx its budget over 5 m (abort above %.1f)", slo, burn,
                 max_burn);
        stop = true;
    }
    json_decref(st);
    return stop;
}

/* ---- steps ---------------------------------------------------------------------------------------- */

/* The replicas a target names, capped by the blast radius (counting those already hit). */
static int resolve(struct run *r, struct step *st, int touched)
{
    json_t *snap = fleet_snapshot(r->d->s->fleet);
    const char *svcname = json_string_value(json_object_get(r->drill->def, "service"));
    const char *t = st->target;
    if (!strncmp(t, "service:", 8))
        svcname = t + 8;
    json_t *reps = json_object_get(service_of(snap, svcname), "replicas");
    char up[TOUCHED_MAX][64];
    int n = 0;
    size_t i;
    json_t *rep;
    json_array_foreach(reps, i, rep)
        if (json_is_true(json_object_get(rep, "up")) && n < TOUCHED_MAX)
            snprintf(up[n++], 64, "%s", json_string_value(json_object_get(rep, "id")) ?: "");
    int want = n;
    if (!strncmp(t, "replica:", 8)) {
        want = 0;
        for (int k = 0; k < n; k++)
            if (!strcmp(up[k], t + 8))
                snprintf(up[want++], 64, "%s", t + 8);
    } else if (!strncmp(t, "random:", 7)) {
        want = atoi(t + 7);
    } else if (!strncmp(t, "percent:", 8)) {
        want = (int)ceil(n * atof(t + 8) / 100.0);
        want = want < 1 && n ? 1 : want;
    }
    for (int k = n - 1; k > 0; k--) { /* shuffle for random/percent */
        int j = (int)rng_below((uint64_t)k + 1);
        char tmp[64];
        memcpy(tmp, up[k], 64);
        memcpy(up[k], up[j], 64);
        memcpy(up[j], tmp, 64);
    }
    json_int_t cap = json_integer_value(json_object_get(json_object_get(r->drill->def, "blast_radius"),
                                                        "max_replicas"));
    if (cap > 0 && want > cap - touched)
        want = (int)cap - touched;
    st->nids = 0;
    for (int k = 0; k < want && k < n; k++)
        memcpy(st->ids[st->nids++], up[k], 64);
    json_decref(snap);
    return st->nids;
}

/* The replica's agent admin API: the status (0: unknown replica or no answer); *answer,
 * when asked for, the JSON it answered (or NULL). Takes body. */
static long call(struct run *r, const char *id, const char *method, const char *path, json_t *body,
                 json_t **answer)
{
    char admin[128];
    json_t *got = NULL;
    long code = fleet_agent_admin(r->d->s->fleet, id, admin)
                    ? server_agent_call(r->d->s, admin, method, path, body, &got)
                    : 0;
    if (answer)
        *answer = got;
    else
        json_decref(got);
    json_decref(body);
    return code;
}

/* crash: SIGKILL to the replica's --exec child through its agent (the agent restarts it
 * after its back-off); a replica without one gets a 100 % reset fault for the step's
 * duration instead, which looks the same from outside but for the restart. */
static json_t *crash(struct run *r, struct step *st, int k, bool first)
{
    const char *id = st->ids[k];
    json_t *answer = NULL, *ev;
    if (!first && st->reset[k])
        return NULL;
    long code = call(r, id, "POST", "/v1/exec/kill", NULL, &answer);
    if (code == 202) {
        ev = json_pack("{s:s, s:s, s:O}", "replica", id, "how", "killed", "pid",
                       json_object_get(answer, "killed_pid"));
    } else if (first && code == 409) {
        json_t *f = json_pack("{s:s, s:i, s:i}", "kind", "reset", "percent", 100, "ttl_s",
                              (int)st->duration_s);
        code = call(r, id, "PUT", "/v1/faults", json_pack("{s:[o]}", "faults", f), NULL);
        st->reset[k] = true;
        ev = json_pack("{s:s, s:s, s:i}", "replica", id, "how", "reset fault (no --exec child)",
                       "status", (int)code);
    } else {
        ev = json_pack("{s:s, s:s, s:i}", "replica", id, "how", "kill failed", "status", (int)code);
    }
    json_decref(answer);
    return ev; /* for the journal's event */
}

static void step_apply(struct run *r, struct step *st, int touched)
{
    const char *a = st->action;
    json_t *what = json_pack("{s:s, s:s}", "action", a, "target", st->target);
    if (!strcmp(a, "loadgen_rate")) {
        const char *url = json_string_value(json_object_get(r->drill->def, "loadgen"));
        json_t *status = NULL;
        char base[256];
        snprintf(base, sizeof(base), "%s", url ? url : "http://127.0.0.1:9500");
        st->prev_rate = 0;
        if (server_url_call(r->d->s, base, "GET", "/v1/status", NULL, &status) == 200)
            st->prev_rate = json_number_value(json_object_get(status, "rate"));
        json_decref(status);
        json_t *body = json_pack("{s:O}", "rate", json_object_get(st->spec, "rate"));
        long code = server_url_call(r->d->s, base, "PUT", "/v1/rate", body, NULL);
        json_decref(body);
        json_object_set_new(what, "status", json_integer(code));
        journal_add(r, "step", what);
        return;
    }
    resolve(r, st, touched);
    json_t *ids = json_array();
    for (int k = 0; k < st->nids; k++) {
        const char *id = st->ids[k];
        long code = 0;
        if (!strcmp(a, "fault")) {
            json_t *f = json_deep_copy(json_object_get(st->spec, "fault"));
            json_object_set_new(f, "ttl_s", json_integer(st->duration_s));
            code = call(r, id, "PUT", "/v1/faults", json_pack("{s:[o]}", "faults", f), NULL);
        } else if (!strcmp(a, "crash")) {
            json_array_append_new(ids, crash(r, st, k, true));
            continue;
        } else if (!strcmp(a, "drain")) {
            code = call(r, id, "POST", "/v1/drain", json_pack("{s:i}", "timeout_s", (int)st->duration_s),
                        NULL);
        } else if (!strcmp(a, "weight")) {
            code = call(r, id, "PUT", "/v1/weight",
                        json_pack("{s:O}", "weight", json_object_get(st->spec, "weight")), NULL);
        } else if (!strcmp(a, "cache_flush")) {
            code = call(r, id, "POST", "/v1/cache/purge", json_pack("{s:s}", "prefix", "/"), NULL);
        }
        json_array_append_new(ids, json_pack("{s:s, s:i}", "replica", id, "status", (int)code));
    }
    json_object_set_new(what, "replicas", ids);
    journal_add(r, "step", what);
    st->every_s = (unsigned)json_integer_value(json_object_get(st->spec, "every_s"));
    st->next_kill_ms = clock_mono_ms() + (uint64_t)st->every_s * 1000;
}

static void step_revert(struct run *r, struct step *st)
{
    const char *a = st->action;
    for (int k = 0; k < st->nids; k++) {
        if (!strcmp(a, "fault") || (!strcmp(a, "crash") && st->reset[k]))
            call(r, st->ids[k], "DELETE", "/v1/faults", NULL, NULL);
        else if (!strcmp(a, "drain"))
            call(r, st->ids[k], "POST", "/v1/undrain", json_object(), NULL);
        else if (!strcmp(a, "weight"))
            call(r, st->ids[k], "PUT", "/v1/weight", json_pack("{s:i}", "weight", 100), NULL);
    }
    if (!strcmp(a, "loadgen_rate") && st->prev_rate > 0) {
        const char *url = json_string_value(json_object_get(r->drill->def, "loadgen"));
        json_t *body = json_pack("{s:f}", "rate", st->prev_rate);
        server_url_call(r->d->s, url ? url : "http://127.0.0.1:9500", "PUT", "/v1/rate", body, NULL);
        json_decref(body);
    }
    journal_add(r, "revert", json_pack("{s:s, s:s}", "action", a, "target", st->target));
}

/* ---- a run ------------------------------------------------------------------------------------------ */

static void finish(struct run *r, const char *verdict, const char *why)
{
    for (int i = 0; i < r->nsteps; i++)
        if (r->steps[i].applied && !r->steps[i].reverted) {
            step_revert(r, &r->steps[i]);
            r->steps[i].reverted = true;
        }
    pthread_mutex_lock(&r->d->lock);
    json_object_set_new(r->journal, "verdict", json_string(verdict));
    json_object_set_new(r->journal, "reason", json_string(why ? why : ""));
    char at[32];
    clock_format_iso8601(clock_wall_ms(), at);
    json_object_set_new(r->journal, "finished_at", json_string(at));
    char *text = json_dump_compact(r->journal);
    r->done = true;
    pthread_mutex_unlock(&r->d->lock);
    if (text) {
        freeReplyObject(redis_pool_command(r->d->s->redis, "LPUSH %s %s", JOURNAL_KEY, text));
        freeReplyObject(redis_pool_command(r->d->s->redis, "LTRIM %s 0 99", JOURNAL_KEY));
    }
    free(text);
    journal_add(r, "end", json_pack("{s:s, s:s}", "verdict", verdict, "reason", why ? why : ""));
    log_event(LOG_INFO, NULL, NULL, "drill ended", "drill", r->drill->name, "run", r->id, "verdict",
              verdict, NULL);
}

static void *run_main(void *arg)
{
    struct run *r = arg;
    uint64_t t0 = clock_mono_ms(), next_check = 0;
    unsigned end_s = 0, settle = (unsigned)json_integer_value(json_object_get(r->drill->def, "settle_s"));
    for (int i = 0; i < r->nsteps; i++)
        if (r->steps[i].at_s + r->steps[i].duration_s > end_s)
            end_s = r->steps[i].at_s + r->steps[i].duration_s;
    int touched = 0, violations = 0;
    char why[160];
    for (;;) {
        pthread_mutex_lock(&r->d->lock);
        bool abort = r->abort;
        pthread_mutex_unlock(&r->d->lock);
        if (abort) {
            finish(r, "aborted", r->abort_why);
            return NULL;
        }
        uint64_t now = clock_mono_ms();
        double t = (double)(now - t0) / 1000.0;
        for (int i = 0; i < r->nsteps; i++) {
            struct step *st = &r->steps[i];
            if (!st->applied && t >= st->at_s) {
                step_apply(r, st, touched);
                touched += st->nids;
                st->applied = true;
            }
            if (st->applied && !st->reverted && st->every_s && now >= st->next_kill_ms &&
                t < st->at_s + st->duration_s) { /* a crash loop */
                st->next_kill_ms = now + (uint64_t)st->every_s * 1000;
                json_t *killed = json_array();
                for (int k = 0; k < st->nids; k++) {
                    json_t *ev = crash(r, st, k, false);
                    if (ev)
                        json_array_append_new(killed, ev);
                }
                if (json_array_size(killed))
                    journal_add(r, "crash", json_pack("{s:s, s:o}", "target", st->target, "replicas",
                                                      killed));
                else
                    json_decref(killed);
            }
            if (st->applied && !st->reverted && t >= st->at_s + st->duration_s) {
                step_revert(r, st);
                st->reverted = true;
            }
        }
        if (now >= next_check) { /* the steady state, every second */
            next_check = now + 1000;
            bool ok = steady(r, why);
            violations += !ok;
            journal_add(r, "check", json_pack("{s:b, s:s, s:f}", "steady", ok, "why", why, "t_s", t));
            if (must_abort(r, why)) {
                finish(r, "aborted", why);
                return NULL;
            }
        }
        if (t >= end_s + settle) {
            bool ok = steady(r, why);
            char reason[320];
            snprintf(reason, sizeof(reason), "%s%s; %d of the checks during the drill failed",
                     ok ? "the steady state holds after the drill" : "after the drill: ", ok ? "" : why,
                     violations);
            finish(r, ok && !violations ? "passed" : "failed", reason);
            return NULL;
        }
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int drills_start(struct drills *d, const char *name, const char *who, char run_id[64], char err[256])
{
    const struct drill *dr = NULL;
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->drills[i].name, name))
            dr = &d->drills[i];
    if (!dr)
        return SL_ENOTFOUND;
    pthread_mutex_lock(&d->lock);
    for (struct run *r = d->runs; r; r = r->next)
        if (r->drill == dr && !r->done) {
            pthread_mutex_unlock(&d->lock);
            snprintf(err, 256, "drill %s is already running as %s", name, r->id);
            return SL_EEXISTS;
        }
    pthread_mutex_unlock(&d->lock);
    struct run *r = calloc(1, sizeof(*r));
    if (!r)
        return SL_ENOMEM;
    r->d = d;
    r->drill = dr;
    snprintf(r->id, sizeof(r->id), "%s-%llx", name, (unsigned long long)(rng_u64() & 0xffffff));
    char why[160];
    if (!steady(r, why)) { /* no drill on a fleet that is not in its steady state */
        snprintf(err, 256, "the steady state does not hold now: %s", why);
        free(r);
        return SL_EINVAL;
    }
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(dr->def, "steps"), i, st) {
        struct step *s = &r->steps[r->nsteps++];
        s->at_s = (unsigned)json_integer_value(json_object_get(st, "at_s"));
        s->duration_s = (unsigned)json_integer_value(json_object_get(st, "duration_s"));
        snprintf(s->target, sizeof(s->target), "%s", json_string_value(json_object_get(st, "target")));
        snprintf(s->action, sizeof(s->action), "%s", json_string_value(json_object_get(st, "action")));
        s->spec = st;
    }
    char at[32];
    clock_format_iso8601(clock_wall_ms(), at);
    r->journal = json_pack("{s:s, s:s, s:s, s:s, s:[]}", "run", r->id, "drill", name, "started_by",
                           who, "started_at", at, "events");
    pthread_mutex_lock(&d->lock);
    r->next = d->runs;
    d->runs = r;
    pthread_mutex_unlock(&d->lock);
    snprintf(run_id, 64, "%s", r->id);
    journal_add(r, "start", json_pack("{s:s}", "drill", name));
    if (pthread_create(&r->thread, NULL, run_main, r) != 0) {
        finish(r, "aborted", "could not start the drill's thread");
        return SL_ENOMEM;
    }
    return SL_OK;
}

int drills_abort(struct drills *d, const char *run, const char *why)
{
    int n = 0;
    pthread_mutex_lock(&d->lock);
    for (struct run *r = d->runs; r; r = r->next)
        if (!r->done && (!run || !strcmp(r->id, run))) {
            r->abort = true;
            snprintf(r->abort_why, sizeof(r->abort_why), "%s", why);
            n++;
        }
    pthread_mutex_unlock(&d->lock);
    return n;
}

json_t *drills_list(struct drills *d)
{
    json_t *defs = json_array(), *runs = json_array();
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < d->n; i++)
        json_array_append_new(defs, json_pack("{s:s, s:s, s:O, s:i}", "name", d->drills[i].name,
                                              "description",
                                              json_string_value(json_object_get(d->drills[i].def, "description")) ?: "",
                                              "definition", d->drills[i].def, "steps",
                                              (int)json_array_size(json_object_get(d->drills[i].def, "steps"))));
    int k = 0;
    for (struct run *r = d->runs; r && k < 20; r = r->next, k++)
        json_array_append_new(runs, json_pack("{s:s, s:s, s:s, s:O}", "run", r->id, "drill",
                                              r->drill->name, "state", r->done ? "finished" : "running",
                                              "verdict", json_object_get(r->journal, "verdict") ?: json_null()));
    pthread_mutex_unlock(&d->lock);
    return json_pack("{s:o, s:o}", "drills", defs, "runs", runs);
}

json_t *drills_run(struct drills *d, const char *run)
{
    json_t *o = NULL;
    pthread_mutex_lock(&d->lock);
    for (struct run *r = d->runs; r && !o; r = r->next)
        if (!strcmp(r->id, run))
            o = json_deep_copy(r->journal);
    pthread_mutex_unlock(&d->lock);
    return o;
}

void drills_free(struct drills *d)
{
    if (!d)
        return;
    drills_abort(d, NULL, "the control plane is stopping");
    for (struct run *r = d->runs, *next; r; r = next) {
        next = r->next;
        pthread_join(r->thread, NULL);
        json_decref(r->journal);
        free(r);
    }
    for (int i = 0; i < d->n; i++)
        json_decref(d->drills[i].def);
    pthread_mutex_destroy(&d->lock);
    free(d);
}
