/* Unit tests for htab, the intrusive chained hash (htab.h): insert, find
 * and remove across many growths, removing what is not there, a teardown
 * that frees nodes from HTAB_EACH, and one long chain of equal hashes. */
#include <stdint.h>
#include <stdlib.h>

#include "common/htab.h"
#include "tap.h"

struct item {
	uint64_t key;
	struct hnode hn;
	int seen;
};

static uint64_t
mix(uint64_t k)
{
	k ^= k >> 31;
	k *= 0x9e3779b97f4a7c15ull;
	k ^= k >> 29;
	return k;
}

static uint64_t
item_hashof(const struct hnode *n)
{
	return mix(container_of(n, struct item, hn)->key);
}

/* Every key hashes the same: one chain. */
#define SAME_HASH 0x5eedull

static uint64_t
same_hashof(const struct hnode *n)
{
	(void)n;
	return SAME_HASH;
}

static struct item *
find(struct htab *t, uint64_t h, uint64_t key)
{
	struct hnode *n;
	for (HTAB_FOREACH(t, h, n)) {
		struct item *it = container_of(n, struct item, hn);
		if (it->key == key)
			return it;
	}
	return NULL;
}

/* Every node lies in the bucket its hash picks, once; returns the count. */
static size_t
check_placement(struct htab *t)
{
	size_t count = 0, misplaced = 0;
	for (size_t i = 0; i <= t->mask; i++)
		for (struct hnode *n = t->b[i]; n; n = n->next) {
			count++;
			if ((t->hashof(n) & t->mask) != i)
				misplaced++;
		}
	CHECK_EQ_INT(misplaced, 0);
	return count;
}

TEST(init_rounds_up)
{
	struct htab t;
	CHECK_EQ_INT(htab_init(&t, 0, item_hashof), 0);
	CHECK_EQ_INT(t.mask + 1, 16);
	CHECK_EQ_INT(t.n, 0);
	htab_free(&t);
	CHECK(t.b == NULL);
	CHECK_EQ_INT(htab_init(&t, 1000, item_hashof), 0);
	CHECK_EQ_INT(t.mask + 1, 1024);
	htab_free(&t);
	CHECK_EQ_INT(htab_init(&t, 1024, item_hashof), 0);
	CHECK_EQ_INT(t.mask + 1, 1024);
	htab_free(&t);
}

TEST(insert_remove_grow_many)
{
	enum { N = 200000 };
	struct item *v = calloc(N, sizeof(*v));
	CHECK(v != NULL);
	if (!v)
		return;
	struct htab t;
	CHECK_EQ_INT(htab_init(&t, 16, item_hashof), 0);
	for (size_t i = 0; i < N; i++) {
		v[i].key = i * 7 + 3;
		htab_insert(&t, &v[i].hn, mix(v[i].key));
		/* it grows before an insert would go past load 1 */
		CHECK(t.n <= t.mask + 1);
	}
	CHECK_EQ_INT(t.n, N);
	CHECK(t.mask + 1 >= N);
	CHECK_EQ_INT(check_placement(&t), N);
	size_t missing = 0, wrong = 0;
	for (size_t i = 0; i < N; i++) {
		struct item *it = find(&t, mix(i * 7 + 3), i * 7 + 3);
		missing += it == NULL;
		wrong += it && it != &v[i];
	}
	CHECK_EQ_INT(missing, 0);
	CHECK_EQ_INT(wrong, 0);
	CHECK(find(&t, mix(1), 1) == NULL); /* never inserted */

	/* Remove every odd one; the rest stay findable. */
	size_t removed = 0;
	for (size_t i = 1; i < N; i += 2)
		removed += htab_remove(&t, &v[i].hn, mix(v[i].key));
	CHECK_EQ_INT(removed, N / 2);
	CHECK_EQ_INT(t.n, N / 2);
	missing = 0;
	size_t present = 0;
	for (size_t i = 0; i < N; i++) {
		struct item *it = find(&t, mix(v[i].key), v[i].key);
		if (i % 2)
			present += it != NULL;
		else
			missing += it == NULL;
	}
	CHECK_EQ_INT(missing, 0);
	CHECK_EQ_INT(present, 0);
	CHECK_EQ_INT(check_placement(&t), N / 2);

	/* Removing a node that is not in the table changes nothing. */
	CHECK_EQ_INT(htab_remove(&t, &v[1].hn, mix(v[1].key)), 0);
	CHECK_EQ_INT(t.n, N / 2);

	/* Put them back: the table holds all again. */
	for (size_t i = 1; i < N; i += 2)
		htab_insert(&t, &v[i].hn, mix(v[i].key));
	CHECK_EQ_INT(t.n, N);
	CHECK_EQ_INT(check_placement(&t), N);
	htab_free(&t);
	free(v);
}

