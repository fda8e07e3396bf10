/*
 * model — state and key handling (model.h). Keys go through tables: the global keys, then
 * the current screen's, then the open dialog's; each entry names a handler (dwm style).
 */
#include "model.h"
#include "tui_keys.h"
#include "view.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const char *const screen_names[SCR_COUNT] = {"Fleet",  "Limits", "Cache",  "SLOs",
                                                   "Traces", "Queues", "Drills", "Events"};

const char *screen_name(enum screen s)
{
    return (unsigned)s < SCR_COUNT ? screen_names[s] : "?";
}

void model_init(struct model *m, bool readonly, bool mono)
{
    memset(m, 0, sizeof(*m));
    m->readonly = readonly;
    m->mono = mono;
    m->connected = false;
    snprintf(m->conn_msg, sizeof(m->conn_msg), "connecting");
    for (int s = 0; s < SCR_COUNT; s++)
        m->list[s].sort_col = -1;
    m->refresh_ms = MODEL_REFRESH_MS_DEFAULT;
}

static void filter_free(struct list_state *ls)
{
    if (ls->filter_ok)
        regfree(&ls->re);
    ls->filter_ok = false;
}

void model_release(struct model *m)
{
    for (int d = 0; d < DOC_COUNT; d++)
        json_decref(m->doc[d]);
    json_decref(m->frozen_fleet);
    json_decref(m->shown_fleet);
    for (int s = 0; s < SCR_COUNT; s++)
        filter_free(&m->list[s]);
    memset(m->doc, 0, sizeof(m->doc));
}

static void status(struct model *m, bool bad, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void status(struct model *m, bool bad, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->status, sizeof(m->status), fmt, ap);
    va_end(ap);
    m->status_bad = bad;
}

/* ---- documents -------------------------------------------------------------------------- */

static struct spark *spark_get(struct model *m, const char *id)
{
    for (int i = 0; i < m->nsparks; i++)
        if (!strcmp(m->sparks[i].id, id))
            return &m->sparks[i];
    if (m->nsparks >= MODEL_SPARKS_MAX)
        return NULL;
    struct spark *s = &m->sparks[m->nsparks++];
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", id);
    for (int i = 0; i < MODEL_SPARK_LEN; i++)
        s->v[i] = NAN;
    return s;
}

/* One sample per MODEL_SPARK_STEP_MS (snapshots come every second). */
static void spark_push(struct spark *s, double v, uint64_t now_ms)
{
    if (s->n && now_ms < s->last_ms + MODEL_SPARK_STEP_MS)
        return;
    s->last_ms = now_ms;
    s->v[s->pos] = v;
    s->mark[s->pos] = false;
    s->pos = (s->pos + 1) % MODEL_SPARK_LEN;
    if (s->n < MODEL_SPARK_LEN)
        s->n++;
}

/* Each snapshot adds one point per replica (its requests/s, NAN when down). */
static void feed_sparks(struct model *m, const json_t *fleet, uint64_t now_ms)
{
    size_t i, k;
    json_t *svc, *rep;
    json_array_foreach(json_object_get(fleet, "services"), i, svc) {
        json_array_foreach(json_object_get(svc, "replicas"), k, rep) {
            struct spark *s = spark_get(m, json_string_value(json_object_get(rep, "id")) ?: "?");
            json_t *rps = json_object_get(rep, "rps");
            if (s)
                spark_push(s, json_is_number(rps) ? json_number_value(rps) : NAN, now_ms);
        }
    }
}

static int row_count(const struct model *m, enum screen s);

/* "id=state/up;..." of every replica: a change shows at once. */
static void states_of(const json_t *fleet, char *out, size_t cap)
{
    size_t i, k, len = 0;
    json_t *svc, *rep;
    out[0] = '\0';
    json_array_foreach(json_object_get(fleet, "services"), i, svc) {
        json_array_foreach(json_object_get(svc, "replicas"), k, rep) {
            int n = snprintf(out + len, cap - len, "%s=%s/%d;",
                             json_string_value(json_object_get(rep, "id")) ?: "",
                             json_string_value(json_object_get(rep, "state")) ?: "",
                             json_is_true(json_object_get(rep, "up")));
            if (n < 0 || (size_t)n >= cap - len)
                return;
            len += (size_t)n;
        }
    }
}

