// FUZZ_SOURCES: src/worker/localfd_wire.c
/*
 * fuzz_lfd_answer.c: libFuzzer harness for the parser of local-socket
 * answers (localfd_wire.c), what `ferry fuse` believes about the page
 * files a worker hands it.  The first input byte is the number of
 * descriptors received with the answer; the rest is the answer.  Checks
 * the documented results: a short input asks for more than it has, and an
 * accepted answer's segments are held by their chunks, their CRC counts
 * add up to the table's, and their lengths to covered.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/localfd.h"

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
	if (size < 1)
		return 0;
	int nfd = data[0] % (LFD_MAX_SEGS + 2);
	size--;
	/* A copy of exactly size bytes: reads past it are ASan errors. */
	unsigned char *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data + 1, size);
	struct lfd_ans a;
	struct lfd_seg segs[LFD_MAX_SEGS];
	uint32_t crcs[LFD_MAX_CRCS];
	ssize_t r = lfd_answer_parse(p, size, nfd, &a, segs, crcs);
	if (r > 0)
		REQUIRE((size_t)r > size);
	if (r == 0) {
		REQUIRE(a.magic == LFD_MAGIC_ANS && a.nseg <= LFD_MAX_SEGS &&
		    a.ncrc <= LFD_MAX_CRCS);
		REQUIRE(a.status != LFD_OK || (int)a.nseg == nfd);
		int64_t sum = 0;
		uint32_t nc = 0;
		for (uint32_t i = 0; i < a.nseg; i++) {
			const struct lfd_seg *s = &segs[i];
			REQUIRE(s->len > 0 && s->chunk_off <= s->file_off &&
			    s->file_off + s->len <= s->chunk_end);
			REQUIRE(s->chunk_end - s->chunk_off <= (int64_t)s->ncrc * a.chunk);
			sum += s->len;
			nc += s->ncrc;
		}
		REQUIRE(sum == a.covered && nc == a.ncrc);
	}
	free(p);
	return 0;
}
