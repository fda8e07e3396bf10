#include "redis_url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "err.h"

#define SCHEME_MAX_BYTES 16
#define EXPECTED_SCHEMES "(expected redis:// or unix://)"

typedef int (*url_parse_fn)(const char *rest, struct redis_url *u, char *err);

__attribute__((format(printf, 3, 4))) static int fail(char *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, 128, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into out (cap bytes with the NUL); what names the part. */
static int decode_part(const char *s, size_t n, char *out, size_t cap, const char *what, char *err)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hex_value(s[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
            if (lo < 0)
                return fail(err, SL_EPARSE, "bad percent-encoding in %s", what);
            c = hi * 16 + lo;
            if (c == 0)
                return fail(err, SL_EPARSE, "%s contains %%00", what);
            i += 2;
        }
        if (o + 1 >= cap)
            return fail(err, SL_ETOOBIG, "%s longer than %zu bytes", what, cap - 1);
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* "[user]:password" — the colon is required and the password may not be empty. */
static int parse_userinfo(const char *s, size_t n, struct redis_url *u, char *err)
{
    const char *colon = memchr(s, ':', n);
    if (!colon)
        return fail(err, SL_EPARSE, "userinfo must be [user]:password (missing ':')");
    size_t user_len = (size_t)(colon - s);
    if (user_len + 1 == n)
        return fail(err, SL_EPARSE, "password is empty");
    int rc = decode_part(s, user_len, u->user, sizeof(u->user), "user", err);
    if (rc == 0)
        rc = decode_part(colon + 1, n - user_len - 1, u->password, sizeof(u->password), "password",
                         err);
    return rc;
}

/* Decimal digits only, at most max; false for empty, signs, spaces or overflow. */
static bool parse_number(const char *s, size_t n, long max, long *out)
{
    long v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return false;
    }
    *out = v;
    return true;
}

static int parse_port(const char *s, size_t n, struct redis_url *u, char *err)
{
    long v;
    if (!parse_number(s, n, 65535, &v) || v == 0)
        return fail(err, SL_ERANGE, "port must be 1-65535");
    u->port = (uint16_t)v;
    return 0;
}

static int parse_db(const char *s, size_t n, struct redis_url *u, char *err)
{
    long v;
    if (!parse_number(s, n, REDIS_URL_MAX_DB, &v))
        return fail(err, SL_ERANGE, "db must be 0-%d", REDIS_URL_MAX_DB);
    u->db = (int)v;
    return 0;
}

/* "[v6]" followed by nothing or ":port". */
static int parse_ipv6(const char *s, size_t n, struct redis_url *u, char *err)
{
    const char *close = memchr(s, ']', n);
    if (!close)
        return fail(err, SL_EPARSE, "IPv6 address is missing ']'");
    size_t len = (size_t)(close - s - 1);
    struct in6_addr addr;
    if (len == 0 || len >= INET6_ADDRSTRLEN)
        return fail(err, SL_EPARSE, "invalid IPv6 address");
    memcpy(u->host, s + 1, len);
    u->host[len] = '\0';
    if (inet_pton(AF_INET6, u->host, &addr) != 1)
        return fail(err, SL_EPARSE, "invalid IPv6 address");
    size_t after = (size_t)(close + 1 - s);
    if (after == n)
        return 0;
    if (s[after] != ':')
        return fail(err, SL_EPARSE, "unexpected character after IPv6 address");
    return parse_port(s + after + 1, n - after - 1, u, err);
}

static bool is_host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* "host[:port]" with host a name, IPv4 address or bracketed IPv6 address. */
static int parse_hostport(const char *s, size_t n, struct redis_url *u, char *err)
{
    if (n > 0 && s[0] == '[')
        return parse_ipv6(s, n, u, err);
    const char *colon = memchr(s, ':', n);
    size_t host_len = colon ? (size_t)(colon - s) : n;
    if (colon && memchr(colon + 1, ':', n - host_len - 1))
        return fail(err, SL_EPARSE, "IPv6 address must be in brackets");
    if (host_len == 0)
        return fail(err, SL_EPARSE, "host is empty");
    if (host_len >= sizeof(u->host))
        return fail(err, SL_ETOOBIG, "host longer than %zu bytes", sizeof(u->host) - 1);
    for (size_t i = 0; i < host_len; i++)
        if (!is_host_char(s[i]))
            return fail(err, SL_EPARSE, "host contains an invalid character");
    memcpy(u->host, s, host_len);
    u->host[host_len] = '\0';
    if (!colon)
        return 0;
    return parse_port(colon + 1, n - host_len - 1, u, err);
}

/* After "redis://": [[user]:password@]host[:port][/db]. */
static int parse_tcp(const char *rest, struct redis_url *u, char *err)
{
    size_t n = strlen(rest);
    const char *at = memrchr(rest, '@', n);
    int rc = 0;
    if (at) {
        rc = parse_userinfo(rest, (size_t)(at - rest), u, err);
        rest = at + 1;
    }
    if (rc != 0)
        return rc;
    if (strchr(rest, '?'))
        return fail(err, SL_EPARSE,
                    "query parameters are not supported in redis:// URLs (db goes in the path)");
    const char *slash = strchr(rest, '/');
    size_t hp_len = slash ? (size_t)(slash - rest) : strlen(rest);
    u->port = REDIS_URL_DEFAULT_PORT;
    rc = parse_hostport(rest, hp_len, u, err);
    if (rc == 0 && slash && slash[1] != '\0')
        rc = parse_db(slash + 1, strlen(slash + 1), u, err);
    return rc;
}

/* "db=N[&db=N...]" — db is the only parameter; the last one wins. */
static int parse_unix_query(const char *q, struct redis_url *u, char *err)
{
    for (;;) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len < 3 || strncmp(q, "db=", 3) != 0)
            return fail(err, SL_EPARSE, "unknown query parameter (expected db=N)");
        int rc = parse_db(q + 3, len - 3, u, err);
        if (rc != 0 || !amp)
            return rc;
        q = amp + 1;
    }
}

