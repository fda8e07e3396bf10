/* Unit tests for shared/http_cache.c: the RFC 9111 decision table (one row per rule), then
 * the serving, age, conditional, Vary, invalidation and parsing tables. Exact values. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "http_cache.h"

#define T0     1700000000 /* Tue, 14 Nov 2023 22:13:20 GMT */
#define DATE0  "Tue, 14 Nov 2023 22:13:20 GMT"
#define DATE5M "Tue, 14 Nov 2023 22:18:20 GMT" /* T0 + 300 */
#define DATE1H "Tue, 14 Nov 2023 23:13:20 GMT" /* T0 + 3600 */
#define DATE_P "Tue, 14 Nov 2023 21:56:40 GMT" /* T0 - 1000 */
#define MAXF   6

static int failures;

#define EXPECT_EQ(row, what, got, want)                                                            \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (g_ != w_) {                                                                            \
            print_error("row \"%s\": %s = %lld, want %lld\n", (row), (what), g_, w_);              \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static struct hc_fields fields_of(struct hc_field_list *l, const struct hc_field *v, size_t n)
{
    l->v = v;
    l->n = n;
    return (struct hc_fields){hc_field_list_get, l};
}

/* ---- policies -------------------------------------------------------------------------- */

enum { P_SIDECAR, P_EDGE, P_OFF, P_CAPPED };
static const struct hc_policy policies[] = {
    [P_SIDECAR] = {true, HC_ROLE_SIDECAR, HC_NO_CAP, HC_NO_CAP, 600},
    [P_EDGE] = {true, HC_ROLE_EDGE, HC_NO_CAP, HC_NO_CAP, 600},
    [P_OFF] = {false, HC_ROLE_SIDECAR, HC_NO_CAP, HC_NO_CAP, 600},
    [P_CAPPED] = {true, HC_ROLE_SIDECAR, 60, 10, 600},
};

/* ---- the RFC 9111 decision table --------------------------------------------------------- */

struct store_row {
    const char *rule;
    int policy;
    enum hc_method method;
    struct hc_field req[MAXF];
    unsigned status;
    struct hc_field resp[MAXF];
    /* expected */
    bool storable;
    enum hc_reason reason;
    uint32_t lifetime_s;
    bool no_cache, must_revalidate;
    uint32_t swr_s, sie_s;
    uint32_t initial_age_s;
};

#define GET   HC_METHOD_GET
#define OK    true, HC_R_OK
#define NO(r) false, HC_R_##r
#define D0                                                                                         \
    {                                                                                              \
        "Date", DATE0                                                                              \
    }
#define ET                                                                                         \
    {                                                                                              \
        "ETag", "\"v1\""                                                                           \
    }
#define AUTH                                                                                       \
    {                                                                                              \
        {                                                                                          \
            "Authorization", "Bearer x"                                                            \
        }                                                                                          \
    }

