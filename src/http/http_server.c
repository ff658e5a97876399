/*
 * http_server.c: the HTTP/1.1 server (see http_server.h).
 *
 * Threads:
 *  - One waiter thread per server runs an epoll loop: it accepts, admits
 *    connections against the caps (shedding the oldest idle connection to
 *    make room), reads request heads without blocking, closes connections
 *    whose idle or header deadline passed, and hands a connection with a
 *    complete head (or a head error to answer) to a connection thread.
 *  - Connection threads (256 KiB stacks) are created on demand, one per
 *    connection in a request; a thread with no work waits POOL_IDLE_MS for
 *    the next hand-off, then exits.  A thread runs the handler (the
 *    http_resp_* and http_read_body calls come from that same thread, so
 *    the connection's request state needs no lock), writes the response,
 *    serves pipelined requests, waits KEEPALIVE_LINGER_MS for a next one,
 *    and parks the connection with the waiter when none came.  Handlers may block (disk, fetches,
 *    slow clients): only connections in a request hold a thread.
 *  - http_server_stop() runs on the owner's thread.
 *
 * Ownership: a connection belongs to the waiter (new, or parked) or to one
 * connection thread (active, or queued for a pool thread); only the owner
 * reads its socket or closes it, and ownership changes under srv->mu.
 * srv->mu also guards the lists, counters, client table and buffer pool;
 * functions named do_*_locked expect it held.  It is a leaf lock.
 *
 * Invariants:
 *  - nconns counts admitted connections; nconns <= max_conns and each
 *    client address (IPv6: its /64) has at most max_conns_per_client.  At
 *    either cap the oldest parked connection in that scope is closed
 *    ("shed"); a new connection is refused (503) only when every one in
 *    that scope is in a request.
 *  - A parked connection is in srv->parked (park order: shedding takes the
 *    head), in its client's parked list, and in exactly one deadline list:
 *    idleq (no bytes since its last response: closes at parked_at +
 *    idle_timeout) or headq (a head due by head_start + header_timeout).
 *    Each list gets its entries in deadline order, so the waiter only looks
 *    at the heads.  Its socket is in the epoll set, armed (EPOLLONESHOT);
 *    an active connection's is disarmed (or not added yet), so the waiter
 *    never sees events for a connection it does not own.
 *  - A connection holds a buffer block (HTTP_MAX_HEAD bytes for the head,
 *    CONN_STAGE of slack for body framing, CONN_OBUF of pending output, the
 *    parsed request) while active or while parked with bytes of a head;
 *    a parked connection with no pending bytes gives it back to a small
 *    free list.  Nothing else is allocated per request.
 *  - While a handler runs, buf[0..head_len) holds the parsed head (the
 *    request's pointers point there) and is never overwritten; unconsumed
 *    input is buf[rpos..rlen), rpos >= head_len.
 *  - Pending output (obuf[0..olen)) is always sent before, and in the same
 *    sendmsg as, any later bytes, so the byte order on the wire holds.
 *  - A response whose framing could not be completed (short body, failed
 *    write, unread request body beyond the discard bound) ends the
 *    connection, so a client never takes a short body for a whole one.
 */
#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/vas.h"

#define CONN_STACK_SIZE (256 * 1024)
#define CONN_STAGE (8 * 1024)      /* body framing slack after the head */
#define CONN_OBUF (8 * 1024)       /* pending response head/framing */
#define CONN_BUF (HTTP_MAX_HEAD + CONN_STAGE)
#define DISCARD_MAX (1024 * 1024)  /* unread body drained to keep a conn */
#define LINGER_MS 1000             /* drain after our close (see below) */
#define LINGER_MAX (1024 * 1024)
#define STOP_GRACE_MS 2000         /* busy handlers get this long at stop */
#define CHUNK_TRAILERS_MAX 64
#define POOL_IDLE_MS 10000         /* a thread without work exits after */
#define BLOCKS_KEEP 64             /* free buffer blocks kept for reuse */
#define ACCEPT_BATCH 64            /* accepts per wakeup, between reads */
#define EVENTS_MAX 128
#define ACCEPT_PAUSE_MS 100        /* out of descriptors, nothing to shed */
#define PRESSURE_LOG_MS 10000      /* shed/refused warnings at most this often */
#define PER_CLIENT_DEFAULT 1024
/* After a response, a connection thread waits this long for the client's
 * next request before parking the connection with the waiter (varnish's
 * timeout_linger): a client sending requests back to back is served on
 * the same thread, without two hand-offs through epoll per request.  Short,
 * because lingering threads add up: about request rate x linger. */
#define KEEPALIVE_LINGER_MS 2

/* What a connection's buffer holds; pooled, see the invariants above. */
struct conn_block {
	SLIST_ENTRY(conn_block) free_link;
	char buf[CONN_BUF];
	char obuf[CONN_OBUF];
	struct http_request req;
};

/* One client address (IPv4, or an IPv6 /64): the per-client cap. */
struct http_client {
	LIST_ENTRY(http_client) link;   /* hash chain */
	unsigned char key[16];
	int nconns;                     /* admitted, parked or active */
	TAILQ_HEAD(, http_conn) parked; /* its parked ones, oldest first */
};

LIST_HEAD(client_chain, http_client);

enum conn_state {
	CONN_WAITER, /* new: the waiter reads its first bytes */
	CONN_PARKED, /* between requests, watched by the waiter */
	CONN_ACTIVE, /* owned by a connection thread (or queued for one) */
	CONN_DEAD,   /* closed by the waiter; freed after its event batch */
};

struct http_server {
	struct http_server_cfg cfg;
	char *host;
	char *name;
	int lfd;
	int port;
	int epfd;
	int efd;              /* eventfd: wakes the waiter */
	http_handler_fn fn;
	void *arg;
	pthread_t waiter;
	pthread_attr_t tattr; /* connection threads: small stack, detached */

	pthread_mutex_t mu;
	pthread_cond_t cv;      /* nconns or nthreads dropped (stop waits) */
	pthread_cond_t pool_cv; /* readyq got work, or stopping */
	TAILQ_HEAD(, http_conn) parked; /* park order, oldest first */
	TAILQ_HEAD(, http_conn) idleq;  /* parked, no bytes: idle deadline */
	TAILQ_HEAD(, http_conn) headq;  /* parked, head due: header deadline */
	TAILQ_HEAD(, http_conn) active; /* owned by connection threads */
	TAILQ_HEAD(, http_conn) readyq; /* active, waiting for a pool thread */
	SLIST_HEAD(, conn_block) blocks; /* free buffer blocks */
	int nblocks;
	struct client_chain *clients; /* hash table of struct http_client */
	size_t nbuckets;              /* a power of two */
	uint64_t seed;
	int nconns;
	int nparked;
	int nthreads;         /* connection threads alive */
	int idle_threads;     /* waiting for work, minus queued work */
	int64_t wake_at;      /* the waiter sleeps until; 0 while awake */
	int stopping;         /* written under mu, read atomically */
	int64_t rejected;     /* connections refused (cap, no memory); atomic */
	int64_t shed;         /* parked connections closed for room; atomic */

	/* waiter thread only */
	TAILQ_HEAD(, http_conn) grave; /* closed during this event batch */
	int64_t accept_resume;         /* listener paused until (0: not) */
	int64_t warned_at;
	int64_t warned_shed, warned_rejected;
};

enum body_state { BODY_NONE, BODY_PENDING, BODY_DONE, BODY_ERROR };
/* A chunked body: expecting a chunk-size line (then the trailer after the
 * last chunk), data bytes, or the CRLF after a chunk's data. */
enum chunk_state { CHUNK_SIZE, CHUNK_DATA, CHUNK_DATA_END };

struct http_conn {
	struct http_server *srv;
	struct http_client *cli;
	TAILQ_ENTRY(http_conn) link;  /* srv->parked, ->active or ->grave */
	TAILQ_ENTRY(http_conn) tlink; /* srv->idleq or ->headq; ->readyq */
	TAILQ_ENTRY(http_conn) clink; /* cli->parked */
	enum conn_state state;        /* under srv->mu */
	int in_epoll;                 /* added to srv->epfd (owner only) */
	int fd;
	char peer[INET6_ADDRSTRLEN + 8];
	int loopback;
	int64_t parked_at;  /* when it was last parked (ms) */
	int64_t head_start; /* the header deadline runs from; 0: idle */
	int head_lf;        /* a line end was seen in the head being read */
	int first_head;     /* head length or -status handed to the thread */

