-- The file handler, with the C fast path and without it.
local T = require 'tl.testing'
local ffi = require 'ffi'
pcall(ffi.cdef, 'int truncate(const char *path, int64_t length);')
local sys = require 'tl.sys'

if not pcall(ffi.typeof, 'struct tl_file_spec_marker') then
  ffi.cdef [[
    struct tl_file_spec_marker { int unused; };
    int dup2(int oldfd, int newfd);
    int64_t readlink(const char *path, char *buf, size_t size);
  ]]
end

-- The descriptor the handler (in this process) holds on path.
local function handler_fd(path)
  local buf = ffi.new('char[4096]')
  for fd = 3, 1023 do
    local n = ffi.C.readlink('/proc/self/fd/' .. fd, buf, 4096)
    if n > 0 and ffi.string(buf, n) == path then return fd end
  end
end

-- Put another file under the handler's descriptor: /dev/full makes every
-- write fail with ENOSPC (a full file system), a descriptor opened for
-- the other direction makes reads or writes fail with EBADF (an I/O
-- error the handler has no special case for).
local function replace_fd(path, with, flags)
  local fd = assert(handler_fd(path), 'handler descriptor not found')
  local other = ffi.C.open(with, flags)
  assert(other >= 0, with)
  assert(ffi.C.dup2(other, fd) == fd)
  ffi.C.close(other)
end

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

-- SYNCHRONIZE CACHE(10): LBA, number of blocks (0: to the end).
local function sync10(lba, n, byte1)
  return string.char(0x35, byte1 or 0, math.floor(lba / 2^24) % 256,
    math.floor(lba / 2^16) % 256, math.floor(lba / 2^8) % 256, lba % 256,
    0, math.floor(n / 256) % 256, n % 256, 0)
end

-- The three ways a file device serves READ/WRITE: the C fast path with
-- io_uring (many commands in flight), the C fast path doing its I/O
-- synchronously (no io_uring), and Lua.
local modes = {
  { name = 'fast path, io_uring', fast = true },
  { name = 'fast path, synchronous', fast = true, no_uring = true },
  { name = 'Lua', fast = false },
}

