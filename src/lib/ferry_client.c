/*
 * ferry_client.c: libferry, the C client of a worker's control API
 * (include/ferry.h), over HTTP/1.1 with libcurl easy handles.
 *
 * Threads: any number of application threads may share one ferry_t.  Each
 * call borrows a curl easy handle from the ferry_t's pool (curl_pool.c,
 * its own mutex) and gives it back afterwards, so keep-alive connections
 * are reused and no handle is ever used by two threads at once.  f->mu
 * guards the client's copy of the cluster (lc, lc_at_ms, refreshing) and
 * is never held across a request; the table of workers that failed lately
 * (suspects.c) has its own.  Error messages are per thread
 * (ferry_last_error).  All three mutexes are leaves.  A file written with
 * FERRY_CREATE_STREAM may run one thread of its own (struct fstream: its
 * PUT, sending the staged bytes as they are written); its mutex is a leaf
 * too, held only to hand over the written end or say end/cancel.
 *
 * Invariants: every byte the worker sends lands in a bounded place: JSON
 * replies in a dbuf capped at FERRY_JSON_MAX, error bodies in a dbuf
 * capped at FERRY_ERRBODY_MAX (excess dropped), data straight into the
 * caller's buffer, never past its length.  Functions return 0 / a count,
 * or a negative errno (ferry.h's convention); nothing here aborts on what
 * a peer sends.
 *
 * Error messages: each public call clears this thread's message first and
 * leaves in it, when it fails, the worker's JSON "error" (its own words:
 * the under-store's answer, the option it did not know) or what libferry
 * found itself (an address that is not a ferry control API); see
 * ferry_last_error().  Thread-local, so threads sharing a ferry_t do not
 * see each other's.
 */
#include "ferry.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/curl_errno.h"
#include "common/curl_pool.h"
#include "common/crypto.h"
#include "common/dbuf.h"
#include "common/http_reply.h"
#include "common/sigv4.h"
#include "common/json.h"
#include "common/util.h"
#include "cluster/placement.h"
#include "cluster/suspects.h"

#define FERRY_DEFAULT_WORKER "127.0.0.1:29999"
#define FERRY_DEFAULT_PORT "29999"
#define FERRY_JSON_MAX (16u << 20)     /* a JSON reply */
#define FERRY_ERRBODY_MAX (64u << 10)  /* the part of an error body kept */
#define FERRY_ERRMSG_MAX 1024          /* ferry_last_error()'s text */
#define FERRY_POOL_MAX 16              /* idle handles kept */
#define FERRY_LIST_PAGE 1000
/* Workers are near: one that takes this long to connect is down, and
 * the call moves on to the next. */
#define FERRY_CONNECT_TIMEOUT_MS 2000L
#define FERRY_JSON_TIMEOUT_MS 60000L
#define FERRY_DATA_TIMEOUT_MS 120000L
/* A worker that sends nothing for this long is dead. */
#define FERRY_STALL_MS 10000L
/* Big reads get extra time on top of FERRY_DATA_TIMEOUT_MS, at a floor of
 * this rate, so a large pread on a slow link is not cut off. */
#define FERRY_DATA_MIN_RATE (8u << 20)
/* A streamed upload's buffer (libcurl's, one per stream): the most of a
 * stream's body in this process's memory at once. */
#define FERRY_STREAM_BUF (512L << 10)
/* Streams at once per ferry_t; a file past this many stays staged until
 * one ends (its stream may start later: it reads from the start). */
#define FERRY_STREAMS_MAX 64
/* Cluster: how fresh the member list must be, how long a worker that
 * failed is avoided, and bounds on what /v1/cluster may hold. */
#define FERRY_LC_FRESH_MS 2000
#define FERRY_SUSPECT_MS 3000
#define FERRY_LC_MOUNTS 64
#define FERRY_LC_MEMBERS 1024
/* Internal: the worker answered 416 (range past the end). */
#define FERRY_ERANGE_416 (-ERANGE)

/*
 * The client's copy of the cluster (GET /v1/cluster): who the workers
 * are, so data reads go straight to the worker placement puts each block
 * on, and any call can move to another worker when one stops answering.
 * Immutable once published; reference-counted.
 */
struct lcluster {
	int refs; /* atomic */
	int64_t block_size;
	int nrep;
	struct {
		char name[64];
		int replicas;
	} rep[FERRY_LC_MOUNTS];
	char **base;            /* per member: "http://ctl" */
	struct cluster_view *v; /* ids, for placement */
};


struct ferry {
	char *base;  /* "http://host:port", no trailing slash */
	char *auth;  /* "Authorization: Bearer ..." or NULL */
	/* Without a token: the worker's S3 keys sign every call (SigV4), from
	 * $FERRY_S3_ACCESS_KEY, $FERRY_S3_SECRET_KEY ($FERRY_S3_REGION). */
	char *ak, *sk, *region;
	struct curl_pool pool; /* idle handles */
	pthread_mutex_t mu; /* guards lc, lc_at_ms, refreshing */
	struct lcluster *lc; /* NULL until fetched */
	int64_t lc_at_ms;    /* when it was (0: never) */
	int refreshing;
	struct suspects sus; /* workers that failed lately, by base URL */
	int streams;         /* atomic: stream threads running */
};

/* Where a response body goes. */
struct sink {
	CURL *h;
	struct dbuf *json;   /* 2xx JSON replies (NULL for data) */
	struct dbuf err;     /* non-2xx bodies, truncated */
	char *buf;           /* data: the caller's buffer */
	size_t len, got;
	int64_t off;         /* data: the offset asked for */
	int overflow;        /* the peer sent more than allowed */
	int full_ok;         /* 200 to a ranged read at 0: stopped when full */
	int64_t range_start; /* data: from Content-Range, -1 if none */
	int64_t last_ms;     /* when the worker last sent something */
	const char *want_etag; /* data: the version asked for, or NULL */
	int etag_seen;       /* data: an ETag header came (and matched) */
	int stale;           /* data: the ETag was another version's */
	char seen_etag[FERRY_ETAG_MAX]; /* data: the ETag answered */
	int foreign;         /* the answer is not a ferry worker's (FOREIGN_*) */
	struct upload *up;   /* a PUT of a staged file, or NULL */
	long status;         /* the last answer's HTTP status (0: none) */
};

/* The body of an upload: a staged file, read from the start on each try. */
struct upload {
	int fd;
	int64_t size, off;   /* size: -1 for a stream (chunked, st says) */
	const char *cond;    /* "If-None-Match: *" or NULL */
	int read_err;
	struct fstream *st;  /* a stream: the body follows the writer */
};

/*
 * A streamed upload (FERRY_CREATE_STREAM): a thread of the file's own
 * runs one PUT whose chunked body is read from the staged file up to
 * what the writer has written so far (avail), waiting for more, until
 * the writer says the end (fin) or gives up (cancel: the body is cut, so
 * the worker aborts the write and commits nothing).  mu is a leaf; the
 * writer holds it only to move avail or set fin/cancel.
 */
struct fstream {
	ferry_t *f;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct upload up;
	char *target;        /* "/v1/data?path=..." */
	int64_t avail;       /* mu: bytes of the staged file ready to send */
	int fin, cancel;     /* mu: the body ends at avail / is abandoned
			      * (cancel also read atomically by on_progress) */
	int64_t fin_ms;      /* when fin was set (atomic) */
	int done;            /* the thread is finished (atomic) */
	/* The thread's result, read after the join: */
	int r;
	long status;         /* the worker's HTTP status; 0: none came */
	struct ferry_stat st;
	char err[FERRY_ERRMSG_MAX];
};

/* A stream's body: the next staged bytes once the writer has made them;
 * 0 (the last chunk) after fin; an abort when cancelled. */
static size_t
stream_read(struct upload *u, char *p, size_t n)
{
	struct fstream *st = u->st;
	pthread_mutex_lock(&st->mu);
	while (!st->cancel && !st->fin && u->off >= st->avail)
		pthread_cond_wait(&st->cv, &st->mu);
	int cancel = st->cancel;
	int64_t left = st->avail - u->off;
	pthread_mutex_unlock(&st->mu);
	if (cancel) {
		u->read_err = ECANCELED;
		return CURL_READFUNC_ABORT;
	}
	if ((int64_t)n > left)
		n = (size_t)left;
	if (n == 0)
		return 0;
	ssize_t r = pread(u->fd, p, n, u->off);
	if (r <= 0) {
		u->read_err = r < 0 ? errno : EIO;
		return CURL_READFUNC_ABORT;
	}
	u->off += r;
	return (size_t)r;
}

static size_t
on_upload_read(char *p, size_t sz, size_t nm, void *arg)
{
	struct sink *s = arg;
	struct upload *u = s->up;
	size_t n = sz * nm;
	if (u->st) {
		size_t r = stream_read(u, p, n);
		s->last_ms = now_ms();
		return r;
	}
	if ((int64_t)n > u->size - u->off)
		n = (size_t)(u->size - u->off);
	if (n == 0)
		return 0;
	ssize_t r = pread(u->fd, p, n, u->off);
	if (r <= 0) {
		u->read_err = r < 0 ? errno : EIO;
		return CURL_READFUNC_ABORT;
	}
	u->off += r;
	s->last_ms = now_ms();
	return (size_t)r;
}

/* What kind of server answered, when it is not a ferry worker. */
enum { FOREIGN_NONE, FOREIGN_S3, FOREIGN_WEB };

static void lc_release(struct lcluster **lp);
static void lc_refresh(ferry_t *f, int force);

/* ------------------------------------------------------------------ */
/* This thread's error message (ferry_last_error)                       */

static _Thread_local char tl_err[FERRY_ERRMSG_MAX];

static void
err_clear(void)
{
	tl_err[0] = 0;
}

