/* http_range.h: parsing of the Range request header (see http_range.c). */
#ifndef FERRY_HTTP_RANGE_H
#define FERRY_HTTP_RANGE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parses a Range header value v[0..vl) (v may be NULL: absent) against an
 * object of size bytes.  Returns 1 with the inclusive byte range [*a, *b]
 * for one satisfiable range, 0 to serve the whole object (absent,
 * malformed, several ranges), -1 if unsatisfiable (416).
 */
int http_parse_range(const char *v, size_t vl, int64_t size, int64_t *a, int64_t *b);

#endif
