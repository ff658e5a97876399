/*
 * dirahead.c: fetch-ahead for directories of small files (dirahead.h).
 *
 * Threads: dirahead_note runs on request threads; walker_main is the one
 * walker thread.  da->mu guards the directory slots and is never held
 * across a listing or a fetch; it is a leaf (objget calls in holding none).
 *
 * A slot's life: COUNTING (notes counted; a repeat of the last file is
 * not) -> SIZING once DA_TRIGGER distinct files were noted, each within
 * DA_IDLE_MS of the one before (the walker lists the directory, summing
 * its small files, to choose whole or windowed) -> WALKING (the walker
 * fetches a listing page at a time from the slot's cursor) -> DONE at the
 * listing's end.  A WALKING or DONE slot still being read (a note within
 * DA_ACTIVE_MS) goes back to SIZING two thirds into its listing's sync
 * interval, asking the under-store again for pages that would expire
 * within the last third: its files' stat answers, seeded from the
 * listing, never expire under a reader (one LIST per 1,000 files instead
 * of a HEAD per file), and files evicted since are fetched again.  A slot nobody noted for DA_IDLE_MS is freed (its mount
 * reference dropped) unless the walker holds it (busy).
 *
 * Invariant: the walker alone moves a slot out of SIZING or WALKING, and
 * only a slot that is not busy is freed or reused.
 */
#include "dirahead.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/log.h"
#include "../common/util.h"

#define DA_SLOTS 16
#define DA_TRIGGER 4        /* distinct files read before a walk starts */
#define DA_IDLE_MS 30000    /* a directory nobody read for this long is forgotten */
#define DA_SMALL_PAGES 4    /* a small file: at most this many pages */
#define DA_PAGE 1000        /* listing entries per request */
#define DA_SIZE_MAX 200000  /* entries a sizing pass reads at most */
#define DA_INFLIGHT 64      /* fetches in flight at most while walking */
#define DA_ACTIVE_MS 5000   /* read this lately: its listing is kept fresh */

enum da_state { DA_FREE, DA_COUNTING, DA_SIZING, DA_WALKING, DA_DONE };

struct da_dir {
	enum da_state state;
	struct mount *m;              /* referenced unless FREE */
	char dir[UFS_KEY_MAX + 1];    /* "a/b/", or "" for the root */
	char last[UFS_KEY_MAX + 1];   /* the file noted last */
	char cursor[UFS_KEY_MAX + 1]; /* the walk's last key looked at */
	int64_t seen_ms;              /* the last note */
	int64_t reads;                /* distinct files noted (in a row) */
	int64_t fetched;              /* files the walk fetched */
	int64_t listed_ms;            /* when its last sizing pass began */
	int whole;                    /* fetch the whole directory */
	int refresh;                  /* the next sizing pass asks again */
	int busy;                     /* the walker works on it */
};

/* A listing entry, copied out under the metadata cache's lock. */
struct da_ent {
	char key[UFS_KEY_MAX + 1];
	struct ufs_stat st;
};

struct dirahead {
	struct meta_cache *mc;
	struct router *rt;
	struct reader *rd;
	int64_t max_bytes;
	int64_t small;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	struct da_dir d[DA_SLOTS];
	int64_t walks, files; /* stats */

	pthread_t thread;
	/* The walker's own (no lock). */
	struct da_ent *ents;
	int nents;
	int64_t bytes;     /* sizing: small files' bytes so far */
	int64_t entries;   /* sizing: entries so far */
	const char *under; /* the directory the listing is of */
};

static void
dir_of(const char *path, char *out, size_t n)
{
	const char *s = strrchr(path, '/');
	size_t l = s ? (size_t)(s - path) + 1 : 0;
	if (l >= n)
		l = 0;
	memcpy(out, path, l);
	out[l] = 0;
}

/* Empties d; returns its mount reference, for the caller to release once
 * it no longer holds da->mu (the last reference closes an under-store). */
static struct mount *
do_free_slot(struct da_dir *d)
{
	struct mount *m = d->state != DA_FREE ? d->m : NULL;
	memset(d, 0, sizeof(*d));
	return m;
}

