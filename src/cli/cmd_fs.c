/*
 * cmd_fs.c: the file commands of the ferry CLI: ls, stat and cat, and
 * put, rm and mv, each a thin layer over libferry.  Main thread only.
 *
 * ls streams entries as libferry pages through the directory, so its
 * memory does not grow with the directory (with --json too: one object
 * per line); cat streams 4 MiB preads to stdout and stops quietly when the
 * reader goes away (EPIPE).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/dbuf.h"
#include "common/json.h"
#include "common/util.h"

#define CAT_CHUNK (4u << 20)

enum { O_LONG = 1 };

const struct cli_opt cmd_ls_opts[] = {
	{O_LONG, 'l', "long", NULL, "long format: type, size (human and bytes), "
	    "mtime (UTC; - where the\nunder-store keeps none, as for S3 prefixes), name"},
	{CLI_O_JSON, 0, "json", NULL, "one JSON object per entry and line: name, "
	    "is_dir, size, mtime\n(null if unknown), etag"},
	{0, 0, NULL, NULL, NULL},
};

struct flags {
	int longfmt, json;
};

static int
on_flag(void *arg, int id, const char *val)
{
	struct flags *fl = arg;
	if (id == O_LONG)
		fl->longfmt = 1;
	else if (id == CLI_O_JSON)
		fl->json = 1;
	return 0;
}

/* One entry as a line of JSON (name is the entry's, or the path given). */
static void
print_json_entry(const char *key, const char *name, const struct ferry_stat *st,
    int with_cached)
{
	struct dbuf b;
	dbuf_init(&b, 1u << 20);
	dbuf_printf(&b, "{\"%s\":", key);
	json_put_str(&b, name);
	dbuf_printf(&b, ",\"is_dir\":%s,\"size\":%" PRId64 ",\"mtime\":",
	    st->is_dir ? "true" : "false", st->size);
	if (st->mtime > 0)
		dbuf_printf(&b, "%" PRId64, st->mtime);
	else
		dbuf_adds(&b, "null");
	dbuf_adds(&b, ",\"etag\":");
	json_put_str(&b, st->etag);
	if (with_cached)
		dbuf_printf(&b, ",\"cached_bytes\":%" PRId64, st->cached_bytes);
	dbuf_adds(&b, "}\n");
	if (b.p)
		fwrite(b.p, 1, b.len, stdout);
	dbuf_free(&b);
}

/* ------------------------------------------------------------------ */
/* ls                                                                   */

struct ls_state {
	struct flags fl;
	long long count;
	int out_errno; /* why stdout failed, 0 if it did not */
};

static void
print_entry(const struct ls_state *s, const char *name,
    const struct ferry_stat *st)
{
	if (s->fl.json) {
		print_json_entry("name", name, st, 0);
		return;
	}
	if (!s->fl.longfmt) {
		printf("%s\n", name);
		return;
	}
	char human[32], when[32], bytes[32];
	if (st->is_dir && st->size == 0) {
		snprintf(human, sizeof(human), "-");
		snprintf(bytes, sizeof(bytes), "-");
	} else {
		fmt_bytes((double)st->size, human, sizeof(human));
		snprintf(bytes, sizeof(bytes), "%" PRId64, st->size);
	}
	/* No time rather than 1970: S3 prefixes and the mounts have none. */
	if (st->mtime > 0)
		cli_fmt_time(st->mtime, when, sizeof(when));
	else
		snprintf(when, sizeof(when), "-");
	printf("%c %10s %15s  %-19s  %s\n", st->is_dir ? 'd' : '-', human,
	    bytes, when, name);
}

static int
ls_fn(void *arg, const char *name, const struct ferry_stat *st)
{
	struct ls_state *s = arg;
	s->count++;
	print_entry(s, name, st);
	if (ferror(stdout)) {
		s->out_errno = errno ? errno : EIO;
		return 1; /* stop: nobody reads any more */
	}
	return 0;
}

int
cmd_ls(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	struct ls_state s = {{0, 0}, 0, 0};
	int n = cli_parse(c, argc, argv, cmd_ls_opts, on_flag, &s.fl, ops);
	if (n > 1) {
		free(ops);
		return cli_usage_error(c, "one PATH at most");
	}
	char *path = n == 1 ? cli_norm_path(ops[0]) : cli_norm_path("/");
	free(ops);
	if (n < 0) {
		free(path);
		return CLI_USAGE;
	}
	ferry_t *f;
	if (!path)
		return cli_error_local(c, NULL, -ENOMEM);
	if (cli_connect(c, &f)) {
		free(path);
		return CLI_FAIL;
	}
	int r = ferry_list(f, path, ls_fn, &s);
	int rc = CLI_OK;
	if (r > 0) {
		/* Stopped by an output error; EPIPE is the reader leaving. */
		if (s.out_errno != EPIPE) {
			fprintf(stderr, "ferry: %s: writing output: %s\n", c->cmd,
			    strerror(s.out_errno));
			rc = CLI_FAIL;
		}
		clearerr(stdout);
	} else if ((r == 0 && s.count == 0 && strcmp(path, "/") != 0) ||
	    r == -ENOTDIR) {
		/* Nothing under it: a file (ls shows it), an empty directory
		 * (nothing to show), or nothing at all (an error). */
		struct ferry_stat st;
		int sr = ferry_stat(f, path, &st);
		if (sr == 0 && !st.is_dir)
			print_entry(&s, path, &st);
		else if (sr != 0)
			rc = cli_error(c, path, sr);
	} else if (r < 0)
		rc = cli_error(c, path, r);
	ferry_close(&f);
	free(path);
	return rc;
}

