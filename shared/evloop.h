/*
 * evloop — the per-thread event loop the agent's data plane runs on (DESIGN.md §3): epoll
 * for fds, a binary heap for timers, a FIFO of deferred calls, and an eventfd that lets
 * another thread (or a signal handler) stop the loop at shutdown.
 *
 * Where it sits: each worker thread of sluice-agent owns one loop and runs its listeners,
 * client and upstream connections, Redis (evloop_redis.h) and HTTP clients on it. Nothing
 * crosses threads on the request path; evloop_stop_async is for shutdown only.
 *
 * One iteration (evloop_run_once):
 *   1. epoll_wait, for at most the time until the earliest timer (0 if deferred calls are
 *      queued; max_wait_ms caps it);
 *   2. read the clock once (clock_mono_ns) into the cached "now" (evloop_now_ms);
 *   3. call the fd callbacks of that batch (at most EVLOOP_BATCH_MAX events);
 *   4. call the timers that are due at "now", in deadline order (ties: the order in which
 *      they were added); timers added by these callbacks wait for the next iteration;
 *   5. call the deferred calls queued before this step, first in first out; calls deferred
 *      by them run in the next iteration (which then polls with a zero timeout).
 *
 * Fd watches (one per fd per loop):
 *  - Level-triggered: a callback that leaves data unread is called again next iteration.
 *    Simpler than edge-triggered and never loses a wake-up; the cost is one epoll_ctl
 *    when interest changes, which the loop keeps minimal: it remembers the mask the kernel
 *    has and calls epoll_ctl only when a non-zero interest differs from it. Dropping
 *    interest to 0 costs no syscall; the kernel side is removed lazily if an unwanted
 *    event arrives. So READ→0→READ (pausing a reader) is free when nothing arrived.
 *  - Callbacks receive EV_READ/EV_WRITE as asked for; on EPOLLERR/EPOLLHUP they receive
 *    EV_ERROR plus every bit they asked for, so the next read()/write() reports the error
 *    or EOF. Events nobody asked for are never delivered.
 *  - Any watch may be removed from any callback, including one for another fd in the same
 *    epoll batch: every watch has a generation carried in the epoll event, and an event
 *    whose generation no longer matches (removed, or removed and the fd number reused) is
 *    dropped. Remove a watch before close()ing its fd.
 *
 * Timers and deferred calls share one table of ids (uint64_t, never 0): an id names one
 * scheduled call; after that call has run or been cancelled the id is stale, and
 * cancelling or resetting a stale id is a harmless no-op (SL_ENOTFOUND). So callbacks can
 * cancel anything, themselves included, at any time.
 *  - Heap rather than a timer wheel: add/cancel/reset are O(log n), the earliest deadline
 *    is O(1) (the epoll timeout), timers fire in exact deadline order, and there is no
 *    tick to run while idle. For per-connection idle timeouts use evloop_timer_reset
 *    (one sift, no allocation) or arm once and re-check a last-activity time on expiry.
 *  - Millisecond resolution against the cached now: a timer added with delay d fires in
 *    the first iteration whose now >= the adding iteration's now + d. So it is never early
 *    by the loop's clock (by a precise clock: up to 1 ms early, from truncation to ms, plus
 *    however stale the cached now was when it was added) and late by at most the time
 *    one iteration takes to process.
 *  - Repeating timers keep their rate (deadline += interval) but skip ticks missed while
 *    the loop was stalled (then the next is now + interval): no catch-up bursts.
 *
 * Time: the cached now is read once per iteration, so handlers never call clock_gettime
 * (evloop_now_ms). Tests drive it with clock_fake_set/clock_fake_advance_ms (clock.h) and
 * evloop_run_once(loop, 0), which processes whatever is due against the fake clock.
 *
 * Bounds and failure: fds up to EVLOOP_FD_MAX - 1; at most EVLOOP_TASKS_MAX timers plus
 * deferred calls pending (SL_ETOOBIG beyond). Tables grow by doubling; an allocation
 * failure returns SL_ENOMEM and registers nothing (no half-registered watch or timer).
 * Memory: ~24 bytes per fd number up to the highest watched; ~56 per timer or deferred
 * call slot (slots are reused).
 *
 * Ownership and threading: the loop never owns fds (it never closes them) and drops
 * pending timers and deferred calls in evloop_free without calling them. Not thread-safe:
 * every function except evloop_stop_async must be called from the loop's thread, and
 * evloop_run/evloop_run_once must not be called from inside a callback (SL_EINVAL).
 */
#ifndef SLUICE_EVLOOP_H
#define SLUICE_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

#define EV_READ  0x1u
#define EV_WRITE 0x2u
#define EV_ERROR 0x4u /* delivered only: EPOLLERR/EPOLLHUP (with the bits asked for) */

#define EVLOOP_FD_MAX    (1 << 20) /* fds >= this are refused (SL_ERANGE) */
#define EVLOOP_TASKS_MAX (1 << 20) /* pending timers + deferred calls (SL_ETOOBIG beyond) */
#define EVLOOP_BATCH_MAX 256       /* events taken per epoll_wait */

