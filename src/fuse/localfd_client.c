/*
 * localfd_client.c: zero-copy local reads for `ferry fuse` (see
 * localfd_client.h and worker/localfd.h).
 *
 * Threads: libfuse's session threads call lfd_client_get concurrently.
 * One mutex guards the socket's address, the worker's id and the pool of
 * idle connections; it is never held across I/O.  A thread takes an idle
 * connection (or connects a new one), does one exchange, and gives it
 * back, so there are at most as many connections as concurrent reads
 * (the pool keeps LFDC_POOL idle at most).
 *
 * Recovery: a failed connect or exchange, or an answer that names another
 * worker process (LFD_WRONG_ID: the worker restarted), forgets the
 * address and drops the pool; the next read asks the worker for it again
 * (GET /v1/local), at most once per LFDC_RETRY_MS.  Until then reads go
 * through HTTP.  A worker that does not speak our protocol (LFD_PROTOCOL,
 * from /v1/local) is never asked.  Every descriptor received is either
 * handed to the caller or closed; answers are parsed by
 * lfd_answer_parse (worker/localfd_wire.c), and the caller checks each
 * chunk it reads with lfd_piece_read.
 *
 * The descriptor cache (lfd_client_cached, see localfd_client.h): its own
 * mutex (cmu) guards the hash table (htab.h), the LRU list (a TAILQ) and
 * the counts, and is never held across I/O or together with mu
 * (descriptors are closed after it is released).  An entry is in the
 * table and the LRU list while `linked`; a reader holds it by `refs` (its
 * fds and CRCs stay valid while held), and whoever drops the last of the
 * two frees it and closes its descriptors.  nfds counts the descriptors
 * of linked entries and stays at most max_fds (an insert evicts from the
 * LRU tail first).  The refresh thread sweeps idle entries once a second.
 * Clearing, sweeping and making room are one loop (do_evict_lru).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "common/htab.h"
#include "common/log.h"
#include "common/util.h"
#include "fuse/localfd_client.h"
#include "worker/localfd.h"

_Static_assert(FERRY_LOCAL_PROTOCOL == LFD_PROTOCOL, "one local-read protocol");

#define LFDC_POOL 64
#define LFDC_BUCKETS 256 /* to begin with: the table grows */
#define LFDC_RETRY_MS 2000
#define LFDC_IO_TIMEOUT_S 10

TAILQ_HEAD(lfdc_list, lfdc_ent);

struct lfd_client {
	ferry_t *f;
	pthread_mutex_t mu; /* guards all below */
	int have;           /* path and id are known */
	int probing;        /* a thread is asking the worker */
	uint64_t gen;       /* bumped when the address is forgotten */
	int64_t next_try_ms;
	int working;        /* the last exchange succeeded */
	int failed_before;  /* for the "answers again" line */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	unsigned char id[LFD_ID_LEN];
	int idle[LFDC_POOL];
	int nidle;
	/* The descriptor cache. */
	pthread_mutex_t cmu; /* guards all below and every entry's links and refs */
	int max_fds, nfds;
	struct lfdc_list lru; /* most recently used first */
	struct htab tab;      /* by (path, etag, granule) */
};

/* One segment of a cached granule: a page file's descriptor, where the
 * granule's bytes [lo, lo + len) lie in it, and its chunks. */
struct lfdc_seg {
	int fd;
	int64_t lo, len;   /* file offsets */
	int64_t file_off;  /* page-file offset of lo */
	int64_t chunk_off, chunk_end;
	uint32_t ncrc, crc_at; /* its CRCs: ent.crcs[crc_at ..] */
};

/* The worker's answer for one granule of one version of a file. */
struct lfdc_ent {
	struct hnode hn;
	/* In the LRU list while linked; then in a list of entries to free. */
	TAILQ_ENTRY(lfdc_ent) lru;
	uint64_t h;
	int64_t gran;
	int refs, linked;
	int64_t fetched_ms, used_ms;
	uint32_t chunk;
	int nseg;
	struct lfdc_seg *seg;
	uint32_t *crcs;
	size_t klen;
	char *key; /* path, NUL, etag */
};

