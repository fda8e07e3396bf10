#include "hashring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* FNV-1a 64 (Fowler/Noll/Vo, draft-eastlake-fnv) */
#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME  0x100000001b3ULL

struct hashring_point {
    uint64_t hash;
    const char *name; /* owner's name, for an order-independent tie-break */
    int node;
};

struct hashring {
    unsigned vnodes;
    size_t nnodes;
    char *names[HASHRING_MAX_NODES]; /* NULL for a free index */
    struct hashring_point *points;   /* sorted by (hash, name) */
    size_t npoints;
};

uint64_t hash64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = FNV64_OFFSET;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV64_PRIME;
    }
    /* FNV-1a mixes the last bytes poorly into the high bits, and keys here often differ
     * only at the end ("link:1", "link:2"); murmur3's fmix64 spreads every input bit. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

struct hashring *hashring_new(unsigned vnodes_per_node)
{
    if (vnodes_per_node == 0 || vnodes_per_node > HASHRING_MAX_VNODES)
        return NULL;
    struct hashring *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->vnodes = vnodes_per_node;
    return r;
}

void hashring_free(struct hashring *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < HASHRING_MAX_NODES; i++)
        free(r->names[i]);
    free(r->points);
    free(r);
}

static int hashring_find(const struct hashring *r, const char *name)
{
    for (int i = 0; i < HASHRING_MAX_NODES; i++)
        if (r->names[i] && strcmp(r->names[i], name) == 0)
            return i;
    return -1;
}

static int point_cmp(const void *a, const void *b)
{
    const struct hashring_point *pa = a, *pb = b;
    if (pa->hash != pb->hash)
        return pa->hash < pb->hash ? -1 : 1;
    return strcmp(pa->name, pb->name);
}

int hashring_add(struct hashring *r, const char *name)
{
    size_t name_len = strnlen(name, HASHRING_NAME_MAX + 1);
    if (name_len == 0 || name_len > HASHRING_NAME_MAX)
        return SL_EINVAL;
    if (hashring_find(r, name) >= 0)
        return SL_EEXISTS;
    int idx = 0;
    while (idx < HASHRING_MAX_NODES && r->names[idx])
        idx++;
    if (idx == HASHRING_MAX_NODES)
        return SL_ERANGE;

    char *copy = strdup(name);
    if (!copy)
        return SL_ENOMEM;
    struct hashring_point *pts = realloc(r->points, (r->npoints + r->vnodes) * sizeof(*r->points));
    if (!pts)
        goto err_free_copy;
    r->points = pts;

    /* "name#i": name (<= HASHRING_NAME_MAX) + '#' + up to 4 digits + NUL. */
    char label[HASHRING_NAME_MAX + 16];
    for (unsigned i = 0; i < r->vnodes; i++) {
        int n = snprintf(label, sizeof(label), "%s#%u", name, i);
        struct hashring_point *p = &r->points[r->npoints + i];
        p->hash = hash64(label, (size_t)n);
        p->name = copy;
        p->node = idx;
    }
    r->npoints += r->vnodes;
    qsort(r->points, r->npoints, sizeof(*r->points), point_cmp);
    r->names[idx] = copy;
    r->nnodes++;
    return idx;

err_free_copy:
    free(copy);
    return SL_ENOMEM;
}

int hashring_remove(struct hashring *r, const char *name)
{
    int idx = hashring_find(r, name);
    if (idx < 0)
        return SL_ENOTFOUND;
    /* Compacting in place keeps the remaining points sorted. */
    size_t kept = 0;
    for (size_t i = 0; i < r->npoints; i++)
        if (r->points[i].node != idx)
            r->points[kept++] = r->points[i];
    r->npoints = kept;
    free(r->names[idx]);
    r->names[idx] = NULL;
    r->nnodes--;
    return SL_OK;
}

int hashring_lookup(const struct hashring *r, const void *key, size_t len)
{
    if (r->npoints == 0)
        return -1;
    uint64_t h = hash64(key, len);
    /* First point with hash >= h; past the last point wraps to the first. */
    size_t lo = 0, hi = r->npoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->points[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r->points[lo == r->npoints ? 0 : lo].node;
}

const char *hashring_node_name(const struct hashring *r, int idx)
{
    if (idx < 0 || idx >= HASHRING_MAX_NODES)
        return NULL;
    return r->names[idx];
}

size_t hashring_size(const struct hashring *r)
{
    return r->nnodes;
}

static inline uint64_t rotl64(uint64_t x, int r)
{
    return x << r | x >> (64 - r);
}

static inline uint64_t mix_word(uint64_t h, uint64_t w)
{
    h ^= rotl64(w * 0xC2B2AE3D27D4EB4FULL, 31) * 0x9E3779B185EBCA87ULL;
    return rotl64(h, 27) * 0x9E3779B185EBCA87ULL + 0x85EBCA77C2B2AE63ULL;
}

uint64_t hash64_seeded(uint64_t seed, const void *data, size_t n)
{
    const unsigned char *b = data;
    uint64_t w, h = mix_word(seed, (uint64_t)n);
    if (n >= 8) { /* whole words, then the last 8 bytes (overlapping: the length is mixed in) */
        for (; n > 8; b += 8, n -= 8) {
            memcpy(&w, b, 8);
            h = mix_word(h, w);
        }
        memcpy(&w, b + n - 8, 8);
        h = mix_word(h, w);
    } else if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&hi, b, 4);
        memcpy(&lo, b + n - 4, 4);
        h = mix_word(h, (uint64_t)hi << 32 | lo);
    } else if (n) {
        h = mix_word(h, (uint64_t)b[0] << 16 | (uint64_t)b[n / 2] << 8 | b[n - 1]);
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}
