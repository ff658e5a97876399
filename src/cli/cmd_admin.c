/*
 * cmd_admin.c: the ferry CLI's administrative commands: mount, unmount,
 * mounts and stats.  Main thread only.  Replies are parsed with the
 * project's JSON reader (with --json, printed as the worker sent them);
 * secrets are printed only as the worker returns them (it redacts them).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

enum { O_OPTION = 1, O_NO_CHECK };

const struct cli_opt cmd_mount_opts[] = {
	{O_OPTION, 'o', "option", "KEY=VALUE", "a mount option (below); repeat for "
	    "several"},
	{O_NO_CHECK, 0, "no-check", NULL, "add the mount without listing its root "
	    "first (an under-store\nthat is not there yet, as a NAS not mounted)"},
	{0, 0, NULL, NULL, NULL},
};

struct mount_args {
	struct cli *c;
	const char **opts;
	int nopts;
	unsigned flags;
};

static int
on_mount_opt(void *arg, int id, const char *val)
{
	struct mount_args *m = arg;
	if (id == O_NO_CHECK) {
		m->flags |= FERRY_MOUNT_NO_CHECK;
		return 0;
	}
	const char *eq = strchr(val, '=');
	if (!eq || eq == val)
		return cli_usage_error(m->c, "option '%s' is not KEY=VALUE", val);
	m->opts[m->nopts++] = val;
	return 0;
}

int
cmd_mount(struct cli *c, int argc, char **argv)
{
	const char **opts = calloc((size_t)argc, sizeof(*opts));
	char **ops = calloc((size_t)argc, sizeof(*ops));
	int rc = CLI_OK;
	if (!opts || !ops) {
		free(opts);
		free(ops);
		return cli_error_local(c, NULL, -ENOMEM);
	}
	struct mount_args ma = {c, opts, 0, 0};
	int nops = cli_parse(c, argc, argv, cmd_mount_opts, on_mount_opt, &ma, ops);
	if (nops < 0) {
		rc = CLI_USAGE;
		goto out;
	}
	if (nops < 2) {
		rc = cli_usage_error(c, nops ? "missing URI" : "missing /NAME and URI");
		goto out;
	}
	if (nops > 2) {
		rc = cli_usage_error(c, "unexpected argument '%s'", ops[2]);
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
	int r = ferry_mount_flags(f, name, ops[1], opts, ma.nopts, ma.flags);
	if (r)
		rc = cli_error(c, what, r);
	else
		printf("mounted %s -> %s\n", what, ops[1]);
	ferry_close(&f);
out:
	free(opts);
	free(ops);
	return rc;
}

static int
no_opt(void *arg, int id, const char *val)
{
	return 0;
}

int
cmd_unmount(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	int n = cli_parse(c, argc, argv, NULL, no_opt, NULL, ops);
	const char *arg = n > 0 ? ops[0] : NULL;
	char *extra = n > 1 ? ops[1] : NULL;
	free(ops);
	if (n < 0)
		return CLI_USAGE;
	if (extra)
		return cli_usage_error(c, "unexpected argument '%s'", extra);
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

static int
on_json(void *arg, int id, const char *val)
{
	*(int *)arg = 1;
	return 0;
}

/*
 * Fetches a JSON document with get() and parses it; the text stays in
 * *text for d's lifetime.  With --json the document is printed as it came
 * and *text is NULL (nothing more to do).
 */
