/*
 * test_s3_body.c: S3 upload bodies (s3_body.c): plain bodies with each
 * check (x-amz-content-sha256, Content-MD5, every x-amz-checksum-*), the
 * size rules, aws-chunked bodies as botocore sends them (unsigned chunks
 * and a checksum trailer), AWS's published signed-chunk and signed-trailer
 * examples, and tampered variants of each, which must be refused with
 * S3's code.  Every accepted body is fed whole, byte by byte and in odd
 * pieces: the verdict and the decoded bytes must not depend on the split.
 * Single-threaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/sigv4.h"
#include "http/http_parse.h"
#include "s3/s3_body.h"
#include "tap.h"

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define T0 1369353600 /* 20130524T000000Z */
#define HELLO "hello world"
#define HELLO_MD5 "5eb63bbbe01eeed093cb22bb8f5acdc3"
#define HELLO_SHA "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"

/* --- a harness: parse a head, feed a body in pieces, keep the outcome ---- */

struct run {
	char head[16384];
	struct http_request req;
	struct s3_body_err err;
	int rc;
	int stage;           /* where it stopped: 0 new, 1 feed, 2 finish */
	unsigned char *out;  /* what the sink got */
	size_t out_len, out_cap;
	size_t max_piece;    /* largest piece the sink got */
	int sink_fail_after; /* > 0: the sink fails once this many bytes came */
	char etag[33];
	const char *ck_name;
	char ck_value[64];
};

static int
sink(void *arg, const void *p, size_t n)
{
	struct run *r = arg;
	if (r->sink_fail_after > 0 && r->out_len + n > (size_t)r->sink_fail_after)
		return -ENOSPC;
	if (r->out_len + n > r->out_cap) {
		r->out_cap = (r->out_len + n) * 2;
		r->out = realloc(r->out, r->out_cap);
	}
	memcpy(r->out + r->out_len, p, n);
	r->out_len += n;
	if (n > r->max_piece)
		r->max_piece = n;
	return 0;
}

static const struct s3_body_cfg plain_cfg = {0};

/*
 * head: request line and header lines, "\r\n"-separated, without the
 * final empty line.  step 0 feeds the body whole.  Returns the rc.
 */
static int
run_body(struct run *r, const char *head, const void *body, size_t n,
    size_t step, const struct s3_body_cfg *cfg)
{
	free(r->out);
	memset(r, 0, sizeof(*r));
	int hl = snprintf(r->head, sizeof(r->head), "%s\r\n\r\n", head);
	if (hl <= 0 || (size_t)hl >= sizeof(r->head) ||
	    http_parse_request(r->head, (size_t)hl, &r->req) != hl) {
		fprintf(stderr, "  bad test head: %s\n", head);
		return r->rc = -EINVAL;
	}
	struct s3_body *b = NULL;
	r->rc = s3_body_new(&b, &r->req, cfg ? cfg : &plain_cfg, sink, r,
	    &r->err);
	if (r->rc < 0)
		return r->rc;
	r->stage = 1;
	const unsigned char *p = body;
	size_t off = 0;
	while (off < n) {
		size_t take = step ? step : n;
		if (take > n - off)
			take = n - off;
		r->rc = s3_body_feed(b, p + off, take);
		if (r->rc < 0)
			break;
		off += take;
	}
	if (r->rc == 0) {
		r->stage = 2;
		r->rc = s3_body_finish(b);
	}
	if (r->rc == 0) {
		/* finish twice is harmless */
		CHECK_EQ_INT(s3_body_finish(b), 0);
		s3_body_etag(b, r->etag);
		if (!s3_body_checksum(b, &r->ck_name, r->ck_value))
			r->ck_name = NULL;
		CHECK_EQ_INT(s3_body_size(b), r->out_len);
	} else {
		r->err = *s3_body_error(b);
		/* sticky: feed and finish keep answering the error */
		CHECK_EQ_INT(s3_body_feed(b, "x", 1), r->rc);
		CHECK_EQ_INT(s3_body_finish(b), r->rc);
	}
	/* the sink never got more than was fed */
	CHECK(r->out_len <= n);
	s3_body_free(&b);
	CHECK(b == NULL);
	return r->rc;
}

static void
run_free(struct run *r)
{
	free(r->out);
	r->out = NULL;
}

/* Accepted whole, byte by byte and in odd pieces, with the same payload. */
static void
check_ok(const char *head, const void *body, size_t n,
    const struct s3_body_cfg *cfg, const void *want, size_t want_len)
{
	static const size_t steps[] = {0, 1, 2, 7, 13, 100, 4096, 65537};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct run r = {0};
		int rc = run_body(&r, head, body, n, steps[i], cfg);
		if (rc != 0)
			fprintf(stderr, "  step %zu: %s (%s)\n", steps[i],
			    r.err.code ? r.err.code : "?", r.err.msg);
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(r.out_len, want_len);
		CHECK(r.out_len == want_len && (want_len == 0 ||
		    memcmp(r.out, want, want_len) == 0));
		if (steps[i])
			CHECK(r.max_piece <= steps[i]);
		run_free(&r);
	}
}

