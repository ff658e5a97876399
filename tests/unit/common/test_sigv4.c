/*
 * test_sigv4.c: SigV4 signing and verification against AWS's published S3
 * examples (examplebucket, AKIAIOSFODNN7EXAMPLE, 20130524T000000Z), then
 * round trips, every tampered piece, clock skew, presigned expiry, the
 * canonicalisation rules, and many malformed Authorization shapes.
 * Single-threaded.  Requests are built as struct http_request by hand (no
 * parser involved), so these tests exercise sigv4.c alone.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/dbuf.h"
#include "common/util.h"
#include "common/sigv4.h"
#include "common/vas.h"
#include "tap.h"

#define AK "AKIAIOSFODNN7EXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define HOST "examplebucket.s3.amazonaws.com"
#define T0 1369353600 /* 20130524T000000Z */
#define EMPTY SIGV4_EMPTY_SHA256
#define PUT_HASH "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"

static const char *
secret_of(void *arg, const char *key)
{
	(void)arg;
	if (strcmp(key, AK) == 0)
		return SK;
	if (strcmp(key, "AKIDOTHER") == 0)
		return "other-secret";
	return NULL;
}

static const char *
secret_wrong(void *arg, const char *key)
{
	(void)arg;
	(void)key;
	return "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEz";
}

/* A request built from a target and "Name: value" lines; strings live in
 * the struct so tests can tamper with them. */
struct treq {
	struct http_request r;
	char target[4096];
	char lines[40][1024];
	int nlines;
};

static void
treq_build(struct treq *t, const char *method)
{
	struct http_request *r = &t->r;
	memset(r, 0, sizeof(*r));
	r->method = method;
	r->method_len = strlen(method);
	r->target = t->target;
	r->target_len = strlen(t->target);
	char *q = strchr(t->target, '?');
	r->path = t->target;
	r->path_len = q ? (size_t)(q - t->target) : r->target_len;
	r->query = q ? q + 1 : "";
	r->query_len = q ? strlen(q + 1) : 0;
	r->content_length = -1;
	for (int i = 0; i < t->nlines; i++) {
		char *l = t->lines[i];
		char *c = strchr(l, ':');
		struct http_header *h = &r->headers[r->nheaders++];
		h->name = l;
		h->name_len = (size_t)(c - l);
		char *v = c + 1;
		while (*v == ' ')
			v++;
		size_t vl = strlen(v);
		while (vl && v[vl - 1] == ' ')
			vl--;
		h->value = v;
		h->value_len = vl;
	}
}

static void
treq_init(struct treq *t, const char *method, const char *target,
    const char *const *lines)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->target, sizeof(t->target), "%s", target);
	for (; lines && *lines; lines++)
		snprintf(t->lines[t->nlines++], sizeof(t->lines[0]), "%s",
		    *lines);
	treq_build(t, method);
}

static void
treq_add(struct treq *t, const char *line)
{
	snprintf(t->lines[t->nlines++], sizeof(t->lines[0]), "%s", line);
	treq_build(t, t->r.method);
}

/* Index of the header line starting with prefix (case-sensitive). */
static int
treq_find(struct treq *t, const char *prefix)
{
	for (int i = 0; i < t->nlines; i++)
		if (strncmp(t->lines[i], prefix, strlen(prefix)) == 0)
			return i;
	return -1;
}

static void
treq_set(struct treq *t, const char *prefix, const char *line)
{
	int i = treq_find(t, prefix);
	if (i < 0)
		i = t->nlines++;
	snprintf(t->lines[i], sizeof(t->lines[0]), "%s", line);
	treq_build(t, t->r.method);
}

static enum sigv4_status
verify(struct treq *t, int64_t now)
{
	const char *msg = NULL;
	enum sigv4_status st = sigv4_verify(&t->r, now, secret_of, NULL, &msg);
	if (st != SIGV4_OK)
		CHECK(msg != NULL);
	return st;
}

/* Independent signer for tests: signature over a canonical request. */
static void
test_signature(const char *secret, const char *amz_date, const char *region,
    const char *canon, char out[65])
{
	char k0[256], date8[9], sts[512];
	unsigned char k[32], sig[32];
	memcpy(date8, amz_date, 8);
	date8[8] = 0;
	snprintf(k0, sizeof(k0), "AWS4%s", secret);
	hmac_sha256(k0, strlen(k0), date8, 8, k);
	hmac_sha256(k, 32, region, strlen(region), k);
	hmac_sha256(k, 32, "s3", 2, k);
	hmac_sha256(k, 32, "aws4_request", 12, k);
	char ch[65];
	sha256_hex(canon, strlen(canon), ch);
	snprintf(sts, sizeof(sts),
	    "AWS4-HMAC-SHA256\n%s\n%s/%s/s3/aws4_request\n%s", amz_date, date8,
	    region, ch);
	hmac_sha256(k, 32, sts, strlen(sts), sig);
	hex_encode(sig, 32, out);
}

/* ------------------------------------------------------------------ */
/* AWS's published examples.                                           */

static const char range_canon[] =
    "GET\n"
    "/test.txt\n"
    "\n"
    "host:examplebucket.s3.amazonaws.com\n"
    "range:bytes=0-9\n"
    "x-amz-content-sha256:" EMPTY "\n"
    "x-amz-date:20130524T000000Z\n"
    "\n"
    "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY;

