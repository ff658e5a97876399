/*
 * sigv2.c: AWS Signature Version 2 verification for the S3 gateway (see
 * sigv2.h).  Called on connection threads and by the fuzz harness.
 *
 * Invariants: nothing here trusts the request.  The string to sign is
 * built in a dbuf with a hard limit, the x-amz-* and sub-resource lists in
 * fixed arrays with explicit bounds; anything over a limit or malformed is
 * SIGV2_MALFORMED, never a crash.  Signatures are compared in constant time,
 * as the exact base64 of the HMAC.  The canonical resource is the path exactly as
 * sent (SigV2 signs the encoded path, unlike SigV4), and the sub-resource
 * names are compared as sent, their values decoded, as botocore's
 * HmacV1Auth and S3 do.
 */
#include "sigv2.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "../common/crypto.h"
#include "../common/util.h"
#include "../common/vas.h"

#define STS_MAX (64 * 1024)    /* string to sign */
#define SKEW_MAX_S (15 * 60)
#define AMZ_MAX 128            /* x-amz-* headers and parameters */
#define SUB_MAX 64             /* sub-resources in one query */
#define NAME_MAX_ 128          /* one x-amz-* name */
#define VALUE_MAX 4096         /* one decoded query value */
#define ACCESS_KEY_MAX 128

/* The query parameters that are part of the signed resource (botocore's
 * HmacV1Auth.QSAOfInterest, after S3's list). */
static const char *const subresources[] = {
	"accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging",
	"partNumber", "policy", "requestPayment", "torrent", "versioning",
	"versionId", "versions", "website", "uploads", "uploadId",
	"response-content-type", "response-content-language",
	"response-expires", "response-cache-control",
	"response-content-disposition", "response-content-encoding", "delete",
	"lifecycle", "tagging", "restore", "storageClass", "notification",
	"replication", "analytics", "metrics", "inventory", "select",
	"select-type", "object-lock",
};

