/* balancer: algorithm names, backend bookkeeping, exact round robin / smooth weighted /
 * least_conn sequences, p2c costs with a scripted random source, Maglev balance and
 * movement on add, remove and eligibility changes, exclude for retries, retry budget. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "balancer.h"
#include "err.h"

#define NKEYS 100000
#define THIRD (100.0 / 3)

static struct balancer *pool(enum balancer_alg alg, const char *const *names,
                             const unsigned *weights, int n)
{
    struct balancer *b = balancer_new();
    assert_non_null(b);
    assert_int_equal(balancer_set_algorithm(b, alg), SL_OK);
    for (int i = 0; i < n; i++)
        assert_int_equal(balancer_add(b, names[i], weights ? weights[i] : 1), i);
    return b;
}

static const char *const abc[] = {"a:80", "b:80", "c:80", "d:80"};

/* balancer_picks of indexes 0 .. n-1 are exactly want[]. */
static void assert_picks(const struct balancer *b, const uint64_t *want, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(balancer_picks(b, i), want[i]);
}

/* The next picks (NULL key) spell want, as letters: "a" for index 0. */
static void assert_seq(struct balancer *b, int exclude, const char *want)
{
    char got[128];
    size_t n = strlen(want);
    assert_true(n < sizeof(got));
    for (size_t i = 0; i < n; i++) {
        int idx = balancer_pick(b, NULL, 0, exclude);
        assert_in_range(idx, 0, 25);
        got[i] = (char)('a' + idx);
    }
    got[n] = '\0';
    assert_string_equal(got, want);
}

/* --- names ------------------------------------------------------------------------------ */

static void test_parse(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        enum balancer_alg alg;
    } ok[] = {
        {"round_robin", BALANCER_ROUND_ROBIN}, {"weighted", BALANCER_WEIGHTED},
        {"least_conn", BALANCER_LEAST_CONN},   {"p2c", BALANCER_P2C},
        {"hash:ip", BALANCER_HASH_IP},
    };
    enum balancer_alg alg;
    char hdr[16] = "untouched";
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        alg = BALANCER_HASH_HEADER;
        assert_int_equal(balancer_parse_algorithm(ok[i].s, &alg, hdr, sizeof(hdr)), SL_OK);
        assert_int_equal(alg, ok[i].alg);
        assert_string_equal(balancer_alg_str(alg), ok[i].s);
    }
    assert_string_equal(hdr, "untouched");
    assert_int_equal(balancer_parse_algorithm("hash:header:X-User-Id", &alg, hdr, sizeof(hdr)),
                     SL_OK);
    assert_int_equal(alg, BALANCER_HASH_HEADER);
    assert_string_equal(hdr, "X-User-Id");
    assert_string_equal(balancer_alg_str(alg), "hash:header");
    assert_string_equal(balancer_alg_str((enum balancer_alg)42), "?");

    static const char *const bad[] = {
        "random",          "",          "hash:header:",
        "hash:header",     "hash:",     "hash",
        "Round_Robin",     "p2c ",      " p2c",
        "least_conn\n",    "hash:ip:x", "hash:header:X User",
        "hash:header:a:b", "weighted2",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        alg = BALANCER_P2C;
        strcpy(hdr, "keep");
        assert_int_equal(balancer_parse_algorithm(bad[i], &alg, hdr, sizeof(hdr)), SL_EINVAL);
        assert_int_equal(alg, BALANCER_P2C);
        assert_string_equal(hdr, "keep");
    }
    /* 15 bytes + NUL fit in 16; 16 do not. */
    assert_int_equal(balancer_parse_algorithm("hash:header:abcdefghijklmno", &alg, hdr, 16), SL_OK);
    assert_string_equal(hdr, "abcdefghijklmno");
    alg = BALANCER_P2C;
    assert_int_equal(balancer_parse_algorithm("hash:header:abcdefghijklmnop", &alg, hdr, 16),
                     SL_ETOOBIG);
    assert_int_equal(alg, BALANCER_P2C);
    assert_int_equal(balancer_parse_algorithm("hash:header:x", &alg, NULL, 0), SL_ETOOBIG);
}

