/*
 * main.c: the `ferry` command: dispatches to the worker (`ferry worker`)
 * or to one of the client commands, after taking the global options
 * (--worker, --token, --help, --version) from anywhere before a "--".
 * Also the tables every command is described by (commands, global
 * options) and the helpers the commands share: the option parser, help
 * and usage texts, error messages with their cause, path normalisation,
 * stdout writes.
 *
 * Threads: the client commands run on the main thread only; `worker`
 * hands the process over to worker_main(), `fuse` to fuse_main_cmd().
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/suggest.h"
#include "common/util.h"
#include "fuse/fuse_fs.h"
#include "ufs/ufs.h"
#include "worker/mounts.h"
#include "worker/worker.h"

#ifndef FERRY_VERSION
#define FERRY_VERSION "0.1.0"
#endif
const char cli_version[] = FERRY_VERSION;

static int cmd_version(struct cli *c, int argc, char **argv);
static int cmd_help(struct cli *c, int argc, char **argv);
static int cmd_fuse(struct cli *c, int argc, char **argv);

enum { G_WORKER = 1, G_TOKEN, G_HELP, G_VERSION, G_HELP_MAN, G_HELP_COMPLETION };

const struct cli_opt cli_global_opts[] = {
	{G_WORKER, 0, "worker", "HOST:PORT", "the worker's control address\n"
	    "(default $FERRY_WORKER, else " FERRY_DEFAULT_ADDR ")"},
	{G_TOKEN, 0, "token", "TOKEN", "bearer token for the control API: mount and "
	    "unmount need it\nwhen the worker has one (default $FERRY_TOKEN)"},
	{G_HELP, 'h', "help", NULL, "help for the command"},
	{G_VERSION, 'V', "version", NULL, "print the version"},
	{G_HELP_MAN, 0, "help-man", NULL, "print this help as a manual page (roff)"},
	{G_HELP_COMPLETION, 0, "help-completion", NULL,
	    "print a bash completion script for ferry"},
	{0, 0, NULL, NULL, NULL},
};

const struct cli_opt cli_json_only_opts[] = {
	{CLI_O_JSON, 0, "json", NULL, "print the worker's answer as JSON"},
	{0, 0, NULL, NULL, NULL},
};

const struct cli_cmd cli_cmds[] = {
	{"worker", NULL, "worker [OPTIONS]", "run a worker (see `ferry worker --help`)",
	    NULL, NULL},
	{"ls", cmd_ls, "ls [-l] [--json] [PATH]",
	    "list a directory (default /: the mounts)", cmd_ls_opts, NULL},
	{"stat", cmd_stat, "stat [--json] PATH...",
	    "show size, mtime, etag and how much is cached",
	    (const struct cli_opt[]){{CLI_O_JSON, 0, "json", NULL,
	        "one JSON object per PATH and line: path, is_dir, size,\n"
	        "mtime (null if unknown), etag, cached_bytes"},
	        {0, 0, NULL, NULL, NULL}}, NULL},
	{"cat", cmd_cat, "cat PATH...", "write files to stdout", NULL, NULL},
	{"put", cmd_put, "put SRC PATH", "write a local file (- for stdin) as PATH",
	    NULL, "The answer comes once the mount's under-store has the object;\n"
	    "until then nothing is visible.  The bytes go to the worker as they are\n"
	    "read (a pipe streams); a put cut short commits nothing.  A mount with\n"
	    "readonly=true refuses.\n"},
	{"rm", cmd_rm, "rm PATH...", "remove objects", NULL, NULL},
	{"mv", cmd_mv, "mv FROM TO", "rename an object within a mount", NULL, NULL},
	{"mount", cmd_mount, "mount /NAME URI [-o KEY=VALUE]... [--no-check]",
	    "add a mount (needs the worker's token if it has one)", cmd_mount_opts,
	    "URI is s3://BUCKET[/PREFIX] or file:///DIR.  The worker lists one key\n"
	    "at the root of a new mount first, so that a bucket that does not exist,\n"
	    "a host that does not resolve or keys the store refuses fail now.\n"},
	{"unmount", cmd_unmount, "unmount /NAME", "remove a mount", NULL, NULL},
	{"fuse", cmd_fuse, FUSE_CMD_USAGE, FUSE_CMD_SUMMARY, fuse_cmd_options,
	    FUSE_CMD_DETAILS},
	{"mounts", cmd_mounts, "mounts [--json]", "list the mounts (secrets redacted)",
	    (const struct cli_opt[]){{CLI_O_JSON, 0, "json", NULL,
	        "the worker's answer (GET /v1/mounts): mounts, each with name,\n"
	        "uri, state and options (secrets redacted)"}, {0, 0, NULL, NULL, NULL}}, NULL},
	{"stats", cmd_stats, "stats [--json]",
	    "show cache statistics (and the cluster's, in a cluster)",
	    (const struct cli_opt[]){{CLI_O_JSON, 0, "json", NULL,
	        "the worker's answer (GET /v1/stats; this worker only)"},
	        {0, 0, NULL, NULL, NULL}}, NULL},
	{"writeback", cmd_writeback, "writeback [/MOUNT] [--wait [--timeout SECONDS]] [--json]",
	    "what write=back mounts have not yet written to their under-stores",
	    cli_writeback_opts, NULL},
	{"load", cmd_load, "load PATH [--bandwidth RATE] [--parallel N] [--replicas N] [--verify] [-d] | load --status | load --stop PATH",
	    "bring everything under PATH into the cache, with a progress bar", cli_load_opts,
	    "The job runs in the worker: Ctrl-C leaves it running, `--stop` stops it,\n"
	    "and it resumes where it stopped when the worker restarts (a page cached\n"
	    "already is never fetched again).  Exits 1 if a file failed or did not\n"
	    "fit (capacity, quota, pins); --status shows why.  In a cluster the job\n"
	    "is kept in etcd and every worker loads the blocks placement gives it\n"
	    "(one that joins later too), at its share of --bandwidth."},
	{"pin", cmd_pin, "pin PATH... | pin --list [--json]",
	    "keep cached data under PATH from eviction (now and later)", cli_pin_opts,
	    "A pin applies to what is cached under PATH now and to what is cached\n"
	    "later; it is refused if the data under PATH would take more than the\n"
	    "worker's --pin-limit of its cache (in a cluster: each worker's share of\n"
	    "it, against its own limit).  Pins are kept in the worker's state dir,\n"
	    "and in a cluster in etcd for every worker.  `ferry unpin PATH` removes\n"
	    "one."},
	{"unpin", cmd_unpin, "unpin PATH...", "let cached data under PATH be evicted again",
	    NULL, NULL},
	{"ttl", cmd_ttl, "ttl PATH DURATION | ttl PATH --clear | ttl --list [--json]",
	    "drop cached data under PATH that long after it was cached", cli_ttl_opts,
	    "DURATION: 90s, 30m, 24h, 7d, 2w or sums like 1h30m.  The under-store is\n"
	    "not touched; pinned data stays (a pin wins)."},
	{"free", cmd_free, "free PATH... [--force] [--json]",
	    "drop what is cached under PATH now (the under-store is untouched)",
	    cli_free_opts, NULL},
	{"du", cmd_du, "du PATH... [-s] [--json]",
	    "per entry under PATH: total, cached and pinned bytes (a cluster: hot blocks, workers)",
	    cli_du_opts, NULL},
	{"refresh", cmd_refresh, "refresh PATH...",
	    "ask the under-store again about everything under PATH now",
	    NULL,
	    "Forgets the stat and list answers under PATH instead of waiting for the\n"
	    "sync interval: a file changed in the under-store is seen at once."},
	{"workers", cmd_workers, "workers [--json]",
	    "list the cluster's workers: state, capacity, use, hit ratio",
	    (const struct cli_opt[]){{CLI_O_JSON, 0, "json", NULL,
	        "one JSON object: cluster, etcd_ok, block_size and workers, each\n"
	        "with id, ctl, s3, self, up, capacity_bytes, used_bytes, hit_bytes,\n"
	        "miss_bytes, pages, uptime_s (null where unknown)"},
	        {0, 0, NULL, NULL, NULL}}, NULL},
	{"version", cmd_version, "version", "print the version", NULL, NULL},
	{"help", cmd_help, "help [COMMAND]", "show help", NULL, NULL},
	{NULL, NULL, NULL, NULL, NULL, NULL},
};

const struct cli_cmd *
cli_find_cmd(const char *name)
{
	for (const struct cli_cmd *c = cli_cmds; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Help                                                                 */

