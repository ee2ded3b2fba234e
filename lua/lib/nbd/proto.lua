-- nbd.proto: the NBD protocol's numbers and its newstyle handshake.
--
-- Facts from the NBD protocol description (doc/proto.md of the nbd
-- project): all integers are big-endian; the handshake is "fixed
-- newstyle", options are sent after IHAVEOPT, NBD_OPT_GO asks for an
-- export and its size and flags; old servers only know
-- NBD_OPT_EXPORT_NAME.  Structured replies are not negotiated, so the
-- server answers every request with a simple reply.
local ffi = require 'ffi'
local bit = require 'bit'
local band, bor, lshift, rshift = bit.band, bit.bor, bit.lshift, bit.rshift

local M = {}

M.REQUEST_MAGIC = 0x25609513
M.SIMPLE_REPLY_MAGIC = 0x67446698
M.REQUEST_BYTES, M.REPLY_BYTES = 28, 16

-- Transmission flags (export flags).
M.FLAG_HAS_FLAGS = 0x1
M.FLAG_READ_ONLY = 0x2
M.FLAG_SEND_FLUSH = 0x4
M.FLAG_SEND_FUA = 0x8
M.FLAG_ROTATIONAL = 0x10
M.FLAG_SEND_TRIM = 0x20
M.FLAG_SEND_WRITE_ZEROES = 0x40

-- Commands and their flags.
M.CMD_READ, M.CMD_WRITE, M.CMD_DISC, M.CMD_FLUSH = 0, 1, 2, 3
M.CMD_TRIM, M.CMD_WRITE_ZEROES = 4, 6
M.CMD_FLAG_FUA, M.CMD_FLAG_NO_HOLE = 0x1, 0x2
M.CMD_NAMES = { [0] = 'READ', 'WRITE', 'DISC', 'FLUSH', 'TRIM', 'CACHE', 'WRITE_ZEROES' }

-- Errors a server returns in a reply (Linux errno values on the wire).
M.EPERM, M.EIO, M.ENOMEM, M.EINVAL, M.ENOSPC = 1, 5, 12, 22, 28
M.EOVERFLOW, M.ENOTSUP, M.ESHUTDOWN = 75, 95, 108

-- Handshake numbers.
local NBDMAGIC = 'NBDMAGIC'
local IHAVEOPT = 'IHAVEOPT'
local OPT_REPLY_MAGIC = '\0\3\232\137\4\85\101\169'   -- 0x0003e889045565a9
local OLDSTYLE_MAGIC = '\0\0\66\2\129\134\18\83'      -- 0x00420281861253
local FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2
local OPT_EXPORT_NAME, OPT_GO = 1, 7
local REP_ACK, REP_INFO = 1, 3
local INFO_EXPORT, INFO_BLOCK_SIZE = 0, 3
local REP_ERR = {
  [0x80000001] = 'unsupported option', [0x80000002] = 'refused by policy',
  [0x80000003] = 'invalid request', [0x80000004] = 'unsupported platform',
  [0x80000005] = 'TLS required', [0x80000006] = 'unknown export',
  [0x80000007] = 'server shutting down', [0x80000008] = 'block size constraints required',
  [0x80000009] = 'too big',
}
local REP_ERR_UNSUP = 0x80000001

-- Big-endian integers in Lua strings (handshake only: not a hot path).
local function be16(v) return string.char(rshift(v, 8) % 256, v % 256) end
local function be32(v)
  return string.char(rshift(v, 24) % 256, rshift(v, 16) % 256, rshift(v, 8) % 256, v % 256)
end
local function get(s, at, n)
  local v = 0
  for i = at, at + n - 1 do v = v * 256 + s:byte(i) end
  return v
end
M.be32 = be32

-- Integers at a pointer (the hot path: request headers, reply headers).
function M.put32(p, v)
  p[0], p[1], p[2], p[3] = rshift(v, 24), band(rshift(v, 16), 255), band(rshift(v, 8), 255), band(v, 255)