/* The tables follow the newest snapshot every refresh_ms, and at once on a state change. */
static void renew_shown(struct model *m, uint64_t now_ms)
{
    static char a[65536], b[65536];
    bool due = !m->shown_fleet || now_ms >= m->shown_ms + m->refresh_ms || now_ms < m->shown_ms;
    if (!due) {
        states_of(m->shown_fleet, a, sizeof(a));
        states_of(m->doc[DOC_FLEET], b, sizeof(b));
        due = strcmp(a, b) != 0;
    }
    if (due) {
        json_decref(m->shown_fleet);
        m->shown_fleet = json_incref(m->doc[DOC_FLEET]);
        m->shown_ms = now_ms;
    }
}

void model_set_doc(struct model *m, enum doc d, json_t *doc, uint64_t now_ms)
{
    if ((unsigned)d >= DOC_COUNT) {
        json_decref(doc);
        return;
    }
    m->now_ms = now_ms;
    if (d == DOC_FLEET && doc)
        feed_sparks(m, doc, now_ms);
    json_decref(m->doc[d]);
    m->doc[d] = doc;
    if (d == DOC_FLEET)
        renew_shown(m, now_ms);
    int n = row_count(m, m->screen); /* the selection stays on a row that exists */
    struct list_state *ls = &m->list[m->screen];
    if (ls->sel >= n)
        ls->sel = n ? n - 1 : 0;
}

void model_drill_event(struct model *m, const json_t *ev)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(ev, "replicas"), i, r) {
        const char *id = json_string_value(json_object_get(r, "replica"));
        for (int k = 0; id && k < m->nsparks; k++)
            if (!strcmp(m->sparks[k].id, id))
                m->sparks[k].mark[(m->sparks[k].pos + MODEL_SPARK_LEN - 1) % MODEL_SPARK_LEN] = true;
    }
    const char *kind = json_string_value(json_object_get(ev, "kind"));
    if (kind && !strcmp(kind, "end"))
        status(m, false, "drill %s: %s", json_string_value(json_object_get(ev, "run")) ?: "?",
               json_string_value(json_object_get(ev, "verdict")) ?: "ended");
}

void model_set_connected(struct model *m, bool up, const char *msg)
{
    m->connected = up;
    snprintf(m->conn_msg, sizeof(m->conn_msg), "%s", msg ? msg : "");
}

bool model_wants(const struct model *m, enum doc d)
{
    static const enum doc by_screen[SCR_COUNT] = {DOC_FLEET, DOC_LIMITS, DOC_FLEET, DOC_SLOS,
                                                  DOC_TRACES, DOC_QUEUES, DOC_DRILLS, DOC_AUDIT};
    return d == DOC_FLEET || by_screen[m->screen] == d ||
           (d == DOC_TRACE && m->screen == SCR_TRACES && m->mode == MODE_DETAIL);
}

/* ---- rows and selection ----------------------------------------------------------------- */

static struct row rows_buf[ROWS_MAX];

static int row_count(const struct model *m, enum screen s)
{
    const struct col *cols;
    int ncols;
    return screen_rows(m, s, &cols, &ncols, rows_buf, ROWS_MAX);
}

/* The selected row's key, or NULL (no rows, or a total line). */
static const char *selected_key(const struct model *m)
{
    const struct col *cols;
    int ncols;
    int n = screen_rows(m, m->screen, &cols, &ncols, rows_buf, ROWS_MAX);
    int sel = m->list[m->screen].sel;
    return sel < n && !rows_buf[sel].total && rows_buf[sel].key[0] ? rows_buf[sel].key : NULL;
}

static void move(struct model *m, int delta)
{
    struct list_state *ls = &m->list[m->screen];
    int n = row_count(m, m->screen);
    ls->sel += delta;
    if (ls->sel >= n)
        ls->sel = n - 1;
    if (ls->sel < 0)
        ls->sel = 0;
}

/* ---- commands ------------------------------------------------------------------------------ */

static void queue_cmd(struct model *m, enum cmd_kind kind, const char *target, const char *body,
                      long if_match)
{
    if (m->ncmds >= MODEL_CMDS_MAX) {
        status(m, true, "too many actions in flight: wait a moment");
        return;
    }
    struct model_cmd *c = &m->cmds[m->ncmds++];
    c->kind = kind;
    snprintf(c->target, sizeof(c->target), "%s", target ? target : "");
    snprintf(c->body, sizeof(c->body), "%s", body ? body : "");
    c->if_match = if_match;
}

