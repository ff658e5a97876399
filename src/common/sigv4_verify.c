/*
 * sigv4_verify.c: AWS Signature Version 4 verification, for the S3
 * gateway and the control API (sigv4.h): the Authorization header form and
 * presigned URLs, built on the canonical request and signature of
 * sigv4.c, so signing and verifying cannot drift apart.  Apart from the
 * signer so that clients (libferry) carry no verification code.
 *
 * Called from any thread; every function is pure (no globals, no locks).
 * Invariants: nothing here trusts the request.  Every intermediate buffer is
 * a dbuf with a hard limit or a fixed stack array with an explicit length
 * check; any malformed input yields SIGV4_MALFORMED, never a crash.
 * Signatures are compared in constant time.
 */
#include "sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto.h"
#include "sigv4_impl.h"
#include "util.h"
#include "vas.h"

/* ---------------------------------------------------------------------- */
/* Verification.                                                           */

/* The pieces of one signature, from either form, all NUL-terminated. */
struct sigv4_auth {
	char access_key[ACCESS_KEY_MAX + 1];
	char date8[9];
	char region[SCOPE_PART_MAX + 1];
	char service[SCOPE_PART_MAX + 1];
	char signed_headers[SIGNED_HEADERS_MAX + 1];
	char signature[65];
	char amz_date[17]; /* request time, YYYYMMDDTHHMMSSZ */
	int64_t t;         /* request time, unix seconds */
	int64_t expires;   /* presigned only */
	const char *want_region; /* NULL: any */
};

/* The credential scope names another region than the one served. */
static enum sigv4_status
check_region(const struct sigv4_auth *a, const char **errmsg)
{
	if (!a->want_region || strcmp(a->region, a->want_region) == 0)
		return SIGV4_OK;
	*errmsg = "The credential scope names another region.";
	return SIGV4_WRONG_REGION;
}

static int
copy_bounded(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return -1;
	memcpy(dst, s, n);
	dst[n] = 0;
	return 0;
}

/* Parses "AK/20130524/us-east-1/s3/aws4_request". */
static enum sigv4_status
parse_credential(struct sigv4_auth *a, const char *s, size_t n,
    const char **errmsg)
{
	const char *part[5];
	size_t plen[5];
	int np = 0;
	size_t i = 0;
	while (i <= n) {
		size_t j = i;
		while (j < n && s[j] != '/')
			j++;
		if (np == 5)
			goto bad;
		part[np] = s + i;
		plen[np++] = j - i;
		i = j + 1;
	}
	if (np != 5)
		goto bad;
	for (int k = 0; k < 5; k++) {
		if (plen[k] == 0)
			goto bad;
		for (size_t c = 0; c < plen[k]; c++)
			if ((unsigned char)part[k][c] <= ' ' ||
			    (unsigned char)part[k][c] >= 0x7f)
				goto bad;
	}
	if (copy_bounded(a->access_key, sizeof(a->access_key), part[0],
	    plen[0]) ||
	    plen[1] != 8 || !all_digits(part[1], 8) ||
	    copy_bounded(a->date8, sizeof(a->date8), part[1], plen[1]) ||
	    copy_bounded(a->region, sizeof(a->region), part[2], plen[2]) ||
	    copy_bounded(a->service, sizeof(a->service), part[3], plen[3]) ||
	    !mem_eq(part[4], plen[4], "aws4_request"))
		goto bad;
	if (strcmp(a->service, "s3") != 0) {
		*errmsg = "The credential scope's service must be s3.";
		return SIGV4_MALFORMED;
	}
	return SIGV4_OK;
bad:
	*errmsg = "The Credential is malformed; expected "
		  "\"<key>/<YYYYMMDD>/<region>/s3/aws4_request\".";
	return SIGV4_MALFORMED;
}

