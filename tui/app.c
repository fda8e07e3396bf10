/*
 * app — the dashboard's shell around the model: the terminal, two background threads and
 * one loop.
 *
 *   events thread: follows GET /v1/events (Server-Sent Events); each snapshot goes to the
 *     inbox; on any failure it says "disconnected, retrying in N s" and reconnects with
 *     back-off (1, 2, 4 ... 10 s). With -d MS it polls GET /v1/fleet every MS instead.
 *   worker thread: performs the model's commands (drain, limit writes ...) and every 2 s
 *     fetches the documents the current screen shows; results go to the inbox.
 *   main loop: poll() on the keyboard and the inbox's wake-up pipe; keys → model; inbox →
 *     model; then one frame: view_draw → term_present (changed rows only).
 */
#include "app.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "client.h"
#include "tui_keys.h"
#include "model.h"
#include "term.h"
#include "view.h"

#define INBOX_MAX 256
#define REFRESH_MS 2000

struct msg {
    enum { MSG_DOC, MSG_CONN, MSG_DONE, MSG_DRILL } kind;
    enum doc doc;
    json_t *json;      /* MSG_DOC: the document; MSG_DONE: the problem, if any */
    bool up;           /* MSG_CONN */
    bool ok;           /* MSG_DONE */
    struct model_cmd cmd;
    char text[CLIENT_ERR_MAX];
};

struct app {
    struct app_opts o;
    struct client client;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct msg inbox[INBOX_MAX];
    int ninbox;
    struct model_cmd todo[MODEL_CMDS_MAX];
    int ntodo;
    int wake[2];
    volatile int screen; /* the main loop's current screen, for the worker's fetches */
    volatile bool detail_trace;
    volatile bool stop;
};

static void fcntl_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void post(struct app *a, const struct msg *m)
{
    pthread_mutex_lock(&a->lock);
    if (a->ninbox < INBOX_MAX)
        a->inbox[a->ninbox++] = *m;
    else
        json_decref(m->json);
    pthread_mutex_unlock(&a->lock);
    char c = 1;
    if (write(a->wake[1], &c, 1) < 0 && errno != EAGAIN)
        perror("sluice: wake");
}

static void post_conn(struct app *a, bool up, const char *text)
{
    struct msg m = {.kind = MSG_CONN, .up = up};
    snprintf(m.text, sizeof(m.text), "%s", text);
    post(a, &m);
}

/* ---- the events thread -------------------------------------------------------------------- */

struct sse {
    struct app *a;
    struct buf line;
    char event[32];
    bool connected;
};

/* One SSE line (WHATWG: "event: x", "data: ...", a blank line ends the event). */
static void sse_line(struct sse *s, const char *l, size_t n)
{
    if (n >= 7 && !strncmp(l, "event: ", 7)) {
        snprintf(s->event, sizeof(s->event), "%.*s", (int)(n - 7), l + 7);
    } else if (n >= 6 && !strncmp(l, "data: ", 6) && !strcmp(s->event, "snapshot")) {
        json_t *doc = json_loadb(l + 6, n - 6, 0, NULL);
        if (doc) {
            struct msg m = {.kind = MSG_DOC, .doc = DOC_FLEET, .json = doc};
            post(s->a, &m);
        }
    } else if (n >= 6 && !strncmp(l, "data: ", 6) && !strcmp(s->event, "drill")) {
        json_t *ev = json_loadb(l + 6, n - 6, 0, NULL);
        if (ev) {
            struct msg m = {.kind = MSG_DRILL, .json = ev};
            post(s->a, &m);
        }
    } else if (n >= 6 && !strncmp(l, "data: ", 6) && !strcmp(s->event, "audit")) {
        struct msg m = {.kind = MSG_DONE, .ok = true, .cmd = {.kind = CMD_REFRESH}};
        post(s->a, &m); /* an audit record: the Events screen refetches */
    }
}

