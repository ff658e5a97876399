/*
 * loader.c: `ferry load` jobs (see loader.h).  A front end like the S3
 * gateway: it reads through objget (stat, then ranges pinned to the
 * version it saw) and lists through the metadata cache; it never touches
 * pages or under-stores itself.
 *
 * Threads: per running job a lister (lister_main) that lists the path and
 * queues objects, `parallel` loaders (loader_main) that take objects and
 * read their uncached pages in runs of up to RUN_PAGES, and the lister
 * also saves the job file about once a second.  Control-API threads call
 * loader_start/stop/json.
 *
 * Invariants (under job->mu): the in-flight objects are in job->objs in
 * listing order; job->cursor is the key of the last object such that it
 * and every object before it are done (its pages read, cached or failed);
 * job->c counts the done objects up to the cursor, and only it (with the
 * cursor) is saved, so a resumed job counts nothing twice; a job's
 * threads are running iff job->nthreads > 0.
 */
#include "loader.h"

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

#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "meta.h"
#include "metrics.h"
#include "objget.h"
#include "objkey.h"
#include "reader.h"
#include "router.h"

#define RUN_PAGES 8       /* pages read in one request at most */
#define QUEUE_OBJS 256    /* objects listed ahead of the loaders at most */
#define LIST_PAGE 1000
#define SAVE_MS 1000
#define KEEP_DONE_S 86400 /* finished jobs older than this are forgotten at start */

enum jstate { J_RUNNING, J_DONE, J_FAILED, J_STOPPED };
static const char *const jstate_name[] = {"running", "done", "failed", "stopped"};

struct counts {
	int64_t files_total, bytes_total;   /* listed */
	int64_t files_done, bytes_done;     /* read (cached now, or failed) */
	int64_t bytes_fetched;              /* asked of the under-store */
	int64_t bytes_cached_before;        /* found cached already */
	int64_t files_failed, files_not_cached, verify_mismatches;
};

struct lobj {
	TAILQ_ENTRY(lobj) link;
	char *key;
	int64_t size;
	int taken, done;
	struct counts c; /* this object's share */
};
TAILQ_HEAD(lobj_list, lobj);

struct job {
	LIST_ENTRY(job) link;
	struct loader *l;
	char id[17];
	char mount[MOUNT_NAME_MAX + 1];
	char *key;
	struct load_opts o;
	struct mount *m; /* held while the threads run */

	pthread_mutex_t mu;
	pthread_cond_t cv; /* queue changes, stop, an object done */
	enum jstate state;
	int stop;         /* the threads are asked to end */
	int listing_done; /* the lister listed everything */
	int pass;         /* 0: load; 1: verify */
	int nthreads;
	struct lobj_list objs;
	int nqueued;      /* objects in objs not yet taken */
	int ninflight;    /* objects in objs */
	char cursor[UFS_KEY_MAX + 1];
	struct counts c;  /* done objects up to the cursor */
	int64_t started_s, elapsed_ms_before, run_started_ms, finished_s;
	char last_error[512];

	pthread_mutex_t tb_mu; /* the bandwidth bucket (leaf) */
	double tb_tokens;
	int64_t tb_last_ms;

	pthread_t lister;
	pthread_t loaders[LOAD_PARALLEL_MAX];
	int nloaders;
	int refs; /* callers waiting on it outside the loader's lock (l->mu) */
};

struct loader {
	pthread_mutex_t mu; /* the job list; taken before a job's */
	void (*on_end)(void *arg, const char *id, const char *state,
	    const char *record);
	void *end_arg;
	LIST_HEAD(, job) jobs;
	int njobs;
	char *dir;
	struct mount_table *mt;
	struct meta_cache *mc;
	struct reader *rd;
	struct router *rt;
	struct objget *og;
};

/* ---- job files ------------------------------------------------------------ */

static void
counts_json(struct dbuf *b, const struct counts *c)
{
	dbuf_printf(b, "\"files_total\":%" PRId64 ",\"bytes_total\":%" PRId64
	    ",\"files_done\":%" PRId64 ",\"bytes_done\":%" PRId64
	    ",\"bytes_fetched\":%" PRId64 ",\"bytes_cached_before\":%" PRId64
	    ",\"files_failed\":%" PRId64 ",\"files_not_cached\":%" PRId64
	    ",\"verify_mismatches\":%" PRId64, c->files_total, c->bytes_total,
	    c->files_done, c->bytes_done, c->bytes_fetched, c->bytes_cached_before,
	    c->files_failed, c->files_not_cached, c->verify_mismatches);
}

static void
counts_add(struct counts *a, const struct counts *b)
{
	a->files_total += b->files_total;
	a->bytes_total += b->bytes_total;
	a->files_done += b->files_done;
	a->bytes_done += b->bytes_done;
	a->bytes_fetched += b->bytes_fetched;
	a->bytes_cached_before += b->bytes_cached_before;
	a->files_failed += b->files_failed;
	a->files_not_cached += b->files_not_cached;
	a->verify_mismatches += b->verify_mismatches;
}

static int64_t
do_elapsed_ms(const struct job *j)
{
	return j->elapsed_ms_before + (j->state == J_RUNNING && j->nthreads ?
	    now_ms() - j->run_started_ms : 0);
}

