/*
 * objput.c: writing an object, for every front end (objput.h).
 *
 * A PUT, step by step:
 *   1. refuse a read-only mount (-EROFS) before reading a byte;
 *   2. open the under-store's write session (conditions go with it);
 *   3. read the body a page at a time into one buffer: each page goes to
 *      the session and, in write-through, into the cache under a random
 *      version of this write's own (nobody reads it);
 *   4. the body's end: the store commits and names the new version; the
 *      staged pages are re-keyed to it; the metadata cache answers with the
 *      new stat and the headers the commit said the object keeps; other
 *      versions' pages go; the mount's cached listings go.
 * Any failure before the commit aborts the session (the store keeps no
 * part of it) and drops the staged pages: nothing of a failed write is
 * visible anywhere.
 *
 * Threads: request threads; no locks of its own.  Memory: one page buffer
 * per write in progress.
 */
#include "objput.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../common/log.h"
#include "metrics.h"
#include "objkey.h"

struct objput {
	struct meta_cache *mc;
	struct reader *rd;
	objput_announce_fn announce; /* NULL: a single worker */
	void *announce_arg;
};

struct objput *
objput_open(struct meta_cache *mc, struct reader *rd)
{
	struct objput *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->mc = mc;
	op->rd = rd;
	return op;
}

void
objput_close(struct objput **opp)
{
	free(*opp);
	*opp = NULL;
}

/* A version id of this write's own for its staged pages: random, never 0. */
static uint64_t
staging_version(void)
{
	uint64_t v = 0;
	while (v == 0)
		if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
			v = (uint64_t)(uintptr_t)&v ^ 0x9e3779b97f4a7c15ULL;
	return v;
}

