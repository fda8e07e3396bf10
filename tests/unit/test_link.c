/* Unit tests for samples/shortener/link.c: validation, codes, representation, cursors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "link.h"

static int parse(const char *body, struct link_input *in, struct field_errors *fe)
{
    char jerr[JSON_ERR_MAX];
    return link_input_parse(body, strlen(body), in, fe, jerr);
}

/* The errors list as compact JSON, for exact comparison. */
static char *errors_json(const struct field_errors *fe)
{
    return json_dump_compact(fe->list);
}

static void check_errors(const char *body, const char *want)
{
    struct link_input in;
    struct field_errors fe;
    field_errors_init(&fe);
    assert_int_equal(parse(body, &in, &fe), SL_EINVAL);
    char *got = errors_json(&fe);
    assert_string_equal(got, want);
    free(got);
    link_input_release(&in);
    field_errors_release(&fe);
}

static void test_parse_ok(void **state)
{
    (void)state;
    struct link_input in;
    struct field_errors fe;
    field_errors_init(&fe);
    assert_int_equal(parse("{\"url\":\"https://example.com/x?y=1\",\"alias\":\"my-link_1\","
                           "\"ttl_s\":3600}",
                           &in, &fe),
                     SL_OK);
    assert_string_equal(in.url, "https://example.com/x?y=1");
    assert_string_equal(in.alias, "my-link_1");
    assert_int_equal(in.ttl_s, 3600);
    link_input_release(&in);
    assert_int_equal(parse("{\"url\":\"HTTP://h\"}", &in, &fe), SL_OK);
    assert_null(in.alias);
    assert_int_equal(in.ttl_s, 0);
    link_input_release(&in);
    field_errors_release(&fe);
}

static void test_parse_malformed(void **state)
{
    (void)state;
    struct link_input in;
    struct field_errors fe;
    char jerr[JSON_ERR_MAX];
    field_errors_init(&fe);
    assert_int_equal(link_input_parse("{\"url\":", 7, &in, &fe, jerr), SL_EPARSE);
    assert_non_null(strstr(jerr, "line 1, column"));
    link_input_release(&in);
    field_errors_release(&fe);
}

static void test_field_errors(void **state)
{
    (void)state;
    check_errors("[1]", "[{\"field\":\"\",\"message\":\"the body must be a JSON object\"}]");
    check_errors("{}", "[{\"field\":\"url\",\"message\":\"is required\"}]");
    check_errors("{\"url\":\"ftp://x\"}",
                 "[{\"field\":\"url\",\"message\":\"must be an http or https URL\"}]");
    check_errors("{\"url\":\"http://\"}", "[{\"field\":\"url\",\"message\":\"must have a host\"}]");
    check_errors("{\"url\":\"http://a b\"}",
                 "[{\"field\":\"url\",\"message\":\"must not contain spaces or control "
                 "characters\"}]");
    check_errors("{\"url\":5}", "[{\"field\":\"url\",\"message\":\"must be a string\"}]");
    check_errors("{\"url\":\"http://h\",\"alias\":\"ab\"}",
                 "[{\"field\":\"alias\",\"message\":\"must be 3 to 32 characters long\"}]");
    check_errors("{\"url\":\"http://h\",\"alias\":\"a/bc\"}",
                 "[{\"field\":\"alias\",\"message\":\"may contain only letters, digits, '_' "
                 "and '-'\"}]");
    check_errors("{\"url\":\"http://h\",\"alias\":\"v12\"}",
                 "[{\"field\":\"alias\",\"message\":\"is a reserved word\"}]");
    check_errors("{\"url\":\"http://h\",\"ttl_s\":0}",
                 "[{\"field\":\"ttl_s\",\"message\":\"must be between 1 and 31536000\"}]");
    check_errors("{\"url\":\"http://h\",\"ttl_s\":\"5\"}",
                 "[{\"field\":\"ttl_s\",\"message\":\"must be an integer\"}]");
    check_errors("{\"url\":\"http://h\",\"x\":1,\"alias\":\"healthz\"}",
                 "[{\"field\":\"x\",\"message\":\"is not a known field\"},"
                 "{\"field\":\"alias\",\"message\":\"is a reserved word\"}]");
}

