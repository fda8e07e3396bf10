/*
 * canvas — the TUI's in-memory screen: a grid of cells (one UTF-8 character, a colour by
 * meaning, attributes). Views (pure functions of the model) draw into a canvas; the
 * terminal (term_curses.c, the only ncurses user) copies the rows that differ from the
 * last frame. Headless tests render a canvas to text and compare it with golden files.
 *
 * Every drawing call clips to the canvas (negative or past-the-edge coordinates draw
 * nothing there) and treats one code point as one column (the TUI uses no wide
 * characters). Invalid UTF-8 (overlong forms, surrogates, past U+10FFFF, stray or missing
 * continuation bytes) draws '?' per bad byte; a control character (C0, DEL, C1) draws one
 * '?', since it would move the terminal's cursor. Not thread-safe.
 */
#ifndef TUI_CANVAS_H
#define TUI_CANVAS_H

#include <stdbool.h>
#include <stdint.h>

/* Colours say what a value means; --mono / NO_COLOR drop them, attributes stay. */
enum canvas_color {
    COLOR_DEFAULT,
    COLOR_GOOD,   /* green: serving, healthy, within budget */
    COLOR_WARN,   /* yellow: draining, burning, slow */
    COLOR_BAD,    /* red: down, errors, page */
    COLOR_INFO,   /* cyan: headings, keys */
    COLOR_DIM,    /* grey: secondary text */
    COLOR_ACCENT, /* magenta: the selection's details, drill markers */
    COLOR_COUNT
};

#define CANVAS_BOLD      0x01
#define CANVAS_REVERSE   0x02
#define CANVAS_UNDERLINE 0x04

#define CANVAS_MAX_W 1000
#define CANVAS_MAX_H 500

struct cell {
    char ch[5];    /* one UTF-8 character, NUL-terminated; " " when blank */
    uint8_t color; /* enum canvas_color */
    uint8_t attr;  /* CANVAS_* bits */
};

struct canvas {
    int w, h;
    struct cell *cells; /* h rows of w cells */
};

/* NULL when w or h is out of 1..CANVAS_MAX_* or out of memory. Starts blank. */
struct canvas *canvas_new(int w, int h);
void canvas_free(struct canvas *c);
/* New size, blank; SL_EINVAL / SL_ENOMEM (the canvas is unchanged then). */
int canvas_resize(struct canvas *c, int w, int h);
void canvas_clear(struct canvas *c);
const struct cell *canvas_cell(const struct canvas *c, int x, int y); /* NULL outside */

/* Text at (x, y) in a field from column x to column x + max_cols - 1 (max_cols <= 0: no
 * limit) or the canvas's right edge, whichever comes first. Text with more code points than
 * the field has columns is cut: the field's last column shows "…" in place of the rest.
 * Columns left of 0 are clipped, not cut (no "…"). Returns the cells written (0 when y is
 * outside the canvas). */
int canvas_text(struct canvas *c, int x, int y, const char *utf8, int max_cols, uint8_t color,
                uint8_t attr);
/* The same, right-aligned in a field of width columns ending at x + width - 1 (cut as above
 * when longer than width, or past the right edge); width <= 0 draws nothing. */
int canvas_text_right(struct canvas *c, int x, int y, int width, const char *utf8,
                      uint8_t color, uint8_t attr);
int canvas_printf(struct canvas *c, int x, int y, int max_cols, uint8_t color, uint8_t attr,
                  const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* A rectangle of one character, the first of ch (" " clears; NULL or "" is " "); colour and
 * attributes set on every cell. */
void canvas_fill(struct canvas *c, int x, int y, int w, int h, const char *ch, uint8_t color,
                 uint8_t attr);
/* Set colour/attributes of a run of cells, keeping their characters (selection bars). */
void canvas_paint(struct canvas *c, int x, int y, int w, uint8_t color, uint8_t attr);
/* A box border with a title on the top edge ("┌─ title ─┐"), interior untouched; nothing
 * when w or h < 2. The title (NULL or "": none) is cut like canvas_text to fit w - 6 columns
 * and left out when w < 7. Border and title have attributes 0. */
void canvas_box(struct canvas *c, int x, int y, int w, int h, const char *title, uint8_t color);
/* The last n values as a sparkline of width columns: level round(7 * v / max) of ▁▂▃▄▅▆▇█,
 * max the largest value drawn (all zero: ▁); NAN, infinite or negative values draw a space;
 * fewer values than columns are right-aligned after spaces. Returns the cells written. */
int canvas_sparkline(struct canvas *c, int x, int y, int width, const double *values, int n,
                     uint8_t color);
/* A bar of width columns filled to fraction 0..1 ("█" filled, "░" empty; clamped, NAN is 0):
 * round(fraction * width) columns filled, halves up. Returns the cells written. */
int canvas_bar(struct canvas *c, int x, int y, int width, double fraction, uint8_t color);

/* Row y of a and b holds the same cells (same width and y inside both; false otherwise). */
bool canvas_row_equal(const struct canvas *a, const struct canvas *b, int y);
/* Copy src into dst (same size: SL_OK, else SL_EINVAL). */
int canvas_copy(struct canvas *dst, const struct canvas *src);

/* The characters, one line per row, trailing spaces kept, '\n' after each row; malloc'd. */
char *canvas_to_text(const struct canvas *c);
/* The colours and attributes, one character per cell, lines as canvas_to_text: '.' default
 * colour, g y r c d m for GOOD WARN BAD INFO DIM ACCENT, upper case when bold or reverse
 * ('#' for the default colour); '?' for a colour outside the enum; malloc'd. */
char *canvas_attrs_to_text(const struct canvas *c);

#endif
