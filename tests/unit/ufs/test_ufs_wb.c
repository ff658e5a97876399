/*
 * test_ufs_wb.c: the write-back layer (ufs_wb.c) over a real file:// store
 * in a temporary directory.
 *
 * - staged writes answer stat, read and list at once, while the store
 *   cannot take them (a directory where a key goes, a file where a
 *   directory goes: uploads fail and are retried);
 * - a "crash" (persister stopped, memory freed, files left) and a new
 *   start find every acknowledged write again, sweep what was never
 *   acknowledged (.part, .rec.tmp), drop older records of a key, and then
 *   upload: the store ends with the last write of each key, deletes done;
 * - the staging limit refuses with -ENOBUFS (announced size, and unknown
 *   size as the bytes come), and frees its reservation on abort;
 * - conditions (If-None-Match against a staged write);
 * - a full staging disk (a 1 MiB tmpfs; needs root): -ENOSPC with the
 *   reason, nothing staged or left behind, and the next write that fits
 *   is taken.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "ufs/ufs.h"

static char tmp[256], root[300], area[300];
static char uri[320];
static const uint64_t IDENT = 0x1234abcdULL;

static void
sh(const char *fmt, const char *arg)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), fmt, arg);
	if (system(cmd) != 0)
		fprintf(stderr, "command failed: %s\n", cmd);
}

static int
file_is(const char *rel, const char *want)
{
	char p[512], got[256];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	FILE *f = fopen(p, "rb");
	if (!f)
		return want == NULL;
	size_t n = fread(got, 1, sizeof(got) - 1, f);
	fclose(f);
	got[n] = 0;
	return want && strcmp(got, want) == 0;
}

static int
put(struct ufs *u, const char *path, const char *body, int64_t announce)
{
	struct ufs_put_opts o = {.size = announce};
	struct ufs_put *p;
	int r = ufs_put_begin(u, path, &o, &p);
	if (r < 0)
		return r;
	r = ufs_put_write(p, body, strlen(body));
	if (r < 0) {
		ufs_put_abort(&p);
		return r;
	}
	struct ufs_stat st;
	return ufs_put_commit(&p, &st);
}

static void
start_bw(int64_t limit, int64_t bandwidth)
{
	char *err = NULL;
	struct ufs_wb_cfg c = {.dir = area, .limit = limit, .parallel = 2,
	    .bandwidth = bandwidth};
	int r = ufs_wb_start(&c, &err);
	if (r < 0)
		fprintf(stderr, "ufs_wb_start: %s\n", err ? err : "?");
	free(err);
}

static void
start(int64_t limit)
{
	start_bw(limit, 0);
}

static struct ufs *
open_back(void)
{
	struct ufs *u = NULL;
	char *err = NULL;
	ufs_open(uri, NULL, 0, &u);
	if (!u || ufs_set_writeback(u, IDENT, "ck", &err) < 0)
		fprintf(stderr, "writeback: %s\n", err ? err : "?");
	free(err);
	return u;
}

struct names {
	char v[16][64];
	int n;
};

static int
add_name(void *arg, const struct ufs_entry *e)
{
	struct names *ns = arg;
	if (ns->n < 16)
		snprintf(ns->v[ns->n++], 64, "%s", e->key);
	return 0;
}

static int
wait_drained(void)
{
	for (int i = 0; i < 200; i++) {
		if (ufs_wb_pending(IDENT) == 0)
			return 1;
		usleep(50000);
	}
	return 0;
}

TEST(staged_reads_restart_and_upload)
{
	sh("mkdir -p '%s'", root);
	sh("printf old > '%s/c'", root);
	sh("printf keep > '%s/k'", root);
	start(1 << 20);
	struct ufs *u = open_back();
	CHECK(u && ufs_is_writeback(u));
	/* The store cannot take these writes yet. */
	sh("mkdir -p '%s/a/blocker'", root);
	sh("printf file > '%s/d'", root);
	CHECK_EQ_INT(put(u, "a", "one", 3), 0);
	CHECK_EQ_INT(put(u, "a", "two!", 4), 0);
	CHECK_EQ_INT(put(u, "d/b", "bee", -1), 0);
	CHECK_EQ_INT(ufs_remove(u, "c"), 0);
	struct ufs_stat st;
	CHECK_EQ_INT(ufs_stat(u, "a", &st), 0);
	CHECK_EQ_INT(st.size, 4);
	CHECK_EQ_INT(strlen(st.etag), 32);
	char buf[16] = {0};
	CHECK_EQ_INT(ufs_read(u, "a", st.etag, 1, buf, sizeof(buf)), 3);
	CHECK_EQ_STR(buf, "wo!");
	CHECK_EQ_INT(ufs_read(u, "a", "0123", 0, buf, sizeof(buf)), -ESTALE);
	CHECK_EQ_INT(ufs_stat(u, "d", &st), 0); /* a directory by what is staged */
	CHECK(st.is_dir);
	CHECK_EQ_INT(ufs_stat(u, "c", &st), -ENOENT);
	CHECK(ufs_wb_pending(IDENT) >= 3);
	/* A write with If-None-Match over a staged one. */
	struct ufs_put_opts o = {.size = 1, .if_none_match = 1};
	struct ufs_put *p;
	CHECK_EQ_INT(ufs_put_begin(u, "a", &o, &p), -EEXIST);

	/* "kill -9": the persister stops, the memory goes, the files stay;
	 * plus what a crash mid-write leaves. */
	ufs_wb_stop();
	ufs_close(&u);
	ufs_wb_free();
	char p1[400];
	snprintf(p1, sizeof(p1), "%s/%016llx/tmp-9.part", area, (unsigned long long)IDENT);
	sh("printf junk > '%s'", p1);
	snprintf(p1, sizeof(p1), "%s/%016llx/00000000000000ff.rec.tmp", area, (unsigned long long)IDENT);
	sh("printf junk > '%s'", p1);

	CHECK(file_is("d", "file")); /* nothing uploaded */
	/* The store takes them now; a new start uploads the last write of
	 * each key. */
	sh("rm -rf '%s/a'", root);
	sh("rm -f '%s/d'", root);
	start(1 << 20);
	u = open_back();
	CHECK_EQ_INT(ufs_stat(u, "a", &st), 0);
	CHECK_EQ_INT(st.size, 4);
	CHECK(wait_drained());
	CHECK(file_is("a", "two!"));
	CHECK(file_is("d/b", "bee"));
	CHECK(file_is("c", NULL));
	CHECK(file_is("k", "keep"));
	CHECK(access(p1, F_OK) != 0);
	snprintf(p1, sizeof(p1), "%s/%016llx/tmp-9.part", area, (unsigned long long)IDENT);
	CHECK(access(p1, F_OK) != 0);
	/* After the upload, reads go to the store. */
	CHECK_EQ_INT(ufs_stat(u, "a", &st), 0);
	CHECK_EQ_INT(st.size, 4);
	struct names ns = {0};
	int trunc;
	CHECK_EQ_INT(ufs_list(u, "", "/", "", 100, add_name, &ns, &trunc), 0);
	CHECK_EQ_INT(ns.n, 3);
	CHECK_EQ_STR(ns.v[0], "a");
	CHECK_EQ_STR(ns.v[1], "d/");
	CHECK_EQ_STR(ns.v[2], "k");
	ufs_wb_stop();
	ufs_close(&u);
	ufs_wb_free();
}

