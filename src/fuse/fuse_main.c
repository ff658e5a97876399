/*
 * fuse_main.c: `ferry fuse MOUNTPOINT`: parses the options, recovers a
 * stale mount left at MOUNTPOINT by a killed process (lazy unmount),
 * refuses a MOUNTPOINT that is a live ferry mount already (it would stack)
 * and an address that is not a ferry control API,
 * mounts through libfuse3 (read-write, or read-only), daemonizes once the mount is up
 * (unless --foreground), runs the multithreaded session loop, and
 * unmounts when it ends (SIGTERM, SIGINT, SIGHUP, or an external
 * `fusermount3 -u`).
 *
 * Threads: the main thread does everything here except
 * ffs_tune_readahead(), which the first session thread to serve a request
 * runs (the atomic fs->tuned makes it once), and the refresh thread
 * (fuse_refresh.c), started once the mount is up.  libfuse's signal handlers
 * only set the session's exit flag; SIGINT and SIGTERM get them whatever
 * the process inherited (a background job starts with SIGINT ignored).
 */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "common/suggest.h"
#include "fuse/fuse_fs.h"
#include "fuse/localfd_client.h"

extern char **environ;

#define DEFAULT_WORKER "127.0.0.1:29999"
#define DEFAULT_THREADS 32
#define MAX_THREADS 1024
#define MAX_DEFAULT_ATTR_TIMEOUT 60.0

struct fuse_cmd_opts {
	const char *mountpoint;
	const char *worker;
	const char *token;
	const char *log_file;
	int foreground, debug, allow_other, no_local, read_only;
	double attr_timeout;
	int attr_timeout_set;
	int threads;
};

static int
usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "ferry: fuse: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: ferry " FUSE_CMD_USAGE "\n");
	return 2;
}

enum {
	O_WORKER = 256,
	O_TOKEN,
	O_ALLOW_OTHER,
	O_READ_ONLY,
	O_ATTR_TIMEOUT,
	O_THREADS,
	O_LOG_FILE,
	O_NO_LOCAL,
	O_FOREGROUND = 'f',
	O_DEBUG = 'd',
};

const struct cli_opt fuse_cmd_options[] = {
	{O_FOREGROUND, 'f', "foreground", NULL, "stay in the foreground (default: "
	    "daemonize once\nthe mount is up)"},
	{O_DEBUG, 'd', "debug", NULL, "log every FUSE request (implies --foreground)"},
	{O_ALLOW_OTHER, 0, "allow-other", NULL, "let other users see the mount"},
	{O_READ_ONLY, 0, "read-only", NULL, "a read-only view (default: writable where the\nworker's mount takes writes)"},
	{O_ATTR_TIMEOUT, 0, "attr-timeout", "SECS", "how long the kernel trusts names "
	    "and attributes\n(default: the worker's --sync-interval, at most 60;\n"
	    "1 if the worker does not answer at mount)"},
	{O_THREADS, 0, "threads", "N", "most request threads (default 32)"},
	{O_LOG_FILE, 0, "log-file", "PATH", "where a daemonized mount logs "
	    "(default: nowhere)"},
	{O_NO_LOCAL, 0, "no-local-reads", NULL, "always read through HTTP, not from "
	    "the page files\nof a worker on this host (zero-copy local reads)"},
	{0, 0, NULL, NULL, NULL},
};

#define N_FUSE_OPTS (sizeof(fuse_cmd_options) / sizeof(fuse_cmd_options[0]))

/* getopt's table: fuse_cmd_options, and the global options the CLI
 * passes along. */
static void
build_long_opts(struct option *lo)
{
	size_t n = 0;
	for (const struct cli_opt *o = fuse_cmd_options; o->id; o++)
		lo[n++] = (struct option){o->long_name,
		    o->arg ? required_argument : no_argument, 0, o->id};
	lo[n++] = (struct option){"worker", required_argument, 0, O_WORKER};
	lo[n++] = (struct option){"token", required_argument, 0, O_TOKEN};
	lo[n++] = (struct option){"help", no_argument, 0, 'h'};
	lo[n] = (struct option){0, 0, 0, 0};
}

