/*
 * meta.c: the metadata cache (see meta.h).
 *
 * Stat entries live in an intrusive hash (htab.h) keyed by (mount identity,
 * path) with an LRU list; an entry being fetched is marked loading and
 * other threads wait on the cache's condition variable instead of asking
 * the UFS again (meta_stat_begin/end; meta_stat is both around a UFS stat).
 * Listing pages are cached whole (each at most max_keys entries), keyed by
 * all the listing arguments, in a second table with its own LRU and byte
 * budget.  Files seen in a listing also refresh the stat cache, so `ls -l`
 * followed by reads costs one UFS listing, not one stat a file.
 *
 * Each stat entry may keep the headers stored with its object (a malloc'd
 * copy of exactly their bytes, counted in hdrs_bytes, at most
 * cfg.max_hdrs_bytes in all, the oldest on hlru forgotten first): set by a load or a write, kept while answers
 * confirm the same version, dropped when it moves; readers copy them out
 * under the lock.
 *
 * Stale-if-error: when a refresh fails for a reason other than an answer
 * ("no such object", "denied"), the expired answer is served again for up
 * to cfg.stale_ms past its expiry, counted in ferry_metadata_stale_total
 * and logged once per mount until the under-store answers again; the entry
 * is retried after at most a second, not at every request.
 *
 * Threads: any request thread.  mc->lock guards both tables and LRUs and is
 * never held across a UFS call or on_change.  Functions named do_* expect
 * it held.
 */
#include "meta.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "../common/htab.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/vas.h"
#include "metrics.h"
#include "objkey.h"

/* A failed refresh is tried again after this long at most. */
#define META_RETRY_MS 1000
/* The headers stored with objects (Content-Type, x-amz-meta-*, ...) kept
 * with their stat answers, all entries together, unless configured: past
 * it the least recently used entries forget theirs (a GET then asks the
 * store again). */
#define META_HDRS_BYTES (32 << 20)

struct stat_ent {
	struct hnode hn;
	TAILQ_ENTRY(stat_ent) lru;
	TAILQ_ENTRY(stat_ent) hlru; /* in mc->hlru while hdrs is set */
	uint64_t h;
	uint64_t ident;
	int64_t fetched_ms;
	int64_t expires_ms; /* fetched_ms + sync, or sooner after a failure */
	int err;     /* 0 or the cached negative answer (-ENOENT) */
	int nokey;   /* -ENOENT from a read: no object, but maybe a directory
	              * (only callers with nokey_ok take it) */
	int loading; /* a thread is asking the UFS */
	int invalid; /* meta_invalidate: known wrong; asked again at the next
	              * use (its version kept, so that a move is reported),
	              * never served stale */
	struct ufs_stat st;
	/* The headers stored with the object (struct ufs_hdrs' pairs), when
	 * hdrs_have: loaded with the answer, or written by this worker;
	 * otherwise not known (an entry a listing made, a copy), and a caller
	 * that wants them loads the entry again.  hdrs is NULL when none are
	 * stored; counted in mc->hdrs_bytes. */
	char *hdrs;
	uint32_t hdrs_len;
	uint16_t hdrs_n;
	uint8_t hdrs_have;
	char path[]; /* NUL-terminated */
};

struct list_ent_item {
	uint32_t key_off; /* into the page's string area */
	int is_dir;
	int64_t size, mtime;
	uint32_t etag_off;
};

struct list_page {
	struct hnode hn;
	TAILQ_ENTRY(list_page) lru;
	uint64_t h;
	char *args; /* the listing arguments, as one string (exact-match key) */
	uint64_t ident; /* the mount's */
	int64_t fetched_ms;
	int64_t expires_ms;
	int truncated;
	int n;
	struct list_ent_item *items;
	char *strs;
	size_t bytes;
};

TAILQ_HEAD(stat_lru, stat_ent);
TAILQ_HEAD(list_lru, list_page);

struct meta_cache {
	pthread_mutex_t lock;
	pthread_cond_t loaded;
	struct meta_cfg cfg;

	struct htab stab;
	struct stat_lru slru; /* most recent first */
	struct htab ltab;
	struct list_lru llru;
	int64_t list_bytes;
	int64_t hdrs_bytes; /* what stat entries' headers hold */
	struct stat_lru hlru; /* the entries holding headers, most recent
	                       * first: the budget takes the oldest */
};

