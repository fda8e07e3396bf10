#include "webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clock.h"
#include "crypto.h"
#include "encode.h"
#include "err.h"
#include "link.h"
#include "log.h"
#include "queue.h"
#include "shortener.h"
#include "store_redis.h"
#include "webhook.h"

#define DELIVERIES_SHOWN 100
#define URL_MAX 2048

static const char *const event_types[] = {"link.created", "link.deleted", "link.clicked"};
#define EVENT_TYPES 3

static void random_id(const char *prefix, char *out, size_t cap)
{
    uint8_t raw[8];
    char hex[17];
    crypto_random_bytes(raw, sizeof(raw));
    hex_encode(raw, sizeof(raw), hex);
    snprintf(out, cap, "%s%s", prefix, hex);
}

/* ---- events -------------------------------------------------------------------------------- */

bool events_click_milestone(long long clicks)
{
    while (clicks >= 10 && clicks % 10 == 0)
        clicks /= 10;
    return clicks == 1;
}

void events_publish(struct shortener *s, const char *type, const char *owner, json_t *data)
{
    char id[32], at[32];
    random_id("evt_", id, sizeof(id));
    clock_format_iso8601(clock_wall_ms(), at);
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", id, "type", type, "at", at, "owner",
                          owner, "data", data ? data : json_object());
    char *text = e ? json_dump_compact(e) : NULL;
    json_decref(e);
    redisReply *r = text ? redis_pool_command(s->primary, "PUBLISH %s %s", EVENTS_CHANNEL, text) : NULL;
    if (!r || r->type == REDIS_REPLY_ERROR) /* pub/sub is at-most-once: the lesson */
        log_event(LOG_WARN, NULL, NULL, "event not published", "type", type, NULL);
    freeReplyObject(r);
    free(text);
}

/* ---- subscriptions --------------------------------------------------------------------------- */

static void store_down(const struct http_req *req, struct http_resp *resp)
{
    http_problem(resp, req, 503, "store-unavailable", "Service unavailable",
                 "the data store is not reachable; retry shortly", NULL);
    http_resp_header(resp, "Retry-After", "1");
}

/* {url, events[], secret?} → field errors or a subscription. */
static json_t *subscription_parse(const struct http_req *req, const char *owner,
                                  struct field_errors *fe, bool *bad_json)
{
    static const char *const fields[] = {"url", "events", "secret", NULL};
    json_t *doc = json_loadb(req->body, req->body_len, 0, NULL);
    *bad_json = !json_is_object(doc);
    if (*bad_json) {
        json_decref(doc);
        return NULL;
    }
    json_reject_unknown(doc, fields, fe);
    const char *url = NULL, *secret = NULL, *why = NULL;
    if (json_field_string(doc, "url", true, URL_MAX, &url, fe) && !link_url_is_valid(url, &why))
        field_errors_add(fe, "url", "%s", why ? why : "must be an http or https URL");
    json_t *events = json_object_get(doc, "events");
    if (!json_is_array(events) || !json_array_size(events))
        field_errors_add(fe, "events", "must be a non-empty array of link.created, link.deleted, "
                                       "link.clicked");
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev) {
        bool known = false;
        for (int k = 0; k < EVENT_TYPES; k++)
            known |= json_is_string(ev) && !strcmp(json_string_value(ev), event_types[k]);
        if (!known)
            field_errors_add(fe, "events", "unknown event type at [%zu]", i);
    }
    uint8_t key[64];
    size_t klen;
    if (json_field_string(doc, "secret", false, 200, &secret, fe) &&
        webhook_secret_decode(secret, key, &klen) != SL_OK)
        field_errors_add(fe, "secret", "must be whsec_ followed by base64 (or leave it out)");
    json_t *sub = NULL;
    if (!field_errors_any(fe)) {
        char id[32], at[32], made[WEBHOOK_SECRET_MAX];
        random_id("wh_", id, sizeof(id));
        clock_format_iso8601(clock_wall_ms(), at);
        if (!secret && webhook_secret_new(made) == SL_OK)
            secret = made;
        sub = json_pack("{s:s, s:s, s:s, s:O, s:s, s:s, s:b}", "id", id, "owner", owner, "url", url,
                        "events", events, "secret", secret ? secret : "", "created_at", at,
                        "active", 1);
    }
    json_decref(doc);
    return sub;
}

/* The public view: no secret (it is shown once, at creation). */
static json_t *subscription_view(const json_t *sub)
{
    json_t *v = json_deep_copy(sub);
    json_object_del(v, "secret");
    json_object_del(v, "owner");
    return v;
}

