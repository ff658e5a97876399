/*
 * objget.c: serving an object, for every front end (objget.h).
 *
 * A request goes through these steps, each written once:
 *   1. stat: from the metadata cache, or on a miss the one-request cold
 *      read (stat_for_read: the reader reads the first page and answers the
 *      stat in one UFS request) when this worker serves that page, else a
 *      UFS stat; both as the one loader of the cache entry;
 *   2. the version pin (a peer's or libferry's If-Match): another version
 *      is refreshed once, then -ESTALE (a write=back object's staged
 *      version also pins the store's version its upload made: pin_holds);
 *   3. S3 conditions (If-Match, If-None-Match, If-(Un)Modified-Since):
 *      304 or 412;
 *   4. the range: 206, or 416;
 *   5. the body through the router (this worker's reader, or the peer
 *      that holds the block), with the head sent on the first body byte so
 *      that a failure before any byte is still a clean error answer;
 *   6. -ESTALE from below (the under-store, or a peer, has another
 *      version): the metadata is invalidated here, and if nothing was sent
 *      yet the request starts over once.
 *
 * Threads: request threads (S3 gateway, control API, local socket).  No
 * locks of its own.
 */
#include "objget.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/util.h"
#include "../http/http_range.h"
#include "dirahead.h"
#include "objkey.h"

struct objget {
	struct meta_cache *mc;
	struct router *rt;
	struct reader *rd;
	struct dirahead *da; /* directory fetch-ahead, or NULL */
};

struct objget *
objget_open(struct meta_cache *mc, struct router *rt, struct reader *rd)
{
	struct objget *og = calloc(1, sizeof(*og));
	if (!og)
		return NULL;
	og->mc = mc;
	og->rt = rt;
	og->rd = rd;
	return og;
}

void
objget_set_dirahead(struct objget *og, struct dirahead *da)
{
	if (og)
		og->da = da;
}

void
objget_close(struct objget **ogp)
{
	free(*ogp);
	*ogp = NULL;
}

/*
 * The stat for a read that starts at byte off (off < 0: no read follows,
 * or where is not known).  On a cache miss, when this worker serves that
 * byte and the backend can, one UFS request answers the stat and reads the
 * page (stored before the entry is published, so the threads waiting on
 * the entry find it too); if the page is cached already at the version the
 * expired entry knew (or, after a restart, any page of the object is), a
 * stat confirms it instead, moving no bytes.  dirs 0: a directory may
 * answer -ENOENT (the caller treats it as no object anyway).
 */
static int
stat_for_read(struct objget *og, struct mount *m, const char *path,
    int64_t off, int dirs, struct ufs_stat *st, struct ufs_hdrs *h)
{
	struct meta_load ld;
	int r = meta_stat_begin(og->mc, m, path, !dirs, st, h, &ld);
	if (r != META_LOAD)
		return r;
	struct ufs_stat fresh;
	r = -ENOTSUP;
	if (off >= 0 && ufs_has_read_stat(m->ufs)) {
		int known = ld.has_prev ?
		    ld.prev.size == 0 || reader_has_page(og->rd, m, path, &ld.prev, off) :
		    reader_has_object(og->rd, m, path);
		if (!known && router_is_local(og->rt, m, path, off))
			r = reader_read_stat(og->rd, m, path, off, dirs, &fresh);
	}
	/* No one-request read (not ours, cached, no buffer, no metadata in
	 * the reply): a plain stat, still as the entry's one loader. */
	if (r == -ENOTSUP || r == -EAGAIN || r == -ERANGE)
		r = ufs_stat(m->ufs, path, &fresh);
	/* The headers stored with the object came with whichever answered
	 * (ufs_last_hdrs: the last call on this thread). */
	return meta_stat_end(og->mc, m, path, &ld, r, &fresh,
	    r == 0 ? ufs_last_hdrs() : NULL, r == -ENOENT && !dirs, st, h);
}

