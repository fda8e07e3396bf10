/*
 * view — pure functions from the model to a canvas (STYLE: model → view → canvas →
 * terminal). One frame: the tab line, the screen's table (or its detail), the dialog on
 * top, the status and the one-line key hint bar. Nothing here knows about ncurses.
 */
#include "view.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "canvas.h"

static const char *const hints[SCR_COUNT] = {
    "d drain  u undrain  w weight  f faults  / filter  < > sort  Enter details  : cmd  ? help  q quit",
    "e edit  s shadow  R rollback  / filter  < > sort  Enter details  ? help  q quit",
    "p purge prefix  / filter  < > sort  ? help  q quit",
    "/ filter  < > sort  Enter details  ? help  q quit",
    "Enter waterfall  / filter  < > sort  r refresh  ? help  q quit",
    "/ filter  < > sort  ? help  q quit",
    "S start  A abort all  ? help  q quit",
    "/ filter  ? help  q quit",
};

static const char *const readonly_hints[SCR_COUNT] = {
    "/ filter  < > sort  Enter details  : cmd  ? help  q quit  (read-only)",
    "/ filter  < > sort  Enter details  ? help  q quit  (read-only)",
    "/ filter  < > sort  ? help  q quit  (read-only)",
    "/ filter  < > sort  Enter details  ? help  q quit  (read-only)",
    "Enter waterfall  / filter  < > sort  r refresh  ? help  q quit  (read-only)",
    "/ filter  < > sort  ? help  q quit  (read-only)",
    "? help  q quit  (read-only)",
    "/ filter  ? help  q quit  (read-only)",
};

/* The tab line; the connection state on the right always shows (it matters most when
 * something is wrong), the tabs get the rest (narrow terminals: numbers and initials). */
static void tabs(const struct model *m, struct canvas *c)
{
    canvas_fill(c, 0, 0, c->w, 1, " ", COLOR_DEFAULT, CANVAS_REVERSE);
    char right[200];
    snprintf(right, sizeof(right), " %s%s ", m->paused ? "PAUSED · " : "",
             m->connected ? "live" : m->conn_msg);
    int rw = canvas_text_right(c, c->w / 2, 0, c->w - c->w / 2, right,
                               m->connected ? COLOR_GOOD : COLOR_BAD, CANVAS_REVERSE | CANVAS_BOLD);
    int room = c->w - rw, x = canvas_text(c, 0, 0, " sluice ", room, COLOR_INFO,
                                          CANVAS_REVERSE | CANVAS_BOLD);
    bool narrow = c->w < 100;
    for (int s = 0; s < SCR_COUNT && x < room; s++) {
        char t[32];
        snprintf(t, sizeof(t), narrow ? " %d %.4s" : " %d %s ", s + 1, screen_name((enum screen)s));
        x += canvas_text(c, x, 0, t, room - x, s == (int)m->screen ? COLOR_INFO : COLOR_DEFAULT,
                         s == (int)m->screen ? CANVAS_BOLD : CANVAS_REVERSE);
    }
}

/* Column x positions for the table at this width (the last column takes the rest). */
static int layout(const struct col *cols, int ncols, int width, int *x)
{
    int pos = 0, n = 0;
    for (; n < ncols; n++) {
        x[n] = pos;
        int w = cols[n].width ? cols[n].width : 12;
        if (pos + (cols[n].width ? w : 8) > width)
            break;
        pos += w + 1;
    }
    x[n] = pos;
    return n;
}

static int col_width(const struct col *cols, int i, int shown, const int *x, int width)
{
    return i == shown - 1 || !cols[i].width ? width - x[i] : cols[i].width;
}

/* A replica's last minute in slot order (model.h struct spark): the slot written next is
 * a gap, so the eye finds "now" and only two cells change per sample. */
