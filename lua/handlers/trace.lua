-- trace: wraps another handler and logs every command it completes.
--
--   options: { inner = 'ram', inner_options = {...}, sample = 1, file = '/tmp/t.log' }
--
-- One line per command, when it completes (so asynchronous completions of
-- the inner handler are seen too):
--   disk0 READ(10) lba=16 blocks=8 bytes=4096 -> GOOD 0.021 ms
--   disk0 READ(10) lba=2047 blocks=2 bytes=1024 -> CHECK CONDITION
--     ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE (0x21/0x00) 0.010 ms
-- The lines go to the daemon's log (info) or, with `file`, to that file.
-- `sample = N` logs one command in N.  The device's complete() is wrapped:
-- every command ends there, whoever finishes it.  Commands the core ends by
-- itself (aborted before they ran, the device going away) are not seen,
-- and the C fast path is turned off so that READ/WRITE reach Lua.
local bit = require 'bit'
local C = require('tl.abi').C
local log = require 'tl.log'
local schema = require 'tl.schema'
local handlers = require 'tl.handlers'
local scsi = require 'scsi'
local decode = require 'scsi.decode'

local band = bit.band
local fmt = string.format
local HAS_LBA = 8           -- TL_CMDF_HAS_LBA

local STATUS = {
  [0x00] = 'GOOD', [0x02] = 'CHECK CONDITION', [0x04] = 'CONDITION MET',
  [0x08] = 'BUSY', [0x18] = 'RESERVATION CONFLICT', [0x28] = 'TASK SET FULL',
  [0x40] = 'TASK ABORTED',
}

local function describe(name, cmd, now)
  local _, what = decode.lookup(cmd.cdb[0], band(cmd.cdb[1], 0x1F))
  local parts = { name, what }
  if band(cmd.flags, HAS_LBA) ~= 0 then
    parts[#parts + 1] = fmt('lba=%d blocks=%d', tonumber(cmd.lba), cmd.nblocks)
  end
  parts[#parts + 1] = fmt('bytes=%d', tonumber(cmd.data_len))
  parts[#parts + 1] = '->'
  parts[#parts + 1] = STATUS[cmd.status] or fmt('STATUS 0x%02X', cmd.status)
  if cmd.status == 2 and cmd.sense_len > 0 then
    local s = decode.sense(cmd.sense, cmd.sense_len)
    if s.format ~= 'unknown' then
      parts[#parts + 1] = fmt('%s: %s (0x%02X/0x%02X)', s.key_name or fmt('KEY 0x%X', s.key),
        s.asc_text, s.asc, s.ascq)
      if s.info then parts[#parts + 1] = fmt('info=%d', s.info) end
    end
  elseif cmd.status == 0 and cmd.read_len < cmd.data_len and cmd.read_len > 0 then
    parts[#parts + 1] = fmt('residual=%d', tonumber(cmd.data_len - cmd.read_len))
  end
  local t0 = cmd.t_start_ns
  if t0 > 0 and now >= t0 then
    parts[#parts + 1] = fmt('%.3f ms', tonumber(now - t0) / 1e6)
  end
  return table.concat(parts, ' ')
end

local function emit(st, line)
  if st.out then
    st.out:write(line, '\n')
  else
    log.info('%s', line)
  end
end

-- Wrap the device's complete(): log, then complete as before.
local function hook_complete(root, st)
  st.unhook = require('tl.wrap').hook_complete(root, function(cmd)
    st.seen = st.seen + 1
    if (st.seen - 1) % st.sample == 0 then
      local ok, line = pcall(describe, st.name, cmd, C.tl_ffi_now_ns())
      emit(st, ok and line or (st.name .. ' trace error: ' .. tostring(line)))
    end
  end)
end

local function open_output(st, path)
  if st.out then st.out:close(); st.out = nil end
  st.file = path
  if not path then return true end
  local f, err = io.open(path, 'a')
  if not f then return nil, err end
  f:setvbuf('line')
  st.out = f
  return true
end

local function forward(name, missing)
  return function(dev, ...)
    local st = dev.state
    local fn = st.inner[name]
    if fn then return fn(st.proxy, ...) end
    if missing then return nil, missing end
  end
end

local wrap = require 'tl.wrap'
local adjust_conf, check_same_inner = wrap.adjust_conf, wrap.check_same_inner

return {
  description = 'wraps another handler and logs every command',
  schema = {
    inner = { type = 'string', default = 'ram', doc = 'the handler to wrap' },
    inner_options = { type = 'table', doc = "the inner handler's options" },
    sample = { type = 'integer', default = 1, doc = 'log one command in N' },
    file = { type = 'string', doc = 'append the lines to this file instead of the log' },
  },

  open = function(dev, conf)
    local name = conf.inner
    if name == 'trace' then return nil, 'a trace device cannot wrap itself' end
    if conf.sample < 1 then return nil, 'option "sample": expected an integer >= 1' end
    local inner, err = handlers.load(name)
    if not inner then return nil, err end
    local iconf
    iconf, err = schema.validate(inner.schema or {}, conf.inner_options or {},
      ('inner %s'):format(name))
    if not iconf then return nil, err end
    local st = { inner = inner, inner_name = name, inner_options = conf.inner_options,
      sample = conf.sample,
      seen = 0, name = dev.name }
    local ok
    ok, err = open_output(st, conf.file)
    if not ok then return nil, err end
    local root = dev.root or dev
    st.proxy = setmetatable({ root = root, conf = iconf }, { __index = dev })
    -- Hooked before the inner handler opens, so that a wrapper inside it
    -- (fault) which hooks complete() too finishes the sense data first.
    hook_complete(root, st)
    if inner.open then
      local good, state, why = xpcall(inner.open, debug.traceback, st.proxy, iconf)
      if not good or (state == nil and why ~= nil) then
        st.unhook()
        open_output(st, nil)
        return nil, ('inner %s: %s'):format(name, tostring(good and why or state))
      end
      st.proxy.state = state
    end
    C.tl_ffi_fast_disable(dev.ptr)      -- every READ/WRITE through Lua
    adjust_conf(conf, inner)
    return st
  end,

  -- A reload keeps the inner handler and its state; sample and file change.
  migrate = function(dev, old, conf)
    check_same_inner(old, conf)
    if conf.sample < 1 then error('option "sample": expected an integer >= 1') end
    if conf.file ~= old.file then assert(open_output(old, conf.file)) end
    old.sample = conf.sample
    adjust_conf(conf, old.inner)
    return old
  end,

  close = function(dev)
    local st = dev.state
    if st.inner.close then st.inner.close(st.proxy) end
    st.unhook()                -- after the inner's own hook is gone
    open_output(st, nil)
  end,

  handle = function(dev, cmd)
    local st = dev.state
    local h = st.inner.handle
    if h then return h(st.proxy, cmd) end
    return scsi.NOT_HANDLED
  end,

  read = forward('read', scsi.sense.INVALID_OPCODE),
  write = forward('write'),
  flush = forward('flush'),
  unmap = forward('unmap', scsi.sense.INVALID_OPCODE),
  abort = forward('abort'),
  resize = forward('resize'),
}
