/*
 * Unit tests for objget (objget.c), the one owner of an object request,
 * over the real stack in-process (a page store in a temporary directory,
 * the reader, the metadata cache with on_change dropping old pages, a
 * router with no cluster) and the fake under-store.  A capturing sink
 * records the head and the body, so each test checks what a client would
 * see: the status, the range, the ETag, the bytes; and what the
 * under-store was asked.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_ufs.h"
#include "tap.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#include "worker/meta.h"
#include "worker/objget.h"
#include "worker/objkey.h"
#include "worker/reader.h"
#include "worker/router.h"

#define PAGE 65536
#define NPAGES 6
#define SIZE (NPAGES * PAGE - 1000)
#define MOUNT_IDENT 42

static char dir[64];
static struct pagestore *ps;
static struct reader *rd;
static struct meta_cache *mc;
static struct router *rt;
static struct objget *og;
static struct mount *mnt;

/* on_change: counted, then the old versions' pages dropped, as the worker
 * wires it. */
static int changes;
static uint64_t change_obj, change_keep;

static void
on_change(void *arg, uint64_t obj, uint64_t keep_ver)
{
	__atomic_add_fetch(&changes, 1, __ATOMIC_RELAXED);
	change_obj = obj;
	change_keep = keep_ver;
	reader_drop_object(rd, obj, keep_ver);
}

static void
open_stack(int64_t sync_ms)
{
	struct pagestore_dir_cfg d = {.path = dir, .capacity = 64 << 20};
	char *err = NULL;
	ps = pagestore_open(&d, 1, PAGE, PAGESTORE_VERIFY_ALWAYS, &err);
	if (!ps)
		abort();
	struct reader_cfg rc = {.fetch_threads = 4, .window = 4,
	    .readahead_pages = 0, .max_inflight = 32};
	rd = reader_open(&rc, ps);
	struct meta_cfg mcfg = {.sync_ms = sync_ms, .max_entries = 1000,
	    .max_list_bytes = 1 << 20, .stale_ms = 0, .on_change = on_change};
	mc = meta_open(&mcfg);
	rt = router_open(NULL, "self", 0, NULL, rd);
	og = objget_open(mc, rt, rd);
	if (!rd || !mc || !rt || !og)
		abort();
}

static void
close_stack(void)
{
	objget_close(&og);
	router_close(&rt);
	meta_close(&mc);
	reader_close(&rd);
	pagestore_close(&ps);
}

