// SPDX-License-Identifier: MIT
/*
 * sim.c - the kernel side of a TCMU ring, in userspace, for tests.
 *
 * Modelled on the behaviour described in the kernel's tcmu design notes:
 * free space is counted against the last entry the kernel cleaned, an entry
 * that does not fit before the end of the ring is preceded by a PAD, data
 * blocks are handed out per command and merged into iovecs when adjacent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcmu_uapi.h"

#include "sim.h"

#define SIM_MAX_IDS 65536
#define SIM_CMDR_OFF 128u
#define DATA_POISON 0xa5

struct sim_cmd {
	bool live;		/* id allocated */
	bool done;		/* completion seen */
	enum sim_dir dir;
	uint32_t len;
	uint32_t nblk;
	uint32_t *blks;
	struct tl_sim_result res;
};

struct sim {
	struct sim_opts o;
	int memfd;
	uint8_t *map;
	size_t map_size;
	struct tcmu_mailbox *mb;
	uint32_t cmdr_size;
	uint32_t data_off;
	uint32_t nblocks;
	uint8_t *blk_used;
	uint32_t blk_free;

	uint32_t head;		/* published cmd_head */
	uint32_t phead;		/* head including prepared entries */
	uint32_t last_cleaned;	/* our view of how far completions reached */
	uint32_t *shadow;	/* len_op we wrote, per 8-byte ring offset */

	struct sim_cmd *cmds;
	uint32_t next_id;
	uint32_t inflight;
	uint32_t rng;

	int fds[2];		/* [0] daemon side, [1] ours */
	struct sim_stats stats;
	bool broken;
	const char *why;
};

static inline uint32_t ld32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t round8(uint32_t v)
{
	return (v + 7u) & ~7u;
}

static uint32_t rnd(struct sim *s)
{
	/* xorshift32: deterministic block scatter from the seed. */
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 17;
	s->rng ^= s->rng << 5;
	return s->rng;
}

struct sim *sim_new(const struct sim_opts *opts)
{
	struct sim *s = calloc(1, sizeof(*s));
	struct sim_opts o = *opts;

	if (!s)
		return NULL;
	if (!o.ring_bytes)
		o.ring_bytes = 1u << 20;
	if (!o.block_bytes)
		o.block_bytes = 4096;
	if (!o.data_bytes)
		o.data_bytes = 16u << 20;
	if (o.ring_bytes % 4096 || o.data_bytes % o.block_bytes ||
	    o.ring_bytes <= SIM_CMDR_OFF + 256)
		goto fail;
	s->o = o;
	s->fds[0] = s->fds[1] = -1;
	s->memfd = -1;
	s->rng = o.seed ? o.seed : 0x9e3779b9u;
	s->cmdr_size = o.ring_bytes - SIM_CMDR_OFF;
	s->data_off = o.ring_bytes;
	s->nblocks = o.data_bytes / o.block_bytes;
	s->blk_free = s->nblocks;
	s->map_size = (size_t)o.ring_bytes + o.data_bytes;

	s->memfd = memfd_create("tcmu-sim", MFD_CLOEXEC);
	if (s->memfd < 0 || ftruncate(s->memfd, (off_t)s->map_size) < 0)
		goto fail;
	s->map = mmap(NULL, s->map_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      s->memfd, 0);
	if (s->map == MAP_FAILED) {
		s->map = NULL;
		goto fail;
	}
	s->blk_used = calloc(s->nblocks, 1);
	s->shadow = calloc(s->cmdr_size / 8, sizeof(uint32_t));
	s->cmds = calloc(SIM_MAX_IDS, sizeof(*s->cmds));
	if (!s->blk_used || !s->shadow || !s->cmds)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       s->fds) < 0)
		goto fail;

	s->mb = (struct tcmu_mailbox *)s->map;
	s->mb->version = TCMU_MAILBOX_VERSION;
	s->mb->flags = o.caps;
	s->mb->cmdr_off = SIM_CMDR_OFF;
	s->mb->cmdr_size = s->cmdr_size;
	s->next_id = 1;
	return s;
fail:
	sim_free(s);
	return NULL;
}

void sim_free(struct sim *s)
{
	uint32_t i;

	if (!s)
		return;
	if (s->cmds) {
		for (i = 0; i < SIM_MAX_IDS; i++) {
			free(s->cmds[i].blks);
			free(s->cmds[i].res.data);
		}
	}
	free(s->cmds);
	free(s->shadow);
	free(s->blk_used);
	if (s->map)
		munmap(s->map, s->map_size);
	if (s->memfd >= 0)
		close(s->memfd);
	if (s->fds[0] >= 0)
		close(s->fds[0]);
	if (s->fds[1] >= 0)
		close(s->fds[1]);
	free(s);
}

