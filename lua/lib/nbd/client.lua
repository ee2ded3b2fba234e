-- nbd.client: one NBD connection, driven by the worker's event loop.
--
-- A SCSI operation (read, write, flush, trim, zeroes) becomes one or more
-- NBD requests ("parts": transfers larger than the server's maximum are
-- split).  Each part takes a slot from a fixed pool; the slot number is
-- the request's handle, so a reply finds its part without a lookup table
-- that grows.  Request headers live in the slots and are built in place;
-- write payloads go out with sendmsg straight from the command's iovecs,
-- read payloads come in with readv straight into them.  Nothing on this
-- path allocates.
--
-- The socket is non-blocking.  A read watcher runs while the connection
-- is up; a write watcher only while the socket's send buffer is full.
-- When the connection is lost (the server hangs up, a protocol error, no
-- reply within `timeout`), every part in flight fails, the command fails
-- with NOT READY, LOGICAL UNIT COMMUNICATION FAILURE, and a new
-- connection is tried with exponential backoff.  The handshake of a new
-- connection runs as a coroutine resumed by fd watchers, so the worker
-- never waits for the server.
local ffi = require 'ffi'
local scsi = require 'scsi'
local sock = require 'nbd.sock'
local P = require 'nbd.proto'
local C = require('tl.abi').C

local min, floor = math.min, math.floor
local PENDING = scsi.PENDING
local put32, put64, put16, get32 = P.put32, P.put64, P.put16, P.get32
local recv, readv, sendmsg = sock.recv, sock.readv, sock.sendmsg
local EAGAIN, EINTR = sock.EAGAIN, sock.EINTR
local SEND_FLAGS = sock.MSG_NOSIGNAL + sock.MSG_DONTWAIT
local now_c = C.tl_ffi_now_ns
local function now_ns() return tonumber(now_c()) end   -- handshake only

local M = {}

-- NOT READY, LOGICAL UNIT COMMUNICATION FAILURE: the server is out of
-- reach.  Linux fails such a command at once instead of retrying it.
M.COMM_FAILURE = { name = 'NBD_COMM_FAILURE', key = 0x2, asc = 0x08, ascq = 0x00, status = 2 }
local COMM_FAILURE = M.COMM_FAILURE

local NSLOTS = 1024           -- requests in flight per device
local MAXIOV = 1024           -- UIO_MAXIOV
local SRC_CMD, SRC_BUF = 0, 1 -- where a part's payload is: the command, a buffer
local ERR_LOST = -1           -- part failed: connection lost

-- The sense for a failed part: the NBD error and what the part was doing.
local function sense_for(err, ptype)
  local S = scsi.sense
  if err == ERR_LOST or err == P.ESHUTDOWN then return COMM_FAILURE end
  if err == P.EPERM or err == 30 --[[EROFS]] then return S.WRITE_PROTECTED end
  if err == P.ENOSPC or err == 122 --[[EDQUOT]] then return S.NO_SPACE end
  if err == P.EINVAL or err == P.EOVERFLOW then return S.LBA_OUT_OF_RANGE end
  if err == P.ENOTSUP then return S.INVALID_OPCODE end
  if ptype == P.CMD_READ then return S.READ_ERROR end
  if ptype == P.CMD_WRITE or ptype == P.CMD_WRITE_ZEROES then return S.WRITE_ERROR end
  return S.HARDWARE_ERROR
end
M.sense_for = sense_for

local Client = {}
Client.__index = Client

