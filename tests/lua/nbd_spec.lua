-- The nbd handler against real servers: qemu-nbd (raw and qcow2 images,
-- Unix socket and TCP on loopback) and, for what qemu-nbd cannot be made
-- to do on demand (errors, stalls, old handshakes, request flags), a small
-- NBD server written here that speaks the real protocol from a forked
-- process.
local ffi = require 'ffi'
local bit = require 'bit'
local T = require 'tl.testing'

if not pcall(ffi.typeof, 'struct tl_nbdspec_marker') then
  ffi.cdef [[
    struct tl_nbdspec_marker { int unused; };
    int tl_nbdspec_socket(int domain, int type, int protocol) __asm__("socket");
    int tl_nbdspec_bind(int fd, const void *addr, uint32_t len) __asm__("bind");
    int tl_nbdspec_listen(int fd, int backlog) __asm__("listen");
    int tl_nbdspec_accept(int fd, void *addr, void *len) __asm__("accept");
    int64_t tl_nbdspec_read(int fd, void *buf, size_t n) __asm__("read");
    int64_t tl_nbdspec_write(int fd, const void *buf, size_t n) __asm__("write");
    int tl_nbdspec_close(int fd) __asm__("close");
    int tl_nbdspec_fork(void) __asm__("fork");
    void tl_nbdspec_exit(int code) __asm__("_exit");
    int tl_nbdspec_kill(int pid, int sig) __asm__("kill");
    int tl_nbdspec_waitpid(int pid, int *status, int options) __asm__("waitpid");
    int tl_nbdspec_unlink(const char *path) __asm__("unlink");
  ]]
end
local C = ffi.C

local function sh(cmd)
  local r = os.execute(cmd .. ' >/dev/null 2>&1')
  return r == true or r == 0
end

local function out(cmd)
  local p = assert(io.popen('( ' .. cmd .. ' ) 2>&1'))
  local s = p:read('*a')
  p:close()
  return s
end

local have_qemu = os.getenv('TL_NO_QEMU') == nil and sh('qemu-nbd --version') and sh('qemu-img --version')
local MB, BLOCK = 1024 * 1024, 512
local SIZE = 16 * MB

