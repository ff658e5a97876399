/*
 * localfd.h: zero-copy local reads.  A worker serves, on a Unix stream
 * socket (<state_dir>/ferry.sock by default, mode 0600), the file
 * descriptors of the cached pages that cover a byte range of one version of
 * a file, so that a client on the same host (`ferry fuse`) reads or splices
 * the bytes from the page files itself instead of receiving them through
 * HTTP.  The wire format below is shared by the worker (localfd.c) and the
 * client (src/fuse/localfd_client.c); both ends are built from one tree.
 *
 * One request, one answer, any number of times per connection:
 *   request:  struct lfd_req, then path_len bytes of ferry path and
 *             etag_len bytes of version (no NULs); 4 KiB at most in all.
 *   answer:   struct lfd_ans, then nseg struct lfd_seg; when status is
 *             LFD_OK the first byte of the answer carries nseg descriptors
 *             (SCM_RIGHTS), one per segment, in order.  The segments cover
 *             [off, off + covered) of the range with no gap; covered may be
 *             less than asked (more pages than LFD_MAX_SEGS, or the end of
 *             the file), and the client asks again for the rest.
 * The id (from GET /v1/local) names one worker process: a client that
 * reached a different worker through the same path (a restart, another
 * worker on this host) gets LFD_WRONG_ID and reads through HTTP.
 */
#ifndef FERRY_LOCALFD_H
#define FERRY_LOCALFD_H

#include <stdint.h>

#include "../common/dbuf.h"

#define LFD_MAGIC_REQ 0x4652514cu /* "LQRF" */
#define LFD_MAGIC_ANS 0x4652414cu
#define LFD_REQ_MAX 4096             /* request header + path + etag */
#define LFD_LEN_MAX (4u << 20)       /* bytes asked at most per request */
#define LFD_MAX_SEGS 32              /* descriptors per answer */
#define LFD_ID_LEN 16
#define LFD_MAX_CONNS 256

enum lfd_status {
	LFD_OK = 0,
	LFD_MISS = 1,     /* a page is not cached: read through HTTP */
	LFD_STALE = 2,    /* the worker's version is not the one asked for */
	LFD_WRONG_ID = 3, /* another worker process than the id names */
	LFD_ERROR = 4,    /* err holds -errno */
};

struct lfd_req {
	uint32_t magic;
	uint32_t path_len;
	uint32_t etag_len;
	uint32_t reserved;
	int64_t off;
	int64_t len;
	unsigned char id[LFD_ID_LEN];
};

struct lfd_ans {
	uint32_t magic;
	uint32_t status; /* enum lfd_status */
	int32_t err;     /* LFD_ERROR: -errno */
	uint32_t nseg;
	int64_t covered; /* bytes from off the segments hold */
};

struct lfd_seg {
	int64_t file_off; /* where the range's bytes start in the page file */
	int64_t len;
};

struct worker;
struct localfd;

/* Binds path (unlinking a stale socket there) and starts the acceptor
 * thread.  NULL + *err (malloc'd) on failure. */
struct localfd *localfd_start(struct worker *w, const char *path, char **err);
/* Stops accepting, ends every connection, waits for their threads, and
 * removes the socket file.  Clears *lf. */
void localfd_stop(struct localfd **lf);
const char *localfd_path(const struct localfd *lf);
/* The worker process's id as 2 * LFD_ID_LEN hex digits (out: 33 bytes). */
void localfd_id_hex(const struct localfd *lf, char *out);
/* Appends ferry_local_fd_reads_total{result=...} in Prometheus text. */
void localfd_metrics_render(struct dbuf *b);

#endif
