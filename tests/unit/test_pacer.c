/* Unit tests for shared/pacer.c: exact intended times and counts at integral and
 * fractional rates, the end bound, due counts (backlog), and rate changes (up, down,
 * pause, resume) that keep the backlog and never shorten the gap. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "err.h"
#include "pacer.h"

#define MS UINT64_C(1000000)
#define S  UINT64_C(1000000000)

/* Take every request the pacer has (it must have an end); their intended times in out. */
static size_t take_all(struct pacer *p, uint64_t *out, size_t cap)
{
    size_t n = 0;
    uint64_t t;
    while (pacer_peek(p, &t)) {
        if (n < cap)
            out[n] = t;
        n++;
        pacer_take(p);
    }
    return n;
}

static void test_constant_rate_exact(void **state)
{
    (void)state;
    struct pacer p;
    static uint64_t t[1000];
    pacer_init(&p, 200 * 1000, 1000, 1000 + 3 * S); /* 200/s for 3 s */
    assert_int_equal(take_all(&p, t, 1000), 600);
    assert_true(t[0] == 1000);
    assert_true(t[1] == 1000 + 5 * MS);
    assert_true(t[599] == 1000 + 599 * 5 * MS);
    assert_int_equal(pacer_taken(&p), 600);
    assert_int_equal(pacer_due(&p, 1000 + 10 * S), 0);
}

static void test_fractional_rates(void **state)
{
    (void)state;
    struct pacer p;
    uint64_t t[8];
    pacer_init(&p, 3000, 0, S); /* 3/s for 1 s: 0, 1/3 s, 2/3 s (1 s is the end) */
    assert_int_equal(take_all(&p, t, 8), 3);
    assert_true(t[1] == 333333333 && t[2] == 666666666);
    pacer_init(&p, 500, 0, 4 * S + 1); /* 0.5/s: 0, 2 s, 4 s */
    assert_int_equal(take_all(&p, t, 8), 3);
    assert_true(t[2] == 4 * S);
    pacer_init(&p, 7 * 1000, 0, S); /* 7/s: ceil(7 * 1) */
    assert_int_equal(take_all(&p, t, 8), 7);
    pacer_init(&p, 7 * 1000, 0, S + 1); /* the 8th is intended at exactly 1 s */
    assert_int_equal(take_all(&p, t, 8), 8);
}

static void test_due_is_the_backlog(void **state)
{
    (void)state;
    struct pacer p;
    uint64_t t;
    pacer_init(&p, 200 * 1000, 0, PACER_NO_END);
    assert_int_equal(pacer_due(&p, 0), 1);       /* request 0 at 0 */
    assert_int_equal(pacer_due(&p, 12 * MS), 3); /* 0, 5, 10 ms */
    assert_int_equal(pacer_due(&p, 15 * MS), 4);
    pacer_take(&p);
    assert_int_equal(pacer_due(&p, 12 * MS), 2);
    assert_true(pacer_peek(&p, &t) && t == 5 * MS);
    pacer_init(&p, 1000, 10 * S, PACER_NO_END); /* not started yet */
    assert_int_equal(pacer_due(&p, 5 * S), 0);
    assert_true(pacer_peek(&p, &t) && t == 10 * S);
}

static void test_rate_up_keeps_the_gap(void **state)
{
    (void)state;
    struct pacer p;
    uint64_t t;
    pacer_init(&p, 100 * 1000, 0, PACER_NO_END); /* 0, 10, 20 ms ... */
    for (int i = 0; i < 3; i++)
        pacer_take(&p);
    uint64_t first = 0;
    assert_int_equal(pacer_set_rate(&p, 1000 * 1000, 25 * MS, &first), 0);
    assert_int_equal(first, 3);
    assert_true(pacer_peek(&p, &t) && t == 25 * MS); /* max(now, 20 + 1 ms) */
    pacer_take(&p);
    assert_true(pacer_peek(&p, &t) && t == 26 * MS);
    /* a change right after a send waits the new interval from that send */
    pacer_init(&p, 1000, 0, PACER_NO_END);       /* 1/s */
    pacer_take(&p);                              /* request 0 at 0 */
    pacer_set_rate(&p, 10 * 1000, 1 * MS, NULL); /* 10/s at 1 ms: next at 100 ms */
    assert_true(pacer_peek(&p, &t) && t == 100 * MS);
}

static void test_rate_down_keeps_the_backlog(void **state)
{
    (void)state;
    struct pacer p;
    uint64_t t[8];
    pacer_init(&p, 100 * 1000, 0, PACER_NO_END); /* 0, 10, 20, 30 ms due at 35 ms */
    uint64_t first = 0;
    assert_int_equal(pacer_set_rate(&p, 10 * 1000, 35 * MS, &first), 0);
    assert_int_equal(first, 4);
    assert_int_equal(pacer_due(&p, 35 * MS), 4);
    for (int i = 0; i < 5; i++) {
        assert_true(pacer_peek(&p, &t[i]));
        pacer_take(&p);
    }
    assert_true(t[0] == 0 && t[1] == 10 * MS && t[2] == 20 * MS && t[3] == 30 * MS);
    assert_true(t[4] == 130 * MS); /* 30 ms + the new 100 ms interval */
    assert_int_equal(pacer_due(&p, 130 * MS), 0);
    assert_int_equal(pacer_due(&p, 230 * MS), 1);
}

