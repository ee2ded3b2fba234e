/* SPDX-License-Identifier: MIT */
/*
 * lua_host.h - making lua_States and calling the Lua runtime from C.
 *
 * Each worker has one lua_State running lua/lib/tl/runtime.lua.  C calls
 * into it through a handful of entry points only: open/close a device,
 * dispatch a batch, report a TMR or a loop event.  Everything per command
 * happens inside one dispatch call, Lua pulling commands through the FFI.
 */
#ifndef TL_LUA_HOST_H
#define TL_LUA_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

struct tl_worker;
struct tl_dev;

/* The directory holding lib/ and handlers/ (env TCMU_LUA_DIR overrides). */
const char *tl_lua_dir(void);

/*
 * A fresh state with the standard libraries, package.path pointing at our
 * Lua library, the embedded FFI declarations, and the handler directories.
 * With a worker, tl.runtime is loaded and bound to it.
 */
lua_State *tl_lua_new_state(struct tl_worker *w, const char *handler_dirs,
			    char *err, size_t errlen);

int tl_lua_open_device(struct tl_worker *w, struct tl_dev *d,
		       const char *config, char *err, size_t errlen);
void tl_lua_close_device(struct tl_worker *w, struct tl_dev *d);
void tl_lua_dispatch(struct tl_worker *w, struct tl_dev *d);
void tl_lua_tmr(struct tl_worker *w, struct tl_dev *d, uint8_t type,
		const uint16_t *ids, uint32_t cnt);
void tl_lua_resize(struct tl_worker *w, struct tl_dev *d);
void tl_lua_event(struct tl_worker *w, int kind, int id, int revents);
int tl_lua_reload(struct tl_worker *w, bool force, char *err, size_t errlen);
/* Run Lua source in the worker's state (tests, debugging); its result as
 * a string in out.  Returns 0, or -1 with the error in out. */
int tl_lua_eval(struct tl_worker *w, const char *code, char *out,
		size_t outlen);
/* The watchdog's first stage: make interpreted Lua in w's thread raise
 * (a signal that arms a count hook). */
void tl_lua_wd_interrupt(struct tl_worker *w);
/* Let the watchdog's signal reach the calling thread. */
void tl_lua_wd_thread_init(void);
/* Push a list of the files the handlers came from; returns its length. */
int tl_lua_watched_files(struct tl_worker *w);

/* Run a Lua file with arguments in a state of its own (script/test modes). */
int tl_lua_run_file(const char *file, int argc, char **argv);
/* Run a chunk of Lua source the same way. */
int tl_lua_run_string(const char *name, const char *src, int argc, char **argv);

#endif /* TL_LUA_HOST_H */
