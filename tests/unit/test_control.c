/*
 * Tests for agent/control.c: the pure helpers (agent-check line, back-off arithmetic,
 * registration record) with exact values, then the control thread itself against a hand-
 * built struct agent: drain progress, fault expiry, --exec supervision, the agent-check
 * port, and registration + span shipping against a real redis-server (redis_fixture.h) on
 * a free loopback port, always stopped by PID (atexit too; PDEATHSIG should we die).
 *
 * The agent's other modules are not linked: the few functions control.c calls in agent.c
 * and worker.c are defined here (so the linker never pulls agent.o or worker.o out of
 * libagent.a), over a test-only struct worker that is just a span ring.
 * Every wait is a poll with a deadline; nothing sleeps a fixed time to let something
 * happen.
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
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "clock.h"
#include "control.h"
#include "err.h"
#include "log.h"
#include "redis_fixture.h"
#include "spans.h"
#include "worker.h"

#define DEADLINE_MS 8000
#define POLL_NS     (10 * 1000 * 1000)

/* --- stand-ins for agent.c and worker.c ------------------------------------------------ */

struct worker {
    struct span_buffer spans;
};

static atomic_uint fake_in_flight;
static atomic_uint set_faults_calls;

unsigned agent_in_flight(const struct agent *a)
{
    (void)a;
    return atomic_load(&fake_in_flight);
}

const char *agent_state_name(enum agent_state s)
{
    static const char *const names[] = {"serving", "draining", "drained", "maint"};
    return names[s];
}

void agent_set_faults(struct agent *a, const struct fault_set *set)
{
    pthread_mutex_lock(&a->faults_lock);
    a->faults = *set;
    atomic_fetch_add(&a->faults_version, 1);
    pthread_mutex_unlock(&a->faults_lock);
    atomic_fetch_add(&set_faults_calls, 1);
}

void agent_get_faults(struct agent *a, struct fault_set *out)
{
    pthread_mutex_lock(&a->faults_lock);
    *out = a->faults;
    pthread_mutex_unlock(&a->faults_lock);
}

size_t agent_expire_faults(struct agent *a, uint64_t now_ms)
{
    size_t cleared = 0;
    pthread_mutex_lock(&a->faults_lock);
    if (a->faults.n && fault_set_active(&a->faults, now_ms) == 0) {
        cleared = a->faults.n;
        memset(&a->faults, 0, sizeof(a->faults));
        atomic_fetch_add(&a->faults_version, 1);
        atomic_fetch_add(&set_faults_calls, 1);
    }
    pthread_mutex_unlock(&a->faults_lock);
    return cleared;
}

struct span_buffer *worker_spans(struct worker *w)
{
    return w ? &w->spans : NULL; /* agents of some tests have no workers */
}

/* --- fixtures ---------------------------------------------------------------------------- */

static void pause_briefly(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = POLL_NS};
    nanosleep(&ts, NULL);
}

static void agent_fixture(struct agent *a)
{
    memset(a, 0, sizeof(*a));
    a->role = AGENT_ROLE_SIDECAR;
    snprintf(a->id, sizeof(a->id), "r1");
    a->cfg.service = "shortener";
    a->cfg.drain_timeout_s = 5;
    snprintf(a->listen_str, sizeof(a->listen_str), "127.0.0.1:8001");
    snprintf(a->admin_str, sizeof(a->admin_str), "127.0.0.1:8101");
    snprintf(a->upstream_str, sizeof(a->upstream_str), "127.0.0.1:9001");
    a->started_wall_ms = 1764437172123ull;
    atomic_init(&a->state, AGENT_SERVING);
    atomic_init(&a->weight, 100);
    pthread_mutex_init(&a->faults_lock, NULL);
    atomic_store(&fake_in_flight, 0);
    atomic_store(&set_faults_calls, 0);
}

static void start_ok(struct agent *a)
{
    char err[256] = "";
    int rv = control_start(a, err);
    if (rv != SL_OK)
        fail_msg("control_start: %s (%s)", err_name(rv), err);
    assert_non_null(a->control);
}

/* --- pure helpers ---------------------------------------------------------------------- */

static void check_line(enum agent_state state, int weight, const char *want)
{
    char line[AGENT_CHECK_LINE_MAX];
    size_t n = control_agent_check_line(state, weight, line);
    assert_string_equal(line, want);
    assert_int_equal(n, strlen(want));
}

