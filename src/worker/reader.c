/*
 * reader.c: the read path (see reader.h).
 *
 * Threads: reader_read() runs on a connection thread; fetches run on the
 * reader's fetch threads.  One mutex (r->lock) guards the table of fetches
 * in flight, the fetch queue and the buffer free list; it is never held
 * across UFS or disk I/O.  Lock order: r->lock, then the page store's lock
 * (pagestore_has under r->lock, so that a page that was just stored and
 * left the table is not fetched twice).
 *
 * A fetch's life (state machine, driven by fetch_thread):
 *   QUEUED   in the table and the queue; demand fetches are taken first
 *   RUNNING  a fetch thread reads the page from the UFS into f->buf
 *   READY    bytes (or an error) available; waiters are woken and copy out
 *   STORING  (still READY to readers) the thread writes the page file;
 *            then the fetch leaves the table
 * The fetch is freed when its last reference goes; its buffer returns to
 * the free list.
 */
#include "reader.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../common/vas.h"
#include "metrics.h"

enum fetch_state { F_QUEUED, F_RUNNING, F_READY };

struct fetch {
	struct fetch *hnext; /* table chain */
	struct fetch *qnext; /* queue */
	struct page_key key;
	struct mount *m; /* referenced */
	char *path;
	char etag[UFS_ETAG_MAX];
	int64_t off;
	uint32_t want;
	enum fetch_state state;
	int demand; /* a reader waits for it */
	int in_table;
	int err;
	uint32_t got;
	char *buf;
	int refs;
};

#define SEQ_SLOTS 1024
#define FTAB_SIZE 1024

struct reader {
	struct reader_cfg cfg;
	struct pagestore *ps;
	struct meta_cache *mc;
	uint32_t page_size;

	pthread_mutex_t lock;
	pthread_cond_t work;  /* fetch threads wait for queued fetches */
	pthread_cond_t ready; /* readers wait for fetches and buffers */
	struct fetch *ftab[FTAB_SIZE];
	struct fetch *qhead, *qtail;
	int inflight; /* fetches in the table (the max_inflight budget) */
	char **freebufs;
	int nfree;
	int stopping;
	pthread_t *threads;
	int nthreads;

	/* Sequential-access detection: end offset of the last read of an
	 * object, direct-mapped by object id (racy by design: a lost update
	 * only costs a read-ahead decision). */
	struct {
		uint64_t obj;
		int64_t next_off;
	} seq[SEQ_SLOTS];

	/* Pages stored by reader_store_page and not yet served, direct-mapped
	 * by object id (under lock; obj also read without it as a hint), so
	 * that the read they were fetched for counts their bytes as misses. */
	struct page_key fresh[SEQ_SLOTS];
};

static size_t
ftab_slot(const struct page_key *k)
{
	return (size_t)((k->obj ^ (k->ver * 31) ^ (k->idx * 0x9e3779b97f4a7c15ULL)) % FTAB_SIZE);
}

static int
key_eq(const struct page_key *a, const struct page_key *b)
{
	return a->obj == b->obj && a->ver == b->ver && a->idx == b->idx;
}

static struct fetch *
do_ftab_find(struct reader *r, const struct page_key *k)
{
	for (struct fetch *f = r->ftab[ftab_slot(k)]; f; f = f->hnext)
		if (key_eq(&f->key, k))
			return f;
	return NULL;
}

/*
 * Takes f out of the table.  The in-flight budget (max_inflight) counts
 * fetches in the table only: once a page is READY and stored, its buffer
 * may still be held by readers sending it to slow clients, but that must
 * not stop other fetches (at most one such buffer per reading connection).
 */
static void
do_ftab_remove(struct reader *r, struct fetch *f)
{
	if (!f->in_table)
		return;
	struct fetch **pp = &r->ftab[ftab_slot(&f->key)];
	while (*pp && *pp != f)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = f->hnext;
	f->in_table = 0;
	r->inflight--;
	pthread_cond_broadcast(&r->ready);
}

static void
do_fetch_unref(struct reader *r, struct fetch *f)
{
	if (--f->refs > 0)
		return;
	VAS_ASSERT(!f->in_table);
	if (f->buf) {
		if (r->nfree < r->cfg.max_inflight)
			r->freebufs[r->nfree++] = f->buf;
		else
			free(f->buf);
		f->buf = NULL;
	}
	mount_release(&f->m);
	free(f->path);
	free(f);
}

static void
do_enqueue(struct reader *r, struct fetch *f)
{
	f->qnext = NULL;
	if (r->qtail)
		r->qtail->qnext = f;
	else
		r->qhead = f;
	r->qtail = f;
	pthread_cond_signal(&r->work);
}

