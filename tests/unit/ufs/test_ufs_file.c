/*
 * test_ufs_file.c: the file:// under-store on a temporary tree: ordering
 * ("a/" sorts between "a.txt" and "a0"), unicode and spaces, pagination with
 * start_after for several page sizes in both listing modes, prefixes,
 * delimiters other than '/', empty directories as "dir/" marker objects,
 * symlinks inside and escaping the root, skipped names, reads at offsets,
 * errors, and a random tree against a brute-force S3 reference (also
 * with its directories' sorted windows cached, and with windows made tiny
 * by a small budget).  Every test runs twice: with openat2 and with the realpath
 * fallback (FERRY_UFS_FILE_NO_OPENAT2).
 *
 * Listing cost: a directory of 20,000 names listed in pages of 1,000 is
 * read once (readdir() is wrapped here to count whole passes), not once
 * a page, in both listing modes; one changed between pages is listed as
 * it is now.
 *
 * Writes, through the wrapper layer (ufs_put_*, ufs_remove, ufs_copy): the
 * bytes read back for sizes 0 to several MiB in chunks of every size, the
 * commit's stat equal to stat's, a same-size overwrite getting a new ETag,
 * abort leaving nothing (no temporary file, no directory it made),
 * conditions (also a racing writer), ".." and symlinks out of the root
 * refused, a symlink at the key replaced and not written through, remove
 * pruning emptied directories, headers as xattrs, copy, temporary files
 * hidden, writers and removers racing in one directory, a full tmpfs
 * (-ENOSPC, nothing left), and the wrapper's checks, -EROFS, a broken
 * mount, counters and /metrics.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "common/dbuf.h"
#include "common/vas.h"
#include "ufs/ufs.h"

/* readdir() of this binary (libferry_core.a's calls included): counts the
 * passes that reach the end of a directory. */
static long readdir_ends;

struct dirent *
readdir(DIR *d)
{
	static struct dirent *(*real)(DIR *);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "readdir");
	int e = errno;
	errno = 0;
	struct dirent *de = real(d);
	if (!de && errno == 0)
		__atomic_fetch_add(&readdir_ends, 1, __ATOMIC_RELAXED);
	if (de || errno == 0)
		errno = e;
	return de;
}

static char tmpdir[256];
static char rootdir[300];
static void *st;
static unsigned char big[1 << 20];

static void
put_file(const char *rel, const void *data, size_t n)
{
	char p[2048];
	snprintf(p, sizeof(p), "%s/%s", rootdir, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(p);
		exit(2);
	}
	if (write(fd, data, n) != (ssize_t)n)
		exit(2);
	close(fd);
}

static void
mk(const char *rel)
{
	char p[2048];
	snprintf(p, sizeof(p), "%s/%s", rootdir, rel);
	if (mkdir(p, 0755) < 0) {
		perror(p);
		exit(2);
	}
}

static void
lnk(const char *target, const char *rel)
{
	char p[2048];
	snprintf(p, sizeof(p), "%s/%s", rootdir, rel);
	if (symlink(target, p) < 0) {
		perror(p);
		exit(2);
	}
}

static void
build_tree(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ferry-ufsfile-XXXXXX");
	if (!mkdtemp(tmpdir))
		exit(2);
	snprintf(rootdir, sizeof(rootdir), "%s/root", tmpdir);
	if (mkdir(rootdir, 0755) < 0)
		exit(2);
	char outside[512];
	snprintf(outside, sizeof(outside), "%s/outside.txt", tmpdir);
	int fd = open(outside, O_WRONLY | O_CREAT, 0644);
	if (fd < 0 || write(fd, "secret", 6) != 6)
		exit(2);
	close(fd);

	put_file("a.txt", "hello a", 7);
	put_file("a b.txt", "space", 5);
	put_file("a-", "dash", 4);
	put_file("a0", "zero", 4);
	mk("a");
	put_file("a/b", "bee", 3);
	mk("a/c");
	put_file("a/c/d.bin", big, sizeof(big));
	mk("empty");
	mk("z");
	mk("z/y");
	mk("z/y/x");
	put_file("z/y/x/w.txt", "w", 1);
	lnk("..", "z/y/loop"); /* points at z, an ancestor */
	put_file("\xc3\xbcn\xc3\xaf.txt", "uni", 3);      /* ünï.txt */
	mk("\xe6\x97\xa5\xe6\x9c\xac");                     /* 日本 */
	put_file("\xe6\x97\xa5\xe6\x9c\xac/x", "jp", 2);
	lnk("a.txt", "lnk.txt");
	lnk("../outside.txt", "esc");
	lnk("..", "escdir");
	lnk("nowhere", "dangling");
	put_file("ctl\x01name", "c", 1);
	put_file("bad\xff\xfe", "b", 1);
	char p[2048];
	snprintf(p, sizeof(p), "%s/fifo", rootdir);
	if (mkfifo(p, 0644) < 0)
		exit(2);
	/* Twenty empty dirs before one file: makes the bounded scan of "e/"
	 * rescan when the kept candidates yield nothing. */
	mk("e");
	for (int i = 0; i < 20; i++) {
		char rel[32];
		snprintf(rel, sizeof(rel), "e/d%02d", i);
		mk(rel);
	}
	put_file("e/zz", "zz", 2);
	/* Nothing listable in it: the marker "odd/". */
	mk("odd");
	put_file("odd/ctl\x02", "c", 1);
	snprintf(p, sizeof(p), "%s/odd/fifo", rootdir);
	if (mkfifo(p, 0644) < 0)
		exit(2);
}

/* Empty directories (e/d00 ... e/d19, empty, odd) are their markers. */
static const char *const all_recursive[] = {
    "a b.txt", "a-", "a.txt", "a/b", "a/c/d.bin", "a0", "e/d00/", "e/d01/",
    "e/d02/", "e/d03/", "e/d04/", "e/d05/", "e/d06/", "e/d07/", "e/d08/",
    "e/d09/", "e/d10/", "e/d11/", "e/d12/", "e/d13/", "e/d14/", "e/d15/",
    "e/d16/", "e/d17/", "e/d18/", "e/d19/", "e/zz", "empty/", "lnk.txt",
    "odd/", "z/y/x/w.txt", "\xc3\xbcn\xc3\xaf.txt",
    "\xe6\x97\xa5\xe6\x9c\xac/x"};
static const char *const all_delim[] = {"a b.txt", "a-", "a.txt", "a/", "a0",
    "e/", "empty/", "lnk.txt", "odd/", "z/", "\xc3\xbcn\xc3\xaf.txt",
    "\xe6\x97\xa5\xe6\x9c\xac/"};

struct collect {
	char keys[64][256];
	int is_dir[64];
	int64_t size[64];
	int64_t mtime[64];
	int n;
	int stop_after; /* 0: never */
};

static int
collect_fn(void *arg, const struct ufs_entry *e)
{
	struct collect *c = arg;
	if (c->n < 64) {
		snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", e->key);
		c->is_dir[c->n] = e->is_dir;
		c->size[c->n] = e->size;
		c->mtime[c->n] = e->mtime;
	}
	c->n++;
	if (c->stop_after && c->n >= c->stop_after)
		return 5;
	return 0;
}

static int
list(const char *prefix, const char *delim, const char *sa, int max,
    struct collect *c, int *trunc)
{
	memset(c, 0, sizeof(*c));
	return ufs_file_ops.list(st, prefix, delim, sa, max, collect_fn, c,
	    trunc);
}

static void
check_keys(const struct collect *c, const char *const *want, int nwant)
{
	CHECK_EQ_INT(c->n, nwant);
	for (int i = 0; i < c->n && i < nwant; i++)
		CHECK_EQ_STR(c->keys[i], want[i]);
}

TEST(full_listing_order)
{
	struct collect c;
	int trunc = -1;
	CHECK_EQ_INT(list("", "", "", 1000, &c, &trunc), 0);
	CHECK_EQ_INT(trunc, 0);
	check_keys(&c, all_recursive, (int)ARRAY_SIZE(all_recursive));
	for (int i = 0; i < c.n; i++)
		CHECK_EQ_INT(c.is_dir[i], 0);
	/* sizes come through, symlinked file included; markers are empty */
	CHECK_EQ_INT(c.size[2], 7);
	CHECK_EQ_INT(c.size[4], (int64_t)sizeof(big));
	CHECK_EQ_STR(c.keys[28], "lnk.txt");
	CHECK_EQ_INT(c.size[28], 7);
	CHECK_EQ_STR(c.keys[27], "empty/");
	CHECK_EQ_INT(c.size[27], 0);

	CHECK_EQ_INT(list("", "/", "", 1000, &c, &trunc), 0);
	CHECK_EQ_INT(trunc, 0);
	check_keys(&c, all_delim, (int)ARRAY_SIZE(all_delim));
	CHECK_EQ_INT(c.is_dir[3], 1);
	CHECK_EQ_INT(c.is_dir[2], 0);
	/* A rolled-up directory comes with its own mtime, as stat has it. */
	char p[2048];
	snprintf(p, sizeof(p), "%s/empty", rootdir);
	struct timespec ts[2] = {{1700000000, 0}, {1700000000, 0}};
	CHECK_EQ_INT(utimensat(AT_FDCWD, p, ts, 0), 0);
	CHECK_EQ_INT(list("", "/", "", 1000, &c, &trunc), 0);
	CHECK_EQ_STR(c.keys[6], "empty/");
	CHECK_EQ_INT(c.mtime[6], 1700000000);
	CHECK(c.mtime[3] > 1600000000); /* "a/" */
}

static void
paginate(const char *delim, const char *prefix, int max, const char *const *want,
    int nwant)
{
	char sa[256] = "";
	int got = 0, pages = 0;
	for (;;) {
		struct collect c;
		int trunc = -1;
		CHECK_EQ_INT(list(prefix, delim, sa, max, &c, &trunc), 0);
		CHECK(c.n <= max);
		for (int i = 0; i < c.n; i++) {
			if (got < nwant)
				CHECK_EQ_STR(c.keys[i], want[got]);
			got++;
		}
		if (c.n > 0)
			snprintf(sa, sizeof(sa), "%s", c.keys[c.n - 1]);
		if (!trunc)
			break;
		CHECK_EQ_INT(c.n, max); /* truncated pages are full */
		if (++pages > 100 || c.n == 0) {
			CHECK(!"pagination does not progress");
			break;
		}
	}
	CHECK_EQ_INT(got, nwant);
}