/* "-l, --long ARG" or "    --json" into out. */
static void
opt_label(const struct cli_opt *o, char *out, size_t n)
{
	if (o->short_name && o->long_name)
		snprintf(out, n, "-%c, --%s%s%s", o->short_name, o->long_name,
		    o->arg ? " " : "", o->arg ? o->arg : "");
	else if (o->short_name)
		snprintf(out, n, "-%c%s%s", o->short_name, o->arg ? " " : "",
		    o->arg ? o->arg : "");
	else
		snprintf(out, n, "    --%s%s%s", o->long_name, o->arg ? " " : "",
		    o->arg ? o->arg : "");
}

#define HELP_WIDTH 79

/* help after a label of width w (indented by 2), as one paragraph (its
 * '\n's are spaces) wrapped at words to HELP_WIDTH columns, continuation
 * lines aligned. */
static void
print_labelled(FILE *out, const char *label, int w, const char *help)
{
	int col = 2 + w + 2, room = HELP_WIDTH - col;
	if (room < 30)
		room = 30;
	if ((int)strlen(label) > w)
		fprintf(out, "  %s\n  %-*s  ", label, w, "");
	else
		fprintf(out, "  %-*s  ", w, label);
	char *para = strdup(help);
	if (!para) {
		fprintf(out, "%s\n", help);
		return;
	}
	for (char *p = para; *p; p++)
		if (*p == '\n')
			*p = ' ';
	int first = 1;
	{
		const char *line = para;
		size_t l = strlen(para);
		while (l > 0) {
			size_t take = l;
			if ((int)take > room) {
				take = (size_t)room;
				while (take > 0 && line[take] != ' ')
					take--;
				if (take == 0)
					take = (size_t)room; /* one long word */
			}
			if (!first)
				fprintf(out, "  %-*s  ", w, "");
			fprintf(out, "%.*s\n", (int)take, line);
			first = 0;
			line += take;
			l -= take;
			while (l > 0 && *line == ' ') {
				line++;
				l--;
			}
		}
	}
	free(para);
	if (first)
		fputc('\n', out);
}