static void test_agent_check_line(void **state)
{
    (void)state;
    check_line(AGENT_SERVING, 100, "up ready 100%\n");
    check_line(AGENT_SERVING, 37, "up ready 37%\n");
    check_line(AGENT_SERVING, 0, "up ready 0%\n");
    check_line(AGENT_SERVING, 250, "up ready 100%\n");
    check_line(AGENT_SERVING, -4, "up ready 0%\n");
    check_line(AGENT_DRAINING, 100, "drain\n");
    check_line(AGENT_DRAINED, 100, "drain\n");
    check_line(AGENT_MAINT, 100, "maint\n");
}

static void test_backoff(void **state)
{
    (void)state;
    static const uint64_t registry[] = {1000, 2000, 4000, 5000, 5000};
    uint64_t d = 0;
    for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
        d = control_backoff_next_ms(d, REGISTRY_BACKOFF_MIN_MS, REGISTRY_BACKOFF_MAX_MS);
        assert_int_equal(d, registry[i]);
    }
    assert_int_equal(control_backoff_next_ms(UINT64_MAX - 1, 1, 5000), 5000); /* no overflow */
    assert_int_equal(control_backoff_next_ms(0, 9000, 5000), 5000);           /* min > max */
    assert_int_equal(control_backoff_next_ms(300, 1000, 5000), 1000);         /* below min */
    assert_int_equal(control_backoff_next_ms(2, 1, 5), 4);                    /* 4 ≤ 5 */
    assert_int_equal(control_backoff_next_ms(3, 1, 5), 5);
}

static void test_exec_restart_delay(void **state)
{
    (void)state;
    /* A child that keeps dying at once: 200 ms doubling to 10 s. */
    static const uint64_t crashing[] = {200, 400, 800, 1600, 3200, 6400, 10000, 10000};
    uint64_t d = 0;
    for (size_t i = 0; i < sizeof(crashing) / sizeof(crashing[0]); i++) {
        d = control_exec_restart_delay_ms(d, 50);
        assert_int_equal(d, crashing[i]);
    }
    /* One that ran 30 s counts as healthy again; 1 ms less does not. */
    assert_int_equal(control_exec_restart_delay_ms(10000, EXEC_STABLE_MS), 200);
    assert_int_equal(control_exec_restart_delay_ms(10000, EXEC_STABLE_MS - 1), 10000);
    assert_int_equal(control_exec_restart_delay_ms(400, 29999), 800);
}

static void test_registration_json(void **state)
{
    (void)state;
    struct agent a;
    agent_fixture(&a);
    atomic_store(&a.state, AGENT_DRAINING);
    atomic_store(&a.weight, 40);
    json_t *rec = control_registration_json(&a);
    assert_non_null(rec);
    char *got = json_dump_compact(rec);
    char want[512];
    snprintf(want, sizeof(want),
             "{\"id\":\"r1\",\"role\":\"sidecar\",\"service\":\"shortener\","
             "\"listen\":\"127.0.0.1:8001\",\"admin\":\"127.0.0.1:8101\","
             "\"upstream\":\"127.0.0.1:9001\",\"state\":\"draining\",\"weight\":40,"
             "\"version\":\"0.1.0\",\"pid\":%d,\"started_at\":\"2025-11-29T17:26:12.123Z\"}",
             (int)getpid());
    assert_string_equal(got, want);
    free(got);
    json_decref(rec);

    /* A gateway without --service and without a single upstream: nulls. */
    a.role = AGENT_ROLE_GATEWAY;
    a.cfg.service = NULL;
    a.upstream_str[0] = '\0';
    atomic_store(&a.state, AGENT_SERVING);
    rec = control_registration_json(&a);
    assert_non_null(rec);
    assert_string_equal(json_string_value(json_object_get(rec, "role")), "gateway");
    assert_true(json_is_null(json_object_get(rec, "service")));
    assert_true(json_is_null(json_object_get(rec, "upstream")));
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "serving");
    json_decref(rec);
    pthread_mutex_destroy(&a.faults_lock);
}

/* --- the thread without Redis ---------------------------------------------------------- */

static bool wait_state(struct agent *a, enum agent_state want)
{
    for (uint64_t end = clock_mono_ms() + DEADLINE_MS; clock_mono_ms() < end; pause_briefly())
        if (atomic_load(&a->state) == (int)want)
            return true;
    return false;
}

