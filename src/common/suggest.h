/*
 * suggest.h: "did you mean ...?" for a misspelt word (a command, an
 * option, a mount option key): the candidate at the smallest edit
 * distance (Damerau-Levenshtein: insert, delete, substitute, swap two
 * neighbours), if it is close enough to be a typo of the word.  Pure
 * functions, safe from any thread.
 *
 *     struct suggest s;
 *     suggest_init(&s, "mout");
 *     for (each command name) suggest_try(&s, name);
 *     const char *best = suggest_best(&s);   // "mount", or NULL
 */
#ifndef FERRY_SUGGEST_H
#define FERRY_SUGGEST_H

#include <stddef.h>

/* Edits that turn a into b (case-sensitive); words longer than 64 bytes
 * are compared only for equality (0 or a large number). */
size_t edit_distance(const char *a, const char *b);

struct suggest {
	const char *word;
	const char *best; /* the closest candidate so far, or NULL */
	size_t dist;
};

void suggest_init(struct suggest *s, const char *word);
/* Considers one candidate (NULL is ignored); the first of equals wins. */
void suggest_try(struct suggest *s, const char *cand);
/* The closest candidate if at most max(1, strlen(word) / 3) edits away
 * (and not the word itself), else NULL. */
const char *suggest_best(const struct suggest *s);

#endif