/* After "unix://": [[user]:password@]/path[?db=N]. */
static int parse_unix(const char *rest, struct redis_url *u, char *err)
{
    int rc = 0;
    if (rest[0] != '/') {
        const char *at = strchr(rest, '@');
        if (at)
            rc = parse_userinfo(rest, (size_t)(at - rest), u, err);
        rest = at ? at + 1 : rest;
    }
    if (rc != 0)
        return rc;
    if (rest[0] != '/')
        return fail(err, SL_EPARSE, "unix socket path must be absolute (unix:///path/to/sock)");
    const char *q = strchr(rest, '?');
    size_t len = q ? (size_t)(q - rest) : strlen(rest);
    if (len < 2)
        return fail(err, SL_EPARSE, "unix socket path is empty");
    if (len >= sizeof(u->unix_path))
        return fail(err, SL_ETOOBIG, "unix socket path longer than %zu bytes",
                    sizeof(u->unix_path) - 1);
    memcpy(u->unix_path, rest, len);
    u->unix_path[len] = '\0';
    return q ? parse_unix_query(q + 1, u, err) : 0;
}

static const struct {
    const char *scheme;
    url_parse_fn parse;
} url_schemes[] = {
    {"redis", parse_tcp},
    {"unix", parse_unix},
};

/* Scheme chars per RFC 3986 §3.1; only such a scheme is quoted back in a message. */
static bool is_plain_scheme(const char *s, size_t n)
{
    if (n == 0 || n > SCHEME_MAX_BYTES)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.')
            return false;
    return true;
}

static url_parse_fn find_scheme(const char *url, size_t n, char *err)
{
    for (size_t i = 0; i < sizeof(url_schemes) / sizeof(url_schemes[0]); i++)
        if (strlen(url_schemes[i].scheme) == n && strncasecmp(url, url_schemes[i].scheme, n) == 0)
            return url_schemes[i].parse;
    if (is_plain_scheme(url, n))
        fail(err, SL_EPARSE, "unsupported scheme '%.*s' " EXPECTED_SCHEMES, (int)n, url);
    else
        fail(err, SL_EPARSE, "unsupported scheme " EXPECTED_SCHEMES);
    return NULL;
}

int redis_url_parse(const char *url, struct redis_url *out, char err[128])
{
    if (!url || !out)
        return fail(err, SL_EINVAL, "no URL given");
    if (strnlen(url, REDIS_URL_MAX_BYTES + 1) > REDIS_URL_MAX_BYTES)
        return fail(err, SL_ETOOBIG, "URL longer than %d bytes", REDIS_URL_MAX_BYTES);
    const char *sep = strstr(url, "://");
    if (!sep)
        return fail(err, SL_EPARSE, "missing scheme " EXPECTED_SCHEMES);
    url_parse_fn parse = find_scheme(url, (size_t)(sep - url), err);
    if (!parse)
        return SL_EPARSE;
    struct redis_url u;
    memset(&u, 0, sizeof(u));
    int rc = parse(sep + 3, &u, err);
    if (rc == 0)
        *out = u;
    return rc;
}

/* Percent-encode everything but RFC 3986 unreserved characters. */
static void encode_part(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c && o + 4 <= cap; c++) {
        if (isalnum(*c) || *c == '-' || *c == '.' || *c == '_' || *c == '~') {
            out[o++] = (char)*c;
        } else {
            out[o++] = '%';
            out[o++] = hex[*c >> 4];
            out[o++] = hex[*c & 15];
        }
    }
    out[o] = '\0';
}

void redis_url_format(const struct redis_url *u, char *out, size_t cap)
{
    char user[sizeof(u->user) * 3];
    char userinfo[sizeof(user) + 8] = "";
    if (cap == 0)
        return;
    encode_part(u->user, user, sizeof(user));
    if (u->password[0])
        snprintf(userinfo, sizeof(userinfo), "%s:***@", user);
    else if (u->user[0])
        snprintf(userinfo, sizeof(userinfo), "%s@", user);
    if (u->unix_path[0])
        snprintf(out, cap, "unix://%s%s?db=%d", userinfo, u->unix_path, u->db);
    else if (strchr(u->host, ':'))
        snprintf(out, cap, "redis://%s[%s]:%u/%d", userinfo, u->host, u->port, u->db);
    else
        snprintf(out, cap, "redis://%s%s:%u/%d", userinfo, u->host, u->port, u->db);
}
