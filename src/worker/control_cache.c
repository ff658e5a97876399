/*
 * control_cache.c: the control API's dataset calls: pin, ttl, free, du,
 * refresh and the rules (docs/control-api.md, "Datasets").  Runs on the
 * HTTP server's connection threads; answers through control_impl.h.
 *
 * What each call touches: pin/ttl change a rule (policy.c), which the page
 * store then applies to what it holds; free drops pages by path from the
 * store's catalog (no under-store call, so it works while the store is
 * down); du lists the under-store (the totals) and looks each object up in
 * the store (the cached part), O(1) per object; refresh expires metadata.
 * free, du and refresh answer for this worker (the CLI asks every worker
 * of a cluster); in a cluster, pin, ttl and load change the cluster's
 * records in etcd (cluster_sync.c applies them on every worker), and a pin
 * is checked against each worker's limit with that worker's share.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../cluster/placement.h"
#include "../common/json.h"
#include "../common/util.h"
#include "cluster_sync.h"
#include "control_impl.h"
#include "loader.h"
#include "meta.h"
#include "objget.h"
#include "objkey.h"
#include "policy.h"

#define DU_JSON_MAX (8 * 1024 * 1024)
#define DU_PAGE 1000

void
ctl_op_policy(struct worker *w, struct http_conn *c)
{
	struct dbuf b;
	dbuf_init(&b, DU_JSON_MAX);
	policy_json(w->pol, &b);
	dbuf_adds(&b, "\n");
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
}

/* ?path= inside a mount: the mount (held) and its key ("" for all of it). */
static int
target(struct worker *w, struct http_conn *c, const struct http_request *req,
    char *path, size_t cap, struct mount **m, const char **key)
{
	if (ctl_resolve(w, c, req, path, cap, m, key, 1) < 0)
		return -1;
	if (!*m) {
		ctl_reply_error(c, 400, "BadRequest",
		    "a path inside a mount, like /MOUNT or /MOUNT/dir (see `ferry mounts`)");
		return -1;
	}
	return 0;
}

/* ---- walking what the under-store holds under a path ------------------- */

struct du_child {
	char name[UFS_KEY_MAX + 2];
	int64_t total, cached, pinned, objects, cached_objects;
	int64_t hot; /* blocks hot here now (read past --hot-threshold) */
};

struct du_walk {
	struct worker *w;
	struct mount *m;
	const char *key; /* the path walked ("" for the mount) */
	size_t strip;    /* bytes of key + "/" before a child's name */
	struct du_child all, cur;
	struct dbuf *out; /* children, or NULL (summary only) */
	int nchildren;
	const struct cluster_view *v; /* a pin in a cluster: per member, */
	int64_t *share;          /* its part of the total (placement) */
	int64_t block;
};

/* Adds an object's blocks to the shares of the members that hold them. */
static void
du_share(struct du_walk *dw, const char *key, int64_t size)
{
	int top[MOUNT_REPLICAS_MAX];
	int reps = dw->m->replicas < MOUNT_REPLICAS_MAX ? dw->m->replicas : MOUNT_REPLICAS_MAX;
	for (int64_t b = 0; b * dw->block < size; b++) {
		int64_t len = size - b * dw->block < dw->block ? size - b * dw->block : dw->block;
		int n = placement_order(dw->v, placement_key(dw->m->name, key, b), top,
		    reps > 0 ? reps : 1);
		for (int i = 0; i < n; i++)
			dw->share[top[i]] += len;
	}
}

static void
du_fields(struct dbuf *b, const struct du_child *d)
{
	dbuf_printf(b, "\"total_bytes\":%" PRId64 ",\"cached_bytes\":%" PRId64
	    ",\"pinned_bytes\":%" PRId64 ",\"objects\":%" PRId64
	    ",\"cached_objects\":%" PRId64 ",\"hot_blocks\":%" PRId64, d->total, d->cached,
	    d->pinned, d->objects, d->cached_objects, d->hot);
}

static void
du_flush_child(struct du_walk *dw)
{
	if (!dw->out || !dw->cur.name[0])
		return;
	dbuf_adds(dw->out, dw->nchildren++ ? ",{\"name\":" : "{\"name\":");
	json_put_str(dw->out, dw->cur.name);
	dbuf_adds(dw->out, ",");
	du_fields(dw->out, &dw->cur);
	dbuf_adds(dw->out, "}");
	memset(&dw->cur, 0, sizeof(dw->cur));
}

