/*
 * cmd_data.c: the ferry CLI's dataset commands: `ferry load`, `ferry pin`/
 * `unpin`, `ferry ttl`, `ferry free`, `ferry du` and `ferry refresh` (over
 * libferry's ferry_load_*, ferry_pin, ferry_ttl, ferry_free, ferry_du_json,
 * ferry_refresh).  Main
 * thread only.  Each prints the worker's reason when the worker refuses
 * (cli_error), and exits 0, 1 (refused or failed) or 2 (usage).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/json.h"
#include "common/util.h"

enum { D_O_LIST = 1, D_O_CLEAR, D_O_FORCE, D_O_SUMMARY };

struct dargs {
	int json, list, clear, force, summary;
};

static int
on_opt(void *arg, int id, const char *val)
{
	struct dargs *a = arg;
	(void)val;
	switch (id) {
	case CLI_O_JSON: a->json = 1; break;
	case D_O_LIST: a->list = 1; break;
	case D_O_CLEAR: a->clear = 1; break;
	case D_O_FORCE: a->force = 1; break;
	case D_O_SUMMARY: a->summary = 1; break;
	}
	return 0;
}

const struct cli_opt cli_no_opts[] = {{0, 0, NULL, NULL, NULL}};
const struct cli_opt cli_pin_opts[] = {
	{D_O_LIST, 0, "list", NULL, "list the pins and TTLs (GET /v1/policy)"},
	{CLI_O_JSON, 0, "json", NULL, "with --list: the worker's answer as is"},
	{0, 0, NULL, NULL, NULL},
};
const struct cli_opt cli_ttl_opts[] = {
	{D_O_CLEAR, 0, "clear", NULL, "remove the TTL of PATH"},
	{D_O_LIST, 0, "list", NULL, "list the pins and TTLs"},
	{CLI_O_JSON, 0, "json", NULL, "with --list: the worker's answer as is"},
	{0, 0, NULL, NULL, NULL},
};
const struct cli_opt cli_free_opts[] = {
	{D_O_FORCE, 0, "force", NULL, "free pinned data too (the pin stays, and holds what is\ncached next)"},
	{CLI_O_JSON, 0, "json", NULL, "the worker's answer as is"},
	{0, 0, NULL, NULL, NULL},
};
const struct cli_opt cli_du_opts[] = {
	{D_O_SUMMARY, 's', "summary", NULL, "one line for PATH, not one per entry under it"},
	{CLI_O_JSON, 0, "json", NULL, "the worker's answer (GET /v1/du): path, total_bytes,\n"
	    "cached_bytes, pinned_bytes, objects, cached_objects and entries,\n"
	    "each with name and the same counts"},
	{0, 0, NULL, NULL, NULL},
};

/* Parses; the operands' paths normalised into paths[] (at most max).
 * Returns the count, or -1 after a usage error. */
static int
parse(struct cli *c, int argc, char **argv, const struct cli_opt *opts,
    struct dargs *a, char **ops)
{
	memset(a, 0, sizeof(*a));
	return cli_parse(c, argc, argv, opts, on_opt, a, ops);
}

static int
print_text(char *text)
{
	size_t l = strlen(text);
	while (l && text[l - 1] == '\n')
		l--;
	printf("%.*s\n", (int)l, text);
	free(text);
	return CLI_OK;
}

/* text (a worker's JSON answer) parsed into *d, and its array key: the
 * array's token into *arr and its length returned, or -EPROTO (text freed
 * then; otherwise the caller frees d and text). */
static int
json_list(char *text, const char *key, struct json_doc *d, int *arr)
{
	if (json_parse(d, text, strlen(text)) != 0) {
		free(text);
		return -EPROTO;
	}
	*arr = json_obj_get(d, 0, key);
	return *arr >= 0 && d->toks[*arr].type == JSON_ARRAY ? d->toks[*arr].size : 0;
}

static int
list_rules(struct cli *c, ferry_t *f, int json)
{
	char *text = NULL;
	int r = ferry_policy_json(f, &text);
	if (r)
		return cli_error(c, NULL, r);
	if (json)
		return print_text(text);
	struct json_doc d;
	int arr, n = json_list(text, "rules", &d, &arr);
	if (n < 0)
		return cli_error_local(c, NULL, n);
	if (n == 0)
		printf("(no pins or TTLs)\n");
	else
		printf("%-40s %-6s %s\n", "PATH", "PINNED", "TTL");
	for (int i = 0; i < n; i++) {
		int t = json_arr_get(&d, arr, i), ok = 0;
		char *m = json_str(&d, json_obj_get(&d, t, "mount"));
		char *p = json_str(&d, json_obj_get(&d, t, "path"));
		int64_t ttl = json_int(&d, json_obj_get(&d, t, "ttl"), &ok);
		char path[1200], ttls[32] = "-";
		snprintf(path, sizeof(path), "/%s%s%s", m ? m : "", p && p[0] ? "/" : "", p ? p : "");
		if (ok && ttl > 0) {
			if (ttl % 86400 == 0)
				snprintf(ttls, sizeof(ttls), "%" PRId64 "d", ttl / 86400);
			else if (ttl % 3600 == 0)
				snprintf(ttls, sizeof(ttls), "%" PRId64 "h", ttl / 3600);
			else if (ttl % 60 == 0)
				snprintf(ttls, sizeof(ttls), "%" PRId64 "m", ttl / 60);
			else
				snprintf(ttls, sizeof(ttls), "%" PRId64 "s", ttl);
		}
		printf("%-40s %-6s %s\n", path,
		    json_bool(&d, json_obj_get(&d, t, "pin")) == 1 ? "yes" : "no", ttls);
		free(m);
		free(p);
	}
	json_free(&d);
	free(text);
	return CLI_OK;
}

