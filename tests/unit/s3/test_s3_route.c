/*
 * test_s3_route.c: S3 request routing (s3_route.c), path-style and
 * virtual-host style (--s3-domain): which Host names a bucket, the
 * longest domain winning, ports, case, trailing dots, IPv6 literals, the
 * whole path as the key, and the errors decided before any lookup.
 * Single-threaded.
 */
#include <stdio.h>
#include <string.h>

#include "http/http_parse.h"
#include "s3/s3_route.h"
#include "tap.h"

static const char *const domains[] = {"s3.localhost", "example.com",
    "s3.example.com"};

static char raw[8192];
static struct http_request req;

/* Routes "METHOD TARGET" with a Host (NULL: none). */
static int
route(struct s3_route *rt, const char *method, const char *target,
    const char *host, int ndomains)
{
	int n = snprintf(raw, sizeof(raw), "%s %s HTTP/1.1\r\n%s%s%s\r\n",
	    method, target, host ? "Host: " : "", host ? host : "",
	    host ? "\r\n" : "");
	if (http_parse_request(raw, (size_t)n, &req) != n)
		return -1;
	return s3_route_parse_vhost(&req, domains, ndomains, rt);
}

static int
is(const struct s3_route *rt, int vhost, const char *bucket, const char *key)
{
	int ok = rt->vhost == vhost && strcmp(rt->bucket, bucket) == 0 &&
	    rt->bucket_len == strlen(bucket) &&
	    (key ? rt->key && rt->key_len == strlen(key) &&
	    memcmp(rt->key, key, rt->key_len) == 0 : rt->key == NULL);
	if (!ok)
		fprintf(stderr, "  got vhost %d bucket '%s' key '%.*s'\n",
		    rt->vhost, rt->bucket, rt->key ? (int)rt->key_len : 6,
		    rt->key ? rt->key : "(none)");
	return ok;
}

TEST(virtual_host)
{
	struct s3_route rt;
	CHECK_EQ_INT(route(&rt, "GET", "/a/b%20c.txt", "data.s3.localhost:29998", 3), 0);
	CHECK(is(&rt, 1, "data", "a/b c.txt"));
	CHECK_EQ_INT(rt.op, S3OP_GET_OBJECT);
	CHECK_EQ_INT(rt.status, 0);
	s3_route_free(&rt);
	/* the bucket itself: list, head, location */
	route(&rt, "GET", "/?list-type=2&prefix=a", "data.s3.localhost", 3);
	CHECK(is(&rt, 1, "data", NULL));
	CHECK_EQ_INT(rt.op, S3OP_LIST_OBJECTS_V2);
	s3_route_free(&rt);
	route(&rt, "HEAD", "/", "Data.S3.LocalHost.:80", 3);
	CHECK(is(&rt, 1, "data", NULL));
	CHECK_EQ_INT(rt.op, S3OP_HEAD_BUCKET);
	s3_route_free(&rt);
	route(&rt, "GET", "/?location", "data.s3.localhost", 3);
	CHECK_EQ_INT(rt.op, S3OP_GET_BUCKET_LOCATION);
	s3_route_free(&rt);
	/* dots in the bucket; the longest domain wins */
	route(&rt, "GET", "/k", "my.bucket.s3.example.com", 3);
	CHECK(is(&rt, 1, "my.bucket", "k"));
	s3_route_free(&rt);
	route(&rt, "GET", "/k", "b.example.com", 3);
	CHECK(is(&rt, 1, "b", "k"));
	s3_route_free(&rt);
	/* the whole path is the key, whatever it looks like */
	route(&rt, "GET", "/other/dir/f", "data.s3.localhost", 3);
	CHECK(is(&rt, 1, "data", "other/dir/f"));
	s3_route_free(&rt);
	/* its errors: bad keys, a bucket name that cannot be a mount */
	route(&rt, "GET", "/a//b", "data.s3.localhost", 3);
	CHECK_EQ_INT(rt.status, 400);
	CHECK_EQ_STR(rt.code, "InvalidArgument");
	s3_route_free(&rt);
	route(&rt, "GET", "/k", "Bad_Name!.s3.localhost", 3);
	CHECK_EQ_INT(rt.status, 404);
	CHECK_EQ_STR(rt.code, "NoSuchBucket");
	s3_route_free(&rt);
	char longhost[200];
	memset(longhost, 'a', 70);
	snprintf(longhost + 70, sizeof(longhost) - 70, ".s3.localhost");
	route(&rt, "GET", "/k", longhost, 3);
	CHECK_EQ_INT(rt.status, 400);
	CHECK_EQ_STR(rt.code, "InvalidBucketName");
	CHECK(rt.pre_auth);
	s3_route_free(&rt);
}

