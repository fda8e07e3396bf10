/*
 * slo — service level objectives for the control plane: the definition (validated from
 * JSON), a bounded history of good/total counts, and the maths of the SRE workbook
 * (ch. 5 "Alerting on SLOs"): SLI, burn rates, error budget, time to exhaustion and the
 * multiwindow, multi-burn-rate alert tier. The control plane feeds each SLO's series
 * with the deltas it polls from the agents, evaluates it, serves the status as JSON and
 * persists the series in Redis (key SLO_REDIS_KEY_PREFIX + name) so a restart keeps the
 * history.
 *
 * Pure: time is an argument (now_s, Unix seconds, from the caller's clock), no I/O, no
 * clock reads, no locks. Not thread-safe: one thread owns a series.
 *
 * Definition (JSON members; anything else is rejected with "is not a known field"):
 *   name         required, 1-63 of a-z 0-9 . _ -
 *   service      required, 1-63 of A-Z a-z 0-9 . _ -
 *   route        optional; "" or absent = the whole service, else "other" or a route
 *                template starting with '/', at most 95 printable ASCII characters
 *   kind         required: "availability" (good = answers that are not 5xx) or "latency"
 *                (good = answered within threshold_ms); the caller counts good and total
 *   threshold_ms required for latency (1..600000); rejected for availability
 *   objective    required number, 0 < objective < 1; kept to 9 decimal places: the error
 *                budget is 1e9 - round(objective * 1e9) parts per billion, which must be
 *                at least 1 (so objective <= 0.999999999)
 *   window       optional duration "N" + s|m|h|d ("30d", "28d", "7d", "12h", "90m");
 *   window_s     or the same in seconds; if both are given they must agree. Default 30d.
 *                1h .. 31d and a whole number of SLO_BUCKET_S buckets.
 *   description  optional, at most 200 characters
 * slo_def_to_json writes every member (threshold_ms only for latency) with both window
 * (the largest exact unit) and window_s, so its output parses back to the same def.
 *
 * Series: a ring of window_s / SLO_BUCKET_S buckets of {good, total}, allocated once:
 * 16 bytes a bucket, so a 30-day window (259200 buckets) takes 4,147,200 bytes plus the
 * header (slo_series_bytes), and the largest, 31 days, 4,285,440 bytes. Bucket b holds
 * the Unix seconds [b * 10, b * 10 + 9]. The series remembers its newest bucket (head);
 * it holds buckets (head - nbuckets, head]. Adding in a newer bucket moves head and zeroes
 * the slots it passes over (each slot at most once per move, so a gap longer than the
 * window costs one memset); adding in an older bucket still held counts there (late
 * deltas); older than that is SL_ERANGE. Counts saturate at UINT64_MAX.
 *
 * Spans: a span of span_s seconds at now_s is the ceil(span_s / 10) buckets ending with
 * now's bucket, which is partial: "the last hour" is the current bucket and the 359
 * before it. Spans are clipped to the series' window. Only buckets the series holds
 * count (none newer than head, so a query before head sees less).
 *
 * Maths, over the occurrences in a span (budgeting method "Occurrences"). The SLO's window
 * is the def's, clipped to the series'; burn-rate windows longer than it are clipped to it:
 *   error ratio  = (total - good) / total, 0 when total = 0
 *   burn rate    = error ratio / (1 - objective)   (1 = spending exactly the budget)
 *   budget remaining = 1 - consumed / allowed = 1 - burn rate over the whole window,
 *                where allowed = (1 - objective) * total and consumed = total - good;
 *                1.0 without traffic, 0.0 exactly at budget, negative when overspent
 *   exhaustion   at the 1 h burn rate: remaining * window_s / burn_1h seconds
 *                (SLO_EXHAUST_PROJECTED) when remaining > 0 and burn_1h > 0; if
 *                remaining <= 0 the budget is spent (SLO_EXHAUST_EXHAUSTED, 0 s); if
 *                burn_1h = 0 it is never reached (SLO_EXHAUST_NEVER, INFINITY s)
 * Ratios are computed as bad * 1e9 / (total * budget_ppb) in doubles, so whole-number
 * cases are exact: 1% errors at objective 0.999 burn exactly 10.
 *
 * Alerts (SRE workbook; thresholds tuned for a 30-day window and applied as
 * they are to other windows; each rule needs both of its windows strictly above the
 * threshold, the first rule that fires wins):
 *   page   page_1h_5m    burn 1h > 14.4 and burn 5m > 14.4  (2% of the budget in 1 h)
 *          page_6h_30m   burn 6h > 6    and burn 30m > 6    (5% in 6 h)
 *   ticket ticket_1d_2h  burn 1d > 3    and burn 2h > 3     (10% in 1 d)
 *          ticket_3d_6h  burn 3d > 1    and burn 6h > 1     (10% in 3 d)
 *
 * Persistence (slo_series_encode/decode), version 1, LEB128 varints:
 *   u8 version = 1 | varint ref | varint count | count x {varint back, varint total,
 *   varint bad}
 * The entries are the non-empty buckets the series holds within the window ending with
 * now's bucket (or head, if newer), newest first: entry i's bucket = ref - (back_0 + ... +
 * back_i), where every back after the first is >= 1 (the encoder writes ref = the newest
 * entry's bucket, back_0 = 0); bad = total - good <= total; total >= 1; count <=
 * SLO_BUCKETS_MAX; nothing after the last entry. A quiet bucket takes ~5 bytes, any bucket
 * at most 30 (a 30-day series: ~1.3 MB typical, 7.8 MB at most). Decode checks the whole
 * input before it changes anything (any flaw: SL_EPARSE, series untouched), then adds
 * each bucket into the series (merging: decode into a fresh series at start-up), ignoring
 * buckets older than the window at now_s or newer than now's bucket.
 */
