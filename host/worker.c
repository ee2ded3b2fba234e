// SPDX-License-Identifier: MIT
/*
 * worker.c - worker threads: a libev loop and a lua_State each.
 *
 * Other threads never touch a worker's devices or Lua state.  They post a
 * request and wake the loop with an ev_async; the worker runs it between
 * batches and signals completion, so adding a device is synchronous for
 * the caller (netlink must answer with the handler's verdict).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "device.h"
#include "tcmu_uapi.h"
#include "hotreload.h"
#include "log.h"
#include "lua_host.h"
#include "uring.h"
#include "worker.h"

#define WATCH_CHUNK 64

enum req_kind { REQ_ADD, REQ_REMOVE, REQ_RESIZE, REQ_RELOAD, REQ_REOPEN,
		REQ_STOP, REQ_EVAL, REQ_ADOPT };

struct tl_worker_req {
	enum req_kind kind;
	struct tl_dev *dev;
	const char *config;
	char *err;
	size_t errlen;
	int rc;
	bool force;
	uint64_t size;
	bool finished;
	struct tl_worker_req *next;
};

/* A timer or fd watcher lent to Lua; the id is its index. */
struct tl_watch {
	union {
		ev_timer timer;
		ev_io io;
	};
	struct tl_worker *w;
	int kind;		/* 0 free, TL_EV_TIMER, TL_EV_IO */
	int id;
};

static void flush_all(struct tl_worker *w)
{
	struct tl_dev *d;

	for (d = w->devs; d; d = d->next)
		tl_dev_flush(d);
}

void tl_worker_after_completions(struct tl_worker *w)
{
	struct tl_dev *d;

	if (w->requeued) {
		w->requeued = false;
		for (d = w->devs; d; d = d->next) {
			if (!d->requeued)
				continue;
			d->requeued = false;
			if (d->fast_inflight)
				tl_uring_drain(w->uring, d);
			tl_lua_dispatch(w, d);
		}
	}
	flush_all(w);
}

static void dev_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct tl_dev *d = io->data;

	tl_dev_service(d);
	/* Its submission may have completed other devices' commands. */
	if (d->w->uring)
		tl_worker_after_completions(d->w);
}

/* The options a device runs with, should a successor have to reopen it. */
static void keep_config(struct tl_dev *d, const char *config)
{
	if (d->config == config)
		return;
	free(d->config);
	d->config = config ? strdup(config) : NULL;
}

static int do_add(struct tl_worker *w, struct tl_dev *d, const char *config,
		  char *err, size_t errlen)
{
	d->w = w;
	if (tl_lua_open_device(w, d, config, err, errlen)) {
		d->w = NULL;
		return -1;
	}
	keep_config(d, config);
	d->opened = true;
	d->next = w->devs;
	w->devs = d;
	w->ndevs++;
	ev_io_init(&d->io, dev_io_cb, d->fd, EV_READ);
	d->io.data = d;
	ev_io_start(w->loop, &d->io);
	/* Commands may have queued before we watched the fd. */
	tl_dev_service(d);
	tl_hotreload_refresh(w);
	return 0;
}

static void do_remove(struct tl_worker *w, struct tl_dev *d)
{
	struct tl_dev **pp;

	ev_io_stop(w->loop, &d->io);
	/* The kernel may still be writing into its data area. */
	if (w->uring)
		tl_uring_drain(w->uring, d);
	for (pp = &w->devs; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			w->ndevs--;
			break;
		}
	}
	if (d->opened)
		tl_lua_close_device(w, d);
	d->opened = false;
	/* LOGICAL UNIT NOT SUPPORTED: the device is going away. */
	tl_dev_fail_all(d, 0x05, 0x25, 0x00);
	tl_dev_free(d);
}