local function pattern(len, seed)
  local parts = {}
  for i = 0, len / 16 - 1 do
    parts[#parts + 1] = ('%08x%07d%s'):format(seed, i % 9999999, string.char(65 + (seed + i) % 26))
  end
  return table.concat(parts)
end

local function read_file(path, off, len)
  local f = assert(io.open(path, 'rb'))
  f:seek('set', off)
  local s = f:read(len) or ''
  f:close()
  return s
end

local function lines_of(path)
  local t = {}
  local f = io.open(path, 'r')
  if not f then return t end
  for l in f:lines() do t[#t + 1] = l end
  f:close()
  return t
end

------------------------------------------------------------------------
-- A test NBD server in a child process, on a Unix socket.
--   opts.size, opts.flags (transmission flags), opts.export (name)
--   opts.no_go: answer NBD_OPT_GO with NBD_REP_ERR_UNSUP (an old server)
--   opts.eio_read: a byte offset whose READ fails with EIO
--   opts.stall_after: reply to this many requests, then read and log only
--   opts.reverse: answer requests in batches of this many, last first
--   opts.log: file that gets one line per request: TYPE FLAGS OFFSET LENGTH
local function be(n, w) return T.be(n, w) end
local function num(s, at, n)
  local v = 0
  for i = at, at + n - 1 do v = v * 256 + s:byte(i) end
  return v
end

local function serve(lfd, o)
  local function readn(fd, n)
    local buf = ffi.new('uint8_t[?]', math.max(n, 1))
    local got = 0
    while got < n do
      local r = C.tl_nbdspec_read(fd, buf + got, n - got)
      if r <= 0 then return nil end
      got = got + tonumber(r)
    end
    return ffi.string(buf, n)
  end
  local function put(fd, s) C.tl_nbdspec_write(fd, s, #s) end
  local store = ffi.new('uint8_t[?]', o.size)
  local logf = o.log and io.open(o.log, 'a')
  local replied = 0
  while true do
    local fd = C.tl_nbdspec_accept(lfd, nil, nil)
    if fd < 0 then return end
    put(fd, 'NBDMAGICIHAVEOPT' .. be(3, 2))
    local cflags = readn(fd, 4)
    local zeroes = cflags and bit.band(num(cflags, 1, 4), 2) == 0
    local go = false
    while cflags do
      local h = readn(fd, 16)
      if not h then break end
      local opt, len = num(h, 9, 4), num(h, 13, 4)
      local data = len > 0 and readn(fd, len) or ''
      local function rep(rtype, body)
        put(fd, '\0\3\232\137\4\85\101\169' .. be(opt, 4) .. be(rtype, 4) .. be(#body, 4) .. body)
      end
      if opt == 7 and not o.no_go then
        local name = data:sub(5, 4 + num(data, 1, 4))
        if name ~= (o.export or '') then
          rep(0x80000006, 'no such export')
        else
          rep(3, be(0, 2) .. be(o.size, 8) .. be(o.flags, 2))
          rep(1, '')
          go = true
          break
        end
      elseif opt == 1 then
        put(fd, be(o.size, 8) .. be(o.flags, 2) .. (zeroes and ('\0'):rep(124) or ''))
        go = true
        break
      else
        rep(0x80000001, '')
      end
    end
    local held = {}
    while go do
      local h = readn(fd, 28)
      if not h then break end
      local flags, ty, handle = num(h, 5, 2), num(h, 7, 2), h:sub(9, 16)
      local off, len = num(h, 17, 8), num(h, 25, 4)
      if logf then logf:write(('%d %d %d %d\n'):format(ty, flags, off, len)); logf:flush() end
      if ty == 2 then break end
      local payload = ty == 1 and readn(fd, len) or nil
      if ty == 1 and not payload then break end
      local err, data = 0, nil
      if ty == 0 then
        if o.eio_read and off <= o.eio_read and o.eio_read < off + len then err = 5
        else data = ffi.string(store + off, len) end
      elseif ty == 1 then ffi.copy(store + off, payload, len)
      elseif ty == 4 or ty == 6 then ffi.fill(store + off, len)
      end
      local reply = be(0x67446698, 4) .. be(err, 4) .. handle .. (data or '')
      if not o.stall_after or replied < o.stall_after then
        replied = replied + 1
        if o.reverse then
          held[#held + 1] = reply
          if #held == o.reverse then
            for i = #held, 1, -1 do put(fd, held[i]) end
            held = {}
          end
        else
          put(fd, reply)
        end
      end
    end
    C.tl_nbdspec_close(fd)
  end
end

local function fake_server(path, o)
  o.size = o.size or SIZE
  o.flags = o.flags or (1 + 4 + 8 + 32 + 64)   -- flags, flush, FUA, trim, zeroes
  C.tl_nbdspec_unlink(path)
  local lfd = C.tl_nbdspec_socket(1, 1 + 524288, 0)
  assert(lfd >= 0)
  local sa = ffi.new('uint8_t[110]')
  sa[0] = 1
  ffi.copy(sa + 2, path)
  assert(C.tl_nbdspec_bind(lfd, sa, 2 + #path + 1) == 0, 'bind ' .. path)
  assert(C.tl_nbdspec_listen(lfd, 4) == 0)
  io.stdout:flush(); io.stderr:flush()
  local pid = C.tl_nbdspec_fork()
  if pid == 0 then
    pcall(serve, lfd, o)
    C.tl_nbdspec_exit(0)
  end
  C.tl_nbdspec_close(lfd)
  return pid
end

local function kill(pid)
  C.tl_nbdspec_kill(pid, 9)
  C.tl_nbdspec_waitpid(pid, nil, 0)
end

------------------------------------------------------------------------

local function wait_all(d, ids, secs)
  local res, deadline = {}, os.time() + (secs or 20)
  local left = #ids
  while left > 0 do
    d:run(0)
    for i, id in ipairs(ids) do
      if not res[i] then
        local r = d:result(id)
        if r then res[i], left = r, left - 1 end
      end
    end
    if left > 0 then
      assert(os.time() <= deadline, 'commands did not complete')
      d:run(10)
    end
  end
  return res
end

local function state_of(d, expr)
  return assert(d:eval(('local _, dev = next(require("tl.runtime").devices); '
    .. 'return require("tl.testing").serialize(%s)'):format(expr)))
end

local function stats(d)
  return loadstring('return ' .. state_of(d, 'dev.state.stats'))()
end

local function unmap_cdb(lba, n)
  local param = T.be(0, 2) .. T.be(16, 2) .. '\0\0\0\0' .. T.be(lba, 8) .. T.be(n, 4) .. '\0\0\0\0'
  return '\66\0\0\0\0\0\0\0\24\0', param
end

local function is_comm_failure(r)
  return r.status == 2 and r.sense_key == 0x2 and r.asc == 0x08 and r.ascq == 0x00
end

describe('nbd handler', function()
  local dir
  before_each(function()
    dir = out('mktemp -d -p /dev/shm nbd.XXXXXX 2>/dev/null || mktemp -d'):gsub('%s+$', '')
    assert(dir ~= '' and sh('test -d ' .. dir), dir)
  end)
  after_each(function() sh('rm -rf ' .. dir) end)

  local function dev(config, size, write_cache)
    config.reconnect_min = config.reconnect_min or 0.05
    config.reconnect_max = config.reconnect_max or 0.2
    return T.device { handler = 'nbd', size = size or SIZE, config = config,
      write_cache = write_cache }
  end

  describe('with the test server', function()
    local pid
    after_each(function() if pid then kill(pid); pid = nil end end)

    it('refuses a device it cannot reach, or bigger than the export', function()
      local d, err = dev { socket = dir .. '/nobody.sock' }
      assert.is_nil(d)
      assert.truthy(err:find('nobody.sock', 1, true), err)
      pid = fake_server(dir .. '/s', { size = SIZE / 2 })
      d, err = dev { socket = dir .. '/s' }
      assert.is_nil(d)
      assert.truthy(err:find('smaller than the device', 1, true), err)
      d, err = dev { socket = dir .. '/s', export = 'other' }
      assert.is_nil(d)
      assert.truthy(err:find('unknown export', 1, true), err)
      d, err = T.device { handler = 'nbd', size = SIZE, config = {} }
      assert.is_nil(d)
      assert.truthy(err:find('host', 1, true), err)
    end)

    it('falls back to NBD_OPT_EXPORT_NAME and moves data', function()
      pid = fake_server(dir .. '/s', { no_go = true })
      local d = assert(dev { socket = dir .. '/s' })
      local data = pattern(8 * BLOCK, 1)
      assert.equals(0, assert(d:exec(T.write10(100, 8), { data = data })).status)
      assert.equals(data, assert(d:exec(T.read10(100, 8), { len = 8 * BLOCK })).data)
      d:close()
    end)

    it('completes replies that come back in another order', function()
      local log = dir .. '/log'
      pid = fake_server(dir .. '/s', { reverse = 16, log = log })
      local d = assert(dev { socket = dir .. '/s' })
      local ids = {}
      for i = 1, 16 do
        ids[i] = assert(d:prepare(T.write10(i * 8, 8), { data = pattern(8 * BLOCK, i) }))
      end
      d:publish()
      for _, r in ipairs(wait_all(d, ids)) do assert.equals(0, r.status) end
      ids = {}
      for i = 1, 16 do ids[i] = assert(d:prepare(T.read10(i * 8, 8), { len = 8 * BLOCK })) end
      d:publish()
      for i, r in ipairs(wait_all(d, ids)) do
        assert.equals(0, r.status)
        assert.equals(pattern(8 * BLOCK, i), r.data)
      end
      -- all 16 went out before the first reply: they were in flight together
      assert.equals(32, #lines_of(log))
      d:close()
    end)

    it('sends FUA, FLUSH, TRIM or WRITE_ZEROES as the export allows', function()
      local log = dir .. '/log'
      pid = fake_server(dir .. '/s', { log = log })
      -- write cache on: only FUA and SYNCHRONIZE CACHE flush
      local d = assert(dev({ socket = dir .. '/s' }, nil, true))
      local one = pattern(BLOCK, 7)
      -- WRITE(10) with FUA: one request with NBD_CMD_FLAG_FUA, no FLUSH
      assert.equals(0, assert(d:exec('2a 08 00 00 00 10 00 00 01 00', { data = one })).status)
      -- SYNCHRONIZE CACHE(10): FLUSH
      assert.equals(0, assert(d:exec('35 00 00 00 00 00 00 00 00 00')).status)
      -- UNMAP: WRITE_ZEROES without NO_HOLE (the export can write zeros)
      local cdb, param = unmap_cdb(64, 8)
      assert.equals(0, assert(d:exec(cdb, { data = param })).status)
      -- WRITE SAME(16) of a zero block: WRITE_ZEROES with NO_HOLE
      assert.equals(0, assert(d:exec('93 00' .. ' 00 00 00 00 00 00 01 00' .. ' 00 00 00 20 00 00',
        { data = ('\0'):rep(BLOCK) })).status)
      -- WRITE SAME(16) of another block: WRITEs of the block repeated
      assert.equals(0, assert(d:exec('93 00' .. ' 00 00 00 00 00 00 02 00' .. ' 00 00 00 08 00 00',
        { data = one })).status)
      local r = assert(d:exec(T.read10(512, 8), { len = 8 * BLOCK }))
      assert.equals(one:rep(8), r.data)
      local l = lines_of(log)
      assert.same({ '1 1 8192 512', '3 0 0 0', '6 0 32768 4096', '6 2 131072 16384',
        '1 0 262144 4096', '0 0 262144 4096' }, l)
      d:close()
      kill(pid)
      -- An export with trim only: UNMAP becomes TRIM; no FUA: WRITE, then FLUSH
      os.remove(log)
      pid = fake_server(dir .. '/s', { log = log, flags = 1 + 4 + 32 })
      d = assert(dev({ socket = dir .. '/s' }, nil, true))
      assert.equals(0, assert(d:exec('2a 08 00 00 00 10 00 00 01 00', { data = one })).status)
      assert.equals(0, assert(d:exec(cdb, { data = param })).status)
      assert.same({ '1 0 8192 512', '3 0 0 0', '4 0 32768 4096' }, lines_of(log))
      d:close()
    end)

    it('makes a read-only export a write-protected disk', function()
      pid = fake_server(dir .. '/s', { flags = 1 + 2 })
      local d = assert(dev { socket = dir .. '/s' })
      local r = assert(d:exec(T.write10(0, 1), { data = pattern(BLOCK, 1) }))
      assert.equals(0x7, r.sense_key)
      assert.equals(0x27, r.asc)
      assert.equals(0, assert(d:exec(T.read10(0, 1), { len = BLOCK })).status)
      d:close()
    end)

    it('reports a server I/O error as a medium error', function()
      pid = fake_server(dir .. '/s', { eio_read = 4096 })
      local d = assert(dev { socket = dir .. '/s' })
      local r = assert(d:exec(T.read10(8, 1), { len = BLOCK }))
      assert.equals(0x3, r.sense_key)
      assert.equals(0x11, r.asc)
      assert.equals(0, assert(d:exec(T.read10(9, 1), { len = BLOCK })).status)
      d:close()
    end)

    it('fails commands in flight when the server dies, then reconnects', function()
      local log = dir .. '/log'
      pid = fake_server(dir .. '/s', { stall_after = 0, log = log })
      local d = assert(dev { socket = dir .. '/s' })
      local ids = {}
      for i = 1, 8 do ids[i] = assert(d:prepare(T.read10(i, 1), { len = BLOCK })) end
      d:publish()
      local deadline = os.time() + 10
      while #lines_of(log) < 8 do
        d:run(10)
        assert(os.time() <= deadline, 'requests did not reach the server')
      end
      kill(pid)
      pid = nil
      for _, r in ipairs(wait_all(d, ids)) do assert.is_true(is_comm_failure(r)) end
      -- while it is gone: I/O fails the same way, INQUIRY still answers
      local r = assert(d:exec(T.read10(0, 1), { len = BLOCK }))
      assert.is_true(is_comm_failure(r))
      assert.equals(0, assert(d:exec('12 00 00 00 24 00', { len = 36 })).status)
      -- it comes back: so does the disk
      pid = fake_server(dir .. '/s', {})
      deadline = os.time() + 20
      repeat
        d:run(50)
        r = assert(d:exec(T.read10(0, 1), { len = BLOCK }))
        assert(os.time() <= deadline, 'no reconnect')
      until r.status == 0
      local s = stats(d)
      assert.equals(2, s.connects)
      assert.equals(1, s.lost)
      d:close()
    end)

    it('gives up a connection whose server stops answering', function()
      pid = fake_server(dir .. '/s', { stall_after = 1 })
      local d = assert(dev { socket = dir .. '/s', timeout = 1 })
      assert.equals(0, assert(d:exec(T.read10(0, 1), { len = BLOCK })).status)
      local r = assert(d:exec(T.read10(1, 1), { len = BLOCK, timeout = 20 }))
      assert.is_true(is_comm_failure(r))
      d:close()
    end)
  end)

  if not have_qemu then
    it('against qemu-nbd', function() pending('qemu-nbd is not installed') end)
    return
  end

  describe('with qemu-nbd', function()
    local pidfile
    local function qemu_nbd(args, img)
      pidfile = dir .. '/qemu-nbd.pid'
      assert(sh(('qemu-nbd %s -t --fork --pid-file=%s %s'):format(args, pidfile, img)))
    end
    local function stop()
      if pidfile then
        sh(('kill -9 $(cat %s)'):format(pidfile))
        -- wait until it is gone, so the socket and the image are free
        sh(('while kill -0 $(cat %s) 2>/dev/null; do sleep 0.05; done'):format(pidfile))
        os.remove(pidfile)
        pidfile = nil
      end
    end
    after_each(stop)

    it('round-trips data to a raw image over a Unix socket', function()
      local img = dir .. '/disk.raw'
      assert(sh('truncate -s ' .. SIZE .. ' ' .. img))
      qemu_nbd('-f raw --discard=unmap -k ' .. dir .. '/s', img)
      local d = assert(dev { socket = dir .. '/s' })
      local data = pattern(64 * BLOCK, 3)
      assert.equals(0, assert(d:exec(T.write16(2048, 64), { data = data })).status)
      assert.equals(data, assert(d:exec(T.read16(2048, 64), { len = 64 * BLOCK })).data)
      assert.equals(0, assert(d:exec('35 00 00 00 00 00 00 00 00 00')).status)
      assert.equals(data, read_file(img, 2048 * BLOCK, #data))   -- it is in the image
      -- UNMAP: reads zeros afterwards (LBPRZ: the export writes zeros)
      local cdb, param = unmap_cdb(2048, 16)
      assert.equals(0, assert(d:exec(cdb, { data = param })).status)
      local r = assert(d:exec(T.read16(2048, 64), { len = 64 * BLOCK }))
      assert.equals(('\0'):rep(16 * BLOCK) .. data:sub(16 * BLOCK + 1), r.data)
      -- WRITE SAME(16) of a non-zero block over 3 MiB: three requests from
      -- the 1 MiB buffer that holds the block repeated
      local blk = pattern(BLOCK, 11)
      assert.equals(0, assert(d:exec('93 00' .. ' 00 00 00 00 00 00 30 00' .. ' 00 00 18 00 00 00',
        { data = blk })).status)
      r = assert(d:exec(T.read16(0x3000, 0x1800), { len = 3 * MB }))
      assert.equals(blk:rep(0x1800), r.data)
      -- a transfer bigger than one part
      local big = pattern(4 * MB, 9)
      assert.equals(0, assert(d:exec(T.write16(8192, 8192), { data = big })).status)
      assert.equals(big, assert(d:exec(T.read16(8192, 8192), { len = 4 * MB })).data)
      d:close()
    end)

    it('keeps many commands in flight on a qcow2 image over TCP', function()
      local img = dir .. '/disk.qcow2'
      assert(sh(('qemu-img create -f qcow2 %s %d'):format(img, SIZE)))
      local port = 20000 + os.time() % 20000
      qemu_nbd(('-f qcow2 -b 127.0.0.1 -p %d -x vol'):format(port), img)
      local d = assert(dev { host = '127.0.0.1', port = port, export = 'vol' })
      local N, ids = 64, {}
      for i = 1, N do
        ids[i] = assert(d:prepare(T.write10(i * 16, 16), { data = pattern(16 * BLOCK, i) }))
      end
      d:publish()
      d:run(0)
      -- one dispatch sent them all: none could have been answered before
      assert.is_true(d:inflight() > N / 2, 'only ' .. d:inflight() .. ' in flight')
      for _, r in ipairs(wait_all(d, ids)) do assert.equals(0, r.status) end
      ids = {}
      for i = 1, N do ids[i] = assert(d:prepare(T.read10(i * 16, 16), { len = 16 * BLOCK })) end
      d:publish()
      for i, r in ipairs(wait_all(d, ids)) do assert.equals(pattern(16 * BLOCK, i), r.data) end
      d:close()
      stop()
      -- what qemu-img sees is what was written
      local s = out('qemu-img check ' .. img)
      assert.truthy(s:find('No errors were found', 1, true), s)
      local raw = dir .. '/back.raw'
      assert(sh(('qemu-img convert -O raw %s %s'):format(img, raw)))
      for i = 1, N do assert.equals(pattern(16 * BLOCK, i), read_file(raw, i * 16 * BLOCK, 16 * BLOCK)) end
    end)

    it('fails I/O while qemu-nbd is down and recovers when it is back', function()
      local img = dir .. '/disk.raw'
      assert(sh('truncate -s ' .. SIZE .. ' ' .. img))
      local sock = dir .. '/s'
      qemu_nbd('-f raw -k ' .. sock, img)
      local d = assert(dev { socket = sock })
      local data = pattern(8 * BLOCK, 5)
      assert.equals(0, assert(d:exec(T.write10(0, 8), { data = data })).status)
      stop()
      local r
      local deadline = os.time() + 20
      repeat   -- the handler notices the hang-up at its next read of the socket
        r = assert(d:exec(T.read10(0, 8), { len = 8 * BLOCK }))
        assert(os.time() <= deadline)
      until r.status ~= 0
      assert.is_true(is_comm_failure(r))
      qemu_nbd('-f raw -k ' .. sock, img)
      deadline = os.time() + 20
      repeat
        d:run(50)
        r = assert(d:exec(T.read10(0, 8), { len = 8 * BLOCK }))
        assert(os.time() <= deadline, 'no reconnect')
      until r.status == 0
      assert.equals(data, r.data)
      d:close()
    end)
  end)
end)
