/*
 * test_pagestore.c: the on-disk page cache: round trips, keys, LRU eviction,
 * capacity per dir, restart (index from listings only, lazy CRC checks),
 * corruption and truncation, stray/temp files, write errors, open errors,
 * and 8 threads hammering overlapping keys.  Uses temp dirs under /tmp.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "store/pagestore.h"
#include "tap.h"
#include "tmpdir.h"

/* The header: 64 bytes and one chunk CRC (every page size here is at most
 * one chunk, PAGESTORE_CHUNK). */
#define HDR 68

/* ---- helpers ------------------------------------------------------------ */


/* Deterministic page contents for a key. */
static void
fill(unsigned char *buf, uint32_t len, const struct page_key *k)
{
	uint64_t x = k->obj * 0x9e3779b97f4a7c15ULL ^ k->ver * 0xbf58476d1ce4e5b9ULL ^
	    (k->idx + 1) * 0x94d049bb133111ebULL;
	for (uint32_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
}

static int
put_key(struct pagestore *ps, const struct page_key *k, uint32_t len)
{
	unsigned char *buf = malloc(len ? len : 1);
	fill(buf, len, k);
	int rc = pagestore_put(ps, k, buf, len);
	free(buf);
	return rc;
}

/* 1 if get hits and the bytes at ref.fd/ref.off are what put_key stored
 * (and pass their chunk checks); 0 on a miss or a failed check; -1 on a
 * hit with wrong bytes or length. */
static int
get_matches(struct pagestore *ps, const struct page_key *k, uint32_t len)
{
	struct page_ref ref;
	int rc = pagestore_get(ps, k, &ref);
	if (rc == -ENOENT)
		return 0;
	if (rc != 0)
		return -1;
	int ok = ref.len == len && ref.off == HDR;
	unsigned char *want = malloc(len + 1), *got = malloc(len + 1);
	fill(want, len, k);
	if (ok && len) {
		int vr = page_ref_verify(&ref, 0, len);
		if (vr == -EBADMSG) {
			free(want);
			free(got);
			page_ref_release(&ref);
			return 0;
		}
		ok = vr == 0 && pread(ref.fd, got, len, ref.off) == (ssize_t)len &&
		    memcmp(want, got, len) == 0;
	}
	free(want);
	free(got);
	page_ref_release(&ref);
	return ok ? 1 : -1;
}

static void
page_path(char *out, size_t n, const char *dir, const struct page_key *k)
{
	snprintf(out, n, "%s/%02x/%016" PRIx64 "-%016" PRIx64 "-%016" PRIx64 ".pg2",
	    dir, (unsigned)(k->obj >> 56), k->obj, k->ver, k->idx);
}

static int
file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

/* Sums what is on disk under dir: page files and temp files. */
static int64_t disk_bytes, disk_pages, disk_tmps;

static int
du_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)f;
	if (flag != FTW_F)
		return 0;
	size_t n = strlen(p);
	if (strstr(p, ".tmp."))
		disk_tmps++;
	else if (n > 4 && strcmp(p + n - 4, ".pg2") == 0) {
		disk_pages++;
		disk_bytes += st->st_size;
	}
	return 0;
}

static void
disk_usage(const char *dir)
{
	disk_bytes = disk_pages = disk_tmps = 0;
	nftw(dir, du_cb, 16, FTW_PHYS);
}

static struct pagestore *
open1(const char *dir, int64_t cap, uint32_t page_size, enum pagestore_verify v)
{
	struct pagestore_dir_cfg cfg = {dir, cap};
	char *err = NULL;
	struct pagestore *ps = pagestore_open(&cfg, 1, page_size, v, &err);
	if (!ps)
		fprintf(stderr, "  open failed: %s\n", err ? err : "?");
	free(err);
	return ps;
}

static void
corrupt_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char c = 0;
	CHECK(fd >= 0);
	CHECK(pread(fd, &c, 1, off) == 1);
	c ^= 0x5a;
	CHECK(pwrite(fd, &c, 1, off) == 1);
	close(fd);
}

/* ---- tests ---------------------------------------------------------------- */