/* runtime.reopen_device(id, options): new options for an open device. */
static int do_reopen(struct tl_worker *w, struct tl_dev *d, const char *config,
		     char *err, size_t errlen)
{
	lua_State *L = w->L;
	int top = lua_gettop(L), rc = 0;

	lua_rawgeti(L, LUA_REGISTRYINDEX, w->ref_runtime);
	lua_getfield(L, -1, "reopen_device");
	lua_pushinteger(L, d->info.id);
	if (config)
		lua_pushstring(L, config);
	else
		lua_pushnil(L);
	if (lua_pcall(L, 2, 2, 0)) {
		snprintf(err, errlen, "%s", lua_tostring(L, -1));
		rc = -1;
	} else if (!lua_toboolean(L, -2)) {
		snprintf(err, errlen, "%s", lua_tostring(L, -1) ?
			 lua_tostring(L, -1) : "the handler refused the options");
		rc = -1;
	}
	lua_settop(L, top);
	if (!rc)
		keep_config(d, config);
	tl_hotreload_refresh(w);
	return rc;
}

static void do_adopt(struct tl_worker *w, struct tl_dev *d);

static void run_req(struct tl_worker *w, struct tl_worker_req *r)
{
	switch (r->kind) {
	case REQ_ADD:
		r->rc = do_add(w, r->dev, r->config, r->err, r->errlen);
		break;
	case REQ_REMOVE:
		do_remove(w, r->dev);
		break;
	case REQ_RESIZE: {
		struct tl_dev_info *info = &r->dev->info;

		/* Only the worker touches info while the device is served. */
		info->size = r->size;
		info->num_blocks = r->size / info->block_size;
		info->generation++;
		tl_lua_resize(w, r->dev);
		break;
	}
	case REQ_RELOAD:
		r->rc = tl_lua_reload(w, r->force, r->err, r->errlen);
		if (r->rc) {
			w->reload_failures++;
			snprintf(w->reload_error, sizeof(w->reload_error),
				 "%s", r->err);
		} else {
			w->reloads++;
			w->reload_error[0] = '\0';
		}
		tl_hotreload_refresh(w);
		break;
	case REQ_REOPEN:
		r->rc = do_reopen(w, r->dev, r->config, r->err, r->errlen);
		break;
	case REQ_STOP:
		w->stopping = true;
		ev_break(w->loop, EVBREAK_ALL);
		break;
	case REQ_EVAL:
		r->rc = tl_lua_eval(w, r->config, r->err, r->errlen);
		break;
	case REQ_ADOPT:
		do_adopt(w, r->dev);
		break;
	}
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct tl_worker *w = a->data;
	struct tl_worker_req *r;

	pthread_mutex_lock(&w->lock);
	while ((r = w->reqs)) {
		w->reqs = r->next;
		w->running = r;
		pthread_mutex_unlock(&w->lock);
		run_req(w, r);
		pthread_mutex_lock(&w->lock);
		w->running = NULL;
		r->finished = true;
		pthread_cond_broadcast(&w->done);
	}
	pthread_mutex_unlock(&w->lock);
	tl_worker_after_completions(w);
}

