/*
 * suspects.c: the table of peers that failed lately (suspects.h).  Any
 * thread; s->mu guards the entries and is held only for a scan of them.
 */
#include "suspects.h"

#include <string.h>

#include "../common/util.h"

void
suspects_init(struct suspects *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
}

void
suspects_destroy(struct suspects *s)
{
	pthread_mutex_destroy(&s->mu);
}

static uint64_t
name_hash(const char *name)
{
	/* 0 marks a free slot, so no name hashes to it. */
	uint64_t h = hash64(name, strlen(name), 0x73757370ULL);
	return h ? h : 1;
}

int
suspects_has(struct suspects *s, const char *name)
{
	uint64_t h = name_hash(name);
	int64_t now = now_ms();
	int r = 0;
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < SUSPECTS_MAX && !r; i++)
		r = s->e[i].h == h && s->e[i].until_ms > now;
	pthread_mutex_unlock(&s->mu);
	return r;
}

void
suspects_set(struct suspects *s, const char *name, int64_t ms)
{
	uint64_t h = name_hash(name);
	int64_t now = now_ms();
	pthread_mutex_lock(&s->mu);
	int slot = -1;
	for (int i = 0; i < SUSPECTS_MAX; i++) {
		if (s->e[i].h == h) {
			slot = i;
			break;
		}
		if (slot < 0 && s->e[i].until_ms <= now)
			slot = i; /* free or expired */
	}
	if (slot >= 0 && (ms > 0 || s->e[slot].h == h)) {
		s->e[slot].h = h;
		s->e[slot].until_ms = ms > 0 ? now + ms : 0;
	}
	pthread_mutex_unlock(&s->mu);
}
