/*
 * evloop — see evloop.h for the contract. Layout of the state:
 *
 *  - watches[fd]: one slot per fd number (the table grows to the highest fd watched).
 *    The epoll event of a watch carries (generation << 32 | fd); removing a watch bumps
 *    its generation, so events still sitting in the current batch are recognised as stale.
 *    want is what the owner asked for, kmask what the kernel has (0 = not registered).
 *  - tasks[]: slots for timers and deferred calls; an id is (generation << 32 | slot).
 *    Free slots form a list through next. Timers sit in heap[] (slot numbers ordered by
 *    deadline, then seq), with heap_pos as the back-pointer. Deferred calls form a FIFO
 *    through next; a cancelled deferred call stays linked (TASK_DEFER_DEAD, generation
 *    already bumped) until the drain reaches and frees it.
 */
#include "evloop.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"

#define NIL        UINT32_MAX
#define WAKE_TOKEN 0u /* epoll data of the eventfd; watch tokens never are 0 (gen >= 1) */
#define TABLE_MIN  64u

enum task_kind { TASK_FREE, TASK_TIMER, TASK_DEFER, TASK_DEFER_DEAD };

struct watch {
    evloop_io_fn cb;
    void *arg;
    uint32_t gen;
    uint8_t want;  /* EV_READ|EV_WRITE asked for */
    uint8_t kmask; /* interest registered in the kernel; 0 = not registered */
    uint8_t active;
};

struct task {
    evloop_task_fn cb;
    void *arg;
    uint64_t deadline_ms;
    uint64_t interval_ms; /* 0 = one-shot */
    uint64_t seq;         /* tie-break for equal deadlines: order of adding */
    uint32_t gen;
    uint32_t heap_pos; /* timers */
    uint32_t next;     /* free list, deferred FIFO */
    uint8_t kind;
};

struct evloop {
    int epfd;
    int wakefd;
    bool running; /* inside evloop_run_once: re-entry is refused */
    bool stop;
    atomic_bool stop_requested; /* evloop_stop_async */
    uint64_t now_ms;
    uint64_t seq;

    struct watch *watches;
    uint32_t watch_cap;

    struct task *tasks;
    uint32_t *heap;
    uint32_t task_cap, tasks_used, heap_len;
    uint32_t free_head;
    uint32_t defer_head, defer_tail;

    struct evloop_stats stats;
    struct epoll_event batch[EVLOOP_BATCH_MAX];
};

static uint32_t gen_next(uint32_t gen)
{
    return gen == UINT32_MAX ? 1u : gen + 1u;
}

/* --- loop -------------------------------------------------------------------------- */

struct evloop *evloop_new(void)
{
    struct evloop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return NULL;
    loop->free_head = loop->defer_head = loop->defer_tail = NIL;
    atomic_init(&loop->stop_requested, false);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        goto err_free_loop;
    loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wakefd < 0)
        goto err_close_epfd;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_TOKEN};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev) != 0)
        goto err_close_wakefd;
    evloop_update_time(loop);
    return loop;

err_close_wakefd:
    close(loop->wakefd);
err_close_epfd:
    close(loop->epfd);
err_free_loop:
    free(loop);
    return NULL;
}

void evloop_free(struct evloop *loop)
{
    if (!loop)
        return;
    close(loop->wakefd);
    close(loop->epfd);
    free(loop->watches);
    free(loop->tasks);
    free(loop->heap);
    free(loop);
}

uint64_t evloop_now_ms(const struct evloop *loop)
{
    return loop->now_ms;
}

void evloop_update_time(struct evloop *loop)
{
    loop->now_ms = clock_mono_ns() / 1000000u;
}

void evloop_stop(struct evloop *loop)
{
    loop->stop = true;
}

void evloop_stop_async(struct evloop *loop)
{
    int saved_errno = errno;
    const uint64_t one = 1;
    atomic_store(&loop->stop_requested, true);
    /* A full counter (EAGAIN) means a wake-up is already pending: nothing to do. */
    ssize_t n = write(loop->wakefd, &one, sizeof(one));
    (void)n;
    errno = saved_errno;
}

void evloop_get_stats(const struct evloop *loop, struct evloop_stats *out)
{
    *out = loop->stats;
}

/* --- watches ----------------------------------------------------------------------- */

