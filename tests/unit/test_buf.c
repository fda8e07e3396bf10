/*
 * test_buf — the bounded byte buffer: appends, formatting, growth, the hard maximum (an
 * append past it fails and changes nothing), NUL-termination and the ownership hand-offs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"

/* Checks len and contents, and that the byte after the contents is the NUL. */
static void assert_buf(const struct buf *b, const char *want, size_t want_len)
{
    assert_int_equal(b->len, want_len);
    assert_non_null(b->data);
    assert_memory_equal(b->data, want, want_len);
    assert_int_equal(b->data[want_len], '\0');
    assert_true(b->cap >= b->len);
}

static void test_init_is_empty(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 100);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 100);
    assert_string_equal(buf_str(&b), "");
    buf_release(&b);
}

static void test_append(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1024);
    assert_int_equal(buf_append(&b, "abc", 3), SL_OK);
    assert_buf(&b, "abc", 3);
    assert_int_equal(buf_append(&b, "defgh", 2), SL_OK);
    assert_buf(&b, "abcde", 5);
    assert_int_equal(buf_append_str(&b, "XYZ"), SL_OK);
    assert_buf(&b, "abcdeXYZ", 8);
    assert_string_equal(buf_str(&b), "abcdeXYZ");
    buf_release(&b);
}

static void test_append_binary(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1024);
    assert_int_equal(buf_append(&b, "a\0b", 3), SL_OK);
    assert_buf(&b, "a\0b", 3);
    assert_string_equal(buf_str(&b), "a");
    buf_release(&b);
}

static void test_append_empty_terminates(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, "", 0), SL_OK);
    assert_buf(&b, "", 0);
    assert_int_equal(buf_append_str(&b, ""), SL_OK);
    assert_buf(&b, "", 0);
    assert_int_equal(buf_appendf(&b, "%s", ""), SL_OK);
    assert_buf(&b, "", 0);
    buf_release(&b);
}

static void test_appendf(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1024);
    assert_int_equal(buf_appendf(&b, "%d-%s", 42, "x"), SL_OK);
    assert_buf(&b, "42-x", 4);
    assert_int_equal(buf_appendf(&b, "[%05.1f|%c|%zu]", 3.14159, 'q', (size_t)7), SL_OK);
    assert_buf(&b, "42-x[003.1|q|7]", 15);
    assert_int_equal(buf_append_str(&b, "!"), SL_OK);
    assert_buf(&b, "42-x[003.1|q|7]!", 16);
    buf_release(&b);
}

static void test_growth(void **state)
{
    (void)state;
    struct buf b;
    char want[5000];
    buf_init(&b, sizeof(want));
    for (size_t i = 0; i < sizeof(want); i++) {
        want[i] = (char)('a' + i % 26);
        assert_int_equal(buf_append(&b, &want[i], 1), SL_OK);
        assert_true(b.cap <= b.max);
    }
    assert_buf(&b, want, sizeof(want));
    assert_int_equal(b.cap, sizeof(want));
    buf_release(&b);

    /* Formatted output larger than the first allocation. */
    buf_init(&b, 10000);
    assert_int_equal(buf_append_str(&b, "x"), SL_OK);
    assert_int_equal(buf_appendf(&b, "%0300d", 7), SL_OK);
    assert_int_equal(b.len, 301);
    assert_int_equal(b.data[0], 'x');
    assert_int_equal(b.data[1], '0');
    assert_int_equal(b.data[299], '0');
    assert_int_equal(b.data[300], '7');
    assert_int_equal(b.data[301], '\0');
    buf_release(&b);
}

static void test_max_append(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_append_str(&b, "12345678"), SL_OK);
    assert_int_equal(buf_append_str(&b, "abc"), SL_ETOOBIG);
    assert_buf(&b, "12345678", 8);
    assert_int_equal(buf_append(&b, "x", SIZE_MAX), SL_ETOOBIG);
    assert_buf(&b, "12345678", 8);
    /* Exactly at the maximum is allowed. */
    assert_int_equal(buf_append_str(&b, "90"), SL_OK);
    assert_buf(&b, "1234567890", 10);
    assert_int_equal(buf_append(&b, "", 0), SL_OK);
    assert_int_equal(buf_append_str(&b, "x"), SL_ETOOBIG);
    assert_buf(&b, "1234567890", 10);
    buf_release(&b);
}

