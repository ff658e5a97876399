/*
 * Unit tests for the router (router.c).  Without a cluster it is the
 * reader.  With one, a real etcd (etcd_harness.h) holds a two-member view
 * formed in-process: worker "A" (this test's router, over the fake
 * under-store) and worker "B", whose control API is a small HTTP server in
 * this test serving GET /v1/data from the fake objects (Range, ETag,
 * Content-Range, 412 on If-Match) and able to die mid-stream.  A block
 * placed on B must stream from B, with the version pinned and the hop
 * marked; a block placed on A is read here; a peer that breaks off, or
 * does not answer, leaves the client with whole bytes in order, read here;
 * a peer with another version is -ESTALE for objget to decide.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/etcd_harness.h"
#include "fake_ufs.h"
#include "tap.h"
#include "cluster/cluster.h"
#include "cluster/placement.h"
#include "http/http_range.h"
#include "http/http_server.h"
#include "worker/objkey.h"
#include "worker/reader.h"
#include "worker/router.h"

#define PAGE 65536
#define BLOCK (4 * PAGE)
#define NBLOCKS 4
#define SIZE (NBLOCKS * BLOCK - 1000)
#define MOUNT_IDENT 42

static char dir[64];
static struct pagestore *ps;
static struct reader *rd;
static struct mount *mnt;

/* --- the sink ------------------------------------------------------------ */

struct capture {
	unsigned char *buf;
	size_t len, cap;
};

static int
cap_mem(void *arg, const void *p, size_t n)
{
	struct capture *c = arg;
	if (c->len + n > c->cap)
		return -E2BIG;
	memcpy(c->buf + c->len, p, n);
	c->len += n;
	return 0;
}

static int
cap_file(void *arg, int fd, off_t off, size_t n)
{
	struct capture *c = arg;
	if (c->len + n > c->cap)
		return -E2BIG;
	if (pread(fd, c->buf + c->len, n, off) != (ssize_t)n)
		return -EIO;
	c->len += n;
	return 0;
}

/* --- the stack ----------------------------------------------------------- */

