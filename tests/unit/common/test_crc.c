/* Unit tests for CRC-32 (IEEE) and CRC-64/NVME: the catalogue check
 * values, S3's own examples (x-amz-checksum-* of known bodies), and the
 * sliced loops against a bitwise reference at every length and alignment
 * around the 8-byte steps, whole and in pieces. */
#include <stdlib.h>
#include <string.h>

#include "common/crc.h"
#include "tap.h"

static uint32_t
ref32(const unsigned char *p, size_t n)
{
	uint32_t c = ~0u;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
	}
	return ~c;
}

static uint64_t
ref64(const unsigned char *p, size_t n)
{
	uint64_t c = ~0ull;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x9A6C9329AC4BC9B5ull : c >> 1;
	}
	return ~c;
}

TEST(check_values)
{
	CHECK_EQ_INT(crc32_ieee(0, "123456789", 9), 0xCBF43926u);
	CHECK(crc64_nvme(0, "123456789", 9) == 0xAE8B14860A799888ull);
	CHECK_EQ_INT(crc32_ieee(0, "", 0), 0);
	CHECK(crc64_nvme(0, "", 0) == 0);
	/* "hello world": botocore's x-amz-checksum-crc32 DUoRhQ== */
	CHECK_EQ_INT(crc32_ieee(0, "hello world", 11), 0x0D4A1185u);
	/* 66560 x 'a' (AWS's chunked-upload example; crc32c is sOO8/Q==,
	 * the crc32 from zlib) */
	unsigned char *a = malloc(66560);
	memset(a, 'a', 66560);
	CHECK_EQ_INT(crc32_ieee(0, a, 66560), ref32(a, 66560));
	free(a);
}

TEST(sliced_equals_bitwise)
{
	unsigned char buf[300];
	uint64_t x = 0x243F6A8885A308D3ull;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)x;
	}
	for (size_t off = 0; off < 9; off++)
		for (size_t n = 0; n + off <= 80; n++) {
			CHECK_EQ_INT(crc32_ieee(0, buf + off, n), ref32(buf + off, n));
			CHECK(crc64_nvme(0, buf + off, n) == ref64(buf + off, n));
		}
	/* In pieces: any split gives the whole's value. */
	for (size_t cut = 0; cut <= sizeof(buf); cut += 7) {
		uint32_t c = crc32_ieee(crc32_ieee(0, buf, cut), buf + cut,
		    sizeof(buf) - cut);
		uint64_t d = crc64_nvme(crc64_nvme(0, buf, cut), buf + cut,
		    sizeof(buf) - cut);
		CHECK_EQ_INT(c, ref32(buf, sizeof(buf)));
		CHECK(d == ref64(buf, sizeof(buf)));
	}
}

int
main(void)
{
	RUN(check_values);
	RUN(sliced_equals_bitwise);
	TAP_DONE();
}
