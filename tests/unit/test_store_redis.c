/*
 * Tests for shared/store_redis against real redis-server processes (redis_fixture.h) on
 * free loopback ports and unix sockets, always stopped by PID: in the group teardown and,
 * should a test abort, from atexit.
 * Every wait is a poll with a deadline (DEADLINE_MS); nothing sleeps a fixed time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "redis_fixture.h"
#include "store_redis.h"

#define DEADLINE_MS      5000
#define POLL_INTERVAL_NS (10 * 1000 * 1000)
#define AUTH_PASSWORD    "s@cret:pw"

enum { SRV_MAIN, SRV_LAZY, SRV_AUTH, SRV_COUNT };
static struct redis_fixture servers[SRV_COUNT];

/* --- harness ------------------------------------------------------------------------ */

static void pause_briefly(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = POLL_INTERVAL_NS};
    nanosleep(&ts, NULL);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* store_redis.h: programs must ignore SIGPIPE */
    return redis_fixture_start(&servers[SRV_MAIN]) == SL_OK ? 0 : -1;
}

/* --- helpers ------------------------------------------------------------------------ */

static struct redis_pool *pool_at(const struct redis_fixture *s, const char *suffix,
                                  const struct redis_opts *opts)
{
    char url[256], err[128] = "";
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u%s", s->port, suffix);
    struct redis_pool *p = redis_pool_new(url, opts, err);
    assert_string_equal(err, "");
    assert_non_null(p);
    return p;
}

