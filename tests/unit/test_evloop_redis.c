/*
 * test_evloop_redis — asynchronous Redis on an evloop, against real redis-server
 * processes (redis_fixture.h) on free loopback ports, always stopped by PID (group
 * teardown, and atexit should a test abort). Every wait runs the loop until a condition
 * holds or a deadline (DEADLINE_MS) passes; nothing sleeps a fixed time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "evloop.h"
#include "evloop_redis.h"
#include "log.h"
#include "redis_fixture.h"

#define DEADLINE_MS   5000
#define AUTH_PASSWORD "s@cret:pw"

enum { SRV_MAIN, SRV_RESTART, SRV_AUTH, SRV_COUNT };
static struct redis_fixture servers[SRV_COUNT];

/* --- harness ------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    static const char *const debug[] = {"--enable-debug-command", "yes", NULL};
    signal(SIGPIPE, SIG_IGN); /* evloop_redis.h: programs must ignore SIGPIPE */
    log_setup("test_evloop_redis", LOG_ERROR + 1, 2); /* expected failures stay quiet */
    servers[SRV_AUTH].password = AUTH_PASSWORD;
    for (int i = 0; i < SRV_COUNT; i++) {
        servers[i].args = debug;
        if (redis_fixture_start(&servers[i]) != SL_OK)
            return -1;
    }
    return 0;
}

/* --- helpers ------------------------------------------------------------------------ */

struct result {
    int calls;
    int err;
    int type;
    long long integer;
    char str[512];
};

static void on_reply(const redisReply *reply, int err, void *arg)
{
    struct result *res = arg;
    res->calls++;
    res->err = err;
    res->type = reply ? reply->type : -1;
    res->integer = reply ? reply->integer : 0;
    res->str[0] = '\0';
    if (reply && reply->str)
        snprintf(res->str, sizeof(res->str), "%s", reply->str);
}

/* Run the loop until *calls >= want or the deadline; true when reached. */
static bool run_until_calls(struct evloop *loop, const int *calls, int want, unsigned timeout_ms)
{
    uint64_t end = clock_mono_ms() + timeout_ms;
    while (*calls < want) {
        if (clock_mono_ms() > end)
            return false;
        assert_int_equal(evloop_run_once(loop, 10), 0);
    }
    return true;
}

static struct evredis *evredis_at(struct evloop *loop, const struct redis_fixture *s,
                                  const char *userinfo, const char *suffix,
                                  unsigned command_timeout_ms)
{
    char url[256], err[128] = "";
    snprintf(url, sizeof(url), "redis://%s127.0.0.1:%u%s", userinfo, s->port, suffix);
    struct evredis *r = evredis_new(loop, url, 500, command_timeout_ms, err);
    if (!r)
        fail_msg("evredis_new(%s): %s", url, err);
    return r;
}

static struct evredis_stats stats_of(const struct evredis *r)
{
    struct evredis_stats s;
    evredis_get_stats(r, &s);
    return s;
}

/* Sends PING every POLL_MS until one gets PONG: recovery after an outage. */
#define POLL_MS 20

struct poller {
    struct evredis *r;
    bool in_flight;
    bool ok;
    int attempts;
};

static void poller_reply(const redisReply *reply, int err, void *arg)
{
    struct poller *p = arg;
    p->in_flight = false;
    if (err == 0 && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0)
        p->ok = true;
}

static void poller_tick(struct evloop *loop, void *arg)
{
    (void)loop;
    struct poller *p = arg;
    if (p->ok || p->in_flight)
        return;
    p->attempts++;
    p->in_flight = evredis_command(p->r, poller_reply, p, "PING") == 0;
}

static bool poll_until_pong(struct evloop *loop, struct evredis *r, unsigned timeout_ms)
{
    struct poller p = {.r = r};
    uint64_t tick;
    assert_int_equal(evloop_timer_add(loop, 0, POLL_MS, poller_tick, &p, &tick), 0);
    uint64_t end = clock_mono_ms() + timeout_ms;
    while ((!p.ok || p.in_flight) && clock_mono_ms() <= end)
        assert_int_equal(evloop_run_once(loop, 10), 0);
    evloop_cancel(loop, tick);
    return p.ok;
}

