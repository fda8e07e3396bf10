/*
 * model — the TUI's state and its key handling (STYLE: model → view → canvas → terminal).
 *
 * The model holds the control plane's documents as they arrive (the fleet snapshot from
 * the event stream, the other screens' data from polls), the per-screen list state
 * (selection, sort, filter), the open dialog, and the history behind the sparklines. It
 * does no I/O: a key that needs the server (drain, a limit change, a purge ...) queues a
 * struct model_cmd that app.c performs and answers with model_cmd_done. Everything here is
 * deterministic given the keys, the documents and the times passed in, which is what the
 * headless tests drive (tests/unit/test_tui.c).
 *
 * Tables: each screen's rows come from screen_rows() (tables.c), which the view draws and
 * the model uses for selection, so both always agree on what row N is.
 */
#ifndef TUI_MODEL_H
#define TUI_MODEL_H

#include <regex.h>
#include <stdbool.h>
#include <stdint.h>

#include "json.h"

enum screen {
    SCR_FLEET,
    SCR_LIMITS,
    SCR_CACHE,
    SCR_SLOS,
    SCR_TRACES,
    SCR_QUEUES,
    SCR_DRILLS,
    SCR_EVENTS,
    SCR_COUNT
};

/* What the documents are (model_set_doc). */
enum doc {
    DOC_FLEET,  /* GET /v1/fleet or an SSE snapshot */
    DOC_LIMITS, /* GET /v1/limits */
    DOC_SLOS,   /* GET /v1/slos */
    DOC_TRACES, /* GET /v1/traces */
    DOC_TRACE,  /* GET /v1/traces/{id}: the waterfall */
    DOC_QUEUES, /* GET /v1/queues */
    DOC_AUDIT,  /* GET /v1/audit */
    DOC_DRILLS, /* GET /v1/drills */
    DOC_COUNT
};

enum mode {
    MODE_NORMAL,
    MODE_FILTER,  /* typing a / filter */
    MODE_CONFIRM, /* a dangerous action: type the target's id to confirm */
    MODE_PROMPT,  /* one value (a weight, a purge prefix) */
    MODE_FORM,    /* the limit editor */
    MODE_MENU,    /* the faults menu */
    MODE_PALETTE, /* ':' commands */
    MODE_HELP,
    MODE_DETAIL,  /* Enter: details of the selected row (a trace's waterfall) */
};

/* A request for the control plane, performed by app.c. */
enum cmd_kind {
    CMD_NONE,
    CMD_DRAIN,
    CMD_UNDRAIN,
    CMD_WEIGHT,       /* body {"weight": N} */
    CMD_FAULTS_SET,   /* body: the fault document */
    CMD_FAULTS_CLEAR,
    CMD_LIMIT_PUT,    /* body: the policy; if_match: its version */
    CMD_LIMIT_ROLLBACK,
    CMD_CACHE_PURGE,  /* target: the replica, body {"prefix": ...} */
    CMD_TRACE_GET,    /* target: the trace id */
    CMD_DRILL_START,
    CMD_DRILL_ABORT_ALL,
    CMD_REFRESH,      /* fetch the current screen's data now */
};

struct model_cmd {
    enum cmd_kind kind;
    char target[128];
    char body[4096];
    long if_match; /* -1: none */
};

#define MODEL_CMDS_MAX 16
#define MODEL_REFRESH_MS_DEFAULT 2000 /* how often the tables' numbers move (--refresh-ms) */
#define MODEL_SPARKS_MAX 512
#define MODEL_SPARK_LEN 30      /* samples shown: one every MODEL_SPARK_STEP_MS, a minute */
#define MODEL_SPARK_STEP_MS 2000
#define FORM_FIELDS_MAX 12

struct list_state {
    int sel;       /* index into the screen's (filtered, sorted) rows */
    int top;       /* first row shown */
    int sort_col;  /* -1: the screen's natural order */
    bool sort_desc;
    char filter[128];
    bool filter_invert; /* the filter began with '!' */
    bool filter_ok;     /* the regex compiled */
    regex_t re;
};

/* The last minute of one replica as a sweep (an oscilloscope's trace, not a scroll): slot
 * `pos` is overwritten next and drawn as a gap, so each new sample changes two cells of the
 * screen instead of shifting all of them (the terminal gets a few bytes per row per frame). */
