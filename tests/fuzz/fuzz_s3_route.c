// FUZZ_SOURCES: src/common/util.c src/common/dbuf.c src/common/crypto.c src/common/log.c src/http/http_parse.c src/http/http_range.c src/common/sigv4.c src/common/sigv4_verify.c src/s3/s3_route.c src/worker/namespace.c src/worker/mounts.c src/common/json.c src/ufs/ufs.c src/ufs/ufs_wb.c src/common/htab.c src/ufs/ufs_file.c src/ufs/ufs_file_snap.c src/ufs/ufs_s3.c src/common/curl_pool.c src/ufs/s3_listxml.c src/common/xml_scan.c src/common/suggest.c src/common/http_reply.c src/s3/sigv2.c
/*
 * fuzz_s3_route.c: libFuzzer harness for the S3 gateway's request handling
 * before any I/O: HTTP head parsing, S3 routing (bucket/key decoding, key
 * validation, operation choice), SigV4 and SigV2 verification (header and
 * presigned forms, the SigV2 string to sign) and Range parsing, path-style
 * and virtual-host style (s3_route_parse_vhost).  Invariants: no crash, no
 * leak, the decoded key never longer than the raw path, a routed key that
 * passed validation has no ".." segment, a bucket from the Host is a
 * lowercase part of it, and a request not in virtual-host style routes
 * exactly as path-style.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parse.h"
#include "http/http_range.h"
#include "s3/s3_route.h"
#include "common/sigv4.h"
#include "s3/sigv2.h"
#include "worker/namespace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *
secret_fn(void *arg, const char *ak)
{
	(void)arg;
	return strcmp(ak, "AKIDEXAMPLE") == 0 ? "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" : NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request req;
	int r = http_parse_request((const char *)data, size, &req);
	if (r <= 0)
		return 0;
	struct s3_route rt;
	if (s3_route_parse(&req, &rt) < 0)
		return 0;
	if (rt.key) {
		if (rt.key_len > req.path_len)
			abort();
		if (!rt.status && key_validate(rt.key, rt.key_len) != 0)
			abort();
		if (!rt.status && strstr(rt.key, "/../"))
			abort();
	}
	const char *msg = NULL;
	(void)sigv4_verify(&req, 1369353600, secret_fn, NULL, &msg);
	struct sigv4_info info;
	(void)sigv4_verify_region(&req, 1369353600, "us-east-1", secret_fn,
	    NULL, &msg, &info);
	if (sigv2_present(&req)) {
		int pre = 0;
		(void)sigv2_verify(&req, 1175024202, secret_fn, NULL, &msg, &pre);
	}
	struct dbuf sts;
	dbuf_init(&sts, 1 << 16);
	(void)sigv2_string_to_sign(&sts, &req, "Tue, 27 Mar 2007 19:36:42 GMT",
	    (int)(size & 1));
	dbuf_free(&sts);
	size_t rl;
	const char *rv = http_header_get(&req, "range", &rl);
	int64_t a = 0, b = 0;
	int pr = http_parse_range(rv, rl, 1000, &a, &b);
	if (pr == 1 && (a < 0 || b >= 1000 || a > b))
		abort();
	/* Virtual-host style: a bucket from the Host, the whole path the
	 * key; any other Host routes exactly as path-style. */
	static const char *const domains[] = {"s3.localhost", "localhost",
	    "s3.example.com"};
	struct s3_route vr;
	if (s3_route_parse_vhost(&req, domains, 3, &vr) == 0) {
		if (vr.vhost) {
			size_t hl;
			const char *h = http_header_get(&req, "host", &hl);
			if (!h || (!vr.status && vr.bucket_len == 0) ||
			    vr.bucket_len >= hl)
				abort();
			for (size_t i = 0; i < vr.bucket_len; i++)
				if (vr.bucket[i] >= 'A' && vr.bucket[i] <= 'Z')
					abort();
			if (vr.key && vr.key_len > req.path_len)
				abort();
			if (!vr.status && vr.key && key_validate(vr.key, vr.key_len) != 0)
				abort();
			if (sigv2_present(&req)) {
				int pre = 0;
				(void)sigv2_verify_vhost(&req, vr.bucket, 1175024202,
				    secret_fn, NULL, &msg, &pre);
			}
		} else if (vr.status != rt.status || vr.op != rt.op ||
		    strcmp(vr.bucket, rt.bucket) != 0 || (!vr.key) != (!rt.key) ||
		    (vr.key && (vr.key_len != rt.key_len ||
		    memcmp(vr.key, rt.key, rt.key_len) != 0))) {
			abort();
		}
		s3_route_free(&vr);
	}
	const char *pv;
	size_t pvl;
	if (http_query_get(req.query, req.query_len, "prefix", &pv, &pvl))
		(void)prefix_validate(pv, pvl);
	s3_route_free(&rt);
	return 0;
}
