/*
 * s3_listxml.c: the S3 documents the s3:// under-store reads
 * (ListBucketResult, Error, and the results of writes:
 * InitiateMultipartUploadResult and the like), with the strict, bounded
 * scanner of common/xml_scan.h.
 *
 * Pure functions on caller memory; safe from any thread.
 */
#include "s3_listxml.h"

#include <errno.h>
#include <string.h>

#include "common/xml_scan.h"

#include "common/util.h"


/* ---- ListBucketResult ---- */

enum { ITEM_NONE, ITEM_CONTENTS, ITEM_PREFIX };

struct list_ctx {
	s3_list_item_fn fn;
	void *arg;
	struct s3_list_result *res;
	int item; /* ITEM_* we are inside of */
	int have_key, have_size, have_etag, have_mtime;
	int have_truncated, have_token, have_count;
	char key[S3_LIST_KEY_MAX + 1];
	size_t key_len;
	char etag[S3_LIST_ETAG_MAX];
	int64_t size, mtime;
};

static int
parse_i64(const char *s, size_t n, int64_t *out)
{
	if (n == 0 || n > 18) /* 18 digits cannot overflow int64 */
		return -EIO;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EIO;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static int
list_start(void *arg, int depth, const char *name, size_t nlen)
{
	struct list_ctx *c = arg;
	if (depth == 1 && !xml_name_is(name, nlen, "ListBucketResult"))
		return -EIO;
	if (depth == 2) {
		if (xml_name_is(name, nlen, "Contents"))
			c->item = ITEM_CONTENTS;
		else if (xml_name_is(name, nlen, "CommonPrefixes"))
			c->item = ITEM_PREFIX;
		else
			c->item = ITEM_NONE;
		c->have_key = c->have_size = c->have_etag = c->have_mtime = 0;
		c->key_len = 0;
		c->key[0] = 0;
		c->etag[0] = 0;
		c->size = 0;
		c->mtime = 0;
	}
	return 0;
}

static int
list_set_key(struct list_ctx *c, const char *text, size_t tlen)
{
	if (c->have_key || tlen > S3_LIST_KEY_MAX)
		return -EIO;
	memcpy(c->key, text, tlen);
	c->key[tlen] = 0;
	c->key_len = tlen;
	c->have_key = 1;
	return 0;
}

static int
list_contents_field(struct list_ctx *c, const char *name, size_t nlen,
    const char *text, size_t tlen)
{
	if (xml_name_is(name, nlen, "Key"))
		return list_set_key(c, text, tlen);
	if (xml_name_is(name, nlen, "Size")) {
		if (c->have_size || parse_i64(text, tlen, &c->size))
			return -EIO;
		c->have_size = 1;
	} else if (xml_name_is(name, nlen, "ETag")) {
		if (c->have_etag)
			return -EIO;
		if (tlen >= 2 && text[0] == '"' && text[tlen - 1] == '"') {
			text++;
			tlen -= 2;
		}
		if (tlen >= S3_LIST_ETAG_MAX)
			return -EIO;
		memcpy(c->etag, text, tlen);
		c->etag[tlen] = 0;
		c->have_etag = 1;
	} else if (xml_name_is(name, nlen, "LastModified")) {
		int64_t t = parse_iso8601(text, tlen);
		if (c->have_mtime || t < 0)
			return -EIO;
		c->mtime = t;
		c->have_mtime = 1;
	}
	return 0;
}

static int
list_end(void *arg, int depth, const char *name, size_t nlen,
    const char *text, size_t tlen)
{
	struct list_ctx *c = arg;
	if (depth == 3 && c->item == ITEM_CONTENTS)
		return list_contents_field(c, name, nlen, text, tlen);
	if (depth == 3 && c->item == ITEM_PREFIX) {
		if (xml_name_is(name, nlen, "Prefix"))
			return list_set_key(c, text, tlen);
		return 0;
	}
	if (depth != 2)
		return 0;
	if (c->item != ITEM_NONE) {
		struct s3_list_item it = {
		    .is_prefix = c->item == ITEM_PREFIX,
		    .key = c->key,
		    .key_len = c->key_len,
		    .size = c->size,
		    .mtime = c->mtime,
		    .etag = c->etag,
		};
		int kind = c->item;
		c->item = ITEM_NONE;
		if (!c->have_key || (kind == ITEM_CONTENTS && !c->have_size))
			return -EIO;
		return c->fn(c->arg, &it);
	}
	if (xml_name_is(name, nlen, "IsTruncated")) {
		if (c->have_truncated)
			return -EIO;
		if (tlen == 4 && memcmp(text, "true", 4) == 0)
			c->res->is_truncated = 1;
		else if (tlen == 5 && memcmp(text, "false", 5) == 0)
			c->res->is_truncated = 0;
		else
			return -EIO;
		c->have_truncated = 1;
	} else if (xml_name_is(name, nlen, "NextContinuationToken")) {
		if (c->have_token || tlen >= S3_LIST_TOKEN_MAX)
			return -EIO;
		memcpy(c->res->next_token, text, tlen);
		c->res->next_token[tlen] = 0;
		c->have_token = 1;
	} else if (xml_name_is(name, nlen, "KeyCount")) {
		int64_t v;
		if (c->have_count || parse_i64(text, tlen, &v) || v > 1000000)
			return -EIO;
		c->res->key_count = (int)v;
		c->have_count = 1;
	}
	return 0;
}

int
s3_listxml_parse(const char *xml, size_t len, s3_list_item_fn fn, void *arg,
    struct s3_list_result *res)
{
	static const struct xml_handler h = {list_start, list_end};
	struct xml_scan s;
	struct list_ctx c;
	memset(&c, 0, sizeof(c));
	c.fn = fn;
	c.arg = arg;
	c.res = res;
	res->is_truncated = 0;
	res->key_count = -1;
	res->next_token[0] = 0;
	int r = xml_walk(&s, xml, len, &h, &c);
	if (r)
		return r;
	/* A truncated listing without a way to go on cannot be followed. */
	if (res->is_truncated && !res->next_token[0])
		return -EIO;
	return 0;
}

/* ---- Error ---- */

struct err_ctx {
	char *code, *msg;
	size_t code_sz, msg_sz;
};

static void
copy_trunc(char *dst, size_t sz, const char *src, size_t n)
{
	if (sz == 0)
		return;
	if (n >= sz)
		n = sz - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

static int
err_start(void *arg, int depth, const char *name, size_t nlen)
{
	if (depth == 1 && !xml_name_is(name, nlen, "Error"))
		return -EIO;
	return 0;
}

static int
err_end(void *arg, int depth, const char *name, size_t nlen,
    const char *text, size_t tlen)
{
	struct err_ctx *c = arg;
	if (depth != 2)
		return 0;
	if (xml_name_is(name, nlen, "Code"))
		copy_trunc(c->code, c->code_sz, text, tlen);
	else if (xml_name_is(name, nlen, "Message"))
		copy_trunc(c->msg, c->msg_sz, text, tlen);
	return 0;
}

int
s3_errxml_parse(const char *xml, size_t len, char *code, size_t code_sz,
    char *msg, size_t msg_sz)
{
	static const struct xml_handler h = {err_start, err_end};
	struct xml_scan s;
	struct err_ctx c = {code, msg, code_sz, msg_sz};
	copy_trunc(code, code_sz, "", 0);
	copy_trunc(msg, msg_sz, "", 0);
	int r = xml_walk(&s, xml, len, &h, &c);
	if (r) {
		copy_trunc(code, code_sz, "", 0);
		copy_trunc(msg, msg_sz, "", 0);
	}
	return r;
}

/* ---- results of writes ---- */

struct result_ctx {
	const char *root;
	struct s3_xml_field *f;
	int nf;
};

static int
result_start(void *arg, int depth, const char *name, size_t nlen)
{
	struct result_ctx *c = arg;
	if (depth == 1 && !xml_name_is(name, nlen, c->root))
		return -EIO;
	return 0;
}

static int
result_end(void *arg, int depth, const char *name, size_t nlen,
    const char *text, size_t tlen)
{
	struct result_ctx *c = arg;
	if (depth != 2)
		return 0;
	for (int i = 0; i < c->nf; i++) {
		struct s3_xml_field *f = &c->f[i];
		if (!xml_name_is(name, nlen, f->name))
			continue;
		if (f->found || tlen >= f->cap || memchr(text, 0, tlen))
			return -EIO;
		memcpy(f->out, text, tlen);
		f->out[tlen] = 0;
		f->found = 1;
	}
	return 0;
}

int
s3_resultxml_parse(const char *xml, size_t len, const char *root,
    struct s3_xml_field *f, int nf)
{
	static const struct xml_handler h = {result_start, result_end};
	struct xml_scan s;
	struct result_ctx c = {root, f, nf};
	for (int i = 0; i < nf; i++) {
		f[i].found = 0;
		if (f[i].cap)
			f[i].out[0] = 0;
		else
			return -EINVAL;
	}
	int r = xml_walk(&s, xml, len, &h, &c);
	if (r) {
		for (int i = 0; i < nf; i++) {
			f[i].found = 0;
			f[i].out[0] = 0;
		}
	}
	return r;
}
