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
 * instance at once.
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
	int64_t mtime;
	const char *etag; /* "" if unknown */
};

/* Called once per entry, in ascending byte order of key.  Non-zero stops. */
typedef int (*ufs_list_fn)(void *arg, const struct ufs_entry *e);

struct ufs_opt {
	const char *key; /* "s3.endpoint", "s3.region", ... */
	const char *value;
};

struct ufs_ops {
	const char *scheme; /* "file", "s3" */
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
	 * Memory used is bounded by max_keys, never by the listing's size.
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
};

extern const struct ufs_ops ufs_file_ops;
extern const struct ufs_ops ufs_s3_ops;

/* Finds the backend for a URI's scheme; sets *root to the part after "://". */
const struct ufs_ops *ufs_lookup(const char *uri, const char **root);

#endif