static uint64_t
stat_hashof(const struct hnode *n)
{
	return container_of(n, struct stat_ent, hn)->h;
}

static uint64_t
list_hashof(const struct hnode *n)
{
	return container_of(n, struct list_page, hn)->h;
}

struct meta_cache *
meta_open(const struct meta_cfg *cfg)
{
	struct meta_cache *mc = calloc(1, sizeof(*mc));
	if (!mc)
		return NULL;
	pthread_mutex_init(&mc->lock, NULL);
	pthread_cond_init(&mc->loaded, NULL);
	mc->cfg = *cfg;
	if (mc->cfg.max_entries < 16)
		mc->cfg.max_entries = 16;
	if (mc->cfg.max_hdrs_bytes <= 0)
		mc->cfg.max_hdrs_bytes = META_HDRS_BYTES;
	TAILQ_INIT(&mc->slru);
	TAILQ_INIT(&mc->llru);
	TAILQ_INIT(&mc->hlru);
	if (htab_init(&mc->stab, 1024, stat_hashof) < 0 ||
	    htab_init(&mc->ltab, 256, list_hashof) < 0) {
		meta_close(&mc);
		return NULL;
	}
	return mc;
}

/* --- stat entries -------------------------------------------------------- */

static struct stat_ent *
do_stat_find(struct meta_cache *mc, uint64_t ident, const char *path, uint64_t h)
{
	struct hnode *n;
	for (HTAB_FOREACH(&mc->stab, h, n)) {
		struct stat_ent *e = container_of(n, struct stat_ent, hn);
		if (e->h == h && e->ident == ident && strcmp(e->path, path) == 0)
			return e;
	}
	return NULL;
}

static void
do_hdrs_drop(struct meta_cache *mc, struct stat_ent *e)
{
	if (e->hdrs)
		TAILQ_REMOVE(&mc->hlru, e, hlru);
	mc->hdrs_bytes -= e->hdrs_len;
	free(e->hdrs);
	e->hdrs = NULL;
	e->hdrs_len = 0;
	e->hdrs_n = 0;
	e->hdrs_have = 0;
}

/* e's headers become h's (NULL, or h not known: not known), within the
 * budget: the least recently used entries' go first. */
static void
do_hdrs_set(struct meta_cache *mc, struct stat_ent *e, const struct ufs_hdrs *h)
{
	do_hdrs_drop(mc, e);
	if (!h || !h->known)
		return;
	if (h->len) {
		if (!(e->hdrs = malloc(h->len)))
			return;
		memcpy(e->hdrs, h->buf, h->len);
		TAILQ_INSERT_HEAD(&mc->hlru, e, hlru);
	}
	e->hdrs_len = (uint32_t)h->len;
	e->hdrs_n = (uint16_t)h->n;
	e->hdrs_have = 1;
	mc->hdrs_bytes += e->hdrs_len;
	/* O(what is freed): only entries holding headers are on hlru. */
	struct stat_ent *v;
	while (mc->hdrs_bytes > mc->cfg.max_hdrs_bytes &&
	    (v = TAILQ_LAST(&mc->hlru, stat_lru)) && v != e)
		do_hdrs_drop(mc, v);
}

/* e's headers into h (h->known 0 when e does not know them). */
static void
do_hdrs_get(const struct stat_ent *e, struct ufs_hdrs *h)
{
	h->known = e->hdrs_have;
	h->n = e->hdrs_have ? e->hdrs_n : 0;
	h->len = e->hdrs_have ? e->hdrs_len : 0;
	if (h->len)
		memcpy(h->buf, e->hdrs, h->len);
	h->buf[h->len] = 0;
}

static void
do_stat_remove(struct meta_cache *mc, struct stat_ent *e)
{
	htab_remove(&mc->stab, &e->hn, e->h);
	TAILQ_REMOVE(&mc->slru, e, lru);
	do_hdrs_drop(mc, e);
	free(e);
}

