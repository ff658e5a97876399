/*
 * ufs_file.c: the file:// under-store: a local directory tree seen through
 * S3's object model (ufs.h).  The root is an absolute directory; keys are
 * paths relative to it.
 *
 * Containment: every path is opened relative to a descriptor of the root
 * with openat2(RESOLVE_BENEATH), so symlinks are followed but ".." and
 * symlinks (absolute or relative) that lead out of the root fail (-EACCES).
 * Where the kernel lacks openat2 (or FERRY_UFS_FILE_NO_OPENAT2 is set, for
 * tests) the path is resolved with realpath() and must stay under the
 * root's real path; that fallback has a check-then-open race a local
 * attacker who can rename inside the tree could use.
 *
 * Listing follows S3: keys in ascending byte order, a subdirectory sorts as
 * "name/".  Only regular files and directories are shown; names that are not
 * valid UTF-8 or hold control characters (0x01-0x1f, 0x7f), and keys longer
 * than UFS_KEY_MAX, are skipped, because no valid ufs path could name them.
 * Directories are prefixes, not objects, with one exception that keeps
 * list, stat and read in agreement: a directory with nothing listable in
 * it is the zero-byte "directory marker" object "dir/" that the S3
 * console, s3fs and Spark create for an empty folder (stat and read of
 * "dir/" answer it; listings show it as a key, or rolled up into a common
 * prefix like any key).  A delimiter (any string) is applied while
 * walking: a directory whose "name/" already holds it after the prefix
 * is one common prefix and is not entered; otherwise the walk goes on
 * into it and groups the keys found there.  A common prefix that is one
 * directory carries that directory's mtime (S3 prefixes have none: 0).
 * Recursive listings do not enter a directory already on the current path
 * (symlink loops).
 * Memory: each directory scan keeps only the max_keys+1 smallest
 * qualifying entries (a bounded heap, where the names rolled up into one
 * common prefix count once), so a listing holds at most (max_keys+1)
 * names per directory level it is inside of, whatever the directory
 * sizes.  When the callback returns non-zero, list stops, sets
 * *truncated and returns that value.
 *
 * Threads: any thread; the state is read-only after open except the
 * openat2-availability flag, which is only ever cleared (atomically).
 */
#include "ufs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"

struct file_state {
	int rootfd;      /* O_PATH of the root directory */
	char *root_real; /* realpath of the root, for the fallback */
	size_t root_real_len;
	int use_openat2; /* accessed with __atomic_*; cleared on ENOSYS */
};

static int
map_errno(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
	case ENAMETOOLONG:
		return -ENOENT;
	case EACCES:
	case EPERM:
	case EXDEV: /* RESOLVE_BENEATH: the path leads out of the root */
		return -EACCES;
	default:
		return -EIO;
	}
}

