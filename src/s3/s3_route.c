/*
 * s3_route.c: classifies S3 requests (see s3_route.h).  Pure functions,
 * called on connection threads and by the fuzz harness.
 */
#include "s3_route.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/util.h"
#include "../common/vas.h"
#include "../worker/namespace.h"

static int
method_is(const struct http_request *req, const char *m)
{
	size_t l = strlen(m);
	return req->method_len == l && memcmp(req->method, m, l) == 0;
}

static int
has_param(const struct http_request *req, const char *name)
{
	const char *v;
	size_t vl;
	return http_query_get(req->query, req->query_len, name, &v, &vl);
}

/* Sub-resources S3 has that we do not build: any of these -> NotImplemented. */
static void
set_err(struct s3_route *rt, int status, int pre_auth, const char *code, const char *msg)
{
	if (rt->status)
		return; /* the first error found wins */
	rt->status = status;
	rt->pre_auth = pre_auth;
	rt->code = code;
	rt->msg = msg;
}

/* Sub-resources an operation takes: never "unbuilt" for it. */
static const char *const MPU_PARAMS[] = {"uploads", "uploadId", "partNumber", NULL};
static const char *const DELETE_PARAMS[] = {"delete", NULL};

static int
has_unbuilt_subresource(const struct http_request *req, const char *const *except)
{
	static const char *const sub[] = {"policy", "versioning", "tagging",
	    "lifecycle", "cors", "website", "logging", "notification",
	    "replication", "uploads", "uploadId", "versions", "delete",
	    "encryption", "object-lock", "retention", "legal-hold", "torrent",
	    "restore", "select", "attributes", "accelerate", "requestPayment",
	    "analytics", "inventory", "metrics", "ownershipControls",
	    "publicAccessBlock", "intelligent-tiering", "partNumber",
	    "versionId", "policyStatus"};
	for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
		int taken = 0;
		for (const char *const *e = except; e && *e; e++)
			taken |= strcmp(*e, sub[i]) == 0;
		if (!taken && has_param(req, sub[i]))
			return 1;
	}
	return 0;
}

#define NS "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""
static const struct s3_bucket_config CONFIGS[] = {
    {"policy", 404, "NoSuchBucketPolicy", "The bucket policy does not exist", NULL},
    {"policyStatus", 404, "NoSuchBucketPolicy", "The bucket policy does not exist", NULL},
    {"cors", 404, "NoSuchCORSConfiguration", "The CORS configuration does not exist", NULL},
    {"lifecycle", 404, "NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist", NULL},
    {"website", 404, "NoSuchWebsiteConfiguration", "The specified bucket does not have a website configuration", NULL},
    {"tagging", 404, "NoSuchTagSet", "The TagSet does not exist", NULL},
    {"encryption", 404, "ServerSideEncryptionConfigurationNotFoundError", "The server side encryption configuration was not found", NULL},
    {"replication", 404, "ReplicationConfigurationNotFoundError", "The replication configuration was not found", NULL},
    {"object-lock", 404, "ObjectLockConfigurationNotFoundError", "Object Lock configuration does not exist for this bucket", NULL},
    {"ownershipControls", 404, "OwnershipControlsNotFoundError", "The bucket ownership controls were not found", NULL},
    {"publicAccessBlock", 404, "NoSuchPublicAccessBlockConfiguration", "The public access block configuration was not found", NULL},
    {"versioning", 200, NULL, NULL, "<VersioningConfiguration " NS "/>"},
    {"logging", 200, NULL, NULL, "<BucketLoggingStatus " NS "/>"},
    {"notification", 200, NULL, NULL, "<NotificationConfiguration " NS "/>"},
    {"accelerate", 200, NULL, NULL, "<AccelerateConfiguration " NS "/>"},
    {"requestPayment", 200, NULL, NULL, "<RequestPaymentConfiguration " NS "><Payer>BucketOwner</Payer></RequestPaymentConfiguration>"},
};

/* The one bucket configuration a GET of a bucket asks for, or NULL (none,
 * or several: that is no request S3 knows either). */
static const struct s3_bucket_config *
bucket_config(const struct http_request *req)
{
	const struct s3_bucket_config *found = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(CONFIGS); i++)
		if (has_param(req, CONFIGS[i].param)) {
			if (found)
				return NULL;
			found = &CONFIGS[i];
		}
	return found;
}

/* The multipart operation of a request on a key, or S3OP_OTHER. */
static enum s3_op
mpu_op(const struct http_request *req, int is_put, int is_post, int is_delete,
    int is_get)
{
	int uploads = has_param(req, "uploads"), id = has_param(req, "uploadId");
	int part = has_param(req, "partNumber");
	if (is_post && uploads && !id && !part)
		return S3OP_CREATE_MPU;
	if (is_put && id && part && !uploads)
		return http_header_get(req, "x-amz-copy-source", NULL) ?
		    S3OP_UPLOAD_PART_COPY : S3OP_UPLOAD_PART;
	if (is_post && id && !uploads && !part)
		return S3OP_COMPLETE_MPU;
	if (is_delete && id && !uploads && !part)
		return S3OP_ABORT_MPU;
	if (is_get && id && !uploads && !part)
		return S3OP_LIST_PARTS;
	return S3OP_OTHER;
}

