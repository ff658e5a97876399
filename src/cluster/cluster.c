/*
 * cluster.c: cluster membership and the cluster-wide tables (mounts, pin
 * and TTL rules, load jobs), kept in etcd under "/ferry/<name>/" (see
 * cluster.h).
 *
 * Threads: cluster_open runs the first registration (lease grant + put of
 * workers/<id>) on the caller's thread, then starts
 *  - the watch thread (watch_main): lists the prefix, publishes a view and
 *    calls on_mount/on_rule/on_load for what changed, then watches from
 *    the next revision;
 *    when the stream breaks it lists again (so deletions made during the
 *    gap are seen by comparing with what it knew) with backoff while etcd
 *    does not answer.  It alone owns mem/nmem, the record tables and etcd_ok,
 *    and alone publishes views after open;
 *  - the registration thread (reg_main, only with cfg->self): keeps the
 *    lease alive every ttl/3, grants a new one and puts the member again
 *    when the lease is gone (-ENOENT), and puts it again when the watch
 *    thread saw our key deleted by someone else.
 * c->mu guards the published view pointer, version, reput, first_done and
 * lease; c->cv wakes the registration thread and the opener.
 *
 * Invariants: a published view never changes (readers hold a reference);
 * a view always exists; while etcd cannot be reached the last members stay
 * in force with etcd_ok 0.  Nothing etcd returns can crash us: malformed
 * member values and odd keys are skipped with a warning.  The key and
 * member record parsers are declared in cluster_parse.h (for tests and the
 * fuzz harness).
 */
#include "cluster.h"
#include "cluster_parse.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/dbuf.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "etcd.h"

#define CLUSTER_TTL_DEFAULT 5
#define CLUSTER_TTL_MAX 3600
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
/* A watch that breaks sooner than this after it started is retried only
 * after a backoff, so a stream that fails at once cannot spin. */
#define WATCH_MIN_LIFE_MS 1000
#define CLUSTER_CALL_TIMEOUT_MS 1000L

struct mount_seen {
	char *name;
	uint64_t h; /* hash of its value: a re-list reports only changes */
	int seen;   /* in the listing being compared */
};

/* A table of named records (mounts, rules, loads): what the watch thread
 * has seen of it, and whom to tell of changes. */
struct rec_table {
	struct mount_seen *items;
	int n, cap;
	void (*fn)(void *arg, const char *name, const char *json, size_t n);
};

struct cluster {
	struct etcd *etcd;
	char *endpoints;
	char name[CLUSTER_NAME_MAX + 1];
	char prefix[CLUSTER_NAME_MAX + 16]; /* "/ferry/<name>/" */
	size_t plen;
	int ttl;
	int has_self;
	struct member self;
	char self_key[CLUSTER_NAME_MAX + 32 + CLUSTER_ID_MAX];
	char *self_json;
	size_t self_len;
	void (*on_view)(void *arg, const struct cluster_view *v);
	void *arg;

	volatile int stop; /* atomic */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cluster_view *view;
	int64_t version;
	int reput;
	int first_done;
	int64_t lease; /* the registration's lease, for the revoke at close */
	int etcd_down; /* the registration's last call got no answer */
	int need_put;  /* open's put did not happen */
	pthread_t reg_th, watch_th;
	int reg_started, watch_started;

	/* Watch thread only. */
	struct member *mem; /* sorted by id */
	int nmem, capmem;
	struct member *nxt; /* the listing being built */
	int nnxt, capnxt;
	struct rec_table tbl[CLUSTER_T_N];
	int etcd_ok;
};

/* ------------------------------------------------------------------ */
/* Validation and member JSON                                           */