int model_take_cmds(struct model *m, struct model_cmd *out, int cap)
{
    int n = m->ncmds < cap ? m->ncmds : cap;
    memcpy(out, m->cmds, sizeof(*out) * (size_t)n);
    memmove(m->cmds, m->cmds + n, sizeof(*out) * (size_t)(m->ncmds - n));
    m->ncmds -= n;
    return n;
}

static const char *cmd_verb(enum cmd_kind k)
{
    static const char *const verbs[] = {"", "drain", "undrain", "weight", "faults", "clear faults",
                                        "limit change", "rollback", "purge", "trace", "drill start",
                                        "abort all drills", "refresh"};
    return (unsigned)k < sizeof(verbs) / sizeof(verbs[0]) ? verbs[k] : "action";
}

void model_cmd_done(struct model *m, const struct model_cmd *c, bool ok, const char *msg,
                    const json_t *problem)
{
    if (c->kind == CMD_TRACE_GET || c->kind == CMD_REFRESH) {
        if (!ok)
            status(m, true, "%s", msg ? msg : "failed");
        return;
    }
    if (ok) {
        status(m, false, "%s %s: done%s%s", cmd_verb(c->kind), c->target, msg && *msg ? " — " : "",
               msg ? msg : "");
        if (c->kind == CMD_LIMIT_PUT && m->mode == MODE_FORM)
            m->mode = MODE_NORMAL;
        for (int i = 0; i < m->nsparks; i++)
            if (!strcmp(m->sparks[i].id, c->target)) /* the latest sample's slot */
                m->sparks[i].mark[(m->sparks[i].pos + MODEL_SPARK_LEN - 1) % MODEL_SPARK_LEN] = true;
        return;
    }
    status(m, true, "%s %s failed: %s", cmd_verb(c->kind), c->target, msg ? msg : "?");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(problem, "errors"), i, e) { /* the form shows them */
        const char *field = json_string_value(json_object_get(e, "field"));
        for (int f = 0; field && f < m->nform; f++)
            if (!strcmp(m->form[f].label, field) ||
                (!strcmp(m->form[f].label, "path_prefix") && strstr(field, "path_prefix")))
                snprintf(m->form[f].error, sizeof(m->form[f].error), "%s",
                         json_string_value(json_object_get(e, "message")) ?: "invalid");
    }
}

/* ---- dialogs --------------------------------------------------------------------------------- */

static void open_dialog(struct model *m, enum mode mode, enum cmd_kind cmd, const char *target,
                        const char *title, const char *hint, const char *expect)
{
    m->mode = mode;
    m->dlg_cmd = cmd;
    snprintf(m->dlg_target, sizeof(m->dlg_target), "%s", target ? target : "");
    snprintf(m->dlg_title, sizeof(m->dlg_title), "%s", title);
    snprintf(m->dlg_hint, sizeof(m->dlg_hint), "%s", hint);
    snprintf(m->dlg_expect, sizeof(m->dlg_expect), "%s", expect ? expect : "");
    m->dlg_input[0] = '\0';
    m->menu_sel = 0;
}

static bool mutation_allowed(struct model *m)
{
    if (m->readonly)
        status(m, true, "read-only: this session cannot change the fleet");
    return !m->readonly;
}

static bool need_selection(struct model *m, const char **key)
{
    *key = selected_key(m);
    if (!*key)
        status(m, true, "select a row first (arrows or j/k)");
    return *key != NULL;
}

/* Text input shared by the filter, prompts, confirms, the palette and form fields. */
static bool edit_text(char *buf, size_t cap, int key)
{
    size_t len = strlen(buf);
    if ((key == TK_BACKSPACE || key == 127 || key == 8) && len) {
        buf[len - 1] = '\0';
        return true;
    }
    if (key >= 32 && key < 127 && len + 1 < cap) {
        buf[len] = (char)key;
        buf[len + 1] = '\0';
        return true;
    }
    return false;
}

static void apply_filter(struct model *m, const char *text)
{
    struct list_state *ls = &m->list[m->screen];
    filter_free(ls);
    ls->filter_invert = text[0] == '!';
    snprintf(ls->filter, sizeof(ls->filter), "%s", text);
    const char *re = text + ls->filter_invert;
    if (!text[0])
        return;
    ls->filter_ok = regcomp(&ls->re, re, REG_EXTENDED | REG_ICASE | REG_NOSUB) == 0;
    if (!ls->filter_ok)
        status(m, true, "filter: not a valid regular expression");
    ls->sel = 0;
    ls->top = 0;
}

