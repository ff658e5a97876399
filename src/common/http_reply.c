/*
 * http_reply.c: header lines of HTTP replies (http_reply.h).  Pure.
 */
#include "http_reply.h"

#include <string.h>
#include <strings.h>

int64_t
http_dec(const char *p, size_t n)
{
	if (n == 0 || n > 18)
		return -1;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

static int
blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int
http_hdr_split(const char *p, size_t n, struct http_hdr *h)
{
	memset(h, 0, sizeof(*h));
	while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n'))
		n--;
	if (n == 0)
		return -1;
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		const char *sp = memchr(p, ' ', n);
		if (!sp || (size_t)(p + n - sp) < 4)
			return -1;
		int64_t st = http_dec(sp + 1, 3);
		if (st < 100)
			return -1;
		h->status = (int)st;
		return 0;
	}
	const char *colon = memchr(p, ':', n);
	if (!colon || colon == p)
		return -1;
	const char *v = colon + 1, *end = p + n;
	while (v < end && blank(*v))
		v++;
	while (end > v && blank(end[-1]))
		end--;
	h->name = p;
	h->name_len = (size_t)(colon - p);
	h->value = v;
	h->value_len = (size_t)(end - v);
	return 0;
}

int
http_hdr_is(const struct http_hdr *h, const char *name)
{
	size_t l = strlen(name);
	return h->name && h->name_len == l && strncasecmp(h->name, name, l) == 0;
}

/* The opaque part of an ETag: W/ and the quotes dropped. */
static void
etag_core(const char **v, size_t *vl)
{
	while (*vl && blank(**v)) {
		(*v)++;
		(*vl)--;
	}
	while (*vl && blank((*v)[*vl - 1]))
		(*vl)--;
	if (*vl >= 2 && (*v)[0] == 'W' && (*v)[1] == '/') {
		*v += 2;
		*vl -= 2;
	}
	if (*vl >= 2 && (*v)[0] == '"' && (*v)[*vl - 1] == '"') {
		(*v)++;
		*vl -= 2;
	}
}

int
http_etag_value(const char *v, size_t vl, char *out, size_t cap)
{
	etag_core(&v, &vl);
	if (vl >= cap)
		return -1;
	for (size_t i = 0; i < vl; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return -1; /* no NUL or control byte in a version */
	memcpy(out, v, vl);
	out[vl] = 0;
	return 0;
}

int
http_etag_is(const char *v, size_t vl, const char *etag)
{
	etag_core(&v, &vl);
	return vl == strlen(etag) && memcmp(v, etag, vl) == 0;
}

int
http_content_range(const char *v, size_t vl, int64_t *first, int64_t *last,
    int64_t *total)
{
	*first = *last = *total = -1;
	if (vl < 6 || strncasecmp(v, "bytes ", 6) != 0)
		return -1;
	const char *p = v + 6, *end = v + vl;
	while (p < end && *p == ' ')
		p++;
	const char *slash = memchr(p, '/', (size_t)(end - p));
	if (!slash)
		return -1;
	if (!(slash + 2 == end && slash[1] == '*')) {
		*total = http_dec(slash + 1, (size_t)(end - slash - 1));
		if (*total < 0)
			return -1;
	}
	if (slash - p == 1 && *p == '*')
		return 0;
	const char *dash = memchr(p, '-', (size_t)(slash - p));
	if (!dash)
		return -1;
	*first = http_dec(p, (size_t)(dash - p));
	*last = http_dec(dash + 1, (size_t)(slash - dash - 1));
	if (*first < 0 || *last < *first)
		return -1;
	return 0;
}