TEST(pagination)
{
	static const int sizes[] = {1, 2, 7};
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		paginate("", "", sizes[i], all_recursive,
		    (int)ARRAY_SIZE(all_recursive));
		paginate("/", "", sizes[i], all_delim,
		    (int)ARRAY_SIZE(all_delim));
	}
	/* exactly fitting page: not truncated */
	struct collect c;
	int trunc = -1;
	CHECK_EQ_INT(list("", "/", "", (int)ARRAY_SIZE(all_delim), &c, &trunc),
	    0);
	CHECK_EQ_INT(trunc, 0);
	CHECK_EQ_INT(list("", "/", "", (int)ARRAY_SIZE(all_delim) - 1, &c,
	    &trunc), 0);
	CHECK_EQ_INT(trunc, 1);
}

TEST(prefixes_and_start_after)
{
	struct collect c;
	int trunc;
	static const char *const a_delim[] = {"a b.txt", "a-", "a.txt", "a/",
	    "a0"};
	CHECK_EQ_INT(list("a", "/", "", 100, &c, &trunc), 0);
	check_keys(&c, a_delim, 5);
	static const char *const a_slash[] = {"a/b", "a/c/"};
	CHECK_EQ_INT(list("a/", "/", "", 100, &c, &trunc), 0);
	check_keys(&c, a_slash, 2);
	static const char *const a_c[] = {"a/c/"};
	CHECK_EQ_INT(list("a/c", "/", "", 100, &c, &trunc), 0);
	check_keys(&c, a_c, 1);
	static const char *const a_rec[] = {"a/b", "a/c/d.bin"};
	CHECK_EQ_INT(list("a/", "", "", 100, &c, &trunc), 0);
	check_keys(&c, a_rec, 2);
	static const char *const z_delim[] = {"z/y/loop/", "z/y/x/"};
	CHECK_EQ_INT(list("z/y/", "/", "", 100, &c, &trunc), 0);
	check_keys(&c, z_delim, 2);
	/* missing and impossible prefixes list nothing, without error */
	CHECK_EQ_INT(list("nope/", "/", "", 100, &c, &trunc), 0);
	CHECK_EQ_INT(c.n, 0);
	CHECK_EQ_INT(list("a.txt/", "/", "", 100, &c, &trunc), 0);
	CHECK_EQ_INT(c.n, 0);
	CHECK_EQ_INT(list("../", "", "", 100, &c, &trunc), 0);
	CHECK_EQ_INT(c.n, 0);
	/* a prefix through a symlink out of the root is refused */
	CHECK_EQ_INT(list("escdir/", "", "", 100, &c, &trunc), -EACCES);
	CHECK_EQ_INT(c.n, 0);
	/* start_after inside a directory resumes inside it */
	static const char *const after_ab[] = {"a/c/d.bin", "a0", "e/d00/"};
	CHECK_EQ_INT(list("", "", "a/b", 3, &c, &trunc), 0);
	check_keys(&c, after_ab, 3);
	CHECK_EQ_INT(trunc, 1);
	/* a common prefix as start_after skips everything under it */
	static const char *const after_a[] = {"a0", "e/"};
	CHECK_EQ_INT(list("", "/", "a/", 2, &c, &trunc), 0);
	check_keys(&c, after_a, 2);
	/* ...while a recursive listing enters it */
	static const char *const after_a_rec[] = {"a/b"};
	CHECK_EQ_INT(list("", "", "a/", 1, &c, &trunc), 0);
	check_keys(&c, after_a_rec, 1);
	/* a start_after past everything */
	CHECK_EQ_INT(list("", "", "\xf4\x8f\xbf\xbf", 10, &c, &trunc), 0);
	CHECK_EQ_INT(c.n, 0);
	CHECK_EQ_INT(trunc, 0);
	/* start_after outside the prefix, before it */
	CHECK_EQ_INT(list("z/", "", "a", 10, &c, &trunc), 0);
	static const char *const zz[] = {"z/y/x/w.txt"};
	check_keys(&c, zz, 1);
	/* the callback stops the listing */
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	trunc = 0;
	CHECK_EQ_INT(ufs_file_ops.list(st, "", "", "", 100, collect_fn, &c,
	    &trunc), 5);
	CHECK_EQ_INT(c.n, 2);
	CHECK_EQ_INT(trunc, 1);
	CHECK_EQ_INT(list("", "", "", 0, &c, &trunc), -EINVAL);
}

TEST(stat)
{
	struct ufs_stat s;
	CHECK_EQ_INT(ufs_file_ops.stat(st, "", &s), 0);
	CHECK_EQ_INT(s.is_dir, 1);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "a.txt", &s), 0);
	CHECK_EQ_INT(s.is_dir, 0);
	CHECK_EQ_INT(s.size, 7);
	CHECK(s.etag[0] != 0); /* the version: mtime (ns) and size */
	CHECK(s.mtime > 1600000000);
	/* Reading with the current version works; after a change it is stale. */
	char vb[8];
	CHECK_EQ_INT(ufs_file_ops.read(st, "a.txt", s.etag, 0, vb, 7), 7);
	struct ufs_stat s2;
	CHECK_EQ_INT(ufs_file_ops.stat(st, "a.txt", &s2), 0);
	CHECK_EQ_STR(s2.etag, s.etag);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "a/c/d.bin", &s), 0);
	CHECK_EQ_INT(s.size, (int64_t)sizeof(big));
	CHECK_EQ_INT(ufs_file_ops.stat(st, "a", &s), 0);
	CHECK_EQ_INT(s.is_dir, 1);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "empty", &s), 0);
	CHECK_EQ_INT(s.is_dir, 1);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "\xc3\xbcn\xc3\xaf.txt", &s), 0);
	CHECK_EQ_INT(s.size, 3);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "lnk.txt", &s), 0);
	CHECK_EQ_INT(s.size, 7);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "z/y/loop/y/x/w.txt", &s), 0);
	CHECK_EQ_INT(s.size, 1);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "nope", &s), -ENOENT);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "a.txt/x", &s), -ENOENT);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "dangling", &s), -ENOENT);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "fifo", &s), -ENOENT);
	/* symlinks out of the root are refused, whatever they point at */
	CHECK_EQ_INT(ufs_file_ops.stat(st, "esc", &s), -EACCES);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "escdir", &s), -EACCES);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "escdir/outside.txt", &s), -EACCES);
}

TEST(read)
{
	char buf[64];
	CHECK_EQ_INT(ufs_file_ops.read(st, "a.txt", "", 0, buf, sizeof(buf)),
	    7);
	CHECK(memcmp(buf, "hello a", 7) == 0);
	CHECK_EQ_INT(ufs_file_ops.read(st, "a.txt", "", 3, buf, 2), 2);
	CHECK(memcmp(buf, "lo", 2) == 0);
	CHECK_EQ_INT(ufs_file_ops.read(st, "a.txt", "", 5, buf, 10), 2);
	CHECK(memcmp(buf, " a", 2) == 0);
	CHECK_EQ_INT(ufs_file_ops.read(st, "a.txt", "", 7, buf, 10), 0);
	CHECK_EQ_INT(ufs_file_ops.read(st, "a.txt", "", 1000, buf, 10), 0);
	CHECK_EQ_INT(ufs_file_ops.read(st, "lnk.txt", "", 6, buf, 10), 1);
	CHECK_EQ_INT(buf[0], 'a');
	static unsigned char got[300000];
	static const int64_t offs[] = {0, 1, 4095, 4096, 500000,
	    (int64_t)sizeof(big) - 300000};
	for (size_t i = 0; i < ARRAY_SIZE(offs); i++) {
		memset(got, 0, sizeof(got));
		ssize_t n = ufs_file_ops.read(st, "a/c/d.bin", NULL, offs[i],
		    got, sizeof(got));
		CHECK_EQ_INT(n, (ssize_t)sizeof(got));
		CHECK(memcmp(got, big + offs[i], sizeof(got)) == 0);
	}
	ssize_t n = ufs_file_ops.read(st, "a/c/d.bin", "",
	    (int64_t)sizeof(big) - 10, got, sizeof(got));
	CHECK_EQ_INT(n, 10);
	CHECK(memcmp(got, big + sizeof(big) - 10, 10) == 0);
	CHECK_EQ_INT(ufs_file_ops.read(st, "nope", "", 0, buf, 1), -ENOENT);
	CHECK_EQ_INT(ufs_file_ops.read(st, "esc", "", 0, buf, 6), -EACCES);
	CHECK_EQ_INT(ufs_file_ops.read(st, "escdir/outside.txt", "", 0, buf, 6),
	    -EACCES);
	CHECK_EQ_INT(ufs_file_ops.read(st, "a", "", 0, buf, 1), -EIO);
	CHECK_EQ_INT(ufs_file_ops.read(st, "fifo", "", 0, buf, 1), -ENOENT);
	CHECK_EQ_INT(ufs_file_ops.read(st, "a.txt", "abc", 0, buf, 1), -ESTALE);
	CHECK_EQ_INT(ufs_file_ops.read(st, "a.txt", "", -1, buf, 1), -EINVAL);
}

/* Directory markers: an empty directory "d" is the zero-byte object "d/"
 * to stat, read and list alike; a directory with something in it is not. */
