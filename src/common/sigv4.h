/*
 * sigv4.h: AWS Signature Version 4 for S3, both directions.
 *
 * Signing (sigv4_sign) is used by the s3:// under-store client.  Verifying
 * (sigv4_verify) is used by the S3 gateway for the Authorization header
 * form and for presigned URLs (X-Amz-Algorithm=AWS4-HMAC-SHA256 in the
 * query).  Both build the canonical request with the same code, so a bug in
 * one shows in the other's tests; both are tested against AWS's published
 * examples and against botocore and curl --aws-sigv4 on generated requests.
 * Pure functions; thread-safe.
 */
#ifndef FERRY_SIGV4_H
#define FERRY_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"
#include "../http/http_parse.h"

#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_SHA256                                                    \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct sigv4_hdr {
	const char *name; /* any case; lowercased in the canonical form */
	const char *value;
};

struct sigv4_sign_req {
	const char *method;       /* "GET" */
	const char *host;         /* Host header value, "s3.amazonaws.com:443" form as sent */
	const char *path;         /* URI-encoded path as it goes on the wire, "/bucket/a%20b" */
	const char *query;        /* raw query as on the wire (encoded), "" if none */
	const struct sigv4_hdr *headers; /* other headers to sign (e.g. range); may be NULL */
	int nheaders;
	const char *payload_hash; /* hex SHA-256 of body, or SIGV4_UNSIGNED_PAYLOAD */
	const char *region;       /* "us-east-1" */
	const char *service;      /* "s3" */
	const char *access_key;
	const char *secret_key;
	const char *session_token; /* NULL if none; sent and signed as x-amz-security-token */
	int64_t now;              /* unix seconds */
};

/*
 * Produces the Authorization header value into *authz and the x-amz-date
 * value (YYYYMMDDTHHMMSSZ) into amz_date.  The caller sends headers host,
 * x-amz-date, x-amz-content-sha256 (= payload_hash), x-amz-security-token
 * (if any) and the given extra headers, exactly as signed.  0 or -errno.
 */
int sigv4_sign(const struct sigv4_sign_req *r, struct dbuf *authz,
    char amz_date[17]);

/* Verification outcome; each maps to one S3 error code. */
enum sigv4_status {
	SIGV4_OK = 0,
	SIGV4_ANONYMOUS,     /* no signature at all */
	SIGV4_MALFORMED,     /* AuthorizationHeaderMalformed / AuthorizationQueryParametersError */
	SIGV4_UNKNOWN_KEY,   /* InvalidAccessKeyId */
	SIGV4_MISMATCH,      /* SignatureDoesNotMatch */
	SIGV4_SKEWED,        /* RequestTimeTooSkewed (header form, > 15 min) */
	SIGV4_EXPIRED,       /* AccessDenied: presigned URL expired */
	SIGV4_UNSUPPORTED,   /* SigV2 or other algorithm: AccessDenied */
	SIGV4_BAD_PAYLOAD_HASH, /* XAmzContentSHA256Mismatch / InvalidArgument */
	SIGV4_WRONG_REGION,  /* AuthorizationHeaderMalformed / AuthorizationQueryParametersError, naming the region */
	SIGV4_NO_DATE,       /* AccessDenied: no valid x-amz-date or Date (header form) */
};

/* "20130524/us-east-1/s3/aws4_request" at its longest, NUL included. */
#define SIGV4_SCOPE_MAX (8 + 1 + 64 + 1 + 64 + 1 + 12 + 1)

/* What sigv4_verify_region found out beyond the status. */
struct sigv4_info {
	int presigned;  /* the query-string form (X-Amz-Algorithm) was used */
	char region[65]; /* the credential scope's region, if one was parsed */
	/*
	 * Set (have_key = 1) only when an Authorization-header signature
	 * verified (SIGV4_OK): what the chunk signatures of a
	 * STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] body chain from
	 * (sigv4_chunk_signature).  signing_key is derived from the secret:
	 * explicit_bzero the struct once the body is read.
	 */
	int have_key;
	char seed_signature[65];  /* the request's signature, lowercase hex */
	char amz_date[17];        /* the request time, YYYYMMDDTHHMMSSZ */
	char scope[SIGV4_SCOPE_MAX]; /* date/region/service/aws4_request */
	unsigned char signing_key[32];
};

/* Returns the secret for an access key, or NULL if unknown. */
typedef const char *(*sigv4_secret_fn)(void *arg, const char *access_key);

/*
 * Verifies the request's signature.  The body is not read: the payload hash
 * is taken from x-amz-content-sha256 (header form; required by S3) or is
 * UNSIGNED-PAYLOAD (presigned).  If errmsg is set, it gets a short static
 * message for the S3 error document.
 */
enum sigv4_status sigv4_verify(const struct http_request *req, int64_t now,
    sigv4_secret_fn secret_fn, void *arg, const char **errmsg);
/*
 * sigv4_verify that also requires the credential scope's region to be
 * region (unless NULL): another is SIGV4_WRONG_REGION, checked before the
 * date and the signature, as S3 does.  info (may be NULL) gets the form
 * used and the scope's region.
 */
enum sigv4_status sigv4_verify_region(const struct http_request *req,
    int64_t now, const char *region, sigv4_secret_fn secret_fn, void *arg,
    const char **errmsg, struct sigv4_info *info);

/*
 * kSigning = HMAC chain from "AWS4" + secret through date8 (YYYYMMDD),
 * region, service and "aws4_request".  0, or -E2BIG for an overlong secret.
 */
int sigv4_signing_key(const char *secret, const char *date8,
    const char *region, const char *service, unsigned char key[32]);

/*
 * Chunked uploads (S3's "Transferring Payload in Multiple Chunks"): each
 * chunk's signature chains from the previous one (the request's seed
 * signature for the first):
 *   hex(HMAC(key, "AWS4-HMAC-SHA256-PAYLOAD\n" amz_date "\n" scope "\n"
 *       prev_sig "\n" hex(SHA256("")) "\n" hex(data_sha256)))
 * where data_sha256 is the SHA-256 of the chunk's data (the final chunk's
 * is empty).  The trailer of a ...-PAYLOAD-TRAILER body is signed after
 * the final chunk:
 *   hex(HMAC(key, "AWS4-HMAC-SHA256-TRAILER\n" amz_date "\n" scope "\n"
 *       prev_sig "\n" hex(trailer_sha256)))
 * with trailer_sha256 over the trailer lines as "name:value\n" each.
 * amz_date, scope and key as in struct sigv4_info; prev_sig is 64 hex
 * digits.  Signing and verifying alike; pure.
 */
void sigv4_chunk_signature(const unsigned char key[32], const char *amz_date,
    const char *scope, const char *prev_sig,
    const unsigned char data_sha256[32], char out[65]);
void sigv4_trailer_signature(const unsigned char key[32],
    const char *amz_date, const char *scope, const char *prev_sig,
    const unsigned char trailer_sha256[32], char out[65]);

/*
 * Builds the canonical request for the given pieces (exposed for tests).
 * signed_headers is the ';'-separated lowercased list; headers supply the
 * values.  Query and path are raw (encoded) as on the wire; they are
 * normalised (decode, re-encode per RFC 3986, sort) as S3 does.
 * exclude_signature drops X-Amz-Signature from the query (presigned).
 */
int sigv4_canonical_request(struct dbuf *out, const char *method,
    const char *path, size_t path_len, const char *query, size_t query_len,
    const struct http_header *headers, int nheaders,
    const char *signed_headers, size_t sh_len, const char *payload_hash,
    int exclude_signature);

#endif
