/*
 * ferry.h: the public C API of libferry, a client of ferry workers.
 *
 * Paths are in ferry's namespace: "/" holds one directory per mount;
 * "/train/images/0001.jpg" is key "images/0001.jpg" of mount "train".
 *
 * Error convention (as libuv): functions return 0 or a non-negative count
 * on success and a negative errno on failure: -ENOENT no such file or
 * mount, -EPERM the control token is missing or wrong (mount, unmount),
 * -EACCES the under-store denied access, -EIO the under-store failed,
 * -EHOSTUNREACH / -ECONNREFUSED the worker cannot be reached, -EINVAL bad
 * arguments (or a mount the worker refused), -EPROTO the worker answered
 * something unexpected, -EPROTONOSUPPORT the address is not a ferry
 * control API (the S3 port, a web server).  ferry_strerror() turns a code
 * into a message; ferry_last_error() says why, in the worker's words.
 *
 * Thread-safety: a ferry_t may be shared by threads; each call is
 * independent (connections are pooled inside), and so is each thread's
 * ferry_last_error().
 *
 * Clusters: the worker given to ferry_connect is asked who the cluster's
 * workers are (every 2 s at most, while calls are made).  Reads go straight
 * to the worker that holds each block (placement as the workers compute
 * it); when a worker does not answer, the call moves on to the next one,
 * so a read fails only when no worker can serve it.
 */
#ifndef FERRY_H
#define FERRY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_ETAG_MAX 128

typedef struct ferry ferry_t;

struct ferry_stat {
	int64_t size;
	int64_t mtime; /* unix seconds */
	int is_dir;
	char etag[FERRY_ETAG_MAX]; /* version: S3 ETag, or "" for files */
	int64_t cached_bytes;      /* bytes of this version in the cache */
};

/*
 * Connects to a worker's control API ("host:port"; NULL means
 * $FERRY_WORKER, else 127.0.0.1:29999).  token may be NULL ($FERRY_TOKEN
 * is used if set).  No I/O happens until the first call.
 */
int ferry_connect(const char *worker, const char *token, ferry_t **out);
/* Closes and clears *f. */
void ferry_close(ferry_t **f);

int ferry_stat(ferry_t *f, const char *path, struct ferry_stat *st);

/* Called once per entry of a directory, in byte order; non-zero stops. */
typedef int (*ferry_list_fn)(void *arg, const char *name,
    const struct ferry_stat *st);
/* Streams a directory page by page; memory does not grow with its size. */
int ferry_list(ferry_t *f, const char *path, ferry_list_fn fn, void *arg);

/* Reads up to len bytes at off; returns bytes read (0 at end) or -errno. */
ssize_t ferry_pread(ferry_t *f, const char *path, void *buf, size_t len,
    int64_t off);

/*
 * One page of a directory, for callers that keep their place themselves
 * (a FUSE readdir): at most max entries (1..1000; larger is cut to 1000)
 * after start_after (NULL or "" for the first page), in byte order.  When
 * the directory goes on, *truncated is 1 and next (nextlen bytes, at least
 * FERRY_NEXT_MAX) holds the start_after of the following page (it may end
 * in '/'); otherwise *truncated is 0 and next is "".  A non-zero return of
 * fn stops the page and is returned.
 */
#define FERRY_NEXT_MAX 1104
int ferry_list_page(ferry_t *f, const char *path, const char *start_after,
    int max, ferry_list_fn fn, void *arg, char *next, size_t nextlen,
    int *truncated);

/*
 * ferry_pread of one version: fails with -ESTALE, before any byte lands in
 * buf, when the worker's bytes are of a version other than etag (the
 * etag field of ferry_stat).  etag NULL or "" checks nothing.
 */
ssize_t ferry_pread_etag(ferry_t *f, const char *path, void *buf,
    size_t len, int64_t off, const char *etag);

/*
 * Mount table.  opts are "key=value" strings.  The worker checks a new
 * mount by listing one key at its root through the under-store, so that a
 * bucket that does not exist or a host that does not resolve fails here
 * (-EIO; ferry_last_error() has the under-store's answer), not at the
 * first read; FERRY_MOUNT_NO_CHECK skips that (an under-store not there
 * yet).  ferry_mount(...) is ferry_mount_flags(..., 0).
 */
#define FERRY_MOUNT_NO_CHECK 1u
int ferry_mount(ferry_t *f, const char *name, const char *uri,
    const char *const *opts, int nopts);