/* clang-format off */
static const struct store_row store_rows[] = {
    /* §4.2.1 freshness sources and their precedence */
    {"max-age gives the lifetime (§5.2.2.1)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}}, OK, 60, false, false, 0, 0, 0},
    {"s-maxage over max-age in a shared cache (§5.2.2.10)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60, s-maxage=120"}}, OK, 120, false, true, 0, 0, 0},
    {"max-age over Expires (§5.3)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Expires", DATE1H}, {"Cache-Control", "max-age=60"}}, OK, 60, false, false, 0, 0, 0},
    {"s-maxage over Expires (§5.3)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Expires", DATE1H}, {"Cache-Control", "s-maxage=30"}}, OK, 30, false, true, 0, 0, 0},
    {"Expires minus Date (§4.2.1)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Expires", DATE5M}}, OK, 300, false, false, 0, 0, 0},
    {"Expires without Date: minus the response time (RFC 9110 §6.6.1)", P_SIDECAR, GET, {{0}},
     200, {{"Expires", DATE5M}}, OK, 300, false, false, 0, 0, 0},
    {"invalid Expires \"0\" is already expired (§5.3)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Expires", "0"}, ET}, OK, 0, false, false, 0, 0, 0},
    {"Expires in the past: lifetime 0", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Expires", DATE_P}, ET}, OK, 0, false, false, 0, 0, 0},
    {"two Expires lines: stale (§4.2.1)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Expires", DATE5M}, {"Expires", DATE1H}, ET}, OK, 0, false, false, 0, 0, 0},
    {"no explicit freshness: heuristics not used, 0 (§4.2.2)", P_SIDECAR, GET, {{0}}, 200,
     {D0, ET, {"Last-Modified", DATE_P}}, OK, 0, false, false, 0, 0, 0},
    {"no freshness and no validator: not reusable (§3)", P_SIDECAR, GET, {{0}}, 200,
     {D0}, NO(NOT_REUSABLE), 0, false, false, 0, 0, 0},
    {"max-age=0 without validator: not reusable", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=0"}}, NO(NOT_REUSABLE), 0, false, false, 0, 0, 0},
    {"max-age=0 with ETag: stored, revalidated on use", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=0"}, ET}, OK, 0, false, false, 0, 0, 0},
    /* Cache-Control syntax (§5.2, §1.2.2, RFC 9110 §5.6) */
    {"duplicate max-age, different values: stale (§4.2.1)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60, max-age=120"}, ET}, OK, 0, false, false, 0, 0, 0},
    {"duplicate max-age, same value: kept", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60, max-age=60"}}, OK, 60, false, false, 0, 0, 0},
    {"max-age repeated on two lines: stale", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"Cache-Control", "max-age=10"}, ET}, OK, 0, false,
     false, 0, 0, 0},
    {"two Cache-Control lines combine as one list", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "no-cache"}, {"Cache-Control", "max-age=30"}, ET}, OK, 30, true,
     false, 0, 0, 0},
    {"quoted value accepted (§5.2)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=\"60\""}}, OK, 60, false, false, 0, 0, 0},
    {"directive names are case-insensitive", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "MAX-AGE=60, Must-Revalidate"}}, OK, 60, false, true, 0, 0, 0},
    {"delta-seconds overflow reads as 2^31 (§1.2.2)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=99999999999999999999"}}, OK, HC_DELTA_MAX, false, false, 0,
     0, 0},
    {"negative max-age invalid: stale", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=-1"}, ET}, OK, 0, false, false, 0, 0, 0},
    {"max-age with spaces around '=' invalid: stale", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age = 60"}, ET}, OK, 0, false, false, 0, 0, 0},
    {"unknown directives ignored (§5.2.3)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "community=\"UCI\", foo, max-age=60"}}, OK, 60, false, false, 0, 0,
     0},
    /* what may not be stored (§3) */
    {"response no-store (§5.2.2.5)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "no-store, max-age=60"}}, NO(NO_STORE), 0, false, false, 0, 0, 0},
    {"malformed no-store still counts", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60, no-store=1"}}, NO(NO_STORE), 0, false, false, 0, 0, 0},
    {"request no-store (§5.2.1.5)", P_SIDECAR, GET, {{"Cache-Control", "no-store"}}, 200,
     {D0, {"Cache-Control", "max-age=60"}}, NO(REQ_NO_STORE), 0, false, false, 0, 0, 0},
    {"private in a shared cache (§5.2.2.7)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "PRIVATE, max-age=60"}}, NO(PRIVATE), 0, false, false, 0, 0, 0},
    {"qualified private treated as unqualified", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "private=\"X-User\", max-age=60"}}, NO(PRIVATE), 0, false, false, 0,
     0, 0},
    {"Authorization without permission (§3.5)", P_SIDECAR, GET, AUTH, 200,
     {D0, {"Cache-Control", "max-age=60"}}, NO(AUTHORIZATION), 0, false, false, 0, 0, 0},
    {"Authorization with public (§3.5)", P_SIDECAR, GET, AUTH, 200,
     {D0, {"Cache-Control", "public, max-age=60"}}, OK, 60, false, false, 0, 0, 0},
    {"Authorization with s-maxage (§3.5)", P_SIDECAR, GET, AUTH, 200,
     {D0, {"Cache-Control", "s-maxage=60"}}, OK, 60, false, true, 0, 0, 0},
    {"Authorization with must-revalidate (§3.5)", P_SIDECAR, GET, AUTH, 200,
     {D0, {"Cache-Control", "must-revalidate, max-age=60"}}, OK, 60, false, true, 0, 0, 0},
    {"malformed public does not permit Authorization", P_SIDECAR, GET, AUTH, 200,
     {D0, {"Cache-Control", "public=yes, max-age=60"}}, NO(AUTHORIZATION), 0, false, false, 0, 0,
     0},
    {"Set-Cookie never stored (policy)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "public, max-age=60"}, {"Set-Cookie", "a=b"}}, NO(SET_COOKIE), 0,
     false, false, 0, 0, 0},
    {"Vary: * never stored (§4.1)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"Vary", "Accept, *"}}, NO(VARY_STAR), 0, false,
     false, 0, 0, 0},
    {"Vary with field names stored", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding"}}, OK, 60, false, false, 0,
     0, 0},
    {"Vary over HC_VARY_FIELDS_MAX names not stored", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"},
      {"Vary", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"}}, NO(VARY), 0, false, false, 0, 0, 0},
    /* statuses (§3, RFC 9110 §15.1) */
    {"404 cacheable by default", P_SIDECAR, GET, {{0}}, 404,
     {D0, ET}, OK, 0, false, false, 0, 0, 0},
    {"410 with max-age", P_SIDECAR, GET, {{0}}, 410,
     {D0, {"Cache-Control", "max-age=60"}}, OK, 60, false, false, 0, 0, 0},
    {"500 without explicit freshness not stored", P_SIDECAR, GET, {{0}}, 500,
     {D0, ET}, NO(STATUS), 0, false, false, 0, 0, 0},
    {"500 with max-age stored", P_SIDECAR, GET, {{0}}, 500,
     {D0, {"Cache-Control", "max-age=10"}}, OK, 10, false, false, 0, 0, 0},
    {"302 without explicit freshness not stored", P_SIDECAR, GET, {{0}}, 302,
     {D0, {"Location", "/x"}, ET}, NO(STATUS), 0, false, false, 0, 0, 0},
    {"302 with Expires stored", P_SIDECAR, GET, {{0}}, 302,
     {D0, {"Location", "/x"}, {"Expires", DATE5M}}, OK, 300, false, false, 0, 0, 0},
    {"public makes 500 storable (§3)", P_SIDECAR, GET, {{0}}, 500,
     {D0, {"Cache-Control", "public"}, ET}, OK, 0, false, false, 0, 0, 0},
    {"206 not stored (§3.3)", P_SIDECAR, GET, {{0}}, 206,
     {D0, {"Cache-Control", "max-age=60"}}, NO(PARTIAL), 0, false, false, 0, 0, 0},
    {"304 not stored (§4.3.4 freshens)", P_SIDECAR, GET, {{0}}, 304,
     {D0, {"Cache-Control", "max-age=60"}}, NO(STATUS), 0, false, false, 0, 0, 0},
    {"1xx not stored", P_SIDECAR, GET, {{0}}, 103,
     {D0, {"Cache-Control", "max-age=60"}}, NO(STATUS), 0, false, false, 0, 0, 0},
    {"must-understand overrides no-store for a known status (§5.2.2.3)", P_SIDECAR, GET, {{0}},
     200, {D0, {"Cache-Control", "must-understand, no-store, max-age=60"}}, OK, 60, false, false,
     0, 0, 0},
    {"must-understand with an unknown status", P_SIDECAR, GET, {{0}}, 299,
     {D0, {"Cache-Control", "must-understand, no-store, max-age=60"}}, NO(MUST_UNDERSTAND), 0,
     false, false, 0, 0, 0},
    /* methods (§2, §3) */
    {"HEAD responses not stored", P_SIDECAR, HC_METHOD_HEAD, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}}, NO(METHOD), 0, false, false, 0, 0, 0},
    {"POST responses not stored", P_SIDECAR, HC_METHOD_UNSAFE, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}}, NO(METHOD), 0, false, false, 0, 0, 0},
    /* revalidation and stale serving (§5.2.2.2, .4, .8, .10; RFC 5861) */
    {"no-cache: store, validate every use (§5.2.2.4)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "no-cache, max-age=60"}, ET}, OK, 60, true, false, 0, 0, 0},
    {"qualified no-cache treated as unqualified", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "no-cache=\"Set-Cookie\", max-age=60"}, ET}, OK, 60, true, false, 0,
     0, 0},
    {"no-cache without validator: not reusable", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "no-cache, max-age=60"}}, NO(NOT_REUSABLE), 60, true, false, 0, 0, 0},
    {"stale-while-revalidate and stale-if-error (RFC 5861)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60, stale-while-revalidate=30, stale-if-error=600"}}, OK, 60,
     false, false, 30, 600, 0},
    {"must-revalidate blocks SWR and SIE (§4.2.4)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60, must-revalidate, stale-while-revalidate=30, "
                            "stale-if-error=60"}}, OK, 60, false, true, 0, 0, 0},
    {"proxy-revalidate blocks SWR (§5.2.2.8)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60, proxy-revalidate, stale-while-revalidate=30"}}, OK, 60,
     false, true, 0, 0, 0},
    {"s-maxage implies proxy-revalidate (§5.2.2.10)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "s-maxage=60, stale-while-revalidate=30"}}, OK, 60, false, true, 0, 0,
     0},
    {"no-cache blocks stale-if-error", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "no-cache, max-age=60, stale-if-error=600"}, ET}, OK, 60, true, false,
     0, 0, 0},
    {"invalid stale-while-revalidate: no window", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60, stale-while-revalidate=soon"}}, OK, 60, false, false, 0,
     0, 0},
    /* Age (§4.2.3, §5.1) */
    {"Age counts toward the initial age", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"Age", "20"}}, OK, 60, false, false, 0, 0, 20},
    {"Age past the lifetime, no validator: not reusable", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"Age", "100"}}, NO(NOT_REUSABLE), 60, false, false, 0,
     0, 100},
    {"list-valued Age: first member (§5.1)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"Age", "5, 50"}}, OK, 60, false, false, 0, 0, 5},
    {"invalid Age ignored (§5.1)", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"Age", "-5"}}, OK, 60, false, false, 0, 0, 0},
    /* RFC 9213: CDN-Cache-Control at the edge only */
    {"edge: CDN-Cache-Control over Cache-Control (RFC 9213 §2.2)", P_EDGE, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"CDN-Cache-Control", "max-age=600"}}, OK, 600, false,
     false, 0, 0, 0},
    {"sidecar: CDN-Cache-Control ignored", P_SIDECAR, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"CDN-Cache-Control", "max-age=600"}}, OK, 60, false,
     false, 0, 0, 0},
    {"edge: CDN-Cache-Control also replaces Expires", P_EDGE, GET, {{0}}, 200,
     {D0, {"Expires", DATE1H}, {"CDN-Cache-Control", "none"}, ET}, OK, 0, false, false, 0, 0, 0},
    {"edge: Cache-Control no-store ignored under CDN-Cache-Control", P_EDGE, GET, {{0}}, 200,
     {D0, {"Cache-Control", "no-store"}, {"CDN-Cache-Control", "max-age=600"}}, OK, 600, false,
     false, 0, 0, 0},
    {"edge: CDN-Cache-Control no-store", P_EDGE, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"CDN-Cache-Control", "no-store"}}, NO(NO_STORE), 0,
     false, false, 0, 0, 0},
    {"edge: invalid dictionary falls back to Cache-Control (§2.1)", P_EDGE, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"CDN-Cache-Control", "Max-Age=600"}}, OK, 60, false,
     false, 0, 0, 0},
    {"edge: empty CDN-Cache-Control ignored", P_EDGE, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"CDN-Cache-Control", ""}}, OK, 60, false, false, 0,
     0, 0},
    {"edge: decimal max-age is invalid: stale", P_EDGE, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}, {"CDN-Cache-Control", "max-age=1.5"}, ET}, OK, 0,
     false, false, 0, 0, 0},
    {"edge: repeated key, last wins (RFC 8941)", P_EDGE, GET, {{0}}, 200,
     {D0, {"CDN-Cache-Control", "max-age=10, max-age=20"}}, OK, 20, false, false, 0, 0, 0},
    {"edge: SWR via CDN-Cache-Control despite s-maxage in Cache-Control", P_EDGE, GET, {{0}}, 200,
     {D0, {"Cache-Control", "s-maxage=10"},
      {"CDN-Cache-Control", "max-age=60, stale-while-revalidate=30"}}, OK, 60, false, false, 30,
     0, 0},
    /* route policy */
    {"route disabled", P_OFF, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=60"}}, NO(DISABLED), 0, false, false, 0, 0, 0},
    {"route TTL cap", P_CAPPED, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=3600"}}, OK, 60, false, false, 0, 0, 0},
    {"route stale cap", P_CAPPED, GET, {{0}}, 200,
     {D0, {"Cache-Control", "max-age=30, stale-while-revalidate=300, stale-if-error=5"}}, OK, 30,
     false, false, 10, 5, 0},
};
/* clang-format on */

static size_t count_fields(const struct hc_field *f)
{
    size_t n = 0;
    while (n < MAXF && f[n].name != NULL)
        n++;
    return n;
}

static void run_store_row(const struct store_row *r)
{
    struct hc_field_list lq, lr;
    struct hc_fields req = fields_of(&lq, r->req, count_fields(r->req));
    struct hc_fields resp = fields_of(&lr, r->resp, count_fields(r->resp));
    struct hc_request hr;
    struct hc_store st;
    const struct hc_policy *p = &policies[r->policy];
    hc_request_cacheable(p, r->method, &req, &hr);
    bool got = hc_response_storable(p, &hr, r->status, &resp, T0, T0, &st);
    EXPECT_EQ(r->rule, "storable", got, r->storable);
    EXPECT_EQ(r->rule, "out.storable", st.storable, r->storable);
    if (st.reason != r->reason)
        print_error("row \"%s\": reason %s, want %s\n", r->rule, hc_reason_name(st.reason),
                    hc_reason_name(r->reason));
    EXPECT_EQ(r->rule, "reason", st.reason, r->reason);
    if (!r->storable && r->reason != HC_R_NOT_REUSABLE)
        return; /* the entry is only partly filled */
    EXPECT_EQ(r->rule, "lifetime", st.entry.lifetime_s, r->lifetime_s);
    EXPECT_EQ(r->rule, "no_cache", st.entry.no_cache, r->no_cache);
    EXPECT_EQ(r->rule, "must_revalidate", st.entry.must_revalidate, r->must_revalidate);
    EXPECT_EQ(r->rule, "swr", st.entry.swr_s, r->swr_s);
    EXPECT_EQ(r->rule, "sie", st.entry.sie_s, r->sie_s);
    EXPECT_EQ(r->rule, "initial_age", st.entry.initial_age_s, r->initial_age_s);
}

static void test_store_table(void **state)
{
    (void)state;
    size_t n = sizeof(store_rows) / sizeof(store_rows[0]);
    failures = 0;
    for (size_t i = 0; i < n; i++)
        run_store_row(&store_rows[i]);
    print_message("  %zu storing rows\n", n);
    assert_true(n >= 40);
    assert_int_equal(failures, 0);
}

/* Facts around the table: entry bookkeeping, keep_s, targeted flag. */
static void test_store_entry_facts(void **state)
{
    (void)state;
    const struct hc_field resp_f[] = {{"Date", DATE_P},
                                      {"Cache-Control", "max-age=3600, stale-if-error=60"},
                                      {"ETag", "W/\"a\""},
                                      {"Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"}};
    struct hc_field_list l;
    struct hc_fields resp = fields_of(&l, resp_f, 4);
    struct hc_request req;
    struct hc_store st;
    hc_request_cacheable(&hc_policy_default, HC_METHOD_GET, NULL, &req);
    assert_true(hc_response_storable(&hc_policy_default, &req, 200, &resp, T0 - 2, T0, &st));
    assert_int_equal(st.entry.response_s, T0);
    assert_int_equal(st.entry.initial_age_s, 1000); /* apparent age: T0 - (T0 - 1000) */
    assert_true(st.explicit_freshness);
    assert_false(st.targeted);
    assert_true(st.entry.has_etag);
    assert_true(st.entry.has_last_modified);
    assert_int_equal(st.entry.last_modified_s, 784111777);
    /* usable 3600 + 60 - 1000, plus keep_stale_s 600 for the validator */
    assert_int_equal(st.keep_s, 3260);

    /* no Last-Modified: If-Modified-Since compares with Date (§4.3.2) */
    const struct hc_field resp2_f[] = {{"Date", DATE_P}, {"Cache-Control", "max-age=3600"}};
    resp = fields_of(&l, resp2_f, 2);
    assert_true(hc_response_storable(&hc_policy_default, &req, 200, &resp, T0, T0, &st));
    assert_false(st.entry.has_last_modified);
    assert_false(st.entry.has_etag);
    assert_int_equal(st.entry.last_modified_s, T0 - 1000);

    /* a zeroed policy disables caching */
    struct hc_policy off = {0};
    assert_false(hc_request_cacheable(&off, HC_METHOD_GET, NULL, &req));
    assert_int_equal(req.reason, HC_R_DISABLED);
}

/* ---- requests ---------------------------------------------------------------------------- */

struct req_row {
    const char *rule;
    enum hc_method method;
    struct hc_field req[MAXF];
    bool lookup, store;
    enum hc_reason reason;
    bool no_cache, authorization;
};

/* clang-format off */
static const struct req_row req_rows[] = {
    {"GET looked up and stored", GET, {{0}}, true, true, HC_R_OK, false, false},
    {"HEAD looked up, not stored", HC_METHOD_HEAD, {{0}}, true, false, HC_R_METHOD, false, false},
    {"POST bypasses", HC_METHOD_UNSAFE, {{0}}, false, false, HC_R_METHOD, false, false},
    {"OPTIONS bypasses", HC_METHOD_SAFE, {{0}}, false, false, HC_R_METHOD, false, false},
    {"request no-store: looked up, not stored (§5.2.1.5)", GET, {{"Cache-Control", "no-store"}},
     true, false, HC_R_REQ_NO_STORE, false, false},
    {"request no-cache (§5.2.1.4)", GET, {{"Cache-Control", "no-cache"}}, true, true, HC_R_OK,
     true, false},
    {"Pragma: no-cache without Cache-Control (§5.4)", GET, {{"Pragma", "foo, No-Cache"}}, true,
     true, HC_R_OK, true, false},
    {"Pragma ignored beside Cache-Control", GET,
     {{"Pragma", "no-cache"}, {"Cache-Control", "max-age=10"}}, true, true, HC_R_OK, false,
     false},
    {"Authorization noted (§3.5)", GET, {{"authorization", "Basic eDp5"}}, true, true, HC_R_OK,
     false, true},
};
/* clang-format on */

static void test_request_table(void **state)
{
    (void)state;
    failures = 0;
    for (size_t i = 0; i < sizeof(req_rows) / sizeof(req_rows[0]); i++) {
        const struct req_row *r = &req_rows[i];
        struct hc_field_list l;
        struct hc_fields f = fields_of(&l, r->req, count_fields(r->req));
        struct hc_request q;
        bool got = hc_request_cacheable(&hc_policy_default, r->method, &f, &q);
        EXPECT_EQ(r->rule, "returned", got, r->lookup);
        EXPECT_EQ(r->rule, "lookup", q.lookup, r->lookup);
        EXPECT_EQ(r->rule, "store", q.store, r->store);
        EXPECT_EQ(r->rule, "reason", q.reason, r->reason);
        EXPECT_EQ(r->rule, "no-cache", (q.cc.has & HC_CC_NO_CACHE) != 0, r->no_cache);
        EXPECT_EQ(r->rule, "authorization", q.authorization, r->authorization);
    }
    assert_int_equal(failures, 0);
}

/* ---- serving ----------------------------------------------------------------------------- */

struct serve_row {
    const char *rule;
    /* entry: lifetime, initial age, swr, sie, no_cache, must_revalidate, validator */
    uint32_t lifetime_s, initial_age_s, swr_s, sie_s;
    bool no_cache, must_revalidate, validator;
    const char *req_cc;  /* request Cache-Control, NULL for none */
    uint32_t resident_s; /* now - response_s */
    enum hc_serve want;
    bool want_sie; /* hc_stale_if_error on an upstream failure */
};

#define FRESH HC_SERVE_FRESH
#define STALE HC_SERVE_STALE
#define REVAL HC_SERVE_REVALIDATE
#define MISS  HC_SERVE_MISS
#define G504  HC_SERVE_GATEWAY_TIMEOUT

/* clang-format off */
static const struct serve_row serve_rows[] = {
    {"fresh: age < lifetime (§4.2)", 60, 0, 0, 0, false, false, true, NULL, 59, FRESH, true},
    {"stale at age == lifetime", 60, 0, 0, 0, false, false, true, NULL, 60, REVAL, false},
    {"initial age counts", 60, 30, 0, 0, false, false, true, NULL, 30, REVAL, false},
    {"stale without validator: refetch", 60, 0, 0, 0, false, false, false, NULL, 61, MISS, false},
    {"SWR: serve stale while revalidating (RFC 5861 §3)", 60, 0, 30, 0, false, false, true, NULL,
     89, STALE, false},
    {"SWR window over", 60, 0, 30, 0, false, false, true, NULL, 90, REVAL, false},
    {"SIE inside its window (RFC 5861 §4)", 60, 0, 0, 100, false, false, true, NULL, 159, REVAL,
     true},
    {"SIE window over", 60, 0, 0, 100, false, false, true, NULL, 160, REVAL, false},
    {"must-revalidate: no stale even with max-stale (§5.2.2.2)", 60, 0, 0, 0, false, true, true,
     "max-stale", 61, REVAL, false},
    {"must-revalidate entry still fresh", 60, 0, 0, 0, false, true, true, NULL, 10, FRESH, true},
    {"no-cache response: validate even when fresh (§5.2.2.4)", 60, 0, 0, 0, true, false, true,
     NULL, 10, REVAL, false},
    {"request no-cache (§5.2.1.4)", 60, 0, 0, 0, false, false, true, "no-cache", 10, REVAL, true},
    {"request no-cache, no validator", 60, 0, 0, 0, false, false, false, "no-cache", 10, MISS,
     true},
    {"request max-age satisfied (§5.2.1.1)", 60, 0, 0, 0, false, false, true, "max-age=10", 10,
     FRESH, true},
    {"request max-age exceeded", 60, 0, 0, 0, false, false, true, "max-age=10", 11, REVAL, true},
    {"request max-age=0 on age 0", 60, 0, 0, 0, false, false, true, "max-age=0", 0, FRESH, true},
    {"request max-age invalid counts as 0", 60, 0, 0, 0, false, false, true, "max-age=x", 1,
     REVAL, true},
    {"request max-age bounds SWR too", 60, 0, 30, 0, false, false, true, "max-age=30", 70, REVAL,
     false},
    {"request min-fresh satisfied (§5.2.1.3)", 60, 0, 0, 0, false, false, true, "min-fresh=20",
     40, FRESH, true},
    {"request min-fresh not satisfied", 60, 0, 0, 0, false, false, true, "min-fresh=20", 41,
     REVAL, true},
    {"request max-stale=N (§5.2.1.2)", 60, 0, 0, 0, false, false, true, "max-stale=10", 70,
     STALE, true},
    {"request max-stale=N exceeded", 60, 0, 0, 0, false, false, true, "max-stale=10", 71, REVAL,
     false},
    {"request bare max-stale: any staleness", 60, 0, 0, 0, false, false, false, "max-stale",
     100000, STALE, true},
    {"request stale-if-error (RFC 5861 §4)", 60, 0, 0, 0, false, false, true,
     "stale-if-error=50", 100, REVAL, true},
    {"only-if-cached, fresh (§5.2.1.7)", 60, 0, 0, 0, false, false, true, "only-if-cached", 10,
     FRESH, true},
    {"only-if-cached, stale: 504", 60, 0, 0, 0, false, false, true, "only-if-cached", 61, G504,
     false},
    {"just stored: age 0 is fresh", 60, 0, 0, 0, false, false, true, NULL,
     0, FRESH, true},
};
/* clang-format on */

static void test_serve_table(void **state)
{
    (void)state;
    failures = 0;
    for (size_t i = 0; i < sizeof(serve_rows) / sizeof(serve_rows[0]); i++) {
        const struct serve_row *r = &serve_rows[i];
        struct hc_entry e = {
            .response_s = T0,
            .initial_age_s = r->initial_age_s,
            .lifetime_s = r->lifetime_s,
            .swr_s = r->swr_s,
            .sie_s = r->sie_s,
            .no_cache = r->no_cache,
            .must_revalidate = r->must_revalidate,
            .has_etag = r->validator,
        };
        struct hc_field f[1] = {{"Cache-Control", r->req_cc}};
        struct hc_field_list l;
        struct hc_fields req = fields_of(&l, f, r->req_cc ? 1 : 0);
        struct hc_request q;
        assert_true(hc_request_cacheable(&hc_policy_default, HC_METHOD_GET, &req, &q));
        EXPECT_EQ(r->rule, "serve", hc_serve(&e, &q, T0 + (int64_t)r->resident_s), r->want);
        EXPECT_EQ(r->rule, "stale-if-error", hc_stale_if_error(&e, &q, T0 + (int64_t)r->resident_s),
                  r->want_sie);
    }
    assert_int_equal(failures, 0);
}

static void test_serve_edges(void **state)
{
    (void)state;
    struct hc_request q;
    struct hc_field f[1] = {{"Cache-Control", "only-if-cached"}};
    struct hc_field_list l;
    struct hc_fields req = fields_of(&l, f, 1);
    struct hc_entry e = {.response_s = T0, .lifetime_s = 60};

    /* nothing stored */
    assert_true(hc_request_cacheable(&hc_policy_default, HC_METHOD_GET, NULL, &q));
    assert_int_equal(hc_serve(NULL, &q, T0), HC_SERVE_MISS);
    assert_false(hc_stale_if_error(NULL, &q, T0));
    assert_true(hc_request_cacheable(&hc_policy_default, HC_METHOD_GET, &req, &q));
    assert_int_equal(hc_serve(NULL, &q, T0), HC_SERVE_GATEWAY_TIMEOUT);
    /* a request that may not be looked up never hits */
    assert_false(hc_request_cacheable(&hc_policy_default, HC_METHOD_UNSAFE, NULL, &q));
    assert_int_equal(hc_serve(&e, &q, T0), HC_SERVE_MISS);
    /* a clock behind the stored response time counts as no resident time */
    assert_int_equal(hc_current_age(&e, T0 - 100), 0);
    assert_true(hc_is_fresh(&e, T0 - 100));
    /* RFC 5861 §4's errors */
    assert_true(hc_is_error_status(500));
    assert_true(hc_is_error_status(502));
    assert_true(hc_is_error_status(503));
    assert_true(hc_is_error_status(504));
    assert_false(hc_is_error_status(501));
    assert_false(hc_is_error_status(404));
}

/* ---- age (§4.2.3) ------------------------------------------------------------------------ */

struct age_row {
    const char *rule;
    int64_t date_s;
    uint32_t age_value_s;
    int64_t request_s, response_s, now_s;
    uint32_t initial, current;
};

/* clang-format off */
static const struct age_row age_rows[] = {
    /* apparent_age = 1002-995 = 7; corrected_age_value = 10 + 2 = 12 → 12; +28 resident */
    {"Age and delay beat apparent age", 995, 10, 1000, 1002, 1030, 12, 40},
    /* apparent 20 > corrected 0 + 1 */
    {"apparent age beats Age", 980, 0, 999, 1000, 1000, 20, 20},
    {"origin clock ahead: apparent age 0", 1010, 0, 1000, 1002, 1002, 2, 2},
    {"no Date (date = response time): only the delay", 1002, 0, 1000, 1002, 1012, 2, 12},
    {"all at once", 1000, 0, 1000, 1000, 1000, 0, 0},
    {"Age saturates at 2^31 (§1.2.2)", 1000, HC_DELTA_MAX, 1000, 1010, 2000, HC_DELTA_MAX,
     HC_DELTA_MAX},
    {"response before request (clock step): no negative delay", 1000, 5, 1010, 1000, 1000, 5, 5},
};
/* clang-format on */

static void test_age_table(void **state)
{
    (void)state;
    failures = 0;
    for (size_t i = 0; i < sizeof(age_rows) / sizeof(age_rows[0]); i++) {
        const struct age_row *r = &age_rows[i];
        uint32_t initial = hc_initial_age(r->date_s, r->age_value_s, r->request_s, r->response_s);
        struct hc_entry e = {.response_s = r->response_s, .initial_age_s = initial};
        EXPECT_EQ(r->rule, "corrected_initial_age", initial, r->initial);
        EXPECT_EQ(r->rule, "current_age", hc_current_age(&e, r->now_s), r->current);
    }
    assert_int_equal(failures, 0);
}

static void test_age_value(void **state)
{
    (void)state;
    char buf[HC_AGE_VALUE_MAX];
    assert_int_equal(hc_age_value(0, buf), 1);
    assert_string_equal(buf, "0");
    assert_int_equal(hc_age_value(40, buf), 2);
    assert_string_equal(buf, "40");
    assert_int_equal(hc_age_value(HC_DELTA_MAX, buf), 10);
    assert_string_equal(buf, "2147483648");
    assert_int_equal(hc_age_value(UINT32_MAX, buf), 10);
    assert_string_equal(buf, "4294967295");
}

/* ---- conditional requests ---------------------------------------------------------------- */

struct inm_row {
    const char *rule;
    const char *inm;
    const char *etag; /* stored; NULL for none */
    bool match;
};

/* clang-format off */
static const struct inm_row inm_rows[] = {
    {"same strong tag", "\"a\"", "\"a\"", true},
    {"different tag", "\"b\"", "\"a\"", false},
    {"weak comparison: W/ on the request", "W/\"a\"", "\"a\"", true},
    {"weak comparison: W/ on the stored tag", "\"a\"", "W/\"a\"", true},
    {"a list with the tag", "\"x\", \"y\",W/\"a\"", "\"a\"", true},
    {"a list without it", "\"x\", \"y\"", "\"a\"", false},
    {"empty list members tolerated", " , \"a\" ,, ", "\"a\"", true},
    {"* matches any stored response", "*", "\"a\"", true},
    {"* matches without an ETag", " * ", NULL, true},
    {"* inside a list is malformed", "\"x\", *", "\"a\"", false},
    {"unquoted tag is malformed", "a", "\"a\"", false},
    {"unterminated tag is malformed", "\"a", "\"a\"", false},
    {"malformed list ignored even with a match", "\"a\" junk", "\"a\"", false},
    {"no stored ETag", "\"a\"", NULL, false},
    {"tags compare case-sensitively", "\"A\"", "\"a\"", false},
};
/* clang-format on */

static void test_if_none_match_table(void **state)
{
    (void)state;
    failures = 0;
    for (size_t i = 0; i < sizeof(inm_rows) / sizeof(inm_rows[0]); i++) {
        const struct inm_row *r = &inm_rows[i];
        EXPECT_EQ(r->rule, "match",
                  hc_if_none_match(r->inm, strlen(r->inm), r->etag, r->etag ? strlen(r->etag) : 0),
                  r->match);
    }
    assert_int_equal(failures, 0);
}

struct cond_row {
    const char *rule;
    enum hc_method method;
    struct hc_field req[MAXF];
    bool not_modified;
};

/* clang-format off */
static const struct cond_row cond_rows[] = {
    {"INM matches: 304", GET, {{"If-None-Match", "\"v1\""}}, true},
    {"INM on two lines combined", GET, {{"If-None-Match", "\"x\""}, {"If-None-Match", "\"v1\""}},
     true},
    {"INM wins over IMS (RFC 9110 §13.1.3)", GET,
     {{"If-None-Match", "\"x\""}, {"If-Modified-Since", DATE1H}}, false},
    {"HEAD too", HC_METHOD_HEAD, {{"If-None-Match", "W/\"v1\""}}, true},
    {"not for other methods", HC_METHOD_UNSAFE, {{"If-None-Match", "\"v1\""}}, false},
    {"IMS at Last-Modified: 304", GET, {{"If-Modified-Since", DATE_P}}, true},
    {"IMS after Last-Modified: 304", GET, {{"If-Modified-Since", DATE0}}, true},
    {"IMS before Last-Modified: full", GET,
     {{"If-Modified-Since", "Tue, 14 Nov 2023 21:56:39 GMT"}}, false},
    {"IMS invalid date ignored", GET, {{"If-Modified-Since", "yesterday"}}, false},
    {"IMS on two lines ignored", GET,
     {{"If-Modified-Since", DATE0}, {"If-Modified-Since", DATE0}}, false},
    {"IMS in rfc850 form", GET, {{"If-Modified-Since", "Tuesday, 14-Nov-23 22:13:20 GMT"}}, true},
    {"no conditional", GET, {{0}}, false},
};
/* clang-format on */

static void test_conditional_table(void **state)
{
    (void)state;
    struct hc_entry e = {.response_s = T0,
                         .lifetime_s = 60,
                         .has_etag = true,
                         .has_last_modified = true,
                         .last_modified_s = T0 - 1000};
    failures = 0;
    for (size_t i = 0; i < sizeof(cond_rows) / sizeof(cond_rows[0]); i++) {
        const struct cond_row *r = &cond_rows[i];
        struct hc_field_list l;
        struct hc_fields f = fields_of(&l, r->req, count_fields(r->req));
        EXPECT_EQ(r->rule, "304", hc_not_modified(&f, r->method, &e, "\"v1\"", 4, T0),
                  r->not_modified);
    }
    assert_int_equal(failures, 0);
}

static void test_freshen_and_etag(void **state)
{
    (void)state;
    struct hc_field_list l;
    struct hc_span v;
    const struct hc_field same[] = {{"ETag", "W/\"v1\""}};
    const struct hc_field other[] = {{"ETag", "\"v2\""}};
    const struct hc_field none[] = {{"Date", DATE0}};
    const struct hc_field bad[] = {{"ETag", "v1"}};
    const struct hc_field two[] = {{"ETag", "\"v1\""}, {"ETag", "\"v2\""}};
    struct hc_fields f = fields_of(&l, same, 1);
    assert_true(hc_freshen_matches("\"v1\"", 4, &f)); /* §4.3.4 */
    f = fields_of(&l, other, 1);
    assert_false(hc_freshen_matches("\"v1\"", 4, &f));
    f = fields_of(&l, none, 1);
    assert_true(hc_freshen_matches("\"v1\"", 4, &f));
    assert_true(hc_freshen_matches(NULL, 0, &f));
    f = fields_of(&l, bad, 1);
    assert_false(hc_freshen_matches("\"v1\"", 4, &f));
    assert_false(hc_etag(&f, &v));
    f = fields_of(&l, two, 2);
    assert_false(hc_etag(&f, &v)); /* two ETag lines: none usable */
    f = fields_of(&l, same, 1);
    assert_true(hc_etag(&f, &v));
    assert_int_equal(v.len, 6);
    assert_memory_equal(v.p, "W/\"v1\"", 6);
}

/* ---- Vary (§4.1) ------------------------------------------------------------------------- */

static void test_vary(void **state)
{
    (void)state;
    char out[HC_VARY_KEY_MAX];
    size_t len;
    struct hc_field_list l, lq;
    const struct hc_field resp_f[] = {{"Vary", "User-Agent, accept-encoding"},
                                      {"Vary", " Accept-Encoding ,Accept-Language"}};
    struct hc_fields resp = fields_of(&l, resp_f, 2);
    assert_int_equal(hc_vary_names(&resp, out, sizeof(out), &len), SL_OK);
    assert_string_equal(out, "accept-encoding,accept-language,user-agent");
    assert_int_equal(len, strlen(out));

    const struct hc_field req_f[] = {
        {"Accept-Encoding", " gzip "}, {"user-agent", "curl/8"}, {"ACCEPT-ENCODING", "br"}};
    struct hc_fields req = fields_of(&lq, req_f, 3);
    const char *vary = "User-Agent, Accept-Encoding, Accept-Language";
    assert_int_equal(hc_vary_key(vary, strlen(vary), &req, out, sizeof(out), &len), SL_OK);
    assert_string_equal(out, "accept-encoding=gzip, br\naccept-language\nuser-agent=curl/8\n");
    assert_true(hc_vary_matches("accept-encoding,accept-language,user-agent", 42, out, len, &req));

    /* absent ≠ empty */
    const struct hc_field empty_f[] = {{"Accept-Language", ""}};
    struct hc_fields req2 = fields_of(&lq, empty_f, 1);
    assert_int_equal(hc_vary_key("accept-language", 15, &req2, out, sizeof(out), &len), SL_OK);
    assert_string_equal(out, "accept-language=\n");
    assert_false(hc_vary_matches("accept-language", 15, "accept-language\n", 16, &req2));

    /* no Vary: empty key */
    assert_int_equal(hc_vary_key("", 0, &req, out, sizeof(out), &len), SL_OK);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
}

static void test_vary_errors(void **state)
{
    (void)state;
    char out[HC_VARY_KEY_MAX];
    size_t len;
    struct hc_field_list l, lq, lc;
    const struct hc_field req_f[] = {{"User-Agent", "curl/8"}};
    struct hc_fields req = fields_of(&lq, req_f, 1), resp;
    assert_int_equal(hc_vary_key("*", 1, &req, out, sizeof(out), &len), SL_EINVAL);
    assert_int_equal(hc_vary_key("a b", 3, &req, out, sizeof(out), &len), SL_EPARSE);
    assert_int_equal(hc_vary_key("user-agent", 10, &req, out, 8, &len), SL_ETOOBIG);
    assert_string_equal(out, "");
    const struct hc_field ctl_f[] = {{"X-A", "a\nb"}};
    struct hc_fields ctl = fields_of(&lc, ctl_f, 1); /* a value no parser would let through */
    assert_int_equal(hc_vary_key("x-a", 3, &ctl, out, sizeof(out), &len), SL_EPARSE);
    const struct hc_field star_f[] = {{"Vary", "*"}};
    resp = fields_of(&l, star_f, 1);
    assert_int_equal(hc_vary_names(&resp, out, sizeof(out), &len), SL_EINVAL);
    const char *many = "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,a,q"; /* 17 names, one repeated */
    assert_int_equal(hc_vary_key(many, strlen(many), &req, out, sizeof(out), &len), SL_ETOOBIG);
}

/* ---- invalidation (§4.4) ----------------------------------------------------------------- */

struct inval_row {
    const char *rule;
    enum hc_method method;
    unsigned status;
    bool invalidates;
};

/* clang-format off */
static const struct inval_row inval_rows[] = {
    {"POST 201 invalidates", HC_METHOD_UNSAFE, 201, true},
    {"DELETE 204 invalidates", HC_METHOD_UNSAFE, 204, true},
    {"PUT 303 invalidates (3xx is non-error)", HC_METHOD_UNSAFE, 303, true},
    {"POST 400 does not", HC_METHOD_UNSAFE, 400, false},
    {"POST 500 does not", HC_METHOD_UNSAFE, 500, false},
    {"POST 100 does not", HC_METHOD_UNSAFE, 100, false},
    {"GET 200 does not", HC_METHOD_GET, 200, false},
    {"HEAD 200 does not", HC_METHOD_HEAD, 200, false},
    {"OPTIONS 200 does not (safe)", HC_METHOD_SAFE, 200, false},
};
/* clang-format on */

static void test_invalidation_table(void **state)
{
    (void)state;
    failures = 0;
    for (size_t i = 0; i < sizeof(inval_rows) / sizeof(inval_rows[0]); i++) {
        const struct inval_row *r = &inval_rows[i];
        EXPECT_EQ(r->rule, "invalidates", hc_invalidates(r->method, r->status), r->invalidates);
    }
    assert_int_equal(failures, 0);
}

struct uri_row {
    const char *rule;
    const char *location, *content_location; /* NULL: absent */
    const char *scheme, *authority;
    size_t n;
    const char *want[2];
};

/* clang-format off */
static const struct uri_row uri_rows[] = {
    {"path-absolute Location", "/links/abc?x=1#frag", NULL, "http", "api.test", 1,
     {"/links/abc?x=1"}},
    {"absolute, same origin, default port", "HTTP://API.test:80/a", "/b", "http", "api.test", 2,
     {"/a", "/b"}},
    {"absolute, other host skipped", "http://evil.test/a", "/b", "http", "api.test", 1, {"/b"}},
    {"absolute, other scheme skipped", "https://api.test/a", NULL, "http", "api.test", 0, {0}},
    {"absolute, other port skipped", "http://api.test:8080/a", NULL, "http", "api.test", 0, {0}},
    {"same port given on both sides", "http://api.test:8080/a", NULL, "http", "api.test:8080", 1,
     {"/a"}},
    {"https default port", "https://api.test:443/s", NULL, "https", "api.test", 1, {"/s"}},
    {"network-path reference", "//api.test/n", NULL, "http", "api.test", 1, {"/n"}},
    {"no path: the root", "http://api.test", NULL, "http", "api.test", 1, {"/"}},
    {"userinfo skipped", "http://u@api.test/a", NULL, "http", "api.test", 0, {0}},
    {"relative reference skipped", "links/abc", NULL, "http", "api.test", 0, {0}},
};
/* clang-format on */

static void test_invalidation_uris_table(void **state)
{
    (void)state;
    failures = 0;
    for (size_t i = 0; i < sizeof(uri_rows) / sizeof(uri_rows[0]); i++) {
        const struct uri_row *r = &uri_rows[i];
        struct hc_field f[2];
        size_t nf = 0;
        if (r->location)
            f[nf++] = (struct hc_field){"Location", r->location};
        if (r->content_location)
            f[nf++] = (struct hc_field){"Content-Location", r->content_location};
        struct hc_field_list l;
        struct hc_fields resp = fields_of(&l, f, nf);
        struct hc_span out[2];
        size_t n = hc_invalidation_uris(&resp, r->scheme, r->authority, strlen(r->authority), out);
        EXPECT_EQ(r->rule, "count", n, r->n);
        for (size_t k = 0; k < n && k < r->n; k++) {
            bool same =
                out[k].len == strlen(r->want[k]) && memcmp(out[k].p, r->want[k], out[k].len) == 0;
            if (!same)
                print_error("row \"%s\": uri %zu = %.*s, want %s\n", r->rule, k, (int)out[k].len,
                            out[k].p, r->want[k]);
            EXPECT_EQ(r->rule, "uri", same, true);
        }
    }
    assert_int_equal(failures, 0);
}

/* ---- parsers ----------------------------------------------------------------------------- */

struct cc_row {
    const char *rule;
    const char *value;
    bool sf; /* parse as a Structured Fields Dictionary (CDN-Cache-Control) */
    int rc;  /* sf only */
    uint32_t has, invalid;
    uint32_t max_age_s, max_stale_s, swr_s;
};

#define MA  HC_CC_MAX_AGE
#define MS  HC_CC_MAX_STALE
#define SWR HC_CC_SWR

/* clang-format off */
static const struct cc_row cc_rows[] = {
    {"empty", "", false, 0, 0, 0, 0, 0, 0},
    {"flags", "no-store, no-cache, public, private, must-revalidate", false, 0,
     HC_CC_NO_STORE | HC_CC_NO_CACHE | HC_CC_PUBLIC | HC_CC_PRIVATE | HC_CC_MUST_REVALIDATE, 0, 0,
     0, 0},
    {"empty members and OWS", " ,\t, max-age=5 ,, ", false, 0, MA, 0, 5, 0, 0},
    {"bare max-stale is any staleness", "max-stale", false, 0, MS, 0, 0, HC_DELTA_MAX, 0},
    {"max-stale with a value", "max-stale=7", false, 0, MS, 0, 0, 7, 0},
    {"max-age without a value is invalid", "max-age", false, 0, MA, MA, 0, 0, 0},
    {"max-age= is invalid", "max-age=, public", false, 0, MA | HC_CC_PUBLIC, MA, 0, 0, 0},
    {"trailing garbage makes it invalid", "max-age=5x", false, 0, MA, MA, 0, 0, 0},
    {"quoted comma does not split", "no-cache=\"a, b\", max-age=9", false, 0,
     HC_CC_NO_CACHE | MA, 0, 9, 0, 0},
    {"unterminated quote", "max-age=\"9", false, 0, MA, MA, 0, 0, 0},
    {"repeat then conflict stays invalid", "max-age=1, max-age=2, max-age=1", false, 0, MA, MA, 0,
     0, 0},
    {"valueless public only", "public=1", false, 0, 0, 0, 0, 0, 0},
    {"sf: dictionary", "max-age=60, stale-while-revalidate=5, no-store", true, SL_OK,
     MA | SWR | HC_CC_NO_STORE, 0, 60, 0, 5},
    {"sf: parameters ignored", "max-age=60;x=1, private;y", true, SL_OK, MA | HC_CC_PRIVATE, 0,
     60, 0, 0},
    {"sf: string value for max-age is invalid", "max-age=\"60\"", true, SL_OK, MA, MA, 0, 0, 0},
    {"sf: negative is invalid", "max-age=-1", true, SL_OK, MA, MA, 0, 0, 0},
    {"sf: ?0 public is not public", "public=?0", true, SL_OK, 0, 0, 0, 0, 0},
    {"sf: qualified no-cache string", "no-cache=\"set-cookie\"", true, SL_OK, HC_CC_NO_CACHE, 0,
     0, 0, 0},
    {"sf: inner list tolerated", "foo=(a b \"c\"), max-age=3", true, SL_OK, MA, 0, 3, 0, 0},
    {"sf: uppercase key is an error", "Max-Age=3", true, SL_EPARSE, 0, 0, 0, 0, 0},
    {"sf: trailing comma is an error", "max-age=3,", true, SL_EPARSE, MA, 0, 3, 0, 0},
    {"sf: 16-digit integer is an error", "max-age=1234567890123456", true, SL_EPARSE, 0, 0, 0, 0,
     0},
    {"sf: 15-digit integer saturates", "max-age=999999999999999", true, SL_OK, MA, 0,
     HC_DELTA_MAX, 0, 0},
    {"sf: bad string escape is an error", "a=\"\\x\"", true, SL_EPARSE, 0, 0, 0, 0, 0},
};
/* clang-format on */

static void test_cc_table(void **state)
{
    (void)state;
    failures = 0;
    for (size_t i = 0; i < sizeof(cc_rows) / sizeof(cc_rows[0]); i++) {
        const struct cc_row *r = &cc_rows[i];
        struct hc_cc cc = {0};
        if (r->sf)
            EXPECT_EQ(r->rule, "rc", hc_cc_parse_sf(&cc, r->value, strlen(r->value)), r->rc);
        else
            hc_cc_parse(&cc, r->value, strlen(r->value));
        EXPECT_EQ(r->rule, "has", cc.has, r->has);
        EXPECT_EQ(r->rule, "invalid", cc.invalid, r->invalid);
        EXPECT_EQ(r->rule, "max_age", cc.max_age_s, r->max_age_s);
        EXPECT_EQ(r->rule, "max_stale", cc.max_stale_s, r->max_stale_s);
        EXPECT_EQ(r->rule, "swr", cc.swr_s, r->swr_s);
    }
    assert_int_equal(failures, 0);
}

struct date_row {
    const char *rule;
    const char *value;
    bool ok;
    int64_t want;
};

/* clang-format off */
static const struct date_row date_rows[] = {
    {"IMF-fixdate (RFC 9110 §5.6.7)", "Sun, 06 Nov 1994 08:49:37 GMT", true, 784111777},
    {"rfc850", "Sunday, 06-Nov-94 08:49:37 GMT", true, 784111777},
    {"asctime", "Sun Nov  6 08:49:37 1994", true, 784111777},
    {"asctime two-digit day", "Tue Nov 14 22:13:20 2023", true, T0},
    {"surrounding OWS", "  " DATE0 "\t", true, T0},
    {"leap day", "Tue, 29 Feb 2000 00:00:00 GMT", true, 951782400},
    {"before 1970", "Wed, 31 Dec 1969 23:59:59 GMT", true, -1},
    {"rfc850 year 50 years ahead is the past century", "Saturday, 01-Jan-77 00:00:00 GMT", true,
     220924800},
    {"rfc850 year within 50 years", "Tuesday, 01-Jan-30 00:00:00 GMT", true, 1893456000},
    {"not a date", "0", false, 0},
    {"no leap day in 2023", "Wed, 29 Feb 2023 00:00:00 GMT", false, 0},
    {"hour 24", "Tue, 14 Nov 2023 24:00:00 GMT", false, 0},
    {"lower-case month", "Tue, 14 nov 2023 22:13:20 GMT", false, 0},
    {"not GMT", "Tue, 14 Nov 2023 22:13:20 UTC", false, 0},
    {"trailing junk", DATE0 " x", false, 0},
};
/* clang-format on */

static void test_date_table(void **state)
{
    (void)state;
    failures = 0;
    for (size_t i = 0; i < sizeof(date_rows) / sizeof(date_rows[0]); i++) {
        const struct date_row *r = &date_rows[i];
        int64_t t = 0;
        bool ok = hc_http_date_parse(r->value, strlen(r->value), T0, &t);
        EXPECT_EQ(r->rule, "ok", ok, r->ok);
        if (r->ok)
            EXPECT_EQ(r->rule, "time", t, r->want);
    }
    assert_int_equal(failures, 0);
}

static void test_delta(void **state)
{
    (void)state;
    uint32_t v;
    assert_true(hc_delta_parse("0", 1, &v));
    assert_int_equal(v, 0);
    assert_true(hc_delta_parse("2147483647", 10, &v));
    assert_int_equal(v, 2147483647u);
    assert_true(hc_delta_parse("2147483648", 10, &v));
    assert_int_equal(v, HC_DELTA_MAX);
    assert_true(hc_delta_parse("4294967296", 10, &v));
    assert_int_equal(v, HC_DELTA_MAX);
    assert_false(hc_delta_parse("", 0, &v));
    assert_false(hc_delta_parse("+1", 2, &v));
    assert_false(hc_delta_parse("1.5", 3, &v));
}

/* ---- small tables ------------------------------------------------------------------------ */

static void test_methods_and_names(void **state)
{
    (void)state;
    assert_int_equal(hc_method_classify("GET", 3), HC_METHOD_GET);
    assert_int_equal(hc_method_classify("HEAD", 4), HC_METHOD_HEAD);
    assert_int_equal(hc_method_classify("OPTIONS", 7), HC_METHOD_SAFE);
    assert_int_equal(hc_method_classify("TRACE", 5), HC_METHOD_SAFE);
    assert_int_equal(hc_method_classify("get", 3), HC_METHOD_UNSAFE); /* case-sensitive */
    assert_int_equal(hc_method_classify("PURGE", 5), HC_METHOD_UNSAFE);
    assert_int_equal(hc_method_classify("GETX", 3), HC_METHOD_GET); /* length-bounded */

    assert_string_equal(hc_xcache_str(HC_X_HIT), "HIT");
    assert_string_equal(hc_xcache_str(HC_X_MISS), "MISS");
    assert_string_equal(hc_xcache_str(HC_X_STALE), "STALE");
    assert_string_equal(hc_xcache_str(HC_X_REVALIDATED), "REVALIDATED");
    assert_string_equal(hc_xcache_str(HC_X_BYPASS), "BYPASS");
    assert_string_equal(hc_xcache_str((enum hc_xcache)99), "?");

    assert_string_equal(hc_reason_str(HC_R_NO_STORE), "response no-store");
    assert_string_equal(hc_reason_name(HC_R_SET_COOKIE), "SET_COOKIE");
    assert_string_equal(hc_reason_name(HC_R_COUNT_), "?");

    assert_true(hc_status_cacheable_by_default(206));
    assert_true(hc_status_cacheable_by_default(501));
    assert_false(hc_status_cacheable_by_default(302));
    assert_false(hc_status_cacheable_by_default(500));
}

static void test_field_rules(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum hc_field_rule rule;
    } rows[] = {
        {"Connection", HC_FIELD_DROP},
        {"keep-alive", HC_FIELD_DROP},
        {"Transfer-Encoding", HC_FIELD_DROP},
        {"TE", HC_FIELD_DROP},
        {"Trailer", HC_FIELD_DROP},
        {"Upgrade", HC_FIELD_DROP},
        {"Proxy-Connection", HC_FIELD_DROP},
        {"Proxy-Authenticate", HC_FIELD_DROP},
        {"Age", HC_FIELD_GENERATED},
        {"X-Cache", HC_FIELD_GENERATED},
        {"Content-Length", HC_FIELD_KEEP_STORED},
        {"Cache-Control", HC_FIELD_KEEP},
        {"ETag", HC_FIELD_KEEP},
        {"Date", HC_FIELD_KEEP},
        {"Ag", HC_FIELD_KEEP},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(hc_field_rule(rows[i].name, strlen(rows[i].name)), rows[i].rule);
}

/* The whole flow of one key, as the proxy will drive it. */
static void test_flow(void **state)
{
    (void)state;
    struct hc_field_list lq, lr;
    const struct hc_field resp_f[] = {{"Date", DATE0},
                                      {"Cache-Control", "max-age=60, stale-while-revalidate=30"},
                                      {"ETag", "\"v1\""}};
    const struct hc_field cond_f[] = {{"If-None-Match", "\"v1\""}};
    struct hc_fields resp = fields_of(&lr, resp_f, 3);
    struct hc_fields req = fields_of(&lq, cond_f, 1);
    struct hc_request q;
    struct hc_store st;
    assert_true(hc_request_cacheable(&hc_policy_default, HC_METHOD_GET, &req, &q));
    assert_int_equal(hc_serve(NULL, &q, T0), HC_SERVE_MISS);
    assert_true(hc_response_storable(&hc_policy_default, &q, 200, &resp, T0, T0 + 1, &st));
    assert_int_equal(st.entry.initial_age_s, 1);
    assert_int_equal(hc_serve(&st.entry, &q, T0 + 30), HC_SERVE_FRESH);
    assert_true(hc_not_modified(&req, HC_METHOD_GET, &st.entry, "\"v1\"", 4, T0 + 30));
    char age[HC_AGE_VALUE_MAX];
    hc_age_value(hc_current_age(&st.entry, T0 + 30), age);
    assert_string_equal(age, "30");
    assert_int_equal(hc_serve(&st.entry, &q, T0 + 61), HC_SERVE_STALE);
    assert_int_equal(hc_serve(&st.entry, &q, T0 + 91), HC_SERVE_REVALIDATE);
    /* upstream 304 without a body: merge its fields, recompute from the revalidation */
    const struct hc_field r304_f[] = {{"Date", "Tue, 14 Nov 2023 22:14:51 GMT"},
                                      {"Cache-Control", "max-age=60, stale-while-revalidate=30"},
                                      {"ETag", "\"v1\""}};
    struct hc_fields r304 = fields_of(&lr, r304_f, 3);
    assert_true(hc_freshen_matches("\"v1\"", 4, &r304));
    assert_true(hc_response_storable(&hc_policy_default, &q, 200, &r304, T0 + 91, T0 + 91, &st));
    assert_int_equal(st.entry.response_s, T0 + 91);
    assert_int_equal(st.entry.initial_age_s, 0);
    assert_int_equal(hc_serve(&st.entry, &q, T0 + 100), HC_SERVE_FRESH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_table),
        cmocka_unit_test(test_store_entry_facts),
        cmocka_unit_test(test_request_table),
        cmocka_unit_test(test_serve_table),
        cmocka_unit_test(test_serve_edges),
        cmocka_unit_test(test_age_table),
        cmocka_unit_test(test_age_value),
        cmocka_unit_test(test_if_none_match_table),
        cmocka_unit_test(test_conditional_table),
        cmocka_unit_test(test_freshen_and_etag),
        cmocka_unit_test(test_vary),
        cmocka_unit_test(test_vary_errors),
        cmocka_unit_test(test_invalidation_table),
        cmocka_unit_test(test_invalidation_uris_table),
        cmocka_unit_test(test_cc_table),
        cmocka_unit_test(test_date_table),
        cmocka_unit_test(test_delta),
        cmocka_unit_test(test_methods_and_names),
        cmocka_unit_test(test_field_rules),
        cmocka_unit_test(test_flow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