/* --- tests -------------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct evredis *r = evredis_at(loop, &servers[SRV_MAIN], "", "", 1000);
    char want_url[64];
    snprintf(want_url, sizeof(want_url), "redis://127.0.0.1:%u/0", servers[SRV_MAIN].port);
    assert_string_equal(evredis_url(r), want_url);
    struct result set = {0}, get = {0};
    assert_int_equal(evredis_command(r, on_reply, &set, "SET %s %s", "evredis:k", "v1"), 0);
    const char *argv[] = {"GET", "evredis:k"};
    assert_int_equal(evredis_command_argv(r, on_reply, &get, 2, argv, NULL), 0);
    assert_int_equal(set.calls + get.calls, 0); /* never called back from inside */
    assert_true(run_until_calls(loop, &get.calls, 1, DEADLINE_MS));
    assert_int_equal(set.calls, 1);
    assert_int_equal(set.err, 0);
    assert_int_equal(set.type, REDIS_REPLY_STATUS);
    assert_string_equal(set.str, "OK");
    assert_int_equal(get.err, 0);
    assert_int_equal(get.type, REDIS_REPLY_STRING);
    assert_string_equal(get.str, "v1");
    assert_true(evredis_is_connected(r));
    /* An error reply is a reply, not a failure. */
    struct result bad = {0};
    assert_int_equal(evredis_command(r, on_reply, &bad, "NOSUCHCOMMAND"), 0);
    assert_true(run_until_calls(loop, &bad.calls, 1, DEADLINE_MS));
    assert_int_equal(bad.err, 0);
    assert_int_equal(bad.type, REDIS_REPLY_ERROR);
    struct evredis_stats st = stats_of(r);
    assert_int_equal(st.commands, 3);
    assert_int_equal(st.replies, 3);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.connects_ok, 1);
    evredis_free(r);
    evloop_free(loop);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    char err[128] = "";
    assert_null(evredis_new(loop, "http://127.0.0.1:1", 0, 0, err));
    assert_true(err[0] != '\0');
    assert_null(evredis_new(NULL, "redis://127.0.0.1:1", 0, 0, err));
    struct evredis *r = evredis_at(loop, &servers[SRV_MAIN], "", "", 1000);
    struct result res = {0};
    assert_int_equal(evredis_command(r, on_reply, &res, "GET %q"), SL_EINVAL);
    assert_int_equal(evredis_command(r, NULL, &res, "PING"), SL_EINVAL);
    const char *argv[] = {"PING"};
    assert_int_equal(evredis_command_argv(r, on_reply, &res, 0, argv, NULL), SL_EINVAL);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(res.calls, 0);
    evredis_free(r);
    evloop_free(loop);
}

#define PIPELINED 1000

struct pipeline {
    int n;
    int order[PIPELINED];
    long long value[PIPELINED];
    int errors;
};

struct pipe_item {
    struct pipeline *p;
    int index;
};

static void on_pipelined(const redisReply *reply, int err, void *arg)
{
    struct pipe_item *it = arg;
    struct pipeline *p = it->p;
    if (err != 0 || reply->type != REDIS_REPLY_INTEGER)
        p->errors++;
    p->order[p->n] = it->index;
    p->value[p->n++] = reply ? reply->integer : -1;
}

static void test_pipelined_in_order(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct evredis *r = evredis_at(loop, &servers[SRV_MAIN], "", "", 2000);
    struct result del = {0};
    assert_int_equal(evredis_command(r, on_reply, &del, "DEL evredis:counter"), 0);
    assert_true(run_until_calls(loop, &del.calls, 1, DEADLINE_MS));
    static struct pipeline p;
    static struct pipe_item items[PIPELINED];
    memset(&p, 0, sizeof(p));
    struct evloop_stats before;
    evloop_get_stats(loop, &before);
    for (int i = 0; i < PIPELINED; i++) {
        items[i] = (struct pipe_item){&p, i};
        assert_int_equal(evredis_command(r, on_pipelined, &items[i], "INCR evredis:counter"), 0);
    }
    assert_true(run_until_calls(loop, &p.n, PIPELINED, DEADLINE_MS));
    assert_int_equal(p.errors, 0);
    for (int i = 0; i < PIPELINED; i++) {
        assert_int_equal(p.order[i], i);
        assert_int_equal(p.value[i], i + 1);
    }
    struct evloop_stats after;
    evloop_get_stats(loop, &after);
    assert_int_equal(after.epoll_ctl, before.epoll_ctl); /* batched write, no EPOLLOUT dance */
    evredis_free(r);
    evloop_free(loop);
}

