/*
 * Unit tests for the metadata cache (meta.c) over the fake under-store:
 * what a caller relies on is that an answer is reused within the sync
 * interval and asked again after it, that concurrent misses make one UFS
 * request, that "no such object" is cached, that a version that moved is
 * reported once (so its pages are dropped), that listings are cached and
 * answer stat for the files they show, that memory stays bounded, and that
 * an expired answer is served again while the under-store fails
 * (stale-if-error) but never when the store answered "no".
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_ufs.h"
#include "tap.h"
#include "worker/meta.h"
#include "worker/metrics.h"
#include "worker/objkey.h"

#define MOUNT_IDENT 42

/* What on_change saw. */
struct changes {
	pthread_mutex_t mu;
	int n;
	uint64_t obj, keep_ver; /* the last call's */
};

static struct changes chg = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void
on_change(void *arg, uint64_t obj, uint64_t keep_ver)
{
	struct changes *c = arg;
	pthread_mutex_lock(&c->mu);
	c->n++;
	c->obj = obj;
	c->keep_ver = keep_ver;
	pthread_mutex_unlock(&c->mu);
}

static int
changes_n(void)
{
	pthread_mutex_lock(&chg.mu);
	int n = chg.n;
	pthread_mutex_unlock(&chg.mu);
	return n;
}

static struct mount *mnt;
static struct meta_cache *mc;

static void
setup(int64_t sync_ms, int64_t stale_ms, int64_t max_entries,
    int64_t max_list_bytes)
{
	fake_reset(0);
	pthread_mutex_lock(&chg.mu);
	chg.n = 0;
	chg.obj = chg.keep_ver = 0;
	pthread_mutex_unlock(&chg.mu);
	mnt = fake_mount("fake", MOUNT_IDENT);
	struct meta_cfg cfg = {.sync_ms = sync_ms, .max_entries = max_entries,
	    .max_list_bytes = max_list_bytes, .stale_ms = stale_ms,
	    .on_change = on_change, .arg = &chg};
	mc = meta_open(&cfg);
	if (!mc)
		abort();
}

static void
teardown(void)
{
	meta_close(&mc);
	mount_release(&mnt);
}

static void
sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

/* The stat the fake answers for (path, size, gen). */
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

static int
same_stat(const struct ufs_stat *a, const struct ufs_stat *b)
{
	return a->size == b->size && a->mtime == b->mtime &&
	    a->is_dir == b->is_dir && strcmp(a->etag, b->etag) == 0;
}

static int
stats(void)
{
	return fake_count(&g_fake.stats);
}

static int
lists(void)
{
	return fake_count(&g_fake.lists);
}

/* --- stat ---------------------------------------------------------------- */

TEST(hit_within_sync_interval)
{
	setup(60000, 0, 1000, 1 << 20);
	fake_put("a", 100, 1);
	struct ufs_stat st, want;
	fake_stat_of("a", 100, 1, &want);
	int64_t hits0 = METRIC_GET(meta_hits);
	CHECK_EQ_INT(meta_stat(mc, mnt, "a", &st), 0);
	CHECK(same_stat(&st, &want));
	for (int i = 0; i < 5; i++) {
		memset(&st, 0, sizeof(st));
		CHECK_EQ_INT(meta_stat(mc, mnt, "a", &st), 0);
		CHECK(same_stat(&st, &want));
	}
	CHECK_EQ_INT(stats(), 1);
	CHECK_EQ_INT(METRIC_GET(meta_hits) - hits0, 5);
	/* Directories are answers too. */
	fake_put("d/x", 1, 1);
	CHECK_EQ_INT(meta_stat(mc, mnt, "d", &st), 0);
	CHECK(st.is_dir);
	CHECK_EQ_INT(meta_stat(mc, mnt, "d", &st), 0);
	CHECK(st.is_dir);
	CHECK_EQ_INT(stats(), 2);
	teardown();
}

TEST(refresh_after_expiry)
{
	setup(50, 0, 1000, 1 << 20);
	fake_put("a", 100, 1);
	struct ufs_stat st;
	CHECK_EQ_INT(meta_stat(mc, mnt, "a", &st), 0);
	CHECK_EQ_INT(stats(), 1);
	sleep_ms(120);
	/* Changed meanwhile: the refresh sees the new version. */
	fake_put("a", 200, 2);
	CHECK_EQ_INT(meta_stat(mc, mnt, "a", &st), 0);
	CHECK_EQ_INT(stats(), 2);
	CHECK_EQ_INT(st.size, 200);
	CHECK_EQ_INT(st.mtime, 1002);
	teardown();
}

