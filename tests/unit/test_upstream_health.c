/* upstream_health: exact rise/fall sequences, the "unknown" start, consecutive 5xx and
 * connect-failure ejection, ejection durations (growth, cap, decay, expiry to the ms), the
 * ejection budget, panic at its exact boundary, administrative drain, and events reported
 * exactly once per transition. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "err.h"
#include "upstream_health.h"

#define T0 UINT64_C(1000000) /* an arbitrary start of fake time, in ms */

static struct uh_pool *pool_new(const struct uh_config *cfg)
{
    struct uh_pool *h = uh_pool_new(cfg);
    assert_non_null(h);
    return h;
}

/* n upstreams 0..n-1, each made UP by one successful check at now_ms. */
static struct uh_pool *pool_up(const struct uh_config *cfg, int n, uint64_t now_ms)
{
    struct uh_pool *h = pool_new(cfg);
    for (int i = 0; i < n; i++) {
        unsigned ev = 1;
        assert_int_equal(uh_add(h, i, now_ms, &ev), SL_OK);
        assert_int_equal(ev, 0);
        assert_int_equal(uh_check_result(h, i, true, now_ms), UH_EV_UP | UH_EV_ELIGIBLE);
    }
    return h;
}

static struct uh_config config_default(void)
{
    struct uh_config c;
    uh_config_default(&c);
    return c;
}

/* Sends count 5xx to idx at now_ms; every call but the last must return no event. Returns
 * the last call's events. */
static unsigned send_5xx(struct uh_pool *h, int idx, int count, uint64_t now_ms)
{
    for (int i = 0; i < count - 1; i++)
        assert_int_equal(uh_request_result(h, idx, UH_OUTCOME_HTTP_5XX, now_ms), 0);
    return uh_request_result(h, idx, UH_OUTCOME_HTTP_5XX, now_ms);
}

/* Let uh_tick report every ejection that has ended by now_ms. */
static void tick_all(struct uh_pool *h, uint64_t now_ms)
{
    struct uh_change ch[UH_MAX_UPSTREAMS + 1];
    uh_tick(h, now_ms, ch, UH_MAX_UPSTREAMS + 1);
}

static uint64_t ejected_until(const struct uh_pool *h, int idx, uint64_t now_ms)
{
    struct uh_snapshot s;
    assert_true(uh_snapshot(h, idx, now_ms, &s));
    return s.ejected_until_ms;
}

static void test_config(void **state)
{
    (void)state;
    struct uh_config c = config_default();
    assert_int_equal(c.interval_ms, 2000);
    assert_int_equal(c.timeout_ms, 1000);
    assert_int_equal(c.rise, 2);
    assert_int_equal(c.fall, 3);
    assert_int_equal(c.initial, UH_INIT_DOWN);
    assert_int_equal(c.consecutive_5xx, 5);
    assert_int_equal(c.consecutive_connect_failures, 3);
    assert_int_equal(c.base_ejection_ms, 30000);
    assert_int_equal(c.max_ejection_ms, 300000);
    assert_int_equal(c.ejection_decay_ms, 10000);
    assert_int_equal(c.max_ejection_percent, 10);
    assert_int_equal(c.panic_threshold_percent, 50);
    const char *why = "x";
    assert_int_equal(uh_config_check(&c, &why), SL_OK);
    assert_null(why);

    c.rise = 0;
    assert_int_equal(uh_config_check(&c, &why), SL_EINVAL);
    assert_string_equal(why, "rise must be 1..1000");
    assert_null(uh_pool_new(&c));
    c = config_default();
    c.fall = UH_STREAK_MAX + 1;
    assert_int_equal(uh_config_check(&c, &why), SL_EINVAL);
    assert_string_equal(why, "fall must be 1..1000");
    c = config_default();
    c.max_ejection_percent = 101;
    assert_int_equal(uh_config_check(&c, NULL), SL_EINVAL);
    c = config_default();
    c.panic_threshold_percent = 101;
    assert_int_equal(uh_config_check(&c, NULL), SL_EINVAL);
    c = config_default();
    c.interval_ms = 0;
    assert_int_equal(uh_config_check(&c, NULL), SL_EINVAL);
    c = config_default();
    c.max_ejection_ms = c.base_ejection_ms - 1;
    assert_int_equal(uh_config_check(&c, &why), SL_EINVAL);
    assert_string_equal(why, "max_ejection_ms must be at least base_ejection_ms");
    c = config_default();
    c.initial = (enum uh_initial)4;
    assert_int_equal(uh_config_check(&c, NULL), SL_EINVAL);
    /* The edges that are allowed. */
    c = config_default();
    c.consecutive_5xx = 0;
    c.consecutive_connect_failures = 0;
    c.ejection_decay_ms = 0;
    c.max_ejection_percent = 0;
    c.panic_threshold_percent = 100;
    c.max_ejection_ms = c.base_ejection_ms;
    assert_int_equal(uh_config_check(&c, NULL), SL_OK);

    struct uh_pool *h = pool_new(&c);
    assert_int_equal(uh_pool_config(h)->max_ejection_ms, 30000);
    uh_pool_free(h);
    uh_pool_free(NULL);
}

