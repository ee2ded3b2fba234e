-- Hostile handlers: whatever a handler does wrong, the core contains it to
-- that device.  Its commands fail with sense data, the problem is logged
-- (and reported by the watchdog or memory limit), and a healthy device on
-- the same worker keeps serving.
local ffi = require 'ffi'
local T = require 'tl.testing'

local HW_ERROR, ABORTED_COMMAND = 0x04, 0x0b

local function dev(mode, opts)
  opts = opts or {}
  opts.handler = opts.handler or 'hostile'
  opts.handler_dirs = TEST_HANDLER_DIRS
  opts.size = opts.size or 1024 * 1024
  opts.config = opts.config or { mode = mode }
  opts.name = opts.name or mode
  return T.device(opts)
end

-- A healthy device on the same worker as d.
local function neighbour(d)
  return assert(dev('good', { share = d, name = 'healthy' }))
end

local function read(d, lba)
  return assert(d:exec(T.read10(lba or 0, 1), { len = 512 }))
end

local function assert_good(d)
  local r = read(d, 3)
  assert.equals(0, r.status)
  assert.equals(('\17'):rep(512), r.data)
  r = assert(d:exec(T.write10(3, 1), { data = ('w'):rep(512) }))
  assert.equals(0, r.status)
end

local function assert_fails(r, key, asc, ascq)
  assert.equals(2, r.status)
  assert.equals(key, r.sense_key)
  if asc then assert.equals(asc, r.asc) end
  if ascq then assert.equals(ascq, r.ascq) end
end

-- Let the worker (and its timers) run until fn() is true; false if it
-- never is within `seconds` (no time is asserted: this only bounds a hang).
local function run_until(d, fn, seconds)
  local deadline = os.time() + (seconds or 20)
  while not fn() do
    if os.time() > deadline then return false end
    d:run(10)
  end
  return true
end

describe('a handler that raises', function()
  it('in open is refused with the error and where it was raised', function()
    local d, err = dev('raise_open')
    assert.is_nil(d)
    assert.truthy(err:find('hostile.lua:%d+: open exploded'), err)
    d, err = dev('refuse_open')
    assert.is_nil(d)
    assert.truthy(err:find('no, thanks', 1, true), err)
  end)

  it('in every callback fails only its commands; the neighbour serves',
    function()
    local d = assert(dev('raise_all'))
    local h = neighbour(d)
    for lba = 0, 9 do
      assert_fails(read(d, lba), HW_ERROR, 0x44, 0x00)
    end
    local r = assert(d:exec(T.write10(1, 1), { data = ('w'):rep(512) }))
    assert.equals(0, r.status)                 -- write() is fine
    assert_good(h)
    -- abort and resize raise too: logged, nothing else happens.
    local id = assert(d:submit(T.read10(0, 1), { len = 512 }))
    d:tmr(1, { id })
    assert.truthy(run_until(d, function() return d:inflight() == 0 end))
    assert.equals(0, d:resize(2 * 1024 * 1024))
    assert_fails(read(d, 0), HW_ERROR)
    assert_good(h)
    h:close()
    d:close()                                   -- close() raises as well
  end)

  it('in a timer given the command fails that command', function()
    local d = assert(dev('timer_raises'))
    local h = neighbour(d)
    assert_fails(read(d), HW_ERROR, 0x44)
    assert_good(h)
    assert.equals(0, d:inflight())
    h:close()
    d:close()
  end)
end)

describe('a handler returning garbage', function()
  for _, mode in ipairs { 'string', 'huge', 'negative', 'table', 'function',
                          'cdata', 'false_', 'nil_sense', 'table_sense' } do
    it('(' .. mode .. ') fails the command with HARDWARE ERROR', function()
      local d = assert(dev(mode))
      local h = neighbour(d)
      for lba = 0, 3 do assert_fails(read(d, lba), HW_ERROR) end
      assert_good(h)
      assert.equals(0, d:inflight())
      h:close()
      d:close()
    end)
  end

  it('(an INFORMATION value that is not a number) fails it too', function()
    local d = assert(dev('bad_info'))
    assert_fails(read(d, 5), HW_ERROR, 0x44)
    assert_good(neighbour(d))
    d:close()
  end)
end)

