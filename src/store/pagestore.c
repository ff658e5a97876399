/*
 * pagestore.c: the local page cache on disk (see pagestore.h for the
 * contract).  Called from any thread: worker request threads (get, has,
 * page_ref_read), fill threads (put), control paths (drop_object, stats);
 * its own thread is the scrubber (pagestore_scrub_start), which checks
 * pages whole at a bounded rate.  Locks: cat_mu, then scrub_mu (the
 * scrubber's cursor and stop flag), then mu; buf_mu (the read buffer pool)
 * is a leaf.
 *
 * In memory, one mutex (ps->mu) guards: an intrusive hash (htab.h, ps->etab)
 * of entries keyed by (obj, ver, idx); a per-directory LRU (a TAILQ, most
 * recent first) of READY entries, and a per-group LRU of the same entries
 * (a group: the objects of one origin, a mount; quotas evict from it); a
 * per-object LIST of READY entries (ps_obj nodes in a second htab,
 * ps->otab) so drop_object and cached_bytes touch only that object's
 * pages, and each object's origin (group, path, first-cached time), pin
 * and expiry; the expiry min-heap; and the byte accounting.  The catalog
 * file (origins across restarts) has its own mutex, cat_mu, taken before
 * mu.
 *
 * An entry is in one of three states:
 *   PENDING  a put has reserved its bytes and is writing the file; not
 *            servable, not in the LRU/object lists, never evicted.  A second
 *            put of the same key sees it and returns 0 (the first one wins).
 *   READY    on disk under its real name; in the LRU and object lists.
 *   DYING    evicted or dropped: its bytes are already released and it is off
 *            the lists, but it stays in the hash until the thread that killed
 *            it has unlinked the file (done without the mutex).  A put of the
 *            same key waits on ps->cond for it to go, so an unlink never
 *            deletes a newer file of the same name.  Meanwhile it is on its
 *            killer's batch (an SLIST through the same bytes as the LRU link:
 *            the two never hold an entry at once), which only the killer
 *            touches.
 * Invariants (under mu): every PENDING, READY and DYING entry is in etab
 * exactly once (ps->etab.n counts them), free slab entries are in none;
 * an entry is in its object's list iff it is READY, and in its dir's and
 * its group's LRU iff it is READY and not pinned (e->pinned iff its
 * object is pinned); a ps_obj is in otab iff its list is not empty, and
 * o->bytes = sum of len over its list; dir->used (and group->used) = sum
 * of (hdr_size + len) over the dir's (group's) PENDING and READY entries;
 * ps->pinned_bytes (group->pinned) = the same over pinned entries;
 * ps->npages = number of READY entries.
 *
 * get does its file I/O without the mutex, remembering the entry's gen (a
 * per-insert counter); whatever it learns (verified, corrupt, missing) is
 * applied afterwards only if the entry still has that gen.  get makes a page
 * most recently used and, at most once a minute per page, bumps the file's
 * mtime, which is what orders the LRU after a restart; has() is a probe and
 * changes nothing.
 *
 * Memory: an entry is 104 bytes, allocated from slabs (no malloc overhead),
 * plus 8 bytes of hash bucket at load factor <= 1, plus per cached object a
 * ps_obj node (malloc'd, ~72 bytes) and its path: about 115 bytes per page
 * and the paths.  No entry
 * stores its hash (htab's hashof recomputes it from the key when the table
 * grows).  The hash doubles under the mutex when full (a pause of some ms
 * per million pages).
 *
 * File format (2, "<obj>-<ver>-<idx>.pg2"): a header of ps->hdr_size =
 * 64 + 4 * nchunks bytes, nchunks = ceil(page_size / PAGESTORE_CHUNK),
 * little-endian:
 *   0 magic "FERRYPG2" | 8 u32 format (2) | 12 u32 data length |
 *   16 u64 obj | 24 u64 ver | 32 u64 idx | 40 u32 chunk size |
 *   44 u32 page_size | 48 u32 nchunks | 52..59 zero |
 *   60 u32 crc32c(bytes 0..59, then the table) |
 *   64 u32[nchunks] crc32c of each chunk of data (0 past the data's end)
 * then the data.  A page is never read whole to be served: get checks the
 * header and hands the table out with the descriptor (page_ref), and
 * whoever reads bytes checks the chunks they touch.  The old format (1,
 * ".pg": a 64-byte header with one crc32c of all the data at 40) is still
 * read: such a page (entry bit v1) is checked whole at its first get and
 * rewritten as format 2 (the rename makes the new file; the old one is
 * unlinked once the entry says v1 = 0, under mu).  Entries count
 * hdr_size + len bytes whatever their format.  The 256 subdirs are made on
 * first use.  Each dir also holds "pagestore.meta" with the page size;
 * page indexes mean nothing under another page size, so pages of a dir
 * whose page size changed (or which has no meta file) are deleted at open.
 */
#include "store/pagestore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/dbuf.h"
#include "common/htab.h"
#include "common/log.h"
#include "common/util.h"
#include "common/vas.h"

#define HDR_FIXED 64 /* the header before the CRC table */
#define HDR_MAGIC "FERRYPG2"
#define HDR_FORMAT 2u
#define V1_HDR_SIZE 64
#define V1_MAGIC "FERRYPG1"
#define V1_FORMAT 1u
#define META_NAME "pagestore.meta"
#define META_TMP "pagestore.meta.tmp"
#define MAX_DIRS 1024
#define MAX_PAGE_SIZE (1u << 30)
#define TOUCH_INTERVAL_S 60
#define SLAB_ENTRIES 1024
#define INITIAL_BUCKETS 1024
/* "xx/" + 16 + "-" + 16 + "-" + 16 + ".pg2" + NUL; temp names add ".tmp.<tid>" */
#define REL_PATH_MAX 64
#define TMP_PATH_MAX 96
#define NAME_LEN 54    /* 16+1+16+1+16+4 */
#define V1_NAME_LEN 53 /* ".pg" */

enum { ST_PENDING = 1, ST_READY, ST_DYING };

struct ps_entry {
	struct page_key k;
	union {
		struct hnode hn;              /* in use: in ps->etab */
		SLIST_ENTRY(ps_entry) fnext;  /* free: on ps->free_entries */
	};
	union {
		TAILQ_ENTRY(ps_entry) lru;    /* READY, not pinned: its dir's LRU */
		SLIST_ENTRY(ps_entry) dead;   /* DYING: its killer's batch */
	};
	TAILQ_ENTRY(ps_entry) glru;           /* READY, not pinned: its group's LRU */
	LIST_ENTRY(ps_entry) olink;           /* READY: its object's list */
	uint32_t gen;
	uint32_t len;     /* data bytes; the file is hdr_size + len (v1: 64 + len) */
	uint32_t touched; /* wall seconds of the file's mtime, roughly */
	uint16_t dir;
	uint16_t grp;     /* index in ps->groups (0: no origin known) */
	uint8_t state;
	uint8_t verified : 1; /* CRC checked since load (--page-verify once) */
	uint8_t fresh : 1;    /* fetched ahead of its reader, not yet got */
	uint8_t pinned : 1;   /* READY and its object is pinned: on no LRU */
	uint8_t v1 : 1;       /* its file is of the old format (".pg") */
};
_Static_assert(sizeof(struct ps_entry) == 104, "ps_entry grew");

TAILQ_HEAD(ps_lru, ps_entry);
SLIST_HEAD(ps_batch, ps_entry);
SLIST_HEAD(ps_free, ps_entry);

struct ps_obj {
	uint64_t obj;
	struct hnode hn;                      /* in ps->otab */
	LIST_HEAD(, ps_entry) pages;          /* never empty while in otab */
	int64_t bytes;    /* data bytes of its READY pages, all versions */
	char *path;       /* its origin's path (owned), NULL: not known */
	uint32_t born;    /* wall seconds it entered the cache (named) */
	uint32_t expire;  /* wall seconds its TTL ends; 0: none */
	uint16_t grp;     /* its group (the origin's; 0: not known) */
	uint8_t pinned;
};

/*
 * A group is the set of objects of one origin group (a mount's identity):
 * its bytes (PENDING + READY, headers included, like a dir's), its quota
 * (0: none) and its own LRU, so a group over quota evicts its own pages.
 * Groups are never freed while the store is open (there are as many as
 * mounts ever seen).
 */
struct ps_group {
	uint64_t ident;
	int64_t used;
	int64_t quota;
	int64_t pinned;  /* bytes of pinned READY pages */
	int64_t objects; /* named objects */
	struct ps_lru lru; /* through glru */
};

/* An expiry: object obj's TTL ends at `at` (a min-heap; stale entries,
 * whose object's expire moved, are skipped when they come up). */
struct ps_exp {
	uint32_t at;
	uint64_t obj;
};

struct ps_slab {
	struct ps_slab *next;
	struct ps_entry e[SLAB_ENTRIES];
};

struct ps_dir {
	char *path;
	int fd;                 /* O_DIRECTORY; all file ops are relative to it */
	int64_t capacity;
	int64_t used;           /* PENDING + READY bytes */
	struct ps_lru lru;      /* READY entries, most recent first; the
	                         * last is evicted first */
};

struct pagestore {
	pthread_mutex_t mu;
	pthread_cond_t cond; /* signalled when DYING entries leave the hash */
	uint32_t page_size;
	uint32_t nchunks;  /* CRC table entries in a header */
	uint32_t hdr_size; /* HDR_FIXED + 4 * nchunks */
	enum pagestore_verify verify;
	int ndirs;
	struct ps_dir *dirs;
	uint64_t total_capacity;

	struct htab etab; /* entries (all states), by key_hash */
	struct htab otab; /* ps_obj nodes, by obj_hash */
	struct ps_slab *slabs;
	struct ps_free free_entries;
	uint32_t gen;
	pthread_mutex_t buf_mu; /* the read buffer pool (leaf) */
	void *bufs[64];
	int nbufs;

	int64_t npages;
	int64_t pinned_bytes;
	int64_t ttl_freed_bytes_total;
	int64_t quota_evicted_bytes_total;

	struct ps_group *groups; /* [0]: objects of no known origin */
	int ngroups, groups_cap;
	pagestore_classify_fn classify;
	void *classify_arg;
	struct ps_exp *exp; /* min-heap by at */
	size_t nexp, exp_cap;

	/* The catalog (see "Catalog" below): cat_mu is taken before mu. */
	pthread_mutex_t cat_mu;
	int cat_warned;
	int64_t cat_bytes, cat_live_bytes;

	int64_t evicted_bytes_total;
	int64_t evicted_pages_total;
	int64_t checksum_failures_total;
	int64_t write_errors_total;
	int64_t converted_total; /* old-format pages rewritten */
	int64_t scrub_bytes_total;

	/* The scrubber (see "Scrubber" below): scrub_mu guards the cursor
	 * and stop flag; it is taken before mu (a step reads the index under
	 * mu, then checks pages with neither held). */
	pthread_mutex_t scrub_mu;
	pthread_cond_t scrub_cond;
	pthread_t scrub_thread;
	int scrub_running, scrub_stop;
	int64_t scrub_rate;
	size_t scrub_cursor; /* the next etab bucket to look at */
};

/* ---- little helpers ------------------------------------------------- */

static int64_t
file_size(const struct pagestore *ps, uint32_t len)
{
	return (int64_t)ps->hdr_size + len;
}

static void
put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
get_le32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t
get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t
key_hash(const struct page_key *k)
{
	return hash64(k, sizeof(*k), 0x70616765u);
}

static uint64_t
obj_hash(uint64_t obj)
{
	return hash64(&obj, sizeof(obj), 0x6f626aU);
}