/* Checks "host;range;x-amz-date": non-empty tokens, no duplicates, host. */
static enum sigv4_status
parse_signed_headers(struct sigv4_auth *a, const char *s, size_t n,
    const char **errmsg)
{
	if (n == 0 || copy_bounded(a->signed_headers, sizeof(a->signed_headers),
	    s, n))
		goto bad;
	int has_host = 0;
	size_t i = 0;
	while (i <= n) {
		size_t j = i;
		while (j < n && s[j] != ';')
			j++;
		size_t nl = j - i;
		if (nl == 0 || nl > HEADER_NAME_MAX)
			goto bad;
		for (size_t k = i; k < j; k++)
			if (!is_tchar((unsigned char)s[k]))
				goto bad;
		/* Duplicates would be signed twice; reject outright. */
		size_t p = 0;
		while (p < i) {
			size_t q = p;
			while (q < n && s[q] != ';')
				q++;
			if (mem_ieq(s + p, q - p, s + i, nl))
				goto bad;
			p = q + 1;
		}
		if (mem_ieq(s + i, nl, "host", 4))
			has_host = 1;
		i = j + 1;
	}
	if (!has_host) {
		*errmsg = "The host header must be signed.";
		return SIGV4_MALFORMED;
	}
	return SIGV4_OK;
bad:
	*errmsg = "SignedHeaders is malformed.";
	return SIGV4_MALFORMED;
}

static enum sigv4_status
parse_signature(struct sigv4_auth *a, const char *s, size_t n,
    const char **errmsg)
{
	if (n != 64 || !all_hex(s, n)) {
		*errmsg = "The Signature must be 64 hex digits.";
		return SIGV4_MALFORMED;
	}
	for (size_t i = 0; i < 64; i++)
		a->signature[i] = (char)lower((unsigned char)s[i]);
	a->signature[64] = 0;
	return SIGV4_OK;
}

/*
 * Parses the Authorization value after the algorithm:
 * "Credential=..., SignedHeaders=..., Signature=..." in any order, separated
 * by commas and/or blanks, each exactly once.
 */
static enum sigv4_status
parse_authz_fields(struct sigv4_auth *a, const char *s, size_t n,
    const char **errmsg)
{
	int seen_cred = 0, seen_sh = 0, seen_sig = 0;
	enum sigv4_status st;
	size_t i = 0;
	for (;;) {
		while (i < n && (s[i] == ',' || is_blank((unsigned char)s[i])))
			i++;
		if (i == n)
			break;
		size_t j = i;
		while (j < n && s[j] != ',' && !is_blank((unsigned char)s[j]))
			j++;
		const char *f = s + i;
		size_t fl = j - i;
		const char *eq = memchr(f, '=', fl);
		if (!eq)
			goto bad;
		size_t kl = (size_t)(eq - f);
		const char *v = eq + 1;
		size_t vl = fl - kl - 1;
		if (mem_eq(f, kl, "Credential") && !seen_cred++)
			st = parse_credential(a, v, vl, errmsg);
		else if (mem_eq(f, kl, "SignedHeaders") && !seen_sh++)
			st = parse_signed_headers(a, v, vl, errmsg);
		else if (mem_eq(f, kl, "Signature") && !seen_sig++)
			st = parse_signature(a, v, vl, errmsg);
		else
			goto bad;
		if (st != SIGV4_OK)
			return st;
		i = j;
	}
	if (seen_cred && seen_sh && seen_sig)
		return SIGV4_OK;
bad:
	*errmsg = "The Authorization header is malformed; expected "
		  "\"AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., "
		  "Signature=...\".";
	return SIGV4_MALFORMED;
}


static int
query_has(const char *q, size_t n, const char *name)
{
	return query_param_decoded(q, n, name, NULL, 0) > 0;
}

/* Gets one required, unique X-Amz-* query parameter. */
static int
query_required(const char *q, size_t n, const char *name, char *out,
    size_t cap)
{
	return query_param_decoded(q, n, name, out, cap) == 1 ? 0 : -1;
}

