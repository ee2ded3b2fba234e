/* SPDX-License-Identifier: MIT */
/*
 * worker.h - a worker: one thread, one libev loop, one lua_State, and the
 * devices assigned to it.  A worker can also run "inline" in the calling
 * thread, which is how specs, the sandbox and benchmarks use it.
 */
#ifndef TL_WORKER_H
#define TL_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <ev.h>
#include <lua.h>

#include "watchdog.h"

struct tl_dev;
struct tl_worker_req;

struct tl_worker_opts {
	const char *handler_dirs;	/* ';'-separated directories */
	bool hot_reload;		/* reload handlers when their files change */
	unsigned int poll_us;		/* busy-poll the rings this long before sleeping */
	bool no_uring;			/* keep the fast path synchronous */
	unsigned int lua_timeout_ms;	/* watchdog: 0 = off */
	uint64_t lua_memory_limit;	/* bytes the Lua state may hold; 0 = no limit */
};

struct tl_worker {
	int index;
	struct ev_loop *loop;
	lua_State *L;
	int ref_runtime;	/* registry ref of the tl.runtime table */
	bool threaded;
	bool stopping;
	pthread_t thread;

	/* Busy-polling: after work, look at the rings for poll_us before the
	 * loop sleeps, which saves a wake-up per command at low depth. */
	ev_prepare poll;
	unsigned int poll_us;

	/* Requests from other threads, run on the worker's loop. */
	ev_async wake;
	pthread_mutex_t lock;
	pthread_cond_t done;
	struct tl_worker_req *reqs;

	struct tl_dev *devs;
	unsigned int ndevs;

	/* The fast path's asynchronous file I/O; NULL: synchronous. */
	struct tl_uring *uring;
	bool requeued;		/* some device has commands the fast path gave back */

	/* Timers and fd watchers handed out to Lua, by id. */
	struct tl_watch **watches;	/* chunks of watchers */
	int nwatches;

	struct tl_hotreload *hotreload;	/* NULL: reload on request only */
	uint64_t reloads;		/* successful reloads */
	uint64_t reload_failures;
	char reload_error[1024];	/* the last failure, for the control socket */

	/*
	 * Hostile handlers (docs/reliability.md).  lua_dev and lua_cb say
	 * whom Lua runs for; the watchdog reads them when the stamp in wd
	 * gets old.  A worker given up on is retired: its devices went to
	 * successor and its thread ends if it ever leaves Lua.
	 */
	struct tl_wd wd;
	struct tl_dev *lua_dev;
	const char *lua_cb;
	bool retired;			/* atomic */
	struct tl_worker *successor;	/* atomic; set once, with retired */
	struct tl_worker_req *running;	/* the request being run */
	struct tl_worker_opts opts;	/* for a successor (dirs: our copy) */
	char *dirs;
	lua_Alloc alloc;		/* the allocator the limit wraps */
	void *alloc_ud;
	size_t mem_used, mem_limit;	/* bytes; mem_limit 0: none */
	bool mem_hit;			/* an allocation was refused */
	uint64_t lua_timeouts;		/* interpreted code interrupted */
	uint64_t mem_failures;		/* devices shut down for memory */
	unsigned int rescues;		/* times a stuck worker was replaced */
	char wd_report[256];		/* the last problem, for ctl status */
};

/*
 * The worker serving w's devices now: w itself, or the worker that took
 * them over when w got stuck in Lua.  Every function below follows it.
 */
struct tl_worker *tl_worker_live(struct tl_worker *w);

/*
 * Give up on a worker whose thread is stuck in Lua: a fresh worker takes
 * its devices (their handlers reopened), the stuck device is served as
 * failed, the stuck thread is demoted to SCHED_IDLE.  Watchdog thread;
 * since is the stuck entry's stamp: if the thread left it meanwhile,
 * nothing happens (-1).
 */
int tl_worker_rescue(struct tl_worker *w, uint64_t since);

/* The thread of a retired worker came back from Lua: end it. */
void tl_worker_retired_exit(struct tl_worker *w) __attribute__((noreturn));

int tl_worker_timer_start(struct tl_worker *w, double after, double repeat);
int tl_worker_io_start(struct tl_worker *w, int fd, int events);
void tl_worker_watch_stop(struct tl_worker *w, int id);

/* Create a worker; threaded ones start their thread at once. */
struct tl_worker *tl_worker_new(int index, bool threaded,
				const struct tl_worker_opts *o, char *err,
				size_t errlen);
/* Stop the loop, close every device's handler, free everything. */
void tl_worker_free(struct tl_worker *w);

/*
 * Give a device to the worker and open its handler in Lua.  config is a Lua
 * table constructor ("{ path = '/x' }") or NULL to parse info.cfgstring.
 * Returns 0, or -1 with a message in err; on failure the device is not
 * attached (the caller still owns it).  Safe from any thread: for a
 * threaded worker it waits for the worker to finish.
 */
int tl_worker_add_device(struct tl_worker *w, struct tl_dev *d,
			 const char *config, char *err, size_t errlen);

/* Close the handler, fail what is left, detach and free the device. */
void tl_worker_remove_device(struct tl_worker *w, struct tl_dev *d);

/* The capacity changed: update the device's info and tell the handler and
 * the SCSI library (a CAPACITY DATA HAS CHANGED unit attention). */
void tl_worker_resize_device(struct tl_worker *w, struct tl_dev *d,
			     uint64_t size);

/*
 * New options for a served device (config as for tl_worker_add_device),
 * between batches: the handler checks them against its schema first; if
 * they pass, its close() and then open() run with them (the device stays
 * attached throughout).  Returns 0, or -1 with the reason in err; a
 * refusal keeps the old options and state.
 */
int tl_worker_reopen_device(struct tl_worker *w, struct tl_dev *d,
			    const char *config, char *err, size_t errlen);

/*
 * Reload the handlers the worker runs, between batches: those whose files
 * changed, or all of them with force.  Returns 0, or -1
 * with the reason (file:line) in err; on failure nothing changed.
 */
int tl_worker_reload(struct tl_worker *w, bool force, char *err,
		     size_t errlen);

/*
 * After the fast path completed commands outside a device's service: hand
 * what it gave back to Lua, and publish every device's completions.
 */
void tl_worker_after_completions(struct tl_worker *w);
/* Run Lua source in the worker's state, on its thread (tl_lua_eval). */
int tl_worker_eval(struct tl_worker *w, const char *code, char *out,
		   size_t outlen);

/* Register with the watchdog (tl_worker_new does it). */
void tl_worker_wd_start(struct tl_worker *w);

/* Inline workers: run the loop once; wait_ms < 0 blocks, 0 polls. */
void tl_worker_run_once(struct tl_worker *w, int wait_ms);

#endif /* TL_WORKER_H */
