/*
 * s3_body.c: S3 upload bodies, decoded and verified as they stream (see
 * s3_body.h).  Called on a connection thread (and by the fuzz harness and
 * the cross-check tool); one struct s3_body is used by one thread.
 *
 * The aws-chunked framing is HTTP/1.1's chunked grammar with S3's
 * extensions: "hex-size[;chunk-signature=SIG]" CRLF, the data, CRLF; a
 * size-0 last chunk; trailer lines ("name:value" CRLF) and an empty line.
 * It is parsed by a state machine that takes input in any split: data
 * bytes go straight from the caller's buffer to the sink (and the digests),
 * framing lines are collected in a fixed buffer of S3_BODY_LINE_MAX bytes.
 * Lines end in CRLF or a bare LF (some SDKs end trailer lines in LF).
 *
 * Invariants: the sink never gets more bytes than were fed, nor more than
 * the announced payload size (x-amz-decoded-content-length, or
 * Content-Length), nor more than max_size; once an error is set, every
 * later call returns it and nothing more reaches the sink.  Signatures are
 * compared in constant time.  Messages and codes are S3's where S3 has
 * them (BadDigest "The CRC32 you specified did not match the calculated
 * checksum.", ...).
 */
#include "s3_body.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "../common/crc.h"
#include "../common/crc32c.h"
#include "../common/crypto.h"
#include "../common/util.h"
#include "../common/vas.h"

#define TAIL_CRLF_MAX 4 /* stray line ends tolerated after the last line */

enum framing {
	FR_PLAIN,
	FR_UNSIGNED_TRAILER, /* STREAMING-UNSIGNED-PAYLOAD-TRAILER */
	FR_SIGNED,           /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD */
	FR_SIGNED_TRAILER,   /* STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER */
};

enum ck_alg { CK_NONE, CK_CRC32, CK_CRC32C, CK_CRC64NVME, CK_SHA1, CK_SHA256 };

static const struct ck_def {
	const char *header;  /* x-amz-checksum-... */
	const char *sdk;     /* x-amz-sdk-checksum-algorithm value */
	const char *in_msg;  /* as S3's BadDigest message names it */
	size_t len;          /* digest bytes */
} ck_defs[] = {
	[CK_NONE] = {"", "", "", 0},
	[CK_CRC32] = {"x-amz-checksum-crc32", "CRC32", "CRC32", 4},
	[CK_CRC32C] = {"x-amz-checksum-crc32c", "CRC32C", "CRC32C", 4},
	[CK_CRC64NVME] = {"x-amz-checksum-crc64nvme", "CRC64NVME", "CRC64NVME", 8},
	[CK_SHA1] = {"x-amz-checksum-sha1", "SHA1", "sha1", 20},
	[CK_SHA256] = {"x-amz-checksum-sha256", "SHA256", "sha256", 32},
};

enum state {
	ST_PLAIN,    /* a plain body: every byte is payload */
	ST_SIZE,     /* reading a chunk-size line */
	ST_DATA,     /* chunk_left data bytes to go */
	ST_DATA_END, /* the CRLF after a chunk's data */
	ST_TRAILER,  /* trailer lines, up to an empty one */
	ST_DONE,     /* complete; only stray line ends may follow */
	ST_FAILED,
};

struct s3_body {
	s3_body_sink_fn sink;
	void *arg;
	enum framing fr;
	enum state st;
	int rc;                /* the error returned once failed */
	struct s3_body_err err;

	int64_t max_size;
	int64_t raw_len;       /* Content-Length of the raw body, or -1 */
	int64_t raw_fed;
	int64_t expect;        /* announced payload size, or -1 */
	int64_t emitted;

	/* Digests of the payload. */
	EVP_MD_CTX *md5;
	EVP_MD_CTX *sha256;    /* x-amz-content-sha256 or a SHA256 checksum */
	EVP_MD_CTX *sha1;      /* a SHA1 checksum */
	uint32_t crc32, crc32c;
	uint64_t crc64;
	int want_sha256;       /* x-amz-content-sha256 is a hash */
	unsigned char sha256_want[32];
	int want_md5;          /* Content-MD5 was given */
	unsigned char md5_want[16];
	char md5_want_b64[32];
	enum ck_alg ck;
	int ck_in_trailer;
	int ck_have;           /* the value arrived (header, or trailer) */
	unsigned char ck_want[32];
	char ck_want_b64[48];
	unsigned char md5_out[16];
	unsigned char ck_out[32];
	int finished;

