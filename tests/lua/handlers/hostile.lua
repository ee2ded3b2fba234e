-- Misbehaves in the way `mode` says, on reads only (writes succeed), so
-- specs can show the core contains each kind of bug to this device.
local ffi = require 'ffi'
local C = require('tl.abi').C
local scsi = require 'scsi'

local garbage = {
  string = function() return 'what' end,
  huge = function() return 1e300 end,
  negative = function() return -1 end,
  table = function() return {} end,
  ['function'] = function() return print end,
  cdata = function() return ffi.new('int[1]') end,
  false_ = function() return false end,
  nil_sense = function() return nil, 'MEDIUM_ERROR' end,
  table_sense = function() return nil, { key = 3 } end,
  bad_info = function() return nil, scsi.sense.MEDIUM_ERROR, 'lba' end,
  many = function() return nil, nil, nil, nil, 1, 2, 3 end,
}

local M = {
  schema = {
    mode = { type = 'string', default = 'good' },
    -- The address (in decimal: a number option would lose digits) of an
    -- int a loop watches, so a spec can end a runaway loop once it has
    -- seen what happens meanwhile.
    flag = { type = 'string', default = '0' },
    -- mode 'good', but a read of this LBA never returns (compiled loop).
    spin_lba = { type = 'number', default = -1 },
  },
}

local function spin()
  local n = 0
  while true do n = n + 1 end
end

local function loop_until_flag(addr)
  local flag = ffi.cast('volatile int *', tonumber(addr))
  local n = 0
  while flag[0] == 0 do n = n + 1 end   -- compiled within ~60 iterations
  return n
end

-- The same loop the JIT may not compile: the count hook sees it.
local function interpreted_loop()
  local n = 0
  while true do n = n + 1 end
end
jit.off(interpreted_loop)

function M.open(dev, conf)
  if conf.mode == 'raise_open' then error('open exploded') end
  if conf.mode == 'refuse_open' then return nil, 'no, thanks' end
  return { mode = conf.mode, flag = conf.flag, spin_lba = conf.spin_lba,
    held = {}, grow = {} }
end

function M.close(dev)
  if dev.state.mode == 'raise_close' or dev.state.mode == 'raise_all' then
    error('close exploded')
  end
end

function M.read(dev, cmd, off, len, at)
  local s = dev.state
  local mode = s.mode
  if mode == 'good' then
    if off == s.spin_lba * 512 then spin() end
    C.tl_ffi_fill(cmd, at, 0x11, len)
    return
  end
  if mode == 'raise_all' or mode == 'raise_close' then error('read exploded') end
  if garbage[mode] then return garbage[mode]() end
  if mode == 'pending_forever' then
    s.held[#s.held + 1] = cmd
    return scsi.PENDING
  end
  if mode == 'done_twice' then
    C.tl_ffi_fill(cmd, at, 0x22, len)
    dev:done(cmd)
    dev:done(cmd)
    return scsi.PENDING
  end
  if mode == 'timer_raises' then
    dev:after(0, function() error('timer exploded') end, cmd)
    return scsi.PENDING
  end
  if mode == 'grow' then
    -- Allocate without bound: never returns normally.
    local t = s.grow
    while true do t[#t + 1] = { ('x'):rep(64) .. #t } end
  end
  if mode == 'jit_loop' then loop_until_flag(s.flag); return end
  if mode == 'interpreted_loop' then interpreted_loop() end
  error('unknown mode ' .. tostring(mode))
end

function M.write(dev, cmd, off, len, at) end

function M.abort(dev, id)
  if dev.state.mode == 'raise_all' then error('abort exploded') end
  -- The kernel aborted a held command: end it (TASK ABORTED).
  for i, cmd in ipairs(dev.state.held) do
    if cmd.id == id then
      table.remove(dev.state.held, i)
      cmd.status = 0x40
      dev:complete(cmd)
      return
    end
  end
end

function M.resize(dev)
  if dev.state.mode == 'raise_all' then error('resize exploded') end
end

-- Another device's command, for `done_other`.
M.held = function(dev) return dev.state.held end

return M
