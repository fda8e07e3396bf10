/*
 * http_cache — the HTTP semantics of the agent's shared response cache: which requests may be
 * answered from it, which responses may be stored and for how long, when a stored response
 * is fresh, stale-but-usable or must be revalidated, what to answer a client's conditional
 * request with, and what an unsafe request invalidates. RFC 9111 (HTTP Caching), RFC 5861
 * (stale-while-revalidate, stale-if-error), RFC 9213 (CDN-Cache-Control, gateway only), the
 * conditional requests of RFC 9110 §13.
 *
 * Pure: no I/O, no allocation, no clock. Time is passed in as Unix seconds (int64_t *_s);
 * durations are uint32_t seconds. The storage half (bytes, eviction, Redis) is elsewhere; the
 * proxy calls both. Data flow in the proxy:
 *
 *   request ──hc_request_cacheable()──► lookup? ──no──► forward, X-Cache: BYPASS
 *     │ yes: key = primary key + hc_vary_key(stored Vary)  (see "Cache key" below)
 *     ▼
 *   hc_serve(entry or NULL, req, now) ─► FRESH ─────► answer from cache (HIT), or a 304 when
 *     │                                                hc_not_modified() says so
 *     ├─► STALE ─────► answer from cache (STALE) and revalidate in the background
 *     ├─► REVALIDATE ► forward with the entry's validators; upstream 304 → freshen the entry
 *     │                and answer from it (REVALIDATED); a 200 → replace (MISS); an error →
 *     │                hc_stale_if_error() may allow the stale entry (STALE)
 *     ├─► MISS ──────► forward as is; then hc_response_storable() decides (MISS or BYPASS)
 *     └─► GATEWAY_TIMEOUT ► only-if-cached and nothing usable: answer 504 (§5.2.1.7)
 *
 * Inputs do not depend on the proxy's parser: header fields are read through struct
 * hc_fields, a lookup callback that returns the idx-th field line with a given name, so a
 * field sent on several lines (two Cache-Control lines) is seen whole. hc_field_list_get
 * adapts an array of literal (name, value) pairs (tests); the proxy adapts http1 spans:
 *
 *   static bool h1_get(const void *ctx, const char *name, size_t idx, const char **v,
 *                      size_t *len)
 *   {
 *       const struct h1_ctx *c = ctx;   // { const struct http1_header *f; unsigned n; buf }
 *       for (unsigned i = 0; i < c->n; i++)
 *           if (http1_span_equals(c->buf, c->f[i].name, name) && idx-- == 0) {
 *               *v = c->buf + c->f[i].value.off;
 *               *len = c->f[i].value.len;
 *               return true;
 *           }
 *       return false;
 *   }
 *
 * Decisions (RFC 9111 unless noted; every rule has a row in tests/unit/test_http_cache.c):
 *   Requests
 *   - Only GET and HEAD are looked up (§2, §4). HEAD is answered from a stored GET response
 *     (without the body, RFC 9110 §9.3.2); only responses to GET are stored.
 *   - Request no-store (§5.2.1.5): the response is not stored; a stored response may still
 *     answer it ("the no-store request directive does not apply to the already stored
 *     response"). Request no-cache (§5.2.1.4), and Pragma: no-cache when the request has no
 *     Cache-Control (HTTP/1.0 clients; RFC 9111 §5.4 deprecates Pragma, honouring it only
 *     costs a revalidation): validate before reuse. max-age, min-fresh, max-stale
 *     (§5.2.1.1-3) bound what a stored response may answer; an invalid max-age counts as 0,
 *     an invalid min-fresh or max-stale is ignored. only-if-cached (§5.2.1.7) → 504 when
 *     nothing usable is stored. stale-if-error as a request directive (RFC 5861 §4).
 *   Storing (§3): all of these must hold, checked in this order (the first failure is the
 *   reason reported):
 *   - the route's policy enables caching; the request was a GET (§3: method understood);
 *     the request had no no-store;
 *   - the status is final and not 304 (a 304 freshens, §4.3.4); 206 is not stored (§3.3:
 *     we do not implement ranges); must-understand (§5.2.2.3) with a status we do not
 *     implement is not stored, and with one we do, no-store is ignored (the SHOULD there);
 *   - no no-store (§5.2.2.5); no private (§5.2.2.7: we are a shared cache; the qualified
 *     form private="f" is treated as unqualified, as the note there allows);
 *   - a request with Authorization only when the response has public, s-maxage or
 *     must-revalidate (§3.5);
 *   - no Set-Cookie (our policy, stricter than §3: a cookie is usually per user);
 *   - Vary is not "*" (§4.1: never matches) and lists at most HC_VARY_FIELDS_MAX valid
 *     field names;
 *   - the status is cacheable by default (RFC 9110 §15.1: 200 203 204 300 301 308 404 405
 *     410 414 501; 206 too, but see above), or the response has explicit freshness
 *     (max-age, s-maxage, Expires) or public (§3);
 *   - the response is reusable at all (§3: storing others is allowed but "not usually
 *     useful"): keep_s > 0, i.e. it arrives still fresh or inside a stale-while-revalidate/
 *     stale-if-error window (no-cache counts as neither), or it has a validator (ETag or
 *     Last-Modified) and the policy keeps validated entries (keep_stale_s > 0).
 *   Freshness lifetime (§4.2.1), first that applies:
 *   - at the edge (HC_ROLE_EDGE) a valid, non-empty CDN-Cache-Control replaces
 *     Cache-Control AND Expires entirely (RFC 9213 §2.2); it is a Structured Fields
 *     Dictionary (RFC 8941): a parse error makes the whole field ignored (§2.1), a directive
 *     value of the wrong type (max-age=1.5, max-age="60") is invalid, a repeated key takes
 *     the last value (RFC 8941 §4.2.2). The sidecar role ignores CDN-Cache-Control;
 *   - s-maxage (we are a shared cache, §5.2.2.10), else max-age (§5.2.2.1), else Expires
 *     minus Date (§5.3; Date absent or invalid → the response time, RFC 9110 §6.6.1);
 *     Expires that is invalid ("0") or sent twice → already expired (§5.3, §4.2.1);
 *   - heuristic freshness (§4.2.2) is NOT used: without explicit freshness the lifetime is
 *     0, so such a response is stored only when it has a validator and is revalidated on
 *     every use. (Heuristics guess from Last-Modified; for an API a wrong guess serves
 *     stale data, and origins that want caching say so.)
 *   - then capped by the route's policy (ttl_cap_s).
 *   Cache-Control parsing (§5.2, RFC 9110 §5.6): a list of token [ "=" (token /
 *   quoted-string) ], names case-insensitive, empty members skipped, several field lines
 *   combined; unknown directives ignored (§5.2.3). Values: delta-seconds = 1*DIGIT, also
 *   accepted quoted ("60"), past 2^31 read as 2^31 (§1.2.2). A directive whose value is
 *   missing or malformed (max-age, max-age=-1, max-age=1x) is invalid, and so is one given
 *   twice with different values (§4.2.1: "considered stale"; the same value twice is fine).
 *   An invalid max-age or s-maxage means lifetime 0 (stale at once); an invalid
 *   stale-while-revalidate/stale-if-error means no window. Restrictive directives (no-store,
 *   no-cache, private, must-revalidate, proxy-revalidate) count even when malformed
 *   ("no-store=1"); public counts only in its proper, valueless form. no-cache="f" is treated
 *   as no-cache (§5.2.2.4 note).
 *   Serving stale (§4.2.4): never when the response has no-cache, must-revalidate,
 *   proxy-revalidate or s-maxage (§5.2.2.2, .8, .10: s-maxage implies proxy-revalidate for
 *   a shared cache, so "s-maxage=60, stale-while-revalidate=30" gets no SWR; an origin that
 *   wants both at the edge sends CDN-Cache-Control: max-age=60, stale-while-revalidate=30).
 *   Otherwise: stale-while-revalidate=N (RFC 5861 §3) while staleness < N, served with a
 *   background revalidation; stale-if-error=N (RFC 5861 §4; response or request directive)
 *   while staleness < N when upstream fails or answers 500/502/503/504; a request's
 *   max-stale[=N] while staleness <= N. Windows are capped by the policy (stale_cap_s).
 *   Age (§4.2.3): apparent_age = max(0, response_time - date_value); corrected_age_value =
 *   age_value + (response_time - request_time); corrected_initial_age = max(both);
 *   current_age = corrected_initial_age + (now - response_time). Fresh while current_age <
 *   lifetime (§4.2). Arithmetic saturates at 2^31 (§1.2.2). Age: first member of the first
 *   line; invalid → ignored (§5.1).
 *   Conditional requests from clients (§4.3.2, RFC 9110 §13.1.2-3, §13.2.2): evaluated only
 *   against a stored response that may answer the request. If-None-Match (weak comparison,
 *   "*" matches any stored response, several lines combined) wins; only without it
 *   If-Modified-Since, compared with the stored Last-Modified, else Date, else the time it
 *   was received (§4.3.2); a malformed field is ignored (answer in full).
 *   Invalidation (§4.4): an unsafe method (anything but GET, HEAD, OPTIONS, TRACE; unknown
 *   ones are unsafe) answered 2xx or 3xx invalidates the target URI, and Location and
 *   Content-Location when they name the same origin.
 *
 * Cache key (for the wiring): primary = lower-cased scheme and authority + request-target
 * as sent (origin-form "/p?q"); the method is not in it, since only GET responses are
 * stored and HEAD reuses them. Secondary = hc_vary_key() of the stored response's Vary
 * (hc_vary_names() normalises it at store time). One primary key may hold several
 * variants; invalidation removes all of them.
 *
 * Bounds: HC_VARY_FIELDS_MAX names in a Vary, each under 128 bytes (else → not stored,
 * SL_ETOOBIG from the Vary functions); a Vary key is as long as the caller's buffer allows
 * (SL_ETOOBIG past it → not stored); every number saturates at HC_DELTA_MAX. Ownership: nothing is retained between calls; out-spans point into the
 * caller's field values. Thread safety: no state at all.
 */