/* Run r on the worker: directly when inline, else through its loop. */
static int submit(struct tl_worker *w, struct tl_worker_req *r)
{
	w = tl_worker_live(w);
	if (!w->threaded || pthread_equal(pthread_self(), w->thread)) {
		run_req(w, r);
		tl_worker_after_completions(w);
		return r->rc;
	}
	pthread_mutex_lock(&w->lock);
	if (__atomic_load_n(&w->retired, __ATOMIC_ACQUIRE)) {
		/* Given up on since we looked: its successor runs it. */
		pthread_mutex_unlock(&w->lock);
		return submit(w, r);
	}
	r->next = w->reqs;
	w->reqs = r;
	ev_async_send(w->loop, &w->wake);
	while (!r->finished)
		pthread_cond_wait(&w->done, &w->lock);
	pthread_mutex_unlock(&w->lock);
	return r->rc;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool ring_has_work(const struct tl_dev *d)
{
	/* (io_uring completions are reaped by the poll loop itself) */
	return !d->ring.broken &&
	       __atomic_load_n(&d->ring.mb->cmd_head, __ATOMIC_ACQUIRE) !=
		       d->ring.fetch;
}

/*
 * Before the loop sleeps: keep looking at the rings for poll_us.  New work
 * found in that window is served at once and the window starts again; a
 * quiet window lets the loop sleep.  Waking a sleeping thread costs far
 * more than a short spin when commands come back to back.
 */
static void poll_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
	struct tl_worker *w = p->data;
	uint64_t end = now_us() + w->poll_us;
	struct tl_dev *d;
	bool found;

	while (now_us() < end) {
		found = w->uring && tl_uring_reap(w->uring);
		for (d = w->devs; d; d = d->next) {
			if (ring_has_work(d)) {
				tl_dev_service(d);
				found = true;
			}
		}
		if (found) {
			tl_worker_after_completions(w);
			end = now_us() + w->poll_us;
		}
		else
			sched_yield();	/* the producer may share our CPU */
		/* Another thread wants the loop: stop spinning. */
		if (__atomic_load_n(&w->reqs, __ATOMIC_RELAXED))
			break;
	}
}

static void *worker_main(void *arg)
{
	struct tl_worker *w = arg;

	tl_lua_wd_thread_init();
	ev_run(w->loop, 0);
	return NULL;
}

struct tl_worker *tl_worker_new(int index, bool threaded,
				const struct tl_worker_opts *o, char *err,
				size_t errlen)
{
	struct tl_worker *w = calloc(1, sizeof(*w));

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->index = index;
	w->threaded = threaded;
	if (o) {
		w->opts = *o;
		w->dirs = o->handler_dirs ? strdup(o->handler_dirs) : NULL;
		w->opts.handler_dirs = w->dirs;
	}
	w->mem_limit = (size_t)w->opts.lua_memory_limit;
	w->wd.timeout_ms = w->opts.lua_timeout_ms;
	w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!w->loop) {
		snprintf(err, errlen, "cannot create an event loop");
		free(w);
		return NULL;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->done, NULL);
	ev_async_init(&w->wake, wake_cb);
	w->wake.data = w;
	ev_async_start(w->loop, &w->wake);

	w->L = tl_lua_new_state(w, o ? o->handler_dirs : NULL, err, errlen);
	if (!w->L) {
		ev_loop_destroy(w->loop);
		free(w->dirs);
		free(w);
		return NULL;
	}
	if (o && o->hot_reload)
		tl_hotreload_start(w);
	if (!o || !o->no_uring) {
		const char *why;

		w->uring = tl_uring_new(w, &why);
		if (!w->uring)
			tl_info("worker %d: no io_uring (%s): the fast path's file I/O is synchronous",
				index, why);
	}
	w->poll_us = o ? o->poll_us : 0;
	if (w->poll_us) {
		ev_prepare_init(&w->poll, poll_cb);
		w->poll.data = w;
		ev_prepare_start(w->loop, &w->poll);
	}
	if (threaded && pthread_create(&w->thread, NULL, worker_main, w)) {
		snprintf(err, errlen, "cannot start worker thread");
		tl_uring_free(w->uring);
		lua_close(w->L);
		ev_loop_destroy(w->loop);
		free(w->dirs);
		free(w);
		return NULL;
	}
	tl_worker_wd_start(w);
	return w;
}

