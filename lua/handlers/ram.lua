-- ram: a disk in memory.
--
-- Pages are allocated by the kernel on first write (anonymous mmap), so a
-- large RAM disk costs only what has been written; UNMAP gives pages back.
-- Everything SCSI comes from lua/lib/scsi: this handler only moves bytes.
local C = require('tl.abi').C
local sys = require 'tl.sys'

return {
  description = 'memory-backed disk, allocated lazily',
  schema = {},
  unmap_zeroes = true,   -- discarded pages read back as zeros (LBPRZ)

  open = function(dev)
    local mem, err = sys.lazy_alloc(dev.info.size)
    if not mem then return nil, 'cannot allocate: ' .. err end
    return { mem = mem, size = dev.info.size }
  end,

  close = function(dev)
    sys.free(dev.state.mem, dev.state.size)
  end,

  read = function(dev, cmd, offset, length, cmd_off)
    C.tl_ffi_copy_to(cmd, cmd_off, dev.state.mem + offset, length)
  end,

  write = function(dev, cmd, offset, length, cmd_off)
    C.tl_ffi_copy_from(cmd, cmd_off, dev.state.mem + offset, length)
  end,

  resize = function(dev, size)
    local mem, err = sys.lazy_resize(dev.state.mem, dev.state.size, size)
    if not mem then error('cannot resize: ' .. err) end
    dev.state.mem, dev.state.size = mem, size
  end,

  unmap = function(dev, cmd, offset, length)
    sys.discard(dev.state.mem, offset, length)
  end,
}
