/*
 * test_evloop_curl — libcurl multi on an evloop, against a tiny HTTP/1.1 responder that
 * runs on the same loop on a free loopback port (so a hung request is easy to make).
 * Every wait runs the loop until a condition or a deadline; nothing sleeps a fixed time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "evloop.h"
#include "evloop_curl.h"

#define DEADLINE_MS 5000

/* --- a minimal HTTP responder on the loop ------------------------------------------ */

#define MINI_CONNS 64

struct mini_conn;

struct mini_server {
    int lfd;
    uint16_t port;
    int accepts;
    int requests;
    struct mini_conn *conns[MINI_CONNS];
};

struct mini_conn {
    struct mini_server *srv;
    int slot;
    int fd;
    size_t len;
    char buf[4096];
};

static void mini_conn_close(struct evloop *loop, struct mini_conn *c)
{
    c->srv->conns[c->slot] = NULL;
    evloop_watch_del(loop, c->fd);
    close(c->fd);
    free(c);
}

/* Answer every complete request in the buffer; "/hang" never gets an answer. */
static bool mini_answer(struct mini_conn *c)
{
    char *end;
    while ((end = strstr(c->buf, "\r\n\r\n")) != NULL) {
        char path[256] = "";
        sscanf(c->buf, "GET %255s", path);
        size_t used = (size_t)(end + 4 - c->buf);
        memmove(c->buf, end + 4, c->len - used + 1);
        c->len -= used;
        c->srv->requests++;
        if (strcmp(path, "/hang") == 0)
            continue;
        char resp[512];
        int n = snprintf(resp, sizeof(resp),
                         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                         "\r\nhello %s",
                         strlen("hello ") + strlen(path), path);
        if (write(c->fd, resp, (size_t)n) != n)
            return false;
    }
    return true;
}

static void mini_conn_io(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct mini_conn *c = arg;
    ssize_t n = read(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        mini_conn_close(loop, c);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (!mini_answer(c) || c->len == sizeof(c->buf) - 1)
        mini_conn_close(loop, c);
}

static void mini_accept(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct mini_server *srv = arg;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return;
    int slot = 0;
    while (slot < MINI_CONNS && srv->conns[slot])
        slot++;
    struct mini_conn *c = slot < MINI_CONNS ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        close(cfd);
        return;
    }
    *c = (struct mini_conn){.srv = srv, .slot = slot, .fd = cfd};
    srv->conns[slot] = c;
    srv->accepts++;
    assert_int_equal(evloop_watch_add(loop, cfd, EV_READ, mini_conn_io, c), 0);
}

