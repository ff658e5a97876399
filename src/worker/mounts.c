/*
 * mounts.c: the mount table (see mounts.h).
 *
 * Mounts are kept in a small array sorted by name (mount counts are tens,
 * not millions).  Changes rewrite the state file: write to a temporary
 * file, fsync, rename, so a crash leaves either the old or the new table.
 * Lock order: the table lock is a leaf; no other lock is taken under it
 * except inside the UFS open/close calls done outside it.
 */
#include "mounts.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "../common/vas.h"

#define MOUNTS_MAX 1024
#define STATE_FILE_MAX (16 * 1024 * 1024)

struct mount_table {
	pthread_rwlock_t lock;
	struct mount **v; /* sorted by name */
	int n;
	char *state_path; /* NULL: not persisted */
};

int
mount_name_valid(const char *name, size_t len)
{
	if (len < 1 || len > MOUNT_NAME_MAX)
		return 0;
	if (!islower((unsigned char)name[0]) && !isdigit((unsigned char)name[0]))
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!(islower(c) || isdigit(c) || c == '.' || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

int
mount_opt_is_secret(const char *key)
{
	static const char *const words[] = {"secret", "token", "password",
	    "passwd", "credential", "sas", "account_key", "private"};
	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (strcasestr(key, words[i]))
			return 1;
	return 0;
}

static void
mount_free(struct mount *m)
{
	if (!m)
		return;
	ufs_close(&m->ufs);
	for (int i = 0; i < m->nopts; i++) {
		free((char *)m->opts[i].key);
		/* Wipe secrets before freeing. */
		if (m->opts[i].value)
			memset((char *)m->opts[i].value, 0, strlen(m->opts[i].value));
		free((char *)m->opts[i].value);
	}
	free(m->opts);
	free(m->uri);
	free(m);
}

struct mount *
mount_ref(struct mount *m)
{
	__atomic_add_fetch(&m->refs, 1, __ATOMIC_ACQ_REL);
	return m;
}

void
mount_release(struct mount **mp)
{
	struct mount *m = *mp;
	*mp = NULL;
	if (m && __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
		mount_free(m);
}

static int
do_find(struct mount_table *mt, const char *name, size_t len, int *pos)
{
	int lo = 0, hi = mt->n;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		const char *mn = mt->v[mid]->name;
		size_t ml = strlen(mn);
		int c = memcmp(mn, name, ml < len ? ml : len);
		if (c == 0)
			c = ml < len ? -1 : ml > len ? 1 : 0;
		if (c == 0) {
			*pos = mid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return 0;
}

static int
do_save(struct mount_table *mt)
{
	if (!mt->state_path)
		return 0;
	struct dbuf b;
	dbuf_init(&b, STATE_FILE_MAX);
	dbuf_adds(&b, "{\"mounts\":[");
	for (int i = 0; i < mt->n; i++) {
		struct mount *m = mt->v[i];
		dbuf_adds(&b, i ? ",{\"name\":" : "{\"name\":");
		json_put_str(&b, m->name);
		dbuf_adds(&b, ",\"uri\":");
		json_put_str(&b, m->uri);
		dbuf_adds(&b, ",\"options\":{");
		for (int k = 0; k < m->nopts; k++) {
			if (k)
				dbuf_adds(&b, ",");
			json_put_str(&b, m->opts[k].key);
			dbuf_adds(&b, ":");
			json_put_str(&b, m->opts[k].value);
		}
		dbuf_adds(&b, "}}");
	}
	int r = dbuf_adds(&b, "]}\n");
	if (r) {
		dbuf_free(&b);
		return r;
	}
	r = write_file_atomic(AT_FDCWD, mt->state_path, b.p, b.len, 1);
	memset(b.p, 0, b.len); /* the file holds secrets; so did the buffer */
	dbuf_free(&b);
	if (r)
		LOG_ERR("mounts: cannot save %s: %s", mt->state_path, strerror(-r));
	return r;
}

/* 1 if the table has a working mount of that name with this URI and
 * options (in any order): applying it again would change nothing.  A
 * broken one (its backend failed to open) is not the same: applying it
 * again opens the backend again. */
static int
mounts_same(struct mount_table *mt, const char *name, const char *uri,
    const struct ufs_opt *opts, int nopts)
{
	pthread_rwlock_rdlock(&mt->lock);
	int pos, same = 0;
	if (do_find(mt, name, strlen(name), &pos)) {
		const struct mount *m = mt->v[pos];
		same = strcmp(m->uri, uri) == 0 && m->nopts == nopts &&
		    !ufs_open_error(m->ufs);
		for (int i = 0; same && i < nopts; i++) {
			int found = 0;
			for (int j = 0; j < m->nopts && !found; j++)
				found = strcmp(m->opts[j].key, opts[i].key) == 0 &&
				    strcmp(m->opts[j].value, opts[i].value) == 0;
			same = found;
		}
	}
	pthread_rwlock_unlock(&mt->lock);
	return same;
}

/*
 * Builds a mount and opens its backend.  If the backend fails to open: with
 * keep_broken (restoring the table at start: a NAS not mounted yet, a
 * store down) the mount is kept with a broken ufs (ufs_open_error says why), so
 * that it is not lost from the table; reads of it fail until it is mounted
 * again.  Otherwise NULL and *err.
 */
static struct mount *
mount_new(const char *name, const char *uri, const struct ufs_opt *opts,
    int nopts, int keep_broken, char **err)
{
	if (!ufs_lookup(uri, NULL)) {
		const char *sep = strstr(uri, "://");
		if (!sep || sep == uri || asprintf(err, "unsupported URI scheme "
		    "'%.*s' in '%s' (use file:///path or s3://bucket/prefix)",
		    (int)(sep - uri), uri, uri) < 0)
			*err = strdup("not a URI: use file:///path or s3://bucket/prefix");
		return NULL;
	}
	struct mount *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->uri = strdup(uri);
	m->opts = calloc((size_t)(nopts ? nopts : 1), sizeof(*m->opts));
	m->refs = 1;
	m->ident = hash64(uri, strlen(uri), 0x6d6f756e74ULL);
	if (!m->uri || !m->opts) {
		mount_free(m);
		return NULL;
	}
	for (int i = 0; i < nopts; i++) {
		m->opts[i].key = strdup(opts[i].key);
		m->opts[i].value = strdup(opts[i].value);
		m->nopts++;
		if (!m->opts[i].key || !m->opts[i].value) {
			mount_free(m);
			return NULL;
		}
	}
	/* Ferry's own options are taken out before the backend sees them. */
	m->replicas = 1;
	struct ufs_opt *bopts = calloc((size_t)(nopts ? nopts : 1), sizeof(*bopts));
	int nb = 0;
	if (!bopts) {
		mount_free(m);
		return NULL;
	}
	for (int i = 0; i < m->nopts; i++) {
		if (strcmp(m->opts[i].key, MOUNT_OPT_REPLICAS) == 0) {
			char *end;
			long v = strtol(m->opts[i].value, &end, 10);
			if (!m->opts[i].value[0] || *end || v < 1 || v > MOUNT_REPLICAS_MAX) {
				*err = strdup("option replicas: a number from 1 to 16");
				free(bopts);
				mount_free(m);
				return NULL;
			}
			m->replicas = (int)v;
		} else if (strcmp(m->opts[i].key, MOUNT_OPT_WRITE) == 0) {
			const char *v = m->opts[i].value;
			if (strcmp(v, "through") == 0)
				m->write_mode = MOUNT_WRITE_THROUGH;
			else if (strcmp(v, "around") == 0)
				m->write_mode = MOUNT_WRITE_AROUND;
			else if (strcmp(v, "back") == 0)
				m->write_mode = MOUNT_WRITE_BACK;
			else {
				*err = strdup("option write: through (the body goes to the under-store and "
				    "the cache), around (the under-store only) or back (acknowledged once "
				    "on local disk, uploaded in the background)");
				free(bopts);
				mount_free(m);
				return NULL;
			}
		} else if (strcmp(m->opts[i].key, MOUNT_OPT_QUOTA) == 0) {
			int64_t q = parse_size(m->opts[i].value);
			if (q <= 0) {
				*err = strdup("option quota: a size like 200G, 512M or 1T "
				    "(the most this mount may cache on each worker)");
				free(bopts);
				mount_free(m);
				return NULL;
			}
			m->quota = q;
		} else if (strcmp(m->opts[i].key, MOUNT_OPT_READONLY) == 0) {
			const char *v = m->opts[i].value;
			if (strcmp(v, "true") && strcmp(v, "false")) {
				*err = strdup("option readonly: true or false");
				free(bopts);
				mount_free(m);
				return NULL;
			}
			m->readonly = strcmp(v, "true") == 0;
		} else {
			bopts[nb++] = m->opts[i];
		}
	}
	int r = ufs_open(uri, bopts, nb, &m->ufs);
	free(bopts);
	if (!m->ufs) {
		mount_free(m);
		return NULL;
	}
	if (m->write_mode == MOUNT_WRITE_BACK) {
		int wr = ufs_set_writeback(m->ufs, m->ident, m->name, err);
		if (wr < 0) {
			if (keep_broken) {
				LOG_ERR("mount /%s (%s): %s; kept read-only", name,
				    uri, *err ? *err : strerror(-wr));
				m->readonly = 1;
			}
			if (!keep_broken) {
				mount_free(m);
				return NULL;
			}
			free(*err);
			*err = NULL;
		}
	}
	if (r < 0) {
		if (keep_broken) {
			LOG_ERR("mount /%s (%s) cannot be opened: %s; kept in the table, reads fail until it is mounted again",
			    name, uri, ufs_open_error(m->ufs));
			return m;
		}
		*err = strdup(ufs_open_error(m->ufs));
		mount_free(m);
		return NULL;
	}
	return m;
}

static int
check_stop(void *arg, const struct ufs_entry *e)
{
	return 1; /* one key is enough */
}

/* MOUNTS_CHECK: one listing of the root, as the first read would do. */
static int
mount_check(struct mount *m, char **err)
{
	int truncated = 0;
	int r = ufs_list(m->ufs, "", "/", "", 1, check_stop, NULL, &truncated);
	if (r >= 0)
		return 0;
	const char *why = ufs_last_error();
	if (why[0])
		*err = strdup(why);
	else if (asprintf(err, "%s: %s", m->uri, strerror(-r)) < 0)
		*err = NULL;
	LOG_INFO("mount /%s (%s) refused: the check failed: %s", m->name, m->uri,
	    *err ? *err : strerror(-r));
	return MOUNTS_ECHECK;
}

int
mounts_add(struct mount_table *mt, const char *name, const char *uri,
    const struct ufs_opt *opts, int nopts, int flags, char **err)
{
	*err = NULL;
	if (!mount_name_valid(name, strlen(name))) {
		*err = strdup("invalid mount name: use 1-63 of a-z 0-9 . - _, starting with a letter or digit");
		return -EINVAL;
	}
	for (int i = 0; i < nopts; i++) {
		if (!opts[i].key[0] || strlen(opts[i].key) > 128 ||
		    strlen(opts[i].value) > 4096) {
			*err = strdup("invalid option: keys 1-128 bytes, values up to 4096");
			return -EINVAL;
		}
	}
	if ((flags & MOUNTS_REPLACE) && mounts_same(mt, name, uri, opts, nopts))
		return 0;
	if (!(flags & MOUNTS_REPLACE)) {
		/* Taken: say so before opening (and checking) anything. */
		pthread_rwlock_rdlock(&mt->lock);
		int pos, taken = do_find(mt, name, strlen(name), &pos);
		pthread_rwlock_unlock(&mt->lock);
		if (taken) {
			*err = strdup("a mount with this name exists");
			return -EEXIST;
		}
	}
	/* Open the UFS outside the lock: it may touch the network.  A mount
	 * restored from the table is kept even if it fails. */
	struct mount *m = mount_new(name, uri, opts, nopts,
	    flags & MOUNTS_KEEP_BROKEN, err);
	if (!m)
		return -EINVAL;
	if ((flags & MOUNTS_CHECK) && !ufs_open_error(m->ufs)) {
		int cr = mount_check(m, err);
		if (cr) {
			mount_free(m);
			return cr;
		}
	}
	pthread_rwlock_wrlock(&mt->lock);
	int pos, r = 0;
	struct mount *old = NULL;
	if (do_find(mt, name, strlen(name), &pos)) {
		if (flags & MOUNTS_REPLACE) {
			old = mt->v[pos];
			mt->v[pos] = m;
			if (flags & MOUNTS_SAVE)
				do_save(mt);
		} else {
			r = -EEXIST;
		}
	} else if (mt->n >= MOUNTS_MAX) {
		r = -ENOSPC;
	} else {
		struct mount **v = realloc(mt->v, sizeof(*v) * (size_t)(mt->n + 1));
		if (!v) {
			r = -ENOMEM;
		} else {
			mt->v = v;
			memmove(&v[pos + 1], &v[pos], sizeof(*v) * (size_t)(mt->n - pos));
			v[pos] = m;
			mt->n++;
			if (flags & MOUNTS_SAVE)
				do_save(mt);
		}
	}
	pthread_rwlock_unlock(&mt->lock);
	if (old)
		mount_release(&old);
	if (r) {
		mount_free(m);
		*err = strdup(r == -EEXIST ? "a mount with this name exists" : strerror(-r));
	} else {
		LOG_INFO("mounted /%s -> %s (%d options)", name, uri, nopts);
	}
	return r;
}

int
mounts_remove(struct mount_table *mt, const char *name)
{
	pthread_rwlock_wrlock(&mt->lock);
	int pos;
	struct mount *m = NULL;
	if (do_find(mt, name, strlen(name), &pos)) {
		m = mt->v[pos];
		memmove(&mt->v[pos], &mt->v[pos + 1], sizeof(*mt->v) * (size_t)(mt->n - pos - 1));
		mt->n--;
		do_save(mt);
	}
	pthread_rwlock_unlock(&mt->lock);
	if (!m)
		return -ENOENT;
	LOG_INFO("unmounted /%s", name);
	mount_release(&m);
	return 0;
}

struct mount *
mounts_get(struct mount_table *mt, const char *name, size_t len)
{
	struct mount *m = NULL;
	pthread_rwlock_rdlock(&mt->lock);
	int pos;
	if (do_find(mt, name, len, &pos)) {
		m = mt->v[pos];
		__atomic_add_fetch(&m->refs, 1, __ATOMIC_ACQ_REL);
	}
	pthread_rwlock_unlock(&mt->lock);
	return m;
}

int
mounts_foreach(struct mount_table *mt, int (*fn)(void *, const struct mount *),
    void *arg)
{
	int r = 0;
	pthread_rwlock_rdlock(&mt->lock);
	for (int i = 0; i < mt->n && !r; i++)
		r = fn(arg, mt->v[i]);
	pthread_rwlock_unlock(&mt->lock);
	return r;
}

int
mounts_count(struct mount_table *mt)
{
	pthread_rwlock_rdlock(&mt->lock);
	int n = mt->n;
	pthread_rwlock_unlock(&mt->lock);
	return n;
}

static int
json_one(void *arg, const struct mount *m)
{
	struct dbuf *b = arg;
	if (b->len && b->p[b->len - 1] == '}')
		dbuf_adds(b, ",");
	dbuf_adds(b, "{\"name\":");
	json_put_str(b, m->name);
	dbuf_adds(b, ",\"uri\":");
	json_put_str(b, m->uri);
	dbuf_adds(b, ",\"state\":");
	const char *uerr = ufs_open_error(m->ufs);
	json_put_str(b, uerr ? "error" : "ok");
	if (uerr) {
		dbuf_adds(b, ",\"error\":");
		json_put_str(b, uerr);
	}
	dbuf_adds(b, ",\"options\":{");
	for (int k = 0; k < m->nopts; k++) {
		if (k)
			dbuf_adds(b, ",");
		json_put_str(b, m->opts[k].key);
		dbuf_adds(b, ":");
		json_put_str(b, mount_opt_is_secret(m->opts[k].key) ? "<redacted>" : m->opts[k].value);
	}
	return dbuf_adds(b, "}}");
}

int
mounts_json(struct mount_table *mt, struct dbuf *out)
{
	dbuf_adds(out, "{\"mounts\":[");
	int r = mounts_foreach(mt, json_one, out);
	if (!r)
		r = dbuf_adds(out, "]}");
	return r;
}

static int
load_state(struct mount_table *mt, char **err)
{
	int fd = open(mt->state_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		*err = strdup(strerror(errno));
		return -errno;
	}
	struct dbuf b;
	dbuf_init(&b, STATE_FILE_MAX);
	char tmp[65536];
	ssize_t n;
	int r = 0;
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		if ((r = dbuf_add(&b, tmp, (size_t)n)))
			break;
	close(fd);
	struct json_doc d;
	if (r || json_parse(&d, b.p ? b.p : "", b.len) < 0) {
		dbuf_free(&b);
		*err = strdup("mount table file is not valid JSON");
		return -EINVAL;
	}
	int arr = json_obj_get(&d, 0, "mounts");
	for (int i = 0; arr >= 0; i++) {
		int t = json_arr_get(&d, arr, i);
		if (t < 0)
			break;
		char *name = json_str(&d, json_obj_get(&d, t, "name"));
		char *uri = json_str(&d, json_obj_get(&d, t, "uri"));
		int ot = json_obj_get(&d, t, "options");
		struct ufs_opt opts[64];
		int nopts = 0;
		if (ot >= 0 && d.toks[ot].type == JSON_OBJECT) {
			int k = ot + 1;
			for (int j = 0; j < d.toks[ot].size && nopts < 64; j++) {
				opts[nopts].key = json_str(&d, k);
				opts[nopts].value = json_str(&d, k + 1);
				if (opts[nopts].key && opts[nopts].value)
					nopts++;
				else {
					free((char *)opts[nopts].key);
					free((char *)opts[nopts].value);
				}
				k = d.toks[k + 1].next;
			}
		}
		if (name && uri) {
			char *e = NULL;
			if (mounts_add(mt, name, uri, opts, nopts, MOUNTS_KEEP_BROKEN, &e) < 0) {
				LOG_ERR("mounts: cannot restore /%s (%s): %s", name, uri, e ? e : "?");
			}
			free(e);
		}
		for (int j = 0; j < nopts; j++) {
			free((char *)opts[j].key);
			memset((char *)opts[j].value, 0, strlen(opts[j].value));
			free((char *)opts[j].value);
		}
		free(name);
		free(uri);
	}
	json_free(&d);
	memset(b.p, 0, b.len);
	dbuf_free(&b);
	return 0;
}

struct mount_table *
mounts_open(const char *state_path, char **err)
{
	*err = NULL;
	struct mount_table *mt = calloc(1, sizeof(*mt));
	if (!mt)
		return NULL;
	pthread_rwlock_init(&mt->lock, NULL);
	if (state_path) {
		mt->state_path = strdup(state_path);
		if (load_state(mt, err) < 0) {
			mounts_close(&mt);
			return NULL;
		}
	}
	return mt;
}

void
mounts_close(struct mount_table **mtp)
{
	struct mount_table *mt = *mtp;
	*mtp = NULL;
	if (!mt)
		return;
	for (int i = 0; i < mt->n; i++)
		mount_release(&mt->v[i]);
	free(mt->v);
	free(mt->state_path);
	pthread_rwlock_destroy(&mt->lock);
	free(mt);
}

int
mounts_apply_json(struct mount_table *mt, const char *json, size_t n,
    int flags, char **name_out, char **err)
{
	*err = NULL;
	if (name_out)
		*name_out = NULL;
	struct json_doc d = {0};
	if (json_parse(&d, json, n) < 0 || d.toks[0].type != JSON_OBJECT) {
		json_free(&d);
		*err = strdup("a mount is a JSON object {\"name\":..., \"uri\":..., \"options\":{...}}");
		return -EINVAL;
	}
	char *name = json_str(&d, json_obj_get(&d, 0, "name"));
	char *uri = json_str(&d, json_obj_get(&d, 0, "uri"));
	struct ufs_opt opts[MOUNT_OPTS_MAX];
	int nopts = 0, bad = 0, r;
	int ck = json_obj_get(&d, 0, "check");
	if (ck >= 0 && d.toks[ck].type != JSON_BOOL)
		bad = 1;
	else if (ck >= 0 && !json_bool(&d, ck))
		flags &= ~MOUNTS_CHECK;
	int ot = json_obj_get(&d, 0, "options");
	if (ot >= 0) {
		if (d.toks[ot].type != JSON_OBJECT || d.toks[ot].size > MOUNT_OPTS_MAX) {
			bad = 1;
		} else {
			int k = ot + 1;
			for (int j = 0; j < d.toks[ot].size; j++) {
				opts[nopts].key = json_str(&d, k);
				opts[nopts].value = json_str(&d, k + 1);
				nopts++;
				if (!opts[nopts - 1].key || !opts[nopts - 1].value)
					bad = 1;
				k = d.toks[k + 1].next;
			}
		}
	}
	if (!name || !uri || bad) {
		*err = strdup("name and uri are required strings; options must be an object of strings; check a boolean");
		r = -EINVAL;
	} else {
		const char *nm = name[0] == '/' ? name + 1 : name;
		r = mounts_add(mt, nm, uri, opts, nopts, flags, err);
		if (r == 0 && name_out)
			*name_out = strdup(nm);
	}
	for (int i = 0; i < nopts; i++) {
		free((char *)opts[i].key);
		if (opts[i].value)
			memset((char *)opts[i].value, 0, strlen(opts[i].value));
		free((char *)opts[i].value);
	}
	free(name);
	free(uri);
	json_free(&d);
	return r;
}
