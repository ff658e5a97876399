/*
 * test_ufs_s3.c: the s3:// under-store.
 *
 * Part 1, against a scripted fake S3 on loopback (a thread in this
 * process): the exact requests sent (path encoding, Range, If-Match, query
 * of ListObjectsV2, signed headers, a signature that verifies with the
 * secret, no secret on the wire, anonymous requests unsigned), status
 * mapping (403, 404, 412, 416), retries (503 retried, 403 not), bounds (a
 * server sending more than asked for, a range ignored, a wrong
 * Content-Range), list merging of Contents and CommonPrefixes with
 * max_keys and continuation tokens, timeouts, a dead port and a server that
 * answers junk.
 *
 * Part 2, against s3rver (a child process; skipped with a message if
 * .deps/npm/node_modules/.bin/s3rver is missing): objects PUT with
 * libcurl, then stat, list (pagination with max_keys 1, 2, 7; delimiter
 * and recursive) and ranged reads checked against what was put, and a read
 * with the old ETag after an overwrite giving -ESTALE.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/vas.h"
#include "http/http_parse.h"
#include "common/sigv4.h"
#include "tap.h"
#include "ufs/ufs.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

/* ---- the fake server ---- */

enum { R_NORMAL, R_JUNK, R_HANG };

struct fake_resp {
	int kind;
	char raw[8192];
};

#define FAKE_MAX_REQ 32

static struct fake {
	int lfd, port;
	pthread_t th;
	pthread_mutex_t mu;
	struct fake_resp script[8];
	int nscript, next;
	char req[FAKE_MAX_REQ][8192];
	int nreq;
	int stop; /* __atomic */
} fk;

static void
fake_reset(void)
{
	pthread_mutex_lock(&fk.mu);
	fk.nscript = fk.next = fk.nreq = 0;
	pthread_mutex_unlock(&fk.mu);
}

/* Queues a reply; the last one queued repeats once the queue runs out. */
static void
fake_push(int kind, int status, const char *headers, const char *body)
{
	pthread_mutex_lock(&fk.mu);
	struct fake_resp *r = &fk.script[fk.nscript++];
	r->kind = kind;
	snprintf(r->raw, sizeof(r->raw),
	    "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n%s", status,
	    strlen(body), headers, body);
	pthread_mutex_unlock(&fk.mu);
}

static int
fake_nreq(void)
{
	pthread_mutex_lock(&fk.mu);
	int n = fk.nreq;
	pthread_mutex_unlock(&fk.mu);
	return n;
}

static void
fake_serve_conn(int fd)
{
	char buf[8192];
	size_t len = 0;
	for (;;) {
		char *end = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL;
		if (!end) {
			struct pollfd p = {fd, POLLIN, 0};
			int pr = poll(&p, 1, 100);
			if (__atomic_load_n(&fk.stop, __ATOMIC_RELAXED))
				return;
			if (pr <= 0)
				continue;
			ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
			if (n <= 0)
				return;
			len += (size_t)n;
			continue;
		}
		size_t hl = (size_t)(end + 4 - buf);
		struct fake_resp r;
		pthread_mutex_lock(&fk.mu);
		if (fk.nreq < FAKE_MAX_REQ) {
			memcpy(fk.req[fk.nreq], buf, hl);
			fk.req[fk.nreq][hl] = 0;
		}
		fk.nreq++;
		int i = fk.next < fk.nscript ? fk.next++ : fk.nscript - 1;
		if (i >= 0)
			r = fk.script[i];
		else
			r.kind = R_JUNK;
		pthread_mutex_unlock(&fk.mu);
		memmove(buf, buf + hl, len - hl);
		len -= hl;
		if (r.kind == R_JUNK) {
			const char junk[] = "\x01\x02garbage that is not HTTP\r\n\r\n";
			if (write(fd, junk, sizeof(junk) - 1) < 0)
				return;
			return;
		}
		if (r.kind == R_HANG) {
			/* Say nothing until the client gives up. */
			for (;;) {
				struct pollfd p = {fd, POLLIN, 0};
				if (__atomic_load_n(&fk.stop, __ATOMIC_RELAXED) ||
				    poll(&p, 1, 50) > 0)
					return;
			}
		}
		size_t rl = strlen(r.raw);
		if (write(fd, r.raw, rl) != (ssize_t)rl)
			return;
	}
}

