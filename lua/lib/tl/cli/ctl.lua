-- tl.cli.ctl: `tcmu-lua ctl`, the command line of the control socket.
--
--   tcmu-lua ctl [-s SOCKET] [--json] status | devices | stats [DEV] |
--                metrics | trace DEV | reload | log-level LEVEL
--
-- Requests and replies are one JSON object per line (host/control.h).
-- The CLI prints them for people; --json prints the raw replies.
local ffi = require 'ffi'
local json = require 'dkjson'
local decode = require 'scsi.decode'

local M = {}

M.USAGE = [[
usage: tcmu-lua ctl [-s SOCKET] [--json] COMMAND
  status              the daemon: version, uptime, workers, devices
  devices             the devices it serves
  stats [DEV]         commands, bytes, errors, latency p50/p99/p999, queue depth
  metrics             the same in Prometheus text format
  trace DEV           every command of DEV, decoded, as it completes (ctrl-c stops)
  reload              reload handler scripts and the configuration
  log-level LEVEL     error, warn, info or debug
The socket is /run/tcmu-lua.sock unless -s or $TCMU_LUA_SOCKET says otherwise.
]]

if not pcall(ffi.typeof, 'struct tl_ctl_sockaddr_un') then
  ffi.cdef [[
    struct tl_ctl_sockaddr_un { unsigned short family; char path[108]; };
    int socket(int domain, int type, int protocol);
    int connect(int fd, const void *addr, unsigned int len);
    long read(int fd, void *buf, size_t n);
    long write(int fd, const void *buf, size_t n);
    int close(int fd);
    char *strerror(int errnum);
  ]]
end
-- send() may be declared already (by another module in this state).
pcall(ffi.cdef, 'long send(int fd, const void *buf, size_t n, int flags);')
local C = ffi.C
local MSG_NOSIGNAL = 0x4000

local function connect(path)
  local fd = C.socket(1 --[[AF_UNIX]], 1 --[[SOCK_STREAM]], 0)
  if fd < 0 then return nil, ffi.string(C.strerror(ffi.errno())) end
  local sa = ffi.new('struct tl_ctl_sockaddr_un')
  sa.family = 1
  if #path >= 108 then return nil, 'socket path too long' end
  ffi.copy(sa.path, path)
  if C.connect(fd, sa, ffi.sizeof(sa)) ~= 0 then
    local errno = ffi.errno()
    local err = ffi.string(C.strerror(errno))
    C.close(fd)
    if errno == 13 --[[EACCES]] then
      return nil, ('%s: %s (the control socket is for root only)'):format(path, err)
    end
    return nil, ('%s: %s (is the daemon running with a control socket?)'):format(path, err)
  end
  local conn = { fd = fd, buf = '' }
  return conn
end