int sim_memfd(const struct sim *s) { return s->memfd; }
size_t sim_map_size(const struct sim *s) { return s->map_size; }
int sim_daemon_fd(const struct sim *s) { return s->fds[0]; }
void *sim_map(const struct sim *s) { return s->map; }
const struct sim_stats *sim_stats(const struct sim *s) { return &s->stats; }
uint32_t sim_inflight(const struct sim *s) { return s->inflight; }

bool sim_broken(const struct sim *s, const char **why)
{
	if (why)
		*why = s->why;
	return s->broken;
}

static int sim_break(struct sim *s, const char *why)
{
	s->broken = true;
	s->why = why;
	return -1;
}

static uint32_t ring_used(const struct sim *s)
{
	return (s->phead + s->cmdr_size - s->last_cleaned) % s->cmdr_size;
}

/*
 * Room for an entry of size bytes at the head, counting a PAD to the end of
 * the ring if the entry does not fit there.  One byte is always left free
 * so that head == tail means empty.
 */
static bool ring_has_room(const struct sim *s, uint32_t size)
{
	uint32_t to_end = s->cmdr_size - s->phead;
	uint32_t need = size + (to_end < size ? to_end : 0);

	return s->cmdr_size - ring_used(s) - 1 >= need;
}

static uint8_t *head_entry(struct sim *s)
{
	return s->map + SIM_CMDR_OFF + s->phead;
}

static void put_len_op(struct sim *s, uint32_t len, uint32_t op)
{
	uint32_t len_op = len | op;

	memcpy(head_entry(s), &len_op, sizeof(len_op));
	s->shadow[s->phead / 8] = len_op;
}

/* Write a PAD to the end of the ring if size does not fit before it. */
static void pad_if_needed(struct sim *s, uint32_t size)
{
	uint32_t to_end = s->cmdr_size - s->phead;

	if (to_end >= size)
		return;
	memset(head_entry(s), 0, 8);
	put_len_op(s, to_end, TCMU_OP_PAD);
	s->phead = 0;
	s->stats.pads++;
}

static void advance_head(struct sim *s, uint32_t size)
{
	s->phead = (s->phead + size) % s->cmdr_size;
}

static int alloc_id(struct sim *s)
{
	uint32_t i, id;

	for (i = 0; i < SIM_MAX_IDS - 1; i++) {
		if (s->o.cyclic_ids)
			id = (s->next_id - 1 + i) % (SIM_MAX_IDS - 1) + 1;
		else
			id = i + 1;
		if (!s->cmds[id].live) {
			if (s->o.cyclic_ids)
				s->next_id = id % (SIM_MAX_IDS - 1) + 1;
			return (int)id;
		}
	}
	return 0;
}

static bool alloc_blocks(struct sim *s, struct sim_cmd *c)
{
	uint32_t i, b = 0, n = 0;

	if (c->nblk > s->blk_free)
		return false;
	c->blks = malloc((c->nblk ? c->nblk : 1) * sizeof(uint32_t));
	if (!c->blks)
		return false;
	if (s->o.scatter)
		b = rnd(s) % s->nblocks;
	for (i = 0; n < c->nblk && i < s->nblocks; i++) {
		uint32_t cand = s->o.scatter ? (b + i * 7919u) % s->nblocks : i;

		if (!s->blk_used[cand]) {
			s->blk_used[cand] = 1;
			c->blks[n++] = cand;
		}
	}
	if (n < c->nblk) {	/* the stride missed some: take any free */
		for (i = 0; n < c->nblk && i < s->nblocks; i++) {
			if (!s->blk_used[i]) {
				s->blk_used[i] = 1;
				c->blks[n++] = i;
			}
		}
	}
	s->blk_free -= n;
	return true;
}

static void free_blocks(struct sim *s, struct sim_cmd *c)
{
	uint32_t i;

	for (i = 0; i < c->nblk && c->blks; i++)
		s->blk_used[c->blks[i]] = 0;
	s->blk_free += c->blks ? c->nblk : 0;
	free(c->blks);
	c->blks = NULL;
}

/* Merge runs of adjacent blocks into iovecs, as the kernel does. */
static uint32_t count_iovs(const struct sim_cmd *c)
{
	uint32_t i, n = c->nblk ? 1 : 0;

	for (i = 1; i < c->nblk; i++)
		if (c->blks[i] != c->blks[i - 1] + 1)
			n++;
	return n;
}

static uint8_t *blk_ptr(struct sim *s, uint32_t blk)
{
	return s->map + s->data_off + (size_t)blk * s->o.block_bytes;
}

static void write_iovs(struct sim *s, const struct sim_cmd *c,
		       struct iovec *iov)
{
	uint32_t i, left = c->len, bb = s->o.block_bytes;
	int n = -1;

