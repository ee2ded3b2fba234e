-- The Lua host: handlers on the simulator, through the real ring and worker.
local T = require 'tl.testing'

local function dev(handler, opts)
  opts = opts or {}
  opts.handler = handler
  opts.handler_dirs = TEST_HANDLER_DIRS
  opts.size = opts.size or 1024 * 1024
  return T.device(opts)
end

local HW_ERROR, ILLEGAL = 0x04, 0x05

describe('the handler contract', function()
  it('serves a ten-line RAM disk end to end', function()
    local d = assert(dev('ten_line_ram'))
    local data = ('0123456789abcdef'):rep(256)
    local r = assert(d:exec(T.write10(16, 8), { data = data }))
    assert.equals(0, r.status)
    r = assert(d:exec(T.read10(16, 8), { len = 4096 }))
    assert.equals(0, r.status)
    assert.equals(data, r.data)
    r = assert(d:exec(T.read10(0, 1), { len = 512 }))
    assert.equals(('\0'):rep(512), r.data)
    d:close()
  end)

  it('checks the LBA range before moving data', function()
    local d = assert(dev('ten_line_ram'))
    local r = assert(d:exec(T.read10(2047, 2), { len = 1024 }))
    assert.equals(2, r.status)
    assert.equals(ILLEGAL, r.sense_key)
    assert.equals(0x21, r.asc)
    d:close()
  end)

  it('refuses names that could escape the handler directories', function()
    for _, name in ipairs { '../ram', '/etc/passwd', 'a/b', '..', '' } do
      local d, err = dev(name)
      assert.is_nil(d)
      assert.truthy(err:find('invalid handler name', 1, true), err)
    end
  end)

  it('reports syntax and load errors with file:line', function()
    local d, err = dev('bad_syntax')
    assert.is_nil(d)
    assert.truthy(err:find('bad_syntax.lua:1:', 1, true), err)
    d, err = dev('bad_load')
    assert.is_nil(d)
    assert.truthy(err:find('bad_load.lua:1: refusing to load', 1, true), err)
  end)

  it('names unknown and missing options', function()
    local d, err = dev('file', { config = { path = '/nonexistent', colour = 'red' } })
    assert.is_nil(d)
    assert.truthy(err:find('unknown option "colour"', 1, true), err)
    d, err = dev('file', { config = {} })
    assert.is_nil(d)
    assert.truthy(err:find('missing required option "path"', 1, true), err)
    d = assert(dev('ten_line_ram', { config = { serial = 'ABC123', read_only = true } }))
    local r = assert(d:exec(T.write10(0, 1), { data = ('w'):rep(512) }))
    assert.equals(0x07, r.sense_key)       -- DATA PROTECT: device options apply
    d:close()
    d, err = dev('raises', { config = { only_lba7 = 'maybe' } })
    assert.is_nil(d)
    assert.truthy(err:find('option "only_lba7": expected', 1, true), err)
  end)

  it('lets handle() take commands and fall back to the library', function()
    local d = assert(dev('full_control'))
    local r = assert(d:exec('00 00 00 00 00 00'))
    assert.equals(0x08, r.status)          -- BUSY, from the handler
    r = assert(d:exec('12 00 00 00 24 00', { len = 36 }))
    assert.equals(0, r.status)             -- INQUIRY, from the library
    assert.equals(36, #r.data)
    d:close()
  end)
end)

describe('handler errors', function()
  it('fail only the command that raised, with HARDWARE ERROR', function()
    local d = assert(dev('raises', { config = { only_lba7 = true } }))
    local ids = {}
    for lba = 0, 15 do
      ids[lba] = assert(d:prepare(T.read10(lba, 1), { len = 512 }))
    end
    d:publish()
    for _ = 1, 5 do d:run(0) end
    for lba = 0, 15 do
      local r = assert(d:result(ids[lba]))
      if lba == 7 then
        assert.equals(2, r.status)
        assert.equals(HW_ERROR, r.sense_key)
        assert.equals(0x44, r.asc)
      else
        assert.equals(0, r.status)
        assert.equals(('\90'):rep(512), r.data)
      end
    end
    assert.equals(0, d:inflight())
    d:close()
  end)

  it('never stall the ring when every command raises', function()
    local d = assert(dev('raises'))
    for round = 1, 50 do
      local ids = {}
      for i = 1, 32 do
        ids[i] = assert(d:prepare(i % 2 == 0 and T.read10(i, 1) or T.write10(i, 1),
          i % 2 == 0 and { len = 512 } or { data = ('x'):rep(512) }))
      end
      d:publish()
      d:run(0)
      for i = 1, 32 do
        local r = assert(d:result(ids[i]), 'command left in flight')
        assert.equals(2, r.status)
        assert.equals(HW_ERROR, r.sense_key)
      end
    end
    assert.equals(0, d:inflight())
    d:close()
  end)

  it('turn nonsense return values into a failed command', function()
    local d = assert(dev('garbage'))
    local r = assert(d:exec(T.read10(0, 1), { len = 512 }))
    assert.equals(2, r.status)
    r = assert(d:exec(T.write10(0, 1), { data = ('y'):rep(512) }))
    assert.equals(2, r.status)
    assert.equals(0, d:inflight())
    d:close()
  end)
end)

describe('errors a handler returns', function()
  it('carry the INFORMATION field into the sense data', function()
    local d = assert(dev('bad_lba'))
    for _, r in ipairs {
      assert(d:exec(T.read10(5, 1), { len = 512 })),
      assert(d:exec(T.write10(5, 1), { data = ('w'):rep(512) })),
    } do
      assert.equals(2, r.status)
      assert.equals(0x03, r.sense_key)
      assert.equals(0xf0, r.sense:byte(1))        -- VALID, fixed format
      assert.equals(1234, r.sense:byte(4) * 256 * 256 * 256 + r.sense:byte(5) * 65536
        + r.sense:byte(6) * 256 + r.sense:byte(7))
    end
    d:close()
  end)
end)

describe('asynchronous completion', function()
  it('completes commands later from a timer on the worker loop', function()
    local d = assert(dev('slow', { config = { delay = 0.02 } }))
    local ids = {}
    for i = 1, 8 do ids[i] = assert(d:prepare(T.read10(i, 2), { len = 1024 })) end
    d:publish()
    d:run(0)
    assert.is_nil(d:result(ids[1], true))  -- not yet
    local deadline = os.time() + 5
    local done = 0
    while done < 8 and os.time() <= deadline do
      d:run(50)
      done = 0
      for i = 1, 8 do
        if d:result(ids[i], true) then done = done + 1 end
      end
    end
    assert.equals(8, done)
    for i = 1, 8 do
      local r = d:result(ids[i])
      assert.equals(0, r.status)
      assert.equals(('\51'):rep(1024), r.data)
    end
    d:close()
  end)
end)

describe('task management', function()
  it('completes queued commands a TMR aborted without running them', function()
    local d = assert(dev('slow', { config = { delay = 0.01 } }))
    local a = assert(d:prepare(T.read10(0, 1), { len = 512 }))
    local b = assert(d:prepare(T.read10(1, 1), { len = 512 }))
    assert.equals(1, d:tmr(1, { b }))          -- publishes too
    local deadline = os.time() + 5
    while d:inflight() > 0 and os.time() <= deadline do d:run(20) end
    assert.equals(0, d:inflight())
    assert.equals(0, d:result(a).status)
    assert.equals(0x40, d:result(b).status)    -- TASK ABORTED
    d:close()
  end)
end)

describe('statistics', function()
  local ffi = require 'ffi'
  local C = require('tl.abi').C

  it('counts commands, bytes and errors per kind', function()
    local d = assert(dev('ten_line_ram'))
    for i = 1, 10 do assert(d:exec(T.write10(i, 2), { data = ('d'):rep(1024) })) end
    for i = 1, 5 do assert(d:exec(T.read10(i, 1), { len = 512 })) end
    assert(d:exec(T.read10(4096, 1), { len = 512 }))   -- out of range
    assert(d:exec('12 00 00 00 24 00', { len = 36 }))
    local st = d:stats()
    assert.equals(10, st.write.cmds)
    assert.equals(10240, st.write.bytes)
    assert.equals(6, st.read.cmds)
    assert.equals(1, st.read.errors)
    assert.equals(5 * 512, st.read.bytes)   -- nothing moved for the failed one
    assert.equals(1, st.other.cmds)
    assert.equals(36, st.other.bytes)
    assert.is_true(st.read.p50 > 0 and st.read.p50 <= st.read.p99)
    d:close()
  end)

  it('reads quantiles back from the histogram', function()
    local lat = ffi.new('uint64_t[160]')
    -- 90 commands at 1000 ns, 10 at 1 ms
    local function bucket(ns)
      for b = 0, 159 do if ns < C.tl_ffi_lat_bucket_ns(b) then return b end end
    end
    lat[bucket(1000)] = 90
    lat[bucket(1000000)] = 10
    local p50 = tonumber(C.tl_ffi_lat_quantile(lat, 0.5))
    local p99 = tonumber(C.tl_ffi_lat_quantile(lat, 0.99))
    assert.is_true(p50 > 1000 and p50 <= 1250, tostring(p50))
    assert.is_true(p99 > 1000000 and p99 <= 1250000, tostring(p99))
    assert.equals(0, tonumber(C.tl_ffi_lat_quantile(ffi.new('uint64_t[160]'), 0.5)))
  end)
end)

describe('hot reload', function()
  local dir
  local function write(name, text)
    local f = assert(io.open(dir .. '/' .. name, 'w'))
    f:write(text)
    f:close()
  end
  local function version(v)
    return ([[
local C = require('tl.abi').C
local helper = require 'reload_helper'
return {
  open = function(dev) return { v = %d } end,
  migrate = %s,
  read = function(dev, cmd, off, len, at)
    C.tl_ffi_fill(cmd, at, dev.state.v + helper.bump, len)
  end,
}]]):format(v, v % 2 == 0 and 'function(dev, old) return { v = old.v + 100 } end' or 'nil')
  end
  local function first_byte(d)
    local r = assert(d:exec(T.read10(0, 1), { len = 512 }))
    assert.equals(0, r.status)
    return r.data:byte(1)
  end

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute('mkdir -p ' .. dir) == 0)
    write('reload_helper.lua', 'return { bump = 0 }')
  end)
  after_each(function() os.execute('rm -rf ' .. dir) end)

  it('swaps in new code, keeps old code on errors, and migrates state', function()
    write('rl.lua', version(1))
    local d = assert(T.device { handler = 'rl', size = 1024 * 1024,
      handler_dirs = dir })
    -- the handler's own directory must be on package.path for its helper
    assert.equals(1, first_byte(d))

    write('rl.lua', 'return { read = function( end }')       -- syntax error
    local ok, err = d:reload()
    assert.is_nil(ok)
    assert.truthy(err:find('rl.lua:1:', 1, true), err)
    assert.equals(1, first_byte(d))                           -- old code runs

    write('rl.lua', 'error("boom at load")')                  -- error at load
    ok, err = d:reload()
    assert.is_nil(ok)
    assert.truthy(err:find('boom at load', 1, true), err)
    assert.equals(1, first_byte(d))

    write('rl.lua', version(3))                               -- close + open
    assert(d:reload())
    assert.equals(3, first_byte(d))

    write('rl.lua', version(4))                               -- migrate(old)
    assert(d:reload())
    assert.equals(103, first_byte(d))

    write('reload_helper.lua', 'return { bump = 10 }')        -- a module it requires
    assert(d:reload(false))
    assert.equals(213, first_byte(d))                         -- migrated again
    assert(d:reload(false))                                   -- nothing changed
    assert.equals(213, first_byte(d))                         -- state untouched
    d:close()
  end)

  it('survives a hundred reloads', function()
    write('rl.lua', version(1))
    local d = assert(T.device { handler = 'rl', size = 1024 * 1024, handler_dirs = dir })
    for i = 1, 100 do
      write('rl.lua', version(i % 2 == 1 and i or i + 1))
      assert(d:reload())
    end
    assert.is_true(first_byte(d) > 0)
    d:close()
  end)

  it('reloads by itself when the file is saved', function()
    write('rl.lua', version(1))
    local d = assert(T.device { handler = 'rl', size = 1024 * 1024,
      handler_dirs = dir, hot_reload = true })
    assert.equals(1, first_byte(d))
    write('rl.lua', version(5))
    local deadline = os.time() + 5
    local b = 1
    while b ~= 5 and os.time() <= deadline do
      d:run(100)
      b = first_byte(d)
    end
    assert.equals(5, b)
    d:close()
  end)
end)