/* --- bookkeeping ------------------------------------------------------------------------ */

static void test_add_remove_find(void **state)
{
    (void)state;
    struct balancer *b = pool(BALANCER_ROUND_ROBIN, abc, NULL, 3);
    assert_int_equal(balancer_size(b), 3);
    assert_int_equal(balancer_find(b, "b:80"), 1);
    assert_int_equal(balancer_find(b, "z:80"), -1);
    assert_int_equal(balancer_add(b, "a:80", 1), SL_EEXISTS);
    assert_int_equal(balancer_add(b, "", 1), SL_EINVAL);
    assert_int_equal(balancer_add(b, "e:80", BALANCER_WEIGHT_MAX + 1), SL_ERANGE);
    assert_int_equal(balancer_remove(b, "z:80"), SL_ENOTFOUND);
    assert_int_equal(balancer_remove(b, "b:80"), SL_OK);
    assert_int_equal(balancer_size(b), 2);
    /* Others keep their index; the freed one is reused. */
    assert_string_equal(balancer_name(b, 0), "a:80");
    assert_null(balancer_name(b, 1));
    assert_string_equal(balancer_name(b, 2), "c:80");
    assert_int_equal(balancer_add(b, "e:80", 7), 1);
    assert_int_equal(balancer_weight(b, 1), 7);
    assert_true(balancer_is_eligible(b, 1));

    assert_int_equal(balancer_set_weight(b, 1, BALANCER_WEIGHT_MAX + 1), SL_ERANGE);
    assert_int_equal(balancer_set_weight(b, 1, BALANCER_WEIGHT_MAX), SL_OK);
    assert_int_equal(balancer_weight(b, 1), BALANCER_WEIGHT_MAX);
    assert_int_equal(balancer_set_weight(b, 3, 1), SL_ENOTFOUND);
    assert_int_equal(balancer_set_eligible(b, -1, true), SL_ENOTFOUND);
    assert_int_equal(balancer_set_eligible(b, BALANCER_MAX, true), SL_ENOTFOUND);
    assert_int_equal(balancer_set_eligible(b, 2, false), SL_OK);
    assert_false(balancer_is_eligible(b, 2));

    /* Accessors on indexes without a backend, and ignored reports. */
    balancer_started(b, 3);
    balancer_finished(b, -1, 10, true);
    assert_null(balancer_name(b, BALANCER_MAX));
    assert_int_equal(balancer_weight(b, 3), 0);
    assert_false(balancer_is_eligible(b, 3));
    assert_int_equal(balancer_in_flight(b, 3), 0);
    assert_int_equal(balancer_picks(b, 3), 0);
    assert_true(balancer_ewma_us(b, 3) == 0);
    balancer_free(b);
    balancer_free(NULL);
}

static void test_bounds(void **state)
{
    (void)state;
    struct balancer *b = balancer_new();
    assert_non_null(b);
    char name[BALANCER_NAME_MAX + 2];
    for (int i = 0; i < BALANCER_MAX; i++) {
        snprintf(name, sizeof(name), "10.0.%d.%d:8080", i / 256, i % 256);
        assert_int_equal(balancer_add(b, name, 1), i);
    }
    assert_int_equal(balancer_add(b, "one-too-many:1", 1), SL_ERANGE);
    assert_int_equal(balancer_remove(b, "10.0.0.7:8080"), SL_OK);
    memset(name, 'x', BALANCER_NAME_MAX + 1);
    name[BALANCER_NAME_MAX + 1] = '\0';
    assert_int_equal(balancer_add(b, name, 1), SL_EINVAL);
    name[BALANCER_NAME_MAX] = '\0';
    assert_int_equal(balancer_add(b, name, 1), 7);
    assert_string_equal(balancer_name(b, 7), name);
    /* All 256 through a Maglev table and round robin. */
    assert_int_equal(balancer_set_table_size(b, 4099), SL_OK);
    assert_int_equal(balancer_set_algorithm(b, BALANCER_HASH_IP), SL_OK);
    for (int i = 0; i < 1000; i++)
        assert_in_range(balancer_pick(b, &i, sizeof(i), -1), 0, BALANCER_MAX - 1);
    assert_int_equal(balancer_set_algorithm(b, BALANCER_ROUND_ROBIN), SL_OK);
    for (int i = 0; i < BALANCER_MAX; i++)
        assert_int_equal(balancer_pick(b, NULL, 0, -1), i);
    balancer_free(b);
}