TEST(aws_example_range_canonical_request)
{
	struct treq t;
	const char *h[] = {"Host: " HOST, "Range: bytes=0-9",
		"x-amz-content-sha256: " EMPTY, "x-amz-date: 20130524T000000Z",
		NULL};
	treq_init(&t, "GET", "/test.txt", h);
	struct dbuf b;
	dbuf_init(&b, 65536);
	const char *sh = "host;range;x-amz-content-sha256;x-amz-date";
	int r = sigv4_canonical_request(&b, "GET", t.r.path, t.r.path_len,
	    t.r.query, t.r.query_len, t.r.headers, t.r.nheaders, sh,
	    strlen(sh), EMPTY, 0);
	CHECK_EQ_INT(r, 0);
	CHECK_EQ_STR(b.p, range_canon);
	char ch[65];
	sha256_hex(b.p, b.len, ch);
	CHECK_EQ_STR(ch,
	    "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
	dbuf_free(&b);
}

struct example {
	const char *name, *method, *path, *query;
	struct sigv4_hdr extra[2];
	int nextra;
	const char *payload, *signed_headers, *signature;
};

static const struct example examples[] = {
	{"get-range", "GET", "/test.txt", "", {{"Range", "bytes=0-9"}}, 1,
	    EMPTY, "host;range;x-amz-content-sha256;x-amz-date",
	    "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
	{"put-object", "PUT", "/test%24file.text", "",
	    {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
		{"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
	    2, PUT_HASH,
	    "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
	    "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"},
	{"get-lifecycle", "GET", "/", "lifecycle", {{0}}, 0, EMPTY,
	    "host;x-amz-content-sha256;x-amz-date",
	    "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"},
	{"list-objects", "GET", "/", "max-keys=2&prefix=J", {{0}}, 0, EMPTY,
	    "host;x-amz-content-sha256;x-amz-date",
	    "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"},
};

TEST(aws_examples_sign)
{
	for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
		const struct example *e = &examples[i];
		struct sigv4_sign_req r = {
			.method = e->method, .host = HOST, .path = e->path,
			.query = e->query, .headers = e->extra,
			.nheaders = e->nextra, .payload_hash = e->payload,
			.region = "us-east-1", .service = "s3",
			.access_key = AK, .secret_key = SK, .now = T0,
		};
		struct dbuf a;
		dbuf_init(&a, 4096);
		char date[17] = "";
		CHECK_EQ_INT(sigv4_sign(&r, &a, date), 0);
		char want[512];
		snprintf(want, sizeof(want),
		    "AWS4-HMAC-SHA256 Credential=" AK
		    "/20130524/us-east-1/s3/aws4_request, SignedHeaders=%s, "
		    "Signature=%s",
		    e->signed_headers, e->signature);
		if (!a.p || strcmp(a.p, want) != 0)
			fprintf(stderr, "  example %s\n", e->name);
		CHECK_EQ_STR(a.p, want);
		CHECK_EQ_STR(date, "20130524T000000Z");
		dbuf_free(&a);
	}
}

/* Builds the example as a received request carrying its signature. */
static void
example_request(struct treq *t, const struct example *e, const char *authz_fmt)
{
	char target[512], line[1024];
	snprintf(target, sizeof(target), "%s%s%s", e->path, *e->query ? "?" : "",
	    e->query);
	const char *h[] = {"Host: " HOST, "x-amz-date: 20130524T000000Z", NULL};
	treq_init(t, e->method, target, h);
	snprintf(line, sizeof(line), "x-amz-content-sha256: %s", e->payload);
	treq_add(t, line);
	for (int i = 0; i < e->nextra; i++) {
		snprintf(line, sizeof(line), "%s: %s", e->extra[i].name,
		    e->extra[i].value);
		treq_add(t, line);
	}
	snprintf(line, sizeof(line), authz_fmt, e->signed_headers, e->signature);
	treq_add(t, line);
}

TEST(aws_examples_verify)
{
	/* The AWS docs' own spelling (no spaces) and botocore's (", "). */
	const char *fmts[] = {
		"Authorization: AWS4-HMAC-SHA256 Credential=" AK
		"/20130524/us-east-1/s3/aws4_request,SignedHeaders=%s,"
		"Signature=%s",
		"Authorization: AWS4-HMAC-SHA256 Credential=" AK
		"/20130524/us-east-1/s3/aws4_request, SignedHeaders=%s, "
		"Signature=%s",
	};
	for (size_t f = 0; f < 2; f++)
		for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]);
		    i++) {
			struct treq t;
			example_request(&t, &examples[i], fmts[f]);
			CHECK_EQ_INT(verify(&t, T0), SIGV4_OK);
			CHECK_EQ_INT(verify(&t, T0 + 900), SIGV4_OK);
			CHECK_EQ_INT(verify(&t, T0 - 900), SIGV4_OK);
			CHECK_EQ_INT(verify(&t, T0 + 901), SIGV4_SKEWED);
			CHECK_EQ_INT(verify(&t, T0 - 901), SIGV4_SKEWED);
		}
}

#define PRESIGN_Q                                                             \
	"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AK              \
	"%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date="             \
	"20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
#define PRESIGN_SIG                                                           \
	"aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"

TEST(aws_example_presigned)
{
	struct treq t;
	const char *h[] = {"Host: " HOST, NULL};
	treq_init(&t, "GET",
	    "/test.txt?" PRESIGN_Q "&X-Amz-Signature=" PRESIGN_SIG, h);
	/* The canonical request drops X-Amz-Signature; sign it by hand. */
	struct dbuf b;
	dbuf_init(&b, 65536);
	CHECK_EQ_INT(sigv4_canonical_request(&b, "GET", t.r.path, t.r.path_len,
	    t.r.query, t.r.query_len, t.r.headers, t.r.nheaders, "host", 4,
	    SIGV4_UNSIGNED_PAYLOAD, 1), 0);
	CHECK_EQ_STR(b.p, "GET\n/test.txt\n" PRESIGN_Q "\nhost:" HOST
	    "\n\nhost\nUNSIGNED-PAYLOAD");
	char sig[65];
	test_signature(SK, "20130524T000000Z", "us-east-1", b.p, sig);
	CHECK_EQ_STR(sig, PRESIGN_SIG);
	dbuf_free(&b);

	CHECK_EQ_INT(verify(&t, T0), SIGV4_OK);
	CHECK_EQ_INT(verify(&t, T0 + 86400), SIGV4_OK);
	CHECK_EQ_INT(verify(&t, T0 + 86401), SIGV4_EXPIRED);
	CHECK_EQ_INT(verify(&t, T0 - 900), SIGV4_OK);
	CHECK_EQ_INT(verify(&t, T0 - 901), SIGV4_EXPIRED); /* not valid yet */

	/* Signature first in the query: order does not matter. */
	treq_init(&t, "GET",
	    "/test.txt?X-Amz-Signature=" PRESIGN_SIG "&" PRESIGN_Q, h);
	CHECK_EQ_INT(verify(&t, T0 + 10), SIGV4_OK);
	/* Tampered signature, path, expiry, extra param. */
	treq_init(&t, "GET",
	    "/test.txt?" PRESIGN_Q "&X-Amz-Signature="
	    "beeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
	    h);
	CHECK_EQ_INT(verify(&t, T0 + 10), SIGV4_MISMATCH);
	treq_init(&t, "GET",
	    "/test.tx?" PRESIGN_Q "&X-Amz-Signature=" PRESIGN_SIG, h);
	CHECK_EQ_INT(verify(&t, T0 + 10), SIGV4_MISMATCH);
	treq_init(&t, "GET",
	    "/test.txt?" PRESIGN_Q "0&X-Amz-Signature=" PRESIGN_SIG, h);
	CHECK_EQ_INT(verify(&t, T0 + 10), SIGV4_MALFORMED); /* host0 unsigned */
	char tgt[1024];
	snprintf(tgt, sizeof(tgt), "/test.txt?%s&X-Amz-Signature=%s",
	    PRESIGN_Q, PRESIGN_SIG);
	char *e = strstr(tgt, "Expires=86400");
	memcpy(e, "Expires=86401", 13);
	treq_init(&t, "GET", tgt, h);
	CHECK_EQ_INT(verify(&t, T0 + 10), SIGV4_MISMATCH);
	treq_init(&t, "GET",
	    "/test.txt?" PRESIGN_Q "&x=1&X-Amz-Signature=" PRESIGN_SIG, h);
	CHECK_EQ_INT(verify(&t, T0 + 10), SIGV4_MISMATCH);
	/* The signed host header is required. */
	treq_init(&t, "GET",
	    "/test.txt?" PRESIGN_Q "&X-Amz-Signature=" PRESIGN_SIG, NULL);
	CHECK_EQ_INT(verify(&t, T0 + 10), SIGV4_MALFORMED);
}

