/*
 * Unit tests for `ferry worker`'s option parse (worker_config.c): defaults,
 * the config file and its overrides, every refusal in the user's terms,
 * secrets (never empty, read from files, blanked from argv), and cache and
 * page size checks that name only options the user gave.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "worker/worker_config.h"

static char tmp[64];

/* Parses a NULL-terminated argument list (copied: the parse may blank
 * secrets in it); returns the parse's result, *err if any. */
static int
parse(struct worker_cfg *c, char **err, char **argv_out, ...)
{
	static char *argv[64];
	static char store[64][512];
	int argc = 0;
	argv[argc++] = "worker";
	va_list ap;
	va_start(ap, argv_out);
	const char *a;
	while ((a = va_arg(ap, const char *)) && argc < 63) {
		snprintf(store[argc], sizeof(store[argc]), "%s", a);
		argv[argc] = store[argc];
		argc++;
	}
	va_end(ap);
	argv[argc] = NULL;
	if (argv_out)
		*argv_out = (char *)argv;
	*err = NULL;
	return worker_config_parse(argc, argv, c, err);
}

static void
write_file(const char *name, const char *text, mode_t mode, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", tmp, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

#define EXPECT_REFUSED(needle, ...)                                           \
	do {                                                                  \
		struct worker_cfg _c;                                         \
		char *_e;                                                     \
		int _r = parse(&_c, &_e, NULL, __VA_ARGS__, (char *)NULL);    \
		CHECK_EQ_INT(_r, -1);                                         \
		CHECK(_e && strstr(_e, needle));                              \
		if (_e && !strstr(_e, needle))                                \
			fprintf(stderr, "    message: %s\n", _e);             \
		free(_e);                                                     \
		worker_config_free(&_c);                                      \
	} while (0)

TEST(defaults)
{
	struct worker_cfg c;
	char *e;
	setenv("HOME", tmp, 1);
	unsetenv("XDG_CACHE_HOME");
	CHECK_EQ_INT(parse(&c, &e, NULL, (char *)NULL), 0);
	char want[128];
	snprintf(want, sizeof(want), "%s/.cache/ferry", tmp);
	CHECK_EQ_STR(c.dirs[0].path, want);
	CHECK_EQ_INT(c.ndirs, 1);
	CHECK_EQ_INT(c.dirs[0].capacity, 10LL << 30);
	CHECK_EQ_STR(c.state_dir, want);
	CHECK_EQ_INT(c.page_size, 1 << 20);
	CHECK_EQ_INT(c.s3_port, 29998);
	CHECK_EQ_INT(c.ctl_port, 29999);
	CHECK(c.s3_access_key == NULL && c.control_token == NULL);
	CHECK_EQ_INT(c.reader.block_size, 0); /* no cluster: no blocks */
	CHECK_EQ_STR(c.warnings, "");
	worker_config_free(&c);
	CHECK_EQ_INT(parse(&c, &e, NULL, "--help", (char *)NULL), 1);
	worker_config_free(&c);
}

TEST(cache_dirs_and_sizes)
{
	struct worker_cfg c;
	char *e;
	CHECK_EQ_INT(parse(&c, &e, NULL, "--cache-dir", "/a:2G", "--cache-dir", "/b",
	    "--cache-size", "3G", "--page-size", "64K", (char *)NULL), 0);
	CHECK_EQ_INT(c.ndirs, 2);
	CHECK_EQ_STR(c.dirs[0].path, "/a");
	CHECK_EQ_INT(c.dirs[0].capacity, 2LL << 30);
	CHECK_EQ_INT(c.dirs[1].capacity, 3LL << 30);
	CHECK_EQ_INT(c.page_size, 65536);
	worker_config_free(&c);
	/* A cache must hold a few pages: 10 bytes is a mistake, said so. */
	EXPECT_REFUSED("holds less than 8 pages", "--cache-dir", "/a", "--cache-size", "10");
	EXPECT_REFUSED("holds less than 8 pages", "--cache-dir", "/a:4M");
	CHECK_EQ_INT(parse(&c, &e, NULL, "--cache-dir", "/a", "--cache-size", "512K",
	    "--page-size", "64K", (char *)NULL), 0);
	worker_config_free(&c);
}

TEST(bad_values_name_the_option)
{
	EXPECT_REFUSED("--cache-size lots", "--cache-size", "lots");
	EXPECT_REFUSED("--page-size 1K", "--page-size", "1K");
	EXPECT_REFUSED("--sync-interval soon", "--sync-interval", "soon");
	EXPECT_REFUSED("--stale-if-error never", "--stale-if-error", "never");
	EXPECT_REFUSED("--s3-address nonsense", "--s3-address", "nonsense");
	EXPECT_REFUSED("--page-verify sometimes", "--page-verify", "sometimes");
	EXPECT_REFUSED("unknown option --nope", "--nope");
	EXPECT_REFUSED("needs a value", "--cache-size");
	EXPECT_REFUSED("unexpected argument: extra", "extra");
	EXPECT_REFUSED("both --s3-access-key", "--s3-access-key", "only-the-key");
}

/* A page size that does not divide the block size matters only in a
 * cluster, and the message names an option the user gave. */
TEST(page_and_block_size)
{
	struct worker_cfg c;
	char *e;
	CHECK_EQ_INT(parse(&c, &e, NULL, "--page-size", "3M", "--cache-size", "1G", (char *)NULL), 0);
	worker_config_free(&c);
	EXPECT_REFUSED("default cluster block size", "--page-size", "3M", "--etcd", "http://127.0.0.1:1");
	EXPECT_REFUSED("--block-size:", "--page-size", "3M", "--block-size", "5M", "--etcd", "http://127.0.0.1:1");
	CHECK_EQ_INT(parse(&c, &e, NULL, "--etcd", "http://127.0.0.1:1", "--block-size", "8M", (char *)NULL), 0);
	CHECK_EQ_INT(c.reader.block_size, 8 << 20);
	worker_config_free(&c);
}

/* An empty secret (an unset shell variable) never means "checks on". */
TEST(empty_secrets_refused)
{
	EXPECT_REFUSED("secret key (from the command line) is empty",
	    "--s3-access-key", "AK", "--s3-secret-key", "");
	EXPECT_REFUSED("access key is empty", "--s3-access-key", "", "--s3-secret-key", "s");
	setenv("FERRY_S3_ACCESS_KEY", "AK", 1);
	setenv("FERRY_S3_SECRET_KEY", "", 1);
	EXPECT_REFUSED("secret key (from environment) is empty", "--cache-size", "1G");
	unsetenv("FERRY_S3_ACCESS_KEY");
	unsetenv("FERRY_S3_SECRET_KEY");
	EXPECT_REFUSED("it is empty", "--control-token", "");
	EXPECT_REFUSED("at least 8 characters", "--control-token", "short");
}

TEST(secrets_from_files_and_argv)
{
	char sk[128], tok[128], open_sk[128];
	write_file("sk", "s3cr3t-from-file\n", 0600, sk, sizeof(sk));
	write_file("tok", "  token-from-file  \n", 0600, tok, sizeof(tok));
	write_file("open", "readable-secret\n", 0644, open_sk, sizeof(open_sk));
	struct worker_cfg c;
	char *e;
	CHECK_EQ_INT(parse(&c, &e, NULL, "--s3-access-key", "AK", "--s3-secret-key-file", sk,
	    "--control-token-file", tok, (char *)NULL), 0);
	CHECK_EQ_STR(c.s3_secret_key, "s3cr3t-from-file");
	CHECK_EQ_STR(c.control_token, "  token-from-file");
	CHECK_EQ_STR(c.warnings, "");
	worker_config_free(&c);
	/* A secret file others can read: a warning, not a refusal. */
	CHECK_EQ_INT(parse(&c, &e, NULL, "--s3-access-key", "AK", "--s3-secret-key-file", open_sk,
	    (char *)NULL), 0);
	CHECK(strstr(c.warnings, "can be read by other users"));
	worker_config_free(&c);
	EXPECT_REFUSED("No such file", "--s3-access-key", "AK", "--s3-secret-key-file", "/nonexistent/sk");
	/* On the command line: taken, warned about, and blanked in argv. */
	char **argv;
	CHECK_EQ_INT(parse(&c, &e, (char **)&argv, "--s3-access-key", "AK", "--s3-secret-key",
	    "visible-secret", "--control-token", "visible-token", (char *)NULL), 0);
	CHECK_EQ_STR(c.s3_secret_key, "visible-secret");
	CHECK_EQ_STR(c.control_token, "visible-token");
	CHECK(strstr(c.warnings, "--s3-secret-key on the command line"));
	CHECK(strstr(c.warnings, "--control-token on the command line"));
	for (int i = 0; argv[i]; i++)
		CHECK(!strstr(argv[i], "visible"));
	worker_config_free(&c);
}

TEST(open_ports_need_credentials)
{
	EXPECT_REFUSED("beyond loopback with no credentials", "--s3-address", "0.0.0.0:0");
	EXPECT_REFUSED("--control-token-file", "--control-address", "0.0.0.0:0");
	EXPECT_REFUSED("workers authenticate to each other", "--etcd", "http://127.0.0.1:1",
	    "--s3-access-key", "AK", "--s3-secret-key", "secret");
	EXPECT_REFUSED("--advertise", "--etcd", "http://127.0.0.1:1", "--control-token", "12345678",
	    "--control-address", "0.0.0.0:0");
	struct worker_cfg c;
	char *e;
	CHECK_EQ_INT(parse(&c, &e, NULL, "--s3-address", "0.0.0.0:0", "--s3-anonymous", (char *)NULL), 0);
	worker_config_free(&c);
}

TEST(config_file_and_override)
{
	char cf[128], bad[128];
	write_file("ferry.conf", "# comment\ns3-region = eu-west-1\nsync-interval = 2s\n"
	    "page-size = 128K\ncache-size = 1G\nmount = conf=file:///tmp\ns3-anonymous\n", 0600, cf, sizeof(cf));
	write_file("bad.conf", "cache-size = 1G\nno-such-option = 3\n", 0600, bad, sizeof(bad));
	struct worker_cfg c;
	char *e;
	CHECK_EQ_INT(parse(&c, &e, NULL, "--config", cf, "--s3-region", "us-west-2", (char *)NULL), 0);
	CHECK_EQ_STR(c.s3_region, "us-west-2");
	CHECK_EQ_INT(c.sync_interval_ms, 2000);
	CHECK_EQ_INT(c.page_size, 128 << 10);
	CHECK_EQ_INT(c.nmounts, 1);
	CHECK_EQ_STR(c.mounts[0], "conf=file:///tmp");
	CHECK_EQ_INT(c.s3_anonymous, 1);
	worker_config_free(&c);
	EXPECT_REFUSED("bad.conf:2", "--config", bad);
	EXPECT_REFUSED("missing.conf", "--config", "/nonexistent/missing.conf");
}

/* --s3-domain: repeatable and comma-separated, lowercased, checked. */
TEST(s3_domains)
{
	struct worker_cfg c;
	char *e;
	CHECK_EQ_INT(parse(&c, &e, NULL, (char *)NULL), 0);
	CHECK_EQ_INT(c.ns3_domains, 0);
	worker_config_free(&c);
	CHECK_EQ_INT(parse(&c, &e, NULL, "--s3-domain", "S3.Localhost", "--s3-domain",
	    "a.example, b-1.example.com", (char *)NULL), 0);
	CHECK_EQ_INT(c.ns3_domains, 3);
	CHECK_EQ_STR(c.s3_domains[0], "s3.localhost");
	CHECK_EQ_STR(c.s3_domains[1], "a.example");
	CHECK_EQ_STR(c.s3_domains[2], "b-1.example.com");
	worker_config_free(&c);
	static const char *const bad[] = {"", "a..b", ".a", "a.", "-a.b", "a-.b",
	    "s3.localhost:29998", "a/b", "*.example.com", "a,", "a_b.c"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_REFUSED("bad --s3-domain", "--s3-domain", bad[i]);
	char long_label[80];
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".com");
	EXPECT_REFUSED("bad --s3-domain", "--s3-domain", long_label);
}

int
main(void)
{
	strcpy(tmp, "/tmp/ferry-wcfg-XXXXXX");
	if (!mkdtemp(tmp))
		return 1;
	unsetenv("FERRY_S3_ACCESS_KEY");
	unsetenv("FERRY_S3_SECRET_KEY");
	unsetenv("FERRY_CONTROL_TOKEN");
	RUN(defaults);
	RUN(cache_dirs_and_sizes);
	RUN(bad_values_name_the_option);
	RUN(page_and_block_size);
	RUN(empty_secrets_refused);
	RUN(secrets_from_files_and_argv);
	RUN(open_ports_need_credentials);
	RUN(config_file_and_override);
	RUN(s3_domains);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		return 1;
	TAP_DONE();
}
