/*
 * Unit tests for the pin and TTL rules (policy.c): the pin limit counts a
 * pin inside another pin once, and again once the outer one goes; a
 * cluster's rule record (policy_record_after) applied on another worker
 * gives each worker its own share (and the mean share to one it does not
 * name), survives a restart through the state file, and a delete removes
 * it; records that are not their rule's are refused; a sync drops the
 * rules etcd no longer has.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "common/dbuf.h"
#include "worker/policy.h"

static char dir[64];
static char file1[128], file2[128];

static void
setup(void)
{
	strcpy(dir, "/tmp/ferry-policy-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(file1, sizeof(file1), "%s/a.json", dir);
	snprintf(file2, sizeof(file2), "%s/b.json", dir);
}

static void
teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		abort();
}

static struct policy *
open_policy(const char *path)
{
	char *err = NULL;
	struct policy *p = policy_open(path, &err);
	if (!p) {
		fprintf(stderr, "policy_open: %s\n", err ? err : "?");
		free(err);
	}
	return p;
}

static struct mount mnt = {.name = "a", .ident = 0x1234};

TEST(nested_pins_count_once)
{
	setup();
	struct policy *p = open_policy(file1);
	CHECK(p != NULL);
	if (!p)
		return;
	CHECK_EQ_INT(policy_pin(p, &mnt, "ds", 1, 500), 0);
	CHECK_EQ_INT(policy_pin(p, &mnt, "ds/in", 1, 300), 0);
	CHECK(policy_pinned_total(p) == 500);
	/* A pin under ds adds nothing; one above ds holds ds's data too. */
	CHECK(policy_pinned_after(p, NULL, mnt.ident, "ds/in/deeper", 50) == 500);
	CHECK(policy_pinned_after(p, NULL, mnt.ident, "", 2000) == 2000);
	CHECK(policy_pinned_after(p, NULL, mnt.ident, "z", 300) == 800);
	/* "dsx" is not under "ds". */
	CHECK(policy_pinned_after(p, NULL, mnt.ident, "dsx", 10) == 510);
	/* Another mount's path of the same name is another pin. */
	CHECK(policy_pinned_after(p, NULL, 0x999, "ds/in", 70) == 570);
	CHECK_EQ_INT(policy_pin(p, &mnt, "ds", 0, 0), 0);
	CHECK(policy_pinned_total(p) == 300);
	CHECK(policy_pinned_after(p, NULL, mnt.ident, "z", 300) == 600);
	policy_close(&p);
	teardown();
}

TEST(cluster_record_shares_and_restart)
{
	setup();
	struct policy *a = open_policy(file1), *b = open_policy(file2);
	CHECK(a && b);
	if (!a || !b)
		return;
	policy_set_self(a, "wa");
	policy_set_self(b, "wb");
	struct policy_share_in sh[] = {{"wa", 600}, {"wb", 300}};
	struct dbuf rec;
	dbuf_init(&rec, 1 << 16);
	char name[17];
	CHECK_EQ_INT(policy_record_after(a, &mnt, "ds", 1, -1, 900, sh, 2, &rec, name), 0);
	CHECK(rec.len > 0);
	char want[17];
	policy_record_name(mnt.ident, "ds", want);
	CHECK_EQ_STR(name, want);
	/* Nothing changed until it is applied. */
	CHECK(policy_pinned_total(a) == 0);
	CHECK_EQ_INT(policy_apply_record(a, name, rec.p, rec.len), 0);
	CHECK_EQ_INT(policy_apply_record(b, name, rec.p, rec.len), 0);
	CHECK(policy_pinned_total(a) == 600);
	CHECK(policy_pinned_total(b) == 300);
	CHECK(policy_pinned_share(a, "wb") == 300);
	CHECK(policy_pinned_share(a, "wc") == 450); /* not named: the mean */
	CHECK(policy_is_pinned(b, mnt.ident, "ds/x"));
	/* A TTL added to it keeps the pin and its shares. */
	dbuf_reset(&rec);
	CHECK_EQ_INT(policy_record_after(b, &mnt, "ds", -1, 3600, 0, NULL, 0, &rec, name), 0);
	CHECK_EQ_INT(policy_apply_record(b, name, rec.p, rec.len), 0);
	CHECK(policy_pinned_total(b) == 300);
	policy_close(&b);
	/* Restarted: the rule, its TTL and its shares are in the file. */
	b = open_policy(file2);
	CHECK(b != NULL);
	if (b) {
		policy_set_self(b, "wb");
		CHECK(policy_pinned_share(b, "wa") == 600);
		CHECK(policy_pinned_total(b) == 300);
		struct dbuf js;
		dbuf_init(&js, 1 << 16);
		policy_json(b, &js);
		dbuf_add(&js, "", 1);
		CHECK(strstr(js.p, "\"ttl\":3600") != NULL);
		dbuf_free(&js);
		/* Deleted in etcd: gone here. */
		CHECK_EQ_INT(policy_apply_record(b, name, NULL, 0), 0);
		CHECK(policy_pinned_total(b) == 0);
		CHECK(!policy_is_pinned(b, mnt.ident, "ds/x"));
	}
	/* Unpinning what is not pinned, clearing a TTL there is not. */
	dbuf_reset(&rec);
	CHECK_EQ_INT(policy_record_after(b, &mnt, "ds", 0, -1, 0, NULL, 0, &rec, name), -ENOENT);
	CHECK_EQ_INT(policy_record_after(a, &mnt, "ds", -1, 0, 0, NULL, 0, &rec, name), -ENOENT);
	/* Unpinning the last of a rule: no record left (delete it). */
	CHECK_EQ_INT(policy_record_after(a, &mnt, "ds", 0, -1, 0, NULL, 0, &rec, name), 0);
	CHECK(rec.len == 0);
	dbuf_free(&rec);
	policy_close(&a);
	policy_close(&b);
	teardown();
}

