/*
 * test_http_server.c: the HTTP server end to end over loopback, with raw
 * client sockets: keep-alive, pipelining, HEAD, chunked and sendfile
 * responses, request bodies (Content-Length, chunked, 100-continue,
 * limits), error statuses, slow-loris and idle timeouts, many concurrent
 * connections, idle connections parked without a thread, the caps (per
 * server and per client address: the oldest idle connection is shed, 503
 * only when all are busy), client disconnects and stop.
 * The test handler runs on server connection threads; everything it
 * shares is read-only after setup.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/util.h"
#include "http/http_server.h"
#include "tap.h"

#define BIG_FILE_SIZE (64u * 1024 * 1024)

static struct http_server *srv;
static int srv_port;
static int file_fd = -1;         /* small random file */
static size_t file_size;
static unsigned char *file_data;
static int big_fd = -1;          /* large sparse-ish file for disconnects */
static volatile int handler_calls;
static int hold_gate;            /* /hold waits while 1 (atomic) */
static int holding;              /* /hold handlers running (atomic) */

/* What the last /stream request saw (written by the handler thread). */
static int stream_done;     /* /stream requests finished (atomic) */
static ssize_t stream_rc;   /* its last http_body_read return (atomic) */

/* --- the test handler ---------------------------------------------------- */

static long
query_num(const struct http_request *req, const char *name, long dflt)
{
	const char *v;
	size_t vl;
	if (!http_query_get(req->query, req->query_len, name, &v, &vl))
		return dflt;
	char tmp[32];
	if (vl >= sizeof(tmp))
		return dflt;
	memcpy(tmp, v, vl);
	tmp[vl] = 0;
	return strtol(tmp, NULL, 10);
}

static int
path_is(const struct http_request *req, const char *p)
{
	return req->path_len == strlen(p) && memcmp(req->path, p, req->path_len) == 0;
}

/*
 * /stream?cap=N&stop=M&early=1: streams the body with http_body_read in
 * reads of at most N bytes (default 7) and answers what it saw: "n=<bytes>
 * crc=<crc32c> max=<largest read> rc=<last return> pend=<pending>".
 * stop=M answers after M bytes, leaving the rest unread; early=1 answers
 * 403 before reading anything.  Read errors are answered 400 "err <rc>".
 */
static void
stream_handler(struct http_conn *c, const struct http_request *req)
{
	size_t cap = (size_t)query_num(req, "cap", 7);
	long stop = query_num(req, "stop", -1);
	char *buf = malloc(cap ? cap : 1);
	size_t total = 0, max = 0;
	uint32_t crc = 0;
	ssize_t n = 0;
	int pend0 = http_body_pending(c);
	if (query_num(req, "early", 0)) {
		__atomic_add_fetch(&stream_done, 1, __ATOMIC_RELEASE);
		http_resp_simple(c, 403, NULL, "text/plain", "no", 2);
		free(buf);
		return;
	}
	for (;;) {
		if (stop >= 0 && total >= (size_t)stop)
			break;
		n = http_body_read(c, buf, cap);
		if (n <= 0)
			break;
		if ((size_t)n > cap)
			n = -1000; /* never: more than asked */
		total += (size_t)n;
		if ((size_t)n > max)
			max = (size_t)n;
		crc = crc32c(crc, buf, (size_t)n);
	}
	/* Counted before the answer goes out: a test that has read the
	 * answer and goes on must never see this request finish later
	 * (stream_client_gone once took the -EPROTO of the request before). */
	__atomic_store_n(&stream_rc, n, __ATOMIC_RELEASE);
	__atomic_add_fetch(&stream_done, 1, __ATOMIC_RELEASE);
	char msg[160];
	int l;
	if (n < 0) {
		l = snprintf(msg, sizeof(msg), "err %zd", n);
		http_resp_simple(c, 400, NULL, "text/plain", msg, (size_t)l);
	} else {
		/* after the end, reads keep returning 0 */
		ssize_t again = stop < 0 ? http_body_read(c, buf, cap) : 0;
		l = snprintf(msg, sizeof(msg), "n=%zu crc=%08x max=%zu rc=%zd "
		    "pend=%d%d", total, crc, max, again, pend0,
		    http_body_pending(c));
		http_resp_simple(c, 200, NULL, "text/plain", msg, (size_t)l);
	}
	free(buf);
}

static void
test_handler(struct http_conn *c, const struct http_request *req, void *arg)
{
	__atomic_add_fetch(&handler_calls, 1, __ATOMIC_RELAXED);
	if (path_is(req, "/hello")) {
		http_resp_simple(c, 200, "X-Test: 1\r\n", "text/plain",
		    "hello world", 11);
	} else if (path_is(req, "/chunked")) {
		http_resp_start(c, 200, NULL, -1);
		http_resp_body(c, "abc", 3);
		http_resp_body(c, "defgh", 5);
		http_resp_end(c);
	} else if (path_is(req, "/file")) {
		long off = query_num(req, "off", 0);
		long len = query_num(req, "len", (long)file_size - off);
		int chunked = query_num(req, "chunked", 0) != 0;
		http_resp_start(c, 200, "Content-Type: application/octet-stream\r\n",
		    chunked ? -1 : len);
		if (chunked) {
			/* two pieces: one sendfile chunk, one memory chunk */
			long half = len / 2;
			http_resp_sendfile(c, file_fd, off, (size_t)half);
			http_resp_body(c, file_data + off + half, (size_t)(len - half));
		} else {
			http_resp_sendfile(c, file_fd, off, (size_t)len);
		}
		http_resp_end(c);
	} else if (path_is(req, "/big")) {
		http_resp_start(c, 200, NULL, BIG_FILE_SIZE);
		http_resp_sendfile(c, big_fd, 0, BIG_FILE_SIZE);
		http_resp_end(c);
	} else if (path_is(req, "/echo")) {
		size_t cap = (size_t)query_num(req, "cap", 1 << 20);
		char *buf = malloc(cap ? cap : 1);
		ssize_t n = http_read_body(c, buf, cap);
		if (n == -E2BIG) {
			http_resp_simple(c, 413, NULL, "text/plain", "E2BIG", 5);
		} else if (n < 0) {
			char msg[64];
			int l = snprintf(msg, sizeof(msg), "err %zd", n);
			http_resp_simple(c, 400, NULL, "text/plain", msg, (size_t)l);
		} else {
			/* a second read returns 0: the body was consumed */
			char extra[64];
			snprintf(extra, sizeof(extra), "X-Second-Read: %zd\r\n",
			    http_read_body(c, buf, cap));
			http_resp_simple(c, 200, extra, NULL, buf, (size_t)n);
		}
		free(buf);
	} else if (path_is(req, "/stream")) {
		stream_handler(c, req);
	} else if (path_is(req, "/noresp")) {
		/* returns without responding: the server sends 500 */
	} else if (path_is(req, "/short")) {
		http_resp_start(c, 200, NULL, 10);
		http_resp_body(c, "12345", 5);
	} else if (path_is(req, "/toolong")) {
		http_resp_start(c, 200, NULL, 3);
		int r = http_resp_body(c, "12345", 5);
		char b[8];
		int l = snprintf(b, sizeof(b), "%d", r == -EINVAL);
		http_resp_body(c, b, (size_t)l);
		http_resp_body(c, "xy", 2);
		http_resp_end(c);
	} else if (path_is(req, "/peer")) {
		char b[128];
		int l = snprintf(b, sizeof(b), "%s %d", http_conn_peer(c),
		    http_conn_is_loopback(c));
		http_resp_simple(c, 200, NULL, "text/plain", b, (size_t)l);
	} else if (path_is(req, "/sleep")) {
		long ms = query_num(req, "ms", 100);
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		http_resp_simple(c, 200, NULL, "text/plain", "slept", 5);
	} else if (path_is(req, "/hold")) {
		/* a request in progress until the test opens the gate */
		__atomic_add_fetch(&holding, 1, __ATOMIC_ACQ_REL);
		for (int i = 0; i < 3000 &&
		    __atomic_load_n(&hold_gate, __ATOMIC_ACQUIRE); i++) {
			struct timespec ts = {0, 5 * 1000000L};
			nanosleep(&ts, NULL);
		}
		__atomic_sub_fetch(&holding, 1, __ATOMIC_ACQ_REL);
		http_resp_simple(c, 200, NULL, "text/plain", "slept", 5);
	} else if (path_is(req, "/nobody")) {
		http_resp_start(c, query_num(req, "s", 204), NULL, 0);
		http_resp_end(c);
	} else if (path_is(req, "/bigheaders")) {
		/* extra headers larger than the server's pending buffer */
		size_t n = 20000;
		char *h = malloc(n + 32);
		memcpy(h, "X-Big: ", 7);
		memset(h + 7, 'h', n);
		memcpy(h + 7 + n, "\r\n", 3);
		http_resp_start(c, 200, h, 2);
		free(h); /* the server must not keep the pointer */
		http_resp_body(c, "ok", 2);
		http_resp_end(c);
	} else {
		http_resp_simple(c, 404, NULL, "text/plain", "nope", 4);
	}
}

