/*
 * worker_main.c: `ferry worker`: the start of every subsystem in
 * dependency order (page store, reader, metadata cache, mount table,
 * router, objget, local socket, the two HTTP servers, then the cluster),
 * one stop path that undoes whatever started, and the main thread's wait
 * for SIGINT/SIGTERM.  Options are parsed beforehand by
 * worker_config_parse (worker_config.c).  The main thread only starts,
 * waits and stops; all work runs on the servers' and the read path's
 * threads.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
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
#include "dirahead.h"
#include "objget.h"
#include "mpu.h"
#include "objkey.h"
#include "objput.h"
#include "cluster_sync.h"
#include "loader.h"
#include "policy.h"
#include "worker.h"

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
join_cluster(struct worker *w)
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
	    .on_mount = on_cluster_mount, .on_rule = csync_on_rule,
	    .on_load = csync_on_load, .arg = w};
	char *err = NULL;
	g_seen.syncing = 1;
	policy_set_self(w->pol, w->id);
	policy_sync_begin(w->pol);
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
		/* The cluster's rules are etcd's: one kept here that etcd no
		 * longer has was removed meanwhile. */
		policy_sync_end(w->pol);
		/* --mount flags name cluster mounts; a mount this worker kept
		 * from before that etcd no longer has was removed meanwhile. */
		for (int i = 0; i < c->nmounts; i++) {
			char *spec = strdup(c->mounts[i]);
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
			int r = dbuf_error(&b) ? dbuf_error(&b) : cluster_mount_create(cl, name, b.p, b.len);
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
	snprintf(p, sizeof(p), "%s/.ferry.lock", dir);
	/* Read-only: an open file for writing would keep the disk from being
	 * remounted read-only (which the worker survives). */
	int fd = open(p, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EROFS)
		fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && (errno == EACCES || errno == EPERM)) {
		fprintf(stderr, "ferry worker: cache dir %s is not writable by this user (%s)\n",
		    dir, strerror(errno));
		return -1;
	}
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

/* The metadata cache saw an object's version move: drop the old pages. */
static void
on_version_change(void *arg, uint64_t obj, uint64_t keep_ver)
{
	reader_drop_object(arg, obj, keep_ver);
}

