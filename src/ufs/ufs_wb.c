/*
 * ufs_wb.c: the write-back staging area and its persister (ufs.h,
 * "Write-back").  One per process, shared by every write=back mount.
 *
 * On disk, per mount (<dir>/<ident>/):
 *   tmp-<n>.part    a body being received (deleted at start: never acked)
 *   <seq>.data      a staged body, fsync'd before its record is written
 *   <seq>.rec       its journal record (key, size, mtime, ETag, headers;
 *                   size -1 is a delete), written to <seq>.rec.tmp,
 *                   fsync'd, renamed, and the directory fsync'd: a write is
 *                   acknowledged only after that.  A record is the truth:
 *                   a .data without one is garbage.
 * seq grows with every acknowledged write (across restarts: the start
 * scans the areas for the highest), so at a restart the highest record of
 * a key is its latest write and the others are dropped.
 *
 * In memory: a wbkey per key with a record (key -> its latest record, cur,
 * and whether a record of it is uploading); the queue of records not yet
 * in the store, in the order they were acknowledged.  A record replaced
 * before its upload started is dropped; one replaced while uploading
 * finishes (its key stays busy) and the newer one goes after it, so the
 * store ends with the last write.
 *
 * A staged write's stat (and read_stat, commit, copy) answers its
 * record's headers (ufs_answer_hdrs); a copy of an object with no headers
 * given carries its source's, staged or from the store.
 *
 * Each mount remembers its latest uploads (staged ETag -> the store's): a
 * read that began on a staged write and fetches more of it once it is
 * uploaded asks the store for the same bytes under the store's version,
 * rather than failing mid-response on a version the store never had.
 *
 * Threads: request threads (staging, reads), the persister threads
 * (uploads), the control API's status.  One mutex (g.lock) guards all of
 * the above; it is never held across disk or network I/O of a body, nor
 * across the persisted callback.  A record is freed (and its data file
 * unlinked) when its last reference goes: the queue's and each reader's.
 * Lock order: g.lock, then g.tb_lock (the bandwidth bucket) is never
 * nested; callers' locks are not held when they call in.
 */
#include "ufs_impl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/dbuf.h"
#include "../common/htab.h"
#include "../common/log.h"
#include "../common/util.h"

#define WB_CHUNK (1u << 20)       /* upload and copy unit */
#define WB_BACKOFF_MIN_MS 500
#define WB_BACKOFF_MAX_MS 30000
#define WB_MAX_THREADS 64
#define WB_REC_MAX (64u << 10)    /* a record file's size at most */
#define WB_ATTACH_MAX 8
#define WB_MOVED 256              /* uploads remembered per mount (below) */

struct wbkey;

struct wbrec {
	TAILQ_ENTRY(wbrec) q; /* in g.queue while not in the store */
	struct wbmount *wm;
	struct wbkey *key;
	uint64_t seq;
	int64_t size;         /* -1: a delete */
	int64_t mtime;        /* unix seconds of the write */
	int64_t acked_ms;     /* wall ms of the acknowledgement */
	char etag[33];        /* MD5 of the body, hex */
	struct ufs_opt *hdrs; /* what goes with the object to the store */
	int nhdrs;
	int queued;           /* in g.queue */
	int uploading;
	int attempts;
	int64_t next_ms;      /* not tried again before (monotonic) */
	int refs;             /* the queue's, readers' (g.lock) */
};

struct wbkey {
	struct hnode hn;
	TAILQ_ENTRY(wbkey) all; /* wm->keys */
	struct wbmount *wm;
	uint64_t h;
	struct wbrec *cur;  /* the latest write of this key, until stored */
	int busy;           /* a record of this key is uploading */
	char path[];
};

/* An upload that made a staged write the store's: a read that began on
 * the staged version (its ETag) and fetches the rest after the upload
 * reads the same bytes from the store, under the store's version. */
struct wbmoved {
	uint64_t h;           /* of the path; 0: an empty slot */
	char *path;
	char staged[33];
	char stored[UFS_ETAG_MAX];
};

struct wbmount {
	LIST_ENTRY(wbmount) link;
	uint64_t ident;
	char name[64];
	char *dir;
	struct ufs *backend;  /* the instance that uploads: the newest of
	                       * att[] (ref'd there), or NULL */
	struct ufs *att[WB_ATTACH_MAX]; /* the mount's open instances (a
	                       * re-mount opens a new one before the old
	                       * closes), oldest first, each ref'd */
	int natt;
	TAILQ_HEAD(, wbkey) keys;
	int64_t objects, bytes, uploading, uploaded, failures;
	uint64_t gen;         /* uploads done: a condition checked against
	                       * the store before may no longer hold */
	char last_error[256];
	int failing;          /* logged once per outage */
	struct wbmoved moved[WB_MOVED]; /* the latest uploads, a ring */
	int moved_next;
};

TAILQ_HEAD(wbq, wbrec);

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work;  /* the queue or a key changed; stop */
	int started, stop;
	struct ufs_wb_cfg cfg;
	char *dir;
	LIST_HEAD(, wbmount) mounts;
	struct htab keys;     /* wbkey by (ident, path) */
	struct wbq queue;
	uint64_t seq, tmpn;
	int64_t bytes, reserved; /* staged (in the queue), and promised to
	                          * writes in progress */
	pthread_t threads[WB_MAX_THREADS];
	int nthreads;
	/* The bandwidth bucket. */
	pthread_mutex_t tb_lock;
	double tokens;
	int64_t tb_ms;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
    .tb_lock = PTHREAD_MUTEX_INITIALIZER};

static void wb_detach(struct ufs *u);
static int wb_stat(struct ufs *u, const char *path, struct ufs_stat *st);
static int wb_list(struct ufs *u, const char *prefix, const char *delimiter,
    const char *start_after, int max_keys, ufs_list_fn fn, void *arg,
    int *truncated);
static ssize_t wb_read(struct ufs *u, const char *path, const char *etag,
    int64_t off, void *buf, size_t len);
static ssize_t wb_read_stat(struct ufs *u, const char *path, int64_t off,
    void *buf, size_t len, int dirs, struct ufs_stat *st);
static int wb_put_begin(struct ufs *u, const char *path,
    const struct ufs_put_opts *o, struct wbput **wp);
static int wb_put_write(struct wbput *wp, const void *buf, size_t len);
static int wb_put_commit(struct wbput *wp, struct ufs_stat *st);
static void wb_put_abort(struct wbput *wp);
static int wb_remove(struct ufs *u, const char *path);
static int wb_copy(struct ufs *u, const char *src, const char *dst,
    const struct ufs_put_opts *o, struct ufs_stat *st);

static const struct ufs_layer wb_layer = {
	.detach = wb_detach, .stat = wb_stat, .list = wb_list, .read = wb_read,
	.read_stat = wb_read_stat, .put_begin = wb_put_begin,
	.put_write = wb_put_write, .put_commit = wb_put_commit,
	.put_abort = wb_put_abort, .remove = wb_remove, .copy = wb_copy,
};

/* A staging session (wb_put_*). */
struct wbput {
	struct ufs *u;
	struct wbmount *wm;
	char *path;
	char part[32];     /* tmp-<n>.part */
	int fd;
	EVP_MD_CTX *md5;
	int64_t size;      /* announced, or -1 */
	int64_t reserved;  /* of g.reserved */
	int64_t written;
	struct ufs_opt *hdrs;
	int nhdrs;
	/* The condition, and the state it was checked against. */
	char *if_match;
	int if_none_match;
	uint64_t seen_seq; /* the key's staged record then (0: none) */
	uint64_t seen_gen; /* the mount's uploads done then */
};

static int64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t
key_hash(uint64_t ident, const char *path)
{
	return hash64(path, strlen(path), ident ^ 0x7762ULL);
}

static uint64_t
hashof_key(const struct hnode *n)
{
	const struct wbkey *k = container_of(n, struct wbkey, hn);
	return k->h;
}

static struct wbkey *
do_key_find(struct wbmount *wm, const char *path)
{
	uint64_t h = key_hash(wm->ident, path);
	struct hnode *n;
	for (HTAB_FOREACH(&g.keys, h, n)) {
		struct wbkey *k = container_of(n, struct wbkey, hn);
		if (k->h == h && k->wm == wm && strcmp(k->path, path) == 0)
			return k;
	}
	return NULL;
}

