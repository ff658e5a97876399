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
 * learns the socket and connects lazily. */
struct lfd_client *lfd_client_new(ferry_t *f);
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
