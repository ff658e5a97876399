/*
 * ufs_s3.c: the s3:// under-store: objects of one bucket, under an optional
 * key prefix (s3://bucket/prefix), read over HTTP(S) with libcurl and
 * SigV4-signed (sigv4_sign) unless no keys are configured (anonymous).
 *
 * Requests: HEAD (stat), GET with Range and If-Match (read), ListObjectsV2
 * (list, and stat of a "directory"), and the writes below.  Transport
 * failures, timeouts and 500/502/503/504 are retried with exponential
 * backoff and jitter (100 ms base, 5 s cap), s3.retries times; 4xx never
 * are.  Each attempt is bounded by s3.connect_timeout_ms, s3.timeout_ms, a
 * low-speed limit and s3.stall_ms without a byte received or sent (a hung
 * store that accepted the connection), and the whole call, retries
 * included, by s3.deadline_ms: a store that is down or hung fails a call
 * in seconds, never minutes.  Bodies are bounded: a read writes straight
 * into the caller's buffer and a server sending more than asked for is
 * -EIO; a list reply may be 16 MiB, an error reply is kept up to 64 KiB.
 * Reads also compare the reply's ETag with the expected one, so a server
 * that ignores If-Match still yields -ESTALE for a changed object.
 *
 * The root prefix is taken as a directory: s3://b/data means keys under
 * "data/".  Listed keys that no valid ufs path could name (not UTF-8,
 * control characters, empty, "." or ".." segments, longer than
 * UFS_KEY_MAX) are skipped; "directory marker" objects ending in '/' are
 * keys like any other (stat and read answer them; a missing "dir/" is
 * -ENOENT, never a directory).  The delimiter, any string, goes to the
 * store; a common prefix that does not end in it is skipped.
 * Output is strictly ascending even if the server repeats a common prefix
 * across pages.  When the callback returns non-zero, list stops, sets
 * *truncated and returns that value (ufs_file does the same).
 *
 * Writes: PUT, POST and DELETE go through the same s3_perform (timeouts,
 * retries, deadline per request; a body is sent again on a retry).  A body
 * carries Content-MD5 and, signed, x-amz-content-sha256 = its SHA-256 (or
 * UNSIGNED-PAYLOAD with s3.unsigned_payload).  A write session buffers the
 * body in parts of s3.part_size (8 MiB): an object of at most one part is
 * one PutObject at commit; a larger one is a multipart upload, created
 * when the second part's first byte comes, its parts uploaded by threads
 * of the session, at most s3.upload_parallelism (4) at once, each from one
 * of that many buffers, so a session holds at most upload_parallelism x
 * part_size bytes (32 MiB by default; the writer waits for a free buffer).
 * A known size over 10000 parts gets bigger parts (size / 10000, so memory
 * grows with it); an unknown one fails at part 10001 (-EFBIG).  The
 * write of a client's multipart upload (ufs_put_opts.parts) makes its
 * parts the client's instead, when each is at most S3_PLAN_PART_MAX (64
 * MiB: every common client's; memory is then upload_parallelism x the
 * largest, the excess over part_size within S3_PLAN_BUDGET for all writes
 * together), and is a multipart upload even of one part, so the object's
 * ETag is the one S3 gives the client's upload done directly.  Commit
 * sends CompleteMultipartUpload (its ETag is S3's md5-of-md5s-N); any
 * failure, and put_abort, cancels the parts in flight, waits for them and
 * sends AbortMultipartUpload, so no upload is left behind (if even the
 * abort fails it is logged with the upload id: a lifecycle rule must take
 * it).  if_none_match / if_match are If-None-Match: * / If-Match on
 * PutObject, CompleteMultipartUpload and CopyObject: 412 is -EEXIST /
 * -ESTALE, a 409 (conflicting conditional writes) is retried.  A 200 whose
 * body is an Error (Complete, CopyObject, UploadPartCopy) fails, and is
 * tried again for InternalError and SlowDown.  The object's headers
 * (content-type, x-amz-meta-*, ...) go on PutObject and
 * CreateMultipartUpload, and stat and read_stat answer them from the
 * reply's headers (ufs_answer_hdrs).  After a write, the new version's stat is a
 * HEAD's, what stat answers next (Last-Modified is the store's); if the
 * HEAD sees another version or fails, the write's own answer (its ETag,
 * Last-Modified or Date) is used.  remove is DeleteObject (404 is done).
 * copy is a HEAD of the source, CopyObject (source over 5 GiB: a
 * multipart upload of 512 MiB UploadPartCopy ranges pinned to the source's
 * ETag with x-amz-copy-source-if-match, carrying its headers over) and a
 * HEAD of the copy.  Result documents are parsed by s3_resultxml_parse,
 * bounded (64 KiB).
 *
 * Threads: any number at once.  The state is read-only after open except
 * the pool of curl easy handles (curl_pool.h) and the CURLSH share of DNS and
 * TLS sessions (its own locks).  A pooled handle keeps its live
 * connections, so TCP and TLS are reused across calls.  Connections are
 * not shared between handles: libcurl does not support a connection cache
 * used by concurrent threads.  Secrets are never logged; failures are
 * logged once, at warn, with the HTTP status and S3 error code.  A write
 * session is one caller's at a time; its part threads share only the
 * session's slots, ETag list and first failure, under its mutex.
 */
#include "ufs.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/crypto.h"
#include "common/curl_pool.h"
#include "common/dbuf.h"
#include "common/http_reply.h"
#include "common/log.h"
#include "common/suggest.h"
#include "common/util.h"
#include "common/sigv4.h"
#include "ufs/s3_listxml.h"

/* The slowest upload rate a body's time limits allow for (bytes/s). */
#define S3_UPLOAD_FLOOR_RATE (128 * 1024)
#define S3_LIST_BODY_MAX (16u << 20)
#define S3_ERR_BODY_MAX (64u << 10)
#define S3_LIST_PAGE_MAX 1000
#define S3_PAGE_ITEMS_MAX 20000 /* entries kept from one list reply */
#define S3_BACKOFF_BASE_MS 100
#define S3_BACKOFF_CAP_MS 5000
#define S3_POOL_MAX 64
#define S3_LOW_SPEED_BYTES 1024L
#define S3_LOW_SPEED_SECS 30L
#define S3_URL_MAX 8192
/* Writes: S3's limits, and ours. */
#define S3_PART_MIN (5LL << 20)   /* every part but the last */
#define S3_PART_MAX (5LL << 30)
#define S3_PARTS_MAX 10000
#define S3_PLAN_PART_MAX (64LL << 20) /* a client's part a write follows */
/* What writes following clients' parts may hold beyond their usual
 * buffers (parts larger than s3.part_size), all together: past it a write
 * uses its own parts.  Clients choose part sizes: this bounds what they
 * make the worker hold. */
#define S3_PLAN_BUDGET (256LL << 20)
static int64_t g_plan_held; /* atomic: bytes of S3_PLAN_BUDGET reserved */
#define S3_OBJECT_MAX (5LL << 40)
#define S3_COPY_MAX (5LL << 30)   /* CopyObject's source; above, parts */
#define S3_COPY_PART (512LL << 20) /* a part of such a copy (in the store) */
#define S3_PAR_MAX 32
#define S3_RESULT_BODY_MAX (64u << 10) /* a write's result document */
#define S3_COMPLETE_BODY_MAX (2u << 20) /* 10000 parts' list */
#define S3_UPLOAD_ID_MAX 1024
#define S3_META_MAX (16u << 10)   /* an object's headers carried by a copy */
#define S3_CALL_HDRS_MAX 48

struct s3_state {
	char *bucket;
	char *prefix; /* "" or ending in '/' */
	size_t prefix_len;
	char *base_url;  /* "https://host[:port]", no trailing '/' */
	char *host;      /* Host header value */
	char *path_base; /* "/bucket" (path style) or "" (virtual host) */
	char *region;
	char *access_key; /* NULL: anonymous */
	char *secret_key;
	char *session_token;
	long connect_timeout_ms;
	long timeout_ms;
	long stall_ms;    /* an attempt that receives nothing this long fails */
	long deadline_ms; /* a call, retries included, ends by then */
	int retries;
	int insecure;
	int64_t part_size;    /* s3.part_size */
	int upload_par;       /* s3.upload_parallelism */
	int unsigned_payload; /* s3.unsigned_payload */

	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	struct curl_pool pool; /* idle handles */
};

/* One HTTP exchange (with its retries). */
struct s3_call {
	const char *method; /* "GET", "HEAD", "PUT", "POST", "DELETE" */
	const char *key;    /* full object key; NULL for the bucket itself */
	const char *query;  /* encoded, sorted; "" if none */
	const char *range;  /* Range value or NULL */
	const char *if_match; /* If-Match value or NULL */
	char *buf;          /* 2xx body sink: caller memory, cap bytes */
	size_t cap;
	struct dbuf *body;  /* 2xx body sink: bounded buffer */
	const char *send;   /* request body (PUT, POST), or NULL for none */
	size_t send_len;
	const struct sigv4_hdr *hdrs; /* more headers, sent and signed */
	int nhdrs;
	int retry_409;      /* a 409 (conditional writes in conflict) is retried */
	const int *cancel;  /* non-zero (atomic): give up at once */
	struct dbuf *meta;  /* if set: the object's headers kept ("name\0value\0") */
	char payload_hash[65];
	char content_md5[32];
	int cancelled;
	curl_off_t up_last; /* bytes sent at the last progress call */
	int64_t date;       /* the reply's Date, or -1 */

	long status;
	size_t got;
	int overflow;
	int64_t content_length;
	int64_t last_modified;
	int64_t cr_start, cr_total; /* Content-Range; -1 if absent */
	char etag[UFS_ETAG_MAX];
	int etag_bad; /* ETag header too long to keep */
	int empty_206; /* a 206 for a range of an empty object: aborted */
	struct dbuf errbody;
	int64_t last_ms;  /* when the store last sent something */
	long stall_ms;
	int stalled;      /* the attempt was aborted for silence */
};

/* ---- options ---- */

static char *
s3_errmsg(const char *fmt, const char *a)
{
	char *m = NULL;
	if (asprintf(&m, fmt, a) < 0)
		return NULL;
	return m;
}

static int
parse_bool(const char *v, int *out)
{
	if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) {
		*out = 1;
		return 0;
	}
	if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) {
		*out = 0;
		return 0;
	}
	return -EINVAL;
}

static int
parse_long(const char *v, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi)
		return -EINVAL;
	*out = x;
	return 0;
}

/* A header value we are about to send: no control characters. */
static int
header_safe(const char *v)
{
	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

static int
valid_bucket(const char *b, size_t n)
{
	if (n < 1 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = b[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

static int
valid_region(const char *r)
{
	if (!*r || strlen(r) > 64)
		return 0;
	for (; *r; r++)
		if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') ||
		    *r == '-'))
			return 0;
	return 1;
}

/* Splits "http[s]://authority[/]" into a base URL and the authority. */
static int
parse_endpoint(const char *ep, char **base, char **authority)
{
	const char *rest;
	if (!strncasecmp(ep, "https://", 8))
		rest = ep + 8;
	else if (!strncasecmp(ep, "http://", 7))
		rest = ep + 7;
	else
		return -EINVAL;
	size_t n = strcspn(rest, "/?#");
	if (n == 0 || (rest[n] && strcmp(rest + n, "/") != 0))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)rest[i];
		if (c <= 0x20 || c >= 0x7f || c == '@' || c == '\\')
			return -EINVAL;
	}
	*authority = strndup(rest, n);
	*base = strndup(ep, (size_t)(rest - ep) + n);
	if (!*authority || !*base) {
		free(*authority);
		free(*base);
		return -ENOMEM;
	}
	return 0;
}

static void
free_secret(char *s)
{
	if (!s)
		return;
	memset(s, 0, strlen(s));
	free(s);
}

static void
s3_close(void *state)
{
	struct s3_state *s = state;
	if (!s)
		return;
	curl_pool_destroy(&s->pool);
	if (s->share)
		curl_share_cleanup(s->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&s->share_locks[i]);
	free(s->bucket);
	free(s->prefix);
	free(s->base_url);
	free(s->host);
	free(s->path_base);
	free(s->region);
	free(s->access_key);
	free_secret(s->secret_key);
	free_secret(s->session_token);
	free(s);
}

