/*
 * ufs.h: the under-store (UFS) interface: one table of function pointers,
 * one file per backend (ufs_file.c for file://, ufs_s3.c for s3://), after
 * varnish's struct stevedore and curl's lib/vtls.
 *
 * Paths given to a backend are relative to the mount's root URI, with no
 * leading '/', already validated by the caller (no "..", no empty or "."
 * segments, no NUL, valid UTF-8).  "" is the root.
 *
 * Error convention: negative errno.  -ENOENT no such object, -EACCES
 * denied, -ESTALE the object changed (ETag mismatch on a versioned read),
 * -ETIMEDOUT the store did not answer in time, -EIO anything else
 * (including a store that answers garbage).  A backend never hangs: every
 * call has a timeout.  Backends are thread-safe: many threads call one
 * instance at once.  A backend that knows more than the errno (the store's
 * error code and message, the transport's reason) says it through
 * ufs_set_error(), so that it reaches the user (ufs_last_error()).
 */
#ifndef FERRY_UFS_H
#define FERRY_UFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define UFS_ETAG_MAX 128
#define UFS_KEY_MAX 1024 /* S3's key limit */

struct ufs_stat {
	int64_t size;
	int64_t mtime; /* unix seconds */
	char etag[UFS_ETAG_MAX]; /* S3 ETag without quotes; "" for files */
	int is_dir;
};

struct ufs_entry {
	const char *key; /* path relative to the mount root; common prefixes
	                    end in the delimiter */
	int is_dir;
	int64_t size;
	int64_t mtime;    /* unix seconds; 0 if unknown (S3 prefixes) */
	const char *etag; /* "" if unknown */
};

/* Called once per entry, in ascending byte order of key.  Non-zero stops. */
typedef int (*ufs_list_fn)(void *arg, const struct ufs_entry *e);

struct ufs_opt {
	const char *key; /* "s3.endpoint", "s3.region", ... */
	const char *value;
};

/* One option a backend takes, for help texts and "did you mean". */
struct ufs_optdoc {
	const char *key;   /* "s3.region" */
	const char *value; /* what the value is: "REGION", "MS", "true|false" */
	const char *help;  /* one line */
};

/*
 * An object write: its body's size if known, conditions, and the headers
 * that go with the object (Content-Type, Content-Encoding, Cache-Control,
 * x-amz-meta-*: lowercase names, kept where the store can keep them).
 */
struct ufs_put_opts {
	int64_t size;            /* body bytes, or -1 when not known */
	const char *if_match;    /* write only over this version (ETag), or NULL */
	int if_none_match;       /* write only if no object has this key */
	const struct ufs_opt *headers;
	int nheaders;
	/* The sizes of the parts a client uploaded (S3 multipart), or NULL:
	 * a store that writes in parts makes its parts these where it can,
	 * so that the new object's ETag is the one S3 gives that upload
	 * ("md5-of-md5s-N").  Their sum is size. */
	const int64_t *parts;
	int nparts;
};

/*
 * The headers stored with an object (content-type, content-encoding,
 * content-language, content-disposition, cache-control, expires,
 * x-amz-meta-*), as a stat answers them: n pairs "name\0value\0" in buf,
 * names lowercase.  The bound holds everything a write may store (the
 * checks of ufs_put_begin: 32 headers, 1 KiB a value, 2 KB of x-amz-meta-*);
 * a header a store holds that would not pass them, or not fit, is left out,
 * never truncated.
 */
#define UFS_HDRS_MAX 9216
#define UFS_HDRS_COUNT_MAX 32 /* headers kept with one object */
struct ufs_hdrs {
	int known;  /* 1: the answer said what is stored (n may be 0: none);
	             * 0: it did not say (unknown, not "none") */
	int n;
	size_t len; /* bytes of buf used */
	char buf[UFS_HDRS_MAX];
};
/* Empty and known: "no headers stored". */
void ufs_hdrs_init(struct ufs_hdrs *h);
/* Adds one; the name in any case (kept lowercase), at most once.  0, or
 * -EINVAL (not a header an object keeps, a value that is not printable
 * ASCII or too long, a name given twice), -E2BIG (no room): left out. */
int ufs_hdrs_add(struct ufs_hdrs *h, const char *name, size_t nl,
    const char *value, size_t vl);
/* Iterates: *off starts at 0; 1 with the next pair, 0 at the end. */
int ufs_hdrs_next(const struct ufs_hdrs *h, size_t *off, const char **name,
    const char **value);
