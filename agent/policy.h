/*
 * policy — live rate-limit policies (DESIGN §4.2): parsing and validating the JSON
 * documents, matching a request, extracting its key. Pure: no I/O.
 *
 * A policy set is immutable once built and shared by reference: the control thread
 * builds a new set when Redis (or the admin API's local override) changes, and workers
 * swap their reference at their next request (policy_set_ref/unref). An invalid document
 * anywhere in a set rejects the whole set with a message naming the policy and the field,
 * and the previous good set stays in force.
 */
#ifndef AGENT_POLICY_H
#define AGENT_POLICY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "ratelimit.h"

#define POLICIES_MAX 32
#define POLICY_NAME_MAX 64
#define POLICY_PREFIX_MAX 128
#define POLICY_HEADER_MAX 64
#define POLICY_METHODS_MAX 8

enum policy_scope { POLICY_SCOPE_SIDECAR, POLICY_SCOPE_GATEWAY };
enum policy_key { POLICY_KEY_IP, POLICY_KEY_ROUTE, POLICY_KEY_HEADER, POLICY_KEY_GLOBAL };
enum policy_store { POLICY_STORE_LOCAL, POLICY_STORE_REDIS, POLICY_STORE_REDIS_LEASE };
enum policy_on_error { POLICY_ON_ERROR_OPEN, POLICY_ON_ERROR_CLOSED, POLICY_ON_ERROR_LOCAL };
enum policy_mode { POLICY_MODE_ENFORCE, POLICY_MODE_SHADOW };

struct policy {
    char name[POLICY_NAME_MAX];
    uint32_t id; /* stable per name (hash): keys of the local store */
    unsigned stats_slot; /* the agent's counters for this name (limiter.h), set on publish */
    enum policy_scope scope;
    char methods[POLICY_METHODS_MAX][16];
    unsigned nmethods; /* 0 = every method */
    char path_prefix[POLICY_PREFIX_MAX];
    enum policy_key key;
    char header[POLICY_HEADER_MAX]; /* key header:NAME */
    struct rl_params params;
    enum policy_store store;
    enum policy_on_error on_store_error;
    enum policy_mode mode;
};

struct policy_set {
    atomic_uint refs;
    uint64_t version;
    bool local_override; /* set through the admin API, not Redis */
    struct policy items[POLICIES_MAX];
    size_t n;
};

/* One policy document. SL_EINVAL with field errors named "<prefix>field" (e.g.
 * "links-write.limit"); the name itself is checked too. */
int policy_parse(const json_t *doc, struct policy *out, struct field_errors *fe,
                 const char *prefix);
/* A whole set from an array of documents (or {"policies":[...]}). New set with refs = 1,
 * or NULL with fe filled. Duplicate names are an error. */
struct policy_set *policy_set_parse(const json_t *docs, uint64_t version,
                                    struct field_errors *fe);
struct policy_set *policy_set_empty(uint64_t version);
void policy_set_ref(struct policy_set *s);
void policy_set_unref(struct policy_set *s);
const struct policy *policy_set_find(const struct policy_set *s, const char *name);

json_t *policy_to_json(const struct policy *p);
json_t *policy_set_to_json(const struct policy_set *s);

/* Does the policy apply to this request (scope, method, path prefix)? */
bool policy_matches(const struct policy *p, enum policy_scope scope, const char *method,
                    const char *path);
const char *policy_scope_name(enum policy_scope s);
const char *policy_store_name(enum policy_store s);

#endif