void
dirahead_note(struct dirahead *da, struct mount *m, const char *path,
    int64_t size)
{
	if (!da || size <= 0 || size > da->small)
		return;
	char dir[UFS_KEY_MAX + 1];
	dir_of(path, dir, sizeof(dir));
	int64_t now = now_ms();
	struct mount *old = NULL;
	pthread_mutex_lock(&da->mu);
	struct da_dir *d = NULL, *victim = NULL;
	for (int i = 0; i < DA_SLOTS; i++) {
		struct da_dir *s = &da->d[i];
		if (s->state != DA_FREE && s->m == m && strcmp(s->dir, dir) == 0) {
			d = s;
			break;
		}
		if (!s->busy && (!victim || s->state == DA_FREE ||
		    (victim->state != DA_FREE && s->seen_ms < victim->seen_ms)))
			victim = s;
	}
	if (!d) {
		if (!victim) {
			pthread_mutex_unlock(&da->mu);
			return; /* every slot is being walked */
		}
		old = do_free_slot(victim);
		d = victim;
		d->state = DA_COUNTING;
		d->m = mount_ref(m);
		snprintf(d->dir, sizeof(d->dir), "%s", dir);
	}
	if (strcmp(d->last, path) != 0) {
		if (d->state == DA_COUNTING && now - d->seen_ms > DA_IDLE_MS)
			d->reads = 0; /* a new run of reads */
		d->reads++;
		snprintf(d->last, sizeof(d->last), "%s", path);
		if (d->state == DA_COUNTING && d->reads >= DA_TRIGGER) {
			d->state = DA_SIZING;
			pthread_cond_signal(&da->cv);
		} else if (d->state == DA_WALKING && !d->whole &&
		    d->fetched < d->reads + DIRAHEAD_WINDOW / 2) {
			pthread_cond_signal(&da->cv);
		}
	}
	d->seen_ms = now;
	pthread_mutex_unlock(&da->mu);
	mount_release(&old);
}

/* Under the metadata cache's lock: copy, nothing more. */
static int
copy_one(void *arg, const struct ufs_entry *e)
{
	struct dirahead *da = arg;
	if (e->is_dir || !path_under(e->key, da->under) || da->nents >= DA_PAGE)
		return 0;
	struct da_ent *x = &da->ents[da->nents++];
	snprintf(x->key, sizeof(x->key), "%s", e->key);
	memset(&x->st, 0, sizeof(x->st));
	x->st.size = e->size;
	x->st.mtime = e->mtime;
	snprintf(x->st.etag, sizeof(x->st.etag), "%s", e->etag ? e->etag : "");
	return 0;
}

/* One listing page of dir after cursor into da->ents.  0 or -errno. */
static int
list_page(struct dirahead *da, struct mount *m, const char *dir,
    const char *cursor, int64_t min_left_ms, int *truncated)
{
	da->nents = 0;
	da->under = dir;
	*truncated = 0;
	return meta_list_fresh(da->mc, m, dir, "/", cursor, DA_PAGE, min_left_ms,
	    copy_one, da, truncated);
}

/* Waits (at most 2 s, woken as buffers come back) until n more pages keep the fetches in
 * flight (demand ones included) within DA_INFLIGHT and half the reader's
 * buffers; 0 when they do, -1 when asked to stop or still busy.  More in
 * flight would not fill a link faster, only share it with the demand
 * reads that wait. */
static int
room_for(struct dirahead *da, int64_t n)
{
	int max = reader_max_buffers(da->rd);
	int cap = DA_INFLIGHT < max / 2 ? DA_INFLIGHT : max / 2;
	/* At most 2 s, in slices that let a stop through. */
	for (int i = 0; i < 20; i++) {
		if (__atomic_load_n(&da->stop, __ATOMIC_RELAXED))
			return -1;
		if (reader_wait_buffers(da->rd, cap - (int)n, 100) == 0)
			return 0;
	}
	return -1;
}