/* Refused at stage with code (and status). */
static void
check_err(const char *head, const void *body, size_t n,
    const struct s3_body_cfg *cfg, int stage, int status, const char *code)
{
	static const size_t steps[] = {0, 1, 5};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct run r = {0};
		CHECK_EQ_INT(run_body(&r, head, body, n, steps[i], cfg), -EBADMSG);
		CHECK_EQ_INT(r.stage, stage);
		CHECK_EQ_INT(r.err.status, status);
		CHECK_EQ_STR(r.err.code, code);
		if (!r.err.code || strcmp(r.err.code, code) != 0)
			fprintf(stderr, "  (message: %s)\n", r.err.msg);
		CHECK(r.err.msg[0] != 0);
		run_free(&r);
	}
}

/* --- plain bodies ---------------------------------------------------------- */

#define PUT "PUT /b/k HTTP/1.1\r\nHost: x\r\n"

TEST(plain_bodies)
{
	struct run r = {0};
	CHECK_EQ_INT(run_body(&r, PUT "Content-Length: 11", HELLO, 11, 0, NULL), 0);
	CHECK_EQ_STR(r.etag, HELLO_MD5);
	CHECK(r.ck_name == NULL);
	run_free(&r);
	check_ok(PUT "Content-Length: 11", HELLO, 11, NULL, HELLO, 11);
	check_ok(PUT "Content-Length: 11\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD",
	    HELLO, 11, NULL, HELLO, 11);
	/* empty */
	check_ok(PUT "Content-Length: 0", "", 0, NULL, "", 0);
	CHECK_EQ_INT(run_body(&r, PUT "Content-Length: 0", "", 0, 0, NULL), 0);
	CHECK_EQ_STR(r.etag, "d41d8cd98f00b204e9800998ecf8427e");
	run_free(&r);
	/* a chunked HTTP body: size unknown until the end */
	check_ok(PUT "Transfer-Encoding: chunked", HELLO, 11, NULL, HELLO, 11);
}

TEST(content_sha256)
{
	check_ok(PUT "Content-Length: 11\r\nx-amz-content-sha256: " HELLO_SHA,
	    HELLO, 11, NULL, HELLO, 11);
	/* upper-case hex is a hash too */
	check_ok(PUT "Content-Length: 11\r\nx-amz-content-sha256: "
	    "B94D27B9934D3E08A52E52D7DA7DABFAC484EFE37A5380EE9088F7ACE2EFCDE9",
	    HELLO, 11, NULL, HELLO, 11);
	check_err(PUT "Content-Length: 11\r\nx-amz-content-sha256: " HELLO_SHA,
	    "hello World", 11, NULL, 2, 400, "XAmzContentSHA256Mismatch");
	struct run r = {0};
	run_body(&r, PUT "Content-Length: 11\r\nx-amz-content-sha256: " HELLO_SHA,
	    "hello World", 11, 0, NULL);
	CHECK(strstr(r.err.extra, "<ClientComputedContentSHA256>" HELLO_SHA
	    "</ClientComputedContentSHA256><S3ComputedContentSHA256>") != NULL);
	run_free(&r);
	/* not a hash, not a known literal */
	check_err(PUT "Content-Length: 11\r\nx-amz-content-sha256: nope",
	    HELLO, 11, NULL, 0, 400, "InvalidArgument");
	check_err(PUT "Content-Length: 11\r\nx-amz-content-sha256: "
	    "g94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
	    HELLO, 11, NULL, 0, 400, "InvalidArgument");
	check_err(PUT "Content-Length: 11\r\nx-amz-content-sha256: " HELLO_SHA
	    "\r\nx-amz-content-sha256: " HELLO_SHA, HELLO, 11, NULL, 0, 400,
	    "InvalidArgument");
	check_err(PUT "Content-Length: 11\r\nx-amz-content-sha256: "
	    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD\r\n"
	    "x-amz-decoded-content-length: 11", HELLO, 11, NULL, 0, 501,
	    "NotImplemented");
}

