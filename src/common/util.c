/*
 * util.c: pure helper functions (see util.h).  No global state; every
 * function is safe to call from any thread.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static inline uint64_t
mix64(uint64_t x)
{
	/* splitmix64 finalizer */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

uint64_t
hash64(const void *p, size_t n, uint64_t seed)
{
	const unsigned char *s = p;
	uint64_t h = mix64(seed ^ 0x9e3779b97f4a7c15ULL ^ (uint64_t)n);
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, s, 8);
		h = mix64(h ^ v) + 0x9e3779b97f4a7c15ULL;
		s += 8;
		n -= 8;
	}
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)s[i] << (8 * i);
	return mix64(h ^ v ^ ((uint64_t)n << 56));
}

int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t
wall_sec(void)
{
	return (int64_t)time(NULL);
}

static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void
fmt_http_date(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday],
	    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
	    tm.tm_min, tm.tm_sec);
}

void
fmt_iso8601(int64_t t, char *out, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.000Z", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int
parse_month(const char *s)
{
	for (int i = 0; i < 12; i++)
		if (strncasecmp(s, months[i], 3) == 0)
			return i;
	return -1;
}

static int64_t
tm_to_epoch(int y, int mon, int d, int h, int mi, int s)
{
	if (y < 1970 || y > 9999 || mon < 0 || mon > 11 || d < 1 || d > 31 ||
	    h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 || s > 60)
		return -1;
	struct tm tm = {0};
	tm.tm_year = y - 1900;
	tm.tm_mon = mon;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (int64_t)timegm(&tm);
}

int64_t
parse_http_date(const char *s, size_t n)
{
	char buf[64];
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	char wd[16], mon[4];
	int d, y, h, mi, sec;
	char tail[8];
	/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
	if (sscanf(buf, "%3s, %2d %3s %4d %2d:%2d:%2d %3s", wd, &d, mon, &y, &h,
		&mi, &sec, tail) == 8 &&
	    strcmp(tail, "GMT") == 0) {
		int m = parse_month(mon);
		return m < 0 ? -1 : tm_to_epoch(y, m, d, h, mi, sec);
	}
	/* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
	if (sscanf(buf, "%15[^,], %2d-%3s-%2d %2d:%2d:%2d %3s", wd, &d, mon, &y,
		&h, &mi, &sec, tail) == 8 &&
	    strcmp(tail, "GMT") == 0) {
		int m = parse_month(mon);
		y += y < 70 ? 2000 : 1900;
		return m < 0 ? -1 : tm_to_epoch(y, m, d, h, mi, sec);
	}
	/* asctime: Sun Nov  6 08:49:37 1994 */
	if (sscanf(buf, "%3s %3s %d %2d:%2d:%2d %4d", wd, mon, &d, &h, &mi, &sec,
		&y) == 7) {
		int m = parse_month(mon);
		return m < 0 ? -1 : tm_to_epoch(y, m, d, h, mi, sec);
	}
	return -1;
}

static int
digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int64_t
parse_iso8601(const char *s, size_t n)
{
	/* YYYY-MM-DDTHH:MM:SS[.fff]Z */
	if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
	    s[13] != ':' || s[16] != ':')
		return -1;
	size_t i = 19;
	if (s[i] == '.') {
		i++;
		while (i < n && isdigit((unsigned char)s[i]))
			i++;
	}
	if (i + 1 != n || s[i] != 'Z')
		return -1;
	int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2),
	    h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
	if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || se < 0)
		return -1;
	return tm_to_epoch(y, mo - 1, d, h, mi, se);
}

int64_t
parse_amz_date(const char *s, size_t n)
{
	/* YYYYMMDDTHHMMSSZ */
	if (n != 16 || s[8] != 'T' || s[15] != 'Z')
		return -1;
	int y = digits(s, 4), mo = digits(s + 4, 2), d = digits(s + 6, 2),
	    h = digits(s + 9, 2), mi = digits(s + 11, 2), se = digits(s + 13, 2);
	if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || se < 0)
		return -1;
	return tm_to_epoch(y, mo - 1, d, h, mi, se);
}