/* One object of the listing (under the metadata cache's lock: it looks
 * the object up in the page store, nothing more). */
static int
du_one(void *arg, const struct ufs_entry *e)
{
	struct du_walk *dw = arg;
	if (e->is_dir || !path_under(e->key, dw->key))
		return 0;
	struct pagestore_objinfo oi;
	int64_t cached = 0;
	int pinned = 0;
	if (pagestore_object_info(dw->w->ps, objkey_id(dw->m->ident, e->key), &oi) == 0) {
		cached = oi.bytes < e->size ? oi.bytes : e->size;
		pinned = oi.pinned;
	}
	if (dw->share)
		du_share(dw, e->key, e->size);
	/* The child: the first name under the walked path (a directory's
	 * ends in '/'), or the object itself when the path is a file. */
	const char *rest = e->key + dw->strip, *slash = NULL;
	if (strcmp(e->key, dw->key) == 0) {
		/* The walked path is this object: its own name. */
		rest = strrchr(e->key, '/') ? strrchr(e->key, '/') + 1 : e->key;
	} else {
		slash = strchr(rest, '/');
	}
	size_t nl = slash ? (size_t)(slash - rest) + 1 : strlen(rest);
	if (dw->out && (strlen(dw->cur.name) != nl || strncmp(dw->cur.name, rest, nl) != 0)) {
		du_flush_child(dw);
		memcpy(dw->cur.name, rest, nl);
		dw->cur.name[nl] = 0;
	}
	int64_t hot = worker_cluster(dw->w) ? router_hot_blocks(dw->w->rt, dw->m, e->key, e->size) : 0;
	struct du_child *t[2] = {&dw->all, &dw->cur};
	for (int i = 0; i < 2; i++) {
		t[i]->hot += hot;
		t[i]->total += e->size;
		t[i]->cached += cached;
		t[i]->pinned += pinned ? cached : 0;
		t[i]->objects++;
		t[i]->cached_objects += cached > 0 && cached >= e->size;
	}
	return 0;
}

/* Lists everything under dw->key, page by page, through the metadata
 * cache.  0 or -errno (the under-store's). */
static int
du_walk_all(struct du_walk *dw)
{
	dw->strip = dw->key[0] ? strlen(dw->key) + 1 : 0;
	int r = meta_list_all(dw->w->mc, dw->m, dw->key, "", DU_PAGE, du_one, NULL, dw);
	if (r == 0)
		du_flush_child(dw);
	return r;
}

/* GET /v1/du?path=/m/dir[&summary=1] */
void
ctl_op_du(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char path[3 * 1024 + 128], sum[8] = "";
	struct mount *m;
	const char *key;
	if (target(w, c, req, path, sizeof(path), &m, &key) < 0)
		return;
	ctl_qget(req, "summary", sum, sizeof(sum));
	int summary = sum[0] == '1' || sum[0] == 't';
	struct dbuf kids, b;
	dbuf_init(&kids, DU_JSON_MAX);
	dbuf_init(&b, DU_JSON_MAX);
	struct du_walk dw = {.w = w, .m = m, .key = key, .out = summary ? NULL : &kids};
	int r = du_walk_all(&dw);
	if (r < 0) {
		ctl_reply_errno(c, r, path);
	} else if (dbuf_error(&kids)) {
		ctl_reply_error(c, 413, "TooLarge",
		    "too many entries under this path to list one by one: ask for the summary (ferry du -s)");
	} else {
		dbuf_adds(&b, "{\"path\":");
		json_put_str(&b, path);
		dbuf_printf(&b, ",\"worker\":\"%s\",", w->id);
		du_fields(&b, &dw.all);
		dbuf_adds(&b, ",\"entries\":[");
		dbuf_add(&b, kids.p ? kids.p : "", kids.len);
		dbuf_adds(&b, "]}\n");
		ctl_reply_json(c, 200, &b);
	}
	dbuf_free(&kids);
	dbuf_free(&b);
	mount_release(&m);
}

/* The rule change (m, key) as the cluster's record: put in etcd (or
 * deleted when no rule is left), then applied here (the watch brings it to
 * every other worker).  0, or a reply was sent. */
