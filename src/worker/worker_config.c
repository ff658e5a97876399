/*
 * worker_config.c: `ferry worker` options (worker_config.h).  One table
 * gives the command line (getopt_long), the config-file keys and --help,
 * so they cannot drift apart.  Runs on the main thread before anything
 * starts; pure apart from reading the config and secret files.
 */
#include "worker_config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../common/vas.h"
#include "mounts.h"

#define DEFAULT_CACHE_SIZE (10LL << 30)
#define CONFIG_LINE_MAX 8192
#define SECRET_MAX 4096

enum {
	OPT_CACHE_DIR = 1000, OPT_CACHE_SIZE, OPT_PAGE_SIZE, OPT_PAGE_VERIFY, OPT_SCRUB_RATE,
	OPT_SYNC, OPT_STALE, OPT_META_ENTRIES, OPT_UFS_PAR, OPT_WINDOW,
	OPT_READAHEAD, OPT_FETCH_AHEAD, OPT_INFLIGHT, OPT_S3_ADDR, OPT_S3_AK, OPT_S3_SK,
	OPT_S3_SK_FILE, OPT_S3_ANON, OPT_S3_REGION, OPT_S3_DOMAIN, OPT_MAXCONN, OPT_MAXCONN_CLIENT, OPT_CTL_ADDR,
	OPT_CTL_TOKEN, OPT_CTL_TOKEN_FILE, OPT_MOUNT, OPT_STATE_DIR, OPT_CONFIG,
	OPT_LOG_LEVEL, OPT_LOCAL_SOCKET, OPT_ETCD, OPT_CLUSTER, OPT_ADVERTISE,
	OPT_BLOCK_SIZE, OPT_LEASE_TTL, OPT_WB_LIMIT, OPT_WB_PAR, OPT_WB_BW, OPT_PIN_LIMIT, OPT_HOT_THRESHOLD, OPT_HOT_EXTRA,
	OPT_HELP,
};

struct opt_def {
	const char *name;
	int id;
	const char *arg;  /* metavar; NULL: a flag */
	const char *help; /* lines after the first are indented */
	const char *section; /* starts a --help section when set */
};