TEST(limit_refuses_and_loses_nothing)
{
	sh("mkdir -p '%s/x/blocker'", root);
	sh("mkdir -p '%s/y/blocker'", root);
	start(10);
	struct ufs *u = open_back(); /* uploads fail: bytes stay staged */
	CHECK_EQ_INT(put(u, "x", "123456", 6), 0);
	CHECK_EQ_INT(put(u, "y", "123456", 6), -ENOBUFS);
	CHECK(strstr(ufs_last_error(), "staging is full") != NULL);
	CHECK_EQ_INT(put(u, "y", "123456", -1), -ENOBUFS);
	CHECK_EQ_INT(put(u, "y", "1234", 4), 0); /* the refused ones freed theirs */
	struct ufs_stat st;
	CHECK_EQ_INT(ufs_stat(u, "y", &st), 0);
	CHECK_EQ_INT(st.size, 4);
	sh("rm -rf '%s/x' ", root);
	sh("rm -rf '%s/y' ", root);
	CHECK(wait_drained());
	CHECK(file_is("x", "123456"));
	CHECK(file_is("y", "1234"));
	ufs_wb_stop();
	ufs_close(&u);
	ufs_wb_free();
}

TEST(staging_disk_full)
{
	char mnt[400];
	snprintf(mnt, sizeof(mnt), "%s/small", tmp);
	mkdir(mnt, 0700);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=1M tmpfs '%s' 2>/dev/null", mnt);
	if (geteuid() != 0 || system(cmd) != 0) {
		printf("# skip staging_disk_full: cannot mount a tmpfs (not root?)\n");
		return;
	}
	sh("mkdir -p '%s'", root);
	char *err = NULL;
	struct ufs_wb_cfg c = {.dir = mnt, .limit = 64 << 20, .parallel = 1};
	CHECK_EQ_INT(ufs_wb_start(&c, &err), 0);
	free(err);
	struct ufs *u = open_back();
	static char big[2 << 20];
	memset(big, 'z', sizeof(big));
	struct ufs_put_opts o = {.size = sizeof(big)};
	struct ufs_put *p;
	CHECK_EQ_INT(ufs_put_begin(u, "huge", &o, &p), 0);
	int r = 0;
	for (size_t off = 0; off < sizeof(big) && r == 0; off += 65536)
		r = ufs_put_write(p, big + off, 65536);
	CHECK_EQ_INT(r, -ENOSPC);
	CHECK(strstr(ufs_last_error(), "huge") != NULL);
	struct ufs_stat st;
	CHECK_EQ_INT(ufs_put_commit(&p, &st), -ENOSPC);
	CHECK_EQ_INT(ufs_stat(u, "huge", &st), -ENOENT);
	CHECK_EQ_INT(ufs_wb_pending(IDENT), 0);
	CHECK_EQ_INT(put(u, "small", "fits", 4), 0);
	CHECK(wait_drained());
	CHECK(file_is("small", "fits"));
	CHECK(file_is("huge", NULL));
	ufs_wb_stop();
	ufs_close(&u);
	ufs_wb_free();
	/* Nothing of the refused write is left in the area. */
	snprintf(cmd, sizeof(cmd), "test -z \"$(find '%s' -type f)\"", mnt);
	CHECK(system(cmd) == 0);
	snprintf(cmd, sizeof(cmd), "umount '%s'", mnt);
	CHECK(system(cmd) == 0);
}