static int
cluster_rule_change(struct worker *w, struct cluster *cl, struct http_conn *c,
    const char *path, struct mount *m, const char *key, int pin, int64_t ttl,
    int64_t total, const struct policy_share_in *sh, int nsh)
{
	char name[17], msg[768];
	struct dbuf b;
	dbuf_init(&b, DU_JSON_MAX);
	int r = policy_record_after(w->pol, m, key, pin, ttl, total, sh, nsh, &b, name);
	if (r == -ENOENT) {
		snprintf(msg, sizeof(msg), pin == 0 ? "%s is not pinned (see `ferry pin --list`)" :
		    "%s has no TTL", path);
		ctl_reply_error(c, 404, pin == 0 ? "NoSuchPin" : "NoSuchTtl", msg);
	} else if (r < 0) {
		ctl_reply_errno(c, r, path);
	} else {
		r = b.len ? cluster_record_put(cl, CLUSTER_T_RULE, name, b.p, b.len) :
		    cluster_record_delete(cl, CLUSTER_T_RULE, name);
		if (r == -ENOENT)
			r = 0; /* deleted meanwhile by another worker */
		if (r < 0) {
			snprintf(msg, sizeof(msg), "%s: the cluster's rules are kept in etcd, "
			    "which did not take the change: %s", path, strerror(-r));
			ctl_reply_error(c, 503, "EtcdUnavailable", msg);
		} else {
			r = policy_apply_record(w->pol, name, b.len ? b.p : NULL, b.len);
			if (r == -ENOSPC) {
				snprintf(msg, sizeof(msg), "%s: too many pin and TTL rules (4096)", path);
				ctl_reply_error(c, 409, "TooManyRules", msg);
				cluster_record_delete(cl, CLUSTER_T_RULE, name);
			} else {
				r = 0; /* -EIO: in etcd and in force; the file catches up */
			}
		}
	}
	dbuf_free(&b);
	return r == 0 ? 0 : -1;
}

/* In a cluster: does the pin fit every worker's pin limit?  Each worker's
 * share is what placement gives it; the limit is --pin-limit of its cache
 * (this worker's percentage: the cluster's workers share a config).  0, or
 * -1 with the reply sent. */
static int
pin_fits_cluster(struct worker *w, struct http_conn *c, const char *path,
    const struct du_walk *dw)
{
	for (int i = 0; i < dw->v->n; i++) {
		const struct member *mb = &dw->v->m[i];
		int64_t limit = mb->capacity / 100 * w->cfg.pin_limit_pct;
		int64_t held = policy_pinned_share(w->pol, mb->id);
		int64_t after = policy_pinned_after(w->pol, mb->id, dw->m->ident, dw->key,
		    dw->share[i]);
		if (after <= limit)
			continue;
		char want[32], have[32], lim[32], msg[768];
		fmt_bytes((double)(after - held), want, sizeof(want));
		fmt_bytes((double)held, have, sizeof(have));
		fmt_bytes((double)limit, lim, sizeof(lim));
		snprintf(msg, sizeof(msg), "%s: pinning it would pin %s more on worker %s "
		    "(its pins hold %s), over its pin limit of %s (%d%% of its cache; "
		    "--pin-limit)", path, want, mb->ctl, have, lim, w->cfg.pin_limit_pct);
		ctl_reply_error(c, 507, "PinLimit", msg);
		return -1;
	}
	return 0;
}

