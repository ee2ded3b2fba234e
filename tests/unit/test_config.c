// SPDX-License-Identifier: MIT
/*
 * test_config.c - the YAML configuration: good files give the right
 * structs, bad ones give exactly the message a user will read, with
 * file:line:column and the key.
 *
 * config.c (and the log level names from log.c) are compiled in directly,
 * so this test needs only libyaml to link.
 */
#define _GNU_SOURCE
#include <libgen.h>
#include <string.h>

#include "../../host/config.c"
#include "../../host/log.c"

#include "check.h"

static char data_dir[PATH_MAX];
static char src_dir[PATH_MAX];

static struct tl_config *parse(const char *text, char *err, size_t errlen)
{
	err[0] = '\0';
	return tl_config_parse("t.yaml", text, strlen(text), err, errlen);
}

/* The file must be refused with exactly this message. */
static void bad(const char *text, const char *want)
{
	struct tl_config *c;
	char err[512];

	c = parse(text, err, sizeof(err));
	CHECK(c == NULL);
	if (strcmp(err, want)) {
		fprintf(stderr, "  text: %s\n  want: %s\n  got:  %s\n", text,
			want, err);
		CHECK(!"message differs");
	}
	tl_config_free(c);
}

static struct tl_config *good(const char *text)
{
	struct tl_config *c;
	char err[512];

	c = parse(text, err, sizeof(err));
	if (!c)
		fprintf(stderr, "  unexpected error: %s\n", err);
	CHECK(c != NULL);
	return c;
}

static void test_sizes(void)
{
	uint64_t v;

	CHECK_EQ(tl_parse_size("512", &v), 0);
	CHECK_EQ(v, 512);
	CHECK_EQ(tl_parse_size("64M", &v), 0);
	CHECK_EQ(v, 64ULL << 20);
	CHECK_EQ(tl_parse_size("1G", &v), 0);
	CHECK_EQ(v, 1ULL << 30);
	CHECK_EQ(tl_parse_size("2GiB", &v), 0);
	CHECK_EQ(v, 2ULL << 30);
	CHECK_EQ(tl_parse_size("3kB", &v), 0);
	CHECK_EQ(v, 3ULL << 10);
	CHECK_EQ(tl_parse_size("1T", &v), 0);
	CHECK_EQ(v, 1ULL << 40);
	CHECK_EQ(tl_parse_size("16383P", &v), 0);
	CHECK_EQ(tl_parse_size("16384P", &v), -1);	/* 2^64 */
	CHECK_EQ(tl_parse_size("1.5G", &v), -1);
	CHECK_EQ(tl_parse_size("G", &v), -1);
	CHECK_EQ(tl_parse_size("-1M", &v), -1);
	CHECK_EQ(tl_parse_size("1X", &v), -1);
	CHECK_EQ(tl_parse_size("1GG", &v), -1);
	CHECK_EQ(tl_parse_size("99999999999999999999", &v), -1);
}

static void test_handler_names(void)
{
	CHECK(tl_valid_handler_name("ram"));
	CHECK(tl_valid_handler_name("my_handler-2"));
	CHECK(!tl_valid_handler_name(""));
	CHECK(!tl_valid_handler_name(".."));
	CHECK(!tl_valid_handler_name("../etc"));
	CHECK(!tl_valid_handler_name("a/b"));
	CHECK(!tl_valid_handler_name("a.lua"));
}

static void test_empty_is_defaults(void)
{
	struct tl_config *c = good("");

	if (!c)
		return;
	CHECK_EQ(c->workers, CFG_DEFAULT_WORKERS);
	CHECK_EQ(c->log_level, TL_LOG_INFO);
	CHECK_EQ(c->hba, CFG_DEFAULT_HBA);
	CHECK_EQ(c->n_devices, 0);
	CHECK(c->control_socket == NULL);
	CHECK(!c->hot_reload);
	CHECK(c->io_uring);
	CHECK_EQ(c->lua_timeout_ms, 5000);
	CHECK_EQ(c->lua_memory_limit, 1ull << 30);
	CHECK(tl_config_handler_path(c) == NULL);
	tl_config_free(c);

	c = good("daemon:\n  lua_timeout_ms: 0\n  lua_memory_limit: 0\n");
	CHECK(c && c->lua_timeout_ms == 0 && c->lua_memory_limit == 0);
	tl_config_free(c);
	c = good("daemon:\n  lua_timeout_ms: 250\n  lua_memory_limit: 256M\n");
	CHECK(c && c->lua_timeout_ms == 250 &&
	      c->lua_memory_limit == 256ull << 20);
	tl_config_free(c);

	c = good("# only a comment\n");
	CHECK(c && c->n_devices == 0);
	tl_config_free(c);
	c = good("devices:\ndaemon:\n");
	CHECK(c && c->n_devices == 0);
	tl_config_free(c);
}

