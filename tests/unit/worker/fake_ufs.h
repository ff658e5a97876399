/*
 * fake_ufs.h: an in-memory under-store for the worker's unit tests (meta,
 * reader, router, objget, mounts).  Objects are (path, size, generation);
 * their bytes are a function of (path, offset, generation), so a test can
 * check every byte it reads and tell two versions apart.  Every call is
 * counted, can be slowed down, and can be made to fail; read_stat can be
 * turned off (a backend without it, like file://).
 *
 * One store per test process (g_fake); the ops reach it through the
 * backend state pointer.  Thread-safe (the worker's threads call it).
 */
#ifndef FERRY_FAKE_UFS_H
#define FERRY_FAKE_UFS_H

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "ufs/ufs.h"
#include "worker/mounts.h"

#define FAKE_MAX_OBJS 64
#define FAKE_MAX_PAGES 256

struct fake_obj {
	char path[256];
	int64_t size;
	int gen;
	unsigned char *data; /* written through put_*: these bytes; else
	                      * fake_byte(path, off, gen) */
	struct ufs_hdrs *hdrs; /* the headers a put kept (NULL: none) */
};

struct fake_ufs {
	pthread_mutex_t mu;
	struct fake_obj objs[FAKE_MAX_OBJS]; /* sorted by path */
	int nobjs;
	int64_t page;          /* for the per-page read counts */
	int stats, lists, reads, read_stats, puts, commits, aborts, removes;
	int page_reads[FAKE_MAX_PAGES]; /* reads and read_stats, by page */
	int fail;              /* -errno every call fails with (0: none) */
	int delay_us;
	int no_read_stat;      /* read_stat answers -ENOTSUP-like: use stat */
	int fail_commit;       /* -errno put_commit fails with (0: none) */
};

static struct fake_ufs g_fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static inline unsigned char
fake_byte(const char *path, int64_t off, int gen)
{
	uint64_t h = hash64(path, strlen(path), (uint64_t)gen);
	return (unsigned char)(((uint64_t)off * 2654435761u + h) >> 11);
}

static inline void
fake_reset(int64_t page)
{
	pthread_mutex_lock(&g_fake.mu);
	for (int i = 0; i < g_fake.nobjs; i++) {
		free(g_fake.objs[i].data);
		g_fake.objs[i].data = NULL;
		free(g_fake.objs[i].hdrs);
		g_fake.objs[i].hdrs = NULL;
	}
	g_fake.nobjs = 0;
	g_fake.puts = g_fake.commits = g_fake.aborts = g_fake.removes = 0;
	g_fake.fail_commit = 0;
	g_fake.page = page;
	g_fake.stats = g_fake.lists = g_fake.reads = g_fake.read_stats = 0;
	memset(g_fake.page_reads, 0, sizeof(g_fake.page_reads));
	g_fake.fail = 0;
	g_fake.delay_us = 0;
	g_fake.no_read_stat = 0;
	pthread_mutex_unlock(&g_fake.mu);
}

/* Adds or replaces (a new version of) an object. */
static inline void
fake_put(const char *path, int64_t size, int gen)
{
	pthread_mutex_lock(&g_fake.mu);
	int i = 0;
	while (i < g_fake.nobjs && strcmp(g_fake.objs[i].path, path) < 0)
		i++;
	if (i == g_fake.nobjs || strcmp(g_fake.objs[i].path, path) != 0) {
		if (g_fake.nobjs == FAKE_MAX_OBJS)
			abort();
		memmove(&g_fake.objs[i + 1], &g_fake.objs[i],
		    sizeof(g_fake.objs[0]) * (size_t)(g_fake.nobjs - i));
		g_fake.nobjs++;
		snprintf(g_fake.objs[i].path, sizeof(g_fake.objs[i].path), "%s", path);
		g_fake.objs[i].data = NULL; /* a new slot (its old bytes moved on) */
		g_fake.objs[i].hdrs = NULL;
	}
	g_fake.objs[i].size = size;
	g_fake.objs[i].gen = gen;
	free(g_fake.objs[i].data);
	g_fake.objs[i].data = NULL;
	free(g_fake.objs[i].hdrs);
	g_fake.objs[i].hdrs = NULL;
	pthread_mutex_unlock(&g_fake.mu);
}

