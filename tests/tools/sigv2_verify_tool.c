/*
 * sigv2_verify_tool.c: reads raw HTTP request heads (request line,
 * headers, blank line), one after another, from stdin, parses each with
 * http_parse_request and runs sigv2_verify on it, then prints one line per
 * head: the status name ("OK", "MISMATCH", ...), a tab, the message.  Used by tests/integration/test_sigv2_crosscheck.py to check
 * the gateway's SigV2 verifier against botocore's signers.
 *
 * Usage: sigv2_verify_tool SECRET NOW
 *   SECRET is the secret of access key "AKIDEXAMPLE" (the only known key);
 *   NOW is the verifier's clock in unix seconds.  Exit status 0 when a
 *   status was printed, 2 on usage errors or an unparsable head.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parse.h"
#include "s3/sigv2.h"

static const char *
status_name(enum sigv2_status st)
{
	switch (st) {
	case SIGV2_OK: return "OK";
	case SIGV2_MALFORMED: return "MALFORMED";
	case SIGV2_UNKNOWN_KEY: return "UNKNOWN_KEY";
	case SIGV2_MISMATCH: return "MISMATCH";
	case SIGV2_SKEWED: return "SKEWED";
	case SIGV2_EXPIRED: return "EXPIRED";
	case SIGV2_NO_DATE: return "NO_DATE";
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
	/* One or more heads, back to back: one status line each. */
	static char buf[1 << 24];
	size_t len = fread(buf, 1, sizeof(buf), stdin);
	size_t off = 0;
	static struct http_request req;
	while (off < len) {
		int r = http_parse_request(buf + off, len - off, &req);
		if (r <= 0) {
			printf("PARSE_ERROR %d\n", r);
			return 2;
		}
		off += (size_t)r;
		if (!sigv2_present(&req)) {
			printf("NOT_SIGV2\n");
			continue;
		}
		const char *msg = NULL;
		enum sigv2_status st = sigv2_verify(&req, (int64_t)now,
		    secret_of, argv[1], &msg, NULL);
		printf("%s\t%s\n", status_name(st), msg ? msg : "");
	}
	return 0;
}
