/* SPDX-License-Identifier: MIT */
/*
 * watchdog.h - notice a thread that stays in Lua too long.
 *
 * A worker stamps the time it enters Lua and clears it when Lua returns:
 * one store each way, per batch, not per command.  One watchdog thread per
 * process looks at every stamp a few times per timeout.  A stamp older
 * than the timeout gets interrupt() (the worker arms a Lua hook, which
 * stops interpreted code); older than 1.5 timeouts, stuck() (compiled code
 * or a blocking C call: the worker is given up on).  Each runs once per
 * entry into Lua.
 */
#ifndef TL_WATCHDOG_H
#define TL_WATCHDOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct tl_wd {
	uint64_t since;			/* ns when Lua was entered, 0 outside; atomic */
	pthread_t thread;		/* the thread in Lua */
	unsigned int timeout_ms;	/* 0: not watched */

	/* Both run on the watchdog thread, never under the worker's lock.
	 * stuck() gets the entry's stamp, for tl_wd_take(). */
	void (*interrupt)(struct tl_wd *wd);
	void (*stuck)(struct tl_wd *wd, uint64_t since, uint64_t ms);

	/* The watchdog's own bookkeeping. */
	uint64_t seen;			/* the entry acted on */
	int stage;			/* 0, 1 interrupted, 2 stuck */
	struct tl_wd *next;
};

/* CLOCK_MONOTONIC_COARSE in ns: a few ns to read, good to a few ms. */
uint64_t tl_wd_now(void);

/* The stamp of an entry the watchdog took away from its thread. */
#define TL_WD_TAKEN UINT64_MAX

/*
 * Enter Lua; returns what to give tl_wd_leave(): the stamp, or 0 for an
 * entry nested in another one (the outer stamp stays).
 */
static inline uint64_t tl_wd_enter(struct tl_wd *wd)
{
	uint64_t t;

	if (__atomic_load_n(&wd->since, __ATOMIC_RELAXED))
		return 0;
	wd->thread = pthread_self();
	t = tl_wd_now();
	__atomic_store_n(&wd->since, t, __ATOMIC_RELEASE);
	return t;
}

/*
 * Leave Lua.  False: the watchdog took this entry (tl_wd_take) while the
 * thread was in it, and everything the thread would touch next belongs to
 * someone else now.  The stamp is one compare-and-swap, so the thread and
 * the watchdog cannot both think they won.
 */
static inline bool tl_wd_leave(struct tl_wd *wd, uint64_t t)
{
	if (!t)
		return true;
	return __atomic_compare_exchange_n(&wd->since, &t, 0, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* Take the entry stamped `since` from its thread, if it is still in it. */
static inline bool tl_wd_take(struct tl_wd *wd, uint64_t since)
{
	return __atomic_compare_exchange_n(&wd->since, &since, TL_WD_TAKEN,
					   false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}

/* Watch wd (timeout_ms > 0) from now on; starts the thread on first use. */
int tl_wd_add(struct tl_wd *wd);
void tl_wd_del(struct tl_wd *wd);

/* One look at every watch as if the time were now (the thread's work;
 * tests call it with made-up times).  Returns the callbacks it ran. */
int tl_wd_scan(uint64_t now);

/* Stop the thread (tests; the daemon lets exit() do it). */
void tl_wd_shutdown(void);

#endif /* TL_WATCHDOG_H */
