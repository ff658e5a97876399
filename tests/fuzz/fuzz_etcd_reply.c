/*
 * fuzz_etcd_reply.c: libFuzzer harness for the parsers of etcd's unary
 * replies (src/cluster/etcd.c: etcd_parse_reply and the per-call
 * etcd_parse_*) and of what the cluster reads back from etcd
 * (src/cluster/cluster.c: keys and member records).
 *
 * Input: byte 0 picks the parser (bits 0-2) and, for range replies, the kv
 * at which the callback answers non-zero (bits 3-7, 0 never); the rest is
 * the body, copied into an exact-size heap block so ASan catches a read
 * past it.
 *   0 range reply       1 lease grant     2 lease keepalive   3 txn
 *   4 deleterange       5 any reply with the HTTP status picked by the
 *   next byte           6 "<key>\0<value>" as the watch/list paths see it
 *   7 a member record for worker 0123456789abcdef0123456789abcdef
 * Selectors 0-4 go through etcd_parse_reply with status 200 first, as the
 * client does.
 *
 * Invariants: results are the errnos etcd.h documents; a range hands out
 * only keys under the prefix asked for, and its next-page key is the last
 * key plus a NUL (so past where the page started); an accepted lease has
 * a non-zero id; an accepted member has the key's id, valid addresses,
 * capacity >= 0, and survives a round trip through the writer
 * (cluster_member_json) unchanged; a rejected one
 * is left all zero; key names point inside the key.
 */
// FUZZ_SOURCES: src/common/util.c src/common/dbuf.c src/common/json.c src/common/log.c src/common/curl_errno.c src/common/curl_pool.c src/cluster/etcd.c src/cluster/cluster.c
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster_parse.h"
#include "cluster/etcd_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PREFIX "/ferry/c/"
#define STOP_VALUE 4242
#define TEST_ID "0123456789abcdef0123456789abcdef"

static const long statuses[8] = {200, 400, 404, 500, 503, 0, 204, 301};

struct kvs {
	int n, stop_at;
	size_t last_klen;
	char last_key[65536];
};

static int
on_kv(void *arg, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct kvs *k = arg;
	if (klen < strlen(PREFIX) || memcmp(key, PREFIX, strlen(PREFIX)) != 0)
		abort();
	if (klen > sizeof(k->last_key) || (vlen && !val))
		abort();
	memcpy(k->last_key, key, klen); /* reads every key byte */
	k->last_klen = klen;
	volatile unsigned char sink = 0;
	for (size_t i = 0; i < vlen; i++)
		sink ^= (unsigned char)val[i];
	(void)sink;
	k->n++;
	return k->stop_at && k->n == k->stop_at ? STOP_VALUE : 0;
}

/* Results etcd_parse_reply may give. */
static int
reply_result_ok(int r)
{
	switch (r) {
	case 0:
	case -EPROTO:
	case -E2BIG:
	case -EINVAL:
	case -ETIMEDOUT:
	case -ENOENT:
	case -EEXIST:
	case -EACCES:
	case -ECANCELED:
	case -EAGAIN:
	case -EIO:
		return 1;
	default:
		return 0;
	}
}

static int
addr_ok(const char *s, size_t cap, int empty_ok)
{
	size_t n = strnlen(s, cap);
	if (n == cap || (n == 0 && !empty_ok))
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f ||
		    s[i] == '"' || s[i] == '\\')
			return 0;
	return 1;
}

static void
check_member(const char *json, size_t n, const char *kid, size_t kidlen)
{
	struct member m, m2;
	memset(&m, 0xa5, sizeof(m)); /* the parser must clear it */
	int r = cluster_member_parse(json, n, kid, kidlen, &m);
	if (r != 0) {
		static const struct member zero;
		if (r != -1 || memcmp(&m, &zero, sizeof(m)) != 0)
			abort();
		return;
	}
	if (kidlen != CLUSTER_ID_MAX || strlen(m.id) != kidlen ||
	    memcmp(m.id, kid, kidlen) != 0)
		abort();
	for (size_t i = 0; i < CLUSTER_ID_MAX; i++)
		if (!((m.id[i] >= '0' && m.id[i] <= '9') ||
		    (m.id[i] >= 'a' && m.id[i] <= 'f')))
			abort();
	if (!addr_ok(m.ctl, sizeof(m.ctl), 0) || !addr_ok(m.s3, sizeof(m.s3), 1) ||
	    m.capacity < 0)
		abort();
	/* What we would write for it reads back as the same member. */
	struct dbuf b;
	dbuf_init(&b, CLUSTER_MEMBER_JSON_MAX);
	if (cluster_member_json(&m, &b) != 0)
		abort();
	if (cluster_member_parse(b.p, b.len, kid, kidlen, &m2) != 0 ||
	    memcmp(&m, &m2, sizeof(m)) != 0)
		abort();
	dbuf_free(&b);
}