static int
fetch_json(struct cli *c, int argc, char **argv,
    int (*get)(ferry_t *, char **), char **text, struct json_doc *d)
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
	ferry_t *f;
	if (cli_connect(c, &f))
		return CLI_FAIL;
	*text = NULL;
	int r = get(f, text);
	if (r) {
		r = cli_error(c, NULL, r);
		ferry_close(&f);
		return r;
	}
	ferry_close(&f);
	if (json_parse(d, *text, strlen(*text)) != 0 || d->ntoks == 0 ||
	    d->toks[0].type != JSON_OBJECT) {
		free(*text);
		*text = NULL;
		return cli_error_local(c, NULL, -EPROTO);
	}
	if (json) {
		size_t l = strlen(*text);
		while (l && (*text)[l - 1] == '\n')
			l--;
		printf("%.*s\n", (int)l, *text);
		json_free(d);
		free(*text);
		*text = NULL;
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
	if (rc || !text)
		return rc;
	int arr = json_obj_get(&d, 0, "mounts");
	if (arr < 0 || d.toks[arr].type != JSON_ARRAY) {
		json_free(&d);
		free(text);
		return cli_error_local(c, NULL, -EPROTO);
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

enum { WB_O_WAIT = 1, WB_O_TIMEOUT };

struct wb_args {
	int json, wait;
	double timeout; /* seconds; <= 0: none */
};

static int
on_wb_opt(void *arg, int id, const char *val)
{
	struct wb_args *a = arg;
	if (id == CLI_O_JSON) {
		a->json = 1;
	} else if (id == WB_O_WAIT) {
		a->wait = 1;
	} else if (id == WB_O_TIMEOUT) {
		char *end;
		a->timeout = strtod(val, &end);
		if (!val[0] || *end || a->timeout <= 0) {
			fprintf(stderr, "ferry writeback: bad --timeout '%s' (seconds)\n", val);
			return CLI_USAGE;
		}
	}
	return 0;
}

const struct cli_opt cli_writeback_opts[] = {
	{CLI_O_JSON, 0, "json", NULL, "the worker's answer (GET /v1/writeback): mounts, each with mount,\n"
	    "attached, objects, bytes, oldest_s, uploading, uploaded, failures\n"
	    "and last_error"},
	{WB_O_WAIT, 0, "wait", NULL, "wait until every write of the mount(s) is in its under-store\n"
	    "(exit 1 on --timeout, naming the last error)"},
	{WB_O_TIMEOUT, 0, "timeout", "SECONDS", "give up waiting after this long (default: no limit)"},
	{0, 0, NULL, NULL, NULL},
};

/* One row per mount of the document (only `only`, if given): printed
 * unless quiet; the objects pending summed into *pending, the last error
 * of a mount with some into why. */
static int
wb_rows(const struct json_doc *d, const char *only, int quiet,
    int64_t *pending, char *why, size_t whyn)
{
	int arr = json_obj_get(d, 0, "mounts"), n = 0;
	*pending = 0;
	if (!quiet)
		printf("%-20s %8s %10s %8s %9s %s\n", "MOUNT", "OBJECTS", "BYTES",
		    "OLDEST", "UPLOADING", "LAST ERROR");
	for (int i = 0; arr >= 0; i++) {
		int t = json_arr_get(d, arr, i);
		if (t < 0)
			break;
		char *name = json_str(d, json_obj_get(d, t, "mount"));
		if (only && (!name || strcmp(name, only))) {
			free(name);
			continue;
		}
		char *le = json_str(d, json_obj_get(d, t, "last_error"));
		int ok;
		int64_t objects = json_int(d, json_obj_get(d, t, "objects"), &ok);
		int64_t bytes = json_int(d, json_obj_get(d, t, "bytes"), &ok);
		int64_t oldest = json_int(d, json_obj_get(d, t, "oldest_s"), &ok);
		int64_t up = json_int(d, json_obj_get(d, t, "uploading"), &ok);
		int attached = json_bool(d, json_obj_get(d, t, "attached"));
		*pending += objects;
		if (objects && le && *le)
			snprintf(why, whyn, "/%s: %s", name ? name : "?", le);
		if (!quiet) {
			char hb[32], age[32], slashed[80];
			fmt_bytes((double)bytes, hb, sizeof(hb));
			if (objects == 0)
				snprintf(age, sizeof(age), "-");
			else
				snprintf(age, sizeof(age), "%" PRId64 "s", oldest);
			snprintf(slashed, sizeof(slashed), "/%s%s", name ? name : "?",
			    attached ? "" : " (unmounted)");
			printf("%-20s %8" PRId64 " %10s %8s %9" PRId64 " %s\n", slashed,
			    objects, hb, age, up, objects && le && *le ? le : "-");
		}
		free(name);
		free(le);
		n++;
	}
	return n;
}

int
cmd_writeback(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	struct wb_args a = {0};
	int nops = cli_parse(c, argc, argv, cli_writeback_opts, on_wb_opt, &a, ops);
	const char *only = nops > 0 ? ops[0] : NULL;
	char *extra = nops > 1 ? ops[1] : NULL;
	free(ops);
	if (nops < 0)
		return CLI_USAGE;
	if (extra)
		return cli_usage_error(c, "unexpected argument '%s'", extra);
	if (only && only[0] == '/')
		only++;
	ferry_t *f;
	if (cli_connect(c, &f))
		return CLI_FAIL;
	double t0 = (double)now_ms();
	int rc = CLI_OK;
	for (;;) {
		char *text = NULL;
		int r = ferry_writeback_json(f, &text);
		if (r) {
			rc = cli_error(c, NULL, r);
			break;
		}
		struct json_doc d;
		if (json_parse(&d, text, strlen(text)) != 0 || d.ntoks == 0 ||
		    d.toks[0].type != JSON_OBJECT) {
			free(text);
			rc = cli_error_local(c, NULL, -EPROTO);
			break;
		}
		int64_t pending;
		char why[512] = "";
		int quiet = a.wait || a.json;
		int n = wb_rows(&d, only, quiet, &pending, why, sizeof(why));
		json_free(&d);
		if (!a.wait || pending == 0) {
			if (a.json) {
				size_t l = strlen(text);
				while (l && text[l - 1] == '\n')
					l--;
				printf("%.*s\n", (int)l, text);
			} else if (a.wait) {
				printf("every write is in its under-store\n");
			} else if (n == 0) {
				printf(only ? "(/%s is not a write=back mount)\n" :
				    "(no write=back mounts)\n", only);
			}
			free(text);
			if (only && n == 0 && a.wait)
				rc = cli_error_local(c, only, -ENOENT);
			break;
		}
		free(text);
		if (a.timeout > 0 && ((double)now_ms() - t0) / 1000.0 >= a.timeout) {
			fprintf(stderr, "ferry writeback: %" PRId64 " write(s) still not in "
			    "the under-store after %.0f s%s%s\n", pending, a.timeout,
			    why[0] ? "; last error: " : "", why);
			rc = CLI_FAIL;
			break;
		}
		usleep(200000);
	}
	ferry_close(&f);
	return rc;
}

int
cmd_stats(struct cli *c, int argc, char **argv)
{
	char *text;
	struct json_doc d;
	int rc = fetch_json(c, argc, argv, ferry_stats_json, &text, &d);
	if (rc || !text)
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
	print_bytes_line("read-ahead bytes:", stat_field(&d, "readahead_bytes"));
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
	print_bytes_line("pinned bytes:", stat_field(&d, "pinned_bytes"));
	int arr = json_obj_get(&d, 0, "per_mount");
	int nm = arr >= 0 && d.toks[arr].type == JSON_ARRAY ? d.toks[arr].size : 0;
	for (int i = 0; i < nm; i++) {
		int t = json_arr_get(&d, arr, i), ok = 0;
		char *name = json_str(&d, json_obj_get(&d, t, "mount"));
		int64_t v[3];
		const char *keys[3] = {"cached_bytes", "quota_bytes", "pinned_bytes"};
		char h[3][32];
		for (int k = 0; k < 3; k++) {
			v[k] = json_int(&d, json_obj_get(&d, t, keys[k]), &ok);
			fmt_bytes((double)(ok ? v[k] : 0), h[k], sizeof(h[k]));
		}
		char label[80];
		snprintf(label, sizeof(label), "/%s:", name ? name : "?");
		printf("%-18s %s cached%s%s%s, %s pinned\n", label, h[0],
		    v[1] > 0 ? " of a " : "", v[1] > 0 ? h[1] : "", v[1] > 0 ? " quota" : "", h[2]);
		free(name);
	}
	json_free(&d);
	free(text);
	cli_print_cluster_stats(c);
	return CLI_OK;
}
