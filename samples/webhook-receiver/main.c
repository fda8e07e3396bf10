/*
 * sluice-webhook-receiver — the other half of the webhook exercise: an endpoint that
 * verifies Standard Webhooks deliveries (shared/webhook.h) and remembers what it got, so
 * tests and the demo can see what the worker sent and drive its retries.
 *
 *   POST any path     verify; 400 malformed headers, 401 bad signature or a timestamp
 *                     outside --tolerance-s (problem+json naming why), 409 a replay of an
 *                     accepted webhook-id; otherwise answer --status (204; 500 or 410 let
 *                     a test drive the sender's retries and its stop on 410)
 *   GET /v1/received  the last RECEIVER_EVENTS_MAX deliveries, oldest first
 *   GET /healthz      {"status":"ok"}
 * Every delivery is logged to stderr and, with --log FILE, appended to FILE as one JSON
 * line (the same object /v1/received lists).
 *
 * State: one struct receiver, behind one mutex because handlers run on the server's
 * threads. Its event ring and its set of accepted ids are bounded (limits below). Only
 * deliveries answered 2xx are remembered as accepted: a retry after a 500 is not a replay.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "err.h"
#include "flags.h"
#include "http.h"
#include "http_mhd.h"
#include "log.h"
#include "version.h"
#include "webhook.h"

#define PROGRAM "sluice-webhook-receiver"
#define RECEIVER_USAGE                                                                             \
    "usage: " PROGRAM " --secret whsec_... [options]\n"                                            \
    "\nVerifies Standard Webhooks deliveries (POST, any path) and lists them at\n"                 \
    "GET /v1/received; see shared/webhook.h."

#define RECEIVER_EVENTS_MAX   1000         /* /v1/received keeps these; the oldest goes */
#define RECEIVER_SEEN_MAX     4096         /* accepted ids in the window; full: 503 */
#define RECEIVER_SECRETS_MAX  16           /* --secret values in all; more: start-up error */
#define RECEIVER_BODY_MAX     (256 * 1024) /* a larger delivery gets 413 */
#define RECEIVER_PAYLOAD_KEEP 8192         /* bodies up to this are kept as "payload" */
#define RECEIVER_TYPE_MAX     128          /* event type kept, NUL included; longer is cut */
#define RECEIVER_TS_MAX       24           /* webhook-timestamp kept, NUL included */
#define RECEIVER_PATH_MAX     128          /* request path kept, NUL included */
#define RECEIVER_DRAIN_MS     5000         /* on SIGTERM, wait this long for requests */

struct receiver_config {
    const char *listen;
    const char *secret; /* the last --secret, or SLUICE_SECRET; see secrets_collect */
    unsigned long tolerance_s;
    const char *log_path;
    unsigned long status;
    unsigned long threads;
    const char *log_level;
    bool access_log;
};

/* One delivery as /v1/received and --log show it. Strings are printable ASCII (other
 * bytes become '?'), so they always serialize. */
struct event {
    uint64_t received_ms;
    char request_id[HTTP_REQUEST_ID_MAX];
    char id[WEBHOOK_ID_MAX + 1];     /* "" when the header is absent */
    char type[RECEIVER_TYPE_MAX];    /* the body's "type"; "" when none */
    char timestamp[RECEIVER_TS_MAX]; /* the header as sent; "" when absent */
    char path[RECEIVER_PATH_MAX];
    bool verified;   /* signature and timestamp check out */
    const char *why; /* outcome slug; NULL when accepted */
    int status;
    size_t body_bytes;
    json_t *payload; /* the parsed body when small enough, else NULL; owned */
};

struct seen {
    char id[WEBHOOK_ID_MAX + 1];
    int64_t expires_s; /* its timestamp + tolerance: later, a replay is stale anyway */
};

struct receiver {
    struct receiver_config cfg;
    char host[256];
    uint16_t port;
    char secret_text[RECEIVER_SECRETS_MAX][WEBHOOK_SECRET_MAX];
    const char *secrets[RECEIVER_SECRETS_MAX + 1]; /* NULL-terminated, into secret_text */
    size_t nsecrets;
    int log_fd;           /* -1 without --log */
    pthread_mutex_t lock; /* guards everything below */
    struct event *events; /* ring: events[nreceived % RECEIVER_EVENTS_MAX] is next */
    uint64_t nreceived;
    struct seen *seen;
    size_t nseen;
    struct http_server *http;
};

/* ---- outcomes ----------------------------------------------------------------------- */

struct outcome {
    int rc;
    int status;
    const char *slug;
    const char *title;
    const char *detail;
};

