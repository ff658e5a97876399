/*
 * s3_relay.c: relays one S3 request, as the client sent it, to another
 * worker's gateway, and that worker's answer back to the client (s3_relay.h).
 * The gateway uses it for the requests of a multipart upload another
 * worker of the cluster holds (mpu.h: an upload lives where it was
 * created), so a client behind a load balancer can send each request of
 * an upload to any worker.
 *
 * Nothing is trusted on the way: the request line, every end-to-end header
 * (Host and the signature's included) and the body go unchanged, and the
 * peer checks the client's signature and body as if the client had come
 * to it.  Only hop-by-hop headers (Connection, Transfer-Encoding, ...) are
 * the relay's own.  The body streams (http_body_read: a chunked one is
 * sent chunked), as does the answer, so Complete's whitespace keep-alive
 * reaches the client as the peer sends it.
 *
 * Threads: the request thread; one transfer, on a handle of its own, no
 * shared state.  Memory: the answer's head (at most RELAY_HEAD_MAX bytes)
 * and libcurl's buffers; the body is never held whole.
 */
#include "s3_relay.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/curl_errno.h"
#include "../common/curl_pool.h"
#include "../common/dbuf.h"
#include "../common/util.h"

#define RELAY_HEAD_MAX (16u << 10)
#define RELAY_CONNECT_MS 2000L
/* No byte either way for this long: the peer is gone.  (Its Complete sends
 * a space every 5 s while it writes, far below any "speed" curl's own
 * low-speed limit could check, so the stall is watched here.) */
#define RELAY_STALL_MS 60000

struct relay {
	struct http_conn *c;
	struct dbuf head;  /* the answer's headers to pass, as lines */
	int status;
	int64_t clen;      /* the answer's Content-Length, or -1 */
	int started;       /* the client's answer has begun */
	int client_gone;
	int head_too_big;
	int body_err;      /* reading the client's body failed: -errno */
	int stalled;
	curl_off_t moved;  /* bytes up and down so far */
	int64_t moved_ms;  /* when that last grew */
};

/* Hop-by-hop, or made by http_resp_start: never passed either way. */
static int
own_header(const char *n, size_t l)
{
	static const char *const own[] = {"connection", "keep-alive",
	    "proxy-connection", "transfer-encoding", "te", "upgrade",
	    "content-length", "expect", "trailer", "date", "server",
	    "x-ferry-relayed"};
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		if (strlen(own[i]) == l && !strncasecmp(n, own[i], l))
			return 1;
	return 0;
}

static size_t
on_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct relay *r = arg;
	size_t len = sz * nm, l = len;
	while (l > 0 && (p[l - 1] == '\r' || p[l - 1] == '\n'))
		l--;
	if (l >= 5 && !memcmp(p, "HTTP/", 5)) {
		/* A status line (a 100 Continue's comes first): a new head. */
		const char *sp = memchr(p, ' ', l);
		r->status = sp ? atoi(sp + 1) : 0;
		r->clen = -1;
		dbuf_reset(&r->head);
		return len;
	}
	const char *colon = memchr(p, ':', l);
	if (!colon || colon == p)
		return len; /* the blank line that ends the head */
	size_t nl = (size_t)(colon - p);
	const char *v = colon + 1;
	while (v < p + l && (*v == ' ' || *v == '\t'))
		v++;
	size_t vl = (size_t)(p + l - v);
	if (nl == 14 && !strncasecmp(p, "content-length", 14)) {
		char num[24];
		snprintf(num, sizeof(num), "%.*s", (int)(vl < 23 ? vl : 23), v);
		char *end;
		long long n = strtoll(num, &end, 10);
		r->clen = end != num && !*end && n >= 0 ? n : -1;
	}
	if (own_header(p, nl))
		return len;
	dbuf_add(&r->head, p, nl);
	dbuf_adds(&r->head, ": ");
	dbuf_add(&r->head, v, vl);
	dbuf_adds(&r->head, "\r\n");
	return len;
}

static int
on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt;
	(void)ut;
	struct relay *r = arg;
	int64_t t = now_ms();
	if (dn + un != r->moved) {
		r->moved = dn + un;
		r->moved_ms = t;
	} else if (t - r->moved_ms > RELAY_STALL_MS) {
		r->stalled = 1;
		return 1; /* aborts the transfer */
	}
	return 0;
}

static int
start(struct relay *r)
{
	if (r->started)
		return 0;
	if (dbuf_error(&r->head)) {
		r->head_too_big = 1;
		return -E2BIG;
	}
	r->started = 1;
	return http_resp_start(r->c, r->status, r->head.p ? r->head.p : "", r->clen);
}