static long long command_integer(struct redis_pool *p, const char *cmd)
{
    redisReply *r = redis_pool_command(p, cmd);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static long long client_id(redisContext *c)
{
    redisReply *r = redisCommand(c, "CLIENT ID");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* The server closes connections asynchronously: poll until id is gone. */
static bool client_gone(struct redis_pool *p, long long id)
{
    for (uint64_t end = clock_mono_ms() + DEADLINE_MS; clock_mono_ms() < end; pause_briefly()) {
        redisReply *r = redis_pool_command(p, "CLIENT LIST ID %lld", id);
        assert_non_null(r);
        bool gone = r->type == REDIS_REPLY_STRING && r->len == 0;
        freeReplyObject(r);
        if (gone)
            return true;
    }
    return false;
}

/* Log lines go to a temporary file while a test inspects them. */
static int log_capture_start(void)
{
    char path[] = "/tmp/sluice-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    log_setup(NULL, LOG_INFO, fd);
    return fd;
}

static int log_capture_read(int fd, char *out, size_t cap)
{
    ssize_t n = pread(fd, out, cap - 1, 0);
    assert_true(n >= 0);
    out[n] = '\0';
    int lines = 0;
    for (ssize_t i = 0; i < n; i++)
        lines += out[i] == '\n';
    return lines;
}

static void log_capture_stop(int fd)
{
    log_setup(NULL, LOG_INFO, 2);
    close(fd);
}

/* --- tests -------------------------------------------------------------------------- */

static void test_pool_new_rejects_bad_urls(void **state)
{
    (void)state;
    char err[128] = "";
    assert_null(redis_pool_new("redis://127.0.0.1:0", NULL, err));
    assert_string_equal(err, "port must be 1-65535");
    assert_null(redis_pool_new("http://x", NULL, err));
    assert_string_equal(err, "unsupported scheme 'http' (expected redis:// or unix://)");
    assert_null(redis_pool_new("redis://h/99", NULL, NULL));

    struct redis_pool *p = redis_pool_new("redis://bob:hunter2@127.0.0.1:1/2", NULL, err);
    assert_non_null(p);
    assert_string_equal(redis_pool_url(p), "redis://bob:***@127.0.0.1:1/2");
    redis_pool_put(p, NULL); /* no-op */
    redis_pool_free(p);
    redis_pool_free(NULL);
}

/* Nothing listens: new succeeds, get fails fast and logs once per second; then Redis
 * comes up on that port and the same pool works, logging the recovery once. */
static void test_lazy_connect_and_outage_log(void **state)
{
    (void)state;
    struct redis_fixture *s = &servers[SRV_LAZY];
    char log[8192];
    assert_int_equal(redis_fixture_init(s, 0), SL_OK);
    char url[128];
    snprintf(url, sizeof(url), "redis://:hunter2@127.0.0.1:%u/0", s->port);
    struct redis_pool *p = redis_pool_new(url, NULL, NULL);
    assert_non_null(p);

    int fd = log_capture_start();
    uint64_t t0 = clock_mono_ms();
    for (int i = 0; i < 20; i++)
        assert_null(redis_pool_get(p));
    assert_false(redis_pool_ping(p));
    assert_null(redis_pool_command(p, "PING"));
    assert_true(clock_mono_ms() - t0 < 500); /* refused on loopback: no waiting */
    assert_int_equal(log_capture_read(fd, log, sizeof(log)), 1);
    assert_non_null(strstr(log, "\"msg\":\"redis connect failed\""));
    assert_non_null(strstr(log, "\"suppressed\":\"0\""));
    snprintf(url, sizeof(url), "\"redis\":\"redis://:***@127.0.0.1:%u/0\"", s->port);
    assert_non_null(strstr(log, url));
    assert_null(strstr(log, "hunter2"));

    s->password = "hunter2";
    assert_int_equal(redis_fixture_start(s), SL_OK);
    redisContext *c = redis_pool_get(p);
    assert_non_null(c);
    redis_pool_put(p, c);
    assert_true(redis_pool_ping(p));
    assert_int_equal(log_capture_read(fd, log, sizeof(log)), 2);
    assert_non_null(strstr(log, "\"msg\":\"redis reachable again\""));
    log_capture_stop(fd);
    redis_pool_free(p);
    redis_fixture_stop(s);
}

static void test_command_replies(void **state)
{
    (void)state;
    struct redis_pool *p = pool_at(&servers[SRV_MAIN], "", NULL);
    redisReply *r = redis_pool_command(p, "SET %s %s", "t:cmd", "v1");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);
    r = redis_pool_command(p, "GET %s", "t:cmd");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 2);
    assert_string_equal(r->str, "v1");
    freeReplyObject(r);
    r = redis_pool_command(p, "GET t:missing");
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    /* an error reply is a reply, not NULL */
    r = redis_pool_command(p, "INCR t:cmd");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_string_equal(r->str, "ERR value is not an integer or out of range");
    freeReplyObject(r);
    assert_int_equal(command_integer(p, "DEL t:cmd t:n"), 1);
    assert_int_equal(command_integer(p, "INCRBY t:n 41"), 41);
    assert_int_equal(command_integer(p, "INCR t:n"), 42);
    r = redis_pool_command(p, "MGET t:n t:missing");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 2);
    assert_string_equal(r->element[0]->str, "42");
    assert_int_equal(r->element[1]->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    assert_int_equal(command_integer(p, "DEL t:n"), 1);
    redis_pool_free(p);
}

static void test_argv_binary(void **state)
{
    (void)state;
    struct redis_pool *p = pool_at(&servers[SRV_MAIN], "", NULL);
    static const char key[] = {'t', ':', 'b', '\0', 'k'};
    static const char value[] = {'a', '\0', 'b', '\xff', '\0', 'c'};
    const char *argv[] = {"SET", key, value};
    const size_t lens[] = {3, sizeof(key), sizeof(value)};
    redisReply *r = redis_pool_command_argv(p, 3, argv, lens);
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);

    const char *strlen_argv[] = {"STRLEN", key};
    const size_t strlen_lens[] = {6, sizeof(key)};
    r = redis_pool_command_argv(p, 2, strlen_argv, strlen_lens);
    assert_int_equal(r->integer, 6);
    freeReplyObject(r);
    r = redis_pool_command(p, "GET %b", key, sizeof(key));
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, sizeof(value));
    assert_memory_equal(r->str, value, sizeof(value));
    freeReplyObject(r);

    const char *plain[] = {"DEL", "t:plain"}; /* argvlen NULL = strlen */
    r = redis_pool_command_argv(p, 2, plain, NULL);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = redis_pool_command(p, "DEL %b", key, sizeof(key));
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redis_pool_free(p);
}