static void test_membership(void **state)
{
    (void)state;
    struct uh_config c = config_default();
    struct uh_pool *h = pool_new(&c);
    unsigned ev;
    assert_int_equal(uh_add(h, -1, T0, &ev), SL_ERANGE);
    assert_int_equal(uh_add(h, UH_MAX_UPSTREAMS, T0, NULL), SL_ERANGE);
    assert_int_equal(uh_add(h, UH_MAX_UPSTREAMS - 1, T0, NULL), SL_OK);
    assert_int_equal(uh_add(h, 7, T0, &ev), SL_OK);
    assert_int_equal(ev, 0); /* unknown: not eligible, not in the panic base */
    assert_int_equal(uh_add(h, 7, T0, &ev), SL_EEXISTS);
    assert_int_equal(uh_size(h), 2);
    assert_int_equal(uh_remove(h, 8, T0, &ev), SL_ENOTFOUND);
    assert_int_equal(uh_remove(h, -1, T0, NULL), SL_ENOTFOUND);

    /* An index not in the pool: no-ops, no events, false/NULL. */
    assert_int_equal(uh_check_result(h, 8, true, T0), 0);
    assert_int_equal(uh_request_result(h, 8, UH_OUTCOME_HTTP_5XX, T0), 0);
    assert_int_equal(uh_set_admin(h, 8, UH_DRAINING, T0), 0);
    assert_false(uh_eligible(h, 8, T0));
    assert_false(uh_routable(h, 8, T0));
    assert_false(uh_eligible(h, -1, T0));
    assert_null(uh_state_str(h, 8, T0));
    assert_null(uh_state_str(h, UH_MAX_UPSTREAMS, T0));
    struct uh_snapshot s;
    assert_false(uh_snapshot(h, 8, T0, &s));
    assert_true(uh_next_check_ms(h, 8) == UINT64_MAX);

    /* Removed and added again: starts afresh. */
    assert_int_equal(uh_check_result(h, 7, true, T0), UH_EV_UP | UH_EV_ELIGIBLE);
    assert_int_equal(uh_remove(h, 7, T0, &ev), SL_OK);
    assert_int_equal(ev, 0);
    assert_int_equal(uh_size(h), 1);
    assert_int_equal(uh_add(h, 7, T0 + 1, NULL), SL_OK);
    assert_string_equal(uh_state_str(h, 7, T0 + 1), "unknown");
    assert_true(uh_snapshot(h, 7, T0 + 1, &s));
    assert_true(s.counters.checks_ok == 0);
    uh_pool_free(h);
}

static void test_unknown_becomes_up_after_first_success(void **state)
{
    (void)state;
    struct uh_config c = config_default(); /* UH_INIT_DOWN, rise 2 */
    struct uh_pool *h = pool_new(&c);
    assert_int_equal(uh_add(h, 0, T0, NULL), SL_OK);
    assert_int_equal(uh_add(h, 1, T0, NULL), SL_OK);
    assert_string_equal(uh_state_str(h, 0, T0), "unknown");
    assert_false(uh_eligible(h, 0, T0));
    assert_false(uh_routable(h, 0, T0));

    /* One success is enough from "unknown", although rise is 2. */
    assert_int_equal(uh_check_result(h, 0, true, T0 + 10), UH_EV_UP | UH_EV_ELIGIBLE);
    assert_string_equal(uh_state_str(h, 0, T0 + 10), "serving");
    assert_true(uh_eligible(h, 0, T0 + 10));
    assert_true(uh_routable(h, 0, T0 + 10));
    assert_int_equal(uh_check_result(h, 0, true, T0 + 20), 0);

    /* A failure first: DOWN, and from then on rise applies. */
    assert_int_equal(uh_check_result(h, 1, false, T0 + 10), UH_EV_DOWN);
    assert_string_equal(uh_state_str(h, 1, T0 + 10), "down");
    assert_int_equal(uh_check_result(h, 1, true, T0 + 20), 0);
    assert_int_equal(uh_check_result(h, 1, true, T0 + 30), UH_EV_UP | UH_EV_ELIGIBLE);
    uh_pool_free(h);
}

static void test_rise_fall_exact(void **state)
{
    (void)state;
    struct uh_config c = config_default(); /* rise 2, fall 3 */
    c.panic_threshold_percent = 0;         /* a pool of one: keep panic out of it */
    struct uh_pool *h = pool_up(&c, 1, T0);
    uint64_t t = T0;

    /* ok, fail, fail: still up; an ok restarts the failure count. */
    assert_int_equal(uh_check_result(h, 0, true, ++t), 0);
    assert_int_equal(uh_check_result(h, 0, false, ++t), 0);
    assert_int_equal(uh_check_result(h, 0, false, ++t), 0);
    assert_true(uh_eligible(h, 0, t));
    struct uh_snapshot s;
    assert_true(uh_snapshot(h, 0, t, &s));
    assert_int_equal(s.fail_streak, 2);
    assert_int_equal(uh_check_result(h, 0, true, ++t), 0);
    assert_int_equal(uh_check_result(h, 0, false, ++t), 0);
    assert_int_equal(uh_check_result(h, 0, false, ++t), 0);
    /* The third consecutive failure: DOWN, reported once. */
    assert_int_equal(uh_check_result(h, 0, false, ++t), UH_EV_DOWN | UH_EV_INELIGIBLE);
    assert_false(uh_eligible(h, 0, t));
    assert_string_equal(uh_state_str(h, 0, t), "down");
    assert_int_equal(uh_check_result(h, 0, false, ++t), 0);

    /* rise 2: ok, fail restarts; ok, ok → UP. */
    assert_int_equal(uh_check_result(h, 0, true, ++t), 0);
    assert_true(uh_snapshot(h, 0, t, &s));
    assert_int_equal(s.ok_streak, 1);
    assert_int_equal(s.health, UH_DOWN);
    assert_int_equal(uh_check_result(h, 0, false, ++t), 0);
    assert_int_equal(uh_check_result(h, 0, true, ++t), 0);
    assert_false(uh_eligible(h, 0, t));
    assert_int_equal(uh_check_result(h, 0, true, ++t), UH_EV_UP | UH_EV_ELIGIBLE);
    assert_true(uh_eligible(h, 0, t));

    assert_true(uh_snapshot(h, 0, t, &s));
    assert_true(s.counters.checks_ok == 1 + 1 + 1 + 1 + 2);
    assert_true(s.counters.checks_failed == 2 + 3 + 1 + 1);
    assert_true(s.counters.transitions == 3); /* UP, DOWN, UP */
    assert_int_equal(s.ok_streak, 0);
    assert_int_equal(s.fail_streak, 0);
    uh_pool_free(h);
}

