/*
 * worker_main.c: `ferry worker`: option and config-file parsing, startup
 * of the subsystems in dependency order (page store, metadata cache, read
 * path, mount table, then the two HTTP servers), and orderly shutdown on
 * SIGINT/SIGTERM.  The main thread only waits for signals; all work runs on
 * the servers' and the read path's threads.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../cluster/cluster.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/vas.h"
#include "localfd.h"
#include "worker.h"

#define DEFAULT_CACHE_SIZE (10LL << 30)

static const char usage_text[] =
"usage: ferry worker [options]\n"
"\n"
"Runs a ferry worker: a read-through cache of under-stores (S3, local or NAS\n"
"directories) with an S3-compatible gateway and a control API.\n"
"\n"
"Cache:\n"
"  --cache-dir DIR[:SIZE]    page cache directory; repeat for several disks. SIZE\n"
"                            (e.g. 500G) is that directory's capacity; default\n"
"                            $XDG_CACHE_HOME/ferry or ~/.cache/ferry\n"
"  --cache-size SIZE         capacity of each --cache-dir given without :SIZE\n"
"                            (default 10G)\n"
"  --page-size SIZE          bytes per cached page (default 1M; 64K..64M)\n"
"  --page-verify MODE        'always': check each page's CRC32C on every read\n"
"                            (default); 'once': once per page per process\n"
"  --sync-interval DURATION  how long stat/list answers are trusted before the\n"
"                            under-store is asked again (default 60s; e.g. 500ms, 5m)\n"
"  --metadata-entries N      stat entries kept at most (default 200000)\n"
"\n"
"Under-store reads:\n"
"  --ufs-parallelism N       under-store requests in flight at most (default 32)\n"
"  --window N                pages fetched in parallel ahead of one cold read (default 8)\n"
"  --read-ahead N            pages read ahead of a sequential reader (default 8)\n"
"  --max-inflight N          page buffers at most: bounds fetch memory to\n"
"                            N x page size (default 128)\n"
"\n"
"S3 gateway:\n"
"  --s3-address HOST:PORT    listen address (default 127.0.0.1:29998)\n"
"  --s3-access-key KEY       the access key clients sign with ($FERRY_S3_ACCESS_KEY)\n"
"  --s3-secret-key SECRET    its secret ($FERRY_S3_SECRET_KEY)\n"
"  --s3-anonymous            also accept unsigned requests\n"
"  --s3-region REGION        region reported to clients (default us-east-1)\n"
"  --max-connections N       concurrent connections per server (default 4096)\n"
"  --max-connections-per-client N  of those, from one client address (an IPv6\n"
"                            /64) at most (default 1024); at either cap the oldest\n"
"                            idle connection is closed to make room\n"
"    Without keys, a gateway bound to loopback accepts every request; bound\n"
"    beyond loopback it needs keys or --s3-anonymous, or the worker will not start.\n"
"\n"
"Control API and metrics:\n"
"  --control-address HOST:PORT  listen address (default 127.0.0.1:29999)\n"
"  --control-token TOKEN     required for mount/unmount ($FERRY_CONTROL_TOKEN);\n"
"                            mandatory when the control address is not loopback\n"
"\n"
"Cluster (see docs/architecture.md):\n"
"  --etcd URLS               join the cluster kept in etcd (http://HOST:2379[,...]);\n"
"                            without it the worker runs alone\n"
"  --cluster NAME            cluster name: workers and mounts live under\n"
"                            /ferry/NAME/ in etcd (default 'default')\n"
"  --advertise HOST          the address peers and clients reach this worker at\n"
"                            (default: the listen host; needed if that is 0.0.0.0)\n"
"  --block-size SIZE         placement unit: each block of a file is cached on the\n"
"                            worker(s) it hashes to (default 64M; a multiple of\n"
"                            the page size; the same on every worker)\n"
"  --lease-ttl SECONDS       membership lease: a dead worker leaves the cluster\n"
"                            this long after its last keep-alive (default 5)\n"
"\n"
"Other:\n"
"  --mount NAME=URI          mount an under-store at start if NAME is not mounted\n"
"                            (URIs with options: use `ferry mount`)\n"
"  --state-dir DIR           where the mount table lives (default: first cache dir)\n"
"  --local-socket PATH       Unix socket that hands cached page files to clients on\n"
"                            this host (ferry fuse) for zero-copy reads (default\n"
"                            STATE_DIR/ferry.sock, mode 0600); 'none' turns it off\n"
"  --config FILE             read options from FILE: one 'option = value' per line,\n"
"                            option names as above without '--'; '#' comments.\n"
"                            Command-line options override the file.\n"
"  --log-level LEVEL         error, warn, info (default) or debug\n"
"  -h, --help                this text\n";

enum {
	OPT_CACHE_DIR = 1000, OPT_CACHE_SIZE, OPT_PAGE_SIZE, OPT_PAGE_VERIFY,
	OPT_SYNC, OPT_META_ENTRIES, OPT_UFS_PAR, OPT_WINDOW, OPT_READAHEAD,
	OPT_INFLIGHT, OPT_S3_ADDR, OPT_S3_AK, OPT_S3_SK, OPT_S3_ANON,
	OPT_S3_REGION, OPT_MAXCONN, OPT_CTL_ADDR, OPT_CTL_TOKEN, OPT_MOUNT,
	OPT_STATE_DIR, OPT_CONFIG, OPT_LOG_LEVEL, OPT_LOCAL_SOCKET,
	OPT_ETCD, OPT_CLUSTER, OPT_ADVERTISE, OPT_BLOCK_SIZE, OPT_LEASE_TTL,
	OPT_MAXCONN_CLIENT,
};

static const struct option long_opts[] = {
	{"cache-dir", required_argument, 0, OPT_CACHE_DIR},
	{"cache-size", required_argument, 0, OPT_CACHE_SIZE},
	{"page-size", required_argument, 0, OPT_PAGE_SIZE},
	{"page-verify", required_argument, 0, OPT_PAGE_VERIFY},
	{"sync-interval", required_argument, 0, OPT_SYNC},
	{"metadata-entries", required_argument, 0, OPT_META_ENTRIES},
	{"ufs-parallelism", required_argument, 0, OPT_UFS_PAR},
	{"window", required_argument, 0, OPT_WINDOW},
	{"read-ahead", required_argument, 0, OPT_READAHEAD},
	{"max-inflight", required_argument, 0, OPT_INFLIGHT},
	{"s3-address", required_argument, 0, OPT_S3_ADDR},
	{"s3-access-key", required_argument, 0, OPT_S3_AK},
	{"s3-secret-key", required_argument, 0, OPT_S3_SK},
	{"s3-anonymous", no_argument, 0, OPT_S3_ANON},
	{"s3-region", required_argument, 0, OPT_S3_REGION},
	{"max-connections", required_argument, 0, OPT_MAXCONN},
	{"max-connections-per-client", required_argument, 0, OPT_MAXCONN_CLIENT},
	{"control-address", required_argument, 0, OPT_CTL_ADDR},
	{"control-token", required_argument, 0, OPT_CTL_TOKEN},
	{"mount", required_argument, 0, OPT_MOUNT},
	{"state-dir", required_argument, 0, OPT_STATE_DIR},
	{"local-socket", required_argument, 0, OPT_LOCAL_SOCKET},
	{"etcd", required_argument, 0, OPT_ETCD},
	{"cluster", required_argument, 0, OPT_CLUSTER},
	{"advertise", required_argument, 0, OPT_ADVERTISE},
	{"block-size", required_argument, 0, OPT_BLOCK_SIZE},
	{"lease-ttl", required_argument, 0, OPT_LEASE_TTL},
	{"config", required_argument, 0, OPT_CONFIG},
	{"log-level", required_argument, 0, OPT_LOG_LEVEL},
	{"help", no_argument, 0, 'h'},
	{0, 0, 0, 0},
};

struct startup {
	struct worker_cfg *cfg;
	const char *dirs[WORKER_MAX_DIRS];
	int64_t dir_sizes[WORKER_MAX_DIRS]; /* -1: use cache_size */
	int ndirs;
	int64_t cache_size;
	const char *mounts[64];
	int nmounts;
};

