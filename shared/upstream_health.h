/*
 * upstream_health — which of the gateway's upstreams may take a new request. It merges
 * three sources of truth about each upstream into one answer for the balancer:
 *
 *   active checks (prober)     ─► uh_check_result   ─┐
 *   registry / readyz          ─► uh_set_admin      ─┼─► uh_eligible / uh_routable ─► balancer
 *   proxied request outcomes   ─► uh_request_result ─┘         (weights are its business)
 *
 * Pure (STYLE "pure core, thin shell"): no I/O, no clock reads, no allocation after
 * uh_pool_new; time is now_ms from one monotonic clock, passed in. Not thread-safe: every
 * call, queries included, must hold the caller's lock (queries are const and do not write,
 * so a read lock suffices for them).
 *
 * The pool holds up to UH_MAX_UPSTREAMS upstreams addressed by an index the caller chooses
 * (0 .. UH_MAX_UPSTREAMS-1, e.g. the balancer's or the hashring's index). A removed index
 * may be added again and starts afresh. Calls naming an index that is not in the pool are
 * no-ops (a probe may finish after its upstream was deregistered): they return no events,
 * queries answer false/NULL.
 *
 * Active health — HAProxy `check inter 2s rise 2 fall 3`. A DOWN upstream becomes UP after
 * `rise` consecutive successful checks; an UP one becomes DOWN after `fall` consecutive
 * failed checks; a result of the other kind restarts the count. (These are the consecutive
 * counts HAProxy documents; HAProxy's code keeps one health counter in which a success
 * only undoes one earlier failure — we do not.) A new upstream starts as cfg.initial says,
 * named after HAProxy's `init-state`:
 *   UH_INIT_DOWN (default)  "unknown": not routable; the first success makes it UP, the
 *                           first failure makes it DOWN (then it needs `rise`). So a newly
 *                           registered replica joins once it has answered one probe.
 *   UH_INIT_FULLY_DOWN      DOWN: needs `rise` successes.
 *   UH_INIT_UP              UP at once; the first failure makes it DOWN.
 *   UH_INIT_FULLY_UP        UP at once; needs `fall` failures.
 * interval_ms and timeout_ms are for the prober (uh_next_check_ms; a timed-out probe is a
 * failed check): this module never waits.
 *
 * Administrative state — from the registry or the upstream's readyz; the caller maps (a
 * readyz 503 means UH_DRAINING). Only UH_SERVING takes new requests, also in panic:
 * draining = finishing what it has; drained = finished; maint = taken out by an operator.
 *
 * Passive outlier detection — Envoy's consecutive_5xx with split_external_local_origin_
 * errors: two independent streaks. The caller maps a proxied request's outcome:
 * UH_OUTCOME_CONNECT_FAIL = no connection (refused, reset or timed out while connecting);
 * UH_OUTCOME_HTTP_5XX = the upstream answered 5xx (or timed out after connecting: the
 * gateway answers 504 for it); anything else is UH_OUTCOME_OK.
 *   - OK resets both streaks. HTTP_5XX extends the 5xx streak and resets the connect
 *     streak (connecting worked). CONNECT_FAIL extends the connect streak and leaves the
 *     5xx streak alone (no answer says nothing about the application).
 *   - A streak reaching its threshold (consecutive_5xx, default 5;
 *     consecutive_connect_failures, default 3; 0 turns that detector off) ejects the
 *     upstream, both streaks restart at 0. Outcomes that arrive while it is ejected are
 *     counted but extend no streak.
 *   - Ejection budget: an ejection happens only if afterwards at most
 *     max(1, floor(upstreams * max_ejection_percent / 100)) upstreams are ejected, where
 *     upstreams counts the whole pool. So 10 upstreams at 10 % allow 1, 19 allow 1, 20
 *     allow 2, and any pool allows 1 (Envoy: "at least one host is ejected regardless").
 *     A refused ejection counts in ejections_overflow; the streak stays at its threshold,
 *     so the next failure tries again. To turn ejection off, set both thresholds to 0.
 *   - Duration (Envoy): base_ejection_ms × m, capped at max_ejection_ms, where m is the
 *     ejection multiplier after this ejection: the previous multiplier, minus one for
 *     every full ejection_decay_ms spent not ejected since the previous ejection ended
 *     (floor 0; 0 ms = never decays), plus one; m stops growing once base × m reaches the
 *     cap. An upstream ejected at t for d ms is ejected for now in [t, t + d) exactly.
 *
 * Eligible = UH_SERVING and UP and not ejected. Panic (Envoy): when the eligible share of
 * the panic base is below panic_threshold_percent — eligible × 100 < threshold × base,
 * strictly — the pool is in panic, and every upstream of the panic base is routable,
 * whatever its health or ejection. The panic base is the upstreams that are UH_SERVING
 * and not "unknown": an operator draining half the pool, or new replicas not yet probed
 * (Envoy's ignore_new_hosts_until_first_hc), must not push traffic onto dead ones. An
 * empty base is not panic; threshold 0 turns panic off. Routable = panic ? in the base :
 * eligible.
 *
 * Events: every call that changes state returns a set of UH_EV_* bits, each transition
 * reported exactly once, so the caller logs "upstream 3 down" once. Ejections end with
 * time; that end (UH_EV_RETURNED) and any panic change it causes are reported by
 * uh_tick or by the next call on that upstream, whichever comes first. Queries never
 * lag: they answer for the now_ms they are given. UH_EV_ELIGIBLE / UH_EV_INELIGIBLE
 * report the net change of uh_eligible over the call; PANIC_ON/OFF the pool's panic.
 * Together they say exactly when uh_routable changes.
 *
 * Time going backwards (now_ms earlier than before) is not an error: an ejection lasts
 * until its end time whatever now_ms says, and elapsed times clamp at 0.
 */