static void test_connection_reuse(void **state)
{
    (void)state;
    struct redis_opts opts = {.max_idle = 1};
    struct redis_pool *p = pool_at(&servers[SRV_MAIN], "", &opts);
    long long first = command_integer(p, "CLIENT ID");
    assert_int_equal(command_integer(p, "CLIENT ID"), first);
    assert_int_equal(command_integer(p, "CLIENT ID"), first);

    /* two at once are two connections; with max_idle 1 the second one back is closed */
    redisContext *a = redis_pool_get(p);
    redisContext *b = redis_pool_get(p);
    assert_non_null(a);
    assert_non_null(b);
    long long id_a = client_id(a), id_b = client_id(b);
    assert_int_equal(id_a, first);
    assert_true(id_b != id_a);
    redis_pool_put(p, a);
    redis_pool_put(p, b);
    assert_int_equal(command_integer(p, "CLIENT ID"), id_a);
    assert_true(client_gone(p, id_b));
    redis_pool_free(p);
}

static void test_error_context_dropped(void **state)
{
    (void)state;
    struct redis_pool *p = pool_at(&servers[SRV_MAIN], "", NULL);
    int fd = log_capture_start();
    redisContext *c = redis_pool_get(p);
    long long id = client_id(c);
    c->err = REDIS_ERR_IO; /* healthy socket, but flagged: must not be reused */
    strcpy(c->errstr, "simulated");
    redis_pool_put(p, c);
    long long next = command_integer(p, "CLIENT ID");
    assert_true(next != id);
    assert_true(client_gone(p, id));
    char log[4096];
    assert_int_equal(log_capture_read(fd, log, sizeof(log)), 1);
    assert_non_null(strstr(log, "\"msg\":\"redis connection failed\",\"redis\":"));
    assert_non_null(strstr(log, "\"error\":\"simulated\""));
    log_capture_stop(fd);

    /* the server closes the idle connection: noticed before reuse, no failed command */
    struct redis_pool *killer = pool_at(&servers[SRV_MAIN], "", NULL);
    redisReply *r = redis_pool_command(killer, "CLIENT KILL ID %lld", next);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    long long after = command_integer(p, "CLIENT ID");
    assert_true(after != next);

    /* a context with unread replies is not reused either */
    c = redis_pool_get(p);
    assert_int_equal(client_id(c), after);
    redisAppendCommand(c, "PING");
    redisAppendCommand(c, "PING");
    void *reply;
    assert_int_equal(redisGetReply(c, &reply), REDIS_OK); /* one of two read */
    freeReplyObject(reply);
    redis_pool_put(p, c);
    assert_true(command_integer(p, "CLIENT ID") != after);
    redis_pool_free(killer);
    redis_pool_free(p);
}

static void test_db_select_and_unix_socket(void **state)
{
    (void)state;
    const struct redis_fixture *s = &servers[SRV_MAIN];
    struct redis_pool *db3 = pool_at(s, "/3", NULL);
    struct redis_pool *db0 = pool_at(s, "", NULL);
    char url[256];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u/3", s->port);
    assert_string_equal(redis_pool_url(db3), url);
    redisReply *r = redis_pool_command(db3, "SET t:db %s", "three");
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);
    r = redis_pool_command(db0, "GET t:db");
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    r = redis_pool_command(db3, "CLIENT INFO");
    assert_non_null(strstr(r->str, " db=3 "));
    freeReplyObject(r);

    snprintf(url, sizeof(url), "unix://%s?db=3", s->sock);
    struct redis_pool *sock = redis_pool_new(url, NULL, NULL);
    assert_non_null(sock);
    assert_string_equal(redis_pool_url(sock), url);
    r = redis_pool_command(sock, "GET t:db");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "three");
    freeReplyObject(r);
    assert_int_equal(command_integer(sock, "DEL t:db"), 1);
    redis_pool_free(sock);
    redis_pool_free(db0);
    redis_pool_free(db3);
}

