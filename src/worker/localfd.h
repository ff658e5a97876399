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
 *   answer:   struct lfd_ans, then nseg struct lfd_seg, then ncrc u32
 *             chunk CRCs; when status is LFD_OK the first byte of the
 *             answer carries nseg descriptors (SCM_RIGHTS), one per
 *             segment, in order.  The segments cover [off, off + covered)
 *             of the range with no gap; covered may be less than asked
 *             (more pages than LFD_MAX_SEGS, or the end of the file), and
 *             the client asks again for the rest.
 * The worker does not read the data it hands out: each segment names the
 * chunks of its page file that hold its bytes ([chunk_off, chunk_end),
 * `chunk` bytes each but the page's last) and the CRC32C of each (ncrc of
 * them, in order, from the answer's table), and the client reads those
 * chunks whole and checks them before any of their bytes reach an
 * application.  A chunk that fails is never used: the client reads the
 * range through HTTP, where the worker finds the page bad, drops it and
 * fetches it again.
 *
 * Versions: the magics name the protocol (2: with chunk CRCs).  A worker
 * answers a request of protocol 1 (whose clients would not check chunks)
 * with a protocol-1 LFD_ERROR (-EPROTONOSUPPORT) and closes the
 * connection, so such a client reads through HTTP; GET /v1/local says
 * "protocol": 2, and a client that does not find its own protocol there
 * does not use the socket.
 *
 * The id (from GET /v1/local) names one worker process: a client that
 * reached a different worker through the same path (a restart, another
 * worker on this host) gets LFD_WRONG_ID and reads through HTTP.
 */
#ifndef FERRY_LOCALFD_H
#define FERRY_LOCALFD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/dbuf.h"

#define LFD_PROTOCOL 2
#define LFD_MAGIC_REQ 0x3252514cu    /* "LQR2" */
#define LFD_MAGIC_ANS 0x3252414cu    /* "LAR2" */
#define LFD_MAGIC_REQ_V1 0x4652514cu /* "LQRF": protocol 1, refused */
#define LFD_MAGIC_ANS_V1 0x4652414cu
#define LFD_REQ_MAX 4096             /* request header + path + etag */
#define LFD_LEN_MAX (4u << 20)       /* bytes asked at most per request */
#define LFD_MAX_SEGS 32              /* descriptors per answer */
#define LFD_MAX_CRCS 256             /* chunk CRCs per answer */
#define LFD_CHUNK_MAX (1u << 24)     /* a chunk size a client accepts */
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
	uint32_t ncrc;   /* CRCs after the segments (the sum of theirs) */
	uint32_t chunk;  /* chunk size of every segment's page */
};

struct lfd_seg {
	int64_t file_off;  /* where the range's bytes start in the page file */
	int64_t len;
	int64_t chunk_off; /* where the first chunk holding them starts */
	int64_t chunk_end; /* where the last one ends */
	uint32_t ncrc;     /* chunks from chunk_off to chunk_end */
	uint32_t reserved;
};

/* The answer of protocol 1, as sent to refuse its clients. */
struct lfd_ans_v1 {
	uint32_t magic;
	uint32_t status;
	int32_t err;
	uint32_t nseg;
	int64_t covered;
};

/*
 * Parses an answer (its first n bytes in msg, nfd descriptors received
 * with it): 0 when msg holds exactly one valid answer (*a, segs[0..nseg),
 * crcs[0..ncrc) filled); the number of bytes the whole answer needs when n
 * is short of it; -1 when malformed (a bad magic, counts or segment
 * geometry: chunks that do not hold the segment's bytes, CRC counts that
 * do not match them, lengths that do not add up to covered).  Pure: the
 * client's only parser of what the worker sends (fuzzed).
 */
ssize_t lfd_answer_parse(const void *msg, size_t n, int nfd, struct lfd_ans *a,
    struct lfd_seg *segs, uint32_t *crcs);

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
