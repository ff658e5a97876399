/*
 * policy.c: pin and TTL rules (see policy.h).  Called from control-API
 * threads (pin, ttl, json), from any thread that stores a page (classify,
 * under the page store's lock) and from its own TTL thread, which calls
 * pagestore_expire once a second.
 *
 * Invariants: the rules on disk are the rules in memory (a change that
 * cannot be saved is undone and reported); a rule has a pin, a TTL or
 * both (a rule left with neither is removed); (ident, prefix) is unique.
 */
#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"

/* A worker's part of a pin in a cluster (placement's share). */
struct share {
	char id[POLICY_WORKER_ID_MAX + 1];
	int64_t bytes;
};

struct rule {
	char mount[MOUNT_NAME_MAX + 1];
	uint64_t ident;
	char *prefix;
	int pin;
	int64_t ttl;
	int64_t bytes; /* pin: what it holds here, when it was made */
	/* In a cluster (the record of rules/<name> in etcd): */
	int64_t total;       /* the data under it when it was made, all of it */
	struct share *sh;    /* each worker's part of total */
	int nsh;
	int seen;            /* in the sync being made (policy_sync_*) */
};

struct policy {
	pthread_mutex_t change_mu; /* one change at a time (held across the
	                            * save; taken before lock) */
	pthread_rwlock_t lock;
	char *path;
	struct rule *r;
	int n, cap;

	char self[POLICY_WORKER_ID_MAX + 1]; /* in a cluster: this worker */

	struct pagestore *ps;
	pthread_t thr;
	int running;
	pthread_mutex_t stop_mu;
	pthread_cond_t stop_cv;
	int stopping;
};

static void
rule_free(struct rule *r)
{
	free(r->prefix);
	free(r->sh);
	r->prefix = NULL;
	r->sh = NULL;
	r->nsh = 0;
}

/* One rule's fields after "mount" (with_ident: for the file and etcd). */
static void
rule_fields_json(const struct rule *r, struct dbuf *b, int with_ident)
{
	if (with_ident)
		dbuf_printf(b, ",\"ident\":\"%016" PRIx64 "\"", r->ident);
	dbuf_adds(b, ",\"path\":");
	json_put_str(b, r->prefix);
	dbuf_printf(b, ",\"pin\":%s,\"ttl\":%" PRId64 ",\"bytes\":%" PRId64,
	    r->pin ? "true" : "false", r->ttl, r->bytes);
	if (!with_ident || !r->nsh)
		return;
	dbuf_printf(b, ",\"total\":%" PRId64 ",\"shares\":[", r->total);
	for (int i = 0; i < r->nsh; i++)
		dbuf_printf(b, "%s{\"worker\":\"%s\",\"bytes\":%" PRId64 "}",
		    i ? "," : "", r->sh[i].id, r->sh[i].bytes);
	dbuf_adds(b, "]");
}

/* A rule from its JSON object (tok t of d): 0, or -1 (malformed; *r
 * holds nothing to free). */
static int
rule_parse(const struct json_doc *d, int t, struct rule *r)
{
	memset(r, 0, sizeof(*r));
	if (t < 0 || d->toks[t].type != JSON_OBJECT)
		return -1;
	char *mount = json_str(d, json_obj_get(d, t, "mount"));
	char *ident = json_str(d, json_obj_get(d, t, "ident"));
	char *prefix = json_str(d, json_obj_get(d, t, "path"));
	int pt = json_obj_get(d, t, "pin");
	int okt = 0, okb = 0, okto = 0;
	int64_t ttl = json_int(d, json_obj_get(d, t, "ttl"), &okt);
	int64_t bytes = json_int(d, json_obj_get(d, t, "bytes"), &okb);
	int64_t total = json_int(d, json_obj_get(d, t, "total"), &okto);
	const int64_t big = (int64_t)1 << 60;
	int ok = mount && prefix && ident && okt && pt >= 0 &&
	    sscanf(ident, "%" SCNx64, &r->ident) == 1 && ttl >= 0 &&
	    ttl <= POLICY_TTL_MAX && (!okb || (bytes >= 0 && bytes <= big)) &&
	    (!okto || (total >= 0 && total <= big)) &&
	    strlen(mount) <= MOUNT_NAME_MAX && strlen(prefix) <= UFS_KEY_MAX;
	if (ok) {
		snprintf(r->mount, sizeof(r->mount), "%s", mount);
		r->prefix = prefix;
		prefix = NULL;
		r->pin = json_bool(d, pt) == 1;
		r->ttl = ttl;
		r->bytes = okb ? bytes : 0;
		r->total = okto ? total : 0;
	}
	int sh = ok ? json_obj_get(d, t, "shares") : -1;
	int nsh = sh >= 0 && d->toks[sh].type == JSON_ARRAY ? d->toks[sh].size : 0;
	if (nsh > POLICY_SHARES_MAX)
		ok = 0;
	if (ok && nsh > 0 && !(r->sh = calloc((size_t)nsh, sizeof(*r->sh))))
		ok = 0;
	for (int i = 0; ok && i < nsh; i++) {
		int e = json_arr_get(d, sh, i), okn = 0;
		char *id = json_str(d, json_obj_get(d, e, "worker"));
		int64_t n = json_int(d, json_obj_get(d, e, "bytes"), &okn);
		if (id && okn && n >= 0 && n <= big && strlen(id) <= POLICY_WORKER_ID_MAX) {
			snprintf(r->sh[r->nsh].id, sizeof(r->sh[r->nsh].id), "%s", id);
			r->sh[r->nsh++].bytes = n;
		} else {
			ok = 0;
		}
		free(id);
	}
	free(mount);
	free(ident);
	free(prefix);
	if (!ok) {
		rule_free(r);
		return -1;
	}
	return 0;
}

