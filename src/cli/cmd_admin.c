/*
 * cmd_admin.c: the ferry CLI's administrative commands: mount, unmount,
 * mounts and stats.  Main thread only.  Replies are parsed with the
 * project's JSON reader; secrets are printed only as the worker returns
 * them (it redacts them).
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

/* "train" from "/train" or "train"; NULL if not a single name. */
static const char *
mount_arg(const char *a)
{
	if (a[0] == '/')
		a++;
	if (!*a || strchr(a, '/'))
		return NULL;
	return a;
}

int
cmd_mount(struct cli *c, int argc, char **argv)
{
	const char **opts = calloc((size_t)argc, sizeof(*opts));
	const char *ops[2];
	int nops = 0, nopts = 0, dashes = 0, rc = CLI_OK;
	if (!opts)
		return cli_error(c, NULL, -ENOMEM);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL;
		if (!dashes && strcmp(a, "--") == 0) {
			dashes = 1;
			continue;
		}
		if (!dashes && (strcmp(a, "-o") == 0 || strcmp(a, "--option") == 0)) {
			if (i + 1 >= argc) {
				rc = cli_usage_error(c, "%s needs KEY=VALUE", a);
				goto out;
			}
			v = argv[++i];
		} else if (!dashes && strncmp(a, "--option=", 9) == 0)
			v = a + 9;
		else if (!dashes && strncmp(a, "-o", 2) == 0)
			v = a + 2;
		else if (!dashes && a[0] == '-' && a[1]) {
			rc = cli_usage_error(c, "unknown option '%s'", a);
			goto out;
		} else {
			if (nops == 2) {
				rc = cli_usage_error(c, "unexpected argument '%s'", a);
				goto out;
			}
			ops[nops++] = a;
			continue;
		}
		const char *eq = strchr(v, '=');
		if (!eq || eq == v) {
			rc = cli_usage_error(c, "option '%s' is not KEY=VALUE", v);
			goto out;
		}
		opts[nopts++] = v;
	}
	if (nops < 2) {
		rc = cli_usage_error(c, nops ? "missing URI" : "missing /NAME and URI");
		goto out;
	}
	const char *name = mount_arg(ops[0]);
	if (!name) {
		rc = cli_usage_error(c, "'%s' is not a mount name like /train", ops[0]);
		goto out;
	}
	ferry_t *f;
	if (cli_connect(c, &f)) {
		rc = CLI_FAIL;
		goto out;
	}
	char what[300];
	snprintf(what, sizeof(what), "/%s", name);
	int r = ferry_mount(f, name, ops[1], opts, nopts);
	if (r)
		rc = cli_error(c, what, r);
	else
		printf("mounted %s -> %s\n", what, ops[1]);
	ferry_close(&f);
out:
	free(opts);
	return rc;
}

int
cmd_unmount(struct cli *c, int argc, char **argv)
{
	const char *arg = NULL;
	int dashes = 0;
	for (int i = 1; i < argc; i++) {
		if (!dashes && strcmp(argv[i], "--") == 0) {
			dashes = 1;
			continue;
		}
		if (!dashes && argv[i][0] == '-' && argv[i][1])
			return cli_usage_error(c, "unknown option '%s'", argv[i]);
		if (arg)
			return cli_usage_error(c, "unexpected argument '%s'", argv[i]);
		arg = argv[i];
	}
	if (!arg)
		return cli_usage_error(c, "missing /NAME");
	const char *name = mount_arg(arg);
	if (!name)
		return cli_usage_error(c, "'%s' is not a mount name like /train", arg);
	ferry_t *f;
	if (cli_connect(c, &f))
		return CLI_FAIL;
	char what[300];
	snprintf(what, sizeof(what), "/%s", name);
	int r = ferry_unmount(f, name);
	int rc = CLI_OK;
	if (r)
		rc = cli_error(c, what, r);
	else
		printf("unmounted %s\n", what);
	ferry_close(&f);
	return rc;
}

/* Fetches a JSON document with get() and parses it; the text stays in
 * *text for d's lifetime. */
static int
fetch_json(struct cli *c, int argc, char **argv,
    int (*get)(ferry_t *, char **), char **text, struct json_doc *d)
{
	if (argc > 1)
		return cli_usage_error(c, "unexpected argument '%s'", argv[1]);
	ferry_t *f;
	if (cli_connect(c, &f))
		return CLI_FAIL;
	int r = get(f, text);
	ferry_close(&f);
	if (r)
		return cli_error(c, NULL, r);
	if (json_parse(d, *text, strlen(*text)) != 0 || d->ntoks == 0 ||
	    d->toks[0].type != JSON_OBJECT) {
		free(*text);
		return cli_error(c, NULL, -EPROTO);
	}
	return CLI_OK;
}

/* A value as text: strings decoded, other values as written; malloc'd. */
static char *
value_text(const struct json_doc *d, int tok)
{
	if (tok < 0)
		return strdup("");
	if (d->toks[tok].type == JSON_STRING) {
		char *s = json_str(d, tok);
		return s ? s : strdup("?");
	}
	return strndup(d->text + d->toks[tok].start,
	    (size_t)(d->toks[tok].end - d->toks[tok].start));
}

