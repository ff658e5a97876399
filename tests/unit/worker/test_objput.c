/*
 * Unit tests for objput (objput.c), the owner of object writes, over the
 * real stack in-process (page store, reader, metadata cache, router,
 * objget) and the fake under-store that takes writes.  What a client
 * relies on: the bytes it wrote are what the store holds and what a read
 * returns; through mode caches them (the next GET asks the store nothing);
 * a failed write leaves nothing anywhere; a read-only mount refuses.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_ufs.h"
#include "tap.h"
#include "worker/meta.h"
#include "worker/objget.h"
#include "worker/objkey.h"
#include "worker/objput.h"
#include "worker/reader.h"
#include "worker/router.h"

#define PAGE 65536
#define SIZE (3 * PAGE + 1234)

static char dir[64];
static struct pagestore *ps;
static struct reader *rd;
static struct meta_cache *mc;
static struct router *rt;
static struct objget *og;
static struct objput *op;
static struct mount *mnt;

static void
on_change(void *arg, uint64_t obj, uint64_t keep_ver)
{
	reader_drop_object(rd, obj, keep_ver);
}

static void
setup(void)
{
	strcpy(dir, "/tmp/ferry-objput-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	fake_reset(PAGE);
	fake_put("old", SIZE, 1);
	mnt = fake_mount("fake", 42);
	struct pagestore_dir_cfg d = {.path = dir, .capacity = 64 << 20};
	char *err = NULL;
	ps = pagestore_open(&d, 1, PAGE, PAGESTORE_VERIFY_ALWAYS, &err);
	struct reader_cfg rc = {.fetch_threads = 4, .window = 4, .max_inflight = 32};
	rd = reader_open(&rc, ps);
	struct meta_cfg mcfg = {.sync_ms = 60000, .max_entries = 1000,
	    .max_list_bytes = 1 << 20, .on_change = on_change};
	mc = meta_open(&mcfg);
	rt = router_open(NULL, "self", 0, NULL, rd);
	og = objget_open(mc, rt, rd);
	op = objput_open(mc, rd);
	if (!ps || !rd || !mc || !rt || !og || !op)
		abort();
}

static void
teardown(void)
{
	objput_close(&op);
	objget_close(&og);
	router_close(&rt);
	meta_close(&mc);
	reader_close(&rd);
	pagestore_close(&ps);
	mount_release(&mnt);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		abort();
}

/* A body from memory, handed out in uneven pieces; fails at fail_at. */
struct body {
	const unsigned char *p;
	size_t len, off;
	size_t fail_at; /* 0: never */
};

static ssize_t
body_read(void *arg, void *buf, size_t n)
{
	struct body *b = arg;
	if (b->fail_at && b->off >= b->fail_at)
		return -ECONNRESET;
	size_t left = b->len - b->off;
	size_t k = n < left ? n : left;
	size_t piece = 7777 + (b->off % 3) * 1000; /* uneven pieces */
	if (k > piece)
		k = piece;
	memcpy(buf, b->p + b->off, k);
	b->off += k;
	return (ssize_t)k;
}

static unsigned char *
pattern(size_t n, int seed)
{
	unsigned char *p = malloc(n ? n : 1);
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)((i * 131 + (size_t)seed * 7) >> 3);
	return p;
}

static int
put(const char *path, const unsigned char *data, size_t n, size_t fail_at,
    struct ufs_stat *st)
{
	struct body b = {.p = data, .len = n, .fail_at = fail_at};
	struct objput_req rq = {.m = mnt, .path = path, .opts = {.size = (int64_t)n},
	    .body = body_read, .arg = &b};
	return objput_put(op, &rq, st);
}

/* GET through objget: the body, and whether it was all from the cache. */
struct cap {
	unsigned char *buf;
	size_t len, cap;
	int status;
	char ctype[64]; /* the stored content-type the head has ("" if none) */
};

static int
cap_head(void *arg, const struct objget_head *h)
{
	struct cap *c = arg;
	c->status = h->status;
	const char *v = h->hdrs && h->hdrs->known ?
	    ufs_hdrs_get(h->hdrs, "content-type") : NULL;
	snprintf(c->ctype, sizeof(c->ctype), "%s", v ? v : "");
	return 0;
}

static int
cap_mem(void *arg, const void *p, size_t n)
{
	struct cap *c = arg;
	if (c->len + n > c->cap)
		return -E2BIG;
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	return 0;
}