	struct conn_block *blk; /* NULL while parked without bytes */
	char *buf;       /* blk->buf, CONN_BUF bytes */
	size_t cap;
	size_t rpos, rlen;
	size_t head_len;
	char *obuf;      /* blk->obuf, CONN_OBUF */
	size_t olen;

	struct http_request *req; /* &blk->req */

	/* request body */
	enum body_state body;
	int body_chunked;
	int64_t body_left;  /* Content-Length bytes not yet consumed */
	enum chunk_state chunk_state; /* chunked: where in the framing */
	uint64_t chunk_left; /* data bytes left in the current chunk */
	int continue_sent;
	int body_err;       /* -errno once reading the body failed */

	/* response */
	int is_head;
	int started, ended;
	int no_body;        /* HEAD, 1xx, 204, 304: body calls are no-ops */
	int resp_chunked;
	int resp_eof;       /* HTTP/1.0 without length: ends at close */
	int64_t resp_len;   /* Content-Length sent, or -1 */
	int64_t resp_sent;  /* body bytes sent */
	int keep_alive;     /* as announced in the response */
	int close_after;    /* handler or an error asked to close */
	int io_err;         /* a write failed: the stream is unusable */
};

/* --- small helpers ------------------------------------------------------ */

static int
remaining_ms(int64_t deadline)
{
	int64_t r = deadline - now_ms();
	if (r <= 0)
		return 0;
	return r > 1000000000 ? 1000000000 : (int)r;
}

/*
 * Waits until fd is readable or deadline (monotonic ms) passes.
 * 1 readable, 0 timeout, -errno.
 */
static int
wait_readable(int fd, int64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, remaining_ms(deadline));
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

/* recv with a deadline: >0 bytes, 0 EOF, -ETIMEDOUT or -errno. */
static ssize_t
conn_recv(struct http_conn *c, void *p, size_t n, int64_t deadline)
{
	for (;;) {
		int w = wait_readable(c->fd, deadline);
		if (w == 0)
			return -ETIMEDOUT;
		if (w < 0)
			return w;
		ssize_t r = recv(c->fd, p, n, 0);
		if (r >= 0)
			return r;
		if (errno == EINTR || errno == EAGAIN)
			continue;
		return -errno;
	}
}

/*
 * Sends iov[0..cnt) completely (the socket is blocking with SO_SNDTIMEO as
 * the per-send I/O timeout).  The array is modified.  0 or -errno; on
 * failure the connection is marked unusable.
 */
static int
send_iov(struct http_conn *c, struct iovec *iov, int cnt, int more)
{
	while (cnt > 0 && iov[0].iov_len == 0) {
		iov++;
		cnt--;
	}
	while (cnt > 0) {
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
		ssize_t r = sendmsg(c->fd, &m, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = (errno == EAGAIN || errno == EWOULDBLOCK) ?
			    ETIMEDOUT : errno;
			c->io_err = 1;
			return -e;
		}
		size_t left = (size_t)r;
		while (cnt > 0 && left >= iov[0].iov_len) {
			left -= iov[0].iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov[0].iov_base = (char *)iov[0].iov_base + left;
			iov[0].iov_len -= left;
		}
	}
	return 0;
}

/* Sends pending output plus up to three more pieces in one sendmsg. */
static int
send_pending_with(struct http_conn *c, const void *a, size_t an,
    const void *b, size_t bn, int more)
{
	if (c->io_err)
		return -EPIPE;
	struct iovec iov[3] = {
		{.iov_base = c->obuf, .iov_len = c->olen},
		{.iov_base = (void *)a, .iov_len = an},
		{.iov_base = (void *)b, .iov_len = bn},
	};
	int r = send_iov(c, iov, 3, more);
	c->olen = 0;
	return r;
}

static int
obuf_add(struct http_conn *c, const void *p, size_t n)
{
	if (c->olen + n > CONN_OBUF)
		return -E2BIG;
	memcpy(c->obuf + c->olen, p, n);
	c->olen += n;
	return 0;
}

/* "Date: ..." cached per thread for the current second. */
static const char *
http_date_now(void)
{
	static __thread int64_t cached_sec = -1;
	static __thread char cached[40];
	int64_t t = wall_sec();
	if (t != cached_sec) {
		fmt_http_date(t, cached, sizeof(cached));
		cached_sec = t;
	}
	return cached;
}

/*
 * Closes after a response the client may still be sending into (an error
 * reply, an unread body): half-close and drain for a moment, so the
 * kernel does not answer unread input with a RST that destroys our reply
 * before the client reads it.
 */
static void
lingering_close(struct http_conn *c)
{
	shutdown(c->fd, SHUT_WR);
	int64_t deadline = now_ms() + LINGER_MS;
	size_t drained = 0;
	while (drained < LINGER_MAX) {
		ssize_t r = conn_recv(c, c->buf, c->cap, deadline);
		if (r <= 0)
			break;
		drained += (size_t)r;
	}
}

/* --- request body ------------------------------------------------------- */

/*
 * The interim answer to "Expect: 100-continue", once, before the first body
 * read (never after the final status).  0 or -errno.
 */
static int
maybe_send_continue(struct http_conn *c)
{
	if (!c->req->expect_continue || c->continue_sent || c->started)
		return 0;
	static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
	c->continue_sent = 1;
	return send_pending_with(c, msg, sizeof(msg) - 1, NULL, 0, 0);
}