static const struct outcome outcomes[] = {
    {SL_EPARSE, 400, "malformed-webhook", "Malformed webhook headers",
     "webhook-id, webhook-timestamp (Unix seconds) and webhook-signature (v1,<base64>) are "
     "required and must be well-formed"},
    {SL_EAUTH, 401, "bad-signature", "Bad signature",
     "no v1 signature in webhook-signature matches a configured secret"},
    {SL_EGONE, 401, "stale-timestamp", "Stale timestamp",
     "webhook-timestamp is further in the past than the receiver's tolerance"},
    {SL_ERANGE, 401, "future-timestamp", "Timestamp in the future",
     "webhook-timestamp is further in the future than the receiver's tolerance"},
    {SL_EEXISTS, 409, "replayed-webhook", "Replayed webhook",
     "a delivery with this webhook-id was already accepted"},
    {SL_ETOOBIG, 503, "replay-cache-full", "Replay cache full",
     "too many recent webhook-id values to remember; retry later"},
};

static const struct outcome internal_error = {SL_ENOMEM, 500, "internal-error", NULL,
                                              "the delivery could not be checked"};

static const struct outcome *outcome_find(int rc)
{
    for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
        if (outcomes[i].rc == rc)
            return &outcomes[i];
    return &internal_error;
}

/* ---- events ------------------------------------------------------------------------- */

/* At most cap-1 bytes of s (NULL: ""), bytes outside printable ASCII as '?'. */
static void copy_printable(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && s[n] && n + 1 < cap; n++)
        out[n] = s[n] >= ' ' && s[n] <= '~' ? s[n] : '?';
    out[n] = '\0';
}

static void event_init(struct event *ev, const struct http_req *req, uint64_t now_ms)
{
    memset(ev, 0, sizeof(*ev));
    ev->received_ms = now_ms;
    copy_printable(ev->request_id, sizeof(ev->request_id), req->request_id);
    copy_printable(ev->id, sizeof(ev->id), http_req_header(req, "webhook-id"));
    copy_printable(ev->timestamp, sizeof(ev->timestamp), http_req_header(req, "webhook-timestamp"));
    copy_printable(ev->path, sizeof(ev->path), req->path);
    ev->body_bytes = req->body_len;
    json_t *doc = json_loadb(req->body, req->body_len, 0, NULL);
    const char *type = json_string_value(json_object_get(doc, "type"));
    copy_printable(ev->type, sizeof(ev->type), type);
    if (doc && req->body_len <= RECEIVER_PAYLOAD_KEEP)
        ev->payload = json_incref(doc);
    json_decref(doc);
}

/* The JSON view; the payload is deep-copied, so the result is the caller's alone. */
static json_t *event_json(const struct event *ev)
{
    char at[32];
    clock_format_iso8601(ev->received_ms, at);
    return json_pack("{s:s?, s:s?, s:b, s:s?, s:i, s:s?, s:s, s:I, s:o?, s:s, s:s}", "id",
                     ev->id[0] ? ev->id : NULL, "type", ev->type[0] ? ev->type : NULL, "verified",
                     ev->verified, "why", ev->why, "status", ev->status, "timestamp",
                     ev->timestamp[0] ? ev->timestamp : NULL, "path", ev->path, "body_bytes",
                     (json_int_t)ev->body_bytes, "payload",
                     ev->payload ? json_deep_copy(ev->payload) : NULL, "received_at", at,
                     "request_id", ev->request_id);
}

/* Append one JSON line to --log; a failure is logged, the delivery is still answered. */
static void event_append_log(const struct receiver *r, const struct event *ev)
{
    json_t *j = event_json(ev);
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    size_t n = line ? strlen(line) : 0;
    if (line) {
        line[n] = '\n'; /* json_dumps' NUL: write the line in one write(2) */
        if (write(r->log_fd, line, n + 1) != (ssize_t)(n + 1))
            log_event(LOG_WARN, ev->request_id, NULL, "cannot append to --log", "error",
                      strerror(errno), NULL);
    }
    free(line);
}

/* Store ev in the ring (taking its payload) and append it to --log. Under r->lock. */
static void event_record(struct receiver *r, struct event *ev)
{
    if (r->log_fd >= 0)
        event_append_log(r, ev);
    struct event *slot = &r->events[r->nreceived % RECEIVER_EVENTS_MAX];
    json_decref(slot->payload);
    *slot = *ev;
    ev->payload = NULL;
    r->nreceived++;
}

/* ---- replays ------------------------------------------------------------------------ */

