/*
 * test_ferry_client.c: libferry against a fake control API served
 * in-process: a small HTTP/1.1 responder on 127.0.0.1 (port 0), raw
 * sockets, one thread per connection with keep-alive, answering from the
 * handler the current test installs and logging every request it gets.
 * Checks stat parsing, list paging, pread ranges and bounds, status and
 * connection error mapping, the worker's error messages (ferry_last_error:
 * per thread, cleared by a success), an address that is not a worker (the
 * S3 port, a web server), malformed and oversized replies, the
 * Authorization header, connection reuse and concurrent use.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/dbuf.h"
#include "common/json.h"
#include "ferry.h"
#include "cluster/placement.h"
#include "tap.h"

/* ---------------------------------------------------------------- */
/* Fake server                                                        */

#define MAX_LOG 64

struct req {
	char method[16];
	char target[8192];
	char headers[16384]; /* raw header block, lowercased */
	char *body;
	size_t body_len;
};

typedef void (*handler_fn)(const struct req *rq, struct dbuf *out);

static pthread_mutex_t srv_mu = PTHREAD_MUTEX_INITIALIZER;
static handler_fn srv_handler;
static struct req srv_log[MAX_LOG];
static int srv_nlog;
static int srv_accepted;
static int srv_port;
static int srv_fd = -1;
static volatile int srv_stop;
/* GET /v1/cluster is answered here, not logged: 404 (a worker with no
 * cluster, as most tests want) unless a test sets the JSON. */
static char *srv_cluster_json;
static int srv_ncluster;

static void
log_reset(handler_fn h)
{
	pthread_mutex_lock(&srv_mu);
	for (int i = 0; i < srv_nlog && i < MAX_LOG; i++)
		free(srv_log[i].body);
	srv_nlog = 0;
	srv_accepted = 0;
	srv_handler = h;
	pthread_mutex_unlock(&srv_mu);
}

static int
nlog(void)
{
	pthread_mutex_lock(&srv_mu);
	int n = srv_nlog;
	pthread_mutex_unlock(&srv_mu);
	return n;
}

/* Copy of logged request i (body not copied). */
static struct req
logged(int i)
{
	struct req r;
	memset(&r, 0, sizeof(r));
	pthread_mutex_lock(&srv_mu);
	if (i >= 0 && i < srv_nlog && i < MAX_LOG)
		r = srv_log[i];
	pthread_mutex_unlock(&srv_mu);
	return r;
}

static int
has_header(const struct req *r, const char *line_lower)
{
	char pat[512];
	snprintf(pat, sizeof(pat), "\r\n%s\r\n", line_lower);
	return strstr(r->headers, pat) != NULL;
}

static void
respond(struct dbuf *o, int status, const char *extra, const char *body,
    size_t n)
{
	dbuf_printf(o, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", status,
	    n, extra ? extra : "");
	dbuf_add(o, body, n);
}

static void
respond_json(struct dbuf *o, int status, const char *body)
{
	respond(o, status, "Content-Type: application/json\r\n", body,
	    strlen(body));
}

static int
send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *
conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	static const size_t cap = 1 << 20;
	char *in = malloc(cap);
	size_t have = 0;
	for (;;) {
		char *eoh;
		while (!(eoh = memmem(in, have, "\r\n\r\n", 4))) {
			if (have == cap)
				goto out;
			ssize_t n = recv(fd, in + have, cap - have, 0);
			if (n <= 0)
				goto out;
			have += (size_t)n;
		}
		size_t hlen = (size_t)(eoh - in) + 4;
		struct req rq;
		memset(&rq, 0, sizeof(rq));
		size_t cl = 0;
		{
			size_t n = hlen < sizeof(rq.headers) - 1 ? hlen
			    : sizeof(rq.headers) - 1;
			for (size_t i = 0; i < n; i++)
				rq.headers[i] = (char)((in[i] >= 'A' && in[i] <= 'Z')
				    ? in[i] + 32 : in[i]);
			sscanf(in, "%15s %8191s", rq.method, rq.target);
			char *c = strstr(rq.headers, "\r\ncontent-length:");
			if (c)
				cl = strtoul(c + 17, NULL, 10);
		}
		while (have < hlen + cl) {
			if (have == cap)
				goto out;
			ssize_t n = recv(fd, in + have, cap - have, 0);
			if (n <= 0)
				goto out;
			have += (size_t)n;
		}
		rq.body = malloc(cl + 1);
		memcpy(rq.body, in + hlen, cl);
		rq.body[cl] = 0;
		rq.body_len = cl;
		memmove(in, in + hlen + cl, have - hlen - cl);
		have -= hlen + cl;

		struct dbuf o;
		dbuf_init(&o, 64u << 20);
		pthread_mutex_lock(&srv_mu);
		if (strcmp(rq.target, "/v1/cluster") == 0) {
			srv_ncluster++;
			if (srv_cluster_json)
				respond_json(&o, 200, srv_cluster_json);
			else
				respond_json(&o, 404, "{\"error\":\"no\",\"code\":\"NotFound\"}");
			pthread_mutex_unlock(&srv_mu);
			free(rq.body);
			int rc = send_all(fd, o.p, o.len);
			dbuf_free(&o);
			if (rc)
				break;
			continue;
		}
		handler_fn h = srv_handler;
		if (srv_nlog < MAX_LOG)
			srv_log[srv_nlog] = rq;
		else
			free(rq.body);
		srv_nlog++;
		pthread_mutex_unlock(&srv_mu);
		h(&rq, &o);
		int rc = send_all(fd, o.p, o.len);
		int close_it = o.p && strstr(o.p, "Connection: close") &&
		    strstr(o.p, "Connection: close") < strstr(o.p, "\r\n\r\n");
		dbuf_free(&o);
		if (rc || close_it)
			break;
	}
out:
	free(in);
	close(fd);
	return NULL;
}