/*
 * Calls fn with a connection to each worker in turn (every member of a
 * cluster: pins, TTLs, free, refresh and du are each worker's own), all of
 * them even when one fails, then reports the failures, each with the
 * worker's address when there are several.  fn returns 0 or a negative
 * errno (the worker's reason is libferry's last error).  A "no such pin /
 * TTL / job" (-ENOENT) from some workers is no failure when others did
 * have it (a worker that joined later has no rules).  CLI_OK or CLI_FAIL.
 */
typedef int (*member_fn)(struct cli *c, ferry_t *f, const struct cli_member *m,
    int nm, void *arg);

static int
each_worker(struct cli *c, const char *path, member_fn fn, void *arg)
{
	struct cli_member *ms;
	int nm = cli_members(c, &ms);
	if (nm < 0)
		return cli_error(c, NULL, nm);
	int ok = 0, nfail = 0, all_enoent = 1;
	int *errs = calloc((size_t)nm, sizeof(int));
	char (*why)[512] = calloc((size_t)nm, sizeof(*why));
	if (!errs || !why) {
		free(errs);
		free(why);
		free(ms);
		return cli_error_local(c, NULL, -ENOMEM);
	}
	for (int i = 0; i < nm; i++) {
		ferry_t *f;
		int r = ferry_connect(ms[i].ctl, c->token, &f);
		if (r == 0) {
			r = fn(c, f, &ms[i], nm, arg);
			ferry_close(&f);
		}
		if (r < 0) {
			errs[i] = r;
			snprintf(why[i], sizeof(why[i]), "%s", ferry_last_error());
			nfail++;
			all_enoent &= r == -ENOENT;
		} else {
			ok++;
		}
	}
	int rc = CLI_OK;
	if (nfail && !(all_enoent && ok > 0)) {
		for (int i = 0; i < nm; i++) {
			if (!errs[i])
				continue;
			char w[1400];
			if (nm > 1)
				snprintf(w, sizeof(w), "%s (worker %s)", path ? path : "", ms[i].ctl);
			else
				snprintf(w, sizeof(w), "%s", path ? path : "");
			cli_error_why(c, w[0] ? w : NULL, errs[i], why[i]);
		}
		rc = CLI_FAIL;
	}
	free(errs);
	free(why);
	free(ms);
	return rc;
}

/* "PATH", or "PATH (worker ADDR)" when there are several. */
static void
where(char *out, size_t n, const char *path, const struct cli_member *m, int nm)
{
	if (nm > 1)
		snprintf(out, n, "%s (worker %s)", path, m->ctl);
	else
		snprintf(out, n, "%s", path);
}

struct pathop {
	char **paths;
	int n;
	int on, force, json;
	int64_t ttl;
	int64_t freed, kept;
};

/* The rule of path in a worker's rules: 1 (*pin, *ttl set), 0 (none) or a
 * negative errno. */
static int
rule_of(ferry_t *f, const char *path, int *pin, int64_t *ttl)
{
	char *text = NULL;
	int r = ferry_policy_json(f, &text);
	if (r)
		return r;
	struct json_doc d;
	int arr, n = json_list(text, "rules", &d, &arr);
	if (n < 0)
		return n;
	r = 0;
	for (int i = 0; i < n && r == 0; i++) {
		int t = json_arr_get(&d, arr, i), ok = 0;
		char *m = json_str(&d, json_obj_get(&d, t, "mount"));
		char *p = json_str(&d, json_obj_get(&d, t, "path"));
		char rp[1200];
		snprintf(rp, sizeof(rp), "/%s%s%s", m ? m : "", p && p[0] ? "/" : "", p ? p : "");
		if (strcmp(rp, path) == 0) {
			*pin = json_bool(&d, json_obj_get(&d, t, "pin")) == 1;
			*ttl = json_int(&d, json_obj_get(&d, t, "ttl"), &ok);
			r = 1;
		}
		free(m);
		free(p);
	}
	json_free(&d);
	free(text);
	return r;
}

/*
 * A pin or TTL change goes to one worker (the one the user named), which
 * makes it the cluster's (kept in etcd; every worker applies it).  Then
 * waits, at most 10 s, until every member shows the rule that worker shows,
 * so that the command returns once the change holds everywhere; a worker
 * that has not applied it by then is named (it will, from etcd).
 */
