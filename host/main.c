// SPDX-License-Identifier: MIT
/*
 * main.c - the tcmu-lua command: a table of subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "lua_host.h"

struct subcommand {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
};

/* Subcommands written in Lua live in lua/lib/tl/cli/<name>.lua. */
static int run_lua_cli(const char *name, int argc, char **argv)
{
	char src[256];

	snprintf(src, sizeof(src),
		 "return require('tl.cli.%s').main(...)", name);
	return tl_lua_run_string(name, src, argc, argv);
}

static int cmd_script(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: tcmu-lua script FILE [ARGS...]\n");
		return 2;
	}
	return tl_lua_run_file(argv[1], argc - 1, argv + 1);
}

static int cmd_test(int argc, char **argv)
{
	/* busted, run inside this binary so ffi.C is the real core. */
	argv[0] = "busted";
	return tl_lua_run_string("busted",
				 "require 'busted.runner'({ standalone = false })",
				 argc, argv);
}

static int cmd_decode(int argc, char **argv)
{
	return run_lua_cli("decode", argc, argv);
}

static int cmd_sandbox(int argc, char **argv)
{
	return run_lua_cli("sandbox", argc, argv);
}

static int cmd_ctl(int argc, char **argv)
{
	return run_lua_cli("ctl", argc, argv);
}

static int cmd_version(int argc, char **argv)
{
	printf("tcmu-lua %s\n", TL_VERSION);
	return 0;
}

static const struct subcommand commands[] = {
	{ "daemon", tl_daemon_main,
	  "daemon [-c CONFIG.yaml] [--check]  serve the kernel's TCMU devices" },
	{ "sandbox", cmd_sandbox,
	  "sandbox CONFIG.yaml|HANDLER [FILE]  SCSI playground, no kernel needed" },
	{ "ctl", cmd_ctl,
	  "ctl status|devices|stats|metrics|trace DEV|reload|log-level L" },
	{ "decode", cmd_decode,
	  "decode [--sense] HEX...          explain a CDB or sense data" },
	{ "script", cmd_script,
	  "script FILE [ARGS...]            run Lua with the core's FFI" },
	{ "test", cmd_test, "test [BUSTED ARGS...]           run busted specs" },
	{ "version", cmd_version, "version" },
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: tcmu-lua COMMAND [ARGS...]\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %s\n", commands[i].usage);
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "tcmu-lua: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
