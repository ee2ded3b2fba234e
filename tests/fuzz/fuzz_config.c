// SPDX-License-Identifier: MIT
/*
 * fuzz_config.c - arbitrary bytes as the daemon's YAML configuration.
 *
 * The input is the whole file, given to tl_config_parse() (host/config.c:
 * libyaml, the key checks, sizes, exports, and the conversion of each
 * device's options into a Lua table constructor).
 *
 * Checked for every input:
 *  - a refused file leaves a one-line message that names the file;
 *  - an accepted one holds only what the checks promise: at least one
 *    worker, device names unique and found by tl_config_find(), handler
 *    names that tl_valid_handler_name() accepts (no path can be made of
 *    them), a dev_config ("handler/k=v;...") that fits the kernel's 255
 *    bytes, handler directories that join into tl_config_handler_path();
 *  - each device's options, the Lua text handed to the handler's open(),
 *    compile as one expression and evaluate, in an empty environment and
 *    without any function call, to a table: no YAML value can become code.
 * ASan/UBSan (libFuzzer build) or valgrind (replay) catch the rest.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "config.h"
#include "log.h"

#define NAME "fuzz.yaml"

static lua_State *L;
static int verbose;

static void fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_config: %s: %s\n", what, detail ? detail : "");
	abort();
}

/* Calls seen by the hook: the chunk itself, and nothing else. */
static int calls;

static void no_calls(lua_State *l, lua_Debug *ar)
{
	(void)ar;
	if (++calls > 1)
		luaL_error(l, "options called a function");
}

static void check_options(const struct cfg_device *d)
{
	static const char prefix[] = "return ";
	size_t n = strlen(d->options);
	char *src = malloc(sizeof(prefix) + n);

	if (!src)
		return;
	memcpy(src, prefix, sizeof(prefix) - 1);
	memcpy(src + sizeof(prefix) - 1, d->options, n + 1);
	if (luaL_loadbuffer(L, src, strlen(src), "=options"))
		fail("options do not compile", lua_tostring(L, -1));
	free(src);
	/* An empty environment: no global could be reached. */
	lua_newtable(L);
	lua_setfenv(L, -2);
	calls = 0;
	lua_sethook(L, no_calls, LUA_MASKCALL, 0);
	if (lua_pcall(L, 0, 1, 0))
		fail("options do not evaluate", lua_tostring(L, -1));
	lua_sethook(L, NULL, 0, 0);
	if (!lua_istable(L, -1))
		fail("options are not a table", d->options);
	lua_settop(L, 0);
}

static void check_config(const struct tl_config *c)
{
	char *path;

	if (c->workers < 1)
		fail("no workers", NULL);
	for (unsigned int i = 0; i < c->n_handler_dirs; i++)
		if (!c->handler_dirs[i] || !c->handler_dirs[i][0])
			fail("empty handler directory", NULL);
	path = tl_config_handler_path(c);
	if (!path != !c->n_handler_dirs)
		fail("handler path and directories disagree", NULL);
	free(path);
	for (unsigned int i = 0; i < c->n_devices; i++) {
		const struct cfg_device *d = &c->devices[i];

		if (!d->name[0] || memchr(d->name, '/', sizeof(d->name)))
			fail("bad device name", d->name);
		if (tl_config_find(c, d->name) != d)
			fail("device names not unique", d->name);
		if (!tl_valid_handler_name(d->handler) ||
		    strlen(d->handler) >= CFG_NAME_MAX)
			fail("bad handler name accepted", d->handler);
		if (strlen(d->handler) + 1 + strlen(d->cfgstring) > 255)
			fail("dev_config longer than the kernel takes",
			     d->cfgstring);
		if (!d->size || !d->block_size ||
		    (d->block_size & (d->block_size - 1)))
			fail("bad geometry accepted", d->name);
		if (!d->options)
			fail("options NULL", d->name);
		check_options(d);
	}
}

/* Linked with --wrap=tl_log: the parser reports in err, never logs. */
void __wrap_tl_log(enum tl_log_level level, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fail("the parser logged", line);
	(void)level;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	L = luaL_newstate();
	if (!L)
		abort();
	verbose = getenv("TL_FUZZ_VERBOSE") != NULL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024] = "";
	struct tl_config *c;

	if (!L)
		LLVMFuzzerInitialize(NULL, NULL);
	c = tl_config_parse(NAME, (const char *)data, size, err, sizeof(err));
	if (verbose)
		fprintf(stderr, "fuzz_config: %s\n", c ? "accepted" : err);
	if (!c) {
		if (strncmp(err, NAME, strlen(NAME)) || strchr(err, '\n'))
			fail("refusal without a one-line message naming the file",
			     err);
		return 0;
	}
	check_config(c);
	tl_config_free(c);
	return 0;
}
