/*
 * worker.h: the worker process: its configuration and the subsystems it
 * wires together (page store, metadata cache, read path, mount table, the
 * S3 gateway and the control API).  One struct worker per process; its
 * fields are set up before the servers start and read-only afterwards.
 */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

#include <stdint.h>

#include "../http/http_server.h"
#include "../store/pagestore.h"
#include "meta.h"
#include "mounts.h"
#include "reader.h"
#include "router.h"

struct localfd;

#define WORKER_MAX_DIRS 16

struct worker_cfg {
	struct pagestore_dir_cfg dirs[WORKER_MAX_DIRS];
	int ndirs;
	uint32_t page_size;
	enum pagestore_verify verify;
	char s3_host[256];
	int s3_port;
	char ctl_host[256];
	int ctl_port;
	const char *s3_access_key; /* NULL: no credentials configured */
	const char *s3_secret_key;
	int s3_anonymous;          /* accept unsigned requests */
	const char *s3_region;
	const char *control_token; /* NULL: none */
	int64_t sync_interval_ms;
	int64_t meta_max_entries;
	int64_t meta_max_list_bytes;
	struct reader_cfg reader;
	int max_conns;
	int max_conns_per_client; /* 0: the HTTP server's default (1024) */
	const char *state_dir; /* mount table; default: first cache dir */
	const char *config_file;
	const char *local_socket; /* NULL: <state_dir>/ferry.sock; "none": off */
	/* Cluster (all NULL/0: a single worker, no etcd). */
	const char *etcd;         /* etcd endpoints */
	const char *cluster_name; /* default "default" */
	const char *advertise;    /* host peers and clients reach us at */
	int64_t block_size;       /* placement unit; default 64 MiB */
	int lease_ttl_s;          /* default 5 */
};

struct worker {
	struct worker_cfg cfg;
	int s3_loopback;  /* the gateway is bound to loopback only */
	int ctl_loopback; /* the control API is bound to loopback only */
	int s3_verify;    /* signatures are checked */
	struct pagestore *ps;
	struct meta_cache *mc;
	struct reader *rd;
	struct mount_table *mt;
	struct http_server *s3;
	struct http_server *ctl;
	struct localfd *lfd; /* zero-copy local reads; NULL when off */
	struct cluster *cl;  /* NULL: a single worker */
	struct router *rt;   /* the read path, cluster-wide or not */
	char id[CLUSTER_ID_MAX + 1]; /* this worker's id (kept in state_dir) */
	int64_t started;
};

int worker_main(int argc, char **argv);

/* w->cl, set once after the servers start (so read it with this). */
static inline struct cluster *
worker_cluster(struct worker *w)
{
	return __atomic_load_n(&w->cl, __ATOMIC_ACQUIRE);
}

/* Handlers (s3_gateway.c, control.c); arg is the struct worker. */
void s3_gateway_handle(struct http_conn *c, const struct http_request *req, void *arg);
void control_handle(struct http_conn *c, const struct http_request *req, void *arg);

#endif
