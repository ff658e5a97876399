/*
 * control.c: the control API and Prometheus metrics on the control address
 * (29999 by default).  Runs on the HTTP server's connection threads.  JSON
 * in and out; the API that libferry and the CLI speak (documented in
 * docs/control-api.md).
 *
 * Access (docs/control-api.md, "Access"): /healthz, /metrics and / are
 * public.  Every other call is a data call (GET/HEAD: stat, list, data,
 * stats, cluster, local, mounts) or an admin call (POST/DELETE mounts).
 * A worker with a control token or S3 keys is protected: its admin calls
 * need "Authorization: Bearer <token>" or a SigV4 signature by the S3
 * keys, and so do its data calls, unless it has no token and its gateway
 * admits anonymous requests (--s3-anonymous): then data calls are as open
 * as the gateway.  So nothing is readable on this port that the gateway
 * would refuse.  A worker with neither token nor keys listens on loopback
 * only (worker_config.c refuses otherwise) and checks nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/crypto.h"
#include "../common/sigv4.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/vas.h"
#include "../http/http_range.h"
#include "../s3/s3_metrics.h"
#include "localfd.h"
#include "metrics.h"
#include "namespace.h"
#include "objget.h"
#include "objkey.h"
#include "objput.h"
#include "worker.h"
#include "control_impl.h"

#define CTL_BODY_MAX (1024 * 1024)
#define CTL_JSON_MAX (8 * 1024 * 1024)
#define CTL_LIST_MAX 1000

/* GET/HEAD /v1/data requests: tells local (fd) reads from HTTP ones. */
static int64_t g_data_requests;

enum access { ACCESS_PUBLIC, ACCESS_DATA, ACCESS_ADMIN };

/* Does v[0..vl) carry the control token?  Compared as SHA-256 digests, so
 * the time taken says nothing about the token, its length included. */
static int
bearer_ok(const struct worker *w, const char *v, size_t vl)
{
	if (!w->cfg.control_token || !v || vl < 7 || memcmp(v, "Bearer ", 7) != 0)
		return 0;
	unsigned char a[32], b[32];
	sha256(v + 7, vl - 7, a);
	sha256(w->cfg.control_token, strlen(w->cfg.control_token), b);
	return ct_memcmp(a, b, sizeof(a)) == 0;
}

/* May this request make a call of this kind?  Else answers 401/403. */
static int
authorized(struct worker *w, struct http_conn *c, const struct http_request *req,
    enum access kind)
{
	int protected = w->cfg.control_token || w->s3_verify;
	if (kind == ACCESS_PUBLIC || !protected)
		return 1;
	if (kind == ACCESS_DATA && !w->cfg.control_token && w->cfg.s3_anonymous)
		return 1;
	size_t vl;
	const char *v = http_header_get(req, "authorization", &vl);
	if (bearer_ok(w, v, vl))
		return 1;
	const char *why = NULL;
	if (w->s3_verify && ((v && vl > 5 && memcmp(v, "AWS4-", 5) == 0) ||
	    http_query_get(req->query, req->query_len, "X-Amz-Signature", &v, &vl))) {
		enum sigv4_status st = sigv4_verify(req, wall_sec(), worker_s3_secret, w, &why);
		if (st == SIGV4_OK)
			return 1;
		if (!why)
			why = st == SIGV4_MISMATCH ? "the signature does not match" :
			    st == SIGV4_UNKNOWN_KEY ? "unknown access key" : "bad signature";
	}
	char msg[384];
	snprintf(msg, sizeof(msg), "this call needs %s%s%s%s%s%s",
	    w->cfg.control_token ? "the control token (Authorization: Bearer <token>)" : "",
	    w->cfg.control_token && w->s3_verify ? " or " : "",
	    w->s3_verify ? "a SigV4 signature by the worker's S3 keys ($FERRY_S3_ACCESS_KEY, $FERRY_S3_SECRET_KEY)" : "",
	    why ? " (" : "", why ? why : "", why ? ")" : "");
	ctl_reply_error(c, 401, "AccessDenied", msg);
	return 0;
}

static void
put_stat_json(struct dbuf *b, const struct ufs_stat *st)
{
	char etag[UFS_ETAG_MAX];
	if (st->is_dir)
		etag[0] = 0;
	else
		objkey_etag(st, etag, sizeof(etag));
	dbuf_printf(b, "\"size\":%" PRId64 ",\"mtime\":%" PRId64 ",\"is_dir\":%s,\"etag\":",
	    st->is_dir ? 0 : st->size, st->mtime, st->is_dir ? "true" : "false");
	json_put_str(b, etag);
}

static void
op_stat(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char path[3 * 1024 + 128];
	struct mount *m;
	const char *key;
	if (ctl_resolve(w, c, req, path, sizeof(path), &m, &key, 1) < 0)
		return;
	struct ufs_stat st;
	memset(&st, 0, sizeof(st));
	int64_t cached = 0;
	int r = 0;
	if (!m) {
		st.is_dir = 1;
		st.mtime = w->started;
	} else {
		r = objget_stat(w->og, m, key, &st, &cached);
	}
	if (r < 0) {
		ctl_reply_errno(c, r, path);
	} else {
		struct dbuf b;
		dbuf_init(&b, 16384);
		dbuf_adds(&b, "{\"path\":");
		json_put_str(&b, path);
		dbuf_adds(&b, ",");
		put_stat_json(&b, &st);
		dbuf_printf(&b, ",\"cached_bytes\":%" PRId64 "}\n", cached);
		ctl_reply_json(c, 200, &b);
		dbuf_free(&b);
	}
	mount_release(&m);
}