/* Reads until buf is full or the body ends: the bytes, or -errno. */
static ssize_t
fill_page(const struct objput_req *rq, char *buf, size_t cap)
{
	size_t got = 0;
	while (got < cap) {
		ssize_t n = rq->body(rq->arg, buf + got, cap - got);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The new state is what every read of this worker sees.  Its headers are
 * those the commit (or copy) answered with (ufs_last_hdrs, this thread's
 * last under-store call: what the store keeps, a write=back record's), or
 * not known, for a GET to ask. */
static void
publish(struct objput *op, struct mount *m, const char *path,
    const struct ufs_stat *st)
{
	uint64_t obj = objkey_id(m->ident, path);
	if (st) {
		meta_wrote(op->mc, m, path, st,
		    ufs_last_hdrs()->known ? ufs_last_hdrs() : NULL);
		reader_drop_object(op->rd, obj, objkey_version(st));
	} else {
		meta_removed(op->mc, m, path);
		reader_drop_object(op->rd, obj, 0);
	}
	meta_forget_lists(op->mc, m);
	if (op->announce)
		op->announce(op->announce_arg, m, path);
}

void
objput_set_announce(struct objput *op, objput_announce_fn fn, void *arg)
{
	op->announce = fn;
	op->announce_arg = arg;
}

/* A write in progress (objput_begin .. objput_commit / objput_abort). */
struct objput_w {
	struct objput *op;
	struct mount *m; /* held */
	char *path;
	struct ufs_put *put;
	int through;
	enum mount_write mode;
	uint64_t obj, tmpver;
	char *buf;       /* one page: the body's bytes on their way */
	uint32_t P, fill;
	int64_t size;    /* announced, or -1 */
	int64_t total, idx;
	int err;         /* sticky: the first failure */
};

int
objput_begin(struct objput *op, struct mount *m, const char *path,
    const struct ufs_put_opts *opts, struct objput_w **out)
{
	*out = NULL;
	if (m->readonly || !ufs_writable(m->ufs))
		return -EROFS;
	struct objput_w *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->op = op;
	w->P = reader_page_size(op->rd);
	w->buf = malloc(w->P);
	w->path = strdup(path);
	if (!w->buf || !w->path) {
		free(w->buf);
		free(w->path);
		free(w);
		return -ENOMEM;
	}
	int r = ufs_put_begin(m->ufs, path, opts, &w->put);
	if (r < 0) {
		free(w->buf);
		free(w->path);
		free(w);
		return r;
	}
	w->m = mount_ref(m);
	/* write=back stages in the under-store layer (ufs_wb.c) and caches
	 * the pages as through does. */
	w->through = m->write_mode != MOUNT_WRITE_AROUND;
	w->mode = m->write_mode;
	w->obj = objkey_id(m->ident, path);
	w->tmpver = staging_version();
	w->size = opts->size;
	*out = w;
	return 0;
}

/* The page in w->buf (fill bytes) goes to the store and, in through mode,
 * into the cache under the write's own version. */
static int
flush_page(struct objput_w *w)
{
	if (w->fill == 0 || w->err)
		return w->err;
	int r = ufs_put_write(w->put, w->buf, w->fill);
	if (r < 0)
		return w->err = r;
	if (w->through)
		reader_stage_page(w->op->rd, w->m, w->path, w->tmpver, w->idx, w->buf,
		    w->fill);
	w->total += w->fill;
	w->idx++;
	w->fill = 0;
	return 0;
}

int
objput_write(struct objput_w *w, const void *p, size_t n)
{
	const char *s = p;
	if (!w->err && w->size >= 0 &&
	    (int64_t)n > w->size - w->total - (int64_t)w->fill)
		w->err = -EPROTO; /* more bytes than announced */
	while (n > 0 && !w->err) {
		size_t take = w->P - w->fill < n ? w->P - w->fill : n;
		memcpy(w->buf + w->fill, s, take);
		w->fill += (uint32_t)take;
		s += take;
		n -= take;
		if (w->fill == w->P)
			flush_page(w);
	}
	return w->err;
}

static void
w_free(struct objput_w *w)
{
	mount_release(&w->m);
	free(w->buf);
	free(w->path);
	free(w);
}

void
objput_abort(struct objput_w **wp)
{
	struct objput_w *w = *wp;
	if (!w)
		return;
	*wp = NULL;
	ufs_put_abort(&w->put);
	if (w->through)
		reader_drop_version(w->op->rd, w->obj, w->tmpver);
	w_free(w);
}

int
objput_commit(struct objput_w **wp, struct ufs_stat *st)
{
	struct objput_w *w = *wp;
	memset(st, 0, sizeof(*st));
	int r = flush_page(w);
	if (r == 0 && w->size >= 0 && w->total != w->size)
		r = -EPROTO; /* fewer or more bytes than announced */
	if (r == 0)
		r = ufs_put_commit(&w->put, st);
	if (r < 0) {
		objput_abort(wp);
		return r;
	}
	*wp = NULL;
	struct objput *op = w->op;
	if (w->through) {
		if (st->size == w->total && !st->is_dir)
			reader_adopt_version(op->rd, w->obj, w->tmpver, objkey_version(st));
		else
			reader_drop_version(op->rd, w->obj, w->tmpver);
	}
	publish(op, w->m, w->path, st);
	METRIC_ADD(put_bytes, w->total);
	METRIC_ADD(puts[w->mode], 1);
	w_free(w);
	return 0;
}

int
objput_put(struct objput *op, const struct objput_req *rq, struct ufs_stat *st)
{
	memset(st, 0, sizeof(*st));
	struct objput_w *w;
	int r = objput_begin(op, rq->m, rq->path, &rq->opts, &w);
	if (r < 0)
		return r;
	/* The body is read straight into the page buffer: no copy. */
	for (;;) {
		ssize_t n = fill_page(rq, w->buf, w->P);
		if (n < 0) {
			objput_abort(&w);
			return (int)n;
		}
		w->fill = (uint32_t)n;
		if ((r = flush_page(w)) < 0 || (size_t)n < w->P)
			break; /* a failure, or the body's end */
	}
	return objput_commit(&w, st);
}

int
objput_delete(struct objput *op, struct mount *m, const char *path)
{
	if (m->readonly || !ufs_writable(m->ufs))
		return -EROFS;
	int r = ufs_remove(m->ufs, path);
	if (r < 0)
		return r;
	publish(op, m, path, NULL);
	return 0;
}

int
objput_copy(struct objput *op, struct mount *m, const char *src,
    const char *dst, const struct ufs_put_opts *opts, struct ufs_stat *st)
{
	if (m->readonly || !ufs_writable(m->ufs))
		return -EROFS;
	int r = ufs_copy(m->ufs, src, dst, opts, st);
	if (r < 0)
		return r;
	publish(op, m, dst, st);
	return 0;
}