static int
fail(const char *fmt, const char *a)
{
	fprintf(stderr, "ferry worker: ");
	fprintf(stderr, fmt, a);
	fputc('\n', stderr);
	return -1;
}

/* Parses "500ms", "60s", "5m", "1h" or plain seconds into ms; -1 if bad. */
static int64_t
parse_duration_ms(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	if (!*end || strcmp(end, "s") == 0)
		return (int64_t)(v * 1000);
	if (strcmp(end, "ms") == 0)
		return (int64_t)v;
	if (strcmp(end, "m") == 0)
		return (int64_t)(v * 60000);
	if (strcmp(end, "h") == 0)
		return (int64_t)(v * 3600000);
	return -1;
}

static int
parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int
parse_hostport(const char *s, char *host, size_t hn, int *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon)
		return -1;
	size_t hl = (size_t)(colon - s);
	const char *h = s;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= hn)
		return -1;
	memcpy(host, h, hl);
	host[hl] = 0;
	long p;
	if (parse_int(colon + 1, 0, 65535, &p) < 0)
		return -1;
	*port = (int)p;
	return 0;
}

static int
host_is_loopback(const char *h)
{
	return strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 ||
	    strcmp(h, "localhost") == 0;
}

/* Applies one option (from argv or the config file).  0, or -1 with a message. */
static int
apply_opt(struct startup *su, int id, const char *arg)
{
	struct worker_cfg *c = su->cfg;
	long v;
	switch (id) {
	case OPT_CACHE_DIR: {
		if (su->ndirs >= WORKER_MAX_DIRS)
			return fail("at most 16 cache dirs (%s)", arg);
		char *colon = strrchr(arg, ':');
		su->dir_sizes[su->ndirs] = -1;
		if (colon && colon[1] && isdigit((unsigned char)colon[1])) {
			int64_t sz = parse_size(colon + 1);
			if (sz <= 0)
				return fail("bad size in --cache-dir %s", arg);
			*colon = 0;
			su->dir_sizes[su->ndirs] = sz;
		}
		su->dirs[su->ndirs++] = arg;
		return 0;
	}
	case OPT_CACHE_SIZE:
		if ((su->cache_size = parse_size(arg)) <= 0)
			return fail("bad --cache-size %s (e.g. 500G, 20GiB, 1048576)", arg);
		return 0;
	case OPT_PAGE_SIZE: {
		int64_t p = parse_size(arg);
		if (p < 65536 || p > (64 << 20))
			return fail("bad --page-size %s (64K..64M)", arg);
		c->page_size = (uint32_t)p;
		return 0;
	}
	case OPT_PAGE_VERIFY:
		if (strcmp(arg, "always") == 0)
			c->verify = PAGESTORE_VERIFY_ALWAYS;
		else if (strcmp(arg, "once") == 0)
			c->verify = PAGESTORE_VERIFY_ONCE;
		else
			return fail("bad --page-verify %s (always or once)", arg);
		return 0;
	case OPT_SYNC:
		if ((c->sync_interval_ms = parse_duration_ms(arg)) < 0)
			return fail("bad --sync-interval %s (e.g. 60s, 500ms, 5m)", arg);
		return 0;
	case OPT_META_ENTRIES:
		if (parse_int(arg, 16, 100000000, &v) < 0)
			return fail("bad --metadata-entries %s", arg);
		c->meta_max_entries = v;
		return 0;
	case OPT_UFS_PAR:
		if (parse_int(arg, 1, 1024, &v) < 0)
			return fail("bad --ufs-parallelism %s (1..1024)", arg);
		c->reader.fetch_threads = (int)v;
		return 0;
	case OPT_WINDOW:
		if (parse_int(arg, 1, 1024, &v) < 0)
			return fail("bad --window %s (1..1024)", arg);
		c->reader.window = (int)v;
		return 0;
	case OPT_READAHEAD:
		if (parse_int(arg, 0, 4096, &v) < 0)
			return fail("bad --read-ahead %s (0..4096)", arg);
		c->reader.readahead_pages = (int)v;
		return 0;
	case OPT_INFLIGHT:
		if (parse_int(arg, 2, 65536, &v) < 0)
			return fail("bad --max-inflight %s (2..65536)", arg);
		c->reader.max_inflight = (int)v;
		return 0;
	case OPT_S3_ADDR:
		if (parse_hostport(arg, c->s3_host, sizeof(c->s3_host), &c->s3_port) < 0)
			return fail("bad --s3-address %s (HOST:PORT)", arg);
		return 0;
	case OPT_CTL_ADDR:
		if (parse_hostport(arg, c->ctl_host, sizeof(c->ctl_host), &c->ctl_port) < 0)
			return fail("bad --control-address %s (HOST:PORT)", arg);
		return 0;
	case OPT_S3_AK: c->s3_access_key = arg; return 0;
	case OPT_S3_SK: c->s3_secret_key = arg; return 0;
	case OPT_S3_ANON: c->s3_anonymous = !arg || strcmp(arg, "false") != 0; return 0;
	case OPT_S3_REGION: c->s3_region = arg; return 0;
	case OPT_MAXCONN:
		if (parse_int(arg, 1, 1000000, &v) < 0)
			return fail("bad --max-connections %s", arg);
		c->max_conns = (int)v;
		return 0;
	case OPT_MAXCONN_CLIENT:
		if (parse_int(arg, 1, 1000000, &v) < 0)
			return fail("bad --max-connections-per-client %s", arg);
		c->max_conns_per_client = (int)v;
		return 0;
	case OPT_CTL_TOKEN: c->control_token = arg; return 0;
	case OPT_MOUNT:
		if (su->nmounts >= 64 || !strchr(arg, '='))
			return fail("bad --mount %s (NAME=URI)", arg);
		su->mounts[su->nmounts++] = arg;
		return 0;
	case OPT_STATE_DIR: c->state_dir = arg; return 0;
	case OPT_ETCD:
		if (!arg[0])
			return fail("bad --etcd '%s' (http://HOST:PORT[,...])", arg);
		c->etcd = arg;
		return 0;
	case OPT_CLUSTER:
		if (!mount_name_valid(arg, strlen(arg)))
			return fail("bad --cluster %s (1-63 of a-z 0-9 . - _)", arg);
		c->cluster_name = arg;
		return 0;
	case OPT_ADVERTISE:
		if (!arg[0] || strlen(arg) > 255 || strpbrk(arg, " /?#@"))
			return fail("bad --advertise %s (a host name or address)", arg);
		c->advertise = arg;
		return 0;
	case OPT_BLOCK_SIZE: {
		int64_t bs = parse_size(arg);
		if (bs < (1 << 20) || bs > (4LL << 30))
			return fail("bad --block-size %s (1M..4G)", arg);
		c->block_size = bs;
		return 0;
	}
	case OPT_LEASE_TTL:
		if (parse_int(arg, 2, 600, &v) < 0)
			return fail("bad --lease-ttl %s (2..600 seconds)", arg);
		c->lease_ttl_s = (int)v;
		return 0;
	case OPT_LOCAL_SOCKET:
		if (!arg[0])
			return fail("bad --local-socket '%s' (a path, or none)", arg);
		c->local_socket = arg;
		return 0;
	case OPT_LOG_LEVEL:
		if ((log_level = log_level_parse(arg)) < 0)
			return fail("bad --log-level %s (error, warn, info, debug)", arg);
		return 0;
	default:
		return -1;
	}
}