static int
rules_change(struct cli *c, struct pathop *o, int (*op)(ferry_t *f, const char *path,
    const struct pathop *o))
{
	ferry_t *f = NULL;
	if (cli_connect(c, &f))
		return CLI_FAIL;
	int r = 0, i, found[64], pins[64];
	int64_t ttls[64];
	int np = o->n < 64 ? o->n : 64;
	for (i = 0; i < o->n && r == 0; i++)
		r = op(f, o->paths[i], o);
	if (r) {
		ferry_close(&f);
		return cli_error(c, o->paths[i - 1], r);
	}
	for (i = 0; i < np; i++) {
		found[i] = rule_of(f, o->paths[i], &pins[i], &ttls[i]);
		if (found[i] < 0)
			np = 0; /* an old worker: nothing to compare */
	}
	ferry_close(&f);
	struct cli_member *ms;
	int nm = cli_members(c, &ms);
	if (nm < 0)
		return CLI_OK; /* done; not confirmed elsewhere */
	int64_t until = now_ms() + 10000;
	for (int k = 0; k < nm; k++) {
		if (ms[k].self || np == 0)
			continue;
		int same = 0;
		while (!same) {
			ferry_t *g = NULL;
			same = 1;
			if (ferry_connect(ms[k].ctl, c->token, &g) != 0) {
				same = 0;
			} else {
				for (i = 0; i < np && same; i++) {
					int pn = 0;
					int64_t tl = 0;
					int fr = rule_of(g, o->paths[i], &pn, &tl);
					same = fr == found[i] && (!fr || (pn == pins[i] && tl == ttls[i]));
				}
			}
			ferry_close(&g);
			if (!same && now_ms() >= until) {
				fprintf(stderr, "ferry: warning: worker %s does not show the change yet "
				    "(it is kept in etcd: the worker applies it when it sees it)\n",
				    ms[k].ctl);
				break;
			}
			if (!same)
				usleep(100000);
		}
	}
	free(ms);
	return CLI_OK;
}

static int
pin_op(ferry_t *f, const char *path, const struct pathop *o)
{
	return ferry_pin(f, path, o->on);
}

static int
ttl_op(ferry_t *f, const char *path, const struct pathop *o)
{
	return ferry_ttl(f, path, o->ttl);
}

/* Normalised operands into o->paths; 0 or CLI_FAIL. */
static int
norm_paths(struct cli *c, char **ops, int n, struct pathop *o)
{
	o->paths = calloc((size_t)(n ? n : 1), sizeof(char *));
	if (!o->paths)
		return cli_error_local(c, NULL, -ENOMEM);
	for (int i = 0; i < n; i++) {
		if (!(o->paths[i] = cli_norm_path(ops[i])))
			return cli_error_local(c, NULL, -ENOMEM);
		o->n++;
	}
	return 0;
}

static void
free_paths(struct pathop *o)
{
	for (int i = 0; i < o->n; i++)
		free(o->paths[i]);
	free(o->paths);
}

static int
pin_common(struct cli *c, int argc, char **argv, int on)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	struct dargs a;
	int n = parse(c, argc, argv, on ? cli_pin_opts : cli_no_opts, &a, ops);
	int rc = CLI_OK;
	struct pathop o = {.on = on};
	if (n < 0)
		rc = CLI_USAGE;
	else if (n == 0 && !a.list)
		rc = cli_usage_error(c, "which path? (e.g. /train/imagenet)");
	else if (n > 0 && a.list)
		rc = cli_usage_error(c, "--list takes no path");
	else if (a.list) {
		ferry_t *f = NULL;
		rc = cli_connect(c, &f) ? CLI_FAIL : list_rules(c, f, a.json);
		ferry_close(&f);
	} else if ((rc = norm_paths(c, ops, n, &o)) == 0) {
		rc = rules_change(c, &o, pin_op);
	}
	free_paths(&o);
	free(ops);
	return rc;
}

int
cmd_pin(struct cli *c, int argc, char **argv)
{
	return pin_common(c, argc, argv, 1);
}

int
cmd_unpin(struct cli *c, int argc, char **argv)
{
	return pin_common(c, argc, argv, 0);
}

int
cmd_ttl(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	struct dargs a;
	int n = parse(c, argc, argv, cli_ttl_opts, &a, ops);
	int rc = CLI_OK;
	struct pathop o = {0};
	if (n < 0)
		rc = CLI_USAGE;
	else if (a.list && n > 0)
		rc = cli_usage_error(c, "--list takes no path");
	else if (!a.list && n != (a.clear ? 1 : 2))
		rc = cli_usage_error(c, a.clear ? "--clear takes one path" :
		    "a path and a duration (e.g. /scratch/run7 24h)");
	else if (!a.list && !a.clear && (o.ttl = parse_duration(ops[1])) <= 0)
		rc = cli_usage_error(c, "bad duration '%s' (90s, 30m, 24h, 7d, 1h30m)", ops[1]);
	if (rc == CLI_OK && a.list) {
		ferry_t *f = NULL;
		rc = cli_connect(c, &f) ? CLI_FAIL : list_rules(c, f, a.json);
		ferry_close(&f);
	} else if (rc == CLI_OK && (rc = norm_paths(c, ops, 1, &o)) == 0) {
		rc = rules_change(c, &o, ttl_op);
	}
	free_paths(&o);
	free(ops);
	return rc;
}

static int64_t
num(const struct json_doc *d, int obj, const char *key)
{
	int ok = 0;
	int64_t v = json_int(d, json_obj_get(d, obj, key), &ok);
	return ok ? v : 0;
}

