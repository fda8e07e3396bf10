/*
 * control — the agent's control thread (control.h): one evloop with three timers and at
 * most one listener.
 *
 *   tick (CONTROL_TICK_MS)    drain progress, fault-set expiry, --exec reaping/restarts,
 *                             resuming the agent-check listener after fd exhaustion
 *   registry (1 s)            SET sluice:agent:{id} <json> EX 5 + SADD sluice:agents id,
 *                             pipelined on one connection
 *   spans (250 ms)            drain every worker's span ring, XADD batches of at most
 *                             SPANS_BATCH_MAX spans
 *   agent-check fd            accept, write one line, close
 *
 * Redis is the synchronous pool (store_redis.h) with short timeouts (connect 200 ms,
 * command 500 ms), so one slow call stalls this thread by well under a second and never
 * the workers. Registration and span shipping share one back-off: after a failure, Redis
 * is left alone for 1 s, 2 s, 4 s, then 5 s between attempts; the outage is logged once
 * when it starts and once when it ends. Spans produced meanwhile wait in the workers'
 * rings, which drop (and count) the overflow.
 *
 * Threads: control_start and control_stop run on the caller's thread (main); everything
 * else here runs on the control thread, except control_registration_json (any thread: it
 * reads only immutable fields and atomics) and control_child_pid/_restarts (atomics).
 * control_stop joins the thread before it touches the child, the span batch or Redis, so
 * those need no lock.
 */
#include "control.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "evloop.h"
#include "flags.h"
#include "log.h"
#include "spans.h"
#include "store_redis.h"
#include "version.h"
#include "worker.h"

#define CONTROL_TICK_MS          100
#define CONTROL_REDIS_CONNECT_MS 200
#define CONTROL_REDIS_COMMAND_MS 500
#define CONTROL_REDIS_MAX_IDLE   2
#define SPANS_BATCH_MAX          128 /* spans per XADD entry (~80 KB of JSON at most) */
/* Drain passes over one worker's ring per shipment: enough to empty a full ring. */
#define SPANS_DRAIN_ROUNDS_MAX (SPAN_BUFFER_MAX / SPANS_BATCH_MAX + 2)
#define REGISTRY_KEY_MAX       (sizeof(REGISTRY_KEY_PREFIX) + AGENT_ID_MAX + 2)
#define EXEC_STOP_POLL_MS      10
#define EXEC_CLOSE_FDS_MAX     65536 /* the child closes fds 3.. this when close_range fails */
#define AGENT_CHECK_BACKLOG    64
#define AGENT_CHECK_ACCEPT_MAX 64 /* connections answered per wake-up */
#define AGENT_CHECK_READS_MAX  4  /* reads of what a checker sent, 256 bytes each */
#define WHY_MAX                128

struct control {
    struct agent *a;
    struct evloop *loop;
    pthread_t thread;

    /* Redis; NULL without --redis (no registration, spans are left to the rings). */
    struct redis_pool *redis;
    char key[REGISTRY_KEY_MAX]; /* sluice:agent:{id} */
    bool redis_down;            /* an outage is being logged */
    bool json_failed;           /* the registration record could not be encoded */
    uint64_t redis_backoff_ms;  /* 0 while healthy */
    uint64_t redis_retry_ms;    /* monotonic: no Redis call before this */
    struct span *batch;         /* SPANS_BATCH_MAX */
    uint64_t spans_lost;        /* drained but not shipped */

    /* --exec */
    atomic_int child_pid; /* 0: none running; also the process group id */
    atomic_uint restarts;
    bool supervising; /* false once control_stop began: no more restarts */
    uint64_t child_started_ms;
    uint64_t restart_delay_ms; /* the back-off used for the latest (re)start */
    uint64_t restart_at_ms;    /* when child_pid is 0 */

    /* --agent-check */
    int check_fd;      /* -1: none */
    bool check_paused; /* out of fds: not accepting until the next tick */
};

/* An optional flag counts as given when it is set and not empty (SLUICE_REDIS= ...). */
static bool given(const char *flag)
{
    return flag && flag[0];
}

/* --- pure helpers ---------------------------------------------------------------------- */

