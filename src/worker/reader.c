/*
 * reader.c: the read path's lower half (see reader.h).
 *
 * Threads: reader_read() and reader_read_stat() run on request threads;
 * fetches run on the reader's fetch threads.  One mutex (r->lock) guards
 * the table of fetches in flight, the fetch queue, the buffer free list
 * and the buffer budget; it is never held across UFS or disk I/O.  Lock
 * order: r->lock, then the page store's lock (pagestore_has under r->lock,
 * so that a page that was just stored and left the table is not fetched
 * twice).  Functions named do_* expect r->lock held.
 *
 * A fetch's life (state machine, driven by fetch_thread):
 *   QUEUED   in the table and the queue; demand fetches are taken first
 *   RUNNING  a fetch thread reads the page from the UFS into f->buf
 *   READY    bytes (or an error) available; waiters are woken and copy out
 *   STORING  (still READY to readers) the thread writes the page file;
 *            then the fetch leaves the table
 * The fetch is freed when its last reference goes; its buffer returns to
 * the free list.
 *
 * Budget: r->inflight counts page buffers in use by fetches in the table
 * and by one-request cold reads; it never exceeds max_inflight.  A fetch
 * that left the table may still be held by readers sending its buffer to
 * slow clients, outside the budget (at most one per reading connection),
 * so stalled clients cannot starve other reads.
 *
 * Invariant: a page is stored fresh (counted as a miss at its first get)
 * only if no reader has served it from the fetch buffer.
 */
#include "reader.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "../common/htab.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/vas.h"
#include "metrics.h"
#include "objkey.h"

enum fetch_state { F_QUEUED, F_RUNNING, F_READY };

struct fetch {
	struct hnode hn;          /* in r->ftab while in_table */
	STAILQ_ENTRY(fetch) q;    /* in r->queue while QUEUED */
	struct page_key key;
	struct mount *m; /* referenced */
	char *path;
	char etag[UFS_ETAG_MAX];
	int64_t off;
	uint32_t want;
	enum fetch_state state;
	int demand;      /* a reader waits for it */
	int ahead;       /* read-ahead: beyond what a client asked */
	int served;      /* a reader takes its bytes from the buffer */
	int stored_fresh; /* stored as fresh (nobody had served it) */
	int stored;      /* the store is done (whatever its outcome) */
	int in_table;
	int err;
	uint32_t got;
	char *buf;
	int refs;
};

STAILQ_HEAD(fetch_queue, fetch);

#define SEQ_SLOTS 1024

struct reader {
	struct reader_cfg cfg;
	struct pagestore *ps;
	uint32_t page_size;

	pthread_mutex_t lock;
	pthread_cond_t work;  /* fetch threads wait for queued fetches */
	pthread_cond_t ready; /* readers wait for fetches and buffers */
	struct htab ftab;     /* fetches in flight, by page key */
	struct fetch_queue queue;
	int inflight;         /* page buffers in use (the budget) */
	char **freebufs;
	int nfree;
	int stopping;
	pthread_t *threads;
	int nthreads;
	reader_hdrs_fn hdrs_fn; /* set before any fetch; then read-only */
	void *hdrs_arg;

	/* Sequential-access detection: end offset of the last read of an
	 * object, direct-mapped by object id (racy by design: a lost update
	 * only costs a read-ahead decision). */
	struct {
		uint64_t obj;
		int64_t next_off;
	} seq[SEQ_SLOTS];
};

static uint64_t
key_hash(const struct page_key *k)
{
	return k->obj ^ (k->ver * 31) ^ (k->idx * 0x9e3779b97f4a7c15ULL);
}

static uint64_t
fetch_hashof(const struct hnode *n)
{
	return key_hash(&container_of(n, struct fetch, hn)->key);
}

static int
key_eq(const struct page_key *a, const struct page_key *b)
{
	return a->obj == b->obj && a->ver == b->ver && a->idx == b->idx;
}

static struct page_key
page_of(struct mount *m, const char *path, const struct ufs_stat *st, int64_t idx)
{
	return objkey_page(objkey_id(m->ident, path), objkey_version(st), idx);
}