TEST(content_md5)
{
	check_ok(PUT "Content-Length: 11\r\nContent-MD5: XrY7u+Ae7tCTyyK7j1rNww==",
	    HELLO, 11, NULL, HELLO, 11);
	check_err(PUT "Content-Length: 11\r\nContent-MD5: XrY7u+Ae7tCTyyK7j1rNww==",
	    "hello worle", 11, NULL, 2, 400, "BadDigest");
	struct run r = {0};
	run_body(&r, PUT "Content-Length: 11\r\nContent-MD5: XrY7u+Ae7tCTyyK7j1rNww==",
	    "hello worle", 11, 0, NULL);
	CHECK(strstr(r.err.extra, "<ExpectedDigest>XrY7u+Ae7tCTyyK7j1rNww==</ExpectedDigest>") != NULL);
	CHECK(strstr(r.err.msg, "Content-MD5") != NULL);
	run_free(&r);
	/* malformed: not base64, 15 bytes, 17 bytes, non-zero pad bits */
	const char *bad[] = {"XrY7u+Ae7tCTyyK7j1rNww=", "XrY7u+Ae7tCTyyK7j1rN",
	    "XrY7u+Ae7tCTyyK7j1rNwwAA", "XrY7u+Ae7tCTyyK7j1rNwx==", "!!!!",
	    ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char head[256];
		snprintf(head, sizeof(head), PUT "Content-Length: 11\r\nContent-MD5: %s",
		    bad[i]);
		check_err(head, HELLO, 11, NULL, 0, 400, "InvalidDigest");
	}
}

TEST(checksum_headers)
{
	static const struct {
		const char *name, *good, *sdk;
	} cks[] = {
		{"x-amz-checksum-crc32", "DUoRhQ==", "CRC32"},
		{"x-amz-checksum-crc32c", "yZRlqg==", "CRC32C"},
		{"x-amz-checksum-crc64nvme", "jSnVw/bqjr4=", "CRC64NVME"},
		{"x-amz-checksum-sha1", "Kq5sNclPz7QV2+lfQIuc6R7oRu0=", "SHA1"},
		{"x-amz-checksum-sha256", "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=", "SHA256"},
	};
	for (size_t i = 0; i < sizeof(cks) / sizeof(cks[0]); i++) {
		char head[512];
		snprintf(head, sizeof(head), PUT "Content-Length: 11\r\n%s: %s\r\n"
		    "x-amz-sdk-checksum-algorithm: %s", cks[i].name, cks[i].good,
		    cks[i].sdk);
		check_ok(head, HELLO, 11, NULL, HELLO, 11);
		struct run r = {0};
		CHECK_EQ_INT(run_body(&r, head, HELLO, 11, 3, NULL), 0);
		CHECK_EQ_STR(r.ck_name, cks[i].name);
		CHECK_EQ_STR(r.ck_value, cks[i].good);
		/* one flipped payload byte */
		CHECK_EQ_INT(run_body(&r, head, "hellO world", 11, 3, NULL), -EBADMSG);
		CHECK_EQ_STR(r.err.code, "BadDigest");
		CHECK(strstr(r.err.msg, "you specified did not match the "
		    "calculated checksum.") != NULL);
		run_free(&r);
		/* the value of another size */
		snprintf(head, sizeof(head), PUT "Content-Length: 11\r\n%s: %s",
		    cks[i].name, i == 2 ? "DUoRhQ==" : "jSnVw/bqjr4=");
		check_err(head, HELLO, 11, NULL, 0, 400, "InvalidRequest");
		run_body(&r, head, HELLO, 11, 0, NULL);
		char want[128];
		snprintf(want, sizeof(want), "Value for %s header is invalid.",
		    cks[i].name);
		CHECK_EQ_STR(r.err.msg, want);
		run_free(&r);
		/* the algorithm named, its header absent */
		snprintf(head, sizeof(head), PUT "Content-Length: 11\r\n"
		    "x-amz-sdk-checksum-algorithm: %s", cks[i].sdk);
		check_err(head, HELLO, 11, NULL, 0, 400, "InvalidRequest");
		/* another algorithm named */
		snprintf(head, sizeof(head), PUT "Content-Length: 11\r\n%s: %s\r\n"
		    "x-amz-sdk-checksum-algorithm: %s", cks[i].name, cks[i].good,
		    cks[(i + 1) % 5].sdk);
		check_err(head, HELLO, 11, NULL, 0, 400, "InvalidRequest");
	}
	struct run r = {0};
	CHECK_EQ_INT(run_body(&r, PUT "Content-Length: 11\r\nx-amz-checksum-crc32: DUoRhQ==",
	    "hello worlD", 11, 0, NULL), -EBADMSG);
	CHECK_EQ_STR(r.err.msg, "The CRC32 you specified did not match the calculated checksum.");
	run_free(&r);
	/* two checksums, an unknown one, an unsupported algorithm */
	check_err(PUT "Content-Length: 11\r\nx-amz-checksum-crc32: DUoRhQ==\r\n"
	    "x-amz-checksum-crc32c: yZRlqg==", HELLO, 11, NULL, 0, 400,
	    "InvalidRequest");
	check_err(PUT "Content-Length: 11\r\nx-amz-checksum-crc32: DUoRhQ==\r\n"
	    "x-amz-checksum-crc32: DUoRhQ==", HELLO, 11, NULL, 0, 400,
	    "InvalidRequest");
	check_err(PUT "Content-Length: 11\r\nx-amz-checksum-md5: DUoRhQ==",
	    HELLO, 11, NULL, 0, 400, "InvalidRequest");
	check_err(PUT "Content-Length: 11\r\nx-amz-checksum-crc32: DUoRhQ==\r\n"
	    "x-amz-sdk-checksum-algorithm: MD5", HELLO, 11, NULL, 0, 400,
	    "InvalidRequest");
	/* headers that are not values pass: the type, the mode */
	check_ok(PUT "Content-Length: 11\r\nx-amz-checksum-type: FULL_OBJECT\r\n"
	    "x-amz-checksum-crc32: DUoRhQ==", HELLO, 11, NULL, HELLO, 11);
	/* all checks at once */
	check_ok(PUT "Content-Length: 11\r\nx-amz-checksum-crc32: DUoRhQ==\r\n"
	    "Content-MD5: XrY7u+Ae7tCTyyK7j1rNww==\r\nx-amz-content-sha256: "
	    HELLO_SHA, HELLO, 11, NULL, HELLO, 11);
}