/* Does an If-Match / If-None-Match list match etag?  "*" matches all. */
static int
etag_list_matches(const struct objget_hdr *h, const char *etag)
{
	const char *v = h->p;
	size_t vl = h->n, el = strlen(etag), i = 0;
	while (i < vl) {
		while (i < vl && (v[i] == ' ' || v[i] == ','))
			i++;
		size_t j = i;
		while (j < vl && v[j] != ',')
			j++;
		size_t a = i, z = j;
		while (z > a && v[z - 1] == ' ')
			z--;
		if (z - a == 1 && v[a] == '*')
			return 1;
		if (z - a >= 2 && v[a] == 'W' && v[a + 1] == '/')
			a += 2;
		if (z - a >= 2 && v[a] == '"' && v[z - 1] == '"') {
			a++;
			z--;
		}
		if (z - a == el && memcmp(v + a, etag, el) == 0)
			return 1;
		i = j + 1;
	}
	return 0;
}

/* RFC 9110 13.2.2 order: 0 to proceed, or 412 / 304. */
static int
check_conditions(const struct objget_req *rq, const char *etag, int64_t mtime)
{
	if (rq->if_match.p && !etag_list_matches(&rq->if_match, etag))
		return 412;
	if (!rq->if_match.p && rq->if_unmodified_since.p) {
		int64_t t = parse_http_date(rq->if_unmodified_since.p, rq->if_unmodified_since.n);
		if (t >= 0 && mtime > t)
			return 412;
	}
	if (rq->if_none_match.p && etag_list_matches(&rq->if_none_match, etag))
		return 304;
	if (!rq->if_none_match.p && rq->if_modified_since.p) {
		int64_t t = parse_http_date(rq->if_modified_since.p, rq->if_modified_since.n);
		if (t >= 0 && mtime <= t)
			return 304;
	}
	return 0;
}

/*
 * Where a GET will start reading, known before the object's size: 0, or a
 * Range's first byte; -1 when it depends on the size (a suffix range), when
 * the answer likely has no body (a conditional request, often a 304), or
 * for a HEAD.
 */
static int64_t
start_hint(const struct objget_req *rq)
{
	if (rq->head || rq->if_match.p || rq->if_none_match.p ||
	    rq->if_modified_since.p || rq->if_unmodified_since.p)
		return -1;
	const int64_t big = INT64_MAX / 4;
	int64_t a = 0, b = 0;
	int pr = http_parse_range(rq->range.p, rq->range.n, big, &a, &b);
	if (pr == 0)
		return 0;
	/* A suffix range's start is counted from the (huge) size. */
	return pr == 1 && a < big / 2 ? a : -1;
}

/* The body's sink: the head goes out with the first byte. */
struct body {
	const struct objget_sink *out;
	const struct objget_head *h;
	int started;
};

static int
body_head(struct body *b)
{
	if (b->started)
		return 0;
	b->started = 1;
	return b->out->head(b->out->arg, b->h);
}

static int
body_file(void *arg, int fd, off_t off, size_t n)
{
	struct body *b = arg;
	int r = body_head(b);
	return r ? r : b->out->file(b->out->arg, fd, off, n);
}

static int
body_mem(void *arg, const void *p, size_t n)
{
	struct body *b = arg;
	int r = body_head(b);
	return r ? r : b->out->mem(b->out->arg, p, n);
}

/* Is st the version a reader pinned (pin, n bytes)?  Also when the pin is
 * a write=back object's staged version whose upload made st of the same
 * bytes (a file read back while, or after, it is uploaded). */
static int
pin_holds(struct mount *m, const char *path, const struct ufs_stat *st,
    const char *pin, size_t n)
{
	if (objkey_etag_is(st, pin, n))
		return 1;
	char p[UFS_ETAG_MAX];
	if (n >= sizeof(p) || !ufs_is_writeback(m->ufs))
		return 0;
	memcpy(p, pin, n);
	p[n] = 0;
	return ufs_wb_moved(m->ufs, path, p, st->etag);
}

/* One pass of steps 1-5.  -EAGAIN: the version moved before anything was
 * sent; start over. */
