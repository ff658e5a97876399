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
	if (json_parse(&d, text, strlen(text)) != 0) {
		free(text);
		return cli_error_local(c, NULL, -EPROTO);
	}
	int arr = json_obj_get(&d, 0, "rules");
	int n = arr >= 0 && d.toks[arr].type == JSON_ARRAY ? d.toks[arr].size : 0;
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

/* Runs fn on each path operand; the first failure's status. */
static int
pin_common(struct cli *c, int argc, char **argv, int on)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	struct dargs a;
	int n = parse(c, argc, argv, on ? cli_pin_opts : cli_no_opts, &a, ops);
	int rc = CLI_OK;
	ferry_t *f = NULL;
	if (n < 0)
		rc = CLI_USAGE;
	else if (n == 0 && !a.list)
		rc = cli_usage_error(c, "which path? (e.g. /train/imagenet)");
	else if (n > 0 && a.list)
		rc = cli_usage_error(c, "--list takes no path");
	else if (cli_connect(c, &f))
		rc = CLI_FAIL;
	if (rc == CLI_OK && a.list)
		rc = list_rules(c, f, a.json);
	for (int i = 0; rc == CLI_OK && i < n; i++) {
		char *p = cli_norm_path(ops[i]);
		int r = p ? ferry_pin(f, p, on) : -ENOMEM;
		if (r)
			rc = cli_error(c, p ? p : ops[i], r);
		free(p);
	}
	ferry_close(&f);
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
	int64_t ttl = 0;
	ferry_t *f = NULL;
	if (n < 0)
		rc = CLI_USAGE;
	else if (a.list && n > 0)
		rc = cli_usage_error(c, "--list takes no path");
	else if (!a.list && n != (a.clear ? 1 : 2))
		rc = cli_usage_error(c, a.clear ? "--clear takes one path" :
		    "a path and a duration (e.g. /scratch/run7 24h)");
	else if (!a.list && !a.clear && (ttl = parse_duration(ops[1])) <= 0)
		rc = cli_usage_error(c, "bad duration '%s' (90s, 30m, 24h, 7d, 1h30m)", ops[1]);
	if (rc == CLI_OK && cli_connect(c, &f))
		rc = CLI_FAIL;
	if (rc == CLI_OK && a.list) {
		rc = list_rules(c, f, a.json);
	} else if (rc == CLI_OK) {
		char *p = cli_norm_path(ops[0]);
		int r = p ? ferry_ttl(f, p, a.clear ? 0 : ttl) : -ENOMEM;
		if (r)
			rc = cli_error(c, p ? p : ops[0], r);
		free(p);
	}
	ferry_close(&f);
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

int
cmd_free(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	struct dargs a;
	int n = parse(c, argc, argv, cli_free_opts, &a, ops);
	int rc = CLI_OK;
	ferry_t *f = NULL;
	if (n < 0)
		rc = CLI_USAGE;
	else if (n == 0)
		rc = cli_usage_error(c, "which path? (e.g. /train/old-dataset)");
	else if (cli_connect(c, &f))
		rc = CLI_FAIL;
	for (int i = 0; rc == CLI_OK && i < n; i++) {
		char *p = cli_norm_path(ops[i]), *text = NULL;
		int r = p ? ferry_free(f, p, a.force, &text) : -ENOMEM;
		if (r) {
			rc = cli_error(c, p ? p : ops[i], r);
		} else if (a.json) {
			print_text(text);
			text = NULL;
		} else {
			struct json_doc d;
			if (json_parse(&d, text, strlen(text)) == 0) {
				char fb[32], kb[32];
				int64_t kept = num(&d, 0, "pinned_kept_bytes");
				fmt_bytes((double)num(&d, 0, "freed_bytes"), fb, sizeof(fb));
				fmt_bytes((double)kept, kb, sizeof(kb));
				printf("%s: freed %s%s%s%s\n", p, fb, kept ? " (" : "",
				    kept ? kb : "", kept ? " pinned, kept)" : "");
				json_free(&d);
			}
		}
		free(text);
		free(p);
	}
	ferry_close(&f);
	free(ops);
	return rc;
}