static inline void
fake_del(const char *path)
{
	pthread_mutex_lock(&g_fake.mu);
	for (int i = 0; i < g_fake.nobjs; i++) {
		if (strcmp(g_fake.objs[i].path, path) == 0) {
			free(g_fake.objs[i].data);
			free(g_fake.objs[i].hdrs);
			memmove(&g_fake.objs[i], &g_fake.objs[i + 1],
			    sizeof(g_fake.objs[0]) * (size_t)(g_fake.nobjs - i - 1));
			g_fake.nobjs--;
			break;
		}
	}
	pthread_mutex_unlock(&g_fake.mu);
}

static inline int
fake_count(int *field)
{
	pthread_mutex_lock(&g_fake.mu);
	int v = *field;
	pthread_mutex_unlock(&g_fake.mu);
	return v;
}

static inline void
fake_etag_of(const struct fake_obj *o, char *out, size_t n)
{
	snprintf(out, n, "g%d-%lld", o->gen, (long long)o->size);
}

/* Under mu: o's headers are what the answer says (ufs_answer_hdrs). */
static inline void
fake_answer_hdrs(const struct fake_obj *o)
{
	struct ufs_hdrs *a = ufs_answer_hdrs();
	if (o->hdrs)
		memcpy(a, o->hdrs, sizeof(*a));
	else
		ufs_hdrs_init(a);
}

/* Under mu: the object, or NULL; *is_dir if path is a prefix of others. */
static inline const struct fake_obj *
fake_find(const char *path, int *is_dir)
{
	*is_dir = path[0] == 0;
	size_t pl = strlen(path);
	for (int i = 0; i < g_fake.nobjs; i++) {
		if (strcmp(g_fake.objs[i].path, path) == 0)
			return &g_fake.objs[i];
		if (pl && strncmp(g_fake.objs[i].path, path, pl) == 0 &&
		    g_fake.objs[i].path[pl] == '/')
			*is_dir = 1;
	}
	return NULL;
}

/* Counts a call and applies delay and failure; the failure or 0. */
static inline int
fake_enter(int *counter)
{
	int d = 0, f;
	pthread_mutex_lock(&g_fake.mu);
	(*counter)++;
	d = g_fake.delay_us;
	f = g_fake.fail;
	pthread_mutex_unlock(&g_fake.mu);
	if (d)
		usleep((useconds_t)d);
	return f;
}

static int
fake_open(const char *root, const struct ufs_opt *opts, int nopts, void **st,
    char **err)
{
	(void)root;
	(void)opts;
	(void)nopts;
	(void)err;
	*st = &g_fake;
	return 0;
}

static void
fake_close(void *st)
{
	(void)st;
}

static int
fake_stat(void *st, const char *path, struct ufs_stat *out)
{
	(void)st;
	int f = fake_enter(&g_fake.stats);
	if (f)
		return f;
	pthread_mutex_lock(&g_fake.mu);
	int is_dir;
	const struct fake_obj *o = fake_find(path, &is_dir);
	int r = 0;
	if (o) {
		out->size = o->size;
		out->mtime = 1000 + o->gen;
		fake_etag_of(o, out->etag, sizeof(out->etag));
		fake_answer_hdrs(o);
	} else if (is_dir) {
		out->is_dir = 1;
	} else {
		r = -ENOENT;
	}
	pthread_mutex_unlock(&g_fake.mu);
	return r;
}