/* The rules as JSON into b (the lock held, either way); with ident for
 * the file, without for clients. */
static void
do_rules_json(struct policy *p, struct dbuf *b, int with_ident)
{
	dbuf_adds(b, "{\"rules\":[");
	for (int i = 0; i < p->n; i++) {
		const struct rule *r = &p->r[i];
		dbuf_adds(b, i ? ",{\"mount\":" : "{\"mount\":");
		json_put_str(b, r->mount);
		rule_fields_json(r, b, with_ident);
		dbuf_adds(b, "}");
	}
	dbuf_adds(b, "]}");
}

/* Writes b to p->path, fsynced, renamed into place (no lock held: an
 * fsync must not stall the classifier, which the page store calls under
 * its own lock).  0 or -errno. */
static int
save_file(struct policy *p, struct dbuf *b)
{
	if (dbuf_error(b))
		return -ENOMEM;
	int rc = write_file_atomic(AT_FDCWD, p->path, b->p, b->len, 1);
	if (rc < 0) {
		LOG_WARN("policy: cannot save %s: %s", p->path, strerror(-rc));
	}
	return rc;
}

static int
do_find(struct policy *p, uint64_t ident, const char *prefix)
{
	for (int i = 0; i < p->n; i++)
		if (p->r[i].ident == ident && strcmp(p->r[i].prefix, prefix) == 0)
			return i;
	return -1;
}

/* Takes r (wrlock held, or before the policy is shared): 0 or -ENOSPC /
 * -ENOMEM (r untouched). */
static int
do_insert(struct policy *p, struct rule *r)
{
	if (p->n >= POLICY_RULES_MAX)
		return -ENOSPC;
	if (p->n == p->cap) {
		int nc = p->cap ? p->cap * 2 : 16;
		struct rule *nr = realloc(p->r, (size_t)nc * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		p->r = nr;
		p->cap = nc;
	}
	p->r[p->n++] = *r;
	return 0;
}

/* Adds an empty rule (wrlock held): its index, or -ENOSPC/-ENOMEM. */
static int
do_add(struct policy *p, const char *mount, uint64_t ident, const char *prefix)
{
	struct rule r = {.ident = ident};
	snprintf(r.mount, sizeof(r.mount), "%s", mount);
	if (!(r.prefix = strdup(prefix)))
		return -ENOMEM;
	int rc = do_insert(p, &r);
	if (rc < 0) {
		free(r.prefix);
		return rc;
	}
	return p->n - 1;
}

static void
do_remove(struct policy *p, int i)
{
	rule_free(&p->r[i]);
	p->r[i] = p->r[--p->n];
}

static int
load(struct policy *p, char **err)
{
	FILE *f = fopen(p->path, "r");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		*err = strdup("cannot read the policy file");
		return -1;
	}
	struct dbuf b;
	dbuf_init(&b, (size_t)64 << 20);
	char chunk[8192];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		dbuf_add(&b, chunk, got);
	fclose(f);
	struct json_doc d;
	int rc = -1;
	if (!dbuf_error(&b) && json_parse(&d, b.p ? b.p : "", b.len) == 0) {
		int rules = json_obj_get(&d, 0, "rules");
		rc = rules >= 0 && d.toks[rules].type == JSON_ARRAY ? 0 : -1;
		for (int i = 0; rc == 0 && i < (rules >= 0 ? d.toks[rules].size : 0); i++) {
			struct rule r;
			if (rule_parse(&d, json_arr_get(&d, rules, i), &r) < 0 ||
			    do_find(p, r.ident, r.prefix) >= 0 || do_insert(p, &r) < 0) {
				rule_free(&r);
				rc = -1;
			}
		}
		json_free(&d);
	}
	dbuf_free(&b);
	if (rc < 0) {
		char msg[4200];
		snprintf(msg, sizeof(msg), "%s is not a valid policy file (move it away to start without pins and TTLs)", p->path);
		*err = strdup(msg);
	}
	return rc;
}