static uint32_t to_epoll(unsigned events)
{
    return ((events & EV_READ) ? (uint32_t)EPOLLIN : 0u) |
           ((events & EV_WRITE) ? (uint32_t)EPOLLOUT : 0u);
}

static unsigned from_epoll(uint32_t events)
{
    return ((events & (EPOLLIN | EPOLLPRI)) ? EV_READ : 0u) |
           ((events & EPOLLOUT) ? EV_WRITE : 0u) |
           ((events & (EPOLLERR | EPOLLHUP)) ? EV_ERROR : 0u);
}

static int err_from_epoll_errno(int e)
{
    switch (e) {
    case EPERM: /* the fd does not support epoll (a regular file) */
    case EBADF:
    case EINVAL:
        return SL_EINVAL;
    case EEXIST:
        return SL_EEXISTS;
    case ENOMEM:
        return SL_ENOMEM;
    case ENOSPC: /* /proc/sys/fs/epoll/max_user_watches */
        return SL_ETOOBIG;
    default:
        return SL_EIO;
    }
}

static int watch_ctl(struct evloop *loop, int op, int fd, unsigned events, uint32_t gen)
{
    struct epoll_event ev = {.events = to_epoll(events),
                             .data.u64 = (uint64_t)gen << 32 | (uint32_t)fd};
    loop->stats.epoll_ctl++;
    return epoll_ctl(loop->epfd, op, fd, &ev) == 0 ? 0 : err_from_epoll_errno(errno);
}

/* Bring the kernel in line with a non-zero want; a zero want is applied lazily. */
static int watch_sync(struct evloop *loop, int fd, struct watch *w)
{
    if (w->want == 0 || w->want == w->kmask)
        return 0;
    int rc = watch_ctl(loop, w->kmask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, w->want, w->gen);
    if (rc == 0)
        w->kmask = w->want;
    return rc;
}

static int watch_table_fit(struct evloop *loop, int fd)
{
    if ((uint32_t)fd < loop->watch_cap)
        return 0;
    uint32_t cap = loop->watch_cap ? loop->watch_cap : TABLE_MIN;
    while (cap <= (uint32_t)fd)
        cap *= 2u;
    if (cap > EVLOOP_FD_MAX)
        cap = EVLOOP_FD_MAX;
    struct watch *w = realloc(loop->watches, (size_t)cap * sizeof(*w));
    if (!w)
        return SL_ENOMEM;
    memset(w + loop->watch_cap, 0, (size_t)(cap - loop->watch_cap) * sizeof(*w));
    for (uint32_t i = loop->watch_cap; i < cap; i++)
        w[i].gen = 1;
    loop->watches = w;
    loop->watch_cap = cap;
    return 0;
}

static bool events_valid(unsigned events)
{
    return (events & ~(EV_READ | EV_WRITE)) == 0;
}

int evloop_watch_add(struct evloop *loop, int fd, unsigned events, evloop_io_fn cb, void *arg)
{
    if (fd < 0 || !cb || !events_valid(events))
        return SL_EINVAL;
    if (fd >= EVLOOP_FD_MAX)
        return SL_ERANGE;
    int rc = watch_table_fit(loop, fd);
    if (rc != 0)
        return rc;
    struct watch *w = &loop->watches[fd];
    if (w->active)
        return SL_EEXISTS;
    w->want = (uint8_t)events;
    w->kmask = 0;
    rc = watch_sync(loop, fd, w);
    if (rc != 0) {
        w->want = 0;
        return rc;
    }
    w->cb = cb;
    w->arg = arg;
    w->active = 1;
    return 0;
}

static struct watch *watch_find(const struct evloop *loop, int fd)
{
    if (fd < 0 || (uint32_t)fd >= loop->watch_cap || !loop->watches[fd].active)
        return NULL;
    return &loop->watches[fd];
}

int evloop_watch_mod(struct evloop *loop, int fd, unsigned events)
{
    if (!events_valid(events))
        return SL_EINVAL;
    struct watch *w = watch_find(loop, fd);
    if (!w)
        return SL_ENOTFOUND;
    uint8_t old = w->want;
    w->want = (uint8_t)events;
    int rc = watch_sync(loop, fd, w);
    if (rc != 0)
        w->want = old;
    return rc;
}