static void test_initial_states(void **state)
{
    (void)state;
    struct uh_config c = config_default();
    c.panic_threshold_percent = 0;
    unsigned ev;

    c.initial = UH_INIT_UP; /* up at once, one failure brings it down */
    struct uh_pool *h = pool_new(&c);
    assert_int_equal(uh_add(h, 0, T0, &ev), SL_OK);
    assert_int_equal(ev, UH_EV_ELIGIBLE);
    assert_string_equal(uh_state_str(h, 0, T0), "serving");
    assert_int_equal(uh_check_result(h, 0, false, T0 + 1), UH_EV_DOWN | UH_EV_INELIGIBLE);
    uh_pool_free(h);

    c.initial = UH_INIT_FULLY_UP; /* needs fall = 3 failures */
    h = pool_new(&c);
    assert_int_equal(uh_add(h, 0, T0, &ev), SL_OK);
    assert_int_equal(ev, UH_EV_ELIGIBLE);
    assert_int_equal(uh_check_result(h, 0, false, T0 + 1), 0);
    assert_int_equal(uh_check_result(h, 0, false, T0 + 2), 0);
    assert_int_equal(uh_check_result(h, 0, false, T0 + 3), UH_EV_DOWN | UH_EV_INELIGIBLE);
    uh_pool_free(h);

    c.initial = UH_INIT_FULLY_DOWN; /* needs rise = 2 successes */
    h = pool_new(&c);
    assert_int_equal(uh_add(h, 0, T0, &ev), SL_OK);
    assert_int_equal(ev, 0);
    assert_string_equal(uh_state_str(h, 0, T0), "down");
    assert_int_equal(uh_check_result(h, 0, true, T0 + 1), 0);
    assert_int_equal(uh_check_result(h, 0, true, T0 + 2), UH_EV_UP | UH_EV_ELIGIBLE);
    uh_pool_free(h);
}

static void test_next_check(void **state)
{
    (void)state;
    struct uh_config c = config_default();
    struct uh_pool *h = pool_new(&c);
    assert_int_equal(uh_add(h, 3, T0, NULL), SL_OK);
    assert_true(uh_next_check_ms(h, 3) == T0);
    uh_check_result(h, 3, false, T0 + 700);
    assert_true(uh_next_check_ms(h, 3) == T0 + 700 + 2000);
    uh_pool_free(h);
}

static void test_5xx_ejection_after_exactly_n(void **state)
{
    (void)state;
    struct uh_config c = config_default(); /* consecutive_5xx 5 */
    struct uh_pool *h = pool_up(&c, 10, T0);

    /* Four 5xx, a success, four more: the success restarted the streak. */
    assert_int_equal(send_5xx(h, 0, 4, T0), 0);
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_OK, T0), 0);
    assert_int_equal(send_5xx(h, 0, 4, T0), 0);
    assert_true(uh_eligible(h, 0, T0));
    struct uh_snapshot s;
    assert_true(uh_snapshot(h, 0, T0, &s));
    assert_int_equal(s.streak_5xx, 4);
    /* The fifth in a row ejects. */
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_HTTP_5XX, T0),
                     UH_EV_EJECTED | UH_EV_INELIGIBLE);
    assert_false(uh_eligible(h, 0, T0));
    assert_false(uh_routable(h, 0, T0));
    assert_string_equal(uh_state_str(h, 0, T0), "ejected");
    assert_true(uh_snapshot(h, 0, T0, &s));
    assert_true(s.ejected);
    assert_int_equal(s.streak_5xx, 0);
    assert_true(s.counters.ejections == 1);
    assert_true(s.counters.requests_5xx == 9);
    assert_true(s.counters.requests_ok == 1);
    assert_int_equal(s.ejection_multiplier, 1);

    /* Outcomes while ejected are counted but extend no streak and eject no further. */
    assert_int_equal(send_5xx(h, 0, 10, T0 + 1), 0);
    assert_true(uh_snapshot(h, 0, T0 + 1, &s));
    assert_int_equal(s.streak_5xx, 0);
    assert_true(s.counters.requests_5xx == 19);
    assert_true(s.counters.ejections == 1);
    uh_pool_free(h);

    /* consecutive_5xx 0: never ejects for 5xx. */
    c.consecutive_5xx = 0;
    h = pool_up(&c, 10, T0);
    assert_int_equal(send_5xx(h, 0, 100, T0), 0);
    assert_true(uh_eligible(h, 0, T0));
    uh_pool_free(h);
}