/* Where a page of (m, path) comes from, for the store's datasets. */
static struct page_origin
origin_of(const struct mount *m, const char *path)
{
	struct page_origin o = {m->ident, path, m->quota};
	return o;
}

static struct fetch *
do_ftab_find(struct reader *r, const struct page_key *k)
{
	struct hnode *n;
	for (HTAB_FOREACH(&r->ftab, key_hash(k), n)) {
		struct fetch *f = container_of(n, struct fetch, hn);
		if (key_eq(&f->key, k))
			return f;
	}
	return NULL;
}

/* Takes f out of the table, and its buffer out of the budget. */
static void
do_ftab_remove(struct reader *r, struct fetch *f)
{
	if (!f->in_table)
		return;
	htab_remove(&r->ftab, &f->hn, key_hash(&f->key));
	f->in_table = 0;
	r->inflight--;
	pthread_cond_broadcast(&r->ready);
}

static char *
do_take_buf(struct reader *r)
{
	if (r->nfree > 0)
		return r->freebufs[--r->nfree];
	return malloc(r->page_size);
}

static void
do_put_buf(struct reader *r, char *buf)
{
	if (!buf)
		return;
	if (r->nfree < r->cfg.max_inflight)
		r->freebufs[r->nfree++] = buf;
	else
		free(buf);
}

static void
do_fetch_unref(struct reader *r, struct fetch *f)
{
	if (--f->refs > 0)
		return;
	VAS_ASSERT(!f->in_table);
	do_put_buf(r, f->buf);
	f->buf = NULL;
	mount_release(&f->m);
	free(f->path);
	free(f);
}

/* Takes the first demand fetch if any, else the oldest. */
static struct fetch *
do_dequeue(struct reader *r)
{
	struct fetch *f;
	STAILQ_FOREACH(f, &r->queue, q)
		if (f->demand)
			break;
	if (!f)
		f = STAILQ_FIRST(&r->queue);
	if (f)
		STAILQ_REMOVE(&r->queue, f, fetch, q);
	return f;
}

/*
 * Finds or creates the fetch of page k.  Returns a referenced fetch, or
 * NULL if the page is already cached (or, for a background fetch, if no
 * buffer is free).  demand: the caller will wait for it (and may block for
 * a buffer).
 */
static struct fetch *
do_fetch_get(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, const struct page_key *k, int demand, int ahead,
    int *err)
{
	*err = 0;
	for (;;) {
		struct fetch *f = do_ftab_find(r, k);
		if (f && f->state == F_READY && f->err) {
			/* A failure that is still on its way out of the table:
			 * ask the UFS again rather than reuse the error. */
			do_ftab_remove(r, f);
			continue;
		}
		if (f) {
			f->refs++;
			if (demand && !f->demand && f->state == F_QUEUED)
				f->demand = 1;
			return f;
		}
		if (pagestore_has(r->ps, k))
			return NULL;
		if (r->inflight < r->cfg.max_inflight)
			break;
		if (r->stopping) {
			*err = -ECANCELED;
			return NULL;
		}
		if (!demand)
			return NULL;
		pthread_cond_wait(&r->ready, &r->lock);
	}
	struct fetch *f = calloc(1, sizeof(*f));
	char *buf = f ? do_take_buf(r) : NULL;
	char *p = f ? strdup(path) : NULL;
	if (!f || !buf || !p) {
		do_put_buf(r, buf);
		free(p);
		free(f);
		*err = -ENOMEM;
		return NULL;
	}
	f->key = *k;
	f->path = p;
	f->buf = buf;
	f->m = m;
	__atomic_add_fetch(&m->refs, 1, __ATOMIC_ACQ_REL);
	snprintf(f->etag, sizeof(f->etag), "%s", st->etag);
	f->off = (int64_t)k->idx * r->page_size;
	f->want = (uint32_t)page_len(st->size, r->page_size, (int64_t)k->idx);
	f->state = F_QUEUED;
	f->demand = demand;
	f->ahead = ahead;
	f->refs = 2; /* the table's (dropped when stored) and the caller's */
	f->in_table = 1;
	r->inflight++;
	htab_insert(&r->ftab, &f->hn, key_hash(k));
	STAILQ_INSERT_TAIL(&r->queue, f, q);
	pthread_cond_signal(&r->work);
	return f;
}

