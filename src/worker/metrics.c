/*
 * metrics.c: Prometheus exposition of ferry's counters (see metrics.h).
 * Writers on any thread use relaxed atomic adds; the renderer reads each
 * value once, so a scrape is a consistent-enough snapshot without locks.
 */
#include "metrics.h"

#include <inttypes.h>

struct metrics g_metrics;

/* Upper bounds of the latency buckets, in microseconds. */
static const int64_t bucket_us[METRICS_NBUCKETS] = {100, 250, 500, 1000, 2500,
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
    5000000, 10000000};

static const char *const s3_op_names[S3OP__N] = {"ListBuckets", "HeadBucket",
    "GetBucketLocation", "ListObjects", "ListObjectsV2", "HeadObject",
    "GetObject", "Other"};
static const char *const ufs_op_names[UFSOP__N] = {"stat", "list", "read"};

const char *
s3_op_name(enum s3_op op)
{
	return (unsigned)op < S3OP__N ? s3_op_names[op] : "Other";
}

void
metrics_observe_s3(enum s3_op op, int64_t elapsed_ns, int status)
{
	if ((unsigned)op >= S3OP__N)
		op = S3OP_OTHER;
	int64_t us = elapsed_ns / 1000;
	int b = 0;
	while (b < METRICS_NBUCKETS && us > bucket_us[b])
		b++;
	METRIC_ADD(s3_hist[op][b], 1);
	METRIC_ADD(s3_sum_us[op], us);
	METRIC_ADD(s3_requests[op], 1);
	if (status >= 400)
		METRIC_ADD(s3_errors[op], 1);
}

#define COUNTER(b, name, help, val)                                           \
	dbuf_printf(b, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %" PRId64 "\n", (int64_t)(val))
#define GAUGE(b, name, help, val)                                             \
	dbuf_printf(b, "# HELP " name " " help "\n# TYPE " name " gauge\n" name " %" PRId64 "\n", (int64_t)(val))

int
metrics_render(struct dbuf *b, const struct pagestore_stats *ps)
{
	COUNTER(b, "ferry_cache_hit_bytes_total", "Bytes served from the page cache.", METRIC_GET(hit_bytes));
	COUNTER(b, "ferry_cache_miss_bytes_total", "Bytes served that had to be fetched from the under-store.", METRIC_GET(miss_bytes));
	COUNTER(b, "ferry_ufs_read_bytes_total", "Bytes read from under-stores.", METRIC_GET(ufs_read_bytes));
	dbuf_printf(b, "# HELP ferry_ufs_requests_total Requests made to under-stores, by operation.\n# TYPE ferry_ufs_requests_total counter\n");
	for (int i = 0; i < UFSOP__N; i++)
		dbuf_printf(b, "ferry_ufs_requests_total{op=\"%s\"} %" PRId64 "\n", ufs_op_names[i], METRIC_GET(ufs_requests[i]));
	dbuf_printf(b, "# HELP ferry_ufs_errors_total Failed under-store requests, by operation.\n# TYPE ferry_ufs_errors_total counter\n");
	for (int i = 0; i < UFSOP__N; i++)
		dbuf_printf(b, "ferry_ufs_errors_total{op=\"%s\"} %" PRId64 "\n", ufs_op_names[i], METRIC_GET(ufs_errors[i]));
	COUNTER(b, "ferry_metadata_cache_hits_total", "Stat and list answers served from the metadata cache.", METRIC_GET(meta_hits));
	COUNTER(b, "ferry_metadata_cache_misses_total", "Stat and list answers fetched from the under-store.", METRIC_GET(meta_misses));
	GAUGE(b, "ferry_cache_used_bytes", "Bytes used by cached pages on disk.", ps->used_bytes);
	GAUGE(b, "ferry_cache_capacity_bytes", "Configured page cache capacity.", ps->capacity_bytes);
	GAUGE(b, "ferry_cache_pages", "Pages in the cache.", ps->pages);
	COUNTER(b, "ferry_cache_evicted_bytes_total", "Bytes evicted from the page cache.", ps->evicted_bytes_total);
	COUNTER(b, "ferry_page_checksum_failures_total", "Pages dropped because their checksum or header did not match.", ps->checksum_failures_total);
	COUNTER(b, "ferry_cache_write_errors_total", "Pages that could not be written (disk full, read-only, I/O error).", ps->write_errors_total);

	dbuf_printf(b, "# HELP ferry_s3_requests_total S3 gateway requests, by operation.\n# TYPE ferry_s3_requests_total counter\n");
	for (int op = 0; op < S3OP__N; op++)
		dbuf_printf(b, "ferry_s3_requests_total{op=\"%s\"} %" PRId64 "\n", s3_op_names[op], METRIC_GET(s3_requests[op]));
	dbuf_printf(b, "# HELP ferry_s3_errors_total S3 gateway requests answered with an error, by operation.\n# TYPE ferry_s3_errors_total counter\n");
	for (int op = 0; op < S3OP__N; op++)
		dbuf_printf(b, "ferry_s3_errors_total{op=\"%s\"} %" PRId64 "\n", s3_op_names[op], METRIC_GET(s3_errors[op]));
	dbuf_printf(b, "# HELP ferry_s3_request_duration_seconds S3 gateway request latency, by operation.\n# TYPE ferry_s3_request_duration_seconds histogram\n");
	for (int op = 0; op < S3OP__N; op++) {
		int64_t cum = 0;
		for (int i = 0; i < METRICS_NBUCKETS; i++) {
			cum += METRIC_GET(s3_hist[op][i]);
			dbuf_printf(b, "ferry_s3_request_duration_seconds_bucket{op=\"%s\",le=\"%g\"} %" PRId64 "\n",
			    s3_op_names[op], (double)bucket_us[i] / 1e6, cum);
		}
		cum += METRIC_GET(s3_hist[op][METRICS_NBUCKETS]);
		dbuf_printf(b, "ferry_s3_request_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"} %" PRId64 "\n", s3_op_names[op], cum);
		dbuf_printf(b, "ferry_s3_request_duration_seconds_sum{op=\"%s\"} %.6f\n", s3_op_names[op], (double)METRIC_GET(s3_sum_us[op]) / 1e6);
		int r = dbuf_printf(b, "ferry_s3_request_duration_seconds_count{op=\"%s\"} %" PRId64 "\n", s3_op_names[op], cum);
		if (r)
			return r;
	}
	return 0;
}
