/*
 * http_range.c: the Range request header (RFC 9110 14.2), single ranges
 * only, with S3's rules: a malformed or multi-range header is ignored (the
 * whole object is served); an unsatisfiable one is a 416.  Pure function.
 */
#include "http_range.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/*
 * Parses a Range header against size.  Returns 1 with [*a, *b] for a
 * satisfiable single range, 0 to serve the whole object (absent, malformed,
 * multiple ranges: S3 ignores those), -1 for unsatisfiable (416).
 */
int
http_parse_range(const char *v, size_t vl, int64_t size, int64_t *a, int64_t *b)
{
	if (!v)
		return 0;
	if (vl < 7 || strncasecmp(v, "bytes=", 6) != 0)
		return 0;
	const char *p = v + 6, *end = v + vl;
	if (memchr(p, ',', (size_t)(end - p)))
		return 0;
	int64_t x = -1, y = -1;
	const char *q = p;
	while (q < end && isdigit((unsigned char)*q)) {
		if (x > (INT64_MAX - 9) / 10)
			return 0;
		x = (x < 0 ? 0 : x * 10) + (*q++ - '0');
	}
	if (q >= end || *q != '-')
		return 0;
	q++;
	while (q < end && isdigit((unsigned char)*q)) {
		if (y > (INT64_MAX - 9) / 10)
			return 0;
		y = (y < 0 ? 0 : y * 10) + (*q++ - '0');
	}
	if (q != end)
		return 0;
	if (x < 0) {
		/* suffix: the last y bytes */
		if (y < 0)
			return 0;
		if (y == 0 || size == 0)
			return -1;
		*a = y >= size ? 0 : size - y;
		*b = size - 1;
		return 1;
	}
	if (y >= 0 && y < x)
		return 0; /* invalid: ignored, as S3 does */
	if (x >= size)
		return -1;
	*a = x;
	*b = (y < 0 || y >= size) ? size - 1 : y;
	return 1;
}

