/*
 * main.c: the `ferry` command: dispatches to the worker (`ferry worker`)
 * or to one of the client commands, after taking the global options
 * (--worker, --token) from anywhere before a "--".  Also the helpers the
 * commands share: error and usage messages, path normalisation, stdout
 * writes.
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
#include "fuse/fuse_fs.h"
#include "worker/worker.h"

static int cmd_version(struct cli *c, int argc, char **argv);
static int cmd_help(struct cli *c, int argc, char **argv);
static int cmd_fuse(struct cli *c, int argc, char **argv);

static const struct cli_cmd commands[] = {
	{"worker", NULL, "worker [OPTIONS]", "run a worker (see `ferry worker --help`)",
	    NULL},
	{"ls", cmd_ls, "ls [-l] [PATH]", "list a directory (default /: the mounts)",
	    "  -l    long format: type, size (human and bytes), mtime (UTC), name\n"},
	{"stat", cmd_stat, "stat PATH...",
	    "show size, mtime, etag and how much is cached", NULL},
	{"cat", cmd_cat, "cat PATH...", "write files to stdout", NULL},
	{"mount", cmd_mount, "mount /NAME URI [--option KEY=VALUE]...",
	    "add a mount (needs the worker's token if it has one)",
	    "  -o, --option KEY=VALUE   a mount option, e.g. s3.region=us-east-1,\n"
	    "                           s3.endpoint=http://host:9000, s3.access_key=...\n"
	    "  URI is s3://BUCKET[/PREFIX] or file:///DIR\n"},
	{"unmount", cmd_unmount, "unmount /NAME", "remove a mount", NULL},
	{"fuse", cmd_fuse, FUSE_CMD_USAGE, FUSE_CMD_SUMMARY, FUSE_CMD_DETAILS},
	{"mounts", cmd_mounts, "mounts", "list the mounts (secrets redacted)",
	    NULL},
	{"stats", cmd_stats, "stats", "show cache statistics (and the cluster's, in a cluster)", NULL},
	{"workers", cmd_workers, "workers", "list the cluster's workers: id, address, state, capacity, used, hit ratio", NULL},
	{"version", cmd_version, "version", "print the version", NULL},
	{"help", cmd_help, "help [COMMAND]", "show help", NULL},
};

static const char global_help[] =
    "Global options (before or after the command):\n"
    "  --worker HOST:PORT   the worker's control address\n"
    "                       (default $FERRY_WORKER, else " FERRY_DEFAULT_ADDR ")\n"
    "  --token TOKEN        bearer token for the control API (default $FERRY_TOKEN)\n"
    "  -h, --help           help for the command\n";

const struct cli_cmd *
cli_find_cmd(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void
print_main_help(FILE *out)
{
	fprintf(out, "usage: ferry [--worker HOST:PORT] [--token TOKEN] COMMAND [ARGS]\n\n"
		     "ferry is a read-through cache for training data.  Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n%s\nRun `ferry COMMAND --help` for a command's options.\n",
	    global_help);
}

void
cli_print_help(const struct cli_cmd *cmd)
{
	printf("usage: ferry %s\n\n%s.\n", cmd->usage, cmd->summary);
	if (cmd->details)
		printf("\n%s", cmd->details);
	printf("\n%s", global_help);
}

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

const char *
cli_worker_addr(const struct cli *c)
{
	if (c->worker && *c->worker)
		return c->worker;
	const char *e = getenv("FERRY_WORKER");
	return e && *e ? e : FERRY_DEFAULT_ADDR;
}

int
cli_error(const struct cli *c, const char *what, int err)
{
	/* For an unreachable worker the path is beside the point: name the
	 * worker instead. */
	char wbuf[300];
	if (err == -ECONNREFUSED || err == -EHOSTUNREACH || err == -ETIMEDOUT ||
	    err == -ECONNRESET) {
		snprintf(wbuf, sizeof(wbuf), "worker %s", cli_worker_addr(c));
		what = wbuf;
	}
	if (what)
		fprintf(stderr, "ferry: %s: %s: %s\n", c->cmd, what,
		    ferry_strerror(err));
	else
		fprintf(stderr, "ferry: %s: %s\n", c->cmd, ferry_strerror(err));
	return CLI_FAIL;
}

int
cli_connect(const struct cli *c, ferry_t **f)
{
	int r = ferry_connect(c->worker, c->token, f);
	if (r == -EINVAL) {
		fprintf(stderr, "ferry: %s: bad worker address or token (worker %s)\n",
		    c->cmd, cli_worker_addr(c));
		return CLI_FAIL;
	}
	if (r)
		return cli_error(c, NULL, r);
	return 0;
}

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
	const char *s = p;
	while (n) {
		ssize_t w = write(STDOUT_FILENO, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

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
	printf("ferry %s\n", FERRY_VERSION);
	return CLI_OK;
}

static int
cmd_help(struct cli *c, int argc, char **argv)
{
	if (argc < 2) {
		print_main_help(stdout);
		return CLI_OK;
	}
	const struct cli_cmd *cmd = cli_find_cmd(argv[1]);
	if (!cmd) {
		fprintf(stderr, "ferry: help: unknown command '%s'\n", argv[1]);
		return CLI_USAGE;
	}
	cli_print_help(cmd);
	return CLI_OK;
}

/* Is a[i] a global option?  Sets *val and *used (1 or 2 args eaten);
 * returns -1 when its value is missing. */
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
	if (first < argc && strcmp(argv[first], "worker") == 0)
		return worker_main(argc - first, argv + first);

	/* Write errors are reported by write(), not by a signal. */
	signal(SIGPIPE, SIG_IGN);

	char **rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!rest) {
		fprintf(stderr, "ferry: out of memory\n");
		return CLI_FAIL;
	}
	int n = 0, want_help = 0, after_dashes = 0;
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
		rest[n++] = argv[i];
	}

	int rc;
	if (n == 0) {
		print_main_help(want_help ? stdout : stderr);
		rc = want_help ? CLI_OK : CLI_USAGE;
	} else if (strcmp(rest[0], "--version") == 0) {
		printf("ferry %s\n", FERRY_VERSION);
		rc = CLI_OK;
	} else {
		const struct cli_cmd *cmd = cli_find_cmd(rest[0]);
		if (!cmd || !cmd->run) {
			fprintf(stderr, "ferry: unknown command '%s' (try `ferry help`)\n",
			    rest[0]);
			rc = CLI_USAGE;
		} else if (want_help) {
			cli_print_help(cmd);
			rc = CLI_OK;
		} else {
			c.cmd = cmd->name;
			rc = cmd->run(&c, n, rest);
		}
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