int ferry_mount_flags(ferry_t *f, const char *name, const char *uri,
    const char *const *opts, int nopts, unsigned flags);
int ferry_unmount(ferry_t *f, const char *name);
/* JSON documents from the worker; caller frees *json. */
int ferry_mounts_json(ferry_t *f, char **json);
int ferry_stats_json(ferry_t *f, char **json);
/* Writes of write=back mounts not yet in their under-stores (GET
 * /v1/writeback): {"mounts":[{"mount","attached","objects","bytes",
 * "oldest_s","uploading","uploaded","failures","last_error"}]}. */
int ferry_writeback_json(ferry_t *f, char **json);

/*
 * Datasets in the cache (docs/control-api.md, "Datasets"); path is a ferry
 * path inside a mount ("/train/imagenet").  Pin: never evicted, now and
 * for what is cached later (on 0, unpin).  TTL: cached data under path is
 * dropped seconds after it was cached (0 clears it).  Free: drop what is
 * cached under path now (pinned paths need force); *json (if not NULL,
 * caller frees) gets {"freed_bytes","pinned_kept_bytes"}.  Refresh: ask
 * the under-store again about everything under path.  du: {"path",
 * "total_bytes","cached_bytes","pinned_bytes","objects","cached_objects",
 * "entries":[{"name",...same counts}]} (entries empty with summary).
 * Policy: the pin and TTL rules, {"rules":[{"mount","path","pin","ttl"}]}.
 */
int ferry_pin(ferry_t *f, const char *path, int on);
int ferry_ttl(ferry_t *f, const char *path, int64_t seconds);
int ferry_free(ferry_t *f, const char *path, int force, char **json);
int ferry_refresh(ferry_t *f, const char *path);
/* The paths refreshed after the since'th (what a client that caches
 * metadata must drop): {"seq":S,"all":bool,"paths":["/m/dir",...]} (all:
 * more than the worker keeps: drop everything).  since 0 gives the seq. */
int ferry_refresh_log_json(ferry_t *f, uint64_t since, char **json);
int ferry_du_json(ferry_t *f, const char *path, int summary, char **json);
int ferry_policy_json(ferry_t *f, char **json);

/*
 * Load jobs (`ferry load`): bring everything under path into the cache.
 * bandwidth: bytes per second from the under-stores (0: no cap);
 * parallel: objects read at once (0: 8); flags: FERRY_LOAD_VERIFY (read it
 * all again afterwards, checking each page's CRC and plain-MD5 ETags),
 * FERRY_LOAD_LOCAL (only the blocks placement gives this worker, a job of
 * this worker alone; without it, a cluster's worker makes the job the
 * cluster's: every worker loads its blocks), FERRY_LOAD_REPLICAS(n) (in a
 * cluster, cache each block on its first n workers in placement order,
 * 1..16; 0: the mount's replicas).  *id gets the
 * job's id (16 hex digits; a job of that path already running gives its
 * id).  ferry_load_json: {"jobs":[{"id","path","state","files_done",
 * "files_total","bytes_done","bytes_total","bytes_fetched",...}]} (one job
 * with id, all with NULL).  ferry_load_stop stops a job (it stays listed).
 */
#define FERRY_LOAD_VERIFY 1u
#define FERRY_LOAD_LOCAL 2u
#define FERRY_LOAD_REPLICAS(n) ((((unsigned)(n)) & 0xffu) << 8)
int ferry_load_start(ferry_t *f, const char *path, int64_t bandwidth,
    int parallel, unsigned flags, char id[17]);
int ferry_load_json(ferry_t *f, const char *id, char **json);
int ferry_load_stop(ferry_t *f, const char *id);
/* The cluster as the worker sees it (GET /v1/cluster): {"cluster",
 * "self", "block_size", "replicas":{mount:R}, "members":[{"id","ctl",
 * "s3","capacity","started","self"}], "etcd_ok", "view_version"}. */
int ferry_cluster_json(ferry_t *f, char **json);

/*
 * Zero-copy local reads (used by `ferry fuse`): the Unix socket where the
 * worker hands cached page files to clients on its own host, into path
 * (n bytes), and the worker process's id (32 hex digits) into id
 * (FERRY_LOCAL_ID_MAX bytes).  -ENOENT when the worker has them off;
 * -E2BIG when path or id does not fit; -ENOTSUP when the worker speaks
 * another local-read protocol than FERRY_LOCAL_PROTOCOL (2: the worker
 * sends the CRC of every chunk it hands out, and the client checks them).
 */