static char *
trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	return s;
}

/* Reads "key = value" lines.  Strings are kept for the process lifetime. */
static int
load_config(struct startup *su, const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return fail("cannot read config file %s", path);
	char line[8192];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char *l = trim(line);
		if (!*l)
			continue;
		char *eq = strchr(l, '=');
		char *k = l, *val = NULL;
		if (eq) {
			*eq = 0;
			val = trim(eq + 1);
		}
		k = trim(k);
		int id = -1;
		for (const struct option *o = long_opts; o->name; o++)
			if (strcmp(o->name, k) == 0 && o->val >= 1000 && o->val != OPT_CONFIG)
				id = o->val;
		if (id < 0 || (!val && id != OPT_S3_ANON)) {
			fprintf(stderr, "ferry worker: %s:%d: unknown option or missing value: %s\n", path, lineno, k);
			rc = -1;
			break;
		}
		char *dup = val ? strdup(val) : NULL;
		if (apply_opt(su, id, dup) < 0) {
			fprintf(stderr, "ferry worker: (in %s:%d)\n", path, lineno);
			rc = -1;
			break;
		}
	}
	fclose(f);
	return rc;
}

static int
mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* --- cluster ------------------------------------------------------------- */

/* Names of the mounts etcd had when we joined (the initial sync). */
struct seen_mounts {
	pthread_mutex_t mu;
	int syncing;
	char *names[1024];
	int n;
};
static struct seen_mounts g_seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The watch thread's mount-table callback: etcd's table is the cluster's,
 * and each worker keeps a copy (saved, so a restart with etcd down still
 * has it). */
