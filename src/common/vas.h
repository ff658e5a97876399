/*
 * vas.h: "verify assumption" macros, after varnish's vas.h.
 *
 * VAS_ASSERT is for conditions that cannot happen unless the program itself
 * is wrong (a broken invariant, a NULL where the caller promised none).  It
 * aborts with file and line.  Errors that input, peers or the environment can
 * cause (a malformed request, a dead under-store, ENOSPC) are never asserted:
 * they are returned as negative errno values and handled.
 */
#ifndef FERRY_VAS_H
#define FERRY_VAS_H

#include <stdio.h>
#include <stdlib.h>

#define VAS_ASSERT(cond)                                                      \
	do {                                                                  \
		if (__builtin_expect(!(cond), 0))                             \
			vas_fail(__FILE__, __LINE__, __func__, #cond);        \
	} while (0)

#define VAS_FAIL(msg) vas_fail(__FILE__, __LINE__, __func__, (msg))

__attribute__((noreturn, cold)) static inline void
vas_fail(const char *file, int line, const char *func, const char *what)
{
	fprintf(stderr, "ferry: assertion failed at %s:%d (%s): %s\n", file,
	    line, func, what);
	abort();
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED(x) ((void)(x))

#endif
