/*
 * crypto.c: thin wrappers over OpenSSL's one-shot digest and HMAC calls.
 * Thread-safe (OpenSSL 3 one-shot APIs keep no shared mutable state).
 */
#include "crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "util.h"
#include "vas.h"

void
sha256(const void *p, size_t n, unsigned char out[32])
{
	SHA256(p, n, out);
}

void
sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char d[32];
	SHA256(p, n, d);
	hex_encode(d, 32, out);
}

void
hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
    unsigned char out[32])
{
	unsigned int len = 32;
	unsigned char *r = HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &len);
	VAS_ASSERT(r != NULL && len == 32);
}

void
md5_digest(const void *p, size_t n, unsigned char out[16])
{
	unsigned int len = 16;
	int ok = EVP_Digest(p, n, out, &len, EVP_md5(), NULL);
	VAS_ASSERT(ok == 1 && len == 16);
}

int
ct_memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	unsigned char d = 0;
	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return d != 0;
}
