-- null: reads return zeros, writes are accepted and forgotten.
-- Useful to measure the cost of the path without any storage behind it.
local C = require('tl.abi').C

return {
  description = 'discards writes, reads zeros',
  schema = {},

  read = function(dev, cmd, offset, length, cmd_off)
    C.tl_ffi_fill(cmd, cmd_off, 0, length)
  end,

  write = function() end,
}
