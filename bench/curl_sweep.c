/*
 * bench/curl_sweep.c — the peer of sluice-server's fleet poll in bench/controlplane.sh: a
 * bare libcurl multi loop (curl_multi_perform + curl_multi_poll, no event library) that
 * every INTERVAL_MS fetches http://127.0.0.1:PORT/v1/stats for every port of PORTS_FILE
 * (one a line), with keep-alive, and discards the bodies. Same per-transfer deadline as
 * the server's default (--agent-timeout-ms 800); one easy handle per agent, reused, so
 * each keeps its connection; the connection cache is sized for every agent
 * (CURLMOPT_MAXCONNECTS = N). libcurl's default limit is 4 x the easy handles added at
 * the moment a transfer ends: a loop that removes each handle as soon as it is done
 * closes the oldest idle connections during the last quarter of every sweep.
 *
 *   curl_sweep PORTS_FILE SECONDS [INTERVAL_MS]
 *
 * One unmeasured sweep first (connections opened), then sweeps at the start of every
 * interval for SECONDS. Prints one line of key=value: sweeps, transfers that failed,
 * bytes received, this process's CPU (getrusage, user + system) over the measured window
 * as a share of one core, and the median and maximum sweep time (first transfer added to
 * last one done).
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct agent {
    CURL *easy;
    char url[64];
};

static unsigned long long bytes_in;

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    bytes_in += size * n;
    return size * n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void sleep_until(double t)
{
    double d = t - now_s();
    if (d <= 0)
        return;
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    nanosleep(&ts, NULL);
}

/* One sweep: every agent's stats, all in flight at once. Returns the transfers that failed. */
static unsigned sweep(CURLM *multi, struct agent *agents, size_t n)
{
    unsigned failed = 0;
    int running = 0, left;
    for (size_t i = 0; i < n; i++)
        curl_multi_add_handle(multi, agents[i].easy);
    do {
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            long code = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            failed += m->data.result != CURLE_OK || code != 200;
            curl_multi_remove_handle(multi, m->easy_handle);
        }
        if (running)
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
    } while (running);
    return failed;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: curl_sweep PORTS_FILE SECONDS [INTERVAL_MS]\n");
        return 2;
    }
    double seconds = atof(argv[2]), interval = (argc > 3 ? atof(argv[3]) : 1000.0) / 1000.0;
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    size_t n = 0, cap = 1024;
    struct agent *agents = calloc(cap, sizeof(*agents));
    int port;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    while (agents && fscanf(f, "%d", &port) == 1) {
        if (n == cap && !(agents = realloc(agents, (cap *= 2) * sizeof(*agents))))
            break;
        struct agent *a = &agents[n++];
        snprintf(a->url, sizeof(a->url), "http://127.0.0.1:%d/v1/stats", port);
        a->easy = curl_easy_init();
        curl_easy_setopt(a->easy, CURLOPT_URL, a->url);
        curl_easy_setopt(a->easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(a->easy, CURLOPT_TIMEOUT_MS, 800L);
        curl_easy_setopt(a->easy, CURLOPT_CONNECTTIMEOUT_MS, 800L);
        curl_easy_setopt(a->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(a->easy, CURLOPT_USERAGENT, "curl_sweep");
    }
    fclose(f);
    if (!agents || !n) {
        fprintf(stderr, "curl_sweep: no ports in %s\n", argv[1]);
        return 1;
    }
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)n);

    unsigned warm_failed = sweep(multi, agents, n); /* connects; not measured */
    size_t max_sweeps = (size_t)(seconds / interval) + 2, k = 0;
    double *times = calloc(max_sweeps, sizeof(*times));
    unsigned failed = 0;
    unsigned long long bytes0 = bytes_in;
    double t0 = now_s() + 0.05, c0 = 0;
    sleep_until(t0);
    c0 = cpu_s();
    for (double next = t0; next < t0 + seconds - 1e-6 && k < max_sweeps; next += interval) {
        sleep_until(next);
        double s = now_s();
        failed += sweep(multi, agents, n);
        times[k++] = now_s() - s;
    }
    sleep_until(t0 + seconds);
    double wall = now_s() - t0, cpu = cpu_s() - c0;
    qsort(times, k, sizeof(*times), cmp_double);
    double median = k ? (k % 2 ? times[k / 2] : (times[k / 2 - 1] + times[k / 2]) / 2) : 0;
    printf("agents=%zu sweeps=%zu failed=%u warmup_failed=%u bytes=%llu cpu_pct=%.2f "
           "sweep_median_ms=%.1f sweep_max_ms=%.1f\n",
           n, k, failed, warm_failed, bytes_in - bytes0, 100.0 * cpu / wall, median * 1000,
           k ? times[k - 1] * 1000 : 0.0);
    for (size_t i = 0; i < n; i++)
        curl_easy_cleanup(agents[i].easy);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    free(times);
    free(agents);
    return 0;
}
