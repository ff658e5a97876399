/*
 * mpu.h: S3 multipart uploads, staged on this worker's disk until the
 * client completes them; then their parts stream, in order, through one
 * objput push session into the mount's under-store (and, in write-through,
 * the cache), so a multipart object is written exactly as a PutObject is:
 * the client's OK after the under-store committed, nothing visible before.
 *
 * Layout (all 0700/0600, under <state_dir>/uploads):
 *   <id>/info      "ferry-mpu 1", mount, key, initiated (unix s), then
 *                  the headers to keep, one "name: value" per line
 *   <id>/NNNNN     part NNNNN: a 32-byte head (magic, MD5, size) and the
 *                  bytes; written as tmp.* , fdatasync'd, renamed in place
 *   <id>.busy      an upload being completed or aborted (claimed by rename)
 * The directory is the state: uploads survive a restart; temporary files
 * and half-made uploads are swept at open.
 *
 * Calls go down only: gateway -> mpu -> objput.  Threads: any request
 * thread; a part is written by one thread; two uploads of one part number
 * race as on S3 (the last rename wins); a complete or abort claims the
 * upload by renaming it, so at most one of them runs and parts arriving
 * meanwhile fail with -ENOENT (NoSuchUpload).
 */
#ifndef FERRY_MPU_H
#define FERRY_MPU_H

#include <stddef.h>
#include <stdint.h>

#include "../ufs/ufs.h"
#include "mounts.h"
#include "objput.h"

#define MPU_ID_LEN 32          /* hex */
#define MPU_PART_MAX 10000     /* S3's part numbers: 1..10000 */
#define MPU_PART_MIN (5 << 20) /* every part but the last, at complete */
#define MPU_PART_SIZE_MAX (5LL << 30)
#define MPU_UPLOADS_MAX 10000  /* in progress on one worker */
#define MPU_TAG_LEN 8          /* an id's digits that name its worker */

struct mpu;

/* Opens (creates) dir and sweeps what a crash left.  NULL and *err (a
 * malloc'd message) on failure. */
struct mpu *mpu_open(const char *dir, struct objput *op, char **err);
void mpu_close(struct mpu **u);

/* The ids this worker makes start with the first MPU_TAG_LEN digits of
 * its cluster id (a hex string), so that any worker can tell which one
 * holds an upload (the gateway relays requests for it there). */
void mpu_set_tag(struct mpu *u, const char *worker_id);
/* 1 if the upload id is staged here (in progress, or being completed). */
int mpu_holds(struct mpu *u, const char *id);

/* A new upload of key in m with the headers to keep: its id into id.
 * -EAGAIN past MPU_UPLOADS_MAX, -errno of the disk. */
int mpu_create(struct mpu *u, const struct mount *m, const char *key,
    const struct ufs_opt *headers, int nheaders, char id[MPU_ID_LEN + 1]);

/* One part's upload: begin (-ENOENT: no such upload for m/key; -EINVAL:
 * a part number outside 1..MPU_PART_MAX), write its bytes in order, then
 * commit (its MD5 in hex: the part's ETag) or abort.  Either frees *p. */
struct mpu_part;
int mpu_part_begin(struct mpu *u, const struct mount *m, const char *key,
    const char *id, int number, struct mpu_part **p);
int mpu_part_write(struct mpu_part *p, const void *buf, size_t n);
int mpu_part_commit(struct mpu_part **p, char md5hex[33]);
void mpu_part_abort(struct mpu_part **p);

/* Removes the upload and its parts.  -ENOENT: none. */
int mpu_abort(struct mpu *u, const struct mount *m, const char *key,
    const char *id);

/* A part the complete request names: number and ETag (hex, no quotes). */
struct mpu_want {
	int number;
	char etag[33];
};

/* What mpu_complete tells the front end while it works. */
struct mpu_progress {
	/* The parts checked out; the write begins (may take long): the front
	 * end commits to an answer here (S3: 200, then whitespace). */
	void (*started)(void *arg);
	/* Every few seconds while the write goes on. */
	void (*tick)(void *arg);
	void *arg;
};

/*
 * Completes the upload: checks the wanted parts (ascending: else -EDOM;
 * each staged with its ETag: else -EINVAL and *bad the number; each but
 * the last at least MPU_PART_MIN: else -EMSGSIZE and *bad), then writes
 * them as one object through objput with the upload's headers and cond's
 * conditions.  0 with *st the new object's stat and mpu_etag S3's
 * "md5-of-md5s-N" of the parts; the upload is gone.  -ENOENT: no such
 * upload; objput's errors after `started`: the upload stays, to complete
 * again or abort.
 */
int mpu_complete(struct mpu *u, struct mount *m, const char *key,
    const char *id, const struct mpu_want *want, int nwant,
    const struct ufs_put_opts *cond, const struct mpu_progress *pr,
    struct ufs_stat *st, char mpu_etag[48], int *bad);

/* ListParts: parts after `marker`, ascending, at most max; *truncated. */
struct mpu_part_info {
	int number;
	int64_t size;
	int64_t mtime; /* unix s */
	char etag[33];
};
typedef int (*mpu_part_fn)(void *arg, const struct mpu_part_info *pi);
int mpu_list_parts(struct mpu *u, const struct mount *m, const char *key,
    const char *id, int marker, int max, mpu_part_fn fn, void *arg,
    int *truncated);

/* ListMultipartUploads: m's uploads whose key starts with prefix, in
 * (key, initiated, id) order after (key_marker, id_marker), at most max. */
struct mpu_upload_info {
	const char *key;
	char id[MPU_ID_LEN + 1];
	int64_t initiated; /* unix s */
};
typedef int (*mpu_upload_fn)(void *arg, const struct mpu_upload_info *ui);
int mpu_list_uploads(struct mpu *u, const struct mount *m, const char *prefix,
    const char *key_marker, const char *id_marker, int max, mpu_upload_fn fn,
    void *arg, int *truncated);

/* 1 if s is a well-formed upload id (what a client may send). */
int mpu_id_valid(const char *s);

#endif
