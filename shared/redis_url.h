/*
 * redis_url — parse and print the Redis URLs that every program takes as --redis.
 *
 * Pure: no I/O, no allocation. Two forms (DESIGN.md §4.0):
 *
 *   redis://[[user]:password@]host[:port][/db]     port 1-65535 (default 6379), db 0-15
 *   unix://[[user]:password@]/path/to/sock[?db=N]  (default 0)
 *
 * The scheme is case-insensitive. host is a name, an IPv4 address or an IPv6 address in
 * brackets ("redis://[::1]:6380/2"; stored without the brackets). user and password are
 * percent-decoded (%40 = '@'); in redis:// URLs the userinfo ends at the last '@', so a
 * raw '@' or '/' in a password works there, but in unix:// URLs it ends at the first '@'
 * and a '@' in the password must be written %40. "[user]:password@" means Redis 6 ACL
 * AUTH user password; ":password@" means the legacy AUTH password.
 *
 * Error messages name the part that is wrong and never quote the input, because a
 * mistyped URL can put the password where the host or port should be.
 */
#ifndef SLUICE_REDIS_URL_H
#define SLUICE_REDIS_URL_H

#include <stddef.h>
#include <stdint.h>

#define REDIS_URL_MAX_BYTES    1024 /* longer input is rejected (SL_ETOOBIG) */
#define REDIS_URL_DEFAULT_PORT 6379
#define REDIS_URL_MAX_DB       15

struct redis_url {
    char host[256];      /* "" for unix sockets; IPv6 without brackets */
    uint16_t port;       /* 0 for unix sockets */
    int db;              /* 0..REDIS_URL_MAX_DB */
    char user[128];      /* "" = no ACL user */
    char password[256];  /* "" = no AUTH */
    char unix_path[108]; /* "" for TCP; sizeof(sun_path) */
};

/* Parse url into *out. Returns 0, or SL_EINVAL (NULL url/out), SL_EPARSE (bad syntax or
 * scheme), SL_ERANGE (port or db out of range), SL_ETOOBIG (a part too long) with a
 * one-line message in err (may be NULL). *out is written only on success. */
int redis_url_parse(const char *url, struct redis_url *out, char err[128]);

/* The URL for logs: never the password ("redis://127.0.0.1:6379/0",
 * "redis://alice:***@[::1]:6380/2", "unix:///run/redis.sock?db=0"). Always
 * NUL-terminated; cut to cap - 1 bytes. */
void redis_url_format(const struct redis_url *u, char *out, size_t cap);

#endif