#ifndef SLUICE_HTTP_CACHE_H
#define SLUICE_HTTP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HC_DELTA_MAX       2147483648u /* 2^31: "infinity" for delta-seconds (§1.2.2) */
#define HC_VARY_FIELDS_MAX 16          /* names in one Vary; more → HC_R_VARY */
#define HC_VARY_KEY_MAX    2048        /* hc_vary_matches' key buffer; a good size for callers */
#define HC_AGE_VALUE_MAX   16          /* "2147483648" + NUL, with room to spare */

/* ---- field lookup ------------------------------------------------------------------------ */

/* The idx-th (0-based, message order) field line called `name` (case-insensitive): its value
 * in *value, *len bytes, not necessarily NUL-terminated, leading/trailing OWS allowed (this
 * module trims it). false when there is no such line. */
typedef bool (*hc_field_fn)(const void *ctx, const char *name, size_t idx, const char **value,
                            size_t *len);

struct hc_fields {
    hc_field_fn get; /* NULL = no fields at all */
    const void *ctx;
};

/* Literal field lines, for tests and hand-built messages. */
struct hc_field {
    const char *name; /* NUL-terminated; a NULL name ends the list early */
    const char *value;
};
struct hc_field_list {
    const struct hc_field *v;
    size_t n;
};
/* hc_field_fn over a struct hc_field_list (ctx). */
bool hc_field_list_get(const void *ctx, const char *name, size_t idx, const char **value,
                       size_t *len);