static enum sigv4_status
parse_presigned(struct sigv4_auth *a, const char *q, size_t n, int64_t now,
    const char **errmsg)
{
	char v[QUERY_VALUE_MAX];
	enum sigv4_status st;
	if (query_required(q, n, "X-Amz-Algorithm", v, sizeof(v)))
		goto bad;
	if (strcmp(v, SIGV4_ALGO) != 0) {
		*errmsg = "Only AWS4-HMAC-SHA256 is supported.";
		return SIGV4_UNSUPPORTED;
	}
	if (query_required(q, n, "X-Amz-Credential", v, sizeof(v)))
		goto bad;
	if ((st = parse_credential(a, v, strlen(v), errmsg)) != SIGV4_OK)
		return st;
	if ((st = check_region(a, errmsg)) != SIGV4_OK)
		return st;
	if (query_required(q, n, "X-Amz-SignedHeaders", v, sizeof(v)))
		goto bad;
	if ((st = parse_signed_headers(a, v, strlen(v), errmsg)) != SIGV4_OK)
		return st;
	if (query_required(q, n, "X-Amz-Signature", v, sizeof(v)))
		goto bad;
	if ((st = parse_signature(a, v, strlen(v), errmsg)) != SIGV4_OK)
		return st;
	if (query_required(q, n, "X-Amz-Date", v, sizeof(v)) ||
	    (a->t = parse_amz_date(v, strlen(v))) < 0)
		goto bad;
	sigv4_amz_date(a->t, a->amz_date);
	if (strcmp(a->amz_date, v) != 0)
		goto bad; /* e.g. month 13: signed literally, must be canonical */
	if (query_required(q, n, "X-Amz-Expires", v, sizeof(v)))
		goto bad;
	/* S3's words for each way out of 0..604800. */
	size_t vl = strlen(v);
	int neg = vl > 0 && v[0] == '-';
	if (!all_digits(v + neg, vl - (size_t)neg)) {
		*errmsg = "X-Amz-Expires should be a number";
		return SIGV4_MALFORMED;
	}
	if (neg) {
		*errmsg = "X-Amz-Expires must be non-negative";
		return SIGV4_MALFORMED;
	}
	a->expires = vl > 7 ? EXPIRES_MAX_S + 1 : strtol(v, NULL, 10);
	if (a->expires > EXPIRES_MAX_S) {
		*errmsg = "X-Amz-Expires must be less than a week (in seconds); "
			  "that is, the given X-Amz-Expires must be less than "
			  "604800 seconds";
		return SIGV4_MALFORMED;
	}
	if (memcmp(a->amz_date, a->date8, 8) != 0) {
		*errmsg = "The credential date does not match X-Amz-Date.";
		return SIGV4_MALFORMED;
	}
	if (now > a->t + a->expires) {
		*errmsg = "Request has expired.";
		return SIGV4_EXPIRED;
	}
	if (a->t > now + SKEW_MAX_S) {
		*errmsg = "Request is not valid yet.";
		return SIGV4_EXPIRED;
	}
	return SIGV4_OK;
bad:
	*errmsg = "Query-string authentication requires exactly one each of "
		  "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, "
		  "X-Amz-Date, X-Amz-SignedHeaders and X-Amz-Expires.";
	return SIGV4_MALFORMED;
}

/* Header lookup that also reports how many times the header occurs. */
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

/*
 * HTTP-date, also with a numeric UTC zone ("... 00:00:00 -0000", RFC 2822
 * style, which botocore's formatdate() sends) instead of "GMT".
 */
static int64_t
parse_date_header(const char *d, size_t n)
{
	int64_t t = parse_http_date(d, n);
	if (t >= 0 || n < 6 || n > 64)
		return t;
	const char *z = d + n - 6;
	if (memcmp(z, " +0000", 6) != 0 && memcmp(z, " -0000", 6) != 0)
		return -1;
	char buf[80];
	memcpy(buf, d, n - 5);
	memcpy(buf + n - 5, "GMT", 3);
	return parse_http_date(buf, n - 2);
}

static enum sigv4_status
parse_header_form(struct sigv4_auth *a, const struct http_request *req,
    const char *authz, size_t alen, int64_t now, const char **errmsg)
{
	enum sigv4_status st;
	size_t al = strlen(SIGV4_ALGO);
	if (alen > AUTHZ_MAX || alen <= al ||
	    !is_blank((unsigned char)authz[al])) {
		*errmsg = "The Authorization header is malformed.";
		return SIGV4_MALFORMED;
	}
	st = parse_authz_fields(a, authz + al, alen - al, errmsg);
	if (st != SIGV4_OK)
		return st;
	if ((st = check_region(a, errmsg)) != SIGV4_OK)
		return st;

	size_t dl = 0;
	int cnt;
	const char *d = header_get(req, "x-amz-date", &dl, &cnt);
	if (cnt > 1)
		goto bad_date;
	if (d) {
		/* Signed literally, so it must be the canonical spelling. */
		if ((a->t = parse_amz_date(d, dl)) < 0)
			goto bad_date;
		sigv4_amz_date(a->t, a->amz_date);
		if (memcmp(a->amz_date, d, 16) != 0)
			goto bad_date;
	} else {
		d = header_get(req, "date", &dl, &cnt);
		if (!d || cnt > 1 || (a->t = parse_date_header(d, dl)) < 0)
			goto bad_date;
		sigv4_amz_date(a->t, a->amz_date);
	}
	if (memcmp(a->amz_date, a->date8, 8) != 0) {
		*errmsg = "The credential date does not match the request date.";
		return SIGV4_MALFORMED;
	}
	if (a->t > now + SKEW_MAX_S || a->t < now - SKEW_MAX_S) {
		*errmsg = "The difference between the request time and the "
			  "current time is too large.";
		return SIGV4_SKEWED;
	}
	return SIGV4_OK;
bad_date:
	*errmsg = "AWS authentication requires a valid Date or x-amz-date "
		  "header";
	return SIGV4_NO_DATE;
}

