/*
 * ufs.c: maps a mount URI's scheme to its under-store backend (ufs.h).
 * A fixed table, read-only after compile time; safe from any thread.
 */
#include "ufs.h"

#include <string.h>
#include <strings.h>

static const struct ufs_ops *const backends[] = {&ufs_file_ops, &ufs_s3_ops};

const struct ufs_ops *
ufs_lookup(const char *uri, const char **root)
{
	if (!uri)
		return NULL;
	const char *sep = strstr(uri, "://");
	if (!sep)
		return NULL;
	size_t slen = (size_t)(sep - uri);
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		const char *name = backends[i]->scheme;
		if (strlen(name) == slen && strncasecmp(uri, name, slen) == 0) {
			if (root)
				*root = sep + 3;
			return backends[i];
		}
	}
	return NULL;
}
