/*
 * Unit tests for the reader (reader.c) over the fake under-store: bytes
 * are right, a warm read asks the UFS nothing, concurrent cold readers
 * share one fetch per page, errors reach the caller, a tiny buffer budget
 * does not deadlock, a changed object answers -ESTALE before a byte is
 * sent, the one-request cold read stores its page, and hits and misses
 * count what clients asked for (read-ahead apart).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_ufs.h"
#include "tap.h"
#include "worker/metrics.h"
#include "worker/reader.h"

#define PAGE 65536
#define NPAGES 12
#define OBJ_SIZE (NPAGES * PAGE - 1000)
#define OBJ "obj"

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
static struct reader *rd;
static struct mount *mnt;
static int gen = 1;

static void
setup_cfg(int max_inflight, int readahead)
{
	strcpy(tmpdir, "/tmp/ferry-reader-XXXXXX");
	if (!mkdtemp(tmpdir))
		abort();
	struct pagestore_dir_cfg d = {.path = tmpdir, .capacity = 64 << 20};
	char *err = NULL;
	ps = pagestore_open(&d, 1, PAGE, PAGESTORE_VERIFY_ALWAYS, &err);
	struct reader_cfg rc = {.fetch_threads = 4, .window = 4,
	    .readahead_pages = readahead, .max_inflight = max_inflight};
	rd = reader_open(&rc, ps);
	fake_reset(PAGE);
	gen = 1;
	fake_put(OBJ, OBJ_SIZE, gen);
	mnt = fake_mount("fake", 42);
}

static void
setup(int max_inflight)
{
	setup_cfg(max_inflight, 2);
}

static void
teardown(void)
{
	reader_close(&rd);
	pagestore_close(&ps);
	mount_release(&mnt);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		abort();
}

static void
stat_now(struct ufs_stat *st)
{
	if (ufs_stat(mnt->ufs, OBJ, st) < 0)
		abort();
}

static int
read_at(const struct ufs_stat *st, int64_t off, int64_t len, struct capture *c,
    int64_t *sent)
{
	struct read_sink sink = {.file = cap_file, .mem = cap_mem, .arg = c};
	return reader_read(rd, mnt, OBJ, st, off, len, &sink, sent);
}

static int
read_range(int64_t off, int64_t len, struct capture *c)
{
	struct ufs_stat st;
	stat_now(&st);
	int64_t sent = 0;
	int r = read_at(&st, off, len, c, &sent);
	if (r == 0 && sent != len)
		return -EPROTO;
	return r;
}

static int
bytes_ok(const struct capture *c, int64_t off)
{
	return fake_bytes_ok(OBJ, gen, off, c->buf, c->len);
}

static int
total_reads(void)
{
	return fake_count(&g_fake.reads) + fake_count(&g_fake.read_stats);
}

/* Background fetches settled: nothing more is read for a while. */
static void
settle(void)
{
	for (int spins = 0, last = -1; spins < 200; spins++) {
		usleep(10000);
		int t = total_reads();
		if (t == last)
			break;
		last = t;
	}
}

TEST(cold_then_warm)
{
	setup(32);
	struct capture c = {.buf = malloc(OBJ_SIZE), .cap = OBJ_SIZE};
	int64_t hit0 = METRIC_GET(hit_bytes), miss0 = METRIC_GET(miss_bytes);
	CHECK_EQ_INT(read_range(0, OBJ_SIZE, &c), 0);
	CHECK_EQ_INT((long long)c.len, OBJ_SIZE);
	CHECK(bytes_ok(&c, 0));
	settle();
	CHECK_EQ_INT(total_reads(), NPAGES);
	for (int i = 0; i < NPAGES; i++)
		CHECK_EQ_INT(g_fake.page_reads[i], 1);
	/* A cold read is all misses, window pages included. */
	CHECK_EQ_INT(METRIC_GET(miss_bytes) - miss0, OBJ_SIZE);
	CHECK_EQ_INT(METRIC_GET(hit_bytes) - hit0, 0);
	/* Warm: every page from its file, no UFS read, all hits. */
	c.len = 0;
	c.files = c.mems = 0;
	CHECK_EQ_INT(read_range(0, OBJ_SIZE, &c), 0);
	CHECK(bytes_ok(&c, 0));
	CHECK_EQ_INT(total_reads(), NPAGES);
	CHECK_EQ_INT(METRIC_GET(hit_bytes) - hit0, OBJ_SIZE);
	CHECK_EQ_INT(METRIC_GET(miss_bytes) - miss0, OBJ_SIZE);
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
	g_fake.delay_us = 20000; /* slow UFS: readers pile up on the same pages */
	run_concurrent(32);
	for (int i = 0; i < NPAGES; i++)
		CHECK_EQ_INT(g_fake.page_reads[i], 1);
	teardown();
}

