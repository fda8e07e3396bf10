#include "balancer.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hashring.h"
#include "rng.h"

/* Fixed seeds: Maglev placement must agree across workers, restarts and gateway
 * instances, so none of these may change (a change remaps every hashed key). */
#define SEED_OFFSET 0x6d61676c65762d6fULL /* "maglev-o" */
#define SEED_SKIP   0x6d61676c65762d73ULL /* "maglev-s" */
#define SEED_KEY    0x6d61676c65762d6bULL /* "maglev-k" */
#define SEED_RETRY  0x6d61676c65762d72ULL /* "maglev-r" */

#define HEADER_PREFIX "hash:header:"

struct backend {
    char name[BALANCER_NAME_MAX + 1]; /* "" for a free index */
    unsigned weight;
    bool eligible;
    bool has_ewma;
    uint32_t in_flight;
    uint64_t picks;
    double ewma_us;
    int64_t current; /* smooth weighted round robin */
};

/* One backend's Maglev permutation while a table fills (§3.4, Pseudocode 1). */
struct maglev_member {
    const char *name;
    int idx;
    unsigned weight;
    uint32_t offset, skip, next;
    uint64_t target; /* turn rule: claim an entry when turn * weight >= target */
};

struct balancer {
    enum balancer_alg alg;
    unsigned table_size; /* prime */
    double alpha;
    balancer_rnd_fn rnd;
    void *rnd_arg;
    size_t nbackends;
    int cursor; /* round robin, least_conn: the index to try first */
    /* Derived state, recomputed lazily by the next pick after a change. */
    bool usable_stale, table_stale, fallback_stale;
    int nusable;
    int usable[BALANCER_MAX];  /* usable indexes, ascending */
    int16_t pos[BALANCER_MAX]; /* index -> position in usable[], -1 when not usable */
    int16_t *table;            /* Maglev primary: every backend with weight > 0 */
    int16_t *fallback;         /* Maglev over usable backends only */
    struct maglev_member scratch[BALANCER_MAX];
    struct backend be[BALANCER_MAX];
};

static const char *const alg_names[] = {
    [BALANCER_ROUND_ROBIN] = "round_robin", [BALANCER_WEIGHTED] = "weighted",
    [BALANCER_LEAST_CONN] = "least_conn",   [BALANCER_P2C] = "p2c",
    [BALANCER_HASH_IP] = "hash:ip",         [BALANCER_HASH_HEADER] = "hash:header",
};
#define NALGS (sizeof(alg_names) / sizeof(alg_names[0]))

static uint64_t default_rnd(void *arg)
{
    (void)arg;
    return rng_u64();
}

struct balancer *balancer_new(void)
{
    struct balancer *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->alg = BALANCER_ROUND_ROBIN;
    b->table_size = BALANCER_TABLE_DEFAULT;
    b->alpha = BALANCER_EWMA_ALPHA;
    b->rnd = default_rnd;
    b->usable_stale = b->table_stale = b->fallback_stale = true;
    return b;
}

void balancer_free(struct balancer *b)
{
    if (!b)
        return;
    free(b->table);
    free(b->fallback);
    free(b);
}

/* --- algorithm names ------------------------------------------------------------------ */

/* RFC 9110 §5.6.2: tchar = "!" / "#" / ... / DIGIT / ALPHA */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int copy_header_name(const char *name, char *out, size_t cap)
{
    size_t len = strlen(name);
    if (len == 0)
        return SL_EINVAL;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)name[i]))
            return SL_EINVAL;
    if (!out || len >= cap)
        return SL_ETOOBIG;
    memcpy(out, name, len + 1);
    return SL_OK;
}

int balancer_parse_algorithm(const char *s, enum balancer_alg *out, char *header_name, size_t cap)
{
    if (strncmp(s, HEADER_PREFIX, strlen(HEADER_PREFIX)) == 0) {
        int rc = copy_header_name(s + strlen(HEADER_PREFIX), header_name, cap);
        if (rc == SL_OK)
            *out = BALANCER_HASH_HEADER;
        return rc;
    }
    for (size_t i = 0; i < NALGS; i++) {
        /* "hash:header" alone names no header: only the prefixed form above is valid. */
        if (i != BALANCER_HASH_HEADER && strcmp(s, alg_names[i]) == 0) {
            *out = (enum balancer_alg)i;
            return SL_OK;
        }
    }
    return SL_EINVAL;
}

const char *balancer_alg_str(enum balancer_alg alg)
{
    return (unsigned)alg < NALGS ? alg_names[alg] : "?";
}

