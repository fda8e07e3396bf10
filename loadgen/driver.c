#include "driver.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <curl/curl.h>

#include "admin.h"
#include "buf.h"
#include "clock.h"
#include "err.h"
#include "evloop.h"
#include "evloop_curl.h"
#include "http_mhd.h"
#include "pacer.h"
#include "version.h"

#define NS_PER_MS       UINT64_C(1000000)
#define NS_PER_S        UINT64_C(1000000000)
#define URL_MAX         (DRIVER_TARGET_MAX + 128) /* + the longest path with a code */
#define BODY_MAX        ((size_t)4 << 20)         /* a bulk of 1000 links with long URLs fits */
#define PROGRESS_LAG_MS 10 /* a tick this long after a second has closed it */
#define PREFIX_JSON_MAX (SCENARIO_URL_PREFIX_MAX * 6 + 1) /* every byte as \u00XX */

enum phase { PHASE_SETUP, PHASE_RUN, PHASE_STOPPING, PHASE_DONE };
static const char *const phase_names[] = {"setup", "run", "stopping", "done"};

/* One connection's worth of request: an easy handle kept across requests (keep-alive). */
struct slot {
    struct driver *d;
    CURL *easy;
    enum req_kind kind;
    unsigned key;
    uint64_t seq; /* request number (run) or link index (setup) */
    uint64_t intended_ns, sent_ns;
    unsigned attempt; /* setup only */
    char url[URL_MAX];
    struct buf body; /* request body */
    struct buf resp; /* the answer's first DRIVER_RESP_KEEP bytes (setup reads them) */
};

struct driver {
    const struct driver_config *cfg;
    const struct scenario *sc;
    const struct plan *plan;
    struct tally *tally;
    struct report_run *run;
    struct evloop *loop;
    struct evcurl *curl;
    struct http_server *admin;
    struct curl_slist *headers[SCENARIO_KEYS_MAX];
    struct slot *slots;
    unsigned *free_slots, nfree;
    int timer_fd, signal_fd;
    uint64_t progress_timer, grace_timer;
    bool tty;
    enum phase phase;
    bool closing; /* evcurl_free is aborting what is left */
    double rate;
    struct pacer pacer;
    uint64_t start_ns, end_ns, finish_ns;
    const char *stopped_by;
    char prefix_json[PREFIX_JSON_MAX]; /* url_prefix, escaped for a JSON string */
    /* setup */
    char (*codes)[DRIVER_CODE_MAX + 1];
    size_t next_link, links_created;
    uint64_t setup_retries, setup_start_ns;
    char *err;
};

/* How each kind is sent: target + prefix [+ code + suffix]. */
static const struct {
    const char *prefix, *suffix;
    bool code, post;
} routes[KIND_COUNT] = {
    [KIND_CREATE] = {"/v1/links", "", false, true},
    [KIND_READ] = {"/v1/links/", "", true, false},
    [KIND_REDIRECT] = {"/", "", true, false},
    [KIND_STATS] = {"/v1/links/", "/stats", true, false},
    [KIND_BULK] = {"/v1/links/bulk", "", false, true},
};

static void finish(struct driver *d, const char *why)
{
    if (d->phase == PHASE_DONE)
        return;
    d->phase = PHASE_DONE;
    d->stopped_by = why;
    d->finish_ns = clock_mono_ns();
    evloop_stop(d->loop);
}

static void fail(struct driver *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct driver *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, DRIVER_ERR_MAX, fmt, ap);
    va_end(ap);
    finish(d, "error");
}

static unsigned in_flight(const struct driver *d)
{
    return d->cfg->connections - d->nfree;
}