TEST(sizes)
{
	/* no length at all */
	check_err(PUT "X-Other: 1", "", 0, NULL, 0, 411, "MissingContentLength");
	/* over the limit, announced: refused before a byte is read */
	struct s3_body_cfg small = {.max_size = 10};
	check_err(PUT "Content-Length: 11", HELLO, 11, &small, 0, 400,
	    "EntityTooLarge");
	struct run r = {0};
	run_body(&r, PUT "Content-Length: 11", HELLO, 11, 0, &small);
	CHECK_EQ_STR(r.err.extra, "<ProposedSize>11</ProposedSize>"
	    "<MaxSizeAllowed>10</MaxSizeAllowed>");
	run_free(&r);
	check_ok(PUT "Content-Length: 10", "hello worl", 10, &small, "hello worl", 10);
	/* S3's 5 GiB by default */
	check_err(PUT "Content-Length: 5368709121", "", 0, NULL, 0, 400,
	    "EntityTooLarge");
	/* over the limit, unannounced (chunked HTTP): refused on the way,
	 * having passed on no more than the limit */
	check_err(PUT "Transfer-Encoding: chunked", HELLO, 11, &small, 1, 400,
	    "EntityTooLarge");
	CHECK_EQ_INT(run_body(&r, PUT "Transfer-Encoding: chunked", HELLO, 11, 1,
	    &small), -EBADMSG);
	CHECK_EQ_INT(r.out_len, 10);
	run_free(&r);
	/* the body ends early */
	check_err(PUT "Content-Length: 11", "hello", 5, NULL, 2, 400,
	    "IncompleteBody");
	run_body(&r, PUT "Content-Length: 11", "hello", 5, 0, NULL);
	CHECK_EQ_STR(r.err.extra, "<NumberBytesExpected>11</NumberBytesExpected>"
	    "<NumberBytesProvided>5</NumberBytesProvided>");
	run_free(&r);
	/* more bytes than announced (a caller's mistake) */
	check_err(PUT "Content-Length: 5", HELLO, 11, NULL, 1, 400,
	    "InvalidRequest");
}

TEST(sink_errors)
{
	struct run r = {0};
	int hl = snprintf(r.head, sizeof(r.head), PUT "Content-Length: 11\r\n\r\n");
	CHECK(http_parse_request(r.head, (size_t)hl, &r.req) == hl);
	struct s3_body *b = NULL;
	struct s3_body_err err;
	r.sink_fail_after = 4;
	CHECK_EQ_INT(s3_body_new(&b, &r.req, &plain_cfg, sink, &r, &err), 0);
	CHECK_EQ_INT(s3_body_feed(b, "hel", 3), 0);
	CHECK_EQ_INT(s3_body_feed(b, "lo", 2), -ENOSPC);
	CHECK_EQ_INT(s3_body_feed(b, " world", 6), -ENOSPC);
	CHECK_EQ_INT(s3_body_finish(b), -ENOSPC);
	CHECK_EQ_STR(s3_body_error(b)->code, "InternalError");
	CHECK_EQ_INT(r.out_len, 3);
	s3_body_free(&b);
	s3_body_free(&b); /* NULL: no-op */
	run_free(&r);
}

/* --- aws-chunked, unsigned, with a checksum trailer (botocore) ---------------- */

#define UNSIGNED_HEAD(len)                                                     \
	PUT "Transfer-Encoding: chunked\r\nContent-Encoding: aws-chunked\r\n"  \
	"x-amz-trailer: x-amz-checksum-crc32\r\n"                             \
	"x-amz-decoded-content-length: " len "\r\n"                           \
	"x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n"         \
	"x-amz-sdk-checksum-algorithm: CRC32"

