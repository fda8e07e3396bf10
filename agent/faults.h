/*
 * faults — fault injection rules of the agent (Toxiproxy/Envoy-style, at HTTP level).
 *
 * A fault set is one JSON document (DESIGN §4.1); PUT replaces it whole, DELETE clears it,
 * and every fault carries a mandatory ttl_s (1–3600) after which it no longer applies:
 * a forgotten drill cannot outlive its TTL. Pure: time and random numbers are arguments,
 * so tests drive them exactly. The proxy evaluates a set per request with fault_decide;
 * the admin API swaps sets atomically (the caller owns publication, e.g. an RCU-style
 * pointer swap), never editing one in place.
 */
#ifndef AGENT_FAULTS_H
#define AGENT_FAULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"

#define FAULTS_MAX 16
#define FAULT_PREFIX_MAX 128
#define FAULT_TTL_MAX_S 3600
#define FAULT_DELAY_MAX_MS 60000

enum fault_kind { FAULT_DELAY, FAULT_ABORT, FAULT_RESET, FAULT_BLACKHOLE };

struct fault {
    enum fault_kind kind;
    uint32_t ms;        /* delay */
    uint32_t jitter_ms; /* delay: uniformly ± this much */
    int status;         /* abort: 400–599 */
    uint32_t percent;   /* 0–100 of matching requests (default 100) */
    char path_prefix[FAULT_PREFIX_MAX]; /* "" matches every path */
    uint32_t ttl_s;
    uint64_t expires_ms; /* monotonic ms */
};

struct fault_set {
    struct fault items[FAULTS_MAX];
    size_t n;
};

/* What to do with one request. delay_ms is applied first, then the rest. */
struct fault_decision {
    uint32_t delay_ms;
    int abort_status; /* 0 = none */
    bool reset;
    bool blackhole;
};

/* Parses {"faults":[...]}. SL_EPARSE (not JSON; message in jerr) or SL_EINVAL with every
 * bad field in fe ("faults[1].ttl_s": "is required"). now_ms starts the TTLs. */
int fault_set_parse(const char *body, size_t len, uint64_t now_ms, struct fault_set *out,
                    struct field_errors *fe, char jerr[JSON_ERR_MAX]);
/* {"faults":[... with "expires_in_s"]} of the faults still active at now_ms. */
json_t *fault_set_to_json(const struct fault_set *set, uint64_t now_ms);
/* Active faults at now_ms (expired ones no longer count). */
size_t fault_set_active(const struct fault_set *set, uint64_t now_ms);
/* Decides for a request path; rnd() gives uniform 32-bit numbers (one per roll). Returns
 * true when any fault applies. */
bool fault_decide(const struct fault_set *set, const char *path, size_t path_len,
                  uint64_t now_ms, uint32_t (*rnd)(void *), void *rnd_arg,
                  struct fault_decision *out);
const char *fault_kind_name(enum fault_kind kind);

#endif
