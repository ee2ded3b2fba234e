// SPDX-License-Identifier: MIT
/*
 * lua_host.c - lua_State set-up and the few C->Lua calls the core makes.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "device.h"
#include "log.h"
#include "lua_host.h"
#include "ring.h"
#include "watchdog.h"
#include "worker.h"

/* The watchdog's nudge: arm a count hook in the thread's Lua state. */
#define TL_WD_SIGNAL (SIGRTMIN + 3)

/* The worker whose Lua this thread ran last (for the signal handler). */
static __thread struct tl_worker *tl_lua_self;

extern const char tl_abi_cdef[];

const char *tl_lua_dir(void)
{
	const char *env = getenv("TCMU_LUA_DIR");

	return env && *env ? env : TL_LUA_DIR;
}

static int push_cdef(lua_State *L)
{
	lua_pushstring(L, tl_abi_cdef);
	return 1;
}

/* Message handler: the error with a traceback naming file:line. */
static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (!msg)
		msg = "(error object is not a string)";
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/*
 * Keep only the absolute entries of LuaJIT's default package.<field>
 * (system modules, busted for `tcmu-lua test`): "./?.lua" and "./?.so"
 * would load code from whatever directory the daemon was started in.
 * Leaves the result on the stack.
 */
static void push_absolute_defaults(lua_State *L, const char *field)
{
	const char *p;
	luaL_Buffer b;

	lua_getfield(L, -1, field);
	p = lua_tostring(L, -1);
	luaL_buffinit(L, &b);
	while (p && *p) {
		size_t n = strcspn(p, ";");

		if (*p == '/') {
			luaL_addlstring(&b, p, n);
			luaL_addchar(&b, ';');
		}
		p += n + (p[n] == ';');
	}
	luaL_pushresult(&b);
	lua_remove(L, -2);
}

static void set_paths(lua_State *L, const char *handler_dirs)
{
	const char *dir = tl_lua_dir();
	char buf[4096];

	char hdirs[2048] = "";
	const char *p;
	size_t used = 0;

	/* Modules next to the handlers can be required, after our library. */
	p = handler_dirs && *handler_dirs ? handler_dirs : NULL;
	while (p && *p && used < sizeof(hdirs) - 1) {
		size_t n = strcspn(p, ";");
		int w = snprintf(hdirs + used, sizeof(hdirs) - used, "%.*s/?.lua;",
				 (int)n, p);

		if (w < 0 || (size_t)w >= sizeof(hdirs) - used)
			break;
		used += (size_t)w;
		p += n + (p[n] == ';');
	}
	lua_getglobal(L, "package");
	push_absolute_defaults(L, "path");
	snprintf(buf, sizeof(buf), "%s/lib/?.lua;%s/lib/?/init.lua;%s%s/handlers/?.lua;%s",
		 dir, dir, hdirs, dir, lua_tostring(L, -1));
	lua_pop(L, 1);
	lua_pushstring(L, buf);
	lua_setfield(L, -2, "path");
	push_absolute_defaults(L, "cpath");
	lua_setfield(L, -2, "cpath");

	/* The FFI declarations travel inside the binary. */
	lua_getfield(L, -1, "preload");
	lua_pushcfunction(L, push_cdef);
	lua_setfield(L, -2, "tl.cdef");
	lua_pop(L, 2);

	lua_pushstring(L, dir);
	lua_setglobal(L, "TL_LUA_DIR");
	if (handler_dirs && *handler_dirs) {
		lua_pushstring(L, handler_dirs);
	} else {
		snprintf(buf, sizeof(buf), "%s/handlers", dir);
		lua_pushstring(L, buf);
	}
	lua_setglobal(L, "TL_HANDLER_DIRS");
}

/*
 * daemon.lua_memory_limit: LuaJIT's own allocator, with a count in front.
 * A refused allocation is a "not enough memory" error in the callback;
 * mem_hit tells the core to deal with it when Lua returns, even if a Lua
 * pcall caught the error.
 */
static void *limit_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct tl_worker *w = ud;
	void *p;

	if (nsize > osize && w->mem_limit &&
	    w->mem_used + (nsize - osize) > w->mem_limit) {
		w->mem_hit = true;
		return NULL;
	}
	p = w->alloc(w->alloc_ud, ptr, osize, nsize);
	if (p || !nsize)
		w->mem_used += nsize - osize;	/* wraps right when shrinking */
	return p;
}

