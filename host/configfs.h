/* SPDX-License-Identifier: MIT */
/*
 * configfs.h - the LIO target tree under /sys/kernel/config/target and the
 * target_core_user module parameters.
 *
 * What the daemon makes there is written down in a log (struct tl_cfs) as
 * it goes, and undone from that log in reverse order: symlinks unlinked,
 * directories removed, the loop nexus released.  So a failed start leaves
 * nothing behind and a stop removes exactly what the config described.
 *
 * Writing `enable` of a TCMU backstore, and removing one, make the kernel
 * send a netlink event and sleep until the daemon answers it.  Whoever
 * calls tl_cfs_create_device() or tl_cfs_undo*() must therefore not be
 * the thread that answers netlink.
 */
#ifndef TL_CONFIGFS_H
#define TL_CONFIGFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define TL_CFS_ROOT "/sys/kernel/config/target"
#define TL_TCMU_PARAMS "/sys/module/target_core_user/parameters"

/* Is the target tree there and target_core_user loaded?  Else explain. */
bool tl_cfs_available(char *err, size_t errlen);

/* Read a configfs/sysfs file without its trailing newline. */
int tl_cfs_read(const char *path, char *buf, size_t size);
int tl_cfs_read_u64(const char *path, uint64_t *v);
/* Write a value in one write(); returns 0 or -errno. */
int tl_cfs_write(const char *path, const char *val);

/* Attributes of core/user_<hba>/<dev>: "attrib/block_size", "enable". */
int tl_cfs_dev_read(unsigned int hba, const char *dev, const char *attr,
		    char *buf, size_t size);
int tl_cfs_dev_read_u64(unsigned int hba, const char *dev, const char *attr,
			uint64_t *v);
int tl_cfs_dev_write(unsigned int hba, const char *dev, const char *attr,
		     const char *val);

/*
 * Crash-safe start: while netlink is blocked the kernel fails new events
 * at once instead of waiting; reset fails the ones still waiting for a
 * daemon that died.  Per device, block_dev holds new commands back while
 * reset_ring throws away the ring's stale state (in-flight commands end
 * with BUSY and the initiator retries).
 */
int tl_cfs_block_netlink(bool on);
int tl_cfs_reset_netlink(void);
int tl_cfs_block_dev(unsigned int hba, const char *dev, bool on);
int tl_cfs_reset_ring(unsigned int hba, const char *dev);

/* The log of what was created. */
struct tl_cfs;

struct tl_cfs *tl_cfs_new(void);
void tl_cfs_free(struct tl_cfs *c);	/* forgets; does not undo */

/*
 * Make core/user_<hba>/<d->name> as the config says and enable it, or
 * adopt it if it is already there and enabled with the same handler (a
 * restart after a crash).  Either way it is logged as belonging to
 * d->name.  On failure err says why; what was made before is still in the
 * log for the caller to undo.
 */
int tl_cfs_create_device(struct tl_cfs *c, unsigned int hba,
			 const struct cfg_device *d, char *err, size_t errlen);

/* Export a device (already created) as the config says. */
int tl_cfs_export_loop(struct tl_cfs *c, unsigned int hba,
		       const struct cfg_device *d, char *err, size_t errlen);
int tl_cfs_export_iscsi(struct tl_cfs *c, unsigned int hba,
			const struct cfg_device *d, char *err, size_t errlen);

/*
 * Undo everything logged (owner NULL) or what belongs to one device.  A
 * shared directory (the HBA, a fabric root) that other devices still use
 * stays logged when one device goes, and is removed with the last.
 */
void tl_cfs_undo(struct tl_cfs *c, const char *owner);

/* "handler/cfgstring" as the kernel's dev_config wants it for d. */
int tl_cfs_dev_config(const struct cfg_device *d, char *buf, size_t size);

#endif /* TL_CONFIGFS_H */
