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

void shortener_handle(struct http_req *req, struct http_resp *resp);

#endif
