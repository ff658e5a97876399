// FUZZ_SOURCES: src/common/http_reply.c
/*
 * fuzz_http_reply.c: libFuzzer harness for the reply-header helpers that
 * read what under-stores, peers and workers send (http_reply.c).  Splits
 * the input as one header line and checks that every pointer stays inside
 * it; compares ETags and parses Content-Range on the value, checking the
 * documented results (a parsed range has first <= last, totals >= -1).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/http_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                         \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "invariant failed: %s\n", #cond);     \
			abort();                                              \
		}                                                             \
	} while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly size bytes: reads past it are ASan errors. */
	char *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);
	struct http_hdr h;
	if (http_hdr_split(p, size, &h) == 0 && !h.status) {
		REQUIRE(h.name >= p && h.name + h.name_len <= p + size);
		REQUIRE(h.value >= p && h.value + h.value_len <= p + size);
		char out[64];
		if (http_etag_value(h.value, h.value_len, out, sizeof(out)) == 0)
			REQUIRE(http_etag_is(h.value, h.value_len, out));
		int64_t a, b, t;
		if (http_content_range(h.value, h.value_len, &a, &b, &t) == 0) {
			REQUIRE(t >= -1);
			REQUIRE((a == -1 && b == -1) || (a >= 0 && b >= a));
		}
	}
	free(p);
	return 0;
}
