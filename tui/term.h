/*
 * term — the terminal: the one file that calls ncurses (term_curses.c). It shows a canvas
 * by rewriting only the rows that differ from the previous frame (wnoutrefresh +
 * doupdate, never a clear per frame), reads keys without blocking, and restores the
 * terminal on close (also when the program is interrupted).
 */
#ifndef TUI_TERM_H
#define TUI_TERM_H

#include <stdbool.h>

#include "canvas.h"

struct term;


/* NULL (with a message on stderr) when stdin/stdout is not a terminal. */
struct term *term_open(bool mono, bool mouse);
void term_close(struct term *t);
void term_size(struct term *t, int *w, int *h);
/* The next key, or -1 when none is waiting (KEY_RESIZE after a resize). */
int term_getkey(struct term *t);
/* Show c: only changed rows are written; after a resize everything is. */
void term_present(struct term *t, const struct canvas *c);
/* Rows written since open (for the benchmark's bytes-per-frame comparison). */
unsigned long term_rows_written(const struct term *t);

#endif
