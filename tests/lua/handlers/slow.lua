-- Completes every READ later, from a timer on the worker's loop.
local C = require('tl.abi').C
local scsi = require 'scsi'
return {
  schema = { delay = { type = 'number', default = 0.01 } },
  open = function(dev, conf) return { delay = conf.delay } end,
  read = function(dev, cmd, off, len, at)
    dev:after(dev.state.delay, function(d)
      C.tl_ffi_fill(cmd, at, 0x33, len)
      d:done(cmd)
    end, cmd)
    return scsi.PENDING
  end,
  write = function() end,
}