/* --- configuration -------------------------------------------------------------------- */

static bool is_prime(unsigned n)
{
    if (n < 2)
        return false;
    for (unsigned d = 2; d * d <= n; d++)
        if (n % d == 0)
            return false;
    return true;
}

static int alloc_tables(struct balancer *b, unsigned size)
{
    int16_t *table = malloc(size * sizeof(*table));
    if (!table)
        return SL_ENOMEM;
    int16_t *fallback = malloc(size * sizeof(*fallback));
    if (!fallback)
        goto err_free_table;
    free(b->table);
    free(b->fallback);
    b->table = table;
    b->fallback = fallback;
    b->table_size = size;
    b->table_stale = b->fallback_stale = true;
    return SL_OK;

err_free_table:
    free(table);
    return SL_ENOMEM;
}

static bool is_hash(enum balancer_alg alg)
{
    return alg == BALANCER_HASH_IP || alg == BALANCER_HASH_HEADER;
}

int balancer_set_algorithm(struct balancer *b, enum balancer_alg alg)
{
    if ((unsigned)alg >= NALGS)
        return SL_EINVAL;
    if (is_hash(alg) && !b->table) {
        int rc = alloc_tables(b, b->table_size);
        if (rc != SL_OK)
            return rc;
    }
    b->alg = alg;
    b->cursor = 0;
    b->usable_stale = true; /* also zeroes the smooth-WRR state */
    return SL_OK;
}

enum balancer_alg balancer_algorithm(const struct balancer *b)
{
    return b->alg;
}

int balancer_set_table_size(struct balancer *b, unsigned size)
{
    if (size < BALANCER_TABLE_MIN || size > BALANCER_TABLE_MAX || !is_prime(size))
        return SL_EINVAL;
    if (size == b->table_size)
        return SL_OK;
    if (!b->table) { /* allocated when a hash algorithm is chosen */
        b->table_size = size;
        return SL_OK;
    }
    return alloc_tables(b, size);
}

int balancer_set_ewma_alpha(struct balancer *b, double alpha)
{
    if (!(alpha > 0 && alpha <= 1)) /* NaN fails too */
        return SL_EINVAL;
    b->alpha = alpha;
    return SL_OK;
}

void balancer_set_rnd(struct balancer *b, balancer_rnd_fn fn, void *arg)
{
    b->rnd = fn ? fn : default_rnd;
    b->rnd_arg = fn ? arg : NULL;
}

/* --- backends ------------------------------------------------------------------------- */

static const struct backend *backend_at(const struct balancer *b, int idx)
{
    if (idx < 0 || idx >= BALANCER_MAX || b->be[idx].name[0] == '\0')
        return NULL;
    return &b->be[idx];
}

/* The mutable twin of backend_at (strchr-style). */
static struct backend *backend_mut(struct balancer *b, int idx)
{
    return (struct backend *)backend_at(b, idx);
}

/* Membership or weights changed: every derived structure is stale. */
static void members_changed(struct balancer *b)
{
    b->usable_stale = b->table_stale = b->fallback_stale = true;
}

int balancer_find(const struct balancer *b, const char *name)
{
    for (int i = 0; i < BALANCER_MAX; i++)
        if (b->be[i].name[0] != '\0' && strcmp(b->be[i].name, name) == 0)
            return i;
    return -1;
}

int balancer_add(struct balancer *b, const char *name, unsigned weight)
{
    size_t len = strnlen(name, BALANCER_NAME_MAX + 1);
    if (len == 0 || len > BALANCER_NAME_MAX)
        return SL_EINVAL;
    if (weight > BALANCER_WEIGHT_MAX)
        return SL_ERANGE;
    if (balancer_find(b, name) >= 0)
        return SL_EEXISTS;
    int idx = 0;
    while (idx < BALANCER_MAX && b->be[idx].name[0] != '\0')
        idx++;
    if (idx == BALANCER_MAX)
        return SL_ERANGE;
    struct backend *be = &b->be[idx];
    memset(be, 0, sizeof(*be));
    memcpy(be->name, name, len + 1);
    be->weight = weight;
    be->eligible = true;
    b->nbackends++;
    members_changed(b);
    return idx;
}

int balancer_remove(struct balancer *b, const char *name)
{
    int idx = balancer_find(b, name);
    if (idx < 0)
        return SL_ENOTFOUND;
    memset(&b->be[idx], 0, sizeof(b->be[idx]));
    b->nbackends--;
    members_changed(b);
    return SL_OK;
}