static void *
fake_main(void *arg)
{
	while (!__atomic_load_n(&fk.stop, __ATOMIC_RELAXED)) {
		struct pollfd p = {fk.lfd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		int fd = accept(fk.lfd, NULL, NULL);
		if (fd < 0)
			continue;
		fake_serve_conn(fd);
		close(fd);
	}
	return NULL;
}

static int
listen_loopback(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
		perror("listen");
		exit(2);
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static void
fake_start(void)
{
	pthread_mutex_init(&fk.mu, NULL);
	fk.lfd = listen_loopback(&fk.port);
	pthread_create(&fk.th, NULL, fake_main, NULL);
}

static void
fake_stop(void)
{
	__atomic_store_n(&fk.stop, 1, __ATOMIC_RELAXED);
	pthread_join(fk.th, NULL);
	close(fk.lfd);
}

/* ---- helpers ---- */

static void *
open_s3(const char *root, int port, const struct ufs_opt *more, int nmore)
{
	char ep[64];
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
	struct ufs_opt o[16] = {
	    {"s3.endpoint", ep},
	    {"s3.access_key", AKID},
	    {"s3.secret_key", SECRET},
	    {"s3.retries", "2"},
	    {"s3.timeout_ms", "3000"},
	};
	int n = 5;
	for (int i = 0; i < nmore && n < 16; i++) {
		int j;
		for (j = 0; j < n && strcmp(o[j].key, more[i].key); j++)
			;
		o[j] = more[i];
		if (j == n)
			n++;
	}
	void *st = NULL;
	char *err = NULL;
	int r = ufs_s3_ops.open(root, o, n, &st, &err);
	if (r) {
		fprintf(stderr, "open %s: %d %s\n", root, r, err ? err : "");
		free(err);
		return NULL;
	}
	return st;
}

static const char *
hdr(int i, const char *name, char *out, size_t n)
{
	const char *req = fk.req[i];
	size_t nl = strlen(name);
	for (const char *p = strstr(req, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
		if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
			const char *v = p + 2 + nl + 1;
			while (*v == ' ')
				v++;
			size_t vl = strcspn(v, "\r");
			snprintf(out, n, "%.*s", (int)vl, v);
			return out;
		}
	}
	return NULL;
}

static const char *
secret_fn(void *arg, const char *ak)
{
	return strcmp(ak, AKID) == 0 ? SECRET : NULL;
}

/* The captured request verifies with the secret: what was sent is what
 * was signed. */
static int
verifies(int i)
{
	struct http_request req;
	const char *h = fk.req[i];
	if (http_parse_request(h, strlen(h), &req) <= 0)
		return 0;
	const char *msg = NULL;
	return sigv4_verify(&req, wall_sec(), secret_fn, NULL, &msg) ==
	    SIGV4_OK;
}

struct lst {
	char keys[64][256];
	int is_dir[64];
	int64_t size[64];
	char etag[64][128];
	int n;
};

static int
lst_fn(void *arg, const struct ufs_entry *e)
{
	struct lst *l = arg;
	if (l->n < 64) {
		snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", e->key);
		l->is_dir[l->n] = e->is_dir;
		l->size[l->n] = e->size;
		snprintf(l->etag[l->n], sizeof(l->etag[0]), "%s", e->etag);
	}
	l->n++;
	return 0;
}

#define REQ_STARTS(i, lit) (strncmp(fk.req[i], lit, strlen(lit)) == 0)

/* ---- part 1: the fake server ---- */

TEST(read_request_shape)
{
	fake_reset();
	void *st = open_s3("bkt/pre", fk.port, NULL, 0);
	CHECK(st != NULL);
	if (!st)
		return;
	fake_push(R_NORMAL, 206,
	    "Content-Range: bytes 10-14/100\r\nETag: \"abc\"\r\n", "HELLO");
	char buf[16];
	memset(buf, '#', sizeof(buf));
	ssize_t n = ufs_s3_ops.read(st, "x y/z+\xc3\xa9", "abc", 10, buf, 5);
	CHECK_EQ_INT(n, 5);
	CHECK(memcmp(buf, "HELLO#", 6) == 0);
	CHECK_EQ_INT(fake_nreq(), 1);
	char v[512];
	CHECK(REQ_STARTS(0, "GET /bkt/pre/x%20y/z%2B%C3%A9 HTTP/1.1\r\n"));
	char host[64];
	snprintf(host, sizeof(host), "127.0.0.1:%d", fk.port);
	CHECK_EQ_STR(hdr(0, "Host", v, sizeof(v)), host);
	CHECK_EQ_STR(hdr(0, "Range", v, sizeof(v)), "bytes=10-14");
	CHECK_EQ_STR(hdr(0, "If-Match", v, sizeof(v)), "\"abc\"");
	CHECK_EQ_STR(hdr(0, "x-amz-content-sha256", v, sizeof(v)),
	    SIGV4_EMPTY_SHA256);
	CHECK(hdr(0, "x-amz-date", v, sizeof(v)) && strlen(v) == 16);
	CHECK(hdr(0, "Authorization", v, sizeof(v)) &&
	    strncmp(v, "AWS4-HMAC-SHA256 Credential=" AKID "/", 29) == 0 &&
	    strstr(v, "/us-east-1/s3/aws4_request") &&
	    strstr(v, "SignedHeaders=host;if-match;range;"
		      "x-amz-content-sha256;x-amz-date,"));
	CHECK(strstr(fk.req[0], SECRET) == NULL);
	CHECK(hdr(0, "x-amz-security-token", v, sizeof(v)) == NULL);
	CHECK(verifies(0));
	ufs_s3_ops.close(st);

	/* a session token is sent and signed; region goes into the scope */
	fake_reset();
	struct ufs_opt tok[] = {{"s3.session_token", "TOKEN/+="},
	    {"s3.region", "eu-west-3"}};
	st = open_s3("bkt", fk.port, tok, 2);
	fake_push(R_NORMAL, 206, "Content-Range: bytes 0-1/2\r\n", "ok");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 2), 2);
	CHECK(REQ_STARTS(0, "GET /bkt/k HTTP/1.1\r\n"));
	CHECK_EQ_STR(hdr(0, "x-amz-security-token", v, sizeof(v)),
	    "TOKEN/+=");
	CHECK(hdr(0, "Authorization", v, sizeof(v)) &&
	    strstr(v, "/eu-west-3/s3/aws4_request") &&
	    strstr(v, "x-amz-security-token"));
	CHECK(hdr(0, "If-Match", v, sizeof(v)) == NULL);
	CHECK(verifies(0));
	ufs_s3_ops.close(st);

	/* anonymous: nothing signed */
	fake_reset();
	char ep[64];
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d/", fk.port);
	struct ufs_opt anon[] = {{"s3.endpoint", ep}};
	char *err = NULL;
	CHECK_EQ_INT(ufs_s3_ops.open("bkt", anon, 1, &st, &err), 0);
	fake_push(R_NORMAL, 206, "Content-Range: bytes 0-1/2\r\n", "ok");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", NULL, 0, buf, 2), 2);
	CHECK(hdr(0, "Authorization", v, sizeof(v)) == NULL);
	CHECK(hdr(0, "x-amz-date", v, sizeof(v)) == NULL);
	ufs_s3_ops.close(st);
}

TEST(virtual_host_style)
{
	/* *.localhost resolves to loopback inside libcurl (7.85+). */
	curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
	if (cv->version_num < 0x075500) {
		printf("# skip virtual_host_style: libcurl < 7.85\n");
		return;
	}
	fake_reset();
	char ep[64];
	snprintf(ep, sizeof(ep), "http://localhost:%d", fk.port);
	struct ufs_opt o[] = {{"s3.endpoint", ep}, {"s3.path_style", "false"}};
	void *st = open_s3("bkt/p", fk.port, o, 2);
	CHECK(st != NULL);
	if (!st)
		return;
	fake_push(R_NORMAL, 206, "Content-Range: bytes 0-1/2\r\n", "ok");
	char buf[4], v[128], host[64];
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 2), 2);
	snprintf(host, sizeof(host), "bkt.localhost:%d", fk.port);
	CHECK_EQ_STR(hdr(0, "Host", v, sizeof(v)), host);
	CHECK(REQ_STARTS(0, "GET /p/k HTTP/1.1\r\n"));
	CHECK(verifies(0));
	ufs_s3_ops.close(st);
}

