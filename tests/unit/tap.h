/*
 * tap.h: a minimal unit-test harness.  Each test file defines tests with
 * TEST(name) and lists them in main() via RUN(name); CHECK() records a
 * failure with file and line and continues.  The runner prints
 * "N passed, N failed" and exits non-zero on any failure.
 */
#ifndef FERRY_TAP_H
#define FERRY_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_failed_checks;
static int tap_passed, tap_failed;

#define CHECK(cond)                                                           \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, "  FAIL %s:%d: %s\n", __FILE__,       \
			    __LINE__, #cond);                                 \
			tap_failed_checks++;                                  \
		}                                                             \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                    \
	do {                                                                  \
		long long _a = (long long)(a), _b = (long long)(b);           \
		if (_a != _b) {                                               \
			fprintf(stderr, "  FAIL %s:%d: %s == %s (%lld != %lld)\n", \
			    __FILE__, __LINE__, #a, #b, _a, _b);              \
			tap_failed_checks++;                                  \
		}                                                             \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                    \
	do {                                                                  \
		const char *_a = (a), *_b = (b);                              \
		if (!_a || !_b || strcmp(_a, _b) != 0) {                      \
			fprintf(stderr, "  FAIL %s:%d: %s == %s (\"%s\" != \"%s\")\n", \
			    __FILE__, __LINE__, #a, #b, _a ? _a : "(null)",   \
			    _b ? _b : "(null)");                              \
			tap_failed_checks++;                                  \
		}                                                             \
	} while (0)

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                             \
	do {                                                                  \
		int _before = tap_failed_checks;                              \
		test_##name();                                                \
		if (tap_failed_checks == _before) {                           \
			tap_passed++;                                         \
			printf("ok   %s\n", #name);                           \
		} else {                                                      \
			tap_failed++;                                         \
			printf("FAIL %s\n", #name);                           \
		}                                                             \
	} while (0)

#define TAP_DONE()                                                            \
	do {                                                                  \
		printf("%d passed, %d failed\n", tap_passed, tap_failed);     \
		return tap_failed ? 1 : 0;                                    \
	} while (0)

#endif
