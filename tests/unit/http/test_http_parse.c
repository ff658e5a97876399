/*
 * test_http_parse.c: unit tests for the request-head parser, header and
 * query lookups.  Single-threaded; every input is a literal or built in a
 * local buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parse.h"
#include "tap.h"

static struct http_request req;

static int
parse_str(const char *s)
{
	return http_parse_request(s, strlen(s), &req);
}

static int
span_eq(const char *p, size_t n, const char *lit)
{
	return p && n == strlen(lit) && memcmp(p, lit, n) == 0;
}

TEST(simple_get)
{
	const char *s = "GET /bucket/key?x=1&y HTTP/1.1\r\nHost: a.b\r\n"
	    "X-Thing:   spaced value \t\r\n\r\n";
	int r = parse_str(s);
	CHECK_EQ_INT(r, strlen(s));
	CHECK_EQ_INT(req.head_len, strlen(s));
	CHECK(span_eq(req.method, req.method_len, "GET"));
	CHECK(span_eq(req.target, req.target_len, "/bucket/key?x=1&y"));
	CHECK(span_eq(req.path, req.path_len, "/bucket/key"));
	CHECK(span_eq(req.query, req.query_len, "x=1&y"));
	CHECK_EQ_INT(req.version_minor, 1);
	CHECK_EQ_INT(req.nheaders, 2);
	CHECK_EQ_INT(req.content_length, -1);
	CHECK_EQ_INT(req.chunked, 0);
	CHECK_EQ_INT(req.keep_alive, 1);
	CHECK_EQ_INT(req.expect_continue, 0);
	size_t vl;
	const char *v = http_header_get(&req, "x-thing", &vl);
	CHECK(span_eq(v, vl, "spaced value"));
	v = http_header_get(&req, "HOST", &vl);
	CHECK(span_eq(v, vl, "a.b"));
	CHECK(http_header_get(&req, "missing", &vl) == NULL);
	CHECK(http_header_get(&req, "Hos", &vl) == NULL);
	/* pointers are into the input */
	CHECK(req.method == s);
}

TEST(no_query)
{
	CHECK(parse_str("GET / HTTP/1.1\r\n\r\n") > 0);
	CHECK(span_eq(req.path, req.path_len, "/"));
	CHECK_EQ_INT(req.query_len, 0);
	CHECK(req.query != NULL);
	CHECK(parse_str("GET /a? HTTP/1.1\r\n\r\n") > 0);
	CHECK(span_eq(req.path, req.path_len, "/a"));
	CHECK_EQ_INT(req.query_len, 0);
}

TEST(bare_lf_and_leading_empty_lines)
{
	const char *s = "\r\n\nPUT /k HTTP/1.1\nContent-Length: 5\n\nhello";
	int r = parse_str(s);
	CHECK_EQ_INT(r, strlen(s) - 5);
	CHECK(span_eq(req.method, req.method_len, "PUT"));
	CHECK_EQ_INT(req.content_length, 5);
	/* too many leading empty lines */
	char buf[64] = "";
	for (int i = 0; i < 9; i++)
		strcat(buf, "\r\n");
	strcat(buf, "GET / HTTP/1.1\r\n\r\n");
	CHECK_EQ_INT(parse_str(buf), -400);
}

