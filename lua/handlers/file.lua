-- file: a disk image in a regular file (raw format).
--
-- Data moves between the file and the command's buffers with preadv and
-- pwritev straight on the ring's data area: no copy in the daemon.  UNMAP
-- punches holes, so a sparse image stays sparse.  FLUSH is fdatasync.
local C = require('tl.abi').C
local sys = require 'tl.sys'
local scsi = require 'scsi'
local ffi = require 'ffi'

local READ_FAILED = scsi.sense.MEDIUM_ERROR    -- UNRECOVERED READ ERROR
local WRITE_FAILED = scsi.sense.WRITE_ERROR
local ENOSPC, EDQUOT = -28, -122

-- The sense for a failed system call (err is -errno).  A sparse image on a
-- full file system is a thin-provisioned LU out of space: SBC says DATA
-- PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT, which Linux turns into
-- ENOSPC for the writer instead of an I/O error.  Anything else is a
-- medium error in the direction of the transfer.
local function fail_for(err, sense)
  if err == ENOSPC or err == EDQUOT then return scsi.sense.NO_SPACE end
  return sense
end

return {
  description = 'raw disk image in a file',
  cfgstring_key = 'path',   -- "file//var/lib/disk.img" from targetcli
  schema = {
    path = { type = 'string', required = true, doc = 'image file' },
    create = { type = 'boolean', default = false,
      doc = 'create the file (sparse) if it does not exist' },
    direct = { type = 'boolean', default = false, doc = 'open with O_DIRECT' },
    fast = { type = 'boolean', default = true,
      doc = 'serve READ/WRITE in C (the fast path); false keeps them in Lua' },
  },

  open = function(dev, conf)
    local flags = sys.O_RDWR + sys.O_CLOEXEC
    if conf.create then flags = flags + sys.O_CREAT end
    if conf.direct then flags = flags + sys.O_DIRECT end
    local fd = C.open(conf.path, flags, ffi.cast('int', 420))
    if fd < 0 then
      return nil, ('cannot open %s: %s'):format(conf.path, sys.errstr())
    end
    local size = C.lseek(fd, 0, 2)
    if size < dev.info.size then
      if not conf.create then
        C.close(fd)
        return nil, ('%s is %d bytes, smaller than the device (%d)')
          :format(conf.path, tonumber(size), tonumber(dev.info.size))
      end
      if C.ftruncate(fd, dev.info.size) ~= 0 then
        local err = sys.errstr()
        C.close(fd)
        return nil, ('cannot size %s: %s'):format(conf.path, err)
      end
    end
    if conf.fast then C.tl_ffi_fast_enable(dev.ptr, fd,
      C.TL_FAST_READ + C.TL_FAST_WRITE + C.TL_FAST_FLUSH) end
    return { fd = fd, path = conf.path }
  end,

  close = function(dev)
    C.tl_ffi_fast_disable(dev.ptr)
    C.close(dev.state.fd)
  end,

  read = function(dev, cmd, offset, length, cmd_off)
    local got = C.tl_ffi_pread(cmd, cmd_off, length, dev.state.fd, offset)
    if got < 0 then return nil, fail_for(tonumber(got), READ_FAILED) end
    if got < length then  -- past the end of a shrunk file: zeros
      C.tl_ffi_fill(cmd, cmd_off + got, 0, length - got)
    end
  end,

  write = function(dev, cmd, offset, length, cmd_off)
    local put = C.tl_ffi_pwrite(cmd, cmd_off, length, dev.state.fd, offset)
    if put < 0 then return nil, fail_for(tonumber(put), WRITE_FAILED) end
  end,

  flush = function(dev)
    if C.fdatasync(dev.state.fd) ~= 0 then
      return nil, fail_for(-ffi.errno(), WRITE_FAILED)
    end
  end,

  unmap = function(dev, cmd, offset, length)
    local mode = sys.FALLOC_FL_PUNCH_HOLE + sys.FALLOC_FL_KEEP_SIZE
    if C.fallocate(dev.state.fd, mode, offset, length) ~= 0 then
      -- No hole punching here: fail rather than pretend the blocks are gone.
      return nil, scsi.sense.MEDIUM_ERROR
    end
  end,
}