void
cli_print_opts(FILE *out, const struct cli_opt *opts)
{
	int w = 0;
	char lab[128];
	for (const struct cli_opt *o = opts; o && o->id; o++) {
		opt_label(o, lab, sizeof(lab));
		if ((int)strlen(lab) > w)
			w = (int)strlen(lab);
	}
	if (w > 28)
		w = 28;
	for (const struct cli_opt *o = opts; o && o->id; o++) {
		opt_label(o, lab, sizeof(lab));
		print_labelled(out, lab, w, o->help);
	}
}

struct keys_out {
	FILE *out;
};

static void
print_key(void *arg, const char *key, const char *value, const char *help)
{
	struct keys_out *k = arg;
	char lab[96];
	snprintf(lab, sizeof(lab), "%s=%s", key, value);
	print_labelled(k->out, lab, 26, help);
}

static void
print_global_help(FILE *out)
{
	fprintf(out, "Global options (before or after the command):\n");
	cli_print_opts(out, cli_global_opts);
}

void
cli_print_help(FILE *out, const struct cli_cmd *cmd)
{
	fprintf(out, "usage: ferry %s\n\n%s.\n", cmd->usage, cmd->summary);
	if (cmd->opts && cmd->opts[0].id) {
		fprintf(out, "\nOptions:\n");
		cli_print_opts(out, cmd->opts);
	}
	if (cmd->details)
		fprintf(out, "\n%s", cmd->details);
	if (cmd->run == cmd_mount) {
		fprintf(out, "\nMount options (-o KEY=VALUE):\n");
		struct keys_out k = {out};
		cli_mount_keys(print_key, &k);
	}
	fprintf(out, "\n");
	print_global_help(out);
}