static const struct opt_def opts[] = {
	{"cache-dir", OPT_CACHE_DIR, "DIR[:SIZE]", "page cache directory; repeat for several disks. SIZE\n"
	    "(e.g. 500G) is that directory's capacity; default\n$XDG_CACHE_HOME/ferry or ~/.cache/ferry", "Cache"},
	{"cache-size", OPT_CACHE_SIZE, "SIZE", "capacity of each --cache-dir given without :SIZE\n"
	    "(default 10G; at least 8 pages)", NULL},
	{"page-size", OPT_PAGE_SIZE, "SIZE", "bytes per cached page (default 1M; 64K..64M)", NULL},
	{"page-verify", OPT_PAGE_VERIFY, "MODE", "'always': every read checks the CRC32C of each 32 KiB\n"
	    "chunk it touches (default); 'once': a page is checked whole\n"
	    "at its first read per process, then served unchecked", NULL},
	{"scrub-rate", OPT_SCRUB_RATE, "SIZE", "bytes per second the scrubber checks cached pages at\n"
	    "in the background, dropping bad ones (default 32M; 0: off)", NULL},
	{"sync-interval", OPT_SYNC, "DURATION", "how long stat/list answers are trusted before the\n"
	    "under-store is asked again (default 60s; e.g. 500ms, 5m)", NULL},
	{"stale-if-error", OPT_STALE, "DURATION", "when the under-store fails, keep serving what is\n"
	    "cached for up to this long past --sync-interval\n(default 24h; 0: answer the error at once)", NULL},
	{"metadata-entries", OPT_META_ENTRIES, "N", "stat entries kept at most (default 200000)", NULL},
	{"ufs-parallelism", OPT_UFS_PAR, "N", "under-store requests in flight at most (default 32)", "Under-store reads"},
	{"window", OPT_WINDOW, "N", "pages fetched in parallel ahead of one cold read (default 8)", NULL},
	{"read-ahead", OPT_READAHEAD, "N", "pages read ahead of a sequential reader (default 8)", NULL},
	{"fetch-ahead", OPT_FETCH_AHEAD, "SIZE", "a directory of small files that readers walk is\n"
	    "fetched ahead whole up to SIZE (and a quarter of the cache),\n"
	    "else 64 files ahead of them (default 1G; 0: off)", NULL},
	{"max-inflight", OPT_INFLIGHT, "N", "page buffers at most: bounds fetch memory to\n"
	    "N x page size (default 128)", NULL},
	{"s3-address", OPT_S3_ADDR, "HOST:PORT", "listen address (default 127.0.0.1:29998)", "S3 gateway"},
	{"s3-access-key", OPT_S3_AK, "KEY", "the access key clients sign with ($FERRY_S3_ACCESS_KEY)", NULL},
	{"s3-secret-key-file", OPT_S3_SK_FILE, "FILE", "its secret, read from FILE (or $FERRY_S3_SECRET_KEY)", NULL},
	{"s3-secret-key", OPT_S3_SK, "SECRET", "the secret on the command line: visible to every\n"
	    "local user in the process list; prefer the file or\nthe environment", NULL},
	{"s3-anonymous", OPT_S3_ANON, NULL, "also accept unsigned requests", NULL},
	{"s3-region", OPT_S3_REGION, "REGION", "region reported to clients (default us-east-1)", NULL},
	{"s3-domain", OPT_S3_DOMAIN, "DOMAIN", "also serve virtual-host-style requests: Host\n"
	    "BUCKET.DOMAIN[:PORT] names bucket BUCKET and the path\nis the key (a Host of DOMAIN "
	    "itself, or any other,\nis path-style); repeat, or separate with commas", NULL},
	{"max-connections", OPT_MAXCONN, "N", "concurrent connections to the gateway (default 4096)", NULL},
	{"max-connections-per-client", OPT_MAXCONN_CLIENT, "N", "of those, from one client address (an IPv6 /64) at\n"
	    "most (default 1024); at either cap the oldest idle\nconnection is closed to make room\n"
	    "Without keys, a gateway bound to loopback accepts every request; bound\n"
	    "beyond loopback it needs keys or --s3-anonymous, or the worker will not start.", NULL},
	{"control-address", OPT_CTL_ADDR, "HOST:PORT", "listen address (default 127.0.0.1:29999)", "Control API and metrics"},
	{"control-token-file", OPT_CTL_TOKEN_FILE, "FILE", "the control token, read from FILE (or\n"
	    "$FERRY_CONTROL_TOKEN): clients send it as 'Authorization:\n"
	    "Bearer TOKEN'; mandatory when the control address is not\n"
	    "loopback; see docs/control-api.md for what it guards", NULL},
	{"control-token", OPT_CTL_TOKEN, "TOKEN", "the token on the command line (visible in the\nprocess list; prefer the file or the environment)", NULL},
	{"pin-limit", OPT_PIN_LIMIT, "PCT", "the most of the cache's capacity that pins may take\n"
	    "(1-100, default 80): a pin that would take more is refused", "Datasets (pin, ttl, free, du, refresh)"},
	{"writeback-limit", OPT_WB_LIMIT, "SIZE", "bytes of write=back writes staged on local disk and\n"
	    "not yet in the under-store, at most (default 10G); past\n"
	    "it writes are refused with 503 SlowDown, none lost", "Write-back (mount option write=back; single worker)"},
	{"writeback-parallel", OPT_WB_PAR, "N", "uploads to under-stores at once (default 4)", NULL},
	{"writeback-bandwidth", OPT_WB_BW, "RATE", "bytes per second the uploads may use, all together\n"
	    "(e.g. 100M; default: no cap)", NULL},
	{"etcd", OPT_ETCD, "URLS", "join the cluster kept in etcd (http://HOST:2379[,...]);\n"
	    "without it the worker runs alone", "Cluster (see docs/architecture.md)"},
	{"cluster", OPT_CLUSTER, "NAME", "cluster name: workers and mounts live under\n"
	    "/ferry/NAME/ in etcd (default 'default')", NULL},
	{"hot-threshold", OPT_HOT_THRESHOLD, "N", "a block this worker reads from peers more than N\n"
	    "times a second is hot: its reads are spread over more\n"
	    "workers (default 200; 0: never)", NULL},
	{"hot-replicas", OPT_HOT_EXTRA, "N", "how many more workers a hot block is spread over\n"
	    "(0-16, default 2)", NULL},
	{"advertise", OPT_ADVERTISE, "HOST", "the address peers and clients reach this worker at\n"
	    "(default: the listen host; needed if that is 0.0.0.0)", NULL},
	{"block-size", OPT_BLOCK_SIZE, "SIZE", "placement unit: each block of a file is cached on the\n"
	    "worker(s) it hashes to (default 64M; a multiple of\nthe page size; the same on every worker)", NULL},
	{"lease-ttl", OPT_LEASE_TTL, "SECONDS", "membership lease: a dead worker leaves the cluster\n"
	    "this long after its last keep-alive (default 5)", NULL},
	{"mount", OPT_MOUNT, "NAME=URI", "mount an under-store at start if NAME is not mounted\n"
	    "(URIs with options: use `ferry mount`)", "Other"},
	{"state-dir", OPT_STATE_DIR, "DIR", "where the mount table, worker id and multipart uploads\nin progress live (default: the first cache dir)", NULL},
	{"local-socket", OPT_LOCAL_SOCKET, "PATH", "Unix socket that hands cached page files to clients on\n"
	    "this host (ferry fuse) for zero-copy reads (default\n"
	    "STATE_DIR/ferry.sock, mode 0600); 'none' turns it off", NULL},
	{"config", OPT_CONFIG, "FILE", "read options from FILE: one 'option = value' per line,\n"
	    "option names as above without '--'; '#' comments.\nCommand-line options override the file.", NULL},
	{"log-level", OPT_LOG_LEVEL, "LEVEL", "error, warn, info (default) or debug", NULL},
	{"help", OPT_HELP, NULL, "this text", NULL},
};

