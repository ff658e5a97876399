/*
 * s3_metrics.h: the S3 gateway's request counters and latency histograms,
 * by operation, rendered on the control address's /metrics.  Updated with
 * relaxed atomics from any connection thread; no locks.
 */
#ifndef FERRY_S3_METRICS_H
#define FERRY_S3_METRICS_H

#include <stdint.h>

#include "../common/dbuf.h"
#include "s3_route.h"

void s3_metrics_observe(enum s3_op op, int64_t elapsed_ns, int status);
const char *s3_op_name(enum s3_op op);
int s3_metrics_render(struct dbuf *b);

#endif