end
function M.put64(p, v)     -- v: a Lua number (exact below 2^53)
  local hi = math.floor(v / 4294967296)
  M.put32(p, hi)
  M.put32(p + 4, v - hi * 4294967296)
end
function M.get32(p)
  return ((p[0] * 256 + p[1]) * 256 + p[2]) * 256 + p[3]
end
function M.put16(p, v) p[0], p[1] = rshift(v, 8), band(v, 255) end
M.bor, M.lshift = bor, lshift

--[[ The handshake, written as straight-line code over io:
  io.read(n)  -> exactly n bytes (a string), or raises
  io.write(s) -> sends all of s, or raises
Whoever drives it decides how to wait (poll at open time, the worker's
loop on reconnects).  Returns { size, flags, min_block, pref_block,
max_block, how } or raises with a message for the log. ]]
function M.handshake(io, export)
  local magic = io.read(8)
  if magic ~= NBDMAGIC then error('not an NBD server (bad greeting)', 0) end
  local second = io.read(8)
  if second == OLDSTYLE_MAGIC then
    error('the server speaks the oldstyle protocol; only newstyle is supported', 0)
  end
  if second ~= IHAVEOPT then error('not an NBD server (bad newstyle magic)', 0) end
  local hflags = get(io.read(2), 1, 2)
  local fixed = band(hflags, FLAG_FIXED_NEWSTYLE) ~= 0
  local no_zeroes = band(hflags, FLAG_NO_ZEROES) ~= 0
  io.write(be32((fixed and FLAG_FIXED_NEWSTYLE or 0) + (no_zeroes and FLAG_NO_ZEROES or 0)))

  local info = { min_block = 1, pref_block = 4096, max_block = 32 * 1024 * 1024 }
  if fixed then
    -- NBD_OPT_GO: the export name and one info request (block sizes).
    local body = be32(#export) .. export .. be16(1) .. be16(INFO_BLOCK_SIZE)
    io.write(IHAVEOPT .. be32(OPT_GO) .. be32(#body) .. body)
    while true do
      local h = io.read(20)
      if h:sub(1, 8) ~= OPT_REPLY_MAGIC then error('bad option reply magic', 0) end
      local rtype, len = get(h, 13, 4), get(h, 17, 4)
      if len > 65536 then error('option reply too long', 0) end
      local data = len > 0 and io.read(len) or ''
      if rtype == REP_ACK then
        if not info.size then error('server acknowledged NBD_OPT_GO without the export size', 0) end
        info.how = 'NBD_OPT_GO'
        return info
      elseif rtype == REP_INFO and #data >= 2 then
        local itype = get(data, 1, 2)
        if itype == INFO_EXPORT and #data >= 12 then
          info.size, info.flags = get(data, 3, 8), get(data, 11, 2)
        elseif itype == INFO_BLOCK_SIZE and #data >= 14 then
          info.min_block, info.pref_block, info.max_block =
            get(data, 3, 4), get(data, 7, 4), get(data, 11, 4)
        end
      elseif rtype == REP_ERR_UNSUP then
        break      -- an older server: fall back to NBD_OPT_EXPORT_NAME
      elseif rtype >= 0x80000000 then
        local why = REP_ERR[rtype] or ('error 0x%x'):format(rtype)
        if #data > 0 then why = why .. ': ' .. data end
        error(('export %q: %s'):format(export, why), 0)
      end
    end
  end
  -- NBD_OPT_EXPORT_NAME: no reply on refusal, the server just hangs up.
  io.write(IHAVEOPT .. be32(OPT_EXPORT_NAME) .. be32(#export) .. export)
  local r = io.read(10)
  info.size, info.flags = get(r, 1, 8), get(r, 9, 2)
  if not no_zeroes then io.read(124) end
  info.how = 'NBD_OPT_EXPORT_NAME'
  return info
end

-- Decode a 64-bit big-endian value from a pointer as a Lua number.
function M.get64(p) return M.get32(p) * 4294967296 + M.get32(p + 4) end

M.ffi = ffi
return M
