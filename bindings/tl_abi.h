/* SPDX-License-Identifier: MIT */
/*
 * tl_abi.h - the one description of what Lua sees of the C core.
 *
 * The C compiler includes this file, and the build embeds the text between
 * the FFI-BEGIN and FFI-END markers verbatim for ffi.cdef, so there is no
 * second copy to drift.  That text must therefore be plain declarations:
 * no macros, no includes, constants as enums.  Bump TL_ABI_VERSION whenever
 * a struct layout or a function signature below changes; Lua refuses to
 * run against a core of another version.
 *
 * Lifetime rule: a struct tl_cmd and everything it points to (CDB, iovecs
 * into the data area, sense buffer) is valid from the moment the core hands
 * it out until tl_ffi_complete() is called on it.  After that the slot is
 * reused for another command; keeping the pointer is a bug.
 */
#ifndef TL_ABI_H
#define TL_ABI_H

#include <stddef.h>
#include <stdint.h>

/* FFI-BEGIN */
enum {
	TL_ABI_VERSION = 1,
	TL_CDB_MAX = 264,	/* variable-length CDBs reach 260 bytes */
	TL_IOV_MAX = 2048,	/* 8 MiB of 4 KiB data blocks per command */
	TL_SENSE_LEN = 96,	/* TCMU_SENSE_BUFFERSIZE */
	TL_NAME_MAX = 128,
	TL_CFGSTR_MAX = 512,
};

/* Command flags decoded by the core (tl_cmd.flags). */
enum {
	TL_CMDF_FUA = 1,		/* FUA bit set in a READ/WRITE CDB */
	TL_CMDF_DPO = 2,		/* DPO bit set */
	TL_CMDF_MALFORMED = 4,		/* ring entry was invalid; already failed */
	TL_CMDF_HAS_LBA = 8,		/* lba and nblocks below are meaningful */
	TL_CMDF_FILE_IO = 16,		/* the fast path's file I/O is in flight */
};

/* SCSI status codes (SAM-5) a handler may return. */
enum {
	TL_STATUS_GOOD = 0x00,
	TL_STATUS_CHECK_CONDITION = 0x02,
	TL_STATUS_CONDITION_MET = 0x04,
	TL_STATUS_BUSY = 0x08,
	TL_STATUS_RESERVATION_CONFLICT = 0x18,
	TL_STATUS_TASK_SET_FULL = 0x28,
	TL_STATUS_TASK_ABORTED = 0x40,
};

/* What a command is doing right now (tl_cmd.state). */
enum {
	TL_CMD_FREE = 0,	/* slot unused */
	TL_CMD_QUEUED = 1,	/* fetched, waiting for Lua or the fast path */
	TL_CMD_ACTIVE = 2,	/* handed to a handler */
	TL_CMD_ABORTED = 3,	/* the kernel aborted it (TMR); complete it anyway */
};

struct tl_iov {
	uint8_t *base;		/* points into the shared data area */
	size_t len;
};

struct tl_cmd {
	uint16_t id;		/* kernel cmd_id, 1..65535 */
	uint16_t cdb_len;
	uint8_t opcode;		/* cdb[0] */
	uint8_t status;		/* SCSI status the handler returns */
	uint8_t state;		/* TL_CMD_* */
	uint8_t sense_len;	/* bytes of sense[] that are valid */
	uint32_t flags;		/* TL_CMDF_* */
	uint32_t iov_cnt;	/* data iovecs (bidi/dif iovecs are not counted) */
	uint32_t nblocks;	/* transfer length in blocks, if HAS_LBA */
	uint32_t read_len;	/* data-in bytes produced; residual = data_len - read_len */
	uint32_t tag;		/* free for the handler (e.g. an index into its own table) */
	uint64_t lba;		/* first LBA, if HAS_LBA */
	uint64_t data_len;	/* sum of the data iovec lengths */
	uint64_t t_start_ns;	/* CLOCK_MONOTONIC when the core fetched it */
	uint8_t sense[TL_SENSE_LEN];
	uint8_t cdb[TL_CDB_MAX];
	struct tl_iov iov[TL_IOV_MAX];
};

