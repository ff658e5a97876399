/*
 * xml_scan.c: the strict, bounded XML scanner (xml_scan.h).  Pure
 * functions on caller memory; safe from any thread.
 */
#include "xml_scan.h"

#include <errno.h>
#include <string.h>

#include "util.h"

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
	if (n > XML_TEXT_MAX - s->tlen)
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
	if ((size_t)(q - s->p) > XML_NAME_MAX)
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
	if (s->depth >= XML_MAX_DEPTH)
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

int
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

int
xml_name_is(const char *name, size_t nlen, const char *lit)
{
	return strlen(lit) == nlen && memcmp(name, lit, nlen) == 0;
}