static void test_pause_and_resume(void **state)
{
    (void)state;
    struct pacer p;
    uint64_t t;
    pacer_init(&p, 10 * 1000, 0, PACER_NO_END); /* 0, 100 ms, ... */
    pacer_take(&p);
    pacer_take(&p);
    uint64_t first = 0;
    assert_int_equal(pacer_set_rate(&p, 0, 150 * MS, &first), 0);
    assert_int_equal(first, 2);
    assert_true(pacer_rate(&p) == 0);
    assert_false(pacer_peek(&p, &t));
    assert_int_equal(pacer_due(&p, 10 * S), 0);
    pacer_set_rate(&p, 10 * 1000, 5 * S, NULL); /* resumes at once: 100 ms + 100 ms is long past */
    assert_true(pacer_peek(&p, &t) && t == 5 * S);
    pacer_take(&p);
    assert_true(pacer_peek(&p, &t) && t == 5 * S + 100 * MS);
    assert_int_equal(pacer_taken(&p), 3);
}

static void test_end_holds_across_changes(void **state)
{
    (void)state;
    struct pacer p;
    static uint64_t t[2000];
    pacer_init(&p, 100 * 1000, 0, 2 * S); /* 100/s, then 400/s from 1 s, to 2 s */
    while (pacer_peek(&p, &t[0]) && t[0] < S)
        pacer_take(&p);
    assert_int_equal(pacer_taken(&p), 100);
    uint64_t first = 0; /* request 100 is intended at exactly 1 s: it keeps its time */
    assert_int_equal(pacer_set_rate(&p, 400 * 1000, S, &first), 0);
    assert_int_equal(first, 101);
    size_t n = take_all(&p, t, 2000); /* 1 s, then 1.0025 s, ... < 2 s: 399 more */
    assert_int_equal(n, 400);
    assert_true(t[0] == S && t[1] == S + 2500000 && t[399] == S + 399 * 2500000);
    assert_int_equal(pacer_taken(&p), 500);
    pacer_set_rate(&p, 1000 * 1000, 3 * S, NULL); /* past the end: still nothing */
    assert_false(pacer_peek(&p, &t[0]));
}

/* A backlog spanning several changes keeps every request's time; at the bound a change
 * is refused (nothing changed) until the backlog drains. */
static void test_backlog_across_changes(void **state)
{
    (void)state;
    struct pacer p;
    uint64_t t;
    pacer_init(&p, 1000 * 1000, 0, PACER_NO_END);                      /* 1000/s: 0, 1, 2 ... ms */
    assert_int_equal(pacer_set_rate(&p, 100 * 1000, 2 * MS, NULL), 0); /* 0,1,2 ms kept */
    assert_int_equal(pacer_set_rate(&p, 10 * 1000, 40 * MS, NULL), 0); /* 12,22,32 ms kept */
    assert_int_equal(p.nseg, 3);
    assert_int_equal(pacer_due(&p, 40 * MS), 6);
    const uint64_t want[] = {0, 1 * MS, 2 * MS, 12 * MS, 22 * MS, 32 * MS, 132 * MS};
    for (int i = 0; i < 7; i++) {
        assert_true(pacer_peek(&p, &t));
        assert_true(t == want[i]);
        pacer_take(&p);
    }
    assert_int_equal(p.nseg, 1);
    for (unsigned i = 1; i < PACER_SEGMENTS_MAX; i++) /* each change keeps one due request */
        assert_int_equal(pacer_set_rate(&p, 10 * 1000, (200 + 200 * i) * MS, NULL), 0);
    struct pacer before = p;
    assert_int_equal(pacer_set_rate(&p, 1000, 10 * S, NULL), SL_ETOOBIG);
    assert_memory_equal(&before, &p, sizeof(p));
    while (pacer_due(&p, 10 * S))
        pacer_take(&p);
    assert_int_equal(pacer_set_rate(&p, 1000, 10 * S, NULL), 0);
}

static void test_rate_is_clamped(void **state)
{
    (void)state;
    struct pacer p;
    pacer_init(&p, UINT64_MAX, 0, PACER_NO_END);
    assert_true(pacer_rate(&p) == PACER_RATE_MPS_MAX);
    assert_int_equal(pacer_due(&p, S - 1), 1000000); /* a million in the first second */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant_rate_exact),
        cmocka_unit_test(test_fractional_rates),
        cmocka_unit_test(test_due_is_the_backlog),
        cmocka_unit_test(test_rate_up_keeps_the_gap),
        cmocka_unit_test(test_rate_down_keeps_the_backlog),
        cmocka_unit_test(test_pause_and_resume),
        cmocka_unit_test(test_end_holds_across_changes),
        cmocka_unit_test(test_backlog_across_changes),
        cmocka_unit_test(test_rate_is_clamped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
