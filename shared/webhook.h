/*
 * webhook — the Standard Webhooks primitives (standardwebhooks.com, spec 1.0.0; REFERENCE.md
 * "Security"): secrets, signing, verification and the SSRF check of delivery targets.
 *
 * Data flow: the sample API makes a subscription's secret (webhook_secret_new) and the
 * worker signs each delivery (webhook_sign) after checking its target
 * (webhook_target_allowed); a receiver (samples/webhook-receiver) verifies it
 * (webhook_verify) and uses webhook-id as an idempotency key.
 *
 * A delivery carries three headers:
 *   webhook-id:        the message id; the same on every retry
 *   webhook-timestamp: Unix seconds of this attempt
 *   webhook-signature: "v1,<base64(HMAC-SHA256(key, id "." timestamp "." body))>", a
 *                      space-separated list while a secret is rotated
 * and a secret is "whsec_" + standard base64 (RFC 4648 §4, padded) of the key bytes.
 *
 * Contract:
 *  - Everything but webhook_target_allowed is pure: time comes in as an argument, nothing
 *    is kept between calls, no I/O. webhook_target_allowed resolves a host name
 *    (getaddrinfo), so it blocks on DNS; its decisions are made by the pure
 *    webhook_addr_is_private / webhook_addr_allowed, which the sender should call again on
 *    the address it actually connects to (libcurl CURLOPT_OPENSOCKETFUNCTION), because a
 *    name may resolve differently a moment later (DNS rebinding).
 *  - Secrets are strict: the "whsec_" prefix is required and the key must be
 *    WEBHOOK_KEY_MIN..WEBHOOK_KEY_MAX bytes (the spec: "at least 24 bytes", 512 bits at
 *    most), so a pasted hex string or password is an error rather than a weak key.
 *  - A message id is 1..WEBHOOK_ID_MAX visible ASCII characters without '.', and a
 *    timestamp a canonical non-negative decimal (no sign, no leading zero), so that
 *    "id.timestamp.body" has exactly one reading (the spec asks that neither hold a '.').
 *  - MACs are compared in constant time (crypto_equal) on the decoded bytes.
 *  - Functions that act return SL_OK or a negative code from err.h; predicates return bool.
 * Thread safety: no shared state; every function may be called from any thread.
 */
#ifndef SLUICE_WEBHOOK_H
#define SLUICE_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

#define WEBHOOK_SECRET_PREFIX "whsec_"
#define WEBHOOK_KEY_MIN       24  /* bytes; a shorter key is SL_EINVAL */
#define WEBHOOK_KEY_MAX       64  /* bytes; a longer key is SL_EINVAL */
#define WEBHOOK_KEY_NEW_BYTES 32  /* what webhook_secret_new draws */
#define WEBHOOK_SECRET_MAX    96  /* "whsec_" + base64 of WEBHOOK_KEY_MAX bytes + NUL (95) */
#define WEBHOOK_SIG_MAX       48  /* "v1," + 44 base64 characters + NUL */
#define WEBHOOK_ID_MAX        256 /* bytes of a webhook-id, NUL excluded */
#define WEBHOOK_SIGS_MAX      16  /* entries of one webhook-signature header; more: SL_EPARSE */
#define WEBHOOK_TOLERANCE_S   300 /* the spec's suggested clock tolerance (5 minutes) */
#define WEBHOOK_WHY_MAX       128 /* webhook_target_allowed's explanation, NUL included */

/* out = "whsec_" + base64 of WEBHOOK_KEY_NEW_BYTES bytes from the CSPRNG (50 characters).
 * SL_OK, or SL_ECRYPTO when the generator failed (out is then ""). */
int webhook_secret_new(char out[WEBHOOK_SECRET_MAX]);

/* The key bytes of a "whsec_..." secret. SL_OK with *len set, or SL_EINVAL (key and *len
 * unspecified) for NULL, a missing prefix, base64 that is not strict RFC 4648 §4 (padding
 * included) or a key outside WEBHOOK_KEY_MIN..WEBHOOK_KEY_MAX bytes. */
int webhook_secret_decode(const char *secret, uint8_t key[WEBHOOK_KEY_MAX], size_t *len);

/* out = "v1,<base64(HMAC-SHA256(key, msg_id "." timestamp_s "." body))>".
 * SL_OK; SL_EINVAL for a bad secret, a message id outside the rules above, a negative
 * timestamp or a NULL body with len > 0 (a NULL body with len 0 is the empty body);
 * SL_ENOMEM when the signed content cannot be allocated. */
