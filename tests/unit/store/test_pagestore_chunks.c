/*
 * test_pagestore_chunks.c: pages checked by chunk (format 2): the header's
 * layout and CRC table, page_ref_read over ranges at and across chunk
 * boundaries, a flipped byte found by a read that touches its chunk and
 * only by such a read (the page is then dropped and counted), the old
 * format (one CRC per page) checked whole and rewritten at its first get,
 * --page-verify once, and the scrubber (steps, and its thread).  Uses temp dirs under /tmp.
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

#include "common/crc32c.h"
#include "store/pagestore.h"
#include "tap.h"
#include "tmpdir.h"

#define C PAGESTORE_CHUNK
#define PSZ (4 * C)                 /* four chunks a page */
#define HSZ (64 + 4 * (PSZ / C))    /* the header of such a store */
#define LEN (3 * C + C / 2)         /* a page of three and a half chunks */


static void
fill(unsigned char *b, uint32_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (uint32_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (unsigned char)x;
	}
}

static struct pagestore *
open1(const char *dir, enum pagestore_verify v)
{
	struct pagestore_dir_cfg cfg = {dir, 64 << 20};
	char *err = NULL;
	struct pagestore *ps = pagestore_open(&cfg, 1, PSZ, v, &err);
	if (!ps)
		fprintf(stderr, "  open failed: %s\n", err ? err : "?");
	free(err);
	return ps;
}

static void
page_path(char *out, size_t n, const char *dir, const struct page_key *k,
    const char *ext)
{
	snprintf(out, n, "%s/%02x/%016" PRIx64 "-%016" PRIx64 "-%016" PRIx64 ".%s",
	    dir, (unsigned)(k->obj >> 56), k->obj, k->ver, k->idx, ext);
}

static int
file_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0;
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static void
flip(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char c = 0;
	CHECK(fd >= 0);
	CHECK(pread(fd, &c, 1, off) == 1);
	c ^= 0x5a;
	CHECK(pwrite(fd, &c, 1, off) == 1);
	close(fd);
}

static int64_t
failures(struct pagestore *ps)
{
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	return st.checksum_failures_total;
}

/* Reads [a, a + n) of k through page_ref_read (cap bytes at a time) and
 * compares with want: 1 equal, or page_ref_read's error. */
static int
read_range(struct pagestore *ps, const struct page_key *k, uint32_t a,
    uint32_t n, size_t cap, const unsigned char *want)
{
	struct page_ref ref;
	int rc = pagestore_get(ps, k, &ref);
	if (rc)
		return rc;
	unsigned char *buf = malloc(cap);
	uint32_t done = 0;
	rc = 1;
	while (done < n) {
		const unsigned char *p;
		ssize_t got = page_ref_read(&ref, a + done, n - done, buf, cap, &p);
		if (got <= 0) {
			rc = got < 0 ? (int)got : -EIO;
			break;
		}
		if (memcmp(p, want + a + done, (size_t)got) != 0)
			rc = -EILSEQ;
		done += (uint32_t)got;
	}
	free(buf);
	page_ref_release(&ref);
	return rc;
}