/* The realpath fallback: resolve, check containment, open the result. */
static int
open_beneath_fallback(struct file_state *fs, const char *path, int flags)
{
	char full[PATH_MAX], real[PATH_MAX];
	int n = snprintf(full, sizeof(full), "%s/%s", fs->root_real, path);
	if (n < 0 || (size_t)n >= sizeof(full))
		return -ENOENT;
	if (!realpath(full, real))
		return map_errno(errno);
	size_t rl = fs->root_real_len;
	int inside = strcmp(real, fs->root_real) == 0 ||
	    (rl == 1 && fs->root_real[0] == '/') ||
	    (strncmp(real, fs->root_real, rl) == 0 && real[rl] == '/');
	if (!inside)
		return -EACCES;
	/* real has no symlinks left; O_NOFOLLOW stops a last-moment swap of
	 * the final component (the rest of the race is documented above). */
	int fd = open(real, flags | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return map_errno(errno);
	return fd;
}

/* Opens path ("" = the root) beneath the root; fd or -errno. */
static int
open_beneath(struct file_state *fs, const char *path, int flags)
{
	if (path[0] == 0)
		path = ".";
	if (__atomic_load_n(&fs->use_openat2, __ATOMIC_RELAXED)) {
		struct open_how how;
		memset(&how, 0, sizeof(how));
		how.flags = (uint64_t)(flags | O_CLOEXEC);
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
		for (int tries = 0; tries < 8; tries++) {
			long fd = syscall(SYS_openat2, fs->rootfd, path, &how,
			    sizeof(how));
			if (fd >= 0)
				return (int)fd;
			if (errno == EAGAIN || errno == EINTR)
				continue; /* a concurrent rename; try again */
			if (errno != ENOSYS)
				return map_errno(errno);
			__atomic_store_n(&fs->use_openat2, 0, __ATOMIC_RELAXED);
			break;
		}
		if (__atomic_load_n(&fs->use_openat2, __ATOMIC_RELAXED))
			return -EIO;
	}
	return open_beneath_fallback(fs, path, flags);
}

static char *
errmsg(const char *fmt, const char *arg)
{
	char *m = NULL;
	if (asprintf(&m, fmt, arg) < 0)
		return NULL;
	return m;
}

static int
file_open(const char *root, const struct ufs_opt *opts, int nopts,
    void **state, char **err)
{
	*state = NULL;
	*err = NULL;
	if (nopts > 0) {
		*err = errmsg("file: unknown option '%s' (file:// takes none)",
		    opts[0].key ? opts[0].key : "");
		return -EINVAL;
	}
	if (!root || root[0] != '/') {
		*err = errmsg("file: root '%s' is not an absolute path",
		    root ? root : "");
		return -EINVAL;
	}
	struct file_state *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->rootfd < 0) {
		int e = errno;
		if (asprintf(err, "file: cannot open root directory '%s': %s",
		    root, strerror(e)) < 0)
			*err = NULL;
		free(fs);
		return -e;
	}
	fs->root_real = realpath(root, NULL);
	if (!fs->root_real) {
		int e = errno;
		if (asprintf(err, "file: cannot resolve root '%s': %s", root,
		    strerror(e)) < 0)
			*err = NULL;
		close(fs->rootfd);
		free(fs);
		return -e;
	}
	fs->root_real_len = strlen(fs->root_real);
	const char *no2 = getenv("FERRY_UFS_FILE_NO_OPENAT2");
	fs->use_openat2 = !(no2 && *no2 && strcmp(no2, "0") != 0);
	*state = fs;
	return 0;
}

static void
file_close(void *state)
{
	struct file_state *fs = state;
	if (!fs)
		return;
	close(fs->rootfd);
	free(fs->root_real);
	free(fs);
}

/*
 * A file's version, standing in for an ETag: its mtime to the nanosecond
 * and its size.  The read path passes it back with every read, and a read
 * of a file whose version moved fails with -ESTALE, so bytes of two
 * versions are never mixed in the cache.
 */
static void
file_etag(const struct stat *sb, char *out, size_t n)
{
	snprintf(out, n, "%llx.%lx-%llx", (unsigned long long)sb->st_mtim.tv_sec,
	    (unsigned long)sb->st_mtim.tv_nsec, (unsigned long long)sb->st_size);
}

static int marker_stat(struct file_state *fs, const char *path,
    struct ufs_stat *st);

static int
file_stat(void *state, const char *path, struct ufs_stat *st)
{
	struct file_state *fs = state;
	size_t pl = strlen(path);
	if (pl > 0 && path[pl - 1] == '/')
		return marker_stat(fs, path, st);
	int fd = open_beneath(fs, path, O_PATH);
	if (fd < 0)
		return fd;
	struct stat sb;
	int r = fstat(fd, &sb);
	int e = errno;
	close(fd);
	if (r < 0)
		return map_errno(e);
	memset(st, 0, sizeof(*st));
	if (S_ISDIR(sb.st_mode)) {
		st->is_dir = 1;
	} else if (S_ISREG(sb.st_mode)) {
		st->size = (int64_t)sb.st_size;
	} else {
		return -ENOENT; /* sockets, fifos, devices: not objects */
	}
	st->mtime = (int64_t)sb.st_mtim.tv_sec;
	if (!st->is_dir)
		file_etag(&sb, st->etag, sizeof(st->etag));
	return 0;
}