static struct wbkey *
do_key_get(struct wbmount *wm, const char *path)
{
	struct wbkey *k = do_key_find(wm, path);
	if (k)
		return k;
	size_t n = strlen(path);
	k = calloc(1, sizeof(*k) + n + 1);
	if (!k)
		return NULL;
	memcpy(k->path, path, n + 1);
	k->wm = wm;
	k->h = key_hash(wm->ident, path);
	htab_insert(&g.keys, &k->hn, k->h);
	TAILQ_INSERT_TAIL(&wm->keys, k, all);
	return k;
}

/* A key with nothing staged and nothing uploading goes. */
static void
do_key_maybe_free(struct wbkey *k)
{
	if (k->cur || k->busy)
		return;
	htab_remove(&g.keys, &k->hn, k->h);
	TAILQ_REMOVE(&k->wm->keys, k, all);
	free(k);
}

static void
rec_file(const struct wbrec *r, const char *ext, char *out, size_t n)
{
	snprintf(out, n, "%s/%016" PRIx64 ".%s", r->wm->dir, r->seq, ext);
}

static void
hdrs_free(struct ufs_opt *h, int n)
{
	for (int i = 0; i < n; i++) {
		free((char *)h[i].key);
		free((char *)h[i].value);
	}
	free(h);
}

static void
do_rec_unref(struct wbrec *r)
{
	if (--r->refs > 0)
		return;
	char p[PATH_MAX];
	if (r->size >= 0) {
		rec_file(r, "data", p, sizeof(p));
		unlink(p);
	}
	hdrs_free(r->hdrs, r->nhdrs);
	free(r);
}

/* r leaves the queue: its record file goes (the write is in the store, or
 * a newer one replaced it, or it was dropped). */
static void
do_dequeue(struct wbrec *r)
{
	if (!r->queued)
		return;
	TAILQ_REMOVE(&g.queue, r, q);
	r->queued = 0;
	r->wm->objects--;
	if (r->size > 0) {
		r->wm->bytes -= r->size;
		g.bytes -= r->size;
	}
	char p[PATH_MAX];
	rec_file(r, "rec", p, sizeof(p));
	unlink(p);
	do_rec_unref(r);
}

/* r becomes its key's latest write; an older one not uploading goes. */
static void
do_enqueue(struct wbkey *k, struct wbrec *r)
{
	struct wbrec *old = k->cur;
	r->key = k;
	r->refs = 1;
	r->queued = 1;
	k->cur = r;
	TAILQ_INSERT_TAIL(&g.queue, r, q);
	r->wm->objects++;
	if (r->size > 0) {
		r->wm->bytes += r->size;
		g.bytes += r->size;
	}
	if (old && !old->uploading)
		do_dequeue(old);
	pthread_cond_broadcast(&g.work);
}

/* --- record files ---------------------------------------------------------- */

static int
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* Writes r's record file durably (the caller fsyncs the directory). */
static int
rec_write(const struct wbrec *r, const char *path)
{
	struct dbuf b;
	dbuf_init(&b, WB_REC_MAX);
	dbuf_printf(&b, "ferry-writeback 1\nsize %" PRId64 "\nmtime %" PRId64
	    "\nacked %" PRId64 "\netag %s\nkey ", r->size, r->mtime,
	    r->acked_ms, r->etag);
	url_encode(&b, path, strlen(path), 1);
	dbuf_adds(&b, "\n");
	for (int i = 0; i < r->nhdrs; i++) {
		dbuf_printf(&b, "header %s ", r->hdrs[i].key);
		url_encode(&b, r->hdrs[i].value, strlen(r->hdrs[i].value), 1);
		dbuf_adds(&b, "\n");
	}
	if (dbuf_error(&b)) {
		dbuf_free(&b);
		return -ENOMEM;
	}
	char tmp[PATH_MAX], fin[PATH_MAX];
	rec_file(r, "rec.tmp", tmp, sizeof(tmp));
	rec_file(r, "rec", fin, sizeof(fin));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int e = fd < 0 ? -errno : write_full(fd, b.p, b.len, -1);
	if (!e && fsync(fd) < 0)
		e = -errno;
	if (fd >= 0)
		close(fd);
	if (!e && rename(tmp, fin) < 0)
		e = -errno;
	if (e)
		unlink(tmp);
	dbuf_free(&b);
	return e;
}

/* Decodes a record file's value in place; -1 if malformed. */
static int
decode_value(char *v)
{
	long n = url_decode(v, strlen(v), v, 0);
	if (n < 0)
		return -1;
	v[n] = 0;
	return (size_t)n == strlen(v) ? 0 : -1; /* no NUL inside */
}

/* Parses a record file into r (seq, wm set) and *path (malloc'd). */
static int
rec_parse(char *s, struct wbrec *r, char **path)
{
	*path = NULL;
	int have = 0;
	char *save = NULL;
	char *line = strtok_r(s, "\n", &save);
	if (!line || strcmp(line, "ferry-writeback 1") != 0)
		return -1;
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *sp = strchr(line, ' ');
		if (!sp)
			return -1;
		*sp = 0;
		char *v = sp + 1;
		if (!strcmp(line, "size"))
			r->size = strtoll(v, NULL, 10), have |= 1;
		else if (!strcmp(line, "mtime"))
			r->mtime = strtoll(v, NULL, 10), have |= 2;
		else if (!strcmp(line, "acked"))
			r->acked_ms = strtoll(v, NULL, 10);
		else if (!strcmp(line, "etag"))
			snprintf(r->etag, sizeof(r->etag), "%s", v);
		else if (!strcmp(line, "key")) {
			if (decode_value(v) < 0 || !v[0] || *path)
				return -1;
			*path = strdup(v);
			have |= 4;
		} else if (!strcmp(line, "header")) {
			char *sp2 = strchr(v, ' ');
			if (!sp2 || r->nhdrs >= 64)
				return -1;
			*sp2 = 0;
			if (decode_value(sp2 + 1) < 0)
				return -1;
			struct ufs_opt *nh = realloc(r->hdrs, sizeof(*nh) * (size_t)(r->nhdrs + 1));
			if (!nh)
				return -1;
			r->hdrs = nh;
			nh[r->nhdrs].key = strdup(v);
			nh[r->nhdrs].value = strdup(sp2 + 1);
			r->nhdrs++;
		}
	}
	return have == 7 && *path && r->size >= -1 ? 0 : -1;
}

static int
read_small(const char *path, char **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char *b = malloc(WB_REC_MAX + 1);
	ssize_t n = b ? read(fd, b, WB_REC_MAX) : -1;
	close(fd);
	if (n < 0) {
		free(b);
		return -EIO;
	}
	b[n] = 0;
	*out = b;
	return 0;
}

/* The highest seq among the record files of one area. */
static void
scan_seq(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		uint64_t s = strtoull(e->d_name, &end, 16);
		if (end != e->d_name && *end == '.' && s > g.seq)
			g.seq = s;
	}
	closedir(d);
}

static int
rec_seq_cmp(const void *a, const void *b)
{
	uint64_t x = (*(struct wbrec *const *)a)->seq, y = (*(struct wbrec *const *)b)->seq;
	return x < y ? -1 : x > y;
}

/* Unlinks the <seq>.data files of dir that no record names: what a crash
 * between a body's rename and its record, or between a record's unlink
 * and its body's, left. */
static void
sweep_orphans(const char *dir, struct wbrec **v, size_t n)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		const char *nm = e->d_name;
		if (strlen(nm) != 21 || strcmp(nm + 16, ".data"))
			continue;
		uint64_t s = strtoull(nm, NULL, 16);
		size_t i = 0;
		while (i < n && v[i]->seq != s)
			i++;
		if (i == n) {
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", dir, nm);
			unlink(p);
		}
	}
	closedir(d);
}

/* Loads an area's records (wm not yet visible to other threads: called
 * under g.lock).  Leftovers of writes never acknowledged go. */