/* The password-protected instance, started by the first test that needs it and stopped
 * by the group teardown. */
static struct redis_fixture *auth_server(void)
{
    struct redis_fixture *s = &servers[SRV_AUTH];
    if (s->pid == 0) {
        s->password = AUTH_PASSWORD;
        assert_int_equal(redis_fixture_start(s), SL_OK);
    }
    return s;
}

static struct redis_pool *pool_with_password(const struct redis_fixture *s, const char *userinfo,
                                             const char *suffix)
{
    char url[256];
    snprintf(url, sizeof(url), "redis://%s@127.0.0.1:%u%s", userinfo, s->port, suffix);
    struct redis_pool *p = redis_pool_new(url, NULL, NULL);
    assert_non_null(p);
    return p;
}

static void test_password_via_url(void **state)
{
    (void)state;
    const struct redis_fixture *s = auth_server();
    struct redis_pool *encoded = pool_with_password(s, ":s%40cret%3Apw", "/1");
    struct redis_pool *raw = pool_with_password(s, ":" AUTH_PASSWORD, "");
    struct redis_pool *wrong = pool_with_password(s, ":wrong", "");
    struct redis_pool *none = pool_at(s, "", NULL);
    int fd = log_capture_start();
    assert_true(redis_pool_ping(encoded));
    assert_true(redis_pool_ping(raw));
    assert_false(redis_pool_ping(wrong));
    assert_null(redis_pool_get(wrong));
    assert_false(redis_pool_ping(none));
    redisReply *r = redis_pool_command(none, "GET x"); /* connected, but not allowed */
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_string_equal(r->str, "NOAUTH Authentication required.");
    freeReplyObject(r);
    r = redis_pool_command(encoded, "CLIENT INFO");
    assert_non_null(strstr(r->str, " db=1 "));
    freeReplyObject(r);

    char log[4096];
    assert_int_equal(log_capture_read(fd, log, sizeof(log)), 1); /* once per pool per second */
    assert_non_null(strstr(log, "\"redis\":\"redis://:***@127.0.0.1:"));
    assert_non_null(strstr(log, "\"error\":\"AUTH: WRONGPASS invalid username-password pair"));
    assert_null(strstr(log, "wrong"));
    log_capture_stop(fd);
    redis_pool_free(encoded);
    redis_pool_free(raw);
    redis_pool_free(wrong);
    redis_pool_free(none);
}

/* Redis 6 ACL user in the URL: AUTH user password. */
static void test_acl_user_via_url(void **state)
{
    (void)state;
    const struct redis_fixture *s = auth_server();
    struct redis_pool *admin = pool_with_password(s, ":" AUTH_PASSWORD, "");
    redisReply *r = redis_pool_command(admin, "ACL SETUSER alice on >alicepw ~* +@all");
    assert_string_equal(r->str, "OK");
    freeReplyObject(r);
    struct redis_pool *alice = pool_with_password(s, "alice:alicepw", "");
    r = redis_pool_command(alice, "ACL WHOAMI");
    assert_string_equal(r->str, "alice");
    freeReplyObject(r);

    struct redis_pool *alice_wrong = pool_with_password(s, "alice:nope", "");
    int fd = log_capture_start();
    assert_null(redis_pool_command(alice_wrong, "ACL WHOAMI"));
    char log[4096];
    assert_int_equal(log_capture_read(fd, log, sizeof(log)), 1);
    assert_non_null(strstr(log, "\"redis\":\"redis://alice:***@127.0.0.1:"));
    assert_null(strstr(log, "nope"));
    log_capture_stop(fd);
    redis_pool_free(alice_wrong);
    redis_pool_free(alice);
    redis_pool_free(admin);
}

static const char echo_source[] = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}";

static void assert_echo_reply(redisReply *r)
{
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "t:k1");
    assert_string_equal(r->element[1]->str, "hello");
    assert_int_equal(r->element[2]->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->element[2]->integer, 42);
    freeReplyObject(r);
}