/* Sets the message; control characters (a terminal escape in a hostile
 * reply) become '?', and text cut short is cut at a character. */
static void err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
err_set(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tl_err, sizeof(tl_err), fmt, ap);
	va_end(ap);
	size_t len = strlen(tl_err);
	if (n >= (int)sizeof(tl_err)) {
		while (len && ((unsigned char)tl_err[len - 1] & 0xc0) == 0x80)
			len--;
		if (len && ((unsigned char)tl_err[len - 1] & 0x80))
			len--; /* the lead byte of the character cut */
		tl_err[len] = 0;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)tl_err[i] < 0x20 || tl_err[i] == 0x7f)
			tl_err[i] = '?';
}

/* A public call's result: a success leaves no message behind. */
static int
err_done(int r)
{
	if (r >= 0)
		tl_err[0] = 0;
	return r;
}

const char *
ferry_last_error(void)
{
	return tl_err;
}

/* ------------------------------------------------------------------ */
/* Connection setup                                                     */

/* Characters allowed in "host:port" (names, IPv4, [IPv6%zone]). */
static int
worker_addr_ok(const char *w)
{
	if (!*w || strlen(w) > 255)
		return 0;
	for (const char *c = w; *c; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || strchr(".-_:[]%", *c))
			continue;
		return 0;
	}
	return 1;
}

/* Does "host:port" carry a port?  "[::1]" and "host" do not. */
static int
has_port(const char *w)
{
	if (w[0] == '[') {
		const char *rb = strchr(w, ']');
		return rb && rb[1] == ':';
	}
	const char *c = strchr(w, ':');
	return c && !strchr(c + 1, ':'); /* bare IPv6 has several */
}

static int
token_ok(const char *t)
{
	if (!*t || strlen(t) > 4096)
		return 0;
	for (const unsigned char *c = (const unsigned char *)t; *c; c++)
		if (*c <= 0x20 || *c >= 0x7f)
			return 0; /* no header injection, no spaces */
	return 1;
}

static int
do_connect(const char *worker, const char *token, ferry_t **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (curl_ready() < 0)
		return -ENOMEM;
	if (!worker || !*worker)
		worker = getenv("FERRY_WORKER");
	if (!worker || !*worker)
		worker = FERRY_DEFAULT_WORKER;
	if (!token || !*token)
		token = getenv("FERRY_TOKEN");
	if (token && !*token)
		token = NULL;

	if (strncmp(worker, "http://", 7) == 0)
		worker += 7;
	size_t wl = strlen(worker);
	while (wl && worker[wl - 1] == '/')
		wl--;
	char addr[256];
	if (wl == 0 || wl >= sizeof(addr) ||
	    (memcpy(addr, worker, wl), addr[wl] = 0, !worker_addr_ok(addr))) {
		err_set("bad worker address '%.200s' (want HOST:PORT)", worker);
		return -EINVAL;
	}
	if (token && !token_ok(token)) {
		err_set("bad token: 1 to 4096 printable characters, no spaces");
		return -EINVAL;
	}

	ferry_t *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	struct dbuf b;
	dbuf_init(&b, 512);
	int r = dbuf_printf(&b, "http://%s%s%s", addr,
	    has_port(addr) ? "" : ":", has_port(addr) ? "" : FERRY_DEFAULT_PORT);
	f->base = r ? NULL : dbuf_take(&b);
	dbuf_free(&b);
	if (token) {
		dbuf_init(&b, 8192);
		if (dbuf_printf(&b, "Authorization: Bearer %s", token) == 0)
			f->auth = dbuf_take(&b);
		dbuf_free(&b);
	}
	const char *ak = getenv("FERRY_S3_ACCESS_KEY"), *sk = getenv("FERRY_S3_SECRET_KEY");
	const char *rg = getenv("FERRY_S3_REGION");
	if (!token && ak && *ak && sk && *sk) {
		f->ak = strdup(ak);
		f->sk = strdup(sk);
		f->region = strdup(rg && *rg ? rg : "us-east-1");
	}
	if (!f->base || (token && !f->auth) || (f->ak && (!f->sk || !f->region))) {
		free(f->base);
		free(f->auth);
		free(f->ak);
		free(f->sk);
		free(f->region);
		free(f);
		return -ENOMEM;
	}
	curl_pool_init(&f->pool, FERRY_POOL_MAX);
	pthread_mutex_init(&f->mu, NULL);
	suspects_init(&f->sus);
	*out = f;
	return 0;
}

int
ferry_connect(const char *worker, const char *token, ferry_t **out)
{
	err_clear();
	return err_done(do_connect(worker, token, out));
}

void
ferry_close(ferry_t **fp)
{
	if (!fp || !*fp)
		return;
	ferry_t *f = *fp;
	curl_pool_destroy(&f->pool);
	pthread_mutex_destroy(&f->mu);
	suspects_destroy(&f->sus);
	lc_release(&f->lc);
	free(f->base);
	if (f->auth) {
		/* The token is a secret: don't leave it in freed memory. */
		explicit_bzero(f->auth, strlen(f->auth));
		free(f->auth);
	}
	if (f->sk)
		explicit_bzero(f->sk, strlen(f->sk));
	free(f->sk);
	free(f->ak);
	free(f->region);
	free(f);
	*fp = NULL;
}

/* ------------------------------------------------------------------ */
/* Requests                                                             */

static long
resp_code(CURL *h)
{
	long code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

/* A worker silent for FERRY_STALL_MS is dead, counted from its last byte
 * (so a stalled worker is left after 10 s, and the next one asked). */
static int
on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	const struct sink *s = arg;
	/* An upload's answer waits for the under-store's commit: its bound
	 * is the call's timeout, which grows with its size.  A stream has
	 * none (the writer sets its pace); once its body ended, the same
	 * bound counts from there. */
	if (s->up && s->up->st) {
		if (__atomic_load_n(&s->up->st->cancel, __ATOMIC_ACQUIRE))
			return 1; /* abandoned while curl waits on the worker */
		int64_t fin = __atomic_load_n(&s->up->st->fin_ms, __ATOMIC_ACQUIRE);
		return fin && now_ms() - fin > FERRY_DATA_TIMEOUT_MS +
		    (s->up->off / FERRY_DATA_MIN_RATE) * 1000;
	}
	if (s->up)
		return 0;
	return now_ms() - s->last_ms > FERRY_STALL_MS;
}

static size_t
on_body(char *p, size_t sz, size_t nm, void *arg)
{
	struct sink *s = arg;
	size_t n = sz * nm;
	s->last_ms = now_ms();
	if (s->foreign)
		return 0; /* not a worker: nothing it says is ours to keep */
	long code = resp_code(s->h);
	if (code < 200 || code > 299) {
		/* Keep the start of an error body; drop the rest. */
		size_t room = FERRY_ERRBODY_MAX - s->err.len;
		dbuf_add(&s->err, p, n < room ? n : room);
		return n;
	}
	if (s->json) {
		if (dbuf_add(s->json, p, n) != 0) {
			s->overflow = 1;
			return 0; /* aborts the transfer */
		}
		return n;
	}
	if (s->want_etag && !s->etag_seen) {
		/* Not the version asked for (or not said): no byte is kept. */
		if (s->stale == 0)
			s->overflow = 1;
		return 0;
	}
	if (code == 200 && s->off != 0) {
		/* The whole object, when we asked for a range elsewhere. */
		s->overflow = 1;
		return 0;
	}
	size_t room = s->len - s->got;
	if (n > room) {
		memcpy(s->buf + s->got, p, room);
		s->got += room;
		if (code == 200) {
			s->full_ok = 1; /* whole object from 0: we have enough */
			return 0;
		}
		s->overflow = 1; /* a 206 longer than the range asked */
		return 0;
	}
	memcpy(s->buf + s->got, p, n);
	s->got += n;
	return n;
}

/* Compares an ETag header's value (quotes and spaces around it allowed)
 * with the version wanted; sets s->etag_seen or s->stale. */
/* Picks "Content-Range: bytes a-b/n" (and, when a version is asked for,
 * "ETag") out of the headers. */
static size_t
on_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct sink *s = arg;
	size_t n = sz * nm;
	s->last_ms = now_ms();
	struct http_hdr h;
	if (http_hdr_split(p, n, &h) < 0)
		return n;
	/* An S3 server (ferry's own gateway included) or a web server is
	 * not the control API, whatever the status says. */
	if (http_hdr_is(&h, "x-amz-request-id")) {
		s->foreign = FOREIGN_S3;
		return n;
	}
	if (http_hdr_is(&h, "content-type")) {
		char ct[64];
		snprintf(ct, sizeof(ct), "%.*s", (int)(h.value_len < 63 ? h.value_len : 63), h.value);
		if (strcasestr(ct, "xml"))
			s->foreign = FOREIGN_S3;
		else if (strcasestr(ct, "html") && !s->foreign)
			s->foreign = FOREIGN_WEB;
		return n;
	}
	int64_t a, b, total;
	if (http_hdr_is(&h, "etag")) {
		if (s->want_etag) {
			s->etag_seen = http_etag_is(h.value, h.value_len, s->want_etag);
			s->stale = !s->etag_seen;
		} else if (http_etag_value(h.value, h.value_len, s->seen_etag,
		    sizeof(s->seen_etag)) < 0) {
			s->seen_etag[0] = 0;
		}
	} else if (http_hdr_is(&h, "content-range")) {
		if (http_content_range(h.value, h.value_len, &a, &b, &total) == 0 && a >= 0)
			s->range_start = a;
	}
	return n;
}


/* Maps an HTTP error status (and the error body's "code") to an errno;
 * the body's "error" becomes this thread's message. */
