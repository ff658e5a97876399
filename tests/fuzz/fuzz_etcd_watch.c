/*
 * fuzz_etcd_watch.c: libFuzzer harness for the etcd watch stream parser
 * (etcd_watch_feed in src/cluster/etcd.c, the code on_watch_body runs on
 * every chunk curl hands it).
 *
 * Input: byte 0 = cuts (bits 0-2: how many) | stop (bits 3-7: the callback
 * answers non-zero at that event, 0 never); then two little-endian bytes
 * per cut, each the length of the next chunk (modulo what is left); the
 * rest is the stream, whose last chunk is whatever the cuts leave.  Each
 * chunk is copied into an exact-size heap block so ASan catches a read
 * past it.
 *
 * Invariants: the stream cut into chunks gives exactly the events, result
 * and *last_rev of the same stream fed whole (a message split anywhere is
 * still one message); every event is a PUT or DELETE with a non-empty key,
 * a DELETE has no value, key and value together are no longer than the
 * input (base64 only shrinks), and *last_rev is at least every delivered
 * mod_revision; once done, the parser takes no more bytes and delivers no
 * more events; the message buffer never holds more than the input nor
 * ETCD_WATCH_MSG_MAX; a finished stream's result is one of the errnos the
 * client documents (or the callback's value).
 */
// FUZZ_SOURCES: src/common/util.c src/common/dbuf.c src/common/json.c src/common/log.c src/common/curl_errno.c src/common/curl_pool.c src/cluster/etcd.c
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/etcd_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STOP_VALUE 4242

struct run {
	size_t limit;     /* key + value bytes an event may have: the input */
	int stop_at;      /* answer STOP_VALUE at this event (1-based); 0 never */
	int n;            /* events delivered */
	int after_done;   /* set when the parser reported done */
	uint64_t digest;  /* of every event, in order */
	int64_t max_rev;
	int64_t *last_rev;
};

static uint64_t
mix(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) /* FNV-1a: reads every byte */
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static int
on_event(void *arg, const struct etcd_event *ev)
{
	struct run *r = arg;
	if (r->after_done)
		abort(); /* an event after the parser said it was done */
	if (ev->type != ETCD_EV_PUT && ev->type != ETCD_EV_DELETE)
		abort();
	if (ev->klen == 0 || !ev->key || ev->klen > r->limit ||
	    ev->vlen > r->limit - ev->klen)
		abort();
	if (ev->vlen && !ev->val)
		abort();
	if (ev->type == ETCD_EV_DELETE && ev->vlen != 0)
		abort();
	/* The last revision is raised after the callback returns, never
	 * before: what it holds now was delivered earlier. */
	if (r->last_rev && *r->last_rev != r->max_rev)
		abort();
	r->digest = mix(r->digest, &ev->type, sizeof(ev->type));
	r->digest = mix(r->digest, &ev->klen, sizeof(ev->klen));
	r->digest = mix(r->digest, ev->key, ev->klen);
	r->digest = mix(r->digest, &ev->vlen, sizeof(ev->vlen));
	if (ev->vlen)
		r->digest = mix(r->digest, ev->val, ev->vlen);
	r->digest = mix(r->digest, &ev->mod_revision, sizeof(ev->mod_revision));
	if (ev->mod_revision > r->max_rev)
		r->max_rev = ev->mod_revision;
	r->n++;
	return r->stop_at && r->n == r->stop_at ? STOP_VALUE : 0;
}

static int
result_ok(int r)
{
	switch (r) {
	case STOP_VALUE:
	case -EPROTO:    /* malformed stream */
	case -E2BIG:     /* over a limit */
	case -ECANCELED: /* compacted */
	case -ECONNRESET: /* canceled otherwise */
	/* an error object's gRPC code */
	case -EINVAL:
	case -ETIMEDOUT:
	case -ENOENT:
	case -EEXIST:
	case -EACCES:
	case -EAGAIN:
	case -EIO:
		return 1;
	default:
		return 0;
	}
}

/* Feeds s[0..n) in ncuts + 1 chunks (the last takes what is left), checking
 * the parser after each; the run's record in *rr, the parser's final done
 * flag and result in *done and *res. */
static void
feed(const uint8_t *s, size_t n, const size_t *cuts, int ncuts, int stop_at,
    size_t limit, struct run *rr, int *done, int *res)
{
	int64_t last_rev = 0;
	memset(rr, 0, sizeof(*rr));
	rr->limit = limit;
	rr->stop_at = stop_at;
	rr->last_rev = &last_rev;
	rr->digest = 0xcbf29ce484222325ull;
	struct etcd_watch_parser w;
	etcd_watch_parser_init(&w, on_event, rr, NULL, &last_rev);
	size_t off = 0;
	for (int i = 0; i <= ncuts; i++) {
		size_t len = i < ncuts ? cuts[i] : n - off;
		char *chunk = malloc(len ? len : 1);
		if (!chunk)
			abort();
		if (len)
			memcpy(chunk, s + off, len);
		off += len;
		int was_done = w.done;
		int d = etcd_watch_feed(&w, chunk, len);
		free(chunk);
		if (d != (w.done != 0) || (was_done && !d))
			abort();
		if (d)
			rr->after_done = 1;
		if (w.msg.len > limit || w.msg.len > ETCD_WATCH_MSG_MAX)
			abort();
		/* Past the limit only by the one bracket that stopped it. */
		if (w.depth < 0 || w.depth > ETCD_WATCH_DEPTH_MAX + 1 ||
		    (!w.done && w.depth > ETCD_WATCH_DEPTH_MAX))
			abort();
	}
	if (last_rev != rr->max_rev)
		abort();
	*done = w.done;
	*res = w.r;
	if (w.done && !result_ok(w.r))
		abort();
	if (w.done && w.r == STOP_VALUE && rr->n != stop_at)
		abort();
	etcd_watch_parser_free(&w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int ncuts = data[0] & 7;
	int stop_at = data[0] >> 3;
	size_t hdr = 1 + 2 * (size_t)ncuts;
	if (size < hdr)
		return 0;
	const uint8_t *s = data + hdr;
	size_t n = size - hdr;
	size_t cuts[8], left = n;
	for (int i = 0; i < ncuts; i++) {
		size_t want = (size_t)data[1 + 2 * i] |
		    (size_t)data[2 + 2 * i] << 8;
		cuts[i] = want % (left + 1);
		left -= cuts[i];
	}

	struct run a, b;
	int done_a, done_b, res_a, res_b;
	feed(s, n, cuts, ncuts, stop_at, n, &a, &done_a, &res_a);
	feed(s, n, NULL, 0, stop_at, n, &b, &done_b, &res_b);
	/* Chunking must not matter. */
	if (a.n != b.n || a.digest != b.digest || a.max_rev != b.max_rev ||
	    done_a != done_b || (done_a && res_a != res_b))
		abort();
	return 0;
}
