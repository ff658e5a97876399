/* Tests for the etcd client (src/cluster/etcd.c) against a real etcd. */
#include <pthread.h>

#include "tap.h"
#include "etcd_harness.h"
#include "cluster/etcd_parse.h"

static struct etcd_proc ep;
static struct etcd *E;

static int
collect_kv(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 4096 - n, "%.*s=%.*s;", (int)kl, k, (int)vl, v);
	return 0;
}

static int
count_kv(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	(*(int *)arg)++;
	return 0;
}

static int
stop_at_first(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	(*(int *)arg)++;
	return 7;
}

struct bin_st {
	int n, same;
};

static int
bin_cmp(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	struct bin_st *st = arg;
	st->n++;
	st->same = vl == 256;
	for (size_t i = 0; st->same && i < vl; i++)
		st->same = (unsigned char)v[i] == i;
	return 0;
}

TEST(bad_endpoints)
{
	const char *bad[] = {"", "http://a b:1", "h:1,,h:2", "http://",
	    "h:1,\"x\":2", NULL};
	for (int i = 0; bad[i]; i++) {
		char *err = NULL;
		struct etcd *e = etcd_open(bad[i], &err);
		CHECK(e == NULL);
		CHECK(err != NULL);
		free(err);
		etcd_close(&e);
	}
	char *err = NULL;
	struct etcd *e = etcd_open(" 127.0.0.1:1 , http://[::1]:2/,h", &err);
	CHECK(e != NULL);
	CHECK(err == NULL);
	etcd_close(&e);
	CHECK(e == NULL);
}

TEST(unreachable_fails_fast)
{
	/* Nobody listens: refused at once. */
	char url[64];
	snprintf(url, sizeof(url), "127.0.0.1:%d", free_port());
	struct etcd *e = etcd_open(url, NULL);
	int64_t t0 = h_now_ms();
	int r = etcd_put(e, "/x", "v", 1, 0);
	CHECK_EQ_INT(r, -ECONNREFUSED);
	int64_t lease = 0;
	CHECK(etcd_lease_grant(e, 5, &lease) < 0);
	CHECK(h_now_ms() - t0 < 2000);
	etcd_close(&e);

	/* Something accepts connections but never answers: the call's
	 * timeout. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(fd, 8) == 0);
	getsockname(fd, (struct sockaddr *)&a, &al);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
	e = etcd_open(url, NULL);
	etcd_set_timeout(e, 500);
	t0 = h_now_ms();
	r = etcd_delete(e, "/x");
	CHECK_EQ_INT(r, -ETIMEDOUT);
	CHECK(h_now_ms() - t0 < 2000);
	etcd_close(&e);
	close(fd);
}

TEST(failover)
{
	char url[160];
	snprintf(url, sizeof(url), "127.0.0.1:%d,%s", free_port(), ep.url);
	struct etcd *e = etcd_open(url, NULL);
	int64_t t0 = h_now_ms();
	CHECK_EQ_INT(etcd_put(e, "/t/failover", "1", 1, 0), 0);
	CHECK_EQ_INT(etcd_put(e, "/t/failover", "2", 1, 0), 0);
	CHECK(h_now_ms() - t0 < 2000);
	CHECK_EQ_INT(etcd_delete(e, "/t/failover"), 0);
	etcd_close(&e);
}

TEST(put_range_delete_create)
{
	CHECK_EQ_INT(etcd_put(E, "/t/kv/b", "2", 1, 0), 0);
	CHECK_EQ_INT(etcd_put(E, "/t/kv/a", "1", 1, 0), 0);
	CHECK_EQ_INT(etcd_put(E, "/t/kv/c", "", 0, 0), 0); /* empty value */
	CHECK_EQ_INT(etcd_put(E, "/t/kw", "outside", 7, 0), 0);
	CHECK_EQ_INT(etcd_put(E, "/t/kv", "outside", 7, 0), 0);
	char out[4096] = "";
	int64_t rev = 0;
	CHECK_EQ_INT(etcd_range_prefix(E, "/t/kv/", collect_kv, out, &rev), 0);
	CHECK_EQ_STR(out, "/t/kv/a=1;/t/kv/b=2;/t/kv/c=;");
	CHECK(rev > 0);

	/* Overwrite; a value with NUL bytes and every byte value. */
	unsigned char bin[256];
	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	CHECK_EQ_INT(etcd_put(E, "/t/bin", bin, sizeof(bin), 0), 0);
	struct bin_st st = {0, 0};
	CHECK_EQ_INT(etcd_range_prefix(E, "/t/bin", bin_cmp, &st, NULL), 0);
	CHECK_EQ_INT(st.n, 1);
	CHECK_EQ_INT(st.same, 1);

	/* A callback's non-zero stops the listing and is returned. */
	int calls = 0;
	CHECK_EQ_INT(etcd_range_prefix(E, "/t/kv/", stop_at_first, &calls,
	    NULL), 7);
	CHECK_EQ_INT(calls, 1);

	CHECK_EQ_INT(etcd_delete(E, "/t/kv/a"), 0);
	CHECK_EQ_INT(etcd_delete(E, "/t/kv/a"), -ENOENT);
	out[0] = 0;
	int64_t rev2 = 0;
	CHECK_EQ_INT(etcd_range_prefix(E, "/t/kv/", collect_kv, out, &rev2), 0);
	CHECK_EQ_STR(out, "/t/kv/b=2;/t/kv/c=;");
	CHECK(rev2 > rev);

	CHECK_EQ_INT(etcd_create(E, "/t/kv/new", "n1", 2, 0), 0);
	CHECK_EQ_INT(etcd_create(E, "/t/kv/new", "n2", 2, 0), -EEXIST);
	out[0] = 0;
	CHECK_EQ_INT(etcd_range_prefix(E, "/t/kv/new", collect_kv, out, NULL),
	    0);
	CHECK_EQ_STR(out, "/t/kv/new=n1;");

	/* Nothing under a prefix: fine, no calls. */
	calls = 0;
	CHECK_EQ_INT(etcd_range_prefix(E, "/t/none/", count_kv, &calls, NULL),
	    0);
	CHECK_EQ_INT(calls, 0);

	/* Bad arguments. */
	CHECK_EQ_INT(etcd_put(E, "", "v", 1, 0), -EINVAL);
	CHECK_EQ_INT(etcd_put(E, NULL, "v", 1, 0), -EINVAL);
	CHECK_EQ_INT(etcd_delete(E, ""), -EINVAL);
	CHECK_EQ_INT(etcd_lease_keepalive(E, 0), -EINVAL);
}

