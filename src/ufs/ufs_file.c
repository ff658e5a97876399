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
 * Cost and memory: a directory is read into a sorted window of its names
 * (ufs_file_snap.c), which is cached and serves the following pages
 * while the directory's mtime and ctime stay as they were, so that a
 * listing of n names, page by page, reads each directory once and sorts
 * it once (O(n log n)), not once a page.  A directory changed between
 * pages is read again from where the page starts.  Windows, cached and in
 * use, share one process-wide budget (64 MiB); a directory whose names do
 * not fit it is read in several windows, each starting after the last.
 * When the callback returns non-zero, list stops, sets *truncated and
 * returns that value.
 *
 * Writes never show a torn file.  The body goes to a temporary file,
 * ".ferry-tmp." and 16 hex digits, in the destination's directory
 * (missing parents are made, mode 0755, each opened beneath the root
 * before the next is made in it, so nothing is ever created outside); at
 * commit it is fsync'd, renamed into place and the directory fsync'd.
 * Names starting with ".ferry-tmp." are hidden from list, stat and read
 * and refused as keys: a crash leaves only a temporary file no reader
 * sees (stale ones may be deleted by hand).  Abort unlinks it and removes
 * the directories the write made.  if_none_match is atomic (renameat2
 * RENAME_NOREPLACE, or link() where the filesystem lacks it); if_match is
 * checked right before the rename (best effort: a writer in between
 * wins).  A key where a directory holds other keys cannot be written
 * (-EIO, said): file:// cannot have both "a" and "a/b".  A symlink at the
 * key is replaced, never written through.  The commit's stat is the new
 * file's, what stat answers next; a new version with the old one's size
 * and mtime (one clock tick) gets the old mtime + 1 ns, so that its ETag
 * differs.  A marker key "dir/" (empty body only) makes the directory.
 * Headers (content-type, x-amz-meta-*, ...) are kept as user.ferry.NAME
 * xattrs where the filesystem has user xattrs and silently dropped where
 * it has not; stat answers them (ufs_answer_hdrs), read from the xattrs
 * of the file it stats.  remove unlinks the file
 * (rmdir for "dir/"), then removes the parents it left empty, up to the
 * root: S3 has no empty directories, and an empty one here would list as
 * a marker nobody made.  The price: a marker put explicitly ("a/")
 * disappears with the last key under it, where S3 would keep it.  copy is
 * a write whose body comes from the source (copy_file_range where
 * possible), its xattrs copied unless headers replace them.
 *
 * Threads: any thread; the state is read-only after open except the
 * openat2-availability flag, which is only ever cleared (atomically).
 * The listing's window cache has its own lock (ufs_file_snap.c).  A
 * write session is one thread's at a time (ufs.h).
 */
#include "ufs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "ufs_file_snap.h"

/* A write's temporary file: hidden from list, stat and read, and a name no
 * write may use, so a crash leaves nothing a reader sees. */
#define TMP_PREFIX ".ferry-tmp."
#define TMP_PREFIX_LEN (sizeof(TMP_PREFIX) - 1)
/* Where a write's headers go (content-type, x-amz-meta-*, ...). */
#define XATTR_PREFIX "user.ferry."
/* A directory's sorted names are kept across pages only when its mtime
 * was this old when it was read: a change in the same timestamp tick as
 * the last one (coarse clocks; 2 s on FAT) could leave the mtime as it
 * was. */
#define LIST_RACY_S 2

struct file_state {
	int rootfd;      /* O_PATH of the root directory */
	char *root_real; /* realpath of the root, for the fallback */
	size_t root_real_len;
	int use_openat2; /* accessed with __atomic_*; cleared on ENOSYS */
	/* Writers hold it shared from making a key's directories until
	 * their temporary file is in them; pruning empty directories holds
	 * it alone: a remove never prunes a directory a write of this
	 * process is about to use (another process still may: retried). */
	pthread_rwlock_t dirs_lock;
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

/* Errors of a write: a full disk and a read-only tree are said as such. */
static int
map_write_errno(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
		return -ENOSPC;
	case EROFS:
		return -EROFS;
	default:
		return map_errno(e);
	}
}

static int
reserved_name(const char *name, size_t n)
{
	return n >= TMP_PREFIX_LEN && memcmp(name, TMP_PREFIX, TMP_PREFIX_LEN) == 0;
}

