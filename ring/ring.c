// SPDX-License-Identifier: MIT
/*
 * ring.c - fetch commands from a TCMU command ring and complete them.
 *
 * Shared-memory discipline: cmd_head is loaded with acquire semantics so the
 * entries it covers are visible; cmd_tail is stored with release semantics
 * so the kernel sees our responses before it sees the tail move.  Every
 * field of an entry is read once into a local before it is checked, so a
 * value cannot change between the check and the use.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "tcmu_uapi.h"

#include "cdb.h"
#include "ring.h"

/* The uapi layout this file relies on (see tcmu-notes.md). */
_Static_assert(sizeof(struct tcmu_mailbox) == 128, "mailbox size");
_Static_assert(offsetof(struct tcmu_mailbox, cmd_tail) == 64, "cmd_tail");
_Static_assert(sizeof(struct tcmu_cmd_entry_hdr) == 8, "entry header");
_Static_assert(sizeof(struct tcmu_cmd_entry) == 112, "cmd entry");
_Static_assert(offsetof(struct tcmu_cmd_entry, req.iov_cnt) == 8, "iov_cnt");
_Static_assert(offsetof(struct tcmu_cmd_entry, req.iov_bidi_cnt) == 12, "bidi");
_Static_assert(offsetof(struct tcmu_cmd_entry, req.iov_dif_cnt) == 16, "dif");
_Static_assert(offsetof(struct tcmu_cmd_entry, req.cdb_off) == 24, "cdb_off");
_Static_assert(offsetof(struct tcmu_cmd_entry, req.iov) == 48, "iov[]");
_Static_assert(offsetof(struct tcmu_cmd_entry, rsp.scsi_status) == 8, "status");
_Static_assert(offsetof(struct tcmu_cmd_entry, rsp.read_len) == 12, "read_len");
_Static_assert(offsetof(struct tcmu_cmd_entry, rsp.sense_buffer) == 16, "sense");
_Static_assert(offsetof(struct tcmu_tmr_entry, tmr_type) == 8, "tmr_type");
_Static_assert(offsetof(struct tcmu_tmr_entry, cmd_cnt) == 12, "cmd_cnt");
_Static_assert(offsetof(struct tcmu_tmr_entry, cmd_ids) == 32, "cmd_ids");
_Static_assert(TL_SENSE_LEN == TCMU_SENSE_BUFFERSIZE, "sense length");
_Static_assert(sizeof(struct tl_iov) == sizeof(struct iovec), "iovec");

#define ENTRY_HDR 8u
#define ENTRY_IOV_OFF 48u
#define TMR_IDS_OFF 32u

/* Field offsets inside an entry, used with load helpers below. */
#define OFF_IOV_CNT 8u
#define OFF_BIDI_CNT 12u
#define OFF_DIF_CNT 16u
#define OFF_CDB_OFF 24u

