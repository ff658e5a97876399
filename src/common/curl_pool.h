/*
 * curl_pool.h: idle libcurl easy handles kept for reuse, so keep-alive
 * connections live across requests and no handle is used by two threads at
 * once.  Every HTTP client in ferry (the s3:// backend, etcd, peers,
 * libferry) borrows from one of these.
 *
 * Thread-safety: one mutex per pool, a leaf, held only to push or pop.
 */
#ifndef FERRY_CURL_POOL_H
#define FERRY_CURL_POOL_H

#include <curl/curl.h>
#include <pthread.h>

#define CURL_POOL_MAX 64

struct curl_pool {
	pthread_mutex_t mu;
	int max; /* idle handles kept, at most CURL_POOL_MAX */
	int n;
	CURL *h[CURL_POOL_MAX];
};

/* 0, or -ENOMEM if libcurl could not be initialised (curl_global_init
 * runs once per process, here: no other code calls it). */
int curl_pool_init(struct curl_pool *p, int max);
/* libcurl's global init, once; 0 or -ENOMEM. */
int curl_ready(void);
/* Cleans up the idle handles (none may be borrowed any more). */
void curl_pool_destroy(struct curl_pool *p);
/* An idle handle with its options reset (its live connection kept), or a
 * new one; NULL when out of memory. */
CURL *curl_pool_get(struct curl_pool *p);
/* Gives h back; with reusable 0 (a transfer that failed half-way, whose
 * connection is suspect) or a full pool, it is cleaned up instead. */
void curl_pool_put(struct curl_pool *p, CURL *h, int reusable);

#endif
