/* Fuzz target: the RFC 9111 parsers of shared/http_cache.c on arbitrary header values —
 * Cache-Control (list syntax), CDN-Cache-Control (Structured Fields), HTTP dates,
 * delta-seconds, If-None-Match against an ETag, and a whole storability decision with the
 * input as every response field. Crashes and sanitizer reports are the failures. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http_cache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    struct hc_cc cc;
    hc_cc_parse(&cc, s, size);
    hc_cc_parse_sf(&cc, s, size);
    int64_t t;
    uint32_t d;
    hc_http_date_parse(s, size, 1700000000, &t);
    hc_delta_parse(s, size, &d);
    hc_if_none_match(s, size, "\"abc\"", 5);
    hc_if_none_match("W/\"abc\", \"x\"", 12, s, size);

    /* The same text as every interesting response field of a GET answer. */
    const struct hc_field resp_fields[] = {
        {"Cache-Control", s}, {"Expires", s}, {"Date", s}, {"Age", s},
        {"ETag", s},          {"Vary", s},    {"CDN-Cache-Control", s},
    };
    const struct hc_field req_fields[] = {{"Cache-Control", s}, {"Accept", s}};
    struct hc_field_list rl = {resp_fields, sizeof(resp_fields) / sizeof(resp_fields[0])};
    struct hc_field_list ql = {req_fields, 2};
    struct hc_fields resp = {hc_field_list_get, &rl}, req = {hc_field_list_get, &ql};
    struct hc_policy policy = hc_policy_default;
    for (int edge = 0; edge < 2; edge++) {
        policy.role = edge ? HC_ROLE_EDGE : HC_ROLE_SIDECAR;
        struct hc_request hr;
        hc_request_cacheable(&policy, HC_METHOD_GET, &req, &hr);
        struct hc_store st;
        hc_response_storable(&policy, &hr, 200, &resp, 1700000000, 1700000001, &st);
        hc_serve(&st.entry, &hr, 1700000100);
        char vary[512];
        size_t vlen;
        if (hc_vary_names(&resp, vary, sizeof(vary), &vlen) == 0) {
            char key[1024];
            size_t klen;
            hc_vary_key(vary, vlen, &req, key, sizeof(key), &klen);
        }
    }
    free(s);
    return 0;
}
