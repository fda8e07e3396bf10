/*
 * routes — which route a request path belongs to, for per-route metrics and spans.
 *
 * Two modes. Templates (--routes FILE, JSON {"routes":["/v1/links/{code}", ...]}): '/'-
 * separated literal segments and {name} captures of one segment; the most specific
 * template wins (at the first differing segment a literal beats a capture). Learned (no
 * file): the route is the first path segment ("/v1/..." for deeper paths, "/healthz"), added
 * on first sight. Either way at most ROUTES_MAX routes exist; index 0 is "other" (no
 * template matched, or the learned table is full), so a flood of distinct paths cannot
 * grow memory or metric cardinality.
 *
 * Threading: lookups are lock-free (entries are immutable once published with a release
 * store of the count); learning a new route takes a mutex.
 */
#ifndef AGENT_ROUTES_H
#define AGENT_ROUTES_H

#include <stddef.h>

#include "stats.h"

#define ROUTES_MAX STATS_ROUTES_MAX
#define ROUTE_NAME_MAX 96

struct route_table;

struct route_table *routes_new_learned(void);
/* NULL with a message naming the file, the line/column or the bad template. */
struct route_table *routes_load(const char *path, char err[256]);
void routes_free(struct route_table *t);

/* The route index of a path (the request target without the query). */
unsigned routes_match(struct route_table *t, const char *path, size_t len);
const char *routes_name(const struct route_table *t, unsigned idx);
/* Routes known now (including "other"). */
unsigned routes_count(const struct route_table *t);
/* All names, for rendering: out[i] for i < routes_count. */
void routes_names(const struct route_table *t, const char **out);

#endif