struct evloop;

typedef void (*evloop_io_fn)(struct evloop *loop, int fd, unsigned events, void *arg);
typedef void (*evloop_task_fn)(struct evloop *loop, void *arg);

/* Counters since evloop_new, for metrics and for tests that count syscalls. */
struct evloop_stats {
    uint64_t iterations;     /* epoll_wait calls */
    uint64_t epoll_ctl;      /* ADD/MOD/DEL issued for watches */
    uint64_t io_calls;       /* fd callbacks called */
    uint64_t timer_calls;    /* timer callbacks called */
    uint64_t deferred_calls; /* deferred callbacks called */
};

/* A loop with its epoll fd and eventfd (both close-on-exec). NULL on failure (out of
 * memory or fds). Its now is read from clock_mono_ns() here. */
struct evloop *evloop_new(void);
/* Close the loop's own fds and free it; pending timers and deferred calls are dropped
 * uncalled; watched fds stay open. Not from a callback. NULL is a no-op. */
void evloop_free(struct evloop *loop);

/* Iterate until evloop_stop or evloop_stop_async; returns 0 after the iteration in which
 * the stop was asked for (the request is consumed, so the loop can be run again), or
 * SL_EIO if epoll_wait fails, SL_EINVAL if called from a callback of this loop. */
int evloop_run(struct evloop *loop);
/* One iteration, waiting at most max_wait_ms (-1: as long as timers allow, forever if
 * none; 0: just poll). Returns 0, SL_EIO (epoll_wait failed; EINTR is not a failure), or
 * SL_EINVAL when called from a callback of this loop. */
int evloop_run_once(struct evloop *loop, int max_wait_ms);
/* Make evloop_run return at the end of the current iteration. Loop thread only. */
void evloop_stop(struct evloop *loop);
/* The same from any thread or a signal handler (async-signal-safe: an atomic store and a
 * write(2) to the eventfd; errno is preserved). For shutdown, not for per-request use. */
void evloop_stop_async(struct evloop *loop);

/* The cached monotonic time of this iteration, in milliseconds. */
uint64_t evloop_now_ms(const struct evloop *loop);
/* Read the clock again now (after long work inside a callback, say). */
void evloop_update_time(struct evloop *loop);

/* Watch fd for events (EV_READ|EV_WRITE, or 0 to register with no interest yet): cb(loop,
 * fd, delivered, arg). SL_EINVAL (bad fd, events or cb; or epoll refuses the fd, e.g. a
 * regular file), SL_ERANGE (fd >= EVLOOP_FD_MAX), SL_EEXISTS (fd already watched),
 * SL_ENOMEM, SL_EIO. */
int evloop_watch_add(struct evloop *loop, int fd, unsigned events, evloop_io_fn cb, void *arg);
/* Change the interest of a watched fd; a syscall only when needed (see the top).
 * SL_ENOTFOUND (not watched), SL_EINVAL (bad events), SL_ENOMEM/SL_EIO (epoll_ctl failed;
 * the interest is unchanged). */
int evloop_watch_mod(struct evloop *loop, int fd, unsigned events);
/* Stop watching fd: no callback for it is made after this returns, even for events
 * already taken from the kernel in the current batch. SL_ENOTFOUND if not watched. */
int evloop_watch_del(struct evloop *loop, int fd);
/* The interest of a watched fd, or 0 when not watched. */
unsigned evloop_watch_events(const struct evloop *loop, int fd);

/* Call cb(loop, arg) once delay_ms from now, then, if interval_ms > 0, every interval_ms
 * until cancelled. *id_out (may be NULL) gets the id. SL_EINVAL (NULL cb), SL_ETOOBIG,
 * SL_ENOMEM; *id_out is left alone on failure. */
int evloop_timer_add(struct evloop *loop, uint64_t delay_ms, uint64_t interval_ms,
                     evloop_task_fn cb, void *arg, uint64_t *id_out);
/* Move a pending timer to delay_ms from now (same id, same interval; O(log n)).
 * SL_ENOTFOUND if id is not a pending timer. */
int evloop_timer_reset(struct evloop *loop, uint64_t id, uint64_t delay_ms);
/* Call cb(loop, arg) at the end of this iteration (or of the next one when deferred from a
 * deferred call), in FIFO order: for work that must not run re-entrantly. *id_out as for
 * timers. SL_EINVAL, SL_ETOOBIG, SL_ENOMEM. */
int evloop_defer(struct evloop *loop, evloop_task_fn cb, void *arg, uint64_t *id_out);
/* Cancel a pending timer or deferred call: 0, or SL_ENOTFOUND for 0 or a stale id. */
int evloop_cancel(struct evloop *loop, uint64_t id);
/* True when id names a pending timer or deferred call. */
bool evloop_is_pending(const struct evloop *loop, uint64_t id);

void evloop_get_stats(const struct evloop *loop, struct evloop_stats *out);

#endif