/* The value of name (lowercase), or NULL. */
const char *ufs_hdrs_get(const struct ufs_hdrs *h, const char *name);
/* The pairs as ufs_put_opts headers (pointing into h), at most max: n. */
int ufs_hdrs_opts(const struct ufs_hdrs *h, struct ufs_opt *out, int max);

struct ufs_ops {
	const char *scheme; /* "file", "s3" */
	/* The options open takes, ending with {NULL}: what `ferry mount
	 * --help` and the man page list. */
	const struct ufs_optdoc *options;
	/*
	 * root: the part of the URI after "scheme://".  Options are the
	 * mount's --option pairs.  On failure returns -errno and sets *err
	 * to a malloc'd message the caller frees.
	 */
	int (*open)(const char *root, const struct ufs_opt *opts, int nopts,
	    void **state, char **err);
	void (*close)(void *state);
	/* A directory (a prefix with objects under it, or a real dir) has
	 * is_dir set.  "" (the root) is always a directory.  A path ending in
	 * '/' names a directory marker object, never a directory. */
	int (*stat)(void *state, const char *path, struct ufs_stat *st);
	/*
	 * Lists keys starting with prefix, in ascending byte order, strictly
	 * after start_after ("" for the beginning), at most max_keys entries
	 * (keys and common prefixes together).  With a delimiter (any
	 * non-empty string; NULL or "" for none), keys that contain it after
	 * the prefix are rolled up into one common-prefix entry (is_dir set):
	 * the key up to and including the delimiter's first occurrence after
	 * the prefix, as S3 does; a common prefix not after start_after is not
	 * listed.  Without one the listing is recursive.  A key may end in
	 * '/' (a zero-byte "directory marker" object, which file:// shows for
	 * an empty directory).  Sets *truncated if more entries follow.
	 * Memory used is bounded by max_keys (file://: by a fixed budget for
	 * the sorted directory windows it keeps across pages), never by the
	 * listing's size.
	 */
	int (*list)(void *state, const char *prefix, const char *delimiter,
	    const char *start_after, int max_keys, ufs_list_fn fn, void *arg,
	    int *truncated);
	/*
	 * Reads len bytes at off into buf.  If etag is non-empty and the
	 * object's ETag differs (S3: If-Match), returns -ESTALE.  Returns
	 * bytes read (short only at end of object) or -errno.
	 */
	ssize_t (*read)(void *state, const char *path, const char *etag,
	    int64_t off, void *buf, size_t len);
	/*
	 * Optional (NULL for file://, whose stat is local and cheap): a read
	 * of len bytes at off with no version check that also answers stat,
	 * in one request, so that a cold read costs one round trip, not two.
	 * st gets the metadata of the very version whose bytes are in buf.
	 * Returns bytes read (short only at the end of the object) or -errno.
	 * -ENOENT: no object has this key; with dirs set the backend first
	 * tells a directory (then 0 with st->is_dir, nothing read) from a
	 * missing key, as stat does; without, -ENOENT may be a directory.
	 * -ERANGE: the reply carried no metadata to trust (off past the end,
	 * an empty object): the caller asks stat instead.
	 */
	ssize_t (*read_stat)(void *state, const char *path, int64_t off,
	    void *buf, size_t len, int dirs, struct ufs_stat *st);

	/*
	 * Writes (all NULL for a read-only backend).  An object is written in
	 * one session: put_begin, put_write with the body in order (any
	 * sizes), then put_commit, which makes the whole object visible at
	 * once and gives its new version's stat, or put_abort, which leaves
	 * nothing behind (no torn object, no half upload).  A session is used
	 * by one thread at a time; put_commit and put_abort free it.
	 * -EEXIST / -ESTALE: the if_none_match / if_match condition failed.
	 */
	int (*put_begin)(void *state, const char *path,
	    const struct ufs_put_opts *o, void **put);
	int (*put_write)(void *put, const void *buf, size_t len);
	int (*put_commit)(void *put, struct ufs_stat *st);
	void (*put_abort)(void *put);
	/* Removes an object; 0 also if there was none (as S3 does). */
	int (*remove)(void *state, const char *path);
	/* Copies src to dst within this store (S3: CopyObject, in the
	 * store); st gets dst's new version.  -ENOENT: no src. */
	int (*copy)(void *state, const char *src, const char *dst,
	    const struct ufs_put_opts *o, struct ufs_stat *st);
};

extern const struct ufs_ops ufs_file_ops;
extern const struct ufs_ops ufs_s3_ops;

/* Finds the backend for a URI's scheme; sets *root to the part after "://". */
const struct ufs_ops *ufs_lookup(const char *uri, const char **root);
/* The i-th backend (0, 1, ...), NULL past the last. */
const struct ufs_ops *ufs_backend(int i);