static size_t on_sse(char *p, size_t size, size_t nitems, void *arg)
{
    struct sse *s = arg;
    size_t n = size * nitems;
    if (!s->connected) {
        s->connected = true;
        post_conn(s->a, true, "live");
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            sse_line(s, s->line.data ? s->line.data : "", s->line.len);
            buf_reset(&s->line);
        } else if (buf_append(&s->line, p + i, 1) != 0) {
            return 0; /* an absurd line: reconnect */
        }
    }
    return s->a->stop ? 0 : n;
}

static int on_sse_progress(void *arg, curl_off_t a1, curl_off_t a2, curl_off_t a3, curl_off_t a4)
{
    (void)a1, (void)a2, (void)a3, (void)a4;
    return ((struct app *)arg)->stop; /* 1 aborts the transfer at quit */
}

static void wait_ms(struct app *a, unsigned ms)
{
    for (unsigned t = 0; t < ms && !a->stop; t += 100)
        usleep(100 * 1000);
}

static void *events_main(void *arg)
{
    struct app *a = arg;
    unsigned backoff = 1;
    while (!a->stop) {
        if (a->o.poll_ms) { /* -d: polling instead of the stream */
            struct client_reply r;
            client_call(&a->client, "GET", "/v1/fleet", NULL, NULL, &r);
            if (r.result == CLIENT_OK) {
                post_conn(a, true, "live");
                struct msg m = {.kind = MSG_DOC, .doc = DOC_FLEET, .json = r.body};
                r.body = NULL;
                post(a, &m);
            } else {
                post_conn(a, false, "disconnected, retrying");
            }
            client_reply_release(&r);
            wait_ms(a, a->o.poll_ms);
            continue;
        }
        struct sse s = {.a = a};
        buf_init(&s.line, 8 << 20);
        char url[320], auth[300];
        snprintf(url, sizeof(url), "%s/v1/events", a->client.base);
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", a->client.token);
        CURL *c = curl_easy_init();
        struct curl_slist *h = a->client.token[0] ? curl_slist_append(NULL, auth) : NULL;
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* keep-alives every 15 s */
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 40L);
        curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sse);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_sse_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, a);
        CURLcode rc = curl_easy_perform(c);
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        buf_release(&s.line);
        if (a->stop)
            break;
        backoff = s.connected ? 1 : backoff * 2 > 10 ? 10 : backoff * 2;
        char text[160];
        snprintf(text, sizeof(text), "disconnected (%s), retrying in %u s",
                 code == 401 || code == 403 ? "the token is not accepted" : curl_easy_strerror(rc),
                 backoff);
        post_conn(a, false, text);
        wait_ms(a, backoff * 1000);
    }
    return NULL;
}

/* ---- the worker thread ----------------------------------------------------------------------- */

static const char *const doc_paths[DOC_COUNT] = {
    [DOC_FLEET] = "/v1/fleet", [DOC_LIMITS] = "/v1/limits", [DOC_SLOS] = "/v1/slos",
    [DOC_TRACES] = "/v1/traces?limit=200", [DOC_QUEUES] = "/v1/queues",
    [DOC_AUDIT] = "/v1/audit?limit=200", [DOC_DRILLS] = "/v1/drills",
};

static void fetch(struct app *a, enum doc d, const char *path)
{
    struct client_reply r;
    client_call(&a->client, "GET", path, NULL, NULL, &r);
    if (r.result == CLIENT_OK && r.body) {
        struct msg m = {.kind = MSG_DOC, .doc = d, .json = r.body};
        r.body = NULL;
        post(a, &m);
    }
    client_reply_release(&r);
}

static void fetch_screen(struct app *a)
{
    static const enum doc by_screen[SCR_COUNT] = {DOC_COUNT,  DOC_LIMITS, DOC_COUNT,  DOC_SLOS,
                                                  DOC_TRACES, DOC_QUEUES, DOC_DRILLS, DOC_AUDIT};
    int s = a->screen;
    if (s >= 0 && s < SCR_COUNT && by_screen[s] != DOC_COUNT)
        fetch(a, by_screen[s], doc_paths[by_screen[s]]);
}

