/*
 * sigv4_verify_tool.c: reads one raw HTTP request head (request line,
 * headers, blank line) from stdin, parses it with http_parse_request and
 * runs sigv4_verify on it, then prints the status name ("OK", "MISMATCH",
 * ...) on stdout and the error message, if any, on stderr.  Used by
 * tests/integration/test_sigv4_crosscheck.py to check our verifier against
 * independent signers (botocore, curl --aws-sigv4).  Single-threaded.
 *
 * Usage: sigv4_verify_tool SECRET NOW
 *   SECRET is the secret of access key "AKIDEXAMPLE" (the only known key);
 *   NOW is the verifier's clock in unix seconds.  Exit status 0 when a
 *   status was printed, 2 on usage errors or an unparsable head.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dbuf.h"
#include "http/http_parse.h"
#include "common/sigv4.h"

static const char *
status_name(enum sigv4_status st)
{
	switch (st) {
	case SIGV4_OK: return "OK";
	case SIGV4_ANONYMOUS: return "ANONYMOUS";
	case SIGV4_MALFORMED: return "MALFORMED";
	case SIGV4_UNKNOWN_KEY: return "UNKNOWN_KEY";
	case SIGV4_MISMATCH: return "MISMATCH";
	case SIGV4_SKEWED: return "SKEWED";
	case SIGV4_EXPIRED: return "EXPIRED";
	case SIGV4_UNSUPPORTED: return "UNSUPPORTED";
	case SIGV4_BAD_PAYLOAD_HASH: return "BAD_PAYLOAD_HASH";
	case SIGV4_WRONG_REGION: return "WRONG_REGION";
	case SIGV4_NO_DATE: return "NO_DATE";
	}
	return "UNKNOWN_STATUS";
}

static const char *
secret_of(void *arg, const char *key)
{
	return strcmp(key, "AKIDEXAMPLE") == 0 ? (const char *)arg : NULL;
}

int
main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s SECRET NOW\n", argv[0]);
		return 2;
	}
	char *end;
	errno = 0;
	long long now = strtoll(argv[2], &end, 10);
	if (errno || *end || end == argv[2]) {
		fprintf(stderr, "bad NOW: %s\n", argv[2]);
		return 2;
	}
	static char buf[HTTP_MAX_HEAD + 1];
	size_t len = fread(buf, 1, HTTP_MAX_HEAD, stdin);
	static struct http_request req;
	int r = http_parse_request(buf, len, &req);
	if (r <= 0) {
		printf("PARSE_ERROR %d\n", r);
		return 2;
	}
	const char *msg = NULL;
	enum sigv4_status st = sigv4_verify(&req, (int64_t)now, secret_of,
	    argv[1], &msg);
	printf("%s\n", status_name(st));
	if (msg)
		fprintf(stderr, "%s\n", msg);
	return 0;
}