/* Does a segment of path start with TMP_PREFIX? */
static int
reserved_path(const char *path)
{
	while (*path) {
		size_t n = strcspn(path, "/");
		if (reserved_name(path, n))
			return 1;
		path += n;
		if (*path)
			path++;
	}
	return 0;
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
	pthread_rwlock_init(&fs->dirs_lock, NULL);
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
	fsnap_forget(fs);
	close(fs->rootfd);
	free(fs->root_real);
	pthread_rwlock_destroy(&fs->dirs_lock);
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

/*
 * The answer's headers (ufs_answer_hdrs): fd's user.ferry.NAME xattrs, as
 * a write keeps them (set_headers) or anyone else set them.  fd is O_PATH,
 * which the xattr calls do not take: they go through /proc/self/fd.  A
 * filesystem without user xattrs has none stored; where /proc or the
 * filesystem cannot say, the answer does not know them.  An xattr that is
 * not a header an object keeps, or not printable, is left out.
 */
static void
answer_headers(int fd)
{
	char pp[40];
	snprintf(pp, sizeof(pp), "/proc/self/fd/%d", fd);
	char small[4096], *list = small;
	ssize_t ln = listxattr(pp, list, sizeof(small));
	if (ln < 0 && errno == ERANGE) {
		/* Many xattrs (not ours): the kernel's own bound. */
		list = malloc(XATTR_LIST_MAX);
		ln = list ? listxattr(pp, list, XATTR_LIST_MAX) : -1;
	}
	if (ln < 0 && errno != ENOTSUP && errno != ENODATA) {
		if (list != small)
			free(list);
		return; /* known stays 0 */
	}
	struct ufs_hdrs *h = ufs_answer_hdrs();
	ufs_hdrs_init(h);
	char val[2049];
	for (ssize_t i = 0; i < ln;) {
		const char *name = list + i;
		size_t nl = strnlen(name, (size_t)(ln - i));
		i += (ssize_t)nl + 1;
		if (nl <= strlen(XATTR_PREFIX) ||
		    strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) != 0)
			continue;
		ssize_t vl = getxattr(pp, name, val, sizeof(val) - 1);
		if (vl < 0)
			continue; /* gone meanwhile, or too long to be one */
		ufs_hdrs_add(h, name + strlen(XATTR_PREFIX),
		    nl - strlen(XATTR_PREFIX), val, (size_t)vl);
	}
	if (list != small)
		free(list);
}

static int
file_stat(void *state, const char *path, struct ufs_stat *st)
{
	struct file_state *fs = state;
	size_t pl = strlen(path);
	if (reserved_path(path))
		return -ENOENT;
	if (pl > 0 && path[pl - 1] == '/')
		return marker_stat(fs, path, st);
	int fd = open_beneath(fs, path, O_PATH);
	if (fd < 0)
		return fd;
	struct stat sb;
	int r = fstat(fd, &sb);
	int e = errno;
	if (r == 0 && S_ISREG(sb.st_mode))
		answer_headers(fd);
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
	if (reserved_path(path))
		return -ENOENT;
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
	/* Byte 0 at a known version: its headers too (a listing did not
	 * say them; a GET of an object fetched ahead needs no stat). */
	if (off == 0 && etag && etag[0])
		answer_headers(fd);
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
	    (n == 2 && name[0] == '.' && name[1] == '.') ||
	    reserved_name(name, n))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return utf8_valid(name, n);
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

/* The directory's identity for its snapshots. */
static void
snap_id(struct lister *l, size_t dlen, const char *np, size_t nplen,
    const struct stat *dsb, struct fsnap_id *id)
{
	*id = (struct fsnap_id){
	    .owner = l->fs,
	    .path = l->key,
	    .plen = dlen,
	    .np = np,
	    .nplen = nplen,
	    .dev = dsb->st_dev,
	    .ino = dsb->st_ino,
	    .mtime = dsb->st_mtim,
	    .ctime = dsb->st_ctim,
	};
}

/*
 * Reads directory key[0..dlen) (d; dsb its stat when opened) into a
 * sorted window of its listable names starting with np from lo[0..ll)
 * (incl: lo itself included) on.  The window is cached for later pages
 * when the directory did not change while it was read and its mtime is
 * old enough that a change could not leave it as it was.  *err gets
 * -EIO for a failed readdir (the window then holds what was read).
 */
static struct fsnap *
scan_dir(struct lister *l, DIR *d, size_t dlen, const char *np, size_t nplen,
    const struct stat *dsb, const char *lo, size_t ll, int incl, int *err)
{
	struct timespec t0;
	clock_gettime(CLOCK_REALTIME, &t0);
	struct fsnap_build *b = fsnap_build_new(lo, ll, incl);
	if (!b) {
		*err = -ENOMEM;
		return NULL;
	}
	int dfd = dirfd(d);
	*err = 0;
	rewinddir(d);
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			if (errno != 0)
				*err = -EIO;
			break;
		}
		const char *name = de->d_name;
		size_t nlen = strlen(name);
		if (nlen < nplen || memcmp(name, np, nplen) != 0)
			continue;
		int is_dir = entry_kind(l->fs, l->key, dlen, dfd, de, nlen);
		if (is_dir < 0)
			continue;
		int r = fsnap_build_add(b, name, nlen, is_dir);
		if (r) {
			*err = r;
			break;
		}
	}
	struct stat after;
	int cache = *err == 0 && fstat(dfd, &after) == 0 &&
	    after.st_ino == dsb->st_ino && after.st_dev == dsb->st_dev &&
	    after.st_mtim.tv_sec == dsb->st_mtim.tv_sec &&
	    after.st_mtim.tv_nsec == dsb->st_mtim.tv_nsec &&
	    after.st_ctim.tv_sec == dsb->st_ctim.tv_sec &&
	    after.st_ctim.tv_nsec == dsb->st_ctim.tv_nsec &&
	    dsb->st_mtim.tv_sec + LIST_RACY_S <= t0.tv_sec;
	struct fsnap_id id;
	snap_id(l, dlen, np, nplen, dsb, &id);
	struct fsnap *s = fsnap_build_done(b, &id, cache);
	if (!s && !*err)
		*err = -ENOMEM;
	return s;
}

