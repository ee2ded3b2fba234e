/* SPDX-License-Identifier: MIT */
/*
 * netlink.h - the kernel's "TCM-USER" generic netlink family.
 *
 * The kernel multicasts ADDED_DEVICE, REMOVED_DEVICE and RECONFIG_DEVICE
 * on the "config" group.  Once we have said SET_FEATURES with
 * SUPP_KERN_CMD_REPLY=1, the configfs write that caused an event sleeps
 * uninterruptibly until the matching *_DONE arrives, so every event must
 * be answered, with an error status when we cannot serve the device.
 * The kernel matches a reply on DEVICE_ID (the se_device index) and the
 * command it is waiting for; CMD_STATUS is 0 or a negative errno, which
 * becomes the result of that configfs write.
 */
#ifndef TL_NETLINK_H
#define TL_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tl_nl;

struct tl_nl_event {
	int cmd;		/* TCMU_CMD_ADDED_DEVICE, _REMOVED_, _RECONFIG_ */
	const char *device;	/* the UIO name, "tcm-user/1/disk0/ram/" */
	uint32_t minor;		/* N of /dev/uioN */
	uint32_t dev_id;	/* what a reply must carry */
	bool has_dev_id;	/* no id: the kernel does not wait */
	/* RECONFIG_DEVICE carries one of these: */
	const char *dev_cfg;	/* new dev_config, or NULL */
	bool has_size;
	uint64_t size;		/* new dev_size in bytes */
	bool has_write_cache;
	uint8_t write_cache;
};

/* Called from tl_nl_dispatch() for each event; must call tl_nl_reply(). */
typedef void (*tl_nl_handler)(void *arg, const struct tl_nl_event *ev);

/*
 * Join the family's multicast group.  Fails with a readable message when
 * the family is missing (target_core_user not loaded) or we lack
 * CAP_NET_ADMIN.
 */
struct tl_nl *tl_nl_open(tl_nl_handler fn, void *arg, char *err,
			 size_t errlen);
void tl_nl_close(struct tl_nl *nl);

/* The fd to watch for reading; then call tl_nl_dispatch(). */
int tl_nl_fd(const struct tl_nl *nl);
void tl_nl_dispatch(struct tl_nl *nl);

/* Tell the kernel we answer its events (or that we stop doing so). */
int tl_nl_set_features(struct tl_nl *nl, bool kern_cmd_reply);

/*
 * Answer event cmd (the *_DEVICE command, not *_DONE) for the kernel's
 * device dev_id with status 0 or -errno.  Returns 0, or -errno when the
 * kernel refused the reply (e.g. -ENODEV: nobody was waiting for it).
 */
int tl_nl_reply(struct tl_nl *nl, int cmd, uint32_t dev_id, int status);

/*
 * Read one TCM-USER message (len bytes at buf, nlmsghdr first) into ev;
 * its strings point into buf.  Returns 0 for an event to serve, -ENOMSG
 * for a message to drop (not an event, or malformed: logged), -EINVAL for
 * an event that names no device: if ev->has_dev_id the kernel waits for a
 * reply, which must be an error.  Never reads outside buf.
 */
int tl_nl_parse(const void *buf, size_t len, struct tl_nl_event *ev);

/* "ADDED_DEVICE" and so on, for logs. */
const char *tl_nl_cmd_name(int cmd);

#endif /* TL_NETLINK_H */