TEST(read_statuses)
{
	void *st = open_s3("bkt", fk.port, NULL, 0);
	if (!st) {
		CHECK(0);
		return;
	}
	char buf[32];
	static const char err403[] = "<?xml version=\"1.0\"?><Error><Code>"
	    "AccessDenied</Code><Message>no</Message></Error>";
	fake_reset();
	fake_push(R_NORMAL, 403, "", err403);
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 4), -EACCES);
	CHECK_EQ_INT(fake_nreq(), 1); /* 4xx is not retried */
	/* The store's own words, naming the object, for the user. */
	CHECK_EQ_STR(ufs_last_error(), "s3://bkt/k: AccessDenied: no (HTTP 403)");
	/* ...until the next call, which starts afresh. */
	fake_reset();
	fake_push(R_NORMAL, 206, "Content-Range: bytes 0-3/4\r\n", "data");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 4), 4);
	CHECK_EQ_STR(ufs_last_error(), "");
	/* A bucket-level call that fails names the bucket alone. */
	fake_reset();
	fake_push(R_NORMAL, 404, "", "<Error><Code>NoSuchBucket</Code><Message>"
	    "The specified bucket does not exist</Message></Error>");
	struct lst l0 = {0};
	int tr0;
	CHECK_EQ_INT(ufs_s3_ops.list(st, "", "/", "", 1, lst_fn, &l0, &tr0),
	    -ENOENT);
	CHECK_EQ_STR(ufs_last_error(), "s3://bkt: NoSuchBucket: The specified "
	    "bucket does not exist (HTTP 404)");
	/* No error body: the status alone. */
	fake_reset();
	fake_push(R_NORMAL, 403, "", "");
	struct ufs_stat s403;
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "k", &s403), -EACCES);
	CHECK_EQ_STR(ufs_last_error(), "s3://bkt/k: HTTP 403");

	fake_reset();
	fake_push(R_NORMAL, 404, "", "<Error><Code>NoSuchKey</Code></Error>");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 4), -ENOENT);

	fake_reset();
	fake_push(R_NORMAL, 412, "", "<Error><Code>PreconditionFailed</Code>"
	    "</Error>");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "e1", 0, buf, 4), -ESTALE);

	fake_reset();
	fake_push(R_NORMAL, 416, "", "<Error><Code>InvalidRange</Code></Error>");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 1000, buf, 4), 0);

	/* a server that ignores If-Match: the reply's ETag is checked */
	fake_reset();
	fake_push(R_NORMAL, 206,
	    "Content-Range: bytes 0-3/4\r\nETag: \"new\"\r\n", "abcd");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "old", 0, buf, 4), -ESTALE);

	/* short only at the end of the object */
	fake_reset();
	fake_push(R_NORMAL, 206, "Content-Range: bytes 8-9/10\r\n", "ij");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 8, buf, 10), 2);
	fake_reset();
	fake_push(R_NORMAL, 206, "Content-Range: bytes 0-1/10\r\n", "ab");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 10), -EIO);

	/* 503 twice, then the data */
	fake_reset();
	fake_push(R_NORMAL, 503, "", "<Error><Code>SlowDown</Code></Error>");
	fake_push(R_NORMAL, 503, "", "<Error><Code>SlowDown</Code></Error>");
	fake_push(R_NORMAL, 206, "Content-Range: bytes 0-3/4\r\n", "data");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 4), 4);
	CHECK(memcmp(buf, "data", 4) == 0);
	CHECK_EQ_INT(fake_nreq(), 3);
	/* 500 forever: retries (2) run out */
	fake_reset();
	fake_push(R_NORMAL, 500, "", "<Error><Code>InternalError</Code></Error>");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 4), -EIO);
	CHECK_EQ_INT(fake_nreq(), 3);

	/* more than asked for: refused, the buffer past len untouched */
	fake_reset();
	fake_push(R_NORMAL, 206, "Content-Range: bytes 0-3/100\r\n",
	    "0123456789abcdef");
	memset(buf, '#', sizeof(buf));
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 4), -EIO);
	CHECK_EQ_INT(buf[4], '#');
	CHECK_EQ_INT(fake_nreq(), 1);
	/* the range ignored (200 from offset 0) */
	fake_reset();
	fake_push(R_NORMAL, 200, "", "0123");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 2, buf, 2), -EIO);
	/* ...fine when it is what was asked for */
	fake_reset();
	fake_push(R_NORMAL, 200, "", "0123");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 8), 4);
	/* a Content-Range for other bytes */
	fake_reset();
	fake_push(R_NORMAL, 206, "Content-Range: bytes 0-1/100\r\n", "01");
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 50, buf, 2), -EIO);
	/* len 0 asks nothing */
	fake_reset();
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 0), 0);
	CHECK_EQ_INT(fake_nreq(), 0);
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "a\"b", 0, buf, 1), -EINVAL);
	ufs_s3_ops.close(st);
}

TEST(stat_requests)
{
	void *st = open_s3("bkt/pre/", fk.port, NULL, 0);
	if (!st) {
		CHECK(0);
		return;
	}
	struct ufs_stat s;
	fake_reset();
	fake_push(R_NORMAL, 200,
	    "ETag: \"e1\"\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
	    "");
	/* HEAD: the fake's Content-Length (0) is the size */
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "a/b.txt", &s), 0);
	CHECK_EQ_INT(s.size, 0);
	CHECK_EQ_STR(s.etag, "e1");
	CHECK_EQ_INT(s.mtime, 784111777);
	CHECK_EQ_INT(s.is_dir, 0);
	CHECK(REQ_STARTS(0, "HEAD /bkt/pre/a/b.txt HTTP/1.1\r\n"));
	CHECK(verifies(0));

	/* 404, then a listing with something under "a/" */
	fake_reset();
	fake_push(R_NORMAL, 404, "", "");
	fake_push(R_NORMAL, 200, "",
	    "<ListBucketResult><KeyCount>1</KeyCount><IsTruncated>true"
	    "</IsTruncated><NextContinuationToken>t</NextContinuationToken>"
	    "<Contents><Key>pre/a/x</Key><Size>1</Size></Contents>"
	    "</ListBucketResult>");
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "a", &s), 0);
	CHECK_EQ_INT(s.is_dir, 1);
	CHECK_EQ_INT(fake_nreq(), 2);
	CHECK(REQ_STARTS(1, "GET /bkt?list-type=2&max-keys=1&prefix="
	    "pre%2Fa%2F HTTP/1.1\r\n"));
	CHECK(verifies(1));
	/* 404 and an empty listing */
	fake_reset();
	fake_push(R_NORMAL, 404, "", "");
	fake_push(R_NORMAL, 200, "", "<ListBucketResult><KeyCount>0</KeyCount>"
	    "<IsTruncated>false</IsTruncated></ListBucketResult>");
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "nope", &s), -ENOENT);
	/* 404 and a listing that is garbage */
	fake_reset();
	fake_push(R_NORMAL, 404, "", "");
	fake_push(R_NORMAL, 200, "", "<ListBucketResult><Contents>");
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "nope", &s), -EIO);
	/* 403 */
	fake_reset();
	fake_push(R_NORMAL, 403, "", "");
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "x", &s), -EACCES);
	/* the root needs no request */
	fake_reset();
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "", &s), 0);
	CHECK_EQ_INT(s.is_dir, 1);
	CHECK_EQ_INT(fake_nreq(), 0);
	ufs_s3_ops.close(st);
}

