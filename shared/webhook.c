#include "webhook.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "crypto.h"
#include "encode.h"
#include "err.h"

#define PREFIX_LEN    (sizeof(WEBHOOK_SECRET_PREFIX) - 1)
#define SIG_V1        "v1,"
#define SIG_V1_LEN    (sizeof(SIG_V1) - 1)
#define TS_DIGITS_MAX 19  /* INT64_MAX has 19 digits */
#define HOST_MAX      256 /* a DNS name is at most 253 characters, an IPv6 literal 45 */

/* ---- secrets ------------------------------------------------------------------------ */

int webhook_secret_new(char out[WEBHOOK_SECRET_MAX])
{
    uint8_t key[WEBHOOK_KEY_NEW_BYTES];
    out[0] = '\0';
    if (crypto_random_bytes(key, sizeof(key)))
        return SL_ECRYPTO;
    memcpy(out, WEBHOOK_SECRET_PREFIX, PREFIX_LEN);
    base64_encode(key, sizeof(key), out + PREFIX_LEN, false);
    return SL_OK;
}

int webhook_secret_decode(const char *secret, uint8_t key[WEBHOOK_KEY_MAX], size_t *len)
{
    if (!secret || !key || !len || strncmp(secret, WEBHOOK_SECRET_PREFIX, PREFIX_LEN) != 0)
        return SL_EINVAL;
    const char *b64 = secret + PREFIX_LEN;
    size_t n = 0;
    if (base64_decode(b64, strlen(b64), key, WEBHOOK_KEY_MAX, &n, false) != SL_OK ||
        n < WEBHOOK_KEY_MIN)
        return SL_EINVAL;
    *len = n;
    return SL_OK;
}

/* ---- signing ------------------------------------------------------------------------ */

/* 1..WEBHOOK_ID_MAX visible ASCII characters, no '.' (the separator of the signed text). */
static bool id_is_valid(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        unsigned char c = (unsigned char)id[n];
        if (n == WEBHOOK_ID_MAX || c <= ' ' || c > '~' || c == '.')
            return false;
    }
    return n > 0;
}

/* A canonical decimal: digits only, no leading zero, at most INT64_MAX. */
static bool timestamp_parse(const char *s, int64_t *out)
{
    if (s[0] < '0' || s[0] > '9' || (s[0] == '0' && s[1]))
        return false;
    uint64_t v = 0; /* 19 digits stay below 2^64 */
    for (size_t i = 0; s[i]; i++) {
        if (i == TS_DIGITS_MAX || s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > INT64_MAX)
        return false;
    *out = (int64_t)v;
    return true;
}

/* "id.timestamp.body" in one heap buffer (crypto.h's HMAC is one-shot). Caller frees. */
static int content_build(const char *id, int64_t ts, const char *body, size_t len, char **out,
                         size_t *out_len)
{
    char head[WEBHOOK_ID_MAX + TS_DIGITS_MAX + 3];
    int h = snprintf(head, sizeof(head), "%s.%lld.", id, (long long)ts);
    if (h < 0 || (size_t)h >= sizeof(head) || len > SIZE_MAX - (size_t)h)
        return SL_ENOMEM;
    char *buf = malloc((size_t)h + len);
    if (!buf)
        return SL_ENOMEM;
    memcpy(buf, head, (size_t)h);
    if (len)
        memcpy(buf + h, body, len);
    *out = buf;
    *out_len = (size_t)h + len;
    return SL_OK;
}

int webhook_sign(const char *secret, const char *msg_id, int64_t timestamp_s, const char *body,
                 size_t len, char out[WEBHOOK_SIG_MAX])
{
    uint8_t key[WEBHOOK_KEY_MAX], mac[CRYPTO_SHA256_BYTES];
    size_t klen, n;
    char *content;
    if (!out)
        return SL_EINVAL;
    out[0] = '\0';
    if (!msg_id || !id_is_valid(msg_id) || timestamp_s < 0 || (!body && len) ||
        webhook_secret_decode(secret, key, &klen) != SL_OK)
        return SL_EINVAL;
    int rc = content_build(msg_id, timestamp_s, body, len, &content, &n);
    if (rc)
        return rc;
    crypto_hmac_sha256(key, klen, content, n, mac);
    free(content);
    memcpy(out, SIG_V1, SIG_V1_LEN);
    base64_encode(mac, sizeof(mac), out + SIG_V1_LEN, false);
    return SL_OK;
}

/* ---- verification ------------------------------------------------------------------- */

/* The decoded "v1" MACs of a webhook-signature header. */
struct sig_list {
    uint8_t mac[WEBHOOK_SIGS_MAX][CRYPTO_SHA256_BYTES];
    size_t n;
};

/* Space-separated "VERSION,VALUE" entries. Entries of other versions, and v1 values that
 * are not base64 of a 32-byte MAC, cannot match and are skipped. */
static int sigs_parse(const char *header, struct sig_list *out)
{
    size_t entries = 0;
    out->n = 0;
    for (const char *p = header;;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, " "), got = 0;
        const char *comma = memchr(p, ',', n);
        if (++entries > WEBHOOK_SIGS_MAX || !comma || comma == p || comma + 1 == p + n)
            return SL_EPARSE;
        if (comma - p == 2 && memcmp(p, "v1", 2) == 0 &&
            base64_decode(comma + 1, n - 3, out->mac[out->n], CRYPTO_SHA256_BYTES, &got, false) ==
                SL_OK &&
            got == CRYPTO_SHA256_BYTES)
            out->n++;
        p += n;
    }
    return entries ? SL_OK : SL_EPARSE;
}

