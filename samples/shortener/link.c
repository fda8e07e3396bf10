#include "link.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base62.h"
#include "crypto.h"
#include "encode.h"
#include "clock.h"
#include "err.h"

static const char *const link_fields[] = {"url", "alias", "ttl_s", NULL};

int link_input_parse(const char *body, size_t len, struct link_input *in,
                     struct field_errors *fe, char json_err[JSON_ERR_MAX])
{
    memset(in, 0, sizeof(*in));
    int rc = json_parse(body, len, &in->doc, json_err);
    if (rc)
        return SL_EPARSE;
    if (!json_is_object(in->doc)) {
        field_errors_add(fe, "", "the body must be a JSON object");
        return SL_EINVAL;
    }
    json_reject_unknown(in->doc, link_fields, fe);
    const char *why;
    if (json_field_string(in->doc, "url", true, LINK_URL_MAX, &in->url, fe) &&
        !link_url_is_valid(in->url, &why))
        field_errors_add(fe, "url", "%s", why);
    if (json_field_string(in->doc, "alias", false, LINK_ALIAS_MAX, &in->alias, fe) &&
        !link_alias_is_valid(in->alias, &why))
        field_errors_add(fe, "alias", "%s", why);
    json_field_int(in->doc, "ttl_s", false, 1, LINK_TTL_MAX_S, &in->ttl_s, fe);
    return field_errors_any(fe) ? SL_EINVAL : SL_OK;
}

void link_input_release(struct link_input *in)
{
    json_decref(in->doc);
    memset(in, 0, sizeof(*in));
}

bool link_url_is_valid(const char *url, const char **why)
{
    size_t skip;
    if (strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        skip = 8;
    else {
        *why = "must be an http or https URL";
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)url; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f) {
            *why = "must not contain spaces or control characters";
            return false;
        }
    }
    /* RFC 3986 §3.2: authority = [ userinfo "@" ] host [ ":" port ] */
    const char *auth = url + skip;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', alen);
    const char *host = at ? at + 1 : auth;
    size_t hlen = alen - (size_t)(host - auth);
    const char *colon = host[0] == '[' ? memchr(host, ']', hlen) : memchr(host, ':', hlen);
    if (colon && host[0] != '[')
        hlen = (size_t)(colon - host);
    if (hlen == 0 || (host[0] == '[' && !colon)) {
        *why = "must have a host";
        return false;
    }
    return true;
}

bool link_code_is_reserved(const char *code)
{
    static const char *const words[] = {"healthz", "readyz", "metrics", NULL};
    for (const char *const *w = words; *w; w++)
        if (strcasecmp(code, *w) == 0)
            return true;
    if ((code[0] == 'v' || code[0] == 'V') && code[1]) {
        for (const char *p = code + 1; *p; p++)
            if (!isdigit((unsigned char)*p))
                return false;
        return true;
    }
    return false;
}

bool link_code_is_plausible(const char *code)
{
    size_t n = strlen(code);
    if (n == 0 || n > LINK_ALIAS_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)code[i]) && code[i] != '_' && code[i] != '-')
            return false;
    return true;
}

bool link_alias_is_valid(const char *alias, const char **why)
{
    size_t n = strlen(alias);
    if (n < LINK_ALIAS_MIN || n > LINK_ALIAS_MAX) {
        *why = "must be 3 to 32 characters long";
        return false;
    }
    if (!link_code_is_plausible(alias)) {
        *why = "may contain only letters, digits, '_' and '-'";
        return false;
    }
    if (link_code_is_reserved(alias)) {
        *why = "is a reserved word";
        return false;
    }
    return true;
}

int link_code_generate(link_rand_fn rand_fn, char out[LINK_CODE_MAX])
{
    for (int tries = 0; tries < 16; tries++) {
        int rc = rand_fn(out, LINK_CODE_LEN);
        if (rc)
            return rc;
        if (!link_code_is_reserved(out))
            return SL_OK;
    }
    return SL_ERANGE;
}

json_t *link_record_new(const char *url, const char *owner, int64_t created_ms,
                        int64_t expires_ms)
{
    return json_pack("{s:s, s:s, s:I, s:I}", "url", url, "owner", owner, "created_ms",
                     (json_int_t)created_ms, "expires_ms", (json_int_t)expires_ms);
}

static json_t *iso_or_null(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char ts[32];
    clock_format_iso8601((uint64_t)ms, ts);
    return json_string(ts);
}

json_t *link_repr(const char *code, const json_t *record, const char *public_url)
{
    char short_url[512];
    snprintf(short_url, sizeof(short_url), "%s/%s", public_url, code);
    int64_t created = json_integer_value(json_object_get(record, "created_ms"));
    int64_t expires = json_integer_value(json_object_get(record, "expires_ms"));
    return json_pack("{s:s, s:O, s:s, s:o, s:o}", "code", code, "url",
                     json_object_get(record, "url"), "short_url", short_url, "created_at",
                     iso_or_null(created), "expires_at", iso_or_null(expires));
}

void link_etag(const char *repr_json, char out[LINK_ETAG_MAX])
{
    uint8_t digest[32];
    crypto_sha256(repr_json, strlen(repr_json), digest);
    out[0] = '"';
    hex_encode(digest, 16, out + 1); /* 32 hex + NUL */
    out[33] = '"';
    out[34] = '\0';
}

int64_t link_max_age_s(int64_t expires_ms, int64_t now_ms, int64_t max_age_s)
{
    if (expires_ms <= 0)
        return max_age_s;
    int64_t left_s = (expires_ms - now_ms) / 1000;
    if (left_s < 0)
        left_s = 0;
    return left_s < max_age_s ? left_s : max_age_s;
}

bool link_is_expired(const json_t *record, int64_t now_ms)
{
    int64_t expires = json_integer_value(json_object_get(record, "expires_ms"));
    return expires > 0 && now_ms >= expires;
}

void link_cursor_encode(uint64_t seq, char out[16])
{
    out[0] = 'c';
    base62_encode_u64(seq, out + 1); /* at most 11 digits + NUL */
}

bool link_cursor_decode(const char *cursor, uint64_t *seq)
{
    if (cursor[0] != 'c' || !cursor[1])
        return false;
    return base62_decode_u64(cursor + 1, strlen(cursor + 1), seq) == SL_OK;
}

void link_day(int64_t wall_ms, char out[11])
{
    time_t s = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}