TEST(range_pages)
{
	/* More keys than one page (1000): all come, in order. */
	char key[64];
	for (int i = 0; i < 1203; i++) {
		snprintf(key, sizeof(key), "/t/many/%05d", i);
		if (etcd_put(E, key, "x", 1, 0) != 0) {
			CHECK(0);
			return;
		}
	}
	int calls = 0;
	CHECK_EQ_INT(etcd_range_prefix(E, "/t/many/", count_kv, &calls, NULL),
	    0);
	CHECK_EQ_INT(calls, 1203);
}

static int
key_exists(const char *key)
{
	int calls = 0;
	if (etcd_range_prefix(E, key, count_kv, &calls, NULL) != 0)
		return -1;
	return calls > 0;
}

TEST(leases)
{
	int64_t lease = 0;
	CHECK_EQ_INT(etcd_lease_grant(E, 1, &lease), 0);
	CHECK(lease != 0);
	CHECK_EQ_INT(etcd_put(E, "/t/lease/k", "v", 1, lease), 0);
	/* Kept alive for longer than its TTL, the key stays. */
	int64_t t0 = h_now_ms();
	int ka_fail = 0;
	while (h_now_ms() - t0 < 2500) {
		if (etcd_lease_keepalive(E, lease) != 0)
			ka_fail++;
		h_sleep_ms(250);
	}
	CHECK_EQ_INT(ka_fail, 0);
	CHECK_EQ_INT(key_exists("/t/lease/k"), 1);
	/* Left alone, it expires and takes the key with it. */
	t0 = h_now_ms();
	CHECK(WAIT_UNTIL(key_exists("/t/lease/k") == 0, 5000));
	CHECK(h_now_ms() - t0 < 4000);
	CHECK_EQ_INT(etcd_lease_keepalive(E, lease), -ENOENT);
	CHECK_EQ_INT(etcd_lease_revoke(E, lease), -ENOENT);
	CHECK_EQ_INT(etcd_put(E, "/t/lease/k", "v", 1, lease), -ENOENT);
	CHECK_EQ_INT(etcd_create(E, "/t/lease/k", "v", 1, lease), -ENOENT);

	/* Revoked: the key goes at once. */
	CHECK_EQ_INT(etcd_lease_grant(E, 30, &lease), 0);
	CHECK_EQ_INT(etcd_create(E, "/t/lease/k2", "v", 1, lease), 0);
	CHECK_EQ_INT(key_exists("/t/lease/k2"), 1);
	CHECK_EQ_INT(etcd_lease_revoke(E, lease), 0);
	CHECK_EQ_INT(key_exists("/t/lease/k2"), 0);
}