struct policy *
policy_open(const char *path, char **err)
{
	*err = NULL;
	struct policy *p = calloc(1, sizeof(*p));
	if (!p || !(p->path = strdup(path))) {
		free(p);
		*err = strdup("out of memory");
		return NULL;
	}
	pthread_rwlock_init(&p->lock, NULL);
	pthread_mutex_init(&p->change_mu, NULL);
	pthread_mutex_init(&p->stop_mu, NULL);
	pthread_cond_init(&p->stop_cv, NULL);
	if (load(p, err) < 0) {
		policy_close(&p);
		return NULL;
	}
	return p;
}

/* The store's classifier (under the store's lock). */
static void
classify(void *arg, uint64_t group, const char *path, int *pinned,
    uint32_t *ttl_s)
{
	struct policy *p = arg;
	int pin = 0;
	int64_t ttl = 0;
	pthread_rwlock_rdlock(&p->lock);
	for (int i = 0; i < p->n; i++) {
		const struct rule *r = &p->r[i];
		if (r->ident != group || !path_under(path, r->prefix))
			continue;
		pin |= r->pin;
		if (r->ttl && (!ttl || r->ttl < ttl))
			ttl = r->ttl; /* the shortest TTL that covers it */
	}
	pthread_rwlock_unlock(&p->lock);
	*pinned = pin;
	*ttl_s = (uint32_t)ttl;
}

static void *
ttl_thread(void *arg)
{
	struct policy *p = arg;
	pthread_mutex_lock(&p->stop_mu);
	while (!p->stopping) {
		pthread_mutex_unlock(&p->stop_mu);
		int64_t freed = pagestore_expire(p->ps, (uint32_t)wall_sec());
		if (freed > 0)
			LOG_INFO("policy: %" PRId64 " bytes dropped at the end of their TTL", freed);
		pthread_mutex_lock(&p->stop_mu);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		if (!p->stopping)
			pthread_cond_timedwait(&p->stop_cv, &p->stop_mu, &ts);
	}
	pthread_mutex_unlock(&p->stop_mu);
	return NULL;
}

int
policy_attach(struct policy *p, struct pagestore *ps)
{
	p->ps = ps;
	pagestore_set_classifier(ps, classify, p);
	if (pthread_create(&p->thr, NULL, ttl_thread, p) != 0)
		return -EAGAIN;
	p->running = 1;
	return 0;
}

void
policy_close(struct policy **pp)
{
	struct policy *p = *pp;
	if (!p)
		return;
	*pp = NULL;
	if (p->running) {
		pthread_mutex_lock(&p->stop_mu);
		p->stopping = 1;
		pthread_cond_signal(&p->stop_cv);
		pthread_mutex_unlock(&p->stop_mu);
		pthread_join(p->thr, NULL);
	}
	if (p->ps)
		pagestore_set_classifier(p->ps, NULL, NULL);
	for (int i = 0; i < p->n; i++)
		rule_free(&p->r[i]);
	free(p->r);
	free(p->path);
	pthread_rwlock_destroy(&p->lock);
	pthread_mutex_destroy(&p->change_mu);
	pthread_mutex_destroy(&p->stop_mu);
	pthread_cond_destroy(&p->stop_cv);
	free(p);
}

static int do_change(struct policy *p, const struct mount *m, const char *prefix,
    int pin, int64_t ttl, int64_t bytes);

/*
 * Sets rule (m, prefix)'s pin (pin >= 0) or TTL (ttl >= 0), saves, and
 * then classifies the objects under prefix again.
 */
