/*
 * redis_fixture — see redis_fixture.h. Plain libc: PING is spoken over a raw socket so
 * that this object links into every unit test without pulling anything in.
 */
#include "redis_fixture.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

#define DIR_TEMPLATE     "/tmp/sluice-redis-XXXXXX"
#define POLL_INTERVAL_NS (10 * 1000 * 1000)
#define PING_TIMEOUT_MS  200
#define PORT_TRIES       16   /* free ports drawn before init gives up */
#define LOG_TAIL_BYTES   2048 /* of redis.log, shown when the server exits during start */
#define ARGV_MAX         64   /* fixed words + password + args + NULL; more: start fails */

static struct redis_fixture *registry[REDIS_FIXTURE_MAX];
static bool atexit_installed;

/* --- time --------------------------------------------------------------------------- */

/* The real monotonic clock, never clock.h's fake. */
static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_briefly(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = POLL_INTERVAL_NS};
    nanosleep(&ts, NULL);
}

/* --- registry ----------------------------------------------------------------------- */

static int registry_add(struct redis_fixture *f)
{
    int slot = -1;
    for (int i = 0; i < REDIS_FIXTURE_MAX; i++) {
        if (registry[i] == f)
            return SL_OK;
        if (!registry[i] && slot < 0)
            slot = i;
    }
    if (slot < 0)
        return SL_ETOOBIG;
    registry[slot] = f;
    if (!atexit_installed)
        atexit_installed = atexit(redis_fixture_release_all) == 0;
    return SL_OK;
}

/* Another live fixture already has port (chosen, perhaps not yet listening). */
static bool registry_has_port(uint16_t port)
{
    for (int i = 0; i < REDIS_FIXTURE_MAX; i++)
        if (registry[i] && registry[i]->port == port)
            return true;
    return false;
}

static void registry_remove(const struct redis_fixture *f)
{
    for (int i = 0; i < REDIS_FIXTURE_MAX; i++)
        if (registry[i] == f)
            registry[i] = NULL;
}

/* --- the server process --------------------------------------------------------------- */

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return a;
}

uint16_t redis_fixture_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = loopback(0);
    socklen_t len = sizeof(a);
    if (fd < 0)
        return 0;
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &len) == 0;
    close(fd);
    return ok ? ntohs(a.sin_port) : 0;
}

/* Runs in the child: never returns. Exit 126: the parent is gone already; 125: too many
 * words for argv; 127: no redis-server on PATH. */
static void server_exec(const struct redis_fixture *f, pid_t parent)
{
    /* Should the test die without running atexit (a sanitizer abort, SIGKILL), the kernel
     * stops the server too. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
        _exit(126);
    char port[8], logfile[128];
    snprintf(port, sizeof(port), "%u", f->port);
    snprintf(logfile, sizeof(logfile), "%s/redis.log", f->dir);
    /* one option and its value per pair, not one word per line */
    /* clang-format off */
    const char *argv[ARGV_MAX] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", f->dir,
                                  "--unixsocket", f->sock, "--unixsocketperm", "700",
                                  "--logfile", logfile};
    /* clang-format on */
    size_t n = 0;
    while (argv[n])
        n++;
    if (f->password) {
        argv[n++] = "--requirepass";
        argv[n++] = f->password;
    }
    for (size_t i = 0; f->args && f->args[i]; i++) {
        if (n == ARGV_MAX - 1)
            _exit(125);
        argv[n++] = f->args[i];
    }
    argv[n] = NULL;
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

/* Anything answered to PING at addr (PONG, or NOAUTH when it has a password). */
static bool answers_ping(const struct sockaddr *addr, socklen_t len)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct timeval tv = {.tv_sec = 0, .tv_usec = PING_TIMEOUT_MS * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* bounds connect too */
    static const char ping[] = "PING\r\n";
    char reply[64];
    bool up = connect(fd, addr, len) == 0 &&
              send(fd, ping, sizeof(ping) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(ping) - 1 &&
              recv(fd, reply, sizeof(reply), 0) > 0;
    close(fd);
    return up;
}

/* Up when ours answers on its unix socket, which lives in our folder, and then on the
 * port. A PING over TCP alone could be answered by whoever already holds the port, while
 * ours is about to fail to bind it and exit; redis-server binds TCP before the socket. */
static bool server_answers(const struct redis_fixture *f)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct sockaddr_in in = loopback(f->port);
    snprintf(un.sun_path, sizeof(un.sun_path), "%s", f->sock);
    return answers_ping((struct sockaddr *)&un, sizeof(un)) &&
           answers_ping((struct sockaddr *)&in, sizeof(in));
}

