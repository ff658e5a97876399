/*
 * etcd_harness.h: a real etcd (/usr/bin/etcd, a required dependency) for
 * the cluster unit tests: started on free loopback ports with its data in a
 * mkdtemp directory, killed (and the directory removed) at exit, and dying
 * with the test process if that crashes (PR_SET_PDEATHSIG).  Also a raw
 * POST helper for the gateway calls the client does not offer (lease list,
 * compaction).
 */
#ifndef FERRY_ETCD_HARNESS_H
#define FERRY_ETCD_HARNESS_H

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster/etcd.h"

#define ETCD_BIN "/usr/bin/etcd"

struct etcd_proc {
	pid_t pid;
	int client_port, peer_port;
	char dir[64];
	char url[64]; /* "http://127.0.0.1:<client_port>" */
};

static struct etcd_proc *etcd_procs[4];

static int64_t
h_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
h_sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

/* A loopback port nobody listens on right now. */
static __attribute__((unused)) int
free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int port = -1;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static __attribute__((unused)) void
etcd_proc_stop(struct etcd_proc *p, int sig)
{
	if (p->pid > 0) {
		kill(p->pid, sig);
		waitpid(p->pid, NULL, 0);
		p->pid = 0;
	}
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	return remove(path);
}

static __attribute__((unused)) void
etcd_procs_cleanup(void)
{
	for (int i = 0; i < 4; i++) {
		if (!etcd_procs[i])
			continue;
		etcd_proc_stop(etcd_procs[i], SIGKILL);
		if (etcd_procs[i]->dir[0])
			nftw(etcd_procs[i]->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		etcd_procs[i] = NULL;
	}
}

static int
h_ignore_kv(void *a, const char *k, size_t kl, const char *v, size_t vl)
{
	return 0;
}

/* Is etcd at url answering?  (A range of an unused prefix.) */
static int
etcd_answers(const char *url)
{
	struct etcd *e = etcd_open(url, NULL);
	if (!e)
		return 0;
	etcd_set_timeout(e, 1000);
	int64_t rev = 0;
	int r = etcd_range_prefix(e, "/harness-probe/", h_ignore_kv, NULL, &rev);
	etcd_close(&e);
	return r == 0;
}

/*
 * Starts etcd.  First start: p zeroed, picks ports and a directory.  A
 * restart (p->dir set) keeps the data directory and, unless the caller
 * changed them, the ports.  Waits until it answers (10 s at most).
 */
static __attribute__((unused)) int
etcd_proc_start(struct etcd_proc *p)
{
	if (!p->dir[0]) {
		snprintf(p->dir, sizeof(p->dir), "/tmp/ferry-etcd-XXXXXX");
		if (!mkdtemp(p->dir)) {
			p->dir[0] = 0;
			return -1;
		}
		int slot = -1;
		for (int i = 0; i < 4; i++)
			if (!etcd_procs[i] && slot < 0)
				slot = i;
		static int registered;
		if (!registered) {
			atexit(etcd_procs_cleanup);
			registered = 1;
		}
		if (slot >= 0)
			etcd_procs[slot] = p;
	}
	if (!p->client_port)
		p->client_port = free_port();
	if (!p->peer_port)
		p->peer_port = free_port();
	if (access(ETCD_BIN, X_OK) != 0) {
		fprintf(stderr, "etcd is required: %s missing "
		    "(scripts/install-deps.sh installs it)\n", ETCD_BIN);
		return -1;
	}
	snprintf(p->url, sizeof(p->url), "http://127.0.0.1:%d", p->client_port);
	char peer[64], data[128], logf[128], cluster[96];
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", p->peer_port);
	snprintf(data, sizeof(data), "%s/data", p->dir);
	snprintf(logf, sizeof(logf), "%s/log", p->dir);
	snprintf(cluster, sizeof(cluster), "t=%s", peer);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		/* Short election timers: a single member elects itself fast,
		 * and the minimum lease TTL drops to 1 s. */
		execl(ETCD_BIN, ETCD_BIN, "--name", "t", "--data-dir", data,
		    "--listen-client-urls", p->url,
		    "--advertise-client-urls", p->url,
		    "--listen-peer-urls", peer,
		    "--initial-advertise-peer-urls", peer,
		    "--initial-cluster", cluster,
		    "--heartbeat-interval", "50", "--election-timeout", "500",
		    "--logger", "zap", "--log-level", "error", (char *)NULL);
		_exit(127);
	}
	p->pid = pid;
	int64_t deadline = h_now_ms() + 10000;
	while (h_now_ms() < deadline) {
		if (etcd_answers(p->url))
			return 0;
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			p->pid = 0;
			fprintf(stderr, "etcd exited at start; see %s\n", logf);
			return -1;
		}
		h_sleep_ms(50);
	}
	fprintf(stderr, "etcd did not answer within 10 s; see %s\n", logf);
	etcd_proc_stop(p, SIGKILL);
	return -1;
}

