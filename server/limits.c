/*
 * limits — live rate-limit policies through the control plane (DESIGN §4.2, §4.3).
 *
 * Redis holds what the agents read and what the control plane adds:
 *   sluice:policies                   hash name → policy JSON (the agents' view)
 *   sluice:policies:version           the set's version (INCR per change), published on
 *                                     sluice:policies:changed
 *   sluice:policies:meta              hash name → that policy's own version (1, 2, ...)
 *   sluice:policies:history:{name}    list, newest first (50 kept): {version, set_version,
 *                                     at, who, policy (null when deleted)}
 * A write is one Lua script, so the If-Match check, the write, both versions, the history
 * and the publish cannot interleave with another writer: two writers with the same
 * If-Match → one 200, one 412. Policies are validated by the agents' own parser
 * (agent/policy.c), so the API refuses exactly what an agent would.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "fleet.h"
#include "http.h"
#include "policy.h"
#include "server.h"
#include "store_redis.h"

#define HISTORY_KEEP 50

/* KEYS: policies, meta, version, history. ARGV: name, policy JSON ("" = delete), expected
 * version ("" none, "0" must not exist), at, who (JSON string).
 * → {0, policy version, set version, before JSON or false} | {-1, current version} |
 *   {-2} (delete of a missing policy) */
static struct redis_script write_script = REDIS_SCRIPT_INIT(
    "local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')\n"
    "local exists = redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1\n"
    "if not exists then cur = 0 end\n"
    "if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= cur then return {-1, cur} end\n"
    "if ARGV[2] == '' and not exists then return {-2} end\n"
    "local before = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "local v = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') + 1\n"
    "if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end\n"
    "redis.call('HSET', KEYS[2], ARGV[1], v)\n"
    "local sv = redis.call('INCR', KEYS[3])\n"
    "local pol = ARGV[2] == '' and 'null' or ARGV[2]\n"
    "redis.call('LPUSH', KEYS[4], '{\"version\":' .. v .. ',\"set_version\":' .. sv ..\n"
    "  ',\"at\":\"' .. ARGV[4] .. '\",\"who\":' .. ARGV[5] .. ',\"policy\":' .. pol .. '}')\n"
    "redis.call('LTRIM', KEYS[4], 0, " "49" ")\n"
    "redis.call('PUBLISH', 'sluice:policies:changed', sv)\n"
    "return {0, v, sv, before or false}\n");

static json_t *problem_store(struct http_req *req, struct http_resp *resp)
{
    http_problem(resp, req, 503, "store-unavailable", "Service Unavailable",
                 "the policy store (Redis) cannot be reached", NULL);
    return NULL;
}

/* The version of one policy (0 when absent), -1 when Redis cannot be read. */
static long long policy_version(struct server *s, const char *name)
{
    redisReply *r = redis_pool_command(s->redis, "HGET sluice:policies:meta %s", name);
    long long v = !r || r->type == REDIS_REPLY_ERROR ? -1
                  : r->type == REDIS_REPLY_STRING    ? atoll(r->str)
                                                     : 0;
    freeReplyObject(r);
    return v;
}

static long long set_version(struct server *s)
{
    redisReply *r = redis_pool_command(s->redis, "GET sluice:policies:version");
    long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return v;
}

/* {name, version, policy, convergence}; NULL when it does not exist. */
static json_t *policy_doc(struct server *s, const char *name, const char *text, long long version,
                          long long sv)
{
    json_t *pol = json_loads(text, 0, NULL);
    if (!pol)
        return NULL;
    return json_pack("{s:s, s:I, s:o, s:o}", "name", name, "version", (json_int_t)version,
                     "policy", pol, "convergence", fleet_convergence_json(s->fleet, (uint64_t)sv));
}

