/*
 * pagestore.c: the local page cache on disk (see pagestore.h for the
 * contract).  Called from any thread: worker request threads (get, has),
 * fill threads (put), control paths (drop_object, stats).
 *
 * In memory, one mutex (ps->mu) guards: an intrusive hash (htab.h, ps->etab)
 * of entries keyed by (obj, ver, idx); a per-directory LRU (a TAILQ, most
 * recent first) of READY entries; a per-object LIST of READY entries (ps_obj
 * nodes in a second htab, ps->otab) so drop_object and cached_bytes touch
 * only that object's pages; and the byte accounting.
 *
 * An entry is in one of three states:
 *   PENDING  a put has reserved its bytes and is writing the file; not
 *            servable, not in the LRU/object lists, never evicted.  A second
 *            put of the same key sees it and returns 0 (the first one wins).
 *   READY    on disk under its real name; in the LRU and object lists.
 *   DYING    evicted or dropped: its bytes are already released and it is off
 *            the lists, but it stays in the hash until the thread that killed
 *            it has unlinked the file (done without the mutex).  A put of the
 *            same key waits on ps->cond for it to go, so an unlink never
 *            deletes a newer file of the same name.  Meanwhile it is on its
 *            killer's batch (an SLIST through the same bytes as the LRU link:
 *            the two never hold an entry at once), which only the killer
 *            touches.
 * Invariants (under mu): every PENDING, READY and DYING entry is in etab
 * exactly once (ps->etab.n counts them), free slab entries are in none;
 * an entry is in its dir's LRU and in its object's list iff it is READY,
 * and a ps_obj is in otab iff its list is not empty; dir->used = sum of
 * (HDR_SIZE + len) over the dir's PENDING and READY entries; ps->npages =
 * number of READY entries.
 *
 * get does its file I/O without the mutex, remembering the entry's gen (a
 * per-insert counter); whatever it learns (verified, corrupt, missing) is
 * applied afterwards only if the entry still has that gen.  get makes a page
 * most recently used and, at most once a minute per page, bumps the file's
 * mtime, which is what orders the LRU after a restart; has() is a probe and
 * changes nothing.
 *
 * Memory: an entry is 80 bytes, allocated from slabs (no malloc overhead),
 * plus 8 bytes of hash bucket at load factor <= 1, plus a 24-byte ps_obj
 * node (malloc'd) per cached object: about 90 bytes per page.  No entry
 * stores its hash (htab's hashof recomputes it from the key when the table
 * grows).  The hash doubles under the mutex when full (a pause of some ms
 * per million pages).
 *
 * File format: HDR_SIZE (64) bytes of header, little-endian:
 *   0 magic "FERRYPG1" | 8 u32 format (1) | 12 u32 data length |
 *   16 u64 obj | 24 u64 ver | 32 u64 idx | 40 u32 crc32c(data) |
 *   44 u32 page_size | 48..59 zero | 60 u32 crc32c(bytes 0..59)
 * then the data.  The 256 subdirs are made on first use.  Each dir also
 * holds "pagestore.meta" with the page size;
 * page indexes mean nothing under another page size, so pages of a dir
 * whose page size changed (or which has no meta file) are deleted at open.
 */
#include "store/pagestore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/htab.h"
#include "common/log.h"
#include "common/util.h"
#include "common/vas.h"

#define HDR_SIZE 64
#define HDR_MAGIC "FERRYPG1"
#define HDR_FORMAT 1u
#define META_NAME "pagestore.meta"
#define META_TMP "pagestore.meta.tmp"
#define MAX_DIRS 1024
#define MAX_PAGE_SIZE (1u << 30)
#define VERIFY_CHUNK (256 * 1024)
/* Pages up to this size are checked with one pread and served from memory. */
#define SMALL_PAGE_MAX (128 * 1024)
#define TOUCH_INTERVAL_S 60
#define SLAB_ENTRIES 1024
#define INITIAL_BUCKETS 1024
/* "xx/" + 16 + "-" + 16 + "-" + 16 + ".pg" + NUL; temp names add ".tmp.<tid>" */
#define REL_PATH_MAX 64
#define TMP_PATH_MAX 96
#define NAME_LEN 53 /* 16+1+16+1+16+3 */

enum { ST_PENDING = 1, ST_READY, ST_DYING };

struct ps_entry {
	struct page_key k;
	union {
		struct hnode hn;              /* in use: in ps->etab */
		SLIST_ENTRY(ps_entry) fnext;  /* free: on ps->free_entries */
	};
	union {
		TAILQ_ENTRY(ps_entry) lru;    /* READY: its dir's LRU */
		SLIST_ENTRY(ps_entry) dead;   /* DYING: its killer's batch */
	};
	LIST_ENTRY(ps_entry) olink;           /* READY: its object's list */
	uint32_t gen;
	uint32_t len;     /* data bytes; the file is HDR_SIZE + len */
	uint32_t touched; /* wall seconds of the file's mtime, roughly */
	uint16_t dir;
	uint8_t state;
	uint8_t verified : 1; /* CRC checked since load (--page-verify once) */
	uint8_t fresh : 1;    /* fetched ahead of its reader, not yet got */
};
_Static_assert(sizeof(struct ps_entry) == 80, "ps_entry grew");

TAILQ_HEAD(ps_lru, ps_entry);
SLIST_HEAD(ps_batch, ps_entry);
SLIST_HEAD(ps_free, ps_entry);

struct ps_obj {
	uint64_t obj;
	struct hnode hn;                      /* in ps->otab */
	LIST_HEAD(, ps_entry) pages;          /* never empty while in otab */
};
_Static_assert(sizeof(struct ps_obj) == 24, "ps_obj grew");

struct ps_slab {
	struct ps_slab *next;
	struct ps_entry e[SLAB_ENTRIES];
};

struct ps_dir {
	char *path;
	int fd;                 /* O_DIRECTORY; all file ops are relative to it */
	int64_t capacity;
	int64_t used;           /* PENDING + READY bytes */
	struct ps_lru lru;      /* READY entries, most recent first; the
	                         * last is evicted first */
};

struct pagestore {
	pthread_mutex_t mu;
	pthread_cond_t cond; /* signalled when DYING entries leave the hash */
	uint32_t page_size;
	enum pagestore_verify verify;
	int ndirs;
	struct ps_dir *dirs;
	uint64_t total_capacity;

	struct htab etab; /* entries (all states), by key_hash */
	struct htab otab; /* ps_obj nodes, by obj_hash */
	struct ps_slab *slabs;
	struct ps_free free_entries;
	uint32_t gen;
	pthread_mutex_t buf_mu; /* the small-page buffer pool (leaf) */
	void *bufs[64];
	int nbufs;