int evloop_watch_del(struct evloop *loop, int fd)
{
    struct watch *w = watch_find(loop, fd);
    if (!w)
        return SL_ENOTFOUND;
    /* Fails only if the owner closed fd first, which removed it from epoll anyway. */
    if (w->kmask)
        (void)watch_ctl(loop, EPOLL_CTL_DEL, fd, 0, w->gen);
    w->active = 0;
    w->want = w->kmask = 0;
    w->cb = NULL;
    w->arg = NULL;
    w->gen = gen_next(w->gen);
    return 0;
}

unsigned evloop_watch_events(const struct evloop *loop, int fd)
{
    const struct watch *w = watch_find(loop, fd);
    return w ? w->want : 0u;
}

static void wake_drain(struct evloop *loop)
{
    uint64_t value;
    ssize_t n = read(loop->wakefd, &value, sizeof(value));
    (void)n; /* EAGAIN: another event already drained it */
}

static void dispatch_event(struct evloop *loop, const struct epoll_event *ev)
{
    uint64_t token = ev->data.u64;
    if (token == WAKE_TOKEN) {
        wake_drain(loop);
        return;
    }
    int fd = (int)(uint32_t)token;
    struct watch *w = watch_find(loop, fd);
    if (!w || w->gen != (uint32_t)(token >> 32))
        return; /* removed (and maybe re-added) earlier in this batch */
    unsigned got = from_epoll(ev->events);
    unsigned deliver = (got & EV_ERROR) ? (w->want ? w->want | EV_ERROR : 0u) : got & w->want;
    if (deliver == 0) {
        /* Only a lazily dropped interest gets here (want == 0): unregister now, so a
         * level-triggered event nobody wants cannot spin the loop. */
        if (w->want == 0 && w->kmask != 0) {
            (void)watch_ctl(loop, EPOLL_CTL_DEL, fd, 0, w->gen);
            w->kmask = 0;
        }
        return;
    }
    evloop_io_fn cb = w->cb; /* w may move: callbacks can grow the table */
    void *arg = w->arg;
    loop->stats.io_calls++;
    cb(loop, fd, deliver, arg);
}

/* --- task slots and the timer heap ------------------------------------------------- */

static int task_table_grow(struct evloop *loop)
{
    if (loop->task_cap >= EVLOOP_TASKS_MAX)
        return SL_ETOOBIG;
    uint32_t cap = loop->task_cap ? loop->task_cap * 2u : TABLE_MIN;
    if (cap > EVLOOP_TASKS_MAX)
        cap = EVLOOP_TASKS_MAX;
    struct task *t = realloc(loop->tasks, (size_t)cap * sizeof(*t));
    if (!t)
        return SL_ENOMEM;
    loop->tasks = t; /* a bigger tasks[] with the old task_cap is still consistent */
    uint32_t *h = realloc(loop->heap, (size_t)cap * sizeof(*h));
    if (!h)
        return SL_ENOMEM;
    loop->heap = h;
    for (uint32_t i = cap; i-- > loop->task_cap;) {
        t[i] = (struct task){.gen = 1, .kind = TASK_FREE, .next = loop->free_head};
        loop->free_head = i;
    }
    loop->task_cap = cap;
    return 0;
}

/* A free slot (kind still TASK_FREE), or NIL with *rc set. */
static uint32_t task_alloc(struct evloop *loop, evloop_task_fn cb, void *arg, int *rc)
{
    if (!cb) {
        *rc = SL_EINVAL;
        return NIL;
    }
    if (loop->free_head == NIL && (*rc = task_table_grow(loop)) != 0)
        return NIL;
    uint32_t idx = loop->free_head;
    struct task *t = &loop->tasks[idx];
    loop->free_head = t->next;
    loop->tasks_used++;
    t->cb = cb;
    t->arg = arg;
    t->next = NIL;
    return idx;
}

static void task_release(struct evloop *loop, uint32_t idx)
{
    struct task *t = &loop->tasks[idx];
    t->kind = TASK_FREE;
    t->gen = gen_next(t->gen);
    t->cb = NULL;
    t->arg = NULL;
    t->next = loop->free_head;
    loop->free_head = idx;
    loop->tasks_used--;
}

static uint64_t task_id(const struct evloop *loop, uint32_t idx)
{
    return (uint64_t)loop->tasks[idx].gen << 32 | idx;
}