TEST(unsigned_trailer)
{
	/* botocore's own bytes for "hello world" */
	static const char body[] = "b\r\nhello world\r\n0\r\n"
	    "x-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
	check_ok(UNSIGNED_HEAD("11"), body, strlen(body), NULL, HELLO, 11);
	struct run r = {0};
	CHECK_EQ_INT(run_body(&r, UNSIGNED_HEAD("11"), body, strlen(body), 0, NULL), 0);
	CHECK_EQ_STR(r.ck_name, "x-amz-checksum-crc32");
	CHECK_EQ_STR(r.ck_value, "DUoRhQ==");
	CHECK_EQ_STR(r.etag, HELLO_MD5);
	run_free(&r);
	/* with a Content-Length instead of HTTP chunking */
	char head[1024];
	snprintf(head, sizeof(head), PUT "Content-Length: %zu\r\n"
	    "Content-Encoding: aws-chunked\r\nx-amz-trailer: x-amz-checksum-crc32\r\n"
	    "x-amz-decoded-content-length: 11\r\n"
	    "x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER", strlen(body));
	check_ok(head, body, strlen(body), NULL, HELLO, 11);
	/* several chunks, LF-only line ends, a stray CRLF after the end
	 * (seen from other SDKs) */
	static const char multi[] = "5\r\nhello\r\n1\n \n5;ext=1\r\nworld\r\n0\r\n"
	    "x-amz-checksum-crc32:DUoRhQ==\n\r\n\r\n";
	check_ok(UNSIGNED_HEAD("11"), multi, strlen(multi), NULL, HELLO, 11);
	/* no trailer declared, none sent */
	check_ok(PUT "Transfer-Encoding: chunked\r\nContent-Encoding: aws-chunked\r\n"
	    "x-amz-decoded-content-length: 11\r\n"
	    "x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER",
	    "b\r\nhello world\r\n0\r\n\r\n", 21, NULL, HELLO, 11);
	/* anonymous: aws-chunked without x-amz-content-sha256 */
	check_ok(PUT "Transfer-Encoding: chunked\r\nContent-Encoding: aws-chunked\r\n"
	    "x-amz-trailer: x-amz-checksum-crc32\r\nx-amz-decoded-content-length: 11",
	    body, strlen(body), NULL, HELLO, 11);

	/* tampered: a payload byte, the checksum, the checksum's spelling */
	static const char t1[] = "b\r\nhello_world\r\n0\r\n"
	    "x-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
	check_err(UNSIGNED_HEAD("11"), t1, strlen(t1), NULL, 2, 400, "BadDigest");
	static const char t2[] = "b\r\nhello world\r\n0\r\n"
	    "x-amz-checksum-crc32:DUoRhA==\r\n\r\n";
	check_err(UNSIGNED_HEAD("11"), t2, strlen(t2), NULL, 2, 400, "BadDigest");
	static const char t3[] = "b\r\nhello world\r\n0\r\n"
	    "x-amz-checksum-crc32:DUoRh===\r\n\r\n";
	check_err(UNSIGNED_HEAD("11"), t3, strlen(t3), NULL, 1, 400, "InvalidRequest");
	/* the declared trailer missing; another one instead; twice */
	static const char t4[] = "b\r\nhello world\r\n0\r\n\r\n";
	check_err(UNSIGNED_HEAD("11"), t4, strlen(t4), NULL, 2, 400, "InvalidRequest");
	static const char t5[] = "b\r\nhello world\r\n0\r\n"
	    "x-amz-checksum-crc32c:yZRlqg==\r\n\r\n";
	check_err(UNSIGNED_HEAD("11"), t5, strlen(t5), NULL, 1, 400, "InvalidRequest");
	static const char t6[] = "b\r\nhello world\r\n0\r\n"
	    "x-amz-checksum-crc32:DUoRhQ==\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
	check_err(UNSIGNED_HEAD("11"), t6, strlen(t6), NULL, 1, 400, "InvalidRequest");
	/* sizes: decoded length wrong either way; chunk longer than its size;
	 * no last chunk; bytes after the end */
	check_err(UNSIGNED_HEAD("12"), body, strlen(body), NULL, 2, 400, "IncompleteBody");
	check_err(UNSIGNED_HEAD("10"), body, strlen(body), NULL, 1, 400, "InvalidRequest");
	static const char t7[] = "5\r\nhello world\r\n0\r\n"
	    "x-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
	check_err(UNSIGNED_HEAD("11"), t7, strlen(t7), NULL, 1, 400, "InvalidRequest");
	static const char t8[] = "b\r\nhello world\r\n";
	check_err(UNSIGNED_HEAD("11"), t8, strlen(t8), NULL, 2, 400, "IncompleteBody");
	static const char t9[] = "b\r\nhello world\r\n0\r\n"
	    "x-amz-checksum-crc32:DUoRhQ==\r\n\r\nGET / HTTP/1.1\r\n";
	check_err(UNSIGNED_HEAD("11"), t9, strlen(t9), NULL, 1, 400, "InvalidRequest");
	/* malformed sizes */
	const char *bad_sizes[] = {"zz\r\n", "\r\n", "-1\r\n", "11111111111111111\r\n",
	    "b x\r\n", "b;\x01\r\n"};
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++)
		check_err(UNSIGNED_HEAD("11"), bad_sizes[i], strlen(bad_sizes[i]),
		    NULL, 1, 400, "InvalidRequest");
	/* a framing line over the bound is refused, never grown into */
	size_t big = S3_BODY_LINE_MAX + 10;
	char *longline = malloc(big);
	memset(longline, '0', big);
	check_err(UNSIGNED_HEAD("11"), longline, big, NULL, 1, 400, "InvalidRequest");
	memcpy(longline, "0\r\nx-amz-checksum-crc32:", 24);
	check_err(UNSIGNED_HEAD("0"), longline, big, NULL, 1, 400, "InvalidRequest");
	free(longline);
	/* too many trailer lines */
	char many[2048] = "0\r\n";
	for (int i = 0; i < S3_BODY_TRAILERS_MAX + 2; i++)
		strcat(many, "x-amz-trailer-signature:00\r\n");
	check_err(UNSIGNED_HEAD("0"), many, strlen(many), NULL, 1, 400, "InvalidRequest");

	/* head errors: no decoded length; an unsupported trailer; a trailer
	 * with a plain body; a trailer and a checksum header */
	check_err(PUT "Transfer-Encoding: chunked\r\n"
	    "x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER", body,
	    strlen(body), NULL, 0, 411, "MissingContentLength");
	check_err(PUT "Transfer-Encoding: chunked\r\n"
	    "x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n"
	    "x-amz-decoded-content-length: 1x", body, strlen(body), NULL, 0, 400,
	    "InvalidArgument");
	check_err(PUT "Transfer-Encoding: chunked\r\n"
	    "x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\n"
	    "x-amz-decoded-content-length: 11\r\nx-amz-trailer: x-amz-meta-a",
	    body, strlen(body), NULL, 0, 400, "InvalidRequest");
	check_err(PUT "Content-Length: 11\r\nx-amz-trailer: x-amz-checksum-crc32",
	    HELLO, 11, NULL, 0, 400, "InvalidRequest");
	check_err(UNSIGNED_HEAD("11") "\r\nx-amz-checksum-crc32: DUoRhQ==", body,
	    strlen(body), NULL, 0, 400, "InvalidRequest");
	check_err(PUT "Content-Length: 11\r\nContent-Encoding: aws-chunked\r\n"
	    "x-amz-content-sha256: " HELLO_SHA, HELLO, 11, NULL, 0, 400,
	    "InvalidArgument");
}