static int
free_one(struct cli *c, ferry_t *f, const struct cli_member *m, int nm, void *arg)
{
	struct pathop *o = arg;
	char *text = NULL;
	int r = ferry_free(f, o->paths[0], o->force, &text);
	if (r)
		return r;
	if (o->json) {
		print_text(text);
		return CLI_OK;
	}
	struct json_doc d;
	if (json_parse(&d, text, strlen(text)) == 0) {
		o->freed += num(&d, 0, "freed_bytes");
		o->kept += num(&d, 0, "pinned_kept_bytes");
		json_free(&d);
	}
	free(text);
	return CLI_OK;
}

int
cmd_free(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	struct dargs a;
	int n = parse(c, argc, argv, cli_free_opts, &a, ops);
	int rc = CLI_OK;
	struct pathop all = {0};
	if (n < 0)
		rc = CLI_USAGE;
	else if (n == 0)
		rc = cli_usage_error(c, "which path? (e.g. /train/old-dataset)");
	else
		rc = norm_paths(c, ops, n, &all);
	for (int i = 0; rc == CLI_OK && i < all.n; i++) {
		struct pathop o = {.paths = &all.paths[i], .n = 1, .force = a.force, .json = a.json};
		rc = each_worker(c, all.paths[i], free_one, &o);
		if (rc == CLI_OK && !a.json) {
			char fb[32], kb[32];
			fmt_bytes((double)o.freed, fb, sizeof(fb));
			fmt_bytes((double)o.kept, kb, sizeof(kb));
			printf("%s: freed %s%s%s%s\n", all.paths[i], fb, o.kept ? " (" : "",
			    o.kept ? kb : "", o.kept ? " pinned, kept)" : "");
		}
	}
	free_paths(&all);
	free(ops);
	return rc;
}

/* du, summed over the workers: the totals are the under-store's (the same
 * from each), cached and pinned bytes add up, and "workers" counts those
 * holding some of an entry. */
struct du_row {
	char *name;
	int64_t total, cached, pinned, objects, workers;
	int64_t hot; /* the most any worker sees hot */
};

struct du_sum {
	const char *path;
	int summary, json, first;
	struct du_row all;
	struct du_row *rows;
	int n;
	struct dbuf js; /* --json: the workers' answers, one array */
};

static void
du_add(struct du_row *r, const struct json_doc *d, int t, int first)
{
	if (first) {
		r->total = num(d, t, "total_bytes");
		r->objects = num(d, t, "objects");
	}
	int64_t cached = num(d, t, "cached_bytes");
	r->cached += cached;
	r->pinned += num(d, t, "pinned_bytes");
	r->workers += cached > 0;
	int64_t hot = num(d, t, "hot_blocks");
	r->hot = hot > r->hot ? hot : r->hot;
}

static int
du_one(struct cli *c, ferry_t *f, const struct cli_member *m, int nm, void *arg)
{
	struct du_sum *s = arg;
	char *text = NULL;
	int r = ferry_du_json(f, s->path, s->summary, &text);
	if (r)
		return r;
	if (s->json) {
		size_t l = strlen(text);
		while (l && text[l - 1] == '\n')
			l--;
		dbuf_adds(&s->js, s->first ? "" : ",");
		dbuf_add(&s->js, text, l);
		s->first = 0;
		free(text);
		return CLI_OK;
	}
	struct json_doc d;
	if (json_parse(&d, text, strlen(text)) != 0) {
		free(text);
		return -EPROTO;
	}
	int arr = json_obj_get(&d, 0, "entries");
	int ne = arr >= 0 && d.toks[arr].type == JSON_ARRAY ? d.toks[arr].size : 0;
	if (s->first) {
		s->rows = calloc((size_t)(ne ? ne : 1), sizeof(*s->rows));
		s->n = s->rows ? ne : 0;
		for (int k = 0; k < s->n; k++) {
			int t = json_arr_get(&d, arr, k);
			s->rows[k].name = json_str(&d, json_obj_get(&d, t, "name"));
		}
	}
	/* Every worker lists the same under-store, in the same order; an
	 * entry one of them lists and the first did not (it came meanwhile)
	 * is skipped, the others matched by name. */
	for (int k = 0, at = 0; k < ne; k++) {
		int t = json_arr_get(&d, arr, k);
		char *nmx = json_str(&d, json_obj_get(&d, t, "name"));
		for (int q = at; nmx && q < s->n; q++) {
			if (s->rows[q].name && strcmp(nmx, s->rows[q].name) == 0) {
				du_add(&s->rows[q], &d, t, s->first);
				at = q + 1;
				break;
			}
		}
		free(nmx);
	}
	du_add(&s->all, &d, 0, s->first);
	s->first = 0;
	json_free(&d);
	free(text);
	return CLI_OK;
}

static void
du_print(const struct du_row *r, const char *name, int cluster)
{
	char tb[32], cb[32], pb[32];
	fmt_bytes((double)r->total, tb, sizeof(tb));
	fmt_bytes((double)r->cached, cb, sizeof(cb));
	fmt_bytes((double)r->pinned, pb, sizeof(pb));
	double pct = r->total > 0 ? 100.0 * (double)r->cached / (double)r->total : 0;
	if (cluster)
		printf("%10s %10s %5.1f%% %10s %4" PRId64 " %7" PRId64 "  %s\n", tb, cb, pct, pb,
		    r->hot, r->workers, name);
	else
		printf("%10s %10s %5.1f%% %10s  %s\n", tb, cb, pct, pb, name);
}