static int
status_errno(long status, const struct dbuf *body)
{
	struct json_doc d;
	if (body->len && json_parse(&d, body->p, body->len) == 0) {
		char *code = json_str(&d, json_obj_get(&d, 0, "code"));
		char *msg = json_str(&d, json_obj_get(&d, 0, "error"));
		if (msg && *msg)
			err_set("%s", msg);
		free(msg);
		int e = 0;
		if (code) {
			if (!strcmp(code, "NotADirectory"))
				e = -ENOTDIR;
			else if (!strcmp(code, "IsADirectory"))
				e = -EISDIR;
			else if (!strcmp(code, "ClusterUnavailable"))
				e = -EAGAIN; /* etcd is down: try again later */
			else if (!strcmp(code, "ReadOnly"))
				e = -EROFS;
			else if (!strcmp(code, "Exists"))
				e = -EEXIST;
			else if (!strcmp(code, "PreconditionFailed"))
				e = -ESTALE;
			else if (!strcmp(code, "CrossMount"))
				e = -EXDEV;
			else if (!strcmp(code, "InsufficientStorage"))
				e = -ENOSPC;
			else if (!strcmp(code, "SlowDown"))
				e = -ENOBUFS; /* write-back staging full */
			else if (!strcmp(code, "TooLarge"))
				e = -EFBIG;
			free(code);
		}
		json_free(&d);
		if (e)
			return e;
	}
	switch (status) {
	case 400:
		return -EINVAL;
	case 401:
		return -EPERM;  /* the control token */
	case 403:
		return -EACCES; /* the under-store */
	case 404:
		return -ENOENT;
	case 409:
		return -EEXIST;
	case 413:
		return -E2BIG;
	case 416:
		return FERRY_ERANGE_416;
	case 429:
		return -EAGAIN;
	default:
		if (status >= 500 && status <= 599)
			return -EIO;
		return -EPROTO;
	}
}

/*
 * SigV4 headers for a call, signed by the worker's S3 keys: *authz gets
 * "Authorization: ...", dateh "x-amz-date: ...", shah
 * "x-amz-content-sha256: ...".  0 or -errno.
 */
static int
sign_call(ferry_t *f, const char *base, const char *method, const char *target,
    const char *body, int unsigned_payload, struct dbuf *authz, char dateh[40],
    char shah[96])
{
	const char *host = strncmp(base, "http://", 7) == 0 ? base + 7 : base;
	const char *q = strchr(target, '?');
	size_t pl = q ? (size_t)(q - target) : strlen(target);
	char *path = strndup(target, pl);
	if (!path)
		return -ENOMEM;
	char hash[65];
	if (unsigned_payload)
		snprintf(hash, sizeof(hash), "UNSIGNED-PAYLOAD"); /* a staged file's bytes */
	else
		sha256_hex(body ? body : "", body ? strlen(body) : 0, hash);
	struct sigv4_sign_req sr = {.method = method, .host = host, .path = path,
	    .query = q ? q + 1 : "", .payload_hash = hash, .region = f->region,
	    .service = "s3", .access_key = f->ak, .secret_key = f->sk,
	    .now = wall_sec()};
	struct dbuf v;
	dbuf_init(&v, 4096);
	char date[17];
	int r = sigv4_sign(&sr, &v, date);
	free(path);
	if (r == 0) {
		dbuf_printf(authz, "Authorization: %s", v.p);
		snprintf(dateh, 40, "x-amz-date: %s", date);
		snprintf(shah, 96, "x-amz-content-sha256: %s", hash);
		r = dbuf_error(authz);
	}
	dbuf_free(&v);
	return r;
}

/*
 * One request.  target is the path and query ("/v1/stat?path=...").
 * body (may be NULL) is sent as JSON.  JSON replies go to s->json, data to
 * s->buf.  Returns 0 on a 2xx, else a negative errno.
 */
static int
http_call_at(ferry_t *f, const char *base, const char *method,
    const char *target, const char *body, const char *range, long timeout_ms,
    struct sink *s)
{
	struct dbuf url;
	dbuf_init(&url, 64u << 10);
	if (dbuf_printf(&url, "%s%s", base, target) != 0) {
		dbuf_free(&url);
		return -ENAMETOOLONG;
	}
	CURL *h = curl_pool_get(&f->pool);
	if (!h) {
		dbuf_free(&url);
		return -ENOMEM;
	}
	struct curl_slist *hdrs = NULL, *t;
	int r = 0;
#define ADD_HDR(str)                                                          \
	do {                                                                  \
		if (!(t = curl_slist_append(hdrs, (str))))                    \
			r = -ENOMEM;                                          \
		else                                                          \
			hdrs = t;                                             \
	} while (0)
	ADD_HDR("Expect:"); /* no 100-continue round trip */
	if (f->auth)
		ADD_HDR(f->auth);
	struct dbuf authz;
	dbuf_init(&authz, 4096);
	char dateh[40], shah[96];
	if (!f->auth && f->sk) {
		int sr = sign_call(f, base, method, target, body, s->up != NULL, &authz,
		    dateh, shah);
		if (sr)
			r = sr;
		else {
			ADD_HDR(authz.p);
			ADD_HDR(dateh);
			ADD_HDR(shah);
		}
	}
	if (body)
		ADD_HDR("Content-Type: application/json");
	if (s->up) {
		ADD_HDR("Content-Type: application/octet-stream");
		if (s->up->cond)
			ADD_HDR(s->up->cond);
		s->up->off = 0;
		s->up->read_err = 0;
	}
	char rangeh[96];
	if (range) {
		snprintf(rangeh, sizeof(rangeh), "Range: %s", range);
		ADD_HDR(rangeh);
	}
#undef ADD_HDR
	s->h = h;
	s->range_start = -1;
	s->foreign = FOREIGN_NONE;
	s->last_ms = now_ms();
	dbuf_init(&s->err, FERRY_ERRBODY_MAX);
	if (r == 0) {
		curl_easy_setopt(h, CURLOPT_URL, url.p);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
		    FERRY_CONNECT_TIMEOUT_MS);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, s);
		curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(h, CURLOPT_USERAGENT, "libferry/1");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, s);
		if (body) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
			    (curl_off_t)strlen(body));
		}
		if (s->up) {
			curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_upload_read);
			curl_easy_setopt(h, CURLOPT_READDATA, s);
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)s->up->size);
			/* A stream's chunks: one system call per FERRY_STREAM_BUF. */
			curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE,
			    s->up->st ? (long)FERRY_STREAM_BUF : 65536L);
		}
		if (strcmp(method, "GET") != 0 && (strcmp(method, "POST") != 0 || !body))
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);

		CURLcode rc = curl_easy_perform(h);
		long status = resp_code(h);
		s->status = status;
		if (rc == CURLE_WRITE_ERROR && s->full_ok)
			rc = CURLE_OK;
		if (s->foreign) {
			const char *hp = strncmp(base, "http://", 7) == 0 ? base + 7 : base;
			err_set("%s is not a ferry control API (%s)", hp,
			    s->foreign == FOREIGN_S3 ? "is it the S3 port?" :
			    "it answered with a web page");
			r = -EPROTONOSUPPORT;
		} else if (s->stale && status >= 200 && status <= 299)
			r = -ESTALE;
		else if (s->overflow)
			r = -EPROTO;
		else if (s->up && s->up->read_err)
			r = -s->up->read_err; /* the staged file, not the worker */
		else if (rc != CURLE_OK)
			r = curl_errno(h, rc);
		else if (status < 200 || status > 299)
			r = status_errno(status, &s->err);
	}
	curl_slist_free_all(hdrs);
	dbuf_free(&authz);
	dbuf_free(&s->err);
	dbuf_free(&url);
	curl_pool_put(&f->pool, h, 1);
	return r;
}

/* --- the cluster, as a client sees it -------------------------------- */