TEST(http10_keepalive_rules)
{
	CHECK(parse_str("GET / HTTP/1.0\r\n\r\n") > 0);
	CHECK_EQ_INT(req.version_minor, 0);
	CHECK_EQ_INT(req.keep_alive, 0);
	CHECK(parse_str("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0);
	CHECK_EQ_INT(req.keep_alive, 1);
	CHECK(parse_str("GET / HTTP/1.1\r\nConnection: close\r\n\r\n") > 0);
	CHECK_EQ_INT(req.keep_alive, 0);
	CHECK(parse_str("GET / HTTP/1.1\r\nConnection: TE, Close\r\n\r\n") > 0);
	CHECK_EQ_INT(req.keep_alive, 0);
	CHECK(parse_str("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n") > 0);
	CHECK_EQ_INT(req.keep_alive, 1);
	/* Expect is ignored for HTTP/1.0 */
	CHECK(parse_str("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n"
	    "Content-Length: 1\r\n\r\n") > 0);
	CHECK_EQ_INT(req.expect_continue, 0);
	CHECK(parse_str("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\n"
	    "Content-Length: 1\r\n\r\n") > 0);
	CHECK_EQ_INT(req.expect_continue, 1);
}

TEST(pipelined)
{
	const char *a = "GET /one HTTP/1.1\r\nHost: h\r\n\r\n";
	const char *b = "GET /two HTTP/1.1\r\nHost: h\r\n\r\n";
	char buf[256];
	snprintf(buf, sizeof(buf), "%s%s", a, b);
	int r = http_parse_request(buf, strlen(buf), &req);
	CHECK_EQ_INT(r, strlen(a));
	CHECK(span_eq(req.path, req.path_len, "/one"));
	int r2 = http_parse_request(buf + r, strlen(buf) - (size_t)r, &req);
	CHECK_EQ_INT(r2, strlen(b));
	CHECK(span_eq(req.path, req.path_len, "/two"));
}

/* Every proper prefix of a valid head needs more bytes. */
TEST(partial_each_byte)
{
	const char *s = "POST /up?uploads HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n";
	size_t n = strlen(s);
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		char *copy = malloc(i + 1); /* exact size: ASan catches overreads */
		memcpy(copy, s, i);
		if (http_parse_request(copy, i, &req) != 0)
			bad++;
		free(copy);
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(parse_str(s), n);
	CHECK_EQ_INT(req.chunked, 1);
	CHECK_EQ_INT(req.expect_continue, 1);
	CHECK_EQ_INT(req.content_length, -1);
}

TEST(malformed_400)
{
	static const char *const bad[] = {
		"GET  / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1 \r\n\r\n",
		" GET / HTTP/1.1\r\n\r\n",
		"GET /\r\n\r\n",
		"GET / http/1.1\r\n\r\n",
		"GET / HTTP/1.x\r\n\r\n",
		"GET / HTTP/1.10\r\n\r\n",
		"G(T / HTTP/1.1\r\n\r\n",
		"GET http://h/x HTTP/1.1\r\n\r\n",
		"GET h:80 HTTP/1.1\r\n\r\n",
		"GET * HTTP/1.1\r\n\r\n",
		"GET /a\tb HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
		"GET / HTTP/1.1\r\n: x\r\n\r\n",
		"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
		"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: \r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = parse_str(bad[i]);
		if (r != -400)
			fprintf(stderr, "  case %zu: got %d\n", i, r);
		CHECK_EQ_INT(r, -400);
	}
	/* embedded NUL in the request line and in a header value */
	static const char nul1[] = "GET /a\0b HTTP/1.1\r\n\r\n";
	CHECK_EQ_INT(http_parse_request(nul1, sizeof(nul1) - 1, &req), -400);
	static const char nul2[] = "GET / HTTP/1.1\r\nA: x\0y\r\n\r\n";
	CHECK_EQ_INT(http_parse_request(nul2, sizeof(nul2) - 1, &req), -400);
	/* a NUL is rejected even before the line completes */
	static const char nul3[] = "GET /\0";
	CHECK_EQ_INT(http_parse_request(nul3, sizeof(nul3) - 1, &req), -400);
}

TEST(accepted_edge_cases)
{
	/* equal duplicate Content-Length, OPTIONS *, large valid length */
	CHECK(parse_str("PUT / HTTP/1.1\r\nContent-Length: 7\r\n"
	    "content-length: 7\r\n\r\n") > 0);
	CHECK_EQ_INT(req.content_length, 7);
	CHECK(parse_str("OPTIONS * HTTP/1.1\r\n\r\n") > 0);
	CHECK(span_eq(req.target, req.target_len, "*"));
	CHECK(parse_str("PUT / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n") > 0);
	CHECK_EQ_INT(req.content_length, INT64_MAX);
	CHECK(parse_str("PUT / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n") > 0);
	CHECK_EQ_INT(req.chunked, 1);
	CHECK(parse_str("GET / HTTP/1.1\r\nEmpty:\r\nX-A: \xc3\xa9\r\n\r\n") > 0);
	size_t vl = 99;
	const char *v = http_header_get(&req, "empty", &vl);
	CHECK(v != NULL);
	CHECK_EQ_INT(vl, 0);
	CHECK(parse_str("M-SEARCH /%20x HTTP/1.1\r\n\r\n") > 0);
}

TEST(unsupported_501_505)
{
	CHECK_EQ_INT(parse_str("PUT / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), -501);
	CHECK_EQ_INT(parse_str("PUT / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), -501);
	CHECK_EQ_INT(parse_str("PUT / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n"), -501);
	CHECK_EQ_INT(parse_str("GET / HTTP/2.0\r\n\r\n"), -505);
	CHECK_EQ_INT(parse_str("GET / HTTP/1.2\r\n\r\n"), -505);
	CHECK_EQ_INT(parse_str("GET / HTTP/0.9\r\n\r\n"), -505);
}

TEST(limits)
{
	size_t big = HTTP_MAX_HEAD + 4096;
	char *buf = malloc(big);

	/* request line exactly at the limit is fine; one more is 414 */
	size_t tl = HTTP_MAX_LINE - strlen("GET  HTTP/1.1");
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', tl - 1);
	size_t n = 4 + tl;
	memcpy(buf + n, " HTTP/1.1\r\n\r\n", 13);
	CHECK_EQ_INT(http_parse_request(buf, n + 13, &req), n + 13);
	CHECK_EQ_INT(req.target_len, tl);
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', tl);
	n = 5 + tl;
	memcpy(buf + n, " HTTP/1.1\r\n\r\n", 13);
	CHECK_EQ_INT(http_parse_request(buf, n + 13, &req), -414);
	/* and an incomplete line over the limit is 414 without waiting */
	memset(buf, 'a', HTTP_MAX_LINE + 10);
	memcpy(buf, "GET /", 5);
	CHECK_EQ_INT(http_parse_request(buf, HTTP_MAX_LINE + 2, &req), -414);
	CHECK_EQ_INT(http_parse_request(buf, HTTP_MAX_LINE, &req), 0);

	/* too many headers */
	n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)sprintf(buf + n, "X-%d: v\r\n", i);
	memcpy(buf + n, "\r\n", 2);
	CHECK_EQ_INT(http_parse_request(buf, n + 2, &req), n + 2);
	CHECK_EQ_INT(req.nheaders, HTTP_MAX_HEADERS);
	n += (size_t)sprintf(buf + n, "X-last: v\r\n");
	memcpy(buf + n, "\r\n", 2);
	CHECK_EQ_INT(http_parse_request(buf, n + 2, &req), -431);

	/* head over HTTP_MAX_HEAD: incomplete and complete forms */
	n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nX-Big: ");
	memset(buf + n, 'b', big - n);
	CHECK_EQ_INT(http_parse_request(buf, HTTP_MAX_HEAD - 1, &req), 0);
	CHECK_EQ_INT(http_parse_request(buf, HTTP_MAX_HEAD, &req), -431);
	memcpy(buf + HTTP_MAX_HEAD + 10, "\r\n\r\n", 4);
	CHECK_EQ_INT(http_parse_request(buf, HTTP_MAX_HEAD + 14, &req), -431);
	/* head of exactly HTTP_MAX_HEAD bytes is accepted */
	memcpy(buf + HTTP_MAX_HEAD - 4, "\r\n\r\n", 4);
	CHECK_EQ_INT(http_parse_request(buf, HTTP_MAX_HEAD + 100, &req),
	    HTTP_MAX_HEAD);
	free(buf);
}

TEST(query_get)
{
	const char *q = "list-type=2&prefix=a%2Fb&delimiter=&uploads&x=1=2&prefix2=z";
	size_t ql = strlen(q);
	const char *v;
	size_t vl;
	CHECK_EQ_INT(http_query_get(q, ql, "list-type", &v, &vl), 1);
	CHECK(span_eq(v, vl, "2"));
	CHECK_EQ_INT(http_query_get(q, ql, "prefix", &v, &vl), 1);
	CHECK(span_eq(v, vl, "a%2Fb"));
	CHECK_EQ_INT(http_query_get(q, ql, "delimiter", &v, &vl), 1);
	CHECK_EQ_INT(vl, 0);
	CHECK_EQ_INT(http_query_get(q, ql, "uploads", &v, &vl), 1);
	CHECK_EQ_INT(vl, 0);
	CHECK_EQ_INT(http_query_get(q, ql, "x", &v, &vl), 1);
	CHECK(span_eq(v, vl, "1=2"));
	CHECK_EQ_INT(http_query_get(q, ql, "prefix2", &v, &vl), 1);
	CHECK(span_eq(v, vl, "z"));
	CHECK_EQ_INT(http_query_get(q, ql, "pre", &v, &vl), 0);
	CHECK_EQ_INT(http_query_get(q, ql, "list", &v, &vl), 0);
	CHECK_EQ_INT(http_query_get(q, ql, "Prefix", &v, &vl), 0);
	CHECK_EQ_INT(http_query_get("", 0, "a", &v, &vl), 0);
	CHECK_EQ_INT(http_query_get("&&a&", 4, "a", &v, &vl), 1);
	CHECK_EQ_INT(vl, 0);
	/* bounded by qlen, not by NUL */
	CHECK_EQ_INT(http_query_get("a=1&b=2", 3, "b", &v, &vl), 0);
	CHECK_EQ_INT(http_query_get("a=1&b=2", 3, "a", &v, &vl), 1);
	CHECK(span_eq(v, vl, "1"));
}

TEST(reasons)
{
	CHECK_EQ_STR(http_reason(200), "OK");
	CHECK_EQ_STR(http_reason(404), "Not Found");
	CHECK_EQ_STR(http_reason(431), "Request Header Fields Too Large");
	CHECK_EQ_STR(http_reason(505), "HTTP Version Not Supported");
	CHECK(http_reason(599) != NULL);
	CHECK(http_reason(42) != NULL);
}

int
main(void)
{
	RUN(simple_get);
	RUN(no_query);
	RUN(bare_lf_and_leading_empty_lines);
	RUN(http10_keepalive_rules);
	RUN(pipelined);
	RUN(partial_each_byte);
	RUN(malformed_400);
	RUN(accepted_edge_cases);
	RUN(unsupported_501_505);
	RUN(limits);
	RUN(query_get);
	RUN(reasons);
	TAP_DONE();
}