static int
cap_file(void *arg, int fd, off_t off, size_t n)
{
	struct cap *c = arg;
	if (c->len + n > c->cap)
		return -E2BIG;
	if (pread(fd, c->buf + c->len, n, off) != (ssize_t)n)
		return -EIO;
	c->len += n;
	return 0;
}

static int
get(const char *path, struct cap *c)
{
	c->len = 0;
	c->status = 0;
	struct objget_req rq = {.m = mnt, .path = path, .dir_enoent = 1,
	    .want_hdrs = 1};
	struct objget_sink s = {.head = cap_head, .file = cap_file, .mem = cap_mem, .arg = c};
	int started;
	return objget_serve(og, &rq, &s, &started);
}

static int
ufs_reads(void)
{
	return fake_count(&g_fake.reads) + fake_count(&g_fake.read_stats) +
	    fake_count(&g_fake.stats);
}

TEST(write_through_then_read_is_a_hit)
{
	setup();
	unsigned char *data = pattern(SIZE, 1);
	struct ufs_stat st;
	CHECK_EQ_INT(put("new/obj", data, SIZE, 0, &st), 0);
	CHECK_EQ_INT(st.size, SIZE);
	CHECK_EQ_INT(fake_count(&g_fake.commits), 1);
	/* The store holds the bytes. */
	struct ufs_stat us;
	CHECK_EQ_INT(ufs_stat(mnt->ufs, "new/obj", &us), 0);
	CHECK_EQ_INT(us.size, SIZE);
	/* The next GET: the bytes, from the cache, the store not asked. */
	int before = ufs_reads();
	struct cap c = {.buf = malloc(SIZE), .cap = SIZE};
	CHECK_EQ_INT(get("new/obj", &c), 0);
	CHECK_EQ_INT(c.status, 200);
	CHECK_EQ_INT(c.len, SIZE);
	CHECK(memcmp(c.buf, data, SIZE) == 0);
	CHECK_EQ_INT(ufs_reads(), before);
	CHECK_EQ_INT(reader_cached_bytes(rd, mnt, "new/obj", &st), SIZE);
	free(c.buf);
	free(data);
	teardown();
}

TEST(overwrite_replaces_old_version_everywhere)
{
	setup();
	struct cap c = {.buf = malloc(SIZE), .cap = SIZE};
	CHECK_EQ_INT(get("old", &c), 0); /* the old version, now cached */
	struct ufs_stat oldst;
	CHECK_EQ_INT(ufs_stat(mnt->ufs, "old", &oldst), 0);
	for (int i = 0; i < 200 && reader_cached_bytes(rd, mnt, "old", &oldst) < SIZE; i++)
		usleep(10000);
	unsigned char *data = pattern(PAGE + 5, 2);
	struct ufs_stat st;
	CHECK_EQ_INT(put("old", data, PAGE + 5, 0, &st), 0);
	CHECK_EQ_INT(reader_cached_bytes(rd, mnt, "old", &oldst), 0); /* old pages gone */
	CHECK_EQ_INT(get("old", &c), 0);
	CHECK_EQ_INT(c.len, PAGE + 5);
	CHECK(memcmp(c.buf, data, PAGE + 5) == 0);
	free(c.buf);
	free(data);
	teardown();
}

TEST(write_around_caches_nothing)
{
	setup();
	mnt->write_mode = MOUNT_WRITE_AROUND;
	unsigned char *data = pattern(SIZE, 3);
	struct ufs_stat st;
	CHECK_EQ_INT(put("a", data, SIZE, 0, &st), 0);
	CHECK_EQ_INT(reader_cached_bytes(rd, mnt, "a", &st), 0);
	int before = fake_count(&g_fake.reads);
	struct cap c = {.buf = malloc(SIZE), .cap = SIZE};
	CHECK_EQ_INT(get("a", &c), 0);
	CHECK(c.len == SIZE && memcmp(c.buf, data, SIZE) == 0);
	CHECK(fake_count(&g_fake.reads) > before); /* from the store */
	free(c.buf);
	free(data);
	teardown();
}

/* A write that fails leaves nothing: not in the store, not in the cache,
 * not in the metadata. */