static bool secrets_valid(const char *const *secrets)
{
    uint8_t key[WEBHOOK_KEY_MAX];
    size_t klen;
    if (!secrets || !secrets[0])
        return false;
    for (size_t i = 0; secrets[i]; i++)
        if (webhook_secret_decode(secrets[i], key, &klen) != SL_OK)
            return false;
    return true;
}

/* |now - ts| <= tolerance, in unsigned arithmetic: the difference of two int64_t values
 * always fits a uint64_t, so no overflow whatever the inputs. */
static int window_check(int64_t ts, int64_t now_s, int64_t tolerance_s)
{
    if (ts < now_s && (uint64_t)now_s - (uint64_t)ts > (uint64_t)tolerance_s)
        return SL_EGONE;
    if (ts > now_s && (uint64_t)ts - (uint64_t)now_s > (uint64_t)tolerance_s)
        return SL_ERANGE;
    return SL_OK;
}

int webhook_verify(const char *const *secrets, const char *msg_id, const char *timestamp_header,
                   const char *signature_header, const char *body, size_t len, int64_t now_s,
                   int64_t tolerance_s)
{
    if (!secrets_valid(secrets) || tolerance_s < 0 || (!body && len))
        return SL_EINVAL;
    int64_t ts;
    struct sig_list sigs;
    if (!msg_id || !timestamp_header || !signature_header || !id_is_valid(msg_id) ||
        !timestamp_parse(timestamp_header, &ts) || sigs_parse(signature_header, &sigs) != SL_OK)
        return SL_EPARSE;
    char *content;
    size_t n;
    int rc = content_build(msg_id, ts, body, len, &content, &n);
    if (rc)
        return rc;
    bool match = false; /* no early exit: every MAC is compared */
    for (size_t i = 0; secrets[i]; i++) {
        uint8_t key[WEBHOOK_KEY_MAX], mac[CRYPTO_SHA256_BYTES];
        size_t klen = 0;
        webhook_secret_decode(secrets[i], key, &klen); /* checked by secrets_valid */
        crypto_hmac_sha256(key, klen, content, n, mac);
        for (size_t k = 0; k < sigs.n; k++)
            match |= crypto_equal(mac, sigs.mac[k], sizeof(mac));
    }
    free(content);
    return match ? window_check(ts, now_s, tolerance_s) : SL_EAUTH;
}

/* ---- addresses ---------------------------------------------------------------------- */

/* A special-purpose block (RFC 6890 registries). v4_at >= 0: the block itself is not
 * refused; the IPv4 address embedded at that byte offset is judged instead. */
struct net_block {
    int family;
    uint8_t net[16];
    unsigned bits;
    int v4_at;
};