static void
du_row(const struct json_doc *d, int t, const char *name)
{
	int64_t total = num(d, t, "total_bytes"), cached = num(d, t, "cached_bytes");
	char tb[32], cb[32], pb[32];
	fmt_bytes((double)total, tb, sizeof(tb));
	fmt_bytes((double)cached, cb, sizeof(cb));
	fmt_bytes((double)num(d, t, "pinned_bytes"), pb, sizeof(pb));
	double pct = total > 0 ? 100.0 * (double)cached / (double)total : 0;
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
	ferry_t *f = NULL;
	if (n < 0)
		rc = CLI_USAGE;
	else if (n == 0)
		rc = cli_usage_error(c, "which path? (e.g. /train)");
	else if (cli_connect(c, &f))
		rc = CLI_FAIL;
	if (rc == CLI_OK && !a.json)
		printf("%10s %10s %6s %10s  %s\n", "TOTAL", "CACHED", "%", "PINNED", "PATH");
	for (int i = 0; rc == CLI_OK && i < n; i++) {
		char *p = cli_norm_path(ops[i]), *text = NULL;
		int r = p ? ferry_du_json(f, p, a.summary, &text) : -ENOMEM;
		if (r) {
			rc = cli_error(c, p ? p : ops[i], r);
		} else if (a.json) {
			print_text(text);
			text = NULL;
		} else {
			struct json_doc d;
			if (json_parse(&d, text, strlen(text)) != 0) {
				rc = cli_error_local(c, p, -EPROTO);
			} else {
				int arr = json_obj_get(&d, 0, "entries");
				int ne = arr >= 0 && d.toks[arr].type == JSON_ARRAY ? d.toks[arr].size : 0;
				for (int k = 0; k < ne; k++) {
					int t = json_arr_get(&d, arr, k);
					char *nm = json_str(&d, json_obj_get(&d, t, "name"));
					char full[2400];
					snprintf(full, sizeof(full), "%s%s%s", p,
					    strcmp(p, "/") ? "/" : "", nm ? nm : "");
					du_row(&d, t, full);
					free(nm);
				}
				du_row(&d, 0, p);
				json_free(&d);
			}
		}
		free(text);
		free(p);
	}
	ferry_close(&f);
	free(ops);
	return rc;
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
	ferry_t *f = NULL;
	if (n < 0)
		rc = CLI_USAGE;
	else if (n == 0)
		rc = cli_usage_error(c, "which path? (e.g. /train/imagenet)");
	else if (cli_connect(c, &f))
		rc = CLI_FAIL;
	for (int i = 0; rc == CLI_OK && i < n; i++) {
		char *p = cli_norm_path(ops[i]);
		int r = p ? ferry_refresh(f, p) : -ENOMEM;
		if (r)
			rc = cli_error(c, p ? p : ops[i], r);
		free(p);
	}
	ferry_close(&f);
	free(ops);
	return rc;
}

/* ---- ferry load ------------------------------------------------------------- */

enum { L_O_BW = 20, L_O_PAR, L_O_VERIFY, L_O_STATUS, L_O_STOP, L_O_DETACH };

struct largs {
	int64_t bandwidth;
	int parallel, verify, status, stop, detach, json;
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
	case L_O_VERIFY: a->verify = 1; break;
	case L_O_STATUS: a->status = 1; break;
	case L_O_STOP: a->stop = 1; break;
	case L_O_DETACH: a->detach = 1; break;
	case CLI_O_JSON: a->json = 1; break;
	}
	return 0;
}

