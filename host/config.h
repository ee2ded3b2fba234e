/* SPDX-License-Identifier: MIT */
/*
 * config.h - the daemon's YAML configuration file as C structs.
 *
 * The whole file is parsed and checked before anything acts on it, so a bad
 * file changes nothing.  Every error names file:line:column and the key
 * ("config.yaml:12:5: devices[1].size: expected a size like 64M"), and an
 * unknown key is an error too: a typo must not silently become a default.
 *
 * A device's free-form `options` map is turned into a Lua table
 * constructor here ("{ create = true, path = \"/srv/a.img\" }") that is
 * handed to the handler's open() unchanged.
 */
#ifndef TL_CONFIG_H
#define TL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFG_NAME_MAX 64		/* backstore names and handler names */
#define CFG_WWN_MAX 224		/* iSCSI names are up to 223 bytes */
#define CFG_CFGSTR_MAX 256	/* the kernel's dev_config holds 255 bytes */

struct cfg_loop_export {
	bool enabled;
	char wwn[CFG_WWN_MAX];	/* "naa.<16 hex>"; empty: derived from the name */
	unsigned int lun;
};

struct cfg_iscsi_export {
	bool enabled;
	char iqn[CFG_WWN_MAX];
	char portal_ip[64];	/* as configfs spells it: "127.0.0.1", "[::1]" */
	uint16_t port;
	unsigned int lun;
};

struct cfg_device {
	char name[CFG_NAME_MAX];
	char handler[CFG_NAME_MAX];
	uint64_t size;			/* bytes */
	uint32_t block_size;
	uint32_t hw_max_sectors;	/* in blocks */
	uint32_t max_data_area_mb;	/* 0: the kernel's default */
	uint32_t data_pages_per_blk;	/* 0: the kernel's default */
	uint32_t cmd_ring_size_mb;	/* 0: the kernel's default */
	int32_t cmd_time_out;		/* seconds; -1: the kernel's default */
	bool read_only;
	bool write_cache;
	char *options;			/* Lua table constructor, never NULL */
	char cfgstring[CFG_CFGSTR_MAX];	/* options as "k=v;k=v", or "" */
	struct cfg_loop_export loop;
	struct cfg_iscsi_export iscsi;
	int line;			/* where the entry starts, for messages */
};

struct tl_config {
	char *path;			/* the file name as given, for messages */
	char **handler_dirs;
	unsigned int n_handler_dirs;
	unsigned int workers;		/* >= 1 */
	int log_level;			/* TL_LOG_* */
	char *control_socket;		/* NULL: none */
	bool hot_reload;		/* reload handlers when their files change */
	unsigned int poll_us;		/* workers busy-poll rings this long */
	bool io_uring;			/* fast path I/O through io_uring */
	unsigned int lua_timeout_ms;	/* watchdog; 0 = off */
	uint64_t lua_memory_limit;	/* per worker's Lua state; 0 = none */
	char *pid_file;			/* NULL: none */
	unsigned int hba;		/* core/user_<hba> for configured devices */
	struct cfg_device *devices;
	unsigned int n_devices;
};

/* Defaults used when a key is absent (and with no file at all). */
#define CFG_DEFAULT_WORKERS 2
#define CFG_DEFAULT_HBA 1
#define CFG_DEFAULT_LUA_TIMEOUT_MS 5000
#define CFG_DEFAULT_LUA_MEMORY_LIMIT (1ull << 30)
#define CFG_DEFAULT_BLOCK_SIZE 512
/* hw_max_sectors: 1 MiB commands, so large I/O is not split up. */
#define CFG_DEFAULT_MAX_IO_BYTES (1024 * 1024)
#define CFG_DEFAULT_ISCSI_PORT 3260

/*
 * Parse a configuration file.  Returns NULL with a one-line message in err
 * ("file:line:col: key: what is wrong") on any error.
 */
struct tl_config *tl_config_load(const char *path, char *err, size_t errlen);

/* The same from memory; name is used in messages. */
struct tl_config *tl_config_parse(const char *name, const char *text,
				  size_t len, char *err, size_t errlen);

/* A configuration with every default and no devices. */
struct tl_config *tl_config_default(void);

void tl_config_free(struct tl_config *c);

/* The configured device called name, or NULL. */
const struct cfg_device *tl_config_find(const struct tl_config *c,
					const char *name);

/* Join handler_dirs with ';' (the worker's format); NULL when empty. */
char *tl_config_handler_path(const struct tl_config *c);

/*
 * Parse a size: a decimal number of bytes with an optional binary unit
 * K, M, G, T or P (also written KB/KiB...).  Returns 0, or -1 when it is
 * not a size or does not fit in 64 bits.
 */
int tl_parse_size(const char *s, uint64_t *out);

/* 1..63 of [A-Za-z0-9_-] (handlers: no '/', no '.', no ".."). */
bool tl_valid_handler_name(const char *s);

#endif /* TL_CONFIG_H */