static const struct net_block special_blocks[] = {
    {AF_INET, {0}, 8, -1},                                    /* "this network", RFC 1122 */
    {AF_INET, {10}, 8, -1},                                   /* private, RFC 1918 */
    {AF_INET, {100, 64}, 10, -1},                             /* shared (CGNAT), RFC 6598 */
    {AF_INET, {127}, 8, -1},                                  /* loopback, RFC 1122 */
    {AF_INET, {169, 254}, 16, -1},                            /* link-local, RFC 3927 */
    {AF_INET, {172, 16}, 12, -1},                             /* private, RFC 1918 */
    {AF_INET, {192, 0, 0}, 24, -1},                           /* IETF assignments, RFC 6890 */
    {AF_INET, {192, 168}, 16, -1},                            /* private, RFC 1918 */
    {AF_INET, {198, 18}, 15, -1},                             /* benchmarking, RFC 2544 */
    {AF_INET, {224}, 4, -1},                                  /* multicast, RFC 5771 */
    {AF_INET, {240}, 4, -1},                                  /* reserved, broadcast, RFC 1112 */
    {AF_INET6, {[10] = 0xff, [11] = 0xff}, 96, 12},           /* IPv4-mapped, RFC 4291 §2.5.5.2 */
    {AF_INET6, {0x00, 0x64, 0xff, 0x9b}, 96, 12},             /* NAT64, RFC 6052 */
    {AF_INET6, {0x20, 0x02}, 16, 2},                          /* 6to4, RFC 3056 */
    {AF_INET6, {0}, 96, -1},                                  /* ::, ::1, IPv4-compatible */
    {AF_INET6, {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, -1}, /* local NAT64, RFC 8215 */
    {AF_INET6, {0x01, 0x00}, 64, -1},                         /* discard-only, RFC 6666 */
    {AF_INET6, {0x20, 0x01, 0x00, 0x00}, 32, -1},             /* Teredo, RFC 4380 */
    {AF_INET6, {0xfc}, 7, -1},                                /* unique local, RFC 4193 */
    {AF_INET6, {0xfe, 0x80}, 10, -1},                         /* link-local, RFC 4291 */
    {AF_INET6, {0xfe, 0xc0}, 10, -1},                         /* site-local, RFC 3879 */
    {AF_INET6, {0xff}, 8, -1},                                /* multicast, RFC 4291 */
};

static bool prefix_matches(const uint8_t *addr, const uint8_t *net, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(addr, net, whole) != 0)
        return false;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return rest == 0 || (addr[whole] & mask) == (net[whole] & mask);
}

static bool bytes_are_private(int family, const uint8_t *addr)
{
    const size_t nblocks = sizeof(special_blocks) / sizeof(special_blocks[0]);
    for (size_t i = 0; i < nblocks; i++) {
        const struct net_block *b = &special_blocks[i];
        if (b->family != family || !prefix_matches(addr, b->net, b->bits))
            continue;
        return b->v4_at < 0 || bytes_are_private(AF_INET, addr + b->v4_at);
    }
    return false;
}

/* The family and bytes of sa; an IPv4-mapped IPv6 address counts as its IPv4 address. */
static bool addr_bytes(const struct sockaddr *sa, int *family, uint8_t out[16])
{
    static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        *family = AF_INET;
        return true;
    }
    if (sa->sa_family != AF_INET6)
        return false;
    const uint8_t *a6 = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
    bool is_mapped = memcmp(a6, mapped, sizeof(mapped)) == 0;
    memcpy(out, is_mapped ? a6 + 12 : a6, is_mapped ? 4 : 16);
    *family = is_mapped ? AF_INET : AF_INET6;
    return true;
}

bool webhook_addr_is_private(const struct sockaddr *sa)
{
    int family;
    uint8_t addr[16];
    return !addr_bytes(sa, &family, addr) || bytes_are_private(family, addr);
}

/* "ADDR/PREFIX" → family, network bytes and prefix length. */
static bool cidr_parse(const char *s, int *family, uint8_t net[16], unsigned *bits)
{
    const char *slash = strchr(s, '/');
    char addr[INET6_ADDRSTRLEN];
    if (!slash || (size_t)(slash - s) >= sizeof(addr))
        return false;
    memcpy(addr, s, (size_t)(slash - s));
    addr[slash - s] = '\0';
    *family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    unsigned max = *family == AF_INET ? 32 : 128, v = 0;
    const char *p = slash + 1;
    for (; *p >= '0' && *p <= '9' && v <= max && p - slash <= 3; p++)
        v = v * 10 + (unsigned)(*p - '0');
    if (p == slash + 1 || *p || v > max || inet_pton(*family, addr, net) != 1)
        return false;
    *bits = v;
    return true;
}

bool webhook_addr_allowed(const struct sockaddr *sa, const char *const *allow)
{
    int family, cidr_family;
    uint8_t addr[16], net[16];
    unsigned bits;
    if (!webhook_addr_is_private(sa))
        return true;
    if (!addr_bytes(sa, &family, addr))
        return false;
    for (size_t i = 0; allow && allow[i]; i++)
        if (cidr_parse(allow[i], &cidr_family, net, &bits) && cidr_family == family &&
            prefix_matches(addr, net, bits))
            return true;
    return false;
}

/* ---- delivery targets --------------------------------------------------------------- */

struct target {
    char host[HOST_MAX]; /* without the brackets of an IPv6 literal */
    unsigned port;       /* explicit, or the scheme's default */
};

static void say(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(char *why, const char *fmt, ...)
{
    if (!why)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, WEBHOOK_WHY_MAX, fmt, ap);
    va_end(ap);
}

/* n decimal digits, 1..65535. */
static bool port_parse(const char *s, size_t n, unsigned *port)
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *port = v;
    return v >= 1 && v <= 65535;
}

/* "HOST", "HOST:PORT", "[V6]", "[V6]:PORT" or a bare IPv6 literal (two or more ':') in
 * the n bytes at s. host gets the host without brackets; *port is 0 when none is given. */