struct hc_span {
    const char *p;
    size_t len;
};

/* ---- small parsers ----------------------------------------------------------------------- */

/* delta-seconds (1*DIGIT), saturating at HC_DELTA_MAX. false when not 1*DIGIT. */
bool hc_delta_parse(const char *s, size_t len, uint32_t *out);
/* HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, and the obsolete rfc850 and asctime forms that a
 * recipient must accept; surrounding OWS allowed. A two-digit rfc850 year more than 50 years
 * after now_s's year is read as the past century's. false when invalid. */
bool hc_http_date_parse(const char *s, size_t len, int64_t now_s, int64_t *out);

/* ---- Cache-Control ----------------------------------------------------------------------- */

/* Directive bits for struct hc_cc.has / .invalid. */
enum hc_cc_bit {
    HC_CC_MAX_AGE = 1u << 0,           /* §5.2.1.1, §5.2.2.1 */
    HC_CC_S_MAXAGE = 1u << 1,          /* §5.2.2.10 */
    HC_CC_MAX_STALE = 1u << 2,         /* §5.2.1.2 */
    HC_CC_MIN_FRESH = 1u << 3,         /* §5.2.1.3 */
    HC_CC_SWR = 1u << 4,               /* stale-while-revalidate, RFC 5861 §3 */
    HC_CC_SIE = 1u << 5,               /* stale-if-error, RFC 5861 §4 */
    HC_CC_NO_STORE = 1u << 6,          /* §5.2.1.5, §5.2.2.5 */
    HC_CC_NO_CACHE = 1u << 7,          /* §5.2.1.4, §5.2.2.4 */
    HC_CC_PRIVATE = 1u << 8,           /* §5.2.2.7 */
    HC_CC_PUBLIC = 1u << 9,            /* §5.2.2.9 */
    HC_CC_MUST_REVALIDATE = 1u << 10,  /* §5.2.2.2 */
    HC_CC_PROXY_REVALIDATE = 1u << 11, /* §5.2.2.8 */
    HC_CC_MUST_UNDERSTAND = 1u << 12,  /* §5.2.2.3 */
    HC_CC_NO_TRANSFORM = 1u << 13,     /* §5.2.1.6, §5.2.2.6 (noted, nothing to do) */
    HC_CC_ONLY_IF_CACHED = 1u << 14,   /* §5.2.1.7 */
};