TEST(presigned_parameters)
{
	const char *h[] = {"Host: " HOST, NULL};
	struct {
		const char *q;
		enum sigv4_status want;
	} cases[] = {
		/* Missing pieces. */
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256", SIGV4_MALFORMED},
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AK
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date="
		 "20130524T000000Z&X-Amz-Expires=86400&X-Amz-Signature="
		 PRESIGN_SIG, SIGV4_MALFORMED},
		/* Expires out of range or not a number. */
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AK
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date="
		 "20130524T000000Z&X-Amz-Expires=0&X-Amz-SignedHeaders=host"
		 "&X-Amz-Signature=" PRESIGN_SIG, SIGV4_EXPIRED},
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AK
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date="
		 "20130524T000000Z&X-Amz-Expires=604801&X-Amz-SignedHeaders=host"
		 "&X-Amz-Signature=" PRESIGN_SIG, SIGV4_MALFORMED},
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AK
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date="
		 "20130524T000000Z&X-Amz-Expires=-5&X-Amz-SignedHeaders=host"
		 "&X-Amz-Signature=" PRESIGN_SIG, SIGV4_MALFORMED},
		/* Credential date differs from X-Amz-Date. */
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" AK
		 "%2F20130525%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date="
		 "20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
		 "&X-Amz-Signature=" PRESIGN_SIG, SIGV4_MALFORMED},
		/* Duplicate signature. */
		{PRESIGN_Q "&X-Amz-Signature=" PRESIGN_SIG
		 "&X-Amz-Signature=" PRESIGN_SIG, SIGV4_MALFORMED},
		/* Other algorithm (SigV4a). */
		{"X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256&X-Amz-Credential=x",
		    SIGV4_UNSUPPORTED},
		/* SigV2 query auth. */
		{"AWSAccessKeyId=" AK "&Expires=1369440000&Signature=abc%3D",
		    SIGV4_UNSUPPORTED},
		/* Signature without an algorithm. */
		{"X-Amz-Signature=" PRESIGN_SIG, SIGV4_MALFORMED},
		/* Unknown key. */
		{"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=NOPE"
		 "%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date="
		 "20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
		 "&X-Amz-Signature=" PRESIGN_SIG, SIGV4_UNKNOWN_KEY},
		/* Plain query, no auth. */
		{"max-keys=2&prefix=J", SIGV4_ANONYMOUS},
		/* Bad percent escape in a parameter. */
		{PRESIGN_Q "&X-Amz-Signature=" PRESIGN_SIG "&bad=%G1",
		    SIGV4_MALFORMED},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct treq t;
		char target[2048];
		snprintf(target, sizeof(target), "/test.txt?%s", cases[i].q);
		treq_init(&t, "GET", target, h);
		enum sigv4_status st = verify(&t, T0 + 10);
		if (st != cases[i].want)
			fprintf(stderr, "  case %zu: got %d\n", i, st);
		CHECK_EQ_INT(st, cases[i].want);
	}
	/* Header and query auth together. */
	struct treq t;
	treq_init(&t, "GET",
	    "/test.txt?" PRESIGN_Q "&X-Amz-Signature=" PRESIGN_SIG, h);
	treq_add(&t, "Authorization: AWS4-HMAC-SHA256 Credential=x");
	CHECK_EQ_INT(verify(&t, T0), SIGV4_MALFORMED);
}

/* X-Amz-Expires out of 0..604800: S3's AuthorizationQueryParametersError
 * messages, word for word. */
TEST(presigned_expires_messages)
{
	const char *h[] = {"Host: " HOST, NULL};
	static const struct {
		const char *v, *msg;
	} cases[] = {
	    {"604801", "X-Amz-Expires must be less than a week (in seconds); "
		"that is, the given X-Amz-Expires must be less than 604800 "
		"seconds"},
	    {"99999999999", "X-Amz-Expires must be less than a week (in "
		"seconds); that is, the given X-Amz-Expires must be less than "
		"604800 seconds"},
	    {"-5", "X-Amz-Expires must be non-negative"},
	    {"-", "X-Amz-Expires should be a number"},
	    {"abc", "X-Amz-Expires should be a number"},
	    {"", "X-Amz-Expires should be a number"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct treq t;
		char target[2048];
		snprintf(target, sizeof(target), "/test.txt?X-Amz-Algorithm="
		    "AWS4-HMAC-SHA256&X-Amz-Credential=" AK "%%2F20130524%%2F"
		    "us-east-1%%2Fs3%%2Faws4_request&X-Amz-Date=20130524T000000Z"
		    "&X-Amz-Expires=%s&X-Amz-SignedHeaders=host&X-Amz-Signature="
		    PRESIGN_SIG, cases[i].v);
		treq_init(&t, "GET", target, h);
		const char *msg = NULL;
		struct sigv4_info info;
		CHECK_EQ_INT(sigv4_verify_region(&t.r, T0 + 10, NULL, secret_of,
		    NULL, &msg, &info), SIGV4_MALFORMED);
		CHECK_EQ_STR(msg, cases[i].msg);
		CHECK_EQ_INT(info.presigned, 1);
	}
}

static void date_signed_request(struct treq *t, const char *date_line);

/* The credential scope's region against the one served: checked before
 * the date and the signature, in both forms. */
TEST(region_check)
{
	const char *h[] = {"Host: " HOST, NULL};
	struct treq t;
	treq_init(&t, "GET",
	    "/test.txt?" PRESIGN_Q "&X-Amz-Signature=" PRESIGN_SIG, h);
	struct sigv4_info info;
	const char *msg = NULL;
	CHECK_EQ_INT(sigv4_verify_region(&t.r, T0, "us-east-1", secret_of,
	    NULL, &msg, &info), SIGV4_OK);
	CHECK_EQ_INT(sigv4_verify_region(&t.r, T0, "eu-west-1", secret_of,
	    NULL, &msg, &info), SIGV4_WRONG_REGION);
	CHECK_EQ_STR(info.region, "us-east-1");
	CHECK_EQ_INT(info.presigned, 1);
	/* even expired: the region comes first, as on S3 */
	CHECK_EQ_INT(sigv4_verify_region(&t.r, T0 + 999999, "eu-west-1",
	    secret_of, NULL, &msg, &info), SIGV4_WRONG_REGION);
	CHECK_EQ_INT(sigv4_verify_region(&t.r, T0, NULL, secret_of, NULL, &msg,
	    &info), SIGV4_OK);

	date_signed_request(&t, "Date: Fri, 24 May 2013 00:10:00 GMT");
	CHECK_EQ_INT(sigv4_verify_region(&t.r, T0 + 600, "us-east-1",
	    secret_of, NULL, &msg, &info), SIGV4_OK);
	CHECK_EQ_INT(info.presigned, 0);
	CHECK_EQ_INT(sigv4_verify_region(&t.r, T0 + 600, "US-EAST-1",
	    secret_of, NULL, &msg, &info), SIGV4_WRONG_REGION);
	CHECK_EQ_STR(info.region, "us-east-1");
	CHECK_EQ_INT(info.presigned, 0);
	CHECK_EQ_INT(sigv4_verify_region(&t.r, T0 + 99999, "ap-south-1",
	    secret_of, NULL, &msg, &info), SIGV4_WRONG_REGION);
	/* a malformed credential is malformed whatever the region */
	treq_init(&t, "GET", "/test.txt", h);
	treq_add(&t, "Authorization: AWS4-HMAC-SHA256 Credential=x, "
	    "SignedHeaders=host, Signature=" PRESIGN_SIG);
	CHECK_EQ_INT(sigv4_verify_region(&t.r, T0, "eu-west-1", secret_of,
	    NULL, &msg, &info), SIGV4_MALFORMED);
}

/* ------------------------------------------------------------------ */
/* Round trips and tampering.                                          */

/* Signs a request with sigv4_sign and builds the received form. */
static void
signed_request(struct treq *t, const char *method, const char *path,
    const char *query, const struct sigv4_hdr *extra, int nextra,
    const char *payload, const char *token, int64_t now)
{
	struct sigv4_sign_req r = {
		.method = method, .host = "127.0.0.1:9000", .path = path,
		.query = query, .headers = extra, .nheaders = nextra,
		.payload_hash = payload, .region = "eu-west-3", .service = "s3",
		.access_key = AK, .secret_key = SK, .session_token = token,
		.now = now,
	};
	struct dbuf a;
	dbuf_init(&a, 4096);
	char date[17];
	int rc = sigv4_sign(&r, &a, date);
	CHECK_EQ_INT(rc, 0);
	char target[4096], line[1024];
	snprintf(target, sizeof(target), "%s%s%s", path, *query ? "?" : "",
	    query);
	treq_init(t, method, target, NULL);
	treq_add(t, "Host: 127.0.0.1:9000");
	snprintf(line, sizeof(line), "X-Amz-Date: %s", date);
	treq_add(t, line);
	snprintf(line, sizeof(line), "X-Amz-Content-SHA256: %s", payload);
	treq_add(t, line);
	if (token) {
		snprintf(line, sizeof(line), "X-Amz-Security-Token: %s", token);
		treq_add(t, line);
	}
	for (int i = 0; i < nextra; i++) {
		snprintf(line, sizeof(line), "%s: %s", extra[i].name,
		    extra[i].value);
		treq_add(t, line);
	}
	snprintf(line, sizeof(line), "Authorization: %s", a.p ? a.p : "");
	treq_add(t, line);
	dbuf_free(&a);
}

static const struct sigv4_hdr rt_extra[] = {
	{"Range", "bytes=100-199"},
	{"x-amz-meta-note", "hello   spaced    world"},
};

static void
rt_default(struct treq *t)
{
	signed_request(t, "GET", "/bucket/dir/a%20b%2Bc%E2%82%AC.bin",
	    "prefix=dir%2F&max-keys=10&list-type=2&x=a%20b", rt_extra, 2,
	    SIGV4_UNSIGNED_PAYLOAD, NULL, T0 + 5000);
}

TEST(round_trip)
{
	struct treq t;
	rt_default(&t);
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_OK);

	signed_request(&t, "PUT", "/b/k", "", NULL, 0, PUT_HASH, "tok/en+==",
	    T0);
	CHECK_EQ_INT(verify(&t, T0), SIGV4_OK);

	/* Streaming literals are signed as the payload hash, verbatim. */
	const char *lits[] = {"STREAMING-UNSIGNED-PAYLOAD-TRAILER",
		"STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
		"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", EMPTY};
	for (size_t i = 0; i < 4; i++) {
		signed_request(&t, "PUT", "/b/k", "uploadId=1&partNumber=2",
		    NULL, 0, lits[i], NULL, T0);
		CHECK_EQ_INT(verify(&t, T0), SIGV4_OK);
	}
	/* Equivalent spellings verify: raw vs encoded unreserved chars and
	 * lowercase escapes normalise to the same canonical form. */
	signed_request(&t, "GET", "/b/%7Ea-b_c.d", "k=%7e", NULL, 0, EMPTY,
	    NULL, T0);
	snprintf(t.target, sizeof(t.target), "/b/~a%%2Db_c.d?k=~");
	treq_build(&t, "GET");
	CHECK_EQ_INT(verify(&t, T0), SIGV4_OK);
	/* Query order does not matter. */
	signed_request(&t, "GET", "/b", "b=2&a=1&a=0", NULL, 0, EMPTY, NULL,
	    T0);
	snprintf(t.target, sizeof(t.target), "/b?a=0&a=1&b=2");
	treq_build(&t, "GET");
	CHECK_EQ_INT(verify(&t, T0), SIGV4_OK);
	/* Signing an uppercase header name gives the lowercase list. */
	struct sigv4_hdr up[] = {{"X-Amz-Meta-UP", "v"}};
	signed_request(&t, "HEAD", "/b", "", up, 1, EMPTY, NULL, T0);
	CHECK_EQ_INT(verify(&t, T0), SIGV4_OK);
	CHECK(strstr(t.lines[treq_find(&t, "Authorization")],
	    ";x-amz-date;x-amz-meta-up,") != NULL);
}