static uint64_t
entry_hashof(const struct hnode *n)
{
	return key_hash(&container_of(n, struct ps_entry, hn)->k);
}

static uint64_t
obj_hashof(const struct hnode *n)
{
	return obj_hash(container_of(n, struct ps_obj, hn)->obj);
}

static int
key_eq(const struct page_key *a, const struct page_key *b)
{
	return a->obj == b->obj && a->ver == b->ver && a->idx == b->idx;
}

/* "xx/<obj>-<ver>-<idx>.pg2" (v1: ".pg"), relative to the dir's fd. */
static void
rel_path(char *out, size_t n, const struct page_key *k, int v1)
{
	snprintf(out, n, "%02x/%016" PRIx64 "-%016" PRIx64 "-%016" PRIx64 ".%s",
	    (unsigned)(k->obj >> 56), k->obj, k->ver, k->idx, v1 ? "pg" : "pg2");
}

static uint32_t
wall_sec32(void)
{
	return (uint32_t)wall_sec();
}

static char *errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A malloc'd message for pagestore_open's *err (NULL if out of memory). */
static char *
errmsg(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return strdup(buf);
}

/* ---- entry allocation (slabs) ---------------------------------------- */

static struct ps_entry *
do_entry_alloc(struct pagestore *ps)
{
	if (SLIST_EMPTY(&ps->free_entries)) {
		struct ps_slab *s = malloc(sizeof(*s));
		if (!s)
			return NULL;
		s->next = ps->slabs;
		ps->slabs = s;
		for (int i = SLAB_ENTRIES - 1; i >= 0; i--)
			SLIST_INSERT_HEAD(&ps->free_entries, &s->e[i], fnext);
	}
	struct ps_entry *e = SLIST_FIRST(&ps->free_entries);
	SLIST_REMOVE_HEAD(&ps->free_entries, fnext);
	memset(e, 0, sizeof(*e));
	return e;
}

static void
do_entry_free(struct pagestore *ps, struct ps_entry *e)
{
	e->state = 0;
	SLIST_INSERT_HEAD(&ps->free_entries, e, fnext);
}

/* ---- key hash --------------------------------------------------------- */

static struct ps_entry *
do_lookup(struct pagestore *ps, const struct page_key *k)
{
	struct hnode *n;
	for (HTAB_FOREACH(&ps->etab, key_hash(k), n)) {
		struct ps_entry *e = container_of(n, struct ps_entry, hn);
		if (key_eq(&e->k, k))
			return e;
	}
	return NULL;
}

static void
do_hash_insert(struct pagestore *ps, struct ps_entry *e)
{
	htab_insert(&ps->etab, &e->hn, key_hash(&e->k));
}

static void
do_hash_remove(struct pagestore *ps, struct ps_entry *e)
{
	int found = htab_remove(&ps->etab, &e->hn, key_hash(&e->k));
	VAS_ASSERT(found);
}

/* ---- object index ------------------------------------------------------ */

static struct ps_obj *
do_obj_find(struct pagestore *ps, uint64_t obj)
{
	struct hnode *n;
	for (HTAB_FOREACH(&ps->otab, obj_hash(obj), n)) {
		struct ps_obj *o = container_of(n, struct ps_obj, hn);
		if (o->obj == obj)
			return o;
	}
	return NULL;
}

/* ---- groups, LRUs, pins ------------------------------------------------ */

/* The index of group ident, made if new (0 for ident 0, or if out of
 * memory: the page is then simply of no known group). */
static uint16_t
do_group(struct pagestore *ps, uint64_t ident)
{
	if (ident == 0)
		return 0;
	for (int i = 1; i < ps->ngroups; i++)
		if (ps->groups[i].ident == ident)
			return (uint16_t)i;
	if (ps->ngroups >= UINT16_MAX)
		return 0;
	if (ps->ngroups == ps->groups_cap) {
		int nc = ps->groups_cap * 2;
		struct ps_group *ng = realloc(ps->groups, (size_t)nc * sizeof(*ng));
		if (!ng)
			return 0;
		/* The LRU heads moved: their last elements point into the old
		 * array (an empty head points at itself). */
		for (int i = 0; i < ps->ngroups; i++) {
			if (TAILQ_EMPTY(&ng[i].lru))
				TAILQ_INIT(&ng[i].lru);
			else
				TAILQ_FIRST(&ng[i].lru)->glru.tqe_prev = &TAILQ_FIRST(&ng[i].lru);
		}
		ps->groups = ng;
		ps->groups_cap = nc;
	}
	struct ps_group *g = &ps->groups[ps->ngroups];
	memset(g, 0, sizeof(*g));
	g->ident = ident;
	TAILQ_INIT(&g->lru);
	return (uint16_t)ps->ngroups++;
}

/* A READY, unpinned entry goes to the head (most recent) of both LRUs. */
static void
do_lru_link(struct pagestore *ps, struct ps_entry *e)
{
	TAILQ_INSERT_HEAD(&ps->dirs[e->dir].lru, e, lru);
	TAILQ_INSERT_HEAD(&ps->groups[e->grp].lru, e, glru);
}

static void
do_lru_unlink(struct pagestore *ps, struct ps_entry *e)
{
	TAILQ_REMOVE(&ps->dirs[e->dir].lru, e, lru);
	TAILQ_REMOVE(&ps->groups[e->grp].lru, e, glru);
}

/* Pins or unpins a READY entry: pinned pages are on no LRU. */
static void
do_entry_pin(struct pagestore *ps, struct ps_entry *e, int pinned)
{
	if (e->pinned == (pinned != 0))
		return;
	int64_t fs = file_size(ps, e->len);
	if (pinned) {
		do_lru_unlink(ps, e);
		e->pinned = 1;
		ps->pinned_bytes += fs;
		ps->groups[e->grp].pinned += fs;
	} else {
		/* Unpinned: first in line for eviction (it was kept only by
		 * the pin), not ahead of what is being read. */
		e->pinned = 0;
		ps->pinned_bytes -= fs;
		ps->groups[e->grp].pinned -= fs;
		TAILQ_INSERT_TAIL(&ps->dirs[e->dir].lru, e, lru);
		TAILQ_INSERT_TAIL(&ps->groups[e->grp].lru, e, glru);
	}
}

/* ---- expiry heap -------------------------------------------------------- */

static void
do_exp_push(struct pagestore *ps, uint32_t at, uint64_t obj)
{
	if (ps->nexp == ps->exp_cap) {
		size_t nc = ps->exp_cap ? ps->exp_cap * 2 : 256;
		struct ps_exp *nv = realloc(ps->exp, nc * sizeof(*nv));
		if (!nv) {
			LOG_WARN("pagestore: out of memory: a TTL is not kept");
			return;
		}
		ps->exp = nv;
		ps->exp_cap = nc;
	}
	size_t i = ps->nexp++;
	while (i > 0 && ps->exp[(i - 1) / 2].at > at) {
		ps->exp[i] = ps->exp[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	ps->exp[i].at = at;
	ps->exp[i].obj = obj;
}

static void
do_exp_pop(struct pagestore *ps)
{
	struct ps_exp last = ps->exp[--ps->nexp];
	size_t i = 0, n = ps->nexp;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && ps->exp[c + 1].at < ps->exp[c].at)
			c++;
		if (ps->exp[c].at >= last.at)
			break;
		ps->exp[i] = ps->exp[c];
		i = c;
	}
	if (n)
		ps->exp[i] = last;
}

/* ---- object index ------------------------------------------------------ */

/* A catalog record's size for a path of n bytes. */
#define CAT_HDR 28
static int64_t
cat_rec_size(const char *path)
{
	return CAT_HDR + (int64_t)strlen(path);
}

/* Asks the classifier about o and applies the answer.  1 if o's state
 * changed. */
static int
do_classify(struct pagestore *ps, struct ps_obj *o)
{
	int pinned = 0;
	uint32_t ttl = 0;
	if (ps->classify && o->path)
		ps->classify(ps->classify_arg, ps->groups[o->grp].ident, o->path,
		    &pinned, &ttl);
	uint32_t expire = ttl ? o->born + ttl : 0;
	if (expire == 0 && ttl)
		expire = 1;
	int changed = (o->pinned != (pinned != 0)) || o->expire != expire;
	if (o->pinned != (pinned != 0)) {
		o->pinned = pinned != 0;
		struct ps_entry *e;
		LIST_FOREACH(e, &o->pages, olink)
			do_entry_pin(ps, e, o->pinned);
		/* Unpinned: a TTL that ended meanwhile was skipped (a pin
		 * wins); it is due again now. */
		if (!o->pinned && o->expire && o->expire == expire)
			do_exp_push(ps, o->expire, o->obj);
	}
	if (o->expire != expire) {
		o->expire = expire;
		if (expire)
			do_exp_push(ps, expire, o->obj);
	}
	return changed;
}

/*
 * Names o: (group gi, path: owned, consumed), first cached at born.  An
 * object named before keeps its birth; its pages move to the new group.
 */
static void
do_obj_name(struct pagestore *ps, struct ps_obj *o, uint16_t gi, char *path,
    uint32_t born)
{
	if (o->path) {
		ps->cat_live_bytes -= cat_rec_size(o->path);
		ps->groups[o->grp].objects--;
		free(o->path);
	} else {
		o->born = born;
	}
	o->path = path;
	ps->cat_live_bytes += cat_rec_size(path);
	ps->groups[gi].objects++;
	if (o->grp != gi) {
		struct ps_entry *e;
		LIST_FOREACH(e, &o->pages, olink) {
			int64_t fs = file_size(ps, e->len);
			if (e->pinned) {
				ps->groups[e->grp].pinned -= fs;
				ps->groups[gi].pinned += fs;
			} else {
				TAILQ_REMOVE(&ps->groups[e->grp].lru, e, glru);
			}
			ps->groups[e->grp].used -= fs;
			ps->groups[gi].used += fs;
			e->grp = gi;
			if (!e->pinned)
				TAILQ_INSERT_HEAD(&ps->groups[gi].lru, e, glru);
		}
		o->grp = gi;
	}
	do_classify(ps, o);
}

/*
 * Links e into its object's list.  *spare is a node the caller allocated
 * beforehand (so this cannot fail under the mutex); it is consumed (set to
 * NULL) when the object is new.
 */
static struct ps_obj *
do_obj_add(struct pagestore *ps, struct ps_entry *e, struct ps_obj **spare)
{
	struct ps_obj *o = do_obj_find(ps, e->k.obj);
	if (!o) {
		VAS_ASSERT(*spare != NULL);
		o = *spare;
		*spare = NULL;
		memset(o, 0, sizeof(*o));
		o->obj = e->k.obj;
		o->grp = e->grp;
		LIST_INIT(&o->pages);
		htab_insert(&ps->otab, &o->hn, obj_hash(o->obj));
	}
	LIST_INSERT_HEAD(&o->pages, e, olink);
	o->bytes += e->len;
	return o;
}

/* Unlinks e from its object's list; the object goes with its last page. */
static void
do_obj_remove(struct pagestore *ps, struct ps_entry *e)
{
	/* Only the last entry of a list can be its only one: look the
	 * object up just then. */
	int last = LIST_NEXT(e, olink) == NULL;
	LIST_REMOVE(e, olink);
	struct ps_obj *o = do_obj_find(ps, e->k.obj);
	VAS_ASSERT(o != NULL);
	o->bytes -= e->len;
	if (last && LIST_EMPTY(&o->pages)) {
		htab_remove(&ps->otab, &o->hn, obj_hash(o->obj));
		if (o->path) {
			ps->cat_live_bytes -= cat_rec_size(o->path);
			ps->groups[o->grp].objects--;
			free(o->path);
		}
		free(o);
	}
	memset(&e->olink, 0, sizeof(e->olink));
}

