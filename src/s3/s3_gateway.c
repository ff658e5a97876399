/*
 * s3_gateway.c: the S3-compatible API on the gateway port (29998 by
 * default), path-style, and virtual-host style for the --s3-domain names:
 * the bucket is a mount's name, the key a path under it.  Runs on the HTTP server's connection threads; keeps no state of its
 * own beyond what struct worker holds.
 *
 * Built: ListBuckets, HeadBucket, GetBucketLocation, ListObjects (V1 and
 * V2, any delimiter, fetch-owner), HeadObject, GetObject (single range,
 * conditional headers, the headers stored with the object, response-*
 * overrides of signed requests), GetBucketAcl and
 * GetObjectAcl (a fixed owner-full-control policy), and S3's answer to a
 * CORS preflight on a bucket without CORS configuration.  Everything else
 * is answered with a proper S3 error document: NotImplemented for S3
 * operations not built (writes, other sub-resources), MethodNotAllowed for
 * methods S3 does not have.
 *
 * Auth: SigV4 (header or presigned; the scope's region must be
 * --s3-region) or SigV2 (header or presigned, sigv2.c) against the
 * configured credentials; unsigned requests only with --s3-anonymous.  A gateway on loopback with
 * no credentials configured accepts any request (the demo default).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../cluster/cluster.h"
#include "../common/dbuf.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/vas.h"
#include "../worker/mpu.h"
#include "../worker/namespace.h"
#include "../worker/objget.h"
#include "../worker/objkey.h"
#include "../worker/objput.h"
#include "../worker/worker.h"
#include "s3_body.h"
#include "s3_metrics.h"
#include "s3_relay.h"
#include "s3_reqxml.h"
#include "s3_route.h"
#include "../common/sigv4.h"
#include "sigv2.h"

#define LIST_MAX_KEYS 1000
#define XML_BODY_MAX (8 * 1024 * 1024)
#define XML_HDR "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define S3_NS "http://s3.amazonaws.com/doc/2006-03-01/"
/* The one owner of everything the gateway serves. */
#define OWNER_XML "<Owner><ID>ferry</ID><DisplayName>ferry</DisplayName></Owner>"

struct s3req {
	struct worker *w;
	struct http_conn *c;
	const struct http_request *req;
	int is_head;
	enum s3_op op;
	int status;
	char request_id[24];
	char bucket[MOUNT_NAME_MAX + 2];
	char *key; /* decoded; NULL for bucket-level requests */
	size_t key_len;
	int vhost; /* the bucket came from the Host (--s3-domain) */
	char err_hdr[160]; /* more header lines for an error answer, or "" */
	/* The verified SigV4 header signature (have_key), which a body's
	 * chunk signatures chain from; wiped when the request ends. */
	struct sigv4_info sig;
	int anonymous; /* unsigned, let in by --s3-anonymous */
	const struct s3_bucket_config *route_config; /* GET_BUCKET_CONFIG's */
};

static uint64_t request_counter;

/* --- errors -------------------------------------------------------------- */

/*
 * An S3 error document; extra (may be NULL) is more elements, already XML,
 * put before RequestId (S3's <Region>, <Method>, ...).
 */
static void error_doc(struct s3req *s, const char *code, const char *msg,
    const char *extra, struct dbuf *b);

static void
s3_error_x(struct s3req *s, int status, const char *code, const char *msg,
    const char *extra)
{
	s->status = status;
	if (http_resp_started(s->c)) {
		/* Too late for an error document: cut the body short. */
		http_conn_set_close(s->c);
		return;
	}
	char hdr[320];
	snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\n%s", s->request_id,
	    s->err_hdr);
	if (s->is_head) {
		http_resp_start(s->c, status, hdr, 0);
		http_resp_end(s->c);
		return;
	}
	struct dbuf b;
	dbuf_init(&b, 16384);
	error_doc(s, code, msg, extra, &b);
	http_resp_simple(s->c, status, hdr, "application/xml", b.p, b.len);
	dbuf_free(&b);
}

/* The Error document into b (its end kept short if b overflows). */
static void
error_doc(struct s3req *s, const char *code, const char *msg, const char *extra,
    struct dbuf *b)
{
	/* The declaration starts a document; where b holds something (what
	 * follows a declaration already sent) it is not repeated. */
	const char *decl = b->len ? "" : XML_HDR;
	dbuf_printf(b, "%s<Error><Code>%s</Code><Message>", decl, code);
	xml_escape(b, msg, strlen(msg));
	dbuf_adds(b, "</Message>");
	if (s->bucket[0]) {
		dbuf_adds(b, "<BucketName>");
		xml_escape(b, s->bucket, strlen(s->bucket));
		dbuf_adds(b, "</BucketName>");
	}
	if (s->key && utf8_valid(s->key, s->key_len)) {
		dbuf_adds(b, "<Key>");
		xml_escape(b, s->key, s->key_len);
		dbuf_adds(b, "</Key>");
	}
	if (extra)
		dbuf_adds(b, extra);
	dbuf_printf(b, "<RequestId>%s</RequestId></Error>", s->request_id);
	if (dbuf_error(b)) {
		/* A message too long to quote: the code alone. */
		dbuf_reset(b);
		dbuf_printf(b, "%s<Error><Code>%s</Code><RequestId>%s</RequestId></Error>",
		    decl, code, s->request_id);
	}
}

static void
s3_error(struct s3req *s, int status, const char *code, const char *msg)
{
	s3_error_x(s, status, code, msg, NULL);
}

static void
s3_error_errno(struct s3req *s, int err)
{
	switch (err) {
	case -ENOENT:
		if (s->key)
			s3_error(s, 404, "NoSuchKey", "The specified key does not exist.");
		else
			s3_error(s, 404, "NoSuchBucket", "The specified bucket does not exist.");
		break;
	case -EACCES:
	case -EPERM:
		s3_error(s, 403, "AccessDenied", "The under-store denied access to this object.");
		break;
	case -EINVAL:
		s3_error(s, 400, "InvalidArgument", "Invalid argument.");
		break;
	case -ENAMETOOLONG:
		s3_error(s, 400, "KeyTooLongError", "Your key is too long.");
		break;
	case -ETIMEDOUT:
		s3_error(s, 503, "ServiceUnavailable", "The under-store did not answer in time.");
		break;
	case -ESTALE:
		s3_error(s, 503, "ServiceUnavailable", "The object changed in the under-store while it was read; retry.");
		break;
	default:
		s3_error(s, 503, "ServiceUnavailable", "The under-store failed to serve this request.");
		break;
	}
}

/* --- auth ---------------------------------------------------------------- */

/* Region mismatch: S3's message and <Region>, which lets clients such as
 * botocore learn the region to sign for. */
static void
wrong_region(struct s3req *s, int presigned, const char *got)
{
	const char *want = s->w->cfg.s3_region;
	char msg[256];
	snprintf(msg, sizeof(msg), "%s the region '%s' is wrong; expecting '%s'",
	    presigned ? "Error parsing the X-Amz-Credential parameter;" :
	    "The authorization header is malformed;", got, want);
	/* Also as a header: a HEAD's answer has no body. */
	if (!strpbrk(want, "\r\n"))
		snprintf(s->err_hdr, sizeof(s->err_hdr), "x-amz-bucket-region: %.100s\r\n", want);
	struct dbuf x;
	dbuf_init(&x, 1024);
	dbuf_adds(&x, "<Region>");
	xml_escape(&x, want, strlen(want));
	dbuf_adds(&x, "</Region>");
	s3_error_x(s, 400, presigned ? "AuthorizationQueryParametersError" :
	    "AuthorizationHeaderMalformed", msg, dbuf_error(&x) ? NULL : x.p);
	dbuf_free(&x);
}