	int64_t npages;
	int64_t evicted_bytes_total;
	int64_t evicted_pages_total;
	int64_t checksum_failures_total;
	int64_t write_errors_total;
};

/* ---- little helpers ------------------------------------------------- */

static int64_t
file_size(uint32_t len)
{
	return (int64_t)HDR_SIZE + len;
}

static void
put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
get_le32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t
get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t
key_hash(const struct page_key *k)
{
	return hash64(k, sizeof(*k), 0x70616765u);
}

static uint64_t
obj_hash(uint64_t obj)
{
	return hash64(&obj, sizeof(obj), 0x6f626aU);
}

static uint64_t
entry_hashof(const struct hnode *n)
{
	return key_hash(&container_of(n, struct ps_entry, hn)->k);
}

static uint64_t
obj_hashof(const struct hnode *n)
{
	return obj_hash(container_of(n, struct ps_obj, hn)->obj);
}

static int
key_eq(const struct page_key *a, const struct page_key *b)
{
	return a->obj == b->obj && a->ver == b->ver && a->idx == b->idx;
}

/* "xx/<obj>-<ver>-<idx>.pg", relative to the dir's fd. */
static void
rel_path(char *out, size_t n, const struct page_key *k)
{
	snprintf(out, n, "%02x/%016" PRIx64 "-%016" PRIx64 "-%016" PRIx64 ".pg",
	    (unsigned)(k->obj >> 56), k->obj, k->ver, k->idx);
}

static uint32_t
wall_sec32(void)
{
	return (uint32_t)wall_sec();
}

static char *errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A malloc'd message for pagestore_open's *err (NULL if out of memory). */
static char *
errmsg(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return strdup(buf);
}

/* ---- entry allocation (slabs) ---------------------------------------- */

static struct ps_entry *
do_entry_alloc(struct pagestore *ps)
{
	if (SLIST_EMPTY(&ps->free_entries)) {
		struct ps_slab *s = malloc(sizeof(*s));
		if (!s)
			return NULL;
		s->next = ps->slabs;
		ps->slabs = s;
		for (int i = SLAB_ENTRIES - 1; i >= 0; i--)
			SLIST_INSERT_HEAD(&ps->free_entries, &s->e[i], fnext);
	}
	struct ps_entry *e = SLIST_FIRST(&ps->free_entries);
	SLIST_REMOVE_HEAD(&ps->free_entries, fnext);
	memset(e, 0, sizeof(*e));
	return e;
}

static void
do_entry_free(struct pagestore *ps, struct ps_entry *e)
{
	e->state = 0;
	SLIST_INSERT_HEAD(&ps->free_entries, e, fnext);
}

/* ---- key hash --------------------------------------------------------- */

static struct ps_entry *
do_lookup(struct pagestore *ps, const struct page_key *k)
{
	struct hnode *n;
	for (HTAB_FOREACH(&ps->etab, key_hash(k), n)) {
		struct ps_entry *e = container_of(n, struct ps_entry, hn);
		if (key_eq(&e->k, k))
			return e;
	}
	return NULL;
}

static void
do_hash_insert(struct pagestore *ps, struct ps_entry *e)
{
	htab_insert(&ps->etab, &e->hn, key_hash(&e->k));
}

static void
do_hash_remove(struct pagestore *ps, struct ps_entry *e)
{
	int found = htab_remove(&ps->etab, &e->hn, key_hash(&e->k));
	VAS_ASSERT(found);
}

/* ---- object index ------------------------------------------------------ */

static struct ps_obj *
do_obj_find(struct pagestore *ps, uint64_t obj)
{
	struct hnode *n;
	for (HTAB_FOREACH(&ps->otab, obj_hash(obj), n)) {
		struct ps_obj *o = container_of(n, struct ps_obj, hn);
		if (o->obj == obj)
			return o;
	}
	return NULL;
}

/*
 * Links e into its object's list.  *spare is a node the caller allocated
 * beforehand (so this cannot fail under the mutex); it is consumed (set to
 * NULL) when the object is new.
 */
static void
do_obj_add(struct pagestore *ps, struct ps_entry *e, struct ps_obj **spare)
{
	struct ps_obj *o = do_obj_find(ps, e->k.obj);
	if (!o) {
		VAS_ASSERT(*spare != NULL);
		o = *spare;
		*spare = NULL;
		o->obj = e->k.obj;
		LIST_INIT(&o->pages);
		htab_insert(&ps->otab, &o->hn, obj_hash(o->obj));
	}
	LIST_INSERT_HEAD(&o->pages, e, olink);
}

/* Unlinks e from its object's list; the object goes with its last page. */
static void
do_obj_remove(struct pagestore *ps, struct ps_entry *e)
{
	/* Only the last entry of a list can be its only one: look the
	 * object up just then. */
	int last = LIST_NEXT(e, olink) == NULL;
	LIST_REMOVE(e, olink);
	if (last) {
		struct ps_obj *o = do_obj_find(ps, e->k.obj);
		VAS_ASSERT(o != NULL);
		if (LIST_EMPTY(&o->pages)) {
			htab_remove(&ps->otab, &o->hn, obj_hash(o->obj));
			free(o);
		}
	}
	memset(&e->olink, 0, sizeof(e->olink));
}

/* ---- state transitions ------------------------------------------------ */

static void
do_make_ready(struct pagestore *ps, struct ps_entry *e, struct ps_obj **spare)
{
	e->state = ST_READY;
	TAILQ_INSERT_HEAD(&ps->dirs[e->dir].lru, e, lru);
	do_obj_add(ps, e, spare);
	ps->npages++;
}

/*
 * READY -> DYING: off the lists, bytes released, pushed on *batch (through
 * e->dead, the LRU link's bytes) for the caller to unlink and then reap.
 */
static void
do_kill(struct pagestore *ps, struct ps_entry *e, struct ps_batch *batch)
{
	VAS_ASSERT(e->state == ST_READY);
	struct ps_dir *d = &ps->dirs[e->dir];
	TAILQ_REMOVE(&d->lru, e, lru);
	do_obj_remove(ps, e);
	d->used -= file_size(e->len);
	ps->npages--;
	e->state = ST_DYING;
	SLIST_INSERT_HEAD(batch, e, dead);
}

/*
 * Unlinks the files of a batch of DYING entries (no lock held; only the
 * batch's owner touches them), then removes them from the hash.
 */