static ssize_t
file_read(void *state, const char *path, const char *etag, int64_t off,
    void *buf, size_t len)
{
	struct file_state *fs = state;
	if (off < 0)
		return -EINVAL;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	int fd = open_beneath(fs, path, O_RDONLY | O_NONBLOCK);
	if (fd < 0)
		return fd;
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		int e = errno;
		close(fd);
		return map_errno(e);
	}
	size_t pl = strlen(path);
	if (S_ISDIR(sb.st_mode) && pl > 0 && path[pl - 1] == '/') {
		/* A directory marker: no bytes, if it still is one. */
		close(fd);
		struct ufs_stat mst;
		int r = marker_stat(fs, path, &mst);
		if (r < 0)
			return r;
		return etag && etag[0] && strcmp(mst.etag, etag) != 0 ? -ESTALE : 0;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return S_ISDIR(sb.st_mode) ? -EIO : -ENOENT;
	}
	char ver[UFS_ETAG_MAX];
	if (etag && etag[0]) {
		file_etag(&sb, ver, sizeof(ver));
		if (strcmp(ver, etag) != 0) {
			close(fd);
			return -ESTALE;
		}
	}
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got,
		    (off_t)(off + (int64_t)got));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			return map_errno(e);
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	/* Changed while we read it: the bytes may be of either version. */
	if (etag && etag[0] && (fstat(fd, &sb) < 0 ||
	    (file_etag(&sb, ver, sizeof(ver)), strcmp(ver, etag) != 0))) {
		close(fd);
		return -ESTALE;
	}
	close(fd);
	return (ssize_t)got;
}

/* ---- listing ---- */

/*
 * A name in a directory scan and the entry it stands for.  Its sort key is
 * name + "/" for a directory, cut to rel bytes: a file (rel = nlen), a
 * directory to walk into (rel = nlen + 1), or a common prefix (kind
 * CAND_CP), which ends wherever the delimiter does.
 */
enum { CAND_FILE, CAND_DIR, CAND_CP };

struct cand {
	char *name;
	size_t nlen;
	int is_dir;
	int kind;
	size_t rel;
};

struct ancestor {
	dev_t dev;
	ino_t ino;
};

struct lister {
	struct file_state *fs;
	const char *delim; /* "" for none */
	size_t delim_len;
	size_t plen; /* length of the listing's prefix */
	const char *sa; /* start_after */
	size_t sa_len;
	int max_keys;
	int found; /* keys emitted, plus the one past max_keys if seen */
	int done;
	int rc; /* fn's non-zero value or -errno */
	int truncated;
	ufs_list_fn fn;
	void *arg;
	char key[UFS_KEY_MAX + 2]; /* the current directory prefix, then name */
	struct ancestor anc[UFS_KEY_MAX / 2 + 2];
	int nanc;
};

/* Byte i of a candidate's sort key (i < rel). */
static unsigned
cand_at(const struct cand *c, size_t i)
{
	return i < c->nlen ? (unsigned char)c->name[i] : '/';
}

/* Byte-order comparison of c's sort key with s[0..sl). */
static int
cand_cmp_str(const struct cand *c, const char *s, size_t sl)
{
	size_t n = c->rel < sl ? c->rel : sl;
	size_t m = n < c->nlen ? n : c->nlen;
	int r = memcmp(c->name, s, m);
	if (r)
		return r < 0 ? -1 : 1;
	for (size_t i = m; i < n; i++) {
		unsigned a = cand_at(c, i), b = (unsigned char)s[i];
		if (a != b)
			return a < b ? -1 : 1;
	}
	return (c->rel > sl) - (c->rel < sl);
}

static int
cand_cmp(const struct cand *a, const struct cand *b)
{
	size_t n = a->rel < b->rel ? a->rel : b->rel;
	size_t m = n;
	if (m > a->nlen)
		m = a->nlen;
	if (m > b->nlen)
		m = b->nlen;
	int r = memcmp(a->name, b->name, m);
	if (r)
		return r < 0 ? -1 : 1;
	for (size_t i = m; i < n; i++) {
		unsigned ca = cand_at(a, i), cb = cand_at(b, i);
		if (ca != cb)
			return ca < cb ? -1 : 1;
	}
	return (a->rel > b->rel) - (a->rel < b->rel);
}

