/*
 * loader.h: `ferry load`: jobs that bring everything under a path into the
 * cache before anyone reads it.  A job lists the path page by page (never
 * whole in memory), cuts each object into pages, and has `parallel` loader
 * threads read the pages that are not cached yet through objget (so a
 * page is fetched, stored and, in a cluster, cached by the worker
 * placement gives it, exactly as a client's read would), at most
 * `bandwidth` bytes per second from the under-stores.  With verify, a
 * second pass reads every object again (each page's CRC is checked as it
 * is read) and, for an object whose ETag is a plain MD5, checks the MD5 of
 * the whole object; an object that differs is dropped and fetched again.
 *
 * In a cluster a job is the cluster's (its record in etcd; cluster_sync.c)
 * and each worker runs its part, a job with local set, under its id.
 *
 * Jobs are kept in <state_dir>/loads/<id>.json, rewritten every second:
 * after a restart a job that was running resumes after the last object
 * whose pages were all done (a page cached already is never fetched
 * again).  Finished jobs stay listed until the worker restarts with them
 * older than a day.
 *
 * Threads: per running job one lister (the producer) and `parallel`
 * loaders; the control API's threads start, stop and read jobs.  Each job
 * has one mutex (leaf: never held across a read, a listing or a file
 * write); the loader's list of jobs has its own, taken before a job's.
 */
#ifndef FERRY_LOADER_H
#define FERRY_LOADER_H

#include <stdint.h>

#include "../common/dbuf.h"
#include "mounts.h"

struct loader;
struct objget;
struct meta_cache;
struct reader;
struct mount_table;

#define LOAD_PARALLEL_MAX 64
#define LOAD_JOBS_MAX 64

struct router;
struct loader *loader_open(const char *state_dir, struct mount_table *mt,
    struct meta_cache *mc, struct reader *rd, struct router *rt,
    struct objget *og, char **err);
/* Resumes the jobs that were running when the worker stopped. */
void loader_resume(struct loader *l);
/* Stops every job's threads (their state is saved: they resume at the
 * next start) and frees everything. */
void loader_close(struct loader **l);

struct load_opts {
	int64_t bandwidth; /* bytes per second from the under-stores; 0: no cap */
	int parallel;      /* objects read at once (1..64; default 8) */
	int verify;
	int local;         /* only the pages placement gives this worker (a
	                    * cluster's job: every worker runs one) */
	int replicas;      /* with local: copies to load (the first N holders
	                    * in placement order); 0: the mount's replicas */
	char id[17];       /* "" (a new id), or the cluster job's */
};

/*
 * Starts a job for (m, key); its id (16 hex digits) into id.  A job of the
 * same path still running is returned instead (-EEXIST, its id in id).
 * -EAGAIN: too many jobs running (a finished one makes room).
 */
int loader_start(struct loader *l, struct mount *m, const char *key,
    const struct load_opts *o, char id[17]);
/* Called on the job's thread when a job ends (done, failed or stopped),
 * with its record (the JSON saved in the state dir).  Set before any job
 * starts. */
void loader_set_end_hook(struct loader *l, void (*fn)(void *arg,
    const char *id, const char *state, const char *record), void *arg);
/* A running job's bandwidth changed (a cluster job's share, as parts
 * start and end): 1 if job id runs here (bw set), else 0. */
int loader_set_bandwidth(struct loader *l, const char *id, int64_t bw);
/* Does this worker have job id (in any state)? */
int loader_has(struct loader *l, const char *id);
/* Stops a running job (it can be started again): 0 or -ENOENT. */
int loader_stop(struct loader *l, const char *id);
/* {"jobs":[{"id","path","state","files_done","files_total","bytes_done",
 * "bytes_total","bytes_fetched","bytes_cached_before","files_failed",
 * "files_not_cached","verify_mismatches","listing_done","rate","eta_s",
 * "elapsed_s","bandwidth","verify","last_error"}]} (only job id if set). */
void loader_json(struct loader *l, const char *id, struct dbuf *b);

#endif