/* ------------------------------------------------------------------ */
/* stat                                                                 */

static void
print_stat(const char *path, const struct ferry_stat *st)
{
	char human[32], when[32];
	printf("path: %s\n", path);
	printf("type: %s\n", st->is_dir ? "directory" : "file");
	if (st->is_dir && st->size == 0 && st->mtime <= 0)
		return; /* a prefix: nothing more is known */
	fmt_bytes((double)st->size, human, sizeof(human));
	printf("size: %" PRId64 " (%s)\n", st->size, human);
	if (st->mtime > 0) {
		cli_fmt_time(st->mtime, when, sizeof(when));
		printf("mtime: %" PRId64 " (%s UTC)\n", st->mtime, when);
	} else
		printf("mtime: -\n");
	if (st->is_dir)
		return;
	printf("etag: %s\n", st->etag[0] ? st->etag : "-");
	fmt_bytes((double)st->cached_bytes, human, sizeof(human));
	printf("cached_bytes: %" PRId64 " (%s)\n", st->cached_bytes, human);
	if (st->size > 0) {
		double pct = 100.0 * (double)st->cached_bytes / (double)st->size;
		if (pct > 100.0)
			pct = 100.0;
		printf("cached_percent: %.1f%%\n", pct);
	} else
		printf("cached_percent: -\n");
}

int
cmd_stat(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	struct flags fl = {0, 0};
	int n = cli_parse(c, argc, argv, cli_find_cmd("stat")->opts, on_flag, &fl, ops);
	if (n == 0)
		cli_usage_error(c, "missing PATH");
	if (n <= 0) {
		free(ops);
		return CLI_USAGE;
	}
	ferry_t *f;
	if (cli_connect(c, &f)) {
		free(ops);
		return CLI_FAIL;
	}
	int rc = CLI_OK, shown = 0;
	for (int i = 0; i < n; i++) {
		char *path = cli_norm_path(ops[i]);
		struct ferry_stat st;
		if (!path) {
			rc = cli_error_local(c, ops[i], -ENOMEM);
			continue;
		}
		int r = ferry_stat(f, path, &st);
		if (r) {
			rc = cli_error(c, path, r);
		} else if (fl.json) {
			print_json_entry("path", path, &st, 1);
		} else {
			if (shown++)
				printf("\n");
			print_stat(path, &st);
		}
		free(path);
	}
	ferry_close(&f);
	free(ops);
	return rc;
}

/* ------------------------------------------------------------------ */
/* cat                                                                  */

/* Streams one file.  Returns CLI_OK, CLI_FAIL, or -EPIPE when stdout's
 * reader has gone (stop quietly). */
static int
cat_one(struct cli *c, ferry_t *f, const char *path, char *buf)
{
	struct ferry_stat st;
	int r = ferry_stat(f, path, &st);
	if (r)
		return cli_error(c, path, r);
	if (st.is_dir)
		return cli_error_local(c, path, -EISDIR);
	int64_t off = 0;
	while (off < st.size) {
		ssize_t got = ferry_pread(f, path, buf, CAT_CHUNK, off);
		if (got < 0)
			return cli_error(c, path, (int)got);
		if (got == 0) {
			fprintf(stderr, "ferry: %s: %s: file shrank while reading "
					"(%" PRId64 " of %" PRId64 " bytes)\n",
			    c->cmd, path, off, st.size);
			return CLI_FAIL;
		}
		int w = cli_write_stdout(buf, (size_t)got);
		if (w == -EPIPE)
			return -EPIPE;
		if (w) {
			fprintf(stderr, "ferry: %s: writing output: %s\n", c->cmd,
			    strerror(-w));
			return CLI_FAIL;
		}
		off += got;
	}
	return CLI_OK;
}

static int
no_opt(void *arg, int id, const char *val)
{
	return 0;
}