/* Remember an accepted id until expires_s. SL_EEXISTS: it was accepted and has not
 * expired; SL_ETOOBIG: every slot holds a live id (*retry_s: until one expires). Under
 * r->lock. A linear scan: RECEIVER_SEEN_MAX is small and this is a test endpoint. */
static int seen_add(struct receiver *r, const char *id, int64_t expires_s, int64_t now_s,
                    int64_t *retry_s)
{
    struct seen *free_slot = NULL;
    int64_t soonest = INT64_MAX;
    for (size_t i = 0; i < r->nseen; i++) {
        struct seen *s = &r->seen[i];
        if (s->expires_s < now_s) {
            free_slot = free_slot ? free_slot : s;
            continue;
        }
        if (strcmp(s->id, id) == 0)
            return SL_EEXISTS;
        soonest = s->expires_s < soonest ? s->expires_s : soonest;
    }
    if (!free_slot && r->nseen < RECEIVER_SEEN_MAX)
        free_slot = &r->seen[r->nseen++];
    if (!free_slot) {
        *retry_s = soonest - now_s + 1;
        return SL_ETOOBIG;
    }
    snprintf(free_slot->id, sizeof(free_slot->id), "%s", id);
    free_slot->expires_s = expires_s;
    return SL_OK;
}

/* ---- handlers ----------------------------------------------------------------------- */

static void answer(struct http_req *req, struct http_resp *resp, const struct receiver *r,
                   const struct outcome *o, int64_t retry_s)
{
    if (o) {
        http_problem(resp, req, o->status, o->slug, o->title, o->detail, NULL);
        if (o->status == 401) /* RFC 9110 §15.5.2: a 401 names a challenge */
            http_resp_header(resp, "WWW-Authenticate", "Webhook-Signature realm=\"%s\"", PROGRAM);
        if (o->status == 503)
            http_resp_header(resp, "Retry-After", "%lld", (long long)retry_s);
        return;
    }
    int status = (int)r->cfg.status;
    if (status == 204)
        resp->status = 204;
    else if (status < 300)
        http_resp_json(resp, status, json_pack("{s:b}", "received", 1));
    else
        http_problem(resp, req, status, "configured-status", NULL,
                     "this receiver answers valid deliveries with its --status", NULL);
}

static void h_deliver(struct http_req *req, struct http_resp *resp)
{
    struct receiver *r = req->app;
    uint64_t now_ms = clock_wall_ms();
    int64_t now_s = (int64_t)(now_ms / 1000), tolerance_s = (int64_t)r->cfg.tolerance_s;
    const char *id = http_req_header(req, "webhook-id");
    const char *ts = http_req_header(req, "webhook-timestamp");
    int rc = webhook_verify(r->secrets, id, ts, http_req_header(req, "webhook-signature"),
                            req->body, req->body_len, now_s, tolerance_s);
    struct event ev;
    event_init(&ev, req, now_ms);
    ev.verified = rc == SL_OK;
    int64_t retry_s = 0;
    pthread_mutex_lock(&r->lock);
    if (rc == SL_OK && r->cfg.status < 300) /* verified: ts is a canonical decimal */
        rc = seen_add(r, id, strtoll(ts, NULL, 10) + tolerance_s, now_s, &retry_s);
    const struct outcome *o = rc == SL_OK ? NULL : outcome_find(rc);
    ev.status = o ? o->status : (int)r->cfg.status;
    ev.why = o ? o->slug : NULL;
    event_record(r, &ev);
    pthread_mutex_unlock(&r->lock);
    char status[8];
    snprintf(status, sizeof(status), "%d", ev.status);
    log_event(LOG_INFO, ev.request_id, NULL, "webhook received", "id", ev.id, "type", ev.type,
              "verified", ev.verified ? "true" : "false", "status", status, "why",
              o ? o->slug : "accepted", NULL);
    answer(req, resp, r, o, retry_s);
}

static void h_received(struct http_req *req, struct http_resp *resp)
{
    struct receiver *r = req->app;
    json_t *list = json_array();
    pthread_mutex_lock(&r->lock);
    uint64_t total = r->nreceived;
    uint64_t first = total > RECEIVER_EVENTS_MAX ? total - RECEIVER_EVENTS_MAX : 0;
    for (uint64_t i = first; i < total; i++)
        json_array_append_new(list, event_json(&r->events[i % RECEIVER_EVENTS_MAX]));
    pthread_mutex_unlock(&r->lock);
    http_resp_json(resp, 200, json_pack("{s:o, s:I}", "events", list, "total", (json_int_t)total));
}

