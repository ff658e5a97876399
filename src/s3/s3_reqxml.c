/*
 * s3_reqxml.c: request documents the gateway reads (s3_reqxml.h).  Pure
 * functions over caller memory; any thread.
 */
#include "s3_reqxml.h"

#include <errno.h>
#include <string.h>

#include "../common/xml_scan.h"

struct delete_ctx {
	s3_delete_fn fn;
	void *arg;
	int *quiet;
	int objects, have_quiet;
	int nkeys, has_version;
	char key[XML_TEXT_MAX + 1];
	size_t key_len;
};

static int
delete_start(void *arg, int depth, const char *name, size_t nlen)
{
	struct delete_ctx *c = arg;
	if (depth == 1)
		return xml_name_is(name, nlen, "Delete") ? 0 : -EIO;
	if (depth == 2 && xml_name_is(name, nlen, "Object")) {
		if (++c->objects > S3_DELETE_MAX)
			return -EIO;
		c->nkeys = 0;
		c->has_version = 0;
		c->key_len = 0;
		c->key[0] = 0;
	}
	return 0;
}

static int
delete_end(void *arg, int depth, const char *name, size_t nlen,
    const char *text, size_t tlen)
{
	struct delete_ctx *c = arg;
	if (depth == 3 && xml_name_is(name, nlen, "Key")) {
		if (c->nkeys++ || tlen > XML_TEXT_MAX || memchr(text, 0, tlen))
			return -EIO;
		memcpy(c->key, text, tlen);
		c->key[tlen] = 0;
		c->key_len = tlen;
	} else if (depth == 3 && xml_name_is(name, nlen, "VersionId")) {
		c->has_version = 1;
	} else if (depth == 2 && xml_name_is(name, nlen, "Object")) {
		if (c->nkeys != 1)
			return -EIO;
		return c->fn(c->arg, c->key, c->key_len, c->has_version);
	} else if (depth == 2 && xml_name_is(name, nlen, "Quiet")) {
		if (c->have_quiet++)
			return -EIO;
		if (tlen == 4 && memcmp(text, "true", 4) == 0)
			*c->quiet = 1;
		else if (tlen == 5 && memcmp(text, "false", 5) == 0)
			*c->quiet = 0;
		else
			return -EIO;
	}
	return 0;
}

int
s3_delete_parse(const char *xml, size_t len, s3_delete_fn fn, void *arg,
    int *quiet)
{
	struct delete_ctx c = {.fn = fn, .arg = arg, .quiet = quiet};
	*quiet = 0;
	static const struct xml_handler h = {delete_start, delete_end};
	struct xml_scan s;
	int r = xml_walk(&s, xml, len, &h, &c);
	if (r == 0 && c.objects == 0)
		r = -EIO;
	return r;
}