TEST(markers)
{
	struct ufs_stat s;
	CHECK_EQ_INT(ufs_file_ops.stat(st, "empty/", &s), 0);
	CHECK_EQ_INT(s.is_dir, 0);
	CHECK_EQ_INT(s.size, 0);
	CHECK(s.etag[0] != 0);
	CHECK(s.mtime > 1600000000);
	char etag[UFS_ETAG_MAX];
	snprintf(etag, sizeof(etag), "%s", s.etag);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "odd/", &s), 0); /* unlistable only */
	CHECK_EQ_INT(ufs_file_ops.stat(st, "e/d07/", &s), 0);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "a/", &s), -ENOENT);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "e/", &s), -ENOENT);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "a.txt/", &s), -ENOENT);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "nope/", &s), -ENOENT);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "escdir/", &s), -EACCES);
	/* the directory itself is still a directory */
	CHECK_EQ_INT(ufs_file_ops.stat(st, "empty", &s), 0);
	CHECK_EQ_INT(s.is_dir, 1);
	char buf[8];
	CHECK_EQ_INT(ufs_file_ops.read(st, "empty/", etag, 0, buf, 8), 0);
	CHECK_EQ_INT(ufs_file_ops.read(st, "empty/", "", 0, buf, 8), 0);
	CHECK_EQ_INT(ufs_file_ops.read(st, "empty/", "1.0-0", 0, buf, 8),
	    -ESTALE);
	CHECK_EQ_INT(ufs_file_ops.read(st, "a/", "", 0, buf, 8), -ENOENT);
	CHECK_EQ_INT(ufs_file_ops.read(st, "a.txt/", "", 0, buf, 8), -ENOENT);

	struct collect c;
	int trunc;
	/* the key equal to the prefix is listed, with or without delimiter */
	static const char *const em[] = {"empty/"};
	CHECK_EQ_INT(list("empty/", "/", "", 10, &c, &trunc), 0);
	check_keys(&c, em, 1);
	CHECK_EQ_INT(c.is_dir[0], 0);
	CHECK_EQ_INT(list("empty/", "", "", 10, &c, &trunc), 0);
	check_keys(&c, em, 1);
	CHECK_EQ_INT(list("empty", "/", "", 10, &c, &trunc), 0);
	check_keys(&c, em, 1);
	CHECK_EQ_INT(c.is_dir[0], 1); /* rolled up: a common prefix */
	CHECK_EQ_INT(list("empty/", "", "empty/", 10, &c, &trunc), 0);
	CHECK_EQ_INT(c.n, 0);
	CHECK_EQ_INT(list("empty/x", "", "", 10, &c, &trunc), 0);
	CHECK_EQ_INT(c.n, 0);

	/* A file put in it: the marker is gone, from stat and listings. */
	mk("later");
	CHECK_EQ_INT(ufs_file_ops.stat(st, "later/", &s), 0);
	put_file("later/f", "f", 1);
	CHECK_EQ_INT(ufs_file_ops.stat(st, "later/", &s), -ENOENT);
	CHECK_EQ_INT(ufs_file_ops.read(st, "later/", "", 0, buf, 8), -ENOENT);
	static const char *const lf[] = {"later/f"};
	CHECK_EQ_INT(list("later/", "", "", 10, &c, &trunc), 0);
	check_keys(&c, lf, 1);
	char p[2048];
	snprintf(p, sizeof(p), "%s/later/f", rootdir);
	CHECK_EQ_INT(unlink(p), 0);
	snprintf(p, sizeof(p), "%s/later", rootdir);
	CHECK_EQ_INT(rmdir(p), 0);
}

/* Delimiters other than '/' group as S3 does: at the first occurrence
 * after the prefix, inside names and across directory levels. */
TEST(other_delimiters)
{
	struct collect c;
	int trunc;
	static const char *const by_a[] = {"a", "e/d00/", "e/d01/", "e/d02/",
	    "e/d03/", "e/d04/", "e/d05/", "e/d06/", "e/d07/", "e/d08/",
	    "e/d09/", "e/d10/", "e/d11/", "e/d12/", "e/d13/", "e/d14/",
	    "e/d15/", "e/d16/", "e/d17/", "e/d18/", "e/d19/", "e/zz", "empty/",
	    "lnk.txt", "odd/", "z/y/x/w.txt", "\xc3\xbcn\xc3\xaf.txt",
	    "\xe6\x97\xa5\xe6\x9c\xac/x"};
	CHECK_EQ_INT(list("", "a", "", 100, &c, &trunc), 0);
	check_keys(&c, by_a, (int)ARRAY_SIZE(by_a));
	CHECK_EQ_INT(c.is_dir[0], 1);
	CHECK_EQ_INT(c.is_dir[1], 0);
	static const char *const a_dot[] = {"a b.", "a-", "a.", "a/b",
	    "a/c/d.", "a0"};
	CHECK_EQ_INT(list("a", ".", "", 100, &c, &trunc), 0);
	check_keys(&c, a_dot, 6);
	CHECK_EQ_INT(c.is_dir[0] + c.is_dir[1] + c.is_dir[2] + c.is_dir[3] +
	    c.is_dir[4] + c.is_dir[5], 3);
	/* a delimiter across the directory boundary: "a/c/..." holds "/c" */
	CHECK_EQ_INT(list("a/", "/c", "", 100, &c, &trunc), 0);
	CHECK_EQ_INT(c.n, 2);
	CHECK_EQ_INT(list("a", "/c", "", 100, &c, &trunc), 0);
	check_keys(&c, (const char *const[]){"a b.txt", "a-", "a.txt", "a/b",
	    "a/c", "a0"}, 6);
	/* twenty names, one prefix: counted once, paginated right */
	static const char *const e_d[] = {"e/d", "e/zz"};
	CHECK_EQ_INT(list("e/", "d", "", 100, &c, &trunc), 0);
	check_keys(&c, e_d, 2);
	static const char *const e_d1[] = {"e/d00/", "e/d01/", "e/d02/",
	    "e/d03/", "e/d04/", "e/d05/", "e/d06/", "e/d07/", "e/d08/",
	    "e/d09/", "e/d1", "e/zz"};
	static const int sizes[] = {1, 2, 5, 100};
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++)
		paginate("d1", "e/", sizes[i], e_d1, (int)ARRAY_SIZE(e_d1));
	/* a common prefix as start_after skips all it stands for */
	CHECK_EQ_INT(list("e/", "d1", "e/d1", 100, &c, &trunc), 0);
	check_keys(&c, (const char *const[]){"e/zz"}, 1);
	/* a multi-byte delimiter, one that never matches */
	CHECK_EQ_INT(list("", "\xc3\xaf", "\xc3\xa0", 100, &c, &trunc), 0);
	check_keys(&c, (const char *const[]){"\xc3\xbcn\xc3\xaf",
	    "\xe6\x97\xa5\xe6\x9c\xac/x"}, 2);
	CHECK_EQ_INT(list("a/", "nomatch", "", 100, &c, &trunc), 0);
	check_keys(&c, (const char *const[]){"a/b", "a/c/d.bin"}, 2);
}

/* Many names rolled up into few prefixes in one big directory: each prefix
 * takes one place in the bounded scan. */
TEST(many_names_few_prefixes)
{
	char root[400], p[600];
	snprintf(root, sizeof(root), "%s/flat", tmpdir);
	if (mkdir(root, 0755) < 0)
		exit(2);
	for (int i = 0; i < 3000; i++) {
		snprintf(p, sizeof(p), "%s/c%d_%04d", root, i % 7, i);
		int fd = open(p, O_WRONLY | O_CREAT, 0644);
		if (fd < 0)
			exit(2);
		close(fd);
	}
	snprintf(p, sizeof(p), "%s/solo", root);
	close(open(p, O_WRONLY | O_CREAT, 0644));
	void *s = NULL;
	char *err = NULL;
	CHECK_EQ_INT(ufs_file_ops.open(root, NULL, 0, &s, &err), 0);
	if (!s)
		return;
	static const char *const want[] = {"c0_", "c1_", "c2_", "c3_", "c4_",
	    "c5_", "c6_", "solo"};
	void *saved = st;
	st = s;
	for (int max = 1; max <= 9; max++)
		paginate("_", "", max, want, 8);
	struct collect c;
	int trunc;
	CHECK_EQ_INT(list("c3", "_", "", 1000, &c, &trunc), 0);
	check_keys(&c, (const char *const[]){"c3_"}, 1);
	CHECK_EQ_INT(list("c3_", "_", "", 1000, &c, &trunc), 0);
	CHECK_EQ_INT(c.n, 429); /* c3_0003, c3_0010, ... c3_2999 */
	CHECK_EQ_STR(c.keys[0], "c3_0003");
	st = saved;
	ufs_file_ops.close(s);
}

TEST(open_errors)
{
	void *s2 = NULL;
	char *err = NULL;
	CHECK_EQ_INT(ufs_file_ops.open("relative/dir", NULL, 0, &s2, &err),
	    -EINVAL);
	CHECK(err && strstr(err, "absolute"));
	free(err);
	err = NULL;
	CHECK_EQ_INT(ufs_file_ops.open("/nonexistent/ferry/dir", NULL, 0, &s2,
	    &err), -ENOENT);
	CHECK_EQ_STR(err, "file: cannot open root directory "
	    "'/nonexistent/ferry/dir': No such file or directory");
	free(err);
	err = NULL;
	struct ufs_opt o = {"file.bogus", "1"};
	CHECK_EQ_INT(ufs_file_ops.open(rootdir, &o, 1, &s2, &err), -EINVAL);
	CHECK(err && strstr(err, "file.bogus"));
	free(err);
	char p[512];
	snprintf(p, sizeof(p), "%s/a.txt", rootdir);
	err = NULL;
	CHECK_EQ_INT(ufs_file_ops.open(p, NULL, 0, &s2, &err), -ENOTDIR);
	free(err);
}

TEST(lookup)
{
	const char *root = NULL;
	CHECK(ufs_lookup("file:///data/x", &root) == &ufs_file_ops);
	CHECK_EQ_STR(root, "/data/x");
	CHECK(ufs_lookup("s3://bucket/pre", &root) == &ufs_s3_ops);
	CHECK_EQ_STR(root, "bucket/pre");
	CHECK(ufs_lookup("http://x", &root) == NULL);
	CHECK(ufs_lookup("file:/x", &root) == NULL);
	CHECK(ufs_lookup("", &root) == NULL);
}

/* ---- random tree against a brute-force reference ---- */

#define RT_MAX 1200
static char *rt_keys[RT_MAX]; /* files "x/y", dirs "x/" */
static int rt_isdir[RT_MAX];
static int rt_n;
static char rt_root[400];
static uint64_t rng = 88172645463325252ull;

static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char *const rt_names[] = {"a", "b", "a.b", "a-", "a0", "a b",
    "\xc3\xa9", "z", "ab", "a~"};

