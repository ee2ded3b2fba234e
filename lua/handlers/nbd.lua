-- nbd: a disk on a Network Block Device server (qemu-nbd, nbdkit, nbd-server).
--
-- The handler is an NBD client.  It connects when the device opens (TCP
-- host:port or a Unix socket), negotiates the export with NBD_OPT_GO
-- (NBD_OPT_EXPORT_NAME for older servers), and then turns SCSI into NBD:
--
--   READ                       NBD_CMD_READ, the reply lands in the command's buffers
--   WRITE                      NBD_CMD_WRITE, with NBD_CMD_FLAG_FUA when the
--                              data must be durable (FUA bit, or WCE off)
--   SYNCHRONIZE CACHE          NBD_CMD_FLUSH (nothing to do if the server has no cache)
--   UNMAP, WRITE SAME unmap    NBD_CMD_WRITE_ZEROES (may punch holes: unmapped
--                              blocks read as zeros) or else NBD_CMD_TRIM
--   WRITE SAME of zeros        NBD_CMD_WRITE_ZEROES with NO_HOLE
--
-- Every command is asynchronous: the handler sends the request and returns
-- PENDING; the reply completes it (lua/lib/nbd/client.lua).  Many commands
-- are in flight at once.  A read-only export makes a read-only disk.
--
-- When the server goes away, commands in flight and new ones fail with
-- NOT READY, LOGICAL UNIT COMMUNICATION FAILURE (08h/00h) while the
-- handler reconnects with exponential backoff; INQUIRY, READ CAPACITY and
-- the rest keep working.  The device size must not exceed the export.
local ffi = require 'ffi'
local bit = require 'bit'
local scsi = require 'scsi'
local sock = require 'nbd.sock'
local P = require 'nbd.proto'
local client = require 'nbd.client'
local log = require 'tl.log'
local C = require('tl.abi').C

local band = bit.band
local FUA = 1                                -- TL_CMDF_FUA
local MAX_ZERO_CHUNK = 1024 * 1024 * 1024   -- per TRIM/WRITE_ZEROES request
local PATTERN_BYTES = 1024 * 1024            -- WRITE SAME of non-zero data
local WRITE_OPS = { [0x0a] = true, [0x2a] = true, [0xaa] = true, [0x8a] = true }

-- Did this write just go out with FUA (so the flush the library sends
-- after it has nothing left to do)?  By cmd.id.
local fua_sent = ffi.new('uint8_t[65536]')

local function has(st, flag) return band(st.flags, flag) ~= 0 end