TEST(round_trip)
{
	char *dir = tmpdir_make("pstest");
	struct pagestore *ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	CHECK_EQ_INT(pagestore_page_size(ps), 4096);
	struct page_key a = {0x1111, 7, 0}, b = {0x1111, 7, 1}, c = {0xab00000000000001ULL, 9, 3};
	CHECK_EQ_INT(put_key(ps, &a, 4096), 0);
	CHECK_EQ_INT(put_key(ps, &b, 100), 0);
	CHECK_EQ_INT(put_key(ps, &c, 0), 0);
	CHECK_EQ_INT(get_matches(ps, &a, 4096), 1);
	CHECK_EQ_INT(get_matches(ps, &b, 100), 1);
	CHECK_EQ_INT(get_matches(ps, &c, 0), 1);
	CHECK_EQ_INT(pagestore_has(ps, &a), 1);

	struct page_key miss = {0x1111, 7, 2};
	struct page_ref ref = {.fd = 123};
	CHECK_EQ_INT(pagestore_get(ps, &miss, &ref), -ENOENT);
	CHECK_EQ_INT(ref.fd, -1);
	CHECK_EQ_INT(pagestore_has(ps, &miss), 0);

	/* too long for a page */
	unsigned char *big = calloc(1, 4097);
	CHECK_EQ_INT(pagestore_put(ps, &miss, big, 4097), -EINVAL);
	free(big);

	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.pages, 3);
	CHECK_EQ_INT(st.used_bytes, 3 * HDR + 4096 + 100);
	CHECK_EQ_INT(st.capacity_bytes, 1 << 20);
	/* putting again is a no-op */
	CHECK_EQ_INT(put_key(ps, &a, 4096), 0);
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.used_bytes, 3 * HDR + 4096 + 100);

	/* the file is where the header says, header + data */
	char p[512];
	page_path(p, sizeof(p), dir, &c);
	struct stat sb;
	CHECK(stat(p, &sb) == 0 && sb.st_size == HDR);
	disk_usage(dir);
	CHECK_EQ_INT(disk_bytes, st.used_bytes);
	CHECK_EQ_INT(disk_tmps, 0);
	pagestore_close(&ps);
	CHECK(ps == NULL);
out:
	tmpdir_remove(dir);
}

/* Cached bytes of private buckets are private: page files 0600 in 0700
 * dirs, and a cache dir others could enter is closed at open. */
