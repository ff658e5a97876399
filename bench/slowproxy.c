/*
 * slowproxy.c: a TCP relay that models a long-haul link for the cold-read
 * benchmark (bench/worker.sh): one TCP stream over it is slower than many.
 * Each accepted client connection is relayed to one upstream connection with
 *   - a per-connection rate cap in each direction (default 20 MB/s),
 *   - an added one-way latency in each direction (default 20 ms): every chunk
 *     read is due for sending LATENCY after it arrived; a new connection's
 *     first bytes to the upstream also wait one round trip (the handshake),
 *   - a total rate cap per direction shared by all connections (default
 *     200 MB/s),
 *   - a bounded queue per direction (default 2 MiB): a full queue stops
 *     reading, so back-pressure reaches the sender as on a real link.
 *
 * Threads: the main thread accepts; each connection has four detached
 * threads, a reader and a writer per direction, which share that
 * direction's queue under its mutex.  One signal thread prints the counters
 * on SIGUSR1 (max_concurrent: the most connections open at once since the
 * previous SIGUSR1) and exits on SIGTERM/SIGINT (printing them first).  The global
 * pacing clock is guarded by pace_mu.
 *
 * Invariants: queued bytes per direction <= the queue bound plus one chunk;
 * a chunk is never written before its due time nor before the per-connection
 * and total pacing clocks allow; a write error ends both directions
 * (shutdown of both sockets) so no thread stays blocked.
 *
 * Build: gcc -std=c11 -D_GNU_SOURCE -O2 -pthread -o slowproxy slowproxy.c
 * Usage: slowproxy -u HOST:PORT [-l HOST:PORT] [-r RATE] [-t RATE] [-d MS] [-q BYTES]
 * It prints "slowproxy listening HOST:PORT" on stdout once it accepts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_MAX (64 * 1024)

struct chunk {
	struct chunk *next;
	int64_t due_ns;	/* monotonic time it may be sent */
	size_t len;	/* 0: end of stream */
	char data[];
};

struct conn;

struct dir {
	struct conn *conn;
	int from, to;
	int upstream_bound;	/* writes go to the upstream: handshake RTT applies */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct chunk *head, *tail;
	size_t queued;		/* bytes in the queue */
	int64_t next_ns;	/* per-connection pacing clock */
	atomic_llong *counter;
};

struct conn {
	int cfd, ufd;
	atomic_int refs;	/* threads still running */
	atomic_int dead;
	int64_t accepted_ns;
	struct dir d[2];	/* 0: client -> upstream, 1: upstream -> client */
};

static double opt_rate = 20e6, opt_total = 200e6;
static int64_t opt_delay_ns = 20 * 1000000LL;
static size_t opt_queue = 2u << 20;

static pthread_mutex_t pace_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t pace_next_ns[2];	/* total-cap pacing clock per direction */

