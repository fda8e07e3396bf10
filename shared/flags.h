/*
 * flags — table-driven command-line options with environment fallbacks (DESIGN §4.0).
 *
 * Every program describes its options as an array of struct flag. For an option
 * "--redis-replica" the environment variable is SLUICE_REDIS_REPLICA unless the table
 * names another; a flag on the command line wins over the environment. Values are checked
 * here (integers in range), so a bad value is reported as "--threads: expected an integer
 * from 1 to 256, got 'x'" before the program does anything.
 * String values point into argv or environ: they live as long as the process.
 */
#ifndef SLUICE_FLAGS_H
#define SLUICE_FLAGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define FLAGS_ERR_MAX 256

enum flag_type {
    FLAG_STRING, /* const char ** */
    FLAG_UINT,   /* unsigned long * with min/max */
    FLAG_BOOL,   /* bool *; takes no value; env "1"/"true"/"yes" */
};

struct flag {
    const char *name;    /* without "--" */
    enum flag_type type;
    void *dest;
    const char *metavar; /* "HOST:PORT" in the help text */
    const char *help;
    unsigned long min, max; /* FLAG_UINT only */
    const char *env;     /* NULL: SLUICE_<NAME> derived from name; "" for none */
};

/* Parses options until the first positional argument or "--". Sets *first_positional to
 * its index (argc when none). Returns 0, or SL_EINVAL with a message naming the option.
 * "--help" and "--version" are not handled here: check flags_wants() first. */
int flags_parse(const struct flag *table, int argc, char **argv, int *first_positional,
                char err[FLAGS_ERR_MAX]);
/* Applies environment values for options not given on the command line. Call after
 * flags_parse (it remembers what was given). */
int flags_apply_env(const struct flag *table, char err[FLAGS_ERR_MAX]);
/* true when argv contains the exact word (before any "--"), e.g. "--help". */
bool flags_wants(int argc, char **argv, const char *word);
/* Usage text: the usage line, then one line per option with its env variable. */
void flags_usage(FILE *out, const char *usage, const struct flag *table);

/* "HOST:PORT" / "[v6]:PORT" → host and port. Returns 0 or SL_EINVAL. */
int flags_split_hostport(const char *s, char *host, size_t host_cap, uint16_t *port);

#endif