static void
on_cluster_mount(void *arg, const char *name, const char *json, size_t n)
{
	struct worker *w = arg;
	if (!json) {
		if (mounts_remove(w->mt, name) == 0)
			LOG_INFO("cluster: /%s unmounted cluster-wide", name);
		return;
	}
	char *err = NULL, *nm = NULL;
	int r = mounts_apply_json(w->mt, json, n,
	    MOUNTS_SAVE | MOUNTS_KEEP_BROKEN | MOUNTS_REPLACE, &nm, &err);
	if (r < 0)
		LOG_WARN("cluster: mount /%s from etcd: %s", name, err ? err : strerror(-r));
	pthread_mutex_lock(&g_seen.mu);
	if (g_seen.syncing && g_seen.n < (int)ARRAY_SIZE(g_seen.names))
		g_seen.names[g_seen.n++] = strdup(name);
	pthread_mutex_unlock(&g_seen.mu);
	free(err);
	free(nm);
}

struct reconcile {
	char *stale[1024];
	int n;
};

static int
find_stale(void *arg, const struct mount *m)
{
	struct reconcile *rc = arg;
	for (int i = 0; i < g_seen.n; i++)
		if (g_seen.names[i] && strcmp(g_seen.names[i], m->name) == 0)
			return 0;
	if (rc->n < (int)ARRAY_SIZE(rc->stale))
		rc->stale[rc->n++] = strdup(m->name);
	return 0;
}