struct stat_thr {
	int r;
	struct ufs_stat st;
};

static void *
stat_thread(void *arg)
{
	struct stat_thr *t = arg;
	t->r = meta_stat(mc, mnt, "slow", &t->st);
	return NULL;
}

TEST(concurrent_misses_one_ufs_stat)
{
	setup(60000, 0, 1000, 1 << 20);
	fake_put("slow", 777, 3);
	g_fake.delay_us = 200000; /* the loader is slow: the others pile up */
	enum { N = 8 };
	pthread_t th[N];
	struct stat_thr t[N];
	for (int i = 0; i < N; i++)
		pthread_create(&th[i], NULL, stat_thread, &t[i]);
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	struct ufs_stat want;
	fake_stat_of("slow", 777, 3, &want);
	for (int i = 0; i < N; i++) {
		CHECK_EQ_INT(t[i].r, 0);
		CHECK(same_stat(&t[i].st, &want));
	}
	CHECK_EQ_INT(stats(), 1);
	teardown();
}

TEST(negative_caching)
{
	setup(60000, 0, 1000, 1 << 20);
	struct ufs_stat st;
	CHECK_EQ_INT(meta_stat(mc, mnt, "missing", &st), -ENOENT);
	CHECK_EQ_INT(meta_stat(mc, mnt, "missing", &st), -ENOENT);
	CHECK_EQ_INT(stats(), 1);
	/* Created in the UFS within the sync interval: still cached as
	 * missing, until invalidated. */
	fake_put("missing", 5, 1);
	CHECK_EQ_INT(meta_stat(mc, mnt, "missing", &st), -ENOENT);
	CHECK_EQ_INT(stats(), 1);
	meta_invalidate(mc, mnt, "missing");
	CHECK_EQ_INT(meta_stat(mc, mnt, "missing", &st), 0);
	CHECK_EQ_INT(st.size, 5);
	CHECK_EQ_INT(stats(), 2);
	teardown();
}

/* A read's -ENOENT says "no object", not "no directory": only callers that
 * treat a directory as missing anyway (nokey_ok) may take it. */
TEST(nokey_entry_is_hit_only_for_nokey_callers)
{
	setup(60000, 0, 1000, 1 << 20);
	fake_put("dir/file", 10, 1);
	struct ufs_stat st;
	struct meta_load ld;
	CHECK_EQ_INT(meta_stat_begin(mc, mnt, "dir", 1, &st, NULL, &ld), META_LOAD);
	CHECK(ld.ent != NULL);
	CHECK_EQ_INT(ld.has_prev, 0);
	/* The caller's one-request read said "no such key". */
	CHECK_EQ_INT(meta_stat_end(mc, mnt, "dir", &ld, -ENOENT, NULL, NULL, 1, &st, NULL),
	    -ENOENT);
	/* A nokey_ok caller: a hit. */
	CHECK_EQ_INT(meta_stat_begin(mc, mnt, "dir", 1, &st, NULL, &ld), -ENOENT);
	CHECK_EQ_INT(stats(), 0);
	/* Anyone else: a miss, and the UFS says it is a directory. */
	CHECK_EQ_INT(meta_stat(mc, mnt, "dir", &st), 0);
	CHECK(st.is_dir);
	CHECK_EQ_INT(stats(), 1);
	/* Now a full answer, a hit for both kinds. */
	memset(&st, 0, sizeof(st));
	CHECK_EQ_INT(meta_stat_begin(mc, mnt, "dir", 1, &st, NULL, &ld), 0);
	CHECK(st.is_dir);
	CHECK_EQ_INT(meta_stat_begin(mc, mnt, "dir", 0, &st, NULL, &ld), 0);
	CHECK(st.is_dir);
	CHECK_EQ_INT(stats(), 1);

	/* A -ENOENT without nokey is a full answer: a hit for everyone. */
	CHECK_EQ_INT(meta_stat_begin(mc, mnt, "gone", 0, &st, NULL, &ld), META_LOAD);
	CHECK_EQ_INT(meta_stat_end(mc, mnt, "gone", &ld, -ENOENT, NULL, NULL, 0, &st, NULL),
	    -ENOENT);
	CHECK_EQ_INT(meta_stat(mc, mnt, "gone", &st), -ENOENT);
	CHECK_EQ_INT(stats(), 1);

	/* The loader's answer is what it returns, and what the cache keeps;
	 * an expired file entry hands its old answer to the next loader. */
	struct ufs_stat fresh;
	fake_stat_of("f", 3, 1, &fresh);
	CHECK_EQ_INT(meta_stat_begin(mc, mnt, "f", 0, &st, NULL, &ld), META_LOAD);
	memset(&st, 0, sizeof(st));
	CHECK_EQ_INT(meta_stat_end(mc, mnt, "f", &ld, 0, &fresh, NULL, 0, &st, NULL), 0);
	CHECK(same_stat(&st, &fresh));
	memset(&st, 0, sizeof(st));
	CHECK_EQ_INT(meta_stat(mc, mnt, "f", &st), 0);
	CHECK(same_stat(&st, &fresh));
	CHECK_EQ_INT(stats(), 1);
	teardown();
}

