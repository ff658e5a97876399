/*
 * http_parse.c: the HTTP/1.1 request-head parser (see http_parse.h), plus
 * header and query-string lookups and reason phrases.
 *
 * Called on the HTTP server's waiter and connection threads (and by the
 * fuzz harness); pure functions with no shared state.  Zero-copy: every
 * pointer stored in struct http_request points into the caller's buffer,
 * which must outlive the request.  Bounded: the parser never looks past
 * HTTP_MAX_HEAD bytes, and it only returns 0 ("need more") when what it
 * has seen is a proper prefix of a head that could still fit within every
 * limit.  Lines end in CRLF or a bare LF; any other control byte (NUL,
 * lone CR, ...) is a 400.
 */
#include "http_parse.h"

#include <string.h>
#include <strings.h>

/* Empty lines tolerated before the request line (RFC 9112 2.2); bounded so
 * a peer cannot make the server rescan a head of blank lines forever. */
#define HTTP_MAX_LEADING_EMPTY 8

/* RFC 9110 tchar. */
static const unsigned char tchar_tab[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
	['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
	['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
	['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
	['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
	['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
	['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

static inline int
is_tchar(unsigned char ch)
{
	return tchar_tab[ch];
}

/* Field-value bytes: VCHAR, SP, HTAB and obs-text; never NUL, CR, LF, DEL. */
static inline int
is_value_char(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/* Request-target bytes: visible ASCII and (practically) raw high bytes. */
static inline int
is_target_char(unsigned char ch)
{
	return ch > 0x20 && ch != 0x7f;
}

static int
span_ieq(const char *s, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n == l && strncasecmp(s, lit, l) == 0;
}

static void
trim_ows(const char **s, size_t *n)
{
	const char *p = *s;
	size_t l = *n;
	while (l > 0 && (p[0] == ' ' || p[0] == '\t')) {
		p++;
		l--;
	}
	while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
		l--;
	*s = p;
	*n = l;
}

/*
 * Parses "METHOD SP target SP HTTP/1.x" (line without its terminator).
 * Returns 0 or a negative status.
 */
static int
parse_request_line(const char *line, size_t n, struct http_request *req)
{
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)line[i]))
		i++;
	if (i == 0 || i >= n || line[i] != ' ')
		return -400;
	req->method = line;
	req->method_len = i;
	i++;

	size_t t0 = i;
	while (i < n && is_target_char((unsigned char)line[i]))
		i++;
	if (i == t0 || i >= n || line[i] != ' ')
		return -400;
	req->target = line + t0;
	req->target_len = i - t0;
	i++;

	const char *v = line + i;
	size_t vn = n - i;
	if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' ||
	    v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9')
		return -400;
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return -505;
	req->version_minor = v[7] - '0';

	/* origin-form, or "*" for OPTIONS; absolute- and authority-form are
	 * not served here. */
	if (req->target[0] == '*') {
		/* Methods are case-sensitive. */
		if (req->target_len != 1 || req->method_len != 7 ||
		    memcmp(req->method, "OPTIONS", 7) != 0)
			return -400;
	} else if (req->target[0] != '/') {
		return -400;
	}
	const char *q = memchr(req->target, '?', req->target_len);
	req->path = req->target;
	if (q) {
		req->path_len = (size_t)(q - req->target);
		req->query = q + 1;
		req->query_len = req->target_len - req->path_len - 1;
	} else {
		req->path_len = req->target_len;
		req->query = req->target + req->target_len; /* "" */
		req->query_len = 0;
	}
	return 0;
}

/* Content-Length: 1*DIGIT, no sign, no list, no overflow. */
static int
parse_content_length(const char *v, size_t n, int64_t *out)
{
	if (n == 0)
		return -400;
	int64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -400;
		int d = v[i] - '0';
		if (x > (INT64_MAX - d) / 10)
			return -400;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

/* Connection: a comma-separated list of tokens. */
static void
apply_connection(const char *v, size_t n, int *saw_close, int *saw_keep)
{
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && v[j] != ',')
			j++;
		const char *tok = v + i;
		size_t tl = j - i;
		trim_ows(&tok, &tl);
		if (span_ieq(tok, tl, "close"))
			*saw_close = 1;
		else if (span_ieq(tok, tl, "keep-alive"))
			*saw_keep = 1;
		i = j + 1;
	}
}

/* Interprets the header fields that change framing or connection reuse. */
static int
apply_header(struct http_request *req, const struct http_header *h,
    int *saw_cl, int *saw_te, int *saw_host, int *saw_close, int *saw_keep)
{
	const char *name = h->name;
	size_t nl = h->name_len;

	if (span_ieq(name, nl, "content-length")) {
		int64_t cl;
		if (parse_content_length(h->value, h->value_len, &cl) < 0)
			return -400;
		/* Duplicates are only tolerated when they agree. */
		if (*saw_cl && cl != req->content_length)
			return -400;
		*saw_cl = 1;
		req->content_length = cl;
	} else if (span_ieq(name, nl, "transfer-encoding")) {
		if (!span_ieq(h->value, h->value_len, "chunked"))
			return -501;
		/* chunked applied twice is malformed (RFC 9112 6.1). */
		if (*saw_te)
			return -400;
		*saw_te = 1;
		req->chunked = 1;
	} else if (span_ieq(name, nl, "connection")) {
		apply_connection(h->value, h->value_len, saw_close, saw_keep);
	} else if (span_ieq(name, nl, "expect")) {
		/* HTTP/1.0 clients cannot mean 100-continue (RFC 9110 10.1.1). */
		if (req->version_minor >= 1 &&
		    span_ieq(h->value, h->value_len, "100-continue"))
			req->expect_continue = 1;
	} else if (span_ieq(name, nl, "host")) {
		/* Two Hosts make the authority (and a signature over it)
		 * ambiguous. */
		if (*saw_host)
			return -400;
		*saw_host = 1;
	}
	return 0;
}

/* Parses one "name: value" line (without its terminator) into *h. */
static int
parse_header_line(const char *line, size_t n, struct http_header *h)
{
	/* obs-fold continuation lines are rejected (RFC 9112 5.2). */
	if (line[0] == ' ' || line[0] == '\t')
		return -400;
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)line[i]))
		i++;
	/* No name, or whitespace/garbage between name and colon. */
	if (i == 0 || i >= n || line[i] != ':')
		return -400;
	h->name = line;
	h->name_len = i;
	for (size_t j = i + 1; j < n; j++)
		if (!is_value_char((unsigned char)line[j]))
			return -400;
	const char *v = line + i + 1;
	size_t vl = n - i - 1;
	trim_ows(&v, &vl);
	h->value = v;
	h->value_len = vl;
	return 0;
}

int
http_parse_request(const char *buf, size_t len, struct http_request *req)
{
	/* Never look past the limit: a head is at most HTTP_MAX_HEAD bytes. */
	size_t scan = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
	size_t pos = 0;
	int nempty = 0;
	int have_line = 0;
	int saw_cl = 0, saw_te = 0, saw_host = 0, saw_close = 0, saw_keep = 0;

	memset(req, 0, offsetof(struct http_request, headers));
	req->nheaders = 0;
	req->head_len = 0;
	req->content_length = -1;
	req->chunked = 0;
	req->keep_alive = 0;
	req->expect_continue = 0;

	for (;;) {
		const char *line = buf + pos;
		const char *lf = memchr(line, '\n', scan - pos);
		if (!lf) {
			/* Incomplete line: more bytes are needed unless a
			 * limit is already exceeded. */
			size_t partial = scan - pos;
			if (!have_line && partial > HTTP_MAX_LINE &&
			    !(partial == HTTP_MAX_LINE + 1 &&
			    line[partial - 1] == '\r'))
				return -414;
			if (len >= HTTP_MAX_HEAD)
				return have_line ? -431 : -414;
			/* A partial line that can never become valid. */
			for (size_t k = 0; k < partial; k++) {
				unsigned char ch = (unsigned char)line[k];
				if (ch == 0 || (ch == '\r' && k + 1 < partial))
					return -400;
			}
			return 0;
		}
		size_t ll = (size_t)(lf - line);
		pos += ll + 1;
		if (ll > 0 && line[ll - 1] == '\r')
			ll--;

		if (!have_line) {
			if (ll == 0) {
				if (++nempty > HTTP_MAX_LEADING_EMPTY)
					return -400;
				continue;
			}
			if (ll > HTTP_MAX_LINE)
				return -414;
			int r = parse_request_line(line, ll, req);
			if (r < 0)
				return r;
			have_line = 1;
			continue;
		}
		if (ll == 0)
			break; /* end of head */
		if (req->nheaders >= HTTP_MAX_HEADERS)
			return -431;
		struct http_header *h = &req->headers[req->nheaders];
		int r = parse_header_line(line, ll, h);
		if (r < 0)
			return r;
		req->nheaders++;
		r = apply_header(req, h, &saw_cl, &saw_te, &saw_host, &saw_close,
		    &saw_keep);
		if (r < 0)
			return r;
	}

	/* Both framings at once is a smuggling vector (RFC 9112 6.3). */
	if (saw_cl && saw_te)
		return -400;
	if (req->version_minor >= 1)
		req->keep_alive = !saw_close;
	else
		req->keep_alive = saw_keep && !saw_close;
	req->head_len = pos;
	return (int)pos;
}

const char *
http_header_get(const struct http_request *req, const char *name,
    size_t *vlen)
{
	size_t nl = strlen(name);
	for (int i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name_len == nl && strncasecmp(h->name, name, nl) == 0) {
			if (vlen)
				*vlen = h->value_len;
			return h->value;
		}
	}
	if (vlen)
		*vlen = 0;
	return NULL;
}

int
http_query_get(const char *query, size_t qlen, const char *name,
    const char **val, size_t *vlen)
{
	size_t nl = strlen(name);
	size_t i = 0;
	while (i < qlen) {
		const char *amp = memchr(query + i, '&', qlen - i);
		size_t end = amp ? (size_t)(amp - query) : qlen;
		const char *p = query + i;
		size_t pl = end - i;
		const char *eq = memchr(p, '=', pl);
		size_t kl = eq ? (size_t)(eq - p) : pl;
		if (kl == nl && memcmp(p, name, nl) == 0) {
			if (val)
				*val = eq ? eq + 1 : p + pl;
			if (vlen)
				*vlen = eq ? pl - kl - 1 : 0;
			return 1;
		}
		i = end + 1;
	}
	return 0;
}

const char *
http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default: break;
	}
	if (status >= 100 && status < 200)
		return "Informational";
	if (status >= 200 && status < 300)
		return "Success";
	if (status >= 300 && status < 400)
		return "Redirection";
	if (status >= 400 && status < 500)
		return "Client Error";
	return "Server Error";
}