/* Refills the staging area after the head; keeps unconsumed bytes. */
static int
stage_fill(struct http_conn *c)
{
	if (c->rpos == c->rlen) {
		c->rpos = c->rlen = c->head_len;
	} else if (c->rlen == c->cap) {
		if (c->rpos == c->head_len)
			return -EPROTO; /* a framing line larger than the stage */
		memmove(c->buf + c->head_len, c->buf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos - c->head_len;
		c->rpos = c->head_len;
	}
	ssize_t r = conn_recv(c, c->buf + c->rlen, c->cap - c->rlen,
	    now_ms() + c->srv->cfg.io_timeout_ms);
	if (r == 0)
		return -ECONNRESET;
	if (r < 0)
		return (int)r;
	c->rlen += (size_t)r;
	return 0;
}

/* Next CRLF- or LF-terminated line of the body framing. */
static int
stage_line(struct http_conn *c, const char **line, size_t *len)
{
	for (;;) {
		char *s = c->buf + c->rpos;
		char *lf = memchr(s, '\n', c->rlen - c->rpos);
		if (lf) {
			size_t n = (size_t)(lf - s);
			c->rpos += n + 1;
			if (n > 0 && s[n - 1] == '\r')
				n--;
			*line = s;
			*len = n;
			return 0;
		}
		int r = stage_fill(c);
		if (r < 0)
			return r;
	}
}

/*
 * Up to n body bytes (n never reaches past the body): what the stage
 * holds, else one recv straight into p, waiting at most the I/O timeout.
 * > 0, or -ECONNRESET (the client closed), -ETIMEDOUT, -errno.
 */
static ssize_t
body_read_some(struct http_conn *c, char *p, size_t n)
{
	size_t have = c->rlen - c->rpos;
	if (have > 0) {
		size_t take = have < n ? have : n;
		memcpy(p, c->buf + c->rpos, take);
		c->rpos += take;
		return (ssize_t)take;
	}
	ssize_t r = conn_recv(c, p, n, now_ms() + c->srv->cfg.io_timeout_ms);
	if (r == 0)
		return -ECONNRESET;
	return r;
}

/* "1a;ext=x" -> 26.  -EPROTO on anything else. */
static int
parse_chunk_size(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	for (; i < n; i++) {
		int d;
		char ch = s[i];
		if (ch >= '0' && ch <= '9')
			d = ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			d = ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			d = ch - 'A' + 10;
		else
			break;
		if (v > (UINT64_MAX >> 4))
			return -EPROTO;
		v = (v << 4) | (uint64_t)d;
	}
	if (i == 0)
		return -EPROTO;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i < n && s[i] != ';')
		return -EPROTO;
	for (; i < n; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t')
			return -EPROTO;
	*out = v;
	return 0;
}

/* The body cannot be read further: the connection ends after this
 * request. */
static ssize_t
body_fail(struct http_conn *c, ssize_t err)
{
	c->body = BODY_ERROR;
	c->body_err = (int)err;
	c->close_after = 1;
	return err;
}

/*
 * The next bytes of a chunked body: chunk-size lines, data, the CRLF after
 * each chunk's data and, after the last chunk, trailer fields (read and
 * ignored, at most CHUNK_TRAILERS_MAX).  Returns > 0, or 0 at the end.
 */
static ssize_t
chunked_read(struct http_conn *c, char *buf, size_t cap)
{
	for (;;) {
		const char *line;
		size_t ll;
		int r;
		switch (c->chunk_state) {
		case CHUNK_DATA: {
			size_t want = (uint64_t)cap < c->chunk_left ? cap :
			    (size_t)c->chunk_left;
			ssize_t n = body_read_some(c, buf, want);
			if (n < 0)
				return n;
			c->chunk_left -= (uint64_t)n;
			if (c->chunk_left == 0)
				c->chunk_state = CHUNK_DATA_END;
			return n;
		}
		case CHUNK_DATA_END:
			if ((r = stage_line(c, &line, &ll)) < 0)
				return r;
			if (ll != 0)
				return -EPROTO;
			c->chunk_state = CHUNK_SIZE;
			break;
		case CHUNK_SIZE: {
			uint64_t sz;
			if ((r = stage_line(c, &line, &ll)) < 0)
				return r;
			if (parse_chunk_size(line, ll, &sz) < 0)
				return -EPROTO;
			if (sz > 0) {
				c->chunk_left = sz;
				c->chunk_state = CHUNK_DATA;
				break;
			}
			for (int i = 0;; i++) {
				if ((r = stage_line(c, &line, &ll)) < 0)
					return r;
				if (ll == 0)
					return 0;
				if (i >= CHUNK_TRAILERS_MAX)
					return -EPROTO;
			}
		}
		}
	}
}

ssize_t
http_body_read(struct http_conn *c, void *buf, size_t cap)
{
	if (c->body == BODY_ERROR)
		return c->body_err;
	if (c->body == BODY_NONE) {
		/* "Expect: 100-continue" on an empty body: the 100 all the
		 * same, so that the connection can stay (see
		 * body_allows_reuse). */
		if (maybe_send_continue(c) < 0)
			return body_fail(c, -EPIPE);
		return 0;
	}
	if (c->body != BODY_PENDING)
		return 0;
	if (cap == 0)
		return -EINVAL;
	int e = maybe_send_continue(c);
	if (e < 0)
		return body_fail(c, e);
	ssize_t n;
	if (c->body_chunked) {
		n = chunked_read(c, buf, cap);
	} else {
		size_t want = (uint64_t)cap < (uint64_t)c->body_left ? cap :
		    (size_t)c->body_left;
		n = body_read_some(c, buf, want);
		if (n > 0)
			c->body_left -= n;
		if (n > 0 && c->body_left == 0)
			c->body = BODY_DONE;
		return n < 0 ? body_fail(c, n) : n;
	}
	if (n < 0)
		return body_fail(c, n);
	if (n == 0)
		c->body = BODY_DONE;
	return n;
}

int
http_body_pending(const struct http_conn *c)
{
	return c->body == BODY_PENDING;
}

ssize_t
http_read_body(struct http_conn *c, void *buf, size_t cap)
{
	if (c->body == BODY_ERROR)
		return c->body_err;
	if (c->body != BODY_PENDING)
		return 0;
	size_t limit = cap < c->srv->cfg.max_body ? cap : c->srv->cfg.max_body;
	/* Known length: refuse before reading (or inviting) a byte. */
	if (!c->body_chunked && (uint64_t)c->body_left > limit)
		return -E2BIG;
	char *p = buf;
	size_t total = 0;
	for (;;) {
		ssize_t n;
		if (total < limit) {
			n = http_body_read(c, p + total, limit - total);
		} else {
			/* Full: the body must end here. */
			char extra;
			n = http_body_read(c, &extra, 1);
			if (n > 0)
				return body_fail(c, -E2BIG);
		}
		if (n < 0)
			return n;
		if (n == 0)
			return (ssize_t)total;
		total += (size_t)n;
	}
}

/*
 * After the handler: reads and drops an unread Content-Length body up to
 * DISCARD_MAX so the connection can serve the next request.  0 if the
 * stream is positioned at the next request, -1 if it must be closed.
 */
static int
discard_body(struct http_conn *c)
{
	if (c->body == BODY_NONE || c->body == BODY_DONE)
		return 0;
	if (c->body == BODY_ERROR || c->body_chunked)
		return -1;
	/* A client told "no" (no 100 Continue) may or may not send. */
	if (c->req->expect_continue && !c->continue_sent)
		return -1;
	if (c->body_left > DISCARD_MAX)
		return -1;
	while (c->body_left > 0) {
		if (c->rpos == c->rlen)
			c->rpos = c->rlen = c->head_len;
		size_t have = c->rlen - c->rpos;
		if (have == 0) {
			size_t want = c->cap - c->rlen;
			if ((uint64_t)c->body_left < want)
				want = (size_t)c->body_left;
			ssize_t r = conn_recv(c, c->buf + c->rlen, want,
			    now_ms() + c->srv->cfg.io_timeout_ms);
			if (r <= 0)
				return -1;
			c->rlen += (size_t)r;
			have = (size_t)r;
		}
		size_t take = (uint64_t)c->body_left < have ? (size_t)c->body_left : have;
		c->rpos += take;
		c->body_left -= (int64_t)take;
	}
	c->body = BODY_DONE;
	return 0;
}

/* Whether the request body state lets the connection be reused. */
static int
body_allows_reuse(const struct http_conn *c)
{
	/*
	 * A final answer to "Expect: 100-continue" without a 100 before it
	 * ends the connection, whatever the body: a client told nothing may
	 * still send it, and botocore keeps such an early answer's status
	 * line for its next request on the connection (it expects a 100
	 * whenever it asked for one), misreading that request's answer.
	 */
	if (c->req->expect_continue && !c->continue_sent)
		return 0;
	switch (c->body) {
	case BODY_NONE:
	case BODY_DONE:
		return 1;
	case BODY_ERROR:
		return 0;
	case BODY_PENDING:
		break;
	}
	if (c->body_chunked)
		return 0;
	if (c->req->expect_continue && !c->continue_sent)
		return 0;
	return c->body_left <= DISCARD_MAX;
}

/* --- responses ---------------------------------------------------------- */

/* Lock-free peek (per response); the busy/idle handoff takes the lock. */
static int
server_stopping(struct http_server *s)
{
	return __atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE);
}

/*
 * Formats the head into obuf (pending, so it can leave with the first body
 * bytes) or, if extra headers are too large for obuf, sends it at once.
 * extra[0..nextra) are preformatted header lines.
 */
