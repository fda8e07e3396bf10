/*
 * test_json — json_parse (values, exact error messages with line and column, the nesting
 * limit, duplicates, trailing data), the typed field getters with the exact error list
 * they build, json_reject_unknown, and json_parse_file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "json.h"

/* Parses a string literal (its exact length, so embedded NULs count). */
#define PARSE(lit, out, err) json_parse((lit), sizeof(lit) - 1, (out), (err))

static void assert_parse_error(const char *data, size_t len, const char *want)
{
    json_t *v = (json_t *)&v; /* must be reset to NULL */
    char err[JSON_ERR_MAX];
    assert_int_equal(json_parse(data, len, &v, err), SL_EPARSE);
    assert_null(v);
    assert_string_equal(err, want);
}
#define ASSERT_PARSE_ERROR(lit, want) assert_parse_error((lit), sizeof(lit) - 1, (want))

/* Compact form of a value, compared then freed. */
static void assert_dump(const json_t *v, const char *want)
{
    char *s = json_dump_compact(v);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
}

static json_t *parse_ok(const char *text)
{
    json_t *v = NULL;
    char err[JSON_ERR_MAX];
    if (json_parse(text, strlen(text), &v, err) != SL_OK)
        fail_msg("parse failed: %s", err);
    return v;
}

static void test_parse_values(void **state)
{
    (void)state;
    json_t *v;
    char err[JSON_ERR_MAX];
    assert_int_equal(PARSE("{\"b\":1,\"a\":[true,null,\"x\"]}", &v, err), SL_OK);
    assert_dump(v, "{\"b\":1,\"a\":[true,null,\"x\"]}");
    json_decref(v);
    /* Any value at the top, surrounding whitespace allowed. */
    assert_int_equal(PARSE(" \n42\n ", &v, err), SL_OK);
    assert_int_equal(json_integer_value(v), 42);
    json_decref(v);
    assert_int_equal(PARSE("\"s\\u00e9\\ud83d\\ude00\"", &v, err), SL_OK);
    assert_string_equal(json_string_value(v), "s\xc3\xa9\xf0\x9f\x98\x80");
    json_decref(v);
    assert_int_equal(PARSE("null", &v, err), SL_OK);
    assert_true(json_is_null(v));
    json_decref(v);
    assert_int_equal(PARSE("-9223372036854775808", &v, err), SL_OK);
    assert_true(json_integer_value(v) == INT64_MIN);
    json_decref(v);
}

static void test_parse_respects_len(void **state)
{
    (void)state;
    /* The data need not be NUL-terminated: only len bytes are read. */
    json_t *v;
    char err[JSON_ERR_MAX];
    assert_int_equal(json_parse("[1]garbage", 3, &v, err), SL_OK);
    assert_dump(v, "[1]");
    json_decref(v);
    assert_parse_error("[1]", 2, "line 1, column 2: ']' expected near end of file");
}

static void test_parse_errors(void **state)
{
    (void)state;
    ASSERT_PARSE_ERROR("", "line 1, column 0: unexpected token near end of file");
    ASSERT_PARSE_ERROR("{\"a\":1,}", "line 1, column 8: string or '}' expected near '}'");
    ASSERT_PARSE_ERROR("{\"a\" 1}", "line 1, column 6: ':' expected near '1'");
    ASSERT_PARSE_ERROR("{a:1}", "line 1, column 2: string or '}' expected near 'a'");
    ASSERT_PARSE_ERROR("[1,\n 2,\n  x]", "line 3, column 3: invalid token near 'x'");
    ASSERT_PARSE_ERROR("[\"\xc3\xa9\", x]", "line 1, column 7: invalid token near 'x'");
    ASSERT_PARSE_ERROR("tru", "line 1, column 3: invalid token near 'tru'");
    ASSERT_PARSE_ERROR("01", "line 1, column 1: invalid token near '0'");
    ASSERT_PARSE_ERROR("\"abc", "line 1, column 4: premature end of input near '\"abc'");
}

static void test_parse_string_errors(void **state)
{
    (void)state;
    ASSERT_PARSE_ERROR("\"\\u0000\"", "line 1, column 8: \\u0000 is not allowed without "
                                      "JSON_ALLOW_NUL near '\"\\u0000\"'");
    ASSERT_PARSE_ERROR("\"a\0b\"", "line 1, column 2: control character 0x0 near '\"a'");
    ASSERT_PARSE_ERROR("\"\xff\"", "line 1, column 1: unable to decode byte 0xff near '\"'");
    ASSERT_PARSE_ERROR("\"\\ud800\"",
                       "line 1, column 8: invalid Unicode '\\uD800' near '\"\\ud800\"'");
}

