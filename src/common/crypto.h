/* crypto.h: SHA-256, HMAC-SHA256 and MD5 (OpenSSL libcrypto underneath). */
#ifndef FERRY_CRYPTO_H
#define FERRY_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

void sha256(const void *p, size_t n, unsigned char out[32]);
void sha256_hex(const void *p, size_t n, char out[65]);
void hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
    unsigned char out[32]);
/* MD5, for S3's Content-MD5 and ETags only (not for security). */
void md5_digest(const void *p, size_t n, unsigned char out[16]);
/* Constant-time comparison of n bytes; 0 if equal. */
int ct_memcmp(const void *a, const void *b, size_t n);

#endif
