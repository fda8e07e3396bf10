/* Unit tests for agent/policy.c: the DESIGN §4.2 document, field errors, sets, matching. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "policy.h"

#define EXAMPLE                                                                            \
    "{ \"name\": \"links-write\", \"scope\": \"sidecar\","                                 \
    "  \"match\": { \"methods\": [\"POST\"], \"path_prefix\": \"/v1/links\" },"            \
    "  \"key\": \"header:X-API-Key\", \"algorithm\": \"token_bucket\","                    \
    "  \"limit\": 100, \"window_ms\": 60000, \"burst\": 20,"                               \
    "  \"store\": \"redis\", \"on_store_error\": \"local\", \"mode\": \"enforce\" }"

static json_t *doc(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

static void check_errors(const char *text, const char *want)
{
    json_t *d = doc(text);
    struct policy p;
    struct field_errors fe;
    field_errors_init(&fe);
    assert_int_equal(policy_parse(d, &p, &fe, "p."), SL_EINVAL);
    char *got = json_dump_compact(fe.list);
    assert_string_equal(got, want);
    free(got);
    field_errors_release(&fe);
    json_decref(d);
}

static void test_design_example(void **state)
{
    (void)state;
    json_t *d = doc(EXAMPLE);
    struct policy p;
    struct field_errors fe;
    field_errors_init(&fe);
    assert_int_equal(policy_parse(d, &p, &fe, ""), SL_OK);
    assert_string_equal(p.name, "links-write");
    assert_int_equal(p.scope, POLICY_SCOPE_SIDECAR);
    assert_int_equal(p.nmethods, 1);
    assert_string_equal(p.methods[0], "POST");
    assert_string_equal(p.path_prefix, "/v1/links");
    assert_int_equal(p.key, POLICY_KEY_HEADER);
    assert_string_equal(p.header, "X-API-Key");
    assert_int_equal(p.params.alg, RL_TOKEN_BUCKET);
    assert_int_equal(p.params.limit, 100);
    assert_int_equal(p.params.window_ms, 60000);
    assert_int_equal(p.params.burst, 20);
    assert_int_equal(p.store, POLICY_STORE_REDIS);
    assert_int_equal(p.on_store_error, POLICY_ON_ERROR_LOCAL);
    assert_int_equal(p.mode, POLICY_MODE_ENFORCE);
    /* round trip through the JSON form */
    json_t *back = policy_to_json(&p);
    struct policy q;
    assert_int_equal(policy_parse(back, &q, &fe, ""), SL_OK);
    assert_memory_equal(&p, &q, sizeof(p));
    json_decref(back);
    json_decref(d);
    field_errors_release(&fe);
}

static void test_field_errors(void **state)
{
    (void)state;
    check_errors("{\"name\":\"a\",\"algorithm\":\"magic\",\"limit\":1,\"window_ms\":1}",
                 "[{\"field\":\"p.algorithm\",\"message\":\"must be one of: fixed_window, "
                 "sliding_log, sliding_window, token_bucket, leaky_bucket, gcra\"}]");
    check_errors("{\"name\":\"a\",\"algorithm\":\"gcra\",\"limit\":0,\"window_ms\":1000}",
                 "[{\"field\":\"p.limit\",\"message\":\"must be between 1 and 1000000000\"}]");
    check_errors("{\"name\":\"a\",\"algorithm\":\"gcra\",\"limit\":-5,\"window_ms\":1000}",
                 "[{\"field\":\"p.limit\",\"message\":\"must be between 1 and 1000000000\"}]");
    check_errors("{\"name\":\"a\",\"algorithm\":\"gcra\",\"limit\":5}",
                 "[{\"field\":\"p.window_ms\",\"message\":\"is required\"}]");
    check_errors("{\"name\":\"a\",\"algorithm\":\"gcra\",\"limit\":5,\"window_ms\":9,"
                 "\"key\":\"cookie\"}",
                 "[{\"field\":\"p.key\",\"message\":\"must be ip, route, header:NAME or global, "
                 "not 'cookie'\"}]");
    check_errors("{\"name\":\"a b\",\"algorithm\":\"gcra\",\"limit\":5,\"window_ms\":9,"
                 "\"store\":\"disk\",\"mode\":\"maybe\"}",
                 "[{\"field\":\"p.name\",\"message\":\"must be 1-63 of A-Z a-z 0-9 - _ .\"},"
                 "{\"field\":\"p.store\",\"message\":\"must be one of: local, redis, "
                 "redis_lease\"},{\"field\":\"p.mode\",\"message\":\"must be one of: enforce, "
                 "shadow\"}]");
    check_errors("{\"name\":\"a\",\"algorithm\":\"gcra\",\"limit\":5,\"window_ms\":9,"
                 "\"match\":{\"methods\":[\"get\"],\"path_prefix\":\"v1\"},\"extra\":1}",
                 "[{\"field\":\"p.extra\",\"message\":\"is not a known field\"},"
                 "{\"field\":\"p.match.path_prefix\",\"message\":\"must be a path starting with "
                 "'/'\"},{\"field\":\"p.match.methods[0]\",\"message\":\"must be an upper-case "
                 "method name\"}]");
}

static void test_sets(void **state)
{
    (void)state;
    struct field_errors fe;
    field_errors_init(&fe);
    json_t *two = doc("{\"policies\":[" EXAMPLE ",{\"name\":\"g\",\"algorithm\":\"fixed_window\","
                      "\"limit\":10,\"window_ms\":1000,\"key\":\"global\"}]}");
    struct policy_set *s = policy_set_parse(two, 7, &fe);
    assert_non_null(s);
    assert_int_equal(s->n, 2);
    assert_int_equal(s->version, 7);
    assert_non_null(policy_set_find(s, "g"));
    assert_null(policy_set_find(s, "nope"));
    const struct policy *p = policy_set_find(s, "links-write");
    assert_true(policy_matches(p, POLICY_SCOPE_SIDECAR, "POST", "/v1/links/x"));
    assert_false(policy_matches(p, POLICY_SCOPE_SIDECAR, "GET", "/v1/links/x"));
    assert_false(policy_matches(p, POLICY_SCOPE_SIDECAR, "POST", "/v2/links"));
    assert_false(policy_matches(p, POLICY_SCOPE_GATEWAY, "POST", "/v1/links"));
    assert_true(policy_matches(policy_set_find(s, "g"), POLICY_SCOPE_SIDECAR, "DELETE", "/"));
    policy_set_ref(s);
    policy_set_unref(s);
    policy_set_unref(s); /* freed: ASan would report a leak otherwise */
    json_decref(two);
    /* one bad policy rejects the whole set, naming it */
    json_t *bad = doc("[" EXAMPLE ",{\"name\":\"b\",\"algorithm\":\"gcra\",\"limit\":0,"
                      "\"window_ms\":1}," EXAMPLE "]");
    assert_null(policy_set_parse(bad, 8, &fe));
    char *got = json_dump_compact(fe.list);
    assert_string_equal(got, "[{\"field\":\"b.limit\",\"message\":\"must be between 1 and "
                             "1000000000\"},{\"field\":\"links-write.name\",\"message\":\"is used "
                             "by another policy of the set\"}]");
    free(got);
    json_decref(bad);
    field_errors_release(&fe);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design_example),
        cmocka_unit_test(test_field_errors),
        cmocka_unit_test(test_sets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