	for (i = 0; i < c->nblk; i++) {
		uint32_t take = left < bb ? left : bb;
		uint64_t off = s->data_off + (uint64_t)c->blks[i] * bb;

		if (i == 0 || c->blks[i] != c->blks[i - 1] + 1) {
			n++;
			iov[n].iov_base = (void *)(uintptr_t)off;
			iov[n].iov_len = 0;
		}
		iov[n].iov_len += take;
		left -= take;
	}
}

static void copy_blocks(struct sim *s, const struct sim_cmd *c, uint8_t *buf,
			uint32_t len, bool to_blocks)
{
	uint32_t i, done = 0, bb = s->o.block_bytes;

	for (i = 0; i < c->nblk && done < len; i++) {
		uint32_t take = len - done < bb ? len - done : bb;

		if (to_blocks)
			memcpy(blk_ptr(s, c->blks[i]), buf + done, take);
		else
			memcpy(buf + done, blk_ptr(s, c->blks[i]), take);
		done += take;
	}
}

int sim_prepare(struct sim *s, const uint8_t *cdb, unsigned int cdb_len,
		enum sim_dir dir, const void *out, uint32_t len,
		struct tcmu_cmd_entry **entry)
{
	struct tcmu_cmd_entry *ent;
	struct sim_cmd *c;
	uint32_t iov_cnt, base, size, i;
	int id;

	if (!cdb || !cdb_len || cdb_len > 264 || (dir == SIM_DIR_NONE && len))
		return -1;
	id = alloc_id(s);
	if (!id)
		return 0;
	c = &s->cmds[id];
	memset(c, 0, sizeof(*c));
	c->dir = dir;
	c->len = len;
	c->nblk = (len + s->o.block_bytes - 1) / s->o.block_bytes;
	if (!alloc_blocks(s, c))
		return 0;
	iov_cnt = count_iovs(c);
	base = sizeof(struct tcmu_cmd_entry);
	if (48 + iov_cnt * 16 > base)
		base = 48 + iov_cnt * 16;
	base = round8(base);
	size = base + round8(cdb_len);
	if (size >= s->cmdr_size / 2 || !ring_has_room(s, size)) {
		free_blocks(s, c);
		c->nblk = 0;
		return 0;
	}
	pad_if_needed(s, size);

	ent = (struct tcmu_cmd_entry *)head_entry(s);
	memset(ent, 0, size);
	put_len_op(s, size, TCMU_OP_CMD);
	ent->hdr.cmd_id = (uint16_t)id;
	ent->req.iov_cnt = iov_cnt;
	write_iovs(s, c, (struct iovec *)((uint8_t *)ent + 48));
	ent->req.cdb_off = SIM_CMDR_OFF + s->phead + base;
	memcpy(s->map + ent->req.cdb_off, cdb, cdb_len);

	if (dir == SIM_DIR_TO_DEV && out)
		copy_blocks(s, c, (uint8_t *)out, len, true);
	else
		for (i = 0; i < c->nblk; i++)
			memset(blk_ptr(s, c->blks[i]), DATA_POISON,
			       s->o.block_bytes);

	advance_head(s, size);
	c->live = true;
	c->res.data_len = len;
	s->inflight++;
	s->stats.submitted++;
	if (entry)
		*entry = ent;
	return id;
}

void sim_publish(struct sim *s)
{
	uint32_t one = 1;

	if (s->phead == s->head)
		return;
	__atomic_store_n(&s->mb->cmd_head, s->phead, __ATOMIC_RELEASE);
	s->head = s->phead;
	/* A full socket already holds a pending wake-up; that is enough. */
	if (send(s->fds[1], &one, sizeof(one), MSG_DONTWAIT) < 0 &&
	    errno != EAGAIN)
		sim_break(s, "notify failed");
}

int sim_submit(struct sim *s, const uint8_t *cdb, unsigned int cdb_len,
	       enum sim_dir dir, const void *out, uint32_t len)
{
	int id = sim_prepare(s, cdb, cdb_len, dir, out, len, NULL);

	if (id > 0)
		sim_publish(s);
	return id;
}

int sim_submit_tmr(struct sim *s, uint8_t type, const uint16_t *ids,
		   uint32_t cnt)
{
	uint32_t size = round8(32 + cnt * 2);
	uint8_t *ent;

	if (size >= s->cmdr_size / 2 || !ring_has_room(s, size))
		return 0;
	pad_if_needed(s, size);
	ent = head_entry(s);
	memset(ent, 0, size);
	put_len_op(s, size, TCMU_OP_TMR);
	ent[8] = type;
	memcpy(ent + 12, &cnt, sizeof(cnt));
	if (cnt)
		memcpy(ent + 32, ids, cnt * sizeof(uint16_t));
	advance_head(s, size);
	s->stats.tmrs++;
	sim_publish(s);
	return 1;
}

