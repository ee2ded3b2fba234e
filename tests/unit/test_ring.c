// SPDX-License-Identifier: MIT
/*
 * test_ring.c - the ring against the kernel simulator.
 *
 * A small RAM disk plays the daemon: it serves READ(10)/WRITE(10) through
 * the ring's iovecs.  Data written is a pattern derived from LBA and a
 * generation counter, so any mix-up of slots, iovecs or completions shows
 * up as wrong bytes.
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tcmu_uapi.h"

#include "check.h"
#include "ring.h"
#include "sim.h"

#define BS 512u
#define DISK_BLOCKS 4096u

static void pattern(uint8_t *buf, uint32_t lba, uint32_t n, uint32_t gen);

struct rig {
	struct sim *sim;
	void *map;
	struct ring ring;
	uint8_t *disk;
	uint32_t seed;
};

static uint32_t rnd(struct rig *g)
{
	g->seed = g->seed * 1103515245u + 12345u;
	return g->seed >> 8;
}

static void rig_init(struct rig *g, const struct sim_opts *o)
{
	const char *err = NULL;

	memset(g, 0, sizeof(*g));
	g->seed = 42;
	g->sim = sim_new(o);
	CHECK(g->sim != NULL);
	g->map = mmap(NULL, sim_map_size(g->sim), PROT_READ | PROT_WRITE,
		      MAP_SHARED, sim_memfd(g->sim), 0);
	CHECK(g->map != MAP_FAILED);
	CHECK_EQ(ring_attach(&g->ring, g->map, sim_map_size(g->sim), &err), 0);
	g->disk = calloc(DISK_BLOCKS, BS);
	pattern(g->disk, 0, DISK_BLOCKS, 0);
}

static void rig_fini(struct rig *g)
{
	ring_detach(&g->ring);
	munmap(g->map, sim_map_size(g->sim));
	sim_free(g->sim);
	free(g->disk);
}

static void cdb10(uint8_t *cdb, uint8_t op, uint32_t lba, uint16_t n)
{
	memset(cdb, 0, 10);
	cdb[0] = op;
	cdb[2] = lba >> 24;
	cdb[3] = lba >> 16;
	cdb[4] = lba >> 8;
	cdb[5] = lba;
	cdb[7] = n >> 8;
	cdb[8] = n;
}

static void pattern(uint8_t *buf, uint32_t lba, uint32_t n, uint32_t gen)
{
	uint32_t i, off;

	/* Depends only on the absolute byte offset and the generation. */
	for (i = 0; i < n * BS; i++) {
		off = lba * BS + i;
		buf[i] = (uint8_t)(off * 31u + gen * 7u + (off >> 9) * 13u);
	}
}

/* The daemon's work for one command: move data between disk and iovecs. */
static void serve(struct rig *g, struct tl_cmd *c)
{
	uint64_t off = c->lba * BS, done = 0;
	uint32_t i;

	CHECK(c->flags & TL_CMDF_HAS_LBA);
	CHECK_EQ(c->data_len, (uint64_t)c->nblocks * BS);
	for (i = 0; i < c->iov_cnt; i++) {
		if (c->opcode == 0x28)
			memcpy(c->iov[i].base, g->disk + off + done,
			       c->iov[i].len);
		else
			memcpy(g->disk + off + done, c->iov[i].base,
			       c->iov[i].len);
		done += c->iov[i].len;
	}
	c->status = TL_STATUS_GOOD;
}

static void kick(struct rig *g)
{
	uint32_t one = 1;

	if (ring_publish(&g->ring))
		CHECK_EQ(write(sim_daemon_fd(g->sim), &one, 4), 4);
}

/* Fetch everything, complete in random order if asked, publish once. */
static int drain(struct rig *g, bool shuffle)
{
	struct tl_cmd *got[4096];
	struct ring_event ev;
	int n = 0, i, r;

	while ((r = ring_fetch(&g->ring, &ev)) > 0) {
		if (ev.type == RING_EV_CMD && n < 4096)
			got[n++] = ev.cmd;
	}
	CHECK_EQ(r, 0);
	for (i = 0; i < n; i++)
		serve(g, got[i]);
	if (shuffle) {
		for (i = n - 1; i > 0; i--) {
			int j = (int)(rnd(g) % (uint32_t)(i + 1));
			struct tl_cmd *t = got[i];

			got[i] = got[j];
			got[j] = t;
		}
	}
	for (i = 0; i < n; i++)
		CHECK_EQ(ring_complete(&g->ring, got[i]), 0);
	kick(g);
	return n;
}

