/*
 * tables — each screen's rows from the control plane's documents (model.h): the columns,
 * one row per replica / policy / SLO / trace / queue / audit record, the filter and the
 * sort. The view draws these rows and the model selects among them.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canvas.h"
#include "model.h"

static double num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Cell c of r: text, sort value, colour. */
static void set(struct row *r, int c, double sortv, uint8_t color, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void set(struct row *r, int c, double sortv, uint8_t color, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->cell[c], ROW_CELL_MAX, fmt, ap);
    va_end(ap);
    r->num[c] = sortv;
    r->color[c] = color;
}

/* Two significant figures for rates and latencies at a glance: what an operator reads, and
 * fewer digits that change every second (fewer bytes to the terminal). */
static int prec2(double v)
{
    return fabs(v) >= 10 ? 0 : 1;
}

/* A number with a format, or "-" when unknown. */
static void setn(struct row *r, int c, double v, int prec, const char *unit, double scale,
                 uint8_t color)
{
    if (isnan(v))
        set(r, c, v, COLOR_DIM, "-");
    else
        set(r, c, v, color, "%.*f%s", prec, v * scale, unit);
}

static uint8_t state_color(const char *state)
{
    return !strcmp(state, "serving")                                ? COLOR_GOOD
           : !strcmp(state, "down") || !strcmp(state, "ejected")    ? COLOR_BAD
           : !strcmp(state, "draining") || !strcmp(state, "drained") ? COLOR_WARN
                                                                    : COLOR_DEFAULT;
}

static const struct spark *spark_of(const struct model *m, const char *id)
{
    for (int i = 0; i < m->nsparks; i++)
        if (!strcmp(m->sparks[i].id, id))
            return &m->sparks[i];
    return NULL;
}

/* ---- Fleet -------------------------------------------------------------------------------- */

/* What an operator reads first comes first: at 80 columns id, state, rates, errors,
 * latency, in flight, cache and 429s are on screen. */
enum { F_ID, F_STATE, F_RPS, F_ERR, F_P50, F_P99, F_INFL, F_HIT, F_429, F_W, F_POL, F_SVC,
       F_ROLE, F_SPARK };
static const struct col fleet_cols[] = {
    {"REPLICA", 14, false}, {"STATE", 16, false}, {"REQ/S", 7, true}, {"ERR%", 5, true},
    {"P50", 6, true},       {"P99", 6, true},     {"INFL", 4, true},  {"HIT%", 4, true},
    {"429/S", 5, true},     {"W", 3, true},       {"POL", 4, true},   {"SERVICE", 12, false},
    {"ROLE", 7, false},     {"LAST MINUTE", 0, false},
};

static void fleet_row(const struct model *m, struct row *r, const json_t *rep, const char *svc)
{
    const char *state = str(rep, "state");
    snprintf(r->key, sizeof(r->key), "%s", str(rep, "id"));
    set(r, F_ID, NAN, COLOR_DEFAULT, "%s", str(rep, "id"));
    set(r, F_SVC, NAN, COLOR_DIM, "%s", svc);
    set(r, F_ROLE, NAN, COLOR_DIM, "%s", str(rep, "role"));
    double infl = num(rep, "in_flight");
    if (!strcmp(state, "draining") && !isnan(infl))
        set(r, F_STATE, NAN, COLOR_WARN, "draining %.0f left", infl);
    else
        set(r, F_STATE, NAN, state_color(state), "%s", state);
    setn(r, F_W, num(rep, "weight"), 0, "", 1, COLOR_DEFAULT);
    setn(r, F_RPS, num(rep, "rps"), prec2(num(rep, "rps")), "", 1, COLOR_DEFAULT);
    double err = num(rep, "error_ratio");
    setn(r, F_ERR, err, 1, "", 100, err > 0.01 ? COLOR_BAD : err > 0 ? COLOR_WARN : COLOR_DEFAULT);
    setn(r, F_P50, num(rep, "p50_ms"), prec2(num(rep, "p50_ms")), "", 1, COLOR_DEFAULT);
    setn(r, F_P99, num(rep, "p99_ms"), prec2(num(rep, "p99_ms")), "", 1, COLOR_DEFAULT);
    setn(r, F_INFL, infl, 0, "", 1, COLOR_DEFAULT);
    setn(r, F_HIT, num(rep, "cache_hit_ratio"), 0, "", 100, COLOR_DEFAULT);
    double lim = num(rep, "limited_per_s");
    setn(r, F_429, lim, 1, "", 1, lim > 0 ? COLOR_WARN : COLOR_DEFAULT);
    setn(r, F_POL, num(rep, "policy_version"), 0, "", 1, COLOR_DIM);
    set(r, F_SPARK, NAN, COLOR_DEFAULT, "%s", "");
    r->spark = spark_of(m, r->key);
}

