/*
 * test_fnode.c: the inode table of `ferry fuse`: numbers stable per path,
 * lookup counts and forget, growth, the per-open version decisions
 * (keep_cache, direct I/O), and concurrent use from threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fuse/fnode.h"
#include "tap.h"

TEST(root_exists_and_is_never_forgotten)
{
	struct fnode_table t;
	CHECK(fnode_table_init(&t) == 0);
	char p[64];
	int is_dir = 0;
	CHECK(fnode_path(&t, FNODE_ROOT, p, sizeof(p), &is_dir) == 0);
	CHECK_EQ_STR(p, "/");
	CHECK(is_dir == 1);
	fnode_forget(&t, FNODE_ROOT, 1000);
	CHECK(fnode_path(&t, FNODE_ROOT, p, sizeof(p), NULL) == 0);
	CHECK(fnode_path(&t, 12345, p, sizeof(p), NULL) == -ENOENT);
	CHECK(fnode_path(&t, FNODE_ROOT, p, 1, NULL) == -ENAMETOOLONG);
	CHECK_EQ_INT(fnode_count(&t), 1);
	fnode_table_free(&t);
}

TEST(lookup_counts_and_forget)
{
	struct fnode_table t;
	CHECK(fnode_table_init(&t) == 0);
	uint64_t a, b, c;
	CHECK(fnode_ref(&t, "/m/a", 0, 7, 1, &a) == 0);
	CHECK(fnode_ref(&t, "/m/a", 0, 7, 2, &b) == 0);
	CHECK(a == b && a > FNODE_ROOT && a <= (uint64_t)INT64_MAX);
	CHECK(fnode_ref(&t, "/m", 1, 0, 1, &c) == 0);
	CHECK(c != a);
	CHECK_EQ_INT(fnode_count(&t), 3);
	char p[64];
	int is_dir = -1;
	CHECK(fnode_path(&t, a, p, sizeof(p), &is_dir) == 0);
	CHECK_EQ_STR(p, "/m/a");
	CHECK(is_dir == 0);
	fnode_forget(&t, a, 2); /* 3 - 2: still known */
	CHECK(fnode_path(&t, a, p, sizeof(p), NULL) == 0);
	fnode_forget(&t, a, 1);
	CHECK(fnode_path(&t, a, p, sizeof(p), NULL) == -ENOENT);
	CHECK_EQ_INT(fnode_count(&t), 2);
	fnode_forget(&t, 999, 1); /* unknown: ignored */
	/* Looked up again after forget: the same number. */
	CHECK(fnode_peek_ino(&t, "/m/a") == a);
	uint64_t a2;
	CHECK(fnode_ref(&t, "/m/a", 0, 7, 1, &a2) == 0);
	CHECK(a2 == a);
	/* Forgetting more than was looked up drops it (no wrap-around). */
	fnode_forget(&t, a, 100);
	CHECK(fnode_path(&t, a, p, sizeof(p), NULL) == -ENOENT);
	fnode_table_free(&t);
}