static void
do_load(struct wbmount *wm)
{
	DIR *d = opendir(wm->dir);
	if (!d)
		return;
	struct wbrec **v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	char p[PATH_MAX];
	while ((e = readdir(d))) {
		const char *nm = e->d_name;
		size_t l = strlen(nm);
		if (nm[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", wm->dir, nm);
		if ((l > 5 && !strcmp(nm + l - 5, ".part")) ||
		    (l > 8 && !strcmp(nm + l - 8, ".rec.tmp"))) {
			unlink(p);
			continue;
		}
		if (l != 20 || strcmp(nm + 16, ".rec"))
			continue;
		struct wbrec *r = calloc(1, sizeof(*r));
		char *s = NULL, *path = NULL;
		if (!r || read_small(p, &s) < 0) {
			free(r);
			continue;
		}
		r->wm = wm;
		r->seq = strtoull(nm, NULL, 16);
		if (rec_parse(s, r, &path) < 0) {
			LOG_ERR("write-back: %s is not a record I can read; left there",
			    p);
			hdrs_free(r->hdrs, r->nhdrs);
			free(r);
			free(path);
			free(s);
			continue;
		}
		free(s);
		if (r->size >= 0) {
			char dp[PATH_MAX];
			struct stat sb;
			rec_file(r, "data", dp, sizeof(dp));
			if (stat(dp, &sb) < 0 || sb.st_size != r->size) {
				LOG_ERR("write-back: /%s/%s: staged body %s is missing "
				    "or not %" PRId64 " bytes; the write is lost",
				    wm->name, path, dp, r->size);
				unlink(p);
				hdrs_free(r->hdrs, r->nhdrs);
				free(r);
				free(path);
				continue;
			}
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct wbrec **nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				free(path);
				hdrs_free(r->hdrs, r->nhdrs);
				free(r);
				break;
			}
			v = nv;
		}
		r->key = (struct wbkey *)path; /* the path, until enqueued */
		v[n++] = r;
	}
	closedir(d);
	/* In seq order: the last record of a key is its latest write. */
	if (n > 1)
		qsort(v, n, sizeof(*v), rec_seq_cmp);
	sweep_orphans(wm->dir, v, n);
	for (size_t i = 0; i < n; i++) {
		char *path = (char *)v[i]->key;
		struct wbkey *k = do_key_get(wm, path);
		free(path);
		if (!k) { /* out of memory: the files stay for the next start */
			hdrs_free(v[i]->hdrs, v[i]->nhdrs);
			free(v[i]);
			continue;
		}
		do_enqueue(k, v[i]);
	}
	free(v);
	if (wm->objects)
		LOG_INFO("write-back: /%s: %" PRId64 " write(s) of %" PRId64
		    " bytes staged by an earlier run are queued for the under-store",
		    wm->name, wm->objects, wm->bytes);
}

/* --- the bandwidth cap ----------------------------------------------------- */

/* Sleeps ms, in slices, returning early when the persister stops. */
static void
nap(double ms)
{
	while (ms > 0 && !__atomic_load_n(&g.stop, __ATOMIC_ACQUIRE)) {
		double d = ms < 100 ? ms : 100;
		struct timespec ts = {0, (long)(d * 1e6)};
		nanosleep(&ts, NULL);
		ms -= d;
	}
}

/* Waits until n bytes may go (a token bucket shared by every upload, with
 * at most a second's worth of burst; a chunk larger than that is paid for
 * after it is taken). */
static void
throttle(size_t n)
{
	double rate = (double)g.cfg.bandwidth;
	if (rate <= 0)
		return;
	for (;;) {
		pthread_mutex_lock(&g.tb_lock);
		int64_t t = now_ms();
		g.tokens += rate * (double)(t - g.tb_ms) / 1000.0;
		g.tb_ms = t;
		if (g.tokens > rate)
			g.tokens = rate;
		double need = (double)n - g.tokens;
		if (need <= 0 || (double)n > rate) {
			g.tokens -= (double)n;
			pthread_mutex_unlock(&g.tb_lock);
			if (need > 0)
				nap(need / rate * 1000.0);
			return;
		}
		pthread_mutex_unlock(&g.tb_lock);
		nap(need / rate * 1000.0);
		if (__atomic_load_n(&g.stop, __ATOMIC_ACQUIRE))
			return;
	}
}

/* --- the persister --------------------------------------------------------- */

/* Uploads r through u: 0, 1 when stopped, or -errno (reason set). */
static int
upload(struct ufs *u, struct wbrec *r, const char *path, struct ufs_stat *st)
{
	memset(st, 0, sizeof(*st));
	if (r->size < 0)
		return ufs_raw_remove(u, path);
	char dp[PATH_MAX];
	rec_file(r, "data", dp, sizeof(dp));
	int fd = open(dp, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ufs_set_error("write-back: staged body %s: %s", dp, strerror(errno));
		return -EIO;
	}
	struct ufs_put_opts o = {.size = r->size, .headers = r->hdrs,
	    .nheaders = r->nhdrs};
	struct ufs_put *p;
	int rc = ufs_raw_put_begin(u, path, &o, &p);
	char *buf = rc == 0 ? malloc(WB_CHUNK) : NULL;
	if (rc == 0 && !buf) {
		ufs_put_abort(&p);
		rc = -ENOMEM;
	}
	int64_t off = 0;
	while (rc == 0 && off < r->size) {
		if (__atomic_load_n(&g.stop, __ATOMIC_ACQUIRE)) {
			ufs_put_abort(&p);
			rc = 1;
			break;
		}
		size_t want = r->size - off < WB_CHUNK ? (size_t)(r->size - off) : WB_CHUNK;
		ssize_t n = pread(fd, buf, want, off);
		if (n <= 0) {
			ufs_set_error("write-back: staged body %s: %s", dp,
			    n < 0 ? strerror(errno) : "shorter than its record");
			ufs_put_abort(&p);
			rc = -EIO;
			break;
		}
		throttle((size_t)n);
		rc = ufs_put_write(p, buf, (size_t)n);
		if (rc < 0)
			ufs_put_abort(&p);
		off += n;
	}
	if (rc == 0)
		rc = ufs_put_commit(&p, st);
	free(buf);
	close(fd);
	return rc;
}

/* The next record to upload (g.lock held): the oldest whose time has come,
 * whose key is not uploading and whose mount has an instance.  *wait_ms:
 * how long until one may be due. */
static struct wbrec *
do_pick(int64_t *wait_ms)
{
	int64_t t = now_ms();
	*wait_ms = 1000;
	struct wbrec *r;
	TAILQ_FOREACH(r, &g.queue, q) {
		if (r->uploading || r->key->busy || !r->wm->backend)
			continue;
		if (r->next_ms > t) {
			if (r->next_ms - t < *wait_ms)
				*wait_ms = r->next_ms - t;
			continue;
		}
		return r;
	}
	return NULL;
}

static void
do_note_moved(struct wbmount *wm, const char *path, const char *staged,
    const char *stored)
{
	struct wbmoved *mv = &wm->moved[wm->moved_next];
	char *p = strdup(path);
	if (!p)
		return; /* such a read then fails its version check: no worse */
	wm->moved_next = (wm->moved_next + 1) % WB_MOVED;
	free(mv->path);
	mv->path = p;
	mv->h = hash64(path, strlen(path), 0) | 1;
	snprintf(mv->staged, sizeof(mv->staged), "%s", staged);
	snprintf(mv->stored, sizeof(mv->stored), "%s", stored);
}

/* The store's ETag of path's upload whose staged ETag was etag, into
 * out: 1, or 0 if no recent upload was that one. */
static int
moved_to(struct wbmount *wm, const char *path, const char *etag, char *out,
    size_t n)
{
	uint64_t h = hash64(path, strlen(path), 0) | 1;
	int found = 0;
	pthread_mutex_lock(&g.lock);
	/* Newest first: the same bytes written twice have one staged ETag
	 * and two stored versions, and the read began on the later one. */
	for (int k = 1; k <= WB_MOVED && !found; k++) {
		struct wbmoved *mv = &wm->moved[(wm->moved_next - k + WB_MOVED) % WB_MOVED];
		if (mv->h == h && !strcmp(mv->staged, etag) && !strcmp(mv->path, path)) {
			snprintf(out, n, "%s", mv->stored);
			found = 1;
		}
	}
	pthread_mutex_unlock(&g.lock);
	return found;
}

static void *
persister(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&g.lock);
	while (!g.stop) {
		int64_t wait_ms;
		struct wbrec *r = do_pick(&wait_ms);
		if (!r) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait_ms / 1000;
			ts.tv_nsec += (wait_ms % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&g.work, &g.lock, &ts);
			continue;
		}
		struct wbmount *wm = r->wm;
		struct wbkey *k = r->key;
		struct ufs *u = ufs_ref(wm->backend);
		r->uploading = 1;
		r->refs++;
		k->busy = 1;
		wm->uploading++;
		char *path = strdup(k->path);
		struct ufs_stat staged = {.size = r->size, .mtime = r->mtime};
		snprintf(staged.etag, sizeof(staged.etag), "%s", r->etag);
		pthread_mutex_unlock(&g.lock);

		struct ufs_stat st;
		int rc = path ? upload(u, r, path, &st) : -ENOMEM;
		char why[256];
		snprintf(why, sizeof(why), "%s", ufs_last_error()[0] ?
		    ufs_last_error() : rc < 0 ? strerror(-rc) : "");
		ufs_unref(u);

		pthread_mutex_lock(&g.lock);
		r->uploading = 0;
		k->busy = 0;
		wm->uploading--;
		int was_cur = k->cur == r, persisted = 0;
		if (rc == 0) {
			wm->uploaded++;
			wm->gen++;
			if (wm->failing) {
				wm->failing = 0;
				LOG_INFO("write-back: /%s: the under-store takes writes "
				    "again; %" PRId64 " queued", wm->name, wm->objects - 1);
			}
			if (was_cur)
				k->cur = NULL;
			do_dequeue(r);
			persisted = was_cur && r->size >= 0;
			/* Before g.lock is let go: a read that no longer finds
			 * the staged write finds where its bytes went. */
			if (persisted && path)
				do_note_moved(wm, path, r->etag, st.etag);
		} else if (rc > 0) {
			/* Stopping: it stays staged for the next start. */
		} else if (!was_cur) {
			do_dequeue(r); /* a newer write replaces it anyway */
		} else {
			wm->failures++;
			r->attempts++;
			int64_t b = WB_BACKOFF_MIN_MS << (r->attempts < 7 ? r->attempts - 1 : 6);
			r->next_ms = now_ms() + (b > WB_BACKOFF_MAX_MS ? WB_BACKOFF_MAX_MS : b);
			snprintf(wm->last_error, sizeof(wm->last_error), "%s: %s", path ? path : "?", why);
			if (!wm->failing) {
				wm->failing = 1;
				LOG_ERR("write-back: /%s: uploading %s failed (%s); it stays "
				    "staged and is retried with backoff, as are the other "
				    "%" PRId64 " queued", wm->name, path ? path : "?", why,
				    wm->objects - 1);
			}
		}
		do_rec_unref(r);
		do_key_maybe_free(k);
		pthread_cond_broadcast(&g.work);
		ufs_wb_persisted_fn fn = g.cfg.persisted;
		void *fa = g.cfg.arg;
		char name[64];
		snprintf(name, sizeof(name), "%s", wm->name);
		uint64_t ident = wm->ident;
		pthread_mutex_unlock(&g.lock);
		if (persisted && fn)
			fn(fa, ident, name, path, &staged, &st);
		free(path);
		pthread_mutex_lock(&g.lock);
	}
	pthread_mutex_unlock(&g.lock);
	return NULL;
}

