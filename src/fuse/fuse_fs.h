/*
 * fuse_fs.h: `ferry fuse MOUNTPOINT`, the worker's namespace as a
 * POSIX file system through libfuse3's low-level API (writable where the
 * worker's mounts take writes, unless --read-only).
 *
 * fuse_main.c parses the command, mounts, daemonizes and runs the session;
 * fuse_ops.c answers the kernel's requests with libferry calls.  This
 * header is also included by the CLI (src/cli/main.c), so it names no
 * libfuse type.
 */
#ifndef FERRY_FUSE_FS_H
#define FERRY_FUSE_FS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli/cli_opt.h"
#include "ferry.h"
#include "fuse/fnode.h"

/* `ferry fuse MOUNTPOINT [OPTIONS]`; argv[0] is "fuse".  Returns the
 * process exit status (0, 1 failure, 2 usage). */
int fuse_main_cmd(int argc, char **argv);

#define FUSE_CMD_USAGE "fuse MOUNTPOINT [OPTIONS]"
#define FUSE_CMD_SUMMARY "mount the namespace at MOUNTPOINT (FUSE)"
#define FUSE_CMD_DETAILS                                                      \
	"A stale mount at MOUNTPOINT (\"Transport endpoint is not connected\") is\n" \
	"lazily unmounted first; a live ferry mount there is refused.  SIGTERM or\n" \
	"SIGINT unmounts.\n"
/* Its options (fuse_main.c), which its parser is built from; the CLI's
 * help, man page and completion list them. */
extern const struct cli_opt fuse_cmd_options[];

/* Sizes of the kernel's requests and of read-ahead. */
#define FFS_MAX_READ (1u << 20)
#define FFS_READAHEAD (4u << 20)
/* Longest ferry path handled (the worker takes keys up to 1024 bytes). */
#define FFS_PATH_MAX 4096
/* Entries per directory page kept by an open directory. */
#define FFS_DIR_PAGE 1000
/* Directories made with mkdir and not yet holding a file (remembered by
 * this client only: the worker's namespace has no empty directories). */
#define FFS_VDIRS_MAX 4096

struct lfd_client;
struct ffile;
struct vdir;

/* The state of one mount, shared by every session thread. */
struct ffs {
	ferry_t *f;
	struct lfd_client *lfd; /* zero-copy local reads; NULL: HTTP only */
	struct fnode_table nodes;
	double attr_timeout;
	uid_t uid;
	gid_t gid;
	int64_t mounted_at; /* the mtime of directories that have none */
	const char *worker_addr; /* for messages */
	int writable;            /* not --read-only */
	pthread_mutex_t wmu;     /* guards writers and vdirs */
	struct ffile *writers;   /* open files with staged bytes */
	struct vdir *vdirs;      /* mkdir'd, not yet in the worker's listing */
	int nvdirs;
	char mountpoint[4096];   /* absolute */
	void *se;                /* struct fuse_session * */
	unsigned readahead_kb;   /* wanted kernel read-ahead */
	atomic_int tuned;        /* read-ahead was set (or tried) */
	/* Error reports, rate-limited (one line, not one per request). */
	atomic_int worker_down;
	atomic_llong down_failures;    /* requests failed while down */
	atomic_llong last_down_log_ms;
	atomic_llong last_err_log_ms;
	atomic_llong errs_suppressed;
};

/* Raises the kernel's read-ahead for this mount to fs->readahead_kb
 * (through sysfs; best effort), once, on the first request after the
 * kernel's INIT (which would have lowered it again). */
void ffs_tune_readahead(struct ffs *fs);

/* The thread that carries `ferry refresh` to the kernel's caches
 * (fuse_refresh.c): start once the mount is up; NULL if it cannot start
 * (refreshes then reach this mount after the attribute timeout). */
void *ffs_refresher_start(struct ffs *fs);
void ffs_refresher_stop(void *rf);

/* Forgets the stat answers fuse_ops.c remembers for the open that
 * follows a lookup (after a refresh, or a change through this mount). */
void ffs_memo_forget_all(void);

/* Frees what the write operations remember (mkdir'd directories). */
void ffs_free_writes(struct ffs *fs);

/* The low-level operations (a const struct fuse_lowlevel_ops *) and their
 * size, for fuse_session_new(). */
const void *ffs_ll_ops(size_t *size);

#endif
