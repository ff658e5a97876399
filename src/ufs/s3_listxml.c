/*
 * s3_listxml.c: a strict, bounded XML scanner and the S3 documents the
 * s3:// under-store reads with it (ListBucketResult, Error, and the
 * results of writes: InitiateMultipartUploadResult and the like).
 *
 * The scanner walks the input once, left to right, and never looks past
 * xml + len.  It calls a handler at each start tag and at each end tag; at
 * an end tag it passes the element's decoded text gathered since the last
 * tag, which for a leaf element is its whole content.  Element names are
 * kept on a fixed stack (S3_XML_MAX_DEPTH) as pointers into the input; the
 * decoded text lives in a fixed buffer (S3_XML_TEXT_MAX).  Anything outside
 * the subset S3 sends (DOCTYPE, unbalanced tags, bad entities, raw control
 * characters, text outside the root, a second root) is -EIO.
 *
 * Pure functions on caller memory; safe from any thread.
 */
#include "s3_listxml.h"

#include <errno.h>
#include <string.h>

#include "common/util.h"

struct xml_handler {
	/* depth counts from 1 (the root element). */
	int (*start)(void *arg, int depth, const char *name, size_t nlen);
	int (*end)(void *arg, int depth, const char *name, size_t nlen,
	    const char *text, size_t tlen);
};

struct xml_scan {
	const char *p, *end;
	struct {
		const char *name;
		size_t len;
	} stack[S3_XML_MAX_DEPTH];
	int depth;
	char text[S3_XML_TEXT_MAX + 1];
	size_t tlen;
};

static int
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
is_name_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	    c == ':' || c >= 0x80;
}

static int
is_name_char(unsigned char c)
{
	return is_name_start(c) || (c >= '0' && c <= '9') || c == '-' ||
	    c == '.';
}

/* XML 1.0 forbids raw C0 controls other than tab, LF and CR. */
static int
is_bad_raw(unsigned char c)
{
	return c < 0x20 && c != '\t' && c != '\n' && c != '\r';
}

static int
starts(const struct xml_scan *s, const char *lit)
{
	size_t n = strlen(lit);
	return (size_t)(s->end - s->p) >= n && memcmp(s->p, lit, n) == 0;
}

/* Finds lit at or after from; NULL if absent before s->end. */
static const char *
find(const struct xml_scan *s, const char *from, const char *lit)
{
	size_t n = strlen(lit);
	if ((size_t)(s->end - from) < n)
		return NULL;
	return memmem(from, (size_t)(s->end - from), lit, n);
}

static int
text_add(struct xml_scan *s, const char *p, size_t n)
{
	if (n > S3_XML_TEXT_MAX - s->tlen)
		return -EIO;
	memcpy(s->text + s->tlen, p, n);
	s->tlen += n;
	s->text[s->tlen] = 0;
	return 0;
}

static int
text_add_cp(struct xml_scan *s, unsigned long cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	return text_add(s, u, n);
}