int
cmd_du(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	struct dargs a;
	int n = parse(c, argc, argv, cli_du_opts, &a, ops);
	int rc = CLI_OK;
	struct pathop all = {0};
	if (n < 0)
		rc = CLI_USAGE;
	else if (n == 0)
		rc = cli_usage_error(c, "which path? (e.g. /train)");
	else
		rc = norm_paths(c, ops, n, &all);
	struct cli_member *ms = NULL;
	int nm = rc == CLI_OK ? cli_members(c, &ms) : 1;
	free(ms);
	if (nm < 0)
		rc = cli_error(c, NULL, nm);
	if (rc == CLI_OK && !a.json && nm > 1)
		printf("%10s %10s %6s %10s %4s %7s  %s\n", "TOTAL", "CACHED", "%", "PINNED",
		    "HOT", "WORKERS", "PATH");
	else if (rc == CLI_OK && !a.json)
		printf("%10s %10s %6s %10s  %s\n", "TOTAL", "CACHED", "%", "PINNED", "PATH");
	for (int i = 0; rc == CLI_OK && i < all.n; i++) {
		struct du_sum s = {.path = all.paths[i], .summary = a.summary, .json = a.json, .first = 1};
		dbuf_init(&s.js, (size_t)64 << 20);
		rc = each_worker(c, all.paths[i], du_one, &s);
		if (rc == CLI_OK && a.json) {
			/* One worker: its answer; several: {"workers":[...]}. */
			if (nm > 1)
				printf("{\"workers\":[%.*s]}\n", (int)s.js.len, s.js.p ? s.js.p : "");
			else
				printf("%.*s\n", (int)s.js.len, s.js.p ? s.js.p : "");
		} else if (rc == CLI_OK) {
			const char *p = all.paths[i];
			for (int k = 0; k < s.n; k++) {
				char full[2400];
				snprintf(full, sizeof(full), "%s%s%s", p, strcmp(p, "/") ? "/" : "",
				    s.rows[k].name ? s.rows[k].name : "");
				du_print(&s.rows[k], full, nm > 1);
			}
			du_print(&s.all, p, nm > 1);
		}
		for (int k = 0; k < s.n; k++)
			free(s.rows[k].name);
		free(s.rows);
		dbuf_free(&s.js);
	}
	free_paths(&all);
	free(ops);
	return rc;
}

static int
refresh_one(struct cli *c, ferry_t *f, const struct cli_member *m, int nm, void *arg)
{
	struct pathop *o = arg;
	for (int i = 0; i < o->n; i++) {
		int r = ferry_refresh(f, o->paths[i]);
		if (r)
			return r;
	}
	return CLI_OK;
}

int
cmd_refresh(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	struct dargs a;
	int n = parse(c, argc, argv, cli_no_opts, &a, ops);
	int rc = CLI_OK;
	struct pathop o = {0};
	if (n < 0)
		rc = CLI_USAGE;
	else if (n == 0)
		rc = cli_usage_error(c, "which path? (e.g. /train/imagenet)");
	else if ((rc = norm_paths(c, ops, n, &o)) == 0)
		rc = each_worker(c, o.paths[0], refresh_one, &o);
	free_paths(&o);
	free(ops);
	return rc;
}

/* ---- ferry load ------------------------------------------------------------- */

enum { L_O_BW = 20, L_O_PAR, L_O_VERIFY, L_O_STATUS, L_O_STOP, L_O_DETACH, L_O_REPLICAS };

struct largs {
	int64_t bandwidth;
	int parallel, verify, status, stop, detach, json, replicas;
};

static int
on_load_opt(void *arg, int id, const char *val)
{
	struct largs *a = arg;
	switch (id) {
	case L_O_BW: {
		/* "400MB/s" and "400M" alike. */
		char v[64];
		snprintf(v, sizeof(v), "%s", val);
		char *sl = strstr(v, "/s");
		if (sl && sl[2] == 0)
			*sl = 0;
		size_t n = strlen(v);
		if (n > 1 && v[n - 1] == 'B')
			v[n - 1] = 0;
		if ((a->bandwidth = parse_size(v)) <= 0) {
			fprintf(stderr, "ferry load: bad --bandwidth '%s' (e.g. 400MB/s, 1G)\n", val);
			return CLI_USAGE;
		}
		break;
	}
	case L_O_PAR: {
		char *end;
		long p = strtol(val, &end, 10);
		if (!val[0] || *end || p < 1 || p > 64) {
			fprintf(stderr, "ferry load: bad --parallel '%s' (1 to 64)\n", val);
			return CLI_USAGE;
		}
		a->parallel = (int)p;
		break;
	}
	case L_O_REPLICAS: {
		char *end;
		long r = strtol(val, &end, 10);
		if (!val[0] || *end || r < 1 || r > 16) {
			fprintf(stderr, "ferry load: bad --replicas '%s' (1 to 16)\n", val);
			return CLI_USAGE;
		}
		a->replicas = (int)r;
		break;
	}
	case L_O_VERIFY: a->verify = 1; break;
	case L_O_STATUS: a->status = 1; break;
	case L_O_STOP: a->stop = 1; break;
	case L_O_DETACH: a->detach = 1; break;
	case CLI_O_JSON: a->json = 1; break;
	}
	return 0;
}