/* Watch tests: a thread runs the watch, recording events. */
struct wrec {
	pthread_mutex_t mu;
	char log[8192];
	int n;
	int stop_after; /* fn returns 5 after this many, 0: never */
	volatile int stop;
	int64_t start, last;
	const char *prefix;
	int r;
	int64_t ended_ms;
	size_t big_len;
	int big_ok;
};

static int
wrec_fn(void *arg, const struct etcd_event *ev)
{
	struct wrec *w = arg;
	pthread_mutex_lock(&w->mu);
	size_t n = strlen(w->log);
	if (ev->vlen > 1000) {
		w->big_len = ev->vlen;
		w->big_ok = 1;
		for (size_t i = 0; i < ev->vlen; i++)
			if (ev->val[i] != (char)('a' + i % 26))
				w->big_ok = 0;
		snprintf(w->log + n, sizeof(w->log) - n, "%s %.*s=<big>;",
		    ev->type == ETCD_EV_DELETE ? "D" : "P", (int)ev->klen,
		    ev->key);
	} else {
		snprintf(w->log + n, sizeof(w->log) - n, "%s %.*s=%.*s;",
		    ev->type == ETCD_EV_DELETE ? "D" : "P", (int)ev->klen,
		    ev->key, (int)ev->vlen, ev->val);
	}
	w->n++;
	int r = w->stop_after && w->n >= w->stop_after ? 5 : 0;
	pthread_mutex_unlock(&w->mu);
	return r;
}

static void *
wrec_thread(void *arg)
{
	struct wrec *w = arg;
	w->r = etcd_watch_prefix(E, w->prefix, w->start, wrec_fn, w, &w->stop,
	    &w->last);
	w->ended_ms = h_now_ms();
	return NULL;
}

static int
wrec_n(struct wrec *w)
{
	pthread_mutex_lock(&w->mu);
	int n = w->n;
	pthread_mutex_unlock(&w->mu);
	return n;
}

TEST(watch)
{
	int64_t rev = 0;
	int calls = 0;
	CHECK_EQ_INT(etcd_range_prefix(E, "/t/w/", count_kv, &calls, &rev), 0);
	struct wrec w = {.mu = PTHREAD_MUTEX_INITIALIZER, .start = rev + 1,
	    .prefix = "/t/w/", .r = 99};
	pthread_t th;
	pthread_create(&th, NULL, wrec_thread, &w);
	/* start_revision: events after rev come whenever the stream is up. */
	CHECK_EQ_INT(etcd_put(E, "/t/w/x", "1", 1, 0), 0);
	CHECK_EQ_INT(etcd_put(E, "/t/other", "no", 2, 0), 0);
	CHECK_EQ_INT(etcd_put(E, "/t/w/y", "2", 1, 0), 0);
	CHECK_EQ_INT(etcd_delete(E, "/t/w/x"), 0);
	CHECK_EQ_INT(etcd_put(E, "/t/w/y", "3", 1, 0), 0);
	/* A value big enough to come in many pieces of the stream. */
	size_t bn = 300000;
	char *big = malloc(bn);
	for (size_t i = 0; i < bn; i++)
		big[i] = (char)('a' + i % 26);
	CHECK_EQ_INT(etcd_put(E, "/t/w/big", big, bn, 0), 0);
	free(big);
	CHECK(WAIT_UNTIL(wrec_n(&w) >= 5, 5000));
	h_sleep_ms(100); /* nothing more should come */
	pthread_mutex_lock(&w.mu);
	CHECK_EQ_STR(w.log, "P /t/w/x=1;P /t/w/y=2;D /t/w/x=;P /t/w/y=3;"
	    "P /t/w/big=<big>;");
	CHECK_EQ_INT(w.big_len, 300000);
	CHECK_EQ_INT(w.big_ok, 1);
	pthread_mutex_unlock(&w.mu);
	CHECK_EQ_INT(w.n, 5);
	CHECK(w.last > rev);
	int64_t last = w.last;

	/* The stop flag ends it within about a second, returning 0. */
	int64_t t0 = h_now_ms();
	w.stop = 1;
	pthread_join(th, NULL);
	CHECK_EQ_INT(w.r, 0);
	CHECK(w.ended_ms - t0 < 1000);

	/* From an old revision: the same events again; the callback's
	 * non-zero ends the watch and is returned. */
	struct wrec w2 = {.mu = PTHREAD_MUTEX_INITIALIZER, .start = rev + 1,
	    .prefix = "/t/w/", .stop_after = 3, .r = 99};
	pthread_create(&th, NULL, wrec_thread, &w2);
	pthread_join(th, NULL);
	CHECK_EQ_INT(w2.r, 5);
	CHECK_EQ_STR(w2.log, "P /t/w/x=1;P /t/w/y=2;D /t/w/x=;");
	CHECK(w2.last > rev && w2.last < last);

	/* Compacted past the start: -ECANCELED. */
	CHECK_EQ_INT(compact_now(ep.url), 0);
	struct wrec w3 = {.mu = PTHREAD_MUTEX_INITIALIZER, .start = rev + 1,
	    .prefix = "/t/w/", .r = 99};
	pthread_create(&th, NULL, wrec_thread, &w3);
	int64_t t1 = h_now_ms();
	while (w3.r == 99 && h_now_ms() - t1 < 3000)
		h_sleep_ms(20);
	if (w3.r == 99)
		w3.stop = 1;
	pthread_join(th, NULL);
	CHECK_EQ_INT(w3.r, -ECANCELED);
	CHECK_EQ_INT(w3.n, 0);
}

