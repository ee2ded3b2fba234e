// SPDX-License-Identifier: MIT
/*
 * netlink.c - listen to TCM-USER events and answer them, with libnl-3.
 *
 * Two sockets: one joined to the multicast group, non-blocking, read from
 * the main loop; one for what we send, synchronous with acks.  Sending on
 * the listening socket would have to wait for an ack while events arrive
 * on the same socket, and libnl would hand those to our event callback in
 * the middle of a reply.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#include "log.h"
#include "netlink.h"
#include "tcmu_uapi.h"

#define TCMU_FAMILY "TCM-USER"
#define TCMU_GROUP "config"
#define TCMU_FAMILY_VERSION 2
#define RX_BUFFER (1024 * 1024)	/* a burst of events must not overflow */

struct tl_nl {
	struct nl_sock *rx;
	struct nl_sock *tx;
	int family;
	tl_nl_handler fn;
	void *arg;
};

static struct nla_policy tcmu_policy[TCMU_ATTR_MAX + 1] = {
	[TCMU_ATTR_DEVICE] = { .type = NLA_STRING },
	[TCMU_ATTR_MINOR] = { .type = NLA_U32 },
	[TCMU_ATTR_DEV_CFG] = { .type = NLA_STRING },
	[TCMU_ATTR_DEV_SIZE] = { .type = NLA_U64 },
	[TCMU_ATTR_WRITECACHE] = { .type = NLA_U8 },
	[TCMU_ATTR_CMD_STATUS] = { .type = NLA_S32 },
	[TCMU_ATTR_DEVICE_ID] = { .type = NLA_U32 },
	[TCMU_ATTR_SUPP_KERN_CMD_REPLY] = { .type = NLA_U8 },
};

const char *tl_nl_cmd_name(int cmd)
{
	switch (cmd) {
	case TCMU_CMD_ADDED_DEVICE:
		return "ADDED_DEVICE";
	case TCMU_CMD_REMOVED_DEVICE:
		return "REMOVED_DEVICE";
	case TCMU_CMD_RECONFIG_DEVICE:
		return "RECONFIG_DEVICE";
	case TCMU_CMD_ADDED_DEVICE_DONE:
		return "ADDED_DEVICE_DONE";
	case TCMU_CMD_REMOVED_DEVICE_DONE:
		return "REMOVED_DEVICE_DONE";
	case TCMU_CMD_RECONFIG_DEVICE_DONE:
		return "RECONFIG_DEVICE_DONE";
	case TCMU_CMD_SET_FEATURES:
		return "SET_FEATURES";
	default:
		return "unknown";
	}
}

/* libnl has its own error codes; give callers errno values. */
static int nlerr_to_errno(int err)
{
	switch (-err) {
	case NLE_OBJ_NOTFOUND:
		return -ENODEV;
	case NLE_PERM:
		return -EPERM;
	case NLE_INVAL:
		return -EINVAL;
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_BUSY:
		return -EBUSY;
	default:
		return -EIO;
	}
}