static int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static int
mem_ieq(const char *a, size_t an, const char *b, size_t bn)
{
	if (an != bn)
		return 0;
	for (size_t i = 0; i < an; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

static int
is_blank(int c)
{
	return c == ' ' || c == '\t';
}

/* Trims blanks on both sides of v[0..*n); returns the new start. */
static const char *
trim(const char *v, size_t *n)
{
	size_t a = 0, z = *n;
	while (a < z && is_blank((unsigned char)v[a]))
		a++;
	while (z > a && is_blank((unsigned char)v[z - 1]))
		z--;
	*n = z - a;
	return v + a;
}

/* First header called name; *count gets how many there are. */
static const char *
header_get(const struct http_request *req, const char *name, size_t *vlen,
    int *count)
{
	const char *v = NULL;
	size_t nl = strlen(name);
	*count = 0;
	for (int i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (!mem_ieq(h->name, h->name_len, name, nl))
			continue;
		if ((*count)++ == 0) {
			v = h->value;
			*vlen = h->value_len;
		}
	}
	return v;
}


/* --- the string to sign ------------------------------------------------ */

struct amz {
	char name[NAME_MAX_ + 1]; /* lowercased */
	const char *v;
	size_t vl;
	int seq; /* keeps repeats in the order sent */
};

static int
amz_cmp(const void *pa, const void *pb)
{
	const struct amz *a = pa, *b = pb;
	int c = strcmp(a->name, b->name);
	return c ? c : (a->seq > b->seq) - (a->seq < b->seq);
}

static int
amz_add(struct amz *v, int *n, const char *name, size_t nl, const char *val,
    size_t vl)
{
	if (*n >= AMZ_MAX || nl > NAME_MAX_)
		return -E2BIG;
	struct amz *a = &v[*n];
	for (size_t i = 0; i < nl; i++)
		a->name[i] = (char)lower((unsigned char)name[i]);
	a->name[nl] = 0;
	a->v = trim(val, &vl);
	a->vl = vl;
	a->seq = *n;
	(*n)++;
	return 0;
}

/* "x-amz-a:v1,v2\n..." from the headers, and for presigned URLs from the
 * query too (decoded into an arena as long as the query). */
static int
canon_amz(struct dbuf *out, const struct http_request *req, int presigned)
{
	const char *q = req->query ? req->query : "";
	size_t qn = req->query ? req->query_len : 0;
	struct amz *v = calloc(AMZ_MAX, sizeof(*v));
	char *arena = malloc(qn + 1);
	size_t used = 0;
	if (!v || !arena) {
		free(v);
		free(arena);
		return -ENOMEM;
	}
	int n = 0, r = 0;
	for (int i = 0; i < req->nheaders && r == 0; i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name_len >= 6 && mem_ieq(h->name, 6, "x-amz-", 6))
			r = amz_add(v, &n, h->name, h->name_len, h->value,
			    h->value_len);
	}
	size_t i = 0;
	while (presigned && r == 0 && i < qn) {
		size_t j = i;
		while (j < qn && q[j] != '&')
			j++;
		const char *c = q + i;
		size_t cl = j - i;
		i = j + 1;
		const char *eq = memchr(c, '=', cl);
		size_t kl = eq ? (size_t)(eq - c) : cl;
		char name[NAME_MAX_ + 1];
		if (kl < 6 || kl > NAME_MAX_)
			continue;
		long nl = url_decode(c, kl, name, 0);
		if (nl < 6 || !mem_ieq(name, 6, "x-amz-", 6))
			continue;
		size_t vl = eq ? cl - kl - 1 : 0;
		char *dst = arena + used; /* decoding never grows a value */
		long dl = url_decode(eq ? eq + 1 : "", vl, dst, 0);
		if (dl < 0) {
			r = -EINVAL;
			break;
		}
		used += (size_t)dl;
		r = amz_add(v, &n, name, (size_t)nl, dst, (size_t)dl);
	}
	if (r == 0 && n > 1)
		qsort(v, (size_t)n, sizeof(*v), amz_cmp);
	for (int k = 0; k < n && r == 0; k++) {
		if (k == 0 || strcmp(v[k].name, v[k - 1].name) != 0) {
			if (k)
				r = dbuf_add(out, "\n", 1);
			if (!r)
				r = dbuf_printf(out, "%s:", v[k].name);
		} else {
			r = dbuf_add(out, ",", 1);
		}
		if (!r)
			r = dbuf_add(out, v[k].v, v[k].vl);
	}
	if (r == 0 && n > 0)
		r = dbuf_add(out, "\n", 1);
	free(v);
	free(arena);
	return r;
}

struct sub {
	const char *name;
	size_t nlen;
	const char *val; /* raw; NULL: no '=' */
	size_t vlen;
	int seq;
};

static int
sub_cmp(const void *pa, const void *pb)
{
	const struct sub *a = pa, *b = pb;
	size_t m = a->nlen < b->nlen ? a->nlen : b->nlen;
	int c = memcmp(a->name, b->name, m);
	if (c)
		return c;
	if (a->nlen != b->nlen)
		return a->nlen < b->nlen ? -1 : 1;
	return (a->seq > b->seq) - (a->seq < b->seq);
}

/*
 * How clients spell the resource of a bucket-level request ("/bucket"):
 * as sent (the guide's rule), with a '/' added (botocore), or, with no
 * sub-resources, followed by "?list-type=2" (Debian's botocore 1.29 for
 * ListObjectsV2).  All name the one request that was sent.
 */
enum { RES_AS_SENT, RES_BUCKET_SLASH, RES_LIST_TYPE, RES__N };

static int
bucket_only(const struct http_request *req)
{
	return req->path_len > 1 && req->path[0] == '/' &&
	    !memchr(req->path + 1, '/', req->path_len - 1);
}

/* A bucket-level request: "/bucket", or "/" with the bucket in the Host. */
static int
bucket_level(const struct http_request *req, const char *vbucket)
{
	if (vbucket)
		return req->path_len == 0 ||
		    (req->path_len == 1 && req->path[0] == '/');
	return bucket_only(req);
}

/*
 * The path as sent (after "/bucket" when the bucket is in the Host:
 * virtual-host style), then "?" and the sub-resources, sorted by name.
 * The other spellings of a bucket-level resource: path-style "/bucket"
 * also as "/bucket/", virtual-host "/bucket/" also as "/bucket", both as
 * "/bucket?list-type=2".
 */
static int
canon_resource(struct dbuf *out, const struct http_request *req,
    const char *vbucket, int variant)
{
	int r = 0;
	int other = variant != RES_AS_SENT && bucket_level(req, vbucket);
	if (vbucket) {
		r = dbuf_add(out, "/", 1);
		if (!r)
			r = dbuf_adds(out, vbucket);
		if (!r && !other)
			r = req->path_len ? dbuf_add(out, req->path,
			    req->path_len) : dbuf_add(out, "/", 1);
	} else {
		r = req->path_len ? dbuf_add(out, req->path, req->path_len) :
		    dbuf_add(out, "/", 1);
		if (!r && variant == RES_BUCKET_SLASH)
			r = dbuf_add(out, "/", 1);
	}
	if (!r && variant == RES_LIST_TYPE)
		r = dbuf_adds(out, "?list-type=2");
	const char *q = req->query ? req->query : "";
	size_t qn = req->query ? req->query_len : 0;
	struct sub subs[SUB_MAX];
	int n = 0;
	size_t i = 0;
	while (r == 0 && i < qn) {
		size_t j = i;
		while (j < qn && q[j] != '&')
			j++;
		const char *c = q + i;
		size_t cl = j - i;
		i = j + 1;
		const char *eq = memchr(c, '=', cl);
		size_t kl = eq ? (size_t)(eq - c) : cl;
		int found = 0;
		for (size_t k = 0; k < ARRAY_SIZE(subresources) && !found; k++)
			found = strlen(subresources[k]) == kl &&
			    memcmp(subresources[k], c, kl) == 0;
		if (!found)
			continue;
		if (n == SUB_MAX)
			return -E2BIG;
		subs[n] = (struct sub){c, kl, eq ? eq + 1 : NULL,
		    eq ? cl - kl - 1 : 0, n};
		n++;
	}
	if (r || n == 0)
		return r;
	if (variant == RES_LIST_TYPE)
		return -EINVAL;
	qsort(subs, (size_t)n, sizeof(subs[0]), sub_cmp);
	char *tmp = malloc(qn + 1);
	if (!tmp)
		return -ENOMEM;
	for (int k = 0; k < n && r == 0; k++) {
		r = dbuf_add(out, k ? "&" : "?", 1);
		if (!r)
			r = dbuf_add(out, subs[k].name, subs[k].nlen);
		if (!r && subs[k].val) {
			long dl = url_decode(subs[k].val, subs[k].vlen, tmp, 0);
			r = dl < 0 ? -EINVAL : dbuf_add(out, "=", 1);
			if (!r)
				r = dbuf_add(out, tmp, (size_t)dl);
		}
	}
	free(tmp);
	return r;
}

/* A standard header's trimmed value, or for presigned URLs the query
 * parameter botocore moves it to; "" if neither. */
static int
add_standard(struct dbuf *out, const struct http_request *req,
    const char *name, int presigned)
{
	size_t vl = 0;
	int cnt;
	const char *v = header_get(req, name, &vl, &cnt);
	if (v) {
		v = trim(v, &vl);
		return dbuf_add(out, v, vl);
	}
	if (!presigned)
		return 0;
	char val[VALUE_MAX];
	int qc = query_param_decoded(req->query ? req->query : "",
	    req->query ? req->query_len : 0, name, val, sizeof(val));
	if (qc < 0)
		return -EINVAL;
	return qc ? dbuf_adds(out, val) : 0;
}

static int
string_to_sign(struct dbuf *out, const struct http_request *req,
    const char *vbucket, const char *date, int presigned, int variant)
{
	if (!out || !req || !date || !req->method || req->method_len == 0)
		return -EINVAL;
	int r = dbuf_add(out, req->method, req->method_len);
	if (!r)
		r = dbuf_add(out, "\n", 1);
	if (!r)
		r = add_standard(out, req, "content-md5", presigned);
	if (!r)
		r = dbuf_add(out, "\n", 1);
	if (!r)
		r = add_standard(out, req, "content-type", presigned);
	if (!r)
		r = dbuf_add(out, "\n", 1);
	if (!r)
		r = dbuf_adds(out, date);
	if (!r)
		r = dbuf_add(out, "\n", 1);
	if (!r)
		r = canon_amz(out, req, presigned);
	if (!r)
		r = canon_resource(out, req, vbucket, variant);
	if (!r && dbuf_error(out))
		r = -E2BIG;
	return r;
}

int
sigv2_string_to_sign(struct dbuf *out, const struct http_request *req,
    const char *date, int presigned)
{
	return string_to_sign(out, req, NULL, date, presigned, RES_AS_SENT);
}

/* Does the base64 HMAC-SHA1 of this spelling of the request match? 1, 0,
 * or -errno if it cannot be built. */
static int
spelling_matches(const struct http_request *req, const char *vbucket,
    const char *date, int presigned, int variant, const char *secret,
    const char *sig_b64)
{
	struct dbuf sts, b64;
	dbuf_init(&sts, STS_MAX);
	dbuf_init(&b64, 64);
	int r = string_to_sign(&sts, req, vbucket, date, presigned, variant);
	unsigned char want[EVP_MAX_MD_SIZE];
	unsigned int wl = 0;
	if (r == 0) {
		/* The exact base64 (28 characters): no other spelling of
		 * the same bytes is taken. */
		r = HMAC(EVP_sha1(), secret, (int)strlen(secret),
		    (const unsigned char *)(sts.p ? sts.p : ""), sts.len, want,
		    &wl) && wl == 20 && b64_encode(&b64, want, 20) == 0 &&
		    strlen(sig_b64) == b64.len &&
		    ct_memcmp(b64.p, sig_b64, b64.len) == 0;
	}
	explicit_bzero(want, sizeof(want));
	if (b64.p)
		explicit_bzero(b64.p, b64.len);
	dbuf_free(&b64);
	dbuf_free(&sts);
	return r;
}

/* --- verification ------------------------------------------------------ */

/* HTTP-date ("GMT", or "+0000" / "-0000" as the AWS examples and
 * formatdate() write it), or an ISO 8601 basic x-amz-date. */
static int64_t
parse_v2_date(const char *d, size_t n)
{
	d = trim(d, &n);
	int64_t t = parse_http_date(d, n);
	if (t >= 0)
		return t;
	if (n >= 6 && n <= 64 && (memcmp(d + n - 6, " +0000", 6) == 0 ||
	    memcmp(d + n - 6, " -0000", 6) == 0)) {
		char buf[80];
		memcpy(buf, d, n - 5);
		memcpy(buf + n - 5, "GMT", 3);
		return parse_http_date(buf, n - 2);
	}
	return parse_amz_date(d, n);
}

int
sigv2_present(const struct http_request *req)
{
	size_t al = 0;
	int ac;
	const char *a = header_get(req, "authorization", &al, &ac);
	if (a)
		return al >= 4 && memcmp(a, "AWS ", 4) == 0;
	const char *q = req->query ? req->query : "";
	size_t qn = req->query ? req->query_len : 0;
	if (query_param_decoded(q, qn, "X-Amz-Algorithm", NULL, 0) != 0)
		return 0;
	return query_param_decoded(q, qn, "AWSAccessKeyId", NULL, 0) != 0 ||
	    query_param_decoded(q, qn, "Signature", NULL, 0) != 0;
}

enum sigv2_status
sigv2_verify(const struct http_request *req, int64_t now,
    sigv4_secret_fn secret_fn, void *arg, const char **errmsg,
    int *presigned)
{
	return sigv2_verify_vhost(req, NULL, now, secret_fn, arg, errmsg,
	    presigned);
}

enum sigv2_status
sigv2_verify_vhost(const struct http_request *req, const char *vbucket,
    int64_t now, sigv4_secret_fn secret_fn, void *arg, const char **errmsg,
    int *presigned)
{
	const char *dummy;
	int dpre;
	if (!errmsg)
		errmsg = &dummy;
	if (!presigned)
		presigned = &dpre;
	*errmsg = NULL;
	*presigned = 0;
	if (!req || !secret_fn) {
		*errmsg = "Internal error.";
		return SIGV2_MALFORMED;
	}
	const char *q = req->query ? req->query : "";
	size_t qn = req->query ? req->query_len : 0;
	char ak[ACCESS_KEY_MAX + 1], sig_b64[128], date[80];
	size_t al = 0;
	int ac;
	const char *authz = header_get(req, "authorization", &al, &ac);
	if (authz) {
		if (ac > 1 || query_param_decoded(q, qn, "Signature", NULL, 0) != 0 ||
		    query_param_decoded(q, qn, "AWSAccessKeyId", NULL, 0) != 0) {
			*errmsg = "Only one auth mechanism allowed; only the "
				  "X-Amz-Algorithm query parameter, Signature "
				  "query string parameter or the Authorization "
				  "header should be specified";
			return SIGV2_MALFORMED;
		}
		/* "AWS AKID:signature" */
		const char *v = authz + 4;
		size_t vl = al >= 4 ? al - 4 : 0;
		v = trim(v, &vl);
		const char *colon = memchr(v, ':', vl);
		size_t kl = colon ? (size_t)(colon - v) : 0;
		size_t sl = colon ? vl - kl - 1 : 0;
		if (al < 4 || memcmp(authz, "AWS ", 4) != 0 || !colon ||
		    kl == 0 || kl > ACCESS_KEY_MAX || sl == 0 ||
		    sl >= sizeof(sig_b64) || memchr(v, ' ', kl)) {
			*errmsg = "AWS authorization header is invalid.  "
				  "Expected AwsAccessKeyId:signature";
			return SIGV2_MALFORMED;
		}
		memcpy(ak, v, kl);
		ak[kl] = 0;
		memcpy(sig_b64, colon + 1, sl);
		sig_b64[sl] = 0;
		/* The time: x-amz-date wins, and then the Date line is empty. */
		size_t xl = 0, dl = 0;
		int xc, dc;
		const char *xd = header_get(req, "x-amz-date", &xl, &xc);
		const char *dd = header_get(req, "date", &dl, &dc);
		int64_t t = xd ? parse_v2_date(xd, xl) : dd ?
		    parse_v2_date(dd, dl) : -1;
		if (t < 0 || xc > 1 || (!xd && dc > 1)) {
			*errmsg = "AWS authentication requires a valid Date or "
				  "x-amz-date header";
			return SIGV2_NO_DATE;
		}
		date[0] = 0;
		if (!xd) {
			const char *tv = trim(dd, &dl);
			if (dl >= sizeof(date)) {
				*errmsg = "AWS authentication requires a valid "
					  "Date or x-amz-date header";
				return SIGV2_NO_DATE;
			}
			memcpy(date, tv, dl);
			date[dl] = 0;
		}
		if (t > now + SKEW_MAX_S || t < now - SKEW_MAX_S) {
			*errmsg = "The difference between the request time and "
				  "the current time is too large.";
			return SIGV2_SKEWED;
		}
	} else {
		*presigned = 1;
		if (query_param_decoded(q, qn, "AWSAccessKeyId", ak, sizeof(ak)) != 1 ||
		    query_param_decoded(q, qn, "Signature", sig_b64, sizeof(sig_b64)) != 1 ||
		    query_param_decoded(q, qn, "Expires", date, sizeof(date)) != 1 ||
		    !ak[0] || !sig_b64[0]) {
			*errmsg = "Query-string authentication requires the "
				  "Signature, Expires and AWSAccessKeyId "
				  "parameters";
			return SIGV2_MALFORMED;
		}
		size_t el = strlen(date);
		int digits = el > 0 && el <= 18;
		for (size_t i = 0; i < el && digits; i++)
			digits = date[i] >= '0' && date[i] <= '9';
		if (!digits) {
			*errmsg = "Invalid date (should be seconds since epoch)";
			return SIGV2_MALFORMED;
		}
		if (now > strtoll(date, NULL, 10)) {
			*errmsg = "Request has expired";
			return SIGV2_EXPIRED;
		}
	}

	const char *secret = secret_fn(arg, ak);
	if (!secret) {
		*errmsg = "The AWS Access Key Id you provided does not exist in "
			  "our records.";
		return SIGV2_UNKNOWN_KEY;
	}
	int r = spelling_matches(req, vbucket, date, *presigned, RES_AS_SENT,
	    secret, sig_b64);
	if (r < 0) {
		*errmsg = "The request cannot be canonicalised.";
		return SIGV2_MALFORMED;
	}
	char lt[4];
	if (r == 0 && bucket_level(req, vbucket))
		r = spelling_matches(req, vbucket, date, *presigned,
		    RES_BUCKET_SLASH, secret, sig_b64) == 1 ||
		    (query_param_decoded(q, qn, "list-type", lt, sizeof(lt)) == 1 &&
		    strcmp(lt, "2") == 0 &&
		    spelling_matches(req, vbucket, date, *presigned,
		    RES_LIST_TYPE, secret, sig_b64) == 1);
	if (r != 1) {
		*errmsg = "The request signature we calculated does not match "
			  "the signature you provided. Check your key and "
			  "signing method.";
		return SIGV2_MISMATCH;
	}
	return SIGV2_OK;
}
