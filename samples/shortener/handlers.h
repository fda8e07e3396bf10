/*
 * handlers — the shortener's HTTP routes (docs/shortener.md is their contract).
 *
 * shortener_handle is the server's front handler: it resolves the API version in the path
 * (/v1 served, /v0 served with Deprecation/Sunset, any other /vN/ → 404) and dispatches
 * through the route table. Handlers reach the process state through req->app.
 */
#ifndef SHORTENER_HANDLERS_H
#define SHORTENER_HANDLERS_H

#include "http.h"
#include "json.h"
#include "link.h"

struct shortener;

void shortener_handle(struct http_req *req, struct http_resp *resp);

/* Creates one link for owner from a JSON body ({url, alias?, ttl_s?}) and publishes
 * link.created: SL_OK with *repr (the API's representation) and code; SL_EPARSE (jerr),
 * SL_EINVAL (fe), SL_EEXISTS (alias taken), SL_ESTORE. The bulk job uses it too. */
int links_create(struct shortener *s, const char *owner, const char *body, size_t len,
                 struct field_errors *fe, char jerr[JSON_ERR_MAX], json_t **repr,
                 char code[LINK_CODE_MAX]);

#endif