static void
check_key(const char *s, size_t n)
{
	const char *nul = memchr(s, 0, n);
	size_t klen = nul ? (size_t)(nul - s) : n;
	const char *val = nul ? nul + 1 : s + n;
	size_t vlen = nul ? n - klen - 1 : 0;
	const char *name = NULL;
	size_t nlen = 0;
	int kind = cluster_key_kind(PREFIX, strlen(PREFIX), s, klen, &name,
	    &nlen);
	switch (kind) {
	case CLUSTER_KEY_OTHER:
		return;
	case CLUSTER_KEY_WORKER:
	case CLUSTER_KEY_MOUNT:
	case CLUSTER_KEY_RULE:
	case CLUSTER_KEY_LOAD:
		break;
	default:
		abort();
	}
	if (!name || nlen == 0 || name < s + strlen(PREFIX) ||
	    name + nlen != s + klen)
		abort();
	if (kind == CLUSTER_KEY_WORKER) {
		check_member(val, vlen, name, nlen);
	} else if (cluster_name_valid(name, nlen, CLUSTER_MOUNT_NAME_MAX)) {
		if (nlen > CLUSTER_MOUNT_NAME_MAX)
			abort();
		for (size_t i = 0; i < nlen; i++)
			if (!name[i] || strchr("/\\ ", name[i]))
				abort();
	}
}

static void
check_reply(int sel, int stop_at, const char *s, size_t n)
{
	long status = 200;
	if (sel == 5) {
		if (n < 1)
			return;
		status = statuses[(unsigned char)s[0] & 7];
		s++;
		n--;
	}
	struct json_doc d;
	int r = etcd_parse_reply(s, n, status, &d);
	if (!reply_result_ok(r))
		abort();
	if (r != 0)
		return; /* nothing to free */
	if (d.ntoks < 1 || d.toks[0].type != JSON_OBJECT ||
	    status < 200 || status > 299 || etcd_reply_error(&d, 0) != 0)
		abort();
	switch (sel) {
	case 0: {
		static struct kvs k;
		k.n = 0;
		k.stop_at = stop_at;
		k.last_klen = 0;
		int64_t rev = -1;
		int more = -1;
		/* A first page: it starts at the prefix. */
		size_t flen = strlen(PREFIX);
		char *from = strdup(PREFIX);
		if (!from)
			abort();
		r = etcd_parse_range(&d, PREFIX, strlen(PREFIX), on_kv, &k,
		    &rev, &more, &from, &flen);
		if (r != 0 && r != -EPROTO && r != STOP_VALUE)
			abort();
		if (r == STOP_VALUE && k.n != stop_at)
			abort();
		if (r == 0 && rev <= 0)
			abort();
		if (more != 0 && more != 1)
			abort();
		/* The next page starts just after the last key, which is
		 * after the prefix: the listing always moves forward. */
		if (r == 0 && more && (k.n == 0 || flen != k.last_klen + 1 ||
		    memcmp(from, k.last_key, k.last_klen) != 0 ||
		    from[k.last_klen] != 0 || flen <= strlen(PREFIX)))
			abort();
		free(from);
		break;
	}
	case 1: {
		int64_t id = -1;
		r = etcd_parse_lease_grant(&d, &id);
		if ((r == 0 && id == 0) || (r != 0 && (r != -EPROTO || id != 0)))
			abort();
		break;
	}
	case 2:
		r = etcd_parse_keepalive(&d);
		if (r != 0 && r != -ENOENT && r != -EPROTO)
			abort();
		break;
	case 3:
		r = etcd_parse_txn(&d);
		if (r != 0 && r != -EEXIST)
			abort();
		break;
	case 4:
		r = etcd_parse_delete(&d);
		if (r != 0 && r != -ENOENT && r != -EPROTO)
			abort();
		break;
	default:
		break;
	}
	json_free(&d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int sel = data[0] & 7;
	int stop_at = data[0] >> 3;
	size_t n = size - 1;
	char *s = malloc(n ? n : 1);
	if (!s)
		abort();
	if (n)
		memcpy(s, data + 1, n);
	if (sel == 6)
		check_key(s, n);
	else if (sel == 7)
		check_member(s, n, TEST_ID, strlen(TEST_ID));
	else
		check_reply(sel, stop_at, s, n);
	free(s);
	return 0;
}