static void
setup(void)
{
	strcpy(dir, "/tmp/ferry-objget-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	fake_reset(PAGE);
	fake_put("obj", SIZE, 1);
	fake_put("obj2", SIZE, 1);
	fake_put("obj3", SIZE, 1);
	fake_put("empty", 0, 1);
	fake_put("dir/a", 10, 1);
	mnt = fake_mount("fake", MOUNT_IDENT);
	changes = 0;
	change_obj = change_keep = 0;
	open_stack(60000);
}

static void
teardown(void)
{
	close_stack();
	mount_release(&mnt);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		abort();
}

static void
zero_counts(void)
{
	pthread_mutex_lock(&g_fake.mu);
	g_fake.stats = g_fake.lists = g_fake.reads = g_fake.read_stats = 0;
	memset(g_fake.page_reads, 0, sizeof(g_fake.page_reads));
	pthread_mutex_unlock(&g_fake.mu);
}

static int
ufs_asked(void)
{
	return fake_count(&g_fake.stats) + fake_count(&g_fake.reads) +
	    fake_count(&g_fake.read_stats) + fake_count(&g_fake.lists);
}

/* The stat the fake answers for an object of size bytes at gen. */
static void
fake_stat_of(const char *path, int64_t size, int gen, struct ufs_stat *st)
{
	memset(st, 0, sizeof(*st));
	struct fake_obj o = {.size = size, .gen = gen};
	snprintf(o.path, sizeof(o.path), "%s", path);
	st->size = size;
	st->mtime = 1000 + gen;
	fake_etag_of(&o, st->etag, sizeof(st->etag));
}

/* Waits (2 s at most) until bytes of path at st are cached. */
static int
wait_cached(const char *path, const struct ufs_stat *st, int64_t bytes)
{
	for (int i = 0; i < 200; i++) {
		if (reader_cached_bytes(rd, mnt, path, st) >= bytes)
			return 1;
		usleep(10000);
	}
	return 0;
}

/* --- the capturing sink -------------------------------------------------- */

struct cap {
	int heads;
	int status;
	char etag[UFS_ETAG_MAX];
	int64_t first, last, length, size;
	int body_calls;
	int body_before_head;
	unsigned char *buf;
	size_t len, capacity;
	int head_fail; /* what head answers */
	int hdrs_known;       /* the head's stored headers */
	char ctype[64], meta[64]; /* content-type, x-amz-meta-a ("" if none) */
};

static int
cap_head(void *arg, const struct objget_head *h)
{
	struct cap *c = arg;
	c->heads++;
	c->status = h->status;
	snprintf(c->etag, sizeof(c->etag), "%s", h->etag ? h->etag : "");
	c->first = h->first;
	c->last = h->last;
	c->length = h->length;
	c->size = h->st ? h->st->size : -1;
	c->hdrs_known = h->hdrs ? h->hdrs->known : -1;
	const char *v = h->hdrs ? ufs_hdrs_get(h->hdrs, "content-type") : NULL;
	snprintf(c->ctype, sizeof(c->ctype), "%s", v ? v : "");
	v = h->hdrs ? ufs_hdrs_get(h->hdrs, "x-amz-meta-a") : NULL;
	snprintf(c->meta, sizeof(c->meta), "%s", v ? v : "");
	return c->head_fail;
}

static int
cap_add(struct cap *c, const void *p, size_t n)
{
	if (!c->heads)
		c->body_before_head = 1;
	c->body_calls++;
	if (c->len + n > c->capacity)
		return -E2BIG;
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	return 0;
}

static int
cap_mem(void *arg, const void *p, size_t n)
{
	return cap_add(arg, p, n);
}

static int
cap_file(void *arg, int fd, off_t off, size_t n)
{
	unsigned char *tmp = malloc(n ? n : 1);
	int r = pread(fd, tmp, n, off) == (ssize_t)n ? cap_add(arg, tmp, n) : -EIO;
	free(tmp);
	return r;
}

static void
cap_init(struct cap *c)
{
	memset(c, 0, sizeof(*c));
	c->capacity = SIZE;
	c->buf = malloc(SIZE);
	c->first = c->last = c->length = -1;
}

static void
cap_reset(struct cap *c)
{
	unsigned char *b = c->buf;
	cap_init(c);
	free(c->buf);
	c->buf = b;
}

static void
cap_free(struct cap *c)
{
	free(c->buf);
	c->buf = NULL;
}

static struct objget_hdr
H(const char *s)
{
	struct objget_hdr h = {s, s ? strlen(s) : 0};
	return h;
}

static struct objget_req
req(const char *path)
{
	struct objget_req rq;
	memset(&rq, 0, sizeof(rq));
	rq.m = mnt;
	rq.path = path;
	rq.dir_enoent = 1; /* as the S3 gateway asks */
	rq.want_hdrs = 1;
	return rq;
}

static int
serve(const struct objget_req *rq, struct cap *c, int *started)
{
	struct objget_sink s = {.head = cap_head, .file = cap_file,
	    .mem = cap_mem, .arg = c};
	return objget_serve(og, rq, &s, started);
}

/* A plain GET of path into c: 0 or -errno. */
static int
get(const char *path, struct cap *c)
{
	struct objget_req rq = req(path);
	int started;
	cap_reset(c);
	return serve(&rq, c, &started);
}

/* --- bytes, ranges, HEAD -------------------------------------------------- */

TEST(full_get)
{
	setup();
	struct cap c;
	cap_init(&c);
	CHECK_EQ_INT(get("obj", &c), 0);
	CHECK_EQ_INT(c.heads, 1);
	CHECK_EQ_INT(c.status, 200);
	CHECK_EQ_INT(c.length, SIZE);
	CHECK_EQ_INT(c.first, 0);
	CHECK_EQ_INT(c.last, SIZE - 1);
	CHECK_EQ_INT(c.size, SIZE);
	char want[64];
	snprintf(want, sizeof(want), "g1-%d", SIZE);
	CHECK_EQ_STR(c.etag, want);
	CHECK_EQ_INT((int64_t)c.len, SIZE);
	CHECK(fake_bytes_ok("obj", 1, 0, c.buf, c.len));
	CHECK_EQ_INT(c.body_before_head, 0);
	/* No such object: an error before anything is sent. */
	int started = 1;
	struct objget_req rq = req("nothing");
	cap_reset(&c);
	CHECK_EQ_INT(serve(&rq, &c, &started), -ENOENT);
	CHECK_EQ_INT(started, 0);
	CHECK_EQ_INT(c.heads, 0);
	cap_free(&c);
	teardown();
}

TEST(ranges)
{
	setup();
	struct cap c;
	cap_init(&c);
	struct {
		const char *range;
		int64_t first, last;
	} cases[] = {
		{"bytes=100-70000", 100, 70000},
		{"bytes=-500", SIZE - 500, SIZE - 1},
		{"bytes=200000-", 200000, SIZE - 1},
		{"bytes=0-0", 0, 0},
		{"bytes=5-99999999", 5, SIZE - 1},
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct objget_req rq = req("obj");
		rq.range = H(cases[i].range);
		int started = 0;
		cap_reset(&c);
		CHECK_EQ_INT(serve(&rq, &c, &started), 0);
		CHECK_EQ_INT(started, 1);
		CHECK_EQ_INT(c.heads, 1);
		CHECK_EQ_INT(c.status, 206);
		CHECK_EQ_INT(c.first, cases[i].first);
		CHECK_EQ_INT(c.last, cases[i].last);
		CHECK_EQ_INT(c.length, cases[i].last - cases[i].first + 1);
		CHECK_EQ_INT((int64_t)c.len, c.length);
		CHECK(fake_bytes_ok("obj", 1, cases[i].first, c.buf, c.len));
	}
	/* Unsatisfiable: 416, the head alone. */
	const char *bad[] = {"bytes=99999999-", "bytes=-0"};
	for (size_t i = 0; i < NELEM(bad); i++) {
		struct objget_req rq = req("obj");
		rq.range = H(bad[i]);
		int started = 0;
		cap_reset(&c);
		CHECK_EQ_INT(serve(&rq, &c, &started), 0);
		CHECK_EQ_INT(started, 1);
		CHECK_EQ_INT(c.heads, 1);
		CHECK_EQ_INT(c.status, 416);
		CHECK_EQ_INT(c.body_calls, 0);
	}
	/* Malformed or several ranges: the whole object. */
	struct objget_req rq = req("obj");
	rq.range = H("bytes=0-1,5-6");
	int started;
	cap_reset(&c);
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK_EQ_INT(c.status, 200);
	CHECK_EQ_INT((int64_t)c.len, SIZE);
	cap_free(&c);
	teardown();
}

TEST(head_and_empty)
{
	setup();
	struct cap c;
	cap_init(&c);
	struct objget_req rq = req("obj");
	rq.head = 1;
	int started = 0;
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK_EQ_INT(started, 1);
	CHECK_EQ_INT(c.heads, 1);
	CHECK_EQ_INT(c.status, 200);
	CHECK_EQ_INT(c.length, SIZE);
	CHECK_EQ_INT(c.body_calls, 0);
	CHECK_EQ_INT(fake_count(&g_fake.reads), 0);
	/* A HEAD with a Range: the length a GET would send. */
	rq.range = H("bytes=10-19");
	cap_reset(&c);
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK_EQ_INT(c.status, 206);
	CHECK_EQ_INT(c.length, 10);
	CHECK_EQ_INT(c.body_calls, 0);

	/* An empty object: the head alone, length 0. */
	cap_reset(&c);
	CHECK_EQ_INT(get("empty", &c), 0);
	CHECK_EQ_INT(c.heads, 1);
	CHECK_EQ_INT(c.status, 200);
	CHECK_EQ_INT(c.length, 0);
	CHECK_EQ_INT(c.size, 0);
	CHECK_EQ_INT(c.body_calls, 0);
	rq = req("empty");
	rq.head = 1;
	cap_reset(&c);
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK_EQ_INT(c.heads, 1);
	CHECK_EQ_INT(c.length, 0);
	cap_free(&c);
	teardown();
}

/* --- conditions ---------------------------------------------------------- */

static int
cond_status(const char *ifm, const char *inm, const char *ims, const char *ius,
    int head)
{
	struct cap c;
	cap_init(&c);
	struct objget_req rq = req("obj");
	rq.head = head;
	rq.if_match = H(ifm);
	rq.if_none_match = H(inm);
	rq.if_modified_since = H(ims);
	rq.if_unmodified_since = H(ius);
	int started = 0;
	int r = serve(&rq, &c, &started);
	int status = r < 0 ? r : c.status;
	/* 304 and 412 are heads alone; 200 sends the whole object. */
	if (r == 0 && (status == 304 || status == 412) && c.body_calls)
		status = -1000;
	if (r == 0 && status == 200 && !head &&
	    ((int64_t)c.len != SIZE || !fake_bytes_ok("obj", 1, 0, c.buf, c.len)))
		status = -1001;
	if (c.heads != 1)
		status = -1002;
	cap_free(&c);
	return status;
}

TEST(conditional_headers)
{
	setup();
	char etag[64], q[80], list[160], at[64], before[64], after[64];
	snprintf(etag, sizeof(etag), "g1-%d", SIZE);
	snprintf(q, sizeof(q), "\"%s\"", etag);
	snprintf(list, sizeof(list), "\"x\", W/\"%s\"", etag);
	fmt_http_date(1001, at, sizeof(at)); /* the object's mtime */
	fmt_http_date(1000, before, sizeof(before));
	fmt_http_date(5000, after, sizeof(after));

	CHECK_EQ_INT(cond_status(NULL, q, NULL, NULL, 0), 304);
	CHECK_EQ_INT(cond_status(NULL, list, NULL, NULL, 0), 304);
	CHECK_EQ_INT(cond_status(NULL, "*", NULL, NULL, 0), 304);
	CHECK_EQ_INT(cond_status(NULL, "\"other\"", NULL, NULL, 0), 200);
	CHECK_EQ_INT(cond_status(NULL, q, NULL, NULL, 1), 304);

	CHECK_EQ_INT(cond_status("\"other\"", NULL, NULL, NULL, 0), 412);
	CHECK_EQ_INT(cond_status(q, NULL, NULL, NULL, 0), 200);
	CHECK_EQ_INT(cond_status(etag, NULL, NULL, NULL, 0), 200);
	CHECK_EQ_INT(cond_status("*", NULL, NULL, NULL, 0), 200);
	CHECK_EQ_INT(cond_status("\"other\"", NULL, NULL, NULL, 1), 412);

	CHECK_EQ_INT(cond_status(NULL, NULL, at, NULL, 0), 304);
	CHECK_EQ_INT(cond_status(NULL, NULL, after, NULL, 0), 304);
	CHECK_EQ_INT(cond_status(NULL, NULL, before, NULL, 0), 200);
	CHECK_EQ_INT(cond_status(NULL, NULL, "not a date", NULL, 0), 200);

	CHECK_EQ_INT(cond_status(NULL, NULL, NULL, before, 0), 412);
	CHECK_EQ_INT(cond_status(NULL, NULL, NULL, at, 0), 200);
	CHECK_EQ_INT(cond_status(NULL, NULL, NULL, after, 0), 200);

	/* RFC 9110 order: If-Match decides over If-Unmodified-Since, and
	 * If-None-Match over If-Modified-Since. */
	CHECK_EQ_INT(cond_status(q, NULL, NULL, before, 0), 200);
	CHECK_EQ_INT(cond_status(NULL, "\"other\"", at, NULL, 0), 200);
	/* A failed If-Match wins over a matching If-None-Match. */
	CHECK_EQ_INT(cond_status("\"other\"", q, NULL, NULL, 0), 412);
	teardown();
}

/* --- directories --------------------------------------------------------- */

TEST(directory)
{
	setup();
	struct cap c;
	cap_init(&c);
	struct objget_req rq = req("dir");
	int started = 1;
	CHECK_EQ_INT(serve(&rq, &c, &started), -ENOENT);
	CHECK_EQ_INT(started, 0);
	rq.dir_enoent = 0;
	started = 1;
	CHECK_EQ_INT(serve(&rq, &c, &started), -EISDIR);
	CHECK_EQ_INT(started, 0);
	/* And in the other order, once the cache knows it is a directory. */
	rq.dir_enoent = 1;
	CHECK_EQ_INT(serve(&rq, &c, &started), -ENOENT);
	rq.head = 1;
	CHECK_EQ_INT(serve(&rq, &c, &started), -ENOENT);
	CHECK_EQ_INT(c.heads, 0);
	/* The root is a directory. */
	rq = req("");
	rq.dir_enoent = 0;
	CHECK_EQ_INT(serve(&rq, &c, &started), -EISDIR);
	cap_free(&c);
	teardown();
}

/* --- what the under-store is asked --------------------------------------- */

TEST(cold_get_is_one_request)
{
	setup();
	struct cap c;
	cap_init(&c);
	/* From byte 0: one read_stat, no stat; the first page is not read
	 * again, and every page once. */
	zero_counts();
	CHECK_EQ_INT(get("obj", &c), 0);
	CHECK(fake_bytes_ok("obj", 1, 0, c.buf, c.len));
	CHECK_EQ_INT((int64_t)c.len, SIZE);
	CHECK_EQ_INT(fake_count(&g_fake.read_stats), 1);
	CHECK_EQ_INT(fake_count(&g_fake.stats), 0);
	CHECK_EQ_INT(fake_count(&g_fake.reads), NPAGES - 1);
	for (int i = 0; i < NPAGES; i++)
		CHECK_EQ_INT(g_fake.page_reads[i], 1);

	/* A Range starting inside a later page: that page comes with the
	 * stat. */
	zero_counts();
	struct objget_req rq = req("obj2");
	rq.range = H("bytes=200000-");
	int started;
	cap_reset(&c);
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK_EQ_INT(c.status, 206);
	CHECK(fake_bytes_ok("obj2", 1, 200000, c.buf, c.len));
	CHECK_EQ_INT(fake_count(&g_fake.read_stats), 1);
	CHECK_EQ_INT(fake_count(&g_fake.stats), 0);
	CHECK_EQ_INT(g_fake.page_reads[200000 / PAGE], 1);
	for (int i = 0; i < 200000 / PAGE; i++)
		CHECK_EQ_INT(g_fake.page_reads[i], 0);
	CHECK_EQ_INT(fake_count(&g_fake.reads) + fake_count(&g_fake.read_stats),
	    NPAGES - 200000 / PAGE);

	/* A backend whose read carries no metadata: a stat first. */
	zero_counts();
	g_fake.no_read_stat = 1;
	CHECK_EQ_INT(get("obj3", &c), 0);
	CHECK(fake_bytes_ok("obj3", 1, 0, c.buf, c.len));
	CHECK_EQ_INT(fake_count(&g_fake.stats), 1);
	CHECK_EQ_INT(fake_count(&g_fake.read_stats), 0);
	CHECK_EQ_INT(fake_count(&g_fake.reads), NPAGES);
	g_fake.no_read_stat = 0;
	cap_free(&c);
	teardown();
}

TEST(warm_get_asks_nothing)
{
	setup();
	struct cap c;
	cap_init(&c);
	CHECK_EQ_INT(get("obj", &c), 0);
	struct ufs_stat st;
	fake_stat_of("obj", SIZE, 1, &st);
	CHECK(wait_cached("obj", &st, SIZE));
	zero_counts();
	CHECK_EQ_INT(get("obj", &c), 0);
	CHECK(fake_bytes_ok("obj", 1, 0, c.buf, c.len));
	CHECK_EQ_INT((int64_t)c.len, SIZE);
	struct objget_req rq = req("obj");
	rq.range = H("bytes=70000-70099");
	int started;
	cap_reset(&c);
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK(fake_bytes_ok("obj", 1, 70000, c.buf, c.len));
	CHECK_EQ_INT(c.len, 100);
	rq = req("obj");
	rq.head = 1;
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK_EQ_INT(ufs_asked(), 0);
	cap_free(&c);
	teardown();
}

/* --- the headers stored with an object ----------------------------------- */

/* Someone else gives path's current version stored headers. */
static void
fake_set_hdrs(const char *path, const char *ctype, const char *meta)
{
	pthread_mutex_lock(&g_fake.mu);
	int is_dir;
	struct fake_obj *o = (struct fake_obj *)fake_find(path, &is_dir);
	if (!o || !(o->hdrs = malloc(sizeof(*o->hdrs))))
		abort();
	ufs_hdrs_init(o->hdrs);
	ufs_hdrs_add(o->hdrs, "Content-Type", 12, ctype, strlen(ctype));
	ufs_hdrs_add(o->hdrs, "x-amz-meta-a", 12, meta, strlen(meta));
	pthread_mutex_unlock(&g_fake.mu);
}

static int
list_nothing(void *arg, const struct ufs_entry *e)
{
	return 0;
}

TEST(stored_headers)
{
	setup();
	fake_set_hdrs("obj", "text/plain", "one");
	struct cap c;
	cap_init(&c);
	/* A cold GET learns them with the stat it makes. */
	CHECK_EQ_INT(get("obj", &c), 0);
	CHECK_EQ_INT(c.hdrs_known, 1);
	CHECK_EQ_STR(c.ctype, "text/plain");
	CHECK_EQ_STR(c.meta, "one");
	struct ufs_stat st;
	fake_stat_of("obj", SIZE, 1, &st);
	CHECK(wait_cached("obj", &st, SIZE));
	/* A hit and a HEAD answer them from the cache, asking nothing. */
	zero_counts();
	CHECK_EQ_INT(get("obj", &c), 0);
	CHECK_EQ_STR(c.ctype, "text/plain");
	struct objget_req rq = req("obj");
	rq.head = 1;
	int started;
	cap_reset(&c);
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK_EQ_STR(c.meta, "one");
	CHECK_EQ_INT(ufs_asked(), 0);
	/* An entry a listing made does not know them: the GET asks once. */
	int trunc;
	CHECK_EQ_INT(meta_list(mc, mnt, "", NULL, "", 100, list_nothing, NULL,
	    &trunc), 0);
	fake_set_hdrs("obj2", "image/png", "two");
	zero_counts();
	CHECK_EQ_INT(get("obj2", &c), 0);
	CHECK_EQ_STR(c.ctype, "image/png");
	CHECK_EQ_INT(fake_count(&g_fake.stats) + fake_count(&g_fake.read_stats), 1);
	zero_counts();
	rq = req("obj2");
	rq.head = 1;
	cap_reset(&c);
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK_EQ_STR(c.meta, "two");
	CHECK_EQ_INT(ufs_asked(), 0);
	/* A new version without headers: none, known. */
	fake_put("obj", SIZE, 2);
	meta_invalidate(mc, mnt, "obj");
	CHECK_EQ_INT(get("obj", &c), 0);
	CHECK_EQ_INT(c.hdrs_known, 1);
	CHECK_EQ_STR(c.ctype, "");
	/* An object never given any: known, none. */
	CHECK_EQ_INT(get("obj3", &c), 0);
	CHECK_EQ_INT(c.hdrs_known, 1);
	CHECK_EQ_STR(c.ctype, "");
	cap_free(&c);
	teardown();
}

/* --- versions ------------------------------------------------------------ */

TEST(version_pin)
{
	setup();
	struct cap c;
	cap_init(&c);
	char e1[64], e2[64];
	snprintf(e1, sizeof(e1), "g1-%d", SIZE);
	snprintf(e2, sizeof(e2), "g2-%d", SIZE);
	/* The pin holds. */
	struct objget_req rq = req("obj");
	rq.pin = H(e1);
	int started = 0;
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK_EQ_INT(c.status, 200);
	CHECK(fake_bytes_ok("obj", 1, 0, c.buf, c.len));
	struct ufs_stat v1;
	fake_stat_of("obj", SIZE, 1, &v1);
	CHECK(wait_cached("obj", &v1, SIZE));

	/* The object changed in the UFS within the sync interval, and the
	 * client knows the new version: our metadata is refreshed once and
	 * the new version served. */
	fake_put("obj", SIZE, 2);
	zero_counts();
	rq.pin = H(e2);
	cap_reset(&c);
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK_EQ_INT(c.status, 200);
	CHECK_EQ_STR(c.etag, e2);
	CHECK_EQ_INT((int64_t)c.len, SIZE);
	CHECK(fake_bytes_ok("obj", 2, 0, c.buf, c.len));
	CHECK_EQ_INT(fake_count(&g_fake.stats) + fake_count(&g_fake.read_stats), 1);
	/* And the old version's pages went (on_change). */
	CHECK_EQ_INT(changes, 1);
	CHECK_EQ_INT(reader_cached_bytes(rd, mnt, "obj", &v1), 0);

	/* A pin that is neither ours nor the UFS's: -ESTALE, nothing sent. */
	zero_counts();
	rq.pin = H("g9-1");
	cap_reset(&c);
	started = 1;
	CHECK_EQ_INT(serve(&rq, &c, &started), -ESTALE);
	CHECK_EQ_INT(started, 0);
	CHECK_EQ_INT(c.heads, 0);
	CHECK_EQ_INT(fake_count(&g_fake.stats) + fake_count(&g_fake.read_stats), 1);
	/* The old version's pin, too. */
	rq.pin = H(e1);
	CHECK_EQ_INT(serve(&rq, &c, &started), -ESTALE);
	CHECK_EQ_INT(started, 0);
	cap_free(&c);
	teardown();
}

/* The object changed in the UFS after its metadata was cached, with part
 * of it cached: the read finds out before sending a byte, objget
 * invalidates and starts over once, and the client gets the new version
 * whole; the old version's pages are dropped. */
TEST(changed_between_stat_and_read)
{
	setup();
	struct cap c;
	cap_init(&c);
	struct objget_req rq = req("obj");
	rq.range = H("bytes=0-99");
	int started;
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	struct ufs_stat v1, v2;
	fake_stat_of("obj", SIZE, 1, &v1);
	fake_stat_of("obj", SIZE, 2, &v2);
	CHECK(reader_has_page(rd, mnt, "obj", &v1, 0));
	fake_put("obj", SIZE, 2);
	cap_reset(&c);
	CHECK_EQ_INT(get("obj", &c), 0);
	CHECK_EQ_INT(c.heads, 1);
	CHECK_EQ_INT(c.status, 200);
	CHECK_EQ_STR(c.etag, v2.etag);
	CHECK_EQ_INT((int64_t)c.len, SIZE);
	CHECK(fake_bytes_ok("obj", 2, 0, c.buf, c.len));
	/* The old version's pages went, through on_change. */
	CHECK_EQ_INT(changes, 1);
	CHECK(change_obj == objkey_id(MOUNT_IDENT, "obj"));
	CHECK(change_keep == objkey_version(&v2));
	CHECK(!reader_has_page(rd, mnt, "obj", &v1, 0));
	CHECK_EQ_INT(reader_cached_bytes(rd, mnt, "obj", &v1), 0);

	/* Metadata cached, no page: the same. */
	struct ufs_stat st;
	int64_t cached;
	CHECK_EQ_INT(objget_stat(og, mnt, "obj2", &st, &cached), 0);
	CHECK_EQ_INT(cached, 0);
	fake_put("obj2", SIZE - 5, 2);
	cap_reset(&c);
	CHECK_EQ_INT(get("obj2", &c), 0);
	CHECK_EQ_INT(c.status, 200);
	CHECK_EQ_INT((int64_t)c.len, SIZE - 5);
	CHECK(fake_bytes_ok("obj2", 2, 0, c.buf, c.len));
	CHECK_EQ_INT(changes, 2);

	cap_free(&c);
	teardown();
}

/* A sink whose head fails (the client went away): the error comes back,
 * and nothing is sent after it. */
TEST(sink_head_failure)
{
	setup();
	struct cap c;
	cap_init(&c);
	c.head_fail = -EPIPE;
	struct objget_req rq = req("obj");
	int started = 0;
	CHECK_EQ_INT(serve(&rq, &c, &started), -EPIPE);
	CHECK_EQ_INT(started, 1);
	CHECK_EQ_INT(c.heads, 1);
	CHECK_EQ_INT(c.body_calls, 0);
	rq.head = 1;
	started = 0;
	CHECK_EQ_INT(serve(&rq, &c, &started), -EPIPE);
	CHECK_EQ_INT(started, 1);
	rq = req("obj");
	rq.if_none_match = H("*");
	CHECK_EQ_INT(serve(&rq, &c, &started), -EPIPE);
	cap_free(&c);
	teardown();
}

/* --- objget_stat and objget_pages ---------------------------------------- */

TEST(stat_cached_bytes)
{
	setup();
	struct ufs_stat st;
	int64_t cached = -1;
	CHECK_EQ_INT(objget_stat(og, mnt, "obj", &st, &cached), 0);
	CHECK_EQ_INT(st.size, SIZE);
	CHECK_EQ_INT(cached, 0);
	struct cap c;
	cap_init(&c);
	struct objget_req rq = req("obj");
	rq.range = H("bytes=70000-70099"); /* page 1 */
	int started;
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK(wait_cached("obj", &st, PAGE));
	CHECK_EQ_INT(objget_stat(og, mnt, "obj", &st, &cached), 0);
	CHECK_EQ_INT(cached, PAGE);
	CHECK_EQ_INT(get("obj", &c), 0);
	CHECK(wait_cached("obj", &st, SIZE));
	CHECK_EQ_INT(objget_stat(og, mnt, "obj", &st, &cached), 0);
	CHECK_EQ_INT(cached, SIZE);
	CHECK_EQ_INT(objget_stat(og, mnt, "dir", &st, &cached), 0);
	CHECK(st.is_dir);
	CHECK_EQ_INT(cached, 0);
	CHECK_EQ_INT(objget_stat(og, mnt, "nothing", &st, &cached), -ENOENT);
	cap_free(&c);
	teardown();
}

TEST(pages)
{
	setup();
	char e1[64];
	snprintf(e1, sizeof(e1), "g1-%d", SIZE);
	struct page_ref refs[8];
	int n = -1;
	CHECK_EQ_INT(objget_pages(og, mnt, "obj", e1, 10, 2 * PAGE, refs, 8, &n),
	    OBJGET_MISS);
	CHECK_EQ_INT(n, 0);
	struct cap c;
	cap_init(&c);
	CHECK_EQ_INT(get("obj", &c), 0);
	struct ufs_stat st;
	fake_stat_of("obj", SIZE, 1, &st);
	CHECK(wait_cached("obj", &st, SIZE));
	zero_counts();
	CHECK_EQ_INT(objget_pages(og, mnt, "obj", e1, 10, 2 * PAGE, refs, 8, &n), 0);
	CHECK_EQ_INT(n, 3);
	int64_t total = 0;
	unsigned char *b = malloc(PAGE + PAGESTORE_CHUNK);
	for (int i = 0; i < n; i++) {
		const unsigned char *p = NULL;
		CHECK_EQ_INT(page_ref_read(&refs[i], refs[i].ra, refs[i].rn, b, PAGE + PAGESTORE_CHUNK, &p),
		    (ssize_t)refs[i].rn);
		CHECK(p && fake_bytes_ok("obj", 1, 10 + total, p, refs[i].rn));
		total += refs[i].rn;
		page_ref_release(&refs[i]);
	}
	CHECK_EQ_INT(total, 2 * PAGE);
	CHECK_EQ_INT(ufs_asked(), 0);
	/* Past the end: nothing. */
	CHECK_EQ_INT(objget_pages(og, mnt, "obj", e1, SIZE + 5, 10, refs, 8, &n), 0);
	CHECK_EQ_INT(n, 0);
	/* Another version, no object, a directory. */
	CHECK_EQ_INT(objget_pages(og, mnt, "obj", "g7-7", 0, 10, refs, 8, &n),
	    -ESTALE);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(objget_pages(og, mnt, "nothing", e1, 0, 10, refs, 8, &n),
	    -ENOENT);
	CHECK_EQ_INT(objget_pages(og, mnt, "dir", e1, 0, 10, refs, 8, &n),
	    -EISDIR);
	free(b);
	cap_free(&c);
	teardown();
}

/* --- restart ------------------------------------------------------------- */

/* After a restart the metadata is gone but the pages are on disk: a cold
 * GET confirms the version with a stat (moving no bytes) and serves the
 * pages from the cache. */
TEST(restart_serves_cached_pages)
{
	setup();
	struct cap c;
	cap_init(&c);
	CHECK_EQ_INT(get("obj", &c), 0);
	struct ufs_stat st;
	fake_stat_of("obj", SIZE, 1, &st);
	CHECK(wait_cached("obj", &st, SIZE));
	close_stack();
	open_stack(60000);
	zero_counts();
	CHECK_EQ_INT(get("obj", &c), 0);
	CHECK_EQ_INT(c.status, 200);
	CHECK_EQ_INT((int64_t)c.len, SIZE);
	CHECK(fake_bytes_ok("obj", 1, 0, c.buf, c.len));
	CHECK_EQ_INT(fake_count(&g_fake.stats), 1);
	CHECK_EQ_INT(fake_count(&g_fake.read_stats), 0);
	CHECK_EQ_INT(fake_count(&g_fake.reads), 0);
	/* A Range inside a later page: the same. */
	close_stack();
	open_stack(60000);
	zero_counts();
	struct objget_req rq = req("obj");
	rq.range = H("bytes=200000-200999");
	int started;
	cap_reset(&c);
	CHECK_EQ_INT(serve(&rq, &c, &started), 0);
	CHECK(fake_bytes_ok("obj", 1, 200000, c.buf, c.len));
	CHECK_EQ_INT(c.len, 1000);
	CHECK_EQ_INT(fake_count(&g_fake.stats), 1);
	CHECK_EQ_INT(fake_count(&g_fake.read_stats) + fake_count(&g_fake.reads), 0);
	cap_free(&c);
	teardown();
}

int
main(void)
{
	RUN(full_get);
	RUN(ranges);
	RUN(head_and_empty);
	RUN(conditional_headers);
	RUN(directory);
	RUN(cold_get_is_one_request);
	RUN(warm_get_asks_nothing);
	RUN(version_pin);
	RUN(changed_between_stat_and_read);
	RUN(sink_head_failure);
	RUN(stat_cached_bytes);
	RUN(pages);
	RUN(restart_serves_cached_pages);
	RUN(stored_headers);
	TAP_DONE();
}
