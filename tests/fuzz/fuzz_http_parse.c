// FUZZ_SOURCES: src/http/http_parse.c
/*
 * fuzz_http_parse.c: libFuzzer harness for the request-head parser.  Feeds
 * the input to http_parse_request() and checks its contract: the return
 * value is a head length, 0 or one of the documented statuses; a parsed
 * head lies within the input and within HTTP_MAX_HEAD, every pointer in
 * struct http_request points inside it, the head parses the same on its
 * own and its proper prefixes need more bytes; lookups over the result
 * (http_header_get, http_query_get) stay inside it too.  Single-threaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                         \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "invariant failed: %s (line %d)\n",   \
			    #cond, __LINE__);                                 \
			abort();                                              \
		}                                                             \
	} while (0)

static int
within(const char *base, size_t len, const char *p, size_t n)
{
	return p >= base && n <= len && (size_t)(p - base) <= len - n;
}

/* A NUL-terminated copy for the lookup APIs, which take C strings. */
static char *
cstr(const char *p, size_t n)
{
	char *s = malloc(n + 1);
	REQUIRE(s != NULL);
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

static void
check_query(const struct http_request *req, const char *head, size_t hl)
{
	const char *q = req->query;
	size_t ql = req->query_len;
	size_t i = 0;
	while (i < ql) {
		const char *amp = memchr(q + i, '&', ql - i);
		size_t end = amp ? (size_t)(amp - q) : ql;
		const char *eq = memchr(q + i, '=', end - i);
		size_t kl = eq ? (size_t)(eq - (q + i)) : end - i;
		/* names with a NUL cannot be asked for through a C string */
		if (!memchr(q + i, 0, kl)) {
			char *name = cstr(q + i, kl);
			const char *v = NULL;
			size_t vl = 0;
			REQUIRE(http_query_get(q, ql, name, &v, &vl) == 1);
			REQUIRE(within(q, ql, v, vl));
			REQUIRE(within(head, hl, v, vl));
			free(name);
		}
		i = end + 1;
	}
	const char *v;
	size_t vl;
	/* a name that cannot be in a query of this length */
	char *longname = malloc(ql + 2);
	memset(longname, 'k', ql + 1);
	longname[ql + 1] = 0;
	REQUIRE(http_query_get(q, ql, longname, &v, &vl) == 0);
	free(longname);
}

static void
check_parsed(const char *buf, size_t size, const struct http_request *req,
    int r)
{
	size_t hl = (size_t)r;
	REQUIRE(req->head_len == hl);
	REQUIRE(hl <= size && hl <= HTTP_MAX_HEAD);
	REQUIRE(req->method_len > 0 && within(buf, hl, req->method, req->method_len));
	REQUIRE(req->target_len > 0 && within(buf, hl, req->target, req->target_len));
	REQUIRE(req->path == req->target && req->path_len <= req->target_len);
	REQUIRE(within(buf, hl, req->query, req->query_len));
	REQUIRE(req->query >= req->target &&
	    req->query + req->query_len <= req->target + req->target_len);
	if (req->path_len < req->target_len)
		REQUIRE(req->target[req->path_len] == '?');
	REQUIRE(req->version_minor == 0 || req->version_minor == 1);
	REQUIRE(req->nheaders >= 0 && req->nheaders <= HTTP_MAX_HEADERS);
	REQUIRE(req->content_length >= -1);
	REQUIRE(!(req->chunked && req->content_length >= 0));
	REQUIRE(req->keep_alive == 0 || req->keep_alive == 1);
	REQUIRE(req->expect_continue == 0 || req->expect_continue == 1);
	REQUIRE(!req->expect_continue || req->version_minor == 1);
	REQUIRE(req->target[0] == '/' || (req->target_len == 1 &&
	    req->target[0] == '*'));
	REQUIRE(hl >= 2 && buf[hl - 1] == '\n');

	for (int i = 0; i < req->nheaders; i++) {
		const struct http_header *h = &req->headers[i];
		REQUIRE(h->name_len > 0 && within(buf, hl, h->name, h->name_len));
		REQUIRE(within(buf, hl, h->value, h->value_len));
		REQUIRE(!memchr(h->name, ':', h->name_len));
		for (size_t k = 0; k < h->value_len; k++)
			REQUIRE(h->value[k] != '\r' && h->value[k] != '\n' &&
			    h->value[k] != 0);
		if (h->value_len > 0)
			REQUIRE(h->value[0] != ' ' && h->value[0] != '\t' &&
			    h->value[h->value_len - 1] != ' ' &&
			    h->value[h->value_len - 1] != '\t');
		/* the lookup finds this name (its first occurrence) */
		char *name = cstr(h->name, h->name_len);
		size_t vl = 0;
		const char *v = http_header_get(req, name, &vl);
		REQUIRE(v != NULL && within(buf, hl, v, vl));
		int first = -1;
		for (int j = 0; j <= i && first < 0; j++)
			if (req->headers[j].name_len == h->name_len &&
			    strncasecmp(req->headers[j].name, name, h->name_len) == 0)
				first = j;
		REQUIRE(first >= 0 && v == req->headers[first].value);
		free(name);
	}
	check_query(req, buf, hl);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_request req, req2;
	const char *buf = (const char *)data;

	int r = http_parse_request(buf, size, &req);
	if (r < 0) {
		REQUIRE(r == -400 || r == -414 || r == -431 || r == -501 ||
		    r == -505);
		return 0;
	}
	if (r == 0) {
		REQUIRE(size < HTTP_MAX_HEAD);
		return 0;
	}
	check_parsed(buf, size, &req, r);

	/* The head alone parses identically (nothing after it matters). */
	size_t hl = (size_t)r;
	char *copy = malloc(hl);
	REQUIRE(copy != NULL);
	memcpy(copy, buf, hl);
	REQUIRE(http_parse_request(copy, hl, &req2) == r);
	REQUIRE(req2.nheaders == req.nheaders &&
	    req2.content_length == req.content_length &&
	    req2.chunked == req.chunked && req2.keep_alive == req.keep_alive);
	/* Proper prefixes of a valid head ask for more bytes. */
	size_t cuts[3] = {hl - 1, hl / 2, hl > 3 ? hl - 3 : 0};
	for (int i = 0; i < 3; i++)
		REQUIRE(http_parse_request(copy, cuts[i], &req2) == 0);
	free(copy);
	return 0;
}
