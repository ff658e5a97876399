/*
 * s3_body_tool.c: an HTTP server that takes uploads the way the gateway
 * will: each request's SigV4 signature is verified (sigv4_verify_region,
 * region us-east-1, access key AKIDEXAMPLE), then its body is streamed
 * with http_body_read, in reads of random sizes, through s3_body, which
 * decodes and verifies it.  Used by tests/integration/test_s3_body_crosscheck.py
 * to check both against real clients (botocore) and tampered replays.
 *
 * Usage: s3_body_tool SECRET [MAX_SIZE]
 *   Prints "port N" once listening on 127.0.0.1, then serves until its
 *   stdin closes.  Answers every request:
 *   - 200 with ETag: "<md5 of the payload>", x-ferry-decoded-length,
 *     x-ferry-decoded-sha256 (of the payload as decoded) and the verified
 *     x-amz-checksum-* header, if any;
 *   - or S3's error document (<Code>, <Message>) with S3's status.
 *   Anonymous requests are served (the gateway's --s3-anonymous).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/sigv4.h"
#include "common/util.h"
#include "http/http_server.h"
#include "s3/s3_body.h"

#define READ_MAX (256 * 1024)

static const char *secret;
static int64_t max_size;

static const char *
secret_of(void *arg, const char *key)
{
	(void)arg;
	return strcmp(key, "AKIDEXAMPLE") == 0 ? secret : NULL;
}

static void
error_doc(struct http_conn *c, int status, const char *code, const char *msg,
    const char *extra)
{
	char body[2048];
	int n = snprintf(body, sizeof(body), "<?xml version=\"1.0\" "
	    "encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>%s</Message>"
	    "%s<RequestId>0</RequestId></Error>", code, msg, extra ? extra : "");
	http_resp_simple(c, status, NULL, "application/xml", body, (size_t)n);
}

struct sink_ctx {
	EVP_MD_CTX *sha;
	int64_t n;
};

static int
sink(void *arg, const void *p, size_t n)
{
	struct sink_ctx *s = arg;
	EVP_DigestUpdate(s->sha, p, n);
	s->n += (int64_t)n;
	return 0;
}

static uint64_t
next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void
handle(struct http_conn *c, const struct http_request *req, void *arg)
{
	(void)arg;
	struct sigv4_info info;
	const char *msg = NULL;
	enum sigv4_status st = sigv4_verify_region(req, wall_sec(), "us-east-1",
	    secret_of, NULL, &msg, &info);
	if (st == SIGV4_MISMATCH) {
		error_doc(c, 403, "SignatureDoesNotMatch", msg, NULL);
		return;
	}
	if (st != SIGV4_OK && st != SIGV4_ANONYMOUS) {
		error_doc(c, 400, "AuthorizationHeaderMalformed",
		    msg ? msg : "?", NULL);
		return;
	}
	struct s3_body_cfg cfg = {.max_size = max_size,
	    .sig = st == SIGV4_OK ? &info : NULL, .auth_checked = 1};
	struct sink_ctx sc = {.sha = EVP_MD_CTX_new()};
	EVP_DigestInit_ex(sc.sha, EVP_sha256(), NULL);
	struct s3_body *b = NULL;
	struct s3_body_err err;
	int r = s3_body_new(&b, req, &cfg, sink, &sc, &err);
	explicit_bzero(&info, sizeof(info));
	if (r < 0) {
		error_doc(c, err.status, err.code, err.msg, err.extra);
		EVP_MD_CTX_free(sc.sha);
		return;
	}
	static char buf[READ_MAX];
	uint64_t x = (uint64_t)now_ns() | 1;
	ssize_t n;
	for (;;) {
		/* reads of any size, from one byte up */
		size_t want = (size_t)(next_rand(&x) % 4 == 0 ?
		    1 + next_rand(&x) % 16 : 1 + next_rand(&x) % READ_MAX);
		n = http_body_read(c, buf, want);
		if (n <= 0)
			break;
		if ((r = s3_body_feed(b, buf, (size_t)n)) < 0)
			break;
	}
	if (n < 0) {
		char m[64];
		snprintf(m, sizeof(m), "body read: %s", strerror((int)-n));
		error_doc(c, 400, "IncompleteBody", m, NULL);
	} else if (r < 0 || (r = s3_body_finish(b)) < 0) {
		const struct s3_body_err *e = s3_body_error(b);
		error_doc(c, e->status, e->code, e->msg, e->extra);
	} else {
		unsigned char d[32];
		unsigned int dl = 0;
		EVP_DigestFinal_ex(sc.sha, d, &dl);
		char hex[65], etag[33], hdr[512], ckv[64];
		hex_encode(d, 32, hex);
		s3_body_etag(b, etag);
		const char *ckn = NULL;
		int l = snprintf(hdr, sizeof(hdr), "ETag: \"%s\"\r\n"
		    "x-ferry-decoded-length: %" PRId64 "\r\n"
		    "x-ferry-decoded-sha256: %s\r\n", etag, s3_body_size(b), hex);
		if (s3_body_checksum(b, &ckn, ckv))
			snprintf(hdr + l, sizeof(hdr) - (size_t)l, "%s: %s\r\n",
			    ckn, ckv);
		http_resp_simple(c, 200, hdr, NULL, "", 0);
	}
	s3_body_free(&b);
	EVP_MD_CTX_free(sc.sha);
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s SECRET [MAX_SIZE]\n", argv[0]);
		return 2;
	}
	secret = argv[1];
	max_size = argc > 2 ? strtoll(argv[2], NULL, 10) : 0;
	struct http_server_cfg cfg = {.host = "127.0.0.1", .port = 0,
	    .io_timeout_ms = 10000, .name = "s3body"};
	char *err = NULL;
	struct http_server *s = http_server_start(&cfg, handle, NULL, &err);
	if (!s) {
		fprintf(stderr, "start: %s\n", err ? err : "?");
		return 1;
	}
	printf("port %d\n", http_server_port(s));
	fflush(stdout);
	char b[256];
	while (read(0, b, sizeof(b)) > 0)
		;
	http_server_stop(&s);
	return 0;
}
