/*
 * test_json.c: the JSON reader and writer: valid and invalid documents,
 * escapes and surrogates, depth and token limits, lookups, number
 * conversion, writer escaping and round trips, and a random-input sweep
 * (run under ASan it proves no out-of-bounds reads: every document is
 * parsed from an exactly sized, unterminated heap copy).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "tap.h"

/* Parses an exactly sized heap copy (no NUL after it). */
static int
parse_exact(struct json_doc *d, const char *text, size_t len, char **copy)
{
	*copy = malloc(len ? len : 1);
	memcpy(*copy, text, len);
	return json_parse(d, *copy, len);
}

static int
parse_rc(const char *text)
{
	struct json_doc d;
	char *c;
	int r = parse_exact(&d, text, strlen(text), &c);
	if (r == 0)
		json_free(&d);
	free(c);
	return r;
}

TEST(valid_scalars)
{
	const char *ok[] = {"0", "-0", "1", "-12", "3.25", "1e10", "1E+2",
	    "-1.5e-3", "true", "false", "null", "\"\"", "\"abc\"", " \t\r\n1 ",
	    "[]", "{}", "[ ]", "{ }", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int r = parse_rc(ok[i]);
		if (r != 0)
			fprintf(stderr, "  rejected valid: %s\n", ok[i]);
		CHECK_EQ_INT(r, 0);
	}
}

TEST(invalid_docs)
{
	const char *bad[] = {"", " ", "[1,]", "{\"a\":1,}", "01", "1.", ".5",
	    "-", "+1", "1e", "1e+", "{a:1}", "'a'", "[1 2]", "{\"a\"}",
	    "{\"a\":}", "{\"a\" 1}", "{1:2}", "tru", "nul", "falsey", "NaN",
	    "Infinity", "[1]]", "[1] x", "\"abc", "[", "{", "[1,", "\"\\x\"",
	    "\"\\u12\"", "\"\\u12g4\"", "\"\\ud800\"", "\"\\udc00\"",
	    "\"\\ud800\\u0041\"", "\"\\ud800x\"", "\"a\tb\"", "\"a\nb\"",
	    "\"\xc0\x80\"", "\"\xed\xa0\x80\"", "\"\xf5\x80\x80\x80\"",
	    "\"\xe2\x82\"", "\"\x80\"", "\"\xf0\x8f\xbf\xbf\"", "/*c*/1",
	    "[1,,2]", "\"\\", "-01", "1.e5", "[--1]"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = parse_rc(bad[i]);
		if (r != -EINVAL)
			fprintf(stderr, "  case %zu (%s): %d\n", i, bad[i], r);
		CHECK_EQ_INT(r, -EINVAL);
	}
	/* An embedded NUL byte is a control character. */
	struct json_doc d;
	char *c;
	CHECK_EQ_INT(parse_exact(&d, "\"a\0b\"", 5, &c), -EINVAL);
	free(c);
	CHECK_EQ_INT(parse_exact(&d, "1\0", 2, &c), -EINVAL);
	free(c);
	CHECK_EQ_INT(json_parse(&d, NULL, 0), -EINVAL);
}

TEST(token_layout)
{
	const char *t = "{\"a\":[1,{\"b\":null},\"x\"],\"c\":true}";
	struct json_doc d;
	char *c;
	CHECK_EQ_INT(parse_exact(&d, t, strlen(t), &c), 0);
	/* 0 obj, 1 "a", 2 arr, 3 1, 4 obj, 5 "b", 6 null, 7 "x", 8 "c", 9 true */
	CHECK_EQ_INT(d.ntoks, 10);
	CHECK_EQ_INT(d.toks[0].type, JSON_OBJECT);
	CHECK_EQ_INT(d.toks[0].size, 2);
	CHECK_EQ_INT(d.toks[0].next, 10);
	CHECK_EQ_INT(d.toks[2].type, JSON_ARRAY);
	CHECK_EQ_INT(d.toks[2].size, 3);
	CHECK_EQ_INT(d.toks[2].next, 8);
	CHECK_EQ_INT(d.toks[4].next, 7);
	CHECK_EQ_INT(d.toks[1].type, JSON_STRING);
	CHECK_EQ_INT(d.toks[1].start, 2);
	CHECK_EQ_INT(d.toks[1].end, 3);
	CHECK_EQ_INT(d.toks[0].start, 0);
	CHECK_EQ_INT(d.toks[0].end, (int)strlen(t));
	json_free(&d);
	free(c);
}

