/* Unit tests for dbuf: the hard limit, and the sticky first error (a body
 * built by many appends is whole or marked bad, never missing a middle
 * piece: the regression was a failed append followed by successful ones). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/dbuf.h"
#include "tap.h"

TEST(appends_within_limit)
{
	struct dbuf b;
	dbuf_init(&b, 16);
	CHECK_EQ_INT(dbuf_adds(&b, "abc"), 0);
	CHECK_EQ_INT(dbuf_printf(&b, "%d-%s", 42, "x"), 0);
	CHECK_EQ_STR(b.p, "abc42-x");
	CHECK_EQ_INT(b.len, 7);
	CHECK_EQ_INT(dbuf_error(&b), 0);
	CHECK_EQ_INT(dbuf_add(&b, "123456789", 9), 0); /* exactly 16 */
	CHECK_EQ_INT(b.len, 16);
	dbuf_free(&b);
}

TEST(failed_append_is_sticky)
{
	struct dbuf b;
	dbuf_init(&b, 8);
	CHECK_EQ_INT(dbuf_adds(&b, "{\"a\":"), 0);
	CHECK_EQ_INT(dbuf_adds(&b, "\"too long a value\""), -E2BIG);
	/* A later append that would fit fails too, and adds nothing. */
	CHECK_EQ_INT(dbuf_adds(&b, "1}"), -E2BIG);
	CHECK_EQ_INT(dbuf_printf(&b, "%d", 1), -E2BIG);
	CHECK_EQ_INT(dbuf_error(&b), -E2BIG);
	CHECK_EQ_STR(b.p, "{\"a\":");
	/* reset starts afresh */
	dbuf_reset(&b);
	CHECK_EQ_INT(dbuf_error(&b), 0);
	CHECK_EQ_INT(dbuf_adds(&b, "{}"), 0);
	CHECK_EQ_STR(b.p, "{}");
	dbuf_free(&b);
}

TEST(take_resets)
{
	struct dbuf b;
	dbuf_init(&b, 4);
	dbuf_adds(&b, "toolong");
	CHECK(dbuf_error(&b) != 0);
	char *p = dbuf_take(&b);
	CHECK(p != NULL);
	free(p);
	CHECK_EQ_INT(dbuf_error(&b), 0);
	CHECK_EQ_INT(dbuf_adds(&b, "ok"), 0);
	dbuf_free(&b);
}

int
main(void)
{
	RUN(appends_within_limit);
	RUN(failed_append_is_sticky);
	RUN(take_resets);
	TAP_DONE();
}