static uint64_t
ent_hashof(const struct hnode *n)
{
	return container_of(n, struct lfdc_ent, hn)->h;
}

struct lfd_client *
lfd_client_new(ferry_t *f, int max_fds)
{
	struct lfd_client *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (htab_init(&c->tab, LFDC_BUCKETS, ent_hashof) < 0) {
		free(c);
		return NULL;
	}
	TAILQ_INIT(&c->lru);
	c->f = f;
	c->max_fds = max_fds > 0 ? max_fds : 0;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->cmu, NULL);
	return c;
}

static void cache_clear(struct lfd_client *c);

static void
do_drop_pool(struct lfd_client *c)
{
	while (c->nidle > 0)
		close(c->idle[--c->nidle]);
}

void
lfd_client_free(struct lfd_client **cp)
{
	struct lfd_client *c = *cp;
	if (!c)
		return;
	*cp = NULL;
	do_drop_pool(c);
	cache_clear(c);
	htab_free(&c->tab);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->cmu);
	free(c);
}

/* Forgets the address after a failure (of generation gen); asks again
 * after retry_ms.  Logs only when local reads stop working (one line per
 * outage, not one per read). */
static void
forget(struct lfd_client *c, uint64_t gen, const char *why, int64_t retry_ms)
{
	pthread_mutex_lock(&c->mu);
	if (c->gen == gen && c->have) {
		c->have = 0;
		c->gen++;
		do_drop_pool(c);
		c->next_try_ms = now_ms() + retry_ms;
		if (c->working)
			LOG_INFO("local reads: %s; reading through HTTP until the worker's socket answers again", why);
		else
			LOG_DEBUG("local reads: %s", why);
		c->working = 0;
		c->failed_before = 1;
	}
	pthread_mutex_unlock(&c->mu);
	/* Another worker process (or none): what the old one handed out is
	 * not asked again. */
	cache_clear(c);
}

static void
note_working(struct lfd_client *c)
{
	pthread_mutex_lock(&c->mu);
	if (!c->working) {
		c->working = 1;
		if (c->failed_before)
			LOG_INFO("local reads: the worker's socket answers again");
	}
	pthread_mutex_unlock(&c->mu);
}