int
ufs_wb_start(const struct ufs_wb_cfg *cfg, char **err)
{
	*err = NULL;
	pthread_mutex_lock(&g.lock);
	if (g.started) {
		pthread_mutex_unlock(&g.lock);
		*err = strdup("write-back started twice");
		return -EALREADY;
	}
	g.cfg = *cfg;
	if (g.cfg.parallel < 1)
		g.cfg.parallel = 1;
	if (g.cfg.parallel > WB_MAX_THREADS)
		g.cfg.parallel = WB_MAX_THREADS;
	g.dir = strdup(cfg->dir);
	if (!g.dir || htab_init(&g.keys, 256, hashof_key) < 0) {
		pthread_mutex_unlock(&g.lock);
		*err = strdup("out of memory");
		return -ENOMEM;
	}
	g.cfg.dir = g.dir;
	if (mkdir(g.dir, 0700) < 0 && errno != EEXIST) {
		int e = errno;
		if (asprintf(err, "cannot create the write-back area %s: %s", g.dir,
		    strerror(e)) < 0)
			*err = NULL;
		pthread_mutex_unlock(&g.lock);
		return -e;
	}
	TAILQ_INIT(&g.queue);
	LIST_INIT(&g.mounts);
	/* seq: above every record any area holds, so order survives. */
	DIR *d = opendir(g.dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char p[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", g.dir, e->d_name);
			scan_seq(p);
		}
		closedir(d);
	}
	g.tb_ms = now_ms();
	g.stop = 0;
	g.started = 1;
	for (int i = 0; i < g.cfg.parallel; i++) {
		if (pthread_create(&g.threads[i], NULL, persister, NULL) != 0)
			break;
		g.nthreads++;
	}
	pthread_mutex_unlock(&g.lock);
	if (g.nthreads == 0) {
		*err = strdup("cannot start the write-back threads");
		return -EAGAIN;
	}
	return 0;
}

void
ufs_wb_stop(void)
{
	pthread_mutex_lock(&g.lock);
	if (!g.started) {
		pthread_mutex_unlock(&g.lock);
		return;
	}
	g.stop = 1;
	pthread_cond_broadcast(&g.work);
	pthread_mutex_unlock(&g.lock);
	for (int i = 0; i < g.nthreads; i++)
		pthread_join(g.threads[i], NULL);
	g.nthreads = 0;
}

void
ufs_wb_free(void)
{
	pthread_mutex_lock(&g.lock);
	if (!g.started || g.nthreads) {
		pthread_mutex_unlock(&g.lock);
		return;
	}
	/* Free the memory; the files stay for the next start. */
	struct wbrec *r;
	while ((r = TAILQ_FIRST(&g.queue))) {
		TAILQ_REMOVE(&g.queue, r, q);
		r->queued = 0;
		r->refs = 1;
		r->size = -1; /* keep its data file */
		do_rec_unref(r);
	}
	struct wbmount *wm;
	while ((wm = LIST_FIRST(&g.mounts))) {
		LIST_REMOVE(wm, link);
		struct wbkey *k;
		while ((k = TAILQ_FIRST(&wm->keys))) {
			TAILQ_REMOVE(&wm->keys, k, all);
			htab_remove(&g.keys, &k->hn, k->h);
			free(k);
		}
		for (int i = 0; i < wm->natt; i++)
			ufs_unref(wm->att[i]);
		for (int i = 0; i < WB_MOVED; i++)
			free(wm->moved[i].path);
		free(wm->dir);
		free(wm);
	}
	htab_free(&g.keys);
	free(g.dir);
	g.dir = NULL;
	g.started = 0;
	g.seq = 0;
	g.bytes = g.reserved = 0;
	pthread_mutex_unlock(&g.lock);
}

/* The instance that uploads: the newest open one of the mount. */
static void
do_pick_backend(struct wbmount *wm)
{
	wm->backend = NULL;
	for (int i = wm->natt - 1; i >= 0 && !wm->backend; i--)
		if (wm->att[i]->state)
			wm->backend = wm->att[i];
}