TEST(path_style_otherwise)
{
	struct s3_route rt;
	static const char *const hosts[] = {
		"s3.localhost", "s3.localhost:29998", "127.0.0.1:29998",
		"[::1]:29998", "localhost", "data.other.test", "xs3.localhost",
		".s3.localhost", "data.s3.localhost:80x", NULL,
	};
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
		CHECK_EQ_INT(route(&rt, "GET", "/data/a/b", hosts[i], 3), 0);
		CHECK(is(&rt, 0, "data", "a/b"));
		s3_route_free(&rt);
	}
	/* without domains, every request is path-style */
	route(&rt, "GET", "/data/a", "data.s3.localhost", 0);
	CHECK(is(&rt, 0, "data", "a"));
	s3_route_free(&rt);
	CHECK_EQ_INT(s3_route_parse(&req, &rt), 0);
	CHECK(is(&rt, 0, "data", "a"));
	s3_route_free(&rt);
	route(&rt, "GET", "/", "s3.localhost", 3);
	CHECK_EQ_INT(rt.op, S3OP_LIST_BUCKETS);
	s3_route_free(&rt);
}

/* A request with headers: "METHOD TARGET", Host s3.localhost, extra lines. */
static int
route_h(struct s3_route *rt, const char *method, const char *target,
    const char *extra)
{
	int n = snprintf(raw, sizeof(raw), "%s %s HTTP/1.1\r\nHost: s3.localhost\r\n%s\r\n",
	    method, target, extra);
	if (http_parse_request(raw, (size_t)n, &req) != n)
		return -1;
	return s3_route_parse_vhost(&req, domains, 3, rt);
}

