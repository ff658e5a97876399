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
 *      new stat; other versions' pages go; the mount's cached listings go.
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

/* The new state is what every read of this worker sees. */
static void
publish(struct objput *op, struct mount *m, const char *path,
    const struct ufs_stat *st)
{
	uint64_t obj = objkey_id(m->ident, path);
	if (st) {
		meta_wrote(op->mc, m, path, st);
		reader_drop_object(op->rd, obj, objkey_version(st));
	} else {
		meta_removed(op->mc, m, path);
		reader_drop_object(op->rd, obj, 0);
	}
	meta_forget_lists(op->mc, m);
}

int
objput_put(struct objput *op, const struct objput_req *rq, struct ufs_stat *st)
{
	struct mount *m = rq->m;
	memset(st, 0, sizeof(*st));
	if (m->readonly || !ufs_writable(m->ufs))
		return -EROFS;
	const int through = m->write_mode == MOUNT_WRITE_THROUGH;
	const uint32_t P = reader_page_size(op->rd);
	char *buf = malloc(P);
	if (!buf)
		return -ENOMEM;
	struct ufs_put *put = NULL;
	int r = ufs_put_begin(m->ufs, rq->path, &rq->opts, &put);
	uint64_t obj = objkey_id(m->ident, rq->path), tmpver = staging_version();
	int64_t total = 0, idx = 0;
	while (r == 0) {
		ssize_t n = fill_page(rq, buf, P);
		if (n < 0) {
			r = (int)n;
			break;
		}
		if (n > 0)
			r = ufs_put_write(put, buf, (size_t)n);
		if (r == 0 && n > 0 && through)
			reader_stage_page(op->rd, obj, tmpver, idx, buf, (uint32_t)n);
		total += n;
		idx++;
		if ((size_t)n < P)
			break; /* the body's end */
	}
	if (r == 0 && rq->opts.size >= 0 && total != rq->opts.size)
		r = -EPROTO; /* fewer or more bytes than announced */
	if (r == 0)
		r = ufs_put_commit(&put, st);
	else
		ufs_put_abort(&put);
	free(buf);
	if (r < 0) {
		if (through)
			reader_drop_version(op->rd, obj, tmpver);
		return r;
	}
	if (through) {
		if (st->size == total && !st->is_dir)
			reader_adopt_version(op->rd, obj, tmpver, objkey_version(st));
		else
			reader_drop_version(op->rd, obj, tmpver);
	}
	publish(op, m, rq->path, st);
	METRIC_ADD(put_bytes, total);
	METRIC_ADD(puts[through ? 0 : 1], 1);
	return 0;
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