#ifndef SLUICE_SLO_H
#define SLUICE_SLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "json.h"

#define SLO_NAME_MAX         64 /* bytes with the NUL: 63 characters */
#define SLO_SERVICE_MAX      64
#define SLO_ROUTE_MAX        96 /* agent/routes.h ROUTE_NAME_MAX */
#define SLO_DESC_MAX_CHARS   200
#define SLO_DESC_MAX         (SLO_DESC_MAX_CHARS * 4 + 1) /* UTF-8 bytes with the NUL */
#define SLO_THRESHOLD_MAX_MS 600000
#define SLO_BUCKET_S         10
#define SLO_WINDOW_MIN_S     3600u
#define SLO_WINDOW_MAX_S     (31u * 86400u)
#define SLO_WINDOW_DEFAULT_S (30u * 86400u)
#define SLO_BUCKETS_MAX      (SLO_WINDOW_MAX_S / SLO_BUCKET_S) /* 267840 */
#define SLO_REDIS_KEY_PREFIX "sluice:slo:"

enum slo_kind { SLO_AVAILABILITY, SLO_LATENCY };

struct slo_def {
    char name[SLO_NAME_MAX];
    char service[SLO_SERVICE_MAX];
    char route[SLO_ROUTE_MAX]; /* "" = the whole service */
    enum slo_kind kind;
    uint32_t threshold_ms; /* latency: 1..SLO_THRESHOLD_MAX_MS; availability: 0 */
    double objective;      /* 0 < objective < 1, e.g. 0.999 */
    uint32_t window_s;     /* SLO_WINDOW_MIN_S..SLO_WINDOW_MAX_S, a multiple of 10 */
    char description[SLO_DESC_MAX];
};

/* Validate one definition. 0, or SL_EINVAL with every problem in fe, each named
 * "<prefix><field>" (prefix may be NULL or e.g. "slos[2]."); out is then unspecified. */
int slo_def_from_json(const json_t *obj, struct slo_def *out, struct field_errors *fe,
                      const char *prefix);
/* New object (see the top comment), NULL on allocation failure. */
json_t *slo_def_to_json(const struct slo_def *def);
const char *slo_kind_name(enum slo_kind kind);

/* --- series ----------------------------------------------------------------------- */
struct slo_series;

/* An empty series for window_s (SLO_WINDOW_MIN_S..SLO_WINDOW_MAX_S, a multiple of
 * SLO_BUCKET_S). NULL if window_s is not, or on allocation failure. */
