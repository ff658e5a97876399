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

struct complete_ctx {
	s3_complete_fn fn;
	void *arg;
	int parts, nnum, netag, number;
	char etag[XML_TEXT_MAX + 1];
	size_t etag_len;
};

static int
complete_start(void *arg, int depth, const char *name, size_t nlen)
{
	struct complete_ctx *c = arg;
	if (depth == 1)
		return xml_name_is(name, nlen, "CompleteMultipartUpload") ? 0 : -EIO;
	if (depth == 2 && xml_name_is(name, nlen, "Part")) {
		if (++c->parts > S3_COMPLETE_MAX)
			return -EIO;
		c->nnum = c->netag = 0;
	}
	return 0;
}

static int
complete_end(void *arg, int depth, const char *name, size_t nlen,
    const char *text, size_t tlen)
{
	struct complete_ctx *c = arg;
	if (depth == 3 && xml_name_is(name, nlen, "PartNumber")) {
		int v = 0;
		if (c->nnum++ || tlen == 0 || tlen > 5)
			return -EIO;
		for (size_t i = 0; i < tlen; i++) {
			if (text[i] < '0' || text[i] > '9')
				return -EIO;
			v = v * 10 + (text[i] - '0');
		}
		if (v < 1 || v > S3_COMPLETE_MAX)
			return -EIO;
		c->number = v;
	} else if (depth == 3 && xml_name_is(name, nlen, "ETag")) {
		if (c->netag++)
			return -EIO;
		if (tlen >= 2 && text[0] == '"' && text[tlen - 1] == '"') {
			text++;
			tlen -= 2;
		}
		if (memchr(text, 0, tlen))
			return -EIO;
		memcpy(c->etag, text, tlen);
		c->etag[tlen] = 0;
		c->etag_len = tlen;
	} else if (depth == 2 && xml_name_is(name, nlen, "Part")) {
		if (c->nnum != 1 || c->netag != 1)
			return -EIO;
		return c->fn(c->arg, c->number, c->etag, c->etag_len);
	}
	return 0;
}

int
s3_complete_parse(const char *xml, size_t len, s3_complete_fn fn, void *arg)
{
	struct complete_ctx c = {.fn = fn, .arg = arg};
	static const struct xml_handler h = {complete_start, complete_end};
	struct xml_scan s;
	int r = xml_walk(&s, xml, len, &h, &c);
	if (r == 0 && c.parts == 0)
		r = -EIO;
	return r;
}