static void test_connect_failures_separate(void **state)
{
    (void)state;
    struct uh_config c = config_default(); /* consecutive_connect_failures 3 */
    struct uh_pool *h = pool_up(&c, 10, T0);

    /* Two connect failures, then a 5xx: connecting worked, the connect streak restarts. */
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_CONNECT_FAIL, T0), 0);
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_CONNECT_FAIL, T0), 0);
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_HTTP_5XX, T0), 0);
    struct uh_snapshot s;
    assert_true(uh_snapshot(h, 0, T0, &s));
    assert_int_equal(s.streak_connect, 0);
    assert_int_equal(s.streak_5xx, 1);
    /* Three connect failures in a row eject; they leave the 5xx streak alone. */
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_CONNECT_FAIL, T0), 0);
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_CONNECT_FAIL, T0), 0);
    assert_true(uh_snapshot(h, 0, T0, &s));
    assert_int_equal(s.streak_5xx, 1);
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_CONNECT_FAIL, T0),
                     UH_EV_EJECTED | UH_EV_INELIGIBLE);
    assert_true(uh_snapshot(h, 0, T0, &s));
    assert_true(s.counters.connect_failures == 5);
    assert_int_equal(s.streak_5xx, 0);
    assert_int_equal(s.streak_connect, 0);
    /* After the ejection the streak starts from 0: one connect failure does not eject. */
    tick_all(h, T0 + 30000);
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_CONNECT_FAIL, T0 + 30000), 0);
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_CONNECT_FAIL, T0 + 30000), 0);
    /* A success restarts the connect streak too. */
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_OK, T0 + 30000), 0);
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_CONNECT_FAIL, T0 + 30000), 0);
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_CONNECT_FAIL, T0 + 30000), 0);
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_CONNECT_FAIL, T0 + 30000),
                     UH_EV_EJECTED | UH_EV_INELIGIBLE);
    uh_pool_free(h);

    /* A connect failure between 5xx does not break the 5xx streak: 4 + CF + 1 ejects. */
    h = pool_up(&c, 10, T0);
    assert_int_equal(send_5xx(h, 1, 4, T0), 0);
    assert_int_equal(uh_request_result(h, 1, UH_OUTCOME_CONNECT_FAIL, T0), 0);
    assert_int_equal(uh_request_result(h, 1, UH_OUTCOME_HTTP_5XX, T0),
                     UH_EV_EJECTED | UH_EV_INELIGIBLE);
    /* An outcome outside the enum is ignored. */
    assert_int_equal(uh_request_result(h, 2, (enum uh_outcome)3, T0), 0);
    uh_pool_free(h);
}