/* The slot of a pending timer or deferred call, or NIL. */
static uint32_t task_lookup(const struct evloop *loop, uint64_t id)
{
    uint32_t idx = (uint32_t)id;
    if (id == 0 || idx >= loop->task_cap)
        return NIL;
    const struct task *t = &loop->tasks[idx];
    if (t->gen != (uint32_t)(id >> 32) || (t->kind != TASK_TIMER && t->kind != TASK_DEFER))
        return NIL;
    return idx;
}

static bool timer_before(const struct evloop *loop, uint32_t a, uint32_t b)
{
    const struct task *ta = &loop->tasks[a], *tb = &loop->tasks[b];
    return ta->deadline_ms < tb->deadline_ms ||
           (ta->deadline_ms == tb->deadline_ms && ta->seq < tb->seq);
}

static void heap_place(struct evloop *loop, uint32_t pos, uint32_t idx)
{
    loop->heap[pos] = idx;
    loop->tasks[idx].heap_pos = pos;
}

static void heap_sift_up(struct evloop *loop, uint32_t pos)
{
    uint32_t idx = loop->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!timer_before(loop, idx, loop->heap[parent]))
            break;
        heap_place(loop, pos, loop->heap[parent]);
        pos = parent;
    }
    heap_place(loop, pos, idx);
}

static void heap_sift_down(struct evloop *loop, uint32_t pos)
{
    uint32_t idx = loop->heap[pos];
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= loop->heap_len)
            break;
        if (child + 1 < loop->heap_len &&
            timer_before(loop, loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!timer_before(loop, loop->heap[child], idx))
            break;
        heap_place(loop, pos, loop->heap[child]);
        pos = child;
    }
    heap_place(loop, pos, idx);
}

static void heap_remove(struct evloop *loop, uint32_t pos)
{
    uint32_t last = loop->heap[--loop->heap_len];
    if (pos == loop->heap_len)
        return;
    heap_place(loop, pos, last);
    heap_sift_down(loop, pos);
    heap_sift_up(loop, loop->tasks[last].heap_pos);
}

static uint64_t deadline_after(const struct evloop *loop, uint64_t delay_ms)
{
    return delay_ms > UINT64_MAX - loop->now_ms ? UINT64_MAX : loop->now_ms + delay_ms;
}

int evloop_timer_add(struct evloop *loop, uint64_t delay_ms, uint64_t interval_ms,
                     evloop_task_fn cb, void *arg, uint64_t *id_out)
{
    int rc = 0;
    uint32_t idx = task_alloc(loop, cb, arg, &rc);
    if (idx == NIL)
        return rc;
    struct task *t = &loop->tasks[idx];
    t->kind = TASK_TIMER;
    t->deadline_ms = deadline_after(loop, delay_ms);
    t->interval_ms = interval_ms;
    t->seq = loop->seq++;
    loop->heap[loop->heap_len] = idx;
    heap_sift_up(loop, loop->heap_len++);
    if (id_out)
        *id_out = task_id(loop, idx);
    return 0;
}

int evloop_timer_reset(struct evloop *loop, uint64_t id, uint64_t delay_ms)
{
    uint32_t idx = task_lookup(loop, id);
    if (idx == NIL || loop->tasks[idx].kind != TASK_TIMER)
        return SL_ENOTFOUND;
    struct task *t = &loop->tasks[idx];
    t->deadline_ms = deadline_after(loop, delay_ms);
    t->seq = loop->seq++;
    uint32_t pos = t->heap_pos;
    heap_sift_down(loop, pos);
    heap_sift_up(loop, loop->tasks[idx].heap_pos);
    return 0;
}

int evloop_defer(struct evloop *loop, evloop_task_fn cb, void *arg, uint64_t *id_out)
{
    int rc = 0;
    uint32_t idx = task_alloc(loop, cb, arg, &rc);
    if (idx == NIL)
        return rc;
    loop->tasks[idx].kind = TASK_DEFER;
    if (loop->defer_tail == NIL)
        loop->defer_head = idx;
    else
        loop->tasks[loop->defer_tail].next = idx;
    loop->defer_tail = idx;
    if (id_out)
        *id_out = task_id(loop, idx);
    return 0;
}

