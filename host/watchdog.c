// SPDX-License-Identifier: MIT
/*
 * watchdog.c - the thread that looks at the workers' "in Lua since" stamps.
 *
 * It only reads stamps and calls back; what to do about a stuck worker is
 * the worker's business (worker_wd.c).  The list lock is recursive because
 * a stuck() callback starts a fresh worker, which adds a watch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "watchdog.h"

static pthread_mutex_t wd_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static struct tl_wd *wd_list;
static pthread_t wd_thread;
static bool wd_running, wd_stop;

uint64_t tl_wd_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A stamp of 0 (outside Lua) must still mean "in Lua" to nobody. */
static int look(struct tl_wd *wd, uint64_t now)
{
	uint64_t since = __atomic_load_n(&wd->since, __ATOMIC_ACQUIRE);
	uint64_t limit = (uint64_t)wd->timeout_ms * 1000000ull, age;

	if (!since || since == TL_WD_TAKEN || !limit)
		return 0;
	if (since != wd->seen) {	/* a new entry into Lua */
		wd->seen = since;
		wd->stage = 0;
	}
	age = now > since ? now - since : 0;
	if (wd->stage == 0 && age >= limit) {
		wd->stage = 1;
		if (wd->interrupt)
			wd->interrupt(wd);
		return 1;
	}
	if (wd->stage == 1 && age >= limit + limit / 2) {
		wd->stage = 2;
		if (wd->stuck)
			wd->stuck(wd, since, age / 1000000ull);
		return 1;
	}
	return 0;
}

int tl_wd_scan(uint64_t now)
{
	struct tl_wd *wd;
	int n = 0;

	pthread_mutex_lock(&wd_lock);
	for (wd = wd_list; wd; wd = wd->next)
		n += look(wd, now);
	pthread_mutex_unlock(&wd_lock);
	return n;
}

/* Look often enough to act within an eighth of the shortest timeout. */
static unsigned int period_ms(void)
{
	unsigned int p = 1000;
	struct tl_wd *wd;

	for (wd = wd_list; wd; wd = wd->next)
		if (wd->timeout_ms && wd->timeout_ms / 8 < p)
			p = wd->timeout_ms / 8;
	return p < 5 ? 5 : p;
}

static void *wd_main(void *arg)
{
	struct timespec ts;
	unsigned int p;

	(void)arg;
	pthread_mutex_lock(&wd_lock);
	while (!wd_stop) {
		p = period_ms();
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)(p % 1000) * 1000000l;
		ts.tv_sec += p / 1000 + ts.tv_nsec / 1000000000l;
		ts.tv_nsec %= 1000000000l;
		pthread_cond_timedwait(&wd_cond, &wd_lock, &ts);
		if (!wd_stop)
			tl_wd_scan(tl_wd_now());
	}
	pthread_mutex_unlock(&wd_lock);
	return NULL;
}

int tl_wd_add(struct tl_wd *wd)
{
	pthread_condattr_t ca;
	int rc = 0;

	if (!wd->timeout_ms)
		return 0;
	pthread_mutex_lock(&wd_lock);
	wd->seen = 0;
	wd->stage = 0;
	wd->next = wd_list;
	wd_list = wd;
	if (!wd_running) {
		/* Timed waits on the monotonic clock: date changes are no stall. */
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_destroy(&wd_cond);
		pthread_cond_init(&wd_cond, &ca);
		pthread_condattr_destroy(&ca);
		wd_stop = false;
		rc = -pthread_create(&wd_thread, NULL, wd_main, NULL);
		wd_running = !rc;
	}
	pthread_cond_signal(&wd_cond);	/* the period may be shorter now */
	pthread_mutex_unlock(&wd_lock);
	return rc;
}

void tl_wd_del(struct tl_wd *wd)
{
	struct tl_wd **pp;

	pthread_mutex_lock(&wd_lock);
	for (pp = &wd_list; *pp; pp = &(*pp)->next) {
		if (*pp == wd) {
			*pp = wd->next;
			break;
		}
	}
	pthread_mutex_unlock(&wd_lock);
}

void tl_wd_shutdown(void)
{
	pthread_mutex_lock(&wd_lock);
	if (!wd_running) {
		pthread_mutex_unlock(&wd_lock);
		return;
	}
	wd_stop = true;
	pthread_cond_signal(&wd_cond);
	pthread_mutex_unlock(&wd_lock);
	pthread_join(wd_thread, NULL);
	wd_running = false;
}
