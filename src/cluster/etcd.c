/*
 * etcd.c: the etcd v3 client (see etcd.h), over etcd's JSON gateway
 * (grpc-gateway: POST /v3/<service>/<method>, keys and values base64,
 * int64 fields as JSON strings, zero/empty fields omitted).
 *
 * Threads: any thread.  Unary calls borrow a curl easy handle from the
 * struct's pool (e->mu guards only the pool) so keep-alive connections are
 * reused; a watch uses its own handle on a private multi handle for the
 * life of the stream, polled every ETCD_WATCH_POLL_MS so *stop is noticed
 * quickly.
 *
 * Invariants: every byte etcd sends lands in a bounded dbuf (ETCD_REPLY_MAX
 * for a reply, ETCD_WATCH_MSG_MAX for one watch message); a reply we cannot
 * make sense of is -EPROTO, never a crash.  Endpoints are tried in order
 * from the one that answered last; only failures that mean "this endpoint
 * did not take the request" (refused, unreachable, connect timeout, etcd
 * unavailable) move on to the next, so a call is sent to at most one etcd
 * that took it.
 *
 * The parsers of what etcd sends (unary replies, the watch stream) are the
 * etcd_parse_* / etcd_watch_* functions declared in etcd_parse.h: pure,
 * network-free, and what the transport below calls, so the fuzz harnesses
 * exercise the same code.
 */
#include "etcd.h"
#include "etcd_parse.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/curl_errno.h"
#include "../common/curl_pool.h"
#include "../common/dbuf.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

#define ETCD_MAX_ENDPOINTS 16
#define ETCD_POOL_MAX 8
#define ETCD_CONNECT_TIMEOUT_MS 1000L
#define ETCD_DEFAULT_TIMEOUT_MS 2000L
#define ETCD_REQ_MAX (ETCD_REPLY_MAX * 2) /* a request body, base64 */
#define ETCD_RANGE_PAGE 1000
#define ETCD_WATCH_POLL_MS 200

struct etcd {
	char *ep[ETCD_MAX_ENDPOINTS]; /* "http://host:port", no trailing '/' */
	int nep;
	int cur;         /* atomic: index of the endpoint that answered last */
	long timeout_ms; /* atomic */
	struct curl_pool pool; /* idle handles */
};

/* ------------------------------------------------------------------ */
/* Endpoints                                                            */

static int
addr_ok(const char *a, size_t n)
{
	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = a[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr(".-_:[]%", c))
			continue;
		return 0;
	}
	return 1;
}

static int
has_port(const char *a, size_t n)
{
	if (a[0] == '[') {
		const char *rb = memchr(a, ']', n);
		return rb && rb + 1 < a + n && rb[1] == ':';
	}
	const char *c = memchr(a, ':', n);
	return c && !memchr(c + 1, ':', (size_t)(a + n - c - 1));
}

static void
set_err(char **err, const char *fmt, const char *what, size_t n)
{
	if (!err)
		return;
	struct dbuf b;
	dbuf_init(&b, 1024);
	if (dbuf_printf(&b, fmt, (int)(n > 200 ? 200 : n), what) == 0)
		*err = dbuf_take(&b);
	dbuf_free(&b);
}

struct etcd *
etcd_open(const char *endpoints, char **err)
{
	if (err)
		*err = NULL;
	if (curl_ready() < 0) {
		set_err(err, "%.*s", "curl_global_init failed", 23);
		return NULL;
	}
	if (!endpoints || !*endpoints) {
		set_err(err, "%.*s", "no etcd endpoints given", 23);
		return NULL;
	}
	struct etcd *e = calloc(1, sizeof(*e));
	if (!e) {
		set_err(err, "%.*s", "out of memory", 13);
		return NULL;
	}
	e->timeout_ms = ETCD_DEFAULT_TIMEOUT_MS;
	curl_pool_init(&e->pool, ETCD_POOL_MAX);
	const char *s = endpoints;
	for (;;) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t)(comma - s) : strlen(s);
		const char *a = s;
		while (n && (*a == ' ' || *a == '\t')) {
			a++;
			n--;
		}
		while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
			n--;
		const char *scheme = "http://";
		if (n >= 7 && strncmp(a, "http://", 7) == 0) {
			a += 7;
			n -= 7;
		} else if (n >= 8 && strncmp(a, "https://", 8) == 0) {
			scheme = "https://";
			a += 8;
			n -= 8;
		}
		while (n && a[n - 1] == '/')
			n--;
		if (!addr_ok(a, n)) {
			set_err(err, "bad etcd endpoint \"%.*s\"", s,
			    comma ? (size_t)(comma - s) : strlen(s));
			goto fail;
		}
		if (e->nep == ETCD_MAX_ENDPOINTS) {
			set_err(err, "%.*s", "too many etcd endpoints", 23);
			goto fail;
		}
		struct dbuf b;
		dbuf_init(&b, 512);
		int r = dbuf_printf(&b, "%s%.*s%s", scheme, (int)n, a,
		    has_port(a, n) ? "" : ":2379");
		e->ep[e->nep] = r ? NULL : dbuf_take(&b);
		dbuf_free(&b);
		if (!e->ep[e->nep])
			goto fail;
		e->nep++;
		if (!comma)
			break;
		s = comma + 1;
	}
	return e;