TEST(list_requests)
{
	void *st = open_s3("bkt/pre", fk.port, NULL, 0);
	if (!st) {
		CHECK(0);
		return;
	}
	struct lst l;
	int trunc = -1;
	/* Contents and CommonPrefixes merged; cut at max_keys */
	fake_reset();
	fake_push(R_NORMAL, 200, "",
	    "<ListBucketResult><IsTruncated>false</IsTruncated>"
	    "<Contents><Key>pre/d/a.txt</Key><Size>3</Size><ETag>&quot;e&quot;"
	    "</ETag></Contents>"
	    "<Contents><Key>pre/d/c</Key><Size>4</Size></Contents>"
	    "<Contents><Key>pre/d/e/</Key><Size>0</Size></Contents>"
	    "<Contents><Key>pre/d/bad\x7f</Key><Size>4</Size></Contents>"
	    "<CommonPrefixes><Prefix>pre/d/b/</Prefix></CommonPrefixes>"
	    "<CommonPrefixes><Prefix>pre/d/d/</Prefix></CommonPrefixes>"
	    "</ListBucketResult>");
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(ufs_s3_ops.list(st, "d/", "/", "d/a", 3, lst_fn, &l,
	    &trunc), 0);
	CHECK_EQ_INT(l.n, 3);
	CHECK_EQ_STR(l.keys[0], "d/a.txt");
	CHECK_EQ_INT(l.size[0], 3);
	CHECK_EQ_STR(l.etag[0], "e");
	CHECK_EQ_STR(l.keys[1], "d/b/");
	CHECK_EQ_INT(l.is_dir[1], 1);
	CHECK_EQ_STR(l.keys[2], "d/c");
	CHECK_EQ_INT(trunc, 1);
	CHECK(REQ_STARTS(0, "GET /bkt?delimiter=%2F&list-type=2&"
	    "max-keys=3&prefix=pre%2Fd%2F&start-after=pre%2Fd%2Fa HTTP/1.1\r\n"));
	CHECK(verifies(0));

	/* continuation: the second page asks with the token */
	fake_reset();
	fake_push(R_NORMAL, 200, "",
	    "<ListBucketResult><IsTruncated>true</IsTruncated>"
	    "<NextContinuationToken>tok/1=</NextContinuationToken>"
	    "<Contents><Key>pre/a</Key><Size>1</Size></Contents>"
	    "</ListBucketResult>");
	fake_push(R_NORMAL, 200, "",
	    "<ListBucketResult><IsTruncated>false</IsTruncated>"
	    "<Contents><Key>pre/b</Key><Size>2</Size></Contents>"
	    "</ListBucketResult>");
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(ufs_s3_ops.list(st, "", "", "", 10, lst_fn, &l, &trunc),
	    0);
	CHECK_EQ_INT(l.n, 2);
	CHECK_EQ_STR(l.keys[0], "a");
	CHECK_EQ_STR(l.keys[1], "b");
	CHECK_EQ_INT(trunc, 0);
	CHECK_EQ_INT(fake_nreq(), 2);
	CHECK(REQ_STARTS(0, "GET /bkt?list-type=2&max-keys=10&"
	    "prefix=pre%2F HTTP/1.1"));
	CHECK(REQ_STARTS(1, "GET /bkt?continuation-token=tok%2F1%3D&"
	    "list-type=2&max-keys=9&prefix=pre%2F HTTP/1.1"));
	CHECK(verifies(1));

	/* a key outside the prefix, a malformed reply: -EIO */
	fake_reset();
	fake_push(R_NORMAL, 200, "",
	    "<ListBucketResult><IsTruncated>false</IsTruncated>"
	    "<Contents><Key>elsewhere</Key><Size>1</Size></Contents>"
	    "</ListBucketResult>");
	CHECK_EQ_INT(ufs_s3_ops.list(st, "", "", "", 10, lst_fn, &l, &trunc),
	    -EIO);
	fake_reset();
	fake_push(R_NORMAL, 200, "", "<ListBucketResult><IsTruncated>");
	CHECK_EQ_INT(ufs_s3_ops.list(st, "", "", "", 10, lst_fn, &l, &trunc),
	    -EIO);
	fake_reset();
	fake_push(R_NORMAL, 404, "", "<Error><Code>NoSuchBucket</Code></Error>");
	CHECK_EQ_INT(ufs_s3_ops.list(st, "", "", "", 10, lst_fn, &l, &trunc),
	    -ENOENT);
	CHECK_EQ_INT(ufs_s3_ops.list(st, "", "", "", 0, lst_fn, &l, &trunc),
	    -EINVAL);

	/* Any delimiter goes to the store; its common prefixes end in it.
	 * Directory markers ("e/") are keys; the root's own ("pre/") is not;
	 * a prefix not ending in the delimiter, or one no path could begin
	 * with, is skipped. */
	fake_reset();
	fake_push(R_NORMAL, 200, "",
	    "<ListBucketResult><IsTruncated>false</IsTruncated>"
	    "<Contents><Key>pre/</Key><Size>0</Size></Contents>"
	    "<Contents><Key>pre/a</Key><Size>1</Size></Contents>"
	    "<Contents><Key>pre/e/</Key><Size>0</Size><ETag>&quot;d41d&quot;"
	    "</ETag></Contents>"
	    "<Contents><Key>pre/x//</Key><Size>0</Size></Contents>"
	    "<CommonPrefixes><Prefix>pre/b-x-</Prefix></CommonPrefixes>"
	    "<CommonPrefixes><Prefix>pre/c-</Prefix></CommonPrefixes>"
	    "<CommonPrefixes><Prefix>pre/d/-</Prefix></CommonPrefixes>"
	    "<CommonPrefixes><Prefix>pre/f/./-</Prefix></CommonPrefixes>"
	    "<CommonPrefixes><Prefix>pre/g-x</Prefix></CommonPrefixes>"
	    "</ListBucketResult>");
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(ufs_s3_ops.list(st, "", "-", "", 10, lst_fn, &l, &trunc),
	    0);
	CHECK_EQ_INT(l.n, 5);
	CHECK_EQ_STR(l.keys[0], "a");
	CHECK_EQ_STR(l.keys[1], "b-x-");
	CHECK_EQ_INT(l.is_dir[1], 1);
	CHECK_EQ_STR(l.keys[2], "c-");
	CHECK_EQ_STR(l.keys[3], "d/-");
	CHECK_EQ_STR(l.keys[4], "e/");
	CHECK_EQ_INT(l.is_dir[4], 0);
	CHECK_EQ_STR(l.etag[4], "d41d");
	CHECK(REQ_STARTS(0, "GET /bkt?delimiter=-&list-type=2&max-keys=10&"
	    "prefix=pre%2F HTTP/1.1\r\n"));
	fake_reset();
	fake_push(R_NORMAL, 200, "",
	    "<ListBucketResult><IsTruncated>false</IsTruncated>"
	    "<CommonPrefixes><Prefix>pre/k a+b</Prefix></CommonPrefixes>"
	    "<CommonPrefixes><Prefix>pre/k a+</Prefix></CommonPrefixes>"
	    "</ListBucketResult>");
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(ufs_s3_ops.list(st, "k", "a+b", "", 10, lst_fn, &l,
	    &trunc), 0);
	CHECK_EQ_INT(l.n, 1);
	CHECK_EQ_STR(l.keys[0], "k a+b");
	CHECK(REQ_STARTS(0, "GET /bkt?delimiter=a%2Bb&list-type=2&"
	    "max-keys=10&prefix=pre%2Fk HTTP/1.1\r\n"));
	CHECK(verifies(0));
	ufs_s3_ops.close(st);
}

/*
 * Independent check of the signing: botocore (Debian's python3-botocore)
 * recomputes the Authorization of each captured request, with the same
 * x-amz-date; skipped if /usr/bin/python3 or botocore is missing.
 */