int
ufs_set_writeback(struct ufs *u, uint64_t ident, const char *name, char **err)
{
	*err = NULL;
	if (!u->ops->put_begin || !u->ops->remove) {
		if (asprintf(err, "write=back: %s cannot be written", u->label) < 0)
			*err = NULL;
		return -EROFS;
	}
	pthread_mutex_lock(&g.lock);
	if (!g.started) {
		pthread_mutex_unlock(&g.lock);
		*err = strdup("write=back is not available on this worker (it "
		    "needs a single worker: not yet in a cluster)");
		return -ENOTSUP;
	}
	struct wbmount *wm;
	LIST_FOREACH(wm, &g.mounts, link)
		if (wm->ident == ident)
			break;
	if (!wm) {
		wm = calloc(1, sizeof(*wm));
		if (!wm || asprintf(&wm->dir, "%s/%016" PRIx64, g.dir, ident) < 0) {
			free(wm);
			pthread_mutex_unlock(&g.lock);
			*err = strdup("out of memory");
			return -ENOMEM;
		}
		if (mkdir(wm->dir, 0700) < 0 && errno != EEXIST) {
			int e = errno;
			if (asprintf(err, "cannot create the write-back area %s: %s",
			    wm->dir, strerror(e)) < 0)
				*err = NULL;
			free(wm->dir);
			free(wm);
			pthread_mutex_unlock(&g.lock);
			return -e;
		}
		wm->ident = ident;
		TAILQ_INIT(&wm->keys);
		snprintf(wm->name, sizeof(wm->name), "%s", name);
		LIST_INSERT_HEAD(&g.mounts, wm, link);
		do_load(wm);
	}
	if (wm->natt && strcmp(wm->name, name)) {
		/* One staging area per under-store URI: two mounts of it
		 * would upload each other's writes. */
		if (asprintf(err, "%s is already a write=back mount (/%s)",
		    u->label, wm->name) < 0)
			*err = NULL;
		pthread_mutex_unlock(&g.lock);
		return -EEXIST;
	}
	if (wm->natt == WB_ATTACH_MAX) {
		pthread_mutex_unlock(&g.lock);
		*err = strdup("write=back: too many instances of this mount at once");
		return -EBUSY;
	}
	snprintf(wm->name, sizeof(wm->name), "%s", name);
	/* The newest instance of the mount uploads (a re-mount opens the
	 * new one before the old one closes). */
	wm->att[wm->natt++] = ufs_ref(u);
	do_pick_backend(wm);
	u->wb = wm;
	u->layer = &wb_layer;
	pthread_cond_broadcast(&g.work);
	pthread_mutex_unlock(&g.lock);
	return 0;
}

int
ufs_is_writeback(const struct ufs *u)
{
	return u && u->wb;
}

int
ufs_wb_moved(struct ufs *u, const char *path, const char *from, const char *to)
{
	char got[UFS_ETAG_MAX];
	return u && u->wb && from[0] && moved_to(u->wb, path, from, got, sizeof(got)) &&
	    !strcmp(got, to);
}

/* u is closing: if it is the instance that uploads, nobody does until the
 * mount is there again (its writes stay staged). */
static void
wb_detach(struct ufs *u)
{
	pthread_mutex_lock(&g.lock);
	struct wbmount *wm = u->wb;
	struct ufs *drop = NULL;
	for (int i = 0; wm && i < wm->natt; i++) {
		if (wm->att[i] != u)
			continue;
		drop = u;
		memmove(&wm->att[i], &wm->att[i + 1],
		    sizeof(wm->att[0]) * (size_t)(wm->natt - i - 1));
		wm->natt--;
		break;
	}
	if (wm)
		do_pick_backend(wm);
	pthread_mutex_unlock(&g.lock);
	/* The area's reference; the owner's is dropped by ufs_close. */
	if (drop)
		ufs_unref(drop);
}

/* --- reads ------------------------------------------------------------------ */

/* Is path a directory by what is staged: a write under path/? */
static int
do_staged_dir(struct wbmount *wm, const char *path)
{
	size_t n = strlen(path);
	struct wbkey *k;
	TAILQ_FOREACH(k, &wm->keys, all)
		if (k->cur && k->cur->size >= 0 && !strncmp(k->path, path, n) &&
		    k->path[n] == '/')
			return 1;
	return 0;
}

static void
rec_stat(const struct wbrec *r, struct ufs_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->size = r->size;
	st->mtime = r->mtime;
	snprintf(st->etag, sizeof(st->etag), "%s", r->etag);
}

/* A staged write's headers are what its stat answers with (ufs.h,
 * ufs_answer_hdrs): those the store will get. */
static void
rec_headers(const struct wbrec *r)
{
	struct ufs_hdrs *h = ufs_answer_hdrs();
	ufs_hdrs_init(h);
	for (int i = 0; i < r->nhdrs; i++)
		ufs_hdrs_add(h, r->hdrs[i].key, strlen(r->hdrs[i].key),
		    r->hdrs[i].value, strlen(r->hdrs[i].value));
}

static int
wb_stat(struct ufs *u, const char *path, struct ufs_stat *st)
{
	struct wbmount *wm = u->wb;
	if (!path[0])
		return ufs_raw_stat(u, path, st);
	pthread_mutex_lock(&g.lock);
	struct wbkey *k = do_key_find(wm, path);
	if (k && k->cur && k->cur->size >= 0) {
		rec_stat(k->cur, st);
		rec_headers(k->cur);
		pthread_mutex_unlock(&g.lock);
		return 0;
	}
	int deleted = k && k->cur;
	int dir = do_staged_dir(wm, path);
	pthread_mutex_unlock(&g.lock);
	if (dir) {
		memset(st, 0, sizeof(*st));
		st->is_dir = 1;
		return 0;
	}
	/* A staged delete answers without the store (which may be down). */
	return deleted ? -ENOENT : ufs_raw_stat(u, path, st);
}

/* A reference to path's staged write, or NULL (*deleted: a staged delete). */
static struct wbrec *
staged_ref(struct wbmount *wm, const char *path, int *deleted)
{
	pthread_mutex_lock(&g.lock);
	struct wbkey *k = do_key_find(wm, path);
	struct wbrec *r = k ? k->cur : NULL;
	*deleted = r && r->size < 0;
	if (r && r->size >= 0)
		r->refs++;
	else
		r = NULL;
	pthread_mutex_unlock(&g.lock);
	return r;
}

static void
rec_release(struct wbrec *r)
{
	pthread_mutex_lock(&g.lock);
	do_rec_unref(r);
	pthread_mutex_unlock(&g.lock);
}

static ssize_t
rec_pread(struct wbrec *r, int64_t off, void *buf, size_t len)
{
	if (off >= r->size)
		return 0;
	if ((int64_t)len > r->size - off)
		len = (size_t)(r->size - off);
	char dp[PATH_MAX];
	rec_file(r, "data", dp, sizeof(dp));
	int fd = open(dp, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ufs_set_error("write-back: staged body %s: %s", dp, strerror(errno));
		return -EIO;
	}
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, off + (int64_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ufs_set_error("write-back: staged body %s: %s", dp,
			    n < 0 ? strerror(errno) : "shorter than its record");
			close(fd);
			return -EIO;
		}
		got += (size_t)n;
	}
	close(fd);
	return (ssize_t)got;
}

static ssize_t
wb_read(struct ufs *u, const char *path, const char *etag, int64_t off,
    void *buf, size_t len)
{
	int deleted;
	struct wbrec *r = staged_ref(u->wb, path, &deleted);
	if (deleted)
		return etag[0] ? -ESTALE : -ENOENT;
	if (!r) {
		char stored[UFS_ETAG_MAX];
		if (etag[0] && moved_to(u->wb, path, etag, stored, sizeof(stored)))
			etag = stored;
		return ufs_raw_read(u, path, etag, off, buf, len);
	}
	ssize_t n = etag[0] && strcmp(etag, r->etag) ? -ESTALE :
	    rec_pread(r, off, buf, len);
	rec_release(r);
	return n;
}

static ssize_t
wb_read_stat(struct ufs *u, const char *path, int64_t off, void *buf,
    size_t len, int dirs, struct ufs_stat *st)
{
	int deleted;
	struct wbrec *r = staged_ref(u->wb, path, &deleted);
	if (deleted)
		return -ERANGE; /* the caller asks stat, which knows */
	if (r) {
		rec_stat(r, st);
		rec_headers(r); /* r is held: its headers stay */
		ssize_t n = rec_pread(r, off, buf, len);
		rec_release(r);
		if (n <= 0) {
			memset(st, 0, sizeof(*st));
			ufs_last_hdrs_reset();
		}
		return n == 0 ? -ERANGE : n; /* nothing read: ask stat */
	}
	ssize_t n = ufs_raw_read_stat(u, path, off, buf, len, dirs, st);
	if (n == -ENOENT) {
		pthread_mutex_lock(&g.lock);
		int dir = do_staged_dir(u->wb, path);
		pthread_mutex_unlock(&g.lock);
		if (dir)
			return -ERANGE;
	}
	return n;
}

/* --- listings --------------------------------------------------------------- */

struct lent {
	char *key;
	int is_dir, staged, deleted;
	int64_t size, mtime;
	char etag[UFS_ETAG_MAX];
};

struct lset {
	struct lent *v;
	size_t n, cap;
	int err;
};