TEST(many_paths_distinct_numbers_and_growth)
{
	struct fnode_table t;
	CHECK(fnode_table_init(&t) == 0);
	enum { N = 20000 };
	static uint64_t inos[N];
	char p[64], q[64];
	for (int i = 0; i < N; i++) {
		snprintf(p, sizeof(p), "/m/dir/f%06d", i);
		CHECK(fnode_ref(&t, p, 0, 0, 1, &inos[i]) == 0);
	}
	CHECK_EQ_INT(fnode_count(&t), N + 1);
	int bad = 0;
	for (int i = 0; i < N; i++) {
		snprintf(p, sizeof(p), "/m/dir/f%06d", i);
		if (fnode_path(&t, inos[i], q, sizeof(q), NULL) != 0 || strcmp(p, q) != 0)
			bad++;
		if (fnode_peek_ino(&t, p) != inos[i])
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	for (int i = 0; i < N; i += 2)
		fnode_forget(&t, inos[i], 1);
	CHECK_EQ_INT(fnode_count(&t), N / 2 + 1);
	for (int i = 1; i < N; i += 2)
		if (fnode_path(&t, inos[i], q, sizeof(q), NULL) != 0)
			bad++;
	CHECK_EQ_INT(bad, 0);
	fnode_table_free(&t);
}

TEST(open_versions)
{
	struct fnode_table t;
	CHECK(fnode_table_init(&t) == 0);
	uint64_t ino;
	int keep, direct;
	CHECK(fnode_ref(&t, "/m/f", 0, 100, 1, &ino) == 0);
	/* First open: nothing cached yet to keep. */
	fnode_open(&t, ino, 100, &keep, &direct);
	CHECK(keep == 0 && direct == 0);
	/* Same version again: keep the page cache. */
	fnode_open(&t, ino, 100, &keep, &direct);
	CHECK(keep == 1 && direct == 0);
	/* The file changed but the kernel's attributes are of 100: bypass. */
	fnode_open(&t, ino, 200, &keep, &direct);
	CHECK(keep == 0 && direct == 1);
	/* The kernel learns of 200 (getattr): cached I/O again; the first
	 * such open drops the page cache (a direct open is not trusted to
	 * have), the next keeps it. */
	fnode_note_kver(&t, ino, 200);
	fnode_open(&t, ino, 200, &keep, &direct);
	CHECK(direct == 0 && keep == 0);
	fnode_open(&t, ino, 200, &keep, &direct);
	CHECK(direct == 0 && keep == 1);
	/* Changed, and a lookup told the kernel so: cached, cache dropped. */
	fnode_ref(&t, "/m/f", 0, 300, 1, &ino);
	fnode_open(&t, ino, 300, &keep, &direct);
	CHECK(direct == 0 && keep == 0);
	fnode_open(&t, ino, 300, &keep, &direct);
	CHECK(direct == 0 && keep == 1);
	/* Unknown inode: no keeping, no bypass. */
	fnode_open(&t, 4242, 1, &keep, &direct);
	CHECK(keep == 0 && direct == 0);
	fnode_table_free(&t);
}

TEST(would_keep_matches_open)
{
	struct fnode_table t;
	CHECK(fnode_table_init(&t) == 0);
	uint64_t ino;
	int keep, direct;
	CHECK(fnode_ref(&t, "/m/f", 0, 100, 1, &ino) == 0);
	CHECK(fnode_would_keep(&t, ino, 100) == 0);
	fnode_open(&t, ino, 100, &keep, &direct);
	/* Asking changes nothing; the answer is what the open would do. */
	CHECK(fnode_would_keep(&t, ino, 100) == 1);
	CHECK(fnode_would_keep(&t, ino, 100) == 1);
	CHECK(fnode_would_keep(&t, ino, 200) == 0);
	fnode_open(&t, ino, 100, &keep, &direct);
	CHECK(keep == 1);
	CHECK(fnode_would_keep(&t, 4242, 1) == 0);
	fnode_table_free(&t);
}

TEST(directory_listing_kept)
{
	struct fnode_table t;
	CHECK(fnode_table_init(&t) == 0);
	uint64_t d;
	CHECK(fnode_ref(&t, "/m/d", 1, 0, 1, &d) == 0);
	/* The first open starts the listing the kernel caches: not kept. */
	CHECK(fnode_opendir(&t, d, 1000, 5000) == 0);
	CHECK(fnode_opendir(&t, d, 2000, 5000) == 1);
	CHECK(fnode_opendir(&t, d, 5999, 5000) == 1);
	/* Past keep_ms from the listing's start: listed again, and that
	 * listing is kept from its own start. */
	CHECK(fnode_opendir(&t, d, 6000, 5000) == 0);
	CHECK(fnode_opendir(&t, d, 10999, 5000) == 1);
	/* A change drops it: the next open lists again. */
	fnode_dir_changed(&t, d);
	CHECK(fnode_opendir(&t, d, 11000, 5000) == 0);
	CHECK(fnode_opendir(&t, d, 11001, 5000) == 1);
	/* keep_ms 0 (attribute timeout 0): never kept. */
	CHECK(fnode_opendir(&t, d, 11002, 0) == 0);
	/* (That open's listing starts at 11002.)  A renamed directory is
	 * listed again under its new name. */
	CHECK(fnode_opendir(&t, d, 12000, 5000) == 1);
	CHECK(fnode_rename(&t, "/m/d", "/m/e") == 0);
	CHECK(fnode_opendir(&t, d, 12001, 5000) == 0);
	/* Unknown inode: nothing kept. */
	CHECK(fnode_opendir(&t, 4242, 1, 5000) == 0);
	fnode_dir_changed(&t, 4242);
	fnode_table_free(&t);
}

struct thr_arg {
	struct fnode_table *t;
	int id;
	int bad;
};

static void *
thr_main(void *p)
{
	struct thr_arg *a = p;
	char path[64], back[64];
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 500; i++) {
			uint64_t ino;
			snprintf(path, sizeof(path), "/m/shared/%d", i);
			if (fnode_ref(a->t, path, 0, 0, 1, &ino) != 0 ||
			    fnode_path(a->t, ino, back, sizeof(back), NULL) != 0 ||
			    strcmp(path, back) != 0)
				a->bad++;
			fnode_forget(a->t, ino, 1);
		}
	}
	return NULL;
}