static void
do_stat_touch(struct meta_cache *mc, struct stat_ent *e)
{
	TAILQ_REMOVE(&mc->slru, e, lru);
	TAILQ_INSERT_HEAD(&mc->slru, e, lru);
	if (e->hdrs) {
		TAILQ_REMOVE(&mc->hlru, e, hlru);
		TAILQ_INSERT_HEAD(&mc->hlru, e, hlru);
	}
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
	htab_insert(&mc->stab, &e->hn, h);
	TAILQ_INSERT_HEAD(&mc->slru, e, lru);
	/* Evict least recently used entries that nobody is loading. */
	struct stat_ent *v = TAILQ_LAST(&mc->slru, stat_lru);
	while ((int64_t)mc->stab.n > mc->cfg.max_entries && v) {
		struct stat_ent *pv = TAILQ_PREV(v, stat_lru, lru);
		if (!v->loading && v != e)
			do_stat_remove(mc, v);
		v = pv;
	}
	return e;
}

/* A change to report after the lock is released. */
struct change {
	uint64_t obj, keep_ver;
};

/* Records a fresh answer; *ch is set if the version moved.  The headers
 * known go unless the answer is the same version (or keep_hdrs: the same
 * bytes under the store's version); a caller that knows the new ones sets
 * them after. */
static void
do_stat_update(struct meta_cache *mc, struct mount *m, struct stat_ent *e,
    int err, const struct ufs_stat *st, int keep_hdrs, int64_t now,
    struct change *ch)
{
	if (!keep_hdrs && (err || !e->fetched_ms || e->err ||
	    e->st.is_dir != st->is_dir ||
	    objkey_version(&e->st) != objkey_version(st)))
		do_hdrs_drop(mc, e);
	if (e->fetched_ms && !e->err && !e->st.is_dir && (err || !st->is_dir)) {
		uint64_t oldv = objkey_version(&e->st);
		uint64_t newv = err ? 0 : objkey_version(st);
		if (oldv != newv) {
			ch->obj = objkey_id(m->ident, e->path);
			ch->keep_ver = newv;
		}
	}
	e->err = err;
	e->nokey = 0;
	e->invalid = 0;
	if (!err)
		e->st = *st;
	e->fetched_ms = now;
	e->expires_ms = now + mc->cfg.sync_ms;
}

static void
report_change(struct meta_cache *mc, struct mount *m, const char *path,
    const struct change *ch)
{
	if (!ch->obj)
		return;
	LOG_INFO("/%s/%s changed in the under-store: its cached pages of the old version are dropped",
	    m->name, path);
	if (mc->cfg.on_change)
		mc->cfg.on_change(mc->cfg.arg, ch->obj, ch->keep_ver);
}

/* May e's expired answer be served while the under-store fails? */
static int
do_stale_ok(const struct meta_cache *mc, const struct stat_ent *e, int64_t now)
{
	return e->fetched_ms && !e->err && !e->invalid &&
	    now < e->fetched_ms + mc->cfg.sync_ms + mc->cfg.stale_ms;
}

int
meta_stat_begin(struct meta_cache *mc, struct mount *m, const char *path,
    int nokey_ok, struct ufs_stat *st, struct ufs_hdrs *hd, struct meta_load *ld)
{
	memset(ld, 0, sizeof(*ld));
	uint64_t h = objkey_id(m->ident, path);
	pthread_mutex_lock(&mc->lock);
	struct stat_ent *e;
	for (;;) {
		e = do_stat_find(mc, m->ident, path, h);
		if (!e || !e->loading)
			break;
		/* The under-store is failing and another thread is asking it
		 * again: serve the answer kept for that (stale-if-error)
		 * rather than wait out its timeouts. */
		if (__atomic_load_n(&m->ufs_down, __ATOMIC_RELAXED) &&
		    do_stale_ok(mc, e, now_ms()) && (!e->nokey || nokey_ok)) {
			*st = e->st;
			if (hd)
				do_hdrs_get(e, hd);
			pthread_mutex_unlock(&mc->lock);
			METRIC_ADD(meta_stale, 1);
			return 0;
		}
		pthread_cond_wait(&mc->loaded, &mc->lock);
	}
	/* A hit, unless the caller wants headers this answer does not know
	 * (a listing made it): then it is loaded again, which learns them. */
	if (e && e->fetched_ms && now_ms() < e->expires_ms && (!e->nokey || nokey_ok) &&
	    (!hd || e->err || e->st.is_dir || e->hdrs_have)) {
		int r = e->err;
		if (!r)
			*st = e->st;
		if (!r && hd)
			do_hdrs_get(e, hd);
		do_stat_touch(mc, e);
		pthread_mutex_unlock(&mc->lock);
		METRIC_ADD(meta_hits, 1);
		return r;
	}
	if (e && e->fetched_ms && !e->err && !e->st.is_dir) {
		ld->prev = e->st;
		ld->has_prev = 1;
	}
	if (!e)
		e = do_stat_insert(mc, m->ident, path, h);
	if (e)
		e->loading = 1;
	pthread_mutex_unlock(&mc->lock);
	METRIC_ADD(meta_misses, 1);
	ld->ent = e;
	return META_LOAD;
}