uint64_t control_backoff_next_ms(uint64_t prev_ms, uint64_t min_ms, uint64_t max_ms)
{
    if (prev_ms < min_ms)
        return min_ms < max_ms ? min_ms : max_ms;
    if (prev_ms > max_ms / 2)
        return max_ms;
    return prev_ms * 2; /* ≤ max_ms: no overflow */
}

uint64_t control_exec_restart_delay_ms(uint64_t prev_delay_ms, uint64_t ran_ms)
{
    if (ran_ms >= EXEC_STABLE_MS)
        return EXEC_BACKOFF_MIN_MS;
    return control_backoff_next_ms(prev_delay_ms, EXEC_BACKOFF_MIN_MS, EXEC_BACKOFF_MAX_MS);
}

size_t control_agent_check_line(enum agent_state state, int weight, char out[AGENT_CHECK_LINE_MAX])
{
    int n;
    switch (state) {
    case AGENT_SERVING:
        weight = weight < 0 ? 0 : weight > 100 ? 100 : weight;
        n = snprintf(out, AGENT_CHECK_LINE_MAX, "up ready %d%%\n", weight);
        break;
    case AGENT_DRAINING:
    case AGENT_DRAINED:
        n = snprintf(out, AGENT_CHECK_LINE_MAX, "drain\n");
        break;
    case AGENT_MAINT:
    default:
        n = snprintf(out, AGENT_CHECK_LINE_MAX, "maint\n");
        break;
    }
    return (size_t)n;
}

static const char *role_name(enum agent_role role)
{
    return role == AGENT_ROLE_GATEWAY ? "gateway" : "sidecar";
}

json_t *control_registration_json(const struct agent *a)
{
    char started[32];
    clock_format_iso8601(a->started_wall_ms, started);
    int state = atomic_load(&a->state);
    int weight = atomic_load(&a->weight);
    /* "s?": null when absent (no --service; a gateway has no single upstream). */
    return json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s?, s:s, s:i, s:s, s:i, s:s}", "id", a->id,
                     "role", role_name(a->role), "service", a->cfg.service, "listen", a->listen_str,
                     "admin", a->admin_str, "upstream", a->upstream_str[0] ? a->upstream_str : NULL,
                     "state", agent_state_name((enum agent_state)state), "weight", weight,
                     "version", SLUICE_VERSION, "pid", (int)getpid(), "started_at", started);
}

int control_child_pid(const struct agent *a)
{
    return a->control ? atomic_load(&a->control->child_pid) : 0;
}

unsigned control_child_restarts(const struct agent *a)
{
    return a->control ? atomic_load(&a->control->restarts) : 0;
}

/* Safe from another thread: only the control thread reaps the child, so until it does the
 * pid (a zombie at worst) is not reused. */
int control_child_kill(const struct agent *a, int *pid)
{
    *pid = control_child_pid(a);
    if (*pid <= 0 || kill(-*pid, SIGKILL) != 0)
        return SL_ENOTFOUND;
    char p[16];
    snprintf(p, sizeof(p), "%d", *pid);
    log_event(LOG_WARN, NULL, NULL, "exec child killed on request", "pid", p, NULL);
    return SL_OK;
}

/* --- Redis: back-off, registration, spans ---------------------------------------------- */

static void redis_failed(struct control *c, uint64_t now_ms, const char *op, const char *why)
{
    c->redis_backoff_ms = control_backoff_next_ms(c->redis_backoff_ms, REGISTRY_BACKOFF_MIN_MS,
                                                  REGISTRY_BACKOFF_MAX_MS);
    c->redis_retry_ms = now_ms + c->redis_backoff_ms;
    if (!c->redis_down)
        log_event(LOG_WARN, NULL, NULL, "redis unavailable, retrying with back-off", "op", op,
                  "error", why, "redis", redis_pool_url(c->redis), NULL);
    c->redis_down = true;
}

static void redis_succeeded(struct control *c)
{
    if (c->redis_down)
        log_event(LOG_INFO, NULL, NULL, "redis available again", "redis", redis_pool_url(c->redis),
                  NULL);
    c->redis_down = false;
    c->redis_backoff_ms = 0;
    c->redis_retry_ms = 0;
}

