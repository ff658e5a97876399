/*
 * crc.h: the CRCs S3 checksums use besides CRC32C (crc32c.h): CRC-32 as
 * zlib and x-amz-checksum-crc32 compute it (IEEE 802.3, reflected
 * 0xEDB88320) and CRC-64/NVME (x-amz-checksum-crc64nvme, reflected
 * 0x9A6C9329AC4BC9B5).  Both incremental: pass the previous result (0 to
 * start) to extend.  Thread-safe, pure.
 */
#ifndef FERRY_CRC_H
#define FERRY_CRC_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32_ieee(uint32_t crc, const void *p, size_t n);
uint64_t crc64_nvme(uint64_t crc, const void *p, size_t n);

#endif