/* ---- slots --------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct slot *s = arg;
    size_t len = size * n, room = DRIVER_RESP_KEEP - s->resp.len;
    if (s->d->phase == PHASE_SETUP && room)
        buf_append(&s->resp, p, len < room ? len : room);
    return len;
}

static int slots_init(struct driver *d)
{
    unsigned n = d->cfg->connections;
    d->slots = calloc(n, sizeof(*d->slots));
    d->free_slots = calloc(n, sizeof(*d->free_slots));
    if (!d->slots || !d->free_slots)
        return SL_ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        struct slot *s = &d->slots[i];
        s->d = d;
        buf_init(&s->body, BODY_MAX);
        buf_init(&s->resp, DRIVER_RESP_KEEP);
        if (!(s->easy = curl_easy_init()))
            return SL_ENOMEM;
        curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, (long)d->cfg->timeout_ms);
        curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS,
                         (long)(d->cfg->timeout_ms < 3000 ? d->cfg->timeout_ms : 3000));
        curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(s->easy, CURLOPT_USERAGENT, "sluice-loadgen/" SLUICE_VERSION);
        curl_easy_setopt(s->easy, CURLOPT_FOLLOWLOCATION, 0L); /* the 302 is the answer */
        curl_easy_setopt(s->easy, CURLOPT_TCP_NODELAY, 1L);
        d->free_slots[d->nfree++] = i;
    }
    evcurl_set_max_connects(d->curl, (long)n);
    return SL_OK;
}

static void slots_free(struct driver *d)
{
    for (unsigned i = 0; d->slots && i < d->cfg->connections; i++) {
        curl_easy_cleanup(d->slots[i].easy);
        buf_release(&d->slots[i].body);
        buf_release(&d->slots[i].resp);
    }
    free(d->slots);
    free(d->free_slots);
}

static struct slot *slot_take(struct driver *d)
{
    return d->nfree ? &d->slots[d->free_slots[--d->nfree]] : NULL;
}

static void slot_put(struct driver *d, struct slot *s)
{
    d->free_slots[d->nfree++] = (unsigned)(s - d->slots);
}

/* Headers per key: the credential (the demo's policies key on Authorization), JSON, and
 * no "Expect: 100-continue" round trip for larger bodies. */
static int headers_init(struct driver *d)
{
    char auth[SCENARIO_SECRET_MAX + 32];
    const char *const lines[] = {auth, "Content-Type: application/json", "Expect:"};
    for (size_t k = 0; k < d->sc->nkeys; k++) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", d->sc->keys[k].secret);
        for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
            struct curl_slist *h = curl_slist_append(d->headers[k], lines[i]);
            if (!h)
                return SL_ENOMEM; /* driver_release frees what was built */
            d->headers[k] = h;
        }
    }
    return SL_OK;
}

/* ---- requests ------------------------------------------------------------------------ */

/* Fill s for kind/key/link: URL, body, method, headers. SL_ETOOBIG/SL_ENOMEM from the
 * body (a bulk past BODY_MAX). */
static int prepare(struct driver *d, struct slot *s, enum req_kind kind, unsigned key,
                   const char *code, uint64_t seq)
{
    s->kind = kind;
    s->key = key;
    s->seq = seq;
    buf_reset(&s->body);
    buf_reset(&s->resp);
    snprintf(s->url, sizeof(s->url), "%s%s%s%s", d->cfg->target, routes[kind].prefix,
             routes[kind].code ? code : "", routes[kind].code ? routes[kind].suffix : "");
    int rc = SL_OK;
    unsigned long long seed = (unsigned long long)d->plan->seed;
    if (kind == KIND_CREATE && d->phase == PHASE_SETUP)
        rc = buf_appendf(&s->body, "{\"url\":\"%ss%llu/setup-%llu\"}", d->prefix_json, seed,
                         (unsigned long long)seq);
    else if (kind == KIND_CREATE)
        rc = buf_appendf(&s->body, "{\"url\":\"%ss%llu/%llu\"}", d->prefix_json, seed,
                         (unsigned long long)seq);
    else if (kind == KIND_BULK) {
        rc = buf_append_str(&s->body, "{\"links\":[");
        for (size_t i = 0; rc == SL_OK && i < d->sc->bulk_size; i++)
            rc = buf_appendf(&s->body, "%s{\"url\":\"%ss%llu/%llu-%zu\"}", i ? "," : "",
                             d->prefix_json, seed, (unsigned long long)seq, i);
        if (rc == SL_OK)
            rc = buf_append_str(&s->body, "]}");
    }
    curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, d->headers[key]);
    if (routes[kind].post) {
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)s->body.len);
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, buf_str(&s->body));
    } else {
        curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
    }
    return rc;
}

static enum tally_transport transport_of(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return TRANSPORT_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return TRANSPORT_CONNECT;
    default:
        return TRANSPORT_OTHER;
    }
}

/* ---- pacing ---------------------------------------------------------------------------- */

