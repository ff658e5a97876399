/*
 * ufs.c: the under-store layer (ufs.h): the scheme -> backend table, and the
 * wrappers every caller above the backends goes through.  Each wrapper
 * checks the instance and its arguments, clamps lengths, counts the request
 * (and its errors and bytes) and clears the thread's failure reason before
 * calling the backend; so a backend only does its own work, and a counter
 * or a check is never forgotten by one caller.
 *
 * Writes go through the same layer: ufs_put_begin checks the options
 * (conditions, the headers that go with the object: only Content-Type,
 * Content-Encoding, Content-Language, Content-Disposition, Cache-Control,
 * Expires and x-amz-meta-*, lowercase, printable ASCII, within S3's
 * limits) and a struct ufs_put wraps the backend's session: it keeps the
 * first failure of a put_write, so that a commit after it aborts the
 * backend session and returns that failure (a half-written body is never
 * committed), and a body longer or shorter than the size announced is
 * refused (-EINVAL).  A backend without write slots answers -EROFS.
 *
 * Threads: any.  The table is read-only; an open struct ufs is read-only
 * after ufs_open (backends are thread-safe); counters are relaxed atomics;
 * the failure reason is per thread.  A struct ufs_put is used by one thread
 * at a time (ufs.h).
 */
#include "ufs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/dbuf.h"
#include "../common/log.h"
#include "ufs_impl.h"

/* Largest read a backend is asked for (the largest page). */
#define UFS_READ_MAX (64u << 20)
#define UFS_LIST_MAX 1000
/* The headers a write may carry: how many, and S3's 2 KB limit on user
 * metadata (x-amz-meta-* names and values together); other values are
 * kept to 1 KiB each. */
#define UFS_PUT_HEADERS_MAX UFS_HDRS_COUNT_MAX
#define UFS_META_BYTES_MAX 2048
#define UFS_HEADER_VALUE_MAX 1024

/* struct ufs and struct ufs_put are in ufs_impl.h (ufs_wb.c uses them). */

static const struct ufs_ops *const backends[] = {&ufs_file_ops, &ufs_s3_ops};

static struct ufs_counters g_ufs;
static _Thread_local char t_reason[UFS_REASON_MAX];

#define ADD(field, n) __atomic_fetch_add(&g_ufs.field, (n), __ATOMIC_RELAXED)

const struct ufs_ops *
ufs_lookup(const char *uri, const char **root)
{
	if (!uri)
		return NULL;
	const char *sep = strstr(uri, "://");
	if (!sep)
		return NULL;
	size_t slen = (size_t)(sep - uri);
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		const char *name = backends[i]->scheme;
		if (strlen(name) == slen && strncasecmp(uri, name, slen) == 0) {
			if (root)
				*root = sep + 3;
			return backends[i];
		}
	}
	return NULL;
}

const struct ufs_ops *
ufs_backend(int i)
{
	if (i < 0 || (size_t)i >= sizeof(backends) / sizeof(backends[0]))
		return NULL;
	return backends[i];
}

const char *
ufs_last_error(void)
{
	return t_reason;
}

void
ufs_clear_error(void)
{
	t_reason[0] = 0;
}

void
ufs_set_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t_reason, sizeof(t_reason), fmt, ap);
	va_end(ap);
}

int
ufs_open_ops(const struct ufs_ops *ops, const char *label, const char *root,
    const struct ufs_opt *opts, int nopts, struct ufs **out)
{
	*out = NULL;
	struct ufs *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->ops = ops;
	u->refs = 1;
	u->label = strdup(label ? label : ops->scheme);
	if (!u->label) {
		free(u);
		return -ENOMEM;
	}
	char *err = NULL;
	int r = ops->open(root ? root : "", opts, nopts, &u->state, &err);
	if (r < 0) {
		u->state = NULL;
		u->open_err = err ? err : strdup(strerror(-r));
		if (!u->open_err) {
			ufs_close(&u);
			return -ENOMEM;
		}
	} else {
		free(err);
		r = 0;
	}
	*out = u;
	return r;
}