static void *
accept_main(void *arg)
{
	for (;;) {
		int c = accept(srv_fd, NULL, NULL);
		if (srv_stop) {
			if (c >= 0)
				close(c);
			return NULL;
		}
		if (c < 0)
			continue;
		pthread_mutex_lock(&srv_mu);
		srv_accepted++;
		pthread_mutex_unlock(&srv_mu);
		pthread_t t;
		pthread_create(&t, NULL, conn_main, (void *)(intptr_t)c);
		pthread_detach(t);
	}
}

static pthread_t srv_thread;

static void
server_start(void)
{
	srv_fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(srv_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(srv_fd, (struct sockaddr *)&a, sizeof(a)) || listen(srv_fd, 64)) {
		perror("bind/listen");
		exit(1);
	}
	socklen_t al = sizeof(a);
	getsockname(srv_fd, (struct sockaddr *)&a, &al);
	srv_port = ntohs(a.sin_port);
	pthread_create(&srv_thread, NULL, accept_main, NULL);
}

static void
server_stop(void)
{
	srv_stop = 1;
	/* Wake accept() with a connection of our own. */
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)srv_port);
	connect(c, (struct sockaddr *)&a, sizeof(a));
	pthread_join(srv_thread, NULL);
	close(c);
	close(srv_fd);
	log_reset(NULL);
}

static ferry_t *
client(const char *token)
{
	char w[64];
	snprintf(w, sizeof(w), "127.0.0.1:%d", srv_port);
	ferry_t *f = NULL;
	int r = ferry_connect(w, token, &f);
	CHECK_EQ_INT(r, 0);
	return f;
}

/* ---------------------------------------------------------------- */
/* Handlers                                                           */

static void
h_stat(const struct req *rq, struct dbuf *o)
{
	if (strncmp(rq->target, "/v1/stat?path=", 14) != 0) {
		respond_json(o, 400, "{\"error\":\"bad\",\"code\":\"BadRequest\"}");
		return;
	}
	respond_json(o, 200,
	    "{\"path\":\"/train/a b+c.bin\",\"size\":1234567890123,"
	    "\"mtime\":1700000000,\"etag\":\"9a0364b9e99bb480dd25e1f0284c8555\","
	    "\"is_dir\":false,\"cached_bytes\":4096}");
}

static void
h_list(const struct req *rq, struct dbuf *o)
{
	if (strstr(rq->target, "start_after=b")) {
		respond_json(o, 200,
		    "{\"entries\":[{\"name\":\"c\\u00e9\",\"is_dir\":false,"
		    "\"size\":3,\"mtime\":3,\"etag\":\"e3\"},{\"name\":\"sub\","
		    "\"is_dir\":true}],\"truncated\":false}");
		return;
	}
	respond_json(o, 200,
	    "{\"entries\":[{\"name\":\"a\",\"is_dir\":false,\"size\":1,"
	    "\"mtime\":1,\"etag\":\"e1\"},{\"name\":\"b\",\"is_dir\":false,"
	    "\"size\":2,\"mtime\":2,\"etag\":\"e2\"}],\"truncated\":true,"
	    "\"next\":\"b\"}");
}

/* A page that never moves forward. */
static void
h_list_loop(const struct req *rq, struct dbuf *o)
{
	respond_json(o, 200,
	    "{\"entries\":[{\"name\":\"a\",\"is_dir\":false,\"size\":1}],"
	    "\"truncated\":true,\"next\":\"a\"}");
}

static void
h_list_badname(const struct req *rq, struct dbuf *o)
{
	respond_json(o, 200,
	    "{\"entries\":[{\"name\":\"x/y\",\"is_dir\":false,\"size\":1}],"
	    "\"truncated\":false}");
}

#define OBJ_SIZE 100
static char obj[OBJ_SIZE];

static void
h_data(const struct req *rq, struct dbuf *o)
{
	if (strstr(rq->target, "path=/missing")) {
		respond_json(o, 404, "{\"error\":\"no\",\"code\":\"NoSuchFile\"}");
		return;
	}
	const char *r = strstr(rq->headers, "\r\nrange: bytes=");
	if (!r || strstr(rq->target, "path=/norange")) {
		respond(o, 200, NULL, obj, OBJ_SIZE);
		return;
	}
	long long a = -1, b = -1;
	sscanf(r + 15, "%lld-%lld", &a, &b);
	if (a >= OBJ_SIZE) {
		respond_json(o, 416, "{\"error\":\"range\",\"code\":\"InvalidRange\"}");
		return;
	}
	if (b >= OBJ_SIZE)
		b = OBJ_SIZE - 1;
	if (strstr(rq->target, "path=/toolong"))
		b = OBJ_SIZE - 1; /* sends more than asked */
	long long start = strstr(rq->target, "path=/shifted") ? a + 1 : a;
	char cr[128];
	snprintf(cr, sizeof(cr), "Content-Range: bytes %lld-%lld/%d\r\n", start,
	    b, OBJ_SIZE);
	respond(o, 206, cr, obj + a, (size_t)(b - a + 1));
}

static void
h_errors(const struct req *rq, struct dbuf *o)
{
	static const struct {
		const char *path;
		int status;
	} map[] = {{"/e404", 404}, {"/e403", 403}, {"/e401", 401},
	    {"/e503", 503}, {"/e502", 502}, {"/e504", 504}, {"/e400", 400},
	    {"/e409", 409}, {"/e500", 500}, {"/enotdir", 400}};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		const char *p = strstr(rq->target, "path=");
		size_t pl = p ? strcspn(p + 5, "&") : 0;
		if (p && pl == strlen(map[i].path) &&
		    strncmp(p + 5, map[i].path, pl) == 0) {
			respond_json(o, map[i].status,
			    strcmp(map[i].path, "/enotdir") == 0
				? "{\"error\":\"x\",\"code\":\"NotADirectory\"}"
				: "{\"error\":\"x\",\"code\":\"Whatever\"}");
			return;
		}
	}
	respond(o, 404, NULL, "not json at all", 15);
}