static int
change(struct policy *p, const struct mount *m, const char *prefix, int pin,
    int64_t ttl, int64_t bytes)
{
	pthread_mutex_lock(&p->change_mu);
	int rc = do_change(p, m, prefix, pin, ttl, bytes);
	pthread_mutex_unlock(&p->change_mu);
	if (rc == 0 && p->ps)
		pagestore_reclassify(p->ps, m->ident, prefix);
	return rc;
}

/* change() with change_mu held: the rule changed under the write lock,
 * saved without it, undone if it could not be saved. */
static int
do_change(struct policy *p, const struct mount *m, const char *prefix, int pin,
    int64_t ttl, int64_t bytes)
{
	pthread_rwlock_wrlock(&p->lock);
	int i = do_find(p, m->ident, prefix), made = 0;
	if (i < 0) {
		if (pin <= 0 && ttl <= 0) {
			pthread_rwlock_unlock(&p->lock);
			return -ENOENT;
		}
		i = do_add(p, m->name, m->ident, prefix);
		if (i < 0) {
			pthread_rwlock_unlock(&p->lock);
			return i;
		}
		made = 1;
	}
	struct rule old = p->r[i];
	if (pin >= 0) {
		if (!pin && !old.pin && !made) {
			pthread_rwlock_unlock(&p->lock);
			return -ENOENT;
		}
		p->r[i].pin = pin;
	}
	if (ttl == 0 && !old.ttl && !made) {
		pthread_rwlock_unlock(&p->lock);
		return -ENOENT; /* no TTL to clear */
	}
	if (pin > 0 && (made || !old.pin))
		p->r[i].bytes = bytes; /* a pin made again keeps its size */
	if (ttl >= 0)
		p->r[i].ttl = ttl;
	int gone = !p->r[i].pin && !p->r[i].ttl;
	struct rule saved = p->r[i];
	if (gone) {
		saved.prefix = NULL; /* p->r[i].prefix is freed by do_remove */
		char *keep = strdup(p->r[i].prefix);
		if (!keep) {
			p->r[i] = old;
			pthread_rwlock_unlock(&p->lock);
			return -ENOMEM;
		}
		saved.prefix = keep;
		do_remove(p, i);
	}
	struct dbuf b;
	dbuf_init(&b, (size_t)64 << 20);
	do_rules_json(p, &b, 1);
	dbuf_adds(&b, "\n");
	pthread_rwlock_unlock(&p->lock);
	int rc = save_file(p, &b);
	dbuf_free(&b);
	pthread_rwlock_wrlock(&p->lock);
	if (rc < 0) {
		/* Undo: the rules on disk are the rules in memory (change_mu
		 * kept every other change out meanwhile, so i is still it). */
		if (gone) {
			int k = do_add(p, saved.mount, saved.ident, saved.prefix);
			if (k >= 0) {
				p->r[k].pin = old.pin;
				p->r[k].ttl = old.ttl;
				p->r[k].bytes = old.bytes;
			}
		} else if (made) {
			do_remove(p, i);
		} else {
			p->r[i].pin = old.pin;
			p->r[i].ttl = old.ttl;
			p->r[i].bytes = old.bytes;
		}
	}
	pthread_rwlock_unlock(&p->lock);
	if (gone)
		free(saved.prefix);
	return rc < 0 ? -EIO : 0;
}

int
policy_pin(struct policy *p, const struct mount *m, const char *prefix, int on,
    int64_t bytes)
{
	return change(p, m, prefix, on ? 1 : 0, -1, bytes);
}

/* Is pin i under another pin (lock held)?  Then the outer one holds its
 * data: nested pins are counted once. */
static int
do_nested(const struct policy *p, uint64_t ident, const char *prefix, int self)
{
	for (int k = 0; k < p->n; k++)
		if (k != self && p->r[k].pin && p->r[k].ident == ident &&
		    strcmp(p->r[k].prefix, prefix) != 0 && path_under(prefix, p->r[k].prefix))
			return 1;
	return 0;
}

static int64_t do_share_of(const struct rule *r, const char *id);

int64_t
policy_pinned_after(struct policy *p, const char *id, uint64_t ident,
    const char *prefix, int64_t bytes)
{
	int64_t sum = 0;
	pthread_rwlock_rdlock(&p->lock);
	int have = prefix ? do_find(p, ident, prefix) : -1;
	int add = prefix && !(have >= 0 && p->r[have].pin) && !do_nested(p, ident, prefix, -1);
	for (int i = 0; i < p->n; i++) {
		const struct rule *r = &p->r[i];
		if (!r->pin || do_nested(p, r->ident, r->prefix, i))
			continue;
		if (add && r->ident == ident && path_under(r->prefix, prefix))
			continue; /* the new pin holds it */
		sum += id ? do_share_of(r, id) : r->bytes;
	}
	pthread_rwlock_unlock(&p->lock);
	return sum + (add ? bytes : 0);
}