-- opts: addr (nbd.sock.resolve), export, timeout, connect_timeout,
-- reconnect_min, reconnect_max (seconds), log(level, fmt, ...).
function M.new(opts)
  local c = setmetatable({}, Client)
  c.addr, c.export, c.log = opts.addr, opts.export or '', opts.log
  c.timeout, c.connect_timeout = opts.timeout, opts.connect_timeout
  c.reconnect_min, c.reconnect_max = opts.reconnect_min, opts.reconnect_max
  c.backoff = c.reconnect_min
  c.fd, c.up, c.closed = -1, false, false
  c.gen = 0                   -- bumped per connection: stale callbacks see it
  -- slots
  c.hdr = ffi.new('uint8_t[?]', NSLOTS * P.REQUEST_BYTES)
  c.s_cmd = ffi.new('struct tl_cmd *[?]', NSLOTS)
  c.s_at = ffi.new('uint64_t[?]', NSLOTS)
  c.s_len = ffi.new('uint32_t[?]', NSLOTS)
  c.s_type = ffi.new('uint8_t[?]', NSLOTS)
  c.s_src = ffi.new('uint8_t[?]', NSLOTS)
  c.s_used = ffi.new('uint8_t[?]', NSLOTS)       -- 1: queued or sent
  c.s_t = ffi.new('int32_t[?]', NSLOTS)        -- c.ticks when sent
  c.ticks = 0                 -- seconds, counted by the 1 s timer: requests
                              -- are stamped without a clock call
  c.free = ffi.new('int32_t[?]', NSLOTS)
  for i = 0, NSLOTS - 1 do
    c.free[i] = NSLOTS - 1 - i
    local h = c.hdr + i * P.REQUEST_BYTES
    put32(h, P.REQUEST_MAGIC)
    put32(h + 8, 0)
    put32(h + 12, i)          -- the handle: the slot number
  end
  c.nfree = NSLOTS
  -- parts left and first error, per command (cmd.id; 0 is the library's
  -- scratch command, which serves one multi-step command at a time)
  c.parts = ffi.new('int32_t[65536]')
  c.perr = ffi.new('int32_t[65536]')
  c.ptype = ffi.new('uint8_t[65536]')
  -- send queue (slot numbers) and how much of its head has gone out
  c.q = ffi.new('int32_t[?]', NSLOTS)
  c.qhead, c.qlen, c.qsent = 0, 0, 0
  c.siov = ffi.new('struct tl_nbd_iovec[?]', MAXIOV)
  c.msg = ffi.new('struct tl_nbd_msghdr')
  c.msg.iov = c.siov
  -- receive state: a reply header, then (reads) its payload
  c.rxh = ffi.new('uint8_t[?]', P.REPLY_BYTES)
  c.rx_got, c.rx_slot, c.rx_done = 0, -1, 0
  c.riov = ffi.new('struct tl_nbd_iovec[?]', MAXIOV)
  -- payload buffer for parts that do not come from a command (WRITE SAME)
  c.buf, c.buf_bytes = nil, 0
  c.stats = { requests = 0, replies = 0, errors = 0, connects = 0,
    lost = 0, aborted = 0, busy = 0 }
  return c
end

------------------------------------------------------------------------
-- Iovecs for bytes [at, at+len) of a command's data, or of c.buf.
local function cmd_iov(iov, n, cmd, at, len)
  local i, cnt = 0, cmd.iov_cnt
  while i < cnt and at >= tonumber(cmd.iov[i].len) do
    at = at - tonumber(cmd.iov[i].len)
    i = i + 1
  end
  while len > 0 and i < cnt and n < MAXIOV do
    local take = min(tonumber(cmd.iov[i].len) - at, len)
    iov[n].base = cmd.iov[i].base + at
    iov[n].len = take
    n, len, at, i = n + 1, len - take, 0, i + 1
  end
  return n
end

local function payload_iov(c, iov, n, slot, skip, len)
  if c.s_src[slot] == SRC_BUF then
    iov[n].base = c.buf + tonumber(c.s_at[slot]) + skip
    iov[n].len = len
    return n + 1
  end
  return cmd_iov(iov, n, c.s_cmd[slot], tonumber(c.s_at[slot]) + skip, len)
end

------------------------------------------------------------------------
-- Completion.