static const char boto_check_py[] =
    "import sys, datetime\n"
    "try:\n"
    "    from botocore.auth import S3SigV4Auth\n"
    "    from botocore.awsrequest import AWSRequest\n"
    "    from botocore.credentials import Credentials\n"
    "except ImportError:\n"
    "    sys.exit(77)\n"
    "creds = Credentials(sys.argv[2], sys.argv[3], sys.argv[4])\n"
    "bad = 0\n"
    "for h in open(sys.argv[1], newline='').read().split('=====\\n'):\n"
    "    if not h.strip(): continue\n"
    "    lines = h.split('\\r\\n')\n"
    "    method, target, _ = lines[0].split(' ')\n"
    "    hd = {}\n"
    "    for l in lines[1:]:\n"
    "        if ':' in l:\n"
    "            k, v = l.split(':', 1); hd[k.strip().lower()] = v.strip()\n"
    "    sh = hd['authorization'].split('SignedHeaders=')[1].split(',')[0]\n"
    "    skip = ('x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256')\n"
    "    req = AWSRequest(method=method, url='http://' + hd['host'] + target,\n"
    "        headers={k: v for k, v in hd.items()\n"
    "                 if k in sh.split(';') and k not in skip})\n"
    "    req.headers['X-Amz-Content-SHA256'] = hd['x-amz-content-sha256']\n"
    "    when = datetime.datetime.strptime(hd['x-amz-date'], '%Y%m%dT%H%M%SZ')\n"
    "    class Fixed(datetime.datetime):\n"
    "        @classmethod\n"
    "        def utcnow(cls): return when\n"
    "        @classmethod\n"
    "        def now(cls, tz=None): return when.replace(tzinfo=tz) if tz else when\n"
    "    import botocore.auth\n"
    "    botocore.auth.datetime.datetime = Fixed\n"
    "    S3SigV4Auth(creds, 's3', sys.argv[5]).add_auth(req)\n"
    "    if req.headers['Authorization'] != hd['authorization']:\n"
    "        bad += 1\n"
    "        print('botocore disagrees on', method, target, file=sys.stderr)\n"
    "sys.exit(1 if bad else 0)\n";

TEST(botocore_agrees)
{
	if (access("/usr/bin/python3", X_OK) != 0) {
		printf("# skip botocore_agrees: no /usr/bin/python3\n");
		return;
	}
	fake_reset();
	struct ufs_opt o[] = {{"s3.session_token", "tok/en+=="},
	    {"s3.region", "eu-central-1"}};
	void *st = open_s3("bkt/pre fix", fk.port, o, 2);
	CHECK(st != NULL);
	if (!st)
		return;
	fake_push(R_NORMAL, 404, "", "");
	char buf[8];
	struct lst l;
	struct ufs_stat s;
	int trunc;
	CHECK_EQ_INT(ufs_s3_ops.read(st,
	    "x y/z+\xc3\xa9~*'()!$&,;=:@.txt", "abc", 10, buf, 5), -ENOENT);
	CHECK_EQ_INT(ufs_s3_ops.list(st, "d ir/", "/", "d ir/a+b", 3, lst_fn,
	    &l, &trunc), -ENOENT);
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "k=1&2", &s), -ENOENT);
	ufs_s3_ops.close(st);
	int n = fake_nreq();
	CHECK_EQ_INT(n, 4); /* GET, list, HEAD, list */
	char dir[] = "/tmp/ferry-s3boto-XXXXXX";
	if (!mkdtemp(dir)) {
		CHECK(0);
		return;
	}
	char reqf[64], pyf[64], cmd[512];
	snprintf(reqf, sizeof(reqf), "%s/reqs", dir);
	snprintf(pyf, sizeof(pyf), "%s/check.py", dir);
	FILE *f = fopen(reqf, "w");
	for (int i = 0; f && i < n && i < FAKE_MAX_REQ; i++)
		fprintf(f, "%s=====\n", fk.req[i]);
	if (f)
		fclose(f);
	f = fopen(pyf, "w");
	if (f) {
		fputs(boto_check_py, f);
		fclose(f);
	}
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s %s '%s' '%s' %s",
	    pyf, reqf, AKID, SECRET, "tok/en+==", "eu-central-1");
	int rc = system(cmd);
	rc = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
	if (rc == 77)
		printf("# skip botocore_agrees: no botocore\n");
	else
		CHECK_EQ_INT(rc, 0);
	unlink(reqf);
	unlink(pyf);
	rmdir(dir);
}

TEST(dead_junk_and_slow_servers)
{
	/* a closed port: refused at once, a couple of quick retries */
	int port;
	int fd = listen_loopback(&port);
	close(fd);
	struct ufs_opt o[] = {{"s3.retries", "2"}};
	void *st = open_s3("bkt", port, o, 1);
	struct ufs_stat s;
	int64_t t0 = now_ms();
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "k", &s), -EIO);
	CHECK(now_ms() - t0 < 3000);
	/* curl's reason, and how often it was tried */
	char want[128];
	snprintf(want, sizeof(want), "s3://bkt/k: Failed to connect to 127.0.0.1 "
	    "port %d", port);
	CHECK(strncmp(ufs_last_error(), want, strlen(want)) == 0);
	CHECK(strstr(ufs_last_error(), "(3 attempts)") != NULL);
	ufs_s3_ops.close(st);

	/* junk instead of HTTP: -EIO, no retry */
	st = open_s3("bkt", fk.port, NULL, 0);
	fake_reset();
	fake_push(R_JUNK, 0, "", "");
	char buf[8];
	t0 = now_ms();
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 8), -EIO);
	struct lst l;
	int trunc;
	CHECK_EQ_INT(ufs_s3_ops.list(st, "", "", "", 10, lst_fn, &l, &trunc),
	    -EIO);
	CHECK(now_ms() - t0 < 3000);
	/* a 200 reply whose body is junk */
	fake_reset();
	fake_push(R_NORMAL, 200, "", "\x01\x02\x03 junk");
	CHECK_EQ_INT(ufs_s3_ops.list(st, "", "", "", 10, lst_fn, &l, &trunc),
	    -EIO);
	CHECK_EQ_STR(ufs_last_error(), "s3://bkt: the reply is not a "
	    "ListObjectsV2 result (is s3.endpoint an S3 store?)");
	ufs_s3_ops.close(st);

	/* a server that never answers: -ETIMEDOUT after the retries */
	struct ufs_opt slow[] = {{"s3.timeout_ms", "300"}, {"s3.retries", "1"}};
	st = open_s3("bkt", fk.port, slow, 2);
	fake_reset();
	fake_push(R_HANG, 0, "", "");
	t0 = now_ms();
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 8), -ETIMEDOUT);
	int64_t el = now_ms() - t0;
	CHECK(el >= 600 && el < 3000);
	CHECK_EQ_INT(fake_nreq(), 2);
	ufs_s3_ops.close(st);

	/* A hung store (accepts, never answers), with the default retries:
	 * each attempt ends after s3.stall_ms of silence, and the whole call
	 * by s3.deadline_ms, retries included (it was 5 x 60 s). */
	struct ufs_opt hung[] = {{"s3.stall_ms", "300"}, {"s3.deadline_ms", "2600"}};
	st = open_s3("bkt", fk.port, hung, 2);
	fake_reset();
	for (int i = 0; i < 8; i++)
		fake_push(R_HANG, 0, "", "");
	t0 = now_ms();
	CHECK_EQ_INT(ufs_s3_ops.read(st, "k", "", 0, buf, 8), -ETIMEDOUT);
	el = now_ms() - t0;
	/* (libcurl looks at an idle transfer about once a second) */
	CHECK(el >= 2400 && el < 4500);
	CHECK(fake_nreq() >= 2 && fake_nreq() <= 4);
	CHECK(strstr(ufs_last_error(), "no answer for 300 ms") != NULL);
	ufs_s3_ops.close(st);
}

