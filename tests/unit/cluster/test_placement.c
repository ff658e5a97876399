/*
 * test_placement.c: rendezvous placement over cluster views.  The two
 * properties the cluster relies on: balance (on 100,000 keys the busiest
 * member holds at most 1.1x the mean, for 3 to 64 members) and minimal
 * movement (a member joining takes about 1/(N+1) of the keys and only
 * keys move to it; a member leaving moves only its own keys).  Also: the
 * order is a permutation, deterministic, and replicas are distinct.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/placement.h"
#include "tap.h"

#define NKEYS 100000

static uint64_t rng_state;

static uint64_t
rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int
cmp_member(const void *a, const void *b)
{
	return strcmp(((const struct member *)a)->id, ((const struct member *)b)->id);
}

/* A view of n members with random ids (as cluster_worker_id makes them). */
static struct cluster_view *
make_view(int n)
{
	struct cluster_view *v = calloc(1, sizeof(*v) + sizeof(struct member) * (size_t)(n + 1));
	v->n = n;
	for (int i = 0; i < n; i++) {
		uint64_t a = rng(), b = rng();
		snprintf(v->m[i].id, sizeof(v->m[i].id), "%016llx%016llx",
		    (unsigned long long)a, (unsigned long long)b);
		snprintf(v->m[i].ctl, sizeof(v->m[i].ctl), "10.0.0.%d:29999", i + 1);
	}
	qsort(v->m, (size_t)n, sizeof(struct member), cmp_member);
	return v;
}

/* v plus one new random member, re-sorted. */
static struct cluster_view *
view_plus_one(const struct cluster_view *v)
{
	struct cluster_view *w = calloc(1, sizeof(*w) + sizeof(struct member) * (size_t)(v->n + 1));
	memcpy(w->m, v->m, sizeof(struct member) * (size_t)v->n);
	w->n = v->n + 1;
	uint64_t a = rng(), b = rng();
	snprintf(w->m[v->n].id, sizeof(w->m[v->n].id), "%016llx%016llx",
	    (unsigned long long)a, (unsigned long long)b);
	qsort(w->m, (size_t)w->n, sizeof(struct member), cmp_member);
	return w;
}

static int
find(const struct cluster_view *v, const char *id)
{
	for (int i = 0; i < v->n; i++)
		if (strcmp(v->m[i].id, id) == 0)
			return i;
	return -1;
}

static uint64_t
key_of(int i)
{
	char path[64];
	snprintf(path, sizeof(path), "datasets/shard-%06d.parquet", i / 4);
	return placement_key("train", path, i % 4);
}

TEST(balance_3_to_64)
{
	static const int sizes[] = {3, 4, 5, 7, 8, 12, 16, 24, 32, 48, 64};
	rng_state = 42;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		for (int trial = 0; trial < 3; trial++) {
			int n = sizes[s];
			struct cluster_view *v = make_view(n);
			int count[64] = {0};
			for (int i = 0; i < NKEYS; i++)
				count[placement_owner(v, key_of(i))]++;
			int max = 0;
			for (int j = 0; j < n; j++)
				if (count[j] > max)
					max = count[j];
			double ratio = (double)max * n / NKEYS;
			if (trial == 0)
				printf("  %2d members: busiest holds %.3fx the mean\n", n, ratio);
			CHECK(ratio <= 1.10);
			free(v);
		}
	}
}

TEST(join_moves_one_nth_to_the_newcomer)
{
	rng_state = 7;
	static const int sizes[] = {3, 8, 32, 63};
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		struct cluster_view *v = make_view(sizes[s]);
		struct cluster_view *w = view_plus_one(v);
		int moved = 0, wrong = 0;
		for (int i = 0; i < NKEYS; i++) {
			uint64_t k = key_of(i);
			const char *before = v->m[placement_owner(v, k)].id;
			const char *after = w->m[placement_owner(w, k)].id;
			if (strcmp(before, after) != 0) {
				moved++;
				/* A key may only move to the newcomer. */
				if (find(v, after) >= 0)
					wrong++;
			}
		}
		double frac = (double)moved / NKEYS, ideal = 1.0 / w->n;
		printf("  %d -> %d members: %.4f of keys moved (ideal %.4f)\n",
		    v->n, w->n, frac, ideal);
		CHECK_EQ_INT(wrong, 0);
		CHECK(frac > ideal * 0.85 && frac < ideal * 1.15);
		free(v);
		free(w);
	}
}