/* Two commands pipelined on one connection; both replies are always read so the
 * connection goes back clean. SL_ESTORE with the reason on any failure or error reply. */
static int redis_pair(struct redis_pool *p, int argc1, const char **argv1, int argc2,
                      const char **argv2, char why[WHY_MAX])
{
    redisContext *rc = redis_pool_get(p);
    if (!rc) {
        snprintf(why, WHY_MAX, "cannot connect");
        return SL_ESTORE;
    }
    int rv = SL_OK;
    if (redisAppendCommandArgv(rc, argc1, argv1, NULL) != REDIS_OK ||
        redisAppendCommandArgv(rc, argc2, argv2, NULL) != REDIS_OK) {
        snprintf(why, WHY_MAX, "out of memory");
        rc->err = REDIS_ERR_OOM; /* half-queued commands: the pool must not reuse it */
        redis_pool_put(p, rc);
        return SL_ESTORE;
    }
    for (int i = 0; i < 2; i++) {
        redisReply *r = NULL;
        if (redisGetReply(rc, (void **)&r) != REDIS_OK) {
            snprintf(why, WHY_MAX, "%s", rc->errstr);
            rv = SL_ESTORE;
            break;
        }
        if (r->type == REDIS_REPLY_ERROR && rv == SL_OK) {
            snprintf(why, WHY_MAX, "%s", r->str);
            rv = SL_ESTORE;
        }
        freeReplyObject(r);
    }
    redis_pool_put(p, rc);
    return rv;
}

static int registry_write(struct control *c, char why[WHY_MAX])
{
    json_t *rec = control_registration_json(c->a);
    char *text = rec ? json_dump_compact(rec) : NULL;
    json_decref(rec);
    if (!text) {
        if (!c->json_failed)
            log_error("registration record cannot be encoded (id or service not UTF-8?)");
        c->json_failed = true;
        return SL_EINVAL; /* not a Redis failure: no back-off */
    }
    char ttl[16];
    snprintf(ttl, sizeof(ttl), "%d", REGISTRY_TTL_S);
    const char *set[] = {"SET", c->key, text, "EX", ttl};
    const char *sadd[] = {"SADD", REGISTRY_SET_KEY, c->a->id};
    int rv = redis_pair(c->redis, 5, set, 3, sadd, why);
    free(text);
    return rv;
}

/* Agents of this service in the registry (ourselves included), for the limiters'
 * "limit ÷ live agents" fallback and lease slices. */
static void count_live_agents(struct control *c)
{
    redisReply *ids = redis_pool_command(c->redis, "SMEMBERS %s", REGISTRY_SET_KEY);
    unsigned live = 0;
    for (size_t i = 0; ids && ids->type == REDIS_REPLY_ARRAY && i < ids->elements; i++) {
        redisReply *rec = redis_pool_command(c->redis, "GET %s{%s}", REGISTRY_KEY_PREFIX,
                                             ids->element[i]->str);
        json_t *doc = rec && rec->type == REDIS_REPLY_STRING ? json_loads(rec->str, 0, NULL)
                                                             : NULL;
        const char *svc = json_string_value(json_object_get(doc, "service"));
        live += svc && given(c->a->cfg.service) && strcmp(svc, c->a->cfg.service) == 0;
        json_decref(doc);
        freeReplyObject(rec);
    }
    freeReplyObject(ids);
    atomic_store(&c->a->live_agents, live ? live : 1);
}

static void on_registry(struct evloop *loop, void *arg)
{
    struct control *c = arg;
    uint64_t now_ms = evloop_now_ms(loop);
    if (now_ms < c->redis_retry_ms)
        return; /* backing off: skip this tick */
    char why[WHY_MAX];
    int rv = registry_write(c, why);
    if (rv == SL_OK) {
        redis_succeeded(c);
        count_live_agents(c);
    }
    else if (rv == SL_ESTORE)
        redis_failed(c, now_ms, "register", why);
}

