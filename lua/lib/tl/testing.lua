-- tl.testing: an initiator for devices on the built-in kernel simulator.
--
-- Specs, the sandbox and benchmarks use it to send CDBs to a handler that
-- runs exactly as in the daemon (its own worker and lua_State, the real
-- ring code), and to look at what comes back: status, sense, data and the
-- residual.  Convenience over speed: results are Lua strings.
local ffi = require 'ffi'
local abi = require 'tl.abi'
local C = abi.C

local M = {}

M.DIR_NONE, M.DIR_WRITE, M.DIR_READ = 0, 1, 2
M.CAP_OOOC, M.CAP_READ_LEN, M.CAP_TMR = 1, 2, 4
M.DEFAULT_CAPS = 1 + 2 + 4

-- Lua value -> Lua source text, for handler options.
function M.serialize(v)
  local t = type(v)
  if t == 'string' then return ('%q'):format(v) end
  if t == 'number' or t == 'boolean' then return tostring(v) end
  if t ~= 'table' then error('cannot serialize a ' .. t) end
  local parts = {}
  for k, val in pairs(v) do
    local key = type(k) == 'string' and ('[%q]'):format(k) or ('[%s]'):format(k)
    parts[#parts + 1] = key .. '=' .. M.serialize(val)
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

-- "28 00 00 00 00 10 00 00 08 00", a table of bytes, or a byte string.
function M.bytes(cdb)
  if type(cdb) == 'table' then
    local out = {}
    for i, b in ipairs(cdb) do out[i] = string.char(b) end
    return table.concat(out)
  end
  if type(cdb) == 'string' and cdb:match('^[%x%s]+$') and cdb:find('%x%x') then
    local out = {}
    for hex in cdb:gmatch('%x%x') do out[#out + 1] = string.char(tonumber(hex, 16)) end
    return table.concat(out)
  end
  return cdb
end

local Device = {}
Device.__index = Device

-- opts: handler, size, block_size, config (table or Lua source), caps,
-- name, write_cache, max_xfer_blocks, ring_bytes, data_bytes, hot_reload,
-- no_uring (the fast path synchronous, as on a kernel without io_uring).
function M.device(opts)
  local o = ffi.new('struct tl_simdev_opts')
  local keep = {}
  local function str(s) keep[#keep + 1] = s; return s end
  o.name = str(opts.name or 'sim0')
  o.handler = str(assert(opts.handler, 'handler required'))
  local config = opts.config
  if type(config) == 'table' then config = M.serialize(config) end
  if config then o.config = str(config) end
  if opts.handler_dirs then o.handler_dirs = str(opts.handler_dirs) end
  o.size = opts.size or 64 * 1024 * 1024
  o.block_size = opts.block_size or 512
  o.max_xfer_blocks = opts.max_xfer_blocks or 0
  o.caps = opts.caps or M.DEFAULT_CAPS
  o.ring_bytes = opts.ring_bytes or 0
  o.data_bytes = opts.data_bytes or 0
  o.write_cache = opts.write_cache and 1 or 0
  o.hot_reload = opts.hot_reload and 1 or 0
  o.no_uring = opts.no_uring and 1 or 0
  -- threaded: a worker thread as in the daemon (the watchdog can replace
  -- it); share: another Device whose worker serves this one too.
  o.threaded = opts.threaded and 1 or 0
  o.lua_timeout_ms = opts.lua_timeout_ms or 0
  o.lua_memory_limit = opts.lua_memory_limit or 0
  if opts.share then o.share = opts.share.sd end
  local err = ffi.new('char[1024]')
  local sd = C.tl_ffi_simdev_new(o, err, 1024)
  if sd == nil then return nil, ffi.string(err) end
  return setmetatable({ sd = ffi.gc(sd, C.tl_ffi_simdev_free) }, Device)
end

function Device:close()
  if self.sd then
    C.tl_ffi_simdev_free(ffi.gc(self.sd, nil))
    self.sd = nil
  end
end

-- Queue a command without publishing it; returns the cmd_id.
-- opts.data (string) makes it a data-out command; opts.len a data-in one.
function Device:prepare(cdb, opts)
  opts = opts or {}
  local bytes = M.bytes(cdb)
  local dir, buf, len = M.DIR_NONE, nil, 0
  if opts.data then
    dir, buf, len = M.DIR_WRITE, opts.data, #opts.data
  elseif opts.len and opts.len > 0 then
    dir, len = M.DIR_READ, opts.len
  end
  local id = C.tl_ffi_simdev_prepare(self.sd, bytes, #bytes, dir, buf, len)
  if id <= 0 then return nil, id == 0 and 'ring or data area full' or 'bad command' end
  return id
end

function Device:publish() C.tl_ffi_simdev_publish(self.sd) end

function Device:submit(cdb, opts)
  local id, err = self:prepare(cdb, opts)
  if id then self:publish() end
  return id, err
end

-- Let the worker run once; wait_ms < 0 blocks until something happens.
function Device:run(wait_ms)
  return C.tl_ffi_simdev_run(self.sd, wait_ms or 0)
end

-- The result of a finished command as a table, or nil if not done yet.
function Device:result(id, keep)
  local r = C.tl_ffi_simdev_result(self.sd, id)
  if r == nil or r.done == 0 then return nil end
  local res = {
    status = r.status,
    sense = ffi.string(r.sense, 96),
    read_len_valid = r.read_len_valid ~= 0,
    residual = r.residual,
    read_len = r.read_len,
    data = r.data ~= nil and ffi.string(r.data, r.read_len) or nil,
  }
  res.sense_key = res.sense:byte(1) == 0x72 and bit.band(res.sense:byte(2), 0xf)
    or bit.band(res.sense:byte(3), 0xf)
  res.asc = res.sense:byte(1) == 0x72 and res.sense:byte(3) or res.sense:byte(13)
  res.ascq = res.sense:byte(1) == 0x72 and res.sense:byte(4) or res.sense:byte(14)
  if not keep then C.tl_ffi_simdev_release(self.sd, id) end
  return res
end

-- Send one command and wait for it (timers and async handlers included).
function Device:exec(cdb, opts)
  local id, err = self:submit(cdb, opts)
  if not id then return nil, err end
  local deadline = os.time() + ((opts and opts.timeout) or 10)
  while true do
    self:run(0)
    local res = self:result(id)
    if res then return res end
    if os.time() > deadline then return nil, 'timed out' end
    self:run(10)
  end
end

-- Run the worker until every command in ids (a list of cmd_ids) is done;
-- returns their results in the same order, or nil and 'timed out'.
function Device:wait_all(ids, timeout)
  local deadline = os.time() + (timeout or 10)
  local out, left = {}, #ids
  while true do
    self:run(0)
    for i, id in ipairs(ids) do
      if not out[i] then
        out[i] = self:result(id)
        if out[i] then left = left - 1 end
      end
    end
    if left == 0 then return out end
    if os.time() > deadline then return nil, 'timed out' end
    self:run(10)
  end
end

function Device:inflight() return C.tl_ffi_simdev_inflight(self.sd) end

-- true when the fast path's file I/O runs asynchronously (io_uring).
function Device:async() return C.tl_ffi_simdev_async(self.sd) ~= 0 end

-- The core's counters for this device (cmds, fast, lua_errors, ...).
function Device:stats()
  local s = C.tl_ffi_simdev_stats(self.sd)
  local out = { cmds = tonumber(s.cmds), fast = tonumber(s.fast),
    fast_async = tonumber(s.fast_async),
    lua_errors = tonumber(s.lua_errors), rejected = tonumber(s.rejected),
    aborted = tonumber(s.aborted), kicks = tonumber(s.kicks),
    batches = tonumber(s.batches), qdepth_max = s.qdepth_max }
  for i, name in ipairs { 'read', 'write', 'other' } do
    local k = s.kind[i - 1]
    out[name] = { cmds = tonumber(k.cmds), bytes = tonumber(k.bytes),
      errors = tonumber(k.errors),
      p50 = tonumber(C.tl_ffi_lat_quantile(k.lat, 0.5)),
      p99 = tonumber(C.tl_ffi_lat_quantile(k.lat, 0.99)) }
  end
  return out
end

-- Run Lua source inside the handler's worker state; returns its result
-- as a string, or nil and the error.
function Device:eval(code)
  local out = ffi.new('char[65536]')
  if C.tl_ffi_simdev_eval(self.sd, code, out, 65536) ~= 0 then
    return nil, ffi.string(out)
  end
  return ffi.string(out)
end

function Device:tmr(tmr_type, ids)
  local arr = ffi.new('uint16_t[?]', #ids + 1)
  for i, v in ipairs(ids) do arr[i - 1] = v end
  return C.tl_ffi_simdev_tmr(self.sd, tmr_type, arr, #ids)
end

-- What the watchdog or memory limit reported for this device's worker,
-- and how many times the worker was replaced.
function Device:report()
  return ffi.string(C.tl_ffi_simdev_report(self.sd)),
    C.tl_ffi_simdev_rescues(self.sd)
end

function Device:resize(bytes) return C.tl_ffi_simdev_resize(self.sd, bytes) end

-- Reload the handler from disk.  Unchanged files are left alone unless
-- force (the default here: a person asked for it).
function Device:reload(force)
  if force == nil then force = true end
  local err = ffi.new('char[1024]')
  if C.tl_ffi_simdev_reload(self.sd, force and 1 or 0, err, 1024) ~= 0 then
    return nil, ffi.string(err)
  end
  return true
end

-- CDB builders for the common commands (big-endian fields).
local function be(n, width)
  local out = {}
  for i = width - 1, 0, -1 do
    out[#out + 1] = string.char(math.floor(n / 2 ^ (8 * i)) % 256)
  end
  return table.concat(out)
end
M.be = be

function M.read10(lba, n) return '\40\0' .. be(lba, 4) .. '\0' .. be(n, 2) .. '\0' end
function M.write10(lba, n) return '\42\0' .. be(lba, 4) .. '\0' .. be(n, 2) .. '\0' end
function M.read16(lba, n) return '\136\0' .. be(lba, 8) .. be(n, 4) .. '\0\0' end
function M.write16(lba, n) return '\138\0' .. be(lba, 8) .. be(n, 4) .. '\0\0' end

return M
