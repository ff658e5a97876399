/*
 * fuse_ops.c: the FUSE low-level operations of `ferry fuse`: each request
 * of the kernel becomes libferry calls to the worker (ferry_stat,
 * ferry_list_page, ferry_pread_etag; ferry_create/ferry_commit for writes).
 *
 * Writes (unless --read-only): a file opened for writing stages its bytes
 * in a private temporary file of this host (libferry's ferry_file_t), so
 * any write pattern works (sequential, random, rewrites, truncation); a
 * rewrite of an existing file first copies its bytes in, lazily, at the
 * first change.  A file that starts empty and is written strictly in
 * order streams (FERRY_CREATE_STREAM): its bytes go to the worker while
 * they are written, and close() only ends the upload; the first write out
 * of order (or a truncation) abandons the stream, the worker keeping
 * nothing of it, and close() uploads the staged file.  close() (FLUSH)
 * and fsync() upload (or end the stream) and return the worker's answer:
 * the under-store's error reaches the program, so a failed checkpoint
 * save fails.  An fsync() mid-stream commits what was written; later
 * writes make the next close() upload the whole staged file.  A FLUSH
 * from a program being killed by a signal publishes nothing
 * (closer_killed).  Nothing is visible to other clients before that;
 * this client sees its own open writers' sizes (the writers list).  mkdir makes a directory this client remembers until a file
 * lands in it (the worker's namespace has no empty directories); rename
 * is the worker's copy-and-delete within a mount (EXDEV across mounts and
 * for directories, which mv(1) handles by copying).  Modes, owners and
 * times are not kept: setattr accepts them and stores nothing.
 *
 * Threads: libfuse's session threads (up to --threads) call every
 * operation concurrently.  Shared state is the inode table (its own
 * mutex), each open directory (its own mutex: two threads may read one),
 * the version memo (memo_mu, a leaf) and the atomics of the error reports
 * in struct ffs.  No lock is held
 * across a call to the worker except an open directory's, which only
 * readers of that same directory wait on, and an open file's write mutex,
 * which only requests on that same open file wait on.  Lock order:
 * ffile.mu, then fs->wmu (the writers list and mkdir'd directories).
 *
 * Memory, bounded by: per open file being written its staged bytes on
 * disk, and while it streams a thread and libcurl's upload buffer; the
 * inode table (one node per inode the kernel
 * holds, ~100 bytes plus the path; see fnode.c), one page of at most
 * FFS_DIR_PAGE entries per open directory (~40 bytes each plus names, at
 * most ~1.2 MiB with ETags), per open file its path and version, per
 * request in flight one read buffer of at most FFS_MAX_READ bytes (a local
 * read's: that plus two chunks per page it touches; each session thread
 * keeps one of READBUF_KEEP bytes for its local reads), the version memo
 * (MEMO_SLOTS, ~2.6 MiB) and the local-read descriptor cache (at most 2,048
 * descriptors and their chunk CRCs; localfd_client.h).
 *
 * Local reads: when the worker on this host hands out page files
 * (localfd_client.c), a read asks it for the descriptors of the pages of
 * the pinned version and the CRCs of the chunks that hold the read's
 * bytes (kept per 1 MiB granule for the later reads of the same open, at
 * most LFDC_TRUST_MS), reads those chunks whole into its buffer, checks each, and
 * answers the kernel from there; a page not cached, a chunk that fails its
 * check, or any failure falls back to HTTP (whose read path checks the
 * page, drops a bad one, and caches the pages for the next read).
 *
 * Versions: a file's version is its ETag and size.  An open records the
 * version it found and every read of that open asks the worker for that
 * version only (ferry_pread_etag): a file that changes while open gives
 * EIO, never bytes of two versions.  The page cache is kept across opens
 * only while the version is unchanged since the last open; an open that
 * finds a version other than the one in the kernel's cached attributes
 * bypasses the page cache (direct I/O), so a stale size cannot cut it
 * short.
 */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/dbuf.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "fuse/fuse_fs.h"
#include "fuse/localfd_client.h"

#define XA_ETAG "user.ferry.etag"
#define XA_CACHED "user.ferry.cached_bytes"
#define ERR_LOG_EVERY_MS 5000
#define DOWN_LOG_EVERY_MS 30000
#define READDIR_MAX (1u << 20) /* most bytes of one readdir reply */
/* names and ETags of one page */
#define NAMES_MAX ((size_t)FFS_DIR_PAGE * (1100 + FERRY_ETAG_MAX))

/* An open file: the version its reads are pinned to, and for an open
 * with write access its staged bytes. */
struct ffile {
	int64_t size;
	char etag[FERRY_ETAG_MAX];
	uint64_t ino;
	int64_t opened_ms;  /* now_ms() at the open: older cached descriptors are asked again */
	int writable;       /* opened for writing */
	int trunc, excl;    /* O_TRUNC (start from nothing), O_EXCL */
	pthread_mutex_t mu; /* writable: guards w and failed */
	ferry_file_t *w;    /* staged bytes: NULL until the first change */
	int failed;         /* a FLUSH's upload failed (and said so) */
	int discard;        /* its writer died of a signal: publish nothing */
	atomic_llong wsize; /* w's size, for getattr without mu */
	int64_t wmtime;
	struct ffile *wnext; /* in fs->writers while w */
	char path[];        /* ferry path */
};

/* A directory made with mkdir that the worker does not list yet. */
struct vdir {
	struct vdir *next;
	char path[];
};

/* One entry of an open directory's current page. */
struct dent {
	uint32_t name_off; /* into fdir.names */
	uint32_t etag_off; /* into fdir.names: the file's ETag */
	int is_dir;
	int64_t size, mtime;
	uint64_t ver;
};

/*
 * An open directory: the current page and where the next one starts.
 * Positions (readdir offsets) are 0 ".", 1 "..", then 2 + the entry's
 * index in the directory; ents[0] is entry `base`.
 */
struct fdir {
	pthread_mutex_t mu; /* guards all below */
	struct dent *ents;  /* FFS_DIR_PAGE */
	int n;
	struct dbuf names;
	int64_t base;       /* -1: no page loaded */
	uint64_t gen;       /* memo_gen when the page was asked for */
	int truncated;      /* more pages after this one */
	char next[FERRY_NEXT_MAX];
	char path[];
};

static struct ffs *
req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */

/* The worker answered something: if it had been unreachable, say once
 * that it is back. */
static void
worker_answered(struct ffs *fs)
{
	if (atomic_load_explicit(&fs->worker_down, memory_order_relaxed) &&
	    atomic_exchange(&fs->worker_down, 0)) {
		long long n = atomic_exchange(&fs->down_failures, 0);
		LOG_INFO("worker %s is reachable again (%lld requests failed "
			 "with EIO meanwhile)", fs->worker_addr, n);
	}
}

static void
worker_unreachable(struct ffs *fs, int r)
{
	atomic_fetch_add(&fs->down_failures, 1);
	long long now = now_ms();
	if (!atomic_exchange(&fs->worker_down, 1)) {
		atomic_store(&fs->last_down_log_ms, now);
		LOG_ERR("worker %s unreachable (%s): requests fail with EIO "
			"until it is back", fs->worker_addr, ferry_strerror(r));
		return;
	}
	long long last = atomic_load(&fs->last_down_log_ms);
	if (now - last >= DOWN_LOG_EVERY_MS &&
	    atomic_compare_exchange_strong(&fs->last_down_log_ms, &last, now))
		LOG_ERR("worker %s still unreachable (%lld requests failed)",
		    fs->worker_addr, (long long)atomic_load(&fs->down_failures));
}

