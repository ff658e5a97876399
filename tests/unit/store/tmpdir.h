/*
 * tmpdir.h: a temporary directory for a page store test, and its removal
 * with everything in it (the unit tests of src/store/ share these).
 */
#ifndef FERRY_TEST_TMPDIR_H
#define FERRY_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A new directory /tmp/ferry-TAG-XXXXXX (malloc'd), or NULL. */
static inline char *
tmpdir_make(const char *tag)
{
	char tmpl[64];
	snprintf(tmpl, sizeof(tmpl), "/tmp/ferry-%s-XXXXXX", tag);
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

static inline int
tmpdir_rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(p);
	return 0;
}

/* Removes dir and everything under it, and frees dir (NULL: nothing). */
static inline void
tmpdir_remove(char *dir)
{
	if (dir) {
		nftw(dir, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS);
		free(dir);
	}
}

#endif
