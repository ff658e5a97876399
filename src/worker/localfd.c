/*
 * localfd.c: the worker's side of zero-copy local reads (see localfd.h for
 * the wire format).  An acceptor thread takes connections on the Unix
 * socket and starts one detached thread per connection (LFD_MAX_CONNS at
 * most; more are closed at once and their clients read through HTTP).
 * A connection thread answers one request at a time: it resolves the path
 * as the control API does and asks objget for the pages of the range at
 * the version the client pinned (objget_pages: the metadata check, and,
 * when every page that covers the range is in the page store, its files
 * with their headers checked: no page data is read here); it sends the
 * page files' descriptors with SCM_RIGHTS, with the CRCs of the chunks
 * each segment touches (the client checks every chunk it reads), and
 * closes its copies.  A missing page answers LFD_MISS: the client reads
 * through HTTP, whose read path fetches and caches the pages.  A request
 * of protocol 1 (clients that check nothing) is refused with a protocol-1
 * error answer and the connection closed.
 *
 * Invariants: requests are bounded (LFD_REQ_MAX bytes, LFD_LEN_MAX bytes
 * asked, LFD_MAX_SEGS descriptors and LFD_MAX_CRCS CRCs per answer); a
 * descriptor is only sent for a page of the version asked for, and only
 * with the CRCs of every chunk its segment touches; localfd_stop() returns only after
 * every connection thread has ended, so none outlives the subsystems it
 * uses.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/crypto.h"
#include "../common/log.h"
#include "../common/util.h"
#include "localfd.h"
#include "namespace.h"
#include "objget.h"
#include "worker.h"

enum { R_OK_, R_MISS, R_STALE, R_ERROR, R__N };
static const char *const result_name[R__N] = {"ok", "miss", "stale", "error"};
static int64_t g_results[R__N];

struct localfd {
	struct worker *w;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	unsigned char id[LFD_ID_LEN];
	int lfd;        /* listening socket */
	int wake[2];    /* a pipe: written to stop the acceptor */
	pthread_t acceptor;
	pthread_mutex_t mu; /* guards conns, nconns, stopping */
	pthread_cond_t idle;
	int conns[LFD_MAX_CONNS]; /* -1: free slot */
	int nconns;
	int stopping;
};

struct conn_arg {
	struct localfd *lf;
	int slot;
	int fd;
};

static void
count(int r)
{
	__atomic_fetch_add(&g_results[r], 1, __ATOMIC_RELAXED);
}

/* Reads exactly n bytes; 0, or -1 on EOF or error. */
static int
read_full(int fd, void *p, size_t n)
{
	char *c = p;
	while (n) {
		ssize_t r = recv(fd, c, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Sends the answer, segments and CRCs, with fds[0..nfd) on its first byte. */
static int
send_answer(int fd, const struct lfd_ans *a, const struct lfd_seg *segs,
    const uint32_t *crcs, const int *fds, int nfd)
{
	char msg[sizeof(*a) + LFD_MAX_SEGS * sizeof(*segs) + LFD_MAX_CRCS * sizeof(*crcs)];
	size_t total = sizeof(*a) + a->nseg * sizeof(*segs) + a->ncrc * sizeof(*crcs);
	memcpy(msg, a, sizeof(*a));
	if (a->nseg)
		memcpy(msg + sizeof(*a), segs, a->nseg * sizeof(*segs));
	if (a->ncrc)
		memcpy(msg + sizeof(*a) + a->nseg * sizeof(*segs), crcs,
		    a->ncrc * sizeof(*crcs));
	struct iovec iov = {.iov_base = msg, .iov_len = total};
	union {
		char buf[CMSG_SPACE(sizeof(int) * LFD_MAX_SEGS)];
		struct cmsghdr align;
	} cm;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfd > 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfd);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfd);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfd);
	}
	ssize_t r;
	do
		r = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r <= 0)
		return -1;
	/* The rest (rare: a full socket buffer) goes without descriptors. */
	for (size_t done = (size_t)r; done < total;) {
		ssize_t s = send(fd, msg + done, total - done, MSG_NOSIGNAL);
		if (s < 0 && errno == EINTR)
			continue;
		if (s <= 0)
			return -1;
		done += (size_t)s;
	}
	return 0;
}