static void
unlink_and_reap(struct pagestore *ps, struct ps_batch *batch, int unlink_files)
{
	if (SLIST_EMPTY(batch))
		return;
	char rel[REL_PATH_MAX];
	struct ps_entry *e;
	if (unlink_files) {
		SLIST_FOREACH(e, batch, dead) {
			rel_path(rel, sizeof(rel), &e->k);
			if (unlinkat(ps->dirs[e->dir].fd, rel, 0) < 0 &&
			    errno != ENOENT)
				LOG_WARN("pagestore: unlink %s/%s: %s",
				    ps->dirs[e->dir].path, rel, strerror(errno));
		}
	}
	pthread_mutex_lock(&ps->mu);
	while ((e = SLIST_FIRST(batch)) != NULL) {
		SLIST_REMOVE_HEAD(batch, dead);
		VAS_ASSERT(e->state == ST_DYING);
		do_hash_remove(ps, e);
		do_entry_free(ps, e);
	}
	pthread_cond_broadcast(&ps->cond);
	pthread_mutex_unlock(&ps->mu);
}

/* ---- page file I/O ------------------------------------------------------ */

static void
hdr_encode(unsigned char *h, const struct page_key *k, uint32_t len,
    uint32_t data_crc, uint32_t page_size)
{
	memset(h, 0, HDR_SIZE);
	memcpy(h, HDR_MAGIC, 8);
	put_le32(h + 8, HDR_FORMAT);
	put_le32(h + 12, len);
	put_le64(h + 16, k->obj);
	put_le64(h + 24, k->ver);
	put_le64(h + 32, k->idx);
	put_le32(h + 40, data_crc);
	put_le32(h + 44, page_size);
	put_le32(h + 60, crc32c(0, h, 60));
}