/*
 * Lists the directory whose key prefix is l->key[0..dlen) ("" or ending in
 * '/'), considering only names starting with np.  Subdirectories that
 * cannot be opened are skipped; the top one failing with -ENOENT is an
 * empty listing, any other failure there is returned.  A directory with
 * nothing listable in it is its own marker key, "dir/".
 *
 * The names come from sorted windows of the directory (ufs_file_snap.h):
 * a cached one that holds the page's starting point when the directory is
 * unchanged, else a fresh scan from there.  Candidates are handled in
 * their order; those of one common prefix are contiguous in it, so an
 * equal successor is skipped.
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
	l->anc[l->nanc].dev = dsb.st_dev;
	l->anc[l->nanc].ino = dsb.st_ino;
	l->nanc++;
	DIR *d = NULL; /* opened for a scan only */

	/* Where the page starts in the directory's order: a key of a name
	 * sorting before bound's first segment ("name/" included) is not
	 * after start_after, nor is anything under it. */
	const char *from = "";
	size_t flen = 0;
	if (bound) {
		const char *sl = memchr(bound, '/', blen);
		from = bound;
		flen = sl ? (size_t)(sl - bound) + 1 : blen;
	}
	int incl = 1;
	char from_buf[NAME_MAX + 2];

	int rc = 0;
	struct cand last = {0}; /* the last candidate handled */
	char last_buf[NAME_MAX + 1];
	int have_last = 0, first = 1;
	while (rc == 0 && !l->done) {
		struct fsnap_id id;
		snap_id(l, dlen, np, nplen, &dsb, &id);
		struct fsnap *s = fsnap_get(&id, from, flen, incl);
		if (!s) {
			if (!d && !(d = fdopendir(fd))) {
				close(fd);
				fd = -1;
				rc = top ? -EIO : 0;
				break;
			}
			int err = 0;
			s = scan_dir(l, d, dlen, np, nplen, &dsb, from, flen,
			    incl, &err);
			if (err && (top || err == -ENOMEM)) {
				fsnap_put(s);
				rc = err;
				break;
			}
			if (!s)
				break;
		}
		int dfd = d ? dirfd(d) : fd;
		if (first && !s->any && nplen == 0 && dlen > 0 &&
		    dlen >= l->plen &&
		    cmp_bytes(l->key, dlen, l->sa, l->sa_len) > 0) {
			/* Empty: the marker "dir/", a key of size 0. */
			struct stat msb = dsb;
			msb.st_size = 0;
			emit(l, dlen, 0, &msb);
			fsnap_put(s);
			break;
		}
		first = 0;
		for (size_t i = fsnap_seek(s, from, flen, incl);
		    i < s->n && !l->done; i++) {
			const struct fsnap_ent *e = &s->ents[i];
			const char *name = s->names + e->off;
			struct cand c = {(char *)name, e->nlen, e->is_dir, 0, 0};
			cand_classify(l, dlen, &c);
			if (have_last && cand_cmp(&c, &last) <= 0)
				continue; /* the same common prefix */
			if (bound) {
				int cmp = cand_cmp_str(&c, bound, blen);
				/* A directory whose keys extend past the
				 * bound is walked into. */
				int enter = c.kind == CAND_DIR &&
				    blen >= c.nlen + 1 &&
				    memcmp(bound, name, c.nlen) == 0 &&
				    bound[c.nlen] == '/';
				if (cmp <= 0 && !enter)
					continue;
			}
			list_cand(l, dfd, dlen, &c);
			last = c;
			have_last = 1;
		}
		int more = !l->done && !s->complete && s->n > 0;
		if (more) {
			/* On after this window's last name, in the next. */
			const struct fsnap_ent *e = &s->ents[s->n - 1];
			memcpy(from_buf, s->names + e->off, e->nlen);
			flen = e->nlen;
			if (e->is_dir)
				from_buf[flen++] = '/';
			from = from_buf;
			incl = 0;
		}
		if (have_last && last.name != last_buf) {
			memcpy(last_buf, last.name, last.nlen);
			last.name = last_buf;
		}
		fsnap_put(s);
		if (!more)
			break;
	}
	if (d)
		closedir(d);
	else if (fd >= 0)
		close(fd);
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
	if (n < 2 || n > UFS_KEY_MAX || reserved_path(path))
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

/* ---- writes ---- */

