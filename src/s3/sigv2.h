/*
 * sigv2.h: verification of AWS Signature Version 2 for the S3 gateway, in
 * the Authorization header ("AWS AKID:base64(HMAC-SHA1)") and in presigned
 * URLs (AWSAccessKeyId, Signature, Expires), as S3 and S3-compatible
 * servers still accept them: boto3's generate_presigned_url signs with it
 * unless told otherwise, and so do s3fs, older SDKs and tools.
 *
 * String to sign (AWS S3 developer guide, "Signing and Authenticating REST
 * Requests"): method, Content-MD5, Content-Type, Date (empty when
 * x-amz-date is sent; the Expires value for presigned URLs), the x-amz-*
 * headers (lowercased, sorted, values trimmed, repeats joined by ','; for
 * presigned URLs also x-amz-* query parameters, which botocore moves there)
 * and the resource: the path as sent plus the S3 sub-resources and
 * response-* overrides of the query, sorted, values decoded.  A
 * bucket-level path ("/bucket") is also taken as "/bucket/" (botocore's
 * spelling) and, for ListObjectsV2, as "/bucket?list-type=2" (Debian's
 * botocore 1.29).  Pure functions; thread-safe.
 */
#ifndef FERRY_SIGV2_H
#define FERRY_SIGV2_H

#include <stdint.h>

#include "../common/dbuf.h"
#include "../common/sigv4.h"
#include "../http/http_parse.h"

enum sigv2_status {
	SIGV2_OK = 0,
	SIGV2_MALFORMED,   /* header: 400 InvalidArgument; query: 403 AccessDenied */
	SIGV2_UNKNOWN_KEY, /* 403 InvalidAccessKeyId */
	SIGV2_MISMATCH,    /* 403 SignatureDoesNotMatch */
	SIGV2_SKEWED,      /* 403 RequestTimeTooSkewed (header form, > 15 min) */
	SIGV2_EXPIRED,     /* 403 AccessDenied "Request has expired" */
	SIGV2_NO_DATE,     /* 403 AccessDenied: no valid Date or x-amz-date */
};

/* 1 if the request carries a SigV2 signature (an "AWS " Authorization,
 * or AWSAccessKeyId / Signature in the query without X-Amz-Algorithm). */
int sigv2_present(const struct http_request *req);

/*
 * Verifies the request's SigV2 signature against secret_fn's secret.
 * errmsg (may be NULL) gets S3's message for the error document;
 * *presigned (may be NULL) whether the query form was used.
 */
enum sigv2_status sigv2_verify(const struct http_request *req, int64_t now,
    sigv4_secret_fn secret_fn, void *arg, const char **errmsg,
    int *presigned);
/*
 * The same for a request whose bucket vbucket came from the Host
 * (virtual-host style; NULL: path-style): its resource is "/vbucket"
 * followed by the path, as S3 signs it.
 */
enum sigv2_status sigv2_verify_vhost(const struct http_request *req,
    const char *vbucket, int64_t now, sigv4_secret_fn secret_fn, void *arg,
    const char **errmsg, int *presigned);

/*
 * The string to sign of req into out.  date is the Date line's value (the
 * Expires parameter for presigned URLs); presigned adds the x-amz-* query
 * parameters to the x-amz-* headers.  0, or -EINVAL / -E2BIG.  Exposed
 * for tests.
 */
int sigv2_string_to_sign(struct dbuf *out, const struct http_request *req,
    const char *date, int presigned);

#endif
