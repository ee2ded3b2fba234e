-- fuzzram: the ram handler, checking what the SCSI library hands it.
--
-- fuzz_cdb serves two of its devices with this.  Every callback first
-- checks the library's promises (the byte range lies on the disk and on
-- block boundaries; the command's buffer holds the bytes moved), then
-- calls the real lua/handlers/ram.lua.  A broken promise raises, which the
-- daemon logs as a handler error and the fuzzer reports: otherwise a range
-- bug would read or write the RAM disk's anonymous mapping out of bounds,
-- which no sanitizer watches.
--
-- Options:
--   async = true     answer most operations PENDING and finish them from a
--                    timer, in a scrambled order, the way a handler doing
--                    real asynchronous I/O would; this is what drives the
--                    library's continuations, its exclusive lock and the
--                    COMPARE AND WRITE wait for writes in flight, which a
--                    synchronous handler never reaches.
--   fail_every = N   fail about one operation in N with MEDIUM ERROR (reads)
--                    or WRITE ERROR (writes, unmaps, flushes); one failure in
--                    four is BUSY or TASK SET FULL instead.
-- The order and the failures depend only on the operations themselves, so
-- an input replays the same way every time.
local scsi = require 'scsi'
local ram = dofile(TL_LUA_DIR .. '/handlers/ram.lua')

local PENDING = scsi.PENDING
local READ_ERROR, WRITE_ERROR = scsi.sense.MEDIUM_ERROR, scsi.sense.WRITE_ERROR
local BUSY, TASK_SET_FULL = scsi.sense.BUSY, scsi.sense.TASK_SET_FULL
local floor = math.floor

local h = {}
for k, v in pairs(ram) do h[k] = v end
h.description = 'ram, with the SCSI library\'s offsets checked (fuzzing)'
h.schema = {
  async = { type = 'boolean', default = false,
            doc = 'finish operations later, in a scrambled order' },
  fail_every = { type = 'integer', default = 0,
                 doc = 'fail about one operation in this many (0: never)' },
}

local function check(dev, cmd, what, offset, length, cmd_off)
  local size, bs = dev.state.size, dev.info.block_size
  offset, length = tonumber(offset), tonumber(length)
  if offset < 0 or length < 0 or offset + length > size then
    error(('%s: bytes %d+%d outside the %d-byte disk'):format(
      what, offset, length, size), 3)
  end
  if offset % bs ~= 0 or length % bs ~= 0 then
    error(('%s: bytes %d+%d not on %d-byte blocks'):format(
      what, offset, length, bs), 3)
  end
  if cmd_off ~= nil then
    cmd_off = tonumber(cmd_off)
    if cmd_off < 0 or cmd_off + length > tonumber(cmd.data_len) then
      error(('%s: buffer bytes %d+%d outside the %d-byte buffer'):format(
        what, cmd_off, length, tonumber(cmd.data_len)), 3)
    end
  end
end

h.open = function(dev, conf)
  local st, err = ram.open(dev, conf)
  if not st then return nil, err end
  st.async, st.fail_every = conf.async, conf.fail_every
  st.queue, st.armed = {}, false
  return st
end

-- A number from the operation alone (cmd_ids repeat from 1 each input).
local function key(cmd, offset, length, salt)
  local k = (tonumber(cmd.id) * 40503 + floor(tonumber(offset) / 512) * 7919
    + floor(tonumber(length) / 512) * 31 + salt) % 1048573
  return (k * 2654435761) % 4294967296
end

-- The sense to fail with, or nil.
local function failing(st, k, err)
  if st.fail_every == 0 or floor(k / 256) % st.fail_every ~= 0 then
    return nil
  end
  local kind = floor(k / 65536) % 8
  if kind == 0 then return BUSY end
  if kind == 1 then return TASK_SET_FULL end
  return err
end

-- Finish everything queued, in key order; new work goes to a new queue.
local function drain(dev)
  local st = dev.state
  local q = st.queue
  st.queue, st.armed = {}, false
  table.sort(q, function(a, b) return a.key < b.key end)
  for _, op in ipairs(q) do
    local sd = op.err
    if not sd then op.fn(dev, op.cmd, op.offset, op.length, op.cmd_off) end
    dev:done(op.cmd, sd)
  end
end

-- Do fn now or later; a failure moves no data.
local function perform(dev, cmd, fn, err, offset, length, cmd_off)
  local st = dev.state
  local k = key(cmd, offset, length, #st.queue)
  local sd = failing(st, k, err)
  if not st.async or k % 5 == 0 then
    if sd then return nil, sd end
    return fn(dev, cmd, offset, length, cmd_off)
  end
  st.queue[#st.queue + 1] = { key = k, fn = fn, err = sd, cmd = cmd,
    offset = offset, length = length, cmd_off = cmd_off }
  if not st.armed then
    st.armed = true
    dev:after(0, drain)
  end
  return PENDING
end

local function nothing() end

h.read = function(dev, cmd, offset, length, cmd_off)
  check(dev, cmd, 'read', offset, length, cmd_off)
  return perform(dev, cmd, ram.read, READ_ERROR, offset, length, cmd_off)
end

h.write = function(dev, cmd, offset, length, cmd_off)
  check(dev, cmd, 'write', offset, length, cmd_off)
  return perform(dev, cmd, ram.write, WRITE_ERROR, offset, length, cmd_off)
end

h.unmap = function(dev, cmd, offset, length)
  check(dev, cmd, 'unmap', offset, length)
  return perform(dev, cmd, ram.unmap, WRITE_ERROR, offset, length)
end

-- Memory needs no flushing; having the callback makes WCE changeable and
-- brings in the library's flush steps (FUA, WCE=0, SYNCHRONIZE CACHE).
h.flush = function(dev, cmd)
  return perform(dev, cmd, nothing, WRITE_ERROR, 0, 0)
end

return h