static struct lent *
lset_add(struct lset *s, const char *key, size_t kl)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct lent *nv = realloc(s->v, cap * sizeof(*nv));
		if (!nv) {
			s->err = -ENOMEM;
			return NULL;
		}
		s->v = nv;
		s->cap = cap;
	}
	struct lent *e = &s->v[s->n];
	memset(e, 0, sizeof(*e));
	e->key = strndup(key, kl);
	if (!e->key) {
		s->err = -ENOMEM;
		return NULL;
	}
	s->n++;
	return e;
}

static void
lset_free(struct lset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].key);
	free(s->v);
}

static int
lent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct lent *)a)->key, ((const struct lent *)b)->key);
}

static int
collect(void *arg, const struct ufs_entry *e)
{
	struct lset *s = arg;
	struct lent *l = lset_add(s, e->key, strlen(e->key));
	if (!l)
		return 1;
	l->is_dir = e->is_dir;
	l->size = e->size;
	l->mtime = e->mtime;
	snprintf(l->etag, sizeof(l->etag), "%s", e->etag ? e->etag : "");
	return 0;
}

/* What is staged under prefix after start_after, rolled up as the store
 * would roll it up, sorted, duplicates removed. */
static int
staged_entries(struct wbmount *wm, const char *prefix, const char *delim,
    const char *start_after, struct lset *s, struct lset *dels)
{
	size_t pl = strlen(prefix), dl = strlen(delim);
	pthread_mutex_lock(&g.lock);
	struct wbkey *k;
	TAILQ_FOREACH(k, &wm->keys, all) {
		struct wbrec *r = k->cur;
		if (!r || strncmp(k->path, prefix, pl))
			continue;
		const char *cut = dl ? strstr(k->path + pl, delim) : NULL;
		if (cut && r->size < 0)
			lset_add(dels, k->path, strlen(k->path));
		if (cut && r->size >= 0) {
			size_t kl = (size_t)(cut - k->path) + dl;
			/* Listed if the prefix sorts after start_after. */
			if (strncmp(k->path, start_after, kl) > 0) {
				struct lent *l = lset_add(s, k->path, kl);
				if (l)
					l->is_dir = l->staged = 1;
			}
			continue;
		}
		if (cut || strcmp(k->path, start_after) <= 0)
			continue;
		struct lent *l = lset_add(s, k->path, strlen(k->path));
		if (!l)
			break;
		l->staged = 1;
		l->deleted = r->size < 0;
		l->size = r->size;
		l->mtime = r->mtime;
		snprintf(l->etag, sizeof(l->etag), "%s", r->etag);
	}
	pthread_mutex_unlock(&g.lock);
	if (s->err || dels->err)
		return s->err ? s->err : dels->err;
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), lent_cmp);
	size_t o = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (o && !strcmp(s->v[o - 1].key, s->v[i].key)) {
			free(s->v[i].key);
			continue;
		}
		s->v[o++] = s->v[i];
	}
	s->n = o;
	return 0;
}

/* Is a deleted key of dels[] named key? */
static int
is_deleted(const struct lset *dels, const char *key)
{
	for (size_t i = 0; i < dels->n; i++)
		if (!strcmp(dels->v[i].key, key))
			return 1;
	return 0;
}

/* The store rolled keys up into prefix cp; with staged deletes under cp,
 * is any of its keys left?  (More keys than deletes: yes, without
 * looking further.) */
static int
prefix_survives(struct ufs *u, const char *cp, const struct lset *dels)
{
	size_t cl = strlen(cp), t = 0;
	for (size_t i = 0; i < dels->n; i++)
		t += !strncmp(dels->v[i].key, cp, cl);
	if (t == 0 || t >= 1000)
		return 1;
	struct lset b = {0};
	int trunc = 0;
	int r = ufs_raw_list(u, cp, "", "", (int)t + 1, collect, &b, &trunc);
	int left = r < 0 || b.err || b.n > t || trunc;
	for (size_t i = 0; !left && i < b.n; i++)
		left = !is_deleted(dels, b.v[i].key);
	lset_free(&b);
	return left;
}

static int
wb_list(struct ufs *u, const char *prefix, const char *delimiter,
    const char *start_after, int max_keys, ufs_list_fn fn, void *arg,
    int *truncated)
{
	struct lset st = {0}, dels = {0};
	int r = staged_entries(u->wb, prefix, delimiter, start_after, &st, &dels);
	if (r < 0) {
		lset_free(&st);
		lset_free(&dels);
		return r;
	}
	char *after = strdup(start_after);
	int emitted = 0, stopped = 0;
	size_t si = 0;
	*truncated = 0;
	/* A page of the store's, merged with what is staged up to its last
	 * key; staged deletes hide keys.  A page that the deletes emptied is
	 * followed by the next one. */
	while (after && !stopped && emitted == 0) {
		struct lset b = {0};
		int trunc = 0;
		r = ufs_raw_list(u, prefix, delimiter, after, max_keys, collect, &b, &trunc);
		if (r == 0 && b.err)
			r = b.err;
		if (r < 0) {
			lset_free(&b);
			break;
		}
		const char *bound = trunc && b.n ? b.v[b.n - 1].key : NULL;
		size_t bi = 0;
		while (!stopped && (bi < b.n || si < st.n)) {
			struct lent *x = NULL;
			int c;
			if (bi < b.n && si < st.n)
				c = strcmp(b.v[bi].key, st.v[si].key);
			else
				c = bi < b.n ? -1 : 1;
			if (c > 0 && bound && strcmp(st.v[si].key, bound) > 0)
				break; /* staged keys past this page: the next */
			if (c < 0) {
				x = &b.v[bi++];
				if (x->is_dir && dels.n && !prefix_survives(u, x->key, &dels))
					continue; /* every key under it is deleted */
			} else {
				x = &st.v[si++];
				if (c == 0) {
					/* Staged wins; a rolled-up prefix is one. */
					bi++;
				}
			}
			if (x->deleted)
				continue;
			if (emitted == max_keys) {
				*truncated = 1;
				stopped = 1;
				break;
			}
			struct ufs_entry e = {.key = x->key, .is_dir = x->is_dir,
			    .size = x->is_dir ? 0 : x->size, .mtime = x->mtime,
			    .etag = x->etag};
			emitted++;
			free(after);
			after = strdup(x->key);
			if (fn(arg, &e)) {
				stopped = 1;
				break;
			}
		}
		if (!stopped && trunc) {
			*truncated = 1;
			if (emitted == 0 && b.n) {
				free(after);
				after = strdup(b.v[b.n - 1].key);
				*truncated = 0;
			}
		}
		lset_free(&b);
		if (!trunc)
			break;
	}
	if (!after && r == 0)
		r = -ENOMEM;
	free(after);
	lset_free(&st);
	lset_free(&dels);
	return r;
}

/* --- writes ----------------------------------------------------------------- */

/* w's condition against the store's object (nothing staged for it). */
static int
store_check_cond(struct ufs *u, const char *path, const struct wbput *w)
{
	struct ufs_stat st;
	int sr = ufs_raw_stat(u, path, &st);
	if (sr == 0 && !st.is_dir && w->if_none_match)
		return -EEXIST;
	if (w->if_match && (sr < 0 || st.is_dir))
		return sr == -ENOENT || sr == 0 ? -ESTALE : sr;
	if (w->if_match) {
		char e[UFS_ETAG_MAX];
		if (st.etag[0])
			snprintf(e, sizeof(e), "%s", st.etag);
		else
			snprintf(e, sizeof(e), "%" PRIx64 "-%" PRIx64,
			    (uint64_t)st.mtime, (uint64_t)st.size);
		return strcmp(e, w->if_match) ? -ESTALE : 0;
	}
	return sr < 0 && sr != -ENOENT ? sr : 0;
}

static int
do_check_cond(const struct wbput *w, const struct wbrec *cur)
{
	if (w->if_none_match && cur && cur->size >= 0)
		return -EEXIST;
	if (w->if_match && (!cur || cur->size < 0 || strcmp(cur->etag, w->if_match)))
		return -ESTALE;
	return 0;
}