/* Wake at monotonic time t_ns (0: do not wake). */
static void arm(struct driver *d, uint64_t t_ns)
{
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(t_ns / NS_PER_S), .tv_nsec = (long)(t_ns % NS_PER_S)}};
    timerfd_settime(d->timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void pump(struct driver *d);

static void run_done(CURL *easy, CURLcode result, void *arg)
{
    struct slot *s = arg;
    struct driver *d = s->d;
    if (d->closing) {
        tally_aborted(d->tally, 1);
        slot_put(d, s);
        return;
    }
    uint64_t now = clock_mono_ns();
    tally_roll(d->tally, now, d->rate);
    if (result == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        tally_answer(d->tally, s->kind, s->key, (int)status, s->intended_ns, s->sent_ns, now);
    } else {
        tally_failure(d->tally, s->kind, s->key, transport_of(result));
    }
    slot_put(d, s);
    if (d->phase == PHASE_STOPPING && in_flight(d) == 0)
        finish(d, "signal");
    else
        pump(d);
}

/* Send the next request of the plan, intended at intended_ns. */
static void send_next(struct driver *d, uint64_t intended_ns)
{
    struct plan_req r;
    uint64_t seq = pacer_taken(&d->pacer);
    pacer_take(&d->pacer);
    plan_at(d->plan, seq, &r);
    struct slot *s = slot_take(d);
    int rc = prepare(d, s, r.kind, r.key, r.link >= 0 ? d->codes[r.link] : "", seq);
    uint64_t now = clock_mono_ns();
    s->intended_ns = intended_ns;
    s->sent_ns = now;
    tally_roll(d->tally, now, d->rate);
    tally_sent(d->tally, r.kind, r.key, intended_ns, now);
    if (rc != SL_OK || evcurl_add(d->curl, s->easy, run_done, s) != SL_OK) {
        tally_failure(d->tally, r.kind, r.key, TRANSPORT_OTHER);
        slot_put(d, s);
    }
}

/* Nothing more will be intended: the duration is over (a paused schedule is over only
 * once its end has passed). */
static bool schedule_over(const struct driver *d, uint64_t now)
{
    uint64_t t;
    return d->end_ns != PACER_NO_END && !pacer_peek(&d->pacer, &t) &&
           (pacer_rate(&d->pacer) > 0 || now >= d->end_ns);
}

/* Send everything due that a free slot can take, then sleep until the next is due. */
static void pump(struct driver *d)
{
    if (d->phase != PHASE_RUN)
        return;
    uint64_t t, now = clock_mono_ns();
    while (d->nfree && pacer_peek(&d->pacer, &t) && t <= now) {
        send_next(d, t);
        now = clock_mono_ns();
    }
    if (pacer_peek(&d->pacer, &t))
        arm(d, t > now ? t : 0); /* due but no free slot: the next answer pumps */
    else if (!schedule_over(d, now))
        arm(d, d->end_ns != PACER_NO_END ? d->end_ns : 0); /* paused */
    else if (in_flight(d) == 0)
        finish(d, "duration");
    else
        arm(d, 0);
}

static void on_timer_fd(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)loop, (void)events;
    uint64_t expirations;
    if (read(fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        return;
    pump(arg);
}

int driver_set_rate(struct driver *d, double rate, const char *source)
{
    if (!(rate >= 0 && rate <= DRIVER_RATE_MAX))
        return SL_ERANGE;
    if (d->phase == PHASE_SETUP) { /* the run has not started: it starts at this rate */
        d->rate = rate;
        return SL_OK;
    }
    uint64_t now = clock_mono_ns(), first;
    int rc = pacer_set_rate(&d->pacer, (uint64_t)(rate * 1000 + 0.5), now, &first);
    if (rc != SL_OK)
        return rc;
    d->rate = rate;
    tally_roll(d->tally, now, rate);
    tally_rate_change(d->tally, now, rate, first, source);
    pump(d);
    return SL_OK;
}

double driver_rate(const struct driver *d)
{
    return d->rate;
}

/* ---- the run ------------------------------------------------------------------------- */

static void progress_line(const char *line, const struct driver *d)
{
    if (d->cfg->quiet)
        return;
    fprintf(stderr, d->tty ? "\r%s\033[K" : "%s\n", line);
    fflush(stderr);
}

static void on_progress(struct evloop *loop, void *arg)
{
    (void)loop;
    struct driver *d = arg;
    char line[REPORT_LINE_MAX];
    if (d->phase == PHASE_SETUP) {
        snprintf(line, sizeof(line), "setup: %zu/%zu links created (%llu retries)",
                 d->links_created, d->sc->links, (unsigned long long)d->setup_retries);
        progress_line(line, d);
        return;
    }
    tally_roll(d->tally, clock_mono_ns(), d->rate);
    report_progress(d->tally, d->rate, in_flight(d), line);
    progress_line(line, d);
}

static void start_run(struct driver *d)
{
    d->run->setup_ms = (clock_mono_ns() - d->setup_start_ns) / NS_PER_MS;
    d->run->links_created = d->links_created;
    d->run->setup_retries = d->setup_retries;
    if (d->sc->links && !d->cfg->quiet)
        fprintf(stderr, "%ssetup: %zu links created in %.1f s; running at %g/s\n",
                d->tty ? "\r\033[K" : "", d->links_created, (double)d->run->setup_ms / 1e3,
                d->rate);
    d->phase = PHASE_RUN;
    d->start_ns = clock_mono_ns();
    d->end_ns = d->cfg->duration_s ? d->start_ns + d->cfg->duration_s * NS_PER_S : PACER_NO_END;
    d->run->rate = d->rate;
    d->run->started_wall_ms = clock_wall_ms();
    tally_init(d->tally, d->start_ns, d->rate);
    pacer_init(&d->pacer, (uint64_t)(d->rate * 1000 + 0.5), d->start_ns, d->end_ns);
    /* ticks just after each second since the start, so each closes the second before */
    evloop_cancel(d->loop, d->progress_timer);
    evloop_update_time(d->loop);
    evloop_timer_add(d->loop, 1000 + PROGRESS_LAG_MS, 1000, on_progress, d, &d->progress_timer);
    pump(d);
}

/* ---- setup: pre-create the links -------------------------------------------------------- */

static void setup_send(struct driver *d, struct slot *s);

static void setup_retry(struct evloop *loop, void *arg)
{
    (void)loop;
    struct slot *s = arg;
    if (s->d->phase == PHASE_SETUP)
        setup_send(s->d, s);
}

static void setup_next(struct driver *d)
{
    struct slot *s;
    while (d->phase == PHASE_SETUP && d->next_link < d->sc->links && (s = slot_take(d))) {
        s->seq = d->next_link++;
        s->attempt = 0;
        setup_send(d, s);
    }
    if (d->phase == PHASE_SETUP && d->links_created == d->sc->links)
        start_run(d);
}

/* The code in a 201's body, checked to be URL-safe. */
static bool take_code(struct driver *d, struct slot *s)
{
    json_t *doc = json_loadb(buf_str(&s->resp), s->resp.len, 0, NULL);
    const char *code = json_string_value(json_object_get(doc, "code"));
    bool ok = code && code[0] && strlen(code) <= DRIVER_CODE_MAX &&
              strspn(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
                  strlen(code);
    if (ok)
        snprintf(d->codes[s->seq], DRIVER_CODE_MAX + 1, "%s", code);
    json_decref(doc);
    return ok;
}

/* Retry s's link after delay_ms, or give up: after DRIVER_SETUP_REACH_ATTEMPTS when
 * this attempt got no answer (answered: false), after DRIVER_SETUP_ATTEMPTS otherwise. */
static void setup_again(struct driver *d, struct slot *s, uint64_t delay_ms, const char *what,
                        bool answered)
{
    s->attempt++;
    if (!answered && s->attempt >= DRIVER_SETUP_REACH_ATTEMPTS) {
        fail(d, "setup: cannot reach %s: %s (%u attempts)", d->cfg->target, what, s->attempt);
        return;
    }
    if (s->attempt >= DRIVER_SETUP_ATTEMPTS) {
        fail(d, "setup: link %llu: gave up after %d attempts (last: %s)",
             (unsigned long long)s->seq, DRIVER_SETUP_ATTEMPTS, what);
        return;
    }
    d->setup_retries++;
    if (evloop_timer_add(d->loop, delay_ms, 0, setup_retry, s, NULL) != SL_OK)
        fail(d, "setup: out of memory");
}

/* 200 ms, doubling per attempt, at most 3.2 s. */
static uint64_t backoff_ms(unsigned attempt)
{
    return (uint64_t)200 << (attempt < 4 ? attempt : 4);
}

static void setup_done(CURL *easy, CURLcode result, void *arg)
{
    struct slot *s = arg;
    struct driver *d = s->d;
    char what[64];
    if (d->closing || d->phase != PHASE_SETUP) {
        slot_put(d, s);
        return;
    }
    long status = 0;
    curl_off_t retry_after_s = 0;
    if (result != CURLE_OK) {
        snprintf(what, sizeof(what), "%s", curl_easy_strerror(result));
        setup_again(d, s, backoff_ms(s->attempt), what, false);
        return;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &retry_after_s);
    snprintf(what, sizeof(what), "status %ld", status);
    if (status == 201 && take_code(d, s)) {
        d->links_created++;
        slot_put(d, s);
        setup_next(d);
    } else if (status == 201) {
        fail(d, "setup: POST %s answered 201 without a usable \"code\": %.200s", s->url,
             buf_str(&s->resp));
    } else if (status == 429 || status == 503) {
        uint64_t ms =
            retry_after_s > 0 ? (uint64_t)(retry_after_s < 60 ? retry_after_s : 60) * 1000 : 1000;
        setup_again(d, s, ms, what, true);
    } else if (status >= 500) {
        setup_again(d, s, backoff_ms(s->attempt), what, true);
    } else {
        fail(d,
             "setup: POST %s with key '%s' answered %ld (is the key valid, with scope "
             "links:write?): %.200s",
             s->url, d->sc->keys[s->key].name, status, buf_str(&s->resp));
    }
}

static void setup_send(struct driver *d, struct slot *s)
{
    unsigned key = plan_owner(d->plan, (size_t)s->seq);
    if (prepare(d, s, KIND_CREATE, key, "", s->seq) != SL_OK ||
        evcurl_add(d->curl, s->easy, setup_done, s) != SL_OK)
        fail(d, "setup: cannot start a request (out of memory)");
}

/* ---- signals ----------------------------------------------------------------------------- */

static void on_grace(struct evloop *loop, void *arg)
{
    (void)loop;
    finish(arg, "signal");
}

/* SIGTERM/SIGINT: stop sending; give those in flight a grace period; a second one ends
 * at once. */
static void stop_sending(struct driver *d)
{
    if (d->phase != PHASE_RUN) {
        finish(d, "signal");
        return;
    }
    d->phase = PHASE_STOPPING;
    arm(d, 0);
    if (in_flight(d) == 0)
        finish(d, "signal");
    else
        evloop_timer_add(d->loop, DRIVER_STOP_GRACE_MS, 0, on_grace, d, &d->grace_timer);
}

static void on_signal_fd(struct evloop *loop, int fd, unsigned events, void *arg)
{
    (void)loop, (void)events;
    struct driver *d = arg;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2) {
            double r = si.ssi_signo == SIGUSR1 ? d->rate * 2 : d->rate / 2;
            r = r > DRIVER_RATE_MAX ? DRIVER_RATE_MAX : r;
            if (driver_set_rate(d, r, si.ssi_signo == SIGUSR1 ? "SIGUSR1" : "SIGUSR2") == SL_OK &&
                !d->cfg->quiet)
                fprintf(stderr, "%srate: %g/s (%s)\n", d->tty ? "\r\033[K" : "", d->rate,
                        si.ssi_signo == SIGUSR1 ? "SIGUSR1: doubled" : "SIGUSR2: halved");
        } else {
            stop_sending(d);
        }
    }
}

/* ---- status and life cycle ----------------------------------------------------------------- */

json_t *driver_status(const struct driver *d)
{
    json_t *o;
    if (d->phase == PHASE_SETUP)
        o = json_object();
    else
        o = report_status_json(d->tally, d->rate, in_flight(d),
                               (d->finish_ns ? d->finish_ns : clock_mono_ns()) - d->start_ns);
    json_object_set_new(o, "phase", json_string(phase_names[d->phase]));
    json_object_set_new(o, "rate", json_real(d->rate));
    json_object_set_new(o, "target", json_string(d->cfg->target));
    json_object_set_new(o, "setup",
                        json_pack("{s:I, s:I}", "links", (json_int_t)d->sc->links, "created",
                                  (json_int_t)d->links_created));
    return o;
}

static int open_fds(struct driver *d, char *err)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL); /* before any thread (curl's resolver) starts */
    signal(SIGPIPE, SIG_IGN);
    d->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    char cerr[128] = "";
    if (d->signal_fd < 0 || d->timer_fd < 0 || !(d->loop = evloop_new()) ||
        !(d->curl = evcurl_new(d->loop, cerr)) ||
        evloop_watch_add(d->loop, d->signal_fd, EV_READ, on_signal_fd, d) != SL_OK ||
        evloop_watch_add(d->loop, d->timer_fd, EV_READ, on_timer_fd, d) != SL_OK) {
        snprintf(err, DRIVER_ERR_MAX, "cannot set up the event loop: %s",
                 cerr[0] ? cerr : strerror(errno));
        return SL_EIO;
    }
    return SL_OK;
}

