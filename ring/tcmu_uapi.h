/* SPDX-License-Identifier: MIT */
/*
 * tcmu_uapi.h - include the kernel's <linux/target_core_user.h> next to
 * glibc.  Both <linux/uio.h> and <sys/uio.h> define struct iovec; take
 * glibc's and keep the kernel's out.
 */
#ifndef TL_TCMU_UAPI_H
#define TL_TCMU_UAPI_H

#include <sys/uio.h>
#define __LINUX_UIO_H
#include <linux/types.h>
#include <linux/target_core_user.h>

#endif /* TL_TCMU_UAPI_H */
