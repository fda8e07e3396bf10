/*
 * redis_fixture — a real redis-server for unit tests: one process on a loopback port (and
 * a unix socket) in its own temporary folder, started and stopped by PID.
 *
 * Test support, not shipped: linked into every unit test, used by the ones that talk to
 * Redis. A test fills in password and args (optional) on a zeroed struct, then calls
 * start/stop/restart as often as it likes; the first start makes the folder and picks a
 * free port (redis_fixture_init, called directly when the port is wanted before the
 * server runs, or must be a given one). The port stays the same so clients can reconnect.
 * Every wait is a poll with a deadline; nothing sleeps a fixed time.
 *
 * Invariants and ownership:
 *   - pid is 0 exactly when no server of ours runs; stop always reaps the child (waitpid),
 *     escalating SIGTERM to SIGKILL after REDIS_FIXTURE_STOP_MS.
 *   - The child asks for PR_SET_PDEATHSIG, so the server dies with the test even when the
 *     test is killed without running atexit (a sanitizer abort, SIGKILL).
 *   - Every initialised fixture sits in a registry (at most REDIS_FIXTURE_MAX) until it
 *     is released; redis_fixture_release_all runs from atexit and from group teardowns.
 *     The caller owns the struct and must keep it alive until then (tests use statics).
 *   - The fixture reads nothing from clock.h: a test may fake the clock while it runs.
 */
#ifndef SLUICE_REDIS_FIXTURE_H
#define SLUICE_REDIS_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define REDIS_FIXTURE_MAX      8    /* live fixtures per process; init fails beyond */
#define REDIS_FIXTURE_START_MS 8000 /* start: until PING is answered, or fail */
#define REDIS_FIXTURE_STOP_MS  5000 /* stop: after SIGTERM, before SIGKILL */

struct redis_fixture {
    pid_t pid;     /* the running redis-server; 0 when stopped */
    uint16_t port; /* loopback TCP port, kept across restarts */
    char dir[64];  /* mkdtemp folder: --dir, redis.log, redis.sock; "" before init */
    char sock[96]; /* the unix socket, "<dir>/redis.sock" */
    /* Set by the test, read at each start: */
    const char *password;    /* --requirepass, or NULL */
    const char *const *args; /* more "--option", "value" words, NULL-terminated; or NULL */
};

/* On a fresh or released fixture: make the folder and take the port, or when port is 0 a
 * free one that no other live fixture has. Registers f for redis_fixture_release_all.
 * Leaves password and args alone. 0, SL_EIO (no folder, no port) or SL_ETOOBIG (more than
 * REDIS_FIXTURE_MAX live fixtures). */
int redis_fixture_init(struct redis_fixture *f, uint16_t port);

/* Start redis-server (on a fresh fixture: redis_fixture_init first, on a free port) and
 * wait until it answers PING (PONG or NOAUTH) on its unix socket and
 * its port. 0; SL_EGONE when it exited (port taken, bad option, not on PATH: the status
 * and the end of redis.log go to stderr); SL_ETIMEOUT after REDIS_FIXTURE_START_MS (it is
 * then stopped); SL_EIO when fork fails; SL_EEXISTS when already running. */
int redis_fixture_start(struct redis_fixture *f);

/* SIGTERM, SIGKILL after REDIS_FIXTURE_STOP_MS, and reap. No-op when not running. */
void redis_fixture_stop(struct redis_fixture *f);

/* Stop, then start again on the same port and folder (a fresh, empty Redis). */
int redis_fixture_restart(struct redis_fixture *f);

/* Stop, remove the folder and forget f; f may be initialised again. */
void redis_fixture_release(struct redis_fixture *f);

/* Release every fixture still registered. Safe from atexit and to call twice. */
void redis_fixture_release_all(void);

/* redis_fixture_release_all shaped as a cmocka group teardown; always 0. */
int redis_fixture_teardown(void **state);

/* A loopback TCP port nobody listens on right now (bound to port 0, read back, closed);
 * 0 on failure. */
uint16_t redis_fixture_free_port(void);

#endif
