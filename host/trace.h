/* SPDX-License-Identifier: MIT */
/*
 * trace.h - a per-device stream of completed commands for `ctl trace`.
 *
 * The worker writes, the main thread reads: a single-producer,
 * single-consumer ring.  When nobody traces, the cost is one relaxed load
 * per completion.  When the reader falls behind, records are dropped and
 * counted, never waited for: tracing must not slow the I/O it shows.
 */
#ifndef TL_TRACE_H
#define TL_TRACE_H

#include <stdbool.h>
#include <stdint.h>

#include "tl_abi.h"

#define TL_TRACE_SLOTS 4096

struct tl_trace_rec {
	uint64_t t_ns;		/* completion time, CLOCK_MONOTONIC */
	uint64_t lat_ns;
	uint64_t lba;
	uint32_t nblocks;
	uint32_t data_len;
	uint32_t read_len;
	uint16_t cmd_id;
	uint8_t cdb_len;	/* bytes kept in cdb[] (at most 16) */
	uint8_t status;
	uint8_t sense_key, asc, ascq;
	uint8_t fast;		/* served by the C fast path */
	uint8_t cdb[16];
};

struct tl_trace {
	int on;				/* written by the reader's thread */
	uint32_t head;			/* producer */
	uint32_t tail;			/* consumer */
	uint64_t dropped;
	struct tl_trace_rec recs[TL_TRACE_SLOTS];
};

/* Worker side: record one completion if tracing is on. */
void tl_trace_record(struct tl_trace *t, const struct tl_cmd *cmd,
		     uint64_t now_ns, bool fast);

/* Reader side: take the next record; false when there is none. */
bool tl_trace_take(struct tl_trace *t, struct tl_trace_rec *out);

static inline bool tl_trace_on(const struct tl_trace *t)
{
	return t && __atomic_load_n(&t->on, __ATOMIC_RELAXED);
}

#endif /* TL_TRACE_H */
