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
 * With delimiter '/' every subdirectory is a common prefix, empty ones
 * included (a real S3 prefix needs an object under it; here stat also calls
 * an empty directory a directory, so the two agree), with the directory's
 * own mtime (S3 prefixes have none: 0).  Recursive listings do
 * not enter a directory already on the current path (symlink loops).
 * Memory: each directory scan keeps only the max_keys+1 smallest
 * qualifying names (a bounded heap), so a listing holds at most
 * (max_keys+1) names per directory level it is inside of, whatever the
 * directory sizes.  When the callback returns non-zero, list stops, sets
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

static int
file_stat(void *state, const char *path, struct ufs_stat *st)
{
	struct file_state *fs = state;
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

/* A name in a directory scan; its sort key is name, plus '/' for dirs. */
struct cand {
	char *name;
	size_t nlen;
	int is_dir;
};

struct ancestor {
	dev_t dev;
	ino_t ino;
};

struct lister {
	struct file_state *fs;
	char delimiter;
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

/* Byte-order comparison of a+(ad ? "/" : "") with b+(bd ? "/" : ""). */
static int
cmp_vkey(const char *a, size_t al, int ad, const char *b, size_t bl, int bd)
{
	size_t n = al < bl ? al : bl;
	int r = memcmp(a, b, n);
	if (r)
		return r < 0 ? -1 : 1;
	size_t alen = al + (size_t)ad, blen = bl + (size_t)bd;
	for (size_t i = n; i < alen && i < blen; i++) {
		unsigned ca = i < al ? (unsigned char)a[i] : '/';
		unsigned cb = i < bl ? (unsigned char)b[i] : '/';
		if (ca != cb)
			return ca < cb ? -1 : 1;
	}
	return (alen > blen) - (alen < blen);
}

static int
cand_cmp(const struct cand *a, const struct cand *b)
{
	return cmp_vkey(a->name, a->nlen, a->is_dir, b->name, b->nlen,
	    b->is_dir);
}

static int
cand_qsort_cmp(const void *a, const void *b)
{
	return cand_cmp(a, b);
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

/* Max-heap of the K smallest candidates. */
struct heap {
	struct cand *v;
	size_t n, cap, k;
	int dropped; /* a qualifying candidate did not fit */
};

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

/* Offers a candidate; takes ownership of c->name either way. */
static int
heap_offer(struct heap *h, struct cand *c)
{
	if (h->n == h->k) {
		h->dropped = 1;
		if (cand_cmp(c, &h->v[0]) >= 0) {
			free(c->name);
			return 0;
		}
		free(h->v[0].name);
		h->v[0] = *c;
		heap_sift_down(h, 0);
		return 0;
	}
	if (h->n == h->cap) {
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
	size_t i = h->n++;
	h->v[i] = *c;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (cand_cmp(&h->v[i], &h->v[p]) <= 0)
			break;
		heap_swap(&h->v[i], &h->v[p]);
		i = p;
	}
	return 0;
}

static void
heap_clear(struct heap *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->v[i].name);
	h->n = 0;
	h->dropped = 0;
}

/*
 * Stats the entry key[0..klen) (named name in dirfd) following symlinks
 * only as far as they stay beneath the root.  0 or -errno.
 */
static int
stat_entry(struct lister *l, int dirfd, const char *name, size_t klen,
    struct stat *sb)
{
	if (fstatat(dirfd, name, sb, AT_SYMLINK_NOFOLLOW) < 0)
		return map_errno(errno);
	if (!S_ISLNK(sb->st_mode))
		return 0;
	char saved = l->key[klen];
	l->key[klen] = 0;
	int fd = open_beneath(l->fs, l->key, O_PATH);
	l->key[klen] = saved;
	if (fd < 0)
		return fd;
	int r = fstat(fd, sb) < 0 ? map_errno(errno) : 0;
	close(fd);
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

static int list_dir(struct lister *l, size_t dlen, const char *np,
    size_t nplen, int top);

/* Handles one candidate of directory key[0..dlen) in order. */
static void
list_cand(struct lister *l, int dirfd, size_t dlen, const struct cand *c)
{
	memcpy(l->key + dlen, c->name, c->nlen);
	size_t klen = dlen + c->nlen;
	struct stat sb;
	if (!c->is_dir) {
		if (stat_entry(l, dirfd, c->name, klen, &sb) == 0 &&
		    S_ISREG(sb.st_mode))
			emit(l, klen, 0, &sb);
		return; /* vanished or changed type since the scan: skip */
	}
	if (l->delimiter == '/') {
		/* Rolled up: the directory's own mtime is what `ls -l` shows. */
		int have = stat_entry(l, dirfd, c->name, klen, &sb) == 0;
		l->key[klen++] = '/';
		emit(l, klen, 1, have ? &sb : NULL);
		return;
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
 * empty listing, any other failure there is returned.
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
		} else if (cmp_vkey(l->sa, l->sa_len, 0, l->key, dlen, 0) > 0) {
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
	l->anc[l->nanc].dev = dsb.st_dev;
	l->anc[l->nanc].ino = dsb.st_ino;
	l->nanc++;

	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		l->nanc--;
		return top ? -EIO : 0;
	}
	int dfd = dirfd(d);
	int rc = 0;
	struct heap h = {0};
	struct cand cursor = {0}; /* rescans start strictly after this */
	int have_cursor = 0;
	for (;;) {
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
			if (nlen < nplen || memcmp(name, np, nplen) != 0 ||
			    !name_listable(name, nlen) ||
			    dlen + nlen + 1 > UFS_KEY_MAX)
				continue;
			int is_dir;
			if (de->d_type == DT_REG) {
				is_dir = 0;
			} else if (de->d_type == DT_DIR) {
				is_dir = 1;
			} else if (de->d_type == DT_LNK ||
			    de->d_type == DT_UNKNOWN) {
				struct stat sb;
				memcpy(l->key + dlen, name, nlen);
				if (stat_entry(l, dfd, name, dlen + nlen, &sb))
					continue;
				if (S_ISREG(sb.st_mode))
					is_dir = 0;
				else if (S_ISDIR(sb.st_mode))
					is_dir = 1;
				else
					continue;
			} else {
				continue;
			}
			struct cand c = {(char *)name, nlen, is_dir};
			if (have_cursor && cand_cmp(&c, &cursor) <= 0)
				continue;
			if (bound) {
				int cmp = cmp_vkey(name, nlen, is_dir, bound,
				    blen, 0);
				/* A directory whose keys extend past the
				 * bound is entered when recursing. */
				int enter = is_dir && l->delimiter != '/' &&
				    blen >= nlen + 1 &&
				    memcmp(bound, name, nlen) == 0 &&
				    bound[nlen] == '/';
				if (cmp <= 0 && !enter)
					continue;
			}
			if (h.n == h.k && cand_cmp(&c, &h.v[0]) >= 0) {
				h.dropped = 1;
				continue; /* cheap reject before strdup */
			}
			c.name = strndup(name, nlen);
			if (!c.name || (rc = heap_offer(&h, &c)) != 0) {
				rc = rc ? rc : -ENOMEM;
				break;
			}
		}
		if (rc)
			break;
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
	heap_clear(&h);
	free(h.v);
	free(cursor.name);
	closedir(d);
	l->nanc--;
	return rc;
}

static int
file_list(void *state, const char *prefix, char delimiter,
    const char *start_after, int max_keys, ufs_list_fn fn, void *arg,
    int *truncated)
{
	struct file_state *fs = state;
	*truncated = 0;
	if (max_keys <= 0 || (delimiter != 0 && delimiter != '/'))
		return -EINVAL;
	if (!prefix)
		prefix = "";
	if (!start_after)
		start_after = "";
	struct lister *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->fs = fs;
	l->delimiter = delimiter;
	l->sa = start_after;
	l->sa_len = strlen(start_after);
	l->max_keys = max_keys;
	l->fn = fn;
	l->arg = arg;

	/* Split the prefix into a directory part and a name prefix; a
	 * directory part no key could have matches nothing. */
	size_t plen = strlen(prefix);
	const char *slash = memrchr(prefix, '/', plen);
	size_t dlen = slash ? (size_t)(slash - prefix) + 1 : 0;
	int rc = 0;
	int valid = dlen <= UFS_KEY_MAX;
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
