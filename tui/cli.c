/*
 * cli — `sluice SUB-COMMAND`: one request to sluice-server per sub-command (cli.h).
 *
 * argv → (the command table) → options and positionals (flags.h tables, options anywhere
 * after the sub-command) → one handler → client_call → a table on stdout, or the server's
 * document on one line with -o json; errors on stderr with a hint. Sub-commands are rows of
 * `commands`; a command with verbs (limits, faults, drills) has a row per verb.
 */
#include "cli.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "client.h"
#include "clock.h"
#include "err.h"
#include "flags.h"
#include "json.h"

#define CLI_ARGV_MAX   64           /* words after the sub-command; more is a usage error */
#define CLI_FLAGS_MAX  24           /* f_global and a command's own options */
#define CLI_ARGS_MAX   4            /* positional arguments of one sub-command */
#define CLI_INPUT_MAX  (256 * 1024) /* a JSON document from --file or stdin (the server's cap) */
#define CLI_PATH_MAX   1024         /* a request path with its query */
#define CLI_POLL_MS    250          /* drain --wait: between two looks at the replica */
#define TABLE_COLS_MAX 14
#define TABLE_ROWS_MAX 5000      /* more rows are counted in a last line, not printed */
#define CELL_MAX       200       /* bytes of one cell; a longer value is cut */
#define SPAN_DEPTH_MAX 32        /* traces TRACE_ID: deeper spans are not indented more */
#define UNSET          ULONG_MAX /* a FLAG_UINT option that was not given */

/* ---- options: one static set, filled by the command's flag table ---------------------- */

static struct opts {
    const char *server, *token, *output, *file, *path_prefix, *route, *status, *service;
    unsigned long timeout_ms, if_match, version, timeout_s, wait_s, delay_ms, abort_status, percent,
        ttl_s, min_ms, limit;
    bool wait;
} opt;

static void opts_reset(void)
{
    memset(&opt, 0, sizeof(opt));
    opt.timeout_ms = opt.if_match = opt.version = opt.timeout_s = opt.delay_ms = UNSET;
    opt.abort_status = opt.percent = opt.ttl_s = opt.min_ms = opt.limit = UNSET;
    opt.wait_s = 60;
}

/* Every command's options; a command's own table (below) adds to them. */
static const struct flag f_global[] = {
    {"server", FLAG_STRING, &opt.server, "URL", "sluice-server (default http://127.0.0.1:7700)", 0,
     0, "SLUICE_SERVER"},
    {"token", FLAG_STRING, &opt.token, "TOKEN", "an API key (sk_...) or a JWT", 0, 0,
     "SLUICE_TOKEN"},
    {"output", FLAG_STRING, &opt.output, "table|json",
     "-o: a table for people (default) or the server's JSON on one line", 0, 0, ""},
    {"timeout-ms", FLAG_UINT, &opt.timeout_ms, "N",
     "give up on a request after N ms (default 5000)", 100, 600000, ""},
    {0},
};
static const struct flag f_none[] = {{0}};
static const struct flag f_limit_set[] = {
    {"file", FLAG_STRING, &opt.file, "FILE", "the policy JSON (default: stdin)", 0, 0, ""},
    {"if-match", FLAG_UINT, &opt.if_match, "N",
     "only if the limit is still at version N (else 412)", 0, 1000000000UL, ""},
    {0},
};
static const struct flag f_limit_delete[] = {
    {"if-match", FLAG_UINT, &opt.if_match, "N",
     "only if the limit is still at version N (else 412)", 0, 1000000000UL, ""},
    {0},
};
static const struct flag f_rollback[] = {
    {"version", FLAG_UINT, &opt.version, "N",
     "the version to restore (default: the one before the current)", 1, 1000000000UL, ""},
    {0},
};
static const struct flag f_drain[] = {
    {"timeout-s", FLAG_UINT, &opt.timeout_s, "N", "drained at the latest after N s (agent: 30)", 1,
     3600, ""},
    {"wait", FLAG_BOOL, &opt.wait, NULL, "wait until the replica is drained, printing progress", 0,
     0, ""},
    {"wait-s", FLAG_UINT, &opt.wait_s, "N", "with --wait: give up after N s (default 60, exit 1)",
     1, 86400, ""},
    {0},
};
static const struct flag f_faults_set[] = {
    {"file", FLAG_STRING, &opt.file, "FILE", "{\"faults\":[...]} (default: stdin)", 0, 0, ""},
    {"delay-ms", FLAG_UINT, &opt.delay_ms, "N", "shorthand: delay requests by N ms", 0, 60000, ""},
    {"abort", FLAG_UINT, &opt.abort_status, "STATUS", "shorthand: answer STATUS (400-599)", 400,
     599, ""},
    {"percent", FLAG_UINT, &opt.percent, "P", "shorthand: of P% of requests (default 100)", 0, 100,
     ""},
    {"path-prefix", FLAG_STRING, &opt.path_prefix, "PREFIX", "shorthand: only paths starting so", 0,
     0, ""},
    {"ttl-s", FLAG_UINT, &opt.ttl_s, "S", "shorthand: the faults revert after S s (required)", 1,
     3600, ""},
    {0},
};
static const struct flag f_traces[] = {
    {"route", FLAG_STRING, &opt.route, "ROUTE", "only traces through this route", 0, 0, ""},
    {"status", FLAG_STRING, &opt.status, "S", "only this status: 404, 5xx or error", 0, 0, ""},
    {"service", FLAG_STRING, &opt.service, "NAME", "only traces through this service", 0, 0, ""},
    {"min-ms", FLAG_UINT, &opt.min_ms, "N", "only traces lasting N ms or more", 0, 3600000, ""},
    {"limit", FLAG_UINT, &opt.limit, "N", "at most N traces (default 50)", 1, 500, ""},
    {0},
};

/* ---- the command table ------------------------------------------------------------------ */

struct command;

struct cli {
    const struct command *cmd;
    char label[40]; /* "limits set": how errors begin */
    struct client client;
    bool json;
    int nargs;
    const char *args[CLI_ARGS_MAX];
};

struct command {
    const char *name;
    const char *verb; /* NULL: the command has no verbs */
    int (*run)(struct cli *cli);
    int min_args, max_args;
    const char *args;         /* the positionals in the usage line */
    const char *help;         /* one line */
    const struct flag *flags; /* its own options, besides f_global */
    const char *not_found;    /* the second line of a 404: where to look */
};

/* ---- small helpers ------------------------------------------------------------------------ */

static void fail(const struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "sluice limits set: <message>" on stderr. */
static void fail(const struct cli *cli, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "sluice %s: ", cli->label);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void print_json_line(FILE *out, const json_t *doc)
{
    char *s = json_dump_compact(doc);
    if (s)
        fprintf(out, "%s\n", s);
    free(s);
}

/* A path segment, percent-encoded (RFC 3986 §2.3: unreserved characters stay). */
static void append_encoded(struct buf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            buf_append(b, p, 1);
        else
            buf_appendf(b, "%%%02X", *p);
    }
}

/* prefix + encoded(name) + suffix, e.g. "/v1/limits/" "a b" "/history". */
static void path_of(struct buf *b, const char *prefix, const char *name, const char *suffix)
{
    buf_init(b, CLI_PATH_MAX);
    buf_append_str(b, prefix);
    if (name)
        append_encoded(b, name);
    if (suffix)
        buf_append_str(b, suffix);
}

static const char *arg(const struct cli *cli, int i)
{
    return i < cli->nargs ? cli->args[i] : NULL;
}

/* ---- formatting values ------------------------------------------------------------------ */

