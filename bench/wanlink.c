/*
 * wanlink: a wide-area link between two network namespaces, emulated in
 * userspace, for kernels without netem (bench/xregion.sh, bench/README.md 4.).
 *
 * It opens a TUN device (IFF_TUN | IFF_NO_PI, one IP packet per read) named
 * -i IFNAME in each of the two namespaces -a and -b (entered with setns()
 * from /run/netns/NAME, then left again), prints "wanlink ready" and forwards
 * every packet read from one device to the other.  Addresses and routes are
 * the caller's business (`ip -n NS addr add ... peer ...`).  Each direction
 * models a router port in front of a long line:
 *   - a serializer at -r bits/s: a packet leaves the port when the packets
 *     before it have left and its own bits have been clocked out;
 *   - a bounded queue in front of the serializer (-q bytes, default one
 *     round trip's worth, the BDP): a packet that would push the backlog
 *     over it is dropped (tail drop), so TCP sees loss as on a real router;
 *   - a delay line of -d ms one way after the serializer.
 * Packets come out in order, -s µs early at most (the wakeup slack that
 * lets one timer expiry release a burst instead of one packet per wakeup).
 *
 * One thread: poll() on the two TUN fds, a timerfd (CLOCK_MONOTONIC,
 * absolute, armed for the earliest packet due) and a signalfd (SIGUSR1
 * prints the counters, SIGINT/SIGTERM print them and exit).  Memory is fixed
 * at start: per direction a ring of slots of MTU bytes, enough for the queue
 * plus what is in flight on the delay line; a packet that finds no slot is
 * dropped and counted (ring_drops).  Invariant: within a direction the due
 * times in the ring never decrease, so only the head can be due.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct slot {
	uint64_t due_ns;
	uint32_t len;
};

struct dir {
	const char *name;          /* "a>b" or "b>a" */
	int in_fd, out_fd;
	struct slot *meta;
	unsigned char *data;       /* nslots x mtu bytes */
	size_t head, tail, count;  /* ring of packets, oldest at head */
	uint64_t tx_free_ns;       /* when the serializer is free again */
	uint64_t pkts_in, bytes_in, pkts_out, bytes_out;
	uint64_t queue_drops, ring_drops, write_errors;
	uint64_t max_backlog;      /* bytes waiting for the serializer, at most */
};

static size_t nslots, mtu = 1500;
static uint64_t rate_bps = 200000000ull;  /* bits per second; 0: unlimited */
static uint64_t delay_ns = 40000000ull;
static uint64_t qlimit;                   /* bytes; 0 until defaulted */
static uint64_t slack_ns = 200000ull;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wanlink -a NETNS -b NETNS [options]\n"
		"  -a NETNS, -b NETNS  the two namespaces (/run/netns/NAME) to join\n"
		"  -i IFNAME           TUN device name in both (default wan0)\n"
		"  -d MS               one-way delay in ms, each direction (default 40)\n"
		"  -r RATE             bits/s per direction, suffix k, M, G (default 200M; 0: unlimited)\n"
		"  -q BYTES            queue in front of each serializer, suffix k, M (default: one RTT at RATE)\n"
		"  -m MTU              largest packet (default 1500; set the devices' MTU to match)\n"
		"  -s US               release packets up to US microseconds early (default 200)\n"
		"SIGUSR1 prints the counters to stderr; SIGINT or SIGTERM print them and exit.\n");
}

/* Parses "200M", "1.5G", "512k" (decimal multiples); -1 when malformed. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -1;
	double m = 1;
	switch (*end) {
	case 'k': case 'K': m = 1e3; end++; break;
	case 'm': case 'M': m = 1e6; end++; break;
	case 'g': case 'G': m = 1e9; end++; break;
	default: break;
	}
	if (*end || v * m > 1e15)
		return -1;
	*out = (uint64_t)(v * m);
	return 0;
}

/* Opens TUN device IFNAME inside namespace NETNS; returns its fd or -errno. */
static int open_tun(const char *netns, const char *ifname, int home_ns)
{
	char path[256];
	snprintf(path, sizeof path, "/run/netns/%s", netns);
	int nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0) {
		int e = errno;
		fprintf(stderr, "wanlink: %s: %s\n", path, strerror(e));
		return -e;
	}
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		int e = errno;
		fprintf(stderr, "wanlink: setns %s: %s\n", netns, strerror(e));
		close(nsfd);
		return -e;
	}
	close(nsfd);
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	int e = fd < 0 ? errno : 0;
	if (fd >= 0) {
		struct ifreq ifr;
		memset(&ifr, 0, sizeof ifr);
		ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
		snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
		if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
			e = errno;
			close(fd);
			fd = -1;
		}
	}
	/* Back home either way: the next device is opened from here. */
	if (setns(home_ns, CLONE_NEWNET) < 0) {
		fprintf(stderr, "wanlink: setns back: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EIO;
	}
	if (fd < 0) {
		fprintf(stderr, "wanlink: tun %s in %s: %s\n", ifname, netns, strerror(e));
		return -e;
	}
	return fd;
}