/* POST /v1/pin?path=  DELETE /v1/pin?path= */
void
ctl_op_pin(struct worker *w, struct http_conn *c, const struct http_request *req,
    int on)
{
	char path[3 * 1024 + 128];
	struct mount *m;
	const char *key;
	if (target(w, c, req, path, sizeof(path), &m, &key) < 0)
		return;
	int r = 0;
	char msg[512];
	int64_t bytes = 0;
	struct cluster *cl = worker_cluster(w);
	if (on) {
		/* What the pins would hold with this one (the data under the
		 * path, once all is cached; nested pins count once) against the
		 * limit: cached or not, pinned data is room taken.  In a cluster,
		 * each worker's share against its own limit. */
		struct du_walk dw = {.w = w, .m = m, .key = key};
		if (cl) {
			dw.v = cluster_view_get(cl);
			dw.block = router_block_size(w->rt);
			dw.share = calloc((size_t)(dw.v->n ? dw.v->n : 1), sizeof(int64_t));
			if (!dw.share)
				r = -ENOMEM;
		}
		if (r == 0)
			r = du_walk_all(&dw);
		if (r < 0) {
			ctl_reply_errno(c, r, path);
		} else if (cl) {
			struct policy_share_in *sh = calloc((size_t)(dw.v->n ? dw.v->n : 1), sizeof(*sh));
			int n = dw.v->n < POLICY_SHARES_MAX ? dw.v->n : POLICY_SHARES_MAX;
			for (int i = 0; sh && i < n; i++) {
				sh[i].id = dw.v->m[i].id;
				sh[i].bytes = dw.share[i];
			}
			if (!sh)
				ctl_reply_errno(c, -ENOMEM, path);
			else if (pin_fits_cluster(w, c, path, &dw) == 0 &&
			    cluster_rule_change(w, cl, c, path, m, key, 1, -1,
			    dw.all.total, sh, n) == 0)
				r = 1; /* done: answer below */
			free(sh);
		}
		free(dw.share);
		if (dw.v)
			cluster_view_release((struct cluster_view **)&dw.v);
		if (r < 0 || (cl && r != 1)) {
			mount_release(&m);
			return;
		}
		bytes = dw.all.total;
		struct pagestore_stats st;
		pagestore_get_stats(w->ps, &st);
		int64_t limit = st.capacity_bytes / 100 * w->cfg.pin_limit_pct;
		int64_t held = policy_pinned_total(w->pol);
		int64_t after = policy_pinned_after(w->pol, NULL, m->ident, key, bytes);
		if (!cl && after > limit) {
			char want[32], have[32], lim[32];
			fmt_bytes((double)(after - held), want, sizeof(want));
			fmt_bytes((double)held, have, sizeof(have));
			fmt_bytes((double)limit, lim, sizeof(lim));
			snprintf(msg, sizeof(msg), "%s: pinning it would pin %s more "
			    "(pins hold %s), over the pin limit of %s (%d%% of the "
			    "cache; --pin-limit)", path, want, have, lim, w->cfg.pin_limit_pct);
			ctl_reply_error(c, 507, "PinLimit", msg);
			mount_release(&m);
			return;
		}
	} else if (cl) {
		if (cluster_rule_change(w, cl, c, path, m, key, 0, -1, 0, NULL, 0) < 0) {
			mount_release(&m);
			return;
		}
	}
	r = cl ? 0 : policy_pin(w->pol, m, key, on, bytes);
	if (r == -ENOENT) {
		snprintf(msg, sizeof(msg), "%s is not pinned (see `ferry pin --list`)", path);
		ctl_reply_error(c, 404, "NoSuchPin", msg);
	} else if (r < 0) {
		snprintf(msg, sizeof(msg), "%s: %s", path, r == -ENOSPC ?
		    "too many pin and TTL rules (4096)" : "the rule could not be saved in the state dir");
		ctl_reply_error(c, r == -ENOSPC ? 409 : 500, r == -ENOSPC ? "TooManyRules" : "Internal", msg);
	} else {
		struct pagestore_stats st;
		pagestore_get_stats(w->ps, &st);
		struct dbuf b;
		dbuf_init(&b, 256);
		dbuf_printf(&b, "{\"ok\":true,\"pinned_bytes\":%" PRId64 "}\n", st.pinned_bytes);
		ctl_reply_json(c, 200, &b);
		dbuf_free(&b);
	}
	mount_release(&m);
}