enum vfmt {
    V_PLAIN, /* as it is: integers whole, reals with sensible decimals */
    V_RATE,  /* per second, one decimal */
    V_MS,    /* milliseconds: two decimals below 10, one below 1000, none above */
    V_PCT,   /* a ratio shown as a percentage, up to three decimals */
};

/* "%.3f" without trailing zeros: 99.900 → "99.9", 100.000 → "100". */
static void fmt_trimmed(double x, char *out, size_t cap)
{
    snprintf(out, cap, "%.3f", x);
    char *dot = strchr(out, '.');
    if (!dot)
        return;
    char *end = out + strlen(out);
    while (end > dot + 1 && end[-1] == '0')
        *--end = '\0';
    if (end == dot + 1)
        *dot = '\0';
}

static void fmt_real(double x, enum vfmt f, char *out, size_t cap)
{
    double a = fabs(x);
    if (!isfinite(x))
        snprintf(out, cap, "-");
    else if (f == V_PCT)
        fmt_trimmed(x * 100.0, out, cap);
    else if (f == V_RATE)
        snprintf(out, cap, "%.1f", x);
    else if (f == V_PLAIN && x == floor(x) && a < 1e15)
        snprintf(out, cap, "%.0f", x);
    else
        snprintf(out, cap, a < 10 ? "%.2f" : a < 1000 ? "%.1f" : "%.0f", x);
}

