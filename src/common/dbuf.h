/*
 * dbuf.h: a growable byte buffer with a hard size limit, after curl's dynbuf.
 * Every buffer fed by a peer has a limit; going past it fails with -E2BIG and
 * leaves the buffer as it was, so a peer can never make us allocate without
 * bound.  The buffer is always NUL-terminated (not counted in len).
 */
#ifndef FERRY_DBUF_H
#define FERRY_DBUF_H

#include <stddef.h>

struct dbuf {
	char *p;
	size_t len;
	size_t cap;
	size_t max; /* hard limit on len */
};

void dbuf_init(struct dbuf *b, size_t max);
void dbuf_free(struct dbuf *b);
void dbuf_reset(struct dbuf *b); /* len = 0, keeps memory */
int dbuf_add(struct dbuf *b, const void *p, size_t n);
int dbuf_adds(struct dbuf *b, const char *s);
int dbuf_printf(struct dbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hands the bytes to the caller (who frees them) and resets *b. */
char *dbuf_take(struct dbuf *b);

#endif