int
ufs_open(const char *uri, const struct ufs_opt *opts, int nopts,
    struct ufs **out)
{
	const char *root;
	const struct ufs_ops *ops = ufs_lookup(uri, &root);
	*out = NULL;
	if (!ops)
		return -EINVAL;
	return ufs_open_ops(ops, uri, root, opts, nopts, out);
}

void
ufs_close(struct ufs **up)
{
	struct ufs *u = *up;
	*up = NULL;
	if (!u)
		return;
	if (u->layer)
		u->layer->detach(u);
	ufs_unref(u);
}

struct ufs *
ufs_ref(struct ufs *u)
{
	__atomic_add_fetch(&u->refs, 1, __ATOMIC_ACQ_REL);
	return u;
}

void
ufs_unref(struct ufs *u)
{
	if (!u || __atomic_sub_fetch(&u->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (u->state)
		u->ops->close(u->state);
	free(u->open_err);
	free(u->label);
	free(u);
}

const char *
ufs_open_error(const struct ufs *u)
{
	if (!u)
		return "no under-store";
	return u->state ? NULL : u->open_err;
}

int
ufs_has_read_stat(const struct ufs *u)
{
	return u && u->state && u->ops->read_stat;
}

/* Common entry checks: a usable instance and a path.  Clears the reason. */
static int
enter(struct ufs *u, const char *path)
{
	t_reason[0] = 0;
	if (!u || !path)
		return -EINVAL;
	if (!u->state) {
		ufs_set_error("%s cannot be opened: %s", u->label,
		    u->open_err ? u->open_err : "unknown error");
		return -EIO;
	}
	return 0;
}

/* Counts a failure; "no such object", "changed", "no metadata here" and
 * "exists already" (a write's condition) are answers, not failures. */
static void
count_error(enum ufs_op op, int r)
{
	if (r < 0 && r != -ENOENT && r != -ESTALE && r != -ERANGE &&
	    r != -EEXIST)
		ADD(errors[op], 1);
}

int
ufs_stat(struct ufs *u, const char *path, struct ufs_stat *st)
{
	memset(st, 0, sizeof(*st));
	ufs_last_hdrs_reset();
	int r = enter(u, path);
	if (r)
		return r;
	return u->layer ? u->layer->stat(u, path, st) : ufs_raw_stat(u, path, st);
}

int
ufs_raw_stat(struct ufs *u, const char *path, struct ufs_stat *st)
{
	int r;
	ADD(requests[UFSOP_STAT], 1);
	ufs_last_hdrs_reset();
	r = u->ops->stat(u->state, path, st);
	count_error(UFSOP_STAT, r);
	if (r < 0)
		ufs_last_hdrs_reset();
	return r < 0 ? r : 0;
}

int
ufs_list(struct ufs *u, const char *prefix, const char *delimiter,
    const char *start_after, int max_keys, ufs_list_fn fn, void *arg,
    int *truncated)
{
	*truncated = 0;
	int r = enter(u, prefix);
	if (r)
		return r;
	if (!fn)
		return -EINVAL;
	if (max_keys < 1)
		max_keys = 1;
	if (max_keys > UFS_LIST_MAX)
		max_keys = UFS_LIST_MAX;
	if (u->layer)
		return u->layer->list(u, prefix, delimiter ? delimiter : "",
		    start_after ? start_after : "", max_keys, fn, arg, truncated);
	return ufs_raw_list(u, prefix, delimiter, start_after, max_keys, fn,
	    arg, truncated);
}

int
ufs_raw_list(struct ufs *u, const char *prefix, const char *delimiter,
    const char *start_after, int max_keys, ufs_list_fn fn, void *arg,
    int *truncated)
{
	int r;
	*truncated = 0;
	ADD(requests[UFSOP_LIST], 1);
	r = u->ops->list(u->state, prefix, delimiter ? delimiter : "",
	    start_after ? start_after : "",
	    max_keys, fn, arg, truncated);
	count_error(UFSOP_LIST, r);
	return r < 0 ? r : 0;
}

/* Checks and clamps a read's arguments; 0 or -EINVAL. */
static int
read_args(int64_t off, void *buf, size_t *len)
{
	if (off < 0 || !buf)
		return -EINVAL;
	if (*len > UFS_READ_MAX)
		*len = UFS_READ_MAX;
	return 0;
}

ssize_t
ufs_read(struct ufs *u, const char *path, const char *etag, int64_t off,
    void *buf, size_t len)
{
	ufs_last_hdrs_reset(); /* a read of byte 0 may answer them */
	int r = enter(u, path);
	if (!r)
		r = read_args(off, buf, &len);
	if (r)
		return r;
	if (len == 0)
		return 0;
	if (u->layer)
		return u->layer->read(u, path, etag ? etag : "", off, buf, len);
	return ufs_raw_read(u, path, etag, off, buf, len);
}

ssize_t
ufs_raw_read(struct ufs *u, const char *path, const char *etag, int64_t off,
    void *buf, size_t len)
{
	ADD(requests[UFSOP_READ], 1);
	ssize_t n = u->ops->read(u->state, path, etag ? etag : "", off, buf, len);
	if (n > (ssize_t)len) {
		ufs_set_error("%s: read of %s returned more than asked", u->label, path);
		n = -EIO;
	}
	if (n >= 0)
		ADD(read_bytes, n);
	count_error(UFSOP_READ, (int)n);
	return n;
}

ssize_t
ufs_read_stat(struct ufs *u, const char *path, int64_t off, void *buf,
    size_t len, int dirs, struct ufs_stat *st)
{
	memset(st, 0, sizeof(*st));
	ufs_last_hdrs_reset();
	int r = enter(u, path);
	if (!r)
		r = read_args(off, buf, &len);
	if (r)
		return r;
	if (!u->ops->read_stat)
		return -ENOTSUP;
	if (u->layer)
		return u->layer->read_stat(u, path, off, buf, len, dirs, st);
	return ufs_raw_read_stat(u, path, off, buf, len, dirs, st);
}

ssize_t
ufs_raw_read_stat(struct ufs *u, const char *path, int64_t off, void *buf,
    size_t len, int dirs, struct ufs_stat *st)
{
	ADD(requests[UFSOP_READ], 1);
	ufs_last_hdrs_reset();
	ssize_t n = u->ops->read_stat(u->state, path, off, buf, len, dirs, st);
	if (n > (ssize_t)len) {
		ufs_set_error("%s: read of %s returned more than asked", u->label, path);
		n = -EIO;
	}
	if (n >= 0)
		ADD(read_bytes, n);
	else
		ufs_last_hdrs_reset();
	count_error(UFSOP_READ, (int)n);
	return n;
}

/* ---- writes ---- */

int
ufs_writable(const struct ufs *u)
{
	return u && u->state && u->ops->put_begin && u->ops->put_write &&
	    u->ops->put_commit && u->ops->put_abort;
}

static int
is_lower_token(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    strchr("!#$%&'*+-.^_`|~", c)))
			return 0;
	}
	return n > 0;
}