/* Why start failed, on stderr: the exit status and the end of redis.log (the folder is
 * gone by the time anyone reads the test's output). */
static void report_early_exit(const struct redis_fixture *f, int status)
{
    char path[sizeof(f->dir) + 16], tail[LOG_TAIL_BYTES + 1];
    fprintf(stderr, "redis_fixture: redis-server on port %u exited (status %d)%s\n", f->port,
            WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            WIFEXITED(status) && WEXITSTATUS(status) == 127 ? ": not on PATH?" : "");
    snprintf(path, sizeof(path), "%s/redis.log", f->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > LOG_TAIL_BYTES ? size - LOG_TAIL_BYTES : 0;
    ssize_t n = pread(fd, tail, LOG_TAIL_BYTES, from);
    close(fd);
    if (n > 0) {
        tail[n] = '\0';
        fprintf(stderr, "%s", tail);
    }
}

/* --- the API ------------------------------------------------------------------------- */

int redis_fixture_init(struct redis_fixture *f, uint16_t port)
{
    f->pid = 0;
    for (int i = 0; port == 0 && i < PORT_TRIES; i++) {
        uint16_t p = redis_fixture_free_port();
        if (p && !registry_has_port(p))
            port = p;
    }
    if (port == 0)
        return SL_EIO;
    f->port = port;
    snprintf(f->dir, sizeof(f->dir), "%s", DIR_TEMPLATE);
    if (!mkdtemp(f->dir)) {
        f->dir[0] = '\0';
        return SL_EIO;
    }
    snprintf(f->sock, sizeof(f->sock), "%s/redis.sock", f->dir);
    int rc = registry_add(f);
    if (rc != SL_OK)
        goto err_remove_dir;
    return SL_OK;

err_remove_dir:
    rmdir(f->dir);
    f->dir[0] = '\0';
    return rc;
}

int redis_fixture_start(struct redis_fixture *f)
{
    if (f->pid > 0)
        return SL_EEXISTS;
    if (f->dir[0] == '\0') {
        int rc = redis_fixture_init(f, 0);
        if (rc != SL_OK)
            return rc;
    }
    pid_t parent = getpid();
    f->pid = fork();
    if (f->pid == 0)
        server_exec(f, parent);
    if (f->pid < 0) {
        f->pid = 0;
        return SL_EIO;
    }
    for (uint64_t end = now_ms() + REDIS_FIXTURE_START_MS; now_ms() < end; pause_briefly()) {
        int status;
        if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
            f->pid = 0;
            report_early_exit(f, status);
            return SL_EGONE;
        }
        if (server_answers(f))
            return SL_OK;
    }
    fprintf(stderr, "redis_fixture: redis-server on port %u silent for %d ms\n", f->port,
            REDIS_FIXTURE_START_MS);
    redis_fixture_stop(f);
    return SL_ETIMEOUT;
}

void redis_fixture_stop(struct redis_fixture *f)
{
    if (f->pid <= 0)
        return;
    kill(f->pid, SIGTERM);
    uint64_t end = now_ms() + REDIS_FIXTURE_STOP_MS;
    while (waitpid(f->pid, NULL, WNOHANG) == 0) {
        if (now_ms() > end) {
            kill(f->pid, SIGKILL);
            waitpid(f->pid, NULL, 0);
            break;
        }
        pause_briefly();
    }
    f->pid = 0;
}

int redis_fixture_restart(struct redis_fixture *f)
{
    redis_fixture_stop(f);
    return redis_fixture_start(f);
}

static void remove_dir(struct redis_fixture *f)
{
    DIR *d = f->dir[0] ? opendir(f->dir) : NULL;
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[sizeof(f->dir) + sizeof(e->d_name) + 1];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(f->dir);
    f->dir[0] = '\0';
}

void redis_fixture_release(struct redis_fixture *f)
{
    redis_fixture_stop(f);
    remove_dir(f);
    registry_remove(f);
}

void redis_fixture_release_all(void)
{
    for (int i = 0; i < REDIS_FIXTURE_MAX; i++)
        if (registry[i])
            redis_fixture_release(registry[i]);
}

int redis_fixture_teardown(void **state)
{
    (void)state;
    redis_fixture_release_all();
    return 0;
}