static int
pwritev_all(int fd, struct iovec *iov, int n)
{
	off_t off = 0;
	while (n > 0) {
		ssize_t w = pwritev(fd, iov, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		off += w;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Writes the page to a temp name and renames it into place.  -errno. */
static int
write_page_file(struct pagestore *ps, int dirfd, const struct page_key *k,
    const void *data, uint32_t len)
{
	char rel[REL_PATH_MAX], tmp[TMP_PATH_MAX];
	rel_path(rel, sizeof(rel), k);
	static _Thread_local pid_t tid;
	if (!tid)
		tid = gettid();
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", rel, (int)tid);

	int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT) {
		/* Subdirs are made on first use (or were removed by hand). */
		char sub[3] = {rel[0], rel[1], 0};
		if (mkdirat(dirfd, sub, 0700) == 0 || errno == EEXIST)
			fd = openat(dirfd, tmp,
			    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		else
			errno = ENOENT;
	}
	if (fd < 0)
		return -errno;

	unsigned char h[HDR_SIZE];
	hdr_encode(h, k, len, crc32c(0, data, len), ps->page_size);
	struct iovec iov[2] = {
	    {.iov_base = h, .iov_len = HDR_SIZE},
	    {.iov_base = (void *)data, .iov_len = len},
	};
	int rc = pwritev_all(fd, iov, 2);
	if (close(fd) < 0 && rc == 0)
		rc = -errno; /* NFS and friends report write errors here */
	if (rc == 0 && renameat(dirfd, tmp, dirfd, rel) < 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(dirfd, tmp, 0);
	return rc;
}

/* Where a SIGBUS raised while this thread reads a mapped page jumps to. */
static __thread sigjmp_buf *volatile bus_jmp;

static void
on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	if (bus_jmp)
		siglongjmp(*bus_jmp, 1);
	signal(sig, SIG_DFL); /* not ours: die as we would have */
	raise(sig);
}

static void
sigbus_setup(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

static void
install_sigbus_handler(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, sigbus_setup);
}

/* CRC of mapped page data; -EBADMSG if touching it raised SIGBUS. */
static int
crc_mapped(const unsigned char *p, uint32_t len, uint32_t *crcp)
{
	sigjmp_buf jb;
	if (sigsetjmp(jb, 1) != 0) {
		bus_jmp = NULL;
		return -EBADMSG;
	}
	bus_jmp = &jb;
	*crcp = crc32c(0, p, len);
	bus_jmp = NULL;
	return 0;
}

/* CRC of a page's data read with pread (when it cannot be mapped). */
static int
check_data_pread(int fd, uint32_t len, uint32_t *crcp)
{
	size_t bufsz = len < VERIFY_CHUNK ? len : VERIFY_CHUNK;
	unsigned char *buf = malloc(bufsz);
	if (!buf)
		return -ENOMEM;
	uint32_t crc = 0, done = 0;
	int rc = 0;
	while (done < len) {
		size_t want = len - done < bufsz ? len - done : bufsz;
		ssize_t r = pread(fd, buf, want, HDR_SIZE + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = -EBADMSG;
			break;
		}
		crc = crc32c(crc, buf, (size_t)r);
		done += (uint32_t)r;
	}
	free(buf);
	*crcp = crc;
	return rc;
}

static int
header_ok(struct pagestore *ps, const unsigned char *h, const struct page_key *k,
    uint32_t len)
{
	struct page_key hk = {get_le64(h + 16), get_le64(h + 24), get_le64(h + 32)};
	return memcmp(h, HDR_MAGIC, 8) == 0 && get_le32(h + 8) == HDR_FORMAT &&
	    get_le32(h + 60) == crc32c(0, h, 60) && get_le32(h + 12) == len &&
	    get_le32(h + 44) == ps->page_size && key_eq(&hk, k);
}

/*
 * Small pages are checked with one pread into a buffer that the page_ref
 * then owns (ref->buf), and served from it.  Buffers come from a bounded
 * free list, so a stream of small reads allocates nothing.
 */
#define SMALL_BUF_SIZE (SMALL_PAGE_MAX + HDR_SIZE)
#define SMALL_BUF_POOL 64

static unsigned char *
small_buf_get(struct pagestore *ps)
{
	unsigned char *b = NULL;
	pthread_mutex_lock(&ps->buf_mu);
	if (ps->nbufs > 0)
		b = ps->bufs[--ps->nbufs];
	pthread_mutex_unlock(&ps->buf_mu);
	return b ? b : malloc(SMALL_BUF_SIZE);
}

static void
small_buf_put(struct pagestore *ps, void *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&ps->buf_mu);
	if (ps->nbufs < SMALL_BUF_POOL) {
		ps->bufs[ps->nbufs++] = b;
		b = NULL;
	}
	pthread_mutex_unlock(&ps->buf_mu);
	free(b);
}

/*
 * Checks the header and the data CRC of an open page file.  0 if good,
 * -EBADMSG if not (including read errors and short files).  For a small
 * page, *buf gets the buffer (the caller's to put back) and *data the
 * checked bytes in it.
 */
static int
check_page_file(struct pagestore *ps, int fd, const struct page_key *k,
    uint32_t len, const unsigned char **data, void **buf)
{
	*data = NULL;
	*buf = NULL;
	if (len <= SMALL_PAGE_MAX) {
		unsigned char *b = small_buf_get(ps);
		*buf = b;
		if (b) {
			size_t want = HDR_SIZE + (size_t)len, got = 0;
			while (got < want) {
				ssize_t r = pread(fd, b + got, want - got, (off_t)got);
				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0)
					return -EBADMSG;
				got += (size_t)r;
			}
			if (!header_ok(ps, b, k, len) ||
			    crc32c(0, b + HDR_SIZE, len) != get_le32(b + 40))
				return -EBADMSG;
			*data = b + HDR_SIZE;
			return 0;
		}
	}
	unsigned char h[HDR_SIZE];
	if (pread(fd, h, HDR_SIZE, 0) != HDR_SIZE || !header_ok(ps, h, k, len))
		return -EBADMSG;

	/* Checksum a large page where it lies, in the page cache: mapping it
	 * costs no copy (a pread into a buffer would copy every byte once
	 * more before sendfile sends it). */
	uint32_t crc = 0;
	int rc = 0;
	if (len > 0) {
		size_t maplen = HDR_SIZE + (size_t)len;
		void *map = mmap(NULL, maplen, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
		if (map != MAP_FAILED) {
			/* A disk read error or a file truncated behind our back
			 * raises SIGBUS while touching the mapping: catch it
			 * and treat the page as bad, never crash. */
			rc = crc_mapped((const unsigned char *)map + HDR_SIZE, len, &crc);
			munmap(map, maplen);
		} else {
			rc = check_data_pread(fd, len, &crc);
		}
	}
	if (rc == 0 && crc != get_le32(h + 40))
		rc = -EBADMSG;
	return rc;
}

/*
 * get found the file of (k, gen) bad or missing: if the entry is still that
 * one, remove it (and the file, unless it is already gone).
 */
static void
forget_page(struct pagestore *ps, const struct page_key *k, uint32_t gen,
    int corrupt)
{
	struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
	pthread_mutex_lock(&ps->mu);
	if (corrupt)
		ps->checksum_failures_total++;
	struct ps_entry *e = do_lookup(ps, k);
	if (e && e->gen == gen && e->state == ST_READY)
		do_kill(ps, e, &batch);
	pthread_mutex_unlock(&ps->mu);
	unlink_and_reap(ps, &batch, corrupt);
}

/* ---- public API ---------------------------------------------------------- */

uint32_t
pagestore_page_size(const struct pagestore *ps)
{
	return ps->page_size;
}

void
page_ref_release(struct page_ref *ref)
{
	if (!ref)
		return;
	if (ref->fd >= 0) {
		close(ref->fd);
		ref->fd = -1;
	}
	if (ref->buf) {
		small_buf_put(ref->ps, ref->buf);
		ref->buf = NULL;
	}
	ref->data = NULL;
}

int
pagestore_has(struct pagestore *ps, const struct page_key *k)
{
	pthread_mutex_lock(&ps->mu);
	struct ps_entry *e = do_lookup(ps, k);
	int present = e && e->state == ST_READY;
	pthread_mutex_unlock(&ps->mu);
	return present;
}

int
pagestore_get(struct pagestore *ps, const struct page_key *k,
    struct page_ref *ref)
{
	if (!ps || !k || !ref)
		return -EINVAL;
	memset(ref, 0, sizeof(*ref));
	ref->fd = -1;
	ref->ps = ps;

	pthread_mutex_lock(&ps->mu);
	struct ps_entry *e = do_lookup(ps, k);
	if (!e || e->state != ST_READY) {
		pthread_mutex_unlock(&ps->mu);
		return -ENOENT;
	}
	int fresh = e->fresh;
	e->fresh = 0;
	struct ps_dir *d = &ps->dirs[e->dir];
	if (TAILQ_FIRST(&d->lru) != e) {
		TAILQ_REMOVE(&d->lru, e, lru);
		TAILQ_INSERT_HEAD(&d->lru, e, lru);
	}
	int di = e->dir, dirfd = d->fd;
	uint32_t gen = e->gen, len = e->len;
	int verify = ps->verify == PAGESTORE_VERIFY_ALWAYS || !e->verified;
	uint32_t now = wall_sec32();
	int touch = now - e->touched >= TOUCH_INTERVAL_S;
	if (touch)
		e->touched = now;
	pthread_mutex_unlock(&ps->mu);

	char rel[REL_PATH_MAX];
	rel_path(rel, sizeof(rel), k);
	int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		if (err == ENOENT) {
			/* Removed behind our back (or just evicted). */
			forget_page(ps, k, gen, 0);
			return -ENOENT;
		}
		if (err != EMFILE && err != ENFILE && err != ENOMEM && err != EINTR) {
			/* Not a page we can ever open (a link loop, a
			 * permission or I/O error): drop it, fetch it again. */
			LOG_WARN("pagestore: %s/%s cannot be opened (%s); dropped",
			    ps->dirs[di].path, rel, strerror(err));
			forget_page(ps, k, gen, 1);
			return -ENOENT;
		}
		return -err;
	}
	struct stat st;
	int bad = fstat(fd, &st) < 0 || st.st_size != file_size(len);
	const unsigned char *data = NULL;
	void *buf = NULL;
	if (!bad && verify) {
		int rc = check_page_file(ps, fd, k, len, &data, &buf);
		if (rc == -ENOMEM) {
			small_buf_put(ps, buf);
			close(fd);
			return rc;
		}
		bad = rc < 0;
	}
	if (bad) {
		small_buf_put(ps, buf);
		close(fd);
		LOG_WARN("pagestore: %s/%s is corrupt or truncated; dropped",
		    ps->dirs[di].path, rel);
		forget_page(ps, k, gen, 1);
		return -ENOENT;
	}
	if (verify && ps->verify == PAGESTORE_VERIFY_ONCE) {
		pthread_mutex_lock(&ps->mu);
		e = do_lookup(ps, k);
		if (e && e->gen == gen)
			e->verified = 1;
		pthread_mutex_unlock(&ps->mu);
	}
	/* mtime carries the LRU order across restarts; refresh it lazily. */
	if (touch)
		(void)futimens(fd, NULL);
	ref->fd = fd;
	ref->off = HDR_SIZE;
	ref->len = len;
	ref->data = data;
	ref->buf = buf;
	ref->fresh = fresh;
	return 0;
}

/* Placement weighted by capacity, so a bigger dir gets more pages. */
static int
pick_dir(const struct pagestore *ps, const struct page_key *k)
{
	if (ps->ndirs == 1)
		return 0;
	uint64_t x = key_hash(k) % ps->total_capacity;
	for (int i = 0; i < ps->ndirs; i++) {
		if (x < (uint64_t)ps->dirs[i].capacity)
			return i;
		x -= (uint64_t)ps->dirs[i].capacity;
	}
	return ps->ndirs - 1;
}

static int
put_page(struct pagestore *ps, const struct page_key *k, const void *data,
    uint32_t len, int fresh);

int
pagestore_put(struct pagestore *ps, const struct page_key *k,
    const void *data, uint32_t len)
{
	return put_page(ps, k, data, len, 0);
}

int
pagestore_put_fresh(struct pagestore *ps, const struct page_key *k,
    const void *data, uint32_t len)
{
	return put_page(ps, k, data, len, 1);
}

void
pagestore_unfresh(struct pagestore *ps, const struct page_key *k)
{
	pthread_mutex_lock(&ps->mu);
	struct ps_entry *e = do_lookup(ps, k);
	if (e)
		e->fresh = 0;
	pthread_mutex_unlock(&ps->mu);
}

/* pagestore_put and _put_fresh. */
static int
put_page(struct pagestore *ps, const struct page_key *k, const void *data,
    uint32_t len, int fresh)
{
	if (!ps || !k || (!data && len))
		return -EINVAL;
	if (len > ps->page_size)
		return -EINVAL;
	int64_t fsize = file_size(len);
	struct ps_obj *spare = malloc(sizeof(*spare));
	if (!spare)
		return -ENOMEM;

	pthread_mutex_lock(&ps->mu);
	struct ps_entry *e;
	while ((e = do_lookup(ps, k)) != NULL) {
		if (e->state != ST_DYING) {
			/* Present, or another put is writing it. */
			pthread_mutex_unlock(&ps->mu);
			free(spare);
			return 0;
		}
		pthread_cond_wait(&ps->cond, &ps->mu);
	}
	int di = pick_dir(ps, k);
	struct ps_dir *d = &ps->dirs[di];
	if (fsize > d->capacity) {
		pthread_mutex_unlock(&ps->mu);
		free(spare);
		return -ENOSPC;
	}
	struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
	struct ps_entry *v;
	while (d->used + fsize > d->capacity &&
	    (v = TAILQ_LAST(&d->lru, ps_lru)) != NULL) {
		ps->evicted_bytes_total += file_size(v->len);
		ps->evicted_pages_total++;
		do_kill(ps, v, &batch);
	}
	int rc = 0;
	if (d->used + fsize > d->capacity)
		rc = -ENOSPC; /* the rest is reserved by puts in flight */
	else if (!(e = do_entry_alloc(ps)))
		rc = -ENOMEM;
	if (rc == 0) {
		e->k = *k;
		e->len = len;
		e->dir = (uint16_t)di;
		e->state = ST_PENDING;
		e->gen = ++ps->gen;
		e->verified = 1; /* we wrote these bytes ourselves */
		e->fresh = fresh ? 1 : 0;
		e->touched = wall_sec32();
		do_hash_insert(ps, e);
		d->used += fsize;
	}
	int dirfd = d->fd;
	pthread_mutex_unlock(&ps->mu);

	unlink_and_reap(ps, &batch, 1);
	if (rc < 0) {
		free(spare);
		return rc;
	}

	rc = write_page_file(ps, dirfd, k, data, len);

	pthread_mutex_lock(&ps->mu);
	VAS_ASSERT(e->state == ST_PENDING && key_eq(&e->k, k));
	if (rc == 0) {
		do_make_ready(ps, e, &spare);
	} else {
		ps->write_errors_total++;
		d->used -= fsize;
		do_hash_remove(ps, e);
		do_entry_free(ps, e);
	}
	pthread_mutex_unlock(&ps->mu);
	free(spare);
	if (rc < 0)
		LOG_DEBUG("pagestore: put to %s failed: %s", d->path, strerror(-rc));
	return rc;
}

int
pagestore_drop_object(struct pagestore *ps, uint64_t obj, uint64_t keep_ver)
{
	struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
	int n = 0;
	pthread_mutex_lock(&ps->mu);
	struct ps_obj *o = do_obj_find(ps, obj);
	struct ps_entry *e = o ? LIST_FIRST(&o->pages) : NULL;
	while (e) {
		/* do_kill may free o when its last entry goes. */
		struct ps_entry *next = LIST_NEXT(e, olink);
		if (keep_ver == 0 || e->k.ver != keep_ver) {
			do_kill(ps, e, &batch);
			n++;
		}
		e = next;
	}
	pthread_mutex_unlock(&ps->mu);
	unlink_and_reap(ps, &batch, 1);
	return n;
}

int
pagestore_drop_version(struct pagestore *ps, uint64_t obj, uint64_t ver)
{
	struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
	int n = 0;
	pthread_mutex_lock(&ps->mu);
	struct ps_obj *o = do_obj_find(ps, obj);
	struct ps_entry *e = o ? LIST_FIRST(&o->pages) : NULL;
	while (e) {
		struct ps_entry *next = LIST_NEXT(e, olink);
		if (e->k.ver == ver) {
			do_kill(ps, e, &batch);
			n++;
		}
		e = next;
	}
	pthread_mutex_unlock(&ps->mu);
	unlink_and_reap(ps, &batch, 1);
	return n;
}

/* Rewrites the key in a page file's header (the data and its CRC stay)
 * and renames the file to the new key's name.  0 or -errno. */
static int
rekey_file(struct pagestore *ps, int dirfd, const struct page_key *from,
    const struct page_key *to)
{
	char rel[REL_PATH_MAX], nrel[REL_PATH_MAX];
	rel_path(rel, sizeof(rel), from);
	rel_path(nrel, sizeof(nrel), to);
	int fd = openat(dirfd, rel, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	unsigned char h[HDR_SIZE];
	int rc = 0;
	if (pread(fd, h, HDR_SIZE, 0) != HDR_SIZE || !header_ok(ps, h, from, get_le32(h + 12)))
		rc = -EBADMSG;
	if (rc == 0) {
		hdr_encode(h, to, get_le32(h + 12), get_le32(h + 40), ps->page_size);
		if (pwrite(fd, h, HDR_SIZE, 0) != HDR_SIZE)
			rc = -EIO;
	}
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dirfd, rel, dirfd, nrel) < 0)
		rc = -errno;
	return rc;
}

