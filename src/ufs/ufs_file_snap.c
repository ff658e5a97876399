/*
 * ufs_file_snap.c: the file:// listing's directory snapshots (see
 * ufs_file_snap.h): a scan keeps the smallest names that fit its memory,
 * sorted into a window, and a small cache keeps windows for the pages
 * that follow, so that a listing of n names reads the directory once
 * (n / window passes where one window cannot hold them all), not once per
 * 1,000-name page.
 *
 * Cache: at most FSNAP_CACHED windows in one LRU list, looked up by
 * (owner, directory key, name prefix, directory identity and times) and
 * the position a page starts from.  A window is reused only while its
 * directory is unchanged: same device and inode, same mtime and ctime.
 * Any entry added, removed or renamed moves the directory's mtime, so a
 * changed directory is read again (a new window) at the next page, never
 * answered from the old one.  ufs_file.c caches only windows read from a
 * directory whose mtime was at least FSNAP_RACY_S seconds old (a change
 * within the same timestamp tick as the last could leave the mtime as it
 * was).
 *
 * Memory: every window, cached or in use, and every scan's buffers are
 * counted in g.used against g.budget (64 MiB; ufs_file_list_budget).  A
 * scan that needs more first evicts unused cached windows (LRU); when
 * that is not enough it keeps the smaller half of what it has and reads
 * on with that as a ceiling (the window is then incomplete).  Each scan
 * gets FSNAP_MIN bytes even past the budget, so memory is at most the
 * budget plus FSNAP_MIN per listing in progress.
 *
 * Threads: any.  g.lock guards the list, the counts and every window's
 * refs; a window's entries and names are read-only once built and read
 * without the lock by whoever holds a reference.  A build is one
 * thread's.
 */
#include "ufs_file_snap.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "ufs.h"

#define FSNAP_CACHED 128
#define FSNAP_BUDGET_DEFAULT ((size_t)64 << 20)

struct fsnap_priv {
	struct fsnap pub;
	TAILQ_ENTRY(fsnap_priv) lru;
	int cached; /* in the list */
	int refs;
	size_t bytes; /* counted in g.used */
	/* identity */
	const void *owner;
	char *path; /* path, then np, then lo, in one allocation */
	size_t plen;
	char *np;
	size_t nplen;
	char *lo;
	size_t lolen;
	int lo_incl;
	dev_t dev;
	ino_t ino;
	struct timespec mtime, ctime;
	struct fsnap_ent *ents;
	char *names;
};

TAILQ_HEAD(fsnap_list, fsnap_priv);

static struct {
	pthread_mutex_t lock;
	struct fsnap_list lru;
	int n;
	size_t budget;
	size_t used;
	int64_t scans, reused;
} g = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .lru = TAILQ_HEAD_INITIALIZER(g.lru),
    .budget = FSNAP_BUDGET_DEFAULT,
};

int
fsnap_ent_cmp(const char *names, const struct fsnap_ent *e, const char *s,
    size_t sl)
{
	size_t kl = (size_t)e->nlen + (e->is_dir ? 1 : 0);
	size_t m = e->nlen < sl ? e->nlen : sl;
	int r = memcmp(names + e->off, s, m);
	if (r)
		return r < 0 ? -1 : 1;
	if (e->is_dir && sl > e->nlen) {
		/* '/' against s[nlen] */
		unsigned c = (unsigned char)s[e->nlen];
		if (c != '/')
			return '/' < c ? -1 : 1;
	}
	return (kl > sl) - (kl < sl);
}

/* Faster, for sorting: names never hold '/', so the first difference
 * decides unless one name is a prefix of the other. */
static inline int
ent_less(const char *names, const struct fsnap_ent *a, const struct fsnap_ent *b)
{
	size_t m = a->nlen < b->nlen ? a->nlen : b->nlen;
	int r = memcmp(names + a->off, names + b->off, m);
	if (r)
		return r < 0;
	if (a->nlen == b->nlen)
		return 0; /* the same name: never in one directory */
	/* a shorter: its next byte is '/' (a dir) or its end */
	if (a->nlen < b->nlen) {
		if (!a->is_dir)
			return 1;
		return '/' < (unsigned char)names[b->off + m];
	}
	if (!b->is_dir)
		return 0;
	return (unsigned char)names[a->off + m] < '/';
}

