/*
 * sigv4.c: AWS Signature Version 4 for S3: signing (the s3:// under-store
 * client, libferry) and the canonical request and signature that
 * verification (sigv4_verify.c: the S3 gateway, the control API) builds on
 * too, so the two directions cannot drift apart.
 *
 * Called from any thread; every function is pure (no globals, no locks).
 * Invariants: nothing here trusts the request.  Every intermediate buffer is
 * a dbuf with a hard limit or a fixed stack array with an explicit length
 * check; any malformed input yields SIGV4_MALFORMED (or -EINVAL / -E2BIG from
 * the building blocks), never a crash.  Signatures are compared in constant
 * time.  S3 canonicalisation: the path and the query are percent-decoded and
 * re-encoded per RFC 3986 (once, no dot-segment normalisation), a '+' in the
 * query is a literal '+', query params are sorted by encoded name then
 * value, header values are trimmed with inner runs of blanks collapsed and
 * repeated headers joined with ','.
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

void
sigv4_amz_date(int64_t t, char out[17])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm) ||
	    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
		snprintf(out, 17, "19700101T000000Z");
}


/* ---------------------------------------------------------------------- */
/* Canonical request.                                                      */

/*
 * Canonical URI: each '/'-separated segment is decoded and re-encoded on
 * its own, so a literal '/' stays '/' and an encoded "%2F" stays "%2F".
 */
static int
canon_path(struct dbuf *out, const char *path, size_t n)
{
	if (n == 0)
		return dbuf_adds(out, "/");
	char *tmp = malloc(n + 1);
	if (!tmp)
		return -ENOMEM;
	int r = 0;
	size_t i = 0;
	while (i <= n && r == 0) {
		size_t j = i;
		while (j < n && path[j] != '/')
			j++;
		long dl = url_decode(path + i, j - i, tmp, 0);
		if (dl < 0) {
			r = -EINVAL;
			break;
		}
		r = url_encode(out, tmp, (size_t)dl, 0);
		if (r == 0 && j < n)
			r = dbuf_add(out, "/", 1);
		i = j + 1;
	}
	free(tmp);
	return r;
}

struct qparam {
	size_t noff, nlen, voff, vlen; /* offsets into the encoded buffer */
	const char *name, *val;
};

static int
qparam_cmp(const void *pa, const void *pb)
{
	const struct qparam *a = pa, *b = pb;
	size_t m = a->nlen < b->nlen ? a->nlen : b->nlen;
	int c = memcmp(a->name, b->name, m);
	if (c)
		return c;
	if (a->nlen != b->nlen)
		return a->nlen < b->nlen ? -1 : 1;
	m = a->vlen < b->vlen ? a->vlen : b->vlen;
	c = memcmp(a->val, b->val, m);
	if (c)
		return c;
	if (a->vlen != b->vlen)
		return a->vlen < b->vlen ? -1 : 1;
	return 0;
}

/* Appends the RFC 3986 re-encoding of the percent-decoded s[0..n). */
static int
reencode(struct dbuf *enc, char *tmp, const char *s, size_t n)
{
	long dl = url_decode(s, n, tmp, 0);
	if (dl < 0)
		return -EINVAL;
	return url_encode(enc, tmp, (size_t)dl, 0);
}

static int
canon_query(struct dbuf *out, const char *q, size_t n, int exclude_signature)
{
	if (n == 0)
		return 0;
	size_t count = 1;
	for (size_t i = 0; i < n; i++)
		if (q[i] == '&')
			count++;
	if (count > QUERY_PARAMS_MAX)
		return -E2BIG;
	struct qparam *ps = calloc(count, sizeof(*ps));
	char *tmp = malloc(n + 1);
	struct dbuf enc;
	dbuf_init(&enc, 3 * n + 1); /* re-encoding grows at most 3x */
	int r = 0;
	size_t np = 0;
	if (!ps || !tmp) {
		r = -ENOMEM;
		goto out;
	}
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && q[j] != '&')
			j++;
		if (j > i) { /* empty components ("a&&b") carry nothing */
			const char *c = q + i;
			size_t cl = j - i;
			const char *eq = memchr(c, '=', cl);
			size_t kl = eq ? (size_t)(eq - c) : cl;
			struct qparam *p = &ps[np];
			p->noff = enc.len;
			if ((r = reencode(&enc, tmp, c, kl)) != 0)
				goto out;
			p->nlen = enc.len - p->noff;
			p->voff = enc.len;
			if (eq && (r = reencode(&enc, tmp, eq + 1, cl - kl - 1)) != 0)
				goto out;
			p->vlen = enc.len - p->voff;
			if (exclude_signature && p->nlen == 15 &&
			    memcmp(enc.p + p->noff, "X-Amz-Signature", 15) == 0)
				enc.len = p->noff; /* drop it */
			else
				np++;
		}
		i = j + 1;
	}
	for (size_t k = 0; k < np; k++) {
		ps[k].name = enc.p + ps[k].noff;
		ps[k].val = enc.p + ps[k].voff;
	}
	qsort(ps, np, sizeof(*ps), qparam_cmp);
	for (size_t k = 0; k < np && r == 0; k++) {
		if (k)
			r = dbuf_add(out, "&", 1);
		if (!r)
			r = dbuf_add(out, ps[k].name, ps[k].nlen);
		if (!r)
			r = dbuf_add(out, "=", 1);
		if (!r)
			r = dbuf_add(out, ps[k].val, ps[k].vlen);
	}