void h_webhook_create(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    struct principal p;
    if (!auth_require(s, req, resp, SCOPE_LINKS_WRITE, &p))
        return;
    struct field_errors fe;
    field_errors_init(&fe);
    bool bad_json;
    json_t *sub = subscription_parse(req, p.key_id, &fe, &bad_json);
    if (bad_json) {
        http_problem(resp, req, 400, "malformed-json", "Malformed JSON",
                     "the body must be one JSON object: {url, events, secret?}", NULL);
    } else if (!sub) {
        http_problem(resp, req, 422, "validation-failed", "Validation failed",
                     "the request body has invalid fields", json_pack("{s:O}", "errors", fe.list));
    } else {
        const char *id = json_string_value(json_object_get(sub, "id"));
        char *text = json_dump_compact(sub);
        redisReply *r1 = redis_pool_command(s->primary, "SET app:webhook:{%s} %s", id, text);
        redisReply *r2 = redis_pool_command(s->primary, "SADD app:webhooks:owner:{%s} %s", p.key_id, id);
        bool ok = r1 && r1->type != REDIS_REPLY_ERROR && r2 && r2->type != REDIS_REPLY_ERROR;
        freeReplyObject(r1);
        freeReplyObject(r2);
        free(text);
        if (!ok) {
            store_down(req, resp);
        } else { /* the secret, this once */
            json_t *v = subscription_view(sub);
            json_object_set(v, "secret", json_object_get(sub, "secret"));
            http_resp_json(resp, 201, v);
            http_resp_header(resp, "Location", "/v1/webhooks/%s", id);
        }
    }
    json_decref(sub);
    field_errors_release(&fe);
}

/* The subscription {id} if p owns it; false when the answer is written (404/503). */
static bool load_sub(struct shortener *s, struct http_req *req, struct http_resp *resp,
                     const struct principal *p, json_t **out)
{
    const char *id = http_req_param(req, "id");
    redisReply *r = redis_pool_command(s->primary, "GET app:webhook:{%s}", id);
    if (!r || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        store_down(req, resp);
        return false;
    }
    *out = r->type == REDIS_REPLY_STRING ? json_loads(r->str, 0, NULL) : NULL;
    freeReplyObject(r);
    const char *owner = json_string_value(json_object_get(*out, "owner"));
    if (!owner || strcmp(owner, p->key_id) != 0) { /* another owner's: as if absent */
        json_decref(*out);
        http_problem(resp, req, 404, "webhook-not-found", "Webhook not found",
                     "no webhook subscription of yours has this id", NULL);
        return false;
    }
    return true;
}

void h_webhook_get(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    struct principal p;
    json_t *sub;
    if (auth_require(s, req, resp, SCOPE_LINKS_READ, &p) && load_sub(s, req, resp, &p, &sub)) {
        http_resp_json(resp, 200, subscription_view(sub));
        json_decref(sub);
    }
}

void h_webhooks_list(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    struct principal p;
    if (!auth_require(s, req, resp, SCOPE_LINKS_READ, &p))
        return;
    redisReply *ids = redis_pool_command(s->primary, "SMEMBERS app:webhooks:owner:{%s}", p.key_id);
    if (!ids || ids->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(ids);
        store_down(req, resp);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < ids->elements; i++) {
        redisReply *r = redis_pool_command(s->primary, "GET app:webhook:{%s}", ids->element[i]->str);
        json_t *sub = r && r->type == REDIS_REPLY_STRING ? json_loads(r->str, 0, NULL) : NULL;
        if (sub)
            json_array_append_new(list, subscription_view(sub));
        json_decref(sub);
        freeReplyObject(r);
    }
    freeReplyObject(ids);
    http_resp_json(resp, 200, json_pack("{s:o}", "webhooks", list));
}

void h_webhook_delete(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    struct principal p;
    json_t *sub;
    if (!auth_require(s, req, resp, SCOPE_LINKS_WRITE, &p) || !load_sub(s, req, resp, &p, &sub))
        return;
    const char *id = http_req_param(req, "id");
    redisReply *r1 = redis_pool_command(s->primary, "DEL app:webhook:{%s} app:webhook:{%s}:deliveries",
                                        id, id);
    redisReply *r2 = redis_pool_command(s->primary, "SREM app:webhooks:owner:{%s} %s", p.key_id, id);
    bool ok = r1 && r1->type == REDIS_REPLY_INTEGER && r2 && r2->type == REDIS_REPLY_INTEGER;
    freeReplyObject(r1);
    freeReplyObject(r2);
    json_decref(sub);
    if (ok)
        resp->status = 204;
    else
        store_down(req, resp);
}

