#include "stats.h"

#include <stddef.h>
#include <string.h>

#include "err.h"

static void add(_Atomic uint64_t *c, uint64_t n)
{
    /* single writer: a relaxed load + store is enough and avoids a locked instruction */
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static uint64_t get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void stats_record(struct worker_stats *ws, const struct stats_request *r, uint64_t now_ms)
{
    struct route_stats *s = &ws->routes[r->route < STATS_ROUTES_MAX ? r->route : 0];
    add(&s->requests, 1);
    unsigned cls = r->status >= 100 && r->status < 600 ? (unsigned)r->status / 100 : 0;
    add(&s->by_class[cls], 1);
    add(&s->bytes_in, r->bytes_in);
    add(&s->bytes_out, r->bytes_out);
    if (r->upstream_error)
        add(&s->upstream_errors, 1);
    if (r->upstream_timeout)
        add(&s->upstream_timeouts, 1);
    if (r->faulted)
        add(&s->faulted, 1);
    if (r->rejected)
        add(&s->rejected, 1);
    histogram_record(&s->latency_us, r->latency_us);
    if (r->upstream_us)
        histogram_record(&s->upstream_us, r->upstream_us);
    rate_add(&s->rate_requests, now_ms, 1);
    if (cls == 5 || cls == 0)
        rate_add(&s->rate_errors, now_ms, 1);
}

static void route_merge(struct route_stats *dst, const struct route_stats *src)
{
    add(&dst->requests, get(&src->requests));
    for (int i = 0; i < 6; i++)
        add(&dst->by_class[i], get(&src->by_class[i]));
    add(&dst->bytes_in, get(&src->bytes_in));
    add(&dst->bytes_out, get(&src->bytes_out));
    add(&dst->upstream_errors, get(&src->upstream_errors));
    add(&dst->upstream_timeouts, get(&src->upstream_timeouts));
    add(&dst->faulted, get(&src->faulted));
    add(&dst->rejected, get(&src->rejected));
    histogram_merge(&dst->latency_us, &src->latency_us);
    histogram_merge(&dst->upstream_us, &src->upstream_us);
    rate_merge(&dst->rate_requests, &src->rate_requests);
    rate_merge(&dst->rate_errors, &src->rate_errors);
}

void stats_view_reset(struct stats_view *v)
{
    memset(v, 0, sizeof(*v));
}

void stats_view_add(struct stats_view *v, const struct worker_stats *ws)
{
    for (unsigned i = 0; i < STATS_ROUTES_MAX; i++)
        if (get(&ws->routes[i].requests))
            route_merge(&v->routes[i], &ws->routes[i]);
    v->in_flight += atomic_load_explicit(&ws->in_flight, memory_order_relaxed);
    v->connections_accepted += get(&ws->connections_accepted);
    v->upstream_connects += get(&ws->upstream_connects);
    v->upstream_reused += get(&ws->upstream_reused);
}

void stats_view_finish(struct stats_view *v)
{
    memset(&v->total, 0, sizeof(v->total));
    for (unsigned i = 0; i < STATS_ROUTES_MAX; i++)
        if (get(&v->routes[i].requests))
            route_merge(&v->total, &v->routes[i]);
}

static json_t *rates_json(const struct rate *r, uint64_t now_ms)
{
    return json_pack("{s:f, s:f, s:f}", "1s", rate_per_s(r, now_ms, 1), "10s",
                     rate_per_s(r, now_ms, 10), "60s", rate_per_s(r, now_ms, 60));
}

static json_t *histogram_json(const struct histogram *h)
{
    json_t *buckets = json_array();
    size_t cursor = 0;
    struct histogram_bucket b;
    while (histogram_next_bucket(h, &cursor, &b))
        json_array_append_new(buckets, json_pack("[I, I]", (json_int_t)b.index,
                                                 (json_int_t)b.count));
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o}", "layout", HISTOGRAM_LAYOUT, "unit",
                     "us", "count", (json_int_t)histogram_count(h), "sum",
                     (json_int_t)histogram_sum(h), "min", (json_int_t)histogram_min(h), "max",
                     (json_int_t)histogram_max(h), "buckets", buckets);
}

static json_t *percentiles_ms(const struct histogram *h)
{
    return json_pack("{s:f, s:f, s:f, s:f}", "p50", histogram_percentile(h, 50) / 1000.0,
                     "p90", histogram_percentile(h, 90) / 1000.0, "p99",
                     histogram_percentile(h, 99) / 1000.0, "p999",
                     histogram_percentile(h, 99.9) / 1000.0);
}

json_t *stats_route_json(const struct route_stats *r, uint64_t now_ms)
{
    json_t *status = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "1xx",
                               (json_int_t)get(&r->by_class[1]), "2xx",
                               (json_int_t)get(&r->by_class[2]), "3xx",
                               (json_int_t)get(&r->by_class[3]), "4xx",
                               (json_int_t)get(&r->by_class[4]), "5xx",
                               (json_int_t)get(&r->by_class[5]), "none",
                               (json_int_t)get(&r->by_class[0]));
    json_t *o = json_pack("{s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I}", "requests",
                          (json_int_t)get(&r->requests), "status", status, "bytes_in",
                          (json_int_t)get(&r->bytes_in), "bytes_out",
                          (json_int_t)get(&r->bytes_out), "upstream_errors",
                          (json_int_t)get(&r->upstream_errors), "upstream_timeouts",
                          (json_int_t)get(&r->upstream_timeouts), "faulted",
                          (json_int_t)get(&r->faulted), "rejected",
                          (json_int_t)get(&r->rejected));
    json_object_set_new(o, "rate", rates_json(&r->rate_requests, now_ms));
    json_object_set_new(o, "error_rate", rates_json(&r->rate_errors, now_ms));
    json_object_set_new(o, "latency_ms", percentiles_ms(&r->latency_us));
    json_object_set_new(o, "upstream_latency_ms", percentiles_ms(&r->upstream_us));
    json_object_set_new(o, "latency_histogram", histogram_json(&r->latency_us));
    return o;
}