static int
do_resp_start(struct http_conn *c, int status, const char *const *extra,
    int nextra, int64_t content_length)
{
	if (c->started)
		return -EALREADY;
	if (status < 100 || status > 999)
		return -EINVAL;
	c->started = 1;
	c->resp_sent = 0;
	/* 1xx and 204 must not carry framing headers; a 304's would have to
	 * equal the 200's length, which callers need not know, so none. */
	int no_framing = status < 200 || status == 204 || status == 304;
	c->no_body = c->is_head || no_framing;
	c->resp_chunked = 0;
	c->resp_eof = 0;
	c->resp_len = content_length;
	if (!c->no_body && content_length < 0) {
		if (c->req->version_minor >= 1)
			c->resp_chunked = 1;
		else
			c->resp_eof = 1; /* HTTP/1.0 has no chunked */
	}
	c->keep_alive = c->req->keep_alive && !c->close_after && !c->resp_eof &&
	    !c->io_err && body_allows_reuse(c) && !server_stopping(c->srv);
	if (!c->keep_alive)
		c->close_after = 1;

	char pre[128], post[96];
	int pl = snprintf(pre, sizeof(pre), "HTTP/1.1 %d %s\r\nDate: %s\r\n"
	    "Server: ferry\r\n", status, http_reason(status), http_date_now());
	int ql = 0;
	if (no_framing) {
		/* none */
	} else if (content_length >= 0) {
		ql = snprintf(post, sizeof(post), "Content-Length: %lld\r\n",
		    (long long)content_length);
	} else if (c->resp_chunked || (c->no_body &&
	    c->req->version_minor >= 1)) {
		/* HEAD mirrors the GET framing; 1.0 clients never see chunked */
		ql = snprintf(post, sizeof(post),
		    "Transfer-Encoding: chunked\r\n");
	}
	ql += snprintf(post + ql, sizeof(post) - (size_t)ql,
	    "Connection: %s\r\n\r\n", c->keep_alive ? "keep-alive" : "close");

	size_t need = (size_t)pl + (size_t)ql;
	for (int i = 0; i < nextra; i++)
		need += strlen(extra[i]);
	if (c->olen + need <= CONN_OBUF) {
		obuf_add(c, pre, (size_t)pl);
		for (int i = 0; i < nextra; i++)
			obuf_add(c, extra[i], strlen(extra[i]));
		obuf_add(c, post, (size_t)ql);
		return 0;
	}
	/* Unusually large header set: send it now, without copying (and
	 * without MSG_MORE: no later write is guaranteed to push it). */
	if (c->io_err)
		return -EPIPE;
	struct iovec iov[8];
	int n = 0;
	iov[n++] = (struct iovec){.iov_base = c->obuf, .iov_len = c->olen};
	iov[n++] = (struct iovec){.iov_base = pre, .iov_len = (size_t)pl};
	for (int i = 0; i < nextra && n < 7; i++)
		iov[n++] = (struct iovec){.iov_base = (void *)extra[i],
		    .iov_len = strlen(extra[i])};
	iov[n++] = (struct iovec){.iov_base = post, .iov_len = (size_t)ql};
	c->olen = 0;
	return send_iov(c, iov, n, 0);
}

int
http_resp_start(struct http_conn *c, int status, const char *extra_headers,
    int64_t content_length)
{
	const char *extra[1] = {extra_headers};
	return do_resp_start(c, status, extra, extra_headers ? 1 : 0,
	    content_length);
}

/* Checks a body write against the announced framing. */
static int
body_write_check(struct http_conn *c, size_t n)
{
	if (!c->started || c->ended)
		return -EINVAL;
	if (c->io_err)
		return -EPIPE;
	if (c->resp_len >= 0 && !c->no_body &&
	    (uint64_t)n > (uint64_t)(c->resp_len - c->resp_sent)) {
		/* More than Content-Length: the stream would desync. */
		c->close_after = 1;
		return -EINVAL;
	}
	return 0;
}

int
http_resp_body(struct http_conn *c, const void *p, size_t n)
{
	int r = body_write_check(c, n);
	if (r < 0)
		return r;
	if (c->no_body || n == 0)
		return 0;
	if (c->resp_chunked) {
		char hdr[24];
		int hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
		r = send_pending_with(c, hdr, (size_t)hl, p, n, 0);
		if (r == 0)
			obuf_add(c, "\r\n", 2); /* leaves with the next write */
	} else {
		int more = c->resp_len >= 0 &&
		    c->resp_sent + (int64_t)n < c->resp_len;
		r = send_pending_with(c, p, n, NULL, 0, more);
	}
	if (r == 0)
		c->resp_sent += (int64_t)n;
	return r;
}

int
http_resp_sendfile(struct http_conn *c, int fd, off_t off, size_t n)
{
	int r = body_write_check(c, n);
	if (r < 0)
		return r;
	if (c->no_body || n == 0)
		return 0;
	char hdr[24];
	int hl = 0;
	if (c->resp_chunked)
		hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
	/* MSG_MORE: the head (and chunk header) share a segment with the
	 * file's first bytes; sendfile's last write pushes. */
	if (c->olen > 0 || hl > 0) {
		r = send_pending_with(c, hdr, (size_t)hl, NULL, 0, 1);
		if (r < 0)
			return r;
	}
	size_t left = n;
	while (left > 0) {
		size_t want = left > (1u << 30) ? (1u << 30) : left;
		ssize_t w = sendfile(c->fd, fd, &off, want);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = (errno == EAGAIN || errno == EWOULDBLOCK) ?
			    ETIMEDOUT : errno;
			c->io_err = 1;
			return -e;
		}
		if (w == 0) {
			/* The file is shorter than promised. */
			c->io_err = 1;
			return -EIO;
		}
		left -= (size_t)w;
		c->resp_sent += w;
	}
	if (c->resp_chunked)
		obuf_add(c, "\r\n", 2);
	return 0;
}

int
http_resp_end(struct http_conn *c)
{
	if (!c->started || c->ended)
		return -EINVAL;
	c->ended = 1;
	if (c->io_err) {
		c->close_after = 1;
		return -EPIPE;
	}
	if (c->resp_chunked)
		obuf_add(c, "0\r\n\r\n", 5);
	int r = send_pending_with(c, NULL, 0, NULL, 0, 0);
	if (r < 0) {
		c->close_after = 1;
		return r;
	}
	if (!c->no_body && c->resp_len >= 0 && c->resp_sent != c->resp_len) {
		c->close_after = 1; /* short body: only a close can say so */
		return -EPROTO;
	}
	return 0;
}

int
http_resp_simple(struct http_conn *c, int status, const char *extra_headers,
    const char *content_type, const void *body, size_t n)
{
	char ct[160];
	const char *extra[2];
	int nextra = 0;
	if (content_type) {
		int l = snprintf(ct, sizeof(ct), "Content-Type: %s\r\n",
		    content_type);
		if (l < 0 || (size_t)l >= sizeof(ct))
			return -EINVAL;
		extra[nextra++] = ct;
	}
	if (extra_headers)
		extra[nextra++] = extra_headers;
	int r = do_resp_start(c, status, extra, nextra, (int64_t)n);
	if (r < 0)
		return r;
	r = http_resp_body(c, body, n);
	int e = http_resp_end(c);
	return r < 0 ? r : e;
}

int
http_resp_started(const struct http_conn *c)
{
	return c->started;
}

void
http_conn_set_close(struct http_conn *c)
{
	c->close_after = 1;
}

const char *
http_conn_peer(const struct http_conn *c)
{
	return c->peer;
}

int
http_conn_is_loopback(const struct http_conn *c)
{
	return c->loopback;
}

/* --- buffer blocks and the client table (under srv->mu) ------------------- */

static struct conn_block *
do_block_get_locked(struct http_server *s)
{
	struct conn_block *b = SLIST_FIRST(&s->blocks);
	if (b) {
		SLIST_REMOVE_HEAD(&s->blocks, free_link);
		s->nblocks--;
		return b;
	}
	return malloc(sizeof(*b));
}

static void
do_block_put_locked(struct http_server *s, struct conn_block *b)
{
	if (!b)
		return;
	if (s->nblocks < BLOCKS_KEEP) {
		SLIST_INSERT_HEAD(&s->blocks, b, free_link);
		s->nblocks++;
	} else {
		free(b);
	}
}

static void
conn_set_block(struct http_conn *c, struct conn_block *b)
{
	c->blk = b;
	c->buf = b ? b->buf : NULL;
	c->obuf = b ? b->obuf : NULL;
	c->req = b ? &b->req : NULL;
	c->cap = CONN_BUF;
}

/*
 * The key a client is counted under: an IPv4 address (as ::ffff:a.b.c.d),
 * or the /64 of an IPv6 address, since one IPv6 host can use any address
 * of its /64.
 */
static void
client_key(const struct sockaddr_storage *ss, unsigned char key[16])
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &a->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
			memcpy(key, &a->sin6_addr, 16);
		else
			memcpy(key, &a->sin6_addr, 8);
	}
}

static size_t
client_hash(const struct http_server *s, const unsigned char key[16])
{
	uint64_t a, b;
	memcpy(&a, key, 8);
	memcpy(&b, key + 8, 8);
	uint64_t h = (a ^ s->seed) * 0x9e3779b97f4a7c15ULL;
	h ^= h >> 29;
	h = (h ^ b) * 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return (size_t)h & (s->nbuckets - 1);
}

/* The client entry for key, created with no connections if new. */
static struct http_client *
do_client_get_locked(struct http_server *s, const unsigned char key[16])
{
	struct client_chain *ch = &s->clients[client_hash(s, key)];
	struct http_client *cl;
	LIST_FOREACH(cl, ch, link)
		if (memcmp(cl->key, key, 16) == 0)
			return cl;
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return NULL;
	memcpy(cl->key, key, 16);
	TAILQ_INIT(&cl->parked);
	LIST_INSERT_HEAD(ch, cl, link);
	return cl;
}