void limits_routes_list(struct server *s, struct http_req *req, struct http_resp *resp)
{
    if (!auth_require(s, req, resp, ROLE_VIEWER, NULL))
        return;
    redisReply *all = redis_pool_command(s->redis, "HGETALL sluice:policies");
    redisReply *meta = redis_pool_command(s->redis, "HGETALL sluice:policies:meta");
    if (!all || all->type != REDIS_REPLY_ARRAY || !meta || meta->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(all);
        freeReplyObject(meta);
        problem_store(req, resp);
        return;
    }
    long long sv = set_version(s);
    json_t *list = json_array();
    for (size_t i = 0; i + 1 < all->elements; i += 2) {
        const char *name = all->element[i]->str;
        long long v = 0;
        for (size_t j = 0; j + 1 < meta->elements; j += 2)
            if (!strcmp(meta->element[j]->str, name))
                v = atoll(meta->element[j + 1]->str);
        json_t *d = policy_doc(s, name, all->element[i + 1]->str, v, sv);
        if (d)
            json_array_append_new(list, d);
    }
    freeReplyObject(all);
    freeReplyObject(meta);
    http_resp_json(resp, 200, json_pack("{s:I, s:o, s:o}", "set_version", (json_int_t)sv,
                                        "policies", list, "convergence",
                                        fleet_convergence_json(s->fleet, (uint64_t)sv)));
}

void limits_routes_get(struct server *s, struct http_req *req, struct http_resp *resp)
{
    if (!auth_require(s, req, resp, ROLE_VIEWER, NULL))
        return;
    const char *name = http_req_param(req, "name");
    redisReply *r = redis_pool_command(s->redis, "HGET sluice:policies %s", name);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        problem_store(req, resp);
        return;
    }
    json_t *d = r->type == REDIS_REPLY_STRING
                    ? policy_doc(s, name, r->str, policy_version(s, name), set_version(s))
                    : NULL;
    freeReplyObject(r);
    if (!d) {
        http_problem(resp, req, 404, "no-such-policy", "Not Found", "no policy has that name",
                     NULL);
        return;
    }
    http_resp_header(resp, "ETag", "\"%lld\"", (long long)json_integer_value(json_object_get(d, "version")));
    http_resp_json(resp, 200, d);
}

/* If-Match: "N" or N (or * = must exist); "" when absent. false: malformed (answered). */
static bool if_match(struct http_req *req, struct http_resp *resp, char out[24], bool *any)
{
    const char *h = http_req_header(req, "If-Match");
    out[0] = '\0';
    *any = false;
    if (!h)
        return true;
    if (!strcmp(h, "*")) {
        *any = true;
        return true;
    }
    const char *p = h + (h[0] == '"');
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p || v < 0 || (h[0] == '"' ? strcmp(end, "\"") : *end != '\0')) {
        http_problem(resp, req, 400, "bad-if-match", "Bad Request",
                     "If-Match: expected the policy's version, e.g. \"3\"", NULL);
        return false;
    }
    snprintf(out, 24, "%lld", v);
    return true;
}

/* Runs the write script: 0 with the versions, 412 / 404 / 503 answered otherwise. */
static int write_policy(struct server *s, struct http_req *req, struct http_resp *resp,
                        const struct caller *who, const char *name, const char *text,
                        const char *expected, long long *v, long long *sv, json_t **before)
{
    char at[32], hist[160], whoj[SERVER_KEY_MAX + 4];
    clock_format_iso8601(clock_wall_ms(), at);
    snprintf(hist, sizeof(hist), "sluice:policies:history:{%s}", name);
    json_t *w = json_string(who->who);
    char *wtext = json_dumps(w, JSON_ENCODE_ANY);
    snprintf(whoj, sizeof(whoj), "%s", wtext ? wtext : "\"?\"");
    free(wtext);
    json_decref(w);
    const char *args[] = {"sluice:policies", "sluice:policies:meta", "sluice:policies:version",
                          hist, name, text, expected, at, whoj};
    redisReply *r = redis_script_eval_pool(s->redis, &write_script, 4, 5, args, NULL);
    *before = NULL;
    int rc = 503;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        problem_store(req, resp);
    } else if (r->element[0]->integer == -1) {
        char detail[160];
        snprintf(detail, sizeof(detail), "If-Match names version %s; the policy is at version %lld",
                 expected, (long long)r->element[1]->integer);
        http_problem(resp, req, 412, "version-conflict", "Precondition Failed", detail, NULL);
        rc = 412;
    } else if (r->element[0]->integer == -2) {
        http_problem(resp, req, 404, "no-such-policy", "Not Found", "no policy has that name",
                     NULL);
        rc = 404;
    } else {
        *v = r->element[1]->integer;
        *sv = r->element[2]->integer;
        if (r->element[3]->type == REDIS_REPLY_STRING)
            *before = json_loads(r->element[3]->str, 0, NULL);
        rc = 0;
    }
    freeReplyObject(r);
    return rc;
}

