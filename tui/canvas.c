/*
 * canvas — the in-memory screen between the views and the terminal (see canvas.h).
 *
 * Views call the drawing functions below with any coordinates; each one clips cell by cell
 * through put_cell(), so a view never checks bounds itself. Positions are computed in
 * long long so that x + w cannot overflow whatever a caller passes, and loops run over the
 * visible columns only, so a huge width costs nothing. Text is decoded one glyph (one
 * column) at a time by next_glyph(), the only place that knows UTF-8 (RFC 3629 §4).
 */
#include "canvas.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define ELLIPSIS "…"

/* canvas_printf formats into a buffer this big: 4 bytes per code point, so CANVAS_MAX_W + 1
 * complete code points always fit and the widest field still sees that the text is longer
 * (output past it is dropped; its partial last code point lies beyond any field). */
#define PRINTF_MAX_BYTES (4 * (CANVAS_MAX_W + 1) + 1)

static const char *const spark_levels[8] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};

/* ---- UTF-8 ---------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s (1..4) and its code point, or 0 when s does
 * not start one. RFC 3629 §4: no overlong forms, no surrogates, nothing past U+10FFFF. The
 * NUL terminator is not a continuation byte, so this never reads past the string. */
static int utf8_decode(const unsigned char *s, uint32_t *cp)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    int len;
    uint32_t v;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2;
        v = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3;
        v = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4;
        v = s[0] & 0x07;
    } else {
        return 0; /* a continuation byte or F8..FF */
    }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min_cp[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* C0, DEL and C1 would move the terminal's cursor instead of taking one column. */
static bool is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

/* The glyph at s into out (NUL-terminated): the character, or "?" for a bad byte or a
 * control character. Returns the bytes consumed, 0 at the end of the string. */
static int next_glyph(const char *s, char out[5])
{
    uint32_t cp;
    if (s[0] == '\0')
        return 0;
    int len = utf8_decode((const unsigned char *)s, &cp);
    if (len == 0 || is_control(cp)) {
        strcpy(out, "?");
        return len ? len : 1;
    }
    memcpy(out, s, (size_t)len);
    out[len] = '\0';
    return len;
}

/* Code points in s, counting at most limit + 1 (enough to tell "longer than limit"). */
static long long glyph_count(const char *s, long long limit)
{
    char g[5];
    long long n = 0;
    int len;
    while (n <= limit && (len = next_glyph(s, g)) > 0) {
        s += len;
        n++;
    }
    return n;
}

/* ---- cells ---------------------------------------------------------------------------- */

static void set_cell(struct cell *cell, const char *glyph, uint8_t color, uint8_t attr)
{
    memset(cell->ch, 0, sizeof cell->ch); /* bytes after the NUL stay zero */
    memcpy(cell->ch, glyph, strlen(glyph));
    cell->color = color;
    cell->attr = attr;
}

/* One cell; false (nothing drawn) outside the canvas. */
static bool put_cell(struct canvas *c, long long x, long long y, const char *glyph, uint8_t color,
                     uint8_t attr)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return false;
    set_cell(&c->cells[y * c->w + x], glyph, color, attr);
    return true;
}

/* The part of [from, from + len) inside [0, limit): false when empty. */
static bool clip_run(long long from, long long len, int limit, long long *lo, long long *hi)
{
    *lo = from < 0 ? 0 : from;
    *hi = from + len < limit ? from + len : limit;
    return *lo < *hi;
}

/* ---- lifetime ------------------------------------------------------------------------- */

static struct cell *cells_new(int w, int h)
{
    struct cell *cells = malloc((size_t)w * (size_t)h * sizeof *cells);
    if (!cells)
        return NULL;
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
        set_cell(&cells[i], " ", COLOR_DEFAULT, 0);
    return cells;
}

static bool size_ok(int w, int h)
{
    return w >= 1 && w <= CANVAS_MAX_W && h >= 1 && h <= CANVAS_MAX_H;
}

struct canvas *canvas_new(int w, int h)
{
    if (!size_ok(w, h))
        return NULL;
    struct canvas *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->cells = cells_new(w, h);
    if (!c->cells)
        goto err_free_canvas;
    c->w = w;
    c->h = h;
    return c;

err_free_canvas:
    free(c);
    return NULL;
}

void canvas_free(struct canvas *c)
{
    if (!c)
        return;
    free(c->cells);
    free(c);
}

int canvas_resize(struct canvas *c, int w, int h)
{
    if (!size_ok(w, h))
        return SL_EINVAL;
    struct cell *cells = cells_new(w, h);
    if (!cells)
        return SL_ENOMEM;
    free(c->cells);
    c->cells = cells;
    c->w = w;
    c->h = h;
    return SL_OK;
}

