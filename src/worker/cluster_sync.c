/*
 * cluster_sync.c: a worker's pins, TTLs and load jobs kept in step with the
 * cluster's (etcd's rules/ and loads/ tables; cluster.h).  A rule or a job
 * is made by the worker a client asked (control_cache.c), which puts its
 * record in etcd and applies it; every worker, that one included, applies
 * what etcd holds from the cluster's watch thread: a rule to its policy, a
 * running job by starting its own share of it (the blocks placement gives
 * it), a stopped one by stopping it.  So a worker that joins later, or
 * restarts with an empty state dir, takes up the rules and the running
 * jobs, and a job's record outlives any one worker.
 *
 * Each worker's part of a job ends with its record put as
 * loads/<id>.<worker id>; the worker whose part ends last (every current
 * member's part ended) marks the job's own record done or failed, so a
 * worker joining afterwards does not load it again.
 *
 * Threads: on_rule/on_load run on the cluster's watch thread; the end hook
 * on a job's lister thread.  Records seen before the worker has joined
 * (the first listing, inside cluster_open) wait in `pending` until
 * csync_joined, so that no job starts before reads are routed.
 */
#include "cluster_sync.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json.h"
#include "../common/log.h"
#include "../common/util.h"
#include "loader.h"
#include "policy.h"
#include "worker.h"

struct pending {
	char *name;
	char *json;
	size_t n;
	struct pending *next;
};

static pthread_mutex_t pend_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pending *pend_head;
static int joined; /* pend_mu */

void
csync_on_rule(void *arg, const char *name, const char *json, size_t n)
{
	struct worker *w = arg;
	int r = policy_apply_record(w->pol, name, json, n);
	if (r == -EINVAL)
		LOG_WARN("cluster: rules/%s is not a rule's record: ignored", name);
	else if (r < 0)
		LOG_WARN("cluster: rules/%s: %s", name, strerror(-r));
}

int
csync_load_record(const char *json, size_t n, struct csync_load *out)
{
	memset(out, 0, sizeof(*out));
	struct json_doc d;
	if (json_parse(&d, json, n) != 0)
		return -EINVAL;
	char *id = json_str(&d, json_obj_get(&d, 0, "id"));
	char *mount = json_str(&d, json_obj_get(&d, 0, "mount"));
	char *key = json_str(&d, json_obj_get(&d, 0, "key"));
	char *state = json_str(&d, json_obj_get(&d, 0, "state"));
	int okb = 0, okp = 0, okr = 0;
	int64_t reps = json_int(&d, json_obj_get(&d, 0, "replicas"), &okr);
	int64_t bw = json_int(&d, json_obj_get(&d, 0, "bandwidth"), &okb);
	int64_t par = json_int(&d, json_obj_get(&d, 0, "parallel"), &okp);
	int ver = json_bool(&d, json_obj_get(&d, 0, "verify")) == 1;
	int ok = id && mount && key && state && strlen(id) == 16 &&
	    strspn(id, "0123456789abcdef") == 16 && strlen(mount) <= MOUNT_NAME_MAX &&
	    strlen(key) <= UFS_KEY_MAX && strlen(state) < sizeof(out->state) &&
	    okb && bw >= 0 && okp && par >= 1 && par <= LOAD_PARALLEL_MAX &&
	    (!okr || (reps >= 0 && reps <= MOUNT_REPLICAS_MAX));
	if (ok) {
		snprintf(out->id, sizeof(out->id), "%s", id);
		snprintf(out->mount, sizeof(out->mount), "%s", mount);
		snprintf(out->key, sizeof(out->key), "%s", key);
		snprintf(out->state, sizeof(out->state), "%s", state);
		out->bandwidth = bw;
		out->parallel = (int)par;
		out->verify = ver;
		out->replicas = okr ? (int)reps : 0;
	}
	free(id);
	free(mount);
	free(key);
	free(state);
	json_free(&d);
	return ok ? 0 : -EINVAL;
}

void
csync_load_json(const struct csync_load *j, struct dbuf *b)
{
	dbuf_printf(b, "{\"id\":\"%s\",\"mount\":", j->id);
	json_put_str(b, j->mount);
	dbuf_adds(b, ",\"key\":");
	json_put_str(b, j->key);
	dbuf_printf(b, ",\"state\":\"%s\",\"bandwidth\":%" PRId64 ",\"parallel\":%d"
	    ",\"replicas\":%d,\"verify\":%s}", j->state, j->bandwidth, j->parallel,
	    j->replicas, j->verify ? "true" : "false");
}