/* ---- faults menu ---------------------------------------------------------------------------- */

static const struct {
    const char *label, *body;
} fault_items[] = {
    {"delay 200 ms (±50) on every request, 60 s",
     "{\"faults\":[{\"kind\":\"delay\",\"ms\":200,\"jitter_ms\":50,\"percent\":100,\"ttl_s\":60}]}"},
    {"abort 10% with 503, 60 s",
     "{\"faults\":[{\"kind\":\"abort\",\"status\":503,\"percent\":10,\"ttl_s\":60}]}"},
    {"abort 100% with 500, 30 s",
     "{\"faults\":[{\"kind\":\"abort\",\"status\":500,\"percent\":100,\"ttl_s\":30}]}"},
    {"reset 20% of connections, 60 s",
     "{\"faults\":[{\"kind\":\"reset\",\"percent\":20,\"ttl_s\":60}]}"},
    {"blackhole 10%, 60 s", "{\"faults\":[{\"kind\":\"blackhole\",\"percent\":10,\"ttl_s\":60}]}"},
    {"clear all faults", NULL},
};
#define FAULT_ITEMS ((int)(sizeof(fault_items) / sizeof(fault_items[0])))


int model_fault_items(const char **labels, int cap)
{
    int n = FAULT_ITEMS < cap ? FAULT_ITEMS : cap;
    for (int i = 0; i < n; i++)
        labels[i] = fault_items[i].label;
    return n;
}

static void menu_key(struct model *m, int key)
{
    if (key == TK_UP || key == 'k')
        m->menu_sel = m->menu_sel > 0 ? m->menu_sel - 1 : 0;
    else if (key == TK_DOWN || key == 'j')
        m->menu_sel = m->menu_sel + 1 < FAULT_ITEMS ? m->menu_sel + 1 : m->menu_sel;
    else if (key == TK_ESC || key == 'q')
        m->mode = MODE_NORMAL;
    else if (key == '\n' || key == '\r' || key == TK_ENTER) {
        const char *body = fault_items[m->menu_sel].body;
        char title[160];
        snprintf(title, sizeof(title), "%s on %s?", fault_items[m->menu_sel].label, m->dlg_target);
        open_dialog(m, MODE_CONFIRM, body ? CMD_FAULTS_SET : CMD_FAULTS_CLEAR, m->dlg_target, title,
                    "type the replica id and Enter to confirm, Esc to cancel", m->dlg_target);
        snprintf(m->form_preview, sizeof(m->form_preview), "%s", body ? body : "");
    }
}

/* ---- the limit form ---------------------------------------------------------------------------- */

static const char *const form_keys[] = {"limit", "window_ms", "burst", "algorithm", "key", "mode",
                                        "path_prefix"};
#define FORM_KEYS ((int)(sizeof(form_keys) / sizeof(form_keys[0])))

static const json_t *limit_item(const struct model *m, const char *name)
{
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(m->doc[DOC_LIMITS], "policies"), i, it)
        if (!strcmp(json_string_value(json_object_get(it, "name")) ?: "", name))
            return it;
    return NULL;
}

static void form_value(const json_t *pol, const char *key, char *out, size_t cap)
{
    const json_t *v = !strcmp(key, "path_prefix")
                          ? json_object_get(json_object_get(pol, "match"), "path_prefix")
                          : json_object_get(pol, key);
    if (json_is_integer(v))
        snprintf(out, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_string(v))
        snprintf(out, cap, "%s", json_string_value(v));
    else
        out[0] = '\0';
}

static void open_form(struct model *m, const char *name)
{
    const json_t *it = limit_item(m, name), *pol = json_object_get(it, "policy");
    m->mode = MODE_FORM;
    m->nform = FORM_KEYS;
    m->form_sel = 0;
    snprintf(m->form_name, sizeof(m->form_name), "%s", name);
    m->form_version = (long)json_integer_value(json_object_get(it, "version"));
    for (int f = 0; f < FORM_KEYS; f++) {
        snprintf(m->form[f].label, sizeof(m->form[f].label), "%s", form_keys[f]);
        form_value(pol, form_keys[f], m->form[f].value, sizeof(m->form[f].value));
        m->form[f].error[0] = '\0';
    }
}