int
cmd_cat(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	int n = cli_parse(c, argc, argv, NULL, no_opt, NULL, ops);
	if (n == 0)
		cli_usage_error(c, "missing PATH");
	if (n <= 0) {
		free(ops);
		return CLI_USAGE;
	}
	char *buf = malloc(CAT_CHUNK);
	ferry_t *f = NULL;
	int rc = CLI_OK;
	if (!buf)
		rc = cli_error_local(c, NULL, -ENOMEM);
	else if (cli_connect(c, &f))
		rc = CLI_FAIL;
	for (int i = 0; i < n && f; i++) {
		char *path = cli_norm_path(ops[i]);
		int r = path ? cat_one(c, f, path, buf) : cli_error_local(c, ops[i], -ENOMEM);
		free(path);
		if (r == -EPIPE)
			break; /* like `cat | head`: not an error worth a word */
		if (r)
			rc = r;
	}
	ferry_close(&f);
	free(buf);
	free(ops);
	return rc;
}

/* `ferry put SRC PATH`: SRC (a local file, or - for stdin) becomes the
 * object PATH once the worker's under-store has it.  Written in order, it
 * streams (FERRY_CREATE_STREAM): a pipe's bytes reach the worker while
 * they come, and a put cut short (a read error, a kill) commits nothing. */
int
cmd_put(struct cli *c, int argc, char **argv)
{
	char *ops[3] = {NULL};
	if (argc > 4)
		return cli_usage_error(c, "too many operands");
	int n = cli_parse(c, argc, argv, NULL, no_opt, NULL, ops);
	if (n >= 0 && n != 2)
		return cli_usage_error(c, "want SRC and PATH");
	if (n < 0)
		return CLI_USAGE;
	int in = strcmp(ops[0], "-") == 0 ? 0 : open(ops[0], O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return cli_error_local(c, ops[0], -errno);
	char *path = cli_norm_path(ops[1]);
	char *buf = malloc(CAT_CHUNK);
	ferry_t *f = NULL;
	ferry_file_t *w = NULL;
	int rc = CLI_OK, r = 0;
	if (!path || !buf)
		rc = cli_error_local(c, NULL, -ENOMEM);
	else if (cli_connect(c, &f))
		rc = CLI_FAIL;
	else if ((r = ferry_create(f, path, FERRY_CREATE_STREAM, &w)) < 0)
		rc = cli_error(c, path, r);
	while (rc == CLI_OK) {
		ssize_t got = read(in, buf, CAT_CHUNK);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = cli_error_local(c, ops[0], -errno);
			break;
		}
		if (got == 0)
			break;
		ssize_t wr = ferry_write(w, buf, (size_t)got);
		if (wr < 0)
			rc = cli_error(c, path, (int)wr);
	}
	if (rc == CLI_OK && (r = ferry_commit(w, NULL)) < 0)
		rc = cli_error(c, path, r);
	ferry_file_close(&w);
	ferry_close(&f);
	if (in > 0)
		close(in);
	free(buf);
	free(path);
	return rc;
}

/* `ferry rm PATH...` */
int
cmd_rm(struct cli *c, int argc, char **argv)
{
	char **ops = calloc((size_t)argc, sizeof(*ops));
	if (!ops)
		return cli_error_local(c, NULL, -ENOMEM);
	int n = cli_parse(c, argc, argv, NULL, no_opt, NULL, ops);
	if (n == 0)
		cli_usage_error(c, "missing PATH");
	if (n <= 0) {
		free(ops);
		return CLI_USAGE;
	}
	ferry_t *f = NULL;
	int rc = cli_connect(c, &f) ? CLI_FAIL : CLI_OK;
	for (int i = 0; i < n && f; i++) {
		char *path = cli_norm_path(ops[i]);
		int r = path ? ferry_unlink(f, path) : -ENOMEM;
		if (r)
			rc = cli_error(c, path ? path : ops[i], r);
		free(path);
	}
	ferry_close(&f);
	free(ops);
	return rc;
}

/* `ferry mv FROM TO` (within a mount). */
int
cmd_mv(struct cli *c, int argc, char **argv)
{
	char *ops[3] = {NULL};
	if (argc > 4)
		return cli_usage_error(c, "too many operands");
	int n = cli_parse(c, argc, argv, NULL, no_opt, NULL, ops);
	if (n >= 0 && n != 2)
		return cli_usage_error(c, "want FROM and TO");
	if (n < 0)
		return CLI_USAGE;
	char *from = cli_norm_path(ops[0]), *to = cli_norm_path(ops[1]);
	ferry_t *f = NULL;
	int rc = CLI_OK, r;
	if (!from || !to)
		rc = cli_error_local(c, NULL, -ENOMEM);
	else if (cli_connect(c, &f))
		rc = CLI_FAIL;
	else if ((r = ferry_rename(f, from, to)) < 0)
		rc = cli_error(c, from, r);
	ferry_close(&f);
	free(from);
	free(to);
	return rc;
}