local function free_slot(c, slot)
  c.s_used[slot] = 0
  c.s_cmd[slot] = nil
  c.free[c.nfree] = slot
  c.nfree = c.nfree + 1
end

-- A part ended with err (0: fine).  The last part of an operation ends
-- the operation: dev:done(cmd[, sense]).
local function part_done(c, dev, slot, err)
  local cmd = c.s_cmd[slot]
  local key = cmd.id
  free_slot(c, slot)
  if err ~= 0 then
    c.stats.errors = c.stats.errors + 1
    if c.perr[key] == 0 then c.perr[key] = err end
  end
  local left = c.parts[key] - 1
  c.parts[key] = left
  if left > 0 then return end
  local e = c.perr[key]
  if e == 0 then return dev:done(cmd) end
  c.perr[key] = 0
  return dev:done(cmd, sense_for(e, c.ptype[key]))
end

------------------------------------------------------------------------
-- Connection loss and reconnecting.

local connect_async

local function stop_watchers(c, dev)
  if c.rwatch then dev:cancel(c.rwatch); c.rwatch = nil end
  if c.wwatch then dev:cancel(c.wwatch); c.wwatch = nil end
  if c.tick then dev:cancel(c.tick); c.tick = nil end
end

-- The connection is gone: fail everything in flight, try again later.
local function lost(c, dev, why)
  if not c.up then return end
  c.up = false
  c.gen = c.gen + 1
  c.stats.lost = c.stats.lost + 1
  stop_watchers(c, dev)
  sock.close(c.fd)
  c.fd = -1
  c.qhead, c.qlen, c.qsent = 0, 0, 0
  c.rx_got, c.rx_slot, c.rx_done = 0, -1, 0
  local n = 0
  for slot = 0, NSLOTS - 1 do
    if c.s_used[slot] ~= 0 then
      n = n + 1
      part_done(c, dev, slot, ERR_LOST)
    end
  end
  c.log('warn', 'connection to %s lost (%s): %d requests failed; reconnecting in %.1f s',
    c.addr.text, why, n, c.backoff)
  c.retry = dev:after(c.backoff, function(d) c.retry = nil; connect_async(c, d) end)
end

------------------------------------------------------------------------
-- Sending.

local function want_write(c, dev, on)
  if on and not c.wwatch then
    local gen = c.gen
    c.wwatch = dev:watch(c.fd, false, true, function(d)
      if c.gen == gen then c:pump(d) end
    end)
  elseif not on and c.wwatch then
    dev:cancel(c.wwatch)
    c.wwatch = nil
  end
end

-- Send what the queue holds, as far as the socket takes it.
function Client:pump(dev)
  while self.qlen > 0 and self.up do
    local slot = self.q[self.qhead]
    local sent = self.qsent
    local plen = self.s_type[slot] == P.CMD_WRITE and self.s_len[slot] or 0
    local total = P.REQUEST_BYTES + plen
    local iov, n = self.siov, 0
    if sent < P.REQUEST_BYTES then
      iov[0].base = self.hdr + slot * P.REQUEST_BYTES + sent
      iov[0].len = P.REQUEST_BYTES - sent
      n = 1
      if plen > 0 then n = payload_iov(self, iov, 1, slot, 0, plen) end
    else
      local skip = sent - P.REQUEST_BYTES
      n = payload_iov(self, iov, 0, slot, skip, plen - skip)
    end
    self.msg.iovlen = n
    local r = sendmsg(self.fd, self.msg, SEND_FLAGS)
    if r < 0 then
      local e = ffi.errno()
      if e == EAGAIN then return want_write(self, dev, true) end
      if e ~= EINTR then return lost(self, dev, 'send: ' .. sock.errstr(e)) end
    else
      sent = sent + tonumber(r)
      if sent < total then
        -- the send buffer is full (or more than MAXIOV pieces): go on
        -- when the socket is writable again
        self.qsent = sent
        return want_write(self, dev, true)
      else
        self.qsent = 0
        self.qhead = (self.qhead + 1) % NSLOTS
        self.qlen = self.qlen - 1
      end
    end
  end
  if self.up then want_write(self, dev, false) end
