/*
 * router.c: the cluster read path (router.h): block placement, streaming a
 * block from the peer that holds it, and failover down the block's order.
 *
 * Also router_announce: a change of this worker's, told to every peer.
 *
 * Threads: router_read runs on request threads (S3 gateway, control API),
 * any number at once.  The idle curl handles (curl_pool.c) and the table of
 * peers that failed recently (suspects.c) have their own mutexes, never
 * held across I/O.  Counters are atomics.
 *
 * Invariants: bytes reach the sink in order and exactly once: each
 * candidate is asked for the rest of the block from the first byte not yet
 * sent, and whatever a peer sends beyond what was asked, or from another
 * offset or version, fails that peer before it reaches the sink.  Every
 * peer request pins the version with If-Match, so bytes of two versions are
 * never joined.
 */
#include "router.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../cluster/placement.h"
#include "../cluster/suspects.h"
#include "../common/curl_errno.h"
#include "../common/curl_pool.h"
#include "../common/dbuf.h"
#include "../common/http_reply.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/vas.h"
#include "objkey.h"

#define ROUTER_POOL_MAX 32
/* A peer that failed is skipped this long: one failed request per peer
 * per period, not one per read, until membership drops a dead peer. */
#define ROUTER_SUSPECT_MS 3000
#define ROUTER_CONNECT_TIMEOUT_MS 1000L
/* A peer that sends nothing for this long is dead (the client's own
 * slowness also stalls us, so this is generous). */
#define ROUTER_STALL_SECS 10L
#define ROUTER_ORDER_STACK 64
#define ROUTER_RECV_BUFFER (256L << 10)
#define ROUTER_HOT_SLOTS 1024


struct router {
	struct cluster *cl;
	struct reader *rd;
	char self[CLUSTER_ID_MAX + 1];
	int64_t block_size;
	char *auth; /* "Authorization: Bearer ..." or NULL */
	struct curl_pool pool; /* idle peer handles */
	struct suspects sus; /* peers that failed lately, by id */
	struct router_stats st; /* atomics */
	uint64_t rr;            /* atomic: spreads reads over replicas */

	/* Hot blocks: reads per second of the blocks read from peers, in a
	 * fixed table (a block that loses its slot to another is simply
	 * counted again from zero). */
	int hot_threshold, hot_extra;
	pthread_mutex_t hot_mu;
	struct hot_slot {
		uint64_t key;
		int64_t sec;       /* the second count is for */
		uint32_t count;    /* reads in that second */
		int64_t hot_until; /* hot until then (seconds) */
	} hot[ROUTER_HOT_SLOTS];
};

struct router *
router_open(struct cluster *cl, const char *self_id, int64_t block_size,
    const char *token, struct reader *rd)
{
	if (curl_ready() < 0)
		return NULL;
	struct router *rt = calloc(1, sizeof(*rt));
	if (!rt)
		return NULL;
	rt->cl = cl;
	rt->rd = rd;
	pthread_mutex_init(&rt->hot_mu, NULL);
	snprintf(rt->self, sizeof(rt->self), "%s", self_id);
	rt->block_size = block_size > 0 ? block_size : PLACEMENT_DEFAULT_BLOCK;
	if (token) {
		size_t n = strlen(token) + 32;
		rt->auth = malloc(n);
		if (!rt->auth) {
			free(rt);
			return NULL;
		}
		snprintf(rt->auth, n, "Authorization: Bearer %s", token);
	}
	curl_pool_init(&rt->pool, ROUTER_POOL_MAX);
	suspects_init(&rt->sus);
	return rt;
}

void
router_close(struct router **rtp)
{
	struct router *rt = *rtp;
	*rtp = NULL;
	if (!rt)
		return;
	curl_pool_destroy(&rt->pool);
	suspects_destroy(&rt->sus);
	pthread_mutex_destroy(&rt->hot_mu);
	free(rt->auth);
	free(rt);
}

