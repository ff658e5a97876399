/*
 * reader.h: the read path's lower half: every byte of an object that this
 * worker serves comes through here, from the page store or from the
 * under-store.  Serves a byte range of one version of one object page by
 * page: cached pages are read chunk by chunk into a pooled buffer, each
 * chunk the range touches checked against its CRC, and sent from there (a
 * page checked whole already under --page-verify once goes by sendfile); a
 * chunk that fails drops the page, which is fetched again for the bytes not
 * sent yet.  Missing pages are fetched from the UFS by a pool of
 * fetch threads, several at once (the request's window plus read-ahead
 * when access is sequential), stored in the page store, and handed to the
 * sink from the fetch buffer.  Concurrent misses on one page share one
 * fetch.  Memory is bounded by max_inflight page buffers, for fetches and
 * one-request cold reads alike.
 *
 * The reader owns every under-store read, and is the only writer of pages.
 * It never touches metadata: when the under-store says the object changed
 * it returns -ESTALE, and its caller (objget) decides what to do.
 *
 * Accounting: a byte served counts as a hit if its page was in the cache
 * before any client asked for it, else as a miss (a page fetched ahead of a
 * client, by the window or read-ahead, is a miss the first time it is
 * served).  Bytes fetched beyond what was asked are read-ahead bytes.
 */
#ifndef FERRY_READER_H
#define FERRY_READER_H

#include <stdint.h>
#include <sys/types.h>

#include "../store/pagestore.h"
#include "../ufs/ufs.h"
#include "mounts.h"

struct reader_cfg {
	int fetch_threads;   /* UFS requests in flight at most; default 32 */
	int window;          /* pages fetched ahead within one request; default 8 */
	int readahead_pages; /* beyond the request, when sequential; default 8 */
	int max_inflight;    /* page buffers at most (memory bound); default 128 */
	int64_t block_size;  /* cluster placement unit: read-ahead stops at the
	                      * end of a block (the next one is another
	                      * worker's); 0: no blocks */
};

struct read_sink {
	/* Sends n bytes of fd at off.  0 or -errno. */
	int (*file)(void *arg, int fd, off_t off, size_t n);
	/* Sends n bytes from memory.  0 or -errno. */
	int (*mem)(void *arg, const void *p, size_t n);
	void *arg;
	int no_readahead; /* fetch what is asked only (a load job paces its
	                   * own reads) */
};

struct reader;

struct reader *reader_open(const struct reader_cfg *cfg, struct pagestore *ps);
void reader_close(struct reader **r);

/* Called from a fetch thread when a fetch of byte 0 of (m, path) at
 * version ver also brought the headers stored with the object (an s3://
 * read does): the owner keeps them (the metadata cache), so that a GET of
 * an object fetched ahead needs no stat.  Set before the first fetch. */
typedef void (*reader_hdrs_fn)(void *arg, struct mount *m, const char *path,
    uint64_t ver, const struct ufs_hdrs *h);
void reader_set_hdrs_hook(struct reader *r, reader_hdrs_fn fn, void *arg);

/*
 * Sends bytes [off, off+len) of (m, path) at version st to sink.
 * Returns 0 or -errno; *sent is the number of bytes handed to the sink.
 * -ESTALE: the object is no longer at version st in the UFS.  A range that
 * is partly cached reads its first missing page before sending a byte, so
 * a changed object is found before old-version bytes go out.
 */
int reader_read(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t off, int64_t len,
    const struct read_sink *sink, int64_t *sent);

/*
 * The one-request cold read: reads the page that holds byte off with no
 * version check, in one UFS request that also answers stat (ufs_read_stat):
 * *st gets the version, and the page is stored under it before this
 * returns, so the read that follows finds it.  0, -ENOENT (no object:
 * with dirs 0, maybe a directory), -ERANGE (the reply carried no metadata:
 * ask stat), -EAGAIN (every page buffer is taken: ask stat), -ENOTSUP (the
 * backend cannot), or -errno.
 */
int reader_read_stat(struct reader *r, struct mount *m, const char *path,
    int64_t off, int dirs, struct ufs_stat *st);

/* Is the page holding byte off of (m, path) at version st cached?  Any
 * page of any version of (m, path)?  (Probes: no I/O.) */
int reader_has_page(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t off);
int reader_has_object(struct reader *r, struct mount *m, const char *path);
/* The most page buffers there are (max_inflight): background work
 * (directory fetch-ahead) leaves half for demand reads. */
int reader_max_buffers(const struct reader *r);
/* Waits until at most in_use page buffers are in use (woken as each is
 * given back), for at most timeout_ms: 0, or -1 (timed out, stopping). */
int reader_wait_buffers(struct reader *r, int in_use, int timeout_ms);
/* Waits until no fetch of pages [first, first+n) of (m, path) at version
 * st is under way (each stored, or failed), then returns how many of them
 * are not in the cache: an exact answer to "did my read cache it?". */
int reader_settle(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t first, int64_t n);
/* Bytes of (m, path) in the cache, any version (O(1), no I/O). */
int64_t reader_object_bytes(struct reader *r, struct mount *m, const char *path);
/* Bytes of (m, path) at version st in the cache. */
int64_t reader_cached_bytes(struct reader *r, struct mount *m,
    const char *path, const struct ufs_stat *st);

/*
 * The cached pages covering [off, off+len) (at most max pages; fewer if
 * the range is longer), for a client on this host that reads the files
 * itself.  0 with refs[0..*n) (the caller releases them) when every page is
 * cached; -ENOENT (nothing held) when one is not; -errno on failure.  Each
 * ref's data [ra, ra + rn) is exactly the covered part of its page.  The
 * data is not checked here: whoever reads it checks the chunks it touches
 * against the ref's CRCs.
 */
int reader_get_pages(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t off, int64_t len,
    struct page_ref *refs, int max, int *n);

/* Starts fetching pages [first, last] in the background if not cached
 * (used by load/preload later).  Returns pages queued. */
int reader_prefetch(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t first, int64_t last);

/* Drops every cached page of object obj whose version is not keep_ver. */
int reader_drop_object(struct reader *r, uint64_t obj, uint64_t keep_ver);

/*
 * A write's pages (objput, write-through): while the under-store commits,
 * the pages a client is writing are cached under a version of the write's
 * own (ver: a random nonce nobody reads); once the store has named the new
 * version they become that version's (reader_adopt_version), or go if the
 * write failed (reader_drop_version).  Best effort: a page that cannot be
 * stored is simply not cached.  A written page counts as cached before any
 * client asked for it (a hit when read).
 */
void reader_stage_page(struct reader *r, struct mount *m, const char *path,
    uint64_t ver, int64_t idx, const void *buf, uint32_t n);
int reader_adopt_version(struct reader *r, uint64_t obj, uint64_t from_ver,
    uint64_t to_ver);
void reader_drop_version(struct reader *r, uint64_t obj, uint64_t ver);
/* The page size (what a write stages at a time). */
uint32_t reader_page_size(const struct reader *r);

#endif