int64_t
policy_pinned_total(struct policy *p)
{
	return policy_pinned_after(p, NULL, 0, NULL, 0);
}

int
policy_ttl(struct policy *p, const struct mount *m, const char *prefix,
    int64_t ttl_s)
{
	if (ttl_s < 0 || ttl_s > POLICY_TTL_MAX)
		return -EINVAL;
	return change(p, m, prefix, -1, ttl_s, 0);
}

int
policy_is_pinned(struct policy *p, uint64_t ident, const char *path)
{
	int pin = 0;
	pthread_rwlock_rdlock(&p->lock);
	for (int i = 0; i < p->n && !pin; i++)
		pin = p->r[i].pin && p->r[i].ident == ident &&
		    path_under(path, p->r[i].prefix);
	pthread_rwlock_unlock(&p->lock);
	return pin;
}

int
policy_pins_under(struct policy *p, uint64_t ident, const char *prefix)
{
	int pin = 0;
	pthread_rwlock_rdlock(&p->lock);
	for (int i = 0; i < p->n && !pin; i++)
		pin = p->r[i].pin && p->r[i].ident == ident &&
		    (path_under(prefix, p->r[i].prefix) ||
			path_under(p->r[i].prefix, prefix));
	pthread_rwlock_unlock(&p->lock);
	return pin;
}

void
policy_json(struct policy *p, struct dbuf *b)
{
	pthread_rwlock_rdlock(&p->lock);
	do_rules_json(p, b, 0);
	pthread_rwlock_unlock(&p->lock);
}

/* ---- the cluster's rules (etcd's rules/ table) -------------------------- */

void
policy_set_self(struct policy *p, const char *worker_id)
{
	pthread_rwlock_wrlock(&p->lock);
	snprintf(p->self, sizeof(p->self), "%s", worker_id ? worker_id : "");
	pthread_rwlock_unlock(&p->lock);
}

void
policy_record_name(uint64_t ident, const char *prefix, char name[17])
{
	snprintf(name, 17, "%016" PRIx64, hash64(prefix, strlen(prefix), ident ^ 0x72756c65ull));
}

/* What rule r holds on this worker (lock held): its share, or the mean
 * share when it names others only, or its own bytes (no shares). */
static int64_t
do_share_of(const struct rule *r, const char *id)
{
	if (!r->nsh)
		return r->bytes;
	for (int i = 0; i < r->nsh; i++)
		if (strcmp(r->sh[i].id, id) == 0)
			return r->sh[i].bytes;
	return r->total / r->nsh;
}

int64_t
policy_pinned_share(struct policy *p, const char *id)
{
	return policy_pinned_after(p, id, 0, NULL, 0);
}

int
policy_record_after(struct policy *p, const struct mount *m, const char *prefix,
    int pin, int64_t ttl, int64_t total, const struct policy_share_in *sh,
    int nsh, struct dbuf *b, char name[17])
{
	if (ttl > POLICY_TTL_MAX || nsh > POLICY_SHARES_MAX)
		return -EINVAL;
	policy_record_name(m->ident, prefix, name);
	struct rule r = {0};
	pthread_rwlock_rdlock(&p->lock);
	int i = do_find(p, m->ident, prefix);
	if (i >= 0) {
		r = p->r[i]; /* borrowed: copied out below before the unlock */
	} else {
		snprintf(r.mount, sizeof(r.mount), "%s", m->name);
		r.ident = m->ident;
	}
	int rc = 0;
	if ((pin == 0 && !r.pin) || (ttl == 0 && !r.ttl))
		rc = -ENOENT; /* no pin to remove, no TTL to clear */
	if (pin > 0 && !r.pin) {
		/* A pin made now: its size now.  A pin made again keeps its. */
		r.total = total;
		r.bytes = total;
		r.sh = NULL;
		r.nsh = 0;
	}
	if (pin >= 0)
		r.pin = pin;
	if (ttl >= 0)
		r.ttl = ttl;
	if (!r.pin) {
		r.total = r.bytes = 0;
		r.sh = NULL;
		r.nsh = 0;
	}
	if (rc == 0 && (r.pin || r.ttl)) {
		dbuf_adds(b, "{\"mount\":");
		json_put_str(b, r.mount);
		r.prefix = (char *)prefix;
		if (!(pin > 0 && !(i >= 0 && p->r[i].pin))) {
			rule_fields_json(&r, b, 1); /* its shares as they are */
		} else { /* a pin made now: the shares given */
			struct rule t = r;
			t.sh = NULL;
			t.nsh = 0;
			rule_fields_json(&t, b, 1);
			if (r.pin && nsh > 0) {
				dbuf_printf(b, ",\"total\":%" PRId64 ",\"shares\":[", r.total);
				for (int k = 0; k < nsh; k++)
					dbuf_printf(b, "%s{\"worker\":\"%s\",\"bytes\":%" PRId64 "}",
					    k ? "," : "", sh[k].id, sh[k].bytes);
				dbuf_adds(b, "]");
			}
		}
		dbuf_adds(b, "}");
	}
	pthread_rwlock_unlock(&p->lock);
	if (rc == 0 && dbuf_error(b))
		rc = -ENOMEM;
	return rc;
}