static void test_url_edges(void **state)
{
    (void)state;
    const char *why;
    assert_true(link_url_is_valid("https://user:pw@host:8080/p", &why));
    assert_true(link_url_is_valid("http://[::1]:80/", &why));
    assert_false(link_url_is_valid("http://:80/", &why));
    assert_false(link_url_is_valid("http://user@/", &why));
    assert_false(link_url_is_valid("http://[::1/", &why));
    assert_false(link_url_is_valid("javascript:alert(1)", &why));
    assert_false(link_url_is_valid("https://h/\x7f", &why));
}

static void test_reserved(void **state)
{
    (void)state;
    assert_true(link_code_is_reserved("v0"));
    assert_true(link_code_is_reserved("V99"));
    assert_true(link_code_is_reserved("Healthz"));
    assert_false(link_code_is_reserved("v"));
    assert_false(link_code_is_reserved("v1a"));
    assert_false(link_code_is_reserved("abc"));
    assert_true(link_code_is_plausible("aZ3-_"));
    assert_false(link_code_is_plausible(""));
    assert_false(link_code_is_plausible("a.b"));
}

/* A fake generator: first a reserved word, then a normal code. */
static int fake_calls;
static int fake_rand(char *out, size_t n)
{
    const char *seq[] = {"v123456", "aZ3kP9q"};
    assert_int_equal(n, LINK_CODE_LEN);
    strcpy(out, seq[fake_calls++ % 2]);
    return SL_OK;
}

static int failing_rand(char *out, size_t n)
{
    (void)out;
    (void)n;
    return SL_ECRYPTO;
}

static void test_code_generate(void **state)
{
    (void)state;
    char code[LINK_CODE_MAX];
    fake_calls = 0;
    assert_int_equal(link_code_generate(fake_rand, code), SL_OK);
    assert_string_equal(code, "aZ3kP9q");
    assert_int_equal(fake_calls, 2);
    assert_int_equal(link_code_generate(failing_rand, code), SL_ECRYPTO);
}

static void test_repr_and_etag(void **state)
{
    (void)state;
    json_t *rec = link_record_new("https://e.com/", "key_abc", 1700000000123, 0);
    json_t *repr = link_repr("abc", rec, "http://127.0.0.1:9001");
    char *text = json_dump_compact(repr);
    assert_string_equal(text, "{\"code\":\"abc\",\"url\":\"https://e.com/\",\"short_url\":"
                              "\"http://127.0.0.1:9001/abc\",\"created_at\":"
                              "\"2023-11-14T22:13:20.123Z\",\"expires_at\":null}");
    char etag[LINK_ETAG_MAX], etag2[LINK_ETAG_MAX];
    link_etag(text, etag);
    link_etag("other", etag2);
    assert_int_equal(strlen(etag), 34);
    assert_int_equal(etag[0], '"');
    assert_string_not_equal(etag, etag2);
    free(text);
    json_decref(repr);
    json_decref(rec);
}

static void test_expiry(void **state)
{
    (void)state;
    json_t *rec = link_record_new("https://e.com/", "k", 1000, 5000);
    assert_false(link_is_expired(rec, 4999));
    assert_true(link_is_expired(rec, 5000));
    json_decref(rec);
    rec = link_record_new("https://e.com/", "k", 1000, 0);
    assert_false(link_is_expired(rec, INT64_MAX / 2));
    json_decref(rec);
    assert_int_equal(link_max_age_s(0, 1000, 60), 60);
    assert_int_equal(link_max_age_s(31000, 1000, 60), 30);
    assert_int_equal(link_max_age_s(1000, 5000, 60), 0);
}

static void test_cursor_and_day(void **state)
{
    (void)state;
    char c[16];
    uint64_t seq;
    link_cursor_encode(12345, c);
    assert_true(link_cursor_decode(c, &seq));
    assert_int_equal(seq, 12345);
    assert_false(link_cursor_decode("", &seq));
    assert_false(link_cursor_decode("c", &seq));
    assert_false(link_cursor_decode("x12", &seq));
    assert_false(link_cursor_decode("c!!", &seq));
    char day[11];
    link_day(1700000000123, day);
    assert_string_equal(day, "2023-11-14");
    link_day(0, day);
    assert_string_equal(day, "1970-01-01");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),      cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_field_errors),  cmocka_unit_test(test_url_edges),
        cmocka_unit_test(test_reserved),      cmocka_unit_test(test_code_generate),
        cmocka_unit_test(test_repr_and_etag), cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_cursor_and_day),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