void
router_set_cluster(struct router *rt, struct cluster *cl)
{
	__atomic_store_n(&rt->cl, cl, __ATOMIC_RELEASE);
}

int64_t
router_block_size(const struct router *rt)
{
	return rt ? rt->block_size : PLACEMENT_DEFAULT_BLOCK;
}

static void hot_stats(struct router *rt, struct router_stats *out);

void
router_get_stats(const struct router *rt, struct router_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!rt)
		return;
	out->local_blocks = __atomic_load_n(&rt->st.local_blocks, __ATOMIC_RELAXED);
	out->forwarded = __atomic_load_n(&rt->st.forwarded, __ATOMIC_RELAXED);
	out->forwarded_bytes = __atomic_load_n(&rt->st.forwarded_bytes, __ATOMIC_RELAXED);
	out->failovers = __atomic_load_n(&rt->st.failovers, __ATOMIC_RELAXED);
	out->peer_errors = __atomic_load_n(&rt->st.peer_errors, __ATOMIC_RELAXED);
	out->announce_misses = __atomic_load_n(&rt->st.announce_misses, __ATOMIC_RELAXED);
	out->hot_reads = __atomic_load_n(&rt->st.hot_reads, __ATOMIC_RELAXED);
	hot_stats((struct router *)rt, out);
}

struct fwd {
	CURL *h;
	const struct read_sink *sink;
	int64_t off;        /* first byte asked for */
	int64_t want, got;
	const char *etag;   /* the version asked for */
	long status;        /* set at the first body byte */
	int sink_err;       /* the sink failed: our client went away */
	int bad;            /* the peer sent something it must not */
	int64_t range_start; /* from Content-Range; -1 if none */
	int etag_ok;
	int64_t last_ms;    /* when the peer last sent something */
	struct cluster *cl;
	const char *peer_id;
};

/*
 * A peer silent for ROUTER_STALL_SECS is dead, measured from its last
 * byte (curl's low-speed check averages, and fires late mid-stream).  A
 * silent peer that membership has dropped meanwhile (its lease ran out:
 * hung, or cut off) is left at once.
 */
static int
fwd_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	const struct fwd *f = arg;
	int64_t idle = now_ms() - f->last_ms;
	if (idle > ROUTER_STALL_SECS * 1000)
		return 1;
	if (idle > 1000 && f->cl) {
		struct cluster_view *v = cluster_view_get(f->cl);
		int gone = cluster_view_find(v, f->peer_id) < 0;
		cluster_view_release(&v);
		return gone;
	}
	return 0;
}

static size_t
fwd_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct fwd *f = arg;
	size_t n = sz * nm;
	f->last_ms = now_ms();
	struct http_hdr h;
	if (http_hdr_split(p, n, &h) < 0)
		return n;
	int64_t a, b, total;
	if (http_hdr_is(&h, "content-range")) {
		if (http_content_range(h.value, h.value_len, &a, &b, &total) == 0 && a >= 0)
			f->range_start = a;
	} else if (http_hdr_is(&h, "etag")) {
		f->etag_ok = http_etag_is(h.value, h.value_len, f->etag);
	}
	return n;
}

static size_t
fwd_body(char *p, size_t sz, size_t nm, void *arg)
{
	struct fwd *f = arg;
	size_t n = sz * nm;
	f->last_ms = now_ms();
	if (f->status == 0) {
		curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &f->status);
		if (f->status != 206 && f->status != 200)
			return 0; /* an error answer: its body is not data */
		int range_ok = f->status == 206 ? f->range_start == f->off :
		    f->off == 0; /* 200: the whole object, asked from 0 */
		if (!range_ok || !f->etag_ok) {
			f->bad = 1;
			return 0;
		}
	}
	if ((int64_t)n > f->want - f->got) {
		/* More than asked (a 200 for a whole object is cut here:
		 * the rest is not ours to send). */
		if (f->status == 206) {
			f->bad = 1;
			return 0;
		}
		n = (size_t)(f->want - f->got);
		if (n == 0)
			return 0;
	}
	int r = f->sink->mem(f->sink->arg, p, n);
	if (r) {
		f->sink_err = r;
		return 0;
	}
	f->got += (int64_t)n;
	return sz * nm == n ? n : 0;
}

