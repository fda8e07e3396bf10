/*
 * idem — Idempotency-Key for POST (IETF draft-ietf-httpapi-idempotency-key-header;
 * Stripe's semantics), stored in Redis for SHORTENER_IDEM_TTL_S.
 *
 * idem_begin claims the key atomically (SET NX of an in_flight record holding the body's
 * SHA-256). Whoever wins processes the request and calls idem_finish (stores the answer)
 * or idem_abort (5xx: forgets the key so a retry runs again). Everyone else gets the
 * stored answer (same body), a mismatch (other body → 422) or in-flight (→ 409).
 */
#ifndef SHORTENER_IDEM_H
#define SHORTENER_IDEM_H

#include <stdbool.h>
#include <stddef.h>

#include "json.h"
#include "shortener.h"

#define IDEM_KEY_MAX 255

enum idem_state {
    IDEM_PROCEED,   /* claimed: process the request */
    IDEM_REPLAY,    /* done before with this body: *stored has status, location, body */
    IDEM_MISMATCH,  /* the key was used with another body */
    IDEM_IN_FLIGHT, /* the first request with this key is still running */
};

struct idem {
    char redis_key[IDEM_KEY_MAX + 128];
    char hash[65];
};

/* 1–255 visible ASCII characters (RFC 9110 field value, no spaces at the ends). */
bool idem_key_is_valid(const char *key);
int idem_begin(struct shortener *s, const char *owner, const char *key, const char *body,
               size_t len, struct idem *ctx, enum idem_state *state, json_t **stored);
int idem_finish(struct shortener *s, const struct idem *ctx, int status,
                const char *content_type, const char *location, const char *body);
void idem_abort(struct shortener *s, const struct idem *ctx);

#endif
