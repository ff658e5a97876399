/*
 * metrics.c: Prometheus exposition of ferry's counters (see metrics.h).
 * Writers on any thread use relaxed atomic adds; the renderer reads each
 * value once, so a scrape is a consistent-enough snapshot without locks.
 */
#include "metrics.h"

#include <inttypes.h>

#include "../ufs/ufs.h"

struct metrics g_metrics;

/* Upper bounds of the latency buckets, in microseconds. */
const int64_t metrics_bucket_us[METRICS_NBUCKETS] = {100, 250, 500, 1000, 2500,
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
    5000000, 10000000};

int
metrics_bucket(int64_t us)
{
	int b = 0;
	while (b < METRICS_NBUCKETS && us > metrics_bucket_us[b])
		b++;
	return b;
}

#define COUNTER(b, name, help, val)                                           \
	dbuf_printf(b, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %" PRId64 "\n", (int64_t)(val))
#define GAUGE(b, name, help, val)                                             \
	dbuf_printf(b, "# HELP " name " " help "\n# TYPE " name " gauge\n" name " %" PRId64 "\n", (int64_t)(val))

int
metrics_render(struct dbuf *b, const struct pagestore_stats *ps)
{
	COUNTER(b, "ferry_cache_hit_bytes_total", "Bytes served that were in the page cache before a client asked for them.", METRIC_GET(hit_bytes));
	COUNTER(b, "ferry_cache_miss_bytes_total", "Bytes served that were not in the page cache when a client asked for them (fetched on demand or just ahead of the client).", METRIC_GET(miss_bytes));
	COUNTER(b, "ferry_put_bytes_total", "Bytes of objects written by clients.", METRIC_GET(put_bytes));
	dbuf_printf(b, "# HELP ferry_put_requests_total Objects written by clients, by write mode.\n"
	    "# TYPE ferry_put_requests_total counter\n"
	    "ferry_put_requests_total{mode=\"through\"} %" PRId64 "\nferry_put_requests_total{mode=\"around\"} %" PRId64 "\n"
	    "ferry_put_requests_total{mode=\"back\"} %" PRId64 "\n",
	    METRIC_GET(puts[0]), METRIC_GET(puts[1]), METRIC_GET(puts[2]));
	COUNTER(b, "ferry_load_bytes_total", "Bytes load jobs (ferry load) read into the cache.", METRIC_GET(load_bytes));
	COUNTER(b, "ferry_readahead_bytes_total", "Bytes fetched from under-stores beyond what clients asked (read-ahead).", METRIC_GET(readahead_bytes));
	ufs_metrics_render(b);
	ufs_wb_metrics_render(b);
	COUNTER(b, "ferry_metadata_cache_hits_total", "Stat and list answers served from the metadata cache.", METRIC_GET(meta_hits));
	COUNTER(b, "ferry_metadata_cache_misses_total", "Stat and list answers fetched from the under-store.", METRIC_GET(meta_misses));
	COUNTER(b, "ferry_metadata_stale_total", "Expired stat and list answers served again because the under-store failed (stale-if-error).", METRIC_GET(meta_stale));
	GAUGE(b, "ferry_cache_used_bytes", "Bytes used by cached pages on disk.", ps->used_bytes);
	GAUGE(b, "ferry_cache_capacity_bytes", "Configured page cache capacity.", ps->capacity_bytes);
	GAUGE(b, "ferry_cache_pages", "Pages in the cache.", ps->pages);
	COUNTER(b, "ferry_cache_evicted_bytes_total", "Bytes evicted from the page cache.", ps->evicted_bytes_total);
	COUNTER(b, "ferry_page_checksum_failures_total", "Pages dropped because a chunk's checksum or the header did not match.", ps->checksum_failures_total);
	COUNTER(b, "ferry_scrub_bytes_total", "Page data bytes the scrubber checked.", ps->scrub_bytes_total);
	COUNTER(b, "ferry_pages_converted_total", "Pages of the old format (one CRC per page) rewritten in the chunked one.", ps->converted_total);
	GAUGE(b, "ferry_pinned_bytes", "Bytes of pinned pages (never evicted).", ps->pinned_bytes);
	GAUGE(b, "ferry_cached_objects", "Objects with pages in the cache.", ps->objects);
	COUNTER(b, "ferry_ttl_freed_bytes_total", "Bytes dropped at the end of their TTL.", ps->ttl_freed_bytes_total);
	COUNTER(b, "ferry_quota_evicted_bytes_total", "Bytes a mount evicted of its own to stay under its quota.", ps->quota_evicted_bytes_total);
	COUNTER(b, "ferry_cache_write_errors_total", "Pages that could not be written (disk full, read-only, I/O error).", ps->write_errors_total);

	return dbuf_error(b);
}