static void
share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *u)
{
	struct s3_state *s = u;
	pthread_mutex_lock(&s->share_locks[data]);
}

static void
share_unlock(CURL *h, curl_lock_data data, void *u)
{
	struct s3_state *s = u;
	pthread_mutex_unlock(&s->share_locks[data]);
}

/* Every option s3_parse_opts takes (ufs_ops.options): what `ferry mount
 * --help`, the man page and "did you mean" know. */
static const struct ufs_optdoc s3_options[] = {
	{"s3.endpoint", "URL", "http[s]://HOST[:PORT] of an S3-compatible store "
	    "(default https://s3.REGION.amazonaws.com)"},
	{"s3.region", "REGION", "region requests are signed for (default us-east-1)"},
	{"s3.access_key", "KEY", "access key id (without keys, requests are anonymous)"},
	{"s3.secret_key", "SECRET", "secret access key (never shown or logged)"},
	{"s3.session_token", "TOKEN", "session token of temporary credentials "
	    "(never shown or logged)"},
	{"s3.path_style", "true|false", "path-style URLs, http://HOST/BUCKET/KEY "
	    "(default: true with s3.endpoint or a bucket name with dots)"},
	{"s3.connect_timeout_ms", "MS", "connect timeout of each attempt (default 5000)"},
	{"s3.timeout_ms", "MS", "time limit of each attempt (default 60000; more\n"
	    "for a body, as for s3.deadline_ms)"},
	{"s3.retries", "N", "retries of failed connections, timeouts and 5xx "
	    "answers, with backoff (default 4; 0..100)"},
	{"s3.stall_ms", "MS", "an attempt that receives nothing for this long "
	    "fails and is retried (default 5000; checked about every second)"},
	{"s3.deadline_ms", "MS", "time limit of a whole call, retries included "
	    "(default 20000): a down or hung store fails a read this fast; a call\n"
	    "that sends a body (a PUT, a part) gets 1 s more per 128 KiB of it"},
	{"s3.insecure", "true|false", "do not verify the TLS certificate (default false)"},
	{"s3.part_size", "SIZE", "largest object written in one PUT, and the part "
	    "size of larger ones (multipart upload) (default 8MiB; 5MiB..5GiB)"},
	{"s3.upload_parallelism", "N", "parts of one write uploaded at once "
	    "(default 4; 1..32): a write holds at most N parts in memory"},
	{"s3.unsigned_payload", "true|false", "sign writes with UNSIGNED-PAYLOAD, "
	    "not the body's SHA-256 (less CPU; Content-MD5 still guards the body; "
	    "default false)"},
	{NULL, NULL, NULL},
};

/* Parses the options into s; on error sets *err and returns -EINVAL. */
static int
s3_parse_opts(struct s3_state *s, const struct ufs_opt *opts, int nopts,
    const char **endpoint, int *path_style, char **err)
{
	for (int i = 0; i < nopts; i++) {
		const char *k = opts[i].key ? opts[i].key : "";
		const char *v = opts[i].value ? opts[i].value : "";
		long x = 0;
		int r = 0;
		if (!strcmp(k, "s3.endpoint")) {
			*endpoint = v;
		} else if (!strcmp(k, "s3.region")) {
			free(s->region);
			s->region = NULL;
			if (!valid_region(v))
				r = -EINVAL;
			else if (!(s->region = strdup(v)))
				return -ENOMEM;
		} else if (!strcmp(k, "s3.access_key")) {
			free(s->access_key);
			if (!(s->access_key = strdup(v)))
				return -ENOMEM;
		} else if (!strcmp(k, "s3.secret_key")) {
			free_secret(s->secret_key);
			if (!(s->secret_key = strdup(v)))
				return -ENOMEM;
		} else if (!strcmp(k, "s3.session_token")) {
			free_secret(s->session_token);
			if (!(s->session_token = strdup(v)))
				return -ENOMEM;
		} else if (!strcmp(k, "s3.path_style")) {
			r = parse_bool(v, path_style);
		} else if (!strcmp(k, "s3.connect_timeout_ms")) {
			r = parse_long(v, 1, 3600000, &s->connect_timeout_ms);
		} else if (!strcmp(k, "s3.timeout_ms")) {
			r = parse_long(v, 1, 86400000, &s->timeout_ms);
		} else if (!strcmp(k, "s3.stall_ms")) {
			r = parse_long(v, 100, 3600000, &s->stall_ms);
		} else if (!strcmp(k, "s3.deadline_ms")) {
			r = parse_long(v, 100, 86400000, &s->deadline_ms);
		} else if (!strcmp(k, "s3.retries")) {
			r = parse_long(v, 0, 100, &x);
			s->retries = (int)x;
		} else if (!strcmp(k, "s3.insecure")) {
			r = parse_bool(v, &s->insecure);
		} else if (!strcmp(k, "s3.part_size")) {
			int64_t ps = parse_size(v);
			if (ps < S3_PART_MIN || ps > S3_PART_MAX)
				r = -EINVAL;
			else
				s->part_size = ps;
		} else if (!strcmp(k, "s3.upload_parallelism")) {
			r = parse_long(v, 1, S3_PAR_MAX, &x);
			s->upload_par = (int)x;
		} else if (!strcmp(k, "s3.unsigned_payload")) {
			r = parse_bool(v, &s->unsigned_payload);
		} else {
			struct suggest sg;
			suggest_init(&sg, k);
			for (const struct ufs_optdoc *o = s3_options; o->key; o++)
				suggest_try(&sg, o->key);
			const char *best = suggest_best(&sg);
			if (!best || asprintf(err, "s3: unknown option '%s' (did "
			    "you mean '%s'?)", k, best) < 0)
				*err = s3_errmsg("s3: unknown option '%s' (see "
				    "`ferry mount --help`)", k);
			return -EINVAL;
		}
		if (r) {
			*err = s3_errmsg("s3: bad value for option '%s'", k);
			return -EINVAL;
		}
	}
	return 0;
}

static int
s3_open(const char *root, const struct ufs_opt *opts, int nopts,
    void **state, char **err)
{
	*state = NULL;
	*err = NULL;
	if (curl_ready() < 0) {
		*err = s3_errmsg("s3: %s", "libcurl initialisation failed");
		return -EIO;
	}
	struct s3_state *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	curl_pool_init(&s->pool, S3_POOL_MAX);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&s->share_locks[i], NULL);
	s->connect_timeout_ms = 5000;
	s->timeout_ms = 60000;
	s->stall_ms = 5000;
	s->deadline_ms = 20000;
	s->retries = 4;
	s->part_size = 8LL << 20;
	s->upload_par = 4;

	const char *endpoint = NULL;
	int path_style = -1, r;
	char *authority = NULL;
	if ((r = s3_parse_opts(s, opts, nopts, &endpoint, &path_style, err)))
		goto fail;
	r = -EINVAL;
	if (!s->region && !(s->region = strdup("us-east-1"))) {
		r = -ENOMEM;
		goto fail;
	}
	if ((s->access_key && !*s->access_key) ||
	    (s->secret_key && !*s->secret_key)) {
		*err = s3_errmsg("s3: %s", "empty s3.access_key or s3.secret_key");
		goto fail;
	}
	if (!s->access_key != !s->secret_key) {
		*err = s3_errmsg("s3: %s", "s3.access_key and s3.secret_key "
		    "go together");
		goto fail;
	}
	if (s->session_token && !s->access_key) {
		*err = s3_errmsg("s3: %s", "s3.session_token needs keys");
		goto fail;
	}
	if ((s->access_key && !header_safe(s->access_key)) ||
	    (s->session_token && !header_safe(s->session_token))) {
		*err = s3_errmsg("s3: %s", "control characters in credentials");
		goto fail;
	}

	/* root: "bucket[/prefix]" */
	if (!root)
		root = "";
	size_t blen = strcspn(root, "/");
	if (!valid_bucket(root, blen)) {
		*err = s3_errmsg("s3: bad bucket name in 's3://%s'", root);
		goto fail;
	}
	const char *pfx = root[blen] ? root + blen + 1 : "";
	size_t plen = strlen(pfx);
	if (!utf8_valid(pfx, plen) || !header_safe(pfx) || pfx[0] == '/' ||
	    strstr(pfx, "//")) {
		*err = s3_errmsg("s3: bad key prefix in 's3://%s'", root);
		goto fail;
	}
	s->bucket = strndup(root, blen);
	s->prefix = malloc(plen + 2);
	if (!s->bucket || !s->prefix) {
		r = -ENOMEM;
		goto fail;
	}
	memcpy(s->prefix, pfx, plen);
	if (plen && pfx[plen - 1] != '/')
		s->prefix[plen++] = '/';
	s->prefix[plen] = 0;
	s->prefix_len = plen;
	if (plen > UFS_KEY_MAX) {
		*err = s3_errmsg("s3: key prefix too long in 's3://%s'", root);
		goto fail;
	}

	if (endpoint) {
		if ((r = parse_endpoint(endpoint, &s->base_url, &authority))) {
			if (r == -EINVAL)
				*err = s3_errmsg("s3: bad s3.endpoint '%s' "
				    "(want http[s]://host[:port])", endpoint);
			goto fail;
		}
		r = -EINVAL;
	} else {
		if (asprintf(&authority, "s3.%s.amazonaws.com", s->region) < 0) {
			authority = NULL;
			r = -ENOMEM;
			goto fail;
		}
		if (!(s->base_url = strdup("https://"))) {
			r = -ENOMEM;
			goto fail;
		}
		/* "https://" + host below */
	}
	if (path_style < 0)
		path_style = endpoint != NULL || strchr(s->bucket, '.') != NULL;
	const char *scheme_end = strstr(s->base_url, "://") + 3;
	char *base = NULL;
	if (path_style) {
		s->host = strdup(authority);
		if (asprintf(&s->path_base, "/%s", s->bucket) < 0)
			s->path_base = NULL;
	} else {
		if (asprintf(&s->host, "%s.%s", s->bucket, authority) < 0)
			s->host = NULL;
		s->path_base = strdup("");
	}
	if (!s->host || !s->path_base ||
	    asprintf(&base, "%.*s%s", (int)(scheme_end - s->base_url),
	    s->base_url, s->host) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	free(s->base_url);
	s->base_url = base;
	free(authority);
	authority = NULL;

	s->share = curl_share_init();
	if (!s->share) {
		r = -ENOMEM;
		goto fail;
	}
	curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(s->share, CURLSHOPT_USERDATA, s);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	*state = s;
	return 0;
fail:
	free(authority);
	if (r == -EINVAL && !*err)
		*err = s3_errmsg("s3: %s", "invalid configuration");
	s3_close(s);
	return r;
}

/* ---- one request ---- */

static void
call_reset_response(struct s3_call *c)
{
	c->got = 0;
	c->overflow = 0;
	c->content_length = -1;
	c->last_modified = -1;
	c->cr_start = c->cr_total = -1;
	c->etag[0] = 0;
	c->etag_bad = 0;
	c->empty_206 = 0;
	c->date = -1;
	dbuf_reset(&c->errbody);
	if (c->body)
		dbuf_reset(c->body);
	if (c->meta)
		dbuf_reset(c->meta);
}

/* The headers stored with an object, that a copy carries over. */
static int
is_object_header(const struct http_hdr *h)
{
	static const char *const names[] = {"content-type", "content-encoding",
	    "content-language", "content-disposition", "cache-control",
	    "expires"};
	if (h->name_len > 11 && !strncasecmp(h->name, "x-amz-meta-", 11))
		return 1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (http_hdr_is(h, names[i]))
			return 1;
	return 0;
}