static void test_ejection_grows_and_expires_exactly(void **state)
{
    (void)state;
    struct uh_config c = config_default(); /* base 30 s, max 300 s, decay 10 s */
    struct uh_pool *h = pool_up(&c, 10, T0);
    struct uh_change ch[UH_MAX_UPSTREAMS + 1];

    assert_true(uh_next_expiry_ms(h) == UINT64_MAX);
    assert_int_equal(send_5xx(h, 0, 5, T0), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    assert_true(ejected_until(h, 0, T0) == T0 + 30000);
    assert_true(uh_next_expiry_ms(h) == T0 + 30000);
    assert_false(uh_eligible(h, 0, T0 + 29999));
    assert_true(uh_eligible(h, 0, T0 + 30000));
    assert_string_equal(uh_state_str(h, 0, T0 + 29999), "ejected");
    assert_string_equal(uh_state_str(h, 0, T0 + 30000), "serving");
    assert_int_equal(uh_tick(h, T0 + 29999, ch, UH_MAX_UPSTREAMS + 1), 0);
    assert_int_equal(uh_tick(h, T0 + 30000, ch, UH_MAX_UPSTREAMS + 1), 1);
    assert_int_equal(ch[0].idx, 0);
    assert_int_equal(ch[0].events, UH_EV_RETURNED | UH_EV_ELIGIBLE);
    assert_int_equal(uh_tick(h, T0 + 30000, ch, UH_MAX_UPSTREAMS + 1), 0); /* once */
    assert_true(uh_next_expiry_ms(h) == UINT64_MAX);
    assert_true(ejected_until(h, 0, T0 + 30000) == 0);

    /* Ejected again within decay_ms of returning: 2 x base, then 3 x base. */
    uint64_t t = T0 + 30000 + 9999;
    assert_int_equal(send_5xx(h, 0, 5, t), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    assert_true(ejected_until(h, 0, t) == t + 60000);
    t += 60000; /* returns exactly now: the next call reports it, and its 5xx counts */
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_HTTP_5XX, t),
                     UH_EV_RETURNED | UH_EV_ELIGIBLE);
    assert_int_equal(send_5xx(h, 0, 4, t), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    assert_true(ejected_until(h, 0, t) == t + 90000);
    struct uh_snapshot s;
    assert_true(uh_snapshot(h, 0, t, &s));
    assert_int_equal(s.ejection_multiplier, 3);

    /* Decay: 2 full decay intervals after returning, the multiplier is 3 - 2 = 1, so the
     * next ejection is 2 x base. */
    uint64_t back = t + 90000;
    tick_all(h, back);
    assert_true(uh_snapshot(h, 0, back + 19999, &s));
    assert_int_equal(s.ejection_multiplier, 2);
    assert_true(uh_snapshot(h, 0, back + 20000, &s));
    assert_int_equal(s.ejection_multiplier, 1);
    assert_int_equal(send_5xx(h, 0, 5, back + 20000), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    assert_true(ejected_until(h, 0, back + 20000) == back + 20000 + 60000);
    /* Long after: the multiplier is back at 0, the next ejection is 1 x base. */
    back += 20000 + 60000;
    assert_true(uh_snapshot(h, 0, back + 1000000, &s));
    assert_int_equal(s.ejection_multiplier, 0);
    tick_all(h, back + 1000000);
    assert_int_equal(send_5xx(h, 0, 5, back + 1000000), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    assert_true(ejected_until(h, 0, back + 1000000) == back + 1000000 + 30000);
    uh_pool_free(h);
}

static void test_ejection_cap_and_no_decay(void **state)
{
    (void)state;
    struct uh_config c = config_default();
    c.max_ejection_ms = 100000; /* not a multiple of base: the last step is cut short */
    c.ejection_decay_ms = 0;
    struct uh_pool *h = pool_up(&c, 10, T0);
    static const uint64_t want[] = {30000, 60000, 90000, 100000, 100000, 100000};
    uint64_t t = T0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        tick_all(h, t);
        assert_int_equal(send_5xx(h, 0, 5, t), UH_EV_EJECTED | UH_EV_INELIGIBLE);
        assert_true(ejected_until(h, 0, t) == t + want[i]);
        t += want[i] + 3600000; /* an hour between: without decay it still grows */
    }
    struct uh_snapshot s;
    assert_true(uh_snapshot(h, 0, t, &s));
    assert_int_equal(s.ejection_multiplier, 4); /* ceil(100000 / 30000) */
    assert_true(s.counters.ejections == 6);
    uh_pool_free(h);
}

static void test_max_ejection_percent(void **state)
{
    (void)state;
    struct uh_config c = config_default(); /* 10 % */
    struct uh_pool *h = pool_up(&c, 10, T0);
    assert_int_equal(send_5xx(h, 0, 5, T0), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    /* 10 upstreams at 10 %: only one at a time. Refused ejections are counted. */
    assert_int_equal(send_5xx(h, 1, 5, T0), 0);
    assert_int_equal(send_5xx(h, 1, 1, T0 + 1), 0);
    struct uh_snapshot s;
    assert_true(uh_snapshot(h, 1, T0 + 1, &s));
    assert_true(s.counters.ejections == 0);
    assert_true(s.counters.ejections_overflow == 2);
    assert_int_equal(s.streak_5xx, 6);
    assert_true(uh_eligible(h, 1, T0 + 1));
    struct uh_pool_stats st;
    uh_pool_stats(h, T0 + 1, &st);
    assert_int_equal(st.ejected, 1);
    /* Upstream 0 returns at T0 + 30000 (not yet reported): the next failure of 1 ejects. */
    assert_int_equal(send_5xx(h, 1, 1, T0 + 29999), 0);
    assert_int_equal(send_5xx(h, 1, 1, T0 + 30000), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    uh_pool_stats(h, T0 + 30000, &st);
    assert_int_equal(st.ejected, 1);
    uh_pool_free(h);

    /* 20 at 10 %: two; 19: one; 3 and 1: one (the floor of one). */
    static const struct {
        int n, ejectable;
    } cases[] = {{20, 2}, {19, 1}, {3, 1}, {1, 1}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        h = pool_up(&c, cases[k].n, T0);
        int ejected = 0;
        for (int i = 0; i < cases[k].n; i++)
            ejected += (send_5xx(h, i, 5, T0) & UH_EV_EJECTED) != 0;
        assert_int_equal(ejected, cases[k].ejectable);
        uh_pool_free(h);
    }
    /* 0 % still allows one. */
    c.max_ejection_percent = 0;
    h = pool_up(&c, 10, T0);
    assert_int_equal(send_5xx(h, 0, 5, T0), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    assert_int_equal(send_5xx(h, 1, 5, T0), 0);
    uh_pool_free(h);
}

/* fall 1 and rise 1 so one check moves an upstream. */
static struct uh_config config_quick(void)
{
    struct uh_config c = config_default();
    c.rise = 1;
    c.fall = 1;
    return c;
}

static void test_panic_boundary(void **state)
{
    (void)state;
    struct uh_config c = config_quick(); /* panic below 50 % */
    struct uh_pool *h = pool_up(&c, 10, T0);
    bool r[UH_MAX_UPSTREAMS];

    /* 5 of 10 eligible is not below 50 %: no panic. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(uh_check_result(h, i, false, T0), UH_EV_DOWN | UH_EV_INELIGIBLE);
    assert_false(uh_panic(h, T0));
    assert_false(uh_routable(h, 0, T0));
    assert_int_equal(uh_routable_all(h, T0, r), 5);
    /* 4 of 10 is: the call that crosses reports it. */
    assert_int_equal(uh_check_result(h, 5, false, T0),
                     UH_EV_DOWN | UH_EV_INELIGIBLE | UH_EV_PANIC_ON);
    assert_true(uh_panic(h, T0));
    assert_false(uh_eligible(h, 0, T0));
    assert_true(uh_routable(h, 0, T0)); /* down but routable in panic */
    assert_int_equal(uh_routable_all(h, T0, r), 10);

    /* Drained is never routable, panic or not; it also leaves the panic base: 4 of 9. */
    assert_int_equal(uh_set_admin(h, 0, UH_DRAINED, T0), UH_EV_ADMIN);
    assert_false(uh_routable(h, 0, T0));
    assert_string_equal(uh_state_str(h, 0, T0), "drained");
    assert_int_equal(uh_routable_all(h, T0, r), 9);
    assert_false(r[0]);
    assert_true(r[1]);

    /* Ejected: routable in panic. 3 of 9 eligible. */
    assert_int_equal(send_5xx(h, 6, 5, T0), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    assert_false(uh_eligible(h, 6, T0));
    assert_true(uh_routable(h, 6, T0));

    /* Back to 4 of 9: still panic; 5 of 9 (500 >= 450): panic off, reported once. */
    assert_int_equal(uh_check_result(h, 1, true, T0 + 1), UH_EV_UP | UH_EV_ELIGIBLE);
    assert_true(uh_panic(h, T0 + 1));
    assert_int_equal(uh_check_result(h, 2, true, T0 + 1),
                     UH_EV_UP | UH_EV_ELIGIBLE | UH_EV_PANIC_OFF);
    assert_false(uh_panic(h, T0 + 1));
    assert_false(uh_routable(h, 3, T0 + 1)); /* down */
    assert_false(uh_routable(h, 6, T0 + 1)); /* ejected */
    assert_int_equal(uh_routable_all(h, T0 + 1, r), 5);

    /* Time alone ends panic: at 4 of 9, upstream 6's return makes it 5 of 9. */
    assert_int_equal(uh_check_result(h, 2, false, T0 + 2),
                     UH_EV_DOWN | UH_EV_INELIGIBLE | UH_EV_PANIC_ON);
    assert_true(uh_panic(h, T0 + 29999));
    assert_false(uh_panic(h, T0 + 30000));
    struct uh_change ch[4];
    assert_int_equal(uh_tick(h, T0 + 30000, ch, 4), 2);
    assert_int_equal(ch[0].idx, 6);
    assert_int_equal(ch[0].events, UH_EV_RETURNED | UH_EV_ELIGIBLE);
    assert_int_equal(ch[1].idx, UH_POOL);
    assert_int_equal(ch[1].events, UH_EV_PANIC_OFF);
    assert_int_equal(uh_tick(h, T0 + 30000, ch, 4), 0);

    struct uh_pool_stats st;
    uh_pool_stats(h, T0 + 30000, &st);
    assert_int_equal(st.upstreams, 10);
    assert_int_equal(st.panic_base, 9);
    assert_int_equal(st.eligible, 5);
    assert_int_equal(st.ejected, 0);
    assert_int_equal(st.routable, 5);
    assert_false(st.panic);
    uh_pool_free(h);
}

static void test_panic_threshold_edges(void **state)
{
    (void)state;
    struct uh_config c = config_quick();
    c.panic_threshold_percent = 0; /* never */
    struct uh_pool *h = pool_up(&c, 2, T0);
    assert_int_equal(uh_check_result(h, 0, false, T0), UH_EV_DOWN | UH_EV_INELIGIBLE);
    assert_int_equal(uh_check_result(h, 1, false, T0), UH_EV_DOWN | UH_EV_INELIGIBLE);
    assert_false(uh_panic(h, T0));
    assert_false(uh_routable(h, 0, T0));
    uh_pool_free(h);

    /* 100 %: panic as soon as one is not eligible. */
    c.panic_threshold_percent = 100;
    h = pool_up(&c, 3, T0);
    assert_int_equal(uh_check_result(h, 0, false, T0),
                     UH_EV_DOWN | UH_EV_INELIGIBLE | UH_EV_PANIC_ON);
    uh_pool_free(h);

    /* Unknown upstreams are outside the panic base and not routable even in panic. */
    c = config_quick();
    h = pool_up(&c, 1, T0);
    for (int i = 1; i < 4; i++)
        assert_int_equal(uh_add(h, i, T0, NULL), SL_OK);
    assert_false(uh_panic(h, T0));                                  /* 1 of 1 */
    assert_int_equal(uh_check_result(h, 1, false, T0), UH_EV_DOWN); /* 1 of 2 */
    assert_int_equal(uh_check_result(h, 2, false, T0), UH_EV_DOWN | UH_EV_PANIC_ON);
    assert_true(uh_routable(h, 1, T0));
    assert_false(uh_routable(h, 3, T0));
    assert_string_equal(uh_state_str(h, 3, T0), "unknown");
    /* Removing a down one ends it; an empty base is no panic. */
    unsigned ev;
    assert_int_equal(uh_remove(h, 1, T0, &ev), SL_OK);
    assert_int_equal(ev, UH_EV_PANIC_OFF);
    assert_int_equal(uh_remove(h, 2, T0, &ev), SL_OK);
    assert_int_equal(ev, 0);
    assert_int_equal(uh_set_admin(h, 0, UH_MAINT, T0), UH_EV_ADMIN | UH_EV_INELIGIBLE);
    assert_false(uh_panic(h, T0));
    uh_pool_free(h);

    /* Adding an UP upstream can end panic too. */

    c.initial = UH_INIT_FULLY_UP;
    h = pool_new(&c);
    assert_int_equal(uh_add(h, 0, T0, &ev), SL_OK);
    assert_int_equal(ev, UH_EV_ELIGIBLE);
    assert_int_equal(uh_check_result(h, 0, false, T0),
                     UH_EV_DOWN | UH_EV_INELIGIBLE | UH_EV_PANIC_ON);
    assert_int_equal(uh_add(h, 1, T0, &ev), SL_OK);
    assert_int_equal(ev, UH_EV_ELIGIBLE | UH_EV_PANIC_OFF); /* 1 of 2 */
    uh_pool_free(h);
}

static void test_admin_drain(void **state)
{
    (void)state;
    struct uh_config c = config_default();
    struct uh_pool *h = pool_up(&c, 4, T0);

    assert_int_equal(uh_set_admin(h, 0, UH_DRAINING, T0), UH_EV_ADMIN | UH_EV_INELIGIBLE);
    assert_false(uh_eligible(h, 0, T0));
    assert_false(uh_routable(h, 0, T0));
    assert_string_equal(uh_state_str(h, 0, T0), "draining");
    assert_int_equal(uh_set_admin(h, 0, UH_DRAINING, T0), 0); /* no change, no event */

    /* Health still follows checks while draining; the state name stays "draining". */
    assert_int_equal(uh_check_result(h, 0, false, T0 + 1), 0);
    assert_int_equal(uh_check_result(h, 0, false, T0 + 2), 0);
    assert_int_equal(uh_check_result(h, 0, false, T0 + 3), UH_EV_DOWN);
    assert_string_equal(uh_state_str(h, 0, T0 + 3), "draining");
    /* Back to serving while down: an admin change but not eligible. */
    assert_int_equal(uh_set_admin(h, 0, UH_SERVING, T0 + 4), UH_EV_ADMIN);
    assert_string_equal(uh_state_str(h, 0, T0 + 4), "down");

    assert_int_equal(uh_set_admin(h, 1, UH_MAINT, T0), UH_EV_ADMIN | UH_EV_INELIGIBLE);
    assert_string_equal(uh_state_str(h, 1, T0), "maint");
    assert_int_equal(uh_set_admin(h, 1, UH_SERVING, T0), UH_EV_ADMIN | UH_EV_ELIGIBLE);
    assert_int_equal(uh_set_admin(h, 1, (enum uh_admin)4, T0), 0);
    assert_string_equal(uh_state_str(h, 1, T0), "serving");

    /* A draining, ejected upstream is "draining"; admin outranks ejection. */
    assert_int_equal(send_5xx(h, 2, 5, T0), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    assert_int_equal(uh_set_admin(h, 2, UH_DRAINING, T0), UH_EV_ADMIN);
    assert_string_equal(uh_state_str(h, 2, T0), "draining");

    struct uh_snapshot s;
    assert_true(uh_snapshot(h, 0, T0 + 4, &s));
    assert_true(s.counters.transitions == 4); /* UP, ADMIN, DOWN, ADMIN */

    enum uh_admin a = UH_MAINT;
    assert_true(uh_admin_parse("draining", &a));
    assert_int_equal(a, UH_DRAINING);
    assert_true(uh_admin_parse("serving", &a));
    assert_int_equal(a, UH_SERVING);
    assert_false(uh_admin_parse("drain", &a));
    assert_string_equal(uh_admin_str(UH_DRAINED), "drained");
    assert_string_equal(uh_admin_str((enum uh_admin)9), "?");
    uh_pool_free(h);
}

static void test_events_once(void **state)
{
    (void)state;
    struct uh_config c = config_default();
    c.consecutive_5xx = 1;
    struct uh_pool *h = pool_up(&c, 10, T0);
    struct uh_change ch[UH_MAX_UPSTREAMS + 1];

    assert_int_equal(send_5xx(h, 0, 1, T0), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    /* The return is reported by the first call on the upstream after its end ... */
    assert_int_equal(uh_request_result(h, 0, UH_OUTCOME_OK, T0 + 30000),
                     UH_EV_RETURNED | UH_EV_ELIGIBLE);
    /* ... and not again by uh_tick. */
    assert_int_equal(uh_tick(h, T0 + 30001, ch, UH_MAX_UPSTREAMS + 1), 0);

    /* A return and a new ejection in one call: both bits, eligibility unchanged. */
    uint64_t t = T0 + 30001;
    assert_int_equal(send_5xx(h, 0, 1, t), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    uint64_t end = ejected_until(h, 0, t);
    assert_int_equal(send_5xx(h, 0, 1, end), UH_EV_RETURNED | UH_EV_EJECTED);
    /* The return is also reported by uh_set_admin and uh_check_result. */
    end = ejected_until(h, 0, end);
    assert_int_equal(uh_set_admin(h, 0, UH_SERVING, end), UH_EV_RETURNED | UH_EV_ELIGIBLE);
    assert_int_equal(send_5xx(h, 0, 1, end), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    end = ejected_until(h, 0, end);
    assert_int_equal(uh_check_result(h, 0, false, end), UH_EV_RETURNED | UH_EV_ELIGIBLE);

    struct uh_snapshot s;
    assert_true(uh_snapshot(h, 0, end, &s));
    /* UP, then 4 ejections and 4 returns */
    assert_true(s.counters.transitions == 1 + 4 + 4);
    assert_true(s.counters.ejections == 4);
    uh_pool_free(h);
}

static void test_tick_cap(void **state)
{
    (void)state;
    struct uh_config c = config_default();
    c.max_ejection_percent = 100;
    c.panic_threshold_percent = 0;
    struct uh_pool *h = pool_up(&c, 10, T0);
    for (int i = 2; i < 5; i++)
        assert_int_equal(send_5xx(h, i, 5, T0), UH_EV_EJECTED | UH_EV_INELIGIBLE);
    struct uh_change ch[2];
    assert_int_equal(uh_tick(h, T0 + 30000, ch, 0), 0);
    assert_int_equal(uh_tick(h, T0 + 30000, ch, 2), 2);
    assert_int_equal(ch[0].idx, 2);
    assert_int_equal(ch[1].idx, 3);
    assert_int_equal(ch[1].events, UH_EV_RETURNED | UH_EV_ELIGIBLE);
    /* The third stays pending, reported by the next tick. */
    assert_true(uh_next_expiry_ms(h) == T0 + 30000);
    assert_int_equal(uh_tick(h, T0 + 40000, ch, 2), 1);
    assert_int_equal(ch[0].idx, 4);
    assert_int_equal(ch[0].events, UH_EV_RETURNED | UH_EV_ELIGIBLE);
    assert_true(uh_next_expiry_ms(h) == UINT64_MAX);
    uh_pool_free(h);

    /* A panic change that does not fit waits for the next tick: out[cap] is not written.
     * 2 of 3 eligible at 100 %: panic; upstream 0's return ends it. */
    c = config_quick();
    c.panic_threshold_percent = 100;
    c.consecutive_5xx = 1;
    h = pool_up(&c, 3, T0);
    assert_int_equal(send_5xx(h, 0, 1, T0), UH_EV_EJECTED | UH_EV_INELIGIBLE | UH_EV_PANIC_ON);
    struct uh_change one[1];
    assert_int_equal(uh_tick(h, T0 + 30000, one, 1), 1);
    assert_int_equal(one[0].idx, 0);
    assert_int_equal(one[0].events, UH_EV_RETURNED | UH_EV_ELIGIBLE);
    assert_false(uh_panic(h, T0 + 30000));
    assert_int_equal(uh_tick(h, T0 + 30000, one, 1), 1);
    assert_int_equal(one[0].idx, UH_POOL);
    assert_int_equal(one[0].events, UH_EV_PANIC_OFF);
    assert_int_equal(uh_tick(h, T0 + 30000, one, 1), 0);
    uh_pool_free(h);
}

static void test_snapshot(void **state)
{
    (void)state;
    struct uh_config c = config_default();
    struct uh_pool *h = pool_up(&c, 10, T0);
    assert_int_equal(uh_request_result(h, 3, UH_OUTCOME_CONNECT_FAIL, T0), 0);
    assert_int_equal(uh_request_result(h, 3, UH_OUTCOME_HTTP_5XX, T0), 0);
    assert_int_equal(uh_request_result(h, 3, UH_OUTCOME_HTTP_5XX, T0), 0);
    struct uh_snapshot s;
    memset(&s, 0xff, sizeof(s));
    assert_true(uh_snapshot(h, 3, T0 + 5, &s));
    assert_string_equal(s.state, "serving");
    assert_int_equal(s.health, UH_UP);
    assert_int_equal(s.admin, UH_SERVING);
    assert_false(s.ejected);
    assert_true(s.eligible);
    assert_true(s.routable);
    assert_int_equal(s.streak_5xx, 2);
    assert_int_equal(s.streak_connect, 0);
    assert_int_equal(s.ejection_multiplier, 0);
    assert_true(s.ejected_until_ms == 0);
    assert_true(s.next_check_ms == T0 + 2000);
    assert_true(s.counters.checks_ok == 1);
    assert_true(s.counters.checks_failed == 0);
    assert_true(s.counters.requests_5xx == 2);
    assert_true(s.counters.connect_failures == 1);
    assert_true(s.counters.requests_ok == 0);
    assert_true(s.counters.ejections == 0);
    assert_true(s.counters.transitions == 1);
    uh_pool_free(h);
}

static void test_event_names(void **state)
{
    (void)state;
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {
        {UH_EV_UP, "up"},
        {UH_EV_DOWN, "down"},
        {UH_EV_EJECTED, "ejected"},
        {UH_EV_RETURNED, "returned"},
        {UH_EV_ADMIN, "admin"},
        {UH_EV_ELIGIBLE, "eligible"},
        {UH_EV_INELIGIBLE, "ineligible"},
        {UH_EV_PANIC_ON, "panic on"},
        {UH_EV_PANIC_OFF, "panic off"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_string_equal(uh_event_str(names[i].bit), names[i].name);
    assert_string_equal(uh_event_str(0), "?");
    assert_string_equal(uh_event_str(UH_EV_UP | UH_EV_ELIGIBLE), "?");
    assert_string_equal(uh_event_str(1u << 9), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_membership),
        cmocka_unit_test(test_unknown_becomes_up_after_first_success),
        cmocka_unit_test(test_rise_fall_exact),
        cmocka_unit_test(test_initial_states),
        cmocka_unit_test(test_next_check),
        cmocka_unit_test(test_5xx_ejection_after_exactly_n),
        cmocka_unit_test(test_connect_failures_separate),
        cmocka_unit_test(test_ejection_grows_and_expires_exactly),
        cmocka_unit_test(test_ejection_cap_and_no_decay),
        cmocka_unit_test(test_max_ejection_percent),
        cmocka_unit_test(test_panic_boundary),
        cmocka_unit_test(test_panic_threshold_edges),
        cmocka_unit_test(test_admin_drain),
        cmocka_unit_test(test_events_once),
        cmocka_unit_test(test_tick_cap),
        cmocka_unit_test(test_snapshot),
        cmocka_unit_test(test_event_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