int
pagestore_rekey(struct pagestore *ps, uint64_t obj, uint64_t from_ver,
    uint64_t to_ver)
{
	if (from_ver == to_ver)
		return 0;
	struct ps_obj *spare = malloc(sizeof(*spare));
	if (!spare)
		return -ENOMEM;
	/* 1. Take the pages off the lists: PENDING (not served, not
	 * evicted, bytes still counted).  A page whose new key is taken
	 * already is dropped instead. */
	struct ps_batch moving = SLIST_HEAD_INITIALIZER(moving);
	struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
	pthread_mutex_lock(&ps->mu);
	struct ps_obj *o = do_obj_find(ps, obj);
	struct ps_entry *e = o ? LIST_FIRST(&o->pages) : NULL;
	while (e) {
		struct ps_entry *next = LIST_NEXT(e, olink);
		if (e->k.ver == from_ver) {
			struct page_key to = e->k;
			to.ver = to_ver;
			if (do_lookup(ps, &to)) {
				do_kill(ps, e, &batch);
			} else {
				TAILQ_REMOVE(&ps->dirs[e->dir].lru, e, lru);
				do_obj_remove(ps, e);
				ps->npages--;
				e->state = ST_PENDING;
				SLIST_INSERT_HEAD(&moving, e, dead);
			}
		}
		e = next;
	}
	pthread_mutex_unlock(&ps->mu);
	unlink_and_reap(ps, &batch, 1);

	/* 2. Move each file: header rewritten, renamed (no lock: nobody
	 * touches a PENDING entry but its owner). */
	struct ps_batch done = SLIST_HEAD_INITIALIZER(done);
	while ((e = SLIST_FIRST(&moving)) != NULL) {
		SLIST_REMOVE_HEAD(&moving, dead);
		struct page_key to = e->k;
		to.ver = to_ver;
		if (rekey_file(ps, ps->dirs[e->dir].fd, &e->k, &to) == 0)
			SLIST_INSERT_HEAD(&done, e, dead);
		else
			SLIST_INSERT_HEAD(&batch, e, dead); /* dropped below */
	}

	/* 3. Back into the index under the new keys.  (A put of the new key
	 * that came meanwhile wrote the same bytes: its file stands.) */
	struct {
		int dir;
		struct page_key k;
	} orphans[16];
	int norphans = 0, moved = 0;
	pthread_mutex_lock(&ps->mu);
	while ((e = SLIST_FIRST(&done)) != NULL) {
		SLIST_REMOVE_HEAD(&done, dead);
		struct page_key to = e->k;
		to.ver = to_ver;
		struct ps_entry *have = do_lookup(ps, &to);
		do_hash_remove(ps, e);
		if (have) {
			ps->dirs[e->dir].used -= file_size(e->len);
			if (have->dir != e->dir && norphans < (int)ARRAY_SIZE(orphans)) {
				orphans[norphans].dir = e->dir;
				orphans[norphans++].k = to;
			}
			do_entry_free(ps, e);
			continue;
		}
		e->k = to;
		e->gen = ++ps->gen;
		do_hash_insert(ps, e);
		do_make_ready(ps, e, &spare);
		moved++;
	}
	/* Failed moves: their bytes go; their files (old names) are unlinked
	 * by the reaper, as for any dying page. */
	SLIST_FOREACH(e, &batch, dead) {
		ps->dirs[e->dir].used -= file_size(e->len);
		e->state = ST_DYING;
	}
	pthread_mutex_unlock(&ps->mu);
	unlink_and_reap(ps, &batch, 1);
	char rel[REL_PATH_MAX];
	for (int i = 0; i < norphans; i++) {
		rel_path(rel, sizeof(rel), &orphans[i].k);
		unlinkat(ps->dirs[orphans[i].dir].fd, rel, 0);
	}
	free(spare);
	return moved;
}

