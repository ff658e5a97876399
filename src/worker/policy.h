/*
 * policy.h: what the cache keeps and for how long, per path: pins (never
 * evicted) and TTLs (dropped that long after being cached).  Rules are
 * (mount, path prefix) pairs, kept in <state_dir>/policy.json (mode 0600,
 * rewritten atomically) and reloaded at start; they apply to what is cached
 * now and to what is cached later.  The page store asks the policy about
 * each object it names (pagestore_classify_fn); a rule that changes makes
 * the store classify again the objects under its prefix.  A thread ends
 * TTLs (pagestore_expire, once a second).
 *
 * Thread-safety: one rwlock over the rules; the store's classifier takes
 * it shared under the store's lock (lock order: store, then policy).  The
 * policy never calls the store with its lock held.
 */
#ifndef FERRY_POLICY_H
#define FERRY_POLICY_H

#include <stdint.h>

#include "../common/dbuf.h"
#include "../store/pagestore.h"
#include "mounts.h"

#define POLICY_RULES_MAX 4096
#define POLICY_SHARES_MAX 1024     /* workers named in one rule */
#define POLICY_WORKER_ID_MAX 32
#define POLICY_TTL_MAX (10LL * 365 * 86400) /* ten years */

struct policy;

/* Loads path if it exists.  NULL + *err on an unreadable or bad file. */
struct policy *policy_open(const char *path, char **err);
/* Classifies the store's objects with the rules and starts the TTL thread. */
int policy_attach(struct policy *p, struct pagestore *ps);
void policy_close(struct policy **p);

/*
 * Pins (on) or unpins (off) mount m's objects under prefix ("" is the
 * whole mount); bytes: what the pin takes (the data under it), kept with
 * the rule for the pin limit.  Saved, then
 * applied to what is cached.  0, -ENOENT (no such pin to remove),
 * -ENOSPC (too many rules), -EIO (not saved: nothing changed).
 */
int policy_pin(struct policy *p, const struct mount *m, const char *prefix,
    int on, int64_t bytes);
/* What the pins take together (their bytes when made), cached or not; a
 * pin under another pin is counted in the outer one only. */
int64_t policy_pinned_total(struct policy *p);
/* The same if a pin of (ident, prefix) holding bytes were made as well
 * (pins under it then count in it; it counts nothing if a pin holds it
 * already), on this worker (id NULL) or on worker id (the shares). */
int64_t policy_pinned_after(struct policy *p, const char *id, uint64_t ident,
    const char *prefix, int64_t bytes);
/* Sets (ttl_s > 0) or clears (0: -ENOENT if it has none) the TTL of m's
 * objects under prefix. */
int policy_ttl(struct policy *p, const struct mount *m, const char *prefix,
    int64_t ttl_s);
/* Is (ident, path) under a pin?  Is anything under prefix pinned (a pin
 * of prefix, of a path above it, or of one below it)? */
int policy_is_pinned(struct policy *p, uint64_t ident, const char *path);
int policy_pins_under(struct policy *p, uint64_t ident, const char *prefix);

/* {"rules":[{"mount","path","pin","ttl"}...]} (mount: its name when the
 * rule was made). */
void policy_json(struct policy *p, struct dbuf *b);

/*
 * In a cluster the rules are the cluster's: each is a record in etcd
 * (rules/<name>), and every worker applies what etcd holds
 * (policy_apply_record, from the cluster's watch) and keeps a copy in its
 * state dir for a start while etcd is down.  A pin's record names each
 * worker's share of it (what placement gives that worker), for the pin
 * limit of each.
 */
struct policy_share_in {
	const char *id; /* a worker id */
	int64_t bytes;
};
/* This worker's id: which share of a record is its own. */
void policy_set_self(struct policy *p, const char *worker_id);
/* The record name of (ident, prefix): 16 hex digits. */
void policy_record_name(uint64_t ident, const char *prefix, char name[17]);
/*
 * The record rule (m, prefix) would have after a change (pin >= 0 sets or
 * clears the pin, ttl >= 0 sets or clears the TTL, as policy_pin and
 * policy_ttl): appended to b, or nothing appended when the change leaves
 * no rule (delete the record).  A pin made now takes total and the shares;
 * a pin made again keeps its own.  Its name into name.  0, -ENOENT (no such
 * pin or TTL to remove), -EINVAL, -ENOMEM.  Changes nothing.
 */
int policy_record_after(struct policy *p, const struct mount *m,
    const char *prefix, int pin, int64_t ttl, int64_t total,
    const struct policy_share_in *sh, int nsh, struct dbuf *b, char name[17]);
/* Applies record name as etcd now holds it (json NULL: deleted): the rule
 * replaces what was there, is saved and classified.  0, -EINVAL (not a
 * rule's record: ignored), -ENOSPC, -EIO (applied, not saved). */
int policy_apply_record(struct policy *p, const char *name, const char *json,
    size_t n);
/* What the pins hold on worker id (its shares; a rule that does not name
 * it: the mean share; nested pins once). */
int64_t policy_pinned_share(struct policy *p, const char *id);
/* A full sync with etcd: rules not applied between begin and end are no
 * longer the cluster's, and are dropped. */
void policy_sync_begin(struct policy *p);
void policy_sync_end(struct policy *p);

#endif
