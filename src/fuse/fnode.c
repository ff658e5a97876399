/*
 * fnode.c: the inode table of `ferry fuse` (fnode.h).
 *
 * Threads: the FUSE session threads, all at once; one mutex (t->mu) guards
 * the table, held only for hash-table work and short copies, never across
 * a request to the worker.  Functions named do_* expect it held.
 *
 * Invariants: every node is in both hash tables (htab.h: by path and by
 * inode number), so by_path.n == by_ino.n is the node count; paths and
 * inode numbers are each unique among the nodes; a node other than
 * the root exists exactly while its lookup count is above zero (the
 * kernel holds it), so the table's size is bounded by the inodes the
 * kernel keeps, which its own memory pressure trims through FORGET.
 * Each node costs about 90 bytes plus its path (and 16 bytes of buckets
 * at load factor <= 1).
 */
#include "fuse/fnode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/htab.h"
#include "common/util.h"

#define FNODE_HASH_SEED 0x6665727279ull /* "ferry" */
#define FNODE_MIN_BUCKETS 1024u

struct fnode {
	struct hnode path_hn; /* in t->by_path */
	struct hnode ino_hn;  /* in t->by_ino */
	uint64_t ino;
	uint64_t path_hash;
	uint64_t nlookup;  /* the kernel's references */
	uint64_t kver;     /* version in the attributes last sent, 0: none */
	uint64_t open_ver; /* version the last open found, 0: none yet */
	int64_t listed_ms; /* a directory: when the listing the kernel caches began, 0: none */
	int is_dir;
	size_t path_len;
	char path[]; /* NUL-terminated */
};

static uint64_t
path_hash(const char *p, size_t n)
{
	return hash64(p, n, FNODE_HASH_SEED);
}

/* An inode number's hash: the number itself.  Numbers are path hashes
 * (or run on from one past a collision), so their low bits, which pick
 * the bucket, are spread already. */
static uint64_t
ino_hash(uint64_t ino)
{
	return ino;
}

static uint64_t
path_hashof(const struct hnode *n)
{
	return container_of(n, struct fnode, path_hn)->path_hash;
}

static uint64_t
ino_hashof(const struct hnode *n)
{
	return ino_hash(container_of(n, struct fnode, ino_hn)->ino);
}

static struct fnode *
do_find_path(const struct fnode_table *t, const char *p, size_t n, uint64_t h)
{
	struct hnode *hn;
	for (HTAB_FOREACH(&t->by_path, h, hn)) {
		struct fnode *x = container_of(hn, struct fnode, path_hn);
		if (x->path_hash == h && x->path_len == n &&
		    memcmp(x->path, p, n) == 0)
			return x;
	}
	return NULL;
}

static struct fnode *
do_find_ino(const struct fnode_table *t, uint64_t ino)
{
	struct hnode *hn;
	for (HTAB_FOREACH(&t->by_ino, ino_hash(ino), hn)) {
		struct fnode *x = container_of(hn, struct fnode, ino_hn);
		if (x->ino == ino)
			return x;
	}
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
	htab_insert(&t->by_path, &x->path_hn, x->path_hash);
	htab_insert(&t->by_ino, &x->ino_hn, ino_hash(x->ino));
}

static void
do_unlink(struct fnode_table *t, struct fnode *x)
{
	htab_remove(&t->by_path, &x->path_hn, x->path_hash);
	htab_remove(&t->by_ino, &x->ino_hn, ino_hash(x->ino));
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
	int r = htab_init(&t->by_path, FNODE_MIN_BUCKETS, path_hashof);
	if (r == 0)
		r = htab_init(&t->by_ino, FNODE_MIN_BUCKETS, ino_hashof);
	struct fnode *root = node_new("/", 1, path_hash("/", 1));
	if (r < 0 || !root) {
		htab_free(&t->by_path);
		htab_free(&t->by_ino);
		free(root);
		memset(t, 0, sizeof(*t));
		return -ENOMEM;
	}
	root->ino = FNODE_ROOT;
	root->is_dir = 1;
	root->nlookup = 1; /* never forgotten */
	do_link(t, root);
	pthread_mutex_init(&t->mu, NULL);
	return 0;
}