TEST(watch_fails_when_etcd_unreachable)
{
	char url[64];
	snprintf(url, sizeof(url), "127.0.0.1:%d", free_port());
	struct etcd *e = etcd_open(url, NULL);
	struct wrec w = {.mu = PTHREAD_MUTEX_INITIALIZER};
	int64_t last = 0, t0 = h_now_ms();
	int r = etcd_watch_prefix(e, "/t/", 1, wrec_fn, &w, &w.stop, &last);
	CHECK_EQ_INT(r, -ECONNREFUSED);
	CHECK(h_now_ms() - t0 < 2000);
	etcd_close(&e);
}

TEST(watch_ends_when_etcd_dies)
{
	/* A second etcd of our own, killed under a live watch. */
	static struct etcd_proc p2;
	if (etcd_proc_start(&p2) != 0) {
		CHECK(0);
		return;
	}
	struct etcd *e = etcd_open(p2.url, NULL);
	struct etcd *saved = E;
	E = e;
	int64_t rev = 0;
	int calls = 0;
	CHECK_EQ_INT(etcd_range_prefix(e, "/d/", count_kv, &calls, &rev), 0);
	/* From rev + 1, not "from now": the put below may come before the
	 * stream is set up. */
	struct wrec w = {.mu = PTHREAD_MUTEX_INITIALIZER, .start = rev + 1,
	    .prefix = "/d/", .r = 99};
	pthread_t th;
	pthread_create(&th, NULL, wrec_thread, &w);
	CHECK_EQ_INT(etcd_put(e, "/d/a", "1", 1, 0), 0);
	CHECK(WAIT_UNTIL(wrec_n(&w) >= 1, 3000));
	int64_t t0 = h_now_ms();
	etcd_proc_stop(&p2, SIGKILL);
	int64_t t1 = h_now_ms();
	while (w.r == 99 && h_now_ms() - t1 < 3000)
		h_sleep_ms(20);
	if (w.r == 99)
		w.stop = 1;
	pthread_join(th, NULL);
	CHECK(w.r < 0);
	CHECK(w.r != 99);
	CHECK(w.ended_ms - t0 < 2000);
	E = saved;
	etcd_close(&e);
}

/* ---- Regressions found by tests/fuzz/fuzz_etcd_*.c (no network) ---- */

struct evlog {
	char s[512];
};

static int
log_event(void *arg, const struct etcd_event *ev)
{
	struct evlog *l = arg;
	size_t n = strlen(l->s);
	snprintf(l->s + n, sizeof(l->s) - n, "%s %.*s@%lld;",
	    ev->type == ETCD_EV_DELETE ? "DEL" : "PUT", (int)ev->klen, ev->key,
	    (long long)ev->mod_revision);
	return 0;
}

