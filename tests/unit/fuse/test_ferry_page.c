/*
 * test_ferry_page.c: the two libferry calls `ferry fuse` is built on,
 * against a fake control API on 127.0.0.1 (one thread, one request per
 * connection, canned answers chosen by the current test):
 * ferry_list_page (one page, its continuation, the guards against a
 * worker that does not move forward) and ferry_pread_etag (bytes of the
 * version asked for only; another version is -ESTALE with the caller's
 * buffer untouched).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ferry.h"
#include "tap.h"

/* What the server answers next, and the target it last saw. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char answer[8192];
static char last_target[4096];
static int srv_fd = -1, srv_port;

static void
set_answer(const char *a)
{
	pthread_mutex_lock(&mu);
	snprintf(answer, sizeof(answer), "%s", a);
	pthread_mutex_unlock(&mu);
}

static void
get_target(char *out, size_t n)
{
	pthread_mutex_lock(&mu);
	snprintf(out, n, "%s", last_target);
	pthread_mutex_unlock(&mu);
}

static void *
srv_main(void *arg)
{
	for (;;) {
		int fd = accept(srv_fd, NULL, NULL);
		if (fd < 0)
			return NULL;
		struct timeval tv = {5, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		char in[8192];
		size_t got = 0;
		while (got < sizeof(in) - 1) {
			ssize_t r = recv(fd, in + got, sizeof(in) - 1 - got, 0);
			if (r <= 0)
				break;
			got += (size_t)r;
			in[got] = 0;
			if (strstr(in, "\r\n\r\n"))
				break;
		}
		in[got] = 0;
		char out[8192];
		pthread_mutex_lock(&mu);
		char *sp = strchr(in, ' '), *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
		if (sp && sp2)
			snprintf(last_target, sizeof(last_target), "%.*s",
			    (int)(sp2 - sp - 1), sp + 1);
		snprintf(out, sizeof(out), "%s", answer);
		pthread_mutex_unlock(&mu);
		size_t n = strlen(out), off = 0;
		while (off < n) {
			ssize_t w = send(fd, out + off, n - off, MSG_NOSIGNAL);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		close(fd);
	}
}

static void
srv_start(void)
{
	srv_fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int one = 1;
	setsockopt(srv_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(srv_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(srv_fd, 16) != 0) {
		perror("fake server");
		exit(1);
	}
	socklen_t al = sizeof(a);
	getsockname(srv_fd, (struct sockaddr *)&a, &al);
	srv_port = ntohs(a.sin_port);
	pthread_t t;
	pthread_create(&t, NULL, srv_main, NULL);
	pthread_detach(t);
}

static ferry_t *
client(void)
{
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", srv_port);
	ferry_t *f = NULL;
	if (ferry_connect(addr, NULL, &f) != 0)
		exit(1);
	return f;
}

/* An HTTP answer with a JSON body. */
static void
answer_json(const char *body)
{
	char a[8192];
	snprintf(a, sizeof(a),
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    strlen(body), body);
	set_answer(a);
}

struct seen {
	char names[8][64];
	int n;
	int stop_at; /* return 7 at this entry, -1 never */
};

static int
collect(void *arg, const char *name, const struct ferry_stat *st)
{
	struct seen *s = arg;
	if (s->n == s->stop_at)
		return 7;
	if (s->n < 8)
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s%s", name,
		    st->is_dir ? "/" : "");
	s->n++;
	return 0;
}

