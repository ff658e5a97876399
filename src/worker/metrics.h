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

#define METRICS_NBUCKETS 16

struct metrics {
	int64_t hit_bytes;      /* served from page files */
	int64_t miss_bytes;     /* served, not in the cache when a client asked */
	int64_t readahead_bytes; /* fetched beyond what clients asked */
	int64_t load_bytes;      /* read from under-stores by load jobs */
	int64_t put_bytes;       /* written by clients (objput) */
	int64_t puts[3];         /* objects written, by write mode (enum mount_write) */
	int64_t meta_hits, meta_misses;
	int64_t meta_stale; /* answers served stale because the UFS failed */
};

extern struct metrics g_metrics;

#define METRIC_ADD(field, n) __atomic_fetch_add(&g_metrics.field, (n), __ATOMIC_RELAXED)
#define METRIC_GET(field) __atomic_load_n(&g_metrics.field, __ATOMIC_RELAXED)

/* Latency histogram bucket bounds (us), shared by every histogram. */
extern const int64_t metrics_bucket_us[METRICS_NBUCKETS];
/* Bucket index of a latency. */
int metrics_bucket(int64_t us);
int metrics_render(struct dbuf *b, const struct pagestore_stats *ps);

#endif