/* --- signed chunks: AWS's examples --------------------------------------------- */

static const char *const aws_sigs[2][3] = {
	{"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
	 "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
	 "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"},
	{"b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
	 "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
	 "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"},
};
#define TRAILER_SIG "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"

static const char aws_head[] =
    "PUT /examplebucket/chunkObject.txt HTTP/1.1\r\n"
    "Host: s3.amazonaws.com\r\n"
    "x-amz-date: 20130524T000000Z\r\n"
    "x-amz-storage-class: REDUCED_REDUNDANCY\r\n"
    "Authorization: AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/s3/"
    "aws4_request,SignedHeaders=content-encoding;content-length;host;"
    "x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
    "x-amz-storage-class,Signature="
    "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9\r\n"
    "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD\r\n"
    "Content-Encoding: aws-chunked\r\n"
    "x-amz-decoded-content-length: 66560\r\n"
    "Content-Length: 66824";

static const char aws_trailer_head[] =
    "PUT /examplebucket/chunkObject.txt HTTP/1.1\r\n"
    "Host: s3.amazonaws.com\r\n"
    "x-amz-date: 20130524T000000Z\r\n"
    "x-amz-storage-class: REDUCED_REDUNDANCY\r\n"
    "Authorization: AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/s3/"
    "aws4_request,SignedHeaders=content-encoding;host;x-amz-content-sha256;"
    "x-amz-date;x-amz-decoded-content-length;x-amz-storage-class;"
    "x-amz-trailer,Signature="
    "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e\r\n"
    "x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER\r\n"
    "Content-Encoding: aws-chunked\r\n"
    "x-amz-decoded-content-length: 66560\r\n"
    "x-amz-trailer: x-amz-checksum-crc32c\r\n"
    "Content-Length: 66946";

