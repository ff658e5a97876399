/*
 * pagestore.h: the local page cache on disk.
 *
 * A page is up to page_size bytes of one version of one UFS object.  Its key
 * is (obj, ver, idx): obj = hash of the object's identity (mount root URI +
 * path), ver = hash of its version (ETag, or mtime+size for files), idx =
 * page index.  Bytes of two versions are never mixed because the version is
 * part of the key.
 *
 * On disk each page is one file, <dir>/<obj[0:2]>/<obj>-<ver>-<idx>.pg2, a
 * header (magic, key, length, a CRC32C per PAGESTORE_CHUNK bytes of data,
 * the header's own CRC) followed by the data.  A page is written to a
 * temporary name and renamed into place, so a crash never leaves a torn
 * page under a real name; a chunk whose CRC does not match (bit rot, a
 * crash before the data reached the disk) is never served: its page is
 * dropped and counted, and fetched again.  Pages of the old format (.pg,
 * one CRC over the whole page) are checked whole at their first get and
 * rewritten in the new one.
 *
 * Restart: the index is rebuilt from directory listings and stat(2) alone
 * (names carry the key and format, sizes carry the length), without
 * reading page data.  Headers are read lazily, the first time a page is
 * served; chunks are checked by each read that touches them, and by the
 * scrubber (pagestore_scrub_start) in the background.
 *
 * Capacity is per directory; pages are placed on a directory by key hash,
 * and each directory evicts in LRU order when a put would exceed it.
 *
 * Thread-safety: all functions may be called from any thread.  One mutex
 * guards the index, LRU lists, groups and expiries (held only for
 * in-memory work, never across disk I/O: evicted pages are unlinked after
 * dropping it); the catalog file has its own, taken before it.
 */
#ifndef FERRY_PAGESTORE_H
#define FERRY_PAGESTORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct page_key {
	uint64_t obj;
	uint64_t ver;
	uint64_t idx;
};

struct pagestore_dir_cfg {
	const char *path;
	int64_t capacity; /* bytes (page data + headers) */
};

struct pagestore_stats {
	int64_t used_bytes;
	int64_t capacity_bytes;
	int64_t pages;
	int64_t evicted_bytes_total;
	int64_t evicted_pages_total;
	int64_t checksum_failures_total;
	int64_t write_errors_total; /* ENOSPC, EROFS, EIO on put */
	int64_t pinned_bytes;       /* pinned pages (never evicted) */
	int64_t ttl_freed_bytes_total;
	int64_t quota_evicted_bytes_total;
	int64_t objects;            /* cached objects */
	int64_t scrub_bytes_total;  /* data bytes the scrubber checked */
	int64_t converted_total;    /* old-format pages rewritten */
};

/*
 * Where a page comes from, so the store can keep datasets apart: group is
 * the origin's group (a mount's identity), path the object's path in it,
 * quota the group's cap in bytes (0: none; the latest put's wins).  The
 * store keeps (group, path, when it was first cached) per object in its
 * catalog, a file beside the pages, so it knows them after a restart.
 */
struct page_origin {
	uint64_t group;
	const char *path;
	int64_t quota;
};

/*
 * Asked when an object is named (its first page with an origin, or at open
 * from the catalog) and by pagestore_reclassify: is (group, path) pinned,
 * and how long may it stay cached (*ttl_s, 0: no limit)?  Called under the
 * store's lock: it must not call the store.
 */
typedef void (*pagestore_classify_fn)(void *arg, uint64_t group,
    const char *path, int *pinned, uint32_t *ttl_s);

/* An object as pagestore_foreach_object shows it (path valid only during
 * the callback). */
struct pagestore_objinfo {
	uint64_t obj;
	uint64_t group;
	const char *path;
	int64_t bytes;   /* cached data bytes, all versions */
	uint32_t born;   /* wall seconds */
	uint32_t expire; /* 0: none */
	int pinned;
};

struct pagestore_group_stats {
	uint64_t group;
	int64_t used;   /* bytes on disk, headers included */
	int64_t quota;  /* 0: none */
	int64_t pinned;
	int64_t objects;
};

/*
 * Pages are checked in chunks of PAGESTORE_CHUNK bytes of data: the page
 * file's header holds a CRC32C per chunk, so a read checks only the
 * chunks it touches (a 4 KiB read one chunk, 32 KiB), not the whole page.
 */
#define PAGESTORE_CHUNK (32u * 1024)
/* CRC tables up to this many chunks (pages up to 1 MiB) live in the ref. */
#define PAGE_REF_INLINE_CRCS 32

/*
 * A page being served: its data is len bytes of fd from offset off, in
 * chunks of `chunk` bytes (the last one shorter), chunk i with CRC32C
 * page_ref_crcs(ref)[i].  get checked the header only (magic, key, length,
 * the header's own CRC over the table): the data is checked by whoever
 * reads it, with page_ref_read/page_ref_verify in the worker, or by a
 * local client given the CRCs (localfd).  checked says every chunk was
 * checked since the store opened (--page-verify once: the bytes may then
 * be sent without a check).  The ref owns the descriptor and the table
 * until page_ref_release; it may not be copied (the table may live in it).
 */
