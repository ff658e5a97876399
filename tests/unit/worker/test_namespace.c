/* Unit tests for key/prefix validation, ferry path splitting and Range parsing. */
#include <errno.h>
#include <string.h>

#include "http/http_range.h"
#include "tap.h"
#include "worker/namespace.h"

#define KV(s) key_validate(s, strlen(s))
#define PV(s) prefix_validate(s, strlen(s))

TEST(keys_valid)
{
	CHECK_EQ_INT(KV("a"), 0);
	CHECK_EQ_INT(KV("dir/sub/file.bin"), 0);
	CHECK_EQ_INT(KV("with space/ünïcødé/日本.txt"), 0);
	CHECK_EQ_INT(KV("a..b/.hidden/x."), 0);
	/* directory marker objects, as the S3 console makes for folders */
	CHECK_EQ_INT(KV("dir/"), 0);
	CHECK_EQ_INT(KV("a/b c/"), 0);
}

TEST(keys_traversal_refused)
{
	CHECK_EQ_INT(KV(".."), -EINVAL);
	CHECK_EQ_INT(KV("../etc/passwd"), -EINVAL);
	CHECK_EQ_INT(KV("a/../../b"), -EINVAL);
	CHECK_EQ_INT(KV("a/./b"), -EINVAL);
	CHECK_EQ_INT(KV("a//b"), -EINVAL);
	CHECK_EQ_INT(KV("/abs"), -EINVAL);
	CHECK_EQ_INT(KV("a/.."), -EINVAL);
	CHECK_EQ_INT(KV(""), -EINVAL);
	CHECK_EQ_INT(key_validate("a\0b", 3), -EINVAL);
	CHECK_EQ_INT(KV("bad\xff"), -EINVAL);
	CHECK_EQ_INT(KV("over\xc0\xaflong"), -EINVAL);
	CHECK_EQ_INT(KV("new\nline"), -EINVAL);
	CHECK_EQ_INT(KV("../dir/"), -EINVAL);
	CHECK_EQ_INT(KV("a/./"), -EINVAL);
	CHECK_EQ_INT(KV("a//"), -EINVAL);
	CHECK_EQ_INT(KV("/"), -EINVAL);
	CHECK_EQ_INT(KV("x\x01/"), -EINVAL);
	char big[1100];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	CHECK_EQ_INT(KV(big), -ENAMETOOLONG);
}

TEST(prefixes)
{
	CHECK_EQ_INT(PV(""), 0);
	CHECK_EQ_INT(PV("dir/"), 0);
	CHECK_EQ_INT(PV("dir/par"), 0);
	/* Partial names are strings: "." may begin ".hidden". */
	CHECK_EQ_INT(PV("."), 0);
	CHECK_EQ_INT(PV("dir/.."), 0);
	CHECK_EQ_INT(PV("dir/.h"), 0);
	/* Complete ".", ".." or empty segments begin no valid key. */
	CHECK_EQ_INT(PV("../"), 1);
	CHECK_EQ_INT(PV("a/./b"), 1);
	CHECK_EQ_INT(PV("a//"), 1);
	CHECK_EQ_INT(PV("/a"), 1);
	/* control characters begin no key: an empty listing, not an error */
	CHECK_EQ_INT(PV("a\x01"), 1);
	CHECK_EQ_INT(PV("dir/\n"), 1);
	CHECK_EQ_INT(PV("\x7f"), 1);
	CHECK_EQ_INT(PV("bad\xff"), -EINVAL);
	CHECK_EQ_INT(prefix_validate("a\0b", 3), -EINVAL);
}

TEST(path_split)
{
	const char *m, *k;
	size_t ml, kl;
	CHECK_EQ_INT(ferry_path_split("/train/a/b.bin", &m, &ml, &k, &kl), 0);
	CHECK(ml == 5 && memcmp(m, "train", 5) == 0);
	CHECK(kl == 7 && memcmp(k, "a/b.bin", 7) == 0);
	CHECK_EQ_INT(ferry_path_split("/train/", &m, &ml, &k, &kl), 0);
	CHECK(ml == 5 && kl == 0);
	CHECK_EQ_INT(ferry_path_split("/", &m, &ml, &k, &kl), 0);
	CHECK(ml == 0 && kl == 0);
	CHECK_EQ_INT(ferry_path_split("rel", &m, &ml, &k, &kl), -EINVAL);
}

#define RANGE(v, size, pa, pb) http_parse_range(v, strlen(v), size, pa, pb)

TEST(ranges)
{
	int64_t a = -1, b = -1;
	CHECK_EQ_INT(http_parse_range(NULL, 0, 100, &a, &b), 0);
	CHECK_EQ_INT(RANGE("bytes=0-9", 100, &a, &b), 1);
	CHECK(a == 0 && b == 9);
	CHECK_EQ_INT(RANGE("bytes=90-", 100, &a, &b), 1);
	CHECK(a == 90 && b == 99);
	CHECK_EQ_INT(RANGE("bytes=90-1000", 100, &a, &b), 1);
	CHECK(a == 90 && b == 99);
	CHECK_EQ_INT(RANGE("bytes=-10", 100, &a, &b), 1);
	CHECK(a == 90 && b == 99);
	CHECK_EQ_INT(RANGE("bytes=-1000", 100, &a, &b), 1);
	CHECK(a == 0 && b == 99);
	CHECK_EQ_INT(RANGE("bytes=100-", 100, &a, &b), -1);
	CHECK_EQ_INT(RANGE("bytes=-0", 100, &a, &b), -1);
	CHECK_EQ_INT(RANGE("bytes=0-0", 0, &a, &b), -1);
	/* Ignored: malformed, reversed, several ranges, other units. */
	CHECK_EQ_INT(RANGE("bytes=9-1", 100, &a, &b), 0);
	CHECK_EQ_INT(RANGE("bytes=0-1,5-6", 100, &a, &b), 0);
	CHECK_EQ_INT(RANGE("items=0-1", 100, &a, &b), 0);
	CHECK_EQ_INT(RANGE("bytes=abc", 100, &a, &b), 0);
	CHECK_EQ_INT(RANGE("bytes=-", 100, &a, &b), 0);
	CHECK_EQ_INT(RANGE("bytes=99999999999999999999999-", 100, &a, &b), 0);
}

int
main(void)
{
	RUN(keys_valid);
	RUN(keys_traversal_refused);
	RUN(prefixes);
	RUN(path_split);
	RUN(ranges);
	TAP_DONE();
}