/* The example's body; trailer: the trailer lines (with the signature). */
static size_t
aws_body(char *out, int tr, const char *trailer)
{
	size_t o = 0;
	o += (size_t)sprintf(out + o, "10000;chunk-signature=%s\r\n", aws_sigs[tr][0]);
	memset(out + o, 'a', 65536);
	o += 65536;
	o += (size_t)sprintf(out + o, "\r\n400;chunk-signature=%s\r\n", aws_sigs[tr][1]);
	memset(out + o, 'a', 1024);
	o += 1024;
	o += (size_t)sprintf(out + o, "\r\n0;chunk-signature=%s\r\n%s\r\n",
	    aws_sigs[tr][2], trailer);
	return o;
}

static const char *
secret_of(void *arg, const char *key)
{
	(void)arg;
	return strcmp(key, AK) == 0 ? SK : NULL;
}

/* The request's own verification, as the gateway runs it first. */
static void
verified(const char *head, struct sigv4_info *info)
{
	static char buf[8192];
	static struct http_request req;
	int hl = snprintf(buf, sizeof(buf), "%s\r\n\r\n", head);
	CHECK(http_parse_request(buf, (size_t)hl, &req) == hl);
	const char *msg = NULL;
	CHECK_EQ_INT(sigv4_verify_region(&req, T0, "us-east-1", secret_of, NULL,
	    &msg, info), SIGV4_OK);
	CHECK(info->have_key);
}

TEST(signed_chunks)
{
	struct sigv4_info info;
	verified(aws_head, &info);
	struct s3_body_cfg cfg = {.sig = &info, .auth_checked = 1};
	char *body = malloc(70000), *a = malloc(66560);
	memset(a, 'a', 66560);
	size_t n = aws_body(body, 0, "");
	CHECK_EQ_INT(n, 66824);
	check_ok(aws_head, body, n, &cfg, a, 66560);
	struct run r = {0};
	CHECK_EQ_INT(run_body(&r, aws_head, body, n, 0, &cfg), 0);
	CHECK_EQ_STR(r.etag, "da0d2e17cd5a8f14633c6b4aebad7e02");
	run_free(&r);

	/* a data byte in each chunk, a signature digit of each chunk: 403 */
	size_t data_at[2] = {100, 65536 + 200};
	for (int i = 0; i < 2; i++) {
		body[data_at[i]] = 'b';
		check_err(aws_head, body, n, &cfg, 1, 403, "SignatureDoesNotMatch");
		body[data_at[i]] = 'a';
	}
	for (int i = 0; i < 3; i++) {
		char *s = strstr(body + (i ? 65536 : 0), aws_sigs[0][i]);
		CHECK(s != NULL);
		if (!s)
			continue;
		s[10] = s[10] == '0' ? '1' : '0';
		check_err(aws_head, body, n, &cfg, 1, 403, "SignatureDoesNotMatch");
		s[10] = aws_sigs[0][i][10];
		/* upper-case hex is the same signature */
		for (int k = 0; k < 64; k++)
			if (s[k] >= 'a' && s[k] <= 'f')
				s[k] = (char)(s[k] - 32);
		check_ok(aws_head, body, n, &cfg, a, 66560);
		memcpy(s, aws_sigs[0][i], 64);
	}
	/* the chain is an order: chunks of the right sizes, wrong seed */
	struct sigv4_info other = info;
	other.seed_signature[0] = other.seed_signature[0] == '4' ? '5' : '4';
	struct s3_body_cfg ocfg = {.sig = &other, .auth_checked = 1};
	check_err(aws_head, body, n, &ocfg, 1, 403, "SignatureDoesNotMatch");
	/* a signed body without chunk signatures */
	static const char nosig[] = "0\r\n\r\n";
	check_err(aws_head, nosig, 5, &cfg, 1, 400, "InvalidRequest");
	/* the head checked (presigned, SigV2...) but no key to chain from */
	struct s3_body_cfg nokey = {.auth_checked = 1};
	check_err(aws_head, body, n, &nokey, 0, 400, "InvalidRequest");
	/* nothing checked (no credentials): decoded, signatures unchecked */
	struct s3_body_cfg open = {0};
	body[100] = 'b';
	a[100 - 88] = 'b'; /* after the 88 bytes of the first chunk's header */
	check_ok(aws_head, body, n, &open, a, 66560);
	body[100] = 'a';
	a[100 - 88] = 'a';
	/* the last chunk's signature is checked too */
	char *last = strstr(body + 65536, aws_sigs[0][2]);
	last[63] = last[63] == '9' ? '8' : '9';
	check_err(aws_head, body, n, &cfg, 1, 403, "SignatureDoesNotMatch");
	free(body);
	free(a);
	explicit_bzero(&info, sizeof(info));
}

