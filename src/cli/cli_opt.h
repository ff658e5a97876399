/*
 * cli_opt.h: one command-line option, as the ferry CLI's tables describe
 * it.  The same tables drive parsing, `--help`, the man page and the bash
 * completion (src/cli/docgen.c), so the four cannot drift apart.  Also
 * used by `ferry fuse` (src/fuse/fuse_main.c), which builds its getopt
 * table from its own.
 */
#ifndef FERRY_CLI_OPT_H
#define FERRY_CLI_OPT_H

struct cli_opt {
	int id;           /* what the parser reports (> 0) */
	char short_name;  /* 'l', or 0 */
	const char *long_name; /* "json", or NULL */
	const char *arg;  /* the value's name ("KEY=VALUE"); NULL: a flag */
	const char *help; /* lines separated by '\n', no trailing '\n' */
};
/* Tables end with an entry whose id is 0. */

#endif