/* POST /v1/ttl?path=&ttl=24h  DELETE /v1/ttl?path= */
void
ctl_op_ttl(struct worker *w, struct http_conn *c, const struct http_request *req,
    int set)
{
	char path[3 * 1024 + 128], ttls[64] = "", msg[512];
	struct mount *m;
	const char *key;
	int64_t ttl = 0;
	if (set) {
		if (ctl_qget(req, "ttl", ttls, sizeof(ttls)) != 1 ||
		    (ttl = parse_duration(ttls)) <= 0) {
			ctl_reply_error(c, 400, "BadRequest",
			    "missing or malformed ?ttl= (a duration: 90s, 30m, 24h, 7d, 1h30m; at most ten years)");
			return;
		}
	}
	if (target(w, c, req, path, sizeof(path), &m, &key) < 0)
		return;
	struct cluster *cl = worker_cluster(w);
	if (cl && cluster_rule_change(w, cl, c, path, m, key, -1, ttl, 0, NULL, 0) < 0) {
		mount_release(&m);
		return;
	}
	int r = cl ? 0 : policy_ttl(w->pol, m, key, ttl);
	if (r == -ENOENT) {
		snprintf(msg, sizeof(msg), "%s has no TTL", path);
		ctl_reply_error(c, 404, "NoSuchTtl", msg);
	} else if (r < 0) {
		snprintf(msg, sizeof(msg), "%s: %s", path, r == -ENOSPC ?
		    "too many pin and TTL rules (4096)" : r == -EINVAL ? "TTL out of range" :
		    "the rule could not be saved in the state dir");
		ctl_reply_error(c, r == -EIO ? 500 : 400, r == -EIO ? "Internal" : "BadRequest", msg);
	} else {
		struct dbuf b;
		dbuf_init(&b, 256);
		dbuf_printf(&b, "{\"ok\":true,\"ttl\":%" PRId64 "}\n", ttl);
		ctl_reply_json(c, 200, &b);
		dbuf_free(&b);
	}
	mount_release(&m);
}

/* POST /v1/free?path=[&force=1] */
void
ctl_op_free(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char path[3 * 1024 + 128], force[8] = "", msg[512];
	struct mount *m;
	const char *key;
	if (target(w, c, req, path, sizeof(path), &m, &key) < 0)
		return;
	ctl_qget(req, "force", force, sizeof(force));
	int forced = force[0] == '1' || force[0] == 't';
	if (!forced && policy_pins_under(w->pol, m->ident, key)) {
		snprintf(msg, sizeof(msg), "%s is pinned, or holds a pinned path: "
		    "unpin it first, or free it with --force (the pin stays and "
		    "applies to what is cached next)", path);
		ctl_reply_error(c, 409, "Pinned", msg);
		mount_release(&m);
		return;
	}
	int64_t kept = 0;
	int64_t freed = pagestore_drop_prefix(w->ps, m->ident, key, forced, &kept);
	/* The metadata goes too: the next read finds the store's state now. */
	meta_refresh(w->mc, m, key);
	struct dbuf b;
	dbuf_init(&b, 256);
	dbuf_printf(&b, "{\"ok\":true,\"freed_bytes\":%" PRId64 ",\"pinned_kept_bytes\":%" PRId64
	    ",\"worker\":\"%s\"}\n", freed, kept, w->id);
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
	mount_release(&m);
}

/*
 * The refresh log: the last REFRESH_LOG paths refreshed, numbered, so that
 * FUSE clients (which poll GET /v1/refresh?since=N) drop their kernel's
 * caches of those paths too.  One per process, as the worker is.
 */
#define REFRESH_LOG 64
static struct {
	pthread_mutex_t mu;
	uint64_t seq; /* of the last one logged */
	char path[REFRESH_LOG][UFS_KEY_MAX + MOUNT_NAME_MAX + 4];
} g_rlog = {PTHREAD_MUTEX_INITIALIZER, 0, {{0}}};

static void
rlog_add(const char *path)
{
	pthread_mutex_lock(&g_rlog.mu);
	g_rlog.seq++;
	snprintf(g_rlog.path[g_rlog.seq % REFRESH_LOG], sizeof(g_rlog.path[0]), "%s", path);
	pthread_mutex_unlock(&g_rlog.mu);
}

/* GET /v1/refresh?since=N: {"seq":S,"log":L,"all":bool,"paths":[...]},
 * the paths refreshed after N (all: more than the log holds: drop
 * everything).  L names this log (the worker and its process): numbers
 * from another log (a client that failed over to another worker, or this
 * one restarted) say nothing about this one. */
void
ctl_op_refresh_log(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char sn[32] = "";
	if (ctl_qget(req, "since", sn, sizeof(sn)) < 0) {
		ctl_reply_error(c, 400, "BadRequest", "malformed ?since=");
		return;
	}
	uint64_t since = strtoull(sn, NULL, 10);
	struct dbuf b;
	dbuf_init(&b, 512 * 1024);
	pthread_mutex_lock(&g_rlog.mu);
	uint64_t seq = g_rlog.seq;
	int all = since > seq || seq - since > REFRESH_LOG;
	dbuf_printf(&b, "{\"seq\":%" PRIu64 ",\"log\":\"%s-%" PRId64 "-%d\",\"all\":%s,\"paths\":[",
	    seq, w->id, w->started, (int)getpid(), all ? "true" : "false");
	for (uint64_t i = since + 1; !all && i <= seq; i++) {
		if (i > since + 1)
			dbuf_adds(&b, ",");
		json_put_str(&b, g_rlog.path[i % REFRESH_LOG]);
	}
	pthread_mutex_unlock(&g_rlog.mu);
	dbuf_adds(&b, "]}\n");
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
}