end

-- Start an operation of ptype on [off, off+len), payload from cmd at `at`
-- (or, when src is SRC_BUF, the same bytes of self.buf from `at` for
-- every part), split into parts of at most `chunk` bytes.  Returns PENDING, or nil and a sense when it cannot start.
function Client:submit(dev, cmd, ptype, flags, off, len, at, src, chunk)
  if not self.up then return nil, COMM_FAILURE end
  local nparts = len > 0 and math.ceil(len / chunk) or 1
  if nparts > self.nfree then
    self.stats.busy = self.stats.busy + 1
    return nil, scsi.sense.TASK_SET_FULL
  end
  local key = cmd.id
  self.parts[key] = nparts
  self.perr[key] = 0
  self.ptype[key] = ptype
  local t = self.ticks
  for i = 0, nparts - 1 do
    local plen = min(chunk, len - i * chunk)
    if len == 0 then plen = 0 end
    self.nfree = self.nfree - 1
    local slot = self.free[self.nfree]
    local h = self.hdr + slot * P.REQUEST_BYTES
    put16(h + 4, flags)
    put16(h + 6, ptype)
    put64(h + 16, off + i * chunk)
    put32(h + 24, plen)
    self.s_cmd[slot] = cmd
    self.s_at[slot] = src == SRC_BUF and at or at + i * chunk
    self.s_len[slot] = plen
    self.s_type[slot] = ptype
    self.s_src[slot] = src or SRC_CMD
    self.s_used[slot] = 1
    self.s_t[slot] = t
    self.q[(self.qhead + self.qlen) % NSLOTS] = slot
    self.qlen = self.qlen + 1
  end
  self.stats.requests = self.stats.requests + nparts
  if not self.wwatch then self:pump(dev) end
  return PENDING
end
M.SRC_BUF = SRC_BUF

-- A payload buffer of at least `bytes` that parts can send from.
function Client:payload_buffer(bytes)
  if self.buf_bytes < bytes then
    self.buf = ffi.new('uint8_t[?]', bytes)
    self.buf_bytes = bytes
  end
  return self.buf
end

------------------------------------------------------------------------
-- Receiving.

local function protocol_error(c, dev, what)
  return lost(c, dev, 'protocol error: ' .. what)
end

-- One reply header is complete: find its part.
local function got_header(c, dev)
  local h = c.rxh
  c.rx_got = 0
  if get32(h) ~= P.SIMPLE_REPLY_MAGIC then
    return protocol_error(c, dev, ('reply magic 0x%08x'):format(get32(h)))
  end
  local err, slot = get32(h + 4), get32(h + 12)
  if get32(h + 8) ~= 0 or slot >= NSLOTS or c.s_used[slot] == 0 then
    return protocol_error(c, dev, 'reply to a request never sent')
  end
  c.stats.replies = c.stats.replies + 1
  if err == 0 and c.s_type[slot] == P.CMD_READ and c.s_len[slot] > 0 then
    c.rx_slot, c.rx_done = slot, 0     -- the payload follows
    return
  end
  return part_done(c, dev, slot, err)
end

local function io_failed(c, dev, r, what)
  if r == 0 then return lost(c, dev, 'the server closed the connection') end
  local e = ffi.errno()
  if e == EAGAIN then return 'wait' end
  if e == EINTR then return nil end
  return lost(c, dev, what .. ': ' .. sock.errstr(e))
end

