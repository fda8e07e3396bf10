#include "err.h"

#include <stddef.h>

struct err_entry {
    int code;
    const char *name;
    const char *msg;
};

static const struct err_entry err_table[] = {
#define SL_ERR_ROW(name, msg) {SL_E##name, "SL_E" #name, msg},
    SL_ERR_MAP(SL_ERR_ROW)
#undef SL_ERR_ROW
};

static const struct err_entry *err_find(int err)
{
    for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
        if (err_table[i].code == err)
            return &err_table[i];
    return NULL;
}

const char *err_str(int err)
{
    if (err == SL_OK)
        return "ok";
    const struct err_entry *e = err_find(err);
    return e ? e->msg : "unknown error";
}

const char *err_name(int err)
{
    if (err == SL_OK)
        return "SL_OK";
    const struct err_entry *e = err_find(err);
    return e ? e->name : "SL_E?";
}