/* Cache dirs: created (0700), locked, and checked against their disks. */
static int
prepare_dirs(const struct worker_cfg *c)
{
	for (int i = 0; i < c->ndirs; i++) {
		const char *d = c->dirs[i].path;
		int r = mkdir_p(d);
		if (r < 0) {
			fprintf(stderr, "ferry worker: cannot create cache dir %s: %s\n", d, strerror(-r));
			return -1;
		}
		/* One worker per cache directory: two would evict each
		 * other's pages and share one worker id. */
		if (lock_dir(d) < 0)
			return -1;
		struct statvfs vfs;
		if (statvfs(d, &vfs) == 0) {
			int64_t avail = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
			if (avail < c->dirs[i].capacity) {
				char a[32], b[32];
				fmt_bytes((double)c->dirs[i].capacity, a, sizeof(a));
				fmt_bytes((double)avail, b, sizeof(b));
				LOG_WARN("cache dir %s: capacity %s but only %s free on its disk; a full disk is handled (pages are then not cached)",
				    d, a, b);
			}
		}
	}
	if (mkdir_p(c->state_dir) < 0) {
		fprintf(stderr, "ferry worker: cannot create state dir %s: %s\n", c->state_dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* The --mount flags, for mounts the table does not have yet. */
static int
add_flag_mounts(struct worker *w)
{
	for (int i = 0; i < w->cfg.nmounts; i++) {
		char *spec = strdup(w->cfg.mounts[i]);
		if (!spec)
			return -1;
		char *eq = strchr(spec, '=');
		*eq = 0;
		const char *name = spec[0] == '/' ? spec + 1 : spec;
		struct mount *m = mounts_get(w->mt, name, strlen(name));
		char *err = NULL;
		if (m) {
			mount_release(&m);
		} else if (mounts_add(w->mt, name, eq + 1, NULL, 0, MOUNTS_SAVE, &err) < 0) {
			fprintf(stderr, "ferry worker: --mount %s: %s\n", w->cfg.mounts[i], err ? err : "failed");
			free(err);
			free(spec);
			return -1;
		}
		free(spec);
	}
	return 0;
}

/* Local reads: an explicit --local-socket that cannot be bound is an
 * error; the default path only costs a warning (HTTP still works). */
static int
start_local_socket(struct worker *w)
{
	const struct worker_cfg *c = &w->cfg;
	if (c->local_socket && strcmp(c->local_socket, "none") == 0)
		return 0;
	char defsock[PATH_MAX];
	snprintf(defsock, sizeof(defsock), "%s/ferry.sock", c->state_dir);
	const char *sp = c->local_socket ? c->local_socket : defsock;
	char *err = NULL;
	w->lfd = localfd_start(w, sp, &err);
	if (!w->lfd && c->local_socket) {
		fprintf(stderr, "ferry worker: --local-socket: %s\n", err ? err : "failed");
		free(err);
		return -1;
	}
	if (!w->lfd)
		LOG_WARN("%s; local clients read through HTTP", err ? err : "local socket failed");
	else
		LOG_INFO("local reads on %s", localfd_path(w->lfd));
	free(err);
	return 0;
}

static int
start_servers(struct worker *w)
{
	const struct worker_cfg *c = &w->cfg;
	char *err = NULL;
	struct http_server_cfg s3cfg = {.host = c->s3_host, .port = c->s3_port,
	    .max_conns = c->max_conns, .max_conns_per_client = c->max_conns_per_client,
	    .name = "s3"};
	w->s3 = http_server_start(&s3cfg, s3_gateway_handle, w, &err);
	if (!w->s3) {
		fprintf(stderr, "ferry worker: S3 gateway on %s:%d: %s\n", c->s3_host, c->s3_port, err ? err : "failed");
		free(err);
		return -1;
	}
	struct http_server_cfg ctlcfg = {.host = c->ctl_host, .port = c->ctl_port,
	    .max_conns = 256, .name = "control"};
	w->ctl = http_server_start(&ctlcfg, control_handle, w, &err);
	if (!w->ctl) {
		fprintf(stderr, "ferry worker: control API on %s:%d: %s\n", c->ctl_host, c->ctl_port, err ? err : "failed");
		free(err);
		return -1;
	}
	return 0;
}

/* objput's announce hook: in a cluster, the peers hear of the change. */
static void
announce_change(void *arg, const struct mount *m, const char *path)
{
	struct worker *w = arg;
	router_announce(w->rt, m, path);
}

/* The reader's fetch of a first page brought the object's headers. */
static void
on_fetched_hdrs(void *arg, struct mount *m, const char *path, uint64_t ver,
    const struct ufs_hdrs *h)
{
	struct worker *w = arg;
	meta_learn_hdrs(w->mc, m, path, ver, h);
}

/* A write=back object reached its store (ufs_wb.c's persister): its
 * cached pages and metadata become the store's version of the same bytes,
 * so the next read neither asks the store nor fetches them again. */
static void
on_persisted(void *arg, uint64_t ident, const char *name, const char *path,
    const struct ufs_stat *staged, const struct ufs_stat *stored)
{
	struct worker *w = arg;
	struct mount_table *mt = __atomic_load_n(&w->mt, __ATOMIC_ACQUIRE);
	struct mount *m = mt ? mounts_get(mt, name, strlen(name)) : NULL;
	if (!m)
		return;
	if (m->ident == ident && !stored->is_dir) {
		uint64_t from = objkey_version(staged), to = objkey_version(stored);
		if (from != to && stored->size == staged->size)
			reader_adopt_version(w->rd, objkey_id(ident, path), from, to);
		meta_replace(w->mc, m, path, staged, stored);
	}
	mount_release(&m);
}

int
worker_start(struct worker *w)
{
	struct worker_cfg *c = &w->cfg;
	w->s3_loopback = host_is_loopback(c->s3_host);
	w->ctl_loopback = host_is_loopback(c->ctl_host);
	w->s3_verify = c->s3_access_key != NULL;
	if (prepare_dirs(c) < 0)
		return -1;

	char *err = NULL;
	w->started = wall_sec();
	int64_t t0 = now_ms();
	w->ps = pagestore_open(c->dirs, c->ndirs, c->page_size, c->verify, &err);
	if (!w->ps) {
		fprintf(stderr, "ferry worker: %s\n", err ? err : "page store: cannot open");
		free(err);
		return -1;
	}
	int src = pagestore_scrub_start(w->ps, c->scrub_rate);
	if (src < 0)
		LOG_WARN("page store: scrubber not started: %s", strerror(-src));
	struct pagestore_stats pst;
	pagestore_get_stats(w->ps, &pst);
	char used[32], cap[32];
	fmt_bytes((double)pst.used_bytes, used, sizeof(used));
	fmt_bytes((double)pst.capacity_bytes, cap, sizeof(cap));
	LOG_INFO("page store: %d dir(s), %lld pages (%s of %s) indexed in %lld ms",
	    c->ndirs, (long long)pst.pages, used, cap, (long long)(now_ms() - t0));

	char polpath[PATH_MAX];
	snprintf(polpath, sizeof(polpath), "%s/policy.json", c->state_dir);
	w->pol = policy_open(polpath, &err);
	if (!w->pol || policy_attach(w->pol, w->ps) < 0) {
		fprintf(stderr, "ferry worker: %s\n", err ? err : "pins and TTLs: cannot start");
		free(err);
		return -1;
	}

	w->rd = reader_open(&c->reader, w->ps);
	struct meta_cfg mcfg = {.sync_ms = c->sync_interval_ms,
	    .max_entries = c->meta_max_entries, .max_list_bytes = c->meta_max_list_bytes,
	    .stale_ms = c->stale_ms, .on_change = on_version_change, .arg = w->rd};
	w->mc = w->rd ? meta_open(&mcfg) : NULL;
	if (w->mc)
		reader_set_hdrs_hook(w->rd, on_fetched_hdrs, w);
	if (w->mc && !c->etcd) {
		/* Before the mounts: a write=back mount finds its staging
		 * area (and what a previous run left there) when it opens. */
		char wbdir[PATH_MAX];
		snprintf(wbdir, sizeof(wbdir), "%s/writeback", c->state_dir);
		struct ufs_wb_cfg wc = {.dir = wbdir, .limit = c->wb_limit,
		    .parallel = c->wb_parallel, .bandwidth = c->wb_bandwidth,
		    .persisted = on_persisted, .arg = w};
		if (ufs_wb_start(&wc, &err) < 0) {
			fprintf(stderr, "ferry worker: cannot start: %s\n", err ? err : "write-back");
			free(err);
			return -1;
		}
	}
	char state_path[PATH_MAX];
	snprintf(state_path, sizeof(state_path), "%s/mounts.json", c->state_dir);
	struct mount_table *mt = w->mc ? mounts_open(state_path, &err) : NULL;
	__atomic_store_n(&w->mt, mt, __ATOMIC_RELEASE);
	if (!w->mt) {
		fprintf(stderr, "ferry worker: cannot start: %s\n", err ? err : "out of memory");
		free(err);
		return -1;
	}
	if (add_flag_mounts(w) < 0)
		return -1;

	char idpath[PATH_MAX];
	snprintf(idpath, sizeof(idpath), "%s/worker-id", c->state_dir);
	int ir = cluster_worker_id(idpath, w->id);
	if (ir < 0) {
		fprintf(stderr, "ferry worker: cannot keep the worker id in %s: %s\n", idpath, strerror(-ir));
		return -1;
	}
	w->rt = router_open(NULL, w->id, c->block_size, c->control_token, w->rd);
	if (w->rt)
		router_set_hot(w->rt, c->hot_threshold, c->hot_extra);
	w->og = w->rt ? objget_open(w->mc, w->rt, w->rd) : NULL;
	if (w->og) {
		/* Whole directories up to --fetch-ahead, and a quarter of the cache. */
		int64_t room = 0;
		for (int i = 0; i < c->ndirs; i++)
			room += c->dirs[i].capacity;
		int64_t bound = c->fetch_ahead < room / 4 ? c->fetch_ahead : room / 4;
		w->da = c->fetch_ahead > 0 ? dirahead_open(w->mc, w->rt, w->rd, bound) : NULL;
		objget_set_dirahead(w->og, w->da);
	}
	w->op = w->og ? objput_open(w->mc, w->rd) : NULL;
	if (!w->op) {
		fprintf(stderr, "ferry worker: cannot start: out of memory\n");
		return -1;
	}
	objput_set_announce(w->op, announce_change, w);
	char updir[PATH_MAX];
	snprintf(updir, sizeof(updir), "%s/uploads", c->state_dir);
	w->mpu = mpu_open(updir, w->op, &err);
	if (!w->mpu) {
		fprintf(stderr, "ferry worker: cannot start: multipart uploads: %s\n", err ? err : "out of memory");
		free(err);
		return -1;
	}
	mpu_set_tag(w->mpu, w->id);
	w->ld = loader_open(c->state_dir, w->mt, w->mc, w->rd, w->rt, w->og, &err);
	if (!w->ld) {
		fprintf(stderr, "ferry worker: cannot start: load jobs: %s\n", err ? err : "out of memory");
		free(err);
		return -1;
	}
	if (start_local_socket(w) < 0 || start_servers(w) < 0)
		return -1;
	if (c->etcd && join_cluster(w) < 0)
		return -1;
	loader_set_end_hook(w->ld, csync_load_ended, w);
	loader_resume(w->ld); /* after the cluster: its reads are routed */
	if (c->etcd)
		csync_joined(w); /* the cluster's jobs this worker has no part of */
	LOG_INFO("S3 gateway on http://%s:%d (%s), control API on http://%s:%d, %d mount(s)",
	    c->s3_host, http_server_port(w->s3),
	    w->s3_verify ? (c->s3_anonymous ? "SigV4 or anonymous" : "SigV4 required")
	    : "no credentials set: loopback clients are not checked",
	    c->ctl_host, http_server_port(w->ctl), mounts_count(w->mt));
	return 0;
}

void
worker_stop(struct worker *w)
{
	http_server_stop(&w->s3);
	http_server_stop(&w->ctl);
	localfd_stop(&w->lfd);
	loader_close(&w->ld); /* running jobs resume at the next start */
	objget_set_dirahead(w->og, NULL); /* no request runs any more */
	dirahead_close(&w->da);
	struct cluster *cl = worker_cluster(w);
	__atomic_store_n(&w->cl, NULL, __ATOMIC_RELEASE);
	if (w->rt)
		router_set_cluster(w->rt, NULL);
	cluster_close(&cl); /* leaves the cluster at once (lease revoked) */
	mpu_close(&w->mpu);
	ufs_wb_stop(); /* what is staged stays for the next start */
	objput_close(&w->op);
	objget_close(&w->og);
	router_close(&w->rt);
	mounts_close(&w->mt);
	ufs_wb_free();
	meta_close(&w->mc);
	reader_close(&w->rd);
	policy_close(&w->pol);
	pagestore_close(&w->ps);
}

int
worker_main(int argc, char **argv)
{
	struct worker w;
	memset(&w, 0, sizeof(w));
	char *err = NULL;
	int pr = worker_config_parse(argc, argv, &w.cfg, &err);
	if (pr == 1) {
		worker_usage(stdout);
		worker_config_free(&w.cfg);
		return 0;
	}
	if (pr < 0) {
		fprintf(stderr, "ferry worker: %s\nTry 'ferry worker --help'.\n", err);
		free(err);
		worker_config_free(&w.cfg);
		return 2;
	}
	log_level = w.cfg.log_level;
	for (char *l = w.cfg.warnings; *l;) {
		char *nl = strchr(l, '\n');
		if (nl)
			*nl = 0;
		LOG_WARN("%s", l);
		l = nl ? nl + 1 : l + strlen(l);
	}

	/* Signals: the main thread takes them with sigwait; every other
	 * thread inherits the mask. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	int rc = 0;
	if (worker_start(&w) == 0) {
		/* For scripts and tests that start workers on port 0. */
		printf("ferry worker ready s3=%s:%d control=%s:%d\n", w.cfg.s3_host,
		    http_server_port(w.s3), w.cfg.ctl_host, http_server_port(w.ctl));
		fflush(stdout);
		int sig = 0;
		sigwait(&set, &sig);
		LOG_INFO("signal %d: shutting down", sig);
	} else {
		rc = 1;
	}
	worker_stop(&w);
	worker_config_free(&w.cfg);
	if (rc == 0)
		LOG_INFO("stopped");
	return rc;
}