TEST(format_and_table)
{
	char *dir = tmpdir_make("pschunk");
	struct pagestore *ps = open1(dir, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	unsigned char *data = malloc(LEN);
	fill(data, LEN, 1);
	struct page_key k = {0x1200000000000001ULL, 5, 3};
	CHECK_EQ_INT(pagestore_put(ps, &k, data, LEN), 0);
	char p[512];
	page_path(p, sizeof(p), dir, &k, "pg2");
	struct stat sb;
	CHECK(stat(p, &sb) == 0 && sb.st_size == HSZ + LEN);
	unsigned char h[HSZ];
	int fd = open(p, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, h, HSZ, 0) == HSZ);
	close(fd);
	CHECK(memcmp(h, "FERRYPG2", 8) == 0);
	CHECK_EQ_INT(le32(h + 8), 2);
	CHECK_EQ_INT(le32(h + 12), LEN);
	CHECK_EQ_INT(le32(h + 40), C);
	CHECK_EQ_INT(le32(h + 44), PSZ);
	CHECK_EQ_INT(le32(h + 48), PSZ / C);
	for (uint32_t i = 0; i < 4; i++) {
		uint32_t n = i < 3 ? C : C / 2;
		CHECK_EQ_INT(le32(h + 64 + 4 * i), crc32c(0, data + i * C, n));
	}
	CHECK_EQ_INT(le32(h + 60), crc32c(crc32c(0, h, 60), h + 64, HSZ - 64));

	/* The ref carries the table; get read no data. */
	struct page_ref ref;
	CHECK_EQ_INT(pagestore_get(ps, &k, &ref), 0);
	CHECK_EQ_INT(ref.off, HSZ);
	CHECK_EQ_INT(ref.len, LEN);
	CHECK_EQ_INT(ref.chunk, C);
	CHECK_EQ_INT(page_ref_nchunks(&ref), 4);
	CHECK_EQ_INT(ref.checked, 0);
	for (uint32_t i = 0; i < 4; i++)
		CHECK_EQ_INT(page_ref_crcs(&ref)[i], le32(h + 64 + 4 * i));
	page_ref_release(&ref);
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.used_bytes, HSZ + LEN);
	free(data);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(ranges_at_chunk_boundaries)
{
	char *dir = tmpdir_make("pschunk");
	struct pagestore *ps = open1(dir, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	unsigned char *data = malloc(LEN);
	fill(data, LEN, 2);
	struct page_key k = {0x77, 1, 0};
	CHECK_EQ_INT(pagestore_put(ps, &k, data, LEN), 0);
	const uint32_t r[][2] = {
	    {0, 1}, {0, C}, {C - 1, 2}, {C, C}, {C - 1, C + 2}, {4096, 4096},
	    {2 * C + 5, C}, {3 * C, C / 2}, {LEN - 1, 1}, {0, LEN}, {1, LEN - 1},
	};
	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
		CHECK_EQ_INT(read_range(ps, &k, r[i][0], r[i][1], PAGESTORE_BUF_SIZE, data), 1);
		/* one chunk of room: the range comes in pieces */
		CHECK_EQ_INT(read_range(ps, &k, r[i][0], r[i][1], C, data), 1);
		CHECK_EQ_INT(read_range(ps, &k, r[i][0], r[i][1], 2 * C + 100, data), 1);
	}
	/* What a call returns: the bytes of the range in the chunks read. */
	struct page_ref ref;
	CHECK_EQ_INT(pagestore_get(ps, &k, &ref), 0);
	unsigned char *buf = malloc(2 * C);
	const unsigned char *p = NULL;
	CHECK_EQ_INT(page_ref_read(&ref, C - 10, 2 * C, buf, 2 * C, &p), C + 10);
	CHECK(p == buf + C - 10);
	CHECK_EQ_INT(page_ref_read(&ref, 3 * C, C, buf, 2 * C, &p), -ERANGE);
	CHECK_EQ_INT(page_ref_read(&ref, LEN, 1, buf, 2 * C, &p), -ERANGE);
	CHECK_EQ_INT(page_ref_read(&ref, 0, 1, buf, C - 1, &p), -EINVAL);
	CHECK_EQ_INT(page_ref_read(&ref, 0, 0, buf, C, &p), -EINVAL);
	CHECK_EQ_INT(page_ref_verify(&ref, 0, LEN), 0);
	page_ref_release(&ref);
	free(buf);
	CHECK_EQ_INT(failures(ps), 0);
	free(data);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(flipped_byte_found_by_the_reads_that_touch_it)
{
	char *dir = tmpdir_make("pschunk");
	struct pagestore *ps = open1(dir, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	unsigned char *data = malloc(LEN);
	fill(data, LEN, 3);
	struct page_key k = {0x88, 1, 0};
	CHECK_EQ_INT(pagestore_put(ps, &k, data, LEN), 0);
	char p[512];
	page_path(p, sizeof(p), dir, &k, "pg2");
	flip(p, HSZ + 2 * C + 100); /* chunk 2 */

	/* Reads elsewhere: served, nothing counted (their chunks are good). */
	CHECK_EQ_INT(read_range(ps, &k, 0, 4096, PAGESTORE_BUF_SIZE, data), 1);
	CHECK_EQ_INT(read_range(ps, &k, C, C, PAGESTORE_BUF_SIZE, data), 1);
	CHECK_EQ_INT(read_range(ps, &k, 3 * C, C / 2, PAGESTORE_BUF_SIZE, data), 1);
	CHECK_EQ_INT(read_range(ps, &k, 2 * C - 4096, 4096, PAGESTORE_BUF_SIZE, data), 1);
	CHECK_EQ_INT(failures(ps), 0);
	CHECK_EQ_INT(pagestore_has(ps, &k), 1);

	/* A 4 KiB read in chunk 2, far from the flipped byte: caught. */
	CHECK_EQ_INT(read_range(ps, &k, 3 * C - 4096, 4096, PAGESTORE_BUF_SIZE, data), -EBADMSG);
	CHECK_EQ_INT(failures(ps), 1);
	CHECK_EQ_INT(pagestore_has(ps, &k), 0);
	CHECK(!file_exists(p));
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.used_bytes, 0);

	/* A read across the bad chunk from a good one: the good chunks are
	 * handed out before the bad one is reached, never the bad one. */
	CHECK_EQ_INT(pagestore_put(ps, &k, data, LEN), 0);
	flip(p, HSZ + 2 * C + 100);
	struct page_ref ref;
	CHECK_EQ_INT(pagestore_get(ps, &k, &ref), 0);
	unsigned char *buf = malloc(C);
	const unsigned char *q;
	CHECK_EQ_INT(page_ref_read(&ref, C, 2 * C, buf, C, &q), C);
	CHECK(memcmp(q, data + C, C) == 0);
	CHECK_EQ_INT(page_ref_read(&ref, 2 * C, C, buf, C, &q), -EBADMSG);
	page_ref_release(&ref);
	free(buf);
	CHECK_EQ_INT(failures(ps), 2);
	CHECK_EQ_INT(pagestore_has(ps, &k), 0);

	/* A flipped byte in the CRC table is the header's: get refuses it. */
	CHECK_EQ_INT(pagestore_put(ps, &k, data, LEN), 0);
	flip(p, 64 + 4 * 3);
	CHECK_EQ_INT(pagestore_get(ps, &k, &ref), -ENOENT);
	CHECK_EQ_INT(failures(ps), 3);
	free(data);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(verify_once_checks_whole_page_at_first_get)
{
	char *dir = tmpdir_make("pschunk");
	struct pagestore *ps = open1(dir, PAGESTORE_VERIFY_ONCE);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	unsigned char *data = malloc(LEN);
	fill(data, LEN, 4);
	struct page_key a = {0x99, 1, 0}, b = {0x99, 1, 1};
	CHECK_EQ_INT(pagestore_put(ps, &a, data, LEN), 0);
	CHECK_EQ_INT(pagestore_put(ps, &b, data, LEN), 0);
	struct page_ref ref;
	/* Written by us: checked already. */
	CHECK_EQ_INT(pagestore_get(ps, &a, &ref), 0);
	CHECK_EQ_INT(ref.checked, 1);
	page_ref_release(&ref);
	pagestore_close(&ps);
	char p[512];
	page_path(p, sizeof(p), dir, &b, "pg2");
	flip(p, HSZ + LEN - 1); /* the last chunk */
	ps = open1(dir, PAGESTORE_VERIFY_ONCE);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	CHECK_EQ_INT(pagestore_get(ps, &a, &ref), 0);
	CHECK_EQ_INT(ref.checked, 1); /* every chunk checked, at this get */
	page_ref_release(&ref);
	CHECK_EQ_INT(pagestore_get(ps, &a, &ref), 0);
	CHECK_EQ_INT(ref.checked, 1); /* and not again */
	page_ref_release(&ref);
	CHECK_EQ_INT(pagestore_get(ps, &b, &ref), -ENOENT);
	CHECK_EQ_INT(failures(ps), 1);
	CHECK(!file_exists(p));
	free(data);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

/* Writes a page file of the old format (64-byte header, one CRC). */
static void
write_v1(const char *dir, const struct page_key *k, const unsigned char *data,
    uint32_t len)
{
	unsigned char h[64] = {0};
	memcpy(h, "FERRYPG1", 8);
	uint32_t v[] = {1, len};
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 4; j++)
			h[8 + 4 * i + j] = (unsigned char)(v[i] >> (8 * j));
	uint64_t kk[] = {k->obj, k->ver, k->idx};
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 8; j++)
			h[16 + 8 * i + j] = (unsigned char)(kk[i] >> (8 * j));
	uint32_t w[] = {crc32c(0, data, len), PSZ};
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 4; j++)
			h[40 + 4 * i + j] = (unsigned char)(w[i] >> (8 * j));
	uint32_t hc = crc32c(0, h, 60);
	for (int j = 0; j < 4; j++)
		h[60 + j] = (unsigned char)(hc >> (8 * j));
	char sub[512], p[512];
	snprintf(sub, sizeof(sub), "%s/%02x", dir, (unsigned)(k->obj >> 56));
	mkdir(sub, 0700);
	page_path(p, sizeof(p), dir, k, "pg");
	FILE *f = fopen(p, "w");
	CHECK(f != NULL);
	if (f) {
		CHECK(fwrite(h, 1, 64, f) == 64);
		CHECK(fwrite(data, 1, len, f) == len);
		fclose(f);
	}
}