static long long commandstat_calls(struct redis_pool *p, const char *cmd)
{
    redisReply *r = redis_pool_command(p, "INFO commandstats");
    char needle[64];
    snprintf(needle, sizeof(needle), "cmdstat_%s:calls=", cmd);
    const char *at = strstr(r->str, needle);
    long long calls = at ? atoll(at + strlen(needle)) : 0;
    freeReplyObject(r);
    return calls;
}

static void test_script_eval(void **state)
{
    (void)state;
    static struct redis_script lazy = REDIS_SCRIPT_INIT(echo_source);
    struct redis_pool *p = pool_at(&servers[SRV_MAIN], "", NULL);
    const char *args[] = {"t:k1", "hello", "41"};
    freeReplyObject(redis_pool_command(p, "SCRIPT FLUSH"));
    freeReplyObject(redis_pool_command(p, "CONFIG RESETSTAT"));

    assert_int_equal(atomic_load(&lazy.state), REDIS_SCRIPT_NEW);
    assert_echo_reply(redis_script_eval_pool(p, &lazy, 1, 2, args, NULL));
    assert_int_equal(atomic_load(&lazy.state), REDIS_SCRIPT_READY);
    assert_string_equal(lazy.sha1, "765ee0ec06ff09b6900c57d116e4eec2c19fde12");
    assert_echo_reply(redis_script_eval_pool(p, &lazy, 1, 2, args, NULL));
    /* first call: EVALSHA → NOSCRIPT → EVAL (loads it); second: EVALSHA only */
    assert_int_equal(atomic_load(&lazy.noscript_fallbacks), 1);
    assert_int_equal(commandstat_calls(p, "evalsha"), 2);
    assert_int_equal(commandstat_calls(p, "eval"), 1);

    struct redis_script s;
    redis_script_init(&s, "return string.len(ARGV[1]) * 10 + #KEYS");
    assert_int_equal(atomic_load(&s.state), REDIS_SCRIPT_READY);
    assert_string_equal(s.sha1, "4b15529a6ecdaf3e8a6f175dcb8886db783bf4f5");
    const char *bin[] = {"t:a", "t:b", "x\0y"}; /* keys, then a binary argument */
    const size_t bin_lens[] = {3, 3, 3};
    redisContext *c = redis_pool_get(p);
    redisReply *r = redis_script_eval(c, &s, 2, 1, bin, bin_lens);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 32);
    freeReplyObject(r);
    redis_pool_put(p, c);
    redis_pool_free(p);
}

static void test_script_errors(void **state)
{
    (void)state;
    static struct redis_script boom = REDIS_SCRIPT_INIT("return redis.error_reply('boom')");
    static struct redis_script broken = REDIS_SCRIPT_INIT("return +");
    static struct redis_script one = REDIS_SCRIPT_INIT("return 1");
    struct redis_pool *p = pool_at(&servers[SRV_MAIN], "", NULL);
    redisReply *r = redis_script_eval_pool(p, &boom, 0, 0, NULL, NULL);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_string_equal(r->str, "ERR boom"); /* Redis 7 adds a code when there is none */
    freeReplyObject(r);
    r = redis_script_eval_pool(p, &broken, 0, 0, NULL, NULL);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "Error compiling script"));
    freeReplyObject(r);

    /* bad counts: NULL, logged, and the connection is left untouched */
    const char *args[REDIS_SCRIPT_MAX_ARGS + 1] = {0};
    int fd = log_capture_start();
    redisContext *c = redis_pool_get(p);
    assert_null(redis_script_eval(c, &one, -1, 0, args, NULL));
    assert_null(redis_script_eval(c, &one, 1, REDIS_SCRIPT_MAX_ARGS, args, NULL));
    assert_null(redis_script_eval(c, &one, 0, -1, args, NULL));
    assert_int_equal(c->err, 0);
    r = redis_script_eval(c, &one, 0, 0, NULL, NULL);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redis_pool_put(p, c);
    char log[4096];
    assert_int_equal(log_capture_read(fd, log, sizeof(log)), 3);
    assert_non_null(strstr(log, "redis script called with 1 keys and 128 arguments (at most 128"));
    log_capture_stop(fd);
    redis_pool_free(p);
}

