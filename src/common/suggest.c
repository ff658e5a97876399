/*
 * suggest.c: edit distance and "did you mean" (see suggest.h).
 */
#include "suggest.h"

#include <string.h>

#define SUGGEST_MAX_LEN 64

size_t
edit_distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	if (n > SUGGEST_MAX_LEN || m > SUGGEST_MAX_LEN)
		return strcmp(a, b) == 0 ? 0 : (size_t)-1 / 2;
	/* Three rows of the (n+1) x (m+1) table: i-2, i-1 and i. */
	size_t r0[SUGGEST_MAX_LEN + 1], r1[SUGGEST_MAX_LEN + 1],
	    r2[SUGGEST_MAX_LEN + 1];
	size_t *pp = r0, *prev = r1, *cur = r2;
	for (size_t j = 0; j <= m; j++)
		prev[j] = j;
	for (size_t i = 1; i <= n; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= m; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = prev[j] + 1;          /* delete */
			if (cur[j - 1] + 1 < v)
				v = cur[j - 1] + 1;      /* insert */
			if (prev[j - 1] + cost < v)
				v = prev[j - 1] + cost;  /* substitute */
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
				v = pp[j - 2] + 1;       /* swap */
			cur[j] = v;
		}
		size_t *t = pp;
		pp = prev;
		prev = cur;
		cur = t;
	}
	return prev[m];
}

void
suggest_init(struct suggest *s, const char *word)
{
	s->word = word ? word : "";
	s->best = NULL;
	s->dist = (size_t)-1;
}

void
suggest_try(struct suggest *s, const char *cand)
{
	if (!cand || !*cand)
		return;
	size_t d = edit_distance(s->word, cand);
	if (d < s->dist) {
		s->dist = d;
		s->best = cand;
	}
}

const char *
suggest_best(const struct suggest *s)
{
	size_t wl = strlen(s->word);
	size_t max = wl / 3 > 1 ? wl / 3 : 1;
	if (!s->best || s->dist == 0 || s->dist > max)
		return NULL;
	return s->best;
}