struct list_out {
	struct dbuf *b;
	size_t strip; /* bytes of the directory prefix to strip from keys */
	int n;
	char last[UFS_KEY_MAX + 2];
	int64_t mtime; /* of the mounts, at / */
};

static int
list_out_one(void *arg, const struct ufs_entry *e)
{
	struct list_out *lo = arg;
	const char *name = e->key + lo->strip;
	size_t nl = strlen(name);
	if (nl && name[nl - 1] == '/')
		nl--;
	snprintf(lo->last, sizeof(lo->last), "%s", name); /* keeps a dir's '/' */
	if (lo->n++)
		dbuf_adds(lo->b, ",");
	dbuf_adds(lo->b, "{\"name\":");
	json_put_strn(lo->b, name, nl);
	dbuf_adds(lo->b, ",");
	struct ufs_stat st = {.size = e->size, .mtime = e->mtime, .is_dir = e->is_dir};
	snprintf(st.etag, sizeof(st.etag), "%s", e->etag ? e->etag : "");
	put_stat_json(lo->b, &st);
	return dbuf_adds(lo->b, "}") ? 1 : 0;
}

static int
list_mount_one(void *arg, const struct mount *m)
{
	struct list_out *lo = arg;
	if (strcmp(m->name, lo->last) <= 0 || lo->n >= CTL_LIST_MAX)
		return 0;
	if (lo->n++)
		dbuf_adds(lo->b, ",");
	dbuf_adds(lo->b, "{\"name\":");
	json_put_str(lo->b, m->name);
	/* A mount has no mtime of its own: the worker's start, as stat of "/"
	 * says. */
	return dbuf_printf(lo->b, ",\"size\":0,\"mtime\":%" PRId64 ",\"is_dir\":true,\"etag\":\"\"}",
	    lo->mtime) ? 1 : 0;
}

static void
op_list(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char path[3 * 1024 + 128], after[1100] = "", maxs[16] = "";
	struct mount *m;
	const char *key;
	if (ctl_resolve(w, c, req, path, sizeof(path), &m, &key, 1) < 0)
		return;
	if (ctl_qget(req, "start_after", after, sizeof(after)) < 0 ||
	    ctl_qget(req, "max", maxs, sizeof(maxs)) < 0 ||
	    (strchr(after, '/') && strchr(after, '/')[1] != 0)) {
		ctl_reply_error(c, 400, "BadRequest", "malformed start_after or max");
		mount_release(&m);
		return;
	}
	int max = maxs[0] ? atoi(maxs) : CTL_LIST_MAX;
	if (max <= 0 || max > CTL_LIST_MAX)
		max = CTL_LIST_MAX;
	struct dbuf b;
	dbuf_init(&b, CTL_JSON_MAX);
	dbuf_adds(&b, "{\"entries\":[");
	struct list_out lo = {.b = &b};
	int truncated = 0, r = 0;
	if (!m) {
		snprintf(lo.last, sizeof(lo.last), "%.1000s", after);
		lo.mtime = w->started;
		mounts_foreach(w->mt, list_mount_one, &lo);
	} else {
		/* A directory: check it is one (a file or nothing is an error). */
		struct ufs_stat st;
		r = key[0] ? meta_stat(w->mc, m, key, &st) : 0;
		if (r == 0 && key[0] && !st.is_dir)
			r = -ENOTDIR;
		if (r == 0) {
			char prefix[UFS_KEY_MAX + 2], sa[UFS_KEY_MAX + 2] = "";
			snprintf(prefix, sizeof(prefix), "%s%s", key, key[0] ? "/" : "");
			/* next/start_after is a name; a directory's ends in '/',
			 * which makes the listing skip what is under it. */
			if (after[0] && strlen(prefix) + strlen(after) >= sizeof(sa)) {
				ctl_reply_error(c, 400, "BadRequest", "start_after too long");
				dbuf_free(&b);
				mount_release(&m);
				return;
			}
			/* From the start, after the prefix itself: a directory's
			 * own marker object "dir/" is not one of its entries. */
			size_t pl = strlen(prefix);
			memcpy(sa, prefix, pl);
			memcpy(sa + pl, after, strlen(after) + 1);
			lo.strip = strlen(prefix);
			r = meta_list(w->mc, m, prefix, "/", sa, max, list_out_one, &lo, &truncated);
		}
	}
	if (r < 0) {
		ctl_reply_errno(c, r, path);
	} else {
		dbuf_printf(&b, "],\"truncated\":%s,\"next\":", truncated ? "true" : "false");
		json_put_str(&b, truncated ? lo.last : "");
		if (dbuf_adds(&b, "}\n"))
			ctl_reply_error(c, 500, "Internal", "listing page too large");
		else
			ctl_reply_json(c, 200, &b);
	}
	dbuf_free(&b);
	mount_release(&m);
}

