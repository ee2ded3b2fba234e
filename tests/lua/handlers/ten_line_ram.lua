-- The ten-line RAM disk of the README: the library does all the SCSI.
local C, sys = require('tl.abi').C, require 'tl.sys'
return {
  open = function(dev) return { mem = sys.lazy_alloc(dev.info.size) } end,
  read = function(dev, cmd, off, len, at)
    C.tl_ffi_copy_to(cmd, at, dev.state.mem + off, len) end,
  write = function(dev, cmd, off, len, at)
    C.tl_ffi_copy_from(cmd, at, dev.state.mem + off, len) end,
}