static void
rt_build(const char *dir, int depth)
{
	int n = 1 + (int)(rnd() % 6);
	for (int i = 0; i < n && rt_n < RT_MAX - 1; i++) {
		char name[64];
		snprintf(name, sizeof(name), "%s%s",
		    rt_names[rnd() % ARRAY_SIZE(rt_names)],
		    rt_names[rnd() % ARRAY_SIZE(rt_names)]);
		char rel[512], abs[1024];
		snprintf(rel, sizeof(rel), "%s%s", dir, name);
		snprintf(abs, sizeof(abs), "%s/%s", rt_root, rel);
		struct stat sb;
		if (lstat(abs, &sb) == 0)
			continue;
		if (depth < 4 && rnd() % 3 == 0) {
			if (mkdir(abs, 0755) < 0)
				exit(2);
			char sub[520];
			snprintf(sub, sizeof(sub), "%s/", rel);
			rt_keys[rt_n] = strdup(sub);
			rt_isdir[rt_n++] = 1;
			if (rnd() % 4) /* else left empty: a marker */
				rt_build(sub, depth + 1);
		} else {
			int fd = open(abs, O_WRONLY | O_CREAT, 0644);
			if (fd < 0)
				exit(2);
			close(fd);
			rt_keys[rt_n] = strdup(rel);
			rt_isdir[rt_n++] = 0;
		}
	}
}

static int
strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Is directory key rt_keys[i] ("x/") empty, so a key of its own? */
static int
rt_empty(int i)
{
	size_t l = strlen(rt_keys[i]);
	for (int j = 0; j < rt_n; j++)
		if (j != i && strncmp(rt_keys[j], rt_keys[i], l) == 0)
			return 0;
	return 1;
}

/* The expected listing, as S3 computes it over every key (the files, and
 * the marker "x/" of each empty directory): filter by prefix, roll up at
 * the delimiter's first occurrence after the prefix, drop what is not
 * after start_after, sort, dedupe. */
static int
rt_expect(const char *prefix, const char *delim, const char *sa, char **out)
{
	int n = 0;
	size_t pl = strlen(prefix), dl = strlen(delim);
	for (int i = 0; i < rt_n; i++) {
		const char *k = rt_keys[i];
		if (strncmp(k, prefix, pl) != 0 || (rt_isdir[i] && !rt_empty(i)))
			continue;
		char buf[600];
		const char *hit = dl ? strstr(k + pl, delim) : NULL;
		if (hit)
			snprintf(buf, sizeof(buf), "%.*s", (int)(hit - k + dl), k);
		else
			snprintf(buf, sizeof(buf), "%s", k);
		if (strcmp(buf, sa) <= 0)
			continue;
		int dup = 0;
		for (int j = 0; j < n && !dup; j++)
			dup = strcmp(out[j], buf) == 0;
		if (!dup)
			out[n++] = strdup(buf);
	}
	qsort(out, (size_t)n, sizeof(out[0]), strp_cmp);
	return n;
}

struct rt_got {
	char *keys[RT_MAX];
	int n;
};

static int
rt_fn(void *arg, const struct ufs_entry *e)
{
	struct rt_got *g = arg;
	if (g->n < RT_MAX)
		g->keys[g->n] = strdup(e->key);
	g->n++;
	return 0;
}

static void rt_queries(int nq);

TEST(random_tree_vs_reference)
{
	snprintf(rt_root, sizeof(rt_root), "%s/rt", tmpdir);
	if (mkdir(rt_root, 0755) < 0)
		exit(2);
	rt_build("", 0);
	rt_queries(1500);
}

/* Sets the mtime of every directory under (and of) dir well in the past,
 * so that listings may keep their sorted windows. */
static void
age_dirs(const char *dir)
{
	char cmd[1200];
	snprintf(cmd, sizeof(cmd), "find '%s' -type d -exec touch -m -d '@%lld' {} +",
	    dir, (long long)time(NULL) - 60);
	if (system(cmd) != 0)
		exit(2);
}

TEST(random_tree_cached)
{
	age_dirs(rt_root);
	struct ufs_file_list_stats a, b;
	ufs_file_list_stats(&a);
	rt_queries(1500);
	ufs_file_list_stats(&b);
	CHECK(b.reused - a.reused > 100); /* windows were used again */
}

TEST(random_tree_small_windows)
{
	/* A few names a window: every directory in several, halved when
	 * the budget runs out. */
	size_t old = ufs_file_list_budget(4096);
	rt_queries(600);
	struct ufs_file_list_stats b;
	ufs_file_list_stats(&b);
	CHECK(b.bytes <= 4096);
	ufs_file_list_budget(old);
}

static void
rt_queries(int nq)
{
	void *s = NULL;
	char *err = NULL;
	CHECK_EQ_INT(ufs_file_ops.open(rt_root, NULL, 0, &s, &err), 0);
	if (!s)
		return;
	static char *exp[RT_MAX];
	static struct rt_got got;
	int bad = 0;
	for (int q = 0; q < nq && bad < 5; q++) {
		char prefix[600] = "", sa[600] = "";
		/* prefixes and start points from real keys, cut anywhere */
		if (rnd() % 3) {
			const char *k = rt_keys[rnd() % (uint64_t)rt_n];
			snprintf(prefix, sizeof(prefix), "%.*s",
			    (int)(rnd() % (strlen(k) + 1)), k);
		}
		if (rnd() % 2) {
			const char *k = rt_keys[rnd() % (uint64_t)rt_n];
			snprintf(sa, sizeof(sa), "%.*s",
			    (int)(rnd() % (strlen(k) + 1)), k);
		}
		static const char *const delims[] = {"", "/", "", "/", "-",
		    "a", "ab", ".b", "/a", "b/", "\xc3\xa9", "~", "a/b"};
		const char *delim = delims[rnd() % ARRAY_SIZE(delims)];
		int max = 1 + (int)(rnd() % 12);
		int ne = rt_expect(prefix, delim, sa, exp);
		got.n = 0;
		int trunc = -1;
		int r = ufs_file_ops.list(s, prefix, delim, sa, max, rt_fn,
		    &got, &trunc);
		int want_n = ne < max ? ne : max;
		int ok = r == 0 && got.n == want_n && trunc == (ne > max);
		for (int i = 0; ok && i < want_n; i++)
			ok = strcmp(got.keys[i], exp[i]) == 0;
		if (!ok) {
			bad++;
			fprintf(stderr, "  mismatch: prefix '%s' delim '%s' sa '%s' "
			    "max %d: r %d got %d trunc %d, want %d trunc %d\n",
			    prefix, delim, sa, max, r, got.n, trunc, want_n,
			    ne > max);
		}
		CHECK(ok);
		for (int i = 0; i < ne; i++)
			free(exp[i]);
		for (int i = 0; i < got.n && i < RT_MAX; i++)
			free(got.keys[i]);
	}
	ufs_file_ops.close(s);
}

/* ---- listing cost ---- */

#define BIG_N 20000

struct walk {
	char last[UFS_KEY_MAX + 1];
	int n;       /* entries this page */
	int total;
	int order_ok;
	int seen_new, seen_gone;
};

static int
walk_fn(void *arg, const struct ufs_entry *e)
{
	struct walk *w = arg;
	if (w->total > 0 && strcmp(e->key, w->last) <= 0)
		w->order_ok = 0;
	snprintf(w->last, sizeof(w->last), "%s", e->key);
	w->n++;
	w->total++;
	if (strcmp(e->key, "d/f15000a") == 0)
		w->seen_new = 1;
	if (strcmp(e->key, "d/f17000") == 0)
		w->seen_gone = 1;
	return 0;
}

/* Lists prefix page by page (1,000 a page) as the gateway does, each page
 * from the last key of the one before; between pages, hook(page). */
static int
walk_pages(void *s, const char *prefix, const char *delim, struct walk *w,
    void (*hook)(int page))
{
	memset(w, 0, sizeof(*w));
	w->order_ok = 1;
	char sa[UFS_KEY_MAX + 1] = "";
	int pages = 0;
	for (;;) {
		int trunc = 0;
		w->n = 0;
		int r = ufs_file_ops.list(s, prefix, delim, sa, 1000, walk_fn, w,
		    &trunc);
		if (r != 0)
			return r;
		pages++;
		if (!trunc || w->n == 0 || pages > 100)
			break;
		snprintf(sa, sizeof(sa), "%s", w->last);
		if (hook)
			hook(pages);
	}
	return pages;
}

static char big_root[400];