static size_t
on_header(char *p, size_t size, size_t nitems, void *arg)
{
	struct s3_call *c = arg;
	size_t n = size * nitems;
	c->last_ms = now_ms();
	struct http_hdr h;
	if (http_hdr_split(p, n, &h) < 0)
		return n;
	if (h.status) {
		/* A new response (after a 100 Continue, say) starts over. */
		c->status = h.status;
		call_reset_response(c);
		return n;
	}
	int64_t a, b, total;
	if (http_hdr_is(&h, "content-length")) {
		c->content_length = http_dec(h.value, h.value_len);
	} else if (http_hdr_is(&h, "etag")) {
		if (http_etag_value(h.value, h.value_len, c->etag, sizeof(c->etag)) < 0) {
			c->etag_bad = 1;
			c->etag[0] = 0;
		}
	} else if (http_hdr_is(&h, "last-modified")) {
		c->last_modified = parse_http_date(h.value, h.value_len);
	} else if (http_hdr_is(&h, "date")) {
		c->date = parse_http_date(h.value, h.value_len);
	} else if (c->meta && c->status >= 200 && c->status < 300 &&
	    is_object_header(&h)) {
		for (size_t i = 0; i < h.name_len; i++) {
			char lc = (char)tolower((unsigned char)h.name[i]);
			dbuf_add(c->meta, &lc, 1);
		}
		dbuf_add(c->meta, "", 1);
		dbuf_add(c->meta, h.value, h.value_len);
		dbuf_add(c->meta, "", 1);
	} else if (http_hdr_is(&h, "content-range")) {
		if (http_content_range(h.value, h.value_len, &a, &b, &total) == 0) {
			c->cr_start = a;
			c->cr_total = total;
		}
		/* No range of an empty object exists, yet some stores (s3rver)
		 * answer one with "bytes 0-0/0", Content-Length 1 and no body,
		 * which would end in a partial-transfer error and retries:
		 * stop here, the caller asks stat instead. */
		if (c->status == 206 && c->cr_total == 0) {
			c->empty_206 = 1;
			return 0;
		}
	}
	return n;
}

static size_t
on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct s3_call *c = arg;
	size_t n = size * nmemb;
	c->last_ms = now_ms();
	if (c->status >= 200 && c->status < 300) {
		if (c->buf) {
			if (n > c->cap - c->got) {
				c->overflow = 1;
				return 0; /* aborts the transfer */
			}
			memcpy(c->buf + c->got, p, n);
			c->got += n;
		} else if (c->body) {
			if (dbuf_add(c->body, p, n)) {
				c->overflow = 1;
				return 0;
			}
		}
		return n;
	}
	/* An error body: keep what fits, drop the rest. */
	size_t room = c->errbody.max - c->errbody.len;
	if (room)
		dbuf_add(&c->errbody, p, n < room ? n : room);
	return n;
}

static int
build_path(const struct s3_state *s, const char *key, struct dbuf *path)
{
	int r = dbuf_adds(path, s->path_base);
	if (!r && key)
		r = dbuf_add(path, "/", 1);
	if (!r && key)
		r = url_encode(path, key, strlen(key), 1);
	if (!r && path->len == 0)
		r = dbuf_add(path, "/", 1);
	return r;
}

static int
add_header(struct curl_slist **l, const char *name, const char *value)
{
	char line[S3_URL_MAX];
	/* "Name:" alone removes a header libcurl would add. */
	int n = snprintf(line, sizeof(line), "%s:%s%s", name,
	    value[0] ? " " : "", value);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -E2BIG;
	struct curl_slist *nl = curl_slist_append(*l, line);
	if (!nl)
		return -ENOMEM;
	*l = nl;
	return 0;
}

/* Builds the header list, signing the request if keys are configured:
 * every header it sets is signed but Expect and Content-Type when empty
 * (which only stop libcurl adding its own). */
static int
build_headers(const struct s3_state *s, const struct s3_call *c,
    const char *path, struct curl_slist **hl)
{
	int r;
	*hl = NULL;
	if (c->nhdrs > S3_CALL_HDRS_MAX)
		return -E2BIG;
	if ((r = add_header(hl, "Host", s->host)))
		return r;
	struct sigv4_hdr extra[S3_CALL_HDRS_MAX + 3];
	int n = 0, has_type = 0;
	if (c->range)
		extra[n++] = (struct sigv4_hdr){"range", c->range};
	if (c->if_match)
		extra[n++] = (struct sigv4_hdr){"if-match", c->if_match};
	if (c->send)
		extra[n++] = (struct sigv4_hdr){"content-md5", c->content_md5};
	for (int i = 0; i < c->nhdrs; i++) {
		extra[n++] = c->hdrs[i];
		has_type |= !strcasecmp(c->hdrs[i].name, "content-type");
	}
	for (int i = 0; i < n; i++)
		if ((r = add_header(hl, extra[i].name, extra[i].value)))
			return r;
	/* A body: no "Expect: 100-continue" round trip, and no form type. */
	if (c->send && ((r = add_header(hl, "Expect", "")) ||
	    (!has_type && (r = add_header(hl, "Content-Type", "")))))
		return r;
	if (!s->access_key)
		return 0;
	struct sigv4_sign_req req = {
	    .method = c->method,
	    .host = s->host,
	    .path = path,
	    .query = c->query,
	    .headers = extra,
	    .nheaders = n,
	    .payload_hash = c->payload_hash,
	    .region = s->region,
	    .service = "s3",
	    .access_key = s->access_key,
	    .secret_key = s->secret_key,
	    .session_token = s->session_token,
	    .now = wall_sec(),
	};
	struct dbuf authz;
	char amz_date[17];
	dbuf_init(&authz, 4096);
	r = sigv4_sign(&req, &authz, amz_date);
	if (!r)
		r = add_header(hl, "x-amz-date", amz_date);
	if (!r)
		r = add_header(hl, "x-amz-content-sha256", c->payload_hash);
	if (!r && s->session_token)
		r = add_header(hl, "x-amz-security-token", s->session_token);
	if (!r)
		r = add_header(hl, "Authorization", authz.p);
	dbuf_free(&authz);
	return r;
}

static int
curl_retryable(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

static int
status_retryable(long st)
{
	return st == 500 || st == 502 || st == 503 || st == 504;
}

/* An attempt whose store sent nothing for stall_ms is dead: a hung store
 * accepts the connection and never answers (curl's low-speed check would
 * wait 30 s). */
static int
on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct s3_call *c = arg;
	if (c->cancel && __atomic_load_n(c->cancel, __ATOMIC_RELAXED)) {
		c->cancelled = 1;
		return 1;
	}
	if (un != c->up_last) { /* sending a body is progress too */
		c->up_last = un;
		c->last_ms = now_ms();
	}
	if (now_ms() - c->last_ms > c->stall_ms) {
		c->stalled = 1;
		return 1;
	}
	return 0;
}

/* Sleeps a random time in [d/2, d], d = min(cap, base * 2^(attempt-1)),
 * so that clients retrying together spread out; never past max_ms. */
static void
backoff_sleep(int attempt, int64_t max_ms)
{
	static _Thread_local uint64_t rng;
	if (!rng)
		rng = (uint64_t)now_ns() ^ ((uint64_t)(uintptr_t)&rng << 16) ^
		    0x9e3779b97f4a7c15ull;
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	int64_t d = S3_BACKOFF_BASE_MS;
	for (int i = 1; i < attempt && d < S3_BACKOFF_CAP_MS; i++)
		d *= 2;
	if (d > S3_BACKOFF_CAP_MS)
		d = S3_BACKOFF_CAP_MS;
	int64_t ms = d / 2 + (int64_t)(rng % (uint64_t)(d / 2 + 1));
	if (ms > max_ms)
		ms = max_ms > 0 ? max_ms : 0;
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static const char *
call_what(const struct s3_call *c)
{
	return c->key ? c->key : "(bucket)";
}

/* Says why a call failed in ufs_last_error(): "s3://BUCKET[/KEY]: " and
 * what. */
static void
set_call_error(const struct s3_state *s, const struct s3_call *c,
    const char *what)
{
	ufs_set_error("s3://%s%s%s: %s", s->bucket, c->key ? "/" : "",
	    c->key ? c->key : "", what);
}

/* A final error status: the store's code and message (from the error
 * body) go to ufs_last_error(), and to the log at warn unless quiet. */
static void
http_failure(const struct s3_state *s, const struct s3_call *c, int quiet)
{
	char code[64], msg[256], what[400];
	code[0] = msg[0] = 0;
	if (c->errbody.len)
		s3_errxml_parse(c->errbody.p, c->errbody.len, code,
		    sizeof(code), msg, sizeof(msg));
	if (quiet)
		LOG_DEBUG("s3: %s s3://%s/%s: HTTP %ld%s%s", c->method,
		    s->bucket, call_what(c), c->status, code[0] ? " " : "", code);
	else
		LOG_WARN("s3: %s s3://%s/%s: HTTP %ld%s%s%s%s", c->method,
		    s->bucket, call_what(c), c->status, code[0] ? " " : "", code,
		    msg[0] ? ": " : "", msg);
	if (code[0])
		snprintf(what, sizeof(what), "%s%s%s (HTTP %ld)", code,
		    msg[0] ? ": " : "", msg, c->status);
	else
		snprintf(what, sizeof(what), "HTTP %ld", c->status);
	set_call_error(s, c, what);
}

/*
 * Runs the request with retries.  Returns 0 when an HTTP reply was had
 * (c->status set, perhaps an error status), or -ETIMEDOUT / -EIO when none
 * came (logged).
 */
static int
s3_perform(struct s3_state *s, struct s3_call *c)
{
	struct dbuf path, url;
	dbuf_init(&path, S3_URL_MAX);
	dbuf_init(&url, S3_URL_MAX);
	dbuf_init(&c->errbody, S3_ERR_BODY_MAX);
	int r = build_path(s, c->key, &path);
	if (!r)
		r = dbuf_printf(&url, "%s%s%s%s", s->base_url, path.p,
		    c->query[0] ? "?" : "", c->query);
	if (r) {
		dbuf_free(&path);
		dbuf_free(&url);
		return r == -E2BIG ? -ENAMETOOLONG : r;
	}
	ufs_clear_error();
	int head = !strcmp(c->method, "HEAD");
	/* The body's digests, once for all attempts. */
	snprintf(c->payload_hash, sizeof(c->payload_hash), "%s",
	    SIGV4_EMPTY_SHA256);
	if (c->send) {
		unsigned char md5[16];
		struct dbuf b64;
		dbuf_init(&b64, sizeof(c->content_md5) - 1);
		md5_digest(c->send, c->send_len, md5);
		b64_encode(&b64, md5, sizeof(md5));
		snprintf(c->content_md5, sizeof(c->content_md5), "%s",
		    b64.p ? b64.p : "");
		dbuf_free(&b64);
		if (s->unsigned_payload)
			snprintf(c->payload_hash, sizeof(c->payload_hash), "%s",
			    SIGV4_UNSIGNED_PAYLOAD);
		else if (s->access_key)
			sha256_hex(c->send, c->send_len, c->payload_hash);
	}
	CURLcode cc = CURLE_OK;
	char curl_err[CURL_ERROR_SIZE];
	int attempt;
	/* A body takes the time its bytes need on a slow link: the limits
	 * grow by its size at S3_UPLOAD_FLOOR_RATE (a stalled upload is
	 * still caught by s3.stall_ms).  Without this an 8 MiB part over a
	 * 10 Mbit/s link, four at once, could never finish in 20 s. */
	int64_t body_ms = c->send ? (int64_t)(c->send_len * 1000 / S3_UPLOAD_FLOOR_RATE) : 0;
	int64_t deadline = now_ms() + s->deadline_ms + body_ms;
	long attempt_ms = s->timeout_ms + (long)body_ms;
	c->stall_ms = s->stall_ms;
	for (attempt = 0; attempt <= s->retries; attempt++) {
		if (attempt > 0) {
			if (c->cancel && __atomic_load_n(c->cancel,
			    __ATOMIC_RELAXED)) {
				c->cancelled = 1;
				r = -ECANCELED;
				break;
			}
			backoff_sleep(attempt, deadline - now_ms());
			if (deadline - now_ms() < 50)
				break; /* out of time: the last failure stands */
		}
		int64_t left = deadline - now_ms();
		c->status = 0;
		c->stalled = 0;
		c->up_last = 0;
		c->last_ms = now_ms();
		call_reset_response(c);
		struct curl_slist *hl = NULL;
		if ((r = build_headers(s, c, path.p, &hl)) != 0) {
			curl_slist_free_all(hl);
			LOG_WARN("s3: %s s3://%s/%s: cannot sign request: %s",
			    c->method, s->bucket, call_what(c), strerror(-r));
			break;
		}
		CURL *h = curl_pool_get(&s->pool);
		if (!h) {
			curl_slist_free_all(hl);
			r = -ENOMEM;
			break;
		}
		curl_err[0] = 0;
		curl_easy_setopt(h, CURLOPT_URL, url.p);
		curl_easy_setopt(h, CURLOPT_SHARE, s->share);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
		    s->connect_timeout_ms < left ? s->connect_timeout_ms : (long)left);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, attempt_ms < left ? attempt_ms : (long)left);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, S3_LOW_SPEED_BYTES);
		curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, S3_LOW_SPEED_SECS);
		curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
		if (head) {
			curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
		} else if (c->send) {
			/* libcurl sends it again on a retry or a redirect */
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
			    (curl_off_t)c->send_len);
			curl_easy_setopt(h, CURLOPT_POSTFIELDS,
			    c->send_len ? c->send : "");
			if (strcmp(c->method, "POST"))
				curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
				    c->method);
		} else {
			curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
			if (strcmp(c->method, "GET"))
				curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
				    c->method);
		}
		if (s->insecure) {
			curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
			curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
		}
		cc = curl_easy_perform(h);
		/* The handle outlives this call's buffers: unhook them. */
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
		curl_pool_put(&s->pool, h, 1);
		curl_slist_free_all(hl);
		if (cc == CURLE_OK) {
			r = 0;
			if ((status_retryable(c->status) ||
			    (c->retry_409 && c->status == 409)) &&
			    attempt < s->retries)
				continue;
			break;
		}
		if (c->cancelled) {
			r = -ECANCELED;
			break;
		}
		if (c->overflow) {
			LOG_WARN("s3: %s s3://%s/%s: reply body larger than "
			    "expected", c->method, s->bucket, call_what(c));
			set_call_error(s, c, "reply body larger than expected");
			r = -EIO;
			break;
		}
		if (c->empty_206) {
			r = -EIO;
			break;
		}
		r = cc == CURLE_OPERATION_TIMEDOUT || c->stalled ? -ETIMEDOUT : -EIO;
		if (!curl_retryable(cc) && !c->stalled)
			break;
	}
	if (r && cc != CURLE_OK && !c->overflow && !c->empty_206 &&
	    !c->cancelled) {
		int tries = attempt + (attempt <= s->retries);
		char stall[64];
		snprintf(stall, sizeof(stall), "no answer for %ld ms", c->stall_ms);
		const char *why = c->stalled ? stall : curl_err[0] ? curl_err : curl_easy_strerror(cc);
		LOG_WARN("s3: %s s3://%s/%s: %s (%s) after %d attempt(s)",
		    c->method, s->bucket, call_what(c), curl_easy_strerror(cc),
		    why, tries);
		char what[CURL_ERROR_SIZE + 64];
		snprintf(what, sizeof(what), "%s (%d attempt%s)", why, tries,
		    tries == 1 ? "" : "s");
		set_call_error(s, c, what);
	}
	dbuf_free(&path);
	dbuf_free(&url);
	return r;
}