static int
serve_once(struct objget *og, const struct objget_req *rq,
    const struct objget_sink *sink, int last_try, int *started)
{
	struct mount *m = rq->m;
	struct ufs_stat st;
	/* The headers stored with the object, for the answer's head: copied
	 * out of the cache onto this stack (no allocation per request). */
	struct ufs_hdrs hd;
	int r = stat_for_read(og, m, rq->path, start_hint(rq), !rq->dir_enoent,
	    &st, rq->want_hdrs ? &hd : NULL);
	if (r == 0 && st.is_dir)
		r = rq->dir_enoent ? -ENOENT : -EISDIR;
	if (r < 0)
		return r;
	char etag[UFS_ETAG_MAX];
	objkey_etag(&st, etag, sizeof(etag));
	if (rq->pin.p && !pin_holds(m, rq->path, &st, rq->pin.p, rq->pin.n)) {
		/* Our metadata may be the stale one: refresh it once. */
		meta_invalidate(og->mc, m, rq->path);
		return last_try ? -ESTALE : -EAGAIN;
	}
	struct objget_head h = {.st = &st, .etag = etag,
	    .hdrs = rq->want_hdrs ? &hd : NULL};
	h.status = check_conditions(rq, etag, st.mtime);
	int64_t a = 0, b = st.size - 1;
	int pr = h.status ? 0 : http_parse_range(rq->range.p, rq->range.n, st.size, &a, &b);
	if (pr < 0)
		h.status = 416;
	if (h.status) {
		*started = 1;
		return sink->head(sink->arg, &h);
	}
	h.status = pr == 1 ? 206 : 200;
	h.first = a;
	h.last = b;
	h.length = st.size == 0 ? 0 : b - a + 1;
	if (rq->head || h.length == 0) {
		*started = 1;
		return sink->head(sink->arg, &h);
	}
	if (a == 0 && !rq->local_only && !rq->no_readahead)
		dirahead_note(og->da, m, rq->path, st.size);
	struct body bd = {.out = sink, .h = &h};
	struct read_sink rs = {.file = body_file, .mem = body_mem, .arg = &bd,
	    .no_readahead = rq->no_readahead};
	int64_t sent = 0;
	r = router_read(og->rt, m, rq->path, &st, a, h.length, &rs, &sent, rq->local_only);
	*started = bd.started;
	if (r == -ESTALE) {
		/* The under-store (or the peer) has another version. */
		meta_invalidate(og->mc, m, rq->path);
		if (!bd.started && !last_try)
			return -EAGAIN;
	}
	return r;
}

int
objget_serve(struct objget *og, const struct objget_req *rq,
    const struct objget_sink *sink, int *started)
{
	*started = 0;
	int r = serve_once(og, rq, sink, 0, started);
	if (r == -EAGAIN)
		r = serve_once(og, rq, sink, 1, started);
	return r;
}

int
objget_stat(struct objget *og, struct mount *m, const char *path,
    struct ufs_stat *st, int64_t *cached_bytes)
{
	*cached_bytes = 0;
	int r = meta_stat(og->mc, m, path, st);
	if (r == 0 && !st->is_dir)
		*cached_bytes = reader_cached_bytes(og->rd, m, path, st);
	return r;
}

int
objget_pages(struct objget *og, struct mount *m, const char *path,
    const char *etag, int64_t off, int64_t len, struct page_ref *refs,
    int max, int *n)
{
	*n = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct ufs_stat st;
		int r = meta_stat(og->mc, m, path, &st);
		if (r == 0 && st.is_dir)
			r = -EISDIR;
		if (r < 0)
			return r;
		if (!pin_holds(m, path, &st, etag, strlen(etag))) {
			meta_invalidate(og->mc, m, path);
			continue;
		}
		r = reader_get_pages(og->rd, m, path, &st, off, len, refs, max, n);
		if (off == 0 && r == 0)
			dirahead_note(og->da, m, path, st.size);
		return r == -ENOENT ? OBJGET_MISS : r;
	}
	return -ESTALE;
}