/* The policy the form would write: the stored one with the edited fields. */
static json_t *form_policy(const struct model *m)
{
    const json_t *it = limit_item(m, m->form_name);
    json_t *pol = json_deep_copy(json_object_get(it, "policy"));
    if (!pol)
        return NULL;
    for (int f = 0; f < m->nform; f++) {
        const char *v = m->form[f].value;
        char *end;
        long long n = strtoll(v, &end, 10);
        json_t *val = *v && !*end ? json_integer(n) : json_string(v);
        if (!strcmp(m->form[f].label, "path_prefix")) {
            json_t *match = json_object_get(pol, "match");
            if (!match)
                json_object_set_new(pol, "match", match = json_object());
            json_object_set_new(match, "path_prefix", val);
        } else if (!*v && strcmp(m->form[f].label, "mode") != 0) {
            json_decref(val);
            json_object_del(pol, m->form[f].label);
        } else {
            json_object_set_new(pol, m->form[f].label, *v ? val : json_string("enforce"));
            if (!*v)
                json_decref(val);
        }
    }
    return pol;
}

/* "limit 100 → 200, burst 20 → 40": what Enter would change. */
static void form_preview(struct model *m)
{
    const json_t *pol = json_object_get(limit_item(m, m->form_name), "policy");
    m->form_preview[0] = '\0';
    for (int f = 0; f < m->nform; f++) {
        char old[128];
        form_value(pol, m->form[f].label, old, sizeof(old));
        if (strcmp(old, m->form[f].value) != 0)
            snprintf(m->form_preview + strlen(m->form_preview),
                     sizeof(m->form_preview) - strlen(m->form_preview), "%s%s %s → %s",
                     m->form_preview[0] ? ", " : "", m->form[f].label, old[0] ? old : "-",
                     m->form[f].value[0] ? m->form[f].value : "-");
    }
}

static void form_key(struct model *m, int key)
{
    if (key == TK_ESC) {
        m->mode = MODE_NORMAL;
        status(m, false, "edit of %s cancelled", m->form_name);
    } else if (key == TK_UP || key == TK_BTAB) {
        m->form_sel = m->form_sel ? m->form_sel - 1 : m->nform - 1;
    } else if (key == TK_DOWN || key == TK_TAB) {
        m->form_sel = (m->form_sel + 1) % m->nform;
    } else if (key == '\n' || key == '\r' || key == TK_ENTER) {
        json_t *pol = form_policy(m);
        char *text = pol ? json_dump_compact(pol) : NULL;
        if (text)
            queue_cmd(m, CMD_LIMIT_PUT, m->form_name, text, m->form_version);
        free(text);
        json_decref(pol);
        status(m, false, "applying %s ...", m->form_name);
    } else if (edit_text(m->form[m->form_sel].value, sizeof(m->form[m->form_sel].value), key)) {
        m->form[m->form_sel].error[0] = '\0';
    }
    form_preview(m);
}

/* ---- actions of the screens ------------------------------------------------------------------- */

static void act_drain(struct model *m)
{
    const char *id;
    if (!mutation_allowed(m) || !need_selection(m, &id))
        return;
    char title[192];
    snprintf(title, sizeof(title), "Drain %s? It stops taking new requests.", id);
    open_dialog(m, MODE_CONFIRM, CMD_DRAIN, id, title,
                "type the replica id and Enter to confirm, Esc to cancel", id);
}

static void act_undrain(struct model *m)
{
    const char *id;
    if (mutation_allowed(m) && need_selection(m, &id))
        queue_cmd(m, CMD_UNDRAIN, id, "{}", -1);
}

static void act_weight(struct model *m)
{
    const char *id;
    if (!mutation_allowed(m) || !need_selection(m, &id))
        return;
    char title[192];
    snprintf(title, sizeof(title), "Weight of %s (0-100):", id);
    open_dialog(m, MODE_PROMPT, CMD_WEIGHT, id, title, "a number and Enter, Esc to cancel", NULL);
}

static void act_faults(struct model *m)
{
    const char *id;
    if (!mutation_allowed(m) || !need_selection(m, &id))
        return;
    char title[192];
    snprintf(title, sizeof(title), "Faults on %s (each reverts by itself)", id);
    open_dialog(m, MODE_MENU, CMD_FAULTS_SET, id, title, "arrows and Enter, Esc to cancel", NULL);
}

