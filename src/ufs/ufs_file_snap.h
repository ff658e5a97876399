/*
 * ufs_file_snap.h: sorted snapshots of directories for the file://
 * under-store's listing (ufs_file.c), kept across pages so that listing a
 * directory of n names page by page reads it once, not once a page.
 * Only ufs_file.c and ufs_file_snap.c include this.
 *
 * A snapshot ("window") is the names of one directory, each with a flag
 * saying whether it is a directory, in S3 order of their sort keys (the
 * name, "name/" for a directory), those starting with one name prefix
 * (np) and sorting at or after (lo_incl) or strictly after a low key lo:
 * all of them up to its last entry, and, where it is complete, all there
 * are.  A window is incomplete only when memory ran short: the rest of the
 * directory is read by a further scan, after its last entry.
 *
 * Every window, cached or in use, is counted in one process-wide budget
 * (ufs_file_list_budget, 64 MiB by default), scans in progress included;
 * when it is full, scans make do with smaller windows.  A scan always
 * gets FSNAP_MIN bytes, beyond the budget if need be.
 */
#ifndef FERRY_UFS_FILE_SNAP_H
#define FERRY_UFS_FILE_SNAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define FSNAP_MIN (64u << 10)

struct fsnap_ent {
	uint32_t off;   /* name at names + off, NUL-terminated */
	uint8_t nlen;   /* 1..255 */
	uint8_t is_dir; /* sort key is name + "/" */
};

/* What a window is of: the same owner (a file:// instance), directory
 * key ("" or "a/b/"), name prefix and the same directory (identity and
 * times: any change of its entries moves its mtime). */
struct fsnap_id {
	const void *owner;
	const char *path;
	size_t plen;
	const char *np;
	size_t nplen;
	dev_t dev;
	ino_t ino;
	struct timespec mtime, ctime;
};

struct fsnap {
	const struct fsnap_ent *ents; /* sorted */
	size_t n;
	const char *names;
	int complete; /* nothing after ents[n-1] */
	int any;      /* the directory had a listable name starting with np
	               * (whatever lo) */
	/* private to ufs_file_snap.c */
	struct fsnap_priv *p;
};

/* A cached window of id that holds every entry at or after (incl) or
 * strictly after key p[0..pl), with one such entry at least unless it is
 * complete; NULL if none.  Release it with fsnap_put. */
struct fsnap *fsnap_get(const struct fsnap_id *id, const char *p, size_t pl,
    int incl);
void fsnap_put(struct fsnap *s);

/* A scan in progress: names offered in any order; it keeps the smallest
 * that fit in memory. */
struct fsnap_build;
/* Starts a window from lo[0..ll) (incl: lo itself included); NULL when
 * out of memory. */
struct fsnap_build *fsnap_build_new(const char *lo, size_t ll, int incl);
/* Offers one name (1..255 bytes, no '/'); one starting with np was seen
 * even if it sorts before lo (for fsnap.any).  0 or -ENOMEM. */
int fsnap_build_add(struct fsnap_build *b, const char *name, size_t nlen,
    int is_dir);
/* Ends the scan: sorts the window and, when cache is set (the directory
 * did not change while it was read and cannot change unseen), keeps a
 * copy for later pages.  Frees b.  NULL when out of memory. */
struct fsnap *fsnap_build_done(struct fsnap_build *b, const struct fsnap_id *id,
    int cache);

/* Drops the cached windows of owner (an instance closing). */
void fsnap_forget(const void *owner);

/* Compares the sort key of e with s[0..sl) in byte order: <0, 0, >0. */
int fsnap_ent_cmp(const char *names, const struct fsnap_ent *e, const char *s,
    size_t sl);
/* Index of the first entry at or after (incl) or strictly after s. */
size_t fsnap_seek(const struct fsnap *s, const char *k, size_t kl, int incl);

#endif