static void
change_dir(int page)
{
	if (page != 5)
		return;
	char p[600];
	snprintf(p, sizeof(p), "%s/d/f15000a", big_root);
	int fd = open(p, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		exit(2);
	close(fd);
	snprintf(p, sizeof(p), "%s/d/f17000", big_root);
	if (unlink(p) < 0)
		exit(2);
}

TEST(listing_reads_directory_once)
{
	snprintf(big_root, sizeof(big_root), "%s/big", tmpdir);
	char p[600];
	snprintf(p, sizeof(p), "%s/d", big_root);
	if (mkdir(big_root, 0755) < 0 || mkdir(p, 0755) < 0)
		exit(2);
	/* created in an order other than the listing's */
	for (int i = 0; i < BIG_N; i++) {
		snprintf(p, sizeof(p), "%s/d/f%05d", big_root,
		    (int)(((unsigned)i * 7919u) % BIG_N));
		int fd = open(p, O_WRONLY | O_CREAT, 0644);
		if (fd < 0)
			exit(2);
		close(fd);
	}
	age_dirs(big_root);
	void *s = NULL;
	char *err = NULL;
	CHECK_EQ_INT(ufs_file_ops.open(big_root, NULL, 0, &s, &err), 0);
	if (!s)
		return;
	struct walk w;
	struct ufs_file_list_stats a, b;

	/* A directory, as FUSE and `ferry ls` list it. */
	long r0 = readdir_ends;
	ufs_file_list_stats(&a);
	CHECK_EQ_INT(walk_pages(s, "d/", "/", &w, NULL), BIG_N / 1000);
	ufs_file_list_stats(&b);
	CHECK_EQ_INT(w.total, BIG_N);
	CHECK(w.order_ok);
	CHECK_EQ_STR(w.last, "d/f19999");
	CHECK_EQ_INT(readdir_ends - r0, 1); /* was one a page: 20 */
	CHECK_EQ_INT(b.scans - a.scans, 1);
	CHECK_EQ_INT(b.reused - a.reused, BIG_N / 1000 - 1);

	/* Recursively from the root, as a ListObjectsV2 walk does: the root
	 * and d/ once each. */
	r0 = readdir_ends;
	ufs_file_list_stats(&a);
	CHECK_EQ_INT(walk_pages(s, "", "", &w, NULL), BIG_N / 1000);
	ufs_file_list_stats(&b);
	CHECK_EQ_INT(w.total, BIG_N);
	CHECK(w.order_ok);
	CHECK(readdir_ends - r0 <= 2);
	CHECK(b.scans - a.scans <= 2);

	/* Changed between pages: later pages show the directory as it is
	 * now (f15000a added, f17000 removed after page 5). */
	CHECK_EQ_INT(walk_pages(s, "d/", "/", &w, change_dir), BIG_N / 1000);
	CHECK_EQ_INT(w.total, BIG_N);
	CHECK(w.order_ok);
	CHECK(w.seen_new);
	CHECK(!w.seen_gone);

	/* Unchanged again (and old enough): read once more, then reused. */
	age_dirs(big_root);
	r0 = readdir_ends;
	CHECK_EQ_INT(walk_pages(s, "d/", "/", &w, NULL), BIG_N / 1000);
	CHECK_EQ_INT(w.total, BIG_N);
	CHECK_EQ_INT(readdir_ends - r0, 1);

	/* A small budget: windows of part of the directory, read again
	 * after each, still every key once and in order. */
	size_t old = ufs_file_list_budget(64 << 10);
	r0 = readdir_ends;
	CHECK_EQ_INT(walk_pages(s, "d/", "/", &w, NULL), BIG_N / 1000);
	CHECK_EQ_INT(w.total, BIG_N);
	CHECK(w.order_ok);
	CHECK(readdir_ends - r0 > 1 && readdir_ends - r0 <= BIG_N / 1000);
	ufs_file_list_budget(old);
	ufs_file_ops.close(s);
}

/* ---- writes ---- */

static char wroot[400];
static struct ufs *wu; /* file://wroot, through the wrapper layer */

/* Writes n bytes of data at key in chunks of chunk bytes (announcing the
 * size if sized); the commit's result, its stat in *s. */
static int
wput(const char *key, const void *data, size_t n, size_t chunk, int sized,
    const struct ufs_put_opts *more, struct ufs_stat *s)
{
	struct ufs_put_opts o = {.size = sized ? (int64_t)n : -1};
	if (more) {
		o = *more;
		o.size = sized ? (int64_t)n : -1;
	}
	struct ufs_put *p = NULL;
	int r = ufs_put_begin(wu, key, &o, &p);
	if (r)
		return r;
	for (size_t off = 0; off < n;) {
		size_t k = n - off < chunk ? n - off : chunk;
		if ((r = ufs_put_write(p, (const char *)data + off, k)) != 0)
			break;
		off += k;
	}
	struct ufs_stat tmp;
	return ufs_put_commit(&p, s ? s : &tmp);
}

/* Reads key back whole and compares. */
static int
same_bytes(const char *key, const void *data, size_t n)
{
	unsigned char *got = malloc(n + 1);
	ssize_t r = ufs_read(wu, key, "", 0, got, n + 1);
	int ok = r == (ssize_t)n && memcmp(got, data, n) == 0;
	free(got);
	return ok;
}

/* Counts ferry's temporary files anywhere under dir. */
static int
count_tmp(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "test $(find '%s' -name '.ferry-tmp.*' | "
	    "wc -l) -eq 0", dir);
	return system(cmd) == 0 ? 0 : 1;
}

static int
exists(const char *rel)
{
	char p[1024];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/%s", wroot, rel);
	return lstat(p, &sb) == 0;
}

TEST(write_sizes)
{
	static const size_t sizes[] = {0, 1, 8191, 8192, 8193,
	    sizeof(big) - 3};
	static const size_t chunks[] = {1, 7, 65536, 1 << 22};
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		for (int sized = 0; sized < 2; sized++) {
			char key[64];
			snprintf(key, sizeof(key), "sz/d%zu/obj%d", i, sized);
			size_t chunk = sizes[i] > 100000 ? chunks[2 + sized]
			                                 : chunks[sized];
			struct ufs_stat ws, ss;
			CHECK_EQ_INT(wput(key, big, sizes[i], chunk, sized, NULL,
			    &ws), 0);
			CHECK_EQ_INT(ws.size, (int64_t)sizes[i]);
			CHECK(ws.etag[0] != 0);
			CHECK(ws.mtime > 1600000000);
			/* what stat answers next is what the commit said */
			CHECK_EQ_INT(ufs_stat(wu, key, &ss), 0);
			CHECK_EQ_INT(ss.size, ws.size);
			CHECK_EQ_INT(ss.mtime, ws.mtime);
			CHECK_EQ_STR(ss.etag, ws.etag);
			CHECK(same_bytes(key, big, sizes[i]));
			/* and a read with that version works */
			char b[1];
			CHECK(ufs_read(wu, key, ws.etag, 0, b, 1) >= 0);
		}
	}
	/* parents are made as a normal tree's */
	char p[1024];
	struct stat sb;
	snprintf(p, sizeof(p), "%s/sz/d0", wroot);
	mode_t um = umask(0);
	umask(um);
	CHECK(stat(p, &sb) == 0 && S_ISDIR(sb.st_mode) &&
	    (sb.st_mode & 0777) == (0755 & ~um));
	CHECK_EQ_INT(count_tmp(wroot), 0);
	/* an overwrite with the same size, at once: a new version */
	struct ufs_stat a, b;
	CHECK_EQ_INT(wput("sz/same", "AAAA", 4, 4, 1, NULL, &a), 0);
	CHECK_EQ_INT(wput("sz/same", "BBBB", 4, 4, 1, NULL, &b), 0);
	CHECK(strcmp(a.etag, b.etag) != 0);
	char buf[8];
	CHECK_EQ_INT(ufs_read(wu, "sz/same", a.etag, 0, buf, 4), -ESTALE);
	CHECK_EQ_INT(ufs_read(wu, "sz/same", b.etag, 0, buf, 4), 4);
	CHECK(memcmp(buf, "BBBB", 4) == 0);
	struct ufs_stat s;
	CHECK_EQ_INT(ufs_stat(wu, "sz/same", &s), 0);
	CHECK_EQ_STR(s.etag, b.etag);
	/* a listing shows the new keys, never a temporary file */
	struct collect c;
	int trunc;
	memset(&c, 0, sizeof(c));
	CHECK_EQ_INT(ufs_list(wu, "sz/d5/", "", "", 100, collect_fn, &c,
	    &trunc), 0);
	CHECK_EQ_INT(c.n, 2);
	CHECK_EQ_STR(c.keys[0], "sz/d5/obj0");
	CHECK_EQ_INT(c.size[0], (int64_t)sizeof(big) - 3);
}

TEST(write_abort)
{
	struct ufs_put *p = NULL;
	CHECK_EQ_INT(ufs_put_begin(wu, "ab/deep/er/x", NULL, &p), 0);
	CHECK(p != NULL);
	CHECK_EQ_INT(ufs_put_write(p, big, 100000), 0);
	CHECK(exists("ab/deep/er"));
	CHECK_EQ_INT(count_tmp(wroot), 1);
	ufs_put_abort(&p);
	CHECK(p == NULL);
	CHECK_EQ_INT(count_tmp(wroot), 0);
	/* the directories it made are gone too: no stray markers */
	CHECK(!exists("ab"));
	struct ufs_stat s;
	CHECK_EQ_INT(ufs_stat(wu, "ab/deep/er/x", &s), -ENOENT);
	/* in a directory that was there: that one stays */
	CHECK_EQ_INT(wput("keep/f", "f", 1, 1, 0, NULL, NULL), 0);
	CHECK_EQ_INT(ufs_put_begin(wu, "keep/new/g", NULL, &p), 0);
	CHECK_EQ_INT(ufs_put_write(p, "gg", 2), 0);
	ufs_put_abort(&p);
	CHECK(exists("keep/f"));
	CHECK(!exists("keep/new"));
	/* an overwrite aborted leaves the old version */
	CHECK_EQ_INT(ufs_put_begin(wu, "keep/f", NULL, &p), 0);
	CHECK_EQ_INT(ufs_put_write(p, "XXXX", 4), 0);
	ufs_put_abort(&p);
	CHECK(same_bytes("keep/f", "f", 1));
	ufs_put_abort(&p); /* NULL: nothing */
	CHECK_EQ_INT(count_tmp(wroot), 0);
}

TEST(write_conditions)
{
	struct ufs_put_opts inm = {.if_none_match = 1};
	struct ufs_stat s1, s2, s3;
	CHECK_EQ_INT(wput("cond/a", "one", 3, 3, 1, &inm, &s1), 0);
	CHECK_EQ_INT(wput("cond/a", "two", 3, 3, 1, &inm, &s2), -EEXIST);
	CHECK(same_bytes("cond/a", "one", 3));
	struct ufs_put_opts im = {.if_match = s1.etag};
	CHECK_EQ_INT(wput("cond/a", "three", 5, 5, 1, &im, &s2), 0);
	CHECK(same_bytes("cond/a", "three", 5));
	/* the old version no longer matches */
	CHECK_EQ_INT(wput("cond/a", "four", 4, 4, 1, &im, &s3), -ESTALE);
	CHECK(strstr(ufs_last_error(), "changed") != NULL);
	CHECK(same_bytes("cond/a", "three", 5));
	/* nothing to match: stale too */
	CHECK_EQ_INT(wput("cond/none", "x", 1, 1, 1, &im, &s3), -ESTALE);
	CHECK(!exists("cond/none"));
	/* both at once is a caller's mistake */
	struct ufs_put_opts both = {.if_match = s2.etag, .if_none_match = 1};
	CHECK_EQ_INT(wput("cond/a", "x", 1, 1, 1, &both, &s3), -EINVAL);
	/* a race: another writer creates the key after begin */
	struct ufs_put *p = NULL;
	inm.size = 1;
	CHECK_EQ_INT(ufs_put_begin(wu, "cond/race", &inm, &p), 0);
	CHECK_EQ_INT(ufs_put_write(p, "1", 1), 0);
	CHECK_EQ_INT(wput("cond/race", "2", 1, 1, 1, NULL, NULL), 0);
	CHECK_EQ_INT(ufs_put_commit(&p, &s3), -EEXIST);
	CHECK(same_bytes("cond/race", "2", 1));
	CHECK_EQ_INT(count_tmp(wroot), 0);
	/* markers: if_none_match sees an empty directory */
	CHECK_EQ_INT(wput("cond/m/", "", 0, 1, 1, &inm, &s1), 0);
	CHECK_EQ_INT(s1.size, 0);
	CHECK_EQ_INT(ufs_stat(wu, "cond/m/", &s2), 0);
	CHECK_EQ_STR(s2.etag, s1.etag);
	CHECK_EQ_INT(wput("cond/m/", "", 0, 1, 1, &inm, &s1), -EEXIST);
	CHECK_EQ_INT(wput("cond/m/", "x", 1, 1, 1, NULL, &s1), -EINVAL);
}

