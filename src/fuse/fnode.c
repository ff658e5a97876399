/*
 * fnode.c: the inode table of `ferry fuse` (fnode.h).
 *
 * Threads: the FUSE session threads, all at once; one mutex (t->mu) guards
 * the table, held only for hash-table work and short copies, never across
 * a request to the worker.  Functions named do_* expect it held.
 *
 * Invariants: every node is in both hash chains (by path and by inode
 * number); inode numbers are unique among the nodes; a node other than
 * the root exists exactly while its lookup count is above zero (the
 * kernel holds it), so the table's size is bounded by the inodes the
 * kernel keeps, which its own memory pressure trims through FORGET.
 * Each node costs about 90 bytes plus its path.
 */
#include "fuse/fnode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define FNODE_HASH_SEED 0x6665727279ull /* "ferry" */
#define FNODE_MIN_BUCKETS 1024u

struct fnode {
	struct fnode *next_path, *next_ino;
	uint64_t ino;
	uint64_t path_hash;
	uint64_t nlookup;  /* the kernel's references */
	uint64_t kver;     /* version in the attributes last sent, 0: none */
	uint64_t open_ver; /* version the last open found, 0: none yet */
	int is_dir;
	size_t path_len;
	char path[]; /* NUL-terminated */
};

static uint64_t
path_hash(const char *p, size_t n)
{
	return hash64(p, n, FNODE_HASH_SEED);
}

static size_t
bucket(const struct fnode_table *t, uint64_t h)
{
	/* Mix the bits so sequential inode numbers spread too. */
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return (size_t)(h & (t->nbuckets - 1));
}

static struct fnode *
do_find_path(const struct fnode_table *t, const char *p, size_t n, uint64_t h)
{
	for (struct fnode *x = t->by_path[bucket(t, h)]; x; x = x->next_path)
		if (x->path_hash == h && x->path_len == n &&
		    memcmp(x->path, p, n) == 0)
			return x;
	return NULL;
}

static struct fnode *
do_find_ino(const struct fnode_table *t, uint64_t ino)
{
	for (struct fnode *x = t->by_ino[bucket(t, ino)]; x; x = x->next_ino)
		if (x->ino == ino)
			return x;
	return NULL;
}

/* The first free number at or after the path's hash (never 0 or 1; 63
 * bits, for programs that hold inode numbers signed). */
static uint64_t
do_pick_ino(const struct fnode_table *t, uint64_t h)
{
	uint64_t ino = h & INT64_MAX;
	for (;;) {
		ino &= INT64_MAX;
		if (ino <= FNODE_ROOT)
			ino = FNODE_ROOT + 1;
		if (!do_find_ino(t, ino))
			return ino;
		ino++;
	}
}

static void
do_link(struct fnode_table *t, struct fnode *x)
{
	size_t bp = bucket(t, x->path_hash), bi = bucket(t, x->ino);
	x->next_path = t->by_path[bp];
	t->by_path[bp] = x;
	x->next_ino = t->by_ino[bi];
	t->by_ino[bi] = x;
}

static void
do_unlink(struct fnode_table *t, struct fnode *x)
{
	struct fnode **pp = &t->by_path[bucket(t, x->path_hash)];
	while (*pp && *pp != x)
		pp = &(*pp)->next_path;
	if (*pp)
		*pp = x->next_path;
	pp = &t->by_ino[bucket(t, x->ino)];
	while (*pp && *pp != x)
		pp = &(*pp)->next_ino;
	if (*pp)
		*pp = x->next_ino;
}

/* Doubles the bucket arrays when the table is full; on ENOMEM the table
 * simply stays as it is (longer chains, still correct). */
static void
do_maybe_grow(struct fnode_table *t)
{
	if (t->count < t->nbuckets)
		return;
	size_t nb = t->nbuckets * 2;
	struct fnode **bp = calloc(nb, sizeof(*bp));
	struct fnode **bi = calloc(nb, sizeof(*bi));
	if (!bp || !bi) {
		free(bp);
		free(bi);
		return;
	}
	struct fnode *all = NULL;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct fnode *x = t->by_path[i];
		while (x) {
			struct fnode *nx = x->next_path;
			x->next_path = all;
			all = x;
			x = nx;
		}
	}
	free(t->by_path);
	free(t->by_ino);
	t->by_path = bp;
	t->by_ino = bi;
	t->nbuckets = nb;
	while (all) {
		struct fnode *nx = all->next_path;
		do_link(t, all);
		all = nx;
	}
}

static struct fnode *
node_new(const char *p, size_t n, uint64_t h)
{
	struct fnode *x = calloc(1, sizeof(*x) + n + 1);
	if (!x)
		return NULL;
	x->path_hash = h;
	x->path_len = n;
	memcpy(x->path, p, n);
	x->path[n] = 0;
	return x;
}