static atomic_llong stat_conns, stat_active, stat_max_active;
static atomic_llong stat_bytes[2];

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t)
{
	struct timespec ts = { .tv_sec = t / 1000000000LL, .tv_nsec = t % 1000000000LL };
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static void conn_kill(struct conn *c)
{
	if (atomic_exchange(&c->dead, 1))
		return;
	shutdown(c->cfd, SHUT_RDWR);
	shutdown(c->ufd, SHUT_RDWR);
	for (int i = 0; i < 2; i++) {
		pthread_mutex_lock(&c->d[i].mu);
		pthread_cond_broadcast(&c->d[i].cv);
		pthread_mutex_unlock(&c->d[i].mu);
	}
}

static void conn_unref(struct conn *c)
{
	if (atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	for (int i = 0; i < 2; i++) {
		struct chunk *k = c->d[i].head;
		while (k) {
			struct chunk *n = k->next;
			free(k);
			k = n;
		}
		pthread_mutex_destroy(&c->d[i].mu);
		pthread_cond_destroy(&c->d[i].cv);
	}
	close(c->cfd);
	close(c->ufd);
	free(c);
	atomic_fetch_sub(&stat_active, 1);
}

/* Reads from d->from into the queue until end of stream or death. */
static void *reader_thread(void *arg)
{
	struct dir *d = arg;
	struct conn *c = d->conn;
	char buf[CHUNK_MAX];
	for (;;) {
		pthread_mutex_lock(&d->mu);
		while (d->queued >= opt_queue && !atomic_load(&c->dead))
			pthread_cond_wait(&d->cv, &d->mu);
		pthread_mutex_unlock(&d->mu);
		if (atomic_load(&c->dead))
			break;
		ssize_t n = read(d->from, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		size_t len = n > 0 ? (size_t)n : 0;
		struct chunk *k = malloc(sizeof *k + len);
		if (!k) {
			conn_kill(c);
			break;
		}
		k->next = NULL;
		k->len = len;
		k->due_ns = now_ns() + opt_delay_ns;
		memcpy(k->data, buf, len);
		pthread_mutex_lock(&d->mu);
		if (d->tail)
			d->tail->next = k;
		else
			d->head = k;
		d->tail = k;
		d->queued += len;
		pthread_cond_broadcast(&d->cv);
		pthread_mutex_unlock(&d->mu);
		if (len == 0)
			break;	/* end of stream (or error) queued for the writer */
	}
	conn_unref(c);
	return NULL;
}

/* The time a chunk of len bytes may go out: after its per-connection slot
 * and the total-cap slot for its direction; advances both clocks. */
static int64_t pace(struct dir *d, int idx, size_t len, int64_t not_before)
{
	int64_t t = max64(not_before, d->next_ns);
	if (opt_total > 0) {
		pthread_mutex_lock(&pace_mu);
		t = max64(t, pace_next_ns[idx]);
		pace_next_ns[idx] = t + (int64_t)((double)len * 1e9 / opt_total);
		pthread_mutex_unlock(&pace_mu);
	}
	if (opt_rate > 0)
		d->next_ns = t + (int64_t)((double)len * 1e9 / opt_rate);
	return t;
}

static void *writer_thread(void *arg)
{
	struct dir *d = arg;
	struct conn *c = d->conn;
	int idx = d == &c->d[0] ? 0 : 1;
	int first = 1;
	for (;;) {
		pthread_mutex_lock(&d->mu);
		while (!d->head && !atomic_load(&c->dead))
			pthread_cond_wait(&d->cv, &d->mu);
		struct chunk *k = d->head;
		pthread_mutex_unlock(&d->mu);
		if (atomic_load(&c->dead))
			break;
		if (k->len == 0) {
			shutdown(d->to, SHUT_WR);
			break;
		}
		int64_t due = k->due_ns;
		if (first && d->upstream_bound)
			due = max64(due, c->accepted_ns + 2 * opt_delay_ns);
		first = 0;
		/* No credit for idle time: pacing restarts from now. */
		sleep_until_ns(pace(d, idx, k->len, max64(due, now_ns())));
		size_t off = 0;
		while (off < k->len) {
			ssize_t w = send(d->to, k->data + off, k->len - off, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		if (off < k->len) {
			conn_kill(c);
			break;
		}
		atomic_fetch_add(d->counter, (long long)k->len);
		pthread_mutex_lock(&d->mu);
		d->head = k->next;
		if (!d->head)
			d->tail = NULL;
		d->queued -= k->len;
		pthread_cond_broadcast(&d->cv);
		pthread_mutex_unlock(&d->mu);
		free(k);
	}
	conn_unref(c);
	return NULL;
}

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
	char host[256];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof host)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return -1;
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* "20M" -> 20e6; K, M, G are decimal (rates are quoted in MB/s). */
static int parse_rate(const char *s, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || v < 0)
		return -1;
	switch (*end) {
	case 0: break;
	case 'k': case 'K': v *= 1e3; end++; break;
	case 'm': case 'M': v *= 1e6; end++; break;
	case 'g': case 'G': v *= 1e9; end++; break;
	default: return -1;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end)
		return -1;
	*out = v;
	return 0;
}

static void print_stats(const char *why)
{
	fprintf(stderr, "slowproxy %s: connections=%lld max_concurrent=%lld bytes_up=%lld bytes_down=%lld\n",
		why, (long long)atomic_load(&stat_conns), (long long)atomic_load(&stat_max_active),
		(long long)atomic_load(&stat_bytes[0]), (long long)atomic_load(&stat_bytes[1]));
	fflush(stderr);
}

static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	for (;;) {
		int sig;
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGUSR1) {
			/* max_concurrent then restarts, so each report covers
			 * the span since the previous one. */
			print_stats("stats");
			atomic_store(&stat_max_active, atomic_load(&stat_active));
			continue;
		}
		print_stats("exit");
		_exit(0);
	}
	return NULL;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: slowproxy -u HOST:PORT [-l HOST:PORT] [-r RATE] [-t RATE] [-d MS] [-q BYTES]\n"
		"  -u  upstream address (required)\n"
		"  -l  listen address (default 127.0.0.1:0, the port is printed)\n"
		"  -r  per-connection cap per direction, bytes/s, K/M/G decimal (default 20M; 0: none)\n"
		"  -t  total cap per direction over all connections (default 200M; 0: none)\n"
		"  -d  added one-way latency in ms per direction (default 20)\n"
		"  -q  queue bound per direction in bytes (default 2097152)\n"
		"  SIGUSR1 prints counters to stderr (max_concurrent: since the last SIGUSR1);\n"
		"  SIGTERM prints them and exits.\n");
}

