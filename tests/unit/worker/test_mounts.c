/*
 * Unit tests for the mount table (mounts.c): references keep an unmounted
 * mount alive until the last request lets go, names and options are
 * checked (ferry's own "replicas" option included), secrets never leave
 * through mounts_json, the table survives a restart through its state file
 * (mode 0600), MOUNTS_REPLACE leaves an identical mount alone,
 * MOUNTS_KEEP_BROKEN keeps a mount whose backend cannot open (and says
 * why), and a malformed JSON definition is refused with a message.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"
#include "common/dbuf.h"
#include "worker/mounts.h"

static char dir[64];   /* a temporary directory: the state file's home */
static char root[128]; /* a file:// mount's root (exists) */
static char root2[128];
static char uri[160], uri2[160];
static char state[128];

static void
setup(void)
{
	strcpy(dir, "/tmp/ferry-mounts-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(root, sizeof(root), "%s/data", dir);
	snprintf(root2, sizeof(root2), "%s/data2", dir);
	if (mkdir(root, 0755) < 0 || mkdir(root2, 0755) < 0)
		abort();
	snprintf(uri, sizeof(uri), "file://%s", root);
	snprintf(uri2, sizeof(uri2), "file://%s", root2);
	snprintf(state, sizeof(state), "%s/mounts.json", dir);
}

static void
teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		abort();
}

/* mounts_json as a NUL-terminated string (malloc'd). */
static char *
json_of(struct mount_table *mt)
{
	struct dbuf b;
	dbuf_init(&b, 1 << 20);
	if (mounts_json(mt, &b) < 0 || dbuf_add(&b, "", 1) < 0) {
		dbuf_free(&b);
		return strdup("");
	}
	return dbuf_take(&b);
}