struct slo_series *slo_series_new(uint32_t window_s);
void slo_series_free(struct slo_series *s);
uint32_t slo_series_window_s(const struct slo_series *s);
/* Bytes allocated for the series: header + 16 per bucket. */
size_t slo_series_bytes(const struct slo_series *s);
/* Count total requests of which good were good in now's bucket. 0; SL_EINVAL if
 * good > total (nothing counted); SL_ERANGE if the bucket is older than those held. */
int slo_series_add(struct slo_series *s, uint64_t now_s, uint64_t good, uint64_t total);
/* Sums over the span_s seconds at now_s (see "Spans" above). */
void slo_series_sum(const struct slo_series *s, uint64_t now_s, uint64_t span_s, uint64_t *good,
                    uint64_t *total);

/* Compact bytes of the series at now_s (see "Persistence"); *out is malloc'd. 0 or
 * SL_ENOMEM. */
int slo_series_encode(const struct slo_series *s, uint64_t now_s, char **out, size_t *len);
/* Merge encoded bytes into s. 0, or SL_EPARSE with s unchanged. */
int slo_series_decode(struct slo_series *s, const char *data, size_t len, uint64_t now_s);

/* --- evaluation ------------------------------------------------------------------- */
enum slo_burn_window {
    SLO_BURN_5M,
    SLO_BURN_30M,
    SLO_BURN_1H,
    SLO_BURN_2H,
    SLO_BURN_6H,
    SLO_BURN_1D,
    SLO_BURN_3D,
    SLO_BURN_WINDOWS
};
const char *slo_burn_window_name(enum slo_burn_window w); /* "5m", "30m", ... */
uint32_t slo_burn_window_s(enum slo_burn_window w);

enum slo_alert { SLO_ALERT_NONE, SLO_ALERT_TICKET, SLO_ALERT_PAGE };
enum slo_rule {
    SLO_RULE_NONE,
    SLO_RULE_PAGE_1H_5M,
    SLO_RULE_PAGE_6H_30M,
    SLO_RULE_TICKET_1D_2H,
    SLO_RULE_TICKET_3D_6H
};
enum slo_exhaustion { SLO_EXHAUST_NEVER, SLO_EXHAUST_PROJECTED, SLO_EXHAUST_EXHAUSTED };
const char *slo_alert_name(enum slo_alert a);           /* "none", "ticket", "page" */
const char *slo_rule_name(enum slo_rule r);             /* "page_1h_5m", ...; NULL for none */
const char *slo_exhaustion_name(enum slo_exhaustion e); /* "never", "projected", "exhausted" */

struct slo_status {
    uint32_t window_s;    /* the def's window, clipped to the series' */
    uint64_t good, total; /* over the window */
    bool has_data;        /* total > 0 */
    double sli;           /* good / total; NAN without data */
    double burn[SLO_BURN_WINDOWS];
    double budget_remaining;
    enum slo_exhaustion exhaustion;
    double exhaustion_s; /* PROJECTED: seconds; EXHAUSTED: 0; NEVER: INFINITY */
    enum slo_alert alert;
    enum slo_rule rule; /* the rule that set alert; SLO_RULE_NONE with SLO_ALERT_NONE */
};

/* The alert tier for burn rates indexed by enum slo_burn_window; *rule says why. */
enum slo_alert slo_alert_classify(const double burn[SLO_BURN_WINDOWS], enum slo_rule *rule);
/* Evaluate def over s at now_s. 0, or SL_EINVAL if def's objective is out of range. */
int slo_evaluate(const struct slo_def *def, const struct slo_series *s, uint64_t now_s,
                 struct slo_status *out);
/* {"name", "service", "route", "kind", "objective", "window_s", "good", "total",
 *  "has_data", "sli" (null without data), "burn_rates": {"5m": .., ..., "3d": ..},
 *  "error_budget_remaining", "exhaustion", "time_to_exhaustion_s" (seconds rounded
 *  down; null when never), "alert", "rule" (null for none)}. NULL on allocation failure. */
json_t *slo_status_to_json(const struct slo_def *def, const struct slo_status *st);

#endif
