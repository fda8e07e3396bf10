/*
 * test_evloop — the event loop with real fds (pipes, socketpairs) and, for timers, the
 * fake clock of clock.h driven through evloop_run_once(loop, 0). Tests that block in
 * epoll_wait use the real clock and bound themselves with a watchdog timer; nothing
 * sleeps a fixed time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "evloop.h"

#define FAKE_START_NS (1000u * 1000000u) /* fake monotonic clock starts at 1000 ms */
#define WATCHDOG_MS   5000

static int teardown_clock(void **state)
{
    (void)state;
    clock_fake_clear();
    return 0;
}

static void make_pipe(int fds[2])
{
    assert_int_equal(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
}

static void put_byte(int fd)
{
    assert_int_equal(write(fd, "x", 1), 1);
}

static struct evloop_stats stats_of(const struct evloop *loop)
{
    struct evloop_stats s;
    evloop_get_stats(loop, &s);
    return s;
}

/* --- fd watches -------------------------------------------------------------------- */

struct io_rec {
    int calls;
    int fd;
    unsigned events;
};

static void io_record(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)loop;
    struct io_rec *r = arg;
    r->calls++;
    r->fd = fd;
    r->events = events;
}

static void test_new_free_idle(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    assert_non_null(loop);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(stats_of(loop).iterations, 1);
    assert_int_equal(stats_of(loop).io_calls, 0);
    evloop_free(loop);
    evloop_free(NULL);
}

static void test_pipe_read_event(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    int p[2];
    make_pipe(p);
    struct io_rec rec = {0};
    assert_int_equal(evloop_watch_add(loop, p[0], EV_READ, io_record, &rec), 0);
    assert_int_equal(evloop_watch_events(loop, p[0]), EV_READ);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.calls, 0);
    put_byte(p[1]);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.fd, p[0]);
    assert_int_equal(rec.events, EV_READ);
    /* Level-triggered: the unread byte is reported again. */
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.calls, 2);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.calls, 2);
    assert_int_equal(evloop_watch_del(loop, p[0]), 0);
    evloop_free(loop);
    close(p[0]);
    close(p[1]);
}

static void test_socketpair_write_modify_remove(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct io_rec rec = {0};
    assert_int_equal(evloop_watch_add(loop, sv[0], EV_READ, io_record, &rec), 0);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.calls, 0);
    assert_int_equal(evloop_watch_mod(loop, sv[0], EV_READ | EV_WRITE), 0);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.events, EV_WRITE);
    put_byte(sv[1]);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.calls, 2);
    assert_int_equal(rec.events, EV_READ | EV_WRITE);
    assert_int_equal(evloop_watch_mod(loop, sv[0], EV_WRITE), 0);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.events, EV_WRITE);
    assert_int_equal(evloop_watch_del(loop, sv[0]), 0);
    assert_int_equal(evloop_watch_events(loop, sv[0]), 0);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.calls, 3);
    assert_int_equal(evloop_watch_del(loop, sv[0]), SL_ENOTFOUND);
    evloop_free(loop);
    close(sv[0]);
    close(sv[1]);
}