static int
fake_list(void *st, const char *prefix, const char *delimiter,
    const char *start_after, int max_keys, ufs_list_fn fn, void *arg,
    int *truncated)
{
	(void)st;
	int f = fake_enter(&g_fake.lists);
	if (f)
		return f;
	/* Copy out under the lock; call back without it. */
	struct ufs_entry ents[FAKE_MAX_OBJS];
	char keys[FAKE_MAX_OBJS][256], etags[FAKE_MAX_OBJS][64];
	int n = 0;
	*truncated = 0;
	size_t pl = strlen(prefix);
	pthread_mutex_lock(&g_fake.mu);
	for (int i = 0; i < g_fake.nobjs; i++) {
		const struct fake_obj *o = &g_fake.objs[i];
		if (strncmp(o->path, prefix, pl) != 0)
			continue;
		const char *slash = delimiter[0] ? strstr(o->path + pl, delimiter) : NULL;
		char k[256];
		int is_dir = slash != NULL;
		if (is_dir)
			snprintf(k, sizeof(k), "%.*s", (int)(slash - o->path + strlen(delimiter)), o->path);
		else
			snprintf(k, sizeof(k), "%s", o->path);
		if (strcmp(k, start_after) <= 0 || (n && strcmp(keys[n - 1], k) == 0))
			continue;
		if (n == max_keys) {
			*truncated = 1;
			break;
		}
		snprintf(keys[n], sizeof(keys[n]), "%s", k);
		fake_etag_of(o, etags[n], sizeof(etags[n]));
		ents[n] = (struct ufs_entry){.key = keys[n], .is_dir = is_dir,
		    .size = is_dir ? 0 : o->size, .mtime = 1000 + o->gen,
		    .etag = is_dir ? "" : etags[n]};
		n++;
	}
	pthread_mutex_unlock(&g_fake.mu);
	for (int i = 0; i < n; i++)
		if (fn(arg, &ents[i]))
			break;
	return 0;
}

/* Under mu: fills buf from o; the count of bytes. */
static inline ssize_t
fake_fill(const struct fake_obj *o, int64_t off, void *buf, size_t len)
{
	if (off >= o->size)
		return 0;
	size_t n = off + (int64_t)len > o->size ? (size_t)(o->size - off) : len;
	for (size_t i = 0; i < n; i++)
		((unsigned char *)buf)[i] = o->data ? o->data[off + (int64_t)i] :
		    fake_byte(o->path, off + (int64_t)i, o->gen);
	if (g_fake.page && off / g_fake.page < FAKE_MAX_PAGES)
		g_fake.page_reads[off / g_fake.page]++;
	return (ssize_t)n;
}

static ssize_t
fake_read(void *st, const char *path, const char *etag, int64_t off, void *buf,
    size_t len)
{
	(void)st;
	int f = fake_enter(&g_fake.reads);
	if (f)
		return f;
	pthread_mutex_lock(&g_fake.mu);
	int is_dir;
	const struct fake_obj *o = fake_find(path, &is_dir);
	ssize_t r;
	char cur[64];
	if (!o) {
		r = -ENOENT;
	} else {
		fake_etag_of(o, cur, sizeof(cur));
		r = etag[0] && strcmp(etag, cur) != 0 ? -ESTALE : fake_fill(o, off, buf, len);
	}
	pthread_mutex_unlock(&g_fake.mu);
	return r;
}

static ssize_t
fake_read_stat(void *st, const char *path, int64_t off, void *buf, size_t len,
    int dirs, struct ufs_stat *out)
{
	(void)st;
	if (g_fake.no_read_stat)
		return -ERANGE;
	int f = fake_enter(&g_fake.read_stats);
	if (f)
		return f;
	pthread_mutex_lock(&g_fake.mu);
	int is_dir;
	const struct fake_obj *o = fake_find(path, &is_dir);
	ssize_t r;
	if (!o) {
		if (dirs && is_dir) {
			out->is_dir = 1;
			r = 0;
		} else {
			r = -ENOENT;
		}
	} else if (o->size == 0 || off >= o->size) {
		r = -ERANGE;
	} else {
		out->size = o->size;
		out->mtime = 1000 + o->gen;
		fake_etag_of(o, out->etag, sizeof(out->etag));
		fake_answer_hdrs(o);
		r = fake_fill(o, off, buf, len);
	}
	pthread_mutex_unlock(&g_fake.mu);
	return r;
}

/* Writes: the body gathers in memory; commit makes it the object (a new
 * generation), whole, at once. */
struct fake_put {
	char path[256];
	unsigned char *buf;
	size_t len, cap;
	int if_none_match;
	char if_match[64];
	struct ufs_hdrs *hdrs; /* the write's headers (NULL: none) */
};