/*
 * Asks peer for bytes [off, off+len) of (m, path) at version etag, with
 * X-Ferry-Hop so it answers from itself.  Returns 0 when all came, else
 * -errno with *got the bytes that did reach the sink: *sink_failed set when
 * the sink (our client) failed, -ESTALE when the peer has another version.
 */
static int
peer_read(struct router *rt, const struct member *peer, const struct mount *m,
    const char *path, const char *etag, int64_t off, int64_t len,
    const struct read_sink *sink, int64_t *got, int *sink_failed)
{
	*got = 0;
	*sink_failed = 0;
	CURL *h = curl_pool_get(&rt->pool);
	if (!h)
		return -ENOMEM;
	struct dbuf url;
	dbuf_init(&url, 16384);
	int ur = dbuf_printf(&url, "http://%s/v1/data?path=/%s/", peer->ctl, m->name);
	if (!ur)
		ur = url_encode(&url, path, strlen(path), 1);
	if (!ur)
		ur = dbuf_add(&url, "", 1);
	char range[80], ifm[UFS_ETAG_MAX + 16];
	snprintf(range, sizeof(range), "Range: bytes=%" PRId64 "-%" PRId64, off, off + len - 1);
	snprintf(ifm, sizeof(ifm), "If-Match: \"%s\"", etag);
	struct curl_slist *hl = NULL, *t;
	int r = 0;
	if (ur) {
		r = -ENAMETOOLONG;
		goto out;
	}
	t = curl_slist_append(hl, range);
	if (t)
		hl = t;
	t = curl_slist_append(hl, ifm);
	if (t)
		hl = t;
	t = curl_slist_append(hl, "X-Ferry-Hop: 1");
	if (t)
		hl = t;
	if (rt->auth && (t = curl_slist_append(hl, rt->auth)))
		hl = t;
	struct fwd f = {.h = h, .sink = sink, .off = off, .want = len,
	    .etag = etag, .range_start = -1, .last_ms = now_ms(),
	    .cl = __atomic_load_n(&rt->cl, __ATOMIC_ACQUIRE), .peer_id = peer->id};
	curl_easy_setopt(h, CURLOPT_URL, url.p);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, fwd_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &f);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fwd_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &f);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ROUTER_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, fwd_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &f);
	/* Fewer, larger writes to our client (default: 16 KiB). */
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, ROUTER_RECV_BUFFER);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	CURLcode cc = curl_easy_perform(h);
	*got = f.got;
	long status = f.status;
	if (!status)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (f.sink_err) {
		*sink_failed = 1;
		r = f.sink_err;
	} else if (cc == CURLE_OK && f.got == len) {
		r = 0;
	} else if (status == 412 || status == 416 || status == 404) {
		r = -ESTALE; /* the peer sees another version (or none) */
	} else if (f.bad) {
		LOG_WARN("cluster: peer %s sent bytes of another range or version for /%s/%s; asking another",
		    peer->ctl, m->name, path);
		r = -EPROTO;
	} else if (status >= 500) {
		r = -EIO; /* the peer could not read the UFS either */
	} else if (cc == CURLE_OK) {
		r = status == 401 ? -EACCES : -EPROTO; /* short, or refused */
	} else {
		r = curl_errno(h, cc);
		if (r == -EIO || r == -EPROTO)
			r = -ECONNRESET; /* a transport failure: ask the next */
	}
	curl_pool_put(&rt->pool, h, r == 0);
	h = NULL;
out:
	if (h)
		curl_pool_put(&rt->pool, h, 0);
	curl_slist_free_all(hl);
	dbuf_free(&url);
	return r;
}

/* --- hot blocks ------------------------------------------------------------------ */

