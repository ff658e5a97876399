/* Unit tests for CRC32C: RFC 3720 vectors; the hardware path (three
 * interleaved streams joined in GF(2)) equals the table-driven one at every
 * length and alignment around the stream boundaries. */
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "tap.h"

uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);

TEST(rfc3720_vectors)
{
	unsigned char buf[48];
	memset(buf, 0, 32);
	CHECK_EQ_INT(crc32c(0, buf, 32), 0x8A9136AA);
	memset(buf, 0xff, 32);
	CHECK_EQ_INT(crc32c(0, buf, 32), 0x62A8AB43);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)i;
	CHECK_EQ_INT(crc32c(0, buf, 32), 0x46DD794E);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)(31 - i);
	CHECK_EQ_INT(crc32c(0, buf, 32), 0x113FDB5C);
	CHECK_EQ_INT(crc32c(0, "123456789", 9), 0xE3069283);
}

TEST(hw_equals_sw)
{
	size_t max = 3 * 8192 * 3 + 100;
	unsigned char *b = malloc(max + 8);
	unsigned x = 12345;
	for (size_t i = 0; i < max + 8; i++) {
		x = x * 1103515245 + 12345;
		b[i] = (unsigned char)(x >> 16);
	}
	size_t lens[] = {0, 1, 7, 8, 9, 24575, 24576, 24577, 49151, 49152, 49153,
	    73727, 73728, 73729, 65536, max};
	for (size_t a = 0; a < 8; a++)
		for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
			CHECK_EQ_INT(crc32c(0, b + a, lens[k]), crc32c_sw(0, b + a, lens[k]));
	/* Extending a running CRC in pieces gives the same as in one go. */
	uint32_t whole = crc32c(0, b, max);
	uint32_t part = crc32c(crc32c(0, b, 30000), b + 30000, max - 30000);
	CHECK_EQ_INT(part, whole);
	free(b);
}

int
main(void)
{
	RUN(rfc3720_vectors);
	RUN(hw_equals_sw);
	TAP_DONE();
}