fail:
	etcd_close(&e);
	return NULL;
}

void
etcd_close(struct etcd **ep)
{
	if (!ep || !*ep)
		return;
	struct etcd *e = *ep;
	curl_pool_destroy(&e->pool);
	for (int i = 0; i < e->nep; i++)
		free(e->ep[i]);
	free(e);
	*ep = NULL;
}

void
etcd_set_timeout(struct etcd *e, long ms)
{
	if (e && ms > 0)
		__atomic_store_n(&e->timeout_ms, ms, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */


/* gRPC status codes, as the gateway reports them in "code". */
static int
grpc_errno(int64_t code)
{
	switch (code) {
	case 3:  /* INVALID_ARGUMENT */
	case 9:  /* FAILED_PRECONDITION */
		return -EINVAL;
	case 4:  /* DEADLINE_EXCEEDED */
		return -ETIMEDOUT;
	case 5:  /* NOT_FOUND: lease not found */
		return -ENOENT;
	case 6:  /* ALREADY_EXISTS */
		return -EEXIST;
	case 7:  /* PERMISSION_DENIED */
	case 16: /* UNAUTHENTICATED */
		return -EACCES;
	case 8:  /* RESOURCE_EXHAUSTED: request too large */
		return -E2BIG;
	case 11: /* OUT_OF_RANGE: revision compacted */
		return -ECANCELED;
	case 14: /* UNAVAILABLE: no leader, shutting down */
		return -EAGAIN;
	default:
		return -EIO;
	}
}

/* Did the endpoint not take the request, so that another may? */
static int
try_next(int r, CURL *h)
{
	if (r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -EAGAIN)
		return 1;
	if (r == -ETIMEDOUT && h) {
		curl_off_t ct = 0;
		curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &ct);
		return ct == 0; /* never connected */
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* JSON helpers                                                         */

/* An int64 field (a JSON string of digits, or a number).  Missing gives 0
 * (proto3 leaves zero values out); present but not an integer, -EPROTO. */
static int
jint(const struct json_doc *d, int obj, const char *key, int64_t *out)
{
	*out = 0;
	int t = json_obj_get(d, obj, key);
	if (t < 0)
		return 0;
	const struct json_tok *k = &d->toks[t];
	if (k->type == JSON_NUMBER) {
		int ok = 0;
		*out = json_int(d, t, &ok);
		return ok ? 0 : -EPROTO;
	}
	if (k->type != JSON_STRING)
		return -EPROTO;
	const char *s = d->text + k->start;
	size_t n = (size_t)(k->end - k->start), i = 0;
	int neg = 0;
	if (n && s[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i == n || n - i > 19)
		return -EPROTO;
	uint64_t v = 0;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EPROTO;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > (uint64_t)INT64_MAX)
		return -EPROTO;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* Decodes a base64 string token into a malloc'd NUL-terminated buffer.  A
 * missing token (tok < 0) is the empty string. */
static int
jb64(const struct json_doc *d, int tok, char **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	const char *s = "";
	size_t sn = 0;
	char *unesc = NULL;
	if (tok >= 0) {
		const struct json_tok *k = &d->toks[tok];
		if (k->type != JSON_STRING)
			return -EPROTO;
		s = d->text + k->start;
		sn = (size_t)(k->end - k->start);
		if (memchr(s, '\\', sn)) { /* "\/" and friends: decode first */
			unesc = json_str(d, tok);
			if (!unesc)
				return -EPROTO;
			s = unesc;
			sn = strlen(unesc);
		}
	}
	char *buf = malloc(sn / 4 * 3 + 4);
	long m = buf ? b64_decode(s, sn, (unsigned char *)buf) : -1;
	free(unesc);
	if (!buf)
		return -ENOMEM;
	if (m < 0) {
		free(buf);
		return -EPROTO;
	}
	buf[m] = 0;
	*out = buf;
	*n = (size_t)m;
	return 0;
}

/* An error object in a 200 reply or a stream: {"error":"...","code":N} or
 * {"error":{"grpc_code":N,"message":"..."}}.  0 if there is none. */
int
etcd_reply_error(const struct json_doc *d, int obj)
{
	int et = json_obj_get(d, obj, "error");
	if (et < 0)
		return 0;
	int64_t code = 0;
	if (d->toks[et].type == JSON_OBJECT) {
		if (jint(d, et, "grpc_code", &code) != 0)
			return -EPROTO;
	} else if (d->toks[et].type == JSON_STRING) {
		if (d->toks[et].end == d->toks[et].start)
			return 0; /* "error":"" is no error */
		if (jint(d, obj, "code", &code) != 0)
			return -EPROTO;
	} else {
		return -EPROTO;
	}
	return grpc_errno(code);
}

/* ------------------------------------------------------------------ */
/* Unary calls                                                          */

struct sink {
	struct dbuf *b;
	int overflow;
};

static size_t
on_body(char *p, size_t sz, size_t n, void *u)
{
	struct sink *s = u;
	if (dbuf_add(s->b, p, sz * n) != 0) {
		s->overflow = 1;
		return 0;
	}
	return sz * n;
}

/* One POST to one endpoint; the reply body in *reply. */
static int
post_once(struct etcd *e, CURL *h, int ep, const char *path,
    const struct dbuf *body, struct dbuf *reply, long *status)
{
	char url[600];
	snprintf(url, sizeof(url), "%s%s", e->ep[ep], path);
	struct curl_slist *hdrs = NULL, *t;
	if (!(t = curl_slist_append(hdrs, "Expect:")))
		return -ENOMEM;
	hdrs = t;
	if (!(t = curl_slist_append(hdrs, "Content-Type: application/json"))) {
		curl_slist_free_all(hdrs);
		return -ENOMEM;
	}
	hdrs = t;
	struct sink s = {.b = reply};
	dbuf_reset(reply);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ETCD_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
	    __atomic_load_n(&e->timeout_ms, __ATOMIC_RELAXED));
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "ferry-etcd/1");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->p);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	*status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (s.overflow)
		return -E2BIG;
	if (rc != CURLE_OK)
		return curl_errno(h, rc);
	return 0;
}

/*
 * POSTs body to path, failing over across endpoints, and parses the reply
 * into *d (an object; its text is reply's, which outlives d).  A non-2xx
 * answer becomes its gRPC code's errno, as does a 2xx one carrying an
 * "error".
 */
static int
call(struct etcd *e, const char *path, const struct dbuf *body,
    struct dbuf *reply, struct json_doc *d)
{
	if (!body->p)
		return -ENOMEM;
	CURL *h = curl_pool_get(&e->pool);
	if (!h)
		return -ENOMEM;
	int start = __atomic_load_n(&e->cur, __ATOMIC_RELAXED);
	int r = -ECONNREFUSED;
	long status = 0;
	for (int i = 0; i < e->nep; i++) {
		int ep = (start + i) % e->nep;
		r = post_once(e, h, ep, path, body, reply, &status);
		if (r == 0 && status == 503)
			r = -EAGAIN;
		if (r == 0 || !try_next(r, h)) {
			if (r == 0 && ep != start)
				__atomic_store_n(&e->cur, ep, __ATOMIC_RELAXED);
			break;
		}
		LOG_DEBUG("etcd: %s%s: %s", e->ep[ep], path, strerror(-r));
	}
	curl_pool_put(&e->pool, h, 1);
	if (r != 0)
		return r;
	return etcd_parse_reply(reply->p ? reply->p : "", reply->len, status,
	    d);
}

int
etcd_parse_reply(const char *body, size_t len, long status,
    struct json_doc *d)
{
	size_t n = len;
	while (n && (body[n - 1] == '\n' || body[n - 1] == '\r' ||
	    body[n - 1] == ' '))
		n--;
	int pr = json_parse(d, body, n);
	if (pr == 0 && d->toks[0].type != JSON_OBJECT) {
		json_free(d);
		pr = -EPROTO;
	}
	if (pr != 0)
		return status >= 200 && status <= 299
		    ? (pr == -E2BIG ? -E2BIG : -EPROTO)
		    : (status == 404 ? -ENOENT : -EIO);
	int r = etcd_reply_error(d, 0);
	if (r == 0 && (status < 200 || status > 299))
		r = -EIO; /* an error reply without a code */
	if (r != 0)
		json_free(d);
	return r;
}

/* Appends "name":"<base64 of p[0..n)>". */
static int
add_b64(struct dbuf *b, const char *name, const void *p, size_t n)
{
	int r = dbuf_printf(b, "\"%s\":\"", name);
	if (r == 0)
		r = b64_encode(b, p, n);
	if (r == 0)
		r = dbuf_adds(b, "\"");
	return r;
}

/* ------------------------------------------------------------------ */
/* Leases                                                               */

int
etcd_lease_grant(struct etcd *e, int ttl_s, int64_t *lease_id)
{
	if (!e || ttl_s <= 0 || !lease_id)
		return -EINVAL;
	*lease_id = 0;
	struct dbuf body, reply;
	struct json_doc d;
	dbuf_init(&body, 256);
	dbuf_init(&reply, ETCD_REPLY_MAX);
	int r = dbuf_printf(&body, "{\"TTL\":\"%d\"}", ttl_s) ? -ENOMEM : 0;
	if (r == 0)
		r = call(e, "/v3/lease/grant", &body, &reply, &d);
	if (r == 0) {
		r = etcd_parse_lease_grant(&d, lease_id);
		json_free(&d);
	}
	dbuf_free(&body);
	dbuf_free(&reply);
	return r;
}

int
etcd_parse_lease_grant(const struct json_doc *d, int64_t *lease_id)
{
	int64_t id = 0;
	int r = jint(d, 0, "ID", &id);
	if (r == 0 && id == 0)
		r = -EPROTO;
	*lease_id = r == 0 ? id : 0;
	return r;
}

int
etcd_lease_keepalive(struct etcd *e, int64_t lease_id)
{
	if (!e || lease_id == 0)
		return -EINVAL;
	struct dbuf body, reply;
	struct json_doc d;
	dbuf_init(&body, 256);
	dbuf_init(&reply, ETCD_REPLY_MAX);
	int r = dbuf_printf(&body, "{\"ID\":\"%" PRId64 "\"}", lease_id)
	    ? -ENOMEM : 0;
	/* A streaming method: the gateway answers our one request with one
	 * message, {"result":{...}}, then ends the stream. */
	if (r == 0)
		r = call(e, "/v3/lease/keepalive", &body, &reply, &d);
	if (r == 0) {
		r = etcd_parse_keepalive(&d);
		json_free(&d);
	}
	dbuf_free(&body);
	dbuf_free(&reply);
	return r;
}

int
etcd_parse_keepalive(const struct json_doc *d)
{
	int res = json_obj_get(d, 0, "result");
	int64_t ttl = 0;
	int r;
	if (res < 0 || d->toks[res].type != JSON_OBJECT)
		r = -EPROTO;
	else if ((r = jint(d, res, "TTL", &ttl)) == 0 && ttl <= 0)
		r = -ENOENT; /* expired or revoked */
	return r;
}

int
etcd_lease_revoke(struct etcd *e, int64_t lease_id)
{
	if (!e || lease_id == 0)
		return -EINVAL;
	struct dbuf body, reply;
	struct json_doc d;
	dbuf_init(&body, 256);
	dbuf_init(&reply, ETCD_REPLY_MAX);
	int r = dbuf_printf(&body, "{\"ID\":\"%" PRId64 "\"}", lease_id)
	    ? -ENOMEM : 0;
	if (r == 0)
		r = call(e, "/v3/lease/revoke", &body, &reply, &d);
	if (r == 0)
		json_free(&d);
	dbuf_free(&body);
	dbuf_free(&reply);
	return r;
}

/* ------------------------------------------------------------------ */
/* Keys                                                                 */

/* Appends a PutRequest object. */
static int
put_request(struct dbuf *b, const char *key, const void *val, size_t n,
    int64_t lease_id)
{
	int r = dbuf_adds(b, "{");
	if (r == 0)
		r = add_b64(b, "key", key, strlen(key));
	if (r == 0)
		r = dbuf_adds(b, ",");
	if (r == 0)
		r = add_b64(b, "value", val, n);
	if (r == 0 && lease_id)
		r = dbuf_printf(b, ",\"lease\":\"%" PRId64 "\"", lease_id);
	if (r == 0)
		r = dbuf_adds(b, "}");
	return r;
}

int
etcd_put(struct etcd *e, const char *key, const void *val, size_t n,
    int64_t lease_id)
{
	if (!e || !key || !*key || (!val && n))
		return -EINVAL;
	struct dbuf body, reply;
	struct json_doc d;
	dbuf_init(&body, ETCD_REQ_MAX);
	dbuf_init(&reply, ETCD_REPLY_MAX);
	int r = put_request(&body, key, val ? val : "", n, lease_id)
	    ? -E2BIG : 0;
	if (r == 0)
		r = call(e, "/v3/kv/put", &body, &reply, &d);
	if (r == 0)
		json_free(&d);
	dbuf_free(&body);
	dbuf_free(&reply);
	return r;
}

int
etcd_create(struct etcd *e, const char *key, const void *val, size_t n,
    int64_t lease_id)
{
	if (!e || !key || !*key || (!val && n))
		return -EINVAL;
	struct dbuf body, reply;
	struct json_doc d;
	dbuf_init(&body, ETCD_REQ_MAX);
	dbuf_init(&reply, ETCD_REPLY_MAX);
	/* create_revision == 0: the key does not exist. */
	int r = dbuf_adds(&body, "{\"compare\":[{");
	if (r == 0)
		r = add_b64(&body, "key", key, strlen(key));
	if (r == 0)
		r = dbuf_adds(&body, ",\"target\":\"CREATE\",\"result\":"
		    "\"EQUAL\",\"create_revision\":\"0\"}],\"success\":["
		    "{\"request_put\":");
	if (r == 0)
		r = put_request(&body, key, val ? val : "", n, lease_id);
	if (r == 0)
		r = dbuf_adds(&body, "}]}");
	r = r ? -E2BIG : 0;
	if (r == 0)
		r = call(e, "/v3/kv/txn", &body, &reply, &d);
	if (r == 0) {
		r = etcd_parse_txn(&d);
		json_free(&d);
	}
	dbuf_free(&body);
	dbuf_free(&reply);
	return r;
}

int
etcd_parse_txn(const struct json_doc *d)
{
	return json_bool(d, json_obj_get(d, 0, "succeeded")) ? 0 : -EEXIST;
}

int
etcd_delete(struct etcd *e, const char *key)
{
	if (!e || !key || !*key)
		return -EINVAL;
	struct dbuf body, reply;
	struct json_doc d;
	dbuf_init(&body, ETCD_REQ_MAX);
	dbuf_init(&reply, ETCD_REPLY_MAX);
	int r = dbuf_adds(&body, "{");
	if (r == 0)
		r = add_b64(&body, "key", key, strlen(key));
	if (r == 0)
		r = dbuf_adds(&body, "}");
	r = r ? -E2BIG : 0;
	if (r == 0)
		r = call(e, "/v3/kv/deleterange", &body, &reply, &d);
	if (r == 0) {
		r = etcd_parse_delete(&d);
		json_free(&d);
	}
	dbuf_free(&body);
	dbuf_free(&reply);
	return r;
}

int
etcd_parse_delete(const struct json_doc *d)
{
	int64_t n = 0;
	int r = jint(d, 0, "deleted", &n);
	if (r == 0 && n == 0)
		r = -ENOENT;
	return r;
}

/* range_end for a prefix: the prefix with its last byte plus one, after
 * dropping trailing 0xff bytes; "\0" (every key) when nothing is left.
 * end must hold strlen(prefix) + 1 bytes; returns its length. */
static size_t
prefix_end(const char *prefix, char *end)
{
	size_t n = strlen(prefix);
	memcpy(end, prefix, n);
	while (n && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n == 0) {
		end[0] = 0;
		return 1;
	}
	end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
	return n;
}

int
etcd_range_prefix(struct etcd *e, const char *prefix, etcd_kv_fn fn,
    void *arg, int64_t *revision)
{
	if (!e || !prefix || !fn)
		return -EINVAL;
	size_t plen = strlen(prefix);
	char *end = malloc(plen + 1);
	char *from = malloc(plen + 1); /* the next page's first key */
	if (!end || !from) {
		free(end);
		free(from);
		return -ENOMEM;
	}
	size_t elen = prefix_end(prefix, end);
	size_t flen = plen;
	memcpy(from, prefix, plen);
	if (plen == 0) {
		from[0] = 0; /* key "\0" with range_end "\0": every key */
		flen = 1;
	}
	int64_t rev = 0;
	struct dbuf body, reply;
	dbuf_init(&body, ETCD_REQ_MAX);
	dbuf_init(&reply, ETCD_REPLY_MAX);
	int r = 0, more = 1;
	/* Pages of ETCD_RANGE_PAGE keys, all at the first page's revision, so
	 * the listing is one consistent snapshot and no page is so big that
	 * it runs into the JSON token limit. */
	while (r == 0 && more) {
		struct json_doc d;
		dbuf_reset(&body);
		r = dbuf_adds(&body, "{");
		if (r == 0)
			r = add_b64(&body, "key", from, flen);
		if (r == 0)
			r = dbuf_adds(&body, ",");
		if (r == 0)
			r = add_b64(&body, "range_end", end, elen);
		if (r == 0)
			r = dbuf_printf(&body, ",\"limit\":\"%d\"",
			    ETCD_RANGE_PAGE);
		if (r == 0 && rev)
			r = dbuf_printf(&body, ",\"revision\":\"%" PRId64 "\"",
			    rev);
		if (r == 0)
			r = dbuf_adds(&body, "}");
		r = r ? -E2BIG : 0;
		if (r == 0)
			r = call(e, "/v3/kv/range", &body, &reply, &d);
		if (r != 0)
			break;
		int64_t hrev = 0;
		r = etcd_parse_range(&d, prefix, plen, fn, arg, &hrev, &more,
		    &from, &flen);
		if (r == 0 && !rev)
			rev = hrev;
		json_free(&d);
	}
	if (r == 0 && revision)
		*revision = rev;
	dbuf_free(&body);
	dbuf_free(&reply);
	free(end);
	free(from);
	return r;
}

/* Byte-wise key order, etcd's. */
static int
key_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

int
etcd_parse_range(const struct json_doc *d, const char *prefix, size_t plen,
    etcd_kv_fn fn, void *arg, int64_t *revision, int *more, char **from,
    size_t *flen)
{
	int r = 0;
	int hdr = json_obj_get(d, 0, "header");
	int64_t hrev = 0;
	if (hdr < 0 || d->toks[hdr].type != JSON_OBJECT ||
	    jint(d, hdr, "revision", &hrev) != 0 || hrev <= 0)
		r = -EPROTO;
	*revision = r == 0 ? hrev : 0;
	*more = json_bool(d, json_obj_get(d, 0, "more"));
	int kvs = json_obj_get(d, 0, "kvs");
	int nkv = 0;
	if (r == 0 && kvs >= 0) {
		if (d->toks[kvs].type != JSON_ARRAY)
			r = -EPROTO;
		else
			nkv = d->toks[kvs].size;
	}
	if (r == 0 && *more && nkv == 0)
		r = -EPROTO; /* "more" but nothing to continue after */
	int el = kvs + 1;
	for (int i = 0; r == 0 && i < nkv; i++, el = d->toks[el].next) {
		char *k = NULL, *v = NULL;
		size_t kn = 0, vn = 0;
		if (d->toks[el].type != JSON_OBJECT)
			r = -EPROTO;
		if (r == 0)
			r = jb64(d, json_obj_get(d, el, "key"), &k, &kn);
		if (r == 0)
			r = jb64(d, json_obj_get(d, el, "value"), &v, &vn);
		if (r == 0 && (kn < plen || memcmp(k, prefix, plen)))
			r = -EPROTO; /* not what we asked for */
		/* Nor before the key the page starts at: then the next page
		 * starts past this one's, and a reply repeating the same page
		 * with "more" cannot keep the listing going round forever. */
		if (r == 0 && key_cmp(k, kn, *from, *flen) < 0)
			r = -EPROTO;
		if (r == 0)
			r = fn(arg, k, kn, v, vn);
		if (r == 0 && i == nkv - 1 && *more) {
			/* Next page: just after this key. */
			char *nf = realloc(*from, kn + 1);
			if (!nf) {
				r = -ENOMEM;
			} else {
				*from = nf;
				memcpy(nf, k, kn);
				nf[kn] = 0;
				*flen = kn + 1;
			}
		}
		free(k);
		free(v);
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* Watch                                                                */

/* An event's type.  proto3's JSON mapping gives an enum by name or by
 * number and leaves it out (or null) for the default, PUT; anything else
 * is -EPROTO rather than a guess: a DELETE taken for a PUT would keep a
 * dead key alive. */
static int
event_type(const struct json_doc *d, int ev, enum etcd_event_type *out)
{
	*out = ETCD_EV_PUT;
	int t = json_obj_get(d, ev, "type");
	if (t < 0 || d->toks[t].type == JSON_NULL)
		return 0;
	if (d->toks[t].type == JSON_NUMBER) {
		int ok = 0;
		int64_t v = json_int(d, t, &ok);
		if (!ok || (v != 0 && v != 1))
			return -EPROTO;
		*out = v == 1 ? ETCD_EV_DELETE : ETCD_EV_PUT;
		return 0;
	}
	char *s = json_str(d, t);
	int r = -EPROTO;
	if (s && strcmp(s, "PUT") == 0) {
		r = 0;
	} else if (s && strcmp(s, "DELETE") == 0) {
		*out = ETCD_EV_DELETE;
		r = 0;
	}
	free(s);
	return r;
}

/* One complete message of the stream. */
static void
watch_message(struct etcd_watch_parser *w)
{
	struct json_doc d;
	int r = json_parse(&d, w->msg.p, w->msg.len);
	if (r != 0) {
		w->r = r == -E2BIG ? -E2BIG : -EPROTO;
		w->done = 1;
		return;
	}
	int res = d.toks[0].type == JSON_OBJECT
	    ? json_obj_get(&d, 0, "result") : -1;
	if (res < 0 || d.toks[res].type != JSON_OBJECT) {
		r = d.toks[0].type == JSON_OBJECT ? etcd_reply_error(&d, 0) : 0;
		w->r = r ? r : -EPROTO;
		w->done = 1;
		json_free(&d);
		return;
	}
	if (json_bool(&d, json_obj_get(&d, res, "canceled"))) {
		int64_t crev = 0;
		jint(&d, res, "compact_revision", &crev);
		/* Compacted past start_rev: the caller must list again.  Any
		 * other cancel: resuming at *last_rev + 1 is fine. */
		w->r = crev > 0 ? -ECANCELED : -ECONNRESET;
		w->done = 1;
		json_free(&d);
		return;
	}
	int evs = json_obj_get(&d, res, "events");
	if (evs >= 0 && d.toks[evs].type != JSON_ARRAY) {
		w->r = -EPROTO;
		w->done = 1;
		json_free(&d);
		return;
	}
	int nev = evs >= 0 ? d.toks[evs].size : 0;
	int el = evs + 1;
	for (int i = 0; i < nev && !w->done; i++, el = d.toks[el].next) {
		struct etcd_event ev = {.type = ETCD_EV_PUT};
		char *k = NULL, *v = NULL;
		int kv = json_obj_get(&d, el, "kv");
		r = event_type(&d, el, &ev.type);
		if (r == 0 && (kv < 0 || d.toks[kv].type != JSON_OBJECT))
			r = -EPROTO;
		if (r == 0)
			r = jb64(&d, json_obj_get(&d, kv, "key"), &k, &ev.klen);
		if (r == 0)
			r = jb64(&d, json_obj_get(&d, kv, "value"), &v,
			    &ev.vlen);
		if (r == 0)
			r = jint(&d, kv, "mod_revision", &ev.mod_revision);
		if (r == 0 && ev.klen == 0)
			r = -EPROTO;
		if (r == 0) {
			ev.key = k;
			ev.val = v;
			if (ev.type == ETCD_EV_DELETE)
				ev.vlen = 0;
			int fr = w->fn(w->arg, &ev);
			if (w->last_rev && ev.mod_revision > *w->last_rev)
				*w->last_rev = ev.mod_revision;
			if (fr) {
				w->r = fr;
				w->done = 1;
			}
		} else {
			w->r = r;
			w->done = 1;
		}
		free(k);
		free(v);
	}
	json_free(&d);
}

void
etcd_watch_parser_init(struct etcd_watch_parser *w,
    int (*fn)(void *arg, const struct etcd_event *ev), void *arg,
    const volatile int *stop, int64_t *last_rev)
{
	memset(w, 0, sizeof(*w));
	dbuf_init(&w->msg, ETCD_WATCH_MSG_MAX);
	w->fn = fn;
	w->arg = arg;
	w->stop = stop;
	w->last_rev = last_rev;
}

void
etcd_watch_parser_free(struct etcd_watch_parser *w)
{
	dbuf_free(&w->msg);
}

/* Splits the stream into JSON objects (one per gateway message, however
 * the bytes were chunked) and hands each complete one on.  Only the
 * structure is tracked here (depth, strings, escapes); json_parse judges
 * each message whole. */
int
etcd_watch_feed(struct etcd_watch_parser *w, const char *p, size_t len)
{
	size_t start = 0;
	if (w->done)
		return 1;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		if (w->depth == 0) {
			if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
				start = i + 1;
				continue;
			}
			if (c != '{') {
				w->r = -EPROTO;
				w->done = 1;
				return 1;
			}
			start = i;
			w->depth = 1;
			continue;
		}
		if (w->in_str) {
			if (w->esc)
				w->esc = 0;
			else if (c == '\\')
				w->esc = 1;
			else if (c == '"')
				w->in_str = 0;
			continue;
		}
		if (c == '"') {
			w->in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++w->depth > ETCD_WATCH_DEPTH_MAX) {
				w->r = -EPROTO;
				w->done = 1;
				return 1;
			}
		} else if (c == '}' || c == ']') {
			if (--w->depth == 0) {
				if (dbuf_add(&w->msg, p + start, i + 1 - start)) {
					w->r = -E2BIG;
					w->done = 1;
					return 1;
				}
				watch_message(w);
				dbuf_reset(&w->msg);
				start = i + 1;
				if (!w->done && w->stop && *w->stop) {
					w->r = 0;
					w->done = 1;
				}
				if (w->done)
					return 1;
			}
		}
	}
	if (w->depth > 0 && dbuf_add(&w->msg, p + start, len - start)) {
		w->r = -E2BIG;
		w->done = 1;
		return 1;
	}
	return 0;
}