/* Logs at most one line per ERR_LOG_EVERY_MS, counting the rest. */
static void
log_limited(struct ffs *fs, const char *op, const char *path, int r)
{
	long long now = now_ms(), last = atomic_load(&fs->last_err_log_ms);
	if (now - last < ERR_LOG_EVERY_MS ||
	    !atomic_compare_exchange_strong(&fs->last_err_log_ms, &last, now)) {
		atomic_fetch_add(&fs->errs_suppressed, 1);
		return;
	}
	long long sup = atomic_exchange(&fs->errs_suppressed, 0);
	if (r == -ESTALE)
		LOG_WARN("%s %s: changed while open; the read fails (EIO) rather "
			 "than mix versions (%lld similar errors not shown)",
		    op, path, sup);
	else
		LOG_WARN("%s %s: %s; answering EIO (%lld similar errors not shown)",
		    op, path, ferry_strerror(r), sup);
}

/* A libferry error -> the errno for the kernel (positive). */
static int
ffs_err(struct ffs *fs, int r, const char *op, const char *path)
{
	switch (r) {
	case -ENOENT:
	case -ENOTDIR:
	case -EISDIR:
	case -EACCES:
	case -EINVAL:
		worker_answered(fs);
		return -r;
	case -ENAMETOOLONG:
	case -ENOMEM:
	case -EROFS:
	case -EEXIST:
	case -ENOSPC:
	case -EDQUOT:
	case -EXDEV:
	case -EFBIG:
	case -ENOTEMPTY:
	case -EPERM:
		if (r != -ENOMEM && r != -ENAMETOOLONG)
			worker_answered(fs);
		return -r;
	case -ENOBUFS: /* the worker's write-back staging is full */
		worker_answered(fs);
		return ENOSPC;
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
	case -ETIMEDOUT:
	case -ECONNRESET:
		worker_unreachable(fs, r);
		return EIO;
	default:
		if (r == -ESTALE)
			ffs_memo_forget_all(); /* the next open asks again */
		log_limited(fs, op, path, r);
		return EIO;
	}
}

static void
reply_err(fuse_req_t req, int err)
{
	fuse_reply_err(req, err);
}

/* ------------------------------------------------------------------ */
/* Open writers and mkdir'd directories (fs->wmu)                       */

static void
writer_add(struct ffs *fs, struct ffile *fh)
{
	pthread_mutex_lock(&fs->wmu);
	fh->wnext = fs->writers;
	fs->writers = fh;
	pthread_mutex_unlock(&fs->wmu);
}

static void
writer_del(struct ffs *fs, struct ffile *fh)
{
	pthread_mutex_lock(&fs->wmu);
	for (struct ffile **p = &fs->writers; *p; p = &(*p)->wnext)
		if (*p == fh) {
			*p = fh->wnext;
			break;
		}
	pthread_mutex_unlock(&fs->wmu);
}

/* The newest open writer of ino (or, with ino 0, of path): 1 with its
 * size and mtime, 0 if none. */
static int
writer_attr(struct ffs *fs, uint64_t ino, const char *path, uint64_t *ino_out,
    int64_t *size, int64_t *mtime)
{
	int found = 0;
	pthread_mutex_lock(&fs->wmu);
	for (struct ffile *f = fs->writers; f && !found; f = f->wnext)
		if (ino ? f->ino == ino : strcmp(f->path, path) == 0) {
			found = 1;
			if (ino_out)
				*ino_out = f->ino;
			*size = atomic_load(&f->wsize);
			*mtime = f->wmtime;
		}
	pthread_mutex_unlock(&fs->wmu);
	return found;
}

static int
vdir_has(struct ffs *fs, const char *path)
{
	int found = 0;
	pthread_mutex_lock(&fs->wmu);
	for (struct vdir *v = fs->vdirs; v && !found; v = v->next)
		found = strcmp(v->path, path) == 0;
	pthread_mutex_unlock(&fs->wmu);
	return found;
}

static int
vdir_add(struct ffs *fs, const char *path)
{
	size_t n = strlen(path);
	struct vdir *v = malloc(sizeof(*v) + n + 1);
	if (!v)
		return -ENOMEM;
	memcpy(v->path, path, n + 1);
	int r = 0;
	pthread_mutex_lock(&fs->wmu);
	if (fs->nvdirs >= FFS_VDIRS_MAX) {
		r = -ENOSPC;
	} else {
		v->next = fs->vdirs;
		fs->vdirs = v;
		fs->nvdirs++;
	}
	pthread_mutex_unlock(&fs->wmu);
	if (r)
		free(v);
	return r;
}

/* Drops the mkdir'd directory path (exact), or with parents set every one
 * that path lies beneath (a file landed there: the worker lists them). */
static int
vdir_drop(struct ffs *fs, const char *path, int parents)
{
	int n = 0;
	size_t pl = strlen(path);
	pthread_mutex_lock(&fs->wmu);
	for (struct vdir **p = &fs->vdirs; *p;) {
		struct vdir *v = *p;
		size_t vl = strlen(v->path);
		int hit = parents ? (vl < pl && memcmp(v->path, path, vl) == 0 &&
		    path[vl] == '/') : strcmp(v->path, path) == 0;
		if (hit) {
			*p = v->next;
			free(v);
			fs->nvdirs--;
			n++;
		} else {
			p = &v->next;
		}
	}
	pthread_mutex_unlock(&fs->wmu);
	return n;
}

void
ffs_free_writes(struct ffs *fs)
{
	while (fs->vdirs) {
		struct vdir *v = fs->vdirs;
		fs->vdirs = v->next;
		free(v);
	}
}

/* ------------------------------------------------------------------ */
/* Paths and attributes                                                 */

static uint64_t
version_of(const char *etag, int64_t size)
{
	uint64_t v = hash64(etag, strlen(etag), (uint64_t)size);
	return v ? v : 1; /* 0 means "none" */
}

/* parent's path + "/" + name into out (n bytes). */
static int
child_path(struct ffs *fs, fuse_ino_t parent, const char *name, char *out,
    size_t n)
{
	int r = fnode_path(&fs->nodes, parent, out, n, NULL);
	if (r)
		return r == -ENOENT ? -ESTALE : r;
	size_t pl = strlen(out), nl = strlen(name);
	if (nl == 0 || strchr(name, '/'))
		return -EINVAL;
	if (strcmp(name, ".") == 0)
		return 0;
	if (strcmp(name, "..") == 0) {
		char *s = strrchr(out, '/');
		if (s == out)
			out[1] = 0;
		else if (s)
			*s = 0;
		return 0;
	}
	if (pl + 1 + nl >= n)
		return -ENAMETOOLONG;
	if (pl > 1)
		out[pl++] = '/';
	memcpy(out + pl, name, nl + 1);
	return 0;
}