TEST(expired_entry_hands_prev_to_loader)
{
	setup(50, 0, 1000, 1 << 20);
	fake_put("f", 3, 1);
	struct ufs_stat st, want;
	fake_stat_of("f", 3, 1, &want);
	CHECK_EQ_INT(meta_stat(mc, mnt, "f", &st), 0);
	sleep_ms(120);
	struct meta_load ld;
	CHECK_EQ_INT(meta_stat_begin(mc, mnt, "f", 0, &st, NULL, &ld), META_LOAD);
	CHECK_EQ_INT(ld.has_prev, 1);
	CHECK(same_stat(&ld.prev, &want));
	CHECK_EQ_INT(meta_stat_end(mc, mnt, "f", &ld, 0, &want, NULL, 0, &st, NULL), 0);
	CHECK_EQ_INT(changes_n(), 0); /* same version: nothing to drop */
	teardown();
}

TEST(version_move_calls_on_change_once)
{
	setup(50, 0, 1000, 1 << 20);
	fake_put("v", 100, 1);
	struct ufs_stat st;
	CHECK_EQ_INT(meta_stat(mc, mnt, "v", &st), 0);
	CHECK_EQ_INT(changes_n(), 0);
	fake_put("v", 100, 2);
	sleep_ms(120);
	CHECK_EQ_INT(meta_stat(mc, mnt, "v", &st), 0);
	CHECK_EQ_INT(st.mtime, 1002);
	CHECK_EQ_INT(changes_n(), 1);
	struct ufs_stat v2;
	fake_stat_of("v", 100, 2, &v2);
	CHECK(chg.obj == objkey_id(MOUNT_IDENT, "v"));
	CHECK(chg.keep_ver == objkey_version(&v2));
	/* Within the interval, and refreshed at the same version: no more. */
	CHECK_EQ_INT(meta_stat(mc, mnt, "v", &st), 0);
	sleep_ms(120);
	CHECK_EQ_INT(meta_stat(mc, mnt, "v", &st), 0);
	CHECK_EQ_INT(changes_n(), 1);
	/* Gone: every version is stale (keep_ver 0). */
	fake_del("v");
	sleep_ms(120);
	CHECK_EQ_INT(meta_stat(mc, mnt, "v", &st), -ENOENT);
	CHECK_EQ_INT(changes_n(), 2);
	CHECK(chg.obj == objkey_id(MOUNT_IDENT, "v"));
	CHECK(chg.keep_ver == 0);
	teardown();
}

TEST(invalidate_forces_refresh)
{
	setup(60000, 0, 1000, 1 << 20);
	fake_put("a", 100, 1);
	struct ufs_stat st;
	CHECK_EQ_INT(meta_stat(mc, mnt, "a", &st), 0);
	fake_put("a", 150, 2);
	CHECK_EQ_INT(meta_stat(mc, mnt, "a", &st), 0);
	CHECK_EQ_INT(st.size, 100); /* cached */
	meta_invalidate(mc, mnt, "a");
	CHECK_EQ_INT(meta_stat(mc, mnt, "a", &st), 0);
	CHECK_EQ_INT(st.size, 150);
	CHECK_EQ_INT(stats(), 2);
	/* Invalidating what is not cached is harmless. */
	meta_invalidate(mc, mnt, "never");
	teardown();
}