static void *
fetch_thread(void *arg)
{
	struct reader *r = arg;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		struct fetch *f;
		while (!(f = do_dequeue(r)) && !r->stopping)
			pthread_cond_wait(&r->work, &r->lock);
		if (!f)
			break;
		f->state = F_RUNNING;
		pthread_mutex_unlock(&r->lock);

		/* RUNNING: read the page from the UFS. */
		ssize_t n = ufs_read(f->m->ufs, f->path, f->etag, f->off,
		    f->buf, f->want);
		int err = 0;
		if (n < 0)
			err = (int)n;
		else if ((uint32_t)n != f->want)
			err = -ESTALE; /* the object shrank: a new version */
		if (!err && f->off == 0 && r->hdrs_fn && ufs_last_hdrs()->known)
			r->hdrs_fn(r->hdrs_arg, f->m, f->path, f->key.ver, ufs_last_hdrs());
		if (err && err != -ESTALE)
			LOG_WARN("ufs read /%s/%s @%lld: %s%s%s", f->m->name, f->path,
			    (long long)f->off, strerror(-err), ufs_last_error()[0] ? ": " : "",
			    ufs_last_error());
		if (!err && f->ahead)
			METRIC_ADD(readahead_bytes, n);

		pthread_mutex_lock(&r->lock);
		f->err = err;
		f->got = err ? 0 : (uint32_t)n;
		f->state = F_READY;
		int fresh = !f->served;
		f->stored_fresh = fresh;
		pthread_cond_broadcast(&r->ready);
		pthread_mutex_unlock(&r->lock);

		/* STORING: write the page; readers already have the bytes.  A
		 * failure here only means it is not cached. */
		if (!err) {
			struct page_origin o = origin_of(f->m, f->path);
			pagestore_put_origin(r->ps, &f->key, f->buf, f->got, &o, fresh);
		}

		pthread_mutex_lock(&r->lock);
		/* A reader served it from the buffer while it was being
		 * stored as fresh: it is not fresh.  (serve_page checks the
		 * other order; whichever of the two comes second clears it.) */
		f->stored = 1;
		if (fresh && f->served) {
			pthread_mutex_unlock(&r->lock);
			pagestore_unfresh(r->ps, &f->key);
			pthread_mutex_lock(&r->lock);
		}
		do_ftab_remove(r, f);
		do_fetch_unref(r, f);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

struct reader *
reader_open(const struct reader_cfg *cfg, struct pagestore *ps)
{
	struct reader *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->cfg = *cfg;
	if (r->cfg.fetch_threads <= 0)
		r->cfg.fetch_threads = 32;
	if (r->cfg.window <= 0)
		r->cfg.window = 8;
	if (r->cfg.readahead_pages < 0)
		r->cfg.readahead_pages = 0;
	if (r->cfg.max_inflight < 2)
		r->cfg.max_inflight = 128;
	r->ps = ps;
	r->page_size = pagestore_page_size(ps);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->work, NULL);
	pthread_cond_init(&r->ready, NULL);
	STAILQ_INIT(&r->queue);
	r->freebufs = calloc((size_t)r->cfg.max_inflight, sizeof(char *));
	r->threads = calloc((size_t)r->cfg.fetch_threads, sizeof(pthread_t));
	if (!r->freebufs || !r->threads ||
	    htab_init(&r->ftab, (size_t)r->cfg.max_inflight * 2, fetch_hashof) < 0) {
		reader_close(&r);
		return NULL;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (int i = 0; i < r->cfg.fetch_threads; i++) {
		if (pthread_create(&r->threads[i], &attr, fetch_thread, r) != 0)
			break;
		r->nthreads++;
	}
	pthread_attr_destroy(&attr);
	if (r->nthreads == 0) {
		reader_close(&r);
		return NULL;
	}
	return r;
}

void
reader_close(struct reader **rp)
{
	struct reader *r = *rp;
	*rp = NULL;
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = 1;
	pthread_cond_broadcast(&r->work);
	pthread_cond_broadcast(&r->ready);
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < r->nthreads; i++)
		pthread_join(r->threads[i], NULL);
	/* Fetches still queued were never started: drop them. */
	struct fetch *f;
	pthread_mutex_lock(&r->lock);
	while ((f = do_dequeue(r))) {
		do_ftab_remove(r, f);
		do_fetch_unref(r, f);
	}
	pthread_mutex_unlock(&r->lock);
	for (int i = 0; i < r->nfree; i++)
		free(r->freebufs[i]);
	free(r->freebufs);
	free(r->threads);
	htab_free(&r->ftab);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->work);
	pthread_cond_destroy(&r->ready);
	free(r);
}