/* The job's saved state (job->mu held). */
static void
do_job_record(struct job *j, struct dbuf *b)
{
	dbuf_printf(b, "{\"id\":\"%s\",\"mount\":", j->id);
	json_put_str(b, j->mount);
	dbuf_adds(b, ",\"key\":");
	json_put_str(b, j->key);
	dbuf_printf(b, ",\"state\":\"%s\",\"pass\":%d,\"bandwidth\":%" PRId64
	    ",\"parallel\":%d,\"replicas\":%d,\"verify\":%s,\"local\":%s,\"listing_done\":%s,\"started_s\":%" PRId64
	    ",\"elapsed_ms\":%" PRId64 ",\"finished_s\":%" PRId64 ",\"cursor\":",
	    jstate_name[j->state], j->pass, j->o.bandwidth, j->o.parallel, j->o.replicas,
	    j->o.verify ? "true" : "false", j->o.local ? "true" : "false",
	    j->listing_done ? "true" : "false", j->started_s, do_elapsed_ms(j), j->finished_s);
	json_put_str(b, j->cursor);
	dbuf_adds(b, ",\"last_error\":");
	json_put_str(b, j->last_error);
	dbuf_adds(b, ",");
	counts_json(b, &j->c);
	dbuf_adds(b, "}\n");
}

static void
job_save(struct job *j)
{
	struct dbuf b;
	dbuf_init(&b, 64 * 1024);
	pthread_mutex_lock(&j->mu);
	do_job_record(j, &b);
	pthread_mutex_unlock(&j->mu);
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.json", j->l->dir, j->id);
	int rc = dbuf_error(&b) ? -ENOMEM : write_file_atomic(AT_FDCWD, path, b.p, b.len, 0);
	if (rc < 0) {
		LOG_WARN("load %s: cannot save %s: %s", j->id, path, strerror(-rc));
	}
	dbuf_free(&b);
}

/* ---- the bandwidth cap ------------------------------------------------------ */

/* Takes n bytes of the job's rate, sleeping as long as it is overdrawn
 * (a burst of at most half a second's worth builds up while idle). */