	/* Chunk signatures (signed framings). */
	int verify_sigs;
	unsigned char key[32];
	char amz_date[17];
	char scope[SIGV4_SCOPE_MAX];
	char prev_sig[65];     /* the chain so far: seed, then each chunk's */
	char chunk_sig[65];    /* the claimed signature of the chunk read */
	EVP_MD_CTX *chunk_md;  /* SHA-256 of the chunk being read */
	EVP_MD_CTX *trailer_md; /* SHA-256 of the trailer lines */

	/* Framing. */
	uint64_t chunk_left;
	int ntrailers;
	int trailer_signed;    /* the x-amz-trailer-signature line was read */
	int tail_crlf;
	size_t line_len;
	char line[S3_BODY_LINE_MAX];
};

/* --- errors ---------------------------------------------------------------- */

static void set_err(struct s3_body_err *e, int status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
set_err(struct s3_body_err *e, int status, const char *code, const char *fmt,
    ...)
{
	e->status = status;
	e->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->extra[0] = 0;
}

/* Refuses the body: every later call returns -EBADMSG. */
static int fail(struct s3_body *b, int status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
fail(struct s3_body *b, int status, const char *code, const char *fmt, ...)
{
	if (b->st == ST_FAILED)
		return b->rc;
	b->err.status = status;
	b->err.code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b->err.msg, sizeof(b->err.msg), fmt, ap);
	va_end(ap);
	b->err.extra[0] = 0;
	b->st = ST_FAILED;
	b->rc = -EBADMSG;
	return b->rc;
}

static int
fail_malformed(struct s3_body *b, const char *what)
{
	return fail(b, 400, "InvalidRequest",
	    "The aws-chunked body is malformed: %s.", what);
}

static int
fail_incomplete(struct s3_body *b, int64_t expected)
{
	fail(b, 400, "IncompleteBody", "You did not provide the number of "
	    "bytes specified by the Content-Length HTTP header.");
	snprintf(b->err.extra, sizeof(b->err.extra),
	    "<NumberBytesExpected>%lld</NumberBytesExpected>"
	    "<NumberBytesProvided>%lld</NumberBytesProvided>",
	    (long long)expected, (long long)b->emitted);
	return b->rc;
}

static void
too_large(struct s3_body_err *e, int64_t proposed, int64_t max)
{
	set_err(e, 400, "EntityTooLarge",
	    "Your proposed upload exceeds the maximum allowed size");
	snprintf(e->extra, sizeof(e->extra),
	    "<ProposedSize>%lld</ProposedSize><MaxSizeAllowed>%lld</MaxSizeAllowed>",
	    (long long)proposed, (long long)max);
}

/* --- small helpers ----------------------------------------------------------- */

static int
span_ieq(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n == l && strncasecmp(s, lit, l) == 0;
}

static int
span_eq(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n == l && memcmp(s, lit, l) == 0;
}

/* First value of a header and how many times it occurs. */
static const char *
hdr(const struct http_request *req, const char *name, size_t *len, int *count)
{
	const char *v = NULL;
	*count = 0;
	*len = 0;
	for (int i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (!span_ieq(h->name, h->name_len, name))
			continue;
		if ((*count)++ == 0) {
			v = h->value;
			*len = h->value_len;
		}
	}
	return v;
}

static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

/* Base64 of a digest (at most 32 bytes) into out (at least 48 bytes). */
static void
b64_small(const unsigned char *p, size_t n, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	out[o] = 0;
}

/* A base64 value of exactly want bytes, in its canonical spelling. */
static int
b64_exact(const char *s, size_t n, unsigned char *out, size_t want)
{
	unsigned char tmp[64];
	if (n == 0 || n > 48 || n % 4)
		return -1;
	long l = b64_decode(s, n, tmp);
	if (l < 0 || (size_t)l != want)
		return -1;
	char again[64];
	b64_small(tmp, want, again);
	if (strlen(again) != n || memcmp(again, s, n) != 0)
		return -1; /* non-zero padding bits */
	memcpy(out, tmp, want);
	return 0;
}

/* A non-negative decimal int64 (no sign, no blanks); -1 if not one. */
static int64_t
parse_len(const char *s, size_t n)
{
	if (n == 0 || n > 19)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (INT64_MAX - (s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

static enum ck_alg
ck_by_header(const char *s, size_t n)
{
	for (int a = CK_CRC32; a <= CK_SHA256; a++)
		if (span_ieq(s, n, ck_defs[a].header))
			return (enum ck_alg)a;
	return CK_NONE;
}

static EVP_MD_CTX *
md_new(const EVP_MD *md)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (c && EVP_DigestInit_ex(c, md, NULL) != 1) {
		EVP_MD_CTX_free(c);
		c = NULL;
	}
	return c;
}

static void
md_final(EVP_MD_CTX *c, unsigned char *out)
{
	unsigned int l = 0;
	int r = EVP_DigestFinal_ex(c, out, &l);
	VAS_ASSERT(r == 1);
}

/* --- the head ---------------------------------------------------------------- */

/* Does a Content-Encoding value list aws-chunked? */
static int
lists_aws_chunked(const char *v, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && v[j] != ',')
			j++;
		const char *t = v + i;
		size_t tl = j - i;
		trim(&t, &tl);
		if (span_ieq(t, tl, "aws-chunked"))
			return 1;
		i = j + 1;
	}
	return 0;
}

/* The framing from x-amz-content-sha256 and Content-Encoding. */
static int
head_framing(struct s3_body *b, const struct http_request *req,
    struct s3_body_err *err)
{
	size_t vl;
	int cnt;
	const char *v = hdr(req, "x-amz-content-sha256", &vl, &cnt);
	int chunked_enc = 0;
	for (int i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (span_ieq(h->name, h->name_len, "content-encoding") &&
		    lists_aws_chunked(h->value, h->value_len))
			chunked_enc = 1;
	}
	static const char bad[] = "x-amz-content-sha256 must be "
	    "UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
	    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, "
	    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 "
	    "value.";
	if (cnt > 1) {
		set_err(err, 400, "InvalidArgument", "%s", bad);
		return -1;
	}
	b->fr = FR_PLAIN;
	if (!v || span_eq(v, vl, "UNSIGNED-PAYLOAD")) {
		/* Unsigned aws-chunked: what an SDK sends when it does not
		 * sign (anonymous), checksum in a trailer. */
		if (chunked_enc)
			b->fr = FR_UNSIGNED_TRAILER;
		return 0;
	}
	if (vl == 64) {
		int ok = 1;
		for (size_t i = 0; i < 64; i += 2) {
			int hi = hexval((unsigned char)v[i]);
			int lo = hexval((unsigned char)v[i + 1]);
			if (hi < 0 || lo < 0) {
				ok = 0;
				break;
			}
			b->sha256_want[i / 2] = (unsigned char)(hi << 4 | lo);
		}
		if (ok) {
			if (chunked_enc) {
				set_err(err, 400, "InvalidArgument",
				    "An aws-chunked body needs a STREAMING-... "
				    "x-amz-content-sha256.");
				return -1;
			}
			b->want_sha256 = 1;
			return 0;
		}
	}
	if (span_eq(v, vl, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")) {
		b->fr = FR_UNSIGNED_TRAILER;
	} else if (span_eq(v, vl, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")) {
		b->fr = FR_SIGNED;
	} else if (span_eq(v, vl, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")) {
		b->fr = FR_SIGNED_TRAILER;
	} else if (span_eq(v, vl, "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD") ||
	    span_eq(v, vl, "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER")) {
		set_err(err, 501, "NotImplemented", "The chunk encoding "
		    "algorithm %.*s is not supported.", (int)vl, v);
		return -1;
	} else {
		set_err(err, 400, "InvalidArgument", "%s", bad);
		return -1;
	}
	return 0;
}

/* Sizes: Content-Length, x-amz-decoded-content-length, the limit. */
static int
head_sizes(struct s3_body *b, const struct http_request *req,
    struct s3_body_err *err)
{
	b->raw_len = req->chunked ? -1 : req->content_length;
	if (!req->chunked && req->content_length < 0) {
		set_err(err, 411, "MissingContentLength",
		    "You must provide the Content-Length HTTP header.");
		return -1;
	}
	if (b->fr == FR_PLAIN) {
		b->expect = b->raw_len;
	} else {
		size_t vl;
		int cnt;
		const char *v = hdr(req, "x-amz-decoded-content-length", &vl,
		    &cnt);
		if (!v) {
			set_err(err, 411, "MissingContentLength",
			    "You must provide the Content-Length HTTP header.");
			return -1;
		}
		b->expect = cnt == 1 ? parse_len(v, vl) : -1;
		if (b->expect < 0) {
			set_err(err, 400, "InvalidArgument",
			    "x-amz-decoded-content-length must be one "
			    "non-negative integer.");
			return -1;
		}
	}
	if (b->expect > b->max_size) {
		too_large(err, b->expect, b->max_size);
		return -1;
	}
	return 0;
}

static int
head_md5(struct s3_body *b, const struct http_request *req,
    struct s3_body_err *err)
{
	size_t vl;
	int cnt;
	const char *v = hdr(req, "content-md5", &vl, &cnt);
	if (!v)
		return 0;
	trim(&v, &vl);
	if (cnt > 1 || b64_exact(v, vl, b->md5_want, 16) < 0) {
		set_err(err, 400, "InvalidDigest",
		    "The Content-MD5 you specified was invalid.");
		return -1;
	}
	memcpy(b->md5_want_b64, v, vl);
	b->md5_want_b64[vl] = 0;
	b->want_md5 = 1;
	return 0;
}

/* x-amz-checksum-* headers, x-amz-trailer, x-amz-sdk-checksum-algorithm. */
static int
head_checksums(struct s3_body *b, const struct http_request *req,
    struct s3_body_err *err)
{
	static const char multiple[] = "Expecting a single x-amz-checksum- "
	    "header. Multiple checksum Types are not allowed.";
	int n = 0;
	for (int i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name_len < 15 ||
		    strncasecmp(h->name, "x-amz-checksum-", 15) != 0)
			continue;
		/* Not value headers: the algorithm of a multipart upload,
		 * the checksum type, the mode of a GET. */
		if (span_ieq(h->name, h->name_len, "x-amz-checksum-algorithm") ||
		    span_ieq(h->name, h->name_len, "x-amz-checksum-type") ||
		    span_ieq(h->name, h->name_len, "x-amz-checksum-mode"))
			continue;
		enum ck_alg a = ck_by_header(h->name, h->name_len);
		if (a == CK_NONE) {
			set_err(err, 400, "InvalidRequest", "The algorithm "
			    "type you specified in x-amz-checksum- header is "
			    "invalid.");
			return -1;
		}
		if (n++ > 0) {
			set_err(err, 400, "InvalidRequest", "%s", multiple);
			return -1;
		}
		const char *v = h->value;
		size_t vl = h->value_len;
		if (b64_exact(v, vl, b->ck_want, ck_defs[a].len) < 0) {
			set_err(err, 400, "InvalidRequest",
			    "Value for %s header is invalid.", ck_defs[a].header);
			return -1;
		}
		memcpy(b->ck_want_b64, v, vl);
		b->ck_want_b64[vl] = 0;
		b->ck = a;
		b->ck_have = 1;
	}

	size_t tl;
	int tcnt;
	const char *t = hdr(req, "x-amz-trailer", &tl, &tcnt);
	if (t) {
		trim(&t, &tl);
		enum ck_alg a = tcnt == 1 ? ck_by_header(t, tl) : CK_NONE;
		if (a == CK_NONE) {
			set_err(err, 400, "InvalidRequest", "The value "
			    "specified in the x-amz-trailer header is not "
			    "supported");
			return -1;
		}
		if (b->fr != FR_UNSIGNED_TRAILER && b->fr != FR_SIGNED_TRAILER) {
			set_err(err, 400, "InvalidRequest", "x-amz-trailer "
			    "needs an aws-chunked body with trailers "
			    "(x-amz-content-sha256: STREAMING-...-TRAILER).");
			return -1;
		}
		if (b->ck != CK_NONE) {
			set_err(err, 400, "InvalidRequest", "%s", multiple);
			return -1;
		}
		b->ck = a;
		b->ck_in_trailer = 1;
	}

	size_t sl;
	int scnt;
	const char *s = hdr(req, "x-amz-sdk-checksum-algorithm", &sl, &scnt);
	if (s) {
		trim(&s, &sl);
		enum ck_alg a = CK_NONE;
		for (int k = CK_CRC32; k <= CK_SHA256 && scnt == 1; k++)
			if (span_ieq(s, sl, ck_defs[k].sdk))
				a = (enum ck_alg)k;
		if (a == CK_NONE) {
			set_err(err, 400, "InvalidRequest", "Checksum "
			    "algorithm provided is unsupported. Please try "
			    "again with any of the valid types: [CRC32, "
			    "CRC32C, CRC64NVME, SHA1, SHA256]");
			return -1;
		}
		if (b->ck == CK_NONE) {
			set_err(err, 400, "InvalidRequest",
			    "x-amz-sdk-checksum-algorithm specified, but no "
			    "corresponding x-amz-checksum-* or x-amz-trailer "
			    "headers were found.");
			return -1;
		}
		if (a != b->ck) {
			set_err(err, 400, "InvalidRequest", "Value for "
			    "x-amz-sdk-checksum-algorithm header is invalid.");
			return -1;
		}
	}
	return 0;
}

static int
head_signing(struct s3_body *b, const struct s3_body_cfg *cfg,
    struct s3_body_err *err)
{
	if (b->fr != FR_SIGNED && b->fr != FR_SIGNED_TRAILER)
		return 0;
	const struct sigv4_info *si = cfg->sig;
	if (si && si->have_key) {
		b->verify_sigs = 1;
		memcpy(b->key, si->signing_key, 32);
		memcpy(b->amz_date, si->amz_date, sizeof(b->amz_date));
		memcpy(b->scope, si->scope, sizeof(b->scope));
		memcpy(b->prev_sig, si->seed_signature, sizeof(b->prev_sig));
		b->amz_date[sizeof(b->amz_date) - 1] = 0;
		b->scope[sizeof(b->scope) - 1] = 0;
		b->prev_sig[sizeof(b->prev_sig) - 1] = 0;
	} else if (cfg->auth_checked) {
		set_err(err, 400, "InvalidRequest", "Signed chunks need a "
		    "request signed with AWS4-HMAC-SHA256 in the Authorization "
		    "header.");
		return -1;
	}
	return 0;
}

int
s3_body_new(struct s3_body **out, const struct http_request *req,
    const struct s3_body_cfg *cfg, s3_body_sink_fn sink, void *arg,
    struct s3_body_err *err)
{
	VAS_ASSERT(out && req && cfg && sink && err);
	*out = NULL;
	memset(err, 0, sizeof(*err));
	struct s3_body *b = calloc(1, sizeof(*b));
	if (!b) {
		set_err(err, 503, "SlowDown", "Out of memory.");
		return -ENOMEM;
	}
	b->sink = sink;
	b->arg = arg;
	b->max_size = cfg->max_size > 0 ? cfg->max_size : S3_BODY_MAX_DEFAULT;
	if (head_framing(b, req, err) < 0 || head_sizes(b, req, err) < 0 ||
	    head_md5(b, req, err) < 0 || head_checksums(b, req, err) < 0 ||
	    head_signing(b, cfg, err) < 0) {
		s3_body_free(&b);
		return -EBADMSG;
	}
	b->st = b->fr == FR_PLAIN ? ST_PLAIN : ST_SIZE;
	b->md5 = md_new(EVP_md5());
	int ok = b->md5 != NULL;
	if (ok && (b->want_sha256 || b->ck == CK_SHA256))
		ok = (b->sha256 = md_new(EVP_sha256())) != NULL;
	if (ok && b->ck == CK_SHA1)
		ok = (b->sha1 = md_new(EVP_sha1())) != NULL;
	if (ok && b->verify_sigs)
		ok = (b->chunk_md = md_new(EVP_sha256())) != NULL &&
		    (b->trailer_md = md_new(EVP_sha256())) != NULL;
	if (!ok) {
		s3_body_free(&b);
		set_err(err, 503, "SlowDown", "Out of memory.");
		return -ENOMEM;
	}
	*out = b;
	return 0;
}

/* --- the payload ------------------------------------------------------------- */

static int
emit(struct s3_body *b, const unsigned char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (b->expect >= 0 && (uint64_t)n > (uint64_t)(b->expect - b->emitted))
		return fail(b, 400, "InvalidRequest", "The body is longer "
		    "than its announced size (%lld bytes).",
		    (long long)b->expect);
	if ((uint64_t)n > (uint64_t)(b->max_size - b->emitted)) {
		/* A chunked plain body, whose size was not announced. */
		too_large(&b->err, b->emitted + (int64_t)n, b->max_size);
		b->st = ST_FAILED;
		b->rc = -EBADMSG;
		return b->rc;
	}
	EVP_DigestUpdate(b->md5, p, n);
	if (b->sha256)
		EVP_DigestUpdate(b->sha256, p, n);
	if (b->sha1)
		EVP_DigestUpdate(b->sha1, p, n);
	if (b->ck == CK_CRC32)
		b->crc32 = crc32_ieee(b->crc32, p, n);
	else if (b->ck == CK_CRC32C)
		b->crc32c = crc32c(b->crc32c, p, n);
	else if (b->ck == CK_CRC64NVME)
		b->crc64 = crc64_nvme(b->crc64, p, n);
	if (b->chunk_md)
		EVP_DigestUpdate(b->chunk_md, p, n);
	b->emitted += (int64_t)n;
	int r = b->sink(b->arg, p, n);
	if (r < 0) {
		fail(b, 500, "InternalError", "The upload could not be "
		    "stored.");
		b->rc = r;
	}
	return r < 0 ? r : 0;
}

/* Checks the chunk just read against its claimed signature. */
static int
check_chunk_sig(struct s3_body *b)
{
	if (!b->verify_sigs)
		return 0;
	unsigned char h[32];
	md_final(b->chunk_md, h);
	char sig[65];
	sigv4_chunk_signature(b->key, b->amz_date, b->scope, b->prev_sig, h,
	    sig);
	if (ct_memcmp(sig, b->chunk_sig, 64) != 0)
		return fail(b, 403, "SignatureDoesNotMatch", "The request "
		    "signature we calculated does not match the signature you "
		    "provided. Check your key and signing method.");
	memcpy(b->prev_sig, sig, 65);
	if (EVP_DigestInit_ex(b->chunk_md, EVP_sha256(), NULL) != 1)
		return fail(b, 500, "InternalError", "Digest failure.");
	return 0;
}

/* "hex-size[;chunk-signature=SIG]" (or other extensions, unsigned). */
static int
chunk_header(struct s3_body *b, const char *s, size_t n)
{
	uint64_t sz = 0;
	size_t i = 0;
	for (; i < n && hexval((unsigned char)s[i]) >= 0; i++) {
		if (i >= 16)
			return fail_malformed(b, "a chunk size is too long");
		sz = sz << 4 | (uint64_t)hexval((unsigned char)s[i]);
	}
	if (i == 0)
		return fail_malformed(b, "a chunk size is not hex");
	const char *ext = s + i;
	size_t el = n - i;
	if (b->fr == FR_SIGNED || b->fr == FR_SIGNED_TRAILER) {
		static const char pre[] = ";chunk-signature=";
		size_t pl = sizeof(pre) - 1;
		if (el != pl + 64 || memcmp(ext, pre, pl) != 0)
			return fail_malformed(b, "a chunk has no "
			    "chunk-signature");
		for (size_t k = 0; k < 64; k++) {
			int c = (unsigned char)ext[pl + k];
			if (hexval(c) < 0)
				return fail_malformed(b, "a chunk signature "
				    "is not hex");
			b->chunk_sig[k] = (char)(c >= 'A' && c <= 'F' ?
			    c + 32 : c);
		}
		b->chunk_sig[64] = 0;
	} else if (el > 0 && ext[0] != ';') {
		return fail_malformed(b, "a chunk size is followed by "
		    "something other than an extension");
	}
	if (sz > (uint64_t)(b->expect - b->emitted))
		return fail(b, 400, "InvalidRequest", "The body is longer than "
		    "x-amz-decoded-content-length (%lld bytes).",
		    (long long)b->expect);
	if (sz == 0) {
		/* The last chunk: its signature covers no data. */
		int r = check_chunk_sig(b);
		if (r < 0)
			return r;
		b->st = ST_TRAILER;
		return 0;
	}
	b->chunk_left = sz;
	b->st = ST_DATA;
	return 0;
}

static int
trailer_line(struct s3_body *b, const char *s, size_t n)
{
	if (b->trailer_signed)
		return fail_malformed(b, "a trailer follows the trailer "
		    "signature");
	if (++b->ntrailers > S3_BODY_TRAILERS_MAX)
		return fail_malformed(b, "too many trailer lines");
	const char *colon = memchr(s, ':', n);
	if (!colon || colon == s)
		return fail_malformed(b, "a trailer line has no name");
	const char *name = s;
	size_t nl = (size_t)(colon - s);
	const char *v = colon + 1;
	size_t vl = n - nl - 1;
	trim(&v, &vl);
	if (span_ieq(name, nl, "x-amz-trailer-signature")) {
		if (b->fr != FR_SIGNED_TRAILER)
			return fail_malformed(b, "an unsigned body has a "
			    "trailer signature");
		if (vl != 64)
			return fail_malformed(b, "the trailer signature is not "
			    "64 hex digits");
		char claimed[65];
		for (size_t k = 0; k < 64; k++) {
			int c = (unsigned char)v[k];
			if (hexval(c) < 0)
				return fail_malformed(b, "the trailer signature "
				    "is not hex");
			claimed[k] = (char)(c >= 'A' && c <= 'F' ? c + 32 : c);
		}
		claimed[64] = 0;
		b->trailer_signed = 1;
		if (!b->verify_sigs)
			return 0;
		unsigned char h[32];
		md_final(b->trailer_md, h);
		char sig[65];
		sigv4_trailer_signature(b->key, b->amz_date, b->scope,
		    b->prev_sig, h, sig);
		if (ct_memcmp(sig, claimed, 64) != 0)
			return fail(b, 403, "SignatureDoesNotMatch", "The "
			    "request signature we calculated does not match "
			    "the signature you provided. Check your key and "
			    "signing method.");
		return 0;
	}
	if (!b->ck_in_trailer || !span_ieq(name, nl, ck_defs[b->ck].header))
		return fail(b, 400, "InvalidRequest", "The body carries a "
		    "trailer x-amz-trailer does not declare.");
	if (b->ck_have)
		return fail(b, 400, "InvalidRequest", "The trailer %s is "
		    "repeated.", ck_defs[b->ck].header);
	if (b64_exact(v, vl, b->ck_want, ck_defs[b->ck].len) < 0)
		return fail(b, 400, "InvalidRequest", "Value for %s trailing "
		    "header is invalid.", ck_defs[b->ck].header);
	memcpy(b->ck_want_b64, v, vl);
	b->ck_want_b64[vl] = 0;
	b->ck_have = 1;
	if (b->trailer_md) {
		EVP_DigestUpdate(b->trailer_md, name, nl);
		EVP_DigestUpdate(b->trailer_md, ":", 1);
		EVP_DigestUpdate(b->trailer_md, v, vl);
		EVP_DigestUpdate(b->trailer_md, "\n", 1);
	}
	return 0;
}

/* One complete framing line (terminator removed). */
static int
framing_line(struct s3_body *b, const char *s, size_t n)
{
	switch (b->st) {
	case ST_SIZE:
		return chunk_header(b, s, n);
	case ST_DATA_END:
		if (n != 0)
			return fail_malformed(b, "a chunk is longer than its "
			    "size");
		b->st = ST_SIZE;
		return 0;
	case ST_TRAILER:
		if (n > 0)
			return trailer_line(b, s, n);
		if (b->fr == FR_SIGNED_TRAILER && !b->trailer_signed)
			return fail_malformed(b, "the trailer is not signed");
		b->st = ST_DONE;
		return 0;
	default:
		VAS_ASSERT(0);
		return -EINVAL;
	}
}

int
s3_body_feed(struct s3_body *b, const void *p, size_t n)
{
	if (b->st == ST_FAILED)
		return b->rc;
	if (b->raw_len >= 0 && (uint64_t)n > (uint64_t)(b->raw_len - b->raw_fed))
		return fail(b, 400, "InvalidRequest", "More body bytes than "
		    "Content-Length.");
	b->raw_fed += (int64_t)n;
	const unsigned char *s = p;
	if (b->st == ST_PLAIN)
		return emit(b, s, n);
	while (n > 0) {
		int r = 0;
		if (b->st == ST_DATA) {
			size_t take = (uint64_t)n < b->chunk_left ? n :
			    (size_t)b->chunk_left;
			r = emit(b, s, take);
			if (r < 0)
				return r;
			s += take;
			n -= take;
			b->chunk_left -= take;
			if (b->chunk_left == 0) {
				b->st = ST_DATA_END;
				if ((r = check_chunk_sig(b)) < 0)
					return r;
			}
			continue;
		}
		if (b->st == ST_DONE) {
			for (size_t i = 0; i < n; i++)
				if ((s[i] != '\r' && s[i] != '\n') ||
				    ++b->tail_crlf > TAIL_CRLF_MAX)
					return fail_malformed(b, "bytes follow "
					    "the end of the body");
			return 0;
		}
		if (b->st == ST_FAILED)
			return b->rc;
		/* A framing line: up to its LF, bounded. */
		const unsigned char *lf = memchr(s, '\n', n);
		size_t take = lf ? (size_t)(lf - s) : n;
		if (take > sizeof(b->line) - b->line_len)
			return fail_malformed(b, "a chunk header or trailer "
			    "line is too long");
		memcpy(b->line + b->line_len, s, take);
		b->line_len += take;
		s += take;
		n -= take;
		if (!lf)
			break;
		s++; /* the LF */
		n--;
		size_t ll = b->line_len;
		if (ll > 0 && b->line[ll - 1] == '\r')
			ll--;
		for (size_t i = 0; i < ll; i++)
			if ((unsigned char)b->line[i] < 0x20 &&
			    b->line[i] != '\t')
				return fail_malformed(b, "a control character "
				    "in a chunk header or trailer");
		b->line_len = 0;
		if ((r = framing_line(b, b->line, ll)) < 0)
			return r;
	}
	return 0;
}

/* --- the verdict ------------------------------------------------------------- */

int
s3_body_finish(struct s3_body *b)
{
	if (b->st == ST_FAILED)
		return b->rc;
	if (b->finished)
		return 0;
	if (b->st == ST_PLAIN) {
		if (b->raw_len >= 0 && b->emitted < b->raw_len)
			return fail_incomplete(b, b->raw_len);
	} else {
		if (b->st != ST_DONE || b->emitted != b->expect)
			return fail_incomplete(b, b->expect);
		if (b->ck_in_trailer && !b->ck_have)
			return fail(b, 400, "InvalidRequest", "x-amz-trailer "
			    "declares %s, but the body has no such trailer.",
			    ck_defs[b->ck].header);
	}
	md_final(b->md5, b->md5_out);
	unsigned char sha[32];
	if (b->sha256)
		md_final(b->sha256, sha);
	if (b->want_sha256 && memcmp(sha, b->sha256_want, 32) != 0) {
		char want[65], got[65];
		hex_encode(b->sha256_want, 32, want);
		hex_encode(sha, 32, got);
		fail(b, 400, "XAmzContentSHA256Mismatch", "The provided "
		    "'x-amz-content-sha256' header does not match what was "
		    "computed.");
		snprintf(b->err.extra, sizeof(b->err.extra),
		    "<ClientComputedContentSHA256>%s</ClientComputedContentSHA256>"
		    "<S3ComputedContentSHA256>%s</S3ComputedContentSHA256>",
		    want, got);
		return b->rc;
	}
	if (b->want_md5 && memcmp(b->md5_out, b->md5_want, 16) != 0) {
		char got[48];
		b64_small(b->md5_out, 16, got);
		fail(b, 400, "BadDigest", "The Content-MD5 you specified did "
		    "not match what we received.");
		snprintf(b->err.extra, sizeof(b->err.extra),
		    "<ExpectedDigest>%s</ExpectedDigest>"
		    "<CalculatedDigest>%s</CalculatedDigest>",
		    b->md5_want_b64, got);
		return b->rc;
	}
	if (b->ck != CK_NONE) {
		unsigned char *o = b->ck_out;
		switch (b->ck) {
		case CK_CRC32:
		case CK_CRC32C: {
			uint32_t c = b->ck == CK_CRC32 ? b->crc32 : b->crc32c;
			for (int i = 0; i < 4; i++)
				o[i] = (unsigned char)(c >> (24 - 8 * i));
			break;
		}
		case CK_CRC64NVME:
			for (int i = 0; i < 8; i++)
				o[i] = (unsigned char)(b->crc64 >> (56 - 8 * i));
			break;
		case CK_SHA1:
			md_final(b->sha1, o);
			break;
		case CK_SHA256:
			memcpy(o, sha, 32);
			break;
		case CK_NONE:
			break;
		}
		if (memcmp(o, b->ck_want, ck_defs[b->ck].len) != 0)
			return fail(b, 400, "BadDigest", "The %s you specified "
			    "did not match the calculated checksum.",
			    ck_defs[b->ck].in_msg);
	}
	b->finished = 1;
	return 0;
}

const struct s3_body_err *
s3_body_error(const struct s3_body *b)
{
	return &b->err;
}

int64_t
s3_body_size(const struct s3_body *b)
{
	return b->emitted;
}

int64_t
s3_body_expected_size(const struct s3_body *b)
{
	return b->expect;
}

void
s3_body_md5(const struct s3_body *b, unsigned char md5[16])
{
	VAS_ASSERT(b->finished);
	memcpy(md5, b->md5_out, 16);
}

void
s3_body_etag(const struct s3_body *b, char hex[33])
{
	VAS_ASSERT(b->finished);
	hex_encode(b->md5_out, 16, hex);
}

int
s3_body_checksum(const struct s3_body *b, const char **name, char value[64])
{
	VAS_ASSERT(b->finished);
	if (b->ck == CK_NONE)
		return 0;
	*name = ck_defs[b->ck].header;
	b64_small(b->ck_out, ck_defs[b->ck].len, value);
	return 1;
}

void
s3_body_free(struct s3_body **bp)
{
	struct s3_body *b = *bp;
	if (!b)
		return;
	*bp = NULL;
	EVP_MD_CTX_free(b->md5);
	EVP_MD_CTX_free(b->sha256);
	EVP_MD_CTX_free(b->sha1);
	EVP_MD_CTX_free(b->chunk_md);
	EVP_MD_CTX_free(b->trailer_md);
	explicit_bzero(b->key, sizeof(b->key));
	free(b);
}

int
s3_body_stored_encoding(const struct http_request *req, char *out, size_t cap)
{
	size_t o = 0;
	if (cap == 0)
		return -E2BIG;
	for (int i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (!span_ieq(h->name, h->name_len, "content-encoding"))
			continue;
		size_t k = 0;
		while (k < h->value_len) {
			size_t j = k;
			while (j < h->value_len && h->value[j] != ',')
				j++;
			const char *t = h->value + k;
			size_t tl = j - k;
			trim(&t, &tl);
			k = j + 1;
			if (tl == 0 || span_ieq(t, tl, "aws-chunked"))
				continue;
			if (o + (o ? 1 : 0) + tl >= cap)
				return -E2BIG;
			if (o)
				out[o++] = ',';
			memcpy(out + o, t, tl);
			o += tl;
		}
	}
	out[o] = 0;
	return (int)o;
}
