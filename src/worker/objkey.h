/*
 * objkey.h: what names an object and its bytes, in one place: an object's
 * identity (its mount's identity and its path), its version (the ETag, or
 * for files mtime and size), the ETag string clients see, and the
 * arithmetic that cuts a byte range into pages.  A leaf: the metadata
 * cache, the reader, the router, the local-fd handout and objget all use
 * it, and it uses none of them.  Pure functions; any thread.
 */
#ifndef FERRY_OBJKEY_H
#define FERRY_OBJKEY_H

#include <stddef.h>
#include <stdint.h>

#include "../store/pagestore.h"
#include "../ufs/ufs.h"

/* An object's identity: stable across versions and restarts. */
uint64_t objkey_id(uint64_t mount_ident, const char *path);
/* A version's identity (ETag and size mixed). */
uint64_t objkey_version(const struct ufs_stat *st);
/* The version as an ETag (without quotes): the store's, or for files one
 * derived from mtime and size.  out: UFS_ETAG_MAX bytes. */
void objkey_etag(const struct ufs_stat *st, char *out, size_t n);
/* Is etag (n bytes, without quotes) this version's ETag? */
int objkey_etag_is(const struct ufs_stat *st, const char *etag, size_t n);

static inline struct page_key
objkey_page(uint64_t obj, uint64_t ver, int64_t idx)
{
	struct page_key k = {obj, ver, (uint64_t)idx};
	return k;
}

/*
 * A byte range [off, off + len) over pages of size psize: pages first..last,
 * and for each page i the bytes [a, a + n) of it that the range covers.
 * len > 0.
 */
struct page_span {
	int64_t first, last;
	int64_t off, end; /* the range */
	int64_t psize;
};

static inline struct page_span
page_span(int64_t off, int64_t len, int64_t psize)
{
	struct page_span s = {off / psize, (off + len - 1) / psize, off,
	    off + len, psize};
	return s;
}

/* The part of page i in the span: offset a in the page, n bytes. */
static inline void
page_span_part(const struct page_span *s, int64_t i, int64_t *a, int64_t *n)
{
	int64_t pstart = i * s->psize;
	int64_t b = (s->end < pstart + s->psize ? s->end : pstart + s->psize) - pstart;
	*a = s->off > pstart ? s->off - pstart : 0;
	*n = b - *a;
}

/* Length of page i of an object of size bytes (0 past the end). */
static inline int64_t
page_len(int64_t size, int64_t psize, int64_t i)
{
	int64_t rem = size - i * psize;
	return rem <= 0 ? 0 : rem < psize ? rem : psize;
}

/* Pages of an object of size bytes. */
static inline int64_t
page_count(int64_t size, int64_t psize)
{
	return (size + psize - 1) / psize;
}

#endif