for _, mode in ipairs(modes) do
  local fast = mode.fast
  describe('file handler (' .. mode.name .. ')', function()
    local path, d
    before_each(function()
      path = tmpfile(1024 * 1024)
      d = assert(T.device { handler = 'file', size = 1024 * 1024,
        no_uring = mode.no_uring, config = { path = path, fast = fast } })
    end)
    after_each(function()
      if d then d:close() end
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

    it('fails writes on a full file system with SPACE ALLOCATION FAILED', function()
      replace_fd(path, '/dev/full', sys.O_RDWR)
      local r = assert(d:exec(T.write10(8, 2), { data = ('x'):rep(1024) }))
      assert.equals(2, r.status)
      assert.equals(0x07, r.sense_key)   -- DATA PROTECT
      assert.equals(0x27, r.asc)
      assert.equals(0x07, r.ascq)
      assert.equals(1, d:stats().write.errors)
      r = assert(d:exec(T.read10(8, 2), { len = 1024 }))
      assert.equals(0, r.status)
    end)

    it('fails writes it cannot do with WRITE ERROR', function()
      replace_fd(path, path, sys.O_RDONLY)
      local r = assert(d:exec(T.write16(8, 2), { data = ('x'):rep(1024) }))
      assert.equals(2, r.status)
      assert.equals(0x03, r.sense_key)   -- MEDIUM ERROR
      assert.equals(0x0c, r.asc)
      assert.equals(0x00, r.ascq)
      r = assert(d:exec(T.read16(8, 2), { len = 1024 }))
      assert.equals(0, r.status)
    end)

    it('fails reads it cannot do with UNRECOVERED READ ERROR', function()
      replace_fd(path, path, 1 --[[O_WRONLY]])
      local r = assert(d:exec(T.read10(8, 2), { len = 1024 }))
      assert.equals(2, r.status)
      assert.equals(0x03, r.sense_key)
      assert.equals(0x11, r.asc)
      assert.equals(0x00, r.ascq)
      r = assert(d:exec(T.write10(8, 2), { data = ('y'):rep(1024) }))
      assert.equals(0, r.status)
      assert.equals(('y'):rep(1024), file_bytes(path, 8 * 512, 1024))
    end)

    it('handles a batch of 32 mixed commands', function()
      local ids = {}
      for i = 0, 31 do
        local payload = string.char(65 + i):rep(512)
        ids[i + 1] = assert(d:prepare(T.write10(i, 1), { data = payload }))
      end
      d:publish()
      for _, r in ipairs(assert(d:wait_all(ids))) do assert.equals(0, r.status) end
      for i = 0, 31 do
        ids[i + 1] = assert(d:prepare(T.read10(i, 1), { len = 512 }))
      end
      d:publish()
      local res = assert(d:wait_all(ids))
      for i = 0, 31 do
        assert.equals(string.char(65 + i):rep(512), res[i + 1].data)
      end
    end)

    it('keeps 200 commands in flight and completes every one', function()
      local ids = {}
      for i = 0, 199 do
        ids[#ids + 1] = assert(d:prepare(T.write10(i * 8, 8),
          { data = string.char(i % 256):rep(4096) }))
      end
      d:publish()
      for _, r in ipairs(assert(d:wait_all(ids))) do assert.equals(0, r.status) end
      ids = {}
      for i = 199, 0, -1 do
        ids[#ids + 1] = assert(d:prepare(T.read10(i * 8, 8), { len = 4096 }))
      end
      d:publish()
      local res = assert(d:wait_all(ids))
      for k, r in ipairs(res) do
        assert.equals(string.char((200 - k) % 256):rep(4096), r.data)
      end
      assert.equals(0, d:inflight())
      assert.equals(fast and 400 or 0, d:stats().fast)
    end)

    it('answers SYNCHRONIZE CACHE over the device, and rejects a bad range', function()
      local r = assert(d:exec(sync10(0, 0)))
      assert.equals(0, r.status)
      r = assert(d:exec(sync10(10, 2038, 0x02)))  -- IMMED
      assert.equals(0, r.status)
      assert.equals(fast and 2 or 0, d:stats().fast)
      r = assert(d:exec(sync10(2040, 9)))
      assert.equals(2, r.status)
      assert.equals(0x05, r.sense_key)
      assert.equals(0x21, r.asc)
      assert.equals(fast and 2 or 0, d:stats().fast)
    end)

    it('keeps 64 FUA writes in flight, durable before they complete', function()
      local ids = {}
      for i = 0, 63 do
        local cdb = T.write10(i * 8, 8)
        cdb = cdb:sub(1, 1) .. '\8' .. cdb:sub(3)     -- FUA
        ids[#ids + 1] = assert(d:prepare(cdb, { data = string.char(i):rep(4096) }))
      end
      d:publish()
      for _, r in ipairs(assert(d:wait_all(ids))) do assert.equals(0, r.status) end
      for i = 0, 63, 9 do
        assert.equals(string.char(i):rep(4096), file_bytes(path, i * 4096, 4096))
      end
      local st = d:stats()
      assert.equals(fast and 64 or 0, st.fast)
      -- A durable write must wait, so with io_uring every one went there.
      assert.equals(mode.fast and not mode.no_uring and d:async() and 64 or 0,
        st.fast_async)
    end)

    it('gives a short read back to Lua, which fills past the end with zeros', function()
      local data = ('x'):rep(1024)
      assert.equals(0, assert(d:exec(T.write10(2046, 2), { data = data })).status)
      assert.equals(0, ffi.C.truncate(path, 2046 * 512 + 100))
      local before = d:stats().fast
      local r = assert(d:exec(T.read10(2046, 2), { len = 1024 }))
      assert.equals(0, r.status)
      assert.equals(('x'):rep(100) .. ('\0'):rep(924), r.data)
      assert.equals(before, d:stats().fast)  -- Lua served it, not C
    end)

    it('closes cleanly with commands still in flight', function()
      for i = 0, 63 do
        assert(d:prepare(T.read10(i * 16, 16), { len = 8192 }))
      end
      d:publish()
      d:close()   -- the device goes away under its own I/O
      d = nil
    end)
  end)
end

describe('file handler on a worker with io_uring', function()
  it('runs the fast path asynchronously where the kernel allows it', function()
    local path = tmpfile(65536)
    local d = assert(T.device { handler = 'file', size = 65536,
      config = { path = path } })
    local sync = assert(T.device { handler = 'file', size = 65536,
      no_uring = true, config = { path = path } })
    assert.is_false(sync:async())
    -- io_uring can be switched off on a host (kernel.io_uring_disabled):
    -- then the fallback is what runs, and the synchronous specs cover it.
    local f = io.open('/proc/sys/kernel/io_uring_disabled')
    local disabled = f and tonumber(f:read('*l')) or 0
    if f then f:close() end
    assert.equals(disabled == 0, d:async())
    d:close()
    sync:close()
    os.remove(path)
  end)
end)