TEST(escapes)
{
	const char *t = "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"caf\\u00e9 \\u20AC\","
	    " \"\\ud83d\\ude00\", \"a\\u0000b\", \"\xe2\x82\xac raw\", 5]";
	struct json_doc d;
	char *c;
	CHECK_EQ_INT(parse_exact(&d, t, strlen(t), &c), 0);
	char *s0 = json_str(&d, json_arr_get(&d, 0, 0));
	CHECK_EQ_STR(s0, "\"\\/\b\f\n\r\t");
	char *s1 = json_str(&d, json_arr_get(&d, 0, 1));
	CHECK_EQ_STR(s1, "caf\xc3\xa9 \xe2\x82\xac");
	char *s2 = json_str(&d, json_arr_get(&d, 0, 2));
	CHECK_EQ_STR(s2, "\xf0\x9f\x98\x80");
	/* A decoded NUL is refused. */
	CHECK(json_str(&d, json_arr_get(&d, 0, 3)) == NULL);
	char *s4 = json_str(&d, json_arr_get(&d, 0, 4));
	CHECK_EQ_STR(s4, "\xe2\x82\xac raw");
	/* Not a string. */
	CHECK(json_str(&d, json_arr_get(&d, 0, 5)) == NULL);
	CHECK(json_str(&d, 0) == NULL);
	CHECK(json_str(&d, 99) == NULL);
	CHECK(json_str(&d, -1) == NULL);
	free(s0);
	free(s1);
	free(s2);
	free(s4);
	json_free(&d);
	free(c);
}

static int
nested(int depth)
{
	char *s = malloc((size_t)depth * 2 + 1);
	for (int i = 0; i < depth; i++) {
		s[i] = '[';
		s[depth + i] = ']';
	}
	s[depth * 2] = 0;
	int r = parse_rc(s);
	free(s);
	return r;
}

TEST(depth_limit)
{
	CHECK_EQ_INT(nested(32), 0);
	CHECK_EQ_INT(nested(33), -E2BIG);
	CHECK_EQ_INT(nested(10000), -E2BIG);
	CHECK_EQ_INT(parse_rc("{\"a\":{\"a\":{\"a\":{\"a\":1}}}}"), 0);
}

static int
array_of(int n)
{
	/* "[0,0,...,0]" or "[]" */
	size_t len = n ? (size_t)n * 2 + 1 : 2;
	char *s = malloc(len + 1);
	s[0] = '[';
	for (int i = 0; i < n; i++) {
		s[1 + i * 2] = '0';
		s[2 + i * 2] = ',';
	}
	s[len - 1] = ']';
	s[len] = 0;
	int r = parse_rc(s);
	free(s);
	return r;
}

TEST(token_limit)
{
	/* The array itself plus its elements. */
	CHECK_EQ_INT(array_of(JSON_MAX_TOKENS - 1), 0);
	CHECK_EQ_INT(array_of(JSON_MAX_TOKENS), -E2BIG);
	CHECK_EQ_INT(array_of(0), 0);
}

