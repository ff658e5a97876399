/*
 * worker_config.h: `ferry worker`'s configuration: one table of options
 * (for the command line, the --config file and --help alike), and a pure
 * parse of argv + config file + FERRY_* environment into a checked struct
 * worker_cfg.  Pure: it starts nothing, creates nothing and logs nothing
 * (warnings are returned as text for the caller to log); it reads only the
 * config file and the secret files it is pointed at.  Unit-tested
 * (tests/unit/worker/test_worker_config.c).
 */
#ifndef FERRY_WORKER_CONFIG_H
#define FERRY_WORKER_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "../store/pagestore.h"
#include "reader.h"

#define WORKER_MAX_DIRS 16
#define WORKER_MAX_MOUNTS 64
#define WORKER_MAX_S3_DOMAINS 16
#define WORKER_MIN_CACHE_PAGES 8
#define WORKER_CFG_STRINGS 256

struct worker_cfg {
	struct pagestore_dir_cfg dirs[WORKER_MAX_DIRS];
	int ndirs;
	uint32_t page_size;
	enum pagestore_verify verify;
	int64_t scrub_rate;       /* bytes/s the scrubber checks; 0: off */
	char s3_host[256];
	int s3_port;
	char ctl_host[256];
	int ctl_port;
	const char *s3_access_key; /* NULL: no credentials configured */
	const char *s3_secret_key;
	int s3_anonymous;          /* accept unsigned requests */
	const char *s3_region;
	/* --s3-domain: virtual-host addressing, BUCKET.DOMAIN (lowercase) */
	const char *s3_domains[WORKER_MAX_S3_DOMAINS];
	int ns3_domains;
	const char *control_token; /* NULL: none */
	int64_t sync_interval_ms;
	int64_t stale_ms;          /* stale-if-error bound (0: off) */
	int64_t meta_max_entries;
	int64_t meta_max_list_bytes;
	struct reader_cfg reader;
	int64_t fetch_ahead;      /* directory fetch-ahead bound (0: off) */
	int max_conns;            /* S3 gateway connections */
	int max_conns_per_client; /* of those, from one address */
	const char *state_dir; /* mount table, worker id; default: first cache dir */
	const char *local_socket; /* NULL: <state_dir>/ferry.sock; "none": off */
	const char *mounts[WORKER_MAX_MOUNTS]; /* --mount NAME=URI */
	int nmounts;
	int log_level;
	/* Cluster (all NULL/0: a single worker, no etcd). */
	const char *etcd;         /* etcd endpoints */
	const char *cluster_name; /* default "default" */
	const char *advertise;    /* host peers and clients reach us at */
	int64_t block_size;       /* placement unit; default 64 MiB */
	int lease_ttl_s;          /* default 5 */
	/* Write-back (single worker). */
	int64_t wb_limit;         /* staged bytes at most (default 10G) */
	int pin_limit_pct;        /* pins take at most this % of capacity (80) */
	int hot_threshold;        /* reads/s of a block that make it hot (200) */
	int hot_extra;            /* more replicas a hot block gets (2) */
	int wb_parallel;          /* uploads at once (default 4) */
	int64_t wb_bandwidth;     /* bytes/s of uploads; 0: no cap */
	/* What the parse learned that the caller should say (one line each,
	 * NUL-separated), e.g. a secret given on the command line. */
	char warnings[1024];
	/* Strings the parse allocated (config file values, secrets). */
	char *strings[WORKER_CFG_STRINGS];
	int nstrings;
};

/*
 * Parses into cfg (defaults first).  0: ready to start; 1: --help was
 * asked (nothing else done); -1: *err (malloc'd) says what is wrong, in
 * the user's terms (the option as they wrote it).  Secrets given on the
 * command line are copied and the argv strings blanked, so they do not
 * stay in /proc/PID/cmdline.  Free with worker_config_free either way.
 */
int worker_config_parse(int argc, char **argv, struct worker_cfg *cfg,
    char **err);
void worker_config_free(struct worker_cfg *cfg);
void worker_usage(FILE *f);

/* 1 if h names the loopback interface. */
int host_is_loopback(const char *h);

#endif
