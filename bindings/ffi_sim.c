// SPDX-License-Identifier: MIT
/*
 * ffi_sim.c - a device on the kernel simulator, served by an inline worker
 * in the caller's thread.  Specs, the sandbox and benchmarks play the
 * initiator through these functions from a lua_State of their own; the
 * handler runs in the worker's state, exactly as in the daemon.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "device.h"
#include "sim.h"
#include "tl_abi.h"
#include "lua_host.h"
#include "worker.h"

struct tl_simdev {
	struct sim *sim;
	struct tl_worker *w;	/* may have a successor: use tl_worker_live() */
	struct tl_dev *dev;
	struct tl_simdev *owner;	/* the device whose worker we share */
	unsigned int users;		/* devices sharing ours */
	bool closed;			/* freed, kept for its worker's users */
};

static void set_info(struct tl_dev_info *info, const struct tl_simdev_opts *o)
{
	info->block_size = o->block_size ? o->block_size : 512;
	info->size = o->size;
	info->num_blocks = o->size / info->block_size;
	info->max_xfer_blocks = o->max_xfer_blocks ? o->max_xfer_blocks :
				(8u << 20) / info->block_size;
	info->write_cache = o->write_cache;
	snprintf(info->name, sizeof(info->name), "%s",
		 o->name ? o->name : "sim0");
	snprintf(info->subtype, sizeof(info->subtype), "%s", o->handler);
}

struct tl_simdev *tl_ffi_simdev_new(const struct tl_simdev_opts *o, char *err,
				    size_t errlen)
{
	struct sim_opts so = {
		.ring_bytes = o->ring_bytes ? o->ring_bytes : 1u << 20,
		.data_bytes = o->data_bytes ? o->data_bytes : 64u << 20,
		.caps = o->caps,
	};
	struct tl_simdev *sd = calloc(1, sizeof(*sd));
	struct tl_worker_opts wo = { 0 };
	const char *msg = NULL;
	void *map;
	int fd;

	if (!sd || !o->handler) {
		snprintf(err, errlen, "bad arguments");
		free(sd);
		return NULL;
	}
	sd->sim = sim_new(&so);
	if (!sd->sim) {
		snprintf(err, errlen, "cannot create the simulator");
		goto fail;
	}
	wo.handler_dirs = o->handler_dirs;
	wo.hot_reload = o->hot_reload;
	wo.no_uring = o->no_uring;
	wo.lua_timeout_ms = o->lua_timeout_ms;
	wo.lua_memory_limit = o->lua_memory_limit;
	if (o->share) {
		sd->owner = o->share->owner ? o->share->owner : o->share;
		sd->owner->users++;
		sd->w = tl_worker_live(sd->owner->w);
	} else {
		sd->w = tl_worker_new(0, o->threaded, &wo, err, errlen);
		if (!sd->w)
			goto fail;
	}
	/* The daemon side gets its own fd and mapping, as with /dev/uioN. */
	fd = dup(sim_daemon_fd(sd->sim));
	map = mmap(NULL, sim_map_size(sd->sim), PROT_READ | PROT_WRITE,
		   MAP_SHARED, sim_memfd(sd->sim), 0);
	if (fd < 0 || map == MAP_FAILED) {
		snprintf(err, errlen, "cannot map the simulator");
		goto fail;
	}
	sd->dev = tl_dev_new(fd, map, sim_map_size(sd->sim), &msg);
	if (!sd->dev) {
		snprintf(err, errlen, "%s", msg);
		goto fail;
	}
	set_info(&sd->dev->info, o);
	if (tl_worker_add_device(sd->w, sd->dev, o->config, err, errlen)) {
		tl_dev_free(sd->dev);
		sd->dev = NULL;
		goto fail;
	}
	return sd;
fail:
	tl_ffi_simdev_free(sd);
	return NULL;
}

/*
 * A worker shared by several devices lives until the last of them is
 * freed, in whatever order that happens (the garbage collector's).
 */
void tl_ffi_simdev_free(struct tl_simdev *sd)
{
	struct tl_simdev *owner;

	if (!sd)
		return;
	owner = sd->owner;
	if (owner || sd->users) {
		if (sd->dev)
			tl_worker_remove_device(sd->w, sd->dev);
		sd->dev = NULL;
		sim_free(sd->sim);
		sd->sim = NULL;
		if (!owner) {
			sd->closed = true;	/* its users free it */
			return;
		}
		free(sd);
		if (--owner->users || !owner->closed)
			return;
		sd = owner;
	}
	if (sd->w)
		tl_worker_free(sd->w);	/* closes and frees its devices */
	sim_free(sd->sim);
	free(sd);
}

int tl_ffi_simdev_prepare(struct tl_simdev *sd, const uint8_t *cdb,
			  unsigned int cdb_len, int dir, const void *out,
			  uint32_t len)
{
	return sim_prepare(sd->sim, cdb, cdb_len, (enum sim_dir)dir, out, len,
			   NULL);
}

void tl_ffi_simdev_publish(struct tl_simdev *sd)
{
	sim_publish(sd->sim);
}

int tl_ffi_simdev_tmr(struct tl_simdev *sd, uint8_t type, const uint16_t *ids,
		      uint32_t cnt)
{
	return sim_submit_tmr(sd->sim, type, ids, cnt);
}

int tl_ffi_simdev_run(struct tl_simdev *sd, int wait_ms)
{
	struct tl_worker *w = tl_worker_live(sd->w);

	if (!w->threaded)
		tl_worker_run_once(w, wait_ms);
	else if (wait_ms)	/* its own thread serves it: just give it time */
		usleep(wait_ms > 0 && wait_ms < 10 ? (unsigned int)wait_ms * 1000u :
		       10000u);
	else
		sched_yield();
	return sim_reap(sd->sim);
}

int tl_ffi_simdev_async(struct tl_simdev *sd)
{
	return sd->w->uring != NULL;
}

const struct tl_sim_result *tl_ffi_simdev_result(struct tl_simdev *sd,
						 uint16_t id)
{
	return sim_result(sd->sim, id);
}

void tl_ffi_simdev_release(struct tl_simdev *sd, uint16_t id)
{
	sim_release(sd->sim, id);
}

int tl_ffi_simdev_resize(struct tl_simdev *sd, uint64_t size)
{
	tl_worker_resize_device(sd->w, sd->dev, size);
	return 0;
}

uint32_t tl_ffi_simdev_inflight(struct tl_simdev *sd)
{
	return sim_inflight(sd->sim);
}

int tl_ffi_simdev_eval(struct tl_simdev *sd, const char *code, char *out,
		       size_t outlen)
{
	return tl_worker_eval(sd->w, code, out, outlen);
}

const struct tl_dev_stats *tl_ffi_simdev_stats(struct tl_simdev *sd)
{
	return &sd->dev->stats;
}

int tl_ffi_simdev_reload(struct tl_simdev *sd, int force, char *err,
			 size_t errlen)
{
	return tl_worker_reload(sd->w, force != 0, err, errlen);
}

const char *tl_ffi_simdev_report(struct tl_simdev *sd)
{
	return tl_worker_live(sd->w)->wd_report;
}

unsigned int tl_ffi_simdev_rescues(struct tl_simdev *sd)
{
	return tl_worker_live(sd->w)->rescues;
}
