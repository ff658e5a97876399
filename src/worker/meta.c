/*
 * meta.c: the metadata cache (see meta.h).
 *
 * Stat entries live in a chained hash table keyed by (mount identity, path)
 * with an LRU list; an entry being fetched is marked loading and other
 * threads wait on the cache's condition variable instead of asking the UFS
 * again.  Listing pages are cached whole (each at most max_keys entries),
 * keyed by all the listing arguments, in a second table with its own LRU
 * and byte budget.  Files seen in a listing also refresh the stat cache,
 * so `ls -l` followed by reads costs one UFS listing, not one stat a file.
 * meta_stat_read answers a read's miss with one UFS request that is both the
 * stat and the first page (stored through the reader before the entry is
 * published, so the threads waiting on it find the page too).
 */
#include "meta.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../common/vas.h"
#include "metrics.h"
#include "reader.h"

/* Cold GETs that read their first page along with the metadata, at once. */
#define META_READ_STAT_MAX 64
static int g_read_stat_inflight; /* atomic */

struct stat_ent {
	struct stat_ent *hnext;
	struct stat_ent *prev, *next; /* LRU, most recent at head */
	uint64_t h;
	uint64_t ident;
	int64_t fetched_ms;
	int err;     /* 0 or the cached negative answer (-ENOENT) */
	int nokey;   /* -ENOENT from a read: no object, but maybe a directory
	              * (only meta_stat_read callers that do not care take it) */
	int loading; /* a thread is asking the UFS */
	struct ufs_stat st;
	char path[]; /* NUL-terminated */
};

struct list_ent_item {
	uint32_t key_off; /* into the page's string area */
	int is_dir;
	int64_t size, mtime;
	uint32_t etag_off;
};

struct list_page {
	struct list_page *hnext;
	struct list_page *prev, *next;
	uint64_t h;
	char *args; /* the listing arguments, as one string (exact-match key) */
	int64_t fetched_ms;
	int truncated;
	int n;
	struct list_ent_item *items;
	char *strs;
	size_t bytes;
};

struct meta_cache {
	pthread_mutex_t lock;
	pthread_cond_t loaded;
	int64_t sync_ms;
	int64_t max_entries, max_list_bytes;
	struct pagestore *ps;

	struct stat_ent **stab;
	size_t stab_size; /* power of two */
	int64_t nstat;
	struct stat_ent *lru_head, *lru_tail;

	struct list_page **ltab;
	size_t ltab_size;
	int64_t list_bytes;
	struct list_page *llru_head, *llru_tail;
};

uint64_t
meta_obj_id(const struct mount *m, const char *path)
{
	return hash64(path, strlen(path), m->ident);
}

void
meta_etag(const struct ufs_stat *st, char *out, size_t n)
{
	if (st->etag[0])
		snprintf(out, n, "%s", st->etag);
	else
		snprintf(out, n, "%" PRIx64 "-%" PRIx64, (uint64_t)st->mtime, (uint64_t)st->size);
}

uint64_t
meta_version(const struct ufs_stat *st)
{
	char e[UFS_ETAG_MAX];
	meta_etag(st, e, sizeof(e));
	/* Size is mixed in too: a store that reuses ETags across sizes must
	 * still never mix pages. */
	return hash64(e, strlen(e), (uint64_t)st->size * 0x9e3779b97f4a7c15ULL + 1);
}

struct meta_cache *
meta_open(int64_t sync_interval_ms, int64_t max_entries, int64_t max_list_bytes,
    struct pagestore *ps)
{
	struct meta_cache *mc = calloc(1, sizeof(*mc));
	if (!mc)
		return NULL;
	pthread_mutex_init(&mc->lock, NULL);
	pthread_cond_init(&mc->loaded, NULL);
	mc->sync_ms = sync_interval_ms;
	mc->max_entries = max_entries > 16 ? max_entries : 16;
	mc->max_list_bytes = max_list_bytes;
	mc->ps = ps;
	mc->stab_size = 1024;
	mc->stab = calloc(mc->stab_size, sizeof(*mc->stab));
	mc->ltab_size = 256;
	mc->ltab = calloc(mc->ltab_size, sizeof(*mc->ltab));
	if (!mc->stab || !mc->ltab) {
		meta_close(&mc);
		return NULL;
	}
	return mc;
}