/* Takes the first demand fetch if any, else the oldest. */
static struct fetch *
do_dequeue(struct reader *r)
{
	struct fetch *prev = NULL, *f = r->qhead, *pick_prev = NULL, *pick = NULL;
	for (; f; prev = f, f = f->qnext) {
		if (f->demand) {
			pick = f;
			pick_prev = prev;
			break;
		}
	}
	if (!pick) {
		pick = r->qhead;
		pick_prev = NULL;
	}
	if (!pick)
		return NULL;
	if (pick_prev)
		pick_prev->qnext = pick->qnext;
	else
		r->qhead = pick->qnext;
	if (r->qtail == pick)
		r->qtail = pick_prev;
	pick->qnext = NULL;
	return pick;
}

static char *
do_take_buf(struct reader *r)
{
	if (r->nfree > 0)
		return r->freebufs[--r->nfree];
	return malloc(r->page_size);
}

/*
 * Finds or creates the fetch of page idx.  Returns a referenced fetch, or
 * NULL if the page is already cached (or, for prefetch, if no buffer is
 * free).  demand: the caller will wait for it (may block for a buffer).
 */
static struct fetch *
do_fetch_get(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, const struct page_key *k, int demand, int *err)
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
		if (buf)
			r->freebufs[r->nfree++] = buf;
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
	int64_t rem = st->size - f->off;
	f->want = (uint32_t)(rem < r->page_size ? rem : r->page_size);
	f->state = F_QUEUED;
	f->demand = demand;
	f->refs = 2; /* the table's (dropped when stored) and the caller's */
	f->in_table = 1;
	r->inflight++;
	size_t s = ftab_slot(k);
	f->hnext = r->ftab[s];
	r->ftab[s] = f;
	do_enqueue(r, f);
	return f;
}

/* A page read from the UFS goes to the page store (a failure there only
 * means it is not cached).  Every fetched page comes through here: the
 * fetch threads' and meta_stat_read's one-request cold reads. */
static void
store_fetched(struct reader *r, const struct page_key *k, const void *buf,
    uint32_t n)
{
	pagestore_put(r->ps, k, buf, n);
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
		if (err && err != -ESTALE)
			LOG_WARN("ufs read /%s/%s @%lld: %s", f->m->name, f->path,
			    (long long)f->off, strerror(-err));

		pthread_mutex_lock(&r->lock);
		f->err = err;
		f->got = err ? 0 : (uint32_t)n;
		f->state = F_READY;
		pthread_cond_broadcast(&r->ready);
		pthread_mutex_unlock(&r->lock);

		/* STORING: write the page; readers already have the bytes. */
		if (!err)
			store_fetched(r, &f->key, f->buf, f->got);

		pthread_mutex_lock(&r->lock);
		do_ftab_remove(r, f);
		do_fetch_unref(r, f);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

struct reader *
reader_open(const struct reader_cfg *cfg, struct pagestore *ps,
    struct meta_cache *mc)
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
	r->mc = mc;
	r->page_size = pagestore_page_size(ps);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->work, NULL);
	pthread_cond_init(&r->ready, NULL);
	r->freebufs = calloc((size_t)r->cfg.max_inflight, sizeof(char *));
	r->threads = calloc((size_t)r->cfg.fetch_threads, sizeof(pthread_t));
	if (!r->freebufs || !r->threads) {
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
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->work);
	pthread_cond_destroy(&r->ready);
	free(r);
}

static void
key_of(struct page_key *k, uint64_t obj, uint64_t ver, int64_t idx)
{
	k->obj = obj;
	k->ver = ver;
	k->idx = (uint64_t)idx;
}

#define MINE_BITS 4096

/* Queues background fetches for pages [from, to] not cached or in flight.
 * If mine is given, marks the pages queued (relative to base) so that the
 * caller counts them as misses when it serves them from the store. */