/* The version the cache knew is not forgotten by an invalidation: the
 * refresh that follows still reports that it moved, so the pages of the
 * old version are dropped (objget invalidates when a read finds the
 * object changed, then asks again). */
TEST(invalidate_then_refresh_reports_change)
{
	setup(60000, 60000, 1000, 1 << 20);
	fake_put("a", 100, 1);
	struct ufs_stat st;
	CHECK_EQ_INT(meta_stat(mc, mnt, "a", &st), 0);
	fake_put("a", 100, 2);
	meta_invalidate(mc, mnt, "a");
	CHECK_EQ_INT(meta_stat(mc, mnt, "a", &st), 0);
	CHECK_EQ_INT(st.mtime, 1002);
	CHECK_EQ_INT(changes_n(), 1);
	struct ufs_stat v2;
	fake_stat_of("a", 100, 2, &v2);
	CHECK(chg.obj == objkey_id(MOUNT_IDENT, "a"));
	CHECK(chg.keep_ver == objkey_version(&v2));
	/* An invalidated answer is known wrong: never served stale, even
	 * with stale_ms allowing it. */
	meta_invalidate(mc, mnt, "a");
	g_fake.fail = -EIO;
	CHECK_EQ_INT(meta_stat(mc, mnt, "a", &st), -EIO);
	g_fake.fail = 0;
	CHECK_EQ_INT(meta_stat(mc, mnt, "a", &st), 0);
	CHECK_EQ_INT(st.mtime, 1002);
	teardown();
}

/* --- bounds -------------------------------------------------------------- */

TEST(max_entries_lru)
{
	enum { MAX = 16, N = 40 };
	setup(60000, 0, MAX, 1 << 20);
	char p[N][16];
	for (int i = 0; i < N; i++) {
		snprintf(p[i], sizeof(p[i]), "k%02d", i);
		fake_put(p[i], i + 1, 1);
	}
	struct ufs_stat st;
	/* Fill the cache, then use k00 again: it is the most recent, k01
	 * the least. */
	for (int i = 0; i < MAX; i++)
		CHECK_EQ_INT(meta_stat(mc, mnt, p[i], &st), 0);
	CHECK_EQ_INT(meta_stat(mc, mnt, p[0], &st), 0);
	CHECK_EQ_INT(stats(), MAX);
	CHECK_EQ_INT(meta_stat(mc, mnt, p[MAX], &st), 0); /* evicts k01 */
	CHECK_EQ_INT(stats(), MAX + 1);
	CHECK_EQ_INT(meta_stat(mc, mnt, p[0], &st), 0);
	CHECK_EQ_INT(stats(), MAX + 1); /* k00 survived */
	CHECK_EQ_INT(meta_stat(mc, mnt, p[1], &st), 0);
	CHECK_EQ_INT(stats(), MAX + 2); /* k01 did not */

	/* Many more: the cache holds MAX entries at most, the most recent.
	 * Probing the most recent first keeps them (hits only move them up),
	 * and every miss after that evicts one of them. */
	for (int i = 0; i < N; i++)
		CHECK_EQ_INT(meta_stat(mc, mnt, p[i], &st), 0);
	int before = stats();
	int hits = 0;
	for (int i = N - 1; i >= 0; i--) {
		int s0 = stats();
		CHECK_EQ_INT(meta_stat(mc, mnt, p[i], &st), 0);
		CHECK_EQ_INT(st.size, i + 1);
		if (stats() == s0) {
			hits++;
			CHECK(i >= N - MAX); /* only the most recent survive */
		}
	}
	CHECK_EQ_INT(hits, MAX);
	CHECK_EQ_INT(stats() - before, N - MAX);
	teardown();
}

/* --- listings ------------------------------------------------------------ */

struct listing {
	char keys[4096];
	int n;
};

static int
list_cb(void *arg, const struct ufs_entry *e)
{
	struct listing *l = arg;
	size_t len = strlen(l->keys);
	snprintf(l->keys + len, sizeof(l->keys) - len, "%s%s%s;", e->key,
	    e->is_dir ? "(d)" : "", e->etag && e->etag[0] ? "+" : "");
	l->n++;
	return 0;
}