static void sweep(struct canvas *c, int x, int y, int width, const struct spark *s)
{
    double v[MODEL_SPARK_LEN];
    int n = width < MODEL_SPARK_LEN ? width : MODEL_SPARK_LEN;
    for (int i = 0; i < n; i++)
        v[i] = i == s->pos ? NAN : s->v[i];
    canvas_sparkline(c, x, y, n, v, n, COLOR_GOOD);
    for (int i = 0; i < n; i++) /* drill steps and actions: markers on the trace */
        if (s->mark[i])
            canvas_paint(c, x + i, y, 1, COLOR_ACCENT, CANVAS_BOLD);
}

static void table(const struct model *m, struct canvas *c, int top, int height)
{
    static struct row rows[ROWS_MAX];
    const struct col *cols;
    int ncols, x[ROW_COLS_MAX + 1];
    int n = screen_rows(m, m->screen, &cols, &ncols, rows, ROWS_MAX);
    int shown = layout(cols, ncols, c->w, x);
    const struct list_state *ls = &m->list[m->screen];
    for (int i = 0; i < shown; i++) { /* header, the sort column marked */
        char t[64];
        snprintf(t, sizeof(t), "%s%s", cols[i].title,
                 ls->sort_col == i ? (ls->sort_desc ? "▼" : "▲") : "");
        int w = col_width(cols, i, shown, x, c->w);
        if (cols[i].numeric)
            canvas_text_right(c, x[i], top, w, t, COLOR_INFO, CANVAS_BOLD);
        else
            canvas_text(c, x[i], top, t, w, COLOR_INFO, CANVAS_BOLD);
    }
    int body = height - 1;
    int first = ls->sel >= body ? ls->sel - body + 1 : 0;
    for (int r = first; r < n && r - first < body; r++) {
        int y = top + 1 + r - first;
        for (int i = 0; i < shown; i++) {
            int w = col_width(cols, i, shown, x, c->w);
            uint8_t attr = rows[r].total ? CANVAS_BOLD : 0;
            if (m->screen == SCR_FLEET && i == ncols - 1 && rows[r].spark)
                sweep(c, x[i], y, w, rows[r].spark);
            else if (cols[i].numeric)
                canvas_text_right(c, x[i], y, w, rows[r].cell[i], rows[r].color[i], attr);
            else
                canvas_text(c, x[i], y, rows[r].cell[i], w, rows[r].color[i], attr);
        }
        if (r == ls->sel && !rows[r].total)
            canvas_paint(c, 0, y, c->w, COLOR_DEFAULT, CANVAS_REVERSE);
    }
    if (!n)
        canvas_text(c, 1, top + 2,
                    m->screen == SCR_DRILLS
                        ? "No drills: start sluice-server with --drills samples/drills."
                    : ls->filter[0] ? "Nothing matches the filter (/ to change it, Esc clears)."
                                    : "Nothing to show yet.",
                    0, COLOR_DIM, 0);
}

/* The waterfall of one trace: a bar per span, critical ones highlighted. */
static void waterfall_spans(struct canvas *c, const json_t *spans, double total, int depth, int *y,
                            int bottom)
{
    size_t i;
    json_t *sp;
    int label_w = c->w / 3, bar_w = c->w - label_w - 12;
    json_array_foreach(spans, i, sp) {
        if (*y >= bottom)
            return;
        bool crit = json_is_true(json_object_get(sp, "critical"));
        double off = json_number_value(json_object_get(sp, "offset_ms"));
        double dur = json_number_value(json_object_get(sp, "duration_ms"));
        char label[256];
        snprintf(label, sizeof(label), "%*s%s %s", depth * 2, "",
                 json_string_value(json_object_get(sp, "name")) ?: "?",
                 json_string_value(json_object_get(sp, "role")) ?: "");
        canvas_text(c, 1, *y, label, label_w - 1, crit ? COLOR_ACCENT : COLOR_DEFAULT,
                    crit ? CANVAS_BOLD : 0);
        int from = total > 0 ? (int)(off / total * bar_w) : 0;
        int len = total > 0 ? (int)ceil(dur / total * bar_w) : 1;
        canvas_fill(c, label_w + from, *y, len < 1 ? 1 : len, 1, "█",
                    crit ? COLOR_ACCENT : COLOR_INFO, 0);
        canvas_printf(c, c->w - 11, *y, 11, COLOR_DIM, 0, "%9.1fms", dur);
        (*y)++;
        waterfall_spans(c, json_object_get(sp, "children"), total, depth + 1, y, bottom);
    }
}