static void
ent_swap(struct fsnap_ent *a, struct fsnap_ent *b)
{
	struct fsnap_ent t = *a;
	*a = *b;
	*b = t;
}

/* In-place introsort-free quicksort (median of three, smaller side
 * recursed, insertion sort below 16): no allocation, O(log n) stack. */
static void
ent_sort(const char *names, struct fsnap_ent *v, size_t n)
{
	while (n > 16) {
		size_t mid = n / 2;
		if (ent_less(names, &v[mid], &v[0]))
			ent_swap(&v[mid], &v[0]);
		if (ent_less(names, &v[n - 1], &v[0]))
			ent_swap(&v[n - 1], &v[0]);
		if (ent_less(names, &v[n - 1], &v[mid]))
			ent_swap(&v[n - 1], &v[mid]);
		struct fsnap_ent piv = v[mid];
		size_t i = 0, j = n - 1;
		for (;;) {
			while (ent_less(names, &v[i], &piv))
				i++;
			while (ent_less(names, &piv, &v[j]))
				j--;
			if (i >= j)
				break;
			ent_swap(&v[i], &v[j]);
			i++;
			j--;
		}
		/* [0, j] <= piv <= [j+1, n) */
		size_t ln = j + 1, rn = n - j - 1;
		if (ln < rn) {
			ent_sort(names, v, ln);
			v += ln;
			n = rn;
		} else {
			ent_sort(names, v + ln, rn);
			n = ln;
		}
	}
	for (size_t i = 1; i < n; i++) {
		struct fsnap_ent t = v[i];
		size_t j = i;
		while (j > 0 && ent_less(names, &t, &v[j - 1])) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = t;
	}
}

size_t
fsnap_seek(const struct fsnap *s, const char *k, size_t kl, int incl)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = fsnap_ent_cmp(s->names, &s->ents[mid], k, kl);
		if (c < 0 || (c == 0 && !incl))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
cmp_bytes(const char *a, size_t al, const char *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);
	if (r)
		return r < 0 ? -1 : 1;
	return (al > bl) - (al < bl);
}

static void
do_free(struct fsnap_priv *p)
{
	g.used -= p->bytes;
	free(p->ents);
	free(p->names);
	free(p->path);
	free(p);
}

static void
do_uncache(struct fsnap_priv *p)
{
	TAILQ_REMOVE(&g.lru, p, lru);
	p->cached = 0;
	g.n--;
	if (p->refs == 0)
		do_free(p);
}

/* Evicts unused cached windows, oldest first, until need more bytes fit;
 * 1 if they do. */
static int
do_make_room(size_t need)
{
	struct fsnap_priv *p = TAILQ_LAST(&g.lru, fsnap_list), *prev;
	for (; p && g.used + need > g.budget; p = prev) {
		prev = TAILQ_PREV(p, fsnap_list, lru);
		if (p->refs == 0)
			do_uncache(p);
	}
	return g.used + need <= g.budget;
}

/* Takes need bytes from the budget (force: even past it). */
static int
reserve(size_t need, int force)
{
	pthread_mutex_lock(&g.lock);
	int ok = do_make_room(need) || force;
	if (ok)
		g.used += need;
	pthread_mutex_unlock(&g.lock);
	return ok;
}

static void
unreserve(size_t n)
{
	pthread_mutex_lock(&g.lock);
	g.used -= n;
	pthread_mutex_unlock(&g.lock);
}

static int
same_id(const struct fsnap_priv *p, const struct fsnap_id *id)
{
	return p->owner == id->owner && p->dev == id->dev &&
	    p->ino == id->ino && p->plen == id->plen &&
	    p->nplen == id->nplen &&
	    p->mtime.tv_sec == id->mtime.tv_sec &&
	    p->mtime.tv_nsec == id->mtime.tv_nsec &&
	    p->ctime.tv_sec == id->ctime.tv_sec &&
	    p->ctime.tv_nsec == id->ctime.tv_nsec &&
	    memcmp(p->path, id->path, id->plen) == 0 &&
	    memcmp(p->np, id->np, id->nplen) == 0;
}