struct page_ref {
	int fd;       /* owned by the ref; closed by page_ref_release */
	off_t off;    /* where the data starts in the file */
	uint32_t len; /* data length */
	uint32_t chunk; /* chunk size (PAGESTORE_CHUNK) */
	int fresh;    /* the page was stored fresh (pagestore_put_fresh) and
	               * this is its first get since */
	int checked;  /* every chunk checked already: reads need no check */
	uint32_t ra, rn; /* reader_get_pages: the data [ra, ra + rn) asked for */
	uint32_t gen;    /* the store's entry, to drop it if a chunk fails */
	struct page_key k;
	uint32_t *crc_buf; /* owned: a table too big for crc_inline, or NULL */
	uint32_t crc_inline[PAGE_REF_INLINE_CRCS];
	struct pagestore *ps;
};

/* The chunk CRCs of a ref: page_ref_nchunks(ref) entries. */
static inline const uint32_t *
page_ref_crcs(const struct page_ref *ref)
{
	return ref->crc_buf ? ref->crc_buf : ref->crc_inline;
}

static inline uint32_t
page_ref_nchunks(const struct page_ref *ref)
{
	return ref->chunk ? (uint32_t)(((uint64_t)ref->len + ref->chunk - 1) / ref->chunk) : 0;
}

/*
 * Reads data bytes [a, a + n) of a ref into buf and checks them: each
 * chunk the range touches is read whole with pread (no mapping) and its
 * CRC compared with the table.  buf holds cap bytes (at least one chunk);
 * when the chunks do not all fit, the first ones that do are read.
 * Returns how many bytes of the range start at *p (> 0, at most n: ask
 * again from a + that), or -ERANGE (the range passes the page's end),
 * -EBADMSG (a chunk failed its CRC, or could not be read whole: the page
 * is dropped from the store and counted in checksum_failures, so a read
 * that fetches it again stores a good copy), or -EINVAL.
 */
ssize_t page_ref_read(struct page_ref *ref, uint32_t a, uint32_t n, void *buf,
    size_t cap, const unsigned char **p);

/* page_ref_read over [a, a + n), through a pooled buffer, bytes dropped:
 * 0, or its errors (-ENOMEM when no buffer can be had). */
int page_ref_verify(struct page_ref *ref, uint32_t a, uint32_t n);

/*
 * Read buffers for page_ref_read: PAGESTORE_BUF_SIZE bytes (a multiple of
 * the chunk size), from a bounded free list (64 idle at most), so a
 * stream of reads allocates nothing.  NULL when out of memory.
 */
#define PAGESTORE_BUF_SIZE (256u * 1024)
void *pagestore_buf_get(struct pagestore *ps);
void pagestore_buf_put(struct pagestore *ps, void *buf);

enum pagestore_verify {
	PAGESTORE_VERIFY_ALWAYS, /* every read checks the chunks it touches */
	PAGESTORE_VERIFY_ONCE,   /* a page is checked whole at its first get
	                          * per process lifetime (and by the scrubber),
	                          * then served unchecked (ref->checked) */
};

struct pagestore;

/* Opens (creating) the dirs and indexes what they hold.  NULL + *err on failure. */
struct pagestore *pagestore_open(const struct pagestore_dir_cfg *dirs,
    int ndirs, uint32_t page_size, enum pagestore_verify verify, char **err);
void pagestore_close(struct pagestore **ps);

uint32_t pagestore_page_size(const struct pagestore *ps);

/*
 * Looks a page up.  0 and *ref filled on a hit (caller releases);
 * -ENOENT on a miss; a page whose header (or, with --page-verify once, at
 * its first get, data) fails its check is removed, counted, and reported
 * as -ENOENT so the caller re-fetches it.  The data is not checked here
 * (see page_ref_read).  A page of the old format (one CRC over the whole
 * page) is checked whole, served from the table computed from it, and
 * rewritten in the new format.  Marks the page most recently used.
 */
int pagestore_get(struct pagestore *ps, const struct page_key *k,
    struct page_ref *ref);
void page_ref_release(struct page_ref *ref);

/* Like get, but only says whether the page is present (no I/O). */
int pagestore_has(struct pagestore *ps, const struct page_key *k);

/*
 * Stores a page (data of len <= page_size bytes) atomically, evicting LRU
 * pages of the chosen directory as needed.  0, or -errno (ENOSPC, EROFS,
 * EIO: the page is simply not cached; the caller still has the bytes).
 * Putting a page that is already present is a no-op returning 0.
 */
int pagestore_put(struct pagestore *ps, const struct page_key *k,
    const void *data, uint32_t len);