static int
is_multipart(const struct http_request *req)
{
	return has_param(req, "uploads") || has_param(req, "uploadId") ||
	    has_param(req, "partNumber");
}

/* The write operations: *rt's op, or an error. */
static void
route_write(const struct http_request *req, struct s3_route *rt)
{
	int is_put = method_is(req, "PUT"), is_post = method_is(req, "POST");
	int is_delete = method_is(req, "DELETE");
	const char *const *params = NULL;
	rt->op = S3OP_OTHER;
	if (has_param(req, "acl")) {
		set_err(rt, 501, 0, "NotImplemented", "ferry keeps no ACLs: they cannot be changed.");
		return;
	}
	if (!rt->key) {
		params = DELETE_PARAMS;
		if (is_post && has_param(req, "delete"))
			rt->op = S3OP_DELETE_OBJECTS;
		else if (is_put && !has_unbuilt_subresource(req, NULL))
			set_err(rt, 501, 0, "NotImplemented", "A bucket is a ferry mount: create one with `ferry mount NAME URI`.");
		else if (is_delete && !has_unbuilt_subresource(req, NULL))
			set_err(rt, 501, 0, "NotImplemented", "A bucket is a ferry mount: remove one with `ferry unmount NAME`.");
	} else if (is_multipart(req)) {
		params = MPU_PARAMS;
		rt->op = mpu_op(req, is_put, is_post, is_delete, 0);
	} else if (is_put) {
		rt->op = http_header_get(req, "x-amz-copy-source", NULL) ?
		    S3OP_COPY_OBJECT : S3OP_PUT_OBJECT;
	} else if (is_delete) {
		rt->op = S3OP_DELETE_OBJECT;
	}
	if (rt->status) {
		/* set above */
	} else if (rt->op == S3OP_OTHER) {
		set_err(rt, 501, 0, "NotImplemented", "A header or query you provided implies functionality that is not implemented.");
	} else if (has_unbuilt_subresource(req, params)) {
		rt->op = S3OP_OTHER; /* PUT ?tagging is no PutObject, not even in the metrics */
		set_err(rt, 501, 0, "NotImplemented", "A header or query you provided implies functionality that is not implemented.");
	}
}


/*
 * The bucket a virtual-host-style Host names: 1 and bucket[0..*len)
 * (lowercased; *len may exceed MOUNT_NAME_MAX, then bucket holds nothing)
 * if the Host is BUCKET.DOMAIN[:port] for a domain, else 0.
 */
static int
vhost_bucket(const struct http_request *req, const char *const *domains,
    int ndomains, char bucket[MOUNT_NAME_MAX + 1], size_t *len)
{
	size_t hl;
	const char *h = http_header_get(req, "host", &hl);
	if (!h || ndomains <= 0 || hl == 0 || h[0] == '[')
		return 0; /* none, or an IPv6 literal */
	const char *colon = memrchr(h, ':', hl);
	if (colon) {
		for (const char *q = colon + 1; q < h + hl; q++)
			if (*q < '0' || *q > '9')
				return 0;
		hl = (size_t)(colon - h);
	}
	if (hl > 0 && h[hl - 1] == '.')
		hl--;
	size_t best = 0;
	for (int i = 0; i < ndomains; i++) {
		size_t dl = strlen(domains[i]);
		if (dl == 0 || hl < dl + 2 || dl <= best || h[hl - dl - 1] != '.' ||
		    strncasecmp(h + hl - dl, domains[i], dl) != 0)
			continue;
		best = dl;
	}
	if (!best)
		return 0;
	*len = hl - best - 1;
	if (*len <= MOUNT_NAME_MAX) {
		for (size_t i = 0; i < *len; i++)
			bucket[i] = (char)tolower((unsigned char)h[i]);
		bucket[*len] = 0;
	}
	return 1;
}

int
s3_route_parse(const struct http_request *req, struct s3_route *rt)
{
	return s3_route_parse_vhost(req, NULL, 0, rt);
}