/* Asks the worker for its socket when not known and due; 0 if known. */
static int
learn(struct lfd_client *c, char *why, size_t n, int force)
{
	pthread_mutex_lock(&c->mu);
	if (c->have || c->probing || (!force && now_ms() < c->next_try_ms)) {
		int r = c->have ? 0 : -EAGAIN;
		pthread_mutex_unlock(&c->mu);
		if (r && why)
			snprintf(why, n, "not known yet");
		return r;
	}
	c->probing = 1;
	pthread_mutex_unlock(&c->mu);

	char path[sizeof(c->path)], idhex[FERRY_LOCAL_ID_MAX];
	unsigned char id[LFD_ID_LEN];
	int r = ferry_local_socket(c->f, path, sizeof(path), idhex, sizeof(idhex));
	if (r == -ENOTSUP && why) {
		snprintf(why, n, "the worker speaks another local-read protocol "
		    "(this client: %d, with chunk CRCs); reading through HTTP", LFD_PROTOCOL);
		why = NULL;
	}
	if (r == 0 && strlen(idhex) != 2 * LFD_ID_LEN)
		r = -EPROTO;
	for (int i = 0; r == 0 && i < LFD_ID_LEN; i++) {
		int hi = hexval(idhex[2 * i]), lo = hexval(idhex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			r = -EPROTO;
		else
			id[i] = (unsigned char)(hi * 16 + lo);
	}
	if (why && r)
		snprintf(why, n, "%s", r == -ENOENT ? "the worker has them off" : ferry_strerror(r));
	pthread_mutex_lock(&c->mu);
	c->probing = 0;
	if (r == 0) {
		memcpy(c->path, path, sizeof(path));
		memcpy(c->id, id, sizeof(id));
		c->have = 1;
	} else {
		c->next_try_ms = now_ms() + LFDC_RETRY_MS;
	}
	pthread_mutex_unlock(&c->mu);
	return r;
}

static int
connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = {.tv_sec = LFDC_IO_TIMEOUT_S};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* A connection: an idle one, or a new one.  Its generation in *gen. */
static int
take_conn(struct lfd_client *c, uint64_t *gen, unsigned char *id)
{
	if (learn(c, NULL, 0, 0) < 0)
		return -EAGAIN;
	pthread_mutex_lock(&c->mu);
	if (!c->have) {
		pthread_mutex_unlock(&c->mu);
		return -EAGAIN;
	}
	*gen = c->gen;
	memcpy(id, c->id, LFD_ID_LEN);
	if (c->nidle > 0) {
		int fd = c->idle[--c->nidle];
		pthread_mutex_unlock(&c->mu);
		return fd;
	}
	char path[sizeof(c->path)];
	memcpy(path, c->path, sizeof(path));
	pthread_mutex_unlock(&c->mu);
	int fd = connect_to(path);
	if (fd < 0) {
		char why[200];
		snprintf(why, sizeof(why), "cannot connect to %s: %s", path, strerror(-fd));
		forget(c, *gen, why, LFDC_RETRY_MS);
		return -EAGAIN;
	}
	return fd;
}

static void
give_conn(struct lfd_client *c, int fd, uint64_t gen)
{
	pthread_mutex_lock(&c->mu);
	if (c->gen == gen && c->nidle < LFDC_POOL) {
		c->idle[c->nidle++] = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&c->mu);
	if (fd >= 0)
		close(fd);
}

static int
send_all(int fd, const void *p, size_t n)
{
	const char *b = p;
	while (n) {
		ssize_t r = send(fd, b, n, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int
recv_all(int fd, void *p, size_t n)
{
	char *b = p;
	while (n) {
		ssize_t r = recv(fd, b, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * One exchange on fd: 0 with *ans, segs, crcs and fds[0..ans->nseg) (the
 * caller's), or -1 (the connection is unusable; nothing is left open).
 */
static int
exchange(int fd, const unsigned char *id, const char *path, const char *etag,
    int64_t off, int64_t len, struct lfd_ans *ans, struct lfd_seg *segs,
    uint32_t *crcs, int *fds)
{
	char req[LFD_REQ_MAX];
	size_t pl = strlen(path), el = strlen(etag);
	if (sizeof(struct lfd_req) + pl + el > sizeof(req))
		return -1;
	struct lfd_req rq = {.magic = LFD_MAGIC_REQ, .path_len = (uint32_t)pl,
	    .etag_len = (uint32_t)el, .off = off, .len = len};
	memcpy(rq.id, id, LFD_ID_LEN);
	memcpy(req, &rq, sizeof(rq));
	memcpy(req + sizeof(rq), path, pl);
	memcpy(req + sizeof(rq) + pl, etag, el);
	if (send_all(fd, req, sizeof(rq) + pl + el) < 0)
		return -1;

	char msg[sizeof(struct lfd_ans) + LFD_MAX_SEGS * sizeof(struct lfd_seg) +
	    LFD_MAX_CRCS * sizeof(uint32_t)];
	union {
		char buf[CMSG_SPACE(sizeof(int) * LFD_MAX_SEGS)];
		struct cmsghdr align;
	} cm;
	struct iovec iov = {.iov_base = msg, .iov_len = sizeof(msg)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
	ssize_t r;
	do
		r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	int nfd = 0;
	if (r > 0) {
		for (struct cmsghdr *ch = CMSG_FIRSTHDR(&mh); ch; ch = CMSG_NXTHDR(&mh, ch)) {
			if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int got;
				memcpy(&got, CMSG_DATA(ch) + i * sizeof(int), sizeof(int));
				if (nfd < LFD_MAX_SEGS)
					fds[nfd++] = got;
				else
					close(got);
			}
		}
	}
	int bad = r <= 0 || (mh.msg_flags & MSG_CTRUNC);
	size_t have = r > 0 ? (size_t)r : 0;
	/* Parse; read what the answer says is still missing; parse again. */
	for (int rounds = 0; !bad && rounds < 3; rounds++) {
		ssize_t need = lfd_answer_parse(msg, have, nfd, ans, segs, crcs);
		if (need == 0)
			return 0;
		if (need < 0 || (size_t)need <= have || (size_t)need > sizeof(msg))
			bad = 1;
		else if (recv_all(fd, msg + have, (size_t)need - have) < 0)
			bad = 1;
		else
			have = (size_t)need;
	}
	for (int i = 0; i < nfd; i++)
		close(fds[i]);
	return -1;
}

int
lfd_piece_read(const struct lfd_piece *p, unsigned char *buf,
    const unsigned char **data)
{
	size_t span = lfd_piece_span(p), got = 0;
	while (got < span) {
		ssize_t r = pread(p->fd, buf + got, span - got, p->chunk_off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -EBADMSG;
		got += (size_t)r;
	}
	for (uint32_t i = 0; i < p->ncrc; i++) {
		size_t at = (size_t)i * p->chunk;
		size_t n = span - at < p->chunk ? span - at : p->chunk;
		if (crc32c(0, buf + at, n) != p->crcs[i])
			return -EBADMSG;
	}
	*data = buf + (p->off - p->chunk_off);
	return 0;
}

int
lfd_client_probe(struct lfd_client *c, char *why, size_t n)
{
	int r = learn(c, why, n, 1);
	if (r)
		return r;
	uint64_t gen;
	unsigned char id[LFD_ID_LEN];
	int fd = take_conn(c, &gen, id);
	if (fd < 0) {
		snprintf(why, n, "cannot connect to the worker's socket");
		return fd;
	}
	give_conn(c, fd, gen);
	note_working(c);
	return 0;
}

int
lfd_client_get(struct lfd_client *c, const char *path, const char *etag,
    int64_t off, int64_t len, struct lfd_piece *pieces, int max,
    uint32_t *crcs, int maxcrc)
{
	int np = 0, nc = 0, rc = 0;
	while (len > 0 && rc == 0) {
		uint64_t gen;
		unsigned char id[LFD_ID_LEN];
		int fd = take_conn(c, &gen, id);
		if (fd < 0) {
			rc = -EAGAIN;
			break;
		}
		struct lfd_ans a;
		struct lfd_seg segs[LFD_MAX_SEGS];
		uint32_t acrcs[LFD_MAX_CRCS];
		int fds[LFD_MAX_SEGS];
		if (exchange(fd, id, path, etag, off, len > LFD_LEN_MAX ? LFD_LEN_MAX : len,
		    &a, segs, acrcs, fds) < 0) {
			close(fd);
			forget(c, gen, "the worker's socket failed", LFDC_RETRY_MS);
			rc = -EAGAIN;
			break;
		}
		give_conn(c, fd, gen);
		if (a.status != LFD_WRONG_ID)
			note_working(c);
		if (a.status == LFD_WRONG_ID) {
			forget(c, gen, "another worker process answers the socket", 0);
			rc = -EAGAIN;
		} else if (a.status == LFD_STALE) {
			rc = -ESTALE;
		} else if (a.status != LFD_OK || a.nseg == 0 || np + (int)a.nseg > max ||
		    nc + (int)a.ncrc > maxcrc || a.covered > len) {
			rc = -EAGAIN; /* a miss, an error, the end of file early */
		}
		uint32_t ci = 0;
		for (uint32_t i = 0; i < a.nseg; i++) {
			if (rc) {
				close(fds[i]);
				continue;
			}
			memcpy(crcs + nc, acrcs + ci, segs[i].ncrc * sizeof(*crcs));
			pieces[np++] = (struct lfd_piece){.fd = fds[i], .off = segs[i].file_off,
			    .len = segs[i].len, .chunk_off = segs[i].chunk_off,
			    .chunk_end = segs[i].chunk_end, .chunk = a.chunk,
			    .ncrc = segs[i].ncrc, .crcs = crcs + nc};
			nc += (int)segs[i].ncrc;
			ci += segs[i].ncrc;
		}
		off += a.covered;
		len -= a.covered;
	}
	if (rc) {
		for (int i = 0; i < np; i++)
			close(pieces[i].fd);
		return rc;
	}
	return np;
}

/* ------------------------------------------------------------------ */
/* The descriptor cache                                                 */

static void
ent_free(struct lfdc_ent *e)
{
	for (int i = 0; i < e->nseg; i++)
		close(e->seg[i].fd);
	free(e);
}

/* Frees the entries of a list do_unlink_ent filled (cmu not held). */
static void
free_dead(struct lfdc_list *dead)
{
	struct lfdc_ent *e;
	while ((e = TAILQ_FIRST(dead))) {
		TAILQ_REMOVE(dead, e, lru);
		ent_free(e);
	}
}

/* Takes e out of the table and the LRU list (cmu held).  When nobody
 * holds it, puts it on dead (the caller frees that list after unlocking
 * with free_dead); else the last release frees it. */
static void
do_unlink_ent(struct lfd_client *c, struct lfdc_ent *e, struct lfdc_list *dead)
{
	htab_remove(&c->tab, &e->hn, e->h);
	TAILQ_REMOVE(&c->lru, e, lru);
	e->linked = 0;
	c->nfds -= e->nseg;
	if (e->refs == 0)
		TAILQ_INSERT_TAIL(dead, e, lru);
}

/* Evicts from the least recently used end while the entry there was last
 * used before before_ms and more than keep_fds descriptors are linked:
 * the one eviction loop of clearing, sweeping and making room. */
static void
do_evict_lru(struct lfd_client *c, int64_t before_ms, int keep_fds,
    struct lfdc_list *dead)
{
	struct lfdc_ent *e;
	while ((e = TAILQ_LAST(&c->lru, lfdc_list)) && e->used_ms < before_ms &&
	    c->nfds > keep_fds)
		do_unlink_ent(c, e, dead);
}

/* Closes the linked entries last used before before_ms. */
static void
evict_older(struct lfd_client *c, int64_t before_ms)
{
	struct lfdc_list dead = TAILQ_HEAD_INITIALIZER(dead);
	pthread_mutex_lock(&c->cmu);
	do_evict_lru(c, before_ms, -1, &dead);
	pthread_mutex_unlock(&c->cmu);
	free_dead(&dead);
}

static void
cache_clear(struct lfd_client *c)
{
	evict_older(c, INT64_MAX);
}

void
lfd_client_sweep(struct lfd_client *c)
{
	if (!c)
		return;
	/* From the least recently used end: stop at the first one in use. */
	evict_older(c, now_ms() - LFDC_KEEP_MS);
}

static uint64_t
ent_hash(const char *key, size_t klen, int64_t gran)
{
	return hash64(key, klen, (uint64_t)gran);
}

/* The linked entry for (key, gran) of hash h, or NULL (cmu held). */
static struct lfdc_ent *
do_lookup(struct lfd_client *c, uint64_t h, const char *key, size_t klen,
    int64_t gran)
{
	struct hnode *n;
	for (HTAB_FOREACH(&c->tab, h, n)) {
		struct lfdc_ent *e = container_of(n, struct lfdc_ent, hn);
		if (e->h == h && e->gran == gran && e->klen == klen &&
		    memcmp(e->key, key, klen) == 0)
			return e;
	}
	return NULL;
}

/* A usable entry for (key, gran), held (refs + 1), or NULL; an entry too
 * old for this read is dropped (its replacement is fetched). */
static struct lfdc_ent *
cache_find(struct lfd_client *c, const char *key, size_t klen, int64_t gran,
    int64_t since_ms, int64_t now)
{
	uint64_t h = ent_hash(key, klen, gran);
	struct lfdc_list dead = TAILQ_HEAD_INITIALIZER(dead);
	pthread_mutex_lock(&c->cmu);
	struct lfdc_ent *e = do_lookup(c, h, key, klen, gran);
	if (e && (e->fetched_ms < since_ms || e->fetched_ms + LFDC_TRUST_MS <= now)) {
		do_unlink_ent(c, e, &dead);
		e = NULL;
	} else if (e) {
		e->refs++;
		e->used_ms = now;
		TAILQ_REMOVE(&c->lru, e, lru);
		TAILQ_INSERT_HEAD(&c->lru, e, lru);
	}
	pthread_mutex_unlock(&c->cmu);
	free_dead(&dead);
	return e;
}

/* Makes an entry of the pieces the worker gave for the granule (their fds
 * become the entry's) and puts it in the table, held once; NULL (the fds
 * closed) when out of memory or the cache is off. */
static struct lfdc_ent *
cache_add(struct lfd_client *c, const char *key, size_t klen, int64_t gran,
    int64_t lo, const struct lfd_piece *pc, int np, int64_t now)
{
	uint32_t ncrc = 0;
	for (int i = 0; i < np; i++)
		ncrc += pc[i].ncrc;
	struct lfdc_ent *e = NULL;
	if (np <= c->max_fds)
		e = calloc(1, sizeof(*e) + (size_t)np * sizeof(struct lfdc_seg) +
		    ncrc * sizeof(uint32_t) + klen);
	if (!e) {
		for (int i = 0; i < np; i++)
			close(pc[i].fd);
		return NULL;
	}
	e->seg = (struct lfdc_seg *)(e + 1);
	e->crcs = (uint32_t *)(e->seg + np);
	e->key = (char *)(e->crcs + ncrc);
	memcpy(e->key, key, klen);
	e->klen = klen;
	e->gran = gran;
	e->h = ent_hash(key, klen, gran);
	e->fetched_ms = e->used_ms = now;
	e->chunk = pc[0].chunk;
	e->nseg = np;
	uint32_t at = 0;
	for (int i = 0; i < np; i++) {
		e->seg[i] = (struct lfdc_seg){.fd = pc[i].fd, .lo = lo, .len = pc[i].len,
		    .file_off = pc[i].off, .chunk_off = pc[i].chunk_off,
		    .chunk_end = pc[i].chunk_end, .ncrc = pc[i].ncrc, .crc_at = at};
		memcpy(e->crcs + at, pc[i].crcs, pc[i].ncrc * sizeof(uint32_t));
		at += pc[i].ncrc;
		lo += pc[i].len;
	}
	e->refs = 1;
	e->linked = 1;
	struct lfdc_list dead = TAILQ_HEAD_INITIALIZER(dead);
	pthread_mutex_lock(&c->cmu);
	/* An entry of the same granule another reader fetched meanwhile
	 * goes: the newer answer wins. */
	struct lfdc_ent *x = do_lookup(c, e->h, key, klen, gran);
	if (x)
		do_unlink_ent(c, x, &dead);
	do_evict_lru(c, INT64_MAX, c->max_fds - np, &dead);
	htab_insert(&c->tab, &e->hn, e->h);
	TAILQ_INSERT_HEAD(&c->lru, e, lru);
	c->nfds += np;
	pthread_mutex_unlock(&c->cmu);
	free_dead(&dead);
	return e;
}

void
lfd_client_release(struct lfd_client *c, struct lfd_hold *h, int bad)
{
	struct lfdc_list dead = TAILQ_HEAD_INITIALIZER(dead);
	pthread_mutex_lock(&c->cmu);
	for (int i = 0; i < h->n; i++) {
		struct lfdc_ent *e = h->e[i];
		if (bad && e->linked)
			do_unlink_ent(c, e, &dead); /* held: not put on dead */
		if (--e->refs == 0 && !e->linked)
			TAILQ_INSERT_TAIL(&dead, e, lru);
	}
	pthread_mutex_unlock(&c->cmu);
	free_dead(&dead);
	h->n = 0;
}

/* The pieces of [off, end) that entry e holds, into pc (room for max);
 * how many, or -1 when they do not fit. */
static int
ent_pieces(const struct lfdc_ent *e, int64_t off, int64_t end,
    struct lfd_piece *pc, int max)
{
	int n = 0;
	for (int i = 0; i < e->nseg; i++) {
		const struct lfdc_seg *s = &e->seg[i];
		int64_t a = off > s->lo ? off : s->lo;
		int64_t b = end < s->lo + s->len ? end : s->lo + s->len;
		if (a >= b)
			continue;
		if (n == max)
			return -1;
		int64_t fo = s->file_off + (a - s->lo);
		int64_t k0 = (fo - s->chunk_off) / e->chunk;
		int64_t k1 = (fo + (b - a) - 1 - s->chunk_off) / e->chunk;
		int64_t ce = s->chunk_off + (k1 + 1) * (int64_t)e->chunk;
		pc[n++] = (struct lfd_piece){.fd = s->fd, .off = fo, .len = b - a,
		    .chunk_off = s->chunk_off + k0 * (int64_t)e->chunk,
		    .chunk_end = ce < s->chunk_end ? ce : s->chunk_end,
		    .chunk = e->chunk, .ncrc = (uint32_t)(k1 - k0 + 1),
		    .crcs = e->crcs + s->crc_at + k0};
	}
	return n;
}

int
lfd_client_cached(struct lfd_client *c, const char *path, const char *etag,
    int64_t size, int64_t off, int64_t len, int64_t since_ms,
    struct lfd_piece *pieces, int max, struct lfd_hold *h)
{
	h->n = 0;
	if (c->max_fds <= 0 || len <= 0 || off + len > size)
		return -EAGAIN;
	char key[LFD_REQ_MAX + FERRY_ETAG_MAX];
	size_t pl = strlen(path), el = strlen(etag);
	if (pl + 1 + el > sizeof(key))
		return -EAGAIN;
	memcpy(key, path, pl + 1);
	memcpy(key + pl + 1, etag, el);
	size_t klen = pl + 1 + el;
	int np = 0, rc = 0;
	int64_t end = off + len;
	for (int64_t g = off / LFDC_GRAN; g * LFDC_GRAN < end && rc == 0; g++) {
		if (h->n == LFDC_HOLD_MAX) {
			rc = -EAGAIN;
			break;
		}
		int64_t now = now_ms();
		struct lfdc_ent *e = cache_find(c, key, klen, g, since_ms, now);
		if (!e) {
			int64_t lo = g * LFDC_GRAN;
			int64_t hi = lo + LFDC_GRAN < size ? lo + LFDC_GRAN : size;
			struct lfd_piece pc[LFDC_MAX_PIECES];
			uint32_t crcs[LFDC_MAX_CRCS];
			int n = lfd_client_get(c, path, etag, lo, hi - lo, pc, LFDC_MAX_PIECES,
			    crcs, LFDC_MAX_CRCS);
			if (n < 0) {
				rc = n;
				break;
			}
			e = cache_add(c, key, klen, g, lo, pc, n, now);
			if (!e) {
				rc = -EAGAIN;
				break;
			}
		}
		h->e[h->n++] = e;
		int64_t a = off > g * LFDC_GRAN ? off : g * LFDC_GRAN;
		int64_t b = end < (g + 1) * LFDC_GRAN ? end : (g + 1) * LFDC_GRAN;
		int k = ent_pieces(e, a, b, pieces + np, max - np);
		if (k <= 0)
			rc = -EAGAIN; /* 0: the entry does not hold them (cannot be) */
		else
			np += k;
	}
	if (rc) {
		lfd_client_release(c, h, 0);
		return rc;
	}
	return np;
}