static size_t
on_body(char *p, size_t sz, size_t nm, void *arg)
{
	struct relay *r = arg;
	size_t len = sz * nm;
	if (start(r) < 0 || (len > 0 && http_resp_body(r->c, p, len) < 0)) {
		r->client_gone = 1;
		return 0; /* stops the transfer */
	}
	return len;
}

static size_t
on_read(char *buf, size_t sz, size_t nm, void *arg)
{
	struct relay *r = arg;
	ssize_t n = http_body_read(r->c, buf, sz * nm);
	if (n < 0) {
		r->body_err = (int)n;
		return CURL_READFUNC_ABORT;
	}
	return (size_t)n;
}

int
s3_relay_target_ok(const struct http_request *req)
{
	for (size_t i = 0; i < req->target_len; i++) {
		unsigned char ch = (unsigned char)req->target[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '#')
			return 0;
	}
	return 1;
}

int
s3_relay(struct http_conn *c, const struct http_request *req,
    const char *addr, int *status, char *why, size_t whylen)
{
	*status = 0;
	why[0] = 0;
	if (curl_ready() < 0) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	CURL *h = curl_easy_init();
	struct relay r = {.c = c, .clen = -1};
	dbuf_init(&r.head, RELAY_HEAD_MAX);
	struct dbuf url, line;
	dbuf_init(&url, 64 + req->target_len + strlen(addr));
	dbuf_init(&line, 16u << 10);
	struct curl_slist *hl = NULL;
	int ok = h != NULL;
	dbuf_printf(&url, "http://%s%.*s", addr, (int)req->target_len, req->target);
	for (int i = 0; ok && i < req->nheaders; i++) {
		const struct http_header *x = &req->headers[i];
		if (own_header(x->name, x->name_len))
			continue;
		dbuf_reset(&line);
		/* "Name;" is how curl is told to send a header with no value. */
		if (x->value_len == 0)
			dbuf_printf(&line, "%.*s;", (int)x->name_len, x->name);
		else
			dbuf_printf(&line, "%.*s: %.*s", (int)x->name_len, x->name,
			    (int)x->value_len, x->value);
		struct curl_slist *n = dbuf_error(&line) ? NULL :
		    curl_slist_append(hl, line.p);
		ok = n != NULL;
		hl = n ? n : hl;
	}
	/* A body is whatever the client framed as one, empty included (an
	 * empty part's Content-Length: 0 must reach the peer). */
	int body = req->content_length >= 0 || req->chunked;
	struct curl_slist *n;
	static const char *const mine[] = {"Expect:", "Accept:", RELAY_MARK ": 1"};
	for (size_t i = 0; ok && i < sizeof(mine) / sizeof(mine[0]); i++) {
		if ((n = curl_slist_append(hl, mine[i])))
			hl = n;
		else
			ok = 0;
	}
	if (ok && body && req->content_length < 0) {
		if ((n = curl_slist_append(hl, "Transfer-Encoding: chunked")))
			hl = n;
		else
			ok = 0;
	}
	if (!ok || dbuf_error(&url)) {
		snprintf(why, whylen, "out of memory");
		curl_slist_free_all(hl);
		if (h)
			curl_easy_cleanup(h);
		dbuf_free(&url);
		dbuf_free(&line);
		dbuf_free(&r.head);
		return -ENOMEM;
	}
	char method[16];
	snprintf(method, sizeof(method), "%.*s", (int)req->method_len, req->method);
	char ebuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(h, CURLOPT_URL, url.p);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* the target as signed */
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, RELAY_CONNECT_MS);
	r.moved_ms = now_ms();
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &r);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	if (body) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &r);
		if (req->content_length >= 0)
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
			    (curl_off_t)req->content_length);
	}
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method); /* the client's */
	CURLcode rc = curl_easy_perform(h);
	int err = 0;
	if (rc == CURLE_OK) {
		if (start(&r) < 0 || http_resp_end(c) < 0)
			r.client_gone = 1;
	} else if (r.body_err) {
		err = r.body_err; /* the client's body broke off */
		snprintf(why, whylen, "the client's body: %s", strerror(-err));
	} else if (r.head_too_big) {
		err = -EPROTO;
		snprintf(why, whylen, "its answer's head is over %u bytes", RELAY_HEAD_MAX);
	} else if (r.stalled) {
		err = -ETIMEDOUT;
		snprintf(why, whylen, "nothing moved for %d s", RELAY_STALL_MS / 1000);
	} else if (!r.client_gone) {
		err = curl_errno(h, rc);
		snprintf(why, whylen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
	}
	if (r.started && (err || r.client_gone))
		http_conn_set_close(c); /* cut short: the client sees it */
	*status = r.started ? r.status : 0;
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	dbuf_free(&url);
	dbuf_free(&line);
	dbuf_free(&r.head);
	if (r.started)
		return 0;
	return err ? err : -EIO;
}