/* "unknown option" with the nearest of fuse_cmd_options. */
static int
unknown_option(const char *opt)
{
	char word[64];
	snprintf(word, sizeof(word), "%.*s", (int)strcspn(opt, "="), opt);
	struct suggest s;
	suggest_init(&s, word);
	static char names[N_FUSE_OPTS * 2][40];
	int k = 0;
	for (const struct cli_opt *o = fuse_cmd_options; o->id; o++) {
		snprintf(names[k++], sizeof(names[0]), "--%s", o->long_name);
		if (o->short_name)
			snprintf(names[k++], sizeof(names[0]), "-%c", o->short_name);
	}
	for (int i = 0; i < k; i++) {
		if (strcmp(names[i], word) == 0) /* --flag=VALUE */
			return usage_error("option '%s' takes no value", word);
		suggest_try(&s, names[i]);
	}
	const char *best = suggest_best(&s);
	if (best)
		return usage_error("unknown option '%s' (did you mean '%s'?)", word, best);
	return usage_error("unknown option '%s'", word);
}

/* 0, or the exit status of a usage error (printed), or -1 after --help. */
static int
parse_args(int argc, char **argv, struct fuse_cmd_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->attr_timeout = 1.0;
	o->threads = DEFAULT_THREADS;
	optind = 0; /* GNU: restart scanning */
	opterr = 0;
	struct option long_opts[N_FUSE_OPTS + 4];
	build_long_opts(long_opts);
	int c;
	while ((c = getopt_long(argc, argv, ":fdh", long_opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case O_WORKER:
			o->worker = optarg;
			break;
		case O_TOKEN:
			o->token = optarg;
			break;
		case 'f':
			o->foreground = 1;
			break;
		case 'd':
			o->debug = 1;
			break;
		case O_ALLOW_OTHER:
			o->allow_other = 1;
			break;
		case O_READ_ONLY:
			o->read_only = 1;
			break;
		case O_ATTR_TIMEOUT:
			errno = 0;
			o->attr_timeout = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o->attr_timeout >= 0) ||
			    o->attr_timeout > 86400)
				return usage_error("bad --attr-timeout '%s' (seconds, 0..86400)",
				    optarg);
			o->attr_timeout_set = 1;
			break;
		case O_NO_LOCAL:
			o->no_local = 1;
			break;
		case O_THREADS: {
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 1 || v > MAX_THREADS)
				return usage_error("bad --threads '%s' (1..%d)", optarg,
				    MAX_THREADS);
			o->threads = (int)v;
			break;
		}
		case O_LOG_FILE:
			o->log_file = optarg;
			break;
		case 'h':
			printf("usage: ferry " FUSE_CMD_USAGE "\n\n" FUSE_CMD_SUMMARY
			       ".\n\nSee `ferry fuse --help`.\n");
			return -1;
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			if (strncmp(argv[optind - 1], "--", 2) != 0 && optopt &&
			    optopt < 256) {
				char so[3] = {'-', (char)optopt, 0};
				return unknown_option(so);
			}
			return unknown_option(argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("missing MOUNTPOINT");
	if (optind + 1 < argc)
		return usage_error("unexpected argument '%s'", argv[optind + 1]);
	o->mountpoint = argv[optind];
	if (!*o->mountpoint)
		return usage_error("empty MOUNTPOINT");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Stale mounts                                                         */

static int
run_fusermount_lazy(const char *mp)
{
	char *args[] = {"fusermount3", "-u", "-z", (char *)mp, NULL};
	pid_t pid;
	int r = posix_spawnp(&pid, "fusermount3", NULL, NULL, args, environ);
	if (r)
		return -r;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* A mount whose process died answers ENOTCONN ("Transport endpoint is
 * not connected"): detach it so that we can mount there again. */
static int
recover_stale_mount(const char *mp)
{
	struct stat sb;
	struct statfs sfs;
	int e;
	/* stat alone may be answered from attributes the kernel cached
	 * before the process died; statfs always asks. */
	if (stat(mp, &sb) != 0)
		e = errno;
	else if (statfs(mp, &sfs) != 0 && (errno == ENOTCONN || errno == ECONNABORTED))
		e = errno;
	else
		return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
	if (e != ENOTCONN && e != ECONNABORTED)
		return -e;
	LOG_WARN("%s: stale mount (%s): unmounting it lazily", mp, strerror(e));
	if (umount2(mp, MNT_DETACH) != 0) {
		int r = run_fusermount_lazy(mp);
		if (r) {
			LOG_ERR("%s: cannot unmount the stale mount (umount2: %s; "
				"fusermount3 -u -z: %s)", mp, strerror(errno),
			    strerror(-r));
			return -e;
		}
	}
	if (stat(mp, &sb) != 0)
		return -errno;
	return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
}

/* ------------------------------------------------------------------ */
/* Read-ahead                                                           */

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void
unescape_octal(char *s)
{
	char *w = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
		    p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
			*w++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*w++ = *p;
		}
	}
	*w = 0;
}

/* "MAJ:MIN" of the newest FUSE mount at mp, from /proc/self/mountinfo. */
static int
find_mount_dev(const char *mp, char *dev, size_t n)
{
	FILE *fp = fopen("/proc/self/mountinfo", "re");
	if (!fp)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	int found = -ENOENT;
	while (getline(&line, &cap, fp) > 0) {
		/* id parent maj:min root mountpoint opts [optional...] - fstype ... */
		char *save = NULL, *f[5], *t;
		int i = 0;
		while (i < 5 && (t = strtok_r(i ? NULL : line, " ", &save)))
			f[i++] = t;
		if (i < 5)
			continue;
		/* rest: "opts [optional...] - fstype source superopts" */
		char *rest = strtok_r(NULL, "\n", &save);
		char *sep = rest ? strstr(rest, " - ") : NULL;
		if (!sep || strncmp(sep + 3, "fuse", 4) != 0)
			continue;
		unescape_octal(f[4]);
		if (strcmp(f[4], mp) == 0 && strlen(f[2]) < n) {
			memcpy(dev, f[2], strlen(f[2]) + 1);
			found = 0;
		}
	}
	free(line);
	fclose(fp);
	return found;
}

/* 1 if the top mount at mp (absolute, resolved) is a ferry FUSE mount
 * (fstype "fuse.ferry": ours, live; a dead one was recovered before). */
static int
ferry_mounted_at(const char *mp)
{
	FILE *fp = fopen("/proc/self/mountinfo", "re");
	if (!fp)
		return 0;
	char *line = NULL;
	size_t cap = 0;
	int found = 0;
	while (getline(&line, &cap, fp) > 0) {
		char *save = NULL, *f[5], *t;
		int i = 0;
		while (i < 5 && (t = strtok_r(i ? NULL : line, " ", &save)))
			f[i++] = t;
		if (i < 5)
			continue;
		char *rest = strtok_r(NULL, "\n", &save);
		char *sep = rest ? strstr(rest, " - ") : NULL;
		if (!sep)
			continue;
		unescape_octal(f[4]);
		if (strcmp(f[4], mp) == 0) /* the last one listed is on top */
			found = strncmp(sep + 3, "fuse.ferry ", 11) == 0;
	}
	free(line);
	fclose(fp);
	return found;
}

/*
 * How many page file descriptors the local-read cache may keep open:
 * the soft descriptor limit is raised to the hard one first (descriptors
 * are what makes a read need no exchange with the worker), and the cache
 * takes at most half of what remains above 256 kept for everything else
 * (connections, staged writes, libfuse), and no more than CACHE_FDS_MAX.
 */
#define CACHE_FDS_MAX 2048
static int
cache_fd_budget(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = {rl.rlim_max, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 256 + 2 * CACHE_FDS_MAX)
		return CACHE_FDS_MAX;
	return rl.rlim_cur > 256 ? (int)((rl.rlim_cur - 256) / 2) : 0;
}

void
ffs_tune_readahead(struct ffs *fs)
{
	if (atomic_load_explicit(&fs->tuned, memory_order_relaxed) ||
	    atomic_exchange(&fs->tuned, 1))
		return;
	if (!fs->readahead_kb)
		return;
	char dev[64], p[128];
	int r = find_mount_dev(fs->mountpoint, dev, sizeof(dev));
	if (r) {
		LOG_DEBUG("read-ahead: %s not found in mountinfo: %s",
		    fs->mountpoint, strerror(-r));
		return;
	}
	snprintf(p, sizeof(p), "/sys/class/bdi/%s/read_ahead_kb", dev);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	char v[32];
	int vl = snprintf(v, sizeof(v), "%u\n", fs->readahead_kb);
	if (fd < 0 || write(fd, v, (size_t)vl) != vl)
		LOG_DEBUG("read-ahead: cannot write %s: %s (kernel default kept)",
		    p, strerror(errno));
	else
		LOG_DEBUG("read-ahead: %s = %u KiB", p, fs->readahead_kb);
	if (fd >= 0)
		close(fd);
}

/* ------------------------------------------------------------------ */
/* The command                                                          */

/* The worker's metadata sync interval in seconds (GET /v1/stats), or -1:
 * the kernel need not re-ask more often than the worker re-checks. */
static double
worker_sync_interval_s(ferry_t *f)
{
	char *js = NULL;
	if (ferry_stats_json(f, &js) != 0)
		return -1;
	struct json_doc d = {0};
	double v = -1;
	if (json_parse(&d, js, strlen(js)) == 0) {
		int ok = 0;
		int64_t ms = json_int(&d, json_obj_get(&d, 0, "sync_interval_ms"), &ok);
		if (ok && ms >= 0)
			v = (double)ms / 1000.0;
		json_free(&d);
	}
	free(js);
	return v;
}

static struct ffs *
ffs_new(const struct fuse_cmd_opts *o, const char *abs_mp)
{
	struct ffs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return NULL;
	if (fnode_table_init(&fs->nodes) != 0) {
		free(fs);
		return NULL;
	}
	fs->attr_timeout = o->attr_timeout;
	fs->writable = !o->read_only;
	pthread_mutex_init(&fs->wmu, NULL);
	fs->uid = getuid();
	fs->gid = getgid();
	fs->mounted_at = (int64_t)time(NULL);
	fs->readahead_kb = FFS_READAHEAD / 1024;
	snprintf(fs->mountpoint, sizeof(fs->mountpoint), "%s", abs_mp);
	const char *w = o->worker;
	if (!w || !*w)
		w = getenv("FERRY_WORKER");
	fs->worker_addr = w && *w ? w : DEFAULT_WORKER;
	return fs;
}

static void
ffs_free(struct ffs *fs)
{
	if (!fs)
		return;
	lfd_client_free(&fs->lfd);
	ffs_free_writes(fs);
	pthread_mutex_destroy(&fs->wmu);
	ferry_close(&fs->f);
	fnode_table_free(&fs->nodes);
	free(fs);
}

int
fuse_main_cmd(int argc, char **argv)
{
	struct fuse_cmd_opts o;
	int rc = parse_args(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (o.debug) {
		log_level = LOG_LVL_DEBUG;
		o.foreground = 1;
	}
	signal(SIGPIPE, SIG_IGN);

	int r = recover_stale_mount(o.mountpoint);
	if (r) {
		fprintf(stderr, "ferry: fuse: %s: %s\n", o.mountpoint, strerror(-r));
		return 1;
	}
	char *abs_mp = realpath(o.mountpoint, NULL);
	if (!abs_mp) {
		fprintf(stderr, "ferry: fuse: %s: %s\n", o.mountpoint, strerror(errno));
		return 1;
	}
	/* Another mount on top of a live one would hide it, and stack. */
	if (ferry_mounted_at(abs_mp)) {
		fprintf(stderr, "ferry: fuse: %s is already a ferry mount (unmount it "
				"first: fusermount3 -u %s)\n", abs_mp, abs_mp);
		free(abs_mp);
		return 1;
	}
	int log_fd = -1;
	if (o.log_file && !o.foreground) {
		log_fd = open(o.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (log_fd < 0) {
			fprintf(stderr, "ferry: fuse: %s: %s\n", o.log_file, strerror(errno));
			free(abs_mp);
			return 1;
		}
	}
	struct ffs *fs = ffs_new(&o, abs_mp);
	rc = 1;
	struct fuse_session *se = NULL;
	int mounted = 0, handlers = 0;
	if (!fs) {
		fprintf(stderr, "ferry: fuse: out of memory\n");
		goto out;
	}
	r = ferry_connect(o.worker, o.token, &fs->f);
	if (r) {
		fprintf(stderr, "ferry: fuse: worker %s: %s\n", fs->worker_addr,
		    *ferry_last_error() ? ferry_last_error() : ferry_strerror(r));
		goto out;
	}
	/* A worker that is down now is not fatal: requests fail with EIO
	 * until it comes up.  An address that is not a worker's is. */
	struct ferry_stat rootst;
	r = ferry_stat(fs->f, "/", &rootst);
	if (r == -EPROTONOSUPPORT) {
		fprintf(stderr, "ferry: fuse: %s\n", ferry_last_error());
		goto out;
	}
	if (r)
		LOG_WARN("worker %s: %s; mounting anyway (requests fail with EIO "
			 "until it answers)", fs->worker_addr,
		    *ferry_last_error() ? ferry_last_error() : ferry_strerror(r));
	if (!o.attr_timeout_set && r == 0) {
		double si = worker_sync_interval_s(fs->f);
		if (si >= 0)
			o.attr_timeout = fs->attr_timeout =
			    si < MAX_DEFAULT_ATTR_TIMEOUT ? si : MAX_DEFAULT_ATTR_TIMEOUT;
	}
	if (!o.no_local) {
		fs->lfd = lfd_client_new(fs->f, cache_fd_budget());
		char why[256] = "";
		if (!fs->lfd)
			LOG_WARN("local reads: out of memory; reading through HTTP");
		else if (lfd_client_probe(fs->lfd, why, sizeof(why)) == 0)
			LOG_INFO("local reads: page files from the worker's socket (zero-copy, each chunk checked)");
		else
			LOG_INFO("local reads: not available now (%s); reading through HTTP "
				 "until they are", why);
	}

	char mopts[256];
	snprintf(mopts, sizeof(mopts),
	    "%s,noatime,default_permissions,fsname=ferry,subtype=ferry,max_read=%u%s",
	    o.read_only ? "ro" : "rw", FFS_MAX_READ, o.allow_other ? ",allow_other" : "");
	char *fargv[] = {"ferry", "-o", mopts, o.debug ? "-d" : NULL, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(o.debug ? 4 : 3, fargv);
	size_t ops_size;
	const struct fuse_lowlevel_ops *ops = ffs_ll_ops(&ops_size);
	se = fuse_session_new(&args, ops, ops_size, fs);
	fuse_opt_free_args(&args);
	if (!se) {
		fprintf(stderr, "ferry: fuse: cannot create the FUSE session\n");
		goto out;
	}
	fs->se = se;
	/* libfuse installs its handlers only over the default action, and a
	 * shell starts a background job with SIGINT ignored: a `ferry fuse`
	 * started so would then ignore the SIGINT that should unmount it.
	 * SIGINT and SIGTERM stop it whatever it inherited (SIGHUP is left as
	 * given: nohup means it). */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	if (fuse_set_signal_handlers(se) != 0) {
		fprintf(stderr, "ferry: fuse: cannot install signal handlers\n");
		goto out;
	}
	handlers = 1;
	if (fuse_session_mount(se, abs_mp) != 0) {
		fprintf(stderr, "ferry: fuse: cannot mount at %s (is /dev/fuse "
				"there, and fusermount3 installed?)\n", abs_mp);
		goto out;
	}
	mounted = 1;
	LOG_INFO("mounted %s %s (worker %s, attr timeout %gs, %d threads)",
	    abs_mp, o.read_only ? "read-only" : "read-write", fs->worker_addr,
	    o.attr_timeout, o.threads);
	if (!o.foreground) {
		if (fuse_daemonize(0) != 0)
			goto out;
		if (log_fd >= 0)
			dup2(log_fd, STDERR_FILENO);
	}

	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	if (!cfg) {
		LOG_ERR("out of memory");
		goto out;
	}
	fuse_loop_cfg_set_max_threads(cfg, (unsigned)o.threads);
	fuse_loop_cfg_set_idle_threads(cfg,
	    (unsigned)(o.threads < 10 ? o.threads : 10));
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	void *rf = ffs_refresher_start(fs);
	if (!rf)
		LOG_WARN("refresh: cannot start its thread: `ferry refresh` reaches this "
			 "mount after the attribute timeout only");
	r = fuse_session_loop_mt(se, cfg);
	ffs_refresher_stop(rf);
	fuse_loop_cfg_destroy(cfg);
	/* A signal ends the loop with its number: a clean stop. */
	rc = r < 0 ? 1 : 0;
	if (r < 0)
		LOG_ERR("session loop failed: %s", strerror(-r));
out:
	if (mounted) {
		fuse_session_unmount(se);
		LOG_INFO("unmounted %s", abs_mp);
	}
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	ffs_free(fs);
	if (log_fd >= 0)
		close(log_fd);
	free(abs_mp);
	return rc;
}