/* /v1/data: the head has ETag, X-Ferry-Size and the range. */
struct data_ctx {
	struct http_conn *c;
	int ended; /* the head was the whole answer */
};

static int
data_head(void *arg, const struct objget_head *h)
{
	struct data_ctx *d = arg;
	char hdr[512];
	if (h->status == 416) {
		snprintf(hdr, sizeof(hdr), "Content-Range: bytes */%" PRId64 "\r\n", h->st->size);
		d->ended = 1;
		return http_resp_simple(d->c, 416, hdr, "text/plain", "range not satisfiable\n", 22);
	}
	int hl = snprintf(hdr, sizeof(hdr), "ETag: \"%.128s\"\r\nX-Ferry-Size: %" PRId64 "\r\n",
	    h->etag, h->st->size);
	if (h->status == 206)
		snprintf(hdr + hl, sizeof(hdr) - (size_t)hl,
		    "Content-Range: bytes %" PRId64 "-%" PRId64 "/%" PRId64 "\r\n",
		    h->first, h->last, h->st->size);
	int r = http_resp_start(d->c, h->status, hdr, h->length);
	if (r == 0 && h->length == 0) {
		d->ended = 1;
		r = http_resp_end(d->c);
	}
	return r;
}

static int
data_file(void *arg, int fd, off_t off, size_t n)
{
	struct data_ctx *d = arg;
	return http_resp_sendfile(d->c, fd, off, n);
}

static int
data_mem(void *arg, const void *p, size_t n)
{
	struct data_ctx *d = arg;
	return http_resp_body(d->c, p, n);
}

static void
op_data(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char path[3 * 1024 + 128];
	struct mount *m;
	const char *key;
	__atomic_fetch_add(&g_data_requests, 1, __ATOMIC_RELAXED);
	if (ctl_resolve(w, c, req, path, sizeof(path), &m, &key, 0) < 0)
		return;
	if (!m || !key[0]) {
		ctl_reply_errno(c, -EISDIR, path);
		mount_release(&m);
		return;
	}
	struct objget_req rq = {.m = m, .path = key, .head = req->method_len == 4};
	/* A peer's forwarded block read: served from here, never forwarded
	 * again.  If-Match pins the version (a peer's or libferry's). */
	size_t hl = 0;
	rq.local_only = http_header_get(req, "x-ferry-hop", &hl) != NULL;
	rq.pin.p = http_header_get(req, "if-match", &rq.pin.n);
	if (rq.pin.p && rq.pin.n >= 2 && rq.pin.p[0] == '"' && rq.pin.p[rq.pin.n - 1] == '"') {
		rq.pin.p++;
		rq.pin.n -= 2;
	}
	rq.range.p = http_header_get(req, "range", &rq.range.n);
	struct data_ctx d = {.c = c};
	struct objget_sink sink = {.head = data_head, .file = data_file, .mem = data_mem, .arg = &d};
	int started = 0;
	int r = objget_serve(w->og, &rq, &sink, &started);
	if (r == 0) {
		if (!d.ended)
			http_resp_end(c);
	} else if (started || http_resp_started(c)) {
		http_conn_set_close(c);
	} else if (r == -ESTALE) {
		ctl_reply_error(c, 412, "PreconditionFailed", "the object is at another version");
	} else {
		ctl_reply_errno(c, r, path);
	}
	mount_release(&m);
}

/* --- writes: PUT and DELETE /v1/data, POST /v1/rename (objput) ----------- */

struct ctl_body {
	struct http_conn *c;
	ssize_t err; /* http_body_read's failure */
};

static ssize_t
ctl_body_read(void *arg, void *buf, size_t n)
{
	struct ctl_body *b = arg;
	ssize_t r = http_body_read(b->c, buf, n);
	if (r < 0)
		b->err = r;
	return r;
}

static void
reply_stat(struct http_conn *c, const char *path, const struct ufs_stat *st)
{
	struct dbuf b;
	dbuf_init(&b, 16384);
	dbuf_adds(&b, "{\"path\":");
	json_put_str(&b, path);
	dbuf_adds(&b, ",");
	put_stat_json(&b, st);
	dbuf_adds(&b, "}\n");
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
}

/* A write's key: a mount and a non-empty key that names no directory. */
static int
write_target(struct worker *w, struct http_conn *c, const struct http_request *req,
    const char *param, char *path, size_t cap, struct mount **m, const char **key)
{
	char tmp[3 * 1024 + 128];
	const char *v;
	size_t vl;
	*m = NULL;
	if (strcmp(param, "path") != 0) {
		/* ctl_resolve() reads ?path=: hand it the other parameter's value */
		if (!http_query_get(req->query, req->query_len, param, &v, &vl) ||
		    vl + 6 >= sizeof(tmp)) {
			ctl_reply_error(c, 400, "BadRequest", "missing or malformed ?from= / ?to=");
			return -1;
		}
		struct http_request r2 = *req;
		snprintf(tmp, sizeof(tmp), "path=%.*s", (int)vl, v);
		r2.query = tmp;
		r2.query_len = strlen(tmp);
		return write_target(w, c, &r2, "path", path, cap, m, key);
	}
	size_t pl = 0;
	if (http_query_get(req->query, req->query_len, "path", &v, &pl) && pl &&
	    (v[pl - 1] == '/' || (pl >= 3 && memcmp(v + pl - 3, "%2F", 3) == 0) ||
	    (pl >= 3 && memcmp(v + pl - 3, "%2f", 3) == 0))) {
		ctl_reply_errno(c, -EISDIR, "a directory cannot be written");
		return -1;
	}
	if (ctl_resolve(w, c, req, path, cap, m, key, 0) < 0)
		return -1;
	if (!*m || !(*key)[0]) {
		ctl_reply_errno(c, -EISDIR, path);
		mount_release(m);
		return -1;
	}
	return 0;
}