/* Request/reply one at a time on an established connection: no epoll_ctl at all. */
static void test_steady_state_costs_no_epoll_ctl(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct evredis *r = evredis_at(loop, &servers[SRV_MAIN], "", "", 1000);
    struct result res = {0};
    assert_int_equal(evredis_command(r, on_reply, &res, "PING"), 0);
    assert_true(run_until_calls(loop, &res.calls, 1, DEADLINE_MS));
    struct evloop_stats before;
    evloop_get_stats(loop, &before);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(evredis_command(r, on_reply, &res, "PING"), 0);
        assert_true(run_until_calls(loop, &res.calls, i + 2, DEADLINE_MS));
        assert_int_equal(res.err, 0);
    }
    struct evloop_stats after;
    evloop_get_stats(loop, &after);
    assert_int_equal(after.epoll_ctl, before.epoll_ctl);
    evredis_free(r);
    evloop_free(loop);
}

/* A failure callback that retries at once, from inside the teardown of its connection:
 * the retry must not go to the dying connection nor be answered re-entrantly. */
struct retry_once {
    struct evredis *r;
    struct result first, retry;
    int retry_rc;
};

static void retry_from_callback(const redisReply *reply, int err, void *arg)
{
    struct retry_once *t = arg;
    on_reply(reply, err, &t->first);
    t->retry_rc = evredis_command(t->r, on_reply, &t->retry, "PING");
    assert_int_equal(t->retry.calls, 0);
}

static void test_command_timeout_then_reconnect(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct evredis *r = evredis_at(loop, &servers[SRV_MAIN], "", "", 100);
    struct result warm = {0}, slow = {0};
    struct retry_once behind = {.r = r};
    assert_int_equal(evredis_command(r, on_reply, &warm, "PING"), 0);
    assert_true(run_until_calls(loop, &warm.calls, 1, DEADLINE_MS));
    uint64_t start_ms = clock_mono_ms();
    assert_int_equal(evredis_command(r, on_reply, &slow, "DEBUG SLEEP 0.3"), 0);
    assert_int_equal(evredis_command(r, retry_from_callback, &behind, "PING"), 0);
    assert_true(run_until_calls(loop, &slow.calls, 1, DEADLINE_MS));
    uint64_t took_ms = clock_mono_ms() - start_ms;
    assert_true(took_ms >= 99); /* ms granularity of the loop's cached clock */
    assert_true(took_ms < 300);
    assert_int_equal(slow.err, SL_ETIMEOUT);
    assert_int_equal(slow.type, -1);
    assert_int_equal(behind.first.calls, 1); /* dropped with the connection */
    assert_int_equal(behind.first.err, SL_ECONNECT);
    assert_false(evredis_is_connected(r));
    /* The retry issued inside that callback fails fast (back-off), one iteration later. */
    assert_int_equal(behind.retry_rc, 0);
    assert_true(run_until_calls(loop, &behind.retry.calls, 1, DEADLINE_MS));
    assert_int_equal(behind.retry.err, SL_ECONNECT);
    /* Once Redis has woken up, commands succeed again on a new connection... */
    assert_true(poll_until_pong(loop, r, DEADLINE_MS));
    assert_true(evredis_is_connected(r));
    /* ...and the late DEBUG SLEEP reply never reached anyone. */
    assert_int_equal(slow.calls, 1);
    assert_int_equal(behind.first.calls, 1);
    assert_int_equal(behind.retry.calls, 1);
    struct evredis_stats st = stats_of(r);
    assert_true(st.timeouts >= 1); /* polling PINGs may time out too while Redis sleeps */
    assert_true(st.connects >= 2);
    evredis_free(r);
    evloop_free(loop);
}

