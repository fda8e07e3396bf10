/*
 * view — draws the model into a canvas (pure; see view.c).
 */
#ifndef TUI_VIEW_H
#define TUI_VIEW_H

#include "canvas.h"
#include "model.h"

void view_draw(const struct model *m, struct canvas *c);
/* The faults menu's labels (model.c holds the table). */
int model_fault_items(const char **labels, int cap);

#endif