TEST(leave_moves_only_the_leavers_keys)
{
	rng_state = 99;
	struct cluster_view *w = make_view(10);
	/* v: w without member 3. */
	struct cluster_view *v = calloc(1, sizeof(*v) + sizeof(struct member) * 10);
	for (int i = 0, j = 0; i < w->n; i++)
		if (i != 3)
			v->m[j++] = w->m[i];
	v->n = 9;
	int moved = 0, wrong = 0;
	for (int i = 0; i < NKEYS; i++) {
		uint64_t k = key_of(i);
		int ob = placement_owner(w, k);
		const char *after = v->m[placement_owner(v, k)].id;
		if (strcmp(w->m[ob].id, after) != 0) {
			moved++;
			if (ob != 3)
				wrong++;
		}
		/* The leaver's keys go to their runner-up: failover order
		 * and new placement agree. */
		if (ob == 3) {
			int order[10];
			placement_order(w, k, order, 10);
			if (strcmp(w->m[order[1]].id, after) != 0)
				wrong++;
		}
	}
	CHECK_EQ_INT(wrong, 0);
	double frac = (double)moved / NKEYS;
	CHECK(frac > 0.085 && frac < 0.115);
	free(v);
	free(w);
}

TEST(order_is_a_deterministic_permutation)
{
	rng_state = 5;
	struct cluster_view *v = make_view(70); /* > 64: the heap path */
	for (int i = 0; i < 2000; i++) {
		uint64_t k = key_of(i);
		int order[70], again[70], seen[70] = {0};
		CHECK_EQ_INT(placement_order(v, k, order, 70), 70);
		placement_order(v, k, again, 70);
		CHECK(memcmp(order, again, sizeof(order)) == 0);
		CHECK_EQ_INT(order[0], placement_owner(v, k));
		for (int j = 0; j < 70; j++)
			seen[order[j]]++;
		for (int j = 0; j < 70; j++)
			CHECK_EQ_INT(seen[j], 1);
		int top3[3];
		CHECK_EQ_INT(placement_order(v, k, top3, 3), 3);
		CHECK(memcmp(top3, order, sizeof(top3)) == 0);
		int one;
		CHECK_EQ_INT(placement_order(v, k, &one, 1), 1);
		CHECK_EQ_INT(one, order[0]);
	}
	free(v);
}

TEST(replicas_spread_evenly)
{
	/* With R=2 of 4, each member holds a replica of about half the keys. */
	rng_state = 11;
	struct cluster_view *v = make_view(4);
	int count[4] = {0};
	for (int i = 0; i < NKEYS; i++) {
		int order[2];
		placement_order(v, key_of(i), order, 2);
		CHECK(order[0] != order[1]);
		count[order[0]]++;
		count[order[1]]++;
	}
	for (int j = 0; j < 4; j++)
		CHECK(count[j] > NKEYS / 2 * 0.95 && count[j] < NKEYS / 2 * 1.05);
	free(v);
}

TEST(empty_view)
{
	struct cluster_view v = {0};
	int order[1];
	CHECK_EQ_INT(placement_order(&v, 1, order, 1), 0);
	CHECK_EQ_INT(placement_owner(&v, 1), -1);
	CHECK_EQ_INT(placement_order(NULL, 1, order, 1), 0);
}

int
main(void)
{
	RUN(balance_3_to_64);
	RUN(join_moves_one_nth_to_the_newcomer);
	RUN(leave_moves_only_the_leavers_keys);
	RUN(order_is_a_deterministic_permutation);
	RUN(replicas_spread_evenly);
	RUN(empty_view);
	TAP_DONE();
}