int
pagestore_has_object(struct pagestore *ps, uint64_t obj)
{
	pthread_mutex_lock(&ps->mu);
	struct ps_obj *o = do_obj_find(ps, obj);
	int yes = o != NULL; /* in otab: it has a page */
	pthread_mutex_unlock(&ps->mu);
	return yes;
}

int64_t
pagestore_cached_bytes(struct pagestore *ps, uint64_t obj, uint64_t ver)
{
	int64_t sum = 0;
	pthread_mutex_lock(&ps->mu);
	struct ps_obj *o = do_obj_find(ps, obj);
	struct ps_entry *e;
	if (o)
		LIST_FOREACH(e, &o->pages, olink)
			if (e->k.ver == ver)
				sum += e->len;
	pthread_mutex_unlock(&ps->mu);
	return sum;
}

void
pagestore_get_stats(struct pagestore *ps, struct pagestore_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_lock(&ps->mu);
	for (int i = 0; i < ps->ndirs; i++) {
		st->used_bytes += ps->dirs[i].used;
		st->capacity_bytes += ps->dirs[i].capacity;
	}
	st->pages = ps->npages;
	st->evicted_bytes_total = ps->evicted_bytes_total;
	st->evicted_pages_total = ps->evicted_pages_total;
	st->checksum_failures_total = ps->checksum_failures_total;
	st->write_errors_total = ps->write_errors_total;
	pthread_mutex_unlock(&ps->mu);
}

/* ---- open: dirs, meta file, scan ----------------------------------------- */

static int
mkdir_p(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		buf[i] = c;
	}
	return 0;
}

/* The page size recorded in the dir, or 0 if none (or unreadable). */
static uint32_t
read_meta(int dirfd)
{
	int fd = openat(dirfd, META_NAME, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[128];
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return 0;
	buf[r] = '\0';
	unsigned fmt = 0, psz = 0;
	if (sscanf(buf, "ferry-pagestore %u page_size=%u", &fmt, &psz) != 2 ||
	    fmt != HDR_FORMAT)
		return 0;
	return psz;
}

/* Writes the meta file; doubles as the check that the dir is writable. */
static int
write_meta(int dirfd, uint32_t page_size)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "ferry-pagestore %u page_size=%u\n",
	    HDR_FORMAT, page_size);
	int fd = openat(dirfd, META_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (fd < 0)
		return -errno;
	int rc = write(fd, buf, (size_t)n) == n ? 0 : -(errno ? errno : EIO);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dirfd, META_TMP, dirfd, META_NAME) < 0)
		rc = -errno;
	if (rc < 0)
		unlinkat(dirfd, META_TMP, 0);
	return rc;
}