TEST(open_options)
{
	void *st = NULL;
	char *err = NULL;
	struct ufs_opt bogus[] = {{"s3.regoin", "x"}};
	CHECK_EQ_INT(ufs_s3_ops.open("bkt", bogus, 1, &st, &err), -EINVAL);
	CHECK_EQ_STR(err, "s3: unknown option 's3.regoin' (did you mean "
	    "'s3.region'?)");
	free(err);
	err = NULL;
	struct ufs_opt far[] = {{"colour", "x"}};
	CHECK_EQ_INT(ufs_s3_ops.open("bkt", far, 1, &st, &err), -EINVAL);
	CHECK_EQ_STR(err, "s3: unknown option 'colour' (see `ferry mount "
	    "--help`)");
	free(err);
	err = NULL;
	/* Every documented option is one open takes (the table is what
	 * `ferry mount --help` lists). */
	int ndoc = 0;
	for (const struct ufs_optdoc *d = ufs_s3_ops.options; d->key; d++) {
		ndoc++;
		CHECK(strncmp(d->key, "s3.", 3) == 0 && d->value && d->help);
		const char *v = !strcmp(d->value, "true|false") ? "true" :
		    !strcmp(d->value, "MS") ? "700" : !strcmp(d->value, "N") ? "7" :
		    !strcmp(d->value, "URL") ? "http://127.0.0.1:9" :
		    !strcmp(d->value, "REGION") ? "eu-west-1" : "v";
		struct ufs_opt one[] = {{d->key, v}, {"s3.access_key", "A"},
		    {"s3.secret_key", "S"}};
		int n = strcmp(d->key, "s3.access_key") && strcmp(d->key,
		    "s3.secret_key") ? 3 : 1;
		if (n == 1) {
			one[0] = (struct ufs_opt){"s3.access_key", "A"};
			one[1] = (struct ufs_opt){"s3.secret_key", "S"};
			n = 2;
		}
		CHECK_EQ_INT(ufs_s3_ops.open("bkt", one, n, &st, &err), 0);
		if (err)
			fprintf(stderr, "  %s: %s\n", d->key, err);
		free(err);
		err = NULL;
		ufs_s3_ops.close(st);
		st = NULL;
	}
	CHECK_EQ_INT(ndoc, 12);
	struct ufs_opt badbool[] = {{"s3.path_style", "maybe"}};
	CHECK_EQ_INT(ufs_s3_ops.open("bkt", badbool, 1, &st, &err), -EINVAL);
	CHECK(err && strstr(err, "s3.path_style"));
	free(err);
	err = NULL;
	struct ufs_opt halfkey[] = {{"s3.access_key", "A"}};
	CHECK_EQ_INT(ufs_s3_ops.open("bkt", halfkey, 1, &st, &err), -EINVAL);
	CHECK(err != NULL);
	free(err);
	err = NULL;
	struct ufs_opt badep[] = {{"s3.endpoint", "ftp://x"}};
	CHECK_EQ_INT(ufs_s3_ops.open("bkt", badep, 1, &st, &err), -EINVAL);
	CHECK(err && strstr(err, "s3.endpoint"));
	free(err);
	err = NULL;
	struct ufs_opt badep2[] = {{"s3.endpoint", "http://h/path"}};
	CHECK_EQ_INT(ufs_s3_ops.open("bkt", badep2, 1, &st, &err), -EINVAL);
	free(err);
	err = NULL;
	CHECK_EQ_INT(ufs_s3_ops.open("", NULL, 0, &st, &err), -EINVAL);
	free(err);
	err = NULL;
	CHECK_EQ_INT(ufs_s3_ops.open("b@d/x", NULL, 0, &st, &err), -EINVAL);
	free(err);
	err = NULL;
	struct ufs_opt badnum[] = {{"s3.retries", "-1"}};
	CHECK_EQ_INT(ufs_s3_ops.open("bkt", badnum, 1, &st, &err), -EINVAL);
	free(err);
	err = NULL;
	/* all the known options at once; no endpoint: AWS virtual host */
	struct ufs_opt all[] = {{"s3.region", "eu-west-1"},
	    {"s3.access_key", "A"}, {"s3.secret_key", "S"},
	    {"s3.session_token", "T"}, {"s3.path_style", "false"},
	    {"s3.connect_timeout_ms", "100"}, {"s3.timeout_ms", "100"},
	    {"s3.retries", "0"}, {"s3.insecure", "true"}};
	CHECK_EQ_INT(ufs_s3_ops.open("bkt/a/b", all, 9, &st, &err), 0);
	ufs_s3_ops.close(st);
}

/* ---- part 2: s3rver ---- */

static pid_t s3rver_pid;
static char s3rver_dir[128];
static int s3rver_port;

static void
s3rver_kill(void)
{
	if (s3rver_pid > 0) {
		kill(-s3rver_pid, SIGTERM);
		waitpid(s3rver_pid, NULL, 0);
		s3rver_pid = 0;
	}
}

static const char *
find_s3rver(void)
{
	static char path[512];
	const char *env = getenv("FERRY_S3RVER");
	if (env && access(env, X_OK) == 0)
		return env;
	const char *ups[] = {"", "../", "../../", "../../../"};
	for (size_t i = 0; i < ARRAY_SIZE(ups); i++) {
		snprintf(path, sizeof(path),
		    "%s.deps/npm/node_modules/.bin/s3rver", ups[i]);
		if (access(path, X_OK) == 0)
			return path;
	}
	return NULL;
}

static int
s3rver_start(const char *bin)
{
	snprintf(s3rver_dir, sizeof(s3rver_dir), "/tmp/ferry-s3rver-XXXXXX");
	if (!mkdtemp(s3rver_dir))
		return -1;
	char data[200], logf[200];
	snprintf(data, sizeof(data), "%s/data", s3rver_dir);
	snprintf(logf, sizeof(logf), "%s/log", s3rver_dir);
	mkdir(data, 0755);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		setpgid(0, 0);
		int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		setenv("NODE_OPTIONS", "--openssl-legacy-provider", 1);
		execl(bin, bin, "-d", data, "-a", "127.0.0.1", "-p", "0",
		    "--configure-bucket", "bkt", (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	s3rver_pid = pid;
	atexit(s3rver_kill);
	/* It prints "S3rver listening on 127.0.0.1:PORT" when ready. */
	for (int i = 0; i < 150; i++) {
		char buf[4096] = "";
		int fd = open(logf, O_RDONLY);
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf) - 1);
			buf[n > 0 ? n : 0] = 0;
			close(fd);
		}
		const char *p = strstr(buf, "listening on 127.0.0.1:");
		if (p) {
			s3rver_port = atoi(p + strlen("listening on 127.0.0.1:"));
			return s3rver_port > 0 ? 0 : -1;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			fprintf(stderr, "s3rver exited: %s\n", buf);
			s3rver_pid = 0;
			return -1;
		}
		usleep(50000);
	}
	return -1;
}

static size_t
discard(char *p, size_t s, size_t n, void *u)
{
	return s * n;
}