/* --- a small raw client ------------------------------------------------- */

struct client {
	int fd;
	char buf[256 * 1024];
	size_t len;
};

struct resp {
	int status;
	char head[32768];
	unsigned char *body;
	size_t body_len;
	int closed; /* connection reached EOF after this response */
};

static int
connect_port(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static struct client *
client_new(int port)
{
	struct client *cl = calloc(1, sizeof(*cl));
	cl->fd = connect_port(port);
	return cl;
}

static void
client_free(struct client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl);
}

static int
send_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
send_str(struct client *cl, const char *s)
{
	return send_all(cl->fd, s, strlen(s));
}

/* More bytes into cl->buf; 0 on EOF/error/timeout. */
static ssize_t
client_fill(struct client *cl)
{
	if (cl->len == sizeof(cl->buf))
		return 0;
	ssize_t r;
	do
		r = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len, 0);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return 0;
	cl->len += (size_t)r;
	return r;
}

static void
client_consume(struct client *cl, size_t n)
{
	memmove(cl->buf, cl->buf + n, cl->len - n);
	cl->len -= n;
}

static int
client_line(struct client *cl, char *out, size_t cap)
{
	for (;;) {
		char *lf = memchr(cl->buf, '\n', cl->len);
		if (lf) {
			size_t n = (size_t)(lf - cl->buf);
			size_t l = n > 0 && cl->buf[n - 1] == '\r' ? n - 1 : n;
			if (l >= cap)
				return -1;
			memcpy(out, cl->buf, l);
			out[l] = 0;
			client_consume(cl, n + 1);
			return 0;
		}
		if (client_fill(cl) == 0)
			return -1;
	}
}

static int
client_bytes(struct client *cl, unsigned char *out, size_t n)
{
	while (cl->len < n && cl->len < sizeof(cl->buf))
		if (client_fill(cl) == 0)
			break;
	size_t got = 0;
	while (got < n) {
		if (cl->len == 0 && client_fill(cl) == 0)
			return -1;
		size_t take = cl->len < n - got ? cl->len : n - got;
		memcpy(out + got, cl->buf, take);
		client_consume(cl, take);
		got += take;
	}
	return 0;
}

static const char *
head_get(const struct resp *r, const char *name)
{
	static __thread char val[1024];
	size_t nl = strlen(name);
	const char *p = r->head;
	while ((p = strchr(p, '\n')) != NULL) {
		p++;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			size_t l = strcspn(v, "\r\n");
			if (l >= sizeof(val))
				l = sizeof(val) - 1;
			memcpy(val, v, l);
			val[l] = 0;
			return val;
		}
	}
	return NULL;
}

static void
resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* Reads one response; 0 on success, -1 on a short or broken one. */
static int
read_response(struct client *cl, struct resp *r, int is_head)
{
	memset(r, 0, sizeof(*r));
	char line[32768];
	size_t hl = 0;
	for (;;) {
		if (client_line(cl, line, sizeof(line)) < 0)
			return -1;
		size_t l = strlen(line);
		if (hl + l + 3 >= sizeof(r->head))
			return -1;
		memcpy(r->head + hl, line, l);
		memcpy(r->head + hl + l, "\r\n", 3);
		hl += l + 2;
		if (l == 0)
			break;
	}
	if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
		return -1;
	if (r->status == 100) /* interim: caller reads the final one */
		return 0;
	const char *cl_s = head_get(r, "Content-Length");
	const char *te = head_get(r, "Transfer-Encoding");
	int no_body = is_head || r->status == 204 || r->status == 304;
	if (no_body) {
		r->body = malloc(1);
	} else if (cl_s) {
		size_t n = strtoull(cl_s, NULL, 10);
		r->body = malloc(n + 1);
		r->body_len = n;
		if (client_bytes(cl, r->body, n) < 0)
			return -1;
	} else if (te && strcasecmp(te, "chunked") == 0) {
		size_t cap = 8 << 20;
		r->body = malloc(cap);
		for (;;) {
			if (client_line(cl, line, sizeof(line)) < 0)
				return -1;
			size_t n = strtoul(line, NULL, 16);
			if (n == 0)
				break;
			if (r->body_len + n > cap)
				return -1;
			if (client_bytes(cl, r->body + r->body_len, n) < 0)
				return -1;
			r->body_len += n;
			if (client_line(cl, line, sizeof(line)) < 0 || line[0])
				return -1;
		}
		if (client_line(cl, line, sizeof(line)) < 0 || line[0])
			return -1;
	} else {
		/* delimited by close */
		size_t cap = 8 << 20;
		r->body = malloc(cap);
		while (client_fill(cl) > 0)
			;
		memcpy(r->body, cl->buf, cl->len);
		r->body_len = cl->len;
		cl->len = 0;
		r->closed = 1;
	}
	return 0;
}

/* 1 if the server closed the connection (EOF) within ms. */
static int
wait_eof(int fd, int ms)
{
	int64_t end = now_ms() + ms;
	char b[4096];
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)(end - now_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return 0;
		ssize_t r = recv(fd, b, sizeof(b), 0);
		if (r == 0)
			return 1;
		if (r < 0 && errno != EINTR && errno != EAGAIN)
			return errno == ECONNRESET;
	}
}

static int
body_is(const struct resp *r, const char *s)
{
	return r->body && r->body_len == strlen(s) &&
	    memcmp(r->body, s, r->body_len) == 0;
}

static int
simple_request(const char *req, struct resp *r, int is_head)
{
	struct client *cl = client_new(srv_port);
	int rc = -1;
	if (cl->fd >= 0 && send_str(cl, req) == 0)
		rc = read_response(cl, r, is_head);
	client_free(cl);
	return rc;
}

/* A server of the test's own, with the test handler. */
static struct http_server *
start_cfg(struct http_server_cfg *cfg)
{
	char *err = NULL;
	struct http_server *s = http_server_start(cfg, test_handler, NULL, &err);
	if (!s) {
		fprintf(stderr, "server start: %s\n", err ? err : "?");
		free(err);
	}
	return s;
}

/* --- tests --------------------------------------------------------------- */

TEST(keepalive_two_gets)
{
	struct client *cl = client_new(srv_port);
	struct resp r;
	for (int i = 0; i < 2; i++) {
		CHECK(send_str(cl, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n") == 0);
		CHECK(read_response(cl, &r, 0) == 0);
		CHECK_EQ_INT(r.status, 200);
		CHECK(body_is(&r, "hello world"));
		CHECK_EQ_STR(head_get(&r, "Connection"), "keep-alive");
		CHECK_EQ_STR(head_get(&r, "Server"), "ferry");
		CHECK_EQ_STR(head_get(&r, "Content-Type"), "text/plain");
		CHECK_EQ_STR(head_get(&r, "X-Test"), "1");
		CHECK(head_get(&r, "Date") != NULL);
		resp_free(&r);
	}
	/* Connection: close is honoured */
	CHECK(send_str(cl, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_STR(head_get(&r, "Connection"), "close");
	resp_free(&r);
	CHECK(wait_eof(cl->fd, 2000));
	client_free(cl);
}

TEST(pipelined_requests)
{
	struct client *cl = client_new(srv_port);
	CHECK(send_str(cl, "GET /hello HTTP/1.1\r\n\r\nGET /chunked HTTP/1.1\r\n\r\n"
	    "POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"
	    "GET /nope HTTP/1.1\r\n\r\n") == 0);
	struct resp r;
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	resp_free(&r);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "abcdefgh"));
	resp_free(&r);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "abcd"));
	resp_free(&r);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 404);
	resp_free(&r);
	client_free(cl);
}

