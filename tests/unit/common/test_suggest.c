/*
 * test_suggest.c: edit distance and "did you mean": typos of one or two
 * edits find their word, unrelated words find nothing, ties go to the
 * first candidate, long words do not overflow the table.
 */
#include <string.h>

#include "common/suggest.h"
#include "tap.h"

TEST(distance)
{
	CHECK_EQ_INT(edit_distance("", ""), 0);
	CHECK_EQ_INT(edit_distance("mount", "mount"), 0);
	CHECK_EQ_INT(edit_distance("mout", "mount"), 1);   /* insert */
	CHECK_EQ_INT(edit_distance("mounts", "mount"), 1); /* delete */
	CHECK_EQ_INT(edit_distance("munt", "mint"), 1);    /* substitute */
	CHECK_EQ_INT(edit_distance("mnuot", "mount"), 2);
	CHECK_EQ_INT(edit_distance("s3.regoin", "s3.region"), 1); /* swap */
	CHECK_EQ_INT(edit_distance("", "abc"), 3);
	CHECK_EQ_INT(edit_distance("kitten", "sitting"), 3);
	char a[200], b[200];
	memset(a, 'x', sizeof(a) - 1);
	a[sizeof(a) - 1] = 0;
	memcpy(b, a, sizeof(b));
	CHECK_EQ_INT(edit_distance(a, b), 0);
	b[5] = 'y';
	CHECK(edit_distance(a, b) > 100);
}

static const char *const cmds[] = {"ls", "stat", "cat", "mount", "unmount",
    "mounts", "stats", "workers", "worker", "fuse", "version", "help"};

static const char *
best(const char *w)
{
	struct suggest s;
	suggest_init(&s, w);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		suggest_try(&s, cmds[i]);
	return suggest_best(&s);
}

TEST(did_you_mean)
{
	CHECK_EQ_STR(best("mout"), "mount");
	CHECK_EQ_STR(best("unmonut"), "unmount");
	CHECK_EQ_STR(best("stst"), "stat");       /* first of stat/stats */
	CHECK_EQ_STR(best("wokrers"), "workers");
	CHECK_EQ_STR(best("lss"), "ls");
	CHECK(best("mount") == NULL);  /* the word itself: nothing to suggest */
	CHECK(best("frobnicate") == NULL);
	CHECK(best("x") == NULL);      /* "ls" is 2 edits from "x": too far */
	CHECK(best("") == NULL);
	struct suggest s;
	suggest_init(&s, "--jsno");
	suggest_try(&s, NULL);
	suggest_try(&s, "--json");
	suggest_try(&s, "--long");
	CHECK_EQ_STR(suggest_best(&s), "--json");
}

int
main(void)
{
	RUN(distance);
	RUN(did_you_mean);
	TAP_DONE();
}