-- The socket is readable: take every reply that is there.
function Client:on_readable(dev)
  local gen = self.gen
  while self.up and self.gen == gen do
    local slot = self.rx_slot
    if slot < 0 then
      local r = recv(self.fd, self.rxh + self.rx_got, P.REPLY_BYTES - self.rx_got, sock.MSG_DONTWAIT)
      if r <= 0 then
        if io_failed(self, dev, r, 'recv') == 'wait' then return end
      else
        self.rx_got = self.rx_got + tonumber(r)
        if self.rx_got == P.REPLY_BYTES then got_header(self, dev) end
      end
    else
      local len = self.s_len[slot]
      local n = cmd_iov(self.riov, 0, self.s_cmd[slot],
        tonumber(self.s_at[slot]) + self.rx_done, len - self.rx_done)
      local r = readv(self.fd, self.riov, n)
      if r <= 0 then
        if io_failed(self, dev, r, 'readv') == 'wait' then return end
      else
        self.rx_done = self.rx_done + tonumber(r)
        if self.rx_done == len then
          self.rx_slot = -1
          part_done(self, dev, slot, 0)
        end
      end
    end
  end
end

-- Every second while connected: a request without a reply for longer
-- than `timeout` means the server is stuck; start over.
local function check_timeouts(c, dev)
  c.ticks = c.ticks + 1
  if not c.up or c.timeout <= 0 then return end
  -- stamps are whole seconds: a request is given up between timeout and
  -- timeout + 1 s after it was sent
  local limit = c.ticks - c.timeout
  for slot = 0, NSLOTS - 1 do
    if c.s_used[slot] ~= 0 and c.s_t[slot] < limit then
      return lost(c, dev, ('no reply within %g s'):format(c.timeout))
    end
  end
end

------------------------------------------------------------------------
-- Connecting.

