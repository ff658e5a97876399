/*
 * http_reply.h: reading an HTTP reply's header lines as libcurl hands them
 * over (one line at a time, with its CRLF, not NUL-terminated), for every
 * HTTP client in ferry: the s3:// backend, the router's peer reads, and
 * libferry.  Splitting a line, comparing an ETag and parsing Content-Range
 * are written once here.  Pure functions; any thread.
 */
#ifndef FERRY_HTTP_REPLY_H
#define FERRY_HTTP_REPLY_H

#include <stddef.h>
#include <stdint.h>

/* One header line, "Name: value".  The value has its blanks and CRLF
 * trimmed; a status line ("HTTP/1.1 200 OK") sets *status instead. */
struct http_hdr {
	const char *name, *value;
	size_t name_len, value_len;
	int status; /* > 0 for a status line: the code */
};

/* 0 with *h filled (a header or a status line), -1 for anything else (the
 * blank line that ends the head, garbage). */
int http_hdr_split(const char *p, size_t n, struct http_hdr *h);
/* Is the header's name `name` (case-insensitive)? */
int http_hdr_is(const struct http_hdr *h, const char *name);
/* The ETag value without W/ and quotes, into out (cap bytes).  0, or -1
 * if it does not fit or holds a control byte (NUL included). */
int http_etag_value(const char *v, size_t vl, char *out, size_t cap);
/* Does the ETag value v (quoted or not, weak or not) name etag? */
int http_etag_is(const char *v, size_t vl, const char *etag);
/* "bytes a-b/total" (total "*": -1) or "bytes * /total" (a, b: -1).
 * 0, or -1 if malformed. */
int http_content_range(const char *v, size_t vl, int64_t *first,
    int64_t *last, int64_t *total);
/* A non-negative decimal of at most 18 digits, or -1. */
int64_t http_dec(const char *p, size_t n);

#endif