/* ---- the parts of a job: each worker's record ------------------------- */

struct parts {
	const char *id;
	struct cluster_view *v;
	int *ended;     /* per member of v */
	int failed;
	int running;    /* members whose part runs (their start record) */
	int *seen;      /* per member of v: it has a part record */
	int have_job;
	struct csync_load job;
};

static int
part_fn(void *arg, const char *name, size_t nlen, const char *json, size_t n)
{
	struct parts *ps = arg;
	if (nlen == 16) {
		ps->have_job = csync_load_record(json, n, &ps->job) == 0;
		return 0;
	}
	if (nlen != 17 + CLUSTER_ID_MAX || name[16] != '.')
		return 0;
	char wid[CLUSTER_ID_MAX + 1];
	memcpy(wid, name + 17, CLUSTER_ID_MAX);
	wid[CLUSTER_ID_MAX] = 0;
	int i = cluster_view_find(ps->v, wid);
	if (i < 0)
		return 0;
	if (ps->seen)
		ps->seen[i] = 1;
	struct json_doc d;
	if (json_parse(&d, json, n) != 0)
		return 0;
	char *st = json_str(&d, json_obj_get(&d, 0, "state"));
	if (st && (strcmp(st, "done") == 0 || strcmp(st, "failed") == 0)) {
		if (ps->ended)
			ps->ended[i] = 1;
		ps->failed |= strcmp(st, "failed") == 0;
	} else if (st && strcmp(st, "running") == 0) {
		ps->running++;
	}
	free(st);
	json_free(&d);
	return 0;
}

/*
 * The job's cap is the whole cluster's: each running part takes an equal
 * share of it, and when a part starts or ends (its record under
 * loads/<id>.<worker>) the running ones share it again, so parts that
 * placement gave fewer bytes do not leave their share unused when they are
 * done.
 */
static void
reshare(struct worker *w, struct cluster *cl, const char *id)
{
	struct parts ps = {.id = id, .v = cluster_view_get(cl)};
	ps.seen = calloc((size_t)(ps.v->n ? ps.v->n : 1), sizeof(int));
	if (ps.seen && cluster_record_list(cl, CLUSTER_T_LOAD, id, part_fn, &ps) == 0 &&
	    ps.have_job && ps.job.bandwidth > 0) {
		/* Members not heard from yet are about to start theirs. */
		int n = ps.running;
		for (int i = 0; i < ps.v->n; i++)
			n += !ps.seen[i];
		n = n > 0 ? n : 1;
		int64_t bw = (ps.job.bandwidth + n - 1) / n;
		if (loader_set_bandwidth(w->ld, id, bw))
			LOG_DEBUG("load %s: %d part(s) running: %" PRId64 " bytes/s here",
			    id, n, bw);
	}
	free(ps.seen);
	cluster_view_release(&ps.v);
}

/* Puts this worker's part record (state and counts) as loads/<id>.<self>. */
static int
put_part(struct worker *w, struct cluster *cl, const char *id, const char *record)
{
	char name[17 + CLUSTER_ID_MAX + 1];
	snprintf(name, sizeof(name), "%s.%s", id, w->id);
	return cluster_record_put(cl, CLUSTER_T_LOAD, name, record, strlen(record));
}

int
csync_load_start_here(struct worker *w, const struct csync_load *j)
{
	struct mount *m = mounts_get(w->mt, j->mount, strlen(j->mount));
	if (!m)
		return -ENOENT;
	struct cluster *cl = worker_cluster(w);
	int nm = 1;
	if (cl) {
		struct cluster_view *v = cluster_view_get(cl);
		nm = v->n > 0 ? v->n : 1;
		cluster_view_release(&v);
	}
	/* Each worker pulls at its share of the job's cap. */
	struct load_opts o = {.parallel = j->parallel, .verify = j->verify,
	    .local = 1, .replicas = j->replicas, .bandwidth = j->bandwidth > 0 ? (j->bandwidth + nm - 1) / nm : 0};
	snprintf(o.id, sizeof(o.id), "%s", j->id);
	char id[17];
	int r = loader_start(w->ld, m, j->key, &o, id);
	mount_release(&m);
	if (r == 0 && cl && put_part(w, cl, j->id, "{\"state\":\"running\"}") < 0)
		LOG_WARN("load %s: cannot record this worker's part in etcd", j->id);
	if (r == -EEXIST && strcmp(id, j->id) != 0)
		LOG_WARN("load %s: /%s/%s is being loaded here already (job %s)", j->id,
		    j->mount, j->key, id);
	return r == -EEXIST ? 0 : r;
}