static void
h_garbage(const struct req *rq, struct dbuf *o)
{
	if (strstr(rq->target, "path=/array"))
		respond_json(o, 200, "[1,2,3]");
	else if (strstr(rq->target, "path=/empty"))
		respond(o, 200, NULL, "", 0);
	else if (strstr(rq->target, "path=/nosize"))
		respond_json(o, 200, "{\"is_dir\":false,\"mtime\":1}");
	else if (strstr(rq->target, "path=/longetag")) {
		char b[400];
		snprintf(b, sizeof(b), "{\"size\":1,\"etag\":\"%0200d\"}", 7);
		respond_json(o, 200, b);
	} else if (strstr(rq->target, "path=/short")) {
		/* Promises more than it sends, then closes. */
		dbuf_adds(o, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
			     "Connection: close\r\n\r\n{\"size\":");
	} else
		respond_json(o, 200, "{\"size\": 12, \"etag\": \"x\"");
}

static void
h_huge(const struct req *rq, struct dbuf *o)
{
	size_t n = (16u << 20) + 100;
	char *b = malloc(n);
	memset(b, ' ', n);
	b[0] = '{';
	b[n - 1] = '}';
	respond(o, 200, NULL, b, n);
	free(b);
}

static void
h_ok(const struct req *rq, struct dbuf *o)
{
	if (strcmp(rq->target, "/v1/mounts") == 0 && !strcmp(rq->method, "GET"))
		respond_json(o, 200,
		    "{\"mounts\":[{\"name\":\"train\",\"uri\":\"s3://b/p\","
		    "\"options\":{\"s3.secret_key\":\"<redacted>\"}}]}");
	else if (strcmp(rq->target, "/v1/stats") == 0)
		respond_json(o, 200, "{\"hit_bytes\":5,\"miss_bytes\":7}");
	else
		respond_json(o, 200, "{\"ok\":true}");
}

/* Errors with the worker's words; an S3 server's and a web server's
 * answers. */
static void
h_messages(const struct req *rq, struct dbuf *o)
{
	if (strstr(rq->target, "path=/denied"))
		respond_json(o, 403, "{\"error\":\"/denied: s3://b/denied: "
		    "AccessDenied: Access Denied (HTTP 403)\",\"code\":"
		    "\"AccessDenied\"}");
	else if (strstr(rq->target, "path=/thread-a"))
		respond_json(o, 502, "{\"error\":\"message for a\",\"code\":\"UfsError\"}");
	else if (strstr(rq->target, "path=/thread-b"))
		respond_json(o, 404, "{\"error\":\"message for b\",\"code\":\"NoSuchFile\"}");
	else if (strstr(rq->target, "path=/escape"))
		respond_json(o, 502, "{\"error\":\"bad\\u001b[31mred\\nline\",\"code\":\"UfsError\"}");
	else if (strstr(rq->target, "path=/long")) {
		/* 2,000 bytes of a two-byte character: cut at a character. */
		struct dbuf b;
		dbuf_init(&b, 8192);
		dbuf_adds(&b, "{\"error\":\"");
		for (int i = 0; i < 1000; i++)
			dbuf_adds(&b, "\xc3\xa9");
		dbuf_adds(&b, "\",\"code\":\"UfsError\"}");
		respond_json(o, 502, b.p);
		dbuf_free(&b);
	} else if (strstr(rq->target, "path=/s3xml"))
		respond(o, 404, "Content-Type: application/xml\r\n",
		    "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code></Error>",
		    strlen("<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code></Error>"));
	else if (strstr(rq->target, "path=/s3amz"))
		respond(o, 200, "x-amz-request-id: 1234\r\n", "{\"size\":1}", 10);
	else if (strstr(rq->target, "path=/web"))
		respond(o, 404, "Content-Type: text/html\r\n", "<html>no</html>", 15);
	else if (strstr(rq->target, "/v1/mounts"))
		respond_json(o, 400, "{\"error\":\"s3: unknown option 's3.regoin' (did "
		    "you mean 's3.region'?)\",\"code\":\"BadMount\"}");
	else
		h_stat(rq, o);
}

/* ---------------------------------------------------------------- */
/* Tests                                                              */

TEST(stat_parsing_and_path_encoding)
{
	log_reset(h_stat);
	ferry_t *f = client(NULL);
	struct ferry_stat st;
	CHECK_EQ_INT(ferry_stat(f, "/train/a b+c.bin", &st), 0);
	CHECK(st.size == 1234567890123LL);
	CHECK_EQ_INT(st.mtime, 1700000000);
	CHECK_EQ_INT(st.is_dir, 0);
	CHECK_EQ_INT(st.cached_bytes, 4096);
	CHECK_EQ_STR(st.etag, "9a0364b9e99bb480dd25e1f0284c8555");
	CHECK_EQ_INT(nlog(), 1);
	struct req r = logged(0);
	CHECK_EQ_STR(r.method, "GET");
	CHECK_EQ_STR(r.target, "/v1/stat?path=/train/a%20b%2Bc.bin");
	/* No token set: no Authorization header. */
	CHECK(strstr(r.headers, "authorization") == NULL);
	/* Bad arguments fail without I/O. */
	CHECK_EQ_INT(ferry_stat(f, "relative", &st), -EINVAL);
	CHECK_EQ_INT(ferry_stat(f, NULL, &st), -EINVAL);
	CHECK_EQ_INT(nlog(), 1);
	ferry_close(&f);
	CHECK(f == NULL);
}

TEST(connection_reuse)
{
	log_reset(h_stat);
	ferry_t *f = client(NULL);
	struct ferry_stat st;
	for (int i = 0; i < 5; i++)
		CHECK_EQ_INT(ferry_stat(f, "/train/x", &st), 0);
	CHECK_EQ_INT(nlog(), 5);
	pthread_mutex_lock(&srv_mu);
	int acc = srv_accepted;
	pthread_mutex_unlock(&srv_mu);
	CHECK_EQ_INT(acc, 1);
	ferry_close(&f);
}