static bool hostport_split(const char *s, size_t n, char host[HOST_MAX], unsigned *port)
{
    const char *end = s + n, *h = s, *h_end, *after; /* after: where ":PORT" may start */
    const char *colon = memchr(s, ':', n);
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return false;
        h = s + 1;
        h_end = close;
        after = close + 1;
    } else if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1))) {
        h_end = after = end;
    } else {
        h_end = after = colon ? colon : end;
    }
    size_t hlen = (size_t)(h_end - h);
    if (hlen == 0 || hlen >= HOST_MAX)
        return false;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = 0;
    return after == end ||
           (*after == ':' && port_parse(after + 1, (size_t)(end - after - 1), port));
}

/* A bracketed host is an IPv6 literal (no zone); another is letters, digits, '.', '-' and
 * '_' (an IPv4 literal or a DNS name; IDNs arrive as punycode). */
static bool host_is_valid(const char *host, bool bracketed)
{
    uint8_t a6[16];
    if (bracketed)
        return inet_pton(AF_INET6, host, a6) == 1;
    for (const char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_'))
            return false;
    return true;
}

static bool url_parse(const char *url, struct target *t, char *why)
{
    static const struct {
        const char *prefix;
        unsigned port;
    } schemes[] = {{"http://", 80}, {"https://", 443}};
    const char *auth = NULL;
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '\\') {
            say(why, "the URL holds a space, a control character or a backslash");
            return false;
        }
    }
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !auth; i++) {
        size_t n = strlen(schemes[i].prefix);
        if (strncasecmp(url, schemes[i].prefix, n) == 0) {
            auth = url + n;
            t->port = schemes[i].port;
        }
    }
    if (!auth) {
        say(why, "only http:// and https:// URLs may receive webhooks");
        return false;
    }
    size_t n = strcspn(auth, "/?#");
    unsigned port;
    if (memchr(auth, '@', n)) {
        say(why, "user information (user@host) is not allowed in a webhook URL");
        return false;
    }
    if (!hostport_split(auth, n, t->host, &port) || !host_is_valid(t->host, auth[0] == '[')) {
        say(why, "the URL has no valid host (and port)");
        return false;
    }
    if (port)
        t->port = port;
    return true;
}

/* IP literals compare by value ("::1" is "0:0::1"), names case-insensitively and without a
 * final '.'. */
static bool host_equal(const char *a, const char *b)
{
    uint8_t x[16], y[16];
    int family = strchr(a, ':') ? AF_INET6 : AF_INET;
    if (inet_pton(family, a, x) == 1 && inet_pton(family, b, y) == 1)
        return memcmp(x, y, family == AF_INET ? 4 : 16) == 0;
    size_t na = strlen(a), nb = strlen(b);
    na -= na && a[na - 1] == '.';
    nb -= nb && b[nb - 1] == '.';
    return na == nb && strncasecmp(a, b, na) == 0;
}

/* Does a host or host:port entry of allow name the target? (CIDR entries are for
 * webhook_addr_allowed.) */
static bool allow_names(const char *const *allow, const struct target *t)
{
    char host[HOST_MAX];
    unsigned port;
    for (size_t i = 0; allow && allow[i]; i++)
        if (!strchr(allow[i], '/') && hostport_split(allow[i], strlen(allow[i]), host, &port) &&
            host_equal(host, t->host) && (port == 0 || port == t->port))
            return true;
    return false;
}

static bool resolved_allowed(const struct target *t, const char *const *allow, char *why)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(t->host, NULL, &hints, &res);
    if (rc) {
        say(why, "%.64s does not resolve: %s", t->host, gai_strerror(rc));
        return false;
    }
    bool ok = true;
    for (const struct addrinfo *ai = res; ai && ok; ai = ai->ai_next) {
        if (webhook_addr_allowed(ai->ai_addr, allow))
            continue;
        char text[INET6_ADDRSTRLEN] = "an address of another family";
        const void *a = ai->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr;
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
            inet_ntop(ai->ai_family, a, text, sizeof(text));
        say(why, "%s is a private, loopback, link-local or reserved address", text);
        ok = false;
    }
    freeaddrinfo(res);
    if (ok)
        say(why, "%.64s resolves only to public or allow-listed addresses", t->host);
    return ok;
}

bool webhook_target_allowed(const char *url, const char *const *allow, char why[WEBHOOK_WHY_MAX])
{
    struct target t;
    if (!url) {
        say(why, "no URL");
        return false;
    }
    if (!url_parse(url, &t, why))
        return false;
    if (allow_names(allow, &t)) {
        say(why, "%.64s is allow-listed", t.host);
        return true;
    }
    return resolved_allowed(&t, allow, why);
}