/* SigV2 (header or presigned), with S3's answers. */
static int
check_auth_v2(struct s3req *s)
{
	const char *msg = NULL;
	int presigned = 0;
	enum sigv2_status st = sigv2_verify_vhost(s->req,
	    s->vhost ? s->bucket : NULL, wall_sec(), worker_s3_secret, s->w,
	    &msg, &presigned);
	switch (st) {
	case SIGV2_OK:
		return 0;
	case SIGV2_UNKNOWN_KEY:
		s3_error(s, 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.");
		return -1;
	case SIGV2_MISMATCH:
		s3_error(s, 403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.");
		return -1;
	case SIGV2_SKEWED:
		s3_error(s, 403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large.");
		return -1;
	case SIGV2_EXPIRED:
		s3_error(s, 403, "AccessDenied", "Request has expired");
		return -1;
	case SIGV2_NO_DATE:
		s3_error(s, 403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header");
		return -1;
	case SIGV2_MALFORMED:
	default:
		if (presigned)
			s3_error(s, 403, "AccessDenied", msg ? msg : "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters");
		else
			s3_error(s, 400, "InvalidArgument", msg ? msg : "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature");
		return -1;
	}
}

/* 0 if the request may proceed; else sends the error and returns -1. */
static int
check_auth(struct s3req *s)
{
	struct worker *w = s->w;
	if (!w->s3_verify)
		return 0;
	if (sigv2_present(s->req))
		return check_auth_v2(s);
	const char *msg = NULL;
	struct sigv4_info info;
	enum sigv4_status st = sigv4_verify_region(s->req, wall_sec(),
	    w->cfg.s3_region, worker_s3_secret, w, &msg, &info);
	switch (st) {
	case SIGV4_OK:
		s->sig = info;
		explicit_bzero(&info, sizeof(info));
		return 0;
	case SIGV4_ANONYMOUS:
		s->anonymous = 1;
		if (w->cfg.s3_anonymous)
			return 0;
		s3_error(s, 403, "AccessDenied", "Access Denied: requests must be signed (AWS Signature Version 4).");
		return -1;
	case SIGV4_UNKNOWN_KEY:
		s3_error(s, 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.");
		return -1;
	case SIGV4_MISMATCH:
		s3_error(s, 403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.");
		return -1;
	case SIGV4_SKEWED:
		s3_error(s, 403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large.");
		return -1;
	case SIGV4_EXPIRED:
		s3_error(s, 403, "AccessDenied", msg ? msg : "Request has expired");
		return -1;
	case SIGV4_NO_DATE:
		s3_error(s, 403, "AccessDenied", msg ? msg : "AWS authentication requires a valid Date or x-amz-date header");
		return -1;
	case SIGV4_WRONG_REGION:
		wrong_region(s, info.presigned, info.region);
		return -1;
	case SIGV4_MALFORMED:
		if (info.presigned)
			s3_error(s, 400, "AuthorizationQueryParametersError", msg ? msg : "The query-string authentication parameters are malformed.");
		else
			s3_error(s, 400, "AuthorizationHeaderMalformed", msg ? msg : "The authorization header is malformed.");
		return -1;
	case SIGV4_BAD_PAYLOAD_HASH:
		s3_error(s, 400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header is not valid.");
		return -1;
	case SIGV4_UNSUPPORTED:
	default:
		s3_error(s, 400, "InvalidRequest", msg ? msg : "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.");
		return -1;
	}
}

/* --- query helpers ------------------------------------------------------- */

/* Decoded query parameter into a malloc'd string; NULL if absent.  *bad is
 * set if present but not decodable. */
static char *
qparam(const struct http_request *req, const char *name, int *bad)
{
	const char *v;
	size_t vl;
	if (!http_query_get(req->query, req->query_len, name, &v, &vl))
		return NULL;
	char *out = malloc(vl + 1);
	if (!out) {
		*bad = 1;
		return NULL;
	}
	long n = url_decode(v, vl, out, 1);
	/* A decoded NUL would cut the value short without a word: refuse. */
	if (n < 0 || (size_t)n != strlen(out)) {
		free(out);
		*bad = 1;
		return NULL;
	}
	return out;
}

/* --- ListBuckets --------------------------------------------------------- */

static int
list_buckets_one(void *arg, const struct mount *m)
{
	struct dbuf *b = arg;
	char date[32];
	fmt_iso8601(wall_sec(), date, sizeof(date));
	dbuf_adds(b, "<Bucket><Name>");
	xml_escape(b, m->name, strlen(m->name));
	return dbuf_printf(b, "</Name><CreationDate>%s</CreationDate></Bucket>", date);
}

static void
op_list_buckets(struct s3req *s)
{
	struct dbuf b;
	dbuf_init(&b, XML_BODY_MAX);
	dbuf_adds(&b, XML_HDR "<ListAllMyBucketsResult xmlns=\"" S3_NS "\">"
	    OWNER_XML "<Buckets>");
	mounts_foreach(s->w->mt, list_buckets_one, &b);
	if (dbuf_adds(&b, "</Buckets></ListAllMyBucketsResult>")) {
		dbuf_free(&b);
		s3_error(s, 500, "InternalError", "Listing too large.");
		return;
	}
	char hdr[96];
	snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\n", s->request_id);
	http_resp_simple(s->c, 200, hdr, "application/xml", b.p, b.len);
	s->status = 200;
	dbuf_free(&b);
}

/* --- ListObjects (V1 and V2) --------------------------------------------- */

struct list_ctx {
	struct dbuf *b;
	int url_enc;
	int owner; /* V1 always, V2 with fetch-owner=true, as S3 */
	int count;
	char last_key[UFS_KEY_MAX + 2];
};

static void
put_key(struct dbuf *b, const char *k, int url_enc)
{
	if (url_enc)
		url_encode(b, k, strlen(k), 1);
	else
		xml_escape(b, k, strlen(k));
}

static int
list_one(void *arg, const struct ufs_entry *e)
{
	struct list_ctx *lc = arg;
	struct dbuf *b = lc->b;
	snprintf(lc->last_key, sizeof(lc->last_key), "%s", e->key);
	lc->count++;
	if (e->is_dir) {
		dbuf_adds(b, "<CommonPrefixes><Prefix>");
		put_key(b, e->key, lc->url_enc);
		return dbuf_adds(b, "</Prefix></CommonPrefixes>") ? 1 : 0;
	}
	struct ufs_stat st = {.size = e->size, .mtime = e->mtime};
	snprintf(st.etag, sizeof(st.etag), "%s", e->etag ? e->etag : "");
	char etag[UFS_ETAG_MAX + 8], date[32];
	objkey_etag(&st, etag, sizeof(etag));
	fmt_iso8601(e->mtime, date, sizeof(date));
	dbuf_adds(b, "<Contents><Key>");
	put_key(b, e->key, lc->url_enc);
	dbuf_printf(b, "</Key><LastModified>%s</LastModified><ETag>&quot;", date);
	xml_escape(b, etag, strlen(etag));
	dbuf_printf(b, "&quot;</ETag><Size>%" PRId64 "</Size>", e->size);
	if (lc->owner)
		dbuf_adds(b, OWNER_XML);
	return dbuf_adds(b, "<StorageClass>STANDARD</StorageClass></Contents>") ? 1 : 0;
}

static void
xml_elem(struct dbuf *b, const char *name, const char *val, int url_enc)
{
	dbuf_printf(b, "<%s>", name);
	put_key(b, val, url_enc);
	dbuf_printf(b, "</%s>", name);
}

static void
op_list_objects(struct s3req *s, struct mount *m, int v2)
{
	const struct http_request *req = s->req;
	int bad = 0;
	char *prefix = qparam(req, "prefix", &bad);
	char *delim = qparam(req, "delimiter", &bad);
	char *maxk = qparam(req, "max-keys", &bad);
	char *enc = qparam(req, "encoding-type", &bad);
	char *token = v2 ? qparam(req, "continuation-token", &bad) : NULL;
	char *start_after = qparam(req, v2 ? "start-after" : "marker", &bad);
	char *fetch_owner = v2 ? qparam(req, "fetch-owner", &bad) : NULL;
	char *decoded_token = NULL;
	struct dbuf b;
	dbuf_init(&b, XML_BODY_MAX);

	int max_keys = LIST_MAX_KEYS;
	if (bad) {
		s3_error(s, 400, "InvalidArgument", "Malformed query parameter.");
		goto out;
	}
	if (maxk) {
		char *end;
		long v = strtol(maxk, &end, 10);
		if (!maxk[0] || *end || v < 0) {
			s3_error(s, 400, "InvalidArgument", "max-keys must be a non-negative integer.");
			goto out;
		}
		max_keys = v > LIST_MAX_KEYS ? LIST_MAX_KEYS : (int)v;
	}
	if (enc && strcmp(enc, "url") != 0) {
		s3_error(s, 400, "InvalidArgument", "Invalid Encoding Method specified in Request");
		goto out;
	}
	/* Any string groups, as on S3; one with control characters matches
	 * no key, so it groups nothing. */
	if (delim && !utf8_valid(delim, strlen(delim))) {
		s3_error(s, 400, "InvalidArgument", "The delimiter must be valid UTF-8.");
		goto out;
	}
	if (delim && strlen(delim) > UFS_KEY_MAX) {
		s3_error(s, 400, "InvalidArgument", "The delimiter is longer than 1024 bytes.");
		goto out;
	}
	const char *pfx = prefix ? prefix : "";
	int pv = prefix_validate(pfx, strlen(pfx));
	if (pv < 0) {
		s3_error(s, 400, "InvalidArgument", "Invalid prefix.");
		goto out;
	}
	const char *after = start_after ? start_after : "";
	if (token) {
		size_t tl = strlen(token);
		decoded_token = malloc(tl + 4);
		long dl = decoded_token ? b64_decode(token, tl, (unsigned char *)decoded_token) : -1;
		if (dl < 0 || !utf8_valid(decoded_token, (size_t)dl)) {
			s3_error(s, 400, "InvalidArgument", "The continuation token provided is incorrect");
			goto out;
		}
		decoded_token[dl] = 0;
		if (strcmp(decoded_token, after) > 0)
			after = decoded_token;
	}
	if (strlen(after) > UFS_KEY_MAX) {
		s3_error(s, 400, "InvalidArgument", "start-after is too long.");
		goto out;
	}
	int url_enc = enc != NULL;
	const char *d = delim && delim[0] ? delim : NULL;

	dbuf_adds(&b, XML_HDR "<ListBucketResult xmlns=\"" S3_NS "\">");
	xml_elem(&b, "Name", m->name, 0);
	xml_elem(&b, "Prefix", pfx, url_enc);
	if (d)
		xml_elem(&b, "Delimiter", d, url_enc);
	if (!v2)
		xml_elem(&b, "Marker", start_after ? start_after : "", url_enc);
	dbuf_printf(&b, "<MaxKeys>%d</MaxKeys>", max_keys);
	if (url_enc)
		dbuf_adds(&b, "<EncodingType>url</EncodingType>");
	if (v2 && token)
		xml_elem(&b, "ContinuationToken", token, 0);
	if (v2 && start_after)
		xml_elem(&b, "StartAfter", start_after, url_enc);
	size_t body_mark = b.len;
	struct list_ctx lc = {.b = &b, .url_enc = url_enc,
	    .owner = !v2 || (fetch_owner && strcmp(fetch_owner, "true") == 0)};
	int truncated = 0;
	int r = 0;
	/* A delimiter with a control character is in no key: no grouping. */
	const char *store_d = d;
	for (const char *q = d; q && *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			store_d = NULL;
	if (max_keys > 0 && pv == 0) /* pv 1: no key can match */
		r = meta_list(s->w->mc, m, pfx, store_d, after, max_keys, list_one, &lc, &truncated);
	if (r < 0) {
		s3_error_errno(s, r == -ENOENT ? -EIO : r);
		goto out;
	}
	/* IsTruncated etc. must precede the entries in clients' eyes only by
	 * convention; S3 puts them first, so we splice them in. */
	struct dbuf tail;
	dbuf_init(&tail, 8192);
	dbuf_printf(&tail, "<IsTruncated>%s</IsTruncated>", truncated ? "true" : "false");
	if (v2)
		dbuf_printf(&tail, "<KeyCount>%d</KeyCount>", lc.count);
	if (truncated && lc.count > 0) {
		if (v2) {
			dbuf_adds(&tail, "<NextContinuationToken>");
			b64_encode(&tail, lc.last_key, strlen(lc.last_key));
			dbuf_adds(&tail, "</NextContinuationToken>");
		} else if (d) {
			xml_elem(&tail, "NextMarker", lc.last_key, url_enc);
		}
	}
	struct dbuf out;
	dbuf_init(&out, XML_BODY_MAX + 16384);
	dbuf_add(&out, b.p, body_mark);
	dbuf_add(&out, tail.p, tail.len);
	dbuf_add(&out, b.p + body_mark, b.len - body_mark);
	int er = dbuf_adds(&out, "</ListBucketResult>") || dbuf_error(&b) || dbuf_error(&tail);
	dbuf_free(&tail);
	if (er) {
		dbuf_free(&out);
		s3_error(s, 500, "InternalError", "Listing page too large.");
		goto out;
	}
	char hdr[96];
	snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\n", s->request_id);
	http_resp_simple(s->c, 200, hdr, "application/xml", out.p, out.len);
	s->status = 200;
	dbuf_free(&out);
out:
	dbuf_free(&b);
	free(prefix);
	free(delim);
	free(maxk);
	free(enc);
	free(token);
	free(start_after);
	free(fetch_owner);
	free(decoded_token);
}

/* --- GetObject / HeadObject: parse into an objget request, format its head */

struct get_ctx {
	struct s3req *s;
	struct dbuf hdr; /* the answer's headers */
	int ended;       /* the head was the whole answer */
};

/* A response-* override of a GET: 1 if it was added as header. */
static int
add_override(struct dbuf *h, const struct http_request *req, const char *param,
    const char *header)
{
	int bad = 0;
	char *v = qparam(req, param, &bad);
	if (!v)
		return 0;
	/* Header injection guard: no CR/LF or other controls. */
	for (char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20) {
			free(v);
			return 0;
		}
	dbuf_printf(h, "%s: %s\r\n", header, v);
	free(v);
	return 1;
}

/* The headers an object keeps, their response-* overrides (S3 lets a
 * signed GET or HEAD replace each), and the answer's header names. */
static const struct {
	const char *param, *stored, *header;
} obj_std_headers[] = {
    {"response-content-type", "content-type", "Content-Type"},
    {"response-content-language", "content-language", "Content-Language"},
    {"response-expires", "expires", "Expires"},
    {"response-cache-control", "cache-control", "Cache-Control"},
    {"response-content-disposition", "content-disposition", "Content-Disposition"},
    {"response-content-encoding", "content-encoding", "Content-Encoding"},
};

/*
 * The headers stored with the object, as S3 answers a GET or HEAD: each
 * standard one (its override where the request has one), then every
 * x-amz-meta-* with its lowercase name.  An object with no Content-Type
 * stored (or whose headers are not known) answers ferry's default.  The
 * stored values were checked when they were kept or read (printable ASCII,
 * ufs_hdrs_add): nothing here can split a header.
 */
static void
add_object_headers(struct dbuf *hdr, const struct http_request *req,
    const struct ufs_hdrs *hd)
{
	int known = hd && hd->known;
	for (size_t i = 0; i < sizeof(obj_std_headers) / sizeof(obj_std_headers[0]); i++) {
		if (req->query_len && add_override(hdr, req, obj_std_headers[i].param,
		    obj_std_headers[i].header))
			continue;
		const char *v = known ? ufs_hdrs_get(hd, obj_std_headers[i].stored) : NULL;
		if (v)
			dbuf_printf(hdr, "%s: %s\r\n", obj_std_headers[i].header, v);
		else if (i == 0)
			dbuf_adds(hdr, "Content-Type: application/octet-stream\r\n");
	}
	size_t off = 0;
	const char *k, *v;
	while (known && ufs_hdrs_next(hd, &off, &k, &v))
		if (!strncmp(k, "x-amz-meta-", 11))
			dbuf_printf(hdr, "%s: %s\r\n", k, v);
}

/* Does the request ask for a response-* override? */
static int
has_override(const struct http_request *req)
{
	const char *v;
	size_t vl;
	for (size_t i = 0; i < sizeof(obj_std_headers) / sizeof(obj_std_headers[0]); i++)
		if (http_query_get(req->query, req->query_len,
		    obj_std_headers[i].param, &v, &vl))
			return 1;
	return 0;
}

static int
get_head(void *arg, const struct objget_head *h)
{
	struct get_ctx *g = arg;
	struct s3req *s = g->s;
	const struct http_request *req = s->req;
	struct dbuf *hdr = &g->hdr;
	char lm[40];
	fmt_http_date(h->st->mtime, lm, sizeof(lm));
	dbuf_printf(hdr, "x-amz-request-id: %s\r\nETag: \"%s\"\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n",
	    s->request_id, h->etag, lm);
	g->ended = 1; /* unless a body follows (below) */
	if (h->status == 412) {
		s3_error(s, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
		return 0;
	}
	if (h->status == 304 || (h->status == 416 && s->is_head)) {
		if (h->status == 416)
			dbuf_printf(hdr, "Content-Range: bytes */%" PRId64 "\r\n", h->st->size);
		s->status = h->status;
		if (dbuf_error(hdr))
			return -E2BIG;
		http_resp_start(s->c, h->status, hdr->p, 0);
		return http_resp_end(s->c);
	}
	if (h->status == 416) {
		size_t rl = 0;
		const char *rv = http_header_get(req, "range", &rl);
		dbuf_printf(hdr, "Content-Range: bytes */%" PRId64 "\r\n", h->st->size);
		struct dbuf eb;
		dbuf_init(&eb, 4096);
		dbuf_printf(&eb, XML_HDR "<Error><Code>InvalidRange</Code><Message>The requested range is not satisfiable</Message><RangeRequested>");
		xml_escape(&eb, rv, rl);
		dbuf_printf(&eb, "</RangeRequested><ActualObjectSize>%" PRId64 "</ActualObjectSize><RequestId>%s</RequestId></Error>",
		    h->st->size, s->request_id);
		s->status = 416;
		int r = dbuf_error(hdr) || dbuf_error(&eb) ? -E2BIG : 0;
		if (!r)
			http_resp_simple(s->c, 416, hdr->p, "application/xml", eb.p, eb.len);
		dbuf_free(&eb);
		return r;
	}
	if (h->status == 206)
		dbuf_printf(hdr, "Content-Range: bytes %" PRId64 "-%" PRId64 "/%" PRId64 "\r\n",
		    h->first, h->last, h->st->size);
	add_object_headers(hdr, req, h->hdrs);
	if (dbuf_error(hdr))
		return -E2BIG; /* the overrides do not fit in a head */
	s->status = h->status;
	int r = http_resp_start(s->c, h->status, hdr->p, h->length);
	if (r == 0 && (s->is_head || h->length == 0))
		r = http_resp_end(s->c);
	else
		g->ended = 0;
	return r;
}

static int
get_file(void *arg, int fd, off_t off, size_t n)
{
	struct get_ctx *g = arg;
	return http_resp_sendfile(g->s->c, fd, off, n);
}

static int
get_mem(void *arg, const void *p, size_t n)
{
	struct get_ctx *g = arg;
	return http_resp_body(g->s->c, p, n);
}

static struct objget_hdr
hdr_of(const struct http_request *req, const char *name)
{
	struct objget_hdr h = {0};
	h.p = http_header_get(req, name, &h.n);
	return h;
}

static void
op_get_object(struct s3req *s, struct mount *m)
{
	const struct http_request *req = s->req;
	if (s->anonymous && req->query_len && has_override(req)) {
		s3_error(s, 400, "InvalidRequest", "Request specific response headers cannot be used for anonymous GET requests.");
		return;
	}
	struct objget_req rq = {
	    .m = m, .path = s->key, .head = s->is_head, .dir_enoent = 1,
	    .want_hdrs = 1,
	    .if_match = hdr_of(req, "if-match"),
	    .if_none_match = hdr_of(req, "if-none-match"),
	    .if_modified_since = hdr_of(req, "if-modified-since"),
	    .if_unmodified_since = hdr_of(req, "if-unmodified-since"),
	    .range = hdr_of(req, "range"),
	};
	struct get_ctx g = {.s = s};
	dbuf_init(&g.hdr, 16384);
	struct objget_sink sink = {.head = get_head, .file = get_file, .mem = get_mem, .arg = &g};
	int started = 0;
	int r = objget_serve(s->w->og, &rq, &sink, &started);
	if (r == 0) {
		if (!g.ended)
			http_resp_end(s->c);
	} else if (r == -E2BIG && !http_resp_started(s->c)) {
		s3_error(s, 400, "InvalidArgument", "The response headers asked for are too large.");
	} else {
		if (r != -EPIPE && r != -ECONNRESET)
			LOG_WARN("GET /%s/%s: %s", m->name, s->key, strerror(-r));
		s3_error_errno(s, r);
	}
	dbuf_free(&g.hdr);
}

/* --- writes: PutObject, CopyObject, DeleteObject, DeleteObjects ---------- */

#define META_MAX 2048     /* S3's limit on x-amz-meta-* names and values */
#define OBJ_HDRS_MAX 32   /* headers kept with one object */
#define DELETE_BODY_MAX (2 << 20)

/* The headers S3 keeps with an object (content-type, x-amz-meta-*, ...):
 * lowercase names and values, NUL-terminated, in one arena. */
struct obj_headers {
	struct ufs_opt h[OBJ_HDRS_MAX];
	size_t off[OBJ_HDRS_MAX][2];
	int n;
	struct dbuf arena;
};

static int
is_kept_header(const char *name, size_t nl)
{
	static const char *const names[] = {"content-type", "content-language",
	    "content-disposition", "cache-control", "expires"};
	if (nl > 11 && strncasecmp(name, "x-amz-meta-", 11) == 0)
		return 1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == nl && strncasecmp(names[i], name, nl) == 0)
			return 1;
	return 0;
}

static void
arena_addc(struct dbuf *b, char ch)
{
	dbuf_add(b, &ch, 1);
}

static void
obj_headers_add(struct obj_headers *oh, const char *name, size_t nl,
    const char *val, size_t vl)
{
	if (oh->n == OBJ_HDRS_MAX) {
		oh->arena.err = -E2BIG;
		return;
	}
	oh->off[oh->n][0] = oh->arena.len;
	for (size_t i = 0; i < nl; i++)
		arena_addc(&oh->arena, (char)tolower((unsigned char)name[i]));
	arena_addc(&oh->arena, 0);
	oh->off[oh->n][1] = oh->arena.len;
	dbuf_add(&oh->arena, val, vl);
	arena_addc(&oh->arena, 0);
	oh->n++;
}

/*
 * Collects req's headers to keep: 0, or sends S3's error and returns -1.
 * The stored Content-Encoding is the request's without aws-chunked.
 */
static int
obj_headers_collect(struct s3req *s, struct obj_headers *oh)
{
	const struct http_request *req = s->req;
	size_t meta = 0;
	dbuf_init(&oh->arena, 64 << 10);
	oh->n = 0;
	for (int i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (!is_kept_header(h->name, h->name_len))
			continue;
		if (h->name_len > 11 && strncasecmp(h->name, "x-amz-meta-", 11) == 0)
			meta += h->name_len - 11 + h->value_len;
		obj_headers_add(oh, h->name, h->name_len, h->value, h->value_len);
	}
	char enc[256];
	int el = s3_body_stored_encoding(req, enc, sizeof(enc));
	if (el > 0)
		obj_headers_add(oh, "content-encoding", 16, enc, (size_t)el);
	if (meta > META_MAX) {
		s3_error(s, 400, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.");
		return -1;
	}
	if (el == -E2BIG || dbuf_error(&oh->arena)) {
		s3_error(s, 400, "InvalidArgument", "Too many or too large headers to keep with the object.");
		return -1;
	}
	for (int i = 0; i < oh->n; i++)
		oh->h[i] = (struct ufs_opt){oh->arena.p + oh->off[i][0],
		    oh->arena.p + oh->off[i][1]};
	return 0;
}

/* If-Match / If-None-Match of a write, into o (etag holds If-Match's
 * ETag).  0, or sends the error and returns -1. */
static int
write_conditions(struct s3req *s, struct ufs_put_opts *o, char *etag, size_t cap)
{
	size_t l = 0;
	const char *v = http_header_get(s->req, "if-none-match", &l);
	if (v) {
		if (l != 1 || v[0] != '*') {
			s3_error(s, 501, "NotImplemented", "If-None-Match on a write takes only '*'.");
			return -1;
		}
		o->if_none_match = 1;
	}
	v = http_header_get(s->req, "if-match", &l);
	if (v) {
		if (l >= 2 && v[0] == '"' && v[l - 1] == '"') {
			v++;
			l -= 2;
		}
		if (l == 0 || l >= cap || memchr(v, ',', l) || (l == 1 && v[0] == '*')) {
			s3_error(s, 501, "NotImplemented", "If-Match on a write takes one ETag.");
			return -1;
		}
		memcpy(etag, v, l);
		etag[l] = 0;
		o->if_match = etag;
	}
	return 0;
}

/* A write's failure, with the under-store's reason where it gave one. */
static void
write_error(struct s3req *s, int r, const char *what)
{
	const char *why = ufs_last_error();
	char msg[768];
	snprintf(msg, sizeof(msg), "%s: %s", what, why[0] ? why : strerror(-r));
	switch (r) {
	case -EROFS:
		s3_error(s, 403, "AccessDenied", "This bucket is read-only: its mount has readonly=true, or its under-store cannot be written.");
		break;
	case -EEXIST:
	case -ESTALE:
		s3_error(s, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
		break;
	case -ENOENT:
		s3_error(s, 404, "NoSuchKey", "The specified key does not exist.");
		break;
	case -EPROTO:
		s3_error(s, 400, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.");
		break;
	case -EFBIG:
		s3_error(s, 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.");
		break;
	case -EACCES:
	case -EPERM:
		s3_error(s, 403, "AccessDenied", msg);
		break;
	case -EINVAL:
	case -ENOTDIR:
	case -EISDIR:
	case -ENAMETOOLONG:
		s3_error(s, 400, "InvalidArgument", msg);
		break;
	case -ENOSPC:
	case -EDQUOT:
		s3_error(s, 507, "InsufficientStorage", msg);
		break;
	case -ETIMEDOUT:
		s3_error(s, 503, "ServiceUnavailable", msg);
		break;
	case -ENOBUFS: /* write-back staging is full */
		s3_error(s, 503, "SlowDown", msg);
		break;
	default:
		s3_error(s, 503, "ServiceUnavailable", msg);
		break;
	}
}

/* The client's side of a body that did not arrive. */
static void
body_read_error(struct s3req *s, ssize_t r)
{
	if (r == -ETIMEDOUT) {
		s3_error(s, 400, "RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period.");
	} else if (r == -EPROTO) {
		s3_error(s, 400, "IncompleteBody", "The request body's chunked framing is malformed.");
	} else {
		/* Gone: nobody to answer. */
		s->status = 400;
		http_conn_set_close(s->c);
	}
}

/*
 * The body of a PutObject as objput reads it: raw bytes from the
 * connection straight into objput's page buffer, fed through s3_body,
 * whose payload (a subsequence of what it was fed: framing and chunk
 * signatures taken out) is moved down in place.  No copy for a plain body.
 */
struct put_body {
	struct s3req *s;
	struct s3_body *b;
	char *out;        /* objput's buffer for this call */
	size_t out_len;
	int eof;
	ssize_t read_err; /* http_body_read's failure */
	int64_t total;    /* decoded bytes so far */
};

/* S3's largest single PutObject. */
#define S3_PUT_MAX (5LL << 30)

static int
put_sink(void *arg, const void *p, size_t n)
{
	struct put_body *pb = arg;
	if (pb->out + pb->out_len != p)
		memmove(pb->out + pb->out_len, p, n);
	pb->out_len += n;
	return 0;
}

static ssize_t
put_body_read(void *arg, void *buf, size_t n)
{
	struct put_body *pb = arg;
	if (pb->eof)
		return 0;
	pb->out = buf;
	pb->out_len = 0;
	while (pb->out_len == 0) {
		ssize_t r = http_body_read(pb->s->c, buf, n);
		if (r < 0)
			return pb->read_err = r;
		if (r == 0) {
			pb->eof = 1;
			return s3_body_finish(pb->b) < 0 ? -EBADMSG : 0;
		}
		int fr = s3_body_feed(pb->b, buf, (size_t)r);
		if (fr < 0)
			return fr;
	}
	pb->total += (int64_t)pb->out_len;
	if (pb->total > S3_PUT_MAX)
		return -EFBIG; /* a chunked body with no announced size */
	return (ssize_t)pb->out_len;
}

static void
answer_written(struct s3req *s, const struct ufs_stat *st, const char *ck_name,
    const char *ck_value)
{
	char etag[UFS_ETAG_MAX];
	objkey_etag(st, etag, sizeof(etag));
	char hdr[512];
	int n = snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\nETag: \"%s\"\r\n",
	    s->request_id, etag);
	if (ck_name && n > 0 && (size_t)n < sizeof(hdr))
		snprintf(hdr + n, sizeof(hdr) - (size_t)n, "%s: %s\r\n", ck_name, ck_value);
	s->status = 200;
	http_resp_start(s->c, 200, hdr, 0);
	http_resp_end(s->c);
}

static void
op_put_object(struct s3req *s, struct mount *m)
{
	struct s3_body_err be;
	memset(&be, 0, sizeof(be));
	struct put_body pb = {.s = s};
	struct s3_body_cfg cfg = {.sig = s->sig.have_key ? &s->sig : NULL,
	    .auth_checked = s->w->s3_verify};
	struct obj_headers oh = {.n = 0};
	dbuf_init(&oh.arena, 0);
	if (s3_body_new(&pb.b, s->req, &cfg, put_sink, &pb, &be) < 0) {
		if (be.code)
			s3_error_x(s, be.status, be.code, be.msg, be.extra);
		else
			s3_error(s, 503, "SlowDown", "Out of memory.");
		return;
	}
	char if_match[UFS_ETAG_MAX];
	struct objput_req rq = {.m = m, .path = s->key, .body = put_body_read, .arg = &pb};
	rq.opts.size = s3_body_expected_size(pb.b);
	if (rq.opts.size > S3_PUT_MAX) {
		write_error(s, -EFBIG, "upload");
		goto out;
	}
	if (write_conditions(s, &rq.opts, if_match, sizeof(if_match)) < 0 ||
	    obj_headers_collect(s, &oh) < 0)
		goto out;
	rq.opts.headers = oh.h;
	rq.opts.nheaders = oh.n;
	struct ufs_stat st;
	int r = objput_put(s->w->op, &rq, &st);
	if (r == 0) {
		const char *ckn = NULL;
		char ckv[64];
		if (!s3_body_checksum(pb.b, &ckn, ckv))
			ckn = NULL;
		answer_written(s, &st, ckn, ckv);
	} else if (pb.read_err) {
		body_read_error(s, pb.read_err);
	} else if (s3_body_error(pb.b)->code) {
		const struct s3_body_err *e = s3_body_error(pb.b);
		s3_error_x(s, e->status, e->code, e->msg, e->extra);
	} else {
		char what[64 + MOUNT_NAME_MAX];
		snprintf(what, sizeof(what), "writing to bucket %s failed", m->name);
		write_error(s, r, what);
	}
out:
	dbuf_free(&oh.arena);
	s3_body_free(&pb.b);
}

static void
op_delete_object(struct s3req *s, struct mount *m)
{
	int r = objput_delete(s->w->op, m, s->key);
	if (r < 0) {
		write_error(s, r, "the under-store did not delete the object");
		return;
	}
	char hdr[96];
	snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\n", s->request_id);
	s->status = 204;
	http_resp_start(s->c, 204, hdr, -1);
	http_resp_end(s->c);
}

/* DeleteObjects: the document is read and checked whole before anything
 * is deleted; then each key, in order, with its own result. */
struct delete_ctx {
	struct s3req *s;
	struct mount *m;
	struct dbuf *out;
	int quiet;
};

static int
dbuf_sink(void *arg, const void *p, size_t n)
{
	return dbuf_add(arg, p, n) ? -E2BIG : 0;
}

#define MALFORMED_XML "The XML you provided was not well-formed or did not validate against our published schema."

/* A request document (DeleteObjects, CompleteMultipartUpload), verified
 * as any body is, into body (at most max bytes).  0, or sends the error
 * and returns -1. */
static int
read_xml_body(struct s3req *s, size_t max, struct dbuf *body)
{
	struct s3_body_err be;
	memset(&be, 0, sizeof(be));
	struct s3_body *b = NULL;
	struct s3_body_cfg cfg = {.max_size = (int64_t)max,
	    .sig = s->sig.have_key ? &s->sig : NULL, .auth_checked = s->w->s3_verify};
	if (s3_body_new(&b, s->req, &cfg, dbuf_sink, body, &be) < 0) {
		if (be.code)
			s3_error_x(s, be.status, be.code, be.msg, be.extra);
		else
			s3_error(s, 503, "SlowDown", "Out of memory.");
		return -1;
	}
	char buf[16384];
	ssize_t n;
	int fr = 0;
	while (fr == 0 && (n = http_body_read(s->c, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			body_read_error(s, n);
			s3_body_free(&b);
			return -1;
		}
		fr = s3_body_feed(b, buf, (size_t)n);
	}
	if (fr == 0)
		fr = s3_body_finish(b);
	if (fr < 0) {
		const struct s3_body_err *e = s3_body_error(b);
		if (e->code)
			s3_error_x(s, e->status, e->code, e->msg, e->extra);
		else
			s3_error(s, 400, "MalformedXML", MALFORMED_XML);
		s3_body_free(&b);
		return -1;
	}
	s3_body_free(&b);
	return 0;
}

static int
delete_count(void *arg, const char *key, size_t len, int has_version)
{
	return 0;
}

static void
delete_result_error(struct delete_ctx *d, const char *key, size_t len,
    const char *code, const char *msg)
{
	dbuf_adds(d->out, "<Error><Key>");
	xml_escape(d->out, key, len);
	dbuf_printf(d->out, "</Key><Code>%s</Code><Message>", code);
	xml_escape(d->out, msg, strlen(msg));
	dbuf_adds(d->out, "</Message></Error>");
}

static int
delete_one(void *arg, const char *key, size_t len, int has_version)
{
	struct delete_ctx *d = arg;
	if (has_version) {
		delete_result_error(d, key, len, "NotImplemented", "ferry keeps no object versions.");
		return 0;
	}
	if (key_validate(key, len) < 0) {
		delete_result_error(d, key, len, "InvalidArgument", "Invalid object key.");
		return 0;
	}
	int r = objput_delete(d->s->w->op, d->m, key);
	if (r < 0) {
		const char *why = ufs_last_error();
		delete_result_error(d, key, len, r == -EROFS || r == -EACCES ||
		    r == -EPERM ? "AccessDenied" : "InternalError",
		    r == -EROFS ? "This bucket is read-only." : why[0] ? why : strerror(-r));
		return 0;
	}
	if (!d->quiet) {
		dbuf_adds(d->out, "<Deleted><Key>");
		xml_escape(d->out, key, len);
		dbuf_adds(d->out, "</Key></Deleted>");
	}
	return 0;
}

static void
op_delete_objects(struct s3req *s, struct mount *m)
{
	struct delete_ctx d = {.s = s, .m = m};
	struct dbuf body, out;
	dbuf_init(&body, DELETE_BODY_MAX);
	dbuf_init(&out, XML_BODY_MAX);
	d.out = &out;
	if (read_xml_body(s, DELETE_BODY_MAX, &body) < 0)
		goto out;
	if (s3_delete_parse(body.p ? body.p : "", body.len, delete_count, NULL, &d.quiet) < 0) {
		s3_error(s, 400, "MalformedXML", MALFORMED_XML);
		goto out;
	}
	dbuf_adds(&out, XML_HDR "<DeleteResult xmlns=\"" S3_NS "\">");
	int quiet_again;
	s3_delete_parse(body.p, body.len, delete_one, &d, &quiet_again);
	if (dbuf_adds(&out, "</DeleteResult>") || dbuf_error(&out)) {
		s3_error(s, 500, "InternalError", "The result document is too large.");
		goto out;
	}
	char hdr[96];
	snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\n", s->request_id);
	s->status = 200;
	http_resp_simple(s->c, 200, hdr, "application/xml", out.p, out.len);
out:
	dbuf_free(&body);
	dbuf_free(&out);
}

/*
 * CopyObject.  Within one mount the under-store copies; across mounts the
 * source is read through objget (the cache) and written through objput.
 * The copy-source conditions are objget's, on the source.
 */
struct copy_ctx {
	struct s3req *s;
	struct mount *dst;
	const struct ufs_put_opts *opts;
	struct objput_w *w;
	int status;      /* the source's head status */
	int64_t size;
	char *buf;       /* for page files */
	int same;        /* same mount: only the head is wanted */
	struct mpu_part *part; /* UploadPartCopy: the bytes go here instead */
	int err;
	int carry;       /* COPY directive across mounts: the source's headers
	                  * go with the new object */
	struct ufs_hdrs *srch; /* their copy (malloc'd), alive to the commit */
	struct ufs_opt sopt[UFS_HDRS_COUNT_MAX];
};

static int
copy_out(struct copy_ctx *c, const void *p, size_t n)
{
	int r = c->part ? mpu_part_write(c->part, p, n) : objput_write(c->w, p, n);
	return r < 0 ? (c->err = r) : 0;
}

static int
copy_head(void *arg, const struct objget_head *h)
{
	struct copy_ctx *c = arg;
	c->status = h->status;
	c->size = h->st->size;
	if (c->same || c->part || h->status != 200)
		return 0;
	struct ufs_put_opts o = *c->opts;
	o.size = h->st->size;
	if (c->carry && h->hdrs && h->hdrs->known && h->hdrs->n) {
		/* As S3's COPY: the source's headers, as its GET answers them. */
		if (!(c->srch = malloc(sizeof(*c->srch))))
			return c->err = -ENOMEM;
		memcpy(c->srch, h->hdrs, sizeof(*c->srch));
		o.headers = c->sopt;
		o.nheaders = ufs_hdrs_opts(c->srch, c->sopt, UFS_HDRS_COUNT_MAX);
	}
	int r = objput_begin(c->s->w->op, c->dst, c->s->key, &o, &c->w);
	return r < 0 ? (c->err = r) : 0;
}

static int
copy_mem(void *arg, const void *p, size_t n)
{
	return copy_out(arg, p, n);
}

static int
copy_file(void *arg, int fd, off_t off, size_t n)
{
	struct copy_ctx *c = arg;
	enum { CHUNK = 256 << 10 };
	if (!c->buf && !(c->buf = malloc(CHUNK)))
		return c->err = -ENOMEM;
	while (n > 0) {
		ssize_t got = pread(fd, c->buf, n < CHUNK ? n : CHUNK, off);
		if (got <= 0)
			return c->err = got < 0 ? -errno : -EIO;
		if (copy_out(c, c->buf, (size_t)got) < 0)
			return c->err;
		off += got;
		n -= (size_t)got;
	}
	return 0;
}

/* x-amz-copy-source: "[/]bucket/key", URL-encoded.  0 with the source's
 * mount (held) and key (malloc'd), or sends the error and returns -1. */
static int
copy_source(struct s3req *s, struct mount **sm, char **skey)
{
	size_t l = 0;
	const char *v = http_header_get(s->req, "x-amz-copy-source", &l);
	const char *q = memchr(v, '?', l);
	if (q) {
		s3_error(s, 501, "NotImplemented", "ferry keeps no object versions: x-amz-copy-source takes no versionId.");
		return -1;
	}
	char *dec = malloc(l + 1);
	if (!dec) {
		s3_error(s, 503, "SlowDown", "Out of memory.");
		return -1;
	}
	long dl = url_decode(v, l, dec, 0);
	char *p = dec;
	if (dl > 0 && p[0] == '/') {
		p++;
		dl--;
	}
	char *slash = dl > 0 ? memchr(p, '/', (size_t)dl) : NULL;
	if (dl < 0 || !slash || slash == p || (size_t)dl != strlen(p) ||
	    key_validate(slash + 1, (size_t)(p + dl - slash - 1)) < 0) {
		free(dec);
		s3_error(s, 400, "InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey");
		return -1;
	}
	*sm = mounts_get(s->w->mt, p, (size_t)(slash - p));
	if (!*sm) {
		free(dec);
		char *k = s->key;
		s->key = NULL;
		s3_error(s, 404, "NoSuchBucket", "The source bucket does not exist.");
		s->key = k;
		return -1;
	}
	*skey = strdup(slash + 1);
	free(dec);
	if (!*skey) {
		mount_release(sm);
		s3_error(s, 503, "SlowDown", "Out of memory.");
		return -1;
	}
	return 0;
}

static void
op_copy_object(struct s3req *s, struct mount *m)
{
	struct mount *sm = NULL;
	char *skey = NULL;
	struct obj_headers oh = {.n = 0};
	dbuf_init(&oh.arena, 0);
	if (copy_source(s, &sm, &skey) < 0)
		return;
	size_t dl = 0;
	const char *dir = http_header_get(s->req, "x-amz-metadata-directive", &dl);
	int replace = dir && dl == 7 && strncasecmp(dir, "REPLACE", 7) == 0;
	if (dir && !replace && !(dl == 4 && strncasecmp(dir, "COPY", 4) == 0)) {
		s3_error(s, 400, "InvalidArgument", "Unknown metadata directive.");
		goto out;
	}
	int same = sm == m;
	if (same && !replace && strcmp(skey, s->key) == 0) {
		s3_error(s, 400, "InvalidRequest", "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.");
		goto out;
	}
	struct ufs_put_opts o = {.size = -1};
	char if_match[UFS_ETAG_MAX];
	if (write_conditions(s, &o, if_match, sizeof(if_match)) < 0)
		goto out;
	if (replace) {
		if (obj_headers_collect(s, &oh) < 0)
			goto out;
		o.headers = oh.h;
		o.nheaders = oh.n;
	}
	/* The source, read through objget: its conditions, and (across
	 * mounts) its bytes into the new object. */
	struct copy_ctx c = {.s = s, .dst = m, .opts = &o, .same = same,
	    .carry = !replace};
	struct objget_req rq = {.m = sm, .path = skey, .head = same, .dir_enoent = 1,
	    .want_hdrs = !replace && !same, /* COPY across mounts carries them */
	    .if_match = hdr_of(s->req, "x-amz-copy-source-if-match"),
	    .if_none_match = hdr_of(s->req, "x-amz-copy-source-if-none-match"),
	    .if_modified_since = hdr_of(s->req, "x-amz-copy-source-if-modified-since"),
	    .if_unmodified_since = hdr_of(s->req, "x-amz-copy-source-if-unmodified-since")};
	struct objget_sink sink = {.head = copy_head, .file = copy_file, .mem = copy_mem, .arg = &c};
	int started = 0;
	int r = objget_serve(s->w->og, &rq, &sink, &started);
	struct ufs_stat st;
	if (r == 0 && c.status != 200) {
		objput_abort(&c.w);
		s3_error(s, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
		goto done;
	}
	if (r == 0 && same)
		r = objput_copy(s->w->op, m, skey, s->key, &o, &st);
	else if (r == 0)
		r = objput_commit(&c.w, &st);
	else
		objput_abort(&c.w);
	if (r < 0 && c.err)
		r = c.err;
	if (r < 0) {
		char what[96 + 2 * MOUNT_NAME_MAX];
		snprintf(what, sizeof(what), "copying from bucket %s to bucket %s failed",
		    sm->name, m->name);
		if (r == -ENOENT && !c.status) {
			/* The source, not the destination, is missing. */
			char *k = s->key;
			s->key = skey;
			s->key_len = strlen(skey);
			s3_error(s, 404, "NoSuchKey", "The specified key does not exist.");
			s->key = k;
			s->key_len = strlen(k);
		} else {
			write_error(s, r, what);
		}
		goto done;
	}
	char lm[40], etag[UFS_ETAG_MAX];
	fmt_iso8601(st.mtime, lm, sizeof(lm));
	objkey_etag(&st, etag, sizeof(etag));
	struct dbuf b;
	dbuf_init(&b, 4096);
	dbuf_printf(&b, XML_HDR "<CopyObjectResult xmlns=\"" S3_NS "\"><LastModified>%s</LastModified><ETag>&quot;",
	    lm);
	xml_escape(&b, etag, strlen(etag));
	dbuf_adds(&b, "&quot;</ETag></CopyObjectResult>");
	char hdr[96];
	snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\n", s->request_id);
	s->status = 200;
	http_resp_simple(s->c, 200, hdr, "application/xml", b.p, b.len);
	dbuf_free(&b);
done:
	free(c.buf);
	free(c.srch);
out:
	dbuf_free(&oh.arena);
	mount_release(&sm);
	free(skey);
}

/* --- multipart uploads: staged by mpu.c, completed through objput ------- */

#define COMPLETE_BODY_MAX (4 << 20)

/*
 * An upload another worker of the cluster holds (an id's first digits name
 * it, mpu_set_tag): the request goes there as the client sent it, and its
 * answer comes back (s3_relay.c; that worker checks the signature).  1 when
 * the request was answered so (or with why it could not be), 0 when it is
 * this worker's to answer.
 */
static int
relay_upload_request(struct s3req *s, const char *id)
{
	struct cluster *cl = worker_cluster(s->w);
	/* Relayed once already: answered here, whatever the view says. */
	if (!cl || http_header_get(s->req, RELAY_MARK, NULL) || mpu_holds(s->w->mpu, id))
		return 0;
	struct cluster_view *v = cluster_view_get(cl);
	char addr[CLUSTER_ADDR_MAX + 1] = "";
	/* Another member with the id's tag (even if it is ours too: two ids
	 * may share their first digits). */
	for (int i = 0; v && i < v->n && !addr[0]; i++)
		if (!strncmp(v->m[i].id, id, MPU_TAG_LEN) && strcmp(v->m[i].id, s->w->id))
			snprintf(addr, sizeof(addr), "%s", v->m[i].s3);
	cluster_view_release(&v);
	if (!addr[0] && !strncmp(id, s->w->id, MPU_TAG_LEN))
		return 0; /* ours, and not here: NoSuchUpload */
	if (addr[0] && !s3_relay_target_ok(s->req)) {
		s3_error(s, 400, "InvalidURI", "Couldn't parse the specified URI: "
		    "its bytes must be ASCII, with no '#', to reach the worker "
		    "that holds this upload.");
		return 1;
	}
	if (!addr[0]) {
		s3_error(s, 404, "NoSuchUpload", "The specified upload does not exist: "
		    "no worker of the cluster now is the one that created it (its id "
		    "names the worker), or the upload ID is invalid.");
		return 1;
	}
	int status;
	char why[320];
	if (s3_relay(s->c, s->req, addr, &status, why, sizeof(why)) == 0) {
		s->status = status;
		return 1;
	}
	LOG_WARN("s3: upload %s is held by the worker at %s, which did not "
	    "answer: %s", id, addr, why);
	char msg[sizeof(why) + 128];
	snprintf(msg, sizeof(msg), "The worker that holds this upload (%s) did "
	    "not answer: %s", addr, why);
	s3_error(s, 503, "ServiceUnavailable", msg);
	return 1;
}

/* uploadId of the request: 0 with id, or sends NoSuchUpload (or relays
 * the request to the worker holding the upload: relay_upload_request). */
static int
upload_id(struct s3req *s, char id[MPU_ID_LEN + 1])
{
	const char *v;
	size_t vl;
	if (!http_query_get(s->req->query, s->req->query_len, "uploadId", &v, &vl) ||
	    vl != MPU_ID_LEN) {
		s3_error(s, 404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.");
		return -1;
	}
	memcpy(id, v, vl);
	id[vl] = 0;
	if (!mpu_id_valid(id)) {
		s3_error(s, 404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.");
		return -1;
	}
	return relay_upload_request(s, id) ? -1 : 0;
}

static void
no_such_upload(struct s3req *s)
{
	s3_error(s, 404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.");
}

static void
xml_ok(struct s3req *s, struct dbuf *b)
{
	if (dbuf_error(b)) {
		s3_error(s, 500, "InternalError", "The result document is too large.");
		return;
	}
	char hdr[96];
	snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\n", s->request_id);
	s->status = 200;
	http_resp_simple(s->c, 200, hdr, "application/xml", b->p, b->len);
}

static void
op_create_mpu(struct s3req *s, struct mount *m)
{
	if (m->readonly || !ufs_writable(m->ufs)) {
		write_error(s, -EROFS, "");
		return;
	}
	struct obj_headers oh = {.n = 0};
	dbuf_init(&oh.arena, 0);
	char id[MPU_ID_LEN + 1];
	if (obj_headers_collect(s, &oh) < 0)
		goto out;
	int r = mpu_create(s->w->mpu, m, s->key, oh.h, oh.n, id);
	if (r == -EAGAIN) {
		s3_error(s, 503, "SlowDown", "Too many multipart uploads in progress on this worker: complete or abort some.");
		goto out;
	}
	if (r < 0) {
		write_error(s, r, "staging the upload failed");
		goto out;
	}
	struct dbuf b;
	dbuf_init(&b, 8192);
	dbuf_adds(&b, XML_HDR "<InitiateMultipartUploadResult xmlns=\"" S3_NS "\"><Bucket>");
	xml_escape(&b, m->name, strlen(m->name));
	dbuf_adds(&b, "</Bucket><Key>");
	xml_escape(&b, s->key, s->key_len);
	dbuf_printf(&b, "</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>", id);
	xml_ok(s, &b);
	dbuf_free(&b);
out:
	dbuf_free(&oh.arena);
}

/* partNumber: 1..10000, or sends InvalidArgument. */
static int
part_number(struct s3req *s)
{
	const char *v;
	size_t vl;
	int n = 0;
	if (http_query_get(s->req->query, s->req->query_len, "partNumber", &v, &vl) &&
	    vl >= 1 && vl <= 5) {
		for (size_t i = 0; i < vl && n >= 0; i++)
			n = v[i] >= '0' && v[i] <= '9' ? n * 10 + (v[i] - '0') : -1;
	}
	if (n < 1 || n > MPU_PART_MAX) {
		s3_error(s, 400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive");
		return -1;
	}
	return n;
}

static void
part_answer(struct s3req *s, const char *md5hex, const char *ck_name,
    const char *ck_value)
{
	char hdr[512];
	int n = snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\nETag: \"%s\"\r\n",
	    s->request_id, md5hex);
	if (ck_name && n > 0 && (size_t)n < sizeof(hdr))
		snprintf(hdr + n, sizeof(hdr) - (size_t)n, "%s: %s\r\n", ck_name, ck_value);
	s->status = 200;
	http_resp_start(s->c, 200, hdr, 0);
	http_resp_end(s->c);
}

static void
part_error(struct s3req *s, int r)
{
	if (r == -ENOENT)
		no_such_upload(s);
	else
		write_error(s, r, "staging the part failed");
}

static void
op_upload_part(struct s3req *s, struct mount *m)
{
	char id[MPU_ID_LEN + 1];
	int num;
	if (upload_id(s, id) < 0 || (num = part_number(s)) < 0)
		return;
	struct s3_body_err be;
	memset(&be, 0, sizeof(be));
	struct put_body pb = {.s = s};
	struct s3_body_cfg cfg = {.sig = s->sig.have_key ? &s->sig : NULL,
	    .auth_checked = s->w->s3_verify};
	if (s3_body_new(&pb.b, s->req, &cfg, put_sink, &pb, &be) < 0) {
		if (be.code)
			s3_error_x(s, be.status, be.code, be.msg, be.extra);
		else
			s3_error(s, 503, "SlowDown", "Out of memory.");
		return;
	}
	struct mpu_part *p = NULL;
	char *buf = NULL;
	int64_t want = s3_body_expected_size(pb.b);
	int r = want > MPU_PART_SIZE_MAX ? -EFBIG : 0;
	if (r == 0)
		r = mpu_part_begin(s->w->mpu, m, s->key, id, num, &p);
	if (r == 0 && !(buf = malloc(1 << 20)))
		r = -ENOMEM;
	int64_t got = 0;
	for (ssize_t n = 1; r == 0 && n > 0;) {
		n = put_body_read(&pb, buf, 1 << 20);
		if (n < 0)
			r = (int)n;
		else if (n > 0 && (r = mpu_part_write(p, buf, (size_t)n)) == 0)
			got += n;
	}
	if (r == 0 && want >= 0 && got != want)
		r = -EPROTO;
	char md5hex[33];
	if (r == 0)
		r = mpu_part_commit(&p, md5hex);
	else
		mpu_part_abort(&p);
	if (r == 0) {
		const char *ckn = NULL;
		char ckv[64];
		if (!s3_body_checksum(pb.b, &ckn, ckv))
			ckn = NULL;
		part_answer(s, md5hex, ckn, ckv);
	} else if (pb.read_err) {
		body_read_error(s, pb.read_err);
	} else if (s3_body_error(pb.b)->code) {
		const struct s3_body_err *e = s3_body_error(pb.b);
		s3_error_x(s, e->status, e->code, e->msg, e->extra);
	} else {
		part_error(s, r);
	}
	free(buf);
	s3_body_free(&pb.b);
}

static void
op_upload_part_copy(struct s3req *s, struct mount *m)
{
	char id[MPU_ID_LEN + 1];
	int num;
	if (upload_id(s, id) < 0 || (num = part_number(s)) < 0)
		return;
	struct mount *sm = NULL;
	char *skey = NULL;
	if (copy_source(s, &sm, &skey) < 0)
		return;
	struct copy_ctx c = {.s = s};
	int r = mpu_part_begin(s->w->mpu, m, s->key, id, num, &c.part);
	if (r < 0) {
		part_error(s, r);
		goto out;
	}
	struct objget_req rq = {.m = sm, .path = skey, .dir_enoent = 1,
	    .range = hdr_of(s->req, "x-amz-copy-source-range"),
	    .if_match = hdr_of(s->req, "x-amz-copy-source-if-match"),
	    .if_none_match = hdr_of(s->req, "x-amz-copy-source-if-none-match"),
	    .if_modified_since = hdr_of(s->req, "x-amz-copy-source-if-modified-since"),
	    .if_unmodified_since = hdr_of(s->req, "x-amz-copy-source-if-unmodified-since")};
	struct objget_sink sink = {.head = copy_head, .file = copy_file, .mem = copy_mem, .arg = &c};
	int started = 0;
	r = objget_serve(s->w->og, &rq, &sink, &started);
	if (r < 0 && c.err)
		r = c.err;
	char md5hex[33];
	if (r == 0 && c.status == 416) {
		mpu_part_abort(&c.part);
		s3_error(s, 400, "InvalidRange", "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy");
		goto out;
	}
	if (r == 0 && c.status != 200 && c.status != 206) {
		mpu_part_abort(&c.part);
		s3_error(s, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
		goto out;
	}
	if (r == 0)
		r = mpu_part_commit(&c.part, md5hex);
	else
		mpu_part_abort(&c.part);
	if (r == -ENOENT && !c.status) {
		char *k = s->key;
		s->key = skey;
		s->key_len = strlen(skey);
		s3_error(s, 404, "NoSuchKey", "The specified key does not exist.");
		s->key = k;
		s->key_len = strlen(k);
		goto out;
	}
	if (r < 0) {
		part_error(s, r);
		goto out;
	}
	char lm[40];
	fmt_iso8601(time(NULL), lm, sizeof(lm));
	struct dbuf b;
	dbuf_init(&b, 4096);
	dbuf_printf(&b, XML_HDR "<CopyPartResult xmlns=\"" S3_NS "\"><LastModified>%s</LastModified>"
	    "<ETag>&quot;%s&quot;</ETag></CopyPartResult>", lm, md5hex);
	xml_ok(s, &b);
	dbuf_free(&b);
out:
	free(c.buf);
	mount_release(&sm);
	free(skey);
}

static void
op_abort_mpu(struct s3req *s, struct mount *m)
{
	char id[MPU_ID_LEN + 1];
	if (upload_id(s, id) < 0)
		return;
	int r = mpu_abort(s->w->mpu, m, s->key, id);
	if (r < 0) {
		part_error(s, r);
		return;
	}
	char hdr[96];
	snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\n", s->request_id);
	s->status = 204;
	http_resp_start(s->c, 204, hdr, -1);
	http_resp_end(s->c);
}

struct want_list {
	struct mpu_want *w;
	int n;
};

static int
want_add(void *arg, int number, const char *etag, size_t len)
{
	struct want_list *l = arg;
	if (len > 32)
		len = 32; /* cannot match an MD5; compared as given */
	l->w[l->n].number = number;
	memcpy(l->w[l->n].etag, etag, len);
	l->w[l->n].etag[len] = 0;
	l->n++;
	return 0;
}

/* Complete answers 200 before the write (which may take long) and keeps
 * the connection alive with spaces, as S3 does; its outcome is the
 * document that follows. */
static void
complete_started(void *arg)
{
	struct s3req *s = arg;
	char hdr[128];
	snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\nContent-Type: application/xml\r\n",
	    s->request_id);
	s->status = 200;
	http_resp_start(s->c, 200, hdr, -1);
	http_resp_body(s->c, XML_HDR, sizeof(XML_HDR) - 1);
}

static void
complete_tick(void *arg)
{
	struct s3req *s = arg;
	http_resp_body(s->c, " ", 1);
}

static void
op_complete_mpu(struct s3req *s, struct mount *m)
{
	char id[MPU_ID_LEN + 1];
	if (upload_id(s, id) < 0)
		return;
	struct dbuf body;
	dbuf_init(&body, COMPLETE_BODY_MAX);
	struct want_list wl = {.w = calloc(S3_COMPLETE_MAX, sizeof(struct mpu_want))};
	char if_match[UFS_ETAG_MAX];
	struct ufs_put_opts cond = {.size = -1};
	if (!wl.w) {
		s3_error(s, 503, "SlowDown", "Out of memory.");
		goto out;
	}
	if (read_xml_body(s, COMPLETE_BODY_MAX, &body) < 0 ||
	    write_conditions(s, &cond, if_match, sizeof(if_match)) < 0)
		goto out;
	if (s3_complete_parse(body.p ? body.p : "", body.len, want_add, &wl) < 0) {
		s3_error(s, 400, "MalformedXML", MALFORMED_XML);
		goto out;
	}
	struct mpu_progress pr = {.started = complete_started, .tick = complete_tick, .arg = s};
	struct ufs_stat st;
	char mpu_etag[48];
	int bad = 0;
	int r = mpu_complete(s->w->mpu, m, s->key, id, wl.w, wl.n, &cond, &pr, &st,
	    mpu_etag, &bad);
	struct dbuf b;
	dbuf_init(&b, 16384);
	if (r == 0) {
		/* The ETag every later HEAD and GET gives: the under-store's
		 * (an s3:// store is sent the client's parts, so it is S3's
		 * "md5-of-md5s-N" of them: mpu_complete, ufs_put_opts.parts). */
		char etag[UFS_ETAG_MAX];
		objkey_etag(&st, etag, sizeof(etag));
		if (!http_resp_started(s->c))
			dbuf_adds(&b, XML_HDR);
		dbuf_adds(&b, "<CompleteMultipartUploadResult xmlns=\"" S3_NS "\"><Location>/");
		xml_escape(&b, m->name, strlen(m->name));
		dbuf_adds(&b, "/");
		xml_escape(&b, s->key, s->key_len);
		dbuf_adds(&b, "</Location><Bucket>");
		xml_escape(&b, m->name, strlen(m->name));
		dbuf_adds(&b, "</Bucket><Key>");
		xml_escape(&b, s->key, s->key_len);
		dbuf_adds(&b, "</Key><ETag>&quot;");
		xml_escape(&b, etag, strlen(etag));
		dbuf_adds(&b, "&quot;</ETag></CompleteMultipartUploadResult>");
		if (!http_resp_started(s->c)) {
			xml_ok(s, &b);
		} else {
			http_resp_body(s->c, b.p, b.len);
			http_resp_end(s->c);
		}
		dbuf_free(&b);
		goto out;
	}
	if (!http_resp_started(s->c)) {
		char extra[160];
		snprintf(extra, sizeof(extra), "<PartNumber>%d</PartNumber>", bad);
		switch (r) {
		case -ENOENT:
			no_such_upload(s);
			break;
		case -EDOM:
			s3_error(s, 400, "InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be specified in order by part number.");
			break;
		case -EINVAL:
			s3_error_x(s, 400, "InvalidPart", "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag.", bad ? extra : NULL);
			break;
		case -EMSGSIZE:
			s3_error_x(s, 400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.", extra);
			break;
		default:
			write_error(s, r, "completing the upload failed");
		}
		dbuf_free(&b);
		goto out;
	}
	/* After the 200: the error is the document; the upload stays. */
	char why[768];
	const char *code = "InternalError";
	snprintf(why, sizeof(why), "completing the upload failed: %s",
	    ufs_last_error()[0] ? ufs_last_error() : strerror(-r));
	if (r == -EEXIST || r == -ESTALE) {
		code = "PreconditionFailed";
		snprintf(why, sizeof(why), "At least one of the pre-conditions you specified did not hold");
	} else if (r == -ENOSPC || r == -EDQUOT) {
		code = "InsufficientStorage";
	} else if (r == -ENOBUFS) {
		code = "SlowDown";
	} else if (r == -EROFS) {
		code = "AccessDenied";
	} else if (r == -ETIMEDOUT || r == -EIO || r == -ECONNREFUSED || r == -EHOSTUNREACH) {
		code = "ServiceUnavailable";
	}
	dbuf_adds(&b, "\n");
	error_doc(s, code, why, NULL, &b);
	http_resp_body(s->c, b.p, b.len);
	http_resp_end(s->c);
	dbuf_free(&b);
out:
	free(wl.w);
	dbuf_free(&body);
}

struct parts_out {
	struct dbuf *b;
	int last;
};

static int
list_part_cb(void *arg, const struct mpu_part_info *pi)
{
	struct parts_out *o = arg;
	char lm[40];
	fmt_iso8601(pi->mtime, lm, sizeof(lm));
	dbuf_printf(o->b, "<Part><PartNumber>%d</PartNumber><LastModified>%s</LastModified>"
	    "<ETag>&quot;%s&quot;</ETag><Size>%lld</Size></Part>", pi->number, lm,
	    pi->etag, (long long)pi->size);
	o->last = pi->number;
	return 0;
}

/* max-parts / max-uploads: at most 1000, or sends InvalidArgument. */
static int
list_max(struct s3req *s, const char *name)
{
	int bad = 0, max = 1000;
	char *v = qparam(s->req, name, &bad);
	if (v) {
		char *end;
		long n = strtol(v, &end, 10);
		if (!v[0] || *end || n < 0)
			bad = 1;
		else if (n < max)
			max = (int)n;
	}
	free(v);
	if (bad) {
		char msg[96];
		snprintf(msg, sizeof(msg), "%s must be a non-negative integer.", name);
		s3_error(s, 400, "InvalidArgument", msg);
		return -1;
	}
	return max;
}

static void
op_list_parts(struct s3req *s, struct mount *m)
{
	char id[MPU_ID_LEN + 1];
	int max, bad = 0;
	if (upload_id(s, id) < 0 || (max = list_max(s, "max-parts")) < 0)
		return;
	char *mk = qparam(s->req, "part-number-marker", &bad);
	int marker = mk ? atoi(mk) : 0;
	free(mk);
	struct dbuf b;
	dbuf_init(&b, XML_BODY_MAX);
	dbuf_adds(&b, XML_HDR "<ListPartsResult xmlns=\"" S3_NS "\"><Bucket>");
	xml_escape(&b, m->name, strlen(m->name));
	dbuf_adds(&b, "</Bucket><Key>");
	xml_escape(&b, s->key, s->key_len);
	dbuf_printf(&b, "</Key><UploadId>%s</UploadId><PartNumberMarker>%d</PartNumberMarker>",
	    id, marker);
	struct dbuf parts;
	dbuf_init(&parts, XML_BODY_MAX);
	struct parts_out o = {.b = &parts, .last = marker};
	int trunc = 0;
	int r = mpu_list_parts(s->w->mpu, m, s->key, id, marker, max, list_part_cb, &o, &trunc);
	if (r < 0) {
		part_error(s, r);
	} else {
		dbuf_printf(&b, "<NextPartNumberMarker>%d</NextPartNumberMarker><MaxParts>%d</MaxParts>"
		    "<IsTruncated>%s</IsTruncated>", o.last, max, trunc ? "true" : "false");
		dbuf_add(&b, parts.p, parts.len);
		dbuf_adds(&b, "<Initiator><ID>ferry</ID><DisplayName>ferry</DisplayName></Initiator>"
		    OWNER_XML "<StorageClass>STANDARD</StorageClass></ListPartsResult>");
		xml_ok(s, &b);
	}
	dbuf_free(&parts);
	dbuf_free(&b);
}

struct uploads_out {
	struct dbuf *b;
	char *next_key;
	char next_id[MPU_ID_LEN + 1];
};

static int
list_upload_cb(void *arg, const struct mpu_upload_info *ui)
{
	struct uploads_out *o = arg;
	char lm[40];
	fmt_iso8601(ui->initiated, lm, sizeof(lm));
	dbuf_adds(o->b, "<Upload><Key>");
	xml_escape(o->b, ui->key, strlen(ui->key));
	dbuf_printf(o->b, "</Key><UploadId>%s</UploadId>"
	    "<Initiator><ID>ferry</ID><DisplayName>ferry</DisplayName></Initiator>"
	    OWNER_XML "<StorageClass>STANDARD</StorageClass><Initiated>%s</Initiated></Upload>",
	    ui->id, lm);
	free(o->next_key);
	o->next_key = strdup(ui->key);
	memcpy(o->next_id, ui->id, sizeof(o->next_id));
	return o->next_key ? 0 : -ENOMEM;
}

static void
op_list_mpus(struct s3req *s, struct mount *m)
{
	int max, bad = 0;
	if ((max = list_max(s, "max-uploads")) < 0)
		return;
	char *prefix = qparam(s->req, "prefix", &bad);
	char *km = qparam(s->req, "key-marker", &bad);
	char *im = qparam(s->req, "upload-id-marker", &bad);
	char *delim = qparam(s->req, "delimiter", &bad);
	struct dbuf b, ups;
	dbuf_init(&b, XML_BODY_MAX);
	dbuf_init(&ups, XML_BODY_MAX);
	struct uploads_out o = {.b = &ups};
	if (bad) {
		s3_error(s, 400, "InvalidArgument", "Malformed query parameter.");
		goto out;
	}
	if (delim) {
		s3_error(s, 501, "NotImplemented", "ListMultipartUploads takes no delimiter in ferry yet.");
		goto out;
	}
	int trunc = 0;
	int r = mpu_list_uploads(s->w->mpu, m, prefix ? prefix : "", km ? km : "",
	    im ? im : "", max, list_upload_cb, &o, &trunc);
	if (r < 0) {
		s3_error_errno(s, r);
		goto out;
	}
	dbuf_adds(&b, XML_HDR "<ListMultipartUploadsResult xmlns=\"" S3_NS "\"><Bucket>");
	xml_escape(&b, m->name, strlen(m->name));
	dbuf_adds(&b, "</Bucket><KeyMarker>");
	if (km)
		xml_escape(&b, km, strlen(km));
	dbuf_printf(&b, "</KeyMarker><UploadIdMarker>%s</UploadIdMarker><NextKeyMarker>",
	    im && mpu_id_valid(im) ? im : "");
	if (o.next_key)
		xml_escape(&b, o.next_key, strlen(o.next_key));
	dbuf_printf(&b, "</NextKeyMarker><NextUploadIdMarker>%s</NextUploadIdMarker><Prefix>",
	    o.next_key ? o.next_id : "");
	if (prefix)
		xml_escape(&b, prefix, strlen(prefix));
	dbuf_printf(&b, "</Prefix><MaxUploads>%d</MaxUploads><IsTruncated>%s</IsTruncated>",
	    max, trunc ? "true" : "false");
	dbuf_add(&b, ups.p, ups.len);
	dbuf_adds(&b, "</ListMultipartUploadsResult>");
	xml_ok(s, &b);
out:
	free(o.next_key);
	free(prefix);
	free(km);
	free(im);
	free(delim);
	dbuf_free(&ups);
	dbuf_free(&b);
}

/* --- CORS preflight, ACLs ------------------------------------------------ */

/*
 * OPTIONS: what S3 answers a preflight on a bucket with no CORS
 * configuration (ferry has none): 400 BadRequest without Origin or with no
 * valid Access-Control-Request-Method, else 403 AccessForbidden.  No
 * signature is asked for: browsers send preflights without one.
 */
static void
op_preflight(struct s3req *s)
{
	size_t ol = 0, ml = 0;
	const char *origin = http_header_get(s->req, "origin", &ol);
	const char *meth = http_header_get(s->req, "access-control-request-method", &ml);
	if (!origin || ol == 0) {
		s3_error(s, 400, "BadRequest", "Insufficient information. Origin request header needed.");
		return;
	}
	static const char *const methods[] = {"GET", "PUT", "POST", "DELETE", "HEAD"};
	const char *m = NULL;
	for (size_t i = 0; meth && i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strlen(methods[i]) == ml && memcmp(methods[i], meth, ml) == 0)
			m = methods[i];
	if (!m) {
		char msg[128];
		snprintf(msg, sizeof(msg), "Invalid Access-Control-Request-Method: %.*s",
		    meth ? (int)(ml > 64 ? 64 : ml) : 4, meth ? meth : "null");
		s3_error(s, 400, "BadRequest", msg);
		return;
	}
	char extra[128];
	snprintf(extra, sizeof(extra), "<Method>%s</Method><ResourceType>%s</ResourceType>", m,
	    s->key ? "OBJECT" : s->bucket[0] ? "BUCKET" : "SERVICE");
	s3_error_x(s, 403, "AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.", extra);
}

/* GetBucketAcl / GetObjectAcl: the owner has full control, nobody else
 * anything (a fixed document: ferry has no ACLs, tools just read one). */
static void
op_get_acl(struct s3req *s, struct mount *m)
{
	if (s->key) {
		struct ufs_stat st;
		int r = meta_stat(s->w->mc, m, s->key, &st);
		if (r == 0 && st.is_dir)
			r = -ENOENT;
		if (r < 0) {
			s3_error_errno(s, r);
			return;
		}
	}
	static const char doc[] = XML_HDR "<AccessControlPolicy xmlns=\"" S3_NS "\">" OWNER_XML
	    "<AccessControlList><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
	    "xsi:type=\"CanonicalUser\"><ID>ferry</ID><DisplayName>ferry</DisplayName></Grantee>"
	    "<Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>";
	char hdr[96];
	snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\n", s->request_id);
	s->status = 200;
	if (s->is_head) {
		char h2[160];
		snprintf(h2, sizeof(h2), "%sContent-Type: application/xml\r\n", hdr);
		http_resp_start(s->c, 200, h2, (int64_t)sizeof(doc) - 1);
		http_resp_end(s->c);
		return;
	}
	http_resp_simple(s->c, 200, hdr, "application/xml", doc, sizeof(doc) - 1);
}

/* --- routing ------------------------------------------------------------- */

static void
route(struct s3req *s)
{
	struct s3_route rt;
	if (s3_route_parse_vhost(s->req, s->w->cfg.s3_domains,
	    s->w->cfg.ns3_domains, &rt) < 0) {
		s3_error(s, 503, "SlowDown", "Out of memory.");
		return;
	}
	s->op = rt.op;
	s->route_config = rt.config;
	s->is_head = rt.is_head;
	memcpy(s->bucket, rt.bucket, rt.bucket_len + 1);
	s->key = rt.key; /* freed by the handler */
	s->key_len = rt.key_len;
	s->vhost = rt.vhost;
	rt.key = NULL;
	if (rt.status && rt.pre_auth) {
		s3_error(s, rt.status, rt.code, rt.msg);
		return;
	}
	if (rt.is_options) {
		op_preflight(s);
		return;
	}
	if (check_auth(s) < 0)
		return;
	if (rt.status) {
		if (rt.status == 404 && strcmp(rt.code, "NoSuchBucket") == 0) {
			char *k = s->key;
			s->key = NULL;
			s3_error(s, 404, rt.code, rt.msg);
			s->key = k;
		} else {
			s3_error(s, rt.status, rt.code, rt.msg);
		}
		return;
	}
	if (s->op == S3OP_LIST_BUCKETS) {
		op_list_buckets(s);
		return;
	}
	struct mount *m = mounts_get(s->w->mt, s->bucket, rt.bucket_len);
	if (!m) {
		char *k = s->key;
		s->key = NULL; /* NoSuchBucket, whatever the key */
		s3_error(s, 404, "NoSuchBucket", "The specified bucket does not exist.");
		s->key = k;
		return;
	}
	int write = s->op == S3OP_PUT_OBJECT || s->op == S3OP_COPY_OBJECT ||
	    s->op == S3OP_DELETE_OBJECT || s->op == S3OP_DELETE_OBJECTS ||
	    s->op == S3OP_CREATE_MPU || s->op == S3OP_UPLOAD_PART ||
	    s->op == S3OP_UPLOAD_PART_COPY || s->op == S3OP_COMPLETE_MPU ||
	    s->op == S3OP_ABORT_MPU;
	if (write && s->anonymous) {
		/* --s3-anonymous is public read, never public write. */
		s3_error(s, 403, "AccessDenied", "Access Denied: writes must be signed.");
		mount_release(&m);
		return;
	}
	switch (s->op) {
	case S3OP_PUT_OBJECT:
		op_put_object(s, m);
		break;
	case S3OP_COPY_OBJECT:
		op_copy_object(s, m);
		break;
	case S3OP_DELETE_OBJECT:
		op_delete_object(s, m);
		break;
	case S3OP_DELETE_OBJECTS:
		op_delete_objects(s, m);
		break;
	case S3OP_CREATE_MPU:
		op_create_mpu(s, m);
		break;
	case S3OP_UPLOAD_PART:
		op_upload_part(s, m);
		break;
	case S3OP_UPLOAD_PART_COPY:
		op_upload_part_copy(s, m);
		break;
	case S3OP_COMPLETE_MPU:
		op_complete_mpu(s, m);
		break;
	case S3OP_ABORT_MPU:
		op_abort_mpu(s, m);
		break;
	case S3OP_LIST_PARTS:
		op_list_parts(s, m);
		break;
	case S3OP_LIST_MPUS:
		op_list_mpus(s, m);
		break;
	case S3OP_HEAD_BUCKET: {
		char hdr[160];
		snprintf(hdr, sizeof(hdr), "x-amz-request-id: %s\r\nx-amz-bucket-region: %s\r\n",
		    s->request_id, s->w->cfg.s3_region);
		s->status = 200;
		http_resp_start(s->c, 200, hdr, 0);
		http_resp_end(s->c);
		break;
	}
	case S3OP_GET_BUCKET_CONFIG: {
		/* A mount keeps none of these: S3's answer for a bucket
		 * without one. */
		const struct s3_bucket_config *bc = s->route_config;
		if (bc->status != 200) {
			s3_error(s, bc->status, bc->code, bc->msg);
			break;
		}
		struct dbuf b;
		dbuf_init(&b, 4096);
		dbuf_printf(&b, XML_HDR "%s", bc->doc);
		xml_ok(s, &b);
		dbuf_free(&b);
		break;
	}
	case S3OP_GET_BUCKET_LOCATION: {
		struct dbuf b;
		dbuf_init(&b, 4096);
		const char *rg = s->w->cfg.s3_region;
		dbuf_printf(&b, XML_HDR "<LocationConstraint xmlns=\"" S3_NS "\">%s</LocationConstraint>",
		    strcmp(rg, "us-east-1") == 0 ? "" : rg);
		xml_ok(s, &b);
		dbuf_free(&b);
		break;
	}
	case S3OP_LIST_OBJECTS:
	case S3OP_LIST_OBJECTS_V2:
		op_list_objects(s, m, s->op == S3OP_LIST_OBJECTS_V2);
		break;
	case S3OP_GET_BUCKET_ACL:
	case S3OP_GET_OBJECT_ACL:
		op_get_acl(s, m);
		break;
	default:
		op_get_object(s, m);
		break;
	}
	mount_release(&m);
}

void
s3_gateway_handle(struct http_conn *c, const struct http_request *req, void *arg)
{
	struct s3req s;
	memset(&s, 0, sizeof(s));
	s.w = arg;
	s.c = c;
	s.req = req;
	s.op = S3OP_OTHER;
	int64_t t0 = now_ns();
	snprintf(s.request_id, sizeof(s.request_id), "%016" PRIX64,
	    __atomic_add_fetch(&request_counter, 1, __ATOMIC_RELAXED) ^ ((uint64_t)s.w->started << 32));
	route(&s);
	s3_metrics_observe(s.op, now_ns() - t0, s.status);
	LOG_DEBUG("s3 %.*s %.*s -> %d (%s)", (int)req->method_len, req->method,
	    (int)(req->target_len > 200 ? 200 : req->target_len), req->target,
	    s.status, s3_op_name(s.op));
	explicit_bzero(&s.sig, sizeof(s.sig));
	free(s.key);
}
