/*
 * test_pagestore_datasets.c: the page store's datasets: pages named by
 * origin (group, path), pins that eviction never takes, per-group quotas
 * that evict the group's own pages only, TTLs ended by pagestore_expire,
 * drops by path prefix, and the catalog that keeps origins across a
 * restart (and survives a torn tail).  Uses temp dirs under /tmp.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "store/pagestore.h"
#include "tap.h"
#include "tmpdir.h"

#define HDR 68 /* 64 + one chunk CRC */
#define PSZ 1000
#define FSZ (HDR + PSZ)
#define GA 0xaaaa
#define GB 0xbbbb


static struct pagestore *
open1(const char *dir, int64_t cap)
{
	struct pagestore_dir_cfg cfg = {dir, cap};
	char *err = NULL;
	struct pagestore *ps = pagestore_open(&cfg, 1, PSZ, PAGESTORE_VERIFY_ALWAYS, &err);
	if (!ps)
		fprintf(stderr, "  open failed: %s\n", err ? err : "?");
	free(err);
	return ps;
}

/* Puts page idx of object (group, path) (obj: a hash of both). */
static uint64_t
obj_of(uint64_t group, const char *path)
{
	return hash64(path, strlen(path), group);
}

static int
put_named(struct pagestore *ps, uint64_t group, const char *path, uint64_t idx,
    int64_t quota)
{
	unsigned char buf[PSZ];
	memset(buf, (int)(idx + strlen(path)), sizeof(buf));
	struct page_key k = {obj_of(group, path), 1, idx};
	struct page_origin o = {group, path, quota};
	return pagestore_put_origin(ps, &k, buf, PSZ, &o, 0);
}

static int
has(struct pagestore *ps, uint64_t group, const char *path, uint64_t idx)
{
	struct page_key k = {obj_of(group, path), 1, idx};
	return pagestore_has(ps, &k);
}

static int
get(struct pagestore *ps, uint64_t group, const char *path, uint64_t idx)
{
	struct page_key k = {obj_of(group, path), 1, idx};
	struct page_ref ref;
	int r = pagestore_get(ps, &k, &ref);
	if (r == 0)
		page_ref_release(&ref);
	return r;
}

/* A classifier for the tests: pins "pinned/..." of GA, TTL 100 s on
 * "tmp/..." of any group, and whatever the flags below say. */
static int pin_all_b;
static void
classify(void *arg, uint64_t group, const char *path, int *pinned, uint32_t *ttl)
{
	(void)arg;
	*pinned = (group == GA && path_under(path, "pinned")) || (pin_all_b && group == GB);
	*ttl = path_under(path, "tmp") ? 100 : 0;
}

TEST(path_under_rules)
{
	CHECK(path_under("a/b", ""));
	CHECK(path_under("a/b", "a"));
	CHECK(path_under("a", "a"));
	CHECK(!path_under("ab", "a"));
	CHECK(path_under("a/b/c", "a/b/"));
	CHECK(!path_under("a/b", "a/b/"));
	CHECK(!path_under("a", "a/b"));
}

