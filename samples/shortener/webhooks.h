/*
 * webhooks — the sample API's asynchronous side (issue 9, docs/shortener.md "Webhooks
 * and jobs"): webhook subscriptions, the events it publishes, and the bulk-create job
 * polled at /v1/jobs/{id}.
 *
 *   POST /v1/links, DELETE /v1/links/{code}, a redirect reaching 1, 10, 100 ... clicks
 *     └─► PUBLISH sluice:events {"id","type","at","owner","data"}   (at-most-once)
 *           └─► sluice-worker: one delivery job per matching subscription (queue
 *               "webhooks"), signed Standard Webhooks POST, retries, receipts
 *   POST /v1/links/bulk ─► job on queue "bulk" ─► 202 + Location: /v1/jobs/{id}
 *
 * Redis (primary): app:webhook:{ID} (JSON, secret included), app:webhooks:owner:{OWNER}
 * (set of ids), app:webhook:{ID}:deliveries (list of receipts, newest first, 100 kept).
 */
#ifndef SHORTENER_WEBHOOKS_H
#define SHORTENER_WEBHOOKS_H

#include "http.h"

struct shortener;

#define EVENTS_CHANNEL "sluice:events"
#define QUEUE_WEBHOOKS "webhooks"
#define QUEUE_BULK "bulk"
#define BULK_MAX_LINKS 1000

/* An event for the owner's subscriptions; best effort (logged when Redis refuses). */
void events_publish(struct shortener *s, const char *type, const char *owner, json_t *data);
/* link.clicked milestones: 1, 10, 100, 1000 ... clicks. */
bool events_click_milestone(long long clicks);

void h_webhook_create(struct http_req *req, struct http_resp *resp);
void h_webhooks_list(struct http_req *req, struct http_resp *resp);
void h_webhook_get(struct http_req *req, struct http_resp *resp);
void h_webhook_delete(struct http_req *req, struct http_resp *resp);
void h_webhook_deliveries(struct http_req *req, struct http_resp *resp);
void h_links_bulk(struct http_req *req, struct http_resp *resp);
void h_job_get(struct http_req *req, struct http_resp *resp);

#endif