static void test_full(void)
{
	struct tl_config *c = good(
		"daemon:\n"
		"  handler_dirs: [/etc/tl/handlers, /usr/share/tl]\n"
		"  workers: 3\n"
		"  log_level: debug\n"
		"  control_socket: /run/tl.sock\n"
		"  pid_file: /run/tl.pid\n"
		"  hba: 7\n"
		"  hot_reload: true\n"
		"  io_uring: false\n"
		"devices:\n"
		"  - name: disk0\n"
		"    handler: ram\n"
		"    size: 1G\n"
		"  - name: img\n"
		"    handler: file\n"
		"    size: 4194304\n"
		"    block_size: 4096\n"
		"    hw_max_sectors: 256\n"
		"    max_data_area_mb: 64\n"
		"    data_pages_per_blk: 4\n"
		"    cmd_ring_size_mb: 2\n"
		"    cmd_time_out: 5\n"
		"    read_only: true\n"
		"    write_cache: true\n"
		"    options: {path: /srv/img, create: true, direct: false}\n"
		"    exports:\n"
		"      loop: {wwn: naa.5001405abcdef012, lun: 2}\n"
		"      iscsi: {iqn: 'iqn.2003-01.org.example:img', portal: '[::1]:3261', lun: 1}\n");
	const struct cfg_device *d;
	char *hp;

	if (!c)
		return;
	hp = tl_config_handler_path(c);
	CHECK(hp && !strcmp(hp, "/etc/tl/handlers;/usr/share/tl"));
	free(hp);
	CHECK_EQ(c->workers, 3);
	CHECK_EQ(c->log_level, TL_LOG_DEBUG);
	CHECK(!strcmp(c->control_socket, "/run/tl.sock"));
	CHECK(!strcmp(c->pid_file, "/run/tl.pid"));
	CHECK_EQ(c->hba, 7);
	CHECK(c->hot_reload);
	CHECK(!c->io_uring);
	CHECK_EQ(c->n_devices, 2);

	d = tl_config_find(c, "disk0");
	CHECK(d == &c->devices[0]);
	CHECK(!strcmp(d->handler, "ram"));
	CHECK_EQ(d->size, 1ULL << 30);
	CHECK_EQ(d->block_size, CFG_DEFAULT_BLOCK_SIZE);
	/* 1 MiB commands by default, whatever the block size. */
	CHECK_EQ(d->hw_max_sectors, 2048);
	CHECK_EQ(d->max_data_area_mb, 0);
	CHECK_EQ(d->data_pages_per_blk, 0);
	CHECK_EQ(d->cmd_ring_size_mb, 0);
	CHECK_EQ(d->cmd_time_out, -1);
	CHECK(!d->read_only && !d->write_cache);
	CHECK(!strcmp(d->options, "{}"));
	CHECK(!d->loop.enabled && !d->iscsi.enabled);
	CHECK_EQ(d->line, 11);

	d = tl_config_find(c, "img");
	CHECK(d == &c->devices[1]);
	CHECK_EQ(d->size, 4194304);
	CHECK_EQ(d->block_size, 4096);
	CHECK_EQ(d->hw_max_sectors, 256);
	CHECK_EQ(d->max_data_area_mb, 64);
	CHECK_EQ(d->data_pages_per_blk, 4);
	CHECK_EQ(d->cmd_ring_size_mb, 2);
	CHECK_EQ(d->cmd_time_out, 5);
	CHECK(d->read_only && d->write_cache);
	CHECK(!strcmp(d->options,
		      "{ path = \"/srv/img\", create = true, direct = false }"));
	CHECK(!strcmp(d->cfgstring, "path=/srv/img;create=true;direct=false"));
	CHECK(d->loop.enabled);
	CHECK(!strcmp(d->loop.wwn, "naa.5001405abcdef012"));
	CHECK_EQ(d->loop.lun, 2);
	CHECK(d->iscsi.enabled);
	CHECK(!strcmp(d->iscsi.iqn, "iqn.2003-01.org.example:img"));
	CHECK(!strcmp(d->iscsi.portal_ip, "[::1]"));
	CHECK_EQ(d->iscsi.port, 3261);
	CHECK_EQ(d->iscsi.lun, 1);
	CHECK(tl_config_find(c, "nope") == NULL);
	tl_config_free(c);
}