struct spark {
    char id[128];
    double v[MODEL_SPARK_LEN]; /* requests/s by slot; NAN: none yet */
    int n;                     /* slots filled */
    int pos;                   /* the slot written next */
    uint64_t last_ms;          /* when the last sample was taken */
    bool mark[MODEL_SPARK_LEN]; /* a drill step or an action happened in this slot */
};

struct form_field {
    char label[32];
    char value[128];
    char error[160]; /* the server's validation message for this field */
};

struct model {
    enum screen screen;
    enum mode mode;
    bool readonly; /* --readonly or a viewer key: no mutations offered */
    bool mono;
    bool paused;   /* Z: the view holds still; data still arrives */
    bool mouse;
    bool quit;
    bool connected;
    char conn_msg[160]; /* "disconnected, retrying in 2 s" when !connected */
    uint64_t now_ms;
    json_t *doc[DOC_COUNT]; /* owned; NULL until fetched */
    json_t *frozen_fleet;   /* the fleet shown while paused */
    json_t *shown_fleet;    /* the fleet the tables show: renewed every refresh_ms, or at
                             * once when a replica's state changes (k9s' 2 s rhythm for
                             * numbers, no delay for what an operator must act on) */
    uint64_t shown_ms;
    unsigned refresh_ms;
    struct list_state list[SCR_COUNT];
    struct spark sparks[MODEL_SPARKS_MAX];
    int nsparks;
    /* dialogs */
    char dlg_title[256];
    char dlg_hint[256];
    char dlg_expect[128]; /* MODE_CONFIRM: what must be typed */
    char dlg_input[256];
    enum cmd_kind dlg_cmd; /* what Enter does */
    char dlg_target[128];
    int menu_sel;
    struct form_field form[FORM_FIELDS_MAX];
    int nform, form_sel;
    char form_name[64];
    long form_version;
    char form_preview[512];
    char status[256]; /* the last action's result, shown in the hint bar */
    bool status_bad;
    /* queued commands */
    struct model_cmd cmds[MODEL_CMDS_MAX];
    int ncmds;
};

void model_init(struct model *m, bool readonly, bool mono);
void model_release(struct model *m);
/* A document arrived (stolen). Fleet snapshots also feed the sparklines. */
void model_set_doc(struct model *m, enum doc d, json_t *doc, uint64_t now_ms);
void model_set_connected(struct model *m, bool up, const char *msg);
/* One key (ncurses codes: KEY_UP ..., printable characters, 27 Esc, 10/13 Enter,
 * KEY_RESIZE is the app's business). */
void model_key(struct model *m, int key);
/* Take the queued commands (app.c performs them in order). Returns how many. */
int model_take_cmds(struct model *m, struct model_cmd *out, int cap);
/* A command's result: ok, and a one-line message (the server's error when !ok);
 * a limit validation problem (errors array) is shown in the form. */
void model_cmd_done(struct model *m, const struct model_cmd *c, bool ok, const char *msg,
                    const json_t *problem);
/* A drill event from the stream ({"kind":"step", "replicas":[{"replica"}...]}): the
 * replicas it touched get a marker on their sweep (drawn in the accent colour). */
void model_drill_event(struct model *m, const json_t *ev);
/* Which documents the current screen wants refreshed. */
bool model_wants(const struct model *m, enum doc d);
const char *screen_name(enum screen s);

/* ---- tables.c: a screen's rows --------------------------------------------------------- */
#define ROW_COLS_MAX 16
#define ROW_CELL_MAX 48
#define ROWS_MAX 1024

struct col {
    const char *title;
    int width;    /* columns; the last column takes what is left */
    bool numeric; /* right-aligned, sorted by value */
};

struct row {
    char cell[ROW_COLS_MAX][ROW_CELL_MAX];
    double num[ROW_COLS_MAX]; /* sort keys of numeric columns (NAN: none) */
    uint8_t color[ROW_COLS_MAX];
    char key[128];     /* what actions act on: replica id, policy name, trace id ... */
    bool total;        /* a service total line: not selectable, not filtered */
    const struct spark *spark; /* fleet: the replica's history */
};

/* The screen's columns and rows after the filter and sort of m->list[s]. rows holds cap. */
int screen_rows(const struct model *m, enum screen s, const struct col **cols, int *ncols,
                struct row *rows, int cap);

#endif