void tl_worker_free(struct tl_worker *w)
{
	struct tl_worker_req stop = { .kind = REQ_STOP };

	if (!w)
		return;
	w = tl_worker_live(w);
	while (w->devs)
		tl_worker_remove_device(w, w->devs);
	tl_wd_del(&w->wd);
	if (w->threaded) {
		submit(w, &stop);
		if (__atomic_load_n(&w->retired, __ATOMIC_ACQUIRE)) {
			/* Stuck while stopping: free what took over instead. */
			tl_worker_free(w->successor);
			return;
		}
		pthread_join(w->thread, NULL);
	}
	tl_hotreload_stop(w);
	tl_uring_free(w->uring);
	lua_close(w->L);
	ev_loop_destroy(w->loop);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->done);
	for (int i = 0; i < w->nwatches / WATCH_CHUNK; i++)
		free(w->watches[i]);
	free(w->watches);
	free(w->dirs);
	free(w);
}

int tl_worker_add_device(struct tl_worker *w, struct tl_dev *d,
			 const char *config, char *err, size_t errlen)
{
	struct tl_worker_req r = { .kind = REQ_ADD, .dev = d, .config = config,
				   .err = err, .errlen = errlen };

	return submit(w, &r);
}

void tl_worker_remove_device(struct tl_worker *w, struct tl_dev *d)
{
	struct tl_worker_req r = { .kind = REQ_REMOVE, .dev = d };

	submit(w, &r);
}

int tl_worker_reload(struct tl_worker *w, bool force, char *err,
		     size_t errlen)
{
	struct tl_worker_req r = { .kind = REQ_RELOAD, .err = err,
				   .errlen = errlen, .force = force };

	return submit(w, &r);
}

void tl_worker_resize_device(struct tl_worker *w, struct tl_dev *d,
			     uint64_t size)
{
	struct tl_worker_req r = { .kind = REQ_RESIZE, .dev = d, .size = size };

	submit(w, &r);
}

int tl_worker_reopen_device(struct tl_worker *w, struct tl_dev *d,
			    const char *config, char *err, size_t errlen)
{
	struct tl_worker_req r = { .kind = REQ_REOPEN, .dev = d,
				   .config = config, .err = err,
				   .errlen = errlen };

	return submit(w, &r);
}

int tl_worker_eval(struct tl_worker *w, const char *code, char *out,
		   size_t outlen)
{
	struct tl_worker_req r = { .kind = REQ_EVAL, .config = code,
				   .err = out, .errlen = outlen };

	return submit(w, &r);
}

static void wait_over(struct ev_loop *loop, ev_timer *t, int revents)
{
}

void tl_worker_run_once(struct tl_worker *w, int wait_ms)
{
	ev_timer limit;

	if (wait_ms == 0) {
		ev_run(w->loop, EVRUN_NOWAIT);
	} else if (wait_ms < 0) {
		ev_run(w->loop, EVRUN_ONCE);
	} else {
		/* Wake up by wait_ms at the latest, event or not. */
		ev_timer_init(&limit, wait_over, wait_ms / 1000.0, 0);
		ev_timer_start(w->loop, &limit);
		ev_run(w->loop, EVRUN_ONCE);
		ev_timer_stop(w->loop, &limit);
	}
	tl_worker_after_completions(w);
}

/* ---- timers and fd watchers for Lua ---- */

/*
 * Watchers live in fixed chunks that never move (libev keeps pointers to
 * active watchers); an id is chunk * WATCH_CHUNK + slot.
 */
static struct tl_watch *watch_get(struct tl_worker *w, int id)
{
	if (id < 0 || id >= w->nwatches)
		return NULL;
	return &w->watches[id / WATCH_CHUNK][id % WATCH_CHUNK];
}

static struct tl_watch *watch_alloc(struct tl_worker *w, int *id)
{
	struct tl_watch **chunks;
	int i, n;

	for (i = 0; i < w->nwatches; i++) {
		if (!watch_get(w, i)->kind) {
			*id = i;
			return watch_get(w, i);
		}
	}
	n = w->nwatches / WATCH_CHUNK;
	chunks = realloc(w->watches, (size_t)(n + 1) * sizeof(*chunks));
	if (!chunks)
		return NULL;
	w->watches = chunks;
	chunks[n] = calloc(WATCH_CHUNK, sizeof(struct tl_watch));
	if (!chunks[n])
		return NULL;
	for (i = 0; i < WATCH_CHUNK; i++)
		chunks[n][i].id = n * WATCH_CHUNK + i;
	w->nwatches += WATCH_CHUNK;
	*id = n * WATCH_CHUNK;
	return &chunks[n][0];
}