static void test_default_io_size(void)
{
	struct tl_config *c = good(
		"devices:\n  - {name: d, handler: ram, size: 1M, block_size: 4096}\n");

	/* hw_max_sectors counts blocks: 1 MiB is 256 of 4 KiB. */
	if (c)
		CHECK_EQ(c->devices[0].hw_max_sectors, 256);
	tl_config_free(c);
}

static void test_exports(void)
{
	struct tl_config *c = good(
		"devices:\n"
		"  - {name: a, handler: ram, size: 1M, exports: {loop: true, iscsi: {iqn: iqn.2003-01.x:a}}}\n"
		"  - {name: b, handler: ram, size: 1M, exports: {loop: false, iscsi: false}}\n"
		"  - {name: c, handler: ram, size: 1M, exports: {iscsi: {iqn: iqn.2003-01.x:a, portal: 10.1.2.3, lun: 1}}}\n");
	char wwn[CFG_WWN_MAX];

	if (!c)
		return;
	/* A loop WWN derived from the name: stable, valid, distinct. */
	CHECK(c->devices[0].loop.enabled);
	CHECK(valid_naa(c->devices[0].loop.wwn));
	derive_wwn("a", wwn, sizeof(wwn));
	CHECK(!strcmp(wwn, c->devices[0].loop.wwn));
	derive_wwn("b", wwn, sizeof(wwn));
	CHECK(strcmp(wwn, c->devices[0].loop.wwn));
	CHECK(!strcmp(c->devices[0].iscsi.portal_ip, "127.0.0.1"));
	CHECK_EQ(c->devices[0].iscsi.port, 3260);
	CHECK(!c->devices[1].loop.enabled && !c->devices[1].iscsi.enabled);
	CHECK(!strcmp(c->devices[2].iscsi.portal_ip, "10.1.2.3"));
	CHECK_EQ(c->devices[2].iscsi.port, 3260);
	tl_config_free(c);
}

static void test_options(void)
{
	struct tl_config *c = good(
		"devices:\n"
		"  - name: d\n"
		"    handler: x\n"
		"    size: 1M\n"
		"    options:\n"
		"      n: 42\n"
		"      neg: -7\n"
		"      f: 1.5e3\n"
		"      plus: +3\n"
		"      hex: 0x1F\n"
		"      inf: -.inf\n"
		"      s: '42'\n"
		"      yes: yes\n"
		"      off: null\n"
		"      q: 'it''s \"quoted\" \\ back'\n"
		"      nl: \"a\\nb\\x01\"\n"
		"      end: keyword\n"
		"      'two words': 1\n"
		"      7: seven\n"
		"      list: [1, two, [3], {k: v}]\n"
		"      map: {inner: {deep: true}}\n"
		"      empty: {}\n");

	if (!c)
		return;
	CHECK(!strcmp(c->devices[0].options,
		"{ n = 42, neg = -7, f = 1.5e3, plus = 3, hex = 0x1F,"
		" inf = (-1/0), s = \"42\", yes = \"yes\","
		" q = \"it's \\034quoted\\034 \\092 back\","
		" nl = \"a\\010b\\001\", [\"end\"] = \"keyword\","
		" [\"two words\"] = 1, [7] = \"seven\","
		" list = { 1, \"two\", { 3 }, { k = \"v\" } },"
		" map = { inner = { deep = true } }, empty = {} }"));
	CHECK(!strcmp(c->devices[0].cfgstring, ""));	/* nested: no flat form */
	tl_config_free(c);

	c = good("devices: [{name: d, handler: x, size: 1M, options: }]\n");
	CHECK(c && !strcmp(c->devices[0].options, "{}"));
	CHECK(c && !strcmp(c->devices[0].cfgstring, ""));
	tl_config_free(c);

	c = good("devices: [{name: d, handler: x, size: 1M, options: {a: 'x;y'}}]\n");
	CHECK(c && !strcmp(c->devices[0].cfgstring, ""));	/* ';' splits */
	tl_config_free(c);
	c = good("devices: [{name: d, handler: x, size: 1M, options: {a: 1, b: ~, c: 'x=y'}}]\n");
	CHECK(c && !strcmp(c->devices[0].cfgstring, "a=1;c=x=y"));
	tl_config_free(c);
}