TEST(bad_records_are_refused)
{
	setup();
	struct policy *p = open_policy(file1);
	CHECK(p != NULL);
	if (!p)
		return;
	char name[17];
	policy_record_name(mnt.ident, "ds", name);
	const char *ok = "{\"mount\":\"a\",\"ident\":\"0000000000001234\",\"path\":\"ds\","
	    "\"pin\":true,\"ttl\":0,\"bytes\":5}";
	const char *bad[] = {
		"", "{", "[]", "{\"mount\":\"a\"}",
		/* ttl out of range, negative bytes, shares not a list of workers */
		"{\"mount\":\"a\",\"ident\":\"1234\",\"path\":\"ds\",\"pin\":true,\"ttl\":-1}",
		"{\"mount\":\"a\",\"ident\":\"1234\",\"path\":\"ds\",\"pin\":true,\"ttl\":0,\"bytes\":-5}",
		"{\"mount\":\"a\",\"ident\":\"1234\",\"path\":\"ds\",\"pin\":true,\"ttl\":0,"
		"\"shares\":[{\"worker\":7,\"bytes\":1}]}",
		/* neither a pin nor a TTL */
		"{\"mount\":\"a\",\"ident\":\"1234\",\"path\":\"ds\",\"pin\":false,\"ttl\":0}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ_INT(policy_apply_record(p, name, bad[i], strlen(bad[i])), -EINVAL);
	/* A good rule under a name that is not its own. */
	CHECK_EQ_INT(policy_apply_record(p, "0123456789abcdef", ok, strlen(ok)), -EINVAL);
	CHECK(policy_pinned_total(p) == 0);
	CHECK_EQ_INT(policy_apply_record(p, name, ok, strlen(ok)), 0);
	CHECK(policy_pinned_total(p) == 5);
	policy_close(&p);
	teardown();
}

TEST(sync_drops_what_etcd_no_longer_has)
{
	setup();
	struct policy *p = open_policy(file1);
	CHECK(p != NULL);
	if (!p)
		return;
	CHECK_EQ_INT(policy_pin(p, &mnt, "keep", 1, 10), 0);
	CHECK_EQ_INT(policy_pin(p, &mnt, "gone", 1, 20), 0);
	struct dbuf rec;
	dbuf_init(&rec, 1 << 16);
	char name[17];
	/* etcd holds "keep" alone. */
	policy_sync_begin(p);
	CHECK_EQ_INT(policy_record_after(p, &mnt, "keep", 1, -1, 10, NULL, 0, &rec, name), 0);
	CHECK_EQ_INT(policy_apply_record(p, name, rec.p, rec.len), 0);
	policy_sync_end(p);
	CHECK(policy_is_pinned(p, mnt.ident, "keep/x"));
	CHECK(!policy_is_pinned(p, mnt.ident, "gone/x"));
	policy_close(&p);
	p = open_policy(file1);
	CHECK(p && !policy_is_pinned(p, mnt.ident, "gone/x"));
	CHECK(p && policy_is_pinned(p, mnt.ident, "keep/x"));
	policy_close(&p);
	dbuf_free(&rec);
	teardown();
}

int
main(void)
{
	RUN(nested_pins_count_once);
	RUN(cluster_record_shares_and_restart);
	RUN(bad_records_are_refused);
	RUN(sync_drops_what_etcd_no_longer_has);
	TAP_DONE();
}
