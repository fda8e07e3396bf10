/*
 * test_canvas — the TUI's in-memory screen: exact cells for every drawing call, clipping at
 * each edge (including coordinates near INT_MIN/INT_MAX), cutting with "…", UTF-8 decoding
 * (valid sequences at each length boundary, overlongs, surrogates, stray bytes, controls),
 * sparkline levels, bar rounding, and the text renderings the headless tests compare.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "canvas.h"
#include "err.h"

/* The whole canvas as text equals want. */
static void assert_text(const struct canvas *c, const char *want)
{
    char *got = canvas_to_text(c);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void assert_attrs(const struct canvas *c, const char *want)
{
    char *got = canvas_attrs_to_text(c);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

/* Row y reads want, then only blank cells to the right edge. */
static void assert_row(const struct canvas *c, int y, const char *want)
{
    char row[CANVAS_MAX_W * 4 + 1] = "";
    size_t len = 0;
    for (int x = 0; x < c->w; x++) {
        const struct cell *cell = canvas_cell(c, x, y);
        assert_non_null(cell);
        memcpy(row + len, cell->ch, strlen(cell->ch) + 1);
        len += strlen(cell->ch);
    }
    size_t want_len = strlen(want);
    assert_true(len >= want_len);
    if (memcmp(row, want, want_len) != 0)
        fail_msg("row %d is \"%s\", want \"%s\" then blanks", y, row, want);
    for (size_t i = want_len; i < len; i++)
        assert_int_equal(row[i], ' ');
}

static void assert_cell(const struct canvas *c, int x, int y, const char *ch, uint8_t color,
                        uint8_t attr)
{
    const struct cell *cell = canvas_cell(c, x, y);
    assert_non_null(cell);
    assert_string_equal(cell->ch, ch);
    assert_int_equal(cell->color, color);
    assert_int_equal(cell->attr, attr);
}

/* A w x h canvas with every cell ch, so tests can see which cells a call left alone. */
static struct canvas *canvas_of(int w, int h, const char *ch)
{
    struct canvas *c = canvas_new(w, h);
    assert_non_null(c);
    canvas_fill(c, 0, 0, w, h, ch, COLOR_DEFAULT, 0);
    return c;
}

/* ---- lifetime and bounds -------------------------------------------------------------- */

static void test_new_is_blank(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(3, 2);
    assert_non_null(c);
    assert_int_equal(c->w, 3);
    assert_int_equal(c->h, 2);
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++)
            assert_cell(c, x, y, " ", COLOR_DEFAULT, 0);
    assert_text(c, "   \n   \n");
    assert_attrs(c, "...\n...\n");
    canvas_free(c);
    canvas_free(NULL);
}

static void test_new_bounds(void **state)
{
    (void)state;
    assert_null(canvas_new(0, 1));
    assert_null(canvas_new(1, 0));
    assert_null(canvas_new(-1, 5));
    assert_null(canvas_new(5, -1));
    assert_null(canvas_new(CANVAS_MAX_W + 1, 1));
    assert_null(canvas_new(1, CANVAS_MAX_H + 1));
    assert_null(canvas_new(INT_MAX, INT_MAX));
    struct canvas *c = canvas_new(CANVAS_MAX_W, CANVAS_MAX_H);
    assert_non_null(c);
    assert_cell(c, CANVAS_MAX_W - 1, CANVAS_MAX_H - 1, " ", COLOR_DEFAULT, 0);
    canvas_free(c);
    c = canvas_new(1, 1);
    assert_non_null(c);
    assert_text(c, " \n");
    canvas_free(c);
}

static void test_cell_outside_is_null(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(4, 3);
    assert_non_null(canvas_cell(c, 0, 0));
    assert_non_null(canvas_cell(c, 3, 2));
    assert_ptr_equal(canvas_cell(c, 1, 2), c->cells + 2 * 4 + 1);
    assert_null(canvas_cell(c, -1, 0));
    assert_null(canvas_cell(c, 0, -1));
    assert_null(canvas_cell(c, 4, 0));
    assert_null(canvas_cell(c, 0, 3));
    assert_null(canvas_cell(c, INT_MIN, INT_MAX));
    canvas_free(c);
}

static void test_resize(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(3, 2);
    canvas_text(c, 0, 0, "abc", 0, COLOR_BAD, CANVAS_BOLD);
    assert_int_equal(canvas_resize(c, 5, 1), SL_OK);
    assert_int_equal(c->w, 5);
    assert_int_equal(c->h, 1);
    assert_text(c, "     \n");
    assert_attrs(c, ".....\n");

    canvas_text(c, 0, 0, "hi", 0, COLOR_GOOD, 0);
    assert_int_equal(canvas_resize(c, 0, 1), SL_EINVAL);
    assert_int_equal(canvas_resize(c, 1, 0), SL_EINVAL);
    assert_int_equal(canvas_resize(c, -1, -1), SL_EINVAL);
    assert_int_equal(canvas_resize(c, CANVAS_MAX_W + 1, 1), SL_EINVAL);
    assert_int_equal(canvas_resize(c, 1, CANVAS_MAX_H + 1), SL_EINVAL);
    assert_int_equal(c->w, 5); /* unchanged, contents too */
    assert_int_equal(c->h, 1);
    assert_text(c, "hi   \n");
    assert_attrs(c, "gg...\n");

    assert_int_equal(canvas_resize(c, CANVAS_MAX_W, CANVAS_MAX_H), SL_OK);
    assert_cell(c, CANVAS_MAX_W - 1, CANVAS_MAX_H - 1, " ", COLOR_DEFAULT, 0);
    assert_int_equal(canvas_resize(c, 2, 3), SL_OK);
    assert_text(c, "  \n  \n  \n");
    canvas_free(c);
}

static void test_clear(void **state)
{
    (void)state;
    struct canvas *c = canvas_of(3, 2, "#");
    canvas_paint(c, 0, 1, 3, COLOR_WARN, CANVAS_REVERSE);
    canvas_clear(c);
    assert_text(c, "   \n   \n");
    assert_attrs(c, "...\n...\n");
    canvas_free(c);
}

/* ---- text ----------------------------------------------------------------------------- */

static void test_text_cells(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(6, 2);
    assert_int_equal(canvas_text(c, 1, 0, "abc", 0, COLOR_GOOD, CANVAS_BOLD), 3);
    assert_cell(c, 0, 0, " ", COLOR_DEFAULT, 0);
    assert_cell(c, 1, 0, "a", COLOR_GOOD, CANVAS_BOLD);
    assert_cell(c, 2, 0, "b", COLOR_GOOD, CANVAS_BOLD);
    assert_cell(c, 3, 0, "c", COLOR_GOOD, CANVAS_BOLD);
    assert_cell(c, 4, 0, " ", COLOR_DEFAULT, 0);
    assert_int_equal(canvas_text(c, 2, 1, "Z", 0, COLOR_DIM, CANVAS_UNDERLINE), 1);
    assert_cell(c, 2, 1, "Z", COLOR_DIM, CANVAS_UNDERLINE);
    assert_text(c, " abc  \n  Z   \n");
    assert_attrs(c, ".GGG..\n..d...\n");
    assert_int_equal(canvas_text(c, 0, 0, "", 0, COLOR_BAD, 0), 0);
    assert_int_equal(canvas_text(c, 0, 0, NULL, 0, COLOR_BAD, 0), 0);
    assert_text(c, " abc  \n  Z   \n");
    canvas_free(c);
}

static void test_text_clips_rows(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(4, 2);
    assert_int_equal(canvas_text(c, 0, -1, "abcd", 0, COLOR_DEFAULT, 0), 0);
    assert_int_equal(canvas_text(c, 0, 2, "abcd", 0, COLOR_DEFAULT, 0), 0);
    assert_int_equal(canvas_text(c, 0, INT_MIN, "abcd", 0, COLOR_DEFAULT, 0), 0);
    assert_int_equal(canvas_text(c, 0, INT_MAX, "abcd", 0, COLOR_DEFAULT, 0), 0);
    assert_text(c, "    \n    \n");
    assert_int_equal(canvas_text(c, 0, 1, "abcd", 0, COLOR_DEFAULT, 0), 4);
    assert_text(c, "    \nabcd\n");
    canvas_free(c);
}

/* canvas_text(x, max_cols) on a blank row of w cells returns want_written and leaves want. */
static void assert_text_call(int w, int x, int max_cols, const char *s, int want_written,
                             const char *want)
{
    struct canvas *c = canvas_new(w, 1);
    assert_int_equal(canvas_text(c, x, 0, s, max_cols, COLOR_DEFAULT, 0), want_written);
    assert_text(c, want);
    canvas_free(c);
}

static void test_text_clips_left(void **state)
{
    (void)state;
    /* clipped, not cut: no "…" on the left */
    assert_text_call(5, -2, 0, "hello", 3, "llo  \n");
    assert_text_call(5, -5, 0, "hello", 0, "     \n");
    assert_text_call(5, INT_MIN, 0, "hello", 0, "     \n");
    /* the field runs from -2 to the edge at 4: seven columns for eight letters */
    assert_text_call(5, -2, 0, "abcdefgh", 5, "cdef…\n");
    /* max_cols counts from x, clipped columns too: a b c … with a and b off the edge */
    assert_text_call(5, -2, 4, "abcdef", 2, "c…   \n");
}

static void test_text_cut_at_right_edge(void **state)
{
    (void)state;
    assert_text_call(5, 0, 0, "hello", 5, "hello\n"); /* fits */
    assert_text_call(5, 0, 0, "hello!", 5, "hell…\n");
    assert_text_call(5, 3, 0, "abc", 2, "   a…\n");
    assert_text_call(5, 3, 0, "ab", 2, "   ab\n");
    assert_text_call(5, 4, 0, "ab", 1, "    …\n");
    assert_text_call(5, 5, 0, "ab", 0, "     \n");
    assert_text_call(5, INT_MAX, 0, "ab", 0, "     \n");
    assert_text_call(5, INT_MAX, INT_MAX, "ab", 0, "     \n");
    /* a max_cols wider than the room left: the edge cuts */
    assert_text_call(5, 1, 10, "abcdef", 4, " abc…\n");
    /* the "…" takes the text's colour */
    struct canvas *c = canvas_new(5, 1);
    assert_int_equal(canvas_text(c, 4, 0, "ab", 0, COLOR_WARN, 0), 1);
    assert_attrs(c, "....y\n");
    canvas_free(c);
}

static void test_text_cut_at_max_cols(void **state)
{
    (void)state;
    assert_text_call(8, 0, 3, "hello", 3, "he…     \n");
    assert_text_call(8, 0, 3, "abc", 3, "abc     \n"); /* exact fit */
    assert_text_call(8, 0, 1, "ab", 1, "…       \n");
    assert_text_call(8, 0, 1, "a", 1, "a       \n");
    assert_text_call(8, 0, 0, "abcdefghij", 8, "abcdefg…\n");
    assert_text_call(8, 0, -1, "abcdefghij", 8, "abcdefg…\n");
    assert_text_call(8, 2, 20, "abcdefghij", 6, "  abcde…\n");
    assert_text_call(8, 2, 3, "éèêë", 3, "  éè…   \n");
}

static void test_text_utf8(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(6, 1);
    /* 2, 3 and 4 bytes, then ASCII: one column each */
    assert_int_equal(canvas_text(c, 0, 0, "é€😀a", 0, COLOR_INFO, 0), 4);
    assert_cell(c, 0, 0, "é", COLOR_INFO, 0);
    assert_cell(c, 1, 0, "€", COLOR_INFO, 0);
    assert_cell(c, 2, 0, "😀", COLOR_INFO, 0);
    assert_cell(c, 3, 0, "a", COLOR_INFO, 0);
    assert_cell(c, 4, 0, " ", COLOR_DEFAULT, 0);
    assert_text(c, "é€😀a  \n");
    assert_attrs(c, "cccc..\n");
    canvas_free(c);
}

struct utf8_case {
    const char *in;
    const char *want;
    int cols;
};

static void test_text_invalid_utf8(void **state)
{
    (void)state;
    static const struct utf8_case cases[] = {
        {"\x80", "?", 1},                            /* stray continuation */
        {"a\xbf!", "a?!", 3},                        /* stray continuation between */
        {"\xc0\xaf", "??", 2},                       /* overlong '/' */
        {"\xc1\xbf", "??", 2},                       /* overlong U+007F */
        {"\xc2\xa0", "\xc2\xa0", 1},                 /* U+00A0, the smallest 2-byte text */
        {"\xe0\x80\xaf", "???", 3},                  /* overlong '/' */
        {"\xe0\x9f\xbf", "???", 3},                  /* overlong U+07FF */
        {"\xe0\xa0\x80", "\xe0\xa0\x80", 1},         /* U+0800 */
        {"\xed\x9f\xbf", "\xed\x9f\xbf", 1},         /* U+D7FF */
        {"\xed\xa0\x80", "???", 3},                  /* surrogate U+D800 */
        {"\xed\xbf\xbf", "???", 3},                  /* surrogate U+DFFF */
        {"\xee\x80\x80", "\xee\x80\x80", 1},         /* U+E000 */
        {"\xef\xbf\xbf", "\xef\xbf\xbf", 1},         /* U+FFFF */
        {"\xf0\x8f\xbf\xbf", "????", 4},             /* overlong U+FFFF */
        {"\xf0\x90\x80\x80", "\xf0\x90\x80\x80", 1}, /* U+10000 */
        {"\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf", 1}, /* U+10FFFF */
        {"\xf4\x90\x80\x80", "????", 4},             /* U+110000 */
        {"\xf5\x80\x80\x80", "????", 4},
        {"\xf8\x88\x80\x80\x80", "?????", 5}, /* 5-byte form */
        {"\xfe\xff", "??", 2},
        {"\xe2\x82x", "??x", 3},       /* truncated € */
        {"x\xe2\x82", "x??", 3},       /* truncated at the end */
        {"\xf0\x9f\x98", "???", 3},    /* truncated 😀 */
        {"\xe2\x82\xac\xac", "€?", 2}, /* one continuation too many */
        {"a\tb\nc", "a?b?c", 5},       /* C0 controls */
        {"\x1b[0m", "?[0m", 4},        /* an escape sequence stays inert */
        {"\x7f", "?", 1},              /* DEL */
        {"\xc2\x80"
         "a\xc2\x9f",
         "?a?", 3}, /* C1 controls: one '?' each */
    };
    struct canvas *c = canvas_new(10, 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        canvas_clear(c);
        assert_int_equal(canvas_text(c, 0, 0, cases[i].in, 0, COLOR_DEFAULT, 0), cases[i].cols);
        assert_row(c, 0, cases[i].want);
    }
    canvas_free(c);
}

/* canvas_text_right(x, width) on a row of 8 "x" returns want_written and leaves want. */
static void assert_right_call(int x, int width, const char *s, int want_written, const char *want)
{
    struct canvas *c = canvas_of(8, 1, "x");
    assert_int_equal(canvas_text_right(c, x, 0, width, s, COLOR_DEFAULT, 0), want_written);
    assert_text(c, want);
    canvas_free(c);
}

static void test_text_right(void **state)
{
    (void)state;
    /* field 1..5: the text ends at 5, the cells before it are left alone */
    assert_right_call(1, 5, "ab", 2, "xxxxabxx\n");
    assert_right_call(0, 4, "abcd", 4, "abcdxxxx\n");
    assert_right_call(0, 4, "abcdef", 4, "abc…xxxx\n");
    assert_right_call(0, 4, "é€", 2, "xxé€xxxx\n"); /* code points, not bytes */
    struct canvas *c = canvas_new(4, 1);
    assert_int_equal(canvas_text_right(c, 0, 0, 4, "ab", COLOR_GOOD, CANVAS_BOLD), 2);
    assert_attrs(c, "..GG\n");
    canvas_free(c);
}

static void test_text_right_clips(void **state)
{
    (void)state;
    assert_right_call(0, 0, "ab", 0, "xxxxxxxx\n");
    assert_right_call(0, -3, "ab", 0, "xxxxxxxx\n");
    assert_right_call(0, 4, NULL, 0, "xxxxxxxx\n");
    assert_right_call(INT_MAX, INT_MAX, "ab", 0, "xxxxxxxx\n");
    assert_right_call(INT_MIN, INT_MAX, "ab", 0, "xxxxxxxx\n");
    /* field 4..9, text at 7..9: the right edge cuts it to one column */
    assert_right_call(4, 6, "abc", 1, "xxxxxxx…\n");
    /* field -3..1, text at -2..1: the left edge clips */
    assert_right_call(-3, 5, "abcd", 2, "cdxxxxxx\n");
    struct canvas *c = canvas_of(8, 1, "x");
    assert_int_equal(canvas_text_right(c, 0, 1, 4, "ab", COLOR_DEFAULT, 0), 0);
    assert_int_equal(canvas_text_right(c, 0, -1, 4, "ab", COLOR_DEFAULT, 0), 0);
    assert_text(c, "xxxxxxxx\n");
    canvas_free(c);
}

static void test_printf(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(10, 1);
    assert_int_equal(canvas_printf(c, 1, 0, 0, COLOR_INFO, CANVAS_BOLD, "%d/%s", 42, "ok"), 5);
    assert_text(c, " 42/ok    \n");
    assert_attrs(c, ".CCCCC....\n");
    canvas_clear(c);
    assert_int_equal(canvas_printf(c, 0, 0, 4, COLOR_DEFAULT, 0, "%s", "abcdef"), 4);
    assert_text(c, "abc…      \n");
    assert_int_equal(canvas_printf(c, 0, 5, 4, COLOR_DEFAULT, 0, "%s", "abcdef"), 0);
    canvas_free(c);
}

/* Output as long as the widest canvas: four-byte characters must not fool the cut. */
static void test_printf_widest(void **state)
{
    (void)state;
    size_t cap = 4 * (CANVAS_MAX_W + 2) + 1;
    char *s = malloc(cap);
    assert_non_null(s);
    s[0] = '\0';
    for (int i = 0; i < CANVAS_MAX_W; i++)
        strcat(s, "😀");
    struct canvas *c = canvas_new(CANVAS_MAX_W, 1);
    assert_int_equal(canvas_printf(c, 0, 0, 0, COLOR_DEFAULT, 0, "%s", s), CANVAS_MAX_W);
    assert_cell(c, CANVAS_MAX_W - 1, 0, "😀", COLOR_DEFAULT, 0);
    strcat(s, "😀");
    assert_int_equal(canvas_printf(c, 0, 0, 0, COLOR_DEFAULT, 0, "%s", s), CANVAS_MAX_W);
    assert_cell(c, CANVAS_MAX_W - 2, 0, "😀", COLOR_DEFAULT, 0);
    assert_cell(c, CANVAS_MAX_W - 1, 0, "…", COLOR_DEFAULT, 0);
    canvas_clear(c);
    assert_int_equal(canvas_printf(c, 0, 0, 0, COLOR_DEFAULT, 0, "%s%0*d", s, 5000, 7),
                     CANVAS_MAX_W);
    assert_cell(c, CANVAS_MAX_W - 1, 0, "…", COLOR_DEFAULT, 0);
    canvas_free(c);
    free(s);
}

/* ---- shapes --------------------------------------------------------------------------- */

static void test_fill(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(5, 3);
    canvas_fill(c, 1, 1, 3, 5, "░", COLOR_DIM, CANVAS_REVERSE);
    assert_text(c, "     \n ░░░ \n ░░░ \n");
    assert_attrs(c, ".....\n.DDD.\n.DDD.\n");
    canvas_fill(c, -2, -2, 4, 3, "#", COLOR_BAD, 0);
    assert_text(c, "##   \n ░░░ \n ░░░ \n");
    canvas_fill(c, 2, 1, 1, 1, " ", COLOR_DEFAULT, 0); /* " " clears */
    assert_cell(c, 2, 1, " ", COLOR_DEFAULT, 0);
    canvas_fill(c, 0, 0, 1, 1, "", COLOR_GOOD, 0);
    assert_cell(c, 0, 0, " ", COLOR_GOOD, 0);
    canvas_fill(c, 0, 0, 1, 1, NULL, COLOR_WARN, 0);
    assert_cell(c, 0, 0, " ", COLOR_WARN, 0);
    canvas_fill(c, 0, 0, 1, 1, "ab", COLOR_DEFAULT, 0); /* the first character only */
    assert_cell(c, 0, 0, "a", COLOR_DEFAULT, 0);
    canvas_fill(c, 0, 0, 1, 1, "\xff", COLOR_DEFAULT, 0);
    assert_cell(c, 0, 0, "?", COLOR_DEFAULT, 0);
    canvas_fill(c, 0, 0, 1, 1, "€x", COLOR_DEFAULT, 0);
    assert_cell(c, 0, 0, "€", COLOR_DEFAULT, 0);
    canvas_free(c);
}

static void test_fill_bounds(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(3, 2);
    canvas_fill(c, 0, 0, 0, 2, "z", COLOR_DEFAULT, 0);
    canvas_fill(c, 0, 0, 3, 0, "z", COLOR_DEFAULT, 0);
    canvas_fill(c, 0, 0, -3, 2, "z", COLOR_DEFAULT, 0);
    canvas_fill(c, 3, 0, 5, 2, "z", COLOR_DEFAULT, 0);
    canvas_fill(c, 0, 2, 3, 5, "z", COLOR_DEFAULT, 0);
    canvas_fill(c, -4, 0, 4, 2, "z", COLOR_DEFAULT, 0);
    canvas_fill(c, INT_MAX, INT_MAX, INT_MAX, INT_MAX, "z", COLOR_DEFAULT, 0);
    canvas_fill(c, INT_MIN, INT_MIN, INT_MAX, INT_MAX, "z", COLOR_DEFAULT, 0);
    assert_text(c, "   \n   \n");
    canvas_fill(c, -5, 1, INT_MAX, INT_MAX, "z", COLOR_DEFAULT, 0);
    assert_text(c, "   \nzzz\n");
    canvas_fill(c, 2, INT_MIN, 1, INT_MAX, "y", COLOR_DEFAULT, 0); /* ends at row -2 */
    assert_text(c, "   \nzzz\n");
    canvas_free(c);
}

static void test_paint_keeps_characters(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(5, 2);
    canvas_text(c, 0, 0, "abc", 0, COLOR_GOOD, CANVAS_UNDERLINE);
    canvas_paint(c, 1, 0, 10, COLOR_ACCENT, CANVAS_BOLD | CANVAS_UNDERLINE);
    assert_text(c, "abc  \n     \n");
    assert_attrs(c, "gMMMM\n.....\n");
    assert_cell(c, 0, 0, "a", COLOR_GOOD, CANVAS_UNDERLINE);
    assert_cell(c, 1, 0, "b", COLOR_ACCENT, CANVAS_BOLD | CANVAS_UNDERLINE);
    assert_cell(c, 4, 0, " ", COLOR_ACCENT, CANVAS_BOLD | CANVAS_UNDERLINE);
    canvas_paint(c, -1, 0, 2, COLOR_BAD, 0);
    assert_attrs(c, "rMMMM\n.....\n");
    canvas_paint(c, 0, 2, 5, COLOR_BAD, 0);
    canvas_paint(c, 0, -1, 5, COLOR_BAD, 0);
    canvas_paint(c, 5, 1, 5, COLOR_BAD, 0);
    canvas_paint(c, 0, 1, 0, COLOR_BAD, 0);
    canvas_paint(c, INT_MAX, 1, INT_MAX, COLOR_BAD, 0);
    assert_attrs(c, "rMMMM\n.....\n");
    canvas_paint(c, INT_MIN, 1, INT_MAX, COLOR_BAD, 0); /* ends at -2 */
    assert_attrs(c, "rMMMM\n.....\n");
    canvas_paint(c, -2, 1, INT_MAX, COLOR_INFO, CANVAS_REVERSE);
    assert_attrs(c, "rMMMM\nCCCCC\n");
    assert_text(c, "abc  \n     \n");
    canvas_free(c);
}

static void test_box(void **state)
{
    (void)state;
    struct canvas *c = canvas_of(8, 4, "x");
    canvas_box(c, 0, 0, 8, 4, "ab", COLOR_INFO);
    assert_text(c, "┌─ ab ─┐\n"
                   "│xxxxxx│\n"
                   "│xxxxxx│\n"
                   "└──────┘\n");
    assert_attrs(c, "cccccccc\n"
                    "c......c\n"
                    "c......c\n"
                    "cccccccc\n");
    assert_cell(c, 3, 0, "a", COLOR_INFO, 0);
    canvas_free(c);

    c = canvas_of(6, 4, "x");
    canvas_box(c, 1, 1, 4, 2, NULL, COLOR_DEFAULT);
    assert_text(c, "xxxxxx\n"
                   "x┌──┐x\n"
                   "x└──┘x\n"
                   "xxxxxx\n");
    canvas_box(c, 0, 0, 2, 2, "", COLOR_DEFAULT);
    assert_text(c, "┌┐xxxx\n"
                   "└┘──┐x\n"
                   "x└──┘x\n"
                   "xxxxxx\n");
    canvas_free(c);
}

/* The top edge of a box of width w titled title, as drawn on a canvas of width w. */
static void assert_box_top(int w, const char *title, const char *want)
{
    struct canvas *c = canvas_new(w, 2);
    canvas_box(c, 0, 0, w, 2, title, COLOR_DEFAULT);
    assert_row(c, 0, want);
    canvas_free(c);
}

static void test_box_title_cut(void **state)
{
    (void)state;
    assert_box_top(9, "abc", "┌─ abc ─┐");
    assert_box_top(8, "abc", "┌─ a… ─┐");
    assert_box_top(8, "abcdef", "┌─ a… ─┐");
    assert_box_top(7, "a", "┌─ a ─┐");
    assert_box_top(7, "abc", "┌─ … ─┐");
    assert_box_top(6, "a", "┌────┐");
    assert_box_top(10, "é", "┌─ é ────┐");
    assert_box_top(10, "", "┌────────┐");
}

static void test_box_too_small(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(4, 3);
    canvas_box(c, 0, 0, 1, 3, "t", COLOR_DEFAULT);
    canvas_box(c, 0, 0, 4, 1, "t", COLOR_DEFAULT);
    canvas_box(c, 0, 0, 0, 0, "t", COLOR_DEFAULT);
    canvas_box(c, 0, 0, -4, -3, "t", COLOR_DEFAULT);
    assert_text(c, "    \n    \n    \n");
    canvas_free(c);
}

static void test_box_clips(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(4, 3);
    canvas_box(c, -1, -1, 4, 3, "t", COLOR_DEFAULT); /* columns -1..2, rows -1..1 */
    assert_text(c, "  │ \n"
                   "──┘ \n"
                   "    \n");
    canvas_free(c);

    c = canvas_new(6, 2);
    canvas_box(c, 2, 0, 9, 3, "abc", COLOR_DEFAULT); /* the title is clipped, not cut */
    assert_text(c, "  ┌─ a\n"
                   "  │   \n");
    canvas_free(c);

    c = canvas_new(10, 3);
    canvas_box(c, 0, 0, INT_MAX, INT_MAX, "title", COLOR_DEFAULT);
    assert_text(c, "┌─ title ─\n"
                   "│         \n"
                   "│         \n");
    canvas_box(c, INT_MAX, INT_MAX, INT_MAX, INT_MAX, "title", COLOR_BAD);
    canvas_box(c, INT_MIN, INT_MIN, INT_MAX, INT_MAX, "title", COLOR_BAD);
    assert_attrs(c, "..........\n..........\n..........\n");
    canvas_free(c);
}

/* The sparkline of values (n of them) in width columns at x on a 10-wide row of "x". */
static void assert_spark(int x, int width, const double *values, int n, int want_written,
                         const char *want)
{
    struct canvas *c = canvas_of(10, 1, "x");
    assert_int_equal(canvas_sparkline(c, x, 0, width, values, n, COLOR_GOOD), want_written);
    char *got = canvas_to_text(c);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    canvas_free(c);
}

static void test_sparkline_levels(void **state)
{
    (void)state;
    static const double ramp[] = {0, 1, 2, 3, 4, 5, 6, 7};
    assert_spark(0, 8, ramp, 8, 8, "▁▂▃▄▅▆▇█xx\n");
    static const double scaled[] = {0, 10, 20, 30, 40, 50, 60, 70};
    assert_spark(1, 8, scaled, 8, 8, "x▁▂▃▄▅▆▇█x\n");
    static const double thirds[] = {1, 3};
    assert_spark(0, 2, thirds, 2, 2, "▃█xxxxxxxx\n"); /* 7 / 3 = 2.33 -> 2 */
    static const double halves[] = {1, 2};
    assert_spark(0, 2, halves, 2, 2, "▅█xxxxxxxx\n"); /* 3.5 -> 4 */
    static const double zeros[] = {0, 0, 0};
    assert_spark(0, 3, zeros, 3, 3, "▁▁▁xxxxxxx\n");
    static const double tiny[] = {0.001, 1000};
    assert_spark(0, 2, tiny, 2, 2, "▁█xxxxxxxx\n");
    static const double huge[] = {1e308, 1.7e308};
    assert_spark(0, 2, huge, 2, 2, "▅█xxxxxxxx\n"); /* no overflow in the scaling */
}

static void test_sparkline_gaps_and_alignment(void **state)
{
    (void)state;
    static const double gaps[] = {NAN, -1, 2, INFINITY, 1};
    assert_spark(0, 5, gaps, 5, 5, "  █ ▅xxxxx\n");
    static const double negatives[] = {-1, -2};
    assert_spark(0, 2, negatives, 2, 2, "  xxxxxxxx\n");
    static const double two[] = {1, 2};
    assert_spark(0, 5, two, 2, 5, "   ▅█xxxxx\n"); /* right-aligned after spaces */
    assert_spark(2, 3, two, 0, 3, "xx   xxxxx\n");
    assert_spark(2, 3, NULL, 4, 3, "xx   xxxxx\n");
    static const double many[] = {100, 1, 2};
    assert_spark(0, 2, many, 3, 2, "▅█xxxxxxxx\n"); /* the last two, scaled to them */
    struct canvas *c = canvas_new(4, 1);
    assert_int_equal(canvas_sparkline(c, 0, 0, 4, two, 2, COLOR_WARN), 4);
    assert_attrs(c, "yyyy\n");
    canvas_free(c);
}

static void test_sparkline_clips(void **state)
{
    (void)state;
    static const double v[] = {0, 7, 7, 0};
    assert_spark(-2, 4, v, 4, 2, "█▁xxxxxxxx\n");
    static const double w[] = {0, 1, 2, 7};
    assert_spark(8, 4, w, 4, 2, "xxxxxxxx▁▂\n"); /* scaled to 7, drawn or not */
    assert_spark(10, 4, w, 4, 0, "xxxxxxxxxx\n");
    assert_spark(0, 0, w, 4, 0, "xxxxxxxxxx\n");
    assert_spark(0, -1, w, 4, 0, "xxxxxxxxxx\n");
    assert_spark(INT_MIN, INT_MAX, w, 4, 0, "xxxxxxxxxx\n");
    assert_spark(INT_MAX, INT_MAX, w, 4, 0, "xxxxxxxxxx\n");
    assert_spark(-5, INT_MAX, w, 4, 10, "          \n"); /* the values are far right */
    struct canvas *c = canvas_of(3, 1, "x");
    assert_int_equal(canvas_sparkline(c, 0, 1, 3, v, 4, COLOR_DEFAULT), 0);
    assert_int_equal(canvas_sparkline(c, 0, -1, 3, v, 4, COLOR_DEFAULT), 0);
    assert_text(c, "xxx\n");
    canvas_free(c);
}

/* The bar of width at x filled to fraction on a 10-wide row of "x". */
static void assert_bar(int x, int width, double fraction, int want_written, const char *want)
{
    struct canvas *c = canvas_of(10, 1, "x");
    assert_int_equal(canvas_bar(c, x, 0, width, fraction, COLOR_BAD), want_written);
    char *got = canvas_to_text(c);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    canvas_free(c);
}

static void test_bar_rounding(void **state)
{
    (void)state;
    assert_bar(0, 10, 0.25, 10, "███░░░░░░░\n"); /* 2.5 rounds up */
    assert_bar(0, 10, 0.24, 10, "██░░░░░░░░\n"); /* 2.4 rounds down */
    assert_bar(0, 10, 0.26, 10, "███░░░░░░░\n");
    assert_bar(0, 3, 0.5, 3, "██░xxxxxxx\n");   /* 1.5 */
    assert_bar(0, 4, 0.125, 4, "█░░░xxxxxx\n"); /* 0.5 */
    assert_bar(0, 4, 0.12, 4, "░░░░xxxxxx\n");  /* 0.48 */
    assert_bar(0, 4, 0.99, 4, "████xxxxxx\n");  /* 3.96 */
    assert_bar(0, 4, 0.8, 4, "███░xxxxxx\n");   /* 3.2 */
    assert_bar(2, 5, 0.0, 5, "xx░░░░░xxx\n");
    assert_bar(2, 5, 1.0, 5, "xx█████xxx\n");
}

static void test_bar_clamps_and_clips(void **state)
{
    (void)state;
    assert_bar(0, 4, -0.5, 4, "░░░░xxxxxx\n");
    assert_bar(0, 4, 1.5, 4, "████xxxxxx\n");
    assert_bar(0, 4, NAN, 4, "░░░░xxxxxx\n");
    assert_bar(0, 4, INFINITY, 4, "████xxxxxx\n");
    assert_bar(0, 4, -INFINITY, 4, "░░░░xxxxxx\n");
    assert_bar(0, 0, 0.5, 0, "xxxxxxxxxx\n");
    assert_bar(0, -4, 0.5, 0, "xxxxxxxxxx\n");
    assert_bar(-2, 4, 0.5, 2, "░░xxxxxxxx\n"); /* the filled half is off the edge */
    assert_bar(8, 4, 0.75, 2, "xxxxxxxx██\n");
    assert_bar(10, 4, 1.0, 0, "xxxxxxxxxx\n");
    assert_bar(INT_MIN, INT_MAX, 1.0, 0, "xxxxxxxxxx\n");
    assert_bar(-5, INT_MAX, 1.0, 10, "██████████\n");
    assert_bar(-5, INT_MAX, 0.0, 10, "░░░░░░░░░░\n");
    struct canvas *c = canvas_new(3, 1);
    assert_int_equal(canvas_bar(c, 0, 1, 3, 1.0, COLOR_DEFAULT), 0);
    assert_int_equal(canvas_bar(c, 0, -1, 3, 1.0, COLOR_DEFAULT), 0);
    assert_int_equal(canvas_bar(c, 0, 0, 3, 1.0, COLOR_DIM), 3);
    assert_attrs(c, "ddd\n");
    canvas_free(c);
}

/* ---- comparing and rendering ---------------------------------------------------------- */

static void test_row_equal(void **state)
{
    (void)state;
    struct canvas *a = canvas_new(5, 2), *b = canvas_new(5, 2), *wide = canvas_new(6, 2);
    struct canvas *tall = canvas_new(5, 3);
    assert_true(canvas_row_equal(a, b, 0));
    assert_true(canvas_row_equal(a, b, 1));
    assert_true(canvas_row_equal(a, tall, 1));
    assert_false(canvas_row_equal(a, tall, 2)); /* outside a */
    assert_false(canvas_row_equal(a, b, -1));
    assert_false(canvas_row_equal(a, b, 2));
    assert_false(canvas_row_equal(a, wide, 0)); /* widths differ */
    canvas_text(a, 4, 0, "é", 0, COLOR_DEFAULT, 0);
    assert_false(canvas_row_equal(a, b, 0));
    assert_true(canvas_row_equal(a, b, 1));
    canvas_text(b, 4, 0, "e", 0, COLOR_DEFAULT, 0);
    assert_false(canvas_row_equal(a, b, 0));
    canvas_text(b, 4, 0, "é", 0, COLOR_DEFAULT, 0);
    assert_true(canvas_row_equal(a, b, 0));
    canvas_paint(b, 0, 0, 1, COLOR_GOOD, 0);
    assert_false(canvas_row_equal(a, b, 0)); /* colour only */
    canvas_paint(b, 0, 0, 1, COLOR_DEFAULT, CANVAS_UNDERLINE);
    assert_false(canvas_row_equal(a, b, 0)); /* attributes only */
    canvas_paint(b, 0, 0, 1, COLOR_DEFAULT, 0);
    assert_true(canvas_row_equal(a, b, 0));
    canvas_free(a);
    canvas_free(b);
    canvas_free(wide);
    canvas_free(tall);
}

static void test_copy(void **state)
{
    (void)state;
    struct canvas *src = canvas_new(4, 2), *dst = canvas_of(4, 2, "x");
    struct canvas *other = canvas_of(4, 3, "y");
    canvas_text(src, 0, 1, "ab€", 0, COLOR_ACCENT, CANVAS_REVERSE);
    assert_false(canvas_row_equal(dst, src, 1));
    assert_int_equal(canvas_copy(dst, src), SL_OK);
    assert_true(canvas_row_equal(dst, src, 0));
    assert_true(canvas_row_equal(dst, src, 1));
    assert_text(dst, "    \nab€ \n");
    assert_attrs(dst, "....\nMMM.\n");
    assert_int_equal(canvas_copy(other, src), SL_EINVAL); /* heights differ */
    assert_int_equal(canvas_copy(src, other), SL_EINVAL);
    assert_text(other, "yyyy\nyyyy\nyyyy\n");
    assert_int_equal(canvas_resize(other, 5, 2), SL_OK);
    assert_int_equal(canvas_copy(other, src), SL_EINVAL); /* widths differ */
    assert_text(src, "    \nab€ \n");
    canvas_free(src);
    canvas_free(dst);
    canvas_free(other);
}

static void test_to_text(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(3, 3);
    canvas_text(c, 0, 0, "é", 0, COLOR_DEFAULT, 0);
    canvas_text(c, 2, 1, "z", 0, COLOR_DEFAULT, 0);
    canvas_text(c, 0, 2, "😀…█", 0, COLOR_DEFAULT, 0);
    char *text = canvas_to_text(c);
    assert_non_null(text);
    assert_string_equal(text, "é  \n  z\n😀…█\n");
    assert_int_equal(strlen(text), 2 + 2 + 1 + 3 + 1 + 4 + 3 + 3 + 1);
    free(text);
    canvas_free(c);
}

static void test_attrs_to_text(void **state)
{
    (void)state;
    struct canvas *c = canvas_new(8, 2);
    canvas_text(c, 0, 0, "abcdefgh", 0, COLOR_DEFAULT, 0);
    for (int color = 0; color < COLOR_COUNT; color++)
        canvas_paint(c, color, 0, 1, (uint8_t)color, CANVAS_UNDERLINE);
    canvas_paint(c, 7, 0, 1, 99, 0);
    canvas_paint(c, 0, 1, 1, COLOR_DEFAULT, CANVAS_BOLD);
    canvas_paint(c, 1, 1, 1, COLOR_GOOD, CANVAS_REVERSE);
    canvas_paint(c, 2, 1, 1, COLOR_WARN, CANVAS_BOLD);
    canvas_paint(c, 3, 1, 1, COLOR_BAD, CANVAS_BOLD | CANVAS_REVERSE);
    canvas_paint(c, 4, 1, 1, COLOR_INFO, CANVAS_BOLD | CANVAS_UNDERLINE);
    canvas_paint(c, 5, 1, 1, COLOR_DIM, CANVAS_REVERSE);
    canvas_paint(c, 6, 1, 1, COLOR_ACCENT, CANVAS_BOLD);
    canvas_paint(c, 7, 1, 1, COLOR_DEFAULT, CANVAS_UNDERLINE);
    assert_attrs(c, ".gyrcdm?\n"
                    "#GYRCDM.\n");
    assert_text(c, "abcdefgh\n        \n");
    canvas_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_is_blank),
        cmocka_unit_test(test_new_bounds),
        cmocka_unit_test(test_cell_outside_is_null),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_text_cells),
        cmocka_unit_test(test_text_clips_rows),
        cmocka_unit_test(test_text_clips_left),
        cmocka_unit_test(test_text_cut_at_right_edge),
        cmocka_unit_test(test_text_cut_at_max_cols),
        cmocka_unit_test(test_text_utf8),
        cmocka_unit_test(test_text_invalid_utf8),
        cmocka_unit_test(test_text_right),
        cmocka_unit_test(test_text_right_clips),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_printf_widest),
        cmocka_unit_test(test_fill),
        cmocka_unit_test(test_fill_bounds),
        cmocka_unit_test(test_paint_keeps_characters),
        cmocka_unit_test(test_box),
        cmocka_unit_test(test_box_title_cut),
        cmocka_unit_test(test_box_too_small),
        cmocka_unit_test(test_box_clips),
        cmocka_unit_test(test_sparkline_levels),
        cmocka_unit_test(test_sparkline_gaps_and_alignment),
        cmocka_unit_test(test_sparkline_clips),
        cmocka_unit_test(test_bar_rounding),
        cmocka_unit_test(test_bar_clamps_and_clips),
        cmocka_unit_test(test_row_equal),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_to_text),
        cmocka_unit_test(test_attrs_to_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
