/* Unit tests for agent/faults.c: parsing with field errors, TTL expiry, decisions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "faults.h"

static int parse(const char *body, uint64_t now_ms, struct fault_set *set,
                 struct field_errors *fe)
{
    char jerr[JSON_ERR_MAX];
    return fault_set_parse(body, strlen(body), now_ms, set, fe, jerr);
}

static void check_errors(const char *body, const char *want)
{
    struct fault_set set;
    struct field_errors fe;
    field_errors_init(&fe);
    assert_int_equal(parse(body, 0, &set, &fe), SL_EINVAL);
    char *got = json_dump_compact(fe.list);
    assert_string_equal(got, want);
    assert_int_equal(set.n, 0);
    free(got);
    field_errors_release(&fe);
}

static void test_parse_doc_example(void **state)
{
    (void)state;
    struct fault_set set;
    struct field_errors fe;
    field_errors_init(&fe);
    const char *doc = "{ \"faults\": ["
                      "{ \"kind\": \"delay\", \"ms\": 200, \"jitter_ms\": 50, \"percent\": 50,"
                      "  \"path_prefix\": \"/v1/\", \"ttl_s\": 60 },"
                      "{ \"kind\": \"abort\", \"status\": 503, \"percent\": 10, \"ttl_s\": 60 }]}";
    assert_int_equal(parse(doc, 1000, &set, &fe), SL_OK);
    assert_int_equal(set.n, 2);
    assert_int_equal(set.items[0].kind, FAULT_DELAY);
    assert_int_equal(set.items[0].ms, 200);
    assert_int_equal(set.items[0].jitter_ms, 50);
    assert_int_equal(set.items[0].percent, 50);
    assert_string_equal(set.items[0].path_prefix, "/v1/");
    assert_int_equal(set.items[0].expires_ms, 61000);
    assert_int_equal(set.items[1].kind, FAULT_ABORT);
    assert_int_equal(set.items[1].status, 503);
    assert_int_equal(set.items[1].percent, 10);
    field_errors_release(&fe);
}

static void test_parse_errors(void **state)
{
    (void)state;
    check_errors("[]", "[{\"field\":\"\",\"message\":\"the body must be a JSON object\"}]");
    check_errors("{}", "[{\"field\":\"faults\",\"message\":\"is required and must be an array\"}]");
    check_errors("{\"faults\":[{\"kind\":\"delay\",\"ms\":5}]}",
                 "[{\"field\":\"faults[0].ttl_s\",\"message\":\"is required\"}]");
    check_errors("{\"faults\":[{\"kind\":\"abort\",\"ttl_s\":5}]}",
                 "[{\"field\":\"faults[0].status\",\"message\":\"is required\"}]");
    check_errors("{\"faults\":[{\"kind\":\"reset\",\"ttl_s\":3601}]}",
                 "[{\"field\":\"faults[0].ttl_s\",\"message\":\"must be between 1 and 3600\"}]");
    check_errors("{\"faults\":[{\"kind\":\"fire\",\"ttl_s\":5}]}",
                 "[{\"field\":\"faults[0].kind\",\"message\":\"must be delay, abort, reset or "
                 "blackhole\"}]");
    check_errors("{\"faults\":[{\"kind\":\"reset\",\"ttl_s\":5},"
                 "{\"kind\":\"reset\",\"ttl_s\":5,\"percent\":101,\"x\":1}]}",
                 "[{\"field\":\"faults[1].x\",\"message\":\"is not a known field\"},"
                 "{\"field\":\"faults[1].percent\",\"message\":\"must be between 0 and 100\"}]");
    check_errors("{\"faults\":[1]}", "[{\"field\":\"faults[0]\",\"message\":\"must be an object\"}]");
}

static uint32_t seq_rnd(void *arg)
{
    uint32_t *v = arg;
    return (*v)++;
}

static void test_decide_and_expiry(void **state)
{
    (void)state;
    struct fault_set set;
    struct field_errors fe;
    struct fault_decision d;
    field_errors_init(&fe);
    assert_int_equal(parse("{\"faults\":[{\"kind\":\"delay\",\"ms\":100,\"path_prefix\":\"/v1/\","
                           "\"ttl_s\":10},{\"kind\":\"abort\",\"status\":503,\"percent\":50,"
                           "\"ttl_s\":5}]}",
                           0, &set, &fe),
                     SL_OK);
    uint32_t r = 0; /* abort roll 0 % 100 = 0 < 50: applies */
    assert_true(fault_decide(&set, "/v1/x", 5, 0, seq_rnd, &r, &d));
    assert_int_equal(d.delay_ms, 100);
    assert_int_equal(d.abort_status, 503);
    r = 60; /* roll 60 >= 50: abort skipped; path outside /v1/: no delay */
    assert_false(fault_decide(&set, "/healthz", 8, 0, seq_rnd, &r, &d));
    assert_int_equal(d.abort_status, 0);
    /* The abort expires at 5 s, the delay at 10 s: TTL revert needs no one. */
    assert_int_equal(fault_set_active(&set, 4999), 2);
    assert_int_equal(fault_set_active(&set, 5000), 1);
    r = 0;
    assert_true(fault_decide(&set, "/v1/x", 5, 5000, seq_rnd, &r, &d));
    assert_int_equal(d.abort_status, 0);
    assert_false(fault_decide(&set, "/v1/x", 5, 10000, seq_rnd, &r, &d));
    json_t *j = fault_set_to_json(&set, 5000);
    char *text = json_dump_compact(j);
    assert_string_equal(text, "{\"faults\":[{\"kind\":\"delay\",\"percent\":100,\"path_prefix\":"
                              "\"/v1/\",\"ttl_s\":10,\"expires_in_s\":5,\"ms\":100,"
                              "\"jitter_ms\":0}]}");
    free(text);
    json_decref(j);
    field_errors_release(&fe);
}

static void test_jitter_bounds(void **state)
{
    (void)state;
    struct fault_set set;
    struct field_errors fe;
    struct fault_decision d;
    field_errors_init(&fe);
    assert_int_equal(parse("{\"faults\":[{\"kind\":\"delay\",\"ms\":100,\"jitter_ms\":20,"
                           "\"ttl_s\":10}]}",
                           0, &set, &fe),
                     SL_OK);
    uint32_t r = 0; /* 0 % 41 - 20 = -20 */
    fault_decide(&set, "/", 1, 0, seq_rnd, &r, &d);
    assert_int_equal(d.delay_ms, 80);
    r = 40; /* 40 - 20 = +20 */
    fault_decide(&set, "/", 1, 0, seq_rnd, &r, &d);
    assert_int_equal(d.delay_ms, 120);
    field_errors_release(&fe);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_doc_example),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_decide_and_expiry),
        cmocka_unit_test(test_jitter_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