static int driver_init(struct driver *d, char *err)
{
    int rc = open_fds(d, err);
    if (rc)
        return rc;
    json_t *p = json_string(d->sc->url_prefix);
    char *quoted = p ? json_dumps(p, JSON_ENCODE_ANY) : NULL;
    json_decref(p);
    d->codes = calloc(d->sc->links ? d->sc->links : 1, sizeof(*d->codes));
    if (!quoted || !d->codes || slots_init(d) != SL_OK || headers_init(d) != SL_OK) {
        free(quoted);
        snprintf(err, DRIVER_ERR_MAX, "out of memory");
        return SL_ENOMEM;
    }
    snprintf(d->prefix_json, sizeof(d->prefix_json), "%.*s", (int)strlen(quoted) - 2, quoted + 1);
    free(quoted);
    if (d->cfg->admin && (rc = admin_start(d, d->loop, d->cfg->admin, &d->admin, err)) != SL_OK)
        return rc;
    return evloop_timer_add(d->loop, 1000, 1000, on_progress, d, &d->progress_timer);
}

static void driver_release(struct driver *d)
{
    d->closing = true;
    evcurl_free(d->curl); /* aborts what is in flight: counted as aborted */
    http_server_stop(d->admin);
    slots_free(d);
    for (size_t k = 0; k < SCENARIO_KEYS_MAX; k++)
        curl_slist_free_all(d->headers[k]);
    int fds[] = {d->signal_fd, d->timer_fd};
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0) {
            if (d->loop)
                evloop_watch_del(d->loop, fds[i]);
            close(fds[i]);
        }
    evloop_free(d->loop);
    free(d->codes);
}