void
fnode_table_free(struct fnode_table *t)
{
	if (!t->by_path.b)
		return;
	HTAB_EACH(&t->by_path, i, n, nx)
		free(container_of(n, struct fnode, path_hn));
	htab_free(&t->by_path);
	htab_free(&t->by_ino);
	pthread_mutex_destroy(&t->mu);
	memset(t, 0, sizeof(*t));
}

size_t
fnode_count(struct fnode_table *t)
{
	pthread_mutex_lock(&t->mu);
	size_t n = t->by_path.n;
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

int
fnode_would_keep(struct fnode_table *t, uint64_t ino, uint64_t ver)
{
	pthread_mutex_lock(&t->mu);
	struct fnode *x = do_find_ino(t, ino);
	int keep = x && !(x->kver != 0 && x->kver != ver) && x->open_ver == ver;
	pthread_mutex_unlock(&t->mu);
	return keep;
}

int
fnode_opendir(struct fnode_table *t, uint64_t ino, int64_t now_ms, int64_t keep_ms)
{
	int keep = 0;
	pthread_mutex_lock(&t->mu);
	struct fnode *x = do_find_ino(t, ino);
	if (x) {
		keep = x->listed_ms > 0 && now_ms - x->listed_ms < keep_ms;
		if (!keep)
			x->listed_ms = now_ms > 0 ? now_ms : 1;
	}
	pthread_mutex_unlock(&t->mu);
	return keep;
}

void
fnode_dir_changed(struct fnode_table *t, uint64_t ino)
{
	pthread_mutex_lock(&t->mu);
	struct fnode *x = do_find_ino(t, ino);
	if (x)
		x->listed_ms = 0;
	pthread_mutex_unlock(&t->mu);
}

/* Re-keys node x to path p (n bytes): 0 or -ENOMEM (x unchanged). */
static int
do_rekey(struct fnode_table *t, struct fnode *x, const char *p, size_t n)
{
	struct fnode *y = node_new(p, n, path_hash(p, n));
	if (!y)
		return -ENOMEM;
	y->ino = x->ino;
	y->nlookup = x->nlookup;
	y->kver = x->kver;
	y->open_ver = x->open_ver;
	y->listed_ms = 0; /* renamed: listed again */
	y->is_dir = x->is_dir;
	do_unlink(t, x);
	free(x);
	do_link(t, y);
	return 0;
}

int
fnode_rename(struct fnode_table *t, const char *from, const char *to)
{
	size_t fl = strlen(from), tl = strlen(to);
	int r = 0;
	pthread_mutex_lock(&t->mu);
	struct fnode *x = do_find_path(t, from, fl, path_hash(from, fl));
	struct fnode *old = do_find_path(t, to, tl, path_hash(to, tl));
	if (old && old != x) {
		/* The replaced file: the kernel may still hold its inode until
		 * it forgets it; it keeps its number under a name no ferry path
		 * can have, so it can never be mistaken for the new one. */
		char dead[48];
		int dl = snprintf(dead, sizeof(dead), "\x01replaced:%llu",
		    (unsigned long long)old->ino);
		r = do_rekey(t, old, dead, (size_t)dl);
	}
	if (r == 0 && x && x != old)
		r = do_rekey(t, x, to, tl);
	pthread_mutex_unlock(&t->mu);
	return r;
}

int
fnode_under(struct fnode_table *t, const char *path, uint64_t *ino, char **paths,
    int max)
{
	size_t pl = strlen(path);
	int all = pl == 1 && path[0] == '/', n = 0;
	pthread_mutex_lock(&t->mu);
	HTAB_EACH(&t->by_ino, i, hn, nx) {
		struct fnode *x = container_of(hn, struct fnode, ino_hn);
		if (n >= max)
			break;
		if (x->ino == FNODE_ROOT || x->path[0] != '/')
			continue;
		if (!all && !(strncmp(x->path, path, pl) == 0 &&
		    (x->path[pl] == 0 || x->path[pl] == '/')))
			continue;
		if (!(paths[n] = strdup(x->path)))
			break;
		ino[n++] = x->ino;
	}
	pthread_mutex_unlock(&t->mu);
	return n;
}
