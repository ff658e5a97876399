/*
 * cmd_cluster.c: the ferry CLI's cluster views: `ferry workers` (each
 * member of the cluster with its address, state, capacity, use and hit
 * ratio; --json for the same as one object) and the cluster section of
 * `ferry stats`.  Main thread only.
 *
 * The member list is the view of the worker we talk to (GET /v1/cluster,
 * from etcd); each member's figures come from its own /v1/stats.  A member
 * that etcd lists but that does not answer is shown as unreachable.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/dbuf.h"
#include "common/json.h"
#include "common/util.h"

struct wrow {
	char id[40];
	char ctl[272];
	char s3[272];
	int self, up;
	int64_t capacity, used, hit, miss, pages, uptime;
};

struct cview {
	char name[80];
	int etcd_ok;
	int64_t block_size;
	int n;
	struct wrow *w;
};

static int64_t
num(const struct json_doc *d, int obj, const char *key)
{
	int ok = 0;
	int64_t v = json_int(d, json_obj_get(d, obj, key), &ok);
	return ok ? v : -1;
}

static void
copy_str(const struct json_doc *d, int obj, const char *key, char *out, size_t n)
{
	char *s = json_str(d, json_obj_get(d, obj, key));
	snprintf(out, n, "%s", s ? s : "");
	free(s);
}

/* The worker's GET /v1/cluster, parsed into *d (its text in *text; free
 * both).  0, or a negative errno. */
static int
cluster_doc(const struct cli *c, struct json_doc *d, char **text)
{
	*text = NULL;
	ferry_t *f;
	int r = ferry_connect(c->worker, c->token, &f);
	if (r)
		return r;
	r = ferry_cluster_json(f, text);
	ferry_close(&f);
	if (r)
		return r;
	int parsed = json_parse(d, *text, strlen(*text)) == 0;
	if (!parsed || d->toks[0].type != JSON_OBJECT) {
		if (parsed)
			json_free(d);
		free(*text);
		*text = NULL;
		return -EPROTO;
	}
	return 0;
}

/* Fetches the view and every member's stats.  0, or a negative errno. */
static int
load_view(const struct cli *c, struct cview *cv)
{
	memset(cv, 0, sizeof(*cv));
	char *text;
	struct json_doc d = {0};
	int r = cluster_doc(c, &d, &text);
	if (r)
		return r;
	copy_str(&d, 0, "cluster", cv->name, sizeof(cv->name));
	cv->etcd_ok = json_bool(&d, json_obj_get(&d, 0, "etcd_ok"));
	cv->block_size = num(&d, 0, "block_size");
	int arr = json_obj_get(&d, 0, "members");
	int n = arr >= 0 && d.toks[arr].type == JSON_ARRAY ? d.toks[arr].size : 0;
	cv->w = calloc((size_t)(n ? n : 1), sizeof(*cv->w));
	if (!cv->w) {
		json_free(&d);
		free(text);
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		int m = json_arr_get(&d, arr, i);
		struct wrow *w = &cv->w[cv->n++];
		copy_str(&d, m, "id", w->id, sizeof(w->id));
		copy_str(&d, m, "ctl", w->ctl, sizeof(w->ctl));
		copy_str(&d, m, "s3", w->s3, sizeof(w->s3));
		w->self = json_bool(&d, json_obj_get(&d, m, "self"));
		w->capacity = num(&d, m, "capacity");
		w->used = w->hit = w->miss = w->pages = w->uptime = -1;
	}
	json_free(&d);
	free(text);
	for (int i = 0; i < cv->n; i++) {
		struct wrow *w = &cv->w[i];
		ferry_t *g;
		if (ferry_connect(w->ctl, c->token, &g) != 0)
			continue;
		char *st = NULL;
		if (ferry_stats_json(g, &st) == 0 &&
		    json_parse(&d, st, strlen(st)) == 0) {
			if (d.toks[0].type == JSON_OBJECT) {
				w->up = 1;
				w->used = num(&d, 0, "used_bytes");
				w->capacity = num(&d, 0, "capacity_bytes");
				w->hit = num(&d, 0, "hit_bytes");
				w->miss = num(&d, 0, "miss_bytes");
				w->pages = num(&d, 0, "pages");
				w->uptime = num(&d, 0, "uptime_s");
			}
			json_free(&d);
		}
		free(st);
		ferry_close(&g);
	}
	return 0;
}

static void
fmt_or_dash(int64_t v, char *out, size_t n)
{
	if (v < 0)
		snprintf(out, n, "-");
	else
		fmt_bytes((double)v, out, n);
}

static void
fmt_ratio(int64_t hit, int64_t miss, char *out, size_t n)
{
	if (hit < 0 || miss < 0 || hit + miss == 0)
		snprintf(out, n, "-");
	else
		snprintf(out, n, "%.1f%%", 100.0 * (double)hit / ((double)hit + (double)miss));
}

static void
print_rows(const struct cview *cv)
{
	printf("%-10s %-24s %-24s %-11s %10s %10s %6s\n", "ID", "ADDRESS", "S3",
	    "STATE", "CAPACITY", "USED", "HIT");
	for (int i = 0; i < cv->n; i++) {
		const struct wrow *w = &cv->w[i];
		char cap[32], used[32], hit[32], id[16];
		fmt_or_dash(w->capacity, cap, sizeof(cap));
		fmt_or_dash(w->used, used, sizeof(used));
		fmt_ratio(w->hit, w->miss, hit, sizeof(hit));
		snprintf(id, sizeof(id), "%.8s%s", w->id, w->self ? "*" : "");
		printf("%-10s %-24s %-24s %-11s %10s %10s %6s\n", id, w->ctl, w->s3,
		    w->up ? "up" : "unreachable", cap, used, hit);
	}
}