static void watch_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct tl_watch *wt = (struct tl_watch *)t;
	struct tl_worker *w = wt->w;
	int id = wt->id;

	if (!ev_is_active(t))
		wt->kind = 0;	/* one-shot: the id is free again */
	tl_lua_event(w, TL_EV_TIMER, id, revents);
	flush_all(w);
}

static void watch_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct tl_watch *wt = (struct tl_watch *)io;
	struct tl_worker *w = wt->w;

	tl_lua_event(w, TL_EV_IO, wt->id,
		     (revents & EV_READ ? TL_IO_READ : 0) |
		     (revents & EV_WRITE ? TL_IO_WRITE : 0));
	flush_all(w);
}

int tl_worker_timer_start(struct tl_worker *w, double after, double repeat)
{
	struct tl_watch *wt;
	int id;

	wt = watch_alloc(w, &id);
	if (!wt)
		return -ENOMEM;
	wt->kind = TL_EV_TIMER;
	wt->w = w;
	ev_timer_init(&wt->timer, watch_timer_cb, after < 0 ? 0 : after,
		      repeat < 0 ? 0 : repeat);
	ev_timer_start(w->loop, &wt->timer);
	return id;
}

int tl_worker_io_start(struct tl_worker *w, int fd, int events)
{
	struct tl_watch *wt;
	int id;

	if (fd < 0)
		return -EBADF;
	wt = watch_alloc(w, &id);
	if (!wt)
		return -ENOMEM;
	wt->kind = TL_EV_IO;
	wt->w = w;
	ev_io_init(&wt->io, watch_io_cb, fd,
		   (events & TL_IO_READ ? EV_READ : 0) |
		   (events & TL_IO_WRITE ? EV_WRITE : 0));
	ev_io_start(w->loop, &wt->io);
	return id;
}

void tl_worker_watch_stop(struct tl_worker *w, int id)
{
	struct tl_watch *wt;

	wt = watch_get(w, id);
	if (!wt)
		return;
	if (wt->kind == TL_EV_TIMER)
		ev_timer_stop(w->loop, &wt->timer);
	else if (wt->kind == TL_EV_IO)
		ev_io_stop(w->loop, &wt->io);
	wt->kind = 0;
}

/* ---- a worker stuck in Lua (docs/reliability.md) ---- */

struct tl_worker *tl_worker_live(struct tl_worker *w)
{
	struct tl_worker *next;

	while (w && (next = __atomic_load_n(&w->successor, __ATOMIC_ACQUIRE)))
		w = next;
	return w;
}

/* Serve d on w without a handler: every command fails with its sense. */
static void do_adopt(struct tl_worker *w, struct tl_dev *d)
{
	d->w = w;
	d->next = w->devs;
	w->devs = d;
	w->ndevs++;
	ev_io_init(&d->io, dev_io_cb, d->fd, EV_READ);
	d->io.data = d;
	ev_io_start(w->loop, &d->io);
	tl_dev_fail_all(d, d->down_sense[0], d->down_sense[1],
			d->down_sense[2]);
	tl_dev_service(d);
}

static void adopt_down(struct tl_worker *w, struct tl_dev *d, uint8_t key,
		       uint8_t asc, uint8_t ascq)
{
	struct tl_worker_req r = { .kind = REQ_ADOPT, .dev = d };

	d->down_sense[0] = key;
	d->down_sense[1] = asc;
	d->down_sense[2] = ascq;
	submit(w, &r);
}