/* Saves the rules (change_mu held). */
static int
do_save(struct policy *p)
{
	struct dbuf b;
	dbuf_init(&b, (size_t)64 << 20);
	pthread_rwlock_rdlock(&p->lock);
	do_rules_json(p, &b, 1);
	dbuf_adds(&b, "\n");
	pthread_rwlock_unlock(&p->lock);
	int rc = save_file(p, &b);
	dbuf_free(&b);
	return rc;
}

int
policy_apply_record(struct policy *p, const char *name, const char *json, size_t n)
{
	struct rule r = {0};
	if (json) {
		struct json_doc d;
		if (json_parse(&d, json, n) != 0)
			return -EINVAL;
		int bad = rule_parse(&d, 0, &r) < 0;
		json_free(&d);
		if (bad)
			return -EINVAL;
		char want[17];
		policy_record_name(r.ident, r.prefix, want);
		if (strcmp(want, name) != 0 || (!r.pin && !r.ttl)) {
			rule_free(&r);
			return -EINVAL; /* not the record of its own rule */
		}
	}
	pthread_mutex_lock(&p->change_mu);
	pthread_rwlock_wrlock(&p->lock);
	int i = -1;
	for (int k = 0; k < p->n && i < 0; k++) {
		char nm[17];
		policy_record_name(p->r[k].ident, p->r[k].prefix, nm);
		if (strcmp(nm, name) == 0)
			i = k;
	}
	uint64_t ident = 0;
	char *prefix = NULL;
	int rc = 0;
	if (!json) {
		if (i >= 0) {
			ident = p->r[i].ident;
			prefix = strdup(p->r[i].prefix);
			do_remove(p, i);
		}
	} else {
		r.bytes = r.pin ? do_share_of(&r, p->self) : 0;
		r.seen = 1;
		ident = r.ident;
		prefix = strdup(r.prefix);
		if (i >= 0) {
			rule_free(&p->r[i]);
			p->r[i] = r;
		} else if ((rc = do_insert(p, &r)) < 0) {
			rule_free(&r);
		}
	}
	pthread_rwlock_unlock(&p->lock);
	if (rc == 0 && prefix && do_save(p) < 0)
		rc = -EIO; /* applied; kept in etcd, and saved at the next change */
	pthread_mutex_unlock(&p->change_mu);
	if (prefix && p->ps)
		pagestore_reclassify(p->ps, ident, prefix);
	free(prefix);
	return rc;
}

void
policy_sync_begin(struct policy *p)
{
	pthread_rwlock_wrlock(&p->lock);
	for (int i = 0; i < p->n; i++)
		p->r[i].seen = 0;
	pthread_rwlock_unlock(&p->lock);
}

void
policy_sync_end(struct policy *p)
{
	for (;;) {
		char name[17] = "";
		pthread_rwlock_rdlock(&p->lock);
		for (int i = 0; i < p->n && !name[0]; i++)
			if (!p->r[i].seen)
				policy_record_name(p->r[i].ident, p->r[i].prefix, name);
		pthread_rwlock_unlock(&p->lock);
		if (!name[0])
			break;
		LOG_INFO("policy: a rule kept here is not in the cluster's rules: dropped");
		policy_apply_record(p, name, NULL, 0);
	}
}
