/* jscan: reading a document in order, type mismatches that consume nothing, every
 * syntax error with its offset, bounds (depth, truncation, int64). The differential
 * check against jansson is tests/fuzz/fuzz_jscan.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "err.h"
#include "jscan.h"

static void init(struct jscan *js, const char *text)
{
    jscan_init(js, text, strlen(text));
}

static void test_walk(void **state)
{
    (void)state;
    struct jscan js;
    char key[16], s[32];
    size_t klen, len;
    int64_t i;
    double d;
    bool b;
    init(&js, " {\"id\" : \"w\\u00e9b-1\\n\", \"n\":[-12, 0, 3.5e1, true, false, null],"
              "\"deep\":{\"x\":{\"y\":[[]]}}, \"last\":9223372036854775807}\n");
    assert_int_equal(jscan_peek(&js), JSCAN_OBJECT);
    assert_int_equal(jscan_object(&js), SL_OK);
    assert_int_equal(jscan_member(&js, key, sizeof(key), &klen), 1);
    assert_string_equal(key, "id");
    assert_int_equal(klen, 2);
    assert_int_equal(jscan_string(&js, s, sizeof(s), &len), SL_OK);
    assert_string_equal(s, "w\xc3\xa9" "b-1\n");
    assert_int_equal(len, 7);
    assert_int_equal(jscan_member(&js, key, sizeof(key), NULL), 1);
    assert_string_equal(key, "n");
    assert_int_equal(jscan_array(&js), SL_OK);
    assert_int_equal(jscan_element(&js), 1);
    assert_int_equal(jscan_int(&js, &i), SL_OK);
    assert_int_equal(i, -12);
    assert_int_equal(jscan_element(&js), 1);
    assert_int_equal(jscan_int(&js, &i), SL_OK);
    assert_int_equal(i, 0);
    assert_int_equal(jscan_element(&js), 1);
    assert_int_equal(jscan_int(&js, &i), SL_EINVAL); /* a real: not consumed */
    assert_int_equal(jscan_double(&js, &d), SL_OK);
    assert_true(d == 35.0);
    assert_int_equal(jscan_element(&js), 1);
    assert_int_equal(jscan_bool(&js, &b), SL_OK);
    assert_true(b);
    assert_int_equal(jscan_element(&js), 1);
    assert_int_equal(jscan_bool(&js, &b), SL_OK);
    assert_false(b);
    assert_int_equal(jscan_element(&js), 1);
    assert_false(jscan_peek(&js) != JSCAN_NULL);
    assert_true(jscan_null(&js));
    assert_int_equal(jscan_element(&js), 0);
    assert_int_equal(jscan_member(&js, key, sizeof(key), NULL), 1);
    assert_string_equal(key, "deep");
    assert_int_equal(jscan_skip(&js), SL_OK);
    assert_int_equal(jscan_member(&js, key, sizeof(key), NULL), 1);
    assert_int_equal(jscan_int(&js, &i), SL_OK);
    assert_true(i == INT64_MAX);
    assert_int_equal(jscan_member(&js, key, sizeof(key), NULL), 0);
    assert_int_equal(jscan_finish(&js), SL_OK);
    assert_string_equal(jscan_error(&js), "");
}

/* A reader of another type says SL_EINVAL and leaves the value for the right one. */
static void test_type_mismatch_consumes_nothing(void **state)
{
    (void)state;
    struct jscan js;
    char s[8];
    int64_t i;
    bool b;
    init(&js, "[\"5\", 5, {}, []]");
    assert_int_equal(jscan_object(&js), SL_EINVAL);
    assert_int_equal(jscan_array(&js), SL_OK);
    assert_int_equal(jscan_element(&js), 1);
    assert_int_equal(jscan_int(&js, &i), SL_EINVAL);
    assert_int_equal(jscan_bool(&js, &b), SL_EINVAL);
    assert_false(jscan_null(&js));
    assert_int_equal(jscan_string(&js, s, sizeof(s), NULL), SL_OK);
    assert_string_equal(s, "5");
    assert_int_equal(jscan_element(&js), 1);
    assert_int_equal(jscan_string(&js, s, sizeof(s), NULL), SL_EINVAL);
    assert_int_equal(jscan_int(&js, &i), SL_OK);
    assert_int_equal(jscan_element(&js), 1);
    assert_int_equal(jscan_array(&js), SL_EINVAL);
    assert_int_equal(jscan_skip(&js), SL_OK);
    assert_int_equal(jscan_element(&js), 1);
    assert_int_equal(jscan_object(&js), SL_EINVAL);
    assert_int_equal(jscan_skip(&js), SL_OK);
    assert_int_equal(jscan_element(&js), 0);
    assert_int_equal(jscan_finish(&js), SL_OK);
}