/* PUT /v1/data?path=P: the body becomes the object, as the S3 gateway's
 * PutObject (the answer after the under-store committed).  If-None-Match:
 * * and If-Match: ETAG make it conditional; Content-Type is kept. */
static void
op_data_put(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char path[3 * 1024 + 128], etag[UFS_ETAG_MAX];
	struct mount *m;
	const char *key;
	if (write_target(w, c, req, "path", path, sizeof(path), &m, &key) < 0)
		return;
	struct ctl_body cb = {.c = c};
	struct objput_req rq = {.m = m, .path = key, .body = ctl_body_read, .arg = &cb};
	rq.opts.size = req->content_length;
	size_t l = 0;
	const char *v = http_header_get(req, "if-none-match", &l);
	if (v)
		rq.opts.if_none_match = l == 1 && v[0] == '*';
	v = http_header_get(req, "if-match", &l);
	if (v && l >= 2 && v[0] == '"' && v[l - 1] == '"') {
		v++;
		l -= 2;
	}
	if ((v && (l == 0 || l >= sizeof(etag))) ||
	    (http_header_get(req, "if-none-match", NULL) && !rq.opts.if_none_match)) {
		ctl_reply_error(c, 400, "BadRequest", "If-None-Match takes only '*', If-Match one ETag");
		mount_release(&m);
		return;
	}
	if (v) {
		memcpy(etag, v, l);
		etag[l] = 0;
		rq.opts.if_match = etag;
	}
	char ct[256];
	struct ufs_opt hdr = {"content-type", ct};
	v = http_header_get(req, "content-type", &l);
	if (v && l < sizeof(ct)) {
		memcpy(ct, v, l);
		ct[l] = 0;
		rq.opts.headers = &hdr;
		rq.opts.nheaders = 1;
	}
	struct ufs_stat st;
	int r = objput_put(w->op, &rq, &st);
	if (r == 0)
		reply_stat(c, path, &st);
	else if (cb.err == -ETIMEDOUT)
		ctl_reply_error(c, 408, "RequestTimeout", "the body stopped arriving");
	else if (cb.err)
		http_conn_set_close(c); /* the client is gone */
	else if (r == -EEXIST)
		ctl_reply_error(c, 412, "Exists", "the object exists (If-None-Match: *)");
	else
		ctl_reply_errno(c, r, path);
	mount_release(&m);
}

static void
op_data_delete(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char path[3 * 1024 + 128];
	struct mount *m;
	const char *key;
	if (write_target(w, c, req, "path", path, sizeof(path), &m, &key) < 0)
		return;
	int r = objput_delete(w->op, m, key);
	if (r == 0)
		http_resp_simple(c, 204, NULL, NULL, NULL, 0);
	else
		ctl_reply_errno(c, r, path);
	mount_release(&m);
}

/* POST /v1/rename?from=A&to=B: within one mount, the store copies and the
 * source goes (not atomic: a reader may see both for a moment, never
 * neither); across mounts or for a directory, CrossMount (EXDEV): a
 * client copies and deletes itself, as mv(1) does. */
static void
op_rename(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char from[3 * 1024 + 128], to[3 * 1024 + 128];
	struct mount *fm = NULL, *tm = NULL;
	const char *fk, *tk;
	if (write_target(w, c, req, "from", from, sizeof(from), &fm, &fk) < 0)
		return;
	if (write_target(w, c, req, "to", to, sizeof(to), &tm, &tk) < 0) {
		mount_release(&fm);
		return;
	}
	struct ufs_stat st;
	int64_t cached;
	int r = fm != tm ? -EXDEV : objget_stat(w->og, fm, fk, &st, &cached);
	if (r == 0 && st.is_dir)
		r = -EXDEV;
	if (r == 0 && strcmp(fk, tk) != 0) {
		struct ufs_put_opts o = {.size = -1};
		r = objput_copy(w->op, fm, fk, tk, &o, &st);
		if (r == 0)
			r = objput_delete(w->op, fm, fk);
	}
	if (r == 0)
		reply_stat(c, to, &st);
	else
		ctl_reply_errno(c, r, r == -EXDEV ? "rename across mounts or of a directory" : from);
	mount_release(&fm);
	mount_release(&tm);
}

/* POST /v1/invalidate?path=/mount/key: a peer wrote or deleted it
 * (router_announce); what this worker cached about it is checked again
 * at its next use.  Needs the control token, as every admin call. */
static void
op_invalidate(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char path[3 * 1024 + 128];
	struct mount *m;
	const char *key;
	if (ctl_resolve(w, c, req, path, sizeof(path), &m, &key, 1) < 0)
		return;
	if (m && key[0])
		meta_changed_elsewhere(w->mc, m, key);
	mount_release(&m);
	http_resp_simple(c, 204, NULL, NULL, NULL, 0);
}