/* Is r a failure to get an answer (the store is down or broken), rather
 * than an answer? */
static int
is_outage(int r)
{
	return r < 0 && r != -ENOENT && r != -EACCES && r != -EPERM &&
	    r != -EINVAL && r != -ENAMETOOLONG && r != -ENOTDIR && r != -EISDIR;
}

/* Stale-if-error bookkeeping, once per mount and outage. */
static void
outage_seen(struct mount *m, const char *path, int r)
{
	METRIC_ADD(meta_stale, 1);
	if (__atomic_exchange_n(&m->ufs_down, 1, __ATOMIC_ACQ_REL) == 0)
		LOG_WARN("mount /%s: the under-store does not answer (%s: %s); serving what is cached until it does",
		    m->name, path, ufs_last_error()[0] ? ufs_last_error() : strerror(-r));
}

static void
outage_over(struct mount *m)
{
	if (__atomic_load_n(&m->ufs_down, __ATOMIC_RELAXED) &&
	    __atomic_exchange_n(&m->ufs_down, 0, __ATOMIC_ACQ_REL))
		LOG_INFO("mount /%s: the under-store answers again", m->name);
}

int
meta_stat_end(struct meta_cache *mc, struct mount *m, const char *path,
    struct meta_load *ld, int r, const struct ufs_stat *fresh,
    const struct ufs_hdrs *fh, int nokey, struct ufs_stat *st,
    struct ufs_hdrs *h)
{
	struct stat_ent *e = ld->ent;
	struct change ch = {0};
	int stale = 0;
	int64_t now = now_ms();
	pthread_mutex_lock(&mc->lock);
	if (e) {
		e->loading = 0;
		if (r == 0 || r == -ENOENT) {
			/* Cache answers and "no such object". */
			do_stat_update(mc, m, e, r, fresh, 0, now, &ch);
			e->nokey = r == -ENOENT && nokey;
			if (r == 0 && fh && fh->known) {
				do_hdrs_set(mc, e, fh);
			} else if (r == 0 && fh) {
				/* The store does not say: asking it again
				 * would not tell more; none, for this answer. */
				static const struct ufs_hdrs none = {.known = 1};
				do_hdrs_set(mc, e, &none);
			}
		} else if (is_outage(r) && e->fetched_ms && !e->invalid &&
		    now < e->fetched_ms + mc->cfg.sync_ms + mc->cfg.stale_ms) {
			/* (do_stale_ok, but an "no object" answer is kept too:
			 * it is still the last answer) */
			/* Keep the expired answer; ask again soon. */
			e->expires_ms = now + (mc->cfg.sync_ms < META_RETRY_MS ?
			    mc->cfg.sync_ms : META_RETRY_MS);
			stale = !e->err;
			if (stale)
				*st = e->st;
			if (stale && h)
				do_hdrs_get(e, h);
		} else if (!e->fetched_ms) {
			do_stat_remove(mc, e);
		}
		pthread_cond_broadcast(&mc->loaded);
	}
	pthread_mutex_unlock(&mc->lock);
	ld->ent = NULL;
	if (stale)
		outage_seen(m, path, r);
	else if (r == 0 || r == -ENOENT)
		outage_over(m);
	report_change(mc, m, path, &ch);
	if (r == 0 && st != fresh)
		*st = *fresh;
	if (r == 0 && h && h != fh) {
		if (fh)
			memcpy(h, fh, offsetof(struct ufs_hdrs, buf) + fh->len + 1);
		else
			h->known = h->n = 0, h->len = 0;
	}
	return stale ? 0 : r;
}

