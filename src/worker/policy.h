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
#define POLICY_TTL_MAX (10LL * 365 * 86400) /* ten years */

struct policy;

/* Loads path if it exists.  NULL + *err on an unreadable or bad file. */
struct policy *policy_open(const char *path, char **err);
/* Classifies the store's objects with the rules and starts the TTL thread. */
int policy_attach(struct policy *p, struct pagestore *ps);
void policy_close(struct policy **p);

/*
 * Pins (on) or unpins (off) mount m's objects under prefix ("" is the
 * whole mount); bytes: what the pin takes (the data under it not pinned
 * by another rule), kept with the rule for the pin limit.  Saved, then
 * applied to what is cached.  0, -ENOENT (no such pin to remove),
 * -ENOSPC (too many rules), -EIO (not saved: nothing changed).
 */
int policy_pin(struct policy *p, const struct mount *m, const char *prefix,
    int on, int64_t bytes);
/* What the pins take together (their bytes when made), cached or not. */
int64_t policy_pinned_total(struct policy *p);
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

#endif