/*
 * Fills a's counts, segs, crcs and fds for [off, off + len) of path at
 * version etag.  Returns an lfd_status (LFD_ERROR with *err set); on
 * LFD_OK the caller sends and closes fds[0..a->nseg).
 */
static int
serve(struct localfd *lf, char *path, const char *etag, int64_t off,
    int64_t len, struct lfd_ans *a, struct lfd_seg *segs, uint32_t *crcs,
    int *fds, int *err)
{
	struct worker *w = lf->w;
	a->nseg = 0;
	a->ncrc = 0;
	a->covered = 0;
	const char *mn, *k;
	size_t ml, kl;
	if (path[0] != '/' || ferry_path_split(path, &mn, &ml, &k, &kl) < 0) {
		*err = -EINVAL;
		return LFD_ERROR;
	}
	if (ml == 0 || kl == 0) {
		*err = -EISDIR;
		return LFD_ERROR;
	}
	struct mount *m = mounts_get(w->mt, mn, ml);
	if (!m) {
		*err = -ENOENT;
		return LFD_ERROR;
	}
	((char *)k)[kl] = 0; /* drop a trailing '/' */
	int r = key_validate(k, kl);
	struct page_ref refs[LFD_MAX_SEGS];
	int n = 0;
	if (r == 0)
		r = objget_pages(w->og, m, k, etag, off, len, refs, LFD_MAX_SEGS, &n);
	mount_release(&m);
	if (r == OBJGET_MISS)
		return LFD_MISS;
	if (r == -ESTALE)
		return LFD_STALE;
	if (r < 0) {
		*err = r;
		return LFD_ERROR;
	}
	/* Each segment: its descriptor and the CRCs of the chunks that hold
	 * its bytes (the client checks them; nothing is read here).  Pages
	 * past what LFD_MAX_CRCS holds are left for the client's next ask. */
	for (int i = 0; i < n; i++) {
		struct page_ref *ref = &refs[i];
		uint32_t C = ref->chunk, c0 = ref->ra / C,
		    c1 = (ref->ra + ref->rn - 1) / C, nc = c1 - c0 + 1;
		if (a->ncrc + nc > LFD_MAX_CRCS || (a->nseg > 0 && C != a->chunk)) {
			page_ref_release(ref);
			continue;
		}
		if (a->nseg < (uint32_t)i) { /* one was left out: so are the rest */
			page_ref_release(ref);
			continue;
		}
		struct lfd_seg *sg = &segs[a->nseg];
		sg->file_off = (int64_t)ref->off + ref->ra;
		sg->len = ref->rn;
		sg->chunk_off = (int64_t)ref->off + (int64_t)c0 * C;
		int64_t end = (int64_t)(c1 + 1) * C;
		sg->chunk_end = (int64_t)ref->off + (end < ref->len ? end : ref->len);
		sg->ncrc = nc;
		sg->reserved = 0;
		memcpy(crcs + a->ncrc, page_ref_crcs(ref) + c0, nc * sizeof(*crcs));
		a->ncrc += nc;
		a->chunk = C;
		fds[a->nseg++] = ref->fd;
		ref->fd = -1; /* ours now: sent, then closed by the caller */
		a->covered += ref->rn;
		page_ref_release(ref);
	}
	return LFD_OK;
}

/* A client of protocol 1 (it would not check chunks): refused with an
 * error it understands, so it reads through HTTP; logged once. */
static void
refuse_v1(int fd)
{
	static int warned;
	if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
		LOG_WARN("local socket: a client of local-read protocol 1 (an older ferry "
			 "fuse) was refused; it reads through HTTP until it is upgraded");
	struct lfd_ans_v1 a = {.magic = LFD_MAGIC_ANS_V1, .status = LFD_ERROR,
	    .err = -EPROTONOSUPPORT};
	(void)!send(fd, &a, sizeof(a), MSG_NOSIGNAL);
}

