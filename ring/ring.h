/* SPDX-License-Identifier: MIT */
/*
 * ring.h - the daemon's side of one TCMU command ring.
 *
 * The ring does not own a file descriptor or an event loop: it is handed a
 * mapping (from /dev/uioN or from the kernel simulator), hands out commands
 * and takes completions.  The layer above reads the notification, calls
 * ring_fetch() until it returns 0, lets handlers complete commands with
 * ring_complete(), and finally calls ring_publish() once and, if that says
 * so, writes one 4-byte kick to the fd.
 *
 * Nothing read from the shared mapping is trusted: every offset and length
 * is checked before use, so a malformed entry fails its command (or, if the
 * ring can no longer be walked, marks the ring broken) and never makes the
 * daemon touch memory outside the mapping.
 */
#ifndef TL_RING_H
#define TL_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tl_abi.h"

#define RING_MAX_CMDS 65536	/* cmd_id is a u16; id 0 is never used */

enum ring_event_type {
	RING_EV_CMD = 1,	/* a command to serve: ev->cmd */
	RING_EV_TMR,		/* a task management notification */
	RING_EV_REJECTED,	/* a malformed command, already failed */
};

struct ring_event {
	enum ring_event_type type;
	struct tl_cmd *cmd;	/* RING_EV_CMD, RING_EV_REJECTED */
	uint8_t tmr_type;	/* RING_EV_TMR: TCMU_TMR_* */
	uint32_t tmr_cnt;	/* number of aborted cmd_ids in tmr_ids */
	const uint16_t *tmr_ids;	/* valid until the next ring_fetch() */
	const char *why;	/* RING_EV_REJECTED: what was wrong */
};

struct ring_stats {
	uint64_t fetched;
	uint64_t completed;
	uint64_t rejected;	/* malformed commands failed by the ring */
	uint64_t pads;
	uint64_t tmrs;
	uint64_t unknown_ops;
};

struct ring {
	uint8_t *map;
	size_t map_size;
	struct tcmu_mailbox *mb;
	uint32_t cmdr_off;
	uint32_t cmdr_size;
	uint16_t caps;		/* TCMU_MAILBOX_FLAG_CAP_* */

	uint32_t fetch;		/* next entry to look at (ring offset) */
	uint32_t tail;		/* our cmd_tail, published by ring_publish() */
	bool tail_dirty;	/* tail moved since the last publish */

	uint32_t inflight;	/* fetched, not yet completed */
	bool broken;		/* the ring cannot be walked any more */
	const char *broken_why;

	struct tl_cmd *slots;	/* RING_MAX_CMDS slots indexed by cmd_id */
	size_t slots_bytes;
	uint16_t *tmr_ids;	/* RING_MAX_CMDS entries */
	struct tl_cmd reject;	/* answers entries whose cmd_id is unusable */

	struct ring_stats stats;
};

/*
 * Attach to a mapped ring.  Checks the mailbox version and geometry against
 * the mapping.  Allocates the per-cmd_id slot table once (virtual memory,
 * touched only for the ids the kernel really uses).
 */
int ring_attach(struct ring *r, void *map, size_t map_size, const char **err);
void ring_detach(struct ring *r);

/*
 * Forget all in-flight state, for use after the kernel's action/reset_ring,
 * which resets head and tail to 0 itself.
 */
void ring_reset(struct ring *r);

/*
 * Look at the next entry.  Returns 1 with *ev filled, 0 when there is
 * nothing new, -1 when the ring is broken (see r->broken_why).
 */
int ring_fetch(struct ring *r, struct ring_event *ev);

/*
 * Complete a command: cmd->status, cmd->sense/sense_len and cmd->read_len
 * are written into the entry at the tail, and the tail advances over it.
 * Returns 0, or -1 if cmd is not a command in flight on this ring.
 */
int ring_complete(struct ring *r, struct tl_cmd *cmd);

/*
 * Publish the tail to the kernel with a release store.  Returns true when
 * the kernel must be told (a 4-byte write to the uio fd), once per batch.
 */
bool ring_publish(struct ring *r);

/* Fail a command with CHECK CONDITION and the given sense key/ASC/ASCQ. */
void ring_cmd_set_sense(struct tl_cmd *cmd, uint8_t key, uint8_t asc, uint8_t ascq);

/* The slot for cmd_id, or NULL when it is not in flight. */
struct tl_cmd *ring_cmd_by_id(struct ring *r, uint16_t id);

#endif /* TL_RING_H */
