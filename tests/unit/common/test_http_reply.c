/* Unit tests for http_reply: header lines as libcurl hands them over,
 * ETag comparison, Content-Range (the s3:// backend, the router and
 * libferry all read replies through these). */
#include <string.h>

#include "common/http_reply.h"
#include "tap.h"

static int
split(const char *line, struct http_hdr *h)
{
	return http_hdr_split(line, strlen(line), h);
}

TEST(header_lines)
{
	struct http_hdr h;
	CHECK_EQ_INT(split("Content-Range:  bytes 0-9/100 \r\n", &h), 0);
	CHECK(http_hdr_is(&h, "content-range"));
	CHECK(!http_hdr_is(&h, "content-length"));
	CHECK_EQ_INT(h.value_len, 13);
	CHECK(memcmp(h.value, "bytes 0-9/100", 13) == 0);
	CHECK_EQ_INT(split("HTTP/1.1 206 Partial Content\r\n", &h), 0);
	CHECK_EQ_INT(h.status, 206);
	CHECK_EQ_INT(split("HTTP/1.1 2\r\n", &h), -1);
	CHECK_EQ_INT(split("\r\n", &h), -1);
	CHECK_EQ_INT(split("no colon here\r\n", &h), -1);
	CHECK_EQ_INT(split(": empty name\r\n", &h), -1);
	CHECK_EQ_INT(split("X-Empty:\r\n", &h), 0);
	CHECK_EQ_INT(h.value_len, 0);
	/* Not NUL-terminated: only n bytes are read. */
	char buf[] = {'E', 't', 'a', 'g', ':', ' ', '"', 'a', '"', 'Z', 'Z'};
	CHECK_EQ_INT(http_hdr_split(buf, 9, &h), 0);
	CHECK(http_etag_is(h.value, h.value_len, "a"));
}

TEST(etags)
{
	CHECK(http_etag_is("\"abc\"", 5, "abc"));
	CHECK(http_etag_is("W/\"abc\"", 7, "abc"));
	CHECK(http_etag_is("abc", 3, "abc"));
	CHECK(!http_etag_is("\"abcd\"", 6, "abc"));
	CHECK(!http_etag_is("\"ab\"", 4, "abc"));
	CHECK(!http_etag_is("", 0, "abc"));
	char out[8];
	CHECK_EQ_INT(http_etag_value("\"12345\"", 7, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "12345");
	CHECK_EQ_INT(http_etag_value("\"12345678\"", 10, out, sizeof(out)), -1);
}

TEST(content_range)
{
	int64_t a, b, t;
	CHECK_EQ_INT(http_content_range("bytes 0-99/1000", 15, &a, &b, &t), 0);
	CHECK(a == 0 && b == 99 && t == 1000);
	CHECK_EQ_INT(http_content_range("bytes 5-9/*", 11, &a, &b, &t), 0);
	CHECK(a == 5 && b == 9 && t == -1);
	CHECK_EQ_INT(http_content_range("bytes */1000", 12, &a, &b, &t), 0);
	CHECK(a == -1 && b == -1 && t == 1000);
	CHECK_EQ_INT(http_content_range("bytes 0-0/0", 11, &a, &b, &t), 0);
	CHECK(t == 0);
	const char *bad[] = {"bytes 9-5/10", "bytes -5/10", "bytes 0-5", "items 0-5/10",
	    "bytes 0-5/x", "bytes a-b/10", "bytes 99999999999999999999-1/2", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ_INT(http_content_range(bad[i], strlen(bad[i]), &a, &b, &t), -1);
}

int
main(void)
{
	RUN(header_lines);
	RUN(etags);
	RUN(content_range);
	TAP_DONE();
}