int
meta_stat(struct meta_cache *mc, struct mount *m, const char *path,
    struct ufs_stat *st)
{
	struct meta_load ld;
	int r = meta_stat_begin(mc, m, path, 0, st, NULL, &ld);
	if (r != META_LOAD)
		return r;
	struct ufs_stat fresh;
	r = ufs_stat(m->ufs, path, &fresh);
	/* The headers came with the answer: kept for the GETs to come. */
	return meta_stat_end(mc, m, path, &ld, r, &fresh, ufs_last_hdrs(), 0,
	    st, NULL);
}

/* An answer a write of this worker gives: published as if just loaded (a
 * load under way finishes first, so it cannot overwrite it). */
static void
set_answer(struct meta_cache *mc, struct mount *m, const char *path, int err,
    const struct ufs_stat *st, const struct ufs_hdrs *hd)
{
	uint64_t h = objkey_id(m->ident, path);
	struct change ch = {0};
	pthread_mutex_lock(&mc->lock);
	struct stat_ent *e;
	while ((e = do_stat_find(mc, m->ident, path, h)) && e->loading)
		pthread_cond_wait(&mc->loaded, &mc->lock);
	if (!e)
		e = do_stat_insert(mc, m->ident, path, h);
	if (e) {
		do_stat_update(mc, m, e, err, st, 0, now_ms(), &ch);
		do_stat_touch(mc, e);
		if (!err)
			do_hdrs_set(mc, e, hd);
	}
	pthread_mutex_unlock(&mc->lock);
	report_change(mc, m, path, &ch);
}

/* A write or delete of path changes what its directories are: "a" of
 * "a/b/c" exists once a/b/c is written (a cached "no such key" for it is
 * wrong now) and may go when its last key goes.  Their cached answers are
 * forgotten, so the next stat asks the store. */
static void
forget_ancestors(struct meta_cache *mc, struct mount *m, const char *path)
{
	char dir[UFS_KEY_MAX + 1];
	size_t n = strlen(path);
	if (n > UFS_KEY_MAX)
		return;
	memcpy(dir, path, n + 1);
	pthread_mutex_lock(&mc->lock);
	for (char *s = strrchr(dir, '/'); s; s = strrchr(dir, '/')) {
		*s = 0;
		uint64_t h = objkey_id(m->ident, dir);
		struct stat_ent *e = do_stat_find(mc, m->ident, dir, h);
		if (e && !e->loading)
			do_stat_remove(mc, e);
	}
	pthread_mutex_unlock(&mc->lock);
}

void
meta_wrote(struct meta_cache *mc, struct mount *m, const char *path,
    const struct ufs_stat *st, const struct ufs_hdrs *h)
{
	set_answer(mc, m, path, 0, st, h);
	forget_ancestors(mc, m, path);
}

void
meta_replace(struct meta_cache *mc, struct mount *m, const char *path,
    const struct ufs_stat *from, const struct ufs_stat *to)
{
	uint64_t h = objkey_id(m->ident, path);
	struct change ch = {0};
	pthread_mutex_lock(&mc->lock);
	struct stat_ent *e = do_stat_find(mc, m->ident, path, h);
	if (e && !e->loading && !e->invalid && e->err == 0 && !e->st.is_dir &&
	    objkey_version(&e->st) == objkey_version(from)) {
		/* The same bytes and headers, under the store's version. */
		do_stat_update(mc, m, e, 0, to, 1, now_ms(), &ch);
		do_stat_touch(mc, e);
	}
	pthread_mutex_unlock(&mc->lock);
	/* Not a change in the store (no log line): the same bytes under the
	 * store's version; other versions' pages go. */
	if (ch.obj && mc->cfg.on_change)
		mc->cfg.on_change(mc->cfg.arg, ch.obj, ch.keep_ver);
}

