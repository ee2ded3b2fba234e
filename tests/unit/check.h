/* SPDX-License-Identifier: MIT */
/*
 * check.h - the smallest test harness that does the job: CHECK() records a
 * failure with file:line and goes on; check_done() prints the closing line
 * "N passed, N failed" and gives the exit status ctest reads.
 */
#ifndef TL_CHECK_H
#define TL_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_passed, check_failed;

#define CHECK(cond)							\
	do {								\
		if (cond) {						\
			check_passed++;					\
		} else {						\
			if (check_failed++ < 20)			\
				fprintf(stderr, "%s:%d: check failed: %s\n", \
					__FILE__, __LINE__, #cond);	\
		}							\
	} while (0)

#define CHECK_EQ(a, b)							\
	do {								\
		long long _a = (long long)(a), _b = (long long)(b);	\
		if (_a == _b) {						\
			check_passed++;					\
		} else {						\
			if (check_failed++ < 20)			\
				fprintf(stderr, "%s:%d: %s == %s: %lld != %lld\n", \
					__FILE__, __LINE__, #a, #b, _a, _b); \
		}							\
	} while (0)

#define RUN(test)							\
	do {								\
		int _f = check_failed;					\
		test();							\
		printf("%-40s %s\n", #test,				\
		       check_failed == _f ? "ok" : "FAILED");		\
	} while (0)

static inline int check_done(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif /* TL_CHECK_H */