static void h_healthz(struct http_req *req, struct http_resp *resp)
{
    (void)req;
    http_resp_json(resp, 200, json_pack("{s:s}", "status", "ok"));
}

static const struct http_route routes[] = {
    {"GET", "/healthz", h_healthz},
    {"GET", "/v1/received", h_received},
};

/* POST on any path is a delivery; everything else goes through the route table. */
static void receiver_handle(struct http_req *req, struct http_resp *resp)
{
    if (strcmp(req->method, "POST") == 0) {
        h_deliver(req, resp);
        return;
    }
    http_dispatch(routes, sizeof(routes) / sizeof(routes[0]), req, resp);
}

/* ---- configuration ------------------------------------------------------------------ */

/* Add the comma-separated secrets of list. */
static int secrets_add_list(struct receiver *r, const char *list, char err[256])
{
    uint8_t key[WEBHOOK_KEY_MAX];
    size_t klen;
    for (const char *p = list;; p++) {
        size_t n = strcspn(p, ",");
        if (r->nsecrets == RECEIVER_SECRETS_MAX || n >= WEBHOOK_SECRET_MAX) {
            snprintf(err, 256, "--secret: at most %d secrets of %d characters",
                     RECEIVER_SECRETS_MAX, WEBHOOK_SECRET_MAX - 1);
            return SL_EINVAL;
        }
        char *s = r->secret_text[r->nsecrets];
        memcpy(s, p, n);
        s[n] = '\0';
        if (webhook_secret_decode(s, key, &klen) != SL_OK) { /* never echo a secret */
            snprintf(err, 256, "--secret: value %zu is not whsec_ + base64 of %d to %d bytes",
                     r->nsecrets + 1, WEBHOOK_KEY_MIN, WEBHOOK_KEY_MAX);
            return SL_EINVAL;
        }
        r->secrets[r->nsecrets++] = s;
        p += n;
        if (!*p)
            return SL_OK;
    }
}

/* Every --secret on the command line (flags.c keeps only the last), else SLUICE_SECRET.
 * argv[1..pos) parsed cleanly, so every option that takes a value has one. */
static int secrets_collect(struct receiver *r, const struct flag *table, int pos, char **argv,
                           char err[256])
{
    bool given = false;
    for (int i = 1; i < pos; i++) {
        const char *a = argv[i], *value = NULL;
        if (strncmp(a, "--secret=", 9) == 0)
            value = a + 9;
        else if (strcmp(a, "--secret") == 0)
            value = argv[++i];
        else if (!strchr(a, '='))
            for (const struct flag *f = table; f->name; f++)
                if (strcmp(a + 2, f->name) == 0 && f->type != FLAG_BOOL)
                    i++; /* skip that option's value */
        if (value && secrets_add_list(r, value, err))
            return SL_EINVAL;
        given |= value != NULL;
    }
    if (!given && r->cfg.secret && secrets_add_list(r, r->cfg.secret, err))
        return SL_EINVAL;
    if (r->nsecrets == 0) {
        snprintf(err, 256, "--secret is required (whsec_...; or SLUICE_SECRET)");
        return SL_EINVAL;
    }
    return SL_OK;
}