static int
list(const char *prefix, int max_keys, struct listing *l, int *trunc)
{
	memset(l, 0, sizeof(*l));
	return meta_list(mc, mnt, prefix, "/", "", max_keys, list_cb, l, trunc);
}

TEST(listing_cache_hit_and_expiry)
{
	setup(50, 0, 1000, 1 << 20);
	fake_put("d/a", 10, 1);
	fake_put("d/b", 20, 1);
	fake_put("d/sub/c", 30, 1);
	fake_put("e", 1, 1);
	struct listing l;
	int trunc = -1;
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), 0);
	CHECK_EQ_STR(l.keys, "d/a+;d/b+;d/sub/(d);");
	CHECK_EQ_INT(trunc, 0);
	CHECK_EQ_INT(lists(), 1);
	trunc = -1;
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), 0);
	CHECK_EQ_STR(l.keys, "d/a+;d/b+;d/sub/(d);");
	CHECK_EQ_INT(trunc, 0);
	CHECK_EQ_INT(lists(), 1);
	/* Other arguments are another page. */
	CHECK_EQ_INT(list("d/", 1, &l, &trunc), 0);
	CHECK_EQ_STR(l.keys, "d/a+;");
	CHECK_EQ_INT(trunc, 1);
	CHECK_EQ_INT(lists(), 2);
	CHECK_EQ_INT(list("d/", 1, &l, &trunc), 0);
	CHECK_EQ_INT(trunc, 1);
	CHECK_EQ_INT(lists(), 2);
	/* Expired: asked again, and the new answer is served. */
	fake_put("d/b2", 5, 1);
	sleep_ms(120);
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), 0);
	CHECK_EQ_STR(l.keys, "d/a+;d/b+;d/b2+;d/sub/(d);");
	CHECK_EQ_INT(lists(), 3);
	teardown();
}

TEST(listing_seeds_stat_entries)
{
	setup(60000, 0, 1000, 1 << 20);
	fake_put("d/a", 10, 1);
	fake_put("d/b", 20, 4);
	struct listing l;
	int trunc;
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), 0);
	struct ufs_stat st, want;
	CHECK_EQ_INT(meta_stat(mc, mnt, "d/a", &st), 0);
	fake_stat_of("d/a", 10, 1, &want);
	CHECK(same_stat(&st, &want));
	CHECK_EQ_INT(meta_stat(mc, mnt, "d/b", &st), 0);
	fake_stat_of("d/b", 20, 4, &want);
	CHECK(same_stat(&st, &want));
	CHECK_EQ_INT(stats(), 0); /* the listing answered */
	CHECK_EQ_INT(changes_n(), 0);
	teardown();
}

TEST(listing_reports_changed_version)
{
	setup(60000, 0, 1000, 1 << 20);
	fake_put("d/a", 10, 1);
	fake_put("d/b", 20, 1);
	struct ufs_stat st;
	CHECK_EQ_INT(meta_stat(mc, mnt, "d/a", &st), 0);
	CHECK_EQ_INT(meta_stat(mc, mnt, "d/b", &st), 0);
	fake_put("d/a", 10, 2); /* only a moved */
	struct listing l;
	int trunc;
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), 0);
	CHECK_EQ_INT(changes_n(), 1);
	struct ufs_stat v2;
	fake_stat_of("d/a", 10, 2, &v2);
	CHECK(chg.obj == objkey_id(MOUNT_IDENT, "d/a"));
	CHECK(chg.keep_ver == objkey_version(&v2));
	/* And the stat cache has the new version, without asking. */
	CHECK_EQ_INT(meta_stat(mc, mnt, "d/a", &st), 0);
	CHECK(same_stat(&st, &v2));
	CHECK_EQ_INT(stats(), 2);
	/* The cached listing replayed: no second report. */
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), 0);
	CHECK_EQ_INT(changes_n(), 1);
	teardown();
}