/* epoll_ctl only when a non-zero interest differs from what the kernel has. */
static void test_no_redundant_epoll_ctl(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    struct io_rec rec = {0};
    uint64_t base = stats_of(loop).epoll_ctl;
    assert_int_equal(evloop_watch_add(loop, sv[0], 0, io_record, &rec), 0);
    assert_int_equal(stats_of(loop).epoll_ctl, base); /* no interest: not registered yet */
    assert_int_equal(evloop_watch_mod(loop, sv[0], EV_READ), 0);
    assert_int_equal(stats_of(loop).epoll_ctl, base + 1); /* ADD */
    assert_int_equal(evloop_watch_mod(loop, sv[0], EV_READ), 0);
    assert_int_equal(stats_of(loop).epoll_ctl, base + 1);
    assert_int_equal(evloop_watch_mod(loop, sv[0], EV_READ | EV_WRITE), 0);
    assert_int_equal(stats_of(loop).epoll_ctl, base + 2); /* MOD */
    assert_int_equal(evloop_watch_mod(loop, sv[0], 0), 0);
    assert_int_equal(evloop_watch_mod(loop, sv[0], EV_READ | EV_WRITE), 0);
    assert_int_equal(stats_of(loop).epoll_ctl, base + 2); /* 0 is lazy: kernel unchanged */
    /* A lazily dropped interest: the writable event is not delivered, and unregisters. */
    assert_int_equal(evloop_watch_mod(loop, sv[0], 0), 0);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.calls, 0);
    assert_int_equal(stats_of(loop).epoll_ctl, base + 3); /* DEL */
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(stats_of(loop).epoll_ctl, base + 3);
    assert_int_equal(evloop_watch_mod(loop, sv[0], EV_WRITE), 0);
    assert_int_equal(stats_of(loop).epoll_ctl, base + 4); /* ADD again */
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(evloop_watch_del(loop, sv[0]), 0);
    assert_int_equal(stats_of(loop).epoll_ctl, base + 5);
    evloop_free(loop);
    close(sv[0]);
    close(sv[1]);
}

static void test_watch_errors(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    int p[2];
    make_pipe(p);
    struct io_rec rec = {0};
    assert_int_equal(evloop_watch_add(loop, -1, EV_READ, io_record, &rec), SL_EINVAL);
    assert_int_equal(evloop_watch_add(loop, p[0], 0x8, io_record, &rec), SL_EINVAL);
    assert_int_equal(evloop_watch_add(loop, p[0], EV_READ, NULL, &rec), SL_EINVAL);
    assert_int_equal(evloop_watch_add(loop, EVLOOP_FD_MAX, EV_READ, io_record, &rec), SL_ERANGE);
    assert_int_equal(evloop_watch_mod(loop, p[0], EV_READ), SL_ENOTFOUND);
    assert_int_equal(evloop_watch_del(loop, p[0]), SL_ENOTFOUND);
    assert_int_equal(evloop_watch_add(loop, p[0], EV_READ, io_record, &rec), 0);
    assert_int_equal(evloop_watch_add(loop, p[0], EV_READ, io_record, &rec), SL_EEXISTS);
    assert_int_equal(evloop_watch_mod(loop, p[0], EV_ERROR), SL_EINVAL);
    assert_int_equal(evloop_watch_events(loop, p[0]), EV_READ);
    /* epoll refuses regular files; nothing stays registered. */
    char path[] = "/tmp/sluice-evloop-XXXXXX";
    int reg = mkstemp(path);
    assert_true(reg >= 0);
    unlink(path);
    assert_int_equal(evloop_watch_add(loop, reg, EV_READ, io_record, &rec), SL_EINVAL);
    assert_int_equal(evloop_watch_events(loop, reg), 0);
    assert_int_equal(evloop_watch_del(loop, reg), SL_ENOTFOUND);
    close(reg);
    assert_int_equal(evloop_watch_del(loop, p[0]), 0);
    evloop_free(loop);
    close(p[0]);
    close(p[1]);
}

static void test_hangup_delivers_error(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    int p[2];
    make_pipe(p);
    struct io_rec rec = {0};
    assert_int_equal(evloop_watch_add(loop, p[0], EV_READ, io_record, &rec), 0);
    close(p[1]);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.events, EV_READ | EV_ERROR);
    char c;
    assert_int_equal(read(p[0], &c, 1), 0); /* EOF */
    /* Nobody interested: the hang-up is not delivered and cannot spin the loop. */
    assert_int_equal(evloop_watch_mod(loop, p[0], 0), 0);
    uint64_t ctl = stats_of(loop).epoll_ctl;
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(stats_of(loop).epoll_ctl, ctl + 1);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(stats_of(loop).epoll_ctl, ctl + 1);
    assert_int_equal(evloop_watch_del(loop, p[0]), 0);
    evloop_free(loop);
    close(p[0]);
}