/*
 * Commands the stuck state had taken (running, or waiting in a handler)
 * are lost with it: ABORTED COMMAND, which initiators retry.  Those still
 * queued were never seen by Lua and go to the new handler as they are.
 *
 * Not those whose file I/O is in flight in the stuck worker's io_uring:
 * the kernel may still write into their data blocks, and completing them
 * would let the kernel hand those blocks to a new command.  They are left
 * to the kernel's command timeout (which keeps the blocks until the
 * command is completed, that is until the device is removed).
 */
static void fail_taken(struct tl_dev *d)
{
	uint32_t left = 0;

	for (uint32_t id = 1; id < RING_MAX_CMDS && d->ring.inflight; id++) {
		struct tl_cmd *cmd = ring_cmd_by_id(&d->ring, (uint16_t)id);

		if (!cmd || cmd->state != TL_CMD_ACTIVE)
			continue;
		if (cmd->flags & TL_CMDF_FILE_IO) {
			left++;
			continue;
		}
		ring_cmd_set_sense(cmd, 0x0b, 0x44, 0x00);
		cmd->read_len = 0;
		tl_dev_complete(d, cmd);
	}
	if (left)
		tl_warn("%s: %u commands with file I/O in the stuck worker's io_uring are left to the kernel's timeout",
			d->info.name, left);
	/* Those are no longer this device's to wait for. */
	d->fast_inflight = 0;
	d->current = NULL;
	tl_dev_flush(d);
}

static void move_device(struct tl_worker *nw, struct tl_dev *d)
{
	char err[512];

	fail_taken(d);
	if (!tl_worker_add_device(nw, d, d->config, err, sizeof(err))) {
		tl_info("%s: moved to a fresh worker %d, handler reopened",
			d->info.name, nw->index);
		return;
	}
	tl_err("%s: reopening the handler on the fresh worker failed, the device fails its commands: %s",
	       d->info.name, err);
	/* HARDWARE ERROR, LOGICAL UNIT FAILURE */
	adopt_down(nw, d, 0x04, 0x3e, 0x01);
}

/* A request the stuck worker will never run, or never finish. */
static void forward_req(struct tl_worker *old, struct tl_worker *nw,
			struct tl_worker_req *r)
{
	struct tl_worker_req c = *r;

	c.finished = false;
	c.next = NULL;
	if (r->kind == REQ_STOP)
		c.rc = 0;	/* the successor is stopped by its own free */
	else
		submit(nw, &c);
	pthread_mutex_lock(&old->lock);
	r->rc = c.rc;
	r->finished = true;
	pthread_cond_broadcast(&old->done);
	pthread_mutex_unlock(&old->lock);
}

/* Lowest priority there is, so a spinning thread only takes idle time. */
static void demote(struct tl_worker *w)
{
	struct sched_param sp = { 0 };
	int rc;

	rc = pthread_setschedparam(w->thread, SCHED_IDLE, &sp);
	if (rc)
		tl_warn("worker %d: cannot demote the stuck thread: %s",
			w->index, strerror(rc));
}

