#include "upstream_health.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

/* What the pool knows of one upstream. `ejected` and `was_eligible` are the states last
 * reported through events: an ejection whose end has passed stays `ejected` here until a
 * call reports UH_EV_RETURNED (settle), while queries judge by ejected_until_ms. */
struct uh_upstream {
    bool used;
    enum uh_health health;
    enum uh_admin admin;
    uint32_t ok_streak, fail_streak;     /* active checks, toward rise / fall */
    uint32_t streak_5xx, streak_connect; /* passive, toward the outlier thresholds */
    bool ejected;
    uint64_t ejected_until_ms;
    uint64_t returned_ms; /* end of the last ejection: the multiplier decays from here */
    uint32_t mult;        /* ejection multiplier as of the last ejection */
    bool was_eligible;
    uint64_t next_check_ms;
    struct uh_counters c;
};

struct uh_pool {
    struct uh_config cfg;
    size_t n;
    bool panic; /* as last reported */
    struct uh_upstream up[UH_MAX_UPSTREAMS];
};

/* ---- configuration --------------------------------------------------------------------- */

void uh_config_default(struct uh_config *cfg)
{
    *cfg = (struct uh_config){
        .interval_ms = 2000,
        .timeout_ms = 1000,
        .rise = 2,
        .fall = 3,
        .initial = UH_INIT_DOWN,
        .consecutive_5xx = 5,
        .consecutive_connect_failures = 3,
        .base_ejection_ms = 30000,
        .max_ejection_ms = 300000,
        .ejection_decay_ms = 10000,
        .max_ejection_percent = 10,
        .panic_threshold_percent = 50,
    };
}

struct uh_bound {
    size_t off; /* of a uint32_t field of struct uh_config */
    uint32_t min, max;
    const char *why;
};

static const struct uh_bound uh_bounds[] = {
    {offsetof(struct uh_config, interval_ms), 1, UH_TIME_MAX_MS, "interval_ms must be 1..86400000"},
    {offsetof(struct uh_config, timeout_ms), 1, UH_TIME_MAX_MS, "timeout_ms must be 1..86400000"},
    {offsetof(struct uh_config, rise), 1, UH_STREAK_MAX, "rise must be 1..1000"},
    {offsetof(struct uh_config, fall), 1, UH_STREAK_MAX, "fall must be 1..1000"},
    {offsetof(struct uh_config, consecutive_5xx), 0, UH_STREAK_MAX,
     "consecutive_5xx must be 0..1000"},
    {offsetof(struct uh_config, consecutive_connect_failures), 0, UH_STREAK_MAX,
     "consecutive_connect_failures must be 0..1000"},
    {offsetof(struct uh_config, base_ejection_ms), 1, UH_TIME_MAX_MS,
     "base_ejection_ms must be 1..86400000"},
    {offsetof(struct uh_config, max_ejection_ms), 1, UH_TIME_MAX_MS,
     "max_ejection_ms must be 1..86400000"},
    {offsetof(struct uh_config, ejection_decay_ms), 0, UH_TIME_MAX_MS,
     "ejection_decay_ms must be 0..86400000"},
    {offsetof(struct uh_config, max_ejection_percent), 0, 100,
     "max_ejection_percent must be 0..100"},
    {offsetof(struct uh_config, panic_threshold_percent), 0, 100,
     "panic_threshold_percent must be 0..100"},
};

int uh_config_check(const struct uh_config *cfg, const char **why)
{
    const char *bad = NULL;
    for (size_t i = 0; i < sizeof(uh_bounds) / sizeof(uh_bounds[0]) && !bad; i++) {
        uint32_t v;
        memcpy(&v, (const char *)cfg + uh_bounds[i].off, sizeof(v));
        if (v < uh_bounds[i].min || v > uh_bounds[i].max)
            bad = uh_bounds[i].why;
    }
    if (!bad && cfg->max_ejection_ms < cfg->base_ejection_ms)
        bad = "max_ejection_ms must be at least base_ejection_ms";
    if (!bad && (unsigned)cfg->initial > UH_INIT_FULLY_UP)
        bad = "initial must be one of down, fully-down, up, fully-up";
    if (why)
        *why = bad;
    return bad ? SL_EINVAL : SL_OK;
}