static void act_edit(struct model *m)
{
    const char *name;
    if (mutation_allowed(m) && need_selection(m, &name))
        open_form(m, name);
}

static void act_shadow(struct model *m)
{
    const char *name;
    if (!mutation_allowed(m) || !need_selection(m, &name))
        return;
    const json_t *it = limit_item(m, name);
    json_t *pol = json_deep_copy(json_object_get(it, "policy"));
    const char *mode = json_string_value(json_object_get(pol, "mode"));
    bool shadow = mode && !strcmp(mode, "shadow");
    json_object_set_new(pol, "mode", json_string(shadow ? "enforce" : "shadow"));
    char *text = json_dump_compact(pol);
    char title[192];
    snprintf(title, sizeof(title), "Switch %s to %s mode?", name, shadow ? "enforce" : "shadow");
    open_dialog(m, MODE_CONFIRM, CMD_LIMIT_PUT, name, title,
                "type the policy name and Enter to confirm, Esc to cancel", name);
    snprintf(m->form_preview, sizeof(m->form_preview), "%s", text ? text : "");
    m->form_version = (long)json_integer_value(json_object_get(it, "version"));
    free(text);
    json_decref(pol);
}

static void act_rollback(struct model *m)
{
    const char *name;
    if (!mutation_allowed(m) || !need_selection(m, &name))
        return;
    char title[192];
    snprintf(title, sizeof(title), "Roll %s back to its previous version?", name);
    open_dialog(m, MODE_CONFIRM, CMD_LIMIT_ROLLBACK, name, title,
                "type the policy name and Enter to confirm, Esc to cancel", name);
}

static void act_purge(struct model *m)
{
    const char *id;
    if (!mutation_allowed(m) || !need_selection(m, &id))
        return;
    char title[192];
    snprintf(title, sizeof(title), "Purge %s's cache: which prefix (e.g. /v1/links/)?", id);
    open_dialog(m, MODE_PROMPT, CMD_CACHE_PURGE, id, title, "a path prefix and Enter", NULL);
}

static void act_detail(struct model *m)
{
    const char *key = selected_key(m);
    if (!key)
        return;
    if (m->screen == SCR_TRACES)
        queue_cmd(m, CMD_TRACE_GET, key, NULL, -1);
    m->mode = MODE_DETAIL;
    snprintf(m->dlg_target, sizeof(m->dlg_target), "%s", key);
}

static void act_drill_start(struct model *m)
{
    const char *name;
    if (!mutation_allowed(m) || !need_selection(m, &name))
        return;
    char title[192];
    snprintf(title, sizeof(title), "Start the drill %s? It injects real faults.", name);
    open_dialog(m, MODE_CONFIRM, CMD_DRILL_START, name, title,
                "type the drill's name and Enter to confirm, Esc to cancel", name);
}

static void act_abort_all(struct model *m)
{
    if (mutation_allowed(m))
        open_dialog(m, MODE_CONFIRM, CMD_DRILL_ABORT_ALL, "all", "Abort every drill and revert every fault?",
                    "type abort and Enter to confirm, Esc to cancel", "abort");
}

/* ---- key tables --------------------------------------------------------------------------------- */

typedef void (*action_fn)(struct model *m);

struct binding {
    int key;
    enum screen screen; /* SCR_COUNT: every screen */
    action_fn fn;
};

