/*
 * prom — writes the Prometheus text exposition format 0.0.4 into a struct buf, for the
 * GET /metrics of the agent and of the control plane. Pure: no I/O.
 *
 * A struct prom walks one exposition: prom_family() opens a metric family (writes its
 * "# HELP" and "# TYPE" lines) and the samples written after it belong to it —
 * prom_sample() for counters, gauges and untyped, prom_histogram() for histograms — so
 * that a family's lines are always contiguous and the sample names always match it:
 *
 *     struct prom w;
 *     prom_init(&w, &out);
 *     prom_family(&w, "sluice_requests_total", PROM_COUNTER, "Requests proxied.");
 *     prom_sample(&w, (struct prom_label[]){{"route", "/v1/links"}}, 1, 1027);
 *     prom_family(&w, "sluice_request_duration_seconds", PROM_HISTOGRAM, "Latency.");
 *     prom_histogram(&w, NULL, 0, &hist_us, &prom_le_latency_us);
 *
 * Rules enforced (each broken rule is an error and writes nothing):
 *  - metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*
 *    and do not start with "__" (reserved), at most PROM_NAME_MAX bytes (SL_EINVAL);
 *  - a counter family's name ends in "_total" and its values are >= 0 (SL_EINVAL,
 *    SL_ERANGE); help text is non-empty;
 *  - a family is opened once per exposition (SL_EEXISTS), at most PROM_MAX_FAMILIES
 *    (SL_ERANGE); a sample needs an open family of its kind (SL_EINVAL);
 *  - a sample has at most PROM_MAX_LABELS labels, no label name twice, no "le" label on
 *    a histogram; help and label values are valid UTF-8 (SL_EINVAL);
 *  - when the buffer reaches its maximum: SL_ETOOBIG.
 * Any failing call leaves the buffer as it was, so the caller may skip the sample and go
 * on. Label values escape \ " and newline as \\ \" \n; help text escapes \ and newline.
 * Numbers: %.15g, or %.16g / %.17g where needed to read back as the same double, always
 * with '.' whatever LC_NUMERIC says; NaN, +Inf, -Inf as the format spells them.
 *
 * The struct prom refers to the buffer by offsets: the buffer may only grow (appends)
 * while a struct prom writes into it; prom_init again to start a new exposition.
 */
#ifndef SLUICE_PROM_H
#define SLUICE_PROM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "histogram.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define PROM_NAME_MAX     128
#define PROM_MAX_FAMILIES 256
#define PROM_MAX_LABELS   16
#define PROM_LE_MAX       32

enum prom_type { PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM, PROM_UNTYPED };

struct prom_label {
    const char *name;
    const char *value;
};

/* The "le" bounds of exported histograms, in the histogram's unit, strictly ascending;
 * values, bounds and _sum are divided by divisor on output (1e6: µs → seconds). */
struct prom_le_set {
    const uint64_t *bounds;
    size_t n; /* <= PROM_LE_MAX */
    double divisor;
};

/* Latencies recorded in µs, exported in seconds (the Prometheus base unit):
 * le = 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 +Inf.
 * None of these is a histogram bucket boundary: see histogram_le_counts for the
 * (conservative, < 1/32) rounding. */
extern const struct prom_le_set prom_le_latency_us;

struct prom {
    struct buf *out;
    char family[PROM_NAME_MAX + 1]; /* the open family; "" before the first */
    enum prom_type type;            /* of the open family */
    size_t nfamilies;
    size_t family_at[PROM_MAX_FAMILIES]; /* offset of each family's name in out */
};

void prom_init(struct prom *w, struct buf *out);
/* Open a family: "# HELP name help" and "# TYPE name type". */
int prom_family(struct prom *w, const char *name, enum prom_type type, const char *help);
/* One sample of the open counter, gauge or untyped family: name{labels} value. */
int prom_sample(struct prom *w, const struct prom_label *labels, size_t nlabels, double value);
/* One histogram of the open histogram family: name_bucket{labels,le="..."} (cumulative,
 * ending le="+Inf"), name_sum, name_count; _count equals the +Inf bucket. */
int prom_histogram(struct prom *w, const struct prom_label *labels, size_t nlabels,
                   const struct histogram *h, const struct prom_le_set *le);

bool prom_name_is_valid(const char *name);
bool prom_label_name_is_valid(const char *name);

#endif
