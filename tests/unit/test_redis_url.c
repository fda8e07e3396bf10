/* Unit tests for shared/redis_url: exact parsed fields, exact error messages, and a
 * formatter that never prints the password. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "redis_url.h"

struct good_case {
    const char *url;
    const char *host;
    uint16_t port;
    int db;
    const char *user;
    const char *password;
    const char *unix_path;
    const char *formatted;
};

static const struct good_case good_cases[] = {
    {"redis://127.0.0.1", "127.0.0.1", 6379, 0, "", "", "", "redis://127.0.0.1:6379/0"},
    {"redis://127.0.0.1:6380", "127.0.0.1", 6380, 0, "", "", "", "redis://127.0.0.1:6380/0"},
    {"redis://localhost:6379/0", "localhost", 6379, 0, "", "", "", "redis://localhost:6379/0"},
    {"redis://localhost/", "localhost", 6379, 0, "", "", "", "redis://localhost:6379/0"},
    {"redis://cache-1.example_net:1/15", "cache-1.example_net", 1, 15, "", "", "",
     "redis://cache-1.example_net:1/15"},
    {"REDIS://Host:65535/7", "Host", 65535, 7, "", "", "", "redis://Host:65535/7"},
    {"redis://[::1]", "::1", 6379, 0, "", "", "", "redis://[::1]:6379/0"},
    {"redis://[::1]:6380/2", "::1", 6380, 2, "", "", "", "redis://[::1]:6380/2"},
    {"redis://[2001:db8::1]/3", "2001:db8::1", 6379, 3, "", "", "", "redis://[2001:db8::1]:6379/3"},
    {"redis://:secret@127.0.0.1:6379/1", "127.0.0.1", 6379, 1, "", "secret", "",
     "redis://:***@127.0.0.1:6379/1"},
    {"redis://alice:s3cr%3At@h:7000", "h", 7000, 0, "alice", "s3cr:t", "",
     "redis://alice:***@h:7000/0"},
    {"redis://al%40ce:p%2Fw%25@h", "h", 6379, 0, "al@ce", "p/w%", "",
     "redis://al%40ce:***@h:6379/0"},
    /* raw '@', '/', '?' and ':' in a redis:// password: userinfo ends at the last '@' */
    {"redis://bob:p@ss/w?rd:x@[::1]:1/2", "::1", 1, 2, "bob", "p@ss/w?rd:x", "",
     "redis://bob:***@[::1]:1/2"},
    {"unix:///run/redis.sock", "", 0, 0, "", "", "/run/redis.sock", "unix:///run/redis.sock?db=0"},
    {"unix:///tmp/r.sock?db=4", "", 0, 4, "", "", "/tmp/r.sock", "unix:///tmp/r.sock?db=4"},
    {"Unix:///tmp/r.sock?db=1&db=9", "", 0, 9, "", "", "/tmp/r.sock", "unix:///tmp/r.sock?db=9"},
    {"unix://:pw%40x@/tmp/r.sock?db=2", "", 0, 2, "", "pw@x", "/tmp/r.sock",
     "unix://:***@/tmp/r.sock?db=2"},
    {"unix://u:pw@/a", "", 0, 0, "u", "pw", "/a", "unix://u:***@/a?db=0"},
};

struct bad_case {
    const char *url;
    int code;
    const char *message;
};

