/*
 * log — structured logging: one JSON object per line on stderr.
 *
 *   {"ts":"2026-11-29T17:26:12.123Z","level":"info","program":"sluice-shortener",
 *    "msg":"listening","request_id":"...","trace_id":"...","listen":"127.0.0.1:9001"}
 *
 * Each line is written with a single write(2), so lines from threads never interleave.
 * Lines longer than LOG_LINE_MAX are cut: members that do not fit are dropped whole and
 * "truncated":true is added, so a cut line is still one JSON object. Bytes that are not
 * UTF-8 are written as U+FFFD.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdbool.h>

#define LOG_LINE_MAX 4096

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Program name and the lowest level written (default "sluice", LOG_INFO). Not thread-safe:
 * call once at start-up. fd defaults to 2. */
void log_setup(const char *program, enum log_level min_level, int fd);
/* Parse "debug"/"info"/"warn"/"error"; false if unknown. */
bool log_level_parse(const char *s, enum log_level *out);

/* A structured event: msg, then optional request and trace ids (NULL to omit), then
 * string key/value pairs (at most 16; later ones are ignored), ended by NULL:
 * log_event(LOG_INFO, rid, NULL, "served", "status", "200", NULL). */
void log_event(enum log_level level, const char *request_id, const char *trace_id,
               const char *msg, ...) __attribute__((sentinel));

/* A free-text event (printf-style msg, no ids). */
void log_msgf(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msgf(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msgf(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msgf(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msgf(LOG_ERROR, __VA_ARGS__)

/* Format one line into out (for tests; log_event uses it); cap >= 64. Returns the length
 * (excluding the NUL, always < cap). */
int log_format(char *out, int cap, enum log_level level, const char *request_id,
               const char *trace_id, const char *msg, const char *const *kv, int nkv);

#endif
