/*
 * ufs.c: the under-store layer (ufs.h): the scheme -> backend table, and the
 * wrappers every caller above the backends goes through.  Each wrapper
 * checks the instance and its arguments, clamps lengths, counts the request
 * (and its errors and bytes) and clears the thread's failure reason before
 * calling the backend; so a backend only does its own work, and a counter
 * or a check is never forgotten by one caller.
 *
 * Threads: any.  The table is read-only; an open struct ufs is read-only
 * after ufs_open (backends are thread-safe); counters are relaxed atomics;
 * the failure reason is per thread.
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

/* Largest read a backend is asked for (the largest page). */
#define UFS_READ_MAX (64u << 20)
#define UFS_LIST_MAX 1000
#define UFS_REASON_MAX 512

struct ufs {
	const struct ufs_ops *ops;
	void *state;    /* NULL: the backend failed to open */
	char *open_err; /* why it failed */
	char *label;    /* the URI, for log lines */
};

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

/* Counts a failure; "no such object", "changed" and "no metadata here"
 * are answers, not failures. */
static void
count_error(enum ufs_op op, int r)
{
	if (r < 0 && r != -ENOENT && r != -ESTALE && r != -ERANGE)
		ADD(errors[op], 1);
}

int
ufs_stat(struct ufs *u, const char *path, struct ufs_stat *st)
{
	memset(st, 0, sizeof(*st));
	int r = enter(u, path);
	if (r)
		return r;
	ADD(requests[UFSOP_STAT], 1);
	r = u->ops->stat(u->state, path, st);
	count_error(UFSOP_STAT, r);
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
	int r = enter(u, path);
	if (!r)
		r = read_args(off, buf, &len);
	if (r)
		return r;
	if (len == 0)
		return 0;
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
	int r = enter(u, path);
	if (!r)
		r = read_args(off, buf, &len);
	if (r)
		return r;
	if (!u->ops->read_stat)
		return -ENOTSUP;
	ADD(requests[UFSOP_READ], 1);
	ssize_t n = u->ops->read_stat(u->state, path, off, buf, len, dirs, st);
	if (n > (ssize_t)len) {
		ufs_set_error("%s: read of %s returned more than asked", u->label, path);
		n = -EIO;
	}
	if (n >= 0)
		ADD(read_bytes, n);
	count_error(UFSOP_READ, (int)n);
	return n;
}

void
ufs_get_counters(struct ufs_counters *out)
{
	for (int i = 0; i < UFSOP__N; i++) {
		out->requests[i] = __atomic_load_n(&g_ufs.requests[i], __ATOMIC_RELAXED);
		out->errors[i] = __atomic_load_n(&g_ufs.errors[i], __ATOMIC_RELAXED);
	}
	out->read_bytes = __atomic_load_n(&g_ufs.read_bytes, __ATOMIC_RELAXED);
}

int
ufs_metrics_render(struct dbuf *b)
{
	static const char *const names[UFSOP__N] = {"stat", "list", "read"};
	struct ufs_counters c;
	ufs_get_counters(&c);
	dbuf_printf(b, "# HELP ferry_ufs_read_bytes_total Bytes read from under-stores.\n"
	    "# TYPE ferry_ufs_read_bytes_total counter\nferry_ufs_read_bytes_total %" PRId64 "\n",
	    c.read_bytes);
	dbuf_printf(b, "# HELP ferry_ufs_requests_total Requests made to under-stores, by operation.\n"
	    "# TYPE ferry_ufs_requests_total counter\n");
	for (int i = 0; i < UFSOP__N; i++)
		dbuf_printf(b, "ferry_ufs_requests_total{op=\"%s\"} %" PRId64 "\n", names[i], c.requests[i]);
	dbuf_printf(b, "# HELP ferry_ufs_errors_total Failed under-store requests, by operation.\n"
	    "# TYPE ferry_ufs_errors_total counter\n");
	for (int i = 0; i < UFSOP__N; i++)
		dbuf_printf(b, "ferry_ufs_errors_total{op=\"%s\"} %" PRId64 "\n", names[i], c.errors[i]);
	return dbuf_error(b);
}
