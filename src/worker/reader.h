/*
 * reader.h: the read path.  Serves a byte range of one version of one
 * object, page by page: cached pages go from their files to the sink
 * (sendfile, no user-space copy); missing pages are fetched from the UFS
 * by a pool of fetch threads, several at once (the request's window plus
 * read-ahead when access is sequential), stored in the page store, and
 * handed to the sink from the fetch buffer.  Concurrent misses on one page
 * share one fetch.  Memory is bounded by max_inflight page buffers.
 */
#ifndef FERRY_READER_H
#define FERRY_READER_H

#include <stdint.h>
#include <sys/types.h>

#include "../store/pagestore.h"
#include "meta.h"
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
};

struct reader;

struct reader *reader_open(const struct reader_cfg *cfg, struct pagestore *ps,
    struct meta_cache *mc);
void reader_close(struct reader **r);

/*
 * Sends bytes [off, off+len) of (m, path) at version st to sink.
 * Returns 0 or -errno; *sent is the number of bytes handed to the sink
 * (so a caller that has sent nothing may retry after -ESTALE, when the
 * object changed in the UFS and the metadata was invalidated).
 */
int reader_read(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t off, int64_t len,
    const struct read_sink *sink, int64_t *sent);

/* Stores page idx of (m, path) at version st, read from the UFS by
 * meta_stat_read's one-request cold read, as a fetch would store it; the
 * read that follows counts its bytes as misses.  n must be the page's
 * whole length at that version, else nothing is stored. */
void reader_store_page(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t idx, const void *buf, uint32_t n);

/* Starts fetching pages [first, last] in the background if not cached
 * (used by load/preload later).  Returns pages queued. */
int reader_prefetch(struct reader *r, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t first, int64_t last);

#endif
