-- fuzzram: the ram handler, checking what the SCSI library hands it.
--
-- fuzz_cdb serves one of its devices with this.  Every callback first
-- checks the library's promises (the byte range lies on the disk and on
-- block boundaries; the command's buffer holds the bytes moved), then
-- calls the real lua/handlers/ram.lua.  A broken promise raises, which the
-- daemon logs as a handler error and the fuzzer reports: otherwise a range
-- bug would read or write the RAM disk's anonymous mapping out of bounds,
-- which no sanitizer watches.
local ram = dofile(TL_LUA_DIR .. '/handlers/ram.lua')

local h = {}
for k, v in pairs(ram) do h[k] = v end
h.description = 'ram, with the SCSI library\'s offsets checked (fuzzing)'

local function check(dev, cmd, what, offset, length, cmd_off)
  local size, bs = dev.state.size, dev.info.block_size
  offset, length = tonumber(offset), tonumber(length)
  if offset < 0 or length < 0 or offset + length > size then
    error(('%s: bytes %d+%d outside the %d-byte disk'):format(
      what, offset, length, size), 2)
  end
  if offset % bs ~= 0 or length % bs ~= 0 then
    error(('%s: bytes %d+%d not on %d-byte blocks'):format(
      what, offset, length, bs), 2)
  end
  if cmd_off ~= nil then
    cmd_off = tonumber(cmd_off)
    if cmd_off < 0 or cmd_off + length > tonumber(cmd.data_len) then
      error(('%s: buffer bytes %d+%d outside the %d-byte buffer'):format(
        what, cmd_off, length, tonumber(cmd.data_len)), 2)
    end
  end
end

h.read = function(dev, cmd, offset, length, cmd_off)
  check(dev, cmd, 'read', offset, length, cmd_off)
  return ram.read(dev, cmd, offset, length, cmd_off)
end

h.write = function(dev, cmd, offset, length, cmd_off)
  check(dev, cmd, 'write', offset, length, cmd_off)
  return ram.write(dev, cmd, offset, length, cmd_off)
end

h.unmap = function(dev, cmd, offset, length)
  check(dev, cmd, 'unmap', offset, length)
  return ram.unmap(dev, cmd, offset, length)
end

return h
