/*
 * fnode.h: the inode table of `ferry fuse`: ferry paths <-> FUSE inode
 * numbers, with the kernel's lookup counts and what is remembered per file
 * between opens (which version the kernel was last told about, which
 * version the page cache holds; for a directory, when the listing the
 * kernel keeps began).
 *
 * Inode numbers are derived from a hash of the path (probing past the rare
 * collision), so a path keeps its number within the process even after the
 * kernel forgot it.  Inode 1 (FNODE_ROOT) is "/" and is never forgotten.
 *
 * Thread-safety: every function takes the table's mutex itself.
 */
#ifndef FERRY_FUSE_FNODE_H
#define FERRY_FUSE_FNODE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/htab.h"

#define FNODE_ROOT 1u

struct fnode;

struct fnode_table {
	pthread_mutex_t mu;    /* guards everything below */
	struct htab by_path;   /* fnode.path_hn, by the path's hash */
	struct htab by_ino;    /* fnode.ino_hn, by inode number */
};

/* 0 or -ENOMEM.  The table starts with "/" as FNODE_ROOT. */
int fnode_table_init(struct fnode_table *t);
void fnode_table_free(struct fnode_table *t);
size_t fnode_count(struct fnode_table *t);

/* Copies ino's path into buf (n bytes).  -ENOENT for an unknown inode,
 * -ENAMETOOLONG if it does not fit.  *is_dir (may be NULL) gets its type. */
int fnode_path(struct fnode_table *t, uint64_t ino, char *buf, size_t n,
    int *is_dir);

/*
 * The kernel learns of path (a lookup or readdirplus reply): finds or adds
 * its node, adds nlookup to its count, records its type and kver (the
 * version in the attributes sent; 0 for none).  *ino gets its number.
 * 0 or -ENOMEM.
 */
int fnode_ref(struct fnode_table *t, const char *path, int is_dir,
    uint64_t kver, uint64_t nlookup, uint64_t *ino);
/* Undoes part of fnode_ref (a reply the kernel did not get), as forget. */
void fnode_forget(struct fnode_table *t, uint64_t ino, uint64_t nlookup);

/* The number path has, or would get if looked up now (for readdir's
 * d_ino); takes no reference. */
uint64_t fnode_peek_ino(struct fnode_table *t, const char *path);

/* Attributes with version kver were sent for ino (getattr). */
void fnode_note_kver(struct fnode_table *t, uint64_t ino, uint64_t kver);

/*
 * An open of ino finds version ver.  *keep_cache: the page cache holds
 * this version (the last open found the same one), so the kernel may keep
 * it.  *direct: the attributes the kernel holds are of another version
 * (their size may be wrong), so this open should bypass the page cache.
 * Records ver as the version of the last open (none after a direct one).
 */
void fnode_open(struct fnode_table *t, uint64_t ino, uint64_t ver,
    int *keep_cache, int *direct);

/* Whether an open of ino finding version ver would keep the page cache
 * (fnode_open's keep_cache), without recording anything. */
int fnode_would_keep(struct fnode_table *t, uint64_t ino, uint64_t ver);

/*
 * An open of directory ino at now_ms: 1 when the kernel may keep the
 * listing it cached (an open that did not keep one began less than keep_ms
 * ago and nothing marked the directory changed since), else 0, and this
 * open starts the listing the kernel caches next (its time is recorded).
 */
int fnode_opendir(struct fnode_table *t, uint64_t ino, int64_t now_ms,
    int64_t keep_ms);

/* Directory ino changed (a write through this mount, or a refresh): the
 * next open lists it again. */
void fnode_dir_changed(struct fnode_table *t, uint64_t ino);

/*
 * The nodes the kernel holds at path or under it (path "/" is all): up to
 * max of them into ino[] and their paths (malloc'd, the caller frees)
 * into paths[].  Returns how many.
 */
int fnode_under(struct fnode_table *t, const char *path, uint64_t *ino,
    char **paths, int max);

/* A rename from -> to: the node of from (if the kernel holds it) keeps
 * its number under to; one that was at to goes under a dead name.  0 or
 * -ENOMEM. */
int fnode_rename(struct fnode_table *t, const char *from, const char *to);

#endif