/* Read-only facts about a device, kept current by the core. */
struct tl_dev_info {
	uint32_t id;		/* daemon-wide device number */
	uint32_t block_size;	/* logical block size in bytes */
	uint64_t num_blocks;	/* capacity in logical blocks */
	uint64_t size;		/* capacity in bytes */
	uint32_t max_xfer_blocks;	/* largest transfer the kernel will send */
	uint16_t ring_caps;	/* TCMU_MAILBOX_FLAG_CAP_* of the ring */
	uint8_t write_cache;	/* emulate_write_cache as the kernel reports it */
	uint8_t read_only;
	uint64_t generation;	/* bumped by each resize/reconfig */
	char name[TL_NAME_MAX];		/* backstore name, e.g. "disk0" */
	char subtype[TL_NAME_MAX];	/* handler name from the UIO name or config */
	char cfgstring[TL_CFGSTR_MAX];	/* handler config string after the subtype */
};

/* Per command kind: what the control socket's stats report. */
enum {
	TL_KIND_READ = 0,	/* READ(6/10/12/16) */
	TL_KIND_WRITE = 1,	/* WRITE(6/10/12/16) */
	TL_KIND_OTHER = 2,	/* everything else */
	TL_KINDS = 3,
	TL_LAT_BUCKETS = 160,	/* log-linear: 4 buckets per power of two */
};

struct tl_io_stats {
	uint64_t cmds;		/* completed */
	uint64_t bytes;		/* data moved (read_len for data-in) */
	uint64_t errors;	/* completed with a status other than GOOD */
	uint64_t lat[TL_LAT_BUCKETS];	/* latency histogram, see tl_ffi_lat_bucket_ns */
};

/* Counters the core keeps per device (control socket, specs, benchmarks). */
struct tl_dev_stats {
	uint64_t cmds;		/* commands fetched from the ring */
	uint64_t fast;		/* served by the C fast path */
	uint64_t fast_async;	/* of those, waited for through io_uring */
	uint64_t lua_errors;	/* failed because a handler raised */
	uint64_t rejected;	/* malformed ring entries */
	uint64_t aborted;	/* aborted by a TMR before running */
	uint64_t kicks;		/* 4-byte writes to the fd */
	uint64_t batches;	/* dispatch calls into Lua */
	uint64_t qdepth_sum;	/* commands in flight seen at each fetch, summed */
	uint32_t qdepth_max;	/* most commands in flight at once */
	uint32_t reserved;
	struct tl_io_stats kind[TL_KINDS];
};

/* Upper bound in ns of latency bucket b; the p-quantile (0..1) of a histogram. */
uint64_t tl_ffi_lat_bucket_ns(int b);
uint64_t tl_ffi_lat_quantile(const uint64_t *lat, double p);

struct tl_dev;		/* opaque: one TCMU device served by a worker */
struct tl_worker;	/* opaque: one worker thread (loop + lua_State) */

int tl_ffi_abi_version(void);

/* The C compiler's layout of every struct above, for the ABI spec. */
struct tl_layout_entry {
	const char *type;	/* struct name */
	const char *field;	/* "" for the struct itself */
	size_t offset;
	size_t size;
};
const struct tl_layout_entry *tl_ffi_abi_layout(void);
const char *tl_ffi_strerror(int err);

/*
 * Command flow.  Inside a dispatch call, tl_ffi_next() hands out the queued
 * commands of the device one by one (NULL when the batch is drained).  A
 * handler either completes a command at once or keeps the pointer and
 * completes it later (from a timer or fd event).  Completions are published
 * to the kernel in one go when the worker's batch ends.
 */
