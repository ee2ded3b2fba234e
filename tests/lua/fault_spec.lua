-- The fault handler: a wrapper that injects latency, errors and hangs.
local T = require 'tl.testing'
local ffi = require 'ffi'
local C = require('tl.abi').C

local MEDIUM, DATA_PROTECT = 0x03, 0x07
local BLOCK = 512

-- A probe: the fault handler plus two commands to reach its Lua API from
-- the spec (the device runs in its own lua_State).  WRITE BUFFER carries a
-- fault set for dev.state.faults:set{}; READ BUFFER returns dev.state.stats.
local PROBE = [[
local ffi = require 'ffi'
local C = require('tl.abi').C
local fault = assert(require('tl.handlers').load('fault'))
local h = {}
for k, v in pairs(fault) do h[k] = v end
h.name, h.path, h.signature, h._full_schema = nil, nil, nil, nil
h.handle = function(dev, cmd)
  if cmd.opcode == 0x3B then
    local n = tonumber(cmd.data_len)
    local buf = ffi.new('uint8_t[?]', n)
    C.tl_ffi_copy_from(cmd, 0, buf, n)
    local t = load('return ' .. ffi.string(buf, n), '=probe', 't', {})()
    local ok = dev.state.faults:set(t)
    cmd.status, cmd.sense_len = ok and 0 or 0x08, 0
    dev:complete(cmd)
    return
  elseif cmd.opcode == 0x3C then
    local parts = {}
    for k, v in pairs(dev.state.stats) do parts[#parts + 1] = k .. '=' .. v end
    local s = '{' .. table.concat(parts, ',') .. '}'
    C.tl_ffi_copy_to(cmd, 0, s, #s)
    cmd.read_len, cmd.status, cmd.sense_len = #s, 0, 0
    dev:complete(cmd)
    return
  end
  return fault.handle(dev, cmd)
end
return h
]]

local function tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute('mkdir -p ' .. dir) == 0)
  return dir
end

local function write_file(path, text)
  local f = assert(io.open(path, 'w'))
  f:write(text)
  f:close()
end

local probe_dir
local function dev(config, handler)
  return T.device { handler = handler or 'fault', size = 1024 * 1024,
    handler_dirs = (probe_dir and (probe_dir .. ';') or '') .. TEST_HANDLER_DIRS,
    config = config }
end

local function stats(d)
  local r = assert(d:exec('3C 00 00 00 00 00 00 10 00 00', { len = 4096 }))
  assert.equals(0, r.status)
  return load('return ' .. r.data, '=stats', 't', {})()
end

local function set_faults(d, text)
  local r = assert(d:exec('3B 00 00 00 00 00 00 00 00 00', { data = text }))
  return r.status == 0
end

local function info_field(r)   -- fixed format: VALID and INFORMATION
  local s = r.sense
  assert.equals(0xF0, s:byte(1))
  return ((s:byte(4) * 256 + s:byte(5)) * 256 + s:byte(6)) * 256 + s:byte(7)
end

local function wait_done(d, id, seconds)
  local deadline = os.time() + (seconds or 5)
  while os.time() <= deadline do
    d:run(10)
    local r = d:result(id)
    if r then return r end
  end
end

describe('fault handler', function()
  setup(function()
    probe_dir = tmpdir()
    write_file(probe_dir .. '/fault_probe.lua', PROBE)
    write_file(probe_dir .. '/no_write.lua', [[
local C = require('tl.abi').C
return { read = function(dev, cmd, off, len, at) C.tl_ffi_fill(cmd, at, 7, len) end }
]])
  end)
  teardown(function() os.execute('rm -rf ' .. probe_dir) end)

  it('passes I/O through to the inner handler when no fault is set', function()
    local d = assert(dev { inner = 'ram' })
    local data = ('fault!!!'):rep(BLOCK * 4 / 8)
    assert.equals(0, assert(d:exec(T.write10(10, 4), { data = data })).status)
    local r = assert(d:exec(T.read10(10, 4), { len = #data }))
    assert.equals(0, r.status)
    assert.equals(data, r.data)
    r = assert(d:exec(T.read10(2047, 2), { len = 1024 }))   -- the library's range check
    assert.equals(0x05, r.sense_key)
    assert.equals(0x21, r.asc)
    d:close()
  end)

  it("checks the inner handler's options with its schema", function()
    local d, err = dev { inner = 'file', inner_options = { colour = 'red' } }
    assert.is_nil(d)
    assert.truthy(err:find('inner file: unknown option "colour"', 1, true), err)
    d, err = dev { inner = 'file', inner_options = {} }
    assert.is_nil(d)
    assert.truthy(err:find('missing required option "path"', 1, true), err)
    d, err = dev { inner = 'nosuch' }
    assert.is_nil(d)
    assert.truthy(err:find('no handler "nosuch"', 1, true), err)
    d, err = dev { inner = 'ram', medium_errors = { { lba = -1 } } }
    assert.is_nil(d)
    assert.truthy(err:find('medium_errors[1]: lba', 1, true), err)
    d, err = dev { inner = 'ram', medium_errors = { { lba = 1, kind = 'sideways' } } }
    assert.is_nil(d)
    assert.truthy(err:find('kind must be', 1, true), err)
  end)

  it("leaves CDBs to the inner handler's handle() first", function()
    local d = assert(dev { inner = 'full_control', latency = 1 })
    assert.equals(0x08, assert(d:exec('00 00 00 00 00 00')).status)   -- BUSY, from it
    assert.equals(36, #assert(d:exec('12 00 00 00 24 00', { len = 36 })).data)
    d:close()
  end)

  it('makes the device read-only when the inner handler cannot write', function()
    local d = assert(dev { inner = 'no_write' })
    assert.equals(('\7'):rep(BLOCK), assert(d:exec(T.read10(0, 1), { len = BLOCK })).data)
    local r = assert(d:exec(T.write10(0, 1), { data = ('x'):rep(BLOCK) }))
    assert.equals(DATA_PROTECT, r.sense_key)
    d:close()
  end)

  it('wraps the file handler with the fast path off', function()
    local path = os.tmpname()
    local f = assert(io.open(path, 'wb')); f:seek('set', 1024 * 1024 - 1); f:write('\0'); f:close()
    local d = assert(dev { inner = 'file', inner_options = { path = path },
      medium_errors = { { lba = 8, count = 1, kind = 'read' } } })
    assert.equals(0, assert(d:exec(T.write10(8, 1), { data = ('z'):rep(BLOCK) })).status)
    local r = assert(d:exec(T.read10(8, 1), { len = BLOCK }))
    assert.equals(MEDIUM, r.sense_key)
    assert.equals(0, d:stats().fast)
    d:close()
    os.remove(path)
  end)

  it('delays completion by the latency, without blocking the worker', function()
    local d = assert(dev { inner = 'ram', latency = 150 })
    local t0 = C.tl_ffi_now_ns()
    local id = assert(d:submit(T.read10(0, 1), { len = BLOCK }))
    local tur = assert(d:submit('00 00 00 00 00 00'))   -- no I/O: not delayed
    d:run(0)
    assert.is_nil(d:result(id, true))                     -- not done yet
    local r = assert(wait_done(d, tur))
    assert.equals(0, r.status)
    assert.is_nil(d:result(id, true))                     -- still waiting
    r = assert(wait_done(d, id))
    local ms = tonumber(C.tl_ffi_now_ns() - t0) / 1e6
    assert.equals(0, r.status)
    assert.is_true(ms >= 140, 'completed after ' .. ms .. ' ms')
    d:close()
  end)

  it('adds latency in front of an asynchronous inner handler', function()
    local d = assert(dev { inner = 'slow', inner_options = { delay = 0.02 }, latency = 20 })
    local t0 = C.tl_ffi_now_ns()
    local r = assert(d:exec(T.read10(3, 2), { len = 2 * BLOCK }))
    assert.equals(0, r.status)
    assert.equals(('\51'):rep(2 * BLOCK), r.data)
    assert.is_true(tonumber(C.tl_ffi_now_ns() - t0) / 1e6 >= 38)
    d:close()
  end)

  it('answers MEDIUM ERROR with the failing LBA for reads', function()
    local d = assert(dev { inner = 'ram',
      medium_errors = { { lba = 100, count = 8, kind = 'read' } } })
    local r = assert(d:exec(T.read10(96, 8), { len = 8 * BLOCK }))
    assert.equals(2, r.status)
    assert.equals(MEDIUM, r.sense_key)
    assert.equals(0x11, r.asc)                 -- UNRECOVERED READ ERROR
    assert.equals(0x00, r.ascq)
    assert.equals(100, info_field(r))
    r = assert(d:exec(T.read10(104, 1), { len = BLOCK }))
    assert.equals(104, info_field(r))
    -- writes to the range are fine; reads elsewhere too
    assert.equals(0, assert(d:exec(T.write10(100, 1), { data = ('w'):rep(BLOCK) })).status)
    assert.equals(0, assert(d:exec(T.read10(108, 4), { len = 4 * BLOCK })).status)
    d:close()
  end)

  it('answers WRITE ERROR with the failing LBA for writes, also in descriptor format', function()
    local d = assert(dev { inner = 'ram', descriptor_sense = true,
      medium_errors = { { 202, 2, 'write' } } })
    local r = assert(d:exec(T.write16(200, 4), { data = ('w'):rep(4 * BLOCK) }))
    assert.equals(2, r.status)
    assert.equals(MEDIUM, r.sense_key)
    assert.equals(0x0C, r.asc)                 -- WRITE ERROR
    assert.equals(0x00, r.ascq)
    local s = r.sense
    assert.equals(0x72, s:byte(1))
    assert.equals(0x00, s:byte(9))             -- information descriptor
    assert.equals(0x80, s:byte(11))            -- VALID
    assert.equals(202, s:byte(20))             -- low byte of the 8-byte INFORMATION
    assert.equals(0, assert(d:exec(T.read10(202, 1), { len = BLOCK })).status)
    d:close()
  end)

  it('keeps hung commands pending until a TMR aborts them', function()
    local d = assert(dev({ inner = 'ram', hang = { { lba = 50, count = 1 } } }, 'fault_probe'))
    local id = assert(d:submit(T.read10(50, 1), { len = BLOCK }))
    for _ = 1, 5 do d:run(10) end
    assert.is_nil(d:result(id, true))
    assert.equals(1, d:inflight())
    -- others still get served meanwhile
    assert.equals(0, assert(d:exec(T.read10(51, 1), { len = BLOCK })).status)
    assert.equals(1, d:tmr(1, { id }))             -- ABORT TASK
    local r = assert(wait_done(d, id))
    assert.equals(0x40, r.status)                  -- TASK ABORTED
    assert.equals(0, d:inflight())
    local st = stats(d)
    assert.equals(1, st.hangs)
    assert.equals(1, st.aborted)
    -- a hung WRITE is released the same way, and the slot is reusable
    id = assert(d:submit(T.write10(50, 1), { data = ('h'):rep(BLOCK) }))
    for _ = 1, 3 do d:run(10) end
    assert.is_nil(d:result(id, true))
    d:tmr(1, { id })
    assert.equals(0x40, assert(wait_done(d, id)).status)
    assert.equals(0, d:inflight())
    d:close()
  end)

  it('hangs every nth I/O operation', function()
    local d = assert(dev { inner = 'ram', hang = { every_nth = 3 } })
    local ids = {}
    for i = 1, 6 do ids[i] = assert(d:prepare(T.read10(i, 1), { len = BLOCK })) end
    d:publish()
    for _ = 1, 5 do d:run(10) end
    for i = 1, 6 do
      if i % 3 == 0 then
        assert.is_nil(d:result(ids[i], true))
      else
        assert.equals(0, assert(d:result(ids[i])).status)
      end
    end
    d:tmr(1, { ids[3], ids[6] })
    assert.equals(0x40, assert(wait_done(d, ids[3])).status)
    assert.equals(0x40, assert(wait_done(d, ids[6])).status)
    assert.equals(0, d:inflight())
    d:close()
  end)

  it('aborts a command that waits out its latency', function()
    local d = assert(dev { inner = 'ram', latency = 5000 })
    local id = assert(d:submit(T.read10(0, 1), { len = BLOCK }))
    d:run(10)
    assert.is_nil(d:result(id, true))
    d:tmr(1, { id })
    local r = assert(wait_done(d, id, 2))
    assert.equals(0x40, r.status)
    d:close()
  end)

  it('fails writes after the Nth with WRITE ERROR', function()
    local d = assert(dev({ inner = 'ram', fail_writes_after = 3 }, 'fault_probe'))
    for i = 1, 3 do
      assert.equals(0, assert(d:exec(T.write10(i, 1), { data = ('a'):rep(BLOCK) })).status)
    end
    local r = assert(d:exec(T.write10(40, 1), { data = ('a'):rep(BLOCK) }))
    assert.equals(MEDIUM, r.sense_key)
    assert.equals(0x0C, r.asc)
    assert.equals(40, info_field(r))
    assert.equals(0, assert(d:exec(T.read10(1, 1), { len = BLOCK })).status)
    assert.equals(1, stats(d).write_failures)
    d:close()
  end)

  it('turns read-only after N writes', function()
    local d = assert(dev { inner = 'ram', read_only_after = 2 })
    for i = 1, 2 do
      assert.equals(0, assert(d:exec(T.write10(i, 1), { data = ('b'):rep(BLOCK) })).status)
    end
    local r = assert(d:exec(T.write10(3, 1), { data = ('b'):rep(BLOCK) }))
    assert.equals(DATA_PROTECT, r.sense_key)
    assert.equals(0x27, r.asc)
    r = assert(d:exec(T.read10(1, 1), { len = BLOCK }))
    assert.equals(('b'):rep(BLOCK), r.data)
    d:close()
  end)

  it('changes faults at run time through the Lua API', function()
    local d = assert(dev({ inner = 'ram' }, 'fault_probe'))
    assert.equals(0, assert(d:exec(T.read10(7, 1), { len = BLOCK })).status)
    assert.is_true(set_faults(d, '{ medium_errors = { { lba = 7 } } }'))
    assert.equals(MEDIUM, assert(d:exec(T.read10(7, 1), { len = BLOCK })).sense_key)
    assert.is_false(set_faults(d, '{ colour = "red" }'))          -- refused, kept
    assert.equals(MEDIUM, assert(d:exec(T.read10(7, 1), { len = BLOCK })).sense_key)
    assert.is_true(set_faults(d, '{ latency = { 1, 3 } }'))
    assert.equals(0, assert(d:exec(T.read10(7, 1), { len = BLOCK })).status)
    local st = stats(d)
    assert.equals(2, st.medium_errors)
    assert.equals(1, st.delayed)
    d:close()
  end)

  it('re-reads the control file when it changes', function()
    local dir = tmpdir()
    local ctl = dir .. '/faults'
    local d = assert(dev({ inner = 'ram', control_file = ctl }, 'fault_probe'))
    local function read_key(lba)
      return assert(d:exec(T.read10(lba, 1), { len = BLOCK })).sense_key
    end
    local function wait_for(lba, key)
      local deadline = os.time() + 5
      local k = read_key(lba)
      while k ~= key and os.time() <= deadline do
        d:run(100)
        k = read_key(lba)
      end
      return k
    end
    assert.equals(0, read_key(12))
    write_file(ctl, '{ medium_errors = { { lba = 12, count = 2, kind = "read" } } }\n')
    assert.equals(MEDIUM, wait_for(12, MEDIUM))
    write_file(ctl, '{ oops = ')                          -- broken: faults kept
    for _ = 1, 8 do d:run(100) end
    assert.equals(MEDIUM, read_key(13))
    write_file(ctl, '{}')
    assert.equals(0, wait_for(12, 0))
    assert.equals(2, stats(d).control_reloads)
    d:close()
    os.execute('rm -rf ' .. dir)
  end)

  it('keeps the inner state across a reload', function()
    local d = assert(dev { inner = 'ram' })
    assert.equals(0, assert(d:exec(T.write10(5, 1), { data = ('k'):rep(BLOCK) })).status)
    assert(d:reload())
    assert.equals(('k'):rep(BLOCK), assert(d:exec(T.read10(5, 1), { len = BLOCK })).data)
    d:close()
  end)
end)