/* One request; 0 to go on, -1 to close the connection. */
static int
handle_one(struct localfd *lf, int fd)
{
	struct lfd_req rq;
	if (read_full(fd, &rq, sizeof(rq)) < 0)
		return -1;
	if (rq.magic == LFD_MAGIC_REQ_V1) {
		/* Its path and version are read (and dropped), so that the
		 * client reads our answer rather than a reset. */
		char skip[LFD_REQ_MAX];
		count(R_ERROR);
		if ((size_t)rq.path_len + rq.etag_len <= sizeof(skip) &&
		    read_full(fd, skip, (size_t)rq.path_len + rq.etag_len) == 0)
			refuse_v1(fd);
		return -1;
	}
	if (rq.magic != LFD_MAGIC_REQ || rq.path_len == 0 ||
	    rq.path_len > LFD_REQ_MAX || rq.etag_len >= UFS_ETAG_MAX ||
	    sizeof(rq) + (size_t)rq.path_len + rq.etag_len > LFD_REQ_MAX ||
	    rq.off < 0 || rq.len < 0 || rq.len > LFD_LEN_MAX) {
		LOG_DEBUG("local socket: malformed request: closing");
		count(R_ERROR);
		return -1;
	}
	char path[LFD_REQ_MAX + 1], etag[UFS_ETAG_MAX];
	if (read_full(fd, path, rq.path_len) < 0 ||
	    (rq.etag_len && read_full(fd, etag, rq.etag_len) < 0))
		return -1;
	path[rq.path_len] = 0;
	etag[rq.etag_len] = 0;
	if (strlen(path) != rq.path_len || strlen(etag) != rq.etag_len) {
		count(R_ERROR);
		return -1;
	}
	struct lfd_ans a = {.magic = LFD_MAGIC_ANS};
	struct lfd_seg segs[LFD_MAX_SEGS];
	uint32_t crcs[LFD_MAX_CRCS];
	int fds[LFD_MAX_SEGS];
	int err = 0;
	int st;
	if (ct_memcmp(rq.id, lf->id, LFD_ID_LEN) != 0)
		st = LFD_WRONG_ID;
	else
		st = serve(lf, path, etag, rq.off, rq.len, &a, segs, crcs, fds, &err);
	a.status = (uint32_t)st;
	a.err = err;
	count(st == LFD_OK ? R_OK_ : st == LFD_MISS ? R_MISS : st == LFD_STALE ? R_STALE : R_ERROR);
	int sr = send_answer(fd, &a, segs, crcs, fds, (int)a.nseg);
	for (uint32_t j = 0; j < a.nseg; j++)
		close(fds[j]);
	if (sr < 0)
		return -1;
	return 0;
}

static void *
conn_thread(void *arg)
{
	struct conn_arg ca = *(struct conn_arg *)arg;
	free(arg);
	while (handle_one(ca.lf, ca.fd) == 0)
		;
	struct localfd *lf = ca.lf;
	pthread_mutex_lock(&lf->mu);
	lf->conns[ca.slot] = -1;
	close(ca.fd);
	if (--lf->nconns == 0)
		pthread_cond_broadcast(&lf->idle);
	pthread_mutex_unlock(&lf->mu);
	return NULL;
}

static void
start_conn_locked(struct localfd *lf, int fd)
{
	int slot = -1;
	for (int i = 0; i < LFD_MAX_CONNS && slot < 0; i++)
		if (lf->conns[i] < 0)
			slot = i;
	struct conn_arg *ca = slot >= 0 ? malloc(sizeof(*ca)) : NULL;
	if (!ca) {
		close(fd); /* over the cap: the client reads through HTTP */
		return;
	}
	*ca = (struct conn_arg){.lf = lf, .slot = slot, .fd = fd};
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256 * 1024);
	pthread_t t;
	lf->conns[slot] = fd;
	lf->nconns++;
	if (pthread_create(&t, &at, conn_thread, ca) != 0) {
		lf->conns[slot] = -1;
		lf->nconns--;
		close(fd);
		free(ca);
	}
	pthread_attr_destroy(&at);
}

static void *
acceptor_thread(void *arg)
{
	struct localfd *lf = arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = lf->lfd, .events = POLLIN},
		    {.fd = lf->wake[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		int fd = accept4(lf->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				usleep(10000);
			continue;
		}
		pthread_mutex_lock(&lf->mu);
		if (lf->stopping)
			close(fd);
		else
			start_conn_locked(lf, fd);
		pthread_mutex_unlock(&lf->mu);
	}
	return NULL;
}