TEST(list_page_and_continuation)
{
	ferry_t *f = client();
	char next[FERRY_NEXT_MAX], tg[4096];
	int trunc = -1;
	struct seen s = {.stop_at = -1};
	answer_json("{\"entries\":[{\"name\":\"a\",\"size\":1,\"mtime\":5,"
		    "\"is_dir\":false,\"etag\":\"e1\"},{\"name\":\"d\",\"size\":0,"
		    "\"mtime\":0,\"is_dir\":true,\"etag\":\"\"}],"
		    "\"truncated\":true,\"next\":\"d/\"}");
	CHECK_EQ_INT(ferry_list_page(f, "/m/x y", NULL, 2, collect, &s, next,
			 sizeof(next), &trunc), 0);
	CHECK_EQ_INT(s.n, 2);
	CHECK_EQ_STR(s.names[0], "a");
	CHECK_EQ_STR(s.names[1], "d/");
	CHECK_EQ_INT(trunc, 1);
	CHECK_EQ_STR(next, "d/");
	get_target(tg, sizeof(tg));
	CHECK_EQ_STR(tg, "/v1/list?path=/m/x%20y&max=2");

	/* The last page: no continuation; start_after is sent encoded. */
	answer_json("{\"entries\":[{\"name\":\"z\",\"size\":3,\"mtime\":5,"
		    "\"is_dir\":false,\"etag\":\"e3\"}],\"truncated\":false}");
	s.n = 0;
	CHECK_EQ_INT(ferry_list_page(f, "/m", "d/", 5000, collect, &s, next,
			 sizeof(next), &trunc), 0);
	CHECK_EQ_INT(s.n, 1);
	CHECK_EQ_INT(trunc, 0);
	CHECK_EQ_STR(next, "");
	get_target(tg, sizeof(tg));
	CHECK_EQ_STR(tg, "/v1/list?path=/m&max=1000&start_after=d%2F");

	/* Truncated without "next": continue after the last name. */
	answer_json("{\"entries\":[{\"name\":\"q\",\"size\":3,\"mtime\":5,"
		    "\"is_dir\":false,\"etag\":\"e\"}],\"truncated\":true}");
	CHECK_EQ_INT(ferry_list_page(f, "/m", "", 10, collect, &s, next,
			 sizeof(next), &trunc), 0);
	CHECK_EQ_INT(trunc, 1);
	CHECK_EQ_STR(next, "q");

	/* fn stops the page: its value comes back. */
	s.n = 0;
	s.stop_at = 1;
	answer_json("{\"entries\":[{\"name\":\"a\",\"size\":1,\"mtime\":5,"
		    "\"is_dir\":false,\"etag\":\"e1\"},{\"name\":\"b\",\"size\":1,"
		    "\"mtime\":5,\"is_dir\":false,\"etag\":\"e2\"}],"
		    "\"truncated\":true,\"next\":\"b\"}");
	CHECK_EQ_INT(ferry_list_page(f, "/m", NULL, 10, collect, &s, next,
			 sizeof(next), &trunc), 7);
	ferry_close(&f);
}

TEST(list_page_guards)
{
	ferry_t *f = client();
	char next[FERRY_NEXT_MAX];
	int trunc;
	struct seen s = {.stop_at = -1};
	/* A continuation that does not move forward. */
	answer_json("{\"entries\":[{\"name\":\"c\",\"size\":1,\"mtime\":5,"
		    "\"is_dir\":false,\"etag\":\"e\"}],\"truncated\":true,"
		    "\"next\":\"b\"}");
	CHECK_EQ_INT(ferry_list_page(f, "/m", "c", 10, collect, &s, next,
			 sizeof(next), &trunc), -EPROTO);
	CHECK_EQ_INT(trunc, 0);
	/* A continuation longer than any name. */
	char body[4096], longname[FERRY_NEXT_MAX + 10];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	snprintf(body, sizeof(body),
	    "{\"entries\":[],\"truncated\":true,\"next\":\"%s\"}", longname);
	answer_json(body);
	CHECK_EQ_INT(ferry_list_page(f, "/m", NULL, 10, collect, &s, next,
			 sizeof(next), &trunc), -EPROTO);
	/* Bad arguments never reach the server. */
	CHECK_EQ_INT(ferry_list_page(f, "/m", NULL, 10, collect, &s, next, 16,
			 &trunc), -EINVAL);
	CHECK_EQ_INT(ferry_list_page(f, "/m", NULL, 0, collect, &s, next,
			 sizeof(next), &trunc), -EINVAL);
	CHECK_EQ_INT(ferry_list_page(f, "m", NULL, 10, collect, &s, next,
			 sizeof(next), &trunc), -EINVAL);
	/* Errors map as for the other calls. */
	static const char err[] =
	    "{\"error\":\"no such file\",\"code\":\"NoSuchFile\"}";
	char a[512];
	snprintf(a, sizeof(a), "HTTP/1.1 404 Not Found\r\nContent-Length: %zu\r\n"
			       "Connection: close\r\n\r\n%s", strlen(err), err);
	set_answer(a);
	CHECK_EQ_INT(ferry_list_page(f, "/m/gone", NULL, 10, collect, &s, next,
			 sizeof(next), &trunc), -ENOENT);
	ferry_close(&f);
}

