/*
 * meta.h: the metadata cache.  Stat and list answers from under-stores are
 * kept for the sync interval, then asked again.  Concurrent misses on the
 * same stat make one UFS request (one loader, the others wait).  Memory is
 * bounded: at most max_entries stat entries and max_list_bytes of cached
 * listing pages, each LRU.
 *
 * When a fresh answer shows that an object's version moved, the cache says
 * so through cfg->on_change (the worker drops the old version's pages); it
 * never touches pages itself.
 *
 * An answer keeps the headers stored with the object (Content-Type,
 * x-amz-meta-*, ...; struct ufs_hdrs) when it was loaded by a stat or a
 * cold read, or written here: what GET and HEAD answer on a hit.  An entry
 * a listing made does not know them until a fetch of the object's first
 * page brings them (meta_learn_hdrs: the reader's fetch-ahead); a caller
 * that wants them before that loads it.
 * Each is a copy of exactly its bytes, all of them at most 32 MiB (past
 * that the least recently used entries forget theirs).
 *
 * Thread-safety: one mutex guards both caches; it is never held across a
 * UFS call.  meta_list calls its callback under that mutex when it answers
 * from the cache (callbacks only format output: they must not call back
 * into the cache).
 */
#ifndef FERRY_META_H
#define FERRY_META_H

#include <stdint.h>

#include "../ufs/ufs.h"
#include "mounts.h"

struct meta_cache;

struct meta_cfg {
	int64_t sync_ms;        /* how long an answer is trusted */
	int64_t max_entries;    /* stat entries at most */
	int64_t max_list_bytes; /* cached listing pages at most */
	int64_t max_hdrs_bytes; /* stored headers kept with answers, all
	                         * together (0: 32 MiB) */
	int64_t stale_ms;       /* stale-if-error: an expired answer is served
	                         * this long past its expiry while the
	                         * under-store fails (0: never) */
	/* Object obj's version moved: every version but keep_ver is stale
	 * (keep_ver 0: the object is gone).  Called without the lock. */
	void (*on_change)(void *arg, uint64_t obj, uint64_t keep_ver);
	void *arg;
};

struct meta_cache *meta_open(const struct meta_cfg *cfg);
void meta_close(struct meta_cache **mc);

/* Stat through the cache.  0 or -errno (from the UFS). */
int meta_stat(struct meta_cache *mc, struct mount *m, const char *path,
    struct ufs_stat *st);

/*
 * A stat miss in two steps, for a caller that answers it with something
 * other than a UFS stat (objget's one-request cold read):
 * meta_stat_begin answers from the cache (returns 0 with *st, or the
 * cached -ENOENT), or makes the caller the one loader of this entry
 * (returns META_LOAD): the caller then asks the UFS and must call
 * meta_stat_end with the answer, which publishes it and wakes the waiters.
 * nokey_ok: an entry that only knows "no object with this key" (maybe a
 * directory; see meta_stat_end) is a hit.  On META_LOAD, ld->prev holds the
 * expired answer the entry had for a file (ld->has_prev), so the caller can
 * tell whether it still has that version's pages.
 */
#define META_LOAD 1
struct meta_load {
	void *ent; /* the claimed entry (NULL if none could be made) */
	int has_prev;
	struct ufs_stat prev;
};
int meta_stat_begin(struct meta_cache *mc, struct mount *m, const char *path,
    int nokey_ok, struct ufs_stat *st, struct ufs_hdrs *h, struct meta_load *ld);
/*
 * h (NULL: not wanted): a hit copies the answer's headers into h, and an
 * answer that does not know them is loaded again (META_LOAD).
 *
 * r: 0 (fresh is the answer) or -errno.  nokey: r is -ENOENT from a read
 * that did not ask whether the key is a directory (kept for nokey_ok
 * callers only).  Returns what the caller answers: 0 with *st (fresh, or
 * the expired answer kept because the under-store failed: stale-if-error),
 * or r.  st may be fresh.  fh: the headers fresh came with (NULL, or not
 * known: the entry keeps those it had for the same version); h (NULL: not
 * wanted): the answer's headers (fh's, or the stale answer's).
 */
