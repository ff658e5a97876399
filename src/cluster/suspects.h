/*
 * suspects.h: the peers that failed lately, so that a client skips them for
 * a while instead of paying a failed request on every read.  Used by the
 * worker's block router (peers by id) and by libferry (workers by URL).
 * A small fixed table: when it is full, a new entry takes the slot of one
 * that has expired, else it is not recorded (the peer is simply tried).
 *
 * Thread-safety: one mutex per table, a leaf, never held across I/O.
 */
#ifndef FERRY_SUSPECTS_H
#define FERRY_SUSPECTS_H

#include <pthread.h>
#include <stdint.h>

#define SUSPECTS_MAX 64

struct suspects {
	pthread_mutex_t mu;
	struct {
		uint64_t h; /* hash of the name */
		int64_t until_ms;
	} e[SUSPECTS_MAX];
};

void suspects_init(struct suspects *s);
void suspects_destroy(struct suspects *s);
/* 1 if name failed less than its period ago. */
int suspects_has(struct suspects *s, const char *name);
/* Marks name failed for ms milliseconds from now; ms 0 clears it. */
void suspects_set(struct suspects *s, const char *name, int64_t ms);

#endif