return {
  description = 'NBD client: a disk on a network block device server',
  cfgstring_key = 'socket',   -- "nbd//run/nbd.sock" from targetcli
  schema = {
    host = { type = 'string', doc = 'server name or address (TCP)' },
    port = { type = 'integer', default = 10809, doc = 'TCP port' },
    socket = { type = 'string', doc = 'Unix socket path (instead of host/port)' },
    export = { type = 'string', default = '', doc = 'export name' },
    timeout = { type = 'number', default = 30,
      doc = 'seconds without a reply before the connection is given up (0: never)' },
    connect_timeout = { type = 'number', default = 5, doc = 'seconds for connect + handshake' },
    reconnect_min = { type = 'number', default = 0.5, doc = 'first reconnect delay, seconds' },
    reconnect_max = { type = 'number', default = 10, doc = 'longest reconnect delay, seconds' },
  },

  open = function(dev, conf)
    if (conf.host == nil) == (conf.socket == nil) then
      return nil, 'give either host (and port) or socket'
    end
    if conf.reconnect_min <= 0 or conf.reconnect_max < conf.reconnect_min then
      return nil, 'need 0 < reconnect_min <= reconnect_max'
    end
    local addr, err = sock.resolve(conf.host, conf.port, conf.socket)
    if not addr then return nil, err end
    local c = client.new { addr = addr, export = conf.export, timeout = conf.timeout,
      connect_timeout = conf.connect_timeout, reconnect_min = conf.reconnect_min,
      reconnect_max = conf.reconnect_max,
      log = function(level, fmt, ...) dev:log(level, fmt, ...) end }
    local bs, size = dev.info.block_size, tonumber(dev.info.size)
    -- What every connection, the first and the later ones, must offer.
    c.check = function(info)
      if info.size < size then
        return nil, ('export %q is %d bytes, smaller than the device (%d)')
          :format(conf.export, info.size, size)
      end
      if bs % info.min_block ~= 0 then
        return nil, ('the server needs %d-byte blocks; the device has %d')
          :format(info.min_block, bs)
      end
      return true
    end
    local info
    info, err = c:connect_now()
    if not info then return nil, err end
    c:start(dev)
    if band(info.flags, P.FLAG_READ_ONLY) ~= 0 then conf.read_only = true end
    if band(info.flags, P.FLAG_SEND_WRITE_ZEROES) ~= 0 and conf.unmap_zeroes == nil then
      conf.unmap_zeroes = true
    end
    -- Parts of at most the server's maximum payload, whole blocks.
    local chunk = math.min(info.max_block, 32 * 1024 * 1024)
    chunk = chunk - chunk % bs
    return { c = c, flags = info.flags, chunk = chunk, bs = bs,
      zeros = ffi.new('uint8_t[?]', bs), mismatch = ffi.new('size_t[1]'),
      stats = c.stats }
  end,

  close = function(dev) dev.state.c:close(dev) end,

  -- A reload keeps the connection (and the commands in flight on it).
  migrate = function(dev, old, conf)
    local c = old.c
    if conf.export ~= c.export or c.addr.text ~= (conf.socket and 'unix:' .. conf.socket
        or ('%s:%d'):format(conf.host, conf.port)) then
      error('server or export changed: needs a restart')
    end
    return old
  end,

  read = function(dev, cmd, offset, length, at)
    local st = dev.state
    return st.c:submit(dev, cmd, P.CMD_READ, 0, offset, length, at, nil, st.chunk)
  end,

  write = function(dev, cmd, offset, length, at)
    local st = dev.state
    local flags = 0
    -- The library flushes after a WRITE with FUA, or any WRITE when the
    -- write cache is off: a FUA request does both in one round trip.
    if WRITE_OPS[cmd.opcode] and at == 0 then
      if has(st, P.FLAG_SEND_FUA) and (band(cmd.flags, FUA) ~= 0 or not dev.scsi.wce) then
        flags = P.CMD_FLAG_FUA
      end
      fua_sent[cmd.id] = flags
    end
    return st.c:submit(dev, cmd, P.CMD_WRITE, flags, offset, length, at, nil, st.chunk)
  end,

  flush = function(dev, cmd)
    local st = dev.state
    if WRITE_OPS[cmd.opcode] and fua_sent[cmd.id] ~= 0 then
      fua_sent[cmd.id] = 0
      return true
    end
    if not has(st, P.FLAG_SEND_FLUSH) then return true end  -- no cache to flush
    return st.c:submit(dev, cmd, P.CMD_FLUSH, 0, 0, 0, 0, nil, 1)
  end,

  -- Deallocate: write zeros that may become holes, or trim.  A server
  -- with neither keeps the blocks, which UNMAP allows (LBPRZ stays 0).
  unmap = function(dev, cmd, offset, length)
    local st = dev.state
    if has(st, P.FLAG_SEND_WRITE_ZEROES) then
      return st.c:submit(dev, cmd, P.CMD_WRITE_ZEROES, 0, offset, length, 0, nil, MAX_ZERO_CHUNK)
    end
    if has(st, P.FLAG_SEND_TRIM) then
      return st.c:submit(dev, cmd, P.CMD_TRIM, 0, offset, length, 0, nil, MAX_ZERO_CHUNK)
    end
    return true
  end,

  -- WRITE SAME: the block at `at` repeated over [offset, offset+length).
  write_same = function(dev, cmd, offset, length, at, unmap)
    local st = dev.state
    local c, bs = st.c, st.bs
    if has(st, P.FLAG_SEND_WRITE_ZEROES)
        and C.tl_ffi_memcmp(cmd, at, st.zeros, bs, st.mismatch) == 0 then
      local flags = unmap and 0 or P.CMD_FLAG_NO_HOLE
      return c:submit(dev, cmd, P.CMD_WRITE_ZEROES, flags, offset, length, 0, nil, MAX_ZERO_CHUNK)
    end
    -- Any other block: send it from a buffer that holds it many times.
    -- One WRITE SAME runs at a time (the library's exclusive lock), so the
    -- buffer does not change under requests in flight.
    local per = math.min(PATTERN_BYTES, st.chunk)
    per = per - per % bs
    local buf = c:payload_buffer(per)
    C.tl_ffi_copy_from(cmd, at, buf, bs)
    for k = 1, per / bs - 1 do ffi.copy(buf + k * bs, buf, bs) end
    return c:submit(dev, cmd, P.CMD_WRITE, 0, offset, length, 0, client.SRC_BUF, per)
  end,

  abort = function(dev, cmd_id)
    -- NBD cannot take a request back: the reply still ends the command
    -- (the core completes it as aborted), or the timeout drops the link.
    local st = dev.state
    st.stats.aborted = st.stats.aborted + 1
    log.debug('%s: abort of command %d in flight on the NBD connection', dev.name, cmd_id)
  end,
}