TEST(pages_private_to_the_owner)
{
	char *dir = tmpdir_make("pstest");
	CHECK(chmod(dir, 0755) == 0);
	struct pagestore *ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct stat sb;
	CHECK(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700);
	struct page_key a = {0x2222, 7, 0};
	CHECK_EQ_INT(put_key(ps, &a, 4096), 0);
	char p[512];
	page_path(p, sizeof(p), dir, &a);
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	*strrchr(p, '/') = 0; /* its subdir */
	CHECK(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0700);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

/* The bytes of page `at` are those put_key stored for key `as`. */
static int
get_bytes_of(struct pagestore *ps, const struct page_key *at,
    const struct page_key *as, uint32_t len)
{
	struct page_ref ref;
	if (pagestore_get(ps, at, &ref) != 0)
		return 0;
	unsigned char *want = malloc(len + 1), *got = malloc(len + 1);
	fill(want, len, as);
	int ok = ref.len == len && (len == 0 ||
	    (pread(ref.fd, got, len, ref.off) == (ssize_t)len && memcmp(want, got, len) == 0));
	free(want);
	free(got);
	page_ref_release(&ref);
	return ok;
}

/* A write caches its pages under a version of its own until the store
 * names the new one: rekey moves them, checked (CRC, header) and found
 * again after a restart; drop_version drops one version only. */
TEST(rekey_and_drop_version)
{
	char *dir = tmpdir_make("pstest");
	struct pagestore *ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	uint64_t obj = 0x5555, tmpv = 0xdead, newv = 0xbeef, other = 0x77;
	struct page_key t[3], n[3];
	for (int i = 0; i < 3; i++) {
		t[i] = (struct page_key){obj, tmpv, (uint64_t)i};
		n[i] = (struct page_key){obj, newv, (uint64_t)i};
		CHECK_EQ_INT(put_key(ps, &t[i], i == 2 ? 100 : 4096), 0);
	}
	struct page_key o = {obj, other, 0};
	CHECK_EQ_INT(put_key(ps, &o, 4096), 0);
	/* The new version's page 1 is there already (a fetch of it). */
	CHECK_EQ_INT(put_key(ps, &n[1], 4096), 0);
	struct pagestore_stats st0;
	pagestore_get_stats(ps, &st0);
	CHECK_EQ_INT(pagestore_rekey(ps, obj, tmpv, newv), 2);
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(pagestore_has(ps, &t[i]), 0);
	CHECK(get_bytes_of(ps, &n[0], &t[0], 4096));
	CHECK(get_bytes_of(ps, &n[1], &n[1], 4096)); /* the one that was there */
	CHECK(get_bytes_of(ps, &n[2], &t[2], 100));
	struct pagestore_stats st1;
	pagestore_get_stats(ps, &st1);
	CHECK_EQ_INT(st1.pages, 4);
	CHECK_EQ_INT(st1.used_bytes, st0.used_bytes - (HDR + 4096));
	CHECK_EQ_INT(pagestore_cached_bytes(ps, obj, newv), 4096 * 2 + 100);
	disk_usage(dir);
	CHECK_EQ_INT(disk_pages, 4);
	CHECK_EQ_INT(disk_bytes, st1.used_bytes);
	/* After a restart the pages are the new version's. */
	pagestore_close(&ps);
	ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	CHECK(get_bytes_of(ps, &n[0], &t[0], 4096));
	CHECK(get_bytes_of(ps, &n[2], &t[2], 100));
	/* drop_version: that version only. */
	CHECK_EQ_INT(pagestore_drop_version(ps, obj, newv), 3);
	CHECK_EQ_INT(pagestore_has(ps, &n[0]), 0);
	CHECK_EQ_INT(get_matches(ps, &o, 4096), 1);
	CHECK_EQ_INT(pagestore_rekey(ps, obj, tmpv, newv), 0); /* nothing left */
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(versions_and_drop)
{
	char *dir = tmpdir_make("pstest");
	struct pagestore *ps = open1(dir, 1 << 20, 1000, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct page_key v1 = {1, 101, 0}, v1b = {1, 101, 1}, v2 = {1, 202, 0},
			v3 = {1, 303, 0}, o2 = {2, 101, 0};
	CHECK_EQ_INT(put_key(ps, &v1, 1000), 0);
	CHECK_EQ_INT(put_key(ps, &v1b, 300), 0);
	CHECK_EQ_INT(put_key(ps, &v2, 1000), 0);
	CHECK_EQ_INT(put_key(ps, &v3, 500), 0);
	CHECK_EQ_INT(put_key(ps, &o2, 700), 0);
	/* same obj/idx, different ver: separate pages with their own bytes */
	CHECK_EQ_INT(get_matches(ps, &v1, 1000), 1);
	CHECK_EQ_INT(get_matches(ps, &v2, 1000), 1);
	CHECK_EQ_INT(pagestore_cached_bytes(ps, 1, 101), 1300);
	CHECK_EQ_INT(pagestore_cached_bytes(ps, 1, 202), 1000);
	CHECK_EQ_INT(pagestore_cached_bytes(ps, 1, 303), 500);
	CHECK_EQ_INT(pagestore_cached_bytes(ps, 2, 101), 700);
	CHECK_EQ_INT(pagestore_cached_bytes(ps, 3, 101), 0);

	CHECK_EQ_INT(pagestore_drop_object(ps, 1, 202), 3);
	CHECK_EQ_INT(pagestore_has(ps, &v1), 0);
	CHECK_EQ_INT(pagestore_has(ps, &v1b), 0);
	CHECK_EQ_INT(pagestore_has(ps, &v3), 0);
	CHECK_EQ_INT(get_matches(ps, &v2, 1000), 1);
	CHECK_EQ_INT(get_matches(ps, &o2, 700), 1);
	CHECK_EQ_INT(pagestore_cached_bytes(ps, 1, 101), 0);
	char p[512];
	page_path(p, sizeof(p), dir, &v1);
	CHECK(!file_exists(p));
	page_path(p, sizeof(p), dir, &v2);
	CHECK(file_exists(p));

	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.pages, 2);
	CHECK_EQ_INT(st.used_bytes, 2 * HDR + 1700);
	CHECK_EQ_INT(st.evicted_pages_total, 0);

	CHECK_EQ_INT(pagestore_drop_object(ps, 1, 0), 1);
	CHECK_EQ_INT(pagestore_drop_object(ps, 1, 0), 0);
	CHECK_EQ_INT(pagestore_has(ps, &v2), 0);
	CHECK_EQ_INT(get_matches(ps, &o2, 700), 1);
	/* a dropped key can be put again */
	CHECK_EQ_INT(put_key(ps, &v1, 1000), 0);
	CHECK_EQ_INT(get_matches(ps, &v1, 1000), 1);
	disk_usage(dir);
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(disk_pages, 2);
	CHECK_EQ_INT(disk_bytes, st.used_bytes);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(lru_eviction)
{
	char *dir = tmpdir_make("pstest");
	const int64_t fsz = HDR + 1000;
	struct pagestore *ps = open1(dir, 5 * fsz, 1000, PAGESTORE_VERIFY_ONCE);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct page_key k[8];
	for (int i = 0; i < 8; i++)
		k[i] = (struct page_key){0x42, 1, (uint64_t)i};
	for (int i = 0; i < 5; i++)
		CHECK_EQ_INT(put_key(ps, &k[i], 1000), 0);
	/* k0 is the oldest put, but a get makes it the most recently used */
	CHECK_EQ_INT(get_matches(ps, &k[0], 1000), 1);
	CHECK_EQ_INT(put_key(ps, &k[5], 1000), 0);
	CHECK_EQ_INT(pagestore_has(ps, &k[0]), 1);
	CHECK_EQ_INT(pagestore_has(ps, &k[1]), 0);
	CHECK_EQ_INT(put_key(ps, &k[6], 1000), 0);
	CHECK_EQ_INT(pagestore_has(ps, &k[2]), 0);
	CHECK_EQ_INT(pagestore_has(ps, &k[3]), 1);
	/* a smaller page frees only what it needs: one page goes for it */
	CHECK_EQ_INT(put_key(ps, &k[7], 10), 0);
	CHECK_EQ_INT(pagestore_has(ps, &k[3]), 0);
	CHECK_EQ_INT(pagestore_has(ps, &k[4]), 1);

	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK(st.used_bytes <= st.capacity_bytes);
	CHECK_EQ_INT(st.pages, 5);
	CHECK_EQ_INT(st.used_bytes, 4 * fsz + HDR + 10);
	CHECK_EQ_INT(st.evicted_pages_total, 3);
	CHECK_EQ_INT(st.evicted_bytes_total, 3 * fsz);
	char p[512];
	page_path(p, sizeof(p), dir, &k[1]);
	CHECK(!file_exists(p));
	disk_usage(dir);
	CHECK_EQ_INT(disk_pages, 5);
	CHECK_EQ_INT(disk_bytes, st.used_bytes);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(page_bigger_than_capacity)
{
	char *dir = tmpdir_make("pstest");
	struct pagestore *ps = open1(dir, 1000, 4096, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct page_key a = {5, 5, 0}, b = {5, 5, 1};
	CHECK_EQ_INT(put_key(ps, &a, 2000), -ENOSPC);
	CHECK_EQ_INT(pagestore_has(ps, &a), 0);
	CHECK_EQ_INT(put_key(ps, &b, 1000 - HDR), 0);
	CHECK_EQ_INT(get_matches(ps, &b, 1000 - HDR), 1);
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.used_bytes, 1000);
	CHECK_EQ_INT(st.pages, 1);
	disk_usage(dir);
	CHECK_EQ_INT(disk_tmps, 0);
	CHECK_EQ_INT(disk_pages, 1);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(two_dirs)
{
	char *d1 = tmpdir_make("pstest"), *d2 = tmpdir_make("pstest");
	const int64_t fsz = HDR + 1000;
	struct pagestore_dir_cfg cfg[2] = {{d1, 10 * fsz}, {d2, 30 * fsz}};
	char *err = NULL;
	struct pagestore *ps = pagestore_open(cfg, 2, 1000, PAGESTORE_VERIFY_ALWAYS, &err);
	CHECK(ps != NULL);
	free(err);
	if (!ps)
		goto out;
	for (int i = 0; i < 200; i++) {
		struct page_key k = {(uint64_t)i * 0x0101010101010101ULL, 3, (uint64_t)i};
		CHECK_EQ_INT(put_key(ps, &k, 1000), 0);
	}
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.capacity_bytes, 40 * fsz);
	CHECK(st.used_bytes <= st.capacity_bytes);
	CHECK(st.pages > 30); /* both dirs hold pages */
	disk_usage(d1);
	int64_t b1 = disk_bytes, p1 = disk_pages;
	disk_usage(d2);
	int64_t b2 = disk_bytes, p2 = disk_pages;
	CHECK(b1 <= 10 * fsz);
	CHECK(b2 <= 30 * fsz);
	CHECK(p1 >= 8 && p2 >= 25); /* each dir filled to (near) its own capacity */
	CHECK_EQ_INT(b1 + b2, st.used_bytes);
	CHECK_EQ_INT(p1 + p2, st.pages);
	int hits = 0, bad = 0;
	for (int i = 0; i < 200; i++) {
		struct page_key k = {(uint64_t)i * 0x0101010101010101ULL, 3, (uint64_t)i};
		int r = get_matches(ps, &k, 1000);
		hits += r == 1;
		bad += r < 0;
	}
	CHECK_EQ_INT(hits, st.pages);
	CHECK_EQ_INT(bad, 0);
	pagestore_close(&ps);
out:
	tmpdir_remove(d1);
	tmpdir_remove(d2);
}

TEST(restart_keeps_pages)
{
	char *dir = tmpdir_make("pstest");
	struct pagestore *ps = open1(dir, 1 << 20, 2048, PAGESTORE_VERIFY_ONCE);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	for (int i = 0; i < 20; i++) {
		struct page_key k = {0xfeed0000 + (uint64_t)(i % 3), 1, (uint64_t)i};
		CHECK_EQ_INT(put_key(ps, &k, (uint32_t)(100 * i + 1)), 0);
	}
	struct pagestore_stats before;
	pagestore_get_stats(ps, &before);
	pagestore_close(&ps);

	ps = open1(dir, 1 << 20, 2048, PAGESTORE_VERIFY_ONCE);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.pages, 20);
	CHECK_EQ_INT(st.used_bytes, before.used_bytes);
	CHECK_EQ_INT(pagestore_cached_bytes(ps, 0xfeed0000, 1),
	    1 + 301 + 601 + 901 + 1201 + 1501 + 1801);
	for (int i = 0; i < 20; i++) {
		struct page_key k = {0xfeed0000 + (uint64_t)(i % 3), 1, (uint64_t)i};
		CHECK_EQ_INT(get_matches(ps, &k, (uint32_t)(100 * i + 1)), 1);
		/* verified once: a second get is served too */
		CHECK_EQ_INT(get_matches(ps, &k, (uint32_t)(100 * i + 1)), 1);
	}
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.checksum_failures_total, 0);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(restart_lru_order_by_mtime)
{
	char *dir = tmpdir_make("pstest");
	const int64_t fsz = HDR + 500;
	struct pagestore *ps = open1(dir, 10 * fsz, 500, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct page_key k[6];
	for (int i = 0; i < 6; i++) {
		k[i] = (struct page_key){0x77, 2, (uint64_t)i};
		CHECK_EQ_INT(put_key(ps, &k[i], 500), 0);
	}
	pagestore_close(&ps);
	/* mtimes make the order 3 (oldest), 0, 5, 1, 4, 2 (newest) */
	const int order[6] = {3, 0, 5, 1, 4, 2};
	time_t base = time(NULL) - 3600;
	for (int r = 0; r < 6; r++) {
		char p[512];
		page_path(p, sizeof(p), dir, &k[order[r]]);
		struct timespec ts[2] = {{base + r * 10, 0}, {base + r * 10, 0}};
		CHECK(utimensat(AT_FDCWD, p, ts, 0) == 0);
	}
	/* reopen with room for 3: the 3 oldest go */
	ps = open1(dir, 3 * fsz, 500, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.pages, 3);
	CHECK_EQ_INT(st.used_bytes, 3 * fsz);
	CHECK_EQ_INT(st.evicted_pages_total, 3);
	CHECK_EQ_INT(pagestore_has(ps, &k[3]), 0);
	CHECK_EQ_INT(pagestore_has(ps, &k[0]), 0);
	CHECK_EQ_INT(pagestore_has(ps, &k[5]), 0);
	CHECK_EQ_INT(get_matches(ps, &k[1], 500), 1);
	CHECK_EQ_INT(get_matches(ps, &k[4], 500), 1);
	CHECK_EQ_INT(get_matches(ps, &k[2], 500), 1);
	disk_usage(dir);
	CHECK_EQ_INT(disk_pages, 3);
	/* after the restart the order is: 1 (LRU), 4, 2; get refreshed 1, 4, 2
	 * in that order, so the next put evicts 1 */
	CHECK_EQ_INT(put_key(ps, &k[0], 500), 0);
	CHECK_EQ_INT(pagestore_has(ps, &k[1]), 0);
	CHECK_EQ_INT(pagestore_has(ps, &k[4]), 1);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(restart_reads_no_data_corruption_caught_at_get)
{
	char *dir = tmpdir_make("pstest");
	struct pagestore *ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ONCE);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct page_key a = {0xc0ffee, 1, 0}, b = {0xc0ffee, 1, 1};
	CHECK_EQ_INT(put_key(ps, &a, 4096), 0);
	CHECK_EQ_INT(put_key(ps, &b, 4096), 0);
	pagestore_close(&ps);
	char p[512];
	page_path(p, sizeof(p), dir, &a);
	corrupt_byte(p, HDR + 1234);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ONCE);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK(secs < 2.0);
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	/* open did not read the data: the page is indexed, nothing counted */
	CHECK_EQ_INT(st.pages, 2);
	CHECK_EQ_INT(st.checksum_failures_total, 0);
	CHECK_EQ_INT(pagestore_has(ps, &a), 1);
	CHECK(file_exists(p));
	/* the first get checks the CRC */
	struct page_ref ref;
	CHECK_EQ_INT(pagestore_get(ps, &a, &ref), -ENOENT);
	CHECK_EQ_INT(ref.fd, -1);
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.checksum_failures_total, 1);
	CHECK_EQ_INT(st.pages, 1);
	CHECK_EQ_INT(st.used_bytes, HDR + 4096);
	CHECK_EQ_INT(pagestore_has(ps, &a), 0);
	CHECK(!file_exists(p));
	CHECK_EQ_INT(get_matches(ps, &b, 4096), 1);
	/* and it can be cached again */
	CHECK_EQ_INT(put_key(ps, &a, 4096), 0);
	CHECK_EQ_INT(get_matches(ps, &a, 4096), 1);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(corruption_in_process_verify_always)
{
	char *dir = tmpdir_make("pstest");
	struct pagestore *ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct page_key a = {0xd00d, 1, 0};
	CHECK_EQ_INT(put_key(ps, &a, 3000), 0);
	CHECK_EQ_INT(get_matches(ps, &a, 3000), 1);
	char p[512];
	page_path(p, sizeof(p), dir, &a);
	corrupt_byte(p, HDR + 2999);
	CHECK_EQ_INT(get_matches(ps, &a, 3000), 0);
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.checksum_failures_total, 1);
	CHECK_EQ_INT(st.used_bytes, 0);
	CHECK(!file_exists(p));

	/* a corrupt header is caught the same way */
	CHECK_EQ_INT(put_key(ps, &a, 3000), 0);
	corrupt_byte(p, 20);
	CHECK_EQ_INT(get_matches(ps, &a, 3000), 0);
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.checksum_failures_total, 2);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(truncated_page)
{
	char *dir = tmpdir_make("pstest");
	struct pagestore *ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ONCE);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct page_key a = {0xaa, 1, 0}, b = {0xaa, 1, 1}, c = {0xaa, 1, 2};
	CHECK_EQ_INT(put_key(ps, &a, 4000), 0);
	CHECK_EQ_INT(put_key(ps, &b, 4000), 0);
	CHECK_EQ_INT(put_key(ps, &c, 4000), 0);
	char pa[512], pb[512], pc[512];
	page_path(pa, sizeof(pa), dir, &a);
	page_path(pb, sizeof(pb), dir, &b);
	page_path(pc, sizeof(pc), dir, &c);
	/* in process, already verified (we wrote it): the size check catches it */
	CHECK(truncate(pa, HDR + 1000) == 0);
	CHECK_EQ_INT(get_matches(ps, &a, 4000), 0);
	CHECK(!file_exists(pa));
	pagestore_close(&ps);

	/* across a restart the index takes the length from the file size, so
	 * a truncated file looks like a shorter page: the header says not */
	CHECK(truncate(pb, HDR + 1000) == 0);
	CHECK(truncate(pc, 10) == 0); /* not even a header: dropped at open */
	ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ONCE);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	CHECK_EQ_INT(pagestore_has(ps, &c), 0);
	CHECK(!file_exists(pc));
	CHECK_EQ_INT(pagestore_has(ps, &b), 1);
	CHECK_EQ_INT(get_matches(ps, &b, 4000), 0);
	CHECK(!file_exists(pb));
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.checksum_failures_total, 1);
	CHECK_EQ_INT(st.pages, 0);
	CHECK_EQ_INT(st.used_bytes, 0);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(stale_tmp_and_stray_files_removed_at_open)
{
	char *dir = tmpdir_make("pstest");
	struct pagestore *ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct page_key a = {0xab00000000000000ULL, 1, 0};
	CHECK_EQ_INT(put_key(ps, &a, 100), 0);
	pagestore_close(&ps);
	char p[512], tmp[600], stray[600], wrongsub[600], keep[600];
	page_path(p, sizeof(p), dir, &a);
	snprintf(tmp, sizeof(tmp), "%s.tmp.4242", p);
	snprintf(stray, sizeof(stray), "%s/ab/garbage", dir);
	/* a valid name in the wrong subdir */
	snprintf(wrongsub, sizeof(wrongsub),
	    "%s/cd/ab00000000000000-0000000000000001-0000000000000009.pg2", dir);
	snprintf(keep, sizeof(keep), "%s/notes.txt", dir);
	char cd[600];
	snprintf(cd, sizeof(cd), "%s/cd", dir);
	CHECK(mkdir(cd, 0755) == 0);
	const char *mk[] = {tmp, stray, wrongsub, keep};
	for (size_t i = 0; i < 4; i++) {
		FILE *f = fopen(mk[i], "w");
		CHECK(f != NULL);
		if (f) {
			fputs("leftover bytes, well over sixty-four of them to look like a page; "
			      "padding padding padding\n", f);
			fclose(f);
		}
	}
	ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	CHECK(!file_exists(tmp));
	CHECK(!file_exists(stray));
	CHECK(!file_exists(wrongsub));
	CHECK(file_exists(keep)); /* outside our subdirs: not ours */
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.pages, 1);
	CHECK_EQ_INT(st.used_bytes, HDR + 100);
	CHECK_EQ_INT(get_matches(ps, &a, 100), 1);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(header_with_wrong_key)
{
	char *dir = tmpdir_make("pstest");
	struct pagestore *ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ONCE);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct page_key a = {0x3300000000000001ULL, 1, 0};
	struct page_key b = {0x3300000000000001ULL, 2, 0}; /* same size, other ver */
	struct page_key c = {0x4400000000000001ULL, 1, 5}; /* other subdir */
	CHECK_EQ_INT(put_key(ps, &a, 1000), 0);
	pagestore_close(&ps);
	char pa[512], pb[512], pc[512];
	page_path(pa, sizeof(pa), dir, &a);
	page_path(pb, sizeof(pb), dir, &b);
	page_path(pc, sizeof(pc), dir, &c);
	CHECK(rename(pa, pb) == 0);
	ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ONCE);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	CHECK_EQ_INT(pagestore_has(ps, &a), 0);
	CHECK_EQ_INT(pagestore_has(ps, &b), 1);
	/* data CRC is fine; only the key in the header gives it away */
	CHECK_EQ_INT(get_matches(ps, &b, 1000), 0);
	CHECK(!file_exists(pb));
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.checksum_failures_total, 1);

	/* same across subdirs */
	CHECK_EQ_INT(put_key(ps, &a, 1000), 0);
	pagestore_close(&ps);
	char sub44[600];
	snprintf(sub44, sizeof(sub44), "%s/44", dir);
	CHECK(mkdir(sub44, 0755) == 0);
	CHECK(rename(pa, pc) == 0);
	ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ONCE);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	CHECK_EQ_INT(pagestore_has(ps, &c), 1);
	CHECK_EQ_INT(get_matches(ps, &c, 1000), 0);
	CHECK(!file_exists(pc));
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(write_error_keeps_serving)
{
	char *dir = tmpdir_make("pstest");
	struct pagestore *ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct page_key a = {0x1100000000000000ULL, 1, 0};
	struct page_key b = {0x2200000000000000ULL, 1, 0};
	CHECK_EQ_INT(put_key(ps, &a, 4096), 0);
	/* b's subdir becomes a regular file: creating the page fails (ENOTDIR;
	 * chmod would not stop root) */
	char sub[512];
	snprintf(sub, sizeof(sub), "%s/22", dir);
	rmdir(sub); /* subdirs are made on first use: may not exist */
	FILE *f = fopen(sub, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	int rc = put_key(ps, &b, 4096);
	CHECK(rc < 0);
	CHECK_EQ_INT(rc, -ENOTDIR);
	CHECK_EQ_INT(pagestore_has(ps, &b), 0);
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.write_errors_total, 1);
	CHECK_EQ_INT(st.used_bytes, HDR + 4096);
	CHECK_EQ_INT(st.pages, 1);
	CHECK_EQ_INT(get_matches(ps, &a, 4096), 1);
	disk_usage(dir);
	CHECK_EQ_INT(disk_tmps, 0);
	/* the subdir comes back: puts work again */
	CHECK(unlink(sub) == 0);
	CHECK(mkdir(sub, 0755) == 0);
	CHECK_EQ_INT(put_key(ps, &b, 4096), 0);
	CHECK_EQ_INT(get_matches(ps, &b, 4096), 1);
	/* and a subdir removed by hand is made again */
	struct page_key c = {0x2300000000000000ULL, 1, 0};
	struct page_key c2 = {0x2300000000000000ULL, 1, 1};
	CHECK_EQ_INT(put_key(ps, &c, 10), 0);
	CHECK_EQ_INT(pagestore_drop_object(ps, c.obj, 0), 1);
	snprintf(sub, sizeof(sub), "%s/23", dir);
	CHECK(rmdir(sub) == 0);
	CHECK_EQ_INT(put_key(ps, &c2, 10), 0);
	CHECK_EQ_INT(get_matches(ps, &c2, 10), 1);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(open_errors)
{
	char *dir = tmpdir_make("pstest");
	char file[512], under[600];
	snprintf(file, sizeof(file), "%s/plainfile", dir);
	snprintf(under, sizeof(under), "%s/sub", file);
	FILE *f = fopen(file, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	char *err = NULL;
	struct pagestore_dir_cfg cfg = {file, 1 << 20};
	CHECK(pagestore_open(&cfg, 1, 4096, PAGESTORE_VERIFY_ALWAYS, &err) == NULL);
	CHECK(err != NULL && strstr(err, file) != NULL);
	free(err);
	err = NULL;
	cfg.path = under;
	CHECK(pagestore_open(&cfg, 1, 4096, PAGESTORE_VERIFY_ALWAYS, &err) == NULL);
	CHECK(err != NULL && strstr(err, "cannot create") != NULL);
	free(err);
	err = NULL;
	cfg.path = dir;
	cfg.capacity = 0;
	CHECK(pagestore_open(&cfg, 1, 4096, PAGESTORE_VERIFY_ALWAYS, &err) == NULL);
	CHECK(err != NULL);
	free(err);
	err = NULL;
	cfg.capacity = 1 << 20;
	CHECK(pagestore_open(&cfg, 1, 0, PAGESTORE_VERIFY_ALWAYS, &err) == NULL);
	CHECK(err != NULL);
	free(err);
	err = NULL;
	CHECK(pagestore_open(&cfg, 0, 4096, PAGESTORE_VERIFY_ALWAYS, &err) == NULL);
	free(err);
	err = NULL;
	struct pagestore_dir_cfg twice[2] = {{dir, 1 << 20}, {dir, 1 << 20}};
	CHECK(pagestore_open(twice, 2, 4096, PAGESTORE_VERIFY_ALWAYS, &err) == NULL);
	CHECK(err != NULL && strstr(err, "twice") != NULL);
	free(err);
	/* NULL err is allowed */
	CHECK(pagestore_open(twice, 2, 4096, PAGESTORE_VERIFY_ALWAYS, NULL) == NULL);

	/* a nested path that does not exist yet is created */
	char nested[600];
	snprintf(nested, sizeof(nested), "%s/a/b/c", dir);
	struct pagestore *ps = open1(nested, 1 << 20, 4096, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	pagestore_close(&ps);
	tmpdir_remove(dir);
}

TEST(page_size_change_wipes_pages)
{
	char *dir = tmpdir_make("pstest");
	struct pagestore *ps = open1(dir, 1 << 20, 4096, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	struct page_key a = {0x99, 1, 0};
	CHECK_EQ_INT(put_key(ps, &a, 4096), 0);
	pagestore_close(&ps);
	/* index 0 means other bytes under another page size */
	ps = open1(dir, 1 << 20, 8192, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	CHECK_EQ_INT(pagestore_has(ps, &a), 0);
	char p[512];
	page_path(p, sizeof(p), dir, &a);
	CHECK(!file_exists(p));
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

/* ---- concurrency ------------------------------------------------------------ */

#define CC_THREADS 8
#define CC_OPS 1500
#define CC_KEYS 96

struct cc_state {
	struct pagestore *ps;
	unsigned seed;
	int mismatches;
	int errors;
	int hits;
};

static struct page_key
cc_key(int i)
{
	/* 4 objects (two share a subdir), 2 versions, 12 pages */
	static const uint64_t objs[4] = {0x1000000000000001ULL, 0x1000000000000002ULL,
	    0x2000000000000003ULL, 0xff00000000000004ULL};
	return (struct page_key){objs[i % 4], 1 + (uint64_t)(i / 4 % 2), (uint64_t)(i / 8)};
}

static uint32_t
cc_len(const struct page_key *k)
{
	return 500 + (uint32_t)((k->obj ^ k->ver * 31 ^ k->idx * 977) % 3500);
}

static void *
cc_thread(void *arg)
{
	struct cc_state *s = arg;
	for (int i = 0; i < CC_OPS; i++) {
		unsigned r = (unsigned)rand_r(&s->seed);
		struct page_key k = cc_key((int)(r >> 8) % CC_KEYS);
		uint32_t len = cc_len(&k);
		int op = (int)(r % 100);
		if (op < 45) {
			int rc = put_key(s->ps, &k, len);
			if (rc != 0 && rc != -ENOSPC)
				s->errors++;
		} else if (op < 85) {
			int m = get_matches(s->ps, &k, len);
			if (m < 0)
				s->mismatches++;
			s->hits += m == 1;
		} else if (op < 93) {
			(void)pagestore_has(s->ps, &k);
		} else if (op < 97) {
			int64_t b = pagestore_cached_bytes(s->ps, k.obj, k.ver);
			if (b < 0)
				s->errors++;
		} else {
			(void)pagestore_drop_object(s->ps, k.obj, (r & 1) ? k.ver : 0);
		}
	}
	return NULL;
}

TEST(concurrent_overlapping_keys)
{
	char *d1 = tmpdir_make("pstest"), *d2 = tmpdir_make("pstest");
	/* room for ~a third of the keys: constant eviction */
	struct pagestore_dir_cfg cfg[2] = {{d1, 40000}, {d2, 30000}};
	char *err = NULL;
	struct pagestore *ps = pagestore_open(cfg, 2, 4096, PAGESTORE_VERIFY_ALWAYS, &err);
	free(err);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	pthread_t th[CC_THREADS];
	struct cc_state st[CC_THREADS];
	for (int i = 0; i < CC_THREADS; i++) {
		st[i] = (struct cc_state){.ps = ps, .seed = 1234u + (unsigned)i * 7919u};
		CHECK(pthread_create(&th[i], NULL, cc_thread, &st[i]) == 0);
	}
	int mism = 0, errs = 0, hits = 0;
	for (int i = 0; i < CC_THREADS; i++) {
		pthread_join(th[i], NULL);
		mism += st[i].mismatches;
		errs += st[i].errors;
		hits += st[i].hits;
	}
	CHECK_EQ_INT(mism, 0);
	CHECK_EQ_INT(errs, 0);
	CHECK(hits > 100);

	struct pagestore_stats s;
	pagestore_get_stats(ps, &s);
	CHECK(s.used_bytes <= s.capacity_bytes);
	CHECK(s.evicted_pages_total > 0);
	CHECK_EQ_INT(s.checksum_failures_total, 0);
	CHECK_EQ_INT(s.write_errors_total, 0);
	disk_usage(d1);
	int64_t bytes = disk_bytes, pages = disk_pages, tmps = disk_tmps;
	disk_usage(d2);
	bytes += disk_bytes;
	pages += disk_pages;
	tmps += disk_tmps;
	CHECK_EQ_INT(bytes, s.used_bytes);
	CHECK_EQ_INT(pages, s.pages);
	CHECK_EQ_INT(tmps, 0);
	/* index and disk agree key by key, and every present page reads back */
	int64_t present = 0, sum = 0;
	for (int i = 0; i < CC_KEYS; i++) {
		struct page_key k = cc_key(i);
		char p[512];
		int on_disk = 0;
		page_path(p, sizeof(p), d1, &k);
		on_disk |= file_exists(p);
		page_path(p, sizeof(p), d2, &k);
		on_disk |= file_exists(p);
		int has = pagestore_has(ps, &k);
		CHECK_EQ_INT(has, on_disk);
		if (has) {
			present++;
			sum += HDR + cc_len(&k);
			CHECK_EQ_INT(get_matches(ps, &k, cc_len(&k)), 1);
		}
	}
	CHECK_EQ_INT(present, s.pages);
	CHECK_EQ_INT(sum, s.used_bytes);
	pagestore_close(&ps);
out:
	tmpdir_remove(d1);
	tmpdir_remove(d2);
}

int
main(void)
{
	log_level = LOG_LVL_ERROR; /* the corruption tests warn on purpose */
	RUN(round_trip);
	RUN(pages_private_to_the_owner);
	RUN(rekey_and_drop_version);
	RUN(versions_and_drop);
	RUN(lru_eviction);
	RUN(page_bigger_than_capacity);
	RUN(two_dirs);
	RUN(restart_keeps_pages);
	RUN(restart_lru_order_by_mtime);
	RUN(restart_reads_no_data_corruption_caught_at_get);
	RUN(corruption_in_process_verify_always);
	RUN(truncated_page);
	RUN(stale_tmp_and_stray_files_removed_at_open);
	RUN(header_with_wrong_key);
	RUN(write_error_keeps_serving);
	RUN(open_errors);
	RUN(page_size_change_wipes_pages);
	RUN(concurrent_overlapping_keys);
	TAP_DONE();
}