/* ---- state transitions ------------------------------------------------ */

/* PENDING -> READY; returns its object. */
static struct ps_obj *
do_make_ready(struct pagestore *ps, struct ps_entry *e, struct ps_obj **spare)
{
	e->state = ST_READY;
	struct ps_obj *o = do_obj_add(ps, e, spare);
	if (e->grp != o->grp) {
		/* Reserved under another group than its object's. */
		int64_t fs = file_size(ps, e->len);
		ps->groups[e->grp].used -= fs;
		ps->groups[o->grp].used += fs;
		e->grp = o->grp;
	}
	e->pinned = 0;
	do_lru_link(ps, e);
	if (o->pinned)
		do_entry_pin(ps, e, 1);
	ps->npages++;
	return o;
}

/* READY -> off every list (for kill and rekey): its bytes stay counted. */
static void
do_unready(struct pagestore *ps, struct ps_entry *e)
{
	VAS_ASSERT(e->state == ST_READY);
	if (e->pinned) {
		int64_t fs = file_size(ps, e->len);
		ps->pinned_bytes -= fs;
		ps->groups[e->grp].pinned -= fs;
		e->pinned = 0;
	} else {
		do_lru_unlink(ps, e);
	}
	do_obj_remove(ps, e);
	ps->npages--;
}

/*
 * READY -> DYING: off the lists, bytes released, pushed on *batch (through
 * e->dead, the LRU link's bytes) for the caller to unlink and then reap.
 */
static void
do_kill(struct pagestore *ps, struct ps_entry *e, struct ps_batch *batch)
{
	do_unready(ps, e);
	ps->dirs[e->dir].used -= file_size(ps, e->len);
	ps->groups[e->grp].used -= file_size(ps, e->len);
	e->state = ST_DYING;
	SLIST_INSERT_HEAD(batch, e, dead);
}

/*
 * Unlinks the files of a batch of DYING entries (no lock held; only the
 * batch's owner touches them), then removes them from the hash.
 */
static void
unlink_and_reap(struct pagestore *ps, struct ps_batch *batch, int unlink_files)
{
	if (SLIST_EMPTY(batch))
		return;
	char rel[REL_PATH_MAX];
	struct ps_entry *e;
	if (unlink_files) {
		SLIST_FOREACH(e, batch, dead) {
			rel_path(rel, sizeof(rel), &e->k, e->v1);
			if (unlinkat(ps->dirs[e->dir].fd, rel, 0) < 0 &&
			    errno != ENOENT)
				LOG_WARN("pagestore: unlink %s/%s: %s",
				    ps->dirs[e->dir].path, rel, strerror(errno));
		}
	}
	pthread_mutex_lock(&ps->mu);
	while ((e = SLIST_FIRST(batch)) != NULL) {
		SLIST_REMOVE_HEAD(batch, dead);
		VAS_ASSERT(e->state == ST_DYING);
		do_hash_remove(ps, e);
		do_entry_free(ps, e);
	}
	pthread_cond_broadcast(&ps->cond);
	pthread_mutex_unlock(&ps->mu);
}

/* ---- page file I/O ------------------------------------------------------ */

static uint32_t
chunks_of(uint32_t len)
{
	return (uint32_t)(((uint64_t)len + PAGESTORE_CHUNK - 1) / PAGESTORE_CHUNK);
}

/* The CRC of chunk i of data (len bytes). */
static uint32_t
chunk_crc(const unsigned char *data, uint32_t len, uint32_t i)
{
	uint64_t at = (uint64_t)i * PAGESTORE_CHUNK;
	uint64_t n = len - at < PAGESTORE_CHUNK ? len - at : PAGESTORE_CHUNK;
	return crc32c(0, data + at, (size_t)n);
}

/* Encodes a format-2 header (ps->hdr_size bytes) with the chunk CRCs
 * crcs[0..chunks_of(len)). */
static void
hdr_encode(const struct pagestore *ps, unsigned char *h,
    const struct page_key *k, uint32_t len, const uint32_t *crcs)
{
	memset(h, 0, ps->hdr_size);
	memcpy(h, HDR_MAGIC, 8);
	put_le32(h + 8, HDR_FORMAT);
	put_le32(h + 12, len);
	put_le64(h + 16, k->obj);
	put_le64(h + 24, k->ver);
	put_le64(h + 32, k->idx);
	put_le32(h + 40, PAGESTORE_CHUNK);
	put_le32(h + 44, ps->page_size);
	put_le32(h + 48, ps->nchunks);
	uint32_t n = chunks_of(len);
	for (uint32_t i = 0; i < n; i++)
		put_le32(h + HDR_FIXED + 4 * i, crcs[i]);
	uint32_t c = crc32c(0, h, 60);
	put_le32(h + 60, crc32c(c, h + HDR_FIXED, 4 * (size_t)ps->nchunks));
}

static int
header_ok(const struct pagestore *ps, const unsigned char *h,
    const struct page_key *k, uint32_t len)
{
	struct page_key hk = {get_le64(h + 16), get_le64(h + 24), get_le64(h + 32)};
	if (memcmp(h, HDR_MAGIC, 8) != 0 || get_le32(h + 8) != HDR_FORMAT ||
	    get_le32(h + 12) != len || get_le32(h + 40) != PAGESTORE_CHUNK ||
	    get_le32(h + 44) != ps->page_size || get_le32(h + 48) != ps->nchunks ||
	    !key_eq(&hk, k))
		return 0;
	uint32_t c = crc32c(0, h, 60);
	return get_le32(h + 60) == crc32c(c, h + HDR_FIXED, 4 * (size_t)ps->nchunks);
}

/* The old format's header (64 bytes, one CRC of all the data at 40). */
static int
v1_header_ok(const struct pagestore *ps, const unsigned char *h,
    const struct page_key *k, uint32_t len)
{
	struct page_key hk = {get_le64(h + 16), get_le64(h + 24), get_le64(h + 32)};
	return memcmp(h, V1_MAGIC, 8) == 0 && get_le32(h + 8) == V1_FORMAT &&
	    get_le32(h + 60) == crc32c(0, h, 60) && get_le32(h + 12) == len &&
	    get_le32(h + 44) == ps->page_size && key_eq(&hk, k);
}