out:
	dbuf_free(&enc);
	free(tmp);
	free(ps);
	return r;
}

/* Appends a header value trimmed, with inner runs of blanks collapsed. */
static int
add_trimmed(struct dbuf *out, const char *v, size_t n)
{
	size_t i = 0;
	while (i < n && is_blank((unsigned char)v[i]))
		i++;
	while (n > i && is_blank((unsigned char)v[n - 1]))
		n--;
	int r = 0, in_blank = 0;
	for (; i < n && r == 0; i++) {
		if (is_blank((unsigned char)v[i])) {
			in_blank = 1;
			continue;
		}
		if (in_blank)
			r = dbuf_add(out, " ", 1);
		in_blank = 0;
		if (!r)
			r = dbuf_add(out, &v[i], 1);
	}
	return r;
}

int
sigv4_canonical_request(struct dbuf *out, const char *method,
    const char *path, size_t path_len, const char *query, size_t query_len,
    const struct http_header *headers, int nheaders,
    const char *signed_headers, size_t sh_len, const char *payload_hash,
    int exclude_signature)
{
	int r;
	if (!out || !method || (!path && path_len) || (!query && query_len) ||
	    (!headers && nheaders) || !signed_headers || !payload_hash)
		return -EINVAL;
	if ((r = dbuf_adds(out, method)) || (r = dbuf_add(out, "\n", 1)) ||
	    (r = canon_path(out, path, path_len)) ||
	    (r = dbuf_add(out, "\n", 1)) ||
	    (r = canon_query(out, query, query_len, exclude_signature)) ||
	    (r = dbuf_add(out, "\n", 1)))
		return r;
	if (sh_len == 0)
		return -EINVAL;
	size_t i = 0;
	while (i <= sh_len) {
		size_t j = i;
		while (j < sh_len && signed_headers[j] != ';')
			j++;
		const char *name = signed_headers + i;
		size_t nl = j - i;
		if (nl == 0)
			return -EINVAL;
		for (size_t k = 0; k < nl; k++) {
			char c = (char)lower((unsigned char)name[k]);
			if ((r = dbuf_add(out, &c, 1)))
				return r;
		}
		if ((r = dbuf_add(out, ":", 1)))
			return r;
		int found = 0;
		for (int h = 0; h < nheaders; h++) {
			if (!mem_ieq(headers[h].name, headers[h].name_len, name,
			    nl))
				continue;
			if (found && (r = dbuf_add(out, ",", 1)))
				return r;
			if ((r = add_trimmed(out, headers[h].value,
			    headers[h].value_len)))
				return r;
			found = 1;
		}
		if (!found)
			return -ENOENT;
		if ((r = dbuf_add(out, "\n", 1)))
			return r;
		i = j + 1;
	}
	if ((r = dbuf_add(out, "\n", 1)) ||
	    (r = dbuf_add(out, signed_headers, sh_len)) ||
	    (r = dbuf_add(out, "\n", 1)) || (r = dbuf_adds(out, payload_hash)))
		return r;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Signature computation shared by both directions.                        */

int
sigv4_signing_key(const char *secret, const char *date8, const char *region,
    const char *service, unsigned char key[32])
{
	size_t sl = strlen(secret);
	if (sl > SECRET_MAX)
		return -E2BIG;
	char kbuf[4 + SECRET_MAX];
	memcpy(kbuf, "AWS4", 4);
	memcpy(kbuf + 4, secret, sl);
	hmac_sha256(kbuf, 4 + sl, date8, strlen(date8), key);
	hmac_sha256(key, 32, region, strlen(region), key);
	hmac_sha256(key, 32, service, strlen(service), key);
	hmac_sha256(key, 32, "aws4_request", 12, key);
	explicit_bzero(kbuf, sizeof(kbuf));
	return 0;
}

/* hex(HMAC(kSigning, string-to-sign)) for a canonical request. */
int
sigv4_signature_with_key(const unsigned char key[32], const char *amz_date,
    const char *date8, const char *region, const char *service,
    const struct dbuf *canon, char sig_hex[65])
{
	char ch[65];
	sha256_hex(canon->p ? canon->p : "", canon->len, ch);
	char sts[512];
	int n = snprintf(sts, sizeof(sts), SIGV4_ALGO "\n%s\n%s/%s/%s/aws4_request\n%s",
	    amz_date, date8, region, service, ch);
	if (n < 0 || (size_t)n >= sizeof(sts))
		return -E2BIG;
	unsigned char sig[32];
	hmac_sha256(key, 32, sts, (size_t)n, sig);
	hex_encode(sig, 32, sig_hex);
	return 0;
}

/*
 * signature = hex(HMAC(kSigning, string-to-sign)) where kSigning is derived
 * from the secret through date, region, service and "aws4_request".
 */
int
sigv4_signature(const char *secret, const char *amz_date, const char *date8,
    const char *region, const char *service, const struct dbuf *canon,
    char sig_hex[65])
{
	unsigned char k[32];
	int r = sigv4_signing_key(secret, date8, region, service, k);
	if (r == 0)
		r = sigv4_signature_with_key(k, amz_date, date8, region,
		    service, canon, sig_hex);
	explicit_bzero(k, sizeof(k));
	return r;
}

/*
 * The string to sign of a chunk or a trailer: algorithm, date, scope,
 * previous signature, then the hashes (hex, '\n'-separated).  Bounded:
 * amz_date and scope are the verifier's own (fixed sizes), prev_sig is 64
 * hex digits; longer inputs are cut at their bounds, which can only yield a
 * signature nobody matches.
 */
static void
chained_signature(const unsigned char key[32], const char *algo,
    const char *amz_date, const char *scope, const char *prev_sig,
    const unsigned char *h1, const unsigned char *h2, char out[65])
{
	char sts[64 + 17 + SIGV4_SCOPE_MAX + 65 + 2 * 65 + 8];
	char x1[65], x2[65];
	hex_encode(h1, 32, x1);
	int n;
	if (h2) {
		hex_encode(h2, 32, x2);
		n = snprintf(sts, sizeof(sts), "%s\n%.16s\n%.*s\n%.64s\n%s\n%s",
		    algo, amz_date, SIGV4_SCOPE_MAX - 1, scope, prev_sig, x1, x2);
	} else {
		n = snprintf(sts, sizeof(sts), "%s\n%.16s\n%.*s\n%.64s\n%s",
		    algo, amz_date, SIGV4_SCOPE_MAX - 1, scope, prev_sig, x1);
	}
	VAS_ASSERT(n > 0 && (size_t)n < sizeof(sts));
	unsigned char sig[32];
	hmac_sha256(key, 32, sts, (size_t)n, sig);
	hex_encode(sig, 32, out);
}

void
sigv4_chunk_signature(const unsigned char key[32], const char *amz_date,
    const char *scope, const char *prev_sig,
    const unsigned char data_sha256[32], char out[65])
{
	static const unsigned char empty[32] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb,
		0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4,
		0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
		0xb8, 0x55,
	};
	chained_signature(key, "AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope,
	    prev_sig, empty, data_sha256, out);
}

