/*
 * test_log — the JSON line format (exact bytes for a fixed fake time), escaping, optional
 * ids and key/value pairs, truncation that keeps the line valid JSON, and the writers
 * (log_event, log_msgf) through a pipe with level filtering.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "log.h"

#define TS "{\"ts\":\"2023-11-14T22:13:20.123Z\""

static int pipe_fds[2] = {-1, -1};

static int setup(void **state)
{
    (void)state;
    clock_fake_set(0, 1700000000123u);
    log_setup("sluice-test", LOG_DEBUG, 2);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clock_fake_clear();
    log_setup("sluice-test", LOG_INFO, 2);
    return 0;
}

static int setup_pipe(void **state)
{
    setup(state);
    if (pipe(pipe_fds) != 0)
        return -1;
    /* Non-blocking read end: "nothing was written" is EAGAIN, not a hang. */
    if (fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK) != 0)
        return -1;
    return 0;
}

static int teardown_pipe(void **state)
{
    teardown(state);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    pipe_fds[0] = pipe_fds[1] = -1;
    return 0;
}

/* Reads what one log call wrote (a single write(2), so a single read returns all of it). */
static void read_line(char *out, size_t cap)
{
    ssize_t n = read(pipe_fds[0], out, cap - 1);
    assert_true(n > 0);
    out[n] = '\0';
}

static void assert_pipe_empty(void)
{
    char c;
    assert_int_equal(read(pipe_fds[0], &c, 1), -1);
    assert_int_equal(errno, EAGAIN);
}

static int format(char *out, int cap, enum log_level level, const char *rid, const char *tid,
                  const char *msg, const char *const *kv, int nkv)
{
    int n = log_format(out, cap, level, rid, tid, msg, kv, nkv);
    assert_int_equal(n, (int)strlen(out));
    return n;
}

static void test_format_minimal(void **state)
{
    (void)state;
    char out[LOG_LINE_MAX];
    const char *want = TS ",\"level\":\"info\",\"program\":\"sluice-test\",\"msg\":\"hello\"}\n";
    assert_int_equal(format(out, sizeof(out), LOG_INFO, NULL, NULL, "hello", NULL, 0),
                     (int)strlen(want));
    assert_string_equal(out, want);
}

static void test_format_levels(void **state)
{
    (void)state;
    char out[LOG_LINE_MAX];
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int lv = LOG_DEBUG; lv <= LOG_ERROR; lv++) {
        char want[256];
        snprintf(want, sizeof(want),
                 TS ",\"level\":\"%s\",\"program\":\"sluice-test\",\"msg\":\"m\"}\n", names[lv]);
        format(out, sizeof(out), (enum log_level)lv, NULL, NULL, "m", NULL, 0);
        assert_string_equal(out, want);
    }
}

static void test_format_ids(void **state)
{
    (void)state;
    char out[LOG_LINE_MAX];
    format(out, sizeof(out), LOG_WARN, "r-1", "t-2", "m", NULL, 0);
    assert_string_equal(out, TS ",\"level\":\"warn\",\"program\":\"sluice-test\",\"msg\":\"m\","
                                "\"request_id\":\"r-1\",\"trace_id\":\"t-2\"}\n");
    format(out, sizeof(out), LOG_WARN, "r-1", NULL, "m", NULL, 0);
    assert_string_equal(out, TS ",\"level\":\"warn\",\"program\":\"sluice-test\",\"msg\":\"m\","
                                "\"request_id\":\"r-1\"}\n");
    format(out, sizeof(out), LOG_WARN, NULL, "t-2", "m", NULL, 0);
    assert_string_equal(out, TS ",\"level\":\"warn\",\"program\":\"sluice-test\",\"msg\":\"m\","
                                "\"trace_id\":\"t-2\"}\n");
    format(out, sizeof(out), LOG_WARN, NULL, NULL, "m", NULL, 0);
    assert_null(strstr(out, "request_id"));
    assert_null(strstr(out, "trace_id"));
}

