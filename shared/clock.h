/*
 * clock — the time source every module asks, so that tests can drive time.
 *
 * Pure modules take time as an argument; shells (servers, loops) ask this module. A test
 * installs a fake with clock_fake_set(); the fake stays until clock_fake_clear().
 * Monotonic time is for durations and timeouts; wall time is for timestamps that leave
 * the process (logs, tokens, records in Redis).
 */
#ifndef SLUICE_CLOCK_H
#define SLUICE_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ns(void);
uint64_t clock_mono_ms(void);
/* Unix time. */
uint64_t clock_wall_ms(void);
int64_t clock_wall_s(void);

/* Fake time for tests: both clocks read the given values until cleared. */
void clock_fake_set(uint64_t mono_ns, uint64_t wall_ms);
void clock_fake_advance_ms(uint64_t ms);
void clock_fake_clear(void);

/* Both formats are fixed-width: instants outside years 0000..9999 print as the nearest
 * end of that range. */
/* "2026-11-29T17:26:12.123Z" (24 chars + NUL) from Unix milliseconds. */
void clock_format_iso8601(uint64_t wall_ms, char out[32]);
/* "Sun, 29 Nov 2026 17:26:12 GMT" (IMF-fixdate, RFC 9110 §5.6.7). */
void clock_format_http(int64_t wall_s, char out[40]);

#endif