TEST(each_frees_nodes)
{
	enum { N = 5000 };
	struct htab t;
	CHECK_EQ_INT(htab_init(&t, 16, item_hashof), 0);
	for (size_t i = 0; i < N; i++) {
		struct item *it = calloc(1, sizeof(*it));
		CHECK(it != NULL);
		if (!it)
			break;
		it->key = i;
		htab_insert(&t, &it->hn, mix(i));
	}
	/* Each node is visited once (seen), then freed in the walk; ASan
	 * reports a read of a freed node or a leak. */
	size_t visits = 0, twice = 0;
	HTAB_EACH(&t, i, n, nx) {
		struct item *it = container_of(n, struct item, hn);
		twice += it->seen++ != 0;
		visits++;
		free(it);
	}
	CHECK_EQ_INT(visits, N);
	CHECK_EQ_INT(twice, 0);
	htab_free(&t);
}

TEST(one_long_chain)
{
	enum { N = 4000 };
	struct item *v = calloc(N, sizeof(*v));
	CHECK(v != NULL);
	if (!v)
		return;
	struct htab t;
	CHECK_EQ_INT(htab_init(&t, 16, same_hashof), 0);
	for (size_t i = 0; i < N; i++) {
		v[i].key = i;
		htab_insert(&t, &v[i].hn, SAME_HASH);
	}
	CHECK_EQ_INT(t.n, N);
	CHECK(t.mask + 1 >= N); /* it grew, uselessly but correctly */
	CHECK_EQ_INT(check_placement(&t), N);
	size_t missing = 0;
	for (size_t i = 0; i < N; i++)
		missing += find(&t, SAME_HASH, i) != &v[i];
	CHECK_EQ_INT(missing, 0);

	/* Remove from the head, the tail and the middle of the chain. */
	struct hnode *head = t.b[SAME_HASH & t.mask];
	struct item *h0 = container_of(head, struct item, hn);
	CHECK_EQ_INT(htab_remove(&t, head, SAME_HASH), 1);
	struct hnode *tail = t.b[SAME_HASH & t.mask];
	while (tail->next)
		tail = tail->next;
	struct item *t0 = container_of(tail, struct item, hn);
	CHECK_EQ_INT(htab_remove(&t, tail, SAME_HASH), 1);
	CHECK_EQ_INT(htab_remove(&t, &v[N / 2].hn, SAME_HASH), 1);
	CHECK_EQ_INT(t.n, N - 3);
	CHECK(find(&t, SAME_HASH, h0->key) == NULL);
	CHECK(find(&t, SAME_HASH, t0->key) == NULL);
	CHECK(find(&t, SAME_HASH, N / 2) == NULL);
	CHECK(find(&t, SAME_HASH, N / 2 + 1) == &v[N / 2 + 1]);

	/* Then all the rest, in key order. */
	size_t removed = 0;
	for (size_t i = 0; i < N; i++)
		removed += htab_remove(&t, &v[i].hn, SAME_HASH);
	CHECK_EQ_INT(removed, N - 3);
	CHECK_EQ_INT(t.n, 0);
	CHECK_EQ_INT(check_placement(&t), 0);
	htab_free(&t);
	free(v);
}

int
main(void)
{
	RUN(init_rounds_up);
	RUN(insert_remove_grow_many);
	RUN(each_frees_nodes);
	RUN(one_long_chain);
	TAP_DONE();
}