struct uh_pool *uh_pool_new(const struct uh_config *cfg)
{
    if (uh_config_check(cfg, NULL) != SL_OK)
        return NULL;
    struct uh_pool *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->cfg = *cfg;
    return h;
}

void uh_pool_free(struct uh_pool *h)
{
    free(h);
}

const struct uh_config *uh_pool_config(const struct uh_pool *h)
{
    return &h->cfg;
}

size_t uh_size(const struct uh_pool *h)
{
    return h->n;
}

/* ---- derived state at a time ----------------------------------------------------------- */

static const struct uh_upstream *cslot(const struct uh_pool *h, int idx)
{
    if (idx < 0 || idx >= UH_MAX_UPSTREAMS || !h->up[idx].used)
        return NULL;
    return &h->up[idx];
}

static struct uh_upstream *slot(struct uh_pool *h, int idx)
{
    return cslot(h, idx) ? &h->up[idx] : NULL;
}

static bool ejected_at(const struct uh_upstream *u, uint64_t now_ms)
{
    return u->ejected && now_ms < u->ejected_until_ms;
}

static bool eligible_at(const struct uh_upstream *u, uint64_t now_ms)
{
    return u->admin == UH_SERVING && u->health == UH_UP && !ejected_at(u, now_ms);
}

static bool in_panic_base(const struct uh_upstream *u)
{
    return u->admin == UH_SERVING && u->health != UH_UNKNOWN;
}

/* Everything of uh_pool_stats but routable. */
static void pool_count(const struct uh_pool *h, uint64_t now_ms, struct uh_pool_stats *st)
{
    *st = (struct uh_pool_stats){.upstreams = h->n};
    for (size_t i = 0; i < UH_MAX_UPSTREAMS; i++) {
        const struct uh_upstream *u = &h->up[i];
        if (!u->used)
            continue;
        st->panic_base += in_panic_base(u);
        st->eligible += eligible_at(u, now_ms);
        st->ejected += ejected_at(u, now_ms);
    }
    uint64_t pct = h->cfg.panic_threshold_percent;
    st->panic = st->panic_base > 0 && (uint64_t)st->eligible * 100 < pct * st->panic_base;
}

static bool routable_in(const struct uh_upstream *u, bool panic, uint64_t now_ms)
{
    return panic ? in_panic_base(u) : eligible_at(u, now_ms);
}

/* The ejection multiplier at now_ms: one less for every full ejection_decay_ms spent not
 * ejected since the last ejection ended. */
static uint32_t mult_at(const struct uh_config *cfg, const struct uh_upstream *u, uint64_t now_ms)
{
    if (ejected_at(u, now_ms) || u->mult == 0 || cfg->ejection_decay_ms == 0)
        return u->mult;
    uint64_t since = u->ejected ? u->ejected_until_ms : u->returned_ms;
    uint64_t steps = now_ms > since ? (now_ms - since) / cfg->ejection_decay_ms : 0;
    return steps >= u->mult ? 0 : u->mult - (uint32_t)steps;
}

/* ---- events ---------------------------------------------------------------------------- */

#define UH_EV_STATE_MASK (UH_EV_UP | UH_EV_DOWN | UH_EV_EJECTED | UH_EV_RETURNED | UH_EV_ADMIN)

static unsigned bit_count(unsigned x)
{
    unsigned n = 0;
    for (; x; x &= x - 1)
        n++;
    return n;
}

/* Report the end of an ejection that has passed. */
static unsigned settle(struct uh_upstream *u, uint64_t now_ms)
{
    if (!u->ejected || now_ms < u->ejected_until_ms)
        return 0;
    u->ejected = false;
    u->returned_ms = u->ejected_until_ms;
    return UH_EV_RETURNED;
}

/* Add the net eligibility change of u to ev and count its transitions. */
static unsigned upstream_finish(struct uh_upstream *u, uint64_t now_ms, unsigned ev)
{
    bool el = eligible_at(u, now_ms);
    if (el != u->was_eligible) {
        ev |= el ? UH_EV_ELIGIBLE : UH_EV_INELIGIBLE;
        u->was_eligible = el;
    }
    u->c.transitions += bit_count(ev & UH_EV_STATE_MASK);
    return ev;
}