static const struct bad_case bad_cases[] = {
    {"http://localhost:6379", SL_EPARSE,
     "unsupported scheme 'http' (expected redis:// or unix://)"},
    {"rediss://localhost", SL_EPARSE, "unsupported scheme 'rediss' (expected redis:// or unix://)"},
    {"a b://x", SL_EPARSE, "unsupported scheme (expected redis:// or unix://)"},
    {"://x", SL_EPARSE, "unsupported scheme (expected redis:// or unix://)"},
    {"localhost:6379", SL_EPARSE, "missing scheme (expected redis:// or unix://)"},
    {"", SL_EPARSE, "missing scheme (expected redis:// or unix://)"},
    {"redis://", SL_EPARSE, "host is empty"},
    {"redis://:6379", SL_EPARSE, "host is empty"},
    {"redis://:pw@", SL_EPARSE, "host is empty"},
    {"redis://h:0", SL_ERANGE, "port must be 1-65535"},
    {"redis://h:65536", SL_ERANGE, "port must be 1-65535"},
    {"redis://h:", SL_ERANGE, "port must be 1-65535"},
    {"redis://h:+1", SL_ERANGE, "port must be 1-65535"},
    {"redis://h:99999999999999999999", SL_ERANGE, "port must be 1-65535"},
    {"redis://h:secret", SL_ERANGE, "port must be 1-65535"},
    {"redis://h/16", SL_ERANGE, "db must be 0-15"},
    {"redis://h/-1", SL_ERANGE, "db must be 0-15"},
    {"redis://h/x", SL_ERANGE, "db must be 0-15"},
    {"redis://h/1/2", SL_ERANGE, "db must be 0-15"},
    {"redis://h?db=1", SL_EPARSE,
     "query parameters are not supported in redis:// URLs (db goes in the path)"},
    {"redis://h st", SL_EPARSE, "host contains an invalid character"},
    {"redis://::1", SL_EPARSE, "IPv6 address must be in brackets"},
    {"redis://[::1", SL_EPARSE, "IPv6 address is missing ']'"},
    {"redis://[]:1", SL_EPARSE, "invalid IPv6 address"},
    {"redis://[::g]", SL_EPARSE, "invalid IPv6 address"},
    {"redis://[::1]x", SL_EPARSE, "unexpected character after IPv6 address"},
    {"redis://[::1]:0", SL_ERANGE, "port must be 1-65535"},
    {"redis://secret@h", SL_EPARSE, "userinfo must be [user]:password (missing ':')"},
    {"redis://alice:@h", SL_EPARSE, "password is empty"},
    {"redis://:p%4@h", SL_EPARSE, "bad percent-encoding in password"},
    {"redis://:p%zz@h", SL_EPARSE, "bad percent-encoding in password"},
    {"redis://a%:p@h", SL_EPARSE, "bad percent-encoding in user"},
    {"redis://:p%00@h", SL_EPARSE, "password contains %00"},
    {"unix://", SL_EPARSE, "unix socket path must be absolute (unix:///path/to/sock)"},
    {"unix://run/redis.sock", SL_EPARSE,
     "unix socket path must be absolute (unix:///path/to/sock)"},
    {"unix://:pw@run.sock", SL_EPARSE, "unix socket path must be absolute (unix:///path/to/sock)"},
    {"unix:///", SL_EPARSE, "unix socket path is empty"},
    {"unix:///?db=1", SL_EPARSE, "unix socket path is empty"},
    {"unix:///s?db=16", SL_ERANGE, "db must be 0-15"},
    {"unix:///s?db=", SL_ERANGE, "db must be 0-15"},
    {"unix:///s?password=x", SL_EPARSE, "unknown query parameter (expected db=N)"},
    {"unix:///s?db=1&", SL_EPARSE, "unknown query parameter (expected db=N)"},
    {"unix://secret@/s", SL_EPARSE, "userinfo must be [user]:password (missing ':')"},
};

static void test_good_urls(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
        const struct good_case *c = &good_cases[i];
        struct redis_url u;
        char err[128] = "untouched";
        char text[512];
        print_message("%s\n", c->url);
        assert_int_equal(redis_url_parse(c->url, &u, err), 0);
        assert_string_equal(err, "untouched");
        assert_string_equal(u.host, c->host);
        assert_int_equal(u.port, c->port);
        assert_int_equal(u.db, c->db);
        assert_string_equal(u.user, c->user);
        assert_string_equal(u.password, c->password);
        assert_string_equal(u.unix_path, c->unix_path);
        redis_url_format(&u, text, sizeof(text));
        assert_string_equal(text, c->formatted);
    }
}

static void test_bad_urls(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct redis_url u;
        char err[128] = "";
        memset(&u, 0x5a, sizeof(u));
        print_message("%s\n", c->url);
        assert_int_equal(redis_url_parse(c->url, &u, err), c->code);
        assert_string_equal(err, c->message);
        /* *out is written only on success */
        assert_int_equal((unsigned char)u.host[0], 0x5a);
        /* messages never quote the secret */
        assert_null(strstr(err, "secret"));
    }
}

static void test_bounds_host(void **state)
{
    (void)state;
    char url[2048];
    char err[128];
    struct redis_url u;

    /* host: 255 bytes fit, 256 do not */
    strcpy(url, "redis://");
    memset(url + 8, 'h', 255);
    strcpy(url + 8 + 255, ":1");
    assert_int_equal(redis_url_parse(url, &u, err), 0);
    assert_int_equal(strlen(u.host), 255);
    snprintf(url, sizeof(url), "redis://%0256d:1", 0);
    assert_int_equal(redis_url_parse(url, &u, err), SL_ETOOBIG);
    assert_string_equal(err, "host longer than 255 bytes");
}

