#include "report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "version.h"

static const double percentiles[] = {50, 75, 90, 99, 99.9, 99.99, 100};
#define NPERCENTILES (sizeof(percentiles) / sizeof(percentiles[0]))

/* A duration in µs for people: "850us", "1.21ms", "2.50s". */
static const char *human_us(uint64_t us, char out[24])
{
    if (us < 1000)
        snprintf(out, 24, "%lluus", (unsigned long long)us);
    else if (us < 1000000)
        snprintf(out, 24, "%.2fms", (double)us / 1e3);
    else
        snprintf(out, 24, "%.2fs", (double)us / 1e6);
    return out;
}

/* The most recent closed second, or NULL before the first one closes. */
static const struct tally_second *last_second(const struct tally *t)
{
    uint64_t kept = tally_seconds_kept(t);
    return kept ? tally_second_at(t, kept - 1) : NULL;
}

void report_progress(const struct tally *t, double target_rate, unsigned in_flight,
                     char out[REPORT_LINE_MAX])
{
    const struct tally_second *s = last_second(t);
    const uint64_t *c = t->total.classes;
    char p50[24], p99[24];
    snprintf(out, REPORT_LINE_MAX,
             "[%5llus] sent %llu  %.1f/s (target %g/s)  in flight %u | p50 %s p99 %s | 2xx %llu "
             "3xx %llu 4xx %llu 429 %llu 5xx %llu transport %llu | late %llu",
             (unsigned long long)t->seconds, (unsigned long long)t->total.sent,
             s ? (double)s->sent : 0.0, target_rate, in_flight, human_us(s ? s->p50_us : 0, p50),
             human_us(s ? s->p99_us : 0, p99), (unsigned long long)c[CLASS_2XX],
             (unsigned long long)c[CLASS_3XX], (unsigned long long)c[CLASS_4XX],
             (unsigned long long)c[CLASS_429], (unsigned long long)c[CLASS_5XX],
             (unsigned long long)c[CLASS_TRANSPORT], (unsigned long long)t->late);
}

/* ---- summary ----------------------------------------------------------------------- */

static void summary_latency(FILE *out, const struct tally *t)
{
    char a[24], b[24];
    fprintf(out, "\n  Latency from the intended send time (service time: from the actual send)\n");
    fprintf(out, "    %10s %12s %12s\n", "percentile", "latency", "service");
    for (size_t i = 0; i < NPERCENTILES; i++)
        fprintf(out, "    %9.3f%% %12s %12s\n", percentiles[i],
                human_us(histogram_percentile(&t->latency, percentiles[i]), a),
                human_us(histogram_percentile(&t->service, percentiles[i]), b));
    uint64_t n = histogram_count(&t->latency);
    fprintf(out, "    mean %s (service %s) over %llu answers\n",
            human_us(n ? histogram_sum(&t->latency) / n : 0, a),
            human_us(n ? histogram_sum(&t->service) / n : 0, b), (unsigned long long)n);
}

static void summary_row(FILE *out, const char *name, const struct tally_counts *c,
                        const struct histogram *h)
{
    char a[24], b[24];
    fprintf(out, "  %-12.12s %8llu", name, (unsigned long long)c->sent);
    for (int k = 0; k < CLASS_COUNT; k++)
        fprintf(out, " %8llu", (unsigned long long)c->classes[k]);
    if (h)
        fprintf(out, " %9s %9s", human_us(histogram_percentile(h, 50), a),
                human_us(histogram_percentile(h, 99), b));
    fputc('\n', out);
}

static void summary_header(FILE *out, const char *first, bool latency)
{
    fprintf(out, "\n  %-12s %8s", first, "sent");
    for (int k = 0; k < CLASS_COUNT; k++)
        fprintf(out, " %8s", tally_class_name((enum tally_class)k));
    if (latency)
        fprintf(out, " %9s %9s", "p50", "p99");
    fputc('\n', out);
}

/* "  redirect     302 x327 404 x2" */
static void summary_statuses(FILE *out, const char *name, const struct tally_counts *c)
{
    fprintf(out, "  %-12.12s", name);
    for (int i = 0; i < TALLY_STATUS_SLOTS; i++)
        if (c->status[i])
            fprintf(out, " %d x%llu", i + TALLY_STATUS_MIN, (unsigned long long)c->status[i]);
    if (c->status_other)
        fprintf(out, " other x%llu", (unsigned long long)c->status_other);
    if (c->done == c->classes[CLASS_TRANSPORT])
        fprintf(out, " (no answers)");
    fputc('\n', out);
}