static unsigned panic_update(struct uh_pool *h, uint64_t now_ms)
{
    struct uh_pool_stats st;
    pool_count(h, now_ms, &st);
    if (st.panic == h->panic)
        return 0;
    h->panic = st.panic;
    return st.panic ? UH_EV_PANIC_ON : UH_EV_PANIC_OFF;
}

/* ---- membership ------------------------------------------------------------------------ */

int uh_add(struct uh_pool *h, int idx, uint64_t now_ms, unsigned *events)
{
    if (events)
        *events = 0;
    if (idx < 0 || idx >= UH_MAX_UPSTREAMS)
        return SL_ERANGE;
    struct uh_upstream *u = &h->up[idx];
    if (u->used)
        return SL_EEXISTS;
    *u = (struct uh_upstream){.used = true, .admin = UH_SERVING, .next_check_ms = now_ms};
    switch (h->cfg.initial) {
    case UH_INIT_DOWN:
        u->health = UH_UNKNOWN;
        break;
    case UH_INIT_FULLY_DOWN:
        u->health = UH_DOWN;
        break;
    case UH_INIT_UP:
        u->health = UH_UP;
        u->fail_streak = h->cfg.fall - 1;
        break;
    case UH_INIT_FULLY_UP:
        u->health = UH_UP;
        break;
    }
    h->n++;
    unsigned ev = upstream_finish(u, now_ms, 0);
    ev |= panic_update(h, now_ms);
    if (events)
        *events = ev;
    return SL_OK;
}

int uh_remove(struct uh_pool *h, int idx, uint64_t now_ms, unsigned *events)
{
    if (events)
        *events = 0;
    struct uh_upstream *u = slot(h, idx);
    if (!u)
        return SL_ENOTFOUND;
    memset(u, 0, sizeof(*u));
    h->n--;
    unsigned ev = panic_update(h, now_ms);
    if (events)
        *events = ev;
    return SL_OK;
}

/* ---- active health --------------------------------------------------------------------- */

/* One check result. The same rule both ways: a result counts toward its side's threshold
 * (rise for successes, fall for failures) and restarts the other side's count; from
 * "unknown" the first result of either kind decides. */
static unsigned check_record(const struct uh_config *cfg, struct uh_upstream *u, bool ok)
{
    enum uh_health to = ok ? UH_UP : UH_DOWN;
    uint32_t *toward = ok ? &u->ok_streak : &u->fail_streak;
    uint32_t need = ok ? cfg->rise : cfg->fall;
    (*(ok ? &u->c.checks_ok : &u->c.checks_failed))++;
    *(ok ? &u->fail_streak : &u->ok_streak) = 0;
    if (u->health == to)
        return 0;
    (*toward)++;
    if (u->health != UH_UNKNOWN && *toward < need)
        return 0;
    u->health = to;
    *toward = 0;
    return ok ? UH_EV_UP : UH_EV_DOWN;
}

unsigned uh_check_result(struct uh_pool *h, int idx, bool ok, uint64_t now_ms)
{
    struct uh_upstream *u = slot(h, idx);
    if (!u)
        return 0;
    unsigned ev = settle(u, now_ms);
    u->next_check_ms = now_ms + h->cfg.interval_ms;
    ev |= check_record(&h->cfg, u, ok);
    ev = upstream_finish(u, now_ms, ev);
    return ev | panic_update(h, now_ms);
}

/* ---- passive outlier detection --------------------------------------------------------- */

/* Extend a streak; true when it has reached an enabled threshold. */
static bool streak_bump(uint32_t *streak, uint32_t threshold)
{
    if (*streak < UINT32_MAX)
        (*streak)++;
    return threshold > 0 && *streak >= threshold;
}

