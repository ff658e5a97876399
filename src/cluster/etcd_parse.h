/*
 * etcd_parse.h: internal to the etcd client.  The parsers for what etcd's
 * JSON gateway sends (unary replies and the watch stream), split from the
 * transport in etcd.c so that they can be fed bytes without a network: the
 * client itself goes through exactly these functions, and so do the unit
 * tests and the libFuzzer harnesses (tests/fuzz/fuzz_etcd_*.c).  Not part
 * of the client's API: only etcd.c and tests include this.
 *
 * Every function here is pure parsing over caller-supplied bytes: no I/O,
 * no locks; a state (struct etcd_watch_parser) belongs to one thread.
 */
#ifndef FERRY_ETCD_PARSE_H
#define FERRY_ETCD_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/dbuf.h"
#include "../common/json.h"
#include "etcd.h"

/* One watch message: an event's key and value (ETCD_REPLY_MAX) grow by a
 * third in base64, and a message may carry several events. */
#define ETCD_WATCH_MSG_MAX (ETCD_REPLY_MAX * 2)
/* Nesting of one watch message, counted while splitting the stream. */
#define ETCD_WATCH_DEPTH_MAX 64

/* ------------------------------------------------------------------ */
/* Unary replies                                                        */

/*
 * A reply body (len bytes, trailing whitespace allowed) with HTTP status
 * into *d, which must then be an object: 0 (d to be json_free'd; its text
 * is body, which must outlive it), or an errno with nothing to free: the
 * error object's gRPC code as an errno (see etcd_reply_error), -EPROTO /
 * -E2BIG for a 2xx body we cannot parse, -ENOENT for an unparsable 404,
 * -EIO for any other non-2xx answer.
 */
int etcd_parse_reply(const char *body, size_t len, long status,
    struct json_doc *d);

/* The error object in object obj ({"error":"...","code":N} or
 * {"error":{"grpc_code":N,...}}) as a negative errno; 0 if there is none,
 * -EPROTO if it is malformed. */
int etcd_reply_error(const struct json_doc *d, int obj);

/* One page of a /v3/kv/range reply asked from key *from (*flen bytes):
 * fn per kv in order (each key must start with prefix[0..plen) and not
 * sort before *from, or -EPROTO; fn's non-zero stops and is returned),
 * *revision gets header.revision (required, > 0), *more the "more" flag.
 * With more set, *from (malloc'd, realloc'd here) and *flen become the key
 * to start the next page at: the last key plus a NUL byte, so each page
 * starts strictly after the one before. */
int etcd_parse_range(const struct json_doc *d, const char *prefix,
    size_t plen, etcd_kv_fn fn, void *arg, int64_t *revision, int *more,
    char **from, size_t *flen);
/* /v3/lease/grant: the lease's ID (non-zero) or -EPROTO. */
int etcd_parse_lease_grant(const struct json_doc *d, int64_t *lease_id);
/* /v3/lease/keepalive: 0, -ENOENT (TTL <= 0: the lease is gone), -EPROTO. */
int etcd_parse_keepalive(const struct json_doc *d);
/* /v3/kv/txn of etcd_create: 0 if it succeeded, else -EEXIST. */
int etcd_parse_txn(const struct json_doc *d);
/* /v3/kv/deleterange: 0, -ENOENT (nothing deleted), -EPROTO. */
int etcd_parse_delete(const struct json_doc *d);

/* ------------------------------------------------------------------ */
/* The watch stream                                                     */

/* Splits a watch stream into its JSON messages, however the bytes were
 * chunked, and calls fn per event.  msg holds at most ETCD_WATCH_MSG_MAX
 * bytes: the only memory the stream's length can make us hold. */
struct etcd_watch_parser {
	struct dbuf msg;       /* the message being received */
	int depth, in_str, esc;
	int done;              /* r is final: no more bytes are taken */
	int r;
	int (*fn)(void *arg, const struct etcd_event *ev);
	void *arg;
	const volatile int *stop; /* may be NULL */
	int64_t *last_rev;        /* may be NULL */
};

void etcd_watch_parser_init(struct etcd_watch_parser *w,
    int (*fn)(void *arg, const struct etcd_event *ev), void *arg,
    const volatile int *stop, int64_t *last_rev);
void etcd_watch_parser_free(struct etcd_watch_parser *w);
/*
 * Feeds the next len bytes of the stream.  0: more are welcome.  1: the
 * parser is done and w->r is the watch's result (fn's non-zero, a stream
 * error as etcd_watch_prefix documents, or 0 when *stop was seen after a
 * message); later feeds return 1 at once.  *last_rev is raised to each
 * delivered event's mod_revision.
 */
int etcd_watch_feed(struct etcd_watch_parser *w, const char *p, size_t len);

#endif