TEST(max_list_bytes_bound)
{
	char p[12][16];
	for (int i = 0; i < 12; i++)
		snprintf(p[i], sizeof(p[i]), "p%02d/", i);
	/* A budget smaller than one page: nothing is kept. */
	setup(60000, 0, 1000, 100);
	for (int i = 0; i < 12; i++) {
		char k[32];
		snprintf(k, sizeof(k), "%sx", p[i]);
		fake_put(k, 1, 1);
	}
	struct listing l;
	int trunc;
	CHECK_EQ_INT(list(p[0], 1000, &l, &trunc), 0);
	CHECK_EQ_STR(l.keys, "p00/x+;");
	CHECK_EQ_INT(list(p[0], 1000, &l, &trunc), 0);
	CHECK_EQ_STR(l.keys, "p00/x+;");
	CHECK_EQ_INT(lists(), 2);
	teardown();

	/* A budget of a few pages: twelve listings do not all fit; the most
	 * recent ones are kept, the oldest are gone. */
	setup(60000, 0, 1000, 8000);
	for (int i = 0; i < 12; i++) {
		char k[32];
		snprintf(k, sizeof(k), "%sx", p[i]);
		fake_put(k, 1, 1);
	}
	for (int i = 0; i < 12; i++)
		CHECK_EQ_INT(list(p[i], 1000, &l, &trunc), 0);
	CHECK_EQ_INT(lists(), 12);
	CHECK_EQ_INT(list(p[11], 1000, &l, &trunc), 0);
	CHECK_EQ_STR(l.keys, "p11/x+;");
	CHECK_EQ_INT(lists(), 12); /* the latest is cached */
	int kept = 0;
	for (int i = 11; i >= 0; i--) {
		int l0 = lists();
		CHECK_EQ_INT(list(p[i], 1000, &l, &trunc), 0);
		kept += lists() == l0;
	}
	CHECK(kept >= 1);
	CHECK(kept < 12);
	CHECK_EQ_INT(list(p[0], 1000, &l, &trunc), 0);
	teardown();
}

/* --- stale-if-error ------------------------------------------------------ */

TEST(stale_if_error_stat)
{
	setup(50, 1500, 1000, 1 << 20);
	fake_put("s", 64, 1);
	struct ufs_stat st, want;
	fake_stat_of("s", 64, 1, &want);
	int64_t t0 = now_ms();
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), 0);
	sleep_ms(100);
	int64_t stale0 = METRIC_GET(meta_stale);
	int errs[] = {-EIO, -ETIMEDOUT};
	for (int k = 0; k < 2; k++) {
		g_fake.fail = errs[k];
		memset(&st, 0, sizeof(st));
		int s0 = stats();
		CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), 0);
		CHECK(same_stat(&st, &want));
		CHECK_EQ_INT(stats(), s0 + 1); /* it did ask */
		CHECK_EQ_INT(METRIC_GET(meta_stale) - stale0, k + 1);
		sleep_ms(100); /* past the retry time (sync_ms here) */
	}
	CHECK(__atomic_load_n(&mnt->ufs_down, __ATOMIC_RELAXED) == 1);
	/* Past stale_ms: the error comes back. */
	int64_t left = t0 + 50 + 1500 + 100 - now_ms();
	if (left > 0)
		sleep_ms((int)left);
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), -ETIMEDOUT);
	/* The store answers again. */
	g_fake.fail = 0;
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), 0);
	CHECK(same_stat(&st, &want));
	CHECK(__atomic_load_n(&mnt->ufs_down, __ATOMIC_RELAXED) == 0);
	teardown();
}

TEST(stale_if_error_retry_pacing)
{
	setup(1000, 60000, 1000, 1 << 20);
	fake_put("s", 64, 1);
	struct ufs_stat st, want;
	fake_stat_of("s", 64, 1, &want);
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), 0);
	sleep_ms(1100);
	g_fake.fail = -EIO;
	int64_t stale0 = METRIC_GET(meta_stale);
	int64_t t = now_ms();
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), 0);
	CHECK(same_stat(&st, &want));
	CHECK_EQ_INT(stats(), 2);
	/* The failing store is not asked at every request. */
	for (int i = 0; i < 10; i++) {
		CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), 0);
		CHECK(same_stat(&st, &want));
	}
	if (now_ms() - t < 900)
		CHECK_EQ_INT(stats(), 2);
	CHECK_EQ_INT(METRIC_GET(meta_stale) - stale0, 1);
	/* But again after a second or so. */
	sleep_ms(1100);
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), 0);
	CHECK(same_stat(&st, &want));
	CHECK_EQ_INT(stats(), 3);
	CHECK_EQ_INT(METRIC_GET(meta_stale) - stale0, 2);
	teardown();
}

