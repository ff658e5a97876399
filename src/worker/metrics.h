/*
 * metrics.h: process-wide counters and histograms, rendered in Prometheus
 * text format on the control address's /metrics.  Updated with relaxed
 * atomics from any thread; no locks.
 */
#ifndef FERRY_METRICS_H
#define FERRY_METRICS_H

#include <stdint.h>

#include "../common/dbuf.h"
#include "../store/pagestore.h"

enum s3_op {
	S3OP_LIST_BUCKETS,
	S3OP_HEAD_BUCKET,
	S3OP_GET_BUCKET_LOCATION,
	S3OP_LIST_OBJECTS,
	S3OP_LIST_OBJECTS_V2,
	S3OP_HEAD_OBJECT,
	S3OP_GET_OBJECT,
	S3OP_OTHER,
	S3OP__N
};

enum ufs_op { UFSOP_STAT, UFSOP_LIST, UFSOP_READ, UFSOP__N };

#define METRICS_NBUCKETS 16

struct metrics {
	int64_t hit_bytes;      /* served from page files */
	int64_t miss_bytes;     /* served from bytes just fetched from the UFS */
	int64_t ufs_read_bytes; /* fetched from the UFS */
	int64_t ufs_requests[UFSOP__N];
	int64_t ufs_errors[UFSOP__N];
	int64_t meta_hits, meta_misses;
	int64_t s3_requests[S3OP__N];
	int64_t s3_errors[S3OP__N]; /* 4xx and 5xx answers */
	int64_t s3_hist[S3OP__N][METRICS_NBUCKETS + 1]; /* last: +Inf */
	int64_t s3_sum_us[S3OP__N];
};

extern struct metrics g_metrics;

#define METRIC_ADD(field, n) __atomic_fetch_add(&g_metrics.field, (n), __ATOMIC_RELAXED)
#define METRIC_GET(field) __atomic_load_n(&g_metrics.field, __ATOMIC_RELAXED)

void metrics_observe_s3(enum s3_op op, int64_t elapsed_ns, int status);
const char *s3_op_name(enum s3_op op);
int metrics_render(struct dbuf *b, const struct pagestore_stats *ps);

#endif
