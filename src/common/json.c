/*
 * json.c: strict RFC 8259 reader into a flat token array, and writer
 * helpers (see json.h).
 *
 * Threads: any; a json_doc belongs to one thread at a time, the functions
 * keep no global state.
 *
 * Invariants: the parser never reads text[len] or beyond and never
 * allocates more than JSON_MAX_TOKENS tokens; nesting is bounded by
 * JSON_MAX_DEPTH, so the recursion is bounded too.  Every token it emits
 * lies inside [0, len), strings have been validated (escapes well formed,
 * surrogates paired, raw bytes valid UTF-8, no control characters), so
 * json_str() can decode without re-checking the grammar.  Token i's
 * subtree is tokens [i, toks[i].next).
 */
#include "json.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define JSON_MAX_DEPTH 32

struct parser {
	const char *s;
	size_t len;
	size_t pos;
	struct json_tok *toks;
	int n, cap;
};

static void
skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

/* Appends a token and returns its index, or a negative errno. */
static int
new_tok(struct parser *p, enum json_type type, size_t start)
{
	if (p->n == p->cap) {
		if (p->cap >= JSON_MAX_TOKENS)
			return -E2BIG;
		int cap = p->cap ? p->cap * 2 : 16;
		if (cap > JSON_MAX_TOKENS)
			cap = JSON_MAX_TOKENS;
		struct json_tok *t = realloc(p->toks, (size_t)cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		p->toks = t;
		p->cap = cap;
	}
	struct json_tok *t = &p->toks[p->n];
	t->type = type;
	t->start = (int)start;
	t->end = (int)start;
	t->size = 0;
	t->next = p->n + 1;
	return p->n++;
}

/* Reads 4 hex digits at s[pos..pos+4); -1 if short or malformed. */
static long
read_hex4(const char *s, size_t len, size_t pos)
{
	if (len < 4 || pos > len - 4)
		return -1;
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int h = hexval(s[pos + (size_t)i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/*
 * Length of the valid UTF-8 sequence at s[pos] (a byte >= 0x80), or 0 if
 * it is malformed, overlong, a surrogate, beyond U+10FFFF or truncated.
 */
static size_t
utf8_seq_len(const unsigned char *s, size_t len, size_t pos)
{
	unsigned char c = s[pos];
	size_t n;
	unsigned char lo = 0x80, hi = 0xBF; /* bounds of the second byte */
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	if (len - pos < n)
		return 0;
	if (s[pos + 1] < lo || s[pos + 1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((s[pos + i] & 0xC0) != 0x80)
			return 0;
	return n;
}

/* p->pos is at the opening quote. */
static int
parse_string(struct parser *p)
{
	int t = new_tok(p, JSON_STRING, p->pos + 1);
	if (t < 0)
		return t;
	const unsigned char *s = (const unsigned char *)p->s;
	size_t i = p->pos + 1;
	while (i < p->len) {
		unsigned char c = s[i];
		if (c == '"') {
			p->toks[t].end = (int)i;
			p->pos = i + 1;
			return t;
		}
		if (c < 0x20)
			return -EINVAL;
		if (c == '\\') {
			if (i + 1 >= p->len)
				return -EINVAL;
			char e = (char)s[i + 1];
			if (e != 0 && strchr("\"\\/bfnrt", e)) {
				i += 2;
				continue;
			}
			if (e != 'u')
				return -EINVAL;
			long u = read_hex4(p->s, p->len, i + 2);
			if (u < 0)
				return -EINVAL;
			i += 6;
			if (u >= 0xDC00 && u <= 0xDFFF)
				return -EINVAL; /* lone low surrogate */
			if (u >= 0xD800 && u <= 0xDBFF) {
				if (i + 1 >= p->len || s[i] != '\\' ||
				    s[i + 1] != 'u')
					return -EINVAL;
				long l = read_hex4(p->s, p->len, i + 2);
				if (l < 0xDC00 || l > 0xDFFF)
					return -EINVAL;
				i += 6;
			}
			continue;
		}
		if (c >= 0x80) {
			size_t n = utf8_seq_len(s, p->len, i);
			if (!n)
				return -EINVAL;
			i += n;
			continue;
		}
		i++;
	}
	return -EINVAL; /* unterminated */
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
parse_number(struct parser *p)
{
	const char *s = p->s;
	size_t i = p->pos;
	if (i < p->len && s[i] == '-')
		i++;
	if (i >= p->len || !is_digit(s[i]))
		return -EINVAL;
	if (s[i] == '0')
		i++;
	else
		while (i < p->len && is_digit(s[i]))
			i++;
	if (i < p->len && s[i] == '.') {
		i++;
		if (i >= p->len || !is_digit(s[i]))
			return -EINVAL;
		while (i < p->len && is_digit(s[i]))
			i++;
	}
	if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < p->len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= p->len || !is_digit(s[i]))
			return -EINVAL;
		while (i < p->len && is_digit(s[i]))
			i++;
	}
	int t = new_tok(p, JSON_NUMBER, p->pos);
	if (t < 0)
		return t;
	p->toks[t].end = (int)i;
	p->pos = i;
	return t;
}

static int
parse_literal(struct parser *p, const char *word, enum json_type type)
{
	size_t n = strlen(word);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
		return -EINVAL;
	int t = new_tok(p, type, p->pos);
	if (t < 0)
		return t;
	p->toks[t].end = (int)(p->pos + n);
	p->pos += n;
	return t;
}

static int parse_value(struct parser *p, int depth);

/* p->pos is at '{' or '['. */
static int
parse_container(struct parser *p, int depth, int is_obj)
{
	if (depth >= JSON_MAX_DEPTH)
		return -E2BIG;
	int t = new_tok(p, is_obj ? JSON_OBJECT : JSON_ARRAY, p->pos);
	if (t < 0)
		return t;
	char close = is_obj ? '}' : ']';
	int size = 0;
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		goto done;
	}
	for (;;) {
		int r;
		skip_ws(p);
		if (is_obj) {
			if (p->pos >= p->len || p->s[p->pos] != '"')
				return -EINVAL;
			if ((r = parse_string(p)) < 0)
				return r;
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':')
				return -EINVAL;
			p->pos++;
		}
		if ((r = parse_value(p, depth + 1)) < 0)
			return r;
		size++;
		skip_ws(p);
		if (p->pos >= p->len)
			return -EINVAL;
		char c = p->s[p->pos++];
		if (c == close)
			break;
		if (c != ',')
			return -EINVAL;
	}
done:
	/* toks may have moved: index, don't keep pointers across calls. */
	p->toks[t].size = size;
	p->toks[t].end = (int)p->pos;
	p->toks[t].next = p->n;
	return t;
}

static int
parse_value(struct parser *p, int depth)
{
	skip_ws(p);
	if (p->pos >= p->len)
		return -EINVAL;
	switch (p->s[p->pos]) {
	case '{':
		return parse_container(p, depth, 1);
	case '[':
		return parse_container(p, depth, 0);
	case '"':
		return parse_string(p);
	case 't':
		return parse_literal(p, "true", JSON_BOOL);
	case 'f':
		return parse_literal(p, "false", JSON_BOOL);
	case 'n':
		return parse_literal(p, "null", JSON_NULL);
	default:
		return parse_number(p);
	}
}

int
json_parse(struct json_doc *d, const char *text, size_t len)
{
	memset(d, 0, sizeof(*d));
	if (!text)
		return -EINVAL;
	if (len >= INT_MAX)
		return -E2BIG; /* token offsets are ints */
	struct parser p = {.s = text, .len = len};
	int r = parse_value(&p, 0);
	if (r >= 0) {
		skip_ws(&p);
		if (p.pos != p.len)
			r = -EINVAL; /* trailing garbage */
	}
	if (r < 0) {
		free(p.toks);
		return r;
	}
	d->text = text;
	d->len = len;
	d->toks = p.toks;
	d->ntoks = p.n;
	return 0;
}

void
json_free(struct json_doc *d)
{
	free(d->toks);
	memset(d, 0, sizeof(*d));
}

static int
tok_ok(const struct json_doc *d, int tok)
{
	return d && d->toks && tok >= 0 && tok < d->ntoks;
}

/* Appends code point cp as UTF-8; returns bytes written. */
static size_t
put_utf8(char *o, unsigned long cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/*
 * Decodes the validated string span s[0..n) into out (which holds n+1
 * bytes: every escape is at least as long as what it decodes to).
 * Returns the decoded length, or -1 if it holds a NUL.
 */
static long
decode_string(const char *s, size_t n, char *out)
{
	size_t i = 0, o = 0;
	while (i < n) {
		char c = s[i];
		if (c != '\\') {
			if (c == 0)
				return -1;
			out[o++] = c;
			i++;
			continue;
		}
		if (i + 1 >= n)
			return -1; /* cannot happen after validation */
		char e = s[i + 1];
		i += 2;
		switch (e) {
		case 'b': out[o++] = '\b'; continue;
		case 'f': out[o++] = '\f'; continue;
		case 'n': out[o++] = '\n'; continue;
		case 'r': out[o++] = '\r'; continue;
		case 't': out[o++] = '\t'; continue;
		case 'u': break;
		default: out[o++] = e; continue; /* " \ / */
		}
		long u = read_hex4(s, n, i);
		if (u < 0)
			return -1;
		i += 4;
		unsigned long cp = (unsigned long)u;
		if (u >= 0xD800 && u <= 0xDBFF) {
			long l = (i + 1 < n && s[i] == '\\' && s[i + 1] == 'u')
			    ? read_hex4(s, n, i + 2) : -1;
			if (l < 0xDC00 || l > 0xDFFF)
				return -1;
			i += 6;
			cp = 0x10000 + (((unsigned long)u - 0xD800) << 10) +
			    ((unsigned long)l - 0xDC00);
		} else if (u >= 0xDC00 && u <= 0xDFFF)
			return -1;
		if (cp == 0)
			return -1;
		o += put_utf8(out + o, cp);
	}
	out[o] = 0;
	return (long)o;
}

int
json_obj_get(const struct json_doc *d, int tok, const char *key)
{
	if (!tok_ok(d, tok) || d->toks[tok].type != JSON_OBJECT || !key)
		return -1;
	size_t klen = strlen(key);
	int k = tok + 1;
	for (int i = 0; i < d->toks[tok].size; i++) {
		if (k + 1 >= d->ntoks)
			return -1;
		const struct json_tok *kt = &d->toks[k];
		const char *ks = d->text + kt->start;
		size_t kn = (size_t)(kt->end - kt->start);
		if (memchr(ks, '\\', kn)) {
			char *dec = malloc(kn + 1);
			if (!dec)
				return -1;
			long dn = decode_string(ks, kn, dec);
			int eq = dn >= 0 && (size_t)dn == klen &&
			    memcmp(dec, key, klen) == 0;
			free(dec);
			if (eq)
				return k + 1;
		} else if (kn == klen && memcmp(ks, key, klen) == 0)
			return k + 1;
		k = d->toks[k + 1].next;
	}
	return -1;
}

int
json_arr_get(const struct json_doc *d, int tok, int i)
{
	if (!tok_ok(d, tok) || d->toks[tok].type != JSON_ARRAY || i < 0 ||
	    i >= d->toks[tok].size)
		return -1;
	int e = tok + 1;
	while (i-- > 0)
		e = d->toks[e].next;
	return e < d->ntoks ? e : -1;
}

char *
json_str(const struct json_doc *d, int tok)
{
	if (!tok_ok(d, tok) || d->toks[tok].type != JSON_STRING)
		return NULL;
	const struct json_tok *t = &d->toks[tok];
	size_t n = (size_t)(t->end - t->start);
	char *out = malloc(n + 1);
	if (!out)
		return NULL;
	if (decode_string(d->text + t->start, n, out) < 0) {
		free(out);
		return NULL;
	}
	return out;
}

int64_t
json_int(const struct json_doc *d, int tok, int *ok)
{
	int dummy;
	if (!ok)
		ok = &dummy;
	*ok = 0;
	if (!tok_ok(d, tok) || d->toks[tok].type != JSON_NUMBER)
		return 0;
	const char *s = d->text + d->toks[tok].start;
	size_t n = (size_t)(d->toks[tok].end - d->toks[tok].start);
	size_t i = 0;
	int neg = 0;
	if (i < n && s[i] == '-') {
		neg = 1;
		i++;
	}
	/* Plain integers exactly, with overflow detection. */
	uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX;
	size_t j = i;
	while (j < n && is_digit(s[j])) {
		unsigned dg = (unsigned)(s[j] - '0');
		if (v > (lim - dg) / 10)
			return 0;
		v = v * 10 + dg;
		j++;
	}
	if (j == n) {
		*ok = 1;
		if (neg)
			return v == (uint64_t)INT64_MAX + 1 ? INT64_MIN
							     : -(int64_t)v;
		return (int64_t)v;
	}
	/* Fraction or exponent: accepted only when the value is integral. */
	char buf[64];
	if (n >= sizeof(buf))
		return 0;
	memcpy(buf, s, n);
	buf[n] = 0;
	double x = strtod(buf, NULL);
	/* The range test is false for NaN; the cast is defined inside it. */
	if (!(x >= -9.2233720368547758e18 && x < 9.2233720368547758e18))
		return 0;
	int64_t iv = (int64_t)x;
	if ((double)iv != x)
		return 0; /* not integral */
	*ok = 1;
	return iv;
}

int
json_bool(const struct json_doc *d, int tok)
{
	if (!tok_ok(d, tok) || d->toks[tok].type != JSON_BOOL)
		return 0;
	return d->text[d->toks[tok].start] == 't';
}

int
json_put_strn(struct dbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	/* On failure b is rolled back to where it was. */
	size_t start = b->len;
	int r = dbuf_add(b, "\"", 1);
	size_t i = 0;
	while (r == 0 && i < n) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		const char *out = esc;
		size_t on;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			on = 2;
			i++;
		} else if (c < 0x20) {
			const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r"
			    : c == '\t' ? "\\t" : c == '\b' ? "\\b"
			    : c == '\f' ? "\\f" : NULL;
			if (named) {
				out = named;
				on = 2;
			} else {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 15];
				on = 6;
			}
			i++;
		} else if (c < 0x80) {
			/* Copy the run of plain ASCII at once. */
			size_t j = i;
			while (j < n && (unsigned char)s[j] >= 0x20 &&
			    (unsigned char)s[j] < 0x80 && s[j] != '"' &&
			    s[j] != '\\')
				j++;
			out = s + i;
			on = j - i;
			i = j;
		} else {
			size_t sl = utf8_seq_len((const unsigned char *)s, n, i);
			if (sl) {
				out = s + i;
				on = sl;
				i += sl;
			} else {
				/* Invalid UTF-8 cannot be represented: U+FFFD,
				 * so the output is always valid JSON. */
				out = "\\ufffd";
				on = 6;
				i++;
			}
		}
		r = dbuf_add(b, out, on);
	}
	if (r == 0)
		r = dbuf_add(b, "\"", 1);
	if (r) {
		b->len = start;
		if (b->p)
			b->p[start] = 0;
	}
	return r;
}

int
json_put_str(struct dbuf *b, const char *s)
{
	return json_put_strn(b, s, strlen(s));
}