TEST(stale_ms_zero_returns_error)
{
	setup(50, 0, 1000, 1 << 20);
	fake_put("s", 64, 1);
	struct ufs_stat st;
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), 0);
	sleep_ms(100);
	g_fake.fail = -EIO;
	int64_t stale0 = METRIC_GET(meta_stale);
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), -EIO);
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), -EIO);
	CHECK_EQ_INT(METRIC_GET(meta_stale) - stale0, 0);
	/* A miss with nothing cached fails too, and is not cached. */
	CHECK_EQ_INT(meta_stat(mc, mnt, "other", &st), -EIO);
	g_fake.fail = 0;
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), 0);
	CHECK_EQ_INT(meta_stat(mc, mnt, "other", &st), -ENOENT);
	teardown();
}

TEST(answers_are_never_served_stale)
{
	setup(50, 60000, 1000, 1 << 20);
	fake_put("s", 64, 1);
	struct ufs_stat st;
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), 0);
	sleep_ms(100);
	int64_t stale0 = METRIC_GET(meta_stale);
	g_fake.fail = -EACCES;
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), -EACCES);
	g_fake.fail = -ENOENT;
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), -ENOENT);
	CHECK_EQ_INT(METRIC_GET(meta_stale) - stale0, 0);
	/* "No such object" is an answer: cached, and the old version's
	 * pages go. */
	CHECK_EQ_INT(changes_n(), 1);
	CHECK(chg.keep_ver == 0);
	g_fake.fail = 0;
	int s0 = stats();
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), -ENOENT);
	CHECK_EQ_INT(stats(), s0);
	/* A cached -ENOENT is not served stale either once expired: the
	 * outage's error comes back. */
	sleep_ms(100);
	g_fake.fail = -EIO;
	CHECK_EQ_INT(meta_stat(mc, mnt, "s", &st), -EIO);
	teardown();
}

TEST(stale_if_error_list)
{
	setup(50, 60000, 1000, 1 << 20);
	fake_put("d/a", 10, 1);
	fake_put("d/b", 20, 1);
	struct listing l;
	int trunc;
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), 0);
	CHECK_EQ_STR(l.keys, "d/a+;d/b+;");
	sleep_ms(100);
	int64_t stale0 = METRIC_GET(meta_stale);
	g_fake.fail = -EIO;
	trunc = -1;
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), 0);
	CHECK_EQ_STR(l.keys, "d/a+;d/b+;");
	CHECK_EQ_INT(trunc, 0);
	CHECK_EQ_INT(lists(), 2);
	CHECK_EQ_INT(METRIC_GET(meta_stale) - stale0, 1);
	g_fake.fail = -ETIMEDOUT;
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), 0);
	CHECK_EQ_STR(l.keys, "d/a+;d/b+;");
	CHECK_EQ_INT(METRIC_GET(meta_stale) - stale0, 2);
	/* Denied is an answer. */
	g_fake.fail = -EACCES;
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), -EACCES);
	/* Nothing cached to fall back on. */
	g_fake.fail = -EIO;
	CHECK_EQ_INT(list("e/", 1000, &l, &trunc), -EIO);
	g_fake.fail = 0;
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), 0);
	teardown();

	setup(50, 0, 1000, 1 << 20);
	fake_put("d/a", 10, 1);
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), 0);
	sleep_ms(100);
	g_fake.fail = -EIO;
	stale0 = METRIC_GET(meta_stale);
	CHECK_EQ_INT(list("d/", 1000, &l, &trunc), -EIO);
	CHECK_EQ_INT(METRIC_GET(meta_stale) - stale0, 0);
	teardown();
}

/* --- the headers kept with answers --------------------------------------- */

/* A header block of one x-amz-meta-v with a value of n bytes of c. */
static void
hdrs_of(struct ufs_hdrs *h, size_t n, char c)
{
	char v[1024];
	memset(v, c, n);
	ufs_hdrs_init(h);
	ufs_hdrs_add(h, "x-amz-meta-v", 12, v, n);
}