static void test_nothing_usable(void **state)
{
    (void)state;
    for (int alg = BALANCER_ROUND_ROBIN; alg <= BALANCER_HASH_HEADER; alg++) {
        struct balancer *b = pool((enum balancer_alg)alg, abc, NULL, 0);
        assert_int_equal(balancer_pick(b, "k", 1, -1), -1);
        assert_int_equal(balancer_add(b, "a:80", 0), 0);
        assert_int_equal(balancer_add(b, "b:80", 3), 1);
        assert_int_equal(balancer_set_eligible(b, 1, false), SL_OK);
        assert_int_equal(balancer_pick(b, "k", 1, -1), -1);
        assert_int_equal(balancer_pick(b, "k", 1, 1), -1);
        assert_int_equal(balancer_set_eligible(b, 1, true), SL_OK);
        assert_int_equal(balancer_pick(b, "k", 1, -1), 1);
        assert_int_equal(balancer_picks(b, 0), 0);
        assert_int_equal(balancer_picks(b, 1), 1);
        balancer_free(b);
    }
    struct balancer *b = balancer_new();
    assert_int_equal(balancer_set_algorithm(b, (enum balancer_alg)6), SL_EINVAL);
    assert_int_equal(balancer_algorithm(b), BALANCER_ROUND_ROBIN);
    balancer_free(b);
}

/* --- round robin ------------------------------------------------------------------------ */

static void test_round_robin(void **state)
{
    (void)state;
    static const unsigned w[] = {1, 9, 3, 1};
    struct balancer *b = pool(BALANCER_ROUND_ROBIN, abc, w, 4);
    assert_seq(b, -1, "abcdabcda");
    assert_int_equal(balancer_set_eligible(b, 2, false), SL_OK);
    assert_seq(b, -1, "bdabdab"); /* continues after a: b, skips c */
    assert_int_equal(balancer_set_weight(b, 0, 0), SL_OK);
    assert_seq(b, -1, "dbdbd");
    assert_int_equal(balancer_set_eligible(b, 2, true), SL_OK);
    assert_seq(b, -1, "bcdbcd");
    assert_picks(b, (const uint64_t[]){5, 9, 4, 9}, 4);
    assert_seq(b, 1, "cdcd"); /* a retry avoiding b */
    balancer_free(b);
}

/* --- smooth weighted round robin -------------------------------------------------------- */

static void test_weighted_sequence(void **state)
{
    (void)state;
    static const unsigned w[] = {5, 1, 1};
    struct balancer *b = pool(BALANCER_WEIGHTED, abc, w, 3);
    assert_seq(b, -1, "aabacaaaabacaaaabacaa"); /* nginx's example, three cycles */
    assert_seq(b, -1, "a");
    /* A change restarts the cycle from zero (without the reset: "abacabaa"). */
    assert_int_equal(balancer_set_weight(b, 1, 2), SL_OK);
    assert_seq(b, -1, "abaacaba");
    balancer_free(b);
}

