/* SPDX-License-Identifier: MIT */
/*
 * device.h - one TCMU device as a worker serves it: the ring, the fd that
 * stands for /dev/uioN (or the simulator's socket), the queue of commands
 * waiting for Lua, and the counters the control socket reports.
 */
#ifndef TL_DEVICE_H
#define TL_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "ring.h"
#include "tl_abi.h"

struct tl_worker;
struct tl_trace;


struct tl_fast {
	int fd;			/* -1: no fast path */
	uint32_t flags;		/* TL_FAST_* */
	int hold;		/* Lua wants every command for now */
	/* The file refused RWF_NOWAIT (EOPNOTSUPP): skip the inline try. */
	bool no_nowait_read, no_nowait_write;
};

struct tl_dev {
	struct tl_dev_info info;
	struct ring ring;
	struct tl_worker *w;
	struct tl_dev *next;	/* in the worker's list */

	int fd;			/* uio fd, or the simulator's daemon socket */
	void *map;
	size_t map_size;
	ev_io io;

	/* Commands fetched and waiting for tl_ffi_next(). */
	struct tl_cmd **queue;
	uint32_t q_head, q_tail;	/* free-running; mask with RING_MAX_CMDS-1 */
	struct tl_cmd *current;		/* last command handed to Lua */

	struct tl_fast fast;
	struct tl_trace *trace;	/* allocated on first `ctl trace`, kept */

	uint32_t fast_inflight;	/* fast-path I/O queued on the worker's io_uring */
	bool requeued;		/* the fast path gave commands back to Lua */
	bool dirty;		/* completions not yet published */
	bool in_fast;		/* the fast path is completing (for traces) */
	bool opened;		/* the Lua handler's open() succeeded */
	uint8_t down_sense[3];	/* key/asc/ascq while !opened; 0: NOT READY */
	char *config;		/* the options it was opened with (a copy) */
	bool broken_logged;
	struct tl_dev_stats stats;
	char last_error[256];	/* last handler error, for rate-limited logs */
	uint64_t error_repeats;
};

/*
 * Make a device over an already mapped ring.  Takes ownership of fd and
 * map (closed and unmapped by tl_dev_free()).  err gets a static message.
 */
struct tl_dev *tl_dev_new(int fd, void *map, size_t map_size,
			  const char **err);
void tl_dev_free(struct tl_dev *d);

/* Drain the fd, fetch the ring, run Lua once, publish.  Worker thread only. */
void tl_dev_service(struct tl_dev *d);

/* Publish completions and kick the kernel if any are pending. */
void tl_dev_flush(struct tl_dev *d);

/* Complete a command (from C or Lua). */
int tl_dev_complete(struct tl_dev *d, struct tl_cmd *cmd);

/*
 * Give a command the fast path took back to Lua (its I/O failed or came
 * back short): it joins the queue and the worker dispatches it.
 */
void tl_dev_requeue(struct tl_dev *d, struct tl_cmd *cmd);

/* Next queued command for Lua (skipping aborted ones), or NULL. */
struct tl_cmd *tl_dev_queue_pop(struct tl_dev *d);

/* Fail every queued and active command: used when a handler goes away. */
void tl_dev_fail_all(struct tl_dev *d, uint8_t key, uint8_t asc, uint8_t ascq);

#endif /* TL_DEVICE_H */