static void test_parse_number_errors(void **state)
{
    (void)state;
    ASSERT_PARSE_ERROR("[1e999]", "line 1, column 6: real number overflow near '1e999'");
    ASSERT_PARSE_ERROR("12345678901234567890",
                       "line 1, column 20: too big integer near '12345678901234567890'");
    ASSERT_PARSE_ERROR("-12345678901234567890", "line 1, column 21: too big negative integer");
}

static void test_parse_trailing(void **state)
{
    (void)state;
    ASSERT_PARSE_ERROR("{\"a\":1} x", "line 1, column 9: end of file expected near 'x'");
    ASSERT_PARSE_ERROR("[1] [2]", "line 1, column 5: end of file expected near '['");
    ASSERT_PARSE_ERROR("{\"a\":1}\n\n  ]", "line 3, column 3: end of file expected near ']'");
    ASSERT_PARSE_ERROR("\xef\xbb\xbf{}", "line 1, column 1: invalid token near '\xef\xbb\xbf'");
}

static void test_parse_duplicates(void **state)
{
    (void)state;
    ASSERT_PARSE_ERROR("{\"a\":1,\"a\":2}", "line 1, column 10: duplicate object key near '\"a\"'");
    ASSERT_PARSE_ERROR("{\"o\":{\"k\":1,\"k\":1}}",
                       "line 1, column 15: duplicate object key near '\"k\"'");
    /* The same key in different objects is fine. */
    json_t *v = parse_ok("[{\"a\":1},{\"a\":2}]");
    json_decref(v);
}

/* n opening brackets (alternating [ and {"k":) and the matching closers. */
static char *nested(int n, size_t *len)
{
    char *s = malloc((size_t)n * 6 + 8);
    assert_non_null(s);
    size_t p = 0;
    for (int i = 0; i < n; i++) {
        if (i % 2) {
            memcpy(s + p, "{\"k\":", 5);
            p += 5;
        } else {
            s[p++] = '[';
        }
    }
    s[p++] = '1';
    for (int i = n - 1; i >= 0; i--)
        s[p++] = i % 2 ? '}' : ']';
    s[p] = '\0';
    *len = p;
    return s;
}

static void test_depth_limit(void **state)
{
    (void)state;
    char deep[65 * 2];
    json_t *v;
    char err[JSON_ERR_MAX];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    /* 64 levels parse. */
    assert_int_equal(json_parse(deep + 1, 128, &v, err), SL_OK);
    json_decref(v);
    /* 65 are rejected before jansson sees them, at the 65th bracket. */
    assert_parse_error(deep, 130, "line 1, column 65: nested deeper than 64 levels");
    /* Even when the document is cut off there. */
    assert_parse_error(deep, 65, "line 1, column 65: nested deeper than 64 levels");

    size_t len;
    char *mixed = nested(64, &len);
    assert_int_equal(json_parse(mixed, len, &v, err), SL_OK);
    json_decref(v);
    free(mixed);
    mixed = nested(65, &len);
    /* 33 '[' and 32 '{"k":' (5 characters each): the 65th opener is '[' at column 193. */
    assert_parse_error(mixed, len, "line 1, column 193: nested deeper than 64 levels");
    free(mixed);

    char huge[100000];
    memset(huge, '[', sizeof(huge));
    assert_parse_error(huge, sizeof(huge), "line 1, column 65: nested deeper than 64 levels");
}

static void test_depth_position(void **state)
{
    (void)state;
    /* Line and column are counted like jansson's: from 1, columns in characters. */
    char s[200];
    int n = snprintf(s, sizeof(s), "\n\n \"\xc3\xa9\" ");
    memset(s + n, '[', 65);
    assert_parse_error(s, (size_t)n + 65, "line 3, column 70: nested deeper than 64 levels");
}