/* One counter family over every route with traffic; field picks the counter. */
static int prom_counter_family(struct prom *w, const struct stats_view *v,
                               const char *const *names, unsigned nroutes, const char *name,
                               const char *help, size_t field_offset)
{
    int rc = prom_family(w, name, PROM_COUNTER, help);
    for (unsigned i = 0; rc == SL_OK && i < nroutes && i < STATS_ROUTES_MAX; i++) {
        const struct route_stats *r = &v->routes[i];
        if (!get(&r->requests))
            continue;
        const _Atomic uint64_t *c = (const _Atomic uint64_t *)((const char *)r + field_offset);
        struct prom_label l[] = {{"route", names[i]}};
        prom_sample(w, l, 1, (double)get(c)); /* a bad label skips the sample only */
    }
    return rc;
}

static int prom_requests(struct prom *w, const struct stats_view *v, const char *const *names,
                         unsigned nroutes)
{
    static const char *const classes[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    int rc = prom_family(w, "sluice_requests_total", PROM_COUNTER,
                         "Requests proxied, by route and status class");
    for (unsigned i = 0; rc == SL_OK && i < nroutes && i < STATS_ROUTES_MAX; i++) {
        for (int c = 0; c < 6 && get(&v->routes[i].requests); c++) {
            uint64_t n = get(&v->routes[i].by_class[c]);
            struct prom_label l[] = {{"route", names[i]}, {"code", classes[c]}};
            if (n)
                prom_sample(w, l, 2, (double)n);
        }
    }
    return rc;
}

static int prom_histograms(struct prom *w, const struct stats_view *v, const char *const *names,
                           unsigned nroutes, const char *name, const char *help, bool upstream)
{
    int rc = prom_family(w, name, PROM_HISTOGRAM, help);
    for (unsigned i = 0; rc == SL_OK && i < nroutes && i < STATS_ROUTES_MAX; i++) {
        const struct route_stats *r = &v->routes[i];
        if (!get(&r->requests))
            continue;
        struct prom_label l[] = {{"route", names[i]}};
        prom_histogram(w, l, 1, upstream ? &r->upstream_us : &r->latency_us,
                       &prom_le_latency_us);
    }
    return rc;
}

static int prom_gauge(struct prom *w, const char *name, const char *help, double value)
{
    int rc = prom_family(w, name, PROM_GAUGE, help);
    return rc ? rc : prom_sample(w, NULL, 0, value);
}

static int prom_counter(struct prom *w, const char *name, const char *help, uint64_t value)
{
    int rc = prom_family(w, name, PROM_COUNTER, help);
    return rc ? rc : prom_sample(w, NULL, 0, (double)value);
}

#define OFF(field) offsetof(struct route_stats, field)

int stats_prom(struct prom *w, const struct stats_view *v, const char *const *names,
               unsigned nroutes, const char *agent_id)
{
    (void)agent_id; /* the scraper adds instance labels; kept for a future info metric */
    int rc = prom_requests(w, v, names, nroutes);
    if (!rc)
        rc = prom_counter_family(w, v, names, nroutes, "sluice_request_bytes_total",
                                 "Request bytes received from clients", OFF(bytes_in));
    if (!rc)
        rc = prom_counter_family(w, v, names, nroutes, "sluice_response_bytes_total",
                                 "Response bytes sent to clients", OFF(bytes_out));
    if (!rc)
        rc = prom_counter_family(w, v, names, nroutes, "sluice_upstream_errors_total",
                                 "Upstream connect failures and resets (502)",
                                 OFF(upstream_errors));
    if (!rc)
        rc = prom_counter_family(w, v, names, nroutes, "sluice_upstream_timeouts_total",
                                 "Upstream timeouts (504)", OFF(upstream_timeouts));
    if (!rc)
        rc = prom_counter_family(w, v, names, nroutes, "sluice_faulted_requests_total",
                                 "Requests a fault was injected into", OFF(faulted));
    if (!rc)
        rc = prom_histograms(w, v, names, nroutes, "sluice_request_duration_seconds",
                             "Time from request head to complete response", false);
    if (!rc)
        rc = prom_histograms(w, v, names, nroutes, "sluice_upstream_duration_seconds",
                             "Time from request sent to upstream response head", true);
    if (!rc)
        rc = prom_gauge(w, "sluice_in_flight_requests", "Requests being proxied now",
                        v->in_flight);
    if (!rc)
        rc = prom_counter(w, "sluice_connections_accepted_total", "Client connections accepted",
                          v->connections_accepted);
    if (!rc)
        rc = prom_counter(w, "sluice_upstream_connections_total",
                          "Upstream connections opened", v->upstream_connects);
    if (!rc)
        rc = prom_counter(w, "sluice_upstream_reused_total",
                          "Requests sent on a kept-alive upstream connection",
                          v->upstream_reused);
    return rc;
}