static int
cand_qsort_cmp(const void *a, const void *b)
{
	return cand_cmp(a, b);
}

/* Byte-order comparison of two strings given with their lengths. */
static int
cmp_bytes(const char *a, size_t al, const char *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);
	if (r)
		return r < 0 ? -1 : 1;
	return (al > bl) - (al < bl);
}

/* A name no valid ufs path could contain is never listed. */
static int
name_listable(const char *name, size_t n)
{
	if (n == 0 || (n == 1 && name[0] == '.') ||
	    (n == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return utf8_valid(name, n);
}

/*
 * The common prefixes kept in a heap, so that many names rolled up into
 * one prefix ("img_0001", "img_0002", ... with delimiter "_") take one
 * place, not one each: open addressing over copies of the heap's CAND_CP
 * entries (a name pointer identifies its entry), with tombstones.  Made
 * when the first common prefix comes, rebuilt from the heap, at 4x the
 * prefixes it holds, when it is half full.
 */
struct cpset {
	struct cand *v; /* name NULL: free, or a tombstone if tomb[i] */
	unsigned char *tomb;
	size_t mask;
	size_t fill; /* live entries and tombstones */
};

static uint64_t
cand_hash(const struct cand *c)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < c->rel; i++) {
		h ^= cand_at(c, i);
		h *= 1099511628211ull;
	}
	return h;
}

/* Needs a free slot (cpset_reserve). */
static void
cpset_put(struct cpset *s, const struct cand *c)
{
	size_t i = (size_t)cand_hash(c) & s->mask;
	while (s->v[i].name || s->tomb[i])
		i = (i + 1) & s->mask;
	s->v[i] = *c;
	s->fill++;
}

static int
cpset_has(const struct cpset *s, const struct cand *c)
{
	if (!s->v)
		return 0;
	for (size_t i = (size_t)cand_hash(c) & s->mask;; i = (i + 1) & s->mask) {
		if (!s->v[i].name && !s->tomb[i])
			return 0;
		if (s->v[i].name && cand_cmp(&s->v[i], c) == 0)
			return 1;
	}
}

static void
cpset_del(struct cpset *s, const struct cand *c)
{
	if (!s->v)
		return;
	for (size_t i = (size_t)cand_hash(c) & s->mask;; i = (i + 1) & s->mask) {
		if (!s->v[i].name && !s->tomb[i])
			return;
		if (s->v[i].name == c->name) {
			s->v[i].name = NULL;
			s->tomb[i] = 1;
			return;
		}
	}
}

/* Max-heap of the K smallest candidates. */
struct heap {
	struct cand *v;
	size_t n, cap, k;
	size_t ncp; /* CAND_CP entries in v */
	int dropped; /* a qualifying candidate did not fit */
	struct cpset set;
};

/* Makes room in the set for one more common prefix. */
static int
cpset_reserve(struct heap *h)
{
	struct cpset *s = &h->set;
	if (s->v && (s->fill + 1) * 2 <= s->mask + 1)
		return 0;
	size_t cap = 16;
	while (cap < 4 * (h->ncp + 1))
		cap <<= 1;
	if (!s->v || cap != s->mask + 1) {
		struct cand *nv = calloc(cap, sizeof(*nv));
		unsigned char *nt = calloc(cap, 1);
		if (!nv || !nt) {
			free(nv);
			free(nt);
			return -ENOMEM;
		}
		free(s->v);
		free(s->tomb);
		s->v = nv;
		s->tomb = nt;
		s->mask = cap - 1;
	} else {
		memset(s->v, 0, cap * sizeof(*s->v));
		memset(s->tomb, 0, cap);
	}
	s->fill = 0;
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].kind == CAND_CP)
			cpset_put(s, &h->v[i]);
	return 0;
}