static void fleet_total(struct row *r, const json_t *svc)
{
    const json_t *t = json_object_get(svc, "totals");
    r->total = true;
    set(r, F_ID, NAN, COLOR_INFO, "%s", str(svc, "name"));
    set(r, F_STATE, NAN, COLOR_INFO, "total %.0f/%.0f up", num(t, "replicas_up"), num(t, "replicas"));
    setn(r, F_RPS, num(t, "rps"), prec2(num(t, "rps")), "", 1, COLOR_INFO);
    setn(r, F_ERR, num(t, "error_ratio"), 1, "", 100, COLOR_INFO);
    setn(r, F_P50, num(t, "p50_ms"), prec2(num(t, "p50_ms")), "", 1, COLOR_INFO);
    setn(r, F_P99, num(t, "p99_ms"), prec2(num(t, "p99_ms")), "", 1, COLOR_INFO);
    setn(r, F_INFL, num(t, "in_flight"), 0, "", 1, COLOR_INFO);
    setn(r, F_HIT, num(t, "cache_hit_ratio"), 0, "", 100, COLOR_INFO);
    setn(r, F_429, num(t, "limited_per_s"), 1, "", 1, COLOR_INFO);
}

static const json_t *fleet_doc(const struct model *m)
{
    return m->paused && m->frozen_fleet ? m->frozen_fleet
           : m->shown_fleet                ? m->shown_fleet
                                           : m->doc[DOC_FLEET];
}

/* ---- Limits ------------------------------------------------------------------------------- */

/* Convergence second: after a change, "which agents run it" is the question. */
static const struct col limit_cols[] = {
    {"POLICY", 16, false},    {"AGENTS", 12, false},       {"SCOPE", 8, false},
    {"MATCH", 18, false},     {"KEY", 14, false},          {"ALGORITHM", 14, false},
    {"LIMIT/WINDOW", 14, false}, {"BURST", 6, true},       {"MODE", 8, false},
    {"VER", 0, true},
};

static void limit_row(struct row *r, const json_t *it, const json_t *conv)
{
    const json_t *p = json_object_get(it, "policy"), *match = json_object_get(p, "match");
    snprintf(r->key, sizeof(r->key), "%s", str(it, "name"));
    set(r, 0, NAN, COLOR_DEFAULT, "%s", str(it, "name"));
    set(r, 2, NAN, COLOR_DIM, "%s", str(p, "scope"));
    const json_t *methods = json_object_get(match, "methods");
    char ms[32] = "";
    for (size_t i = 0; i < json_array_size(methods) && strlen(ms) < 20; i++)
        snprintf(ms + strlen(ms), sizeof(ms) - strlen(ms), "%s%s", i ? "," : "",
                 json_string_value(json_array_get(methods, i)));
    set(r, 3, NAN, COLOR_DEFAULT, "%s%s%s", ms, ms[0] ? " " : "", str(match, "path_prefix"));
    set(r, 4, NAN, COLOR_DEFAULT, "%s", str(p, "key"));
    set(r, 5, NAN, COLOR_DEFAULT, "%s", str(p, "algorithm"));
    set(r, 6, num(p, "limit"), COLOR_DEFAULT, "%.0f/%.0fs", num(p, "limit"),
        num(p, "window_ms") / 1000);
    setn(r, 7, num(p, "burst"), 0, "", 1, COLOR_DEFAULT);
    const char *mode = str(p, "mode");
    set(r, 8, NAN, !strcmp(mode, "shadow") ? COLOR_WARN : COLOR_DEFAULT, "%s",
        mode[0] ? mode : "enforce");
    setn(r, 9, num(it, "version"), 0, "", 1, COLOR_DIM);
    const json_t *c = json_object_get(it, "convergence") ? json_object_get(it, "convergence") : conv;
    double agents = num(c, "agents"), applied = num(c, "applied");
    set(r, 1, applied, applied >= agents ? COLOR_GOOD : COLOR_WARN, "%.0f/%.0f @v%.0f", applied,
        agents, num(c, "version"));
}

/* ---- Cache, SLOs, Traces, Queues, Events ---------------------------------------------------- */

