/*
 * http_server.c: the HTTP/1.1 server (see http_server.h).
 *
 * Threads: one acceptor thread per server blocks in accept(2) and spawns a
 * detached thread (256 KiB stack) per connection; http_server_stop() runs
 * on the owner's thread.  Each connection thread reads request heads, runs
 * the handler (the http_resp_* and http_read_body calls come from that
 * same thread, so struct http_conn needs no lock) and writes responses.
 *
 * Shared state is only the server's connection list and counters, guarded
 * by srv->mu; functions named do_*_locked expect it held.
 *
 * Invariants:
 *  - A connection owns one buffer, allocated once: HTTP_MAX_HEAD bytes for
 *    the head, CONN_STAGE bytes of slack for body framing, CONN_OBUF bytes
 *    of pending output.  Nothing is allocated per request.
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
#define DISCARD_MAX (1024 * 1024)  /* unread body drained to keep a conn */
#define LINGER_MS 1000             /* drain after our close (see below) */
#define LINGER_MAX (1024 * 1024)
#define STOP_GRACE_MS 2000         /* busy handlers get this long at stop */
#define CHUNK_TRAILERS_MAX 64

struct http_server {
	struct http_server_cfg cfg;
	char *host;
	char *name;
	int lfd;
	int port;
	http_handler_fn fn;
	void *arg;
	pthread_t acceptor;

	pthread_mutex_t mu;
	pthread_cond_t cv;    /* signalled when nconns drops */
	struct http_conn *conns; /* live connections, under mu */
	int nconns;           /* under mu */
	int stopping;         /* written under mu, read atomically */
	int64_t rejected;     /* connections refused (cap, no memory); atomic */
};

enum body_state { BODY_NONE, BODY_PENDING, BODY_DONE, BODY_ERROR };

struct http_conn {
	struct http_server *srv;
	struct http_conn *prev, *next; /* srv->conns, under srv->mu */
	int fd;
	int busy; /* in a handler; under srv->mu */
	char peer[INET6_ADDRSTRLEN + 8];
	int loopback;

	char *buf;       /* HTTP_MAX_HEAD + CONN_STAGE */
	size_t cap;
	size_t rpos, rlen;
	size_t head_len;
	char *obuf;      /* CONN_OBUF */
	size_t olen;

	struct http_request req;