static void
fill_attr(const struct ffs *fs, uint64_t ino, int is_dir, int64_t size,
    int64_t mtime, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = is_dir ? (S_IFDIR | (fs->writable ? 0755 : 0555)) :
	    (S_IFREG | (fs->writable ? 0644 : 0444));
	st->st_nlink = is_dir ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = is_dir ? 0 : size;
	st->st_blocks = is_dir ? 0 : (size + 511) / 512;
	/* S3 prefixes and the mounts at / have no mtime: the mount's time,
	 * not 1970. */
	st->st_mtim.tv_sec = mtime > 0 ? mtime : is_dir ? fs->mounted_at : 0;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/* ------------------------------------------------------------------ */
/* Stat answers remembered for a moment                                 */

/*
 * The kernel looks a name up (or lists its directory), then opens it:
 * both asked the worker for the file's stat over HTTP.  The lookup,
 * getattr and readdirplus answers are remembered here per inode for the
 * attribute timeout (during which the kernel trusts them anyway); a
 * read-only open takes the version from here and has the worker confirm
 * it over the local socket (open_confirm_local), which also fetches the
 * first read's descriptors, so opening a small file costs no HTTP request.
 * A slot per inode hash (a newer answer overwrites); any change through
 * this mount, a refresh or a read that found another version forgets them
 * all (memo_gen).  memo_mu is a leaf, held only for a slot's copy.
 */
#define MEMO_SLOTS 16384 /* ~2.6 MiB */
struct memo {
	uint64_t ino, gen;
	int64_t at_ms, size;
	char etag[FERRY_ETAG_MAX];
};
static struct memo memo[MEMO_SLOTS];
static pthread_mutex_t memo_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t memo_gen = 1;

void
ffs_memo_forget_all(void)
{
	pthread_mutex_lock(&memo_mu);
	memo_gen++;
	pthread_mutex_unlock(&memo_mu);
}

static int64_t
memo_ms(const struct ffs *fs)
{
	return (int64_t)(fs->attr_timeout * 1000);
}

/* A file's stat answer, just received for ino (gen: memo_gen read before
 * asking, so an answer that raced a change is not kept). */
static void
memo_put(const struct ffs *fs, uint64_t ino, uint64_t gen, const struct ferry_stat *st)
{
	if (st->is_dir || memo_ms(fs) <= 0)
		return;
	struct memo *m = &memo[hash64(&ino, sizeof(ino), 0) & (MEMO_SLOTS - 1)];
	pthread_mutex_lock(&memo_mu);
	if (gen == memo_gen) {
		m->ino = ino;
		m->gen = gen;
		m->at_ms = now_ms();
		m->size = st->size;
		memcpy(m->etag, st->etag, sizeof(m->etag));
		m->etag[sizeof(m->etag) - 1] = 0;
	}
	pthread_mutex_unlock(&memo_mu);
}

static uint64_t
memo_gen_now(void)
{
	pthread_mutex_lock(&memo_mu);
	uint64_t g = memo_gen;
	pthread_mutex_unlock(&memo_mu);
	return g;
}

/* 1 with st filled (a file) when ino's answer is fresh enough, else 0. */
static int
memo_get(const struct ffs *fs, uint64_t ino, struct ferry_stat *st)
{
	int64_t ttl = memo_ms(fs);
	if (ttl <= 0)
		return 0;
	const struct memo *m = &memo[hash64(&ino, sizeof(ino), 0) & (MEMO_SLOTS - 1)];
	int hit = 0;
	pthread_mutex_lock(&memo_mu);
	if (m->ino == ino && m->gen == memo_gen && now_ms() - m->at_ms < ttl) {
		memset(st, 0, sizeof(*st));
		st->size = m->size;
		memcpy(st->etag, m->etag, sizeof(st->etag));
		hit = 1;
	}
	pthread_mutex_unlock(&memo_mu);
	return hit;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                           */

static void
op_init(void *userdata, struct fuse_conn_info *conn)
{
	conn->max_read = FFS_MAX_READ;
	/* max_write also sets how many pages one request may carry, reads
	 * included. */
	conn->max_write = FFS_MAX_READ;
	if (conn->max_readahead < FFS_READAHEAD)
		conn->max_readahead = FFS_READAHEAD; /* libfuse caps it */
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* Every readdir is READDIRPLUS (not only the first of a listing, as
	 * with READDIRPLUS_AUTO): the worker's listing carries each entry's
	 * attributes anyway, and a program that lists a directory and then
	 * opens its files (a data loader) needs no LOOKUP per file. */
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Local reads reply with page file descriptors: splice them. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* open(O_TRUNC) arrives as such (not as a separate truncate). */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->time_gran = 1000000000; /* mtimes are whole seconds */
}

static void
op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fnode_forget(&req_fs(req)->nodes, ino, nlookup);
	fuse_reply_none(req);
}

static void
op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *fl)
{
	struct ffs *fs = req_fs(req);
	for (size_t i = 0; i < count; i++)
		fnode_forget(&fs->nodes, fl[i].ino, fl[i].nlookup);
	fuse_reply_none(req);
}

/* ------------------------------------------------------------------ */
/* Names and attributes                                                 */

static void
op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ffs *fs = req_fs(req);
	ffs_tune_readahead(fs);
	char path[FFS_PATH_MAX];
	int r = child_path(fs, parent, name, path, sizeof(path));
	if (r) {
		reply_err(req, r == -EINVAL ? ENOENT : -r);
		return;
	}
	struct ferry_stat st;
	uint64_t gen = memo_gen_now();
	r = ferry_stat(fs->f, path, &st);
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.attr_timeout = fs->attr_timeout;
	e.entry_timeout = fs->attr_timeout;
	int64_t wsize, wmtime;
	uint64_t wino;
	if ((r == 0 || r == -ENOENT) && writer_attr(fs, 0, path, &wino, &wsize, &wmtime)) {
		/* This client's open writer: its size, before any commit. */
		uint64_t ino;
		if (fnode_ref(&fs->nodes, path, 0, 0, 1, &ino) == 0) {
			e.ino = ino;
			e.attr_timeout = e.entry_timeout = 0;
			fill_attr(fs, ino, 0, wsize, wmtime, &e.attr);
			if (fuse_reply_entry(req, &e) != 0)
				fnode_forget(&fs->nodes, ino, 1);
			return;
		}
	}
	if (r == -ENOENT && vdir_has(fs, path)) {
		st.is_dir = 1;
		st.size = 0;
		st.mtime = 0;
		st.etag[0] = 0;
		r = 0;
	}
	if (r == -ENOENT || r == -ENOTDIR || r == -EINVAL) {
		/* A negative entry (ino 0), cached for the entry timeout; the
		 * worker refuses names it cannot hold (EINVAL): none such. */
		worker_answered(fs);
		fuse_reply_entry(req, &e);
		return;
	}
	if (r) {
		reply_err(req, ffs_err(fs, r, "lookup", path));
		return;
	}
	worker_answered(fs);
	uint64_t ver = st.is_dir ? 0 : version_of(st.etag, st.size);
	uint64_t ino;
	r = fnode_ref(&fs->nodes, path, st.is_dir, ver, 1, &ino);
	if (r) {
		reply_err(req, -r);
		return;
	}
	e.ino = ino;
	fill_attr(fs, ino, st.is_dir, st.size, st.mtime, &e.attr);
	memo_put(fs, ino, gen, &st);
	if (fuse_reply_entry(req, &e) != 0)
		fnode_forget(&fs->nodes, ino, 1); /* the kernel did not get it */
}

/*
 * Finds the path of ino and asks the worker for its stat.  0, or -1 when
 * the error has already been answered to the kernel.
 */
static int
stat_ino(struct ffs *fs, fuse_req_t req, fuse_ino_t ino, const char *op,
    char *path, size_t n, struct ferry_stat *st)
{
	int r = fnode_path(&fs->nodes, ino, path, n, NULL);
	if (r) {
		reply_err(req, r == -ENOENT ? ESTALE : -r);
		return -1;
	}
	uint64_t gen = memo_gen_now();
	r = ferry_stat(fs->f, path, st);
	if (r) {
		reply_err(req, ffs_err(fs, r, op, path));
		return -1;
	}
	worker_answered(fs);
	memo_put(fs, ino, gen, st);
	return 0;
}

static void
op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ffs *fs = req_fs(req);
	ffs_tune_readahead(fs);
	char path[FFS_PATH_MAX];
	struct ferry_stat st;
	struct stat a;
	int64_t wsize, wmtime;
	if (writer_attr(fs, ino, NULL, NULL, &wsize, &wmtime)) {
		fill_attr(fs, ino, 0, wsize, wmtime, &a);
		fuse_reply_attr(req, &a, 0);
		return;
	}
	int isdir = 0;
	if (fnode_path(&fs->nodes, ino, path, sizeof(path), &isdir) == 0 && isdir &&
	    ferry_stat(fs->f, path, &st) == -ENOENT && vdir_has(fs, path)) {
		fill_attr(fs, ino, 1, 0, 0, &a);
		fuse_reply_attr(req, &a, fs->attr_timeout);
		return;
	}
	if (stat_ino(fs, req, ino, "getattr", path, sizeof(path), &st) < 0)
		return;
	fill_attr(fs, ino, st.is_dir, st.size, st.mtime, &a);
	if (!st.is_dir)
		fnode_note_kver(&fs->nodes, ino, version_of(st.etag, st.size));
	fuse_reply_attr(req, &a, fs->attr_timeout);
}