/* Review finding: If-None-Match checked at begin, another write of the
 * key staged and uploaded before this one commits: refused at commit. */
TEST(condition_rechecked_after_an_upload)
{
	sh("mkdir -p '%s'", root);
	start(1 << 20);
	struct ufs *u = open_back();
	struct ufs_put_opts o = {.size = 1, .if_none_match = 1};
	struct ufs_put *p;
	CHECK_EQ_INT(ufs_put_begin(u, "n", &o, &p), 0);
	CHECK_EQ_INT(put(u, "n", "B", 1), 0);
	CHECK(wait_drained());
	CHECK(file_is("n", "B"));
	CHECK_EQ_INT(ufs_put_write(p, "A", 1), 0);
	struct ufs_stat st;
	CHECK_EQ_INT(ufs_put_commit(&p, &st), -EEXIST);
	CHECK_EQ_INT(ufs_wb_pending(IDENT), 0);
	CHECK(file_is("n", "B"));
	ufs_wb_stop();
	ufs_close(&u);
	ufs_wb_free();
}

/* Review finding: many pages of staged deletes ahead of a live key (with
 * max_keys 1) listed nothing, "not truncated". */
TEST(listing_past_many_staged_deletes)
{
	sh("mkdir -p '%s/del'", root);
	sh("cd '%s/del' && for i in $(seq 101 179); do printf x > k$i; done", root);
	sh("printf z > '%s/del/z'", root);
	/* 1 byte/s: the two persisters are busy for good with b1 and b2, so
	 * everything after them stays staged. */
	start_bw(1 << 20, 1);
	struct ufs *u = open_back();
	CHECK_EQ_INT(put(u, "b1", "0123456789", 10), 0);
	CHECK_EQ_INT(put(u, "b2", "0123456789", 10), 0);
	char key[32];
	for (int i = 101; i < 180; i++) {
		snprintf(key, sizeof(key), "del/k%d", i);
		CHECK_EQ_INT(ufs_remove(u, key), 0);
	}
	CHECK_EQ_INT(put(u, "del/k100", "v", 1), 0);
	struct names ns = {0};
	int trunc = 0;
	char after[64] = "";
	for (int pages = 0; pages < 10; pages++) {
		int before = ns.n;
		CHECK_EQ_INT(ufs_list(u, "del/", "", after, 1, add_name, &ns, &trunc), 0);
		if (ns.n > before)
			snprintf(after, sizeof(after), "%s", ns.v[ns.n - 1]);
		if (!trunc)
			break;
	}
	CHECK_EQ_INT(ns.n, 2);
	CHECK_EQ_STR(ns.v[0], "del/k100");
	CHECK_EQ_STR(ns.v[1], "del/z");
	CHECK(file_is("del/k150", "x")); /* all of it was still staged */
	CHECK(file_is("b1", NULL));
	ufs_wb_stop();
	ufs_close(&u);
	ufs_wb_free();
}

