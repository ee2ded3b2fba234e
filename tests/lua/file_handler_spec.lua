-- The file handler, with the C fast path and without it.
local T = require 'tl.testing'

local function tmpfile(size)
  local path = os.tmpname()
  local f = assert(io.open(path, 'wb'))
  if size > 0 then f:seek('set', size - 1); f:write('\0') end
  f:close()
  return path
end

local function file_bytes(path, off, len)
  local f = assert(io.open(path, 'rb'))
  f:seek('set', off)
  local s = f:read(len)
  f:close()
  return s
end

for _, fast in ipairs { true, false } do
  describe('file handler (fast path ' .. (fast and 'on' or 'off') .. ')', function()
    local path, d
    before_each(function()
      path = tmpfile(1024 * 1024)
      d = assert(T.device { handler = 'file', size = 1024 * 1024,
        config = { path = path, fast = fast } })
    end)
    after_each(function()
      d:close()
      os.remove(path)
    end)

    it('writes through to the file and reads it back', function()
      local data = ('tcmu-lua'):rep(512 * 4 / 8)
      local r = assert(d:exec(T.write10(100, 4), { data = data }))
      assert.equals(0, r.status)
      assert.equals(data, file_bytes(path, 100 * 512, #data))
      r = assert(d:exec(T.read16(100, 4), { len = #data }))
      assert.equals(0, r.status)
      assert.equals(data, r.data)
      local st = d:stats()
      if fast then
        assert.equals(2, st.fast)
      else
        assert.equals(0, st.fast)
      end
    end)

    it('leaves out-of-range commands to the library', function()
      local r = assert(d:exec(T.read10(2047, 2), { len = 1024 }))
      assert.equals(2, r.status)
      assert.equals(0x05, r.sense_key)
      assert.equals(0x21, r.asc)
      assert.equals(0, d:stats().fast)
    end)

    it('handles a batch of 32 mixed commands', function()
      local ids = {}
      for i = 0, 31 do
        local payload = string.char(65 + i):rep(512)
        ids[i] = assert(d:prepare(T.write10(i, 1), { data = payload }))
      end
      d:publish()
      d:run(0)
      for i = 0, 31 do assert.equals(0, d:result(ids[i]).status) end
      for i = 0, 31 do
        ids[i] = assert(d:prepare(T.read10(i, 1), { len = 512 }))
      end
      d:publish()
      d:run(0)
      for i = 0, 31 do
        assert.equals(string.char(65 + i):rep(512), d:result(ids[i]).data)
      end
    end)
  end)
end