TEST(tampering)
{
	struct treq t;
	int i;
	char line[1024];

	/* The server holds a different secret for the key. */
	rt_default(&t);
	const char *msg = NULL;
	CHECK_EQ_INT(sigv4_verify(&t.r, T0 + 5000, secret_wrong, NULL, &msg),
	    SIGV4_MISMATCH);
	CHECK(msg != NULL);

	/* Wrong key id (unknown) and another known key's secret. */
	rt_default(&t);
	i = treq_find(&t, "Authorization");
	char *p = strstr(t.lines[i], AK);
	memcpy(p, "AKIAIOSFODNN7EXAMPLX", 20);
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_UNKNOWN_KEY);
	rt_default(&t);
	i = treq_find(&t, "Authorization");
	char *a = t.lines[i];
	p = strstr(a, AK);
	memmove(p + 9, p + 20, strlen(p + 20) + 1);
	memcpy(p, "AKIDOTHER", 9);
	treq_build(&t, "GET");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MISMATCH);

	/* x-amz-date one second off: the signed date differs. */
	rt_default(&t);
	treq_set(&t, "X-Amz-Date", "X-Amz-Date: 20130524T012321Z");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MISMATCH);
	/* Credential date differs from x-amz-date. */
	rt_default(&t);
	i = treq_find(&t, "Authorization");
	p = strstr(t.lines[i], "/20130524/");
	p[8] = '5';
	treq_build(&t, "GET");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MALFORMED);
	/* Region in the scope changed. */
	rt_default(&t);
	i = treq_find(&t, "Authorization");
	p = strstr(t.lines[i], "eu-west-3");
	p[8] = '1';
	treq_build(&t, "GET");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MISMATCH);

	/* A signed header's value. */
	rt_default(&t);
	treq_set(&t, "Range", "Range: bytes=100-200");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MISMATCH);
	/* ... but not its spacing. */
	rt_default(&t);
	treq_set(&t, "x-amz-meta-note",
	    "x-amz-meta-note:   hello spaced \t world  ");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_OK);
	/* Host. */
	rt_default(&t);
	treq_set(&t, "Host", "Host: 127.0.0.1:9001");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MISMATCH);
	/* A signed header removed. */
	rt_default(&t);
	treq_set(&t, "Range", "X-Other: 1");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MALFORMED);
	/* A signed header repeated: values join with ','. */
	rt_default(&t);
	treq_add(&t, "Range: bytes=0-1");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MISMATCH);
	/* An unsigned x-amz-* header added. */
	rt_default(&t);
	treq_add(&t, "x-amz-copy-source: /other/key");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MALFORMED);
	/* An unsigned ordinary header is fine. */
	rt_default(&t);
	treq_add(&t, "User-Agent: test");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_OK);

	/* Path: one char, an encoding that decodes differently, %2F vs /. */
	const char *paths[] = {"/bucket/dir/a%20b%2Bc%E2%82%AC.bix",
		"/bucket/dir/a+b%2Bc%E2%82%AC.bin",
		"/bucket%2Fdir/a%20b%2Bc%E2%82%AC.bin",
		"/bucket/dir/./a%20b%2Bc%E2%82%AC.bin",
		"/bucket//dir/a%20b%2Bc%E2%82%AC.bin"};
	for (size_t k = 0; k < sizeof(paths) / sizeof(paths[0]); k++) {
		rt_default(&t);
		char *q = strchr(t.target, '?');
		snprintf(line, sizeof(line), "%s%s", paths[k], q);
		snprintf(t.target, sizeof(t.target), "%s", line);
		treq_build(&t, "GET");
		CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MISMATCH);
	}
	/* Query: a value, a '+' for a space, an added or dropped param. */
	const char *queries[] = {
		"prefix=dir%2F&max-keys=11&list-type=2&x=a%20b",
		"prefix=dir%2F&max-keys=10&list-type=2&x=a+b",
		"prefix=dir%2F&max-keys=10&list-type=2&x=a%2Bb",
		"prefix=dir%2F&max-keys=10&list-type=2&x=a%20b&y",
		"prefix=dir%2F&max-keys=10&list-type=2",
		"prefix=dir%2F&max-keys=10&list-type=2&x=a%20b&x=a%20b",
		"prefix=dir%2F&max-keys=10&list-type=2&x=a%20b%20"};
	for (size_t k = 0; k < sizeof(queries) / sizeof(queries[0]); k++) {
		rt_default(&t);
		*strchr(t.target, '?') = 0;
		snprintf(line, sizeof(line), "%.500s?%s", t.target, queries[k]);
		snprintf(t.target, sizeof(t.target), "%s", line);
		treq_build(&t, "GET");
		CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MISMATCH);
	}
	/* "dir/" and "dir%2F" in a query value are the same. */
	rt_default(&t);
	p = strstr(t.target, "dir%2F");
	memmove(p + 4, p + 6, strlen(p + 6) + 1);
	p[3] = '/';
	treq_build(&t, "GET");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_OK);

	/* Method. */
	rt_default(&t);
	treq_build(&t, "HEAD");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MISMATCH);
	/* Every hex digit of the signature, flipped. */
	for (int k = 0; k < 64; k++) {
		rt_default(&t);
		i = treq_find(&t, "Authorization");
		p = strstr(t.lines[i], "Signature=") + 10;
		p[k] = p[k] == '0' ? '1' : '0';
		treq_build(&t, "GET");
		CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MISMATCH);
	}
	/* Uppercase hex is the same signature. */
	rt_default(&t);
	i = treq_find(&t, "Authorization");
	for (p = strstr(t.lines[i], "Signature=") + 10; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 32);
	treq_build(&t, "GET");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_OK);
	/* SignedHeaders list edited (drop range): a different signature. */
	rt_default(&t);
	i = treq_find(&t, "Authorization");
	p = strstr(t.lines[i], "range;");
	memmove(p, p + 6, strlen(p + 6) + 1);
	treq_build(&t, "GET");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MISMATCH);
}

