/*
 * Unit tests for mpu (mpu.c), multipart uploads staged on local disk,
 * completed through objput into the fake under-store.  What a client
 * relies on: the object is its parts in the listed order; a wrong list
 * writes nothing and keeps the upload; a part racing a complete or abort
 * is refused, never half-kept; what a crash leaves is swept at open and
 * the uploads themselves survive it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/util.h"
#include "fake_ufs.h"
#include "tap.h"
#include "worker/meta.h"
#include "worker/mpu.h"
#include "worker/objput.h"
#include "worker/reader.h"

#define PAGE 65536

static char dir[64], updir[96];
static struct pagestore *ps;
static struct reader *rd;
static struct meta_cache *mc;
static struct objput *op;
static struct mount *mnt;
static struct mpu *u;

static void
setup(void)
{
	strcpy(dir, "/tmp/ferry-mpu-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(updir, sizeof(updir), "%s/uploads", dir);
	fake_reset(PAGE);
	mnt = fake_mount("fake", 42);
	struct pagestore_dir_cfg d = {.path = dir, .capacity = 64 << 20};
	char *err = NULL;
	ps = pagestore_open(&d, 1, PAGE, PAGESTORE_VERIFY_ALWAYS, &err);
	struct reader_cfg rc = {.fetch_threads = 2, .window = 2, .max_inflight = 16};
	rd = reader_open(&rc, ps);
	struct meta_cfg mcfg = {.sync_ms = 60000, .max_entries = 1000,
	    .max_list_bytes = 1 << 20};
	mc = meta_open(&mcfg);
	op = objput_open(mc, rd);
	u = mpu_open(updir, op, &err);
	if (!ps || !rd || !mc || !op || !u)
		abort();
}

static void
teardown(void)
{
	mpu_close(&u);
	objput_close(&op);
	meta_close(&mc);
	reader_close(&rd);
	pagestore_close(&ps);
	mount_release(&mnt);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		abort();
}

static int
put_part(const char *id, int n, const void *p, size_t len, char etag[33])
{
	struct mpu_part *pt;
	int r = mpu_part_begin(u, mnt, "obj", id, n, &pt);
	if (r < 0)
		return r;
	/* in two pieces, as a body arrives */
	if ((r = mpu_part_write(pt, p, len / 2)) < 0 ||
	    (r = mpu_part_write(pt, (const char *)p + len / 2, len - len / 2)) < 0) {
		mpu_part_abort(&pt);
		return r;
	}
	return mpu_part_commit(&pt, etag);
}

static unsigned char *
pattern(size_t n, int seed)
{
	unsigned char *p = malloc(n);
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + (size_t)seed * 13 + (i >> 11));
	return p;
}

static int
count_entries(const char *path)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 0", path);
	return system(cmd) == 0 ? 0 : 1;
}

TEST(complete_writes_parts_in_order)
{
	setup();
	char id[MPU_ID_LEN + 1], e1[33], e2[33], e3[33];
	struct ufs_opt h[] = {{"content-type", "text/x-ferry"}};
	CHECK_EQ_INT(mpu_create(u, mnt, "obj", h, 1, id), 0);
	CHECK(mpu_id_valid(id));
	size_t n1 = MPU_PART_MIN + 3, n2 = MPU_PART_MIN, n3 = 1000;
	unsigned char *p1 = pattern(n1, 1), *p2 = pattern(n2, 2), *p3 = pattern(n3, 3);
	CHECK_EQ_INT(put_part(id, 3, p3, n3, e3), 0);
	CHECK_EQ_INT(put_part(id, 1, p1, n1, e1), 0);
	CHECK_EQ_INT(put_part(id, 2, p2, n2, e2), 0);
	unsigned char md[16];
	char hex[33];
	md5_digest(p2, n2, md);
	hex_encode(md, 16, hex);
	CHECK_EQ_STR(e2, hex);
	/* a wrong list: nothing written, the upload kept */
	struct mpu_want bad[] = {{1, ""}, {2, ""}};
	strcpy(bad[0].etag, e1);
	strcpy(bad[1].etag, e1);
	struct ufs_put_opts cond = {.size = -1};
	struct ufs_stat st;
	char metag[48];
	int badn;
	CHECK_EQ_INT(mpu_complete(u, mnt, "obj", id, bad, 2, &cond, NULL, &st, metag, &badn), -EINVAL);
	CHECK_EQ_INT(badn, 2);
	struct mpu_want small[] = {{3, ""}, {3, ""}};
	strcpy(small[0].etag, e3);
	CHECK_EQ_INT(mpu_complete(u, mnt, "obj", id, small, 2, &cond, NULL, &st, metag, &badn), -EDOM);
	struct mpu_want two[] = {{3, ""}, {4, ""}};
	strcpy(two[0].etag, e3);
	CHECK_EQ_INT(mpu_complete(u, mnt, "obj", id, two, 2, &cond, NULL, &st, metag, &badn), -EMSGSIZE);
	CHECK_EQ_INT(fake_count(&g_fake.commits), 0);
	struct ufs_stat us;
	CHECK_EQ_INT(ufs_stat(mnt->ufs, "obj", &us), -ENOENT);
	/* the right one */
	struct mpu_want ok[] = {{1, ""}, {2, ""}, {3, ""}};
	strcpy(ok[0].etag, e1);
	strcpy(ok[1].etag, e2);
	strcpy(ok[2].etag, e3);
	CHECK_EQ_INT(mpu_complete(u, mnt, "obj", id, ok, 3, &cond, NULL, &st, metag, &badn), 0);
	CHECK_EQ_INT(st.size, (int64_t)(n1 + n2 + n3));
	CHECK(strlen(metag) == 34 && strcmp(metag + 32, "-3") == 0);
	CHECK_EQ_INT(fake_count(&g_fake.commits), 1);
	CHECK_EQ_INT(ufs_stat(mnt->ufs, "obj", &us), 0);
	CHECK_EQ_INT(us.size, (int64_t)(n1 + n2 + n3));
	/* the upload is gone, its directory too */
	CHECK_EQ_INT(mpu_abort(u, mnt, "obj", id), -ENOENT);
	CHECK_EQ_INT(count_entries(updir), 0);
	free(p1);
	free(p2);
	free(p3);
	teardown();
}