/* Two readable pipes come back in one epoll batch; whichever callback runs first removes
 * the other watch, closes that fd and watches a new pipe that reuses the fd number. The
 * stale event must reach neither the removed watch nor the new one. */
struct batch_case {
    int a[2], b[2], fresh[2];
    int calls;
    int first_fd;
    struct io_rec fresh_rec;
};

static void batch_remove_other(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct batch_case *c = arg;
    if (c->calls++ > 0)
        return;
    c->first_fd = fd;
    int *other = fd == c->a[0] ? c->b : c->a;
    int reused = other[0];
    assert_int_equal(evloop_watch_del(loop, other[0]), 0);
    close(other[0]);
    make_pipe(c->fresh);
    assert_int_equal(c->fresh[0], reused); /* lowest free number: the one just closed */
    assert_int_equal(evloop_watch_add(loop, c->fresh[0], EV_READ, io_record, &c->fresh_rec), 0);
    other[0] = -1;
}

static void test_remove_other_fd_in_same_batch(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct batch_case c = {.calls = 0};
    make_pipe(c.a);
    make_pipe(c.b);
    /* Control: without removal both events come back in one iteration. */
    struct io_rec ra = {0}, rb = {0};
    assert_int_equal(evloop_watch_add(loop, c.a[0], EV_READ, io_record, &ra), 0);
    assert_int_equal(evloop_watch_add(loop, c.b[0], EV_READ, io_record, &rb), 0);
    put_byte(c.a[1]);
    put_byte(c.b[1]);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(ra.calls + rb.calls, 2);
    assert_int_equal(evloop_watch_del(loop, c.a[0]), 0);
    assert_int_equal(evloop_watch_del(loop, c.b[0]), 0);

    assert_int_equal(evloop_watch_add(loop, c.a[0], EV_READ, batch_remove_other, &c), 0);
    assert_int_equal(evloop_watch_add(loop, c.b[0], EV_READ, batch_remove_other, &c), 0);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.fresh_rec.calls, 0);
    put_byte(c.fresh[1]);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(c.fresh_rec.calls, 1);
    assert_int_equal(c.calls, 2); /* the surviving pipe still has its byte */
    int *survivor = c.a[0] >= 0 ? c.a : c.b;
    assert_int_equal(survivor[0], c.first_fd);
    evloop_watch_del(loop, survivor[0]);
    evloop_watch_del(loop, c.fresh[0]);
    evloop_free(loop);
    int fds[] = {c.a[0], c.a[1], c.b[0], c.b[1], c.fresh[0], c.fresh[1]};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* A callback removing its own watch, then adding it again with another callback. */
struct self_case {
    int calls;
    struct io_rec next;
};

static void remove_self(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct self_case *c = arg;
    c->calls++;
    assert_int_equal(evloop_watch_del(loop, fd), 0);
    assert_int_equal(evloop_watch_add(loop, fd, EV_READ, io_record, &c->next), 0);
}

static void test_remove_self_and_readd(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    int p[2];
    make_pipe(p);
    struct self_case c = {0};
    assert_int_equal(evloop_watch_add(loop, p[0], EV_READ, remove_self, &c), 0);
    put_byte(p[1]);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.next.calls, 0);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.next.calls, 1);
    evloop_watch_del(loop, p[0]);
    evloop_free(loop);
    close(p[0]);
    close(p[1]);
}

/* --- timers (fake clock) ----------------------------------------------------------- */

#define LOG_MAX 64

struct order_log {
    int n;
    int seen[LOG_MAX];
    uint64_t now_ms[LOG_MAX];
};

struct order_item {
    struct order_log *log;
    int tag;
};

static void log_tag(struct evloop *loop, void *arg)
{
    struct order_item *it = arg;
    assert_true(it->log->n < LOG_MAX);
    it->log->now_ms[it->log->n] = evloop_now_ms(loop);
    it->log->seen[it->log->n++] = it->tag;
}