struct localfd *
localfd_start(struct worker *w, const char *path, char **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	/* Clients get the path through /v1/local and may run elsewhere in
	 * the file tree (a daemonized ferry fuse runs in /): make it absolute. */
	char abs[sizeof(sa.sun_path) + 1], cwd[sizeof(sa.sun_path)];
	if (path[0] != '/') {
		if (!getcwd(cwd, sizeof(cwd)) ||
		    snprintf(abs, sizeof(abs), "%s/%s", cwd, path) >= (int)sizeof(abs)) {
			*err = strdup("local socket path too long (at most 107 bytes, absolute)");
			return NULL;
		}
		path = abs;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		*err = strdup("local socket path too long (at most 107 bytes)");
		return NULL;
	}
	struct localfd *lf = calloc(1, sizeof(*lf));
	if (!lf) {
		*err = strdup("out of memory");
		return NULL;
	}
	lf->w = w;
	memcpy(lf->path, path, strlen(path) + 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	for (int i = 0; i < LFD_MAX_CONNS; i++)
		lf->conns[i] = -1;
	lf->lfd = lf->wake[0] = lf->wake[1] = -1;
	if (getrandom(lf->id, sizeof(lf->id), 0) != (ssize_t)sizeof(lf->id))
		goto fail;
	lf->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lf->lfd < 0 || pipe2(lf->wake, O_CLOEXEC) < 0)
		goto fail;
	/* A socket left by a worker that died: nobody can be listening on it
	 * (the state dir is one worker's), so replace it. */
	struct stat sb;
	if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
		unlink(path);
	mode_t old = umask(0177); /* the socket is born 0600 */
	int br = bind(lf->lfd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (br < 0 || chmod(path, 0600) < 0 || listen(lf->lfd, 128) < 0)
		goto fail;
	pthread_mutex_init(&lf->mu, NULL);
	pthread_cond_init(&lf->idle, NULL);
	if (pthread_create(&lf->acceptor, NULL, acceptor_thread, lf) != 0) {
		pthread_mutex_destroy(&lf->mu);
		pthread_cond_destroy(&lf->idle);
		unlink(path);
		errno = EAGAIN;
		goto fail;
	}
	return lf;
fail:;
	char msg[256 + sizeof(lf->path)];
	snprintf(msg, sizeof(msg), "local socket %s: %s", path, strerror(errno));
	*err = strdup(msg);
	if (lf->lfd >= 0)
		close(lf->lfd);
	if (lf->wake[0] >= 0)
		close(lf->wake[0]);
	if (lf->wake[1] >= 0)
		close(lf->wake[1]);
	free(lf);
	return NULL;
}

void
localfd_stop(struct localfd **lfp)
{
	struct localfd *lf = *lfp;
	if (!lf)
		return;
	*lfp = NULL;
	ssize_t wr;
	do
		wr = write(lf->wake[1], "x", 1);
	while (wr < 0 && errno == EINTR);
	pthread_join(lf->acceptor, NULL);
	unlink(lf->path);
	pthread_mutex_lock(&lf->mu);
	lf->stopping = 1;
	for (int i = 0; i < LFD_MAX_CONNS; i++)
		if (lf->conns[i] >= 0)
			shutdown(lf->conns[i], SHUT_RDWR); /* wakes its recv */
	while (lf->nconns > 0)
		pthread_cond_wait(&lf->idle, &lf->mu);
	pthread_mutex_unlock(&lf->mu);
	close(lf->lfd);
	close(lf->wake[0]);
	close(lf->wake[1]);
	pthread_mutex_destroy(&lf->mu);
	pthread_cond_destroy(&lf->idle);
	free(lf);
}

const char *
localfd_path(const struct localfd *lf)
{
	return lf->path;
}

void
localfd_id_hex(const struct localfd *lf, char *out)
{
	hex_encode(lf->id, LFD_ID_LEN, out);
}

void
localfd_metrics_render(struct dbuf *b)
{
	dbuf_adds(b, "# HELP ferry_local_fd_reads_total Local reads answered with page file descriptors, by result.\n"
	    "# TYPE ferry_local_fd_reads_total counter\n");
	for (int i = 0; i < R__N; i++)
		dbuf_printf(b, "ferry_local_fd_reads_total{result=\"%s\"} %lld\n", result_name[i],
		    (long long)__atomic_load_n(&g_results[i], __ATOMIC_RELAXED));
}