/* Maps a final non-success status to -errno, logging it once and saying
 * why in ufs_last_error(). */
static int
s3_http_error(const struct s3_state *s, const struct s3_call *c)
{
	switch (c->status) {
	case 404:
	case 412:
		http_failure(s, c, 1);
		return c->status == 404 ? -ENOENT : -ESTALE;
	case 401:
	case 403:
		http_failure(s, c, 0);
		return -EACCES;
	default:
		http_failure(s, c, 0);
		return -EIO;
	}
}

static void
call_done(struct s3_call *c)
{
	dbuf_free(&c->errbody);
}

static int
full_key(const struct s3_state *s, const char *path, struct dbuf *k)
{
	dbuf_init(k, UFS_KEY_MAX + s->prefix_len + 2);
	int r = dbuf_add(k, s->prefix, s->prefix_len);
	if (!r)
		r = dbuf_adds(k, path);
	if (!r && !k->p)
		r = dbuf_add(k, "", 0);
	return r ? -ENAMETOOLONG : 0;
}

/* ---- list ---- */

struct page_item {
	size_t off, len; /* key in the arena */
	int is_prefix;
	int64_t size, mtime;
	char etag[S3_LIST_ETAG_MAX];
};

struct page {
	struct page_item *items;
	int n, cap;
	struct dbuf arena;
};

static int
page_add(void *arg, const struct s3_list_item *it)
{
	struct page *pg = arg;
	if (pg->n >= pg->cap) {
		/* More than the max-keys asked for: s3rver, for one, does not
		 * count CommonPrefixes.  Take it, up to a hard limit. */
		if (pg->cap >= S3_PAGE_ITEMS_MAX)
			return -EIO;
		int nc = pg->cap * 2 > S3_PAGE_ITEMS_MAX ? S3_PAGE_ITEMS_MAX
		                                          : pg->cap * 2;
		struct page_item *ni = realloc(pg->items,
		    (size_t)nc * sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		pg->items = ni;
		pg->cap = nc;
	}
	struct page_item *pi = &pg->items[pg->n];
	pi->off = pg->arena.len;
	pi->len = it->key_len;
	pi->is_prefix = it->is_prefix;
	pi->size = it->size;
	pi->mtime = it->mtime;
	snprintf(pi->etag, sizeof(pi->etag), "%s", it->etag);
	if (dbuf_add(&pg->arena, it->key, it->key_len + 1))
		return -EIO;
	pg->n++;
	return 0;
}

static int
page_item_cmp_arena(const struct page_item *a, const struct page_item *b,
    const char *base)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int r = memcmp(base + a->off, base + b->off, n);
	if (r)
		return r;
	return (a->len > b->len) - (a->len < b->len);
}

/* qsort has no context argument; qsort_r (GNU) does. */
static int
page_item_cmp(const void *a, const void *b, void *base)
{
	return page_item_cmp_arena(a, b, base);
}

/*
 * Can a valid ufs path name this relative key?  A key ending in '/' (a
 * directory marker) is valid if its directory is.  With partial set, k is
 * a common prefix: its last segment may be cut anywhere ("", "." too).
 */
