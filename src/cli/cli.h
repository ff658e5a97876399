/*
 * cli.h: the ferry command-line tool's shared pieces: the command and
 * option tables, the option parser, error reporting in one format, and the
 * commands (cmd_fs.c: ls/stat/cat; cmd_admin.c: mount/unmount/mounts/
 * stats; cmd_data.c: pin/unpin/ttl/free/du/refresh; cmd_cluster.c: workers; docgen.c: the man page and bash
 * completion, generated from the tables).
 *
 * Exit statuses: 0 success, 1 an operation failed, 2 a usage error.
 */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "cli/cli_opt.h"
#include "ferry.h"

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
	const char *usage;   /* "ls [-l] [--json] [PATH]" */
	const char *summary; /* one line, no final '.' */
	const struct cli_opt *opts; /* NULL: none */
	const char *details; /* more lines for `--help` and the man page, or NULL */
};

/* The version string (from the Makefile: git describe, else the release). */
extern const char cli_version[];

/* Command table and the global options (main.c).  cli_cmds ends with a
 * NULL name. */
extern const struct cli_cmd cli_cmds[];
extern const struct cli_opt cli_global_opts[];
const struct cli_cmd *cli_find_cmd(const char *name);
/* The mount options (KEY=VALUE) `ferry mount` passes on: ferry's own and
 * each under-store's, in that order; fn is called for each. */
void cli_mount_keys(void (*fn)(void *arg, const char *key, const char *value,
    const char *help), void *arg);
/* `ferry worker --help` as text (malloc'd), or NULL. */
char *cli_worker_help(void);
/* One option of `ferry worker --help` (which worker_main.c owns). */
struct cli_worker_opt {
	char section[48]; /* "Cache" */
	char name[40];    /* "cache-dir" */
	char arg[40];     /* "DIR[:SIZE]", or "" for a flag */
	char help[640];   /* its description, lines joined by '\n' */
};
#define CLI_WORKER_OPTS_MAX 96
/* The options in the worker's help text (docgen.c); how many, <= max. */
int cli_worker_opts(const char *help, struct cli_worker_opt *out, int max);

/* Prints "usage: ferry <usage>", the options and details to out. */
void cli_print_help(FILE *out, const struct cli_cmd *cmd);
/* "  -l, --long    help" lines of a table, wrapped help aligned. */
void cli_print_opts(FILE *out, const struct cli_opt *opts);
/* "ferry: <cmd>: <msg>" plus the usage line on stderr; returns CLI_USAGE. */
int cli_usage_error(const struct cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Parses argv[1..] by opts: each option found is passed to on_opt (value
 * NULL for a flag), which returns 0 or CLI_USAGE after a message; the
 * operands are moved, in order, to ops (argc slots).  Short flags bundle
 * (-lq), a short option's value may be attached (-oKEY=V); long ones take
 * --name=V or --name V; "--" ends the options; "-" is an operand.  An
 * unknown option is a usage error that suggests the nearest one ("did you
 * mean").  Returns the number of operands, or -1 after a usage error.
 */
int cli_parse(struct cli *c, int argc, char **argv, const struct cli_opt *opts,
    int (*on_opt)(void *arg, int id, const char *val), void *arg, char **ops);
/* "unknown option 'X' (did you mean 'Y'?)" as a usage error: Y is the
 * nearest of opts and the global options. */
int cli_unknown_option(const struct cli *c, const char *opt,
    const struct cli_opt *opts);

/*
 * A failed libferry call: "ferry: <cmd>: <what>: <why>" on stderr, where
 * why is the worker's reason (ferry_last_error(), read first: call this
 * right after the failed call) or else ferry_strerror(err).  what (may be
 * NULL) is replaced by the worker's address for connection errors and
 * dropped when the reason names it already.  Returns CLI_FAIL.
 */
int cli_error(const struct cli *c, const char *what, int err);
/* The same with the reason given (saved from ferry_last_error() earlier). */
int cli_error_why(const struct cli *c, const char *what, int err, const char *why);
/* The same for a failure of the CLI's own (no worker involved). */
int cli_error_local(const struct cli *c, const char *what, int err);
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

/* The option ids commands share. */
enum { CLI_O_JSON = 1000 };
extern const struct cli_opt cli_json_only_opts[]; /* {--json} */

int cmd_ls(struct cli *c, int argc, char **argv);
int cmd_stat(struct cli *c, int argc, char **argv);
int cmd_cat(struct cli *c, int argc, char **argv);
int cmd_put(struct cli *c, int argc, char **argv);
int cmd_rm(struct cli *c, int argc, char **argv);
int cmd_mv(struct cli *c, int argc, char **argv);
int cmd_mount(struct cli *c, int argc, char **argv);
int cmd_unmount(struct cli *c, int argc, char **argv);
int cmd_mounts(struct cli *c, int argc, char **argv);
int cmd_stats(struct cli *c, int argc, char **argv);
int cmd_writeback(struct cli *c, int argc, char **argv);
extern const struct cli_opt cli_writeback_opts[];
int cmd_workers(struct cli *c, int argc, char **argv);
/* cmd_data.c */
int cmd_load(struct cli *c, int argc, char **argv);
int cmd_pin(struct cli *c, int argc, char **argv);
int cmd_unpin(struct cli *c, int argc, char **argv);
int cmd_ttl(struct cli *c, int argc, char **argv);
int cmd_free(struct cli *c, int argc, char **argv);
int cmd_du(struct cli *c, int argc, char **argv);
int cmd_refresh(struct cli *c, int argc, char **argv);
extern const struct cli_opt cli_no_opts[], cli_load_opts[], cli_pin_opts[], cli_ttl_opts[], cli_free_opts[],
    cli_du_opts[];
extern const struct cli_opt cmd_ls_opts[], cmd_mount_opts[];
/* A worker a dataset command goes to. */
struct cli_member {
	char id[40];
	char ctl[272]; /* its control address */
	int self;      /* the worker the user named */
};
/* Every member of the cluster of the worker asked (that one by the
 * address the user gave), or that worker alone: the count (>= 1) and
 * *out (malloc'd), or a negative errno. */
int cli_members(const struct cli *c, struct cli_member **out);
/* The cluster section of `ferry stats` (nothing for a single worker). */
void cli_print_cluster_stats(const struct cli *c);

/* docgen.c: `ferry --help-man` (roff) and `ferry --help-completion`
 * (bash), from the tables above. */
int cli_print_man(FILE *out);
int cli_print_bash_completion(FILE *out);

#endif
