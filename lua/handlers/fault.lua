-- fault: wraps another handler and injects faults into its I/O.
--
--   options: { inner = 'ram', inner_options = {...},
--              latency = 5, latency_max = 20,            -- ms
--              medium_errors = { {lba = 100, count = 8, kind = 'read'} },
--              hang = { {lba = 5000, count = 1} },       -- or { every_nth = 50 }
--              fail_writes_after = 1000, read_only_after = 2000,
--              control_file = '/run/disk0.faults' }
--
-- Faults apply to the handler operations the SCSI library calls (read,
-- write, flush, unmap), after the library checked the CDB and the LBA
-- range, so every command that moves blocks (WRITE SAME, COMPARE AND WRITE,
-- VERIFY, ...) meets them too.  At run time other Lua code calls
-- dev.state.faults:set{...} (same keys as the options, replacing them all);
-- people edit control_file, read again (a Lua table constructor, in an
-- empty environment) when its mtime changes.  dev.state.stats counts what
-- was injected.
local ffi = require 'ffi'
local bit = require 'bit'
local C = require('tl.abi').C
local log = require 'tl.log'
local schema = require 'tl.schema'
local handlers = require 'tl.handlers'
local scsi = require 'scsi'
local core = require 'scsi.core'
local sense = require 'scsi.sense'

local PENDING, NOT_HANDLED = scsi.PENDING, scsi.NOT_HANDLED
local floor, random = math.floor, math.random

-- TASK ABORTED (SAM-5 status 0x40), no sense data: how a command the
-- kernel aborted (TMR) ends.  The library has no named error for it; this
-- table has the shape sense.build() and dev:done() expect.
local TASK_ABORTED = { name = 'TASK_ABORTED', key = 0, asc = 0, ascq = 0, status = 0x40 }

-- The keys a fault set has: options, faults:set{} and the control file.
local FAULT_SCHEMA = {
  latency = { type = 'number', default = 0,
    doc = 'delay every I/O operation by this many ms' },
  latency_max = { type = 'number',
    doc = 'with latency: a random delay between latency and latency_max ms' },
  medium_errors = { type = 'list',
    doc = 'LBA ranges answering MEDIUM ERROR: { {lba=, count=, kind=read|write|both}, ... }' },
  hang = { type = 'list',
    doc = 'LBA ranges whose commands never complete (until aborted), and/or every_nth = N' },
  fail_writes_after = { type = 'integer',
    doc = 'writes after the Nth fail with WRITE ERROR' },
  read_only_after = { type = 'integer',
    doc = 'after N writes the device refuses writes (DATA PROTECT)' },
}

local SCHEMA = {
  inner = { type = 'string', default = 'ram', doc = 'the handler to wrap' },
  inner_options = { type = 'table', doc = "the inner handler's options" },
  control_file = { type = 'string',
    doc = 'file with a fault set (Lua table constructor), re-read when it changes' },
}
for k, v in pairs(FAULT_SCHEMA) do SCHEMA[k] = v end

---------------------------------------------------------------------------
-- Fault sets.

local KINDS = { read = true, write = true, both = true }

local function ranges(list, what)
  local out = {}
  for i, e in ipairs(list or {}) do
    if type(e) ~= 'table' then
      return nil, ('%s[%d]: expected {lba=, count=, kind=}'):format(what, i)
    end
    local lba, count, kind = e.lba or e[1], e.count or e[2] or 1, e.kind or e[3] or 'both'
    if type(lba) ~= 'number' or lba < 0 or lba ~= floor(lba) then
      return nil, ('%s[%d]: lba must be an integer >= 0'):format(what, i)
    end
    if type(count) ~= 'number' or count < 1 or count ~= floor(count) then
      return nil, ('%s[%d]: count must be an integer >= 1'):format(what, i)
    end
    if not KINDS[kind] then
      return nil, ('%s[%d]: kind must be read, write or both'):format(what, i)
    end
    out[#out + 1] = { lba = lba, count = count, read = kind ~= 'write',
      write = kind ~= 'read' }
  end
  return out
end