void canvas_clear(struct canvas *c)
{
    for (size_t i = 0; i < (size_t)c->w * (size_t)c->h; i++)
        set_cell(&c->cells[i], " ", COLOR_DEFAULT, 0);
}

const struct cell *canvas_cell(const struct canvas *c, int x, int y)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h)
        return NULL;
    return &c->cells[(size_t)y * (size_t)c->w + (size_t)x];
}

/* ---- text ----------------------------------------------------------------------------- */

/* Columns of canvas_text's field at x: up to max_cols (<= 0: no limit) and the right edge.
 * Zero or negative when the field is empty. */
static long long field_cols(const struct canvas *c, long long x, long long max_cols)
{
    long long room = c->w - x;
    return max_cols > 0 && max_cols < room ? max_cols : room;
}

/* Lays s out in cols columns from x, the last one "…" when s is longer. Returns the columns
 * laid out (clipped ones included); *written counts the cells actually drawn. */
static long long put_text(struct canvas *c, long long x, long long y, const char *s, long long cols,
                          uint8_t color, uint8_t attr, int *written)
{
    char g[5];
    long long col = 0;
    int len;

    *written = 0;
    while (col < cols && (len = next_glyph(s, g)) > 0) {
        s += len;
        const char *glyph = col == cols - 1 && *s != '\0' ? ELLIPSIS : g;
        if (put_cell(c, x + col, y, glyph, color, attr))
            (*written)++;
        col++;
    }
    return col;
}

int canvas_text(struct canvas *c, int x, int y, const char *utf8, int max_cols, uint8_t color,
                uint8_t attr)
{
    int written;
    if (y < 0 || y >= c->h || !utf8)
        return 0;
    put_text(c, x, y, utf8, field_cols(c, x, max_cols), color, attr, &written);
    return written;
}

int canvas_text_right(struct canvas *c, int x, int y, int width, const char *utf8, uint8_t color,
                      uint8_t attr)
{
    int written;
    if (width <= 0 || y < 0 || y >= c->h || !utf8)
        return 0;
    long long n = glyph_count(utf8, width);
    if (n > width)
        n = width;
    long long from = (long long)x + width - n;
    put_text(c, from, y, utf8, field_cols(c, from, n), color, attr, &written);
    return written;
}

int canvas_printf(struct canvas *c, int x, int y, int max_cols, uint8_t color, uint8_t attr,
                  const char *fmt, ...)
{
    char text[PRINTF_MAX_BYTES];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0)
        return 0;
    return canvas_text(c, x, y, text, max_cols, color, attr);
}

/* ---- shapes --------------------------------------------------------------------------- */

static void fill_rect(struct canvas *c, long long x, long long y, long long w, long long h,
                      const char *glyph, uint8_t color, uint8_t attr)
{
    long long x0, x1, y0, y1;
    if (!clip_run(x, w, c->w, &x0, &x1) || !clip_run(y, h, c->h, &y0, &y1))
        return;
    for (long long row = y0; row < y1; row++)
        for (long long col = x0; col < x1; col++)
            put_cell(c, col, row, glyph, color, attr);
}

void canvas_fill(struct canvas *c, int x, int y, int w, int h, const char *ch, uint8_t color,
                 uint8_t attr)
{
    char g[5] = " ";
    if (ch)
        next_glyph(ch, g); /* leaves " " for "" */
    fill_rect(c, x, y, w, h, g, color, attr);
}

void canvas_paint(struct canvas *c, int x, int y, int w, uint8_t color, uint8_t attr)
{
    long long x0, x1;
    if (y < 0 || y >= c->h || !clip_run(x, w, c->w, &x0, &x1))
        return;
    for (long long col = x0; col < x1; col++) {
        struct cell *cell = &c->cells[(long long)y * c->w + col];
        cell->color = color;
        cell->attr = attr;
    }
}

/* " title " on the top edge of a box at (x, y) of w columns, w >= 7. */
static void box_title(struct canvas *c, long long x, long long y, long long w, const char *title,
                      uint8_t color)
{
    int written;
    put_cell(c, x + 2, y, " ", color, 0);
    long long cols = put_text(c, x + 3, y, title, w - 6, color, 0, &written);
    put_cell(c, x + 3 + cols, y, " ", color, 0);
}

void canvas_box(struct canvas *c, int x, int y, int w, int h, const char *title, uint8_t color)
{
    if (w < 2 || h < 2)
        return;
    long long right = (long long)x + w - 1, bottom = (long long)y + h - 1;
    fill_rect(c, x + 1LL, y, w - 2, 1, "─", color, 0);
    fill_rect(c, x + 1LL, bottom, w - 2, 1, "─", color, 0);
    fill_rect(c, x, y + 1LL, 1, h - 2, "│", color, 0);
    fill_rect(c, right, y + 1LL, 1, h - 2, "│", color, 0);
    put_cell(c, x, y, "┌", color, 0);
    put_cell(c, right, y, "┐", color, 0);
    put_cell(c, x, bottom, "└", color, 0);
    put_cell(c, right, bottom, "┘", color, 0);
    if (title && *title && w >= 7)
        box_title(c, x, y, w, title, color);
}

