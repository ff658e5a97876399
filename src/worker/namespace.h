/*
 * namespace.h: validation of object keys and ferry paths.  Every key that
 * reaches an under-store passes key_validate() first, so no backend ever
 * sees "..", ".", empty segments, NUL bytes or invalid UTF-8.
 */
#ifndef FERRY_NAMESPACE_H
#define FERRY_NAMESPACE_H

#include <stddef.h>

#define KEY_MAX 1024

/* 0 if key is a valid object key; -EINVAL for traversal or bad bytes,
 * -ENAMETOOLONG if over KEY_MAX.  A key may end in one '/': "a/b/" is the
 * directory marker object of "a/b" (valid when "a/b" is). */
int key_validate(const char *key, size_t len);
/* 0 if p is a valid listing prefix (may be "", may end in '/', may end in
 * a partial name such as "." or ".."); 1 if it is valid UTF-8 but no
 * valid key can start with it (a complete "", "." or ".." segment, a
 * control character): the listing is empty; -EINVAL for invalid UTF-8 or
 * over KEY_MAX. */
int prefix_validate(const char *p, size_t len);

/*
 * Splits a ferry path "/mount/rest/of/key" (already percent-decoded) into
 * the mount name and the key ("" for the mount root).  Trailing '/' is
 * dropped.  "/" gives an empty mount name.  -EINVAL if malformed.
 */
int ferry_path_split(const char *path, const char **mount, size_t *mount_len,
    const char **key, size_t *key_len);

#endif
