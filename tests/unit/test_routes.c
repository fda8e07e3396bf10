/* Unit tests for agent/routes.c: templates (most specific wins), learning, the bound. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "routes.h"

static unsigned match(struct route_table *t, const char *path)
{
    return routes_match(t, path, strlen(path));
}

static const char *name_of(struct route_table *t, const char *path)
{
    return routes_name(t, match(t, path));
}

static struct route_table *load(const char *json, char err[256])
{
    char path[] = "/tmp/sluice-routes-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    struct route_table *t = routes_load(path, err);
    unlink(path);
    return t;
}

static void test_templates(void **state)
{
    (void)state;
    char err[256];
    struct route_table *t = load("{\"routes\":[\"/{code}\",\"/v1/links/{code}\",\"/v1/links\","
                                 "\"/v1/links/{code}/stats\",\"/healthz\"]}",
                                 err);
    assert_non_null(t);
    assert_int_equal(routes_count(t), 6);
    assert_string_equal(name_of(t, "/v1/links/abc"), "/v1/links/{code}");
    assert_string_equal(name_of(t, "/v1/links"), "/v1/links");
    assert_string_equal(name_of(t, "/v1/links/"), "/v1/links");
    assert_string_equal(name_of(t, "/v1/links/abc/stats"), "/v1/links/{code}/stats");
    assert_string_equal(name_of(t, "/healthz"), "/healthz"); /* literal beats /{code} */
    assert_string_equal(name_of(t, "/abc"), "/{code}");
    assert_string_equal(name_of(t, "/v1/other/x"), "other");
    assert_string_equal(name_of(t, "/"), "other");
    assert_int_equal(match(t, ""), 0);
    routes_free(t);
}

static void test_bad_files(void **state)
{
    (void)state;
    char err[256];
    assert_null(load("{\"routes\":[\"nope\"]}", err));
    assert_non_null(strstr(err, "routes[0] is not a path template"));
    assert_null(load("{\"routes\":[\"/a//b\"]}", err));
    assert_null(load("{\"routes\":[\"/a/{b\"]}", err));
    assert_null(load("{\"routes\":5}", err));
    assert_non_null(strstr(err, "expected {\"routes\""));
    assert_null(load("{\"routes\":[", err));
    assert_non_null(strstr(err, "line 1"));
    assert_null(routes_load("/nonexistent/routes.json", err));
    assert_non_null(strstr(err, "/nonexistent/routes.json"));
}

static void test_learned_and_bounded(void **state)
{
    (void)state;
    struct route_table *t = routes_new_learned();
    assert_string_equal(name_of(t, "/v1/links/abc"), "/v1/...");
    assert_string_equal(name_of(t, "/v1/links"), "/v1/...");
    assert_string_equal(name_of(t, "/healthz"), "/healthz");
    assert_string_equal(name_of(t, "/"), "/");
    assert_int_equal(match(t, "/v1/x"), match(t, "/v1/y/z"));
    /* A flood of distinct first segments stops at the bound and lands in "other". */
    char path[32];
    for (int i = 0; i < 200; i++) {
        snprintf(path, sizeof(path), "/code%d", i);
        match(t, path);
    }
    assert_int_equal(routes_count(t), ROUTES_MAX);
    assert_string_equal(name_of(t, "/brand-new"), "other");
    assert_string_equal(name_of(t, "/healthz"), "/healthz"); /* known ones still match */
    routes_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_learned_and_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