struct collect {
	char names[16][32];
	struct ferry_stat st[16];
	int n;
	int stop_after;
};

static int
collect_fn(void *arg, const char *name, const struct ferry_stat *st)
{
	struct collect *c = arg;
	if (c->n < 16) {
		snprintf(c->names[c->n], sizeof(c->names[0]), "%s", name);
		c->st[c->n] = *st;
	}
	c->n++;
	return c->stop_after && c->n >= c->stop_after ? 7 : 0;
}

TEST(list_paging)
{
	log_reset(h_list);
	ferry_t *f = client(NULL);
	struct collect c = {0};
	CHECK_EQ_INT(ferry_list(f, "/train/dir", collect_fn, &c), 0);
	CHECK_EQ_INT(c.n, 4);
	CHECK_EQ_STR(c.names[0], "a");
	CHECK_EQ_STR(c.names[1], "b");
	CHECK_EQ_STR(c.names[2], "c\xc3\xa9");
	CHECK_EQ_STR(c.names[3], "sub");
	CHECK_EQ_INT(c.st[1].size, 2);
	CHECK_EQ_STR(c.st[2].etag, "e3");
	CHECK_EQ_INT(c.st[3].is_dir, 1);
	CHECK_EQ_INT(c.st[0].is_dir, 0);
	CHECK_EQ_INT(nlog(), 2);
	struct req r0 = logged(0), r1 = logged(1);
	CHECK_EQ_STR(r0.target, "/v1/list?path=/train/dir&max=1000");
	CHECK_EQ_STR(r1.target, "/v1/list?path=/train/dir&max=1000&start_after=b");

	/* A callback's non-zero return stops the walk and is returned. */
	log_reset(h_list);
	struct collect c2 = {.stop_after = 1};
	CHECK_EQ_INT(ferry_list(f, "/train/dir", collect_fn, &c2), 7);
	CHECK_EQ_INT(c2.n, 1);
	CHECK_EQ_INT(nlog(), 1);

	/* A worker whose "next" does not advance is caught, not looped on. */
	log_reset(h_list_loop);
	struct collect c3 = {0};
	CHECK_EQ_INT(ferry_list(f, "/x", collect_fn, &c3), -EPROTO);
	CHECK(nlog() <= 2);

	log_reset(h_list_badname);
	struct collect c4 = {0};
	CHECK_EQ_INT(ferry_list(f, "/x", collect_fn, &c4), -EPROTO);
	CHECK_EQ_INT(c4.n, 0);
	ferry_close(&f);
}

TEST(pread_ranges)
{
	for (int i = 0; i < OBJ_SIZE; i++)
		obj[i] = (char)(i * 7 + 3);
	log_reset(h_data);
	ferry_t *f = client(NULL);
	char buf[64];
	memset(buf, 0, sizeof(buf));
	CHECK_EQ_INT(ferry_pread(f, "/train/obj", buf, 20, 10), 20);
	CHECK(memcmp(buf, obj + 10, 20) == 0);
	struct req r = logged(0);
	CHECK_EQ_STR(r.target, "/v1/data?path=/train/obj");
	CHECK(has_header(&r, "range: bytes=10-29"));

	/* Short read at the end, then 0 past it. */
	memset(buf, 0, sizeof(buf));
	CHECK_EQ_INT(ferry_pread(f, "/train/obj", buf, 64, 90), 10);
	CHECK(memcmp(buf, obj + 90, 10) == 0);
	CHECK_EQ_INT(ferry_pread(f, "/train/obj", buf, 64, 100), 0);
	CHECK_EQ_INT(ferry_pread(f, "/train/obj", buf, 64, 5000), 0);
	CHECK_EQ_INT(ferry_pread(f, "/train/obj", buf, 0, 0), 0);

	/* A 200 with the whole object answers a read at 0, bounded to len. */
	char small[8];
	memset(small, 0, sizeof(small));
	CHECK_EQ_INT(ferry_pread(f, "/norange", small, 5, 0), 5);
	CHECK(memcmp(small, obj, 5) == 0);
	/* ...but not a read elsewhere. */
	CHECK_EQ_INT(ferry_pread(f, "/norange", small, 5, 3), -EPROTO);
	/* More bytes than the range, or bytes from another offset. */
	char guard[40];
	memset(guard, 0x55, sizeof(guard));
	CHECK_EQ_INT(ferry_pread(f, "/toolong", guard, 10, 0), -EPROTO);
	for (int i = 10; i < 40; i++)
		CHECK(guard[i] == 0x55);
	CHECK_EQ_INT(ferry_pread(f, "/shifted", buf, 10, 0), -EPROTO);
	CHECK_EQ_INT(ferry_pread(f, "/missing", buf, 10, 0), -ENOENT);
	CHECK_EQ_INT(ferry_pread(f, "/train/obj", buf, 10, -1), -EINVAL);
	CHECK_EQ_INT(ferry_pread(f, "/train/obj", NULL, 10, 0), -EINVAL);

	/* After all that, the pooled connection still serves reads. */
	CHECK_EQ_INT(ferry_pread(f, "/train/obj", buf, 3, 0), 3);
	CHECK(memcmp(buf, obj, 3) == 0);
	ferry_close(&f);
}