/* Parsed directives. Zero-initialise, then feed every field line. */
struct hc_cc {
    uint32_t has;     /* HC_CC_* seen */
    uint32_t invalid; /* HC_CC_* (valued ones) whose value is missing, malformed or conflicting */
    uint32_t max_age_s;
    uint32_t s_maxage_s;
    uint32_t max_stale_s; /* HC_DELTA_MAX for a bare max-stale (any staleness) */
    uint32_t min_fresh_s;
    uint32_t swr_s;
    uint32_t sie_s;
};

/* One Cache-Control field line (RFC 9111 §5.2 syntax), added to cc. Never fails: a malformed
 * member is skipped, or marks its directive as above. */
void hc_cc_parse(struct hc_cc *cc, const char *value, size_t len);
/* Every `name` line of fields into a zeroed cc. */
void hc_cc_from_fields(struct hc_cc *cc, const struct hc_fields *fields, const char *name);
/* One targeted field line (RFC 9213 §2.1: an RFC 8941 Dictionary), added to cc. SL_OK, or
 * SL_EPARSE when the line is not a valid Dictionary (the caller then ignores the whole
 * field; cc may have been partly filled). */
int hc_cc_parse_sf(struct hc_cc *cc, const char *value, size_t len);

/* ---- policy, requests, reasons ----------------------------------------------------------- */

enum hc_method {
    HC_METHOD_GET,
    HC_METHOD_HEAD,
    HC_METHOD_SAFE,   /* OPTIONS, TRACE: safe (RFC 9110 §9.2.1) but not cached */
    HC_METHOD_UNSAFE, /* everything else, unknown methods included (§4.4) */
};
/* Methods are case-sensitive (RFC 9110 §9.1): "get" is an unknown, unsafe method. */
enum hc_method hc_method_classify(const char *name, size_t len);

enum hc_role {
    HC_ROLE_SIDECAR, /* the agent in front of one service: a shared cache (Cache-Control) */
    HC_ROLE_EDGE,    /* the gateway at the fleet's edge: also CDN-Cache-Control (RFC 9213) */
};

#define HC_NO_CAP UINT32_MAX