/* PUT through libcurl, unsigned (s3rver accepts anonymous writes). */
static int
put_object(const char *enc_key, const void *data, size_t n)
{
	char url[1024];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/bkt/%s", s3rver_port,
	    enc_key);
	CURL *h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, data);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)n);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	struct curl_slist *hl = curl_slist_append(NULL, "Content-Type:");
	hl = curl_slist_append(hl, "Expect:");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	CURLcode cc = curl_easy_perform(h);
	long st = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	curl_easy_cleanup(h);
	curl_slist_free_all(hl);
	return cc == CURLE_OK && st == 200 ? 0 : -1;
}

static unsigned char big[300000];

/* What the tests put: url-encoded key, relative key under "data/". */
static const struct {
	const char *enc, *rel, *body;
} objs[] = {
    {"data/a.txt", "a.txt", "hello world"},
    {"data/a%20b%2Bc%26d.txt", "a b+c&d.txt", "special"},
    {"data/a-", "a-", "dash"},
    {"data/a0", "a0", "zero"},
    {"data/b/d.txt", "b/d.txt", "dee"},
    {"data/z/y/x.txt", "z/y/x.txt", "deep"},
    /* s3rver rolls up a prefix only if an object sits right under it */
    {"data/z/w.txt", "z/w.txt", "w"},
    /* directory markers, as the S3 console makes them: one alone, one
     * with keys under it */
    {"data/m/", "m/", ""},
    {"data/z/y/", "z/y/", ""},
    {"data/%C3%BCn%C3%AF.txt", "\xc3\xbcn\xc3\xaf.txt", "uni"},
    {"other.txt", NULL, "outside the root prefix"},
};

static const char *const s3_recursive[] = {"a b+c&d.txt", "a-", "a.txt",
    "a0", "b/c.bin", "b/d.txt", "m/", "z/w.txt", "z/y/", "z/y/x.txt",
    "\xc3\xbcn\xc3\xaf.txt"};
static const char *const s3_delim[] = {"a b+c&d.txt", "a-", "a.txt", "a0",
    "b/", "m/", "z/", "\xc3\xbcn\xc3\xaf.txt"};

static void
s3_paginate(void *st, const char *delim, int max, const char *const *want, int nw)
{
	char sa[256] = "";
	int got = 0;
	for (int pages = 0; pages < 50; pages++) {
		struct lst l;
		memset(&l, 0, sizeof(l));
		int trunc = -1;
		CHECK_EQ_INT(ufs_s3_ops.list(st, "", delim, sa, max, lst_fn, &l,
		    &trunc), 0);
		CHECK(l.n <= max);
		for (int i = 0; i < l.n; i++, got++)
			if (got < nw)
				CHECK_EQ_STR(l.keys[i], want[got]);
		if (l.n)
			snprintf(sa, sizeof(sa), "%s", l.keys[l.n - 1]);
		if (!trunc || l.n == 0)
			break;
	}
	CHECK_EQ_INT(got, nw);
}

static void *conc_st;
static char conc_etag[UFS_ETAG_MAX];
static int conc_bad; /* under conc_mu */
static pthread_mutex_t conc_mu = PTHREAD_MUTEX_INITIALIZER;

static void *
conc_reader(void *arg)
{
	unsigned seed = (unsigned)(intptr_t)arg * 7919u + 1;
	static _Thread_local unsigned char b[20000];
	for (int i = 0; i < 20; i++) {
		seed = seed * 1103515245u + 12345u;
		int64_t off = (int64_t)(seed % (sizeof(big) - 100));
		size_t len = 1 + (seed >> 8) % sizeof(b);
		size_t want = len;
		if ((size_t)off + want > sizeof(big))
			want = sizeof(big) - (size_t)off;
		ssize_t n = ufs_s3_ops.read(conc_st, "b/c.bin", conc_etag, off,
		    b, len);
		if (n != (ssize_t)want || memcmp(b, big + off, want) != 0) {
			pthread_mutex_lock(&conc_mu);
			conc_bad++;
			pthread_mutex_unlock(&conc_mu);
		}
	}
	return NULL;
}