static int submit_rw(struct rig *g, uint8_t op, uint32_t lba, uint16_t n,
		     uint32_t gen)
{
	uint8_t cdb[10], *buf = malloc((size_t)n * BS + 1);
	int id;

	cdb10(cdb, op, lba, n);
	if (op == 0x2a)
		pattern(buf, lba, n, gen);
	id = sim_submit(g->sim, cdb, 10,
			op == 0x2a ? SIM_DIR_TO_DEV : SIM_DIR_FROM_DEV,
			op == 0x2a ? buf : NULL, (uint32_t)n * BS);
	free(buf);
	return id;
}

static void check_read(struct rig *g, int id, uint32_t lba, uint16_t n,
		       uint32_t gen)
{
	const struct tl_sim_result *res = sim_result(g->sim, (uint16_t)id);
	uint8_t *want = malloc((size_t)n * BS);

	CHECK(res && res->done);
	if (res && res->done) {
		CHECK_EQ(res->status, 0);
		pattern(want, lba, n, gen);
		CHECK(res->data && !memcmp(res->data, want, (size_t)n * BS));
	}
	free(want);
	sim_release(g->sim, (uint16_t)id);
}

/* Entries of many sizes in a tiny ring force PADs at every offset. */
static void test_pad_wrap(void)
{
	/* Small data blocks: 1..24 iovecs, so entry sizes vary. */
	struct sim_opts o = { .ring_bytes = 4096, .data_bytes = 1 << 20,
			      .block_bytes = 512,
			      .caps = TCMU_MAILBOX_FLAG_CAP_OOOC,
			      .scatter = true, .seed = 7 };
	struct rig g;
	uint32_t round;

	rig_init(&g, &o);
	for (round = 0; round < 3000; round++) {
		uint16_t n = (uint16_t)(1 + rnd(&g) % 24);
		uint32_t lba = rnd(&g) % (DISK_BLOCKS - n);
		int w, r;

		w = submit_rw(&g, 0x2a, lba, n, round);
		CHECK(w > 0);
		drain(&g, false);
		CHECK_EQ(sim_reap(g.sim), 1);
		sim_release(g.sim, (uint16_t)w);
		r = submit_rw(&g, 0x28, lba, n, 0);
		CHECK(r > 0);
		drain(&g, false);
		CHECK_EQ(sim_reap(g.sim), 1);
		check_read(&g, r, lba, n, round);
	}
	CHECK(sim_stats(g.sim)->pads > 100);
	CHECK(!sim_broken(g.sim, NULL));
	CHECK_EQ(g.ring.inflight, 0);
	rig_fini(&g);
}

/* Thousands of commands completed in random orders, data checked. */
static void test_out_of_order(void)
{
	struct sim_opts o = { .ring_bytes = 64 << 10, .data_bytes = 8 << 20,
			      .caps = TCMU_MAILBOX_FLAG_CAP_OOOC |
				      TCMU_MAILBOX_FLAG_CAP_READ_LEN,
			      .scatter = true, .seed = 99 };
	uint32_t gen[DISK_BLOCKS / 8] = { 0 };
	struct rig g;
	int round, i, total = 0;

	rig_init(&g, &o);
	for (round = 0; round < 200; round++) {
		int ids[32], n = 0;
		uint32_t lbas[32];
		bool writes[32];

		/* 32 commands on distinct 8-block extents, mixed R/W. */
		for (i = 0; i < 32; i++) {
			uint32_t ext = (uint32_t)(round * 32 + i) %
				       (DISK_BLOCKS / 8);

			lbas[i] = ext * 8;
			writes[i] = rnd(&g) & 1;
			if (writes[i])
				gen[ext]++;
			ids[n] = submit_rw(&g, writes[i] ? 0x2a : 0x28,
					   lbas[i], 8, gen[ext]);
			CHECK(ids[n] > 0);
			n++;
		}
		total += drain(&g, true);
		CHECK_EQ(sim_reap(g.sim), 32);
		for (i = 0; i < n; i++) {
			if (writes[i]) {
				CHECK_EQ(sim_result(g.sim, ids[i])->status, 0);
				sim_release(g.sim, (uint16_t)ids[i]);
			} else {
				check_read(&g, ids[i], lbas[i], 8,
					   gen[lbas[i] / 8]);
			}
		}
	}
	CHECK_EQ(total, 200 * 32);
	CHECK(!sim_broken(g.sim, NULL));
	rig_fini(&g);
}