static void
lc_release(struct lcluster **lp)
{
	struct lcluster *l = *lp;
	*lp = NULL;
	if (!l || __atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (l->base)
		for (int i = 0; l->v && i < l->v->n; i++)
			free(l->base[i]);
	free(l->base);
	free(l->v);
	free(l);
}

/* The current copy, referenced, or NULL. */
static struct lcluster *
lc_get(ferry_t *f)
{
	pthread_mutex_lock(&f->mu);
	struct lcluster *l = f->lc;
	if (l)
		__atomic_add_fetch(&l->refs, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&f->mu);
	return l;
}

static int
is_conn_error(int r)
{
	return r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -ETIMEDOUT ||
	    r == -ECONNRESET;
}

static int
suspect_is(ferry_t *f, const char *base)
{
	return suspects_has(&f->sus, base);
}

static void
suspect_set(ferry_t *f, const char *base, int on)
{
	suspects_set(&f->sus, base, on ? FERRY_SUSPECT_MS : 0);
}

/*
 * A request that any worker can answer (everything but data reads):
 * first the worker we were given, then, if it cannot be reached, the other
 * members we know of, skipping those that failed lately.
 */
static int
http_call(ferry_t *f, const char *method, const char *target,
    const char *body, const char *range, long timeout_ms, struct sink *s)
{
	int r = -EHOSTUNREACH;
	if (!suspect_is(f, f->base)) {
		r = http_call_at(f, f->base, method, target, body, range, timeout_ms, s);
		if (!is_conn_error(r) || s->got || (s->json && s->json->len))
			return r;
		suspect_set(f, f->base, 1);
	}
	struct lcluster *l = lc_get(f);
	uint64_t tried = 0;
	for (int pass = 0; l && pass < 2; pass++) {
		for (int i = 0; i < l->v->n; i++) {
			const char *b = l->base[i];
			if ((i < 64 && (tried >> i & 1)) || strcmp(b, f->base) == 0 ||
			    suspect_is(f, b) != (pass == 1))
				continue;
			if (i < 64)
				tried |= 1ULL << i;
			r = http_call_at(f, b, method, target, body, range, timeout_ms, s);
			if (!is_conn_error(r) || s->got || (s->json && s->json->len)) {
				if (pass == 1)
					suspect_set(f, b, 0);
				lc_release(&l);
				return r;
			}
			suspect_set(f, b, 1);
		}
	}
	lc_release(&l);
	if (r == -EHOSTUNREACH && suspect_is(f, f->base)) {
		/* Everyone failed lately: give our own worker another try. */
		r = http_call_at(f, f->base, method, target, body, range, timeout_ms, s);
		if (r == 0)
			suspect_set(f, f->base, 0);
	}
	return r;
}

/* GET/POST/DELETE with a JSON reply, parsed into *d on success (the text
 * is in *reply, which outlives d). */
static int
json_request(ferry_t *f, const char *method, const char *target,
    const char *body, struct dbuf *reply, struct json_doc *d)
{
	struct sink s = {0};
	dbuf_init(reply, FERRY_JSON_MAX);
	s.json = reply;
	int r = http_call(f, method, target, body, NULL,
	    FERRY_JSON_TIMEOUT_MS, &s);
	if (r == 0 && json_parse(d, reply->p ? reply->p : "", reply->len) != 0)
		r = -EPROTO;
	if (r == 0 && d->toks[0].type != JSON_OBJECT) {
		json_free(d);
		r = -EPROTO;
	}
	if (r != 0)
		dbuf_free(reply);
	return r == FERRY_ERANGE_416 ? -EPROTO : r;
}

/* Appends "<prefix><url-encoded path>"; -EINVAL for a path not from "/". */
static int
add_path_param(struct dbuf *b, const char *prefix, const char *path)
{
	if (!path || path[0] != '/')
		return -EINVAL;
	int r = dbuf_adds(b, prefix);
	if (r == 0)
		r = url_encode(b, path, strlen(path), 1);
	return r ? -ENAMETOOLONG : 0;
}

#define TARGET_MAX (32u << 10)

/* ------------------------------------------------------------------ */
/* API                                                                  */

static int64_t
get_i64(const struct json_doc *d, int obj, const char *key)
{
	return json_int(d, json_obj_get(d, obj, key), NULL);
}

/* Fills st from an object with size/mtime/etag/is_dir/cached_bytes. */
static int
fill_stat(const struct json_doc *d, int obj, struct ferry_stat *st)
{
	memset(st, 0, sizeof(*st));
	int ok = 0;
	int is_dir = json_obj_get(d, obj, "is_dir");
	st->is_dir = json_bool(d, is_dir);
	st->size = json_int(d, json_obj_get(d, obj, "size"), &ok);
	if (!ok && !st->is_dir)
		return -EPROTO; /* a file without a size */
	if (st->size < 0)
		return -EPROTO;
	st->mtime = get_i64(d, obj, "mtime");
	st->cached_bytes = get_i64(d, obj, "cached_bytes");
	if (st->cached_bytes < 0)
		st->cached_bytes = 0;
	int et = json_obj_get(d, obj, "etag");
	if (et >= 0 && d->toks[et].type == JSON_STRING) {
		char *e = json_str(d, et);
		if (!e || strlen(e) >= FERRY_ETAG_MAX) {
			free(e);
			return -EPROTO;
		}
		memcpy(st->etag, e, strlen(e) + 1);
		free(e);
	}
	return 0;
}

static int
do_stat(ferry_t *f, const char *path, struct ferry_stat *st)
{
	if (!f || !st)
		return -EINVAL;
	lc_refresh(f, 0); /* so a call can move on if our worker dies */
	struct dbuf tg, reply;
	struct json_doc d;
	dbuf_init(&tg, TARGET_MAX);
	int r = add_path_param(&tg, "/v1/stat?path=", path);
	if (r == 0)
		r = json_request(f, "GET", tg.p, NULL, &reply, &d);
	dbuf_free(&tg);
	if (r)
		return r;
	r = fill_stat(&d, 0, st);
	json_free(&d);
	dbuf_free(&reply);
	return r;
}

int
ferry_stat(ferry_t *f, const char *path, struct ferry_stat *st)
{
	err_clear();
	return err_done(do_stat(f, path, st));
}

/* Calls fn for each entry of one page.  *next gets the start_after for
 * the next page (malloc'd) or NULL when this was the last. */
static int
list_page_entries(const struct json_doc *d, ferry_list_fn fn, void *arg,
    char **next)
{
	*next = NULL;
	int ents = json_obj_get(d, 0, "entries");
	if (ents < 0 || d->toks[ents].type != JSON_ARRAY)
		return -EPROTO;
	int n = d->toks[ents].size;
	char *last = NULL;
	int r = 0;
	for (int i = 0, e = ents + 1; i < n && r == 0; i++, e = d->toks[e].next) {
		if (d->toks[e].type != JSON_OBJECT) {
			r = -EPROTO;
			break;
		}
		char *name = json_str(d, json_obj_get(d, e, "name"));
		struct ferry_stat st;
		if (!name || !*name || strchr(name, '/') ||
		    fill_stat(d, e, &st) != 0) {
			free(name);
			r = -EPROTO;
			break;
		}
		r = fn(arg, name, &st);
		free(last);
		last = name;
	}
	if (r != 0) {
		free(last);
		return r;
	}
	if (json_bool(d, json_obj_get(d, 0, "truncated"))) {
		char *nx = json_str(d, json_obj_get(d, 0, "next"));
		if (nx && *nx) {
			*next = nx;
			free(last);
		} else {
			/* Without "next", continue after the last name. */
			free(nx);
			if (!last)
				return -EPROTO; /* truncated and empty */
			*next = last;
		}
		return 0;
	}
	free(last);
	return 0;
}

/* Asks for one page of at most max entries after `after` (NULL: the
 * first) and calls fn for each; *next as list_page_entries. */
static int
list_one_page(ferry_t *f, const char *path, const char *after, int max,
    ferry_list_fn fn, void *arg, char **next)
{
	struct dbuf tg, reply;
	struct json_doc d;
	*next = NULL;
	lc_refresh(f, 0);
	dbuf_init(&tg, TARGET_MAX);
	int r = add_path_param(&tg, "/v1/list?path=", path);
	if (r == 0)
		r = dbuf_printf(&tg, "&max=%d", max);
	if (r == 0 && after) {
		r = dbuf_adds(&tg, "&start_after=");
		if (r == 0)
			r = url_encode(&tg, after, strlen(after), 0);
	}
	if (r == -E2BIG)
		r = -ENAMETOOLONG;
	if (r == 0)
		r = json_request(f, "GET", tg.p, NULL, &reply, &d);
	dbuf_free(&tg);
	if (r)
		return r;
	r = list_page_entries(&d, fn, arg, next);
	json_free(&d);
	dbuf_free(&reply);
	return r;
}

static int
do_list_page(ferry_t *f, const char *path, const char *start_after,
    int max, ferry_list_fn fn, void *arg, char *next, size_t nextlen,
    int *truncated)
{
	if (!f || !fn || !next || nextlen < FERRY_NEXT_MAX || !truncated ||
	    max <= 0)
		return -EINVAL;
	if (!path || path[0] != '/')
		return -EINVAL;
	next[0] = 0;
	*truncated = 0;
	if (max > FERRY_LIST_PAGE)
		max = FERRY_LIST_PAGE;
	if (start_after && !*start_after)
		start_after = NULL;
	char *nx = NULL;
	int r = list_one_page(f, path, start_after, max, fn, arg, &nx);
	if (r == 0 && nx) {
		size_t nl = strlen(nx);
		/* Pages must move forward, or a confused worker loops us. */
		if (nl >= nextlen || (start_after && strcmp(nx, start_after) <= 0))
			r = -EPROTO;
		else {
			memcpy(next, nx, nl + 1);
			*truncated = 1;
		}
	}
	free(nx);
	return r;
}

int
ferry_list_page(ferry_t *f, const char *path, const char *start_after,
    int max, ferry_list_fn fn, void *arg, char *next, size_t nextlen,
    int *truncated)
{
	err_clear();
	return err_done(do_list_page(f, path, start_after, max, fn, arg, next, nextlen,
	    truncated));
}

static int
do_list(ferry_t *f, const char *path, ferry_list_fn fn, void *arg)
{
	if (!f || !fn)
		return -EINVAL;
	if (!path || path[0] != '/')
		return -EINVAL;
	char *after = NULL;
	int r;
	for (;;) {
		char *next = NULL;
		r = list_one_page(f, path, after, FERRY_LIST_PAGE, fn, arg, &next);
		if (r || !next)
			break;
		/* Pages must move forward, or a confused worker loops us. */
		if (after && strcmp(next, after) <= 0) {
			free(next);
			r = -EPROTO;
			break;
		}
		free(after);
		after = next;
	}
	free(after);
	return r;
}

int
ferry_list(ferry_t *f, const char *path, ferry_list_fn fn, void *arg)
{
	err_clear();
	return err_done(do_list(f, path, fn, arg));
}

static int
cmp_member_id(const void *a, const void *b)
{
	return strcmp(((const struct member *)a)->id, ((const struct member *)b)->id);
}

/* A client's copy of the cluster from a /v1/cluster answer; NULL if it
 * is malformed or holds nothing usable. */
static struct lcluster *
lc_parse(const struct json_doc *d)
{
	int mem = json_obj_get(d, 0, "members");
	if (mem < 0 || d->toks[mem].type != JSON_ARRAY)
		return NULL;
	int n = d->toks[mem].size;
	if (n <= 0 || n > FERRY_LC_MEMBERS)
		return NULL;
	struct lcluster *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->refs = 1;
	l->v = calloc(1, sizeof(*l->v) + sizeof(struct member) * (size_t)n);
	if (!l->v) {
		free(l);
		return NULL;
	}
	int ok = 0;
	l->block_size = json_int(d, json_obj_get(d, 0, "block_size"), &ok);
	if (!ok || l->block_size < 4096)
		l->block_size = PLACEMENT_DEFAULT_BLOCK;
	int rep = json_obj_get(d, 0, "replicas");
	if (rep >= 0 && d->toks[rep].type == JSON_OBJECT) {
		int k = rep + 1;
		for (int j = 0; j < d->toks[rep].size && l->nrep < FERRY_LC_MOUNTS; j++) {
			char *name = json_str(d, k);
			int64_t r = json_int(d, k + 1, &ok);
			if (name && ok && r >= 1 && r <= 16 && strlen(name) < sizeof(l->rep[0].name)) {
				snprintf(l->rep[l->nrep].name, sizeof(l->rep[0].name), "%s", name);
				l->rep[l->nrep++].replicas = (int)r;
			}
			free(name);
			k = d->toks[k + 1].next;
		}
	}
	int e = mem + 1;
	for (int i = 0; i < n; i++, e = d->toks[e].next) {
		char *id = json_str(d, json_obj_get(d, e, "id"));
		char *ctl = json_str(d, json_obj_get(d, e, "ctl"));
		if (id && ctl && strlen(id) <= CLUSTER_ID_MAX && id[0] &&
		    strlen(ctl) < 256 && worker_addr_ok(ctl) && has_port(ctl)) {
			struct member *m = &l->v->m[l->v->n++];
			snprintf(m->id, sizeof(m->id), "%s", id);
			snprintf(m->ctl, sizeof(m->ctl), "%s", ctl);
		}
		free(id);
		free(ctl);
	}
	l->base = calloc((size_t)(l->v->n ? l->v->n : 1), sizeof(char *));
	if (!l->v->n || !l->base) {
		lc_release(&l);
		return NULL;
	}
	qsort(l->v->m, (size_t)l->v->n, sizeof(struct member), cmp_member_id);
	for (int i = 0; i < l->v->n; i++) {
		size_t bl = strlen(l->v->m[i].ctl) + 8;
		if (!(l->base[i] = malloc(bl))) {
			lc_release(&l);
			return NULL;
		}
		snprintf(l->base[i], bl, "http://%s", l->v->m[i].ctl);
	}
	return l;
}

/*
 * Asks a worker for the cluster when our copy is older than
 * FERRY_LC_FRESH_MS (or at once with force).  One thread refreshes at a
 * time; the others go on with the copy they have.  A worker without a
 * cluster (or an older one) leaves us with none: reads go to it.
 */
static void
lc_refresh(ferry_t *f, int force)
{
	int64_t now = now_ms();
	pthread_mutex_lock(&f->mu);
	int go = !f->refreshing && (force || f->lc_at_ms == 0 ||
	    now - f->lc_at_ms >= FERRY_LC_FRESH_MS);
	if (go)
		f->refreshing = 1;
	pthread_mutex_unlock(&f->mu);
	if (!go)
		return;
	struct dbuf reply;
	struct json_doc d;
	struct lcluster *l = NULL;
	/* Its failures are never reported: the caller's message stays. */
	char saved[FERRY_ERRMSG_MAX];
	memcpy(saved, tl_err, sizeof(saved));
	if (json_request(f, "GET", "/v1/cluster", NULL, &reply, &d) == 0) {
		l = lc_parse(&d);
		json_free(&d);
		dbuf_free(&reply);
	}
	memcpy(tl_err, saved, sizeof(saved));
	pthread_mutex_lock(&f->mu);
	f->refreshing = 0;
	f->lc_at_ms = now_ms();
	if (l) {
		struct lcluster *old = f->lc;
		f->lc = l;
		l = old;
	}
	pthread_mutex_unlock(&f->mu);
	lc_release(&l);
}

/*
 * One data request to the worker at base: bytes [off, off+len) of path
 * into buf.  *got: bytes that landed; seen (FERRY_ETAG_MAX) gets the
 * version answered when etag is NULL.
 */
static int
data_call(ferry_t *f, const char *base, const char *path, void *buf,
    size_t len, int64_t off, const char *etag, char *seen, size_t *got)
{
	*got = 0;
	struct dbuf tg;
	dbuf_init(&tg, TARGET_MAX);
	int r = add_path_param(&tg, "/v1/data?path=", path);
	if (r) {
		dbuf_free(&tg);
		return r;
	}
	char range[64];
	snprintf(range, sizeof(range), "bytes=%" PRId64 "-%" PRId64, off,
	    off + (int64_t)(len - 1));
	long timeout = FERRY_DATA_TIMEOUT_MS +
	    (long)(len / FERRY_DATA_MIN_RATE) * 1000L;
	struct sink s = {0};
	s.buf = buf;
	s.len = len;
	s.off = off;
	s.want_etag = etag && *etag ? etag : NULL;
	r = base ? http_call_at(f, base, "GET", tg.p, NULL, range, timeout, &s) :
	    http_call(f, "GET", tg.p, NULL, range, timeout, &s);
	dbuf_free(&tg);
	if (r == 0 && s.range_start >= 0 && s.range_start != off)
		r = -EPROTO; /* bytes from somewhere else */
	/* A worker that broke off: the bytes it sent are good if they are of
	 * the version pinned and from the offset asked; the caller asks the
	 * next worker for the rest only. */
	if (r == -ECONNRESET && s.want_etag && s.etag_seen && s.range_start == off)
		*got = s.got;
	if (r == 0) {
		*got = s.got;
		if (seen && !s.want_etag)
			memcpy(seen, s.seen_etag, sizeof(s.seen_etag));
	}
	return r;
}

static int
lc_replicas(const struct lcluster *l, const char *mount, size_t ml)
{
	for (int i = 0; i < l->nrep; i++)
		if (strlen(l->rep[i].name) == ml && memcmp(l->rep[i].name, mount, ml) == 0)
			return l->rep[i].replicas;
	return 1;
}

/*
 * A read in a cluster: each block straight from a worker that holds it
 * (a replica, picked in turn), then, if it does not answer, the next
 * workers in the block's order.  The first answer pins the version, so
 * blocks from different workers are of one version.  1 if this path is
 * not for placement (the caller asks its own worker), else 0 with *out.
 */
struct lc_suspect {
	ferry_t *f;
	const struct lcluster *l;
};

static int
lc_is_suspect(void *arg, int idx)
{
	const struct lc_suspect *c = arg;
	return suspect_is(c->f, c->l->base[idx]);
}

static int
pread_cluster(ferry_t *f, struct lcluster *l, const char *path, char *buf,
    size_t len, int64_t off, const char *etag, ssize_t *out)
{
	const char *mount = path + 1;
	const char *slash = strchr(mount, '/');
	if (!slash || !slash[1] || (size_t)(slash - mount) >= sizeof(l->rep[0].name))
		return 1;
	char mname[64], pinned[FERRY_ETAG_MAX] = "";
	memcpy(mname, mount, (size_t)(slash - mount));
	mname[slash - mount] = 0;
	const char *key = slash + 1;
	int nrep = lc_replicas(l, mount, (size_t)(slash - mount));
	if (etag && *etag)
		snprintf(pinned, sizeof(pinned), "%s", etag);
	int *order = malloc(sizeof(int) * (size_t)l->v->n);
	if (!order)
		return 1;
	static uint64_t spin_ctr;
	size_t total = 0;
	int r = 0, eof = 0;
	while (total < len && !eof && r == 0) {
		int64_t pos = off + (int64_t)total;
		int64_t b = pos / l->block_size;
		int64_t bend = (b + 1) * l->block_size;
		size_t want = len - total;
		if ((uint64_t)want > (uint64_t)(bend - pos))
			want = (size_t)(bend - pos);
		uint64_t spin = nrep > 1 ? __atomic_fetch_add(&spin_ctr, 1, __ATOMIC_RELAXED) : 0;
		struct lc_suspect sc = {f, l};
		int n = placement_candidates(l->v, placement_key(mname, key, b), nrep,
		    spin, lc_is_suspect, &sc, order, l->v->n);
		r = -EHOSTUNREACH;
		/* A worker that broke off mid-block leaves the rest of the block
		 * (want - got so far) to the next one. */
		for (int k = 0, done = 0; k < n && !done && want > 0; k++) {
			const char *base = l->base[order[k]];
			int sus = suspect_is(f, base);
			size_t got = 0;
			char seen[FERRY_ETAG_MAX] = "";
			r = data_call(f, base, path, buf + total, want,
			    off + (int64_t)total, pinned[0] ? pinned : NULL, seen, &got);
			if (r == 0 && !pinned[0] && seen[0])
				memcpy(pinned, seen, sizeof(pinned));
			total += got;
			if (r == 0) {
				if (sus)
					suspect_set(f, base, 0);
				eof = got < want; /* the object ends here */
				done = 1;
			} else if (r == FERRY_ERANGE_416) {
				r = 0;
				eof = done = 1;
			} else if (!is_conn_error(r)) {
				done = 1; /* a worker's answer: it stands */
			} else {
				suspect_set(f, base, 1);
				want -= got;
			}
		}
	}
	free(order);
	*out = r ? r : (ssize_t)total;
	return 0;
}

static ssize_t
pread_version(ferry_t *f, const char *path, void *buf, size_t len,
    int64_t off, const char *etag)
{
	if (!f || !path || path[0] != '/' || (!buf && len) || off < 0)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if ((uint64_t)len - 1 > (uint64_t)(INT64_MAX - off))
		len = (size_t)(INT64_MAX - off) + 1; /* last byte fits int64 */
	lc_refresh(f, 0);
	struct lcluster *l = lc_get(f);
	if (l && l->v->n > 1) {
		ssize_t out;
		int rr = pread_cluster(f, l, path, buf, len, off, etag, &out);
		if (rr == 0 && is_conn_error((int)out))
			lc_refresh(f, 1); /* the cluster changed under us */
		lc_release(&l);
		if (rr == 0)
			return out;
	}
	lc_release(&l);
	size_t got = 0;
	int r = data_call(f, NULL, path, buf, len, off, etag, NULL, &got);
	if (r == FERRY_ERANGE_416)
		return 0; /* at or past the end */
	if (r)
		return r;
	return (ssize_t)got;
}

ssize_t
ferry_pread(ferry_t *f, const char *path, void *buf, size_t len, int64_t off)
{
	err_clear();
	ssize_t r = pread_version(f, path, buf, len, off, NULL);
	err_done(r < 0 ? (int)r : 0);
	return r;
}

ssize_t
ferry_pread_etag(ferry_t *f, const char *path, void *buf, size_t len,
    int64_t off, const char *etag)
{
	err_clear();
	ssize_t r = pread_version(f, path, buf, len, off, etag);
	err_done(r < 0 ? (int)r : 0);
	return r;
}

/* "train" or "/train" -> "train"; -EINVAL if empty or nested. */
static int
mount_name(const char *name, const char **out)
{
	if (!name)
		return -EINVAL;
	if (name[0] == '/')
		name++;
	if (!*name || strchr(name, '/'))
		return -EINVAL;
	*out = name;
	return 0;
}

static int
do_mount(ferry_t *f, const char *name, const char *uri,
    const char *const *opts, int nopts, unsigned flags)
{
	if (!f || !uri || !*uri || nopts < 0 || (nopts && !opts) ||
	    (flags & ~FERRY_MOUNT_NO_CHECK))
		return -EINVAL;
	int r = mount_name(name, &name);
	if (r)
		return r;
	struct dbuf b;
	dbuf_init(&b, 1u << 20);
	r = dbuf_adds(&b, "{\"name\":");
	if (r == 0)
		r = json_put_str(&b, name);
	if (r == 0)
		r = dbuf_adds(&b, ",\"uri\":");
	if (r == 0)
		r = json_put_str(&b, uri);
	if (r == 0)
		r = dbuf_adds(&b, ",\"options\":{");
	for (int i = 0; i < nopts && r == 0; i++) {
		const char *eq = opts[i] ? strchr(opts[i], '=') : NULL;
		if (!eq || eq == opts[i]) {
			r = -EINVAL; /* not "key=value" */
			break;
		}
		if (i)
			r = dbuf_adds(&b, ",");
		if (r == 0)
			r = json_put_strn(&b, opts[i], (size_t)(eq - opts[i]));
		if (r == 0)
			r = dbuf_adds(&b, ":");
		if (r == 0)
			r = json_put_str(&b, eq + 1);
	}
	if (r == 0)
		r = dbuf_adds(&b, (flags & FERRY_MOUNT_NO_CHECK) ? "},\"check\":false}" : "}}");
	if (r == -E2BIG)
		r = -EINVAL;
	if (r == 0) {
		struct dbuf reply;
		struct json_doc d;
		r = json_request(f, "POST", "/v1/mounts", b.p, &reply, &d);
		if (r == 0) {
			json_free(&d);
			dbuf_free(&reply);
		}
	}
	/* The body may hold secrets (s3.secret_key). */
	if (b.p)
		explicit_bzero(b.p, b.len);
	dbuf_free(&b);
	return r;
}

int
ferry_mount_flags(ferry_t *f, const char *name, const char *uri,
    const char *const *opts, int nopts, unsigned flags)
{
	err_clear();
	return err_done(do_mount(f, name, uri, opts, nopts, flags));
}

int
ferry_mount(ferry_t *f, const char *name, const char *uri,
    const char *const *opts, int nopts)
{
	return ferry_mount_flags(f, name, uri, opts, nopts, 0);
}

static int
do_unmount(ferry_t *f, const char *name)
{
	if (!f)
		return -EINVAL;
	int r = mount_name(name, &name);
	if (r)
		return r;
	struct dbuf tg, reply;
	struct json_doc d;
	dbuf_init(&tg, TARGET_MAX);
	r = dbuf_adds(&tg, "/v1/mounts/");
	if (r == 0)
		r = url_encode(&tg, name, strlen(name), 0);
	if (r == 0)
		r = json_request(f, "DELETE", tg.p, NULL, &reply, &d);
	else
		r = -ENAMETOOLONG;
	dbuf_free(&tg);
	if (r == 0) {
		json_free(&d);
		dbuf_free(&reply);
	}
	return r;
}

int
ferry_unmount(ferry_t *f, const char *name)
{
	err_clear();
	return err_done(do_unmount(f, name));
}

static int
get_json_text(ferry_t *f, const char *target, char **json)
{
	if (!f || !json)
		return -EINVAL;
	*json = NULL;
	struct dbuf reply;
	struct json_doc d;
	int r = json_request(f, "GET", target, NULL, &reply, &d);
	if (r)
		return r;
	json_free(&d);
	*json = dbuf_take(&reply);
	return 0;
}

int
ferry_mounts_json(ferry_t *f, char **json)
{
	err_clear();
	return err_done(get_json_text(f, "/v1/mounts", json));
}

int
ferry_cluster_json(ferry_t *f, char **json)
{
	err_clear();
	return err_done(get_json_text(f, "/v1/cluster", json));
}

int
ferry_stats_json(ferry_t *f, char **json)
{
	err_clear();
	return err_done(get_json_text(f, "/v1/stats", json));
}

int
ferry_writeback_json(ferry_t *f, char **json)
{
	err_clear();
	return err_done(get_json_text(f, "/v1/writeback", json));
}

/* Copies string member key of the reply's object into out; -EPROTO if
 * absent, -E2BIG if it does not fit. */
static int
copy_str_member(const struct json_doc *d, const char *key, char *out, size_t n)
{
	int t = json_obj_get(d, 0, key);
	if (t < 0 || d->toks[t].type != JSON_STRING)
		return -EPROTO;
	char *v = json_str(d, t);
	if (!v)
		return -ENOMEM;
	size_t l = strlen(v);
	int r = l < n ? 0 : -E2BIG;
	if (r == 0)
		memcpy(out, v, l + 1);
	free(v);
	return r;
}

static int
do_local_socket(ferry_t *f, char *path, size_t n, char *id, size_t idn)
{
	if (!f || !path || !id || !n || !idn)
		return -EINVAL;
	struct dbuf reply;
	struct json_doc d;
	int r = json_request(f, "GET", "/v1/local", NULL, &reply, &d);
	if (r)
		return r;
	int ok = 0;
	int64_t proto = json_int(&d, json_obj_get(&d, 0, "protocol"), &ok);
	r = ok && proto == FERRY_LOCAL_PROTOCOL ? 0 : -ENOTSUP;
	if (r == 0)
		r = copy_str_member(&d, "socket", path, n);
	if (r == 0)
		r = copy_str_member(&d, "id", id, idn);
	json_free(&d);
	dbuf_free(&reply);
	return r;
}

int
ferry_local_socket(ferry_t *f, char *path, size_t n, char *id, size_t idn)
{
	err_clear();
	return err_done(do_local_socket(f, path, n, id, idn));
}

const char *
ferry_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -ENOENT:
		return "no such file, directory or mount";
	case -EPERM:
		return "the control token is missing or wrong";
	case -EACCES:
		return "access denied by the under-store";
	case -EIO:
		return "I/O error in the under-store";
	case -EPROTONOSUPPORT:
		return "not a ferry control API (is it the S3 port?)";
	case -ECONNREFUSED:
		return "connection refused (is the worker running?)";
	case -EHOSTUNREACH:
		return "worker host unreachable";
	case -ETIMEDOUT:
		return "timed out";
	case -EINVAL:
		return "invalid argument";
	case -EPROTO:
		return "unexpected reply from the worker";
	case -EEXIST:
		return "already exists";
	case -ENOTDIR:
		return "not a directory";
	case -EISDIR:
		return "is a directory";
	case -ECONNRESET:
		return "connection to the worker lost";
	case -ENAMETOOLONG:
		return "path too long";
	case -ENOMEM:
		return "out of memory";
	case -EAGAIN:
		return "worker busy or cluster store (etcd) unreachable, try again";
	case -E2BIG:
		return "too large";
	case -ESTALE:
		return "the file changed while it was read";
	default:
		if (err < 0) {
			const char *d = strerrordesc_np(-err);
			if (d)
				return d;
		}
		return "unknown error";
	}
}