TEST(lookups)
{
	const char *t = "{\"size\":123,\"neg\":-9223372036854775808,"
	    "\"max\":9223372036854775807,\"big\":9223372036854775808,"
	    "\"exp\":1e3,\"frac\":1.5,\"fint\":2.0,\"s\":\"x\","
	    "\"k\\u0065y\":7,\"t\":true,\"f\":false,\"n\":null,"
	    "\"o\":{\"inner\":[10,20,30]},\"huge\":1e400,\"size\":5}";
	struct json_doc d;
	char *c;
	int ok;
	CHECK_EQ_INT(parse_exact(&d, t, strlen(t), &c), 0);
	CHECK_EQ_INT(json_int(&d, json_obj_get(&d, 0, "size"), &ok), 123);
	CHECK_EQ_INT(ok, 1);
	CHECK(json_int(&d, json_obj_get(&d, 0, "neg"), &ok) == INT64_MIN);
	CHECK_EQ_INT(ok, 1);
	CHECK(json_int(&d, json_obj_get(&d, 0, "max"), &ok) == INT64_MAX);
	CHECK_EQ_INT(ok, 1);
	json_int(&d, json_obj_get(&d, 0, "big"), &ok);
	CHECK_EQ_INT(ok, 0);
	CHECK_EQ_INT(json_int(&d, json_obj_get(&d, 0, "exp"), &ok), 1000);
	CHECK_EQ_INT(ok, 1);
	json_int(&d, json_obj_get(&d, 0, "frac"), &ok);
	CHECK_EQ_INT(ok, 0);
	CHECK_EQ_INT(json_int(&d, json_obj_get(&d, 0, "fint"), &ok), 2);
	CHECK_EQ_INT(ok, 1);
	json_int(&d, json_obj_get(&d, 0, "huge"), &ok);
	CHECK_EQ_INT(ok, 0);
	CHECK_EQ_INT(json_int(&d, json_obj_get(&d, 0, "s"), &ok), 0);
	CHECK_EQ_INT(ok, 0);
	CHECK_EQ_INT(json_int(&d, json_obj_get(&d, 0, "missing"), NULL), 0);
	/* A key spelled with an escape matches its decoded form. */
	CHECK_EQ_INT(json_int(&d, json_obj_get(&d, 0, "key"), &ok), 7);
	CHECK_EQ_INT(json_obj_get(&d, 0, "k\\u0065y"), -1);
	CHECK_EQ_INT(json_bool(&d, json_obj_get(&d, 0, "t")), 1);
	CHECK_EQ_INT(json_bool(&d, json_obj_get(&d, 0, "f")), 0);
	CHECK_EQ_INT(json_bool(&d, json_obj_get(&d, 0, "n")), 0);
	int n = json_obj_get(&d, 0, "n");
	CHECK(n > 0 && d.toks[n].type == JSON_NULL);
	int o = json_obj_get(&d, 0, "o");
	int arr = json_obj_get(&d, o, "inner");
	CHECK_EQ_INT(json_int(&d, json_arr_get(&d, arr, 0), NULL), 10);
	CHECK_EQ_INT(json_int(&d, json_arr_get(&d, arr, 2), NULL), 30);
	CHECK_EQ_INT(json_arr_get(&d, arr, 3), -1);
	CHECK_EQ_INT(json_arr_get(&d, arr, -1), -1);
	CHECK_EQ_INT(json_arr_get(&d, 0, 0), -1);   /* not an array */
	CHECK_EQ_INT(json_obj_get(&d, arr, "x"), -1); /* not an object */
	CHECK_EQ_INT(json_obj_get(&d, 9999, "x"), -1);
	/* Keys of nested objects are not found at the top level. */
	CHECK_EQ_INT(json_obj_get(&d, 0, "inner"), -1);
	/* Duplicate keys: the first wins. */
	CHECK_EQ_INT(json_int(&d, json_obj_get(&d, 0, "size"), NULL), 123);
	json_free(&d);
	CHECK(d.toks == NULL && d.ntoks == 0);
	free(c);
}

static char *
put(const char *s, size_t n)
{
	struct dbuf b;
	dbuf_init(&b, 1 << 20);
	CHECK_EQ_INT(json_put_strn(&b, s, n), 0);
	return dbuf_take(&b);
}