static void test_timers_fire_in_deadline_order(void **state)
{
    (void)state;
    clock_fake_set(FAKE_START_NS, 0);
    struct evloop *loop = evloop_new();
    assert_int_equal(evloop_now_ms(loop), 1000);
    struct order_log log = {0};
    const uint64_t delays[] = {30, 10, 50, 20, 40, 0};
    struct order_item items[6];
    for (int i = 0; i < 6; i++) {
        items[i] = (struct order_item){&log, (int)delays[i]};
        assert_int_equal(evloop_timer_add(loop, delays[i], 0, log_tag, &items[i], NULL), 0);
    }
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(log.n, 1); /* only the 0 ms one is due */
    clock_fake_advance_ms(19);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(log.n, 2);
    clock_fake_advance_ms(1);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(log.n, 3);
    clock_fake_advance_ms(100); /* the rest are due together: deadline order within the pass */
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(log.n, 6);
    const int want[] = {0, 10, 20, 30, 40, 50};
    for (int i = 0; i < 6; i++)
        assert_int_equal(log.seen[i], want[i]);
    assert_int_equal(log.now_ms[1], 1019);
    assert_int_equal(log.now_ms[5], 1120);
    evloop_free(loop);
}

static void test_equal_deadlines_fifo_and_reset(void **state)
{
    (void)state;
    clock_fake_set(FAKE_START_NS, 0);
    struct evloop *loop = evloop_new();
    struct order_log log = {0};
    struct order_item items[5];
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) {
        items[i] = (struct order_item){&log, i};
        assert_int_equal(evloop_timer_add(loop, 10, 0, log_tag, &items[i], &ids[i]), 0);
        assert_true(ids[i] != 0);
        assert_true(evloop_is_pending(loop, ids[i]));
    }
    /* Reset to the same deadline: it goes behind the others (re-armed last). */
    assert_int_equal(evloop_timer_reset(loop, ids[1], 10), 0);
    /* Reset to later: fires on its own. */
    assert_int_equal(evloop_timer_reset(loop, ids[3], 25), 0);
    clock_fake_advance_ms(10);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    const int want[] = {0, 2, 4, 1};
    assert_int_equal(log.n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(log.seen[i], want[i]);
    assert_false(evloop_is_pending(loop, ids[0]));
    assert_int_equal(evloop_timer_reset(loop, ids[0], 5), SL_ENOTFOUND); /* stale */
    assert_int_equal(evloop_cancel(loop, ids[0]), SL_ENOTFOUND);
    clock_fake_advance_ms(15);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(log.n, 5);
    assert_int_equal(log.seen[4], 3);
    evloop_free(loop);
}

struct repeat_case {
    struct evloop *loop;
    uint64_t id;
    int fired;
    int stop_at;
    uint64_t at_ms[8];
};

static void repeat_tick(struct evloop *loop, void *arg)
{
    struct repeat_case *c = arg;
    c->at_ms[c->fired++] = evloop_now_ms(loop);
    if (c->fired == c->stop_at)
        assert_int_equal(evloop_cancel(loop, c->id), 0); /* cancel itself */
}

