/*
 * cluster_parse.h: internal to cluster.c.  The parsers for what the
 * cluster reads back from etcd (keys under "/ferry/<name>/" and the member
 * records under workers/<id>), and the member record writer they must
 * agree with, exposed so that unit tests and the libFuzzer harness
 * (tests/fuzz/fuzz_etcd_reply.c) reach exactly the code the watch and list
 * paths run.  Not part of the cluster API.
 *
 * Pure functions over caller-supplied bytes: no I/O, no state, any thread.
 */
#ifndef FERRY_CLUSTER_PARSE_H
#define FERRY_CLUSTER_PARSE_H

#include <stddef.h>

#include "../common/dbuf.h"
#include "cluster.h"

#define CLUSTER_MOUNT_NAME_MAX 63
#define CLUSTER_MEMBER_JSON_MAX 4096 /* a member record, as we write it */

enum cluster_key { CLUSTER_KEY_OTHER, CLUSTER_KEY_WORKER, CLUSTER_KEY_MOUNT,
	CLUSTER_KEY_RULE, CLUSTER_KEY_LOAD };

/* Classifies key[0..klen) under prefix[0..plen) ("/ferry/<name>/"):
 * workers/<x>, mounts/<x>, rules/<x> or loads/<x> with a non-empty <x>,
 * which *name / *nlen then point at (inside key); anything else is
 * CLUSTER_KEY_OTHER. */
int cluster_key_kind(const char *prefix, size_t plen, const char *key,
    size_t klen, const char **name, size_t *nlen);

/* [a-z0-9][a-z0-9._-]{0,max-1}: cluster names and mount names alike. */
int cluster_name_valid(const char *s, size_t n, size_t max);

/* A member record (JSON, n bytes, not NUL-terminated) into *m; its "id"
 * must be the key's kid[0..kidlen), 32 lowercase hex digits; ctl a
 * non-empty "host:port", s3 one or empty, capacity >= 0, started an
 * integer.  0, or -1 with *m zeroed.  *m is zeroed first, padding too:
 * views are compared with memcmp. */
int cluster_member_parse(const char *json, size_t n, const char *kid,
    size_t kidlen, struct member *m);

/* Appends m as the JSON record cluster_member_parse reads.  0 or -E2BIG. */
int cluster_member_json(const struct member *m, struct dbuf *b);

#endif
