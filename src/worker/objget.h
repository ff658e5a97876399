/*
 * objget.h: the one owner of "serve this object", for every front end (the
 * S3 gateway's GET and HEAD, the control API's /v1/data and /v1/stat, the
 * local-fd handout).  A front end parses its protocol into a struct
 * objget_req and formats what objget hands its sink; everything between is
 * here, once: the stat (or the one-request cold read), the version pin,
 * conditional headers, the range, sending the head on the first body byte,
 * and "the version changed: invalidate once and retry".
 *
 * objget calls down only: meta (stat cache), router (which worker serves a
 * block) -> reader (pages, UFS reads), and ufs for a plain stat.  Nothing
 * below it invalidates metadata or retries: they return -ESTALE and objget
 * decides.  The write path's objput/objdelete sit beside it in this shape.
 *
 * Threads: any request thread; objget keeps no state of its own between
 * calls beyond pointers to the services, set at open.
 */
#ifndef FERRY_OBJGET_H
#define FERRY_OBJGET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../store/pagestore.h"
#include "../ufs/ufs.h"
#include "meta.h"
#include "mounts.h"
#include "reader.h"
#include "router.h"

struct objget;

struct objget *objget_open(struct meta_cache *mc, struct router *rt,
    struct reader *rd);
void objget_close(struct objget **og);
/* Reads from the first byte of small files are told to da (directory
 * fetch-ahead; NULL: none).  Set once, before requests come. */
struct dirahead;
void objget_set_dirahead(struct objget *og, struct dirahead *da);

/* A header value as the request carried it (p NULL: absent). */
struct objget_hdr {
	const char *p;
	size_t n;
};

struct objget_req {
	struct mount *m;
	const char *path;  /* validated key */
	int head;          /* the answer's head only, no body */
	int dir_enoent;    /* a directory is "no such key" (S3), not -EISDIR */
	int local_only;    /* a peer's block read: served here, never forwarded */
	int no_readahead;  /* no read-ahead past the range (a load job) */
	/* The head carries the headers stored with the object (the S3
	 * gateway): a cached answer that does not know them (a listing made
	 * it) is loaded again.  Others (FUSE, libferry, peers, load jobs) do
	 * not make the cache ask the store for what they do not show. */
	int want_hdrs;
	/* A version the caller pinned (a peer's or libferry's If-Match, an
	 * ETag without quotes): any other version is refreshed once, then
	 * answered -ESTALE. */
	struct objget_hdr pin;
	/* S3 conditional headers and Range, raw. */
	struct objget_hdr if_match, if_none_match, if_modified_since,
	    if_unmodified_since, range;
};

/* What the answer's head says. */
struct objget_head {
	int status;   /* 200, 206; 304 or 412 (conditions); 416 (range) */
	const struct ufs_stat *st;
	const char *etag;    /* the version's ETag, without quotes */
	/* The headers stored with the object (Content-Type, x-amz-meta-*,
	 * ...), for a request with want_hdrs (else NULL): known 0 when not
	 * known (a stale answer that never knew them); valid during the
	 * call. */
	const struct ufs_hdrs *hdrs;
	int64_t first, last; /* 206: the bytes sent, inclusive */
	int64_t length;      /* body bytes (what a GET sends, for a HEAD) */
};

struct objget_sink {
	/* The head: called once, before the first body byte, or alone when
	 * there is no body (HEAD, empty, 304, 412, 416).  0 or -errno. */
	int (*head)(void *arg, const struct objget_head *h);
	int (*file)(void *arg, int fd, off_t off, size_t n);
	int (*mem)(void *arg, const void *p, size_t n);
	void *arg;
};

/*
 * Serves rq to sink.  0: the whole answer went to the sink.  Otherwise
 * -errno, and *started tells whether the head had gone out: if not, the
 * front end answers the error (-ENOENT, -EISDIR, -ESTALE for a pin that
 * does not hold, an under-store failure...); if so, the body is cut short
 * and the front end must close the connection.
 */
int objget_serve(struct objget *og, const struct objget_req *rq,
    const struct objget_sink *sink, int *started);

/* Stat of a file or directory, with the bytes of it that are cached. */
int objget_stat(struct objget *og, struct mount *m, const char *path,
    struct ufs_stat *st, int64_t *cached_bytes);

/*
 * For a client on this host that reads page files itself: the cached
 * pages covering [off, off+len) of path at version etag (pinned as in
 * objget_req.pin).  0 with refs[0..*n) (the caller releases them; none if
 * the range is past the end), OBJGET_MISS when a page is not cached (the
 * client reads through HTTP, which caches it), -ESTALE when the object is
 * at another version, -errno (-ENOENT: no such object).
 */
#define OBJGET_MISS 1
int objget_pages(struct objget *og, struct mount *m, const char *path,
    const char *etag, int64_t off, int64_t len, struct page_ref *refs,
    int max, int *n);

#endif
