/*
 * localfd_client.h: `ferry fuse`'s side of zero-copy local reads (the
 * wire format is in worker/localfd.h): asks the worker on this host for
 * the page files that hold a byte range and gets their descriptors, so the
 * read is answered from them rather than copied through HTTP.  Every
 * chunk read from a descriptor is checked against the CRC the worker sent
 * with it (lfd_piece_read) before its bytes are used.  Any failure, a
 * chunk that fails its check included, means "read through HTTP".
 */
#ifndef FERRY_FUSE_LOCALFD_CLIENT_H
#define FERRY_FUSE_LOCALFD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

#define LFDC_MAX_PIECES 64
#define LFDC_MAX_CRCS 512

/* Bytes [off, off + len) of page file fd, held by the chunks
 * [chunk_off, chunk_end) (chunk bytes each, the last maybe shorter) whose
 * CRC32Cs are crcs[0..ncrc). */
struct lfd_piece {
	int fd;
	int64_t off;
	int64_t len;
	int64_t chunk_off, chunk_end;
	uint32_t chunk, ncrc;
	const uint32_t *crcs; /* in the caller's array */
};

struct lfd_client;

/* A client of the worker behind f (which it uses for GET /v1/local); it
 * learns the socket and connects lazily.  Its descriptor cache holds at
 * most max_fds descriptors (0: no cache). */
struct lfd_client *lfd_client_new(ferry_t *f, int max_fds);
void lfd_client_free(struct lfd_client **c);

/* Learns the socket and connects once now; 0, or -errno with a reason in
 * why (for the one startup log line). */
int lfd_client_probe(struct lfd_client *c, char *why, size_t n);

/*
 * The pieces that hold [off, off + len) of path at version etag: their
 * count (>= 1; the caller closes each fd), -ESTALE when the worker has
 * another version, or -EAGAIN when the read must go through HTTP (a page
 * not cached, no socket, any error).  The pieces' CRCs go to crcs (room
 * for maxcrc).
 */
int lfd_client_get(struct lfd_client *c, const char *path, const char *etag,
    int64_t off, int64_t len, struct lfd_piece *pieces, int max,
    uint32_t *crcs, int maxcrc);

/*
 * The descriptor cache.  A read that would ask the worker for its pieces
 * first looks here: the worker's answer for a whole granule (LFDC_GRAN
 * bytes of the file, aligned) is kept, descriptors and every chunk CRC of
 * it, so later reads in that granule need no exchange.  An entry serves a
 * read only when the worker gave it after `since_ms` (the read's open: a
 * new open asks the worker again, once per granule) and less than
 * LFDC_TRUST_MS ago (then the worker is asked again: it sees the page is
 * in use, and answers LFD_STALE for a version it no longer has).  Every
 * chunk read from a cached descriptor is checked against its CRC as
 * before: the cache holds no bytes, only where they are and what they must
 * hash to.  Bounded: at most max_fds descriptors (lfd_client_new), least
 * recently used out first; entries unused for LFDC_KEEP_MS are closed by
 * lfd_client_sweep, so a page the worker evicted is not held open long.
 */
#define LFDC_GRAN (1 << 20)
#define LFDC_TRUST_MS 2000
#define LFDC_KEEP_MS 5000
#define LFDC_HOLD_MAX 4

/* The cache entries one read uses (lfd_client_cached fills it). */
struct lfd_hold {
	struct lfdc_ent *e[LFDC_HOLD_MAX];
	int n;
};

/*
 * Pieces of [off, off + len) of path at version etag (whose size is size)
 * from cached descriptors, asking the worker for a granule not held (or
 * held from before since_ms, or for too long).  Returns the count of
 * pieces (>= 1) with *h holding their entries: the fds are the cache's (do
 * not close them); call lfd_client_release when done with the pieces.
 * -ESTALE when the worker has another version; -EAGAIN when the cache
 * cannot serve it (a page not cached, a granule in more pieces than fit,
 * no socket): use lfd_client_get, then HTTP.  Nothing is held on error.
 */
int lfd_client_cached(struct lfd_client *c, const char *path, const char *etag,
    int64_t size, int64_t off, int64_t len, int64_t since_ms,
    struct lfd_piece *pieces, int max, struct lfd_hold *h);

/* Ends a read's use of h's entries; bad: a chunk read from one of them
 * failed its check, so they are dropped (the next read asks the worker). */
void lfd_client_release(struct lfd_client *c, struct lfd_hold *h, int bad);

/* Closes the entries not used for LFDC_KEEP_MS (called once a second). */
void lfd_client_sweep(struct lfd_client *c);

/* Bytes buf needs for lfd_piece_read of p. */
static inline size_t
lfd_piece_span(const struct lfd_piece *p)
{
	return (size_t)(p->chunk_end - p->chunk_off);
}

/*
 * Reads p's chunks whole into buf (lfd_piece_span bytes) and checks each
 * one's CRC: 0 with *data pointing at p's bytes in buf, or -EBADMSG (a
 * chunk failed its check, or could not be read whole: use none of it).
 */
int lfd_piece_read(const struct lfd_piece *p, unsigned char *buf,
    const unsigned char **data);

#endif