TEST(failed_writes_leave_nothing)
{
	setup();
	unsigned char *data = pattern(SIZE, 4);
	struct pagestore_stats s0, s1;
	pagestore_get_stats(ps, &s0);
	struct ufs_stat st;
	/* The client goes away in the middle. */
	CHECK_EQ_INT(put("x", data, SIZE, 2 * PAGE + 10, &st), -ECONNRESET);
	CHECK_EQ_INT(fake_count(&g_fake.aborts), 1);
	CHECK_EQ_INT(fake_count(&g_fake.commits), 0);
	/* The store refuses the commit. */
	g_fake.fail_commit = -EIO;
	CHECK_EQ_INT(put("x", data, SIZE, 0, &st), -EIO);
	g_fake.fail_commit = 0;
	/* Fewer bytes than announced. */
	struct body b = {.p = data, .len = SIZE - 1};
	struct objput_req rq = {.m = mnt, .path = "x", .opts = {.size = SIZE},
	    .body = body_read, .arg = &b};
	CHECK_EQ_INT(objput_put(op, &rq, &st), -EPROTO);
	pagestore_get_stats(ps, &s1);
	CHECK_EQ_INT(s1.pages, s0.pages); /* no staged page left */
	struct cap c = {.buf = malloc(SIZE), .cap = SIZE};
	CHECK_EQ_INT(get("x", &c), -ENOENT);
	/* Conditions. */
	CHECK_EQ_INT(put("x", data, 10, 0, &st), 0);
	struct body b2 = {.p = data, .len = 10};
	struct objput_req rq2 = {.m = mnt, .path = "x", .opts = {.size = 10, .if_none_match = 1},
	    .body = body_read, .arg = &b2};
	CHECK_EQ_INT(objput_put(op, &rq2, &st), -EEXIST);
	free(c.buf);
	free(data);
	teardown();
}

TEST(readonly_mount_refuses)
{
	setup();
	mnt->readonly = 1;
	unsigned char *data = pattern(100, 5);
	struct ufs_stat st;
	CHECK_EQ_INT(put("r", data, 100, 0, &st), -EROFS);
	CHECK_EQ_INT(fake_count(&g_fake.puts), 0);
	CHECK_EQ_INT(objput_delete(op, mnt, "old"), -EROFS);
	free(data);
	teardown();
}

/* After a delete the object is gone for every read at once, without
 * asking the store; a listing no longer shows it; a new key is listed. */
struct names {
	char s[1024];
};

static int
list_cb(void *arg, const struct ufs_entry *e)
{
	struct names *n = arg;
	size_t l = strlen(n->s);
	snprintf(n->s + l, sizeof(n->s) - l, "%s,", e->key);
	return 0;
}

TEST(delete_and_listings_follow_writes)
{
	setup();
	struct names n = {""};
	int trunc;
	CHECK_EQ_INT(meta_list(mc, mnt, "", "", "", 100, list_cb, &n, &trunc), 0);
	CHECK_EQ_STR(n.s, "old,");
	unsigned char *data = pattern(10, 6);
	struct ufs_stat st;
	CHECK_EQ_INT(put("k", data, 10, 0, &st), 0);
	n.s[0] = 0;
	CHECK_EQ_INT(meta_list(mc, mnt, "", "", "", 100, list_cb, &n, &trunc), 0);
	CHECK_EQ_STR(n.s, "k,old,");
	CHECK_EQ_INT(objput_delete(op, mnt, "old"), 0);
	int before = ufs_reads();
	struct cap c = {.buf = malloc(SIZE), .cap = SIZE};
	CHECK_EQ_INT(get("old", &c), -ENOENT);
	CHECK_EQ_INT(ufs_reads(), before);
	n.s[0] = 0;
	CHECK_EQ_INT(meta_list(mc, mnt, "", "", "", 100, list_cb, &n, &trunc), 0);
	CHECK_EQ_STR(n.s, "k,");
	CHECK_EQ_INT(objput_delete(op, mnt, "never-was"), 0);
	free(c.buf);
	free(data);
	teardown();
}

/* The push API: any split of the body, a hit afterwards; writing past the
 * announced size sticks as an error; an abort leaves nothing behind. */