/* --- writes ---------------------------------------------------------------- */

/*
 * A file being written: its bytes staged in an unnamed temporary file of
 * this host (O_TMPFILE, 0600, in $TMPDIR or /tmp) until ferry_commit
 * uploads them whole with PUT /v1/data.  One thread at a time per file.
 *
 * Streaming (FERRY_CREATE_STREAM): while every write so far was at the
 * end of a file that started empty (seq), once it holds FERRY_STREAM_MIN
 * bytes a struct fstream thread starts the PUT and sends the staged bytes
 * as they come; the first commit then ends the body.  Small files never
 * start one (one PUT at the commit costs less than a thread).  The staged
 * file keeps every byte, so abandoning the stream (a write elsewhere, a
 * truncation, a failed stream) loses nothing: the commit uploads it whole
 * as without the flag.  Memory: the stream adds its thread and libcurl's
 * upload buffer (CURLOPT_UPLOAD_BUFFERSIZE, FERRY_STREAM_BUF), whatever
 * the file's size: the body is read from the staged file (on disk), never
 * queued in memory; the worker holds one page of it at a time (objput.c).
 * At most FERRY_STREAMS_MAX streams run per ferry_t (other files stay
 * staged until a slot frees), so all streams together hold at most
 * 64 x 512 KiB of buffers and 64 threads.
 * A writer that pauses longer than the worker waits for a body's bytes
 * (its io timeout, 60 s) loses the stream (408): the commit then uploads
 * the staged file.  A cancel also aborts a transfer blocked on the worker
 * (on_progress), so abandoning never waits long.
 */
