/*
 * client — the TUI's and the CLI's calls to sluice-server (docs/server.md): blocking
 * libcurl requests with timeouts, JSON in and out, errors turned into one sentence that
 * says what to do next. The server URL and token come from --server/--token or
 * SLUICE_SERVER / SLUICE_TOKEN (default http://127.0.0.1:7700).
 */
#ifndef TUI_CLIENT_H
#define TUI_CLIENT_H

#include <stdbool.h>

#include "json.h"

#define CLIENT_ERR_MAX 512

struct client {
    char base[256];  /* "http://127.0.0.1:7700", no trailing slash */
    char token[256]; /* "" = none */
    long timeout_ms;
};

/* What a call ended with. */
enum client_result {
    CLIENT_OK,           /* 2xx; *out is the JSON body (or NULL when empty) */
    CLIENT_HTTP_ERROR,   /* 4xx/5xx; *out is the problem document when JSON */
    CLIENT_UNREACHABLE,  /* no answer: connection refused, timeout, DNS */
    CLIENT_BAD_RESPONSE, /* 2xx but not JSON */
};

struct client_reply {
    enum client_result result;
    long status;                /* HTTP status; 0 when unreachable */
    json_t *body;               /* owned; NULL when none or not JSON */
    char error[CLIENT_ERR_MAX]; /* one sentence for humans when result != CLIENT_OK,
                                 * e.g. "sluice-server at http://... did not answer: is it
                                 * running? (--server, SLUICE_SERVER)", or the problem's
                                 * title, detail and field errors, "... (needs the operator
                                 * role: use an operator key with --token)" for 403 */
    char etag[64];              /* ETag of the answer, "" when none */
};

/* base/token may be NULL: then SLUICE_SERVER / SLUICE_TOKEN, then the defaults. */
void client_init(struct client *c, const char *base, const char *token);
/* method path (e.g. "/v1/limits/x"), body NULL or a JSON value (not stolen), extra header
 * lines NULL-terminated (e.g. {"If-Match: \"3\"", NULL}) or NULL. Always fills *r;
 * client_reply_release frees its body. */
void client_call(const struct client *c, const char *method, const char *path,
                 const json_t *body, const char *const *headers, struct client_reply *r);
void client_reply_release(struct client_reply *r);

#endif