static void test_depth_ignores_strings(void **state)
{
    (void)state;
    /* Brackets inside strings, escaped quotes and backslashes do not count. */
    char s[400];
    size_t p = 0;
    s[p++] = '[';
    s[p++] = '"';
    memcpy(s + p, "\\\"\\\\", 4); /* \" and \\ */
    p += 4;
    memset(s + p, '[', 100);
    p += 100;
    memset(s + p, '{', 100);
    p += 100;
    s[p++] = '"';
    s[p++] = ']';
    json_t *v;
    char err[JSON_ERR_MAX];
    assert_int_equal(json_parse(s, p, &v, err), SL_OK);
    assert_int_equal(json_string_length(json_array_get(v, 0)), 202);
    json_decref(v);

    /* A string ending in an escaped backslash really ends: what follows counts. */
    p = 0;
    memcpy(s, "[\"\\\\\",", 6);
    p = 6;
    memset(s + p, '[', 64);
    p += 64;
    assert_parse_error(s, p, "line 1, column 70: nested deeper than 64 levels");
    /* An escaped quote does not end it: the brackets are still inside. */
    memcpy(s, "[\"\\\"", 4);
    p = 4;
    memset(s + p, '[', 100);
    p += 100;
    memcpy(s + p, "\"]", 2);
    p += 2;
    assert_int_equal(json_parse(s, p, &v, err), SL_OK);
    json_decref(v);
}

static void test_field_errors_list(void **state)
{
    (void)state;
    struct field_errors fe;
    field_errors_init(&fe);
    assert_false(field_errors_any(&fe));
    assert_dump(fe.list, "[]");
    field_errors_add(&fe, "a", "bad %d", 7);
    field_errors_add(&fe, "b.c", "%s", "worse");
    assert_true(field_errors_any(&fe));
    assert_dump(fe.list, "[{\"field\":\"a\",\"message\":\"bad 7\"},"
                         "{\"field\":\"b.c\",\"message\":\"worse\"}]");
    field_errors_release(&fe);
    assert_null(fe.list);
}

static void test_field_string(void **state)
{
    (void)state;
    json_t *o = parse_ok("{\"s\":\"abc\",\"empty\":\"\",\"n\":null,\"i\":5,\"a\":[],"
                         "\"b\":false,\"o\":{},\"u\":\"\xc3\xa9\xc3\xa9\"}");
    struct field_errors fe;
    field_errors_init(&fe);
    const char *out = NULL;

    assert_true(json_field_string(o, "s", true, 3, &out, &fe));
    assert_string_equal(out, "abc");
    assert_true(json_field_string(o, "empty", true, 0, &out, &fe));
    assert_string_equal(out, "");
    /* The limit counts bytes of UTF-8: "éé" is 4. */
    assert_true(json_field_string(o, "u", true, 4, &out, &fe));
    assert_string_equal(out, "\xc3\xa9\xc3\xa9");
    assert_false(field_errors_any(&fe));

    out = "untouched";
    assert_false(json_field_string(o, "missing", false, 10, &out, &fe));
    assert_false(json_field_string(o, "n", false, 10, &out, &fe));
    assert_string_equal(out, "untouched");
    assert_false(field_errors_any(&fe));

    assert_false(json_field_string(o, "missing", true, 10, &out, &fe));
    assert_false(json_field_string(o, "n", true, 10, &out, &fe));
    assert_false(json_field_string(o, "i", false, 10, &out, &fe));
    assert_false(json_field_string(o, "a", false, 10, &out, &fe));
    assert_false(json_field_string(o, "b", true, 10, &out, &fe));
    assert_false(json_field_string(o, "o", true, 10, &out, &fe));
    assert_false(json_field_string(o, "s", true, 2, &out, &fe));
    /* "éé" is 4 bytes but 2 characters: the bound counts characters */
    assert_false(json_field_string(o, "u", true, 1, &out, &fe));
    assert_string_equal(out, "untouched");
    assert_true(json_field_string(o, "u", true, 2, &out, &fe));
    assert_string_equal(out, "\xc3\xa9\xc3\xa9");
    out = "untouched";
    assert_dump(fe.list, "[{\"field\":\"missing\",\"message\":\"is required\"},"
                         "{\"field\":\"n\",\"message\":\"is required\"},"
                         "{\"field\":\"i\",\"message\":\"must be a string\"},"
                         "{\"field\":\"a\",\"message\":\"must be a string\"},"
                         "{\"field\":\"b\",\"message\":\"must be a string\"},"
                         "{\"field\":\"o\",\"message\":\"must be a string\"},"
                         "{\"field\":\"s\",\"message\":\"must be at most 2 characters\"},"
                         "{\"field\":\"u\",\"message\":\"must be at most 1 characters\"}]");
    field_errors_release(&fe);
    json_decref(o);
}