TEST(push_session_any_split)
{
	setup();
	unsigned char *data = pattern(SIZE, 7);
	struct ufs_put_opts o = {.size = SIZE};
	struct objput_w *w = NULL;
	CHECK_EQ_INT(objput_begin(op, mnt, "pushed", &o, &w), 0);
	static const size_t cuts[] = {1, PAGE - 1, 2, PAGE, 3 * PAGE};
	size_t off = 0;
	for (size_t i = 0; off < SIZE; i++) {
		size_t n = cuts[i % 5];
		if (n > SIZE - off)
			n = SIZE - off;
		CHECK_EQ_INT(objput_write(w, data + off, n), 0);
		off += n;
	}
	struct ufs_stat st;
	CHECK_EQ_INT(objput_commit(&w, &st), 0);
	CHECK(w == NULL);
	CHECK_EQ_INT(st.size, SIZE);
	int before = ufs_reads();
	struct cap c = {.buf = malloc(SIZE), .cap = SIZE};
	CHECK_EQ_INT(get("pushed", &c), 0);
	CHECK(c.len == SIZE && memcmp(c.buf, data, SIZE) == 0);
	CHECK_EQ_INT(ufs_reads(), before);

	/* one byte too many: the error sticks, the commit refuses */
	struct pagestore_stats s0, s1;
	pagestore_get_stats(ps, &s0);
	o.size = 10;
	CHECK_EQ_INT(objput_begin(op, mnt, "over", &o, &w), 0);
	CHECK_EQ_INT(objput_write(w, data, 8), 0);
	CHECK(objput_write(w, data, 3) < 0);
	CHECK(objput_write(w, data, 1) < 0);
	CHECK(objput_commit(&w, &st) < 0);
	CHECK(w == NULL);
	CHECK_EQ_INT(get("over", &c), -ENOENT);
	/* an abort after whole pages: no page, no object */
	o.size = SIZE;
	CHECK_EQ_INT(objput_begin(op, mnt, "dropped", &o, &w), 0);
	CHECK_EQ_INT(objput_write(w, data, 2 * PAGE + 1), 0);
	objput_abort(&w);
	CHECK(w == NULL);
	pagestore_get_stats(ps, &s1);
	CHECK_EQ_INT(s1.pages, s0.pages);
	CHECK_EQ_INT(get("dropped", &c), -ENOENT);
	CHECK_EQ_INT(fake_count(&g_fake.aborts), 2);
	free(c.buf);
	free(data);
	teardown();
}

/* Regression (found by cp -r over FUSE): a directory asked for before a
 * file was written in it was cached as "no such key" and stayed so after
 * the write, so the new directory vanished for the sync interval. */
TEST(write_makes_its_directories_exist)
{
	setup();
	struct ufs_stat st;
	int64_t cached;
	CHECK_EQ_INT(objget_stat(og, mnt, "newdir", &st, &cached), -ENOENT);
	CHECK_EQ_INT(objget_stat(og, mnt, "newdir/sub", &st, &cached), -ENOENT);
	unsigned char *data = pattern(10, 8);
	CHECK_EQ_INT(put("newdir/sub/f", data, 10, 0, &st), 0);
	CHECK_EQ_INT(objget_stat(og, mnt, "newdir", &st, &cached), 0);
	CHECK(st.is_dir);
	CHECK_EQ_INT(objget_stat(og, mnt, "newdir/sub", &st, &cached), 0);
	CHECK(st.is_dir);
	CHECK_EQ_INT(objput_delete(op, mnt, "newdir/sub/f"), 0);
	CHECK_EQ_INT(objget_stat(og, mnt, "newdir/sub/f", &st, &cached), -ENOENT);
	free(data);
	teardown();
}

TEST(written_headers_are_answered_from_the_cache)
{
	setup();
	unsigned char *data = pattern(1000, 3);
	struct body b = {.p = data, .len = 1000};
	struct ufs_opt hd[] = {{"content-type", "text/csv"},
	    {"x-amz-meta-k", "v"}};
	struct objput_req rq = {.m = mnt, .path = "h/obj",
	    .opts = {.size = 1000, .headers = hd, .nheaders = 2},
	    .body = body_read, .arg = &b};
	struct ufs_stat st;
	CHECK_EQ_INT(objput_put(op, &rq, &st), 0);
	/* The next GET has them, the store not asked. */
	int before = ufs_reads();
	struct cap c = {.buf = malloc(1000), .cap = 1000};
	CHECK_EQ_INT(get("h/obj", &c), 0);
	CHECK_EQ_STR(c.ctype, "text/csv");
	CHECK_EQ_INT(ufs_reads(), before);
	free(c.buf);
	free(data);
	teardown();
}

int
main(void)
{
	RUN(write_through_then_read_is_a_hit);
	RUN(overwrite_replaces_old_version_everywhere);
	RUN(write_around_caches_nothing);
	RUN(failed_writes_leave_nothing);
	RUN(readonly_mount_refuses);
	RUN(delete_and_listings_follow_writes);
	RUN(push_session_any_split);
	RUN(write_makes_its_directories_exist);
	RUN(written_headers_are_answered_from_the_cache);
	TAP_DONE();
}
