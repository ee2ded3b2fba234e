/* SPDX-License-Identifier: MIT */
/*
 * uio.h - find TCMU devices among the UIO devices and open them.
 *
 * The kernel names each TCMU device's UIO device
 * "tcm-user/<hba>/<device>/<dev_config>", and dev_config is by convention
 * "<subtype>/<handler config string>".  The subtype picks the handler
 * script, so it is checked to be a plain name: nothing in a configfs
 * string can make us load a file outside the handler directories.
 */
#ifndef TL_UIO_H
#define TL_UIO_H

#include <stddef.h>

#include "tl_abi.h"

struct tl_dev;

struct tl_uio_name {
	unsigned int hba;		/* core/user_<hba> */
	char dev[TL_NAME_MAX];		/* the backstore's name */
	char subtype[TL_NAME_MAX];	/* handler name */
	char cfgstring[TL_CFGSTR_MAX];	/* the rest, may be empty */
};

/*
 * Parse a UIO name.  Returns 0, or -1 with *why saying what is wrong
 * (not TCMU, no handler because dev_config is empty, bad handler name...).
 */
int tl_uio_parse_name(const char *s, struct tl_uio_name *n, const char **why);

/* /sys/class/uio/uio<minor>/name, without the newline. */
int tl_uio_read_name(unsigned int minor, char *buf, size_t size);

/*
 * Call fn for each UIO device whose name starts with "tcm-user/", in no
 * particular order.  Stops early when fn returns non-zero.
 */
int tl_uio_scan(int (*fn)(void *arg, unsigned int minor, const char *name),
		void *arg);

/*
 * Open /dev/uio<minor>.  The open is exclusive: -EBUSY means another
 * daemon serves the device.  Returns the fd or -errno.
 */
int tl_uio_open_fd(unsigned int minor);

/*
 * Map the ring of an open uio fd and make a device of it (which then owns
 * the fd; on failure the fd is closed).  Returns NULL with err set and
 * *errnum a negative errno to report to the kernel.
 */
struct tl_dev *tl_uio_attach(int fd, unsigned int minor, char *err,
			     size_t errlen, int *errnum);

/* Both of the above. */
struct tl_dev *tl_uio_open(unsigned int minor, char *err, size_t errlen,
			   int *errnum);

/*
 * Fill name, subtype, cfgstring and what configfs says about geometry
 * (block size, capacity, largest transfer, write cache) into info.
 * Returns 0 or -errno when a mandatory attribute cannot be read.
 */
int tl_uio_read_info(const struct tl_uio_name *n, struct tl_dev_info *info,
		     char *err, size_t errlen);

#endif /* TL_UIO_H */