TEST(write_refused)
{
	struct ufs_put *p = NULL;
	char outside[512], q[512];
	snprintf(outside, sizeof(outside), "%s/outside.txt", tmpdir);
	/* .. and symlinks lead nowhere outside the root */
	CHECK_EQ_INT(ufs_put_begin(wu, "../evil", NULL, &p), -EACCES);
	CHECK_EQ_INT(ufs_put_begin(wu, "new/../../evil", NULL, &p), -EACCES);
	CHECK(!exists("new"));
	snprintf(q, sizeof(q), "%s/evil", tmpdir);
	CHECK(access(q, F_OK) != 0);
	snprintf(q, sizeof(q), "%s/outdir", wroot);
	CHECK_EQ_INT(symlink(tmpdir, q), 0);
	CHECK_EQ_INT(ufs_put_begin(wu, "outdir/evil", NULL, &p), -EACCES);
	CHECK_EQ_INT(ufs_put_begin(wu, "outdir/sub/evil", NULL, &p), -EACCES);
	snprintf(q, sizeof(q), "%s/sub", tmpdir);
	CHECK(access(q, F_OK) != 0);
	CHECK_EQ_INT(ufs_remove(wu, "outdir/outside.txt"), -EACCES);
	CHECK(access(outside, F_OK) == 0);
	struct ufs_stat s;
	CHECK_EQ_INT(ufs_copy(wu, "outdir/outside.txt", "stolen", NULL, &s),
	    -EACCES);
	CHECK_EQ_INT(ufs_copy(wu, "sz/same", "outdir/x", NULL, &s), -EACCES);
	/* a symlink at the key is replaced, never written through */
	snprintf(q, sizeof(q), "%s/outfile", wroot);
	CHECK_EQ_INT(symlink(outside, q), 0);
	CHECK_EQ_INT(wput("outfile", "mine", 4, 4, 1, NULL, NULL), 0);
	struct stat sb;
	CHECK(lstat(q, &sb) == 0 && S_ISREG(sb.st_mode));
	char buf[16] = "";
	int fd = open(outside, O_RDONLY);
	CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 6);
	CHECK(memcmp(buf, "secret", 6) == 0);
	if (fd >= 0)
		close(fd);
	/* and removing one removes the link, not its target */
	CHECK_EQ_INT(unlink(q), 0);
	CHECK_EQ_INT(symlink(outside, q), 0);
	CHECK_EQ_INT(ufs_remove(wu, "outfile"), 0);
	CHECK(lstat(q, &sb) != 0);
	CHECK(access(outside, F_OK) == 0);
	/* ferry's temporary names are not keys */
	CHECK_EQ_INT(ufs_put_begin(wu, ".ferry-tmp.x", NULL, &p), -EINVAL);
	CHECK(strstr(ufs_last_error(), "temporary") != NULL);
	CHECK_EQ_INT(ufs_put_begin(wu, "a/.ferry-tmp.y/z", NULL, &p), -EINVAL);
	CHECK_EQ_INT(ufs_remove(wu, ".ferry-tmp.x"), -EINVAL);
	CHECK_EQ_INT(ufs_copy(wu, ".ferry-tmp.x", "y", NULL, &s), -ENOENT);
	/* a key that is a directory with keys in it, or under a file */
	CHECK_EQ_INT(wput("dk/inner", "i", 1, 1, 1, NULL, NULL), 0);
	CHECK_EQ_INT(wput("dk", "x", 1, 1, 1, NULL, NULL), -EIO);
	CHECK(strstr(ufs_last_error(), "directory") != NULL);
	CHECK_EQ_INT(wput("dk/inner/x", "x", 1, 1, 1, NULL, NULL), -EIO);
	CHECK(strstr(ufs_last_error(), "not a directory") != NULL);
	CHECK(same_bytes("dk/inner", "i", 1));
	/* the root is not an object */
	CHECK_EQ_INT(ufs_put_begin(wu, "", NULL, &p), -EINVAL);
	CHECK_EQ_INT(ufs_remove(wu, ""), -EINVAL);
	CHECK(p == NULL);
	CHECK_EQ_INT(count_tmp(tmpdir), 0);
	unlink(q);
	snprintf(q, sizeof(q), "%s/outdir", wroot);
	unlink(q);
}

TEST(remove_and_prune)
{
	CHECK_EQ_INT(wput("r/s/t.txt", "t", 1, 1, 1, NULL, NULL), 0);
	CHECK_EQ_INT(ufs_remove(wu, "r/s/t.txt"), 0);
	/* the directories it emptied go too: no marker "r/s/" appears */
	CHECK(!exists("r"));
	struct collect c;
	int trunc;
	memset(&c, 0, sizeof(c));
	CHECK_EQ_INT(ufs_list(wu, "r", "", "", 10, collect_fn, &c, &trunc), 0);
	CHECK_EQ_INT(c.n, 0);
	/* idempotent, and nothing there is not an error */
	CHECK_EQ_INT(ufs_remove(wu, "r/s/t.txt"), 0);
	CHECK_EQ_INT(ufs_remove(wu, "missing/deep/key"), 0);
	/* a sibling keeps its directory */
	CHECK_EQ_INT(wput("r2/x", "x", 1, 1, 1, NULL, NULL), 0);
	CHECK_EQ_INT(wput("r2/y", "y", 1, 1, 1, NULL, NULL), 0);
	CHECK_EQ_INT(ufs_remove(wu, "r2/x"), 0);
	CHECK(exists("r2/y"));
	CHECK(!exists("r2/x"));
	/* a key naming a directory with keys, or a marker of one: no object */
	CHECK_EQ_INT(ufs_remove(wu, "r2"), 0);
	CHECK_EQ_INT(ufs_remove(wu, "r2/"), 0);
	CHECK(exists("r2/y"));
	CHECK_EQ_INT(ufs_remove(wu, "r2/y/"), 0);
	CHECK(exists("r2/y"));
	/* a marker: the empty directory, and its emptied parents */
	struct ufs_stat s;
	CHECK_EQ_INT(wput("mk/a/b/", "", 0, 1, 1, NULL, &s), 0);
	CHECK_EQ_INT(ufs_stat(wu, "mk/a/b/", &s), 0);
	CHECK_EQ_INT(ufs_remove(wu, "mk/a/b/"), 0);
	CHECK_EQ_INT(ufs_stat(wu, "mk/a/b/", &s), -ENOENT);
	CHECK(!exists("mk"));
	/* a directory holding only a temporary file is not removed */
	struct ufs_put *p = NULL;
	CHECK_EQ_INT(wput("busy/k", "k", 1, 1, 1, NULL, NULL), 0);
	CHECK_EQ_INT(ufs_put_begin(wu, "busy/other", NULL, &p), 0);
	CHECK_EQ_INT(ufs_remove(wu, "busy/k"), 0);
	CHECK(exists("busy"));
	CHECK_EQ_INT(ufs_put_write(p, "o", 1), 0);
	CHECK_EQ_INT(ufs_put_commit(&p, &s), 0);
	CHECK(same_bytes("busy/other", "o", 1));
	CHECK_EQ_INT(ufs_remove(wu, "busy/other"), 0);
	CHECK(!exists("busy"));
}

static const char *
xattr_of(const char *rel, const char *name, char *out, size_t n)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/%s", wroot, rel);
	ssize_t r = getxattr(p, name, out, n - 1);
	if (r < 0)
		return NULL;
	out[r] = 0;
	return out;
}

/* The header block a stat answers: what is kept, what is left out. */
TEST(header_block_bounds)
{
	static struct ufs_hdrs h;
	ufs_hdrs_init(&h);
	CHECK_EQ_INT(h.known, 1);
	CHECK_EQ_INT(ufs_hdrs_add(&h, "Content-Type", 12, "text/plain", 10), 0);
	CHECK_EQ_STR(ufs_hdrs_get(&h, "content-type"), "text/plain");
	/* a name once; only headers an object keeps; printable values */
	CHECK_EQ_INT(ufs_hdrs_add(&h, "content-type", 12, "x", 1), -EINVAL);
	CHECK_EQ_INT(ufs_hdrs_add(&h, "x-other", 7, "x", 1), -EINVAL);
	CHECK_EQ_INT(ufs_hdrs_add(&h, "x-amz-meta-", 11, "x", 1), -EINVAL);
	CHECK_EQ_INT(ufs_hdrs_add(&h, "x-amz-meta-a b", 14, "x", 1), -EINVAL);
	CHECK_EQ_INT(ufs_hdrs_add(&h, "x-amz-meta-a", 12, "a\r\nb", 4), -EINVAL);
	CHECK_EQ_INT(ufs_hdrs_add(&h, "x-amz-meta-a", 12, "a\0b", 3), -EINVAL);
	static char v[4096];
	memset(v, 'v', sizeof(v));
	CHECK_EQ_INT(ufs_hdrs_add(&h, "cache-control", 13, v, 1025), -EINVAL);
	CHECK_EQ_INT(ufs_hdrs_add(&h, "x-amz-meta-big", 14, v, 2049), -EINVAL);
	CHECK_EQ_INT(h.n, 1);
	/* as many as a write may store fit; then no more */
	char name[32];
	int added = 1;
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "x-amz-meta-k%02d", i);
		if (ufs_hdrs_add(&h, name, strlen(name), v, 60) == 0)
			added++;
	}
	CHECK_EQ_INT(added, UFS_HDRS_COUNT_MAX);
	CHECK(h.len < sizeof(h.buf));
	struct ufs_opt o[UFS_HDRS_COUNT_MAX];
	CHECK_EQ_INT(ufs_hdrs_opts(&h, o, UFS_HDRS_COUNT_MAX), UFS_HDRS_COUNT_MAX);
	CHECK_EQ_STR(o[0].key, "content-type");
	CHECK_EQ_STR(o[1].key, "x-amz-meta-k00");
	/* the largest values a write may store, all at once, fit */
	ufs_hdrs_init(&h);
	const char *std[] = {"content-type", "content-encoding", "content-language",
	    "content-disposition", "cache-control", "expires"};
	for (int i = 0; i < 6; i++)
		CHECK_EQ_INT(ufs_hdrs_add(&h, std[i], strlen(std[i]), v, 1024), 0);
	CHECK_EQ_INT(ufs_hdrs_add(&h, "x-amz-meta-m", 12, v, 2047), 0);
}