static void test_repeating_timer(void **state)
{
    (void)state;
    clock_fake_set(FAKE_START_NS, 0);
    struct evloop *loop = evloop_new();
    struct repeat_case c = {.loop = loop, .stop_at = 5};
    assert_int_equal(evloop_timer_add(loop, 10, 10, repeat_tick, &c, &c.id), 0);
    clock_fake_advance_ms(10);
    evloop_run_once(loop, 0);
    clock_fake_advance_ms(10);
    evloop_run_once(loop, 0);
    assert_int_equal(c.fired, 2);
    /* Stalled for 35 ms: one call, no catch-up burst, next one interval after now. */
    clock_fake_advance_ms(35);
    evloop_run_once(loop, 0);
    evloop_run_once(loop, 0);
    assert_int_equal(c.fired, 3);
    clock_fake_advance_ms(9);
    evloop_run_once(loop, 0);
    assert_int_equal(c.fired, 3);
    clock_fake_advance_ms(1);
    evloop_run_once(loop, 0);
    assert_int_equal(c.fired, 4);
    clock_fake_advance_ms(10);
    evloop_run_once(loop, 0);
    assert_int_equal(c.fired, 5); /* cancelled itself */
    clock_fake_advance_ms(100);
    evloop_run_once(loop, 0);
    assert_int_equal(c.fired, 5);
    assert_false(evloop_is_pending(loop, c.id));
    const uint64_t want[] = {1010, 1020, 1055, 1065, 1075};
    for (int i = 0; i < 5; i++)
        assert_int_equal(c.at_ms[i], want[i]);
    evloop_free(loop);
}

struct cancel_case {
    uint64_t victim;
    int victim_calls;
    int killer_calls;
    uint64_t added;
    int added_calls;
};

static void victim_cb(struct evloop *loop, void *arg)
{
    (void)loop;
    ((struct cancel_case *)arg)->victim_calls++;
}

static void added_cb(struct evloop *loop, void *arg)
{
    (void)loop;
    ((struct cancel_case *)arg)->added_calls++;
}

static void killer_cb(struct evloop *loop, void *arg)
{
    struct cancel_case *c = arg;
    c->killer_calls++;
    assert_int_equal(evloop_cancel(loop, c->victim), 0);
    assert_int_equal(evloop_cancel(loop, c->victim), SL_ENOTFOUND);
    /* A 0 ms timer added while timers run waits for the next iteration. */
    assert_int_equal(evloop_timer_add(loop, 0, 0, added_cb, c, &c->added), 0);
}

static void test_cancel_inside_callback(void **state)
{
    (void)state;
    clock_fake_set(FAKE_START_NS, 0);
    struct evloop *loop = evloop_new();
    struct cancel_case c = {0};
    assert_int_equal(evloop_timer_add(loop, 5, 0, killer_cb, &c, NULL), 0);
    assert_int_equal(evloop_timer_add(loop, 5, 0, victim_cb, &c, &c.victim), 0);
    clock_fake_advance_ms(5);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(c.killer_calls, 1);
    assert_int_equal(c.victim_calls, 0);
    assert_int_equal(c.added_calls, 0);
    assert_true(evloop_is_pending(loop, c.added));
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(c.added_calls, 1);
    assert_int_equal(evloop_cancel(loop, 0), SL_ENOTFOUND);
    evloop_free(loop);
}

static void advance_inside(struct evloop *loop, void *arg)
{
    uint64_t *seen = arg;
    clock_fake_advance_ms(100);
    seen[0] = evloop_now_ms(loop); /* cached: unchanged */
    evloop_update_time(loop);
    seen[1] = evloop_now_ms(loop);
}

static void test_now_is_cached_per_iteration(void **state)
{
    (void)state;
    clock_fake_set(FAKE_START_NS, 0);
    struct evloop *loop = evloop_new();
    uint64_t seen[2] = {0};
    assert_int_equal(evloop_defer(loop, advance_inside, seen, NULL), 0);
    clock_fake_advance_ms(7);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(seen[0], 1007);
    assert_int_equal(seen[1], 1107);
    evloop_free(loop);
}

/* Thousands of timers, random delays, cancels and resets (fixed-seed PRNG), against a
 * sorted reference: same set, same order, none early, none more than one pass late. */
#define MANY 5000

struct many_timer {
    uint64_t id;
    uint64_t deadline_ms;
    uint64_t seq; /* the test's own count of adds and resets, mirroring the loop's */
    bool cancelled;
    int fired;
};

struct many_case {
    struct many_timer t[MANY];
    int order[MANY];
    int n;
    uint64_t prev_pass_ms;
};

static struct many_case many;