static int
join_cluster(struct worker *w, const struct startup *su)
{
	const struct worker_cfg *c = &w->cfg;
	struct member self = {0};
	snprintf(self.id, sizeof(self.id), "%s", w->id);
	const char *ch = c->advertise ? c->advertise : c->ctl_host;
	const char *sh = c->advertise ? c->advertise : c->s3_host;
	int v6c = strchr(ch, ':') != NULL, v6s = strchr(sh, ':') != NULL;
	snprintf(self.ctl, sizeof(self.ctl), "%s%s%s:%d", v6c ? "[" : "", ch,
	    v6c ? "]" : "", http_server_port(w->ctl));
	snprintf(self.s3, sizeof(self.s3), "%s%s%s:%d", v6s ? "[" : "", sh,
	    v6s ? "]" : "", http_server_port(w->s3));
	struct pagestore_stats pst;
	pagestore_get_stats(w->ps, &pst);
	self.capacity = pst.capacity_bytes;
	self.started = w->started;
	struct cluster_cfg cc = {.etcd = c->etcd, .name = c->cluster_name,
	    .lease_ttl_s = c->lease_ttl_s, .self = &self,
	    .on_mount = on_cluster_mount, .arg = w};
	char *err = NULL;
	g_seen.syncing = 1;
	struct cluster *cl = cluster_open(&cc, &err);
	pthread_mutex_lock(&g_seen.mu);
	g_seen.syncing = 0;
	pthread_mutex_unlock(&g_seen.mu);
	if (!cl) {
		fprintf(stderr, "ferry worker: --etcd: %s\n", err ? err : "cannot start");
		free(err);
		return -1;
	}
	struct cluster_view *v = cluster_view_get(cl);
	int etcd_ok = v->etcd_ok;
	LOG_INFO("cluster '%s': joined as %s (%s), %d member(s)%s", c->cluster_name,
	    w->id, self.ctl, v->n, etcd_ok ? "" : "; etcd not reachable yet: serving alone until it is");
	cluster_view_release(&v);
	if (etcd_ok) {
		/* --mount flags name cluster mounts; a mount this worker kept
		 * from before that etcd no longer has was removed meanwhile. */
		for (int i = 0; i < su->nmounts; i++) {
			char *spec = strdup(su->mounts[i]);
			if (!spec)
				continue;
			char *eq = strchr(spec, '=');
			*eq = 0;
			const char *name = spec[0] == '/' ? spec + 1 : spec;
			struct dbuf b;
			dbuf_init(&b, 8192);
			dbuf_adds(&b, "{\"name\":");
			json_put_str(&b, name);
			dbuf_adds(&b, ",\"uri\":");
			json_put_str(&b, eq + 1);
			dbuf_adds(&b, "}");
			int r = b.p ? cluster_mount_create(cl, name, b.p, b.len) : -ENOMEM;
			if (r < 0 && r != -EEXIST)
				LOG_WARN("cluster: cannot record --mount %s in etcd: %s", name, strerror(-r));
			if (g_seen.n < (int)ARRAY_SIZE(g_seen.names))
				g_seen.names[g_seen.n++] = strdup(name);
			dbuf_free(&b);
			free(spec);
		}
		struct reconcile rc = {0};
		mounts_foreach(w->mt, find_stale, &rc);
		for (int i = 0; i < rc.n; i++) {
			if (rc.stale[i] && mounts_remove(w->mt, rc.stale[i]) == 0)
				LOG_INFO("cluster: /%s is not in the cluster's mount table: removed here", rc.stale[i]);
			free(rc.stale[i]);
		}
	}
	for (int i = 0; i < g_seen.n; i++)
		free(g_seen.names[i]);
	g_seen.n = 0;
	__atomic_store_n(&w->cl, cl, __ATOMIC_RELEASE);
	router_set_cluster(w->rt, cl);
	return 0;
}