/* "k=v,k=v" for an options object. */
static char *
options_text(const struct json_doc *d, int obj)
{
	struct dbuf b;
	dbuf_init(&b, 1u << 20);
	if (obj < 0 || d->toks[obj].type != JSON_OBJECT)
		return dbuf_take(&b);
	int k = obj + 1;
	for (int i = 0; i < d->toks[obj].size; i++) {
		char *key = json_str(d, k);
		char *val = value_text(d, k + 1);
		dbuf_printf(&b, "%s%s=%s", i ? "," : "", key ? key : "?",
		    val ? val : "?");
		free(key);
		free(val);
		k = d->toks[k + 1].next;
	}
	return dbuf_take(&b);
}

int
cmd_mounts(struct cli *c, int argc, char **argv)
{
	char *text;
	struct json_doc d;
	int rc = fetch_json(c, argc, argv, ferry_mounts_json, &text, &d);
	if (rc)
		return rc;
	int arr = json_obj_get(&d, 0, "mounts");
	if (arr < 0 || d.toks[arr].type != JSON_ARRAY) {
		json_free(&d);
		free(text);
		return cli_error(c, NULL, -EPROTO);
	}
	int n = d.toks[arr].size;
	/* Two passes: widths, then rows. */
	int wname = 4, wuri = 3;
	for (int i = 0; i < n; i++) {
		int m = json_arr_get(&d, arr, i);
		char *name = value_text(&d, json_obj_get(&d, m, "name"));
		char *uri = value_text(&d, json_obj_get(&d, m, "uri"));
		int ln = name ? (int)strlen(name) + 1 : 0;
		int lu = uri ? (int)strlen(uri) : 0;
		if (ln > wname)
			wname = ln > 40 ? 40 : ln;
		if (lu > wuri)
			wuri = lu > 60 ? 60 : lu;
		free(name);
		free(uri);
	}
	printf("%-*s  %-*s  %s\n", wname, "NAME", wuri, "URI", "OPTIONS");
	for (int i = 0; i < n; i++) {
		int m = json_arr_get(&d, arr, i);
		char *name = value_text(&d, json_obj_get(&d, m, "name"));
		char *uri = value_text(&d, json_obj_get(&d, m, "uri"));
		char *opts = options_text(&d, json_obj_get(&d, m, "options"));
		char slashed[300];
		snprintf(slashed, sizeof(slashed), "%s%s",
		    name && name[0] == '/' ? "" : "/", name ? name : "?");
		printf("%-*s  %-*s  %s\n", wname, slashed, wuri, uri ? uri : "?",
		    opts && *opts ? opts : "-");
		free(name);
		free(uri);
		free(opts);
	}
	json_free(&d);
	free(text);
	return CLI_OK;
}

/* Number field, or -1 if missing. */
static int64_t
stat_field(const struct json_doc *d, const char *key)
{
	int ok = 0;
	int64_t v = json_int(d, json_obj_get(d, 0, key), &ok);
	return ok ? v : -1;
}

static void
print_bytes_line(const char *label, int64_t v)
{
	char h[32];
	if (v < 0) {
		printf("%-18s -\n", label);
		return;
	}
	fmt_bytes((double)v, h, sizeof(h));
	printf("%-18s %s (%" PRId64 " bytes)\n", label, h, v);
}

static void
print_count_line(const char *label, int64_t v)
{
	if (v < 0)
		printf("%-18s -\n", label);
	else
		printf("%-18s %" PRId64 "\n", label, v);
}

int
cmd_stats(struct cli *c, int argc, char **argv)
{
	char *text;
	struct json_doc d;
	int rc = fetch_json(c, argc, argv, ferry_stats_json, &text, &d);
	if (rc)
		return rc;
	int64_t hit = stat_field(&d, "hit_bytes");
	int64_t miss = stat_field(&d, "miss_bytes");
	int64_t used = stat_field(&d, "used_bytes");
	int64_t cap = stat_field(&d, "capacity_bytes");
	if (hit >= 0 && miss >= 0 && hit + miss > 0)
		printf("%-18s %.1f%%\n", "hit ratio:",
		    100.0 * (double)hit / ((double)hit + (double)miss));
	else
		printf("%-18s -\n", "hit ratio:");
	print_bytes_line("hit bytes:", hit);
	print_bytes_line("miss bytes:", miss);
	print_bytes_line("ufs read bytes:", stat_field(&d, "ufs_read_bytes"));
	print_count_line("ufs requests:", stat_field(&d, "ufs_requests"));
	if (used >= 0 && cap >= 0) {
		char hu[32], hc[32];
		fmt_bytes((double)used, hu, sizeof(hu));
		fmt_bytes((double)cap, hc, sizeof(hc));
		printf("%-18s %s / %s", "used / capacity:", hu, hc);
		if (cap > 0)
			printf(" (%.1f%%)", 100.0 * (double)used / (double)cap);
		printf("\n");
	} else {
		print_bytes_line("used:", used);
		print_bytes_line("capacity:", cap);
	}
	print_count_line("pages:", stat_field(&d, "pages"));
	print_bytes_line("evicted bytes:", stat_field(&d, "evicted_bytes"));
	print_count_line("checksum failures:", stat_field(&d, "checksum_failures"));
	json_free(&d);
	free(text);
	cli_print_cluster_stats(c);
	return CLI_OK;
}