TEST(signed_trailer)
{
	struct sigv4_info info;
	verified(aws_trailer_head, &info);
	struct s3_body_cfg cfg = {.sig = &info, .auth_checked = 1};
	char *body = malloc(70000), *a = malloc(66560);
	memset(a, 'a', 66560);
	size_t n = aws_body(body, 1, "x-amz-checksum-crc32c:sOO8/Q==\r\n"
	    "x-amz-trailer-signature:" TRAILER_SIG "\r\n");
	CHECK_EQ_INT(n, 66946);
	check_ok(aws_trailer_head, body, n, &cfg, a, 66560);
	struct run r = {0};
	CHECK_EQ_INT(run_body(&r, aws_trailer_head, body, n, 0, &cfg), 0);
	CHECK_EQ_STR(r.ck_name, "x-amz-checksum-crc32c");
	CHECK_EQ_STR(r.ck_value, "sOO8/Q==");
	run_free(&r);

	/* the trailer signature flipped */
	char *ts = strstr(body + 66000, TRAILER_SIG);
	ts[5] = ts[5] == '0' ? '1' : '0';
	check_err(aws_trailer_head, body, n, &cfg, 1, 403, "SignatureDoesNotMatch");
	ts[5] = TRAILER_SIG[5];
	/* the checksum changed (and so the trailer signature no longer holds) */
	char *cv = strstr(body + 66000, "sOO8/Q==");
	cv[0] = 't';
	check_err(aws_trailer_head, body, n, &cfg, 1, 403, "SignatureDoesNotMatch");
	cv[0] = 's';
	/* a wrong checksum, correctly signed: BadDigest */
	unsigned char h[32];
	static const char line[] = "x-amz-checksum-crc32c:tOO8/Q==\n";
	sha256(line, strlen(line), h);
	char sig[65];
	sigv4_trailer_signature(info.signing_key, info.amz_date, info.scope,
	    aws_sigs[1][2], h, sig);
	char tr[256];
	snprintf(tr, sizeof(tr), "x-amz-checksum-crc32c:tOO8/Q==\r\n"
	    "x-amz-trailer-signature:%s\r\n", sig);
	n = aws_body(body, 1, tr);
	check_err(aws_trailer_head, body, n, &cfg, 2, 400, "BadDigest");
	/* no trailer signature; a line after it */
	n = aws_body(body, 1, "x-amz-checksum-crc32c:sOO8/Q==\r\n");
	check_err(aws_trailer_head, body, n, &cfg, 1, 400, "InvalidRequest");
	n = aws_body(body, 1, "x-amz-checksum-crc32c:sOO8/Q==\r\n"
	    "x-amz-trailer-signature:" TRAILER_SIG "\r\nx-amz-meta-a:b\r\n");
	check_err(aws_trailer_head, body, n, &cfg, 1, 400, "InvalidRequest");
	/* an unsigned body with a trailer signature */
	static const char us[] = "b\r\nhello world\r\n0\r\n"
	    "x-amz-checksum-crc32:DUoRhQ==\r\nx-amz-trailer-signature:"
	    TRAILER_SIG "\r\n\r\n";
	check_err(UNSIGNED_HEAD("11"), us, strlen(us), NULL, 1, 400, "InvalidRequest");
	free(body);
	free(a);
	explicit_bzero(&info, sizeof(info));
}

TEST(stored_encoding)
{
	static const struct {
		const char *head, *want;
	} cases[] = {
		{PUT "Content-Encoding: aws-chunked", ""},
		{PUT "Content-Encoding: aws-chunked,gzip", "gzip"},
		{PUT "Content-Encoding: gzip, aws-chunked", "gzip"},
		{PUT "Content-Encoding: gzip\r\nContent-Encoding: AWS-Chunked, br", "gzip,br"},
		{PUT "X-A: 1", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[512], out[64];
		struct http_request req;
		int hl = snprintf(buf, sizeof(buf), "%s\r\n\r\n", cases[i].head);
		CHECK(http_parse_request(buf, (size_t)hl, &req) == hl);
		CHECK_EQ_INT(s3_body_stored_encoding(&req, out, sizeof(out)),
		    strlen(cases[i].want));
		CHECK_EQ_STR(out, cases[i].want);
		CHECK_EQ_INT(s3_body_stored_encoding(&req, out, 3),
		    strlen(cases[i].want) >= 3 ? -E2BIG : (int)strlen(cases[i].want));
	}
}

int
main(void)
{
	RUN(plain_bodies);
	RUN(content_sha256);
	RUN(content_md5);
	RUN(checksum_headers);
	RUN(sizes);
	RUN(sink_errors);
	RUN(unsigned_trailer);
	RUN(signed_chunks);
	RUN(signed_trailer);
	RUN(stored_encoding);
	TAP_DONE();
}