/* Takes <dir>/.ferry.lock (flock, kept open); -1 with a message if another
 * process holds it. */
static int
lock_dir(const char *dir)
{
	char p[PATH_MAX];
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "ferry worker: cache dir %s: %s\n", dir, strerror(errno));
		return -1;
	}
	snprintf(p, sizeof(p), "%s/.ferry.lock", dir);
	/* Read-only: an open file for writing would keep the disk from being
	 * remounted read-only (which the worker survives). */
	int fd = open(p, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EROFS)
		fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		LOG_WARN("cache dir %s: cannot open %s (%s): not locked against a second worker",
		    dir, p, strerror(errno));
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "ferry worker: cache dir %s is in use by another running worker%s\n", dir,
		    errno == EWOULDBLOCK ? "" : " (cannot lock it)");
		close(fd);
		return -1;
	}
	return 0; /* fd stays open: the lock is ours until we exit */
}

static void
defaults(struct worker_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->page_size = 1 << 20;
	c->verify = PAGESTORE_VERIFY_ALWAYS;
	snprintf(c->s3_host, sizeof(c->s3_host), "127.0.0.1");
	c->s3_port = 29998;
	snprintf(c->ctl_host, sizeof(c->ctl_host), "127.0.0.1");
	c->ctl_port = 29999;
	c->s3_region = "us-east-1";
	c->sync_interval_ms = 60000;
	c->meta_max_entries = 200000;
	c->meta_max_list_bytes = 64LL << 20;
	c->reader.fetch_threads = 32;
	c->reader.window = 8;
	c->reader.readahead_pages = 8;
	c->reader.max_inflight = 128;
	c->max_conns = 4096;
	c->cluster_name = "default";
	c->block_size = 64LL << 20;
	c->lease_ttl_s = 5;
}