static void test_format_kv(void **state)
{
    (void)state;
    char out[LOG_LINE_MAX];
    static const char *const kv[] = {"status", "200", "path", "/a b", "empty", NULL, "odd"};
    format(out, sizeof(out), LOG_INFO, "r", NULL, "served", kv, 4);
    assert_string_equal(out,
                        TS ",\"level\":\"info\",\"program\":\"sluice-test\",\"msg\":\"served\","
                           "\"request_id\":\"r\",\"status\":\"200\",\"path\":\"/a b\"}\n");
    /* A NULL value is written as ""; a key without a value is dropped. */
    format(out, sizeof(out), LOG_INFO, NULL, NULL, "served", kv, 7);
    assert_string_equal(out,
                        TS ",\"level\":\"info\",\"program\":\"sluice-test\",\"msg\":\"served\","
                           "\"status\":\"200\",\"path\":\"/a b\",\"empty\":\"\"}\n");
}

static void test_escaping(void **state)
{
    (void)state;
    char out[LOG_LINE_MAX];
    static const char *const kv[] = {"k\"ey", "v\\al\nue"};
    format(out, sizeof(out), LOG_INFO, "r\"1", "t\\2", "say \"hi\"\\ \n\t\r\x01\x1f\x7f end", kv,
           2);
    assert_string_equal(out, TS
                        ",\"level\":\"info\",\"program\":\"sluice-test\","
                        "\"msg\":\"say \\\"hi\\\"\\\\ \\n\\u0009\\u000d\\u0001\\u001f\\u007f end\","
                        "\"request_id\":\"r\\\"1\",\"trace_id\":\"t\\\\2\","
                        "\"k\\\"ey\":\"v\\\\al\\nue\"}\n");
    json_error_t je;
    json_t *v = json_loads(out, 0, &je);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(v, "msg")),
                        "say \"hi\"\\ \n\t\r\x01\x1f\x7f end");
    assert_string_equal(json_string_value(json_object_get(v, "k\"ey")), "v\\al\nue");
    json_decref(v);
}

static void test_utf8(void **state)
{
    (void)state;
    char out[LOG_LINE_MAX];
    /* Valid UTF-8 passes through unchanged. */
    format(out, sizeof(out), LOG_INFO, NULL, NULL, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
           NULL, 0);
    assert_string_equal(out, TS ",\"level\":\"info\",\"program\":\"sluice-test\","
                                "\"msg\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}\n");
    /* Bytes that are not UTF-8 (stray continuation, truncated sequence, overlong, surrogate,
     * past U+10FFFF, 0xff) become U+FFFD, one per byte, so the line still parses. */
    format(out, sizeof(out), LOG_INFO, NULL, NULL,
           "a\x80"
           "b\xc3"
           "c\xc0\xaf"
           "d\xed\xa0\x80"
           "e\xf4\x90\x80\x80"
           "f\xff",
           NULL, 0);
    assert_string_equal(out, TS ",\"level\":\"info\",\"program\":\"sluice-test\",\"msg\":\""
                                "a\\ufffdb\\ufffdc\\ufffd\\ufffdd\\ufffd\\ufffd\\ufffde"
                                "\\ufffd\\ufffd\\ufffd\\ufffdf\\ufffd\"}\n");
    json_error_t je;
    json_t *v = json_loads(out, 0, &je);
    assert_non_null(v);
    json_decref(v);
}

/* Checks that a (possibly cut) line is one JSON object whose members are, in order, a
 * prefix of the full line's members, plus "truncated":true when anything was dropped. */
static void assert_valid_cut(const char *line, const json_t *full)
{
    size_t n = strlen(line);
    assert_true(n >= 2);
    assert_int_equal(line[n - 1], '\n');
    assert_int_equal(line[n - 2], '}');
    json_error_t je;
    json_t *v = json_loads(line, 0, &je);
    if (!v)
        fail_msg("not JSON (%s): %s", je.text, line);
    const char *key;
    json_t *val;
    size_t kept = 0;
    json_object_foreach(v, key, val)
    {
        if (strcmp(key, "truncated") == 0) {
            assert_true(json_is_true(val));
            continue;
        }
        kept++;
        json_t *want = json_object_get(full, key);
        assert_non_null(want);
        assert_true(json_equal(val, want));
    }
    bool cut = json_object_get(v, "truncated") != NULL;
    assert_int_equal(cut, kept < json_object_size(full));
    json_decref(v);
}