TEST(pinned_pages_are_never_evicted)
{
	char *dir = tmpdir_make("psdtest");
	struct pagestore *ps = open1(dir, 6 * FSZ);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	pagestore_set_classifier(ps, classify, NULL);
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(put_named(ps, GA, "pinned/x", (uint64_t)i, 0), 0);
	/* Another group fills the store many times over. */
	for (int i = 0; i < 30; i++)
		CHECK_EQ_INT(put_named(ps, GB, "big", (uint64_t)i, 0), 0);
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(get(ps, GA, "pinned/x", (uint64_t)i), 0);
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.pinned_bytes, 3 * FSZ);
	CHECK(st.used_bytes <= 6 * FSZ);
	/* A store full of pinned pages refuses more rather than evict them. */
	pin_all_b = 1;
	pagestore_reclassify(ps, GB, "");
	CHECK_EQ_INT(put_named(ps, GB, "big2", 0, 0), -ENOSPC);
	pin_all_b = 0;
	pagestore_reclassify(ps, GB, "");
	CHECK_EQ_INT(put_named(ps, GB, "big2", 0, 0), 0);
	/* Unpinned (the rule goes): evictable again. */
	pagestore_set_classifier(ps, NULL, NULL);
	pagestore_reclassify(ps, GA, "");
	for (int i = 0; i < 12; i++)
		CHECK_EQ_INT(put_named(ps, GB, "big3", (uint64_t)i, 0), 0);
	CHECK_EQ_INT(has(ps, GA, "pinned/x", 0), 0);
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.pinned_bytes, 0);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(quota_evicts_its_own_group_only)
{
	char *dir = tmpdir_make("psdtest");
	struct pagestore *ps = open1(dir, 20 * FSZ);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	for (int i = 0; i < 5; i++)
		CHECK_EQ_INT(put_named(ps, GB, "other", (uint64_t)i, 0), 0);
	for (int i = 0; i < 10; i++)
		CHECK_EQ_INT(put_named(ps, GA, "q", (uint64_t)i, 3 * FSZ), 0);
	struct pagestore_group_stats g[4];
	int n = pagestore_groups(ps, g, 4);
	CHECK_EQ_INT(n, 2);
	for (int i = 0; i < n; i++) {
		if (g[i].group == GA) {
			CHECK_EQ_INT(g[i].used, 3 * FSZ);
			CHECK_EQ_INT(g[i].quota, 3 * FSZ);
		} else {
			CHECK_EQ_INT(g[i].used, 5 * FSZ);
		}
	}
	/* The group's most recent pages stay; the other group is intact. */
	CHECK_EQ_INT(has(ps, GA, "q", 9), 1);
	CHECK_EQ_INT(has(ps, GA, "q", 0), 0);
	for (int i = 0; i < 5; i++)
		CHECK_EQ_INT(has(ps, GB, "other", (uint64_t)i), 1);
	/* A page bigger than the quota is not cached. */
	CHECK_EQ_INT(put_named(ps, GA, "q2", 0, FSZ - 1), -EDQUOT);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

static int
count_cb(void *arg, const struct pagestore_objinfo *o)
{
	(*(int64_t *)arg) += o->bytes;
	return 0;
}

TEST(drop_prefix_and_foreach)
{
	char *dir = tmpdir_make("psdtest");
	struct pagestore *ps = open1(dir, 40 * FSZ);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	pagestore_set_classifier(ps, classify, NULL);
	CHECK_EQ_INT(put_named(ps, GA, "d/a", 0, 0), 0);
	CHECK_EQ_INT(put_named(ps, GA, "d/a", 1, 0), 0);
	CHECK_EQ_INT(put_named(ps, GA, "d/b", 0, 0), 0);
	CHECK_EQ_INT(put_named(ps, GA, "dd/c", 0, 0), 0);
	CHECK_EQ_INT(put_named(ps, GA, "pinned/p", 0, 0), 0);
	CHECK_EQ_INT(put_named(ps, GB, "d/a", 0, 0), 0);
	int64_t sum = 0;
	pagestore_foreach_object(ps, GA, "d", count_cb, &sum);
	CHECK_EQ_INT(sum, 3 * PSZ);
	int64_t kept = -1;
	CHECK_EQ_INT(pagestore_drop_prefix(ps, GA, "d", 0, &kept), 3 * PSZ);
	CHECK_EQ_INT(kept, 0);
	CHECK_EQ_INT(has(ps, GA, "d/a", 1), 0);
	CHECK_EQ_INT(has(ps, GA, "dd/c", 0), 1); /* "d" is not a prefix of "dd" */
	CHECK_EQ_INT(has(ps, GB, "d/a", 0), 1);  /* another group */
	/* Pinned: kept unless forced. */
	CHECK_EQ_INT(pagestore_drop_prefix(ps, GA, "", 0, &kept), PSZ);
	CHECK_EQ_INT(kept, PSZ);
	CHECK_EQ_INT(has(ps, GA, "pinned/p", 0), 1);
	CHECK_EQ_INT(pagestore_drop_prefix(ps, GA, "", 1, &kept), PSZ);
	CHECK_EQ_INT(has(ps, GA, "pinned/p", 0), 0);
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.used_bytes, FSZ); /* GB's page */
	CHECK_EQ_INT(st.pinned_bytes, 0);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(ttl_expiry)
{
	char *dir = tmpdir_make("psdtest");
	struct pagestore *ps = open1(dir, 40 * FSZ);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	pagestore_set_classifier(ps, classify, NULL);
	CHECK_EQ_INT(put_named(ps, GA, "tmp/a", 0, 0), 0);
	CHECK_EQ_INT(put_named(ps, GA, "tmp/a", 1, 0), 0);
	CHECK_EQ_INT(put_named(ps, GA, "keep", 0, 0), 0);
	struct pagestore_objinfo oi;
	CHECK_EQ_INT(pagestore_object_info(ps, obj_of(GA, "tmp/a"), &oi), 0);
	CHECK(oi.expire >= oi.born + 100 && oi.expire <= oi.born + 101);
	uint32_t now = (uint32_t)wall_sec();
	CHECK_EQ_INT(pagestore_expire(ps, now), 0);
	CHECK_EQ_INT(has(ps, GA, "tmp/a", 0), 1);
	CHECK_EQ_INT(pagestore_expire(ps, oi.expire), 2 * PSZ);
	CHECK_EQ_INT(has(ps, GA, "tmp/a", 0), 0);
	CHECK_EQ_INT(has(ps, GA, "tmp/a", 1), 0);
	CHECK_EQ_INT(has(ps, GA, "keep", 0), 1);
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.ttl_freed_bytes_total, 2 * PSZ);
	/* Cached again later: a new life, a new TTL. */
	CHECK_EQ_INT(put_named(ps, GA, "tmp/a", 0, 0), 0);
	CHECK_EQ_INT(pagestore_object_info(ps, obj_of(GA, "tmp/a"), &oi), 0);
	CHECK(oi.expire >= now + 100);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(catalog_keeps_origins_across_restart)
{
	char *dir = tmpdir_make("psdtest");
	struct pagestore *ps = open1(dir, 40 * FSZ);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	CHECK_EQ_INT(put_named(ps, GA, "x/one", 0, 0), 0);
	CHECK_EQ_INT(put_named(ps, GA, "x/two", 0, 0), 0);
	CHECK_EQ_INT(put_named(ps, GA, "x/two", 1, 0), 0);
	CHECK_EQ_INT(put_named(ps, GB, "y", 0, 0), 0);
	struct pagestore_objinfo before;
	CHECK_EQ_INT(pagestore_object_info(ps, obj_of(GA, "x/two"), &before), 0);
	pagestore_close(&ps);

	/* A torn record at the end (a crash mid-append) is ignored. */
	char cat[512];
	snprintf(cat, sizeof(cat), "%s/pagestore.catalog", dir);
	int fd = open(cat, O_WRONLY | O_APPEND);
	CHECK(fd >= 0);
	CHECK(write(fd, "\x01\x02\x03\x04\x40\x00\x00\x00garbage", 15) == 15);
	close(fd);

	ps = open1(dir, 40 * FSZ);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	pagestore_set_classifier(ps, classify, NULL);
	struct pagestore_objinfo after;
	CHECK_EQ_INT(pagestore_object_info(ps, obj_of(GA, "x/two"), &after), 0);
	CHECK_EQ_INT(after.group, GA);
	CHECK_EQ_INT(after.born, before.born);
	CHECK_EQ_INT(after.bytes, 2 * PSZ);
	int64_t sum = 0;
	pagestore_foreach_object(ps, GA, "x", count_cb, &sum);
	CHECK_EQ_INT(sum, 3 * PSZ);
	CHECK_EQ_INT(pagestore_drop_prefix(ps, GA, "x/", 0, NULL), 3 * PSZ);
	CHECK_EQ_INT(has(ps, GB, "y", 0), 1);
	struct pagestore_group_stats g[4];
	CHECK_EQ_INT(pagestore_groups(ps, g, 4), 2);
	pagestore_close(&ps);

	/* Rewritten at open, the catalog holds only what still has pages. */
	ps = open1(dir, 40 * FSZ);
	CHECK(ps != NULL);
	pagestore_close(&ps);
	struct stat sb;
	CHECK(stat(cat, &sb) == 0);
	CHECK_EQ_INT(sb.st_size, 28 + 1);
out:
	tmpdir_remove(dir);
}

TEST(rekey_keeps_the_name)
{
	char *dir = tmpdir_make("psdtest");
	struct pagestore *ps = open1(dir, 40 * FSZ);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	pagestore_set_classifier(ps, classify, NULL);
	CHECK_EQ_INT(put_named(ps, GA, "pinned/w", 0, 0), 0);
	CHECK_EQ_INT(put_named(ps, GA, "pinned/w", 1, 0), 0);
	uint64_t obj = obj_of(GA, "pinned/w");
	CHECK_EQ_INT(pagestore_rekey(ps, obj, 1, 7), 2);
	struct pagestore_objinfo oi;
	CHECK_EQ_INT(pagestore_object_info(ps, obj, &oi), 0);
	CHECK_EQ_INT(oi.group, GA);
	CHECK_EQ_INT(oi.pinned, 1);
	CHECK_EQ_INT(oi.bytes, 2 * PSZ);
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.pinned_bytes, 2 * FSZ);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

int
main(void)
{
	log_level = LOG_LVL_ERROR;
	RUN(path_under_rules);
	RUN(pinned_pages_are_never_evicted);
	RUN(quota_evicts_its_own_group_only);
	RUN(drop_prefix_and_foreach);
	RUN(ttl_expiry);
	RUN(catalog_keeps_origins_across_restart);
	RUN(rekey_keeps_the_name);
	TAP_DONE();
}