static int dir_init(struct dir *d, const char *name, int in_fd, int out_fd)
{
	memset(d, 0, sizeof *d);
	d->name = name;
	d->in_fd = in_fd;
	d->out_fd = out_fd;
	d->meta = calloc(nslots, sizeof *d->meta);
	d->data = malloc(nslots * mtu);
	if (!d->meta || !d->data)
		return -ENOMEM;
	return 0;
}

static void print_stats(const struct dir *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "wanlink stats %s pkts_in=%" PRIu64 " bytes_in=%" PRIu64
			" pkts_out=%" PRIu64 " bytes_out=%" PRIu64 " queue_drops=%" PRIu64
			" ring_drops=%" PRIu64 " write_errors=%" PRIu64 " max_backlog=%" PRIu64
			" queued=%zu\n", d[i].name, d[i].pkts_in, d[i].bytes_in, d[i].pkts_out,
			d[i].bytes_out, d[i].queue_drops, d[i].ring_drops, d[i].write_errors,
			d[i].max_backlog, d[i].count);
}

/* Reads the packets waiting on d->in_fd (a bounded batch, so that the other
 * direction is served too) and queues or drops each. */
static void dir_read(struct dir *d)
{
	static unsigned char scratch[65536];
	for (int batch = 0; batch < 256; batch++) {
		unsigned char *buf = d->count < nslots ? d->data + d->tail * mtu : scratch;
		size_t cap = d->count < nslots ? mtu : sizeof scratch;
		ssize_t n = read(d->in_fd, buf, cap);
		if (n <= 0)
			return;  /* EAGAIN (drained), or an error poll will report again */
		uint64_t t = now_ns();
		d->pkts_in++;
		d->bytes_in += (uint64_t)n;
		if (buf == scratch || (size_t)n > mtu) {
			d->ring_drops++;
			continue;
		}
		uint64_t backlog = 0, tx_ns = 0;
		if (rate_bps) {
			if (d->tx_free_ns > t)
				backlog = (d->tx_free_ns - t) * rate_bps / 8000000000ull;
			tx_ns = (uint64_t)n * 8000000000ull / rate_bps;
		}
		if (backlog + (uint64_t)n > qlimit) {
			d->queue_drops++;
			continue;
		}
		if (backlog + (uint64_t)n > d->max_backlog)
			d->max_backlog = backlog + (uint64_t)n;
		uint64_t start = d->tx_free_ns > t ? d->tx_free_ns : t;
		d->tx_free_ns = start + tx_ns;
		d->meta[d->tail].due_ns = d->tx_free_ns + delay_ns;
		d->meta[d->tail].len = (uint32_t)n;
		d->tail = (d->tail + 1) % nslots;
		d->count++;
	}
}

/* Writes out every packet due by now (+ slack). */
static void dir_flush(struct dir *d, uint64_t t)
{
	while (d->count && d->meta[d->head].due_ns <= t + slack_ns) {
		uint32_t len = d->meta[d->head].len;
		if (write(d->out_fd, d->data + d->head * mtu, len) == (ssize_t)len) {
			d->pkts_out++;
			d->bytes_out += len;
		} else {
			d->write_errors++;  /* e.g. the device went down: the packet is lost */
		}
		d->head = (d->head + 1) % nslots;
		d->count--;
	}
}

