/*
 * objkey.c: object identity, version and ETag (objkey.h).  Pure functions.
 * Invariant: two versions of one object never share a version id, so their
 * pages never share keys (the size is mixed in, in case a store reuses an
 * ETag across sizes).
 */
#include "objkey.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../common/util.h"

uint64_t
objkey_id(uint64_t mount_ident, const char *path)
{
	return hash64(path, strlen(path), mount_ident);
}

void
objkey_etag(const struct ufs_stat *st, char *out, size_t n)
{
	if (st->etag[0])
		snprintf(out, n, "%s", st->etag);
	else
		snprintf(out, n, "%" PRIx64 "-%" PRIx64, (uint64_t)st->mtime, (uint64_t)st->size);
}

int
objkey_etag_is(const struct ufs_stat *st, const char *etag, size_t n)
{
	char cur[UFS_ETAG_MAX];
	objkey_etag(st, cur, sizeof(cur));
	return strlen(cur) == n && memcmp(cur, etag, n) == 0;
}

uint64_t
objkey_version(const struct ufs_stat *st)
{
	char e[UFS_ETAG_MAX];
	objkey_etag(st, e, sizeof(e));
	return hash64(e, strlen(e), (uint64_t)st->size * 0x9e3779b97f4a7c15ULL + 1);
}