TEST(headers_and_copy)
{
	struct ufs_opt h[] = {{"content-type", "text/plain"},
	    {"x-amz-meta-owner", "alice"}, {"cache-control", "max-age=60"}};
	struct ufs_put_opts o = {.headers = h, .nheaders = 3};
	struct ufs_stat s, cs, ss;
	CHECK_EQ_INT(wput("cp/src", big, 200000, 65536, 1, &o, &s), 0);
	char v[128];
	int have_xattr = xattr_of("cp/src", "user.ferry.content-type", v,
	    sizeof(v)) != NULL;
	if (have_xattr) {
		CHECK_EQ_STR(v, "text/plain");
		CHECK_EQ_STR(xattr_of("cp/src", "user.ferry.x-amz-meta-owner", v,
		    sizeof(v)), "alice");
	} else {
		printf("# no user xattrs on %s: headers not kept\n", wroot);
	}
	/* stat answers what is kept: the xattrs, or none */
	CHECK_EQ_INT(ufs_stat(wu, "cp/src", &ss), 0);
	CHECK_EQ_INT(ufs_last_hdrs()->known, 1);
	CHECK_EQ_INT(ufs_last_hdrs()->n, have_xattr ? 3 : 0);
	if (have_xattr) {
		CHECK_EQ_STR(ufs_hdrs_get(ufs_last_hdrs(), "cache-control"),
		    "max-age=60");
		/* someone else's xattr, not a header: left out */
		char p[1024];
		snprintf(p, sizeof(p), "%s/cp/src", wroot);
		CHECK_EQ_INT(setxattr(p, "user.ferry.x-other", "v", 1, 0), 0);
		CHECK_EQ_INT(setxattr(p, "user.ferry.x-amz-meta-bin", "\1", 1, 0), 0);
		CHECK_EQ_INT(ufs_stat(wu, "cp/src", &ss), 0);
		CHECK_EQ_INT(ufs_last_hdrs()->n, 3);
	}
	/* a copy: the bytes, a version of its own, the headers too */
	CHECK_EQ_INT(ufs_copy(wu, "cp/src", "cp/sub/dst", NULL, &cs), 0);
	CHECK_EQ_INT(cs.size, 200000);
	CHECK_EQ_INT(ufs_stat(wu, "cp/sub/dst", &ss), 0);
	CHECK_EQ_STR(ss.etag, cs.etag);
	CHECK_EQ_INT(ss.mtime, cs.mtime);
	CHECK(same_bytes("cp/sub/dst", big, 200000));
	if (have_xattr)
		CHECK_EQ_STR(xattr_of("cp/sub/dst", "user.ferry.x-amz-meta-owner",
		    v, sizeof(v)), "alice");
	/* headers given replace them */
	struct ufs_opt h2[] = {{"content-type", "image/png"}};
	struct ufs_put_opts o2 = {.headers = h2, .nheaders = 1};
	CHECK_EQ_INT(ufs_copy(wu, "cp/src", "cp/dst2", &o2, &cs), 0);
	if (have_xattr) {
		CHECK_EQ_STR(xattr_of("cp/dst2", "user.ferry.content-type", v,
		    sizeof(v)), "image/png");
		CHECK(xattr_of("cp/dst2", "user.ferry.x-amz-meta-owner", v,
		    sizeof(v)) == NULL);
	}
	/* onto itself: the same bytes, a new version */
	CHECK_EQ_INT(ufs_copy(wu, "cp/src", "cp/src", NULL, &cs), 0);
	CHECK(strcmp(cs.etag, s.etag) != 0);
	CHECK(same_bytes("cp/src", big, 200000));
	/* conditions apply to the destination */
	struct ufs_put_opts inm = {.if_none_match = 1};
	CHECK_EQ_INT(ufs_copy(wu, "cp/src", "cp/dst2", &inm, &cs), -EEXIST);
	struct ufs_put_opts im = {.if_match = "1.2-3"};
	CHECK_EQ_INT(ufs_copy(wu, "cp/src", "cp/dst2", &im, &cs), -ESTALE);
	/* no such source; a directory is not one; a marker is empty */
	CHECK_EQ_INT(ufs_copy(wu, "cp/nope", "cp/x", NULL, &cs), -ENOENT);
	CHECK_EQ_INT(ufs_copy(wu, "cp", "cp/x", NULL, &cs), -ENOENT);
	CHECK(!exists("cp/x"));
	CHECK_EQ_INT(wput("cp/m/", "", 0, 1, 1, NULL, NULL), 0);
	CHECK_EQ_INT(ufs_copy(wu, "cp/m/", "cp/empty", NULL, &cs), 0);
	CHECK_EQ_INT(cs.size, 0);
	CHECK_EQ_INT(ufs_copy(wu, "cp/src", "cp/m2/", NULL, &cs), -EINVAL);
	CHECK(!exists("cp/m2"));
	CHECK_EQ_INT(count_tmp(wroot), 0);

	/* headers the wrapper refuses, before any work */
	struct ufs_opt bad[][1] = {{{"Content-Type", "x"}},
	    {{"x-custom", "x"}}, {{"x-amz-meta-", "x"}},
	    {{"content-type", "caf\xc3\xa9"}}, {{"content-type", "a\r\nb: c"}}};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct ufs_put_opts bo = {.headers = bad[i], .nheaders = 1};
		CHECK_EQ_INT(wput("cp/bad", "x", 1, 1, 1, &bo, NULL), -EINVAL);
	}
	static char longv[3000];
	memset(longv, 'v', sizeof(longv) - 1);
	struct ufs_opt big_meta[] = {{"x-amz-meta-a", longv}};
	struct ufs_put_opts bo = {.headers = big_meta, .nheaders = 1};
	CHECK_EQ_INT(wput("cp/bad", "x", 1, 1, 1, &bo, NULL), -EINVAL);
	struct ufs_opt twice[] = {{"x-amz-meta-a", "1"}, {"x-amz-meta-a", "2"}};
	bo = (struct ufs_put_opts){.headers = twice, .nheaders = 2};
	CHECK_EQ_INT(wput("cp/bad", "x", 1, 1, 1, &bo, NULL), -EINVAL);
	CHECK(!exists("cp/bad"));
}

/* Temporary files left by a crash are not objects. */
TEST(temp_files_hidden)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/th", wroot);
	CHECK_EQ_INT(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/th/.ferry-tmp.0123456789abcdef", wroot);
	int fd = open(p, O_WRONLY | O_CREAT, 0644);
	CHECK(fd >= 0 && write(fd, "torn", 4) == 4);
	if (fd >= 0)
		close(fd);
	struct collect c;
	int trunc;
	memset(&c, 0, sizeof(c));
	CHECK_EQ_INT(ufs_list(wu, "th", "", "", 10, collect_fn, &c, &trunc), 0);
	/* nothing listable: the directory is its marker */
	CHECK_EQ_INT(c.n, 1);
	CHECK_EQ_STR(c.keys[0], "th/");
	struct ufs_stat s;
	CHECK_EQ_INT(ufs_stat(wu, "th/.ferry-tmp.0123456789abcdef", &s),
	    -ENOENT);
	char buf[8];
	CHECK_EQ_INT(ufs_read(wu, "th/.ferry-tmp.0123456789abcdef", "", 0, buf,
	    4), -ENOENT);
	CHECK_EQ_INT(ufs_stat(wu, "th/", &s), 0);
	unlink(p);
	snprintf(p, sizeof(p), "%s/th", wroot);
	rmdir(p);
}

struct conc_arg {
	int t;
	int bad;
};

static void *
conc_writer(void *arg)
{
	struct conc_arg *a = arg;
	char key[64], body[64];
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "conc/sub/k%d", a->t);
		snprintf(body, sizeof(body), "thread %d round %d", a->t, i);
		int r1 = wput(key, body, strlen(body), 5, i & 1, NULL, NULL);
		int r2 = same_bytes(key, body, strlen(body));
		int r3 = ufs_remove(wu, key);
		if (r1 || !r2 || r3) {
			fprintf(stderr, "  %s: put %d (%s) same %d remove %d\n",
			    key, r1, ufs_last_error(), r2, r3);
			a->bad++;
		}
	}
	return NULL;
}

/* Writers and removers in one directory that is made and pruned under
 * them: no write fails for it. */