/*
 * Exponential aliases must hit the size limit, not eat the memory.  The
 * position is the aliased node's: that is where libyaml says it is.
 */
static void test_options_bomb(void)
{
	bad("devices:\n"
	    "  - name: d\n"
	    "    handler: x\n"
	    "    size: 1M\n"
	    "    options:\n"
	    "      a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	    "      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
	    "      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
	    "      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
	    "      e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
	    "t.yaml:6:23: devices[0].options.e[0][0][9][2][3]: options too large (more than 65536 bytes of Lua)");
}

static void test_bad_syntax(void)
{
	bad("devices:\n  - name: [\n", "t.yaml:3:1: YAML syntax error: did not find expected node content while parsing a flow node");
	bad("a: 1\n---\nb: 2\n", "t.yaml:1:1: unknown key 'a' (known: daemon, devices)");
	bad("daemon: {}\n---\ndevices: []\n", "t.yaml:3:1: only one YAML document is allowed");
	bad("- 1\n", "t.yaml:1:1: expected a mapping, got a list");
	bad("just text\n", "t.yaml:1:1: expected a mapping, got a scalar");
}

static void test_bad_daemon(void)
{
	bad("daemon:\n  wokers: 2\n",
	    "t.yaml:2:3: daemon: unknown key 'wokers' (known: handler_dirs, workers, log_level, control_socket, pid_file, hba, hot_reload, poll_us, io_uring, lua_timeout_ms, lua_memory_limit)");
	bad("daemon:\n  lua_memory_limit: lots\n", "t.yaml:2:21: daemon.lua_memory_limit: expected a size like 64M");
	bad("daemon:\n  lua_timeout_ms: -1\n", "t.yaml:2:19: daemon.lua_timeout_ms: expected a whole number");
	bad("daemon:\n  workers: 0\n", "t.yaml:2:12: daemon.workers: 0 is out of range (1..64)");
	bad("daemon:\n  workers: many\n", "t.yaml:2:12: daemon.workers: expected a number of threads or auto");
	bad("daemon:\n  log_level: loud\n", "t.yaml:2:14: daemon.log_level: expected error, warn, info or debug");
	bad("daemon:\n  handler_dirs: [/a, [b]]\n", "t.yaml:2:22: daemon.handler_dirs[1]: expected a string, got a list");
	bad("daemon:\n  handler_dirs: 'a;b'\n", "t.yaml:2:17: daemon.handler_dirs: a directory name must not contain ';'");
	bad("daemon:\n  hba: -1\n", "t.yaml:2:8: daemon.hba: expected a whole number");
	bad("daemon:\n  workers: 1\n  workers: 2\n", "t.yaml:3:3: daemon: duplicate key 'workers'");
	bad("daemon: [1]\n", "t.yaml:1:9: daemon: expected a mapping, got a list");
}

