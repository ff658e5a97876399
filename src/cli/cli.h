/*
 * cli.h: the ferry command-line tool's shared pieces: the parsed global
 * options, error reporting in one format, and the commands (cmd_fs.c:
 * ls/stat/cat; cmd_admin.c: mount/unmount/mounts/stats).
 *
 * Exit statuses: 0 success, 1 an operation failed, 2 a usage error.
 */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include <stddef.h>

#include "ferry.h"

#define FERRY_VERSION "0.1.0"
#define FERRY_DEFAULT_ADDR "127.0.0.1:29999"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

struct cli {
	const char *worker; /* --worker, else NULL (libferry reads the env) */
	const char *token;  /* --token, else NULL */
	const char *cmd;    /* the command name, for messages */
};

struct cli_cmd {
	const char *name;
	int (*run)(struct cli *c, int argc, char **argv); /* argv[0]: name */
	const char *usage;   /* "ls [-l] PATH" */
	const char *summary; /* one line */
	const char *details; /* more lines for `--help`, or NULL */
};

/* Command table (main.c). */
const struct cli_cmd *cli_find_cmd(const char *name);
/* Prints "usage: ferry <usage>" and details to stdout (help). */
void cli_print_help(const struct cli_cmd *cmd);
/* "ferry: <cmd>: <msg>" plus the usage line on stderr; returns CLI_USAGE. */
int cli_usage_error(const struct cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "ferry: <cmd>: <what>: <ferry_strerror(err)>" on stderr (what may be
 * NULL); names the worker for connection errors.  Returns CLI_FAIL. */
int cli_error(const struct cli *c, const char *what, int err);
/* Connects with the global options; reports failures.  0 or CLI_FAIL. */
int cli_connect(const struct cli *c, ferry_t **f);
/* The worker address in effect, for messages. */
const char *cli_worker_addr(const struct cli *c);

/* Makes a ferry path: leading '/', no trailing '/' (except "/").  Returns
 * malloc'd text or NULL if empty after trimming is impossible. */
char *cli_norm_path(const char *arg);
/* "2023-11-14 22:13:20" (UTC) into out (>= 20 bytes). */
void cli_fmt_time(long long t, char *out, size_t n);
/* Writes all of p to fd 1; 0 or -errno (-EPIPE when the reader left). */
int cli_write_stdout(const void *p, size_t n);

int cmd_ls(struct cli *c, int argc, char **argv);
int cmd_stat(struct cli *c, int argc, char **argv);
int cmd_cat(struct cli *c, int argc, char **argv);
int cmd_mount(struct cli *c, int argc, char **argv);
int cmd_unmount(struct cli *c, int argc, char **argv);
int cmd_mounts(struct cli *c, int argc, char **argv);
int cmd_stats(struct cli *c, int argc, char **argv);
int cmd_workers(struct cli *c, int argc, char **argv);
/* The cluster section of `ferry stats` (nothing for a single worker). */
void cli_print_cluster_stats(const struct cli *c);

#endif