static void test_down_fails_fast_then_recovers(void **state)
{
    (void)state;
    struct redis_fixture *s = &servers[SRV_RESTART];
    struct evloop *loop = evloop_new();
    struct evredis *r = evredis_at(loop, s, "", "", 1000);
    assert_true(poll_until_pong(loop, r, DEADLINE_MS));
    redis_fixture_stop(s);
    /* The first command after the outage learns of it; then back-off: fail fast, with
     * no dialling per command. */
    struct result res = {0};
    assert_int_equal(evredis_command(r, on_reply, &res, "PING"), 0);
    assert_true(run_until_calls(loop, &res.calls, 1, DEADLINE_MS));
    assert_int_equal(res.err, SL_ECONNECT);
    uint64_t connects = stats_of(r).connects;
    uint64_t start_ms = clock_mono_ms();
    for (int i = 0; i < 50; i++) {
        assert_int_equal(evredis_command(r, on_reply, &res, "PING"), 0);
        assert_int_equal(res.calls, i + 1); /* never re-entrantly */
        assert_true(run_until_calls(loop, &res.calls, i + 2, DEADLINE_MS));
        assert_int_equal(res.err, SL_ECONNECT);
    }
    assert_true(clock_mono_ms() - start_ms < 1000);
    assert_true(stats_of(r).connects - connects <= 2);
    assert_false(evredis_is_connected(r));
    /* Restarted on the same port: commands succeed again once the back-off allows. */
    assert_int_equal(redis_fixture_start(s), SL_OK);
    assert_true(poll_until_pong(loop, r, DEADLINE_MS + EVREDIS_BACKOFF_MAX_MS));
    assert_true(evredis_is_connected(r));
    evredis_free(r);
    evloop_free(loop);
}

static void test_free_with_pending_calls_back(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    /* Outstanding on a connection that is still connecting. */
    struct evredis *r = evredis_at(loop, &servers[SRV_MAIN], "", "", 1000);
    struct result a = {0}, b = {0};
    assert_int_equal(evredis_command(r, on_reply, &a, "PING"), 0);
    assert_int_equal(evredis_command(r, on_reply, &b, "GET %s", "x"), 0);
    evredis_free(r);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, SL_EGONE);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.err, SL_EGONE);
    /* Queued to fail fast: a port nobody listens on, so in back-off after one try. */
    char url[64];
    uint16_t nobody = redis_fixture_free_port();
    assert_int_not_equal(nobody, 0);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", nobody);
    r = evredis_new(loop, url, 200, 200, NULL);
    assert_non_null(r);
    struct result c = {0};
    assert_int_equal(evredis_command(r, on_reply, &c, "PING"), 0);
    assert_true(run_until_calls(loop, &c.calls, 1, DEADLINE_MS));
    assert_int_equal(c.err, SL_ECONNECT);
    assert_int_equal(evredis_command(r, on_reply, &c, "PING"), 0);
    assert_int_equal(c.calls, 1);
    evredis_free(r);
    assert_int_equal(c.calls, 2);
    assert_int_equal(c.err, SL_EGONE);
    /* Nothing is left behind on the loop. */
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(a.calls + b.calls + c.calls, 4);
    evloop_free(loop);
}

/* A callback that frees the evredis while more replies are in flight on the connection. */
struct free_inside {
    struct evredis *r;
    struct result first;
    struct result rest[3];
    int rest_errors_at_free;
};

static void free_from_callback(const redisReply *reply, int err, void *arg)
{
    struct free_inside *f = arg;
    on_reply(reply, err, &f->first);
    evredis_free(f->r);
    for (int i = 0; i < 3; i++)
        f->rest_errors_at_free += f->rest[i].calls; /* answered inside evredis_free */
}