int tl_nl_parse(const void *buf, size_t len, struct tl_nl_event *ev)
{
	struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
	struct nlattr *tb[TCMU_ATTR_MAX + 1];
	struct genlmsghdr *gh;
	int rc;

	memset(ev, 0, sizeof(*ev));
	/* libnl trusts nlmsg_len: it must lie inside what arrived. */
	if (len < NLMSG_HDRLEN || nlh->nlmsg_len < NLMSG_HDRLEN ||
	    nlh->nlmsg_len > len) {
		tl_err("netlink: truncated TCM-USER message");
		return -ENOMSG;
	}
	rc = genlmsg_parse(nlh, 0, tb, TCMU_ATTR_MAX, tcmu_policy);
	if (rc < 0) {
		tl_err("netlink: malformed TCM-USER message: %s",
		       nl_geterror(rc));
		return -ENOMSG;
	}
	gh = nlmsg_data(nlh);
	ev->cmd = gh->cmd;
	if (ev->cmd != TCMU_CMD_ADDED_DEVICE &&
	    ev->cmd != TCMU_CMD_REMOVED_DEVICE &&
	    ev->cmd != TCMU_CMD_RECONFIG_DEVICE) {
		tl_dbg("netlink: ignoring command %d", ev->cmd);
		return -ENOMSG;
	}
	if (tb[TCMU_ATTR_DEVICE_ID]) {
		ev->has_dev_id = true;
		ev->dev_id = nla_get_u32(tb[TCMU_ATTR_DEVICE_ID]);
	}
	if (!tb[TCMU_ATTR_DEVICE] || !tb[TCMU_ATTR_MINOR]) {
		tl_err("netlink: %s without device name or minor",
		       tl_nl_cmd_name(ev->cmd));
		return -EINVAL;
	}
	ev->device = nla_get_string(tb[TCMU_ATTR_DEVICE]);
	ev->minor = nla_get_u32(tb[TCMU_ATTR_MINOR]);
	if (tb[TCMU_ATTR_DEV_CFG])
		ev->dev_cfg = nla_get_string(tb[TCMU_ATTR_DEV_CFG]);
	if (tb[TCMU_ATTR_DEV_SIZE]) {
		ev->has_size = true;
		ev->size = nla_get_u64(tb[TCMU_ATTR_DEV_SIZE]);
	}
	if (tb[TCMU_ATTR_WRITECACHE]) {
		ev->has_write_cache = true;
		ev->write_cache = nla_get_u8(tb[TCMU_ATTR_WRITECACHE]);
	}
	return 0;
}

static int rx_valid(struct nl_msg *msg, void *arg)
{
	struct tl_nl *nl = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	struct tl_nl_event ev;
	int rc;

	rc = tl_nl_parse(nlh, nlh->nlmsg_len, &ev);
	if (rc == -EINVAL && ev.has_dev_id) {
		/* We cannot name the device, but the kernel may still wait. */
		tl_nl_reply(nl, ev.cmd, ev.dev_id, -EINVAL);
	}
	if (rc)
		return NL_SKIP;
	tl_dbg("netlink: %s %s (uio%u, id %u)", tl_nl_cmd_name(ev.cmd),
	       ev.device, ev.minor, ev.dev_id);
	nl->fn(nl->arg, &ev);
	return NL_OK;
}

struct tl_nl *tl_nl_open(tl_nl_handler fn, void *arg, char *err,
			 size_t errlen)
{
	struct tl_nl *nl = calloc(1, sizeof(*nl));
	int grp, rc;

	if (!nl) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	nl->fn = fn;
	nl->arg = arg;
	nl->rx = nl_socket_alloc();
	nl->tx = nl_socket_alloc();
	if (!nl->rx || !nl->tx) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rc = genl_connect(nl->tx);
	if (rc < 0) {
		snprintf(err, errlen, "generic netlink: %s", nl_geterror(rc));
		goto fail;
	}
	nl->family = genl_ctrl_resolve(nl->tx, TCMU_FAMILY);
	if (nl->family < 0) {
		snprintf(err, errlen,
			 "generic netlink family %s not found (is the target_core_user module loaded?)",
			 TCMU_FAMILY);
		goto fail;
	}
	grp = genl_ctrl_resolve_grp(nl->tx, TCMU_FAMILY, TCMU_GROUP);
	if (grp < 0) {
		snprintf(err, errlen, "netlink group %s/%s: %s", TCMU_FAMILY,
			 TCMU_GROUP, nl_geterror(grp));
		goto fail;
	}

	/* Events carry no sequence numbers we asked for. */
	nl_socket_disable_seq_check(nl->rx);
	nl_socket_modify_cb(nl->rx, NL_CB_VALID, NL_CB_CUSTOM, rx_valid, nl);
	rc = genl_connect(nl->rx);
	if (rc >= 0)
		rc = nl_socket_add_membership(nl->rx, grp);
	if (rc < 0) {
		snprintf(err, errlen, "joining %s/%s: %s", TCMU_FAMILY,
			 TCMU_GROUP, nl_geterror(rc));
		goto fail;
	}
	nl_socket_set_buffer_size(nl->rx, RX_BUFFER, 0);
	nl_socket_set_nonblocking(nl->rx);
	return nl;
fail:
	tl_nl_close(nl);
	return NULL;
}