static int
pwritev_all(int fd, struct iovec *iov, int n)
{
	off_t off = 0;
	while (n > 0) {
		ssize_t w = pwritev(fd, iov, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		off += w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Reads exactly n bytes at off: 0, or -1 (an error, or the file ends). */
static int
pread_full(int fd, void *buf, size_t n, off_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (char *)buf + got, n - got, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/*
 * Writes the page (format 2) to a temp name and renames it into place.
 * crcs: its chunk CRCs if the caller has them, else NULL.  -errno.
 */
static int
write_page_file(struct pagestore *ps, int dirfd, const struct page_key *k,
    const void *data, uint32_t len, const uint32_t *crcs)
{
	char rel[REL_PATH_MAX], tmp[TMP_PATH_MAX];
	rel_path(rel, sizeof(rel), k, 0);
	static _Thread_local pid_t tid;
	if (!tid)
		tid = gettid();
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", rel, (int)tid);

	unsigned char hbuf[HDR_FIXED + 4 * 256];
	unsigned char *h = ps->hdr_size <= sizeof(hbuf) ? hbuf : malloc(ps->hdr_size);
	uint32_t cbuf[256], n = chunks_of(len);
	uint32_t *c = crcs ? NULL : n <= 256 ? cbuf : malloc(4 * (size_t)n);
	int rc = 0;
	if (!h || (!crcs && !c)) {
		rc = -ENOMEM;
		goto out;
	}
	if (!crcs) {
		for (uint32_t i = 0; i < n; i++)
			c[i] = chunk_crc(data, len, i);
		crcs = c;
	}
	hdr_encode(ps, h, k, len, crcs);

	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		/* Subdirs are made on first use (or were removed by hand). */
		char sub[3] = {rel[0], rel[1], 0};
		if (mkdirat(dirfd, sub, 0700) == 0 || errno == EEXIST)
			fd = openat(dirfd, tmp,
			    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		else
			errno = ENOENT;
	}
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	struct iovec iov[2] = {
	    {.iov_base = h, .iov_len = ps->hdr_size},
	    {.iov_base = (void *)data, .iov_len = len},
	};
	rc = pwritev_all(fd, iov, 2);
	if (close(fd) < 0 && rc == 0)
		rc = -errno; /* NFS and friends report write errors here */
	if (rc == 0 && renameat(dirfd, tmp, dirfd, rel) < 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(dirfd, tmp, 0);
out:
	if (h != hbuf)
		free(h);
	if (c != cbuf)
		free(c);
	return rc;
}

/*
 * Read buffers (page_ref_read's): PAGESTORE_BUF_SIZE bytes each, from a
 * bounded free list, so a stream of reads allocates nothing.
 */
#define BUF_POOL 64
_Static_assert(PAGESTORE_BUF_SIZE % PAGESTORE_CHUNK == 0, "buffer of whole chunks");

void *
pagestore_buf_get(struct pagestore *ps)
{
	void *b = NULL;
	pthread_mutex_lock(&ps->buf_mu);
	if (ps->nbufs > 0)
		b = ps->bufs[--ps->nbufs];
	pthread_mutex_unlock(&ps->buf_mu);
	return b ? b : malloc(PAGESTORE_BUF_SIZE);
}

void
pagestore_buf_put(struct pagestore *ps, void *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&ps->buf_mu);
	if (ps->nbufs < BUF_POOL) {
		ps->bufs[ps->nbufs++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&ps->buf_mu);
	free(b);
}

/* A table of n CRCs for ref: its inline one, or an allocated one. */
static uint32_t *
ref_table(struct page_ref *ref, uint32_t n)
{
	if (n <= PAGE_REF_INLINE_CRCS)
		return ref->crc_inline;
	ref->crc_buf = malloc(4 * (size_t)n);
	return ref->crc_buf;
}

/*
 * Reads and checks the format-2 header of an open page file and copies
 * its CRC table into ref.  0, -EBADMSG, or -ENOMEM.
 */
static int
read_header(struct pagestore *ps, int fd, const struct page_key *k,
    uint32_t len, struct page_ref *ref)
{
	unsigned char sbuf[HDR_FIXED + 4 * PAGE_REF_INLINE_CRCS];
	unsigned char *h = ps->hdr_size <= sizeof(sbuf) ? sbuf : malloc(ps->hdr_size);
	if (!h)
		return -ENOMEM;
	int rc = pread_full(fd, h, ps->hdr_size, 0) == 0 && header_ok(ps, h, k, len) ?
	    0 : -EBADMSG;
	uint32_t n = chunks_of(len);
	uint32_t *t = rc == 0 ? ref_table(ref, n) : NULL;
	if (rc == 0 && !t)
		rc = -ENOMEM;
	for (uint32_t i = 0; rc == 0 && i < n; i++)
		t[i] = get_le32(h + HDR_FIXED + 4 * i);
	if (h != sbuf)
		free(h);
	return rc;
}

/*
 * get found the file of (k, gen) bad or missing: if the entry is still that
 * one, remove it (and the file, unless it is already gone).
 */
static void
forget_page(struct pagestore *ps, const struct page_key *k, uint32_t gen,
    int corrupt)
{
	struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
	pthread_mutex_lock(&ps->mu);
	if (corrupt)
		ps->checksum_failures_total++;
	struct ps_entry *e = do_lookup(ps, k);
	if (e && e->gen == gen && e->state == ST_READY)
		do_kill(ps, e, &batch);
	pthread_mutex_unlock(&ps->mu);
	unlink_and_reap(ps, &batch, corrupt);
}

/*
 * A format-1 page was rewritten as format 2 (the new file is in place):
 * if the entry is still (k, gen), it now names the new file, and the old
 * one goes.  If the entry went meanwhile (or is going), the new file is
 * nobody's: it is unlinked under mu, where no put of k can be writing (a
 * put waits for a DYING entry and makes a PENDING one before it writes).
 * A rare path, so the unlink under the lock is tolerated.
 */
static void
converted(struct pagestore *ps, int dirfd, const struct page_key *k,
    uint32_t gen)
{
	char rel[REL_PATH_MAX];
	int drop_old = 0;
	pthread_mutex_lock(&ps->mu);
	struct ps_entry *e = do_lookup(ps, k);
	if (e && e->gen == gen && e->state == ST_READY) {
		if (e->v1) {
			e->v1 = 0;
			ps->converted_total++;
			drop_old = 1;
		}
	} else if (!e || e->state == ST_DYING) {
		rel_path(rel, sizeof(rel), k, 0);
		unlinkat(dirfd, rel, 0);
	}
	pthread_mutex_unlock(&ps->mu);
	if (drop_old) {
		rel_path(rel, sizeof(rel), k, 1);
		unlinkat(dirfd, rel, 0);
	}
}

/*
 * get of a format-1 page (fd open on it): its one CRC is checked over the
 * whole data, ref gets the chunk CRCs computed from the checked bytes (its
 * data at V1_HDR_SIZE of fd), and the page is rewritten as format 2.
 * 0, -EBADMSG or -ENOMEM.
 */
static int
get_v1(struct pagestore *ps, int dirfd, int fd, const struct page_key *k,
    uint32_t len, uint32_t gen, struct page_ref *ref)
{
	unsigned char *b = malloc((size_t)V1_HDR_SIZE + len);
	if (!b)
		return -ENOMEM;
	int rc = 0;
	if (pread_full(fd, b, (size_t)V1_HDR_SIZE + len, 0) < 0 ||
	    !v1_header_ok(ps, b, k, len) ||
	    crc32c(0, b + V1_HDR_SIZE, len) != get_le32(b + 40))
		rc = -EBADMSG;
	uint32_t n = chunks_of(len);
	uint32_t *t = rc == 0 ? ref_table(ref, n) : NULL;
	if (rc == 0 && !t)
		rc = -ENOMEM;
	if (rc == 0) {
		for (uint32_t i = 0; i < n; i++)
			t[i] = chunk_crc(b + V1_HDR_SIZE, len, i);
		ref->off = V1_HDR_SIZE;
		/* Not cached in the new format if this fails: it is then
		 * checked whole again at its next get. */
		if (write_page_file(ps, dirfd, k, b + V1_HDR_SIZE, len, t) == 0)
			converted(ps, dirfd, k, gen);
	}
	free(b);
	return rc;
}

ssize_t
page_ref_read(struct page_ref *ref, uint32_t a, uint32_t n, void *buf,
    size_t cap, const unsigned char **p)
{
	if (!ref || ref->fd < 0 || !buf || !p || n == 0 || ref->chunk == 0 ||
	    cap < ref->chunk)
		return -EINVAL;
	if ((uint64_t)a + n > ref->len)
		return -ERANGE;
	const uint64_t C = ref->chunk;
	uint64_t start = a / C * C, end = (uint64_t)a + n;
	uint64_t cend = (end + C - 1) / C * C;
	if (cend > ref->len)
		cend = ref->len;
	if (cend - start > cap / C * C)
		cend = start + cap / C * C;
	unsigned char *b = buf;
	const uint32_t *crcs = page_ref_crcs(ref);
	int bad = pread_full(ref->fd, b, (size_t)(cend - start), ref->off + (off_t)start) < 0;
	uint64_t at;
	for (at = start; !bad && at < cend; at += C) {
		uint64_t l = cend - at < C ? cend - at : C;
		bad = crc32c(0, b + (at - start), (size_t)l) != crcs[at / C];
	}
	if (bad) {
		LOG_WARN("pagestore: page %016" PRIx64 "-%016" PRIx64 "-%" PRIu64
			 ": chunk %" PRIu64 " is corrupt or unreadable; dropped",
		    ref->k.obj, ref->k.ver, ref->k.idx, (at > start ? at - C : at) / C);
		forget_page(ref->ps, &ref->k, ref->gen, 1);
		return -EBADMSG;
	}
	*p = b + (a - start);
	return (ssize_t)((end < cend ? end : cend) - a);
}

int
page_ref_verify(struct page_ref *ref, uint32_t a, uint32_t n)
{
	if (!ref || !ref->ps)
		return -EINVAL;
	if (n == 0)
		return 0;
	void *buf = pagestore_buf_get(ref->ps);
	if (!buf)
		return -ENOMEM;
	int rc = 0;
	while (n > 0 && rc == 0) {
		const unsigned char *p;
		ssize_t got = page_ref_read(ref, a, n, buf, PAGESTORE_BUF_SIZE, &p);
		if (got < 0) {
			rc = (int)got;
			break;
		}
		a += (uint32_t)got;
		n -= (uint32_t)got;
	}
	pagestore_buf_put(ref->ps, buf);
	return rc;
}

/* ---- public API ---------------------------------------------------------- */

uint32_t
pagestore_page_size(const struct pagestore *ps)
{
	return ps->page_size;
}

void
page_ref_release(struct page_ref *ref)
{
	if (!ref)
		return;
	if (ref->fd >= 0) {
		close(ref->fd);
		ref->fd = -1;
	}
	free(ref->crc_buf);
	ref->crc_buf = NULL;
}

int
pagestore_has(struct pagestore *ps, const struct page_key *k)
{
	pthread_mutex_lock(&ps->mu);
	struct ps_entry *e = do_lookup(ps, k);
	int present = e && e->state == ST_READY;
	pthread_mutex_unlock(&ps->mu);
	return present;
}

/*
 * get, and the scrubber's look at a page (use 0: neither its LRU place,
 * its mtime nor its fresh mark change).
 */
static int
do_get(struct pagestore *ps, const struct page_key *k, struct page_ref *ref,
    int use)
{
	memset(ref, 0, sizeof(*ref));
	ref->fd = -1;
	ref->ps = ps;
	ref->k = *k;
	ref->chunk = PAGESTORE_CHUNK;

	/* Twice at most: a page converted to the new format between our look
	 * at its entry and our open is looked for again under its new name. */
	for (int attempt = 0;; attempt++) {
		pthread_mutex_lock(&ps->mu);
		struct ps_entry *e = do_lookup(ps, k);
		if (!e || e->state != ST_READY) {
			pthread_mutex_unlock(&ps->mu);
			return -ENOENT;
		}
		int fresh = 0, touch = 0;
		if (use) {
			fresh = e->fresh;
			e->fresh = 0;
			if (!e->pinned) {
				do_lru_unlink(ps, e);
				do_lru_link(ps, e);
			}
			uint32_t now = wall_sec32();
			touch = now - e->touched >= TOUCH_INTERVAL_S;
			if (touch)
				e->touched = now;
		}
		int di = e->dir, dirfd = ps->dirs[di].fd, v1 = e->v1;
		uint32_t gen = e->gen, len = e->len;
		int whole = ps->verify == PAGESTORE_VERIFY_ONCE && !e->verified;
		int checked = ps->verify == PAGESTORE_VERIFY_ONCE && e->verified;
		pthread_mutex_unlock(&ps->mu);

		char rel[REL_PATH_MAX];
		rel_path(rel, sizeof(rel), k, v1);
		int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			int err = errno;
			if (err == ENOENT && v1 && attempt == 0) {
				pthread_mutex_lock(&ps->mu);
				e = do_lookup(ps, k);
				int again = e && e->gen == gen && !e->v1;
				pthread_mutex_unlock(&ps->mu);
				if (again)
					continue;
			}
			if (err == ENOENT) {
				/* Removed behind our back (or just evicted). */
				forget_page(ps, k, gen, 0);
				return -ENOENT;
			}
			if (err != EMFILE && err != ENFILE && err != ENOMEM && err != EINTR) {
				/* Not a page we can ever open (a link loop, a
				 * permission or I/O error): drop it, fetch it again. */
				LOG_WARN("pagestore: %s/%s cannot be opened (%s); dropped",
				    ps->dirs[di].path, rel, strerror(err));
				forget_page(ps, k, gen, 1);
				return -ENOENT;
			}
			return -err;
		}
		ref->fd = fd;
		ref->len = len;
		ref->gen = gen;
		ref->off = ps->hdr_size;
		struct stat st;
		int64_t want = v1 ? (int64_t)V1_HDR_SIZE + len : file_size(ps, len);
		int rc = fstat(fd, &st) < 0 || st.st_size != want ? -EBADMSG :
		    v1 ? get_v1(ps, dirfd, fd, k, len, gen, ref) :
		    read_header(ps, fd, k, len, ref);
		if (rc == -EBADMSG)
			LOG_WARN("pagestore: %s/%s is corrupt or truncated; dropped",
			    ps->dirs[di].path, rel);
		if (rc == 0 && whole) {
			/* --page-verify once: every chunk now, none later. */
			rc = page_ref_verify(ref, 0, len);
			if (rc == -EBADMSG) {
				page_ref_release(ref);
				return -ENOENT; /* dropped and counted */
			}
			if (rc == 0) {
				pthread_mutex_lock(&ps->mu);
				e = do_lookup(ps, k);
				if (e && e->gen == gen)
					e->verified = 1;
				pthread_mutex_unlock(&ps->mu);
				checked = 1;
			}
		}
		if (rc < 0) {
			page_ref_release(ref);
			if (rc != -EBADMSG)
				return rc;
			forget_page(ps, k, gen, 1);
			return -ENOENT;
		}
		/* mtime carries the LRU order across restarts; refresh it lazily. */
		if (touch)
			(void)futimens(fd, NULL);
		ref->fresh = fresh;
		ref->checked = checked;
		return 0;
	}
}

int
pagestore_get(struct pagestore *ps, const struct page_key *k,
    struct page_ref *ref)
{
	if (!ps || !k || !ref)
		return -EINVAL;
	return do_get(ps, k, ref, 1);
}

/* ---- scrubber ------------------------------------------------------------ */

/*
 * A step walks etab's buckets from scrub_cursor (under mu, copying up to
 * SCRUB_BATCH keys of READY pages), then, holding no lock, gets each page
 * without using it (do_get with use 0: LRU place, mtime and fresh mark
 * unchanged; an old-format page is converted) and checks all its chunks
 * (page_ref_verify, which drops and counts a bad page).  A resize of etab
 * between steps may make a pass skip or repeat some pages: a scrubber
 * needs "about every page once a pass", not exactness.
 */
#define SCRUB_BATCH 64

int64_t
pagestore_scrub_step(struct pagestore *ps, int64_t max_bytes)
{
	int64_t done = 0;
	size_t walked = 0;
	pthread_mutex_lock(&ps->scrub_mu);
	while (done < max_bytes && !ps->scrub_stop) {
		struct page_key keys[SCRUB_BATCH];
		int nk = 0;
		pthread_mutex_lock(&ps->mu);
		size_t nb = ps->etab.mask + 1;
		while (nk == 0 && walked < nb) {
			size_t bi = ps->scrub_cursor++ & ps->etab.mask;
			walked++;
			for (struct hnode *n = ps->etab.b[bi]; n && nk < SCRUB_BATCH; n = n->next) {
				struct ps_entry *e = container_of(n, struct ps_entry, hn);
				if (e->state == ST_READY)
					keys[nk++] = e->k;
			}
		}
		pthread_mutex_unlock(&ps->mu);
		if (nk == 0)
			break; /* once through the index (or it is empty) */
		pthread_mutex_unlock(&ps->scrub_mu);
		for (int i = 0; i < nk; i++) {
			struct page_ref ref;
			if (do_get(ps, &keys[i], &ref, 0) != 0)
				continue; /* gone, or its header was bad: dropped */
			int rc = page_ref_verify(&ref, 0, ref.len);
			pthread_mutex_lock(&ps->mu);
			ps->scrub_bytes_total += ref.len;
			struct ps_entry *e = rc == 0 ? do_lookup(ps, &keys[i]) : NULL;
			if (e && e->gen == ref.gen)
				e->verified = 1;
			pthread_mutex_unlock(&ps->mu);
			done += ref.len;
			page_ref_release(&ref);
		}
		pthread_mutex_lock(&ps->scrub_mu);
	}
	pthread_mutex_unlock(&ps->scrub_mu);
	return done;
}

/* Steps of a tenth of a second's bytes, each followed by a sleep that
 * brings the average down to the rate; a second's pause after a pass. */
static void *
scrub_main(void *arg)
{
	struct pagestore *ps = arg;
	int64_t quantum = ps->scrub_rate / 10 > 0 ? ps->scrub_rate / 10 : 1;
	pthread_mutex_lock(&ps->scrub_mu);
	while (!ps->scrub_stop) {
		pthread_mutex_unlock(&ps->scrub_mu);
		int64_t t0 = now_ms();
		int64_t did = pagestore_scrub_step(ps, quantum);
		int64_t wait_ms = did * 1000 / ps->scrub_rate - (now_ms() - t0);
		if (did < quantum && wait_ms < 1000)
			wait_ms = 1000;
		pthread_mutex_lock(&ps->scrub_mu);
		if (wait_ms > 0 && !ps->scrub_stop) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait_ms / 1000;
			ts.tv_nsec += (wait_ms % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&ps->scrub_cond, &ps->scrub_mu, &ts);
		}
	}
	pthread_mutex_unlock(&ps->scrub_mu);
	return NULL;
}

int
pagestore_scrub_start(struct pagestore *ps, int64_t rate)
{
	if (!ps || rate < 0)
		return -EINVAL;
	if (rate == 0 || ps->scrub_running)
		return 0;
	ps->scrub_rate = rate;
	int rc = pthread_create(&ps->scrub_thread, NULL, scrub_main, ps);
	if (rc != 0)
		return -rc;
	ps->scrub_running = 1;
	return 0;
}

/* Placement weighted by capacity, so a bigger dir gets more pages. */
static int
pick_dir(const struct pagestore *ps, const struct page_key *k)
{
	if (ps->ndirs == 1)
		return 0;
	uint64_t x = key_hash(k) % ps->total_capacity;
	for (int i = 0; i < ps->ndirs; i++) {
		if (x < (uint64_t)ps->dirs[i].capacity)
			return i;
		x -= (uint64_t)ps->dirs[i].capacity;
	}
	return ps->ndirs - 1;
}

static int
put_page(struct pagestore *ps, const struct page_key *k, const void *data,
    uint32_t len, int fresh, const struct page_origin *org);
static void cat_append(struct pagestore *ps, uint64_t obj, uint64_t group,
    uint32_t born, const char *path);

int
pagestore_put(struct pagestore *ps, const struct page_key *k,
    const void *data, uint32_t len)
{
	return put_page(ps, k, data, len, 0, NULL);
}

int
pagestore_put_fresh(struct pagestore *ps, const struct page_key *k,
    const void *data, uint32_t len)
{
	return put_page(ps, k, data, len, 1, NULL);
}

int
pagestore_put_origin(struct pagestore *ps, const struct page_key *k,
    const void *data, uint32_t len, const struct page_origin *o, int fresh)
{
	return put_page(ps, k, data, len, fresh, o);
}

void
pagestore_unfresh(struct pagestore *ps, const struct page_key *k)
{
	pthread_mutex_lock(&ps->mu);
	struct ps_entry *e = do_lookup(ps, k);
	if (e)
		e->fresh = 0;
	pthread_mutex_unlock(&ps->mu);
}

/*
 * pagestore_put, _put_fresh and _put_origin.  Reserves the page's bytes in
 * its dir and its group (evicting that group's LRU pages when over quota,
 * then the dir's when over capacity), writes the file without the lock,
 * then makes it READY; a page whose origin names its object for the first
 * time is recorded in the catalog.
 */
static int
put_page(struct pagestore *ps, const struct page_key *k, const void *data,
    uint32_t len, int fresh, const struct page_origin *org)
{
	if (!ps || !k || (!data && len))
		return -EINVAL;
	if (len > ps->page_size)
		return -EINVAL;
	if (org && (!org->path || !org->group))
		org = NULL;
	int64_t fsize = file_size(ps, len);
	struct ps_obj *spare = malloc(sizeof(*spare));
	char *path = org ? strdup(org->path) : NULL;
	if (!spare || (org && !path)) {
		free(spare);
		free(path);
		return -ENOMEM;
	}

	pthread_mutex_lock(&ps->mu);
	struct ps_entry *e;
	while ((e = do_lookup(ps, k)) != NULL) {
		if (e->state != ST_DYING) {
			/* Present, or another put is writing it. */
			pthread_mutex_unlock(&ps->mu);
			free(spare);
			free(path);
			return 0;
		}
		pthread_cond_wait(&ps->cond, &ps->mu);
	}
	int di = pick_dir(ps, k);
	struct ps_dir *d = &ps->dirs[di];
	struct ps_obj *o = do_obj_find(ps, k->obj);
	uint16_t gi = org ? do_group(ps, org->group) : o ? o->grp : 0;
	if (org && gi)
		ps->groups[gi].quota = org->quota > 0 ? org->quota : 0;
	int64_t quota = ps->groups[gi].quota;
	int rc = 0;
	if (fsize > d->capacity)
		rc = -ENOSPC;
	else if (quota > 0 && fsize > quota)
		rc = -EDQUOT;
	struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
	struct ps_entry *v;
	while (rc == 0 && quota > 0 && ps->groups[gi].used + fsize > quota &&
	    (v = TAILQ_LAST(&ps->groups[gi].lru, ps_lru)) != NULL) {
		ps->quota_evicted_bytes_total += file_size(ps, v->len);
		ps->evicted_bytes_total += file_size(ps, v->len);
		ps->evicted_pages_total++;
		do_kill(ps, v, &batch);
	}
	if (rc == 0 && quota > 0 && ps->groups[gi].used + fsize > quota)
		rc = -EDQUOT; /* the rest is pinned or being written */
	while (rc == 0 && d->used + fsize > d->capacity &&
	    (v = TAILQ_LAST(&d->lru, ps_lru)) != NULL) {
		ps->evicted_bytes_total += file_size(ps, v->len);
		ps->evicted_pages_total++;
		do_kill(ps, v, &batch);
	}
	if (rc == 0 && d->used + fsize > d->capacity)
		rc = -ENOSPC; /* the rest is pinned or reserved by puts in flight */
	else if (rc == 0 && !(e = do_entry_alloc(ps)))
		rc = -ENOMEM;
	if (rc == 0) {
		e->k = *k;
		e->len = len;
		e->dir = (uint16_t)di;
		e->grp = gi;
		e->state = ST_PENDING;
		e->gen = ++ps->gen;
		e->verified = 1; /* we wrote these bytes ourselves */
		e->fresh = fresh ? 1 : 0;
		e->touched = wall_sec32();
		do_hash_insert(ps, e);
		d->used += fsize;
		ps->groups[gi].used += fsize;
	}
	int dirfd = d->fd;
	pthread_mutex_unlock(&ps->mu);

	unlink_and_reap(ps, &batch, 1);
	if (rc < 0) {
		free(spare);
		free(path);
		return rc;
	}

	rc = write_page_file(ps, dirfd, k, data, len, NULL);

	uint32_t born = 0;
	pthread_mutex_lock(&ps->mu);
	VAS_ASSERT(e->state == ST_PENDING && key_eq(&e->k, k));
	if (rc == 0) {
		o = do_make_ready(ps, e, &spare);
		if (path && (!o->path || o->grp != gi || strcmp(o->path, path) != 0)) {
			born = wall_sec32();
			do_obj_name(ps, o, gi, path, born);
			born = o->born;
			path = NULL;
		}
	} else {
		ps->write_errors_total++;
		d->used -= fsize;
		ps->groups[e->grp].used -= fsize;
		do_hash_remove(ps, e);
		do_entry_free(ps, e);
	}
	pthread_mutex_unlock(&ps->mu);
	free(spare);
	free(path);
	if (born)
		cat_append(ps, k->obj, org->group, born, org->path);
	if (rc < 0)
		LOG_DEBUG("pagestore: put to %s failed: %s", d->path, strerror(-rc));
	return rc;
}

int
pagestore_drop_object(struct pagestore *ps, uint64_t obj, uint64_t keep_ver)
{
	struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
	int n = 0;
	pthread_mutex_lock(&ps->mu);
	struct ps_obj *o = do_obj_find(ps, obj);
	struct ps_entry *e = o ? LIST_FIRST(&o->pages) : NULL;
	while (e) {
		/* do_kill may free o when its last entry goes. */
		struct ps_entry *next = LIST_NEXT(e, olink);
		if (keep_ver == 0 || e->k.ver != keep_ver) {
			do_kill(ps, e, &batch);
			n++;
		}
		e = next;
	}
	pthread_mutex_unlock(&ps->mu);
	unlink_and_reap(ps, &batch, 1);
	return n;
}

int
pagestore_drop_version(struct pagestore *ps, uint64_t obj, uint64_t ver)
{
	struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
	int n = 0;
	pthread_mutex_lock(&ps->mu);
	struct ps_obj *o = do_obj_find(ps, obj);
	struct ps_entry *e = o ? LIST_FIRST(&o->pages) : NULL;
	while (e) {
		struct ps_entry *next = LIST_NEXT(e, olink);
		if (e->k.ver == ver) {
			do_kill(ps, e, &batch);
			n++;
		}
		e = next;
	}
	pthread_mutex_unlock(&ps->mu);
	unlink_and_reap(ps, &batch, 1);
	return n;
}

/* Rewrites the key in a page file's header (the data and its CRC stay)
 * and renames the file to the new key's name.  0 or -errno. */
static int
rekey_file(struct pagestore *ps, int dirfd, const struct page_key *from,
    const struct page_key *to)
{
	char rel[REL_PATH_MAX], nrel[REL_PATH_MAX];
	rel_path(rel, sizeof(rel), from, 0);
	rel_path(nrel, sizeof(nrel), to, 0);
	int fd = openat(dirfd, rel, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	unsigned char hbuf[HDR_FIXED + 4 * PAGE_REF_INLINE_CRCS];
	unsigned char *h = ps->hdr_size <= sizeof(hbuf) ? hbuf : malloc(ps->hdr_size);
	int rc = h ? 0 : -ENOMEM;
	if (rc == 0 && (pread_full(fd, h, ps->hdr_size, 0) < 0 ||
	    !header_ok(ps, h, from, get_le32(h + 12))))
		rc = -EBADMSG;
	if (rc == 0) {
		/* The key and the header's CRC change; the table stays. */
		put_le64(h + 16, to->obj);
		put_le64(h + 24, to->ver);
		put_le64(h + 32, to->idx);
		uint32_t c = crc32c(0, h, 60);
		put_le32(h + 60, crc32c(c, h + HDR_FIXED, 4 * (size_t)ps->nchunks));
		if (pwrite(fd, h, ps->hdr_size, 0) != (ssize_t)ps->hdr_size)
			rc = -EIO;
	}
	if (h != hbuf)
		free(h);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dirfd, rel, dirfd, nrel) < 0)
		rc = -errno;
	return rc;
}

int
pagestore_rekey(struct pagestore *ps, uint64_t obj, uint64_t from_ver,
    uint64_t to_ver)
{
	if (from_ver == to_ver)
		return 0;
	struct ps_obj *spare = malloc(sizeof(*spare));
	if (!spare)
		return -ENOMEM;
	/* 1. Take the pages off the lists: PENDING (not served, not
	 * evicted, bytes still counted).  A page whose new key is taken
	 * already is dropped instead. */
	struct ps_batch moving = SLIST_HEAD_INITIALIZER(moving);
	struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
	pthread_mutex_lock(&ps->mu);
	struct ps_obj *o = do_obj_find(ps, obj);
	/* The object's name, should all its pages move (it then leaves the
	 * index for a moment and comes back unnamed). */
	char *name = o && o->path ? strdup(o->path) : NULL;
	uint16_t name_grp = o ? o->grp : 0;
	uint32_t name_born = o ? o->born : 0;
	struct ps_entry *e = o ? LIST_FIRST(&o->pages) : NULL;
	while (e) {
		struct ps_entry *next = LIST_NEXT(e, olink);
		if (e->k.ver == from_ver) {
			struct page_key to = e->k;
			to.ver = to_ver;
			if (do_lookup(ps, &to)) {
				do_kill(ps, e, &batch);
			} else {
				do_unready(ps, e);
				e->state = ST_PENDING;
				SLIST_INSERT_HEAD(&moving, e, dead);
			}
		}
		e = next;
	}
	pthread_mutex_unlock(&ps->mu);
	unlink_and_reap(ps, &batch, 1);

	/* 2. Move each file: header rewritten, renamed (no lock: nobody
	 * touches a PENDING entry but its owner). */
	struct ps_batch done = SLIST_HEAD_INITIALIZER(done);
	while ((e = SLIST_FIRST(&moving)) != NULL) {
		SLIST_REMOVE_HEAD(&moving, dead);
		struct page_key to = e->k;
		to.ver = to_ver;
		if (rekey_file(ps, ps->dirs[e->dir].fd, &e->k, &to) == 0)
			SLIST_INSERT_HEAD(&done, e, dead);
		else
			SLIST_INSERT_HEAD(&batch, e, dead); /* dropped below */
	}

	/* 3. Back into the index under the new keys.  (A put of the new key
	 * that came meanwhile wrote the same bytes: its file stands.) */
	struct {
		int dir;
		struct page_key k;
	} orphans[16];
	int norphans = 0, moved = 0;
	pthread_mutex_lock(&ps->mu);
	while ((e = SLIST_FIRST(&done)) != NULL) {
		SLIST_REMOVE_HEAD(&done, dead);
		struct page_key to = e->k;
		to.ver = to_ver;
		struct ps_entry *have = do_lookup(ps, &to);
		do_hash_remove(ps, e);
		if (have) {
			ps->dirs[e->dir].used -= file_size(ps, e->len);
			ps->groups[e->grp].used -= file_size(ps, e->len);
			if (have->dir != e->dir && norphans < (int)ARRAY_SIZE(orphans)) {
				orphans[norphans].dir = e->dir;
				orphans[norphans++].k = to;
			}
			do_entry_free(ps, e);
			continue;
		}
		e->k = to;
		e->gen = ++ps->gen;
		do_hash_insert(ps, e);
		struct ps_obj *no = do_make_ready(ps, e, &spare);
		if (name && !no->path) {
			do_obj_name(ps, no, name_grp, name, name_born);
			name = NULL;
		}
		moved++;
	}
	/* Failed moves: their bytes go; their files (old names) are unlinked
	 * by the reaper, as for any dying page. */
	SLIST_FOREACH(e, &batch, dead) {
		ps->dirs[e->dir].used -= file_size(ps, e->len);
		ps->groups[e->grp].used -= file_size(ps, e->len);
		e->state = ST_DYING;
	}
	pthread_mutex_unlock(&ps->mu);
	unlink_and_reap(ps, &batch, 1);
	char rel[REL_PATH_MAX];
	for (int i = 0; i < norphans; i++) {
		rel_path(rel, sizeof(rel), &orphans[i].k, 0);
		unlinkat(ps->dirs[orphans[i].dir].fd, rel, 0);
	}
	free(spare);
	free(name);
	return moved;
}

int
pagestore_has_object(struct pagestore *ps, uint64_t obj)
{
	pthread_mutex_lock(&ps->mu);
	struct ps_obj *o = do_obj_find(ps, obj);
	int yes = o != NULL; /* in otab: it has a page */
	pthread_mutex_unlock(&ps->mu);
	return yes;
}

int64_t
pagestore_cached_bytes(struct pagestore *ps, uint64_t obj, uint64_t ver)
{
	int64_t sum = 0;
	pthread_mutex_lock(&ps->mu);
	struct ps_obj *o = do_obj_find(ps, obj);
	struct ps_entry *e;
	if (o)
		LIST_FOREACH(e, &o->pages, olink)
			if (e->k.ver == ver)
				sum += e->len;
	pthread_mutex_unlock(&ps->mu);
	return sum;
}

void
pagestore_get_stats(struct pagestore *ps, struct pagestore_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&ps->mu);
	for (int i = 0; i < ps->ndirs; i++) {
		st->used_bytes += ps->dirs[i].used;
		st->capacity_bytes += ps->dirs[i].capacity;
	}
	st->pages = ps->npages;
	st->evicted_bytes_total = ps->evicted_bytes_total;
	st->evicted_pages_total = ps->evicted_pages_total;
	st->checksum_failures_total = ps->checksum_failures_total;
	st->scrub_bytes_total = ps->scrub_bytes_total;
	st->converted_total = ps->converted_total;
	st->write_errors_total = ps->write_errors_total;
	st->pinned_bytes = ps->pinned_bytes;
	st->ttl_freed_bytes_total = ps->ttl_freed_bytes_total;
	st->quota_evicted_bytes_total = ps->quota_evicted_bytes_total;
	st->objects = (int64_t)ps->otab.n;
	pthread_mutex_unlock(&ps->mu);
}

/* ---- datasets: classification, prefixes, expiry, usage ------------------ */

static int
do_obj_matches(struct pagestore *ps, const struct ps_obj *o, uint64_t group,
    const char *prefix)
{
	return o->path && ps->groups[o->grp].ident == group &&
	    path_under(o->path, prefix);
}

void
pagestore_set_classifier(struct pagestore *ps, pagestore_classify_fn fn,
    void *arg)
{
	pthread_mutex_lock(&ps->mu);
	ps->classify = fn;
	ps->classify_arg = arg;
	/* Without a classifier (the policy going away at shutdown) the
	 * objects keep the state they have. */
	if (fn) {
		HTAB_EACH(&ps->otab, i, n, nx)
			do_classify(ps, container_of(n, struct ps_obj, hn));
	}
	pthread_mutex_unlock(&ps->mu);
}

int64_t
pagestore_reclassify(struct pagestore *ps, uint64_t group, const char *prefix)
{
	int64_t changed = 0;
	pthread_mutex_lock(&ps->mu);
	HTAB_EACH(&ps->otab, i, n, nx) {
		struct ps_obj *o = container_of(n, struct ps_obj, hn);
		if (do_obj_matches(ps, o, group, prefix))
			changed += do_classify(ps, o);
	}
	pthread_mutex_unlock(&ps->mu);
	return changed;
}

static void
objinfo(struct pagestore *ps, const struct ps_obj *o, struct pagestore_objinfo *oi)
{
	oi->obj = o->obj;
	oi->group = ps->groups[o->grp].ident;
	oi->path = o->path;
	oi->bytes = o->bytes;
	oi->born = o->born;
	oi->expire = o->expire;
	oi->pinned = o->pinned;
}

int
pagestore_foreach_object(struct pagestore *ps, uint64_t group,
    const char *prefix, int (*fn)(void *arg, const struct pagestore_objinfo *o),
    void *arg)
{
	int rc = 0;
	pthread_mutex_lock(&ps->mu);
	HTAB_EACH(&ps->otab, i, n, nx) {
		struct ps_obj *o = container_of(n, struct ps_obj, hn);
		if (!do_obj_matches(ps, o, group, prefix))
			continue;
		struct pagestore_objinfo oi;
		objinfo(ps, o, &oi);
		if ((rc = fn(arg, &oi)) != 0)
			break;
	}
	pthread_mutex_unlock(&ps->mu);
	return rc;
}

int
pagestore_object_info(struct pagestore *ps, uint64_t obj,
    struct pagestore_objinfo *oi)
{
	pthread_mutex_lock(&ps->mu);
	struct ps_obj *o = do_obj_find(ps, obj);
	if (o) {
		objinfo(ps, o, oi);
		oi->path = NULL;
	}
	pthread_mutex_unlock(&ps->mu);
	return o ? 0 : -ENOENT;
}

/* Kills every page of o (which then goes); returns its data bytes. */
static int64_t
do_kill_object(struct pagestore *ps, struct ps_obj *o, struct ps_batch *batch)
{
	int64_t bytes = o->bytes;
	struct ps_entry *e = LIST_FIRST(&o->pages);
	while (e) {
		struct ps_entry *next = LIST_NEXT(e, olink); /* o may go */
		do_kill(ps, e, batch);
		e = next;
	}
	return bytes;
}

int64_t
pagestore_drop_prefix(struct pagestore *ps, uint64_t group, const char *prefix,
    int force, int64_t *pinned_kept)
{
	struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
	int64_t freed = 0, kept = 0;
	pthread_mutex_lock(&ps->mu);
	HTAB_EACH(&ps->otab, i, n, nx) {
		struct ps_obj *o = container_of(n, struct ps_obj, hn);
		if (!do_obj_matches(ps, o, group, prefix))
			continue;
		if (o->pinned && !force)
			kept += o->bytes;
		else
			freed += do_kill_object(ps, o, &batch);
	}
	pthread_mutex_unlock(&ps->mu);
	unlink_and_reap(ps, &batch, 1);
	if (pinned_kept)
		*pinned_kept = kept;
	return freed;
}

static void cat_maybe_compact(struct pagestore *ps);

/* At most this many objects go per call, so the lock is not held long. */
#define EXPIRE_BATCH 4096

int64_t
pagestore_expire(struct pagestore *ps, uint32_t now)
{
	struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
	int64_t freed = 0;
	int n = 0;
	pthread_mutex_lock(&ps->mu);
	while (ps->nexp > 0 && ps->exp[0].at <= now && n < EXPIRE_BATCH) {
		struct ps_exp x = ps->exp[0];
		do_exp_pop(ps);
		struct ps_obj *o = do_obj_find(ps, x.obj);
		if (!o || o->expire != x.at || o->pinned)
			continue; /* gone, moved, or pinned (a pin wins) */
		freed += do_kill_object(ps, o, &batch);
		n++;
	}
	/* Entries of objects gone or moved pile up: rebuild now and then. */
	if (ps->nexp > 1024 && ps->nexp > 2 * ps->otab.n) {
		ps->nexp = 0;
		HTAB_EACH(&ps->otab, i, hn, nx) {
			struct ps_obj *o = container_of(hn, struct ps_obj, hn);
			if (o->expire)
				do_exp_push(ps, o->expire, o->obj);
		}
	}
	ps->ttl_freed_bytes_total += freed;
	pthread_mutex_unlock(&ps->mu);
	unlink_and_reap(ps, &batch, 1);
	cat_maybe_compact(ps);
	return freed;
}

int
pagestore_groups(struct pagestore *ps, struct pagestore_group_stats *out,
    int max)
{
	pthread_mutex_lock(&ps->mu);
	int n = 0;
	for (int i = 1; i < ps->ngroups; i++, n++) {
		if (n >= max)
			continue;
		out[n].group = ps->groups[i].ident;
		out[n].used = ps->groups[i].used;
		out[n].quota = ps->groups[i].quota;
		out[n].pinned = ps->groups[i].pinned;
		out[n].objects = ps->groups[i].objects;
	}
	pthread_mutex_unlock(&ps->mu);
	return n;
}

/* ---- the catalog ----------------------------------------------------------
 *
 * Which object came from where: "pagestore.catalog" in the first cache
 * dir, an append-only file of records, little-endian:
 *   0 u32 crc32c(bytes 4..len) | 4 u32 len | 8 u64 obj | 16 u64 group |
 *   24 u32 born | 28 path (len - 28 bytes)
 * A record is appended (one write(2), no fsync: a killed worker loses
 * nothing, a crashed machine at most the last records) when a page names
 * its object for the first time.  At open the file is read (the last
 * record of an object wins; a torn tail ends the read), its records are
 * applied to the objects that still have pages, and it is rewritten with
 * those alone; it is rewritten the same way when dead records outweigh
 * the live ones.  An object with pages but no record is of no known
 * origin: it is cached and evicted as before, but no prefix matches it.
 */
#define CAT_NAME "pagestore.catalog"
#define CAT_PATH_MAX 4096

static size_t
cat_encode(unsigned char *r, uint64_t obj, uint64_t group, uint32_t born,
    const char *path)
{
	size_t pl = strlen(path);
	if (pl > CAT_PATH_MAX)
		return 0;
	size_t len = CAT_HDR + pl;
	put_le32(r + 4, (uint32_t)len);
	put_le64(r + 8, obj);
	put_le64(r + 16, group);
	put_le32(r + 24, born);
	memcpy(r + CAT_HDR, path, pl);
	put_le32(r, crc32c(0, r + 4, len - 4));
	return len;
}

static void
cat_append(struct pagestore *ps, uint64_t obj, uint64_t group, uint32_t born,
    const char *path)
{
	unsigned char r[CAT_HDR + CAT_PATH_MAX];
	size_t len = cat_encode(r, obj, group, born, path);
	if (!len)
		return;
	/* Opened per record, not kept open: a cache disk holds no file open
	 * for writing between writes (so it can be remounted read-only, as
	 * the page files allow). */
	pthread_mutex_lock(&ps->cat_mu);
	int fd = openat(ps->dirs[0].fd, CAT_NAME, O_WRONLY | O_APPEND | O_CREAT |
	    O_CLOEXEC, 0600);
	int wr = fd < 0 ? -errno : write_full(fd, r, len, -1);
	if (fd >= 0 && close(fd) < 0 && wr == 0)
		wr = -errno;
	if (wr < 0) {
		if (!ps->cat_warned++)
			LOG_WARN("pagestore: cannot append to %s/%s: %s (origins "
			    "of pages cached now are lost at the next restart)",
			    ps->dirs[0].path, CAT_NAME, strerror(-wr));
	} else {
		ps->cat_bytes += (int64_t)len;
	}
	pthread_mutex_unlock(&ps->cat_mu);
}

/* Rewrites the catalog with the live records (cat_mu held).  0 or -errno. */
static int
do_cat_rewrite(struct pagestore *ps)
{
	struct dbuf b;
	dbuf_init(&b, (size_t)1 << 40);
	pthread_mutex_lock(&ps->mu);
	HTAB_EACH(&ps->otab, i, n, nx) {
		struct ps_obj *o = container_of(n, struct ps_obj, hn);
		unsigned char r[CAT_HDR + CAT_PATH_MAX];
		size_t len = o->path ? cat_encode(r, o->obj,
		    ps->groups[o->grp].ident, o->born, o->path) : 0;
		if (len)
			dbuf_add(&b, r, len);
	}
	pthread_mutex_unlock(&ps->mu);
	int dfd = ps->dirs[0].fd, rc = 0;
	if (dbuf_error(&b)) {
		dbuf_free(&b);
		return -ENOMEM;
	}
	rc = write_file_atomic(dfd, CAT_NAME, b.p, b.len, 0);
	if (rc == 0)
		ps->cat_bytes = (int64_t)b.len;
	dbuf_free(&b);
	return rc;
}

static void
cat_maybe_compact(struct pagestore *ps)
{
	pthread_mutex_lock(&ps->cat_mu);
	pthread_mutex_lock(&ps->mu);
	int64_t live = ps->cat_live_bytes;
	pthread_mutex_unlock(&ps->mu);
	if (ps->cat_bytes > 2 * live + (1 << 20)) {
		int rc = do_cat_rewrite(ps);
		if (rc < 0)
			LOG_WARN("pagestore: cannot rewrite %s/%s: %s",
			    ps->dirs[0].path, CAT_NAME, strerror(-rc));
	}
	pthread_mutex_unlock(&ps->cat_mu);
}

/* Reads the catalog and names the objects it knows (single-threaded,
 * inside open), then rewrites it with those alone. */
static int
cat_open(struct pagestore *ps, char **err)
{
	int fd = openat(ps->dirs[0].fd, CAT_NAME, O_RDONLY | O_CLOEXEC);
	int64_t named = 0;
	if (fd >= 0) {
		size_t cap = 1 << 16, have = 0;
		unsigned char *buf = malloc(cap + CAT_HDR + CAT_PATH_MAX);
		int eof = buf == NULL;
		while (!eof) {
			ssize_t r = read(fd, buf + have, cap - have);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				eof = 1;
			else
				have += (size_t)r;
			size_t at = 0;
			while (have - at >= CAT_HDR) {
				unsigned char *rec = buf + at;
				uint32_t len = get_le32(rec + 4);
				if (len < CAT_HDR || len > CAT_HDR + CAT_PATH_MAX) {
					eof = 1; /* garbage: stop here */
					break;
				}
				if (have - at < len)
					break;
				if (get_le32(rec) != crc32c(0, rec + 4, len - 4)) {
					eof = 1; /* torn: stop here */
					break;
				}
				struct ps_obj *o = do_obj_find(ps, get_le64(rec + 8));
				char *path = o ? strndup((char *)rec + CAT_HDR, len - CAT_HDR) : NULL;
				if (path && !memchr(rec + CAT_HDR, 0, len - CAT_HDR)) {
					uint16_t gi = do_group(ps, get_le64(rec + 16));
					if (o->path) /* a later record: its birth wins */
						o->born = get_le32(rec + 24);
					do_obj_name(ps, o, gi, path, get_le32(rec + 24));
					named++;
				} else {
					free(path);
				}
				at += len;
			}
			memmove(buf, buf + at, have - at);
			have -= at;
			if (have == cap)
				eof = 1; /* cannot happen: records fit */
		}
		free(buf);
		close(fd);
	}
	int rc = do_cat_rewrite(ps);
	if (rc < 0) {
		*err = errmsg("pagestore: cannot write %s/%s: %s", ps->dirs[0].path,
		    CAT_NAME, strerror(-rc));
		return -1;
	}
	if (named)
		LOG_INFO("pagestore: catalog: %" PRId64 " objects of known origin",
		    named);
	return 0;
}

/* ---- open: dirs, meta file, scan ----------------------------------------- */

static int
mkdir_p(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		buf[i] = c;
	}
	return 0;
}

