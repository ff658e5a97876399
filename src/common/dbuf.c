/*
 * dbuf.c: bounded growable buffer (see dbuf.h).  Not thread-safe; a dbuf
 * belongs to one thread at a time.
 */
#include "dbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
dbuf_init(struct dbuf *b, size_t max)
{
	b->p = NULL;
	b->len = b->cap = 0;
	b->max = max;
	b->err = 0;
}

void
dbuf_free(struct dbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

void
dbuf_reset(struct dbuf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->p)
		b->p[0] = 0;
}

/* Records the first failure; returns it. */
static int
fail(struct dbuf *b, int err)
{
	if (!b->err)
		b->err = err;
	return b->err;
}

static int
dbuf_grow(struct dbuf *b, size_t need)
{
	if (b->err)
		return b->err;
	if (need > b->max || need < b->len)
		return fail(b, -E2BIG);
	if (need + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need + 1)
		cap *= 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p = realloc(b->p, cap);
	if (!p)
		return fail(b, -ENOMEM);
	b->p = p;
	b->cap = cap;
	return 0;
}

int
dbuf_add(struct dbuf *b, const void *p, size_t n)
{
	int r = dbuf_grow(b, b->len + n);
	if (r)
		return r;
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = 0;
	return 0;
}

int
dbuf_adds(struct dbuf *b, const char *s)
{
	return dbuf_add(b, s, strlen(s));
}

int
dbuf_printf(struct dbuf *b, const char *fmt, ...)
{
	va_list ap;
	if (b->err)
		return b->err;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return fail(b, -EINVAL);
	int r = dbuf_grow(b, b->len + (size_t)n);
	if (r)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *
dbuf_take(struct dbuf *b)
{
	char *p = b->p;
	if (!p)
		p = calloc(1, 1);
	b->p = NULL;
	b->len = b->cap = 0;
	b->err = 0;
	return p;
}