static void
print_main_help(FILE *out)
{
	fprintf(out, "usage: ferry [--worker HOST:PORT] [--token TOKEN] COMMAND [ARGS]\n\n"
		     "ferry is a read-through cache for training data.  Commands:\n");
	for (const struct cli_cmd *c = cli_cmds; c->name; c++)
		fprintf(out, "  %-8s %s\n", c->name, c->summary);
	fprintf(out, "\n");
	print_global_help(out);
	fprintf(out, "\nRun `ferry COMMAND --help` for a command's options.\n");
}

void
cli_mount_keys(void (*fn)(void *arg, const char *key, const char *value,
    const char *help), void *arg)
{
	fn(arg, MOUNT_OPT_REPLICAS, "N", "workers of a cluster that cache each block "
	    "(1-16, default 1)");
	fn(arg, MOUNT_OPT_WRITE, "through|around|back", "writes go to the under-store and the "
	    "cache (through, default), or the under-store only (around), or are "
	    "acknowledged once on the worker's disk and uploaded in the background "
	    "(back; a single worker; see `ferry writeback`)");
	fn(arg, MOUNT_OPT_READONLY, "true|false", "refuse every write to this mount "
	    "(default false)");
	fn(arg, MOUNT_OPT_QUOTA, "SIZE", "the most this mount may cache on each worker "
	    "(e.g. 200G): past it the mount evicts its own least recently used "
	    "pages, never another mount's (default: no cap)");
	for (int i = 0; ufs_backend(i); i++)
		for (const struct ufs_optdoc *o = ufs_backend(i)->options; o && o->key; o++)
			fn(arg, o->key, o->value, o->help);
}

char *
cli_worker_help(void)
{
	/* The worker prints its help to stdout: catch it in a file. */
	FILE *tmp = tmpfile();
	if (!tmp)
		return NULL;
	fflush(stdout);
	int saved = dup(STDOUT_FILENO);
	if (saved < 0 || dup2(fileno(tmp), STDOUT_FILENO) < 0) {
		if (saved >= 0)
			close(saved);
		fclose(tmp);
		return NULL;
	}
	char *args[] = {"worker", "--help", NULL};
	worker_main(2, args);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	char *text = NULL;
	long n = ftell(tmp);
	if (n > 0 && n < (1 << 20) && fseek(tmp, 0, SEEK_SET) == 0 &&
	    (text = malloc((size_t)n + 1)) != NULL) {
		if (fread(text, 1, (size_t)n, tmp) != (size_t)n) {
			free(text);
			text = NULL;
		} else {
			text[n] = 0;
		}
	}
	fclose(tmp);
	return text;
}

/* ------------------------------------------------------------------ */
/* Errors                                                               */

int
cli_usage_error(const struct cli *c, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "ferry: %s: ", c->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	const struct cli_cmd *cmd = cli_find_cmd(c->cmd);
	fprintf(stderr, "\nusage: ferry %s\n", cmd ? cmd->usage : c->cmd);
	return CLI_USAGE;
}