/* Skipping the whole text, then finishing: the first error, where it is. */
static void test_syntax_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"", "offset 0: unexpected end of the text"},
        {"  ", "offset 2: unexpected end of the text"},
        {"{", "offset 1: unexpected end of the text"},
        {"[1,]", "offset 3: expected a value"},
        {"{\"a\":1,}", "offset 7: expected a key"},
        {"{\"a\" 1}", "offset 5: expected ':'"},
        {"{\"a\":1 \"b\":2}", "offset 7: expected ',' or '}'"},
        {"[1 2]", "offset 3: expected ',' or ']'"},
        {"{1:2}", "offset 1: expected a key"},
        {"01", "offset 1: text after the value"},
        {"1.", "offset 2: invalid number"},
        {"1e+", "offset 3: invalid number"},
        {"-", "offset 1: invalid number"},
        {"+1", "offset 0: expected a value"},
        {"\"abc", "offset 4: unterminated string"},
        {"\"a\tb\"", "offset 2: control character in a string"},
        {"\"\\x\"", "offset 1: invalid escape"},
        {"\"\\u12\"", "offset 1: invalid escape"},
        {"\"\\ud800\"", "offset 1: invalid escape"},
        {"\"\\ud800\\u0041\"", "offset 1: invalid escape"},
        {"\"\\udc00\"", "offset 1: invalid escape"},
        {"\"\\u0000\"", "offset 1: invalid escape"},
        {"tru", "offset 0: invalid literal"},
        {"nul", "offset 0: invalid literal"},
        {"{\"a\":1}}", "offset 7: text after the value"},
        {"{} x", "offset 3: text after the value"},
        {"NaN", "offset 0: expected a value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct jscan js;
        init(&js, cases[i].text);
        int rc = jscan_skip(&js);
        if (rc == SL_OK)
            rc = jscan_finish(&js);
        assert_int_equal(rc, SL_EPARSE);
        assert_string_equal(jscan_error(&js), cases[i].err);
        /* sticky: nothing reads on */
        assert_int_equal(jscan_skip(&js), SL_EPARSE);
        assert_int_equal(jscan_peek(&js), JSCAN_NONE);
        assert_false(jscan_null(&js));
        assert_string_equal(jscan_error(&js), cases[i].err);
    }
}

/* Decoded strings are UTF-8 checked; skipped ones only for their grammar. */
static void test_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {"\"\xc3\x28\"", "\"\xe0\x80\xaf\"", "\"\xed\xa0\x80\"",
                                      "\"\xf4\x90\x80\x80\"", "\"\xff\"", "\"\xe2\x82\""};
    char s[16];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct jscan js;
        init(&js, bad[i]);
        assert_int_equal(jscan_string(&js, s, sizeof(s), NULL), SL_EPARSE);
        assert_string_equal(jscan_error(&js), "offset 1: invalid UTF-8 in a string");
        init(&js, bad[i]);
        assert_int_equal(jscan_skip(&js), SL_OK);
    }
    struct jscan js;
    init(&js, "\"\xf0\x9f\x98\x80\\ud83d\\ude00\"");
    assert_int_equal(jscan_string(&js, s, sizeof(s), NULL), SL_OK);
    assert_string_equal(s, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80");
}

/* Truncation keeps whole characters; the length is the whole string's. */
static void test_truncation(void **state)
{
    (void)state;
    struct jscan js;
    char s[5], key[3];
    size_t len, klen;
    init(&js, "{\"long-key\": \"ab\xc3\xa9\xc3\xa9\"}");
    assert_int_equal(jscan_object(&js), SL_OK);
    assert_int_equal(jscan_member(&js, key, sizeof(key), &klen), 1);
    assert_string_equal(key, "lo");
    assert_int_equal(klen, 8);
    assert_int_equal(jscan_string(&js, s, sizeof(s), &len), SL_OK);
    assert_string_equal(s, "ab\xc3\xa9"); /* the second é does not fit in 4 bytes */
    assert_int_equal(len, 6);
    assert_int_equal(jscan_member(&js, key, sizeof(key), &klen), 0);
    assert_int_equal(jscan_finish(&js), SL_OK);
}

static void test_bounds(void **state)
{
    (void)state;
    char text[2 * (JSCAN_DEPTH_MAX + 1) + 1];
    struct jscan js;
    int64_t i;
    double d;
    for (int depth = JSCAN_DEPTH_MAX; depth <= JSCAN_DEPTH_MAX + 1; depth++) {
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        text[2 * depth] = '\0';
        init(&js, text);
        int rc = jscan_skip(&js);
        if (depth <= JSCAN_DEPTH_MAX) {
            assert_int_equal(rc, SL_OK);
            assert_int_equal(jscan_finish(&js), SL_OK);
        } else {
            assert_int_equal(rc, SL_EPARSE);
            assert_string_equal(jscan_error(&js), "offset 64: nested too deeply");
        }
    }
    init(&js, "-9223372036854775808");
    assert_int_equal(jscan_int(&js, &i), SL_OK);
    assert_true(i == INT64_MIN);
    init(&js, "9223372036854775808");
    assert_int_equal(jscan_int(&js, &i), SL_ERANGE);
    assert_int_equal(jscan_double(&js, &d), SL_OK); /* still there, as a number */
    init(&js, "-9223372036854775809");
    assert_int_equal(jscan_int(&js, &i), SL_ERANGE);
    init(&js, "1e999");
    assert_int_equal(jscan_double(&js, &d), SL_ERANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_type_mismatch_consumes_nothing),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