static void detail(const struct model *m, struct canvas *c, int top, int bottom)
{
    char title[192];
    if (m->screen == SCR_TRACES) {
        const json_t *t = m->doc[DOC_TRACE];
        const char *id = json_string_value(json_object_get(t, "trace_id"));
        snprintf(title, sizeof(title), "trace %s", m->dlg_target);
        canvas_box(c, 0, top, c->w, bottom - top, title, COLOR_INFO);
        if (!id || strcmp(id, m->dlg_target) != 0) {
            canvas_text(c, 2, top + 1, "loading ...", 0, COLOR_DIM, 0);
            return;
        }
        canvas_printf(c, 2, top + 1, c->w - 4, COLOR_DEFAULT, 0,
                      "%.1f ms, %lld spans; the critical path is highlighted (Esc closes)",
                      json_number_value(json_object_get(t, "duration_ms")),
                      (long long)json_integer_value(json_object_get(t, "span_count")));
        int y = top + 2;
        waterfall_spans(c, json_object_get(t, "spans"), json_number_value(json_object_get(t, "duration_ms")),
                        0, &y, bottom - 1);
        return;
    }
    static struct row rows[ROWS_MAX];
    const struct col *cols;
    int ncols;
    int n = screen_rows(m, m->screen, &cols, &ncols, rows, ROWS_MAX);
    int sel = m->list[m->screen].sel;
    snprintf(title, sizeof(title), "%s", m->dlg_target);
    canvas_box(c, 0, top, c->w, bottom - top, title, COLOR_INFO);
    for (int i = 0; sel < n && i < ncols && top + 1 + i < bottom - 1; i++) {
        canvas_printf(c, 2, top + 1 + i, 16, COLOR_INFO, 0, "%s", cols[i].title);
        canvas_text(c, 19, top + 1 + i, rows[sel].cell[i], c->w - 21, rows[sel].color[i], 0);
    }
}

static void dialog(const struct model *m, struct canvas *c)
{
    int w = c->w > 84 ? 80 : c->w - 4, h = m->mode == MODE_FORM ? m->nform + 7 : 6;
    if (m->mode == MODE_MENU)
        h = 10;
    int x = (c->w - w) / 2, y = (c->h - h) / 2;
    canvas_fill(c, x, y, w, h, " ", COLOR_DEFAULT, 0);
    canvas_box(c, x, y, w, h, m->mode == MODE_FORM ? "edit limit" : "confirm", COLOR_WARN);
    if (m->mode == MODE_FORM) {
        canvas_printf(c, x + 2, y + 1, w - 4, COLOR_DEFAULT, CANVAS_BOLD, "%s (version %ld)",
                      m->form_name, m->form_version);
        for (int f = 0; f < m->nform; f++) {
            const struct form_field *ff = &m->form[f];
            canvas_printf(c, x + 2, y + 2 + f, 14, COLOR_INFO, 0, "%s", ff->label);
            canvas_printf(c, x + 16, y + 2 + f, 24, COLOR_DEFAULT,
                          f == m->form_sel ? CANVAS_REVERSE : CANVAS_UNDERLINE, "%-22s", ff->value);
            canvas_text(c, x + 41, y + 2 + f, ff->error, w - 43, COLOR_BAD, 0);
        }
        canvas_printf(c, x + 2, y + h - 3, w - 4, COLOR_ACCENT, 0, "change: %s",
                      m->form_preview[0] ? m->form_preview : "(none yet)");
        canvas_text(c, x + 2, y + h - 2, "Tab/arrows move  Enter apply  Esc cancel", w - 4,
                    COLOR_DIM, 0);
        return;
    }
    canvas_text(c, x + 2, y + 1, m->dlg_title, w - 4, COLOR_DEFAULT, CANVAS_BOLD);
    if (m->mode == MODE_MENU) {
        const char *labels[8];
        int n = model_fault_items(labels, 8);
        for (int i = 0; i < n; i++)
            canvas_text(c, x + 4, y + 2 + i, labels[i], w - 8, COLOR_DEFAULT,
                        i == m->menu_sel ? CANVAS_REVERSE : 0);
        return;
    }
    canvas_printf(c, x + 2, y + 3, w - 4, COLOR_DEFAULT, CANVAS_UNDERLINE, "> %-*s", w - 8,
                  m->dlg_input);
    canvas_text(c, x + 2, y + 4, m->dlg_hint, w - 4, COLOR_DIM, 0);
}