/* GET /v1/webhooks/{id}/deliveries: the worker's receipts (attempts, status, latency,
 * next retry), newest first. */
void h_webhook_deliveries(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    struct principal p;
    json_t *sub;
    if (!auth_require(s, req, resp, SCOPE_LINKS_READ, &p) || !load_sub(s, req, resp, &p, &sub))
        return;
    json_decref(sub);
    redisReply *r = redis_pool_command(s->primary, "LRANGE app:webhook:{%s}:deliveries 0 %d",
                                       http_req_param(req, "id"), DELIVERIES_SHOWN - 1);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        store_down(req, resp);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < r->elements; i++) {
        json_t *d = json_loads(r->element[i]->str, 0, NULL);
        if (d)
            json_array_append_new(list, d);
    }
    freeReplyObject(r);
    http_resp_json(resp, 200, json_pack("{s:o}", "deliveries", list));
}

/* ---- jobs ------------------------------------------------------------------------------------ */

/* POST /v1/links/bulk {"links":[{url, alias?, ttl_s?}, ...]} → 202 and a job to poll. */
void h_links_bulk(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    struct principal p;
    if (!auth_require(s, req, resp, SCOPE_LINKS_WRITE, &p))
        return;
    json_t *doc = json_loadb(req->body, req->body_len, 0, NULL);
    json_t *links = json_object_get(doc, "links");
    if (!json_is_array(links) || !json_array_size(links) || json_array_size(links) > BULK_MAX_LINKS) {
        http_problem(resp, req, 422, "validation-failed", "Validation failed",
                     "the body is {\"links\": [{\"url\": ...}, ...]} with 1 to 1000 links",
                     json_pack("{s:[{s:s, s:s}]}", "errors", "field", "links", "message",
                               "must be an array of 1 to 1000 link objects"));
        json_decref(doc);
        return;
    }
    json_t *payload = json_pack("{s:s, s:O}", "owner", p.key_id, "links", links);
    char *text = json_dump_compact(payload);
    struct queue_opts o = {.name = QUEUE_BULK};
    char id[QUEUE_JOB_ID_SIZE];
    int rc = text ? queue_enqueue(s->primary, &o, NULL, text, strlen(text), QUEUE_PRIORITY_NORMAL, 0, id)
                  : SL_ENOMEM;
    free(text);
    json_decref(payload);
    json_decref(doc);
    redisReply *r = rc == SL_OK ? redis_pool_command(s->primary, "SET app:job:{%s} %s EX 86400", id,
                                                     p.key_id)
                                : NULL; /* whose job it is: only its owner may poll it */
    if (!r || r->type == REDIS_REPLY_ERROR) {
        freeReplyObject(r);
        store_down(req, resp);
        return;
    }
    freeReplyObject(r);
    http_resp_json(resp, 202, json_pack("{s:s, s:s, s:i}", "job", id, "state", "waiting", "links",
                                        (int)json_array_size(links)));
    http_resp_header(resp, "Location", "/v1/jobs/%s", id);
    http_resp_header(resp, "Retry-After", "1");
}

/* GET /v1/jobs/{id}: state, progress and result (the owner's own jobs only). */
void h_job_get(struct http_req *req, struct http_resp *resp)
{
    struct shortener *s = req->app;
    struct principal p;
    if (!auth_require(s, req, resp, SCOPE_LINKS_READ, &p))
        return;
    struct queue_opts o = {.name = QUEUE_BULK};
    json_t *st = NULL;
    const char *id = http_req_param(req, "id");
    redisReply *r = redis_pool_command(s->primary, "GET app:job:{%s}", id);
    int rc = !r || r->type == REDIS_REPLY_ERROR ? SL_ESTORE
             : r->type != REDIS_REPLY_STRING    ? SL_ENOTFOUND
                                                : queue_status(s->primary, &o, id, &st);
    const char *owner = r && r->type == REDIS_REPLY_STRING ? r->str : NULL;
    if (rc == SL_ESTORE) {
        store_down(req, resp);
    } else if (rc != SL_OK || !owner || strcmp(owner, p.key_id) != 0) {
        http_problem(resp, req, 404, "job-not-found", "Job not found",
                     "no job of yours has this id (job records expire after a day)", NULL);
    } else {
        json_t *result = json_loads(json_string_value(json_object_get(st, "result")) ?: "", 0, NULL);
        if (result)
            json_object_set_new(st, "result", result);
        http_resp_json(resp, 200, json_incref(st));
    }
    freeReplyObject(r);
    json_decref(st);
}