/* Best effort, once: the record would expire within REGISTRY_TTL_S anyway. */
static void registry_remove(struct control *c)
{
    char why[WHY_MAX];
    const char *del[] = {"DEL", c->key};
    const char *srem[] = {"SREM", REGISTRY_SET_KEY, c->a->id};
    if (redis_pair(c->redis, 2, del, 3, srem, why) != SL_OK)
        log_event(LOG_WARN, NULL, NULL, "deregistration failed", "error", why, NULL);
}

static int spans_xadd(struct control *c, unsigned n, uint64_t now_ms)
{
    const struct agent *a = c->a;
    json_t *doc = spans_otlp_json(c->batch, n, a->cfg.service, a->id, role_name(a->role));
    char *text = doc ? json_dump_compact(doc) : NULL;
    json_decref(doc);
    if (!text) {
        c->spans_lost += n;
        return SL_ENOMEM;
    }
    redisReply *r = redis_pool_command(c->redis, "XADD %s MAXLEN ~ %d * otlp %s", SPANS_STREAM_KEY,
                                       SPANS_STREAM_MAXLEN, text);
    free(text);
    int rv = SL_OK;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        redis_failed(c, now_ms, "ship spans", r ? r->str : "no connection");
        c->spans_lost += n;
        rv = SL_ESTORE;
    } else {
        redis_succeeded(c);
    }
    freeReplyObject(r);
    return rv;
}

/* Drains every worker's ring into batches and ships them; stops at the first failed XADD
 * (what is still in the rings stays there for the next try). */
static void spans_ship(struct control *c, uint64_t now_ms)
{
    unsigned fill = 0;
    for (unsigned i = 0; i < c->a->nworkers; i++) {
        struct span_buffer *b = worker_spans(c->a->workers[i]);
        for (unsigned round = 0; b && round < SPANS_DRAIN_ROUNDS_MAX; round++) {
            fill += span_buffer_drain(b, c->batch + fill, SPANS_BATCH_MAX - fill);
            if (fill < SPANS_BATCH_MAX)
                break; /* this ring is empty */
            if (spans_xadd(c, fill, now_ms) != SL_OK)
                return;
            fill = 0;
        }
    }
    if (fill > 0)
        spans_xadd(c, fill, now_ms);
}

static void on_spans(struct evloop *loop, void *arg)
{
    struct control *c = arg;
    uint64_t now_ms = evloop_now_ms(loop);
    if (now_ms >= c->redis_retry_ms)
        spans_ship(c, now_ms);
}

/* --- drain progress and fault expiry ---------------------------------------------------- */

static void drain_progress(struct agent *a, uint64_t now_ms)
{
    if (atomic_load(&a->state) != AGENT_DRAINING)
        return;
    uint64_t deadline_ms = atomic_load(&a->drain_deadline_ms);
    unsigned in_flight = agent_in_flight(a);
    bool late = deadline_ms != 0 && now_ms >= deadline_ms;
    if (in_flight > 0 && !late)
        return;
    /* A compare-exchange: an undrain (or maint) that raced with this tick wins. */
    int expected = AGENT_DRAINING;
    if (!atomic_compare_exchange_strong(&a->state, &expected, AGENT_DRAINED))
        return;
    char n[16];
    snprintf(n, sizeof(n), "%u", in_flight);
    log_event(LOG_INFO, NULL, NULL, "drained", "reason",
              in_flight == 0 ? "no requests in flight" : "drain timeout", "in_flight", n, NULL);
}

/* A set whose every TTL has passed is replaced by the empty set, so the admin API, stats
 * and the workers' copies all show the revert. */
static void faults_expire(struct agent *a, uint64_t now_ms)
{
    size_t cleared = agent_expire_faults(a, now_ms);
    if (!cleared)
        return;
    char n[24];
    snprintf(n, sizeof(n), "%zu", cleared);
    log_event(LOG_INFO, NULL, NULL, "faults expired, cleared", "count", n, NULL);
}

/* --- --exec supervision ---------------------------------------------------------------- */

/* In the child, between fork and exec: only async-signal-safe calls (the parent has other
 * threads, whose locks may be held). Never returns. */
