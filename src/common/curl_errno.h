/*
 * curl_errno.h: one mapping from a finished libcurl transfer's error to a
 * negative errno, for every HTTP client in ferry (etcd, peers, libferry),
 * so "the other side is gone" reads the same everywhere: -ECONNREFUSED,
 * -EHOSTUNREACH, -ETIMEDOUT (also a progress callback's abort: a stall),
 * -ECONNRESET (cut mid-transfer), -EPROTO (not HTTP as we know it).
 */
#ifndef FERRY_CURL_ERRNO_H
#define FERRY_CURL_ERRNO_H

#include <curl/curl.h>

int curl_errno(CURL *h, CURLcode rc);

#endif