static void
open_reader(void)
{
	strcpy(dir, "/tmp/ferry-router-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	struct pagestore_dir_cfg d = {.path = dir, .capacity = 64 << 20};
	char *err = NULL;
	ps = pagestore_open(&d, 1, PAGE, PAGESTORE_VERIFY_ALWAYS, &err);
	struct reader_cfg rc = {.fetch_threads = 4, .window = 4,
	    .readahead_pages = 0, .max_inflight = 32, .block_size = BLOCK};
	rd = reader_open(&rc, ps);
	if (!ps || !rd)
		abort();
}

static void
close_reader(void)
{
	reader_close(&rd);
	pagestore_close(&ps);
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
local_reads(void)
{
	return fake_count(&g_fake.reads) + fake_count(&g_fake.read_stats);
}

static void
stat_of(const char *path, struct ufs_stat *st)
{
	if (ufs_stat(mnt->ufs, path, st) < 0)
		abort();
}

static int
rread(struct router *rt, const char *path, const struct ufs_stat *st,
    int64_t off, int64_t len, struct capture *c, int64_t *sent)
{
	struct read_sink s = {.file = cap_file, .mem = cap_mem, .arg = c};
	c->len = 0;
	*sent = -1;
	return router_read(rt, mnt, path, st, off, len, &s, sent, 0);
}

/* --- without a cluster --------------------------------------------------- */

TEST(no_cluster_is_the_reader)
{
	struct router *rt = router_open(NULL, "self", BLOCK, NULL, rd);
	CHECK(rt != NULL);
	CHECK_EQ_INT(router_block_size(rt), BLOCK);
	fake_put("solo", SIZE, 1);
	struct ufs_stat st;
	stat_of("solo", &st);
	struct capture c = {.buf = malloc(SIZE), .cap = SIZE};
	struct capture d = {.buf = malloc(SIZE), .cap = SIZE};
	int64_t sent, sent2;
	/* Across block boundaries: one read, the reader's bytes. */
	CHECK_EQ_INT(rread(rt, "solo", &st, 1000, SIZE - 2000, &c, &sent), 0);
	CHECK_EQ_INT(sent, SIZE - 2000);
	CHECK(fake_bytes_ok("solo", 1, 1000, c.buf, c.len));
	struct read_sink s = {.file = cap_file, .mem = cap_mem, .arg = &d};
	CHECK_EQ_INT(reader_read(rd, mnt, "solo", &st, 1000, SIZE - 2000, &s, &sent2), 0);
	CHECK_EQ_INT(sent2, sent);
	CHECK(c.len == d.len && memcmp(c.buf, d.buf, c.len) == 0);
	for (int64_t off = 0; off < SIZE; off += BLOCK / 2)
		CHECK(router_is_local(rt, mnt, "solo", off));
	/* A changed object (not cached): -ESTALE, as the reader says it. */
	fake_put("solo2", SIZE, 1);
	struct ufs_stat old;
	stat_of("solo2", &old);
	fake_put("solo2", SIZE, 2);
	CHECK_EQ_INT(rread(rt, "solo2", &old, 0, SIZE, &c, &sent), -ESTALE);
	CHECK_EQ_INT(sent, 0);
	CHECK_EQ_INT(c.len, 0);
	struct router_stats rs;
	router_get_stats(rt, &rs);
	CHECK_EQ_INT(rs.forwarded, 0);
	free(c.buf);
	free(d.buf);
	router_close(&rt);
	CHECK(rt == NULL);
}

/* --- worker B: a peer's control API -------------------------------------- */

struct peer {
	pthread_mutex_t mu;
	int requests;
	int hop_missing;
	int bad_request;
	int answered_412;
	int64_t die_after; /* >= 0: break off after this many body bytes */
	char last_path[256];
};

static struct peer peer = {.mu = PTHREAD_MUTEX_INITIALIZER, .die_after = -1};
static struct http_server *peer_srv;

static int
peer_get(int *field)
{
	pthread_mutex_lock(&peer.mu);
	int v = *field;
	pthread_mutex_unlock(&peer.mu);
	return v;
}

static void
peer_handler(struct http_conn *c, const struct http_request *req, void *arg)
{
	pthread_mutex_lock(&peer.mu);
	peer.requests++;
	int64_t die_after = peer.die_after;
	size_t hl;
	if (!http_header_get(req, "X-Ferry-Hop", &hl))
		peer.hop_missing++;
	pthread_mutex_unlock(&peer.mu);

	const char *q;
	size_t ql;
	char path[512];
	if (req->path_len != 8 || memcmp(req->path, "/v1/data", 8) != 0 ||
	    !http_query_get(req->query, req->query_len, "path", &q, &ql) ||
	    ql >= sizeof(path) || url_decode(q, ql, path, 1) < 0 ||
	    strncmp(path, "/fake/", 6) != 0) {
		pthread_mutex_lock(&peer.mu);
		peer.bad_request++;
		pthread_mutex_unlock(&peer.mu);
		http_resp_simple(c, 400, NULL, "text/plain", "bad\n", 4);
		return;
	}
	const char *key = path + 6;
	pthread_mutex_lock(&peer.mu);
	snprintf(peer.last_path, sizeof(peer.last_path), "%s", key);
	pthread_mutex_unlock(&peer.mu);

	/* The object, as the under-store has it now (not counted: the
	 * fake's counters are worker A's). */
	pthread_mutex_lock(&g_fake.mu);
	int is_dir;
	const struct fake_obj *o = fake_find(key, &is_dir);
	struct fake_obj obj;
	if (o)
		obj = *o;
	pthread_mutex_unlock(&g_fake.mu);
	if (!o) {
		http_resp_simple(c, 404, NULL, "text/plain", "none\n", 5);
		return;
	}
	char etag[64];
	fake_etag_of(&obj, etag, sizeof(etag));
	const char *im = http_header_get(req, "If-Match", &hl);
	if (im) {
		const char *v = im;
		size_t vl = hl;
		if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
			v++;
			vl -= 2;
		}
		if (vl != strlen(etag) || memcmp(v, etag, vl) != 0) {
			pthread_mutex_lock(&peer.mu);
			peer.answered_412++;
			pthread_mutex_unlock(&peer.mu);
			http_resp_simple(c, 412, NULL, "text/plain", "moved\n", 6);
			return;
		}
	}
	size_t rl;
	const char *range = http_header_get(req, "Range", &rl);
	int64_t a = 0, b = obj.size - 1;
	int pr = http_parse_range(range, range ? rl : 0, obj.size, &a, &b);
	if (pr < 0) {
		http_resp_simple(c, 416, NULL, "text/plain", "range\n", 6);
		return;
	}
	char hdr[512];
	int n = snprintf(hdr, sizeof(hdr), "ETag: \"%s\"\r\n", etag);
	if (pr == 1)
		snprintf(hdr + n, sizeof(hdr) - (size_t)n,
		    "Content-Range: bytes %lld-%lld/%lld\r\n", (long long)a,
		    (long long)b, (long long)obj.size);
	int64_t len = b - a + 1;
	if (http_resp_start(c, pr == 1 ? 206 : 200, hdr, len) < 0)
		return;
	unsigned char *buf = malloc(16384);
	int64_t sent = 0;
	while (sent < len) {
		int64_t k = len - sent < 16384 ? len - sent : 16384;
		if (die_after >= 0 && sent + k > die_after)
			k = die_after - sent;
		for (int64_t i = 0; i < k; i++)
			buf[i] = fake_byte(obj.path, a + sent + i, obj.gen);
		if (k > 0 && http_resp_body(c, buf, (size_t)k) < 0)
			break;
		sent += k;
		if (die_after >= 0 && sent >= die_after) {
			/* Breaks off: the server closes an unfinished body. */
			http_conn_set_close(c);
			free(buf);
			return;
		}
	}
	free(buf);
	http_resp_end(c);
}

/* --- the cluster --------------------------------------------------------- */

static struct etcd_proc ep;
static struct member ma, mb;
static struct cluster *clA, *clB;

static void
mk_member(struct member *m, char fill, int ctl_port)
{
	memset(m, 0, sizeof(*m));
	memset(m->id, fill, CLUSTER_ID_MAX);
	snprintf(m->ctl, sizeof(m->ctl), "127.0.0.1:%d", ctl_port);
	snprintf(m->s3, sizeof(m->s3), "127.0.0.1:%d", free_port());
	m->capacity = 1 << 30;
	m->started = 1700000000;
}

static struct cluster *
open_cluster(const struct member *self)
{
	struct cluster_cfg cfg = {.etcd = ep.url, .name = "rt",
	    .lease_ttl_s = 3, .self = self};
	char *err = NULL;
	struct cluster *c = cluster_open(&cfg, &err);
	if (!c)
		fprintf(stderr, "  cluster_open: %s\n", err ? err : "?");
	free(err);
	return c;
}

static int
view_n(struct cluster *c)
{
	struct cluster_view *v = cluster_view_get(c);
	int n = v->n;
	cluster_view_release(&v);
	return n;
}

static int
cluster_up(void)
{
	struct http_server_cfg hc = {.host = "127.0.0.1", .port = 0,
	    .name = "peer-b"};
	char *err = NULL;
	peer_srv = http_server_start(&hc, peer_handler, NULL, &err);
	if (!peer_srv) {
		fprintf(stderr, "peer server: %s\n", err ? err : "?");
		free(err);
		return -1;
	}
	if (etcd_proc_start(&ep) != 0)
		return -1;
	mk_member(&ma, 'a', free_port()); /* nobody calls A */
	mk_member(&mb, 'b', http_server_port(peer_srv));
	clA = open_cluster(&ma);
	clB = open_cluster(&mb);
	if (!clA || !clB)
		return -1;
	if (!WAIT_UNTIL(view_n(clA) == 2, 5000)) {
		fprintf(stderr, "cluster view of A never had 2 members\n");
		return -1;
	}
	return 0;
}

static void
cluster_down(void)
{
	cluster_close(&clA);
	cluster_close(&clB);
	if (peer_srv)
		http_server_stop(&peer_srv);
	etcd_procs_cleanup();
}

/* The member (view index) that holds block b of path first. */
static int
owner_of(const char *path, int64_t b)
{
	struct cluster_view *v = cluster_view_get(clA);
	int order[4];
	int n = placement_order(v, placement_key(mnt->name, path, b), order, 4);
	int who = n > 0 ? order[0] : -1;
	int idx = who >= 0 ? (strcmp(v->m[who].id, ma.id) == 0 ? 0 : 1) : -1;
	cluster_view_release(&v);
	return idx; /* 0: A, 1: B */
}

/* A path whose blocks are placed as want (a string of 'A'/'B' per block,
 * '.' for any), put in the fake store; NULL if none of 2000 tried is. */
static const char *
path_placed(const char *prefix, const char *want, char *out, size_t n)
{
	for (int i = 0; i < 2000; i++) {
		snprintf(out, n, "%s%d", prefix, i);
		int ok = 1;
		for (int b = 0; want[b] && ok; b++)
			if (want[b] != '.')
				ok = owner_of(out, b) == (want[b] == 'A' ? 0 : 1);
		if (ok) {
			fake_put(out, SIZE, 1);
			return out;
		}
	}
	return NULL;
}

static struct router *
router_a(void)
{
	struct router *rt = router_open(clA, ma.id, BLOCK, NULL, rd);
	if (!rt)
		abort();
	return rt;
}

static void
peer_reset(int64_t die_after)
{
	pthread_mutex_lock(&peer.mu);
	peer.requests = peer.hop_missing = peer.bad_request = 0;
	peer.answered_412 = 0;
	peer.die_after = die_after;
	peer.last_path[0] = 0;
	pthread_mutex_unlock(&peer.mu);
}

TEST(block_on_peer_is_streamed_from_it)
{
	char pb[32];
	const char *p = path_placed("onb", "B", pb, sizeof(pb));
	CHECK(p != NULL);
	if (!p)
		return;
	struct router *rt = router_a();
	struct ufs_stat st;
	stat_of(p, &st);
	zero_counts();
	peer_reset(-1);
	CHECK(!router_is_local(rt, mnt, p, 0));
	struct capture c = {.buf = malloc(SIZE), .cap = SIZE};
	int64_t sent;
	/* A range inside block 0. */
	CHECK_EQ_INT(rread(rt, p, &st, 1000, BLOCK - 2000, &c, &sent), 0);
	CHECK_EQ_INT(sent, BLOCK - 2000);
	CHECK_EQ_INT((int64_t)c.len, BLOCK - 2000);
	CHECK(fake_bytes_ok(p, 1, 1000, c.buf, c.len));
	CHECK_EQ_INT(peer_get(&peer.requests), 1);
	CHECK_EQ_INT(peer_get(&peer.hop_missing), 0);
	CHECK_EQ_INT(peer_get(&peer.bad_request), 0);
	pthread_mutex_lock(&peer.mu);
	CHECK_EQ_STR(peer.last_path, p);
	pthread_mutex_unlock(&peer.mu);
	CHECK_EQ_INT(local_reads(), 0); /* this worker's reader not asked */
	CHECK_EQ_INT(reader_cached_bytes(rd, mnt, p, &st), 0);
	struct router_stats rs;
	router_get_stats(rt, &rs);
	CHECK_EQ_INT(rs.forwarded, 1);
	CHECK_EQ_INT(rs.forwarded_bytes, BLOCK - 2000);
	CHECK_EQ_INT(rs.local_blocks, 0);
	CHECK_EQ_INT(rs.peer_errors, 0);
	/* A peer's request (local_only) is served here, never forwarded. */
	struct read_sink s = {.file = cap_file, .mem = cap_mem, .arg = &c};
	c.len = 0;
	CHECK_EQ_INT(router_read(rt, mnt, p, &st, 0, 100, &s, &sent, 1), 0);
	CHECK(fake_bytes_ok(p, 1, 0, c.buf, c.len));
	CHECK_EQ_INT(c.len, 100);
	CHECK_EQ_INT(peer_get(&peer.requests), 1);
	CHECK(local_reads() > 0);
	free(c.buf);
	router_close(&rt);
}

TEST(block_on_self_is_read_here)
{
	char pa[32];
	const char *p = path_placed("ona", "A", pa, sizeof(pa));
	CHECK(p != NULL);
	if (!p)
		return;
	struct router *rt = router_a();
	struct ufs_stat st;
	stat_of(p, &st);
	zero_counts();
	peer_reset(-1);
	CHECK(router_is_local(rt, mnt, p, 0));
	struct capture c = {.buf = malloc(SIZE), .cap = SIZE};
	int64_t sent;
	CHECK_EQ_INT(rread(rt, p, &st, 0, BLOCK, &c, &sent), 0);
	CHECK_EQ_INT(sent, BLOCK);
	CHECK(fake_bytes_ok(p, 1, 0, c.buf, c.len));
	CHECK_EQ_INT(peer_get(&peer.requests), 0);
	CHECK_EQ_INT(local_reads(), BLOCK / PAGE);
	struct router_stats rs;
	router_get_stats(rt, &rs);
	CHECK_EQ_INT(rs.forwarded, 0);
	CHECK_EQ_INT(rs.local_blocks, 1);
	free(c.buf);
	router_close(&rt);
}

/* A read across blocks placed on both: each block from its holder, the
 * bytes whole and in order. */
TEST(mixed_blocks_in_order)
{
	char pm[32];
	const char *p = path_placed("mix", "ABBA", pm, sizeof(pm));
	if (!p)
		p = path_placed("mix", "BAAB", pm, sizeof(pm));
	CHECK(p != NULL);
	if (!p)
		return;
	int nb = 0;
	for (int b = 0; b < NBLOCKS; b++)
		nb += owner_of(p, b) == 1;
	struct router *rt = router_a();
	struct ufs_stat st;
	stat_of(p, &st);
	zero_counts();
	peer_reset(-1);
	struct capture c = {.buf = malloc(SIZE), .cap = SIZE};
	int64_t sent;
	CHECK_EQ_INT(rread(rt, p, &st, 10, SIZE - 20, &c, &sent), 0);
	CHECK_EQ_INT(sent, SIZE - 20);
	CHECK_EQ_INT((int64_t)c.len, SIZE - 20);
	CHECK(fake_bytes_ok(p, 1, 10, c.buf, c.len));
	CHECK_EQ_INT(peer_get(&peer.requests), nb);
	/* Only A's blocks were read from the under-store here. */
	for (int b = 0; b < NBLOCKS; b++)
		for (int pg = 0; pg < BLOCK / PAGE; pg++)
			CHECK_EQ_INT(g_fake.page_reads[b * (BLOCK / PAGE) + pg],
			    owner_of(p, b) == 0 ? 1 : 0);
	struct router_stats rs;
	router_get_stats(rt, &rs);
	CHECK_EQ_INT(rs.forwarded, nb);
	CHECK_EQ_INT(rs.peer_errors, 0);
	free(c.buf);
	router_close(&rt);
}

/* The peer breaks off mid-block: the rest of the block comes from the next
 * candidate (here, this worker), and the client's bytes are whole and in
 * order; the peer is then skipped for a while. */
TEST(peer_dies_mid_stream_fails_over)
{
	char pb[32];
	const char *p = path_placed("die", "BB", pb, sizeof(pb));
	CHECK(p != NULL);
	if (!p)
		return;
	struct router *rt = router_a();
	struct ufs_stat st;
	stat_of(p, &st);
	zero_counts();
	peer_reset(100000);
	struct capture c = {.buf = malloc(SIZE), .cap = SIZE};
	int64_t sent;
	int64_t t0 = h_now_ms();
	CHECK_EQ_INT(rread(rt, p, &st, 0, 2 * BLOCK, &c, &sent), 0);
	CHECK(h_now_ms() - t0 < 5000);
	CHECK_EQ_INT(sent, 2 * BLOCK);
	CHECK_EQ_INT((int64_t)c.len, 2 * BLOCK);
	CHECK(fake_bytes_ok(p, 1, 0, c.buf, c.len));
	/* One request to the peer: block 1 skipped it (suspect). */
	CHECK_EQ_INT(peer_get(&peer.requests), 1);
	/* What the peer did send was not read again here. */
	CHECK_EQ_INT(g_fake.page_reads[0], 0);
	CHECK(local_reads() > 0);
	struct router_stats rs;
	router_get_stats(rt, &rs);
	CHECK_EQ_INT(rs.peer_errors, 1);
	CHECK(rs.failovers >= 1);
	CHECK(rs.forwarded_bytes > 0 && rs.forwarded_bytes <= 100000);
	CHECK_EQ_INT(rs.local_blocks, 2);
	free(c.buf);
	router_close(&rt);
	peer_reset(-1);
}

/* The peer has another version: 412, which is -ESTALE here (objget
 * decides); the peer is not blamed for it. */
TEST(peer_412_is_estale)
{
	char pb[32];
	const char *p = path_placed("pin", "B", pb, sizeof(pb));
	CHECK(p != NULL);
	if (!p)
		return;
	struct router *rt = router_a();
	struct ufs_stat old;
	stat_of(p, &old);
	fake_put(p, SIZE, 2);
	zero_counts();
	peer_reset(-1);
	struct capture c = {.buf = malloc(SIZE), .cap = SIZE};
	int64_t sent;
	CHECK_EQ_INT(rread(rt, p, &old, 0, BLOCK, &c, &sent), -ESTALE);
	CHECK_EQ_INT(sent, 0);
	CHECK_EQ_INT(c.len, 0);
	CHECK_EQ_INT(peer_get(&peer.answered_412), 1);
	CHECK_EQ_INT(local_reads(), 0);
	struct router_stats rs;
	router_get_stats(rt, &rs);
	CHECK_EQ_INT(rs.peer_errors, 0);
	/* The new version: from the peer again (not suspect). */
	struct ufs_stat st;
	stat_of(p, &st);
	CHECK_EQ_INT(rread(rt, p, &st, 0, BLOCK, &c, &sent), 0);
	CHECK(fake_bytes_ok(p, 2, 0, c.buf, c.len));
	CHECK_EQ_INT(peer_get(&peer.requests), 2);
	CHECK_EQ_INT(local_reads(), 0);
	free(c.buf);
	router_close(&rt);
}

/* The peer's port is closed: the read is served here, and the peer is
 * skipped afterwards rather than asked at every read. */
TEST(dead_peer_skipped)
{
	char pb[32];
	const char *p = path_placed("dead", "B", pb, sizeof(pb));
	CHECK(p != NULL);
	if (!p)
		return;
	http_server_stop(&peer_srv); /* B's control port: closed */
	struct router *rt = router_a();
	struct ufs_stat st;
	stat_of(p, &st);
	zero_counts();
	struct capture c = {.buf = malloc(SIZE), .cap = SIZE};
	int64_t sent;
	int64_t t0 = h_now_ms();
	CHECK_EQ_INT(rread(rt, p, &st, 0, BLOCK, &c, &sent), 0);
	CHECK(h_now_ms() - t0 < 5000);
	CHECK_EQ_INT(sent, BLOCK);
	CHECK(fake_bytes_ok(p, 1, 0, c.buf, c.len));
	struct router_stats rs;
	router_get_stats(rt, &rs);
	CHECK_EQ_INT(rs.forwarded, 1);
	CHECK_EQ_INT(rs.peer_errors, 1);
	CHECK_EQ_INT(rs.local_blocks, 1);
	/* Again: B is not asked. */
	CHECK_EQ_INT(rread(rt, p, &st, BLOCK / 2, 100, &c, &sent), 0);
	CHECK(fake_bytes_ok(p, 1, BLOCK / 2, c.buf, c.len));
	router_get_stats(rt, &rs);
	CHECK_EQ_INT(rs.forwarded, 1);
	CHECK_EQ_INT(rs.peer_errors, 1);
	CHECK_EQ_INT(rs.local_blocks, 2);
	free(c.buf);
	router_close(&rt);
}

int
main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	fake_reset(PAGE);
	mnt = fake_mount("fake", MOUNT_IDENT);
	open_reader();
	RUN(no_cluster_is_the_reader);
	if (cluster_up() == 0) {
		RUN(block_on_peer_is_streamed_from_it);
		RUN(block_on_self_is_read_here);
		RUN(mixed_blocks_in_order);
		RUN(peer_dies_mid_stream_fails_over);
		RUN(peer_412_is_estale);
		RUN(dead_peer_skipped);
	} else {
		fprintf(stderr, "FAIL: cannot form the cluster\n");
		tap_failed++;
	}
	cluster_down();
	close_reader();
	mount_release(&mnt);
	curl_global_cleanup();
	TAP_DONE();
}
