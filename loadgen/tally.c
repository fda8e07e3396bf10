#include "tally.h"

#include <stdio.h>
#include <string.h>

#define NS_PER_S  UINT64_C(1000000000)
#define NS_PER_US UINT64_C(1000)

static const char *const class_names[CLASS_COUNT] = {"2xx", "3xx", "4xx",
                                                     "429", "5xx", "transport"};
static const char *const transport_names[TRANSPORT_COUNT] = {"timeout", "connect", "other"};

enum tally_class tally_class_of(int status)
{
    if (status == 429)
        return CLASS_429;
    if (status >= 200 && status < 300)
        return CLASS_2XX;
    if (status >= 300 && status < 400)
        return CLASS_3XX;
    if (status >= 500 && status < 600)
        return CLASS_5XX;
    return CLASS_4XX; /* 4xx, and the odd 1xx or nonsense code: a client-side surprise */
}

const char *tally_class_name(enum tally_class c)
{
    return (unsigned)c < CLASS_COUNT ? class_names[c] : "unknown";
}

const char *tally_transport_name(enum tally_transport why)
{
    return (unsigned)why < TRANSPORT_COUNT ? transport_names[why] : "unknown";
}

void tally_init(struct tally *t, uint64_t start_ns, double rate)
{
    memset(t, 0, sizeof(*t));
    t->start_ns = start_ns;
    t->cur.rate = rate;
}

static void close_second(struct tally *t, double rate)
{
    t->cur.rate = rate;
    t->cur.p50_us = histogram_percentile(&t->cur_latency, 50);
    t->cur.p99_us = histogram_percentile(&t->cur_latency, 99);
    t->ring[t->seconds % TALLY_TIMELINE_MAX] = t->cur;
    t->seconds++;
    t->cur = (struct tally_second){.t_s = t->seconds, .rate = rate};
    histogram_reset(&t->cur_latency);
}

void tally_roll(struct tally *t, uint64_t now_ns, double rate)
{
    uint64_t s = now_ns > t->start_ns ? (now_ns - t->start_ns) / NS_PER_S : 0;
    while (t->cur.t_s < s)
        close_second(t, rate);
}

static void count_sent(struct tally_counts *c)
{
    c->sent++;
}

static void count_done(struct tally_counts *c, enum tally_class cls, int status)
{
    c->done++;
    c->classes[cls]++;
    if (cls == CLASS_TRANSPORT)
        return;
    if (status >= TALLY_STATUS_MIN && status <= TALLY_STATUS_MAX)
        c->status[status - TALLY_STATUS_MIN]++;
    else
        c->status_other++;
}

void tally_sent(struct tally *t, enum req_kind kind, unsigned key, uint64_t intended_ns,
                uint64_t sent_ns)
{
    count_sent(&t->total);
    count_sent(&t->kind[kind]);
    count_sent(&t->key[key]);
    t->cur.sent++;
    uint64_t lag = sent_ns > intended_ns ? sent_ns - intended_ns : 0;
    if (lag > t->max_lag_ns)
        t->max_lag_ns = lag;
    if (lag > TALLY_LATE_NS) {
        t->late++;
        t->cur.late++;
    }
}

void tally_answer(struct tally *t, enum req_kind kind, unsigned key, int status,
                  uint64_t intended_ns, uint64_t sent_ns, uint64_t done_ns)
{
    enum tally_class cls = tally_class_of(status);
    count_done(&t->total, cls, status);
    count_done(&t->kind[kind], cls, status);
    count_done(&t->key[key], cls, status);
    t->cur.done++;
    t->cur.classes[cls]++;
    uint64_t latency_us = done_ns > intended_ns ? (done_ns - intended_ns) / NS_PER_US : 0;
    uint64_t service_us = done_ns > sent_ns ? (done_ns - sent_ns) / NS_PER_US : 0;
    histogram_record(&t->latency, latency_us);
    histogram_record(&t->kind_latency[kind], latency_us);
    histogram_record(&t->cur_latency, latency_us);
    histogram_record(&t->service, service_us);
}

void tally_failure(struct tally *t, enum req_kind kind, unsigned key, enum tally_transport why)
{
    count_done(&t->total, CLASS_TRANSPORT, 0);
    count_done(&t->kind[kind], CLASS_TRANSPORT, 0);
    count_done(&t->key[key], CLASS_TRANSPORT, 0);
    t->cur.done++;
    t->cur.classes[CLASS_TRANSPORT]++;
    t->transport[why]++;
}

void tally_aborted(struct tally *t, uint64_t n)
{
    t->aborted += n;
}

void tally_rate_change(struct tally *t, uint64_t now_ns, double rate, uint64_t first,
                       const char *source)
{
    if (t->nchanges < TALLY_CHANGES_MAX) {
        struct tally_change *c = &t->changes[t->nchanges];
        c->at_ms = now_ns > t->start_ns ? (now_ns - t->start_ns) / 1000000 : 0;
        c->rate = rate;
        c->first = first;
        snprintf(c->source, sizeof(c->source), "%s", source);
    }
    t->nchanges++;
}

uint64_t tally_seconds_kept(const struct tally *t)
{
    return t->seconds < TALLY_TIMELINE_MAX ? t->seconds : TALLY_TIMELINE_MAX;
}

uint64_t tally_seconds_dropped(const struct tally *t)
{
    return t->seconds - tally_seconds_kept(t);
}

const struct tally_second *tally_second_at(const struct tally *t, uint64_t i)
{
    if (i >= tally_seconds_kept(t))
        return NULL;
    return &t->ring[(tally_seconds_dropped(t) + i) % TALLY_TIMELINE_MAX];
}