static void
answer_data(const char *etag_hdr, const char *body)
{
	char a[8192];
	snprintf(a, sizeof(a),
	    "HTTP/1.1 206 Partial Content\r\n%s"
	    "Content-Range: bytes 2-%zu/100\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s",
	    etag_hdr, 2 + strlen(body) - 1, strlen(body), body);
	set_answer(a);
}

TEST(pread_etag)
{
	ferry_t *f = client();
	char buf[16];
	answer_data("ETag: \"v1\"\r\n", "hello");
	memset(buf, 'x', sizeof(buf));
	CHECK_EQ_INT(ferry_pread_etag(f, "/m/f", buf, 5, 2, "v1"), 5);
	CHECK(memcmp(buf, "hello", 5) == 0);
	char tg[4096];
	get_target(tg, sizeof(tg));
	CHECK_EQ_STR(tg, "/v1/data?path=/m/f");

	/* Another version: -ESTALE and not a byte written. */
	memset(buf, 'x', sizeof(buf));
	CHECK_EQ_INT(ferry_pread_etag(f, "/m/f", buf, 5, 2, "v2"), -ESTALE);
	CHECK(memcmp(buf, "xxxxx", 5) == 0);
	/* A prefix of the wanted ETag is another version too. */
	CHECK_EQ_INT(ferry_pread_etag(f, "/m/f", buf, 5, 2, "v"), -ESTALE);
	CHECK(memcmp(buf, "xxxxx", 5) == 0);
	/* No ETag at all when one is wanted: not trusted. */
	answer_data("", "hello");
	CHECK_EQ_INT(ferry_pread_etag(f, "/m/f", buf, 5, 2, "v1"), -EPROTO);
	CHECK(memcmp(buf, "xxxxx", 5) == 0);
	/* Nothing asked for: any version (as ferry_pread). */
	CHECK_EQ_INT(ferry_pread_etag(f, "/m/f", buf, 5, 2, NULL), 5);
	CHECK_EQ_INT(ferry_pread_etag(f, "/m/f", buf, 5, 2, ""), 5);
	answer_data("ETag: \"v2\"\r\n", "hello");
	CHECK_EQ_INT(ferry_pread(f, "/m/f", buf, 5, 2), 5);
	/* Past the end is 0, whatever the version. */
	set_answer("HTTP/1.1 416 Range Not Satisfiable\r\n"
		   "Content-Range: bytes */100\r\nContent-Length: 0\r\n"
		   "Connection: close\r\n\r\n");
	CHECK_EQ_INT(ferry_pread_etag(f, "/m/f", buf, 5, 200, "v1"), 0);
	CHECK(strcmp(ferry_strerror(-ESTALE), "unknown error") != 0);
	ferry_close(&f);
}

int
main(void)
{
	srv_start();
	RUN(list_page_and_continuation);
	RUN(list_page_guards);
	RUN(pread_etag);
	TAP_DONE();
}
