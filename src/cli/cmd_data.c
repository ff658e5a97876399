/*
 * cmd_data.c: the ferry CLI's dataset commands: `ferry pin`/`unpin`,
 * `ferry ttl`, `ferry free`, `ferry du` and `ferry refresh` (over libferry's
 * ferry_pin, ferry_ttl, ferry_free, ferry_du_json, ferry_refresh).  Main
 * thread only.  Each prints the worker's reason when the worker refuses
 * (cli_error), and exits 0, 1 (refused or failed) or 2 (usage).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	int n = parse(c, argc, argv, on ? cli_pin_opts : cli_json_only_opts, &a, ops);
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
	int n = parse(c, argc, argv, cli_json_only_opts, &a, ops);
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
