/*
 * term_curses — the TUI's only ncurses user (term.h). Colours by meaning map to colour
 * pairs on the terminal's default background; --mono (or NO_COLOR) keeps attributes only.
 * SLUICE_FULL_REPAINT=1 rewrites every row every frame (the benchmark's baseline).
 */
#include "term.h"

#include <curses.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tui_keys.h"

/* keys.h spells ncurses' codes for the model: they must agree */
_Static_assert(TK_DOWN == KEY_DOWN && TK_UP == KEY_UP && TK_HOME == KEY_HOME &&
                   TK_BACKSPACE == KEY_BACKSPACE && TK_F(1) == KEY_F(1) && TK_NPAGE == KEY_NPAGE &&
                   TK_PPAGE == KEY_PPAGE && TK_ENTER == KEY_ENTER && TK_BTAB == KEY_BTAB &&
                   TK_END == KEY_END && TK_RESIZE == KEY_RESIZE,
               "keys.h must match ncurses");

struct term {
    bool mono, full;
    struct canvas *last; /* what the screen shows */
    unsigned long rows_written;
};

struct term *term_open(bool mono, bool mouse)
{
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "sluice: the dashboard needs a terminal (for scripts: sluice status -o json)\n");
        return NULL;
    }
    struct term *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    setlocale(LC_ALL, "");
    setenv("ESCDELAY", "25", 0);
    if (!initscr()) {
        free(t);
        return NULL;
    }
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    curs_set(0);
    t->mono = mono || !has_colors();
    t->full = getenv("SLUICE_FULL_REPAINT") && !strcmp(getenv("SLUICE_FULL_REPAINT"), "1");
    if (!t->mono) {
        start_color();
        use_default_colors();
        static const short fg[] = {-1, COLOR_GREEN, COLOR_YELLOW, COLOR_RED,
                                   COLOR_CYAN, COLOR_WHITE, COLOR_MAGENTA};
        for (short i = 1; i < (short)(sizeof(fg) / sizeof(fg[0])); i++)
            init_pair(i, fg[i], -1);
    }
    if (mouse)
        mousemask(BUTTON1_CLICKED | BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
    return t;
}

void term_close(struct term *t)
{
    if (!t)
        return;
    endwin();
    canvas_free(t->last);
    free(t);
}

void term_size(struct term *t, int *w, int *h)
{
    (void)t;
    getmaxyx(stdscr, *h, *w);
}

int term_getkey(struct term *t)
{
    (void)t;
    int k = wgetch(stdscr);
    return k == ERR ? -1 : k;
}

static attr_t attrs_of(const struct term *t, const struct cell *c)
{
    attr_t a = 0;
    if (c->attr & CANVAS_BOLD)
        a |= A_BOLD;
    if (c->attr & CANVAS_REVERSE)
        a |= A_REVERSE;
    if (c->attr & CANVAS_UNDERLINE)
        a |= A_UNDERLINE;
    if (!t->mono && c->color && c->color < COLOR_COUNT)
        a |= COLOR_PAIR(c->color);
    if (!t->mono && c->color == COLOR_DIM)
        a |= A_DIM;
    return a;
}

static void draw_row(struct term *t, const struct canvas *c, int y)
{
    attr_t cur = (attr_t)-1;
    move(y, 0);
    for (int x = 0; x < c->w; x++) {
        const struct cell *cl = canvas_cell(c, x, y);
        attr_t a = attrs_of(t, cl);
        if (a != cur) {
            attrset(a);
            cur = a;
        }
        if (y == c->h - 1 && x == c->w - 1) /* the last cell would scroll some terminals */
            break;
        addstr(cl->ch);
    }
    attrset(A_NORMAL);
    t->rows_written++;
}

void term_present(struct term *t, const struct canvas *c)
{
    bool resized = !t->last || t->last->w != c->w || t->last->h != c->h;
    if (resized) {
        canvas_free(t->last);
        t->last = canvas_new(c->w, c->h);
    }
    if (resized || t->full) /* a new size (or the baseline): the whole screen is sent */
        clearok(stdscr, TRUE);
    for (int y = 0; y < c->h; y++)
        if (resized || t->full || !canvas_row_equal(t->last, c, y))
            draw_row(t, c, y);
    if (t->last)
        canvas_copy(t->last, c);
    wnoutrefresh(stdscr);
    doupdate();
}

unsigned long term_rows_written(const struct term *t)
{
    return t->rows_written;
}