/* A short data-in transfer reports its residual through READ_LEN. */
static void test_read_len(void)
{
	struct sim_opts o = { .caps = TCMU_MAILBOX_FLAG_CAP_OOOC |
				      TCMU_MAILBOX_FLAG_CAP_READ_LEN };
	struct sim_opts o_old = { .caps = TCMU_MAILBOX_FLAG_CAP_OOOC };
	uint8_t inq[6] = { 0x12, 0, 0, 0, 255, 0 };
	struct ring_event ev;
	const struct tl_sim_result *res;
	struct rig g;
	int id;

	rig_init(&g, &o);
	id = sim_submit(g.sim, inq, 6, SIM_DIR_FROM_DEV, NULL, 255);
	CHECK_EQ(ring_fetch(&g.ring, &ev), 1);
	CHECK_EQ(ev.cmd->read_len, 255);	/* full transfer by default */
	memset(ev.cmd->iov[0].base, 0x11, 36);
	ev.cmd->read_len = 36;
	CHECK_EQ(ring_complete(&g.ring, ev.cmd), 0);
	kick(&g);
	CHECK_EQ(sim_reap(g.sim), 1);
	res = sim_result(g.sim, id);
	CHECK(res->read_len_valid);
	CHECK_EQ(res->residual, 255 - 36);
	CHECK_EQ(res->data[35], 0x11);
	CHECK_EQ(res->data[36], 0);	/* not copied back */
	sim_release(g.sim, id);

	/* Full length: no flag, no residual. */
	id = sim_submit(g.sim, inq, 6, SIM_DIR_FROM_DEV, NULL, 36);
	CHECK_EQ(ring_fetch(&g.ring, &ev), 1);
	CHECK_EQ(ring_complete(&g.ring, ev.cmd), 0);
	kick(&g);
	CHECK_EQ(sim_reap(g.sim), 1);
	CHECK(!sim_result(g.sim, id)->read_len_valid);
	sim_release(g.sim, id);
	rig_fini(&g);

	/* A kernel without CAP_READ_LEN never sees the flag. */
	rig_init(&g, &o_old);
	id = sim_submit(g.sim, inq, 6, SIM_DIR_FROM_DEV, NULL, 255);
	CHECK_EQ(ring_fetch(&g.ring, &ev), 1);
	ev.cmd->read_len = 36;
	CHECK_EQ(ring_complete(&g.ring, ev.cmd), 0);
	kick(&g);
	CHECK_EQ(sim_reap(g.sim), 1);
	CHECK(!sim_result(g.sim, id)->read_len_valid);
	sim_release(g.sim, id);
	rig_fini(&g);
}

/* TMR entries come up with their ids and are skipped at the tail. */
static void test_tmr(void)
{
	struct sim_opts o = { .caps = TCMU_MAILBOX_FLAG_CAP_OOOC |
				      TCMU_MAILBOX_FLAG_CAP_TMR };
	struct tl_cmd *held[3];
	struct ring_event ev;
	uint16_t ids[3];
	struct rig g;
	int i, r;

	rig_init(&g, &o);
	for (i = 0; i < 3; i++)
		ids[i] = (uint16_t)submit_rw(&g, 0x28, (uint32_t)i * 8, 8, 0);
	CHECK(sim_submit_tmr(g.sim, 1 /* ABORT_TASK */, ids + 1, 2) == 1);
	for (i = 0; i < 3; i++) {
		CHECK_EQ(ring_fetch(&g.ring, &ev), 1);
		CHECK_EQ(ev.type, RING_EV_CMD);
		held[i] = ev.cmd;
	}
	CHECK_EQ(ring_fetch(&g.ring, &ev), 1);
	CHECK_EQ(ev.type, RING_EV_TMR);
	CHECK_EQ(ev.tmr_type, 1);
	CHECK_EQ(ev.tmr_cnt, 2);
	CHECK_EQ(ev.tmr_ids[0], ids[1]);
	CHECK_EQ(ev.tmr_ids[1], ids[2]);
	CHECK(ring_cmd_by_id(&g.ring, ids[2]) == held[2]);
	CHECK_EQ(ring_fetch(&g.ring, &ev), 0);
	for (i = 2; i >= 0; i--) {
		serve(&g, held[i]);
		CHECK_EQ(ring_complete(&g.ring, held[i]), 0);
	}
	kick(&g);
	CHECK_EQ(sim_reap(g.sim), 3);
	/* The tail went past the TMR entry too: the ring is empty. */
	CHECK_EQ(g.ring.tail, g.ring.fetch);
	CHECK_EQ(((struct tcmu_mailbox *)g.map)->cmd_tail,
		 ((struct tcmu_mailbox *)g.map)->cmd_head);
	/* Three more commands and a TMR in a tiny burst still work. */
	r = submit_rw(&g, 0x28, 0, 1, 0);
	CHECK(r > 0);
	drain(&g, false);
	CHECK_EQ(sim_reap(g.sim), 1);
	rig_fini(&g);
}