/* POST /v1/refresh?path= */
void
ctl_op_refresh(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char path[3 * 1024 + 128];
	struct mount *m;
	const char *key;
	if (target(w, c, req, path, sizeof(path), &m, &key) < 0)
		return;
	int64_t n = meta_refresh(w->mc, m, key);
	rlog_add(path);
	struct dbuf b;
	dbuf_init(&b, 256);
	dbuf_printf(&b, "{\"ok\":true,\"expired\":%" PRId64 ",\"worker\":\"%s\"}\n", n, w->id);
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
	mount_release(&m);
}

/* ---- per-mount usage ------------------------------------------------------ */

#define USAGE_GROUPS_MAX 1024

struct usage {
	struct dbuf *b;
	struct pagestore_group_stats *g;
	int ng;
	int n;
	int which; /* 0: JSON; 1..3: one metric family */
};

static int
usage_one(void *arg, const struct mount *m)
{
	struct usage *u = arg;
	struct pagestore_group_stats z = {.group = m->ident};
	const struct pagestore_group_stats *g = &z;
	for (int i = 0; i < u->ng; i++)
		if (u->g[i].group == m->ident)
			g = &u->g[i];
	if (u->which == 0) {
		dbuf_adds(u->b, u->n++ ? ",{\"mount\":" : "{\"mount\":");
		json_put_str(u->b, m->name);
		dbuf_printf(u->b, ",\"cached_bytes\":%" PRId64 ",\"quota_bytes\":%" PRId64
		    ",\"pinned_bytes\":%" PRId64 ",\"objects\":%" PRId64 "}", g->used,
		    m->quota, g->pinned, g->objects);
	} else {
		static const char *names[] = {"", "ferry_mount_cached_bytes",
		    "ferry_mount_quota_bytes", "ferry_mount_pinned_bytes"};
		int64_t v = u->which == 1 ? g->used : u->which == 2 ? m->quota : g->pinned;
		dbuf_printf(u->b, "%s{mount=\"%s\"} %" PRId64 "\n", names[u->which],
		    m->name, v);
	}
	return 0;
}

static void
usage_walk(struct worker *w, struct dbuf *b, int which)
{
	struct pagestore_group_stats *g = calloc(USAGE_GROUPS_MAX, sizeof(*g));
	struct usage u = {.b = b, .g = g, .which = which};
	if (g) {
		u.ng = pagestore_groups(w->ps, g, USAGE_GROUPS_MAX);
		if (u.ng > USAGE_GROUPS_MAX)
			u.ng = USAGE_GROUPS_MAX;
	}
	mounts_foreach(w->mt, usage_one, &u);
	free(g);
}

void
ctl_mount_usage_json(struct worker *w, struct dbuf *b)
{
	dbuf_adds(b, "[");
	usage_walk(w, b, 0);
	dbuf_adds(b, "]");
}

void
ctl_mount_usage_metrics(struct worker *w, struct dbuf *b)
{
	static const char *head[] = {"",
	    "# HELP ferry_mount_cached_bytes Bytes this worker caches for a mount (pages and headers).\n"
	    "# TYPE ferry_mount_cached_bytes gauge\n",
	    "# HELP ferry_mount_quota_bytes A mount's quota on each worker (0: none).\n"
	    "# TYPE ferry_mount_quota_bytes gauge\n",
	    "# HELP ferry_mount_pinned_bytes Bytes of a mount's pinned pages on this worker.\n"
	    "# TYPE ferry_mount_pinned_bytes gauge\n"};
	for (int i = 1; i <= 3; i++) {
		dbuf_adds(b, head[i]);
		usage_walk(w, b, i);
	}
}

/* ---- load jobs ------------------------------------------------------------ */

struct find_job {
	const struct mount *m;
	const char *key;
	char id[17];
};