local function send(conn, obj)
  local line = json.encode(obj) .. '\n'
  -- No SIGPIPE: a daemon that refuses us has sent why and closed, and
  -- the reply is still there to read.
  return C.send(conn.fd, line, #line, MSG_NOSIGNAL) == #line
end

-- The next reply line, decoded.
local chunk = ffi.new('char[65536]')
local function recv(conn)
  while true do
    local nl = conn.buf:find('\n', 1, true)
    if nl then
      local line = conn.buf:sub(1, nl - 1)
      conn.buf = conn.buf:sub(nl + 1)
      local obj, _, err = json.decode(line)
      if not obj then return nil, 'bad reply from the daemon: ' .. tostring(err) end
      return obj, line
    end
    local n = C.read(conn.fd, chunk, 65536)
    if n <= 0 then return nil, 'the daemon closed the connection' end
    conn.buf = conn.buf .. ffi.string(chunk, n)
  end
end

local function us(ns) return ('%.1f'):format((ns or 0) / 1000) end

local function print_status(r)
  print(('tcmu-lua %s, pid %d, up %ds, %d workers, %d devices, log level %s')
    :format(r.version, r.pid, r.uptime_s, r.workers, r.devices, r.log_level))
  -- What the watchdog or the memory limit stopped (docs/reliability.md).
  for _, p in ipairs(r.problems or {}) do print('problem: ' .. p) end
end

local function print_devices(r)
  print(('%-20s %-10s %6s %14s %6s %5s %8s'):format('DEVICE', 'HANDLER', 'WORKER',
    'SIZE', 'BLOCK', 'FAST', 'INFLIGHT'))
  for _, d in ipairs(r.devices) do
    print(('%-20s %-10s %6d %14d %6d %5s %8d%s'):format(d.name, d.handler, d.worker,
      d.size, d.block_size, d.fast_path and 'yes' or 'no', d.inflight,
      d.ring_broken and '  RING BROKEN' or ''))
  end
end

local function print_stats(r)
  for _, d in ipairs(r.devices) do
    print(('%s: %d commands (%d on the fast path), queue depth avg %.1f max %d, ' ..
      'handler errors %d, malformed %d, aborted %d'):format(d.name, d.cmds, d.fast,
      d.qdepth_avg, d.qdepth_max, d.lua_errors, d.rejected, d.aborted))
    print(('  %-6s %12s %16s %8s %10s %10s %10s'):format('kind', 'commands', 'bytes',
      'errors', 'p50 us', 'p99 us', 'p999 us'))
    for _, k in ipairs { 'read', 'write', 'other' } do
      local s = d[k]
      print(('  %-6s %12d %16d %8d %10s %10s %10s'):format(k, s.cmds, s.bytes,
        s.errors, us(s.p50_ns), us(s.p99_ns), us(s.p999_ns)))
    end
  end
end

local STATUS = { [0] = 'GOOD', [2] = 'CHECK CONDITION', [4] = 'CONDITION MET',
  [8] = 'BUSY', [0x18] = 'RESERVATION CONFLICT', [0x28] = 'TASK SET FULL',
  [0x40] = 'TASK ABORTED' }

local function hexbytes(s)
  local out = {}
  for h in s:gmatch('%x%x') do out[#out + 1] = string.char(tonumber(h, 16)) end
  return table.concat(out)
end

local function print_trace(t)
  local bytes = hexbytes(t.cdb)
  local ok, name = pcall(decode.cdb, bytes, #bytes)
  if not ok or type(name) ~= 'string' then
    name = ('opcode 0x%02x'):format(bytes:byte(1) or 0)
  end
  local where = ''
  if t.blocks and t.blocks > 0 then
    where = (' lba %d +%d'):format(t.lba, t.blocks)
  end
  local status = STATUS[t.status] or ('status 0x%02x'):format(t.status)
  if t.status == 2 then
    status = status .. (' key %x asc %02x/%02x'):format(t.sense_key, t.asc, t.ascq)
  end
  print(('%-26s%-24s %-36s %9s us%s'):format(name, where, status, us(t.lat_ns),
    t.fast and ' (fast path)' or ''))
end

local function parse_args(args)
  local o = { socket = os.getenv('TCMU_LUA_SOCKET') or '/run/tcmu-lua.sock' }
  local rest = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == '-s' or a == '--socket' then
      i = i + 1
      o.socket = args[i]
    elseif a == '--json' then
      o.json = true
    elseif a == '-h' or a == '--help' then
      o.help = true
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  o.cmd = rest[1]
  o.arg = rest[2]
  return o
end

function M.main(...)
  local o = parse_args { ... }
  if o.help then io.write(M.USAGE) return 0 end
  if not o.cmd or not o.socket then io.stderr:write(M.USAGE) return 2 end
  local req = { cmd = o.cmd }
  if o.cmd == 'stats' or o.cmd == 'trace' then req.dev = o.arg end
  if o.cmd == 'log-level' then req.level = o.arg end
  if (o.cmd == 'trace' or o.cmd == 'log-level') and not o.arg then
    io.stderr:write(M.USAGE)
    return 2
  end
  local conn, err = connect(o.socket)
  if not conn then
    io.stderr:write('tcmu-lua ctl: ', err, '\n')
    return 1
  end
  send(conn, req)
  local r, line = recv(conn)
  if not r then
    io.stderr:write('tcmu-lua ctl: ', line, '\n')
    return 1
  end
  if not r.ok then
    io.stderr:write('tcmu-lua ctl: ', tostring(r.error), '\n')
    return 1
  end
  if o.json and o.cmd ~= 'trace' then print(line) return 0 end
  if o.cmd == 'status' then print_status(r)
  elseif o.cmd == 'devices' then print_devices(r)
  elseif o.cmd == 'stats' then print_stats(r)
  elseif o.cmd == 'metrics' then io.write(r.text)
  elseif o.cmd == 'reload' then print('reloaded')
  elseif o.cmd == 'log-level' then print('log level ' .. r.log_level)
  elseif o.cmd == 'trace' then
    io.stderr:write(('tracing %s; ctrl-c to stop\n'):format(o.arg))
    io.stdout:setvbuf('line')
    while true do
      local t, l = recv(conn)
      if not t then io.stderr:write('tcmu-lua ctl: ', l, '\n') return 1 end
      if t.trace then
        if o.json then print(l) else print_trace(t.trace) end
      elseif t.ok == false then
        io.stderr:write('tcmu-lua ctl: ', tostring(t.error), '\n')
        return 1
      end
    end
  end
  C.close(conn.fd)
  return 0
end

return M