/* The HTTP call of one command. */
static void perform(struct app *a, const struct model_cmd *c)
{
    char path[256], ifm[64];
    const char *method = "POST", *headers[2] = {NULL, NULL};
    json_t *body = c->body[0] ? json_loads(c->body, 0, NULL) : NULL;
    switch (c->kind) {
    case CMD_DRAIN: snprintf(path, sizeof(path), "/v1/replicas/%s/drain", c->target); break;
    case CMD_UNDRAIN: snprintf(path, sizeof(path), "/v1/replicas/%s/undrain", c->target); break;
    case CMD_WEIGHT:
        method = "PUT";
        snprintf(path, sizeof(path), "/v1/replicas/%s/weight", c->target);
        break;
    case CMD_FAULTS_SET:
        method = "PUT";
        snprintf(path, sizeof(path), "/v1/faults/%s", c->target);
        break;
    case CMD_FAULTS_CLEAR:
        method = "DELETE";
        snprintf(path, sizeof(path), "/v1/faults/%s", c->target);
        break;
    case CMD_LIMIT_PUT:
        method = "PUT";
        snprintf(path, sizeof(path), "/v1/limits/%s", c->target);
        snprintf(ifm, sizeof(ifm), "If-Match: \"%ld\"", c->if_match);
        headers[0] = c->if_match >= 0 ? ifm : NULL;
        break;
    case CMD_LIMIT_ROLLBACK: snprintf(path, sizeof(path), "/v1/limits/%s/rollback", c->target); break;
    case CMD_CACHE_PURGE: snprintf(path, sizeof(path), "/v1/replicas/%s/cache/purge", c->target); break;
    case CMD_TRACE_GET:
        snprintf(path, sizeof(path), "/v1/traces/%s", c->target);
        fetch(a, DOC_TRACE, path);
        json_decref(body);
        return;
    case CMD_DRILL_START: snprintf(path, sizeof(path), "/v1/drills/%s/start", c->target); break;
    case CMD_DRILL_ABORT_ALL: snprintf(path, sizeof(path), "/v1/drills/abort-all"); break;
    default:
        fetch_screen(a);
        json_decref(body);
        return;
    }
    struct client_reply r;
    client_call(&a->client, method, path, body, headers, &r);
    struct msg m = {.kind = MSG_DONE, .ok = r.result == CLIENT_OK, .cmd = *c,
                    .json = r.result == CLIENT_OK ? NULL : r.body};
    if (r.result != CLIENT_OK)
        r.body = NULL;
    snprintf(m.text, sizeof(m.text), "%s", r.result == CLIENT_OK ? "" : r.error);
    client_reply_release(&r);
    json_decref(body);
    post(a, &m);
    fetch_screen(a); /* the change shows at once */
}