static uint64_t prng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void many_fire(struct evloop *loop, void *arg)
{
    struct many_timer *t = arg;
    assert_true(evloop_now_ms(loop) >= t->deadline_ms);
    assert_true(many.prev_pass_ms < t->deadline_ms);
    t->fired++;
    many.order[many.n++] = (int)(t - many.t);
}

static int many_cmp(const void *a, const void *b)
{
    const struct many_timer *x = &many.t[*(const int *)a], *y = &many.t[*(const int *)b];
    if (x->deadline_ms != y->deadline_ms)
        return x->deadline_ms < y->deadline_ms ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

static void many_schedule(struct evloop *loop, uint64_t *rng)
{
    uint64_t seq = 0;
    for (int i = 0; i < MANY; i++) {
        uint64_t delay = prng_next(rng) % 2000;
        many.t[i] = (struct many_timer){.deadline_ms = 1000 + delay, .seq = seq++};
        assert_int_equal(evloop_timer_add(loop, delay, 0, many_fire, &many.t[i], &many.t[i].id), 0);
    }
    for (int i = 0; i < MANY; i++) {
        uint64_t r = prng_next(rng) % 8;
        if (r < 2) {
            assert_int_equal(evloop_cancel(loop, many.t[i].id), 0);
            many.t[i].cancelled = true;
        } else if (r == 2) {
            uint64_t delay = prng_next(rng) % 2000;
            assert_int_equal(evloop_timer_reset(loop, many.t[i].id, delay), 0);
            many.t[i].deadline_ms = 1000 + delay;
            many.t[i].seq = seq++;
        }
    }
}

static void test_many_timers_match_sorted_reference(void **state)
{
    (void)state;
    clock_fake_set(FAKE_START_NS, 0);
    struct evloop *loop = evloop_new();
    memset(&many, 0, sizeof(many));
    uint64_t rng = 0x9E3779B97F4A7C15u;
    many_schedule(loop, &rng);
    many.prev_pass_ms = 999;
    while (evloop_now_ms(loop) < 3100) {
        clock_fake_advance_ms(1 + prng_next(&rng) % 40);
        assert_int_equal(evloop_run_once(loop, 0), 0);
        many.prev_pass_ms = evloop_now_ms(loop);
    }
    static int ref[MANY];
    int nref = 0;
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(many.t[i].fired, many.t[i].cancelled ? 0 : 1);
        if (!many.t[i].cancelled)
            ref[nref++] = i;
    }
    qsort(ref, (size_t)nref, sizeof(ref[0]), many_cmp);
    assert_int_equal(many.n, nref);
    assert_true(nref > MANY / 2);
    for (int i = 0; i < nref; i++)
        assert_int_equal(many.order[i], ref[i]);
    assert_int_equal(stats_of(loop).timer_calls, (uint64_t)nref);
    evloop_free(loop);
}

/* --- deferred calls ---------------------------------------------------------------- */

struct defer_case {
    struct order_log log;
    struct order_item items[5];
    uint64_t ids[5];
    int iteration; /* set by the test before each run_once */
    int ran_in[5];
};

static void defer_record(struct evloop *loop, void *arg)
{
    struct order_item *it = arg;
    log_tag(loop, it);
}

static void defer_a(struct evloop *loop, void *arg)
{
    struct defer_case *c = arg;
    c->items[0] = (struct order_item){&c->log, 0};
    log_tag(loop, &c->items[0]);
    /* Deferred from a deferred call: runs next iteration, after B (already queued). */
    c->items[3] = (struct order_item){&c->log, 3};
    assert_int_equal(evloop_defer(loop, defer_record, &c->items[3], &c->ids[3]), 0);
    assert_int_equal(evloop_cancel(loop, c->ids[2]), 0);            /* C was queued after B */
    assert_int_equal(evloop_cancel(loop, c->ids[0]), SL_ENOTFOUND); /* itself: running */
}

