/*
 * tui_keys — the key codes the model understands: printable characters as themselves, and
 * ncurses' codes for the special keys (term_curses.c checks that they agree), so the model
 * and its tests need no curses header.
 */
#ifndef TUI_TUI_KEYS_H
#define TUI_TUI_KEYS_H

#define TK_DOWN      0402
#define TK_UP        0403
#define TK_HOME      0406
#define TK_BACKSPACE 0407
#define TK_F(n)      (0410 + (n))
#define TK_NPAGE     0522
#define TK_PPAGE     0523
#define TK_ENTER     0527
#define TK_BTAB      0541
#define TK_END       0550
#define TK_RESIZE    0632
#define TK_ESC       27
#define TK_TAB       9

#endif
