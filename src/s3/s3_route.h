/*
 * s3_route.h: classification of an S3 request (pure: no I/O, no state),
 * separate from its execution so that it can be fuzzed on its own.
 * Decodes bucket and key from the request-target (path-style) or from the
 * Host and the path (virtual-host style), picks the operation, and
 * decides the errors that need no lookup.
 */
#ifndef FERRY_S3_ROUTE_H
#define FERRY_S3_ROUTE_H

#include <stddef.h>

#include "../http/http_parse.h"
#include "../worker/mounts.h"

/* The operations the gateway tells apart (also the metrics' labels). */
enum s3_op {
	S3OP_LIST_BUCKETS,
	S3OP_HEAD_BUCKET,
	S3OP_GET_BUCKET_LOCATION,
	S3OP_LIST_OBJECTS,
	S3OP_LIST_OBJECTS_V2,
	S3OP_HEAD_OBJECT,
	S3OP_GET_OBJECT,
	S3OP_GET_BUCKET_ACL,
	S3OP_GET_OBJECT_ACL,
	S3OP_PUT_OBJECT,
	S3OP_COPY_OBJECT,
	S3OP_DELETE_OBJECT,
	S3OP_DELETE_OBJECTS,
	S3OP_CREATE_MPU,      /* POST KEY?uploads */
	S3OP_UPLOAD_PART,     /* PUT KEY?partNumber=N&uploadId=I */
	S3OP_UPLOAD_PART_COPY, /* the same with x-amz-copy-source */
	S3OP_COMPLETE_MPU,    /* POST KEY?uploadId=I */
	S3OP_ABORT_MPU,       /* DELETE KEY?uploadId=I */
	S3OP_LIST_PARTS,      /* GET KEY?uploadId=I */
	S3OP_LIST_MPUS,       /* GET BUCKET?uploads */
	S3OP_GET_BUCKET_CONFIG, /* GET BUCKET?policy, ?cors, ...: none is kept */
	S3OP_OTHER,
	S3OP__N
};

/*
 * A bucket configuration S3 has and a ferry mount never holds (policy,
 * CORS, lifecycle, ...): a GET of it answers what S3 answers for a bucket
 * without one, either an error (status 404, code, msg) or a document
 * (status 200, doc: the XML element, empty).
 */
struct s3_bucket_config {
	const char *param;
	int status;
	const char *code, *msg;
	const char *doc;
};

struct s3_route {
	enum s3_op op;
	const struct s3_bucket_config *config; /* S3OP_GET_BUCKET_CONFIG's */
	int is_get, is_head;
	int is_options; /* a CORS preflight: answered without auth */
	char bucket[MOUNT_NAME_MAX + 1]; /* decoded; "" for the service */
	size_t bucket_len;
	char *key; /* decoded, malloc'd (s3_route_free); NULL for bucket/service requests */
	size_t key_len;
	int vhost; /* the bucket came from the Host (virtual-host style) */
	/* An error to answer instead of the operation (status 0: none).
	 * pre_auth errors are answered before the signature is checked. */
	int status;
	int pre_auth;
	const char *code;
	const char *msg;
};

/* Fills *rt (path-style only).  Returns 0, or -ENOMEM. */
int s3_route_parse(const struct http_request *req, struct s3_route *rt);

/*
 * s3_route_parse with virtual-host addressing: a Host of
 * BUCKET.DOMAIN[:port] (any case, a trailing '.' allowed) for one of the
 * ndomains domains (lowercase, no port; the longest that matches wins)
 * names bucket BUCKET, lowercased, and the whole path is the key ("/" is
 * the bucket itself); rt->vhost is then set.  Any other Host (DOMAIN
 * itself, an address, another name, none) is path-style.
 */
int s3_route_parse_vhost(const struct http_request *req,
    const char *const *domains, int ndomains, struct s3_route *rt);
void s3_route_free(struct s3_route *rt);

#endif