/* Does p hold every entry from (k, incl) on, one of them at least unless
 * it is complete? */
static int
covers(const struct fsnap_priv *p, const char *k, size_t kl, int incl)
{
	int c = cmp_bytes(p->lo, p->lolen, k, kl);
	if (c > 0 || (c == 0 && !p->lo_incl && incl))
		return 0;
	if (p->pub.complete)
		return 1;
	if (p->pub.n == 0)
		return 0;
	c = fsnap_ent_cmp(p->names, &p->ents[p->pub.n - 1], k, kl);
	return c > 0 || (c == 0 && incl);
}

struct fsnap *
fsnap_get(const struct fsnap_id *id, const char *k, size_t kl, int incl)
{
	struct fsnap_priv *p, *next, *hit = NULL;
	pthread_mutex_lock(&g.lock);
	for (p = TAILQ_FIRST(&g.lru); p; p = next) {
		next = TAILQ_NEXT(p, lru);
		if (p->owner != id->owner || p->plen != id->plen ||
		    memcmp(p->path, id->path, id->plen) != 0)
			continue;
		if (!same_id(p, id) && p->nplen == id->nplen &&
		    memcmp(p->np, id->np, id->nplen) == 0) {
			do_uncache(p); /* the directory changed */
			continue;
		}
		if (same_id(p, id) && covers(p, k, kl, incl)) {
			hit = p;
			break;
		}
	}
	if (hit) {
		hit->refs++;
		TAILQ_REMOVE(&g.lru, hit, lru);
		TAILQ_INSERT_HEAD(&g.lru, hit, lru);
		g.reused++;
	}
	pthread_mutex_unlock(&g.lock);
	return hit ? &hit->pub : NULL;
}

void
fsnap_put(struct fsnap *s)
{
	if (!s)
		return;
	struct fsnap_priv *p = s->p;
	pthread_mutex_lock(&g.lock);
	if (--p->refs == 0 && !p->cached)
		do_free(p);
	pthread_mutex_unlock(&g.lock);
}

void
fsnap_forget(const void *owner)
{
	pthread_mutex_lock(&g.lock);
	struct fsnap_priv *p, *next;
	for (p = TAILQ_FIRST(&g.lru); p; p = next) {
		next = TAILQ_NEXT(p, lru);
		if (p->owner == owner)
			do_uncache(p);
	}
	pthread_mutex_unlock(&g.lock);
}

/* ---- building ---- */

struct fsnap_build {
	char *lo;
	size_t lolen;
	int lo_incl;
	struct fsnap_ent *ents;
	size_t n, cap;
	char *names;
	size_t nbytes, ncap;
	size_t reserved; /* counted in g.used */
	int dropped;     /* a name past the window was left out */
	int any;
	int err;
	char ceil[256]; /* with dropped: names sorting after this are out */
	size_t ceil_len;
};

struct fsnap_build *
fsnap_build_new(const char *lo, size_t ll, int incl)
{
	struct fsnap_build *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->lo = malloc(ll + 1);
	if (!b->lo) {
		free(b);
		return NULL;
	}
	memcpy(b->lo, lo, ll);
	b->lo[ll] = 0;
	b->lolen = ll;
	b->lo_incl = incl;
	/* The least a scan gets: FSNAP_MIN, less under a smaller budget
	 * (tests), never less than one name needs. */
	pthread_mutex_lock(&g.lock);
	size_t min = g.budget < FSNAP_MIN ? g.budget : FSNAP_MIN;
	if (min < 2048)
		min = 2048;
	g.scans++;
	pthread_mutex_unlock(&g.lock);
	reserve(min, 1);
	b->reserved = min;
	return b;
}

static size_t
build_bytes(const struct fsnap_build *b)
{
	return b->cap * sizeof(*b->ents) + b->ncap;
}

