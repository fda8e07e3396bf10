/*
 * respcache — the agent's in-memory HTTP response cache on the request path (issue 5,
 * first part): storage in shared/cache.c, RFC 9111 rules in shared/http_cache.c.
 *
 * With --cache-bytes > 0, a GET/HEAD whose request allows it is looked up (key: the
 * request target, then the Vary secondary key); a fresh entry answers at once with Age and
 * X-Cache: HIT (or 304 when the client's validator matches). Otherwise the request goes
 * upstream; a storable answer with a Content-Length body that fits --cache-max-entry-bytes
 * is captured while it is relayed and stored when complete (X-Cache: MISS); anything else
 * is X-Cache: BYPASS. An unsafe method answered 2xx/3xx drops every variant of its target
 * (§4.4). Not yet: serving stale (SWR/SIE), revalidation, miss coalescing, the Redis tier.
 * One cache per agent, shared by the workers (striped locks inside shared/cache.c).
 */
#ifndef AGENT_RESPCACHE_H
#define AGENT_RESPCACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "json.h"
#include "prom.h"

struct agent;
struct conn;
struct upconn;
struct iobuf;

int respcache_start(struct agent *a, char err[256]);
void respcache_stop(struct agent *a);
enum { RC_MISS, RC_ANSWERED, RC_WAITING };
/* Before forwarding: RC_ANSWERED (from the cache; c may be gone), RC_WAITING (another
 * request fetches this key: c is parked until proxy_cache_resume or FILL_WAIT_MS), or
 * RC_MISS (forward it). */
int respcache_lookup(struct conn *c);
/* A waiting request stops waiting (timeout, close). */
void respcache_unwait(struct conn *c);
#define RESPCACHE_WAIT_MS 3000
/* The final response head arrived: decide about storing; appends X-Cache to out. */
bool respcache_response_head(struct conn *c, struct upconn *u, const char *buf,
                             struct iobuf *out);
/* Body bytes relayed to the client (pass-through). */
void respcache_body(struct conn *c, const char *data, size_t n);
/* The response is complete: store it, or invalidate for an unsafe method. */
void respcache_complete(struct conn *c, struct upconn *u);
/* The upstream failed before answering: serve a stale entry if stale-if-error allows
 * (RFC 5861 §4). true when answered (c may be gone). */
bool respcache_stale_if_error(struct conn *c);
/* The upstream answered 500/502/503/504: would a stale entry answer instead? */
bool respcache_can_serve_stale(struct conn *c);
/* The request ended without completing (error, reset): drop the capture. */
void respcache_abandon(struct conn *c);
/* The request is over (next request, or the connection closes): all cache state goes. */
void respcache_done(struct conn *c);
/* The validators to send instead of the client's (If-None-Match / If-Modified-Since lines,
 * CRLF-terminated) when a stored entry is being revalidated (RFC 9111 §4.3.1). */
bool respcache_validators(const struct conn *c, const char **lines);
/* The upstream answered our revalidation with 304 (head in buf): freshen the entry and
 * answer from it into c->out (X-Cache: REVALIDATED). The answer's status, or 0 when the
 * entry is gone or the 304 is for another ETag (RFC 9111 §4.3.4). */
int respcache_revalidated(struct conn *c, struct upconn *u, const char *buf);
/* Drops every entry whose key starts with prefix; returns how many here, and in *shared how
 * many in the Redis tier (-1 when it could not be reached; 0 without one). */
size_t respcache_purge(struct agent *a, const char *prefix, size_t len, long long *shared);
json_t *respcache_stats_json(struct agent *a);
/* The --cache-rules in effect, for GET /v1/config. */
json_t *respcache_rules_json(const struct agent *a);
int respcache_prom(struct prom *w, struct agent *a);

#endif