int evloop_cancel(struct evloop *loop, uint64_t id)
{
    uint32_t idx = task_lookup(loop, id);
    if (idx == NIL)
        return SL_ENOTFOUND;
    struct task *t = &loop->tasks[idx];
    if (t->kind == TASK_TIMER) {
        heap_remove(loop, t->heap_pos);
        task_release(loop, idx);
    } else {
        /* Still linked in a FIFO: the drain frees the slot when it gets there. */
        t->kind = TASK_DEFER_DEAD;
        t->gen = gen_next(t->gen);
    }
    return 0;
}

bool evloop_is_pending(const struct evloop *loop, uint64_t id)
{
    return task_lookup(loop, id) != NIL;
}

/* --- one iteration ----------------------------------------------------------------- */

static int poll_timeout_ms(const struct evloop *loop, int max_wait_ms)
{
    if (loop->defer_head != NIL || loop->stop ||
        atomic_load_explicit(&loop->stop_requested, memory_order_relaxed))
        return 0;
    int wait = max_wait_ms < 0 ? -1 : max_wait_ms;
    if (loop->heap_len == 0)
        return wait;
    uint64_t deadline = loop->tasks[loop->heap[0]].deadline_ms;
    uint64_t left = deadline > loop->now_ms ? deadline - loop->now_ms : 0;
    if (left > INT_MAX)
        left = INT_MAX;
    return (wait < 0 || (uint64_t)wait > left) ? (int)left : wait;
}

static void run_timers(struct evloop *loop)
{
    /* Timers added or re-armed by these callbacks have seq >= first_new and deadlines
     * >= now, so they sort after every due timer: stopping at the first one bounds the
     * pass without skipping anything that was due. */
    const uint64_t first_new = loop->seq;
    while (loop->heap_len > 0) {
        uint32_t idx = loop->heap[0];
        struct task *t = &loop->tasks[idx];
        if (t->deadline_ms > loop->now_ms || t->seq >= first_new)
            break;
        evloop_task_fn cb = t->cb;
        void *arg = t->arg;
        if (t->interval_ms > 0) {
            uint64_t next = t->deadline_ms + t->interval_ms;
            t->deadline_ms = next > loop->now_ms ? next : deadline_after(loop, t->interval_ms);
            t->seq = loop->seq++;
            heap_sift_down(loop, 0);
        } else {
            heap_remove(loop, 0);
            task_release(loop, idx);
        }
        loop->stats.timer_calls++;
        cb(loop, arg);
    }
}

static void run_deferred(struct evloop *loop)
{
    /* Take the queue as it is now: calls deferred from here on run next iteration. */
    uint32_t idx = loop->defer_head;
    loop->defer_head = loop->defer_tail = NIL;
    while (idx != NIL) {
        struct task *t = &loop->tasks[idx];
        uint32_t next = t->next;
        bool live = t->kind == TASK_DEFER;
        evloop_task_fn cb = t->cb;
        void *arg = t->arg;
        task_release(loop, idx);
        if (live) {
            loop->stats.deferred_calls++;
            cb(loop, arg);
        }
        idx = next;
    }
}

int evloop_run_once(struct evloop *loop, int max_wait_ms)
{
    if (loop->running)
        return SL_EINVAL;
    loop->running = true;
    int n =
        epoll_wait(loop->epfd, loop->batch, EVLOOP_BATCH_MAX, poll_timeout_ms(loop, max_wait_ms));
    int saved_errno = errno;
    loop->stats.iterations++;
    evloop_update_time(loop);
    if (n < 0 && saved_errno != EINTR) {
        loop->running = false;
        return SL_EIO;
    }
    for (int i = 0; i < n; i++)
        dispatch_event(loop, &loop->batch[i]);
    run_timers(loop);
    run_deferred(loop);
    loop->running = false;
    return 0;
}

int evloop_run(struct evloop *loop)
{
    if (loop->running)
        return SL_EINVAL;
    for (;;) {
        int rc = evloop_run_once(loop, -1);
        if (rc != 0)
            return rc;
        bool stop = loop->stop;
        loop->stop = false;
        if (atomic_load_explicit(&loop->stop_requested, memory_order_relaxed))
            stop |= atomic_exchange(&loop->stop_requested, false);
        if (stop)
            return 0;
    }
}
