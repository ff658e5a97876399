/*
 * meta.h: the metadata cache.  Stat and list answers from under-stores are
 * kept for the sync interval, then asked again.  When an object's version
 * (ETag, or mtime+size for files) changes, the pages of the old version are
 * dropped from the page store.  Concurrent misses on the same stat make
 * one UFS request.  Memory is bounded: at most max_entries stat entries and
 * max_list_bytes of cached listing pages, each LRU.
 *
 * Thread-safety: one mutex guards both caches; it is never held across a
 * UFS call.
 */
#ifndef FERRY_META_H
#define FERRY_META_H

#include <stdint.h>

#include "../store/pagestore.h"
#include "../ufs/ufs.h"
#include "mounts.h"

struct meta_cache;

struct meta_cache *meta_open(int64_t sync_interval_ms, int64_t max_entries,
    int64_t max_list_bytes, struct pagestore *ps);
void meta_close(struct meta_cache **mc);

/* Stat through the cache.  0 or -errno (from the UFS, or -EIO if the mount's
 * backend is unavailable). */
int meta_stat(struct meta_cache *mc, struct mount *m, const char *path,
    struct ufs_stat *st);
struct reader;
/*
 * meta_stat for a read that will start at byte off.  On a miss, where the
 * backend has read_stat (s3://), one UFS request answers the stat and reads
 * the page holding off, which goes to the page store (through rd) before
 * the entry is published; else as meta_stat.  dirs 0: the caller treats a
 * directory as a missing object, so a 404 is answered -ENOENT without
 * asking whether the key is a prefix (cached as such for these callers
 * only; meta_stat asks again).
 */
int meta_stat_read(struct meta_cache *mc, struct mount *m, const char *path,
    int64_t off, int dirs, struct reader *rd, struct ufs_stat *st);
/* Forgets a path (e.g. after the UFS said the object changed). */
void meta_invalidate(struct meta_cache *mc, struct mount *m, const char *path);

/* One page of a listing, through the cache; arguments as ufs_ops.list. */
int meta_list(struct meta_cache *mc, struct mount *m, const char *prefix,
    const char *delimiter, const char *start_after, int max_keys, ufs_list_fn fn,
    void *arg, int *truncated);

/* Page-key parts for an object: its identity and its version. */
uint64_t meta_obj_id(const struct mount *m, const char *path);
uint64_t meta_version(const struct ufs_stat *st);
/* The version as a string, for ETag headers: the UFS ETag, or for files a
 * value derived from mtime and size.  out: UFS_ETAG_MAX bytes. */
void meta_etag(const struct ufs_stat *st, char *out, size_t n);

#endif
