/*
 * Unit tests for the read path (reader.c) over a fake under-store that
 * counts its reads: bytes are right, a warm read asks the UFS nothing,
 * concurrent cold readers share one fetch per page, errors reach the caller,
 * a tiny buffer budget does not deadlock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "tap.h"
#include "worker/meta.h"
#include "worker/metrics.h"
#include "worker/reader.h"

#define PAGE 65536
#define NPAGES 12
#define OBJ_SIZE (NPAGES * PAGE - 1000)

static int reads[NPAGES + 1];
static int fail_reads;
static int read_delay_us;
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned char
byte_at(int64_t off, int gen)
{
	return (unsigned char)((off * 2654435761u + (uint64_t)gen * 7) >> 7);
}

static int fake_gen;

static ssize_t
fake_read(void *st, const char *path, const char *etag, int64_t off, void *buf, size_t len)
{
	(void)st;
	(void)path;
	(void)etag;
	if (read_delay_us)
		usleep((useconds_t)read_delay_us);
	pthread_mutex_lock(&fake_lock);
	reads[off / PAGE]++;
	int f = fail_reads;
	pthread_mutex_unlock(&fake_lock);
	if (f)
		return -EIO;
	size_t n = off + (int64_t)len > OBJ_SIZE ? (size_t)(OBJ_SIZE - off) : len;
	for (size_t i = 0; i < n; i++)
		((unsigned char *)buf)[i] = byte_at(off + (int64_t)i, fake_gen);
	return (ssize_t)n;
}

static int
fake_stat(void *st, const char *path, struct ufs_stat *out)
{
	(void)st;
	(void)path;
	memset(out, 0, sizeof(*out));
	out->size = OBJ_SIZE;
	out->mtime = 1000 + fake_gen;
	return 0;
}

static void
fake_close(void *st)
{
	(void)st;
}

static int
fake_open(const char *root, const struct ufs_opt *opts, int nopts, void **st,
    char **err)
{
	*st = (void *)1;
	return 0;
}

static const struct ufs_ops fake_ops = {
	.scheme = "fake",
	.open = fake_open,
	.close = fake_close,
	.stat = fake_stat,
	.read = fake_read,
};

static struct mount *
fake_mount(void)
{
	struct mount *m = calloc(1, sizeof(*m));
	strcpy(m->name, "fake");
	if (ufs_open_ops(&fake_ops, "fake://", "", NULL, 0, &m->ufs) < 0)
		abort();
	m->ident = 42;
	m->refs = 1;
	return m;
}

struct capture {
	unsigned char *buf;
	size_t len;
	size_t cap;
	int files, mems;
};

static int
cap_mem(void *arg, const void *p, size_t n)
{
	struct capture *c = arg;
	if (c->len + n > c->cap)
		return -E2BIG;
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	c->mems++;
	return 0;
}

static int
cap_file(void *arg, int fd, off_t off, size_t n)
{
	struct capture *c = arg;
	if (c->len + n > c->cap)
		return -E2BIG;
	ssize_t r = pread(fd, c->buf + c->len, n, off);
	if (r != (ssize_t)n)
		return -EIO;
	c->len += n;
	c->files++;
	return 0;
}

static char tmpdir[64];
static struct pagestore *ps;
static struct meta_cache *mc;
static struct reader *rd;
static struct mount *mnt;

static void
setup(int max_inflight)
{
	strcpy(tmpdir, "/tmp/ferry-reader-XXXXXX");
	if (!mkdtemp(tmpdir))
		abort();
	struct pagestore_dir_cfg d = {.path = tmpdir, .capacity = 64 << 20};
	char *err = NULL;
	ps = pagestore_open(&d, 1, PAGE, PAGESTORE_VERIFY_ALWAYS, &err);
	mc = meta_open(60000, 1000, 1 << 20, ps);
	struct reader_cfg rc = {.fetch_threads = 4, .window = 4, .readahead_pages = 2,
	    .max_inflight = max_inflight};
	rd = reader_open(&rc, ps, mc);
	mnt = fake_mount();
	memset(reads, 0, sizeof(reads));
	fail_reads = 0;
	read_delay_us = 0;
}

static void
teardown(void)
{
	reader_close(&rd);
	meta_close(&mc);
	pagestore_close(&ps);
	mount_release(&mnt);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		abort();
}

static int
total_reads(void)
{
	int t = 0;
	for (int i = 0; i <= NPAGES; i++)
		t += reads[i];
	return t;
}

static int
read_range(int64_t off, int64_t len, struct capture *c)
{
	struct ufs_stat st;
	if (meta_stat(mc, mnt, "obj", &st) < 0)
		return -EIO;
	struct read_sink sink = {.file = cap_file, .mem = cap_mem, .arg = c};
	int64_t sent = 0;
	int r = reader_read(rd, mnt, "obj", &st, off, len, &sink, &sent);
	if (r == 0 && sent != len)
		return -EPROTO;
	return r;
}

static int
bytes_ok(const struct capture *c, int64_t off)
{
	for (size_t i = 0; i < c->len; i++)
		if (c->buf[i] != byte_at(off + (int64_t)i, fake_gen))
			return 0;
	return 1;
}

TEST(cold_then_warm)
{
	setup(32);
	struct capture c = {.buf = malloc(OBJ_SIZE), .cap = OBJ_SIZE};
	CHECK_EQ_INT(read_range(0, OBJ_SIZE, &c), 0);
	CHECK_EQ_INT((long long)c.len, OBJ_SIZE);
	CHECK(bytes_ok(&c, 0));
	CHECK_EQ_INT(total_reads(), NPAGES);
	for (int i = 0; i < NPAGES; i++)
		CHECK_EQ_INT(reads[i], 1);
	/* Warm: every page from its file, no UFS read. */
	c.len = 0;
	c.files = c.mems = 0;
	CHECK_EQ_INT(read_range(0, OBJ_SIZE, &c), 0);
	CHECK(bytes_ok(&c, 0));
	CHECK_EQ_INT(total_reads(), NPAGES);
	/* Small pages are checked in memory and sent from there, large ones
	 * go by sendfile; either way, one sink call per page, no UFS read. */
	CHECK_EQ_INT(c.files + c.mems, NPAGES);
	/* Ranges crossing page boundaries, and the last partial page. */
	int64_t offs[][2] = {{PAGE - 3, 10}, {3 * PAGE + 5, 2 * PAGE}, {OBJ_SIZE - 7, 7}, {0, 1}};
	for (size_t k = 0; k < 4; k++) {
		c.len = 0;
		CHECK_EQ_INT(read_range(offs[k][0], offs[k][1], &c), 0);
		CHECK(bytes_ok(&c, offs[k][0]));
	}
	CHECK_EQ_INT(total_reads(), NPAGES);
	free(c.buf);
	teardown();
}