void
worker_usage(FILE *f)
{
	fputs("usage: ferry worker [options]\n\n"
	    "Runs a ferry worker: a read-through cache of under-stores (S3, local or NAS\n"
	    "directories) with an S3-compatible gateway and a control API.\n", f);
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
		const struct opt_def *o = &opts[i];
		if (o->section)
			fprintf(f, "\n%s:\n", o->section);
		char head[64];
		snprintf(head, sizeof(head), "%s--%s%s%s", o->id == OPT_HELP ? "-h, " : "",
		    o->name, o->arg ? " " : "", o->arg ? o->arg : "");
		const char *h = o->help;
		int first = 1;
		while (*h) {
			const char *nl = strchr(h, '\n');
			int n = nl ? (int)(nl - h) : (int)strlen(h);
			if (first && strlen(head) < 26)
				fprintf(f, "  %-26s%.*s\n", head, n, h);
			else if (first)
				fprintf(f, "  %s\n  %-26s%.*s\n", head, "", n, h);
			else
				fprintf(f, "  %-26s%.*s\n", "", n, h);
			first = 0;
			h += n + (nl ? 1 : 0);
		}
	}
}

int
host_is_loopback(const char *h)
{
	return strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 ||
	    strcmp(h, "localhost") == 0;
}

/* The parse's state beyond cfg. */
struct parse {
	struct worker_cfg *c;
	const char *dirs[WORKER_MAX_DIRS];
	int64_t dir_sizes[WORKER_MAX_DIRS]; /* -1: use cache_size */
	int ndirs;
	int64_t cache_size;
	int block_size_given;
	const char *sk_from, *token_from; /* where the secrets came from */
	char *err;
};

static int
fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(struct parse *p, const char *fmt, ...)
{
	if (p->err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&p->err, fmt, ap) < 0)
		p->err = NULL;
	va_end(ap);
	return -1;
}

static void
warn(struct worker_cfg *c, const char *msg)
{
	size_t l = strlen(c->warnings);
	snprintf(c->warnings + l, sizeof(c->warnings) - l, "%s\n", msg);
}

/* Keeps s for the config's lifetime; NULL if out of room or memory. */
static char *
keep(struct worker_cfg *c, char *s)
{
	if (!s)
		return NULL;
	if (c->nstrings == WORKER_CFG_STRINGS) {
		free(s);
		return NULL;
	}
	return c->strings[c->nstrings++] = s;
}

/* Parses "500ms", "60s", "5m", "1h" or plain seconds into ms; -1 if bad. */
static int64_t
parse_duration_ms(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	if (!*end || strcmp(end, "s") == 0)
		return (int64_t)(v * 1000);
	if (strcmp(end, "ms") == 0)
		return (int64_t)v;
	if (strcmp(end, "m") == 0)
		return (int64_t)(v * 60000);
	if (strcmp(end, "h") == 0)
		return (int64_t)(v * 3600000);
	if (strcmp(end, "d") == 0)
		return (int64_t)(v * 86400000);
	return -1;
}

static int
parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int
parse_hostport(const char *s, char *host, size_t hn, int *port)
{
	const char *colon = strrchr(s, ':');
	if (!colon)
		return -1;
	size_t hl = (size_t)(colon - s);
	const char *h = s;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= hn)
		return -1;
	memcpy(host, h, hl);
	host[hl] = 0;
	long p;
	if (parse_int(colon + 1, 0, 65535, &p) < 0)
		return -1;
	*port = (int)p;
	return 0;
}

