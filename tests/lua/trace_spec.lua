-- The trace handler: a wrapper that logs every command it completes.
local T = require 'tl.testing'

local BLOCK = 512

local function lines_of(path)
  local out = {}
  local f = io.open(path, 'r')
  if not f then return out end
  for line in f:lines() do out[#out + 1] = line end
  f:close()
  return out
end

describe('trace handler', function()
  local path
  before_each(function() path = os.tmpname() end)
  after_each(function() os.remove(path) end)

  local function dev(config, extra)
    config.file = config.file or path
    local o = { handler = 'trace', size = 1024 * 1024,
      handler_dirs = TEST_HANDLER_DIRS, config = config }
    for k, v in pairs(extra or {}) do o[k] = v end
    return T.device(o)
  end

  it('logs READ, a failing READ and INQUIRY, one line each', function()
    local d = assert(dev { inner = 'ram' })
    local data = ('trace..!'):rep(BLOCK * 8 / 8)
    assert.equals(0, assert(d:exec(T.write10(16, 8), { data = data })).status)
    local r = assert(d:exec(T.read10(16, 8), { len = 8 * BLOCK }))
    assert.equals(data, r.data)
    r = assert(d:exec(T.read10(2047, 2), { len = 2 * BLOCK }))
    assert.equals(0x05, r.sense_key)
    assert.equals(0, assert(d:exec('12 00 00 00 24 00', { len = 36 })).status)
    d:close()
    local lines = lines_of(path)
    assert.equals(4, #lines, table.concat(lines, '\n'))
    assert.truthy(lines[1]:match('^sim0 WRITE%(10%) lba=16 blocks=8 bytes=4096 %-> GOOD [%d.]+ ms$'), lines[1])
    assert.truthy(lines[2]:match('^sim0 READ%(10%) lba=16 blocks=8 bytes=4096 %-> GOOD [%d.]+ ms$'), lines[2])
    assert.truthy(lines[3]:find('READ(10) lba=2047 blocks=2 bytes=1024 -> CHECK CONDITION '
      .. 'ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE (0x21/0x00)', 1, true), lines[3])
    assert.truthy(lines[4]:match('^sim0 INQUIRY bytes=36 %-> GOOD [%d.]+ ms$'), lines[4])
  end)

  it('sees the asynchronous completions of the inner handler', function()
    local d = assert(dev { inner = 'slow', inner_options = { delay = 0.05 } })
    local ids = {}
    for i = 1, 4 do ids[i] = assert(d:prepare(T.read10(i, 1), { len = BLOCK })) end
    d:publish()
    d:run(0)
    assert.equals(0, #lines_of(path))          -- nothing completed yet
    local deadline = os.time() + 5
    while d:inflight() > 0 and os.time() <= deadline do d:run(20) end
    for i = 1, 4 do assert.equals(('\51'):rep(BLOCK), d:result(ids[i]).data) end
    d:close()
    local lines = lines_of(path)
    assert.equals(4, #lines)
    for _, line in ipairs(lines) do
      local ms = tonumber(line:match('%-> GOOD ([%d.]+) ms$'))
      assert.truthy(ms and ms >= 40, line)     -- the latency includes the delay
    end
  end)

  it('writes zeros for UNMAP around a handler that has only read and write', function()
    local d = assert(dev { inner = 'minimal' })
    local data = ('m'):rep(BLOCK * 4)
    assert.equals(0, assert(d:exec(T.write10(8, 4), { data = data })).status)
    local param = T.be(0, 2) .. T.be(16, 2) .. '\0\0\0\0' .. T.be(8, 8) ..
      T.be(4, 4) .. '\0\0\0\0'
    local r = assert(d:exec('\66\0\0\0\0\0\0\0\24\0', { data = param }))
    assert.equals(0, r.status)
    r = assert(d:exec(T.read10(8, 4), { len = #data }))
    assert.equals(('\0'):rep(#data), r.data)
    d:close()
  end)

  it('logs one command in N with sample', function()
    local d = assert(dev { inner = 'null', sample = 4 })
    for i = 1, 12 do assert(d:exec(T.read10(i, 1), { len = BLOCK })) end
    d:close()
    assert.equals(3, #lines_of(path))
  end)

  it('traces the faults of a fault device it wraps', function()
    local d = assert(dev { inner = 'fault', inner_options = { inner = 'ram',
      medium_errors = { { lba = 9, count = 1 } } } })
    local r = assert(d:exec(T.read10(8, 2), { len = 2 * BLOCK }))
    assert.equals(0x03, r.sense_key)
    d:close()
    local lines = lines_of(path)
    assert.equals(1, #lines)
    assert.truthy(lines[1]:find('MEDIUM ERROR: UNRECOVERED READ ERROR (0x11/0x00) info=9', 1, true),
      lines[1])
  end)

  it('refuses bad options of the inner handler and of its own', function()
    local d, err = dev { inner = 'ram', inner_options = { colour = 'red' } }
    assert.is_nil(d)
    assert.truthy(err:find('inner ram: unknown option "colour"', 1, true), err)
    d, err = dev { inner = 'ram', sample = 0 }
    assert.is_nil(d)
    assert.truthy(err:find('sample', 1, true), err)
  end)

  it('keeps the inner state across a reload', function()
    local d = assert(dev { inner = 'ram' })
    assert.equals(0, assert(d:exec(T.write10(5, 1), { data = ('k'):rep(BLOCK) })).status)
    assert(d:reload())
    assert.equals(('k'):rep(BLOCK), assert(d:exec(T.read10(5, 1), { len = BLOCK })).data)
    d:close()
    assert.equals(2, #lines_of(path))                -- one hook, not two
  end)

  it('logs through the daemon log without a file', function()
    local d = assert(T.device { handler = 'trace', size = 1024 * 1024,
      handler_dirs = TEST_HANDLER_DIRS, config = { inner = 'null' } })
    assert.equals(0, assert(d:exec(T.read10(0, 1), { len = BLOCK })).status)
    d:close()
  end)
end)