const struct cli_opt cli_load_opts[] = {
	{L_O_BW, 0, "bandwidth", "RATE", "the most the job reads from the under-store per second\n(e.g. 400MB/s, where M is 2^20 bytes; in a cluster, shared\nby the workers; default: no cap)"},
	{L_O_PAR, 0, "parallel", "N", "objects read at once (1-64, default 8)"},
	{L_O_REPLICAS, 0, "replicas", "N", "in a cluster: cache each block on its first N workers in\nplacement order (default: the mount's replicas), so a\nworker lost later finds the next already holding it"},
	{L_O_VERIFY, 0, "verify", NULL, "then read it all again: each page's checksum, and the MD5 of\n"
	    "objects whose ETag is one; what differs is fetched again"},
	{L_O_DETACH, 'd', "detach", NULL, "start the job and exit (follow it with --status)"},
	{L_O_STATUS, 0, "status", NULL, "list the jobs: path, state, files and bytes done/total,\nrate, ETA, errors"},
	{L_O_STOP, 0, "stop", NULL, "stop the job of PATH (or of job id PATH); it stays listed"},
	{CLI_O_JSON, 0, "json", NULL, "with --status: the worker's answer (GET /v1/load)"},
	{0, 0, NULL, NULL, NULL},
};

struct jobview {
	char id[17], path[1100], state[16], pass[8], err[600];
	int64_t files_done, files_total, bytes_done, bytes_total, fetched, failed,
	    not_cached, mismatches, eta;
	double rate;
	int listing_done;
};

static void
jv_read(const struct json_doc *d, int t, struct jobview *v)
{
	memset(v, 0, sizeof(*v));
	const char *sk[] = {"id", "path", "state", "pass", "last_error"};
	char *sv[] = {v->id, v->path, v->state, v->pass, v->err};
	size_t sn[] = {sizeof(v->id), sizeof(v->path), sizeof(v->state), sizeof(v->pass), sizeof(v->err)};
	for (int i = 0; i < 5; i++) {
		char *x = json_str(d, json_obj_get(d, t, sk[i]));
		snprintf(sv[i], sn[i], "%s", x ? x : "");
		free(x);
	}
	v->files_done = num(d, t, "files_done");
	v->files_total = num(d, t, "files_total");
	v->bytes_done = num(d, t, "bytes_done");
	v->bytes_total = num(d, t, "bytes_total");
	v->fetched = num(d, t, "bytes_fetched");
	v->failed = num(d, t, "files_failed");
	v->not_cached = num(d, t, "files_not_cached");
	v->mismatches = num(d, t, "verify_mismatches");
	v->eta = json_int(d, json_obj_get(d, t, "eta_s"), &(int){0});
	int ok = 0;
	v->rate = (double)json_int(d, json_obj_get(d, t, "rate"), &ok);
	v->listing_done = json_bool(d, json_obj_get(d, t, "listing_done")) == 1;
}

/* "1234/2000 files  1.2 GiB/1.9 GiB  63%  410 MiB/s  ETA 2s" */
static void
jv_line(const struct jobview *v, char *out, size_t n)
{
	char bd[32], bt[32], rt[32], eta[32] = "";
	fmt_bytes((double)v->bytes_done, bd, sizeof(bd));
	fmt_bytes((double)v->bytes_total, bt, sizeof(bt));
	fmt_bytes(v->rate, rt, sizeof(rt));
	if (strcmp(v->state, "running") == 0)
		snprintf(eta, sizeof(eta), v->eta >= 0 ? "  ETA %llds" : "  (listing)", (long long)v->eta);
	double pct = v->bytes_total > 0 ? 100.0 * (double)v->bytes_done / (double)v->bytes_total :
	    v->listing_done ? 100.0 : 0.0;
	snprintf(out, n, "%" PRId64 "/%" PRId64 "%s files  %s/%s  %.0f%%  %s/s%s%s",
	    v->files_done, v->files_total, v->listing_done ? "" : "+", bd, bt, pct, rt, eta,
	    strcmp(v->pass, "verify") == 0 && strcmp(v->state, "running") == 0 ? "  (verifying)" : "");
}

/* Each worker's jobs, one row each (with the worker when several). */
static int
status_one(struct cli *c, ferry_t *f, const struct cli_member *m, int nm, void *arg)
{
	int *any = arg;
	char *text = NULL;
	int r = ferry_load_json(f, NULL, &text);
	if (r)
		return r;
	struct json_doc d;
	int arr, n = json_list(text, "jobs", &d, &arr);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		struct jobview v;
		char line[256];
		jv_read(&d, json_arr_get(&d, arr, i), &v);
		jv_line(&v, line, sizeof(line));
		if (nm > 1)
			printf("%-21s ", m->ctl);
		printf("%s  %-8s %s  %s\n", v.id, v.state, v.path, line);
		if (v.failed || v.not_cached || v.mismatches)
			printf("    %" PRId64 " failed, %" PRId64 " not cached (no room), %" PRId64
			    " fetched again after --verify%s%s\n", v.failed, v.not_cached,
			    v.mismatches, v.err[0] ? "; last: " : "", v.err);
		(*any)++;
	}
	json_free(&d);
	free(text);
	return CLI_OK;
}