/* A secret from a file: its first line, trailing blanks dropped. */
static const char *
read_secret_file(struct parse *p, const char *opt, const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		fail(p, "--%s %s: %s", opt, path, strerror(errno));
		return NULL;
	}
	struct stat sb;
	if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 077)) {
		char msg[PATH_MAX + 128];
		snprintf(msg, sizeof(msg), "--%s %s can be read by other users (mode %03o): chmod 600 it",
		    opt, path, (unsigned)(sb.st_mode & 0777));
		warn(p->c, msg);
	}
	char *buf = calloc(1, SECRET_MAX + 2);
	size_t n = buf ? fread(buf, 1, SECRET_MAX + 1, f) : 0;
	fclose(f);
	if (!buf) {
		fail(p, "out of memory");
		return NULL;
	}
	if (n > SECRET_MAX) {
		free(buf);
		fail(p, "--%s %s: longer than %d bytes", opt, path, SECRET_MAX);
		return NULL;
	}
	buf[strcspn(buf, "\r\n")] = 0;
	size_t l = strlen(buf);
	while (l && isspace((unsigned char)buf[l - 1]))
		buf[--l] = 0;
	return keep(p->c, buf);
}

/* A secret on the command line: copied, and the argv string blanked so
 * that it does not stay in /proc/PID/cmdline. */
static const char *
take_secret_arg(struct parse *p, char *arg, int from_argv)
{
	char *copy = keep(p->c, strdup(arg));
	if (from_argv && copy)
		memset(arg, 'x', strlen(arg));
	return copy;
}

/*
 * One --s3-domain name: DNS labels of 1-63 letters, digits and '-' (not at
 * either end), dot-separated, at most 253 bytes, no port; kept lowercase.
 * 0, or -1 with the failure set.
 */