struct tl_cmd *tl_ffi_next(struct tl_dev *dev);
int tl_ffi_complete(struct tl_dev *dev, struct tl_cmd *cmd);
/* Lua now runs for dev (timer and fd callbacks): whom the watchdog and
 * the memory limit blame. */
void tl_ffi_lua_for(struct tl_worker *w, struct tl_dev *dev);
struct tl_dev_info *tl_ffi_dev_info(struct tl_dev *dev);
const struct tl_dev_stats *tl_ffi_dev_stats(struct tl_dev *dev);

/*
 * Data movement between the command's iovecs and memory or a file.
 * off is a byte offset into the command's data; the return value is the
 * number of bytes moved (short when the iovecs end first), or a negative
 * errno for the file variants.
 */
size_t tl_ffi_copy_to(struct tl_cmd *cmd, size_t off, const void *src, size_t len);
size_t tl_ffi_copy_from(struct tl_cmd *cmd, size_t off, void *dst, size_t len);
size_t tl_ffi_fill(struct tl_cmd *cmd, size_t off, int byte, size_t len);
int tl_ffi_memcmp(struct tl_cmd *cmd, size_t off, const void *buf, size_t len, size_t *mismatch);
int64_t tl_ffi_pread(struct tl_cmd *cmd, size_t off, size_t len, int fd, uint64_t file_off);
int64_t tl_ffi_pwrite(struct tl_cmd *cmd, size_t off, size_t len, int fd, uint64_t file_off);

/*
 * The C fast path: READ/WRITE(6/10/12/16) on this device are served in C
 * on fd, straight between the file and the data area (asynchronously with
 * io_uring where the kernel has it), and with TL_FAST_FLUSH SYNCHRONIZE
 * CACHE(10/16) is an fdatasync of fd,
 * unless the command needs the library (protection bits, out of range,
 * errors) or Lua holds the fast path (a unit attention to report, the unit
 * stopped...).  Everything else still goes to Lua.
 */
enum {
	TL_FAST_READ = 1,	/* serve reads */
	TL_FAST_WRITE = 2,	/* serve writes */
	TL_FAST_FLUSH = 4,	/* serve SYNCHRONIZE CACHE with fdatasync(fd) */
};
int tl_ffi_fast_enable(struct tl_dev *dev, int fd, uint32_t flags);
void tl_ffi_fast_disable(struct tl_dev *dev);
/* hold > 0: send every command to Lua until released with hold = 0. */
void tl_ffi_fast_hold(struct tl_dev *dev, int hold);

uint64_t tl_ffi_now_ns(void);
void tl_ffi_log(int level, const char *msg);
int tl_ffi_log_level(void);

/*
 * The worker's event loop, for handlers that complete commands later.
 * Each returns an id >= 0 (or a negative errno); when the timer or fd
 * fires, the runtime's event function is called with that id.
 */
enum {
	TL_EV_TIMER = 1,
	TL_EV_IO = 2,
	TL_IO_READ = 1,
	TL_IO_WRITE = 2,
};
int tl_ffi_timer_start(struct tl_worker *w, double after, double repeat);
void tl_ffi_timer_stop(struct tl_worker *w, int id);
int tl_ffi_io_start(struct tl_worker *w, int fd, int events);
void tl_ffi_io_stop(struct tl_worker *w, int id);

/*
 * A device served on the built-in kernel simulator by a worker running in
 * the calling thread: what specs, the sandbox and benchmarks drive.
 */
struct tl_sim_result {
	uint8_t done;
	uint8_t status;
	uint8_t read_len_valid;
	uint8_t sense[TL_SENSE_LEN];
	uint32_t read_len;	/* bytes the kernel copies back */
	uint32_t residual;	/* data length minus read_len when valid */
	uint32_t data_len;
	uint8_t *data;		/* data-in bytes, data_len long */
};