TEST(s3rver_end_to_end)
{
	for (size_t i = 0; i < ARRAY_SIZE(objs); i++)
		CHECK_EQ_INT(put_object(objs[i].enc, objs[i].body,
		    strlen(objs[i].body)), 0);
	CHECK_EQ_INT(put_object("data/b/c.bin", big, sizeof(big)), 0);

	/* s3rver checks the access key exists (its default: S3RVER) */
	struct ufs_opt keys[] = {{"s3.access_key", "S3RVER"},
	    {"s3.secret_key", "S3RVER"}};
	void *st = open_s3("bkt/data", s3rver_port, keys, 2);
	CHECK(st != NULL);
	if (!st)
		return;

	struct ufs_stat s;
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "a.txt", &s), 0);
	CHECK_EQ_INT(s.size, 11);
	CHECK_EQ_STR(s.etag, "5eb63bbbe01eeed093cb22bb8f5acdc3"); /* md5 */
	CHECK(s.mtime > 1600000000);
	CHECK_EQ_INT(s.is_dir, 0);
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "a b+c&d.txt", &s), 0);
	CHECK_EQ_INT(s.size, 7);
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "\xc3\xbcn\xc3\xaf.txt", &s), 0);
	CHECK_EQ_INT(s.size, 3);
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "b", &s), 0);
	CHECK_EQ_INT(s.is_dir, 1);
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "z/y", &s), 0);
	CHECK_EQ_INT(s.is_dir, 1);
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "", &s), 0);
	CHECK_EQ_INT(s.is_dir, 1);
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "nope", &s), -ENOENT);
	/* markers are objects; their directories are directories */
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "m/", &s), 0);
	CHECK_EQ_INT(s.is_dir, 0);
	CHECK_EQ_INT(s.size, 0);
	CHECK_EQ_STR(s.etag, "d41d8cd98f00b204e9800998ecf8427e");
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "m", &s), 0);
	CHECK_EQ_INT(s.is_dir, 1);
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "z/y/", &s), 0);
	CHECK_EQ_INT(s.is_dir, 0);
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "b/", &s), -ENOENT);
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "nope/", &s), -ENOENT);
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "b/c.bin", &s), 0);
	CHECK_EQ_INT(s.size, (int64_t)sizeof(big));
	char etag_c[UFS_ETAG_MAX];
	snprintf(etag_c, sizeof(etag_c), "%s", s.etag);

	/* full listings, then pages of 1, 2, 7 */
	struct lst l;
	int trunc = -1;
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(ufs_s3_ops.list(st, "", "", "", 1000, lst_fn, &l, &trunc),
	    0);
	CHECK_EQ_INT(trunc, 0);
	CHECK_EQ_INT(l.n, (int)ARRAY_SIZE(s3_recursive));
	for (int i = 0; i < l.n && i < (int)ARRAY_SIZE(s3_recursive); i++)
		CHECK_EQ_STR(l.keys[i], s3_recursive[i]);
	CHECK_EQ_INT(l.size[2], 11);
	CHECK_EQ_STR(l.etag[2], "5eb63bbbe01eeed093cb22bb8f5acdc3");
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(ufs_s3_ops.list(st, "", "/", "", 1000, lst_fn, &l,
	    &trunc), 0);
	CHECK_EQ_INT(l.n, (int)ARRAY_SIZE(s3_delim));
	for (int i = 0; i < l.n && i < (int)ARRAY_SIZE(s3_delim); i++) {
		CHECK_EQ_STR(l.keys[i], s3_delim[i]);
		CHECK_EQ_INT(l.is_dir[i], s3_delim[i][strlen(s3_delim[i]) - 1]
		    == '/');
	}
	static const int sizes[] = {1, 2, 7};
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		s3_paginate(st, "", sizes[i], s3_recursive,
		    (int)ARRAY_SIZE(s3_recursive));
		s3_paginate(st, "/", sizes[i], s3_delim,
		    (int)ARRAY_SIZE(s3_delim));
	}
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(ufs_s3_ops.list(st, "b/", "/", "", 10, lst_fn, &l,
	    &trunc), 0);
	CHECK_EQ_INT(l.n, 2);
	CHECK_EQ_STR(l.keys[0], "b/c.bin");
	CHECK_EQ_STR(l.keys[1], "b/d.txt");
	/* the marker equal to the prefix is a key of the listing */
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(ufs_s3_ops.list(st, "z/y/", "/", "", 10, lst_fn, &l,
	    &trunc), 0);
	CHECK_EQ_INT(l.n, 2);
	CHECK_EQ_STR(l.keys[0], "z/y/");
	CHECK_EQ_INT(l.is_dir[0], 0);
	CHECK_EQ_STR(l.keys[1], "z/y/x.txt");
	/* another delimiter, through the store */
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(ufs_s3_ops.list(st, "", "+", "", 100, lst_fn, &l,
	    &trunc), 0);
	CHECK_EQ_INT(l.n, (int)ARRAY_SIZE(s3_recursive));
	CHECK_EQ_STR(l.keys[0], "a b+");
	CHECK_EQ_INT(l.is_dir[0], 1);
	for (int i = 1; i < l.n && i < (int)ARRAY_SIZE(s3_recursive); i++)
		CHECK_EQ_STR(l.keys[i], s3_recursive[i]);
	memset(&l, 0, sizeof(l));
	CHECK_EQ_INT(ufs_s3_ops.list(st, "a", "/", "a-", 10, lst_fn, &l,
	    &trunc), 0);
	CHECK_EQ_INT(l.n, 2);
	CHECK_EQ_STR(l.keys[0], "a.txt");
	CHECK_EQ_STR(l.keys[1], "a0");

	/* ranged reads of the big object */
	static unsigned char got[100000];
	static const int64_t offs[] = {0, 1, 65535, 123457,
	    (int64_t)sizeof(big) - 100000};
	for (size_t i = 0; i < ARRAY_SIZE(offs); i++) {
		memset(got, 0, sizeof(got));
		CHECK_EQ_INT(ufs_s3_ops.read(st, "b/c.bin", etag_c, offs[i], got,
		    sizeof(got)), (ssize_t)sizeof(got));
		CHECK(memcmp(got, big + offs[i], sizeof(got)) == 0);
	}
	CHECK_EQ_INT(ufs_s3_ops.read(st, "b/c.bin", "", sizeof(big) - 7, got,
	    sizeof(got)), 7);
	CHECK(memcmp(got, big + sizeof(big) - 7, 7) == 0);
	CHECK_EQ_INT(ufs_s3_ops.read(st, "b/c.bin", "", sizeof(big), got, 10),
	    0);
	char buf[64];
	CHECK_EQ_INT(ufs_s3_ops.read(st, "a b+c&d.txt", "", 0, buf, 64), 7);
	CHECK(memcmp(buf, "special", 7) == 0);
	CHECK_EQ_INT(ufs_s3_ops.read(st, "nope", "", 0, buf, 4), -ENOENT);

	/* many threads on one instance (the handle pool) */
	conc_st = st;
	snprintf(conc_etag, sizeof(conc_etag), "%s", etag_c);
	pthread_t th[8];
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, conc_reader, (void *)(intptr_t)i);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ_INT(conc_bad, 0);

	/* overwrite: the old ETag no longer reads */
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "a.txt", &s), 0);
	CHECK_EQ_INT(ufs_s3_ops.read(st, "a.txt", s.etag, 6, buf, 5), 5);
	CHECK(memcmp(buf, "world", 5) == 0);
	CHECK_EQ_INT(put_object("data/a.txt", "HELLO WORLD!", 12), 0);
	CHECK_EQ_INT(ufs_s3_ops.read(st, "a.txt", s.etag, 6, buf, 5), -ESTALE);
	struct ufs_stat s2;
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "a.txt", &s2), 0);
	CHECK_EQ_INT(s2.size, 12);
	CHECK(strcmp(s2.etag, s.etag) != 0);
	CHECK_EQ_INT(ufs_s3_ops.read(st, "a.txt", s2.etag, 6, buf, 6), 6);
	CHECK(memcmp(buf, "WORLD!", 6) == 0);
	ufs_s3_ops.close(st);

	/* an unknown access key: s3rver says 403 */
	struct ufs_opt badkeys[] = {{"s3.access_key", "NOBODY"},
	    {"s3.secret_key", "x"}};
	st = open_s3("bkt/data", s3rver_port, badkeys, 2);
	CHECK_EQ_INT(ufs_s3_ops.read(st, "a.txt", "", 0, buf, 4), -EACCES);
	ufs_s3_ops.close(st);
	/* anonymous reads work on s3rver too; a missing bucket is ENOENT */
	char ep[64];
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", s3rver_port);
	struct ufs_opt anon[] = {{"s3.endpoint", ep}};
	char *err = NULL;
	CHECK_EQ_INT(ufs_s3_ops.open("bkt/data/b", anon, 1, &st, &err), 0);
	CHECK_EQ_INT(ufs_s3_ops.read(st, "d.txt", "", 1, buf, 10), 2);
	CHECK(memcmp(buf, "ee", 2) == 0);
	ufs_s3_ops.close(st);
	CHECK_EQ_INT(ufs_s3_ops.open("nobucket", anon, 1, &st, &err), 0);
	CHECK_EQ_INT(ufs_s3_ops.stat(st, "x", &s), -ENOENT);
	ufs_s3_ops.close(st);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	/* Loopback only: a proxy from the environment must not interfere. */
	setenv("no_proxy", "127.0.0.1,localhost,.localhost", 1);
	setenv("NO_PROXY", "127.0.0.1,localhost,.localhost", 1);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	log_level = LOG_LVL_ERROR; /* the failures provoked here are expected */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)((i * 2654435761u) >> 11);

	fake_start();
	RUN(read_request_shape);
	RUN(virtual_host_style);
	RUN(read_statuses);
	RUN(stat_requests);
	RUN(list_requests);
	RUN(botocore_agrees);
	RUN(dead_junk_and_slow_servers);
	RUN(open_options);
	fake_stop();

	const char *bin = find_s3rver();
	if (!bin) {
		printf("# SKIP s3rver part: .deps/npm/node_modules/.bin/s3rver "
		       "not found (make deps installs it)\n");
	} else if (s3rver_start(bin) != 0) {
		printf("# s3rver did not start\n");
		tap_failed++;
	} else {
		RUN(s3rver_end_to_end);
	}
	s3rver_kill();
	if (s3rver_dir[0]) {
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s3rver_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cleanup of %s failed\n", s3rver_dir);
	}
	curl_global_cleanup();
	TAP_DONE();
}