static int
add_s3_domain(struct parse *p, const char *d, size_t n, const char *arg)
{
	struct worker_cfg *c = p->c;
	int ok = n > 0 && n <= 253;
	size_t label = 0;
	for (size_t i = 0; ok && i <= n; i++) {
		char ch = i < n ? d[i] : '.';
		if (ch == '.') {
			ok = label > 0 && label <= 63 && d[i - 1] != '-';
			label = 0;
		} else if (isalnum((unsigned char)ch) || (ch == '-' && label > 0)) {
			label++;
		} else {
			ok = 0;
		}
	}
	if (!ok)
		return fail(p, "bad --s3-domain %s (host names such as s3.example.com, without a port)",
		    arg);
	if (c->ns3_domains >= WORKER_MAX_S3_DOMAINS)
		return fail(p, "at most %d --s3-domain names", WORKER_MAX_S3_DOMAINS);
	char *s = keep(c, strndup(d, n));
	if (!s)
		return fail(p, "out of memory");
	for (char *q = s; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	c->s3_domains[c->ns3_domains++] = s;
	return 0;
}

static int
apply_opt(struct parse *p, int id, char *arg, int from_argv)
{
	struct worker_cfg *c = p->c;
	long v;
	switch (id) {
	case OPT_CACHE_DIR: {
		if (p->ndirs >= WORKER_MAX_DIRS)
			return fail(p, "at most %d cache dirs (%s)", WORKER_MAX_DIRS, arg);
		char *dir = keep(c, strdup(arg));
		if (!dir)
			return fail(p, "out of memory");
		char *colon = strrchr(dir, ':');
		p->dir_sizes[p->ndirs] = -1;
		if (colon && colon[1] && isdigit((unsigned char)colon[1])) {
			int64_t sz = parse_size(colon + 1);
			if (sz <= 0)
				return fail(p, "bad size in --cache-dir %s (e.g. /nvme0/ferry:500G)", arg);
			*colon = 0;
			p->dir_sizes[p->ndirs] = sz;
		}
		if (!dir[0])
			return fail(p, "bad --cache-dir '%s' (a directory)", arg);
		p->dirs[p->ndirs++] = dir;
		return 0;
	}
	case OPT_CACHE_SIZE:
		if ((p->cache_size = parse_size(arg)) <= 0)
			return fail(p, "bad --cache-size %s (e.g. 500G, 20GiB, 1048576)", arg);
		return 0;
	case OPT_PAGE_SIZE: {
		int64_t ps = parse_size(arg);
		if (ps < 65536 || ps > (64 << 20))
			return fail(p, "bad --page-size %s (64K..64M)", arg);
		c->page_size = (uint32_t)ps;
		return 0;
	}
	case OPT_PAGE_VERIFY:
		if (strcmp(arg, "always") == 0)
			c->verify = PAGESTORE_VERIFY_ALWAYS;
		else if (strcmp(arg, "once") == 0)
			c->verify = PAGESTORE_VERIFY_ONCE;
		else
			return fail(p, "bad --page-verify %s (always or once)", arg);
		return 0;
	case OPT_SYNC:
		if ((c->sync_interval_ms = parse_duration_ms(arg)) < 0)
			return fail(p, "bad --sync-interval %s (e.g. 60s, 500ms, 5m)", arg);
		return 0;
	case OPT_STALE:
		if ((c->stale_ms = parse_duration_ms(arg)) < 0)
			return fail(p, "bad --stale-if-error %s (e.g. 24h, 10m, 0)", arg);
		return 0;
	case OPT_META_ENTRIES:
		if (parse_int(arg, 16, 100000000, &v) < 0)
			return fail(p, "bad --metadata-entries %s (16..100000000)", arg);
		c->meta_max_entries = v;
		return 0;
	case OPT_UFS_PAR:
		if (parse_int(arg, 1, 1024, &v) < 0)
			return fail(p, "bad --ufs-parallelism %s (1..1024)", arg);
		c->reader.fetch_threads = (int)v;
		return 0;
	case OPT_WINDOW:
		if (parse_int(arg, 1, 1024, &v) < 0)
			return fail(p, "bad --window %s (1..1024)", arg);
		c->reader.window = (int)v;
		return 0;
	case OPT_READAHEAD:
		if (parse_int(arg, 0, 4096, &v) < 0)
			return fail(p, "bad --read-ahead %s (0..4096)", arg);
		c->reader.readahead_pages = (int)v;
		return 0;
	case OPT_FETCH_AHEAD:
		if (strcmp(arg, "0") == 0)
			c->fetch_ahead = 0;
		else if ((c->fetch_ahead = parse_size(arg)) <= 0)
			return fail(p, "bad --fetch-ahead %s (bytes, e.g. 1G; 0: off)", arg);
		return 0;
	case OPT_INFLIGHT:
		if (parse_int(arg, 2, 65536, &v) < 0)
			return fail(p, "bad --max-inflight %s (2..65536)", arg);
		c->reader.max_inflight = (int)v;
		return 0;
	case OPT_S3_ADDR:
		if (parse_hostport(arg, c->s3_host, sizeof(c->s3_host), &c->s3_port) < 0)
			return fail(p, "bad --s3-address %s (HOST:PORT)", arg);
		return 0;
	case OPT_CTL_ADDR:
		if (parse_hostport(arg, c->ctl_host, sizeof(c->ctl_host), &c->ctl_port) < 0)
			return fail(p, "bad --control-address %s (HOST:PORT)", arg);
		return 0;
	case OPT_S3_AK:
		c->s3_access_key = keep(c, strdup(arg));
		return c->s3_access_key ? 0 : fail(p, "out of memory");
	case OPT_S3_SK:
		c->s3_secret_key = take_secret_arg(p, arg, from_argv);
		p->sk_from = from_argv ? "the command line" : "the config file";
		return c->s3_secret_key ? 0 : fail(p, "out of memory");
	case OPT_S3_SK_FILE:
		c->s3_secret_key = read_secret_file(p, "s3-secret-key-file", arg);
		p->sk_from = "file";
		return c->s3_secret_key ? 0 : -1;
	case OPT_S3_ANON:
		c->s3_anonymous = !arg || strcmp(arg, "false") != 0;
		return 0;
	case OPT_S3_REGION:
		if (!arg[0])
			return fail(p, "bad --s3-region '' (e.g. us-east-1)");
		c->s3_region = keep(c, strdup(arg));
		return c->s3_region ? 0 : fail(p, "out of memory");
	case OPT_S3_DOMAIN: {
		const char *d = arg;
		do {
			const char *comma = strchr(d, ',');
			size_t n = comma ? (size_t)(comma - d) : strlen(d);
			const char *t = d;
			while (n && isspace((unsigned char)*t)) {
				t++;
				n--;
			}
			while (n && isspace((unsigned char)t[n - 1]))
				n--;
			if (add_s3_domain(p, t, n, arg) < 0)
				return -1;
			d = comma ? comma + 1 : NULL;
		} while (d);
		return 0;
	}
	case OPT_MAXCONN:
		if (parse_int(arg, 1, 1000000, &v) < 0)
			return fail(p, "bad --max-connections %s", arg);
		c->max_conns = (int)v;
		return 0;
	case OPT_MAXCONN_CLIENT:
		if (parse_int(arg, 1, 1000000, &v) < 0)
			return fail(p, "bad --max-connections-per-client %s", arg);
		c->max_conns_per_client = (int)v;
		return 0;
	case OPT_CTL_TOKEN:
		c->control_token = take_secret_arg(p, arg, from_argv);
		p->token_from = from_argv ? "the command line" : "the config file";
		return c->control_token ? 0 : fail(p, "out of memory");
	case OPT_CTL_TOKEN_FILE:
		c->control_token = read_secret_file(p, "control-token-file", arg);
		p->token_from = "file";
		return c->control_token ? 0 : -1;
	case OPT_MOUNT:
		if (c->nmounts >= WORKER_MAX_MOUNTS || !strchr(arg, '=') || arg[0] == '=')
			return fail(p, "bad --mount %s (NAME=URI)", arg);
		c->mounts[c->nmounts] = keep(c, strdup(arg));
		return c->mounts[c->nmounts++] ? 0 : fail(p, "out of memory");
	case OPT_STATE_DIR:
		if (!arg[0])
			return fail(p, "bad --state-dir '' (a directory)");
		c->state_dir = keep(c, strdup(arg));
		return c->state_dir ? 0 : fail(p, "out of memory");
	case OPT_ETCD:
		if (!arg[0])
			return fail(p, "bad --etcd '' (http://HOST:PORT[,...])");
		c->etcd = keep(c, strdup(arg));
		return c->etcd ? 0 : fail(p, "out of memory");
	case OPT_CLUSTER:
		if (!mount_name_valid(arg, strlen(arg)))
			return fail(p, "bad --cluster %s (1-63 of a-z 0-9 . - _)", arg);
		c->cluster_name = keep(c, strdup(arg));
		return c->cluster_name ? 0 : fail(p, "out of memory");
	case OPT_ADVERTISE:
		if (!arg[0] || strlen(arg) > 255 || strpbrk(arg, " /?#@"))
			return fail(p, "bad --advertise %s (a host name or address)", arg);
		c->advertise = keep(c, strdup(arg));
		return c->advertise ? 0 : fail(p, "out of memory");
	case OPT_BLOCK_SIZE: {
		int64_t bs = parse_size(arg);
		if (bs < (1 << 20) || bs > (4LL << 30))
			return fail(p, "bad --block-size %s (1M..4G)", arg);
		c->block_size = bs;
		p->block_size_given = 1;
		return 0;
	}
	case OPT_WB_LIMIT:
		if ((c->wb_limit = parse_size(arg)) <= 0)
			return fail(p, "bad --writeback-limit %s (e.g. 10G, 500M)", arg);
		return 0;
	case OPT_HOT_THRESHOLD:
		if (parse_int(arg, 0, 1000000, &v) < 0)
			return fail(p, "bad --hot-threshold %s (reads per second, 0 to disable)", arg);
		c->hot_threshold = (int)v;
		return 0;
	case OPT_HOT_EXTRA:
		if (parse_int(arg, 0, 16, &v) < 0)
			return fail(p, "bad --hot-replicas %s (0..16)", arg);
		c->hot_extra = (int)v;
		return 0;
	case OPT_PIN_LIMIT:
		if (parse_int(arg, 1, 100, &v) < 0)
			return fail(p, "bad --pin-limit %s (a percentage, 1..100)", arg);
		c->pin_limit_pct = (int)v;
		return 0;
	case OPT_WB_PAR:
		if (parse_int(arg, 1, 64, &v) < 0)
			return fail(p, "bad --writeback-parallel %s (1..64)", arg);
		c->wb_parallel = (int)v;
		return 0;
	case OPT_SCRUB_RATE:
		if (strcmp(arg, "0") == 0)
			c->scrub_rate = 0;
		else if ((c->scrub_rate = parse_size(arg)) <= 0)
			return fail(p, "bad --scrub-rate %s (bytes per second, e.g. 32M; 0: off)", arg);
		return 0;
	case OPT_WB_BW:
		if ((c->wb_bandwidth = parse_size(arg)) <= 0)
			return fail(p, "bad --writeback-bandwidth %s (bytes per second, e.g. 100M)", arg);
		return 0;
	case OPT_LEASE_TTL:
		if (parse_int(arg, 2, 600, &v) < 0)
			return fail(p, "bad --lease-ttl %s (2..600 seconds)", arg);
		c->lease_ttl_s = (int)v;
		return 0;
	case OPT_LOCAL_SOCKET:
		if (!arg[0])
			return fail(p, "bad --local-socket '' (a path, or none)");
		c->local_socket = keep(c, strdup(arg));
		return c->local_socket ? 0 : fail(p, "out of memory");
	case OPT_LOG_LEVEL:
		if ((c->log_level = log_level_parse(arg)) < 0)
			return fail(p, "bad --log-level %s (error, warn, info, debug)", arg);
		return 0;
	default:
		return fail(p, "unknown option");
	}
}

static char *
trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = 0;
	return s;
}