/* The nearest option name ("--json", "-l") of opts and the global ones. */
static const char *
nearest_opt(const char *opt, const struct cli_opt *opts, char *buf, size_t n)
{
	static char names[64][48];
	int k = 0;
	const struct cli_opt *tabs[2] = {opts, cli_global_opts};
	for (int t = 0; t < 2; t++)
		for (const struct cli_opt *o = tabs[t]; o && o->id && k < 64; o++) {
			if (o->long_name)
				snprintf(names[k++], sizeof(names[0]), "--%s", o->long_name);
			if (o->short_name && k < 64)
				snprintf(names[k++], sizeof(names[0]), "-%c", o->short_name);
		}
	struct suggest s;
	size_t ol = strcspn(opt, "=");
	if (ol < 3)
		return NULL; /* "-x": any letter is one edit from any other */
	snprintf(buf, n, "%.*s", (int)ol, opt);
	suggest_init(&s, buf);
	for (int i = 0; i < k; i++)
		suggest_try(&s, names[i]);
	const char *b = suggest_best(&s);
	if (!b)
		return NULL;
	snprintf(buf, n, "%s", b);
	return buf;
}

int
cli_unknown_option(const struct cli *c, const char *opt,
    const struct cli_opt *opts)
{
	char buf[64];
	const char *best = nearest_opt(opt, opts, buf, sizeof(buf));
	if (best)
		return cli_usage_error(c, "unknown option '%s' (did you mean '%s'?)",
		    opt, best);
	return cli_usage_error(c, "unknown option '%s'", opt);
}

const char *
cli_worker_addr(const struct cli *c)
{
	if (c->worker && *c->worker)
		return c->worker;
	const char *e = getenv("FERRY_WORKER");
	return e && *e ? e : FERRY_DEFAULT_ADDR;
}

static int
report(const struct cli *c, const char *what, int err, const char *why)
{
	/* For an unreachable worker the path is beside the point: name the
	 * worker instead. */
	char wbuf[300];
	if (err == -ECONNREFUSED || err == -EHOSTUNREACH || err == -ETIMEDOUT ||
	    err == -ECONNRESET) {
		snprintf(wbuf, sizeof(wbuf), "worker %s", cli_worker_addr(c));
		what = wbuf;
	}
	if (!why || !*why) {
		why = ferry_strerror(err);
	} else if (what) {
		/* "HOST:PORT is not a ferry control API", or the worker's
		 * "/data/x: ..." that names the path already. */
		size_t wl = strlen(what);
		if (err == -EPROTONOSUPPORT ||
		    (strncmp(why, what, wl) == 0 && why[wl] == ':'))
			what = NULL;
	}
	const char *hint = err == -EPERM ? "; give it with --token or $FERRY_TOKEN" : "";
	if (what)
		fprintf(stderr, "ferry: %s: %s: %s%s\n", c->cmd, what, why, hint);
	else
		fprintf(stderr, "ferry: %s: %s%s\n", c->cmd, why, hint);
	return CLI_FAIL;
}

int
cli_error(const struct cli *c, const char *what, int err)
{
	char why[1024];
	snprintf(why, sizeof(why), "%s", ferry_last_error());
	return report(c, what, err, why);
}

int
cli_error_why(const struct cli *c, const char *what, int err, const char *why)
{
	return report(c, what, err, why && why[0] ? why : NULL);
}

int
cli_error_local(const struct cli *c, const char *what, int err)
{
	return report(c, what, err, NULL);
}