/* Every buffer size from too small for the ids up to big enough for everything, with
 * commas, escapes and multi-byte characters where a cut could land. Each buffer is
 * allocated at its exact size so ASan sees any write past it. */
static void test_truncation_every_cap(void **state)
{
    (void)state;
    static const char *const kv[] = {
        "a,b",  "x,y,z \"quoted, with comma\"",
        "ctl",  "\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10",
        "utf8", "\xe2\x82\xac\xe2\x82\xac,\xf0\x9f\x98\x80,\xc3\xa9",
        "k4",   "{\"not\":\"an object\"},",
        "last", "\x1f",
    };
    char full_line[LOG_LINE_MAX];
    int full_len = format(full_line, sizeof(full_line), LOG_ERROR, "req,1", "tr,\"2\"",
                          "msg, with, commas\n", kv, 10);
    json_error_t je;
    json_t *full = json_loads(full_line, 0, &je);
    assert_non_null(full);
    for (int cap = 64; cap <= full_len + 8; cap++) {
        char *out = malloc((size_t)cap);
        assert_non_null(out);
        int n = format(out, cap, LOG_ERROR, "req,1", "tr,\"2\"", "msg, with, commas\n", kv, 10);
        assert_true(n < cap);
        assert_valid_cut(out, full);
        if (cap > full_len)
            assert_string_equal(out, full_line);
        free(out);
    }
    json_decref(full);
}

static void test_truncation_long_value(void **state)
{
    (void)state;
    char *big = malloc(5000);
    assert_non_null(big);
    memset(big, 'a', 4999);
    big[4999] = '\0';
    const char *const kv[] = {"status", "200", "body", big, "after", "x"};
    char out[LOG_LINE_MAX];
    int n = format(out, sizeof(out), LOG_INFO, "r", NULL, "m", kv, 6);
    assert_true(n < LOG_LINE_MAX);
    assert_string_equal(out, TS ",\"level\":\"info\",\"program\":\"sluice-test\",\"msg\":\"m\","
                                "\"request_id\":\"r\",\"status\":\"200\",\"truncated\":true}\n");
    free(big);
}

static void test_truncation_long_msg(void **state)
{
    (void)state;
    /* 700 control characters escape to 4200 bytes: the message cannot fit. */
    char msg[701];
    memset(msg, '\x01', 700);
    msg[700] = '\0';
    char out[LOG_LINE_MAX];
    format(out, sizeof(out), LOG_WARN, "r", "t", msg, NULL, 0);
    assert_string_equal(out, TS ",\"level\":\"warn\",\"program\":\"sluice-test\","
                                "\"truncated\":true}\n");
}

static void test_event_to_pipe(void **state)
{
    (void)state;
    char line[LOG_LINE_MAX + 1];
    log_setup("sluice-pipe", LOG_DEBUG, pipe_fds[1]);
    log_event(LOG_INFO, "rid-7", NULL, "served", "status", "200", "path", "/x", NULL);
    read_line(line, sizeof(line));
    assert_string_equal(line, TS ",\"level\":\"info\",\"program\":\"sluice-pipe\","
                                 "\"msg\":\"served\",\"request_id\":\"rid-7\","
                                 "\"status\":\"200\",\"path\":\"/x\"}\n");
    log_event(LOG_ERROR, NULL, "tr-1", "failed", NULL);
    read_line(line, sizeof(line));
    assert_string_equal(line, TS ",\"level\":\"error\",\"program\":\"sluice-pipe\","
                                 "\"msg\":\"failed\",\"trace_id\":\"tr-1\"}\n");
    assert_pipe_empty();
}

static void test_event_kv_limit(void **state)
{
    (void)state;
    char line[LOG_LINE_MAX + 1];
    log_setup("p", LOG_DEBUG, pipe_fds[1]);
    /* At most 16 pairs are taken; the 17th is dropped. */
    log_event(LOG_INFO, NULL, NULL, "m", "k1", "1", "k2", "2", "k3", "3", "k4", "4", "k5", "5",
              "k6", "6", "k7", "7", "k8", "8", "k9", "9", "k10", "10", "k11", "11", "k12", "12",
              "k13", "13", "k14", "14", "k15", "15", "k16", "16", "k17", "17", NULL);
    read_line(line, sizeof(line));
    assert_non_null(strstr(line, ",\"k16\":\"16\"}\n"));
    assert_null(strstr(line, "k17"));
}