static void
apply_load(struct worker *w, const char *name, const char *json, size_t n)
{
	if (!json)
		return; /* a deleted job */
	if (strchr(name, '.')) {
		/* A part started or ended: the running parts share the cap. */
		struct cluster *cl = worker_cluster(w);
		char id[17];
		if (cl && strlen(name) > 17 && name[16] == '.') {
			memcpy(id, name, 16);
			id[16] = 0;
			if (loader_has(w->ld, id))
				reshare(w, cl, id);
		}
		return;
	}
	struct csync_load j;
	if (csync_load_record(json, n, &j) < 0 || strcmp(j.id, name) != 0) {
		LOG_WARN("cluster: loads/%s is not a load job's record: ignored", name);
		return;
	}
	int have = loader_has(w->ld, j.id);
	if (strcmp(j.state, "running") == 0 && !have) {
		int r = csync_load_start_here(w, &j);
		if (r < 0)
			LOG_WARN("load %s: cannot take up the cluster's job for /%s/%s: %s",
			    j.id, j.mount, j.key, strerror(-r));
		else
			LOG_INFO("load %s: taking up the cluster's job for /%s/%s", j.id,
			    j.mount, j.key);
	} else if (strcmp(j.state, "stopped") == 0 && have) {
		loader_stop(w->ld, j.id);
	}
}

void
csync_on_load(void *arg, const char *name, const char *json, size_t n)
{
	struct worker *w = arg;
	pthread_mutex_lock(&pend_mu);
	if (!joined) {
		struct pending *p = calloc(1, sizeof(*p));
		if (p && (p->name = strdup(name)) && (!json || (p->json = malloc(n ? n : 1)))) {
			if (json)
				memcpy(p->json, json, n);
			p->n = n;
			p->next = pend_head;
			pend_head = p;
		} else if (p) {
			free(p->name);
			free(p);
		}
		pthread_mutex_unlock(&pend_mu);
		return;
	}
	pthread_mutex_unlock(&pend_mu);
	apply_load(w, name, json, n);
}

void
csync_joined(struct worker *w)
{
	pthread_mutex_lock(&pend_mu);
	struct pending *p = pend_head;
	pend_head = NULL;
	joined = 1;
	pthread_mutex_unlock(&pend_mu);
	while (p) {
		struct pending *next = p->next;
		apply_load(w, p->name, p->json, p->n);
		free(p->name);
		free(p->json);
		free(p);
		p = next;
	}
}

/* ---- a worker's part of a job ended ------------------------------------ */

void
csync_load_ended(void *arg, const char *id, const char *state, const char *record)
{
	struct worker *w = arg;
	struct cluster *cl = worker_cluster(w);
	if (!cl || strcmp(state, "stopped") == 0)
		return; /* a stop resumes later; only an end is reported */
	int r = put_part(w, cl, id, record);
	if (r < 0) {
		LOG_WARN("load %s: cannot record this worker's end in etcd: %s", id, strerror(-r));
		return;
	}
	struct parts ps = {.id = id, .v = cluster_view_get(cl)};
	ps.ended = calloc((size_t)(ps.v->n ? ps.v->n : 1), sizeof(int));
	if (ps.ended && cluster_record_list(cl, CLUSTER_T_LOAD, id, part_fn, &ps) == 0 &&
	    ps.have_job && strcmp(ps.job.state, "running") == 0) {
		int all = 1;
		for (int i = 0; i < ps.v->n; i++)
			all &= ps.ended[i];
		if (all) {
			/* Every member's part ended: the job has. */
			snprintf(ps.job.state, sizeof(ps.job.state), "%s", ps.failed ? "failed" : "done");
			struct dbuf b;
			dbuf_init(&b, 16384);
			csync_load_json(&ps.job, &b);
			if (!dbuf_error(&b))
				cluster_record_put(cl, CLUSTER_T_LOAD, id, b.p, b.len);
			dbuf_free(&b);
			LOG_INFO("load %s: every worker's part ended: %s", id, ps.job.state);
		}
	}
	free(ps.ended);
	cluster_view_release(&ps.v);
}