/* Fill the ring until the simulator refuses, drain, and refill. */
static void test_ring_full(void)
{
	struct sim_opts o = { .ring_bytes = 8192, .data_bytes = 4 << 20,
			      .caps = TCMU_MAILBOX_FLAG_CAP_OOOC };
	struct rig g;
	int round, queued, id;

	rig_init(&g, &o);
	for (round = 0; round < 50; round++) {
		queued = 0;
		while ((id = submit_rw(&g, 0x2a, (uint32_t)queued % 512, 1,
				       1)) > 0)
			queued++;
		CHECK_EQ(id, 0);
		CHECK(queued > 10);
		CHECK_EQ(drain(&g, round & 1), queued);
		CHECK_EQ(sim_reap(g.sim), queued);
		CHECK_EQ(sim_inflight(g.sim), 0);
		for (id = 1; id <= queued + 1; id++)
			sim_release(g.sim, (uint16_t)id);
	}
	CHECK(!sim_broken(g.sim, NULL));
	rig_fini(&g);
}

/* Round-robin ids wrap from 65535 to 1; slots are reused correctly. */
static void test_cmd_id_wrap(void)
{
	struct sim_opts o = { .caps = TCMU_MAILBOX_FLAG_CAP_OOOC,
			      .cyclic_ids = true };
	struct rig g;
	uint32_t i, wrapped = 0, last = 0;

	rig_init(&g, &o);
	for (i = 0; i < 70000 / 4; i++) {
		int ids[4], k;

		for (k = 0; k < 4; k++) {
			ids[k] = submit_rw(&g, k & 1 ? 0x28 : 0x2a, k * 8, 8,
					   3);
			CHECK(ids[k] > 0);
			if ((uint32_t)ids[k] < last)
				wrapped++;
			last = (uint32_t)ids[k];
		}
		drain(&g, true);
		CHECK_EQ(sim_reap(g.sim), 4);
		for (k = 0; k < 4; k++) {
			if (k & 1)
				check_read(&g, ids[k], k * 8, 8, 0);
			else
				sim_release(g.sim, (uint16_t)ids[k]);
		}
	}
	CHECK_EQ(wrapped, 1);
	CHECK(!sim_broken(g.sim, NULL));
	rig_fini(&g);
}

/* An entry with an opcode the daemon does not know is flagged and skipped. */
static void test_unknown_opcode(void)
{
	struct sim_opts o = { .caps = TCMU_MAILBOX_FLAG_CAP_OOOC };
	uint8_t raw[24] = { 0 };
	struct ring_event ev;
	uint32_t len_op = 24 | 5, head;
	struct rig g;
	int id;

	rig_init(&g, &o);
	head = ((struct tcmu_mailbox *)g.map)->cmd_head;
	memcpy(raw, &len_op, 4);
	CHECK_EQ(sim_inject(g.sim, raw, sizeof(raw)), 1);
	id = submit_rw(&g, 0x28, 0, 1, 0);
	CHECK_EQ(ring_fetch(&g.ring, &ev), 1);
	CHECK_EQ(ev.type, RING_EV_CMD);
	CHECK_EQ(ev.cmd->id, id);
	CHECK(((uint8_t *)g.map)[128 + head + 7] & TCMU_UFLAG_UNKNOWN_OP);
	CHECK_EQ(g.ring.stats.unknown_ops, 1);
	serve(&g, ev.cmd);
	CHECK_EQ(ring_complete(&g.ring, ev.cmd), 0);
	kick(&g);
	CHECK_EQ(sim_reap(g.sim), 1);
	CHECK(!sim_broken(g.sim, NULL));
	rig_fini(&g);
}