static void test_field_string_nul(void **state)
{
    (void)state;
    /* json_parse refuses \u0000, but a document built in code can hold one. */
    json_t *o = json_object();
    json_object_set_new(o, "z", json_stringn("a\0b", 3));
    struct field_errors fe;
    field_errors_init(&fe);
    const char *out = "untouched";
    assert_false(json_field_string(o, "z", true, 10, &out, &fe));
    assert_string_equal(out, "untouched");
    /* Too long is reported first. */
    assert_false(json_field_string(o, "z", true, 2, &out, &fe));
    assert_dump(fe.list, "[{\"field\":\"z\",\"message\":\"must not contain NUL characters\"},"
                         "{\"field\":\"z\",\"message\":\"must be at most 2 characters\"}]");
    field_errors_release(&fe);
    json_decref(o);
}

static void test_field_int(void **state)
{
    (void)state;
    json_t *o = parse_ok("{\"i\":5,\"lo\":1,\"hi\":10,\"neg\":-3,\"zero\":0,\"n\":null,"
                         "\"r\":1.5,\"r1\":1.0,\"s\":\"5\",\"b\":true,"
                         "\"max\":9223372036854775807,\"min\":-9223372036854775808}");
    struct field_errors fe;
    field_errors_init(&fe);
    int64_t out = -1;

    assert_true(json_field_int(o, "i", true, 1, 10, &out, &fe));
    assert_int_equal(out, 5);
    assert_true(json_field_int(o, "lo", true, 1, 10, &out, &fe));
    assert_int_equal(out, 1);
    assert_true(json_field_int(o, "hi", true, 1, 10, &out, &fe));
    assert_int_equal(out, 10);
    assert_true(json_field_int(o, "neg", true, -3, -3, &out, &fe));
    assert_true(out == -3);
    assert_true(json_field_int(o, "max", true, INT64_MIN, INT64_MAX, &out, &fe));
    assert_true(out == INT64_MAX);
    assert_true(json_field_int(o, "min", true, INT64_MIN, INT64_MAX, &out, &fe));
    assert_true(out == INT64_MIN);
    assert_false(field_errors_any(&fe));

    out = 77;
    assert_false(json_field_int(o, "missing", false, 0, 1, &out, &fe));
    assert_false(json_field_int(o, "n", false, 0, 1, &out, &fe));
    assert_false(field_errors_any(&fe));
    assert_false(json_field_int(o, "missing", true, 0, 1, &out, &fe));
    assert_false(json_field_int(o, "n", true, 0, 1, &out, &fe));
    assert_false(json_field_int(o, "r", true, 0, 10, &out, &fe));
    assert_false(json_field_int(o, "r1", true, 0, 10, &out, &fe));
    assert_false(json_field_int(o, "s", true, 0, 10, &out, &fe));
    assert_false(json_field_int(o, "b", true, 0, 10, &out, &fe));
    assert_false(json_field_int(o, "zero", true, 1, 10, &out, &fe));
    assert_false(json_field_int(o, "i", true, -10, 4, &out, &fe));
    assert_false(json_field_int(o, "min", true, INT64_MIN + 1, INT64_MAX, &out, &fe));
    assert_int_equal(out, 77);
    assert_dump(fe.list,
                "[{\"field\":\"missing\",\"message\":\"is required\"},"
                "{\"field\":\"n\",\"message\":\"is required\"},"
                "{\"field\":\"r\",\"message\":\"must be an integer\"},"
                "{\"field\":\"r1\",\"message\":\"must be an integer\"},"
                "{\"field\":\"s\",\"message\":\"must be an integer\"},"
                "{\"field\":\"b\",\"message\":\"must be an integer\"},"
                "{\"field\":\"zero\",\"message\":\"must be between 1 and 10\"},"
                "{\"field\":\"i\",\"message\":\"must be between -10 and 4\"},"
                "{\"field\":\"min\",\"message\":\"must be between -9223372036854775807 and "
                "9223372036854775807\"}]");
    field_errors_release(&fe);
    json_decref(o);
}