static void answer_written(struct server *s, struct http_resp *resp, int status, const char *name,
                           long long v, long long sv, json_t *policy)
{
    http_resp_header(resp, "ETag", "\"%lld\"", v);
    http_resp_json(resp, status,
                   json_pack("{s:s, s:I, s:I, s:o, s:o}", "name", name, "version", (json_int_t)v,
                             "set_version", (json_int_t)sv, "policy",
                             policy ? policy : json_null(), "convergence",
                             fleet_convergence_json(s->fleet, (uint64_t)sv)));
}

/* Validate doc as the agents would; the problem is answered when it is not a policy. */
static char *validated(struct http_req *req, struct http_resp *resp, json_t *doc, const char *name)
{
    struct field_errors fe;
    field_errors_init(&fe);
    struct policy p;
    json_t *body_name = json_object_get(doc, "name");
    if (!body_name)
        json_object_set_new(doc, "name", json_string(name));
    else if (!json_is_string(body_name) || strcmp(json_string_value(body_name), name) != 0)
        field_errors_add(&fe, "name", "must be the name in the path ('%s')", name);
    if (!field_errors_any(&fe))
        policy_parse(doc, &p, &fe, "");
    char *text = NULL;
    if (field_errors_any(&fe)) {
        http_problem(resp, req, 422, "validation-failed", "Validation failed",
                     "the policy has invalid fields", json_pack("{s:O}", "errors", fe.list));
    } else {
        text = json_dump_compact(doc);
    }
    field_errors_release(&fe);
    return text;
}

void limits_routes_put(struct server *s, struct http_req *req, struct http_resp *resp)
{
    struct caller who;
    if (!auth_require(s, req, resp, ROLE_OPERATOR, &who))
        return;
    const char *name = http_req_param(req, "name");
    char expected[24];
    bool any;
    if (!if_match(req, resp, expected, &any))
        return;
    json_error_t jerr;
    json_t *doc = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!json_is_object(doc)) {
        json_decref(doc);
        http_problem(resp, req, 400, "bad-json", "Bad Request",
                     "the body must be one JSON object (a policy)", NULL);
        return;
    }
    char *text = validated(req, resp, doc, name);
    if (text && any) { /* If-Match: * — it must exist */
        long long cur = policy_version(s, name);
        if (cur <= 0) {
            http_problem(resp, req, 412, "version-conflict", "Precondition Failed",
                         "If-Match: * but the policy does not exist", NULL);
            free(text);
            text = NULL;
        } else {
            snprintf(expected, sizeof(expected), "%lld", cur);
        }
    }
    if (text && !expected[0] && http_req_header(req, "If-None-Match")) /* create only */
        snprintf(expected, sizeof(expected), "0");
    long long v, sv;
    json_t *before;
    if (text && write_policy(s, req, resp, &who, name, text, expected, &v, &sv, &before) == 0) {
        audit_record(s, &who, "limits.put", name, before, json_incref(doc));
        answer_written(s, resp, v == 1 ? 201 : 200, name, v, sv, json_incref(doc));
    }
    free(text);
    json_decref(doc);
}