static void test_bounds_credentials(void **state)
{
    (void)state;
    char url[2048];
    char err[128];
    struct redis_url u;

    /* password: 255 decoded bytes fit (as 765 encoded), 256 do not */
    strcpy(url, "redis://:");
    for (int i = 0; i < 255; i++)
        strcat(url, "%41");
    strcat(url, "@h");
    assert_int_equal(redis_url_parse(url, &u, err), 0);
    assert_int_equal(strlen(u.password), 255);
    snprintf(url, sizeof(url), "redis://:%0256d@h", 0);
    assert_int_equal(redis_url_parse(url, &u, err), SL_ETOOBIG);
    assert_string_equal(err, "password longer than 255 bytes");

    snprintf(url, sizeof(url), "redis://%0128d:p@h", 0);
    assert_int_equal(redis_url_parse(url, &u, err), SL_ETOOBIG);
    assert_string_equal(err, "user longer than 127 bytes");
}

static void test_bounds_path_and_url(void **state)
{
    (void)state;
    char url[2048];
    char err[128];
    struct redis_url u;

    /* unix path: 107 bytes fit, 108 do not */
    snprintf(url, sizeof(url), "unix:///%0106d", 0);
    assert_int_equal(redis_url_parse(url, &u, err), 0);
    assert_int_equal(strlen(u.unix_path), 107);
    snprintf(url, sizeof(url), "unix:///%0107d", 0);
    assert_int_equal(redis_url_parse(url, &u, err), SL_ETOOBIG);
    assert_string_equal(err, "unix socket path longer than 107 bytes");

    /* whole URL bound */
    snprintf(url, sizeof(url), "redis://h/%01015d", 0);
    assert_int_equal(strlen(url), 1025);
    assert_int_equal(redis_url_parse(url, &u, err), SL_ETOOBIG);
    assert_string_equal(err, "URL longer than 1024 bytes");
}

static void test_null_args(void **state)
{
    (void)state;
    struct redis_url u;
    char err[128];
    assert_int_equal(redis_url_parse(NULL, &u, err), SL_EINVAL);
    assert_string_equal(err, "no URL given");
    assert_int_equal(redis_url_parse("redis://h", NULL, NULL), SL_EINVAL);
    /* err may be NULL */
    assert_int_equal(redis_url_parse("redis://h:0", &u, NULL), SL_ERANGE);
    assert_int_equal(redis_url_parse("redis://h", &u, NULL), 0);
}

static void test_format_never_shows_password(void **state)
{
    (void)state;
    struct redis_url u;
    char text[512];
    assert_int_equal(redis_url_parse("redis://admin:hunter2@10.0.0.5:6390/4", &u, NULL), 0);
    redis_url_format(&u, text, sizeof(text));
    assert_string_equal(text, "redis://admin:***@10.0.0.5:6390/4");
    assert_null(strstr(text, "hunter2"));

    /* a user without password (built by hand) prints as user@ */
    memset(&u, 0, sizeof(u));
    strcpy(u.host, "h");
    u.port = 1;
    strcpy(u.user, "a b");
    redis_url_format(&u, text, sizeof(text));
    assert_string_equal(text, "redis://a%20b@h:1/0");

    /* cut to cap - 1 bytes, always terminated; cap 0 writes nothing */
    assert_int_equal(redis_url_parse("redis://127.0.0.1:6379/0", &u, NULL), 0);
    redis_url_format(&u, text, 10);
    assert_string_equal(text, "redis://1");
    text[0] = 'x';
    redis_url_format(&u, text, 0);
    assert_int_equal(text[0], 'x');
}

static void test_format_round_trips(void **state)
{
    (void)state;
    /* the formatted form (without a password) parses back to the same fields */
    for (size_t i = 0; i < sizeof(good_cases) / sizeof(good_cases[0]); i++) {
        struct redis_url a, b;
        char text[512];
        assert_int_equal(redis_url_parse(good_cases[i].url, &a, NULL), 0);
        if (a.password[0])
            continue;
        redis_url_format(&a, text, sizeof(text));
        assert_int_equal(redis_url_parse(text, &b, NULL), 0);
        assert_string_equal(a.host, b.host);
        assert_int_equal(a.port, b.port);
        assert_int_equal(a.db, b.db);
        assert_string_equal(a.user, b.user);
        assert_string_equal(a.password, b.password);
        assert_string_equal(a.unix_path, b.unix_path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_urls),
        cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_bounds_host),
        cmocka_unit_test(test_bounds_credentials),
        cmocka_unit_test(test_bounds_path_and_url),
        cmocka_unit_test(test_null_args),
        cmocka_unit_test(test_format_never_shows_password),
        cmocka_unit_test(test_format_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
