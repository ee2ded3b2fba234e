// SPDX-License-Identifier: MIT
/*
 * uring.c - the fast path's asynchronous file I/O (see uring.h).
 *
 * Each queued operation takes one slot of a fixed table (no allocation per
 * command); the slot's index is the SQE's user_data.  The table has as
 * many slots as the completion queue has entries, so completions can never
 * overflow it.  A command whose I/O fails or comes back short goes to Lua,
 * which does it again and turns the error into sense data exactly as for a
 * command the fast path never took.  A failed fdatasync is the exception:
 * Linux reports a writeback error to one fsync only, so it is answered here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "device.h"
#include "log.h"
#include "ring.h"
#include "uring.h"
#include "worker.h"

#ifdef TL_HAVE_URING

#include <liburing.h>

#define SLOTS (2 * TL_URING_ENTRIES)
#define NO_SLOT UINT32_MAX

struct uring_slot {
	struct tl_dev *dev;
	struct tl_cmd *cmd;
	uint32_t next_free;
	uint8_t op;
};

struct tl_uring {
	struct io_uring ring;
	struct tl_worker *w;
	int efd;
	ev_io watcher;
	unsigned int unsubmitted;
	uint32_t free_head;
	struct uring_slot slot[SLOTS];
};

static void finish(struct uring_slot *s, int res)
{
	struct tl_dev *d = s->dev;
	struct tl_cmd *cmd = s->cmd;

	d->fast_inflight--;
	cmd->flags &= ~(uint32_t)TL_CMDF_FILE_IO;
	if (s->op == TL_URING_FLUSH) {
		if (res < 0) {
			/* MEDIUM ERROR, WRITE ERROR */
			ring_cmd_set_sense(cmd, 0x03, 0x0c, 0x00);
			cmd->read_len = 0;
		} else {
			cmd->status = TL_STATUS_GOOD;
		}
	} else if (res < 0 || (uint64_t)res != cmd->data_len) {
		/* Lua repeats it and reports the error, if there still is one. */
		tl_dev_requeue(d, cmd);
		return;
	} else {
		cmd->status = TL_STATUS_GOOD;
		cmd->read_len = (uint32_t)cmd->data_len;
	}
	d->stats.fast++;
	d->stats.fast_async++;
	d->in_fast = true;
	tl_dev_complete(d, cmd);
	d->in_fast = false;
}

unsigned int tl_uring_reap(struct tl_uring *u)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_for_each_cqe(&u->ring, head, cqe) {
		uint32_t i = (uint32_t)cqe->user_data;
		struct uring_slot *s = &u->slot[i];

		finish(s, cqe->res);
		s->dev = NULL;
		s->cmd = NULL;
		s->next_free = u->free_head;
		u->free_head = i;
		n++;
	}
	io_uring_cq_advance(&u->ring, n);
	return n;
}

bool tl_uring_queue(struct tl_uring *u, struct tl_dev *d, struct tl_cmd *cmd,
		    enum tl_uring_op op, int flags)
{
	off_t off = (off_t)(cmd->lba * d->info.block_size);
	const struct iovec *iov = (const struct iovec *)cmd->iov;
	struct io_uring_sqe *sqe;
	uint32_t i = u->free_head;

	if (i == NO_SLOT)
		return false;
	sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) {
		tl_uring_submit(u);
		sqe = io_uring_get_sqe(&u->ring);
		if (!sqe)
			return false;
		i = u->free_head;	/* the reap may have freed slots */
		if (i == NO_SLOT)
			return false;
	}
	switch (op) {
	case TL_URING_READ:
		io_uring_prep_readv(sqe, d->fast.fd, iov, cmd->iov_cnt, off);
		break;
	case TL_URING_WRITE:
		io_uring_prep_writev2(sqe, d->fast.fd, iov, cmd->iov_cnt, off,
				      flags);
		break;
	case TL_URING_FLUSH:
		io_uring_prep_fsync(sqe, d->fast.fd, IORING_FSYNC_DATASYNC);
		break;
	}
	io_uring_sqe_set_data64(sqe, i);
	u->free_head = u->slot[i].next_free;
	u->slot[i].dev = d;
	u->slot[i].cmd = cmd;
	u->slot[i].op = (uint8_t)op;
	cmd->state = TL_CMD_ACTIVE;
	cmd->flags |= TL_CMDF_FILE_IO;
	d->fast_inflight++;
	u->unsubmitted++;
	return true;
}