static void
heap_swap(struct cand *a, struct cand *b)
{
	struct cand t = *a;
	*a = *b;
	*b = t;
}

static void
heap_sift_down(struct heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && cand_cmp(&h->v[l], &h->v[m]) > 0)
			m = l;
		if (r < h->n && cand_cmp(&h->v[r], &h->v[m]) > 0)
			m = r;
		if (m == i)
			return;
		heap_swap(&h->v[i], &h->v[m]);
		i = m;
	}
}

/* Offers a candidate (whose name is a copy); takes ownership of c->name
 * either way. */
static int
heap_offer(struct heap *h, struct cand *c)
{
	int r;
	if (h->n == h->k) {
		h->dropped = 1;
		if (cand_cmp(c, &h->v[0]) >= 0) {
			free(c->name);
			return 0;
		}
	} else if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 16;
		if (nc > h->k)
			nc = h->k;
		struct cand *nv = realloc(h->v, nc * sizeof(*nv));
		if (!nv) {
			free(c->name);
			return -ENOMEM;
		}
		h->v = nv;
		h->cap = nc;
	}
	if (c->kind == CAND_CP && (r = cpset_reserve(h)) != 0) {
		free(c->name);
		return r;
	}
	if (h->n == h->k) {
		if (h->v[0].kind == CAND_CP) {
			cpset_del(&h->set, &h->v[0]);
			h->ncp--;
		}
		free(h->v[0].name);
		h->v[0] = *c;
		heap_sift_down(h, 0);
	} else {
		size_t i = h->n++;
		h->v[i] = *c;
		while (i > 0) {
			size_t p = (i - 1) / 2;
			if (cand_cmp(&h->v[i], &h->v[p]) <= 0)
				break;
			heap_swap(&h->v[i], &h->v[p]);
			i = p;
		}
	}
	if (c->kind == CAND_CP) {
		cpset_put(&h->set, c);
		h->ncp++;
	}
	return 0;
}

static void
heap_clear(struct heap *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->v[i].name);
	h->n = 0;
	h->ncp = 0;
	h->dropped = 0;
	if (h->set.v) {
		memset(h->set.v, 0, (h->set.mask + 1) * sizeof(*h->set.v));
		memset(h->set.tomb, 0, h->set.mask + 1);
		h->set.fill = 0;
	}
}

static void
heap_free(struct heap *h)
{
	heap_clear(h);
	free(h->v);
	free(h->set.v);
	free(h->set.tomb);
}

/*
 * Stats the entry key[0..klen) (named name in dirfd) following symlinks
 * only as far as they stay beneath the root.  key has room for a NUL at
 * klen.  0 or -errno.
 */
static int
stat_entry(struct file_state *fs, char *key, int dirfd, const char *name,
    size_t klen, struct stat *sb)
{
	if (fstatat(dirfd, name, sb, AT_SYMLINK_NOFOLLOW) < 0)
		return map_errno(errno);
	if (!S_ISLNK(sb->st_mode))
		return 0;
	char saved = key[klen];
	key[klen] = 0;
	int fd = open_beneath(fs, key, O_PATH);
	key[klen] = saved;
	if (fd < 0)
		return fd;
	int r = fstat(fd, sb) < 0 ? map_errno(errno) : 0;
	close(fd);
	return r;
}

/*
 * What the entry de of directory key[0..dlen) (open as dirfd) is to a
 * listing: 0 a file, 1 a directory, -1 nothing (not listable: a bad name,
 * a key too long, another type, a symlink leading nowhere or out of the
 * root).  Writes the name after key[0..dlen).
 */
static int
entry_kind(struct file_state *fs, char *key, size_t dlen, int dirfd,
    const struct dirent *de, size_t nlen)
{
	const char *name = de->d_name;
	if (!name_listable(name, nlen) || dlen + nlen + 1 > UFS_KEY_MAX)
		return -1;
	if (de->d_type == DT_REG)
		return 0;
	if (de->d_type == DT_DIR)
		return 1;
	if (de->d_type != DT_LNK && de->d_type != DT_UNKNOWN)
		return -1;
	struct stat sb;
	memcpy(key + dlen, name, nlen);
	if (stat_entry(fs, key, dirfd, name, dlen + nlen, &sb))
		return -1;
	return S_ISREG(sb.st_mode) ? 0 : S_ISDIR(sb.st_mode) ? 1 : -1;
}