#define FERRY_STREAM_MIN (1 << 20)

struct ferry_file {
	ferry_t *f;
	char *path;
	int fd;
	int64_t size;
	unsigned flags;  /* FERRY_CREATE_*; EXCL dropped after the first commit */
	int dirty;       /* written since the last commit */
	int seq;         /* STREAM, never committed, every write at the end */
	struct fstream *st; /* the stream running, or NULL */
};

static void *
stream_main(void *arg)
{
	struct fstream *st = arg;
	struct dbuf reply;
	dbuf_init(&reply, FERRY_JSON_MAX);
	struct sink s = {.json = &reply, .up = &st->up};
	err_clear();
	/* No overall timeout: the writer sets the pace (on_progress bounds
	 * the wait for the answer once the body ended). */
	st->r = http_call(st->f, "PUT", st->target, NULL, NULL, 0, &s);
	st->status = s.status;
	struct json_doc d;
	if (st->r == 0 && json_parse(&d, reply.p ? reply.p : "", reply.len) == 0) {
		st->r = fill_stat(&d, 0, &st->st);
		json_free(&d);
	} else if (st->r == 0) {
		st->r = -EPROTO;
	}
	snprintf(st->err, sizeof(st->err), "%s", ferry_last_error());
	dbuf_free(&reply);
	__atomic_store_n(&st->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void
stream_free(struct fstream *st)
{
	__atomic_sub_fetch(&st->f->streams, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cv);
	free(st->target);
	free(st);
}

/* Starts w's stream (its bytes so far are the body's start); on any
 * failure the file just stays staged. */
static void
stream_start(ferry_file_t *w)
{
	if (__atomic_add_fetch(&w->f->streams, 1, __ATOMIC_ACQ_REL) > FERRY_STREAMS_MAX) {
		__atomic_sub_fetch(&w->f->streams, 1, __ATOMIC_ACQ_REL);
		return; /* staged for now */
	}
	struct fstream *st = calloc(1, sizeof(*st));
	if (!st) {
		__atomic_sub_fetch(&w->f->streams, 1, __ATOMIC_ACQ_REL);
		return;
	}
	struct dbuf tg;
	dbuf_init(&tg, TARGET_MAX);
	st->f = w->f;
	if (add_path_param(&tg, "/v1/data?path=", w->path) != 0 ||
	    !(st->target = strdup(tg.p))) {
		dbuf_free(&tg);
		__atomic_sub_fetch(&w->f->streams, 1, __ATOMIC_ACQ_REL);
		free(st);
		return;
	}
	dbuf_free(&tg);
	st->up = (struct upload){.fd = w->fd, .size = -1, .st = st,
	    .cond = (w->flags & FERRY_CREATE_EXCL) ? "If-None-Match: *" : NULL};
	st->avail = w->size;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	if (pthread_create(&st->th, NULL, stream_main, st) != 0) {
		stream_free(st); /* gives its slot back */
		w->seq = 0; /* no thread: staged it is */
		return;
	}
	w->st = st;
}

/* Ends w's stream: fin (the body ends at avail) or cancel; waits for its
 * thread.  Returns the stream, finished, for the caller to read and free. */
static struct fstream *
stream_stop(ferry_file_t *w, int cancel)
{
	struct fstream *st = w->st;
	w->st = NULL;
	pthread_mutex_lock(&st->mu);
	if (cancel)
		__atomic_store_n(&st->cancel, 1, __ATOMIC_RELEASE);
	else
		st->fin = 1;
	__atomic_store_n(&st->fin_ms, now_ms(), __ATOMIC_RELEASE);
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->th, NULL);
	return st;
}

/* The file stops streaming: what was sent is abandoned (the worker
 * commits nothing), the staged bytes stay for the commit. */
static void
stream_abandon(ferry_file_t *w)
{
	w->seq = 0;
	if (w->st)
		stream_free(stream_stop(w, 1));
}

/* After a write at the end: the stream may send up to the new end; a
 * stream that ended early (the worker refused, the link broke) is let
 * go, and the commit uploads the staged file. */
static void
stream_feed(ferry_file_t *w)
{
	if (!w->seq)
		return;
	if (!w->st) {
		if (w->size >= FERRY_STREAM_MIN)
			stream_start(w);
		return;
	}
	if (__atomic_load_n(&w->st->done, __ATOMIC_ACQUIRE)) {
		stream_abandon(w);
		return;
	}
	pthread_mutex_lock(&w->st->mu);
	w->st->avail = w->size;
	pthread_cond_broadcast(&w->st->cv);
	pthread_mutex_unlock(&w->st->mu);
}

/* Is $FERRY_STREAM set to turn streaming off? */
static int
stream_disabled(void)
{
	const char *e = getenv("FERRY_STREAM");
	return e && (strcmp(e, "0") == 0 || strcasecmp(e, "off") == 0 ||
	    strcasecmp(e, "no") == 0);
}

static int
staging_fd(void)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && dir[0] && strcmp(dir, "/tmp") != 0)
		fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		err_set("cannot stage a write in %s: %s", dir, strerror(errno));
	return fd < 0 ? -errno : fd;
}