/* No backend runs longer than ceil(w / w_min) picks in a row. */
static void test_weighted_smooth(void **state)
{
    (void)state;
    static const unsigned w[] = {5, 1, 1};
    struct balancer *b = pool(BALANCER_WEIGHTED, abc, w, 3);
    int prev = -1, run = 0, longest[3] = {0};
    for (int i = 0; i < 7000; i++) {
        int idx = balancer_pick(b, NULL, 0, -1);
        run = idx == prev ? run + 1 : 1;
        prev = idx;
        if (run > longest[idx])
            longest[idx] = run;
    }
    assert_int_equal(longest[0], 4); /* "aa" wraps into "aa": a a | a a b */
    assert_int_equal(longest[1], 1);
    assert_int_equal(longest[2], 1);
    for (int i = 0; i < 3; i++) /* w_min = 1 */
        assert_true(longest[i] <= (int)w[i]);
    assert_picks(b, (const uint64_t[]){5000, 1000, 1000}, 3);
    balancer_free(b);
}

static void test_weighted_distribution(void **state)
{
    (void)state;
    static const unsigned w[] = {50, 30, 20};
    struct balancer *b = pool(BALANCER_WEIGHTED, abc, w, 3);
    /* Exact over one cycle of sum(w) = 100 picks... */
    for (int i = 0; i < 100; i++)
        balancer_pick(b, NULL, 0, -1);
    assert_picks(b, (const uint64_t[]){50, 30, 20}, 3);
    /* ...and over 100k (1000 cycles), so well within 1%. */
    for (int i = 100; i < 100000; i++)
        balancer_pick(b, NULL, 0, -1);
    assert_picks(b, (const uint64_t[]){50000, 30000, 20000}, 3);
    balancer_free(b);
}

/* --- least connections ------------------------------------------------------------------ */

static void test_least_conn(void **state)
{
    (void)state;
    struct balancer *b = pool(BALANCER_LEAST_CONN, abc, NULL, 3);
    assert_seq(b, -1, "abcabca"); /* all idle: ties rotate */
    balancer_started(b, 0);
    balancer_started(b, 0);
    balancer_started(b, 1);
    assert_int_equal(balancer_in_flight(b, 0), 2);
    assert_seq(b, -1, "ccc"); /* c is the idle one */
    balancer_started(b, 2);
    assert_seq(b, -1, "bcbc"); /* b and c at 1: they share, a (2) waits */
    balancer_finished(b, 0, 100, true);
    balancer_finished(b, 0, 100, false);
    balancer_finished(b, 0, 100, true); /* in_flight stays at 0 */
    assert_int_equal(balancer_in_flight(b, 0), 0);
    assert_seq(b, -1, "aa");
    /* Weighted: a (w 3) with 2 in flight (2/3) beats b (w 1) with 1 (1/1)... */
    assert_int_equal(balancer_set_weight(b, 0, 3), SL_OK);
    balancer_started(b, 0);
    balancer_started(b, 0);
    assert_int_equal(balancer_set_eligible(b, 2, false), SL_OK);
    assert_seq(b, -1, "aa");
    /* ...and ties with it at 3/3 vs 1/1: rotation decides. */
    balancer_started(b, 0);
    assert_seq(b, -1, "ba");
    balancer_free(b);
}

/* --- p2c -------------------------------------------------------------------------------- */

struct script {
    const uint64_t *v;
    size_t n, next;
};

static uint64_t scripted(void *arg)
{
    struct script *s = arg;
    return s->v[s->next++ % s->n];
}