static void help_box(const struct model *m, struct canvas *c)
{
    static const char *const lines[] = {
        "Tab / 1-8      switch screens          arrows, j k   move",
        "/              filter (regex, ! inverts) < >         sort column, I reverses",
        "Enter          details / waterfall     Z             pause updates",
        ":              command palette         r             refresh now",
        "d u w f        drain, undrain, weight, faults (Fleet)",
        "e s R          edit, shadow, rollback (Limits)   p purge (Cache)",
        "S A            start a drill, abort every drill (Drills)",
        "q / F10        quit                    ? / F1        this help",
        "Dangerous actions ask you to type the target's name first.",
    };
    int h = (int)(sizeof(lines) / sizeof(lines[0])) + 3, w = c->w > 80 ? 78 : c->w - 2;
    int x = (c->w - w) / 2, y = (c->h - h) / 2;
    canvas_fill(c, x, y, w, h, " ", COLOR_DEFAULT, 0);
    canvas_box(c, x, y, w, h, "help", COLOR_INFO);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        canvas_text(c, x + 2, y + 1 + (int)i, lines[i], w - 4, COLOR_DEFAULT, 0);
    canvas_text(c, x + 2, y + h - 2, m->readonly ? "read-only session" : "Esc closes", w - 4,
                COLOR_DIM, 0);
}

void view_draw(const struct model *m, struct canvas *c)
{
    canvas_clear(c);
    if (c->w < 40 || c->h < 8) {
        canvas_text(c, 0, 0, "sluice: the terminal is too small (40x8 at least)", 0, COLOR_BAD, 0);
        return;
    }
    tabs(m, c);
    int bottom = c->h - 2;
    if (m->mode == MODE_DETAIL)
        detail(m, c, 1, bottom);
    else
        table(m, c, 1, bottom - 1);
    const struct list_state *ls = &m->list[m->screen];
    if (m->status[0])
        canvas_text(c, 0, c->h - 2, m->status, 0, m->status_bad ? COLOR_BAD : COLOR_GOOD, 0);
    else if (ls->filter[0])
        canvas_printf(c, 0, c->h - 2, 0, COLOR_DIM, 0, "filter: %s", ls->filter);
    canvas_fill(c, 0, c->h - 1, c->w, 1, " ", COLOR_DEFAULT, CANVAS_REVERSE);
    canvas_text(c, 0, c->h - 1, (m->readonly ? readonly_hints : hints)[m->screen], 0,
                COLOR_DEFAULT, CANVAS_REVERSE);
    if (m->mode == MODE_HELP)
        help_box(m, c);
    else if (m->mode == MODE_FILTER)
        canvas_printf(c, 0, c->h - 2, 0, COLOR_INFO, CANVAS_BOLD, "/%s", m->dlg_input);
    else if (m->mode != MODE_NORMAL && m->mode != MODE_DETAIL)
        dialog(m, c);
}