static void child_exec(const char *cmd, pid_t parent)
{
    setpgid(0, 0); /* own group: SIGTERM/SIGKILL reach sh and everything it started */
    /* If the agent dies without control_stop (SIGKILL, crash), do not leave the API
     * server behind. (Linux sends this when the forking *thread* exits; that is main or
     * the control thread, both of which live until control_stop.) */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(126);
    /* The agent blocks SIGTERM/SIGINT and ignores SIGPIPE; both are inherited over exec. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL); /* fails harmlessly for KILL, STOP, glibc's own */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Listeners and connections of the agent that are not close-on-exec. */
    if (close_range(3, ~0u, 0) != 0)
        for (int fd = 3; fd < EXEC_CLOSE_FDS_MAX; fd++)
            close(fd);
    char *const argv[] = {"sh", "-c", (char *)cmd, NULL};
    execve("/bin/sh", argv, environ);
    _exit(127);
}

/* Starts the child; restart_no is 0 for the first start (for the log line). */
static int child_spawn(struct control *c, uint64_t now_ms, unsigned restart_no)
{
    const char *cmd = c->a->cfg.exec;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return SL_EIO;
    if (pid == 0)
        child_exec(cmd, parent);
    setpgid(pid, pid); /* also here, so a kill(-pid) right after fork finds the group */
    atomic_store(&c->child_pid, pid);
    c->child_started_ms = now_ms;
    char p[16], r[16];
    snprintf(p, sizeof(p), "%d", (int)pid);
    snprintf(r, sizeof(r), "%u", restart_no);
    log_event(LOG_INFO, NULL, NULL, "exec started", "pid", p, "restart", r, "cmd", cmd, NULL);
    return SL_OK;
}

/* "exit status 3" / "signal 9 (KILL)" from a waitpid status; status < 0: unknown. */
static void exit_describe(int status, char out[48])
{
    if (status < 0)
        snprintf(out, 48, "unknown (reaped elsewhere)");
    else if (WIFEXITED(status))
        snprintf(out, 48, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, 48, "signal %d (%s)", WTERMSIG(status),
                 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
    else
        snprintf(out, 48, "status %d", status);
}

static void child_died(struct control *c, pid_t pid, int status, uint64_t now_ms)
{
    /* Whatever the shell started and left behind would hold the API server's port. */
    kill(-pid, SIGKILL);
    atomic_store(&c->child_pid, 0);
    c->restart_delay_ms =
        control_exec_restart_delay_ms(c->restart_delay_ms, now_ms - c->child_started_ms);
    c->restart_at_ms = now_ms + c->restart_delay_ms;
    char how[48], p[16], delay[24];
    exit_describe(status, how);
    snprintf(p, sizeof(p), "%d", (int)pid);
    snprintf(delay, sizeof(delay), "%llu", (unsigned long long)c->restart_delay_ms);
    log_event(LOG_WARN, NULL, NULL, "exec child died", "pid", p, "how", how, "restart_in_ms", delay,
              NULL);
}

/* Tick: reap a dead child, restart one whose back-off has passed. */
static void child_supervise(struct control *c, uint64_t now_ms)
{
    pid_t pid = atomic_load(&c->child_pid);
    if (pid > 0) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            child_died(c, pid, status, now_ms);
        else if (r < 0 && errno == ECHILD)
            child_died(c, pid, -1, now_ms);
        return;
    }
    if (!c->supervising || now_ms < c->restart_at_ms)
        return;
    if (child_spawn(c, now_ms, atomic_load(&c->restarts) + 1) == SL_OK) {
        atomic_fetch_add(&c->restarts, 1);
        return;
    }
    c->restart_delay_ms = control_exec_restart_delay_ms(c->restart_delay_ms, 0);
    c->restart_at_ms = now_ms + c->restart_delay_ms;
    log_warn("exec: fork failed (%s), retrying in %llu ms", strerror(errno),
             (unsigned long long)c->restart_delay_ms);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* SIGTERM to the group, up to timeout_ms for the leader to exit, then SIGKILL to the group
 * (stragglers, or a leader that ignored SIGTERM); always reaped. */
static void child_stop(struct control *c, uint64_t timeout_ms)
{
    c->supervising = false;
    pid_t pid = atomic_load(&c->child_pid);
    if (pid <= 0)
        return;
    kill(-pid, SIGTERM);
    uint64_t deadline_ms = clock_mono_ms() + timeout_ms;
    int status = 0;
    pid_t r;
    while ((r = waitpid(pid, &status, WNOHANG)) == 0 && clock_mono_ms() < deadline_ms)
        sleep_ms(EXEC_STOP_POLL_MS);
    kill(-pid, SIGKILL);
    while (r == 0 || (r < 0 && errno == EINTR))
        r = waitpid(pid, &status, 0);
    char how[48], p[16];
    exit_describe(r == pid ? status : -1, how);
    snprintf(p, sizeof(p), "%d", (int)pid);
    log_event(LOG_INFO, NULL, NULL, "exec child stopped", "pid", p, "how", how, NULL);
    atomic_store(&c->child_pid, 0);
}

/* --- agent-check --------------------------------------------------------------------- */

/* Answer one accepted connection: the line, FIN, then whatever the checker sent (an
 * agent-send string) is read so close() does not turn into an RST that could destroy
 * the reply before HAProxy reads it. Non-blocking throughout. */
static void check_answer(const struct agent *a, int fd)
{
    char line[AGENT_CHECK_LINE_MAX], sink[256];
    size_t n = control_agent_check_line((enum agent_state)atomic_load(&a->state),
                                        atomic_load(&a->weight), line);
    if (send(fd, line, n, MSG_NOSIGNAL) == (ssize_t)n) {
        shutdown(fd, SHUT_WR);
        for (int i = 0; i < AGENT_CHECK_READS_MAX; i++)
            if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
                break;
    }
    close(fd);
}

static void on_check_accept(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)events;
    struct control *c = arg;
    for (int i = 0; i < AGENT_CHECK_ACCEPT_MAX; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd >= 0) {
            check_answer(c->a, cfd);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Level-triggered: retrying now would spin. Pause until the next tick. */
            evloop_watch_mod(loop, fd, 0);
            c->check_paused = true;
        }
        return; /* EAGAIN, or a connection that went away (ECONNABORTED): done */
    }
}

