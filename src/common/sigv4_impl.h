/*
 * sigv4_impl.h: what sigv4.c (signing, the canonical request) and
 * sigv4_verify.c (verification) share and nobody else uses: limits,
 * locale-independent character helpers, the signature computation.
 */
#ifndef FERRY_SIGV4_IMPL_H
#define FERRY_SIGV4_IMPL_H

#include <stdint.h>
#include <string.h>

#include "dbuf.h"

#define SIGV4_ALGO "AWS4-HMAC-SHA256"
#define CANON_MAX (64 * 1024)       /* canonical request */
#define AUTHZ_MAX 8192              /* Authorization header value */
#define SIGNED_HEADERS_MAX 4096     /* SignedHeaders list */
#define HEADER_NAME_MAX 128         /* one signed header name */
#define ACCESS_KEY_MAX 128
#define SCOPE_PART_MAX 64           /* region, service */
#define SECRET_MAX 512
#define QUERY_PARAMS_MAX 1000
#define QUERY_VALUE_MAX 2048        /* one decoded X-Amz-* query value */
#define SKEW_MAX_S (15 * 60)
#define EXPIRES_MAX_S 604800

/* ---------------------------------------------------------------------- */
/* Small character helpers (locale-independent).                           */

static inline int
is_hex(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

static inline int
lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

/* RFC 7230 tchar. */
static inline int
is_tchar(int c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return 1;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static inline int
is_blank(int c)
{
	return c == ' ' || c == '\t';
}

static inline int
mem_ieq(const char *a, size_t an, const char *b, size_t bn)
{
	if (an != bn)
		return 0;
	for (size_t i = 0; i < an; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

static inline int
mem_eq(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);
	return an == bn && memcmp(a, b, an) == 0;
}

static inline int
all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_hex((unsigned char)s[i]))
			return 0;
	return 1;
}

static inline int
all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return n > 0;
}

/* hex(HMAC(kSigning, string-to-sign)), kSigning derived from the secret
 * through date, region, service and "aws4_request".  0 or -E2BIG. */
int sigv4_signature(const char *secret, const char *amz_date,
    const char *date8, const char *region, const char *service,
    const struct dbuf *canon, char sig_hex[65]);
/* The same with kSigning given (sigv4_signing_key). */
int sigv4_signature_with_key(const unsigned char key[32],
    const char *amz_date, const char *date8, const char *region,
    const char *service, const struct dbuf *canon, char sig_hex[65]);
/* YYYYMMDDTHHMMSSZ of unix time t. */
void sigv4_amz_date(int64_t t, char out[17]);

#endif
