/*
 * control_impl.h: what the control API's files share (control.c answers
 * the object and mount calls, control_cache.c the dataset calls).  Called
 * on the HTTP server's connection threads.
 */
#ifndef FERRY_CONTROL_IMPL_H
#define FERRY_CONTROL_IMPL_H

#include <stddef.h>

#include "../common/dbuf.h"
#include "../http/http_server.h"
#include "worker.h"

/* Sends b, or 500 if building it failed anywhere (dbuf's sticky error). */
void ctl_reply_json(struct http_conn *c, int status, struct dbuf *b);
void ctl_reply_error(struct http_conn *c, int status, const char *code,
    const char *msg);
/* An error for what (a path), with the under-store's words if it failed. */
void ctl_reply_errno(struct http_conn *c, int err, const char *what);
/* Decoded query parameter name into out (cap bytes): 1 present, 0 absent,
 * -1 malformed or too long. */
int ctl_qget(const struct http_request *req, const char *name, char *out,
    size_t cap);
/* Resolves ?path= into a referenced mount (NULL: the root) and a
 * validated key; -1 when it answered the request with an error. */
int ctl_resolve(struct worker *w, struct http_conn *c,
    const struct http_request *req, char *pathbuf, size_t cap,
    struct mount **m, const char **key, int want_dir_ok);

/* The dataset calls (control_cache.c; docs/control-api.md). */
void ctl_op_policy(struct worker *w, struct http_conn *c);
void ctl_op_pin(struct worker *w, struct http_conn *c,
    const struct http_request *req, int on);
void ctl_op_ttl(struct worker *w, struct http_conn *c,
    const struct http_request *req, int set);
void ctl_op_free(struct worker *w, struct http_conn *c,
    const struct http_request *req);
void ctl_op_du(struct worker *w, struct http_conn *c,
    const struct http_request *req);
/* Per mount: cached, quota and pinned bytes, as a JSON array
 * [{"mount","cached_bytes","quota_bytes","pinned_bytes","objects"}] and as
 * metrics (ferry_mount_cached_bytes{mount} and friends). */
void ctl_mount_usage_json(struct worker *w, struct dbuf *b);
void ctl_mount_usage_metrics(struct worker *w, struct dbuf *b);
void ctl_op_load_start(struct worker *w, struct http_conn *c,
    const struct http_request *req);
void ctl_op_load_get(struct worker *w, struct http_conn *c,
    const struct http_request *req);
void ctl_op_load_stop(struct worker *w, struct http_conn *c,
    const struct http_request *req);
void ctl_op_refresh_log(struct worker *w, struct http_conn *c,
    const struct http_request *req);
void ctl_op_refresh(struct worker *w, struct http_conn *c,
    const struct http_request *req);

#endif
