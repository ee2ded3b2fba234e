-- reloadme: a handler that counts how often its file was loaded, for the
-- sandbox's reload spec.  Each load appends a line to $TL_RELOAD_COUNTER;
-- reads return "load N".  With $TL_RELOAD_BREAK set, the second load fails
-- as a broken edit would.
local C = require('tl.abi').C

local path = assert(os.getenv('TL_RELOAD_COUNTER'), 'TL_RELOAD_COUNTER not set')
local f = assert(io.open(path, 'a'))
f:write('loaded\n')
f:close()
local n = 0
for _ in io.lines(path) do n = n + 1 end
if os.getenv('TL_RELOAD_BREAK') and n == 2 then
  error('broken on purpose at load ' .. n)
end
local block = ('load %d'):format(n)
block = block .. ('\0'):rep(512 - #block)

return {
  read = function(dev, cmd, offset, length, cmd_off)
    for o = 0, length - 1, 512 do
      C.tl_ffi_copy_to(cmd, cmd_off + o, block, math.min(512, length - o))
    end
  end,
  write = function() end,
}