enum corruption {
	BAD_CDB_OFF, BAD_CDB_END, BAD_IOV_CNT, BAD_IOV_LOW, BAD_IOV_HIGH,
	BAD_IOV_WRAP, BAD_BIDI_CNT, BAD_KINDS
};

static void corrupt(struct rig *g, struct tcmu_cmd_entry *e, int kind)
{
	size_t map = sim_map_size(g->sim);

	switch (kind) {
	case BAD_CDB_OFF:
		e->req.cdb_off = map + 4096;
		break;
	case BAD_CDB_END:
		e->req.cdb_off = map - 3;
		break;
	case BAD_IOV_CNT:
		e->req.iov_cnt = 0x40000000;
		break;
	case BAD_IOV_LOW:
		e->req.iov[0].iov_base = (void *)(uintptr_t)64; /* mailbox */
		break;
	case BAD_IOV_HIGH:
		e->req.iov[0].iov_base = (void *)(uintptr_t)(map - 100);
		break;
	case BAD_IOV_WRAP:
		e->req.iov[0].iov_len = (size_t)-4096;
		break;
	case BAD_BIDI_CNT:
		e->req.iov_bidi_cnt = 1000;
		break;
	}
}

/* Each malformed entry fails its own command; the ring keeps going. */
static void test_malformed(void)
{
	struct sim_opts o = { .caps = TCMU_MAILBOX_FLAG_CAP_OOOC };
	uint8_t cdb[10];
	struct rig g;
	int kind;

	rig_init(&g, &o);
	for (kind = 0; kind < BAD_KINDS; kind++) {
		struct tcmu_cmd_entry *e = NULL;
		struct ring_event ev;
		const struct tl_sim_result *res;
		int bad, good;

		cdb10(cdb, 0x28, 0, 1);
		bad = sim_prepare(g.sim, cdb, 10, SIM_DIR_FROM_DEV, NULL, BS,
				  &e);
		CHECK(bad > 0);
		corrupt(&g, e, kind);
		good = sim_prepare(g.sim, cdb, 10, SIM_DIR_FROM_DEV, NULL, BS,
				   NULL);
		sim_publish(g.sim);

		CHECK_EQ(ring_fetch(&g.ring, &ev), 1);
		CHECK_EQ(ev.type, RING_EV_REJECTED);
		CHECK(ev.why != NULL);
		CHECK_EQ(ring_fetch(&g.ring, &ev), 1);
		CHECK_EQ(ev.type, RING_EV_CMD);
		serve(&g, ev.cmd);
		CHECK_EQ(ring_complete(&g.ring, ev.cmd), 0);
		kick(&g);
		CHECK_EQ(sim_reap(g.sim), 2);
		res = sim_result(g.sim, bad);
		CHECK_EQ(res->status, 0x02);
		CHECK_EQ(res->sense[2], 0x04);	/* HARDWARE ERROR */
		CHECK_EQ(res->sense[12], 0x44);
		CHECK_EQ(sim_result(g.sim, good)->status, 0);
		sim_release(g.sim, bad);
		sim_release(g.sim, good);
	}
	CHECK_EQ(g.ring.stats.rejected, BAD_KINDS);
	CHECK(!sim_broken(g.sim, NULL));
	rig_fini(&g);
}