/* Printable ASCII (and tab): what goes into an HTTP header unchanged. */
static int
header_value_ok(const char *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if ((c < 0x20 && c != '\t') || c >= 0x7f)
			return 0;
	}
	return 1;
}

static const char *const std_headers[] = {"content-type",
    "content-encoding", "content-language", "content-disposition",
    "cache-control", "expires"};

/* --- headers stored with an object (ufs.h, struct ufs_hdrs) --- */

/* The answer being made on this thread (ufs_answer_hdrs), read back with
 * ufs_last_hdrs. */
static _Thread_local struct ufs_hdrs t_hdrs;

void
ufs_hdrs_init(struct ufs_hdrs *h)
{
	h->known = 1;
	h->n = 0;
	h->len = 0;
	h->buf[0] = 0;
}

static int
kept_name(const char *k, size_t kl)
{
	if (kl > 11 && !strncmp(k, "x-amz-meta-", 11))
		return 1;
	for (size_t j = 0; j < sizeof(std_headers) / sizeof(std_headers[0]); j++)
		if (strlen(std_headers[j]) == kl && !memcmp(k, std_headers[j], kl))
			return 1;
	return 0;
}

int
ufs_hdrs_add(struct ufs_hdrs *h, const char *name, size_t nl,
    const char *value, size_t vl)
{
	char lc[256];
	if (nl == 0 || nl >= sizeof(lc) || h->n >= UFS_PUT_HEADERS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < nl; i++)
		lc[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ?
		    name[i] - 'A' + 'a' : name[i]);
	lc[nl] = 0;
	if (!kept_name(lc, nl) || !is_lower_token(lc, nl) ||
	    !header_value_ok(value, vl) || memchr(value, 0, vl) ||
	    vl > (nl > 11 && !strncmp(lc, "x-amz-meta-", 11) ?
	    UFS_META_BYTES_MAX : UFS_HEADER_VALUE_MAX) ||
	    ufs_hdrs_get(h, lc))
		return -EINVAL;
	if (nl + vl + 2 > sizeof(h->buf) - h->len - 1)
		return -E2BIG;
	memcpy(h->buf + h->len, lc, nl + 1);
	h->len += nl + 1;
	memcpy(h->buf + h->len, value, vl);
	h->buf[h->len + vl] = 0;
	h->len += vl + 1;
	h->n++;
	return 0;
}