TEST(status_mapping)
{
	log_reset(h_errors);
	ferry_t *f = client(NULL);
	struct ferry_stat st;
	CHECK_EQ_INT(ferry_stat(f, "/e404", &st), -ENOENT);
	/* The under-store's refusal and the control token's are apart. */
	CHECK_EQ_INT(ferry_stat(f, "/e403", &st), -EACCES);
	CHECK_EQ_INT(ferry_stat(f, "/e401", &st), -EPERM);
	CHECK_EQ_INT(ferry_stat(f, "/e503", &st), -EIO);
	CHECK_EQ_INT(ferry_stat(f, "/e502", &st), -EIO);
	CHECK_EQ_INT(ferry_stat(f, "/e504", &st), -EIO);
	CHECK_EQ_INT(ferry_stat(f, "/e500", &st), -EIO);
	CHECK_EQ_INT(ferry_stat(f, "/e400", &st), -EINVAL);
	CHECK_EQ_INT(ferry_stat(f, "/e409", &st), -EEXIST);
	CHECK_EQ_INT(ferry_stat(f, "/enotdir", &st), -ENOTDIR);
	/* A non-JSON error body still maps by status. */
	CHECK_EQ_INT(ferry_stat(f, "/other", &st), -ENOENT);
	CHECK_EQ_STR(ferry_last_error(), "");
	struct collect c = {0};
	CHECK_EQ_INT(ferry_list(f, "/e403", collect_fn, &c), -EACCES);
	CHECK_EQ_INT(c.n, 0);
	ferry_close(&f);
}

TEST(worker_messages)
{
	log_reset(h_messages);
	ferry_t *f = client(NULL);
	struct ferry_stat st;
	CHECK_EQ_INT(ferry_stat(f, "/denied", &st), -EACCES);
	CHECK_EQ_STR(ferry_last_error(),
	    "/denied: s3://b/denied: AccessDenied: Access Denied (HTTP 403)");
	/* A success leaves nothing behind. */
	CHECK_EQ_INT(ferry_stat(f, "/fine", &st), 0);
	CHECK_EQ_STR(ferry_last_error(), "");
	/* The mount the worker refused, in its words. */
	const char *opts[] = {"s3.regoin=x"};
	CHECK_EQ_INT(ferry_mount(f, "m", "s3://b", opts, 1), -EINVAL);
	CHECK_EQ_STR(ferry_last_error(),
	    "s3: unknown option 's3.regoin' (did you mean 's3.region'?)");
	/* A hostile worker's terminal escapes are not passed on. */
	CHECK_EQ_INT(ferry_stat(f, "/escape", &st), -EIO);
	CHECK_EQ_STR(ferry_last_error(), "bad?[31mred?line");
	/* A long message is cut at a character, not inside one. */
	CHECK_EQ_INT(ferry_stat(f, "/long", &st), -EIO);
	size_t ml = strlen(ferry_last_error());
	CHECK(ml > 1000 && ml <= 1023 && ml % 2 == 0);
	CHECK(ml >= 2 && memcmp(ferry_last_error() + ml - 2, "\xc3\xa9", 2) == 0);
	/* Messages of the GET /v1/cluster asked for on the side (a 404 with
	 * "error":"no" here) never stand in for the call's own. */
	log_reset(h_errors);
	pthread_mutex_lock(&srv_mu);
	int ncl = srv_ncluster;
	pthread_mutex_unlock(&srv_mu);
	ferry_t *g = client(NULL); /* a new client asks at its first call */
	CHECK_EQ_INT(ferry_stat(g, "/other", &st), -ENOENT);
	CHECK_EQ_STR(ferry_last_error(), "");
	pthread_mutex_lock(&srv_mu);
	CHECK(srv_ncluster > ncl);
	pthread_mutex_unlock(&srv_mu);
	ferry_close(&g);
	/* Arguments refused before any request say why. */
	CHECK_EQ_INT(ferry_connect("bad host:1", NULL, &g), -EINVAL);
	CHECK_EQ_STR(ferry_last_error(), "bad worker address 'bad host:1' (want HOST:PORT)");
	CHECK_EQ_INT(ferry_connect("127.0.0.1:1", "two words", &g), -EINVAL);
	CHECK_EQ_STR(ferry_last_error(), "bad token: 1 to 4096 printable characters, no spaces");
	ferry_close(&f);
}

TEST(not_a_worker)
{
	log_reset(h_messages);
	ferry_t *f = client(NULL);
	char want[128];
	snprintf(want, sizeof(want), "127.0.0.1:%d is not a ferry control API "
	    "(is it the S3 port?)", srv_port);
	struct ferry_stat st;
	/* S3's XML error, whatever its status... */
	CHECK_EQ_INT(ferry_stat(f, "/s3xml", &st), -EPROTONOSUPPORT);
	CHECK_EQ_STR(ferry_last_error(), want);
	/* ...or a success with S3's request id, even one that parses. */
	CHECK_EQ_INT(ferry_stat(f, "/s3amz", &st), -EPROTONOSUPPORT);
	CHECK_EQ_STR(ferry_last_error(), want);
	char buf[16];
	memset(buf, 0x55, sizeof(buf));
	CHECK_EQ_INT(ferry_pread(f, "/s3amz", buf, sizeof(buf), 0), -EPROTONOSUPPORT);
	CHECK_EQ_INT((unsigned char)buf[0], 0x55); /* nothing of it kept */
	CHECK_EQ_STR(ferry_last_error(), want);
	snprintf(want, sizeof(want), "127.0.0.1:%d is not a ferry control API "
	    "(it answered with a web page)", srv_port);
	CHECK_EQ_INT(ferry_stat(f, "/web", &st), -EPROTONOSUPPORT);
	CHECK_EQ_STR(ferry_last_error(), want);
	/* After all that, a worker's answer is read as before. */
	CHECK_EQ_INT(ferry_stat(f, "/fine", &st), 0);
	CHECK(st.size == 1234567890123LL);
	ferry_close(&f);
}

struct msg_arg {
	ferry_t *f;
	const char *path, *want;
	int bad;
};

static void *
msg_thread(void *p)
{
	struct msg_arg *a = p;
	for (int i = 0; i < 100; i++) {
		struct ferry_stat st;
		if (ferry_stat(a->f, a->path, &st) >= 0 ||
		    strcmp(ferry_last_error(), a->want) != 0)
			a->bad++;
	}
	return NULL;
}