const struct cli_opt cli_load_opts[] = {
	{L_O_BW, 0, "bandwidth", "RATE", "the most the job reads from the under-store per second\n(e.g. 400MB/s; default: no cap)"},
	{L_O_PAR, 0, "parallel", "N", "objects read at once (1-64, default 8)"},
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

static int
load_status(struct cli *c, ferry_t *f, int json)
{
	char *text = NULL;
	int r = ferry_load_json(f, NULL, &text);
	if (r)
		return cli_error(c, NULL, r);
	if (json)
		return print_text(text);
	struct json_doc d;
	if (json_parse(&d, text, strlen(text)) != 0) {
		free(text);
		return cli_error_local(c, NULL, -EPROTO);
	}
	int arr = json_obj_get(&d, 0, "jobs");
	int n = arr >= 0 && d.toks[arr].type == JSON_ARRAY ? d.toks[arr].size : 0;
	if (n == 0)
		printf("(no load jobs)\n");
	for (int i = 0; i < n; i++) {
		struct jobview v;
		char line[256];
		jv_read(&d, json_arr_get(&d, arr, i), &v);
		jv_line(&v, line, sizeof(line));
		printf("%s  %-8s %s  %s\n", v.id, v.state, v.path, line);
		if (v.failed || v.not_cached || v.mismatches)
			printf("    %" PRId64 " failed, %" PRId64 " not cached (no room), %" PRId64
			    " fetched again after --verify%s%s\n", v.failed, v.not_cached,
			    v.mismatches, v.err[0] ? "; last: " : "", v.err);
	}
	json_free(&d);
	free(text);
	return CLI_OK;
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

/* Follows job id until it ends: a bar on a terminal, a line per 10 s
 * otherwise.  CLI_OK if it loaded everything. */
static int
follow(struct cli *c, ferry_t *f, const char *id, const char *path)
{
	int tty = isatty(1);
	int64_t last_line = 0;
	for (;;) {
		char *text = NULL;
		int r = ferry_load_json(f, id, &text);
		if (r) {
			if (tty)
				printf("\n");
			return cli_error(c, path, r);
		}
		struct json_doc d;
		struct jobview v;
		int ok = json_parse(&d, text, strlen(text)) == 0;
		int arr = ok ? json_obj_get(&d, 0, "jobs") : -1;
		ok = ok && arr >= 0 && d.toks[arr].type == JSON_ARRAY && d.toks[arr].size == 1;
		if (ok)
			jv_read(&d, json_arr_get(&d, arr, 0), &v);
		if (arr >= 0 || ok)
			json_free(&d);
		free(text);
		if (!ok)
			return cli_error_local(c, path, -EPROTO);
		char line[256];
		jv_line(&v, line, sizeof(line));
		int running = strcmp(v.state, "running") == 0;
		if (tty) {
			int width = 30, fill = v.bytes_total > 0 ?
			    (int)(width * (double)v.bytes_done / (double)v.bytes_total) : 0;
			if (!v.listing_done || fill > width)
				fill = fill > width ? width : fill;
			char bar[40];
			for (int i = 0; i < width; i++)
				bar[i] = i < fill ? '#' : '.';
			bar[width] = 0;
			printf("\r[%s] %s\033[K", bar, line);
			fflush(stdout);
		} else if (!running || now_ms() - last_line >= 10000) {
			printf("%s: %s\n", path, line);
			fflush(stdout);
			last_line = now_ms();
		}
		if (!running) {
			if (tty)
				printf("\n");
			char fb[32];
			fmt_bytes((double)v.fetched, fb, sizeof(fb));
			if (strcmp(v.state, "done") == 0 && !v.not_cached) {
				printf("%s: loaded (%s read from the under-store)%s\n", path, fb,
				    v.mismatches ? "; --verify fetched some again" : "");
				return CLI_OK;
			}
			fprintf(stderr, "ferry: load: %s: %s: %" PRId64 " file(s) failed, %" PRId64
			    " not cached (no room: capacity, quota or pins)%s%s\n", path, v.state,
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
	ferry_t *f = NULL;
	if (n < 0)
		rc = CLI_USAGE;
	else if (a.status && n > 0)
		rc = cli_usage_error(c, "--status takes no path");
	else if (!a.status && n != 1)
		rc = cli_usage_error(c, "one path to load (e.g. /train/imagenet)");
	else if (cli_connect(c, &f))
		rc = CLI_FAIL;
	if (rc == CLI_OK && a.status) {
		rc = load_status(c, f, a.json);
	} else if (rc == CLI_OK) {
		char *p = ops[0][0] == '/' || !a.stop ? cli_norm_path(ops[0]) : strdup(ops[0]);
		char id[17] = "";
		int r = p ? 0 : -ENOMEM;
		if (r == 0 && a.stop) {
			r = find_job(f, p, id);
			if (r == 0)
				r = ferry_load_stop(f, id);
			if (r == 0)
				printf("%s: stopped (job %s)\n", p, id);
			else
				rc = cli_error(c, p, r);
		} else if (r == 0) {
			r = ferry_load_start(f, p, a.bandwidth, a.parallel, a.verify, id);
			if (r) {
				rc = cli_error(c, p, r);
			} else if (a.detach) {
				printf("%s\n", id);
			} else {
				if (isatty(1))
					printf("loading %s (job %s; Ctrl-C leaves it running, "
					    "`ferry load --stop %s` stops it)\n", p, id, p);
				rc = follow(c, f, id, p);
			}
		} else {
			rc = cli_error(c, ops[0], r);
		}
		free(p);
	}
	ferry_close(&f);
	free(ops);
	return rc;
}