static void test_drain_progress(void **state)
{
    (void)state;
    struct agent a;
    agent_fixture(&a);
    start_ok(&a);
    /* Requests in flight: DRAINED only at the deadline. */
    atomic_store(&fake_in_flight, 2);
    uint64_t t0 = clock_mono_ms();
    atomic_store(&a.drain_deadline_ms, t0 + 300);
    atomic_store(&a.state, AGENT_DRAINING);
    assert_true(wait_state(&a, AGENT_DRAINED));
    assert_true(clock_mono_ms() >= t0 + 300);
    /* Nothing in flight: DRAINED at the next tick, long before the deadline. */
    atomic_store(&fake_in_flight, 0);
    t0 = clock_mono_ms();
    atomic_store(&a.drain_deadline_ms, t0 + 60000);
    atomic_store(&a.state, AGENT_DRAINING);
    assert_true(wait_state(&a, AGENT_DRAINED));
    assert_true(clock_mono_ms() < t0 + 60000);
    control_stop(&a);
    assert_null(a.control);
    pthread_mutex_destroy(&a.faults_lock);
}

static void test_fault_expiry(void **state)
{
    (void)state;
    struct agent a;
    agent_fixture(&a);
    uint64_t t0 = clock_mono_ms();
    a.faults.n = 2;
    a.faults.items[0].kind = FAULT_ABORT;
    a.faults.items[0].expires_ms = t0 + 150;
    a.faults.items[1].kind = FAULT_DELAY;
    a.faults.items[1].expires_ms = t0 + 300;
    start_ok(&a);
    for (uint64_t end = t0 + DEADLINE_MS; clock_mono_ms() < end; pause_briefly())
        if (atomic_load(&set_faults_calls) > 0)
            break;
    assert_int_equal(atomic_load(&set_faults_calls), 1);
    assert_true(clock_mono_ms() >= t0 + 300); /* only once the last TTL passed */
    assert_int_equal(a.faults.n, 0);
    control_stop(&a);
    assert_int_equal(atomic_load(&set_faults_calls), 1);
    pthread_mutex_destroy(&a.faults_lock);
}

/* Connects to the agent-check port and reads until the agent closes. */
static void read_check(uint16_t port, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(fd, out + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fd);
}

