/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - `tcmu-lua daemon`: serve the kernel's TCMU devices.
 *
 *   tcmu-lua daemon [-c CONFIG.yaml] [--check] [--no-kernel]
 *
 * The main thread runs a libev loop with netlink, signals and a device
 * registry; workers (host/worker.h) serve the rings.  Devices the config
 * file lists are created in configfs at start and removed at SIGTERM or
 * SIGINT; devices made by other tools are served as they come and go.
 */
#ifndef TL_DAEMON_H
#define TL_DAEMON_H

/* argv[0] is the subcommand's name.  Returns the process exit status. */
int tl_daemon_main(int argc, char **argv);

#endif /* TL_DAEMON_H */
