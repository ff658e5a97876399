/*
 * s3_metrics.c: S3 gateway counters (see s3_metrics.h).  Writers are the
 * gateway's connection threads (relaxed atomic adds); the renderer reads
 * each value once, so a scrape needs no lock.
 */
#include "s3_metrics.h"

#include <inttypes.h>

#include "../worker/metrics.h"

static struct {
	int64_t requests[S3OP__N];
	int64_t errors[S3OP__N]; /* 4xx and 5xx answers */
	int64_t hist[S3OP__N][METRICS_NBUCKETS + 1]; /* last: +Inf */
	int64_t sum_us[S3OP__N];
} g_s3;

static const char *const s3_op_names[S3OP__N] = {"ListBuckets", "HeadBucket",
    "GetBucketLocation", "ListObjects", "ListObjectsV2", "HeadObject",
    "GetObject", "GetBucketAcl", "GetObjectAcl", "PutObject", "CopyObject",
    "DeleteObject", "DeleteObjects", "CreateMultipartUpload", "UploadPart",
    "UploadPartCopy", "CompleteMultipartUpload", "AbortMultipartUpload",
    "ListParts", "ListMultipartUploads", "GetBucketConfiguration", "Other"};

#define ADD(field, n) __atomic_fetch_add(&g_s3.field, (n), __ATOMIC_RELAXED)
#define GET(field) __atomic_load_n(&g_s3.field, __ATOMIC_RELAXED)

const char *
s3_op_name(enum s3_op op)
{
	return (unsigned)op < S3OP__N ? s3_op_names[op] : "Other";
}

void
s3_metrics_observe(enum s3_op op, int64_t elapsed_ns, int status)
{
	if ((unsigned)op >= S3OP__N)
		op = S3OP_OTHER;
	int64_t us = elapsed_ns / 1000;
	ADD(hist[op][metrics_bucket(us)], 1);
	ADD(sum_us[op], us);
	ADD(requests[op], 1);
	if (status >= 400)
		ADD(errors[op], 1);
}

int
s3_metrics_render(struct dbuf *b)
{
	dbuf_printf(b, "# HELP ferry_s3_requests_total S3 gateway requests, by operation.\n# TYPE ferry_s3_requests_total counter\n");
	for (int op = 0; op < S3OP__N; op++)
		dbuf_printf(b, "ferry_s3_requests_total{op=\"%s\"} %" PRId64 "\n", s3_op_names[op], GET(requests[op]));
	dbuf_printf(b, "# HELP ferry_s3_errors_total S3 gateway requests answered with an error, by operation.\n# TYPE ferry_s3_errors_total counter\n");
	for (int op = 0; op < S3OP__N; op++)
		dbuf_printf(b, "ferry_s3_errors_total{op=\"%s\"} %" PRId64 "\n", s3_op_names[op], GET(errors[op]));
	dbuf_printf(b, "# HELP ferry_s3_request_duration_seconds S3 gateway request latency, by operation.\n# TYPE ferry_s3_request_duration_seconds histogram\n");
	for (int op = 0; op < S3OP__N; op++) {
		int64_t cum = 0;
		for (int i = 0; i < METRICS_NBUCKETS; i++) {
			cum += GET(hist[op][i]);
			dbuf_printf(b, "ferry_s3_request_duration_seconds_bucket{op=\"%s\",le=\"%g\"} %" PRId64 "\n",
			    s3_op_names[op], (double)metrics_bucket_us[i] / 1e6, cum);
		}
		cum += GET(hist[op][METRICS_NBUCKETS]);
		dbuf_printf(b, "ferry_s3_request_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"} %" PRId64 "\n", s3_op_names[op], cum);
		dbuf_printf(b, "ferry_s3_request_duration_seconds_sum{op=\"%s\"} %.6f\n", s3_op_names[op], (double)GET(sum_us[op]) / 1e6);
		dbuf_printf(b, "ferry_s3_request_duration_seconds_count{op=\"%s\"} %" PRId64 "\n", s3_op_names[op], cum);
	}
	return dbuf_error(b);
}