static int receiver_init(struct receiver *r, const struct receiver_config *cfg, char err[256])
{
    memset(r, 0, sizeof(*r));
    r->cfg = *cfg;
    r->log_fd = -1;
    pthread_mutex_init(&r->lock, NULL);
    r->events = calloc(RECEIVER_EVENTS_MAX, sizeof(*r->events));
    r->seen = calloc(RECEIVER_SEEN_MAX, sizeof(*r->seen));
    if (!r->events || !r->seen) {
        snprintf(err, 256, "out of memory");
        return SL_ENOMEM;
    }
    if (flags_split_hostport(cfg->listen, r->host, sizeof(r->host), &r->port)) {
        snprintf(err, 256, "--listen: expected HOST:PORT, got '%s'", cfg->listen);
        return SL_EINVAL;
    }
    if (cfg->log_path) {
        r->log_fd = open(cfg->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (r->log_fd < 0) {
            snprintf(err, 256, "--log: cannot open '%.180s': %s", cfg->log_path, strerror(errno));
            return SL_EINVAL;
        }
    }
    return SL_OK;
}

static void receiver_release(struct receiver *r)
{
    http_server_stop(r->http);
    for (size_t i = 0; r->events && i < RECEIVER_EVENTS_MAX; i++)
        json_decref(r->events[i].payload);
    free(r->events);
    free(r->seen);
    if (r->log_fd >= 0)
        close(r->log_fd);
    pthread_mutex_destroy(&r->lock);
}

/* ---- running ------------------------------------------------------------------------ */

static void drain(struct receiver *r)
{
    http_server_quiesce(r->http);
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (unsigned waited_ms = 0; http_server_in_flight(r->http) > 0; waited_ms += 10) {
        if (waited_ms >= RECEIVER_DRAIN_MS) {
            log_event(LOG_WARN, NULL, NULL, "drain timeout: closing open requests", NULL);
            break;
        }
        nanosleep(&tick, NULL);
    }
}

static int receiver_run(struct receiver *r)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    /* Blocked before the server threads exist, so only sigwait below receives them. */
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct http_server_config hc = {
        .host = r->host,
        .port = r->port,
        .threads = (unsigned)r->cfg.threads,
        .max_body_bytes = RECEIVER_BODY_MAX,
        .handler = receiver_handle,
        .app = r,
        .access_log = r->cfg.access_log,
        .name = PROGRAM,
    };
    char err[HTTP_SERVER_ERR_MAX], listen[300], nsecrets[8];
    r->http = http_server_start(&hc, err);
    if (!r->http) {
        log_event(LOG_ERROR, NULL, NULL, "cannot serve", "error", err, NULL);
        return 1;
    }
    snprintf(listen, sizeof(listen), "%.256s:%u", r->host, (unsigned)http_server_port(r->http));
    snprintf(nsecrets, sizeof(nsecrets), "%zu", r->nsecrets);
    log_event(LOG_INFO, NULL, NULL, "serving", "listen", listen, "secrets", nsecrets, "version",
              SLUICE_VERSION, NULL);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    log_event(LOG_INFO, NULL, NULL, "stopping", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT",
              NULL);
    drain(r);
    return 0;
}

int main(int argc, char **argv)
{
    struct receiver_config cfg = {
        .listen = "127.0.0.1:9100",
        .tolerance_s = WEBHOOK_TOLERANCE_S,
        .status = 204,
        .threads = 2,
        .log_level = "info",
    };
    const struct flag table[] = {
        {"listen", FLAG_STRING, &cfg.listen, "HOST:PORT", "where to serve (127.0.0.1:9100)", 0, 0,
         NULL},
        {"secret", FLAG_STRING, &cfg.secret, "whsec_...",
         "verification secret; repeat or comma-separate while rotating", 0, 0, NULL},
        {"tolerance-s", FLAG_UINT, &cfg.tolerance_s, "N",
         "accepted webhook-timestamp skew in seconds (300)", 0, 86400, NULL},
        {"log", FLAG_STRING, &cfg.log_path, "FILE", "append each delivery as a JSON line", 0, 0,
         NULL},
        {"status", FLAG_UINT, &cfg.status, "N", "answer valid deliveries with this status (204)",
         200, 599, NULL},
        {"threads", FLAG_UINT, &cfg.threads, "N", "HTTP worker threads (2)", 1, 64, NULL},
        {"log-level", FLAG_STRING, &cfg.log_level, "LEVEL", "debug, info, warn or error (info)", 0,
         0, NULL},
        {"access-log", FLAG_BOOL, &cfg.access_log, NULL, "log every request", 0, 0, NULL},
        {0},
    };
    if (flags_wants(argc, argv, "--help")) {
        flags_usage(stdout, RECEIVER_USAGE, table);
        return 0;
    }
    if (flags_wants(argc, argv, "--version")) {
        printf("%s %s\n", PROGRAM, SLUICE_VERSION);
        return 0;
    }
    char err[256];
    int pos;
    enum log_level level;
    if (flags_parse(table, argc, argv, &pos, err) || flags_apply_env(table, err)) {
        fprintf(stderr, "%s: %s\n", PROGRAM, err);
        return 2;
    }
    if (pos != argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", PROGRAM, argv[pos]);
        return 2;
    }
    if (!log_level_parse(cfg.log_level, &level)) {
        fprintf(stderr, "%s: --log-level: expected debug, info, warn or error\n", PROGRAM);
        return 2;
    }
    log_setup(PROGRAM, level, 2);
    struct receiver *r = malloc(sizeof(*r));
    if (!r) {
        fprintf(stderr, "%s: out of memory\n", PROGRAM);
        return 1;
    }
    int rc = receiver_init(r, &cfg, err);
    if (rc == SL_OK)
        rc = secrets_collect(r, table, pos, argv, err);
    if (rc == SL_OK) {
        rc = receiver_run(r);
    } else {
        fprintf(stderr, "%s: %s\n", PROGRAM, err);
        rc = 2;
    }
    receiver_release(r);
    free(r);
    return rc;
}