static void test_max_first_append(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 100);
    assert_int_equal(buf_append(&b, "x", 101), SL_ETOOBIG);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_str(&b), "");
    char big[100];
    memset(big, 'z', sizeof(big));
    assert_int_equal(buf_append(&b, big, sizeof(big)), SL_OK);
    assert_buf(&b, big, sizeof(big));
    assert_int_equal(b.cap, 100);
    buf_release(&b);
}

static void test_max_zero(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(buf_append_str(&b, "a"), SL_ETOOBIG);
    assert_int_equal(buf_appendf(&b, "%d", 1), SL_ETOOBIG);
    assert_string_equal(buf_str(&b), "");
    assert_int_equal(buf_append(&b, "", 0), SL_OK);
    assert_buf(&b, "", 0);
    buf_release(&b);
}

static void test_max_appendf(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_int_equal(buf_appendf(&b, "%s", "abc"), SL_OK);
    assert_int_equal(buf_appendf(&b, "%d", 123456), SL_ETOOBIG);
    assert_buf(&b, "abc", 3);
    assert_int_equal(buf_appendf(&b, "%d", 12345), SL_OK);
    assert_buf(&b, "abc12345", 8);
    assert_int_equal(buf_appendf(&b, "%s", "z"), SL_ETOOBIG);
    assert_buf(&b, "abc12345", 8);
    buf_release(&b);
}

static void test_detach(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 64);
    assert_int_equal(buf_append_str(&b, "hello"), SL_OK);
    char *s = buf_detach(&b);
    assert_string_equal(s, "hello");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 64);
    assert_string_equal(buf_str(&b), "");
    /* The buffer is usable again and independent of the detached storage. */
    assert_int_equal(buf_append_str(&b, "again"), SL_OK);
    assert_buf(&b, "again", 5);
    assert_string_equal(s, "hello");
    free(s);
    buf_release(&b);
}

static void test_detach_empty(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 64);
    char *s = buf_detach(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);

    /* Empty after a reset: still a C string, not NULL. */
    assert_int_equal(buf_append_str(&b, "abc"), SL_OK);
    buf_reset(&b);
    s = buf_detach(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    buf_release(&b);
}

static void test_reset_keeps_storage(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 64);
    buf_reset(&b); /* on a never-used buffer */
    assert_null(b.data);
    assert_int_equal(buf_append_str(&b, "abcdef"), SL_OK);
    char *data = b.data;
    size_t cap = b.cap;
    buf_reset(&b);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_buf(&b, "", 0);
    assert_string_equal(buf_str(&b), "");
    assert_int_equal(buf_append_str(&b, "xy"), SL_OK);
    assert_buf(&b, "xy", 2);
    buf_release(&b);
}

static void test_reset_restores_room(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 4);
    assert_int_equal(buf_append_str(&b, "abcd"), SL_OK);
    assert_int_equal(buf_append_str(&b, "e"), SL_ETOOBIG);
    buf_reset(&b);
    assert_int_equal(buf_append_str(&b, "wxyz"), SL_OK);
    assert_buf(&b, "wxyz", 4);
    buf_release(&b);
}

static void test_release(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 32);
    buf_release(&b); /* never used */
    assert_int_equal(buf_append_str(&b, "abc"), SL_OK);
    buf_release(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(b.max, 32);
    buf_release(&b); /* twice is harmless */
    assert_int_equal(buf_append_str(&b, "def"), SL_OK);
    assert_buf(&b, "def", 3);
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty),
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_append_binary),
        cmocka_unit_test(test_append_empty_terminates),
        cmocka_unit_test(test_appendf),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_max_append),
        cmocka_unit_test(test_max_first_append),
        cmocka_unit_test(test_max_zero),
        cmocka_unit_test(test_max_appendf),
        cmocka_unit_test(test_detach),
        cmocka_unit_test(test_detach_empty),
        cmocka_unit_test(test_reset_keeps_storage),
        cmocka_unit_test(test_reset_restores_room),
        cmocka_unit_test(test_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