TEST(write_remove_concurrently)
{
	pthread_t th[4];
	struct conc_arg args[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct conc_arg){i, 0};
		pthread_create(&th[i], NULL, conc_writer, &args[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ_INT(args[i].bad, 0);
	}
	CHECK(!exists("conc"));
	CHECK_EQ_INT(count_tmp(wroot), 0);
}

/* A full disk: a tmpfs of 1 MiB (needs root; skipped otherwise). */
TEST(write_enospc)
{
	char mnt[600];
	snprintf(mnt, sizeof(mnt), "%s/small", tmpdir);
	if (mkdir(mnt, 0755) < 0) {
		CHECK(0);
		return;
	}
	char cmd[800];
	snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=1M tmpfs '%s' "
	    "2>/dev/null", mnt);
	if (geteuid() != 0 || system(cmd) != 0) {
		printf("# skip write_enospc: cannot mount a tmpfs (not root?)\n");
		rmdir(mnt);
		return;
	}
	char uri[700];
	snprintf(uri, sizeof(uri), "file://%s", mnt);
	struct ufs *u = NULL;
	CHECK_EQ_INT(ufs_open(uri, NULL, 0, &u), 0);
	struct ufs *saved = wu;
	wu = u;
	/* size unknown: the write fails, and so does the commit */
	struct ufs_put *p = NULL;
	CHECK_EQ_INT(ufs_put_begin(u, "d/full", NULL, &p), 0);
	int r = 0;
	for (int i = 0; i < 3 && !r; i++)
		r = ufs_put_write(p, big, sizeof(big));
	CHECK_EQ_INT(r, -ENOSPC);
	struct ufs_stat s;
	CHECK_EQ_INT(ufs_put_commit(&p, &s), -ENOSPC);
	CHECK(strstr(ufs_last_error(), "space") != NULL);
	/* nothing left: no file, no temporary file, no directory */
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", mnt);
	CHECK_EQ_INT(system(cmd), 0);
	/* size announced: refused at once */
	struct ufs_put_opts o = {.size = 2 << 20};
	CHECK_EQ_INT(ufs_put_begin(u, "d/full", &o, &p), -ENOSPC);
	CHECK(p == NULL);
	CHECK_EQ_INT(system(cmd), 0);
	/* the space is back: a small write works */
	CHECK_EQ_INT(wput("d/small", big, 1000, 100, 0, NULL, &s), 0);
	CHECK(same_bytes("d/small", big, 1000));
	/* a copy that does not fit */
	CHECK_EQ_INT(wput("half", big, 600000, 65536, 0, NULL, &s), 0);
	CHECK_EQ_INT(ufs_copy(u, "half", "half2", NULL, &s), -ENOSPC);
	CHECK_EQ_INT(ufs_stat(u, "half2", &s), -ENOENT);
	CHECK_EQ_INT(count_tmp(mnt), 0);
	wu = saved;
	ufs_close(&u);
	snprintf(cmd, sizeof(cmd), "umount '%s'", mnt);
	CHECK_EQ_INT(system(cmd), 0);
	rmdir(mnt);
}

static int64_t
metric(const char *text, const char *line)
{
	const char *p = strstr(text, line);
	return p ? atoll(p + strlen(line)) : -1;
}

/* The wrapper: checks, -EROFS, a broken mount, counters and metrics. */
TEST(write_wrapper)
{
	struct ufs_counters c0, c1;
	ufs_get_counters(&c0);
	struct ufs_stat s;
	CHECK_EQ_INT(wput("wr/a", big, 1234, 100, 1, NULL, &s), 0);
	CHECK_EQ_INT(wput("wr/a", "x", 1, 1, 1,
	    &(struct ufs_put_opts){.if_none_match = 1}, &s), -EEXIST);
	CHECK_EQ_INT(ufs_remove(wu, "wr/a"), 0);
	CHECK_EQ_INT(ufs_copy(wu, "wr/none", "wr/b", NULL, &s), -ENOENT);
	CHECK_EQ_INT(ufs_put_begin(wu, "../x", NULL,
	    &(struct ufs_put *){NULL}), -EACCES);
	ufs_get_counters(&c1);
	CHECK_EQ_INT(c1.requests[UFSOP_WRITE] - c0.requests[UFSOP_WRITE], 3);
	/* -EEXIST is an answer, -EACCES a failure */
	CHECK_EQ_INT(c1.errors[UFSOP_WRITE] - c0.errors[UFSOP_WRITE], 1);
	CHECK_EQ_INT(c1.write_bytes - c0.write_bytes, 1234);
	CHECK_EQ_INT(c1.requests[UFSOP_REMOVE] - c0.requests[UFSOP_REMOVE], 1);
	CHECK_EQ_INT(c1.requests[UFSOP_COPY] - c0.requests[UFSOP_COPY], 1);
	CHECK_EQ_INT(c1.errors[UFSOP_COPY] - c0.errors[UFSOP_COPY], 0);

	/* the size announced is the size written */
	struct ufs_put *p = NULL;
	struct ufs_put_opts o = {.size = 10};
	CHECK_EQ_INT(ufs_put_begin(wu, "wr/sized", &o, &p), 0);
	CHECK_EQ_INT(ufs_put_write(p, big, 5), 0);
	CHECK_EQ_INT(ufs_put_commit(&p, &s), -EINVAL);
	CHECK(p == NULL);
	CHECK(!exists("wr/sized"));
	CHECK_EQ_INT(ufs_put_begin(wu, "wr/sized", &o, &p), 0);
	CHECK_EQ_INT(ufs_put_write(p, big, 11), -EINVAL);
	/* a failed write fails the rest, and the commit aborts */
	CHECK_EQ_INT(ufs_put_write(p, big, 10), -EINVAL);
	CHECK_EQ_INT(ufs_put_commit(&p, &s), -EINVAL);
	CHECK(strstr(ufs_last_error(), "announced") != NULL);
	CHECK(!exists("wr/sized"));
	CHECK_EQ_INT(count_tmp(wroot), 0);
	CHECK_EQ_INT(ufs_put_write(NULL, "x", 1), -EINVAL);
	CHECK_EQ_INT(ufs_put_commit(&p, &s), -EINVAL);
	o.size = -2;
	CHECK_EQ_INT(ufs_put_begin(wu, "wr/x", &o, &p), -EINVAL);
	o = (struct ufs_put_opts){.size = -1, .if_match = "a\"b"};
	CHECK_EQ_INT(ufs_put_begin(wu, "wr/x", &o, &p), -EINVAL);

	/* a backend without write slots: read-only */
	struct ufs_ops ro = ufs_file_ops;
	ro.put_begin = NULL;
	ro.remove = NULL;
	ro.copy = NULL;
	struct ufs *u = NULL;
	CHECK_EQ_INT(ufs_open_ops(&ro, "ro://", wroot, NULL, 0, &u), 0);
	CHECK_EQ_INT(ufs_writable(u), 0);
	CHECK_EQ_INT(ufs_put_begin(u, "wr/x", NULL, &p), -EROFS);
	CHECK(strstr(ufs_last_error(), "read-only") != NULL);
	CHECK_EQ_INT(ufs_remove(u, "wr/x"), -EROFS);
	CHECK_EQ_INT(ufs_copy(u, "a", "b", NULL, &s), -EROFS);
	ufs_close(&u);
	CHECK_EQ_INT(ufs_writable(wu), 1);
	/* a broken mount: -EIO and why */
	CHECK_EQ_INT(ufs_open("file:///nonexistent/ferry", NULL, 0, &u),
	    -ENOENT);
	CHECK_EQ_INT(ufs_writable(u), 0);
	CHECK_EQ_INT(ufs_put_begin(u, "x", NULL, &p), -EIO);
	CHECK(strstr(ufs_last_error(), "cannot be opened") != NULL);
	CHECK_EQ_INT(ufs_remove(u, "x"), -EIO);
	CHECK_EQ_INT(ufs_copy(u, "x", "y", NULL, &s), -EIO);
	ufs_close(&u);

	/* /metrics */
	struct dbuf b;
	dbuf_init(&b, 1 << 16);
	CHECK_EQ_INT(ufs_metrics_render(&b), 0);
	ufs_get_counters(&c1);
	CHECK_EQ_INT(metric(b.p, "\nferry_ufs_write_bytes_total "),
	    c1.write_bytes);
	CHECK_EQ_INT(metric(b.p, "ferry_ufs_requests_total{op=\"write\"} "),
	    c1.requests[UFSOP_WRITE]);
	CHECK_EQ_INT(metric(b.p, "ferry_ufs_errors_total{op=\"write\"} "),
	    c1.errors[UFSOP_WRITE]);
	CHECK_EQ_INT(metric(b.p, "ferry_ufs_requests_total{op=\"remove\"} "),
	    c1.requests[UFSOP_REMOVE]);
	CHECK_EQ_INT(metric(b.p, "ferry_ufs_requests_total{op=\"copy\"} "),
	    c1.requests[UFSOP_COPY]);
	dbuf_free(&b);
}

static void
run_write_tests(void)
{
	snprintf(wroot, sizeof(wroot), "%s/w", tmpdir);
	if (mkdir(wroot, 0755) < 0 && errno != EEXIST)
		exit(2);
	char uri[500];
	snprintf(uri, sizeof(uri), "file://%s", wroot);
	if (ufs_open(uri, NULL, 0, &wu) != 0)
		exit(2);
	RUN(write_sizes);
	RUN(write_abort);
	RUN(write_conditions);
	RUN(write_refused);
	RUN(remove_and_prune);
	RUN(headers_and_copy);
	RUN(header_block_bounds);
	RUN(temp_files_hidden);
	RUN(write_remove_concurrently);
	if (!getenv("FERRY_UFS_FILE_NO_OPENAT2")) {
		RUN(write_wrapper);
		RUN(write_enospc);
	}
	ufs_close(&wu);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", wroot);
	if (system(cmd) != 0)
		exit(2);
}

static void
rm_tree(void)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", tmpdir);
}

int
main(void)
{
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)((i * 2654435761u) >> 13);
	build_tree();
	for (int mode = 0; mode < 2; mode++) {
		if (mode == 1)
			setenv("FERRY_UFS_FILE_NO_OPENAT2", "1", 1);
		printf("# %s\n", mode ? "realpath fallback" : "openat2");
		char *err = NULL;
		if (ufs_file_ops.open(rootdir, NULL, 0, &st, &err) != 0) {
			fprintf(stderr, "open: %s\n", err ? err : "?");
			return 1;
		}
		RUN(full_listing_order);
		RUN(pagination);
		RUN(prefixes_and_start_after);
		RUN(stat);
		RUN(read);
		RUN(markers);
		RUN(other_delimiters);
		ufs_file_ops.close(st);
		run_write_tests();
	}
	RUN(open_errors);
	RUN(lookup);
	RUN(many_names_few_prefixes);
	RUN(random_tree_vs_reference);
	RUN(random_tree_cached);
	RUN(random_tree_small_windows);
	RUN(listing_reads_directory_once);
	rm_tree();
	TAP_DONE();
}