static void __attribute__((format(printf, 3, 4)))
file_set_error(const struct file_state *fs, const char *path,
    const char *fmt, ...)
{
	char what[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	const char *root = fs->root_real;
	ufs_set_error("file://%s%s%s: %s", root,
	    path[0] && root[fs->root_real_len - 1] != '/' ? "/" : "", path, what);
}

/* The directories a write created (prefix lengths of its directory path,
 * shallowest first), removed again if it does not commit. */
struct mkdirs {
	size_t len[UFS_KEY_MAX / 2 + 1];
	int n;
};

/*
 * Opens directory dir[0..dlen) ("" is the root) beneath the root, for
 * writing into and fsync (O_RDONLY | O_DIRECTORY), creating missing
 * components with mode 0755.  Each component is opened beneath the root
 * before the next is made in it, so a symlink out of the root fails
 * (-EACCES) and nothing is created outside; a component that is a file
 * fails (-EIO, said).  A component removed meanwhile (a remove pruning
 * the empty directories) starts the walk again.  Those created are added
 * to md (if not NULL).  fd or -errno.
 */
static int
open_dir_creating(struct file_state *fs, const char *dir, size_t dlen,
    struct mkdirs *md)
{
	char buf[UFS_KEY_MAX + 1];
	if (dlen > UFS_KEY_MAX)
		return -EINVAL;
	memcpy(buf, dir, dlen);
	buf[dlen] = 0;
	for (int tries = 0;; tries++) {
		int fd = open_beneath(fs, buf, O_RDONLY | O_DIRECTORY);
		if (fd != -ENOENT || tries == 16)
			return fd;
		int parent = open_beneath(fs, "", O_PATH | O_DIRECTORY);
		int again = 0;
		for (size_t i = 0; parent >= 0 && i < dlen && !again;) {
			size_t j = i;
			while (j < dlen && buf[j] != '/')
				j++;
			buf[j] = 0;
			int sub = open_beneath(fs, buf, O_PATH | O_DIRECTORY);
			if (sub == -ENOENT) {
				struct stat sb;
				if (mkdirat(parent, buf + i, 0755) == 0) {
					while (md && md->n > 0 &&
					    md->len[md->n - 1] >= j)
						md->n--;
					if (md && md->n < (int)(sizeof(md->len) /
					    sizeof(md->len[0])))
						md->len[md->n++] = j;
					sub = open_beneath(fs, buf,
					    O_PATH | O_DIRECTORY);
					again = sub == -ENOENT;
				} else if (errno == ENOENT) {
					again = 1; /* parent removed meanwhile */
				} else if (errno != EEXIST) {
					int e = errno;
					file_set_error(fs, buf, "cannot create "
					    "the directory: %s", strerror(e));
					sub = map_write_errno(e);
				} else if (fstatat(parent, buf + i, &sb,
				    AT_SYMLINK_NOFOLLOW) == 0 &&
				    !S_ISDIR(sb.st_mode)) {
					/* a file, or a symlink leading to
					 * nothing or to a file */
					sub = open_beneath(fs, buf,
					    O_PATH | O_DIRECTORY);
					if (sub == -ENOENT) {
						file_set_error(fs, buf, "not a "
						    "directory (a file has this "
						    "name)");
						sub = -EIO;
					}
				} else {
					sub = open_beneath(fs, buf,
					    O_PATH | O_DIRECTORY);
					again = sub == -ENOENT;
				}
			}
			close(parent);
			parent = again ? -1 : sub;
			if (j < dlen)
				buf[j] = '/';
			i = j + 1;
		}
		if (again)
			continue;
		if (parent < 0)
			return parent;
		close(parent);
	}
}

/* Removes the empty directory path (NUL-terminated, not the root) whose
 * parent is resolved beneath the root; the last component is never
 * followed (a symlink is not a directory here).  0 or -errno. */
static int
rmdir_beneath(struct file_state *fs, char *path)
{
	char *slash = strrchr(path, '/');
	int pfd;
	if (slash) {
		*slash = 0;
		pfd = open_beneath(fs, path, O_PATH | O_DIRECTORY);
		*slash = '/';
	} else {
		pfd = open_beneath(fs, "", O_PATH | O_DIRECTORY);
	}
	if (pfd < 0)
		return pfd;
	int r = unlinkat(pfd, slash ? slash + 1 : path, AT_REMOVEDIR) < 0 ?
	    -errno : 0;
	close(pfd);
	return r;
}

/* Undoes the directories a write made, deepest first, while empty. */
static void
rmdirs_created(struct file_state *fs, const char *dir, struct mkdirs *md)
{
	char buf[UFS_KEY_MAX + 1];
	pthread_rwlock_wrlock(&fs->dirs_lock);
	for (int k = md->n - 1; k >= 0; k--) {
		memcpy(buf, dir, md->len[k]);
		buf[md->len[k]] = 0;
		if (rmdir_beneath(fs, buf) < 0)
			break;
	}
	pthread_rwlock_unlock(&fs->dirs_lock);
	md->n = 0;
}

/* Removes directory dir[0..dlen) and then its parents while they are empty,
 * up to (not including) the root. */
static void
prune_empty(struct file_state *fs, const char *dir, size_t dlen)
{
	char buf[UFS_KEY_MAX + 1];
	if (dlen > UFS_KEY_MAX)
		return;
	memcpy(buf, dir, dlen);
	buf[dlen] = 0;
	pthread_rwlock_wrlock(&fs->dirs_lock);
	while (buf[0]) {
		if (rmdir_beneath(fs, buf) < 0)
			break;
		char *s = strrchr(buf, '/');
		if (!s)
			break;
		*s = 0;
	}
	pthread_rwlock_unlock(&fs->dirs_lock);
}

static void
tmp_name(char *out, size_t n)
{
	static uint64_t ctr;
	uint64_t r;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 40) ^
		    __atomic_add_fetch(&ctr, 1, __ATOMIC_RELAXED) *
		    0x9e3779b97f4a7c15ull;
	snprintf(out, n, TMP_PREFIX "%016llx", (unsigned long long)r);
}

/* A write session (ufs.h).  A marker key ("dir/") has no temporary file:
 * its commit makes the directory. */