static const struct col cache_cols[] = {
    {"REPLICA", 18, false}, {"SERVICE", 12, false}, {"HIT 1S", 7, true}, {"HIT 10S", 7, true},
    {"HIT 60S", 7, true},   {"HITS", 9, true},      {"MISSES", 9, true}, {"STALE", 7, true},
    {"EVICT", 7, true},     {"EXPIRE", 7, true},    {"ENTRIES", 8, true}, {"BYTES", 0, true},
};

static void cache_row(struct row *r, const json_t *rep, const char *svc)
{
    const json_t *c = json_object_get(rep, "cache"), *w = json_object_get(c, "hit_ratio_window");
    snprintf(r->key, sizeof(r->key), "%s", str(rep, "id"));
    set(r, 0, NAN, COLOR_DEFAULT, "%s", str(rep, "id"));
    set(r, 1, NAN, COLOR_DIM, "%s", svc);
    static const char *const win[] = {"1s", "10s", "60s"};
    for (int i = 0; i < 3; i++)
        setn(r, 2 + i, num(w, win[i]), 0, "%", 100, COLOR_DEFAULT);
    static const char *const keys[] = {"hits", "misses", "stale", "evictions", "expirations",
                                       "entries", "bytes"};
    for (int i = 0; i < 7; i++)
        setn(r, 5 + i, num(c, keys[i]), 0, "", 1, COLOR_DEFAULT);
    if (!json_is_object(c) || json_is_false(json_object_get(c, "enabled")))
        set(r, 2, NAN, COLOR_DIM, "off");
}

static const struct col slo_cols[] = {
    {"SLO", 16, false}, {"SERVICE", 12, false}, {"OBJECTIVE", 9, true}, {"SLI", 9, true},
    {"BUDGET LEFT", 18, true}, {"5M", 6, true}, {"1H", 6, true}, {"6H", 6, true},
    {"1D", 6, true}, {"3D", 6, true}, {"ALERT", 7, false}, {"EXHAUSTED IN", 0, true},
};

static void slo_row(struct row *r, const json_t *s)
{
    snprintf(r->key, sizeof(r->key), "%s", str(s, "name"));
    set(r, 0, NAN, COLOR_DEFAULT, "%s", str(s, "name"));
    set(r, 1, NAN, COLOR_DIM, "%s", str(s, "service"));
    setn(r, 2, num(s, "objective"), 3, "%", 100, COLOR_DEFAULT);
    setn(r, 3, num(s, "sli"), 3, "%", 100, COLOR_DEFAULT);
    double b = num(s, "error_budget_remaining");
    setn(r, 4, b, 0, "%", 100, b < 0.1 ? COLOR_BAD : b < 0.5 ? COLOR_WARN : COLOR_GOOD);
    const json_t *burn = json_object_get(s, "burn_rates");
    static const char *const win[] = {"5m", "1h", "6h", "1d", "3d"};
    for (int i = 0; i < 5; i++) {
        double v = num(burn, win[i]);
        setn(r, 5 + i, v, 1, "", 1, v > 6 ? COLOR_BAD : v > 1 ? COLOR_WARN : COLOR_DEFAULT);
    }
    const char *alert = str(s, "alert");
    set(r, 10, NAN, !strcmp(alert, "page") ? COLOR_BAD : !strcmp(alert, "ticket") ? COLOR_WARN : COLOR_GOOD,
        "%s", alert[0] ? alert : "none");
    double t = num(s, "time_to_exhaustion_s");
    if (isnan(t))
        set(r, 11, INFINITY, COLOR_DIM, "never");
    else
        set(r, 11, t, t < 86400 ? COLOR_BAD : COLOR_DEFAULT, "%.1f h", t / 3600);
}

static const struct col trace_cols[] = {
    {"TRACE", 34, false}, {"NAME", 24, false}, {"SERVICE", 12, false}, {"STATUS", 7, true},
    {"DURATION", 10, true}, {"SPANS", 6, true}, {"FLAGS", 0, false},
};

static void trace_row(struct row *r, const json_t *t)
{
    bool err = json_is_true(json_object_get(t, "error")), slow = json_is_true(json_object_get(t, "slow"));
    snprintf(r->key, sizeof(r->key), "%s", str(t, "trace_id"));
    set(r, 0, NAN, COLOR_DEFAULT, "%s", str(t, "trace_id"));
    set(r, 1, NAN, COLOR_DEFAULT, "%s", str(t, "name"));
    set(r, 2, NAN, COLOR_DIM, "%s", str(t, "service"));
    setn(r, 3, num(t, "status"), 0, "", 1, err ? COLOR_BAD : COLOR_DEFAULT);
    setn(r, 4, num(t, "duration_ms"), 1, " ms", 1, slow ? COLOR_WARN : COLOR_DEFAULT);
    setn(r, 5, num(t, "span_count"), 0, "", 1, COLOR_DEFAULT);
    set(r, 6, NAN, err ? COLOR_BAD : COLOR_WARN, "%s%s%s", err ? "error " : "", slow ? "slow " : "",
        json_is_false(json_object_get(t, "complete")) ? "incomplete" : "");
}