/* Queues background fetches for pages [from, to] not cached or in flight.
 * ahead: beyond what the client asked (read-ahead). */
static int
schedule(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t from, int64_t to, int ahead)
{
	int n = 0;
	pthread_mutex_lock(&r->lock);
	for (int64_t i = from; i <= to && !r->stopping; i++) {
		struct page_key k = page_of(m, path, st, i);
		if (do_ftab_find(r, &k))
			continue;
		int err;
		struct fetch *f = do_fetch_get(r, m, path, st, &k, 0, ahead, &err);
		if (!f) {
			if (r->inflight >= r->cfg.max_inflight)
				break; /* no buffers: read-ahead is best effort */
			continue;
		}
		do_fetch_unref(r, f);
		n++;
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

int
reader_prefetch(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t first, int64_t last)
{
	int64_t npages = page_count(st->size, r->page_size);
	if (last >= npages)
		last = npages - 1;
	if (first > last)
		return 0;
	return schedule(r, m, path, st, first, last, 1);
}

int
reader_drop_object(struct reader *r, uint64_t obj, uint64_t keep_ver)
{
	return pagestore_drop_object(r->ps, obj, keep_ver);
}

void
reader_stage_page(struct reader *r, struct mount *m, const char *path,
    uint64_t ver, int64_t idx, const void *buf, uint32_t n)
{
	struct page_key k = objkey_page(objkey_id(m->ident, path), ver, idx);
	struct page_origin o = origin_of(m, path);
	pagestore_put_origin(r->ps, &k, buf, n, &o, 0);
}

int
reader_adopt_version(struct reader *r, uint64_t obj, uint64_t from_ver,
    uint64_t to_ver)
{
	return pagestore_rekey(r->ps, obj, from_ver, to_ver);
}

void
reader_drop_version(struct reader *r, uint64_t obj, uint64_t ver)
{
	pagestore_drop_version(r->ps, obj, ver);
}

void
reader_set_hdrs_hook(struct reader *r, reader_hdrs_fn fn, void *arg)
{
	r->hdrs_fn = fn;
	r->hdrs_arg = arg;
}

int
reader_wait_buffers(struct reader *r, int in_use, int timeout_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	int rc = 0;
	pthread_mutex_lock(&r->lock);
	/* do_ftab_remove and the cold reads' release broadcast ready */
	while (r->inflight > in_use && !r->stopping && rc == 0)
		rc = pthread_cond_timedwait(&r->ready, &r->lock, &ts);
	int ok = r->inflight <= in_use && !r->stopping;
	pthread_mutex_unlock(&r->lock);
	return ok ? 0 : -1;
}

int
reader_max_buffers(const struct reader *r)
{
	return r->cfg.max_inflight;
}

uint32_t
reader_page_size(const struct reader *r)
{
	return r->page_size;
}

int
reader_has_page(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t off)
{
	struct page_key k = page_of(m, path, st, off / r->page_size);
	return pagestore_has(r->ps, &k);
}

int
reader_has_object(struct reader *r, struct mount *m, const char *path)
{
	return pagestore_has_object(r->ps, objkey_id(m->ident, path));
}

int
reader_settle(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t first, int64_t n)
{
	int missing = 0;
	pthread_mutex_lock(&r->lock);
	for (int64_t i = first; i < first + n; i++) {
		struct page_key k = page_of(m, path, st, i);
		/* A fetch leaves the table once its store is done (ready is
		 * broadcast then); reader_close wakes everyone. */
		while (do_ftab_find(r, &k) && !r->stopping)
			pthread_cond_wait(&r->ready, &r->lock);
		if (!pagestore_has(r->ps, &k))
			missing++;
	}
	pthread_mutex_unlock(&r->lock);
	return missing;
}

int64_t
reader_object_bytes(struct reader *r, struct mount *m, const char *path)
{
	struct pagestore_objinfo oi;
	if (pagestore_object_info(r->ps, objkey_id(m->ident, path), &oi) != 0)
		return 0;
	return oi.bytes;
}

int64_t
reader_cached_bytes(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st)
{
	return pagestore_cached_bytes(r->ps, objkey_id(m->ident, path),
	    objkey_version(st));
}

int
reader_read_stat(struct reader *r, struct mount *m, const char *path,
    int64_t off, int dirs, struct ufs_stat *st)
{
	if (!ufs_has_read_stat(m->ufs))
		return -ENOTSUP;
	const int64_t P = r->page_size;
	int64_t idx = off / P;
	/* A page buffer from the one budget; none free: the caller stats. */
	pthread_mutex_lock(&r->lock);
	char *buf = NULL;
	if (r->inflight < r->cfg.max_inflight && !r->stopping && (buf = do_take_buf(r)))
		r->inflight++;
	pthread_mutex_unlock(&r->lock);
	if (!buf)
		return -EAGAIN;
	ssize_t n = ufs_read_stat(m->ufs, path, idx * P, buf, (size_t)P, dirs, st);
	/* Only a whole page (or the object's tail) is a page; a fetch of the
	 * same page under way stores it itself. */
	if (n > 0 && !st->is_dir && n == page_len(st->size, P, idx)) {
		struct page_key k = page_of(m, path, st, idx);
		pthread_mutex_lock(&r->lock);
		int busy = do_ftab_find(r, &k) != NULL;
		pthread_mutex_unlock(&r->lock);
		if (!busy) {
			struct page_origin o = origin_of(m, path);
			pagestore_put_origin(r->ps, &k, buf, (uint32_t)n, &o, 1);
		}
	}
	pthread_mutex_lock(&r->lock);
	do_put_buf(r, buf);
	r->inflight--;
	pthread_cond_broadcast(&r->ready);
	pthread_mutex_unlock(&r->lock);
	return n < 0 ? (int)n : 0;
}

/* Counts n bytes served: a miss if the page was not in the cache before a
 * client asked for it. */
static void
count_served(int miss, int64_t n)
{
	if (miss)
		METRIC_ADD(miss_bytes, n);
	else
		METRIC_ADD(hit_bytes, n);
}

/*
 * Sends [a, a+n) of a cached page (whose data must reach a + n, else the
 * page is shorter than the version says: stale) and releases the ref.
 * Each chunk the range touches is read into a pooled buffer and checked
 * (page_ref_read) before its bytes go; a page checked whole already
 * (--page-verify once) goes by sendfile.  *done: the bytes sent, also on
 * failure (-EBADMSG: a chunk failed, the page is dropped; the caller
 * fetches it again and sends the rest).
 */
static int
serve_ref(struct reader *r, const struct read_sink *sink, struct page_ref *ref,
    int64_t a, int64_t n, int64_t *done)
{
	int rc = 0;
	*done = 0;
	if ((int64_t)ref->len < a + n) {
		rc = -ESTALE;
	} else if (ref->checked) {
		rc = sink->file(sink->arg, ref->fd, ref->off + a, (size_t)n);
		if (rc == 0)
			*done = n;
	} else if (n > 0) {
		void *buf = pagestore_buf_get(r->ps);
		rc = buf ? 0 : -ENOMEM;
		while (rc == 0 && *done < n) {
			const unsigned char *p;
			ssize_t got = page_ref_read(ref, (uint32_t)(a + *done),
			    (uint32_t)(n - *done), buf, PAGESTORE_BUF_SIZE, &p);
			if (got < 0)
				rc = (int)got;
			else if ((rc = sink->mem(sink->arg, p, (size_t)got)) == 0)
				*done += got;
		}
		pagestore_buf_put(r->ps, buf);
	}
	if (*done > 0)
		count_served(ref->fresh, *done);
	page_ref_release(ref);
	return rc;
}

/* Waits for a referenced fetch to be READY; its error, or 0. */
static int
do_wait_fetch(struct reader *r, struct fetch *f)
{
	while (f->state != F_READY && !r->stopping)
		pthread_cond_wait(&r->ready, &r->lock);
	return f->state == F_READY ? f->err : -ECANCELED;
}

/*
 * A range that is partly cached could mix versions if the object changed
 * in the UFS within the sync interval: the cached pages are of the old
 * version, fetched ones would fail their version check mid-response.  So
 * fetch the first missing page (the UFS checks the version) before sending
 * a byte.  0, or -ESTALE (nothing sent) / -errno.
 */
static int
check_version_first(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, const struct page_span *sp)
{
	uint64_t obj = objkey_id(m->ident, path), ver = objkey_version(st);
	int64_t first_miss = -1;
	int any_cached = 0;
	pthread_mutex_lock(&r->lock);
	for (int64_t i = sp->first; i <= sp->last && !(any_cached && first_miss >= 0); i++) {
		struct page_key k = objkey_page(obj, ver, i);
		/* Bytes already here (stored, or fetched and being stored)
		 * count as cached; a fetch still under way has not checked
		 * the version yet, so it counts as missing. */
		struct fetch *f = do_ftab_find(r, &k);
		if (f ? (f->state == F_READY && !f->err) : pagestore_has(r->ps, &k))
			any_cached = 1;
		else if (first_miss < 0)
			first_miss = i;
	}
	int err = 0;
	if (any_cached && first_miss >= 0) {
		struct page_key k = objkey_page(obj, ver, first_miss);
		struct fetch *f = do_fetch_get(r, m, path, st, &k, 1, 0, &err);
		if (f) {
			err = do_wait_fetch(r, f);
			do_fetch_unref(r, f);
		}
	}
	pthread_mutex_unlock(&r->lock);
	return err;
}

/* Serves [a, a+n) of page k: from the store, or from its fetch (made, or
 * joined, here).  0 or -errno. */
static int
serve_page(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, const struct page_key *k, int64_t a, int64_t n,
    const struct read_sink *sink)
{
	for (;;) {
		struct page_ref ref;
		int gr = pagestore_get(r->ps, k, &ref);
		if (gr == 0) {
			int64_t done;
			int sr = serve_ref(r, sink, &ref, a, n, &done);
			if (sr != -EBADMSG)
				return sr;
			/* A chunk failed its check: the page is gone from the
			 * store; fetch it again for what is left to send. */
			a += done;
			n -= done;
			continue;
		}
		if (gr != -ENOENT)
			return gr; /* the store cannot open it: an error, not a retry */

		pthread_mutex_lock(&r->lock);
		int err = 0;
		struct fetch *f = do_fetch_get(r, m, path, st, k, 1, 0, &err);
		if (!f) {
			pthread_mutex_unlock(&r->lock);
			if (err)
				return err;
			continue; /* stored meanwhile (or evicted at once): again */
		}
		f->served = 1;
		err = do_wait_fetch(r, f);
		int unfresh = f->stored && f->stored_fresh;
		uint32_t got = f->got;
		pthread_mutex_unlock(&r->lock);

		if (!err && (int64_t)got < a + n)
			err = -ESTALE;
		if (!err)
			err = sink->mem(sink->arg, f->buf + a, (size_t)n);
		if (!err)
			count_served(1, n);
		/* It was stored as fresh before we came: its first get must
		 * not count a second miss. */
		if (unfresh)
			pagestore_unfresh(r->ps, k);
		pthread_mutex_lock(&r->lock);
		do_fetch_unref(r, f);
		pthread_mutex_unlock(&r->lock);
		return err;
	}
}

int
reader_read(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t off, int64_t len,
    const struct read_sink *sink, int64_t *sent)
{
	*sent = 0;
	if (len <= 0)
		return 0;
	const int64_t P = r->page_size;
	struct page_span sp = page_span(off, len, P);
	int64_t npages = page_count(st->size, P);
	uint64_t obj = objkey_id(m->ident, path), ver = objkey_version(st);

	/* Sequential if this read starts where the last read of this
	 * object ended: then read ahead past it, up to the block's end. */
	size_t slot = (size_t)(obj % SEQ_SLOTS);
	int sequential = off > 0 && !sink->no_readahead && r->seq[slot].obj == obj &&
	    r->seq[slot].next_off == off;
	r->seq[slot].obj = obj;
	r->seq[slot].next_off = off + len;
	int64_t limit = sequential ? sp.last + r->cfg.readahead_pages : sp.last;
	if (r->cfg.block_size > 0) {
		int64_t bp = r->cfg.block_size / P; /* pages per block */
		int64_t block_end = (sp.last / bp + 1) * bp - 1;
		if (limit > block_end)
			limit = block_end;
	}
	if (limit >= npages)
		limit = npages - 1;

	int rc = check_version_first(r, m, path, st, &sp);
	if (rc)
		return rc;

	int64_t scheduled = sp.first; /* pages up to this one are under way */
	for (int64_t i = sp.first; i <= sp.last && rc == 0; i++) {
		/* Keep the window of parallel fetches ahead of us full. */
		int64_t ahead = i + r->cfg.window < sp.last ? i + r->cfg.window : sp.last;
		if (ahead > scheduled) {
			schedule(r, m, path, st, scheduled + 1, ahead, 0);
			scheduled = ahead;
		}
		int64_t a, n;
		page_span_part(&sp, i, &a, &n);
		struct page_key k = objkey_page(obj, ver, i);
		rc = serve_page(r, m, path, st, &k, a, n, sink);
		if (rc == 0)
			*sent += n;
	}
	if (rc == 0 && limit > sp.last)
		schedule(r, m, path, st, scheduled + 1 > sp.last + 1 ? scheduled + 1 : sp.last + 1,
		    limit, 1);
	return rc;
}

int
reader_get_pages(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t off, int64_t len,
    struct page_ref *refs, int max, int *n)
{
	*n = 0;
	int64_t end = off + len < st->size ? off + len : st->size;
	if (off >= end)
		return 0;
	struct page_span sp = page_span(off, end - off, r->page_size);
	uint64_t obj = objkey_id(m->ident, path), ver = objkey_version(st);
	int rc = 0;
	for (int64_t i = sp.first; i <= sp.last && *n < max; i++) {
		int64_t a, cnt;
		page_span_part(&sp, i, &a, &cnt);
		struct page_key k = objkey_page(obj, ver, i);
		struct page_ref *ref = &refs[*n];
		rc = pagestore_get(r->ps, &k, ref);
		if (rc < 0)
			break;
		if ((int64_t)ref->len < a + cnt) {
			/* Shorter than the version says: let the read path
			 * sort it out (it asks the UFS). */
			page_ref_release(ref);
			rc = -ENOENT;
			break;
		}
		ref->ra = (uint32_t)a;
		ref->rn = (uint32_t)cnt;
		(*n)++;
	}
	if (rc < 0) {
		for (int j = 0; j < *n; j++)
			page_ref_release(&refs[j]);
		*n = 0;
		return rc;
	}
	for (int j = 0; j < *n; j++)
		count_served(refs[j].fresh, refs[j].rn);
	return 0;
}