static void test_bad_devices(void)
{
	bad("devices: {}\n", "t.yaml:1:10: devices: expected a list, got a mapping");
	bad("devices:\n  - name: d\n    handler: ram\n",
	    "t.yaml:2:5: devices[0]: size is required");
	bad("devices:\n  - handler: ram\n    size: 1M\n",
	    "t.yaml:2:5: devices[0]: name is required");
	bad("devices:\n  - name: d\n    size: 1M\n",
	    "t.yaml:2:5: devices[0]: handler is required");
	bad("devices:\n  - name: a\n    handler: ram\n    size: 1M\n"
	    "  - name: b\n    handler: ram\n    size: lots\n",
	    "t.yaml:7:11: devices[1].size: expected a size like 64M");
	bad("devices:\n  - {name: d, handler: ram, size: 0}\n",
	    "t.yaml:2:35: devices[0].size: expected a size like 64M");
	bad("devices:\n  - {name: d, handler: ram, size: 1000, block_size: 512}\n",
	    "t.yaml:2:35: devices[0].size: 1000 is not a multiple of the block size 512");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, block_size: 520}\n",
	    "t.yaml:2:51: devices[0].block_size: expected 512, 1024, 2048 or 4096");
	bad("devices:\n  - {name: d, handler: ../x, size: 1M}\n",
	    "t.yaml:2:24: devices[0].handler: use only letters, digits, _ and -");
	bad("devices:\n  - {name: a/b, handler: ram, size: 1M}\n",
	    "t.yaml:2:12: devices[0].name: use only letters, digits and _ - . : (not first)");
	bad("devices:\n  - {name: .., handler: ram, size: 1M}\n",
	    "t.yaml:2:12: devices[0].name: use only letters, digits and _ - . : (not first)");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, read_only: yes}\n",
	    "t.yaml:2:50: devices[0].read_only: expected true or false");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, hw_max_sectors: 0}\n",
	    "t.yaml:2:55: devices[0].hw_max_sectors: 0 is out of range (1..65535)");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, data_pages_per_blk: 0}\n",
	    "t.yaml:2:59: devices[0].data_pages_per_blk: 0 is out of range (1..512)");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, cmd_ring_size_mb: 9}\n",
	    "t.yaml:2:57: devices[0].cmd_ring_size_mb: 9 is out of range (1..8)");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, max_data_area_mb: 1, data_pages_per_blk: 512}\n",
	    "t.yaml:2:5: devices[0]: data_pages_per_blk 512 is more than max_data_area_mb 1 holds (256 pages)");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, cmd_time_out: 86401}\n",
	    "t.yaml:2:53: devices[0].cmd_time_out: 86401 is out of range (0..86400)");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, sise: 2}\n",
	    "t.yaml:2:39: devices[0]: unknown key 'sise' (known: name, handler, size, block_size, hw_max_sectors, max_data_area_mb, data_pages_per_blk, cmd_ring_size_mb, cmd_time_out, read_only, write_cache, options, exports)");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, options: [1]}\n",
	    "t.yaml:2:48: devices[0].options: expected a mapping, got a list");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, options: {[k]: 1}}\n",
	    "t.yaml:2:49: devices[0].options: option keys must be strings");
	bad("devices:\n  - {name: d, handler: ram, size: 1M}\n  - {name: d, handler: null, size: 1M}\n",
	    "t.yaml:3:24: devices[1].handler: expected a string, got null");
	bad("devices:\n  - {name: d, handler: ram, size: 1M}\n  - {name: d, handler: file, size: 1M}\n",
	    "t.yaml:3:5: devices[1]: name 'd' is already used by devices[0] (line 2)");
	bad("devices:\n  - - x\n", "t.yaml:2:5: devices[0]: expected a mapping, got a list");
}

static void test_bad_exports(void)
{
	bad("devices:\n  - {name: d, handler: ram, size: 1M, exports: {loop: {wwn: naa.123}}}\n",
	    "t.yaml:2:61: devices[0].exports.loop.wwn: expected naa. and 16 hex digits");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, exports: {loop: 1}}\n",
	    "t.yaml:2:55: devices[0].exports.loop: expected true, false or a mapping with wwn");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, exports: {nbd: true}}\n",
	    "t.yaml:2:49: devices[0].exports: unknown key 'nbd' (known: loop, iscsi)");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, exports: {iscsi: {portal: 127.0.0.1}}}\n",
	    "t.yaml:2:56: devices[0].exports.iscsi: iqn is required");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, exports: {iscsi: {iqn: 'bad name'}}}\n",
	    "t.yaml:2:62: devices[0].exports.iscsi.iqn: expected a name like iqn.2003-01.org.example:disk0");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, exports: {iscsi: {iqn: iqn.x, portal: '::1:3260'}}}\n",
	    "t.yaml:2:77: devices[0].exports.iscsi.portal: expected address:port like 127.0.0.1:3260 or [::1]:3260");
	bad("devices:\n  - {name: d, handler: ram, size: 1M, exports: {iscsi: {iqn: iqn.x, portal: '1.2.3.4:0'}}}\n",
	    "t.yaml:2:77: devices[0].exports.iscsi.portal: expected address:port like 127.0.0.1:3260 or [::1]:3260");
	bad("devices:\n"
	    "  - {name: a, handler: ram, size: 1M, exports: {loop: {wwn: naa.5001405000000001}}}\n"
	    "  - {name: b, handler: ram, size: 1M, exports: {loop: {wwn: naa.5001405000000001}}}\n",
	    "t.yaml:3:5: devices[1]: loop LUN 0 of naa.5001405000000001 is already used by devices[0] (line 2)");
	bad("devices:\n"
	    "  - {name: a, handler: ram, size: 1M, exports: {iscsi: {iqn: iqn.x:t, lun: 3}}}\n"
	    "  - {name: b, handler: ram, size: 1M, exports: {iscsi: {iqn: iqn.x:t, lun: 3}}}\n",
	    "t.yaml:3:5: devices[1]: iSCSI LUN 3 of iqn.x:t is already used by devices[0] (line 2)");
}