static void
put_num(struct dbuf *b, const char *key, int64_t v)
{
	if (v < 0)
		dbuf_printf(b, ",\"%s\":null", key);
	else
		dbuf_printf(b, ",\"%s\":%" PRId64, key, v);
}

static void
print_json(const struct cview *cv)
{
	struct dbuf b;
	dbuf_init(&b, 64u << 20);
	dbuf_adds(&b, "{\"cluster\":");
	if (cv->name[0])
		json_put_str(&b, cv->name);
	else
		dbuf_adds(&b, "null");
	dbuf_printf(&b, ",\"etcd_ok\":%s", cv->etcd_ok ? "true" : "false");
	put_num(&b, "block_size", cv->block_size);
	dbuf_adds(&b, ",\"workers\":[");
	for (int i = 0; i < cv->n; i++) {
		const struct wrow *w = &cv->w[i];
		dbuf_adds(&b, i ? ",{\"id\":" : "{\"id\":");
		json_put_str(&b, w->id);
		dbuf_adds(&b, ",\"ctl\":");
		json_put_str(&b, w->ctl);
		dbuf_adds(&b, ",\"s3\":");
		json_put_str(&b, w->s3);
		dbuf_printf(&b, ",\"self\":%s,\"up\":%s", w->self ? "true" : "false",
		    w->up ? "true" : "false");
		put_num(&b, "capacity_bytes", w->capacity);
		put_num(&b, "used_bytes", w->used);
		put_num(&b, "hit_bytes", w->hit);
		put_num(&b, "miss_bytes", w->miss);
		put_num(&b, "pages", w->pages);
		put_num(&b, "uptime_s", w->uptime);
		dbuf_adds(&b, "}");
	}
	dbuf_adds(&b, "]}\n");
	if (b.p)
		fwrite(b.p, 1, b.len, stdout);
	dbuf_free(&b);
}

static int
on_json(void *arg, int id, const char *val)
{
	*(int *)arg = 1;
	return 0;
}

int
cmd_workers(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	int json = 0;
	int n = cli_parse(c, argc, argv, cli_json_only_opts, on_json, &json, ops);
	char *extra = n > 0 ? ops[0] : NULL;
	free(ops);
	if (n < 0)
		return CLI_USAGE;
	if (extra)
		return cli_usage_error(c, "unexpected argument '%s'", extra);
	struct cview cv;
	int r = load_view(c, &cv);
	if (r)
		return cli_error(c, NULL, r);
	if (json) {
		print_json(&cv);
		free(cv.w);
		return CLI_OK;
	}
	if (cv.name[0])
		printf("cluster %s: %d worker(s), block size %" PRId64 " MiB, etcd %s\n",
		    cv.name, cv.n, cv.block_size >> 20, cv.etcd_ok ? "up" : "unreachable (last view shown)");
	else
		printf("single worker (no cluster)\n");
	print_rows(&cv);
	free(cv.w);
	return CLI_OK;
}

void
cli_print_cluster_stats(const struct cli *c)
{
	struct cview cv;
	if (load_view(c, &cv) != 0)
		return;
	if (!cv.name[0]) {
		free(cv.w);
		return;
	}
	int64_t cap = 0, used = 0, hit = 0, miss = 0;
	int up = 0;
	for (int i = 0; i < cv.n; i++) {
		const struct wrow *w = &cv.w[i];
		if (!w->up)
			continue;
		up++;
		cap += w->capacity > 0 ? w->capacity : 0;
		used += w->used > 0 ? w->used : 0;
		hit += w->hit > 0 ? w->hit : 0;
		miss += w->miss > 0 ? w->miss : 0;
	}
	char hc[32], hu[32], hr[32];
	fmt_bytes((double)cap, hc, sizeof(hc));
	fmt_bytes((double)used, hu, sizeof(hu));
	fmt_ratio(hit, miss, hr, sizeof(hr));
	printf("\ncluster %s: %d of %d worker(s) answering; used %s of %s; hit ratio %s\n",
	    cv.name, up, cv.n, hu, hc, hr);
	print_rows(&cv);
	free(cv.w);
}

int
cli_members(const struct cli *c, struct cli_member **out)
{
	*out = NULL;
	char *text;
	struct json_doc d = {0};
	int r = cluster_doc(c, &d, &text);
	if (r)
		return r;
	int arr = json_obj_get(&d, 0, "members");
	int n = arr >= 0 && d.toks[arr].type == JSON_ARRAY ? d.toks[arr].size : 0;
	struct cli_member *m = calloc((size_t)(n ? n : 1), sizeof(*m));
	if (!m) {
		json_free(&d);
		free(text);
		return -ENOMEM;
	}
	int k = 0, have_self = 0;
	for (int i = 0; i < n; i++) {
		int t = json_arr_get(&d, arr, i);
		copy_str(&d, t, "id", m[k].id, sizeof(m[k].id));
		copy_str(&d, t, "ctl", m[k].ctl, sizeof(m[k].ctl));
		m[k].self = json_bool(&d, json_obj_get(&d, t, "self")) == 1;
		if (m[k].self) {
			/* Itself by the address the user gave (it may listen on
			 * an address that reads differently from here). */
			snprintf(m[k].ctl, sizeof(m[k].ctl), "%s", cli_worker_addr(c));
			have_self = 1;
		}
		if (m[k].ctl[0])
			k++;
	}
	if (!have_self) {
		/* A worker not in its own view (leaving, or no cluster). */
		memset(&m[0], 0, sizeof(m[0]));
		snprintf(m[0].ctl, sizeof(m[0].ctl), "%s", cli_worker_addr(c));
		m[0].self = 1;
		k = 1;
	}
	json_free(&d);
	free(text);
	*out = m;
	return k;
}