int
fnode_table_init(struct fnode_table *t)
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = FNODE_MIN_BUCKETS;
	t->by_path = calloc(t->nbuckets, sizeof(*t->by_path));
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	struct fnode *root = node_new("/", 1, path_hash("/", 1));
	if (!t->by_path || !t->by_ino || !root) {
		free(t->by_path);
		free(t->by_ino);
		free(root);
		return -ENOMEM;
	}
	root->ino = FNODE_ROOT;
	root->is_dir = 1;
	root->nlookup = 1; /* never forgotten */
	do_link(t, root);
	t->count = 1;
	pthread_mutex_init(&t->mu, NULL);
	return 0;
}

void
fnode_table_free(struct fnode_table *t)
{
	if (!t->by_path)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct fnode *x = t->by_path[i];
		while (x) {
			struct fnode *nx = x->next_path;
			free(x);
			x = nx;
		}
	}
	free(t->by_path);
	free(t->by_ino);
	pthread_mutex_destroy(&t->mu);
	memset(t, 0, sizeof(*t));
}

size_t
fnode_count(struct fnode_table *t)
{
	pthread_mutex_lock(&t->mu);
	size_t n = t->count;
	pthread_mutex_unlock(&t->mu);
	return n;
}

int
fnode_path(struct fnode_table *t, uint64_t ino, char *buf, size_t n,
    int *is_dir)
{
	int r = 0;
	pthread_mutex_lock(&t->mu);
	struct fnode *x = do_find_ino(t, ino);
	if (!x)
		r = -ENOENT;
	else if (x->path_len >= n)
		r = -ENAMETOOLONG;
	else {
		memcpy(buf, x->path, x->path_len + 1);
		if (is_dir)
			*is_dir = x->is_dir;
	}
	pthread_mutex_unlock(&t->mu);
	return r;
}

int
fnode_ref(struct fnode_table *t, const char *path, int is_dir, uint64_t kver,
    uint64_t nlookup, uint64_t *ino)
{
	size_t n = strlen(path);
	uint64_t h = path_hash(path, n);
	int r = 0;
	pthread_mutex_lock(&t->mu);
	struct fnode *x = do_find_path(t, path, n, h);
	if (!x) {
		x = node_new(path, n, h);
		if (!x) {
			r = -ENOMEM;
			goto out;
		}
		x->ino = do_pick_ino(t, h);
		do_link(t, x);
		t->count++;
		do_maybe_grow(t);
	}
	x->nlookup += nlookup;
	if (x->ino != FNODE_ROOT)
		x->is_dir = is_dir;
	if (kver)
		x->kver = kver;
	*ino = x->ino;
out:
	pthread_mutex_unlock(&t->mu);
	return r;
}

void
fnode_forget(struct fnode_table *t, uint64_t ino, uint64_t nlookup)
{
	if (ino == FNODE_ROOT)
		return;
	pthread_mutex_lock(&t->mu);
	struct fnode *x = do_find_ino(t, ino);
	if (x) {
		x->nlookup = nlookup >= x->nlookup ? 0 : x->nlookup - nlookup;
		if (x->nlookup == 0) {
			do_unlink(t, x);
			t->count--;
			free(x);
		}
	}
	pthread_mutex_unlock(&t->mu);
}

uint64_t
fnode_peek_ino(struct fnode_table *t, const char *path)
{
	size_t n = strlen(path);
	uint64_t h = path_hash(path, n);
	pthread_mutex_lock(&t->mu);
	struct fnode *x = do_find_path(t, path, n, h);
	uint64_t ino = x ? x->ino : do_pick_ino(t, h);
	pthread_mutex_unlock(&t->mu);
	return ino;
}

void
fnode_note_kver(struct fnode_table *t, uint64_t ino, uint64_t kver)
{
	pthread_mutex_lock(&t->mu);
	struct fnode *x = do_find_ino(t, ino);
	if (x && kver)
		x->kver = kver;
	pthread_mutex_unlock(&t->mu);
}

void
fnode_open(struct fnode_table *t, uint64_t ino, uint64_t ver, int *keep_cache,
    int *direct)
{
	*keep_cache = 0;
	*direct = 0;
	pthread_mutex_lock(&t->mu);
	struct fnode *x = do_find_ino(t, ino);
	if (x) {
		*direct = x->kver != 0 && x->kver != ver;
		*keep_cache = !*direct && x->open_ver == ver;
		/* A direct open fills no page; whether the kernel dropped the
		 * old ones then is not ours to rely on, so the next cached open
		 * drops them (0 never matches). */
		x->open_ver = *direct ? 0 : ver;
	}
	pthread_mutex_unlock(&t->mu);
}