TEST(head_has_no_body)
{
	struct client *cl = client_new(srv_port);
	struct resp r;
	CHECK(send_str(cl, "HEAD /hello HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 1) == 0);
	CHECK_EQ_INT(r.status, 200);
	CHECK_EQ_STR(head_get(&r, "Content-Length"), "11");
	resp_free(&r);
	CHECK(send_str(cl, "HEAD /file HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 1) == 0);
	char want[32];
	snprintf(want, sizeof(want), "%zu", file_size);
	CHECK_EQ_STR(head_get(&r, "Content-Length"), want);
	resp_free(&r);
	CHECK(send_str(cl, "HEAD /chunked HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 1) == 0);
	CHECK_EQ_STR(head_get(&r, "Transfer-Encoding"), "chunked");
	resp_free(&r);
	/* no stray body bytes: the next response parses cleanly */
	CHECK(send_str(cl, "GET /hello HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	resp_free(&r);
	/* 204 carries no framing and no body */
	CHECK(send_str(cl, "GET /nobody HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 204);
	CHECK(head_get(&r, "Content-Length") == NULL);
	resp_free(&r);
	CHECK(send_str(cl, "GET /nobody?s=304 HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 304);
	CHECK(head_get(&r, "Content-Length") == NULL);
	CHECK(head_get(&r, "Transfer-Encoding") == NULL);
	resp_free(&r);
	CHECK(send_str(cl, "GET /hello HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	resp_free(&r);
	client_free(cl);
}

TEST(chunked_response)
{
	struct resp r;
	CHECK(simple_request("GET /chunked HTTP/1.1\r\n\r\n", &r, 0) == 0);
	CHECK_EQ_INT(r.status, 200);
	CHECK_EQ_STR(head_get(&r, "Transfer-Encoding"), "chunked");
	CHECK(head_get(&r, "Content-Length") == NULL);
	CHECK(body_is(&r, "abcdefgh"));
	resp_free(&r);
	/* HTTP/1.0 gets no chunking: body until close */
	CHECK(simple_request("GET /chunked HTTP/1.0\r\n\r\n", &r, 0) == 0);
	CHECK(head_get(&r, "Transfer-Encoding") == NULL);
	CHECK_EQ_STR(head_get(&r, "Connection"), "close");
	CHECK(r.closed);
	CHECK(body_is(&r, "abcdefgh"));
	resp_free(&r);
}

TEST(sendfile_bytes_equal)
{
	struct client *cl = client_new(srv_port);
	struct resp r;
	CHECK(send_str(cl, "GET /file HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 200);
	CHECK_EQ_INT(r.body_len, file_size);
	CHECK(r.body && memcmp(r.body, file_data, file_size) == 0);
	resp_free(&r);
	/* a range, on the same connection */
	CHECK(send_str(cl, "GET /file?off=12345&len=100000 HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.body_len, 100000);
	CHECK(r.body && memcmp(r.body, file_data + 12345, 100000) == 0);
	resp_free(&r);
	/* chunked: a sendfile chunk followed by a memory chunk */
	CHECK(send_str(cl, "GET /file?chunked=1&off=7 HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_STR(head_get(&r, "Transfer-Encoding"), "chunked");
	CHECK_EQ_INT(r.body_len, file_size - 7);
	CHECK(r.body && memcmp(r.body, file_data + 7, file_size - 7) == 0);
	resp_free(&r);
	CHECK(send_str(cl, "GET /hello HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	resp_free(&r);
	client_free(cl);
}

TEST(large_extra_headers)
{
	struct resp r;
	CHECK(simple_request("GET /bigheaders HTTP/1.1\r\n\r\n", &r, 0) == 0);
	CHECK_EQ_INT(r.status, 200);
	const char *h = strstr(r.head, "\r\nX-Big: ");
	CHECK(h != NULL && strspn(h + 9, "h") == 20000 &&
	    memcmp(h + 9 + 20000, "\r\n", 2) == 0);
	CHECK(body_is(&r, "ok"));
	resp_free(&r);
}

TEST(post_bodies)
{
	struct client *cl = client_new(srv_port);
	struct resp r;
	/* Content-Length body, larger than the server's staging space */
	size_t n = 50000;
	char *body = malloc(n);
	for (size_t i = 0; i < n; i++)
		body[i] = (char)('a' + i % 26);
	char head[128];
	snprintf(head, sizeof(head), "PUT /echo HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", n);
	CHECK(send_str(cl, head) == 0);
	CHECK(send_all(cl->fd, body, n) == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 200);
	CHECK_EQ_INT(r.body_len, n);
	CHECK(r.body && memcmp(r.body, body, n) == 0);
	CHECK_EQ_STR(head_get(&r, "X-Second-Read"), "0");
	resp_free(&r);

	/* chunked body with an extension and a trailer */
	CHECK(send_str(cl, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5;ext=1\r\nhello\r\n1\r\n \r\nB\r\nchunked bod\r\n0\r\nX-Trailer: t\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 200);
	CHECK(body_is(&r, "hello chunked bod"));
	resp_free(&r);

	/* a large chunked body in many chunks, sent in one go */
	struct { char *p; size_t len; } big = {malloc(n * 2), 0};
	for (size_t off = 0; off < n; off += 3000) {
		size_t k = n - off < 3000 ? n - off : 3000;
		big.len += (size_t)sprintf(big.p + big.len, "%zx\r\n", k);
		memcpy(big.p + big.len, body + off, k);
		big.len += k;
		memcpy(big.p + big.len, "\r\n", 2);
		big.len += 2;
	}
	memcpy(big.p + big.len, "0\r\n\r\n", 5);
	big.len += 5;
	CHECK(send_str(cl, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == 0);
	CHECK(send_all(cl->fd, big.p, big.len) == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.body_len, n);
	CHECK(r.body && memcmp(r.body, body, n) == 0);
	resp_free(&r);
	free(big.p);

	/* Expect: 100-continue: the body is sent only after the 100 */
	CHECK(send_str(cl, "PUT /echo HTTP/1.1\r\nExpect: 100-continue\r\n"
	    "Content-Length: 6\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 100);
	CHECK(send_str(cl, "abcdef") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 200);
	CHECK(body_is(&r, "abcdef"));
	resp_free(&r);

	/* an unread body is discarded and the connection stays usable */
	CHECK(send_str(cl, "POST /hello HTTP/1.1\r\nContent-Length: 20000\r\n\r\n") == 0);
	CHECK(send_all(cl->fd, body, 20000) == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	CHECK_EQ_STR(head_get(&r, "Connection"), "keep-alive");
	resp_free(&r);
	CHECK(send_str(cl, "GET /hello HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	resp_free(&r);
	free(body);
	client_free(cl);
}

TEST(body_limits)
{
	struct resp r;
	/* over the server's max_body (64 KiB): refused unread, then the
	 * server drains it (under its 1 MiB bound) and keeps the connection */
	struct client *kc = client_new(srv_port);
	size_t bn = 100000;
	char *bb = calloc(1, bn);
	CHECK(send_str(kc, "PUT /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n") == 0);
	CHECK(send_all(kc->fd, bb, bn) == 0);
	CHECK(read_response(kc, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 413);
	CHECK(body_is(&r, "E2BIG"));
	CHECK_EQ_STR(head_get(&r, "Connection"), "keep-alive");
	resp_free(&r);
	CHECK(send_str(kc, "GET /hello HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(kc, &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	resp_free(&r);
	client_free(kc);
	free(bb);
	/* over the discard bound: refused and closed */
	CHECK(simple_request("PUT /echo HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n",
	    &r, 0) == 0);
	CHECK_EQ_INT(r.status, 413);
	CHECK_EQ_STR(head_get(&r, "Connection"), "close");
	resp_free(&r);
	/* over the handler's cap */
	CHECK(simple_request("PUT /echo?cap=3 HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd",
	    &r, 0) == 0);
	CHECK_EQ_INT(r.status, 413);
	resp_free(&r);
	/* exactly the cap is fine */
	CHECK(simple_request("PUT /echo?cap=4 HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd",
	    &r, 0) == 0);
	CHECK_EQ_INT(r.status, 200);
	CHECK(body_is(&r, "abcd"));
	resp_free(&r);
	/* chunked over the cap */
	CHECK(simple_request("PUT /echo?cap=4 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", &r, 0) == 0);
	CHECK_EQ_INT(r.status, 413);
	CHECK_EQ_STR(head_get(&r, "Connection"), "close");
	resp_free(&r);
	/* broken chunk framing */
	CHECK(simple_request("PUT /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "zz\r\nabc\r\n0\r\n\r\n", &r, 0) == 0);
	CHECK_EQ_INT(r.status, 400);
	CHECK(body_is(&r, "err -71")); /* -EPROTO */
	resp_free(&r);
	/* too large with 100-continue: refused without a 100 */
	struct client *cl = client_new(srv_port);
	CHECK(send_str(cl, "PUT /echo HTTP/1.1\r\nExpect: 100-continue\r\n"
	    "Content-Length: 1000000\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 413);
	CHECK_EQ_STR(head_get(&r, "Connection"), "close");
	resp_free(&r);
	CHECK(wait_eof(cl->fd, 3000));
	client_free(cl);
}

TEST(error_statuses)
{
	static const struct { const char *req; int status; } cases[] = {
		{"GARBAGE\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400},
		{"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
		{"GET / HTTP/2.0\r\n\r\n", 505},
		{"PUT / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct client *cl = client_new(srv_port);
		struct resp r;
		CHECK(send_str(cl, cases[i].req) == 0);
		CHECK(read_response(cl, &r, 0) == 0);
		CHECK_EQ_INT(r.status, cases[i].status);
		CHECK_EQ_STR(head_get(&r, "Connection"), "close");
		CHECK(r.body_len > 0);
		resp_free(&r);
		CHECK(wait_eof(cl->fd, 3000));
		client_free(cl);
	}
}

TEST(oversized_431_414)
{
	size_t n = HTTP_MAX_HEAD + 6000;
	char *req = malloc(n + 64);
	size_t l = (size_t)sprintf(req, "GET / HTTP/1.1\r\n");
	while (l < n)
		l += (size_t)sprintf(req + l, "X-Pad-%05zu: %0100d\r\n", l, 0);
	memcpy(req + l, "\r\n", 3);
	struct client *cl = client_new(srv_port);
	CHECK(send_all(cl->fd, req, l + 2) == 0);
	struct resp r;
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 431);
	resp_free(&r);
	client_free(cl);

	/* a request line over HTTP_MAX_LINE */
	memcpy(req, "GET /", 5);
	memset(req + 5, 'a', HTTP_MAX_LINE + 100);
	cl = client_new(srv_port);
	CHECK(send_all(cl->fd, req, HTTP_MAX_LINE + 100) == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 414);
	resp_free(&r);
	client_free(cl);
	free(req);
}

TEST(handler_misbehaviour)
{
	struct resp r;
	/* no response: 500 */
	CHECK(simple_request("GET /noresp HTTP/1.1\r\n\r\n", &r, 0) == 0);
	CHECK_EQ_INT(r.status, 500);
	resp_free(&r);
	/* short body: the connection closes before Content-Length bytes */
	struct client *cl = client_new(srv_port);
	CHECK(send_str(cl, "GET /short HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == -1);
	resp_free(&r);
	client_free(cl);
	/* writing past Content-Length is refused, not sent */
	cl = client_new(srv_port);
	CHECK(send_str(cl, "GET /toolong HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "1xy"));
	resp_free(&r);
	CHECK(wait_eof(cl->fd, 3000));
	client_free(cl);
}

TEST(peer_and_loopback)
{
	struct resp r;
	CHECK(simple_request("GET /peer HTTP/1.1\r\n\r\n", &r, 0) == 0);
	CHECK(r.body_len > 12 && memcmp(r.body, "127.0.0.1:", 10) == 0);
	CHECK(r.body_len > 2 && memcmp(r.body + r.body_len - 2, " 1", 2) == 0);
	resp_free(&r);
}

TEST(slow_loris_closed)
{
	/* part of a head, then silence */
	struct client *cl = client_new(srv_port);
	int64_t t0 = now_ms();
	CHECK(send_str(cl, "GET /hello HTTP/1.1\r\nHost:") == 0);
	CHECK(wait_eof(cl->fd, 3000));
	int64_t dt = now_ms() - t0;
	CHECK(dt >= 250 && dt < 2000);
	client_free(cl);

	/* trickling a byte every 50 ms does not extend the deadline */
	cl = client_new(srv_port);
	t0 = now_ms();
	const char *s = "GET /hello HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	int closed = 0;
	for (size_t i = 0; s[i] && !closed; i++) {
		if (send(cl->fd, s + i, 1, MSG_NOSIGNAL) < 0)
			closed = 1;
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
		char b[512];
		if (recv(cl->fd, b, sizeof(b), MSG_DONTWAIT) >= 0 && now_ms() - t0 > 200)
			closed = 1; /* 408 or EOF arrived */
	}
	dt = now_ms() - t0;
	CHECK(closed);
	CHECK(dt >= 250 && dt < 1500);
	client_free(cl);

	/* an idle keep-alive connection lives past the header timeout
	 * (the idle timeout, 1500 ms, applies between requests) */
	cl = client_new(srv_port);
	struct resp r;
	CHECK(send_str(cl, "GET /hello HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	resp_free(&r);
	struct timespec ts = {0, 600 * 1000000L};
	nanosleep(&ts, NULL);
	CHECK(send_str(cl, "GET /hello HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	resp_free(&r);
	t0 = now_ms();
	CHECK(wait_eof(cl->fd, 4000));
	dt = now_ms() - t0;
	CHECK(dt >= 1300 && dt < 3000);
	client_free(cl);
}

TEST(concurrent_200)
{
	/* its own server: on a loaded machine, opening 200 connections can
	 * take longer than the shared server's 300 ms header timeout */
	struct http_server_cfg cfg = {.host = "127.0.0.1", .port = 0,
	    .name = "c200"};
	struct http_server *s = start_cfg(&cfg);
	CHECK(s != NULL);
	if (!s)
		return;
	enum { N = 200 };
	static struct client *cls[N];
	int ok = 0;
	for (int i = 0; i < N; i++)
		cls[i] = client_new(http_server_port(s));
	for (int i = 0; i < N; i++)
		send_str(cls[i], "GET /hello HTTP/1.1\r\n\r\n");
	for (int i = 0; i < N; i++) {
		struct resp r;
		if (read_response(cls[i], &r, 0) == 0 && r.status == 200 &&
		    body_is(&r, "hello world"))
			ok++;
		resp_free(&r);
	}
	CHECK_EQ_INT(ok, N);
	for (int i = 0; i < N; i++)
		client_free(cls[i]);
	http_server_stop(&s);
}

TEST(client_disconnect_mid_sendfile)
{
	for (int k = 0; k < 3; k++) {
		struct client *cl = client_new(srv_port);
		CHECK(send_str(cl, "GET /big HTTP/1.1\r\n\r\n") == 0);
		char b[65536];
		CHECK(recv(cl->fd, b, sizeof(b), 0) > 0);
		if (k == 1) {
			struct linger lg = {1, 0}; /* RST */
			setsockopt(cl->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		client_free(cl);
	}
	/* the server is alive and well */
	struct resp r;
	CHECK(simple_request("GET /hello HTTP/1.1\r\n\r\n", &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	resp_free(&r);
}

/* Connects from a given loopback source address ("127.0.0.2": another
 * client as far as the per-client cap is concerned). */
static struct client *
client_from(int port, const char *src)
{
	struct client *cl = calloc(1, sizeof(*cl));
	cl->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	inet_pton(AF_INET, src, &a.sin_addr);
	struct sockaddr_in d = {.sin_family = AF_INET,
	    .sin_port = htons((uint16_t)port)};
	d.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(cl->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    connect(cl->fd, (struct sockaddr *)&d, sizeof(d)) < 0) {
		close(cl->fd);
		cl->fd = -1;
		return cl;
	}
	struct timeval tv = {.tv_sec = 5};
	setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return cl;
}

/* One GET /hello on cl; 1 if answered 200 "hello world". */
static int
hello(struct client *cl)
{
	struct resp r;
	memset(&r, 0, sizeof(r));
	int ok = cl->fd >= 0 &&
	    send_str(cl, "GET /hello HTTP/1.1\r\n\r\n") == 0 &&
	    read_response(cl, &r, 0) == 0 && r.status == 200 &&
	    body_is(&r, "hello world");
	resp_free(&r);
	return ok;
}

static void
nap_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Polls the server's stats until open - idle == busy and idle == idle
 * (-1: any); 1 if seen within 10 s. */
static int
wait_stats(struct http_server *s, int busy, int idle)
{
	for (int i = 0; i < 1000; i++) {
		struct http_server_stats st;
		http_server_get_stats(s, &st);
		if ((busy < 0 || st.open_conns - st.idle_conns == busy) &&
		    (idle < 0 || st.idle_conns == idle))
			return 1;
		nap_ms(10);
	}
	return 0;
}

/* Polls until the server has shed n connections; 1 if seen within 10 s. */
static int
wait_shed(struct http_server *s, int n)
{
	for (int i = 0; i < 1000; i++) {
		struct http_server_stats st;
		http_server_get_stats(s, &st);
		if (st.shed_total >= n)
			return 1;
		nap_ms(10);
	}
	return 0;
}

/* Threads of this process, from /proc/self/status. */
static int
process_threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

struct sleeper {
	int port;
	const char *src; /* source address, NULL: 127.0.0.1 */
	int ms;          /* < 0: /hold, until release_holders() */
	int status;
	int ok;
};

/* Makes /hold requests wait (at most 15 s) until release_holders(). */
static void
hold_holders(void)
{
	__atomic_store_n(&hold_gate, 1, __ATOMIC_RELEASE);
}

static void
release_holders(void)
{
	__atomic_store_n(&hold_gate, 0, __ATOMIC_RELEASE);
}

/*
 * Polls until n /hold requests are in their handler; 1 if seen within 10 s.
 * The server's counts alone cannot say this: a connection whose request
 * has not arrived yet is parked (and may be shed by the next one), and a
 * closed idle one is busy for the moment its EOF is read.
 */
static int
wait_holding(int n)
{
	for (int i = 0; i < 1000; i++) {
		if (__atomic_load_n(&holding, __ATOMIC_ACQUIRE) == n)
			return 1;
		nap_ms(10);
	}
	return 0;
}

static void *
sleeper_thread(void *arg)
{
	struct sleeper *sl = arg;
	struct client *cl = sl->src ? client_from(sl->port, sl->src) :
	    client_new(sl->port);
	struct resp r;
	char req[64];
	if (sl->ms < 0)
		snprintf(req, sizeof(req), "GET /hold HTTP/1.1\r\n\r\n");
	else
		snprintf(req, sizeof(req), "GET /sleep?ms=%d HTTP/1.1\r\n\r\n",
		    sl->ms ? sl->ms : 400);
	send_str(cl, req);
	if (read_response(cl, &r, 0) == 0) {
		sl->status = r.status;
		if (body_is(&r, "slept") && head_get(&r, "Connection") &&
		    strcmp(head_get(&r, "Connection"), "close") == 0)
			sl->ok = 1;
	}
	resp_free(&r);
	client_free(cl);
	return NULL;
}

TEST(connection_cap_all_busy_503)
{
	struct http_server_cfg cfg = {.host = "127.0.0.1", .port = 0,
	    .max_conns = 2, .name = "cap"};
	struct http_server *s = start_cfg(&cfg);
	CHECK(s != NULL);
	if (!s)
		return;
	int port = http_server_port(s);
	/* both connections in a request: nothing to shed */
	struct sleeper sl[2] = {{port, NULL, -1, 0, 0}, {port, NULL, -1, 0, 0}};
	pthread_t t[2];
	hold_holders();
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, sleeper_thread, &sl[i]);
	CHECK(wait_holding(2));
	CHECK(wait_stats(s, 2, 0));
	struct client *c3 = client_new(port);
	struct resp r;
	CHECK(read_response(c3, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 503);
	resp_free(&r);
	CHECK(wait_eof(c3->fd, 2000));
	client_free(c3);
	release_holders();
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(sl[i].status, 200);
	}
	struct http_server_stats st;
	http_server_get_stats(s, &st);
	CHECK_EQ_INT(st.rejected_total, 1);
	CHECK_EQ_INT(st.shed_total, 0);
	/* once they are done, a new connection is served */
	struct client *d = client_new(port);
	CHECK(hello(d));
	client_free(d);
	http_server_stop(&s);
	CHECK(s == NULL);
}

TEST(cap_sheds_oldest_idle)
{
	struct http_server_cfg cfg = {.host = "127.0.0.1", .port = 0,
	    .max_conns = 3, .name = "shed"};
	struct http_server *s = start_cfg(&cfg);
	CHECK(s != NULL);
	if (!s)
		return;
	int port = http_server_port(s);
	struct client *c[5];
	/* three idle keep-alive connections, parked in this order */
	for (int i = 0; i < 3; i++) {
		c[i] = client_new(port);
		CHECK(hello(c[i]));
		CHECK(wait_stats(s, 0, i + 1));
	}
	/* a fourth: served, and the oldest idle one (c[0]) is closed */
	c[3] = client_new(port);
	CHECK(hello(c[3]));
	CHECK(wait_eof(c[0]->fd, 2000));
	CHECK(wait_stats(s, 0, 3));
	/* c[1] is the oldest now: a request makes it the newest */
	CHECK(hello(c[1]));
	CHECK(wait_stats(s, 0, 3));
	c[4] = client_new(port);
	CHECK(hello(c[4]));
	CHECK(wait_eof(c[2]->fd, 2000));
	CHECK(hello(c[1]));
	CHECK(hello(c[3]));
	struct http_server_stats st;
	http_server_get_stats(s, &st);
	CHECK_EQ_INT(st.shed_total, 2);
	CHECK_EQ_INT(st.rejected_total, 0);
	CHECK_EQ_INT(st.open_conns, 3);
	for (int i = 0; i < 5; i++)
		client_free(c[i]);
	http_server_stop(&s);
}

TEST(per_client_cap)
{
	struct http_server_cfg cfg = {.host = "127.0.0.1", .port = 0,
	    .max_conns = 100, .max_conns_per_client = 4, .name = "client"};
	struct http_server *s = start_cfg(&cfg);
	CHECK(s != NULL);
	if (!s)
		return;
	int port = http_server_port(s);
	/* an idle connection of one client ... */
	struct client *a = client_new(port);
	CHECK(hello(a));
	CHECK(wait_stats(s, 0, 1));
	/* ... outlives a flood from another address, which only ever
	 * sheds its own oldest connections */
	enum { FLOOD = 40 };
	struct client *fl[FLOOD];
	for (int i = 0; i < FLOOD; i++)
		fl[i] = client_from(port, "127.0.0.2");
	CHECK(wait_shed(s, FLOOD - 4));
	CHECK(wait_stats(s, 0, 5));
	int closed = 0;
	for (int i = 0; i < FLOOD - 4; i++)
		closed += wait_eof(fl[i]->fd, 2000);
	CHECK_EQ_INT(closed, FLOOD - 4);
	for (int i = FLOOD - 4; i < FLOOD; i++)
		CHECK(!wait_eof(fl[i]->fd, 100)); /* the newest stay */
	CHECK(hello(a));
	struct http_server_stats st;
	http_server_get_stats(s, &st);
	CHECK_EQ_INT(st.shed_total, FLOOD - 4);
	CHECK_EQ_INT(st.rejected_total, 0);
	for (int i = 0; i < FLOOD; i++)
		client_free(fl[i]);

	/* a client with all of its connections in requests gets 503;
	 * another address is still served meanwhile */
	struct sleeper sl[4];
	pthread_t t[4];
	hold_holders();
	for (int i = 0; i < 4; i++) {
		sl[i] = (struct sleeper){port, "127.0.0.2", -1, 0, 0};
		pthread_create(&t[i], NULL, sleeper_thread, &sl[i]);
	}
	CHECK(wait_holding(4));
	CHECK(wait_stats(s, 4, 1));
	struct client *x = client_from(port, "127.0.0.2");
	struct resp r;
	CHECK(read_response(x, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 503);
	resp_free(&r);
	client_free(x);
	CHECK(hello(a));
	struct client *b = client_new(port);
	CHECK(hello(b));
	client_free(b);
	release_holders();
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(sl[i].status, 200);
	}
	client_free(a);
	http_server_stop(&s);
}

TEST(idle_connections_hold_no_thread)
{
	struct http_server_cfg cfg = {.host = "127.0.0.1", .port = 0,
	    .name = "idle"};
	struct http_server *s = start_cfg(&cfg);
	CHECK(s != NULL);
	if (!s)
		return;
	int port = http_server_port(s);
	enum { N = 400 };
	static struct client *cls[N];
	int base = process_threads();
	/* new connections that send nothing ... */
	for (int i = 0; i < N; i++)
		cls[i] = client_new(port);
	CHECK(wait_stats(s, 0, N));
	CHECK(process_threads() - base < 8);
	/* ... and connections idle after a request */
	int ok = 0;
	for (int i = 0; i < N; i++)
		ok += hello(cls[i]);
	CHECK_EQ_INT(ok, N);
	CHECK(wait_stats(s, 0, N));
	struct http_server_stats st;
	http_server_get_stats(s, &st);
	CHECK(st.threads < N / 2);
	CHECK(process_threads() - base < N / 2);
	CHECK_EQ_INT(st.open_conns, N);
	/* every one of them is served again */
	ok = 0;
	for (int i = 0; i < N; i++)
		ok += hello(cls[i]);
	CHECK_EQ_INT(ok, N);
	for (int i = 0; i < N; i++)
		client_free(cls[i]);
	CHECK(wait_stats(s, 0, 0));
	http_server_stop(&s);
}

TEST(busy_server_still_answers)
{
	struct http_server_cfg cfg = {.host = "127.0.0.1", .port = 0,
	    .max_conns = 64, .name = "busy"};
	struct http_server *s = start_cfg(&cfg);
	CHECK(s != NULL);
	if (!s)
		return;
	int port = http_server_port(s);
	/* a few requests running ... */
	struct sleeper sl[8];
	pthread_t t[8];
	hold_holders();
	for (int i = 0; i < 8; i++) {
		sl[i] = (struct sleeper){port, NULL, -1, 0, 0};
		pthread_create(&t[i], NULL, sleeper_thread, &sl[i]);
	}
	CHECK(wait_holding(8));
	CHECK(wait_stats(s, 8, -1));
	/* ... and far more idle connections than the cap */
	enum { N = 300 };
	static struct client *cls[N];
	for (int i = 0; i < N; i++)
		cls[i] = client_new(port);
	struct client *c = client_new(port);
	CHECK(hello(c));
	CHECK(hello(c));
	client_free(c);
	release_holders();
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(sl[i].status, 200);
	}
	struct http_server_stats st;
	http_server_get_stats(s, &st);
	CHECK_EQ_INT(st.rejected_total, 0);
	CHECK(st.shed_total >= N + 1 - (64 - 8));
	CHECK(st.open_conns <= 64);
	for (int i = 0; i < N; i++)
		client_free(cls[i]);
	http_server_stop(&s);
}

TEST(parked_resumes_with_pending_bytes)
{
	struct http_server_cfg cfg = {.host = "127.0.0.1", .port = 0,
	    .header_timeout_ms = 10000, .name = "resume"};
	struct http_server *s = start_cfg(&cfg);
	CHECK(s != NULL);
	if (!s)
		return;
	struct client *cl = client_new(http_server_port(s));
	struct resp r;
	/* a whole request and the start of the next one */
	CHECK(send_str(cl, "GET /hello HTTP/1.1\r\n\r\nGET /chu") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	resp_free(&r);
	nap_ms(100); /* parked meanwhile, holding the partial head */
	CHECK(send_str(cl, "nked HTTP/1.1\r\n") == 0);
	nap_ms(50);
	CHECK(send_str(cl, "\r\nGET /hello HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "abcdefgh"));
	resp_free(&r);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	resp_free(&r);
	/* a body split around a pause is read by the handler's thread */
	CHECK(send_str(cl, "PUT /echo HTTP/1.1\r\nContent-Length: 6\r\n\r\nabc") == 0);
	nap_ms(50);
	CHECK(send_str(cl, "def") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "abcdef"));
	resp_free(&r);
	client_free(cl);
	http_server_stop(&s);

	/* a head left half-sent after a response gets the header timeout
	 * (300 ms on the shared server) and a 408, not the idle timeout's
	 * silent close */
	cl = client_new(srv_port);
	CHECK(send_str(cl, "GET /hello HTTP/1.1\r\n\r\nGET /hel") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	resp_free(&r);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 408);
	resp_free(&r);
	CHECK(wait_eof(cl->fd, 3000));
	client_free(cl);
}

TEST(stop_with_open_connections)
{
	struct http_server_cfg cfg = {.host = "127.0.0.1", .port = 0, .name = "stop"};
	char *err = NULL;
	struct http_server *s = http_server_start(&cfg, test_handler, NULL, &err);
	CHECK(s != NULL);
	if (!s)
		return;
	int port = http_server_port(s);
	CHECK(port > 0);
	struct client *cls[6];
	for (int i = 0; i < 6; i++)
		cls[i] = client_new(port);
	struct resp r;
	/* some served (idle keep-alive), one mid-head, some silent */
	for (int i = 0; i < 3; i++) {
		send_str(cls[i], "GET /hello HTTP/1.1\r\n\r\n");
		CHECK(read_response(cls[i], &r, 0) == 0);
		resp_free(&r);
	}
	send_str(cls[3], "GET /hel");
	/* and one in a running handler, which must still get its answer */
	struct sleeper sl = {port, NULL, 400, 0, 0};
	pthread_t t;
	pthread_create(&t, NULL, sleeper_thread, &sl);
	struct timespec ts = {0, 150 * 1000000L};
	nanosleep(&ts, NULL);

	int64_t t0 = now_ms();
	http_server_stop(&s);
	int64_t dt = now_ms() - t0;
	CHECK(dt < 1500);
	pthread_join(t, NULL);
	CHECK(sl.ok);
	for (int i = 0; i < 6; i++) {
		CHECK(wait_eof(cls[i]->fd, 1000));
		client_free(cls[i]);
	}
	/* the port is closed */
	CHECK(connect_port(port) < 0);
}

TEST(ipv6_listener)
{
	struct http_server_cfg cfg = {.host = "::1", .port = 0, .name = "v6"};
	char *err = NULL;
	struct http_server *s = http_server_start(&cfg, test_handler, NULL, &err);
	if (!s) {
		/* no IPv6 on this host: only the error path is checked */
		CHECK(err != NULL);
		free(err);
		return;
	}
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 a = {.sin6_family = AF_INET6,
	    .sin6_port = htons((uint16_t)http_server_port(s))};
	a.sin6_addr = in6addr_loopback;
	CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	struct client *cl = calloc(1, sizeof(*cl));
	cl->fd = fd;
	struct resp r;
	CHECK(send_str(cl, "GET /peer HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(r.body_len > 6 && memcmp(r.body, "[::1]:", 6) == 0);
	CHECK(r.body_len > 2 && memcmp(r.body + r.body_len - 2, " 1", 2) == 0);
	resp_free(&r);
	client_free(cl);
	http_server_stop(&s);
}

TEST(bad_listen_address)
{
	struct http_server_cfg cfg = {.host = "not an address", .port = 0};
	char *err = NULL;
	struct http_server *s = http_server_start(&cfg, test_handler, NULL, &err);
	CHECK(s == NULL);
	CHECK(err != NULL);
	free(err);
}

/* --- streamed request bodies (http_body_read) ------------------------------ */

static unsigned char *
pattern(size_t n, uint64_t seed)
{
	unsigned char *p = malloc(n ? n : 1);
	uint64_t x = seed | 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
	return p;
}

/*
 * Checks /stream's answer for a body read whole: its bytes (count and
 * CRC32C), no read larger than rcap, reads returning 0 after the end, and
 * what http_body_pending said before reading (pend0) and after (0).
 */
static int
stream_ok(const struct resp *r, const unsigned char *p, size_t n, size_t rcap,
    int pend0)
{
	char got[160];
	size_t gn = 0, gmax = 0;
	unsigned gcrc = 0;
	long grc = -1;
	int gp0 = -1, gp1 = -1;
	if (r->status != 200 || !r->body || r->body_len >= sizeof(got))
		return 0;
	memcpy(got, r->body, r->body_len);
	got[r->body_len] = 0;
	if (sscanf(got, "n=%zu crc=%x max=%zu rc=%ld pend=%1d%1d", &gn, &gcrc,
	    &gmax, &grc, &gp0, &gp1) != 6) {
		fprintf(stderr, "  /stream answered: %s\n", got);
		return 0;
	}
	int ok = gn == n && gcrc == crc32c(0, p, n) && gmax <= rcap &&
	    (n == 0 || gmax > 0) && grc == 0 && gp0 == pend0 && gp1 == 0;
	if (!ok)
		fprintf(stderr, "  /stream answered: %s (want n=%zu crc=%08x)\n",
		    got, n, crc32c(0, p, n));
	return ok;
}

/* Waits until /stream has finished `count` requests in all; its last rc. */
static ssize_t
stream_wait(int count, int ms)
{
	for (int i = 0; i < ms / 5; i++) {
		if (__atomic_load_n(&stream_done, __ATOMIC_ACQUIRE) >= count)
			return __atomic_load_n(&stream_rc, __ATOMIC_ACQUIRE);
		nap_ms(5);
	}
	return -99999;
}

/* Sends body as chunks of the given sizes (cycled), with extensions and
 * a trailer. */
static void
send_chunked(struct client *cl, const unsigned char *p, size_t n)
{
	static const size_t sizes[] = {1, 4095, 3, 70000, 8192, 17};
	char hdr[64];
	size_t off = 0;
	for (int i = 0; off < n; i++) {
		size_t k = sizes[i % 6];
		if (k > n - off)
			k = n - off;
		int hl = snprintf(hdr, sizeof(hdr), "%zX%s\r\n", k,
		    i % 3 == 0 ? ";ext=\"a b\"" : "");
		send_all(cl->fd, hdr, (size_t)hl);
		send_all(cl->fd, p + off, k);
		send_all(cl->fd, "\r\n", 2);
		off += k;
	}
	send_str(cl, "0\r\nX-Trailer: 1\r\nX-Other: 2\r\n\r\n");
}

TEST(stream_bodies)
{
	struct client *cl = client_new(srv_port);
	struct resp r;
	char head[256];
	size_t n = 300000;
	unsigned char *body = pattern(n, 7);
	/* Content-Length, in small and large reads, beyond max_body (64
	 * KiB: the streaming reader has no whole-body limit) */
	static const size_t caps[] = {7, 1, 4096, 1 << 20};
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		size_t len = caps[i] == 1 ? 5000 : n;
		snprintf(head, sizeof(head), "PUT /stream?cap=%zu HTTP/1.1\r\n"
		    "Content-Length: %zu\r\n\r\n", caps[i], len);
		CHECK(send_str(cl, head) == 0);
		CHECK(send_all(cl->fd, body, len) == 0);
		CHECK(read_response(cl, &r, 0) == 0);
		CHECK_EQ_INT(r.status, 200);
		CHECK(stream_ok(&r, body, len, caps[i], 1));
		CHECK_EQ_STR(head_get(&r, "Connection"), "keep-alive");
		resp_free(&r);
	}
	/* chunked, with extensions and trailers, then a pipelined request */
	CHECK(send_str(cl, "POST /stream?cap=5000 HTTP/1.1\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n") == 0);
	send_chunked(cl, body, n);
	CHECK(send_str(cl, "GET /hello HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 200);
	CHECK(stream_ok(&r, body, n, 5000, 1));
	resp_free(&r);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	resp_free(&r);
	/* an empty chunked body, a request without a body */
	CHECK(send_str(cl, "POST /stream HTTP/1.1\r\nTransfer-Encoding: chunked"
	    "\r\n\r\n0\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "n=0 crc=00000000 max=0 rc=0 pend=10"));
	resp_free(&r);
	CHECK(send_str(cl, "GET /stream HTTP/1.1\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "n=0 crc=00000000 max=0 rc=0 pend=00"));
	resp_free(&r);

	/* Expect: 100-continue: the 100 comes with the first read, the body
	 * after it; chunked too */
	CHECK(send_str(cl, "PUT /stream?cap=100 HTTP/1.1\r\nExpect: 100-continue\r\n"
	    "Content-Length: 1000\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 100);
	CHECK(send_all(cl->fd, body, 1000) == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(stream_ok(&r, body, 1000, 100, 1));
	resp_free(&r);
	CHECK(send_str(cl, "PUT /stream?cap=100 HTTP/1.1\r\nExpect: 100-continue\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 100);
	send_chunked(cl, body, 1000);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(stream_ok(&r, body, 1000, 100, 1));
	CHECK_EQ_STR(head_get(&r, "Connection"), "keep-alive");
	resp_free(&r);
	CHECK(hello(cl));
	/* an empty body with Expect: the 100 all the same, and the
	 * connection stays */
	CHECK(send_str(cl, "PUT /stream HTTP/1.1\r\nExpect: 100-continue\r\n"
	    "Content-Length: 0\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 100);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(stream_ok(&r, body, 0, 7, 0));
	CHECK_EQ_STR(head_get(&r, "Connection"), "keep-alive");
	resp_free(&r);
	CHECK(hello(cl));
	client_free(cl);
	free(body);
}

TEST(stream_unread_rest)
{
	struct resp r;
	unsigned char *body = pattern(3000000, 9);
	/* answered before reading, small body: drained, connection kept */
	struct client *cl = client_new(srv_port);
	CHECK(send_str(cl, "PUT /stream?early=1 HTTP/1.1\r\nContent-Length: 3000\r\n\r\n") == 0);
	CHECK(send_all(cl->fd, body, 3000) == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 403);
	CHECK_EQ_STR(head_get(&r, "Connection"), "keep-alive");
	resp_free(&r);
	CHECK(hello(cl));
	/* part read, the rest drained */
	CHECK(send_str(cl, "PUT /stream?stop=1000&cap=100 HTTP/1.1\r\n"
	    "Content-Length: 3000\r\n\r\n") == 0);
	CHECK(send_all(cl->fd, body, 3000) == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 200);
	CHECK(r.body_len > 8 && memcmp(r.body, "n=1000 ", 7) == 0);
	CHECK(strstr((char *)r.body, "pend=11") != NULL);
	CHECK_EQ_STR(head_get(&r, "Connection"), "keep-alive");
	resp_free(&r);
	CHECK(hello(cl));
	client_free(cl);
	/* a rest over the drain bound (1 MiB): closed, never read */
	cl = client_new(srv_port);
	CHECK(send_str(cl, "PUT /stream?stop=1000&cap=100 HTTP/1.1\r\n"
	    "Content-Length: 3000000\r\n\r\n") == 0);
	CHECK(send_all(cl->fd, body, 100000) == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 200);
	CHECK_EQ_STR(head_get(&r, "Connection"), "close");
	resp_free(&r);
	CHECK(wait_eof(cl->fd, 3000));
	client_free(cl);
	/* chunked, part read: closed */
	cl = client_new(srv_port);
	CHECK(send_str(cl, "PUT /stream?stop=10 HTTP/1.1\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n") == 0);
	send_chunked(cl, body, 5000);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_STR(head_get(&r, "Connection"), "close");
	resp_free(&r);
	CHECK(wait_eof(cl->fd, 3000));
	client_free(cl);
	/* an empty body with Expect, answered without a 100: closed (see
	 * body_allows_reuse: botocore would misread the next answer) */
	cl = client_new(srv_port);
	CHECK(send_str(cl, "PUT /stream?early=1 HTTP/1.1\r\nExpect: 100-continue\r\n"
	    "Content-Length: 0\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 403);
	CHECK_EQ_STR(head_get(&r, "Connection"), "close");
	resp_free(&r);
	CHECK(wait_eof(cl->fd, 3000));
	client_free(cl);
	/* refused before the 100: the client never sends; closed */
	cl = client_new(srv_port);
	CHECK(send_str(cl, "PUT /stream?early=1 HTTP/1.1\r\nExpect: 100-continue\r\n"
	    "Content-Length: 3000000\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 403);
	CHECK_EQ_STR(head_get(&r, "Connection"), "close");
	resp_free(&r);
	CHECK(wait_eof(cl->fd, 3000));
	client_free(cl);
	/* broken chunk framing: -EPROTO, closed */
	cl = client_new(srv_port);
	CHECK(send_str(cl, "PUT /stream HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\nabc\r\nzz\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK_EQ_INT(r.status, 400);
	CHECK(body_is(&r, "err -71"));
	CHECK_EQ_STR(head_get(&r, "Connection"), "close");
	resp_free(&r);
	client_free(cl);
	cl = client_new(srv_port);
	CHECK(send_str(cl, "PUT /stream HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3\r\nabcdef\r\n0\r\n\r\n") == 0);
	CHECK(read_response(cl, &r, 0) == 0);
	CHECK(body_is(&r, "err -71"));
	resp_free(&r);
	client_free(cl);
	free(body);
}

TEST(stream_client_gone)
{
	unsigned char *body = pattern(50000, 11);
	for (int k = 0; k < 4; k++) {
		int before = __atomic_load_n(&stream_done, __ATOMIC_ACQUIRE);
		struct client *cl = client_new(srv_port);
		if (k < 2)
			CHECK(send_str(cl, "PUT /stream?cap=1000 HTTP/1.1\r\n"
			    "Content-Length: 100000\r\n\r\n") == 0);
		else
			CHECK(send_str(cl, "PUT /stream?cap=1000 HTTP/1.1\r\n"
			    "Transfer-Encoding: chunked\r\n\r\nC350\r\n") == 0);
		CHECK(send_all(cl->fd, body, 50000) == 0);
		nap_ms(50);
		if (k % 2) {
			struct linger lg = {1, 0}; /* RST */
			setsockopt(cl->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		client_free(cl);
		ssize_t rc = stream_wait(before + 1, 3000);
		CHECK(rc == -ECONNRESET || rc == -EPIPE);
		if (rc != -ECONNRESET && rc != -EPIPE)
			fprintf(stderr, "  k=%d rc=%zd\n", k, rc);
	}
	free(body);
	/* the server is alive and well */
	struct resp r;
	CHECK(simple_request("GET /hello HTTP/1.1\r\n\r\n", &r, 0) == 0);
	CHECK(body_is(&r, "hello world"));
	resp_free(&r);
}

TEST(stream_stall_times_out)
{
	/* its own server, with a short I/O timeout */
	struct http_server_cfg cfg = {.host = "127.0.0.1", .port = 0,
	    .io_timeout_ms = 300, .name = "stall"};
	struct http_server *s = start_cfg(&cfg);
	CHECK(s != NULL);
	if (!s)
		return;
	for (int k = 0; k < 2; k++) {
		int before = __atomic_load_n(&stream_done, __ATOMIC_ACQUIRE);
		struct client *cl = client_new(http_server_port(s));
		int64_t t0 = now_ms();
		CHECK(send_str(cl, k ? "PUT /stream HTTP/1.1\r\nTransfer-Encoding: "
		    "chunked\r\n\r\n10\r\nabc" : "PUT /stream HTTP/1.1\r\n"
		    "Content-Length: 100\r\n\r\nabc") == 0);
		ssize_t rc = stream_wait(before + 1, 5000);
		int64_t dt = now_ms() - t0;
		CHECK_EQ_INT(rc, -ETIMEDOUT);
		CHECK(dt >= 250 && dt < 3000);
		struct resp r;
		CHECK(read_response(cl, &r, 0) == 0);
		CHECK_EQ_INT(r.status, 400);
		CHECK_EQ_STR(head_get(&r, "Connection"), "close");
		resp_free(&r);
		CHECK(wait_eof(cl->fd, 3000));
		client_free(cl);
	}
	http_server_stop(&s);
}

static int
make_temp_file(size_t size, int random_fill)
{
	char path[] = "/tmp/ferry-http-test-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	unlink(path);
	if (random_fill) {
		file_data = malloc(size);
		uint64_t x = 0x9e3779b97f4a7c15ULL;
		for (size_t i = 0; i < size; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			file_data[i] = (unsigned char)x;
		}
		if (write(fd, file_data, size) != (ssize_t)size)
			return -1;
	} else if (ftruncate(fd, (off_t)size) < 0) {
		return -1;
	}
	return fd;
}

int
main(void)
{
	file_size = 3 * 1024 * 1024 + 17;
	file_fd = make_temp_file(file_size, 1);
	big_fd = make_temp_file(BIG_FILE_SIZE, 0);
	if (file_fd < 0 || big_fd < 0) {
		fprintf(stderr, "cannot create temp files\n");
		return 1;
	}
	struct http_server_cfg cfg = {
		.host = "127.0.0.1",
		.port = 0,
		.header_timeout_ms = 300,
		.idle_timeout_ms = 1500,
		.io_timeout_ms = 3000,
		.max_body = 64 * 1024,
		.name = "test",
	};
	char *err = NULL;
	srv = http_server_start(&cfg, test_handler, NULL, &err);
	if (!srv) {
		fprintf(stderr, "server start: %s\n", err ? err : "?");
		return 1;
	}
	srv_port = http_server_port(srv);

	RUN(keepalive_two_gets);
	RUN(pipelined_requests);
	RUN(head_has_no_body);
	RUN(chunked_response);
	RUN(sendfile_bytes_equal);
	RUN(large_extra_headers);
	RUN(post_bodies);
	RUN(body_limits);
	RUN(error_statuses);
	RUN(oversized_431_414);
	RUN(handler_misbehaviour);
	RUN(peer_and_loopback);
	RUN(slow_loris_closed);
	RUN(concurrent_200);
	RUN(client_disconnect_mid_sendfile);
	RUN(connection_cap_all_busy_503);
	RUN(cap_sheds_oldest_idle);
	RUN(per_client_cap);
	RUN(idle_connections_hold_no_thread);
	RUN(busy_server_still_answers);
	RUN(parked_resumes_with_pending_bytes);
	RUN(stop_with_open_connections);
	RUN(ipv6_listener);
	RUN(bad_listen_address);
	RUN(stream_bodies);
	RUN(stream_unread_rest);
	RUN(stream_client_gone);
	RUN(stream_stall_times_out);

	http_server_stop(&srv);
	close(file_fd);
	close(big_fd);
	free(file_data);
	TAP_DONE();
}
