/*
 * objput.h: the one owner of every object write, beside objget (the S3
 * gateway's PutObject, DeleteObject and CopyObject; FUSE and libferry
 * writes as they come).  A front end parses its protocol into a struct
 * objput_req and a body source; objput streams the body to the
 * under-store's write session (ufs_put_*), caches it on the way in the
 * mount's write mode, and, once the store has committed, makes the new
 * state what every read of this worker sees (the metadata cache's answer,
 * the cached pages, the mount's listings).
 *
 * Write modes (mount option "write"):
 *   through (default)  the body goes to the under-store and, page by page,
 *                      into the cache under a version of the write's own;
 *                      once the store commits and names the version, the
 *                      pages become that version's: the next GET is a hit.
 *   around             the under-store only; the old version's pages go.
 * The client's OK comes after the under-store committed, in both.
 *
 * Calls go down only: objput -> {meta, reader, ufs}.  Threads: any request
 * thread; no locks of its own.
 */
#ifndef FERRY_OBJPUT_H
#define FERRY_OBJPUT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../ufs/ufs.h"
#include "meta.h"
#include "mounts.h"
#include "reader.h"

struct objput;

struct objput *objput_open(struct meta_cache *mc, struct reader *rd);
void objput_close(struct objput **op);

/*
 * A write the caller pushes bytes into (FUSE, a copy across mounts):
 * objput_begin opens it (-EROFS, or the store's refusal: nothing is
 * written), objput_write takes the body in order, any split (the first
 * failure sticks: later calls return it), and objput_commit ends it as
 * objput_put does, or objput_abort drops it.  Either frees *w.  One
 * thread at a time per write.
 */
struct objput_w;
int objput_begin(struct objput *op, struct mount *m, const char *path,
    const struct ufs_put_opts *opts, struct objput_w **w);
int objput_write(struct objput_w *w, const void *p, size_t n);
int objput_commit(struct objput_w **w, struct ufs_stat *st);
void objput_abort(struct objput_w **w);

/* The body: the next bytes into buf (at most n), 0 at its end, -errno (the
 * client went away, the body failed a check). */
typedef ssize_t (*objput_body_fn)(void *arg, void *buf, size_t n);

struct objput_req {
	struct mount *m;
	const char *path;        /* validated key */
	struct ufs_put_opts opts; /* size, conditions, headers */
	objput_body_fn body;
	void *arg;
};

/*
 * Writes the object.  0 with *st its new version's stat (the ETag for the
 * answer), or -errno with nothing written: -EROFS (a read-only mount, or a
 * store that cannot write), -EEXIST / -ESTALE (a condition failed), the
 * body's error, or the under-store's.
 */
int objput_put(struct objput *op, const struct objput_req *rq,
    struct ufs_stat *st);

/* Called after every write and delete this worker made visible (objput
 * publishes locally first): in a cluster, the router tells the peers.
 * Set once, before requests start. */
typedef void (*objput_announce_fn)(void *arg, const struct mount *m,
    const char *path);
void objput_set_announce(struct objput *op, objput_announce_fn fn, void *arg);

/* Removes the object (0 also if there was none, as S3 does). */
int objput_delete(struct objput *op, struct mount *m, const char *path);

/* Copies src to dst within one mount (the store copies); *st: dst's new
 * version. */
int objput_copy(struct objput *op, struct mount *m, const char *src,
    const char *dst, const struct ufs_put_opts *opts, struct ufs_stat *st);

#endif