static void
throttle(struct job *j, int64_t n)
{
	int64_t bw = __atomic_load_n(&j->o.bandwidth, __ATOMIC_RELAXED);
	if (bw <= 0)
		return;
	double rate = (double)bw;
	pthread_mutex_lock(&j->tb_mu);
	int64_t now = now_ms();
	j->tb_tokens += rate * (double)(now - j->tb_last_ms) / 1000.0;
	if (j->tb_tokens > rate / 2)
		j->tb_tokens = rate / 2;
	j->tb_last_ms = now;
	j->tb_tokens -= (double)n;
	double wait_s = j->tb_tokens < 0 ? -j->tb_tokens / rate : 0;
	pthread_mutex_unlock(&j->tb_mu);
	if (wait_s > 0) {
		/* On the job's condition, so a stop does not wait it out. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t ns = ts.tv_nsec + (int64_t)((wait_s - (double)(time_t)wait_s) * 1e9);
		ts.tv_sec += (time_t)wait_s + (time_t)(ns / 1000000000);
		ts.tv_nsec = (long)(ns % 1000000000);
		pthread_mutex_lock(&j->mu);
		while (!j->stop && pthread_cond_timedwait(&j->cv, &j->mu, &ts) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&j->mu);
	}
}

/* ---- reading ------------------------------------------------------------------ */

struct rsink {
	EVP_MD_CTX *md5; /* verify: the whole object's MD5 */
	int status;
	int err;
};

static int
rs_head(void *arg, const struct objget_head *h)
{
	struct rsink *s = arg;
	s->status = h->status;
	return h->status == 200 || h->status == 206 ? 0 : -EPROTO;
}

static int
rs_mem(void *arg, const void *p, size_t n)
{
	struct rsink *s = arg;
	if (s->md5)
		EVP_DigestUpdate(s->md5, p, n);
	return 0;
}

/* A cached page's bytes: nothing to do unless verifying (the store
 * checked its CRC before handing it out). */
static int
rs_file(void *arg, int fd, off_t off, size_t n)
{
	struct rsink *s = arg;
	if (!s->md5)
		return 0;
	char buf[64 * 1024];
	while (n > 0) {
		ssize_t r = pread(fd, buf, n < sizeof(buf) ? n : sizeof(buf), off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return s->err = -EIO;
		EVP_DigestUpdate(s->md5, buf, (size_t)r);
		off += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Reads [off, off+len) of the object at version etag into s. */
static int
read_range(struct job *j, const char *key, const char *etag, int64_t off,
    int64_t len, struct rsink *s)
{
	char range[64];
	snprintf(range, sizeof(range), "bytes=%" PRId64 "-%" PRId64, off, off + len - 1);
	/* A cluster job's part reads only what this worker holds (mine()):
	 * here, never forwarded (its --replicas may go past the mount's). */
	struct objget_req rq = {.m = j->m, .path = key, .dir_enoent = 1,
	    .no_readahead = 1, .local_only = j->o.local};
	rq.pin.p = etag;
	rq.pin.n = strlen(etag);
	rq.range.p = range;
	rq.range.n = strlen(range);
	struct objget_sink sink = {rs_head, rs_file, rs_mem, s};
	int started = 0;
	int r = objget_serve(j->l->og, &rq, &sink, &started);
	return r < 0 ? r : s->err;
}

static void
set_error(struct job *j, const char *key, int err)
{
	const char *why = ufs_last_error();
	pthread_mutex_lock(&j->mu);
	snprintf(j->last_error, sizeof(j->last_error), "/%s/%s: %s", j->mount, key,
	    why[0] ? why : strerror(-err));
	pthread_mutex_unlock(&j->mu);
	LOG_WARN("load %s: %s", j->id, j->last_error);
}

/* Is page i of the object this job's to load? */
static int
mine(struct job *j, const char *key, int64_t i)
{
	return !j->o.local ||
	    router_holds(j->l->rt, j->m, key, i * reader_page_size(j->l->rd), j->o.replicas);
}

/* Did the run of pages [first, first+n) just read go into the cache?  Its
 * fetches are waited for (a page is stored just after its bytes went to
 * the reader), so the answer is exact, not a guess after a sleep.  An
 * early sign only: the count that is reported comes from confirm_pass. */
static int
run_cached(struct job *j, const char *key, const struct ufs_stat *st,
    int64_t first, int64_t n)
{
	for (int64_t k = first; k < first + n; k++)
		if (mine(j, key, k) && reader_settle(j->l->rd, j->m, key, st, k, 1) > 0)
			return 0;
	return 1;
}

/* Loads one object: each run of uncached pages in one read. */
static void
load_object(struct job *j, struct lobj *o)
{
	struct ufs_stat st;
	int64_t cached = 0;
	ufs_clear_error();
	int r = objget_stat(j->l->og, j->m, o->key, &st, &cached);
	if (r == 0 && st.is_dir)
		return;
	if (r < 0) {
		/* Vanished since the listing, or the store failed. */
		o->c.files_failed = 1;
		set_error(j, o->key, r);
		return;
	}
	char etag[UFS_ETAG_MAX];
	objkey_etag(&st, etag, sizeof(etag));
	const int64_t P = reader_page_size(j->l->rd);
	int64_t np = page_count(st.size, P);
	/* What was cached before this job touched the object (its reads ask
	 * for no read-ahead: what it fetches is what it asked for, and what
	 * the cap was paid for). */
	unsigned char *had = calloc((size_t)(np / 8 + 1), 1);
	if (!had) {
		o->c.files_failed = 1;
		set_error(j, o->key, -ENOMEM);
		return;
	}
	/* Under a cap, runs of at most a quarter second's worth: the cap is
	 * paid before each run, so a run is the largest burst. */
	int64_t run_max = RUN_PAGES;
	int64_t bw = __atomic_load_n(&j->o.bandwidth, __ATOMIC_RELAXED);
	if (bw > 0) {
		run_max = bw / 4 / P;
		run_max = run_max < 1 ? 1 : run_max > RUN_PAGES ? RUN_PAGES : run_max;
	}
	int64_t theirs = 0;
	for (int64_t i = 0; i < np; i++) {
		if (!mine(j, o->key, i))
			theirs += page_len(st.size, P, i);
		else if (reader_has_page(j->l->rd, j->m, o->key, &st, i * P)) {
			had[i / 8] |= (unsigned char)(1u << (i % 8));
			o->c.bytes_cached_before += page_len(st.size, P, i);
		}
	}
	/* Another worker's pages are not this job's bytes. */
	o->c.bytes_total -= theirs;
	for (int64_t i = 0; i < np && !__atomic_load_n(&j->stop, __ATOMIC_RELAXED);) {
		if (!mine(j, o->key, i)) {
			i++;
			continue;
		}
		if (reader_has_page(j->l->rd, j->m, o->key, &st, i * P)) {
			if (!(had[i / 8] & (1u << (i % 8))))
				/* A client's read cached it meanwhile. */
				o->c.bytes_cached_before += page_len(st.size, P, i);
			o->c.bytes_done += page_len(st.size, P, i);
			i++;
			continue;
		}
		int64_t n = 1;
		while (n < run_max && i + n < np && mine(j, o->key, i + n) &&
		    !reader_has_page(j->l->rd, j->m, o->key, &st, (i + n) * P))
			n++;
		int64_t off = i * P, len = 0;
		for (int64_t k = i; k < i + n; k++)
			len += page_len(st.size, P, k);
		throttle(j, len);
		struct rsink s = {0};
		ufs_clear_error();
		r = read_range(j, o->key, etag, off, len, &s);
		if (r < 0) {
			o->c.files_failed = 1;
			set_error(j, o->key, r);
			free(had);
			return;
		}
		o->c.bytes_fetched += len;
		o->c.bytes_done += len;
		METRIC_ADD(load_bytes, len);
		/* Every run is settled, so that at the end of the pass no
		 * fetch of the job's is still on its way to the store. */
		if (!run_cached(j, o->key, &st, i, n))
			o->c.files_not_cached = 1;
		i += n;
	}
	free(had);
	if (o->c.files_not_cached) {
		pthread_mutex_lock(&j->mu);
		snprintf(j->last_error, sizeof(j->last_error), "/%s/%s: not all of it "
		    "could be cached (capacity, the mount's quota, or pinned data)",
		    j->mount, o->key);
		pthread_mutex_unlock(&j->mu);
	}
}

/* Verify pass: the whole object read again (CRCs checked per page by the
 * store), its MD5 compared with a plain-MD5 ETag; a mismatch is dropped
 * and fetched again. */
static void
verify_object(struct job *j, struct lobj *o)
{
	struct ufs_stat st;
	int64_t cached = 0;
	int r = objget_stat(j->l->og, j->m, o->key, &st, &cached);
	if (r < 0 || st.is_dir) {
		if (r < 0) {
			o->c.files_failed = 1;
			set_error(j, o->key, r);
		}
		return;
	}
	if (j->o.local) {
		/* A cluster's job: this worker's pages only, each checked
		 * against its CRC as it is read (the whole object's MD5 needs
		 * every worker's pages). */
		const int64_t P = reader_page_size(j->l->rd);
		char etag[UFS_ETAG_MAX];
		objkey_etag(&st, etag, sizeof(etag));
		for (int64_t i = 0; i < page_count(st.size, P); i++) {
			if (!mine(j, o->key, i))
				continue;
			struct rsink s = {0};
			r = read_range(j, o->key, etag, i * P, page_len(st.size, P, i), &s);
			if (r < 0) {
				o->c.files_failed = 1;
				set_error(j, o->key, r);
				return;
			}
		}
		return;
	}
	int plain_md5 = strlen(st.etag) == 32 && strspn(st.etag, "0123456789abcdef") == 32;
	for (int attempt = 0; attempt < 2; attempt++) {
		struct rsink s = {.md5 = plain_md5 ? EVP_MD_CTX_new() : NULL};
		if (s.md5)
			EVP_DigestInit_ex(s.md5, EVP_md5(), NULL);
		char etag[UFS_ETAG_MAX];
		objkey_etag(&st, etag, sizeof(etag));
		if (attempt > 0)
			throttle(j, st.size); /* fetched again: paid for */
		if (__atomic_load_n(&j->stop, __ATOMIC_RELAXED)) {
			EVP_MD_CTX_free(s.md5);
			return;
		}
		r = st.size > 0 ? read_range(j, o->key, etag, 0, st.size, &s) : 0;
		int same = 1;
		if (r == 0 && s.md5) {
			unsigned char d[16];
			char hex[33];
			EVP_DigestFinal_ex(s.md5, d, NULL);
			for (int k = 0; k < 16; k++)
				snprintf(hex + 2 * k, 3, "%02x", d[k]);
			same = strcmp(hex, st.etag) == 0;
		}
		EVP_MD_CTX_free(s.md5);
		if (r < 0) {
			o->c.files_failed = 1;
			set_error(j, o->key, r);
			return;
		}
		if (same)
			return;
		o->c.verify_mismatches = 1;
		pthread_mutex_lock(&j->mu);
		snprintf(j->last_error, sizeof(j->last_error), "/%s/%s: cached bytes did "
		    "not match the ETag (MD5): fetched again", j->mount, o->key);
		pthread_mutex_unlock(&j->mu);
		LOG_WARN("load %s: %s", j->id, j->last_error);
		reader_drop_object(j->l->rd, objkey_id(j->m->ident, o->key), 0);
	}
	o->c.files_failed = 1; /* still different after a fresh fetch */
}

/* Moves the cursor over the done objects at the head (job->mu held). */
static void
do_commit(struct job *j)
{
	struct lobj *o;
	while ((o = TAILQ_FIRST(&j->objs)) != NULL && o->done) {
		TAILQ_REMOVE(&j->objs, o, link);
		j->ninflight--;
		counts_add(&j->c, &o->c);
		snprintf(j->cursor, sizeof(j->cursor), "%s", o->key);
		free(o->key);
		free(o);
	}
}

static void *
loader_main(void *arg)
{
	struct job *j = arg;
	pthread_mutex_lock(&j->mu);
	for (;;) {
		struct lobj *o = NULL;
		while (!j->stop) {
			if (j->nqueued > 0) {
				TAILQ_FOREACH(o, &j->objs, link)
					if (!o->taken)
						break;
				break;
			}
			if (j->listing_done)
				break;
			pthread_cond_wait(&j->cv, &j->mu);
		}
		if (!o || j->stop)
			break;
		o->taken = 1;
		j->nqueued--;
		int pass = j->pass;
		pthread_cond_broadcast(&j->cv); /* room for the lister */
		pthread_mutex_unlock(&j->mu);
		if (pass == 0)
			load_object(j, o);
		else
			verify_object(j, o);
		pthread_mutex_lock(&j->mu);
		o->c.files_done = pass == 0; /* the verify pass counts apart */
		if (j->stop && !o->c.files_failed) {
			/* Cut short: not done; a resume does it again. */
			o->done = 0;
			break;
		}
		o->done = 1;
		o->c.files_not_cached = o->c.files_not_cached && !o->c.files_failed;
		do_commit(j);
		pthread_cond_broadcast(&j->cv);
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/* ---- listing ------------------------------------------------------------------ */

struct lbatch {
	struct {
		char *key;
		int64_t size;
	} e[LIST_PAGE];
	int n;
	const char *under;
	struct job *j;
	int64_t last_save;
};

/* Under the metadata cache's lock: copy, nothing more. */
static int
lb_one(void *arg, const struct ufs_entry *e)
{
	struct lbatch *b = arg;
	if (e->is_dir || !path_under(e->key, b->under) || b->n >= LIST_PAGE)
		return 0;
	char *k = strdup(e->key);
	if (!k)
		return 1;
	b->e[b->n].key = k;
	b->e[b->n].size = e->size;
	b->n++;
	return 0;
}

/* After each page, outside the metadata cache's lock: queues the page's
 * objects (waiting while the queue is full).  -EINTR once the job is
 * asked to stop. */
static int
lb_queue(void *arg)
{
	struct lbatch *b = arg;
	struct job *j = b->j;
	for (int i = 0; i < b->n; i++) {
		struct lobj *o = calloc(1, sizeof(*o));
		if (!o) {
			free(b->e[i].key);
			continue;
		}
		o->key = b->e[i].key;
		o->size = b->e[i].size;
		if (j->pass == 0) {
			o->c.files_total = 1;
			o->c.bytes_total = o->size;
		}
		pthread_mutex_lock(&j->mu);
		while (!j->stop && j->ninflight >= QUEUE_OBJS)
			pthread_cond_wait(&j->cv, &j->mu);
		TAILQ_INSERT_TAIL(&j->objs, o, link);
		j->ninflight++;
		j->nqueued++;
		pthread_cond_broadcast(&j->cv);
		pthread_mutex_unlock(&j->mu);
		if (now_ms() - b->last_save >= SAVE_MS) {
			job_save(j);
			b->last_save = now_ms();
		}
	}
	b->n = 0;
	ufs_clear_error();
	return __atomic_load_n(&j->stop, __ATOMIC_RELAXED) ? -EINTR : 0;
}

/* ---- what is cached at the end -------------------------------------------- */

struct confirm {
	struct job *j;
	int64_t missing;
	char first[UFS_KEY_MAX + 1];
};

/* Under the metadata cache's lock: is the object's part (the pages this
 * job loads of it) all in the store now?  O(1) per object, no I/O. */
static int
confirm_one(void *arg, const struct ufs_entry *e)
{
	struct confirm *cf = arg;
	struct job *j = cf->j;
	if (e->is_dir || !path_under(e->key, j->key))
		return 0;
	const int64_t P = reader_page_size(j->l->rd);
	int64_t want = 0, np = page_count(e->size, P);
	for (int64_t i = 0; i < np; i++)
		if (mine(j, e->key, i))
			want += page_len(e->size, P, i);
	if (want > 0 && reader_object_bytes(j->l->rd, j->m, e->key) < want) {
		if (!cf->missing++)
			snprintf(cf->first, sizeof(cf->first), "%s", e->key);
	}
	return 0;
}

/* After the load pass: the files not all in the cache now (the job's own
 * later files may have pushed out earlier ones: a dataset bigger than the
 * room there is) are the job's files_not_cached.  0 or -errno. */
static int
confirm_pass(struct job *j)
{
	struct confirm *cf = calloc(1, sizeof(*cf));
	if (!cf)
		return -ENOMEM;
	cf->j = j;
	int r = meta_list_all(j->l->mc, j->m, j->key, "", LIST_PAGE, confirm_one, NULL, cf);
	if (r == 0) {
		pthread_mutex_lock(&j->mu);
		j->c.files_not_cached = cf->missing;
		if (cf->missing)
			snprintf(j->last_error, sizeof(j->last_error), "/%s/%s: not all of it "
			    "could be cached (capacity, the mount's quota, or pinned data)",
			    j->mount, cf->first);
		pthread_mutex_unlock(&j->mu);
	}
	free(cf);
	return r;
}

/* Lists the rest of the path (after the cursor) and queues its objects;
 * waits for the loaders.  0, or -errno (the listing failed, or stop). */
static int
run_pass(struct job *j)
{
	struct lbatch *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->under = j->key;
	b->j = j;
	b->last_save = now_ms();
	char start[UFS_KEY_MAX + 1];
	pthread_mutex_lock(&j->mu);
	snprintf(start, sizeof(start), "%s", j->cursor);
	pthread_mutex_unlock(&j->mu);
	ufs_clear_error();
	int rc = meta_list_all(j->l->mc, j->m, j->key, start, LIST_PAGE, lb_one, lb_queue, b);
	if (rc < 0 && rc != -EINTR)
		set_error(j, j->key, rc);
	for (int i = 0; i < b->n; i++)
		free(b->e[i].key); /* a page that failed before it was queued */
	free(b);
	/* Wait for the loaders to finish what is queued. */
	pthread_mutex_lock(&j->mu);
	j->listing_done = 1;
	pthread_cond_broadcast(&j->cv);
	while (!j->stop && j->ninflight > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&j->cv, &j->mu, &ts);
		pthread_mutex_unlock(&j->mu);
		job_save(j);
		pthread_mutex_lock(&j->mu);
	}
	if (j->stop && rc == 0)
		rc = -EINTR;
	pthread_mutex_unlock(&j->mu);
	return rc;
}

static int
start_loaders(struct job *j)
{
	pthread_mutex_lock(&j->mu);
	j->listing_done = 0;
	pthread_mutex_unlock(&j->mu);
	j->nloaders = 0;
	for (int i = 0; i < j->o.parallel; i++) {
		if (pthread_create(&j->loaders[i], NULL, loader_main, j) != 0)
			break;
		j->nloaders++;
	}
	return j->nloaders > 0 ? 0 : -EAGAIN;
}

static void
join_loaders(struct job *j)
{
	for (int i = 0; i < j->nloaders; i++)
		pthread_join(j->loaders[i], NULL);
	j->nloaders = 0;
}

static void *
lister_main(void *arg)
{
	struct job *j = arg;
	int rc = 0;
	while (rc == 0) {
		if ((rc = start_loaders(j)) < 0)
			break;
		rc = run_pass(j);
		if (rc == 0 && j->pass == 0 && !__atomic_load_n(&j->stop, __ATOMIC_RELAXED))
			confirm_pass(j); /* a listing that fails leaves the counts as they are */
		pthread_mutex_lock(&j->mu);
		if (rc < 0 || j->stop) {
			/* Loaders see stop (or the end) and leave. */
			j->stop = 1;
			pthread_cond_broadcast(&j->cv);
		}
		pthread_mutex_unlock(&j->mu);
		join_loaders(j);
		pthread_mutex_lock(&j->mu);
		int next = rc == 0 && j->pass == 0 && j->o.verify;
		if (next) {
			/* The verify pass starts over from the beginning. */
			j->pass = 1;
			j->cursor[0] = 0;
		}
		pthread_mutex_unlock(&j->mu);
		if (!next)
			break;
		job_save(j);
	}
	pthread_mutex_lock(&j->mu);
	/* Objects left in flight (a stop) are done again at the resume. */
	struct lobj *o;
	while ((o = TAILQ_FIRST(&j->objs)) != NULL) {
		TAILQ_REMOVE(&j->objs, o, link);
		free(o->key);
		free(o);
	}
	j->ninflight = j->nqueued = 0;
	j->elapsed_ms_before += now_ms() - j->run_started_ms;
	if (rc == -EINTR || (j->stop && rc == 0)) {
		j->state = J_STOPPED;
	} else if (rc < 0) {
		j->state = J_FAILED;
	} else {
		j->state = j->c.files_failed ? J_FAILED : J_DONE;
		j->finished_s = wall_sec();
	}
	struct mount *m = j->m;
	j->m = NULL;
	pthread_mutex_unlock(&j->mu);
	LOG_INFO("load %s (/%s/%s): %s", j->id, j->mount, j->key, jstate_name[j->state]);
	job_save(j);
	if (j->l->on_end) {
		struct dbuf rec;
		dbuf_init(&rec, 64 * 1024);
		pthread_mutex_lock(&j->mu);
		do_job_record(j, &rec);
		const char *st = jstate_name[j->state];
		pthread_mutex_unlock(&j->mu);
		if (!dbuf_error(&rec))
			j->l->on_end(j->l->end_arg, j->id, st, rec.p);
		dbuf_free(&rec);
	}
	mount_release(&m);
	/* Last: once nthreads is 0 the job may be freed (loader_close). */
	pthread_mutex_lock(&j->mu);
	j->nthreads = 0;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/* Starts a job's threads (j->m held, j not running). */
static int
job_run(struct job *j)
{
	pthread_mutex_lock(&j->mu);
	j->state = J_RUNNING;
	j->stop = 0;
	j->nthreads = 1;
	j->run_started_ms = now_ms();
	j->tb_last_ms = now_ms();
	j->tb_tokens = 0;
	pthread_mutex_unlock(&j->mu);
	if (pthread_create(&j->lister, NULL, lister_main, j) != 0) {
		pthread_mutex_lock(&j->mu);
		j->nthreads = 0;
		j->state = J_FAILED;
		snprintf(j->last_error, sizeof(j->last_error), "cannot start a thread");
		pthread_mutex_unlock(&j->mu);
		return -EAGAIN;
	}
	pthread_detach(j->lister);
	return 0;
}

/* ---- the job list ------------------------------------------------------------- */

static struct job *
job_new(struct loader *l, const char *mount, const char *key)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j || !(j->key = strdup(key))) {
		free(j);
		return NULL;
	}
	j->l = l;
	snprintf(j->mount, sizeof(j->mount), "%s", mount);
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	pthread_mutex_init(&j->tb_mu, NULL);
	TAILQ_INIT(&j->objs);
	return j;
}

static void
job_free(struct job *j)
{
	free(j->key);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->tb_mu);
	free(j);
}

struct loader *
loader_open(const char *state_dir, struct mount_table *mt, struct meta_cache *mc,
    struct reader *rd, struct router *rt, struct objget *og, char **err)
{
	*err = NULL;
	struct loader *l = calloc(1, sizeof(*l));
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/loads", state_dir);
	if (!l || !(l->dir = strdup(dir))) {
		free(l);
		*err = strdup("out of memory");
		return NULL;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		char msg[4200];
		snprintf(msg, sizeof(msg), "cannot create %s: %s", dir, strerror(errno));
		*err = strdup(msg);
		free(l->dir);
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->mu, NULL);
	LIST_INIT(&l->jobs);
	l->mt = mt;
	l->mc = mc;
	l->rd = rd;
	l->rt = rt;
	l->og = og;
	return l;
}

static int64_t
jint(const struct json_doc *d, const char *k)
{
	int ok = 0;
	int64_t v = json_int(d, json_obj_get(d, 0, k), &ok);
	return ok ? v : 0;
}

/* One saved job; it resumes if it was running. */
static void
resume_one(struct loader *l, const char *name)
{
	char path[4400];
	snprintf(path, sizeof(path), "%s/%s", l->dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	struct dbuf fb;
	dbuf_init(&fb, 1 << 20);
	char chunk[8192];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		dbuf_add(&fb, chunk, got);
	fclose(f);
	struct json_doc d;
	if (dbuf_error(&fb) || json_parse(&d, fb.p ? fb.p : "", fb.len) != 0 ||
	    d.toks[0].type != JSON_OBJECT) {
		LOG_WARN("load: %s is not a job file; set aside as %s.bad", path, name);
		char bad[4500];
		snprintf(bad, sizeof(bad), "%s.bad", path);
		rename(path, bad);
		dbuf_free(&fb);
		return;
	}
	char *id = json_str(&d, json_obj_get(&d, 0, "id"));
	char *mount = json_str(&d, json_obj_get(&d, 0, "mount"));
	char *key = json_str(&d, json_obj_get(&d, 0, "key"));
	char *state = json_str(&d, json_obj_get(&d, 0, "state"));
	char *cursor = json_str(&d, json_obj_get(&d, 0, "cursor"));
	char *lerr = json_str(&d, json_obj_get(&d, 0, "last_error"));
	/* The id names the file: 16 hex digits, the file's own name. */
	int id_ok = id && strlen(id) == 16 && strspn(id, "0123456789abcdef") == 16 &&
	    strncmp(name, id, 16) == 0;
	struct job *j = id_ok && mount && key && state && cursor &&
	    strlen(mount) <= MOUNT_NAME_MAX ? job_new(l, mount, key) : NULL;
	/* Already listed (a job started before the resume): not twice. */
	struct job *x;
	LIST_FOREACH(x, &l->jobs, link) {
		if (j && (strcmp(x->id, id) == 0 ||
		    (strcmp(x->mount, mount) == 0 && strcmp(x->key, key) == 0))) {
			job_free(j);
			j = NULL;
		}
	}
	if (j) {
		snprintf(j->id, sizeof(j->id), "%s", id);
		snprintf(j->cursor, sizeof(j->cursor), "%s", cursor);
		snprintf(j->last_error, sizeof(j->last_error), "%s", lerr ? lerr : "");
		j->o.bandwidth = jint(&d, "bandwidth");
		j->o.parallel = (int)jint(&d, "parallel");
		if (j->o.parallel < 1 || j->o.parallel > LOAD_PARALLEL_MAX)
			j->o.parallel = 8;
		j->o.verify = json_bool(&d, json_obj_get(&d, 0, "verify")) == 1;
		j->o.local = json_bool(&d, json_obj_get(&d, 0, "local")) == 1;
		j->o.replicas = (int)jint(&d, "replicas");
		if (j->o.replicas < 0 || j->o.replicas > MOUNT_REPLICAS_MAX)
			j->o.replicas = 0;
		j->pass = jint(&d, "pass") == 1;
		j->started_s = jint(&d, "started_s");
		j->finished_s = jint(&d, "finished_s");
		j->elapsed_ms_before = jint(&d, "elapsed_ms");
		struct counts *c = &j->c;
		c->files_total = jint(&d, "files_total");
		c->bytes_total = jint(&d, "bytes_total");
		c->files_done = jint(&d, "files_done");
		c->bytes_done = jint(&d, "bytes_done");
		c->bytes_fetched = jint(&d, "bytes_fetched");
		c->bytes_cached_before = jint(&d, "bytes_cached_before");
		c->files_failed = jint(&d, "files_failed");
		c->files_not_cached = jint(&d, "files_not_cached");
		c->verify_mismatches = jint(&d, "verify_mismatches");
		j->state = strcmp(state, "done") == 0 ? J_DONE : strcmp(state, "failed") == 0 ?
		    J_FAILED : strcmp(state, "stopped") == 0 ? J_STOPPED : J_RUNNING;
	}
	json_free(&d);
	dbuf_free(&fb); /* the text the tokens pointed into */
	free(id);
	free(mount);
	free(key);
	free(state);
	free(cursor);
	free(lerr);
	if (!j)
		return;
	if (j->state != J_RUNNING && j->finished_s && wall_sec() - j->finished_s > KEEP_DONE_S) {
		unlink(path);
		job_free(j);
		return;
	}
	LIST_INSERT_HEAD(&l->jobs, j, link);
	l->njobs++;
	if (j->state == J_RUNNING) {
		j->m = mounts_get(l->mt, j->mount, strlen(j->mount));
		if (!j->m) {
			j->state = J_FAILED;
			snprintf(j->last_error, sizeof(j->last_error), "mount /%s is gone", j->mount);
			job_save(j);
			return;
		}
		LOG_INFO("load %s (/%s/%s): resumes after '%s'", j->id, j->mount, j->key, j->cursor);
		if (job_run(j) < 0)
			mount_release(&j->m);
	}
}

void
loader_resume(struct loader *l)
{
	DIR *dh = opendir(l->dir);
	if (!dh)
		return;
	struct dirent *de;
	pthread_mutex_lock(&l->mu);
	while ((de = readdir(dh)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n == 21 && strcmp(de->d_name + 16, ".json") == 0 && l->njobs < LOAD_JOBS_MAX)
			resume_one(l, de->d_name);
		else if (n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0) {
			char p[4400];
			snprintf(p, sizeof(p), "%s/%s", l->dir, de->d_name);
			unlink(p);
		}
	}
	pthread_mutex_unlock(&l->mu);
	closedir(dh);
}

/* Asks j's threads to stop and waits for them. */
static void
job_stop_wait(struct job *j)
{
	pthread_mutex_lock(&j->mu);
	if (j->nthreads)
		j->stop = 1;
	pthread_cond_broadcast(&j->cv);
	while (j->nthreads)
		pthread_cond_wait(&j->cv, &j->mu);
	pthread_mutex_unlock(&j->mu);
}

void
loader_close(struct loader **lp)
{
	struct loader *l = *lp;
	if (!l)
		return;
	*lp = NULL;
	struct job *j;
	/* A job stopped by shutdown is saved as running: it resumes. */
	while ((j = LIST_FIRST(&l->jobs)) != NULL) {
		LIST_REMOVE(j, link);
		pthread_mutex_lock(&j->mu);
		int running = j->nthreads > 0;
		pthread_mutex_unlock(&j->mu);
		if (running) {
			job_stop_wait(j);
			pthread_mutex_lock(&j->mu);
			j->state = J_RUNNING;
			pthread_mutex_unlock(&j->mu);
			job_save(j);
		}
		job_free(j);
	}
	pthread_mutex_destroy(&l->mu);
	free(l->dir);
	free(l);
}

int
loader_start(struct loader *l, struct mount *m, const char *key,
    const struct load_opts *o, char id[17])
{
	pthread_mutex_lock(&l->mu);
	struct job *j, *old = NULL;
	LIST_FOREACH(j, &l->jobs, link) {
		if (strcmp(j->mount, m->name) == 0 && strcmp(j->key, key) == 0)
			old = j;
	}
	if (old) {
		pthread_mutex_lock(&old->mu);
		int running = old->nthreads > 0;
		pthread_mutex_unlock(&old->mu);
		snprintf(id, 17, "%s", old->id);
		if (running || old->refs) {
			pthread_mutex_unlock(&l->mu);
			return -EEXIST;
		}
		/* Run the same path again: a new job in its place. */
		LIST_REMOVE(old, link);
		l->njobs--;
		char p[4400];
		snprintf(p, sizeof(p), "%s/%s.json", l->dir, old->id);
		unlink(p);
		job_free(old);
	}
	if (l->njobs >= LOAD_JOBS_MAX) {
		/* Make room: the job that ended longest ago goes. */
		struct job *oldest = NULL;
		LIST_FOREACH(j, &l->jobs, link) {
			pthread_mutex_lock(&j->mu);
			int idle = !j->nthreads && !j->refs;
			pthread_mutex_unlock(&j->mu);
			if (idle && (!oldest || j->finished_s < oldest->finished_s))
				oldest = j;
		}
		if (!oldest) {
			pthread_mutex_unlock(&l->mu);
			return -EAGAIN;
		}
		LIST_REMOVE(oldest, link);
		l->njobs--;
		char op[4400];
		snprintf(op, sizeof(op), "%s/%s.json", l->dir, oldest->id);
		unlink(op);
		job_free(oldest);
	}
	j = job_new(l, m->name, key);
	if (!j) {
		pthread_mutex_unlock(&l->mu);
		return -ENOMEM;
	}
	uint64_t r = hash64(key, strlen(key), (uint64_t)now_ms() ^ m->ident ^ (uint64_t)getpid());
	if (o->id[0])
		snprintf(j->id, sizeof(j->id), "%s", o->id); /* the cluster's */
	else
		snprintf(j->id, sizeof(j->id), "%016" PRIx64, r);
	j->o = *o;
	if (j->o.parallel < 1 || j->o.parallel > LOAD_PARALLEL_MAX)
		j->o.parallel = 8;
	j->started_s = wall_sec();
	j->m = mount_ref(m);
	LIST_INSERT_HEAD(&l->jobs, j, link);
	l->njobs++;
	snprintf(id, 17, "%s", j->id);
	job_save(j);
	int rc = job_run(j);
	if (rc < 0)
		mount_release(&j->m);
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void
loader_set_end_hook(struct loader *l, void (*fn)(void *arg, const char *id,
    const char *state, const char *record), void *arg)
{
	l->on_end = fn;
	l->end_arg = arg;
}

int
loader_set_bandwidth(struct loader *l, const char *id, int64_t bw)
{
	pthread_mutex_lock(&l->mu);
	struct job *j;
	LIST_FOREACH(j, &l->jobs, link)
		if (strcmp(j->id, id) == 0)
			break;
	int running = 0;
	if (j) {
		pthread_mutex_lock(&j->mu);
		running = j->state == J_RUNNING;
		if (running && bw > 0)
			__atomic_store_n(&j->o.bandwidth, bw, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&j->mu);
	}
	pthread_mutex_unlock(&l->mu);
	return running;
}

int
loader_has(struct loader *l, const char *id)
{
	pthread_mutex_lock(&l->mu);
	struct job *j;
	LIST_FOREACH(j, &l->jobs, link)
		if (strcmp(j->id, id) == 0)
			break;
	pthread_mutex_unlock(&l->mu);
	return j != NULL;
}

int
loader_stop(struct loader *l, const char *id)
{
	pthread_mutex_lock(&l->mu);
	struct job *j;
	LIST_FOREACH(j, &l->jobs, link)
		if (strcmp(j->id, id) == 0)
			break;
	if (j)
		j->refs++; /* loader_start frees no job with refs */
	pthread_mutex_unlock(&l->mu);
	if (!j)
		return -ENOENT;
	job_stop_wait(j);
	pthread_mutex_lock(&l->mu);
	j->refs--;
	pthread_mutex_unlock(&l->mu);
	return 0;
}

void
loader_json(struct loader *l, const char *id, struct dbuf *b)
{
	dbuf_adds(b, "{\"jobs\":[");
	int n = 0;
	pthread_mutex_lock(&l->mu);
	struct job *j;
	LIST_FOREACH(j, &l->jobs, link) {
		if (id && strcmp(j->id, id) != 0)
			continue;
		pthread_mutex_lock(&j->mu);
		struct counts c = j->c;
		struct lobj *o;
		TAILQ_FOREACH(o, &j->objs, link)
			counts_add(&c, &o->c);
		int64_t el = do_elapsed_ms(j);
		/* The rate of bytes done this run; what is left at that rate. */
		double rate = el > 0 ? (double)c.bytes_done * 1000.0 / (double)el : 0;
		int64_t eta = rate > 0 && j->listing_done ?
		    (int64_t)((double)(c.bytes_total - c.bytes_done) / rate) : -1;
		dbuf_printf(b, "%s{\"id\":\"%s\",\"path\":", n++ ? "," : "", j->id);
		char path[1200];
		snprintf(path, sizeof(path), "/%s%s%s", j->mount, j->key[0] ? "/" : "", j->key);
		json_put_str(b, path);
		dbuf_printf(b, ",\"state\":\"%s\",\"pass\":\"%s\",\"listing_done\":%s,",
		    jstate_name[j->state], j->pass ? "verify" : "load",
		    j->listing_done || j->state != J_RUNNING ? "true" : "false");
		counts_json(b, &c);
		dbuf_printf(b, ",\"rate\":%.0f,\"eta_s\":%" PRId64 ",\"elapsed_s\":%.1f"
		    ",\"bandwidth\":%" PRId64 ",\"parallel\":%d,\"replicas\":%d,\"verify\":%s,\"local\":%s"
		    ",\"last_error\":", rate, eta, (double)el / 1000.0, j->o.bandwidth,
		    j->o.parallel, j->o.replicas, j->o.verify ? "true" : "false", j->o.local ? "true" : "false");
		json_put_str(b, j->last_error);
		dbuf_adds(b, "}");
		pthread_mutex_unlock(&j->mu);
	}
	pthread_mutex_unlock(&l->mu);
	dbuf_adds(b, "]}");
}