static void
op_mounts_get(struct worker *w, struct http_conn *c)
{
	struct dbuf b;
	dbuf_init(&b, CTL_JSON_MAX);
	mounts_json(w->mt, &b);
	dbuf_adds(&b, "\n");
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
}

static void
op_mount(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char *body = malloc(CTL_BODY_MAX);
	if (!body) {
		ctl_reply_error(c, 503, "Busy", "out of memory");
		return;
	}
	ssize_t n = http_read_body(c, body, CTL_BODY_MAX);
	if (n < 0) {
		ctl_reply_error(c, 400, "BadRequest", n == -E2BIG ? "request body too large" : "cannot read the body");
		free(body);
		return;
	}
	char *name = NULL, *err = NULL;
	/* Checked here, by the worker the client asked ("check": false in
	 * the body to skip it); the cluster's other workers take it as is. */
	int r = mounts_apply_json(w->mt, body, (size_t)n, MOUNTS_SAVE | MOUNTS_CHECK,
	    &name, &err);
	if (r == 0 && worker_cluster(w)) {
		/* Cluster-wide: the definition goes to etcd, and every
		 * worker's watch applies it (here it is in place already). */
		r = cluster_mount_create(worker_cluster(w), name, body, (size_t)n);
		if (r < 0) {
			mounts_remove(w->mt, name);
			free(err);
			err = strdup(r == -EEXIST ? "a mount with this name exists in the cluster" :
			    "the cluster store (etcd) cannot be reached: mount not made");
			if (r != -EEXIST)
				r = -EAGAIN;
		}
	}
	if (r == 0) {
		struct dbuf b;
		dbuf_init(&b, 64);
		dbuf_adds(&b, "{\"ok\":true}\n");
		ctl_reply_json(c, 200, &b);
		dbuf_free(&b);
	} else {
		ctl_reply_error(c, r == -EEXIST ? 409 : r == -EAGAIN ? 503 :
		    r == MOUNTS_ECHECK ? 502 : 400,
		    r == -EEXIST ? "Exists" : r == -EAGAIN ? "ClusterUnavailable" :
		    r == MOUNTS_ECHECK ? "MountCheckFailed" : "BadMount",
		    err ? err : strerror(-r));
	}
	free(err);
	free(name);
	memset(body, 0, (size_t)n);
	free(body);
}

static void
op_unmount(struct worker *w, struct http_conn *c, const char *name, size_t len)
{
	char nm[MOUNT_NAME_MAX + 1];
	if (len == 0 || len > MOUNT_NAME_MAX) {
		ctl_reply_error(c, 404, "NoSuchMount", "no such mount");
		return;
	}
	memcpy(nm, name, len);
	nm[len] = 0;
	/* Writes acknowledged and not yet in the store are not dropped by an
	 * unmount: they would be lost. */
	struct mount *m = mounts_get(w->mt, nm, len);
	int64_t pending = m ? ufs_wb_pending(m->ident) : 0;
	mount_release(&m);
	if (pending > 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "/%s has %" PRId64 " write(s) not yet in "
		    "its under-store (see `ferry writeback`): unmount once they "
		    "are uploaded", nm, pending);
		ctl_reply_error(c, 409, "WritesPending", msg);
		return;
	}
	int cr = -ENOENT;
	if (worker_cluster(w)) {
		cr = cluster_mount_delete(worker_cluster(w), nm);
		if (cr < 0 && cr != -ENOENT) {
			ctl_reply_error(c, 503, "ClusterUnavailable",
			    "the cluster store (etcd) cannot be reached: mount not removed");
			return;
		}
	}
	/* A mount made before the worker joined a cluster lives here only. */
	if (mounts_remove(w->mt, nm) < 0 && cr < 0) {
		ctl_reply_error(c, 404, "NoSuchMount", "no such mount");
		return;
	}
	struct dbuf b;
	dbuf_init(&b, 64);
	dbuf_adds(&b, "{\"ok\":true}\n");
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
}

/* GET /v1/writeback: per write=back mount, what is not yet in its
 * under-store. */
static void
op_writeback(struct worker *w, struct http_conn *c)
{
	(void)w;
	struct ufs_wb_status *v;
	int n = ufs_wb_status(&v);
	if (n < 0) {
		ctl_reply_error(c, 500, "InternalError", "out of memory");
		return;
	}
	struct dbuf b;
	dbuf_init(&b, 1 << 20);
	dbuf_adds(&b, "{\"mounts\":[");
	for (int i = 0; i < n; i++) {
		dbuf_printf(&b, "%s{\"mount\":", i ? "," : "");
		json_put_str(&b, v[i].name);
		dbuf_printf(&b, ",\"attached\":%s,\"objects\":%" PRId64
		    ",\"bytes\":%" PRId64 ",\"oldest_s\":%" PRId64
		    ",\"uploading\":%" PRId64 ",\"uploaded\":%" PRId64
		    ",\"failures\":%" PRId64 ",\"last_error\":",
		    v[i].attached ? "true" : "false", v[i].objects, v[i].bytes,
		    v[i].oldest_s, v[i].uploading, v[i].uploaded, v[i].failures);
		json_put_str(&b, v[i].last_error);
		dbuf_adds(&b, "}");
	}
	dbuf_adds(&b, "]}\n");
	free(v);
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
}

