/*
 * crc32c.c: CRC32C for page checksums.  Uses the SSE4.2 crc32 instruction
 * when the CPU has it (checked once, thread-safe: the check is idempotent),
 * else a table-driven software loop.  Both give identical results; the unit
 * test checks them against the RFC 3720 vectors.
 */
#include "crc32c.h"

#include <string.h>

static uint32_t table[256];
static int table_ready;

static void
make_table(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
		table[i] = c;
	}
	__atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);
uint32_t
crc32c_sw(uint32_t crc, const void *p, size_t n)
{
	if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE))
		make_table();
	const unsigned char *s = p;
	crc = ~crc;
	while (n--)
		crc = table[(crc ^ *s++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/*
 * GF(2) arithmetic on CRC registers (reflected, as zlib's crc32_combine):
 * multmodp(a, b) = a*b mod P; shifting a register over n zero bytes is a
 * multiplication by x^(8n) mod P.  Used to join CRCs computed in parallel.
 */
static uint32_t
multmodp(uint32_t a, uint32_t b)
{
	uint32_t m = 1u << 31, p = 0;
	for (;;) {
		if (a & m) {
			p ^= b;
			if ((a & (m - 1)) == 0)
				break;
		}
		m >>= 1;
		b = b & 1 ? (b >> 1) ^ 0x82F63B78u : b >> 1;
	}
	return p;
}

/* x^(8n) mod P, by square-and-multiply. */
static uint32_t
xpow8n(uint64_t n)
{
	uint32_t sq = 1u << 23; /* x^8 */
	uint32_t r = 1u << 31;  /* x^0 */
	while (n) {
		if (n & 1)
			r = multmodp(sq, r);
		sq = multmodp(sq, sq);
		n >>= 1;
	}
	return r;
}

#if defined(__x86_64__)
/* Three streams of STREAM bytes each are checksummed at once to hide the
 * crc32 instruction's latency (3 cycles, one issued per cycle), then
 * joined: about three times the speed of one serial stream. */
#define STREAM 8192

static uint32_t shift1, shift2; /* x^(8*STREAM), x^(16*STREAM) mod P */
static int shifts_ready;

__attribute__((target("sse4.2"))) static uint32_t
crc32c_hw(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t c = ~crc & 0xffffffffu;
	while (n && ((uintptr_t)s & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *s++);
		n--;
	}
	if (n >= 3 * STREAM) {
		if (!__atomic_load_n(&shifts_ready, __ATOMIC_ACQUIRE)) {
			shift1 = xpow8n(STREAM);
			shift2 = xpow8n(2 * STREAM);
			__atomic_store_n(&shifts_ready, 1, __ATOMIC_RELEASE);
		}
		while (n >= 3 * STREAM) {
			uint64_t c1 = 0, c2 = 0;
			const unsigned char *s1 = s + STREAM, *s2 = s + 2 * STREAM;
			for (size_t i = 0; i < STREAM; i += 8) {
				uint64_t a, b, d;
				memcpy(&a, s + i, 8);
				memcpy(&b, s1 + i, 8);
				memcpy(&d, s2 + i, 8);
				c = __builtin_ia32_crc32di(c, a);
				c1 = __builtin_ia32_crc32di(c1, b);
				c2 = __builtin_ia32_crc32di(c2, d);
			}
			/* Registers are linear: stream 0's state moves over the
			 * 2*STREAM bytes after it, stream 1's over STREAM. */
			c = multmodp(shift2, (uint32_t)c) ^ multmodp(shift1, (uint32_t)c1) ^ (uint32_t)c2;
			s += 3 * STREAM;
			n -= 3 * STREAM;
		}
	}
	while (n >= 8) {
		uint64_t a;
		memcpy(&a, s, 8);
		c = __builtin_ia32_crc32di(c, a);
		s += 8;
		n -= 8;
	}
	while (n--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *s++);
	return ~(uint32_t)c;
}
#endif

uint32_t
crc32c(uint32_t crc, const void *p, size_t n)
{
#if defined(__x86_64__)
	static int have_hw = -1;
	int h = __atomic_load_n(&have_hw, __ATOMIC_RELAXED);
	if (h < 0) {
		__builtin_cpu_init();
		h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
		__atomic_store_n(&have_hw, h, __ATOMIC_RELAXED);
	}
	if (h)
		return crc32c_hw(crc, p, n);
#endif
	return crc32c_sw(crc, p, n);
}