int webhook_sign(const char *secret, const char *msg_id, int64_t timestamp_s, const char *body,
                 size_t len, char out[WEBHOOK_SIG_MAX]);

/* Verify a delivery against any of secrets (NULL-terminated; several while one is rotated).
 * The headers are passed as received (NULL when absent). Checks, in this order:
 *   SL_EINVAL  no secrets, a secret webhook_secret_decode refuses, tolerance_s < 0, or a
 *              NULL body with len > 0 (configuration or programmer errors);
 *   SL_EPARSE  malformed headers: a header is missing, the id breaks the rules above, the
 *              timestamp is not a canonical decimal that fits int64_t, or the signature
 *              list is empty, has an entry that is not "VERSION,VALUE" or has more than
 *              WEBHOOK_SIGS_MAX entries;
 *   SL_ENOMEM  the signed content cannot be allocated;
 *   SL_EAUTH   no "v1" entry is the MAC under any secret (entries of other versions, e.g.
 *              the asymmetric "v1a", and v1 values that are not base64 of 32 bytes are
 *              skipped, not errors);
 *   SL_EGONE   authentic, but the timestamp is more than tolerance_s before now_s (a late
 *              delivery or a replay);
 *   SL_ERANGE  authentic, but the timestamp is more than tolerance_s after now_s (clocks
 *              apart);
 *   SL_OK      authentic and |now_s - timestamp| <= tolerance_s.
 * The signature is checked before the time, so SL_EGONE/SL_ERANGE are only said of
 * messages that really came from a key holder; a forgery is always SL_EAUTH.
 * tolerance_s is usually WEBHOOK_TOLERANCE_S. Replays inside the window are the caller's to
 * refuse, by remembering webhook-id values. */
int webhook_verify(const char *const *secrets, const char *msg_id, const char *timestamp_header,
                   const char *signature_header, const char *body, size_t len, int64_t now_s,
                   int64_t tolerance_s);

/* True for every address a webhook must not reach unless allowed (SSRF defence):
 * IPv4 0/8 "this network", 10/8, 100.64/10 (shared CGNAT), 127/8, 169.254/16 (link-local,
 * cloud metadata), 172.16/12, 192.0.0/24, 192.168/16, 198.18/15, 224/4 (multicast), 240/4
 * (reserved, broadcast); IPv6 :: and ::1, the rest of ::/96 (deprecated IPv4-compatible),
 * 64:ff9b:1::/48, 100::/64 (discard), 2001::/32 (Teredo), fc00::/7 (unique local),
 * fe80::/10 (link-local), fec0::/10 (site-local), ff00::/8 (multicast); and for the IPv4
 * inside ::ffff:0:0/96 (mapped), 64:ff9b::/96 (NAT64) and 2002::/16 (6to4), whatever that
 * IPv4 address is. True for a family other than AF_INET/AF_INET6 (unknown is unsafe).
 * Pure; sa is not NULL. */
bool webhook_addr_is_private(const struct sockaddr *sa);

/* webhook_addr_is_private(sa) is false, or sa lies inside a CIDR entry ("10.0.0.0/8",
 * "::1/128") of allow (NULL-terminated, may be NULL; entries of other forms are ignored).
 * For the connect-time re-check. Pure. */
bool webhook_addr_allowed(const struct sockaddr *sa, const char *const *allow);

/* May a webhook be delivered to url? Only http:// and https:// URLs with a host, an
 * optional port 1..65535 and no user information ("user@") qualify. Then the URL is
 * allowed when its host matches an entry of allow (NULL-terminated, may be NULL):
 *   "host"            that host on any port ("127.0.0.1", "hooks.example", "[::1]", "::1")
 *   "host:port"       that host on that port ("127.0.0.1:9100", "[::1]:9100")
 *   "ADDR/PREFIX"     a CIDR block: resolved addresses inside it are allowed
 * (names compare case-insensitively, IP literals by value); otherwise the host is resolved
 * (getaddrinfo: I/O, may block) and every address must pass webhook_addr_allowed; one
 * failing address refuses the URL (a name with a public and a private address is not a
 * way in). A name that does not resolve is refused. why gets a one-line reason either
 * way ("10.0.0.7 is a private address"); it may be NULL. */
bool webhook_target_allowed(const char *url, const char *const *allow, char why[WEBHOOK_WHY_MAX]);

#endif