static void
op_stats(struct worker *w, struct http_conn *c)
{
	struct pagestore_stats ps;
	pagestore_get_stats(w->ps, &ps);
	struct ufs_counters uc;
	ufs_get_counters(&uc);
	int64_t ufs_req = 0;
	for (int i = 0; i < UFSOP__N; i++)
		ufs_req += uc.requests[i];
	struct dbuf b;
	dbuf_init(&b, CTL_JSON_MAX);
	dbuf_printf(&b, "{\"hit_bytes\":%" PRId64 ",\"miss_bytes\":%" PRId64
	    ",\"readahead_bytes\":%" PRId64 ",\"stale_answers\":%" PRId64
	    ",\"ufs_read_bytes\":%" PRId64 ",\"ufs_requests\":%" PRId64
	    ",\"used_bytes\":%" PRId64 ",\"capacity_bytes\":%" PRId64
	    ",\"evicted_bytes\":%" PRId64 ",\"pages\":%" PRId64
	    ",\"checksum_failures\":%" PRId64 ",\"write_errors\":%" PRId64
	    ",\"mounts\":%d,\"uptime_s\":%" PRId64 ",\"sync_interval_ms\":%" PRId64
	    ",\"pinned_bytes\":%" PRId64 ",\"ttl_freed_bytes\":%" PRId64 ",\"per_mount\":",
	    METRIC_GET(hit_bytes), METRIC_GET(miss_bytes), METRIC_GET(readahead_bytes),
	    METRIC_GET(meta_stale), uc.read_bytes,
	    ufs_req, ps.used_bytes, ps.capacity_bytes, ps.evicted_bytes_total,
	    ps.pages, ps.checksum_failures_total, ps.write_errors_total,
	    mounts_count(w->mt), wall_sec() - w->started, w->cfg.sync_interval_ms,
	    ps.pinned_bytes, ps.ttl_freed_bytes_total);
	ctl_mount_usage_json(w, &b);
	dbuf_adds(&b, "}\n");
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
}

static void
op_metrics(struct worker *w, struct http_conn *c)
{
	struct pagestore_stats ps;
	pagestore_get_stats(w->ps, &ps);
	struct dbuf b;
	dbuf_init(&b, 1024 * 1024);
	metrics_render(&b, &ps);
	ctl_mount_usage_metrics(w, &b);
	s3_metrics_render(&b);
	localfd_metrics_render(&b);
	dbuf_printf(&b, "# HELP ferry_control_data_requests_total File data requests on the control API (/v1/data).\n"
	    "# TYPE ferry_control_data_requests_total counter\n"
	    "ferry_control_data_requests_total %" PRId64 "\n",
	    __atomic_load_n(&g_data_requests, __ATOMIC_RELAXED));
	struct http_server_stats s3s = {0}, cts = {0};
	if (w->s3)
		http_server_get_stats(w->s3, &s3s);
	if (w->ctl)
		http_server_get_stats(w->ctl, &cts);
	dbuf_printf(&b, "# HELP ferry_connections_open Open client connections, by server.\n"
	    "# TYPE ferry_connections_open gauge\n"
	    "ferry_connections_open{server=\"s3\"} %" PRId64 "\nferry_connections_open{server=\"control\"} %" PRId64 "\n",
	    s3s.open_conns, cts.open_conns);
	dbuf_printf(&b, "# HELP ferry_connections_rejected_total Connections refused (503): at a connection cap with none idle.\n"
	    "# TYPE ferry_connections_rejected_total counter\n"
	    "ferry_connections_rejected_total %" PRId64 "\n",
	    s3s.rejected_total + cts.rejected_total);
	dbuf_printf(&b, "# HELP ferry_connections_idle Open connections between requests (parked, no thread), by server.\n"
	    "# TYPE ferry_connections_idle gauge\n"
	    "ferry_connections_idle{server=\"s3\"} %" PRId64 "\nferry_connections_idle{server=\"control\"} %" PRId64 "\n"
	    "# HELP ferry_connections_shed_total Idle connections closed to make room at a connection cap.\n"
	    "# TYPE ferry_connections_shed_total counter\n"
	    "ferry_connections_shed_total %" PRId64 "\n",
	    s3s.idle_conns, cts.idle_conns, s3s.shed_total + cts.shed_total);
	struct router_stats rs;
	router_get_stats(w->rt, &rs);
	int members = 1, etcd_up = 0;
	if (worker_cluster(w)) {
		struct cluster_view *v = cluster_view_get(worker_cluster(w));
		members = v->n;
		etcd_up = v->etcd_ok;
		cluster_view_release(&v);
	}
	dbuf_printf(&b, "# HELP ferry_cluster_members Workers in this worker's view of the cluster.\n"
	    "# TYPE ferry_cluster_members gauge\nferry_cluster_members %d\n"
	    "# HELP ferry_cluster_etcd_up 1 if etcd answered the last call (0 also without a cluster).\n"
	    "# TYPE ferry_cluster_etcd_up gauge\nferry_cluster_etcd_up %d\n"
	    "# HELP ferry_cluster_block_reads_total Block reads, served here or forwarded to the worker placement chose.\n"
	    "# TYPE ferry_cluster_block_reads_total counter\n"
	    "ferry_cluster_block_reads_total{where=\"local\"} %" PRId64 "\n"
	    "ferry_cluster_block_reads_total{where=\"forwarded\"} %" PRId64 "\n"
	    "# HELP ferry_cluster_forwarded_bytes_total Bytes streamed from peers to this worker's clients.\n"
	    "# TYPE ferry_cluster_forwarded_bytes_total counter\nferry_cluster_forwarded_bytes_total %" PRId64 "\n"
	    "# HELP ferry_cluster_failovers_total Block reads that moved on to the next worker after one failed.\n"
	    "# TYPE ferry_cluster_failovers_total counter\nferry_cluster_failovers_total %" PRId64 "\n"
	    "# HELP ferry_cluster_peer_errors_total Failed requests to peers.\n"
	    "# TYPE ferry_cluster_peer_errors_total counter\nferry_cluster_peer_errors_total %" PRId64 "\n"
	    "# HELP ferry_cluster_announce_misses_total Peers not told of a write or delete of this worker (they see it within their sync interval).\n"
	    "# TYPE ferry_cluster_announce_misses_total counter\nferry_cluster_announce_misses_total %" PRId64 "\n",
	    members, etcd_up, rs.local_blocks, rs.forwarded, rs.forwarded_bytes,
	    rs.failovers, rs.peer_errors, rs.announce_misses);
	dbuf_printf(&b, "# HELP ferry_hot_blocks Blocks this worker reads past --hot-threshold reads/s (spread over more workers).\n"
	    "# TYPE ferry_hot_blocks gauge\nferry_hot_blocks %" PRId64 "\n"
	    "# HELP ferry_hot_replicas Extra replicas the hot blocks are spread over.\n"
	    "# TYPE ferry_hot_replicas gauge\nferry_hot_replicas %" PRId64 "\n"
	    "# HELP ferry_hot_reads_total Block reads spread over extra replicas because their block was hot.\n"
	    "# TYPE ferry_hot_reads_total counter\nferry_hot_reads_total %" PRId64 "\n",
	    rs.hot_blocks, rs.hot_replicas, rs.hot_reads);
	if (dbuf_error(&b))
		http_resp_simple(c, 500, NULL, "text/plain", "metrics too large\n", 18);
	else
		http_resp_simple(c, 200, NULL, "text/plain; version=0.0.4", b.p, b.len);
	dbuf_free(&b);
}

