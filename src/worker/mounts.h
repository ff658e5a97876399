/*
 * mounts.h: the mount table.  A mount binds a name (the S3 bucket name and
 * the top-level directory of ferry's namespace) to an under-store URI and
 * its options.  The table is persisted as JSON (mode 0600) and reloaded at
 * start.  Secrets in options are never logged or returned: mounts_json()
 * redacts them.
 *
 * Thread-safety: the table has one rwlock; lookups take it shared and
 * return a referenced mount, so an unmount while requests are in flight
 * frees the mount only when the last request lets go (mount_release).
 */
#ifndef FERRY_MOUNTS_H
#define FERRY_MOUNTS_H

#include <errno.h>
#include <stdint.h>

#include "../common/dbuf.h"
#include "../ufs/ufs.h"

#define MOUNT_NAME_MAX 63

/* How a mount's writes use the cache (option "write"). */
enum mount_write { MOUNT_WRITE_THROUGH, MOUNT_WRITE_AROUND, MOUNT_WRITE_BACK };

struct mount {
	char name[MOUNT_NAME_MAX + 1];
	char *uri;
	struct ufs_opt *opts; /* owned key/value strings */
	int nopts;
	struct ufs *ufs; /* the under-store (ufs.h); broken if it failed to
	                  * open (ufs_open_error says why) */
	uint64_t ident; /* hash of uri: objects' identity is (ident, path) */
	int replicas;   /* option "replicas": workers caching each block (1) */
	enum mount_write write_mode; /* option "write": how writes use the cache */
	int readonly;   /* option "readonly": writes refused */
	int64_t quota;  /* option "quota": bytes it may cache per worker (0: no cap) */
	int refs;       /* atomic */
	int ufs_down;   /* atomic: the under-store failed and cached answers
	                 * are served (stale-if-error); logged once */
};

struct mount_table;

/* Loads state_path if it exists.  NULL + *err on an unreadable file. */
struct mount_table *mounts_open(const char *state_path, char **err);
void mounts_close(struct mount_table **mt);

/* mounts_add flags. */
#define MOUNTS_SAVE 1        /* write the table to its file */
#define MOUNTS_KEEP_BROKEN 2 /* keep the mount if its backend fails to open
                              * (restoring a table: a NAS not there yet) */
#define MOUNTS_REPLACE 4     /* replace a mount of that name if it differs */
#define MOUNTS_CHECK 8       /* list one key at the root through the backend
                              * before adding: a bucket that does not exist,
                              * a host that does not resolve, keys the store
                              * refuses fail now, not at the first read (a
                              * new mount from a client; not one restored or
                              * replayed from the cluster: a NAS may not be
                              * there yet) */
/* mounts_add's answer when the MOUNTS_CHECK listing failed (*err: the
 * under-store's reason). */
#define MOUNTS_ECHECK (-EREMOTEIO)
/* Options ferry itself takes (not passed to the under-store). */
#define MOUNT_OPT_REPLICAS "replicas"
#define MOUNT_OPT_WRITE "write"       /* through (default) | around | back */
#define MOUNT_OPT_READONLY "readonly" /* true | false (default) */
#define MOUNT_OPT_QUOTA "quota"       /* a size: cached bytes per worker */
#define MOUNT_REPLICAS_MAX 16

/* 0, -EEXIST (name taken), -EINVAL (bad name, URI or options: *err says),
 * MOUNTS_ECHECK (the check failed: *err says why).  With MOUNTS_REPLACE an
 * identical mount of that name is left alone (0, unchecked), unless its
 * backend failed to open: then it is opened again. */
int mounts_add(struct mount_table *mt, const char *name, const char *uri,
    const struct ufs_opt *opts, int nopts, int flags, char **err);
#define MOUNT_OPTS_MAX 64
/*
 * mounts_add from a JSON definition {"name","uri","options":{k:v}} (the
 * control API's POST /v1/mounts body, and the cluster's mount records).
 * An optional "check": false turns MOUNTS_CHECK off.  *name_out (if not
 * NULL) gets the mount's name, malloc'd, on success.
 */
int mounts_apply_json(struct mount_table *mt, const char *json, size_t n,
    int flags, char **name_out, char **err);

/* 0 or -ENOENT. */
int mounts_remove(struct mount_table *mt, const char *name);

/* Referenced mount or NULL. */
struct mount *mounts_get(struct mount_table *mt, const char *name, size_t len);
/* Another reference to a mount already held: m. */
struct mount *mount_ref(struct mount *m);
void mount_release(struct mount **m);

/* Calls fn for each mount in name order, under the shared lock. */
int mounts_foreach(struct mount_table *mt,
    int (*fn)(void *arg, const struct mount *m), void *arg);
int mounts_count(struct mount_table *mt);

/* {"mounts":[...]} with secrets redacted. */
int mounts_json(struct mount_table *mt, struct dbuf *out);

/* 1 if name is a valid mount (bucket) name: [a-z0-9][a-z0-9._-]{0,62}. */
int mount_name_valid(const char *name, size_t len);
/* 1 if an option key names a secret (its value is never shown). */
int mount_opt_is_secret(const char *key);

#endif