static int
wb_put_begin(struct ufs *u, const char *path, const struct ufs_put_opts *o,
    struct wbput **out)
{
	*out = NULL;
	struct wbmount *wm = u->wb;
	struct wbput *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->u = u;
	w->wm = wm;
	w->size = o->size;
	w->if_none_match = o->if_none_match;
	w->if_match = o->if_match ? strdup(o->if_match) : NULL;
	w->path = strdup(path);
	w->md5 = EVP_MD_CTX_new();
	w->hdrs = o->nheaders ? calloc((size_t)o->nheaders, sizeof(*w->hdrs)) : NULL;
	int r = (!w->path || !w->md5 || (o->nheaders && !w->hdrs) ||
	    (o->if_match && !w->if_match)) ? -ENOMEM : 0;
	for (int i = 0; !r && i < o->nheaders; i++) {
		w->hdrs[i].key = strdup(o->headers[i].key);
		w->hdrs[i].value = strdup(o->headers[i].value);
		w->nhdrs++;
		if (!w->hdrs[i].key || !w->hdrs[i].value)
			r = -ENOMEM;
	}
	if (!r && EVP_DigestInit_ex(w->md5, EVP_md5(), NULL) != 1)
		r = -ENOMEM;
	if (r) {
		wb_put_abort(w);
		return r;
	}
	/* The conditions, against what is staged, else the store. */
	pthread_mutex_lock(&g.lock);
	struct wbkey *k = do_key_find(wm, path);
	struct wbrec *cur = k ? k->cur : NULL;
	w->seen_seq = cur ? cur->seq : 0;
	w->seen_gen = wm->gen;
	if (cur)
		r = do_check_cond(w, cur);
	/* The staging limit: the announced size is promised now. */
	int64_t want = o->size > 0 ? o->size : 0;
	if (!r && want > g.cfg.limit) {
		/* Never fits: not a "retry later". */
		ufs_set_error("write-back: %s is larger than --writeback-limit "
		    "(%" PRId64 " bytes)", path, g.cfg.limit);
		r = -EFBIG;
	} else if (!r && g.bytes + g.reserved + want > g.cfg.limit) {
		char a[32], b[32];
		fmt_bytes((double)g.bytes, a, sizeof(a));
		fmt_bytes((double)g.cfg.limit, b, sizeof(b));
		ufs_set_error("write-back staging is full (%s staged of the %s "
		    "limit, waiting for the under-store): retry later", a, b);
		r = -ENOBUFS;
	}
	if (!r) {
		g.reserved += want;
		w->reserved = want;
		snprintf(w->part, sizeof(w->part), "tmp-%" PRIu64 ".part", ++g.tmpn);
	}
	pthread_mutex_unlock(&g.lock);
	if (!r && !cur && (o->if_none_match || o->if_match))
		r = store_check_cond(u, path, w);
	if (!r) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", wm->dir, w->part);
		w->fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (w->fd < 0) {
			r = -errno;
			ufs_set_error("write-back: cannot stage in %s: %s", wm->dir,
			    strerror(errno));
		}
	}
	if (r) {
		wb_put_abort(w);
		return r;
	}
	*out = w;
	return 0;
}

static int
wb_put_write(struct wbput *w, const void *buf, size_t len)
{
	if (w->size < 0) {
		/* No size announced: the limit is checked as the bytes come. */
		pthread_mutex_lock(&g.lock);
		int full = g.bytes + g.reserved + (int64_t)len > g.cfg.limit;
		if (!full) {
			g.reserved += (int64_t)len;
			w->reserved += (int64_t)len;
		}
		pthread_mutex_unlock(&g.lock);
		if (full) {
			ufs_set_error("write-back staging is full (the limit is %" PRId64
			    " bytes, waiting for the under-store): retry later",
			    g.cfg.limit);
			return -ENOBUFS;
		}
	}
	int r = write_full(w->fd, buf, len, -1);
	if (r < 0) {
		ufs_set_error("write-back: staging %s in %s: %s", w->path,
		    w->wm->dir, strerror(-r));
		return r;
	}
	EVP_DigestUpdate(w->md5, buf, len);
	w->written += (int64_t)len;
	return 0;
}

static void
put_free(struct wbput *w)
{
	if (w->fd >= 0)
		close(w->fd);
	if (w->reserved) {
		pthread_mutex_lock(&g.lock);
		g.reserved -= w->reserved;
		pthread_mutex_unlock(&g.lock);
	}
	EVP_MD_CTX_free(w->md5);
	hdrs_free(w->hdrs, w->nhdrs);
	free(w->if_match);
	free(w->path);
	free(w);
}

static void
wb_put_abort(struct wbput *w)
{
	if (!w)
		return;
	if (w->part[0] && w->fd >= 0) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", w->wm->dir, w->part);
		unlink(p);
	}
	put_free(w);
}

/* Makes r (data file in place, if any) durable and the key's latest
 * write: its record is written and the area's directory fsync'd.  Takes r
 * (freed on failure). */
/*
 * A conditional write's condition, again, just before its record is
 * written: against the key's staged record if it changed since the last
 * check, else against the store if an upload happened meanwhile (the
 * record it was checked against may be in the store now).
 */
static int
recheck_cond(struct wbput *w)
{
	struct wbmount *wm = w->wm;
	pthread_mutex_lock(&g.lock);
	struct wbkey *k = do_key_find(wm, w->path);
	struct wbrec *cur = k ? k->cur : NULL;
	int r = 0, ask_store = 0;
	if (cur && cur->seq != w->seen_seq)
		r = do_check_cond(w, cur);
	else if (!cur && (w->seen_seq || wm->gen != w->seen_gen))
		ask_store = 1;
	w->seen_seq = cur ? cur->seq : 0;
	w->seen_gen = wm->gen;
	pthread_mutex_unlock(&g.lock);
	return ask_store ? store_check_cond(w->u, w->path, w) : r;
}

/* Renames r's files to seq ns (g.lock held: rare, a lost race). */
static int
do_reseq(struct wbrec *r, uint64_t ns)
{
	char a[PATH_MAX], b[PATH_MAX];
	uint64_t old = r->seq;
	if (r->size >= 0) {
		rec_file(r, "data", a, sizeof(a));
		r->seq = ns;
		rec_file(r, "data", b, sizeof(b));
		r->seq = old;
		if (rename(a, b) < 0)
			return -errno;
	}
	rec_file(r, "rec", a, sizeof(a));
	r->seq = ns;
	rec_file(r, "rec", b, sizeof(b));
	return rename(a, b) < 0 ? -errno : 0;
}

/*
 * Makes r (data file in place, if any) durable and the key's latest
 * write: its record is written and the area's directory fsync'd.  Takes r
 * (freed on failure).  A condition is checked before the record is
 * durable, so that a refused write never comes back after a crash; a
 * write whose seq a concurrent one of the key passed while both were
 * recording takes a new seq, so the order in memory, on disk and of the
 * answers is one.
 */
static int
commit_rec(struct wbmount *wm, struct wbrec *r, const char *path,
    struct wbput *w)
{
	char fin[PATH_MAX];
	int e = 0, recorded = 0, reseq = 0;
	if (w && (w->if_none_match || w->if_match))
		e = recheck_cond(w);
	if (!e) {
		e = rec_write(r, path);
		recorded = !e;
	}
	if (!e)
		e = fsync_dir(wm->dir);
	pthread_mutex_lock(&g.lock);
	struct wbkey *k = e ? NULL : do_key_get(wm, path);
	if (!e && !k)
		e = -ENOMEM;
	if (!e && w && k->cur && k->cur->seq != w->seen_seq)
		e = do_check_cond(w, k->cur);
	if (!e && k->cur && k->cur->seq > r->seq) {
		uint64_t ns = ++g.seq;
		e = do_reseq(r, ns);
		if (!e) {
			r->seq = ns;
			reseq = 1;
		}
	}
	if (!e) {
		do_enqueue(k, r);
		pthread_mutex_unlock(&g.lock);
		return reseq ? fsync_dir(wm->dir) : 0;
	}
	if (k)
		do_key_maybe_free(k);
	pthread_mutex_unlock(&g.lock);
	if (recorded) {
		rec_file(r, "rec", fin, sizeof(fin));
		unlink(fin);
		fsync_dir(wm->dir); /* refused: not found again after a crash */
	}
	r->refs = 1;
	do_rec_unref(r); /* and its data file */
	if (e != -EEXIST && e != -ESTALE)
		ufs_set_error("write-back: cannot record %s in %s: %s", path,
		    wm->dir, strerror(-e));
	return e;
}