static int
cluster_mount_replicas(void *arg, const struct mount *m)
{
	struct dbuf *b = arg;
	return dbuf_printf(b, "%s\"%s\":%d", b->p[b->len - 1] == '{' ? "" : ",",
	    m->name, m->replicas);
}

static void
json_member(struct dbuf *b, const struct member *m, int self)
{
	dbuf_adds(b, "{\"id\":");
	json_put_str(b, m->id);
	dbuf_adds(b, ",\"ctl\":");
	json_put_str(b, m->ctl);
	dbuf_adds(b, ",\"s3\":");
	json_put_str(b, m->s3);
	dbuf_printf(b, ",\"capacity\":%" PRId64 ",\"started\":%" PRId64 ",\"self\":%s}",
	    m->capacity, m->started, self ? "true" : "false");
}

/* This worker's view of the cluster: what clients need to place reads
 * themselves (members, block size, replicas per mount) and what
 * `ferry workers` shows.  No secrets. */
static void
op_cluster(struct worker *w, struct http_conn *c)
{
	struct dbuf b;
	dbuf_init(&b, CTL_JSON_MAX);
	dbuf_adds(&b, "{\"cluster\":");
	if (worker_cluster(w))
		json_put_str(&b, cluster_name(worker_cluster(w)));
	else
		dbuf_adds(&b, "null");
	dbuf_adds(&b, ",\"self\":");
	json_put_str(&b, w->id);
	dbuf_printf(&b, ",\"block_size\":%" PRId64 ",\"replicas\":{", router_block_size(w->rt));
	mounts_foreach(w->mt, cluster_mount_replicas, &b);
	dbuf_adds(&b, "},\"members\":[");
	if (worker_cluster(w)) {
		struct cluster_view *v = cluster_view_get(worker_cluster(w));
		for (int i = 0; i < v->n; i++) {
			if (i)
				dbuf_adds(&b, ",");
			json_member(&b, &v->m[i], strcmp(v->m[i].id, w->id) == 0);
		}
		dbuf_printf(&b, "],\"etcd_ok\":%s,\"view_version\":%" PRId64 "}\n",
		    v->etcd_ok ? "true" : "false", v->version);
		cluster_view_release(&v);
	} else {
		struct member self = {0};
		snprintf(self.id, sizeof(self.id), "%s", w->id);
		snprintf(self.ctl, sizeof(self.ctl), "%s:%d", w->cfg.ctl_host, http_server_port(w->ctl));
		snprintf(self.s3, sizeof(self.s3), "%s:%d", w->cfg.s3_host, http_server_port(w->s3));
		struct pagestore_stats ps;
		pagestore_get_stats(w->ps, &ps);
		self.capacity = ps.capacity_bytes;
		self.started = w->started;
		json_member(&b, &self, 1);
		dbuf_adds(&b, "],\"etcd_ok\":false,\"view_version\":0}\n");
	}
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
}