int balancer_set_weight(struct balancer *b, int idx, unsigned weight)
{
    struct backend *be = backend_mut(b, idx);
    if (!be)
        return SL_ENOTFOUND;
    if (weight > BALANCER_WEIGHT_MAX)
        return SL_ERANGE;
    if (be->weight != weight) {
        be->weight = weight;
        members_changed(b);
    }
    return SL_OK;
}

int balancer_set_eligible(struct balancer *b, int idx, bool eligible)
{
    struct backend *be = backend_mut(b, idx);
    if (!be)
        return SL_ENOTFOUND;
    if (be->eligible != eligible) {
        be->eligible = eligible;
        b->usable_stale = b->fallback_stale = true; /* the primary table keeps it */
    }
    return SL_OK;
}

/* --- usable set ----------------------------------------------------------------------- */

static void refresh_usable(struct balancer *b)
{
    if (!b->usable_stale)
        return;
    b->nusable = 0;
    for (int i = 0; i < BALANCER_MAX; i++) {
        struct backend *be = &b->be[i];
        be->current = 0; /* a new usable set starts a new smooth-WRR cycle */
        b->pos[i] = -1;
        if (be->name[0] != '\0' && be->eligible && be->weight > 0) {
            b->pos[i] = (int16_t)b->nusable;
            b->usable[b->nusable++] = i;
        }
    }
    b->usable_stale = false;
}

/* After refresh_usable. */
static bool is_usable(const struct balancer *b, int idx)
{
    return idx >= 0 && idx < BALANCER_MAX && b->pos[idx] >= 0;
}

/* --- pickers: called with >= 2 usable backends and exclude usable or -1, so a usable
 * backend other than exclude always exists. ---------------------------------------------- */

/* Position in usable[] of the first backend at or after the cursor, wrapping to 0. */
static int rotation_start(const struct balancer *b)
{
    for (int k = 0; k < b->nusable; k++)
        if (b->usable[k] >= b->cursor)
            return k;
    return 0;
}

static int pick_round_robin(struct balancer *b, const void *key, size_t len, int exclude)
{
    (void)key;
    (void)len;
    int k = rotation_start(b);
    int idx = b->usable[k];
    if (idx == exclude)
        idx = b->usable[(k + 1) % b->nusable];
    b->cursor = idx + 1;
    return idx;
}

/* in_flight(a) / weight(a) < in_flight(c) / weight(c), exactly. */
static bool fewer_conns(const struct backend *a, const struct backend *c)
{
    return (uint64_t)a->in_flight * c->weight < (uint64_t)c->in_flight * a->weight;
}

static int pick_least_conn(struct balancer *b, const void *key, size_t len, int exclude)
{
    (void)key;
    (void)len;
    int start = rotation_start(b), best = -1;
    /* Scanning from the cursor and keeping the first minimum rotates ties. */
    for (int k = 0; k < b->nusable; k++) {
        int i = b->usable[(start + k) % b->nusable];
        if (i != exclude && (best < 0 || fewer_conns(&b->be[i], &b->be[best])))
            best = i;
    }
    b->cursor = best + 1;
    return best;
}

/* nginx ngx_http_upstream_get_peer, with effective_weight = weight. */
static int pick_weighted(struct balancer *b, const void *key, size_t len, int exclude)
{
    (void)key;
    (void)len;
    int64_t total = 0;
    int best = -1;
    for (int k = 0; k < b->nusable; k++) {
        int i = b->usable[k];
        if (i == exclude)
            continue;
        struct backend *be = &b->be[i];
        be->current += be->weight;
        total += be->weight;
        if (best < 0 || be->current > b->be[best].current)
            best = i;
    }
    b->be[best].current -= total;
    return best;
}

/* The r-th usable backend, exclude skipped. */
static int nth_candidate(const struct balancer *b, int r, int exclude)
{
    if (exclude >= 0 && r >= b->pos[exclude])
        r++;
    return b->usable[r];
}

/* Stand-in latency for backends without a sample: the mean of those with one. */
static double mean_ewma(const struct balancer *b)
{
    double sum = 0;
    int n = 0;
    for (int k = 0; k < b->nusable; k++) {
        const struct backend *be = &b->be[b->usable[k]];
        if (be->has_ewma) {
            sum += be->ewma_us;
            n++;
        }
    }
    return n > 0 ? sum / n : 1.0;
}