/* The page size recorded in the dir, or 0 if none (or unreadable). */
static uint32_t
read_meta(int dirfd)
{
	int fd = openat(dirfd, META_NAME, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[128];
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return 0;
	buf[r] = '\0';
	unsigned fmt = 0, psz = 0;
	/* Format 1's pages are read (and rewritten as format 2 at their
	 * first get), so a dir written by an older ferry keeps its pages. */
	if (sscanf(buf, "ferry-pagestore %u page_size=%u", &fmt, &psz) != 2 ||
	    (fmt != HDR_FORMAT && fmt != V1_FORMAT))
		return 0;
	return psz;
}

/* Writes the meta file; doubles as the check that the dir is writable. */
static int
write_meta(int dirfd, uint32_t page_size)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "ferry-pagestore %u page_size=%u\n",
	    HDR_FORMAT, page_size);
	int fd = openat(dirfd, META_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (fd < 0)
		return -errno;
	int rc = write(fd, buf, (size_t)n) == n ? 0 : -(errno ? errno : EIO);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dirfd, META_TMP, dirfd, META_NAME) < 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(dirfd, META_TMP, 0);
	return rc;
}

static int
parse_hex16(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = s[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return 0;
}

/* Parses "<obj>-<ver>-<idx>.pg2" (or the old format's ".pg": *v1 = 1)
 * found in subdir sub (0..255). */
static int
parse_page_name(const char *name, unsigned sub, struct page_key *k, int *v1)
{
	size_t n = strlen(name);
	if ((n != NAME_LEN && n != V1_NAME_LEN) || name[16] != '-' || name[33] != '-' ||
	    strcmp(name + 50, n == NAME_LEN ? ".pg2" : ".pg") != 0)
		return -1;
	*v1 = n == V1_NAME_LEN;
	if (parse_hex16(name, &k->obj) < 0 || parse_hex16(name + 17, &k->ver) < 0 ||
	    parse_hex16(name + 34, &k->idx) < 0)
		return -1;
	return (unsigned)(k->obj >> 56) == sub ? 0 : -1;
}

struct scan_item {
	struct page_key k;
	uint32_t len;
	int v1;
	uint32_t mtime_s;
	int64_t mtime_ns;
};

struct scan_list {
	struct scan_item *v;
	size_t n, cap;
};

static int
scan_cmp(const void *a, const void *b)
{
	const struct scan_item *x = a, *y = b;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	if (x->k.obj != y->k.obj)
		return x->k.obj < y->k.obj ? -1 : 1;
	if (x->k.ver != y->k.ver)
		return x->k.ver < y->k.ver ? -1 : 1;
	return x->k.idx < y->k.idx ? -1 : x->k.idx > y->k.idx;
}

/*
 * Lists one subdir: removes temp files, pages of impossible size, (if wipe)
 * all pages, and (if owned: the dir has our meta file, so the subdirs are
 * ours) files with malformed names; appends the rest to *list.  Reads no
 * page data.
 */
static int
scan_subdir(struct pagestore *ps, int dirfd, const char *dpath, unsigned sub,
    int wipe, int owned, struct scan_list *list)
{
	char sname[3];
	snprintf(sname, sizeof(sname), "%02x", sub);
	int sfd = openat(dirfd, sname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0) {
		if (errno != ENOENT)
			LOG_WARN("pagestore: %s/%s: %s", dpath, sname, strerror(errno));
		return 0;
	}
	DIR *dh = fdopendir(sfd);
	if (!dh) {
		close(sfd);
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(dh)) != NULL) {
		const char *name = de->d_name;
		if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0)))
			continue;
		struct stat st;
		if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!S_ISREG(st.st_mode))
			continue; /* not ours to remove */
		struct page_key k;
		int v1 = 0;
		int is_tmp = strstr(name, ".tmp.") != NULL;
		int is_page = !is_tmp && parse_page_name(name, sub, &k, &v1) == 0;
		if (!is_tmp && !is_page && !owned)
			continue; /* not ours to remove */
		int64_t hs = v1 ? V1_HDR_SIZE : ps->hdr_size;
		int ok = is_page && !wipe && st.st_size >= hs &&
		    st.st_size <= hs + (int64_t)ps->page_size;
		if (!ok) {
			if (!is_tmp && !wipe)
				LOG_WARN("pagestore: removing stray file %s/%s/%s",
				    dpath, sname, name);
			unlinkat(sfd, name, 0);
			continue;
		}
		if (list->n == list->cap) {
			size_t nc = list->cap ? list->cap * 2 : 1024;
			struct scan_item *nv = realloc(list->v, nc * sizeof(*nv));
			if (!nv) {
				closedir(dh);
				return -ENOMEM;
			}
			list->v = nv;
			list->cap = nc;
		}
		struct scan_item *it = &list->v[list->n++];
		it->k = k;
		it->len = (uint32_t)(st.st_size - hs);
		it->v1 = v1;
		it->mtime_s = (uint32_t)st.st_mtim.tv_sec;
		it->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
		    st.st_mtim.tv_nsec;
	}
	closedir(dh);
	return 0;
}