static int
find_running(void *arg, const char *name, size_t nlen, const char *json, size_t n)
{
	struct find_job *f = arg;
	struct csync_load j;
	if (nlen == 16 && csync_load_record(json, n, &j) == 0 &&
	    strcmp(j.state, "running") == 0 && strcmp(j.mount, f->m->name) == 0 &&
	    strcmp(j.key, f->key) == 0)
		snprintf(f->id, sizeof(f->id), "%s", j.id);
	return 0;
}

/* A cluster's job: its record put in etcd (every worker takes up its part
 * from there), then this worker's part started.  A job of the same path
 * running in the cluster is answered instead (-EEXIST, its id in id). */
static int
cluster_load_start(struct worker *w, struct cluster *cl, struct mount *m,
    const char *key, const struct load_opts *o, char id[17])
{
	struct find_job f = {.m = m, .key = key};
	int r = cluster_record_list(cl, CLUSTER_T_LOAD, "", find_running, &f);
	if (r < 0)
		return r;
	if (f.id[0]) {
		snprintf(id, 17, "%s", f.id);
		return -EEXIST;
	}
	struct csync_load j = {.bandwidth = o->bandwidth, .parallel = o->parallel,
	    .verify = o->verify, .replicas = o->replicas};
	uint64_t rnd = hash64(key, strlen(key), (uint64_t)now_ms() ^ m->ident ^
	    ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&j);
	snprintf(j.id, sizeof(j.id), "%016" PRIx64, rnd);
	snprintf(j.mount, sizeof(j.mount), "%s", m->name);
	snprintf(j.key, sizeof(j.key), "%s", key);
	snprintf(j.state, sizeof(j.state), "running");
	struct dbuf b;
	dbuf_init(&b, 16384);
	csync_load_json(&j, &b);
	r = dbuf_error(&b) ? -ENOMEM : cluster_record_put(cl, CLUSTER_T_LOAD, j.id, b.p, b.len);
	dbuf_free(&b);
	if (r < 0)
		return r;
	snprintf(id, 17, "%s", j.id);
	return csync_load_start_here(w, &j);
}

struct get_job {
	const char *id;
	int found;
	struct csync_load j;
};

static int
get_job_fn(void *arg, const char *name, size_t nlen, const char *json, size_t n)
{
	struct get_job *g = arg;
	if (nlen == 16 && memcmp(name, g->id, 16) == 0 && csync_load_record(json, n, &g->j) == 0)
		g->found = 1;
	return 0;
}

/* A cluster's job stopped: its record says so (every worker stops its
 * part).  0, -ENOENT (no such cluster job) or an etcd error. */
static int
cluster_load_stop(struct cluster *cl, const char *id)
{
	if (strlen(id) != 16 || strspn(id, "0123456789abcdef") != 16)
		return -ENOENT;
	struct get_job g = {.id = id};
	int r = cluster_record_list(cl, CLUSTER_T_LOAD, id, get_job_fn, &g);
	if (r < 0)
		return r;
	if (!g.found)
		return -ENOENT;
	if (strcmp(g.j.state, "running") != 0)
		return 0;
	snprintf(g.j.state, sizeof(g.j.state), "stopped");
	struct dbuf b;
	dbuf_init(&b, 16384);
	csync_load_json(&g.j, &b);
	r = dbuf_error(&b) ? -ENOMEM : cluster_record_put(cl, CLUSTER_T_LOAD, id, b.p, b.len);
	dbuf_free(&b);
	return r;
}

