/*
 * util.h: small helpers shared by every layer: hashing, time formats,
 * URL and XML escaping, base64, human-readable sizes.  All pure functions,
 * safe from any thread.
 */
#ifndef FERRY_UTIL_H
#define FERRY_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "dbuf.h"

/* 64-bit hash of bytes (non-cryptographic, stable across runs and hosts). */
uint64_t hash64(const void *p, size_t n, uint64_t seed);

/* Monotonic and wall clocks. */
int64_t now_ms(void);      /* CLOCK_MONOTONIC in ms */
int64_t now_ns(void);      /* CLOCK_MONOTONIC in ns */
int64_t wall_sec(void);    /* time(NULL) */

/* "Sun, 06 Nov 1994 08:49:37 GMT" into out (>= 30 bytes). */
void fmt_http_date(int64_t t, char *out, size_t n);
/* "2013-05-24T00:00:00.000Z" into out (>= 25 bytes). */
void fmt_iso8601(int64_t t, char *out, size_t n);
/* Parses IMF-fixdate, RFC 850 and asctime forms; -1 if malformed. */
int64_t parse_http_date(const char *s, size_t n);
/* Parses "2013-05-24T00:00:00.000Z" (fraction optional); -1 if malformed. */
int64_t parse_iso8601(const char *s, size_t n);
/* Parses "20130524T000000Z" (SigV4 x-amz-date); -1 if malformed. */
int64_t parse_amz_date(const char *s, size_t n);

/*
 * Percent-decoding.  Returns the decoded length, or -1 if malformed (bad
 * %XX).  If plus_is_space, '+' decodes to ' ' (query strings).  out must
 * hold n+1 bytes; result is NUL-terminated.  Decoded NUL bytes are kept and
 * the caller must reject them where they matter (see key validation).
 */
long url_decode(const char *s, size_t n, char *out, int plus_is_space);
/* RFC 3986 unreserved kept, everything else %XX (uppercase).  If
 * keep_slash, '/' is kept (SigV4 canonical URI, S3 encoding-type=url). */
int url_encode(struct dbuf *b, const char *s, size_t n, int keep_slash);
/* Escapes & < > " ' for XML text, and control characters other than tab
 * and newline as numeric references ("\r" as "&#13;", as S3 does). */
int xml_escape(struct dbuf *b, const char *s, size_t n);

/*
 * Query parameter `name` of the raw query q[0..n) (names compared after
 * decoding): its first value, decoded ('+' stays '+'), into out (cap bytes;
 * out NULL: only count).  Returns the number of occurrences, or -1 if the
 * first value is malformed, too long, or decodes to a NUL.
 */
int query_param_decoded(const char *q, size_t n, const char *name, char *out,
    size_t cap);

/* Standard base64 with padding. */
int b64_encode(struct dbuf *b, const void *p, size_t n);
/* Returns decoded length or -1; out must hold n*3/4+3 bytes. */
long b64_decode(const char *s, size_t n, unsigned char *out);

void hex_encode(const unsigned char *in, size_t n, char *out); /* out: 2n+1 */
/* The value of one hex digit (either case), or -1. */
int hexval(int c);

/* "1.5 GiB" style, into out. */
void fmt_bytes(double v, char *out, size_t n);
/* Parses "500G", "1MiB", "4096", "10m" (K/M/G/T, powers of 1024); -1 if bad. */
int64_t parse_size(const char *s);
/* Writes all of p[0..n) to fd (at off with pwrite, or at the file offset
 * when off < 0), through short writes and EINTR: 0 or -errno. */
int write_full(int fd, const void *p, size_t n, int64_t off);
/* Replaces the file name (in directory dirfd, or a path with AT_FDCWD)
 * with p[0..n), written to name.tmp (mode 0600 if new) and renamed into
 * place, so nobody ever reads half of it; with sync, fsynced before the
 * rename.  0 or -errno (name.tmp removed, name untouched). */
int write_file_atomic(int dirfd, const char *name, const void *p, size_t n,
    int sync);

/* Parses a duration: "90" or "90s", "30m", "24h", "7d", "2w", or a sum
 * like "1h30m".  Seconds, or -1 if bad (or above ten years). */
int64_t parse_duration(const char *s);

/*
 * Is path under prefix?  Prefix "" holds every path; "a/b" holds a/b and
 * everything under a/b/; "a/b/" everything under a/b/.
 */
int path_under(const char *path, const char *prefix);

/* Returns 1 if s[0..n) is valid UTF-8 with no NUL and no overlongs. */
int utf8_valid(const char *s, size_t n);

#endif