static inline uint32_t ld32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t ld64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint16_t ld16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint8_t *entry_at(struct ring *r, uint32_t off)
{
	return r->map + r->cmdr_off + off;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int ring_break(struct ring *r, const char *why)
{
	r->broken = true;
	r->broken_why = why;
	return -1;
}

int ring_attach(struct ring *r, void *map, size_t map_size, const char **err)
{
	struct tcmu_mailbox mb;
	void *slots;

	memset(r, 0, sizeof(*r));
	if (map_size < sizeof(mb)) {
		*err = "mapping smaller than the mailbox";
		return -EINVAL;
	}
	memcpy(&mb, map, sizeof(mb));
	if (mb.version != TCMU_MAILBOX_VERSION) {
		*err = "mailbox version is not 2";
		return -EPROTO;
	}
	if (mb.cmdr_off < sizeof(mb) || (mb.cmdr_off & 7) || mb.cmdr_size < 64 ||
	    (mb.cmdr_size & 7) ||
	    (uint64_t)mb.cmdr_off + mb.cmdr_size > map_size) {
		*err = "command ring does not fit the mapping";
		return -EPROTO;
	}
	if (mb.cmd_tail >= mb.cmdr_size || (mb.cmd_tail & 7)) {
		*err = "cmd_tail out of range";
		return -EPROTO;
	}

	r->slots_bytes = (size_t)RING_MAX_CMDS * sizeof(struct tl_cmd);
	/* Virtual only: pages appear as the kernel uses low cmd_ids. */
	slots = mmap(NULL, r->slots_bytes, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (slots == MAP_FAILED) {
		*err = "cannot reserve command slots";
		return -ENOMEM;
	}
	r->tmr_ids = mmap(NULL, RING_MAX_CMDS * sizeof(uint16_t),
			  PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	if (r->tmr_ids == MAP_FAILED) {
		munmap(slots, r->slots_bytes);
		*err = "cannot reserve TMR id buffer";
		return -ENOMEM;
	}
	r->slots = slots;
	r->map = map;
	r->map_size = map_size;
	r->mb = map;
	r->cmdr_off = mb.cmdr_off;
	r->cmdr_size = mb.cmdr_size;
	r->caps = mb.flags;
	r->tail = mb.cmd_tail;
	r->fetch = mb.cmd_tail;
	return 0;
}

void ring_detach(struct ring *r)
{
	if (r->slots)
		munmap(r->slots, r->slots_bytes);
	if (r->tmr_ids)
		munmap(r->tmr_ids, RING_MAX_CMDS * sizeof(uint16_t));
	r->slots = NULL;
	r->tmr_ids = NULL;
}

void ring_reset(struct ring *r)
{
	uint32_t id;

	for (id = 1; id < RING_MAX_CMDS && r->inflight; id++) {
		struct tl_cmd *c = &r->slots[id];

		/*
		 * Reading an untouched slot maps the shared zero page, so a
		 * scan costs page-table entries, not memory.
		 */
		if (c->state != TL_CMD_FREE) {
			c->state = TL_CMD_FREE;
			r->inflight--;
		}
	}
	r->inflight = 0;
	r->tail = 0;
	r->fetch = 0;
	r->tail_dirty = false;
	r->broken = false;
	r->broken_why = NULL;
	r->reject.state = TL_CMD_FREE;
}

void ring_cmd_set_sense(struct tl_cmd *cmd, uint8_t key, uint8_t asc,
			uint8_t ascq)
{
	/* SPC-4 4.5.3: fixed format, current error. */
	memset(cmd->sense, 0, 18);
	cmd->sense[0] = 0x70;
	cmd->sense[2] = key & 0x0f;
	cmd->sense[7] = 10;
	cmd->sense[12] = asc;
	cmd->sense[13] = ascq;
	cmd->sense_len = 18;
	cmd->status = TL_STATUS_CHECK_CONDITION;
}

struct tl_cmd *ring_cmd_by_id(struct ring *r, uint16_t id)
{
	if (id == 0 || r->slots[id].state == TL_CMD_FREE)
		return NULL;
	return &r->slots[id];
}

/* Space between a and b going forward round the ring. */
static inline uint32_t ring_dist(const struct ring *r, uint32_t a, uint32_t b)
{
	return (b + r->cmdr_size - a) % r->cmdr_size;
}

/*
 * Validate a CMD entry and copy what we need out of it.  Returns NULL when
 * the entry is fine, or a message saying what is wrong with it.
 */
static const char *parse_cmd(struct ring *r, const uint8_t *ent, uint32_t len,
			     struct tl_cmd *c)
{
	uint64_t cdb_off, total, data_lo = (uint64_t)r->cmdr_off + r->cmdr_size;
	uint32_t iov_cnt, bidi, dif, i, cdb_len;
	const uint8_t *cdb;

	if (len < sizeof(struct tcmu_cmd_entry))
		return "entry shorter than a command";

	iov_cnt = ld32(ent + OFF_IOV_CNT);
	bidi = ld32(ent + OFF_BIDI_CNT);
	dif = ld32(ent + OFF_DIF_CNT);
	total = (uint64_t)iov_cnt + bidi + dif;
	if (ENTRY_IOV_OFF + total * sizeof(struct iovec) > len)
		return "iovec count exceeds the entry";

	cdb_off = ld64(ent + OFF_CDB_OFF);
	if (cdb_off >= r->map_size)
		return "cdb_off outside the mapping";
	cdb = r->map + cdb_off;
	cdb_len = cdb_length(cdb, (unsigned int)(r->map_size - cdb_off < 16 ?
						 r->map_size - cdb_off : 16));
	if (!cdb_len || cdb_off + cdb_len > r->map_size)
		return "CDB runs past the mapping";
	if (cdb_len > TL_CDB_MAX)
		return "CDB too long";
	memcpy(c->cdb, cdb, cdb_len);
	c->cdb_len = (uint16_t)cdb_len;
	c->opcode = c->cdb[0];

	if (iov_cnt > TL_IOV_MAX)
		return "too many iovecs for one command";
	c->data_len = 0;
	for (i = 0; i < total; i++) {
		const uint8_t *iov = ent + ENTRY_IOV_OFF + i * sizeof(struct iovec);
		uint64_t base = ld64(iov), ilen = ld64(iov + 8);

		/* Data lives after the command ring and inside the map. */
		if (base < data_lo || base > r->map_size ||
		    ilen > r->map_size - base)
			return "iovec outside the data area";
		if (i < iov_cnt) {
			c->iov[i].base = r->map + base;
			c->iov[i].len = ilen;
			c->data_len += ilen;
		}
	}
	c->iov_cnt = iov_cnt;
	return NULL;
}

static void fill_fresh(struct tl_cmd *c, uint16_t id)
{
	c->id = id;
	c->status = TL_STATUS_GOOD;
	c->sense_len = 0;
	c->flags = 0;
	c->tag = 0;
	c->lba = 0;
	c->nblocks = 0;
	c->iov_cnt = 0;
	c->data_len = 0;
	c->cdb_len = 0;
	c->opcode = 0;
}

static int fetch_cmd(struct ring *r, const uint8_t *ent, uint32_t len,
		     struct ring_event *ev)
{
	uint16_t id = ld16(ent + 4);
	struct tl_cmd *c = &r->slots[id];
	const char *why;

	r->inflight++;
	if (id == 0 || c->state != TL_CMD_FREE) {
		/*
		 * The id is unusable, so the slot table cannot hold this
		 * command; answer it through the spare slot at once.
		 */
		c = &r->reject;
		fill_fresh(c, id);
		why = id ? "cmd_id already in flight" : "cmd_id 0";
	} else {
		fill_fresh(c, id);
		why = parse_cmd(r, ent, len, c);
	}
	c->t_start_ns = now_ns();
	c->read_len = (uint32_t)(c->data_len > UINT32_MAX ? UINT32_MAX :
							   c->data_len);
	if (why) {
		c->state = TL_CMD_ACTIVE;
		c->flags |= TL_CMDF_MALFORMED;
		c->iov_cnt = 0;
		c->data_len = 0;
		c->read_len = 0;
		/* SPC-4: HARDWARE ERROR, INTERNAL TARGET FAILURE. */
		ring_cmd_set_sense(c, 0x04, 0x44, 0x00);
		r->stats.rejected++;
		ring_complete(r, c);
		ev->type = RING_EV_REJECTED;
		ev->cmd = c;
		ev->why = why;
		return 1;
	}
	cdb_decode_lba(c);
	c->state = TL_CMD_QUEUED;
	r->stats.fetched++;
	ev->type = RING_EV_CMD;
	ev->cmd = c;
	return 1;
}

static void fetch_tmr(struct ring *r, const uint8_t *ent, uint32_t len,
		      struct ring_event *ev)
{
	uint32_t cnt = 0, max;

	if (len >= TMR_IDS_OFF) {
		cnt = ld32(ent + 12);
		max = (len - TMR_IDS_OFF) / sizeof(uint16_t);
		if (cnt > max)
			cnt = max;	/* never read past the entry */
		memcpy(r->tmr_ids, ent + TMR_IDS_OFF, cnt * sizeof(uint16_t));
		ev->tmr_type = ent[8];
	} else {
		ev->tmr_type = TCMU_TMR_UNKNOWN;
	}
	ev->type = RING_EV_TMR;
	ev->tmr_cnt = cnt;
	ev->tmr_ids = r->tmr_ids;
	r->stats.tmrs++;
}

int ring_fetch(struct ring *r, struct ring_event *ev)
{
	uint32_t head;

	if (r->broken)
		return -1;
	head = __atomic_load_n(&r->mb->cmd_head, __ATOMIC_ACQUIRE);
	if (head >= r->cmdr_size || (head & 7))
		return ring_break(r, "cmd_head out of range");

	while (r->fetch != head) {
		uint8_t *ent = entry_at(r, r->fetch);
		uint32_t len_op = ld32(ent);
		uint32_t len = tcmu_hdr_get_len(len_op);
		uint32_t at = r->fetch;

		if (len < ENTRY_HDR || len > r->cmdr_size - at ||
		    len > ring_dist(r, at, head))
			return ring_break(r, "entry length out of range");
		r->fetch = (at + len) % r->cmdr_size;

		switch (tcmu_hdr_get_op(len_op)) {
		case TCMU_OP_PAD:
			r->stats.pads++;
			continue;
		case TCMU_OP_CMD:
			/* Its response could not be written inside it. */
			if (len < sizeof(struct tcmu_cmd_entry))
				return ring_break(r, "command entry too short");
			return fetch_cmd(r, ent, len, ev);
		case TCMU_OP_TMR:
			fetch_tmr(r, ent, len, ev);
			return 1;
		default:
			ent[7] |= TCMU_UFLAG_UNKNOWN_OP;
			r->stats.unknown_ops++;
			continue;
		}
	}
	return 0;
}

/*
 * Advance the tail over entries that are not commands (PAD, TMR, unknown).
 * Returns 1 with the length of the command entry now at the tail, 0 when
 * the tail reached the fetch point, -1 when the ring broke.  Headers are
 * read again here, so they are checked again: an entry must still end at
 * or before the fetch point, and a command must still hold a response.
 */
static int skip_non_cmds(struct ring *r, uint32_t *cmd_len)
{
	while (r->tail != r->fetch) {
		uint32_t len_op = ld32(entry_at(r, r->tail));
		uint32_t len = tcmu_hdr_get_len(len_op);

		if (len < ENTRY_HDR || len > ring_dist(r, r->tail, r->fetch))
			return ring_break(r, "entry at tail changed length");
		if (tcmu_hdr_get_op(len_op) == TCMU_OP_CMD) {
			if (len < sizeof(struct tcmu_cmd_entry))
				return ring_break(r, "entry at tail changed length");
			*cmd_len = len;
			return 1;
		}
		r->tail = (r->tail + len) % r->cmdr_size;
		r->tail_dirty = true;
	}
	return 0;
}

int ring_complete(struct ring *r, struct tl_cmd *cmd)
{
	struct tcmu_cmd_entry *ent;
	uint32_t len;
	uint8_t uflags = 0;
	int found;

	if (!cmd || cmd->state == TL_CMD_FREE || !r->inflight)
		return -1;
	if (cmd != &r->reject &&
	    (cmd < r->slots || cmd >= r->slots + RING_MAX_CMDS))
		return -1;

	/*
	 * Out of order: the entry at the tail may belong to another command
	 * still running.  That is fine, its CDB and iovecs were copied out
	 * when it was fetched; the kernel matches the response by cmd_id.
	 */
	found = skip_non_cmds(r, &len);
	if (found <= 0) {
		if (found == 0)
			ring_break(r, "completion without a command entry");
		return -1;
	}
	ent = (struct tcmu_cmd_entry *)entry_at(r, r->tail);

	ent->hdr.cmd_id = cmd->id;
	if ((r->caps & TCMU_MAILBOX_FLAG_CAP_READ_LEN) &&
	    cmd->read_len < cmd->data_len) {
		uflags |= TCMU_UFLAG_READ_LEN;
		ent->rsp.read_len = cmd->read_len;
	}
	ent->hdr.uflags = uflags;
	ent->rsp.scsi_status = cmd->status;
	if (cmd->status == TL_STATUS_CHECK_CONDITION) {
		size_t n = cmd->sense_len > TL_SENSE_LEN ? TL_SENSE_LEN :
							    cmd->sense_len;

		memcpy(ent->rsp.sense_buffer, cmd->sense, n);
		memset(ent->rsp.sense_buffer + n, 0, TL_SENSE_LEN - n);
	}

	r->tail = (r->tail + len) % r->cmdr_size;
	r->tail_dirty = true;
	r->inflight--;
	r->stats.completed++;
	cmd->state = TL_CMD_FREE;
	return 0;
}

bool ring_publish(struct ring *r)
{
	uint32_t len;

	if (!r->broken)
		skip_non_cmds(r, &len);
	if (!r->tail_dirty)
		return false;
	__atomic_store_n(&r->mb->cmd_tail, r->tail, __ATOMIC_RELEASE);
	r->tail_dirty = false;
	return true;
}