describe('a handler that never completes', function()
  it('holds commands until a TMR aborts them, and the slots come back',
    function()
    local d = assert(dev('pending_forever'))
    local h = neighbour(d)
    local ids = {}
    for i = 1, 8 do ids[i] = assert(d:submit(T.read10(i, 1), { len = 512 })) end
    for _ = 1, 5 do d:run(0) end
    assert.equals(8, d:inflight())
    assert_good(h)
    d:tmr(1, ids)
    assert.truthy(run_until(d, function() return d:inflight() == 0 end))
    for i = 1, 8 do assert.equals(0x40, assert(d:result(ids[i])).status) end
    h:close()
    d:close()
  end)

  it('is closed with what it holds when the device goes away', function()
    local h = assert(dev('good', { name = 'healthy' }))
    local d = assert(dev('pending_forever', { share = h }))
    for i = 1, 8 do assert(d:submit(T.read10(i, 1), { len = 512 })) end
    for _ = 1, 5 do d:run(0) end
    assert.equals(8, d:inflight())
    d:close()         -- fails the 8 held commands, frees the ring with them
    assert_good(h)
    assert.equals('1', h:eval([[
      local n = 0
      for _ in pairs(require('tl.runtime').devices) do n = n + 1 end
      return n]]))
    h:close()
  end)

  it('cannot complete a command twice', function()
    local d = assert(dev('done_twice'))
    for lba = 0, 3 do
      local r = read(d, lba)
      assert.equals(0, r.status)
      assert.equals(('\34'):rep(512), r.data)
    end
    assert.equals(0, d:inflight())
    assert.equals(0, d:stats().lua_errors)
    assert.equals('4', d:eval([[
      return require('tl.runtime').devices[next(require('tl.runtime').devices)].refused]]))
    d:close()
  end)

  it("cannot complete another device's command", function()
    local held = assert(dev('pending_forever', { name = 'held' }))
    local other = assert(dev('good', { share = held, name = 'other' }))
    local id = assert(held:submit(T.read10(0, 1), { len = 512 }))
    for _ = 1, 3 do held:run(0) end
    assert.equals(1, held:inflight())
    -- From a callback of `other`, complete `held`'s command as its own.
    local out = assert(other:eval([[
      local rt = require 'tl.runtime'
      local held, other
      for _, d in pairs(rt.devices) do
        if d.name == 'held' then held = d else other = d end
      end
      other:complete(held.state.held[1])
      return other.refused]]))
    assert.equals('1', out)
    assert.equals(1, held:inflight())          -- still held, untouched
    assert.equals(0, other:stats().cmds)       -- nothing counted on other
    held:tmr(1, { id })
    assert.truthy(run_until(held, function() return held:inflight() == 0 end))
    assert.equals(0x40, assert(held:result(id)).status)
    other:close()
    held:close()
  end)
end)

describe('the Lua memory limit', function()
  it('shuts down the device that went over it; the neighbour serves',
    function()
    local d = assert(dev('grow', { lua_memory_limit = 64 * 1024 * 1024 }))
    local h = neighbour(d)
    assert_fails(read(d, 0), HW_ERROR, 0x44, 0x00)
    -- From now on the device fails everything, writes too.
    assert_fails(read(d, 1), HW_ERROR, 0x44, 0x00)
    local r = assert(d:exec(T.write10(1, 1), { data = ('w'):rep(512) }))
    assert_fails(r, HW_ERROR, 0x44, 0x00)
    local report = d:report()
    assert.truthy(report:find('grow: handler hostile went over the Lua memory limit in dispatch',
      1, true), report)
    assert_good(h)
    -- The memory came back: the state is small again.
    local kb = tonumber(assert(h:eval('return collectgarbage("count")')))
    assert.is_true(kb < 16 * 1024, kb .. ' KiB still in use')
    assert.equals(0, d:inflight())
    h:close()
    d:close()
  end)
end)

describe('the watchdog', function()
  it('interrupts an interpreted loop: that command fails, the device serves',
    function()
    local d = assert(dev('interpreted_loop', { threaded = true,
      lua_timeout_ms = 300 }))
    local h = neighbour(d)
    assert_fails(read(d, 0), HW_ERROR, 0x44, 0x00)
    local r = assert(d:exec(T.write10(1, 1), { data = ('w'):rep(512) }))
    assert.equals(0, r.status)
    assert_good(h)
    assert.equals('1', d:eval('return 1'))
    local report, rescues = d:report()
    assert.equals(0, rescues)
    assert.equals('', report)
    h:close()
    d:close()
  end)

  it('moves the neighbours off a worker stuck in compiled code', function()
    local flag = ffi.new('int[1]')
    local addr = ('%.0f'):format(tonumber(ffi.cast('intptr_t', flag)))
    finally(function() flag[0] = 1 end)   -- never leave the thread spinning
    local d = assert(dev('jit_loop', { threaded = true, lua_timeout_ms = 300,
      config = { mode = 'jit_loop', flag = addr }, name = 'spinner' }))
    local h = neighbour(d)
    assert_good(h)
    local id = assert(d:submit(T.read10(0, 1), { len = 512 }))
    assert.truthy(run_until(d, function() return select(2, d:report()) == 1 end),
      'the watchdog never gave up on the worker: report "' .. d:report() ..
      '", ' .. d:inflight() .. ' in flight, result ' ..
      tostring(d:result(id, true) and d:result(id, true).status))
    local report = d:report()
    assert.truthy(report:find('spinner: handler hostile stuck in dispatch for',
      1, true), report)
    -- The command it was running failed, and so does every new one.
    assert.truthy(run_until(d, function() return d:inflight() == 0 end))
    assert_fails(assert(d:result(id)), HW_ERROR, 0x3e, 0x01)
    assert_fails(read(d, 1), HW_ERROR, 0x3e, 0x01)
    -- The neighbour was reopened on a fresh worker and serves.
    assert_good(h)
    assert.equals('fresh', h:eval('return "fresh"'))
    flag[0] = 1                 -- let the stuck thread go; it ends itself
    h:close()
    d:close()
  end)
end)
