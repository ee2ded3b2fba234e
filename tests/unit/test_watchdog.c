// SPDX-License-Identifier: MIT
/*
 * test_watchdog.c - the watchdog's stages, driven with made-up times.
 *
 * Stamps are set a day into the future, so the real watchdog thread (it
 * starts with the first watch) sees them as fresh and never acts; only
 * the tl_wd_scan() calls below, with their own "now", do.
 */
#define _GNU_SOURCE
#include "check.h"
#include <unistd.h>

#include "../../host/watchdog.c"

#define MS 1000000ull

static int interrupts, stucks;
static uint64_t stuck_ms;

static void on_interrupt(struct tl_wd *wd)
{
	(void)wd;
	interrupts++;
}

static void on_stuck(struct tl_wd *wd, uint64_t since, uint64_t ms)
{
	(void)wd;
	(void)since;
	stucks++;
	stuck_ms = ms;
}

static uint64_t future(void)
{
	return tl_wd_now() + 86400ull * 1000 * MS;
}

static void reset(struct tl_wd *wd, unsigned int timeout_ms)
{
	*wd = (struct tl_wd){ .timeout_ms = timeout_ms,
			      .interrupt = on_interrupt, .stuck = on_stuck };
	interrupts = stucks = 0;
	stuck_ms = 0;
}

static void test_outside_lua_is_never_late(void)
{
	struct tl_wd wd;

	reset(&wd, 100);
	CHECK_EQ(tl_wd_add(&wd), 0);
	CHECK_EQ(tl_wd_scan(future() + 1000 * MS), 0);
	CHECK_EQ(interrupts + stucks, 0);
	tl_wd_del(&wd);
}

static void test_interrupt_then_stuck_once_each(void)
{
	struct tl_wd wd;
	uint64_t t0 = future();

	reset(&wd, 100);
	tl_wd_add(&wd);
	wd.since = t0;
	CHECK_EQ(tl_wd_scan(t0 + 99 * MS), 0);
	CHECK_EQ(tl_wd_scan(t0 + 100 * MS), 1);
	CHECK_EQ(interrupts, 1);
	CHECK_EQ(tl_wd_scan(t0 + 120 * MS), 0);	/* once per entry */
	CHECK_EQ(stucks, 0);
	CHECK_EQ(tl_wd_scan(t0 + 150 * MS), 1);
	CHECK_EQ(stucks, 1);
	CHECK_EQ(stuck_ms, 150);
	CHECK_EQ(tl_wd_scan(t0 + 900 * MS), 0);
	CHECK_EQ(interrupts, 1);
	CHECK_EQ(stucks, 1);
	tl_wd_del(&wd);
}

static void test_a_new_entry_starts_again(void)
{
	struct tl_wd wd;
	uint64_t t0 = future();

	reset(&wd, 100);
	tl_wd_add(&wd);
	wd.since = t0;
	CHECK_EQ(tl_wd_scan(t0 + 100 * MS), 1);	/* interrupted */
	wd.since = t0 + 110 * MS;			/* left, came back */
	CHECK_EQ(tl_wd_scan(t0 + 160 * MS), 0);	/* 50 ms into it */
	CHECK_EQ(stucks, 0);
	CHECK_EQ(tl_wd_scan(t0 + 210 * MS), 1);
	CHECK_EQ(interrupts, 2);
	tl_wd_del(&wd);
}

static void test_nested_entries_keep_the_outer_stamp(void)
{
	struct tl_wd wd;
	uint64_t outer, inner;

	reset(&wd, 100);
	outer = tl_wd_enter(&wd);
	CHECK(outer != 0);
	CHECK_EQ(wd.since, outer);
	wd.since = outer = 12345;		/* as if entered long ago */
	inner = tl_wd_enter(&wd);
	CHECK_EQ(wd.since, 12345);
	CHECK_EQ(inner, 0);			/* nested */
	CHECK(tl_wd_leave(&wd, inner));
	CHECK_EQ(wd.since, 12345);		/* still in the outer call */
	CHECK(!tl_wd_leave(&wd, 99));		/* not the stamp it set */
	CHECK_EQ(wd.since, 12345);
	CHECK(tl_wd_leave(&wd, 12345));
	CHECK_EQ(wd.since, 0);
}

/* The thread and the watchdog race for a stuck entry: exactly one wins. */
static void test_take_or_leave_never_both(void)
{
	struct tl_wd wd;
	uint64_t t;

	reset(&wd, 100);
	t = tl_wd_enter(&wd);
	CHECK(t != 0);
	CHECK(tl_wd_take(&wd, t));		/* the watchdog first */
	CHECK(!tl_wd_leave(&wd, t));		/* the thread must not go on */
	CHECK_EQ(wd.since, TL_WD_TAKEN);
	CHECK_EQ(tl_wd_scan(future()), 0);	/* a taken entry is not watched */

	reset(&wd, 100);
	t = tl_wd_enter(&wd);
	CHECK(tl_wd_leave(&wd, t));		/* the thread first */
	CHECK(!tl_wd_take(&wd, t));		/* nothing left to take */
	CHECK_EQ(wd.since, 0);
}

static void test_off_and_removed_watches_are_ignored(void)
{
	struct tl_wd off, gone;
	uint64_t t0 = future();

	reset(&off, 0);
	CHECK_EQ(tl_wd_add(&off), 0);
	off.since = t0;
	reset(&gone, 100);
	tl_wd_add(&gone);
	gone.since = t0;
	tl_wd_del(&gone);
	CHECK_EQ(tl_wd_scan(t0 + 10000 * MS), 0);
	CHECK_EQ(interrupts + stucks, 0);
}

/* The thread itself, with a real stamp: it acts within a few periods. */
static void test_the_thread_acts_on_a_real_stamp(void)
{
	struct tl_wd wd;
	int i;

	reset(&wd, 20);
	tl_wd_add(&wd);
	tl_wd_enter(&wd);
	for (i = 0; i < 1000 && !__atomic_load_n(&stucks, __ATOMIC_ACQUIRE); i++)
		usleep(10000);
	tl_wd_del(&wd);
	CHECK_EQ(interrupts, 1);
	CHECK_EQ(stucks, 1);
	CHECK(stuck_ms >= 30);
}

int main(void)
{
	RUN(test_outside_lua_is_never_late);
	RUN(test_interrupt_then_stuck_once_each);
	RUN(test_a_new_entry_starts_again);
	RUN(test_nested_entries_keep_the_outer_stamp);
	RUN(test_take_or_leave_never_both);
	RUN(test_off_and_removed_watches_are_ignored);
	RUN(test_the_thread_acts_on_a_real_stamp);
	tl_wd_shutdown();
	return check_done();
}