static double p2c_cost(const struct backend *be, double unset_ewma_us)
{
    double ewma = be->has_ewma ? be->ewma_us : unset_ewma_us;
    if (ewma < 1.0)
        ewma = 1.0;
    return ewma * ((double)be->in_flight + 1) / be->weight;
}

static int pick_p2c(struct balancer *b, const void *key, size_t len, int exclude)
{
    (void)key;
    (void)len;
    int n = b->nusable - (exclude >= 0);
    if (n == 1)
        return nth_candidate(b, 0, exclude);
    /* n <= BALANCER_MAX: the modulo bias is below 2^-55. */
    int r1 = (int)(b->rnd(b->rnd_arg) % (uint64_t)n);
    int r2 = (int)(b->rnd(b->rnd_arg) % (uint64_t)(n - 1));
    if (r2 >= r1)
        r2++; /* distinct from r1, uniform over the others */
    int first = nth_candidate(b, r1, exclude), second = nth_candidate(b, r2, exclude);
    const struct backend *bf = &b->be[first], *bs = &b->be[second];
    double unset = (bf->has_ewma && bs->has_ewma) ? 0 : mean_ewma(b);
    return p2c_cost(bs, unset) < p2c_cost(bf, unset) ? second : first;
}

/* --- Maglev --------------------------------------------------------------------------- */

static int member_cmp(const void *x, const void *y)
{
    const struct maglev_member *a = x, *c = y;
    return strcmp(a->name, c->name);
}

/* Members sorted by name (placement must not depend on indexes); returns how many. */
static int maglev_members(struct balancer *b, bool usable_only)
{
    int n = 0;
    uint64_t m = b->table_size;
    for (int i = 0; i < BALANCER_MAX; i++) {
        const struct backend *be = &b->be[i];
        if (be->name[0] == '\0' || be->weight == 0 || (usable_only && !is_usable(b, i)))
            continue;
        size_t len = strlen(be->name);
        struct maglev_member *mm = &b->scratch[n++];
        mm->name = be->name;
        mm->idx = i;
        mm->weight = be->weight;
        mm->offset = (uint32_t)(hash64_seeded(SEED_OFFSET, be->name, len) % m);
        mm->skip = (uint32_t)(hash64_seeded(SEED_SKIP, be->name, len) % (m - 1) + 1);
        mm->next = 0;
        mm->target = 0;
    }
    qsort(b->scratch, (size_t)n, sizeof(b->scratch[0]), member_cmp);
    return n;
}

/* The member's next preferred free entry. skip < m and m prime make (offset + j * skip)
 * mod m, j = 0 .. m-1, visit every entry once; entries are never freed during a fill, so
 * a free one is always ahead of `next` while the table is not full. */
static void maglev_claim(int16_t *table, uint64_t m, struct maglev_member *mm)
{
    uint64_t c;
    do {
        c = (mm->offset + (uint64_t)mm->next * mm->skip) % m;
        mm->next++;
    } while (table[c] >= 0);
    table[c] = (int16_t)mm->idx;
}

/* Maglev population with Envoy's weighted turns: in turn t a member claims an entry when
 * t * weight >= target, then target += max weight; so it claims ~weight/max of the turns. */
static void maglev_fill(struct balancer *b, int16_t *table, bool usable_only)
{
    uint64_t m = b->table_size, filled = 0;
    int n = maglev_members(b, usable_only);
    unsigned wmax = 0;
    for (int k = 0; k < n; k++)
        wmax = b->scratch[k].weight > wmax ? b->scratch[k].weight : wmax;
    for (uint64_t p = 0; p < m; p++)
        table[p] = -1;
    for (uint64_t turn = 1; n > 0 && filled < m; turn++) {
        for (int k = 0; k < n && filled < m; k++) {
            struct maglev_member *mm = &b->scratch[k];
            if (turn * mm->weight < mm->target)
                continue;
            mm->target += wmax;
            maglev_claim(table, m, mm);
            filled++;
        }
    }
}

static const int16_t *maglev_table(struct balancer *b, bool fallback)
{
    bool *stale = fallback ? &b->fallback_stale : &b->table_stale;
    int16_t *table = fallback ? b->fallback : b->table;
    if (*stale) {
        maglev_fill(b, table, fallback);
        *stale = false;
    }
    return table;
}

