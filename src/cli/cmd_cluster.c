/*
 * cmd_cluster.c: the ferry CLI's cluster views: `ferry workers` (each
 * member of the cluster with its address, state, capacity, use and hit
 * ratio) and the cluster section of `ferry stats`.  Main thread only.
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

/* Fetches the view and every member's stats.  0, or a negative errno. */
static int
load_view(const struct cli *c, struct cview *cv)
{
	memset(cv, 0, sizeof(*cv));
	ferry_t *f;
	int r = ferry_connect(c->worker, c->token, &f);
	if (r)
		return r;
	char *text = NULL;
	r = ferry_cluster_json(f, &text);
	ferry_close(&f);
	if (r)
		return r;
	struct json_doc d;
	if (json_parse(&d, text, strlen(text)) != 0 || d.toks[0].type != JSON_OBJECT) {
		free(text);
		return -EPROTO;
	}
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

int
cmd_workers(struct cli *c, int argc, char **argv)
{
	if (argc > 1)
		return cli_usage_error(c, "unexpected argument '%s'", argv[1]);
	struct cview cv;
	int r = load_view(c, &cv);
	if (r)
		return cli_error(c, NULL, r);
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