#ifndef SLUICE_UPSTREAM_HEALTH_H
#define SLUICE_UPSTREAM_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UH_MAX_UPSTREAMS 256
#define UH_STREAK_MAX    1000      /* bound on rise, fall and the outlier thresholds */
#define UH_TIME_MAX_MS   86400000u /* one day: bound on every configured duration */
#define UH_POOL          (-1)      /* uh_change.idx of a pool-level event (panic) */

enum uh_initial {
    UH_INIT_DOWN, /* "unknown" until the first check: default */
    UH_INIT_FULLY_DOWN,
    UH_INIT_UP,
    UH_INIT_FULLY_UP,
};

enum uh_admin {
    UH_SERVING,
    UH_DRAINING,
    UH_DRAINED,
    UH_MAINT,
};

enum uh_health {
    UH_UNKNOWN, /* UH_INIT_DOWN and no check result yet */
    UH_UP,
    UH_DOWN,
};

enum uh_outcome {
    UH_OUTCOME_OK,
    UH_OUTCOME_HTTP_5XX,
    UH_OUTCOME_CONNECT_FAIL,
};

/* Event bits returned by the calls that change state. */
enum uh_event {
    UH_EV_UP = 1u << 0,         /* active health: unknown/DOWN → UP */
    UH_EV_DOWN = 1u << 1,       /* active health: unknown/UP → DOWN */
    UH_EV_EJECTED = 1u << 2,    /* outlier detection ejected it */
    UH_EV_RETURNED = 1u << 3,   /* its ejection ended */
    UH_EV_ADMIN = 1u << 4,      /* administrative state changed */
    UH_EV_ELIGIBLE = 1u << 5,   /* uh_eligible turned true */
    UH_EV_INELIGIBLE = 1u << 6, /* uh_eligible turned false */
    UH_EV_PANIC_ON = 1u << 7,   /* the pool entered panic */
    UH_EV_PANIC_OFF = 1u << 8,  /* the pool left panic */
};

struct uh_config {
    uint32_t interval_ms;                  /* between active checks; default 2000 */
    uint32_t timeout_ms;                   /* a probe's deadline; default 1000 */
    uint32_t rise;                         /* default 2 */
    uint32_t fall;                         /* default 3 */
    enum uh_initial initial;               /* default UH_INIT_DOWN */
    uint32_t consecutive_5xx;              /* default 5; 0 = off */
    uint32_t consecutive_connect_failures; /* default 3; 0 = off */
    uint32_t base_ejection_ms;             /* default 30000 */
    uint32_t max_ejection_ms;              /* default 300000; >= base_ejection_ms */
    uint32_t ejection_decay_ms;            /* default 10000 (Envoy's interval); 0 = never */
    uint32_t max_ejection_percent;         /* default 10; 0..100 */
    uint32_t panic_threshold_percent;      /* default 50; 0..100, 0 = never panic */
};

/* Per-upstream counters since uh_add (Prometheus counters). */
struct uh_counters {
    uint64_t checks_ok, checks_failed;
    uint64_t requests_ok, requests_5xx, connect_failures;
    uint64_t ejections;          /* times ejected */
    uint64_t ejections_overflow; /* ejections refused by the budget */
    uint64_t transitions;        /* UP, DOWN, EJECTED, RETURNED and ADMIN events */
};

/* One upstream at now_ms, for stats (no JSON here). */
struct uh_snapshot {
    const char *state; /* uh_state_str */
    enum uh_health health;
    enum uh_admin admin;
    bool ejected, eligible, routable;
    uint32_t ok_streak;   /* consecutive successes toward rise (0 while UP) */
    uint32_t fail_streak; /* consecutive failures toward fall (0 while DOWN) */
    uint32_t streak_5xx, streak_connect;
    uint32_t ejection_multiplier; /* after decay at now_ms */
    uint64_t ejected_until_ms;    /* end of the ejection; 0 when not ejected */
    uint64_t next_check_ms;       /* uh_next_check_ms */
    struct uh_counters counters;
};