/* Entries that cannot be walked stop the ring, never the process. */
static void test_unwalkable(void)
{
	struct sim_opts o = { .caps = TCMU_MAILBOX_FLAG_CAP_OOOC };
	struct ring_event ev;
	uint8_t raw[16] = { 0 };
	uint32_t len_op;
	struct rig g;

	/* Length 0: the ring cannot advance. */
	rig_init(&g, &o);
	len_op = 0 | 1;
	memcpy(raw, &len_op, 4);
	sim_inject(g.sim, raw, sizeof(raw));
	CHECK_EQ(ring_fetch(&g.ring, &ev), -1);
	CHECK(g.ring.broken);
	CHECK_EQ(ring_fetch(&g.ring, &ev), -1);
	rig_fini(&g);

	/* Length beyond the head. */
	rig_init(&g, &o);
	len_op = 4096 | 1;
	memcpy(raw, &len_op, 4);
	sim_inject(g.sim, raw, sizeof(raw));
	CHECK_EQ(ring_fetch(&g.ring, &ev), -1);
	rig_fini(&g);

	/* cmd_head outside the ring. */
	rig_init(&g, &o);
	((struct tcmu_mailbox *)g.map)->cmd_head = 0x7ffffff8;
	CHECK_EQ(ring_fetch(&g.ring, &ev), -1);
	rig_fini(&g);

	/* A duplicate cmd_id is answered through the spare slot. */
	rig_init(&g, &o);
	{
		struct tcmu_cmd_entry *e;
		uint8_t cdb[10];
		int a, b;

		cdb10(cdb, 0x28, 0, 1);
		a = sim_prepare(g.sim, cdb, 10, SIM_DIR_FROM_DEV, NULL, BS,
				NULL);
		b = sim_prepare(g.sim, cdb, 10, SIM_DIR_FROM_DEV, NULL, BS, &e);
		e->hdr.cmd_id = (uint16_t)a;
		sim_publish(g.sim);
		CHECK(b > 0);
		CHECK_EQ(ring_fetch(&g.ring, &ev), 1);
		CHECK_EQ(ev.type, RING_EV_CMD);
		CHECK_EQ(ring_fetch(&g.ring, &ev), 1);
		CHECK_EQ(ev.type, RING_EV_REJECTED);
		CHECK_EQ(g.ring.inflight, 1);
	}
	rig_fini(&g);
}

/* A batch of completions is published with one kick. */
static void test_one_kick_per_batch(void)
{
	struct sim_opts o = { .caps = TCMU_MAILBOX_FLAG_CAP_OOOC };
	struct rig g;
	int i;

	rig_init(&g, &o);
	for (i = 0; i < 32; i++)
		CHECK(submit_rw(&g, 0x28, (uint32_t)i, 1, 0) > 0);
	CHECK_EQ(drain(&g, true), 32);
	CHECK_EQ(sim_reap(g.sim), 32);
	CHECK_EQ(sim_stats(g.sim)->kicks, 1);
	/* Nothing completed: no kick. */
	CHECK(!ring_publish(&g.ring));
	rig_fini(&g);
}

/* Completing something that is not in flight is refused. */
static void test_bad_completion(void)
{
	struct sim_opts o = { .caps = TCMU_MAILBOX_FLAG_CAP_OOOC };
	struct ring_event ev;
	struct tl_cmd stray;
	struct rig g;

	rig_init(&g, &o);
	memset(&stray, 0, sizeof(stray));
	stray.state = TL_CMD_ACTIVE;
	CHECK_EQ(ring_complete(&g.ring, &stray), -1);
	submit_rw(&g, 0x28, 0, 1, 0);
	CHECK_EQ(ring_fetch(&g.ring, &ev), 1);
	CHECK_EQ(ring_complete(&g.ring, ev.cmd), 0);
	CHECK_EQ(ring_complete(&g.ring, ev.cmd), -1);	/* twice */
	CHECK(!g.ring.broken);
	rig_fini(&g);
}

/* After the kernel's reset_ring both sides start again at offset 0. */
static void test_reset(void)
{
	struct sim_opts o = { .caps = TCMU_MAILBOX_FLAG_CAP_OOOC };
	struct ring_event ev;
	struct rig g;
	int id;

	rig_init(&g, &o);
	id = submit_rw(&g, 0x28, 0, 1, 0);
	CHECK_EQ(ring_fetch(&g.ring, &ev), 1);
	sim_reset_ring(g.sim);
	ring_reset(&g.ring);
	CHECK_EQ(sim_result(g.sim, id)->status, 0x08);	/* BUSY: retried */
	sim_release(g.sim, id);
	CHECK_EQ(g.ring.inflight, 0);
	id = submit_rw(&g, 0x28, 0, 1, 0);
	CHECK_EQ(drain(&g, false), 1);
	CHECK_EQ(sim_reap(g.sim), 1);
	CHECK(!sim_broken(g.sim, NULL));
	rig_fini(&g);
}

int main(void)
{
	RUN(test_pad_wrap);
	RUN(test_out_of_order);
	RUN(test_read_len);
	RUN(test_tmr);
	RUN(test_ring_full);
	RUN(test_cmd_id_wrap);
	RUN(test_unknown_opcode);
	RUN(test_malformed);
	RUN(test_unwalkable);
	RUN(test_one_kick_per_batch);
	RUN(test_bad_completion);
	RUN(test_reset);
	return check_done();
}