TEST(old_format_checked_whole_and_rewritten)
{
	char *dir = tmpdir_make("pschunk");
	/* A dir an older ferry wrote: its meta says format 1. */
	struct pagestore *ps = open1(dir, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	pagestore_close(&ps);
	char meta[512];
	snprintf(meta, sizeof(meta), "%s/pagestore.meta", dir);
	FILE *mf = fopen(meta, "w");
	CHECK(mf != NULL);
	if (mf) {
		fprintf(mf, "ferry-pagestore 1 page_size=%u\n", (unsigned)PSZ);
		fclose(mf);
	}
	unsigned char *data = malloc(LEN);
	fill(data, LEN, 5);
	struct page_key a = {0x5500000000000001ULL, 1, 0}, b = {0x5500000000000001ULL, 1, 1};
	write_v1(dir, &a, data, LEN);
	write_v1(dir, &b, data, 1000);
	char pa1[512], pa2[512], pb1[512], pb2[512];
	page_path(pa1, sizeof(pa1), dir, &a, "pg");
	page_path(pa2, sizeof(pa2), dir, &a, "pg2");
	page_path(pb1, sizeof(pb1), dir, &b, "pg");
	page_path(pb2, sizeof(pb2), dir, &b, "pg2");
	flip(pb1, 64 + 999); /* b is bad */

	ps = open1(dir, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	/* Indexed from names and sizes alone. */
	CHECK_EQ_INT(pagestore_has(ps, &a), 1);
	CHECK_EQ_INT(pagestore_has(ps, &b), 1);
	CHECK_EQ_INT(failures(ps), 0);
	/* The first get checks the old CRC over the whole page, serves it
	 * (from the old file, with the table computed from the checked
	 * bytes) and rewrites it in the new format. */
	struct page_ref ref;
	CHECK_EQ_INT(pagestore_get(ps, &a, &ref), 0);
	CHECK_EQ_INT(ref.off, 64);
	CHECK_EQ_INT(ref.len, LEN);
	CHECK_EQ_INT(page_ref_crcs(&ref)[3], crc32c(0, data + 3 * C, C / 2));
	page_ref_release(&ref);
	CHECK(!file_exists(pa1));
	CHECK(file_exists(pa2));
	CHECK_EQ_INT(read_range(ps, &a, C - 7, 2 * C, PAGESTORE_BUF_SIZE, data), 1);
	CHECK_EQ_INT(pagestore_get(ps, &a, &ref), 0);
	CHECK_EQ_INT(ref.off, HSZ);
	page_ref_release(&ref);
	/* The bad one is never served: dropped and counted. */
	CHECK_EQ_INT(pagestore_get(ps, &b, &ref), -ENOENT);
	CHECK_EQ_INT(failures(ps), 1);
	CHECK(!file_exists(pb1) && !file_exists(pb2));
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.pages, 1);
	CHECK_EQ_INT(st.used_bytes, HSZ + LEN);
	pagestore_close(&ps);

	/* After a restart the converted page is a format-2 page. */
	ps = open1(dir, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	CHECK_EQ_INT(read_range(ps, &a, 0, LEN, PAGESTORE_BUF_SIZE, data), 1);
	CHECK_EQ_INT(pagestore_get(ps, &a, &ref), 0);
	CHECK_EQ_INT(ref.off, HSZ);
	page_ref_release(&ref);
	/* The same page under both names (a crash between the rename and the
	 * unlink): one is kept. */
	pagestore_close(&ps);
	write_v1(dir, &a, data, LEN);
	ps = open1(dir, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	CHECK(file_exists(pa1) != file_exists(pa2));
	CHECK_EQ_INT(read_range(ps, &a, 0, LEN, PAGESTORE_BUF_SIZE, data), 1);
	CHECK_EQ_INT(failures(ps), 0);
	free(data);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

TEST(scrubber_finds_what_nobody_reads)
{
	char *dir = tmpdir_make("pschunk");
	struct pagestore *ps = open1(dir, PAGESTORE_VERIFY_ALWAYS);
	CHECK(ps != NULL);
	if (!ps)
		goto out;
	unsigned char *data = malloc(LEN);
	fill(data, LEN, 6);
	struct page_key k[4];
	for (int i = 0; i < 4; i++) {
		k[i] = (struct page_key){0xabc, 1, (uint64_t)i};
		CHECK_EQ_INT(pagestore_put(ps, &k[i], data, LEN), 0);
	}
	char p[512];
	page_path(p, sizeof(p), dir, &k[2], "pg2");
	flip(p, HSZ + 3 * C + 1);
	/* A step of one byte checks one whole page. */
	CHECK_EQ_INT(pagestore_scrub_step(ps, 1), LEN);
	/* Then a pass from there (once round the index: all four pages):
	 * the bad page is dropped and counted. */
	int64_t did = pagestore_scrub_step(ps, INT64_MAX);
	CHECK_EQ_INT(did, 4 * LEN);
	CHECK_EQ_INT(failures(ps), 1);
	CHECK_EQ_INT(pagestore_has(ps, &k[2]), 0);
	CHECK(!file_exists(p));
	struct pagestore_stats st;
	pagestore_get_stats(ps, &st);
	CHECK_EQ_INT(st.scrub_bytes_total, did + LEN);
	CHECK_EQ_INT(st.pages, 3);
	/* A pass over the good pages finds nothing. */
	CHECK_EQ_INT(pagestore_scrub_step(ps, INT64_MAX), 3 * LEN);
	CHECK_EQ_INT(failures(ps), 0 + 1);
	/* The thread, at a rate: it checks and stops with the store. */
	page_path(p, sizeof(p), dir, &k[0], "pg2");
	flip(p, HSZ + 5);
	CHECK_EQ_INT(pagestore_scrub_start(ps, 64 << 20), 0);
	for (int i = 0; i < 200 && pagestore_has(ps, &k[0]); i++)
		usleep(10000);
	CHECK_EQ_INT(pagestore_has(ps, &k[0]), 0);
	CHECK_EQ_INT(failures(ps), 2);
	free(data);
	pagestore_close(&ps);
out:
	tmpdir_remove(dir);
}

int
main(void)
{
	RUN(format_and_table);
	RUN(ranges_at_chunk_boundaries);
	RUN(flipped_byte_found_by_the_reads_that_touch_it);
	RUN(verify_once_checks_whole_page_at_first_get);
	RUN(old_format_checked_whole_and_rewritten);
	RUN(scrubber_finds_what_nobody_reads);
	TAP_DONE();
}