static const struct opt_def *
opt_by_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

/* Reads "key = value" lines. */
static int
load_config(struct parse *p, const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return fail(p, "cannot read config file %s: %s", path, strerror(errno));
	char line[CONFIG_LINE_MAX];
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = 0;
		char *l = trim(line);
		if (!*l)
			continue;
		char *eq = strchr(l, '=');
		char *val = NULL;
		if (eq) {
			*eq = 0;
			val = trim(eq + 1);
		}
		char *k = trim(l);
		const struct opt_def *o = opt_by_name(k);
		if (!o || o->id == OPT_CONFIG || o->id == OPT_HELP || (!val && o->arg)) {
			rc = fail(p, "%s:%d: unknown option or missing value: %s", path, lineno, k);
			break;
		}
		if (apply_opt(p, o->id, val, 0) < 0) {
			char *e = p->err;
			p->err = NULL;
			rc = fail(p, "%s (in %s:%d)", e ? e : "bad value", path, lineno);
			free(e);
		}
	}
	fclose(f);
	return rc;
}

static void
defaults(struct worker_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->page_size = 1 << 20;
	c->verify = PAGESTORE_VERIFY_ALWAYS;
	c->scrub_rate = 32 << 20;
	snprintf(c->s3_host, sizeof(c->s3_host), "127.0.0.1");
	c->s3_port = 29998;
	snprintf(c->ctl_host, sizeof(c->ctl_host), "127.0.0.1");
	c->ctl_port = 29999;
	c->s3_region = "us-east-1";
	c->sync_interval_ms = 60000;
	c->stale_ms = 24LL * 3600 * 1000;
	c->wb_limit = 10LL << 30;
	c->pin_limit_pct = 80;
	c->hot_threshold = 200;
	c->hot_extra = 2;
	c->wb_parallel = 4;
	c->meta_max_entries = 200000;
	c->meta_max_list_bytes = 64LL << 20;
	c->reader.fetch_threads = 32;
	c->reader.window = 8;
	c->reader.readahead_pages = 8;
	c->reader.max_inflight = 128;
	c->fetch_ahead = 1LL << 30;
	c->max_conns = 4096;
	c->max_conns_per_client = 1024;
	c->cluster_name = "default";
	c->block_size = 64LL << 20;
	c->lease_ttl_s = 5;
	c->log_level = LOG_LVL_INFO;
}

