/* crc32c.h: CRC32C (Castagnoli), hardware-accelerated on x86-64 SSE4.2. */
#ifndef FERRY_CRC32C_H
#define FERRY_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c(0, p, n) is the checksum of p[0..n); pass a previous result to extend. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);

#endif