	/* request body */
	enum body_state body;
	int body_chunked;
	int64_t body_left;  /* Content-Length bytes not yet consumed */
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

static void
maybe_send_continue(struct http_conn *c)
{
	if (!c->req.expect_continue || c->continue_sent || c->started)
		return;
	static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
	c->continue_sent = 1;
	send_pending_with(c, msg, sizeof(msg) - 1, NULL, 0, 0);
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

/* Reads exactly n bytes: from the stage first, then straight into p. */
static int
body_read_exact(struct http_conn *c, char *p, size_t n)
{
	size_t have = c->rlen - c->rpos;
	size_t take = have < n ? have : n;
	memcpy(p, c->buf + c->rpos, take);
	c->rpos += take;
	size_t got = take;
	while (got < n) {
		ssize_t r = conn_recv(c, p + got, n - got,
		    now_ms() + c->srv->cfg.io_timeout_ms);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0)
			return (int)r;
		got += (size_t)r;
	}
	return 0;
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

static ssize_t
read_chunked_body(struct http_conn *c, char *buf, size_t limit)
{
	size_t total = 0;
	for (;;) {
		const char *line;
		size_t ll;
		uint64_t sz;
		int r = stage_line(c, &line, &ll);
		if (r < 0)
			return r;
		if (parse_chunk_size(line, ll, &sz) < 0)
			return -EPROTO;
		if (sz == 0)
			break;
		if (sz > limit - total)
			return -E2BIG;
		r = body_read_exact(c, buf + total, (size_t)sz);
		if (r < 0)
			return r;
		total += (size_t)sz;
		r = stage_line(c, &line, &ll);
		if (r < 0)
			return r;
		if (ll != 0)
			return -EPROTO;
	}
	/* Trailer fields are read and ignored, up to an empty line. */
	for (int i = 0;; i++) {
		const char *line;
		size_t ll;
		int r = stage_line(c, &line, &ll);
		if (r < 0)
			return r;
		if (ll == 0)
			break;
		if (i >= CHUNK_TRAILERS_MAX)
			return -EPROTO;
	}
	return (ssize_t)total;
}

ssize_t
http_read_body(struct http_conn *c, void *buf, size_t cap)
{
	if (c->body == BODY_ERROR)
		return c->body_err;
	if (c->body != BODY_PENDING)
		return 0;
	size_t limit = cap < c->srv->cfg.max_body ? cap : c->srv->cfg.max_body;
	if (!c->body_chunked) {
		/* Known length: refuse before reading (or inviting) a byte. */
		if ((uint64_t)c->body_left > limit)
			return -E2BIG;
		maybe_send_continue(c);
		size_t n = (size_t)c->body_left;
		int r = body_read_exact(c, buf, n);
		if (r < 0) {
			c->body = BODY_ERROR;
			c->body_err = r;
			return r;
		}
		c->body_left = 0;
		c->body = BODY_DONE;
		return (ssize_t)n;
	}
	maybe_send_continue(c);
	ssize_t n = read_chunked_body(c, buf, limit);
	if (n < 0) {
		c->body = BODY_ERROR;
		c->body_err = (int)n;
		return n;
	}
	c->body = BODY_DONE;
	return n;
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
	if (c->req.expect_continue && !c->continue_sent)
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
	if (c->req.expect_continue && !c->continue_sent)
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
		if (c->req.version_minor >= 1)
			c->resp_chunked = 1;
		else
			c->resp_eof = 1; /* HTTP/1.0 has no chunked */
	}
	c->keep_alive = c->req.keep_alive && !c->close_after && !c->resp_eof &&
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
	    c->req.version_minor >= 1)) {
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

/* --- connection thread -------------------------------------------------- */

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
 * Reads until buf holds a complete head.  Until its first byte arrives the
 * idle deadline applies; the whole head must then arrive by the header
 * deadline, which runs from that first byte unless header_deadline is
 * already set (> 0: a new connection, or pipelined bytes waiting).
 * Returns the head length, 0 when the connection should just close (EOF,
 * idle timeout, error), or a negative status to answer with.
 */
static int
read_head(struct http_conn *c, int64_t idle_deadline, int64_t header_deadline)
{
	if (c->rlen > 0) {
		int r = http_parse_request(c->buf, c->rlen, &c->req);
		if (r != 0)
			return r;
	}
	for (;;) {
		int64_t deadline = c->rlen == 0 && header_deadline == 0 ?
		    idle_deadline : header_deadline;
		ssize_t r = conn_recv(c, c->buf + c->rlen, c->cap - c->rlen,
		    deadline);
		if (r == -ETIMEDOUT)
			return c->rlen > 0 ? -408 : 0;
		if (r <= 0)
			return 0;
		if (header_deadline == 0)
			header_deadline = now_ms() + c->srv->cfg.header_timeout_ms;
		size_t old = c->rlen;
		c->rlen += (size_t)r;
		/* Reparse only on a new line or at a limit, so a client
		 * trickling bytes cannot make us rescan the head each time. */
		int has_lf = memchr(c->buf + old, '\n', (size_t)r) != NULL;
		int at_limit = c->rlen >= HTTP_MAX_HEAD ||
		    (old <= HTTP_MAX_LINE + 1 && c->rlen > HTTP_MAX_LINE + 1);
		if (!has_lf && !at_limit)
			continue;
		int p = http_parse_request(c->buf, c->rlen, &c->req);
		if (p != 0)
			return p;
	}
}

static void
request_reset(struct http_conn *c)
{
	c->head_len = 0;
	c->body = BODY_NONE;
	c->body_chunked = 0;
	c->body_left = 0;
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

static void
conn_serve(struct http_conn *c)
{
	struct http_server *s = c->srv;
	/* A new connection's first head is due header_timeout after accept. */
	int64_t header_deadline = now_ms() + s->cfg.header_timeout_ms;
	int64_t idle_deadline = header_deadline;
	int need_linger = 0;

	for (;;) {
		request_reset(c);
		c->close_after = 0;
		c->io_err = 0;
		int h = read_head(c, idle_deadline, header_deadline);
		if (h == 0)
			break;
		if (h < 0) {
			LOG_DEBUG("http %s: %s: request head rejected with %d",
			    s->name, c->peer, -h);
			c->req.version_minor = 1;
			c->req.keep_alive = 0;
			c->head_len = c->rlen; /* keep the stage out of the way */
			c->rpos = c->rlen;
			send_error_response(c, -h);
			need_linger = !c->io_err;
			break;
		}
		c->head_len = (size_t)h;
		c->rpos = (size_t)h;
		c->is_head = c->req.method_len == 4 &&
		    memcmp(c->req.method, "HEAD", 4) == 0;
		if (c->req.chunked) {
			c->body = BODY_PENDING;
			c->body_chunked = 1;
		} else if (c->req.content_length > 0) {
			c->body = BODY_PENDING;
			c->body_left = c->req.content_length;
		}

		pthread_mutex_lock(&s->mu);
		int stop = s->stopping;
		c->busy = !stop;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			break;

		s->fn(c, &c->req, s->arg);

		int reuse = finish_response(c);
		pthread_mutex_lock(&s->mu);
		c->busy = 0;
		if (s->stopping)
			reuse = 0;
		pthread_mutex_unlock(&s->mu);

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
		int64_t now = now_ms();
		idle_deadline = now + s->cfg.idle_timeout_ms;
		header_deadline = left > 0 ? now + s->cfg.header_timeout_ms :
		    0; /* starts with the next request's first byte */
	}
	if (need_linger)
		lingering_close(c);
}

static void
conn_unlink_locked(struct http_server *s, struct http_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

static void *
conn_thread(void *arg)
{
	struct http_conn *c = arg;
	struct http_server *s = c->srv;

	c->cap = HTTP_MAX_HEAD + CONN_STAGE;
	c->buf = malloc(c->cap + CONN_OBUF);
	if (c->buf) {
		c->obuf = c->buf + c->cap;
		conn_serve(c);
	} else {
		LOG_WARN("http %s: out of memory for connection from %s",
		    s->name, c->peer);
	}
	LOG_DEBUG("http %s: connection from %s closed", s->name, c->peer);

	/* Close under the lock so stop never shuts down a reused fd. */
	pthread_mutex_lock(&s->mu);
	close(c->fd);
	conn_unlink_locked(s, c);
	s->nconns--;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	/* From here on s may be freed: touch only c. */
	free(c->buf);
	free(c);
	return NULL;
}

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

static void
reject_busy(int fd)
{
	static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n";
	ssize_t w = send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)w;
	shutdown(fd, SHUT_WR);
	close(fd);
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

static void
reject_conn(struct http_server *s, int fd)
{
	__atomic_add_fetch(&s->rejected, 1, __ATOMIC_RELAXED);
	reject_busy(fd);
}

static void
spawn_conn(struct http_server *s, int fd, const struct sockaddr_storage *ss)
{
	pthread_mutex_lock(&s->mu);
	if (s->stopping || s->nconns >= s->cfg.max_conns) {
		pthread_mutex_unlock(&s->mu);
		reject_conn(s, fd);
		return;
	}
	pthread_mutex_unlock(&s->mu);

	struct http_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		reject_conn(s, fd);
		return;
	}
	c->srv = s;
	c->fd = fd;
	fill_peer(c, ss);
	conn_setup_socket(s, fd);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, CONN_STACK_SIZE);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

	pthread_mutex_lock(&s->mu);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	pthread_t t;
	int e = pthread_create(&t, &attr, conn_thread, c);
	if (e != 0) {
		conn_unlink_locked(s, c);
		s->nconns--;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	pthread_attr_destroy(&attr);
	if (e != 0) {
		LOG_WARN("http %s: cannot start connection thread: %s", s->name,
		    strerror(e));
		reject_conn(s, fd);
		free(c);
	}
}

static void *
acceptor_thread(void *arg)
{
	struct http_server *s = arg;
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0) {
			if (server_stopping(s))
				break;
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EPROTO)
				continue;
			/* EMFILE and friends: back off instead of spinning. */
			LOG_WARN("http %s: accept: %s", s->name, strerror(errno));
			poll(NULL, 0, 100);
			continue;
		}
		if (server_stopping(s)) {
			close(fd);
			break;
		}
		spawn_conn(s, fd, &ss);
	}
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
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
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