static int
rel_key_ok(const char *k, size_t n, int partial)
{
	if (n == 0 || n > UFS_KEY_MAX || !utf8_valid(k, n))
		return 0;
	if (!partial && k[n - 1] == '/' && --n == 0)
		return 0; /* the root's own marker */
	size_t seg = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || k[i] == '/') {
			size_t sl = i - seg;
			if (i == n && partial)
				break;
			if (sl == 0 || (sl == 1 && k[seg] == '.') ||
			    (sl == 2 && k[seg] == '.' && k[seg + 1] == '.'))
				return 0;
			seg = i + 1;
			continue;
		}
		unsigned char c = (unsigned char)k[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

static int
add_param(struct dbuf *q, const char *name, const char *v, size_t n)
{
	int r = 0;
	if (q->len)
		r = dbuf_add(q, "&", 1);
	if (!r)
		r = dbuf_printf(q, "%s=", name);
	if (!r)
		r = url_encode(q, v, n, 0);
	return r;
}

static int
s3_list_page(struct s3_state *s, const char *full_prefix,
    const char *full_sa, const char *delimiter, const char *token, int max,
    struct page *pg, struct s3_list_result *res)
{
	struct dbuf q, body;
	dbuf_init(&q, S3_URL_MAX);
	dbuf_init(&body, S3_LIST_BODY_MAX);
	char mk[16];
	snprintf(mk, sizeof(mk), "%d", max);
	int r = 0;
	/* In sorted order, as signed. */
	if (token[0])
		r = add_param(&q, "continuation-token", token, strlen(token));
	if (!r && delimiter[0])
		r = add_param(&q, "delimiter", delimiter, strlen(delimiter));
	if (!r)
		r = add_param(&q, "list-type", "2", 1);
	if (!r)
		r = add_param(&q, "max-keys", mk, strlen(mk));
	if (!r && full_prefix[0])
		r = add_param(&q, "prefix", full_prefix, strlen(full_prefix));
	if (!r && full_sa[0] && !token[0])
		r = add_param(&q, "start-after", full_sa, strlen(full_sa));
	if (r) {
		dbuf_free(&q);
		return -ENAMETOOLONG;
	}
	struct s3_call c = {
	    .method = "GET", .key = NULL, .query = q.p, .body = &body};
	r = s3_perform(s, &c);
	if (!r && c.status != 200)
		r = s3_http_error(s, &c);
	if (!r) {
		pg->n = 0;
		dbuf_reset(&pg->arena);
		r = s3_listxml_parse(body.p ? body.p : "", body.len, page_add,
		    pg, res);
		if (r) {
			LOG_WARN("s3: list s3://%s/%s: malformed reply",
			    s->bucket, full_prefix);
			set_call_error(s, &c, "the reply is not a ListObjectsV2 "
			    "result (is s3.endpoint an S3 store?)");
			r = -EIO;
		}
	}
	call_done(&c);
	dbuf_free(&q);
	dbuf_free(&body);
	return r;
}

static int
s3_list(void *state, const char *prefix, const char *delimiter,
    const char *start_after, int max_keys, ufs_list_fn fn, void *arg,
    int *truncated)
{
	struct s3_state *s = state;
	*truncated = 0;
	if (max_keys <= 0)
		return -EINVAL;
	if (!delimiter)
		delimiter = "";
	size_t dlen = strlen(delimiter);
	if (!prefix)
		prefix = "";
	if (!start_after)
		start_after = "";
	struct dbuf fp, fsa;
	int r = full_key(s, prefix, &fp);
	if (!r)
		r = full_key(s, start_after, &fsa);
	else
		dbuf_init(&fsa, 1);
	if (r) {
		dbuf_free(&fp);
		dbuf_free(&fsa);
		return r;
	}
	if (!start_after[0])
		dbuf_reset(&fsa);

	struct page pg = {0};
	struct s3_list_result *res = malloc(sizeof(*res));
	char *token = calloc(1, S3_LIST_TOKEN_MAX);
	/* The last key given to fn: output stays strictly ascending. */
	char *last = malloc(S3_LIST_KEY_MAX + 1);
	size_t last_len = strlen(start_after);
	pg.cap = max_keys < S3_LIST_PAGE_MAX ? max_keys : S3_LIST_PAGE_MAX;
	pg.items = calloc((size_t)pg.cap, sizeof(*pg.items));
	dbuf_init(&pg.arena, S3_LIST_BODY_MAX);
	if (!res || !token || !last || !pg.items || last_len > UFS_KEY_MAX) {
		r = last_len > UFS_KEY_MAX ? -ENAMETOOLONG : -ENOMEM;
		goto out;
	}
	memcpy(last, start_after, last_len);

	int delivered = 0;
	for (;;) {
		int want = max_keys - delivered;
		if (want > S3_LIST_PAGE_MAX)
			want = S3_LIST_PAGE_MAX;
		r = s3_list_page(s, fp.p, fsa.len ? fsa.p : "", delimiter,
		    token, want, &pg, res);
		if (r)
			goto out;
		/* Contents and CommonPrefixes come as two sorted lists:
		 * one byte-order sequence is what the caller gets. */
		if (pg.n > 1)
			qsort_r(pg.items, (size_t)pg.n, sizeof(pg.items[0]),
			    page_item_cmp, pg.arena.p);
		for (int i = 0; i < pg.n; i++) {
			const struct page_item *pi = &pg.items[i];
			const char *k = pg.arena.p + pi->off;
			if (pi->len < fp.len || memcmp(k, fp.p, fp.len) != 0) {
				LOG_WARN("s3: list s3://%s/%s: key outside the "
				    "prefix in reply", s->bucket, fp.p);
				r = -EIO;
				goto out;
			}
			const char *rk = k + s->prefix_len;
			size_t rl = pi->len - s->prefix_len;
			if (pi->is_prefix) {
				/* It ends in the delimiter, after the prefix. */
				if (!dlen || rl <= strlen(prefix) ||
				    rl - strlen(prefix) < dlen ||
				    memcmp(rk + rl - dlen, delimiter, dlen) != 0 ||
				    !rel_key_ok(rk, rl, 1))
					continue;
			} else if (!rel_key_ok(rk, rl, 0)) {
				continue;
			}
			size_t cl = rl < last_len ? rl : last_len;
			int cmp = memcmp(rk, last, cl);
			if (cmp < 0 || (cmp == 0 && rl <= last_len))
				continue;
			if (delivered == max_keys) {
				*truncated = 1;
				goto out;
			}
			struct ufs_entry e = {
			    .key = rk,
			    .is_dir = pi->is_prefix,
			    .size = pi->is_prefix ? 0 : pi->size,
			    .mtime = pi->is_prefix ? 0 : pi->mtime,
			    .etag = pi->is_prefix ? "" : pi->etag,
			};
			memcpy(last, rk, rl);
			last_len = rl;
			delivered++;
			int fr = fn(arg, &e);
			if (fr) {
				*truncated = 1;
				r = fr;
				goto out;
			}
		}
		if (!res->is_truncated)
			break;
		if (delivered == max_keys) {
			*truncated = 1;
			break;
		}
		snprintf(token, S3_LIST_TOKEN_MAX, "%s", res->next_token);
	}
out:
	free(pg.items);
	dbuf_free(&pg.arena);
	free(res);
	free(token);
	free(last);
	dbuf_free(&fp);
	dbuf_free(&fsa);
	return r;
}

/* ---- stat, read ---- */

static int
count_item(void *arg, const struct s3_list_item *it)
{
	(*(int *)arg)++;
	return 0;
}

/* Is there anything under key + "/"? 1, 0 or -errno. */
static int
s3_is_prefix(struct s3_state *s, const char *key)
{
	struct dbuf q, body, p;
	dbuf_init(&q, S3_URL_MAX);
	dbuf_init(&body, S3_LIST_BODY_MAX);
	dbuf_init(&p, S3_URL_MAX);
	int r = dbuf_printf(&p, "%s/", key);
	if (!r)
		r = add_param(&q, "list-type", "2", 1);
	if (!r)
		r = add_param(&q, "max-keys", "1", 1);
	if (!r)
		r = add_param(&q, "prefix", p.p, p.len);
	if (r) {
		r = -ENAMETOOLONG;
		goto out;
	}
	struct s3_call c = {
	    .method = "GET", .key = NULL, .query = q.p, .body = &body};
	r = s3_perform(s, &c);
	if (!r && c.status != 200)
		r = s3_http_error(s, &c);
	if (!r) {
		struct s3_list_result *res = malloc(sizeof(*res));
		int n = 0;
		if (!res) {
			r = -ENOMEM;
		} else if (s3_listxml_parse(body.p ? body.p : "", body.len,
		    count_item, &n, res)) {
			LOG_WARN("s3: list s3://%s/%s: malformed reply",
			    s->bucket, p.p);
			set_call_error(s, &c, "the reply is not a ListObjectsV2 "
			    "result (is s3.endpoint an S3 store?)");
			r = -EIO;
		} else {
			r = n > 0 || res->key_count > 0;
		}
		free(res);
	}
	call_done(&c);
out:
	dbuf_free(&q);
	dbuf_free(&body);
	dbuf_free(&p);
	return r;
}

/* HEAD of a full key: 0 with *st (and the object's headers in meta if
 * given), -ENOENT (404, not logged), or -errno. */
static int
s3_head_key(struct s3_state *s, const char *key, struct ufs_stat *st,
    struct dbuf *meta)
{
	memset(st, 0, sizeof(*st));
	struct s3_call c = {.method = "HEAD", .key = key, .query = "",
	    .meta = meta};
	int r = s3_perform(s, &c);
	if (!r && c.status == 200) {
		if (c.content_length < 0 || c.etag_bad) {
			LOG_WARN("s3: HEAD s3://%s/%s: reply without a valid "
			    "Content-Length or ETag", s->bucket, key);
			set_call_error(s, &c, "reply without a valid "
			    "Content-Length or ETag");
			r = -EIO;
		} else {
			st->size = c.content_length;
			st->mtime = c.last_modified > 0 ? c.last_modified : 0;
			snprintf(st->etag, sizeof(st->etag), "%s", c.etag);
		}
	} else if (!r && c.status == 404) {
		r = -ENOENT;
	} else if (!r) {
		r = s3_http_error(s, &c);
	}
	call_done(&c);
	return r;
}

/* The object's headers a reply carried (meta, "name\0value\0"), as the
 * answer's (ufs_answer_hdrs).  A reply with more than S3_META_MAX of them
 * (no store keeps that much) is not trusted to say. */
static void
answer_meta(const struct dbuf *meta)
{
	if (dbuf_error(meta))
		return;
	struct ufs_hdrs *h = ufs_answer_hdrs();
	ufs_hdrs_init(h);
	for (size_t i = 0; i < meta->len;) {
		const char *name = meta->p + i;
		const char *value = name + strlen(name) + 1;
		i = (size_t)(value - meta->p) + strlen(value) + 1;
		ufs_hdrs_add(h, name, strlen(name), value, strlen(value));
	}
}

static int
s3_stat(void *state, const char *path, struct ufs_stat *st)
{
	struct s3_state *s = state;
	memset(st, 0, sizeof(*st));
	if (!path[0]) {
		st->is_dir = 1;
		return 0;
	}
	struct dbuf key;
	int r = full_key(s, path, &key);
	if (r) {
		dbuf_free(&key);
		return r;
	}
	struct dbuf meta;
	dbuf_init(&meta, S3_META_MAX);
	r = s3_head_key(s, key.p, st, &meta);
	if (r == 0)
		answer_meta(&meta);
	dbuf_free(&meta);
	/* No object: a directory if keys are under it ("dir/" is never
	 * one). */
	if (r == -ENOENT && key.p[key.len - 1] != '/') {
		r = s3_is_prefix(s, key.p);
		if (r == 1) {
			st->is_dir = 1;
			r = 0;
		} else if (r == 0) {
			r = -ENOENT;
		}
	}
	dbuf_free(&key);
	return r;
}

static ssize_t
s3_read(void *state, const char *path, const char *etag, int64_t off,
    void *buf, size_t len)
{
	struct s3_state *s = state;
	if (off < 0)
		return -EINVAL;
	if (len == 0)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if ((uint64_t)len - 1 > (uint64_t)(INT64_MAX - off))
		len = (size_t)(INT64_MAX - off) + 1;
	if (etag && etag[0] &&
	    (!header_safe(etag) || strchr(etag, '"') ||
	    strlen(etag) >= UFS_ETAG_MAX))
		return -EINVAL;
	struct dbuf key;
	int r = full_key(s, path, &key);
	if (r) {
		dbuf_free(&key);
		return r;
	}
	char range[64], im[UFS_ETAG_MAX + 3];
	snprintf(range, sizeof(range), "bytes=%lld-%lld", (long long)off,
	    (long long)(off + (int64_t)len - 1));
	int check_etag = etag && etag[0];
	if (check_etag)
		snprintf(im, sizeof(im), "\"%s\"", etag);
	/* A read of byte 0 at a known version also answers the headers
	 * stored with it (ufs_answer_hdrs): a listing did not say them. */
	struct dbuf meta;
	dbuf_init(&meta, S3_META_MAX);
	struct s3_call c = {
	    .method = "GET",
	    .key = key.p,
	    .query = "",
	    .range = range,
	    .if_match = check_etag ? im : NULL,
	    .buf = buf,
	    .cap = len,
	    .meta = off == 0 && check_etag ? &meta : NULL,
	};
	ssize_t ret = s3_perform(s, &c);
	if (ret == 0) {
		if (c.status == 206 || c.status == 200) {
			ret = (ssize_t)c.got;
			/* 200 means the range was ignored: the body starts at 0. */
			int bad = (c.status == 206 && c.cr_start != off) ||
			    (c.status == 200 && off != 0) ||
			    (c.content_length >= 0 &&
			    (uint64_t)c.content_length != c.got) ||
			    (c.status == 206 && c.got < len && c.cr_total >= 0 &&
			    off + (int64_t)c.got < c.cr_total);
			if (bad) {
				LOG_WARN("s3: GET s3://%s/%s: reply does not "
				    "match the range asked for", s->bucket,
				    key.p);
				ret = -EIO;
			} else if (check_etag && c.etag[0] &&
			    strcmp(c.etag, etag) != 0) {
				/* The server ignored If-Match (some do). */
				LOG_DEBUG("s3: GET s3://%s/%s: ETag changed",
				    s->bucket, key.p);
				ret = -ESTALE;
			} else if (c.meta && c.etag[0] && !c.etag_bad) {
				answer_meta(&meta);
			}
		} else if (c.status == 416) {
			ret = 0; /* past the end */
		} else {
			ret = s3_http_error(s, &c);
		}
	}
	call_done(&c);
	dbuf_free(&meta);
	dbuf_free(&key);
	return ret;
}

/*
 * A cold read: one ranged GET, without If-Match, whose reply is both the
 * stat (total size from Content-Range, ETag, Last-Modified) and the bytes,
 * so the version reported is the one the bytes belong to.
 */
static ssize_t
s3_read_stat(void *state, const char *path, int64_t off, void *buf,
    size_t len, int dirs, struct ufs_stat *st)
{
	struct s3_state *s = state;
	memset(st, 0, sizeof(*st));
	if (!path[0]) {
		st->is_dir = 1;
		return 0;
	}
	if (off < 0 || len == 0 || len > INT32_MAX ||
	    off > INT64_MAX - (int64_t)len)
		return -EINVAL;
	struct dbuf key;
	int r = full_key(s, path, &key);
	if (r) {
		dbuf_free(&key);
		return r;
	}
	char range[64];
	snprintf(range, sizeof(range), "bytes=%lld-%lld", (long long)off,
	    (long long)(off + (int64_t)len - 1));
	struct dbuf meta;
	dbuf_init(&meta, S3_META_MAX);
	struct s3_call c = {
	    .method = "GET",
	    .key = key.p,
	    .query = "",
	    .range = range,
	    .buf = buf,
	    .cap = len,
	    .meta = &meta, /* the object's headers: this is its stat */
	};
	ssize_t ret = s3_perform(s, &c);
	if (ret == -EIO && (c.overflow || c.empty_206)) {
		/* A 200 with the whole (big) object, or an empty one: no
		 * trusted metadata here, so stat + read. */
		ret = -ERANGE;
	} else if (ret == 0 && (c.status == 206 || c.status == 200)) {
		/* 206: the total is after the '/' of Content-Range; 200 (the
		 * range was ignored): the body is the whole object. */
		int64_t total = c.status == 206 ? c.cr_total : c.content_length;
		int64_t want = total - off < (int64_t)len ? total - off : (int64_t)len;
		int bad = total < 0 || c.etag_bad ||
		    (c.status == 206 && c.cr_start != off) ||
		    (c.status == 200 && off != 0) ||
		    (c.content_length >= 0 &&
		    (uint64_t)c.content_length != c.got) ||
		    want < 0 || (int64_t)c.got != want;
		if (bad) {
			LOG_WARN("s3: GET s3://%s/%s: reply does not match the "
			    "range asked for, or lacks its size", s->bucket,
			    key.p);
			ret = -EIO;
		} else {
			st->size = total;
			st->mtime = c.last_modified > 0 ? c.last_modified : 0;
			snprintf(st->etag, sizeof(st->etag), "%s", c.etag);
			answer_meta(&meta);
			ret = (ssize_t)c.got;
		}
	} else if (ret == 0 && c.status == 416) {
		ret = -ERANGE; /* past the end, or an empty object */
	} else if (ret == 0 && c.status == 404) {
		ret = -ENOENT;
		if (dirs && key.p[key.len - 1] != '/') {
			r = s3_is_prefix(s, key.p);
			if (r == 1) {
				st->is_dir = 1;
				ret = 0;
			} else if (r < 0) {
				ret = r;
			}
		}
	} else if (ret == 0) {
		ret = s3_http_error(s, &c);
	}
	call_done(&c);
	dbuf_free(&meta);
	dbuf_free(&key);
	return ret;
}

/* ---- writes ---- */

/*
 * A write session.  The body is cut into parts of part_size bytes kept in
 * slots: the slot being filled, and the parts being uploaded, each by a
 * thread of its own (s3_perform, retries and all).  A slot's buffer is kept
 * for the next part, so a session holds at most nslots buffers: memory is
 * bounded by s3.upload_parallelism x part_size, and when every slot is in
 * flight the writer waits for one.  The first part is only sent once a
 * byte past it comes: an object of at most part_size bytes is one
 * PutObject at commit, and a multipart upload starts with its second part.
 * A copy too big for CopyObject uses the same slots, with ranges of the
 * source (UploadPartCopy) instead of buffers.
 */
enum { SLOT_FREE, SLOT_RUNNING, SLOT_DONE };

struct s3_put;

struct s3_slot {
	struct s3_put *p;
	int state;      /* SLOT_*, under p->mu */
	int number;     /* its part number */
	char *buf;      /* the part's bytes; kept for the next one */
	size_t len, cap;
	int64_t src_off; /* a copy: the source's range [src_off, +len) */
	int rc;
	char reason[512]; /* ufs_last_error() of a failed part */
	pthread_t th;
	int threaded;
};

struct s3_put {
	struct s3_state *s;
	struct dbuf key;            /* full key */
	char if_match[UFS_ETAG_MAX + 2]; /* quoted, or "" */
	int if_none_match;
	struct sigv4_hdr meta[S3_CALL_HDRS_MAX]; /* headers of the object */
	int nmeta;
	struct dbuf metastore;      /* their strings */
	int64_t size;               /* announced, or -1 */
	int64_t part_size;
	int64_t *plan;              /* the parts' sizes (ufs_put_opts.parts),
	                             * or NULL: part_size each */
	int plan_n;
	int64_t plan_held;          /* its share of S3_PLAN_BUDGET */
	int64_t total;              /* bytes taken */
	char *upload_id;            /* set by CreateMultipartUpload */
	struct dbuf upload_q;       /* "uploadId=..." encoded */
	int nparts;                 /* parts started */
	char (*etags)[S3_LIST_ETAG_MAX]; /* parts' ETags, by number - 1 */
	int etags_cap;
	const char *copy_src;       /* x-amz-copy-source, for copied parts */
	char copy_if_match[UFS_ETAG_MAX + 2];
	struct s3_slot slots[S3_PAR_MAX];
	int nslots;
	int fill;                   /* the slot being filled, or -1 */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int cancel;                 /* atomic: parts in flight give up */
	int err;                    /* the first failure; then all fail */
	char reason[512];
};

/* Quotes an ETag for If-Match; "" if none. */
static void
quote_etag(const char *etag, char *out, size_t n)
{
	if (etag && etag[0])
		snprintf(out, n, "\"%s\"", etag);
	else
		out[0] = 0;
}

/* A write's final error status: the conditions' 412 (and a 409 left after
 * the retries) say which, a missing bucket or upload is -EIO. */
static int
write_http_error(const struct s3_state *s, const struct s3_call *c,
    const struct s3_put *p)
{
	if (c->status == 412 && p) {
		http_failure(s, c, 1);
		return p->if_none_match ? -EEXIST : -ESTALE;
	}
	if (c->status == 404) {
		http_failure(s, c, 0);
		return -EIO;
	}
	return s3_http_error(s, c);
}

/*
 * A 200 whose body is an Error (CompleteMultipartUpload, CopyObject and
 * UploadPartCopy answer so when they fail after the status went out):
 * 1 with *r set (InternalError and SlowDown may be tried again: *retry),
 * or 0 when the body is not an Error.
 */
static int
error_in_200(const struct s3_state *s, struct s3_call *c,
    const struct dbuf *body, const struct s3_put *p, int *r, int *retry)
{
	char code[64], msg[256], what[400];
	*retry = 0;
	if (!body->len || s3_errxml_parse(body->p, body->len, code,
	    sizeof(code), msg, sizeof(msg)) != 0)
		return 0;
	snprintf(what, sizeof(what), "%s%s%s (in a 200 reply)", code,
	    msg[0] ? ": " : "", msg);
	set_call_error(s, c, what);
	*retry = !strcmp(code, "InternalError") || !strcmp(code, "SlowDown") ||
	    !strcmp(code, "ServiceUnavailable");
	if (!strcmp(code, "PreconditionFailed") && p)
		*r = p->if_none_match ? -EEXIST : -ESTALE;
	else if (!strcmp(code, "AccessDenied"))
		*r = -EACCES;
	else
		*r = -EIO;
	if (*r == -EIO)
		LOG_WARN("s3: %s s3://%s/%s: %s", c->method, s->bucket,
		    call_what(c), what);
	return 1;
}

/* The session's failure: kept, and said again by every later call. */
static int
put_set_err(struct s3_put *p, int r, const char *reason)
{
	if (!p->err) {
		p->err = r;
		snprintf(p->reason, sizeof(p->reason), "%s", reason);
	}
	return p->err;
}

/* Sends AbortMultipartUpload (retried as any call); a failure leaves the
 * parts in the store until a lifecycle rule takes them: logged. */
static void
abort_upload(struct s3_put *p)
{
	struct s3_state *s = p->s;
	if (!p->upload_id)
		return;
	char saved[512];
	snprintf(saved, sizeof(saved), "%s", ufs_last_error());
	struct s3_call c = {.method = "DELETE", .key = p->key.p,
	    .query = p->upload_q.p};
	int r = s3_perform(s, &c);
	if (!r && c.status != 204 && c.status != 200 && c.status != 404)
		r = s3_http_error(s, &c);
	if (r)
		LOG_WARN("s3: s3://%s/%s: multipart upload %s could not be "
		    "aborted (%s): its parts stay until a lifecycle rule "
		    "removes them", s->bucket, p->key.p, p->upload_id,
		    ufs_last_error());
	call_done(&c);
	free(p->upload_id);
	p->upload_id = NULL;
	ufs_set_error("%s", saved);
}

/* Sends one part of slot t: UploadPart of its bytes, or UploadPartCopy of
 * its range of the source.  Its ETag into etag.  0 or -errno. */
static int
send_part(struct s3_put *p, struct s3_slot *t, char *etag, size_t cap)
{
	struct s3_state *s = p->s;
	struct dbuf q, body;
	dbuf_init(&q, S3_URL_MAX);
	dbuf_init(&body, S3_RESULT_BODY_MAX);
	int r = dbuf_printf(&q, "partNumber=%d&%s", t->number, p->upload_q.p);
	char range[80];
	struct sigv4_hdr h[3];
	int nh = 0;
	if (p->copy_src) {
		snprintf(range, sizeof(range), "bytes=%lld-%lld",
		    (long long)t->src_off,
		    (long long)(t->src_off + (int64_t)t->len - 1));
		h[nh++] = (struct sigv4_hdr){"x-amz-copy-source", p->copy_src};
		h[nh++] = (struct sigv4_hdr){"x-amz-copy-source-range", range};
		h[nh++] = (struct sigv4_hdr){"x-amz-copy-source-if-match",
		    p->copy_if_match};
	}
	struct s3_call c = {
	    .method = "PUT", .key = p->key.p, .query = q.p,
	    .send = p->copy_src ? NULL : (t->buf ? t->buf : ""),
	    .send_len = p->copy_src ? 0 : t->len,
	    .hdrs = h, .nhdrs = nh, .cancel = &p->cancel,
	    .body = p->copy_src ? &body : NULL,
	};
	if (!r)
		r = s3_perform(s, &c);
	int retry;
	if (!r && c.status == 200 && p->copy_src &&
	    error_in_200(s, &c, &body, NULL, &r, &retry)) {
		/* r set */
	} else if (!r && c.status == 200 && p->copy_src) {
		char qe[S3_LIST_ETAG_MAX + 2];
		struct s3_xml_field f[] = {{"ETag", qe, sizeof(qe), 0}};
		if (s3_resultxml_parse(body.p ? body.p : "", body.len,
		    "CopyPartResult", f, 1) || http_etag_value(qe, strlen(qe),
		    etag, cap) < 0 || !etag[0]) {
			set_call_error(s, &c, "UploadPartCopy: no ETag in the "
			    "reply");
			r = -EIO;
		}
	} else if (!r && c.status == 200) {
		if (c.etag_bad || !c.etag[0] || strlen(c.etag) >= cap) {
			set_call_error(s, &c, "UploadPart: no ETag in the reply");
			r = -EIO;
		} else {
			snprintf(etag, cap, "%s", c.etag);
		}
	} else if (!r && c.status == 412 && p->copy_src) {
		http_failure(s, &c, 1);
		set_call_error(s, &c, "the source changed during the copy");
		r = -ESTALE;
	} else if (!r) {
		r = write_http_error(s, &c, NULL);
	}
	call_done(&c);
	dbuf_free(&q);
	dbuf_free(&body);
	return r;
}

static void *
part_main(void *arg)
{
	struct s3_slot *t = arg;
	struct s3_put *p = t->p;
	char etag[S3_LIST_ETAG_MAX];
	etag[0] = 0;
	int r = send_part(p, t, etag, sizeof(etag));
	pthread_mutex_lock(&p->mu);
	t->rc = r;
	if (r) {
		snprintf(t->reason, sizeof(t->reason), "%s", ufs_last_error());
		__atomic_store_n(&p->cancel, 1, __ATOMIC_RELAXED);
	} else {
		memcpy(p->etags[t->number - 1], etag, sizeof(etag));
	}
	t->state = SLOT_DONE;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Collects finished parts (under p->mu): the first failure becomes the
 * session's.  A cancelled part is not a cause: the part whose failure
 * cancelled it is already done, and collected in the same pass. */
static void
harvest(struct s3_put *p)
{
	for (int i = 0; i < p->nslots; i++) {
		struct s3_slot *t = &p->slots[i];
		if (t->state != SLOT_DONE)
			continue;
		if (t->threaded)
			pthread_join(t->th, NULL);
		t->threaded = 0;
		if (t->rc && t->rc != -ECANCELED)
			put_set_err(p, t->rc, t->reason);
		t->state = SLOT_FREE;
		t->len = 0;
	}
}

/* Waits for every part in flight (cancelling them if cancel). */
static void
wait_parts(struct s3_put *p, int cancel)
{
	pthread_mutex_lock(&p->mu);
	if (cancel)
		__atomic_store_n(&p->cancel, 1, __ATOMIC_RELAXED);
	for (;;) {
		int running = 0;
		harvest(p);
		for (int i = 0; i < p->nslots; i++)
			running += p->slots[i].state == SLOT_RUNNING;
		if (!running)
			break;
		pthread_cond_wait(&p->cv, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
}

/* Ends a session that failed: parts stopped, the upload aborted.  Returns
 * the failure, said in ufs_last_error(). */
static int
put_fail(struct s3_put *p, int r)
{
	if (r)
		put_set_err(p, r, ufs_last_error());
	wait_parts(p, 1);
	abort_upload(p);
	ufs_set_error("%s", p->reason);
	return p->err;
}

/* A free slot for the next bytes (waiting for a part to finish if all
 * are in flight): its index, or the session's failure. */
static int
acquire_slot(struct s3_put *p)
{
	pthread_mutex_lock(&p->mu);
	int idx = -1;
	for (;;) {
		harvest(p);
		if (p->err)
			break;
		for (int i = 0; i < p->nslots && idx < 0; i++)
			if (p->slots[i].state == SLOT_FREE)
				idx = i;
		if (idx >= 0)
			break;
		pthread_cond_wait(&p->cv, &p->mu);
	}
	int err = p->err;
	pthread_mutex_unlock(&p->mu);
	return err ? err : idx;
}

/* CreateMultipartUpload, with the object's headers. */
static int
create_upload(struct s3_put *p)
{
	struct s3_state *s = p->s;
	struct dbuf body;
	dbuf_init(&body, S3_RESULT_BODY_MAX);
	struct s3_call c = {.method = "POST", .key = p->key.p,
	    .query = "uploads=", .send = "", .send_len = 0, .hdrs = p->meta,
	    .nhdrs = p->nmeta, .body = &body};
	int r = s3_perform(s, &c);
	if (!r && c.status == 200) {
		char *id = malloc(S3_UPLOAD_ID_MAX + 1);
		struct s3_xml_field f[] = {{"UploadId", id,
		    S3_UPLOAD_ID_MAX + 1, 0}};
		if (!id || s3_resultxml_parse(body.p ? body.p : "", body.len,
		    "InitiateMultipartUploadResult", f, 1) || !id[0] ||
		    !header_safe(id)) {
			LOG_WARN("s3: POST s3://%s/%s?uploads: no upload id in "
			    "the reply", s->bucket, p->key.p);
			set_call_error(s, &c, "CreateMultipartUpload: no upload "
			    "id in the reply");
			free(id);
			r = id ? -EIO : -ENOMEM;
		} else {
			dbuf_reset(&p->upload_q);
			dbuf_adds(&p->upload_q, "uploadId=");
			url_encode(&p->upload_q, id, strlen(id), 0);
			r = dbuf_error(&p->upload_q);
			if (r)
				free(id);
			else
				p->upload_id = id;
		}
	} else if (!r) {
		r = write_http_error(s, &c, NULL);
	}
	call_done(&c);
	dbuf_free(&body);
	return r;
}

/* Starts slot idx as the next part (the upload is made first if need
 * be).  0 or -errno (said). */
static int
start_part(struct s3_put *p, int idx)
{
	struct s3_state *s = p->s;
	if (p->nparts == S3_PARTS_MAX) {
		ufs_set_error("s3://%s/%s: more than %d parts of %lld bytes "
		    "(raise s3.part_size)", s->bucket, p->key.p, S3_PARTS_MAX,
		    (long long)p->part_size);
		return -EFBIG;
	}
	int r;
	if (!p->upload_id && (r = create_upload(p)) != 0)
		return r;
	if (p->nparts == p->etags_cap) {
		int nc = p->etags_cap ? p->etags_cap * 2 : 16;
		if (nc > S3_PARTS_MAX)
			nc = S3_PARTS_MAX;
		void *ne = realloc(p->etags, (size_t)nc * sizeof(*p->etags));
		if (!ne)
			return -ENOMEM;
		pthread_mutex_lock(&p->mu);
		p->etags = ne;
		p->etags_cap = nc;
		pthread_mutex_unlock(&p->mu);
	}
	struct s3_slot *t = &p->slots[idx];
	pthread_mutex_lock(&p->mu);
	t->number = ++p->nparts;
	t->state = SLOT_RUNNING;
	t->rc = 0;
	pthread_mutex_unlock(&p->mu);
	if (p->fill == idx)
		p->fill = -1;
	t->threaded = pthread_create(&t->th, NULL, part_main, t) == 0;
	if (!t->threaded)
		part_main(t); /* no thread to be had: here, now */
	return 0;
}

static void
put_free(struct s3_put *p)
{
	for (int i = 0; i < p->nslots; i++)
		free(p->slots[i].buf);
	free(p->upload_id);
	free(p->etags);
	free(p->plan);
	if (p->plan_held)
		__atomic_sub_fetch(&g_plan_held, p->plan_held, __ATOMIC_RELAXED);
	dbuf_free(&p->key);
	dbuf_free(&p->metastore);
	dbuf_free(&p->upload_q);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

/* Adds a header of the object (name lowercase) to p->meta. */
static int
put_add_meta(struct s3_put *p, const char *name, const char *value,
    size_t vlen)
{
	if (p->nmeta == S3_CALL_HDRS_MAX - 4) /* room for conditions */
		return -E2BIG;
	size_t at = p->metastore.len;
	dbuf_adds(&p->metastore, name);
	dbuf_add(&p->metastore, "", 1);
	size_t vat = p->metastore.len;
	dbuf_add(&p->metastore, value, vlen);
	dbuf_add(&p->metastore, "", 1);
	if (dbuf_error(&p->metastore))
		return dbuf_error(&p->metastore);
	/* offsets now, pointers once the store stops growing */
	p->meta[p->nmeta].name = (const char *)(uintptr_t)at;
	p->meta[p->nmeta].value = (const char *)(uintptr_t)vat;
	p->nmeta++;
	return 0;
}

static void
put_fix_meta(struct s3_put *p)
{
	for (int i = 0; i < p->nmeta; i++) {
		p->meta[i].name = p->metastore.p + (uintptr_t)p->meta[i].name;
		p->meta[i].value = p->metastore.p + (uintptr_t)p->meta[i].value;
	}
}

/* A session for key (full) with o's conditions; headers added by the
 * caller, then put_fix_meta. */
static int
put_new(struct s3_state *s, const char *key, const struct ufs_put_opts *o,
    struct s3_put **out)
{
	*out = NULL;
	struct s3_put *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->s = s;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	dbuf_init(&p->key, UFS_KEY_MAX + s->prefix_len + 2);
	dbuf_init(&p->metastore, S3_META_MAX);
	dbuf_init(&p->upload_q, 3 * S3_UPLOAD_ID_MAX + 16);
	p->fill = -1;
	p->nslots = s->upload_par;
	for (int i = 0; i < p->nslots; i++)
		p->slots[i].p = p;
	p->size = o->size;
	p->if_none_match = o->if_none_match;
	quote_etag(o->if_match, p->if_match, sizeof(p->if_match));
	if (dbuf_adds(&p->key, key)) {
		put_free(p);
		return -ENAMETOOLONG;
	}
	*out = p;
	return 0;
}

static int plan_ok(const struct ufs_put_opts *o);
static int plan_reserve(struct s3_put *p, const struct ufs_put_opts *o);

static int
s3_put_begin(void *state, const char *path, const struct ufs_put_opts *o,
    void **out)
{
	struct s3_state *s = state;
	*out = NULL;
	if (o->size > S3_OBJECT_MAX) {
		ufs_set_error("s3://%s/%s%s: %lld bytes is more than S3's "
		    "largest object (5 TiB)", s->bucket, s->prefix, path,
		    (long long)o->size);
		return -EFBIG;
	}
	struct dbuf key;
	int r = full_key(s, path, &key);
	struct s3_put *p = NULL;
	if (!r)
		r = put_new(s, key.p, o, &p);
	dbuf_free(&key);
	if (r)
		return r;
	for (int i = 0; i < o->nheaders && !r; i++)
		r = put_add_meta(p, o->headers[i].key, o->headers[i].value,
		    strlen(o->headers[i].value));
	if (r) {
		put_free(p);
		return r == -E2BIG ? -EINVAL : r;
	}
	put_fix_meta(p);
	/* A known size needing more than 10000 parts gets bigger parts. */
	p->part_size = s->part_size;
	if (o->size > p->part_size * S3_PARTS_MAX) {
		int64_t ps = (o->size + S3_PARTS_MAX - 1) / S3_PARTS_MAX;
		p->part_size = (ps + (1 << 20) - 1) & ~(int64_t)((1 << 20) - 1);
	}
	if (plan_ok(o) && plan_reserve(p, o) &&
	    (p->plan = malloc((size_t)o->nparts * sizeof(int64_t)))) {
		memcpy(p->plan, o->parts, (size_t)o->nparts * sizeof(int64_t));
		p->plan_n = o->nparts;
	}
	*out = p;
	return 0;
}

/* Can a write follow the client's parts?  Each a part S3 takes (all but
 * the last at least 5 MiB), none over S3_PLAN_PART_MAX (a part is held in
 * memory while it uploads), summing to the size. */
static int
plan_ok(const struct ufs_put_opts *o)
{
	if (!o->parts || o->nparts < 1 || o->nparts > S3_PARTS_MAX || o->size < 0)
		return 0;
	int64_t sum = 0;
	for (int i = 0; i < o->nparts; i++) {
		int64_t n = o->parts[i];
		if (n < 1 || n > S3_PLAN_PART_MAX ||
		    (i < o->nparts - 1 && n < S3_PART_MIN))
			return 0;
		sum += n;
	}
	return sum == o->size;
}

/* Reserves what following o's parts holds beyond part_size buffers: 1,
 * or 0 (over S3_PLAN_BUDGET: the write uses its own parts). */
static int
plan_reserve(struct s3_put *p, const struct ufs_put_opts *o)
{
	int64_t big = 0;
	for (int i = 0; i < o->nparts; i++)
		if (o->parts[i] > big)
			big = o->parts[i];
	int bufs = o->nparts < p->nslots ? o->nparts : p->nslots;
	int64_t need = big > p->part_size ? (big - p->part_size) * bufs : 0;
	if (need == 0)
		return 1;
	if (__atomic_add_fetch(&g_plan_held, need, __ATOMIC_RELAXED) > S3_PLAN_BUDGET) {
		__atomic_sub_fetch(&g_plan_held, need, __ATOMIC_RELAXED);
		LOG_INFO("s3://%s/%s: the client's parts (%lld bytes) would hold more "
		    "memory than writes may now: written in parts of %lld bytes (its "
		    "ETag is then not the client's md5-of-md5s)", p->s->bucket,
		    p->key.p, (long long)big, (long long)p->part_size);
		return 0;
	}
	p->plan_held = need;
	return 1;
}

/* The size of the part being filled (the next to start). */
static int64_t
part_target(const struct s3_put *p)
{
	if (p->plan && p->nparts < p->plan_n)
		return p->plan[p->nparts];
	return p->part_size;
}

static int
s3_put_write(void *put, const void *buf, size_t len)
{
	struct s3_put *p = put;
	if (p->err) {
		ufs_set_error("%s", p->reason);
		return p->err;
	}
	if (len > (uint64_t)(S3_OBJECT_MAX - p->total)) {
		ufs_set_error("s3://%s/%s: more than S3's largest object "
		    "(5 TiB)", p->s->bucket, p->key.p);
		return put_fail(p, -EFBIG);
	}
	const char *src = buf;
	while (len > 0) {
		if (p->fill < 0) {
			int idx = acquire_slot(p);
			if (idx < 0)
				return put_fail(p, 0);
			p->fill = idx;
		}
		struct s3_slot *t = &p->slots[p->fill];
		int64_t target = part_target(p);
		if ((int64_t)t->len >= target) {
			/* full, and more comes: it is a part */
			int r = start_part(p, p->fill);
			if (r)
				return put_fail(p, r);
			continue;
		}
		size_t k = (size_t)(target - (int64_t)t->len);
		if (k > len)
			k = len;
		if (t->len + k > t->cap) {
			/* Grow towards the part's size: small objects of
			 * unknown size take little; a size announced is exact. */
			size_t nc = t->cap ? t->cap * 2 : 64 << 10;
			if (p->size >= 0 && p->size < target &&
			    nc < (size_t)p->size)
				nc = (size_t)p->size;
			if (nc < t->len + k)
				nc = t->len + k;
			if ((int64_t)nc > target)
				nc = (size_t)target;
			char *nb = realloc(t->buf, nc);
			if (!nb)
				return put_fail(p, -ENOMEM);
			t->buf = nb;
			t->cap = nc;
		}
		memcpy(t->buf + t->len, src, k);
		t->len += k;
		src += k;
		len -= k;
		p->total += (int64_t)k;
	}
	return 0;
}

/*
 * The stat of the version just written, as stat will answer it: a HEAD.
 * If the HEAD shows another version (a writer after us) or fails, what
 * the write's reply said: size, its ETag, and its Last-Modified or Date.
 */
static void
stat_after_write(struct s3_state *s, const char *key, int64_t size,
    const char *etag, int64_t mtime, struct ufs_stat *st)
{
	struct ufs_stat hs;
	struct dbuf meta;
	dbuf_init(&meta, S3_META_MAX);
	int r = s3_head_key(s, key, &hs, &meta);
	if (r == 0 && hs.size == size && (!etag[0] || !strcmp(hs.etag, etag))) {
		*st = hs;
		answer_meta(&meta); /* what the new version keeps */
	} else {
		memset(st, 0, sizeof(*st));
		st->size = size;
		snprintf(st->etag, sizeof(st->etag), "%s", etag);
		st->mtime = mtime > 0 ? mtime : wall_sec();
	}
	dbuf_free(&meta);
	ufs_clear_error();
}

/* The conditions' headers, after the object's (hdrs has room). */
static int
cond_headers(const struct s3_put *p, struct sigv4_hdr *h, int n)
{
	if (p->if_none_match)
		h[n++] = (struct sigv4_hdr){"if-none-match", "*"};
	if (p->if_match[0])
		h[n++] = (struct sigv4_hdr){"if-match", p->if_match};
	return n;
}

/* PutObject of the whole body (in the fill slot, if any). */
static int
put_object(struct s3_put *p, char *etag, int64_t *mtime)
{
	struct s3_state *s = p->s;
	struct s3_slot *t = p->fill >= 0 ? &p->slots[p->fill] : NULL;
	struct sigv4_hdr h[S3_CALL_HDRS_MAX];
	memcpy(h, p->meta, (size_t)p->nmeta * sizeof(h[0]));
	int nh = cond_headers(p, h, p->nmeta);
	struct s3_call c = {.method = "PUT", .key = p->key.p, .query = "",
	    .send = t && t->buf ? t->buf : "", .send_len = t ? t->len : 0,
	    .hdrs = h, .nhdrs = nh, .retry_409 = 1};
	int r = s3_perform(s, &c);
	if (!r && c.status == 200) {
		snprintf(etag, UFS_ETAG_MAX, "%s", c.etag_bad ? "" : c.etag);
		*mtime = c.last_modified > 0 ? c.last_modified : c.date;
	} else if (!r) {
		r = write_http_error(s, &c, p);
	}
	call_done(&c);
	return r;
}

/* CompleteMultipartUpload of parts 1..nparts, with the conditions; a 200
 * carrying an InternalError is tried again. */
static int
complete_upload(struct s3_put *p, char *etag, int64_t *mtime)
{
	struct s3_state *s = p->s;
	struct dbuf x, body;
	dbuf_init(&x, S3_COMPLETE_BODY_MAX);
	dbuf_init(&body, S3_RESULT_BODY_MAX);
	dbuf_adds(&x, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws."
	    "com/doc/2006-03-01/\">");
	for (int i = 0; i < p->nparts; i++) {
		dbuf_printf(&x, "<Part><PartNumber>%d</PartNumber><ETag>\"",
		    i + 1);
		xml_escape(&x, p->etags[i], strlen(p->etags[i]));
		dbuf_adds(&x, "\"</ETag></Part>");
	}
	dbuf_adds(&x, "</CompleteMultipartUpload>");
	int r = dbuf_error(&x);
	struct sigv4_hdr h[4];
	int nh = cond_headers(p, h, 0);
	int64_t deadline = now_ms() + s->deadline_ms;
	for (int attempt = 0; !r; attempt++) {
		struct s3_call c = {.method = "POST", .key = p->key.p,
		    .query = p->upload_q.p, .send = x.p, .send_len = x.len,
		    .hdrs = h, .nhdrs = nh, .retry_409 = 1, .body = &body};
		r = s3_perform(s, &c);
		int retry = 0;
		if (!r && c.status == 200 &&
		    error_in_200(s, &c, &body, p, &r, &retry)) {
			/* r set */
		} else if (!r && c.status == 200) {
			char qe[S3_LIST_ETAG_MAX + 2];
			struct s3_xml_field f[] = {{"ETag", qe, sizeof(qe), 0}};
			if (s3_resultxml_parse(body.p ? body.p : "", body.len,
			    "CompleteMultipartUploadResult", f, 1) ||
			    http_etag_value(qe, strlen(qe), etag,
			    UFS_ETAG_MAX) < 0) {
				LOG_WARN("s3: POST s3://%s/%s?uploadId: not a "
				    "CompleteMultipartUploadResult", s->bucket,
				    p->key.p);
				set_call_error(s, &c, "CompleteMultipartUpload: "
				    "the reply is not its result");
				r = -EIO;
			} else {
				*mtime = c.last_modified > 0 ? c.last_modified
				                             : c.date;
			}
		} else if (!r) {
			r = write_http_error(s, &c, p);
		}
		call_done(&c);
		if (!retry || attempt >= s->retries || now_ms() > deadline)
			break;
		backoff_sleep(attempt + 1, deadline - now_ms());
		r = 0;
	}
	dbuf_free(&x);
	dbuf_free(&body);
	return r;
}

static int
s3_put_commit(void *put, struct ufs_stat *st)
{
	struct s3_put *p = put;
	memset(st, 0, sizeof(*st));
	char etag[UFS_ETAG_MAX] = "";
	int64_t mtime = -1;
	int r = p->err;
	if (r) {
		put_fail(p, 0);
		r = p->err;
	} else if (!p->upload_id && !p->plan) {
		r = put_object(p, etag, &mtime);
	} else {
		/* (A planned write is a multipart upload even of one part:
		 * S3 gives that an ETag of its own, "...-1".) */
		/* the last part: it holds at least one byte */
		if (p->fill >= 0 && p->slots[p->fill].len > 0)
			r = start_part(p, p->fill);
		if (!r) {
			wait_parts(p, 0);
			r = p->err;
		}
		if (!r)
			r = complete_upload(p, etag, &mtime);
		if (r) {
			put_fail(p, r);
			r = p->err;
		}
	}
	if (!r)
		stat_after_write(p->s, p->key.p, p->total, etag, mtime, st);
	put_free(p);
	return r;
}

static void
s3_put_abort(void *put)
{
	struct s3_put *p = put;
	if (!p)
		return;
	wait_parts(p, 1);
	abort_upload(p);
	put_free(p);
}

/* DeleteObject: 204, or 404 (nothing there), is done. */
static int
s3_remove(void *state, const char *path)
{
	struct s3_state *s = state;
	struct dbuf key;
	int r = full_key(s, path, &key);
	if (r) {
		dbuf_free(&key);
		return r;
	}
	struct s3_call c = {.method = "DELETE", .key = key.p, .query = ""};
	r = s3_perform(s, &c);
	if (!r && c.status != 204 && c.status != 200 && c.status != 404)
		r = s3_http_error(s, &c);
	call_done(&c);
	dbuf_free(&key);
	return r;
}

/* CopyObject: one request, in the store. */
static int
copy_object(struct s3_put *p, const char *source, const struct ufs_put_opts *o,
    char *etag, int64_t *mtime)
{
	struct s3_state *s = p->s;
	struct dbuf body;
	dbuf_init(&body, S3_RESULT_BODY_MAX);
	struct sigv4_hdr h[S3_CALL_HDRS_MAX];
	int nh = 0;
	h[nh++] = (struct sigv4_hdr){"x-amz-copy-source", source};
	if (o->nheaders > 0) {
		h[nh++] = (struct sigv4_hdr){"x-amz-metadata-directive",
		    "REPLACE"};
		memcpy(h + nh, p->meta, (size_t)p->nmeta * sizeof(h[0]));
		nh += p->nmeta;
	}
	nh = cond_headers(p, h, nh);
	int64_t deadline = now_ms() + s->deadline_ms;
	int r = 0;
	for (int attempt = 0;; attempt++) {
		struct s3_call c = {.method = "PUT", .key = p->key.p,
		    .query = "", .hdrs = h, .nhdrs = nh, .retry_409 = 1,
		    .body = &body};
		r = s3_perform(s, &c);
		int retry = 0;
		if (!r && c.status == 200 &&
		    error_in_200(s, &c, &body, p, &r, &retry)) {
			/* r set */
		} else if (!r && c.status == 200) {
			char qe[S3_LIST_ETAG_MAX + 2], lm[64];
			struct s3_xml_field f[] = {{"ETag", qe, sizeof(qe), 0},
			    {"LastModified", lm, sizeof(lm), 0}};
			if (s3_resultxml_parse(body.p ? body.p : "", body.len,
			    "CopyObjectResult", f, 2) ||
			    http_etag_value(qe, strlen(qe), etag,
			    UFS_ETAG_MAX) < 0) {
				set_call_error(s, &c, "CopyObject: the reply is "
				    "not its result");
				r = -EIO;
			} else {
				*mtime = f[1].found ? parse_iso8601(lm,
				    strlen(lm)) : c.date;
			}
		} else if (!r && c.status == 404) {
			http_failure(s, &c, 1);
			r = -ENOENT; /* the source went */
		} else if (!r) {
			r = write_http_error(s, &c, p);
		}
		call_done(&c);
		if (!retry || attempt >= s->retries || now_ms() > deadline)
			break;
		backoff_sleep(attempt + 1, deadline - now_ms());
	}
	dbuf_free(&body);
	return r;
}

/* A copy of a source over CopyObject's 5 GiB: UploadPartCopy of its
 * ranges (the source's version pinned with x-amz-copy-source-if-match),
 * in parallel, then CompleteMultipartUpload. */
static int
copy_parts(struct s3_put *p, int64_t size, char *etag, int64_t *mtime)
{
	int r = 0;
	for (int64_t off = 0; off < size && !r;) {
		int idx = acquire_slot(p);
		if (idx < 0) {
			r = idx;
			break;
		}
		struct s3_slot *t = &p->slots[idx];
		int64_t n = size - off < p->part_size ? size - off : p->part_size;
		t->src_off = off;
		t->len = (size_t)n;
		r = start_part(p, idx);
		off += n;
	}
	if (!r) {
		wait_parts(p, 0);
		r = p->err;
	}
	if (!r)
		r = complete_upload(p, etag, mtime);
	if (r) {
		put_fail(p, r);
		r = p->err;
	}
	return r;
}

static int
s3_copy(void *state, const char *src, const char *dst,
    const struct ufs_put_opts *o, struct ufs_stat *st)
{
	struct s3_state *s = state;
	memset(st, 0, sizeof(*st));
	struct dbuf skey, dkey, meta, source;
	dbuf_init(&meta, S3_META_MAX);
	dbuf_init(&source, 3 * (UFS_KEY_MAX + s->prefix_len) + 300);
	int r = full_key(s, src, &skey);
	if (!r)
		r = full_key(s, dst, &dkey);
	else
		dbuf_init(&dkey, 1);
	struct s3_put *p = NULL;
	struct ufs_stat ss;
	if (!r)
		r = s3_head_key(s, skey.p, &ss, &meta);
	if (!r && dbuf_error(&meta)) {
		ufs_set_error("s3://%s/%s: its headers are too large to copy",
		    s->bucket, skey.p);
		r = -EIO;
	}
	if (!r) {
		dbuf_printf(&source, "/%s/", s->bucket);
		url_encode(&source, skey.p, skey.len, 1);
		r = dbuf_error(&source) ? -ENAMETOOLONG : 0;
	}
	if (!r)
		r = put_new(s, dkey.p, o, &p);
	/* The object's headers: those given (REPLACE), or, for a copy in
	 * parts, the source's (CopyObject copies them itself). */
	for (int i = 0; !r && i < o->nheaders; i++)
		r = put_add_meta(p, o->headers[i].key, o->headers[i].value,
		    strlen(o->headers[i].value));
	for (size_t i = 0; !r && o->nheaders == 0 && ss.size > S3_COPY_MAX &&
	    i < meta.len;) {
		const char *name = meta.p + i;
		const char *value = name + strlen(name) + 1;
		i = (size_t)(value - meta.p) + strlen(value) + 1;
		r = put_add_meta(p, name, value, strlen(value));
	}
	char etag[UFS_ETAG_MAX] = "";
	int64_t mtime = -1;
	if (!r) {
		put_fix_meta(p);
		if (ss.size <= S3_COPY_MAX) {
			r = copy_object(p, source.p, o, etag, &mtime);
		} else {
			p->copy_src = source.p;
			quote_etag(ss.etag, p->copy_if_match,
			    sizeof(p->copy_if_match));
			int64_t ps = (ss.size + S3_PARTS_MAX - 1) / S3_PARTS_MAX;
			p->part_size = ps > S3_COPY_PART ? ps : S3_COPY_PART;
			r = copy_parts(p, ss.size, etag, &mtime);
		}
	}
	if (!r)
		stat_after_write(s, dkey.p, ss.size, etag, mtime, st);
	if (p)
		put_free(p);
	dbuf_free(&skey);
	dbuf_free(&dkey);
	dbuf_free(&meta);
	dbuf_free(&source);
	return r == -E2BIG ? -EINVAL : r;
}

const struct ufs_ops ufs_s3_ops = {
    .scheme = "s3",
    .options = s3_options,
    .open = s3_open,
    .close = s3_close,
    .stat = s3_stat,
    .list = s3_list,
    .read = s3_read,
    .read_stat = s3_read_stat,
    .put_begin = s3_put_begin,
    .put_write = s3_put_write,
    .put_commit = s3_put_commit,
    .put_abort = s3_put_abort,
    .remove = s3_remove,
    .copy = s3_copy,
};
