/*
 * scenario — what sluice-loadgen sends: the request mix, the links it pre-creates and how
 * popular each is, and the API keys with their shares of the traffic. Read from a JSON
 * file (or the built-in default) and checked field by field, so a bad file is reported
 * as "keys[1].share: must be a number greater than 0", every error at once.
 *
 *   { "description": "free text",
 *     "mix": {"create": 5, "read": 20, "redirect": 70, "stats": 4, "bulk": 1},
 *     "links": 1000,        pre-created at start, round-robin over the keys
 *     "zipf_s": 1.1,        popularity of the links: rank k has weight (k+1)^-s
 *     "bulk_size": 10,      links per POST /v1/links/bulk
 *     "url_prefix": "https://example.com/sluice-loadgen/",
 *     "keys": [ {"name": "app", "share": 0.7},
 *               {"name": "abusive", "share": 0.3, "mix": {"create": 80, "redirect": 20}},
 *               {"name": "ci", "share": 0.1, "key": "sk_..."} ] }
 *
 * Mix weights are relative (any non-negative numbers, not all 0). Keys: each request is
 * sent with one key, picked by share (relative weights too); a key may have its own mix.
 * The abusive client of a workshop is simply a key with a large share (and, typically, a
 * create-heavy mix of its own): a per-key rate limit (a policy keyed on
 * header:Authorization) catches it while the other keys are served. The secrets are
 * usually not in the file (keys are minted at run time): --keys K1,K2,... fills them in,
 * the i-th secret for the i-th entry; a scenario without "keys" gets one entry per --keys
 * secret, with equal shares, named key1, key2, ...
 *
 * Bounds: SCENARIO_KEYS_MAX keys, SCENARIO_LINKS_MAX links, SCENARIO_BULK_MAX links per
 * bulk request (the API's own limit); beyond them the scenario is refused.
 */
#ifndef SLUICE_LOADGEN_SCENARIO_H
#define SLUICE_LOADGEN_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>

#define SCENARIO_KEYS_MAX       16
#define SCENARIO_LINKS_MAX      100000
#define SCENARIO_BULK_MAX       1000
#define SCENARIO_NAME_MAX       32  /* characters of a key's name */
#define SCENARIO_SECRET_MAX     256 /* bytes of an API key */
#define SCENARIO_URL_PREFIX_MAX 512
#define SCENARIO_ERR_MAX        2048 /* every error, one per line */

enum req_kind { KIND_CREATE, KIND_READ, KIND_REDIRECT, KIND_STATS, KIND_BULK, KIND_COUNT };

struct scenario_key {
    char name[SCENARIO_NAME_MAX + 1];
    char secret[SCENARIO_SECRET_MAX + 1]; /* "" until given */
    double share;
    double mix[KIND_COUNT]; /* its own, or a copy of the scenario's */
    bool own_mix;
};

struct scenario {
    double mix[KIND_COUNT];
    size_t links;
    double zipf_s;
    size_t bulk_size;
    char url_prefix[SCENARIO_URL_PREFIX_MAX + 1];
    struct scenario_key keys[SCENARIO_KEYS_MAX];
    size_t nkeys;
};

/* "create", "read", "redirect", "stats", "bulk". */
const char *kind_name(enum req_kind kind);

/* Parse and check a scenario document. SL_EPARSE (not JSON; err says where) or SL_EINVAL
 * (err lists "field: message" lines). */
int scenario_parse(struct scenario *sc, const char *text, size_t len, char err[SCENARIO_ERR_MAX]);
/* The same from a file (err starts with the path for JSON errors). */
int scenario_load(struct scenario *sc, const char *path, char err[SCENARIO_ERR_MAX]);
/* The built-in scenario: the workshop mix, 100 links, zipf_s 1.1, no keys. */
void scenario_default(struct scenario *sc);

/* Fill the secrets from "K1,K2,..." as described above. SL_EINVAL with a message when
 * the count does not match the scenario's keys or a secret is empty or too long. */
int scenario_apply_secrets(struct scenario *sc, const char *csv, char err[SCENARIO_ERR_MAX]);
/* Final checks once the keys are known: at least one key; when need_secrets, every key
 * has one; links >= 1 when the mix reads links, and >= the number of keys when a key's
 * mix has stats (each key reads the statistics of links it owns). */
int scenario_check(const struct scenario *sc, bool need_secrets, char err[SCENARIO_ERR_MAX]);

#endif