/*
 * Does directory key[0..dlen) (open as fd, consumed) hold anything a
 * listing shows?  1, 0 (then it is the directory marker object
 * key[0..dlen), as an S3 console "folder"), or -errno.
 */
static int
dir_has_entries(struct file_state *fs, char *key, size_t dlen, int fd)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -EIO;
	}
	int dfd = dirfd(d), r = 0;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			r = errno ? -EIO : 0;
			break;
		}
		if (entry_kind(fs, key, dlen, dfd, de, strlen(de->d_name)) >= 0) {
			r = 1;
			break;
		}
	}
	closedir(d);
	return r;
}

/* Passes one entry (key in l->key[0..klen)) to fn, or notes truncation. */
static void
emit(struct lister *l, size_t klen, int is_dir, const struct stat *sb)
{
	if (l->found >= l->max_keys) {
		l->truncated = 1;
		l->done = 1;
		return;
	}
	l->found++;
	l->key[klen] = 0;
	char etag[UFS_ETAG_MAX] = "";
	if (!is_dir)
		file_etag(sb, etag, sizeof(etag));
	struct ufs_entry e = {
	    .key = l->key,
	    .is_dir = is_dir,
	    .size = is_dir ? 0 : (int64_t)sb->st_size,
	    .mtime = sb ? (int64_t)sb->st_mtim.tv_sec : 0,
	    .etag = etag,
	};
	int r = l->fn(l->arg, &e);
	if (r) {
		l->rc = r;
		l->truncated = 1;
		l->done = 1;
	}
}

/*
 * Sets c's kind and sort key: a name whose key holds the delimiter after
 * the listing's prefix (a directory: within "name/") is that common
 * prefix; else a file, or a directory to walk into.
 */
static void
cand_classify(struct lister *l, size_t dlen, struct cand *c)
{
	memcpy(l->key + dlen, c->name, c->nlen);
	size_t flen = dlen + c->nlen;
	if (c->is_dir)
		l->key[flen++] = '/';
	c->kind = c->is_dir ? CAND_DIR : CAND_FILE;
	c->rel = flen - dlen;
	if (!l->delim_len || flen <= l->plen)
		return;
	/* Walked-into directories held no delimiter: a match ends past
	 * dlen, so rel >= 1. */
	const char *hit = memmem(l->key + l->plen, flen - l->plen, l->delim,
	    l->delim_len);
	if (!hit)
		return;
	c->kind = CAND_CP;
	c->rel = (size_t)(hit - l->key) + l->delim_len - dlen;
}

static int list_dir(struct lister *l, size_t dlen, const char *np,
    size_t nplen, int top);

/* Handles one candidate of directory key[0..dlen) in order. */
static void
list_cand(struct lister *l, int dirfd, size_t dlen, const struct cand *c)
{
	memcpy(l->key + dlen, c->name, c->nlen);
	size_t klen = dlen + c->nlen;
	struct stat sb;
	if (c->kind == CAND_CP) {
		/* A common prefix that is exactly one directory ("name/")
		 * shows that directory's mtime (what `ls -l` shows); one that
		 * groups several names has none. */
		int have = c->rel == c->nlen + 1 &&
		    stat_entry(l->fs, l->key, dirfd, c->name, klen, &sb) == 0;
		if (c->rel > c->nlen)
			l->key[klen] = '/';
		emit(l, dlen + c->rel, 1, have ? &sb : NULL);
		return;
	}
	if (c->kind == CAND_FILE) {
		if (stat_entry(l->fs, l->key, dirfd, c->name, klen, &sb) == 0 &&
		    S_ISREG(sb.st_mode))
			emit(l, klen, 0, &sb);
		return; /* vanished or changed type since the scan: skip */
	}
	l->key[klen++] = '/';
	l->key[klen] = 0;
	int r = list_dir(l, klen, "", 0, 0);
	if (r < 0 && !l->done) {
		l->rc = r;
		l->done = 1;
	}
}