/* Per route. A zero-initialised policy disables caching. */
struct hc_policy {
    bool enabled;
    enum hc_role role;
    uint32_t ttl_cap_s;    /* freshness lifetimes are at most this; HC_NO_CAP = none */
    uint32_t stale_cap_s;  /* SWR and SIE windows are at most this (0: never serve stale,
                            * except a client's max-stale); HC_NO_CAP = none */
    uint32_t keep_stale_s; /* how long past its last usable second an entry with a validator is
                            * kept for revalidation (struct hc_store.keep_s) */
};
/* enabled, sidecar, no caps, keep_stale_s 600 (validated entries outlive freshness by 10 min). */
extern const struct hc_policy hc_policy_default;

/* Why a request was not looked up or a response not stored: logs and X-Cache: BYPASS. */
#define HC_REASON_MAP(X)                                                                           \
    X(OK, "ok")                                                                                    \
    X(DISABLED, "caching disabled for the route")                                                  \
    X(METHOD, "method not cached")                                                                 \
    X(REQ_NO_STORE, "request no-store")                                                            \
    X(STATUS, "status not cacheable without explicit freshness")                                   \
    X(PARTIAL, "partial content not stored")                                                       \
    X(MUST_UNDERSTAND, "must-understand with a status not implemented")                            \
    X(NO_STORE, "response no-store")                                                               \
    X(PRIVATE, "response private")                                                                 \
    X(AUTHORIZATION, "authorized request without public, s-maxage or must-revalidate")             \
    X(SET_COOKIE, "response sets a cookie")                                                        \
    X(VARY_STAR, "Vary: *")                                                                        \
    X(VARY, "Vary malformed or too long")                                                          \
    X(NOT_REUSABLE, "stale on arrival without a validator")

enum hc_reason {
#define HC_REASON_ENUM(name, msg) HC_R_##name,
    HC_REASON_MAP(HC_REASON_ENUM)
#undef HC_REASON_ENUM
        HC_R_COUNT_
};
const char *hc_reason_str(enum hc_reason r);  /* "response no-store" */
const char *hc_reason_name(enum hc_reason r); /* "NO_STORE"; "?" out of range */

/* What the request allows. */
struct hc_request {
    enum hc_method method;
    bool lookup;           /* may be answered from the cache (else X-Cache: BYPASS) */
    bool store;            /* a response to it may be stored (subject to the response) */
    enum hc_reason reason; /* why not lookup (or, when lookup, why not store); OK otherwise */
    bool authorization;    /* Authorization present: §3.5 applies when storing */
    struct hc_cc cc;       /* request directives; Pragma: no-cache folded in (see top) */
};
/* Classifies the request; returns out->lookup. */
bool hc_request_cacheable(const struct hc_policy *policy, enum hc_method method,
                          const struct hc_fields *req, struct hc_request *out);

/* ---- storing ----------------------------------------------------------------------------- */

/* What the proxy records with a stored response: everything hc_serve needs. Plain data;
 * the storage may serialise it field by field. */
struct hc_entry {
    int64_t response_s;      /* §4.2.3 response_time (of the last validation) */
    uint32_t initial_age_s;  /* corrected_initial_age at response_s */
    uint32_t lifetime_s;     /* freshness lifetime, policy cap applied */
    uint32_t swr_s;          /* stale-while-revalidate window; 0 if none or not allowed */
    uint32_t sie_s;          /* stale-if-error window; 0 if none or not allowed */
    bool no_cache;           /* validate before every reuse (§5.2.2.4) */
    bool must_revalidate;    /* never serve stale: must-/proxy-revalidate, s-maxage */
    bool has_etag;           /* one valid ETag: revalidate with If-None-Match */
    bool has_last_modified;  /* one valid Last-Modified: If-Modified-Since */
    int64_t last_modified_s; /* Last-Modified, else Date, else response_s (§4.3.2) */
};

struct hc_store {
    bool storable;
    enum hc_reason reason;   /* HC_R_OK when storable */
    struct hc_entry entry;   /* filled as far as the checks got (complete when storable) */
    bool explicit_freshness; /* s-maxage, max-age or Expires applied (§4.2.1) */
    bool targeted;           /* CDN-Cache-Control was used (edge) */
    uint32_t keep_s;         /* storage TTL from response_s: usable window left
                              * (lifetime + max(swr, sie) - initial_age), plus
                              * policy.keep_stale_s when there is a validator */
};