/* Review finding: a body renamed into place whose record was never
 * written (a crash between the two) was never swept. */
TEST(orphan_bodies_swept_at_start)
{
	char p1[400];
	sh("mkdir -p '%s'", root);
	snprintf(p1, sizeof(p1), "%s/%016llx", area, (unsigned long long)IDENT);
	sh("mkdir -p '%s'", p1);
	snprintf(p1, sizeof(p1), "%s/%016llx/00000000000000aa.data", area,
	    (unsigned long long)IDENT);
	sh("printf orphan > '%s'", p1);
	start(1 << 20);
	struct ufs *u = open_back();
	CHECK(access(p1, F_OK) != 0);
	ufs_wb_stop();
	ufs_close(&u);
	ufs_wb_free();
}

TEST(not_started_is_refused)
{
	struct ufs *u = NULL;
	char *err = NULL;
	ufs_open(uri, NULL, 0, &u);
	CHECK_EQ_INT(ufs_set_writeback(u, IDENT, "ck", &err), -ENOTSUP);
	CHECK(err && strstr(err, "cluster"));
	free(err);
	ufs_close(&u);
}

int
main(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/ferry-wbtest-XXXXXX");
	if (!mkdtemp(tmp))
		return 2;
	snprintf(root, sizeof(root), "%s/root", tmp);
	snprintf(area, sizeof(area), "%s/wb", tmp);
	snprintf(uri, sizeof(uri), "file://%s", root);
	RUN(not_started_is_refused);
	RUN(staged_reads_restart_and_upload);
	RUN(limit_refuses_and_loses_nothing);
	RUN(staging_disk_full);
	RUN(condition_rechecked_after_an_upload);
	RUN(listing_past_many_staged_deletes);
	RUN(orphan_bodies_swept_at_start);
	sh("rm -rf '%s'", tmp);
	TAP_DONE();
}