static int pick_hash(struct balancer *b, const void *key, size_t len, int exclude)
{
    if (!key)
        return pick_round_robin(b, key, len, exclude);
    assert(b->table && b->fallback);
    uint64_t m = b->table_size;
    uint64_t p = hash64_seeded(SEED_KEY, key, len) % m;
    int idx = maglev_table(b, false)[p];
    if (!is_usable(b, idx))
        idx = maglev_table(b, true)[p];
    if (idx != exclude)
        return idx;
    /* Double hashing through the fallback table until an entry is not exclude: the same
     * key always probes the same way; a step drawn per key spreads the retries over the
     * others by share (the neighbours of an entry are not independent of its owner: linear
     * probing gave one of four backends 21% of the retries instead of 25%). step < m and
     * m prime visit every entry, and another usable backend owns some. */
    uint64_t step = hash64_seeded(SEED_RETRY, key, len) % (m - 1) + 1;
    const int16_t *fb = maglev_table(b, true);
    do
        p = (p + step) % m;
    while (fb[p] == exclude);
    return fb[p];
}

/* --- picking -------------------------------------------------------------------------- */

typedef int (*pick_fn)(struct balancer *b, const void *key, size_t len, int exclude);

static const pick_fn pickers[] = {
    [BALANCER_ROUND_ROBIN] = pick_round_robin,
    [BALANCER_WEIGHTED] = pick_weighted,
    [BALANCER_LEAST_CONN] = pick_least_conn,
    [BALANCER_P2C] = pick_p2c,
    [BALANCER_HASH_IP] = pick_hash,
    [BALANCER_HASH_HEADER] = pick_hash,
};

int balancer_pick(struct balancer *b, const void *key, size_t key_len, int exclude)
{
    refresh_usable(b);
    if (b->nusable == 0)
        return -1;
    if (!is_usable(b, exclude))
        exclude = -1;
    int idx = b->nusable == 1 ? b->usable[0] : pickers[b->alg](b, key, key_len, exclude);
    b->be[idx].picks++;
    return idx;
}

void balancer_started(struct balancer *b, int idx)
{
    struct backend *be = backend_mut(b, idx);
    if (be && be->in_flight < UINT32_MAX)
        be->in_flight++;
}

void balancer_finished(struct balancer *b, int idx, uint64_t latency_us, bool ok)
{
    struct backend *be = backend_mut(b, idx);
    if (!be)
        return;
    if (be->in_flight > 0)
        be->in_flight--;
    if (!ok)
        return;
    if (!be->has_ewma) {
        be->ewma_us = (double)latency_us;
        be->has_ewma = true;
    } else {
        be->ewma_us += b->alpha * ((double)latency_us - be->ewma_us);
    }
}

/* --- accessors ------------------------------------------------------------------------ */

const char *balancer_name(const struct balancer *b, int idx)
{
    const struct backend *be = backend_at(b, idx);
    return be ? be->name : NULL;
}

unsigned balancer_weight(const struct balancer *b, int idx)
{
    const struct backend *be = backend_at(b, idx);
    return be ? be->weight : 0;
}

bool balancer_is_eligible(const struct balancer *b, int idx)
{
    const struct backend *be = backend_at(b, idx);
    return be && be->eligible;
}

unsigned balancer_in_flight(const struct balancer *b, int idx)
{
    const struct backend *be = backend_at(b, idx);
    return be ? be->in_flight : 0;
}

uint64_t balancer_picks(const struct balancer *b, int idx)
{
    const struct backend *be = backend_at(b, idx);
    return be ? be->picks : 0;
}

double balancer_ewma_us(const struct balancer *b, int idx)
{
    const struct backend *be = backend_at(b, idx);
    return be ? be->ewma_us : 0;
}

size_t balancer_size(const struct balancer *b)
{
    return b->nbackends;
}

/* --- retry budget --------------------------------------------------------------------- */

int retry_budget_init(struct retry_budget *rb, double ratio, unsigned min_concurrent)
{
    if (!(ratio >= 0 && ratio <= 1))
        return SL_EINVAL;
    *rb = (struct retry_budget){.ratio = ratio, .min_concurrent = min_concurrent};
    return SL_OK;
}

bool retry_budget_allow(const struct retry_budget *rb)
{
    if (rb->active_retries < rb->min_concurrent)
        return true;
    /* ratio × active_requests in millionths, rounded: 0.1 × 30 is 3.0000000000000004 in
     * doubles and must allow 3 retries, not a 4th. At most 2^32 × 10^6 < 2^53: exact. */
    uint64_t limit_millionths = (uint64_t)(rb->ratio * rb->active_requests * 1e6 + 0.5);
    return (uint64_t)rb->active_retries * 1000000 < limit_millionths;
}