static void test_free_from_inside_callback(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    static struct free_inside f;
    memset(&f, 0, sizeof(f));
    f.r = evredis_at(loop, &servers[SRV_MAIN], "", "", 1000);
    assert_int_equal(evredis_command(f.r, free_from_callback, &f, "PING"), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(evredis_command(f.r, on_reply, &f.rest[i], "PING"), 0);
    assert_true(run_until_calls(loop, &f.first.calls, 1, DEADLINE_MS));
    assert_int_equal(f.first.err, 0);
    assert_int_equal(f.rest_errors_at_free, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f.rest[i].calls, 1);
        assert_int_equal(f.rest[i].err, SL_EGONE);
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(f.first.calls, 1);
    evloop_free(loop);
}

static void test_auth_and_db_from_url(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    const struct redis_fixture *s = &servers[SRV_AUTH];
    struct evredis *r = evredis_at(loop, s, ":" AUTH_PASSWORD "@", "/2", 1000);
    assert_null(strstr(evredis_url(r), "cret"));
    struct result set = {0}, info = {0};
    assert_int_equal(evredis_command(r, on_reply, &set, "SET evredis:auth yes"), 0);
    assert_int_equal(evredis_command(r, on_reply, &info, "CLIENT INFO"), 0);
    assert_true(run_until_calls(loop, &info.calls, 1, DEADLINE_MS));
    assert_int_equal(set.err, 0);
    assert_string_equal(set.str, "OK");
    assert_int_equal(info.err, 0);
    assert_non_null(strstr(info.str, " db=2 "));
    assert_true(evredis_is_connected(r));
    evredis_free(r);

    /* Wrong password: the commands behind AUTH fail with SL_EAUTH; never connected. */
    r = evredis_at(loop, s, ":wrong@", "", 1000);
    struct result res = {0};
    assert_int_equal(evredis_command(r, on_reply, &res, "PING"), 0);
    assert_true(run_until_calls(loop, &res.calls, 1, DEADLINE_MS));
    assert_int_equal(res.err, SL_EAUTH);
    assert_false(evredis_is_connected(r));
    assert_int_equal(stats_of(r).connects_ok, 0);
    evredis_free(r);

    /* No password: Redis answers NOAUTH, which is a reply. */
    r = evredis_at(loop, s, "", "", 1000);
    assert_int_equal(evredis_command(r, on_reply, &res, "PING"), 0);
    assert_true(run_until_calls(loop, &res.calls, 2, DEADLINE_MS));
    assert_int_equal(res.err, 0);
    assert_int_equal(res.type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(res.str, "NOAUTH"));
    evredis_free(r);
    evloop_free(loop);
}

static void test_unix_socket_url(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    char url[200];
    snprintf(url, sizeof(url), "unix://%s?db=1", servers[SRV_MAIN].sock);
    struct evredis *r = evredis_new(loop, url, 0, 0, NULL);
    assert_non_null(r);
    struct result info = {0};
    assert_int_equal(evredis_command(r, on_reply, &info, "CLIENT INFO"), 0);
    assert_true(run_until_calls(loop, &info.calls, 1, DEADLINE_MS));
    assert_int_equal(info.err, 0);
    assert_non_null(strstr(info.str, " db=1 "));
    evredis_free(r);
    evloop_free(loop);
}

/* A listener that never accepts: TCP connects (the kernel completes the handshake), AUTH
 * is never answered, and the connect timeout fails the queued command. */
static void test_connect_timeout(void **state)
{
    (void)state;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 8), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    char url[96];
    snprintf(url, sizeof(url), "redis://:pw@127.0.0.1:%u", ntohs(a.sin_port));
    struct evloop *loop = evloop_new();
    struct evredis *r = evredis_new(loop, url, 100, 5000, NULL);
    assert_non_null(r);
    struct result res = {0};
    uint64_t start_ms = clock_mono_ms();
    assert_int_equal(evredis_command(r, on_reply, &res, "PING"), 0);
    assert_true(run_until_calls(loop, &res.calls, 1, DEADLINE_MS));
    uint64_t took_ms = clock_mono_ms() - start_ms;
    assert_int_equal(res.err, SL_ECONNECT);
    assert_true(took_ms >= 90 && took_ms < 1000);
    /* In back-off now: the next command fails fast without dialling. */
    uint64_t connects = stats_of(r).connects;
    assert_int_equal(evredis_command(r, on_reply, &res, "PING"), 0);
    assert_true(run_until_calls(loop, &res.calls, 2, DEADLINE_MS));
    assert_int_equal(res.err, SL_ECONNECT);
    assert_int_equal(stats_of(r).connects, connects);
    evredis_free(r);
    evloop_free(loop);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_pipelined_in_order),
        cmocka_unit_test(test_steady_state_costs_no_epoll_ctl),
        cmocka_unit_test(test_command_timeout_then_reconnect),
        cmocka_unit_test(test_down_fails_fast_then_recovers),
        cmocka_unit_test(test_free_with_pending_calls_back),
        cmocka_unit_test(test_free_from_inside_callback),
        cmocka_unit_test(test_auth_and_db_from_url),
        cmocka_unit_test(test_unix_socket_url),
        cmocka_unit_test(test_connect_timeout),
    };
    return cmocka_run_group_tests(tests, group_setup, redis_fixture_teardown);
}
