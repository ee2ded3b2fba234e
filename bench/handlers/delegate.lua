-- delegate: a handler that only passes every call on to another handler
-- (ram by default), to measure what one extra Lua layer costs.
local handlers = require 'tl.handlers'
local inner = assert(handlers.load('ram'))
local iread, iwrite = inner.read, inner.write
return {
  open = inner.open,
  close = inner.close,
  read = function(dev, cmd, off, len, at) return iread(dev, cmd, off, len, at) end,
  write = function(dev, cmd, off, len, at) return iwrite(dev, cmd, off, len, at) end,
}