static void test_msgf_to_pipe(void **state)
{
    (void)state;
    char line[LOG_LINE_MAX + 1];
    log_setup("sluice-pipe", LOG_DEBUG, pipe_fds[1]);
    clock_fake_advance_ms(1000);
    log_msgf(LOG_WARN, "port %d busy: %s", 9001, "in \"use\"");
    read_line(line, sizeof(line));
    assert_string_equal(
        line, "{\"ts\":\"2023-11-14T22:13:21.123Z\",\"level\":\"warn\","
              "\"program\":\"sluice-pipe\",\"msg\":\"port 9001 busy: in \\\"use\\\"\"}\n");
    log_info("n=%u", 3u);
    read_line(line, sizeof(line));
    assert_string_equal(line, "{\"ts\":\"2023-11-14T22:13:21.123Z\",\"level\":\"info\","
                              "\"program\":\"sluice-pipe\",\"msg\":\"n=3\"}\n");
    assert_pipe_empty();
}

static void test_level_filter(void **state)
{
    (void)state;
    char line[LOG_LINE_MAX + 1];
    log_setup("f", LOG_WARN, pipe_fds[1]);
    log_debug("d");
    log_info("i");
    log_event(LOG_INFO, NULL, NULL, "ei", NULL);
    assert_pipe_empty();
    log_warn("w");
    read_line(line, sizeof(line));
    assert_string_equal(line, TS ",\"level\":\"warn\",\"program\":\"f\",\"msg\":\"w\"}\n");
    log_error("e");
    read_line(line, sizeof(line));
    assert_string_equal(line, TS ",\"level\":\"error\",\"program\":\"f\",\"msg\":\"e\"}\n");
    log_event(LOG_ERROR, NULL, NULL, "ee", NULL);
    read_line(line, sizeof(line));
    assert_string_equal(line, TS ",\"level\":\"error\",\"program\":\"f\",\"msg\":\"ee\"}\n");
    assert_pipe_empty();

    log_setup("f", LOG_DEBUG, pipe_fds[1]);
    log_debug("d");
    read_line(line, sizeof(line));
    assert_string_equal(line, TS ",\"level\":\"debug\",\"program\":\"f\",\"msg\":\"d\"}\n");

    log_setup("f", LOG_ERROR, pipe_fds[1]);
    log_warn("w");
    assert_pipe_empty();
}

static void test_setup_null_program_keeps_name(void **state)
{
    (void)state;
    char line[LOG_LINE_MAX + 1];
    log_setup("named", LOG_INFO, pipe_fds[1]);
    log_setup(NULL, LOG_INFO, pipe_fds[1]);
    log_info("x");
    read_line(line, sizeof(line));
    assert_string_equal(line, TS ",\"level\":\"info\",\"program\":\"named\",\"msg\":\"x\"}\n");
}

static void test_level_parse(void **state)
{
    (void)state;
    enum log_level lv = LOG_ERROR;
    assert_true(log_level_parse("debug", &lv));
    assert_int_equal(lv, LOG_DEBUG);
    assert_true(log_level_parse("info", &lv));
    assert_int_equal(lv, LOG_INFO);
    assert_true(log_level_parse("warn", &lv));
    assert_int_equal(lv, LOG_WARN);
    assert_true(log_level_parse("error", &lv));
    assert_int_equal(lv, LOG_ERROR);
    static const char *const bad[] = {"", "INFO", "Debug", "warning", "err", "info ", "fatal"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lv = LOG_WARN;
        assert_false(log_level_parse(bad[i], &lv));
        assert_int_equal(lv, LOG_WARN);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_format_minimal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_kv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_every_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_long_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_long_msg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_to_pipe, setup_pipe, teardown_pipe),
        cmocka_unit_test_setup_teardown(test_event_kv_limit, setup_pipe, teardown_pipe),
        cmocka_unit_test_setup_teardown(test_msgf_to_pipe, setup_pipe, teardown_pipe),
        cmocka_unit_test_setup_teardown(test_level_filter, setup_pipe, teardown_pipe),
        cmocka_unit_test_setup_teardown(test_setup_null_program_keeps_name, setup_pipe,
                                        teardown_pipe),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