#define FERRY_LOCAL_ID_MAX 33
#define FERRY_LOCAL_PROTOCOL 2
int ferry_local_socket(ferry_t *f, char *path, size_t n, char *id, size_t idn);

/*
 * Writes (to a mount whose worker takes them; a mount with readonly=true
 * answers -EROFS).  A file being written is staged in an unnamed private
 * file on this host ($TMPDIR, else /tmp), so it may be written in any
 * order, read back and rewritten; nothing is visible to anyone until
 * ferry_commit uploads it whole, and the worker answers once the mount's
 * under-store has committed it.  A failed commit returns the error
 * (ferry_last_error() has the worker's reason, which names the
 * under-store's) and keeps the staged bytes: commit again or close.
 * One thread at a time per ferry_file_t; the ferry_t must outlive it.
 *
 * FERRY_CREATE_EXCL: the first commit fails with -EEXIST if the object
 * exists.  FERRY_CREATE_KEEP: start from the object's current bytes (an
 * edit of an existing file; none if it does not exist).
 * FERRY_CREATE_STREAM: while the file is written strictly in order from
 * an empty start (each write at the current end), the bytes also go to
 * the worker as they are written (one PUT whose chunked body follows the
 * staged file, by a thread of the file's own), so the first commit only
 * ends that body and waits for the answer.  The first write elsewhere, a
 * truncation to another size, or a stream that fails abandons it (the
 * worker commits nothing of it) and the commit uploads the staged file
 * as without the flag.  $FERRY_STREAM=0 turns it off (for comparisons).
 */
typedef struct ferry_file ferry_file_t;
#define FERRY_CREATE_EXCL 1u
#define FERRY_CREATE_KEEP 2u
#define FERRY_CREATE_STREAM 4u
int ferry_create(ferry_t *f, const char *path, unsigned flags,
    ferry_file_t **out);
/* Bytes into the staged file: len, or -errno (its disk full: -ENOSPC). */
ssize_t ferry_pwrite(ferry_file_t *w, const void *buf, size_t len,
    int64_t off);
ssize_t ferry_write(ferry_file_t *w, const void *buf, size_t len); /* at the end */
ssize_t ferry_file_pread(ferry_file_t *w, void *buf, size_t len, int64_t off);
int ferry_file_truncate(ferry_file_t *w, int64_t len);
int64_t ferry_file_size(const ferry_file_t *w);
/* 1 if written since the last successful commit (a new file counts). */
int ferry_file_dirty(const ferry_file_t *w);
/* Uploads the staged bytes; 0 with *st (may be NULL) the new version. */
int ferry_commit(ferry_file_t *w, struct ferry_stat *st);
/* Frees *w and its staged bytes (what was not committed is dropped). */
void ferry_file_close(ferry_file_t **w);
/* One object from memory: create, write, commit, close. */
int ferry_put(ferry_t *f, const char *path, const void *buf, size_t len,
    struct ferry_stat *st);
/* Removes an object (0 also if there was none). */
int ferry_unlink(ferry_t *f, const char *path);
/* Renames an object within a mount (the store copies, then the source
 * goes: for a moment both may be seen, never neither); -EXDEV across
 * mounts or for a directory: copy and unlink instead, as mv(1) does. */
int ferry_rename(ferry_t *f, const char *from, const char *to);

const char *ferry_strerror(int err);

/*
 * Why the last libferry call made by this thread failed, in words: the
 * worker's own message when it sent one, which names the cause ("file:
 * cannot open root directory '/data': No such file or directory",
 * "s3://bkt: NoSuchBucket: The specified bucket does not exist (HTTP 404)",
 * "s3: unknown option 's3.regoin' (did you mean 's3.region'?)"), or what
 * libferry found itself ("127.0.0.1:29998 is not a ferry control API (is
 * it the S3 port?)", "bad worker address ...").  "" when that call
 * succeeded or its error code says all there is (ferry_strerror).
 *
 * Each call (except ferry_close, ferry_strerror and this one) replaces it.
 * Thread-local: threads sharing a ferry_t each see their own calls'
 * message.  The text (at most 1023 bytes, no control characters) stays
 * valid until this thread's next libferry call.
 */
const char *ferry_last_error(void);

#ifdef __cplusplus
}
#endif

#endif