TEST(payload_hash_header)
{
	struct treq t;
	rt_default(&t);
	int i = treq_find(&t, "X-Amz-Content-SHA256");
	/* Missing entirely. */
	snprintf(t.lines[i], sizeof(t.lines[0]), "X-Other: 1");
	treq_build(&t, "GET");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MALFORMED);
	const char *bad[] = {"X-Amz-Content-SHA256: unsigned-payload",
		"X-Amz-Content-SHA256: e3b0",
		"X-Amz-Content-SHA256: "
		"g3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		"X-Amz-Content-SHA256: STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
		"X-Amz-Content-SHA256: "};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		snprintf(t.lines[i], sizeof(t.lines[0]), "%s", bad[k]);
		treq_build(&t, "GET");
		CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_BAD_PAYLOAD_HASH);
	}
	/* A valid but different hash: signature mismatch. */
	snprintf(t.lines[i], sizeof(t.lines[0]),
	    "X-Amz-Content-SHA256: " EMPTY);
	treq_build(&t, "GET");
	CHECK_EQ_INT(verify(&t, T0 + 5000), SIGV4_MISMATCH);
}

/* A request dated only by its Date header, signed by the test's signer. */
static void
date_signed_request(struct treq *t, const char *date_line)
{
	const char *h[] = {"Host: h", date_line, "x-amz-content-sha256: " EMPTY,
		NULL};
	treq_init(t, "GET", "/b/k", h);
	struct dbuf b;
	dbuf_init(&b, 65536);
	const char *sh = "date;host;x-amz-content-sha256";
	CHECK_EQ_INT(sigv4_canonical_request(&b, "GET", "/b/k", 4, "", 0,
	    t->r.headers, t->r.nheaders, sh, strlen(sh), EMPTY, 0), 0);
	char sig[65], line[512];
	test_signature(SK, "20130524T001000Z", "us-east-1", b.p, sig);
	dbuf_free(&b);
	snprintf(line, sizeof(line),
	    "Authorization: AWS4-HMAC-SHA256 Credential=" AK
	    "/20130524/us-east-1/s3/aws4_request, SignedHeaders=%s, "
	    "Signature=%s", sh, sig);
	treq_add(t, line);
}

TEST(date_header_fallback)
{
	/* No x-amz-date: the Date header gives the time, reformatted. */
	struct treq t;
	date_signed_request(&t, "Date: Fri, 24 May 2013 00:10:00 GMT");
	CHECK_EQ_INT(verify(&t, T0 + 600), SIGV4_OK);
	CHECK_EQ_INT(verify(&t, T0 + 600 + 901), SIGV4_SKEWED);
	/* The Date value is signed as sent. */
	treq_set(&t, "Date", "Date: Fri, 24 May 2013 00:10:00  GMT");
	CHECK_EQ_INT(verify(&t, T0 + 600), SIGV4_OK); /* collapsed blanks */
	treq_set(&t, "Date", "Date: Friday, 24-May-13 00:10:00 GMT");
	CHECK_EQ_INT(verify(&t, T0 + 600), SIGV4_MISMATCH);
	/* botocore's formatdate() spelling ("-0000" for GMT). */
	date_signed_request(&t, "Date: Fri, 24 May 2013 00:10:00 -0000");
	CHECK_EQ_INT(verify(&t, T0 + 600), SIGV4_OK);
	date_signed_request(&t, "Date: Fri, 24 May 2013 00:10:00 +0000");
	CHECK_EQ_INT(verify(&t, T0 + 600), SIGV4_OK);
	date_signed_request(&t, "Date: Fri, 24 May 2013 00:10:00 +0100");
	CHECK_EQ_INT(verify(&t, T0 + 600), SIGV4_NO_DATE);
	/* Credential date from another day. */
	date_signed_request(&t, "Date: Sat, 25 May 2013 00:10:00 GMT");
	CHECK_EQ_INT(verify(&t, T0 + 600), SIGV4_MALFORMED);
	/* Neither date header. */
	date_signed_request(&t, "Date: Fri, 24 May 2013 00:10:00 GMT");
	treq_set(&t, "Date", "X-Other: 1");
	CHECK_EQ_INT(verify(&t, T0 + 600), SIGV4_NO_DATE); /* S3: 403 */
	const char *msg = NULL;
	CHECK_EQ_INT(sigv4_verify(&t.r, T0 + 600, secret_of, NULL, &msg),
	    SIGV4_NO_DATE);
	CHECK_EQ_STR(msg, "AWS authentication requires a valid Date or "
	    "x-amz-date header");
	/* x-amz-date wins over Date and must be in canonical spelling. */
	date_signed_request(&t, "Date: Fri, 24 May 2013 00:10:00 GMT");
	treq_add(&t, "x-amz-date: 20130524T001000z");
	CHECK_EQ_INT(verify(&t, T0 + 600), SIGV4_NO_DATE);
	treq_set(&t, "x-amz-date", "x-amz-date: 20131324T001000Z");
	CHECK_EQ_INT(verify(&t, T0 + 600), SIGV4_NO_DATE);
	treq_set(&t, "x-amz-date", "x-amz-date: 20130524T001000Z");
	CHECK_EQ_INT(verify(&t, T0 + 600), SIGV4_MALFORMED); /* unsigned */
}

/* ------------------------------------------------------------------ */
/* Canonicalisation rules.                                             */

static int
canon(const char *path, const char *query, const char *const *hdr_lines,
    const char *sh, int excl, char *out, size_t cap)
{
	struct treq t;
	treq_init(&t, "GET", "/", hdr_lines);
	struct dbuf b;
	dbuf_init(&b, 65536);
	int r = sigv4_canonical_request(&b, "GET", path, strlen(path), query,
	    strlen(query), t.r.headers, t.r.nheaders, sh, strlen(sh), "H",
	    excl);
	snprintf(out, cap, "%s", b.p ? b.p : "");
	dbuf_free(&b);
	return r;
}