/* --- stat entries (all do_* expect mc->lock held) ------------------------ */

static void
do_lru_unlink(struct meta_cache *mc, struct stat_ent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		mc->lru_head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		mc->lru_tail = e->prev;
	e->prev = e->next = NULL;
}

static void
do_lru_push(struct meta_cache *mc, struct stat_ent *e)
{
	e->prev = NULL;
	e->next = mc->lru_head;
	if (mc->lru_head)
		mc->lru_head->prev = e;
	mc->lru_head = e;
	if (!mc->lru_tail)
		mc->lru_tail = e;
}

static struct stat_ent *
do_stat_find(struct meta_cache *mc, uint64_t ident, const char *path, uint64_t h)
{
	for (struct stat_ent *e = mc->stab[h & (mc->stab_size - 1)]; e; e = e->hnext)
		if (e->h == h && e->ident == ident && strcmp(e->path, path) == 0)
			return e;
	return NULL;
}

static void
do_stat_remove(struct meta_cache *mc, struct stat_ent *e)
{
	struct stat_ent **pp = &mc->stab[e->h & (mc->stab_size - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	do_lru_unlink(mc, e);
	mc->nstat--;
	free(e);
}

static void
do_stat_grow(struct meta_cache *mc)
{
	size_t ns = mc->stab_size * 2;
	struct stat_ent **t = calloc(ns, sizeof(*t));
	if (!t)
		return; /* keep the old table; chains get longer, still correct */
	for (size_t i = 0; i < mc->stab_size; i++) {
		struct stat_ent *e = mc->stab[i];
		while (e) {
			struct stat_ent *nx = e->hnext;
			e->hnext = t[e->h & (ns - 1)];
			t[e->h & (ns - 1)] = e;
			e = nx;
		}
	}
	free(mc->stab);
	mc->stab = t;
	mc->stab_size = ns;
}

static struct stat_ent *
do_stat_insert(struct meta_cache *mc, uint64_t ident, const char *path, uint64_t h)
{
	size_t pl = strlen(path);
	struct stat_ent *e = calloc(1, sizeof(*e) + pl + 1);
	if (!e)
		return NULL;
	memcpy(e->path, path, pl + 1);
	e->h = h;
	e->ident = ident;
	if ((size_t)mc->nstat >= mc->stab_size)
		do_stat_grow(mc);
	e->hnext = mc->stab[h & (mc->stab_size - 1)];
	mc->stab[h & (mc->stab_size - 1)] = e;
	do_lru_push(mc, e);
	mc->nstat++;
	/* Evict least recently used entries that nobody is loading. */
	struct stat_ent *v = mc->lru_tail;
	while (mc->nstat > mc->max_entries && v) {
		struct stat_ent *pv = v->prev;
		if (!v->loading && v != e)
			do_stat_remove(mc, v);
		v = pv;
	}
	return e;
}

/* Records a fresh answer; drops old-version pages if the version moved. */
static void
do_stat_update(struct meta_cache *mc, struct mount *m, struct stat_ent *e,
    int err, const struct ufs_stat *st, uint64_t *drop_obj, uint64_t *keep_ver)
{
	if (e->fetched_ms && !e->err && !e->st.is_dir && (err || !st->is_dir)) {
		uint64_t oldv = meta_version(&e->st);
		uint64_t newv = err ? 0 : meta_version(st);
		if (oldv != newv) {
			*drop_obj = meta_obj_id(m, e->path);
			*keep_ver = newv;
		}
	}
	e->err = err;
	e->nokey = 0;
	if (!err)
		e->st = *st;
	e->fetched_ms = now_ms();
}

/*
 * The cached answer for path, or a claim to ask the UFS: returns 1 with
 * *rc (and *st) set on a hit; 0 with *ep the entry marked loading (NULL if
 * none could be made) on a miss.  Concurrent misses wait for the first.
 * nokey_ok: an entry that only knows "no object" (not whether it is a
 * directory) is a hit.  prev (if given): on a miss, the expired answer the
 * entry held, for a file; else prev->size is -1.
 */
static int
stat_begin(struct meta_cache *mc, struct mount *m, const char *path,
    int nokey_ok, struct ufs_stat *st, int *rc, struct stat_ent **ep,
    struct ufs_stat *prev)
{
	uint64_t h = hash64(path, strlen(path), m->ident);
	pthread_mutex_lock(&mc->lock);
	struct stat_ent *e;
	for (;;) {
		e = do_stat_find(mc, m->ident, path, h);
		if (!e || !e->loading)
			break;
		pthread_cond_wait(&mc->loaded, &mc->lock);
	}
	if (e && e->fetched_ms && now_ms() - e->fetched_ms < mc->sync_ms &&
	    (!e->nokey || nokey_ok)) {
		*rc = e->err;
		if (!e->err)
			*st = e->st;
		do_lru_unlink(mc, e);
		do_lru_push(mc, e);
		pthread_mutex_unlock(&mc->lock);
		METRIC_ADD(meta_hits, 1);
		return 1;
	}
	if (prev) {
		prev->size = -1;
		if (e && e->fetched_ms && !e->err && !e->st.is_dir)
			*prev = e->st;
	}
	if (!e)
		e = do_stat_insert(mc, m->ident, path, h);
	if (e)
		e->loading = 1;
	pthread_mutex_unlock(&mc->lock);
	METRIC_ADD(meta_misses, 1);
	*ep = e;
	return 0;
}

/* Records the UFS's answer r (fresh if 0) in the claimed entry e, wakes
 * the waiters, and drops the old version's pages if the version moved. */
static void
stat_finish(struct meta_cache *mc, struct mount *m, const char *path,
    struct stat_ent *e, int r, const struct ufs_stat *fresh, int nokey)
{
	uint64_t drop_obj = 0, keep_ver = 0;
	pthread_mutex_lock(&mc->lock);
	if (e) {
		e->loading = 0;
		/* Cache answers and "no such object"; not transient failures. */
		if (r == 0 || r == -ENOENT) {
			do_stat_update(mc, m, e, r, fresh, &drop_obj, &keep_ver);
			e->nokey = r == -ENOENT && nokey;
		} else if (!e->fetched_ms) {
			do_stat_remove(mc, e);
		}
		pthread_cond_broadcast(&mc->loaded);
	}
	pthread_mutex_unlock(&mc->lock);
	if (drop_obj && mc->ps) {
		int n = pagestore_drop_object(mc->ps, drop_obj, keep_ver);
		LOG_INFO("/%s/%s changed in the under-store: dropped %d cached pages of the old version",
		    m->name, path, n);
	}
}

static int
ufs_stat_call(struct mount *m, const char *path, struct ufs_stat *fresh)
{
	METRIC_ADD(ufs_requests[UFSOP_STAT], 1);
	memset(fresh, 0, sizeof(*fresh));
	int r = m->ops->stat(m->ufs, path, fresh);
	if (r < 0 && r != -ENOENT)
		METRIC_ADD(ufs_errors[UFSOP_STAT], 1);
	return r;
}

int
meta_stat(struct meta_cache *mc, struct mount *m, const char *path,
    struct ufs_stat *st)
{
	if (!m->ufs)
		return -EIO;
	int r;
	struct stat_ent *e;
	if (stat_begin(mc, m, path, 0, st, &r, &e, NULL))
		return r;
	struct ufs_stat fresh;
	r = ufs_stat_call(m, path, &fresh);
	stat_finish(mc, m, path, e, r, &fresh, 0);
	if (r == 0)
		*st = fresh;
	return r;
}

int
meta_stat_read(struct meta_cache *mc, struct mount *m, const char *path,
    int64_t off, int dirs, struct reader *rd, struct ufs_stat *st)
{
	if (!m->ufs)
		return -EIO;
	if (!m->ops->read_stat || !rd || !mc->ps || off < 0)
		return meta_stat(mc, m, path, st);
	int r;
	struct stat_ent *e;
	struct ufs_stat prev;
	if (stat_begin(mc, m, path, !dirs, st, &r, &e, &prev))
		return r;
	struct ufs_stat fresh;
	memset(&fresh, 0, sizeof(fresh));
	const int64_t P = pagestore_page_size(mc->ps);
	int64_t idx = off / P;
	/* Expired, and the page is cached at the version we knew: most
	 * likely still current, so confirm it with a stat (no bytes moved)
	 * rather than read the page again. */
	struct page_key pk = {meta_obj_id(m, path), 0, (uint64_t)idx};
	int known = 0;
	if (prev.size >= 0) {
		pk.ver = meta_version(&prev);
		known = prev.size == 0 || pagestore_has(mc->ps, &pk);
	}
	/* No metadata but pages of the object (after a restart): the same. */
	else
		known = pagestore_has_object(mc->ps, pk.obj);
	/* At most META_READ_STAT_MAX page buffers at once (memory bound: a
	 * flood of cold GETs falls back to stat, then the reader's budget). */
	int took = !known && __atomic_add_fetch(&g_read_stat_inflight, 1,
	    __ATOMIC_ACQ_REL) <= META_READ_STAT_MAX;
	if (!known && !took)
		__atomic_sub_fetch(&g_read_stat_inflight, 1, __ATOMIC_ACQ_REL);
	char *buf = took ? malloc((size_t)P) : NULL;
	ssize_t n = -ERANGE;
	if (buf) {
		METRIC_ADD(ufs_requests[UFSOP_READ], 1);
		n = m->ops->read_stat(m->ufs, path, idx * P, buf, (size_t)P, dirs, &fresh);
		if (n >= 0)
			METRIC_ADD(ufs_read_bytes, n);
		else if (n != -ENOENT && n != -ERANGE)
			METRIC_ADD(ufs_errors[UFSOP_READ], 1);
	}
	if (n == -ERANGE) {
		/* The page is cached, or that reply had no metadata (an empty
		 * object, off past the end): ask stat, still as the one loader
		 * of this entry. */
		r = ufs_stat_call(m, path, &fresh);
	} else {
		r = n < 0 ? (int)n : 0;
		/* The page is stored before the entry is released, so that
		 * readers woken by it find the page and ask the UFS nothing. */
		if (n > 0)
			reader_store_page(rd, m, path, &fresh, idx, buf, (uint32_t)n);
	}
	free(buf);
	if (took)
		__atomic_sub_fetch(&g_read_stat_inflight, 1, __ATOMIC_ACQ_REL);
	stat_finish(mc, m, path, e, r, &fresh, n == -ENOENT && !dirs);
	if (r == 0)
		*st = fresh;
	return r;
}

void
meta_invalidate(struct meta_cache *mc, struct mount *m, const char *path)
{
	uint64_t h = hash64(path, strlen(path), m->ident);
	pthread_mutex_lock(&mc->lock);
	struct stat_ent *e = do_stat_find(mc, m->ident, path, h);
	if (e && !e->loading)
		do_stat_remove(mc, e);
	pthread_mutex_unlock(&mc->lock);
}

/* --- listing pages ------------------------------------------------------- */

static void
do_llru_unlink(struct meta_cache *mc, struct list_page *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		mc->llru_head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	else
		mc->llru_tail = p->prev;
	p->prev = p->next = NULL;
}

static void
do_llru_push(struct meta_cache *mc, struct list_page *p)
{
	p->prev = NULL;
	p->next = mc->llru_head;
	if (mc->llru_head)
		mc->llru_head->prev = p;
	mc->llru_head = p;
	if (!mc->llru_tail)
		mc->llru_tail = p;
}

static void
list_page_free(struct list_page *p)
{
	if (!p)
		return;
	free(p->args);
	free(p->items);
	free(p->strs);
	free(p);
}

static void
do_list_remove(struct meta_cache *mc, struct list_page *p)
{
	struct list_page **pp = &mc->ltab[p->h & (mc->ltab_size - 1)];
	while (*pp != p)
		pp = &(*pp)->hnext;
	*pp = p->hnext;
	do_llru_unlink(mc, p);
	mc->list_bytes -= (int64_t)p->bytes;
	list_page_free(p);
}

/* Collects one UFS listing page into a list_page. */
struct collect {
	struct list_page *p;
	struct dbuf strs;
	int cap;
	int err;
};

static int
collect_one(void *arg, const struct ufs_entry *e)
{
	struct collect *c = arg;
	struct list_page *p = c->p;
	if (p->n == c->cap) {
		int nc = c->cap ? c->cap * 2 : 64;
		struct list_ent_item *it = realloc(p->items, sizeof(*it) * (size_t)nc);
		if (!it) {
			c->err = -ENOMEM;
			return 1;
		}
		p->items = it;
		c->cap = nc;
	}
	struct list_ent_item *it = &p->items[p->n];
	it->key_off = (uint32_t)c->strs.len;
	int r = dbuf_add(&c->strs, e->key, strlen(e->key) + 1);
	it->etag_off = (uint32_t)c->strs.len;
	const char *etag = e->etag ? e->etag : "";
	if (!r)
		r = dbuf_add(&c->strs, etag, strlen(etag) + 1);
	if (r) {
		c->err = r;
		return 1;
	}
	it->is_dir = e->is_dir;
	it->size = e->size;
	it->mtime = e->mtime;
	p->n++;
	return 0;
}

static int
replay(struct list_page *p, ufs_list_fn fn, void *arg, const char *start_after)
{
	for (int i = 0; i < p->n; i++) {
		/* Continuing after a common prefix: a store may roll the keys
		 * under it up into the same prefix again; it was already
		 * listed. */
		if (p->items[i].is_dir && strcmp(p->strs + p->items[i].key_off, start_after) == 0)
			continue;
		struct ufs_entry e = {
		    .key = p->strs + p->items[i].key_off,
		    .is_dir = p->items[i].is_dir,
		    .size = p->items[i].size,
		    .mtime = p->items[i].mtime,
		    .etag = p->strs + p->items[i].etag_off,
		};
		if (fn(arg, &e))
			break;
	}
	return 0;
}

int
meta_list(struct meta_cache *mc, struct mount *m, const char *prefix,
    const char *delimiter, const char *start_after, int max_keys, ufs_list_fn fn,
    void *arg, int *truncated)
{
	if (!m->ufs)
		return -EIO;
	if (!delimiter)
		delimiter = "";
	struct dbuf key;
	dbuf_init(&key, 4 * 4096);
	/* Lengths keep the fields apart: no delimiter/prefix/start_after
	 * triple can spell another triple's key. */
	int r = dbuf_printf(&key, "%016" PRIx64 "|%zu:%s|%d|%zu:%s|%zu:%s", m->ident,
	    strlen(delimiter), delimiter, max_keys, strlen(prefix), prefix,
	    strlen(start_after), start_after);
	if (r) {
		dbuf_free(&key);
		return -EINVAL;
	}
	uint64_t h = hash64(key.p, key.len, 7);

	pthread_mutex_lock(&mc->lock);
	struct list_page *p = mc->ltab[h & (mc->ltab_size - 1)];
	while (p && !(p->h == h && strcmp(p->args, key.p) == 0))
		p = p->hnext;
	if (p && now_ms() - p->fetched_ms < mc->sync_ms) {
		do_llru_unlink(mc, p);
		do_llru_push(mc, p);
		/* Replay under the lock: callbacks only format output. */
		*truncated = p->truncated;
		replay(p, fn, arg, start_after);
		pthread_mutex_unlock(&mc->lock);
		dbuf_free(&key);
		METRIC_ADD(meta_hits, 1);
		return 0;
	}
	pthread_mutex_unlock(&mc->lock);

	METRIC_ADD(meta_misses, 1);
	METRIC_ADD(ufs_requests[UFSOP_LIST], 1);
	struct collect c = {0};
	c.p = calloc(1, sizeof(*c.p));
	if (!c.p) {
		dbuf_free(&key);
		return -ENOMEM;
	}
	dbuf_init(&c.strs, 64 * 1024 * 1024);
	int trunc = 0;
	r = m->ops->list(m->ufs, prefix, delimiter, start_after, max_keys,
	    collect_one, &c, &trunc);
	if (!r && c.err)
		r = c.err;
	if (r < 0) {
		METRIC_ADD(ufs_errors[UFSOP_LIST], 1);
		dbuf_free(&c.strs);
		list_page_free(c.p);
		dbuf_free(&key);
		return r;
	}
	p = c.p;
	p->truncated = trunc;
	p->strs = dbuf_take(&c.strs);
	p->args = dbuf_take(&key);
	p->h = h;
	p->fetched_ms = now_ms();
	p->bytes = sizeof(*p) + strlen(p->args) + (size_t)c.cap * sizeof(*p->items);
	for (int i = 0; i < p->n; i++)
		p->bytes += strlen(p->strs + p->items[i].key_off) + strlen(p->strs + p->items[i].etag_off) + 2;

	*truncated = trunc;
	replay(p, fn, arg, start_after);

	struct {
		uint64_t obj, ver;
	} *drops = calloc((size_t)(p->n ? p->n : 1), sizeof(*drops));
	pthread_mutex_lock(&mc->lock);
	/* A listing answers stat for every file it shows: seed entries the
	 * cache lacks, and refresh the clock of those whose version the listing
	 * confirms, so that `ls -l` of a big directory after the sync interval
	 * costs one listing per 1000 files, not one stat each.  Entries whose
	 * version moved are updated and their old pages dropped (after the
	 * lock is released). */
	int ndrops = 0;
	for (int i = 0; i < p->n; i++) {
		const struct list_ent_item *it = &p->items[i];
		const char *k = p->strs + it->key_off;
		if (it->is_dir || strlen(k) >= UFS_KEY_MAX)
			continue;
		struct ufs_stat ns = {.size = it->size, .mtime = it->mtime};
		snprintf(ns.etag, sizeof(ns.etag), "%s", p->strs + it->etag_off);
		uint64_t kh = hash64(k, strlen(k), m->ident);
		struct stat_ent *e = do_stat_find(mc, m->ident, k, kh);
		if (e) {
			if (e->loading)
				continue;
			if (!e->err && !e->st.is_dir && meta_version(&e->st) == meta_version(&ns)) {
				e->fetched_ms = p->fetched_ms;
			} else if (drops) {
				uint64_t dobj = 0, kver = 0;
				do_stat_update(mc, m, e, 0, &ns, &dobj, &kver);
				if (dobj) {
					drops[ndrops].obj = dobj;
					drops[ndrops].ver = kver;
					ndrops++;
				}
			}
			continue;
		}
		e = do_stat_insert(mc, m->ident, k, kh);
		if (!e)
			break;
		e->st = ns;
		e->fetched_ms = p->fetched_ms;
	}
	/* Replace an older copy of the same page. */
	struct list_page *old = mc->ltab[h & (mc->ltab_size - 1)];
	while (old && !(old->h == h && strcmp(old->args, p->args) == 0))
		old = old->hnext;
	if (old)
		do_list_remove(mc, old);
	if ((int64_t)p->bytes > mc->max_list_bytes) {
		list_page_free(p);
	} else {
		p->hnext = mc->ltab[h & (mc->ltab_size - 1)];
		mc->ltab[h & (mc->ltab_size - 1)] = p;
		do_llru_push(mc, p);
		mc->list_bytes += (int64_t)p->bytes;
		while (mc->list_bytes > mc->max_list_bytes && mc->llru_tail != p)
			do_list_remove(mc, mc->llru_tail);
	}
	pthread_mutex_unlock(&mc->lock);
	for (int i = 0; i < ndrops && mc->ps; i++)
		pagestore_drop_object(mc->ps, drops[i].obj, drops[i].ver);
	free(drops);
	return 0;
}

void
meta_close(struct meta_cache **mcp)
{
	struct meta_cache *mc = *mcp;
	*mcp = NULL;
	if (!mc)
		return;
	if (mc->stab) {
		for (size_t i = 0; i < mc->stab_size; i++) {
			struct stat_ent *e = mc->stab[i];
			while (e) {
				struct stat_ent *nx = e->hnext;
				free(e);
				e = nx;
			}
		}
	}
	if (mc->ltab) {
		for (size_t i = 0; i < mc->ltab_size; i++) {
			struct list_page *p = mc->ltab[i];
			while (p) {
				struct list_page *nx = p->hnext;
				list_page_free(p);
				p = nx;
			}
		}
	}
	free(mc->stab);
	free(mc->ltab);
	pthread_mutex_destroy(&mc->lock);
	pthread_cond_destroy(&mc->loaded);
	free(mc);
}