void tl_nl_close(struct tl_nl *nl)
{
	if (!nl)
		return;
	if (nl->rx)
		nl_socket_free(nl->rx);
	if (nl->tx)
		nl_socket_free(nl->tx);
	free(nl);
}

int tl_nl_fd(const struct tl_nl *nl)
{
	return nl_socket_get_fd(nl->rx);
}

void tl_nl_dispatch(struct tl_nl *nl)
{
	int rc;

	/* Drain everything queued: the fd is level-triggered anyway. */
	for (;;) {
		rc = nl_recvmsgs_default(nl->rx);
		if (rc == -NLE_AGAIN)
			return;
		if (rc < 0) {
			/*
			 * ENOBUFS shows up as NLE_NOMEM: events were lost.
			 * A lost ADDED_DEVICE leaves a configfs write
			 * waiting; reset_netlink (or a daemon restart)
			 * releases it.
			 */
			tl_err("netlink: receiving events: %s%s",
			       nl_geterror(rc),
			       rc == -NLE_NOMEM ? " (events were lost)" : "");
			return;
		}
	}
}

static struct nl_msg *new_msg(struct tl_nl *nl, int cmd)
{
	struct nl_msg *msg = nlmsg_alloc();

	if (!msg)
		return NULL;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, nl->family, 0, 0,
			 (uint8_t)cmd, TCMU_FAMILY_VERSION)) {
		nlmsg_free(msg);
		return NULL;
	}
	return msg;
}

int tl_nl_set_features(struct tl_nl *nl, bool kern_cmd_reply)
{
	struct nl_msg *msg = new_msg(nl, TCMU_CMD_SET_FEATURES);
	int rc;

	if (!msg)
		return -ENOMEM;
	if (nla_put_u8(msg, TCMU_ATTR_SUPP_KERN_CMD_REPLY, kern_cmd_reply)) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	rc = nl_send_sync(nl->tx, msg);
	if (rc < 0) {
		tl_err("netlink: SET_FEATURES: %s", nl_geterror(rc));
		return nlerr_to_errno(rc);
	}
	return 0;
}

int tl_nl_reply(struct tl_nl *nl, int cmd, uint32_t dev_id, int status)
{
	struct nl_msg *msg;
	int done, rc;

	switch (cmd) {
	case TCMU_CMD_ADDED_DEVICE:
		done = TCMU_CMD_ADDED_DEVICE_DONE;
		break;
	case TCMU_CMD_REMOVED_DEVICE:
		done = TCMU_CMD_REMOVED_DEVICE_DONE;
		break;
	case TCMU_CMD_RECONFIG_DEVICE:
		done = TCMU_CMD_RECONFIG_DEVICE_DONE;
		break;
	default:
		return -EINVAL;
	}
	msg = new_msg(nl, done);
	if (!msg)
		return -ENOMEM;
	if (nla_put_s32(msg, TCMU_ATTR_CMD_STATUS, status) ||
	    nla_put_u32(msg, TCMU_ATTR_DEVICE_ID, dev_id)) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	rc = nl_send_sync(nl->tx, msg);
	if (rc < 0) {
		tl_dbg("netlink: %s for device id %u: %s",
		       tl_nl_cmd_name(done), dev_id, nl_geterror(rc));
		return nlerr_to_errno(rc);
	}
	tl_dbg("netlink: %s for device id %u status %d", tl_nl_cmd_name(done),
	       dev_id, status);
	return 0;
}