/* A JSON value as a table cell: null, missing or "" is "-". */
static void fmt_value(const json_t *v, enum vfmt f, char out[CELL_MAX])
{
    if (!v || json_is_null(v) || (json_is_string(v) && !json_string_length(v))) {
        snprintf(out, CELL_MAX, "-");
    } else if (json_is_integer(v) && f != V_PCT) {
        snprintf(out, CELL_MAX, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_number(v)) {
        fmt_real(json_number_value(v), f, out, CELL_MAX);
    } else if (json_is_string(v)) {
        snprintf(out, CELL_MAX, "%s", json_string_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(out, CELL_MAX, "%s", json_is_true(v) ? "yes" : "no");
    } else {
        char *s = json_dump_compact(v);
        snprintf(out, CELL_MAX, "%s", s ? s : "?");
        free(s);
    }
}

static const json_t *get(const json_t *o, const char *key)
{
    return json_object_get(o, key);
}

/* One "key   value" line of a vertical view. */
static void kv(const char *key, const json_t *v, enum vfmt f)
{
    char cell[CELL_MAX];
    fmt_value(v, f, cell);
    printf("%-22s %s\n", key, cell);
}

/* ---- tables ------------------------------------------------------------------------------ */

struct table;

/* A column of a list: the row object's member key (and its member sub when given) shown
 * with fmt, or a cell() of its own. */
struct column {
    const char *head;
    bool right; /* numbers are right-aligned */
    const char *key, *sub;
    enum vfmt fmt;
    void (*cell)(struct table *t, const json_t *row);
};

struct table {
    const struct column *cols;
    int ncols;
    char **cells; /* row-major */
    size_t ncells, cap;
    size_t skipped; /* cells past TABLE_ROWS_MAX rows */
    int depth;      /* of the row being added, for indenting cells (spans) */
};

static void table_init(struct table *t, const struct column *cols, int ncols)
{
    assert(ncols > 0 && ncols <= TABLE_COLS_MAX);
    memset(t, 0, sizeof(*t));
    t->cols = cols;
    t->ncols = ncols;
}

/* A short-lived command may stop when memory runs out (STYLE.md: not a request path). */
static void *must(void *p)
{
    if (!p) {
        fprintf(stderr, "sluice: out of memory\n");
        exit(CLI_EXIT_FAILED);
    }
    return p;
}

static void table_cell(struct table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The next cell, row after row. */
static void table_cell(struct table *t, const char *fmt, ...)
{
    if (t->ncells / (size_t)t->ncols >= TABLE_ROWS_MAX) {
        t->skipped++;
        return;
    }
    if (t->ncells == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->cells = must(realloc(t->cells, t->cap * sizeof(*t->cells)));
    }
    char text[CELL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    t->cells[t->ncells++] = must(strdup(text));
}

static void table_val(struct table *t, const json_t *v, enum vfmt f)
{
    char cell[CELL_MAX];
    fmt_value(v, f, cell);
    table_cell(t, "%s", cell);
}

static void print_row(const struct table *t, char *const *row, const size_t *width)
{
    for (int c = 0; c < t->ncols; c++) {
        const char *s = row[c];
        int w = (int)width[c];
        if (c)
            fputs("  ", stdout);
        if (t->cols[c].right)
            printf("%*s", w, s);
        else if (c + 1 < t->ncols)
            printf("%-*s", w, s);
        else
            fputs(s, stdout); /* no trailing blanks */
    }
    fputc('\n', stdout);
}

/* Prints the aligned table and frees it. */
static void table_print(struct table *t)
{
    size_t width[TABLE_COLS_MAX] = {0}, rows = t->ncells / (size_t)t->ncols;
    char *head[TABLE_COLS_MAX];
    for (int c = 0; c < t->ncols; c++) {
        head[c] = (char *)t->cols[c].head;
        width[c] = strlen(head[c]);
        for (size_t r = 0; r < rows; r++) {
            size_t n = strlen(t->cells[r * (size_t)t->ncols + (size_t)c]);
            width[c] = n > width[c] ? n : width[c];
        }
    }
    print_row(t, head, width);
    for (size_t r = 0; r < rows; r++)
        print_row(t, t->cells + r * (size_t)t->ncols, width);
    if (t->skipped)
        printf("(%zu more rows not shown: use -o json)\n", t->skipped / (size_t)t->ncols);
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

#define TABLE(t, cols) table_init(t, cols, (int)(sizeof(cols) / sizeof(cols[0])))

static void table_row(struct table *t, const json_t *row)
{
    for (int c = 0; c < t->ncols; c++) {
        const struct column *col = &t->cols[c];
        const json_t *v = col->key ? get(row, col->key) : NULL;
        if (col->cell)
            col->cell(t, row);
        else
            table_val(t, col->sub ? get(v, col->sub) : v, col->fmt);
    }
}

/* One row per object of the array list. */
static void print_list(const json_t *list, const struct column *cols, int ncols)
{
    struct table t;
    const json_t *row;
    size_t i;
    table_init(&t, cols, ncols);
    json_array_foreach(list, i, row) table_row(&t, row);
    table_print(&t);
}

#define PRINT_LIST(list, cols) print_list(list, cols, (int)(sizeof(cols) / sizeof(cols[0])))

/* ---- requests, errors and exit codes ------------------------------------------------------ */

typedef void (*render_fn)(const struct cli *cli, const json_t *doc);

static int exit_code(const struct client_reply *r)
{
    switch (r->result) {
    case CLIENT_OK:
        return CLI_EXIT_OK;
    case CLIENT_UNREACHABLE:
        return CLI_EXIT_UNREACHABLE;
    case CLIENT_HTTP_ERROR:
        return r->status == 401 || r->status == 403 ? CLI_EXIT_AUTH : CLI_EXIT_FAILED;
    case CLIENT_BAD_RESPONSE:
        break;
    }
    return CLI_EXIT_FAILED;
}

/* The second line of an error: what to do next, when the first does not say it. */
static void hint(const struct cli *cli, const struct client_reply *r)
{
    const char *type = json_string_value(get(r->body, "type"));
    const char *name = arg(cli, 0);
    if (r->result != CLIENT_HTTP_ERROR)
        return;
    if ((r->status == 404 && type && !strcmp(type, "urn:sluice:problem:not-found")) ||
        r->status == 405)
        fprintf(stderr, "  sluice-server has no such route: is it older than this sluice? "
                        "(sluice-server --version)\n");
    else if (r->status == 404 && cli->cmd->not_found)
        fprintf(stderr, "  %s\n", cli->cmd->not_found);
    else if (r->status == 412 && opt.if_match != UNSET)
        fprintf(stderr,
                "  the limit changed since version %lu: fetch it again (sluice limits get "
                "%s) and retry\n",
                opt.if_match, name);
    else if (r->status == 412)
        fprintf(stderr,
                "  the limit changed meanwhile: fetch it again (sluice limits get %s) "
                "and retry\n",
                name);
    else if (r->status == 502)
        fprintf(stderr, "  the replica's agent did not answer: sluice status shows whether it "
                        "is up\n");
    else if (r->status == 503)
        fprintf(stderr, "  sluice-server cannot use Redis: check Redis and the server's log\n");
}

/* Prints what a reply means and returns its exit code. In json mode stdout gets the
 * server's document whatever its status (a problem document too). */
static int report(const struct cli *cli, const struct client_reply *r, render_fn render)
{
    if (cli->json && r->body)
        print_json_line(stdout, r->body);
    if (r->result == CLIENT_OK) {
        if (!cli->json && render)
            render(cli, r->body);
        return CLI_EXIT_OK;
    }
    fail(cli, "%s", r->error);
    hint(cli, r);
    return exit_code(r);
}

static int request(struct cli *cli, const char *method, const struct buf *path, const json_t *body,
                   const char *const *headers, render_fn render)
{
    struct client_reply r;
    client_call(&cli->client, method, buf_str(path), body, headers, &r);
    int rc = report(cli, &r, render);
    client_reply_release(&r);
    return rc;
}

/* method prefix + encoded(name) + suffix (name and suffix may be NULL). */
static int call(struct cli *cli, const char *method, const char *prefix, const char *name,
                const char *suffix, const json_t *body, const char *const *headers,
                render_fn render)
{
    struct buf path;
    path_of(&path, prefix, name, suffix);
    int rc = request(cli, method, &path, body, headers, render);
    buf_release(&path);
    return rc;
}

/* GET list, or GET item_prefix + NAME when a name was given, each with its renderer. */
static int get_one_or_all(struct cli *cli, const char *list, const char *item_prefix, render_fn all,
                          render_fn one)
{
    const char *name = arg(cli, 0);
    return name ? call(cli, "GET", item_prefix, name, NULL, NULL, NULL, one)
                : call(cli, "GET", list, NULL, NULL, NULL, NULL, all);
}

/* ---- JSON input (--file FILE or stdin) ------------------------------------------------------ */

static int read_stream(FILE *in, struct buf *b)
{
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), in)) > 0)
        if (buf_append(b, chunk, n) != SL_OK)
            return SL_ETOOBIG;
    return ferror(in) ? SL_EIO : SL_OK;
}

/* The document of --file FILE, or of stdin without --file (or with --file -); *doc is
 * NULL unless it is an object. */
static int read_input(const struct cli *cli, json_t **doc)
{
    *doc = NULL;
    bool from_stdin = !opt.file || !strcmp(opt.file, "-");
    const char *what = from_stdin ? "stdin" : opt.file;
    FILE *in = from_stdin ? stdin : fopen(opt.file, "rb");
    if (!in) {
        fail(cli, "cannot read %s: %s", opt.file, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    if (from_stdin && isatty(STDIN_FILENO))
        fprintf(stderr, "reading the JSON document from the terminal; end it with Ctrl-D "
                        "(or give --file FILE)\n");
    struct buf b;
    buf_init(&b, CLI_INPUT_MAX);
    int rc = read_stream(in, &b);
    if (!from_stdin)
        fclose(in);
    char err[JSON_ERR_MAX];
    if (rc == SL_OK && b.len == 0) {
        fail(cli, "%s is empty: give the JSON document with --file FILE or on stdin", what);
        rc = SL_EINVAL;
    } else if (rc != SL_OK) {
        fail(cli, "cannot read %s: %s (at most %d bytes)", what, err_str(rc), CLI_INPUT_MAX);
    } else if ((rc = json_parse(b.data, b.len, doc, err)) != SL_OK) {
        fail(cli, "%s is not valid JSON: %s", what, err);
    } else if (!json_is_object(*doc)) {
        fail(cli, "%s must hold one JSON object", what);
        json_decref(*doc);
        *doc = NULL;
        rc = SL_EINVAL;
    }
    buf_release(&b);
    return rc == SL_OK ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

/* ---- status --------------------------------------------------------------------------------- */

static const struct column fleet_cols[] = {
    {"SERVICE", false, "service", NULL, V_PLAIN, NULL},
    {"REPLICA", false, "id", NULL, V_PLAIN, NULL},
    {"STATE", false, "state", NULL, V_PLAIN, NULL},
    {"UP", false, "up", NULL, V_PLAIN, NULL},
    {"WEIGHT", true, "weight", NULL, V_PLAIN, NULL},
    {"RPS", true, "rps", NULL, V_RATE, NULL},
    {"ERR%", true, "error_ratio", NULL, V_PCT, NULL},
    {"P50_MS", true, "p50_ms", NULL, V_MS, NULL},
    {"P99_MS", true, "p99_ms", NULL, V_MS, NULL},
    {"IN_FLIGHT", true, "in_flight", NULL, V_PLAIN, NULL},
    {"HIT%", true, "cache_hit_ratio", NULL, V_PCT, NULL},
    {"429/S", true, "limited_per_s", NULL, V_RATE, NULL},
    {"POLICY", true, "policy_version", NULL, V_PLAIN, NULL},
};

/* A line per replica, then the service's totals as replica "(total)" with UP "n/m". */
static void service_rows(struct table *t, const json_t *svc)
{
    json_t *name = json_object_get(svc, "name"), *row;
    const json_t *rep, *tot = get(svc, "totals");
    size_t i;
    json_array_foreach(get(svc, "replicas"), i, rep)
    {
        row = json_copy((json_t *)rep);
        json_object_set(row, "service", name);
        table_row(t, row);
        json_decref(row);
    }
    row = json_copy((json_t *)tot);
    json_object_set(row, "service", name);
    json_object_set_new(row, "id", json_string("(total)"));
    json_object_set_new(row, "up",
                        json_sprintf("%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
                                     json_integer_value(get(tot, "replicas_up")),
                                     json_integer_value(get(tot, "replicas"))));
    table_row(t, row);
    json_decref(row);
}

static void render_fleet(const struct cli *cli, const json_t *doc)
{
    (void)cli;
    const json_t *svc;
    size_t i;
    if (!json_array_size(get(doc, "services"))) {
        printf("no agents have registered yet: start sluice-agent with --redis (docs/agent.md)\n");
        return;
    }
    struct table t;
    TABLE(&t, fleet_cols);
    json_array_foreach(get(doc, "services"), i, svc) service_rows(&t, svc);
    table_print(&t);
}

static int cmd_status(struct cli *cli)
{
    return call(cli, "GET", "/v1/fleet", NULL, NULL, NULL, NULL, render_fleet);
}

/* ---- limits --------------------------------------------------------------------------------- */

static void print_convergence(const json_t *conv)
{
    if (!conv)
        return;
    printf("set version %" JSON_INTEGER_FORMAT ": %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
           " agents run it",
           json_integer_value(get(conv, "version")), json_integer_value(get(conv, "applied")),
           json_integer_value(get(conv, "agents")));
    const json_t *id;
    size_t i;
    json_array_foreach(get(conv, "pending"), i, id)
        printf("%s%s", i ? ", " : "; waiting for ", json_string_value(id));
    printf("\n");
}

#define POLICY(head, right, field)                                                                 \
    {                                                                                              \
        head, right, "policy", field, V_PLAIN, NULL                                                \
    }
static const struct column limit_cols[] = {
    {"NAME", false, "name", NULL, V_PLAIN, NULL},
    {"VERSION", true, "version", NULL, V_PLAIN, NULL},
    POLICY("SCOPE", false, "scope"),
    POLICY("ALGORITHM", false, "algorithm"),
    POLICY("LIMIT", true, "limit"),
    POLICY("WINDOW_MS", true, "window_ms"),
    POLICY("BURST", true, "burst"),
    POLICY("KEY", false, "key"),
    POLICY("STORE", false, "store"),
    POLICY("MATCH", false, "match"),
};

static void render_limits(const struct cli *cli, const json_t *doc)
{
    (void)cli;
    PRINT_LIST(get(doc, "policies"), limit_cols);
    print_convergence(get(doc, "convergence"));
}

static void render_limit(const struct cli *cli, const json_t *doc)
{
    (void)cli;
    kv("name", get(doc, "name"), V_PLAIN);
    kv("version", get(doc, "version"), V_PLAIN);
    kv("policy", get(doc, "policy"), V_PLAIN);
    print_convergence(get(doc, "convergence"));
}

/* The answer of set, rollback and delete. */
static void render_limit_written(const struct cli *cli, const json_t *doc)
{
    (void)cli;
    const char *name = json_string_value(get(doc, "name"));
    json_int_t v = json_integer_value(get(doc, "version"));
    if (json_is_null(get(doc, "policy")))
        printf("limit %s deleted (version %" JSON_INTEGER_FORMAT ")\n", name, v);
    else
        printf("limit %s: version %" JSON_INTEGER_FORMAT " written\n", name, v);
    print_convergence(get(doc, "convergence"));
}

static void cell_history_policy(struct table *t, const json_t *h)
{
    if (json_is_null(get(h, "policy")))
        table_cell(t, "(deleted)");
    else
        table_val(t, get(h, "policy"), V_PLAIN);
}

static const struct column history_cols[] = {
    {"VERSION", true, "version", NULL, V_PLAIN, NULL},
    {"SET_VERSION", true, "set_version", NULL, V_PLAIN, NULL},
    {"AT", false, "at", NULL, V_PLAIN, NULL},
    {"WHO", false, "who", NULL, V_PLAIN, NULL},
    {"POLICY", false, NULL, NULL, V_PLAIN, cell_history_policy},
};

static void render_history(const struct cli *cli, const json_t *doc)
{
    (void)cli;
    PRINT_LIST(get(doc, "history"), history_cols);
}

static int cmd_limits_list(struct cli *cli)
{
    return get_one_or_all(cli, "/v1/limits", "/v1/limits/", render_limits, render_limit);
}

/* {"If-Match: \"N\"", NULL} when --if-match was given. */
static const char *const *if_match_header(char line[48], const char *hdrs[2])
{
    if (opt.if_match == UNSET)
        return NULL;
    snprintf(line, 48, "If-Match: \"%lu\"", opt.if_match);
    hdrs[0] = line;
    hdrs[1] = NULL;
    return hdrs;
}

static int cmd_limits_set(struct cli *cli)
{
    json_t *doc;
    int rc = read_input(cli, &doc);
    if (rc)
        return rc;
    /* a document from `sluice -o json limits get` holds the policy in "policy" */
    json_t *pol = json_is_object(get(doc, "policy")) ? json_object_get(doc, "policy") : doc;
    char line[48];
    const char *hdrs[2];
    rc = call(cli, "PUT", "/v1/limits/", arg(cli, 0), NULL, pol, if_match_header(line, hdrs),
              render_limit_written);
    json_decref(doc);
    return rc;
}

static int cmd_limits_delete(struct cli *cli)
{
    char line[48];
    const char *hdrs[2];
    return call(cli, "DELETE", "/v1/limits/", arg(cli, 0), NULL, NULL, if_match_header(line, hdrs),
                render_limit_written);
}

static int cmd_limits_rollback(struct cli *cli)
{
    json_t *body = opt.version == UNSET ? json_object()
                                        : json_pack("{s:I}", "version", (json_int_t)opt.version);
    int rc = call(cli, "POST", "/v1/limits/", arg(cli, 0), "/rollback", body, NULL,
                  render_limit_written);
    json_decref(body);
    return rc;
}

static int cmd_limits_history(struct cli *cli)
{
    return call(cli, "GET", "/v1/limits/", arg(cli, 0), "/history", NULL, NULL, render_history);
}

/* ---- drain, undrain, weight ----------------------------------------------------------------- */

/* "replica X: state draining, in_flight 3" from the agent's scalar answers. */
static void render_replica_action(const struct cli *cli, const json_t *doc)
{
    const json_t *agent = get(doc, "agent"), *v;
    const char *key;
    int n = 0;
    printf("replica %s:", arg(cli, 0));
    json_object_foreach((json_t *)agent, key, v)
    {
        if (json_is_object(v) || json_is_array(v))
            continue;
        char cell[CELL_MAX];
        fmt_value(v, V_PLAIN, cell);
        printf("%s %s %s", n++ ? "," : "", key, cell);
    }
    printf("%s\n", n ? "" : " done");
}

/* One progress line on stderr when it differs from the last one. */
static void drain_progress(const json_t *rep, char last[160])
{
    char line[160];
    const json_t *d = get(rep, "drain");
    const char *state = json_string_value(get(rep, "state"));
    if (d)
        snprintf(line, sizeof(line), "%s: %" JSON_INTEGER_FORMAT " in flight, %.1f s left",
                 state ? state : "?", json_integer_value(get(d, "in_flight")),
                 (double)json_integer_value(get(d, "remaining_ms")) / 1000.0);
    else
        snprintf(line, sizeof(line), "state %s", state ? state : "?");
    if (strcmp(line, last) != 0)
        fprintf(stderr, "%s\n", line);
    snprintf(last, 160, "%s", line);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One look at the replica during drain --wait: the exit code when it is over, else -1. */
static int drain_check(const struct cli *cli, const json_t *rep, uint64_t deadline, char last[160])
{
    const char *state = json_string_value(get(rep, "state"));
    drain_progress(rep, last);
    if (state && !strcmp(state, "drained")) {
        if (cli->json)
            print_json_line(stdout, rep);
        return CLI_EXIT_OK;
    }
    if (state && !strcmp(state, "down")) {
        fail(cli, "replica %s went down while draining: sluice status shows the fleet",
             arg(cli, 0));
        return CLI_EXIT_FAILED;
    }
    if (clock_mono_ms() >= deadline) {
        fail(cli,
             "replica %s is still %s after %lu s: wait longer (--wait-s) or look at it "
             "with sluice status",
             arg(cli, 0), state ? state : "?", opt.wait_s);
        return CLI_EXIT_FAILED;
    }
    return -1;
}

/* drain --wait: the replica as the control plane sees it, until drained or the deadline;
 * progress on stderr, and in json mode the drained replica on stdout. */
static int wait_drained(struct cli *cli)
{
    uint64_t deadline = clock_mono_ms() + (uint64_t)opt.wait_s * 1000;
    char last[160] = "";
    struct buf path;
    path_of(&path, "/v1/replicas/", arg(cli, 0), NULL);
    int rc = -1;
    while (rc < 0) {
        struct client_reply r;
        client_call(&cli->client, "GET", buf_str(&path), NULL, NULL, &r);
        rc = r.result == CLIENT_OK ? drain_check(cli, r.body, deadline, last)
                                   : report(cli, &r, NULL);
        client_reply_release(&r);
        if (rc < 0)
            sleep_ms(CLI_POLL_MS);
    }
    buf_release(&path);
    return rc;
}

static int cmd_drain(struct cli *cli)
{
    json_t *body = opt.timeout_s == UNSET
                       ? json_object()
                       : json_pack("{s:I}", "timeout_s", (json_int_t)opt.timeout_s);
    struct buf path;
    path_of(&path, "/v1/replicas/", arg(cli, 0), "/drain");
    struct client_reply r;
    client_call(&cli->client, "POST", buf_str(&path), body, NULL, &r);
    /* with --wait, json mode prints the drained replica only */
    bool quiet = opt.wait && cli->json && r.result == CLIENT_OK;
    int rc = quiet ? CLI_EXIT_OK : report(cli, &r, render_replica_action);
    client_reply_release(&r);
    buf_release(&path);
    json_decref(body);
    if (rc == CLI_EXIT_OK && opt.wait)
        rc = wait_drained(cli);
    if (rc == CLI_EXIT_OK && opt.wait && !cli->json)
        printf("replica %s: drained\n", arg(cli, 0));
    return rc;
}

static int cmd_undrain(struct cli *cli)
{
    return call(cli, "POST", "/v1/replicas/", arg(cli, 0), "/undrain", NULL, NULL,
                render_replica_action);
}

static int cmd_weight(struct cli *cli)
{
    char *end;
    const char *w = arg(cli, 1);
    unsigned long n = strtoul(w, &end, 10);
    if (*w < '0' || *w > '9' || *end || n > 100) {
        fail(cli, "WEIGHT: expected an integer from 0 to 100, got '%s'", w);
        return CLI_EXIT_USAGE;
    }
    json_t *body = json_pack("{s:i}", "weight", (int)n);
    int rc = call(cli, "PUT", "/v1/replicas/", arg(cli, 0), "/weight", body, NULL,
                  render_replica_action);
    json_decref(body);
    return rc;
}

/* ---- faults --------------------------------------------------------------------------------- */

/* "200 ms +- 50 ms" for a delay, "status 503" for an abort. */
static void cell_fault_what(struct table *t, const json_t *f)
{
    if (get(f, "ms"))
        table_cell(t, "%" JSON_INTEGER_FORMAT " ms +- %" JSON_INTEGER_FORMAT " ms",
                   json_integer_value(get(f, "ms")), json_integer_value(get(f, "jitter_ms")));
    else if (get(f, "status"))
        table_cell(t, "status %" JSON_INTEGER_FORMAT, json_integer_value(get(f, "status")));
    else
        table_cell(t, "-");
}

static const struct column fault_cols[] = {
    {"KIND", false, "kind", NULL, V_PLAIN, NULL},
    {"WHAT", false, NULL, NULL, V_PLAIN, cell_fault_what},
    {"PERCENT", true, "percent", NULL, V_PLAIN, NULL},
    {"PATH_PREFIX", false, "path_prefix", NULL, V_PLAIN, NULL},
    {"TTL_S", true, "ttl_s", NULL, V_PLAIN, NULL},
    {"EXPIRES_IN_S", true, "expires_in_s", NULL, V_PLAIN, NULL},
};

/* {"faults":[...]} as the agent shows it. */
static void print_faults(const char *replica, const json_t *set)
{
    if (json_array_size(get(set, "faults")))
        PRINT_LIST(get(set, "faults"), fault_cols);
    else
        printf("replica %s: no active faults\n", replica);
}

static void render_faults(const struct cli *cli, const json_t *doc)
{
    print_faults(arg(cli, 0), doc);
}

static void render_faults_set(const struct cli *cli, const json_t *doc)
{
    print_faults(arg(cli, 0), get(doc, "agent"));
}

static void render_faults_cleared(const struct cli *cli, const json_t *doc)
{
    (void)doc;
    printf("replica %s: faults cleared\n", arg(cli, 0));
}

static bool fault_shorthand(void)
{
    return opt.delay_ms != UNSET || opt.abort_status != UNSET || opt.percent != UNSET ||
           opt.path_prefix || opt.ttl_s != UNSET;
}

/* One fault of the shorthand flags; percent, path and TTL shared. */
static json_t *fault_of(const char *kind, const char *key, unsigned long value)
{
    json_t *f = json_pack("{s:s, s:I, s:I}", "kind", kind, key, (json_int_t)value, "ttl_s",
                          (json_int_t)opt.ttl_s);
    if (f && opt.percent != UNSET)
        json_object_set_new(f, "percent", json_integer((json_int_t)opt.percent));
    if (f && opt.path_prefix)
        json_object_set_new(f, "path_prefix", json_string(opt.path_prefix));
    return f;
}

/* {"faults":[...]} from --delay-ms/--abort with --ttl-s; NULL (said why) when unusable. */
static json_t *faults_from_flags(const struct cli *cli)
{
    if (opt.file) {
        fail(cli, "give either --file or the shorthand flags (--delay-ms, --abort ...), not both");
        return NULL;
    }
    if (opt.delay_ms == UNSET && opt.abort_status == UNSET) {
        fail(cli, "say which fault: --delay-ms N and/or --abort STATUS");
        return NULL;
    }
    if (opt.ttl_s == UNSET) {
        fail(cli, "--ttl-s S is required: every fault reverts by itself after S seconds");
        return NULL;
    }
    json_t *list = json_array();
    if (opt.delay_ms != UNSET)
        json_array_append_new(list, fault_of("delay", "ms", opt.delay_ms));
    if (opt.abort_status != UNSET)
        json_array_append_new(list, fault_of("abort", "status", opt.abort_status));
    return json_pack("{s:o}", "faults", list);
}

static int cmd_faults_set(struct cli *cli)
{
    json_t *doc = NULL;
    int rc = CLI_EXIT_USAGE;
    if (!fault_shorthand())
        rc = read_input(cli, &doc);
    else if ((doc = faults_from_flags(cli)) != NULL)
        rc = CLI_EXIT_OK;
    if (rc != CLI_EXIT_OK)
        return rc;
    rc = call(cli, "PUT", "/v1/faults/", arg(cli, 0), NULL, doc, NULL, render_faults_set);
    json_decref(doc);
    return rc;
}

static int cmd_faults_get(struct cli *cli)
{
    return call(cli, "GET", "/v1/faults/", arg(cli, 0), NULL, NULL, NULL, render_faults);
}

static int cmd_faults_clear(struct cli *cli)
{
    return call(cli, "DELETE", "/v1/faults/", arg(cli, 0), NULL, NULL, NULL, render_faults_cleared);
}

/* ---- SLOs ----------------------------------------------------------------------------------- */

static const struct column slo_cols[] = {
    {"NAME", false, "name", NULL, V_PLAIN, NULL},
    {"SERVICE", false, "service", NULL, V_PLAIN, NULL},
    {"KIND", false, "kind", NULL, V_PLAIN, NULL},
    {"OBJECTIVE%", true, "objective", NULL, V_PCT, NULL},
    {"SLI%", true, "sli", NULL, V_PCT, NULL},
    {"BUDGET_LEFT%", true, "error_budget_remaining", NULL, V_PCT, NULL},
    {"BURN_1H", true, "burn_rates", "1h", V_RATE, NULL},
    {"BURN_6H", true, "burn_rates", "6h", V_RATE, NULL},
    {"ALERT", false, "alert", NULL, V_PLAIN, NULL},
};

static void render_slos(const struct cli *cli, const json_t *doc)
{
    (void)cli;
    PRINT_LIST(get(doc, "slos"), slo_cols);
}

static void render_slo(const struct cli *cli, const json_t *doc)
{
    (void)cli;
    static const struct {
        const char *key, *label;
        enum vfmt f;
    } rows[] = {
        {"name", "name", V_PLAIN},
        {"service", "service", V_PLAIN},
        {"route", "route", V_PLAIN},
        {"kind", "kind", V_PLAIN},
        {"threshold_ms", "threshold ms", V_PLAIN},
        {"objective", "objective %", V_PCT},
        {"window_s", "window s", V_PLAIN},
        {"good", "good", V_PLAIN},
        {"total", "total", V_PLAIN},
        {"sli", "SLI %", V_PCT},
        {"error_budget_remaining", "error budget left %", V_PCT},
        {"time_to_exhaustion_s", "exhausted in s", V_PLAIN},
        {"alert", "alert", V_PLAIN},
        {"rule", "rule", V_PLAIN},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (get(doc, rows[i].key))
            kv(rows[i].label, get(doc, rows[i].key), rows[i].f);
    const char *w;
    const json_t *v;
    printf("%-22s", "burn rates");
    json_object_foreach((json_t *)get(doc, "burn_rates"), w, v)
        printf(" %s %.2f", w, json_number_value(v));
    printf("\n");
}

static int cmd_slos(struct cli *cli)
{
    return get_one_or_all(cli, "/v1/slos", "/v1/slos/", render_slos, render_slo);
}

/* ---- traces --------------------------------------------------------------------------------- */

static void cell_trace_flags(struct table *t, const json_t *x)
{
    table_cell(t, "%s%s%s", json_is_true(get(x, "error")) ? "error " : "",
               json_is_true(get(x, "slow")) ? "slow " : "",
               json_is_false(get(x, "complete")) ? "incomplete" : "");
}

static const struct column trace_cols[] = {
    {"TRACE_ID", false, "trace_id", NULL, V_PLAIN, NULL},
    {"STATUS", true, "status", NULL, V_PLAIN, NULL},
    {"DURATION_MS", true, "duration_ms", NULL, V_MS, NULL},
    {"SPANS", true, "span_count", NULL, V_PLAIN, NULL},
    {"SERVICE", false, "service", NULL, V_PLAIN, NULL},
    {"FLAGS", false, NULL, NULL, V_PLAIN, cell_trace_flags},
    {"NAME", false, "name", NULL, V_PLAIN, NULL},
};

static void render_traces(const struct cli *cli, const json_t *doc)
{
    (void)cli;
    PRINT_LIST(get(doc, "traces"), trace_cols);
    printf("%" JSON_INTEGER_FORMAT " matched; %" JSON_INTEGER_FORMAT " traces held\n",
           json_integer_value(get(doc, "matched")),
           json_integer_value(get(get(doc, "held"), "traces")));
}

static void cell_span_critical(struct table *t, const json_t *s)
{
    table_cell(t, "%s", json_is_true(get(s, "critical")) ? "*" : "");
}

static void cell_span_name(struct table *t, const json_t *s)
{
    table_cell(t, "%*s%s", 2 * (t->depth < SPAN_DEPTH_MAX ? t->depth : SPAN_DEPTH_MAX), "",
               json_string_value(get(s, "name")) ?: "?");
}

static const struct column span_cols[] = {
    {"OFFSET_MS", true, "offset_ms", NULL, V_MS, NULL},
    {"DURATION_MS", true, "duration_ms", NULL, V_MS, NULL},
    {"STATUS", true, "http_status", NULL, V_PLAIN, NULL},
    {"SERVICE", false, "service", NULL, V_PLAIN, NULL},
    {"CRITICAL", false, NULL, NULL, V_PLAIN, cell_span_critical},
    {"SPAN", false, NULL, NULL, V_PLAIN, cell_span_name},
};

/* Depth-first, children indented (the server bounds the tree's depth). */
static void span_rows(struct table *t, const json_t *spans)
{
    const json_t *s;
    size_t i;
    json_array_foreach(spans, i, s)
    {
        table_row(t, s);
        t->depth++;
        span_rows(t, get(s, "children"));
        t->depth--;
    }
}

static void render_trace(const struct cli *cli, const json_t *doc)
{
    (void)cli;
    printf("trace %s: %s, status %" JSON_INTEGER_FORMAT ", %.2f ms, %" JSON_INTEGER_FORMAT
           " span(s)%s\n",
           json_string_value(get(doc, "trace_id")), json_string_value(get(doc, "name")) ?: "?",
           json_integer_value(get(doc, "status")), json_number_value(get(doc, "duration_ms")),
           json_integer_value(get(doc, "span_count")),
           json_is_false(get(doc, "complete")) ? " (incomplete)" : "");
    struct table t;
    TABLE(&t, span_cols);
    span_rows(&t, get(doc, "spans"));
    table_print(&t);
}

static bool status_filter_ok(const char *s)
{
    if (!strcmp(s, "error"))
        return true;
    return strlen(s) == 3 && s[0] >= '1' && s[0] <= '5' &&
           ((s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9') ||
            (s[1] == 'x' && s[2] == 'x'));
}

static void add_query(struct buf *b, const char *name, const char *value)
{
    if (!value)
        return;
    buf_appendf(b, "%c%s=", strchr(buf_str(b), '?') ? '&' : '?', name);
    append_encoded(b, value);
}

static int cmd_traces(struct cli *cli)
{
    if (arg(cli, 0))
        return get_one_or_all(cli, "/v1/traces", "/v1/traces/", render_traces, render_trace);
    if (opt.status && !status_filter_ok(opt.status)) {
        fail(cli, "--status: expected a code like 404, a class like 5xx, or error; got '%s'",
             opt.status);
        return CLI_EXIT_USAGE;
    }
    char min[24] = "", limit[24] = "";
    if (opt.min_ms != UNSET)
        snprintf(min, sizeof(min), "%lu", opt.min_ms);
    if (opt.limit != UNSET)
        snprintf(limit, sizeof(limit), "%lu", opt.limit);
    struct buf path;
    path_of(&path, "/v1/traces", NULL, NULL);
    add_query(&path, "route", opt.route);
    add_query(&path, "status", opt.status);
    add_query(&path, "service", opt.service);
    add_query(&path, "min_duration_ms", min[0] ? min : NULL);
    add_query(&path, "limit", limit[0] ? limit : NULL);
    int rc = request(cli, "GET", &path, NULL, NULL, render_traces);
    buf_release(&path);
    return rc;
}

/* ---- queues --------------------------------------------------------------------------------- */

#define RATE(head, field)                                                                          \
    {                                                                                              \
        head, true, "rates", field, V_RATE, NULL                                                   \
    }
static const struct column queue_cols[] = {
    {"NAME", false, "name", NULL, V_PLAIN, NULL},
    {"LENGTH", true, "length", NULL, V_PLAIN, NULL},
    {"WAITING", true, "waiting", NULL, V_PLAIN, NULL},
    {"ACTIVE", true, "active", NULL, V_PLAIN, NULL},
    {"DELAYED", true, "delayed", NULL, V_PLAIN, NULL},
    {"DEAD", true, "dead", NULL, V_PLAIN, NULL},
    {"OLDEST_MS", true, "oldest_pending_age_ms", NULL, V_PLAIN, NULL},
    RATE("ENQUEUED/S", "enqueued_per_s"),
    RATE("COMPLETED/S", "completed_per_s"),
    RATE("FAILED/S", "failed_per_s"),
};

static void render_queues(const struct cli *cli, const json_t *doc)
{
    (void)cli;
    PRINT_LIST(get(doc, "queues"), queue_cols);
}

static const struct column lane_cols[] = {
    {"LANE", false, "lane", NULL, V_PLAIN, NULL},
    {"LENGTH", true, "length", NULL, V_PLAIN, NULL},
    {"PENDING", true, "pending", NULL, V_PLAIN, NULL},
    {"LAG", true, "lag", NULL, V_PLAIN, NULL},
    {"CONSUMERS", true, "consumer_count", NULL, V_PLAIN, NULL},
    {"OLDEST_PENDING_MS", true, "oldest_pending_age_ms", NULL, V_PLAIN, NULL},
};

/* The queue's line, then a line per lane (the lanes object's keys become "lane"). */
static void render_queue(const struct cli *cli, const json_t *doc)
{
    json_t *one = json_pack("{s:[O]}", "queues", (json_t *)doc), *lanes = json_array();
    render_queues(cli, one);
    const char *name;
    json_t *l;
    json_object_foreach((json_t *)get(doc, "lanes"), name, l)
    {
        json_t *row = json_copy(l);
        json_object_set_new(row, "lane", json_string(name));
        json_array_append_new(lanes, row);
    }
    printf("\n");
    PRINT_LIST(lanes, lane_cols);
    json_decref(lanes);
    json_decref(one);
}

static int cmd_queues(struct cli *cli)
{
    return get_one_or_all(cli, "/v1/queues", "/v1/queues/", render_queues, render_queue);
}

/* ---- drills --------------------------------------------------------------------------------- */

static void render_drills(const struct cli *cli, const json_t *doc)
{
    (void)cli;
    const json_t *d;
    size_t i;
    if (!json_array_size(get(doc, "drills"))) {
        const char *note = json_string_value(get(doc, "note"));
        printf("no drills%s%s\n", note ? ": " : "", note ? note : "");
        return;
    }
    json_array_foreach(get(doc, "drills"), i, d) print_json_line(stdout, d);
}

static void render_answer(const struct cli *cli, const json_t *doc)
{
    (void)cli;
    if (doc)
        print_json_line(stdout, doc);
}

static int cmd_drills_list(struct cli *cli)
{
    return call(cli, "GET", "/v1/drills", NULL, NULL, NULL, NULL, render_drills);
}

static int cmd_drills_start(struct cli *cli)
{
    return call(cli, "POST", "/v1/drills/", arg(cli, 0), "/start", NULL, NULL, render_answer);
}

static int cmd_drills_abort(struct cli *cli)
{
    return call(cli, "POST", "/v1/drills/", arg(cli, 0), "/abort", NULL, NULL, render_answer);
}

static int cmd_drills_abort_all(struct cli *cli)
{
    return call(cli, "POST", "/v1/drills/abort-all", NULL, NULL, NULL, NULL, render_answer);
}

static int cmd_help(struct cli *cli);

/* ---- the table ------------------------------------------------------------------------------ */

#define NF_LIMIT   "sluice limits list shows the policies"
#define NF_REPLICA "sluice status lists the replica ids"

static const struct command commands[] = {
    {"status", NULL, cmd_status, 0, 0, "", "the fleet: a line per replica, a total per service",
     f_none, NULL},
    {"limits", "list", cmd_limits_list, 0, 0, "", "rate-limit policies, versions, convergence",
     f_none, NULL},
    {"limits", "get", cmd_limits_list, 1, 1, "NAME", "one policy", f_none, NF_LIMIT},
    {"limits", "set", cmd_limits_set, 1, 1, "NAME",
     "write a policy (JSON from --file or stdin; a `limits get` document works too)", f_limit_set,
     NULL},
    {"limits", "delete", cmd_limits_delete, 1, 1, "NAME", "delete a policy", f_limit_delete,
     NF_LIMIT},
    {"limits", "rollback", cmd_limits_rollback, 1, 1, "NAME",
     "restore an earlier version as the newest", f_rollback,
     "sluice limits history NAME lists the versions that can be restored"},
    {"limits", "history", cmd_limits_history, 1, 1, "NAME", "the last 50 versions", f_none,
     NF_LIMIT},
    {"drain", NULL, cmd_drain, 1, 1, "REPLICA",
     "drain a replica (with --wait, until drained; -o json then prints the replica)", f_drain,
     NF_REPLICA},
    {"undrain", NULL, cmd_undrain, 1, 1, "REPLICA", "serve again", f_none, NF_REPLICA},
    {"weight", NULL, cmd_weight, 2, 2, "REPLICA WEIGHT", "set the load-balancing weight (0-100)",
     f_none, NF_REPLICA},
    {"faults", "get", cmd_faults_get, 1, 1, "REPLICA", "the active faults", f_none, NF_REPLICA},
    {"faults", "set", cmd_faults_set, 1, 1, "REPLICA",
     "replace the faults ({\"faults\":[...]} from --file or stdin, or the shorthand flags)",
     f_faults_set, NF_REPLICA},
    {"faults", "clear", cmd_faults_clear, 1, 1, "REPLICA", "remove every fault", f_none,
     NF_REPLICA},
    {"slos", NULL, cmd_slos, 0, 1, "[NAME]", "SLO status: SLI, error budget, burn rates, alert",
     f_none, "sluice slos lists the SLOs"},
    {"traces", NULL, cmd_traces, 0, 1, "[TRACE_ID]",
     "recent traces (errors first, then slow), or one trace's spans", f_traces,
     "traces are kept for a while only: sluice traces lists those held"},
    {"queues", NULL, cmd_queues, 0, 1, "[NAME]", "job queues: length, pending, dead, rates", f_none,
     "sluice queues lists the queues the server watches (its --queues)"},
    {"drills", "list", cmd_drills_list, 0, 0, "", "chaos drills", f_none, NULL},
    {"drills", "start", cmd_drills_start, 1, 1, "NAME", "start a drill", f_none,
     "sluice drills list shows the drills"},
    {"drills", "abort", cmd_drills_abort, 1, 1, "RUN", "abort a running drill", f_none,
     "sluice drills list shows the runs"},
    {"drills", "abort-all", cmd_drills_abort_all, 0, 0, "", "abort every running drill", f_none,
     NULL},
    {"help", NULL, cmd_help, 0, 1, "[COMMAND]", "this text, or one command's options", f_none,
     NULL},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* ---- usage ---------------------------------------------------------------------------------- */

static void command_line(FILE *out, const struct command *c)
{
    char left[64];
    snprintf(left, sizeof(left), "%s%s%s%s%s", c->name, c->verb ? " " : "", c->verb ? c->verb : "",
             c->args[0] ? " " : "", c->args);
    fprintf(out, "  %-28s %s\n", left, c->help);
}

static void option_line(FILE *out, const struct flag *f)
{
    char left[64];
    snprintf(left, sizeof(left), "--%s%s%s", f->name, f->metavar ? " " : "",
             f->metavar ? f->metavar : "");
    fprintf(out, "  %-28s %s%s%s%s\n", left, f->help, f->env[0] ? " [" : "", f->env,
            f->env[0] ? "]" : "");
}

/* The global options, then a command's own. */
static void options_text(FILE *out, const struct flag *own)
{
    for (int i = 0; f_global[i].name; i++)
        option_line(out, &f_global[i]);
    for (int i = 0; own[i].name; i++)
        option_line(out, &own[i]);
    fprintf(out, "  %-28s %s\n", "--help, -h", "this text");
}

static const char exit_codes_text[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  the server refused or failed (not found, 412 conflict, 422 invalid, 5xx)\n"
    "  2  usage: unknown command or option, wrong arguments, bad JSON input\n"
    "  3  sluice-server could not be reached (--server, SLUICE_SERVER)\n"
    "  4  authentication or role: 401 (no or bad --token) or 403 (needs a higher role)\n";

void cli_usage(FILE *out)
{
    fprintf(out, "usage: sluice COMMAND [ARGS] [--server URL] [--token TOKEN] [-o table|json]\n"
                 "       sluice              (no command: the terminal UI)\n\nCommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        command_line(out, &commands[i]);
    fprintf(out, "\nOptions of every command:\n");
    options_text(out, f_none);
    fprintf(out, "\n%s", exit_codes_text);
}

static bool usage_row(const struct command *c, const char *name, const struct command *only)
{
    return !strcmp(c->name, name) && (!only || only == c);
}

/* One command's usage (every verb of it when only is NULL). */
static void command_usage(FILE *out, const char *name, const struct command *only)
{
    const struct command *last = NULL;
    int rows = 0;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (usage_row(&commands[i], name, only))
            last = &commands[i], rows++;
    if (rows == 1)
        fprintf(out, "usage: sluice %s%s%s%s%s [options]\n  %s\n", name, last->verb ? " " : "",
                last->verb ? last->verb : "", last->args[0] ? " " : "", last->args, last->help);
    else
        fprintf(out, "usage: sluice %s VERB [ARGS] [options]\n", name);
    for (size_t i = 0; rows > 1 && i < NCOMMANDS; i++)
        if (usage_row(&commands[i], name, only))
            command_line(out, &commands[i]);
    fprintf(out, "\nOptions:\n");
    options_text(out, rows == 1 ? last->flags : f_none);
    if (rows > 1)
        fprintf(out, "  (each verb's own: sluice %s VERB --help)\n", name);
    fprintf(out, "\n%s", exit_codes_text);
}

static int cmd_help(struct cli *cli)
{
    const char *name = arg(cli, 0);
    if (!name) {
        cli_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (!cli_is_command(name)) {
        fail(cli, "no command '%s': sluice help lists them", name);
        return CLI_EXIT_USAGE;
    }
    command_usage(stdout, name, NULL);
    return CLI_EXIT_OK;
}

/* ---- argv ----------------------------------------------------------------------------------- */

bool cli_is_command(const char *word)
{
    for (size_t i = 0; word && i < NCOMMANDS; i++)
        if (!strcmp(commands[i].name, word))
            return true;
    return false;
}

/* argv[from..] into v[1..] (v[0] a stand-in for the program), "-o" as "--output" and "-h" as
 * "--help"; other one-dash words are refused. Returns the count, or -1 (said why). */
static int normalize(const struct cli *cli, int argc, char **argv, int from, char **v)
{
    int n = 1;
    v[0] = "sluice";
    for (int i = from; i < argc; i++) {
        if (n >= CLI_ARGV_MAX) {
            fail(cli, "too many arguments (at most %d)", CLI_ARGV_MAX - 1);
            return -1;
        }
        const char *a = argv[i];
        if (!strcmp(a, "-o"))
            a = "--output";
        else if (!strcmp(a, "-h"))
            a = "--help";
        else if (a[0] == '-' && a[1] && a[1] != '-') {
            fail(cli, "unknown option '%s' (see sluice %s --help)", a, cli->label);
            return -1;
        }
        v[n++] = (char *)a;
    }
    return n;
}

static int add_positional(struct cli *cli, const char *word)
{
    if (cli->nargs == CLI_ARGS_MAX) {
        fail(cli, "unexpected argument '%s' (see sluice %s --help)", word, cli->label);
        return CLI_EXIT_USAGE;
    }
    cli->args[cli->nargs++] = word;
    return CLI_EXIT_OK;
}

/* Options anywhere among the positionals: flags_parse stops at each positional, which
 * becomes the stand-in program word of the next round; after "--" all are positionals. */
static int parse_args(struct cli *cli, int n, char **v)
{
    char err[FLAGS_ERR_MAX];
    struct flag table[CLI_FLAGS_MAX];
    int k = 0, rc = CLI_EXIT_OK;
    for (int i = 0; f_global[i].name; i++)
        table[k++] = f_global[i];
    for (int i = 0; cli->cmd->flags[i].name; i++)
        table[k++] = cli->cmd->flags[i];
    assert(k < CLI_FLAGS_MAX);
    memset(&table[k], 0, sizeof(table[k]));
    for (int i = 0; i < n && rc == CLI_EXIT_OK;) {
        int first;
        if (flags_parse(table, n - i, v + i, &first, err) != SL_OK) {
            fail(cli, "%s", err);
            return CLI_EXIT_USAGE;
        }
        int at = i + first; /* the next positional, or n */
        if (at < n && first >= 2 && !strcmp(v[at - 1], "--")) {
            while (at < n && rc == CLI_EXIT_OK)
                rc = add_positional(cli, v[at++]);
            break;
        }
        if (at < n)
            rc = add_positional(cli, v[at]);
        i = at;
    }
    return rc;
}

/* The row of argv[1] (and of its verb, argv[2], when it has verbs); NULL (said why). */
static const struct command *find_command(struct cli *cli, int argc, char **argv, int *from)
{
    const char *name = argv[1], *verb = argc > 2 ? argv[2] : NULL;
    bool has_verbs = false;
    snprintf(cli->label, sizeof(cli->label), "%s", name);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        if (!commands[i].verb) {
            *from = 2;
            return &commands[i];
        }
        has_verbs = true;
        if (verb && !strcmp(commands[i].verb, verb)) {
            *from = 3;
            snprintf(cli->label, sizeof(cli->label), "%s %s", name, verb);
            return &commands[i];
        }
    }
    if (!has_verbs)
        fail(cli, "no command '%s': sluice help lists them", name);
    else if (verb && verb[0] != '-')
        fail(cli, "no '%s %s': see sluice help %s", name, verb, name);
    return NULL;
}

/* -o, the number of positionals, the client. */
static int prepare(struct cli *cli)
{
    const struct command *c = cli->cmd;
    if (opt.output && strcmp(opt.output, "json") && strcmp(opt.output, "table")) {
        fail(cli, "-o: expected table or json, got '%s'", opt.output);
        return CLI_EXIT_USAGE;
    }
    cli->json = opt.output && !strcmp(opt.output, "json");
    if (cli->nargs < c->min_args || cli->nargs > c->max_args) {
        fail(cli, "expected %s%s (see sluice %s --help)", c->args[0] ? c->args : "no arguments",
             cli->nargs > c->max_args ? " only" : "", cli->label);
        return CLI_EXIT_USAGE;
    }
    client_init(&cli->client, opt.server, opt.token);
    if (opt.timeout_ms != UNSET)
        cli->client.timeout_ms = (long)opt.timeout_ms;
    return CLI_EXIT_OK;
}

int cli_main(int argc, char **argv)
{
    struct cli cli = {0};
    char *v[CLI_ARGV_MAX];
    int from = 2;
    opts_reset();
    if (argc < 2 || !cli_is_command(argv[1])) {
        cli_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    cli.cmd = find_command(&cli, argc, argv, &from);
    bool help = flags_wants(argc, argv, "--help") || flags_wants(argc, argv, "-h");
    if (!cli.cmd) {
        command_usage(help ? stdout : stderr, argv[1], NULL);
        return help ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    if (help) {
        command_usage(stdout, cli.cmd->name, cli.cmd->verb ? cli.cmd : NULL);
        return CLI_EXIT_OK;
    }
    int n = normalize(&cli, argc, argv, from, v);
    if (n < 0)
        return CLI_EXIT_USAGE;
    int rc = parse_args(&cli, n, v);
    if (rc == CLI_EXIT_OK)
        rc = prepare(&cli);
    return rc == CLI_EXIT_OK ? cli.cmd->run(&cli) : rc;
}
