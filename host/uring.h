/* SPDX-License-Identifier: MIT */
/*
 * uring.h - asynchronous file I/O for the fast path, one io_uring per
 * worker.
 *
 * The fast path queues a READ, WRITE or SYNCHRONIZE CACHE here instead of
 * doing it in the worker thread, so one device keeps many commands in
 * flight and a slow command does not hold up the others.  Submissions
 * are batched (one io_uring_enter per serviced ring); completions arrive on
 * an eventfd the worker's loop watches, and are published to the kernel in
 * one batch per device.
 *
 * Where io_uring is missing (no liburing at build time, an old kernel,
 * io_uring_disabled, a seccomp filter), tl_uring_new() says why and the
 * fast path does its I/O synchronously, as before.
 */
#ifndef TL_URING_H
#define TL_URING_H

#include <stdbool.h>
#include <stdint.h>

struct tl_worker;
struct tl_dev;
struct tl_cmd;
struct tl_uring;

enum tl_uring_op {
	TL_URING_READ,
	TL_URING_WRITE,
	TL_URING_FLUSH,		/* fdatasync */
};

/* Submission queue depth of each worker's ring. */
#define TL_URING_ENTRIES 256

/*
 * A ring for worker w, watched on its loop.  NULL, with the reason in why,
 * when io_uring cannot be used; the caller then stays synchronous.
 */
struct tl_uring *tl_uring_new(struct tl_worker *w, const char **why);
/* Waits for everything in flight, then frees. */
void tl_uring_free(struct tl_uring *u);

/*
 * Queue one operation for cmd on d's fast-path fd (flags: RWF_* for
 * writes).  Returns false when the ring is full: the caller does the I/O
 * itself.  Nothing reaches the kernel before tl_uring_submit().
 */
bool tl_uring_queue(struct tl_uring *u, struct tl_dev *d, struct tl_cmd *cmd,
		    enum tl_uring_op op, int flags);

/* Submit what was queued, then complete whatever has already finished. */
void tl_uring_submit(struct tl_uring *u);

/* Complete what has finished (never blocks).  Returns how many. */
unsigned int tl_uring_reap(struct tl_uring *u);

/*
 * Block until none of d's operations is in flight (before Lua sees the
 * device's next command, and before its file is closed).
 */
void tl_uring_drain(struct tl_uring *u, struct tl_dev *d);

#endif /* TL_URING_H */