static void *worker_main(void *arg)
{
    struct app *a = arg;
    uint64_t next = 0;
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        if (a->ntodo) {
            struct model_cmd c = a->todo[0];
            memmove(a->todo, a->todo + 1, sizeof(c) * (size_t)--a->ntodo);
            pthread_mutex_unlock(&a->lock);
            perform(a, &c);
            pthread_mutex_lock(&a->lock);
            continue;
        }
        uint64_t now = clock_mono_ms();
        if (now >= next) {
            next = now + REFRESH_MS;
            pthread_mutex_unlock(&a->lock);
            fetch_screen(a);
            pthread_mutex_lock(&a->lock);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&a->cond, &a->lock, &ts);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* ---- the main loop ------------------------------------------------------------------------------- */

static bool drain_inbox(struct app *a, struct model *m)
{
    char sink[64];
    while (read(a->wake[0], sink, sizeof(sink)) > 0)
        ;
    struct msg local[INBOX_MAX];
    pthread_mutex_lock(&a->lock);
    int n = a->ninbox;
    memcpy(local, a->inbox, sizeof(local[0]) * (size_t)n);
    a->ninbox = 0;
    pthread_mutex_unlock(&a->lock);
    uint64_t now = clock_wall_ms();
    for (int i = 0; i < n; i++) {
        struct msg *g = &local[i];
        if (g->kind == MSG_DOC)
            model_set_doc(m, g->doc, g->json, now);
        else if (g->kind == MSG_CONN)
            model_set_connected(m, g->up, g->text);
        else if (g->kind == MSG_DRILL)
            model_drill_event(m, g->json);
        else if (g->cmd.kind == CMD_REFRESH && g->ok)
            model_key(m, 0); /* nothing: an audit event; the worker refetches on its own */
        else
            model_cmd_done(m, &g->cmd, g->ok, g->text, g->json);
        if (g->kind == MSG_DONE || g->kind == MSG_DRILL)
            json_decref(g->json);
    }
    return n > 0;
}

static void hand_over_cmds(struct app *a, struct model *m)
{
    struct model_cmd cmds[MODEL_CMDS_MAX];
    int n = model_take_cmds(m, cmds, MODEL_CMDS_MAX);
    if (!n)
        return;
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < n && a->ntodo < MODEL_CMDS_MAX; i++)
        a->todo[a->ntodo++] = cmds[i];
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

static bool who_am_i(struct app *a, bool *viewer)
{
    struct client_reply r;
    client_call(&a->client, "GET", "/v1/whoami", NULL, NULL, &r);
    bool ok = r.result == CLIENT_OK;
    const char *role = json_string_value(json_object_get(r.body, "role"));
    *viewer = ok && role && !strcmp(role, "viewer");
    if (r.result == CLIENT_HTTP_ERROR && (r.status == 401 || r.status == 403))
        fprintf(stderr, "sluice: %s\n", r.error);
    client_reply_release(&r);
    return ok || r.result == CLIENT_UNREACHABLE; /* unreachable: the dashboard shows it */
}

int app_run(const struct app_opts *o)
{
    static struct app app;
    struct app *a = &app;
    a->o = *o;
    client_init(&a->client, o->server, o->token);
    bool viewer = false;
    if (!who_am_i(a, &viewer))
        return 4;
    if (pipe(a->wake) < 0)
        return 1;
    for (int i = 0; i < 2; i++)
        fcntl_nonblock(a->wake[i]);
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    struct term *t = term_open(o->mono, o->mouse);
    if (!t)
        return 2;
    static struct model m;
    model_init(&m, o->readonly || viewer, o->mono);
    if (o->refresh_ms)
        m.refresh_ms = o->refresh_ms;
    int w, h;
    term_size(t, &w, &h);
    struct canvas *c = canvas_new(w, h);
    pthread_t ev, wk;
    pthread_create(&ev, NULL, events_main, a);
    pthread_create(&wk, NULL, worker_main, a);
    struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = a->wake[0], .events = POLLIN}};
    bool dirty = true;
    while (!m.quit) {
        if (dirty) {
            a->screen = (int)m.screen;
            view_draw(&m, c);
            term_present(t, c);
            dirty = false;
        }
        if (poll(fds, 2, 1000) < 0 && errno != EINTR)
            break;
        for (int k; (k = term_getkey(t)) != -1;) {
            if (k == TK_RESIZE) {
                term_size(t, &w, &h);
                canvas_resize(c, w, h);
            } else {
                model_key(&m, k);
            }
            dirty = true;
        }
        if (drain_inbox(a, &m))
            dirty = true;
        hand_over_cmds(a, &m);
    }
    a->stop = true;
    pthread_cond_signal(&a->cond);
    pthread_join(ev, NULL);
    pthread_join(wk, NULL);
    term_close(t);
    canvas_free(c);
    model_release(&m);
    return 0;
}