void
router_set_hot(struct router *rt, int threshold, int extra)
{
	rt->hot_threshold = threshold > 0 ? threshold : 0;
	rt->hot_extra = extra > 0 ? extra : 0;
}

/* Counts a read of block key; 1 if the block is hot now. */
static int
hot_note(struct router *rt, uint64_t key)
{
	if (!rt->hot_threshold || !rt->hot_extra)
		return 0;
	int64_t now = (now_ms() / 1000);
	pthread_mutex_lock(&rt->hot_mu);
	struct hot_slot *h = &rt->hot[key % ROUTER_HOT_SLOTS];
	if (h->key != key) {
		if (h->hot_until > now) {
			/* The slot's block is hot: it keeps it. */
			pthread_mutex_unlock(&rt->hot_mu);
			return 0;
		}
		memset(h, 0, sizeof(*h));
		h->key = key;
	}
	if (h->sec != now) {
		h->sec = now;
		h->count = 0;
	}
	if (++h->count > (uint32_t)rt->hot_threshold) {
		if (h->hot_until <= now)
			LOG_INFO("cluster: block %016" PRIx64 " is hot (over %d reads/s here): "
			    "spread over %d more workers", key, rt->hot_threshold, rt->hot_extra);
		h->hot_until = now + ROUTER_HOT_COOL_S;
	}
	int hot = h->hot_until > now;
	pthread_mutex_unlock(&rt->hot_mu);
	return hot;
}

int64_t
router_hot_blocks(struct router *rt, const struct mount *m, const char *path,
    int64_t size)
{
	if (!rt->hot_threshold || !rt->hot_extra || rt->block_size <= 0)
		return 0;
	int64_t now = (now_ms() / 1000), n = 0;
	pthread_mutex_lock(&rt->hot_mu);
	for (int64_t b = 0; b * rt->block_size < size; b++) {
		uint64_t key = placement_key(m->name, path, b);
		const struct hot_slot *h = &rt->hot[key % ROUTER_HOT_SLOTS];
		n += h->key == key && h->hot_until > now;
	}
	pthread_mutex_unlock(&rt->hot_mu);
	return n;
}

static void
hot_stats(struct router *rt, struct router_stats *out)
{
	int64_t now = (now_ms() / 1000), n = 0;
	pthread_mutex_lock(&rt->hot_mu);
	for (int i = 0; i < ROUTER_HOT_SLOTS; i++)
		n += rt->hot[i].hot_until > now;
	pthread_mutex_unlock(&rt->hot_mu);
	out->hot_blocks = n;
	out->hot_replicas = n * rt->hot_extra;
}

/* --- routing ------------------------------------------------------------------ */

/* 1 if this worker (index self in v) is one of block b's first reps
 * (<= 0: the mount's replicas) in placement order. */
static int
holds_block(const struct cluster_view *v, int self, struct mount *m,
    const char *path, int64_t b, int reps)
{
	int top[MOUNT_REPLICAS_MAX];
	if (self < 0)
		return 0;
	if (reps <= 0)
		reps = m->replicas;
	int n = placement_order(v, placement_key(m->name, path, b), top,
	    reps < MOUNT_REPLICAS_MAX ? reps : MOUNT_REPLICAS_MAX);
	for (int i = 0; i < n; i++)
		if (top[i] == self)
			return 1;
	return 0;
}

struct suspect_ctx {
	struct router *rt;
	const struct cluster_view *v;
};

static int
router_suspect(void *arg, int idx)
{
	const struct suspect_ctx *c = arg;
	return suspects_has(&c->rt->sus, c->v->m[idx].id);
}

/*
 * One block's range, [off, off+len), entirely within block b, which this
 * worker does not hold: asked of the block's candidates in the order every
 * reader uses (placement_candidates: replicas from a rotating one, then
 * the others, peers that failed lately last) up to this worker, which is
 * always there to fall back on: it reads the rest itself.
 */