/* Whether the response to req may be stored (§3) and its freshness facts. status is the
 * final status; request_s/response_s are when the request went upstream and when the
 * response head arrived (§4.2.3). Returns out->storable.
 * To freshen an entry after an upstream 304 (§4.3.4), merge the 304's fields into the
 * stored ones (hc_field_rule) and call this again with the stored status, the merged
 * fields and the revalidation's times: the entry is replaced, or removed when no longer
 * storable. */
bool hc_response_storable(const struct hc_policy *policy, const struct hc_request *req,
                          unsigned status, const struct hc_fields *resp, int64_t request_s,
                          int64_t response_s, struct hc_store *out);

/* RFC 9110 §15.1 "heuristically cacheable" statuses (206 included). */
bool hc_status_cacheable_by_default(unsigned status);

/* The response's one ETag, when exactly one line holds one valid entity-tag (RFC 9110
 * §8.8.3); span into the field value. */
bool hc_etag(const struct hc_fields *resp, struct hc_span *out);

/* ---- age and freshness (§4.2.3) ---------------------------------------------------------- */

/* corrected_initial_age. date_s: the Date value, or response_s when there is none (RFC 9110
 * §6.6.1); age_value_s: the Age value, 0 when none. */
uint32_t hc_initial_age(int64_t date_s, uint32_t age_value_s, int64_t request_s,
                        int64_t response_s);
/* current_age at now_s (a clock behind response_s counts as no resident time). */
uint32_t hc_current_age(const struct hc_entry *e, int64_t now_s);
bool hc_is_fresh(const struct hc_entry *e, int64_t now_s);
/* The Age field value for an answer from the cache: decimal, NUL-terminated; returns its
 * length. */
size_t hc_age_value(uint32_t age_s, char out[HC_AGE_VALUE_MAX]);

/* ---- serving ----------------------------------------------------------------------------- */

enum hc_serve {
    HC_SERVE_MISS,            /* nothing usable: forward unconditionally (entry may still be kept
                               * for hc_stale_if_error) */
    HC_SERVE_FRESH,           /* answer from the cache: X-Cache: HIT */
    HC_SERVE_STALE,           /* answer from the cache (X-Cache: STALE) and revalidate in the
                               * background, at most one revalidation per key at a time */
    HC_SERVE_REVALIDATE,      /* forward with the entry's validators (If-None-Match: its ETag;
                               * If-Modified-Since: its Last-Modified), replacing the client's */
    HC_SERVE_GATEWAY_TIMEOUT, /* only-if-cached and nothing usable: answer 504 */
};

/* What to do with a request (classified, lookup true) given the stored entry that matched
 * its key (NULL when none). Rules: see the top comment. */
enum hc_serve hc_serve(const struct hc_entry *e, const struct hc_request *req, int64_t now_s);
/* Upstream failed (connect error, timeout, or hc_is_error_status): may the entry answer
 * instead (X-Cache: STALE)? RFC 5861 §4, §4.2.4. */
bool hc_stale_if_error(const struct hc_entry *e, const struct hc_request *req, int64_t now_s);
/* 500, 502, 503, 504: the statuses RFC 5861 §4 calls errors. */
bool hc_is_error_status(unsigned status);

/* ---- conditional requests ---------------------------------------------------------------- */

/* One If-None-Match field value against the stored ETag (weak comparison, RFC 9110 §8.8.3.2,
 * §13.1.2): true when it lists a matching tag or is "*". false when it does not, or is
 * malformed. etag NULL/0: no stored ETag (only "*" matches). */
bool hc_if_none_match(const char *inm, size_t inm_len, const char *etag, size_t etag_len);
/* Whether a client's GET/HEAD answered from entry e (ETag etag, may be NULL) gets a 304
 * (RFC 9110 §13.2.2 steps 3-4, RFC 9111 §4.3.2). Only call it for an entry hc_serve
 * allowed to answer (FRESH, STALE, or just revalidated). */
