/*
 * htab.h: one intrusive chained hash table for every keyed table in ferry
 * (the metadata cache's stat and listing entries, the reader's fetches in
 * flight, the page store's pages and objects, the FUSE inode table by path
 * and by number), so the grow, insert and remove logic exists once.
 *
 * Intrusive: a struct embeds a struct hnode and is found again with
 * container_of; the table allocates only its bucket array.  The table does
 * not know keys: a lookup walks the chain of a hash (HTAB_FOREACH) and the
 * caller compares its own key.  It grows itself (doubling, at load 1) with
 * the hashof callback; if growing fails the chains just get longer.
 *
 * Not thread-safe: the owner's lock guards it (callers are do_ functions).
 * LRU and other lists beside it are <sys/queue.h> TAILQs, LISTs, SLISTs.
 * A node may sit in several tables (one struct hnode each).
 */
#ifndef FERRY_HTAB_H
#define FERRY_HTAB_H

#include <stddef.h>
#include <stdint.h>

#define container_of(p, type, member)                                         \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

struct hnode {
	struct hnode *next;
};

struct htab {
	struct hnode **b;
	size_t mask; /* buckets - 1 (a power of two) */
	size_t n;
	uint64_t (*hashof)(const struct hnode *n);
};

/* 0 or -ENOMEM.  nbuckets is rounded up to a power of two. */
int htab_init(struct htab *t, size_t nbuckets,
    uint64_t (*hashof)(const struct hnode *n));
/* Frees the buckets only: empty the table first (or free the nodes from
 * an HTAB_EACH walk). */
void htab_free(struct htab *t);
void htab_insert(struct htab *t, struct hnode *n, uint64_t h);
/* Removes n, which is in the table under hash h: 1, or 0 (and nothing
 * changes but n->next) if n was not there. */
int htab_remove(struct htab *t, struct hnode *n, uint64_t h);

/* The chain that holds hash h: for (HTAB_FOREACH(t, h, n)) { ... } */
#define HTAB_FOREACH(t, h, n) n = (t)->b[(h) & (t)->mask]; n; n = n->next

/* Every node, for teardown: the body may free n (next is read first). */
#define HTAB_EACH(t, i, n, nx)                                                \
	for (size_t i = 0; i <= (t)->mask; i++)                               \
		for (struct hnode *n = (t)->b[i], *nx = n ? n->next : NULL; n; \
		     n = nx, nx = n ? n->next : NULL)

#endif
