/*
 * sluice-loadgen — the sample API's load generator (DESIGN §5; issue 10).
 *
 * Open loop, like wrk2: requests are sent at a constant rate on a fixed schedule, and
 * each latency is measured from the time the request was *intended* to go out, so a
 * stalled server is charged for every request it held up (no coordinated omission;
 * shared/pacer.h). The mix of requests, the API keys and their shares, and how popular
 * each link is (Zipf) come from a scenario file (scenario.h); a seed fixes every pick
 * (plan.h), so two runs with one seed send the same requests in the same order.
 *
 * Data flow: flags + scenario → plan (what request n is) + pacer (when) → driver (libcurl
 * multi on the event loop, `connections` requests in flight at most) → tally (counts,
 * histograms, per-second timeline) → report (progress line on stderr each second, the
 * summary on stdout, the JSON report file).
 *
 * Live control, for drills: SIGUSR1 doubles the rate, SIGUSR2 halves it, and with
 * --admin HOST:PORT, PUT /v1/rate {"rate": N} sets it and GET /v1/status shows the run
 * (admin.h). SIGTERM or SIGINT ends the run with its summary and report (a second one
 * ends it at once).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "driver.h"
#include "err.h"
#include "flags.h"
#include "log.h"
#include "plan.h"
#include "report.h"
#include "rng.h"
#include "scenario.h"
#include "tally.h"
#include "version.h"

#define PROG         "sluice-loadgen"
#define PLAN_MAX     10000000 /* --print-plan lines */
#define DURATION_MAX 31536000 /* one year, in seconds */

#define LOADGEN_USAGE                                                                              \
    "usage: sluice-loadgen [--target URL] [--scenario FILE] [--rate N] [--duration S]\n"           \
    "                      [--keys KEY1,KEY2,...] [--seed N] [--report FILE.json]\n"               \
    "                      [--admin HOST:PORT] [--connections N] [--quiet]\n"                      \
    "       sluice-loadgen --print-plan N [--scenario FILE] [--keys ...] [--seed N] [--rate N]\n"  \
    "\n"                                                                                           \
    "Open-loop load for the sample API (docs/shortener.md): requests at a constant rate on\n"      \
    "a fixed schedule, each latency measured from its intended send time (as wrk2 does),\n"        \
    "so a slow server cannot slow the measurement down. First the scenario's links are\n"          \
    "created (POST /v1/links); then the mix is sent: create (POST /v1/links), read\n"              \
    "(GET /v1/links/{code}), redirect (GET /{code}), stats (GET /v1/links/{code}/stats),\n"        \
    "bulk (POST /v1/links/bulk), each with one of the keys, picked by share. Link\n"               \
    "popularity is Zipf: a few hot links, a long tail. One seed, one sequence of requests.\n"      \
    "\n"                                                                                           \
    "Scenario (JSON; without --scenario the built-in one: the mix below, 100 links):\n"            \
    "  {\"mix\": {\"create\": 5, \"read\": 20, \"redirect\": 70, \"stats\": 4, \"bulk\": 1},\n"    \
    "   \"links\": 1000, \"zipf_s\": 1.1, \"bulk_size\": 10,\n"                                    \
    "   \"keys\": [{\"name\": \"app\", \"share\": 0.7},\n"                                         \
    "            {\"name\": \"abusive\", \"share\": 0.3, \"mix\": {\"create\": 80, \"redirect\": " \
    "20}}]}\n"                                                                                     \
    "  --keys gives the secrets, the i-th for the i-th key (or, for a scenario without\n"          \
    "  keys, one key each with equal shares). The abusive client is a key with a large\n"          \
    "  share of the traffic (and often a mix of its own), for a per-key limit to catch.\n"         \
    "\n"                                                                                           \
    "While it runs: SIGUSR1 doubles the rate, SIGUSR2 halves it; with --admin,\n"                  \
    "PUT /v1/rate {\"rate\": N} sets it (0 pauses) and GET /v1/status shows the run.\n"            \
    "SIGTERM/SIGINT stop it with the summary and the report. Exit status: 0 after a run\n"         \
    "(whatever the answers), 1 when the setup or the report failed, 2 for bad usage."

struct loadgen_cfg {
    const char *target, *scenario, *rate, *seed, *keys, *report, *admin;
    unsigned long duration_s, connections, timeout_ms, print_plan;
    bool quiet;
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see --help)\n");
    va_end(ap);
    return 2;
}