-- A user's fault set -> the checked form the I/O path uses.
local function compile(t)
  if type(t) ~= 'table' then return nil, 'a fault set must be a table' end
  local src = {}
  for k, v in pairs(t) do src[k] = v end
  if type(src.latency) == 'table' then        -- latency = {min, max}
    local l = src.latency
    src.latency, src.latency_max = l.min or l[1], l.max or l[2]
  end
  local conf, err = schema.validate(FAULT_SCHEMA, src, 'faults')
  if not conf then return nil, err end
  local cfg = { latency = conf.latency, latency_max = conf.latency_max,
    fail_writes_after = conf.fail_writes_after,
    read_only_after = conf.read_only_after }
  if cfg.latency < 0 then return nil, 'faults: latency must be >= 0' end
  if cfg.latency_max and cfg.latency_max < cfg.latency then
    return nil, 'faults: latency_max must be >= latency'
  end
  for _, k in ipairs { 'fail_writes_after', 'read_only_after' } do
    if cfg[k] and cfg[k] < 0 then return nil, ('faults: %s must be >= 0'):format(k) end
  end
  cfg.medium_errors, err = ranges(conf.medium_errors, 'medium_errors')
  if not cfg.medium_errors then return nil, 'faults: ' .. err end
  cfg.hang, err = ranges(conf.hang, 'hang')
  if not cfg.hang then return nil, 'faults: ' .. err end
  local nth = conf.hang and conf.hang.every_nth
  if nth ~= nil and (type(nth) ~= 'number' or nth < 1 or nth ~= floor(nth)) then
    return nil, 'faults: hang.every_nth must be an integer >= 1'
  end
  cfg.every_nth = nth
  cfg.active = cfg.latency > 0 or #cfg.medium_errors > 0 or #cfg.hang > 0
    or nth ~= nil or cfg.fail_writes_after ~= nil or cfg.read_only_after ~= nil
  return cfg
end

-- dev.state.faults: the run-time API.
local Faults = {}
Faults.__index = Faults

-- Replace the whole fault set; the operation counters (every_nth,
-- fail_writes_after, read_only_after) start again from zero.
function Faults:set(t)
  local cfg, err = compile(t)
  if not cfg then return nil, err end
  self.cfg, self.spec = cfg, t
  self.ops, self.writes = 0, 0
  return true
end

function Faults:clear() return self:set {} end
function Faults:get() return self.spec end

---------------------------------------------------------------------------
-- The control file.

-- stat(2) for the mtime, where struct stat's layout is known (64-bit
-- Linux: size at 48, st_mtim at 88 on x86_64 and on arm64); elsewhere the
-- file's text itself is compared.
local have_stat = false
if ffi.os == 'Linux' and (ffi.arch == 'x64' or ffi.arch == 'arm64') then
  pcall(ffi.cdef, 'int tl_fault_stat(const char *path, void *buf) __asm__("stat");')
  have_stat = pcall(function() return C.tl_fault_stat end)
end
local stat_buf = ffi.new('uint8_t[256]')

