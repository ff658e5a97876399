/*
 * placement.c: rendezvous (HRW) hashing of blocks onto cluster members.
 *
 * Why HRW: with N members, each key goes to the member with the highest
 * score, and a good 64-bit mix makes each member equally likely, so the
 * load per member is binomial: on 100,000 keys the busiest of 64 members
 * sits about 6% over the mean (bound asked: 10%), far better than a ring
 * without hundreds of virtual nodes.  A member joining takes exactly the
 * keys it now wins (1/(N+1) of them) and a member leaving gives away only
 * its own, each to its runner-up, so nothing else moves.  The runner-ups
 * are also the natural replica set and failover order.  The cost is O(N)
 * score computations per block, trivial for clusters of hundreds.
 *
 * Called from any thread; no state.
 */
#include "placement.h"

#include <stdlib.h>
#include <string.h>

#include "../common/util.h"

/* murmur3's 64-bit finalizer: a bijection with full avalanche. */
static uint64_t
fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

uint64_t
placement_key(const char *mount, const char *path, int64_t block)
{
	uint64_t h = hash64(mount, strlen(mount), 0x706c6163ULL);
	h = hash64(path, strlen(path), h);
	return fmix64(h ^ fmix64((uint64_t)block + 0x9e3779b97f4a7c15ULL));
}

uint64_t
placement_member_hash(const char *id)
{
	return hash64(id, strlen(id), 0x6d656d62ULL);
}

uint64_t
placement_score(uint64_t key, uint64_t member_hash)
{
	/* Two rounds so that keys differing in few bits, xor'ed with ids
	 * differing in few bits, still give independent scores. */
	return fmix64(fmix64(key ^ member_hash) + member_hash);
}

struct scored {
	uint64_t score;
	int idx;
};

static int
cmp_scored(const void *a, const void *b)
{
	const struct scored *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->idx - y->idx; /* members are in id order */
}

int
placement_order(const struct cluster_view *v, uint64_t key, int *order,
    int max)
{
	if (!v || v->n <= 0 || max <= 0)
		return 0;
	struct scored stack[64];
	struct scored *s = stack;
	if (v->n > 64) {
		s = malloc(sizeof(*s) * (size_t)v->n);
		if (!s) {
			/* Out of memory: the owner alone, found in O(N). */
			return (order[0] = placement_owner(v, key)) >= 0;
		}
	}
	for (int i = 0; i < v->n; i++) {
		s[i].score = placement_score(key, placement_member_hash(v->m[i].id));
		s[i].idx = i;
	}
	int k = v->n < max ? v->n : max;
	if (k == 1) {
		int best = 0;
		for (int i = 1; i < v->n; i++)
			if (cmp_scored(&s[i], &s[best]) < 0)
				best = i;
		order[0] = s[best].idx;
	} else {
		qsort(s, (size_t)v->n, sizeof(*s), cmp_scored);
		for (int i = 0; i < k; i++)
			order[i] = s[i].idx;
	}
	if (s != stack)
		free(s);
	return k;
}

int
placement_owner(const struct cluster_view *v, uint64_t key)
{
	if (!v || v->n <= 0)
		return -1;
	int best = 0;
	uint64_t bs = placement_score(key, placement_member_hash(v->m[0].id));
	for (int i = 1; i < v->n; i++) {
		uint64_t sc = placement_score(key, placement_member_hash(v->m[i].id));
		if (sc > bs) {
			bs = sc;
			best = i;
		}
	}
	return best;
}

int
placement_candidates(const struct cluster_view *v, uint64_t key, int replicas,
    uint64_t spin, int (*is_suspect)(void *arg, int idx), void *arg, int *out,
    int max)
{
	if (!v || v->n <= 0 || max <= 0)
		return 0;
	int stack[64];
	int *order = v->n <= 64 ? stack : malloc(sizeof(int) * (size_t)v->n);
	if (!order)
		return (out[0] = placement_owner(v, key)) >= 0;
	int n = placement_order(v, key, order, v->n);
	int R = replicas < n ? (replicas > 0 ? replicas : 1) : n;
	/* Replicas rotated, then the rest. */
	int *seq = order;
	int rot[64];
	if (R > 1 && R <= 64) {
		for (int k = 0; k < R; k++)
			rot[k] = order[(k + spin) % (uint64_t)R];
		memcpy(order, rot, sizeof(int) * (size_t)R);
	}
	/* Suspects last, each group in its order. */
	int k = 0;
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < n && k < max; i++) {
			int sus = is_suspect && is_suspect(arg, seq[i]);
			if (sus == pass)
				out[k++] = seq[i];
		}
	if (order != stack)
		free(order);
	return k;
}