static void wd_hook(lua_State *L, lua_Debug *ar)
{
	struct tl_worker *w = tl_lua_self;
	uint64_t since;

	(void)ar;
	lua_sethook(L, NULL, 0, 0);	/* once; the error path runs Lua too */
	if (!w)
		return;
	since = __atomic_load_n(&w->wd.since, __ATOMIC_ACQUIRE);
	if (!since || (since != TL_WD_TAKEN && tl_wd_now() - since <
			       (uint64_t)w->wd.timeout_ms * 1000000ull))
		return;		/* a late nudge: this entry is on time */
	w->lua_timeouts++;
	luaL_error(L, "%s ran longer than %u ms (daemon.lua_timeout_ms): interrupted",
		   w->lua_cb ? w->lua_cb : "Lua", w->wd.timeout_ms);
}

/*
 * In the thread that is in Lua.  lua_sethook is the one Lua call made to
 * be safe from a signal handler; LuaJIT's own interpreter uses it for
 * Ctrl-C.  Compiled code never looks at hooks: that case is left to the
 * watchdog's second stage.
 */
static void wd_signal(int sig)
{
	struct tl_worker *w = tl_lua_self;

	(void)sig;
	if (w && w->L && __atomic_load_n(&w->wd.since, __ATOMIC_ACQUIRE))
		lua_sethook(w->L, wd_hook, LUA_MASKCOUNT, 1000);
}

static void install_signal(void)
{
	struct sigaction sa = { .sa_handler = wd_signal, .sa_flags = SA_RESTART };

	sigemptyset(&sa.sa_mask);
	sigaction(TL_WD_SIGNAL, &sa, NULL);
}