static void test_noscript_fallback(void **state)
{
    (void)state;
    static struct redis_script dbl = REDIS_SCRIPT_INIT("return tonumber(ARGV[1]) * 2");
    struct redis_pool *p = pool_at(&servers[SRV_MAIN], "", NULL);
    const char *args[] = {"21"};
    freeReplyObject(redis_pool_command(p, "SCRIPT FLUSH"));
    for (int round = 1; round <= 3; round++) {
        for (int i = 0; i < 2; i++) {
            redisReply *r = redis_script_eval_pool(p, &dbl, 0, 1, args, NULL);
            assert_int_equal(r->type, REDIS_REPLY_INTEGER);
            assert_int_equal(r->integer, 42);
            freeReplyObject(r);
            /* one fallback per flushed cache, none while the script is cached */
            assert_int_equal(atomic_load(&dbl.noscript_fallbacks), round);
        }
        redisReply *r = redis_pool_command(p, "SCRIPT EXISTS %s", dbl.sha1);
        assert_int_equal(r->element[0]->integer, 1); /* EVAL loaded it again */
        freeReplyObject(r);
        freeReplyObject(redis_pool_command(p, "SCRIPT FLUSH"));
    }
    redis_pool_free(p);
}

#define THREADS       8
#define THREAD_ROUNDS 200

static struct redis_script thread_incr =
    REDIS_SCRIPT_INIT("return redis.call('INCRBY', KEYS[1], ARGV[1])");

struct thread_arg {
    struct redis_pool *pool;
    int index;
    int failures; /* cmocka asserts only on the main thread */
};

static void *thread_main(void *opaque)
{
    struct thread_arg *t = opaque;
    const char *args[] = {"t:threads", "1"};
    for (int i = 0; i < THREAD_ROUNDS; i++) {
        redisReply *r = i % 2 ? redis_pool_command(t->pool, "INCR t:threads")
                              : redis_script_eval_pool(t->pool, &thread_incr, 1, 1, args, NULL);
        t->failures += !r || r->type != REDIS_REPLY_INTEGER;
        freeReplyObject(r);
        if (t->index == 0 && i % 50 == 25)
            freeReplyObject(redis_pool_command(t->pool, "SCRIPT FLUSH"));
    }
    return NULL;
}

/* Many threads share one pool (max_idle smaller than the thread count) and one
 * REDIS_SCRIPT_INIT script (its first use races), while the script cache is flushed. */
