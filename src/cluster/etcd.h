/*
 * etcd.h: a small client of etcd v3's JSON gateway (POST /v3/...), over
 * libcurl: leases, put/delete/create, prefix range and prefix watch.  Keys
 * and values are byte strings (base64 on the wire).  Enough for ferry's
 * membership and cluster-wide mount table; nothing else.
 *
 * Errors: 0 or a negative errno: -ECONNREFUSED/-EHOSTUNREACH/-ETIMEDOUT
 * when no endpoint answers, -ENOENT (lease not found / expired), -EEXIST
 * (etcd_create on an existing key), -EPROTO (a reply we cannot parse),
 * -E2BIG (a reply over the size limit), -EINVAL (bad arguments).
 *
 * Thread-safety: a struct etcd may be shared by threads; each call uses its
 * own curl handle from a small pool.  etcd_watch_prefix blocks its caller
 * for the life of the stream.
 */
#ifndef FERRY_ETCD_H
#define FERRY_ETCD_H

#include <stddef.h>
#include <stdint.h>

/* Every reply body is bounded by this (range answers included). */
#define ETCD_REPLY_MAX (8u << 20)

struct etcd;

/* endpoints: "http://h:p[,http://h2:p2...]" (a bare "h:p" means http://).
 * Tries them in order, sticking to the last that answered.  NULL + *err
 * (malloc'd) on a malformed list.  No I/O here. */
struct etcd *etcd_open(const char *endpoints, char **err);
void etcd_close(struct etcd **e);

/* Per-call timeout for unary calls, milliseconds (default 2000). */
void etcd_set_timeout(struct etcd *e, long ms);

int etcd_lease_grant(struct etcd *e, int ttl_s, int64_t *lease_id);
/* One keep-alive.  -ENOENT when the lease has expired (TTL 0 answered). */
int etcd_lease_keepalive(struct etcd *e, int64_t lease_id);
int etcd_lease_revoke(struct etcd *e, int64_t lease_id);

/* lease_id 0: no lease. */
int etcd_put(struct etcd *e, const char *key, const void *val, size_t n,
    int64_t lease_id);
/* Put only if the key does not exist (a txn on create_revision == 0):
 * -EEXIST if it does. */
int etcd_create(struct etcd *e, const char *key, const void *val, size_t n,
    int64_t lease_id);
/* 0 if deleted, -ENOENT if there was no such key. */
int etcd_delete(struct etcd *e, const char *key);

/* Called per key; key/val are not NUL-terminated.  Non-zero stops the
 * listing, and etcd_range_prefix returns it. */
typedef int (*etcd_kv_fn)(void *arg, const char *key, size_t klen,
    const char *val, size_t vlen);
/* All keys under prefix, in key order; *revision gets the store revision
 * the answer is of (start a watch at revision + 1). */
int etcd_range_prefix(struct etcd *e, const char *prefix, etcd_kv_fn fn,
    void *arg, int64_t *revision);

enum etcd_event_type { ETCD_EV_PUT, ETCD_EV_DELETE };
struct etcd_event {
	enum etcd_event_type type;
	const char *key; /* not NUL-terminated */
	size_t klen;
	const char *val; /* empty for deletes */
	size_t vlen;
	int64_t mod_revision;
};
/*
 * Watches every key under prefix from start_rev on, calling fn per event in
 * order, until fn returns non-zero (returned), *stop becomes non-zero (0
 * returned within about a second), or the stream fails (negative errno;
 * -ECANCELED if etcd compacted past start_rev: range again).  *last_rev
 * is kept at the highest revision delivered, so a caller can resume at
 * *last_rev + 1.  One event's key+value is bounded by ETCD_REPLY_MAX.
 */
int etcd_watch_prefix(struct etcd *e, const char *prefix, int64_t start_rev,
    int (*fn)(void *arg, const struct etcd_event *ev), void *arg,
    const volatile int *stop, int64_t *last_rev);

#endif