int
ufs_hdrs_next(const struct ufs_hdrs *h, size_t *off, const char **name,
    const char **value)
{
	if (*off >= h->len)
		return 0;
	*name = h->buf + *off;
	*value = *name + strlen(*name) + 1;
	*off = (size_t)(*value - h->buf) + strlen(*value) + 1;
	return 1;
}

const char *
ufs_hdrs_get(const struct ufs_hdrs *h, const char *name)
{
	size_t off = 0;
	const char *k, *v;
	while (ufs_hdrs_next(h, &off, &k, &v))
		if (!strcmp(k, name))
			return v;
	return NULL;
}

int
ufs_hdrs_opts(const struct ufs_hdrs *h, struct ufs_opt *out, int max)
{
	size_t off = 0;
	int n = 0;
	const char *k, *v;
	while (n < max && ufs_hdrs_next(h, &off, &k, &v))
		out[n++] = (struct ufs_opt){k, v};
	return n;
}

const struct ufs_hdrs *
ufs_last_hdrs(void)
{
	return &t_hdrs;
}

struct ufs_hdrs *
ufs_answer_hdrs(void)
{
	return &t_hdrs;
}

void
ufs_last_hdrs_reset(void)
{
	t_hdrs.known = 0;
	t_hdrs.n = 0;
	t_hdrs.len = 0;
}