void
meta_learn_hdrs(struct meta_cache *mc, struct mount *m, const char *path,
    uint64_t ver, const struct ufs_hdrs *hd)
{
	uint64_t h = objkey_id(m->ident, path);
	pthread_mutex_lock(&mc->lock);
	struct stat_ent *e = do_stat_find(mc, m->ident, path, h);
	if (e && !e->loading && !e->invalid && e->err == 0 && !e->st.is_dir &&
	    !e->hdrs_have && objkey_version(&e->st) == ver)
		do_hdrs_set(mc, e, hd);
	pthread_mutex_unlock(&mc->lock);
}

void
meta_removed(struct meta_cache *mc, struct mount *m, const char *path)
{
	set_answer(mc, m, path, -ENOENT, NULL, NULL);
	forget_ancestors(mc, m, path);
}

void
meta_invalidate(struct meta_cache *mc, struct mount *m, const char *path)
{
	uint64_t h = objkey_id(m->ident, path);
	pthread_mutex_lock(&mc->lock);
	struct stat_ent *e = do_stat_find(mc, m->ident, path, h);
	/* Expired, not forgotten: the refresh compares versions and reports
	 * a move (on_change), so the old version's pages are dropped. */
	if (e && !e->loading) {
		e->expires_ms = 0;
		e->invalid = 1;
	}
	pthread_mutex_unlock(&mc->lock);
}

int64_t
meta_refresh(struct meta_cache *mc, struct mount *m, const char *prefix)
{
	int64_t n = 0;
	pthread_mutex_lock(&mc->lock);
	HTAB_EACH(&mc->stab, i, hn, nx) {
		struct stat_ent *e = container_of(hn, struct stat_ent, hn);
		if (e->ident != m->ident || e->loading ||
		    !path_under(e->path, prefix))
			continue;
		e->expires_ms = 0;
		e->invalid = 1;
		n++;
	}
	pthread_mutex_unlock(&mc->lock);
	meta_forget_lists(mc, m);
	return n;
}

void
meta_changed_elsewhere(struct meta_cache *mc, struct mount *m, const char *path)
{
	meta_invalidate(mc, m, path);
	forget_ancestors(mc, m, path);
	meta_forget_lists(mc, m);
}

/* --- listing pages ------------------------------------------------------- */

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
	htab_remove(&mc->ltab, &p->hn, p->h);
	TAILQ_REMOVE(&mc->llru, p, lru);
	mc->list_bytes -= (int64_t)p->bytes;
	list_page_free(p);
}

static struct list_page *
do_list_find(struct meta_cache *mc, const char *args, uint64_t h)
{
	struct hnode *n;
	for (HTAB_FOREACH(&mc->ltab, h, n)) {
		struct list_page *p = container_of(n, struct list_page, hn);
		if (p->h == h && strcmp(p->args, args) == 0)
			return p;
	}
	return NULL;
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
	const char *etag = e->etag ? e->etag : "";
	it->key_off = (uint32_t)c->strs.len;
	dbuf_add(&c->strs, e->key, strlen(e->key) + 1);
	it->etag_off = (uint32_t)c->strs.len;
	int r = dbuf_add(&c->strs, etag, strlen(etag) + 1);
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

static void
replay(const struct list_page *p, ufs_list_fn fn, void *arg, const char *start_after)
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
}

/*
 * A listing answers stat for every file it shows: seed entries the cache
 * lacks, and refresh the clock of those whose version the listing confirms,
 * so that `ls -l` of a big directory after the sync interval costs one
 * listing per 1000 files, not one stat each.  Entries whose version moved
 * are updated; their changes go to ch (at most p->n) for after the lock.
 */
static int
do_seed_stats(struct meta_cache *mc, struct mount *m, const struct list_page *p,
    struct change *ch)
{
	int nch = 0;
	for (int i = 0; i < p->n; i++) {
		const struct list_ent_item *it = &p->items[i];
		const char *k = p->strs + it->key_off;
		if (it->is_dir || strlen(k) >= UFS_KEY_MAX)
			continue;
		struct ufs_stat ns = {.size = it->size, .mtime = it->mtime};
		snprintf(ns.etag, sizeof(ns.etag), "%s", p->strs + it->etag_off);
		uint64_t kh = objkey_id(m->ident, k);
		struct stat_ent *e = do_stat_find(mc, m->ident, k, kh);
		if (e) {
			if (e->loading)
				continue;
			if (!e->err && !e->st.is_dir && objkey_version(&e->st) == objkey_version(&ns)) {
				e->fetched_ms = p->fetched_ms;
				e->expires_ms = p->expires_ms;
				e->invalid = 0;
			} else if (ch) {
				struct change c = {0};
				do_stat_update(mc, m, e, 0, &ns, 0, p->fetched_ms, &c);
				if (c.obj)
					ch[nch++] = c;
			}
			continue;
		}
		e = do_stat_insert(mc, m->ident, k, kh);
		if (!e)
			break;
		e->st = ns;
		e->fetched_ms = p->fetched_ms;
		e->expires_ms = p->expires_ms;
	}
	return nch;
}