struct file_put {
	struct file_state *fs;
	char *path;       /* the key */
	size_t dlen;      /* its directory: path[0..dlen) */
	const char *name; /* its last component (no '/'), in path */
	int marker;
	int dirfd;        /* the directory (-1 for a marker) */
	int fd;           /* the temporary file (-1 for a marker) */
	char tmp[40];     /* its name in dirfd */
	int if_none_match;
	char if_match[UFS_ETAG_MAX];
	int64_t written;
	struct mkdirs md; /* made by put_begin */
};

static void
file_put_free(struct file_put *p, int undo)
{
	if (p->fd >= 0)
		close(p->fd);
	if (undo && p->tmp[0] && p->dirfd >= 0)
		unlinkat(p->dirfd, p->tmp, 0);
	if (p->dirfd >= 0)
		close(p->dirfd);
	if (undo)
		rmdirs_created(p->fs, p->path, &p->md);
	free(p->path);
	free(p);
}

/* Keeps a write's headers as user.ferry.NAME xattrs of fd.  A filesystem
 * without user xattrs keeps none, silently.  0 or -errno (said). */
static int
set_headers(struct file_put *p, const struct ufs_put_opts *o)
{
	for (int i = 0; i < o->nheaders; i++) {
		char name[XATTR_NAME_MAX + 1];
		const char *v = o->headers[i].value;
		int n = snprintf(name, sizeof(name), XATTR_PREFIX "%s",
		    o->headers[i].key);
		if (n < 0 || (size_t)n >= sizeof(name)) {
			file_set_error(p->fs, p->path, "header name '%.40s...' "
			    "too long to keep", o->headers[i].key);
			return -EINVAL;
		}
		if (fsetxattr(p->fd, name, v, strlen(v), 0) == 0)
			continue;
		int e = errno;
		if (e == ENOTSUP)
			return 0; /* no user xattrs here: not kept */
		file_set_error(p->fs, p->path, "cannot keep header %s: %s",
		    o->headers[i].key, strerror(e));
		return e == ERANGE || e == E2BIG ? -EINVAL : map_write_errno(e);
	}
	return 0;
}

/* Copies src's user.ferry.* xattrs to dst, as S3 copies an object's
 * metadata; best effort, but a full disk is an error. */
static int
copy_headers(int src, int dst)
{
	enum { LIST_MAX = 64 << 10, VAL_MAX = 8 << 10 };
	char *list = malloc(LIST_MAX), *val = malloc(VAL_MAX);
	int r = 0;
	ssize_t ln = list && val ? flistxattr(src, list, LIST_MAX) : -1;
	for (ssize_t i = 0; i < ln && !r;) {
		const char *name = list + i;
		size_t nl = strnlen(name, (size_t)(ln - i));
		i += (ssize_t)nl + 1;
		if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) != 0)
			continue;
		ssize_t vl = fgetxattr(src, name, val, VAL_MAX);
		if (vl >= 0 && fsetxattr(dst, name, val, (size_t)vl, 0) < 0 &&
		    (errno == ENOSPC || errno == EDQUOT))
			r = -ENOSPC;
	}
	free(list);
	free(val);
	return r;
}