TEST(writer)
{
	const char *in = "a\"b\\c\n\t\x01/\xc3\xa9";
	char *w = put(in, strlen(in));
	CHECK_EQ_STR(w, "\"a\\\"b\\\\c\\n\\t\\u0001/\xc3\xa9\"");
	free(w);
	w = put("", 0);
	CHECK_EQ_STR(w, "\"\"");
	free(w);
	/* Invalid UTF-8 becomes U+FFFD so the output always parses. */
	w = put("x\xff\xc0\x80y", 5);
	CHECK_EQ_STR(w, "\"x\\ufffd\\ufffd\\ufffdy\"");
	CHECK_EQ_INT(parse_rc(w), 0);
	free(w);
	w = put("n\0ul", 4);
	CHECK_EQ_STR(w, "\"n\\u0000ul\"");
	free(w);

	struct dbuf b;
	dbuf_init(&b, 10);
	CHECK_EQ_INT(dbuf_adds(&b, "ab"), 0);
	CHECK_EQ_INT(json_put_str(&b, "0123456789"), -E2BIG);
	CHECK_EQ_INT(b.len, 2);
	CHECK_EQ_STR(b.p, "ab");
	/* The failure is sticky (dbuf.h): nothing is appended after it. */
	CHECK_EQ_INT(json_put_str(&b, "xyz"), -E2BIG);
	CHECK_EQ_STR(b.p, "ab");
	dbuf_free(&b);
}

TEST(round_trip)
{
	/* Every single-byte and a set of multi-byte strings survive
	 * put -> parse -> json_str. */
	char s[300];
	size_t n = 0;
	for (int c = 1; c < 128; c++)
		s[n++] = (char)c;
	const char *mb = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf";
	memcpy(s + n, mb, strlen(mb));
	n += strlen(mb);
	s[n] = 0;
	char *w = put(s, n);
	struct json_doc d;
	CHECK_EQ_INT(json_parse(&d, w, strlen(w)), 0);
	char *back = json_str(&d, 0);
	CHECK_EQ_STR(back, s);
	free(back);
	json_free(&d);
	free(w);
}

/* xorshift, so runs are reproducible. */
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void
walk_all(const struct json_doc *d)
{
	for (int i = 0; i < d->ntoks; i++) {
		CHECK(d->toks[i].start >= 0 && d->toks[i].end <= (int)d->len);
		CHECK(d->toks[i].next > i && d->toks[i].next <= d->ntoks);
		free(json_str(d, i));
		json_int(d, i, NULL);
		json_obj_get(d, i, "a");
		json_arr_get(d, i, 1);
	}
}

TEST(random_inputs)
{
	const char *seed = "{\"a\":[1,-2.5e3,{\"b\":\"x\\u00e9\\ud83d\\ude00\"}],"
	    "\"c\":true,\"d\":null,\"e\":\"\xc3\xa9\"}";
	size_t sl = strlen(seed);
	const char alpha[] = "{}[]\",:\\u0123456789abcdefABCDEF-+.eE tnrfl\xc3\xa9\xed\xf0";
	int parsed = 0;
	/* Every prefix of a valid document. */
	for (size_t n = 0; n <= sl; n++) {
		struct json_doc d;
		char *c;
		if (parse_exact(&d, seed, n, &c) == 0) {
			parsed++;
			walk_all(&d);
			json_free(&d);
		}
		free(c);
	}
	CHECK_EQ_INT(parsed, 1); /* only the whole document */
	/* Mutations. */
	for (int it = 0; it < 200000; it++) {
		char buf[128];
		size_t n = sl;
		memcpy(buf, seed, n);
		int muts = 1 + (int)(rnd() % 4);
		for (int m = 0; m < muts; m++) {
			size_t at = rnd() % n;
			switch (rnd() % 3) {
			case 0:
				buf[at] = alpha[rnd() % (sizeof(alpha) - 1)];
				break;
			case 1:
				buf[at] = (char)rnd();
				break;
			default:
				if (n > 1) {
					memmove(buf + at, buf + at + 1, n - at - 1);
					n--;
				}
			}
		}
		struct json_doc d;
		char *c;
		if (parse_exact(&d, buf, n, &c) == 0) {
			walk_all(&d);
			json_free(&d);
		}
		free(c);
	}
}

int
main(void)
{
	RUN(valid_scalars);
	RUN(invalid_docs);
	RUN(token_layout);
	RUN(escapes);
	RUN(depth_limit);
	RUN(token_limit);
	RUN(lookups);
	RUN(writer);
	RUN(round_trip);
	RUN(random_inputs);
	TAP_DONE();
}