/* The cache key of a listing: lengths keep the fields apart, so no
 * delimiter/prefix/start_after triple can spell another triple's key. */
static int
list_args(struct dbuf *key, const struct mount *m, const char *prefix,
    const char *delimiter, const char *start_after, int max_keys)
{
	dbuf_init(key, 4 * 4096);
	return dbuf_printf(key, "%016" PRIx64 "|%zu:%s|%d|%zu:%s|%zu:%s", m->ident,
	    strlen(delimiter), delimiter, max_keys, strlen(prefix), prefix,
	    strlen(start_after), start_after);
}

int
meta_list(struct meta_cache *mc, struct mount *m, const char *prefix,
    const char *delimiter, const char *start_after, int max_keys, ufs_list_fn fn,
    void *arg, int *truncated)
{
	return meta_list_fresh(mc, m, prefix, delimiter, start_after, max_keys, 0,
	    fn, arg, truncated);
}

int64_t
meta_sync_ms(const struct meta_cache *mc)
{
	return mc->cfg.sync_ms;
}

int
meta_list_fresh(struct meta_cache *mc, struct mount *m, const char *prefix,
    const char *delimiter, const char *start_after, int max_keys,
    int64_t min_left_ms, ufs_list_fn fn, void *arg, int *truncated)
{
	if (!delimiter)
		delimiter = "";
	struct dbuf key;
	if (list_args(&key, m, prefix, delimiter, start_after, max_keys)) {
		dbuf_free(&key);
		return -EINVAL;
	}
	uint64_t h = hash64(key.p, key.len, 7);
	int64_t now = now_ms();

	pthread_mutex_lock(&mc->lock);
	struct list_page *p = do_list_find(mc, key.p, h);
	if (p && now + min_left_ms < p->expires_ms) {
		TAILQ_REMOVE(&mc->llru, p, lru);
		TAILQ_INSERT_HEAD(&mc->llru, p, lru);
		*truncated = p->truncated;
		replay(p, fn, arg, start_after);
		pthread_mutex_unlock(&mc->lock);
		dbuf_free(&key);
		METRIC_ADD(meta_hits, 1);
		return 0;
	}
	pthread_mutex_unlock(&mc->lock);

	METRIC_ADD(meta_misses, 1);
	struct collect c = {0};
	c.p = calloc(1, sizeof(*c.p));
	if (!c.p) {
		dbuf_free(&key);
		return -ENOMEM;
	}
	dbuf_init(&c.strs, 64 * 1024 * 1024);
	int trunc = 0;
	int r = ufs_list(m->ufs, prefix, delimiter, start_after, max_keys,
	    collect_one, &c, &trunc);
	if (!r && c.err)
		r = c.err;
	if (r < 0) {
		dbuf_free(&c.strs);
		list_page_free(c.p);
		/* Stale-if-error: the expired page, if it is not too old. */
		int served = 0;
		if (is_outage(r)) {
			pthread_mutex_lock(&mc->lock);
			p = do_list_find(mc, key.p, h);
			if (p && now < p->fetched_ms + mc->cfg.sync_ms + mc->cfg.stale_ms) {
				*truncated = p->truncated;
				replay(p, fn, arg, start_after);
				served = 1;
			}
			pthread_mutex_unlock(&mc->lock);
			if (served)
				outage_seen(m, prefix, r);
		}
		dbuf_free(&key);
		return served ? 0 : r;
	}
	outage_over(m);
	p = c.p;
	p->truncated = trunc;
	p->strs = dbuf_take(&c.strs);
	p->args = dbuf_take(&key);
	p->ident = m->ident;
	p->h = h;
	p->fetched_ms = now_ms();
	p->expires_ms = p->fetched_ms + mc->cfg.sync_ms;
	p->bytes = sizeof(*p) + strlen(p->args) + (size_t)c.cap * sizeof(*p->items);
	for (int i = 0; i < p->n; i++)
		p->bytes += strlen(p->strs + p->items[i].key_off) + strlen(p->strs + p->items[i].etag_off) + 2;

	*truncated = trunc;
	replay(p, fn, arg, start_after);

	struct change *ch = calloc((size_t)(p->n ? p->n : 1), sizeof(*ch));
	pthread_mutex_lock(&mc->lock);
	int nch = do_seed_stats(mc, m, p, ch);
	struct list_page *old = do_list_find(mc, p->args, h);
	if (old)
		do_list_remove(mc, old);
	if ((int64_t)p->bytes > mc->cfg.max_list_bytes) {
		list_page_free(p);
	} else {
		htab_insert(&mc->ltab, &p->hn, h);
		TAILQ_INSERT_HEAD(&mc->llru, p, lru);
		mc->list_bytes += (int64_t)p->bytes;
		while (mc->list_bytes > mc->cfg.max_list_bytes && TAILQ_LAST(&mc->llru, list_lru) != p)
			do_list_remove(mc, TAILQ_LAST(&mc->llru, list_lru));
	}
	pthread_mutex_unlock(&mc->lock);
	for (int i = 0; i < nch; i++)
		if (mc->cfg.on_change)
			mc->cfg.on_change(mc->cfg.arg, ch[i].obj, ch[i].keep_ver);
	free(ch);
	return 0;
}