static int
feed_stream(const char *stream, struct evlog *l, int64_t *last)
{
	struct etcd_watch_parser w;
	memset(l, 0, sizeof(*l));
	*last = 0;
	etcd_watch_parser_init(&w, log_event, l, NULL, last);
	etcd_watch_feed(&w, stream, strlen(stream));
	int r = w.done ? w.r : 1;
	etcd_watch_parser_free(&w);
	return r;
}

TEST(parse_event_type_by_number)
{
	/* proto3 JSON may give an enum as its number: 1 is DELETE.  It was
	 * taken for a PUT, so a deleted key stayed alive. */
	struct evlog l;
	int64_t last;
	int r = feed_stream("{\"result\":{\"events\":["
	    "{\"type\":1,\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"3\"}},"
	    "{\"type\":0,\"kv\":{\"key\":\"Yg==\",\"value\":\"eA==\","
	    "\"mod_revision\":\"4\"}},"
	    "{\"type\":null,\"kv\":{\"key\":\"Yw==\",\"mod_revision\":\"5\"}},"
	    "{\"type\":\"DELETE\",\"kv\":{\"key\":\"ZA==\",\"mod_revision\":"
	    "\"6\"}}]}}", &l, &last);
	CHECK_EQ_INT(r, 1); /* still streaming */
	CHECK_EQ_STR(l.s, "DEL a@3;PUT b@4;PUT c@5;DEL d@6;");
	CHECK(last == 6);
	/* A type we cannot read is an error, not a PUT. */
	const char *bad[] = {"2", "true", "\"DELETE\\u0000\"", "\"delete\"",
	    "[]", NULL};
	for (int i = 0; bad[i]; i++) {
		char s[256];
		snprintf(s, sizeof(s), "{\"result\":{\"events\":[{\"type\":%s,"
		    "\"kv\":{\"key\":\"YQ==\",\"mod_revision\":\"3\"}}]}}",
		    bad[i]);
		CHECK_EQ_INT(feed_stream(s, &l, &last), -EPROTO);
		CHECK_EQ_STR(l.s, "");
	}
}

static int
count_kv2(void *arg, const char *k, size_t kl, const char *v, size_t vl)
{
	(*(int *)arg)++;
	return 0;
}

TEST(parse_range_moves_forward)
{
	/* A page with "more" whose keys sort before where it was asked from:
	 * the next page started at the same key again, so an etcd (or a
	 * proxy) repeating a page kept etcd_range_prefix going forever. */
	const char *page = "{\"header\":{\"revision\":\"7\"},\"more\":true,"
	    "\"kvs\":[{\"key\":\"L3AvYQ==\",\"value\":\"eA==\"}]}"; /* /p/a */
	struct json_doc d;
	CHECK_EQ_INT(etcd_parse_reply(page, strlen(page), 200, &d), 0);
	char *from = strdup("/p/");
	size_t flen = 3;
	int64_t rev = 0;
	int more = 0, n = 0;
	CHECK_EQ_INT(etcd_parse_range(&d, "/p/", 3, count_kv2, &n, &rev, &more,
	    &from, &flen), 0);
	CHECK(rev == 7 && more == 1 && n == 1);
	CHECK(flen == 5 && memcmp(from, "/p/a", 5) == 0); /* "/p/a\0" */
	/* The same page again, asked from "/p/a\0": refused. */
	n = 0;
	CHECK_EQ_INT(etcd_parse_range(&d, "/p/", 3, count_kv2, &n, &rev, &more,
	    &from, &flen), -EPROTO);
	CHECK_EQ_INT(n, 0);
	CHECK(flen == 5);
	free(from);
	json_free(&d);
}

int
main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (etcd_proc_start(&ep) != 0) {
		fprintf(stderr, "FAIL: cannot start etcd\n");
		curl_global_cleanup();
		return 1;
	}
	E = etcd_open(ep.url, NULL);
	RUN(bad_endpoints);
	RUN(unreachable_fails_fast);
	RUN(failover);
	RUN(put_range_delete_create);
	RUN(range_pages);
	RUN(leases);
	RUN(watch);
	RUN(watch_fails_when_etcd_unreachable);
	RUN(watch_ends_when_etcd_dies);
	RUN(parse_event_type_by_number);
	RUN(parse_range_moves_forward);
	etcd_close(&E);
	etcd_procs_cleanup();
	curl_global_cleanup();
	TAP_DONE();
}