void tl_lua_wd_thread_init(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, TL_WD_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

void tl_lua_wd_interrupt(struct tl_worker *w)
{
	pthread_kill(w->wd.thread, TL_WD_SIGNAL);
}

lua_State *tl_lua_new_state(struct tl_worker *w, const char *handler_dirs,
			    char *err, size_t errlen)
{
	static pthread_once_t sig_once = PTHREAD_ONCE_INIT;
	lua_State *L = luaL_newstate();

	if (!L) {
		snprintf(err, errlen, "cannot create a Lua state");
		return NULL;
	}
	if (w && w->mem_limit) {
		w->alloc = lua_getallocf(L, &w->alloc_ud);
		w->mem_used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024u +
			      (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
		lua_setallocf(L, limit_alloc, w);
	}
	if (w && w->wd.timeout_ms) {
		pthread_once(&sig_once, install_signal);
		tl_lua_wd_thread_init();	/* inline workers: this thread */
	}
	luaL_openlibs(L);
	set_paths(L, handler_dirs);
	if (!w)
		return L;

	lua_pushlightuserdata(L, w);
	lua_setglobal(L, "TL_WORKER");
	lua_pushcfunction(L, traceback);
	lua_getglobal(L, "require");
	lua_pushstring(L, "tl.runtime");
	if (lua_pcall(L, 1, 1, -3)) {
		snprintf(err, errlen, "loading tl.runtime: %s",
			 lua_tostring(L, -1));
		lua_close(L);
		return NULL;
	}
	w->ref_runtime = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pop(L, 1);
	return L;
}

/*
 * Push traceback handler and runtime[fn]; returns the stack index of the
 * handler, to pass to call_runtime().
 */
static int prep_call(struct tl_worker *w, const char *fn)
{
	lua_State *L = w->L;
	int base;

	lua_pushcfunction(L, traceback);
	base = lua_gettop(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, w->ref_runtime);
	lua_getfield(L, -1, fn);
	lua_remove(L, -2);
	return base;
}

static void mem_exceeded(struct tl_worker *w, struct tl_dev *d,
			 const char *cb);

/*
 * Call with nargs pushed after prep_call(); leaves nres results.  d and cb
 * say for whom Lua runs: the watchdog's report, the memory limit's culprit.
 */
static int call_runtime(struct tl_worker *w, struct tl_dev *d, const char *cb,
			int base, int nargs, int nres)
{
	struct tl_dev *outer_dev = w->lua_dev;
	const char *outer_cb = w->lua_cb;
	uint64_t stamp;
	int rc;

	w->lua_dev = d;
	w->lua_cb = cb;
	tl_lua_self = w;
	stamp = tl_wd_enter(&w->wd);
	rc = lua_pcall(w->L, nargs, nres, base);
	if (!tl_wd_leave(&w->wd, stamp))
		tl_worker_retired_exit(w);	/* given up on while in Lua */
	d = w->lua_dev;		/* timer callbacks say whose they are */
	w->lua_dev = outer_dev;
	w->lua_cb = outer_cb;
	if (w->mem_hit)
		mem_exceeded(w, d, cb);
	return rc;
}

static void log_handler_error(struct tl_dev *d, const char *msg)
{
	if (strncmp(d->last_error, msg, sizeof(d->last_error) - 1)) {
		snprintf(d->last_error, sizeof(d->last_error), "%s", msg);
		d->error_repeats = 0;
		tl_err("%s: handler error: %s", d->info.name, msg);
		return;
	}
	d->error_repeats++;
	/* Same error again: say so at 10, 100, 1000... not every time. */
	for (uint64_t n = 10; n && n <= d->error_repeats; n *= 10)
		if (n == d->error_repeats)
			tl_err("%s: the same handler error %llu more times",
			       d->info.name, (unsigned long long)n);
}

/*
 * The handler's device stops: close() runs (the limit lifted, so it can),
 * the state it held is collected, and its commands fail with the sense
 * given from now on.  The device stays attached until it is removed.
 */
static void shut_down(struct tl_worker *w, struct tl_dev *d, uint8_t key,
		      uint8_t asc, uint8_t ascq)
{
	size_t limit = w->mem_limit;

	w->mem_limit = 0;
	if (d->opened)
		tl_lua_close_device(w, d);
	__atomic_store_n(&d->opened, false, __ATOMIC_RELEASE);
	d->down_sense[0] = key;
	d->down_sense[1] = asc;
	d->down_sense[2] = ascq;
	tl_dev_fail_all(d, key, asc, ascq);
	lua_gc(w->L, LUA_GCCOLLECT, 0);
	w->mem_limit = limit;
}

static void mem_exceeded(struct tl_worker *w, struct tl_dev *d,
			 const char *cb)
{
	w->mem_hit = false;
	lua_gc(w->L, LUA_GCCOLLECT, 0);
	w->mem_failures++;
	if (!d) {
		snprintf(w->wd_report, sizeof(w->wd_report),
			 "worker %d: Lua went over the memory limit in %s",
			 w->index, cb);
		tl_err("%s (daemon.lua_memory_limit is %zu bytes)",
		       w->wd_report, w->mem_limit);
		return;
	}
	snprintf(w->wd_report, sizeof(w->wd_report),
		 "%.64s: handler %.64s went over the Lua memory limit in %s; device shut down",
		 d->info.name, d->info.subtype, cb);
	tl_err("%s (daemon.lua_memory_limit is %zu bytes, %zu in use after a full collection)",
	       w->wd_report, w->mem_limit, w->mem_used);
	/* HARDWARE ERROR, INTERNAL TARGET FAILURE */
	shut_down(w, d, 0x04, 0x44, 0x00);
}

int tl_lua_open_device(struct tl_worker *w, struct tl_dev *d,
		       const char *config, char *err, size_t errlen)
{
	lua_State *L = w->L;
	int base = prep_call(w, "open_device"), rc = 0;

	lua_pushlightuserdata(L, d);
	if (config)
		lua_pushstring(L, config);
	else
		lua_pushnil(L);
	if (call_runtime(w, d, "open", base, 2, 2)) {
		snprintf(err, errlen, "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
		rc = -1;
	} else if (!lua_toboolean(L, -2)) {
		snprintf(err, errlen, "%s", lua_tostring(L, -1) ?
			 lua_tostring(L, -1) : "handler refused to open");
		lua_pop(L, 2);
		rc = -1;
	} else {
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
	return rc;
}

void tl_lua_close_device(struct tl_worker *w, struct tl_dev *d)
{
	lua_State *L = w->L;
	int base = prep_call(w, "close_device");

	lua_pushinteger(L, d->info.id);
	if (call_runtime(w, d, "close", base, 1, 0)) {
		log_handler_error(d, lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

void tl_lua_dispatch(struct tl_worker *w, struct tl_dev *d)
{
	lua_State *L = w->L;

	d->stats.batches++;
	while (d->q_head != d->q_tail) {
		uint32_t before = d->q_head;
		int base = prep_call(w, "dispatch");

		lua_pushinteger(L, d->info.id);
		if (!call_runtime(w, d, "dispatch", base, 1, 0)) {
			lua_pop(L, 1);
			break;
		}
		log_handler_error(d, lua_tostring(L, -1));
		lua_pop(L, 2);
		/* The command that was running when Lua raised fails alone. */
		if (d->current && d->current->state == TL_CMD_ACTIVE) {
			struct tl_cmd *cmd = d->current;

			d->stats.lua_errors++;
			ring_cmd_set_sense(cmd, 0x04, 0x44, 0x00);
			cmd->read_len = 0;
			tl_dev_complete(d, cmd);
		} else if (d->q_head == before) {
			/* Raised before taking a command: nothing can run. */
			struct tl_cmd *cmd;

			while ((cmd = tl_dev_queue_pop(d))) {
				d->stats.lua_errors++;
				ring_cmd_set_sense(cmd, 0x04, 0x44, 0x00);
				cmd->read_len = 0;
				tl_dev_complete(d, cmd);
			}
		}
		d->current = NULL;
	}
}

void tl_lua_tmr(struct tl_worker *w, struct tl_dev *d, uint8_t type,
		const uint16_t *ids, uint32_t cnt)
{
	lua_State *L = w->L;
	int base = prep_call(w, "tmr");

	lua_pushinteger(L, d->info.id);
	lua_pushinteger(L, type);
	lua_pushlightuserdata(L, (void *)ids);
	lua_pushinteger(L, cnt);
	if (call_runtime(w, d, "tmr", base, 4, 0)) {
		log_handler_error(d, lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

void tl_lua_resize(struct tl_worker *w, struct tl_dev *d)
{
	lua_State *L = w->L;
	int base = prep_call(w, "resize");

	lua_pushinteger(L, d->info.id);
	if (call_runtime(w, d, "resize", base, 1, 0)) {
		log_handler_error(d, lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

void tl_lua_event(struct tl_worker *w, int kind, int id, int revents)
{
	lua_State *L = w->L;
	int base = prep_call(w, "event");

	lua_pushinteger(L, kind);
	lua_pushinteger(L, id);
	lua_pushinteger(L, revents);
	if (call_runtime(w, NULL, kind == TL_EV_TIMER ? "timer" : "io", base, 3,
			 0)) {
		tl_err("worker %d: event callback failed: %s", w->index,
		       lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
}

int tl_lua_reload(struct tl_worker *w, bool force, char *err, size_t errlen)
{
	lua_State *L = w->L;
	int base = prep_call(w, "reload"), rc = 0;

	lua_pushboolean(L, force);
	if (call_runtime(w, NULL, "reload", base, 1, 2)) {
		snprintf(err, errlen, "%s", lua_tostring(L, -1));
		lua_pop(L, 1);
		rc = -1;
	} else {
		if (!lua_toboolean(L, -2)) {
			snprintf(err, errlen, "%s", lua_tostring(L, -1));
			rc = -1;
		}
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
	return rc;
}

int tl_lua_watched_files(struct tl_worker *w)
{
	lua_State *L = w->L;
	int base = prep_call(w, "watched_files");

	if (call_runtime(w, NULL, "watched_files", base, 0, 1) ||
	    !lua_istable(L, -1)) {
		lua_pop(L, 2);
		lua_newtable(L);
		return 0;
	}
	lua_remove(L, base);
	return (int)lua_objlen(L, -1);
}

int tl_lua_eval(struct tl_worker *w, const char *code, char *out,
		size_t outlen)
{
	lua_State *L = w->L;
	int base, rc = 0;

	lua_pushcfunction(L, traceback);
	base = lua_gettop(L);
	if (luaL_loadbuffer(L, code, strlen(code), "=eval") ||
	    call_runtime(w, NULL, "eval", base, 0, 1)) {
		rc = -1;
	}
	snprintf(out, outlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
	lua_settop(L, base - 1);
	return rc;
}

static int run_chunk(lua_State *L, int loaded, int argc, char **argv)
{
	int i, base;

	if (loaded) {
		fprintf(stderr, "tcmu-lua: %s\n", lua_tostring(L, -1));
		return 1;
	}
	/* The conventional global 'arg': script name at 0, then arguments. */
	lua_createtable(L, argc, 1);
	for (i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i);
	}
	lua_setglobal(L, "arg");
	lua_pushcfunction(L, traceback);
	lua_insert(L, -2);
	base = lua_gettop(L) - 1;
	for (i = 1; i < argc; i++)
		lua_pushstring(L, argv[i]);
	if (lua_pcall(L, argc > 0 ? argc - 1 : 0, 1, base)) {
		fprintf(stderr, "tcmu-lua: %s\n", lua_tostring(L, -1));
		return 1;
	}
	return lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : 0;
}

int tl_lua_run_file(const char *file, int argc, char **argv)
{
	char err[256];
	lua_State *L = tl_lua_new_state(NULL, NULL, err, sizeof(err));
	int rc;

	if (!L) {
		fprintf(stderr, "tcmu-lua: %s\n", err);
		return 1;
	}
	rc = run_chunk(L, luaL_loadfile(L, file), argc, argv);
	lua_close(L);
	return rc;
}

int tl_lua_run_string(const char *name, const char *src, int argc,
		      char **argv)
{
	char err[256];
	lua_State *L = tl_lua_new_state(NULL, NULL, err, sizeof(err));
	int rc;

	if (!L) {
		fprintf(stderr, "tcmu-lua: %s\n", err);
		return 1;
	}
	rc = run_chunk(L, luaL_loadbuffer(L, src, strlen(src), name), argc,
		       argv);
	lua_close(L);
	return rc;
}
