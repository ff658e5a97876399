/*
 * cluster_owner.c: which worker of a ferry cluster holds a block, computed
 * the way the workers compute it (src/cluster/placement.c, linked from
 * build/libferry_core.a), for bench/cluster.sh.
 *
 * usage: cluster_owner MEMBER_ID...  < lines "MOUNT BLOCK PATH"
 * For each input line, prints "PATH BLOCK I0 I1 ...": the indexes (into the
 * argument list) of the members in the block's placement order, owner
 * first.  The member ids are the worker ids of GET /v1/cluster; their order
 * on the command line does not matter (the view is sorted by id here, as a
 * worker's view is).
 *
 * Single-threaded; input lines are bounded (4 KiB), anything malformed is
 * an error with a message, never a crash.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/placement.h"

static int
cmp_member(const void *a, const void *b)
{
	return strcmp(((const struct member *)a)->id, ((const struct member *)b)->id);
}

int
main(int argc, char **argv)
{
	if (argc < 2 || argc - 1 > 64) {
		fprintf(stderr, "usage: cluster_owner MEMBER_ID... (1..64) < 'MOUNT BLOCK PATH' lines\n");
		return 2;
	}
	int n = argc - 1;
	struct cluster_view *v = calloc(1, sizeof(*v) + sizeof(struct member) * (size_t)n);
	int argidx[64];
	if (!v)
		return 1;
	v->n = n;
	for (int i = 0; i < n; i++) {
		if (strlen(argv[i + 1]) > CLUSTER_ID_MAX) {
			fprintf(stderr, "cluster_owner: member id too long: %s\n", argv[i + 1]);
			return 2;
		}
		snprintf(v->m[i].id, sizeof(v->m[i].id), "%s", argv[i + 1]);
	}
	qsort(v->m, (size_t)n, sizeof(v->m[0]), cmp_member);
	/* Sorted position -> the caller's argument index. */
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++)
			if (strcmp(v->m[i].id, argv[j + 1]) == 0)
				argidx[i] = j;
	char line[4096];
	int lineno = 0;
	while (fgets(line, sizeof(line), stdin)) {
		lineno++;
		size_t len = strlen(line);
		if (len && line[len - 1] == '\n')
			line[--len] = 0;
		else if (!feof(stdin)) {
			fprintf(stderr, "cluster_owner: line %d too long\n", lineno);
			return 2;
		}
		if (!len)
			continue;
		char *sp1 = strchr(line, ' ');
		char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
		if (!sp2) {
			fprintf(stderr, "cluster_owner: line %d: want 'MOUNT BLOCK PATH'\n", lineno);
			return 2;
		}
		*sp1 = *sp2 = 0;
		char *end;
		errno = 0;
		long long blk = strtoll(sp1 + 1, &end, 10);
		if (errno || *end || blk < 0) {
			fprintf(stderr, "cluster_owner: line %d: bad block '%s'\n", lineno, sp1 + 1);
			return 2;
		}
		int order[64];
		int k = placement_order(v, placement_key(line, sp2 + 1, blk), order, n);
		printf("%s %lld", sp2 + 1, blk);
		for (int i = 0; i < k; i++)
			printf(" %d", argidx[order[i]]);
		printf("\n");
	}
	free(v);
	return ferror(stdin) ? 1 : 0;
}
