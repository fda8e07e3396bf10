/*
 * app — the live dashboard: terminal, event stream, worker, and the loop (app.c).
 */
#ifndef TUI_APP_H
#define TUI_APP_H

#include <stdbool.h>

struct app_opts {
    const char *server; /* NULL: SLUICE_SERVER, then http://127.0.0.1:7700 */
    const char *token;  /* NULL: SLUICE_TOKEN */
    bool readonly;      /* hide and refuse mutations (a viewer key is read-only anyway) */
    bool mono;          /* --mono or NO_COLOR */
    bool mouse;         /* opt-in mouse */
    unsigned poll_ms;   /* -d MS: poll /v1/fleet instead of following /v1/events */
    unsigned refresh_ms; /* how often the tables' numbers move (0: 2000); states at once */
};

/* Runs until q/F10; the terminal is restored. Exit code: 0, 2 (no terminal), 4 (the
 * token is refused). */
int app_run(const struct app_opts *o);

#endif