/*
 * put for a page fetched ahead of the client that will read it: its first
 * get reports ref->fresh (the reader counts that read as a miss, not a
 * hit).  pagestore_unfresh clears the mark (the page's bytes were served
 * from memory meanwhile).
 */
int pagestore_put_fresh(struct pagestore *ps, const struct page_key *k,
    const void *data, uint32_t len);
void pagestore_unfresh(struct pagestore *ps, const struct page_key *k);

/* Removes every page of object obj whose version is not keep_ver
 * (keep_ver 0 removes all versions).  Returns pages removed. */
int pagestore_drop_object(struct pagestore *ps, uint64_t obj, uint64_t keep_ver);

/* Removes the pages of one version of an object.  Returns pages removed. */
int pagestore_drop_version(struct pagestore *ps, uint64_t obj, uint64_t ver);

/*
 * Moves every page of (obj, from_ver) to (obj, to_ver): a write caches its
 * pages under a version of its own while the under-store is committing,
 * then, once the store named the new version, they become that version's.
 * The data and its CRC are not touched (a header rewrite and a rename per
 * page).  Returns pages moved, or -ENOMEM; a page that cannot be moved is
 * dropped (it is then simply not cached).
 */
int pagestore_rekey(struct pagestore *ps, uint64_t obj, uint64_t from_ver,
    uint64_t to_ver);

/* Does the store hold any page of object obj, of any version?  (The
 * metadata cache asks after a restart, before reading a page again.) */
int pagestore_has_object(struct pagestore *ps, uint64_t obj);

/* Bytes of object (obj, ver) cached, summed over pages. */
int64_t pagestore_cached_bytes(struct pagestore *ps, uint64_t obj, uint64_t ver);

void pagestore_get_stats(struct pagestore *ps, struct pagestore_stats *st);

/*
 * put with the page's origin (o may be NULL: put).  A page of a group over
 * its quota first evicts that group's least recently used pages; if that
 * is not enough (the rest is pinned or being written) it is not cached
 * (-EDQUOT).
 */
int pagestore_put_origin(struct pagestore *ps, const struct page_key *k,
    const void *data, uint32_t len, const struct page_origin *o, int fresh);

/* Sets the classifier and classifies every named object with it (what
 * the catalog named at open included); NULL stops asking (objects keep
 * their state). */
void pagestore_set_classifier(struct pagestore *ps, pagestore_classify_fn fn,
    void *arg);

/*
 * Classifies again the named objects of group under prefix (a pin or TTL
 * rule changed): pins and unpins their pages, moves their expiry.  Returns
 * objects whose state changed.  Prefixes here and below are path_under's
 * (util.h): "" is the whole group, "a/b" is a/b and everything under a/b/.
 */
int64_t pagestore_reclassify(struct pagestore *ps, uint64_t group,
    const char *prefix);

/*
 * Calls fn for each named object of group under prefix, under the store's
 * lock (fn must not call the store; returning non-zero stops the walk and
 * is returned).  In memory only: O(objects cached), no page is touched.
 */
int pagestore_foreach_object(struct pagestore *ps, uint64_t group,
    const char *prefix, int (*fn)(void *arg, const struct pagestore_objinfo *o),
    void *arg);

/* One object: 0 and *o (o->path NULL), or -ENOENT (not cached). */
int pagestore_object_info(struct pagestore *ps, uint64_t obj,
    struct pagestore_objinfo *o);

/*
 * Drops the cached pages of every named object of group under prefix.
 * Pinned objects are kept unless force (*pinned_kept: their bytes).
 * Returns the data bytes freed.
 */
int64_t pagestore_drop_prefix(struct pagestore *ps, uint64_t group,
    const char *prefix, int force, int64_t *pinned_kept);

/* Drops the objects whose TTL ended by now (pinned ones stay).  Costs
 * what expired, not what is cached.  Returns data bytes freed. */
int64_t pagestore_expire(struct pagestore *ps, uint32_t now);

/*
 * The scrubber: one thread that checks every cached page whole (each
 * chunk against its CRC), about once per pass over the index, at most
 * rate bytes a second on average, and drops (and counts, in
 * checksum_failures) the bad ones, so bit rot in pages nobody reads is
 * found too.  Pages it checks keep their LRU place.  rate 0: no thread.
 * 0, or -errno; pagestore_close stops it.
 */
int pagestore_scrub_start(struct pagestore *ps, int64_t rate);

/* One scrub step, on the calling thread: checks whole pages from where
 * the last step stopped until max_bytes are checked or the index has been
 * gone through once.  Returns the data bytes checked (the thread's step;
 * tests call it directly). */
int64_t pagestore_scrub_step(struct pagestore *ps, int64_t max_bytes);

/* Per-group usage: up to max groups in out; returns the number of groups. */
int pagestore_groups(struct pagestore *ps, struct pagestore_group_stats *out,
    int max);

#endif