static int
valid_payload_hash(const char *v, size_t n)
{
	static const char *const literal[] = {
		SIGV4_UNSIGNED_PAYLOAD,
		"STREAMING-UNSIGNED-PAYLOAD-TRAILER",
		"STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
		"STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
	};
	if (n == 64 && all_hex(v, n))
		return 1;
	for (size_t i = 0; i < ARRAY_SIZE(literal); i++)
		if (mem_eq(v, n, literal[i]))
			return 1;
	return 0;
}

/* Is `name` (any case) one of the ';'-separated signed headers? */
static int
is_signed(const char *list, const char *name, size_t nl)
{
	const char *p = list;
	for (;;) {
		const char *e = strchr(p, ';');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (mem_ieq(p, l, name, nl))
			return 1;
		if (!e)
			return 0;
		p = e + 1;
	}
}

enum sigv4_status
sigv4_verify(const struct http_request *req, int64_t now,
    sigv4_secret_fn secret_fn, void *arg, const char **errmsg)
{
	return sigv4_verify_region(req, now, NULL, secret_fn, arg, errmsg,
	    NULL);
}

enum sigv4_status
sigv4_verify_region(const struct http_request *req, int64_t now,
    const char *region, sigv4_secret_fn secret_fn, void *arg,
    const char **errmsg, struct sigv4_info *info)
{
	const char *dummy;
	if (!errmsg)
		errmsg = &dummy;
	*errmsg = NULL;
	struct sigv4_info dinfo;
	if (!info)
		info = &dinfo;
	memset(info, 0, sizeof(*info));
	if (!req || !secret_fn) {
		*errmsg = "Internal error.";
		return SIGV4_MALFORMED;
	}
	const char *q = req->query ? req->query : "";
	size_t qn = req->query ? req->query_len : 0;

	size_t alen = 0;
	int acount;
	const char *authz = header_get(req, "authorization", &alen, &acount);
	int presigned = query_has(q, qn, "X-Amz-Algorithm");

	if (authz && presigned) {
		*errmsg = "Only one auth mechanism allowed.";
		return SIGV4_MALFORMED;
	}
	if (acount > 1) {
		*errmsg = "More than one Authorization header.";
		return SIGV4_MALFORMED;
	}
	struct sigv4_auth *a = calloc(1, sizeof(*a));
	if (!a) {
		*errmsg = "Out of memory.";
		return SIGV4_MALFORMED;
	}
	a->want_region = region;
	info->presigned = presigned && !authz;
	enum sigv4_status st;
	const char *payload_hash = SIGV4_UNSIGNED_PAYLOAD;
	size_t al = strlen(SIGV4_ALGO);
	if (authz) {
		if (alen >= al && memcmp(authz, SIGV4_ALGO, al) == 0 &&
		    (alen == al || is_blank((unsigned char)authz[al]))) {
			st = parse_header_form(a, req, authz, alen, now,
			    errmsg);
		} else if (alen == 0) {
			*errmsg = "The Authorization header is empty.";
			st = SIGV4_MALFORMED;
		} else {
			*errmsg = alen >= 4 && memcmp(authz, "AWS ", 4) == 0 ?
			    "Signature Version 2 is not supported; use "
			    "AWS4-HMAC-SHA256." :
			    "Unsupported authorization type.";
			st = SIGV4_UNSUPPORTED;
		}
	} else if (presigned) {
		st = parse_presigned(a, q, qn, now, errmsg);
	} else if (query_has(q, qn, "X-Amz-Credential") ||
	    query_has(q, qn, "X-Amz-Signature")) {
		*errmsg = "X-Amz-Algorithm is missing.";
		st = SIGV4_MALFORMED;
	} else if (query_has(q, qn, "Signature") ||
	    query_has(q, qn, "AWSAccessKeyId")) {
		*errmsg = "Signature Version 2 is not supported; use "
			  "AWS4-HMAC-SHA256.";
		st = SIGV4_UNSUPPORTED;
	} else {
		*errmsg = "The request carries no signature.";
		st = SIGV4_ANONYMOUS;
	}
	memcpy(info->region, a->region, sizeof(info->region));
	if (st != SIGV4_OK)
		goto out;

	const char *secret = secret_fn(arg, a->access_key);
	if (!secret) {
		*errmsg = "The AWS access key Id you provided does not exist in "
			  "our records.";
		st = SIGV4_UNKNOWN_KEY;
		goto out;
	}

	char phash[65];
	if (authz) {
		size_t pl = 0;
		int pc;
		const char *p = header_get(req, "x-amz-content-sha256", &pl, &pc);
		if (!p || pc > 1) {
			*errmsg = "Missing required header for this request: "
				  "x-amz-content-sha256.";
			st = SIGV4_MALFORMED;
			goto out;
		}
		if (!valid_payload_hash(p, pl)) {
			*errmsg = "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
				  "STREAMING-... or a SHA-256 in hex.";
			st = SIGV4_BAD_PAYLOAD_HASH;
			goto out;
		}
		memcpy(phash, p, pl);
		phash[pl] = 0;
		payload_hash = phash;
	}

	/* Unsigned x-amz-* headers could change what a request means. */
	for (int i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name_len >= 6 && mem_ieq(h->name, 6, "x-amz-", 6) &&
		    !is_signed(a->signed_headers, h->name, h->name_len)) {
			*errmsg = "There were headers present in the request "
				  "which were not signed.";
			st = SIGV4_MALFORMED;
			goto out;
		}
	}

	/* req->method points into the request buffer, unterminated. */
	char method[32];
	if (!req->method || req->method_len == 0 ||
	    copy_bounded(method, sizeof(method), req->method,
	    req->method_len) || strlen(method) != req->method_len) {
		*errmsg = "The request method is malformed.";
		st = SIGV4_MALFORMED;
		goto out;
	}
	struct dbuf canon;
	dbuf_init(&canon, CANON_MAX);
	int r = sigv4_canonical_request(&canon, method, req->path,
	    req->path ? req->path_len : 0, q, qn, req->headers,
	    req->nheaders, a->signed_headers, strlen(a->signed_headers),
	    payload_hash, presigned);
	char sig[65];
	unsigned char key[32];
	if (r == -ENOENT) {
		*errmsg = "A signed header is missing from the request.";
		st = SIGV4_MALFORMED;
	} else if (r) {
		*errmsg = "The request URI or query cannot be canonicalised.";
		st = SIGV4_MALFORMED;
	} else if (sigv4_signing_key(secret, a->date8, a->region, a->service,
	    key) != 0 || sigv4_signature_with_key(key, a->amz_date, a->date8,
	    a->region, a->service, &canon, sig) != 0) {
		*errmsg = "The secret for this access key is unusable.";
		st = SIGV4_UNKNOWN_KEY;
	} else if (ct_memcmp(sig, a->signature, 64) != 0) {
		*errmsg = "The request signature we calculated does not match "
			  "the signature you provided.";
		st = SIGV4_MISMATCH;
	} else if (authz) {
		/* What a chunked body's signatures chain from. */
		info->have_key = 1;
		memcpy(info->seed_signature, a->signature, 65);
		memcpy(info->amz_date, a->amz_date, 17);
		snprintf(info->scope, sizeof(info->scope),
		    "%s/%s/%s/aws4_request", a->date8, a->region, a->service);
		memcpy(info->signing_key, key, 32);
	}
	explicit_bzero(sig, sizeof(sig));
	explicit_bzero(key, sizeof(key));
	dbuf_free(&canon);
out:
	free(a);
	if (info == &dinfo)
		explicit_bzero(&dinfo, sizeof(dinfo));
	return st;
}