static void test_files(void)
{
	static const char *const shipped[] = {
		"config.yaml.example", "examples/ram.yaml", "examples/file.yaml",
		"examples/null.yaml", "examples/minimal.yaml",
		"examples/qcow2.yaml", "examples/optical.yaml",
		"examples/fault.yaml", "examples/trace.yaml", "examples/nbd.yaml",
	};
	char path[PATH_MAX + 64], err[512];
	struct tl_config *c;
	size_t i;

	for (i = 0; i < sizeof(shipped) / sizeof(shipped[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", src_dir, shipped[i]);
		c = tl_config_load(path, err, sizeof(err));
		if (!c)
			fprintf(stderr, "  %s\n", err);
		CHECK(c != NULL);
		CHECK(c && c->n_devices > 0);
		tl_config_free(c);
	}

	snprintf(path, sizeof(path), "%s/good.yaml", data_dir);
	c = tl_config_load(path, err, sizeof(err));
	if (!c)
		fprintf(stderr, "  %s\n", err);
	CHECK(c != NULL);
	if (c) {
		CHECK_EQ(c->n_devices, 3);
		CHECK(!strcmp(c->devices[2].options,
			      "{ path = \"/var/lib/tcmu-lua/big.img\", create = true, direct = false }"));
		CHECK_EQ(c->devices[2].size, 8ULL << 40);
	}
	tl_config_free(c);

	/* A message names the file as it was given. */
	snprintf(path, sizeof(path), "%s/bad-size.yaml", data_dir);
	c = tl_config_load(path, err, sizeof(err));
	CHECK(c == NULL);
	{
		char want[PATH_MAX + 128];

		snprintf(want, sizeof(want),
			 "%s:12:11: devices[1].size: expected a size like 64M",
			 path);
		if (strcmp(err, want))
			fprintf(stderr, "  want: %s\n  got:  %s\n", want, err);
		CHECK(!strcmp(err, want));
	}

	c = tl_config_load("/nonexistent/tl.yaml", err, sizeof(err));
	CHECK(c == NULL);
	CHECK(!strcmp(err, "/nonexistent/tl.yaml: No such file or directory"));
}

int main(void)
{
	char here[PATH_MAX];

	/* The sources sit two levels above this file. */
	snprintf(here, sizeof(here), "%s", __FILE__);
	if (snprintf(src_dir, sizeof(src_dir), "%s/../..", dirname(here)) >=
	    (int)sizeof(src_dir) ||
	    snprintf(data_dir, sizeof(data_dir), "%s/tests/data/config",
		     src_dir) >= (int)sizeof(data_dir))
		return EXIT_FAILURE;

	RUN(test_sizes);
	RUN(test_handler_names);
	RUN(test_empty_is_defaults);
	RUN(test_full);
	RUN(test_default_io_size);
	RUN(test_exports);
	RUN(test_options);
	RUN(test_options_bomb);
	RUN(test_bad_syntax);
	RUN(test_bad_daemon);
	RUN(test_bad_devices);
	RUN(test_bad_exports);
	RUN(test_files);
	return check_done();
}