static int check_bind(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, AGENT_CHECK_BACKLOG) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* The --agent-check listener: the first address HOST:PORT resolves to. */
static int check_listen(const char *hostport, char err[256])
{
    char host[AGENT_ADDR_MAX], port_s[8];
    uint16_t port;
    if (flags_split_hostport(hostport, host, sizeof(host), &port) != SL_OK) {
        snprintf(err, 256, "--agent-check: expected HOST:PORT, got '%s'", hostport);
        return -1;
    }
    snprintf(port_s, sizeof(port_s), "%u", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, port_s, &hints, &res);
    if (gai != 0) {
        snprintf(err, 256, "--agent-check %s: %s", hostport, gai_strerror(gai));
        return -1;
    }
    int fd = check_bind(res);
    if (fd < 0)
        snprintf(err, 256, "--agent-check %s: %s", hostport, strerror(errno));
    freeaddrinfo(res);
    return fd;
}

/* --- the thread ------------------------------------------------------------------------ */

static void on_tick(struct evloop *loop, void *arg)
{
    struct control *c = arg;
    uint64_t now_ms = evloop_now_ms(loop);
    drain_progress(c->a, now_ms);
    faults_expire(c->a, now_ms);
    if (c->a->on_control_tick) /* policies (agent.c): a hook, so this file links alone */
        c->a->on_control_tick(c->a, c->redis, now_ms);
    if (given(c->a->cfg.exec))
        child_supervise(c, now_ms);
    if (c->check_paused && evloop_watch_mod(loop, c->check_fd, EV_READ) == SL_OK)
        c->check_paused = false;
}

static void *control_thread(void *arg)
{
    struct control *c = arg;
    int rv = evloop_run(c->loop);
    if (rv != SL_OK)
        log_error("control loop stopped: %s", err_str(rv));
    return NULL;
}

static void control_free(struct control *c)
{
    if (c->check_fd >= 0)
        close(c->check_fd); /* the loop never owns fds; freeing it drops the watch */
    evloop_free(c->loop);
    redis_pool_free(c->redis);
    free(c->batch);
    free(c);
}