static void test_deferred_order_and_cancel(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct defer_case c = {0};
    c.items[1] = (struct order_item){&c.log, 1};
    c.items[2] = (struct order_item){&c.log, 2};
    assert_int_equal(evloop_defer(loop, defer_a, &c, &c.ids[0]), 0);
    assert_int_equal(evloop_defer(loop, defer_record, &c.items[1], &c.ids[1]), 0);
    assert_int_equal(evloop_defer(loop, defer_record, &c.items[2], &c.ids[2]), 0);
    assert_true(evloop_is_pending(loop, c.ids[2]));
    assert_int_equal(evloop_run_once(loop, -1), 0); /* pending deferred calls: no wait */
    assert_int_equal(c.log.n, 2);
    assert_int_equal(c.log.seen[0], 0);
    assert_int_equal(c.log.seen[1], 1);
    assert_false(evloop_is_pending(loop, c.ids[2]));
    assert_int_equal(evloop_run_once(loop, -1), 0);
    assert_int_equal(c.log.n, 3);
    assert_int_equal(c.log.seen[2], 3);
    assert_int_equal(stats_of(loop).deferred_calls, 3);
    /* A cancelled-but-not-drained slot does not leak: cancel and run again. */
    assert_int_equal(evloop_defer(loop, defer_record, &c.items[1], &c.ids[1]), 0);
    assert_int_equal(evloop_cancel(loop, c.ids[1]), 0);
    assert_int_equal(evloop_run_once(loop, 0), 0);
    assert_int_equal(c.log.n, 3);
    assert_int_equal(evloop_defer(loop, NULL, NULL, NULL), SL_EINVAL);
    assert_int_equal(evloop_timer_add(loop, 1, 0, NULL, NULL, NULL), SL_EINVAL);
    evloop_free(loop);
}

/* --- run, stop, re-entry ----------------------------------------------------------- */

struct run_case {
    int ticks;
    bool watchdog_fired;
    int reentry_rc;
    int reentry_run_rc;
};

static void watchdog(struct evloop *loop, void *arg)
{
    ((struct run_case *)arg)->watchdog_fired = true;
    evloop_stop(loop);
}

static void tick_then_stop(struct evloop *loop, void *arg)
{
    struct run_case *c = arg;
    c->reentry_rc = evloop_run_once(loop, 0);
    c->reentry_run_rc = evloop_run(loop);
    if (++c->ticks >= 3)
        evloop_stop(loop);
}

static void test_stop_from_callback(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct run_case c = {0};
    assert_int_equal(evloop_timer_add(loop, WATCHDOG_MS, 0, watchdog, &c, NULL), 0);
    assert_int_equal(evloop_timer_add(loop, 1, 1, tick_then_stop, &c, NULL), 0);
    assert_int_equal(evloop_run(loop), 0);
    assert_false(c.watchdog_fired);
    assert_int_equal(c.ticks, 3);
    assert_int_equal(c.reentry_rc, SL_EINVAL);
    assert_int_equal(c.reentry_run_rc, SL_EINVAL);
    /* The stop was consumed: the loop runs again. */
    assert_int_equal(evloop_run(loop), 0);
    assert_int_equal(c.ticks, 4);
    evloop_free(loop);
}

static void test_epoll_timeout_from_earliest_timer(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    struct run_case c = {0};
    assert_int_equal(evloop_timer_add(loop, 30, 0, watchdog, &c, NULL), 0);
    uint64_t start_ms = clock_mono_ms();
    int iterations = 0;
    while (!c.watchdog_fired && iterations < 100) {
        assert_int_equal(evloop_run_once(loop, -1), 0);
        iterations++;
    }
    assert_true(c.watchdog_fired);
    assert_true(clock_mono_ms() - start_ms >= 29); /* ms granularity of the cached clock */
    assert_true(iterations <= 3); /* slept until the deadline rather than spinning */
    evloop_free(loop);
}

struct thread_case {
    struct evloop *loop;
    int pipe_w;
    atomic_bool loop_seen_running;
};