static void test_threads_share_pool_and_script(void **state)
{
    (void)state;
    struct redis_opts opts = {.max_idle = THREADS / 2};
    struct redis_pool *p = pool_at(&servers[SRV_MAIN], "", &opts);
    pthread_t tids[THREADS];
    struct thread_arg args[THREADS];
    assert_int_equal(command_integer(p, "DEL t:threads") >= 0, 1);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct thread_arg){.pool = p, .index = i};
        assert_int_equal(pthread_create(&tids[i], NULL, thread_main, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(tids[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    redisReply *r = redis_pool_command(p, "GET t:threads");
    assert_string_equal(r->str, "1600");
    freeReplyObject(r);
    assert_int_equal(command_integer(p, "DEL t:threads"), 1);
    assert_int_equal(atomic_load(&thread_incr.state), REDIS_SCRIPT_READY);
    redis_pool_free(p);
}

/* The server stops: ping fails fast. It restarts on the same port: the pool's stale idle
 * connections are dropped, the very next ping succeeds, and the empty script cache is
 * refilled through the NOSCRIPT fallback. */
static void test_ping_across_restart(void **state)
{
    (void)state;
    static struct redis_script one = REDIS_SCRIPT_INIT("return 1");
    struct redis_fixture *s = &servers[SRV_MAIN];
    struct redis_pool *p = pool_at(s, "", NULL);
    redisContext *a = redis_pool_get(p), *b = redis_pool_get(p);
    redis_pool_put(p, a);
    redis_pool_put(p, b);
    assert_true(redis_pool_ping(p));
    redisReply *r = redis_script_eval_pool(p, &one, 0, 0, NULL, NULL);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    uint64_t fallbacks = atomic_load(&one.noscript_fallbacks);

    int fd = log_capture_start();
    redis_fixture_stop(s);
    uint64_t t0 = clock_mono_ms();
    assert_false(redis_pool_ping(p));
    assert_false(redis_pool_ping(p));
    assert_true(clock_mono_ms() - t0 < 500);
    assert_int_equal(redis_fixture_start(s), SL_OK);
    assert_true(redis_pool_ping(p));
    log_capture_stop(fd);

    r = redis_script_eval_pool(p, &one, 0, 0, NULL, NULL);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_int_equal(atomic_load(&one.noscript_fallbacks), fallbacks + 1);
    redis_pool_free(p);
}

static int listen_loopback(int backlog, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A listener that never accepts: connect succeeds (the kernel queues it), but nothing
 * answers, so PING fails after command_timeout_ms — not later. */
static void test_command_timeout(void **state)
{
    (void)state;
    struct redis_fixture mute = {0};
    int lfd = listen_loopback(8, &mute.port);
    struct redis_opts opts = {.command_timeout_ms = 200};
    struct redis_pool *p = pool_at(&mute, "", &opts);
    int fd = log_capture_start();
    uint64_t t0 = clock_mono_ms();
    assert_false(redis_pool_ping(p));
    uint64_t elapsed = clock_mono_ms() - t0;
    char log[4096];
    assert_int_equal(log_capture_read(fd, log, sizeof(log)), 1);
    assert_non_null(strstr(log, "\"msg\":\"redis connection failed\""));
    log_capture_stop(fd);
    assert_in_range(elapsed, 150, 1500);
    redis_pool_free(p);
    close(lfd);
}

/* A listener whose accept queue is full drops SYNs: connect fails after
 * connect_timeout_ms. */
static void test_connect_timeout(void **state)
{
    (void)state;
    struct redis_fixture full = {0};
    int lfd = listen_loopback(0, &full.port);
    int fillers[3];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(full.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 3; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&a, sizeof(a));
    }
    struct redis_opts opts = {.connect_timeout_ms = 300};
    struct redis_pool *p = pool_at(&full, "", &opts);
    int fd = log_capture_start();
    uint64_t t0 = clock_mono_ms();
    assert_null(redis_pool_get(p));
    uint64_t elapsed = clock_mono_ms() - t0;
    char log[4096];
    assert_int_equal(log_capture_read(fd, log, sizeof(log)), 1);
    assert_non_null(strstr(log, "\"error\":\"Connection timed out\""));
    log_capture_stop(fd);
    assert_in_range(elapsed, 250, 2000);
    redis_pool_free(p);
    for (int i = 0; i < 3; i++)
        close(fillers[i]);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_new_rejects_bad_urls),
        cmocka_unit_test(test_lazy_connect_and_outage_log),
        cmocka_unit_test(test_command_replies),
        cmocka_unit_test(test_argv_binary),
        cmocka_unit_test(test_connection_reuse),
        cmocka_unit_test(test_error_context_dropped),
        cmocka_unit_test(test_db_select_and_unix_socket),
        cmocka_unit_test(test_password_via_url),
        cmocka_unit_test(test_acl_user_via_url),
        cmocka_unit_test(test_script_eval),
        cmocka_unit_test(test_script_errors),
        cmocka_unit_test(test_noscript_fallback),
        cmocka_unit_test(test_threads_share_pool_and_script),
        cmocka_unit_test(test_command_timeout),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_ping_across_restart),
    };
    return cmocka_run_group_tests(tests, group_setup, redis_fixture_teardown);
}