static int
read_block(struct router *rt, const struct cluster_view *v, struct mount *m,
    const char *path, const struct ufs_stat *st, const char *etag,
    int64_t b, int64_t off, int64_t len, const struct read_sink *sink,
    int64_t *sent)
{
	int stack[ROUTER_ORDER_STACK];
	int *cand = stack;
	if (v->n > ROUTER_ORDER_STACK && !(cand = malloc(sizeof(int) * (size_t)v->n)))
		cand = NULL;
	int self = cluster_view_find(v, rt->self);
	uint64_t key = placement_key(m->name, path, b);
	int reps = m->replicas;
	if (hot_note(rt, key)) {
		/* Spread over more workers; this one may be among them. */
		reps = reps + rt->hot_extra < v->n ? reps + rt->hot_extra : v->n;
		__atomic_fetch_add(&rt->st.hot_reads, 1, __ATOMIC_RELAXED);
	}
	uint64_t spin = reps > 1 ? __atomic_fetch_add(&rt->rr, 1, __ATOMIC_RELAXED) : 0;
	struct suspect_ctx ctx = {rt, v};
	int n = cand ? placement_candidates(v, key, reps, spin, router_suspect, &ctx,
	    cand, v->n) : 0;
	int r = -EHOSTUNREACH, tried = 0;
	int64_t done = 0;
	for (int k = 0; k < n && done < len && cand[k] != self; k++) {
		const struct member *peer = &v->m[cand[k]];
		if (suspects_has(&rt->sus, peer->id))
			break; /* the rest failed lately: read it here */
		if (tried++)
			__atomic_fetch_add(&rt->st.failovers, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&rt->st.forwarded, 1, __ATOMIC_RELAXED);
		int64_t got = 0;
		int sink_failed = 0;
		r = peer_read(rt, peer, m, path, etag, off + done, len - done,
		    sink, &got, &sink_failed);
		done += got;
		*sent += got;
		__atomic_fetch_add(&rt->st.forwarded_bytes, got, __ATOMIC_RELAXED);
		if (r == 0 || sink_failed || r == -ESTALE)
			goto out; /* done; our client went away; another version */
		__atomic_fetch_add(&rt->st.peer_errors, 1, __ATOMIC_RELAXED);
		suspects_set(&rt->sus, peer->id, ROUTER_SUSPECT_MS);
		LOG_WARN("cluster: block %" PRId64 " of /%s/%s from %s (%s): %s; %s for %d s",
		    b, m->name, path, peer->id, peer->ctl, strerror(-r),
		    "asking the next worker, and skipping this one", ROUTER_SUSPECT_MS / 1000);
		if (r == -EIO)
			break; /* the UFS failed there: try it from here */
	}
	if (done == len) {
		r = 0;
		goto out;
	}
	if (tried)
		__atomic_fetch_add(&rt->st.failovers, 1, __ATOMIC_RELAXED);
	/* Every candidate before this worker failed (or there were none). */
	__atomic_fetch_add(&rt->st.local_blocks, 1, __ATOMIC_RELAXED);
	int64_t got = 0;
	r = reader_read(rt->rd, m, path, st, off + done, len - done, sink, &got);
	*sent += got;
out:
	if (cand != stack)
		free(cand);
	return r;
}

