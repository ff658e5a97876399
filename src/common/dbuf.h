/*
 * dbuf.h: a growable byte buffer with a hard size limit, after curl's dynbuf
 * and varnish's vsb.  Every buffer fed by a peer has a limit; going past it
 * fails with -E2BIG, so a peer can never make us allocate without bound.
 * The first failure is sticky: every later append fails with the same error
 * and adds nothing, so a body built by many appends is either whole or
 * marked bad, never silently missing a piece in the middle.  Callers may
 * ignore each append's result and check dbuf_error() once before the bytes
 * are sent or stored.  The buffer is always NUL-terminated (not counted in
 * len).
 */
#ifndef FERRY_DBUF_H
#define FERRY_DBUF_H

#include <stddef.h>

struct dbuf {
	char *p;
	size_t len;
	size_t cap;
	size_t max; /* hard limit on len */
	int err;    /* 0, or the first append's failure (sticky) */
};

void dbuf_init(struct dbuf *b, size_t max);
void dbuf_free(struct dbuf *b);
void dbuf_reset(struct dbuf *b); /* len = 0 and no error, keeps memory */
/* 0 or the first failure (-E2BIG, -ENOMEM, -EINVAL) since init/reset. */
static inline int
dbuf_error(const struct dbuf *b)
{
	return b->err;
}
int dbuf_add(struct dbuf *b, const void *p, size_t n);
int dbuf_adds(struct dbuf *b, const char *s);
int dbuf_printf(struct dbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (who frees them) and resets *b (check
 * dbuf_error first: the bytes of a failed buffer are incomplete). */
char *dbuf_take(struct dbuf *b);

#endif