int meta_stat_end(struct meta_cache *mc, struct mount *m, const char *path,
    struct meta_load *ld, int r, const struct ufs_stat *fresh,
    const struct ufs_hdrs *fh, int nokey, struct ufs_stat *st,
    struct ufs_hdrs *h);

/*
 * Writes through this worker (objput): the answer is known without asking
 * the under-store.  meta_wrote: st is the object's stat now (fresh for the
 * sync interval; other versions reported through on_change) and h the
 * headers stored with it (NULL: not known, a GET asks); meta_removed:
 * "no such object" is; meta_forget_lists: the mount's cached listings are
 * dropped (a key came or went).
 */
void meta_wrote(struct meta_cache *mc, struct mount *m, const char *path,
    const struct ufs_stat *st, const struct ufs_hdrs *h);
void meta_removed(struct meta_cache *mc, struct mount *m, const char *path);
/* A write=back object reached the store: if path's answer is still
 * version from (no newer write came), it becomes to (the store's stat of
 * the same bytes, with the same headers), fresh; otherwise nothing
 * changes. */
void meta_replace(struct meta_cache *mc, struct mount *m, const char *path,
    const struct ufs_stat *from, const struct ufs_stat *to);
void meta_forget_lists(struct meta_cache *mc, struct mount *m);
/* The headers stored with path at version ver, learnt on the side (a
 * fetch of its first page brought them): kept if the answer cached is
 * that version and does not know its headers yet (a listing made it). */
void meta_learn_hdrs(struct meta_cache *mc, struct mount *m, const char *path,
    uint64_t ver, const struct ufs_hdrs *h);

/* A path's answer is wrong (its version moved under us): the next use asks
 * the UFS again, never serves it stale, and reports the move (on_change)
 * against the version it had. */
void meta_invalidate(struct meta_cache *mc, struct mount *m, const char *path);
/* Another worker wrote or deleted path: its cached answer, its
 * directories' and the mount's listings are checked again at their next
 * use (the old version's pages go when the new version is seen). */
void meta_changed_elsewhere(struct meta_cache *mc, struct mount *m,
    const char *path);

/* `ferry refresh`: every stat answer of m under prefix ("" for all) is
 * asked again at its next use (a moved version drops its pages then), and
 * m's listings are forgotten.  Returns the stat answers expired. */
int64_t meta_refresh(struct meta_cache *mc, struct mount *m, const char *prefix);

/* One page of a listing, through the cache; arguments as ufs_list. */
int meta_list(struct meta_cache *mc, struct mount *m, const char *prefix,
    const char *delimiter, const char *start_after, int max_keys, ufs_list_fn fn,
    void *arg, int *truncated);
/* The same, but a cached page that expires within min_left_ms is asked
 * again (and so are its objects' stat answers, seeded from it): a reader
 * that keeps a directory's answers fresh ahead of their expiry. */
int meta_list_fresh(struct meta_cache *mc, struct mount *m, const char *prefix,
    const char *delimiter, const char *start_after, int max_keys,
    int64_t min_left_ms, ufs_list_fn fn, void *arg, int *truncated);
/* How long an answer is trusted (--sync-interval). */
int64_t meta_sync_ms(const struct meta_cache *mc);

/*
 * Everything under prefix after start_after (recursive, no delimiter),
 * through the cache page by page (page keys each): fn per entry, under the
 * cache's lock, as meta_list; then page_done (may be NULL) once per page
 * without it, where a caller may block or stop (non-zero: returned).  Never
 * the whole listing in memory.  0, page_done's answer, or -errno (the
 * under-store's).
 */
int meta_list_all(struct meta_cache *mc, struct mount *m, const char *prefix,
    const char *start_after, int page, ufs_list_fn fn,
    int (*page_done)(void *arg), void *arg);

#endif