static int
load_status(struct cli *c, int json)
{
	if (json) {
		ferry_t *f = NULL;
		char *text = NULL;
		int rc = cli_connect(c, &f) ? CLI_FAIL : CLI_OK;
		if (rc == CLI_OK) {
			int r = ferry_load_json(f, NULL, &text);
			rc = r ? cli_error(c, NULL, r) : print_text(text);
		}
		ferry_close(&f);
		return rc;
	}
	int any = 0;
	int rc = each_worker(c, NULL, status_one, &any);
	if (rc == CLI_OK && !any)
		printf("(no load jobs)\n");
	return rc;
}

/* The job of path (or whose id is path) in the listing: its id. */
static int
find_job(ferry_t *f, const char *path, char id[17])
{
	char *text = NULL;
	int r = ferry_load_json(f, NULL, &text);
	if (r)
		return r;
	struct json_doc d;
	r = -ENOENT;
	if (json_parse(&d, text, strlen(text)) == 0) {
		int arr = json_obj_get(&d, 0, "jobs");
		int n = arr >= 0 && d.toks[arr].type == JSON_ARRAY ? d.toks[arr].size : 0;
		for (int i = 0; i < n && r; i++) {
			struct jobview v;
			jv_read(&d, json_arr_get(&d, arr, i), &v);
			if (strcmp(v.path, path) == 0 || strcmp(v.id, path) == 0 ||
			    (path[0] == '/' && strcmp(v.id, path + 1) == 0)) {
				snprintf(id, 17, "%s", v.id);
				r = 0;
			}
		}
		json_free(&d);
	}
	free(text);
	return r;
}

struct loadrun {
	const char *path;
	struct largs *a;
	int nm;
	ferry_t **f;
	char (*id)[17];
	int started;
	int64_t t0; /* when the job was made */
};

static int
stop_one(struct cli *c, ferry_t *f, const struct cli_member *m, int nm, void *arg)
{
	const char *path = arg;
	char id[17];
	int r = find_job(f, path, id);
	if (r == 0)
		r = ferry_load_stop(f, id);
	if (r)
		return r; /* -ENOENT: no such job here (each_worker: fine if elsewhere) */
	printf("%s: stopped (job %s%s%s)\n", path, id, nm > 1 ? " on " : "", nm > 1 ? m->ctl : "");
	return CLI_OK;
}

/* The jobs of every worker, summed into one view: bytes add up, each
 * worker lists every file (files: the least done), the state is the
 * worst.  0 or a negative errno (nothing printed). */
static int
poll_all(struct cli *c, struct loadrun *lr, struct jobview *sum)
{
	memset(sum, 0, sizeof(*sum));
	int running = 0, failed = 0, stopped = 0;
	sum->listing_done = 1;
	sum->eta = -1;
	for (int i = 0; i < lr->nm; i++) {
		char *text = NULL;
		int r = ferry_load_json(lr->f[i], lr->id[i], &text);
		if (r)
			return r;
		struct json_doc d;
		int ok = json_parse(&d, text, strlen(text)) == 0;
		int arr = ok ? json_obj_get(&d, 0, "jobs") : -1;
		struct jobview v;
		int one = ok && arr >= 0 && d.toks[arr].type == JSON_ARRAY && d.toks[arr].size == 1;
		int none = ok && arr >= 0 && d.toks[arr].type == JSON_ARRAY && d.toks[arr].size == 0;
		if (one)
			jv_read(&d, json_arr_get(&d, arr, 0), &v);
		if (ok)
			json_free(&d);
		free(text);
		if (none && now_ms() - lr->t0 < 15000) {
			/* Not taken up there yet (it learns of the job from etcd). */
			running++;
			sum->listing_done = 0;
			continue;
		}
		if (!one)
			return none ? -ENOENT : -EPROTO;
		sum->files_done = i == 0 || v.files_done < sum->files_done ? v.files_done : sum->files_done;
		sum->files_total = v.files_total > sum->files_total ? v.files_total : sum->files_total;
		sum->bytes_done += v.bytes_done;
		sum->bytes_total += v.bytes_total;
		sum->fetched += v.fetched;
		sum->failed += v.failed;
		sum->not_cached += v.not_cached;
		sum->mismatches += v.mismatches;
		if (strcmp(v.state, "running") == 0)
			sum->rate += v.rate; /* parts that ended add nothing now */
		sum->eta = v.eta > sum->eta ? v.eta : sum->eta;
		sum->listing_done &= v.listing_done;
		if (v.err[0])
			snprintf(sum->err, sizeof(sum->err), "%s", v.err);
		snprintf(sum->pass, sizeof(sum->pass), "%s", v.pass);
		running += strcmp(v.state, "running") == 0;
		failed += strcmp(v.state, "failed") == 0;
		stopped += strcmp(v.state, "stopped") == 0;
	}
	snprintf(sum->state, sizeof(sum->state), "%s", running ? "running" : failed ? "failed" :
	    stopped ? "stopped" : "done");
	return CLI_OK;
}

/* Follows the jobs until they end: a bar on a terminal, a line per 10 s
 * otherwise.  CLI_OK if everything was loaded. */