static void test_p2c_costs(void **state)
{
    (void)state;
    struct balancer *b = pool(BALANCER_P2C, abc, NULL, 3);
    /* Draws (r1 mod 3, r2 mod 2): (0,0) -> a vs b; (1,0) -> b vs a; (2,1) -> c vs b;
     * (0,1) -> a vs c. */
    static const uint64_t draws[] = {0, 0, 1, 0, 2, 1, 3, 1};
    struct script s = {draws, 8, 0};
    balancer_set_rnd(b, scripted, &s);
    balancer_finished(b, 0, 100, true);
    balancer_finished(b, 1, 1000, true);
    balancer_finished(b, 2, 300, true);
    assert_seq(b, -1, "aaca"); /* a (100) < b (1000), a < b, c (300) < b, a < c */
    /* Load counts: a at 100 * (10 + 1) = 1100 loses to b at 1000 and c at 300. */
    for (int i = 0; i < 10; i++)
        balancer_started(b, 0);
    assert_seq(b, -1, "bbcc");
    /* Weight divides the cost: b at 1000 / 4 = 250 beats c at 300. */
    assert_int_equal(balancer_set_weight(b, 1, 4), SL_OK);
    assert_seq(b, -1, "bbbc");
    balancer_free(b);
}

static void test_p2c_unsampled_and_ineligible(void **state)
{
    (void)state;
    struct balancer *b = pool(BALANCER_P2C, abc, NULL, 3);
    static const uint64_t draws[] = {0, 0, 1, 0};
    struct script s = {draws, 4, 0};
    balancer_set_rnd(b, scripted, &s);
    /* Only a has a sample (400): b is costed at the mean, 400, and ties lose. */
    balancer_finished(b, 0, 400, true);
    assert_seq(b, -1, "ab");
    /* One in flight on unsampled b: 400 * 2 > 400. */
    balancer_started(b, 1);
    assert_seq(b, -1, "aa");
    /* Real randomness: an ineligible backend is never drawn; the rest share. */
    balancer_set_rnd(b, NULL, NULL);
    assert_int_equal(balancer_set_eligible(b, 1, false), SL_OK);
    balancer_finished(b, 1, 0, false);
    for (int i = 0; i < 3000; i++)
        assert_int_not_equal(balancer_pick(b, NULL, 0, -1), 1);
    assert_true(balancer_picks(b, 0) > 500 && balancer_picks(b, 2) > 500);
    balancer_free(b);
}

static void test_ewma(void **state)
{
    (void)state;
    struct balancer *b = pool(BALANCER_P2C, abc, NULL, 1);
    assert_true(balancer_ewma_us(b, 0) == 0);
    balancer_finished(b, 0, 1000, true); /* seeds */
    assert_true(balancer_ewma_us(b, 0) == 1000);
    balancer_finished(b, 0, 2000, true); /* 1000 + 0.3 * 1000 */
    assert_true(fabs(balancer_ewma_us(b, 0) - 1300) < 1e-9);
    balancer_finished(b, 0, 1, false); /* errors do not feed the EWMA */
    assert_true(fabs(balancer_ewma_us(b, 0) - 1300) < 1e-9);
    assert_int_equal(balancer_set_ewma_alpha(b, 0), SL_EINVAL);
    assert_int_equal(balancer_set_ewma_alpha(b, 1.5), SL_EINVAL);
    assert_int_equal(balancer_set_ewma_alpha(b, NAN), SL_EINVAL);
    assert_int_equal(balancer_set_ewma_alpha(b, 0.5), SL_OK);
    balancer_finished(b, 0, 300, true); /* 1300 + 0.5 * (300 - 1300) */
    assert_true(fabs(balancer_ewma_us(b, 0) - 800) < 1e-9);
    balancer_free(b);
}

/* --- exclude ---------------------------------------------------------------------------- */