int tl_worker_rescue(struct tl_worker *old, uint64_t since)
{
	struct tl_worker_req *reqs, *running, *r, *rev = NULL;
	struct tl_dev *d, *next, *stuck = old->lua_dev;
	struct tl_worker *nw;
	char err[512];

	if (!old->threaded)
		return -1;	/* the caller's own thread: nothing to move to */
	nw = tl_worker_new(old->index, true, &old->opts, err, sizeof(err));
	if (!nw) {
		tl_err("worker %d: cannot start a fresh worker: %s", old->index,
		       err);
		return -1;
	}
	/* The thread may have come back meanwhile: then it keeps its worker. */
	if (!tl_wd_take(&old->wd, since)) {
		tl_warn("worker %d: Lua returned after all; nothing moves",
			old->index);
		tl_worker_free(nw);
		return -1;
	}
	nw->rescues = old->rescues + 1;
	snprintf(nw->wd_report, sizeof(nw->wd_report), "%s", old->wd_report);
	tl_wd_del(&old->wd);

	pthread_mutex_lock(&old->lock);
	__atomic_store_n(&old->retired, true, __ATOMIC_RELEASE);
	__atomic_store_n(&old->successor, nw, __ATOMIC_RELEASE);
	reqs = old->reqs;
	old->reqs = NULL;
	running = old->running;
	pthread_mutex_unlock(&old->lock);
	demote(old);

	/* Take every device; from here the stuck thread's FFI calls on them
	 * are refused (they are no longer opened for it). */
	d = old->devs;
	old->devs = NULL;
	old->ndevs = 0;
	for (struct tl_dev *x = d; x; x = x->next)
		__atomic_store_n(&x->opened, false, __ATOMIC_RELEASE);
	for (; d; d = next) {
		next = d->next;
		d->next = NULL;
		if (d == stuck) {
			tl_err("%s: its handler is stuck in Lua; the device fails every command from now on",
			       d->info.name);
			/* HARDWARE ERROR, LOGICAL UNIT FAILURE */
			adopt_down(nw, d, 0x04, 0x3e, 0x01);
		} else {
			move_device(nw, d);
		}
	}

	/* The caller of the stuck request gets an answer; queued requests run
	 * on the successor, oldest first. */
	if (running) {
		if (running->err && running->errlen)
			snprintf(running->err, running->errlen,
				 "worker %d is stuck in Lua", old->index);
		pthread_mutex_lock(&old->lock);
		running->rc = -1;
		running->finished = true;
		pthread_cond_broadcast(&old->done);
		pthread_mutex_unlock(&old->lock);
	}
	while ((r = reqs)) {
		reqs = r->next;
		r->next = rev;
		rev = r;
	}
	while ((r = rev)) {
		rev = r->next;
		forward_req(old, nw, r);
	}
	return 0;
}

/*
 * The stuck callback returned after all.  Everything the thread would
 * touch next (its loop, its devices, the request it ran) belongs to
 * others now or was answered, so it ends here.  Its Lua state is left as
 * it is: closing it would run the handler's finalizers, on devices that
 * are served elsewhere.
 */
void tl_worker_retired_exit(struct tl_worker *w)
{
	tl_warn("worker %d: the stuck handler returned after all; its thread ends",
		w->index);
	pthread_detach(pthread_self());
	pthread_exit(NULL);
}

/* Watchdog thread: the worker has been in Lua for longer than the limit. */
static void wd_stuck(struct tl_wd *wd, uint64_t since, uint64_t ms)
{
	struct tl_worker *w = (struct tl_worker *)((char *)wd -
						   offsetof(struct tl_worker, wd));
	struct tl_dev *d = w->lua_dev;
	const char *cb = w->lua_cb ? w->lua_cb : "?";

	if (d)
		snprintf(w->wd_report, sizeof(w->wd_report),
			 "%.64s: handler %.64s stuck in %s for %llu ms", d->info.name,
			 d->info.subtype, cb, (unsigned long long)ms);
	else
		snprintf(w->wd_report, sizeof(w->wd_report),
			 "worker %d: Lua stuck in %s for %llu ms", w->index, cb,
			 (unsigned long long)ms);
	tl_err("%s (daemon.lua_timeout_ms is %u)%s", w->wd_report,
	       wd->timeout_ms, w->threaded ? "; moving the worker's other devices to a fresh worker" :
	       "");
	tl_worker_rescue(w, since);
}

static void wd_interrupt(struct tl_wd *wd)
{
	tl_lua_wd_interrupt((struct tl_worker *)((char *)wd -
						 offsetof(struct tl_worker, wd)));
}

void tl_worker_wd_start(struct tl_worker *w)
{
	w->wd.interrupt = wd_interrupt;
	w->wd.stuck = wd_stuck;
	if (tl_wd_add(&w->wd))
		tl_warn("worker %d: cannot start the watchdog thread", w->index);
}
