/*
 * jscan — a pull parser for JSON text that allocates nothing. The caller walks the
 * document in order, asking for what it expects next (an object's members, an array's
 * elements, a string into its own buffer, an integer, a number) and skipping the rest.
 * For hot paths that read a known shape and keep a few fields: the control plane reads a
 * thousand agents' /v1/stats bodies a second, where building a jansson tree of each
 * (an allocation per node, a hash table per object) was a third of its CPU. Everywhere
 * else use json.h.
 *
 * Contract
 *  - Grammar: RFC 8259, strictly (no comments, trailing commas, NaN, leading zeros or
 *    '+'); the root may be any value; nesting deeper than JSCAN_DEPTH_MAX is an error.
 *  - Strings read with jscan_string and keys are decoded (escapes, \u with surrogate
 *    pairs to UTF-8) and checked as UTF-8 (no overlongs, surrogates or > U+10FFFF);
 *    "\u0000" is refused (C strings). Skipped strings are checked for their grammar
 *    (escapes, no raw control characters) but not for UTF-8.
 *  - Two kinds of failure. A syntax error (malformed text, truncated input, depth) is
 *    SL_EPARSE, sticky: every later call fails the same way, and jscan_error says
 *    "offset N: what". A value of another type than the reader's is SL_EINVAL and
 *    consumes nothing, so the caller can name the field in its own message.
 *  - Nothing is looked up: the caller compares keys as they come. Duplicate keys reach
 *    the caller twice, in document order.
 *  - Numbers: jscan_int takes integers (no fraction or exponent) in int64_t range
 *    (SL_ERANGE past it, SL_EINVAL for a real); jscan_double any number, read in the C
 *    locale whatever the process's locale is.
 *
 * Use
 *     jscan_init(&js, text, len);
 *     if (jscan_object(&js)) ...not an object...
 *     while ((more = jscan_member(&js, key, sizeof(key), &klen)) == 1)
 *         if (!strcmp(key, "id")) rc = jscan_string(&js, id, sizeof(id), &n);
 *         else rc = jscan_skip(&js);
 *     if (more < 0 || jscan_finish(&js)) ...jscan_error(&js)...
 */
#ifndef SLUICE_JSCAN_H
#define SLUICE_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSCAN_DEPTH_MAX 64
#define JSCAN_ERR_MAX   80

enum jscan_type {
    JSCAN_NONE, /* end of the text, or a character no value starts with */
    JSCAN_OBJECT,
    JSCAN_ARRAY,
    JSCAN_STRING,
    JSCAN_NUMBER,
    JSCAN_BOOL,
    JSCAN_NULL
};

struct jscan {
    const char *text, *p, *end;
    unsigned depth;
    uint64_t fresh; /* bit d: the container at depth d has no member or element yet */
    bool failed;
    char err[JSCAN_ERR_MAX];
};

void jscan_init(struct jscan *js, const char *text, size_t len);
/* What the next value is (whitespace skipped); consumes nothing. */
enum jscan_type jscan_peek(struct jscan *js);
/* Consumes a null if one comes next: true if it did. */
bool jscan_null(struct jscan *js);

/* Enter the object or array that comes next: SL_OK, SL_EINVAL (another type), SL_EPARSE. */
int jscan_object(struct jscan *js);
int jscan_array(struct jscan *js);
/* In an object: 1 and the next member's key (decoded, truncated to size - 1 bytes and
 * NUL-terminated; *len its whole length), its ':' consumed, the value next; 0 at the end
 * (the '}' consumed); SL_EPARSE. */
int jscan_member(struct jscan *js, char *key, size_t size, size_t *len);
/* In an array: 1 when an element comes next, 0 at the end (the ']' consumed), SL_EPARSE. */
int jscan_element(struct jscan *js);

/* The next value, consumed on SL_OK. jscan_string truncates as jscan_member does. */
int jscan_string(struct jscan *js, char *buf, size_t size, size_t *len);
int jscan_int(struct jscan *js, int64_t *out);
int jscan_double(struct jscan *js, double *out);
int jscan_bool(struct jscan *js, bool *out);
/* Any value, whatever its type, checked and consumed: SL_OK or SL_EPARSE. */
int jscan_skip(struct jscan *js);

/* The root value was read whole and only whitespace follows: SL_OK or SL_EPARSE. */
int jscan_finish(struct jscan *js);
/* "offset N: reason" after SL_EPARSE; "" before. */
const char *jscan_error(const struct jscan *js);

#endif