static void test_exclude(void **state)
{
    (void)state;
    for (int alg = BALANCER_ROUND_ROBIN; alg <= BALANCER_HASH_HEADER; alg++) {
        struct balancer *b = pool((enum balancer_alg)alg, abc, NULL, 3);
        assert_int_equal(balancer_set_table_size(b, 4099), SL_OK);
        for (int i = 0; i < 300; i++) {
            int ex = i % 3;
            assert_int_not_equal(balancer_pick(b, &i, sizeof(i), ex), ex);
        }
        /* Two left, one of them excluded: always the other. */
        assert_int_equal(balancer_set_eligible(b, 2, false), SL_OK);
        for (int i = 0; i < 50; i++)
            assert_int_equal(balancer_pick(b, &i, sizeof(i), 0), 1);
        /* Exclude is the only usable backend: still picked rather than nothing. */
        assert_int_equal(balancer_set_eligible(b, 1, false), SL_OK);
        assert_int_equal(balancer_pick(b, "k", 1, 0), 0);
        /* An exclude that is not usable, or no backend at all, is ignored. */
        assert_int_equal(balancer_pick(b, "k", 1, 2), 0);
        assert_int_equal(balancer_pick(b, "k", 1, 99), 0);
        assert_int_equal(balancer_pick(b, "k", 1, BALANCER_MAX + 5), 0);
        balancer_free(b);
    }
}

/* --- Maglev ----------------------------------------------------------------------------- */

/* Keys are IPv4 addresses 10.0.0.0 + i, four bytes in network order. */
static int pick_key(struct balancer *b, uint32_t i, int exclude)
{
    uint32_t ip = 0x0a000000u + i;
    unsigned char key[4] = {(unsigned char)(ip >> 24), (unsigned char)(ip >> 16),
                            (unsigned char)(ip >> 8), (unsigned char)ip};
    return balancer_pick(b, key, sizeof(key), exclude);
}

static void map_keys(struct balancer *b, int *owner)
{
    for (uint32_t i = 0; i < NKEYS; i++) {
        owner[i] = pick_key(b, i, -1);
        assert_in_range(owner[i], 0, BALANCER_MAX - 1);
    }
}

/* Keys 0 .. nkeys-1: backend i gets want_pct[i] % of them, +- tol_pct points. */
static void assert_shares(struct balancer *b, uint32_t nkeys, const double *want_pct, int n,
                          double tol_pct)
{
    uint32_t count[BALANCER_MAX] = {0};
    for (uint32_t i = 0; i < nkeys; i++)
        count[pick_key(b, i, -1)]++;
    for (int i = 0; i < n; i++) {
        double pct = 100.0 * count[i] / nkeys;
        if (fabs(pct - want_pct[i]) > tol_pct)
            fail_msg("backend %d has %.2f%% of the keys, want %.2f%% +- %.2f", i, pct, want_pct[i],
                     tol_pct);
    }
}

static void test_maglev_balance_and_order(void **state)
{
    (void)state;
    struct balancer *b = pool(BALANCER_HASH_IP, abc, NULL, 3);
    assert_shares(b, NKEYS, (const double[]){THIRD, THIRD, THIRD}, 3, 1.0);
    /* Same names added in another order, and through hash:header: same backend by name;
     * the same key again: the same backend. */
    static const char *const cba[] = {"c:80", "a:80", "b:80"};
    struct balancer *r = pool(BALANCER_HASH_HEADER, cba, NULL, 3);
    for (uint32_t i = 0; i < NKEYS; i++) { /* all: an index-order fill differs in ~1e-4 */
        int owner = pick_key(b, i, -1);
        assert_string_equal(balancer_name(b, owner), balancer_name(r, pick_key(r, i, -1)));
        assert_int_equal(pick_key(b, i, -1), owner);
    }
    /* A NULL key (header absent) goes round robin. */
    assert_seq(b, -1, "abca");
    balancer_free(b);
    balancer_free(r);
}

static void test_maglev_weights(void **state)
{
    (void)state;
    static const unsigned w[] = {2, 1, 1};
    struct balancer *b = pool(BALANCER_HASH_IP, abc, w, 3);
    assert_shares(b, NKEYS, (const double[]){50, 25, 25}, 3, 2.0);
    balancer_free(b);
}

/* Fixture of the movement tests: a hash:ip pool of a, b, c and two key -> owner maps. */
struct movement {
    struct balancer *b;
    int before[NKEYS], after[NKEYS];
};