TEST(tiny_buffer_budget_no_deadlock)
{
	setup(2);
	g_fake.delay_us = 2000;
	run_concurrent(16);
	for (int i = 0; i < NPAGES; i++)
		CHECK(g_fake.page_reads[i] >= 1);
	teardown();
}

TEST(ufs_error_reaches_caller_then_recovers)
{
	setup(32);
	g_fake.fail = -EIO;
	struct capture c = {.buf = malloc(OBJ_SIZE), .cap = OBJ_SIZE};
	struct ufs_stat st;
	g_fake.fail = 0;
	stat_now(&st);
	g_fake.fail = -EIO;
	int64_t sent = 0;
	CHECK_EQ_INT(read_at(&st, 0, 3 * PAGE, &c, &sent), -EIO);
	CHECK_EQ_INT(sent, 0);
	/* Let the fetches queued by the failed read finish (and fail)
	 * first: a read that joins a fetch still in flight shares its
	 * outcome, which is the point of sharing fetches. */
	settle();
	g_fake.fail = 0;
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

/* The object changed in the UFS since its stat: -ESTALE, and not a byte
 * of either version sent, even when some pages of the old one are cached. */
TEST(changed_object_is_estale_before_any_byte)
{
	setup(32);
	struct ufs_stat old;
	stat_now(&old);
	struct capture c = {.buf = malloc(OBJ_SIZE), .cap = OBJ_SIZE};
	int64_t sent = 0;
	CHECK_EQ_INT(read_at(&old, 0, PAGE, &c, &sent), 0); /* page 0 cached */
	settle();
	fake_put(OBJ, OBJ_SIZE, ++gen);
	c.len = 0;
	CHECK_EQ_INT(read_at(&old, 0, 4 * PAGE, &c, &sent), -ESTALE);
	CHECK_EQ_INT(sent, 0);
	CHECK_EQ_INT((long long)c.len, 0);
	/* An uncached range of the old version: the same. */
	CHECK_EQ_INT(read_at(&old, 8 * PAGE, PAGE, &c, &sent), -ESTALE);
	CHECK_EQ_INT(sent, 0);
	/* The new version reads right. */
	c.len = 0;
	CHECK_EQ_INT(read_range(0, OBJ_SIZE, &c), 0);
	CHECK(bytes_ok(&c, 0));
	free(c.buf);
	teardown();
}

/* reader_read_stat: one UFS request gives the stat and stores the page;
 * the read that follows asks the UFS nothing for that page and counts it
 * as a miss (it was not cached when the client asked), the next as a hit. */
TEST(read_stat_stores_first_page)
{
	setup_cfg(32, 0);
	struct ufs_stat st;
	int64_t off = 3 * PAGE + 17;
	CHECK_EQ_INT(reader_read_stat(rd, mnt, OBJ, off, 0, &st), 0);
	CHECK_EQ_INT(st.size, OBJ_SIZE);
	CHECK_EQ_INT(fake_count(&g_fake.read_stats), 1);
	CHECK_EQ_INT(fake_count(&g_fake.stats), 0);
	CHECK(reader_has_page(rd, mnt, OBJ, &st, off));
	CHECK(reader_has_object(rd, mnt, OBJ));
	int64_t hit0 = METRIC_GET(hit_bytes), miss0 = METRIC_GET(miss_bytes);
	struct capture c = {.buf = malloc(PAGE), .cap = PAGE};
	int64_t sent = 0;
	CHECK_EQ_INT(read_at(&st, off, 100, &c, &sent), 0);
	CHECK(bytes_ok(&c, off));
	CHECK_EQ_INT(fake_count(&g_fake.reads), 0);
	CHECK_EQ_INT(METRIC_GET(miss_bytes) - miss0, 100);
	CHECK_EQ_INT(METRIC_GET(hit_bytes) - hit0, 0);
	c.len = 0;
	CHECK_EQ_INT(read_at(&st, off, 100, &c, &sent), 0);
	CHECK_EQ_INT(METRIC_GET(hit_bytes) - hit0, 100);
	CHECK_EQ_INT(reader_cached_bytes(rd, mnt, OBJ, &st), PAGE);
	/* No object, and past the end. */
	struct ufs_stat none;
	CHECK_EQ_INT(reader_read_stat(rd, mnt, "nothing", 0, 0, &none), -ENOENT);
	CHECK_EQ_INT(reader_read_stat(rd, mnt, OBJ, OBJ_SIZE + PAGE, 0, &none), -ERANGE);
	free(c.buf);
	teardown();
}

/* Sequential reads get read-ahead; its bytes are counted apart, and a
 * page it fetched is a miss the first time a client reads it. */
TEST(readahead_counted_apart)
{
	setup_cfg(32, 4);
	struct ufs_stat st;
	stat_now(&st);
	struct capture c = {.buf = malloc(PAGE), .cap = PAGE};
	int64_t ra0 = METRIC_GET(readahead_bytes), hit0 = METRIC_GET(hit_bytes);
	int64_t sent;
	CHECK_EQ_INT(read_at(&st, 0, PAGE, &c, &sent), 0);
	c.len = 0;
	CHECK_EQ_INT(read_at(&st, PAGE, PAGE, &c, &sent), 0); /* sequential */
	settle();
	CHECK_EQ_INT(METRIC_GET(readahead_bytes) - ra0, 4 * PAGE);
	CHECK(reader_has_page(rd, mnt, OBJ, &st, 5 * PAGE));
	int64_t miss0 = METRIC_GET(miss_bytes);
	c.len = 0;
	CHECK_EQ_INT(read_at(&st, 2 * PAGE, PAGE, &c, &sent), 0);
	CHECK(bytes_ok(&c, 2 * PAGE));
	CHECK_EQ_INT(METRIC_GET(miss_bytes) - miss0, PAGE);
	CHECK_EQ_INT(METRIC_GET(hit_bytes) - hit0, 0);
	free(c.buf);
	teardown();
}

/* Local-fd handout: all pages or none; each ref is the covered part. */
TEST(get_pages_all_or_none)
{
	setup_cfg(32, 0);
	struct ufs_stat st;
	stat_now(&st);
	struct page_ref refs[8];
	int n = -1;
	CHECK_EQ_INT(reader_get_pages(rd, mnt, OBJ, &st, 10, 2 * PAGE, refs, 8, &n), -ENOENT);
	CHECK_EQ_INT(n, 0);
	struct capture c = {.buf = malloc(3 * PAGE), .cap = 3 * PAGE};
	int64_t sent;
	CHECK_EQ_INT(read_at(&st, 0, 3 * PAGE, &c, &sent), 0);
	settle();
	CHECK_EQ_INT(reader_get_pages(rd, mnt, OBJ, &st, 10, 2 * PAGE, refs, 8, &n), 0);
	CHECK_EQ_INT(n, 3);
	int64_t total = 0;
	unsigned char *b = malloc(PAGE + PAGESTORE_CHUNK);
	for (int i = 0; i < n; i++) {
		const unsigned char *p = NULL;
		CHECK_EQ_INT(page_ref_read(&refs[i], refs[i].ra, refs[i].rn, b, PAGE + PAGESTORE_CHUNK, &p),
		    (ssize_t)refs[i].rn);
		CHECK(p && fake_bytes_ok(OBJ, gen, 10 + total, p, refs[i].rn));
		total += refs[i].rn;
		page_ref_release(&refs[i]);
	}
	CHECK_EQ_INT(total, 2 * PAGE);
	free(b);
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
	RUN(changed_object_is_estale_before_any_byte);
	RUN(read_stat_stores_first_page);
	RUN(readahead_counted_apart);
	RUN(get_pages_all_or_none);
	TAP_DONE();
}