int
worker_main(int argc, char **argv)
{
	struct worker w;
	memset(&w, 0, sizeof(w));
	struct worker_cfg *c = &w.cfg;
	defaults(c);
	struct startup su = {.cfg = c, .cache_size = DEFAULT_CACHE_SIZE};

	c->s3_access_key = getenv("FERRY_S3_ACCESS_KEY");
	c->s3_secret_key = getenv("FERRY_S3_SECRET_KEY");
	c->control_token = getenv("FERRY_CONTROL_TOKEN");

	/* The config file first, so that the command line overrides it. */
	for (int i = 1; i < argc; i++) {
		const char *cf = NULL;
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			cf = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			cf = argv[i] + 9;
		if (cf && load_config(&su, cf) < 0)
			return 2;
	}
	optind = 1;
	int o;
	while ((o = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		if (o == 'h') {
			fputs(usage_text, stdout);
			return 0;
		}
		if (o == '?' || o == ':') {
			fputs("Try 'ferry worker --help'.\n", stderr);
			return 2;
		}
		if (o == OPT_CONFIG)
			continue;
		if (apply_opt(&su, o, optarg) < 0)
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "ferry worker: unexpected argument: %s\n", argv[optind]);
		return 2;
	}

	/* Cache dirs. */
	static char defdir[PATH_MAX];
	if (su.ndirs == 0) {
		const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
		if (xdg && xdg[0])
			snprintf(defdir, sizeof(defdir), "%s/ferry", xdg);
		else
			snprintf(defdir, sizeof(defdir), "%s/.cache/ferry", home && home[0] ? home : "/tmp");
		su.dirs[0] = defdir;
		su.dir_sizes[0] = -1;
		su.ndirs = 1;
	}
	for (int i = 0; i < su.ndirs; i++) {
		int r = mkdir_p(su.dirs[i]);
		if (r < 0) {
			fprintf(stderr, "ferry worker: cannot create cache dir %s: %s\n", su.dirs[i], strerror(-r));
			return 1;
		}
		c->dirs[i].path = su.dirs[i];
		c->dirs[i].capacity = su.dir_sizes[i] > 0 ? su.dir_sizes[i] : su.cache_size;
		struct statvfs vfs;
		if (statvfs(su.dirs[i], &vfs) == 0) {
			int64_t avail = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
			if (avail < c->dirs[i].capacity) {
				char a[32], b[32];
				fmt_bytes((double)c->dirs[i].capacity, a, sizeof(a));
				fmt_bytes((double)avail, b, sizeof(b));
				LOG_WARN("cache dir %s: capacity %s but only %s free on its disk; a full disk is handled (pages are then not cached)",
				    su.dirs[i], a, b);
			}
		}
	}
	c->ndirs = su.ndirs;
	if (!c->state_dir)
		c->state_dir = su.dirs[0];

	/* Auth policy. */
	w.s3_loopback = host_is_loopback(c->s3_host);
	w.ctl_loopback = host_is_loopback(c->ctl_host);
	if ((c->s3_access_key == NULL) != (c->s3_secret_key == NULL)) {
		fprintf(stderr, "ferry worker: give both --s3-access-key and --s3-secret-key, or neither\n");
		return 2;
	}
	if (c->s3_access_key) {
		w.s3_verify = 1;
	} else if (!w.s3_loopback && !c->s3_anonymous) {
		fprintf(stderr, "ferry worker: the S3 gateway would listen on %s beyond loopback with no credentials:\n"
		    "  set --s3-access-key and --s3-secret-key, or allow anyone with --s3-anonymous\n", c->s3_host);
		return 2;
	}
	if (!w.ctl_loopback && !c->control_token) {
		fprintf(stderr, "ferry worker: the control API would listen on %s beyond loopback: set --control-token\n",
		    c->ctl_host);
		return 2;
	}
	if (c->block_size % c->page_size != 0) {
		fprintf(stderr, "ferry worker: --block-size must be a multiple of --page-size\n");
		return 2;
	}
	if (c->etcd && !c->advertise && (strcmp(c->ctl_host, "0.0.0.0") == 0 ||
	    strcmp(c->ctl_host, "::") == 0 || strcmp(c->s3_host, "0.0.0.0") == 0 ||
	    strcmp(c->s3_host, "::") == 0)) {
		fprintf(stderr, "ferry worker: listening on all addresses: set --advertise HOST, the address peers reach this worker at\n");
		return 2;
	}
	if (c->control_token && strlen(c->control_token) < 8) {
		fprintf(stderr, "ferry worker: --control-token must be at least 8 characters\n");
		return 2;
	}

	/* Signals: the main thread takes them with sigwait; every other
	 * thread inherits the mask. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	/* One worker per cache directory: two would evict each other's pages
	 * and share one worker id.  The locks live as long as the process. */
	for (int i = 0; i < c->ndirs; i++) {
		if (lock_dir(c->dirs[i].path) < 0)
			return 1;
	}

	char *err = NULL;
	w.started = wall_sec();
	int64_t t0 = now_ms();
	w.ps = pagestore_open(c->dirs, c->ndirs, c->page_size, c->verify, &err);
	if (!w.ps) {
		fprintf(stderr, "ferry worker: page store: %s\n", err ? err : "cannot open");
		free(err);
		return 1;
	}
	struct pagestore_stats pst;
	pagestore_get_stats(w.ps, &pst);
	{
		char used[32], cap[32];
		fmt_bytes((double)pst.used_bytes, used, sizeof(used));
		fmt_bytes((double)pst.capacity_bytes, cap, sizeof(cap));
		LOG_INFO("page store: %d dir(s), %lld pages (%s of %s) indexed in %lld ms",
		    c->ndirs, (long long)pst.pages, used, cap, (long long)(now_ms() - t0));
	}
	if (c->etcd)
		c->reader.block_size = c->block_size;
	w.mc = meta_open(c->sync_interval_ms, c->meta_max_entries, c->meta_max_list_bytes, w.ps);
	w.rd = w.mc ? reader_open(&c->reader, w.ps, w.mc) : NULL;
	char state_path[PATH_MAX];
	snprintf(state_path, sizeof(state_path), "%s/mounts.json", c->state_dir);
	w.mt = w.rd ? mounts_open(state_path, &err) : NULL;
	if (!w.mt) {
		fprintf(stderr, "ferry worker: cannot start: %s\n", err ? err : "out of memory");
		free(err);
		return 1;
	}
	for (int i = 0; i < su.nmounts; i++) {
		char *spec = strdup(su.mounts[i]);
		char *eq = strchr(spec, '=');
		*eq = 0;
		const char *name = spec[0] == '/' ? spec + 1 : spec;
		struct mount *m = mounts_get(w.mt, name, strlen(name));
		if (m) {
			mount_release(&m);
		} else if (mounts_add(w.mt, name, eq + 1, NULL, 0, MOUNTS_SAVE, &err) < 0) {
			fprintf(stderr, "ferry worker: --mount %s: %s\n", su.mounts[i], err ? err : "failed");
			free(err);
			free(spec);
			return 1;
		}
		free(spec);
	}

	char idpath[PATH_MAX];
	snprintf(idpath, sizeof(idpath), "%s/worker-id", c->state_dir);
	int ir = cluster_worker_id(idpath, w.id);
	if (ir < 0) {
		fprintf(stderr, "ferry worker: cannot keep the worker id in %s: %s\n", idpath, strerror(-ir));
		return 1;
	}
	w.rt = router_open(NULL, w.id, c->block_size, c->control_token, w.rd, w.mc);
	if (!w.rt) {
		fprintf(stderr, "ferry worker: cannot start: out of memory\n");
		return 1;
	}

	/* Local reads: an explicit --local-socket that cannot be bound is an
	 * error; the default path only costs a warning (HTTP still works). */
	if (!c->local_socket || strcmp(c->local_socket, "none") != 0) {
		char defsock[PATH_MAX];
		snprintf(defsock, sizeof(defsock), "%s/ferry.sock", c->state_dir);
		const char *sp = c->local_socket ? c->local_socket : defsock;
		w.lfd = localfd_start(&w, sp, &err);
		if (!w.lfd && c->local_socket) {
			fprintf(stderr, "ferry worker: --local-socket: %s\n", err ? err : "failed");
			free(err);
			return 1;
		}
		if (!w.lfd) {
			LOG_WARN("%s; local clients read through HTTP", err ? err : "local socket failed");
			free(err);
			err = NULL;
		} else {
			LOG_INFO("local reads on %s", localfd_path(w.lfd));
		}
	}

	struct http_server_cfg s3cfg = {.host = c->s3_host, .port = c->s3_port,
	    .max_conns = c->max_conns,
	    .max_conns_per_client = c->max_conns_per_client, .name = "s3"};
	w.s3 = http_server_start(&s3cfg, s3_gateway_handle, &w, &err);
	if (!w.s3) {
		fprintf(stderr, "ferry worker: S3 gateway on %s:%d: %s\n", c->s3_host, c->s3_port, err ? err : "failed");
		localfd_stop(&w.lfd);
		return 1;
	}
	struct http_server_cfg ctlcfg = {.host = c->ctl_host, .port = c->ctl_port,
	    .max_conns = 256, .name = "control"};
	w.ctl = http_server_start(&ctlcfg, control_handle, &w, &err);
	if (!w.ctl) {
		fprintf(stderr, "ferry worker: control API on %s:%d: %s\n", c->ctl_host, c->ctl_port, err ? err : "failed");
		http_server_stop(&w.s3);
		localfd_stop(&w.lfd);
		return 1;
	}
	if (c->etcd && join_cluster(&w, &su) < 0) {
		http_server_stop(&w.s3);
		http_server_stop(&w.ctl);
		localfd_stop(&w.lfd);
		return 1;
	}
	LOG_INFO("S3 gateway on http://%s:%d (%s), control API on http://%s:%d, %d mount(s)",
	    c->s3_host, http_server_port(w.s3),
	    w.s3_verify ? (c->s3_anonymous ? "SigV4 or anonymous" : "SigV4 required")
	    : "no credentials set: loopback clients are not checked",
	    c->ctl_host, http_server_port(w.ctl), mounts_count(w.mt));
	/* For scripts and tests that start workers on port 0. */
	printf("ferry worker ready s3=%s:%d control=%s:%d\n", c->s3_host,
	    http_server_port(w.s3), c->ctl_host, http_server_port(w.ctl));
	fflush(stdout);

	int sig = 0;
	sigwait(&set, &sig);
	LOG_INFO("signal %d: shutting down", sig);
	http_server_stop(&w.s3);
	http_server_stop(&w.ctl);
	localfd_stop(&w.lfd);
	struct cluster *cl = worker_cluster(&w);
	cluster_close(&cl); /* leaves the cluster at once (lease revoked) */
	router_close(&w.rt);
	reader_close(&w.rd);
	meta_close(&w.mc);
	mounts_close(&w.mt);
	pagestore_close(&w.ps);
	LOG_INFO("stopped");
	return 0;
}