struct http_server *
http_server_start(const struct http_server_cfg *cfg, http_handler_fn fn,
    void *arg, char **err)
{
	VAS_ASSERT(cfg && fn);
	/* sendfile(2) has no MSG_NOSIGNAL: a vanished client must not kill
	 * the process. */
	signal(SIGPIPE, SIG_IGN);

	struct http_server *s = calloc(1, sizeof(*s));
	if (!s) {
		set_err(err, "%s%s", "out of memory", "");
		return NULL;
	}
	s->cfg = *cfg;
	if (s->cfg.max_conns <= 0)
		s->cfg.max_conns = 4096;
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
	s->lfd = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	if (!s->host || !s->name) {
		set_err(err, "%s%s", "out of memory", "");
		goto fail;
	}
	if (open_listener(s, err) < 0)
		goto fail;
	int e = pthread_create(&s->acceptor, NULL, acceptor_thread, s);
	if (e != 0) {
		set_err(err, "cannot start acceptor thread: %s%s", strerror(e), "");
		goto fail;
	}
	LOG_INFO("http %s: listening on %s port %d", s->name, s->host, s->port);
	return s;
fail:
	if (s->lfd >= 0)
		close(s->lfd);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->host);
	free(s->name);
	free(s);
	return NULL;
}

int
http_server_port(const struct http_server *s)
{
	return s->port;
}

/* Shuts down connections; busy ones only when all_conns. */
static void
do_shutdown_conns_locked(struct http_server *s, int all_conns)
{
	for (struct http_conn *c = s->conns; c; c = c->next)
		if (all_conns || !c->busy)
			shutdown(c->fd, SHUT_RDWR);
}

void
http_server_stop(struct http_server **sp)
{
	struct http_server *s = *sp;
	if (!s)
		return;
	*sp = NULL;

	pthread_mutex_lock(&s->mu);
	__atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->mu);
	/* Wakes the blocking accept(2). */
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->acceptor, NULL);
	close(s->lfd);

	/* Idle connections go now; running handlers get a grace period to
	 * finish their response, then their sockets are shut down too. */
	pthread_mutex_lock(&s->mu);
	do_shutdown_conns_locked(s, 0);
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
	do_shutdown_conns_locked(s, 1);
	while (s->nconns > 0)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);

	LOG_INFO("http %s: stopped", s->name);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->host);
	free(s->name);
	free(s);
}

void
http_server_get_stats(struct http_server *s, struct http_server_stats *st)
{
	pthread_mutex_lock(&s->mu);
	st->open_conns = s->nconns;
	pthread_mutex_unlock(&s->mu);
	st->rejected_total = __atomic_load_n(&s->rejected, __ATOMIC_RELAXED);
}