void
sigv4_trailer_signature(const unsigned char key[32], const char *amz_date,
    const char *scope, const char *prev_sig,
    const unsigned char trailer_sha256[32], char out[65])
{
	chained_signature(key, "AWS4-HMAC-SHA256-TRAILER", amz_date, scope,
	    prev_sig, trailer_sha256, NULL, out);
}

/* ---------------------------------------------------------------------- */
/* Signing.                                                                */

struct sign_hdr {
	char name[HEADER_NAME_MAX + 1]; /* lowercased */
	const char *value;
};

static int
sign_hdr_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sign_hdr *)a)->name,
	    ((const struct sign_hdr *)b)->name);
}

static int
sign_hdr_set(struct sign_hdr *h, const char *name, const char *value)
{
	size_t n = strlen(name);
	if (n == 0 || n > HEADER_NAME_MAX || !value)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!is_tchar((unsigned char)name[i]))
			return -EINVAL;
		h->name[i] = (char)lower((unsigned char)name[i]);
	}
	h->name[n] = 0;
	/* The caller sends these as header lines: no CR/LF smuggling. */
	if (strpbrk(value, "\r\n"))
		return -EINVAL;
	h->value = value;
	return 0;
}

static int
valid_scope_part(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > SCOPE_PART_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || (unsigned char)s[i] <= ' ' ||
		    (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

int
sigv4_sign(const struct sigv4_sign_req *r, struct dbuf *authz,
    char amz_date[17])
{
	if (!r || !authz || !amz_date || !r->method || !r->host || !r->path ||
	    !r->payload_hash || !r->region || !r->service || !r->access_key ||
	    !r->secret_key || r->nheaders < 0 || (r->nheaders && !r->headers))
		return -EINVAL;
	if (!valid_scope_part(r->region) || !valid_scope_part(r->service) ||
	    !valid_scope_part(r->access_key) ||
	    strlen(r->access_key) > ACCESS_KEY_MAX)
		return -EINVAL;
	int total = 3 + (r->session_token ? 1 : 0) + r->nheaders;
	if (total > HTTP_MAX_HEADERS)
		return -E2BIG;

	char date[17], date8[9];
	sigv4_amz_date(r->now, date);
	memcpy(date8, date, 8);
	date8[8] = 0;

	struct sign_hdr *sh = calloc((size_t)total, sizeof(*sh));
	struct http_header *hh = calloc((size_t)total, sizeof(*hh));
	struct dbuf names, canon;
	dbuf_init(&names, SIGNED_HEADERS_MAX);
	dbuf_init(&canon, CANON_MAX);
	int rc = 0, n = 0;
	if (!sh || !hh) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = sign_hdr_set(&sh[n++], "host", r->host)) ||
	    (rc = sign_hdr_set(&sh[n++], "x-amz-content-sha256",
	    r->payload_hash)) ||
	    (rc = sign_hdr_set(&sh[n++], "x-amz-date", date)))
		goto out;
	if (r->session_token &&
	    (rc = sign_hdr_set(&sh[n++], "x-amz-security-token",
	    r->session_token)))
		goto out;
	for (int i = 0; i < r->nheaders; i++)
		if ((rc = sign_hdr_set(&sh[n++], r->headers[i].name,
		    r->headers[i].value)))
			goto out;
	qsort(sh, (size_t)n, sizeof(*sh), sign_hdr_cmp);
	for (int i = 0; i < n; i++) {
		if (i && strcmp(sh[i - 1].name, sh[i].name) == 0) {
			rc = -EINVAL; /* duplicate header */
			goto out;
		}
		if ((i && (rc = dbuf_add(&names, ";", 1))) ||
		    (rc = dbuf_adds(&names, sh[i].name)))
			goto out;
		hh[i].name = sh[i].name;
		hh[i].name_len = strlen(sh[i].name);
		hh[i].value = sh[i].value;
		hh[i].value_len = strlen(sh[i].value);
	}
	const char *q = r->query ? r->query : "";
	rc = sigv4_canonical_request(&canon, r->method, r->path,
	    strlen(r->path), q, strlen(q), hh, n, names.p, names.len,
	    r->payload_hash, 0);
	if (rc)
		goto out;
	char sig[65];
	if ((rc = sigv4_signature(r->secret_key, date, date8, r->region,
	    r->service, &canon, sig)))
		goto out;
	dbuf_reset(authz);
	rc = dbuf_printf(authz,
	    SIGV4_ALGO " Credential=%s/%s/%s/%s/aws4_request, "
	    "SignedHeaders=%s, Signature=%s",
	    r->access_key, date8, r->region, r->service, names.p, sig);
	if (rc == 0)
		memcpy(amz_date, date, 17);
out:
	dbuf_free(&canon);
	dbuf_free(&names);
	free(hh);
	free(sh);
	return rc;
}
