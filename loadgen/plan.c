#include "plan.h"

#include <string.h>

#include "err.h"
#include "prng.h"

/* Links owned by key k: i = k, k + nkeys, ... below links. */
static size_t owned_count(const struct plan *p, unsigned k)
{
    return p->links > k ? (p->links - k + p->nkeys - 1) / p->nkeys : 0;
}

int plan_init(struct plan *p, const struct scenario *sc, uint64_t seed)
{
    memset(p, 0, sizeof(*p));
    p->seed = seed;
    p->nkeys = (unsigned)sc->nkeys;
    p->links = sc->links;
    double shares[SCENARIO_KEYS_MAX];
    for (unsigned k = 0; k < p->nkeys; k++)
        shares[k] = sc->keys[k].share;
    int rc = p->nkeys ? zipf_init_weights(&p->keys, shares, p->nkeys) : SL_EINVAL;
    for (unsigned k = 0; rc == SL_OK && k < p->nkeys; k++)
        rc = zipf_init_weights(&p->mix[k], sc->keys[k].mix, KIND_COUNT);
    if (rc == SL_OK && p->links)
        rc = zipf_init(&p->popular, p->links, sc->zipf_s);
    for (unsigned k = 0; rc == SL_OK && k < p->nkeys; k++)
        if (owned_count(p, k))
            rc = zipf_init(&p->owned[k], owned_count(p, k), sc->zipf_s);
    if (rc != SL_OK)
        plan_release(p);
    return rc;
}

void plan_release(struct plan *p)
{
    zipf_release(&p->keys);
    zipf_release(&p->popular);
    for (unsigned k = 0; k < SCENARIO_KEYS_MAX; k++) {
        zipf_release(&p->mix[k]);
        zipf_release(&p->owned[k]);
    }
}

void plan_at(const struct plan *p, uint64_t seq, struct plan_req *out)
{
    uint64_t r_key = prng_at(p->seed, 3 * seq), r_kind = prng_at(p->seed, 3 * seq + 1),
             r_link = prng_at(p->seed, 3 * seq + 2);
    unsigned key = (unsigned)zipf_sample(&p->keys, r_key);
    enum req_kind kind = (enum req_kind)zipf_sample(&p->mix[key], r_kind);
    int64_t link = -1;
    if ((kind == KIND_READ || kind == KIND_REDIRECT) && p->links)
        link = (int64_t)zipf_sample(&p->popular, r_link);
    else if (kind == KIND_STATS && p->owned[key].n)
        link = (int64_t)(zipf_sample(&p->owned[key], r_link) * p->nkeys + key);
    *out = (struct plan_req){.seq = seq, .kind = kind, .key = key, .link = link};
}

unsigned plan_owner(const struct plan *p, size_t link)
{
    return (unsigned)(link % p->nkeys);
}