static int
ent_off_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct fsnap_ent *)a)->off;
	uint32_t y = ((const struct fsnap_ent *)b)->off;
	return (x > y) - (x < y);
}

/* Keeps the smaller half of the names (at least one), the largest kept
 * becoming the ceiling. */
static void
build_halve(struct fsnap_build *b)
{
	ent_sort(b->names, b->ents, b->n);
	size_t keep = b->n / 2 ? b->n / 2 : 1;
	const struct fsnap_ent *last = &b->ents[keep - 1];
	memcpy(b->ceil, b->names + last->off, last->nlen);
	b->ceil_len = last->nlen;
	if (last->is_dir)
		b->ceil[b->ceil_len++] = '/';
	b->n = keep;
	b->dropped = 1;
	/* Compact the names: in order of offset, each moves down (the
	 * final sort puts them back in key order). */
	struct fsnap_ent *v = b->ents;
	qsort(v, keep, sizeof(*v), ent_off_cmp);
	size_t at = 0;
	for (size_t i = 0; i < keep; i++) {
		memmove(b->names + at, b->names + v[i].off, v[i].nlen + 1u);
		v[i].off = (uint32_t)at;
		at += v[i].nlen + 1u;
	}
	b->nbytes = at;
}

/* Room for one more entry of nlen bytes: grows within the budget, or
 * halves.  0 or -ENOMEM. */
static int
build_room(struct fsnap_build *b, size_t nlen)
{
	for (;;) {
		if (b->n < b->cap && b->nbytes + nlen <= b->ncap)
			return 0;
		size_t cap = b->cap, ncap = b->ncap;
		if (b->n >= cap)
			cap = cap ? cap * 2 : 64;
		while (b->nbytes + nlen > ncap)
			ncap = ncap ? ncap * 2 : 1024;
		size_t want = cap * sizeof(*b->ents) + ncap;
		size_t have = build_bytes(b);
		int ok = want <= b->reserved;
		if (!ok && reserve(want - b->reserved, 0)) {
			b->reserved = want;
			ok = 1;
		}
		if (ok && want > have) {
			if (cap != b->cap) {
				struct fsnap_ent *nv = realloc(b->ents,
				    cap * sizeof(*nv));
				if (!nv)
					return -ENOMEM;
				b->ents = nv;
				b->cap = cap;
			}
			if (ncap != b->ncap) {
				char *nn = realloc(b->names, ncap);
				if (!nn)
					return -ENOMEM;
				b->names = nn;
				b->ncap = ncap;
			}
			continue;
		}
		if (b->n == 0)
			return -ENOMEM; /* not even one name fits FSNAP_MIN */
		build_halve(b);
	}
}

int
fsnap_build_add(struct fsnap_build *b, const char *name, size_t nlen,
    int is_dir)
{
	if (nlen == 0 || nlen > 255)
		return 0;
	b->any = 1;
	struct fsnap_ent e = {0, (uint8_t)nlen, (uint8_t)(is_dir ? 1 : 0)};
	/* the entry's sort key against lo and the ceiling */
	int c = fsnap_ent_cmp(name, &e, b->lo, b->lolen);
	if (c < 0 || (c == 0 && !b->lo_incl))
		return 0;
	if (b->dropped && fsnap_ent_cmp(name, &e, b->ceil, b->ceil_len) > 0)
		return 0;
	int r = build_room(b, nlen + 1);
	if (r)
		return r;
	/* halving may have lowered the ceiling below this name */
	if (b->dropped && fsnap_ent_cmp(name, &e, b->ceil, b->ceil_len) > 0)
		return 0;
	e.off = (uint32_t)b->nbytes;
	memcpy(b->names + b->nbytes, name, nlen);
	b->names[b->nbytes + nlen] = 0;
	b->nbytes += nlen + 1;
	b->ents[b->n++] = e;
	return 0;
}

static void
build_free(struct fsnap_build *b)
{
	unreserve(b->reserved);
	free(b->ents);
	free(b->names);
	free(b->lo);
	free(b);
}