/* Threads sharing one ferry_t each see their own calls' messages. */
TEST(messages_are_per_thread)
{
	log_reset(h_messages);
	ferry_t *f = client(NULL);
	struct msg_arg a = {f, "/thread-a", "message for a", 0};
	struct msg_arg b = {f, "/thread-b", "message for b", 0};
	pthread_t ta, tb;
	pthread_create(&ta, NULL, msg_thread, &a);
	pthread_create(&tb, NULL, msg_thread, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	CHECK_EQ_INT(a.bad, 0);
	CHECK_EQ_INT(b.bad, 0);
	CHECK_EQ_STR(ferry_last_error(), ""); /* this thread called nothing */
	ferry_close(&f);
}

TEST(connection_refused)
{
	/* A port with nothing listening: bind, note it, close. */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(s, (struct sockaddr *)&a, sizeof(a));
	socklen_t al = sizeof(a);
	getsockname(s, (struct sockaddr *)&a, &al);
	close(s);
	char w[64];
	snprintf(w, sizeof(w), "127.0.0.1:%d", ntohs(a.sin_port));
	ferry_t *f = NULL;
	CHECK_EQ_INT(ferry_connect(w, NULL, &f), 0);
	struct ferry_stat st;
	CHECK_EQ_INT(ferry_stat(f, "/x", &st), -ECONNREFUSED);
	char b[4];
	CHECK_EQ_INT(ferry_pread(f, "/x", b, 4, 0), -ECONNREFUSED);
	ferry_close(&f);
}

TEST(malformed_replies)
{
	log_reset(h_garbage);
	ferry_t *f = client(NULL);
	struct ferry_stat st;
	CHECK_EQ_INT(ferry_stat(f, "/garbage", &st), -EPROTO);
	CHECK_EQ_INT(ferry_stat(f, "/array", &st), -EPROTO);
	CHECK_EQ_INT(ferry_stat(f, "/empty", &st), -EPROTO);
	CHECK_EQ_INT(ferry_stat(f, "/nosize", &st), -EPROTO);
	CHECK_EQ_INT(ferry_stat(f, "/longetag", &st), -EPROTO);
	int r = ferry_stat(f, "/short", &st);
	CHECK(r < 0);
	char *j = (char *)1;
	CHECK_EQ_INT(ferry_stats_json(f, &j), -EPROTO);
	CHECK(j == NULL);
	struct collect c = {0};
	CHECK_EQ_INT(ferry_list(f, "/garbage", collect_fn, &c), -EPROTO);
	ferry_close(&f);

	/* A reply past the 16 MiB cap is refused, not buffered. */
	log_reset(h_huge);
	f = client(NULL);
	CHECK_EQ_INT(ferry_stat(f, "/huge", &st), -EPROTO);
	ferry_close(&f);
}

TEST(mount_sends_token)
{
	log_reset(h_ok);
	ferry_t *f = client("s3cr3t-token");
	const char *opts[] = {"s3.region=us-east-1", "s3.secret_key=a=b\"c"};
	CHECK_EQ_INT(ferry_mount(f, "/train", "s3://bucket/prefix", opts, 2), 0);
	CHECK_EQ_INT(nlog(), 1);
	struct req r = logged(0);
	CHECK_EQ_STR(r.method, "POST");
	CHECK_EQ_STR(r.target, "/v1/mounts");
	CHECK(has_header(&r, "authorization: bearer s3cr3t-token"));
	CHECK(has_header(&r, "content-type: application/json"));
	pthread_mutex_lock(&srv_mu);
	char *body = srv_log[0].body ? strdup(srv_log[0].body) : NULL;
	pthread_mutex_unlock(&srv_mu);
	struct json_doc d;
	CHECK(body != NULL);
	if (body && json_parse(&d, body, strlen(body)) == 0) {
		char *name = json_str(&d, json_obj_get(&d, 0, "name"));
		char *uri = json_str(&d, json_obj_get(&d, 0, "uri"));
		int o = json_obj_get(&d, 0, "options");
		char *reg = json_str(&d, json_obj_get(&d, o, "s3.region"));
		char *sk = json_str(&d, json_obj_get(&d, o, "s3.secret_key"));
		CHECK_EQ_STR(name, "train");
		CHECK_EQ_STR(uri, "s3://bucket/prefix");
		CHECK_EQ_STR(reg, "us-east-1");
		CHECK_EQ_STR(sk, "a=b\"c");
		CHECK_EQ_INT(d.toks[o].size, 2);
		free(name);
		free(uri);
		free(reg);
		free(sk);
		json_free(&d);
	} else
		CHECK(!"mount body is not JSON");
	free(body);

	CHECK_EQ_INT(ferry_unmount(f, "/train"), 0);
	r = logged(1);
	CHECK_EQ_STR(r.method, "DELETE");
	CHECK_EQ_STR(r.target, "/v1/mounts/train");
	CHECK(has_header(&r, "authorization: bearer s3cr3t-token"));

	/* FERRY_MOUNT_NO_CHECK asks the worker not to check the store. */
	CHECK_EQ_INT(ferry_mount_flags(f, "/nc", "s3://b", NULL, 0,
	    FERRY_MOUNT_NO_CHECK), 0);
	pthread_mutex_lock(&srv_mu);
	body = srv_log[2].body ? strdup(srv_log[2].body) : NULL;
	pthread_mutex_unlock(&srv_mu);
	CHECK_EQ_STR(body, "{\"name\":\"nc\",\"uri\":\"s3://b\",\"options\":{},"
	    "\"check\":false}");
	free(body);
	CHECK_EQ_INT(ferry_mount_flags(f, "/nc", "s3://b", NULL, 0, 2), -EINVAL);

	/* Bad options fail before any request. */
	const char *bad[] = {"novalue"};
	CHECK_EQ_INT(ferry_mount(f, "train", "s3://b", bad, 1), -EINVAL);
	CHECK_EQ_INT(ferry_mount(f, "", "s3://b", NULL, 0), -EINVAL);
	CHECK_EQ_INT(ferry_mount(f, "a/b", "s3://b", NULL, 0), -EINVAL);
	CHECK_EQ_INT(ferry_unmount(f, "/"), -EINVAL);
	CHECK_EQ_INT(nlog(), 3);

	char *j = NULL;
	CHECK_EQ_INT(ferry_mounts_json(f, &j), 0);
	CHECK(j && strstr(j, "\"<redacted>\""));
	free(j);
	CHECK_EQ_INT(ferry_stats_json(f, &j), 0);
	CHECK_EQ_STR(j, "{\"hit_bytes\":5,\"miss_bytes\":7}");
	free(j);
	ferry_close(&f);

	/* The token can come from $FERRY_TOKEN. */
	log_reset(h_ok);
	setenv("FERRY_TOKEN", "from-env", 1);
	f = client(NULL);
	unsetenv("FERRY_TOKEN");
	CHECK_EQ_INT(ferry_mount(f, "m", "file:///tmp", NULL, 0), 0);
	r = logged(0);
	CHECK(has_header(&r, "authorization: bearer from-env"));
	ferry_close(&f);
}

TEST(connect_arguments)
{
	ferry_t *f = NULL;
	CHECK_EQ_INT(ferry_connect("bad host:1", NULL, &f), -EINVAL);
	CHECK(f == NULL);
	CHECK_EQ_INT(ferry_connect("127.0.0.1:1", "tok\r\nX-Evil: 1", &f), -EINVAL);
	CHECK_EQ_INT(ferry_connect("127.0.0.1:1", NULL, NULL), -EINVAL);
	/* $FERRY_WORKER when no address is given. */
	char w[64];
	snprintf(w, sizeof(w), "127.0.0.1:%d", srv_port);
	setenv("FERRY_WORKER", w, 1);
	log_reset(h_stat);
	CHECK_EQ_INT(ferry_connect(NULL, NULL, &f), 0);
	unsetenv("FERRY_WORKER");
	struct ferry_stat st;
	CHECK_EQ_INT(ferry_stat(f, "/a", &st), 0);
	CHECK_EQ_INT(nlog(), 1);
	ferry_close(&f);
	ferry_close(&f); /* closing twice is harmless */
	/* "http://" prefix and a trailing slash are accepted. */
	snprintf(w, sizeof(w), "http://127.0.0.1:%d/", srv_port);
	CHECK_EQ_INT(ferry_connect(w, NULL, &f), 0);
	CHECK_EQ_INT(ferry_stat(f, "/a", &st), 0);
	ferry_close(&f);
}

struct thr_arg {
	ferry_t *f;
	int fails;
};

static void *
stat_thread(void *p)
{
	struct thr_arg *a = p;
	for (int i = 0; i < 50; i++) {
		struct ferry_stat st;
		if (ferry_stat(a->f, "/train/x", &st) != 0 || st.size != 1234567890123LL)
			a->fails++;
	}
	return NULL;
}

TEST(shared_by_threads)
{
	log_reset(h_stat);
	ferry_t *f = client(NULL);
	pthread_t t[8];
	struct thr_arg a[8];
	for (int i = 0; i < 8; i++) {
		a[i] = (struct thr_arg){f, 0};
		pthread_create(&t[i], NULL, stat_thread, &a[i]);
	}
	int fails = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		fails += a[i].fails;
	}
	CHECK_EQ_INT(fails, 0);
	CHECK_EQ_INT(nlog(), 400);
	pthread_mutex_lock(&srv_mu);
	int acc = srv_accepted;
	pthread_mutex_unlock(&srv_mu);
	CHECK(acc <= 8); /* pooled connections, not one per call */
	ferry_close(&f);
}