static int movement_setup(void **state)
{
    struct movement *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    m->b = pool(BALANCER_HASH_IP, abc, NULL, 3);
    *state = m;
    return 0;
}

static int movement_teardown(void **state)
{
    struct movement *m = *state;
    balancer_free(m->b);
    free(m);
    return 0;
}

/* The mapping is back to `before`, key for key. */
static void assert_restored(struct movement *m)
{
    map_keys(m->b, m->after);
    assert_memory_equal(m->after, m->before, sizeof(m->before));
}

static void test_maglev_add_then_remove(void **state)
{
    struct movement *m = *state;
    map_keys(m->b, m->before);
    assert_int_equal(balancer_add(m->b, "d:80", 1), 3);
    map_keys(m->b, m->after);
    int moved = 0, to_new = 0;
    for (int i = 0; i < NKEYS; i++) {
        moved += m->after[i] != m->before[i];
        to_new += m->after[i] == 3;
    }
    /* Ideal 1/4 = 25%; Maglev also moves a little between the old three. */
    assert_in_range(moved, NKEYS * 20 / 100, NKEYS * 30 / 100);
    assert_in_range(to_new, NKEYS * 23 / 100, NKEYS * 27 / 100);
    assert_true(moved - to_new < NKEYS / 100);
    /* Removing it again restores the exact mapping (placement is a function of the set). */
    assert_int_equal(balancer_remove(m->b, "d:80"), SL_OK);
    assert_restored(m);
}

static void test_maglev_remove(void **state)
{
    struct movement *m = *state;
    assert_int_equal(balancer_add(m->b, "d:80", 1), 3);
    map_keys(m->b, m->before);
    assert_int_equal(balancer_remove(m->b, "b:80"), SL_OK);
    map_keys(m->b, m->after);
    int own = 0, others_moved = 0;
    for (int i = 0; i < NKEYS; i++) {
        assert_int_not_equal(m->after[i], 1);
        if (m->before[i] == 1)
            own++;
        else
            others_moved += m->after[i] != m->before[i];
    }
    assert_in_range(own, NKEYS * 23 / 100, NKEYS * 27 / 100);
    /* Only b's keys move, up to Maglev's small disruption (NSDI'16 §3.4). */
    assert_true(others_moved < NKEYS / 100);
}

static void test_maglev_ineligible(void **state)
{
    struct movement *m = *state;
    assert_int_equal(balancer_add(m->b, "d:80", 1), 3);
    map_keys(m->b, m->before);
    assert_int_equal(balancer_set_eligible(m->b, 1, false), SL_OK);
    map_keys(m->b, m->after);
    int own = 0, got[4] = {0};
    for (int i = 0; i < NKEYS; i++) {
        if (m->before[i] != 1) {
            assert_int_equal(m->after[i], m->before[i]); /* exactly: others' keys stay */
            continue;
        }
        own++;
        got[m->after[i]]++;
    }
    assert_int_equal(got[1], 0);
    for (int n = 0; n < 4; n += 1 + (n == 0)) /* b's keys spread over a, c, d */
        assert_in_range(got[n], own * 28 / 100, own * 38 / 100);
    /* Back in service: its keys come back, exactly. */
    assert_int_equal(balancer_set_eligible(m->b, 1, true), SL_OK);
    assert_restored(m);
}

static void test_maglev_exclude_is_stable(void **state)
{
    (void)state;
    struct balancer *b = pool(BALANCER_HASH_HEADER, abc, NULL, 4);
    assert_int_equal(balancer_set_table_size(b, 4099), SL_OK);
    int alt[4] = {0};
    for (uint32_t i = 0; i < 4000; i++) {
        int owner = pick_key(b, i, -1), other = pick_key(b, i, owner);
        assert_int_not_equal(other, owner);
        assert_int_equal(pick_key(b, i, owner), other);
        alt[other]++;
    }
    for (int n = 0; n < 4; n++) /* the retries spread too */
        assert_in_range(alt[n], 850, 1150);
    balancer_free(b);
}