static int
do_create(ferry_t *f, const char *path, unsigned flags, ferry_file_t **out)
{
	if (!f || !path || !out || path[0] != '/' ||
	    (flags & ~(FERRY_CREATE_EXCL | FERRY_CREATE_KEEP | FERRY_CREATE_STREAM)))
		return -EINVAL;
	*out = NULL;
	struct ferry_file *w = calloc(1, sizeof(*w));
	if (!w || !(w->path = strdup(path))) {
		free(w);
		return -ENOMEM;
	}
	w->f = f;
	w->flags = flags;
	w->fd = staging_fd();
	int r = w->fd < 0 ? w->fd : 0;
	if (r == 0 && (flags & FERRY_CREATE_KEEP)) {
		/* A rewrite starts from the current bytes (none if new). */
		struct ferry_stat st;
		r = do_stat(f, path, &st);
		if (r == -ENOENT)
			r = 0;
		else if (r == 0 && st.is_dir)
			r = -EISDIR;
		else if (r == 0) {
			char *buf = malloc(1 << 20);
			r = buf ? 0 : -ENOMEM;
			for (int64_t off = 0; r == 0 && off < st.size;) {
				ssize_t n = ferry_pread_etag(f, path, buf, 1 << 20, off, st.etag);
				if (n <= 0) {
					r = n < 0 ? (int)n : -EIO;
					break;
				}
				r = write_full(w->fd, buf, (size_t)n, off);
				off += n;
			}
			free(buf);
			w->size = st.size;
		}
	}
	if (r < 0) {
		if (w->fd >= 0)
			close(w->fd);
		free(w->path);
		free(w);
		return r;
	}
	w->dirty = 1; /* even empty: a commit creates it */
	w->seq = (flags & FERRY_CREATE_STREAM) && w->size == 0 && !stream_disabled();
	*out = w;
	return 0;
}

int
ferry_create(ferry_t *f, const char *path, unsigned flags, ferry_file_t **out)
{
	err_clear();
	return err_done(do_create(f, path, flags, out));
}

ssize_t
ferry_pwrite(ferry_file_t *w, const void *buf, size_t len, int64_t off)
{
	err_clear();
	if (!w || (!buf && len) || off < 0 || (int64_t)len > INT64_MAX - off)
		return -EINVAL;
	if (w->seq && off != w->size)
		stream_abandon(w); /* not in order: staged from here on */
	int r = write_full(w->fd, buf, len, off);
	if (r < 0) {
		/* The stream must not send bytes the file does not hold. */
		stream_abandon(w);
		err_set("staging the write failed: %s", strerror(-r));
		return r;
	}
	if (off + (int64_t)len > w->size)
		w->size = off + (int64_t)len;
	w->dirty = 1;
	stream_feed(w);
	return (ssize_t)len;
}

ssize_t
ferry_write(ferry_file_t *w, const void *buf, size_t len)
{
	return w ? ferry_pwrite(w, buf, len, w->size) : -EINVAL;
}

ssize_t
ferry_file_pread(ferry_file_t *w, void *buf, size_t len, int64_t off)
{
	err_clear();
	if (!w || off < 0)
		return -EINVAL;
	if (off >= w->size)
		return 0;
	if ((int64_t)len > w->size - off)
		len = (size_t)(w->size - off);
	ssize_t n = pread(w->fd, buf, len, off);
	return n < 0 ? -errno : n;
}

int
ferry_file_truncate(ferry_file_t *w, int64_t len)
{
	err_clear();
	if (!w || len < 0)
		return -EINVAL;
	if (len != w->size)
		stream_abandon(w);
	if (ftruncate(w->fd, len) < 0)
		return -errno;
	w->size = len;
	w->dirty = 1;
	return 0;
}

int64_t
ferry_file_size(const ferry_file_t *w)
{
	return w ? w->size : -EINVAL;
}

/*
 * A streamed file's commit: the body ends, and the worker's answer is the
 * commit's.  1 when that is so (*r the result); 0 when the stream broke
 * without an answer from the worker about the whole body (it ended before
 * the writer did, the link failed, the body stalled past the worker's
 * patience: 408), so the staged file goes up as without streaming.
 */
static int
stream_commit(ferry_file_t *w, struct ferry_stat *st, int *r)
{
	int early = __atomic_load_n(&w->st->done, __ATOMIC_ACQUIRE);
	struct fstream *s = stream_stop(w, 0);
	w->seq = 0;
	int answered = !early && s->status >= 200 && s->status != 408 &&
	    s->up.read_err == 0 && (s->r == 0 || !is_conn_error(s->r));
	if (answered) {
		*r = s->r;
		if (s->r == 0)
			*st = s->st;
		else if (s->err[0])
			err_set("%s", s->err);
	}
	stream_free(s);
	return answered;
}