static int
parse_hex16(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = s[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return 0;
}

/* Parses "<obj>-<ver>-<idx>.pg" found in subdir sub (0..255). */
static int
parse_page_name(const char *name, unsigned sub, struct page_key *k)
{
	if (strlen(name) != NAME_LEN || name[16] != '-' || name[33] != '-' ||
	    strcmp(name + 50, ".pg") != 0)
		return -1;
	if (parse_hex16(name, &k->obj) < 0 || parse_hex16(name + 17, &k->ver) < 0 ||
	    parse_hex16(name + 34, &k->idx) < 0)
		return -1;
	return (unsigned)(k->obj >> 56) == sub ? 0 : -1;
}

struct scan_item {
	struct page_key k;
	uint32_t len;
	uint32_t mtime_s;
	int64_t mtime_ns;
};

struct scan_list {
	struct scan_item *v;
	size_t n, cap;
};

static int
scan_cmp(const void *a, const void *b)
{
	const struct scan_item *x = a, *y = b;
	if (x->mtime_ns != y->mtime_ns)
		return x->mtime_ns < y->mtime_ns ? -1 : 1;
	if (x->k.obj != y->k.obj)
		return x->k.obj < y->k.obj ? -1 : 1;
	if (x->k.ver != y->k.ver)
		return x->k.ver < y->k.ver ? -1 : 1;
	return x->k.idx < y->k.idx ? -1 : x->k.idx > y->k.idx;
}

/*
 * Lists one subdir: removes temp files, pages of impossible size, (if wipe)
 * all pages, and (if owned: the dir has our meta file, so the subdirs are
 * ours) files with malformed names; appends the rest to *list.  Reads no
 * page data.
 */
static int
scan_subdir(struct pagestore *ps, int dirfd, const char *dpath, unsigned sub,
    int wipe, int owned, struct scan_list *list)
{
	char sname[3];
	snprintf(sname, sizeof(sname), "%02x", sub);
	int sfd = openat(dirfd, sname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sfd < 0) {
		if (errno != ENOENT)
			LOG_WARN("pagestore: %s/%s: %s", dpath, sname, strerror(errno));
		return 0;
	}
	DIR *dh = fdopendir(sfd);
	if (!dh) {
		close(sfd);
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(dh)) != NULL) {
		const char *name = de->d_name;
		if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0)))
			continue;
		struct stat st;
		if (fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!S_ISREG(st.st_mode))
			continue; /* not ours to remove */
		struct page_key k;
		int is_tmp = strstr(name, ".tmp.") != NULL;
		int is_page = !is_tmp && parse_page_name(name, sub, &k) == 0;
		if (!is_tmp && !is_page && !owned)
			continue; /* not ours to remove */
		int ok = is_page && !wipe && st.st_size >= HDR_SIZE &&
		    st.st_size <= file_size(ps->page_size);
		if (!ok) {
			if (!is_tmp && !wipe)
				LOG_WARN("pagestore: removing stray file %s/%s/%s",
				    dpath, sname, name);
			unlinkat(sfd, name, 0);
			continue;
		}
		if (list->n == list->cap) {
			size_t nc = list->cap ? list->cap * 2 : 1024;
			struct scan_item *nv = realloc(list->v, nc * sizeof(*nv));
			if (!nv) {
				closedir(dh);
				return -ENOMEM;
			}
			list->v = nv;
			list->cap = nc;
		}
		struct scan_item *it = &list->v[list->n++];
		it->k = k;
		it->len = (uint32_t)(st.st_size - HDR_SIZE);
		it->mtime_s = (uint32_t)st.st_mtim.tv_sec;
		it->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
		    st.st_mtim.tv_nsec;
	}
	closedir(dh);
	return 0;
}

/* Indexes dir di's pages (oldest mtime = least recently used), then evicts
 * down to capacity.  Single-threaded (inside open). */
static int
load_dir(struct pagestore *ps, int di, int wipe, int owned, char **err)
{
	struct ps_dir *d = &ps->dirs[di];
	struct scan_list list = {0};
	/* Subdirs are made lazily by put; list only those that exist. */
	unsigned char present[256] = {0};
	int tfd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *top = tfd >= 0 ? fdopendir(tfd) : NULL;
	if (!top) {
		*err = errmsg("pagestore: cannot list %s: %s", d->path,
		    strerror(errno));
		if (tfd >= 0)
			close(tfd);
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(top)) != NULL) {
		uint64_t v;
		char hex[17] = "00000000000000";
		if (strlen(de->d_name) != 2)
			continue;
		memcpy(hex + 14, de->d_name, 3);
		if (parse_hex16(hex, &v) == 0)
			present[v] = 1;
	}
	closedir(top);
	for (unsigned sub = 0; sub < 256; sub++) {
		if (!present[sub])
			continue;
		if (scan_subdir(ps, d->fd, d->path, sub, wipe, owned, &list) < 0) {
			*err = errmsg("pagestore: out of memory indexing %s", d->path);
			free(list.v);
			return -1;
		}
	}
	if (list.n > 1)
		qsort(list.v, list.n, sizeof(list.v[0]), scan_cmp);
	char rel[REL_PATH_MAX];
	int64_t dups = 0;
	for (size_t i = 0; i < list.n; i++) {
		struct scan_item *it = &list.v[i];
		if (do_lookup(ps, &it->k)) {
			/* Same page in two dirs (dir list changed): keep one. */
			rel_path(rel, sizeof(rel), &it->k);
			unlinkat(d->fd, rel, 0);
			dups++;
			continue;
		}
		struct ps_obj *spare = malloc(sizeof(*spare));
		struct ps_entry *e = do_entry_alloc(ps);
		if (!spare || !e) {
			free(spare);
			free(list.v);
			*err = errmsg("pagestore: out of memory indexing %s", d->path);
			return -1;
		}
		e->k = it->k;
		e->len = it->len;
		e->dir = (uint16_t)di;
		e->gen = ++ps->gen;
		e->touched = it->mtime_s;
		e->verified = 0;
		do_hash_insert(ps, e);
		d->used += file_size(e->len);
		do_make_ready(ps, e, &spare);
		free(spare);
	}
	free(list.v);

	int64_t ev_pages = 0, ev_bytes = 0;
	struct ps_entry *v;
	while (d->used > d->capacity &&
	    (v = TAILQ_LAST(&d->lru, ps_lru)) != NULL) {
		struct ps_batch batch = SLIST_HEAD_INITIALIZER(batch);
		ev_pages++;
		ev_bytes += file_size(v->len);
		do_kill(ps, v, &batch); /* single-threaded: reaped at once */
		rel_path(rel, sizeof(rel), &v->k);
		unlinkat(d->fd, rel, 0);
		do_hash_remove(ps, v);
		do_entry_free(ps, v);
	}
	ps->evicted_pages_total += ev_pages;
	ps->evicted_bytes_total += ev_bytes;
	char ub[32], cb[32];
	fmt_bytes((double)d->used, ub, sizeof(ub));
	fmt_bytes((double)d->capacity, cb, sizeof(cb));
	LOG_INFO("pagestore: %s: %s of %s in use%s (%" PRId64
		 " pages evicted to fit, %" PRId64 " duplicates removed)",
	    d->path, ub, cb, wipe && owned ? ", old pages wiped" : "", ev_pages, dups);
	return 0;
}

