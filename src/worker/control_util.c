/*
 * control_util.c: what the control API's handlers share: JSON replies and
 * errors (an errno and the under-store's words into an HTTP status and a
 * code) and the ?path= parameter resolved into a mount and a key.  Runs on
 * the HTTP server's connection threads; no state of its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json.h"
#include "../common/util.h"
#include "control_impl.h"
#include "namespace.h"

/* Sends b, or 500 if building it failed anywhere (dbuf's sticky error). */
void
ctl_reply_json(struct http_conn *c, int status, struct dbuf *b)
{
	if (dbuf_error(b)) {
		static const char msg[] = "{\"error\":\"the answer is too large to build\",\"code\":\"Internal\"}\n";
		http_resp_simple(c, 500, NULL, "application/json", msg, sizeof(msg) - 1);
		return;
	}
	http_resp_simple(c, status, NULL, "application/json", b->p, b->len);
}

void
ctl_reply_error(struct http_conn *c, int status, const char *code, const char *msg)
{
	struct dbuf b;
	dbuf_init(&b, 8192);
	dbuf_adds(&b, "{\"error\":");
	json_put_str(&b, msg);
	dbuf_adds(&b, ",\"code\":");
	json_put_str(&b, code);
	dbuf_adds(&b, "}\n");
	ctl_reply_json(c, status, &b);
	dbuf_free(&b);
}

/* An error for what (a path): the under-store's own words when its answer
 * was the failure (set on this thread by the call that failed, see
 * ufs_last_error), else the errno's. */
void
ctl_reply_errno(struct http_conn *c, int err, const char *what)
{
	char msg[1024];
	const char *why = ufs_last_error();
	if (why[0] && err != -EINVAL && err != -ENAMETOOLONG)
		snprintf(msg, sizeof(msg), "%s: %s", what, why);
	else
		snprintf(msg, sizeof(msg), "%s: %s", what, strerror(-err));
	switch (err) {
	case -ENOENT: ctl_reply_error(c, 404, "NoSuchFile", msg); break;
	case -EACCES:
	case -EPERM: ctl_reply_error(c, 403, "AccessDenied", msg); break;
	case -EINVAL:
	case -ENAMETOOLONG: ctl_reply_error(c, 400, "BadRequest", msg); break;
	case -EEXIST: ctl_reply_error(c, 409, "Exists", msg); break;
	case -EISDIR: ctl_reply_error(c, 400, "IsADirectory", msg); break;
	case -ENOTDIR: ctl_reply_error(c, 400, "NotADirectory", msg); break;
	case -ETIMEDOUT: ctl_reply_error(c, 504, "UfsTimeout", msg); break;
	case -EROFS: ctl_reply_error(c, 403, "ReadOnly", msg); break;
	case -ESTALE: ctl_reply_error(c, 412, "PreconditionFailed", msg); break;
	case -EPROTO: ctl_reply_error(c, 400, "IncompleteBody", msg); break;
	case -EFBIG: ctl_reply_error(c, 413, "TooLarge", msg); break;
	case -EXDEV: ctl_reply_error(c, 400, "CrossMount", msg); break;
	case -ENOBUFS: ctl_reply_error(c, 503, "SlowDown", msg); break;
	case -ENOSPC:
	case -EDQUOT: ctl_reply_error(c, 507, "InsufficientStorage", msg); break;
	default: ctl_reply_error(c, 502, "UfsError", msg); break;
	}
}

/* Decoded query parameter "name" into out (cap bytes); 1 present, 0 absent,
 * -1 malformed or too long. */
int
ctl_qget(const struct http_request *req, const char *name, char *out, size_t cap)
{
	const char *v;
	size_t vl;
	if (!http_query_get(req->query, req->query_len, name, &v, &vl))
		return 0;
	if (vl >= cap)
		return -1;
	long n = url_decode(v, vl, out, 1);
	/* A decoded NUL would silently cut the string short: refuse it. */
	return n < 0 || (size_t)n != strlen(out) ? -1 : 1;
}

/* Resolves ?path= into a referenced mount and a validated key. */
int
ctl_resolve(struct worker *w, struct http_conn *c, const struct http_request *req,
    char *pathbuf, size_t cap, struct mount **m, const char **key, int want_dir_ok)
{
	*m = NULL;
	if (ctl_qget(req, "path", pathbuf, cap) != 1 || pathbuf[0] != '/') {
		ctl_reply_error(c, 400, "BadRequest", "missing or malformed ?path= (an absolute ferry path like /mount/dir/file)");
		return -1;
	}
	const char *mn, *k;
	size_t ml, kl;
	if (ferry_path_split(pathbuf, &mn, &ml, &k, &kl) < 0) {
		ctl_reply_error(c, 400, "BadRequest", "malformed path");
		return -1;
	}
	if (ml == 0) {
		*key = NULL; /* the root */
		return 0;
	}
	*m = mounts_get(w->mt, mn, ml);
	if (!*m) {
		ctl_reply_error(c, 404, "NoSuchMount", "no such mount");
		return -1;
	}
	((char *)k)[kl] = 0; /* drop trailing '/' */
	if (kl > 0) {
		int r = key_validate(k, kl);
		if (r < 0 && !(r == -ENOENT && want_dir_ok)) {
			ctl_reply_errno(c, r == -ENOENT ? -EINVAL : r, "invalid path");
			mount_release(m);
			return -1;
		}
	}
	*key = k;
	return 0;
}