static void go_next(struct model *m) { m->screen = (m->screen + 1) % SCR_COUNT; }
static void go_prev(struct model *m) { m->screen = (m->screen + SCR_COUNT - 1) % SCR_COUNT; }
static void up(struct model *m) { move(m, -1); }
static void down(struct model *m) { move(m, 1); }
static void page_up(struct model *m) { move(m, -10); }
static void page_down(struct model *m) { move(m, 10); }
static void home(struct model *m) { move(m, -ROWS_MAX); }
static void end(struct model *m) { move(m, ROWS_MAX); }
static void quit(struct model *m) { m->quit = true; }
static void help(struct model *m) { m->mode = MODE_HELP; }
static void filter(struct model *m)
{
    open_dialog(m, MODE_FILTER, CMD_NONE, NULL, "filter", "a regex (! inverts), Enter", NULL);
    snprintf(m->dlg_input, sizeof(m->dlg_input), "%s", m->list[m->screen].filter);
}
static void palette(struct model *m)
{
    open_dialog(m, MODE_PALETTE, CMD_NONE, NULL, ":",
                "drain ID | undrain ID | weight ID N | screen NAME | refresh | quit", NULL);
}
static void pause_toggle(struct model *m)
{
    m->paused = !m->paused;
    json_decref(m->frozen_fleet);
    m->frozen_fleet = m->paused ? json_incref(m->doc[DOC_FLEET]) : NULL;
    status(m, false, m->paused ? "paused (Z resumes)" : "live");
}
static void sort_left(struct model *m)
{
    struct list_state *ls = &m->list[m->screen];
    ls->sort_col = ls->sort_col <= 0 ? -1 : ls->sort_col - 1;
}
static void sort_right(struct model *m)
{
    const struct col *cols;
    int ncols;
    screen_rows(m, m->screen, &cols, &ncols, rows_buf, 1);
    struct list_state *ls = &m->list[m->screen];
    ls->sort_col = ls->sort_col + 1 < ncols ? ls->sort_col + 1 : ls->sort_col;
}
static void sort_invert(struct model *m) { m->list[m->screen].sort_desc = !m->list[m->screen].sort_desc; }
static void refresh(struct model *m) { queue_cmd(m, CMD_REFRESH, NULL, NULL, -1); }

static const struct binding bindings[] = {
    {TK_TAB, SCR_COUNT, go_next},      {TK_BTAB, SCR_COUNT, go_prev},
    {TK_UP, SCR_COUNT, up},            {'k', SCR_COUNT, up},
    {TK_DOWN, SCR_COUNT, down},        {'j', SCR_COUNT, down},
    {TK_PPAGE, SCR_COUNT, page_up},    {TK_NPAGE, SCR_COUNT, page_down},
    {TK_HOME, SCR_COUNT, home},        {'g', SCR_COUNT, home},
    {TK_END, SCR_COUNT, end},          {'G', SCR_COUNT, end},
    {'q', SCR_COUNT, quit},             {TK_F(10), SCR_COUNT, quit},
    {'?', SCR_COUNT, help},             {TK_F(1), SCR_COUNT, help},
    {'/', SCR_COUNT, filter},           {':', SCR_COUNT, palette},
    {'Z', SCR_COUNT, pause_toggle},     {'<', SCR_COUNT, sort_left},
    {'>', SCR_COUNT, sort_right},       {'I', SCR_COUNT, sort_invert},
    {'r', SCR_COUNT, refresh},          {'\n', SCR_COUNT, act_detail},
    {TK_ENTER, SCR_COUNT, act_detail}, {'d', SCR_FLEET, act_drain},
    {'u', SCR_FLEET, act_undrain},      {'w', SCR_FLEET, act_weight},
    {'f', SCR_FLEET, act_faults},       {'e', SCR_LIMITS, act_edit},
    {'s', SCR_LIMITS, act_shadow},      {'R', SCR_LIMITS, act_rollback},
    {'p', SCR_CACHE, act_purge},        {'A', SCR_DRILLS, act_abort_all},
    {'S', SCR_DRILLS, act_drill_start},
};

/* ---- the dialogs' keys ------------------------------------------------------------------------------ */

static void confirm_done(struct model *m)
{
    const char *body = m->dlg_cmd == CMD_FAULTS_SET || m->dlg_cmd == CMD_LIMIT_PUT
                           ? m->form_preview
                           : m->dlg_cmd == CMD_DRAIN ? "{\"timeout_s\":30}" : "{}";
    long if_match = m->dlg_cmd == CMD_LIMIT_PUT ? m->form_version : -1;
    queue_cmd(m, m->dlg_cmd, m->dlg_target, body, if_match);
    status(m, false, "%s %s ...", cmd_verb(m->dlg_cmd), m->dlg_target);
    m->mode = MODE_NORMAL;
}

