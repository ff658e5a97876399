/*
 * fuzz_policy_record.c: libFuzzer harness for the pin and TTL rule records
 * a worker reads back from etcd (src/worker/policy.c:
 * policy_apply_record, which parses a record and applies it).
 *
 * Input: the record's JSON, applied under its own name (the name of the
 * (ident, path) it claims, so that a well-formed one is taken) and, when
 * byte 0 is odd, under a fixed other name (which must be refused).
 *
 * Invariants: a record is taken (0) or refused (-EINVAL; -ENOSPC once the
 * rules are full); one taken is in force (the path it names is pinned iff
 * it pins) and a delete under its name removes it; nothing else.
 */
// FUZZ_SOURCES: src/worker/policy.c src/common/util.c src/common/dbuf.c src/common/json.c src/common/log.c
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "worker/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* policy.c calls the page store only once attached: never here. */
void
pagestore_set_classifier(struct pagestore *ps, pagestore_classify_fn fn, void *arg)
{
	(void)ps;
	(void)fn;
	(void)arg;
	abort();
}

int64_t
pagestore_reclassify(struct pagestore *ps, uint64_t group, const char *prefix)
{
	(void)ps;
	(void)group;
	(void)prefix;
	abort();
}

int64_t
pagestore_expire(struct pagestore *ps, uint32_t now)
{
	(void)ps;
	(void)now;
	abort();
}

static struct policy *pol;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pol) {
		char path[64];
		snprintf(path, sizeof(path), "/dev/shm/ferry-fuzz-policy-%d.json", (int)getpid());
		unlink(path);
		char *err = NULL;
		pol = policy_open(path, &err);
		if (!pol)
			abort();
		policy_set_self(pol, "0123456789abcdef0123456789abcdef");
	}
	if (size < 1)
		return 0;
	size_t n = size - 1;
	char *j = malloc(n ? n : 1);
	if (!j)
		return 0;
	memcpy(j, data + 1, n);
	if (data[0] & 1) {
		int r = policy_apply_record(pol, "ffffffffffffffff", j, n);
		if (r != -EINVAL && r != -ENOSPC && r != 0)
			abort();
	}
	/* The name the record claims, if it claims one. */
	struct json_doc d;
	if (json_parse(&d, j, n) == 0) {
		char *id = json_str(&d, json_obj_get(&d, 0, "ident"));
		char *path = json_str(&d, json_obj_get(&d, 0, "path"));
		int pt = json_obj_get(&d, 0, "pin");
		int pins = pt >= 0 && json_bool(&d, pt) == 1;
		uint64_t ident = 0;
		if (id && path && sscanf(id, "%" SCNx64, &ident) == 1) {
			char name[17];
			policy_record_name(ident, path, name);
			int r = policy_apply_record(pol, name, j, n);
			if (r != 0 && r != -EINVAL && r != -ENOSPC && r != -EIO)
				abort();
			if (r == 0 && policy_is_pinned(pol, ident, path) != pins)
				abort();
			if (policy_apply_record(pol, name, NULL, 0) != 0)
				abort();
			if (policy_is_pinned(pol, ident, path) && r == 0)
				abort(); /* gone with its record (no other rule covers it) */
		}
		free(id);
		free(path);
		json_free(&d);
	}
	free(j);
	return 0;
}