/* Indexes dir di's pages (oldest mtime = least recently used), then evicts
 * down to capacity.  Single-threaded (inside open). */
static int
load_dir(struct pagestore *ps, int di, int wipe, int owned, char **err)
{
	struct ps_dir *d = &ps->dirs[di];
	struct scan_list list = {0};
	/* Subdirs are made lazily by put; list only those that exist. */
	unsigned char present[256] = {0};
	int tfd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *top = tfd >= 0 ? fdopendir(tfd) : NULL;
	if (!top) {
		*err = errmsg("pagestore: cannot list %s: %s", d->path,
		    strerror(errno));
		if (tfd >= 0)
			close(tfd);
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(top)) != NULL) {
		uint64_t v;
		char hex[17] = "00000000000000";
		if (strlen(de->d_name) != 2)
			continue;
		memcpy(hex + 14, de->d_name, 3);
		if (parse_hex16(hex, &v) == 0)
			present[v] = 1;
	}
	closedir(top);
	for (unsigned sub = 0; sub < 256; sub++) {
		if (!present[sub])
			continue;
		if (scan_subdir(ps, d->fd, d->path, sub, wipe, owned, &list) < 0) {
			*err = errmsg("pagestore: out of memory indexing %s", d->path);
			free(list.v);
			return -1;
		}
	}
	if (list.n > 1)
		qsort(list.v, list.n, sizeof(list.v[0]), scan_cmp);
	char rel[REL_PATH_MAX];
	int64_t dups = 0;
	for (size_t i = 0; i < list.n; i++) {
		struct scan_item *it = &list.v[i];
		if (do_lookup(ps, &it->k)) {
			/* Same page in two dirs (dir list changed): keep one. */
			rel_path(rel, sizeof(rel), &it->k, it->v1);
			unlinkat(d->fd, rel, 0);
			dups++;
			continue;
		}
		struct ps_obj *spare = malloc(sizeof(*spare));
		struct ps_entry *e = do_entry_alloc(ps);
		if (!spare || !e) {
			free(spare);
			free(list.v);
			*err = errmsg("pagestore: out of memory indexing %s", d->path);
			return -1;
		}
		e->k = it->k;
		e->len = it->len;
		e->dir = (uint16_t)di;
		e->gen = ++ps->gen;
		e->touched = it->mtime_s;
		e->verified = 0;
		e->v1 = it->v1 ? 1 : 0;
		do_hash_insert(ps, e);
		d->used += file_size(ps, e->len);
		ps->groups[0].used += file_size(ps, e->len);
		do_make_ready(ps, e, &spare);
		free(spare);
	}
	free(list.v);

	int64_t ev_pages = 0, ev_bytes = 0;
	struct ps_entry *v;
	while (d->used > d->capacity &&
	    (v = TAILQ_LAST(&d->lru, ps_lru)) != NULL) {
		struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
		ev_pages++;
		ev_bytes += file_size(ps, v->len);
		do_kill(ps, v, &batch); /* single-threaded: reaped at once */
		rel_path(rel, sizeof(rel), &v->k, v->v1);
		unlinkat(d->fd, rel, 0);
		do_hash_remove(ps, v);
		do_entry_free(ps, v);
	}
	ps->evicted_pages_total += ev_pages;
	ps->evicted_bytes_total += ev_bytes;
	char ub[32], cb[32];
	fmt_bytes((double)d->used, ub, sizeof(ub));
	fmt_bytes((double)d->capacity, cb, sizeof(cb));
	LOG_INFO("pagestore: %s: %s of %s in use%s (%" PRId64
		 " pages evicted to fit, %" PRId64 " duplicates removed)",
	    d->path, ub, cb, wipe && owned ? ", old pages wiped" : "", ev_pages, dups);
	return 0;
}

