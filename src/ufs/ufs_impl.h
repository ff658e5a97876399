/*
 * ufs_impl.h: what the under-store layer's own files share (ufs.c, the
 * wrappers; ufs_wb.c, the write-back staging area): the instance and write
 * session structs, and the "raw" wrappers, which go straight to the
 * backend (checked and counted) however the instance is configured.  The
 * public wrappers (ufs.h) send the calls of an instance with a layer (a
 * write-back mount's: ufs_wb.c) through its table, after their checks;
 * the layer reaches the store through the raw wrappers.  So calls go one
 * way, ufs_wb.c -> ufs.c, as a backend's do through struct ufs_ops.
 * Nothing outside src/ufs includes this.
 */
#ifndef FERRY_UFS_IMPL_H
#define FERRY_UFS_IMPL_H

#include "ufs.h"

#define UFS_REASON_MAX 512

struct wbmount;
struct wbput;
struct ufs;

/* A layer between the wrappers and the backend (arguments checked). */
struct ufs_layer {
	void (*detach)(struct ufs *u); /* the instance is closing */
	int (*stat)(struct ufs *u, const char *path, struct ufs_stat *st);
	int (*list)(struct ufs *u, const char *prefix, const char *delimiter,
	    const char *start_after, int max_keys, ufs_list_fn fn, void *arg,
	    int *truncated);
	ssize_t (*read)(struct ufs *u, const char *path, const char *etag,
	    int64_t off, void *buf, size_t len);
	ssize_t (*read_stat)(struct ufs *u, const char *path, int64_t off,
	    void *buf, size_t len, int dirs, struct ufs_stat *st);
	int (*put_begin)(struct ufs *u, const char *path,
	    const struct ufs_put_opts *o, struct wbput **wp);
	int (*put_write)(struct wbput *wp, const void *buf, size_t len);
	int (*put_commit)(struct wbput *wp, struct ufs_stat *st);
	void (*put_abort)(struct wbput *wp);
	int (*remove)(struct ufs *u, const char *path);
	int (*copy)(struct ufs *u, const char *src, const char *dst,
	    const struct ufs_put_opts *o, struct ufs_stat *st);
};

struct ufs {
	const struct ufs_ops *ops;
	void *state;    /* NULL: the backend failed to open */
	char *open_err; /* why it failed */
	char *label;    /* the URI, for log lines */
	int refs;       /* atomic: the owner's, and the persister's while it
	                 * uploads through this instance */
	const struct ufs_layer *layer; /* NULL: calls go to the backend */
	struct wbmount *wb; /* write=back: the mount's staging area (the
	                     * layer's state); both set once, before the
	                     * instance is shared */
};

/* A write session: the backend's (b) or the staging area's (wp), and what
 * the layer checks across calls. */
struct ufs_put {
	struct ufs *u;
	void *b;          /* the backend's session */
	struct wbput *wp; /* or a write-back staging session */
	int64_t size;     /* announced, or -1 */
	int64_t written;
	int err;          /* the first put_write failure, or 0 */
	char reason[UFS_REASON_MAX]; /* its ufs_last_error() */
};

struct ufs *ufs_ref(struct ufs *u);
void ufs_unref(struct ufs *u);

/* Straight to the backend (after the public wrapper's checks). */
int ufs_raw_stat(struct ufs *u, const char *path, struct ufs_stat *st);
int ufs_raw_list(struct ufs *u, const char *prefix, const char *delimiter,
    const char *start_after, int max_keys, ufs_list_fn fn, void *arg,
    int *truncated);
ssize_t ufs_raw_read(struct ufs *u, const char *path, const char *etag,
    int64_t off, void *buf, size_t len);
ssize_t ufs_raw_read_stat(struct ufs *u, const char *path, int64_t off,
    void *buf, size_t len, int dirs, struct ufs_stat *st);
int ufs_raw_put_begin(struct ufs *u, const char *path,
    const struct ufs_put_opts *o, struct ufs_put **p);
int ufs_raw_remove(struct ufs *u, const char *path);

#endif