TEST(writes)
{
	struct s3_route rt;
	CHECK_EQ_INT(route_h(&rt, "PUT", "/data/a/b", ""), 0);
	CHECK_EQ_INT(rt.op, S3OP_PUT_OBJECT);
	CHECK_EQ_INT(rt.status, 0);
	CHECK(is(&rt, 0, "data", "a/b"));
	s3_route_free(&rt);
	route_h(&rt, "PUT", "/data/a/b", "x-amz-copy-source: /data/c\r\n");
	CHECK_EQ_INT(rt.op, S3OP_COPY_OBJECT);
	CHECK_EQ_INT(rt.status, 0);
	s3_route_free(&rt);
	route_h(&rt, "DELETE", "/data/a/b", "");
	CHECK_EQ_INT(rt.op, S3OP_DELETE_OBJECT);
	CHECK_EQ_INT(rt.status, 0);
	s3_route_free(&rt);
	route_h(&rt, "POST", "/data?delete", "");
	CHECK_EQ_INT(rt.op, S3OP_DELETE_OBJECTS);
	CHECK_EQ_INT(rt.status, 0);
	s3_route_free(&rt);
	/* a write key is checked as a read key is: nothing can leave the root */
	route_h(&rt, "PUT", "/data/a/../../etc/passwd", "");
	CHECK_EQ_INT(rt.status, 400);
	CHECK_EQ_STR(rt.code, "InvalidArgument");
	s3_route_free(&rt);
	route_h(&rt, "DELETE", "/data/a/%2e%2e/b", "");
	CHECK_EQ_INT(rt.status, 400);
	s3_route_free(&rt);
	/* buckets are mounts; the service root takes no writes */
	route_h(&rt, "PUT", "/data", "");
	CHECK_EQ_INT(rt.status, 501);
	CHECK(strstr(rt.msg, "ferry mount") != NULL);
	s3_route_free(&rt);
	route_h(&rt, "DELETE", "/data", "");
	CHECK_EQ_INT(rt.status, 501);
	s3_route_free(&rt);
	route_h(&rt, "PUT", "/", "");
	CHECK_EQ_INT(rt.status, 405);
	s3_route_free(&rt);
	/* multipart: each operation by its method and parameters */
	static const struct {
		const char *method, *target, *extra;
		int op;
	} mp[] = {
		{"POST", "/data/k?uploads", "", S3OP_CREATE_MPU},
		{"POST", "/data/k?uploads=", "", S3OP_CREATE_MPU},
		{"PUT", "/data/k?partNumber=1&uploadId=x", "", S3OP_UPLOAD_PART},
		{"PUT", "/data/k?uploadId=x&partNumber=2", "x-amz-copy-source: /data/a\r\n", S3OP_UPLOAD_PART_COPY},
		{"POST", "/data/k?uploadId=x", "", S3OP_COMPLETE_MPU},
		{"DELETE", "/data/k?uploadId=x", "", S3OP_ABORT_MPU},
		{"GET", "/data/k?uploadId=x", "", S3OP_LIST_PARTS},
		{"GET", "/data?uploads", "", S3OP_LIST_MPUS},
		{"GET", "/data?uploads&prefix=a", "", S3OP_LIST_MPUS},
	};
	for (size_t i = 0; i < sizeof(mp) / sizeof(mp[0]); i++) {
		route_h(&rt, mp[i].method, mp[i].target, mp[i].extra);
		CHECK_EQ_INT(rt.op, mp[i].op);
		CHECK_EQ_INT(rt.status, 0);
		s3_route_free(&rt);
	}
	/* ...and what is none of them is never taken for a plain write */
	static const char *const bad[][2] = {
		{"PUT", "/data/k?partNumber=1"},          /* no upload */
		{"PUT", "/data/k?uploadId=x"},            /* no part */
		{"POST", "/data/k?uploads&uploadId=x"},
		{"GET", "/data/k?partNumber=1"},          /* GetObject by part */
		{"GET", "/data/k?uploadId=x&partNumber=1"},
		{"PUT", "/data/k?partNumber=1&uploadId=x&tagging"},
		{"DELETE", "/data/k?uploads"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		route_h(&rt, bad[i][0], bad[i][1], "");
		CHECK_EQ_INT(rt.status, 501);
		CHECK(rt.op == S3OP_OTHER);
		s3_route_free(&rt);
	}
	/* what is not built yet says so */
	route_h(&rt, "PUT", "/data/k?tagging", "");
	CHECK_EQ_INT(rt.status, 501);
	CHECK(rt.op != S3OP_PUT_OBJECT);
	s3_route_free(&rt);
	route_h(&rt, "PUT", "/data/k?acl", "");
	CHECK_EQ_INT(rt.status, 501);
	CHECK(strstr(rt.msg, "ACL") != NULL);
	s3_route_free(&rt);
	route_h(&rt, "DELETE", "/data/k?versionId=3", "");
	CHECK_EQ_INT(rt.status, 501);
	s3_route_free(&rt);
	route_h(&rt, "POST", "/data/k", "");
	CHECK_EQ_INT(rt.status, 501);
	s3_route_free(&rt);
	route_h(&rt, "PATCH", "/data/k", "");
	CHECK_EQ_INT(rt.status, 405);
	s3_route_free(&rt);
}

TEST(bucket_configurations)
{
	struct s3_route rt;
	/* a GET of one configuration a mount never holds */
	route_h(&rt, "GET", "/data?policy", "");
	CHECK_EQ_INT(rt.status, 0);
	CHECK(rt.op == S3OP_GET_BUCKET_CONFIG);
	CHECK(rt.config && !strcmp(rt.config->code, "NoSuchBucketPolicy"));
	CHECK_EQ_INT(rt.config->status, 404);
	s3_route_free(&rt);
	route_h(&rt, "GET", "/data?versioning", "");
	CHECK(rt.op == S3OP_GET_BUCKET_CONFIG && rt.config->status == 200);
	CHECK(strstr(rt.config->doc, "<VersioningConfiguration") != NULL);
	s3_route_free(&rt);
	/* two at once, with another sub-resource, on a key, or a write:
	 * none of them is that request */
	static const char *const other[][2] = {
		{"GET", "/data?policy&cors"},
		{"GET", "/data?cors&versions"},
		{"GET", "/data/k?policy"},
		{"PUT", "/data?policy"},
		{"DELETE", "/data?cors"},
	};
	for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
		route_h(&rt, other[i][0], other[i][1], "");
		CHECK_EQ_INT(rt.status, 501);
		CHECK(rt.op != S3OP_GET_BUCKET_CONFIG);
		s3_route_free(&rt);
	}
	/* a HEAD is HeadBucket */
	route_h(&rt, "HEAD", "/data?policy", "");
	CHECK(rt.op != S3OP_GET_BUCKET_CONFIG);
	s3_route_free(&rt);
}

int
main(void)
{
	RUN(virtual_host);
	RUN(path_style_otherwise);
	RUN(writes);
	RUN(bucket_configurations);
	TAP_DONE();
}