static int
has(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

TEST(add_get_remove_release)
{
	setup();
	char *err = NULL;
	struct mount_table *mt = mounts_open(NULL, &err);
	CHECK(mt != NULL);
	CHECK(err == NULL);
	CHECK_EQ_INT(mounts_add(mt, "data", uri, NULL, 0, 0, &err), 0);
	CHECK(err == NULL);
	CHECK_EQ_INT(mounts_add(mt, "b", uri2, NULL, 0, 0, &err), 0);
	CHECK_EQ_INT(mounts_count(mt), 2);
	/* The name is taken. */
	CHECK_EQ_INT(mounts_add(mt, "data", uri2, NULL, 0, 0, &err), -EEXIST);
	CHECK(err && has(err, "exists"));
	free(err);
	err = NULL;

	struct mount *m = mounts_get(mt, "data", 4);
	CHECK(m != NULL);
	if (!m) {
		mounts_close(&mt);
		teardown();
		return;
	}
	CHECK_EQ_STR(m->name, "data");
	CHECK_EQ_STR(m->uri, uri);
	CHECK_EQ_INT(m->replicas, 1);
	CHECK_EQ_INT(__atomic_load_n(&m->refs, __ATOMIC_RELAXED), 2);
	/* Looked up by length: a longer buffer's prefix. */
	struct mount *m2 = mounts_get(mt, "datax", 4);
	CHECK(m2 == m);
	mount_release(&m2);
	CHECK(m2 == NULL);
	CHECK(mounts_get(mt, "dat", 3) == NULL);
	CHECK(mounts_get(mt, "nope", 4) == NULL);

	/* Unmounted while a request holds it: gone from the table, still
	 * usable by the holder until it lets go. */
	CHECK_EQ_INT(mounts_remove(mt, "data"), 0);
	CHECK_EQ_INT(mounts_remove(mt, "data"), -ENOENT);
	CHECK(mounts_get(mt, "data", 4) == NULL);
	CHECK_EQ_INT(mounts_count(mt), 1);
	CHECK_EQ_INT(__atomic_load_n(&m->refs, __ATOMIC_RELAXED), 1);
	CHECK_EQ_STR(m->name, "data");
	struct ufs_stat st;
	CHECK_EQ_INT(ufs_stat(m->ufs, "", &st), 0);
	CHECK(st.is_dir);
	mount_release(&m); /* frees it (ASan checks) */
	CHECK(m == NULL);
	/* The name can be used again. */
	CHECK_EQ_INT(mounts_add(mt, "data", uri2, NULL, 0, 0, &err), 0);
	m = mounts_get(mt, "data", 4);
	CHECK(m && strcmp(m->uri, uri2) == 0);
	mount_release(&m);
	/* Closing the table while a mount is held: the holder keeps it. */
	m = mounts_get(mt, "b", 1);
	mounts_close(&mt);
	CHECK(mt == NULL);
	CHECK(m && strcmp(m->name, "b") == 0);
	mount_release(&m);
	teardown();
}

TEST(name_validation)
{
	CHECK(mount_name_valid("a", 1));
	CHECK(mount_name_valid("data-1.x_y", 10));
	CHECK(mount_name_valid("9lives", 6));
	char longest[MOUNT_NAME_MAX + 2];
	memset(longest, 'a', sizeof(longest));
	CHECK(mount_name_valid(longest, MOUNT_NAME_MAX));
	CHECK(!mount_name_valid(longest, MOUNT_NAME_MAX + 1));
	CHECK(!mount_name_valid("", 0));
	CHECK(!mount_name_valid("Data", 4));
	CHECK(!mount_name_valid("-a", 2));
	CHECK(!mount_name_valid(".a", 2));
	CHECK(!mount_name_valid("_a", 2));
	CHECK(!mount_name_valid("a/b", 3));
	CHECK(!mount_name_valid("a b", 3));
	CHECK(!mount_name_valid("a\0b", 3));
	CHECK(!mount_name_valid("\xc3\xa9", 2));

	setup();
	char *err = NULL;
	struct mount_table *mt = mounts_open(NULL, &err);
	const char *bad[] = {"", "UPPER", "a/b", "-x", "x y"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ_INT(mounts_add(mt, bad[i], uri, NULL, 0, 0, &err), -EINVAL);
		CHECK(err && has(err, "invalid mount name"));
		free(err);
		err = NULL;
	}
	/* Unknown scheme, and an option key that is empty. */
	CHECK_EQ_INT(mounts_add(mt, "x", "ftp://host/", NULL, 0, 0, &err), -EINVAL);
	CHECK(err && has(err, "unsupported URI scheme"));
	free(err);
	err = NULL;
	struct ufs_opt empty_key = {"", "v"};
	CHECK_EQ_INT(mounts_add(mt, "x", uri, &empty_key, 1, 0, &err), -EINVAL);
	CHECK(err && has(err, "invalid option"));
	free(err);
	err = NULL;
	/* A backend that refuses its options: its message. */
	struct ufs_opt unknown = {"foo", "bar"};
	CHECK_EQ_INT(mounts_add(mt, "x", uri, &unknown, 1, 0, &err), -EINVAL);
	CHECK(err && has(err, "unknown option"));
	free(err);
	err = NULL;
	CHECK_EQ_INT(mounts_count(mt), 0);
	mounts_close(&mt);
	teardown();
}

TEST(secrets_redacted)
{
	CHECK(mount_opt_is_secret("s3.secret_key"));
	CHECK(mount_opt_is_secret("s3.session_token"));
	CHECK(mount_opt_is_secret("PASSWORD"));
	CHECK(mount_opt_is_secret("azure.sas"));
	CHECK(!mount_opt_is_secret("s3.region"));
	CHECK(!mount_opt_is_secret("s3.endpoint"));

	char *err = NULL;
	struct mount_table *mt = mounts_open(NULL, &err);
	struct ufs_opt opts[] = {
		{"s3.endpoint", "http://127.0.0.1:9"},
		{"s3.region", "us-east-1"},
		{"s3.access_key", "AKIDEXAMPLE"},
		{"s3.secret_key", "wJalrXUtnFEMI-SECRET"},
		{"s3.session_token", "TOKEN-SECRET-VALUE"},
	};
	int r = mounts_add(mt, "bucket", "s3://bkt/pre", opts, 5, 0, &err);
	CHECK_EQ_INT(r, 0);
	if (r)
		fprintf(stderr, "  mounts_add: %s\n", err ? err : "?");
	free(err);
	char *j = json_of(mt);
	CHECK(has(j, "\"name\":\"bucket\""));
	CHECK(has(j, "\"uri\":\"s3://bkt/pre\""));
	CHECK(has(j, "\"state\":\"ok\""));
	CHECK(has(j, "\"s3.region\":\"us-east-1\""));
	CHECK(has(j, "\"s3.endpoint\":\"http://127.0.0.1:9\""));
	CHECK(has(j, "\"s3.secret_key\":\"<redacted>\""));
	CHECK(has(j, "\"s3.session_token\":\"<redacted>\""));
	CHECK(!has(j, "SECRET"));
	free(j);
	/* The mount itself keeps them (the backend signs with them). */
	struct mount *m = mounts_get(mt, "bucket", 6);
	CHECK(m && m->nopts == 5);
	mount_release(&m);
	mounts_close(&mt);
}

TEST(replicas_option)
{
	setup();
	char *err = NULL;
	struct mount_table *mt = mounts_open(NULL, &err);
	struct ufs_opt three = {MOUNT_OPT_REPLICAS, "3"};
	/* Taken by ferry: file:// (which takes no options) never sees it. */
	CHECK_EQ_INT(mounts_add(mt, "r3", uri, &three, 1, 0, &err), 0);
	struct mount *m = mounts_get(mt, "r3", 2);
	CHECK(m && m->replicas == 3);
	mount_release(&m);
	const char *ok[] = {"1", "16"};
	const int okv[] = {1, 16};
	for (int i = 0; i < 2; i++) {
		struct ufs_opt o = {MOUNT_OPT_REPLICAS, ok[i]};
		CHECK_EQ_INT(mounts_add(mt, "rx", uri, &o, 1, MOUNTS_REPLACE, &err), 0);
		m = mounts_get(mt, "rx", 2);
		CHECK(m && m->replicas == okv[i]);
		mount_release(&m);
	}
	const char *bad[] = {"0", "17", "-1", "x", "", "3x", "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ufs_opt o = {MOUNT_OPT_REPLICAS, bad[i]};
		CHECK_EQ_INT(mounts_add(mt, "bad", uri, &o, 1, 0, &err), -EINVAL);
		CHECK(err && strcmp(err, "option replicas: a number from 1 to 16") == 0);
		free(err);
		err = NULL;
	}
	CHECK(mounts_get(mt, "bad", 3) == NULL);
	/* Shown as an option. */
	char *j = json_of(mt);
	CHECK(has(j, "\"replicas\":\"3\""));
	free(j);
	mounts_close(&mt);
	teardown();
}

TEST(persistence_round_trip)
{
	setup();
	char *err = NULL;
	struct mount_table *mt = mounts_open(state, &err);
	CHECK(mt != NULL);
	struct ufs_opt rep = {MOUNT_OPT_REPLICAS, "2"};
	CHECK_EQ_INT(mounts_add(mt, "zeta", uri, NULL, 0, MOUNTS_SAVE, &err), 0);
	CHECK_EQ_INT(mounts_add(mt, "alpha", uri2, &rep, 1, MOUNTS_SAVE, &err), 0);
	struct ufs_opt s3o[] = {{"s3.endpoint", "http://127.0.0.1:9"},
	    {"s3.access_key", "AK"}, {"s3.secret_key", "SK-VALUE"}};
	CHECK_EQ_INT(mounts_add(mt, "s3m", "s3://b", s3o, 3, MOUNTS_SAVE, &err), 0);
	struct stat sb;
	CHECK(stat(state, &sb) == 0);
	CHECK_EQ_INT(sb.st_mode & 0777, 0600);
	/* The file keeps secrets (it is the table): that is why it is 0600. */
	FILE *f = fopen(state, "r");
	char buf[4096] = {0};
	if (f) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = 0;
		fclose(f);
	}
	CHECK(has(buf, "SK-VALUE"));
	char *j1 = json_of(mt);
	mounts_close(&mt);

	mt = mounts_open(state, &err);
	CHECK(mt != NULL);
	CHECK(err == NULL);
	CHECK_EQ_INT(mounts_count(mt), 3);
	char *j2 = json_of(mt);
	CHECK_EQ_STR(j1, j2);
	struct mount *m = mounts_get(mt, "alpha", 5);
	CHECK(m && m->replicas == 2 && strcmp(m->uri, uri2) == 0);
	mount_release(&m);
	m = mounts_get(mt, "s3m", 3);
	CHECK(m && m->nopts == 3);
	if (m)
		for (int i = 0; i < m->nopts; i++)
			if (strcmp(m->opts[i].key, "s3.secret_key") == 0)
				CHECK_EQ_STR(m->opts[i].value, "SK-VALUE");
	mount_release(&m);
	/* A remove is saved too. */
	CHECK_EQ_INT(mounts_remove(mt, "zeta"), 0);
	mounts_close(&mt);
	mt = mounts_open(state, &err);
	CHECK_EQ_INT(mounts_count(mt), 2);
	CHECK(mounts_get(mt, "zeta", 4) == NULL);
	CHECK(stat(state, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	mounts_close(&mt);
	free(j1);
	free(j2);

	/* No file yet: an empty table.  A file that is not JSON: an error. */
	char other[160];
	snprintf(other, sizeof(other), "%s/none.json", dir);
	mt = mounts_open(other, &err);
	CHECK(mt && mounts_count(mt) == 0);
	mounts_close(&mt);
	f = fopen(other, "w");
	if (f) {
		fputs("{not json", f);
		fclose(f);
	}
	mt = mounts_open(other, &err);
	CHECK(mt == NULL);
	CHECK(err && has(err, "not valid JSON"));
	free(err);
	teardown();
}

TEST(replace)
{
	setup();
	char *err = NULL;
	struct mount_table *mt = mounts_open(state, &err);
	struct ufs_opt o1[] = {{MOUNT_OPT_REPLICAS, "2"}};
	CHECK_EQ_INT(mounts_add(mt, "m", uri, o1, 1, MOUNTS_SAVE, &err), 0);
	struct mount *m1 = mounts_get(mt, "m", 1);
	/* Identical: left alone (same object: requests in flight, cached
	 * pages' identity and the backend untouched). */
	CHECK_EQ_INT(mounts_add(mt, "m", uri, o1, 1, MOUNTS_REPLACE | MOUNTS_SAVE, &err), 0);
	struct mount *m2 = mounts_get(mt, "m", 1);
	CHECK(m1 == m2);
	mount_release(&m2);
	/* Different options: replaced; the holder of the old one keeps it. */
	struct ufs_opt o2[] = {{MOUNT_OPT_REPLICAS, "4"}};
	CHECK_EQ_INT(mounts_add(mt, "m", uri, o2, 1, MOUNTS_REPLACE | MOUNTS_SAVE, &err), 0);
	m2 = mounts_get(mt, "m", 1);
	CHECK(m2 != m1);
	CHECK(m2 && m2->replicas == 4);
	CHECK(m1 && m1->replicas == 2);
	CHECK_EQ_INT(__atomic_load_n(&m1->refs, __ATOMIC_RELAXED), 1);
	mount_release(&m1);
	mount_release(&m2);
	/* Different URI: replaced (and its identity moves with it). */
	CHECK_EQ_INT(mounts_add(mt, "m", uri2, o2, 1, MOUNTS_REPLACE | MOUNTS_SAVE, &err), 0);
	m1 = mounts_get(mt, "m", 1);
	CHECK(m1 && strcmp(m1->uri, uri2) == 0);
	uint64_t ident2 = m1 ? m1->ident : 0;
	mount_release(&m1);
	CHECK_EQ_INT(mounts_count(mt), 1);
	mounts_close(&mt);
	/* The replacement was saved. */
	mt = mounts_open(state, &err);
	m1 = mounts_get(mt, "m", 1);
	CHECK(m1 && strcmp(m1->uri, uri2) == 0 && m1->replicas == 4 &&
	    m1->ident == ident2);
	mount_release(&m1);
	mounts_close(&mt);
	teardown();
}

TEST(keep_broken)
{
	setup();
	char missing[200], muri[220];
	snprintf(missing, sizeof(missing), "%s/not-there", dir);
	snprintf(muri, sizeof(muri), "file://%s", missing);
	char *err = NULL;
	struct mount_table *mt = mounts_open(state, &err);
	/* Without the flag: refused, with the backend's reason. */
	CHECK_EQ_INT(mounts_add(mt, "nas", muri, NULL, 0, MOUNTS_SAVE, &err), -EINVAL);
	CHECK(err && has(err, "cannot open root directory"));
	free(err);
	err = NULL;
	CHECK_EQ_INT(mounts_count(mt), 0);
	/* With it: kept, broken, and says why. */
	CHECK_EQ_INT(mounts_add(mt, "nas", muri, NULL, 0,
	    MOUNTS_SAVE | MOUNTS_KEEP_BROKEN, &err), 0);
	CHECK(err == NULL);
	char *j = json_of(mt);
	CHECK(has(j, "\"name\":\"nas\""));
	CHECK(has(j, "\"state\":\"error\""));
	CHECK(has(j, "\"error\":\"file: cannot open root directory"));
	free(j);
	struct mount *m = mounts_get(mt, "nas", 3);
	CHECK(m != NULL);
	if (m) {
		CHECK(ufs_open_error(m->ufs) != NULL);
		struct ufs_stat st;
		CHECK(ufs_stat(m->ufs, "x", &st) < 0);
	}
	mount_release(&m);
	mounts_close(&mt);
	/* Restored from the state file although the directory is still
	 * missing. */
	mt = mounts_open(state, &err);
	CHECK(mt != NULL);
	CHECK_EQ_INT(mounts_count(mt), 1);
	j = json_of(mt);
	CHECK(has(j, "\"state\":\"error\""));
	free(j);
	/* Applied again while still missing (a cluster's mount record,
	 * REPLACE): still kept, still broken. */
	CHECK_EQ_INT(mounts_add(mt, "nas", muri, NULL, 0,
	    MOUNTS_SAVE | MOUNTS_KEEP_BROKEN | MOUNTS_REPLACE, &err), 0);
	CHECK_EQ_INT(mounts_count(mt), 1);
	j = json_of(mt);
	CHECK(has(j, "\"state\":\"error\""));
	free(j);
	/* Once the directory exists, the same definition applied again
	 * (as the worker does with the cluster's record when it joins)
	 * opens it: a broken mount is not "identical" to a working one. */
	if (mkdir(missing, 0755) < 0)
		CHECK(0);
	CHECK_EQ_INT(mounts_add(mt, "nas", muri, NULL, 0,
	    MOUNTS_SAVE | MOUNTS_KEEP_BROKEN | MOUNTS_REPLACE, &err), 0);
	j = json_of(mt);
	CHECK(has(j, "\"state\":\"ok\""));
	CHECK(!has(j, "\"error\""));
	free(j);
	m = mounts_get(mt, "nas", 3);
	CHECK(m && ufs_open_error(m->ufs) == NULL);
	mount_release(&m);
	mounts_close(&mt);
	teardown();
}

TEST(apply_json)
{
	setup();
	char *err = NULL, *name = NULL;
	struct mount_table *mt = mounts_open(NULL, &err);
	const char *bad[] = {
		"",
		"{",
		"[1,2]",
		"\"a string\"",
		"{\"name\":\"x\"}",                          /* no uri */
		"{\"uri\":\"file:///tmp\"}",                 /* no name */
		"{\"name\":1,\"uri\":\"file:///tmp\"}",      /* not a string */
		"{\"name\":\"x\",\"uri\":\"file:///tmp\",\"options\":[]}",
		"{\"name\":\"x\",\"uri\":\"file:///tmp\",\"options\":{\"a\":1}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		name = (char *)"unchanged";
		int r = mounts_apply_json(mt, bad[i], strlen(bad[i]), 0, &name, &err);
		CHECK_EQ_INT(r, -EINVAL);
		CHECK(err != NULL && err[0]);
		CHECK(name == NULL);
		if (r != -EINVAL)
			fprintf(stderr, "  accepted: %s\n", bad[i]);
		free(err);
		err = NULL;
	}
	CHECK_EQ_INT(mounts_count(mt), 0);
	/* A good one; a leading '/' in the name is allowed. */
	char js[512];
	snprintf(js, sizeof(js),
	    "{\"name\":\"/good\",\"uri\":\"%s\",\"options\":{\"replicas\":\"5\"}}", uri);
	CHECK_EQ_INT(mounts_apply_json(mt, js, strlen(js), 0, &name, &err), 0);
	CHECK(err == NULL);
	CHECK(name && strcmp(name, "good") == 0);
	free(name);
	struct mount *m = mounts_get(mt, "good", 4);
	CHECK(m && m->replicas == 5 && strcmp(m->uri, uri) == 0);
	mount_release(&m);
	/* What mounts_add refuses comes back with its message. */
	snprintf(js, sizeof(js),
	    "{\"name\":\"bad\",\"uri\":\"%s\",\"options\":{\"replicas\":\"0\"}}", uri);
	CHECK_EQ_INT(mounts_apply_json(mt, js, strlen(js), 0, &name, &err), -EINVAL);
	CHECK(err && strcmp(err, "option replicas: a number from 1 to 16") == 0);
	free(err);
	mounts_close(&mt);
	teardown();
}

int
main(void)
{
	RUN(add_get_remove_release);
	RUN(name_validation);
	RUN(secrets_redacted);
	RUN(replicas_option);
	RUN(persistence_round_trip);
	RUN(replace);
	RUN(keep_broken);
	RUN(apply_json);
	TAP_DONE();
}