/* "http[s]://host[:port]" without a path or a trailing slash, into out. */
static bool target_ok(const char *s, char out[DRIVER_TARGET_MAX])
{
    size_t skip = strncmp(s, "http://", 7) == 0 ? 7 : strncmp(s, "https://", 8) == 0 ? 8 : 0;
    size_t len = strlen(s);
    while (len > skip && s[len - 1] == '/')
        len--;
    if (!skip || len == skip || len >= DRIVER_TARGET_MAX || memchr(s + skip, '/', len - skip) ||
        strpbrk(s, " \t\r\n?#"))
        return false;
    snprintf(out, DRIVER_TARGET_MAX, "%.*s", (int)len, s);
    return true;
}

static bool parse_rate(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0 && v <= DRIVER_RATE_MAX))
        return false;
    *out = v;
    return true;
}

static bool parse_seed(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *out = v;
    return true;
}

/* The scenario (file or built-in) with its secrets, checked. */
static int load_scenario(const struct loadgen_cfg *c, struct scenario *sc)
{
    char err[SCENARIO_ERR_MAX];
    int rc = SL_OK;
    if (c->scenario)
        rc = scenario_load(sc, c->scenario, err);
    else
        scenario_default(sc);
    if (rc == SL_EPARSE) {
        fprintf(stderr, PROG ": --scenario: %s\n", err);
        return 2;
    }
    if (rc != SL_OK) {
        for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
            fprintf(stderr, PROG ": scenario %s: %s\n", c->scenario, line);
        return 2;
    }
    if ((c->keys && scenario_apply_secrets(sc, c->keys, err) != SL_OK) ||
        scenario_check(sc, c->print_plan == 0, err) != SL_OK) {
        fprintf(stderr, PROG ": %s\n", err);
        return 2;
    }
    return 0;
}

static void print_plan(const struct plan *p, const struct scenario *sc, double rate, uint64_t n)
{
    printf("# sluice-loadgen plan: seed %" PRIu64 ", rate %g/s, %zu links, keys", p->seed, rate,
           sc->links);
    for (size_t k = 0; k < sc->nkeys; k++)
        printf("%s%s", k ? "," : " ", sc->keys[k].name);
    printf("\n# seq\tat_ms\tkind\tkey\tlink\n");
    for (uint64_t i = 0; i < n; i++) {
        struct plan_req r;
        plan_at(p, i, &r);
        double at_ms = rate > 0 ? (double)i * 1000.0 / rate : 0;
        if (r.link >= 0)
            printf("%" PRIu64 "\t%.3f\t%s\t%s\t%" PRId64 "\n", i, at_ms, kind_name(r.kind),
                   sc->keys[r.key].name, r.link);
        else
            printf("%" PRIu64 "\t%.3f\t%s\t%s\t-\n", i, at_ms, kind_name(r.kind),
                   sc->keys[r.key].name);
    }
}

static int run(const struct loadgen_cfg *c, const struct scenario *sc, const struct plan *p,
               const char *target, double rate)
{
    struct driver_config dc = {.target = target,
                               .admin = c->admin,
                               .rate = rate,
                               .duration_s = c->duration_s,
                               .connections = (unsigned)c->connections,
                               .timeout_ms = c->timeout_ms,
                               .quiet = c->quiet};
    struct report_run rr = {.target = target,
                            .scenario = c->scenario ? c->scenario : "(built-in)",
                            .seed = p->seed,
                            .rate = rate,
                            .duration_s = c->duration_s,
                            .connections = (unsigned)c->connections,
                            .timeout_ms = c->timeout_ms};
    struct tally *t = calloc(1, sizeof(*t));
    if (!t) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    char err[DRIVER_ERR_MAX];
    int rc = driver_run(&dc, sc, p, t, &rr, err) == SL_OK ? 0 : 1;
    if (rc)
        fprintf(stderr, PROG ": %s\n", err);
    if (t->total.sent || !rc)
        report_summary(stdout, t, sc, &rr);
    if (c->report) {
        char werr[256];
        json_t *doc = report_json(t, sc, &rr);
        if (!doc || report_write(c->report, doc, werr) != SL_OK) {
            fprintf(stderr, PROG ": %s\n", doc ? werr : "out of memory for the report");
            rc = 1;
        }
        json_decref(doc);
    }
    free(t);
    return rc;
}