/* Count the outcome and update the streaks; true when one reaches its threshold. */
static bool outcome_record(const struct uh_config *cfg, struct uh_upstream *u,
                           enum uh_outcome outcome)
{
    switch (outcome) {
    case UH_OUTCOME_OK:
        u->c.requests_ok++;
        u->streak_5xx = 0;
        u->streak_connect = 0;
        return false;
    case UH_OUTCOME_HTTP_5XX:
        u->c.requests_5xx++;
        if (u->ejected)
            return false;
        u->streak_connect = 0;
        return streak_bump(&u->streak_5xx, cfg->consecutive_5xx);
    case UH_OUTCOME_CONNECT_FAIL:
        u->c.connect_failures++;
        if (u->ejected)
            return false;
        return streak_bump(&u->streak_connect, cfg->consecutive_connect_failures);
    }
    return false;
}

/* Whether one more ejection keeps the ejected count within max(1, n * pct / 100). */
static bool ejection_budget_allows(const struct uh_pool *h, uint64_t now_ms)
{
    struct uh_pool_stats st;
    pool_count(h, now_ms, &st);
    size_t allowed = h->n * h->cfg.max_ejection_percent / 100;
    if (allowed < 1)
        allowed = 1;
    return st.ejected + 1 <= allowed;
}

static unsigned eject(struct uh_pool *h, struct uh_upstream *u, uint64_t now_ms)
{
    const struct uh_config *cfg = &h->cfg;
    if (!ejection_budget_allows(h, now_ms)) {
        u->c.ejections_overflow++;
        return 0;
    }
    /* The multiplier stops growing once base x mult reaches the cap. */
    uint32_t cap = (cfg->max_ejection_ms + cfg->base_ejection_ms - 1) / cfg->base_ejection_ms;
    uint32_t mult = mult_at(cfg, u, now_ms) + 1;
    u->mult = mult < cap ? mult : cap;
    uint64_t dur_ms = (uint64_t)cfg->base_ejection_ms * u->mult;
    if (dur_ms > cfg->max_ejection_ms)
        dur_ms = cfg->max_ejection_ms;
    u->ejected = true;
    u->ejected_until_ms = now_ms + dur_ms;
    u->streak_5xx = 0;
    u->streak_connect = 0;
    u->c.ejections++;
    return UH_EV_EJECTED;
}

unsigned uh_request_result(struct uh_pool *h, int idx, enum uh_outcome outcome, uint64_t now_ms)
{
    struct uh_upstream *u = slot(h, idx);
    if (!u || (unsigned)outcome > UH_OUTCOME_CONNECT_FAIL)
        return 0;
    unsigned ev = settle(u, now_ms);
    if (outcome_record(&h->cfg, u, outcome))
        ev |= eject(h, u, now_ms);
    ev = upstream_finish(u, now_ms, ev);
    return ev | panic_update(h, now_ms);
}

/* ---- administrative state and time ----------------------------------------------------- */

unsigned uh_set_admin(struct uh_pool *h, int idx, enum uh_admin admin, uint64_t now_ms)
{
    struct uh_upstream *u = slot(h, idx);
    if (!u || (unsigned)admin > UH_MAINT)
        return 0;
    unsigned ev = settle(u, now_ms);
    if (u->admin != admin) {
        u->admin = admin;
        ev |= UH_EV_ADMIN;
    }
    ev = upstream_finish(u, now_ms, ev);
    return ev | panic_update(h, now_ms);
}

size_t uh_tick(struct uh_pool *h, uint64_t now_ms, struct uh_change *out, size_t cap)
{
    size_t k = 0;
    for (int i = 0; i < UH_MAX_UPSTREAMS && k < cap; i++) {
        struct uh_upstream *u = &h->up[i];
        if (!u->used)
            continue;
        unsigned ev = settle(u, now_ms);
        if (ev)
            out[k++] = (struct uh_change){i, upstream_finish(u, now_ms, ev)};
    }
    if (k < cap) {
        unsigned ev = panic_update(h, now_ms);
        if (ev)
            out[k++] = (struct uh_change){UH_POOL, ev};
    }
    return k;
}

uint64_t uh_next_expiry_ms(const struct uh_pool *h)
{
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < UH_MAX_UPSTREAMS; i++) {
        const struct uh_upstream *u = &h->up[i];
        if (u->used && u->ejected && u->ejected_until_ms < next)
            next = u->ejected_until_ms;
    }
    return next;
}

/* ---- queries --------------------------------------------------------------------------- */