static int start_thread(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	int e = pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return e;
}

int main(int argc, char **argv)
{
	struct sockaddr_in lsa, usa;
	int have_up = 0;
	parse_hostport("127.0.0.1:0", &lsa);
	int opt;
	while ((opt = getopt(argc, argv, "u:l:r:t:d:q:h")) != -1) {
		double v;
		switch (opt) {
		case 'u':
			if (parse_hostport(optarg, &usa)) { usage(); return 2; }
			have_up = 1;
			break;
		case 'l':
			if (parse_hostport(optarg, &lsa)) { usage(); return 2; }
			break;
		case 'r':
			if (parse_rate(optarg, &opt_rate)) { usage(); return 2; }
			break;
		case 't':
			if (parse_rate(optarg, &opt_total)) { usage(); return 2; }
			break;
		case 'd':
			if (parse_rate(optarg, &v) || v > 10000) { usage(); return 2; }
			opt_delay_ns = (int64_t)(v * 1e6);
			break;
		case 'q':
			if (parse_rate(optarg, &v) || v < CHUNK_MAX || v > 1e9) { usage(); return 2; }
			opt_queue = (size_t)v;
			break;
		default:
			usage();
			return opt == 'h' ? 0 : 2;
		}
	}
	if (!have_up || optind != argc) {
		usage();
		return 2;
	}

	static sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (start_thread(signal_thread, &set)) {
		perror("slowproxy: pthread_create");
		return 1;
	}

	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ls < 0 || bind(ls, (struct sockaddr *)&lsa, sizeof lsa) || listen(ls, 512)) {
		perror("slowproxy: listen");
		return 1;
	}
	socklen_t sl = sizeof lsa;
	getsockname(ls, (struct sockaddr *)&lsa, &sl);
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &lsa.sin_addr, ip, sizeof ip);
	printf("slowproxy listening %s:%u\n", ip, ntohs(lsa.sin_port));
	fflush(stdout);
	fprintf(stderr, "slowproxy: per-connection %.0f B/s, total %.0f B/s, latency %.1f ms, queue %zu B\n",
		opt_rate, opt_total, (double)opt_delay_ns / 1e6, opt_queue);

	for (;;) {
		int cfd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
				usleep(10000);
				continue;
			}
			perror("slowproxy: accept");
			return 1;
		}
		int64_t t0 = now_ns();
		int ufd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (ufd < 0 || connect(ufd, (struct sockaddr *)&usa, sizeof usa)) {
			perror("slowproxy: connect upstream");
			if (ufd >= 0)
				close(ufd);
			close(cfd);
			continue;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(cfd);
			close(ufd);
			continue;
		}
		c->cfd = cfd;
		c->ufd = ufd;
		c->accepted_ns = t0;
		atomic_init(&c->refs, 4);
		atomic_init(&c->dead, 0);
		for (int i = 0; i < 2; i++) {
			struct dir *d = &c->d[i];
			d->conn = c;
			d->from = i == 0 ? cfd : ufd;
			d->to = i == 0 ? ufd : cfd;
			d->upstream_bound = i == 0;
			d->counter = &stat_bytes[i];
			pthread_mutex_init(&d->mu, NULL);
			pthread_cond_init(&d->cv, NULL);
		}
		atomic_fetch_add(&stat_conns, 1);
		long long act = atomic_fetch_add(&stat_active, 1) + 1;
		long long mx = atomic_load(&stat_max_active);
		while (act > mx && !atomic_compare_exchange_weak(&stat_max_active, &mx, act))
			;
		/* Threads that fail to start drop their reference and kill the
		 * connection, so the ones that did start exit promptly. */
		void *(*fns[4])(void *) = { reader_thread, writer_thread, reader_thread, writer_thread };
		for (int i = 0; i < 4; i++) {
			if (start_thread(fns[i], &c->d[i / 2])) {
				conn_kill(c);
				conn_unref(c);
			}
		}
	}
}