struct thr {
	int rc;
	int ok;
};

static void *
reader_thread(void *arg)
{
	struct thr *t = arg;
	struct capture c = {.buf = malloc(OBJ_SIZE), .cap = OBJ_SIZE};
	t->rc = read_range(0, OBJ_SIZE, &c);
	t->ok = t->rc == 0 && bytes_ok(&c, 0);
	free(c.buf);
	return NULL;
}

static void
run_concurrent(int nthreads)
{
	pthread_t th[64];
	struct thr t[64];
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, reader_thread, &t[i]);
	for (int i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		CHECK_EQ_INT(t[i].rc, 0);
		CHECK(t[i].ok);
	}
}

TEST(concurrent_cold_readers_share_fetches)
{
	setup(32);
	read_delay_us = 20000; /* slow UFS: readers pile up on the same pages */
	run_concurrent(32);
	for (int i = 0; i < NPAGES; i++)
		CHECK_EQ_INT(reads[i], 1);
	teardown();
}

TEST(tiny_buffer_budget_no_deadlock)
{
	setup(2);
	read_delay_us = 2000;
	run_concurrent(16);
	for (int i = 0; i < NPAGES; i++)
		CHECK(reads[i] >= 1);
	teardown();
}

TEST(ufs_error_reaches_caller_then_recovers)
{
	setup(32);
	fail_reads = 1;
	struct capture c = {.buf = malloc(OBJ_SIZE), .cap = OBJ_SIZE};
	CHECK_EQ_INT(read_range(0, 3 * PAGE, &c), -EIO);
	/* Let the read-ahead fetches queued by the failed read finish (and
	 * fail) first: a read that joins a fetch still in flight shares its
	 * outcome, which is the point of sharing fetches. */
	for (int spins = 0, last = -1; spins < 200; spins++) {
		usleep(10000);
		pthread_mutex_lock(&fake_lock);
		int t = total_reads();
		pthread_mutex_unlock(&fake_lock);
		if (t == last)
			break;
		last = t;
	}
	usleep(50000);
	fail_reads = 0;
	c.len = 0;
	CHECK_EQ_INT(read_range(0, OBJ_SIZE, &c), 0);
	CHECK(bytes_ok(&c, 0));
	free(c.buf);
	teardown();
}

TEST(sink_error_stops_read)
{
	setup(32);
	struct capture c = {.buf = malloc(PAGE), .cap = PAGE}; /* too small */
	CHECK_EQ_INT(read_range(0, 4 * PAGE, &c), -E2BIG);
	free(c.buf);
	teardown();
}

int
main(void)
{
	RUN(cold_then_warm);
	RUN(concurrent_cold_readers_share_fetches);
	RUN(tiny_buffer_budget_no_deadlock);
	RUN(ufs_error_reaches_caller_then_recovers);
	RUN(sink_error_stops_read);
	TAP_DONE();
}