static void
op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct ffs *fs = req_fs(req);
	char *js = NULL;
	int r = ferry_stats_json(fs->f, &js);
	if (r) {
		reply_err(req, ffs_err(fs, r, "statfs", "/"));
		return;
	}
	worker_answered(fs);
	int64_t cap = 0, used = 0;
	struct json_doc d;
	if (json_parse(&d, js, strlen(js)) == 0) {
		cap = json_int(&d, json_obj_get(&d, 0, "capacity_bytes"), NULL);
		used = json_int(&d, json_obj_get(&d, 0, "used_bytes"), NULL);
		json_free(&d);
	}
	free(js);
	if (cap < 0)
		cap = 0;
	if (used < 0 || used > cap)
		used = cap;
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = (fsblkcnt_t)(cap / 4096);
	sv.f_bfree = (fsblkcnt_t)((cap - used) / 4096);
	sv.f_bavail = sv.f_bfree;
	sv.f_files = (fsfilcnt_t)fnode_count(&fs->nodes);
	sv.f_namemax = 1024;
	sv.f_flag = fs->writable ? 0 : ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* ------------------------------------------------------------------ */
/* Directories                                                          */

static void
op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ffs *fs = req_fs(req);
	ffs_tune_readahead(fs);
	char path[FFS_PATH_MAX];
	int is_dir = 0;
	int r = fnode_path(&fs->nodes, ino, path, sizeof(path), &is_dir);
	if (r) {
		reply_err(req, r == -ENOENT ? ESTALE : -r);
		return;
	}
	if (!is_dir) {
		reply_err(req, ENOTDIR);
		return;
	}
	size_t pl = strlen(path);
	struct fdir *d = calloc(1, sizeof(*d) + pl + 1);
	if (d)
		d->ents = calloc(FFS_DIR_PAGE, sizeof(*d->ents));
	if (!d || !d->ents) {
		if (d)
			free(d->ents);
		free(d);
		reply_err(req, ENOMEM);
		return;
	}
	memcpy(d->path, path, pl + 1);
	pthread_mutex_init(&d->mu, NULL);
	dbuf_init(&d->names, NAMES_MAX);
	d->base = -1;
	fi->fh = (uintptr_t)d;
	/* The kernel caches the listing and keeps it across opens for as long
	 * as it trusts the names in it (the attribute timeout, which is the
	 * worker's own sync interval for its listings), unless a write through
	 * this mount or a refresh changed the directory (fnode_dir_changed;
	 * the kernel also drops it itself on its own creates and removals). */
	int64_t keep_ms = (int64_t)(fs->attr_timeout * 1000);
	if (keep_ms > 0) {
		fi->cache_readdir = 1;
		fi->keep_cache = fnode_opendir(&fs->nodes, ino, now_ms(), keep_ms);
	}
	if (fuse_reply_open(req, fi) != 0) {
		dbuf_free(&d->names);
		pthread_mutex_destroy(&d->mu);
		free(d->ents);
		free(d);
	}
}

static void
op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fdir *d = (struct fdir *)(uintptr_t)fi->fh;
	if (d) {
		dbuf_free(&d->names);
		pthread_mutex_destroy(&d->mu);
		free(d->ents);
		free(d);
	}
	reply_err(req, 0);
}

/* ferry_list_page callback: one entry into the page. */
static int
page_add(void *arg, const char *name, const struct ferry_stat *st)
{
	struct fdir *d = arg;
	if (d->n >= FFS_DIR_PAGE)
		return -EPROTO; /* more than asked for */
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return 0; /* not names of entries; we add our own */
	struct dent *e = &d->ents[d->n];
	e->name_off = (uint32_t)d->names.len;
	if (dbuf_add(&d->names, name, strlen(name) + 1) != 0)
		return -EPROTO;
	e->etag_off = (uint32_t)d->names.len;
	if (dbuf_add(&d->names, st->etag, strnlen(st->etag, FERRY_ETAG_MAX - 1) + 1) != 0)
		return -EPROTO;
	e->is_dir = st->is_dir;
	e->size = st->size;
	e->mtime = st->mtime;
	e->ver = st->is_dir ? 0 : version_of(st->etag, st->size);
	d->n++;
	return 0;
}

/* Replaces the page with the one after `after` (NULL: the first).  On
 * failure no page is loaded (the next readdir starts over). */
static int
do_load_page(struct ffs *fs, struct fdir *d, const char *after)
{
	char from[FERRY_NEXT_MAX];
	if (after)
		snprintf(from, sizeof(from), "%s", after); /* may be d->next */
	d->n = 0;
	dbuf_reset(&d->names);
	d->gen = memo_gen_now();
	int trunc = 0;
	int r = ferry_list_page(fs->f, d->path, after ? from : NULL,
	    FFS_DIR_PAGE, page_add, d, d->next, sizeof(d->next), &trunc);
	if (r == -ENOENT && vdir_has(fs, d->path)) {
		d->n = 0; /* mkdir'd here, nothing in it yet */
		trunc = 0;
		r = 0;
	}
	if (r) {
		d->base = -1;
		d->n = 0;
		return r;
	}
	d->truncated = trunc;
	return 0;
}

/*
 * Makes entry i (index in the directory) part of the page: pages forward
 * from the current one, or starts over from the first page when i lies
 * before it (the kernel asked for an offset we cannot continue from).
 * Returns 1 when it is there, 0 past the end, or a negative errno.
 */
static int
do_seek_entry(struct ffs *fs, struct fdir *d, int64_t i)
{
	int r;
	if (d->base < 0 || i < d->base) {
		if ((r = do_load_page(fs, d, NULL)) != 0)
			return r;
		d->base = 0;
	}
	while (i >= d->base + d->n) {
		if (!d->truncated)
			return 0;
		if (d->n == 0) {
			d->base = -1;
			return -EPROTO; /* "more" but an empty page */
		}
		int64_t nb = d->base + d->n;
		if ((r = do_load_page(fs, d, d->next)) != 0)
			return r;
		d->base = nb;
	}
	return 1;
}