TEST(headers_kept_within_their_budget)
{
	setup(60000, 0, 1000, 1 << 20);
	meta_close(&mc);
	struct meta_cfg cfg = {.sync_ms = 60000, .max_entries = 1000,
	    .max_list_bytes = 1 << 20, .max_hdrs_bytes = 2000,
	    .on_change = on_change, .arg = &chg};
	mc = meta_open(&cfg);
	static struct ufs_hdrs h, got;
	struct ufs_stat st;
	struct meta_load ld;
	const char *p[] = {"h0", "h1", "h2", "h3"};
	for (int i = 0; i < 4; i++) {
		fake_put(p[i], 10, 1);
		fake_stat_of(p[i], 10, 1, &st);
		hdrs_of(&h, 600, (char)('a' + i)); /* ~615 bytes each */
		meta_wrote(mc, mnt, p[i], &st, &h);
	}
	/* The newest three fit in 2000 bytes; the oldest forgot its own and
	 * is loaded again when they are wanted (a plain stat is still a hit). */
	CHECK_EQ_INT(meta_stat_begin(mc, mnt, "h0", 0, &st, NULL, &ld), 0);
	CHECK_EQ_INT(meta_stat_begin(mc, mnt, "h0", 0, &st, &got, &ld), META_LOAD);
	/* (the store fails: the answer it had, headers not known) */
	CHECK_EQ_INT(meta_stat_end(mc, mnt, "h0", &ld, -EIO, NULL, NULL, 0, &st,
	    &got), 0);
	CHECK_EQ_INT(got.known, 0);
	for (int i = 1; i < 4; i++) {
		CHECK_EQ_INT(meta_stat_begin(mc, mnt, p[i], 0, &st, &got, &ld), 0);
		CHECK_EQ_INT(got.known, 1);
		CHECK_EQ_INT(got.n, 1);
		CHECK_EQ_INT(ufs_hdrs_get(&got, "x-amz-meta-v")[0], 'a' + i);
	}
	/* Written with none known: a hit for a plain stat, a load for headers. */
	fake_stat_of("h1", 10, 1, &st);
	meta_wrote(mc, mnt, "h1", &st, NULL);
	CHECK_EQ_INT(meta_stat_begin(mc, mnt, "h1", 0, &st, &got, &ld), META_LOAD);
	fake_stat_of("h1", 10, 1, &st);
	hdrs_of(&h, 5, 'z');
	CHECK_EQ_INT(meta_stat_end(mc, mnt, "h1", &ld, 0, &st, &h, 0, &st, &got), 0);
	CHECK_EQ_INT(ufs_hdrs_get(&got, "x-amz-meta-v")[0], 'z');
	CHECK_EQ_INT(meta_stat_begin(mc, mnt, "h1", 0, &st, &got, &ld), 0);
	CHECK_EQ_INT(ufs_hdrs_get(&got, "x-amz-meta-v")[0], 'z');
	/* A new version drops the old version's headers. */
	fake_stat_of("h2", 11, 2, &st);
	meta_wrote(mc, mnt, "h2", &st, NULL);
	CHECK_EQ_INT(meta_stat_begin(mc, mnt, "h2", 0, &st, &got, &ld), META_LOAD);
	/* (the store fails: the answer it had, headers not known) */
	CHECK_EQ_INT(meta_stat_end(mc, mnt, "h2", &ld, -EIO, NULL, NULL, 0, &st,
	    &got), 0);
	CHECK_EQ_INT(got.known, 0);
	teardown();
}

int
main(void)
{
	RUN(hit_within_sync_interval);
	RUN(refresh_after_expiry);
	RUN(concurrent_misses_one_ufs_stat);
	RUN(negative_caching);
	RUN(nokey_entry_is_hit_only_for_nokey_callers);
	RUN(expired_entry_hands_prev_to_loader);
	RUN(version_move_calls_on_change_once);
	RUN(invalidate_forces_refresh);
	RUN(invalidate_then_refresh_reports_change);
	RUN(max_entries_lru);
	RUN(listing_cache_hit_and_expiry);
	RUN(listing_seeds_stat_entries);
	RUN(listing_reports_changed_version);
	RUN(max_list_bytes_bound);
	RUN(stale_if_error_stat);
	RUN(stale_if_error_retry_pacing);
	RUN(stale_ms_zero_returns_error);
	RUN(answers_are_never_served_stale);
	RUN(stale_if_error_list);
	RUN(headers_kept_within_their_budget);
	TAP_DONE();
}