static void
do_client_put_locked(struct http_client *cl)
{
	if (cl->nconns > 0)
		return;
	LIST_REMOVE(cl, link);
	free(cl);
}

/* --- connection bookkeeping (under srv->mu) -------------------------------- */

static void
do_unpark_locked(struct http_server *s, struct http_conn *c)
{
	VAS_ASSERT(c->state == CONN_PARKED);
	TAILQ_REMOVE(&s->parked, c, link);
	TAILQ_REMOVE(&c->cli->parked, c, clink);
	if (c->head_start)
		TAILQ_REMOVE(&s->headq, c, tlink);
	else
		TAILQ_REMOVE(&s->idleq, c, tlink);
	s->nparked--;
}

/*
 * Closes the socket and gives back everything c holds but its own memory,
 * which the caller frees (the waiter only after the event batch, in which
 * c may still appear).  Closing under the lock keeps stop from shutting
 * down a reused descriptor.
 */
static void
do_conn_release_locked(struct http_server *s, struct http_conn *c)
{
	if (c->state == CONN_PARKED)
		do_unpark_locked(s, c);
	else if (c->state == CONN_ACTIVE)
		TAILQ_REMOVE(&s->active, c, link);
	c->state = CONN_DEAD;
	close(c->fd);
	c->fd = -1;
	do_block_put_locked(s, c->blk);
	conn_set_block(c, NULL);
	c->cli->nconns--;
	do_client_put_locked(c->cli);
	c->cli = NULL;
	s->nconns--;
	pthread_cond_broadcast(&s->cv);
}

/* The waiter closes c (parked or new); freed after the event batch. */
static void
do_conn_drop_locked(struct http_server *s, struct http_conn *c)
{
	do_conn_release_locked(s, c);
	TAILQ_INSERT_TAIL(&s->grave, c, link);
}

static int64_t
conn_deadline(const struct http_server *s, const struct http_conn *c)
{
	return c->head_start ? c->head_start + s->cfg.header_timeout_ms :
	    c->parked_at + s->cfg.idle_timeout_ms;
}

static void
wake_waiter(struct http_server *s)
{
	uint64_t one = 1;
	ssize_t w = write(s->efd, &one, sizeof(one));
	(void)w; /* EAGAIN: a wakeup is pending anyway */
}

/*
 * Hands c to the waiter: lists, deadline, and the armed epoll entry, all
 * under the lock, so that the waiter cannot see an event (or shed c)
 * before c is fully parked.  A parked connection without pending bytes
 * gives its buffer block back.  The caller owned c (new, or active) and
 * must not touch it after a 0 return; on failure (-errno) it still owns c.
 */
static int
do_park_locked(struct http_server *s, struct http_conn *c, int64_t now)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT,
	    .data.ptr = c};
	if (epoll_ctl(s->epfd, c->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
	    c->fd, &ev) < 0)
		return -errno;
	c->in_epoll = 1;
	/* A new connection's first head, or one begun, is due from now:
	 * entries join the deadline lists in deadline order. */
	c->head_start = c->state == CONN_WAITER || c->rlen > 0 ? now : 0;
	if (c->state == CONN_ACTIVE)
		TAILQ_REMOVE(&s->active, c, link);
	c->state = CONN_PARKED;
	c->parked_at = now;
	if (c->rlen == 0) {
		c->head_lf = 0;
		do_block_put_locked(s, c->blk);
		conn_set_block(c, NULL);
	}
	TAILQ_INSERT_TAIL(&s->parked, c, link);
	TAILQ_INSERT_TAIL(&c->cli->parked, c, clink);
	if (c->head_start)
		TAILQ_INSERT_TAIL(&s->headq, c, tlink);
	else
		TAILQ_INSERT_TAIL(&s->idleq, c, tlink);
	s->nparked++;
	/* A sleeping waiter must wake for a deadline earlier than its own. */
	int64_t d = conn_deadline(s, c);
	if (s->wake_at != 0 && d < s->wake_at) {
		s->wake_at = d;
		wake_waiter(s);
	}
	return 0;
}

/*
 * Moves c (the waiter's) to the active list with its head result h.
 * Returns 1 if the caller must start a thread for it (after unlocking),
 * 0 if a waiting pool thread takes it.
 */
static int
do_dispatch_locked(struct http_server *s, struct http_conn *c, int h)
{
	if (c->state == CONN_PARKED)
		do_unpark_locked(s, c);
	c->state = CONN_ACTIVE;
	c->first_head = h;
	TAILQ_INSERT_TAIL(&s->active, c, link);
	if (s->idle_threads > 0) {
		s->idle_threads--;
		TAILQ_INSERT_TAIL(&s->readyq, c, tlink);
		pthread_cond_signal(&s->pool_cv);
		return 0;
	}
	s->nthreads++;
	return 1;
}

/* --- connection thread ---------------------------------------------------- */

static void
send_error_response(struct http_conn *c, int status)
{
	char body[96];
	int n = snprintf(body, sizeof(body), "%d %s\n", status,
	    http_reason(status));
	c->close_after = 1;
	http_resp_simple(c, status, NULL, "text/plain", body, (size_t)n);
}

/*
 * After bytes were added at buf[old..rlen): parses the head if they can
 * have completed it or reached a limit.  Parsing only at the first line
 * end, at a blank line and at the size limits bounds the work to a few
 * passes per head however a client slices its bytes (the waiter runs this
 * for every connection).  > 0 head length, 0 more needed, < 0 a status.
 */
static int
head_check(struct http_conn *c, size_t old)
{
	int parse = 0;
	if (!c->head_lf && memchr(c->buf + old, '\n', c->rlen - old)) {
		c->head_lf = 1;
		parse = 1;
	}
	/* the blank line may straddle old */
	size_t from = old >= 2 ? old - 2 : 0;
	const char *p = c->buf + from;
	size_t n = c->rlen - from;
	if (memmem(p, n, "\n\n", 2) || memmem(p, n, "\n\r\n", 3))
		parse = 1;
	if (c->rlen >= HTTP_MAX_HEAD ||
	    (old <= HTTP_MAX_LINE + 1 && c->rlen > HTTP_MAX_LINE + 1))
		parse = 1;
	if (!parse)
		return 0;
	return http_parse_request(c->buf, c->rlen, c->req);
}

static void
request_reset(struct http_conn *c)
{
	c->head_len = 0;
	c->body = BODY_NONE;
	c->body_chunked = 0;
	c->body_left = 0;
	c->chunk_state = CHUNK_SIZE;
	c->chunk_left = 0;
	c->continue_sent = 0;
	c->body_err = 0;
	c->is_head = 0;
	c->started = c->ended = 0;
	c->no_body = 0;
	c->resp_chunked = c->resp_eof = 0;
	c->resp_len = -1;
	c->resp_sent = 0;
	c->keep_alive = 0;
	c->olen = 0;
}

/* Finishes what the handler left; returns 1 if the connection may be
 * reused. */
static int
finish_response(struct http_conn *c)
{
	if (!c->started) {
		send_error_response(c, 500);
		return 0;
	}
	if (!c->ended) {
		int complete = c->no_body || (c->resp_len >= 0 &&
		    c->resp_sent == c->resp_len);
		if (complete && !c->resp_chunked) {
			if (http_resp_end(c) < 0)
				return 0;
		} else {
			/* Unfinished body: flush what is pending and close,
			 * never terminate it as if it were whole. */
			send_pending_with(c, NULL, 0, NULL, 0, 0);
			c->ended = 1;
			c->close_after = 1;
			return 0;
		}
	}
	if (c->io_err || c->close_after || !c->keep_alive)
		return 0;
	return 1;
}

/*
 * After a response, with pipelined bytes moved to the front: 1 and *h set
 * if the next head is complete already (or bad), 0 to park the connection
 * (nothing, or part of a head, is here), -1 to close it (EOF, error).
 * Never waits: a connection between requests holds no thread.
 */