int main(int argc, char **argv)
{
    struct loadgen_cfg c = {
        .target = "http://127.0.0.1:8080", .rate = "50", .connections = 32, .timeout_ms = 10000};
    const struct flag table[] = {
        {"target", FLAG_STRING, &c.target, "URL", "the API's base URL (http://127.0.0.1:8080)", 0,
         0, "SLUICE_LOADGEN_TARGET"},
        {"scenario", FLAG_STRING, &c.scenario, "FILE", "scenario JSON (built-in mix)", 0, 0,
         "SLUICE_LOADGEN_SCENARIO"},
        {"rate", FLAG_STRING, &c.rate, "N", "requests per second, 0-1000000, fractions ok (50)", 0,
         0, "SLUICE_LOADGEN_RATE"},
        {"duration", FLAG_UINT, &c.duration_s, "S", "seconds of load; 0: until SIGTERM (0)", 0,
         DURATION_MAX, "SLUICE_LOADGEN_DURATION"},
        {"keys", FLAG_STRING, &c.keys, "KEY,...", "API key secrets, in the scenario's key order", 0,
         0, "SLUICE_LOADGEN_KEYS"},
        {"seed", FLAG_STRING, &c.seed, "N", "seed of every pick (random, printed in the report)", 0,
         0, "SLUICE_LOADGEN_SEED"},
        {"connections", FLAG_UINT, &c.connections, "N", "requests in flight at most (32)", 1,
         DRIVER_CONNECTIONS_MAX, "SLUICE_LOADGEN_CONNECTIONS"},
        {"timeout-ms", FLAG_UINT, &c.timeout_ms, "MS", "one request's deadline (10000)", 1, 600000,
         "SLUICE_LOADGEN_TIMEOUT_MS"},
        {"report", FLAG_STRING, &c.report, "FILE", "write the JSON report here at the end", 0, 0,
         "SLUICE_LOADGEN_REPORT"},
        {"admin", FLAG_STRING, &c.admin, "HOST:PORT",
         "control endpoint: GET /v1/status, PUT /v1/rate (off)", 0, 0, "SLUICE_LOADGEN_ADMIN"},
        {"quiet", FLAG_BOOL, &c.quiet, NULL, "no progress line (the summary still prints)", 0, 0,
         "SLUICE_LOADGEN_QUIET"},
        {"print-plan", FLAG_UINT, &c.print_plan, "N",
         "print the first N planned requests and exit, sending nothing", 1, PLAN_MAX,
         "SLUICE_LOADGEN_PRINT_PLAN"},
        {0},
    };
    if (flags_wants(argc, argv, "--help")) {
        flags_usage(stdout, LOADGEN_USAGE, table);
        return 0;
    }
    if (flags_wants(argc, argv, "--version")) {
        printf(PROG " %s\n", SLUICE_VERSION);
        return 0;
    }
    char err[FLAGS_ERR_MAX], target[DRIVER_TARGET_MAX];
    int pos;
    if (flags_parse(table, argc, argv, &pos, err) || flags_apply_env(table, err)) {
        fprintf(stderr, PROG ": %s\n", err);
        return 2;
    }
    if (pos != argc)
        return usage_error("unexpected argument '%s'", argv[pos]);
    if (!target_ok(c.target, target))
        return usage_error("--target: expected http://HOST[:PORT] with no path, got '%s'",
                           c.target);
    double rate;
    if (!parse_rate(c.rate, &rate))
        return usage_error("--rate: expected requests per second from 0 to 1000000, got '%s'",
                           c.rate);
    uint64_t seed = rng_u64();
    if (c.seed && !parse_seed(c.seed, &seed))
        return usage_error("--seed: expected an integer from 0 to 18446744073709551615, got '%s'",
                           c.seed);
    struct scenario *sc = calloc(1, sizeof(*sc));
    struct plan p;
    if (!sc) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    int rc = load_scenario(&c, sc);
    if (rc == 0 && plan_init(&p, sc, seed) != SL_OK) {
        fprintf(stderr, PROG ": out of memory for the plan\n");
        rc = 1;
    } else if (rc == 0) {
        if (c.print_plan) {
            print_plan(&p, sc, rate, c.print_plan);
        } else {
            log_setup(PROG, LOG_WARN, 2);
            curl_global_init(CURL_GLOBAL_DEFAULT);
            rc = run(&c, sc, &p, target, rate);
            curl_global_cleanup();
        }
        plan_release(&p);
    }
    free(sc);
    return rc;
}