void report_summary(FILE *out, const struct tally *t, const struct scenario *sc,
                    const struct report_run *run)
{
    double secs = (double)run->elapsed_ns / 1e9;
    char lag[24];
    char now[48] = "";
    if (run->rate_now != run->rate)
        snprintf(now, sizeof(now), ", %g/s at the end", run->rate_now);
    fprintf(out,
            "sluice-loadgen: %llu requests in %.2f s to %s (rate %g/s%s, seed %llu, %u "
            "connections, stopped by %s)\n",
            (unsigned long long)t->total.sent, secs, run->target, run->rate, now,
            (unsigned long long)run->seed, run->connections, run->stopped_by);
    fprintf(out,
            "  %llu answered, %llu transport errors (%llu timeout, %llu connect, %llu other), "
            "%llu aborted; %llu late (> %llu ms behind schedule), max lag %s\n",
            (unsigned long long)(t->total.done - t->total.classes[CLASS_TRANSPORT]),
            (unsigned long long)t->total.classes[CLASS_TRANSPORT],
            (unsigned long long)t->transport[TRANSPORT_TIMEOUT],
            (unsigned long long)t->transport[TRANSPORT_CONNECT],
            (unsigned long long)t->transport[TRANSPORT_OTHER], (unsigned long long)t->aborted,
            (unsigned long long)t->late, (unsigned long long)(TALLY_LATE_NS / 1000000),
            human_us(t->max_lag_ns / 1000, lag));
    summary_latency(out, t);
    summary_header(out, "kind", true);
    for (int k = 0; k < KIND_COUNT; k++)
        summary_row(out, kind_name((enum req_kind)k), &t->kind[k], &t->kind_latency[k]);
    summary_header(out, "key", false);
    for (size_t k = 0; k < sc->nkeys; k++)
        summary_row(out, sc->keys[k].name, &t->key[k], NULL);
    fprintf(out, "\n  %-12s statuses\n", "kind");
    for (int k = 0; k < KIND_COUNT; k++)
        summary_statuses(out, kind_name((enum req_kind)k), &t->kind[k]);
    summary_statuses(out, "all", &t->total);
    fflush(out);
}

/* ---- JSON ---------------------------------------------------------------------------- */

static json_t *classes_json(const uint64_t classes[CLASS_COUNT])
{
    json_t *o = json_object();
    for (int k = 0; k < CLASS_COUNT; k++)
        json_object_set_new(o, tally_class_name((enum tally_class)k),
                            json_integer((json_int_t)classes[k]));
    return o;
}

static json_t *counts_json(const struct tally_counts *c)
{
    json_t *status = json_object();
    char code[16];
    for (int i = 0; i < TALLY_STATUS_SLOTS; i++)
        if (c->status[i]) {
            snprintf(code, sizeof(code), "%d", i + TALLY_STATUS_MIN);
            json_object_set_new(status, code, json_integer((json_int_t)c->status[i]));
        }
    if (c->status_other)
        json_object_set_new(status, "other", json_integer((json_int_t)c->status_other));
    return json_pack("{s:I, s:I, s:o, s:o}", "sent", (json_int_t)c->sent, "done",
                     (json_int_t)c->done, "classes", classes_json(c->classes), "status", status);
}

static json_t *latency_json(const struct histogram *h)
{
    json_t *p = json_object();
    char name[16];
    for (size_t i = 0; i < NPERCENTILES; i++) {
        snprintf(name, sizeof(name), "%g", percentiles[i]);
        json_object_set_new(p, name,
                            json_integer((json_int_t)histogram_percentile(h, percentiles[i])));
    }
    uint64_t n = histogram_count(h);
    return json_pack("{s:I, s:I, s:f, s:I, s:o}", "count", (json_int_t)n, "min",
                     (json_int_t)histogram_min(h), "mean",
                     n ? (double)histogram_sum(h) / (double)n : 0.0, "max",
                     (json_int_t)histogram_max(h), "percentiles", p);
}

static json_t *mix_json(const double mix[KIND_COUNT])
{
    json_t *o = json_object();
    for (int k = 0; k < KIND_COUNT; k++)
        json_object_set_new(o, kind_name((enum req_kind)k), json_real(mix[k]));
    return o;
}

static json_t *config_json(const struct scenario *sc, const struct report_run *run)
{
    json_t *keys = json_array();
    for (size_t k = 0; k < sc->nkeys; k++)
        json_array_append_new(keys, json_pack("{s:s, s:f, s:o}", "name", sc->keys[k].name, "share",
                                              sc->keys[k].share, "mix", mix_json(sc->keys[k].mix)));
    return json_pack("{s:s, s:s, s:I, s:f, s:I, s:i, s:I, s:o, s:I, s:f, s:I, s:s, s:o}", "target",
                     run->target, "scenario", run->scenario, "seed", (json_int_t)run->seed, "rate",
                     run->rate, "duration_s", (json_int_t)run->duration_s, "connections",
                     (int)run->connections, "timeout_ms", (json_int_t)run->timeout_ms, "mix",
                     mix_json(sc->mix), "links", (json_int_t)sc->links, "zipf_s", sc->zipf_s,
                     "bulk_size", (json_int_t)sc->bulk_size, "url_prefix", sc->url_prefix, "keys",
                     keys);
}

static json_t *second_json(const struct tally_second *s, bool partial)
{
    json_t *o = json_pack("{s:I, s:f, s:I, s:I, s:I, s:o, s:I, s:I}", "t", (json_int_t)s->t_s,
                          "rate", s->rate, "sent", (json_int_t)s->sent, "done", (json_int_t)s->done,
                          "late", (json_int_t)s->late, "classes", classes_json(s->classes),
                          "p50_us", (json_int_t)s->p50_us, "p99_us", (json_int_t)s->p99_us);
    if (partial)
        json_object_set_new(o, "partial", json_true());
    return o;
}