/*
 * Why the last failed under-store call on this thread failed, in words that
 * name the store and its answer: "s3://bkt/a.bin: AccessDenied: Access
 * Denied (HTTP 403)", "s3://bkt: Could not resolve host: h (5 attempts)".
 * "" when that call (or the last one) gave no more than its errno.
 * The wrappers below clear it when a call starts; backends set it when
 * one fails;
 * callers on the same thread (the control API's error replies, the mount
 * check) read it right after the failed call.  Thread-local.
 */
const char *ufs_last_error(void);
void ufs_clear_error(void);
void ufs_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The headers stored with the object that the last ufs_stat or
 * ufs_read_stat on this thread answered (known 0: it failed, or the backend
 * does not say), read right after the call, as ufs_last_error() is: so
 * that a cold read (the reader's ufs_read_stat) hands them up with no
 * change to the read path's signatures.  Thread-local.  A backend (or the
 * write-back layer) that knows them fills ufs_answer_hdrs() while it
 * answers: the wrappers reset it (known 0) before calling it.
 */
const struct ufs_hdrs *ufs_last_hdrs(void);
struct ufs_hdrs *ufs_answer_hdrs(void);
void ufs_last_hdrs_reset(void);

/*
 * --- The wrapper layer: what every caller above the backends uses. ---
 *
 * struct ufs is one open backend (a mount's under-store), after varnish's
 * STV_* wrappers around struct stevedore: ufs_stat/list/read/read_stat
 * check the instance and the arguments, clamp lengths, count requests,
 * errors and bytes, and log a failure once, for every backend alike.
 * Nothing above this layer calls through struct ufs_ops.
 *
 * A ufs whose backend failed to open is kept (a mount restored at start
 * whose NAS is not there yet): every call on it fails with -EIO and
 * ufs_last_error() says why.
 */
struct ufs;

/* Opens the backend for uri ("scheme://root") with options.  *out is set
 * (NULL only for -ENOMEM or an unknown scheme, -EINVAL); on a failed open
 * it is a broken instance and the return value is the backend's -errno
 * with ufs_open_error() saying why. */
int ufs_open(const char *uri, const struct ufs_opt *opts, int nopts,
    struct ufs **out);
/* The same over a given backend table (tests use a fake one). */
int ufs_open_ops(const struct ufs_ops *ops, const char *label,
    const char *root, const struct ufs_opt *opts, int nopts, struct ufs **out);
void ufs_close(struct ufs **u);
/* NULL when the backend is open, else why it is not. */
const char *ufs_open_error(const struct ufs *u);
/* The backend has read_stat (a cold read that is also a stat). */
int ufs_has_read_stat(const struct ufs *u);

int ufs_stat(struct ufs *u, const char *path, struct ufs_stat *st);
int ufs_list(struct ufs *u, const char *prefix, const char *delimiter,
    const char *start_after, int max_keys, ufs_list_fn fn, void *arg,
    int *truncated);
ssize_t ufs_read(struct ufs *u, const char *path, const char *etag,
    int64_t off, void *buf, size_t len);
/* -ENOTSUP when the backend has no read_stat. */
ssize_t ufs_read_stat(struct ufs *u, const char *path, int64_t off,
    void *buf, size_t len, int dirs, struct ufs_stat *st);

/*
 * Writes, through the same layer (see struct ufs_ops for the contract):
 * -EROFS when the backend cannot write.  ufs_put_commit and ufs_put_abort
 * free the session and clear *p.
 */
struct ufs_put;
int ufs_writable(const struct ufs *u);
int ufs_put_begin(struct ufs *u, const char *path,
    const struct ufs_put_opts *o, struct ufs_put **p);
int ufs_put_write(struct ufs_put *p, const void *buf, size_t len);
int ufs_put_commit(struct ufs_put **p, struct ufs_stat *st);
void ufs_put_abort(struct ufs_put **p);
int ufs_remove(struct ufs *u, const char *path);
int ufs_copy(struct ufs *u, const char *src, const char *dst,
    const struct ufs_put_opts *o, struct ufs_stat *st);