void limits_routes_delete(struct server *s, struct http_req *req, struct http_resp *resp)
{
    struct caller who;
    if (!auth_require(s, req, resp, ROLE_OPERATOR, &who))
        return;
    const char *name = http_req_param(req, "name");
    char expected[24];
    bool any;
    if (!if_match(req, resp, expected, &any))
        return;
    long long v, sv;
    json_t *before;
    if (write_policy(s, req, resp, &who, name, "", expected, &v, &sv, &before) == 0) {
        audit_record(s, &who, "limits.delete", name, before, NULL);
        answer_written(s, resp, 200, name, v, sv, NULL);
    }
}

static json_t *history(struct server *s, const char *name)
{
    redisReply *r = redis_pool_command(s->redis, "LRANGE sluice:policies:history:{%s} 0 %d",
                                       name, HISTORY_KEEP - 1);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return NULL;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < r->elements; i++) {
        json_t *h = json_loads(r->element[i]->str, 0, NULL);
        if (h)
            json_array_append_new(list, h);
    }
    freeReplyObject(r);
    return list;
}

void limits_routes_history(struct server *s, struct http_req *req, struct http_resp *resp)
{
    if (!auth_require(s, req, resp, ROLE_VIEWER, NULL))
        return;
    const char *name = http_req_param(req, "name");
    json_t *h = history(s, name);
    if (!h) {
        problem_store(req, resp);
        return;
    }
    http_resp_json(resp, 200, json_pack("{s:s, s:o}", "name", name, "history", h));
}

/* POST /v1/limits/{name}/rollback {"version": N}: that version's policy becomes the newest
 * version (default: the one before the current). */
void limits_routes_rollback(struct server *s, struct http_req *req, struct http_resp *resp)
{
    struct caller who;
    if (!auth_require(s, req, resp, ROLE_OPERATOR, &who))
        return;
    const char *name = http_req_param(req, "name");
    json_t *body = req->body_len ? json_loadb(req->body, req->body_len, 0, NULL) : json_object();
    json_t *hist = history(s, name);
    json_t *want = json_object_get(body, "version");
    if (!json_is_object(body) || (want && !json_is_integer(want))) {
        http_problem(resp, req, 422, "validation-failed", "Validation failed",
                     "the body is {\"version\": N} (optional)",
                     json_pack("{s:[{s:s, s:s}]}", "errors", "field", "version", "message",
                               "must be an integer"));
        goto out;
    }
    if (!hist) {
        problem_store(req, resp);
        goto out;
    }
    json_int_t cur = json_integer_value(json_object_get(json_array_get(hist, 0), "version"));
    json_int_t target = want ? json_integer_value(want) : cur - 1;
    json_t *pol = NULL;
    size_t i;
    json_t *h;
    json_array_foreach(hist, i, h) {
        if (json_integer_value(json_object_get(h, "version")) == target)
            pol = json_object_get(h, "policy");
    }
    if (!json_is_object(pol)) {
        char detail[128];
        snprintf(detail, sizeof(detail), "no stored version %lld of this policy to roll back to",
                 (long long)target);
        http_problem(resp, req, 404, "no-such-version", "Not Found", detail, NULL);
        goto out;
    }
    char *text = json_dump_compact(pol);
    char expected[24];
    snprintf(expected, sizeof(expected), "%lld", (long long)cur);
    long long v, sv;
    json_t *before;
    if (text && write_policy(s, req, resp, &who, name, text, expected, &v, &sv, &before) == 0) {
        json_t *after = json_deep_copy(pol);
        json_object_set_new(after, "rolled_back_to", json_integer(target));
        audit_record(s, &who, "limits.rollback", name, before, after);
        answer_written(s, resp, 200, name, v, sv, json_deep_copy(pol));
    }
    free(text);
out:
    json_decref(hist);
    json_decref(body);
}