void
meta_forget_lists(struct meta_cache *mc, struct mount *m)
{
	pthread_mutex_lock(&mc->lock);
	struct list_page *p, *prev;
	for (p = TAILQ_LAST(&mc->llru, list_lru); p; p = prev) {
		prev = TAILQ_PREV(p, list_lru, lru);
		if (p->ident == m->ident)
			do_list_remove(mc, p);
	}
	pthread_mutex_unlock(&mc->lock);
}

void
meta_close(struct meta_cache **mcp)
{
	struct meta_cache *mc = *mcp;
	*mcp = NULL;
	if (!mc)
		return;
	if (mc->stab.b) {
		HTAB_EACH(&mc->stab, i, n, nx) {
			struct stat_ent *e = container_of(n, struct stat_ent, hn);
			free(e->hdrs);
			free(e);
		}
	}
	if (mc->ltab.b) {
		HTAB_EACH(&mc->ltab, i, n, nx)
			list_page_free(container_of(n, struct list_page, hn));
	}
	htab_free(&mc->stab);
	htab_free(&mc->ltab);
	pthread_mutex_destroy(&mc->lock);
	pthread_cond_destroy(&mc->loaded);
	free(mc);
}

struct list_all {
	ufs_list_fn fn;
	void *arg;
	char last[UFS_KEY_MAX + 1];
};

static int
list_all_one(void *arg, const struct ufs_entry *e)
{
	struct list_all *la = arg;
	snprintf(la->last, sizeof(la->last), "%s", e->key);
	return la->fn(la->arg, e);
}

int
meta_list_all(struct meta_cache *mc, struct mount *m, const char *prefix,
    const char *start_after, int page, ufs_list_fn fn,
    int (*page_done)(void *arg), void *arg)
{
	struct list_all *la = malloc(sizeof(*la));
	if (!la)
		return -ENOMEM;
	la->fn = fn;
	la->arg = arg;
	char start[UFS_KEY_MAX + 1];
	snprintf(start, sizeof(start), "%s", start_after ? start_after : "");
	int r;
	for (;;) {
		int truncated = 0;
		la->last[0] = 0;
		r = meta_list(mc, m, prefix, NULL, start, page, list_all_one, la, &truncated);
		if (r == 0 && page_done)
			r = page_done(arg);
		/* The end, or a page that did not move on (no loop forever). */
		if (r != 0 || !truncated || !la->last[0] || strcmp(la->last, start) <= 0)
			break;
		snprintf(start, sizeof(start), "%s", la->last);
	}
	free(la);
	return r;
}