static int
fake_put_begin(void *st, const char *path, const struct ufs_put_opts *o,
    void **put)
{
	(void)st;
	int f = fake_enter(&g_fake.puts);
	if (f)
		return f;
	struct fake_put *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->if_none_match = o->if_none_match;
	if (o->if_match)
		snprintf(p->if_match, sizeof(p->if_match), "%s", o->if_match);
	if (o->nheaders) {
		if (!(p->hdrs = malloc(sizeof(*p->hdrs)))) {
			free(p);
			return -ENOMEM;
		}
		ufs_hdrs_init(p->hdrs);
		for (int i = 0; i < o->nheaders; i++)
			ufs_hdrs_add(p->hdrs, o->headers[i].key,
			    strlen(o->headers[i].key), o->headers[i].value,
			    strlen(o->headers[i].value));
	}
	*put = p;
	return 0;
}

static int
fake_put_write(void *put, const void *buf, size_t len)
{
	struct fake_put *p = put;
	if (p->len + len > p->cap) {
		size_t nc = (p->len + len) * 2;
		unsigned char *nb = realloc(p->buf, nc);
		if (!nb)
			return -ENOMEM;
		p->buf = nb;
		p->cap = nc;
	}
	memcpy(p->buf + p->len, buf, len);
	p->len += len;
	return 0;
}

static void
fake_put_abort(void *put)
{
	struct fake_put *p = put;
	pthread_mutex_lock(&g_fake.mu);
	g_fake.aborts++;
	pthread_mutex_unlock(&g_fake.mu);
	free(p->buf);
	free(p->hdrs);
	free(p);
}

static int
fake_put_commit(void *put, struct ufs_stat *out)
{
	struct fake_put *p = put;
	pthread_mutex_lock(&g_fake.mu);
	int f = g_fake.fail_commit;
	int is_dir;
	const struct fake_obj *cur = fake_find(p->path, &is_dir);
	char etag[64] = "";
	if (cur)
		fake_etag_of(cur, etag, sizeof(etag));
	int gen = cur ? cur->gen + 1 : 1;
	if (!f && p->if_none_match && cur)
		f = -EEXIST;
	if (!f && p->if_match[0] && (!cur || strcmp(etag, p->if_match) != 0))
		f = -ESTALE;
	if (!f)
		g_fake.commits++;
	pthread_mutex_unlock(&g_fake.mu);
	if (f) {
		fake_put_abort(put);
		return f;
	}
	fake_put(p->path, (int64_t)p->len, gen);
	pthread_mutex_lock(&g_fake.mu);
	struct fake_obj *o = (struct fake_obj *)fake_find(p->path, &is_dir);
	o->data = p->buf;
	p->buf = NULL;
	o->hdrs = p->hdrs;
	p->hdrs = NULL;
	memset(out, 0, sizeof(*out));
	out->size = o->size;
	out->mtime = 1000 + o->gen;
	fake_etag_of(o, out->etag, sizeof(out->etag));
	fake_answer_hdrs(o);
	pthread_mutex_unlock(&g_fake.mu);
	free(p);
	return 0;
}

static int
fake_remove(void *st, const char *path)
{
	(void)st;
	int f = fake_enter(&g_fake.removes);
	if (f)
		return f;
	fake_del(path);
	return 0;
}

static const struct ufs_ops fake_ufs_ops = {
	.scheme = "fake",
	.open = fake_open,
	.close = fake_close,
	.stat = fake_stat,
	.list = fake_list,
	.read = fake_read,
	.read_stat = fake_read_stat,
	.put_begin = fake_put_begin,
	.put_write = fake_put_write,
	.put_commit = fake_put_commit,
	.put_abort = fake_put_abort,
	.remove = fake_remove,
};

/* A mount over the fake store (released with mount_release). */
static inline struct mount *
fake_mount(const char *name, uint64_t ident)
{
	struct mount *m = calloc(1, sizeof(*m));
	if (!m)
		abort();
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->uri = strdup("fake://");
	m->ident = ident;
	m->refs = 1;
	m->replicas = 1;
	if (ufs_open_ops(&fake_ufs_ops, "fake://", "", NULL, 0, &m->ufs) < 0)
		abort();
	return m;
}

/* Does buf hold bytes [off, off+n) of path at generation gen? */
static inline int
fake_bytes_ok(const char *path, int gen, int64_t off, const unsigned char *buf,
    size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != fake_byte(path, off + (int64_t)i, gen))
			return 0;
	return 1;
}

#endif