/* Secrets from the environment, where not given otherwise. */
static void
from_env(struct parse *p)
{
	struct worker_cfg *c = p->c;
	const char *v;
	if (!c->s3_access_key && (v = getenv("FERRY_S3_ACCESS_KEY")))
		c->s3_access_key = v;
	if (!c->s3_secret_key && (v = getenv("FERRY_S3_SECRET_KEY"))) {
		c->s3_secret_key = v;
		p->sk_from = "environment";
	}
	if (!c->control_token && (v = getenv("FERRY_CONTROL_TOKEN"))) {
		c->control_token = v;
		p->token_from = "environment";
	}
}

/* Checks across options, after all are in. */
static int
check(struct parse *p)
{
	struct worker_cfg *c = p->c;
	char b1[32], b2[32];
	/* Cache dirs and their capacities. */
	if (p->ndirs == 0) {
		const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
		char *d = NULL;
		if (xdg && xdg[0] && asprintf(&d, "%s/ferry", xdg) < 0)
			d = NULL;
		else if (!(xdg && xdg[0]) &&
		    asprintf(&d, "%s/.cache/ferry", home && home[0] ? home : "/tmp") < 0)
			d = NULL;
		if (!keep(c, d))
			return fail(p, "out of memory");
		p->dirs[0] = d;
		p->dir_sizes[0] = -1;
		p->ndirs = 1;
	}
	int64_t min_cap = (int64_t)WORKER_MIN_CACHE_PAGES * c->page_size;
	for (int i = 0; i < p->ndirs; i++) {
		c->dirs[i].path = p->dirs[i];
		c->dirs[i].capacity = p->dir_sizes[i] > 0 ? p->dir_sizes[i] : p->cache_size;
		if (c->dirs[i].capacity < min_cap) {
			fmt_bytes((double)c->dirs[i].capacity, b1, sizeof(b1));
			fmt_bytes((double)min_cap, b2, sizeof(b2));
			return fail(p, "cache dir %s: a capacity of %s holds less than %d pages; give at least %s "
			    "(--cache-size, or DIR:SIZE), or a smaller --page-size",
			    p->dirs[i], b1, WORKER_MIN_CACHE_PAGES, b2);
		}
	}
	c->ndirs = p->ndirs;
	if (!c->state_dir)
		c->state_dir = c->dirs[0].path;

	/* Credentials: both or neither, never empty (an unset shell variable
	 * must not turn into "signatures with an empty secret"). */
	if ((c->s3_access_key == NULL) != (c->s3_secret_key == NULL))
		return fail(p, "give both --s3-access-key and the secret (--s3-secret-key-file, $FERRY_S3_SECRET_KEY), or neither");
	if (c->s3_access_key && !c->s3_access_key[0])
		return fail(p, "the S3 access key is empty (an unset variable?): give a key, or no credentials at all");
	if (c->s3_secret_key && !c->s3_secret_key[0])
		return fail(p, "the S3 secret key (from %s) is empty: give a secret, or no credentials at all",
		    p->sk_from ? p->sk_from : "?");
	if (c->control_token && strlen(c->control_token) < 8)
		return fail(p, "the control token (from %s) must be at least 8 characters%s",
		    p->token_from ? p->token_from : "?", c->control_token[0] ? "" : " (it is empty: an unset variable?)");
	int s3_loop = host_is_loopback(c->s3_host), ctl_loop = host_is_loopback(c->ctl_host);
	if (!c->s3_access_key && !s3_loop && !c->s3_anonymous)
		return fail(p, "the S3 gateway would listen on %s beyond loopback with no credentials:\n"
		    "  set --s3-access-key and --s3-secret-key-file, or allow anyone with --s3-anonymous",
		    c->s3_host);
	if (!ctl_loop && !c->control_token)
		return fail(p, "the control API would listen on %s beyond loopback: set --control-token-file",
		    c->ctl_host);
	if (c->etcd && c->s3_access_key && !c->control_token)
		return fail(p, "a cluster whose gateway checks signatures needs a --control-token-file: "
		    "workers authenticate to each other with it");

	/* Cluster placement. */
	if ((c->etcd || p->block_size_given) && c->block_size % c->page_size != 0) {
		fmt_bytes((double)c->block_size, b1, sizeof(b1));
		fmt_bytes((double)c->page_size, b2, sizeof(b2));
		return fail(p, "%s block size %s is not a multiple of --page-size %s: choose a page size that divides it%s",
		    p->block_size_given ? "--block-size:" : "the default cluster", b1, b2,
		    p->block_size_given ? "" : ", or set --block-size");
	}
	if (c->etcd && !c->advertise && (strcmp(c->ctl_host, "0.0.0.0") == 0 ||
	    strcmp(c->ctl_host, "::") == 0 || strcmp(c->s3_host, "0.0.0.0") == 0 ||
	    strcmp(c->s3_host, "::") == 0))
		return fail(p, "listening on all addresses: set --advertise HOST, the address peers reach this worker at");
	if (c->etcd)
		c->reader.block_size = c->block_size;

	if (p->sk_from && strcmp(p->sk_from, "the command line") == 0)
		warn(c, "--s3-secret-key on the command line can be read by every local user from the process "
		    "list until the worker hides it: use --s3-secret-key-file or $FERRY_S3_SECRET_KEY");
	if (p->token_from && strcmp(p->token_from, "the command line") == 0)
		warn(c, "--control-token on the command line can be read by every local user from the process "
		    "list until the worker hides it: use --control-token-file or $FERRY_CONTROL_TOKEN");
	return 0;
}