static void
do_readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
    struct fuse_file_info *fi, int plus)
{
	struct ffs *fs = req_fs(req);
	struct fdir *d = (struct fdir *)(uintptr_t)fi->fh;
	if (!d || off < 0) {
		reply_err(req, EINVAL);
		return;
	}
	if (size > READDIR_MAX)
		size = READDIR_MAX;
	char *buf = malloc(size ? size : 1);
	/* Inodes referenced by this reply, to undo if it does not arrive. */
	size_t maxrefs = size / 24 + 1;
	uint64_t *refs = plus ? calloc(maxrefs, sizeof(*refs)) : NULL;
	if (!buf || (plus && !refs)) {
		free(buf);
		free(refs);
		reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0, nrefs = 0;
	int err = 0;
	char child[FFS_PATH_MAX];
	size_t dl = strlen(d->path);
	memcpy(child, d->path, dl + 1);
	/* ".." gets its inode number too: some programs skip d_ino 0. */
	char *slash = strrchr(child, '/');
	uint64_t dotdot_ino = FNODE_ROOT;
	if (slash && slash != child) {
		*slash = 0;
		dotdot_ino = fnode_peek_ino(&fs->nodes, child);
		*slash = '/';
	}
	if (dl > 1)
		child[dl++] = '/';
	pthread_mutex_lock(&d->mu);
	for (int64_t pos = off;; pos++) {
		const char *name;
		struct stat st;
		struct ferry_stat fst; /* a file's size and ETag, for memo */
		int is_dot = pos < 2, is_dir = 1;
		uint64_t ver = 0;
		memset(&st, 0, sizeof(st));
		if (is_dot) {
			name = pos == 0 ? "." : "..";
			st.st_mode = S_IFDIR;
			st.st_ino = pos == 0 ? ino : dotdot_ino;
		} else {
			int r = do_seek_entry(fs, d, pos - 2);
			if (r <= 0) {
				err = r;
				break;
			}
			const struct dent *e = &d->ents[pos - 2 - d->base];
			name = d->names.p + e->name_off;
			size_t nl = strlen(name);
			if (dl + nl >= sizeof(child))
				continue; /* cannot be named; the worker caps keys */
			memcpy(child + dl, name, nl + 1);
			is_dir = e->is_dir;
			ver = e->ver;
			fill_attr(fs, 0, e->is_dir, e->size, e->mtime, &st);
			fst.is_dir = e->is_dir;
			fst.size = e->size;
			snprintf(fst.etag, sizeof(fst.etag), "%s", d->names.p + e->etag_off);
		}
		size_t need = plus ?
		    fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0) :
		    fuse_add_direntry(req, NULL, 0, name, NULL, 0);
		if (need > size - used)
			break;
		if (plus) {
			struct fuse_entry_param ep;
			memset(&ep, 0, sizeof(ep));
			if (!is_dot) {
				if (nrefs == maxrefs)
					break;
				uint64_t cino;
				int r = fnode_ref(&fs->nodes, child, is_dir, ver, 1,
				    &cino);
				if (r) {
					err = r;
					break;
				}
				refs[nrefs++] = cino;
				st.st_ino = cino;
				/* The open that follows needs no stat (memo). */
				memo_put(fs, cino, d->gen, &fst);
				ep.ino = cino;
				ep.attr_timeout = fs->attr_timeout;
				ep.entry_timeout = fs->attr_timeout;
			}
			/* ino 0 (the dots): the kernel links nothing. */
			ep.attr = st;
			fuse_add_direntry_plus(req, buf + used, size - used, name,
			    &ep, pos + 1);
		} else {
			if (!is_dot)
				st.st_ino = fnode_peek_ino(&fs->nodes, child);
			fuse_add_direntry(req, buf + used, size - used, name, &st,
			    pos + 1);
		}
		used += need;
	}
	pthread_mutex_unlock(&d->mu);
	if (err < 0 && used == 0) {
		reply_err(req, ffs_err(fs, err, "readdir", d->path));
	} else {
		if (err == 0 || used)
			worker_answered(fs);
		if (fuse_reply_buf(req, buf, used) != 0)
			for (size_t i = 0; i < nrefs; i++)
				fnode_forget(&fs->nodes, refs[i], 1);
	}
	free(buf);
	free(refs);
}

static void
op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	do_readdir_common(req, ino, size, off, fi, 0);
}

static void
op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	do_readdir_common(req, ino, size, off, fi, 1);
}

/* ------------------------------------------------------------------ */
/* Files                                                                */

static struct ffile *
fh_new(const char *path, uint64_t ino, int writable)
{
	size_t pl = strlen(path);
	struct ffile *fh = calloc(1, sizeof(*fh) + pl + 1);
	if (!fh)
		return NULL;
	memcpy(fh->path, path, pl + 1);
	fh->ino = ino;
	fh->writable = writable;
	if (writable)
		pthread_mutex_init(&fh->mu, NULL);
	return fh;
}

static void
fh_free(struct ffs *fs, struct ffile *fh)
{
	if (!fh)
		return;
	if (fh->writable) {
		pthread_mutex_lock(&fh->mu);
		if (fh->w) {
			writer_del(fs, fh);
			ferry_file_close(&fh->w);
		}
		pthread_mutex_unlock(&fh->mu);
		pthread_mutex_destroy(&fh->mu);
	}
	free(fh);
}

/* The staged file, made at the first change (fh->mu held): empty for a
 * truncating open, else a copy of the current bytes. */
static int
fh_stage(struct ffs *fs, struct ffile *fh)
{
	if (fh->w)
		return 0;
	unsigned fl = (fh->trunc ? 0 : FERRY_CREATE_KEEP) |
	    (fh->excl ? FERRY_CREATE_EXCL : 0) | FERRY_CREATE_STREAM;
	int r = ferry_create(fs->f, fh->path, fl, &fh->w);
	if (r)
		return r;
	atomic_store(&fh->wsize, ferry_file_size(fh->w));
	fh->wmtime = (int64_t)time(NULL);
	writer_add(fs, fh);
	return 0;
}

/* The directory holding path changed (an upload landed in it): the
 * kernel's listing of it is not kept past this. */
static void
parent_changed(struct ffs *fs, const char *path)
{
	char parent[FFS_PATH_MAX];
	const char *sl = strrchr(path, '/');
	size_t pl = sl && sl != path ? (size_t)(sl - path) : 1;
	if (pl >= sizeof(parent))
		return;
	memcpy(parent, path, pl);
	parent[pl] = 0;
	fnode_dir_changed(&fs->nodes, fnode_peek_ino(&fs->nodes, parent));
}

/* Uploads what is staged and not yet committed: 0 or a positive errno for
 * the kernel (the worker's reason logged). */
static int
fh_commit(struct ffs *fs, struct ffile *fh, const char *op)
{
	int r = 0;
	pthread_mutex_lock(&fh->mu);
	if (fh->w && ferry_file_dirty(fh->w)) {
		struct ferry_stat st;
		r = ferry_commit(fh->w, &st);
		fh->failed = r != 0;
		if (r == 0) {
			fh->size = st.size;
			memcpy(fh->etag, st.etag, sizeof(fh->etag));
			fnode_note_kver(&fs->nodes, fh->ino, version_of(st.etag, st.size));
			vdir_drop(fs, fh->path, 1);
			parent_changed(fs, fh->path);
			ffs_memo_forget_all();
		}
	}
	pthread_mutex_unlock(&fh->mu);
	if (r == 0)
		return 0;
	const char *why = ferry_last_error();
	LOG_WARN("%s %s: the upload failed: %s", op, fh->path,
	    why[0] ? why : ferry_strerror(r));
	return ffs_err(fs, r, op, fh->path);
}

/*
 * A read-only open of a file whose version the memo holds asks the worker
 * over the local socket for the descriptors of its first granule at that
 * version, instead of a stat over HTTP: the worker checks the version as a
 * stat would (LFD_STALE if it has another), and the descriptors stay in
 * the cache for the open's first read.  Not when the kernel would keep
 * its page cache of that version (then no read may follow: the open stats
 * over HTTP, which fetches no descriptors).  1 when the worker confirmed it; 0
 * (a page not cached, another version, no socket) and the open stats as
 * before.
 */
static int
open_confirm_local(struct ffs *fs, const char *path, const struct ferry_stat *st,
    int64_t opened_ms)
{
	struct lfd_piece pc[LFDC_MAX_PIECES];
	struct lfd_hold hold;
	int64_t len = st->size < LFDC_GRAN ? st->size : LFDC_GRAN;
	int np = lfd_client_cached(fs->lfd, path, st->etag, st->size, 0, len, opened_ms,
	    pc, LFDC_MAX_PIECES, &hold);
	if (np <= 0)
		return 0;
	lfd_client_release(fs->lfd, &hold, 0);
	return 1;
}