/*
 * Lists the directory whose key prefix is l->key[0..dlen) ("" or ending in
 * '/'), considering only names starting with np.  Subdirectories that
 * cannot be opened are skipped; the top one failing with -ENOENT is an
 * empty listing, any other failure there is returned.  A directory with
 * nothing listable in it is its own marker key, "dir/".
 */
static int
list_dir(struct lister *l, size_t dlen, const char *np, size_t nplen,
    int top)
{
	/* The part of start_after that bounds names here, if any. */
	const char *bound = NULL;
	size_t blen = 0;
	if (l->sa_len > 0) {
		if (l->sa_len >= dlen && memcmp(l->sa, l->key, dlen) == 0) {
			bound = l->sa + dlen;
			blen = l->sa_len - dlen;
		} else if (cmp_bytes(l->sa, l->sa_len, l->key, dlen) > 0) {
			return 0; /* every key in here is <= start_after */
		}
	}

	l->key[dlen] = 0;
	int fd = open_beneath(l->fs, l->key, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return top && fd != -ENOENT ? fd : 0;
	struct stat dsb;
	if (fstat(fd, &dsb) < 0) {
		close(fd);
		return top ? -EIO : 0;
	}
	for (int i = 0; i < l->nanc; i++) {
		if (l->anc[i].dev == dsb.st_dev && l->anc[i].ino == dsb.st_ino) {
			close(fd);
			return 0; /* a symlink loop back to an ancestor */
		}
	}
	if (l->nanc >= (int)(sizeof(l->anc) / sizeof(l->anc[0]))) {
		close(fd);
		return 0;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return top ? -EIO : 0;
	}
	l->anc[l->nanc].dev = dsb.st_dev;
	l->anc[l->nanc].ino = dsb.st_ino;
	l->nanc++;
	int dfd = dirfd(d);
	struct heap h = {0};
	int rc = 0;
	struct cand cursor = {0}; /* rescans start strictly after this */
	int have_cursor = 0;
	int any = 0; /* a listable name seen */
	while (rc == 0) {
		h.k = (size_t)(l->max_keys - l->found) + 1;
		rewinddir(d);
		for (;;) {
			errno = 0;
			struct dirent *de = readdir(d);
			if (!de) {
				if (errno != 0 && top)
					rc = -EIO;
				break;
			}
			const char *name = de->d_name;
			size_t nlen = strlen(name);
			if (nlen < nplen || memcmp(name, np, nplen) != 0)
				continue;
			int is_dir = entry_kind(l->fs, l->key, dlen, dfd, de,
			    nlen);
			if (is_dir < 0)
				continue;
			any = 1;
			struct cand c = {(char *)name, nlen, is_dir, 0, 0};
			cand_classify(l, dlen, &c);
			if (have_cursor && cand_cmp(&c, &cursor) <= 0)
				continue;
			if (bound) {
				int cmp = cand_cmp_str(&c, bound, blen);
				/* A directory whose keys extend past the
				 * bound is walked into. */
				int enter = c.kind == CAND_DIR &&
				    blen >= nlen + 1 &&
				    memcmp(bound, name, nlen) == 0 &&
				    bound[nlen] == '/';
				if (cmp <= 0 && !enter)
					continue;
			}
			if (h.n == h.k) {
				int cmp = cand_cmp(&c, &h.v[0]);
				if (cmp == 0 && c.kind == CAND_CP)
					continue; /* the same common prefix */
				if (cmp >= 0) {
					h.dropped = 1;
					continue; /* cheap reject before strdup */
				}
			}
			if (c.kind == CAND_CP && cpset_has(&h.set, &c))
				continue;
			c.name = strndup(name, nlen);
			if (!c.name || (rc = heap_offer(&h, &c)) != 0) {
				rc = rc ? rc : -ENOMEM;
				break;
			}
		}
		if (rc)
			break;
		if (!any && !have_cursor && nplen == 0 && dlen > 0 &&
		    dlen >= l->plen &&
		    cmp_bytes(l->key, dlen, l->sa, l->sa_len) > 0) {
			/* Empty: the marker "dir/", a key of size 0. */
			struct stat msb = dsb;
			msb.st_size = 0;
			emit(l, dlen, 0, &msb);
			break;
		}
		if (h.n > 1)
			qsort(h.v, h.n, sizeof(h.v[0]), cand_qsort_cmp);
		for (size_t i = 0; i < h.n && !l->done; i++)
			list_cand(l, dfd, dlen, &h.v[i]);
		int again = !l->done && h.dropped && h.n > 0;
		if (again) {
			free(cursor.name);
			cursor = h.v[h.n - 1];
			h.v[h.n - 1].name = NULL;
			have_cursor = 1;
		}
		heap_clear(&h);
		if (!again)
			break;
	}
	heap_free(&h);
	free(cursor.name);
	closedir(d);
	l->nanc--;
	return rc;
}

static int
file_list(void *state, const char *prefix, const char *delimiter,
    const char *start_after, int max_keys, ufs_list_fn fn, void *arg,
    int *truncated)
{
	struct file_state *fs = state;
	*truncated = 0;
	if (max_keys <= 0)
		return -EINVAL;
	if (!prefix)
		prefix = "";
	if (!start_after)
		start_after = "";
	if (!delimiter)
		delimiter = "";
	struct lister *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->fs = fs;
	l->delim = delimiter;
	l->delim_len = strlen(delimiter);
	l->plen = strlen(prefix);
	l->sa = start_after;
	l->sa_len = strlen(start_after);
	l->max_keys = max_keys;
	l->fn = fn;
	l->arg = arg;

	/* Split the prefix into a directory part and a name prefix; a
	 * directory part no key could have matches nothing. */
	size_t plen = l->plen;
	const char *slash = memrchr(prefix, '/', plen);
	size_t dlen = slash ? (size_t)(slash - prefix) + 1 : 0;
	int rc = 0;
	int valid = dlen <= UFS_KEY_MAX && plen <= UFS_KEY_MAX;
	for (size_t s = 0; valid && s < dlen;) {
		const char *e = memchr(prefix + s, '/', dlen - s);
		size_t seg = (size_t)(e - (prefix + s));
		valid = name_listable(prefix + s, seg);
		s += seg + 1;
	}
	if (valid) {
		memcpy(l->key, prefix, dlen);
		rc = list_dir(l, dlen, prefix + dlen, plen - dlen, 1);
		if (l->rc)
			rc = l->rc;
	}
	*truncated = l->truncated;
	free(l);
	return rc;
}

/* ---- directory markers ---- */

/*
 * path ends in '/': the marker object of an empty directory (size 0, the
 * directory's mtime, an ETag from the mtime), or -ENOENT (no directory,
 * or one with something listable in it, which is a prefix, not an object).
 */
static int
marker_stat(struct file_state *fs, const char *path, struct ufs_stat *st)
{
	size_t n = strlen(path);
	if (n < 2 || n > UFS_KEY_MAX)
		return -ENOENT;
	int fd = open_beneath(fs, path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		int e = errno;
		close(fd);
		return map_errno(e);
	}
	char key[UFS_KEY_MAX + 2];
	memcpy(key, path, n);
	int r = dir_has_entries(fs, key, n, fd);
	if (r < 0)
		return r;
	if (r > 0)
		return -ENOENT;
	sb.st_size = 0;
	memset(st, 0, sizeof(*st));
	st->mtime = (int64_t)sb.st_mtim.tv_sec;
	file_etag(&sb, st->etag, sizeof(st->etag));
	return 0;
}

static const struct ufs_optdoc file_options[] = {{NULL, NULL, NULL}};

const struct ufs_ops ufs_file_ops = {
    .scheme = "file",
    .options = file_options,
    .open = file_open,
    .close = file_close,
    .stat = file_stat,
    .list = file_list,
    .read = file_read,
};