int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long
url_decode(const char *s, size_t n, char *out, int plus_is_space)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n)
				return -1;
			int a = hexval((unsigned char)s[i + 1]),
			    b = hexval((unsigned char)s[i + 2]);
			if (a < 0 || b < 0)
				return -1;
			out[o++] = (char)(a * 16 + b);
			i += 2;
		} else if (s[i] == '+' && plus_is_space) {
			out[o++] = ' ';
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = 0;
	return (long)o;
}

int
url_encode(struct dbuf *b, const char *s, size_t n, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int r;
		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
		    (keep_slash && c == '/')) {
			r = dbuf_add(b, &s[i], 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			r = dbuf_add(b, e, 3);
		}
		if (r)
			return r;
	}
	return 0;
}

int
xml_escape(struct dbuf *b, const char *s, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		const char *rep = NULL;
		char num[8];
		unsigned char ch = (unsigned char)s[i];
		switch (ch) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&apos;"; break;
		case '\t': case '\n': break;
		default:
			/* Other controls as character references, as S3 does
			 * (kept from being read as markup or line ends). */
			if (ch < 0x20 || ch == 0x7f) {
				snprintf(num, sizeof(num), "&#%u;", ch);
				rep = num;
			}
			break;
		}
		if (!rep)
			continue;
		int r = dbuf_add(b, s + start, i - start);
		if (!r)
			r = dbuf_adds(b, rep);
		if (r)
			return r;
		start = i + 1;
	}
	return dbuf_add(b, s + start, n - start);
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
b64_encode(struct dbuf *b, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		char o[4] = {b64chars[(v >> 18) & 63], b64chars[(v >> 12) & 63],
		    i + 1 < n ? b64chars[(v >> 6) & 63] : '=',
		    i + 2 < n ? b64chars[v & 63] : '='};
		int r = dbuf_add(b, o, 4);
		if (r)
			return r;
	}
	return 0;
}

long
b64_decode(const char *s, size_t n, unsigned char *out)
{
	if (n % 4)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		for (int k = 0; k < 4; k++) {
			char c = s[i + k];
			const char *q = c ? strchr(b64chars, c) : NULL;
			if (c == '=' && i + 4 == n && k >= 2)
				v[k] = -2;
			else if (!q)
				return -1;
			else
				v[k] = (int)(q - b64chars);
		}
		if (v[0] < 0 || v[1] < 0 || (v[2] == -2 && v[3] != -2))
			return -1;
		uint32_t x = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) |
		    ((uint32_t)(v[2] < 0 ? 0 : v[2]) << 6) |
		    (uint32_t)(v[3] < 0 ? 0 : v[3]);
		out[o++] = (unsigned char)(x >> 16);
		if (v[2] >= 0)
			out[o++] = (unsigned char)(x >> 8);
		if (v[3] >= 0)
			out[o++] = (unsigned char)x;
	}
	return (long)o;
}

void
hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = 0;
}

void
fmt_bytes(double v, char *out, size_t n)
{
	static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	int i = 0;
	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(out, n, "%.0f %s", v, u[i]);
	else
		snprintf(out, n, "%.1f %s", v, u[i]);
}

int64_t
parse_size(const char *s)
{
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (errno || v < 0)
		return -1;
	int64_t mul = 1;
	switch (toupper((unsigned char)*end)) {
	case 0: break;
	case 'B': mul = 1; end++; break;
	case 'K': mul = 1LL << 10; end++; break;
	case 'M': mul = 1LL << 20; end++; break;
	case 'G': mul = 1LL << 30; end++; break;
	case 'T': mul = 1LL << 40; end++; break;
	case 'P': mul = 1LL << 50; end++; break;
	default: return -1;
	}
	if (mul > 1) {
		if (*end == 'i' || *end == 'I')
			end++;
		if (*end == 'b' || *end == 'B')
			end++;
	}
	if (*end)
		return -1;
	double r = v * (double)mul;
	if (r > 9.2e18)
		return -1;
	return (int64_t)r;
}