static int
open_dir(struct pagestore *ps, int di, const struct pagestore_dir_cfg *cfg,
    char **err)
{
	struct ps_dir *d = &ps->dirs[di];
	d->fd = -1;
	if (!cfg->path || !cfg->path[0]) {
		*err = errmsg("pagestore: empty cache dir path");
		return -1;
	}
	if (cfg->capacity <= 0) {
		*err = errmsg("pagestore: %s: capacity must be positive", cfg->path);
		return -1;
	}
	d->path = strdup(cfg->path);
	if (!d->path) {
		return -1;
	}
	d->capacity = cfg->capacity;
	int rc = mkdir_p(cfg->path);
	if (rc < 0) {
		*err = errmsg("pagestore: cannot create cache dir %s: %s",
		    cfg->path, strerror(-rc));
		return -1;
	}
	d->fd = open(cfg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0) {
		*err = errmsg("pagestore: cannot open cache dir %s: %s", cfg->path,
		    strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(d->fd, &st) < 0) {
		*err = errmsg("pagestore: cannot stat cache dir %s: %s", cfg->path,
		    strerror(errno));
		return -1;
	}
	/* Cached bytes of private buckets are private: the dir is closed to
	 * other users (which also covers pages written 0644 by older
	 * versions, behind it). */
	if ((st.st_mode & 077) && fchmod(d->fd, st.st_mode & 0700) == 0)
		LOG_INFO("pagestore: %s: made private to its owner (mode %03o -> %03o)",
		    cfg->path, (unsigned)(st.st_mode & 0777), (unsigned)(st.st_mode & 0700));
	for (int j = 0; j < di; j++) {
		struct stat o;
		if (fstat(ps->dirs[j].fd, &o) == 0 && o.st_dev == st.st_dev &&
		    o.st_ino == st.st_ino) {
			*err = errmsg("pagestore: cache dir %s is listed twice",
			    cfg->path);
			return -1;
		}
	}
	uint32_t old_psz = read_meta(d->fd);
	rc = write_meta(d->fd, ps->page_size);
	if (rc < 0) {
		*err = errmsg("pagestore: cache dir %s is not writable: %s",
		    cfg->path, strerror(-rc));
		return -1;
	}
	int wipe = old_psz != ps->page_size;
	if (wipe && old_psz)
		LOG_WARN("pagestore: %s: page size changed (%u -> %u), dropping "
			 "its pages", cfg->path, old_psz, ps->page_size);
	return load_dir(ps, di, wipe, old_psz != 0, err);
}

static struct pagestore *
open_store(const struct pagestore_dir_cfg *dirs, int ndirs, uint32_t page_size,
    enum pagestore_verify verify, char **err)
{
	if (!dirs || ndirs <= 0 || ndirs > MAX_DIRS) {
		*err = errmsg("pagestore: need 1 to %d cache dirs", MAX_DIRS);
		return NULL;
	}
	if (page_size == 0 || page_size > MAX_PAGE_SIZE) {
		*err = errmsg("pagestore: page size must be 1 byte to 1 GiB");
		return NULL;
	}
	if (verify != PAGESTORE_VERIFY_ALWAYS && verify != PAGESTORE_VERIFY_ONCE) {
		*err = errmsg("pagestore: bad verify mode");
		return NULL;
	}
	struct pagestore *ps = calloc(1, sizeof(*ps));
	if (!ps)
		return NULL;
	pthread_mutex_init(&ps->mu, NULL);
	pthread_mutex_init(&ps->buf_mu, NULL);
	pthread_cond_init(&ps->cond, NULL);
	ps->page_size = page_size;
	ps->verify = verify;
	SLIST_INIT(&ps->free_entries);
	int hrc = htab_init(&ps->etab, INITIAL_BUCKETS, entry_hashof);
	if (hrc == 0)
		hrc = htab_init(&ps->otab, INITIAL_BUCKETS, obj_hashof);
	ps->dirs = calloc((size_t)ndirs, sizeof(*ps->dirs));
	if (hrc < 0 || !ps->dirs) {
		pagestore_close(&ps);
		return NULL;
	}
	for (int i = 0; i < ndirs; i++)
		TAILQ_INIT(&ps->dirs[i].lru);
	for (int i = 0; i < ndirs; i++) {
		ps->ndirs = i + 1; /* so close cleans up what was opened */
		if (open_dir(ps, i, &dirs[i], err) < 0) {
			pagestore_close(&ps);
			return NULL;
		}
		ps->total_capacity += (uint64_t)dirs[i].capacity;
	}
	return ps;
}

struct pagestore *
pagestore_open(const struct pagestore_dir_cfg *dirs, int ndirs,
    uint32_t page_size, enum pagestore_verify verify, char **err)
{
	install_sigbus_handler();
	char *msg = NULL;
	struct pagestore *ps = open_store(dirs, ndirs, page_size, verify, &msg);
	if (!ps && !msg)
		msg = strdup("pagestore: out of memory");
	if (err)
		*err = msg;
	else
		free(msg);
	return ps;
}

void
pagestore_close(struct pagestore **psp)
{
	if (!psp || !*psp)
		return;
	struct pagestore *ps = *psp;
	*psp = NULL;
	if (ps->otab.b) {
		HTAB_EACH(&ps->otab, i, n, nx)
			free(container_of(n, struct ps_obj, hn));
	}
	htab_free(&ps->otab);
	htab_free(&ps->etab); /* the entries live in the slabs */
	while (ps->slabs) {
		struct ps_slab *next = ps->slabs->next;
		free(ps->slabs);
		ps->slabs = next;
	}
	for (int i = 0; ps->dirs && i < ps->ndirs; i++) {
		if (ps->dirs[i].fd >= 0)
			close(ps->dirs[i].fd);
		free(ps->dirs[i].path);
	}
	free(ps->dirs);
	pthread_cond_destroy(&ps->cond);
	pthread_mutex_destroy(&ps->mu);
	for (int i = 0; i < ps->nbufs; i++)
		free(ps->bufs[i]);
	pthread_mutex_destroy(&ps->buf_mu);
	free(ps);
}
