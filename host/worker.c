// SPDX-License-Identifier: MIT
/*
 * worker.c - worker threads: a libev loop and a lua_State each.
 *
 * Other threads never touch a worker's devices or Lua state.  They post a
 * request and wake the loop with an ev_async; the worker runs it between
 * batches and signals completion, so adding a device is synchronous for
 * the caller (netlink must answer with the handler's verdict).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

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
		REQ_STOP };

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

static int do_add(struct tl_worker *w, struct tl_dev *d, const char *config,
		  char *err, size_t errlen)
{
	d->w = w;
	if (tl_lua_open_device(w, d, config, err, errlen)) {
		d->w = NULL;
		return -1;
	}
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
	tl_hotreload_refresh(w);
	return rc;
}

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
	}
}

static void wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
	struct tl_worker *w = a->data;
	struct tl_worker_req *r;

	pthread_mutex_lock(&w->lock);
	while ((r = w->reqs)) {
		w->reqs = r->next;
		pthread_mutex_unlock(&w->lock);
		run_req(w, r);
		pthread_mutex_lock(&w->lock);
		r->finished = true;
		pthread_cond_broadcast(&w->done);
	}
	pthread_mutex_unlock(&w->lock);
	tl_worker_after_completions(w);
}

/* Run r on the worker: directly when inline, else through its loop. */
static int submit(struct tl_worker *w, struct tl_worker_req *r)
{
	if (!w->threaded || pthread_equal(pthread_self(), w->thread)) {
		run_req(w, r);
		tl_worker_after_completions(w);
		return r->rc;
	}
	pthread_mutex_lock(&w->lock);
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
		free(w);
		return NULL;
	}
	return w;
}

void tl_worker_free(struct tl_worker *w)
{
	struct tl_worker_req stop = { .kind = REQ_STOP };

	if (!w)
		return;
	while (w->devs)
		tl_worker_remove_device(w, w->devs);
	if (w->threaded) {
		submit(w, &stop);
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
