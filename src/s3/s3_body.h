/*
 * s3_body.h: an S3 upload body (PutObject, UploadPart), decoded and
 * verified as it streams.  Pure: no I/O of its own.  The caller reads the
 * request body (http_body_read) and feeds the raw bytes in; the decoded
 * payload comes out through a callback, piece by piece, never buffered
 * whole; at the end the verdict is success or S3's error.
 *
 * From the request head, s3_body_new decides:
 *  - the framing: a plain body, or aws-chunked when x-amz-content-sha256
 *    is STREAMING-UNSIGNED-PAYLOAD-TRAILER (unsigned chunks, then trailer
 *    headers declared by x-amz-trailer), STREAMING-AWS4-HMAC-SHA256-PAYLOAD
 *    (every chunk signed, chained from the request's seed signature) or
 *    STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER (signed chunks and a signed
 *    trailer); x-amz-decoded-content-length is then the payload's size;
 *  - the checks: x-amz-content-sha256 as a hex SHA-256 of the body
 *    (XAmzContentSHA256Mismatch), Content-MD5 (InvalidDigest, BadDigest),
 *    one x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256} header or
 *    trailer (BadDigest), x-amz-sdk-checksum-algorithm, the size limit
 *    (EntityTooLarge), MissingContentLength and IncompleteBody.
 * Head errors are answered before a byte is read (or a 100 Continue sent).
 *
 * Verification is streaming: the sink sees payload bytes before the
 * checks that cover them are complete (a chunk's signature is checked at
 * the chunk's end, digests at the body's end).  The caller must treat
 * what it wrote as provisional and commit it only when s3_body_finish
 * returns 0.
 *
 * Bounded memory whatever the peer sends: one framing line (chunk header
 * or trailer) of at most S3_BODY_LINE_MAX bytes, S3_BODY_TRAILERS_MAX
 * trailer lines, fixed digest states.  Not thread-safe: one body, one
 * thread.
 */
#ifndef FERRY_S3_BODY_H
#define FERRY_S3_BODY_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sigv4.h"
#include "../http/http_parse.h"

#define S3_BODY_MAX_DEFAULT (5LL << 30) /* S3's largest single PUT */
#define S3_BODY_LINE_MAX 4096           /* one chunk header or trailer line */
#define S3_BODY_TRAILERS_MAX 8          /* trailer lines per body */

struct s3_body;

struct s3_body_cfg {
	int64_t max_size; /* payload bytes at most (EntityTooLarge); 0: 5 GiB */
	/*
	 * The request's verified SigV4 header signature: sigv4_verify_region's
	 * info after SIGV4_OK, or NULL.  Signed chunks (STREAMING-AWS4-HMAC-
	 * SHA256-PAYLOAD[-TRAILER]) are verified against sig->signing_key from
	 * sig->seed_signature.  Without a key they cannot be: such a body is
	 * then refused when auth_checked is set (the gateway checks
	 * signatures, this request's was not a header signature), and decoded
	 * without chunk verification when it is not (a gateway without
	 * credentials, where nothing is verified).
	 */
	const struct sigv4_info *sig;
	int auth_checked;
};

/* S3's answer to a refused body. */
struct s3_body_err {
	int status;       /* HTTP status: 400, 403, 411, 501, 500 */
	const char *code; /* "BadDigest", ...; NULL while there is no error */
	char msg[256];
	char extra[512];  /* more elements for the error document, XML-safe
	                     ("<ExpectedDigest>...</ExpectedDigest>"), or "" */
};

/*
 * The payload, in order, as it is decoded: 0 to go on, a negative errno
 * to stop (s3_body_feed then returns it).
 */
typedef int (*s3_body_sink_fn)(void *arg, const void *p, size_t n);

/*
 * Reads the request head.  0 and *out; -EBADMSG when S3 refuses the
 * request from its head alone (*err says how); -ENOMEM.  req must stay
 * valid until s3_body_new returns (what is needed later is copied).
 */
int s3_body_new(struct s3_body **out, const struct http_request *req,
    const struct s3_body_cfg *cfg, s3_body_sink_fn sink, void *arg,
    struct s3_body_err *err);

/*
 * The next raw body bytes (after HTTP's own framing: what http_body_read
 * returns), any split.  0; -EBADMSG when the body is refused
 * (s3_body_error); or the sink's negative return.  After an error every
 * call returns the same error.
 */
int s3_body_feed(struct s3_body *b, const void *p, size_t n);

/*
 * The raw body ended (http_body_read returned 0).  0 when the body is
 * complete and every check passed; -EBADMSG (s3_body_error) otherwise.
 */
int s3_body_finish(struct s3_body *b);

/* The error after a negative return (code NULL if there was none). */
const struct s3_body_err *s3_body_error(const struct s3_body *b);

/* Payload bytes emitted so far. */
int64_t s3_body_size(const struct s3_body *b);
/* The payload size the head announced (Content-Length, or
 * x-amz-decoded-content-length), or -1 (a chunked plain body). */
int64_t s3_body_expected_size(const struct s3_body *b);

/* After s3_body_finish returned 0: the payload's MD5, raw and as the
 * lowercase hex of a single PUT's ETag. */
void s3_body_md5(const struct s3_body *b, unsigned char md5[16]);
void s3_body_etag(const struct s3_body *b, char hex[33]);

/*
 * After s3_body_finish returned 0: the verified x-amz-checksum-* (header
 * or trailer) as S3 echoes it, e.g. "x-amz-checksum-crc32" and
 * "DUoRhQ==".  1 and *name, value (base64, NUL-terminated); 0 if the
 * request carried none.
 */
int s3_body_checksum(const struct s3_body *b, const char **name,
    char value[64]);

void s3_body_free(struct s3_body **b);

/*
 * The Content-Encoding S3 stores for the object: the request's, with the
 * aws-chunked coding taken out ("aws-chunked,gzip" -> "gzip").  Writes
 * out (cap bytes, NUL-terminated); returns its length, 0 if none is left,
 * or -E2BIG.
 */
int s3_body_stored_encoding(const struct http_request *req, char *out,
    size_t cap);

#endif