/* Sizing: the directory's small files, summed over its whole listing (at
 * most DA_SIZE_MAX entries), each page asked again if it expires within
 * min_left_ms.  1: fetch it whole. */
static int
size_dir(struct dirahead *da, struct mount *m, const char *dir, int64_t min_left_ms)
{
	char cursor[UFS_KEY_MAX + 1] = "";
	int64_t bytes = 0, entries = 0;
	for (;;) {
		int truncated = 0;
		if (list_page(da, m, dir, cursor, min_left_ms, &truncated) < 0)
			return 0;
		for (int i = 0; i < da->nents; i++)
			if (da->ents[i].st.size <= da->small)
				bytes += da->ents[i].st.size;
		entries += da->nents;
		if (bytes > da->max_bytes || entries > DA_SIZE_MAX)
			return 0;
		if (!truncated || da->nents == 0)
			return 1;
		snprintf(cursor, sizeof(cursor), "%s", da->ents[da->nents - 1].key);
		if (__atomic_load_n(&da->stop, __ATOMIC_RELAXED))
			return 0;
	}
}

/*
 * One step of a walk: a listing page after *cursor, each small file not
 * cached (the pages this worker serves) fetched as read-ahead, at most
 * budget files.  Moves *cursor past what it looked at; returns the files
 * fetched, or -1 at the listing's end (or when it failed).
 */
static int64_t
walk_step(struct dirahead *da, struct mount *m, const char *dir, char *cursor,
    int64_t budget)
{
	int truncated = 0;
	if (list_page(da, m, dir, cursor, 0, &truncated) < 0 || da->nents == 0)
		return -1;
	const int64_t P = reader_page_size(da->rd);
	int64_t got = 0;
	int i;
	for (i = 0; i < da->nents && got < budget; i++) {
		struct da_ent *x = &da->ents[i];
		if (x->st.size <= 0 || x->st.size > da->small)
			continue;
		int64_t np = (x->st.size + P - 1) / P;
		if (room_for(da, np) < 0)
			break;
		/* The pages this worker serves (a block may be smaller than
		 * the file), each not cached yet. */
		int n = 0;
		for (int64_t k = 0; k < np; k++)
			if (router_is_local(da->rt, m, x->key, k * P) &&
			    !reader_has_page(da->rd, m, x->key, &x->st, k * P))
				n += reader_prefetch(da->rd, m, x->key, &x->st, k, k);
		if (n > 0)
			got++;
	}
	if (i > 0)
		snprintf(cursor, UFS_KEY_MAX + 1, "%s", da->ents[i - 1].key);
	if (i == da->nents && !truncated)
		return got > 0 ? got : -1;
	return got;
}