/* A cluster of this fake worker and a dead one: every read whose block
 * placement puts on the dead worker moves on to the live one, with the
 * right bytes; calls that any worker answers do the same. */
TEST(cluster_reads_fail_over)
{
	for (int i = 0; i < OBJ_SIZE; i++)
		obj[i] = (char)(i * 5 + 1);
	int dead = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bind(dead, (struct sockaddr *)&sa, sizeof(sa));
	socklen_t sl = sizeof(sa);
	getsockname(dead, (struct sockaddr *)&sa, &sl);
	int dead_port = ntohs(sa.sin_port);
	close(dead); /* nothing listens there now */
	char js[1024];
	snprintf(js, sizeof(js),
	    "{\"cluster\":\"t\",\"block_size\":4096,\"replicas\":{},\"members\":["
	    "{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"ctl\":\"127.0.0.1:%d\"},"
	    "{\"id\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\"ctl\":\"127.0.0.1:%d\"}]}",
	    srv_port, dead_port);
	pthread_mutex_lock(&srv_mu);
	srv_cluster_json = js;
	srv_ncluster = 0;
	pthread_mutex_unlock(&srv_mu);
	log_reset(h_data);
	ferry_t *f = client(NULL);
	/* Which paths placement gives to the dead worker. */
	struct cluster_view *v = calloc(1, sizeof(*v) + 2 * sizeof(struct member));
	v->n = 2;
	snprintf(v->m[0].id, sizeof(v->m[0].id), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	snprintf(v->m[1].id, sizeof(v->m[1].id), "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	int on_dead = 0, ok = 0;
	for (int i = 0; i < 24; i++) {
		char path[64], key[32], buf[40];
		snprintf(key, sizeof(key), "f%d", i);
		snprintf(path, sizeof(path), "/train/%s", key);
		on_dead += placement_owner(v, placement_key("train", key, 0)) == 1;
		memset(buf, 0, sizeof(buf));
		ok += ferry_pread(f, path, buf, 30, 7) == 30 && memcmp(buf, obj + 7, 30) == 0;
	}
	CHECK_EQ_INT(ok, 24);
	CHECK(on_dead > 0 && on_dead < 24); /* both workers had some */
	CHECK(srv_ncluster >= 1);
	CHECK_EQ_INT(nlog(), 24); /* each read answered once, by the live one */
	free(v);
	ferry_close(&f);
	pthread_mutex_lock(&srv_mu);
	srv_cluster_json = NULL;
	pthread_mutex_unlock(&srv_mu);
}

/* A worker that breaks off in the middle of a block: the read goes on at
 * the next candidate: with the version pinned (as ferry fuse reads), for
 * the rest of the block only; unpinned, for the whole block again.  The
 * caller's buffer is exactly the read's size, so ASan sees any overrun. */
static int brk_sent;

static void
h_break(const struct req *rq, struct dbuf *o)
{
	const char *r = strstr(rq->headers, "\r\nrange: bytes=");
	long long a = -1, b = -1;
	if (r)
		sscanf(r + 15, "%lld-%lld", &a, &b);
	if (a < 0 || b >= OBJ_SIZE || b < a) {
		respond_json(o, 500, "{\"error\":\"bad range\",\"code\":\"X\"}");
		return;
	}
	char cr[160];
	snprintf(cr, sizeof(cr), "Content-Range: bytes %lld-%lld/%d\r\nETag: \"e1\"\r\n", a, b, OBJ_SIZE);
	if (__atomic_fetch_add(&brk_sent, 1, __ATOMIC_RELAXED) == 0) {
		/* Promise the range, send 10 bytes of it, hang up. */
		dbuf_printf(o, "HTTP/1.1 206 X\r\nContent-Length: %lld\r\n%sConnection: close\r\n\r\n",
		    b - a + 1, cr);
		dbuf_add(o, obj + a, 10);
		return;
	}
	respond(o, 206, cr, obj + a, (size_t)(b - a + 1));
}

TEST(cluster_read_broken_mid_block_resumes)
{
	for (int i = 0; i < OBJ_SIZE; i++)
		obj[i] = (char)(i * 3 + 7);
	char js[1024];
	/* Two members at the same address: the second takes over. */
	snprintf(js, sizeof(js),
	    "{\"cluster\":\"t\",\"block_size\":4096,\"replicas\":{},\"members\":["
	    "{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"ctl\":\"127.0.0.1:%d\"},"
	    "{\"id\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\"ctl\":\"127.0.0.1:%d\"}]}",
	    srv_port, srv_port);
	pthread_mutex_lock(&srv_mu);
	srv_cluster_json = js;
	pthread_mutex_unlock(&srv_mu);
	log_reset(h_break);
	brk_sent = 0;
	ferry_t *f = client(NULL);
	char *buf = malloc(30);
	CHECK_EQ_INT(ferry_pread(f, "/train/k", buf, 30, 7), 30);
	CHECK(memcmp(buf, obj + 7, 30) == 0);
	CHECK_EQ_INT(nlog(), 2);
	pthread_mutex_lock(&srv_mu);
	if (srv_nlog >= 2)
		CHECK(strstr(srv_log[1].headers, "\r\nrange: bytes=7-36\r\n") != NULL);
	pthread_mutex_unlock(&srv_mu);
	/* Pinned: the 10 bytes that came are kept; the rest is asked for. */
	log_reset(h_break);
	brk_sent = 0;
	memset(buf, 0, 30);
	CHECK_EQ_INT(ferry_pread_etag(f, "/train/k2", buf, 30, 7, "e1"), 30);
	CHECK(memcmp(buf, obj + 7, 30) == 0);
	CHECK_EQ_INT(nlog(), 2);
	pthread_mutex_lock(&srv_mu);
	if (srv_nlog >= 2)
		CHECK(strstr(srv_log[1].headers, "\r\nrange: bytes=17-36\r\n") != NULL);
	srv_cluster_json = NULL;
	pthread_mutex_unlock(&srv_mu);
	free(buf);
	ferry_close(&f);
}

/* The worker we were given never answered, so the client knows no other
 * member: calls fail cleanly with the connection error (the move-on to
 * other members is tested against real workers in test_cluster.py). */
TEST(dead_worker_alone_is_refused)
{
	int dead = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bind(dead, (struct sockaddr *)&sa, sizeof(sa));
	socklen_t sl = sizeof(sa);
	getsockname(dead, (struct sockaddr *)&sa, &sl);
	int dead_port = ntohs(sa.sin_port);
	close(dead);
	char w[64];
	snprintf(w, sizeof(w), "127.0.0.1:%d", dead_port);
	ferry_t *f = NULL;
	CHECK_EQ_INT(ferry_connect(w, NULL, &f), 0);
	struct ferry_stat st;
	CHECK_EQ_INT(ferry_stat(f, "/train/a", &st), -ECONNREFUSED);
	ferry_close(&f);
}

TEST(strerror_messages)
{
	int codes[] = {-ENOENT, -EACCES, -EPERM, -EIO, -ECONNREFUSED,
	    -EHOSTUNREACH, -ETIMEDOUT, -EINVAL, -EPROTO, -EEXIST,
	    -EPROTONOSUPPORT};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *m = ferry_strerror(codes[i]);
		CHECK(m && *m && strcmp(m, "unknown error") != 0);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(m, ferry_strerror(codes[j])) != 0);
	}
	CHECK_EQ_STR(ferry_strerror(-ENOENT), "no such file, directory or mount");
	CHECK_EQ_STR(ferry_strerror(-EPERM), "the control token is missing or wrong");
	CHECK_EQ_STR(ferry_strerror(-EACCES), "access denied by the under-store");
	CHECK(ferry_strerror(12345) != NULL);
}

int
main(void)
{
	server_start();
	RUN(stat_parsing_and_path_encoding);
	RUN(connection_reuse);
	RUN(list_paging);
	RUN(pread_ranges);
	RUN(status_mapping);
	RUN(worker_messages);
	RUN(not_a_worker);
	RUN(messages_are_per_thread);
	RUN(connection_refused);
	RUN(malformed_replies);
	RUN(mount_sends_token);
	RUN(connect_arguments);
	RUN(shared_by_threads);
	RUN(cluster_reads_fail_over);
	RUN(dead_worker_alone_is_refused);
	RUN(cluster_read_broken_mid_block_resumes);
	RUN(strerror_messages);
	server_stop();
	TAP_DONE();
}