static void test_agent_check_port(void **state)
{
    (void)state;
    struct agent a;
    char addr[32], line[64];
    agent_fixture(&a);
    uint16_t port = redis_fixture_free_port();
    assert_int_not_equal(port, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
    a.cfg.agent_check = addr;
    start_ok(&a);
    read_check(port, line, sizeof(line));
    assert_string_equal(line, "up ready 100%\n");
    atomic_store(&a.weight, 25);
    read_check(port, line, sizeof(line));
    assert_string_equal(line, "up ready 25%\n");
    atomic_store(&a.state, AGENT_MAINT);
    read_check(port, line, sizeof(line));
    assert_string_equal(line, "maint\n");

    /* A second agent on the same port, and a bad address: SL_EINVAL with a message. */
    struct agent b;
    char err[256] = "";
    agent_fixture(&b);
    b.cfg.agent_check = addr;
    assert_int_equal(control_start(&b, err), SL_EINVAL);
    assert_non_null(strstr(err, "Address already in use"));
    assert_null(b.control);
    b.cfg.agent_check = "no-port";
    assert_int_equal(control_start(&b, err), SL_EINVAL);
    assert_string_equal(err, "--agent-check: expected HOST:PORT, got 'no-port'");
    control_stop(&a);
    pthread_mutex_destroy(&a.faults_lock);
    pthread_mutex_destroy(&b.faults_lock);
}

/* --- --exec ---------------------------------------------------------------------------- */

/* Gone, or a zombie left for an init that does not reap. */
static bool process_gone(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

static bool wait_gone(pid_t pid)
{
    for (uint64_t end = clock_mono_ms() + DEADLINE_MS; clock_mono_ms() < end; pause_briefly())
        if (process_gone(pid))
            return true;
    return false;
}

static void test_exec_restarts(void **state)
{
    (void)state;
    struct agent a;
    agent_fixture(&a);
    a.cfg.exec = "exit 3";
    start_ok(&a);
    /* Restarted after 200 ms, then 400 ms. */
    uint64_t t0 = clock_mono_ms();
    while (control_child_restarts(&a) < 2 && clock_mono_ms() < t0 + DEADLINE_MS)
        pause_briefly();
    assert_true(control_child_restarts(&a) >= 2);
    assert_true(clock_mono_ms() >= t0 + 500); /* 200 + 400, less the first tick's lead */
    control_stop(&a);
    assert_int_equal(control_child_pid(&a), 0);
    pthread_mutex_destroy(&a.faults_lock);
}

/* A child that exits on SIGTERM stops at once. */
static void test_exec_stop(void **state)
{
    (void)state;
    struct agent a;
    agent_fixture(&a);
    a.cfg.exec = "exec sleep 30";
    start_ok(&a);
    pid_t pid = control_child_pid(&a);
    assert_true(pid > 0);
    uint64_t t0 = clock_mono_ms();
    control_stop(&a);
    assert_true(clock_mono_ms() < t0 + 2000);
    assert_true(wait_gone(pid));
    pthread_mutex_destroy(&a.faults_lock);
}

/* A group that ignores SIGTERM (sh and a background sleep) is killed, all of it, once the
 * drain timeout passes. */
static void test_exec_stop_kills_group(void **state)
{
    (void)state;
    struct agent a;
    char dir[] = "/tmp/sluice-control-XXXXXX", cmd[512], path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/pid", dir);
    snprintf(cmd, sizeof(cmd), "trap '' TERM; sleep 30 & echo $! > %s.tmp; mv %s.tmp %s; wait",
             path, path, path);
    agent_fixture(&a);
    a.cfg.exec = cmd;
    a.cfg.drain_timeout_s = 1;
    start_ok(&a);
    pid_t pid = control_child_pid(&a);
    FILE *f = NULL;
    for (uint64_t end = clock_mono_ms() + DEADLINE_MS; !f && clock_mono_ms() < end;)
        if (!(f = fopen(path, "r")))
            pause_briefly();
    assert_non_null(f);
    int grandchild = 0;
    assert_int_equal(fscanf(f, "%d", &grandchild), 1);
    fclose(f);
    uint64_t t0 = clock_mono_ms();
    control_stop(&a);
    uint64_t took = clock_mono_ms() - t0;
    assert_true(took >= 1000 && took < 3000);
    assert_true(wait_gone(pid));
    assert_true(wait_gone(grandchild));
    unlink(path);
    rmdir(dir);
    pthread_mutex_destroy(&a.faults_lock);
}

/* --- Redis: registration and spans ------------------------------------------------------ */

static struct redis_fixture redis;
static char log_path[64];
static int log_fd = -1;

static redisContext *redis_connect(void)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200 * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis.port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static void cleanup_all(void)
{
    redis_fixture_release_all();
    if (log_path[0])
        unlink(log_path);
    log_path[0] = '\0';
}

/* A redis command whose reply the caller frees; NULL when Redis does not answer. */
static redisReply *cmd(const char *fmt, ...)
{
    redisContext *c = redis_connect();
    if (!c)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

static long long cmd_int(const char *fmt, const char *arg)
{
    redisReply *r = cmd(fmt, arg);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static bool wait_int(const char *fmt, const char *arg, long long want)
{
    for (uint64_t end = clock_mono_ms() + DEADLINE_MS; clock_mono_ms() < end; pause_briefly())
        if (cmd_int(fmt, arg) == want)
            return true;
    return false;
}

/* Spans over every entry of sluice:spans, checking each entry's shape. */
static size_t stream_span_count(void)
{
    redisReply *r = cmd("XRANGE %s - +", SPANS_STREAM_KEY);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    size_t total = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *fields = r->element[i]->element[1];
        assert_int_equal(fields->elements, 2);
        assert_string_equal(fields->element[0]->str, "otlp");
        json_t *doc = json_loads(fields->element[1]->str, 0, NULL);
        assert_non_null(doc);
        json_t *rs = json_array_get(json_object_get(doc, "resourceSpans"), 0);
        json_t *spans =
            json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans");
        total += json_array_size(spans);
        json_decref(doc);
    }
    freeReplyObject(r);
    return total;
}

static void push_spans(struct worker *w, unsigned n, uint64_t first)
{
    for (unsigned i = 0; i < n; i++) {
        struct span s;
        memset(&s, 0, sizeof(s));
        s.trace_id[0] = s.span_id[0] = 1;
        s.start_unix_ns = first + i;
        snprintf(s.name, sizeof(s.name), "GET /");
        span_buffer_push(&w->spans, &s);
    }
}

/* Occurrences of needle in everything logged so far. */
static size_t log_count(const char *needle)
{
    off_t size = lseek(log_fd, 0, SEEK_END);
    assert_true(size >= 0);
    char *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    ssize_t n = pread(log_fd, buf, (size_t)size, 0);
    buf[n > 0 ? n : 0] = '\0';
    size_t count = 0;
    for (const char *p = buf; (p = strstr(p, needle)) != NULL; p++)
        count++;
    free(buf);
    return count;
}

static void test_registry_and_spans(void **state)
{
    (void)state;
    struct agent a;
    struct worker w[2];
    char url[64];
    agent_fixture(&a);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", redis.port);
    a.cfg.redis = url;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(span_buffer_init(&w[i].spans), SL_OK);
        a.workers[i] = &w[i];
    }
    a.nworkers = 2;
    /* Waiting before the start, so the first shipment takes all 3 + 600 spans, from two
     * workers, in batches of SPANS_BATCH_MAX (128). */
    push_spans(&w[0], 3, 100);
    push_spans(&w[1], 600, 200);
    start_ok(&a);
    assert_true(wait_int("SISMEMBER sluice:agents %s", "r1", 1));
    redisReply *r = cmd("GET %s", "sluice:agent:{r1}");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    json_t *rec = json_loads(r->str, 0, NULL);
    freeReplyObject(r);
    assert_string_equal(json_string_value(json_object_get(rec, "state")), "serving");
    assert_int_equal(json_integer_value(json_object_get(rec, "pid")), getpid());
    json_decref(rec);
    long long ttl = cmd_int("TTL %s", "sluice:agent:{r1}");
    assert_true(ttl >= 1 && ttl <= REGISTRY_TTL_S);

    for (uint64_t end = clock_mono_ms() + DEADLINE_MS; clock_mono_ms() < end; pause_briefly())
        if (stream_span_count() == 603)
            break;
    assert_int_equal(stream_span_count(), 603);
    assert_int_equal(cmd_int("XLEN %s", SPANS_STREAM_KEY), 5); /* 4 × 128 + 91 */

    /* Shipped on stop; the record and the set member are removed. */
    push_spans(&w[1], 5, 900);
    control_stop(&a);
    assert_int_equal(stream_span_count(), 608);
    assert_int_equal(cmd_int("EXISTS %s", "sluice:agent:{r1}"), 0);
    assert_int_equal(cmd_int("SISMEMBER sluice:agents %s", "r1"), 0);
    for (int i = 0; i < 2; i++)
        span_buffer_release(&w[i].spans);
    pthread_mutex_destroy(&a.faults_lock);
}

/* Redis down at start: one warning for the outage, registration once it is back. */
static void test_redis_outage(void **state)
{
    (void)state;
    redis_fixture_stop(&redis);
    struct agent a;
    char url[64];
    agent_fixture(&a);
    snprintf(a.id, sizeof(a.id), "r2");
    snprintf(url, sizeof(url), "redis://127.0.0.1:%u", redis.port);
    a.cfg.redis = url;
    start_ok(&a);
    const char *warning = "redis unavailable, retrying with back-off";
    for (uint64_t end = clock_mono_ms() + DEADLINE_MS; clock_mono_ms() < end; pause_briefly())
        if (log_count(warning) > 0)
            break;
    assert_int_equal(log_count(warning), 1);
    assert_int_equal(redis_fixture_start(&redis), SL_OK);
    assert_true(wait_int("SISMEMBER sluice:agents %s", "r2", 1));
    /* the recovery line is logged just after the write that made us a member: poll */
    for (uint64_t end = clock_mono_ms() + DEADLINE_MS; clock_mono_ms() < end; pause_briefly())
        if (log_count("redis available again") > 0)
            break;
    assert_int_equal(log_count(warning), 1); /* once per outage, however many retries */
    assert_int_equal(log_count("redis available again"), 1);
    control_stop(&a);
    assert_int_equal(cmd_int("SISMEMBER sluice:agents %s", "r2"), 0);
    pthread_mutex_destroy(&a.faults_lock);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* store_redis.h: programs must ignore SIGPIPE */
    atexit(cleanup_all);
    strcpy(log_path, "/tmp/sluice-control-log-XXXXXX");
    if ((log_fd = mkstemp(log_path)) < 0)
        return -1;
    log_setup("test_control", LOG_INFO, log_fd);
    return redis_fixture_start(&redis) == SL_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    cleanup_all();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_agent_check_line),   cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_exec_restart_delay), cmocka_unit_test(test_registration_json),
        cmocka_unit_test(test_drain_progress),     cmocka_unit_test(test_fault_expiry),
        cmocka_unit_test(test_agent_check_port),   cmocka_unit_test(test_exec_restarts),
        cmocka_unit_test(test_exec_stop),          cmocka_unit_test(test_exec_stop_kills_group),
        cmocka_unit_test(test_registry_and_spans), cmocka_unit_test(test_redis_outage),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