static void fill_run(const struct driver *d, struct report_run *run)
{
    run->ended_wall_ms = clock_wall_ms();
    if (!run->started_wall_ms)
        run->started_wall_ms = run->ended_wall_ms;
    run->elapsed_ns = d->start_ns && d->finish_ns > d->start_ns ? d->finish_ns - d->start_ns : 0;
    run->stopped_by = d->stopped_by ? d->stopped_by : "error";
    run->planned = pacer_taken(&d->pacer);
    run->rate_now = d->rate;
    run->in_flight = in_flight(d);
    run->links_created = d->links_created;
    run->setup_retries = d->setup_retries;
}

int driver_run(const struct driver_config *cfg, const struct scenario *sc, const struct plan *plan,
               struct tally *tally, struct report_run *run, char err[DRIVER_ERR_MAX])
{
    struct driver *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, DRIVER_ERR_MAX, "out of memory");
        return SL_ENOMEM;
    }
    *d = (struct driver){.cfg = cfg,
                         .sc = sc,
                         .plan = plan,
                         .tally = tally,
                         .run = run,
                         .timer_fd = -1,
                         .signal_fd = -1,
                         .rate = cfg->rate,
                         .err = err,
                         .tty = isatty(STDERR_FILENO) == 1};
    err[0] = '\0';
    d->setup_start_ns = clock_mono_ns();
    tally_init(tally, d->setup_start_ns, cfg->rate);
    int rc = driver_init(d, err);
    if (rc == SL_OK) {
        setup_next(d);
        if (d->phase != PHASE_DONE)
            evloop_run(d->loop);
        if (d->tty && !cfg->quiet)
            fputc('\n', stderr);
        rc = err[0] ? SL_EIO : SL_OK;
    }
    fill_run(d, run);
    driver_release(d);
    run->in_flight = 0; /* aborted by now */
    free(d);
    return rc;
}