bool uh_eligible(const struct uh_pool *h, int idx, uint64_t now_ms)
{
    const struct uh_upstream *u = cslot(h, idx);
    return u && eligible_at(u, now_ms);
}

bool uh_panic(const struct uh_pool *h, uint64_t now_ms)
{
    struct uh_pool_stats st;
    pool_count(h, now_ms, &st);
    return st.panic;
}

bool uh_routable(const struct uh_pool *h, int idx, uint64_t now_ms)
{
    const struct uh_upstream *u = cslot(h, idx);
    return u && routable_in(u, uh_panic(h, now_ms), now_ms);
}

size_t uh_routable_all(const struct uh_pool *h, uint64_t now_ms, bool out[UH_MAX_UPSTREAMS])
{
    bool panic = uh_panic(h, now_ms);
    size_t n = 0;
    for (size_t i = 0; i < UH_MAX_UPSTREAMS; i++) {
        const struct uh_upstream *u = &h->up[i];
        out[i] = u->used && routable_in(u, panic, now_ms);
        n += out[i];
    }
    return n;
}

uint64_t uh_next_check_ms(const struct uh_pool *h, int idx)
{
    const struct uh_upstream *u = cslot(h, idx);
    return u ? u->next_check_ms : UINT64_MAX;
}

static const char *state_of(const struct uh_upstream *u, uint64_t now_ms)
{
    if (u->admin != UH_SERVING)
        return uh_admin_str(u->admin);
    if (u->health == UH_UNKNOWN)
        return "unknown";
    if (u->health == UH_DOWN)
        return "down";
    return ejected_at(u, now_ms) ? "ejected" : "serving";
}

const char *uh_state_str(const struct uh_pool *h, int idx, uint64_t now_ms)
{
    const struct uh_upstream *u = cslot(h, idx);
    return u ? state_of(u, now_ms) : NULL;
}

bool uh_snapshot(const struct uh_pool *h, int idx, uint64_t now_ms, struct uh_snapshot *out)
{
    const struct uh_upstream *u = cslot(h, idx);
    if (!u)
        return false;
    bool ejected = ejected_at(u, now_ms);
    *out = (struct uh_snapshot){
        .state = state_of(u, now_ms),
        .health = u->health,
        .admin = u->admin,
        .ejected = ejected,
        .eligible = eligible_at(u, now_ms),
        .routable = routable_in(u, uh_panic(h, now_ms), now_ms),
        .ok_streak = u->ok_streak,
        .fail_streak = u->fail_streak,
        .streak_5xx = u->streak_5xx,
        .streak_connect = u->streak_connect,
        .ejection_multiplier = mult_at(&h->cfg, u, now_ms),
        .ejected_until_ms = ejected ? u->ejected_until_ms : 0,
        .next_check_ms = u->next_check_ms,
        .counters = u->c,
    };
    return true;
}

void uh_pool_stats(const struct uh_pool *h, uint64_t now_ms, struct uh_pool_stats *out)
{
    bool routable[UH_MAX_UPSTREAMS];
    pool_count(h, now_ms, out);
    out->routable = uh_routable_all(h, now_ms, routable);
}

/* ---- names ----------------------------------------------------------------------------- */

static const char *const uh_admin_names[] = {
    [UH_SERVING] = "serving",
    [UH_DRAINING] = "draining",
    [UH_DRAINED] = "drained",
    [UH_MAINT] = "maint",
};

static const char *const uh_event_names[] = {
    "up", "down", "ejected", "returned", "admin", "eligible", "ineligible", "panic on", "panic off",
};

#define UH_COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *uh_admin_str(enum uh_admin admin)
{
    return (unsigned)admin < UH_COUNT(uh_admin_names) ? uh_admin_names[admin] : "?";
}

bool uh_admin_parse(const char *name, enum uh_admin *out)
{
    for (size_t i = 0; i < UH_COUNT(uh_admin_names); i++) {
        if (strcmp(name, uh_admin_names[i]) == 0) {
            *out = (enum uh_admin)i;
            return true;
        }
    }
    return false;
}

const char *uh_event_str(unsigned event_bit)
{
    for (size_t i = 0; i < UH_COUNT(uh_event_names); i++)
        if (event_bit == 1u << i)
            return uh_event_names[i];
    return "?";
}