static void mark_running(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    char ch;
    assert_int_equal(read(fd, &ch, 1), 1);
    assert_int_equal(evloop_watch_del(loop, fd), 0);
    atomic_store(&((struct thread_case *)arg)->loop_seen_running, true);
}

static void *stopper_thread(void *arg)
{
    struct thread_case *c = arg;
    put_byte(c->pipe_w);
    while (!atomic_load(&c->loop_seen_running))
        sched_yield();
    /* The loop now waits in epoll_wait with no timer due for WATCHDOG_MS. */
    evloop_stop_async(c->loop);
    return NULL;
}

static void test_stop_async_from_thread(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    int p[2];
    make_pipe(p);
    struct thread_case tc = {.loop = loop, .pipe_w = p[1]};
    atomic_init(&tc.loop_seen_running, false);
    struct run_case c = {0};
    assert_int_equal(evloop_timer_add(loop, WATCHDOG_MS, 0, watchdog, &c, NULL), 0);
    assert_int_equal(evloop_watch_add(loop, p[0], EV_READ, mark_running, &tc), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stopper_thread, &tc), 0);
    assert_int_equal(evloop_run(loop), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_false(c.watchdog_fired);
    assert_true(atomic_load(&tc.loop_seen_running));
    evloop_free(loop);
    close(p[0]);
    close(p[1]);
}

static struct evloop *signal_loop;

static void on_sigusr1(int sig)
{
    (void)sig;
    evloop_stop_async(signal_loop);
}

static void raise_usr1(struct evloop *loop, void *arg)
{
    (void)loop;
    (void)arg;
    raise(SIGUSR1);
}

static void test_stop_async_from_signal_handler(void **state)
{
    (void)state;
    struct evloop *loop = evloop_new();
    signal_loop = loop;
    struct sigaction sa = {.sa_handler = on_sigusr1}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    struct run_case c = {0};
    assert_int_equal(evloop_timer_add(loop, WATCHDOG_MS, 0, watchdog, &c, NULL), 0);
    assert_int_equal(evloop_timer_add(loop, 1, 0, raise_usr1, NULL, NULL), 0);
    assert_int_equal(evloop_run(loop), 0);
    assert_false(c.watchdog_fired);
    /* A stop asked before evloop_run makes it return after one iteration. */
    evloop_stop_async(loop);
    assert_int_equal(evloop_run(loop), 0);
    evloop_stop(loop);
    assert_int_equal(evloop_run(loop), 0);
    assert_false(c.watchdog_fired);
    sigaction(SIGUSR1, &old, NULL);
    evloop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_free_idle),
        cmocka_unit_test(test_pipe_read_event),
        cmocka_unit_test(test_socketpair_write_modify_remove),
        cmocka_unit_test(test_no_redundant_epoll_ctl),
        cmocka_unit_test(test_watch_errors),
        cmocka_unit_test(test_hangup_delivers_error),
        cmocka_unit_test(test_remove_other_fd_in_same_batch),
        cmocka_unit_test(test_remove_self_and_readd),
        cmocka_unit_test_teardown(test_timers_fire_in_deadline_order, teardown_clock),
        cmocka_unit_test_teardown(test_equal_deadlines_fifo_and_reset, teardown_clock),
        cmocka_unit_test_teardown(test_repeating_timer, teardown_clock),
        cmocka_unit_test_teardown(test_cancel_inside_callback, teardown_clock),
        cmocka_unit_test_teardown(test_now_is_cached_per_iteration, teardown_clock),
        cmocka_unit_test_teardown(test_many_timers_match_sorted_reference, teardown_clock),
        cmocka_unit_test(test_deferred_order_and_cancel),
        cmocka_unit_test(test_stop_from_callback),
        cmocka_unit_test(test_epoll_timeout_from_earliest_timer),
        cmocka_unit_test(test_stop_async_from_thread),
        cmocka_unit_test(test_stop_async_from_signal_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