static size_t
h_collect(char *ptr, size_t sz, size_t n, void *u)
{
	struct { char *p; size_t len, cap; } *b = u;
	size_t add = sz * n;
	if (b->len + add + 1 > b->cap)
		return 0;
	memcpy(b->p + b->len, ptr, add);
	b->len += add;
	b->p[b->len] = 0;
	return add;
}

/* POSTs body to url+path; the reply (NUL-terminated) in out.  HTTP status
 * or -1. */
static __attribute__((unused)) long
raw_post(const char *url, const char *path, const char *body, char *out,
    size_t cap)
{
	struct { char *p; size_t len, cap; } b = {out, 0, cap};
	out[0] = 0;
	char u[256];
	snprintf(u, sizeof(u), "%s%s", url, path);
	CURL *h = curl_easy_init();
	if (!h)
		return -1;
	curl_easy_setopt(h, CURLOPT_URL, u);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, h_collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	long status = -1;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	return status;
}

/* Revokes every lease etcd has (as an operator or a crash of the lease
 * holder would make them vanish).  The number revoked, or -1. */
static __attribute__((unused)) int
revoke_all_leases(const char *url)
{
	char out[65536];
	if (raw_post(url, "/v3/lease/leases", "{}", out, sizeof(out)) != 200)
		return -1;
	struct etcd *e = etcd_open(url, NULL);
	if (!e)
		return -1;
	int n = 0;
	for (const char *s = out; (s = strstr(s, "\"ID\":\"")); ) {
		s += 6;
		int64_t id = strtoll(s, NULL, 10);
		if (id && etcd_lease_revoke(e, id) == 0)
			n++;
	}
	etcd_close(&e);
	return n;
}

/* Compacts etcd's history up to its current revision. */
static __attribute__((unused)) int
compact_now(const char *url)
{
	char out[4096];
	if (raw_post(url, "/v3/kv/range", "{\"key\":\"AA==\",\"limit\":\"1\"}",
	    out, sizeof(out)) != 200)
		return -1;
	const char *r = strstr(out, "\"revision\":\"");
	if (!r)
		return -1;
	long long rev = strtoll(r + 12, NULL, 10);
	char body[96];
	snprintf(body, sizeof(body), "{\"revision\":\"%lld\",\"physical\":true}",
	    rev);
	return raw_post(url, "/v3/kv/compaction", body, out, sizeof(out)) == 200
	    ? 0 : -1;
}

/* Polls cond (an expression) every 20 ms until true or ms pass. */
#define WAIT_UNTIL(cond, ms)                                                  \
	({                                                                    \
		int64_t _dl = h_now_ms() + (ms);                              \
		int _ok;                                                      \
		while (!(_ok = !!(cond)) && h_now_ms() < _dl)                 \
			h_sleep_ms(20);                                       \
		_ok;                                                          \
	})

#endif