/* Checks a write's options; 0, or -EINVAL with the reason set. */
static int
put_opts_check(const struct ufs *u, const char *path,
    const struct ufs_put_opts *o)
{
	if (o->size < -1) {
		ufs_set_error("%s: %s: negative size", u->label, path);
		return -EINVAL;
	}
	if (o->if_match && o->if_none_match) {
		ufs_set_error("%s: %s: if_match and if_none_match together",
		    u->label, path);
		return -EINVAL;
	}
	if (o->if_match) {
		size_t n = strlen(o->if_match);
		if (n == 0 || n >= UFS_ETAG_MAX || strchr(o->if_match, '"') ||
		    !header_value_ok(o->if_match, n)) {
			ufs_set_error("%s: %s: bad ETag to match", u->label, path);
			return -EINVAL;
		}
	}
	if (o->nheaders < 0 || o->nheaders > UFS_PUT_HEADERS_MAX ||
	    (o->nheaders > 0 && !o->headers)) {
		ufs_set_error("%s: %s: too many headers (at most %d)", u->label,
		    path, UFS_PUT_HEADERS_MAX);
		return -EINVAL;
	}
	size_t meta = 0;
	for (int i = 0; i < o->nheaders; i++) {
		const char *k = o->headers[i].key, *v = o->headers[i].value;
		if (!k || !v) {
			ufs_set_error("%s: %s: a header without a name or value",
			    u->label, path);
			return -EINVAL;
		}
		size_t kl = strlen(k), vl = strlen(v);
		int known = !strncmp(k, "x-amz-meta-", 11) && kl > 11;
		for (size_t j = 0; !known && j < sizeof(std_headers) /
		    sizeof(std_headers[0]); j++)
			known = !strcmp(k, std_headers[j]);
		if (!known || !is_lower_token(k, kl)) {
			ufs_set_error("%s: %s: header '%.64s' cannot be stored "
			    "with an object (lowercase content-type, "
			    "content-encoding, content-language, "
			    "content-disposition, cache-control, expires or "
			    "x-amz-meta-*)", u->label, path, k);
			return -EINVAL;
		}
		if (!header_value_ok(v, vl) ||
		    (!strncmp(k, "x-amz-meta-", 11) ? (meta += kl - 11 + vl) >
		    UFS_META_BYTES_MAX : vl > UFS_HEADER_VALUE_MAX)) {
			ufs_set_error("%s: %s: header '%.64s': value not "
			    "printable ASCII or too long (x-amz-meta-* take "
			    "%d bytes in all)", u->label, path, k,
			    UFS_META_BYTES_MAX);
			return -EINVAL;
		}
		for (int j = 0; j < i; j++) {
			if (!strcmp(o->headers[j].key, k)) {
				ufs_set_error("%s: %s: header '%.64s' twice",
				    u->label, path, k);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Entry checks of a write (op) to path: the instance, the backend's slot,
 * a path that is not the root, the options.  Clears the reason. */
static int
enter_write(struct ufs *u, enum ufs_op op, const char *path,
    const struct ufs_put_opts *o)
{
	int r = enter(u, path);
	if (r)
		return r;
	int can = op == UFSOP_WRITE ? ufs_writable(u) :
	    op == UFSOP_REMOVE ? u->ops->remove != NULL : u->ops->copy != NULL;
	if (!can) {
		ufs_set_error("%s is read-only (its backend cannot write)",
		    u->label);
		return -EROFS;
	}
	if (!path[0]) {
		ufs_set_error("%s: the root is not an object", u->label);
		return -EINVAL;
	}
	return o ? put_opts_check(u, path, o) : 0;
}

static int put_begin(struct ufs *u, const char *path,
    const struct ufs_put_opts *o, int raw, struct ufs_put **pp);

int
ufs_put_begin(struct ufs *u, const char *path, const struct ufs_put_opts *o,
    struct ufs_put **pp)
{
	static const struct ufs_put_opts none = {.size = -1};
	*pp = NULL;
	if (!o)
		o = &none;
	int r = enter_write(u, UFSOP_WRITE, path, o);
	if (r)
		return r;
	return put_begin(u, path, o, !u->layer, pp);
}

int
ufs_raw_put_begin(struct ufs *u, const char *path,
    const struct ufs_put_opts *o, struct ufs_put **pp)
{
	*pp = NULL;
	t_reason[0] = 0;
	return put_begin(u, path, o, 1, pp);
}

/* A session on the backend (raw), or on the write-back staging area. */
static int
put_begin(struct ufs *u, const char *path, const struct ufs_put_opts *o,
    int raw, struct ufs_put **pp)
{
	struct ufs_put *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	int r;
	if (raw) {
		ADD(requests[UFSOP_WRITE], 1);
		r = u->ops->put_begin(u->state, path, o, &p->b);
		if (r < 0)
			count_error(UFSOP_WRITE, r);
	} else {
		r = u->layer->put_begin(u, path, o, &p->wp);
	}
	if (r < 0) {
		free(p);
		return r;
	}
	p->u = u;
	p->size = o->size;
	*pp = p;
	return 0;
}

/* Remembers a session's first failure (and its reason), counted once. */
static int
put_fail(struct ufs_put *p, int r)
{
	if (!p->err) {
		p->err = r;
		snprintf(p->reason, sizeof(p->reason), "%s", t_reason);
		count_error(UFSOP_WRITE, r);
	}
	return r;
}

int
ufs_put_write(struct ufs_put *p, const void *buf, size_t len)
{
	t_reason[0] = 0;
	if (!p || (!buf && len))
		return -EINVAL;
	if (p->err) {
		snprintf(t_reason, sizeof(t_reason), "%s", p->reason);
		return p->err;
	}
	if (len == 0)
		return 0;
	if (len > (uint64_t)(INT64_MAX - p->written) ||
	    (p->size >= 0 && p->written + (int64_t)len > p->size)) {
		ufs_set_error("%s: more bytes written than the %" PRId64
		    " announced", p->u->label, p->size);
		return put_fail(p, -EINVAL);
	}
	int r = p->wp ? p->u->layer->put_write(p->wp, buf, len) :
	    p->u->ops->put_write(p->b, buf, len);
	if (r < 0)
		return put_fail(p, r);
	p->written += (int64_t)len;
	return 0;
}

int
ufs_put_commit(struct ufs_put **pp, struct ufs_stat *st)
{
	memset(st, 0, sizeof(*st));
	t_reason[0] = 0;
	ufs_last_hdrs_reset();
	struct ufs_put *p = pp ? *pp : NULL;
	if (!p)
		return -EINVAL;
	*pp = NULL;
	const struct ufs_ops *ops = p->u->ops;
	int r;
	if (!p->err && p->size >= 0 && p->written != p->size) {
		ufs_set_error("%s: %" PRId64 " bytes written of the %" PRId64
		    " announced", p->u->label, p->written, p->size);
		put_fail(p, -EINVAL);
	}
	if (p->err) {
		if (p->wp)
			p->u->layer->put_abort(p->wp);
		else
			ops->put_abort(p->b);
		snprintf(t_reason, sizeof(t_reason), "%s", p->reason);
		r = p->err;
	} else if (p->wp) {
		/* Staged for write-back: the store's bytes are counted when
		 * the persister writes them. */
		r = p->u->layer->put_commit(p->wp, st);
		if (r < 0)
			memset(st, 0, sizeof(*st));
	} else {
		r = ops->put_commit(p->b, st);
		if (r < 0) {
			count_error(UFSOP_WRITE, r);
			memset(st, 0, sizeof(*st));
		} else {
			ADD(write_bytes, p->written);
			r = 0;
		}
	}
	if (r < 0)
		ufs_last_hdrs_reset();
	free(p);
	return r;
}

void
ufs_put_abort(struct ufs_put **pp)
{
	struct ufs_put *p = pp ? *pp : NULL;
	if (!p)
		return;
	*pp = NULL;
	/* The reason the write failed is what the caller reports, not how
	 * its cleanup went. */
	char why[sizeof(t_reason)];
	memcpy(why, t_reason, sizeof(why));
	if (p->wp)
		p->u->layer->put_abort(p->wp);
	else
		p->u->ops->put_abort(p->b);
	memcpy(t_reason, why, sizeof(why));
	free(p);
}

int
ufs_remove(struct ufs *u, const char *path)
{
	int r = enter_write(u, UFSOP_REMOVE, path, NULL);
	if (r)
		return r;
	return u->layer ? u->layer->remove(u, path) : ufs_raw_remove(u, path);
}

int
ufs_raw_remove(struct ufs *u, const char *path)
{
	int r;
	ADD(requests[UFSOP_REMOVE], 1);
	r = u->ops->remove(u->state, path);
	count_error(UFSOP_REMOVE, r);
	return r < 0 ? r : 0;
}

int
ufs_copy(struct ufs *u, const char *src, const char *dst,
    const struct ufs_put_opts *o, struct ufs_stat *st)
{
	static const struct ufs_put_opts none = {.size = -1};
	memset(st, 0, sizeof(*st));
	ufs_last_hdrs_reset();
	if (!o)
		o = &none;
	int r = enter_write(u, UFSOP_COPY, dst, o);
	if (r)
		return r;
	if (!src || !src[0]) {
		ufs_set_error("%s: no object to copy from", u->label);
		return -EINVAL;
	}
	if (u->layer) {
		r = u->layer->copy(u, src, dst, o, st);
		if (r < 0)
			ufs_last_hdrs_reset();
		return r;
	}
	ADD(requests[UFSOP_COPY], 1);
	ufs_last_hdrs_reset();
	r = u->ops->copy(u->state, src, dst, o, st);
	count_error(UFSOP_COPY, r);
	if (r < 0) {
		memset(st, 0, sizeof(*st));
		ufs_last_hdrs_reset();
	}
	return r < 0 ? r : 0;
}

void
ufs_get_counters(struct ufs_counters *out)
{
	for (int i = 0; i < UFSOP__N; i++) {
		out->requests[i] = __atomic_load_n(&g_ufs.requests[i], __ATOMIC_RELAXED);
		out->errors[i] = __atomic_load_n(&g_ufs.errors[i], __ATOMIC_RELAXED);
	}
	out->read_bytes = __atomic_load_n(&g_ufs.read_bytes, __ATOMIC_RELAXED);
	out->write_bytes = __atomic_load_n(&g_ufs.write_bytes, __ATOMIC_RELAXED);
}

int
ufs_metrics_render(struct dbuf *b)
{
	static const char *const names[UFSOP__N] = {"stat", "list", "read",
	    "write", "remove", "copy"};
	struct ufs_counters c;
	ufs_get_counters(&c);
	dbuf_printf(b, "# HELP ferry_ufs_read_bytes_total Bytes read from under-stores.\n"
	    "# TYPE ferry_ufs_read_bytes_total counter\nferry_ufs_read_bytes_total %" PRId64 "\n",
	    c.read_bytes);
	dbuf_printf(b, "# HELP ferry_ufs_write_bytes_total Bytes of objects written to under-stores (committed writes).\n"
	    "# TYPE ferry_ufs_write_bytes_total counter\nferry_ufs_write_bytes_total %" PRId64 "\n",
	    c.write_bytes);
	dbuf_printf(b, "# HELP ferry_ufs_requests_total Requests made to under-stores, by operation (a write is one, whatever its parts).\n"
	    "# TYPE ferry_ufs_requests_total counter\n");
	for (int i = 0; i < UFSOP__N; i++)
		dbuf_printf(b, "ferry_ufs_requests_total{op=\"%s\"} %" PRId64 "\n", names[i], c.requests[i]);
	dbuf_printf(b, "# HELP ferry_ufs_errors_total Failed under-store requests, by operation.\n"
	    "# TYPE ferry_ufs_errors_total counter\n");
	for (int i = 0; i < UFSOP__N; i++)
		dbuf_printf(b, "ferry_ufs_errors_total{op=\"%s\"} %" PRId64 "\n", names[i], c.errors[i]);
	struct ufs_file_list_stats fl;
	ufs_file_list_stats(&fl);
	dbuf_printf(b, "# HELP ferry_ufs_file_list_scans_total Reads of a whole file:// directory by listings (one per sorted window).\n"
	    "# TYPE ferry_ufs_file_list_scans_total counter\nferry_ufs_file_list_scans_total %" PRId64 "\n"
	    "# HELP ferry_ufs_file_list_reused_total file:// listing pages that started from a cached sorted window.\n"
	    "# TYPE ferry_ufs_file_list_reused_total counter\nferry_ufs_file_list_reused_total %" PRId64 "\n"
	    "# HELP ferry_ufs_file_list_bytes Memory of file:// listings' sorted windows, cached and in use.\n"
	    "# TYPE ferry_ufs_file_list_bytes gauge\nferry_ufs_file_list_bytes %" PRId64 "\n",
	    fl.scans, fl.reused, fl.bytes);
	return dbuf_error(b);
}
