// SPDX-License-Identifier: MIT
/*
 * device.c - serve one device's ring: fetch, hand to Lua, publish.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "fastpath.h"
#include "log.h"
#include "stats.h"
#include "trace.h"
#include "uring.h"
#include "lua_host.h"
#include "tcmu_uapi.h"
#include "worker.h"

#define QMASK (RING_MAX_CMDS - 1)

static atomic_uint next_dev_id = 1;

struct tl_dev *tl_dev_new(int fd, void *map, size_t map_size,
			  const char **err)
{
	struct tl_dev *d = calloc(1, sizeof(*d));
	int rc;

	if (!d) {
		*err = "out of memory";
		return NULL;
	}
	d->queue = calloc(RING_MAX_CMDS, sizeof(*d->queue));
	if (!d->queue) {
		free(d);
		*err = "out of memory";
		return NULL;
	}
	rc = ring_attach(&d->ring, map, map_size, err);
	if (rc) {
		free(d->queue);
		free(d);
		return NULL;
	}
	d->fd = fd;
	d->map = map;
	d->map_size = map_size;
	d->info.id = atomic_fetch_add(&next_dev_id, 1);
	d->info.ring_caps = d->ring.caps;
	d->info.block_size = 512;
	d->info.max_xfer_blocks = 128;
	d->fast.fd = -1;
	return d;
}

void tl_dev_free(struct tl_dev *d)
{
	if (!d)
		return;
	ring_detach(&d->ring);
	if (d->map)
		munmap(d->map, d->map_size);
	if (d->fd >= 0)
		close(d->fd);
	free(d->queue);
	free(d->trace);
	free(d->config);
	free(d);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int tl_dev_complete(struct tl_dev *d, struct tl_cmd *cmd)
{
	uint64_t now;

	if (cmd == d->current)
		d->current = NULL;
	if (cmd->state == TL_CMD_FREE)
		return -EINVAL;
	/* Count (and trace) before the slot is released for reuse. */
	now = mono_ns();
	tl_stats_complete(&d->stats, cmd, now);
	if (tl_trace_on(d->trace))
		tl_trace_record(d->trace, cmd, now, d->in_fast);
	if (ring_complete(&d->ring, cmd))
		return -EINVAL;
	d->dirty = true;
	return 0;
}

void tl_dev_flush(struct tl_dev *d)
{
	uint32_t one = 1;

	if (!d->dirty && !d->ring.tail_dirty)
		return;
	d->dirty = false;
	if (!ring_publish(&d->ring))
		return;
	/* One 4-byte write tells the kernel about the whole batch. */
	if (write(d->fd, &one, sizeof(one)) == sizeof(one))
		d->stats.kicks++;
}

static void queue_push(struct tl_dev *d, struct tl_cmd *cmd)
{
	d->queue[d->q_tail++ & QMASK] = cmd;
}

void tl_dev_requeue(struct tl_dev *d, struct tl_cmd *cmd)
{
	if (cmd->state == TL_CMD_ACTIVE)
		cmd->state = TL_CMD_QUEUED;
	queue_push(d, cmd);
	d->requeued = true;
	if (d->w)
		d->w->requeued = true;
}

struct tl_cmd *tl_dev_queue_pop(struct tl_dev *d)
{
	while (d->q_head != d->q_tail) {
		struct tl_cmd *cmd = d->queue[d->q_head++ & QMASK];

		if (cmd->state == TL_CMD_ABORTED) {
			/* Aborted before it ran: the kernel ignores the status. */
			cmd->status = TL_STATUS_TASK_ABORTED;
			tl_dev_complete(d, cmd);
			d->stats.aborted++;
			continue;
		}
		cmd->state = TL_CMD_ACTIVE;
		d->current = cmd;
		return cmd;
	}
	return NULL;
}

static void fail_cmd(struct tl_dev *d, struct tl_cmd *cmd, uint8_t key,
		     uint8_t asc, uint8_t ascq)
{
	ring_cmd_set_sense(cmd, key, asc, ascq);
	cmd->read_len = 0;
	tl_dev_complete(d, cmd);
}

void tl_dev_fail_all(struct tl_dev *d, uint8_t key, uint8_t asc, uint8_t ascq)
{
	uint32_t id;

	d->q_head = d->q_tail;
	d->current = NULL;
	for (id = 1; id < RING_MAX_CMDS && d->ring.inflight; id++) {
		struct tl_cmd *cmd = ring_cmd_by_id(&d->ring, (uint16_t)id);

		if (cmd)
			fail_cmd(d, cmd, key, asc, ascq);
	}
	tl_dev_flush(d);
}

static void handle_tmr(struct tl_dev *d, const struct ring_event *ev)
{
	uint32_t i;

	for (i = 0; i < ev->tmr_cnt; i++) {
		struct tl_cmd *cmd = ring_cmd_by_id(&d->ring, ev->tmr_ids[i]);

		/* Queued ones never run; running ones the handler may cancel. */
		if (cmd && cmd->state == TL_CMD_QUEUED)
			cmd->state = TL_CMD_ABORTED;
	}
	tl_lua_tmr(d->w, d, ev->tmr_type, ev->tmr_ids, ev->tmr_cnt);
}

static void drain_fd(struct tl_dev *d)
{
	uint32_t count;

	/*
	 * UIO hands over its event count and takes reads of exactly four
	 * bytes: any other size is EINVAL and leaves the fd readable, and the
	 * loop would spin on it.  The simulator's wake-ups are four-byte
	 * datagrams, read one at a time.
	 */
	while (read(d->fd, &count, sizeof(count)) > 0)
		;
}

void tl_dev_service(struct tl_dev *d)
{
	struct ring_event ev;
	int rc;

	drain_fd(d);
	while ((rc = ring_fetch(&d->ring, &ev)) > 0) {
		switch (ev.type) {
		case RING_EV_CMD:
			d->stats.cmds++;
			d->stats.qdepth_sum += d->ring.inflight;
			if (d->ring.inflight > d->stats.qdepth_max)
				d->stats.qdepth_max = d->ring.inflight;
			if (!d->opened && d->down_sense[0]) {
				/* Shut down by the watchdog or memory limit. */
				fail_cmd(d, ev.cmd, d->down_sense[0],
					 d->down_sense[1], d->down_sense[2]);
				break;
			}
			if (!d->opened) {
				/* LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE */
				fail_cmd(d, ev.cmd, 0x02, 0x04, 0x00);
				break;
			}
			if (!tl_fast_try(d, ev.cmd))
				queue_push(d, ev.cmd);
			break;
		case RING_EV_REJECTED:
			d->stats.rejected++;
			d->dirty = true;
			tl_warn("%s: malformed ring entry (cmd_id %u): %s",
				d->info.name, ev.cmd->id, ev.why);
			break;
		case RING_EV_TMR:
			handle_tmr(d, &ev);
			break;
		}
	}
	if (rc < 0 && !d->broken_logged) {
		d->broken_logged = true;
		tl_err("%s: command ring is broken (%s); waiting for a reset",
		       d->info.name, d->ring.broken_why);
	}
	if (d->w && d->w->uring)
		tl_uring_submit(d->w->uring);
	if (d->q_head != d->q_tail) {
		/*
		 * Lua sees a device whose fast-path I/O has all finished, so
		 * what the library does (COMPARE AND WRITE, UNMAP, a unit
		 * attention) is ordered after every command taken before it.
		 */
		if (d->fast_inflight)
			tl_uring_drain(d->w->uring, d);
		d->requeued = false;
		tl_lua_dispatch(d->w, d);
	}
	tl_dev_flush(d);
}
