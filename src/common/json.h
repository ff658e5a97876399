/*
 * json.h: a small JSON reader and writer, for the control API and the
 * persisted mount table.
 *
 * Reader: parses a whole document (bounded: at most JSON_MAX_TOKENS tokens,
 * depth 32) into a flat token array, jsmn-style; strings are decoded on
 * demand by json_str().  Writer helpers append to a dbuf with escaping.
 */
#ifndef FERRY_JSON_H
#define FERRY_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "dbuf.h"

#define JSON_MAX_TOKENS 65536

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json_tok {
	enum json_type type;
	int start, end; /* byte span in the document (strings: inside quotes) */
	int size;       /* arrays: elements; objects: key/value pairs */
	int next;       /* index of the next sibling token (after this subtree) */
};

struct json_doc {
	const char *text;
	size_t len;
	struct json_tok *toks;
	int ntoks;
};

/* Parses text[0..len).  0 or -EINVAL (malformed) / -E2BIG (too big). */
int json_parse(struct json_doc *d, const char *text, size_t len);
void json_free(struct json_doc *d);

/* Token index of key in object tok, or -1. */
int json_obj_get(const struct json_doc *d, int tok, const char *key);
/* Token index of the i-th element of array tok, or -1. */
int json_arr_get(const struct json_doc *d, int tok, int i);
/* Decoded string value (malloc'd, caller frees), or NULL if not a string or
 * it holds a NUL.  */
char *json_str(const struct json_doc *d, int tok);
/* Number value; 0 and *ok = 0 if not a number. */
int64_t json_int(const struct json_doc *d, int tok, int *ok);
int json_bool(const struct json_doc *d, int tok); /* 1 for true */

/* Writer: appends a quoted, escaped JSON string. */
int json_put_str(struct dbuf *b, const char *s);
int json_put_strn(struct dbuf *b, const char *s, size_t n);

#endif
