// SPDX-License-Identifier: MIT
/*
 * ffi_config.c - the YAML configuration, as Lua tools see it.
 */
#include <errno.h>

#include "config.h"
#include "tl_abi.h"

struct tl_config *tl_ffi_config_load(const char *path, char *err,
				     size_t errlen)
{
	return tl_config_load(path, err, errlen);
}

struct tl_config *tl_ffi_config_parse(const char *name, const char *text,
				      size_t len, char *err, size_t errlen)
{
	return tl_config_parse(name, text, len, err, errlen);
}

void tl_ffi_config_free(struct tl_config *c)
{
	tl_config_free(c);
}

unsigned int tl_ffi_config_ndevices(const struct tl_config *c)
{
	return c->n_devices;
}

int tl_ffi_config_device(const struct tl_config *c, unsigned int i,
			 struct tl_cfg_device_view *out)
{
	const struct cfg_device *d;

	if (i >= c->n_devices)
		return -ERANGE;
	d = &c->devices[i];
	out->name = d->name;
	out->handler = d->handler;
	out->options = d->options;
	out->size = d->size;
	out->block_size = d->block_size;
	out->hw_max_sectors = d->hw_max_sectors;
	out->read_only = d->read_only;
	out->write_cache = d->write_cache;
	out->line = d->line;
	return 0;
}

unsigned int tl_ffi_config_ndirs(const struct tl_config *c)
{
	return c->n_handler_dirs;
}

const char *tl_ffi_config_dir(const struct tl_config *c, unsigned int i)
{
	return i < c->n_handler_dirs ? c->handler_dirs[i] : NULL;
}

int tl_ffi_parse_size(const char *s, uint64_t *out)
{
	return tl_parse_size(s, out);
}
