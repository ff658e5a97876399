/*
 * localfd_wire.c: the parser of local-socket answers (see localfd.h),
 * shared by the worker's tests and its client (src/fuse/localfd_client.c)
 * and fuzzed (tests/fuzz/fuzz_lfd_answer.c).  Pure: no I/O, no state, no
 * allocation; any thread.  Invariant: a 0 return means every segment's
 * chunks hold its bytes and the CRCs it is given are exactly its chunks',
 * so a client that checks them checks every byte it hands out.
 */
#include <string.h>
#include <sys/types.h>

#include "localfd.h"

ssize_t
lfd_answer_parse(const void *msg, size_t n, int nfd, struct lfd_ans *a,
    struct lfd_seg *segs, uint32_t *crcs)
{
	if (n < sizeof(*a))
		return (ssize_t)sizeof(*a);
	memcpy(a, msg, sizeof(*a));
	if (a->magic != LFD_MAGIC_ANS || a->nseg > LFD_MAX_SEGS ||
	    a->ncrc > LFD_MAX_CRCS)
		return -1;
	if (a->status == LFD_OK ? (int)a->nseg != nfd :
	    (nfd != 0 || a->nseg != 0 || a->ncrc != 0))
		return -1;
	size_t want = sizeof(*a) + a->nseg * sizeof(*segs) + a->ncrc * sizeof(*crcs);
	if (n < want)
		return (ssize_t)want;
	if (n > want)
		return -1; /* more than one answer: out of step */
	const char *p = msg;
	memcpy(segs, p + sizeof(*a), a->nseg * sizeof(*segs));
	memcpy(crcs, p + sizeof(*a) + a->nseg * sizeof(*segs), a->ncrc * sizeof(*crcs));
	if (a->nseg && (a->chunk == 0 || a->chunk > LFD_CHUNK_MAX))
		return -1;
	const int64_t C = a->chunk;
	int64_t sum = 0;
	uint64_t ncrc = 0;
	for (uint32_t i = 0; i < a->nseg; i++) {
		const struct lfd_seg *s = &segs[i];
		if (s->len <= 0 || s->len > (int64_t)1 << 40 || s->file_off < 0 ||
		    s->file_off > (int64_t)1 << 40 || s->chunk_off < 0 ||
		    s->chunk_off > s->file_off || s->file_off - s->chunk_off >= C ||
		    s->chunk_end < s->file_off + s->len || s->ncrc == 0 ||
		    s->ncrc > LFD_MAX_CRCS)
			return -1;
		int64_t span = s->chunk_end - s->chunk_off;
		if (span > (int64_t)s->ncrc * C || span <= ((int64_t)s->ncrc - 1) * C)
			return -1;
		sum += s->len;
		ncrc += s->ncrc;
	}
	if (ncrc != a->ncrc || sum != a->covered)
		return -1;
	return 0;
}
