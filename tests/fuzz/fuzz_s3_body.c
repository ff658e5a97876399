// FUZZ_SOURCES: src/s3/s3_body.c src/http/http_parse.c src/common/util.c src/common/dbuf.c src/common/crypto.c src/common/crc.c src/common/crc32c.c src/common/sigv4.c src/common/log.c
/*
 * fuzz_s3_body.c: libFuzzer harness for S3 upload bodies (s3_body.c).
 * Input: two control bytes, then a request head (parsed with
 * http_parse_request) and the raw body after it.  The first byte picks the
 * configuration (a chunk-signing key or none, whether auth was checked, a
 * size limit), the second how the body is split.  The body is decoded
 * twice, whole and in pieces.  Invariants: no crash, no leak; the sink
 * never gets more bytes than were fed, nor more than the announced size or
 * the limit; nothing reaches the sink after an error, and errors stick;
 * (the body is cut at Content-Length, as the HTTP server hands it over)
 * the verdict, its S3 code and the payload do not depend on the split; an
 * accepted body has exactly its announced size and the MD5 of what the
 * sink got; every refusal carries a status, an S3 code and a message.
 * Single-threaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/util.h"
#include "http/http_parse.h"
#include "s3/s3_body.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                         \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "invariant failed: %s (line %d)\n",   \
			    #cond, __LINE__);                                 \
			abort();                                              \
		}                                                             \
	} while (0)

struct out {
	unsigned char *p;
	size_t len, cap;
	int failed;    /* the body was refused: no more bytes may come */
};

static int
sink(void *arg, const void *p, size_t n)
{
	struct out *o = arg;
	REQUIRE(!o->failed);
	REQUIRE(n > 0);
	REQUIRE(o->len + n <= o->cap); /* never more than was fed */
	memcpy(o->p + o->len, p, n);
	o->len += n;
	return 0;
}

struct verdict {
	int new_rc, rc;
	const char *code;
	int status;
	char etag[33];
};

static void
decode(const struct http_request *req, const struct s3_body_cfg *cfg,
    const uint8_t *body, size_t n, size_t step, struct out *o,
    struct verdict *v)
{
	memset(v, 0, sizeof(*v));
	o->len = 0;
	o->failed = 0;
	struct s3_body *b = NULL;
	struct s3_body_err err;
	v->new_rc = s3_body_new(&b, req, cfg, sink, o, &err);
	if (v->new_rc < 0) {
		REQUIRE(v->new_rc == -EBADMSG || v->new_rc == -ENOMEM);
		REQUIRE(b == NULL && err.code && err.status >= 400 && err.msg[0]);
		v->code = err.code;
		v->status = err.status;
		return;
	}
	int64_t expect = s3_body_expected_size(b);
	size_t off = 0;
	int rc = 0;
	while (off < n && rc == 0) {
		size_t take = step && step < n - off ? step : n - off;
		rc = s3_body_feed(b, body + off, take);
		off += take;
	}
	if (rc == 0)
		rc = s3_body_finish(b);
	if (rc < 0) {
		o->failed = 1;
		REQUIRE(rc == -EBADMSG);
		const struct s3_body_err *e = s3_body_error(b);
		REQUIRE(e->code && e->status >= 400 && e->msg[0]);
		/* sticky, and nothing more reaches the sink */
		REQUIRE(s3_body_feed(b, "0\r\n", 3) == rc);
		REQUIRE(s3_body_finish(b) == rc);
		v->code = e->code;
		v->status = e->status;
	} else {
		REQUIRE(expect < 0 || (int64_t)o->len == expect);
		s3_body_etag(b, v->etag);
		unsigned char md[16];
		unsigned int ml = 0;
		EVP_Digest(o->p, o->len, md, &ml, EVP_md5(), NULL);
		char hex[33];
		hex_encode(md, 16, hex);
		REQUIRE(strcmp(hex, v->etag) == 0);
		const char *name;
		char val[64];
		if (s3_body_checksum(b, &name, val))
			REQUIRE(strncmp(name, "x-amz-checksum-", 15) == 0 && val[0]);
	}
	REQUIRE(s3_body_size(b) == (int64_t)o->len);
	REQUIRE(expect < 0 || (int64_t)o->len <= expect);
	REQUIRE(cfg->max_size <= 0 || (int64_t)o->len <= cfg->max_size);
	v->rc = rc;
	s3_body_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t mode = data[0], split = data[1];
	data += 2;
	size -= 2;
	static char head[HTTP_MAX_HEAD];
	size_t hl = size < sizeof(head) ? size : sizeof(head);
	memcpy(head, data, hl);
	struct http_request req;
	int r = http_parse_request(head, hl, &req);
	if (r <= 0)
		return 0;
	const uint8_t *body = data + r;
	size_t n = size - (size_t)r;
	/* what the HTTP server hands over: never past Content-Length */
	if (!req.chunked && req.content_length >= 0 &&
	    (uint64_t)n > (uint64_t)req.content_length)
		n = (size_t)req.content_length;

	/* A fixed key, as a verified request would hand over. */
	static struct sigv4_info info = {
		.have_key = 1,
		.seed_signature = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
		.amz_date = "20130524T000000Z",
		.scope = "20130524/us-east-1/s3/aws4_request",
	};
	static const int64_t limits[4] = {0, 16, 1000, 1 << 20};
	struct s3_body_cfg cfg = {
		.max_size = limits[(mode >> 2) & 3],
		.sig = (mode & 1) ? &info : NULL,
		.auth_checked = (mode >> 1) & 1,
	};
	struct out a = {.p = malloc(n ? n : 1), .cap = n};
	struct out b = {.p = malloc(n ? n : 1), .cap = n};
	struct verdict va, vb;
	decode(&req, &cfg, body, n, 0, &a, &va);
	decode(&req, &cfg, body, n, (size_t)split % 64 + 1, &b, &vb);
	/* the split changes nothing but where an error is noticed: the
	 * verdict and what came out before it are the same */
	REQUIRE(va.new_rc == vb.new_rc && va.rc == vb.rc);
	REQUIRE((va.code == NULL) == (vb.code == NULL));
	if (va.code)
		REQUIRE(strcmp(va.code, vb.code) == 0 && va.status == vb.status);
	if (va.rc == 0 && va.new_rc == 0) {
		REQUIRE(a.len == b.len && memcmp(a.p, b.p, a.len) == 0);
		REQUIRE(strcmp(va.etag, vb.etag) == 0);
	} else {
		size_t m = a.len < b.len ? a.len : b.len;
		REQUIRE(memcmp(a.p, b.p, m) == 0);
	}
	free(a.p);
	free(b.p);
	return 0;
}