static json_t *timeline_json(const struct tally *t)
{
    json_t *a = json_array();
    const struct tally_second *s;
    for (uint64_t i = 0; (s = tally_second_at(t, i)); i++)
        json_array_append_new(a, second_json(s, false));
    if (t->cur.sent || t->cur.done) { /* the second the run ended in */
        struct tally_second cur = t->cur;
        cur.p50_us = histogram_percentile(&t->cur_latency, 50);
        cur.p99_us = histogram_percentile(&t->cur_latency, 99);
        json_array_append_new(a, second_json(&cur, true));
    }
    return a;
}

static json_t *schedule_json(const struct tally *t, const struct report_run *run)
{
    json_t *changes = json_array();
    for (uint64_t i = 0; i < t->nchanges && i < TALLY_CHANGES_MAX; i++) {
        const struct tally_change *c = &t->changes[i];
        json_array_append_new(changes, json_pack("{s:I, s:f, s:I, s:s}", "at_ms",
                                                 (json_int_t)c->at_ms, "rate", c->rate, "first",
                                                 (json_int_t)c->first, "source", c->source));
    }
    return json_pack("{s:I, s:f, s:o, s:I}", "planned", (json_int_t)run->planned, "rate",
                     run->rate_now, "rate_changes", changes, "rate_changes_total",
                     (json_int_t)t->nchanges);
}

static json_t *totals_json(const struct tally *t, const struct report_run *run)
{
    json_t *o = counts_json(&t->total);
    json_t *transport = json_object();
    for (int k = 0; k < TRANSPORT_COUNT; k++)
        json_object_set_new(transport, tally_transport_name((enum tally_transport)k),
                            json_integer((json_int_t)t->transport[k]));
    json_object_set_new(o, "transport", transport);
    json_object_set_new(o, "aborted", json_integer((json_int_t)t->aborted));
    json_object_set_new(o, "in_flight", json_integer(run->in_flight));
    json_object_set_new(o, "late", json_integer((json_int_t)t->late));
    json_object_set_new(o, "max_lag_ms", json_real((double)t->max_lag_ns / 1e6));
    return o;
}

json_t *report_json(const struct tally *t, const struct scenario *sc, const struct report_run *run)
{
    char started[32], ended[32];
    clock_format_iso8601(run->started_wall_ms, started);
    clock_format_iso8601(run->ended_wall_ms, ended);
    json_t *kinds = json_object(), *keys = json_object();
    for (int k = 0; k < KIND_COUNT; k++) {
        json_t *o = counts_json(&t->kind[k]);
        json_object_set_new(o, "latency_us", latency_json(&t->kind_latency[k]));
        json_object_set_new(kinds, kind_name((enum req_kind)k), o);
    }
    for (size_t k = 0; k < sc->nkeys; k++)
        json_object_set_new(keys, sc->keys[k].name, counts_json(&t->key[k]));
    json_t *setup =
        json_pack("{s:I, s:I, s:I, s:f}", "links", (json_int_t)sc->links, "created",
                  (json_int_t)run->links_created, "retries", (json_int_t)run->setup_retries,
                  "seconds", (double)run->setup_ms / 1e3);
    return json_pack("{s:s, s:s, s:o, s:s, s:s, s:f, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
                     "s:o, s:I}",
                     "tool", "sluice-loadgen", "version", SLUICE_VERSION, "config",
                     config_json(sc, run), "started_at", started, "ended_at", ended, "elapsed_s",
                     (double)run->elapsed_ns / 1e9, "stopped_by", run->stopped_by, "setup", setup,
                     "schedule", schedule_json(t, run), "totals", totals_json(t, run), "latency_us",
                     latency_json(&t->latency), "service_time_us", latency_json(&t->service),
                     "kinds", kinds, "keys", keys, "timeline", timeline_json(t), "timeline_dropped",
                     (json_int_t)tally_seconds_dropped(t));
}

json_t *report_status_json(const struct tally *t, double target_rate, unsigned in_flight,
                           uint64_t elapsed_ns)
{
    const struct tally_second *s = last_second(t);
    json_t *o = counts_json(&t->total);
    json_object_set_new(o, "rate", json_real(target_rate));
    json_object_set_new(o, "in_flight", json_integer(in_flight));
    json_object_set_new(o, "late", json_integer((json_int_t)t->late));
    json_object_set_new(o, "elapsed_s", json_real((double)elapsed_ns / 1e9));
    json_object_set_new(o, "latency_us", latency_json(&t->latency));
    json_object_set_new(o, "last_second", s ? second_json(s, false) : json_null());
    return o;
}

int report_write(const char *path, const json_t *report, char err[256])
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
        snprintf(err, 256, "--report: path too long");
        return SL_EIO;
    }
    if (json_dump_file(report, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
        rename(tmp, path) != 0) {
        snprintf(err, 256, "--report: cannot write %.200s: %s", path, strerror(errno));
        unlink(tmp);
        return SL_EIO;
    }
    return SL_OK;
}