/* The pool at now_ms. */
struct uh_pool_stats {
    size_t upstreams;  /* in the pool */
    size_t panic_base; /* UH_SERVING and not unknown */
    size_t eligible;
    size_t ejected;
    size_t routable;
    bool panic;
};

/* One entry of uh_tick's output. */
struct uh_change {
    int idx;         /* the upstream, or UH_POOL for PANIC_ON/OFF */
    unsigned events; /* UH_EV_* bits */
};

struct uh_pool;

/* The defaults listed in struct uh_config. */
void uh_config_default(struct uh_config *cfg);
/* SL_OK or SL_EINVAL with the offending field named in why (may be NULL). */
int uh_config_check(const struct uh_config *cfg, const char **why);

/* NULL when out of memory or cfg fails uh_config_check. The pool copies cfg. */
struct uh_pool *uh_pool_new(const struct uh_config *cfg);
void uh_pool_free(struct uh_pool *h);
const struct uh_config *uh_pool_config(const struct uh_pool *h);

/* Register upstream idx: UH_SERVING, health per cfg.initial, streaks and counters 0. Its
 * first check is due at now_ms. *events (may be NULL) gets ELIGIBLE (UH_INIT_UP/FULLY_UP)
 * and panic bits. SL_OK, SL_ERANGE (idx outside 0..UH_MAX_UPSTREAMS-1), SL_EEXISTS. */
int uh_add(struct uh_pool *h, int idx, uint64_t now_ms, unsigned *events);
/* Forget upstream idx. *events (may be NULL) gets panic bits. SL_OK or SL_ENOTFOUND. */
int uh_remove(struct uh_pool *h, int idx, uint64_t now_ms, unsigned *events);
/* Number of upstreams in the pool. */
size_t uh_size(const struct uh_pool *h);

/* The outcome of one active check at now_ms. */
unsigned uh_check_result(struct uh_pool *h, int idx, bool ok, uint64_t now_ms);
/* The outcome of one proxied request at now_ms. An outcome outside enum uh_outcome is
 * ignored. */
unsigned uh_request_result(struct uh_pool *h, int idx, enum uh_outcome outcome, uint64_t now_ms);
/* Set the administrative state; setting the current one is no event. A value outside
 * enum uh_admin is ignored. */
unsigned uh_set_admin(struct uh_pool *h, int idx, enum uh_admin admin, uint64_t now_ms);
/* Report ejections that have ended by now_ms and the panic change they cause: writes up
 * to cap entries to out, upstreams in index order, then UH_POOL; returns how many.
 * What does not fit stays pending for the next call (cap UH_MAX_UPSTREAMS + 1 fits all).
 * Call it about once a second, or when uh_next_expiry_ms is reached. */
size_t uh_tick(struct uh_pool *h, uint64_t now_ms, struct uh_change *out, size_t cap);
/* The earliest end of a pending ejection, UINT64_MAX when none: when uh_tick has work. */
uint64_t uh_next_expiry_ms(const struct uh_pool *h);

/* UH_SERVING and UP and not ejected at now_ms. */
bool uh_eligible(const struct uh_pool *h, int idx, uint64_t now_ms);
/* Whether the pool is in panic at now_ms. O(upstreams). */
bool uh_panic(const struct uh_pool *h, uint64_t now_ms);
/* May the balancer send idx a new request: uh_eligible, or in panic anything UH_SERVING
 * and not unknown. O(upstreams) because of the panic rule: to judge the whole pool, use
 * uh_routable_all. */
bool uh_routable(const struct uh_pool *h, int idx, uint64_t now_ms);
/* out[i] = uh_routable(h, i, now_ms) for every index; returns how many are true. */
size_t uh_routable_all(const struct uh_pool *h, uint64_t now_ms, bool out[UH_MAX_UPSTREAMS]);
/* When the next active check of idx is due: its last check result + interval_ms, or the
 * time it was added if it has none. UINT64_MAX for an index not in the pool. */
uint64_t uh_next_check_ms(const struct uh_pool *h, int idx);

/* The first that applies: "maint", "drained", "draining" (admin), "unknown", "down"
 * (health), "ejected", else "serving". NULL for an index not in the pool. */
const char *uh_state_str(const struct uh_pool *h, int idx, uint64_t now_ms);
/* false for an index not in the pool. */
bool uh_snapshot(const struct uh_pool *h, int idx, uint64_t now_ms, struct uh_snapshot *out);
void uh_pool_stats(const struct uh_pool *h, uint64_t now_ms, struct uh_pool_stats *out);

/* "serving", "draining", "drained", "maint"; "?" out of range. */
const char *uh_admin_str(enum uh_admin admin);
/* The inverse of uh_admin_str; false if unknown. */
bool uh_admin_parse(const char *name, enum uh_admin *out);
/* Name of one event bit: "up", "down", "ejected", "returned", "admin", "eligible",
 * "ineligible", "panic on", "panic off"; "?" for anything else. */
const char *uh_event_str(unsigned event_bit);

#endif