static int
next_head(struct http_conn *c, int *h)
{
	c->head_lf = 0;
	if (c->rlen > 0) {
		int p = http_parse_request(c->buf, c->rlen, c->req);
		if (p != 0) {
			*h = p;
			return 1;
		}
		c->head_lf = memchr(c->buf, '\n', c->rlen) != NULL;
	}
	for (;;) {
		ssize_t r = recv(c->fd, c->buf + c->rlen, c->cap - c->rlen,
		    MSG_DONTWAIT);
		if (r > 0) {
			size_t old = c->rlen;
			c->rlen += (size_t)r;
			int p = head_check(c, old);
			if (p == 0)
				return 0;
			*h = p;
			return 1;
		}
		if (r == 0)
			return -1;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	}
}

/* Closes an active connection (the caller's thread owns it) and frees it. */
static void
conn_close(struct http_conn *c)
{
	struct http_server *s = c->srv;
	LOG_DEBUG("http %s: connection from %s closed", s->name, c->peer);
	pthread_mutex_lock(&s->mu);
	do_conn_release_locked(s, c);
	pthread_mutex_unlock(&s->mu);
	free(c);
}

/* Parks c with the waiter, or closes it when the server is stopping. */
static void
conn_park(struct http_conn *c)
{
	struct http_server *s = c->srv;
	pthread_mutex_lock(&s->mu);
	int r = s->stopping ? -ESHUTDOWN : do_park_locked(s, c, now_ms());
	pthread_mutex_unlock(&s->mu);
	if (r < 0) {
		if (r != -ESHUTDOWN)
			LOG_WARN("http %s: cannot park connection from %s: %s",
			    s->name, c->peer, strerror(-r));
		conn_close(c);
	}
}

/*
 * Serves c from the head the waiter read (c->first_head) until no further
 * complete head is waiting, then parks or closes it.  c is not touched
 * after this returns.
 */
static void
conn_work(struct http_conn *c)
{
	struct http_server *s = c->srv;
	int h = c->first_head;
	int need_linger = 0;

	for (;;) {
		request_reset(c);
		c->close_after = 0;
		c->io_err = 0;
		if (h < 0) {
			LOG_DEBUG("http %s: %s: request head rejected with %d",
			    s->name, c->peer, -h);
			c->req->version_minor = 1;
			c->req->keep_alive = 0;
			c->req->expect_continue = 0;
			c->head_len = c->rlen; /* keep the stage out of the way */
			c->rpos = c->rlen;
			send_error_response(c, -h);
			need_linger = !c->io_err;
			break;
		}
		c->head_len = (size_t)h;
		c->rpos = (size_t)h;
		c->is_head = c->req->method_len == 4 &&
		    memcmp(c->req->method, "HEAD", 4) == 0;
		if (c->req->chunked) {
			c->body = BODY_PENDING;
			c->body_chunked = 1;
		} else if (c->req->content_length > 0) {
			c->body = BODY_PENDING;
			c->body_left = c->req->content_length;
		}
		if (server_stopping(s))
			break;

		s->fn(c, c->req, s->arg);

		int reuse = finish_response(c);
		if (server_stopping(s))
			reuse = 0;
		if (reuse && discard_body(c) < 0)
			reuse = 0;
		if (!reuse) {
			need_linger = !c->io_err;
			break;
		}
		/* Pipelined bytes move to the front for the next head. */
		size_t left = c->rlen - c->rpos;
		memmove(c->buf, c->buf + c->rpos, left);
		c->rlen = left;
		c->rpos = 0;
		int n = next_head(c, &h);
		if (n == 0 && c->rlen == 0 && !server_stopping(s)) {
			struct pollfd p = {.fd = c->fd, .events = POLLIN};
			if (poll(&p, 1, KEEPALIVE_LINGER_MS) > 0)
				n = next_head(c, &h);
		}
		if (n == 0) {
			conn_park(c);
			return;
		}
		if (n < 0)
			break;
	}
	if (need_linger)
		lingering_close(c);
	conn_close(c);
}

/*
 * A thread without work waits up to POOL_IDLE_MS for the next connection.
 * NULL: the thread has left the pool (counted out under the lock) and must
 * not touch s again, which stop may free at once.
 */
static struct http_conn *
pool_wait(struct http_server *s)
{
	pthread_mutex_lock(&s->mu);
	s->idle_threads++;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += POOL_IDLE_MS / 1000;
	int timed_out = 0;
	for (;;) {
		struct http_conn *c = TAILQ_FIRST(&s->readyq);
		if (c) {
			/* its dispatch already counted this thread busy */
			TAILQ_REMOVE(&s->readyq, c, tlink);
			pthread_mutex_unlock(&s->mu);
			return c;
		}
		if (s->stopping || timed_out)
			break;
		if (pthread_cond_timedwait(&s->pool_cv, &s->mu, &ts) ==
		    ETIMEDOUT)
			timed_out = 1;
	}
	s->idle_threads--;
	s->nthreads--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void *
conn_thread(void *arg)
{
	struct http_conn *c = arg;
	struct http_server *s = c->srv;
	do
		conn_work(c);
	while ((c = pool_wait(s)) != NULL);
	return NULL;
}

/* --- the waiter ----------------------------------------------------------- */

static void
fill_peer(struct http_conn *c, const struct sockaddr_storage *ss)
{
	char ip[INET6_ADDRSTRLEN];
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(c->peer, sizeof(c->peer), "%s:%u", ip,
		    (unsigned)ntohs(a->sin_port));
		c->loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		snprintf(c->peer, sizeof(c->peer), "[%s]:%u", ip,
		    (unsigned)ntohs(a->sin6_port));
		c->loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) &&
		    a->sin6_addr.s6_addr[12] == 127);
	} else {
		snprintf(c->peer, sizeof(c->peer), "unknown");
		c->loopback = 0;
	}
}

/* A short fixed answer without blocking, then close. */
static void
send_and_close(int fd, const char *msg, size_t n)
{
	ssize_t w = send(fd, msg, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)w;
	shutdown(fd, SHUT_WR);
	close(fd);
}

static const char msg_503[] = "HTTP/1.1 503 Service Unavailable\r\n"
    "Server: ferry\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
static const char msg_408[] = "HTTP/1.1 408 Request Timeout\r\n"
    "Server: ferry\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static void
reject_fd(struct http_server *s, int fd)
{
	__atomic_add_fetch(&s->rejected, 1, __ATOMIC_RELAXED);
	send_and_close(fd, msg_503, sizeof(msg_503) - 1);
}