static void
op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ffs *fs = req_fs(req);
	ffs_tune_readahead(fs);
	int writing = (fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC);
	if (writing && !fs->writable) {
		reply_err(req, EROFS);
		return;
	}
	char path[FFS_PATH_MAX];
	struct ferry_stat st;
	int is_dir = 0;
	int64_t wsize, wmtime, opened_ms = now_ms();
	if (!writing && fs->lfd && memo_get(fs, ino, &st) && st.size > 0 &&
	    fnode_path(&fs->nodes, ino, path, sizeof(path), &is_dir) == 0 && !is_dir &&
	    !writer_attr(fs, ino, NULL, NULL, &wsize, &wmtime) &&
	    !fnode_would_keep(&fs->nodes, ino, version_of(st.etag, st.size)) &&
	    open_confirm_local(fs, path, &st, opened_ms)) {
		/* The version a lookup or listing found, confirmed by the
		 * worker over the local socket: no stat over HTTP. */
	} else if (stat_ino(fs, req, ino, "open", path, sizeof(path), &st) < 0) {
		return;
	}
	if (st.is_dir) {
		reply_err(req, EISDIR);
		return;
	}
	struct ffile *fh = fh_new(path, ino, writing);
	if (!fh) {
		reply_err(req, ENOMEM);
		return;
	}
	fh->size = st.size;
	memcpy(fh->etag, st.etag, sizeof(fh->etag));
	fh->opened_ms = opened_ms;
	int keep = 0, direct = 0;
	fnode_open(&fs->nodes, ino, version_of(st.etag, st.size), &keep, &direct);
	if (writing) {
		fh->trunc = (fi->flags & O_TRUNC) != 0;
		keep = 0;
		if (fh->trunc) {
			/* Truncated now: a close without a write still commits. */
			pthread_mutex_lock(&fh->mu);
			int r = fh_stage(fs, fh);
			pthread_mutex_unlock(&fh->mu);
			if (r) {
				reply_err(req, ffs_err(fs, r, "open", path));
				fh_free(fs, fh);
				return;
			}
		}
	}
	fi->fh = (uintptr_t)fh;
	fi->keep_cache = keep;
	fi->direct_io = direct;
	fi->noflush = !writing;
	if (fuse_reply_open(req, fi) != 0)
		fh_free(fs, fh);
}

/*
 * A session thread's read buffer, kept between its reads (local reads
 * would otherwise allocate up to a MiB per read); freed when the thread
 * ends.  Spans above READBUF_KEEP are allocated per read.
 */
#define READBUF_KEEP ((size_t)FFS_MAX_READ + 4 * 32768)
static pthread_key_t readbuf_key;
static pthread_once_t readbuf_once = PTHREAD_ONCE_INIT;

static void
readbuf_init(void)
{
	if (pthread_key_create(&readbuf_key, free) != 0)
		LOG_WARN("no thread-local read buffers: each local read allocates one");
}

/* A buffer of n bytes: the thread's (*own 0) or a new one (*own 1, the
 * caller frees it); NULL when out of memory. */
static unsigned char *
readbuf_get(size_t n, int *own)
{
	*own = 1;
	if (n > READBUF_KEEP || pthread_once(&readbuf_once, readbuf_init) != 0)
		return malloc(n ? n : 1);
	unsigned char *b = pthread_getspecific(readbuf_key);
	if (!b) {
		b = malloc(READBUF_KEEP);
		if (!b || pthread_setspecific(readbuf_key, b) != 0) {
			free(b);
			return malloc(n ? n : 1);
		}
	}
	*own = 0;
	return b;
}

/*
 * Answers a read from page files: 0 when answered (or the reply failed),
 * -ESTALE for another version, -EAGAIN to read through HTTP instead.
 * The pieces come from the descriptor cache (localfd_client.h: the
 * worker is asked once per granule per open, and again after
 * LFDC_TRUST_MS) or, when it cannot serve them, from one exchange for
 * just this range.  Every chunk that holds a byte of the read is read
 * whole into one buffer and checked against the CRC the worker sent
 * (lfd_piece_read), cached or not: a 4 KiB read checks one chunk.  A chunk
 * that fails is not used: its cache entries are dropped, -EAGAIN, and the
 * read goes through HTTP, where the worker finds the page bad, drops it
 * and fetches it again.
 */
static int
read_local(struct ffs *fs, fuse_req_t req, struct ffile *fh, size_t len, off_t off)
{
	struct lfd_piece pc[LFDC_MAX_PIECES];
	uint32_t crcs[LFDC_MAX_CRCS];
	struct lfd_hold hold;
	int np = lfd_client_cached(fs->lfd, fh->path, fh->etag, fh->size, off,
	    (int64_t)len, fh->opened_ms, pc, LFDC_MAX_PIECES, &hold);
	int cached = np > 0;
	if (np == -EAGAIN)
		np = lfd_client_get(fs->lfd, fh->path, fh->etag, off, (int64_t)len, pc,
		    LFDC_MAX_PIECES, crcs, LFDC_MAX_CRCS);
	if (np < 0)
		return np;
	size_t span = 0;
	for (int i = 0; i < np; i++)
		span += lfd_piece_span(&pc[i]);
	union {
		struct fuse_bufvec bv;
		char room[sizeof(struct fuse_bufvec) +
		    LFDC_MAX_PIECES * sizeof(struct fuse_buf)];
	} u;
	struct fuse_bufvec *bv = &u.bv;
	memset(bv, 0, sizeof(*bv));
	int own;
	unsigned char *buf = readbuf_get(span, &own);
	int rc = buf ? 0 : -EAGAIN, bad = 0;
	size_t at = 0;
	for (int i = 0; i < np && rc == 0; i++) {
		const unsigned char *data;
		if (lfd_piece_read(&pc[i], buf + at, &data) < 0) {
			static int warned;
			if (__atomic_fetch_add(&warned, 1, __ATOMIC_RELAXED) < 10)
				LOG_WARN("local read of %s: a chunk of a page file failed its "
					 "CRC; reading it through the worker", fh->path);
			rc = -EAGAIN;
			bad = 1;
			break;
		}
		bv->buf[i] = (struct fuse_buf){.size = (size_t)pc[i].len,
		    .mem = (void *)data};
		at += lfd_piece_span(&pc[i]);
	}
	if (rc == 0) {
		bv->count = (size_t)np;
		worker_answered(fs);
		fuse_reply_data(req, bv, 0);
	}
	if (own)
		free(buf);
	if (cached)
		lfd_client_release(fs->lfd, &hold, bad);
	else
		for (int i = 0; i < np; i++)
			close(pc[i].fd);
	return rc;
}

static void
op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	struct ffs *fs = req_fs(req);
	struct ffile *fh = (struct ffile *)(uintptr_t)fi->fh;
	if (!fh || off < 0) {
		reply_err(req, EINVAL);
		return;
	}
	if (size > FFS_MAX_READ)
		size = FFS_MAX_READ;
	if (fh->writable) {
		pthread_mutex_lock(&fh->mu);
		if (fh->w) {
			/* What this open wrote, not yet uploaded. */
			char *wb = malloc(size ? size : 1);
			ssize_t n = wb ? ferry_file_pread(fh->w, wb, size, off) : -ENOMEM;
			pthread_mutex_unlock(&fh->mu);
			if (n < 0)
				reply_err(req, (int)-n);
			else
				fuse_reply_buf(req, wb, (size_t)n);
			free(wb);
			return;
		}
		pthread_mutex_unlock(&fh->mu);
	}
	if (off >= fh->size || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t len = size;
	if ((int64_t)len > fh->size - off)
		len = (size_t)(fh->size - off);
	if (fs->lfd) {
		int r = read_local(fs, req, fh, len, off);
		if (r == 0)
			return;
		if (r == -ESTALE) {
			reply_err(req, ffs_err(fs, r, "read", fh->path));
			return;
		}
	}
	char *buf = malloc(len);
	if (!buf) {
		reply_err(req, ENOMEM);
		return;
	}
	ssize_t n = ferry_pread_etag(fs->f, fh->path, buf, len, off, fh->etag);
	if (n >= 0 && (size_t)n < len)
		n = -ESTALE; /* shorter than the version we opened */
	if (n < 0)
		reply_err(req, ffs_err(fs, (int)n, "read", fh->path));
	else {
		worker_answered(fs);
		fuse_reply_buf(req, buf, (size_t)n);
	}
	free(buf);
}