static void palette_run(struct model *m, const char *line)
{
    char verb[32] = "", a[128] = "", b[32] = "";
    sscanf(line, "%31s %127s %31s", verb, a, b);
    if (!strcmp(verb, "quit") || !strcmp(verb, "q")) {
        m->quit = true;
    } else if (!strcmp(verb, "refresh")) {
        refresh(m);
    } else if (!strcmp(verb, "screen")) {
        for (int s = 0; s < SCR_COUNT; s++)
            if (!strcasecmp(a, screen_names[s]))
                m->screen = (enum screen)s;
    } else if ((!strcmp(verb, "drain") || !strcmp(verb, "undrain") || !strcmp(verb, "weight")) &&
               a[0] && mutation_allowed(m)) {
        if (!strcmp(verb, "drain")) {
            char title[192];
            snprintf(title, sizeof(title), "Drain %s? It stops taking new requests.", a);
            open_dialog(m, MODE_CONFIRM, CMD_DRAIN, a, title,
                        "type the replica id and Enter to confirm, Esc to cancel", a);
            return;
        }
        char body[64];
        snprintf(body, sizeof(body), "{\"weight\":%d}", atoi(b));
        queue_cmd(m, !strcmp(verb, "undrain") ? CMD_UNDRAIN : CMD_WEIGHT, a,
                  !strcmp(verb, "undrain") ? "{}" : body, -1);
    } else if (verb[0] && !m->readonly) {
        status(m, true, "unknown command '%s': drain ID, undrain ID, weight ID N, screen NAME, "
                        "refresh, quit", verb);
    }
    if (m->mode == MODE_PALETTE)
        m->mode = MODE_NORMAL;
}

static void dialog_key(struct model *m, int key)
{
    bool enter = key == '\n' || key == '\r' || key == TK_ENTER;
    if (key == TK_ESC) {
        if (m->mode == MODE_FILTER)
            apply_filter(m, "");
        m->mode = MODE_NORMAL;
        return;
    }
    if (!enter) {
        edit_text(m->dlg_input, sizeof(m->dlg_input), key);
        if (m->mode == MODE_FILTER) /* live: the list follows the typing */
            apply_filter(m, m->dlg_input);
        return;
    }
    switch (m->mode) {
    case MODE_FILTER:
        apply_filter(m, m->dlg_input);
        m->mode = MODE_NORMAL;
        break;
    case MODE_CONFIRM:
        if (!strcmp(m->dlg_input, m->dlg_expect))
            confirm_done(m);
        else
            snprintf(m->dlg_hint, sizeof(m->dlg_hint), "that is not '%s': type it exactly, or Esc",
                     m->dlg_expect);
        break;
    case MODE_PROMPT: {
        char body[300];
        if (m->dlg_cmd == CMD_WEIGHT) {
            char *endp;
            long w = strtol(m->dlg_input, &endp, 10);
            if (!m->dlg_input[0] || *endp || w < 0 || w > 100) {
                snprintf(m->dlg_hint, sizeof(m->dlg_hint), "the weight is a number from 0 to 100");
                return;
            }
            snprintf(body, sizeof(body), "{\"weight\":%ld}", w);
        } else {
            json_t *o = json_pack("{s:s}", "prefix", m->dlg_input);
            char *t = json_dump_compact(o);
            snprintf(body, sizeof(body), "%s", t ? t : "{}");
            free(t);
            json_decref(o);
        }
        queue_cmd(m, m->dlg_cmd, m->dlg_target, body, -1);
        m->mode = MODE_NORMAL;
        break;
    }
    case MODE_PALETTE:
        palette_run(m, m->dlg_input);
        break;
    default:
        m->mode = MODE_NORMAL;
    }
}

void model_key(struct model *m, int key)
{
    m->status_bad = m->status_bad && m->mode == MODE_NORMAL;
    switch (m->mode) {
    case MODE_FILTER:
    case MODE_CONFIRM:
    case MODE_PROMPT:
    case MODE_PALETTE:
        dialog_key(m, key);
        return;
    case MODE_MENU:
        menu_key(m, key);
        return;
    case MODE_FORM:
        form_key(m, key);
        return;
    case MODE_HELP:
    case MODE_DETAIL:
        if (key == TK_ESC || key == 'q' || key == '\n' || key == '?' || key == TK_F(1))
            m->mode = MODE_NORMAL;
        return;
    default:
        break;
    }
    if (key >= '1' && key < '1' + SCR_COUNT) {
        m->screen = (enum screen)(key - '1');
        return;
    }
    for (size_t i = 0; i < sizeof(bindings) / sizeof(bindings[0]); i++)
        if (bindings[i].key == key && (bindings[i].screen == SCR_COUNT || bindings[i].screen == m->screen)) {
            bindings[i].fn(m);
            return;
        }
}
