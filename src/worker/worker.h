/*
 * worker.h: the worker process: its configuration and the subsystems it
 * wires together (page store, metadata cache, read path, mount table, the
 * S3 gateway and the control API).  One struct worker per process; its
 * fields are set up before the servers start and read-only afterwards.
 */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

#include <stdint.h>
#include <string.h>

#include "../http/http_server.h"
#include "../store/pagestore.h"
#include "meta.h"
#include "mounts.h"
#include "reader.h"
#include "router.h"
#include "worker_config.h"

struct objget;
struct objput;
struct policy;
struct loader;

struct localfd;

struct worker {
	struct worker_cfg cfg; /* parsed by worker_config_parse */
	int s3_loopback;  /* the gateway is bound to loopback only */
	int ctl_loopback; /* the control API is bound to loopback only */
	int s3_verify;    /* signatures are checked */
	struct pagestore *ps;
	struct policy *pol;  /* pins and TTLs */
	struct meta_cache *mc;
	struct reader *rd;
	struct mount_table *mt;
	struct http_server *s3;
	struct http_server *ctl;
	struct localfd *lfd; /* zero-copy local reads; NULL when off */
	struct cluster *cl;  /* NULL: a single worker */
	struct router *rt;   /* the read path, cluster-wide or not */
	struct objget *og;   /* the owner of every object read */
	struct dirahead *da; /* directory fetch-ahead (NULL: off) */
	struct objput *op;   /* the owner of every object write */
	struct mpu *mpu;     /* multipart uploads staged in <state_dir>/uploads */
	struct loader *ld;   /* `ferry load` jobs (<state_dir>/loads) */
	char id[CLUSTER_ID_MAX + 1]; /* this worker's id (kept in state_dir) */
	int64_t started;
};

/* `ferry worker`: parse, start, wait for SIGINT/SIGTERM, stop. */
int worker_main(int argc, char **argv);
/* Starts every subsystem of w (w->cfg set) in dependency order.  0, or -1
 * with the cause printed; either way worker_stop undoes what started. */
int worker_start(struct worker *w);
/* Stops whatever worker_start started, in reverse order (idempotent). */
void worker_stop(struct worker *w);

/* w->cl, set once after the servers start (so read it with this). */
static inline struct cluster *
worker_cluster(struct worker *w)
{
	return __atomic_load_n(&w->cl, __ATOMIC_ACQUIRE);
}

/* The S3 secret of an access key, for signature checks (sigv4_secret_fn;
 * arg is the struct worker); NULL for an unknown key. */
static inline const char *
worker_s3_secret(void *arg, const char *access_key)
{
	const struct worker *w = (const struct worker *)arg;
	if (w->cfg.s3_access_key && strcmp(access_key, w->cfg.s3_access_key) == 0)
		return w->cfg.s3_secret_key;
	return NULL;
}

/* Handlers (s3_gateway.c, control.c); arg is the struct worker. */
void s3_gateway_handle(struct http_conn *c, const struct http_request *req, void *arg);
void control_handle(struct http_conn *c, const struct http_request *req, void *arg);

#endif
