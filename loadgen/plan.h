/*
 * plan — which request sluice-loadgen sends n-th: its key, its kind and, for reads,
 * redirects and stats, its link. A pure function of (scenario, seed, n): every pick
 * draws from prng_at(seed, 3n + j), so a seed fixes the whole sequence whatever the rate,
 * the timing or the answers (--print-plan shows it without sending anything).
 *
 *   key   by share (zipf_init_weights over the keys' shares)
 *   kind  by that key's mix
 *   link  read / redirect: a Zipf rank over all the pre-created links (rank 0, the first
 *         created, is the hottest); stats: a Zipf rank over the links the key owns (link
 *         i is created with key i mod nkeys: only the owner may read its statistics)
 *
 * The link is an index into the pre-created links, in creation order; create and bulk
 * have none (-1). Links created during the run never join the pool: the plan cannot
 * depend on answers.
 */
#ifndef SLUICE_LOADGEN_PLAN_H
#define SLUICE_LOADGEN_PLAN_H

#include <stdint.h>

#include "scenario.h"
#include "zipf.h"

struct plan_req {
    uint64_t seq;
    enum req_kind kind;
    unsigned key;
    int64_t link; /* index of a pre-created link, -1 for create and bulk */
};

struct plan {
    uint64_t seed;
    unsigned nkeys;
    size_t links;
    struct zipf keys;                     /* by share */
    struct zipf mix[SCENARIO_KEYS_MAX];   /* per key */
    struct zipf popular;                  /* over all links (when links > 0) */
    struct zipf owned[SCENARIO_KEYS_MAX]; /* over each key's links (when it owns some) */
};

/* Build the tables for a checked scenario (scenario_check). SL_ENOMEM, or SL_EINVAL for
 * a scenario that was not checked. */
int plan_init(struct plan *p, const struct scenario *sc, uint64_t seed);
void plan_release(struct plan *p);
/* Request seq of the run. */
void plan_at(const struct plan *p, uint64_t seq, struct plan_req *out);
/* The key that creates (and owns) pre-created link i. */
unsigned plan_owner(const struct plan *p, size_t link);

#endif