static int
do_commit(ferry_file_t *w, struct ferry_stat *st)
{
	if (!w)
		return -EINVAL;
	struct ferry_stat tmp;
	if (!st)
		st = &tmp;
	memset(st, 0, sizeof(*st));
	int sr;
	if (w->st && stream_commit(w, st, &sr)) {
		if (sr == 0) {
			w->dirty = 0;
			w->flags &= ~FERRY_CREATE_EXCL;
		}
		return sr;
	}
	w->seq = 0; /* committed (or tried): later writes are a rewrite */
	struct dbuf tg, reply;
	dbuf_init(&tg, TARGET_MAX);
	dbuf_init(&reply, FERRY_JSON_MAX);
	int r = add_path_param(&tg, "/v1/data?path=", w->path);
	struct upload up = {.fd = w->fd, .size = w->size,
	    .cond = (w->flags & FERRY_CREATE_EXCL) ? "If-None-Match: *" : NULL};
	struct sink s = {.json = &reply, .up = &up};
	long timeout = FERRY_DATA_TIMEOUT_MS + (long)(w->size / FERRY_DATA_MIN_RATE) * 1000;
	if (r == 0)
		r = http_call(w->f, "PUT", tg.p, NULL, NULL, timeout, &s);
	struct json_doc d;
	if (r == 0 && json_parse(&d, reply.p ? reply.p : "", reply.len) == 0) {
		r = fill_stat(&d, 0, st);
		json_free(&d);
	} else if (r == 0) {
		r = -EPROTO;
	}
	dbuf_free(&reply);
	dbuf_free(&tg);
	if (r == 0) {
		w->dirty = 0;
		w->flags &= ~FERRY_CREATE_EXCL; /* it is ours now */
	}
	return r;
}

int
ferry_commit(ferry_file_t *w, struct ferry_stat *st)
{
	err_clear();
	return err_done(do_commit(w, st));
}

int
ferry_file_dirty(const ferry_file_t *w)
{
	return w ? w->dirty : 0;
}

void
ferry_file_close(ferry_file_t **wp)
{
	ferry_file_t *w = wp ? *wp : NULL;
	if (!w)
		return;
	*wp = NULL;
	stream_abandon(w); /* never committed: the worker keeps nothing */
	close(w->fd);
	free(w->path);
	free(w);
}

int
ferry_put(ferry_t *f, const char *path, const void *buf, size_t len,
    struct ferry_stat *st)
{
	ferry_file_t *w;
	int r = ferry_create(f, path, 0, &w);
	if (r < 0)
		return r;
	ssize_t n = ferry_pwrite(w, buf, len, 0);
	r = n < 0 ? (int)n : ferry_commit(w, st);
	ferry_file_close(&w);
	return r;
}

static int
do_unlink(ferry_t *f, const char *path)
{
	if (!f || !path)
		return -EINVAL;
	struct dbuf tg, reply;
	dbuf_init(&tg, TARGET_MAX);
	dbuf_init(&reply, FERRY_JSON_MAX);
	int r = add_path_param(&tg, "/v1/data?path=", path);
	struct sink s = {.json = &reply};
	if (r == 0)
		r = http_call(f, "DELETE", tg.p, NULL, NULL, FERRY_JSON_TIMEOUT_MS, &s);
	dbuf_free(&reply);
	dbuf_free(&tg);
	return r == FERRY_ERANGE_416 ? -EPROTO : r;
}

int
ferry_unlink(ferry_t *f, const char *path)
{
	err_clear();
	return err_done(do_unlink(f, path));
}

static int
do_rename(ferry_t *f, const char *from, const char *to)
{
	if (!f || !from || !to)
		return -EINVAL;
	struct dbuf tg, reply;
	struct json_doc d;
	dbuf_init(&tg, TARGET_MAX);
	int r = add_path_param(&tg, "/v1/rename?from=", from);
	if (r == 0)
		r = add_path_param(&tg, "&to=", to);
	if (r == 0)
		r = json_request(f, "POST", tg.p, NULL, &reply, &d);
	dbuf_free(&tg);
	if (r == 0) {
		json_free(&d);
		dbuf_free(&reply);
	}
	return r;
}

int
ferry_rename(ferry_t *f, const char *from, const char *to)
{
	err_clear();
	return err_done(do_rename(f, from, to));
}

/* ---- datasets: pin, ttl, free, refresh, du (docs/control-api.md) -------- */

/* method endpoint?path=<path><extra>; the reply's text in *json if wanted. */
static int
dataset_call(ferry_t *f, const char *method, const char *endpoint,
    const char *path, const char *extra, char **json)
{
	if (!f || !path)
		return -EINVAL;
	if (json)
		*json = NULL;
	struct dbuf tg, reply;
	struct json_doc d;
	dbuf_init(&tg, TARGET_MAX);
	int r = dbuf_printf(&tg, "%s?path=", endpoint) ? -ENAMETOOLONG : 0;
	if (r == 0)
		r = add_path_param(&tg, "", path);
	if (r == 0 && extra && dbuf_adds(&tg, extra))
		r = -ENAMETOOLONG;
	if (r == 0)
		r = json_request(f, method, tg.p, NULL, &reply, &d);
	dbuf_free(&tg);
	if (r == 0) {
		json_free(&d);
		if (json)
			*json = dbuf_take(&reply);
		else
			dbuf_free(&reply);
	}
	return r;
}

int
ferry_pin(ferry_t *f, const char *path, int on)
{
	err_clear();
	return err_done(dataset_call(f, on ? "POST" : "DELETE", "/v1/pin", path,
	    NULL, NULL));
}

int
ferry_ttl(ferry_t *f, const char *path, int64_t seconds)
{
	err_clear();
	if (seconds < 0)
		return err_done(-EINVAL);
	char q[48];
	snprintf(q, sizeof(q), "&ttl=%" PRId64, seconds);
	return err_done(dataset_call(f, seconds ? "POST" : "DELETE", "/v1/ttl",
	    path, seconds ? q : NULL, NULL));
}

int
ferry_free(ferry_t *f, const char *path, int force, char **json)
{
	err_clear();
	return err_done(dataset_call(f, "POST", "/v1/free", path,
	    force ? "&force=1" : NULL, json));
}

int
ferry_refresh(ferry_t *f, const char *path)
{
	err_clear();
	return err_done(dataset_call(f, "POST", "/v1/refresh", path, NULL, NULL));
}

int
ferry_du_json(ferry_t *f, const char *path, int summary, char **json)
{
	err_clear();
	if (!json)
		return err_done(-EINVAL);
	return err_done(dataset_call(f, "GET", "/v1/du", path,
	    summary ? "&summary=1" : NULL, json));
}

int
ferry_policy_json(ferry_t *f, char **json)
{
	err_clear();
	return err_done(get_json_text(f, "/v1/policy", json));
}

int
ferry_load_start(ferry_t *f, const char *path, int64_t bandwidth, int parallel,
    unsigned flags, char id[17])
{
	err_clear();
	unsigned reps = (flags >> 8) & 0xffu;
	if (!id || bandwidth < 0 || parallel < 0 || parallel > 64 || reps > 16)
		return err_done(-EINVAL);
	char q[128];
	int n = snprintf(q, sizeof(q), "&parallel=%d", parallel ? parallel : 8);
	if (bandwidth > 0)
		n += snprintf(q + n, sizeof(q) - (size_t)n, "&bandwidth=%" PRId64, bandwidth);
	if (flags & FERRY_LOAD_VERIFY)
		n += snprintf(q + n, sizeof(q) - (size_t)n, "&verify=1");
	if (reps)
		n += snprintf(q + n, sizeof(q) - (size_t)n, "&replicas=%u", reps);
	if (flags & FERRY_LOAD_LOCAL)
		snprintf(q + n, sizeof(q) - (size_t)n, "&local=1");
	char *text = NULL;
	int r = dataset_call(f, "POST", "/v1/load", path, q, &text);
	if (r == 0) {
		struct json_doc d;
		r = json_parse(&d, text, strlen(text)) == 0 ? 0 : -EPROTO;
		if (r == 0) {
			r = copy_str_member(&d, "id", id, 17);
			json_free(&d);
		}
		free(text);
	}
	return err_done(r);
}

int
ferry_load_json(ferry_t *f, const char *id, char **json)
{
	err_clear();
	if (!f || !json)
		return err_done(-EINVAL);
	char tg[64];
	if (id && (strlen(id) != 16 || strspn(id, "0123456789abcdef") != 16))
		return err_done(-EINVAL);
	snprintf(tg, sizeof(tg), "/v1/load%s%s", id ? "?id=" : "", id ? id : "");
	return err_done(get_json_text(f, tg, json));
}

int
ferry_load_stop(ferry_t *f, const char *id)
{
	err_clear();
	if (!f || !id || strlen(id) != 16 || strspn(id, "0123456789abcdef") != 16)
		return err_done(-EINVAL);
	char tg[64];
	snprintf(tg, sizeof(tg), "/v1/load?id=%s", id);
	struct dbuf reply;
	struct json_doc d;
	int r = json_request(f, "DELETE", tg, NULL, &reply, &d);
	if (r == 0) {
		json_free(&d);
		dbuf_free(&reply);
	}
	return err_done(r);
}

int
ferry_refresh_log_json(ferry_t *f, uint64_t since, char **json)
{
	err_clear();
	char tg[64];
	snprintf(tg, sizeof(tg), "/v1/refresh?since=%" PRIu64, since);
	return err_done(get_json_text(f, tg, json));
}
