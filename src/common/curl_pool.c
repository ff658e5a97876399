/*
 * curl_pool.c: idle curl easy handles (curl_pool.h), and libcurl's global
 * initialisation, done once per process before the first pool.  Any
 * thread; p->mu is held only to push or pop a handle.
 */
#include "curl_pool.h"

#include <errno.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int
curl_ready(void)
{
	pthread_once(&curl_once, curl_init_once);
	return curl_init_rc == CURLE_OK ? 0 : -ENOMEM;
}

int
curl_pool_init(struct curl_pool *p, int max)
{
	p->max = max < 0 ? 0 : max > CURL_POOL_MAX ? CURL_POOL_MAX : max;
	p->n = 0;
	pthread_mutex_init(&p->mu, NULL);
	return curl_ready();
}

void
curl_pool_destroy(struct curl_pool *p)
{
	for (int i = 0; i < p->n; i++)
		curl_easy_cleanup(p->h[i]);
	p->n = 0;
	pthread_mutex_destroy(&p->mu);
}

CURL *
curl_pool_get(struct curl_pool *p)
{
	CURL *h = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->n > 0)
		h = p->h[--p->n];
	pthread_mutex_unlock(&p->mu);
	if (h)
		curl_easy_reset(h); /* drops options, keeps its connection */
	else
		h = curl_easy_init();
	return h;
}

void
curl_pool_put(struct curl_pool *p, CURL *h, int reusable)
{
	if (!h)
		return;
	if (reusable) {
		pthread_mutex_lock(&p->mu);
		if (p->n < p->max) {
			p->h[p->n++] = h;
			h = NULL;
		}
		pthread_mutex_unlock(&p->mu);
	}
	if (h)
		curl_easy_cleanup(h);
}