-- The handshake's io over a non-blocking fd, inside a coroutine: yields
-- 'r' or 'w' when it has to wait.
local function coroutine_io(fd)
  local buf = ffi.new('uint8_t[65536]')
  local io = {}
  function io.read(n)
    local got = 0
    while got < n do
      local r = recv(fd, buf + got, n - got, sock.MSG_DONTWAIT)
      if r > 0 then got = got + tonumber(r)
      elseif r == 0 then error('the server closed the connection during the handshake', 0)
      else
        local e = ffi.errno()
        if e == EAGAIN then coroutine.yield('r')
        elseif e ~= EINTR then error('recv: ' .. sock.errstr(e), 0) end
      end
    end
    return ffi.string(buf, n)
  end
  function io.write(s)
    local off = 0
    while off < #s do
      local r = sock.send(fd, ffi.cast('const char *', s) + off, #s - off, SEND_FLAGS)
      if r >= 0 then off = off + tonumber(r)
      else
        local e = ffi.errno()
        if e == EAGAIN then coroutine.yield('w')
        elseif e ~= EINTR then error('send: ' .. sock.errstr(e), 0) end
      end
    end
  end
  return io
end

-- A coroutine that connects and shakes hands; it yields 'r'/'w' to wait
-- and returns the export's info.
local function session(c)
  return coroutine.create(function()
    local fd, done = sock.connect(c.addr)
    if not fd then error(done, 0) end
    c.pending_fd = fd
    if not done then
      coroutine.yield('w')
      local ok, err = sock.connect_result(fd, c.addr)
      if not ok then error(err, 0) end
    end
    return P.handshake(coroutine_io(fd), c.export)
  end)
end

local function abandon(c)
  if c.pending_fd then sock.close(c.pending_fd); c.pending_fd = nil end
end

-- What the export must offer for this device (set by the handler).
local function accept(c, info)
  if c.check then
    local ok, why = c.check(info)
    if not ok then return nil, why end
  end
  return true
end

-- The connection is ready: start serving.
local function went_up(c, dev, info)
  c.fd, c.pending_fd = c.pending_fd, nil
  c.info = info
  c.up = true
  c.gen = c.gen + 1
  c.backoff = c.reconnect_min
  c.stats.connects = c.stats.connects + 1
  local gen = c.gen
  c.rwatch = dev:watch(c.fd, true, false, function(d)
    if c.gen == gen then c:on_readable(d) end
  end)
  c.tick = dev:every(1, function(d) check_timeouts(c, d) end)
  c.log('info', 'connected to %s, export %q: %d bytes, flags 0x%x (%s)', c.addr.text,
    c.export, info.size, info.flags, info.how)
end

-- Blocking connect and handshake, for open(): the device does not exist
-- for the kernel yet, so waiting here holds nothing up.
function Client:connect_now()
  local co = session(self)
  local deadline = now_ns() + self.connect_timeout * 1e9
  while true do
    local ok, res = coroutine.resume(co)
    if not ok then abandon(self); return nil, res end
    if coroutine.status(co) == 'dead' then
      local good, why = accept(self, res)
      if not good then abandon(self); return nil, why end
      self.ready_info = res
      return res
    end
    local left = floor((deadline - now_ns()) / 1e6)
    if left <= 0 or not sock.wait(self.pending_fd, res, left) then
      abandon(self)
      return nil, ('%s: no answer within %g s'):format(self.addr.text, self.connect_timeout)
    end
  end
end

-- Start serving with the connection connect_now made.
function Client:start(dev)
  went_up(self, dev, self.ready_info)
  self.ready_info = nil
end

-- Asynchronous connect and handshake on the worker's loop.
local function retry_later(c, dev, why)
  abandon(c)
  c.log('warn', 'reconnecting to %s failed: %s; next try in %.1f s', c.addr.text, why, c.backoff)
  c.retry = dev:after(c.backoff, function(d) c.retry = nil; connect_async(c, d) end)
  c.backoff = min(c.backoff * 2, c.reconnect_max)
end

connect_async = function(c, dev)
  if c.closed or c.up then return end
  local co = session(c)
  local attempt = {}
  c.attempt = attempt
  local watch, timer
  local function finish()
    if watch then dev:cancel(watch); watch = nil end
    if timer then dev:cancel(timer); timer = nil end
    c.attempt = nil
  end
  local function step(d)
    if c.attempt ~= attempt then return end
    if watch then d:cancel(watch); watch = nil end
    local ok, res = coroutine.resume(co)
    if not ok then finish(); return retry_later(c, d, res) end
    if coroutine.status(co) == 'dead' then
      finish()
      local good, why = accept(c, res)
      if not good then return retry_later(c, d, why) end
      return went_up(c, d, res)
    end
    watch = d:watch(c.pending_fd, res == 'r', res == 'w', step)
  end
  timer = dev:after(c.connect_timeout, function(d)
    if c.attempt ~= attempt then return end
    timer = nil
    finish()
    retry_later(c, d, ('no answer within %g s'):format(c.connect_timeout))
  end)
  step(dev)
end

-- The device closes (removed, or reopened with new options): hang up.
-- Commands still waiting for a reply fail, so none is left hanging.
function Client:close(dev)
  self.closed = true
  stop_watchers(self, dev)
  if self.retry then dev:cancel(self.retry); self.retry = nil end
  abandon(self)
  self.up = false
  if self.fd >= 0 then
    -- NBD_CMD_DISC, a polite goodbye, unless half a request is out (the
    -- server would read it as part of that one); a full socket drops it
    if self.qsent == 0 then
      local h = ffi.new('uint8_t[28]')
      put32(h, P.REQUEST_MAGIC)
      put16(h + 6, P.CMD_DISC)
      sock.send(self.fd, h, 28, SEND_FLAGS)
    end
    sock.close(self.fd)
    self.fd = -1
  end
  self.qhead, self.qlen, self.qsent = 0, 0, 0
  for slot = 0, NSLOTS - 1 do
    if self.s_used[slot] ~= 0 then part_done(self, dev, slot, ERR_LOST) end
  end
end

M.NSLOTS = NSLOTS
return M
