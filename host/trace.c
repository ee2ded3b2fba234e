// SPDX-License-Identifier: MIT
/*
 * trace.c - the single-producer, single-consumer trace ring.
 */
#include <string.h>

#include "trace.h"

void tl_trace_record(struct tl_trace *t, const struct tl_cmd *cmd,
		     uint64_t now_ns, bool fast)
{
	uint32_t head = t->head;
	uint32_t tail = __atomic_load_n(&t->tail, __ATOMIC_ACQUIRE);
	struct tl_trace_rec *r;

	if (head - tail >= TL_TRACE_SLOTS) {
		t->dropped++;
		return;
	}
	r = &t->recs[head % TL_TRACE_SLOTS];
	r->t_ns = now_ns;
	r->lat_ns = now_ns - cmd->t_start_ns;
	r->lba = cmd->lba;
	r->nblocks = cmd->nblocks;
	r->data_len = (uint32_t)cmd->data_len;
	r->read_len = cmd->read_len;
	r->cmd_id = cmd->id;
	r->cdb_len = cmd->cdb_len > 16 ? 16 : (uint8_t)cmd->cdb_len;
	memcpy(r->cdb, cmd->cdb, r->cdb_len);
	r->status = cmd->status;
	r->sense_key = r->asc = r->ascq = 0;
	if (cmd->status == TL_STATUS_CHECK_CONDITION && cmd->sense_len >= 4) {
		if ((cmd->sense[0] & 0x7f) >= 0x72) {	/* descriptor format */
			r->sense_key = cmd->sense[1] & 0x0f;
			r->asc = cmd->sense[2];
			r->ascq = cmd->sense[3];
		} else if (cmd->sense_len >= 14) {
			r->sense_key = cmd->sense[2] & 0x0f;
			r->asc = cmd->sense[12];
			r->ascq = cmd->sense[13];
		}
	}
	r->fast = fast;
	__atomic_store_n(&t->head, head + 1, __ATOMIC_RELEASE);
}

bool tl_trace_take(struct tl_trace *t, struct tl_trace_rec *out)
{
	uint32_t tail = t->tail;
	uint32_t head = __atomic_load_n(&t->head, __ATOMIC_ACQUIRE);

	if (tail == head)
		return false;
	*out = t->recs[tail % TL_TRACE_SLOTS];
	__atomic_store_n(&t->tail, tail + 1, __ATOMIC_RELEASE);
	return true;
}