/* The block for v on a scale to max, or " " for a value that cannot be drawn. */
static const char *spark_glyph(double v, double max)
{
    if (!isfinite(v) || v < 0)
        return " ";
    if (max <= 0)
        return spark_levels[0];
    long level = lround(v / max * 7.0); /* v / max first: v * 7 may overflow */
    return spark_levels[level < 0 ? 0 : level > 7 ? 7 : level];
}

int canvas_sparkline(struct canvas *c, int x, int y, int width, const double *values, int n,
                     uint8_t color)
{
    long long lo, hi;
    int written = 0;
    if (width <= 0 || y < 0 || y >= c->h || !clip_run(x, width, c->w, &lo, &hi))
        return 0;
    int shown = !values || n <= 0 ? 0 : n < width ? n : width;
    const double *last = shown ? values + (n - shown) : NULL;
    double max = 0;
    for (int i = 0; i < shown; i++)
        if (isfinite(last[i]) && last[i] > max)
            max = last[i];
    long long first = (long long)x + width - shown; /* column of last[0] */
    for (long long col = lo; col < hi; col++) {
        const char *glyph = col < first ? " " : spark_glyph(last[col - first], max);
        written += put_cell(c, col, y, glyph, color, 0);
    }
    return written;
}

int canvas_bar(struct canvas *c, int x, int y, int width, double fraction, uint8_t color)
{
    long long lo, hi;
    int written = 0;
    if (width <= 0 || y < 0 || y >= c->h || !clip_run(x, width, c->w, &lo, &hi))
        return 0;
    if (isnan(fraction) || fraction < 0)
        fraction = 0;
    else if (fraction > 1)
        fraction = 1;
    long long filled = (long long)x + llround(fraction * width); /* first empty column */
    for (long long col = lo; col < hi; col++)
        written += put_cell(c, col, y, col < filled ? "█" : "░", color, 0);
    return written;
}

/* ---- comparing and rendering ---------------------------------------------------------- */

bool canvas_row_equal(const struct canvas *a, const struct canvas *b, int y)
{
    if (a->w != b->w || y < 0 || y >= a->h || y >= b->h)
        return false;
    const struct cell *ra = canvas_cell(a, 0, y), *rb = canvas_cell(b, 0, y);
    for (int x = 0; x < a->w; x++) {
        if (strcmp(ra[x].ch, rb[x].ch) != 0 || ra[x].color != rb[x].color ||
            ra[x].attr != rb[x].attr)
            return false;
    }
    return true;
}

int canvas_copy(struct canvas *dst, const struct canvas *src)
{
    if (dst->w != src->w || dst->h != src->h)
        return SL_EINVAL;
    memcpy(dst->cells, src->cells, (size_t)src->w * (size_t)src->h * sizeof *src->cells);
    return SL_OK;
}

char *canvas_to_text(const struct canvas *c)
{
    /* at most 4 bytes per cell, a '\n' per row and the NUL */
    char *text = malloc((size_t)c->h * ((size_t)c->w * 4 + 1) + 1);
    if (!text)
        return NULL;
    char *p = text;
    for (int y = 0; y < c->h; y++) {
        const struct cell *row = canvas_cell(c, 0, y);
        for (int x = 0; x < c->w; x++) {
            size_t len = strlen(row[x].ch);
            memcpy(p, row[x].ch, len);
            p += len;
        }
        *p++ = '\n';
    }
    *p = '\0';
    return text;
}

/* The letter for one cell in canvas_attrs_to_text. */
static char attr_char(const struct cell *cell)
{
    static const char lower[COLOR_COUNT] = {'.', 'g', 'y', 'r', 'c', 'd', 'm'};
    static const char upper[COLOR_COUNT] = {'#', 'G', 'Y', 'R', 'C', 'D', 'M'};
    if (cell->color >= COLOR_COUNT)
        return '?';
    bool strong = cell->attr & (CANVAS_BOLD | CANVAS_REVERSE);
    return strong ? upper[cell->color] : lower[cell->color];
}

char *canvas_attrs_to_text(const struct canvas *c)
{
    char *text = malloc((size_t)c->h * ((size_t)c->w + 1) + 1);
    if (!text)
        return NULL;
    char *p = text;
    for (int y = 0; y < c->h; y++) {
        const struct cell *row = canvas_cell(c, 0, y);
        for (int x = 0; x < c->w; x++)
            *p++ = attr_char(&row[x]);
        *p++ = '\n';
    }
    *p = '\0';
    return text;
}