static void
conn_setup_socket(struct http_server *s, int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct timeval tv = {
		.tv_sec = s->cfg.io_timeout_ms / 1000,
		.tv_usec = (s->cfg.io_timeout_ms % 1000) * 1000,
	};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Closes a parked connection to make room for a new one. */
static void
do_shed_locked(struct http_server *s, struct http_conn *c)
{
	LOG_DEBUG("http %s: idle connection from %s shed", s->name, c->peer);
	__atomic_add_fetch(&s->shed, 1, __ATOMIC_RELAXED);
	do_conn_drop_locked(s, c);
}

/* Under pressure, one line now and then rather than one per connection. */
static void
note_pressure(struct http_server *s)
{
	int64_t now = now_ms();
	if (s->warned_at != 0 && now - s->warned_at < PRESSURE_LOG_MS)
		return;
	int64_t shed = __atomic_load_n(&s->shed, __ATOMIC_RELAXED);
	int64_t rej = __atomic_load_n(&s->rejected, __ATOMIC_RELAXED);
	if (shed == s->warned_shed && rej == s->warned_rejected)
		return;
	LOG_WARN("http %s: at a connection cap: %lld idle connections shed, "
	    "%lld refused since start", s->name, (long long)shed,
	    (long long)rej);
	s->warned_at = now;
	s->warned_shed = shed;
	s->warned_rejected = rej;
}

/* Starts a thread for c; on failure c is answered 503 and closed. */
static void
spawn_thread(struct http_server *s, struct http_conn *c)
{
	pthread_t t;
	int e = pthread_create(&t, &s->tattr, conn_thread, c);
	if (e == 0)
		return;
	LOG_WARN("http %s: cannot start connection thread: %s", s->name,
	    strerror(e));
	__atomic_add_fetch(&s->rejected, 1, __ATOMIC_RELAXED);
	ssize_t w = send(c->fd, msg_503, sizeof(msg_503) - 1,
	    MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)w;
	pthread_mutex_lock(&s->mu);
	s->nthreads--;
	do_conn_release_locked(s, c);
	pthread_mutex_unlock(&s->mu);
	free(c);
}

/*
 * The waiter's read on c (new or parked; the waiter owns it): appends what
 * the socket has without waiting and hands c to a thread once its head is
 * complete (or bad).  Otherwise c stays parked (armed again) or, on EOF or
 * an error, is closed.  disarm: c is read without its event (which may be
 * queued already), so its epoll entry is disarmed first: no event may
 * reach the waiter once a thread owns c.
 */
static void
conn_readable(struct http_server *s, struct http_conn *c, int disarm)
{
	pthread_mutex_lock(&s->mu);
	if (c->state == CONN_DEAD) { /* shed earlier in this batch */
		pthread_mutex_unlock(&s->mu);
		return;
	}
	if (disarm && c->in_epoll) {
		struct epoll_event ev = {.events = EPOLLONESHOT, .data.ptr = c};
		epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev);
	}
	if (!c->blk) {
		struct conn_block *b = do_block_get_locked(s);
		if (!b) {
			LOG_WARN("http %s: out of memory for connection from %s",
			    s->name, c->peer);
			do_conn_drop_locked(s, c);
			pthread_mutex_unlock(&s->mu);
			return;
		}
		conn_set_block(c, b);
	}
	pthread_mutex_unlock(&s->mu);

	int h = 0, close_it = 0;
	size_t old = c->rlen;
	if (c->rlen >= c->cap) {
		h = -431; /* cannot happen: head_check stops at the limit */
	} else {
		ssize_t r;
		do
			r = recv(c->fd, c->buf + c->rlen, c->cap - c->rlen,
			    MSG_DONTWAIT);
		while (r < 0 && errno == EINTR);
		if (r > 0) {
			c->rlen += (size_t)r;
			h = head_check(c, old);
		} else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			close_it = 1;
		}
	}

	int64_t now = now_ms();
	int spawn = 0;
	pthread_mutex_lock(&s->mu);
	if (close_it || s->stopping) {
		do_conn_drop_locked(s, c);
	} else if (h != 0) {
		spawn = do_dispatch_locked(s, c, h);
	} else if (c->state == CONN_WAITER) {
		/* new: its first head is due header_timeout from now */
		if (do_park_locked(s, c, now) < 0)
			do_conn_drop_locked(s, c);
	} else {
		if (c->head_start == 0 && c->rlen > 0) {
			/* the first bytes of a head: now the header deadline */
			TAILQ_REMOVE(&s->idleq, c, tlink);
			c->head_start = now;
			TAILQ_INSERT_TAIL(&s->headq, c, tlink);
		}
		if (c->rlen == 0) {
			do_block_put_locked(s, c->blk);
			conn_set_block(c, NULL);
		}
		struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT,
		    .data.ptr = c};
		if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
			do_conn_drop_locked(s, c);
	}
	pthread_mutex_unlock(&s->mu);
	if (spawn)
		spawn_thread(s, c);
}

/*
 * Admits a new connection: at the client's cap its oldest parked
 * connection is shed, at the server's cap the oldest parked one of all;
 * refused (503) only when every connection in that scope is in a request.
 * Then its first bytes are read at once (they often came with the
 * connection).
 */
static void
admit(struct http_server *s, int fd, const struct sockaddr_storage *ss)
{
	unsigned char key[16];
	client_key(ss, key);
	struct http_conn *c = calloc(1, sizeof(*c));

	pthread_mutex_lock(&s->mu);
	struct http_client *cl = c ? do_client_get_locked(s, key) : NULL;
	int ok = cl != NULL && !s->stopping;
	int pressure = 0;
	if (ok) {
		/* counted first: shedding its last one keeps cl alive */
		cl->nconns++;
		s->nconns++;
		if (cl->nconns > s->cfg.max_conns_per_client) {
			struct http_conn *v = TAILQ_FIRST(&cl->parked);
			if (v)
				do_shed_locked(s, v);
			else
				ok = 0;
			pressure = 1;
		}
		if (ok && s->nconns > s->cfg.max_conns) {
			struct http_conn *v = TAILQ_FIRST(&s->parked);
			if (v)
				do_shed_locked(s, v);
			else
				ok = 0;
			pressure = 1;
		}
		if (!ok) {
			cl->nconns--;
			s->nconns--;
		}
	}
	if (ok) {
		c->srv = s;
		c->cli = cl;
		c->fd = fd;
		c->state = CONN_WAITER;
	} else if (cl) {
		do_client_put_locked(cl);
	}
	int stopping = s->stopping;
	pthread_mutex_unlock(&s->mu);

	if (!ok) {
		free(c);
		if (stopping)
			close(fd);
		else
			reject_fd(s, fd);
	} else {
		fill_peer(c, ss);
		conn_setup_socket(s, fd);
		conn_readable(s, c, 0);
	}
	if (pressure)
		note_pressure(s);
}

static void
accept_some(struct http_server *s)
{
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_CLOEXEC);
		if (fd >= 0) {
			admit(s, fd, &ss);
			continue;
		}
		int e = errno;
		if (e == EAGAIN || e == EWOULDBLOCK)
			return;
		if (e == EINTR || e == ECONNABORTED || e == EPROTO)
			continue;
		if (e == EMFILE || e == ENFILE) {
			/* An idle connection's descriptor is the one to give. */
			pthread_mutex_lock(&s->mu);
			struct http_conn *v = TAILQ_FIRST(&s->parked);
			if (v)
				do_shed_locked(s, v);
			pthread_mutex_unlock(&s->mu);
			if (v) {
				note_pressure(s);
				continue;
			}
		}
		/* Back off instead of spinning on a listener that stays
		 * readable. */
		LOG_WARN("http %s: accept: %s", s->name, strerror(e));
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lfd, NULL);
		s->accept_resume = now_ms() + ACCEPT_PAUSE_MS;
		return;
	}
}

/*
 * Closes parked connections whose idle or header deadline has passed.
 * One with bytes waiting in its socket sent them in time (their event is
 * in a later batch): it is read once more first.
 */
static void
expire(struct http_server *s, int64_t now)
{
	struct http_conn *last = NULL;
	for (;;) {
		pthread_mutex_lock(&s->mu);
		struct http_conn *c = TAILQ_FIRST(&s->idleq);
		if (!c || conn_deadline(s, c) > now) {
			c = TAILQ_FIRST(&s->headq);
			if (c && conn_deadline(s, c) > now)
				c = NULL;
		}
		if (!c) {
			pthread_mutex_unlock(&s->mu);
			return;
		}
		int pending = 0;
		if (c != last && ioctl(c->fd, FIONREAD, &pending) == 0 &&
		    pending > 0) {
			pthread_mutex_unlock(&s->mu);
			last = c;
			conn_readable(s, c, 1);
			continue;
		}
		if (c->rlen > 0) { /* part of a head: slow or stuck */
			LOG_DEBUG("http %s: %s: request head timed out",
			    s->name, c->peer);
			ssize_t w = send(c->fd, msg_408, sizeof(msg_408) - 1,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)w;
		}
		do_conn_drop_locked(s, c);
		pthread_mutex_unlock(&s->mu);
	}
}

static int64_t
do_next_deadline_locked(struct http_server *s)
{
	int64_t next = INT64_MAX;
	struct http_conn *c = TAILQ_FIRST(&s->idleq);
	if (c)
		next = conn_deadline(s, c);
	c = TAILQ_FIRST(&s->headq);
	if (c && conn_deadline(s, c) < next)
		next = conn_deadline(s, c);
	if (s->accept_resume && s->accept_resume < next)
		next = s->accept_resume;
	return next;
}

static void
bury(struct http_server *s)
{
	struct http_conn *c;
	while ((c = TAILQ_FIRST(&s->grave)) != NULL) {
		TAILQ_REMOVE(&s->grave, c, link);
		free(c);
	}
}

