/* SPDX-License-Identifier: MIT */
/*
 * sim.h - a faithful fake of the kernel's side of a TCMU device.
 *
 * The simulator lays out mailbox, command ring and data area in a memfd the
 * way target_core_user does, allocates data blocks for each command, queues
 * entries (with a PAD when an entry does not fit before the ring's end),
 * notifies through a socket that stands in for the UIO fd, and consumes
 * completions the way the kernel does: an unknown cmd_id marks the ring
 * broken, READ_LEN limits the data copied back and reports a residual.
 *
 * Unit tests, fuzzers, benchmarks and the no-kernel sandbox drive it.  It is
 * not thread-safe: one thread plays the kernel.
 */
#ifndef TL_SIM_H
#define TL_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tl_abi.h"

struct tcmu_cmd_entry;

enum sim_dir {
	SIM_DIR_NONE = 0,
	SIM_DIR_TO_DEV = 1,	/* WRITE: initiator data goes to the device */
	SIM_DIR_FROM_DEV = 2,	/* READ: data comes back from the device */
};

struct sim_opts {
	uint32_t ring_bytes;	/* mailbox + command ring, page multiple */
	uint32_t data_bytes;	/* data area, multiple of block_bytes */
	uint32_t block_bytes;	/* data block size (kernel: 4096 * pages_per_blk) */
	uint16_t caps;		/* TCMU_MAILBOX_FLAG_CAP_* offered */
	bool cyclic_ids;	/* hand out cmd_ids round-robin instead of lowest-free */
	bool scatter;		/* allocate data blocks out of order (many iovecs) */
	uint32_t seed;		/* for scatter */
};

struct sim_stats {
	uint64_t submitted;
	uint64_t completed;
	uint64_t pads;
	uint64_t kicks;		/* 4-byte writes seen from the daemon */
	uint64_t tmrs;
};

struct sim;

struct sim *sim_new(const struct sim_opts *opts);
void sim_free(struct sim *s);

/* What the daemon side maps and polls, standing in for /dev/uioN. */
int sim_memfd(const struct sim *s);
size_t sim_map_size(const struct sim *s);
int sim_daemon_fd(const struct sim *s);
void *sim_map(const struct sim *s);	/* the kernel's own view */

/*
 * Build a command entry at the head without publishing it.  Returns the
 * cmd_id (> 0), 0 when there is no room in the ring or data area right now,
 * or -1 on bad arguments.  *entry (optional) points at the entry so tests
 * can corrupt it before sim_publish().
 */
int sim_prepare(struct sim *s, const uint8_t *cdb, unsigned int cdb_len,
		enum sim_dir dir, const void *out, uint32_t len,
		struct tcmu_cmd_entry **entry);

/* Make all prepared entries visible (head update) and notify once. */
void sim_publish(struct sim *s);

/* sim_prepare() + sim_publish(). */
int sim_submit(struct sim *s, const uint8_t *cdb, unsigned int cdb_len,
	       enum sim_dir dir, const void *out, uint32_t len);

/* Queue a TMR notification (published and notified at once). */
int sim_submit_tmr(struct sim *s, uint8_t type, const uint16_t *ids,
		   uint32_t cnt);

/*
 * Queue raw bytes as an entry (fuzzing).  The bytes are copied to the head
 * after a PAD if needed; len is rounded up to 8.  Not tracked as a command.
 */
int sim_inject(struct sim *s, const void *bytes, uint32_t len);

/*
 * Play the kernel's completion handler: drain kicks from the daemon and
 * consume every entry up to cmd_tail.  Returns the number of commands
 * completed, or -1 when the ring is (or becomes) broken.
 */
int sim_reap(struct sim *s);

const struct tl_sim_result *sim_result(const struct sim *s, uint16_t id);

/* Forget a completed command's result; its id becomes free. */
void sim_release(struct sim *s, uint16_t id);

bool sim_broken(const struct sim *s, const char **why);
const struct sim_stats *sim_stats(const struct sim *s);
uint32_t sim_inflight(const struct sim *s);

/* The kernel's action/reset_ring: fail everything in flight, head=tail=0. */
void sim_reset_ring(struct sim *s);

#endif /* TL_SIM_H */