local function slurp(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('*a')
  f:close()
  return s
end

-- Something that changes when the file does (nil: no file).
local function signature(path)
  if have_stat then
    if C.tl_fault_stat(path, stat_buf) ~= 0 then return nil end
    local p = ffi.cast('int64_t *', stat_buf)
    return ('%d.%d.%d'):format(tonumber(p[6]), tonumber(p[11]), tonumber(p[12]))
  end
  return slurp(path)
end

local function read_control(path)
  local text = slurp(path)
  if not text then return nil, 'cannot read ' .. path end
  if text:match('^%s*$') then return false end   -- being rewritten: wait
  local chunk, err = load('return ' .. text, '=' .. path, 't', {})
  if not chunk then return nil, err end
  local ok, t = pcall(chunk)
  if not ok then return nil, tostring(t) end
  if type(t) ~= 'table' then return nil, path .. ': expected a table constructor' end
  return t
end

local function check_control(dev, st)
  local sig = signature(st.control_file)
  if sig == st.control_sig then return end
  st.control_sig = sig
  if sig == nil then return end            -- gone: keep the faults as they are
  local t, err = read_control(st.control_file)
  if t == false then return end
  local ok
  if t then ok, err = st.faults:set(t) end
  if ok then
    st.stats.control_reloads = st.stats.control_reloads + 1
    log.info('%s: faults from %s applied', dev.name, st.control_file)
  else
    log.warn('%s: %s: %s (faults unchanged)', dev.name, st.control_file, err)
  end
end

local function start_control(dev, st)
  if not st.control_file then return end
  check_control(dev, st)
  st.control_timer = st.root:every(0.5, function()
    local ok, err = pcall(check_control, dev, st)
    if not ok then log.warn('%s: control file: %s', dev.name, tostring(err)) end
  end)
end

---------------------------------------------------------------------------
-- The I/O path.

-- First LBA of [lba, lba+n) inside one of the ranges for this kind, or nil.
local function first_hit(list, kind, lba, n)
  local best
  for i = 1, #list do
    local r = list[i]
    if r[kind] and r.lba < lba + n and lba < r.lba + r.count then
      local at = r.lba > lba and r.lba or lba
      if best == nil or at < best then best = at end
    end
  end
  return best
end

local HANG = {}

-- What happens to this operation: HANG, or a sense (+ info, + counter
-- name), or nil for "pass it on".
local function decide(st, kind, target, off, len)
  local f = st.faults
  local cfg = f.cfg
  if kind == 'read' or kind == 'write' then
    local bs = st.dev.info.block_size
    local lba, n = floor(off / bs), math.ceil(len / bs)
    f.ops = f.ops + 1
    if kind == 'write' then f.writes = f.writes + 1 end
    if (cfg.every_nth and f.ops % cfg.every_nth == 0)
        or first_hit(cfg.hang, kind, lba, n) then
      return HANG
    end
    local bad = first_hit(cfg.medium_errors, kind, lba, n)
    if bad then
      return kind == 'read' and sense.READ_ERROR or sense.WRITE_ERROR, bad, 'medium_errors'
    end
    if kind == 'write' then
      if cfg.read_only_after and f.writes > cfg.read_only_after then
        return sense.WRITE_PROTECTED, nil, 'read_only'
      end
      if cfg.fail_writes_after and f.writes > cfg.fail_writes_after then
        return sense.WRITE_ERROR, lba, 'write_failures'
      end
    end
  elseif kind == 'unmap' and cfg.read_only_after and f.writes >= cfg.read_only_after then
    return sense.WRITE_PROTECTED, nil, 'read_only'
  end
end

local function delay_of(cfg)
  local d = cfg.latency
  if cfg.latency_max and cfg.latency_max > d then
    d = d + random() * (cfg.latency_max - d)
  end
  return d / 1000
end

-- The inner operation, later (after a delay): its outcome goes to done().
local function run_inner(dev, st, name, target, a, b, c)
  local fn = st.inner[name]
  if not fn then return dev:done(target) end
  local ok, r, e, info = pcall(fn, st.proxy, target, a, b, c)
  if not ok then
    log.err('%s: inner %s.%s raised: %s', dev.name, st.inner_name, name, tostring(r))
    return dev:done(target, sense.HARDWARE_ERROR)
  end
  if r == PENDING then return end          -- the inner handler calls done()
  return dev:done(target, core.outcome(r, e), info)
end

-- A handler operation with faults in front of it.  kind: read, write,
-- flush or unmap (also the inner callback's name).
local function op(kind, missing)
  return function(dev, target, a, b, c)
    local st = dev.state
    local id = target.id
    st.injected[id] = nil
    local cfg = st.faults.cfg
    if not cfg.active then               -- nothing configured: straight through
      local fn = st.inner[kind]
      if not fn then
        if missing then return nil, missing end
        return
      end
      return fn(st.proxy, target, a, b, c)
    end
    local s, info, counter = decide(st, kind, target, a, b)
    local stats = st.stats
    if s == HANG then
      stats.hangs = stats.hangs + 1
      st.held[id] = target
      return PENDING
    end
    if s then
      stats[counter] = stats[counter] + 1
      if info then st.injected[id] = { sense = s, info = info } end
    elseif missing and not st.inner[kind] then
      s = missing
    end
    local delay = cfg.latency > 0 and delay_of(cfg) or 0
    if delay > 0 then
      stats.delayed = stats.delayed + 1
      local tid = st.root:after(delay, function()
        st.delayed[id] = nil
        if s then return dev:done(target, s, info) end
        return run_inner(dev, st, kind, target, a, b, c)
      end)
      st.delayed[id] = { timer = tid, target = target }
      return PENDING
    end
    if s then return nil, s, info end
    local fn = st.inner[kind]
    if not fn then return end
    return fn(st.proxy, target, a, b, c)
  end
end

-- The library drops the INFORMATION field on some paths (a synchronous
-- read failure, any write failure).  The device's complete() is wrapped to
-- write the sense again, with the failing LBA, for the commands that got
-- an injected error.
local function sense_key(cmd)
  if cmd.sense_len == 0 then return nil end
  if bit.band(cmd.sense[0], 0x7F) >= 0x72 then return bit.band(cmd.sense[1], 0x0F) end
  return bit.band(cmd.sense[2], 0x0F)
end

local function hook_complete(root, st)
  st.unhook = require('tl.wrap').hook_complete(root, function(cmd)
    local inj = st.injected[cmd.id]
    if inj then
      st.injected[cmd.id] = nil
      if cmd.status == 2 and sense_key(cmd) == inj.sense.key then
        sense.build(cmd, root.scsi.dsense, inj.sense, inj.info)
      end
    end
  end)
end

---------------------------------------------------------------------------

local wrap = require 'tl.wrap'
local adjust_conf, check_same_inner = wrap.adjust_conf, wrap.check_same_inner

local function open_inner(dev, conf)
  local name = conf.inner
  if name == 'fault' then return nil, 'a fault device cannot wrap itself' end
  local inner, err = handlers.load(name)
  if not inner then return nil, err end
  local iconf
  iconf, err = schema.validate(inner.schema or {}, conf.inner_options or {},
    ('inner %s'):format(name))
  if not iconf then return nil, err end
  local root = dev.root or dev
  local proxy = setmetatable({ root = root, conf = iconf }, { __index = dev })
  if inner.open then
    local ok, state, why = xpcall(inner.open, debug.traceback, proxy, iconf)
    if not ok then return nil, state end
    if state == nil and why ~= nil then return nil, ('inner %s: %s'):format(name, tostring(why)) end
    proxy.state = state
  end
  -- Faults must see every READ/WRITE: no C fast path underneath.
  C.tl_ffi_fast_disable(dev.ptr)
  adjust_conf(conf, inner)
  return { inner = inner, inner_name = name, inner_options = conf.inner_options,
    proxy = proxy, root = root }
end

local function close_inner(st)
  if st.inner.close then
    local ok, err = pcall(st.inner.close, st.proxy)
    if not ok then log.err('inner %s: close: %s', st.inner_name, tostring(err)) end
  end
end

return {
  description = 'wraps another handler and injects latency, errors and hangs',
  schema = SCHEMA,

  open = function(dev, conf)
    local st, err = open_inner(dev, conf)
    if not st then return nil, err end
    st.dev = dev
    st.faults = setmetatable({}, Faults)
    local spec = {}
    for k in pairs(FAULT_SCHEMA) do spec[k] = conf[k] end
    local ok
    ok, err = st.faults:set(spec)
    if not ok then
      close_inner(st)
      return nil, err
    end
    st.stats = { hangs = 0, aborted = 0, medium_errors = 0, write_failures = 0,
      read_only = 0, delayed = 0, control_reloads = 0 }
    st.held, st.delayed, st.injected = {}, {}, {}
    st.control_file = conf.control_file
    hook_complete(st.root, st)
    start_control(dev, st)
    return st
  end,

  -- A reload keeps the inner handler, its state and the commands held;
  -- the fault set is taken from the options again.
  migrate = function(dev, old, conf)
    check_same_inner(old, conf)
    local spec = {}
    for k in pairs(FAULT_SCHEMA) do spec[k] = conf[k] end
    assert(old.faults:set(spec))
    if old.control_timer then dev:cancel(old.control_timer) end
    old.control_timer, old.control_sig = nil, nil
    old.control_file = conf.control_file
    start_control(dev, old)
    adjust_conf(conf, old.inner)
    return old
  end,

  close = function(dev)
    local st = dev.state
    if st.control_timer then dev:cancel(st.control_timer) end
    -- Commands still held end now (BUSY: the initiator retries).
    for id, d in pairs(st.delayed) do
      dev:cancel(d.timer)
      st.delayed[id] = nil
      dev:done(d.target, sense.BUSY)
    end
    for id, target in pairs(st.held) do
      st.held[id] = nil
      dev:done(target, sense.BUSY)
    end
    st.unhook()
    close_inner(st)
  end,

  handle = function(dev, cmd)
    local st = dev.state
    local h = st.inner.handle
    if h then return h(st.proxy, cmd) end
    return NOT_HANDLED
  end,

  read = op('read', sense.INVALID_OPCODE),
  write = op('write'),
  flush = op('flush'),
  unmap = op('unmap', sense.INVALID_OPCODE),

  -- The kernel aborted commands (TMR): those held here end with TASK
  -- ABORTED, so their slots come back.
  abort = function(dev, cmd_id, tmr_type)
    local st = dev.state
    st.injected[cmd_id] = nil
    local target = st.held[cmd_id]
    if target then
      st.held[cmd_id] = nil
      st.stats.aborted = st.stats.aborted + 1
      -- the point of a hang: say that the kernel's abort came back to us
      log.info('%s: command %d (held by a hang) aborted by the kernel (TMR %d): TASK ABORTED',
        dev.name, cmd_id, tmr_type)
      dev:done(target, TASK_ABORTED)
    end
    local d = st.delayed[cmd_id]
    if d then
      st.delayed[cmd_id] = nil
      dev:cancel(d.timer)
      st.stats.aborted = st.stats.aborted + 1
      dev:done(d.target, TASK_ABORTED)
    end
    if st.inner.abort then st.inner.abort(st.proxy, cmd_id, tmr_type) end
  end,

  resize = function(dev, size)
    local st = dev.state
    if st.inner.resize then st.inner.resize(st.proxy, size) end
  end,
}