/* A new record with its seq (taken under the lock: acknowledgement order). */
static struct wbrec *
rec_new(struct wbmount *wm, int64_t size)
{
	struct wbrec *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->wm = wm;
	r->size = size;
	r->mtime = wall_sec();
	r->acked_ms = wall_ms();
	pthread_mutex_lock(&g.lock);
	r->seq = ++g.seq;
	pthread_mutex_unlock(&g.lock);
	return r;
}

static int
wb_put_commit(struct wbput *w, struct ufs_stat *st)
{
	memset(st, 0, sizeof(*st));
	struct wbmount *wm = w->wm;
	int e = fsync(w->fd) < 0 ? -errno : 0;
	if (e) {
		ufs_set_error("write-back: staging %s: fsync: %s", w->path, strerror(-e));
		wb_put_abort(w);
		return e;
	}
	unsigned char d[16];
	unsigned int dl = 16;
	struct wbrec *r = rec_new(wm, w->written);
	if (!r || EVP_DigestFinal_ex(w->md5, d, &dl) != 1) {
		free(r);
		wb_put_abort(w);
		return -ENOMEM;
	}
	hex_encode(d, 16, r->etag);
	char part[PATH_MAX], data[PATH_MAX];
	snprintf(part, sizeof(part), "%s/%s", wm->dir, w->part);
	rec_file(r, "data", data, sizeof(data));
	if (rename(part, data) < 0) {
		e = -errno;
		ufs_set_error("write-back: staging %s: %s", w->path, strerror(-e));
		free(r);
		wb_put_abort(w);
		return e;
	}
	/* The headers go with the record (and later to the store). */
	r->hdrs = w->hdrs;
	r->nhdrs = w->nhdrs;
	w->hdrs = NULL;
	w->nhdrs = 0;
	w->part[0] = 0; /* renamed: commit_rec owns the data file now */
	struct ufs_stat mine;
	rec_stat(r, &mine); /* r may be gone once recorded */
	rec_headers(r);     /* what stat answers from now on */
	e = commit_rec(wm, r, w->path, w);
	if (e == 0)
		*st = mine;
	else
		ufs_last_hdrs_reset();
	put_free(w);
	return e;
}

static int
wb_remove(struct ufs *u, const char *path)
{
	struct wbmount *wm = u->wb;
	struct wbrec *r = rec_new(wm, -1);
	if (!r)
		return -ENOMEM;
	return commit_rec(wm, r, path, NULL);
}

static int
wb_copy(struct ufs *u, const char *src, const char *dst,
    const struct ufs_put_opts *o, struct ufs_stat *st)
{
	memset(st, 0, sizeof(*st));
	struct ufs_stat s;
	ufs_last_hdrs_reset();
	int r = wb_stat(u, src, &s);
	if (r == 0 && s.is_dir)
		r = -ENOENT;
	if (r < 0)
		return r;
	struct ufs_put_opts po = *o;
	po.size = s.size;
	/* No headers given: the source's go with the copy, as a backend's
	 * copy does: its stat's (the staged record's, or the store's). */
	struct ufs_hdrs *sh = NULL;
	struct ufs_opt sopt[UFS_HDRS_COUNT_MAX];
	if (!o->nheaders && ufs_last_hdrs()->known && ufs_last_hdrs()->n) {
		if (!(sh = malloc(sizeof(*sh))))
			return -ENOMEM;
		memcpy(sh, ufs_last_hdrs(), sizeof(*sh));
		po.headers = sopt;
		po.nheaders = ufs_hdrs_opts(sh, sopt, UFS_HDRS_COUNT_MAX);
	}
	struct wbput *w;
	r = wb_put_begin(u, dst, &po, &w);
	free(sh); /* the session keeps copies */
	if (r < 0)
		return r;
	char *buf = malloc(WB_CHUNK);
	if (!buf) {
		wb_put_abort(w);
		return -ENOMEM;
	}
	const char *etag = s.etag[0] ? s.etag : "";
	for (int64_t off = 0; off < s.size && r == 0;) {
		size_t want = s.size - off < WB_CHUNK ? (size_t)(s.size - off) : WB_CHUNK;
		ssize_t n = wb_read(u, src, etag, off, buf, want);
		if (n <= 0) {
			r = n < 0 ? (int)n : -ESTALE;
			break;
		}
		r = wb_put_write(w, buf, (size_t)n);
		off += n;
	}
	free(buf);
	if (r < 0) {
		wb_put_abort(w);
		return r;
	}
	return wb_put_commit(w, st);
}

/* --- status ----------------------------------------------------------------- */

int
ufs_wb_status(struct ufs_wb_status **out)
{
	*out = NULL;
	pthread_mutex_lock(&g.lock);
	int n = 0;
	struct wbmount *wm;
	LIST_FOREACH(wm, &g.mounts, link)
		n++;
	struct ufs_wb_status *v = calloc((size_t)(n ? n : 1), sizeof(*v));
	if (!v) {
		pthread_mutex_unlock(&g.lock);
		return -ENOMEM;
	}
	int64_t t = wall_ms();
	int i = 0;
	LIST_FOREACH(wm, &g.mounts, link) {
		struct ufs_wb_status *s = &v[i++];
		snprintf(s->name, sizeof(s->name), "%s", wm->name);
		s->ident = wm->ident;
		s->attached = wm->backend != NULL;
		s->objects = wm->objects;
		s->bytes = wm->bytes;
		s->uploading = wm->uploading;
		s->uploaded = wm->uploaded;
		s->failures = wm->failures;
		snprintf(s->last_error, sizeof(s->last_error), "%s", wm->last_error);
		struct wbrec *r;
		TAILQ_FOREACH(r, &g.queue, q)
			if (r->wm == wm) {
				s->oldest_s = (t - r->acked_ms) / 1000 + 1;
				break;
			}
	}
	pthread_mutex_unlock(&g.lock);
	*out = v;
	return n;
}

int64_t
ufs_wb_pending(uint64_t ident)
{
	int64_t n = 0;
	pthread_mutex_lock(&g.lock);
	struct wbmount *wm;
	LIST_FOREACH(wm, &g.mounts, link)
		if (wm->ident == ident)
			n = wm->objects;
	pthread_mutex_unlock(&g.lock);
	return n;
}

int
ufs_wb_metrics_render(struct dbuf *b)
{
	struct ufs_wb_status *v;
	int n = ufs_wb_status(&v);
	if (n < 0)
		return n;
	int64_t bytes = 0, objects = 0, oldest = 0, uploaded = 0, failures = 0;
	for (int i = 0; i < n; i++) {
		bytes += v[i].bytes;
		objects += v[i].objects;
		uploaded += v[i].uploaded;
		failures += v[i].failures;
		if (v[i].oldest_s > oldest)
			oldest = v[i].oldest_s;
	}
	free(v);
	dbuf_printf(b, "# HELP ferry_writeback_pending_bytes Bytes written (write=back) and not yet in the under-store.\n"
	    "# TYPE ferry_writeback_pending_bytes gauge\nferry_writeback_pending_bytes %" PRId64 "\n", bytes);
	dbuf_printf(b, "# HELP ferry_writeback_pending_objects Writes and deletes (write=back) not yet in the under-store.\n"
	    "# TYPE ferry_writeback_pending_objects gauge\nferry_writeback_pending_objects %" PRId64 "\n", objects);
	dbuf_printf(b, "# HELP ferry_writeback_oldest_seconds Age of the oldest write not yet in the under-store (0: none).\n"
	    "# TYPE ferry_writeback_oldest_seconds gauge\nferry_writeback_oldest_seconds %" PRId64 "\n", oldest);
	dbuf_printf(b, "# HELP ferry_writeback_uploaded_total Writes and deletes the persister brought to the under-store.\n"
	    "# TYPE ferry_writeback_uploaded_total counter\nferry_writeback_uploaded_total %" PRId64 "\n", uploaded);
	dbuf_printf(b, "# HELP ferry_writeback_failures_total Failed upload attempts (each is retried).\n"
	    "# TYPE ferry_writeback_failures_total counter\nferry_writeback_failures_total %" PRId64 "\n", failures);
	return dbuf_error(b);
}