struct watch {
	struct etcd_watch_parser p;
	int got_data; /* some bytes came: the endpoint took the watch */
};

/* curl's write callback: 0 (abort the transfer) once the parser is done. */
static size_t
on_watch_body(char *p, size_t sz, size_t n, void *u)
{
	struct watch *w = u;
	w->got_data = 1;
	return etcd_watch_feed(&w->p, p, sz * n) ? 0 : sz * n;
}

/* One watch stream on endpoint ep.  *took: the endpoint answered. */
static int
watch_once(struct etcd *e, int ep, const struct dbuf *body, struct watch *w,
    int *took)
{
	*took = 0;
	char url[600];
	snprintf(url, sizeof(url), "%s/v3/watch", e->ep[ep]);
	CURL *h = curl_easy_init();
	CURLM *m = curl_multi_init();
	struct curl_slist *hdrs = NULL, *t;
	int r = 0;
	if (!h || !m)
		r = -ENOMEM;
	if (r == 0) {
		if ((t = curl_slist_append(hdrs, "Expect:")))
			hdrs = t;
		if (t && (t = curl_slist_append(hdrs,
		    "Content-Type: application/json")))
			hdrs = t;
		if (!t)
			r = -ENOMEM;
	}
	if (r == 0) {
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
		    ETCD_CONNECT_TIMEOUT_MS);
		/* No overall timeout: the stream lives as long as we want it;
		 * TCP keepalive finds a peer that vanished. */
		curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L);
		curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
		curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(h, CURLOPT_USERAGENT, "ferry-etcd/1");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_watch_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->p);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)body->len);
		if (curl_multi_add_handle(m, h) != CURLM_OK)
			r = -ENOMEM;
	}
	CURLcode rc = CURLE_OK;
	int stopped = 0;
	if (r == 0) {
		for (;;) {
			int running = 0;
			if (curl_multi_perform(m, &running) != CURLM_OK) {
				r = -EIO;
				break;
			}
			if (!running) {
				int left;
				CURLMsg *msg;
				while ((msg = curl_multi_info_read(m, &left)))
					if (msg->msg == CURLMSG_DONE)
						rc = msg->data.result;
				break;
			}
			if (w->p.stop && *w->p.stop) {
				stopped = 1;
				break;
			}
			/* Wakes on data or after ETCD_WATCH_POLL_MS, whichever
			 * first: that bounds how late *stop is seen. */
			if (curl_multi_poll(m, NULL, 0, ETCD_WATCH_POLL_MS,
			    NULL) != CURLM_OK) {
				r = -EIO;
				break;
			}
		}
		curl_multi_remove_handle(m, h);
	}
	long status = 0;
	if (h)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (r == 0) {
		if (w->p.done)
			r = w->p.r;
		else if (stopped)
			r = 0;
		else if (rc != CURLE_OK)
			r = curl_errno(h, rc);
		else
			r = -ECONNRESET; /* the stream ended: etcd went away */
	}
	*took = w->got_data || status != 0 || !try_next(r, h);
	curl_slist_free_all(hdrs);
	if (m)
		curl_multi_cleanup(m);
	if (h)
		curl_easy_cleanup(h);
	return r;
}

