/*
 * fuse_refresh.c: `ferry refresh PATH` reaches the kernel's caches of a
 * `ferry fuse` mount.  The worker logs the paths it was told to refresh
 * (GET /v1/refresh?since=N); a thread of ours polls that log once a second
 * and, for each path refreshed, tells the kernel to drop what it holds of
 * the path and everything under it: the attributes and page cache of each
 * inode (notify_inval_inode) and the name in its directory
 * (notify_inval_entry), so the next stat, readdir or read asks the worker,
 * which asks the under-store.  Without it, the kernel would go on trusting
 * them for the attribute timeout (up to a minute).
 *
 * Threads: one, started after the mount is up (and after daemonizing),
 * stopped before the session goes; it only reads the inode table (which
 * has its own lock) and calls libfuse's notify functions, which are safe
 * beside the session threads.  Once a second it also closes the local-read
 * cache's idle page file descriptors (lfd_client_sweep, under that
 * cache's own lock).
 */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/log.h"
#include "fuse/fuse_fs.h"
#include "fuse/localfd_client.h"

#define POLL_MS 1000
#define NODES_MAX 65536

struct refresher {
	struct ffs *fs;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	uint64_t seq;
	int have_seq;
	char log[128]; /* the log seq counts in (its worker and process) */
};

/* Drops the kernel's caches of path and of every node under it. */
static void
drop(struct ffs *fs, const char *path)
{
	struct fuse_session *se = fs->se;
	ffs_memo_forget_all();
	uint64_t *inos = malloc(NODES_MAX * sizeof(*inos));
	char **paths = malloc(NODES_MAX * sizeof(*paths));
	int n = inos && paths ? fnode_under(&fs->nodes, path, inos, paths, NODES_MAX) : 0;
	for (int i = 0; i < n; i++) {
		fnode_dir_changed(&fs->nodes, inos[i]); /* its kept listing, if a directory */
		fuse_lowlevel_notify_inval_inode(se, inos[i], 0, 0);
		/* And its name in its directory (a name that now points
		 * elsewhere, or nowhere). */
		const char *sl = strrchr(paths[i], '/');
		if (sl && sl[1]) {
			uint64_t pino = FNODE_ROOT;
			if (sl != paths[i]) {
				*(char *)sl = 0;
				pino = fnode_peek_ino(&fs->nodes, paths[i]);
			}
			fuse_lowlevel_notify_inval_entry(se, pino, sl + 1, strlen(sl + 1));
		}
		free(paths[i]);
	}
	/* The name itself in its parent (also a negative entry the kernel
	 * keeps for a name that did not exist), and the parent's listing. */
	if (strcmp(path, "/") != 0) {
		const char *slash = strrchr(path, '/');
		char parent[4096];
		size_t pl = slash && slash != path ? (size_t)(slash - path) : 1;
		if (pl < sizeof(parent)) {
			memcpy(parent, path, pl);
			parent[pl] = 0;
			uint64_t pino = pl == 1 ? FNODE_ROOT : fnode_peek_ino(&fs->nodes, parent);
			const char *name = slash ? slash + 1 : path;
			fuse_lowlevel_notify_inval_entry(se, pino, name, strlen(name));
			fnode_dir_changed(&fs->nodes, pino);
			fuse_lowlevel_notify_inval_inode(se, pino, 0, 0);
		}
	} else {
		fnode_dir_changed(&fs->nodes, FNODE_ROOT);
		fuse_lowlevel_notify_inval_inode(se, FNODE_ROOT, 0, 0);
	}
	free(inos);
	free(paths);
}

static void
poll_once(struct refresher *rf)
{
	char *text = NULL;
	if (ferry_refresh_log_json(rf->fs->f, rf->have_seq ? rf->seq : 0, &text) != 0)
		return; /* the worker is away: try again later */
	struct json_doc d;
	if (json_parse(&d, text, strlen(text)) != 0 || d.toks[0].type != JSON_OBJECT) {
		free(text);
		return;
	}
	int ok = 0;
	int64_t seq = json_int(&d, json_obj_get(&d, 0, "seq"), &ok);
	char *log = json_str(&d, json_obj_get(&d, 0, "log"));
	int same_log = log && strcmp(log, rf->log) == 0;
	if (ok && seq >= 0) {
		if (!rf->have_seq) {
			rf->have_seq = 1; /* the start: what was before is not ours */
		} else if (json_bool(&d, json_obj_get(&d, 0, "all")) == 1 ||
		    (uint64_t)seq < rf->seq || !same_log) {
			/* Missed some, or another log (libferry went to another
			 * worker, or it restarted): drop everything. */
			LOG_INFO("refresh: dropping every cached name and attribute");
			drop(rf->fs, "/");
		} else {
			int arr = json_obj_get(&d, 0, "paths");
			int n = arr >= 0 && d.toks[arr].type == JSON_ARRAY ? d.toks[arr].size : 0;
			for (int i = 0; i < n; i++) {
				char *p = json_str(&d, json_arr_get(&d, arr, i));
				if (p && p[0] == '/') {
					LOG_DEBUG("refresh: %s", p);
					drop(rf->fs, p);
				}
				free(p);
			}
		}
		rf->seq = (uint64_t)seq;
		snprintf(rf->log, sizeof(rf->log), "%s", log ? log : "");
	}
	free(log);
	json_free(&d);
	free(text);
}

static void *
refresher_main(void *arg)
{
	struct refresher *rf = arg;
	pthread_mutex_lock(&rf->mu);
	while (!rf->stop) {
		pthread_mutex_unlock(&rf->mu);
		poll_once(rf);
		lfd_client_sweep(rf->fs->lfd); /* idle page file descriptors */
		pthread_mutex_lock(&rf->mu);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += POLL_MS / 1000;
		if (!rf->stop)
			pthread_cond_timedwait(&rf->cv, &rf->mu, &ts);
	}
	pthread_mutex_unlock(&rf->mu);
	return NULL;
}

void *
ffs_refresher_start(struct ffs *fs)
{
	struct refresher *rf = calloc(1, sizeof(*rf));
	if (!rf)
		return NULL;
	rf->fs = fs;
	pthread_mutex_init(&rf->mu, NULL);
	pthread_cond_init(&rf->cv, NULL);
	if (pthread_create(&rf->thr, NULL, refresher_main, rf) != 0) {
		pthread_mutex_destroy(&rf->mu);
		pthread_cond_destroy(&rf->cv);
		free(rf);
		return NULL;
	}
	return rf;
}

void
ffs_refresher_stop(void *p)
{
	struct refresher *rf = p;
	if (!rf)
		return;
	pthread_mutex_lock(&rf->mu);
	rf->stop = 1;
	pthread_cond_signal(&rf->cv);
	pthread_mutex_unlock(&rf->mu);
	pthread_join(rf->thr, NULL);
	pthread_mutex_destroy(&rf->mu);
	pthread_cond_destroy(&rf->cv);
	free(rf);
}