TEST(canonical_uri_and_query)
{
	const char *h[] = {"Host: x", NULL};
	char out[4096];
	struct {
		const char *path, *query, *uri, *cq;
	} cases[] = {
		{"", "", "/", ""},
		{"/", "", "/", ""},
		{"/a b/c", "", "/a%20b/c", ""},
		{"/a%20b/%7Ec%2fd", "", "/a%20b/~c%2Fd", ""},
		{"/a/./b/../c//d/", "", "/a/./b/../c//d/", ""},
		{"/%E2%82%AC$!*'()", "", "/%E2%82%AC%24%21%2A%27%28%29", ""},
		{"/k+v", "", "/k%2Bv", ""},
		{"/%00", "", "/%00", ""},
		{"/", "a+b=c+d", "/", "a%2Bb=c%2Bd"},
		{"/", "lifecycle", "/", "lifecycle="},
		{"/", "b=1&a=2&a=1&A=3", "/", "A=3&a=1&a=2&b=1"},
		{"/", "a-b=1&a=2", "/", "a=2&a-b=1"},
		{"/", "%7e=%7E&~=x", "/", "~=x&~=~"},
		{"/", "a=b=c", "/", "a=b%3Dc"},
		{"/", "&&a=1&&", "/", "a=1"},
		{"/", "=v", "/", "=v"},
		{"/", "k=%C3%A9%20%2F", "/", "k=%C3%A9%20%2F"},
		{"/", "k=\xc3\xa9 /", "/", "k=%C3%A9%20%2F"},
		{"/", "X-Amz-Signature=1&z=2", "/", "X-Amz-Signature=1&z=2"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CHECK_EQ_INT(canon(cases[i].path, cases[i].query, h, "host", 0,
		    out, sizeof(out)), 0);
		char want[1024];
		snprintf(want, sizeof(want), "GET\n%s\n%s\nhost:x\n\nhost\nH",
		    cases[i].uri, cases[i].cq);
		if (strcmp(out, want) != 0)
			fprintf(stderr, "  case %zu\n", i);
		CHECK_EQ_STR(out, want);
	}
	/* exclude_signature drops exactly X-Amz-Signature (also encoded). */
	CHECK_EQ_INT(canon("/", "X-Amz-Signature=1&z=2&x-amz-signature=3", h,
	    "host", 1, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "GET\n/\nx-amz-signature=3&z=2\nhost:x\n\nhost\nH");
	CHECK_EQ_INT(canon("/", "X-Amz-%53ignature=1&z=2", h, "host", 1, out,
	    sizeof(out)), 0);
	CHECK_EQ_STR(out, "GET\n/\nz=2\nhost:x\n\nhost\nH");
	/* Bad escapes. */
	CHECK_EQ_INT(canon("/a%2", "", h, "host", 0, out, sizeof(out)),
	    -EINVAL);
	CHECK_EQ_INT(canon("/a%zz", "", h, "host", 0, out, sizeof(out)),
	    -EINVAL);
	CHECK_EQ_INT(canon("/", "a=%", h, "host", 0, out, sizeof(out)),
	    -EINVAL);
	CHECK_EQ_INT(canon("/", "%g0=1", h, "host", 0, out, sizeof(out)),
	    -EINVAL);
}

TEST(canonical_headers)
{
	char out[4096];
	const char *h[] = {"Host: x", "X-A:   a   b \t c  ", "x-b: 1",
		"X-B: 2", "X-Empty:", "Content-Type: text/plain", NULL};
	CHECK_EQ_INT(canon("/", "", h, "host;x-a;x-b;x-empty", 0, out,
	    sizeof(out)), 0);
	CHECK_EQ_STR(out, "GET\n/\n\nhost:x\nx-a:a b c\nx-b:1,2\nx-empty:\n\n"
			  "host;x-a;x-b;x-empty\nH");
	/* Order follows the signed list; names are lowercased. */
	CHECK_EQ_INT(canon("/", "", h, "x-b;Host", 0, out, sizeof(out)), 0);
	CHECK_EQ_STR(out, "GET\n/\n\nx-b:1,2\nhost:x\n\nx-b;Host\nH");
	/* Missing or empty names. */
	CHECK_EQ_INT(canon("/", "", h, "host;range", 0, out, sizeof(out)),
	    -ENOENT);
	CHECK_EQ_INT(canon("/", "", h, "host;;x-a", 0, out, sizeof(out)),
	    -EINVAL);
	CHECK_EQ_INT(canon("/", "", h, "", 0, out, sizeof(out)), -EINVAL);
	CHECK_EQ_INT(canon("/", "", h, "host;", 0, out, sizeof(out)),
	    -EINVAL);
}

TEST(canonical_bounded)
{
	/* The output's limit is honoured, and a huge query is refused. */
	struct dbuf b;
	dbuf_init(&b, 64);
	struct http_header hd = {"host", 4, "x", 1};
	char path[200];
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = 0;
	CHECK_EQ_INT(sigv4_canonical_request(&b, "GET", path, strlen(path), "",
	    0, &hd, 1, "host", 4, "H", 0), -E2BIG);
	dbuf_free(&b);
	size_t n = 5000;
	char *q = malloc(2 * n + 1);
	for (size_t i = 0; i < n; i++) {
		q[2 * i] = 'a';
		q[2 * i + 1] = '&';
	}
	q[2 * n] = 0;
	dbuf_init(&b, 1 << 20);
	CHECK_EQ_INT(sigv4_canonical_request(&b, "GET", "/", 1, q, strlen(q),
	    &hd, 1, "host", 4, "H", 0), -E2BIG);
	dbuf_free(&b);
	free(q);
}

/* ------------------------------------------------------------------ */
/* Authorization header shapes.                                        */

#define GOOD_CRED AK "/20130524/us-east-1/s3/aws4_request"
#define GOOD_SH "host;range;x-amz-content-sha256;x-amz-date"
#define GOOD_SIG "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"

static enum sigv4_status
range_with_authz(const char *authz)
{
	struct treq t;
	const char *h[] = {"Host: " HOST, "Range: bytes=0-9",
		"x-amz-content-sha256: " EMPTY, "x-amz-date: 20130524T000000Z",
		NULL};
	treq_init(&t, "GET", "/test.txt", h);
	char line[1024];
	snprintf(line, sizeof(line), "Authorization: %s", authz);
	treq_add(&t, line);
	return verify(&t, T0);
}

TEST(authorization_variants_ok)
{
	const char *ok[] = {
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ",SignedHeaders=" GOOD_SH
		",Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256  Credential=" GOOD_CRED " ,  SignedHeaders="
		GOOD_SH " ,\tSignature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Signature=" GOOD_SIG ", Credential=" GOOD_CRED
		", SignedHeaders=" GOOD_SH,
		"AWS4-HMAC-SHA256\tCredential=" GOOD_CRED " SignedHeaders="
		GOOD_SH " Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders="
		GOOD_SH ", Signature=" GOOD_SIG ",",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		CHECK_EQ_INT(range_with_authz(ok[i]), SIGV4_OK);
}

TEST(authorization_malformed)
{
	const char *bad[] = {
		"",
		"AWS4-HMAC-SHA256",
		"AWS4-HMAC-SHA256 ",
		"AWS4-HMAC-SHA256 ,,,",
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED,
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=" GOOD_SH,
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", Credential="
		GOOD_CRED ", SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders="
		GOOD_SH ", Signature=" GOOD_SIG ", Extra=1",
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders="
		GOOD_SH ", Signature=" GOOD_SIG ", junk",
		"AWS4-HMAC-SHA256 credential=" GOOD_CRED ", SignedHeaders="
		GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential = " GOOD_CRED ", SignedHeaders="
		GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=, SignedHeaders=" GOOD_SH
		", Signature=" GOOD_SIG,
		/* Credential shapes. */
		"AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/s3, "
		"SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/s3/"
		"aws4_request/x, SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/s3/"
		"aws4_requesT, SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" AK "/2013052/us-east-1/s3/"
		"aws4_request, SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" AK "/2013052x/us-east-1/s3/"
		"aws4_request, SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" AK "/20130525/us-east-1/s3/"
		"aws4_request, SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" AK "/20130524//s3/"
		"aws4_request, SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" AK "/20130524/us-east-1/ec2/"
		"aws4_request, SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=/20130524/us-east-1/s3/"
		"aws4_request, SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" AK "/20130524/"
		"rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"
		"/s3/aws4_request, SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG,
		/* SignedHeaders shapes. */
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=, "
		"Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=host;;"
		"range, Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=host;"
		"range;x-amz-content-sha256;x-amz-date;, Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=range;"
		"x-amz-content-sha256;x-amz-date, Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=host;"
		"host;range, Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=host;"
		"ra(nge, Signature=" GOOD_SIG,
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=host;"
		"range;x-amz-content-sha256;x-amz-date;missing, Signature="
		GOOD_SIG,
		/* Signature shapes. */
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=" GOOD_SH
		", Signature=",
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=" GOOD_SH
		", Signature=" GOOD_SIG "0",
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=" GOOD_SH
		", Signature=f0e8",
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=" GOOD_SH
		", Signature=x0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039"
		"c6036bdb41",
		"AWS4-HMAC-SHA256 Credential=" GOOD_CRED ", SignedHeaders=" GOOD_SH
		", Signature=" GOOD_SIG ", Signature=" GOOD_SIG,
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum sigv4_status st = range_with_authz(bad[i]);
		if (st != SIGV4_MALFORMED)
			fprintf(stderr, "  case %zu: %s -> %d\n", i, bad[i], st);
		CHECK_EQ_INT(st, SIGV4_MALFORMED);
	}
	/* Other schemes. */
	CHECK_EQ_INT(range_with_authz("AWS " AK ":frJIUN8DYpKDtOLCwo//yllqDzg="),
	    SIGV4_UNSUPPORTED);
	CHECK_EQ_INT(range_with_authz("AWS4-ECDSA-P256-SHA256 Credential=x"),
	    SIGV4_UNSUPPORTED);
	CHECK_EQ_INT(range_with_authz("Bearer abc"), SIGV4_UNSUPPORTED);
	CHECK_EQ_INT(range_with_authz("AWS4-HMAC-SHA256Credential=" GOOD_CRED
	    ", SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG),
	    SIGV4_UNSUPPORTED);
	CHECK_EQ_INT(range_with_authz("AWS4-HMAC-SHA256X Credential=x"),
	    SIGV4_UNSUPPORTED);
	/* An unknown key in a well-formed header. */
	CHECK_EQ_INT(range_with_authz("AWS4-HMAC-SHA256 Credential=AKIDNOPE"
	    "/20130524/us-east-1/s3/aws4_request, SignedHeaders=" GOOD_SH
	    ", Signature=" GOOD_SIG), SIGV4_UNKNOWN_KEY);
	/* Two Authorization headers. */
	struct treq t;
	example_request(&t, &examples[0], "Authorization: AWS4-HMAC-SHA256 "
	    "Credential=" GOOD_CRED ", SignedHeaders=%s, Signature=%s");
	CHECK_EQ_INT(verify(&t, T0), SIGV4_OK);
	treq_add(&t, t.lines[treq_find(&t, "Authorization")]);
	CHECK_EQ_INT(verify(&t, T0), SIGV4_MALFORMED);
	/* Oversized Authorization. */
	char big[10000];
	snprintf(big, sizeof(big), "AWS4-HMAC-SHA256 Credential=" GOOD_CRED
	    ", SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG);
	size_t l = strlen(big);
	memset(big + l, ' ', sizeof(big) - l - 1);
	big[sizeof(big) - 1] = 0;
	struct http_request r;
	memset(&r, 0, sizeof(r));
	r.method = "GET";
	r.method_len = 3;
	r.path = "/test.txt";
	r.path_len = 9;
	r.query = "";
	r.headers[0] = (struct http_header){"Authorization", 13, big,
		strlen(big)};
	r.nheaders = 1;
	CHECK_EQ_INT(sigv4_verify(&r, T0, secret_of, NULL, NULL),
	    SIGV4_MALFORMED);
	/* No auth at all. */
	r.nheaders = 0;
	CHECK_EQ_INT(sigv4_verify(&r, T0, secret_of, NULL, NULL),
	    SIGV4_ANONYMOUS);
}

/* Random mutations of a good header: any status, never a crash, and
 * never OK unless the mutation left the header meaning the same. */
TEST(authorization_mutations)
{
	const char *good = "AWS4-HMAC-SHA256 Credential=" GOOD_CRED
			   ", SignedHeaders=" GOOD_SH ", Signature=" GOOD_SIG;
	uint64_t s = 0x9e3779b97f4a7c15ULL;
	char buf[512];
	int ok = 0, total = 3000;
	for (int i = 0; i < total; i++) {
		snprintf(buf, sizeof(buf), "%s", good);
		size_t l = strlen(buf);
		int nmut = 1 + (int)(s % 3);
		for (int m = 0; m < nmut; m++) {
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			size_t pos = (s >> 33) % l;
			unsigned char c = (unsigned char)(s >> 20);
			switch ((s >> 13) % 3) {
			case 0: buf[pos] = (char)(c ? c : 'x'); break;
			case 1: buf[pos] = 0; l = pos ? pos : 1; break;
			default: memmove(buf + pos, buf + pos + 1, l - pos);
				 l = l > 1 ? l - 1 : 1; break;
			}
			l = strlen(buf);
			if (l == 0)
				break;
		}
		enum sigv4_status st = range_with_authz(buf);
		CHECK(st >= SIGV4_OK && st <= SIGV4_BAD_PAYLOAD_HASH);
		if (st == SIGV4_OK)
			ok++;
	}
	/* Only mutations that keep the meaning (a separator) may pass. */
	CHECK(ok < total / 20);
}

TEST(sign_rejects_bad_input)
{
	struct sigv4_sign_req r = {
		.method = "GET", .host = HOST, .path = "/", .query = "",
		.payload_hash = EMPTY, .region = "us-east-1", .service = "s3",
		.access_key = AK, .secret_key = SK, .now = T0,
	};
	struct dbuf a;
	dbuf_init(&a, 4096);
	char date[17];
	struct sigv4_hdr h1[] = {{"x-amz-meta-a", "line\r\nInjected: 1"}};
	r.headers = h1;
	r.nheaders = 1;
	CHECK_EQ_INT(sigv4_sign(&r, &a, date), -EINVAL);
	struct sigv4_hdr h2[] = {{"Host", "other"}};
	r.headers = h2;
	CHECK_EQ_INT(sigv4_sign(&r, &a, date), -EINVAL);
	struct sigv4_hdr h3[] = {{"bad name", "v"}};
	r.headers = h3;
	CHECK_EQ_INT(sigv4_sign(&r, &a, date), -EINVAL);
	r.nheaders = 0;
	r.region = "us/east";
	CHECK_EQ_INT(sigv4_sign(&r, &a, date), -EINVAL);
	r.region = "us-east-1";
	r.path = "/%zz";
	CHECK_EQ_INT(sigv4_sign(&r, &a, date), -EINVAL);
	r.path = "/";
	r.method = NULL;
	CHECK_EQ_INT(sigv4_sign(&r, &a, date), -EINVAL);
	r.method = "GET";
	/* The output limit is honoured. */
	struct dbuf small;
	dbuf_init(&small, 16);
	CHECK_EQ_INT(sigv4_sign(&r, &small, date), -E2BIG);
	dbuf_free(&small);
	CHECK_EQ_INT(sigv4_sign(&r, &a, date), 0);
	dbuf_free(&a);
}

/* MD5 (S3's Content-MD5): RFC 1321's test suite. */
TEST(md5_rfc1321)
{
	static const struct {
		const char *in, *hex;
	} v[] = {{"", "d41d8cd98f00b204e9800998ecf8427e"},
	    {"abc", "900150983cd24fb0d6963f7d28e17f72"},
	    {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
	    {"12345678901234567890123456789012345678901234567890123456789012"
	     "345678901234567890", "57edf4a22be3c955ac49da2e2107b67a"}};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		unsigned char d[16];
		char hex[33];
		md5_digest(v[i].in, strlen(v[i].in), d);
		hex_encode(d, 16, hex);
		CHECK_EQ_STR(hex, v[i].hex);
	}
}

/* ------------------------------------------------------------------ */
/* Chunked uploads: AWS's "Transferring Payload in Multiple Chunks"    */
/* and "Including Trailing Headers" examples (66560 bytes of 'a' in    */
/* chunks of 65536, 1024 and 0).                                       */

#define SEED_SIG "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
#define TSEED_SIG "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"

static void
chunked_example(struct treq *t, int trailer)
{
	static const char *const plain[] = {
		"Host: s3.amazonaws.com",
		"x-amz-date: 20130524T000000Z",
		"x-amz-storage-class: REDUCED_REDUNDANCY",
		"Authorization: AWS4-HMAC-SHA256 Credential=" AK
		"/20130524/us-east-1/s3/aws4_request,SignedHeaders="
		"content-encoding;content-length;host;x-amz-content-sha256;"
		"x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
		"Signature=" SEED_SIG,
		"x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
		"Content-Encoding: aws-chunked",
		"x-amz-decoded-content-length: 66560",
		"Content-Length: 66824",
		NULL,
	};
	static const char *const trail[] = {
		"Host: s3.amazonaws.com",
		"x-amz-date: 20130524T000000Z",
		"x-amz-storage-class: REDUCED_REDUNDANCY",
		"Authorization: AWS4-HMAC-SHA256 Credential=" AK
		"/20130524/us-east-1/s3/aws4_request,SignedHeaders="
		"content-encoding;host;x-amz-content-sha256;x-amz-date;"
		"x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,"
		"Signature=" TSEED_SIG,
		"x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
		"Content-Encoding: aws-chunked",
		"x-amz-decoded-content-length: 66560",
		"x-amz-trailer: x-amz-checksum-crc32c",
		"Content-Length: 66946",
		NULL,
	};
	treq_init(t, "PUT", "/examplebucket/chunkObject.txt",
	    trailer ? trail : plain);
}

TEST(aws_chunked_examples)
{
	static const char *const sigs[2][3] = {
		{"ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
		 "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
		 "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"},
		{"b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
		 "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
		 "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992"},
	};
	char *a = malloc(65536);
	memset(a, 'a', 65536);
	for (int tr = 0; tr < 2; tr++) {
		struct treq t;
		chunked_example(&t, tr);
		struct sigv4_info info;
		const char *msg = NULL;
		CHECK_EQ_INT(sigv4_verify_region(&t.r, T0, "us-east-1",
		    secret_of, NULL, &msg, &info), SIGV4_OK);
		CHECK(info.have_key);
		CHECK_EQ_STR(info.seed_signature, tr ? TSEED_SIG : SEED_SIG);
		CHECK_EQ_STR(info.amz_date, "20130524T000000Z");
		CHECK_EQ_STR(info.scope, "20130524/us-east-1/s3/aws4_request");
		unsigned char key[32];
		CHECK_EQ_INT(sigv4_signing_key(SK, "20130524", "us-east-1", "s3",
		    key), 0);
		CHECK(memcmp(key, info.signing_key, 32) == 0);

		/* The chain, chunk by chunk. */
		const size_t sizes[3] = {65536, 1024, 0};
		char prev[65], sig[65];
		memcpy(prev, info.seed_signature, 65);
		for (int i = 0; i < 3; i++) {
			unsigned char h[32];
			sha256(a, sizes[i], h);
			sigv4_chunk_signature(info.signing_key, info.amz_date,
			    info.scope, prev, h, sig);
			CHECK_EQ_STR(sig, sigs[tr][i]);
			memcpy(prev, sig, 65);
		}
		if (tr) {
			static const char line[] = "x-amz-checksum-crc32c:sOO8/Q==\n";
			unsigned char h[32];
			sha256(line, strlen(line), h);
			sigv4_trailer_signature(info.signing_key, info.amz_date,
			    info.scope, prev, h, sig);
			CHECK_EQ_STR(sig, "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435");
		}
		/* Out of order, the chain breaks. */
		unsigned char h[32];
		sha256(a, 1024, h);
		sigv4_chunk_signature(info.signing_key, info.amz_date,
		    info.scope, info.seed_signature, h, sig);
		CHECK(strcmp(sig, sigs[tr][0]) != 0 && strcmp(sig, sigs[tr][1]) != 0);
	}
	free(a);

	/* Only a verified header-form signature yields a key. */
	struct treq t;
	chunked_example(&t, 0);
	struct sigv4_info info;
	const char *msg = NULL;
	CHECK_EQ_INT(sigv4_verify_region(&t.r, T0, "us-east-1", secret_wrong,
	    NULL, &msg, &info), SIGV4_MISMATCH);
	CHECK(!info.have_key);
	CHECK_EQ_INT(sigv4_verify_region(&t.r, T0 + 901, "us-east-1",
	    secret_of, NULL, &msg, &info), SIGV4_SKEWED);
	CHECK(!info.have_key);
	struct treq p;
	treq_init(&p, "GET", "/test.txt?" PRESIGN_Q "&X-Amz-Signature=" PRESIGN_SIG,
	    (const char *const[]){"Host: " HOST, NULL});
	CHECK_EQ_INT(sigv4_verify_region(&p.r, T0, "us-east-1", secret_of,
	    NULL, &msg, &info), SIGV4_OK);
	CHECK(info.presigned && !info.have_key);
}

int
main(void)
{
	RUN(md5_rfc1321);
	RUN(aws_example_range_canonical_request);
	RUN(aws_examples_sign);
	RUN(aws_examples_verify);
	RUN(aws_example_presigned);
	RUN(presigned_parameters);
	RUN(presigned_expires_messages);
	RUN(region_check);
	RUN(round_trip);
	RUN(tampering);
	RUN(payload_hash_header);
	RUN(date_header_fallback);
	RUN(canonical_uri_and_query);
	RUN(canonical_headers);
	RUN(canonical_bounded);
	RUN(authorization_variants_ok);
	RUN(authorization_malformed);
	RUN(authorization_mutations);
	RUN(sign_rejects_bad_input);
	RUN(aws_chunked_examples);
	TAP_DONE();
}