int
etcd_watch_prefix(struct etcd *e, const char *prefix, int64_t start_rev,
    int (*fn)(void *arg, const struct etcd_event *ev), void *arg,
    const volatile int *stop, int64_t *last_rev)
{
	if (!e || !prefix || !fn || start_rev < 0)
		return -EINVAL;
	size_t plen = strlen(prefix);
	char *end = malloc(plen + 1);
	if (!end)
		return -ENOMEM;
	size_t elen = prefix_end(prefix, end);
	struct dbuf body;
	dbuf_init(&body, ETCD_REQ_MAX);
	int r = dbuf_adds(&body, "{\"create_request\":{");
	if (r == 0)
		r = plen ? add_b64(&body, "key", prefix, plen)
			 : add_b64(&body, "key", "", 1);
	if (r == 0)
		r = dbuf_adds(&body, ",");
	if (r == 0)
		r = add_b64(&body, "range_end", end, elen);
	if (r == 0 && start_rev > 0)
		r = dbuf_printf(&body, ",\"start_revision\":\"%" PRId64 "\"",
		    start_rev);
	if (r == 0)
		r = dbuf_adds(&body, "}}");
	free(end);
	if (r != 0) {
		dbuf_free(&body);
		return -E2BIG;
	}
	int start = __atomic_load_n(&e->cur, __ATOMIC_RELAXED);
	r = -ECONNREFUSED;
	for (int i = 0; i < e->nep; i++) {
		int ep = (start + i) % e->nep;
		struct watch w = {.got_data = 0};
		etcd_watch_parser_init(&w.p, fn, arg, stop, last_rev);
		int took = 0;
		r = watch_once(e, ep, &body, &w, &took);
		etcd_watch_parser_free(&w.p);
		if (took) {
			if (ep != start)
				__atomic_store_n(&e->cur, ep, __ATOMIC_RELAXED);
			break;
		}
		if (stop && *stop) {
			r = 0;
			break;
		}
	}
	dbuf_free(&body);
	return r;
}
