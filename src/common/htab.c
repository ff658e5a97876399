/*
 * htab.c: the intrusive hash table (htab.h).  Runs under its owner's lock.
 */
#include "htab.h"

#include <errno.h>
#include <stdlib.h>

int
htab_init(struct htab *t, size_t nbuckets,
    uint64_t (*hashof)(const struct hnode *n))
{
	size_t nb = 16;
	while (nb < nbuckets)
		nb *= 2;
	t->b = calloc(nb, sizeof(*t->b));
	t->mask = nb - 1;
	t->n = 0;
	t->hashof = hashof;
	return t->b ? 0 : -ENOMEM;
}

void
htab_free(struct htab *t)
{
	free(t->b);
	t->b = NULL;
	t->n = 0;
}

static void
grow(struct htab *t)
{
	size_t nb = (t->mask + 1) * 2;
	struct hnode **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i <= t->mask; i++) {
		struct hnode *n = t->b[i];
		while (n) {
			struct hnode *nx = n->next;
			size_t s = t->hashof(n) & (nb - 1);
			n->next = b[s];
			b[s] = n;
			n = nx;
		}
	}
	free(t->b);
	t->b = b;
	t->mask = nb - 1;
}

void
htab_insert(struct htab *t, struct hnode *n, uint64_t h)
{
	if (t->n > t->mask && t->hashof)
		grow(t);
	struct hnode **head = &t->b[h & t->mask];
	n->next = *head;
	*head = n;
	t->n++;
}

int
htab_remove(struct htab *t, struct hnode *n, uint64_t h)
{
	struct hnode **pp = &t->b[h & t->mask];
	while (*pp && *pp != n)
		pp = &(*pp)->next;
	int found = *pp != NULL;
	if (found) {
		*pp = n->next;
		t->n--;
	}
	n->next = NULL;
	return found;
}