static void
op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ffs *fs = req_fs(req);
	struct ffile *fh = (struct ffile *)(uintptr_t)fi->fh;
	if (fh && fh->writable) {
		/* Normally the last FLUSH uploaded it; what is still staged
		 * (writes through a mapping after close) goes now, unless a
		 * FLUSH failed and told the program so. */
		pthread_mutex_lock(&fh->mu);
		if (fh->w && ferry_file_dirty(fh->w) && !fh->failed && !fh->discard) {
			int r = ferry_commit(fh->w, NULL);
			if (r)
				log_limited(fs, "release", fh->path, r);
		}
		pthread_mutex_unlock(&fh->mu);
	}
	fh_free(fs, fh);
	reply_err(req, 0);
}

/* ------------------------------------------------------------------ */
/* Extended attributes                                                  */

static void
op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct ffs *fs = req_fs(req);
	int want_etag = strcmp(name, XA_ETAG) == 0;
	if (!want_etag && strcmp(name, XA_CACHED) != 0) {
		/* No ACLs, no security labels here: saying the namespace is
		 * unsupported (not just empty) lets tools such as ls stop
		 * asking for every file, which costs a round trip each. */
		if (strncmp(name, "user.", 5) != 0)
			reply_err(req, EOPNOTSUPP);
		else
			reply_err(req, ENODATA);
		return;
	}
	char path[FFS_PATH_MAX];
	int is_dir = 0;
	int r = fnode_path(&fs->nodes, ino, path, sizeof(path), &is_dir);
	if (r) {
		reply_err(req, r == -ENOENT ? ESTALE : -r);
		return;
	}
	if (is_dir) {
		reply_err(req, ENODATA);
		return;
	}
	struct ferry_stat st;
	r = ferry_stat(fs->f, path, &st);
	if (r) {
		reply_err(req, ffs_err(fs, r, "getxattr", path));
		return;
	}
	worker_answered(fs);
	char val[FERRY_ETAG_MAX + 32];
	if (want_etag)
		snprintf(val, sizeof(val), "%s", st.etag);
	else
		snprintf(val, sizeof(val), "%" PRId64, st.cached_bytes);
	size_t len = strlen(val);
	if (len == 0)
		reply_err(req, ENODATA);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

static void
op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct ffs *fs = req_fs(req);
	static const char names[] = XA_ETAG "\0" XA_CACHED; /* + final NUL */
	int is_dir = 0;
	char path[FFS_PATH_MAX];
	int r = fnode_path(&fs->nodes, ino, path, sizeof(path), &is_dir);
	if (r) {
		reply_err(req, r == -ENOENT ? ESTALE : -r);
		return;
	}
	size_t len = is_dir ? 0 : sizeof(names);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names, len);
}

/* ------------------------------------------------------------------ */
/* Writes                                                               */

/* The parent of a new name must be inside a mount: "/" holds mounts,
 * which `ferry mount` makes. */
static int
write_path(struct ffs *fs, fuse_req_t req, fuse_ino_t parent, const char *name,
    char *path, size_t n)
{
	if (!fs->writable) {
		reply_err(req, EROFS);
		return -1;
	}
	if (parent == FNODE_ROOT) {
		reply_err(req, EPERM);
		return -1;
	}
	int r = child_path(fs, parent, name, path, n);
	if (r) {
		reply_err(req, -r);
		return -1;
	}
	/* The listing the kernel keeps of parent is not kept past this, nor
	 * any remembered stat. */
	fnode_dir_changed(&fs->nodes, parent);
	ffs_memo_forget_all();
	return 0;
}

static void
op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
    struct fuse_file_info *fi)
{
	struct ffs *fs = req_fs(req);
	char path[FFS_PATH_MAX];
	if (write_path(fs, req, parent, name, path, sizeof(path)) < 0)
		return;
	struct ffile *fh = fh_new(path, 0, 1);
	if (!fh) {
		reply_err(req, ENOMEM);
		return;
	}
	fh->trunc = 1;
	fh->excl = (fi->flags & O_EXCL) != 0;
	uint64_t ino;
	int r = fnode_ref(&fs->nodes, path, 0, 0, 1, &ino);
	if (r == 0) {
		fh->ino = ino;
		pthread_mutex_lock(&fh->mu);
		r = fh_stage(fs, fh); /* a close without a write makes it, empty */
		pthread_mutex_unlock(&fh->mu);
		if (r)
			fnode_forget(&fs->nodes, ino, 1);
	}
	if (r) {
		reply_err(req, ffs_err(fs, r, "create", path));
		fh_free(fs, fh);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	fill_attr(fs, ino, 0, 0, fh->wmtime, &e.attr);
	fi->fh = (uintptr_t)fh;
	fi->keep_cache = 0;
	fi->direct_io = 0;
	fi->noflush = 0;
	if (fuse_reply_create(req, &e, fi) != 0) {
		fnode_forget(&fs->nodes, ino, 1);
		fh_free(fs, fh);
	}
}

static void
op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
    off_t off, struct fuse_file_info *fi)
{
	struct ffs *fs = req_fs(req);
	struct ffile *fh = (struct ffile *)(uintptr_t)fi->fh;
	if (!fh || !fh->writable) {
		reply_err(req, EBADF);
		return;
	}
	pthread_mutex_lock(&fh->mu);
	ssize_t n = fh_stage(fs, fh);
	if (n == 0)
		n = ferry_pwrite(fh->w, buf, size, off);
	if (n >= 0) {
		atomic_store(&fh->wsize, ferry_file_size(fh->w));
		fh->wmtime = (int64_t)time(NULL);
		fh->failed = 0;
		fh->discard = 0;
	}
	pthread_mutex_unlock(&fh->mu);
	if (n < 0)
		reply_err(req, ffs_err(fs, (int)n, "write", fh->path));
	else
		fuse_reply_write(req, (size_t)n);
}

/*
 * Did the process closing a file die of a signal?  The kernel closes a
 * killed program's files (kill -9, the OOM killer) with a FLUSH like any
 * close(); a checkpoint cut off mid-save must not be published.  From
 * /proc/TID/stat: flags (field 9) has PF_EXITING while the task exits,
 * and exit_code (field 52, Linux >= 3.5) holds the signal that killed it
 * in its low 7 bits (0 for exit()).  Anything unreadable: no.
 */
static int
closer_killed(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	if (!ctx || ctx->pid <= 0)
		return 0;
	char p[64], buf[1024];
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)ctx->pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *s = strrchr(buf, ')'); /* the name may hold spaces and parens */
	if (!s)
		return 0;
	unsigned long long flags = 0;
	long long code = 0;
	int field = 2, got = 0;
	for (char *save = NULL, *t = strtok_r(s + 1, " \n", &save); t;
	    t = strtok_r(NULL, " \n", &save)) {
		field++;
		if (field == 9)
			flags = strtoull(t, NULL, 10), got++;
		else if (field == 52) {
			code = strtoll(t, NULL, 10), got++;
			break;
		}
	}
	return got == 2 && (flags & 0x4 /* PF_EXITING */) && (code & 0x7f) != 0;
}

/* close(): what was written goes to the under-store now, and its answer
 * is close()'s; unless the program closing it was killed: then nothing
 * is published (release drops the staged bytes and cuts a stream), though
 * a write through another descriptor of the same open revives it. */
static void
op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ffs *fs = req_fs(req);
	struct ffile *fh = (struct ffile *)(uintptr_t)fi->fh;
	if (fh && fh->writable && closer_killed(req)) {
		pthread_mutex_lock(&fh->mu);
		if (fh->w && ferry_file_dirty(fh->w)) {
			fh->discard = 1;
			LOG_WARN("close %s: the writer was killed; not published", fh->path);
		}
		pthread_mutex_unlock(&fh->mu);
		reply_err(req, 0);
		return;
	}
	reply_err(req, fh && fh->writable ? fh_commit(fs, fh, "close") : 0);
}