/* s->p is at '&'.  Decodes one entity into the text; advances past ';'. */
static int
decode_entity(struct xml_scan *s)
{
	static const struct {
		const char *name;
		char c;
	} named[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'},
	    {"&quot;", '"'}, {"&apos;", '\''}};
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		if (starts(s, named[i].name)) {
			s->p += strlen(named[i].name);
			return text_add(s, &named[i].c, 1);
		}
	}
	if (!starts(s, "&#"))
		return -EIO;
	const char *q = s->p + 2;
	int hex = 0;
	if (q < s->end && *q == 'x') {
		hex = 1;
		q++;
	}
	unsigned long cp = 0;
	int ndig = 0;
	while (q < s->end && *q != ';') {
		int d;
		char c = *q;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (hex && c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (hex && c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -EIO;
		cp = cp * (hex ? 16 : 10) + (unsigned long)d;
		if (++ndig > 8 || cp > 0x10ffff)
			return -EIO;
		q++;
	}
	if (q >= s->end || ndig == 0)
		return -EIO;
	/* Any code point but NUL and surrogates; control characters are left
	 * for the consumer to judge (S3 writes them as references). */
	if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
		return -EIO;
	s->p = q + 1;
	return text_add_cp(s, cp);
}

/* Parses a name at s->p; advances past it. */
static int
scan_name(struct xml_scan *s, const char **name, size_t *len)
{
	const char *q = s->p;
	if (q >= s->end || !is_name_start((unsigned char)*q))
		return -EIO;
	while (q < s->end && is_name_char((unsigned char)*q))
		q++;
	if ((size_t)(q - s->p) > S3_XML_NAME_MAX)
		return -EIO;
	*name = s->p;
	*len = (size_t)(q - s->p);
	s->p = q;
	return 0;
}

static void
skip_ws(struct xml_scan *s)
{
	while (s->p < s->end && is_ws(*s->p))
		s->p++;
}

/* Attributes are checked for form and skipped: S3 puts only xmlns there. */
static int
scan_attr(struct xml_scan *s)
{
	const char *name;
	size_t nlen;
	int r = scan_name(s, &name, &nlen);
	if (r)
		return r;
	skip_ws(s);
	if (s->p >= s->end || *s->p != '=')
		return -EIO;
	s->p++;
	skip_ws(s);
	if (s->p >= s->end || (*s->p != '"' && *s->p != '\''))
		return -EIO;
	char quote = *s->p++;
	while (s->p < s->end && *s->p != quote) {
		if (*s->p == '<' || is_bad_raw((unsigned char)*s->p))
			return -EIO;
		s->p++;
	}
	if (s->p >= s->end)
		return -EIO;
	s->p++;
	return 0;
}

/* s->p is just past '<'; a start tag or an empty-element tag. */
static int
scan_start_tag(struct xml_scan *s, const struct xml_handler *h, void *arg,
    int *root_done)
{
	const char *name;
	size_t nlen;
	int r = scan_name(s, &name, &nlen);
	if (r)
		return r;
	int empty = 0;
	for (;;) {
		const char *before = s->p;
		skip_ws(s);
		if (s->p >= s->end)
			return -EIO;
		if (*s->p == '>') {
			s->p++;
			break;
		}
		if (*s->p == '/') {
			if (s->p + 1 >= s->end || s->p[1] != '>')
				return -EIO;
			s->p += 2;
			empty = 1;
			break;
		}
		if (s->p == before) /* attributes need space before them */
			return -EIO;
		if ((r = scan_attr(s)) != 0)
			return r;
	}
	if (s->depth == 0 && *root_done)
		return -EIO; /* a second root element */
	if (s->depth >= S3_XML_MAX_DEPTH)
		return -EIO;
	s->stack[s->depth].name = name;
	s->stack[s->depth].len = nlen;
	s->depth++;
	s->tlen = 0;
	s->text[0] = 0;
	if ((r = h->start(arg, s->depth, name, nlen)) != 0)
		return r;
	if (empty) {
		if ((r = h->end(arg, s->depth, name, nlen, s->text, 0)) != 0)
			return r;
		s->depth--;
		if (s->depth == 0)
			*root_done = 1;
	}
	return 0;
}

/* s->p is just past "</". */
static int
scan_end_tag(struct xml_scan *s, const struct xml_handler *h, void *arg,
    int *root_done)
{
	const char *name;
	size_t nlen;
	int r = scan_name(s, &name, &nlen);
	if (r)
		return r;
	skip_ws(s);
	if (s->p >= s->end || *s->p != '>')
		return -EIO;
	s->p++;
	if (s->depth == 0)
		return -EIO;
	const char *open = s->stack[s->depth - 1].name;
	if (s->stack[s->depth - 1].len != nlen || memcmp(open, name, nlen) != 0)
		return -EIO;
	if ((r = h->end(arg, s->depth, name, nlen, s->text, s->tlen)) != 0)
		return r;
	s->depth--;
	s->tlen = 0;
	s->text[0] = 0;
	if (s->depth == 0)
		*root_done = 1;
	return 0;
}

/* Character data up to the next '<' (or the end). */
static int
scan_text(struct xml_scan *s)
{
	while (s->p < s->end && *s->p != '<') {
		unsigned char c = (unsigned char)*s->p;
		if (s->depth == 0) {
			/* Only whitespace may stand outside the root. */
			if (!is_ws((char)c))
				return -EIO;
			s->p++;
			continue;
		}
		if (c == '&') {
			int r = decode_entity(s);
			if (r)
				return r;
			continue;
		}
		if (is_bad_raw(c))
			return -EIO;
		/* Copy the run of plain bytes in one go. */
		const char *q = s->p;
		while (q < s->end && *q != '<' && *q != '&' &&
		    !is_bad_raw((unsigned char)*q))
			q++;
		int r = text_add(s, s->p, (size_t)(q - s->p));
		if (r)
			return r;
		s->p = q;
	}
	return 0;
}

static int
xml_walk(struct xml_scan *s, const char *xml, size_t len,
    const struct xml_handler *h, void *arg)
{
	int root_done = 0, r;
	s->p = xml;
	s->end = xml + len;
	s->depth = 0;
	s->tlen = 0;
	s->text[0] = 0;
	while (s->p < s->end) {
		if (*s->p != '<') {
			if ((r = scan_text(s)) != 0)
				return r;
			continue;
		}
		if (starts(s, "<!--")) {
			const char *q = find(s, s->p + 4, "-->");
			if (!q)
				return -EIO;
			s->p = q + 3;
		} else if (starts(s, "<![CDATA[")) {
			if (s->depth == 0)
				return -EIO;
			const char *from = s->p + 9;
			const char *q = find(s, from, "]]>");
			if (!q)
				return -EIO;
			for (const char *c = from; c < q; c++)
				if (is_bad_raw((unsigned char)*c))
					return -EIO;
			if ((r = text_add(s, from, (size_t)(q - from))) != 0)
				return r;
			s->p = q + 3;
		} else if (starts(s, "<?")) {
			/* The XML declaration or a processing instruction. */
			const char *q = find(s, s->p + 2, "?>");
			if (!q)
				return -EIO;
			s->p = q + 2;
		} else if (starts(s, "<!")) {
			return -EIO; /* DOCTYPE and friends: never from S3 */
		} else if (starts(s, "</")) {
			s->p += 2;
			if ((r = scan_end_tag(s, h, arg, &root_done)) != 0)
				return r;
		} else {
			s->p += 1;
			if ((r = scan_start_tag(s, h, arg, &root_done)) != 0)
				return r;
		}
	}
	if (s->depth != 0 || !root_done)
		return -EIO;
	return 0;
}

static int
name_is(const char *name, size_t nlen, const char *lit)
{
	return strlen(lit) == nlen && memcmp(name, lit, nlen) == 0;
}

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
	if (depth == 1 && !name_is(name, nlen, "ListBucketResult"))
		return -EIO;
	if (depth == 2) {
		if (name_is(name, nlen, "Contents"))
			c->item = ITEM_CONTENTS;
		else if (name_is(name, nlen, "CommonPrefixes"))
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
	if (name_is(name, nlen, "Key"))
		return list_set_key(c, text, tlen);
	if (name_is(name, nlen, "Size")) {
		if (c->have_size || parse_i64(text, tlen, &c->size))
			return -EIO;
		c->have_size = 1;
	} else if (name_is(name, nlen, "ETag")) {
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
	} else if (name_is(name, nlen, "LastModified")) {
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
		if (name_is(name, nlen, "Prefix"))
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
	if (name_is(name, nlen, "IsTruncated")) {
		if (c->have_truncated)
			return -EIO;
		if (tlen == 4 && memcmp(text, "true", 4) == 0)
			c->res->is_truncated = 1;
		else if (tlen == 5 && memcmp(text, "false", 5) == 0)
			c->res->is_truncated = 0;
		else
			return -EIO;
		c->have_truncated = 1;
	} else if (name_is(name, nlen, "NextContinuationToken")) {
		if (c->have_token || tlen >= S3_LIST_TOKEN_MAX)
			return -EIO;
		memcpy(c->res->next_token, text, tlen);
		c->res->next_token[tlen] = 0;
		c->have_token = 1;
	} else if (name_is(name, nlen, "KeyCount")) {
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
	if (depth == 1 && !name_is(name, nlen, "Error"))
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
	if (name_is(name, nlen, "Code"))
		copy_trunc(c->code, c->code_sz, text, tlen);
	else if (name_is(name, nlen, "Message"))
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
	if (depth == 1 && !name_is(name, nlen, c->root))
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
		if (!name_is(name, nlen, f->name))
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
