/*
 * http_parse.h: HTTP/1.1 request-head parser.  Zero-copy: every string in
 * struct http_request points into the caller's buffer.  Bounded: a head
 * larger than HTTP_MAX_HEAD, a request line longer than HTTP_MAX_LINE or
 * more than HTTP_MAX_HEADERS header fields is rejected with a status code,
 * never grown into.
 */
#ifndef FERRY_HTTP_PARSE_H
#define FERRY_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEAD (64 * 1024) /* request line + all headers */
#define HTTP_MAX_LINE (16 * 1024) /* request line */
#define HTTP_MAX_HEADERS 100

struct http_header {
	const char *name;
	size_t name_len;
	const char *value; /* leading/trailing whitespace trimmed */
	size_t value_len;
};

struct http_request {
	const char *method;
	size_t method_len;
	const char *target; /* raw request-target, e.g. "/bucket/key?x=1" */
	size_t target_len;
	const char *path; /* target up to '?' (still percent-encoded) */
	size_t path_len;
	const char *query; /* after '?', or "" (len 0) */
	size_t query_len;
	int version_minor; /* HTTP/1.x */
	struct http_header headers[HTTP_MAX_HEADERS];
	int nheaders;
	size_t head_len;        /* bytes of the head, including the final CRLFCRLF */
	int64_t content_length; /* -1 if absent */
	int chunked;            /* Transfer-Encoding: chunked */
	int keep_alive;         /* from version and Connection header */
	int expect_continue;    /* Expect: 100-continue */
};

/*
 * Parses the request head in buf[0..len).
 * Returns the head length (> 0) when a complete head was parsed,
 * 0 when more bytes are needed (and len is still under the limits),
 * or a negative HTTP status on error: -400 malformed, -414 request line too
 * long, -431 headers too large or too many, -501 unsupported transfer coding,
 * -505 unsupported HTTP version.
 */
int http_parse_request(const char *buf, size_t len, struct http_request *req);

/* Case-insensitive header lookup; NULL if absent.  *vlen gets the length. */
const char *http_header_get(const struct http_request *req, const char *name,
    size_t *vlen);

/*
 * Query-string parameter lookup on the raw (still encoded) query.  Returns
 * 1 and sets *val and *vlen (raw, percent-encoded) if present (vlen 0 for "?a"),
 * 0 if absent.
 */
int http_query_get(const char *query, size_t qlen, const char *name,
    const char **val, size_t *vlen);

/* Reason phrase for a status code ("OK", "Not Found", ...). */
const char *http_reason(int status);

#endif