void tl_uring_submit(struct tl_uring *u)
{
	int rc;

	while (u->unsubmitted) {
		rc = io_uring_submit(&u->ring);
		if (rc > 0) {
			u->unsubmitted -= (unsigned int)rc < u->unsubmitted ?
					  (unsigned int)rc : u->unsubmitted;
			continue;
		}
		if (rc == -EINTR)
			continue;
		if (rc == -EAGAIN || rc == -EBUSY) {
			/* Kernel short of resources: make room by reaping. */
			if (!tl_uring_reap(u))
				io_uring_wait_cqe(&u->ring, NULL);
			continue;
		}
		/* Cannot happen with a sane ring; never spin on it. */
		tl_err("io_uring submit failed: %s", strerror(-rc));
		break;
	}
	tl_uring_reap(u);
}

void tl_uring_drain(struct tl_uring *u, struct tl_dev *d)
{
	struct io_uring_cqe *cqe;
	int rc;

	tl_uring_submit(u);
	while (d->fast_inflight) {
		rc = io_uring_wait_cqe(&u->ring, &cqe);
		if (rc && rc != -EINTR && rc != -EAGAIN) {
			tl_err("%s: waiting for file I/O failed: %s",
			       d->info.name, strerror(-rc));
			return;
		}
		tl_uring_reap(u);
	}
}

static void uring_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct tl_uring *u = io->data;
	eventfd_t n;

	(void)loop;
	(void)revents;
	while (eventfd_read(u->efd, &n) == 0)
		;
	if (tl_uring_reap(u))
		tl_worker_after_completions(u->w);
}

struct tl_uring *tl_uring_new(struct tl_worker *w, const char **why)
{
	struct tl_uring *u = calloc(1, sizeof(*u));
	uint32_t i;
	int rc;

	if (!u) {
		*why = "out of memory";
		return NULL;
	}
	rc = io_uring_queue_init(TL_URING_ENTRIES, &u->ring, 0);
	if (rc) {
		*why = strerror(-rc);
		free(u);
		return NULL;
	}
	/*
	 * Every completion signals the eventfd, even those reaped inline right
	 * after submitting (an extra, harmless wake-up).  The "async only"
	 * variant is not enough: completions the kernel finishes through task
	 * work (an error returned early, say) would then never wake the loop.
	 */
	u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (u->efd < 0 ||
	    io_uring_register_eventfd(&u->ring, u->efd)) {
		*why = "cannot register an eventfd";
		if (u->efd >= 0)
			close(u->efd);
		io_uring_queue_exit(&u->ring);
		free(u);
		return NULL;
	}
	for (i = 0; i < SLOTS; i++)
		u->slot[i].next_free = i + 1 < SLOTS ? i + 1 : NO_SLOT;
	u->free_head = 0;
	u->w = w;
	ev_io_init(&u->watcher, uring_cb, u->efd, EV_READ);
	u->watcher.data = u;
	ev_io_start(w->loop, &u->watcher);
	return u;
}

void tl_uring_free(struct tl_uring *u)
{
	struct tl_dev *d;

	if (!u)
		return;
	for (d = u->w->devs; d; d = d->next)
		tl_uring_drain(u, d);
	ev_io_stop(u->w->loop, &u->watcher);
	io_uring_queue_exit(&u->ring);
	close(u->efd);
	free(u);
}

#else /* !TL_HAVE_URING */

struct tl_uring *tl_uring_new(struct tl_worker *w, const char **why)
{
	(void)w;
	*why = "built without liburing";
	return NULL;
}

void tl_uring_free(struct tl_uring *u)
{
	(void)u;
}

bool tl_uring_queue(struct tl_uring *u, struct tl_dev *d, struct tl_cmd *cmd,
		    enum tl_uring_op op, int flags)
{
	(void)u; (void)d; (void)cmd; (void)op; (void)flags;
	return false;
}

void tl_uring_submit(struct tl_uring *u)
{
	(void)u;
}

unsigned int tl_uring_reap(struct tl_uring *u)
{
	(void)u;
	return 0;
}

void tl_uring_drain(struct tl_uring *u, struct tl_dev *d)
{
	(void)u;
	(void)d;
}

#endif /* TL_HAVE_URING */