static void mini_start(struct evloop *loop, struct mini_server *srv)
{
    memset(srv, 0, sizeof(*srv));
    srv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(srv->lfd >= 0);
    assert_int_equal(bind(srv->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(srv->lfd, 64), 0);
    assert_int_equal(getsockname(srv->lfd, (struct sockaddr *)&a, &len), 0);
    srv->port = ntohs(a.sin_port);
    assert_int_equal(evloop_watch_add(loop, srv->lfd, EV_READ, mini_accept, srv), 0);
}

static void mini_stop(struct evloop *loop, struct mini_server *srv)
{
    for (int i = 0; i < MINI_CONNS; i++)
        if (srv->conns[i])
            mini_conn_close(loop, srv->conns[i]);
    evloop_watch_del(loop, srv->lfd);
    close(srv->lfd);
}

/* --- helpers ------------------------------------------------------------------------ */

struct fetch {
    CURL *easy;
    char body[256];
    size_t body_len;
    int calls;
    CURLcode result;
    long status;
    bool called_inside_add;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct fetch *f = userdata;
    size_t n = size * nmemb;
    size_t room = sizeof(f->body) - 1 - f->body_len;
    size_t take = n < room ? n : room;
    memcpy(f->body + f->body_len, ptr, take);
    f->body_len += take;
    f->body[f->body_len] = '\0';
    return n;
}

static void fetch_init(struct fetch *f, uint16_t port, const char *path, long timeout_ms)
{
    memset(f, 0, sizeof(*f));
    f->easy = curl_easy_init();
    assert_non_null(f->easy);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    curl_easy_setopt(f->easy, CURLOPT_URL, url);
    curl_easy_setopt(f->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(f->easy, CURLOPT_WRITEDATA, (void *)f);
    curl_easy_setopt(f->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(f->easy, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
}

static void on_done(CURL *easy, CURLcode result, void *arg)
{
    struct fetch *f = arg;
    assert_ptr_equal(easy, f->easy);
    f->calls++;
    f->result = result;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &f->status);
}

static bool run_until(struct evloop *loop, const int *calls, int want)
{
    uint64_t end = clock_mono_ms() + DEADLINE_MS;
    while (*calls < want) {
        if (clock_mono_ms() > end)
            return false;
        assert_int_equal(evloop_run_once(loop, 10), 0);
    }
    return true;
}

/* --- tests -------------------------------------------------------------------------- */

static void test_single_get(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct mini_server srv;
    mini_start(loop, &srv);
    struct evcurl *ec = evcurl_new(loop, NULL);
    assert_non_null(ec);
    struct fetch f;
    fetch_init(&f, srv.port, "/a", 2000);
    assert_int_equal(evcurl_add(ec, f.easy, on_done, &f), 0);
    assert_int_equal(f.calls, 0); /* never from inside evcurl_add */
    assert_int_equal(evcurl_running(ec), 1);
    assert_int_equal(evcurl_add(ec, f.easy, on_done, &f), SL_EINVAL); /* already added */
    assert_true(run_until(loop, &f.calls, 1));
    assert_int_equal(f.result, CURLE_OK);
    assert_int_equal(f.status, 200);
    assert_string_equal(f.body, "hello /a");
    assert_int_equal(evcurl_running(ec), 0);
    struct evcurl_stats st;
    evcurl_get_stats(ec, &st);
    assert_int_equal(st.added, 1);
    assert_int_equal(st.completed, 1);
    evcurl_free(ec);
    curl_easy_cleanup(f.easy);
    mini_stop(loop, &srv);
    evloop_free(loop);
}

#define PARALLEL 20

static void test_parallel_transfers(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct mini_server srv;
    mini_start(loop, &srv);
    struct evcurl *ec = evcurl_new(loop, NULL);
    static struct fetch f[PARALLEL];
    int done = 0;
    for (int i = 0; i < PARALLEL; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/p%d", i);
        fetch_init(&f[i], srv.port, path, 2000);
        assert_int_equal(evcurl_add(ec, f[i].easy, on_done, &f[i]), 0);
    }
    uint64_t end = clock_mono_ms() + DEADLINE_MS;
    while (done < PARALLEL && clock_mono_ms() <= end) {
        assert_int_equal(evloop_run_once(loop, 10), 0);
        done = 0;
        for (int i = 0; i < PARALLEL; i++)
            done += f[i].calls;
    }
    assert_int_equal(done, PARALLEL);
    for (int i = 0; i < PARALLEL; i++) {
        char want[32];
        snprintf(want, sizeof(want), "hello /p%d", i);
        assert_int_equal(f[i].result, CURLE_OK);
        assert_string_equal(f[i].body, want);
        curl_easy_cleanup(f[i].easy);
    }
    assert_true(srv.accepts > 1); /* they really ran side by side */
    evcurl_free(ec);
    mini_stop(loop, &srv);
    evloop_free(loop);
}

/* Re-adding the handle from its own done callback reuses the kept-alive connection. */
struct chain {
    struct evcurl *ec;
    struct fetch f;
    int rounds;
};

static void chain_done(CURL *easy, CURLcode result, void *arg)
{
    struct chain *c = arg;
    on_done(easy, result, &c->f);
    if (result == CURLE_OK && ++c->rounds < 5) {
        c->f.body_len = 0;
        assert_int_equal(evcurl_add(c->ec, easy, chain_done, c), 0);
    }
}

static void test_readd_from_callback_keeps_alive(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct mini_server srv;
    mini_start(loop, &srv);
    struct chain c = {.ec = evcurl_new(loop, NULL)};
    fetch_init(&c.f, srv.port, "/k", 2000);
    assert_int_equal(evcurl_add(c.ec, c.f.easy, chain_done, &c), 0);
    assert_true(run_until(loop, &c.f.calls, 5));
    assert_int_equal(c.rounds, 5);
    assert_int_equal(c.f.result, CURLE_OK);
    assert_int_equal(srv.requests, 5);
    assert_int_equal(srv.accepts, 1);
    evcurl_free(c.ec);
    curl_easy_cleanup(c.f.easy);
    mini_stop(loop, &srv);
    evloop_free(loop);
}

static void test_timeout_and_refused(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct mini_server srv;
    mini_start(loop, &srv);
    struct evcurl *ec = evcurl_new(loop, NULL);
    struct fetch hang, refused;
    fetch_init(&hang, srv.port, "/hang", 100);
    /* a port nobody listens on: the closed listener of a second server */
    struct mini_server gone;
    mini_start(loop, &gone);
    mini_stop(loop, &gone);
    fetch_init(&refused, gone.port, "/", 2000);
    uint64_t start_ms = clock_mono_ms();
    assert_int_equal(evcurl_add(ec, hang.easy, on_done, &hang), 0);
    assert_int_equal(evcurl_add(ec, refused.easy, on_done, &refused), 0);
    assert_true(run_until(loop, &hang.calls, 1));
    assert_true(run_until(loop, &refused.calls, 1));
    uint64_t took_ms = clock_mono_ms() - start_ms;
    assert_int_equal(hang.result, CURLE_OPERATION_TIMEDOUT);
    assert_true(took_ms >= 100 && took_ms < 2000);
    assert_int_equal(refused.result, CURLE_COULDNT_CONNECT);
    struct evcurl_stats st;
    evcurl_get_stats(ec, &st);
    assert_int_equal(st.failed, 2);
    evcurl_free(ec);
    curl_easy_cleanup(hang.easy);
    curl_easy_cleanup(refused.easy);
    mini_stop(loop, &srv);
    evloop_free(loop);
}

static void test_remove_and_free_with_pending(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct mini_server srv;
    mini_start(loop, &srv);
    struct evcurl *ec = evcurl_new(loop, NULL);
    struct fetch a, b;
    fetch_init(&a, srv.port, "/hang", 5000);
    fetch_init(&b, srv.port, "/hang", 5000);
    assert_int_equal(evcurl_add(ec, a.easy, on_done, &a), 0);
    assert_int_equal(evcurl_add(ec, b.easy, on_done, &b), 0);
    assert_true(run_until(loop, &srv.requests, 2)); /* both are waiting for an answer */
    assert_int_equal(evcurl_remove(ec, a.easy), 0);
    assert_int_equal(evcurl_remove(ec, a.easy), SL_ENOTFOUND);
    assert_int_equal(evcurl_running(ec), 1);
    evcurl_free(ec);
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.result, CURLE_ABORTED_BY_CALLBACK);
    /* The loop carries on without curl's sockets. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(a.calls + b.calls, 1);
    curl_easy_cleanup(a.easy);
    curl_easy_cleanup(b.easy);
    mini_stop(loop, &srv);
    evloop_free(loop);
}

struct free_inside {
    struct evcurl *ec;
    struct fetch fast, slow;
};

static void free_from_done(CURL *easy, CURLcode result, void *arg)
{
    struct free_inside *t = arg;
    on_done(easy, result, &t->fast);
    evcurl_free(t->ec);
    assert_int_equal(t->slow.calls, 1); /* answered inside evcurl_free */
}

static void test_free_from_done_callback(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct mini_server srv;
    mini_start(loop, &srv);
    static struct free_inside t;
    memset(&t, 0, sizeof(t));
    t.ec = evcurl_new(loop, NULL);
    fetch_init(&t.fast, srv.port, "/f", 2000);
    fetch_init(&t.slow, srv.port, "/hang", 5000);
    assert_int_equal(evcurl_add(t.ec, t.slow.easy, on_done, &t.slow), 0);
    assert_int_equal(evcurl_add(t.ec, t.fast.easy, free_from_done, &t), 0);
    assert_true(run_until(loop, &t.fast.calls, 1));
    assert_int_equal(t.fast.result, CURLE_OK);
    assert_int_equal(t.slow.result, CURLE_ABORTED_BY_CALLBACK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(evloop_run_once(loop, 0), 0);
    curl_easy_cleanup(t.fast.easy);
    curl_easy_cleanup(t.slow.easy);
    mini_stop(loop, &srv);
    evloop_free(loop);
}

static int group_setup(void **state)
{
    (void)state;
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_get),
        cmocka_unit_test(test_parallel_transfers),
        cmocka_unit_test(test_readd_from_callback_keeps_alive),
        cmocka_unit_test(test_timeout_and_refused),
        cmocka_unit_test(test_remove_and_free_with_pending),
        cmocka_unit_test(test_free_from_done_callback),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