static const struct col queue_cols[] = {
    {"QUEUE", 16, false}, {"WAITING", 8, true}, {"ACTIVE", 7, true}, {"DELAYED", 8, true},
    {"FAILED", 7, true},  {"DEAD", 6, true},    {"OLDEST", 9, true}, {"IN/S", 7, true},
    {"DONE/S", 0, true},
};

static void queue_row(struct row *r, const json_t *q)
{
    const json_t *c = json_object_get(q, "counters"), *rates = json_object_get(q, "rates");
    snprintf(r->key, sizeof(r->key), "%s", str(q, "name"));
    set(r, 0, NAN, COLOR_DEFAULT, "%s", str(q, "name"));
    setn(r, 1, num(q, "waiting"), 0, "", 1, COLOR_DEFAULT);
    setn(r, 2, num(q, "active"), 0, "", 1, COLOR_DEFAULT);
    setn(r, 3, num(q, "delayed"), 0, "", 1, COLOR_DEFAULT);
    setn(r, 4, num(c, "failed"), 0, "", 1, COLOR_DEFAULT);
    double dead = num(q, "dead");
    setn(r, 5, dead, 0, "", 1, dead > 0 ? COLOR_BAD : COLOR_DEFAULT);
    setn(r, 6, num(q, "oldest_pending_age_ms"), 1, " s", 0.001, COLOR_DEFAULT);
    setn(r, 7, num(rates, "enqueued_per_s"), 1, "", 1, COLOR_DEFAULT);
    setn(r, 8, num(rates, "completed_per_s"), 1, "", 1, COLOR_DEFAULT);
}

static const struct col event_cols[] = {
    {"WHEN", 25, false}, {"WHO", 18, false}, {"ACTION", 18, false}, {"TARGET", 0, false},
};

static void event_row(struct row *r, const json_t *e)
{
    snprintf(r->key, sizeof(r->key), "%s", str(e, "id"));
    set(r, 0, NAN, COLOR_DIM, "%s", str(e, "at"));
    set(r, 1, NAN, COLOR_DEFAULT, "%s", str(e, "who"));
    set(r, 2, NAN, COLOR_INFO, "%s", str(e, "action"));
    set(r, 3, NAN, COLOR_DEFAULT, "%s", str(e, "target"));
}

static const struct col drill_cols[] = {{"DRILL", 24, false}, {"LAST RUN", 12, false},
                                        {"DESCRIPTION", 0, false}};

/* A drill and its latest run (running, passed, failed, aborted). */
static void drill_row(struct row *r, const json_t *d, const json_t *runs)
{
    const char *state = "-";
    size_t i;
    json_t *run;
    json_array_foreach(runs, i, run) /* newest first */
        if (!strcmp(str(run, "drill"), str(d, "name"))) {
            state = !strcmp(str(run, "state"), "running") ? "running" : str(run, "verdict");
            break;
        }
    snprintf(r->key, sizeof(r->key), "%s", str(d, "name"));
    set(r, 0, NAN, COLOR_DEFAULT, "%s", str(d, "name"));
    set(r, 1, NAN, !strcmp(state, "running") ? COLOR_WARN : !strcmp(state, "passed") ? COLOR_GOOD
                   : !strcmp(state, "-") ? COLOR_DIM : COLOR_BAD, "%s", state);
    set(r, 2, NAN, COLOR_DEFAULT, "%s", str(d, "description"));
}

/* ---- filter and sort ------------------------------------------------------------------------ */

static bool passes(const struct list_state *ls, const struct row *r, int ncols)
{
    if (!ls->filter[0] || !ls->filter_ok || r->total)
        return true;
    char line[ROW_COLS_MAX * (ROW_CELL_MAX + 1)] = "";
    for (int c = 0; c < ncols; c++) {
        strcat(line, r->cell[c]);
        strcat(line, " ");
    }
    bool hit = regexec(&ls->re, line, 0, NULL, 0) == 0;
    return hit != ls->filter_invert;
}

