/* hashring: exact hash64 values, deterministic placement, balance with virtual nodes,
 * minimal movement on add, exact restoration on remove, bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hashring.h"

#define NKEYS  30000
#define VNODES 160

static size_t key_of(int i, char *out, size_t cap)
{
    return (size_t)snprintf(out, cap, "link:%d", i);
}

static void lookup_all(const struct hashring *r, int *owner)
{
    char k[32];
    for (int i = 0; i < NKEYS; i++) {
        size_t n = key_of(i, k, sizeof(k));
        owner[i] = hashring_lookup(r, k, n);
    }
}

/* Pinned values: shard placement depends on them, so they must never change. Computed by
 * an independent Python implementation of FNV-1a 64 + fmix64. */
static void test_hash64_stable(void **state)
{
    (void)state;
    assert_true(hash64("", 0) == 0xefd01f60ba992926ULL);
    assert_true(hash64("a", 1) == 0x82a2a958a9bece5bULL);
    assert_true(hash64("link:1", 6) == 0x96d8b0a3edb3e25eULL);
    assert_true(hash64("shard-0#0", 9) == 0xd09fcac34807c822ULL);
}

static struct hashring *ring3(void)
{
    struct hashring *r = hashring_new(VNODES);
    assert_non_null(r);
    assert_int_equal(hashring_add(r, "redis-a"), 0);
    assert_int_equal(hashring_add(r, "redis-b"), 1);
    assert_int_equal(hashring_add(r, "redis-c"), 2);
    return r;
}

static void test_empty_and_names(void **state)
{
    (void)state;
    struct hashring *r = hashring_new(VNODES);
    assert_non_null(r);
    assert_int_equal(hashring_lookup(r, "x", 1), -1);
    assert_int_equal(hashring_size(r), 0);
    assert_int_equal(hashring_add(r, "a"), 0);
    assert_int_equal(hashring_lookup(r, "x", 1), 0);
    assert_string_equal(hashring_node_name(r, 0), "a");
    assert_null(hashring_node_name(r, 1));
    assert_null(hashring_node_name(r, -1));
    assert_null(hashring_node_name(r, HASHRING_MAX_NODES));
    assert_int_equal(hashring_add(r, "a"), SL_EEXISTS);
    assert_int_equal(hashring_add(r, ""), SL_EINVAL);
    assert_int_equal(hashring_remove(r, "zz"), SL_ENOTFOUND);
    assert_int_equal(hashring_remove(r, "a"), SL_OK);
    assert_int_equal(hashring_size(r), 0);
    assert_int_equal(hashring_lookup(r, "x", 1), -1);
    hashring_free(r);
    hashring_free(NULL);
    assert_null(hashring_new(0));
    assert_null(hashring_new(HASHRING_MAX_VNODES + 1));
}

static void test_deterministic(void **state)
{
    (void)state;
    struct hashring *r = ring3();
    /* Same names added in another order: same owner for every key (by name). */
    struct hashring *s = hashring_new(VNODES);
    assert_int_equal(hashring_add(s, "redis-c"), 0);
    assert_int_equal(hashring_add(s, "redis-a"), 1);
    assert_int_equal(hashring_add(s, "redis-b"), 2);
    char k[32];
    for (int i = 0; i < 2000; i++) {
        size_t n = key_of(i, k, sizeof(k));
        int a = hashring_lookup(r, k, n);
        assert_int_equal(hashring_lookup(r, k, n), a);
        assert_string_equal(hashring_node_name(r, a),
                            hashring_node_name(s, hashring_lookup(s, k, n)));
    }
    hashring_free(r);
    hashring_free(s);
}

static void test_distribution(void **state)
{
    (void)state;
    struct hashring *r = ring3();
    int *owner = malloc(NKEYS * sizeof(*owner));
    assert_non_null(owner);
    lookup_all(r, owner);
    int count[3] = {0};
    for (int i = 0; i < NKEYS; i++) {
        assert_in_range(owner[i], 0, 2);
        count[owner[i]]++;
    }
    /* even = 10000 each; allow +-15% */
    for (int n = 0; n < 3; n++)
        assert_in_range(count[n], 8500, 11500);
    free(owner);
    hashring_free(r);
}

static void test_add_moves_only_to_new_node_and_remove_restores(void **state)
{
    (void)state;
    struct hashring *r = ring3();
    int *before = malloc(NKEYS * sizeof(int));
    int *after = malloc(NKEYS * sizeof(int));
    assert_non_null(before);
    assert_non_null(after);
    lookup_all(r, before);

    assert_int_equal(hashring_add(r, "redis-d"), 3);
    assert_int_equal(hashring_size(r), 4);
    lookup_all(r, after);
    int moved = 0;
    for (int i = 0; i < NKEYS; i++) {
        if (after[i] != before[i]) {
            assert_int_equal(after[i], 3);
            moved++;
        }
    }
    /* ideal 1/4 = 7500 */
    assert_in_range(moved, NKEYS * 15 / 100, NKEYS * 35 / 100);

    assert_int_equal(hashring_remove(r, "redis-d"), SL_OK);
    lookup_all(r, after);
    assert_memory_equal(after, before, NKEYS * sizeof(int));
    free(before);
    free(after);
    hashring_free(r);
}

static void test_indexes_stable_on_remove(void **state)
{
    (void)state;
    struct hashring *r = ring3();
    assert_int_equal(hashring_remove(r, "redis-b"), SL_OK);
    assert_string_equal(hashring_node_name(r, 0), "redis-a");
    assert_null(hashring_node_name(r, 1));
    assert_string_equal(hashring_node_name(r, 2), "redis-c");
    char k[32];
    for (int i = 0; i < 1000; i++) {
        size_t n = key_of(i, k, sizeof(k));
        int idx = hashring_lookup(r, k, n);
        assert_true(idx == 0 || idx == 2);
    }
    /* The freed index is reused. */
    assert_int_equal(hashring_add(r, "redis-e"), 1);
    hashring_free(r);
}

static void test_bounds(void **state)
{
    (void)state;
    struct hashring *r = hashring_new(1);
    char name[HASHRING_NAME_MAX + 2];
    for (int i = 0; i < HASHRING_MAX_NODES; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        assert_int_equal(hashring_add(r, name), i);
    }
    assert_int_equal(hashring_add(r, "one-too-many"), SL_ERANGE);
    assert_int_equal(hashring_size(r), HASHRING_MAX_NODES);
    assert_int_equal(hashring_remove(r, "n7"), SL_OK);
    memset(name, 'x', HASHRING_NAME_MAX + 1);
    name[HASHRING_NAME_MAX + 1] = '\0';
    assert_int_equal(hashring_add(r, name), SL_EINVAL);
    name[HASHRING_NAME_MAX] = '\0';
    assert_int_equal(hashring_add(r, name), 7);
    hashring_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash64_stable),
        cmocka_unit_test(test_empty_and_names),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_add_moves_only_to_new_node_and_remove_restores),
        cmocka_unit_test(test_indexes_stable_on_remove),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