static int
file_put_begin(void *state, const char *path, const struct ufs_put_opts *o,
    void **out)
{
	struct file_state *fs = state;
	*out = NULL;
	int locked = 0;
	size_t pl = strlen(path);
	if (pl == 0 || pl > UFS_KEY_MAX)
		return -EINVAL;
	if (reserved_path(path)) {
		file_set_error(fs, path, "names starting with " TMP_PREFIX
		    " are ferry's temporary files");
		return -EINVAL;
	}
	struct file_put *p = calloc(1, sizeof(*p));
	if (!p || !(p->path = strdup(path))) {
		free(p);
		return -ENOMEM;
	}
	p->fs = fs;
	p->fd = p->dirfd = -1;
	p->marker = path[pl - 1] == '/';
	p->if_none_match = o->if_none_match;
	snprintf(p->if_match, sizeof(p->if_match), "%s",
	    o->if_match ? o->if_match : "");
	if (p->marker) {
		if (o->size > 0) {
			file_set_error(fs, path, "a key ending in '/' is a "
			    "directory here and holds no bytes");
			file_put_free(p, 0);
			return -EINVAL;
		}
		*out = p;
		return 0;
	}
	const char *slash = strrchr(path, '/');
	p->dlen = slash ? (size_t)(slash - path) : 0;
	p->name = slash ? p->path + p->dlen + 1 : p->path;
	int r;
	pthread_rwlock_rdlock(&fs->dirs_lock);
	locked = 1;
	for (int tries = 0;; tries++) {
		p->md.n = 0;
		p->dirfd = open_dir_creating(fs, path, p->dlen, &p->md);
		if (p->dirfd < 0) {
			r = p->dirfd;
			goto fail;
		}
		/* A directory at the key holds other keys: file:// cannot
		 * have an object there too (a symlink at the key is replaced,
		 * never written through). */
		struct stat sb;
		if (fstatat(p->dirfd, p->name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
			int isdir = S_ISDIR(sb.st_mode);
			if (S_ISLNK(sb.st_mode)) {
				int lfd = open_beneath(fs, path, O_PATH);
				isdir = lfd >= 0 && fstat(lfd, &sb) == 0 &&
				    S_ISDIR(sb.st_mode);
				if (lfd >= 0)
					close(lfd);
			}
			if (isdir) {
				file_set_error(fs, path, "a directory has this "
				    "name (it holds keys %s/...)", path);
				r = -EIO;
				goto fail;
			}
		}
		tmp_name(p->tmp, sizeof(p->tmp));
		p->fd = openat(p->dirfd, p->tmp, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC | O_NOFOLLOW, 0644);
		if (p->fd >= 0)
			break;
		int e = errno;
		p->tmp[0] = 0;
		close(p->dirfd);
		p->dirfd = -1;
		/* ENOENT: a remove emptied and pruned the directory meanwhile;
		 * EEXIST: a name clash.  Both are worth another go. */
		if ((e == ENOENT || e == EEXIST) && tries < 8)
			continue;
		file_set_error(fs, path, "cannot create a temporary file: %s",
		    strerror(e));
		r = map_write_errno(e);
		goto fail;
	}
	pthread_rwlock_unlock(&fs->dirs_lock); /* the file holds its directory */
	locked = 0;
	/* A size announced: reserve the blocks now, so that a full disk
	 * fails here and not after the body was sent. */
	if (o->size > 0 && fallocate(p->fd, FALLOC_FL_KEEP_SIZE, 0,
	    (off_t)o->size) < 0 && (errno == ENOSPC || errno == EDQUOT)) {
		file_set_error(fs, path, "no space for %lld bytes",
		    (long long)o->size);
		r = -ENOSPC;
		goto fail;
	}
	if ((r = set_headers(p, o)) < 0)
		goto fail;
	*out = p;
	return 0;
fail:
	if (locked)
		pthread_rwlock_unlock(&fs->dirs_lock);
	file_put_free(p, 1);
	return r;
}

static int
file_put_write(void *put, const void *buf, size_t len)
{
	struct file_put *p = put;
	if (p->marker) {
		file_set_error(p->fs, p->path, "a key ending in '/' is a "
		    "directory here and holds no bytes");
		return -EINVAL;
	}
	while (len > 0) {
		ssize_t n = write(p->fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			file_set_error(p->fs, p->path, "write: %s", strerror(e));
			return map_write_errno(e);
		}
		buf = (const char *)buf + n;
		len -= (size_t)n;
		p->written += n;
	}
	return 0;
}

/* The version of path that stat sees: 1 (a file, in *sb), 0 none (a
 * symlink out of the root is none: it is replaced), -errno. */
static int
current_version(struct file_state *fs, const char *path, struct stat *sb)
{
	int fd = open_beneath(fs, path, O_PATH);
	if (fd == -ENOENT || fd == -EACCES)
		return 0;
	if (fd < 0)
		return fd;
	int r = fstat(fd, sb) < 0 ? map_errno(errno) : S_ISREG(sb->st_mode);
	close(fd);
	return r;
}

/* Renames from to to in dfd unless to exists: -EEXIST then. */
static int
rename_noreplace(int dfd, const char *from, const char *to)
{
	if (renameat2(dfd, from, dfd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
		return -errno;
	/* No RENAME_NOREPLACE on this filesystem (NFS): a hard link fails
	 * the same way when the name exists. */
	if (linkat(dfd, from, dfd, to, 0) < 0)
		return -errno;
	unlinkat(dfd, from, 0);
	return 0;
}

static int
marker_commit(struct file_put *p, struct ufs_stat *st)
{
	struct file_state *fs = p->fs;
	struct ufs_stat cur;
	int have = marker_stat(fs, p->path, &cur);
	if (have < 0 && have != -ENOENT)
		return have;
	if (p->if_none_match && have == 0)
		return -EEXIST;
	if (p->if_match[0] && (have < 0 || strcmp(cur.etag, p->if_match))) {
		file_set_error(fs, p->path, "changed (If-Match %s)", p->if_match);
		return -ESTALE;
	}
	struct mkdirs *md = malloc(sizeof(*md));
	if (!md)
		return -ENOMEM;
	md->n = 0;
	size_t n = strlen(p->path) - 1;
	int fd = open_dir_creating(fs, p->path, n, md);
	int r = fd < 0 ? fd : 0;
	/* Durable: the new directories' entries, in their parents. */
	if (!r && fsync(fd) < 0)
		r = map_write_errno(errno);
	if (!r && md->n > 0) {
		char parent[UFS_KEY_MAX + 1];
		const char *s = memrchr(p->path, '/', md->len[0]);
		size_t pl = s ? (size_t)(s - p->path) : 0;
		memcpy(parent, p->path, pl);
		parent[pl] = 0;
		int pfd = open_beneath(fs, parent, O_RDONLY | O_DIRECTORY);
		if (pfd < 0 || fsync(pfd) < 0)
			r = pfd < 0 ? pfd : map_write_errno(errno);
		if (pfd >= 0)
			close(pfd);
	}
	struct stat sb;
	if (!r && fstat(fd, &sb) < 0)
		r = map_errno(errno);
	if (fd >= 0)
		close(fd);
	if (r)
		rmdirs_created(fs, p->path, md);
	free(md);
	if (r)
		return r;
	r = marker_stat(fs, p->path, st);
	if (r == -ENOENT) {
		/* The directory holds keys: it stays a prefix (file:// cannot
		 * have both); the answer is what the marker would be. */
		memset(st, 0, sizeof(*st));
		st->mtime = (int64_t)sb.st_mtim.tv_sec;
		sb.st_size = 0;
		file_etag(&sb, st->etag, sizeof(st->etag));
		r = 0;
	}
	return r;
}

static int
file_put_commit(void *put, struct ufs_stat *st)
{
	struct file_put *p = put;
	struct file_state *fs = p->fs;
	int r;
	memset(st, 0, sizeof(*st));
	if (p->marker) {
		r = marker_commit(p, st);
		file_put_free(p, 0);
		return r;
	}
	if (fsync(p->fd) < 0) {
		int e = errno;
		file_set_error(fs, p->path, "fsync: %s", strerror(e));
		r = map_write_errno(e);
		goto fail;
	}
	struct stat cur, sb;
	int have = current_version(fs, p->path, &cur);
	if (have < 0) {
		r = have;
		goto fail;
	}
	char ver[UFS_ETAG_MAX] = "";
	if (have)
		file_etag(&cur, ver, sizeof(ver));
	if (p->if_match[0] && strcmp(ver, p->if_match) != 0) {
		file_set_error(fs, p->path, "changed: version %s, not %s",
		    have ? ver : "(none)", p->if_match);
		r = -ESTALE;
		goto fail;
	}
	if (p->if_none_match && have) {
		r = -EEXIST;
		goto fail;
	}
	if (fstat(p->fd, &sb) < 0) {
		r = map_errno(errno);
		goto fail;
	}
	/* The ETag is mtime and size: a new version written within the
	 * filesystem's clock tick of the old, with its size, would look the
	 * same to a cache.  It gets the old mtime + 1 ns instead. */
	if (have && cur.st_size == sb.st_size &&
	    (cur.st_mtim.tv_sec > sb.st_mtim.tv_sec ||
	    (cur.st_mtim.tv_sec == sb.st_mtim.tv_sec &&
	    cur.st_mtim.tv_nsec >= sb.st_mtim.tv_nsec))) {
		struct timespec ts[2] = {{0, UTIME_OMIT}, cur.st_mtim};
		if (++ts[1].tv_nsec == 1000000000L) {
			ts[1].tv_sec++;
			ts[1].tv_nsec = 0;
		}
		if (futimens(p->fd, ts) < 0 || fstat(p->fd, &sb) < 0) {
			r = map_errno(errno);
			goto fail;
		}
	}
	int fd = p->fd;
	p->fd = -1;
	/* What the new version keeps (what stat will read), for the caller's
	 * cache: the xattrs the temporary file got. */
	answer_headers(fd);
	if (close(fd) < 0) { /* NFS reports a failed write here */
		int e = errno;
		file_set_error(fs, p->path, "close: %s", strerror(e));
		r = map_write_errno(e);
		goto fail;
	}
	if (p->if_none_match) {
		r = rename_noreplace(p->dirfd, p->tmp, p->name);
	} else {
		r = renameat(p->dirfd, p->tmp, p->dirfd, p->name) < 0 ? -errno
		    : 0;
	}
	if (r == -EEXIST && p->if_none_match)
		goto fail;
	if (r < 0) {
		file_set_error(fs, p->path, "rename into place: %s",
		    strerror(-r));
		r = -r == EISDIR || -r == ENOTEMPTY ? -EIO : map_write_errno(-r);
		goto fail;
	}
	p->tmp[0] = 0;
	if (fsync(p->dirfd) < 0) {
		int e = errno;
		file_set_error(fs, p->path, "written, but its directory could "
		    "not be synced: %s", strerror(e));
		file_put_free(p, 0);
		return -EIO;
	}
	st->size = (int64_t)sb.st_size;
	st->mtime = (int64_t)sb.st_mtim.tv_sec;
	file_etag(&sb, st->etag, sizeof(st->etag));
	file_put_free(p, 0);
	return 0;
fail:
	file_put_free(p, 1);
	return r;
}

static void
file_put_abort(void *put)
{
	if (put)
		file_put_free(put, 1);
}

/*
 * Removes the file (a key ending in '/': the empty directory, its marker),
 * then the parents this left empty, up to the root: S3 has no empty
 * directories, and here an empty one would list as a marker object no one
 * made.  No object at the key (nothing there, a directory with keys in it,
 * a file where a marker was named) is 0.
 */
static int
file_remove(void *state, const char *path)
{
	struct file_state *fs = state;
	size_t pl = strlen(path);
	if (pl == 0 || pl > UFS_KEY_MAX)
		return -EINVAL;
	if (reserved_path(path)) {
		file_set_error(fs, path, "names starting with " TMP_PREFIX
		    " are ferry's temporary files");
		return -EINVAL;
	}
	char key[UFS_KEY_MAX + 1];
	memcpy(key, path, pl + 1);
	int marker = key[pl - 1] == '/';
	if (marker)
		key[--pl] = 0;
	char *slash = strrchr(key, '/');
	size_t dlen = slash ? (size_t)(slash - key) : 0;
	if (slash)
		*slash = 0;
	int dfd = open_beneath(fs, slash ? key : "", O_RDONLY | O_DIRECTORY);
	if (slash)
		*slash = '/';
	if (dfd == -ENOENT)
		return 0;
	if (dfd < 0)
		return dfd;
	const char *name = slash ? slash + 1 : key;
	int r = 0;
	if (unlinkat(dfd, name, marker ? AT_REMOVEDIR : 0) < 0) {
		int e = errno;
		if (e == ENOENT || e == ENOTDIR || e == EISDIR ||
		    e == ENOTEMPTY || e == EEXIST) {
			close(dfd);
			return 0;
		}
		file_set_error(fs, path, "remove: %s", strerror(e));
		r = map_write_errno(e);
	} else if (fsync(dfd) < 0) {
		int e = errno;
		file_set_error(fs, path, "removed, but its directory could not "
		    "be synced: %s", strerror(e));
		r = -EIO;
	}
	close(dfd);
	if (r == 0)
		prune_empty(fs, key, dlen);
	return r;
}

/* Copies size bytes of in to out (at its offset): copy_file_range where the
 * filesystems can, else read and write.  0 or -errno. */
static int
copy_bytes(int in, int out, int64_t size)
{
	enum { BUF = 1 << 20 };
	char *buf = NULL;
	int64_t done = 0;
	int cfr = 1, r = 0;
	while (done < size && !r) {
		size_t want = size - done > (1 << 30) ? (1u << 30)
		                                       : (size_t)(size - done);
		ssize_t n;
		if (cfr) {
			loff_t off = (loff_t)done;
			n = copy_file_range(in, &off, out, NULL, want, 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL ||
			    errno == ENOSYS || errno == EOPNOTSUPP)) {
				cfr = 0;
				continue;
			}
		} else {
			if (!buf && !(buf = malloc(BUF)))
				return -ENOMEM;
			n = pread(in, buf, want < BUF ? want : BUF, (off_t)done);
			for (ssize_t w = 0, k; n > 0 && w < n; w += k) {
				k = write(out, buf + w, (size_t)(n - w));
				if (k < 0 && errno == EINTR)
					k = 0;
				else if (k < 0) {
					n = -1;
					break;
				}
			}
		}
		if (n < 0 && errno != EINTR)
			r = map_write_errno(errno);
		else if (n == 0)
			break; /* the source shrank: the caller sees it changed */
		else if (n > 0)
			done += n;
	}
	free(buf);
	return r;
}

/*
 * A copy is a write whose body comes from the source file: the same
 * temporary file, conditions and rename.  The source's version is checked
 * before and after; one that changed meanwhile is copied again (3 tries).
 * Without headers the source's are copied (S3's COPY directive); with
 * headers, they replace them.
 */
static int
file_copy(void *state, const char *src, const char *dst,
    const struct ufs_put_opts *o, struct ufs_stat *st)
{
	struct file_state *fs = state;
	memset(st, 0, sizeof(*st));
	if (reserved_path(src))
		return -ENOENT;
	size_t sl = strlen(src);
	if (sl > 0 && src[sl - 1] == '/') {
		/* A marker: an empty object. */
		struct ufs_stat ms;
		int r = marker_stat(fs, src, &ms);
		if (r < 0)
			return r;
		struct ufs_put_opts po = *o;
		po.size = 0;
		void *p;
		if ((r = file_put_begin(fs, dst, &po, &p)) < 0)
			return r;
		return file_put_commit(p, st);
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		int sfd = open_beneath(fs, src, O_RDONLY | O_NONBLOCK);
		if (sfd < 0)
			return sfd;
		struct stat sb;
		int fr = fstat(sfd, &sb);
		if (fr < 0 || !S_ISREG(sb.st_mode)) {
			/* a directory is a prefix, not an object */
			int r = fr < 0 ? map_errno(errno) : -ENOENT;
			close(sfd);
			return r;
		}
		char v1[UFS_ETAG_MAX], v2[UFS_ETAG_MAX];
		file_etag(&sb, v1, sizeof(v1));
		struct ufs_put_opts po = *o;
		po.size = (int64_t)sb.st_size;
		void *pv;
		int r = file_put_begin(fs, dst, &po, &pv);
		if (r < 0) {
			close(sfd);
			return r;
		}
		struct file_put *p = pv;
		if (p->marker) {
			close(sfd);
			if (sb.st_size > 0) {
				file_set_error(fs, dst, "a key ending in '/' is "
				    "a directory here and holds no bytes");
				file_put_abort(p);
				return -EINVAL;
			}
			return file_put_commit(p, st);
		}
		if (o->nheaders == 0)
			r = copy_headers(sfd, p->fd);
		if (!r)
			r = copy_bytes(sfd, p->fd, (int64_t)sb.st_size);
		if (r == -ENOSPC)
			file_set_error(fs, dst, "no space left");
		int same = !r && fstat(sfd, &sb) == 0 &&
		    (file_etag(&sb, v2, sizeof(v2)), strcmp(v1, v2) == 0);
		close(sfd);
		if (r || !same) {
			file_put_abort(p);
			if (r)
				return r;
			continue;
		}
		return file_put_commit(p, st);
	}
	file_set_error(fs, src, "changed during each of 3 attempts to copy it");
	return -EIO;
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
    .put_begin = file_put_begin,
    .put_write = file_put_write,
    .put_commit = file_put_commit,
    .put_abort = file_put_abort,
    .remove = file_remove,
    .copy = file_copy,
};
