/*
 * cluster_sync.h: a worker's pins, TTLs and load jobs kept in step with the
 * cluster's records in etcd (cluster_sync.c).
 */
#ifndef FERRY_CLUSTER_SYNC_H
#define FERRY_CLUSTER_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "../common/dbuf.h"
#include "../ufs/ufs.h"
#include "mounts.h"

struct worker;

/* A load job's record (loads/<id>): what every worker needs to run its
 * part.  state: running | stopped | done | failed. */
struct csync_load {
	char id[17];
	char mount[MOUNT_NAME_MAX + 1];
	char key[UFS_KEY_MAX + 1];
	char state[16];
	int64_t bandwidth; /* the whole job's, bytes per second (0: no cap) */
	int parallel;
	int verify;
	int replicas; /* copies of each block (0: the mount's) */
};
int csync_load_record(const char *json, size_t n, struct csync_load *out);
void csync_load_json(const struct csync_load *j, struct dbuf *b);
/* Starts this worker's part of job j (the blocks placement gives it, at
 * its share of the bandwidth): 0 (started, or running already), -ENOENT
 * (no such mount here) or loader_start's error. */
int csync_load_start_here(struct worker *w, const struct csync_load *j);

/* The cluster's callbacks (struct cluster_cfg on_rule / on_load). */
void csync_on_rule(void *arg, const char *name, const char *json, size_t n);
void csync_on_load(void *arg, const char *name, const char *json, size_t n);
/* The worker has joined (reads are routed): jobs seen meanwhile start. */
void csync_joined(struct worker *w);
/* The loader's end hook (loader_set_end_hook; arg: the worker). */
void csync_load_ended(void *arg, const char *id, const char *state,
    const char *record);

#endif