int
utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		int len;
		unsigned min;
		if ((c & 0xe0) == 0xc0) {
			len = 2;
			min = 0x80;
			c &= 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			min = 0x800;
			c &= 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			min = 0x10000;
			c &= 0x07;
		} else {
			return 0;
		}
		if (i + (size_t)len > n)
			return 0;
		for (int k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			c = (c << 6) | (s[i + k] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
		i += (size_t)len;
	}
	return 1;
}

int
query_param_decoded(const char *q, size_t n, const char *name, char *out,
    size_t cap)
{
	size_t want = strlen(name);
	int count = 0, bad = 0;
	char nbuf[64];
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && q[j] != '&')
			j++;
		const char *c = q + i;
		size_t cl = j - i;
		const char *eq = memchr(c, '=', cl);
		size_t kl = eq ? (size_t)(eq - c) : cl;
		i = j + 1;
		/* An encoded name is at most 3x its decoded length. */
		if (kl == 0 || kl >= sizeof(nbuf) || kl > 3 * want)
			continue;
		long dl = url_decode(c, kl, nbuf, 0);
		if (dl < 0 || (size_t)dl != want || memcmp(nbuf, name, want))
			continue;
		if (count++ == 0 && out) {
			size_t vl = eq ? cl - kl - 1 : 0;
			long ol = vl < cap ? url_decode(eq ? eq + 1 : "", vl, out, 0) : -1;
			if (ol < 0 || (size_t)ol != strlen(out))
				bad = 1; /* undecodable, too long, or a NUL */
		}
	}
	return bad ? -1 : count;
}

int
write_full(int fd, const void *p, size_t n, int64_t off)
{
	const char *s = p;
	while (n > 0) {
		ssize_t w = off < 0 ? write(fd, s, n) : pwrite(fd, s, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		s += w;
		n -= (size_t)w;
		if (off >= 0)
			off += w;
	}
	return 0;
}

int
path_under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);
	if (n == 0)
		return 1;
	if (strncmp(path, prefix, n) != 0)
		return 0;
	return prefix[n - 1] == '/' || path[n] == 0 || path[n] == '/';
}

int
write_file_atomic(int dirfd, const char *name, const void *p, size_t n, int sync)
{
	size_t tl = strlen(name) + 5;
	char *tmp = malloc(tl);
	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, tl, "%s.tmp", name);
	int rc = 0, fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		rc = -errno;
	else
		rc = write_full(fd, p, n, -1);
	if (fd >= 0 && rc == 0 && sync && fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		rc = -errno;
	if (rc < 0 && fd >= 0)
		unlinkat(dirfd, tmp, 0);
	free(tmp);
	return rc;
}

int64_t
parse_duration(const char *s)
{
	if (!s || !*s)
		return -1;
	int64_t total = 0;
	while (*s) {
		if (*s < '0' || *s > '9')
			return -1;
		int64_t v = 0;
		while (*s >= '0' && *s <= '9') {
			v = v * 10 + (*s++ - '0');
			if (v > 10LL * 366 * 86400)
				return -1;
		}
		int64_t unit;
		switch (*s) {
		case 0: unit = 1; break;
		case 's': unit = 1; s++; break;
		case 'm': unit = 60; s++; break;
		case 'h': unit = 3600; s++; break;
		case 'd': unit = 86400; s++; break;
		case 'w': unit = 7 * 86400; s++; break;
		default: return -1;
		}
		total += v * unit;
		if (total > 10LL * 366 * 86400)
			return -1;
	}
	return total;
}
