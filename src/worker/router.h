/*
 * router.h: the cluster read path.  A byte range of an object is cut at
 * block boundaries; each block is read where placement puts it: from this
 * worker's own reader when this worker holds one of the block's replicas,
 * else streamed from a replica's control API (GET /v1/data with
 * X-Ferry-Hop, which the peer serves from its own cache or the UFS, never
 * forwarding again).  When a peer does not answer or breaks off, the rest
 * of the block is asked of the next candidate: the other replicas, then the
 * following workers in the block's hash order, and last this worker itself,
 * which reads the UFS.  So a read fails only when no worker and no UFS can
 * serve it.  A peer that failed is skipped for a few seconds.
 *
 * Without a cluster (cl NULL) router_read is reader_read.
 *
 * The router never touches metadata: a peer that has another version
 * answers 412, and router_read returns -ESTALE for its caller (objget) to
 * decide.
 *
 * Threads: any request thread.  The curl handle pool, the table of failed
 * peers (suspects.c) and the hot-block table each have a mutex, never held
 * across I/O.
 */
#ifndef FERRY_ROUTER_H
#define FERRY_ROUTER_H

#include <stdint.h>

#include "../cluster/cluster.h"
#include "mounts.h"
#include "reader.h"

struct router;

struct router_stats {
	int64_t local_blocks;   /* block reads served here */
	int64_t forwarded;      /* block reads sent to a peer */
	int64_t forwarded_bytes;
	int64_t failovers;      /* a peer failed; the next candidate was asked */
	int64_t peer_errors;    /* failed peer requests */
	int64_t announce_misses; /* peers not told of a change (router_announce) */
	int64_t hot_blocks;     /* blocks hot now (read here past the threshold) */
	int64_t hot_replicas;   /* extra replicas those blocks are spread over */
	int64_t hot_reads;      /* block reads spread because their block was hot */
};

/* cl NULL: no cluster, every read is local.  token: the cluster's
 * control token (peers' /v1/data), or NULL. */
struct router *router_open(struct cluster *cl, const char *self_id,
    int64_t block_size, const char *token, struct reader *rd);
void router_close(struct router **rt);
/*
 * Hot blocks: a block this worker reads from its peers more than
 * threshold times a second (0: never) is spread over extra more replicas
 * (up to every worker) until it has stayed under the threshold for
 * ROUTER_HOT_COOL_S: each reader rotates over the wider set, whose new
 * members cache the block at their first read, so one hot file does not
 * pin one worker's NIC.  Set before reads start.
 */
#define ROUTER_HOT_COOL_S 10
void router_set_hot(struct router *rt, int threshold, int extra);
/* How many of the blocks of (m, path), size bytes, are hot here now. */
int64_t router_hot_blocks(struct router *rt, const struct mount *m,
    const char *path, int64_t size);
/* Joins the router to a cluster (once, after the servers started: until
 * then every read is local). */
void router_set_cluster(struct router *rt, struct cluster *cl);

/*
 * reader_read's contract, cluster-wide: bytes [off, off+len) of (m, path)
 * at version st go to sink; *sent counts them.  -ESTALE: the object is no
 * longer at version st (here or at the peer).  local_only: serve from this
 * worker (a peer's forwarded request).
 */
int router_read(struct router *rt, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t off, int64_t len,
    const struct read_sink *sink, int64_t *sent, int local_only);

/* Is byte off of (m, path) served by this worker (no cluster, or one of
 * its block's replicas is this worker)? */
int router_is_local(struct router *rt, struct mount *m, const char *path,
    int64_t off);
/* The same with replicas holders instead of the mount's (a load job's
 * --replicas: copies beyond the mount's, for failover); <= 0: the mount's. */
int router_holds(struct router *rt, struct mount *m, const char *path,
    int64_t off, int replicas);

/*
 * A write or delete of this worker changed (m, path): tells every other
 * member (POST /v1/invalidate), which forgets what it cached about it, so
 * that a read through any worker sees the change at once.  Waits for each
 * answer, at most ROUTER_ANNOUNCE_MS a peer; returns how many were not
 * told (logged; they see the change within their sync interval).
 */
#define ROUTER_ANNOUNCE_MS 2000L
int router_announce(struct router *rt, const struct mount *m, const char *path);

int64_t router_block_size(const struct router *rt);
void router_get_stats(const struct router *rt, struct router_stats *out);

#endif