int
worker_config_parse(int argc, char **argv, struct worker_cfg *c, char **err)
{
	defaults(c);
	struct parse p = {.c = c, .cache_size = DEFAULT_CACHE_SIZE};
	*err = NULL;

	struct option lo[ARRAY_SIZE(opts) + 1];
	for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
		lo[i] = (struct option){opts[i].name,
		    opts[i].arg ? required_argument : no_argument, 0, opts[i].id};
	memset(&lo[ARRAY_SIZE(opts)], 0, sizeof(lo[0]));

	/* The config file first, so that the command line overrides it. */
	int rc = 0;
	for (int i = 1; i < argc && rc == 0; i++) {
		const char *cf = NULL;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			cf = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			cf = argv[i] + 9;
		if (cf)
			rc = load_config(&p, cf);
	}
	optind = 1;
	opterr = 0;
	int o;
	while (rc == 0 && (o = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		if (o == 'h' || o == OPT_HELP)
			return 1;
		if (o == '?') {
			rc = optopt ? fail(&p, "unknown option -%c", optopt) :
			    fail(&p, "unknown option %s", argv[optind - 1]);
		} else if (o == ':') {
			rc = fail(&p, "option %s needs a value", argv[optind - 1]);
		} else if (o != OPT_CONFIG) {
			rc = apply_opt(&p, o, optarg, 1);
		}
	}
	if (rc == 0 && optind < argc)
		rc = fail(&p, "unexpected argument: %s", argv[optind]);
	if (rc == 0) {
		from_env(&p);
		rc = check(&p);
	}
	if (rc < 0) {
		*err = p.err ? p.err : strdup("bad configuration");
		return -1;
	}
	return 0;
}

void
worker_config_free(struct worker_cfg *c)
{
	for (int i = 0; i < c->nstrings; i++) {
		/* Secrets among them: wipe before freeing. */
		explicit_bzero(c->strings[i], strlen(c->strings[i]));
		free(c->strings[i]);
	}
	c->nstrings = 0;
}
