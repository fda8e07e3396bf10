#include "log.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

static const char *log_program = "sluice";
static enum log_level log_min = LOG_INFO;
static int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(const char *program, enum log_level min_level, int fd)
{
    if (program)
        log_program = program;
    log_min = min_level;
    log_fd = fd >= 0 ? fd : 2;
}

bool log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629 §4: no overlongs, no surrogates,
 * nothing past U+10FFFF), or 0. s is NUL-terminated, so this never reads past it. */
static int utf8_len(const unsigned char *s)
{
    int n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/* Encodes the character at s for a JSON string into e (at most 6 bytes, length in *elen);
 * returns how many bytes of s it used. Control characters are escaped, and a byte that is
 * not UTF-8 becomes U+FFFD: a stray byte from a request must not make the line invalid. */
static int json_char(const unsigned char *s, char e[6], int *elen)
{
    static const char hex[] = "0123456789abcdef";
    if (*s == '"' || *s == '\\' || *s == '\n') {
        e[0] = '\\';
        e[1] = *s == '\n' ? 'n' : (char)*s;
        *elen = 2;
        return 1;
    }
    if (*s < 0x20 || *s == 0x7f) {
        memcpy(e, "\\u00", 4);
        e[4] = hex[*s >> 4];
        e[5] = hex[*s & 15];
        *elen = 6;
        return 1;
    }
    int n = *s < 0x80 ? 1 : utf8_len(s);
    if (n == 0) {
        memcpy(e, "\\ufffd", 6);
        *elen = 6;
        return 1;
    }
    memcpy(e, s, (size_t)n);
    *elen = n;
    return n;
}

/* Appends s as a JSON string (with quotes) to out[*pos..lim); false when it did not fit
 * (out past *pos is then scratch and *pos is unchanged). */
static bool put_str(char *out, int lim, int *pos, const char *s)
{
    int p = *pos;
    if (p + 2 > lim)
        return false;
    out[p++] = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c;) {
        char e[6];
        int elen;
        c += json_char(c, e, &elen);
        if (p + elen + 1 > lim)
            return false;
        memcpy(out + p, e, (size_t)elen);
        p += elen;
    }
    out[p++] = '"';
    *pos = p;
    return true;
}

static bool put_raw(char *out, int lim, int *pos, const char *s)
{
    size_t n = strlen(s);
    if (n > (size_t)(lim - *pos))
        return false;
    memcpy(out + *pos, s, n);
    *pos += (int)n;
    return true;
}

/* A line being built. Members are only ever dropped whole: `safe` is the end of the last
 * complete member after which the truncation mark still fits. */
struct log_line {
    char *out;
    int cap;
    int pos;
    int safe;
    bool ok;
};

#define LOG_TRUNC_MARK ",\"truncated\":true"
/* After `safe`: the mark, "}\n" and the NUL. */
#define LOG_TRUNC_ROOM ((int)sizeof(LOG_TRUNC_MARK) + 2)

static void line_member(struct log_line *l, const char *k, const char *v)
{
    if (!l->ok)
        return;
    int lim = l->cap - 3; /* "}\n" and the NUL */
    l->ok = put_raw(l->out, lim, &l->pos, ",") && put_str(l->out, lim, &l->pos, k) &&
            put_raw(l->out, lim, &l->pos, ":") && put_str(l->out, lim, &l->pos, v);
    if (l->ok && l->pos <= l->cap - LOG_TRUNC_ROOM)
        l->safe = l->pos;
}

int log_format(char *out, int cap, enum log_level level, const char *request_id,
               const char *trace_id, const char *msg, const char *const *kv, int nkv)
{
    /* {"ts":"<24>"} plus the truncation mark always fit: smaller is a caller bug. */
    assert(cap >= 64);
    char ts[32];
    clock_format_iso8601(clock_wall_ms(), ts);
    struct log_line l = {.out = out, .cap = cap, .pos = 0, .ok = true};
    put_raw(out, cap, &l.pos, "{\"ts\":");
    put_str(out, cap, &l.pos, ts);
    l.safe = l.pos;
    line_member(&l, "level", level_names[level]);
    line_member(&l, "program", log_program);
    line_member(&l, "msg", msg);
    if (request_id)
        line_member(&l, "request_id", request_id);
    if (trace_id)
        line_member(&l, "trace_id", trace_id);
    for (int i = 0; i + 1 < nkv; i += 2)
        line_member(&l, kv[i], kv[i + 1] ? kv[i + 1] : "");
    if (!l.ok) {
        l.pos = l.safe;
        put_raw(out, cap, &l.pos, LOG_TRUNC_MARK);
    }
    out[l.pos++] = '}';
    out[l.pos++] = '\n';
    out[l.pos] = '\0';
    return l.pos;
}

static void log_write(enum log_level level, const char *request_id, const char *trace_id,
                      const char *msg, const char *const *kv, int nkv)
{
    char line[LOG_LINE_MAX];
    int n = log_format(line, sizeof(line), level, request_id, trace_id, msg, kv, nkv);
    ssize_t w = write(log_fd, line, (size_t)n);
    (void)w; /* nowhere to report a failed log write */
}

void log_event(enum log_level level, const char *request_id, const char *trace_id,
               const char *msg, ...)
{
    if (level < log_min)
        return;
    const char *kv[32];
    int nkv = 0;
    va_list ap;
    va_start(ap, msg);
    for (const char *k; nkv < 32 && (k = va_arg(ap, const char *)) != NULL;)
        kv[nkv++] = k;
    va_end(ap);
    log_write(level, request_id, trace_id, msg, kv, nkv);
}

void log_msgf(enum log_level level, const char *fmt, ...)
{
    if (level < log_min)
        return;
    char msg[LOG_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_write(level, NULL, NULL, msg, NULL, 0);
}