static void *
waiter_thread(void *arg)
{
	struct http_server *s = arg;
	struct epoll_event evs[EVENTS_MAX];
	for (;;) {
		int64_t now = now_ms();
		if (s->accept_resume && now >= s->accept_resume) {
			struct epoll_event ev = {.events = EPOLLIN,
			    .data.ptr = &s->lfd};
			epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev);
			s->accept_resume = 0;
		}
		pthread_mutex_lock(&s->mu);
		if (s->stopping) {
			/* Idle connections go now; active ones finish. */
			struct http_conn *c;
			while ((c = TAILQ_FIRST(&s->parked)) != NULL)
				do_conn_drop_locked(s, c);
			pthread_mutex_unlock(&s->mu);
			break;
		}
		int64_t next = do_next_deadline_locked(s);
		s->wake_at = next;
		pthread_mutex_unlock(&s->mu);

		int timeout = -1;
		if (next != INT64_MAX)
			timeout = next <= now ? 0 : next - now > 1000000 ?
			    1000000 : (int)(next - now);
		int n = epoll_wait(s->epfd, evs, EVENTS_MAX, timeout);
		pthread_mutex_lock(&s->mu);
		s->wake_at = 0;
		pthread_mutex_unlock(&s->mu);
		if (n < 0 && errno != EINTR) {
			LOG_ERR("http %s: epoll_wait: %s", s->name,
			    strerror(errno));
			poll(NULL, 0, 100);
		}
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &s->lfd) {
				accept_some(s);
			} else if (p == &s->efd) {
				uint64_t v;
				ssize_t r = read(s->efd, &v, sizeof(v));
				(void)r;
			} else {
				conn_readable(s, p, 0);
			}
		}
		expire(s, now_ms());
		bury(s);
	}
	bury(s);
	return NULL;
}

/* --- start / stop ------------------------------------------------------- */

static void
set_err(char **err, const char *fmt, const char *a, const char *b)
{
	if (!err)
		return;
	char msg[512];
	snprintf(msg, sizeof(msg), fmt, a, b);
	*err = strdup(msg);
}

static int
open_listener(struct http_server *s, char **err)
{
	char port[16];
	snprintf(port, sizeof(port), "%d", s->cfg.port);
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE,
	};
	struct addrinfo *res = NULL;
	int g = getaddrinfo(s->host, port, &hints, &res);
	if (g != 0) {
		set_err(err, "cannot resolve %s: %s", s->host, gai_strerror(g));
		return -1;
	}
	int fd = -1;
	int last = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		/* non-blocking: the waiter accepts until EAGAIN */
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, SOMAXCONN) == 0)
			break;
		last = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		set_err(err, "cannot listen on %s: %s", s->host, strerror(last));
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else
			s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	s->lfd = fd;
	return 0;
}

/*
 * Every connection is a descriptor: the soft limit goes up to the hard
 * one (once per process), and a limit below the cap is worth a warning
 * (the waiter then sheds idle connections for descriptors too).
 */
static void
raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static pthread_once_t nofile_once = PTHREAD_ONCE_INIT;

static void
server_free(struct http_server *s)
{
	struct conn_block *b;
	while ((b = SLIST_FIRST(&s->blocks)) != NULL) {
		SLIST_REMOVE_HEAD(&s->blocks, free_link);
		free(b);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->efd >= 0)
		close(s->efd);
	pthread_attr_destroy(&s->tattr);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_cond_destroy(&s->pool_cv);
	free(s->clients);
	free(s->host);
	free(s->name);
	free(s);
}

struct http_server *
http_server_start(const struct http_server_cfg *cfg, http_handler_fn fn,
    void *arg, char **err)
{
	VAS_ASSERT(cfg && fn);
	/* sendfile(2) has no MSG_NOSIGNAL: a vanished client must not kill
	 * the process. */
	signal(SIGPIPE, SIG_IGN);
	pthread_once(&nofile_once, raise_nofile);

	struct http_server *s = calloc(1, sizeof(*s));
	if (!s) {
		set_err(err, "%s%s", "out of memory", "");
		return NULL;
	}
	s->cfg = *cfg;
	if (s->cfg.max_conns <= 0)
		s->cfg.max_conns = 4096;
	if (s->cfg.max_conns_per_client <= 0)
		s->cfg.max_conns_per_client = PER_CLIENT_DEFAULT;
	if (s->cfg.header_timeout_ms <= 0)
		s->cfg.header_timeout_ms = 20000;
	if (s->cfg.idle_timeout_ms <= 0)
		s->cfg.idle_timeout_ms = 60000;
	if (s->cfg.io_timeout_ms <= 0)
		s->cfg.io_timeout_ms = 60000;
	if (s->cfg.max_body == 0)
		s->cfg.max_body = 1024 * 1024;
	s->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
	s->name = strdup(cfg->name ? cfg->name : "http");
	s->cfg.host = s->host;
	s->cfg.name = s->name;
	s->fn = fn;
	s->arg = arg;
	s->lfd = s->epfd = s->efd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->pool_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_attr_init(&s->tattr);
	pthread_attr_setstacksize(&s->tattr, CONN_STACK_SIZE);
	pthread_attr_setdetachstate(&s->tattr, PTHREAD_CREATE_DETACHED);
	TAILQ_INIT(&s->parked);
	TAILQ_INIT(&s->idleq);
	TAILQ_INIT(&s->headq);
	TAILQ_INIT(&s->active);
	TAILQ_INIT(&s->readyq);
	TAILQ_INIT(&s->grave);
	SLIST_INIT(&s->blocks);
	/* Chains average at most two clients when the server is full. */
	s->nbuckets = 16;
	while (s->nbuckets < 65536 && s->nbuckets * 2 < (size_t)s->cfg.max_conns)
		s->nbuckets *= 2;
	s->clients = calloc(s->nbuckets, sizeof(*s->clients));
	if (getrandom(&s->seed, sizeof(s->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(s->seed))
		s->seed = (uint64_t)now_ns() ^ (uint64_t)(uintptr_t)s;
	if (!s->host || !s->name || !s->clients) {
		set_err(err, "%s%s", "out of memory", "");
		goto fail;
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)s->cfg.max_conns + 64)
		LOG_WARN("http %s: the descriptor limit (%llu) is below "
		    "max connections (%d): idle connections are shed earlier",
		    s->name, (unsigned long long)rl.rlim_cur, s->cfg.max_conns);
	if (open_listener(s, err) < 0)
		goto fail;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &s->lfd};
	struct epoll_event eev = {.events = EPOLLIN, .data.ptr = &s->efd};
	if (s->epfd < 0 || s->efd < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &lev) < 0 ||
	    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->efd, &eev) < 0) {
		set_err(err, "cannot set up epoll: %s%s", strerror(errno), "");
		goto fail;
	}
	int e = pthread_create(&s->waiter, NULL, waiter_thread, s);
	if (e != 0) {
		set_err(err, "cannot start waiter thread: %s%s", strerror(e), "");
		goto fail;
	}
	LOG_INFO("http %s: listening on %s port %d", s->name, s->host, s->port);
	return s;
fail:
	server_free(s);
	return NULL;
}

int
http_server_port(const struct http_server *s)
{
	return s->port;
}

void
http_server_stop(struct http_server **sp)
{
	struct http_server *s = *sp;
	if (!s)
		return;
	*sp = NULL;

	/* The waiter closes the idle connections and exits; threads waiting
	 * for work leave; running handlers get a grace period to finish
	 * their response, then their sockets are shut down too. */
	pthread_mutex_lock(&s->mu);
	__atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&s->pool_cv);
	pthread_mutex_unlock(&s->mu);
	wake_waiter(s);
	pthread_join(s->waiter, NULL);
	close(s->lfd);
	s->lfd = -1;

	pthread_mutex_lock(&s->mu);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += STOP_GRACE_MS / 1000;
	ts.tv_nsec += (long)(STOP_GRACE_MS % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (s->nconns > 0) {
		if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
			break;
	}
	struct http_conn *c;
	TAILQ_FOREACH(c, &s->active, link)
		shutdown(c->fd, SHUT_RDWR);
	while (s->nconns > 0 || s->nthreads > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);

	LOG_INFO("http %s: stopped", s->name);
	server_free(s);
}

void
http_server_get_stats(struct http_server *s, struct http_server_stats *st)
{
	pthread_mutex_lock(&s->mu);
	st->open_conns = s->nconns;
	st->idle_conns = s->nparked;
	st->threads = s->nthreads;
	pthread_mutex_unlock(&s->mu);
	st->rejected_total = __atomic_load_n(&s->rejected, __ATOMIC_RELAXED);
	st->shed_total = __atomic_load_n(&s->shed, __ATOMIC_RELAXED);
}