int
cli_connect(const struct cli *c, ferry_t **f)
{
	int r = ferry_connect(c->worker, c->token, f);
	if (r)
		return cli_error(c, NULL, r);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                              */

static const struct cli_opt *
find_long(const struct cli_opt *opts, const char *name, size_t n)
{
	for (const struct cli_opt *o = opts; o && o->id; o++)
		if (o->long_name && strlen(o->long_name) == n &&
		    memcmp(o->long_name, name, n) == 0)
			return o;
	return NULL;
}

static const struct cli_opt *
find_short(const struct cli_opt *opts, char ch)
{
	for (const struct cli_opt *o = opts; o && o->id; o++)
		if (o->short_name == ch)
			return o;
	return NULL;
}

int
cli_parse(struct cli *c, int argc, char **argv, const struct cli_opt *opts,
    int (*on_opt)(void *arg, int id, const char *val), void *arg, char **ops)
{
	int n = 0, dashes = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (dashes || a[0] != '-' || a[1] == 0) {
			ops[n++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			dashes = 1;
			continue;
		}
		if (a[1] == '-') {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t nl = eq ? (size_t)(eq - name) : strlen(name);
			const struct cli_opt *o = find_long(opts, name, nl);
			if (!o) {
				cli_unknown_option(c, a, opts);
				return -1;
			}
			const char *val = NULL;
			if (o->arg) {
				if (eq)
					val = eq + 1;
				else if (i + 1 < argc)
					val = argv[++i];
				else {
					cli_usage_error(c, "option '--%s' needs %s",
					    o->long_name, o->arg);
					return -1;
				}
			} else if (eq) {
				cli_usage_error(c, "option '--%s' takes no value",
				    o->long_name);
				return -1;
			}
			if (on_opt(arg, o->id, val))
				return -1;
			continue;
		}
		for (const char *p = a + 1; *p; p++) {
			const struct cli_opt *o = find_short(opts, *p);
			if (!o) {
				char bad[3] = {'-', *p, 0};
				cli_unknown_option(c, bad, opts);
				return -1;
			}
			const char *val = NULL;
			if (o->arg) {
				if (p[1])
					val = p + 1;
				else if (i + 1 < argc)
					val = argv[++i];
				else {
					cli_usage_error(c, "option '-%c' needs %s",
					    o->short_name, o->arg);
					return -1;
				}
			}
			if (on_opt(arg, o->id, val))
				return -1;
			if (val)
				break; /* the rest of the word was the value */
		}
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

char *
cli_norm_path(const char *arg)
{
	size_t n = strlen(arg);
	while (n > 0 && arg[n - 1] == '/')
		n--;
	while (n > 0 && arg[0] == '/') {
		arg++;
		n--;
	}
	char *p = malloc(n + 2);
	if (!p)
		return NULL;
	p[0] = '/';
	memcpy(p + 1, arg, n);
	p[n + 1] = 0;
	return p;
}

void
cli_fmt_time(long long t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, n, "%lld", t);
}

int
cli_write_stdout(const void *p, size_t n)
{
	return write_full(STDOUT_FILENO, p, n, -1);
}

/* ------------------------------------------------------------------ */
/* Commands defined here                                                */

/* `fuse` parses its own options; the global ones go along with them. */
static int
cmd_fuse(struct cli *c, int argc, char **argv)
{
	char **a = calloc((size_t)argc + 5, sizeof(*a));
	if (!a) {
		fprintf(stderr, "ferry: out of memory\n");
		return CLI_FAIL;
	}
	int n = 0;
	a[n++] = argv[0];
	if (c->worker) {
		a[n++] = "--worker";
		a[n++] = (char *)c->worker;
	}
	if (c->token) {
		a[n++] = "--token";
		a[n++] = (char *)c->token;
	}
	for (int i = 1; i < argc; i++)
		a[n++] = argv[i];
	int rc = fuse_main_cmd(n, a);
	free(a);
	return rc;
}

static int
cmd_version(struct cli *c, int argc, char **argv)
{
	if (argc > 1)
		return cli_usage_error(c, "unexpected argument '%s'", argv[1]);
	printf("ferry %s\n", cli_version);
	return CLI_OK;
}

/* "unknown command 'x' (did you mean 'y'?)" */
static int
unknown_command(const char *name, const char *prefix)
{
	struct suggest s;
	suggest_init(&s, name);
	for (const struct cli_cmd *c = cli_cmds; c->name; c++)
		suggest_try(&s, c->name);
	const char *best = suggest_best(&s);
	if (best)
		fprintf(stderr, "ferry: %sunknown command '%s' (did you mean '%s'?)\n",
		    prefix, name, best);
	else
		fprintf(stderr, "ferry: %sunknown command '%s' (try `ferry help`)\n",
		    prefix, name);
	return CLI_USAGE;
}

static int
cmd_help(struct cli *c, int argc, char **argv)
{
	if (argc < 2) {
		print_main_help(stdout);
		return CLI_OK;
	}
	const struct cli_cmd *cmd = cli_find_cmd(argv[1]);
	if (!cmd)
		return unknown_command(argv[1], "help: ");
	if (strcmp(cmd->name, "worker") == 0) {
		char *args[] = {"worker", "--help", NULL};
		return worker_main(2, args);
	}
	cli_print_help(stdout, cmd);
	return CLI_OK;
}

/* ------------------------------------------------------------------ */
/* main                                                                 */

/* Is a[i] a global option taking a value?  Sets *val and *used (1 or 2
 * args eaten); returns -1 when its value is missing. */
static int
global_opt(char **a, int i, int argc, const char *name, const char **val,
    int *used)
{
	size_t nl = strlen(name);
	if (strncmp(a[i], name, nl) != 0)
		return 0;
	if (a[i][nl] == '=') {
		*val = a[i] + nl + 1;
		*used = 1;
		return 1;
	}
	if (a[i][nl] != 0)
		return 0;
	if (i + 1 >= argc)
		return -1;
	*val = a[i + 1];
	*used = 2;
	return 1;
}

/*
 * `ferry worker`: an unknown long option gets a "did you mean" from the
 * options the worker's own --help lists (getopt's abbreviations stay
 * allowed: a prefix of a known option passes).  0, or CLI_USAGE printed.
 */
static int
worker_precheck(int argc, char **argv)
{
	char *help = NULL;
	struct cli_worker_opt *wo = NULL;
	int nwo = 0, rc = 0;
	for (int i = 1; i < argc && rc == 0; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0)
			break;
		if (strncmp(a, "--", 2) != 0 || !a[2])
			continue;
		if (!wo) {
			help = cli_worker_help();
			wo = calloc(CLI_WORKER_OPTS_MAX, sizeof(*wo));
			if (!help || !wo)
				break; /* the worker will say */
			nwo = cli_worker_opts(help, wo, CLI_WORKER_OPTS_MAX);
		}
		size_t nl = strcspn(a + 2, "=");
		const struct cli_worker_opt *hit = NULL;
		for (int k = 0; k < nwo && !hit; k++)
			if (nl <= strlen(wo[k].name) && strncmp(wo[k].name, a + 2, nl) == 0)
				hit = &wo[k];
		if (hit) {
			if (hit->arg[0] && !a[2 + nl])
				i++; /* its value */
			continue;
		}
		char word[64];
		snprintf(word, sizeof(word), "%.*s", (int)(nl < 60 ? nl : 60), a + 2);
		struct suggest s;
		suggest_init(&s, word);
		for (int k = 0; k < nwo; k++)
			suggest_try(&s, wo[k].name);
		const char *best = suggest_best(&s);
		if (best)
			fprintf(stderr, "ferry worker: unknown option '--%s' (did you "
			    "mean '--%s'?)\n", word, best);
		else
			fprintf(stderr, "ferry worker: unknown option '--%s'\n", word);
		fprintf(stderr, "Try 'ferry worker --help'.\n");
		rc = CLI_USAGE;
	}
	free(wo);
	free(help);
	return rc;
}

/* An unknown option before any command. */
static int
unknown_global(const char *opt)
{
	char buf[64];
	const char *best = nearest_opt(opt, NULL, buf, sizeof(buf));
	if (best)
		fprintf(stderr, "ferry: unknown option '%s' (did you mean '%s'?)\n",
		    opt, best);
	else
		fprintf(stderr, "ferry: unknown option '%s' (try `ferry --help`)\n", opt);
	return CLI_USAGE;
}

int
main(int argc, char **argv)
{
	struct cli c = {.cmd = "ferry"};
	/* The worker takes its own options: find the command first. */
	int first = 1;
	while (first < argc) {
		const char *v;
		int used = 0;
		if (global_opt(argv, first, argc, "--worker", &v, &used) == 1 ||
		    global_opt(argv, first, argc, "--token", &v, &used) == 1)
			first += used;
		else
			break;
	}
	if (first < argc && strcmp(argv[first], "worker") == 0) {
		int rc = worker_precheck(argc - first, argv + first);
		return rc ? rc : worker_main(argc - first, argv + first);
	}

	/* Write errors are reported by write(), not by a signal. */
	signal(SIGPIPE, SIG_IGN);

	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!rest) {
		fprintf(stderr, "ferry: out of memory\n");
		return CLI_FAIL;
	}
	int n = 0, want_help = 0, want_version = 0, gen = 0, after_dashes = 0;
	for (int i = 1; i < argc; i++) {
		const char *v;
		int used = 0, g;
		if (after_dashes) {
			rest[n++] = argv[i];
			continue;
		}
		if (strcmp(argv[i], "--") == 0) {
			after_dashes = 1;
			rest[n++] = argv[i];
			continue;
		}
		if ((g = global_opt(argv, i, argc, "--worker", &v, &used)) != 0) {
			if (g < 0) {
				fprintf(stderr, "ferry: --worker needs HOST:PORT\n");
				free(rest);
				return CLI_USAGE;
			}
			c.worker = v;
			i += used - 1;
			continue;
		}
		if ((g = global_opt(argv, i, argc, "--token", &v, &used)) != 0) {
			if (g < 0) {
				fprintf(stderr, "ferry: --token needs a value\n");
				free(rest);
				return CLI_USAGE;
			}
			c.token = v;
			i += used - 1;
			continue;
		}
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			want_help = 1;
			continue;
		}
		if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			want_version = 1;
			continue;
		}
		if (strcmp(argv[i], "--help-man") == 0) {
			gen = G_HELP_MAN;
			continue;
		}
		if (strcmp(argv[i], "--help-completion") == 0) {
			gen = G_HELP_COMPLETION;
			continue;
		}
		rest[n++] = argv[i];
	}

	int rc;
	const struct cli_cmd *cmd = n ? cli_find_cmd(rest[0]) : NULL;
	if (gen) {
		rc = gen == G_HELP_MAN ? cli_print_man(stdout) :
		    cli_print_bash_completion(stdout);
	} else if (want_version) {
		printf("ferry %s\n", cli_version);
		rc = CLI_OK;
	} else if (n == 0) {
		print_main_help(want_help ? stdout : stderr);
		rc = want_help ? CLI_OK : CLI_USAGE;
	} else if (rest[0][0] == '-' && rest[0][1]) {
		rc = unknown_global(rest[0]);
	} else if (want_help && cmd && !cmd->run) {
		char *args[] = {"worker", "--help", NULL};
		rc = worker_main(2, args); /* `ferry --help worker` */
	} else if (!cmd || !cmd->run) {
		rc = unknown_command(rest[0], "");
	} else if (want_help) {
		cli_print_help(stdout, cmd);
		rc = CLI_OK;
	} else {
		c.cmd = cmd->name;
		rc = cmd->run(&c, n, rest);
	}
	free(rest);
	errno = 0;
	if ((fflush(stdout) != 0 || ferror(stdout)) && errno != EPIPE) {
		fprintf(stderr, "ferry: writing output: %s\n",
		    strerror(errno ? errno : EIO));
		rc = CLI_FAIL;
	}
	return rc;
}
