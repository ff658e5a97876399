/* Unit tests for the escaping helpers of util.c that S3 documents rely on. */
#include <string.h>

#include "common/dbuf.h"
#include "common/util.h"
#include "tap.h"

static int
esc_is(const char *in, size_t n, const char *want)
{
	struct dbuf b;
	dbuf_init(&b, 4096);
	int r = xml_escape(&b, in, n);
	int ok = r == 0 && b.len == strlen(want) && memcmp(b.p, want, b.len) == 0;
	if (!ok)
		fprintf(stderr, "  xml_escape gave '%.*s', want '%s'\n",
		    (int)b.len, b.p ? b.p : "", want);
	dbuf_free(&b);
	return ok;
}

TEST(xml_escape_markup_and_controls)
{
	CHECK(esc_is("plain", 5, "plain"));
	CHECK(esc_is("a<b>&\"'", 7, "a&lt;b&gt;&amp;&quot;&apos;"));
	/* tab and newline stay; other controls become references */
	CHECK(esc_is("a\tb\nc", 5, "a\tb\nc"));
	CHECK(esc_is("a\rb", 3, "a&#13;b"));
	CHECK(esc_is("\x01x\x1f\x7f", 4, "&#1;x&#31;&#127;"));
	CHECK(esc_is("\xc3\xa9", 2, "\xc3\xa9")); /* UTF-8 kept */
	CHECK(esc_is("", 0, ""));
}

int
main(void)
{
	RUN(xml_escape_markup_and_controls);
	TAP_DONE();
}