static int
follow(struct cli *c, struct loadrun *lr)
{
	int tty = isatty(1);
	int64_t last_line = 0, fail_since = 0;
	for (;;) {
		struct jobview v;
		int rc = poll_all(c, lr, &v);
		if (rc) {
			/* A worker restarting: its job resumes; ask again for a
			 * while before giving up on following it. */
			if (!fail_since)
				fail_since = now_ms();
			if (now_ms() - fail_since < 30000) {
				usleep(1000000);
				continue;
			}
			if (tty)
				printf("\n");
			return cli_error(c, lr->path, rc);
		}
		fail_since = 0;
		char line[256];
		jv_line(&v, line, sizeof(line));
		int running = strcmp(v.state, "running") == 0;
		if (tty) {
			int width = 30, fill = v.bytes_total > 0 ?
			    (int)(width * (double)v.bytes_done / (double)v.bytes_total) : 0;
			if (fill > width)
				fill = width;
			char bar[40];
			for (int i = 0; i < width; i++)
				bar[i] = i < fill ? '#' : '.';
			bar[width] = 0;
			printf("\r[%s] %s\033[K", bar, line);
			fflush(stdout);
		} else if (!running || now_ms() - last_line >= 10000) {
			printf("%s: %s\n", lr->path, line);
			fflush(stdout);
			last_line = now_ms();
		}
		if (!running) {
			if (tty)
				printf("\n");
			char fb[32];
			fmt_bytes((double)v.fetched, fb, sizeof(fb));
			if (strcmp(v.state, "done") == 0 && !v.not_cached) {
				printf("%s: loaded (%s read from the under-store%s)%s\n", lr->path, fb,
				    lr->nm > 1 ? ", by all the workers" : "",
				    v.mismatches ? "; --verify fetched some again" : "");
				return CLI_OK;
			}
			fprintf(stderr, "ferry: load: %s: %s: %" PRId64 " file(s) failed, %" PRId64
			    " not cached (no room: capacity, quota or pins)%s%s\n", lr->path, v.state,
			    v.failed, v.not_cached, v.err[0] ? "; last: " : "", v.err);
			return CLI_FAIL;
		}
		usleep(tty ? 250000 : 500000);
	}
}

int
cmd_load(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	struct largs a = {0};
	int n = cli_parse(c, argc, argv, cli_load_opts, on_load_opt, &a, ops);
	int rc = CLI_OK;
	if (n < 0)
		rc = CLI_USAGE;
	else if (a.status && n > 0)
		rc = cli_usage_error(c, "--status takes no path");
	else if (!a.status && n != 1)
		rc = cli_usage_error(c, "one path to load (e.g. /train/imagenet)");
	if (rc != CLI_OK || a.status) {
		free(ops);
		return rc == CLI_OK ? load_status(c, a.json) : rc;
	}
	char *p = ops[0][0] == '/' || !a.stop ? cli_norm_path(ops[0]) : strdup(ops[0]);
	free(ops);
	if (!p)
		return cli_error_local(c, NULL, -ENOMEM);
	if (a.stop) {
		rc = each_worker(c, p, stop_one, p);
		free(p);
		return rc;
	}
	/* Every worker loads what placement gives it, at its share of the
	 * bandwidth: the whole cluster pulls from the under-store at once. */
	struct cli_member *ms;
	int nm = cli_members(c, &ms);
	if (nm < 0) {
		free(p);
		return cli_error(c, NULL, nm);
	}
	struct loadrun lr = {.path = p, .a = &a, .nm = nm};
	lr.f = calloc((size_t)nm, sizeof(*lr.f));
	lr.id = calloc((size_t)nm, sizeof(*lr.id));
	if (!lr.f || !lr.id)
		rc = cli_error_local(c, NULL, -ENOMEM);
	/* The worker asked makes the job the cluster's (kept in etcd); every
	 * member takes up its part, under the same id. */
	unsigned flags = (a.verify ? FERRY_LOAD_VERIFY : 0) | FERRY_LOAD_REPLICAS(a.replicas);
	char id[17] = "";
	if (rc == CLI_OK) {
		ferry_t *f = NULL;
		if (cli_connect(c, &f)) {
			rc = CLI_FAIL;
		} else {
			int r = ferry_load_start(f, p, a.bandwidth, a.parallel, flags, id);
			if (r)
				rc = cli_error(c, p, r);
		}
		ferry_close(&f);
	}
	lr.t0 = now_ms();
	for (int i = 0; rc == CLI_OK && i < nm; i++) {
		snprintf(lr.id[i], sizeof(lr.id[i]), "%s", id);
		int r = ferry_connect(ms[i].ctl, c->token, &lr.f[i]);
		if (r) {
			char w[1400];
			where(w, sizeof(w), p, &ms[i], nm);
			rc = cli_error(c, w, r);
		}
	}
	if (rc == CLI_OK && a.detach) {
		printf("%s\n", id);
	} else if (rc == CLI_OK) {
		if (isatty(1))
			printf("loading %s (%d worker%s; Ctrl-C leaves it running, "
			    "`ferry load --stop %s` stops it)\n", p, nm, nm > 1 ? "s" : "", p);
		rc = follow(c, &lr);
	}
	for (int i = 0; lr.f && i < nm; i++)
		ferry_close(&lr.f[i]);
	free(lr.f);
	free(lr.id);
	free(ms);
	free(p);
	return rc;
}