static void test_table_size(void **state)
{
    (void)state;
    struct balancer *b = pool(BALANCER_HASH_IP, abc, NULL, 3);
    static const unsigned bad[] = {0, 1, 256, 4098, 65536, 65539, 4097 /* 17 * 241 */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(balancer_set_table_size(b, bad[i]), SL_EINVAL);
    assert_int_equal(balancer_set_table_size(b, BALANCER_TABLE_MIN), SL_OK);
    assert_in_range(pick_key(b, 1, -1), 0, 2);
    assert_int_equal(balancer_set_table_size(b, 4099), SL_OK);
    assert_shares(b, 30000, (const double[]){THIRD, THIRD, THIRD}, 3, 3.3);
    balancer_free(b);
}

/* --- retry budget ----------------------------------------------------------------------- */

static void test_retry_budget(void **state)
{
    (void)state;
    struct retry_budget rb;
    assert_int_equal(retry_budget_init(&rb, -0.1, 3), SL_EINVAL);
    assert_int_equal(retry_budget_init(&rb, 1.01, 3), SL_EINVAL);
    assert_int_equal(retry_budget_init(&rb, NAN, 3), SL_EINVAL);
    static const struct {
        double ratio;
        unsigned min, requests, retries;
        bool allow;
    } rows[] = {
        {0.2, 3, 4, 2, true},    /* quiet cluster: min_concurrent = 3 at once */
        {0.2, 3, 4, 3, false},   /*   ...and no more */
        {0.2, 3, 100, 19, true}, /* 20% of 100 = 20 */
        {0.2, 3, 100, 20, false}, {0.25, 0, 10, 2, true}, /* 2.5: a third retry may start, a fourth
                                                             not */
        {0.25, 0, 10, 3, false},  {0.1, 0, 30, 2, true},  /* 0.1 * 30 is 3.0000000000000004 in
                                                             doubles: still 3 */
        {0.1, 0, 30, 3, false},   {1, 0, 5, 4, true},     {1, 0, 5, 5, false},
        {0, 0, 1000, 0, false}, /* ratio 0, min 0: never */
        {0, 1, 1000, 0, true},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(retry_budget_init(&rb, rows[i].ratio, rows[i].min), SL_OK);
        assert_int_equal(rb.active_requests + rb.active_retries, 0);
        rb.active_requests = rows[i].requests;
        rb.active_retries = rows[i].retries;
        if (retry_budget_allow(&rb) != rows[i].allow)
            fail_msg("row %zu: want %s", i, rows[i].allow ? "allow" : "deny");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_add_remove_find),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_nothing_usable),
        cmocka_unit_test(test_round_robin),
        cmocka_unit_test(test_weighted_sequence),
        cmocka_unit_test(test_weighted_smooth),
        cmocka_unit_test(test_weighted_distribution),
        cmocka_unit_test(test_least_conn),
        cmocka_unit_test(test_p2c_costs),
        cmocka_unit_test(test_p2c_unsampled_and_ineligible),
        cmocka_unit_test(test_ewma),
        cmocka_unit_test(test_exclude),
        cmocka_unit_test(test_maglev_balance_and_order),
        cmocka_unit_test(test_maglev_weights),
        cmocka_unit_test_setup_teardown(test_maglev_add_then_remove, movement_setup,
                                        movement_teardown),
        cmocka_unit_test_setup_teardown(test_maglev_remove, movement_setup, movement_teardown),
        cmocka_unit_test_setup_teardown(test_maglev_ineligible, movement_setup, movement_teardown),
        cmocka_unit_test(test_maglev_exclude_is_stable),
        cmocka_unit_test(test_table_size),
        cmocka_unit_test(test_retry_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