static void *
walker_main(void *arg)
{
	struct dirahead *da = arg;
	char dir[UFS_KEY_MAX + 1], cursor[UFS_KEY_MAX + 1];
	struct mount *gone[DA_SLOTS];
	int ngone = 0;
	pthread_mutex_lock(&da->mu);
	while (!da->stop) {
		if (ngone > 0) {
			pthread_mutex_unlock(&da->mu);
			while (ngone > 0)
				mount_release(&gone[--ngone]);
			pthread_mutex_lock(&da->mu);
			continue;
		}
		/* Forget directories nobody reads; keep the listings of
		 * those being read fresh (their files' stat answers come from
		 * them: without this each open would ask the under-store once
		 * they expire); find one with work. */
		int64_t now = now_ms();
		int64_t sync = meta_sync_ms(da->mc);
		int64_t every = sync * 2 / 3 > 1000 ? sync * 2 / 3 : 1000;
		struct da_dir *d = NULL;
		for (int i = 0; i < DA_SLOTS; i++) {
			struct da_dir *s = &da->d[i];
			if (s->state != DA_FREE && !s->busy && now - s->seen_ms > DA_IDLE_MS) {
				gone[ngone++] = do_free_slot(s);
				continue;
			}
			if (sync > 0 && !s->busy && (s->state == DA_WALKING || s->state == DA_DONE) &&
			    now - s->seen_ms < DA_ACTIVE_MS && now - s->listed_ms >= every) {
				s->state = DA_SIZING;
				s->refresh = 1;
			}
			if (!d && (s->state == DA_SIZING || (s->state == DA_WALKING &&
			    (s->whole || s->fetched < s->reads + DIRAHEAD_WINDOW))))
				d = s;
		}
		if (!d) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&da->cv, &da->mu, &ts);
			continue;
		}
		d->busy = 1;
		struct mount *m = mount_ref(d->m);
		snprintf(dir, sizeof(dir), "%s", d->dir);
		snprintf(cursor, sizeof(cursor), "%s", d->cursor);
		enum da_state st = d->state;
		int64_t min_left = d->refresh ? sync / 3 : 0;
		d->refresh = 0;
		int64_t began = now;
		int64_t budget = d->whole ? DA_PAGE : d->reads + DIRAHEAD_WINDOW - d->fetched;
		pthread_mutex_unlock(&da->mu);

		int whole = 0;
		int64_t got = 0;
		if (st == DA_SIZING) {
			whole = size_dir(da, m, dir, min_left);
			LOG_DEBUG("fetch-ahead /%s/%s: %s", m->name, dir,
			    whole ? "the whole directory" : "a window");
		} else {
			got = walk_step(da, m, dir, cursor, budget);
		}

		pthread_mutex_lock(&da->mu);
		d->busy = 0;
		if (st == DA_SIZING) {
			d->state = DA_WALKING;
			d->listed_ms = began;
			d->whole = whole;
			d->fetched = d->reads = 0; /* the window counts from here */
			d->cursor[0] = 0;
			da->walks++;
		} else if (got < 0) {
			d->state = DA_DONE;
		} else {
			d->fetched += got;
			da->files += got;
			snprintf(d->cursor, sizeof(d->cursor), "%s", cursor);
		}
		pthread_mutex_unlock(&da->mu);
		mount_release(&m);
		pthread_mutex_lock(&da->mu);
	}
	pthread_mutex_unlock(&da->mu);
	while (ngone > 0)
		mount_release(&gone[--ngone]);
	return NULL;
}

struct dirahead *
dirahead_open(struct meta_cache *mc, struct router *rt, struct reader *rd,
    int64_t max_bytes)
{
	if (max_bytes <= 0)
		return NULL;
	struct dirahead *da = calloc(1, sizeof(*da));
	if (!da)
		return NULL;
	da->mc = mc;
	da->rt = rt;
	da->rd = rd;
	da->max_bytes = max_bytes;
	da->small = (int64_t)DA_SMALL_PAGES * reader_page_size(rd);
	da->ents = calloc(DA_PAGE, sizeof(*da->ents));
	pthread_mutex_init(&da->mu, NULL);
	pthread_cond_init(&da->cv, NULL);
	if (!da->ents || pthread_create(&da->thread, NULL, walker_main, da) != 0) {
		pthread_mutex_destroy(&da->mu);
		pthread_cond_destroy(&da->cv);
		free(da->ents);
		free(da);
		return NULL;
	}
	return da;
}

void
dirahead_close(struct dirahead **dap)
{
	struct dirahead *da = *dap;
	*dap = NULL;
	if (!da)
		return;
	pthread_mutex_lock(&da->mu);
	__atomic_store_n(&da->stop, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&da->cv);
	pthread_mutex_unlock(&da->mu);
	pthread_join(da->thread, NULL);
	for (int i = 0; i < DA_SLOTS; i++) {
		struct mount *m = do_free_slot(&da->d[i]);
		mount_release(&m);
	}
	pthread_mutex_destroy(&da->mu);
	pthread_cond_destroy(&da->cv);
	free(da->ents);
	free(da);
}

void
dirahead_stats(struct dirahead *da, int64_t *walks, int64_t *files)
{
	*walks = *files = 0;
	if (!da)
		return;
	pthread_mutex_lock(&da->mu);
	*walks = da->walks;
	*files = da->files;
	pthread_mutex_unlock(&da->mu);
}