TEST(threads)
{
	struct fnode_table t;
	CHECK(fnode_table_init(&t) == 0);
	pthread_t th[4];
	struct thr_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thr_arg){.t = &t, .id = i};
		pthread_create(&th[i], NULL, thr_main, &args[i]);
	}
	int bad = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		bad += args[i].bad;
	}
	CHECK_EQ_INT(bad, 0);
	CHECK_EQ_INT(fnode_count(&t), 1); /* every reference given back */
	fnode_table_free(&t);
}

/* A rename moves the number with the name: the kernel's inode of "a" is
 * "b" now; the inode that was "b" keeps its number under no ferry path. */
TEST(rename_moves_the_number)
{
	struct fnode_table t;
	CHECK_EQ_INT(fnode_table_init(&t), 0);
	uint64_t a, b, again;
	CHECK_EQ_INT(fnode_ref(&t, "/m/a", 0, 7, 1, &a), 0);
	CHECK_EQ_INT(fnode_ref(&t, "/m/b", 0, 8, 1, &b), 0);
	CHECK_EQ_INT(fnode_rename(&t, "/m/a", "/m/b"), 0);
	char path[64];
	CHECK_EQ_INT(fnode_path(&t, a, path, sizeof(path), NULL), 0);
	CHECK_EQ_STR(path, "/m/b");
	CHECK_EQ_INT(fnode_path(&t, b, path, sizeof(path), NULL), 0);
	CHECK(path[0] != '/'); /* no ferry path */
	CHECK_EQ_INT(fnode_ref(&t, "/m/b", 0, 0, 1, &again), 0);
	CHECK(again == a);
	CHECK(fnode_peek_ino(&t, "/m/a") != a);
	/* both still forgettable; the count is what the kernel held */
	fnode_forget(&t, b, 1);
	fnode_forget(&t, a, 2);
	CHECK_EQ_INT(fnode_count(&t), 1);
	/* a name the kernel does not hold: nothing to move */
	CHECK_EQ_INT(fnode_rename(&t, "/m/x", "/m/y"), 0);
	CHECK_EQ_INT(fnode_count(&t), 1);
	fnode_table_free(&t);
}

int
main(void)
{
	RUN(root_exists_and_is_never_forgotten);
	RUN(lookup_counts_and_forget);
	RUN(many_paths_distinct_numbers_and_growth);
	RUN(open_versions);
	RUN(would_keep_matches_open);
	RUN(directory_listing_kept);
	RUN(threads);
	RUN(rename_moves_the_number);
	TAP_DONE();
}
