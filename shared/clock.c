#include "clock.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

static atomic_bool clock_faked;
static _Atomic uint64_t fake_mono_ns;
static _Atomic uint64_t fake_wall_ms;

uint64_t clock_mono_ns(void)
{
    if (atomic_load_explicit(&clock_faked, memory_order_relaxed))
        return atomic_load(&fake_mono_ns);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t clock_mono_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

uint64_t clock_wall_ms(void)
{
    if (atomic_load_explicit(&clock_faked, memory_order_relaxed))
        return atomic_load(&fake_wall_ms);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t clock_wall_s(void)
{
    return (int64_t)(clock_wall_ms() / 1000u);
}

void clock_fake_set(uint64_t mono_ns, uint64_t wall_ms)
{
    atomic_store(&fake_mono_ns, mono_ns);
    atomic_store(&fake_wall_ms, wall_ms);
    atomic_store(&clock_faked, true);
}

void clock_fake_advance_ms(uint64_t ms)
{
    atomic_fetch_add(&fake_mono_ns, ms * 1000000u);
    atomic_fetch_add(&fake_wall_ms, ms);
}

void clock_fake_clear(void)
{
    atomic_store(&clock_faked, false);
}

/* Years 0000..9999 only, so both formats keep their fixed width: a wild timestamp (a
 * corrupt record, a forged token) prints as the nearest end of the range, never as
 * garbage from a failed gmtime_r. */
#define CLOCK_FORMAT_MIN_S (-62167219200LL) /* 0000-01-01T00:00:00Z */
#define CLOCK_FORMAT_MAX_S 253402300799LL   /* 9999-12-31T23:59:59Z */

static void clock_utc(int64_t wall_s, struct tm *tm)
{
    if (wall_s < CLOCK_FORMAT_MIN_S)
        wall_s = CLOCK_FORMAT_MIN_S;
    if (wall_s > CLOCK_FORMAT_MAX_S)
        wall_s = CLOCK_FORMAT_MAX_S;
    time_t s = (time_t)wall_s;
    gmtime_r(&s, tm);
}

/* The fields are in range after clock_utc; the unsigned modulos tell the compiler so
 * (-Wformat-truncation cannot know what gmtime_r returns). */
void clock_format_iso8601(uint64_t wall_ms, char out[32])
{
    if (wall_ms / 1000u > (uint64_t)CLOCK_FORMAT_MAX_S)
        wall_ms = (uint64_t)CLOCK_FORMAT_MAX_S * 1000u + 999u;
    struct tm tm;
    clock_utc((int64_t)(wall_ms / 1000u), &tm);
    snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
             (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned)(wall_ms % 1000u));
}

void clock_format_http(int64_t wall_s, char out[40])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    clock_utc(wall_s, &tm);
    snprintf(out, 40, "%s, %02u %s %04u %02u:%02u:%02u GMT", days[(unsigned)tm.tm_wday % 7u],
             (unsigned)tm.tm_mday % 100u, months[(unsigned)tm.tm_mon % 12u],
             (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)tm.tm_hour % 100u,
             (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
}