/*
 * --- Write-back (a mount's option write=back; ufs_wb.c) ---
 *
 * A write-back instance answers a write once its body is durable in a
 * staging area on local disk (fsync'd data and journal record), and a
 * persister uploads it to the store in the background: oldest first, a
 * bounded number at once, under a bandwidth cap, retried with backoff
 * until the store takes it.  Deletes are queued the same way (a
 * tombstone).  Until then the instance's reads (stat, read, read_stat,
 * list) answer from the staging area for those keys, so everything above
 * this layer (the metadata cache, the reader, listings) sees the new
 * state at once.  Per key, uploads happen in write order and a newer
 * write replaces an older one not yet started (last writer wins).  The
 * staging area survives kill -9: records are found again when the mount's
 * instance is set up after a restart.  Staging is bounded (limit): a write
 * that would pass it fails with -ENOBUFS (S3 SlowDown), never a lost one.
 *
 * The area of a mount is <dir>/<ident as 16 hex digits>/, so it follows
 * the mount's URI (its objects' identity) across restarts and re-mounts.
 */
/* Called (no lock held) when a staged object reached the store: staged is
 * what reads answered until now, stored the store's stat of it. */
typedef void (*ufs_wb_persisted_fn)(void *arg, uint64_t ident,
    const char *name, const char *path, const struct ufs_stat *staged,
    const struct ufs_stat *stored);
struct ufs_wb_cfg {
	const char *dir;   /* the staging root */
	int64_t limit;     /* bytes staged at most, all mounts together */
	int parallel;      /* uploads at once */
	int64_t bandwidth; /* bytes per second to the stores; 0: no cap */
	ufs_wb_persisted_fn persisted;
	void *arg;
};
/* Starts the persister (once per process).  0 or -errno with *err. */
int ufs_wb_start(const struct ufs_wb_cfg *cfg, char **err);
/* Stops the persister; what is staged stays on disk for the next start.
 * Then, once every write-back instance is closed, ufs_wb_free frees the
 * rest (reads of staged data work until then). */
void ufs_wb_stop(void);
void ufs_wb_free(void);
/* Makes u (a mount's instance, not yet shared) write-back, staging in the
 * area of ident (name: the mount's, for status and logs); loads what a
 * previous run left there.  0 or -errno with *err. */
int ufs_set_writeback(struct ufs *u, uint64_t ident, const char *name,
    char **err);
int ufs_is_writeback(const struct ufs *u);
/* Did the write-back upload of path's staged write with ETag `from` make
 * the store's version with ETag `to` (the same bytes)?  1 or 0: a reader
 * pinned to the staged version may take the stored one's.  (Each mount
 * remembers its latest uploads.) */
int ufs_wb_moved(struct ufs *u, const char *path, const char *from,
    const char *to);

struct ufs_wb_status {
	char name[64];
	uint64_t ident;
	int attached;          /* a mount's instance is there to upload */
	int64_t objects;       /* writes and deletes not yet in the store */
	int64_t bytes;
	int64_t oldest_s;      /* age of the oldest, seconds (0: none) */
	int64_t uploading;
	int64_t uploaded;      /* since start */
	int64_t failures;      /* failed attempts since start */
	char last_error[256];  /* the last failure's reason ("" if none) */
};
/* One row per staging area in use: a malloc'd array (*out) and its length,
 * or -ENOMEM. */
int ufs_wb_status(struct ufs_wb_status **out);
/* Writes and deletes of ident not yet in the store. */
int64_t ufs_wb_pending(uint64_t ident);
struct dbuf;
int ufs_wb_metrics_render(struct dbuf *b);

/*
 * Counters (process-wide, relaxed atomics), for /metrics and /v1/stats.
 * A write is one request however many the store needs for it (the parts
 * of a multipart upload); write_bytes counts the bodies of committed
 * writes (a copy, done inside the store, adds none).
 */
enum ufs_op {
	UFSOP_STAT, UFSOP_LIST, UFSOP_READ, UFSOP_WRITE, UFSOP_REMOVE,
	UFSOP_COPY, UFSOP__N
};
struct ufs_counters {
	int64_t requests[UFSOP__N];
	int64_t errors[UFSOP__N];
	int64_t read_bytes;
	int64_t write_bytes;
};
void ufs_get_counters(struct ufs_counters *out);

/*
 * The file:// listing's directory snapshots (ufs_file_snap.c),
 * process-wide: scans counts reads of a directory by listings (one per
 * window of sorted names), reused the pages that started from a cached
 * window instead; bytes is what the windows, cached or in use, and scans
 * in progress hold, windows how many are cached, budget the bound on
 * bytes (each listing in progress may pass it by 64 KiB).
 */
struct ufs_file_list_stats {
	int64_t scans;
	int64_t reused;
	int64_t bytes;
	int64_t windows;
	int64_t budget;
};
void ufs_file_list_stats(struct ufs_file_list_stats *out);
/* Sets the budget (bytes > 0; tests) and returns the one before. */
size_t ufs_file_list_budget(size_t bytes);
struct dbuf;
int ufs_metrics_render(struct dbuf *b);

#endif
