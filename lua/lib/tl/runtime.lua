-- tl.runtime: the Lua side of one worker.
--
-- The C core calls only the functions in this table: open_device,
-- reopen_device, close_device, dispatch, tmr, resize, event and reload.
-- dispatch is the hot one: one call per batch, pulling commands through
-- tl_ffi_next() and handing each to the device's executor, which was
-- chosen once at open.
local ffi = require 'ffi'
local abi = require 'tl.abi'
local handlers = require 'tl.handlers'
local log = require 'tl.log'
local scsi = require 'scsi'

local C = abi.C
local next_cmd = C.tl_ffi_next
local complete = C.tl_ffi_complete
local lua_for = C.tl_ffi_lua_for

local M = {}
local devices = {}          -- id -> dev
local watchers = {}         -- watch id -> { fn, repeating, dev, cmd }
local worker = TL_WORKER and ffi.cast(abi.worker_ptr, TL_WORKER)

M.devices = devices
M.NOT_HANDLED = scsi.NOT_HANDLED
M.PENDING = scsi.PENDING

-- Methods every device object has; handlers call these.
local Dev = {}
Dev.__index = Dev

-- The core refuses a command that is not this device's or not running
-- (done twice, another device's, already aborted): the handler's bug is
-- logged, nothing else is touched.
function Dev:complete(cmd)
  if complete(self.ptr, cmd) ~= 0 then
    self.refused = (self.refused or 0) + 1
    if self.refused == 1 or self.refused % 1000 == 0 then
      log.err('%s: completion refused %d time(s): the command is not running on this device (completed twice, or another device\'s)',
        self.name, self.refused)
    end
  end
end

-- Run fn(dev) after `seconds`.  With cmd, a Lua error in fn fails that
-- command instead of leaving it hanging.
function Dev:after(seconds, fn, cmd)
  local id = C.tl_ffi_timer_start(worker, seconds, 0)
  if id < 0 then return nil, ffi.string(C.tl_ffi_strerror(id)) end
  watchers[id] = { fn = fn, dev = self, cmd = cmd }
  return id
end

function Dev:every(seconds, fn)
  local id = C.tl_ffi_timer_start(worker, seconds, seconds)
  if id < 0 then return nil, ffi.string(C.tl_ffi_strerror(id)) end
  watchers[id] = { fn = fn, dev = self, repeating = true }
  return id
end

-- Call fn(dev, readable, writable) whenever fd is ready.
function Dev:watch(fd, want_read, want_write, fn)
  local ev = (want_read and 1 or 0) + (want_write and 2 or 0)
  local id = C.tl_ffi_io_start(worker, fd, ev)
  if id < 0 then return nil, ffi.string(C.tl_ffi_strerror(id)) end
  watchers[id] = { fn = fn, dev = self, repeating = true }
  return id
end

function Dev:cancel(id)
  if id and watchers[id] then
    watchers[id] = nil
    C.tl_ffi_timer_stop(worker, id)
  end
end

function Dev:log(level, fmt, ...)
  log[level](('%s: ' .. fmt):format(self.name, ...))
end

-- The executor: handle() first if the handler has one, else the library.
local function make_executor(h)
  local execute = scsi.execute
  local handle = h.handle
  if not handle then return execute end
  local NOT_HANDLED = scsi.NOT_HANDLED
  return function(dev, cmd)
    if handle(dev, cmd) == NOT_HANDLED then
      return execute(dev, cmd)
    end
  end
end

local function open_with(dev, h, conf)
  dev.handler, dev.conf = h, conf
  dev.state = nil
  if h.open then
    local ok, state, err = xpcall(h.open, debug.traceback, dev, conf)
    if not ok then return nil, state end
    if state == nil and err ~= nil then return nil, tostring(err) end
    dev.state = state
  end
  scsi.attach(dev)
  dev.exec = make_executor(h)
  return true
end

function M.open_device(lud, conf_src)
  local ptr = ffi.cast(abi.dev_ptr, lud)
  local info = C.tl_ffi_dev_info(ptr)
  local dev = setmetatable({
    ptr = ptr, info = info, id = info.id,
    name = ffi.string(info.name),
    handler_name = ffi.string(info.subtype),
    conf_src = conf_src,
    cfgstring = ffi.string(info.cfgstring),
  }, Dev)
  local h, err = handlers.load(dev.handler_name)
  if not h then return nil, err end
  local conf
  conf, err = handlers.config(h, conf_src, dev.cfgstring, dev.name)
  if not conf then return nil, err end
  local ok
  ok, err = open_with(dev, h, conf)
  if not ok then return nil, ('%s: open failed: %s'):format(dev.name, err) end
  devices[dev.id] = dev
  log.info('%s: serving with handler %s (%s)', dev.name, h.name, h.path)
  return true
end

function M.close_device(id)
  local dev = devices[id]
  if not dev then return end
  devices[id] = nil
  for wid, w in pairs(watchers) do
    if w.dev == dev then dev:cancel(wid) end
  end
  C.tl_ffi_fast_disable(dev.ptr)
  if dev.handler.close then dev.handler.close(dev) end
end

-- New options for an open device (the daemon's config reload).  They are
-- checked against the handler's schema first: a refusal changes nothing.
-- Then the handler's close() and open() run with them; if open() refuses,
-- the device is opened again with the old options and the reason returned.
function M.reopen_device(id, conf_src)
  local dev = devices[id]
  if not dev then return nil, ('no open device %s'):format(tostring(id)) end
  local h = dev.handler
  local conf, err = handlers.config(h, conf_src, dev.cfgstring, dev.name)
  if not conf then return nil, err end
  local old_conf = dev.conf
  for wid, w in pairs(watchers) do
    if w.dev == dev then dev:cancel(wid) end
  end
  C.tl_ffi_fast_disable(dev.ptr)
  if h.close then
    local ok, cerr = xpcall(h.close, debug.traceback, dev)
    if not ok then log.err('%s: close failed: %s', dev.name, cerr) end
  end
  local ok, oerr = open_with(dev, h, conf)
  if not ok then
    local back, berr = open_with(dev, h, old_conf)
    if not back then
      log.err('%s: reopening with the old options failed too: %s', dev.name,
        berr)
    end
    return nil, ('%s: open with the new options failed: %s'):format(dev.name,
      oerr)
  end
  dev.conf_src = conf_src
  log.info('%s: reopened with new options', dev.name)
  return true
end

function M.dispatch(id)
  local dev = devices[id]
  local ptr, exec = dev.ptr, dev.exec
  local cmd = next_cmd(ptr)
  while cmd ~= nil do
    exec(dev, cmd)
    cmd = next_cmd(ptr)
  end
end

function M.tmr(id, tmr_type, ids_lud, n)
  local dev = devices[id]
  if not dev then return end
  local ids = ffi.cast('const uint16_t *', ids_lud)
  local abort = dev.handler.abort
  if abort then
    for i = 0, n - 1 do abort(dev, ids[i], tmr_type) end
  end
  scsi.on_tmr(dev, tmr_type, n)
end

function M.resize(id)
  local dev = devices[id]
  if not dev then return end
  if dev.handler.resize then dev.handler.resize(dev, dev.info.size) end
  scsi.on_resize(dev)
end

-- HARDWARE ERROR, INTERNAL TARGET FAILURE (fixed format), for a command
-- whose callback raised and can no longer finish it.
local function fail_internal(cmd)
  ffi.fill(cmd.sense, 18)
  cmd.sense[0], cmd.sense[2], cmd.sense[7], cmd.sense[12] = 0x70, 0x04, 10, 0x44
  cmd.sense_len, cmd.status, cmd.read_len = 18, 2, 0
end

function M.event(kind, id, revents)
  local w = watchers[id]
  if not w then return end
  if not w.repeating then watchers[id] = nil end
  lua_for(worker, w.dev.ptr)    -- whom the watchdog and memory limit blame
  if kind == 2 then
    local ok, err = xpcall(w.fn, debug.traceback, w.dev,
      bit.band(revents, 1) ~= 0, bit.band(revents, 2) ~= 0)
    if not ok then error(err, 0) end
    return
  end
  local ok, err = xpcall(w.fn, debug.traceback, w.dev)
  if not ok then
    if w.cmd ~= nil and w.cmd.state ~= 0 then
      fail_internal(w.cmd)
      w.dev:complete(w.cmd)
    end
    error(err, 0)
  end
end

-- Absolute paths of the files the running handlers came from.
function M.watched_files()
  local seen, out = {}, {}
  for _, dev in pairs(devices) do
    for _, f in ipairs(handlers.files(dev.handler_name, dev.handler)) do
      if f:sub(1, 1) ~= '/' then
        local pwd = os.getenv('PWD') or '.'
        f = pwd .. '/' .. f
      end
      if not seen[f] then seen[f] = true; out[#out + 1] = f end
    end
  end
  return out
end

-- Reload every handler in use from disk.  Nothing changes unless every
-- script loads and every device's options pass the new schema.  Devices
-- whose handler text (and modules) did not change are left alone, unless
-- force is set (an explicit request from a person: re-run open/migrate).
function M.reload(force)
  local fresh, plans = {}, {}
  for id, dev in pairs(devices) do
    local name = dev.handler_name
    if fresh[name] == nil then
      local h, err = handlers.load(name, true)
      if not h then return nil, err end
      -- Same text as the running code: keep the running table untouched.
      if not force and h.signature == dev.handler.signature then
        h = dev.handler
      end
      fresh[name] = h
    end
    local conf, err = handlers.config(fresh[name], dev.conf_src,
      dev.cfgstring, dev.name)
    if not conf then return nil, err end
    plans[#plans + 1] = { dev = dev, h = fresh[name], conf = conf }
  end
  for name, h in pairs(fresh) do handlers.commit(name, h) end
  for _, p in ipairs(plans) do
    local dev, h = p.dev, p.h
    if h ~= dev.handler then
      local old_state, old_handler, old_conf = dev.state, dev.handler, dev.conf
      if h.migrate then
        local ok, state = xpcall(h.migrate, debug.traceback, dev, old_state,
          p.conf)
        if ok then
          dev.handler, dev.conf, dev.state = h, p.conf, state
          scsi.attach(dev)     -- the library must call the new callbacks
          dev.exec = make_executor(h)
        else
          log.err('%s: migrate failed, keeping the old code: %s', dev.name,
            state)
        end
      else
        C.tl_ffi_fast_disable(dev.ptr)
        if old_handler.close then old_handler.close(dev) end
        local ok, err = open_with(dev, h, p.conf)
        if not ok then
          log.err('%s: reopen with new code failed (%s); back to the old',
            dev.name, err)
          open_with(dev, old_handler, old_conf)
        end
      end
    end
  end
  return true
end

return M