/* POST /v1/load?path=[&bandwidth=RATE][&parallel=N][&verify=1] */
void
ctl_op_load_start(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char path[3 * 1024 + 128], bw[32] = "", par[16] = "", ver[8] = "", msg[512];
	struct load_opts o = {.parallel = 8};
	if (ctl_qget(req, "bandwidth", bw, sizeof(bw)) < 0 ||
	    (bw[0] && (o.bandwidth = parse_size(bw)) <= 0)) {
		ctl_reply_error(c, 400, "BadRequest", "malformed ?bandwidth= (bytes per second: 400M, 1G, 50000000)");
		return;
	}
	if (ctl_qget(req, "parallel", par, sizeof(par)) < 0 ||
	    (par[0] && ((o.parallel = atoi(par)) < 1 || o.parallel > LOAD_PARALLEL_MAX))) {
		ctl_reply_error(c, 400, "BadRequest", "malformed ?parallel= (1 to 64)");
		return;
	}
	char reps[16] = "";
	if (ctl_qget(req, "replicas", reps, sizeof(reps)) < 0 ||
	    (reps[0] && ((o.replicas = atoi(reps)) < 1 || o.replicas > MOUNT_REPLICAS_MAX))) {
		ctl_reply_error(c, 400, "BadRequest", "malformed ?replicas= (1 to 16)");
		return;
	}
	ctl_qget(req, "verify", ver, sizeof(ver));
	o.verify = ver[0] == '1' || ver[0] == 't';
	char loc[8] = "";
	ctl_qget(req, "local", loc, sizeof(loc));
	o.local = loc[0] == '1' || loc[0] == 't';
	struct mount *m;
	const char *key;
	if (target(w, c, req, path, sizeof(path), &m, &key) < 0)
		return;
	/* A path with nothing under it is refused now, not loaded as empty. */
	struct ufs_stat st;
	int64_t cached;
	int r = key[0] ? objget_stat(w->og, m, key, &st, &cached) : 0;
	if (r < 0) {
		ctl_reply_errno(c, r, path);
		mount_release(&m);
		return;
	}
	char id[17] = "";
	struct cluster *cl = worker_cluster(w);
	if (cl && !o.local)
		r = cluster_load_start(w, cl, m, key, &o, id);
	else
		r = loader_start(w->ld, m, key, &o, id);
	if (r == 0 || r == -EEXIST) {
		struct dbuf b;
		dbuf_init(&b, 256);
		dbuf_printf(&b, "{\"ok\":true,\"id\":\"%s\",\"existing\":%s,\"cluster\":%s}\n", id,
		    r == -EEXIST ? "true" : "false", cl && !o.local ? "true" : "false");
		ctl_reply_json(c, r == 0 ? 201 : 200, &b);
		dbuf_free(&b);
	} else if (r == -ECONNREFUSED || r == -ETIMEDOUT || r == -EHOSTUNREACH || r == -EPROTO) {
		snprintf(msg, sizeof(msg), "%s: a cluster's load jobs are kept in etcd, which did "
		    "not take the job: %s", path, strerror(-r));
		ctl_reply_error(c, 503, "EtcdUnavailable", msg);
	} else {
		snprintf(msg, sizeof(msg), "%s: %s", path, r == -EAGAIN ?
		    "too many load jobs running (64)" :
		    "cannot start the job");
		ctl_reply_error(c, 503, "Busy", msg);
	}
	mount_release(&m);
}

/* GET /v1/load[?id=] */
void
ctl_op_load_get(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char id[32] = "";
	if (ctl_qget(req, "id", id, sizeof(id)) < 0) {
		ctl_reply_error(c, 400, "BadRequest", "malformed ?id=");
		return;
	}
	struct dbuf b;
	dbuf_init(&b, DU_JSON_MAX);
	loader_json(w->ld, id[0] ? id : NULL, &b);
	dbuf_adds(&b, "\n");
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
}

/* DELETE /v1/load?id= : stops the job (kept, listed as stopped). */
void
ctl_op_load_stop(struct worker *w, struct http_conn *c, const struct http_request *req)
{
	char id[32] = "";
	if (ctl_qget(req, "id", id, sizeof(id)) != 1) {
		ctl_reply_error(c, 400, "BadRequest", "missing or malformed ?id= (see GET /v1/load)");
		return;
	}
	/* A cluster's job: its record stops every worker's part. */
	struct cluster *cl = worker_cluster(w);
	int rc = cl ? cluster_load_stop(cl, id) : -ENOENT;
	if (rc < 0 && rc != -ENOENT) {
		char msg[512];
		snprintf(msg, sizeof(msg), "a cluster's load jobs are kept in etcd, which did "
		    "not take the stop: %s", strerror(-rc));
		ctl_reply_error(c, 503, "EtcdUnavailable", msg);
		return;
	}
	if (loader_stop(w->ld, id) < 0 && rc != 0) {
		ctl_reply_error(c, 404, "NoSuchJob", "no load job with this id");
		return;
	}
	struct dbuf b;
	dbuf_init(&b, 64);
	dbuf_adds(&b, "{\"ok\":true}\n");
	ctl_reply_json(c, 200, &b);
	dbuf_free(&b);
}