static int redis_setup(struct control *c, char err[256])
{
    struct redis_opts opts = {.connect_timeout_ms = CONTROL_REDIS_CONNECT_MS,
                              .command_timeout_ms = CONTROL_REDIS_COMMAND_MS,
                              .max_idle = CONTROL_REDIS_MAX_IDLE};
    char perr[128];
    c->redis = redis_pool_new(c->a->cfg.redis, &opts, perr);
    if (!c->redis) {
        snprintf(err, 256, "--redis: %s", perr);
        return SL_EINVAL;
    }
    c->batch = calloc(SPANS_BATCH_MAX, sizeof(*c->batch));
    if (!c->batch) {
        snprintf(err, 256, "out of memory");
        return SL_ENOMEM;
    }
    snprintf(c->key, sizeof(c->key), REGISTRY_KEY_PREFIX "{%s}", c->a->id);
    if (evloop_timer_add(c->loop, 0, REGISTRY_INTERVAL_MS, on_registry, c, NULL) != SL_OK ||
        evloop_timer_add(c->loop, SPAN_SHIP_INTERVAL_MS, SPAN_SHIP_INTERVAL_MS, on_spans, c,
                         NULL) != SL_OK) {
        snprintf(err, 256, "out of memory");
        return SL_ENOMEM;
    }
    return SL_OK;
}

/* Everything but the child and the thread. */
static int control_setup(struct control *c, char err[256])
{
    const struct agent_config *cfg = &c->a->cfg;
    c->loop = evloop_new();
    if (!c->loop) {
        snprintf(err, 256, "control loop: out of memory or fds");
        return SL_ENOMEM;
    }
    int rv;
    if (given(cfg->redis) && (rv = redis_setup(c, err)) != SL_OK)
        return rv;
    if (given(cfg->agent_check)) {
        if ((c->check_fd = check_listen(cfg->agent_check, err)) < 0)
            return SL_EINVAL;
        if (evloop_watch_add(c->loop, c->check_fd, EV_READ, on_check_accept, c) != SL_OK) {
            snprintf(err, 256, "--agent-check: cannot watch the listener");
            return SL_EINVAL;
        }
    }
    if (evloop_timer_add(c->loop, CONTROL_TICK_MS, CONTROL_TICK_MS, on_tick, c, NULL) != SL_OK) {
        snprintf(err, 256, "out of memory");
        return SL_ENOMEM;
    }
    return SL_OK;
}

int control_start(struct agent *a, char err[256])
{
    struct control *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, 256, "out of memory");
        return SL_ENOMEM;
    }
    c->a = a;
    c->check_fd = -1;
    atomic_init(&c->child_pid, 0);
    atomic_init(&c->restarts, 0);
    int rv = control_setup(c, err);
    if (rv != SL_OK)
        goto err_free;
    if (given(a->cfg.exec)) {
        c->supervising = true;
        if (child_spawn(c, clock_mono_ms(), 0) != SL_OK) {
            snprintf(err, 256, "--exec: fork: %s", strerror(errno));
            rv = SL_EINVAL;
            goto err_free;
        }
    }
    /* The thread inherits the caller's signal mask (SIGTERM/SIGINT blocked). */
    if ((rv = pthread_create(&c->thread, NULL, control_thread, c)) != 0) {
        snprintf(err, 256, "control thread: %s", strerror(rv));
        rv = SL_ENOMEM;
        goto err_stop_child;
    }
    pthread_setname_np(c->thread, "sluice-control");
    a->control = c;
    return SL_OK;

err_stop_child:
    child_stop(c, 0);
err_free:
    control_free(c);
    return rv;
}

void control_stop(struct agent *a)
{
    struct control *c = a->control;
    if (!c)
        return;
    evloop_stop_async(c->loop);
    pthread_join(c->thread, NULL);
    /* The thread is gone: what follows runs here, alone. */
    child_stop(c, (uint64_t)a->cfg.drain_timeout_s * 1000);
    if (c->redis) {
        spans_ship(c, clock_mono_ms());
        registry_remove(c);
        if (c->spans_lost > 0)
            log_warn("spans lost to redis failures: %llu", (unsigned long long)c->spans_lost);
    }
    a->control = NULL;
    control_free(c);
}