int
router_read(struct router *rt, struct mount *m, const char *path,
    const struct ufs_stat *st, int64_t off, int64_t len,
    const struct read_sink *sink, int64_t *sent, int local_only)
{
	struct cluster *cl = __atomic_load_n(&rt->cl, __ATOMIC_ACQUIRE);
	if (!cl || local_only)
		return reader_read(rt->rd, m, path, st, off, len, sink, sent);
	*sent = 0;
	char etag[UFS_ETAG_MAX];
	objkey_etag(st, etag, sizeof(etag));
	struct cluster_view *v = cluster_view_get(cl);
	int r = 0;
	int64_t pos = off, end = off + len;
	int self = cluster_view_find(v, rt->self);
	while (pos < end && r == 0) {
		int64_t b = pos / rt->block_size;
		int64_t bend = (b + 1) * rt->block_size;
		if (bend > end)
			bend = end;
		if (holds_block(v, self, m, path, b, 0)) {
			/* Consecutive blocks held here are one local read, so
			 * the reader's window runs on across their boundaries. */
			while (bend < end && holds_block(v, self, m, path, bend / rt->block_size, 0))
				bend = bend + rt->block_size < end ? bend + rt->block_size : end;
			__atomic_fetch_add(&rt->st.local_blocks, 1, __ATOMIC_RELAXED);
			int64_t got = 0;
			r = reader_read(rt->rd, m, path, st, pos, bend - pos, sink, &got);
			*sent += got;
			pos += got;
			continue;
		}
		int64_t before = *sent;
		r = read_block(rt, v, m, path, st, etag, b, pos, bend - pos, sink, sent);
		pos += *sent - before;
		VAS_ASSERT(r != 0 || pos == bend);
	}
	cluster_view_release(&v);
	return r;
}

int
router_is_local(struct router *rt, struct mount *m, const char *path,
    int64_t off)
{
	return router_holds(rt, m, path, off, 0);
}

int
router_holds(struct router *rt, struct mount *m, const char *path, int64_t off,
    int replicas)
{
	struct cluster *cl = __atomic_load_n(&rt->cl, __ATOMIC_ACQUIRE);
	if (!cl)
		return 1;
	struct cluster_view *v = cluster_view_get(cl);
	int yes = holds_block(v, cluster_view_find(v, rt->self), m, path,
	    off / rt->block_size, replicas);
	cluster_view_release(&v);
	return yes;
}

/* --- changes: telling the peers ---------------------------------------------- */

static size_t
discard_body(char *p, size_t sz, size_t nm, void *arg)
{
	return sz * nm;
}

int
router_announce(struct router *rt, const struct mount *m, const char *path)
{
	struct cluster *cl = __atomic_load_n(&rt->cl, __ATOMIC_ACQUIRE);
	if (!cl)
		return 0;
	struct cluster_view *v = cluster_view_get(cl);
	int missed = 0;
	for (int i = 0; v && i < v->n; i++) {
		const struct member *peer = &v->m[i];
		if (strcmp(peer->id, rt->self) == 0)
			continue;
		CURL *h = curl_pool_get(&rt->pool);
		struct dbuf url;
		dbuf_init(&url, 16384);
		int ur = dbuf_printf(&url, "http://%s/v1/invalidate?path=/%s/", peer->ctl, m->name);
		if (!ur)
			ur = url_encode(&url, path, strlen(path), 1);
		if (!ur)
			ur = dbuf_add(&url, "", 1);
		struct curl_slist *hl = NULL;
		if (rt->auth)
			hl = curl_slist_append(NULL, rt->auth);
		long status = 0;
		CURLcode cc = CURLE_FAILED_INIT;
		if (h && !ur && (!rt->auth || hl)) {
			curl_easy_setopt(h, CURLOPT_URL, url.p);
			curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
			curl_easy_setopt(h, CURLOPT_POST, 1L);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
			curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_body);
			curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
			curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ROUTER_CONNECT_TIMEOUT_MS);
			curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ROUTER_ANNOUNCE_MS);
			curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
			cc = curl_easy_perform(h);
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		}
		int ok = cc == CURLE_OK && status >= 200 && status <= 299;
		if (!ok) {
			missed++;
			LOG_WARN("cluster: peer %s was not told that /%s/%s changed (%s); it sees the change within its sync interval",
			    peer->ctl, m->name, path, cc != CURLE_OK ?
			    curl_easy_strerror(cc) : status == 401 ? "HTTP 401: another control token?" : "an HTTP error");
		}
		if (h)
			curl_pool_put(&rt->pool, h, ok);
		curl_slist_free_all(hl);
		dbuf_free(&url);
	}
	cluster_view_release(&v);
	__atomic_fetch_add(&rt->st.announce_misses, missed, __ATOMIC_RELAXED);
	return missed;
}
