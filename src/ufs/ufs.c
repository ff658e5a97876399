/*
 * ufs.c: maps a mount URI's scheme to its under-store backend (ufs.h), and
 * keeps each thread's last under-store error message.  The table is fixed,
 * read-only after compile time; the message is thread-local: both safe
 * from any thread.
 */
#include "ufs.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define UFS_ERR_MAX 512

static _Thread_local char last_err[UFS_ERR_MAX];

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

const struct ufs_ops *
ufs_backend(int i)
{
	if (i < 0 || (size_t)i >= sizeof(backends) / sizeof(backends[0]))
		return NULL;
	return backends[i];
}

const char *
ufs_last_error(void)
{
	return last_err;
}

void
ufs_clear_error(void)
{
	last_err[0] = 0;
}

void
ufs_set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_err, sizeof(last_err), fmt, ap);
	va_end(ap);
}