struct fsnap *
fsnap_build_done(struct fsnap_build *b, const struct fsnap_id *id, int cache)
{
	size_t sl = id->plen + id->nplen + b->lolen + 3;
	struct fsnap_priv *p = calloc(1, sizeof(*p));
	char *s = malloc(sl);
	if (!p || !s) {
		free(p);
		free(s);
		build_free(b);
		return NULL;
	}
	ent_sort(b->names, b->ents, b->n);
	/* Shrink to fit: a cached window holds what it needs. */
	if (b->n && b->n < b->cap) {
		struct fsnap_ent *nv = realloc(b->ents, b->n * sizeof(*nv));
		if (nv) {
			b->ents = nv;
			b->cap = b->n;
		}
	}
	if (b->nbytes && b->nbytes < b->ncap) {
		char *nn = realloc(b->names, b->nbytes);
		if (nn) {
			b->names = nn;
			b->ncap = b->nbytes;
		}
	}
	p->owner = id->owner;
	p->path = s;
	memcpy(s, id->path, id->plen);
	s[id->plen] = 0;
	p->plen = id->plen;
	p->np = s + id->plen + 1;
	memcpy(p->np, id->np, id->nplen);
	p->np[id->nplen] = 0;
	p->nplen = id->nplen;
	p->lo = p->np + id->nplen + 1;
	memcpy(p->lo, b->lo, b->lolen);
	p->lo[b->lolen] = 0;
	p->lolen = b->lolen;
	p->lo_incl = b->lo_incl;
	p->dev = id->dev;
	p->ino = id->ino;
	p->mtime = id->mtime;
	p->ctime = id->ctime;
	p->ents = b->ents;
	p->names = b->names;
	p->pub.ents = b->ents;
	p->pub.n = b->n;
	p->pub.names = b->names;
	p->pub.complete = !b->dropped;
	p->pub.any = b->any;
	p->pub.p = p;
	p->refs = 1;
	p->bytes = sizeof(*p) + sl + build_bytes(b);
	size_t reserved = b->reserved;
	b->ents = NULL;
	b->names = NULL;
	free(b->lo);
	free(b);

	pthread_mutex_lock(&g.lock);
	g.used += p->bytes;
	g.used -= reserved;
	if (cache) {
		/* Replaces a window of the same directory from the same
		 * point; others of it may stay (listings at other places). */
		struct fsnap_priv *q, *next;
		for (q = TAILQ_FIRST(&g.lru); q; q = next) {
			next = TAILQ_NEXT(q, lru);
			if (same_id(q, id) && q->lolen == p->lolen &&
			    q->lo_incl == p->lo_incl &&
			    memcmp(q->lo, p->lo, p->lolen) == 0)
				do_uncache(q);
		}
		TAILQ_INSERT_HEAD(&g.lru, p, lru);
		p->cached = 1;
		g.n++;
		while (g.n > FSNAP_CACHED) {
			struct fsnap_priv *old = TAILQ_LAST(&g.lru, fsnap_list);
			while (old && old->refs > 0)
				old = TAILQ_PREV(old, fsnap_list, lru);
			if (!old)
				break;
			do_uncache(old);
		}
		/* Over the budget (other scans grew meanwhile): unused
		 * windows go, this one included. */
		if (g.used > g.budget) {
			do_make_room(0);
			if (g.used > g.budget) {
				TAILQ_REMOVE(&g.lru, p, lru);
				p->cached = 0;
				g.n--;
			}
		}
	}
	pthread_mutex_unlock(&g.lock);
	return &p->pub;
}

/* ---- ufs.h ---- */

void
ufs_file_list_stats(struct ufs_file_list_stats *out)
{
	pthread_mutex_lock(&g.lock);
	out->scans = g.scans;
	out->reused = g.reused;
	out->bytes = (int64_t)g.used;
	out->windows = g.n;
	out->budget = (int64_t)g.budget;
	pthread_mutex_unlock(&g.lock);
}

size_t
ufs_file_list_budget(size_t bytes)
{
	pthread_mutex_lock(&g.lock);
	size_t old = g.budget;
	if (bytes) {
		g.budget = bytes;
		do_make_room(0);
	}
	pthread_mutex_unlock(&g.lock);
	return old;
}