bool hc_not_modified(const struct hc_fields *req, enum hc_method method, const struct hc_entry *e,
                     const char *etag, size_t etag_len, int64_t now_s);
/* After an upstream 304 to our revalidation: does it freshen this entry (§4.3.4)? Yes when it
 * carries no ETag, or one that matches stored_etag weakly; no when its ETag differs (the
 * entry is then outdated: remove it and refetch unconditionally). */
bool hc_freshen_matches(const char *stored_etag, size_t stored_len,
                        const struct hc_fields *resp304);

/* ---- Vary (§4.1) ------------------------------------------------------------------------- */

/* The response's Vary lines as a normalised value: names lower-cased, sorted, deduplicated,
 * joined by ","; "" when there is no Vary. SL_OK; SL_EINVAL for "*"; SL_EPARSE for a member
 * that is not a token; SL_ETOOBIG past HC_VARY_FIELDS_MAX names or cap bytes (out is always
 * NUL-terminated when cap > 0). */
int hc_vary_names(const struct hc_fields *resp, char *out, size_t cap, size_t *out_len);
/* The secondary key of req for a Vary value (raw or normalised): for each name in sorted
 * order, "name=value\n", value = the request's lines of that name OWS-trimmed and joined by
 * ", ", or "name\n" when the request has no such line (absent ≠ empty, §4.1). "" for an
 * empty Vary. Errors as hc_vary_names, and SL_EPARSE for a request value holding a control
 * character other than HTAB. */
int hc_vary_key(const char *vary, size_t vary_len, const struct hc_fields *req, char *out,
                size_t cap, size_t *out_len);
/* Whether req selects the stored variant (its key stored_key under Vary value vary). */
bool hc_vary_matches(const char *vary, size_t vary_len, const char *stored_key, size_t stored_len,
                     const struct hc_fields *req);

/* ---- invalidation (§4.4) ----------------------------------------------------------------- */

/* An unsafe method answered 2xx/3xx: invalidate the target URI (every variant). */
bool hc_invalidates(enum hc_method method, unsigned status);
/* Location and Content-Location values of the same origin as the request (scheme "http" or
 * "https", authority = the Host value), as origin-form paths ("/p?q") pointing into the
 * field values: a path-absolute reference as is, an absolute URI or "//authority/path" only
 * when its scheme (if any) and authority match (case-insensitive host, default port
 * implied). Relative references without a leading "/" are skipped (no base resolution).
 * Returns how many were written to out (0..2). */
size_t hc_invalidation_uris(const struct hc_fields *resp, const char *scheme, const char *authority,
                            size_t authority_len, struct hc_span out[2]);

/* ---- answering from the cache ------------------------------------------------------------ */

enum hc_xcache {
    HC_X_HIT,         /* FRESH */
    HC_X_MISS,        /* fetched upstream and stored (or replaced a stale entry) */
    HC_X_STALE,       /* STALE, or a stale entry answering an upstream error */
    HC_X_REVALIDATED, /* REVALIDATE and the upstream said 304 */
    HC_X_BYPASS,      /* not looked up, or the upstream response was not storable */
};
/* "HIT", "MISS", "STALE", "REVALIDATED", "BYPASS"; "?" out of range. */
const char *hc_xcache_str(enum hc_xcache x);

/* What to do with a header field when storing and answering from the cache. */
enum hc_field_rule {
    HC_FIELD_KEEP,        /* store, replay, and take the 304's value on a freshen */
    HC_FIELD_DROP,        /* hop-by-hop (RFC 9110 §7.6.1) or for the next hop only (Proxy-
                           * Authenticate, §11.7.1): never stored (§3.1); also drop every
                           * field the Connection header lists */
    HC_FIELD_GENERATED,   /* Age, X-Cache: not replayed; the cache writes its own */
    HC_FIELD_KEEP_STORED, /* Content-Length: a freshening 304 does not update it (§3.2) */
};
enum hc_field_rule hc_field_rule(const char *name, size_t len);

#endif