static int
open_dir(struct pagestore *ps, int di, const struct pagestore_dir_cfg *cfg,
    char **err)
{
	struct ps_dir *d = &ps->dirs[di];
	d->fd = -1;
	if (!cfg->path || !cfg->path[0]) {
		*err = errmsg("pagestore: empty cache dir path");
		return -1;
	}
	if (cfg->capacity <= 0) {
		*err = errmsg("pagestore: %s: capacity must be positive", cfg->path);
		return -1;
	}
	d->path = strdup(cfg->path);
	if (!d->path) {
		return -1;
	}
	d->capacity = cfg->capacity;
	int rc = mkdir_p(cfg->path);
	if (rc < 0) {
		*err = errmsg("pagestore: cannot create cache dir %s: %s",
		    cfg->path, strerror(-rc));
		return -1;
	}
	d->fd = open(cfg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0) {
		*err = errmsg("pagestore: cannot open cache dir %s: %s", cfg->path,
		    strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(d->fd, &st) < 0) {
		*err = errmsg("pagestore: cannot stat cache dir %s: %s", cfg->path,
		    strerror(errno));
		return -1;
	}
	/* Cached bytes of private buckets are private: the dir is closed to
	 * other users (which also covers pages written 0644 by older
	 * versions, behind it). */
	if ((st.st_mode & 077) && fchmod(d->fd, st.st_mode & 0700) == 0)
		LOG_INFO("pagestore: %s: made private to its owner (mode %03o -> %03o)",
		    cfg->path, (unsigned)(st.st_mode & 0777), (unsigned)(st.st_mode & 0700));
	for (int j = 0; j < di; j++) {
		struct stat o;
		if (fstat(ps->dirs[j].fd, &o) == 0 && o.st_dev == st.st_dev &&
		    o.st_ino == st.st_ino) {
			*err = errmsg("pagestore: cache dir %s is listed twice",
			    cfg->path);
			return -1;
		}
	}
	uint32_t old_psz = read_meta(d->fd);
	rc = write_meta(d->fd, ps->page_size);
	if (rc < 0) {
		*err = errmsg("pagestore: cache dir %s is not writable: %s",
		    cfg->path, strerror(-rc));
		return -1;
	}
	int wipe = old_psz != ps->page_size;
	if (wipe && old_psz)
		LOG_WARN("pagestore: %s: page size changed (%u -> %u), dropping "
			 "its pages", cfg->path, old_psz, ps->page_size);
	return load_dir(ps, di, wipe, old_psz != 0, err);
}

static struct pagestore *
open_store(const struct pagestore_dir_cfg *dirs, int ndirs, uint32_t page_size,
    enum pagestore_verify verify, char **err)
{
	if (!dirs || ndirs <= 0 || ndirs > MAX_DIRS) {
		*err = errmsg("pagestore: need 1 to %d cache dirs", MAX_DIRS);
		return NULL;
	}
	if (page_size == 0 || page_size > MAX_PAGE_SIZE) {
		*err = errmsg("pagestore: page size must be 1 byte to 1 GiB");
		return NULL;
	}
	if (verify != PAGESTORE_VERIFY_ALWAYS && verify != PAGESTORE_VERIFY_ONCE) {
		*err = errmsg("pagestore: bad verify mode");
		return NULL;
	}
	struct pagestore *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return NULL;
	pthread_mutex_init(&ps->mu, NULL);
	pthread_mutex_init(&ps->buf_mu, NULL);
	pthread_cond_init(&ps->cond, NULL);
	pthread_mutex_init(&ps->scrub_mu, NULL);
	pthread_cond_init(&ps->scrub_cond, NULL);
	ps->page_size = page_size;
	ps->nchunks = (uint32_t)(((uint64_t)page_size + PAGESTORE_CHUNK - 1) / PAGESTORE_CHUNK);
	ps->hdr_size = HDR_FIXED + 4 * ps->nchunks;
	ps->verify = verify;
	SLIST_INIT(&ps->free_entries);
	int hrc = htab_init(&ps->etab, INITIAL_BUCKETS, entry_hashof);
	if (hrc == 0)
		hrc = htab_init(&ps->otab, INITIAL_BUCKETS, obj_hashof);
	ps->dirs = calloc((size_t)ndirs, sizeof(*ps->dirs));
	if (hrc < 0 || !ps->dirs) {
		pagestore_close(&ps);
		return NULL;
	}
	for (int i = 0; i < ndirs; i++)
		TAILQ_INIT(&ps->dirs[i].lru);
	pthread_mutex_init(&ps->cat_mu, NULL);
	ps->groups = calloc(8, sizeof(*ps->groups));
	if (!ps->groups) {
		pagestore_close(&ps);
		return NULL;
	}
	ps->groups_cap = 8;
	ps->ngroups = 1;
	TAILQ_INIT(&ps->groups[0].lru);
	for (int i = 0; i < ndirs; i++) {
		ps->ndirs = i + 1; /* so close cleans up what was opened */
		if (open_dir(ps, i, &dirs[i], err) < 0) {
			pagestore_close(&ps);
			return NULL;
		}
		ps->total_capacity += (uint64_t)dirs[i].capacity;
	}
	if (cat_open(ps, err) < 0) {
		pagestore_close(&ps);
		return NULL;
	}
	return ps;
}

struct pagestore *
pagestore_open(const struct pagestore_dir_cfg *dirs, int ndirs,
    uint32_t page_size, enum pagestore_verify verify, char **err)
{
	char *msg = NULL;
	struct pagestore *ps = open_store(dirs, ndirs, page_size, verify, &msg);
	if (!ps && !msg)
		msg = strdup("pagestore: out of memory");
	if (err)
		*err = msg;
	else
		free(msg);
	return ps;
}

void
pagestore_close(struct pagestore **psp)
{
	if (!psp || !*psp)
		return;
	struct pagestore *ps = *psp;
	*psp = NULL;
	if (ps->scrub_running) {
		pthread_mutex_lock(&ps->scrub_mu);
		ps->scrub_stop = 1;
		pthread_cond_broadcast(&ps->scrub_cond);
		pthread_mutex_unlock(&ps->scrub_mu);
		pthread_join(ps->scrub_thread, NULL);
	}
	pthread_mutex_destroy(&ps->scrub_mu);
	pthread_cond_destroy(&ps->scrub_cond);
	if (ps->otab.b) {
		HTAB_EACH(&ps->otab, i, n, nx) {
			struct ps_obj *o = container_of(n, struct ps_obj, hn);
			free(o->path);
			free(o);
		}
	}
	free(ps->groups);
	free(ps->exp);
	htab_free(&ps->otab);
	htab_free(&ps->etab); /* the entries live in the slabs */
	while (ps->slabs) {
		struct ps_slab *next = ps->slabs->next;
		free(ps->slabs);
		ps->slabs = next;
	}
	for (int i = 0; ps->dirs && i < ps->ndirs; i++) {
		if (ps->dirs[i].fd >= 0)
			close(ps->dirs[i].fd);
		free(ps->dirs[i].path);
	}
	free(ps->dirs);
	pthread_cond_destroy(&ps->cond);
	pthread_mutex_destroy(&ps->mu);
	if (ps->groups_cap) /* cat_mu was made with the groups */
		pthread_mutex_destroy(&ps->cat_mu);
	for (int i = 0; i < ps->nbufs; i++)
		free(ps->bufs[i]);
	pthread_mutex_destroy(&ps->buf_mu);
	free(ps);
}
