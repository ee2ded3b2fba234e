-- minimal: a memory disk that only knows how to read and write.
--
-- No flush, no unmap, no resize: everything else a disk answers (INQUIRY,
-- READ CAPACITY, MODE SENSE, UNMAP and WRITE SAME as zeros written through
-- write, COMPARE AND WRITE, ...) comes from lua/lib/scsi.  Linux formats,
-- mounts and trims it (tests/vm/e2e_scsi.sh).
local C, sys = require('tl.abi').C, require('tl.sys')

return {
  description = 'memory disk with only read and write',
  open = function(dev) return { mem = assert(sys.lazy_alloc(dev.info.size)) } end,
  close = function(dev) sys.free(dev.state.mem, dev.info.size) end,
  read = function(dev, cmd, off, len, at) C.tl_ffi_copy_to(cmd, at, dev.state.mem + off, len) end,
  write = function(dev, cmd, off, len, at) C.tl_ffi_copy_from(cmd, at, dev.state.mem + off, len) end,
}