struct tl_simdev_opts {
	const char *name;		/* backstore name */
	const char *handler;		/* handler module name */
	const char *config;		/* Lua table constructor with the options */
	const char *handler_dirs;	/* ';'-separated, NULL for lua/handlers */
	uint64_t size;			/* bytes */
	uint32_t block_size;
	uint32_t max_xfer_blocks;
	uint16_t caps;			/* ring capabilities offered */
	uint32_t ring_bytes;
	uint32_t data_bytes;
	uint8_t write_cache;
	uint8_t hot_reload;		/* reload the handler when its file changes */
	uint8_t no_uring;		/* fast path synchronous, as without io_uring */
	uint8_t threaded;		/* a worker thread of its own, as in the daemon */
	uint32_t lua_timeout_ms;	/* watchdog; 0 = off */
	uint64_t lua_memory_limit;	/* bytes; 0 = none */
	struct tl_simdev *share;	/* serve on this device's worker instead */
};

struct tl_simdev;
struct tl_simdev *tl_ffi_simdev_new(const struct tl_simdev_opts *o, char *err, size_t errlen);
void tl_ffi_simdev_free(struct tl_simdev *sd);
int tl_ffi_simdev_prepare(struct tl_simdev *sd, const uint8_t *cdb, unsigned int cdb_len, int dir, const void *out, uint32_t len);
void tl_ffi_simdev_publish(struct tl_simdev *sd);
int tl_ffi_simdev_tmr(struct tl_simdev *sd, uint8_t type, const uint16_t *ids, uint32_t cnt);
int tl_ffi_simdev_run(struct tl_simdev *sd, int wait_ms);
const struct tl_sim_result *tl_ffi_simdev_result(struct tl_simdev *sd, uint16_t id);
void tl_ffi_simdev_release(struct tl_simdev *sd, uint16_t id);
int tl_ffi_simdev_resize(struct tl_simdev *sd, uint64_t size);
uint32_t tl_ffi_simdev_inflight(struct tl_simdev *sd);
/* 1 when the fast path's file I/O is asynchronous (io_uring), else 0. */
int tl_ffi_simdev_async(struct tl_simdev *sd);
const struct tl_dev_stats *tl_ffi_simdev_stats(struct tl_simdev *sd);
/* Run Lua in the device's worker state (specs, debugging). */
int tl_ffi_simdev_eval(struct tl_simdev *sd, const char *code, char *out, size_t outlen);
int tl_ffi_simdev_reload(struct tl_simdev *sd, int force, char *err, size_t errlen);
/* What the watchdog and memory limit reported for the device's worker
 * ("" when nothing), and how often it was replaced after getting stuck. */
const char *tl_ffi_simdev_report(struct tl_simdev *sd);
unsigned int tl_ffi_simdev_rescues(struct tl_simdev *sd);

/*
 * The daemon's YAML configuration (host/config.c), for Lua tools such as
 * the sandbox, so there is one parser and one set of error messages.
 */
struct tl_config;
struct tl_cfg_device_view {
	const char *name;
	const char *handler;
	const char *options;	/* Lua table constructor */
	uint64_t size;
	uint32_t block_size;
	uint32_t hw_max_sectors;
	uint8_t read_only;
	uint8_t write_cache;
	int line;
};
struct tl_config *tl_ffi_config_load(const char *path, char *err, size_t errlen);
struct tl_config *tl_ffi_config_parse(const char *name, const char *text, size_t len, char *err, size_t errlen);
void tl_ffi_config_free(struct tl_config *c);
unsigned int tl_ffi_config_ndevices(const struct tl_config *c);
int tl_ffi_config_device(const struct tl_config *c, unsigned int i, struct tl_cfg_device_view *out);
unsigned int tl_ffi_config_ndirs(const struct tl_config *c);
const char *tl_ffi_config_dir(const struct tl_config *c, unsigned int i);
int tl_ffi_parse_size(const char *s, uint64_t *out);
/* FFI-END */

#endif /* TL_ABI_H */