/* Where a client on this host gets page file descriptors (localfd.h). */
static void
op_local(struct worker *w, struct http_conn *c)
{
	if (!w->lfd) {
		ctl_reply_error(c, 404, "NotFound", "local reads are off (--local-socket none)");
		return;
	}
	char id[2 * LFD_ID_LEN + 1];
	localfd_id_hex(w->lfd, id);
	struct dbuf b;
	dbuf_init(&b, 4096);
	dbuf_adds(&b, "{\"socket\":");
	json_put_str(&b, localfd_path(w->lfd));
	dbuf_printf(&b, ",\"id\":\"%s\",\"protocol\":%d}\n", id, LFD_PROTOCOL);
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
}

static int
path_is(const struct http_request *req, const char *p)
{
	size_t l = strlen(p);
	return req->path_len == l && memcmp(req->path, p, l) == 0;
}

static int
method_is(const struct http_request *req, const char *m)
{
	size_t l = strlen(m);
	return req->method_len == l && memcmp(req->method, m, l) == 0;
}

void
control_handle(struct http_conn *c, const struct http_request *req, void *arg)
{
	struct worker *w = arg;
	ufs_clear_error(); /* this request's under-store errors only */
	int get = method_is(req, "GET") || method_is(req, "HEAD");
	if (path_is(req, "/healthz") && get) {
		http_resp_simple(c, 200, NULL, "text/plain", "ok\n", 3);
	} else if (path_is(req, "/metrics") && get) {
		op_metrics(w, c);
	} else if (path_is(req, "/") && get) {
		const char *msg = "ferry control API: /healthz /metrics /v1/stat /v1/list /v1/data /v1/rename /v1/stats /v1/writeback /v1/load /v1/du /v1/pin /v1/ttl /v1/free /v1/refresh /v1/policy /v1/local /v1/cluster /v1/mounts\n";
		http_resp_simple(c, 200, NULL, "text/plain", msg, strlen(msg));
	} else if (req->path_len >= 4 && memcmp(req->path, "/v1/", 4) == 0 &&
	    !authorized(w, c, req, get ? ACCESS_DATA : ACCESS_ADMIN)) {
		return; /* answered */
	} else if (path_is(req, "/v1/stat") && get) {
		op_stat(w, c, req);
	} else if (path_is(req, "/v1/list") && get) {
		op_list(w, c, req);
	} else if (path_is(req, "/v1/data") && get) {
		op_data(w, c, req);
	} else if (path_is(req, "/v1/data") && method_is(req, "PUT")) {
		op_data_put(w, c, req);
	} else if (path_is(req, "/v1/data") && method_is(req, "DELETE")) {
		op_data_delete(w, c, req);
	} else if (path_is(req, "/v1/rename") && method_is(req, "POST")) {
		op_rename(w, c, req);
	} else if (path_is(req, "/v1/invalidate") && method_is(req, "POST")) {
		op_invalidate(w, c, req);
	} else if (path_is(req, "/v1/policy") && get) {
		ctl_op_policy(w, c);
	} else if (path_is(req, "/v1/pin") && (method_is(req, "POST") || method_is(req, "DELETE"))) {
		ctl_op_pin(w, c, req, method_is(req, "POST"));
	} else if (path_is(req, "/v1/ttl") && (method_is(req, "POST") || method_is(req, "DELETE"))) {
		ctl_op_ttl(w, c, req, method_is(req, "POST"));
	} else if (path_is(req, "/v1/free") && method_is(req, "POST")) {
		ctl_op_free(w, c, req);
	} else if (path_is(req, "/v1/du") && get) {
		ctl_op_du(w, c, req);
	} else if (path_is(req, "/v1/load") && method_is(req, "POST")) {
		ctl_op_load_start(w, c, req);
	} else if (path_is(req, "/v1/load") && get) {
		ctl_op_load_get(w, c, req);
	} else if (path_is(req, "/v1/load") && method_is(req, "DELETE")) {
		ctl_op_load_stop(w, c, req);
	} else if (path_is(req, "/v1/refresh") && get) {
		ctl_op_refresh_log(w, c, req);
	} else if (path_is(req, "/v1/refresh") && method_is(req, "POST")) {
		ctl_op_refresh(w, c, req);
	} else if (path_is(req, "/v1/stats") && get) {
		op_stats(w, c);
	} else if (path_is(req, "/v1/writeback") && get) {
		op_writeback(w, c);
	} else if (path_is(req, "/v1/local") && get) {
		op_local(w, c);
	} else if (path_is(req, "/v1/cluster") && get) {
		op_cluster(w, c);
	} else if (path_is(req, "/v1/mounts") && get) {
		op_mounts_get(w, c);
	} else if (path_is(req, "/v1/mounts") && method_is(req, "POST")) {
		op_mount(w, c, req);
	} else if (req->path_len > 11 && memcmp(req->path, "/v1/mounts/", 11) == 0 &&
	    method_is(req, "DELETE")) {
		op_unmount(w, c, req->path + 11, req->path_len - 11);
	} else {
		ctl_reply_error(c, 404, "NotFound", "no such control endpoint");
	}
}