static const struct list_state *sort_ls;
static const struct col *sort_cols;

static int cmp_rows(const void *pa, const void *pb)
{
    const struct row *a = pa, *b = pb;
    int c = sort_ls->sort_col, r;
    if (sort_cols[c].numeric) {
        double x = isnan(a->num[c]) ? -INFINITY : a->num[c], y = isnan(b->num[c]) ? -INFINITY : b->num[c];
        r = x < y ? -1 : x > y ? 1 : 0;
    } else {
        r = strcmp(a->cell[c], b->cell[c]);
    }
    if (!r)
        r = strcmp(a->key, b->key);
    return sort_ls->sort_desc ? -r : r;
}

int screen_rows(const struct model *m, enum screen s, const struct col **cols, int *ncols,
                struct row *rows, int cap)
{
    static const struct {
        const struct col *cols;
        int n;
    } tables[SCR_COUNT] = {
        [SCR_FLEET] = {fleet_cols, 14},   [SCR_LIMITS] = {limit_cols, 10},
        [SCR_CACHE] = {cache_cols, 12},   [SCR_SLOS] = {slo_cols, 12},
        [SCR_TRACES] = {trace_cols, 7},   [SCR_QUEUES] = {queue_cols, 9},
        [SCR_DRILLS] = {drill_cols, 3},   [SCR_EVENTS] = {event_cols, 4},
    };
    if ((unsigned)s >= SCR_COUNT)
        return 0;
    *cols = tables[s].cols;
    *ncols = tables[s].n;
    const struct list_state *ls = &m->list[s];
    int n = 0;
    size_t i, k;
    json_t *v, *svc, *rep;
    const json_t *doc;
#define ADD(fn, ...)                                                                       \
    do {                                                                                   \
        if (n < cap) {                                                                     \
            memset(&rows[n], 0, sizeof(rows[n]));                                          \
            fn(&rows[n], __VA_ARGS__);                                                     \
            if (passes(ls, &rows[n], *ncols))                                              \
                n++;                                                                       \
        }                                                                                  \
    } while (0)
    switch (s) {
    case SCR_FLEET:
    case SCR_CACHE:
        doc = fleet_doc(m);
        json_array_foreach(json_object_get(doc, "services"), i, svc) {
            const char *name = str(svc, "name");
            json_array_foreach(json_object_get(svc, "replicas"), k, rep) {
                if (s == SCR_FLEET && n < cap) {
                    memset(&rows[n], 0, sizeof(rows[n]));
                    fleet_row(m, &rows[n], rep, name);
                    n += passes(ls, &rows[n], *ncols);
                } else if (s == SCR_CACHE) {
                    ADD(cache_row, rep, name);
                }
            }
            if (s == SCR_FLEET)
                ADD(fleet_total, svc);
        }
        break;
    case SCR_LIMITS:
        doc = m->doc[DOC_LIMITS];
        json_array_foreach(json_object_get(doc, "policies"), i, v)
            ADD(limit_row, v, json_object_get(doc, "convergence"));
        break;
    case SCR_SLOS:
        json_array_foreach(json_object_get(m->doc[DOC_SLOS], "slos"), i, v)
            ADD(slo_row, v);
        break;
    case SCR_TRACES:
        json_array_foreach(json_object_get(m->doc[DOC_TRACES], "traces"), i, v)
            ADD(trace_row, v);
        break;
    case SCR_QUEUES:
        json_array_foreach(json_object_get(m->doc[DOC_QUEUES], "queues"), i, v)
            ADD(queue_row, v);
        break;
    case SCR_DRILLS:
        json_array_foreach(json_object_get(m->doc[DOC_DRILLS], "drills"), i, v)
            ADD(drill_row, v, json_object_get(m->doc[DOC_DRILLS], "runs"));
        break;
    case SCR_EVENTS:
        json_array_foreach(json_object_get(m->doc[DOC_AUDIT], "records"), i, v)
            ADD(event_row, v);
        break;
    default:
        break;
    }
#undef ADD
    if (ls->sort_col >= 0 && ls->sort_col < *ncols && n > 1) {
        sort_ls = ls; /* qsort has no context argument; the TUI draws on one thread */
        sort_cols = *cols;
        int w = 0; /* totals are per-service summaries: not sorted among replicas */
        for (int r = 0; r < n; r++)
            if (!rows[r].total)
                rows[w++] = rows[r];
        qsort(rows, (size_t)w, sizeof(*rows), cmp_rows);
        n = w;
    }
    return n;
}