int
s3_route_parse_vhost(const struct http_request *req,
    const char *const *domains, int ndomains, struct s3_route *rt)
{
	memset(rt, 0, sizeof(*rt));
	rt->op = S3OP_OTHER;
	rt->is_get = method_is(req, "GET");
	rt->is_head = method_is(req, "HEAD");
	rt->is_options = method_is(req, "OPTIONS");
	int is_write = method_is(req, "PUT") || method_is(req, "POST") || method_is(req, "DELETE");

	if (req->path_len == 0 || req->path[0] != '/') {
		set_err(rt, 400, 1, "InvalidURI", "Couldn't parse the specified URI.");
		return 0;
	}
	const char *kraw;
	size_t kl;
	size_t vbl = 0;
	if (vhost_bucket(req, domains, ndomains, rt->bucket, &vbl)) {
		/* Virtual-host style: the bucket from the Host, the whole
		 * path is the key. */
		rt->vhost = 1;
		if (vbl > MOUNT_NAME_MAX) {
			set_err(rt, 400, 1, "InvalidBucketName", "The specified bucket is not valid.");
			return 0;
		}
		rt->bucket_len = vbl;
		kraw = req->path + 1;
		kl = req->path_len - 1;
	} else {
		/* Split "/bucket/key" (still encoded). */
		const char *p = req->path + 1;
		size_t pl = req->path_len - 1;
		const char *slash = memchr(p, '/', pl);
		size_t bl = slash ? (size_t)(slash - p) : pl;
		kraw = slash ? slash + 1 : NULL;
		kl = slash ? pl - bl - 1 : 0;

		char bucket[3 * (MOUNT_NAME_MAX + 1) + 1];
		if (bl > 3 * (MOUNT_NAME_MAX + 1)) {
			set_err(rt, 400, 1, "InvalidBucketName", "The specified bucket is not valid.");
			return 0;
		}
		long dbl = url_decode(p, bl, bucket, 0);
		if (dbl < 0) {
			set_err(rt, 400, 1, "InvalidURI", "Couldn't parse the specified URI.");
			return 0;
		}
		if (dbl > MOUNT_NAME_MAX) {
			set_err(rt, 400, 1, "InvalidBucketName", "The specified bucket is not valid.");
			return 0;
		}
		memcpy(rt->bucket, bucket, (size_t)dbl + 1);
		rt->bucket_len = (size_t)dbl;
	}

	if (kraw && kl > 0) {
		if (kl > 3 * KEY_MAX) {
			set_err(rt, 400, 1, "KeyTooLongError", "Your key is too long.");
			return 0;
		}
		rt->key = malloc(kl + 1);
		if (!rt->key)
			return -ENOMEM;
		long dkl = url_decode(kraw, kl, rt->key, 0);
		if (dkl < 0) {
			set_err(rt, 400, 1, "InvalidURI", "Couldn't parse the specified URI.");
			return 0;
		}
		rt->key_len = (size_t)dkl;
	}

	if (rt->is_options)
		return 0; /* a CORS preflight, whatever the path */
	if (!rt->is_get && !rt->is_head && !is_write) {
		set_err(rt, 405, 1, "MethodNotAllowed", "The specified method is not allowed against this resource.");
		return 0;
	}
	/* The operation is known before auth, so that denials are counted. */
	if (rt->bucket_len == 0)
		rt->op = S3OP_LIST_BUCKETS;
	else if (is_write)
		route_write(req, rt);
	else if (!rt->key && rt->is_get && has_param(req, "uploads"))
		rt->op = S3OP_LIST_MPUS;
	else if (rt->key && rt->is_get && is_multipart(req))
		rt->op = mpu_op(req, 0, 0, 0, 1);
	else if (!rt->key && rt->is_get && (rt->config = bucket_config(req)))
		rt->op = S3OP_GET_BUCKET_CONFIG;
	else if (!rt->key)
		rt->op = rt->is_head ? S3OP_HEAD_BUCKET
		    : has_param(req, "location") ? S3OP_GET_BUCKET_LOCATION
		    : has_param(req, "list-type") ? S3OP_LIST_OBJECTS_V2
		    : S3OP_LIST_OBJECTS;
	else
		rt->op = rt->is_head ? S3OP_HEAD_OBJECT : S3OP_GET_OBJECT;
	if (rt->bucket_len && !is_write && has_param(req, "acl"))
		rt->op = rt->key ? S3OP_GET_OBJECT_ACL : S3OP_GET_BUCKET_ACL;

	if (rt->status) {
		/* route_write's */
	} else if (is_write && rt->bucket_len == 0) {
		rt->op = S3OP_OTHER;
		set_err(rt, 405, 0, "MethodNotAllowed", "The specified method is not allowed against this resource.");
	} else if (!is_write && has_unbuilt_subresource(req,
	    rt->op == S3OP_LIST_MPUS || rt->op == S3OP_LIST_PARTS ? MPU_PARAMS :
	    rt->op == S3OP_GET_BUCKET_CONFIG ? (const char *const[]){rt->config->param, NULL} :
	    NULL)) {
		rt->op = S3OP_OTHER;
		set_err(rt, 501, 0, "NotImplemented", "A header or query you provided implies functionality that is not implemented.");
	} else if (rt->bucket_len == 0 && rt->key) {
		set_err(rt, 400, 0, "InvalidBucketName", "The specified bucket is not valid.");
	} else if (rt->bucket_len && !mount_name_valid(rt->bucket, rt->bucket_len)) {
		set_err(rt, 404, 0, "NoSuchBucket", "The specified bucket does not exist.");
	} else if (rt->key) {
		int kr = key_validate(rt->key, rt->key_len);
		if (kr == -ENAMETOOLONG)
			set_err(rt, 400, 0, "KeyTooLongError", "Your key is too long.");
		else if (kr < 0)
			set_err(rt, 400, 0, "InvalidArgument", "Invalid object key: it must be valid UTF-8 with no control characters and no '.', '..' or empty path segments.");
	}
	return 0;
}

void
s3_route_free(struct s3_route *rt)
{
	free(rt->key);
	rt->key = NULL;
}
