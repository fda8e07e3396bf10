/*
 * hashring — consistent hashing with virtual nodes (Karger et al. 1997): maps a key to one
 * of a set of named nodes so that adding or removing a node moves only about 1/N of the
 * keys. It places short links on Redis shards and backs the gateway's hash balancer.
 *
 * Each node owns vnodes_per_node points on a 64-bit circle at hash64(name "#" i) for
 * i = 0 .. vnodes_per_node-1; a key belongs to the node owning the first point at or
 * after hash64(key), wrapping around. Lookup is a binary search over the sorted points.
 *
 * Invariants and contract:
 *  - hash64 is FNV-1a 64 followed by the murmur3 fmix64 finalizer. Its output is part of
 *    the on-disk contract (where data lives depends on it): it must never change.
 *  - Placement depends only on the set of node names and vnodes_per_node, not on the
 *    order nodes were added; equal point hashes are ordered by node name.
 *  - A node's index is stable until that node is removed; other removals do not shift it.
 *    A freed index may be reused by a later hashring_add.
 *  - Bounded: at most HASHRING_MAX_NODES nodes, names of 1..HASHRING_NAME_MAX bytes,
 *    1..HASHRING_MAX_VNODES virtual nodes per node.
 *  - The ring owns copies of node names. It is not thread-safe: a writer must exclude
 *    readers (or readers use a ring built once and then only read).
 */
#ifndef SLUICE_HASHRING_H
#define SLUICE_HASHRING_H

#include <stddef.h>
#include <stdint.h>

#define HASHRING_MAX_NODES  256
#define HASHRING_MAX_VNODES 1024
#define HASHRING_NAME_MAX   255

struct hashring;

/* Stable 64-bit hash of len bytes; not cryptographic (an attacker can aim keys). */
uint64_t hash64(const void *data, size_t len);
/* A seeded hash for in-memory tables that clients fill (xxHash64-style rounds, murmur3
 * fmix64 finalizer): without the seed, keys cannot be aimed at one bucket. Not stable
 * across seeds, not a MAC. The length is mixed into the seed. */
uint64_t hash64_seeded(uint64_t seed, const void *data, size_t len);

/* NULL when out of memory or vnodes_per_node is 0 or above HASHRING_MAX_VNODES. */
struct hashring *hashring_new(unsigned vnodes_per_node);
void hashring_free(struct hashring *r);
/* Returns the new node's index (>= 0), or SL_EEXISTS (name already present), SL_ERANGE
 * (HASHRING_MAX_NODES reached), SL_EINVAL (name empty or too long), SL_ENOMEM. */
int hashring_add(struct hashring *r, const char *name);
/* 0 or SL_ENOTFOUND. */
int hashring_remove(struct hashring *r, const char *name);
/* Index of the node owning key, or -1 when the ring is empty. */
int hashring_lookup(const struct hashring *r, const void *key, size_t len);
/* The name of node idx, or NULL when no node has that index. */
const char *hashring_node_name(const struct hashring *r, int idx);
/* Number of nodes (not points). */
size_t hashring_size(const struct hashring *r);

#endif