static void
op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
    struct fuse_file_info *fi)
{
	struct ffs *fs = req_fs(req);
	struct ffile *fh = (struct ffile *)(uintptr_t)fi->fh;
	reply_err(req, fh && fh->writable ? fh_commit(fs, fh, "fsync") : 0);
}

static void
op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
    struct fuse_file_info *fi)
{
	struct ffs *fs = req_fs(req);
	if (!fs->writable) {
		reply_err(req, EROFS);
		return;
	}
	char path[FFS_PATH_MAX];
	int is_dir = 0;
	int r = fnode_path(&fs->nodes, ino, path, sizeof(path), &is_dir);
	if (r) {
		reply_err(req, r == -ENOENT ? ESTALE : -r);
		return;
	}
	ffs_memo_forget_all();
	if (to_set & FUSE_SET_ATTR_SIZE) {
		struct ffile *fh = fi ? (struct ffile *)(uintptr_t)fi->fh : NULL;
		int64_t size = attr->st_size;
		if (is_dir) {
			reply_err(req, EISDIR);
			return;
		}
		if (fh && fh->writable) {
			pthread_mutex_lock(&fh->mu);
			if (!fh->w && size == 0)
				fh->trunc = 1; /* no need for the old bytes */
			r = fh_stage(fs, fh);
			if (r == 0)
				r = ferry_file_truncate(fh->w, size);
			if (r == 0)
				atomic_store(&fh->wsize, size);
			pthread_mutex_unlock(&fh->mu);
		} else {
			/* truncate(2) by name: a new version at once. */
			ferry_file_t *w = NULL;
			r = ferry_create(fs->f, path, size ? FERRY_CREATE_KEEP : 0, &w);
			if (r == 0)
				r = ferry_file_truncate(w, size);
			if (r == 0)
				r = ferry_commit(w, NULL);
			ferry_file_close(&w);
		}
		if (r) {
			reply_err(req, ffs_err(fs, r, "truncate", path));
			return;
		}
	}
	/* Modes, owners and times: the under-stores keep none of them
	 * through ferry, so they are accepted and not stored. */
	struct stat a;
	int64_t wsize, wmtime;
	struct ferry_stat st;
	if (writer_attr(fs, ino, NULL, NULL, &wsize, &wmtime)) {
		fill_attr(fs, ino, 0, wsize, wmtime, &a);
		fuse_reply_attr(req, &a, 0);
		return;
	}
	r = ferry_stat(fs->f, path, &st);
	if (r == -ENOENT && is_dir && vdir_has(fs, path)) {
		fill_attr(fs, ino, 1, 0, 0, &a);
		fuse_reply_attr(req, &a, fs->attr_timeout);
		return;
	}
	if (r) {
		reply_err(req, ffs_err(fs, r, "setattr", path));
		return;
	}
	fill_attr(fs, ino, st.is_dir, st.size, st.mtime, &a);
	fuse_reply_attr(req, &a, fs->attr_timeout);
}

static void
op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
    dev_t rdev)
{
	reply_err(req, req_fs(req)->writable ? EPERM : EROFS);
}

static void
op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct ffs *fs = req_fs(req);
	char path[FFS_PATH_MAX];
	if (write_path(fs, req, parent, name, path, sizeof(path)) < 0)
		return;
	struct ferry_stat st;
	int r = ferry_stat(fs->f, path, &st);
	if (r == 0 || vdir_has(fs, path)) {
		reply_err(req, EEXIST);
		return;
	}
	if (r != -ENOENT) {
		reply_err(req, ffs_err(fs, r, "mkdir", path));
		return;
	}
	uint64_t ino;
	r = vdir_add(fs, path);
	if (r == 0 && (r = fnode_ref(&fs->nodes, path, 1, 0, 1, &ino)) != 0)
		vdir_drop(fs, path, 0);
	if (r) {
		reply_err(req, -r);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr_timeout = e.entry_timeout = fs->attr_timeout;
	fill_attr(fs, ino, 1, 0, 0, &e.attr);
	if (fuse_reply_entry(req, &e) != 0)
		fnode_forget(&fs->nodes, ino, 1);
}

static void
op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ffs *fs = req_fs(req);
	char path[FFS_PATH_MAX];
	if (write_path(fs, req, parent, name, path, sizeof(path)) < 0)
		return;
	int r = ferry_unlink(fs->f, path);
	reply_err(req, r ? ffs_err(fs, r, "unlink", path) : 0);
}

static int
count_entry(void *arg, const char *name, const struct ferry_stat *st)
{
	++*(int *)arg;
	return 0;
}

/* rmdir: a directory mkdir'd here goes; one the worker lists must be
 * empty, and goes with its last file (the worker's namespace has no empty
 * directories), so an empty one left from outside cannot be removed. */
static void
op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct ffs *fs = req_fs(req);
	char path[FFS_PATH_MAX], next[FERRY_NEXT_MAX];
	if (write_path(fs, req, parent, name, path, sizeof(path)) < 0)
		return;
	int n = 0, trunc = 0;
	int r = ferry_list_page(fs->f, path, NULL, 1, count_entry, &n, next,
	    sizeof(next), &trunc);
	if (r == 0 && n > 0) {
		reply_err(req, ENOTEMPTY);
		return;
	}
	if (vdir_drop(fs, path, 0) > 0 || r == -ENOENT) {
		reply_err(req, 0);
		return;
	}
	if (r) {
		reply_err(req, ffs_err(fs, r, "rmdir", path));
		return;
	}
	LOG_WARN("rmdir %s: an empty directory of the under-store cannot be removed through ferry", path);
	reply_err(req, EPERM);
}

static void
op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
    const char *name)
{
	reply_err(req, req_fs(req)->writable ? EPERM : EROFS);
}

static void
op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
    fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct ffs *fs = req_fs(req);
	char from[FFS_PATH_MAX], to[FFS_PATH_MAX];
	if (write_path(fs, req, parent, name, from, sizeof(from)) < 0 ||
	    write_path(fs, req, newparent, newname, to, sizeof(to)) < 0)
		return;
	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		reply_err(req, EINVAL); /* RENAME_EXCHANGE, WHITEOUT */
		return;
	}
	struct ferry_stat st;
	if ((flags & RENAME_NOREPLACE) && ferry_stat(fs->f, to, &st) == 0) {
		reply_err(req, EEXIST);
		return;
	}
	int r;
	if (vdir_has(fs, from)) {
		r = vdir_add(fs, to);
		if (r == 0)
			vdir_drop(fs, from, 0);
	} else {
		r = ferry_rename(fs->f, from, to);
	}
	if (r == 0)
		fnode_rename(&fs->nodes, from, to);
	reply_err(req, r ? ffs_err(fs, r, "rename", from) : 0);
}

static void
op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
    const char *newname)
{
	reply_err(req, req_fs(req)->writable ? EPERM : EROFS);
}

static void
op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
    const char *value, size_t size, int flags)
{
	reply_err(req, req_fs(req)->writable ? ENOTSUP : EROFS);
}

static void
op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	reply_err(req, req_fs(req)->writable ? ENOTSUP : EROFS);
}

static void
op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
    off_t length, struct fuse_file_info *fi)
{
	reply_err(req, req_fs(req)->writable ? EOPNOTSUPP : EROFS);
}

static const struct fuse_lowlevel_ops ll_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.statfs = op_statfs,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.create = op_create,
	.fallocate = op_fallocate,
};

const void *
ffs_ll_ops(size_t *size)
{
	*size = sizeof(ll_ops);
	return &ll_ops;
}