static int
id_valid(const char *s, size_t n)
{
	if (n != CLUSTER_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int
cluster_name_valid(const char *s, size_t n, size_t max)
{
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		int alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
		if (!alnum && (i == 0 || !strchr("._-", ch) || !ch))
			return 0;
	}
	return 1;
}

/* "host:port": printable, no spaces or quotes. */
static int
addr_valid(const char *s, size_t n, int empty_ok)
{
	if (n == 0)
		return empty_ok;
	if (n > CLUSTER_ADDR_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f ||
		    s[i] == '"' || s[i] == '\\')
			return 0;
	return 1;
}

int
cluster_member_json(const struct member *m, struct dbuf *b)
{
	int r = dbuf_adds(b, "{\"id\":");
	if (r == 0)
		r = json_put_str(b, m->id);
	if (r == 0)
		r = dbuf_adds(b, ",\"ctl\":");
	if (r == 0)
		r = json_put_str(b, m->ctl);
	if (r == 0)
		r = dbuf_adds(b, ",\"s3\":");
	if (r == 0)
		r = json_put_str(b, m->s3);
	if (r == 0)
		r = dbuf_printf(b, ",\"capacity\":%" PRId64 ",\"started\":%" PRId64
		    "}", m->capacity, m->started);
	return r;
}

/* Copies a JSON string field into out (cap bytes with the NUL). */
static int
str_field(const struct json_doc *d, const char *key, char *out, size_t cap,
    int empty_ok)
{
	char *s = json_str(d, json_obj_get(d, 0, key));
	if (!s)
		return -1;
	size_t n = strlen(s);
	int ok = n < cap && (n > 0 || empty_ok);
	if (ok)
		memcpy(out, s, n + 1);
	free(s);
	return ok ? 0 : -1;
}

int
cluster_member_parse(const char *json, size_t n, const char *kid,
    size_t kidlen, struct member *m)
{
	memset(m, 0, sizeof(*m)); /* views are compared with memcmp */
	if (!id_valid(kid, kidlen))
		return -1;
	struct json_doc d;
	if (json_parse(&d, json, n) != 0)
		return -1;
	int r = d.toks[0].type == JSON_OBJECT ? 0 : -1;
	int ok1 = 0, ok2 = 0;
	if (r == 0)
		r = str_field(&d, "id", m->id, sizeof(m->id), 0);
	if (r == 0)
		r = str_field(&d, "ctl", m->ctl, sizeof(m->ctl), 0);
	if (r == 0)
		r = str_field(&d, "s3", m->s3, sizeof(m->s3), 1);
	if (r == 0) {
		m->capacity = json_int(&d, json_obj_get(&d, 0, "capacity"),
		    &ok1);
		m->started = json_int(&d, json_obj_get(&d, 0, "started"), &ok2);
	}
	json_free(&d);
	if (r != 0 || !ok1 || !ok2 || m->capacity < 0 ||
	    strlen(m->id) != kidlen || memcmp(m->id, kid, kidlen) != 0 ||
	    !addr_valid(m->ctl, strlen(m->ctl), 0) ||
	    !addr_valid(m->s3, strlen(m->s3), 1)) {
		memset(m, 0, sizeof(*m));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Views                                                                */

static struct cluster_view *
view_new(const struct member *m, int n, int etcd_ok)
{
	struct cluster_view *v = malloc(sizeof(*v) +
	    (size_t)n * sizeof(struct member));
	if (!v)
		return NULL;
	v->refs = 1;
	v->version = 0;
	v->etcd_ok = etcd_ok;
	v->n = n;
	if (n)
		memcpy(v->m, m, (size_t)n * sizeof(struct member));
	return v;
}

struct cluster_view *
cluster_view_get(struct cluster *c)
{
	pthread_mutex_lock(&c->mu);
	struct cluster_view *v = c->view;
	__atomic_add_fetch(&v->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&c->mu);
	return v;
}

void
cluster_view_release(struct cluster_view **vp)
{
	if (!vp || !*vp)
		return;
	if (__atomic_sub_fetch(&(*vp)->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(*vp);
	*vp = NULL;
}

int
cluster_view_find(const struct cluster_view *v, const char *id)
{
	if (!v || !id)
		return -1;
	int lo = 0, hi = v->n - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		int cmp = strcmp(v->m[mid].id, id);
		if (cmp == 0)
			return mid;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

/* Watch thread: publishes mem/etcd_ok as a new view if they differ from
 * the current one, then tells on_view. */
static void
publish(struct cluster *c)
{
	struct cluster_view *cur = c->view; /* only this thread replaces it */
	if (cur->etcd_ok == c->etcd_ok && cur->n == c->nmem &&
	    (c->nmem == 0 ||
	    memcmp(cur->m, c->mem, (size_t)c->nmem * sizeof(struct member)) == 0))
		return;
	struct cluster_view *v = view_new(c->mem, c->nmem, c->etcd_ok);
	if (!v) {
		LOG_ERR("cluster: out of memory publishing a view");
		return;
	}
	pthread_mutex_lock(&c->mu);
	v->version = ++c->version;
	struct cluster_view *old = c->view;
	c->view = v;
	pthread_mutex_unlock(&c->mu);
	cluster_view_release(&old);
	if (c->on_view)
		c->on_view(c->arg, v);
}

/* Inserts or replaces m in a sorted member array. */
static int
members_upsert(struct member **arr, int *n, int *cap, const struct member *m)
{
	int lo = 0, hi = *n;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (strcmp((*arr)[mid].id, m->id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* memcpy, not assignment: padding bytes too, for publish's memcmp. */
	if (lo < *n && strcmp((*arr)[lo].id, m->id) == 0) {
		memcpy(&(*arr)[lo], m, sizeof(*m));
		return 0;
	}
	if (*n == *cap) {
		int nc = *cap ? *cap * 2 : 8;
		struct member *na = realloc(*arr, (size_t)nc * sizeof(*na));
		if (!na)
			return -ENOMEM;
		*arr = na;
		*cap = nc;
	}
	memmove(*arr + lo + 1, *arr + lo, (size_t)(*n - lo) * sizeof(**arr));
	memcpy(&(*arr)[lo], m, sizeof(*m));
	(*n)++;
	return 0;
}

static void
members_remove(struct cluster *c, const char *id, size_t idlen)
{
	for (int i = 0; i < c->nmem; i++) {
		if (strlen(c->mem[i].id) == idlen &&
		    memcmp(c->mem[i].id, id, idlen) == 0) {
			memmove(c->mem + i, c->mem + i + 1,
			    (size_t)(c->nmem - i - 1) * sizeof(*c->mem));
			c->nmem--;
			return;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Mount table                                                          */

static struct mount_seen *
rec_find(struct rec_table *t, const char *name, size_t n)
{
	for (int i = 0; i < t->n; i++)
		if (strlen(t->items[i].name) == n &&
		    memcmp(t->items[i].name, name, n) == 0)
			return &t->items[i];
	return NULL;
}

/* A record's value as of now: tell the table's callback if it is new or
 * changed. */
static void
rec_put(struct cluster *c, struct rec_table *t, const char *name, size_t n,
    const char *val, size_t vlen)
{
	uint64_t h = hash64(val, vlen, 0x6d6f756e74ull);
	struct mount_seen *m = rec_find(t, name, n);
	if (m) {
		m->seen = 1;
		if (m->h == h)
			return;
		m->h = h;
	} else {
		if (t->n == t->cap) {
			int nc = t->cap ? t->cap * 2 : 8;
			struct mount_seen *na = realloc(t->items,
			    (size_t)nc * sizeof(*na));
			if (!na)
				return;
			t->items = na;
			t->cap = nc;
		}
		char *nm = strndup(name, n);
		if (!nm)
			return;
		m = &t->items[t->n++];
		m->name = nm;
		m->h = h;
		m->seen = 1;
	}
	if (t->fn)
		t->fn(c->arg, m->name, val, vlen);
}

static void
rec_gone(struct cluster *c, struct rec_table *t, struct mount_seen *m)
{
	char *name = m->name;
	*m = t->items[--t->n];
	if (t->fn)
		t->fn(c->arg, name, NULL, 0);
	free(name);
}

/* The table a key kind's records go to, or NULL. */
static struct rec_table *
kind_table(struct cluster *c, int kind)
{
	switch (kind) {
	case CLUSTER_KEY_MOUNT: return &c->tbl[CLUSTER_T_MOUNT];
	case CLUSTER_KEY_RULE: return &c->tbl[CLUSTER_T_RULE];
	case CLUSTER_KEY_LOAD: return &c->tbl[CLUSTER_T_LOAD];
	default: return NULL;
	}
}

/* ------------------------------------------------------------------ */
/* Watch thread                                                         */

int
cluster_key_kind(const char *prefix, size_t plen, const char *key,
    size_t klen, const char **name, size_t *nlen)
{
	if (klen < plen || memcmp(key, prefix, plen) != 0)
		return CLUSTER_KEY_OTHER;
	const char *rest = key + plen;
	size_t rn = klen - plen;
	if (rn > 8 && memcmp(rest, "workers/", 8) == 0) {
		*name = rest + 8;
		*nlen = rn - 8;
		return CLUSTER_KEY_WORKER;
	}
	static const struct {
		const char *dir;
		size_t len;
		int kind;
	} dirs[] = {{"mounts/", 7, CLUSTER_KEY_MOUNT},
	    {"rules/", 6, CLUSTER_KEY_RULE}, {"loads/", 6, CLUSTER_KEY_LOAD}};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (rn > dirs[i].len &&
		    memcmp(rest, dirs[i].dir, dirs[i].len) == 0) {
			*name = rest + dirs[i].len;
			*nlen = rn - dirs[i].len;
			return dirs[i].kind;
		}
	}
	return CLUSTER_KEY_OTHER;
}

static int
list_fn(void *arg, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct cluster *c = arg;
	const char *name;
	size_t n;
	int kind = cluster_key_kind(c->prefix, c->plen, key, klen, &name, &n);
	switch (kind) {
	case CLUSTER_KEY_WORKER: {
		struct member m;
		if (cluster_member_parse(val, vlen, name, n, &m) != 0) {
			LOG_WARN("cluster: skipping malformed member %.*s",
			    (int)(n > 64 ? 64 : n), name);
			return 0;
		}
		return members_upsert(&c->nxt, &c->nnxt, &c->capnxt, &m);
	}
	case CLUSTER_KEY_MOUNT:
	case CLUSTER_KEY_RULE:
	case CLUSTER_KEY_LOAD:
		if (!cluster_name_valid(name, n, CLUSTER_MOUNT_NAME_MAX)) {
			LOG_WARN("cluster: skipping a record with a bad name");
			return 0;
		}
		rec_put(c, kind_table(c, kind), name, n, val, vlen);
		return 0;
	default:
		return 0;
	}
}

static int
self_present(const struct cluster *c, const struct member *arr, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(arr[i].id, c->self.id) == 0)
			return 1;
	return 0;
}

static void
ask_reput(struct cluster *c)
{
	pthread_mutex_lock(&c->mu);
	c->reput = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static int
stopping(const struct cluster *c)
{
	return __atomic_load_n(&c->stop, __ATOMIC_ACQUIRE);
}

/* Lists the prefix and brings members and mounts up to date with it. */
static int
relist(struct cluster *c, int64_t *rev)
{
	c->nnxt = 0;
	for (int t = 0; t < CLUSTER_T_N; t++)
		for (int i = 0; i < c->tbl[t].n; i++)
			c->tbl[t].items[i].seen = 0;
	int r = etcd_range_prefix(c->etcd, c->prefix, list_fn, c, rev);
	if (r != 0)
		return r;
	/* Records that went while we were not watching. */
	for (int t = 0; t < CLUSTER_T_N; t++) {
		for (int i = 0; i < c->tbl[t].n;) {
			if (!c->tbl[t].items[i].seen) /* moves the last here */
				rec_gone(c, &c->tbl[t], &c->tbl[t].items[i]);
			else
				i++;
		}
	}
	struct member *t = c->mem;
	c->mem = c->nxt;
	c->nxt = t;
	int tc = c->capmem;
	c->capmem = c->capnxt;
	c->capnxt = tc;
	c->nmem = c->nnxt;
	c->etcd_ok = 1;
	publish(c);
	if (c->has_self && !stopping(c) && !self_present(c, c->mem, c->nmem))
		ask_reput(c);
	return 0;
}

static int
watch_fn(void *arg, const struct etcd_event *ev)
{
	struct cluster *c = arg;
	const char *name;
	size_t n;
	int kind = cluster_key_kind(c->prefix, c->plen, ev->key, ev->klen,
	    &name, &n);
	switch (kind) {
	case CLUSTER_KEY_WORKER:
		if (ev->type == ETCD_EV_DELETE) {
			members_remove(c, name, n);
			publish(c);
			if (c->has_self && !stopping(c) && n == CLUSTER_ID_MAX &&
			    memcmp(name, c->self.id, n) == 0)
				ask_reput(c); /* someone deleted us */
		} else {
			struct member m;
			if (cluster_member_parse(ev->val, ev->vlen, name, n,
			    &m) != 0) {
				LOG_WARN("cluster: skipping malformed member "
				    "%.*s", (int)(n > 64 ? 64 : n), name);
				/* Whatever it was, it no longer holds. */
				members_remove(c, name, n);
			} else if (members_upsert(&c->mem, &c->nmem, &c->capmem,
			    &m) != 0) {
				return -ENOMEM;
			}
			publish(c);
		}
		return 0;
	case CLUSTER_KEY_MOUNT:
	case CLUSTER_KEY_RULE:
	case CLUSTER_KEY_LOAD: {
		struct rec_table *t = kind_table(c, kind);
		if (!cluster_name_valid(name, n, CLUSTER_MOUNT_NAME_MAX))
			return 0;
		if (ev->type == ETCD_EV_DELETE) {
			struct mount_seen *m = rec_find(t, name, n);
			if (m)
				rec_gone(c, t, m);
		} else {
			rec_put(c, t, name, n, ev->val, ev->vlen);
		}
		return 0;
	}
	default:
		return 0;
	}
}

/* Sleeps ms or until close. */
static void
nap(struct cluster *c, int64_t ms)
{
	int64_t until = now_ms() + ms;
	pthread_mutex_lock(&c->mu);
	while (!stopping(c)) {
		int64_t left = until - now_ms();
		if (left <= 0)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	pthread_mutex_unlock(&c->mu);
}

static void
first_done(struct cluster *c)
{
	pthread_mutex_lock(&c->mu);
	c->first_done = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void *
watch_main(void *arg)
{
	struct cluster *c = arg;
	int64_t backoff = BACKOFF_MIN_MS;
	int warned = 0;
	while (!stopping(c)) {
		int64_t rev = 0;
		int r = relist(c, &rev);
		first_done(c);
		if (r != 0) {
			if (!warned)
				LOG_WARN("cluster %s: etcd: %s; keeping the last "
				    "view and retrying", c->name, strerror(-r));
			warned = 1;
			if (c->etcd_ok) {
				c->etcd_ok = 0;
				publish(c);
			}
			nap(c, backoff);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							       : backoff * 2;
			continue;
		}
		if (warned)
			LOG_INFO("cluster %s: etcd answers again", c->name);
		warned = 0;
		int64_t last = rev, t0 = now_ms();
		r = etcd_watch_prefix(c->etcd, c->prefix, rev + 1, watch_fn, c,
		    &c->stop, &last);
		if (stopping(c))
			break;
		LOG_DEBUG("cluster %s: watch ended: %s", c->name,
		    strerror(r < 0 ? -r : EIO));
		if (now_ms() - t0 < WATCH_MIN_LIFE_MS) {
			nap(c, backoff);
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							       : backoff * 2;
		} else {
			backoff = BACKOFF_MIN_MS;
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Registration thread                                                  */

/* etcd did not take the call (as opposed to answering no). */
static int
no_answer(int r)
{
	return r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -ETIMEDOUT ||
	    r == -EAGAIN;
}

static int64_t
keepalive_ms(const struct cluster *c)
{
	return (int64_t)c->ttl * 1000 / 3;
}

static void *
reg_main(void *arg)
{
	struct cluster *c = arg;
	int64_t backoff = BACKOFF_MIN_MS;
	pthread_mutex_lock(&c->mu);
	int64_t lease = c->lease;
	int need_put = c->need_put;
	int64_t next = lease && !need_put ? now_ms() + keepalive_ms(c) : 0;
	for (;;) {
		while (!stopping(c) && !c->reput && now_ms() < next) {
			int64_t left = next - now_ms();
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += left / 1000;
			ts.tv_nsec += (left % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&c->cv, &c->mu, &ts);
		}
		if (stopping(c))
			break;
		if (c->reput) {
			c->reput = 0;
			need_put = 1;
		}
		pthread_mutex_unlock(&c->mu);

		int r = 0;
		if (lease == 0) {
			r = etcd_lease_grant(c->etcd, c->ttl, &lease);
			need_put = 1;
		}
		if (r == 0 && need_put) {
			r = etcd_put(c->etcd, c->self_key, c->self_json,
			    c->self_len, lease);
			if (r == 0) {
				need_put = 0;
				LOG_INFO("cluster %s: registered as %s",
				    c->name, c->self.id);
			}
		} else if (r == 0) {
			r = etcd_lease_keepalive(c->etcd, lease);
		}
		if (r == -ENOENT) {
			/* The lease is gone (expired while we could not reach
			 * etcd, or revoked): a new one, and our key again. */
			LOG_WARN("cluster %s: lease lost; registering again",
			    c->name);
			lease = 0;
			need_put = 1;
			next = now_ms() + BACKOFF_MIN_MS;
		} else if (r != 0) {
			LOG_DEBUG("cluster %s: registration: %s", c->name,
			    strerror(-r));
			next = now_ms() + backoff;
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
							       : backoff * 2;
		} else {
			backoff = BACKOFF_MIN_MS;
			next = now_ms() + keepalive_ms(c);
		}
		pthread_mutex_lock(&c->mu);
		c->lease = lease;
		c->etcd_down = no_answer(r);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Open and close                                                       */

static void
cfg_err(char **err, const char *msg)
{
	if (err)
		*err = strdup(msg);
}

struct cluster *
cluster_open(const struct cluster_cfg *cfg, char **err)
{
	if (err)
		*err = NULL;
	if (!cfg || !cfg->etcd || !*cfg->etcd) {
		cfg_err(err, "no etcd endpoints given");
		return NULL;
	}
	if (!cfg->name || !cluster_name_valid(cfg->name, strlen(cfg->name),
	    CLUSTER_NAME_MAX)) {
		cfg_err(err, "bad cluster name (want [a-z0-9][a-z0-9._-]{0,62})");
		return NULL;
	}
	if (cfg->lease_ttl_s < 0 || cfg->lease_ttl_s > CLUSTER_TTL_MAX) {
		cfg_err(err, "bad lease TTL (want 1..3600 seconds)");
		return NULL;
	}
	const struct member *s = cfg->self;
	if (s && (!id_valid(s->id, strnlen(s->id, sizeof(s->id))) ||
	    !addr_valid(s->ctl, strnlen(s->ctl, sizeof(s->ctl)), 0) ||
	    strnlen(s->ctl, sizeof(s->ctl)) == sizeof(s->ctl) ||
	    strnlen(s->s3, sizeof(s->s3)) == sizeof(s->s3) ||
	    !addr_valid(s->s3, strlen(s->s3), 1) || s->capacity < 0)) {
		cfg_err(err, "bad member (id, ctl or s3 address, capacity)");
		return NULL;
	}
	struct cluster *c = calloc(1, sizeof(*c));
	if (!c) {
		cfg_err(err, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	char *eerr = NULL;
	c->etcd = etcd_open(cfg->etcd, &eerr);
	if (!c->etcd) {
		if (err) {
			struct dbuf b;
			dbuf_init(&b, 1024);
			if (dbuf_printf(&b, "etcd: %s",
			    eerr ? eerr : "out of memory") == 0)
				*err = dbuf_take(&b);
			dbuf_free(&b);
		}
		free(eerr);
		goto fail;
	}
	/* Calls are small (ranges go by pages): a second is plenty, and it
	 * bounds how long close waits on an etcd that hangs. */
	etcd_set_timeout(c->etcd, CLUSTER_CALL_TIMEOUT_MS);
	c->endpoints = strdup(cfg->etcd);
	snprintf(c->name, sizeof(c->name), "%s", cfg->name);
	snprintf(c->prefix, sizeof(c->prefix), "/ferry/%s/", cfg->name);
	c->plen = strlen(c->prefix);
	c->ttl = cfg->lease_ttl_s ? cfg->lease_ttl_s : CLUSTER_TTL_DEFAULT;
	c->tbl[CLUSTER_T_MOUNT].fn = cfg->on_mount;
	c->tbl[CLUSTER_T_RULE].fn = cfg->on_rule;
	c->tbl[CLUSTER_T_LOAD].fn = cfg->on_load;
	c->on_view = cfg->on_view;
	c->arg = cfg->arg;
	if (s) {
		c->has_self = 1;
		memset(&c->self, 0, sizeof(c->self));
		memcpy(c->self.id, s->id, CLUSTER_ID_MAX);
		snprintf(c->self.ctl, sizeof(c->self.ctl), "%s", s->ctl);
		snprintf(c->self.s3, sizeof(c->self.s3), "%s", s->s3);
		c->self.capacity = s->capacity;
		c->self.started = s->started;
		snprintf(c->self_key, sizeof(c->self_key), "%sworkers/%s",
		    c->prefix, c->self.id);
		struct dbuf b;
		dbuf_init(&b, CLUSTER_MEMBER_JSON_MAX);
		if (cluster_member_json(&c->self, &b) == 0) {
			c->self_len = b.len;
			c->self_json = dbuf_take(&b);
		}
		dbuf_free(&b);
		/* Until etcd says otherwise, the cluster is us. */
		if (members_upsert(&c->mem, &c->nmem, &c->capmem, &c->self)) {
			free(c->self_json);
			c->self_json = NULL;
		}
	}
	c->view = view_new(c->mem, c->nmem, 0);
	if (!c->endpoints || (s && !c->self_json) || !c->view) {
		cfg_err(err, "out of memory");
		goto fail;
	}

	/* First registration, on this thread, so that the first listing
	 * below already holds us. */
	int r = 0;
	if (c->has_self) {
		c->need_put = 1;
		r = etcd_lease_grant(c->etcd, c->ttl, &c->lease);
		if (r == 0)
			r = etcd_put(c->etcd, c->self_key, c->self_json,
			    c->self_len, c->lease);
		if (r == 0)
			c->need_put = 0;
		else
			LOG_WARN("cluster %s: etcd %s: %s; will keep trying",
			    c->name, c->endpoints, strerror(-r));
		c->etcd_down = no_answer(r);
	}
	if (pthread_create(&c->watch_th, NULL, watch_main, c) != 0) {
		cfg_err(err, "cannot start the cluster watch thread");
		goto fail;
	}
	c->watch_started = 1;
	/* etcd just did not answer: don't wait for a second try. */
	if (!(c->has_self && no_answer(r))) {
		pthread_mutex_lock(&c->mu);
		while (!c->first_done)
			pthread_cond_wait(&c->cv, &c->mu);
		pthread_mutex_unlock(&c->mu);
	}
	if (c->has_self) {
		if (pthread_create(&c->reg_th, NULL, reg_main, c) != 0) {
			cfg_err(err, "cannot start the cluster registration "
			    "thread");
			goto fail;
		}
		c->reg_started = 1;
	}
	return c;
fail:
	cluster_close(&c);
	return NULL;
}

void
cluster_close(struct cluster **cp)
{
	if (!cp || !*cp)
		return;
	struct cluster *c = *cp;
	pthread_mutex_lock(&c->mu);
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (c->reg_started)
		pthread_join(c->reg_th, NULL);
	/* A clean leave: our key goes now, not a TTL from now.  (Not when
	 * etcd is not answering: that would only make close wait.) */
	if (c->lease && c->etcd && !c->etcd_down) {
		int r = etcd_lease_revoke(c->etcd, c->lease);
		if (r != 0 && r != -ENOENT)
			LOG_WARN("cluster %s: revoking the lease: %s", c->name,
			    strerror(-r));
	}
	if (c->watch_started)
		pthread_join(c->watch_th, NULL);
	etcd_close(&c->etcd);
	cluster_view_release(&c->view);
	for (int t = 0; t < CLUSTER_T_N; t++) {
		for (int i = 0; i < c->tbl[t].n; i++)
			free(c->tbl[t].items[i].name);
		free(c->tbl[t].items);
	}
	free(c->mem);
	free(c->nxt);
	free(c->self_json);
	free(c->endpoints);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
	*cp = NULL;
}

/* ------------------------------------------------------------------ */
/* Mount table and accessors                                            */

static const char *const table_dir[CLUSTER_T_N] = {"mounts", "rules", "loads"};

static int
rec_key(const struct cluster *c, int t, const char *name, char *key,
    size_t cap)
{
	if (t < 0 || t >= CLUSTER_T_N || !name ||
	    !cluster_name_valid(name, strlen(name), CLUSTER_MOUNT_NAME_MAX))
		return -EINVAL;
	snprintf(key, cap, "%s%s/%s", c->prefix, table_dir[t], name);
	return 0;
}

int
cluster_mount_create(struct cluster *c, const char *name, const char *json,
    size_t n)
{
	char key[CLUSTER_NAME_MAX + CLUSTER_MOUNT_NAME_MAX + 32];
	if (!c || !json || n == 0)
		return -EINVAL;
	int r = rec_key(c, CLUSTER_T_MOUNT, name, key, sizeof(key));
	return r ? r : etcd_create(c->etcd, key, json, n, 0);
}

int
cluster_mount_delete(struct cluster *c, const char *name)
{
	return cluster_record_delete(c, CLUSTER_T_MOUNT, name);
}

int
cluster_record_put(struct cluster *c, enum cluster_table t, const char *name,
    const char *json, size_t n)
{
	char key[CLUSTER_NAME_MAX + CLUSTER_MOUNT_NAME_MAX + 32];
	if (!c || !json || n == 0)
		return -EINVAL;
	int r = rec_key(c, (int)t, name, key, sizeof(key));
	return r ? r : etcd_put(c->etcd, key, json, n, 0);
}

int
cluster_record_delete(struct cluster *c, enum cluster_table t,
    const char *name)
{
	char key[CLUSTER_NAME_MAX + CLUSTER_MOUNT_NAME_MAX + 32];
	if (!c)
		return -EINVAL;
	int r = rec_key(c, (int)t, name, key, sizeof(key));
	return r ? r : etcd_delete(c->etcd, key);
}

struct range_arg {
	const struct cluster *c;
	size_t skip; /* prefix + table dir + "/" */
	int (*fn)(void *arg, const char *name, size_t nlen, const char *json,
	    size_t n);
	void *arg;
};

static int
range_fn(void *arg, const char *key, size_t klen, const char *val,
    size_t vlen)
{
	struct range_arg *ra = arg;
	if (klen <= ra->skip)
		return 0;
	return ra->fn(ra->arg, key + ra->skip, klen - ra->skip, val, vlen);
}

int
cluster_record_list(struct cluster *c, enum cluster_table t,
    const char *name_prefix,
    int (*fn)(void *arg, const char *name, size_t nlen, const char *json,
    size_t n), void *arg)
{
	char key[CLUSTER_NAME_MAX + CLUSTER_MOUNT_NAME_MAX + 32];
	if (!c || (int)t < 0 || t >= CLUSTER_T_N || !fn || !name_prefix ||
	    strlen(name_prefix) > CLUSTER_MOUNT_NAME_MAX)
		return -EINVAL;
	snprintf(key, sizeof(key), "%s%s/%s", c->prefix, table_dir[t],
	    name_prefix);
	struct range_arg ra = {.c = c, .fn = fn, .arg = arg,
	    .skip = c->plen + strlen(table_dir[t]) + 1};
	int64_t rev;
	return etcd_range_prefix(c->etcd, key, range_fn, &ra, &rev);
}

const char *
cluster_etcd(const struct cluster *c)
{
	return c->endpoints;
}

const char *
cluster_name(const struct cluster *c)
{
	return c->name;
}

/* ------------------------------------------------------------------ */
/* Worker ids                                                           */

/* Reads an id from path: 0, -ENOENT, -EINVAL (not an id) or -errno. */
static int
id_read(const char *path, char id[CLUSTER_ID_MAX + 1])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	char buf[CLUSTER_ID_MAX + 8];
	ssize_t n = read(fd, buf, sizeof(buf));
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
	    buf[n - 1] == ' '))
		n--;
	if (!id_valid(buf, (size_t)n))
		return -EINVAL;
	memcpy(id, buf, CLUSTER_ID_MAX);
	id[CLUSTER_ID_MAX] = 0;
	return 0;
}

int
cluster_worker_id(const char *path, char id[CLUSTER_ID_MAX + 1])
{
	if (!path || !*path || !id)
		return -EINVAL;
	int r = id_read(path, id);
	if (r == 0 || (r != -ENOENT && r != -EINVAL))
		return r;
	if (r == -EINVAL)
		LOG_WARN("%s does not hold a worker id; making a new one", path);
	unsigned char rnd[CLUSTER_ID_MAX / 2];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -EIO;
	char fresh[CLUSTER_ID_MAX + 2];
	hex_encode(rnd, sizeof(rnd), fresh);
	fresh[CLUSTER_ID_MAX] = '\n';
	fresh[CLUSTER_ID_MAX + 1] = 0;
	/* Written in full to a temporary file, then linked (missing: link
	 * fails if someone beat us to it, and then theirs wins) or renamed
	 * (malformed) into place, so nobody ever reads half an id. */
	struct dbuf tmp;
	dbuf_init(&tmp, 8192);
	if (dbuf_printf(&tmp, "%s.tmp.XXXXXX", path) != 0) {
		dbuf_free(&tmp);
		return -ENAMETOOLONG;
	}
	int fd = mkostemp(tmp.p, O_CLOEXEC); /* 0600 */
	if (fd < 0) {
		r = -errno;
		dbuf_free(&tmp);
		return r;
	}
	ssize_t w = write(fd, fresh, CLUSTER_ID_MAX + 1);
	r = w == CLUSTER_ID_MAX + 1 ? 0 : -EIO;
	if (r == 0 && fsync(fd) != 0)
		r = -errno;
	close(fd);
	if (r == 0) {
		int was_bad = id_read(path, id) == -EINVAL;
		if (was_bad ? rename(tmp.p, path) != 0 : link(tmp.p, path) != 0)
			r = errno == EEXIST ? 0 : -errno;
	}
	unlink(tmp.p);
	dbuf_free(&tmp);
	if (r != 0)
		return r;
	/* Whoever won, the file now holds the id. */
	return id_read(path, id);
}
