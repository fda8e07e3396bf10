#include "flags.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define FLAGS_MAX 64

/* Which table entries were set on the command line (so the environment does not
 * override them). Programs parse flags once, at start-up, on one thread. */
static const struct flag *given_table;
static bool given[FLAGS_MAX];

static void flag_env_name(const struct flag *f, char *out, size_t cap)
{
    if (f->env) {
        snprintf(out, cap, "%s", f->env);
        return;
    }
    size_t n = (size_t)snprintf(out, cap, "SLUICE_");
    for (const char *p = f->name; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

static int flag_set(const struct flag *f, const char *value, const char *source,
                    char err[FLAGS_ERR_MAX])
{
    switch (f->type) {
    case FLAG_STRING:
        *(const char **)f->dest = value;
        return SL_OK;
    case FLAG_BOOL: {
        bool on = strcmp(value, "1") == 0 || strcmp(value, "true") == 0 ||
                  strcmp(value, "yes") == 0;
        bool off = strcmp(value, "0") == 0 || strcmp(value, "false") == 0 ||
                   strcmp(value, "no") == 0 || value[0] == '\0';
        if (!on && !off) {
            snprintf(err, FLAGS_ERR_MAX, "%s: expected 1/0, true/false or yes/no, got '%s'",
                     source, value);
            return SL_EINVAL;
        }
        *(bool *)f->dest = on;
        return SL_OK;
    }
    case FLAG_UINT: {
        char *end;
        errno = 0;
        unsigned long v = strtoul(value, &end, 10);
        if (!isdigit((unsigned char)value[0]) || *end || errno || v < f->min || v > f->max) {
            snprintf(err, FLAGS_ERR_MAX, "%s: expected an integer from %lu to %lu, got '%s'",
                     source, f->min, f->max, value);
            return SL_EINVAL;
        }
        *(unsigned long *)f->dest = v;
        return SL_OK;
    }
    }
    return SL_EINVAL;
}

static int flag_find(const struct flag *table, const char *name, size_t len)
{
    for (int i = 0; table[i].name && i < FLAGS_MAX; i++)
        if (strlen(table[i].name) == len && strncmp(table[i].name, name, len) == 0)
            return i;
    return -1;
}

int flags_parse(const struct flag *table, int argc, char **argv, int *first_positional,
                char err[FLAGS_ERR_MAX])
{
    given_table = table;
    memset(given, 0, sizeof(given));
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strncmp(a, "--", 2) != 0)
            break;
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int k = flag_find(table, name, len);
        if (k < 0) {
            snprintf(err, FLAGS_ERR_MAX, "unknown option '--%.*s' (see --help)", (int)len, name);
            return SL_EINVAL;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (table[k].type == FLAG_BOOL && !value)
            value = "1";
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, FLAGS_ERR_MAX, "--%s needs a value (%s)", table[k].name,
                         table[k].metavar ? table[k].metavar : "VALUE");
                return SL_EINVAL;
            }
            value = argv[++i];
        }
        char source[80];
        snprintf(source, sizeof(source), "--%s", table[k].name);
        int rc = flag_set(&table[k], value, source, err);
        if (rc)
            return rc;
        given[k] = true;
    }
    *first_positional = i;
    return SL_OK;
}

int flags_apply_env(const struct flag *table, char err[FLAGS_ERR_MAX])
{
    for (int i = 0; table[i].name && i < FLAGS_MAX; i++) {
        if (given_table == table && given[i])
            continue;
        if (table[i].env && table[i].env[0] == '\0')
            continue;
        char env[96];
        flag_env_name(&table[i], env, sizeof(env));
        const char *v = getenv(env);
        if (!v)
            continue;
        int rc = flag_set(&table[i], v, env, err);
        if (rc)
            return rc;
    }
    return SL_OK;
}

bool flags_wants(int argc, char **argv, const char *word)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], word) == 0)
            return true;
    }
    return false;
}

void flags_usage(FILE *out, const char *usage, const struct flag *table)
{
    fprintf(out, "%s\n\nOptions (each also from the environment variable shown):\n", usage);
    for (int i = 0; table[i].name && i < FLAGS_MAX; i++) {
        char left[64], env[96] = "";
        snprintf(left, sizeof(left), "--%s%s%s", table[i].name, table[i].metavar ? " " : "",
                 table[i].metavar ? table[i].metavar : "");
        if (!table[i].env || table[i].env[0])
            flag_env_name(&table[i], env, sizeof(env));
        fprintf(out, "  %-28s %s%s%s%s\n", left, table[i].help, env[0] ? " [" : "", env,
                env[0] ? "]" : "");
    }
    fprintf(out, "  %-28s %s\n  %-28s %s\n", "--help", "show this help and exit", "--version",
            "show the version and exit");
}

int flags_split_hostport(const char *s, char *host, size_t host_cap, uint16_t *port)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return SL_EINVAL;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return SL_EINVAL;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= host_cap)
        return SL_EINVAL;
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (!isdigit((unsigned char)colon[1]) || *end || errno || p > 65535)
        return SL_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return SL_OK;
}
