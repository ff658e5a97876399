/*
 * namespace.c: key and path validation (see namespace.h).  Pure functions.
 */
#include "namespace.h"

#include <errno.h>
#include <string.h>

#include "../common/util.h"

static int
segments_ok(const char *s, size_t len, int allow_trailing_partial)
{
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '/')
			continue;
		size_t sl = i - start;
		int last = i == len;
		if (sl == 0 && !(last && allow_trailing_partial))
			return 0;
		if ((sl == 1 && s[start] == '.') ||
		    (sl == 2 && s[start] == '.' && s[start + 1] == '.'))
			return 0;
		start = i + 1;
	}
	return 1;
}

static int
no_controls(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

static int
bytes_ok(const char *s, size_t len)
{
	return utf8_valid(s, len) && no_controls(s, len);
}

int
key_validate(const char *key, size_t len)
{
	if (len == 0)
		return -EINVAL;
	if (len > KEY_MAX)
		return -ENAMETOOLONG;
	if (!bytes_ok(key, len) || key[0] == '/')
		return -EINVAL;
	/* "a/b/" names the directory marker object of "a/b" (what the S3
	 * console makes for a folder): valid if "a/b" is. */
	if (key[len - 1] == '/')
		len--;
	return len > 0 && segments_ok(key, len, 0) ? 0 : -EINVAL;
}

int
prefix_validate(const char *p, size_t len)
{
	if (len == 0)
		return 0;
	if (len > KEY_MAX || !utf8_valid(p, len))
		return -EINVAL;
	/* A prefix is a string, not a path: "." may start ".hidden".  But a
	 * complete segment that is empty, "." or ".." (or a leading '/'), or a
	 * control character, can begin no valid key: such a prefix matches
	 * nothing (S3 lists nothing for it too). */
	if (p[0] == '/' || !no_controls(p, len))
		return 1;
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] != '/')
			continue;
		size_t sl = i - start;
		if (sl == 0 || (sl == 1 && p[start] == '.') ||
		    (sl == 2 && p[start] == '.' && p[start + 1] == '.'))
			return 1;
		start = i + 1;
	}
	return 0;
}

int
ferry_path_split(const char *path, const char **mount, size_t *mount_len,
    const char **key, size_t *key_len)
{
	if (!path || path[0] != '/')
		return -EINVAL;
	const char *p = path + 1;
	size_t n = strlen(p);
	while (n > 0 && p[n - 1] == '/')
		n--;
	const char *slash = memchr(p, '/', n);
	*mount = p;
	*mount_len = slash ? (size_t)(slash - p) : n;
	*key = slash ? slash + 1 : p + n;
	*key_len = slash ? n - (size_t)(slash + 1 - p) : 0;
	return 0;
}