static void test_getters_on_non_object(void **state)
{
    (void)state;
    json_t *a = parse_ok("[1,2]");
    struct field_errors fe;
    field_errors_init(&fe);
    const char *s = NULL;
    int64_t i = 0;
    static const char *const allowed[] = {"x", NULL};
    assert_false(json_field_string(a, "x", false, 5, &s, &fe));
    assert_false(json_field_int(a, "x", false, 0, 5, &i, &fe));
    json_reject_unknown(a, allowed, &fe);
    assert_false(field_errors_any(&fe));
    assert_false(json_field_string(a, "x", true, 5, &s, &fe));
    assert_dump(fe.list, "[{\"field\":\"x\",\"message\":\"is required\"}]");
    field_errors_release(&fe);
    json_decref(a);
}

static void test_reject_unknown(void **state)
{
    (void)state;
    json_t *o = parse_ok("{\"url\":\"u\",\"zzz\":1,\"alias\":\"a\",\"URL\":2,\"ur\":3}");
    struct field_errors fe;
    field_errors_init(&fe);
    static const char *const allowed[] = {"url", "alias", "ttl_s", NULL};
    json_reject_unknown(o, allowed, &fe);
    /* In document order; names match exactly (case and prefix matter). */
    assert_dump(fe.list, "[{\"field\":\"zzz\",\"message\":\"is not a known field\"},"
                         "{\"field\":\"URL\",\"message\":\"is not a known field\"},"
                         "{\"field\":\"ur\",\"message\":\"is not a known field\"}]");
    field_errors_release(&fe);

    field_errors_init(&fe);
    static const char *const none[] = {NULL};
    json_t *one = parse_ok("{\"a\":1}");
    json_reject_unknown(one, none, &fe);
    assert_dump(fe.list, "[{\"field\":\"a\",\"message\":\"is not a known field\"}]");
    field_errors_release(&fe);

    field_errors_init(&fe);
    json_t *empty = parse_ok("{}");
    json_reject_unknown(empty, allowed, &fe);
    json_t *known = parse_ok("{\"ttl_s\":1,\"url\":\"x\"}");
    json_reject_unknown(known, allowed, &fe);
    assert_false(field_errors_any(&fe));
    field_errors_release(&fe);

    json_decref(known);
    json_decref(empty);
    json_decref(one);
    json_decref(o);
}

static void test_dump_compact(void **state)
{
    (void)state;
    json_t *v = parse_ok("{ \"z\" : [ 1 , 2.5 , \"\xc3\xa9\" ] , \"a\" : { } }");
    assert_dump(v, "{\"z\":[1,2.5,\"\xc3\xa9\"],\"a\":{}}");
    json_decref(v);
    json_t *s = json_string("x\"y");
    assert_dump(s, "\"x\\\"y\"");
    json_decref(s);
}

static void test_parse_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_json_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char good[] = "{\"a\": [1, 2]}\n";
    assert_int_equal(write(fd, good, sizeof(good) - 1), (ssize_t)(sizeof(good) - 1));
    close(fd);
    json_t *v;
    char err[JSON_ERR_MAX];
    assert_int_equal(json_parse_file(path, &v, err), SL_OK);
    assert_dump(v, "{\"a\":[1,2]}");
    json_decref(v);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"a\": 1,\n \"a\": 2}\n", f);
    fclose(f);
    char want[JSON_ERR_MAX];
    snprintf(want, sizeof(want), "%s: line 2, column 4: duplicate object key near '\"a\"'", path);
    assert_int_equal(json_parse_file(path, &v, err), SL_EPARSE);
    assert_null(v);
    assert_string_equal(err, want);
    unlink(path);

    assert_int_equal(json_parse_file(path, &v, err), SL_EPARSE);
    assert_null(v);
    snprintf(want, sizeof(want),
             "%s: line -1, column -1: unable to open %s: "
             "No such file or directory",
             path, path);
    assert_string_equal(err, want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_values),          cmocka_unit_test(test_parse_respects_len),
        cmocka_unit_test(test_parse_errors),          cmocka_unit_test(test_parse_string_errors),
        cmocka_unit_test(test_parse_number_errors),   cmocka_unit_test(test_parse_trailing),
        cmocka_unit_test(test_parse_duplicates),      cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_depth_position),        cmocka_unit_test(test_depth_ignores_strings),
        cmocka_unit_test(test_field_errors_list),     cmocka_unit_test(test_field_string),
        cmocka_unit_test(test_field_string_nul),      cmocka_unit_test(test_field_int),
        cmocka_unit_test(test_getters_on_non_object), cmocka_unit_test(test_reject_unknown),
        cmocka_unit_test(test_dump_compact),          cmocka_unit_test(test_parse_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