/* A part whose upload was completed or aborted while it was being written
 * is refused at its commit; its temporary file does not stay. */
TEST(part_racing_abort_is_refused)
{
	setup();
	char id[MPU_ID_LEN + 1], e[33];
	CHECK_EQ_INT(mpu_create(u, mnt, "obj", NULL, 0, id), 0);
	struct mpu_part *pt;
	CHECK_EQ_INT(mpu_part_begin(u, mnt, "obj", id, 1, &pt), 0);
	CHECK_EQ_INT(mpu_part_write(pt, "abc", 3), 0);
	CHECK_EQ_INT(mpu_abort(u, mnt, "obj", id), 0);
	CHECK_EQ_INT(mpu_part_commit(&pt, e), -ENOENT);
	CHECK(pt == NULL);
	CHECK_EQ_INT(count_entries(updir), 0);
	/* another key, a bad id, a bad number */
	CHECK_EQ_INT(mpu_create(u, mnt, "obj", NULL, 0, id), 0);
	CHECK_EQ_INT(mpu_part_begin(u, mnt, "other", id, 1, &pt), -ENOENT);
	CHECK_EQ_INT(mpu_part_begin(u, mnt, "obj", "../../etc", 1, &pt), -ENOENT);
	CHECK_EQ_INT(mpu_part_begin(u, mnt, "obj", id, 0, &pt), -EINVAL);
	CHECK_EQ_INT(mpu_part_begin(u, mnt, "obj", id, MPU_PART_MAX + 1, &pt), -EINVAL);
	teardown();
}

/* What a crash leaves: a temporary part, a create cut before its info,
 * a complete that died after claiming: swept or given back at open. */
TEST(open_sweeps_and_keeps_uploads)
{
	setup();
	char id[MPU_ID_LEN + 1], id2[MPU_ID_LEN + 1], e[33];
	CHECK_EQ_INT(mpu_create(u, mnt, "obj", NULL, 0, id), 0);
	CHECK_EQ_INT(put_part(id, 1, "xyz", 3, e), 0);
	CHECK_EQ_INT(mpu_create(u, mnt, "obj", NULL, 0, id2), 0);
	char p[256], q[256];
	snprintf(p, sizeof(p), "%s/%s/tmp.0123", updir, id);
	int fd = open(p, O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/%032d", updir, 7);
	CHECK_EQ_INT(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/%s", updir, id2);
	snprintf(q, sizeof(q), "%s/%s.busy", updir, id2);
	CHECK_EQ_INT(rename(p, q), 0);
	mpu_close(&u);
	char *err = NULL;
	u = mpu_open(updir, op, &err);
	CHECK(u != NULL);
	snprintf(p, sizeof(p), "%s/%s/tmp.0123", updir, id);
	CHECK(access(p, F_OK) < 0);
	snprintf(p, sizeof(p), "%s/%032d", updir, 7);
	CHECK(access(p, F_OK) < 0);
	snprintf(p, sizeof(p), "%s/%s", updir, id2);
	CHECK(access(p, F_OK) == 0); /* given back */
	struct mpu_want w = {1, ""};
	strcpy(w.etag, e);
	struct ufs_put_opts cond = {.size = -1};
	struct ufs_stat st;
	char metag[48];
	int badn;
	CHECK_EQ_INT(mpu_complete(u, mnt, "obj", id, &w, 1, &cond, NULL, &st, metag, &badn), 0);
	CHECK_EQ_INT(st.size, 3);
	teardown();
}

int
main(void)
{
	RUN(complete_writes_parts_in_order);
	RUN(part_racing_abort_is_refused);
	RUN(open_sweeps_and_keeps_uploads);
	TAP_DONE();
}