int main(int argc, char **argv)
{
	const char *ns_a = NULL, *ns_b = NULL, *ifname = "wan0";
	uint64_t v;
	int c;
	while ((c = getopt(argc, argv, "a:b:i:d:r:q:m:s:h")) != -1) {
		switch (c) {
		case 'a': ns_a = optarg; break;
		case 'b': ns_b = optarg; break;
		case 'i': ifname = optarg; break;
		case 'd': {
			char *end;
			double ms = strtod(optarg, &end);
			if (*end || ms < 0 || ms > 10000) {
				fprintf(stderr, "wanlink: -d: delay in ms, 0..10000\n");
				return 2;
			}
			delay_ns = (uint64_t)(ms * 1e6);
			break;
		}
		case 'r':
			if (parse_size(optarg, &rate_bps) < 0) {
				fprintf(stderr, "wanlink: -r: a rate like 200M\n");
				return 2;
			}
			break;
		case 'q':
			if (parse_size(optarg, &qlimit) < 0 || qlimit < 2000 || qlimit > (1ull << 30)) {
				fprintf(stderr, "wanlink: -q: bytes, 2k..1G\n");
				return 2;
			}
			break;
		case 'm':
			if (parse_size(optarg, &v) < 0 || v < 576 || v > 65535) {
				fprintf(stderr, "wanlink: -m: MTU 576..65535\n");
				return 2;
			}
			mtu = (size_t)v;
			break;
		case 's':
			if (parse_size(optarg, &v) < 0 || v > 100000) {
				fprintf(stderr, "wanlink: -s: microseconds, 0..100000\n");
				return 2;
			}
			slack_ns = v * 1000;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!ns_a || !ns_b || optind != argc || strlen(ifname) >= IFNAMSIZ) {
		usage(stderr);
		return 2;
	}
	/* Default queue: one round trip at the line rate (the BDP), at least
	 * 64 packets; unlimited rate queues nothing, so it only bounds memory. */
	uint64_t bdp = rate_bps ? rate_bps / 8 * (2 * delay_ns) / 1000000000ull : 0;
	if (!qlimit)
		qlimit = bdp > 64 * mtu ? bdp : 64 * mtu;
	/* Slots for the queue plus the one-way flight (rate x delay), with room
	 * for small packets (ACKs) that take a slot each; capped for memory. */
	uint64_t flight = rate_bps ? rate_bps / 8 * delay_ns / 1000000000ull : 64ull << 20;
	uint64_t want = 1024 + 4 * (qlimit + flight) / mtu;
	if (want > (512ull << 20) / mtu)
		want = (512ull << 20) / mtu;
	nslots = (size_t)want;

	int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (home < 0) {
		fprintf(stderr, "wanlink: /proc/self/ns/net: %s\n", strerror(errno));
		return 1;
	}
	int fa = open_tun(ns_a, ifname, home);
	if (fa < 0)
		return 1;
	int fb = open_tun(ns_b, ifname, home);
	if (fb < 0)
		return 1;
	close(home);

	struct dir d[2];
	if (dir_init(&d[0], "a>b", fa, fb) < 0 || dir_init(&d[1], "b>a", fb, fa) < 0) {
		fprintf(stderr, "wanlink: out of memory for %zu slots\n", nslots);
		return 1;
	}
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (tfd < 0 || sfd < 0) {
		fprintf(stderr, "wanlink: timerfd/signalfd: %s\n", strerror(errno));
		return 1;
	}
	/* Timers fire on time: the default 50 µs slack would add jitter. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

	printf("wanlink ready %s<->%s dev %s delay %.3f ms rate %" PRIu64 " bit/s queue %" PRIu64
	       " bytes slots %zu mtu %zu\n", ns_a, ns_b, ifname, delay_ns / 1e6, rate_bps, qlimit,
	       nslots, mtu);
	fflush(stdout);

	struct pollfd p[4] = {
		{ .fd = fa, .events = POLLIN }, { .fd = fb, .events = POLLIN },
		{ .fd = tfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN },
	};
	uint64_t armed = 0;
	for (;;) {
		if (poll(p, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "wanlink: poll: %s\n", strerror(errno));
			return 1;
		}
		if (p[3].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				print_stats(d, 2);
				if (si.ssi_signo != SIGUSR1)
					return 0;
			}
		}
		if ((p[0].revents | p[1].revents) & (POLLERR | POLLHUP | POLLNVAL)) {
			fprintf(stderr, "wanlink: a TUN device failed (namespace deleted?)\n");
			print_stats(d, 2);
			return 1;
		}
		if (p[2].revents) {
			uint64_t exp;
			if (read(tfd, &exp, sizeof exp) < 0 && errno != EAGAIN)
				return 1;
			armed = 0;
		}
		if (p[0].revents & POLLIN)
			dir_read(&d[0]);
		if (p[1].revents & POLLIN)
			dir_read(&d[1]);
		uint64_t t = now_ns();
		dir_flush(&d[0], t);
		dir_flush(&d[1], t);
		/* Arm for the earliest head still waiting (heads are the earliest
		 * of their direction); re-arm only when that changes. */
		uint64_t next = 0;
		for (int i = 0; i < 2; i++)
			if (d[i].count && (!next || d[i].meta[d[i].head].due_ns < next))
				next = d[i].meta[d[i].head].due_ns;
		if (next && next - slack_ns != armed) {
			struct itimerspec its = { 0 };
			armed = next - slack_ns;
			its.it_value.tv_sec = (time_t)(armed / 1000000000ull);
			its.it_value.tv_nsec = (long)(armed % 1000000000ull);
			timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
		}
	}
}