int sim_inject(struct sim *s, const void *bytes, uint32_t len)
{
	uint32_t size = round8(len < 8 ? 8 : len);

	if (size >= s->cmdr_size / 2 || !ring_has_room(s, size))
		return 0;
	pad_if_needed(s, size);
	memset(head_entry(s), 0, size);
	memcpy(head_entry(s), bytes, len);
	s->shadow[s->phead / 8] = ld32(head_entry(s));
	advance_head(s, size);
	sim_publish(s);
	return 1;
}

static void complete_one(struct sim *s, struct sim_cmd *c,
			 const struct tcmu_cmd_entry *ent)
{
	struct tl_sim_result *r = &c->res;
	uint32_t copy = c->len;

	r->status = ent->rsp.scsi_status;
	r->read_len_valid = false;
	r->read_len = c->len;
	r->residual = 0;
	if (ent->hdr.uflags & TCMU_UFLAG_UNKNOWN_OP)
		r->status = 0x02;
	else if (c->dir == SIM_DIR_FROM_DEV &&
		 (ent->hdr.uflags & TCMU_UFLAG_READ_LEN) && ent->rsp.read_len) {
		/* The kernel ignores a read_len of 0, as here. */
		r->read_len_valid = true;
		if (ent->rsp.read_len < c->len)
			r->read_len = ent->rsp.read_len;
		r->residual = c->len - r->read_len;
		copy = r->read_len;
	}
	if (r->status == 0x02)
		memcpy(r->sense, ent->rsp.sense_buffer, sizeof(r->sense));
	if (c->dir == SIM_DIR_FROM_DEV &&
	    (r->status != 0x02 || r->read_len_valid)) {
		r->data = calloc(1, c->len ? c->len : 1);
		if (r->data)
			copy_blocks(s, c, r->data, copy, false);
	}
	free_blocks(s, c);
	r->done = true;
	c->done = true;
	s->inflight--;
	s->stats.completed++;
}

static void drain_kicks(struct sim *s)
{
	uint32_t v;

	while (recv(s->fds[1], &v, sizeof(v), MSG_DONTWAIT) > 0)
		s->stats.kicks++;
}

int sim_reap(struct sim *s)
{
	uint32_t tail;
	int n = 0;

	drain_kicks(s);
	if (s->broken)
		return -1;
	tail = __atomic_load_n(&s->mb->cmd_tail, __ATOMIC_ACQUIRE);
	if (tail >= s->cmdr_size || (tail & 7))
		return sim_break(s, "cmd_tail out of range");
	if ((tail + s->cmdr_size - s->last_cleaned) % s->cmdr_size >
	    (s->head + s->cmdr_size - s->last_cleaned) % s->cmdr_size)
		return sim_break(s, "cmd_tail moved past cmd_head");

	while (s->last_cleaned != tail) {
		uint8_t *p = s->map + SIM_CMDR_OFF + s->last_cleaned;
		uint32_t len_op = ld32(p);
		const struct tcmu_cmd_entry *ent = (void *)p;
		struct sim_cmd *c;

		if (len_op != s->shadow[s->last_cleaned / 8])
			return sim_break(s, "daemon changed an entry header");
		if (tcmu_hdr_get_len(len_op) < 8 ||
		    tcmu_hdr_get_len(len_op) > s->cmdr_size - s->last_cleaned)
			return sim_break(s, "entry length cannot be walked");
		if (tcmu_hdr_get_op(len_op) == TCMU_OP_CMD) {
			c = &s->cmds[ent->hdr.cmd_id];
			if (!c->live || c->done)
				return sim_break(s, "cmd_id not found, ring broken");
			complete_one(s, c, ent);
			n++;
		}
		s->last_cleaned = (s->last_cleaned + tcmu_hdr_get_len(len_op)) %
				  s->cmdr_size;
	}
	return n;
}

const struct tl_sim_result *sim_result(const struct sim *s, uint16_t id)
{
	if (!s->cmds[id].live)
		return NULL;
	return &s->cmds[id].res;
}

void sim_release(struct sim *s, uint16_t id)
{
	struct sim_cmd *c = &s->cmds[id];

	if (!c->live || !c->done)
		return;
	free(c->res.data);
	memset(c, 0, sizeof(*c));
}

void sim_reset_ring(struct sim *s)
{
	uint32_t i;

	for (i = 1; i < SIM_MAX_IDS; i++) {
		struct sim_cmd *c = &s->cmds[i];

		if (c->live && !c->done) {
			/* Retryable: the initiator sees BUSY. */
			free_blocks(s, c);
			c->res.status = 0x08;
			c->res.done = true;
			c->done = true;
			s->inflight--;
		}
	}
	s->head = s->phead = s->last_cleaned = 0;
	s->mb->cmd_head = 0;
	s->mb->cmd_tail = 0;
	s->broken = false;
	s->why = NULL;
}
