-- A handler that raises on every read and write (and on LBA 7 only, if
-- asked), to show a Lua error fails only the affected command.
local C = require('tl.abi').C
local only7
return {
  schema = { only_lba7 = { type = 'boolean', default = false } },
  open = function(dev, conf) only7 = conf.only_lba7; return {} end,
  read = function(dev, cmd, off, len, at)
    if not only7 or off == 7 * 512 then error('read exploded') end
    C.tl_ffi_fill(cmd, at, 0x5a, len)
  end,
  write = function() error('write exploded') end,
}
