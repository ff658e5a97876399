/*
 * placement.h: where a block lives.  Each (mount, path, block index) is
 * placed by rendezvous hashing (highest random weight) over the members of
 * a cluster view: every member gets a score from a hash of the block's key
 * and the member's id, and the members sorted by descending score are the
 * block's order: the first R hold its replicas, the rest are the failover
 * order.  See docs/architecture.md ("Placement") for why HRW.
 *
 * Pure functions of their arguments: every worker and client with the same
 * view computes the same order, with no coordination.
 */
#ifndef FERRY_PLACEMENT_H
#define FERRY_PLACEMENT_H

#include <stdint.h>

#include "cluster.h"

#define PLACEMENT_DEFAULT_BLOCK (64LL << 20)

/* The key of block `block` of an object (mount name + path). */
uint64_t placement_key(const char *mount, const char *path, int64_t block);

/* The hash of a member id (the member's half of every score). */
uint64_t placement_member_hash(const char *id);

/* The score of a member (by its hash) for a key: higher wins. */
uint64_t placement_score(uint64_t key, uint64_t member_hash);

/*
 * Writes into order[0..max) the indexes of v's members by descending score
 * for key (ties, which need a 64-bit collision, broken by id order).
 * Returns how many were written: min(v->n, max).
 */
int placement_order(const struct cluster_view *v, uint64_t key, int *order,
    int max);

/*
 * The members to ask for a block, in order, as every reader asks them (the
 * router for a peer's block, libferry for any block): its `replicas`
 * holders first, starting at a rotating one (spin) so a hot block's
 * readers spread over them; then the other members in the block's order;
 * members the caller saw fail lately (is_suspect, may be NULL) are not
 * skipped but asked last, in the same order.  Writes member indexes into
 * out[0..max); returns how many (min(v->n, max)).
 */
int placement_candidates(const struct cluster_view *v, uint64_t key,
    int replicas, uint64_t spin, int (*is_suspect)(void *arg, int idx),
    void *arg, int *out, int max);

/* The member index that holds key first (order[0]), or -1 if v is empty. */
int placement_owner(const struct cluster_view *v, uint64_t key);

#endif
