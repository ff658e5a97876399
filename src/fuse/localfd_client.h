/*
 * localfd_client.h: `ferry fuse`'s side of zero-copy local reads (the
 * wire format is in worker/localfd.h): asks the worker on this host for
 * the page files that hold a byte range and gets their descriptors, so the
 * read is answered from them (spliced into /dev/fuse) rather than copied
 * through HTTP.  Any failure means "read through HTTP".
 */
#ifndef FERRY_FUSE_LOCALFD_CLIENT_H
#define FERRY_FUSE_LOCALFD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

#define LFDC_MAX_PIECES 64

/* Bytes [off, off + len) of page file fd. */
struct lfd_piece {
	int fd;
	int64_t off;
	int64_t len;
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
 * not cached, no socket, any error).
 */
int lfd_client_get(struct lfd_client *c, const char *path, const char *etag,
    int64_t off, int64_t len, struct lfd_piece *pieces, int max);

#endif