static int
schedule(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, uint64_t obj, uint64_t ver, int64_t from,
    int64_t to, uint64_t *mine, int64_t base)
{
	int n = 0;
	pthread_mutex_lock(&r->lock);
	for (int64_t i = from; i <= to && !r->stopping; i++) {
		struct page_key k;
		key_of(&k, obj, ver, i);
		if (do_ftab_find(r, &k))
			continue;
		int err;
		struct fetch *f = do_fetch_get(r, m, path, st, &k, 0, &err);
		if (!f) {
			if (r->inflight >= r->cfg.max_inflight)
				break; /* no buffers: read-ahead is best effort */
			continue;
		}
		do_fetch_unref(r, f);
		if (mine && i - base >= 0 && i - base < MINE_BITS)
			mine[(i - base) / 64] |= 1ULL << ((i - base) % 64);
		n++;
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

int
reader_prefetch(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t first, int64_t last)
{
	int64_t npages = (st->size + r->page_size - 1) / r->page_size;
	if (last >= npages)
		last = npages - 1;
	if (first > last)
		return 0;
	return schedule(r, m, path, st, meta_obj_id(m, path), meta_version(st),
	    first, last, NULL, 0);
}

void
reader_store_page(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t idx, const void *buf, uint32_t n)
{
	const int64_t P = r->page_size;
	int64_t rem = st->size - idx * P;
	/* Only a whole page (or the object's tail) is a page. */
	if (st->is_dir || idx < 0 || rem <= 0 || (int64_t)n != (rem < P ? rem : P))
		return;
	struct page_key k;
	key_of(&k, meta_obj_id(m, path), meta_version(st), idx);
	pthread_mutex_lock(&r->lock);
	/* A fetch of the same page under way stores it itself. */
	int busy = do_ftab_find(r, &k) != NULL;
	pthread_mutex_unlock(&r->lock);
	if (busy)
		return;
	store_fetched(r, &k, buf, n);
	pthread_mutex_lock(&r->lock);
	r->fresh[k.obj % SEQ_SLOTS] = k;
	pthread_mutex_unlock(&r->lock);
}

/* Was page k stored by reader_store_page for the read now serving it? */
static int
take_fresh(struct reader *r, const struct page_key *k)
{
	size_t slot = (size_t)(k->obj % SEQ_SLOTS);
	if (__atomic_load_n(&r->fresh[slot].obj, __ATOMIC_RELAXED) != k->obj)
		return 0;
	pthread_mutex_lock(&r->lock);
	int yes = key_eq(&r->fresh[slot], k);
	if (yes)
		memset(&r->fresh[slot], 0, sizeof(r->fresh[slot]));
	pthread_mutex_unlock(&r->lock);
	return yes;
}

/*
 * Sends bytes [a, a+n) of a cached page (its data ends at b at least, or
 * the page is shorter than the object says: stale) and releases the ref.
 * Small pages checked in memory go from there, others by sendfile.
 */
static int
serve_ref(const struct read_sink *sink, struct page_ref *ref, int64_t a,
    size_t n, int64_t b)
{
	int rc;
	if ((int64_t)ref->len < b)
		rc = -ESTALE;
	else if (ref->data)
		rc = sink->mem(sink->arg, ref->data + a, n);
	else
		rc = sink->file(sink->arg, ref->fd, ref->off + a, n);
	page_ref_release(ref);
	return rc;
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
	uint64_t obj = meta_obj_id(m, path), ver = meta_version(st);
	int64_t first = off / P, last = (off + len - 1) / P;
	int64_t npages = (st->size + P - 1) / P;

	/* Sequential if this read starts where the last read of this
	 * object ended. */
	size_t slot = (size_t)(obj % SEQ_SLOTS);
	int sequential = off > 0 && r->seq[slot].obj == obj && r->seq[slot].next_off == off;
	r->seq[slot].obj = obj;
	r->seq[slot].next_off = off + len;
	int64_t limit = last;
	if (sequential)
		limit = last + r->cfg.readahead_pages;
	if (r->cfg.block_size > 0) {
		int64_t bp = r->cfg.block_size / P; /* pages per block */
		if (limit > (last / bp + 1) * bp - 1)
			limit = (last / bp + 1) * bp - 1;
	}
	if (limit >= npages)
		limit = npages - 1;

	/*
	 * A range that is partly cached could mix versions if the object
	 * changed in the UFS within the sync interval: the cached pages are of
	 * the old version, fetched ones would fail their version check
	 * mid-response.  So fetch the first missing page (the UFS checks the
	 * version) before sending a byte; if the object changed, the caller
	 * gets -ESTALE with nothing sent and starts over with fresh metadata.
	 */
	uint64_t mine[MINE_BITS / 64] = {0}; /* pages this call fetched */
	int64_t first_miss = -1;
	int any_cached = 0;
	pthread_mutex_lock(&r->lock);
	for (int64_t i = first; i <= last && !(any_cached && first_miss >= 0); i++) {
		struct page_key k;
		key_of(&k, obj, ver, i);
		/* Bytes already here (stored, or fetched and being stored)
		 * count as cached; a fetch still under way has not checked
		 * the version yet, so it counts as missing. */
		struct fetch *f = do_ftab_find(r, &k);
		if (f ? (f->state == F_READY && !f->err) : pagestore_has(r->ps, &k))
			any_cached = 1;
		else if (first_miss < 0)
			first_miss = i;
	}
	pthread_mutex_unlock(&r->lock);
	if (any_cached && first_miss >= 0) {
		struct page_key k;
		key_of(&k, obj, ver, first_miss);
		int err = 0;
		pthread_mutex_lock(&r->lock);
		struct fetch *f = do_fetch_get(r, m, path, st, &k, 1, &err);
		if (f) {
			while (f->state != F_READY && !r->stopping)
				pthread_cond_wait(&r->ready, &r->lock);
			err = f->state == F_READY ? f->err : -ECANCELED;
			do_fetch_unref(r, f);
		}
		pthread_mutex_unlock(&r->lock);
		if (err) {
			if (err == -ESTALE)
				meta_invalidate(r->mc, m, path);
			return err;
		}
		/* It was missing: fetched for this request. */
		if (first_miss - first < MINE_BITS)
			mine[(first_miss - first) / 64] |= 1ULL << ((first_miss - first) % 64);
	}

	int64_t scheduled = first; /* pages before this were scheduled */
	int rc = 0;
	for (int64_t i = first; i <= last; i++) {
		int64_t pstart = i * P;
		int64_t a = off > pstart ? off - pstart : 0;
		int64_t b = (off + len < pstart + P ? off + len : pstart + P) - pstart;
		size_t n = (size_t)(b - a);
		struct page_key k;
		key_of(&k, obj, ver, i);

		/* Keep the window of parallel fetches ahead of us full. */
		int64_t ahead = i + r->cfg.window;
		if (ahead > limit)
			ahead = limit;
		if (ahead >= scheduled + 1 && ahead > i) {
			schedule(r, m, path, st, obj, ver, scheduled + 1 > i + 1 ? scheduled + 1 : i + 1, ahead,
			    mine, first);
			scheduled = ahead;
		}

		struct page_ref ref;
		if (pagestore_get(r->ps, &k, &ref) == 0) {
			if ((rc = serve_ref(sink, &ref, a, n, b)))
				break;
			if ((i - first < MINE_BITS && (mine[(i - first) / 64] >> ((i - first) % 64) & 1)) ||
			    (i == first && take_fresh(r, &k)))
				METRIC_ADD(miss_bytes, (int64_t)n); /* fetched for us just now */
			else
				METRIC_ADD(hit_bytes, (int64_t)n);
			*sent += (int64_t)n;
			continue;
		}

		pthread_mutex_lock(&r->lock);
		int err = 0;
		struct fetch *f = do_fetch_get(r, m, path, st, &k, 1, &err);
		if (!f && !err) {
			/* Stored between our lookup and now: read the file. */
			pthread_mutex_unlock(&r->lock);
			int gr = pagestore_get(r->ps, &k, &ref);
			if (gr == 0) {
				if ((rc = serve_ref(sink, &ref, a, n, b)))
					break;
				METRIC_ADD(hit_bytes, (int64_t)n);
				*sent += (int64_t)n;
				continue;
			}
			if (gr != -ENOENT) {
				rc = gr; /* the store cannot open it: an error, not a retry */
				break;
			}
			i--; /* evicted at once (tiny cache): try again */
			continue;
		}
		if (!f) {
			pthread_mutex_unlock(&r->lock);
			rc = err;
			break;
		}
		while (f->state != F_READY && !r->stopping)
			pthread_cond_wait(&r->ready, &r->lock);
		err = f->state == F_READY ? f->err : -ECANCELED;
		uint32_t got = f->got;
		pthread_mutex_unlock(&r->lock);

		if (!err && (int64_t)got < b)
			err = -ESTALE;
		if (!err)
			err = sink->mem(sink->arg, f->buf + a, n);
		pthread_mutex_lock(&r->lock);
		do_fetch_unref(r, f);
		pthread_mutex_unlock(&r->lock);
		if (err) {
			rc = err;
			break;
		}
		METRIC_ADD(miss_bytes, (int64_t)n);
		*sent += (int64_t)n;
	}
	if (rc == 0 && sequential && limit > last && scheduled < limit)
		schedule(r, m, path, st, obj, ver, scheduled + 1 > last + 1 ? scheduled + 1 : last + 1, limit,
		    NULL, 0);
	if (rc == -ESTALE)
		meta_invalidate(r->mc, m, path);
	return rc;
}
