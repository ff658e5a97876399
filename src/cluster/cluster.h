/*
 * cluster.h: cluster membership and cluster-wide state, kept in etcd.
 *
 * Keys, under "/ferry/<cluster name>/":
 *   workers/<id>  one per live worker, JSON (struct member's fields), put
 *                 with a lease of lease_ttl_s that the worker keeps alive;
 *                 a dead worker's key vanishes when its lease runs out.
 *   mounts/<name> the cluster's mount table, JSON {"name","uri","options"}
 *                 as the worker's mount table takes it (secrets included:
 *                 etcd is the cluster's own store; no API answers them).
 *   rules/<hash>  pin and TTL rules (policy.c's records), one per (mount,
 *                 path prefix).
 *   loads/<id>    load jobs (loader.c's records); loads/<id>.<worker id>
 *                 each worker's progress in job <id>.
 * The tables other than workers/ are opaque here: whoever writes a record
 * reads it back through the table's callback, on every worker.
 *
 * A struct cluster runs two threads: one registers this worker (when cfg
 * self is set) and keeps its lease alive, re-granting and re-putting when
 * the lease was lost (etcd restarted, a long partition); the other lists
 * the prefix, then watches it from the next revision, keeping an immutable
 * snapshot of the members (struct cluster_view) and calling on_mount,
 * on_rule and on_load for changes to those tables.  When etcd cannot be reached, both retry with
 * backoff and the last view stays in force: nobody stops serving because
 * etcd is down.  After a watch is lost, a fresh list is compared with what
 * was seen, so deletions made meanwhile are reported too.
 *
 * Thread-safety: every function may be called from any thread.  Views are
 * reference-counted and never change once published.
 */
#ifndef FERRY_CLUSTER_H
#define FERRY_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#define CLUSTER_ID_MAX 32   /* a worker id: 32 lowercase hex digits */
#define CLUSTER_ADDR_MAX 271 /* "host:port" */
#define CLUSTER_NAME_MAX 63

struct member {
	char id[CLUSTER_ID_MAX + 1];
	char ctl[CLUSTER_ADDR_MAX + 1]; /* control API, "host:port" */
	char s3[CLUSTER_ADDR_MAX + 1];  /* S3 gateway, "host:port" */
	int64_t capacity;               /* cache bytes */
	int64_t started;                /* unix seconds the process started */
};

struct cluster_view {
	int refs;        /* atomic */
	int64_t version; /* increases with every published view */
	int etcd_ok;     /* etcd answered the last call */
	int n;
	struct member m[]; /* sorted by id */
};

struct cluster_cfg {
	const char *etcd;    /* endpoints, as etcd_open() */
	const char *name;    /* cluster name: [a-z0-9][a-z0-9._-]{0,62} */
	int lease_ttl_s;     /* default 5 (0) */
	const struct member *self; /* this worker; NULL for a client */
	/* Mount table (workers): called on the watch thread for each mount
	 * put (json, n: its value) or deleted (json NULL); at start for every
	 * mount there is.  May be NULL. */
	void (*on_mount)(void *arg, const char *name, const char *json, size_t n);
	/* The same for rules/ and loads/ (also called at start for every
	 * record there is).  May be NULL. */
	void (*on_rule)(void *arg, const char *name, const char *json, size_t n);
	void (*on_load)(void *arg, const char *name, const char *json, size_t n);
	/* Called on the watch thread after each new view.  May be NULL. */
	void (*on_view)(void *arg, const struct cluster_view *v);
	void *arg;
};

struct cluster;

/*
 * Starts membership.  Tries etcd once, briefly: if it answers, the first
 * view and mount table are in place when this returns; if not, the view
 * holds self alone (or nobody, for a client) and the threads keep trying.
 * NULL + *err (malloc'd) only on bad configuration.
 */
struct cluster *cluster_open(const struct cluster_cfg *cfg, char **err);
/* Stops the threads and revokes the lease (a clean leave). */
void cluster_close(struct cluster **c);

/* The current view, referenced; never NULL. */
struct cluster_view *cluster_view_get(struct cluster *c);
void cluster_view_release(struct cluster_view **v);
/* Index of the member with this id in v, or -1. */
int cluster_view_find(const struct cluster_view *v, const char *id);

enum cluster_table { CLUSTER_T_MOUNT, CLUSTER_T_RULE, CLUSTER_T_LOAD,
	CLUSTER_T_N };

/* A record of a table, put (created or replaced) or deleted (-ENOENT: there
 * was none); names as mount names ([a-z0-9][a-z0-9._-]{0,62}).  0 or an
 * etcd error. */
int cluster_record_put(struct cluster *c, enum cluster_table t,
    const char *name, const char *json, size_t n);
int cluster_record_delete(struct cluster *c, enum cluster_table t,
    const char *name);
/* Asks etcd for the table's records whose names start with name_prefix,
 * calling fn for each (name not NUL-terminated; non-zero stops and is
 * returned).  0 or an etcd error. */
int cluster_record_list(struct cluster *c, enum cluster_table t,
    const char *name_prefix,
    int (*fn)(void *arg, const char *name, size_t nlen, const char *json,
    size_t n), void *arg);

/* Cluster-wide mount table.  0, -EEXIST (create: name taken), -ENOENT
 * (delete: no such mount), or an etcd error (-ECONNREFUSED, ...). */
int cluster_mount_create(struct cluster *c, const char *name,
    const char *json, size_t n);
int cluster_mount_delete(struct cluster *c, const char *name);

/* The etcd endpoints and cluster name this was opened with. */
const char *cluster_etcd(const struct cluster *c);
const char *cluster_name(const struct cluster *c);

/* Worker ids: 32 random lowercase hex digits, kept in path (created 0600 if
 * missing), so a restarted worker keeps its place.  0 or -errno. */
int cluster_worker_id(const char *path, char id[CLUSTER_ID_MAX + 1]);

#endif
