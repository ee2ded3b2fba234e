-- scsi/rw.lua: the commands that move blocks (SBC-3 chapter 5).
--
-- READ and WRITE are the hot path: they allocate nothing, build no strings
-- and only call compiled code, so LuaJIT turns them into machine code.
-- Every check happens before any data moves: CDB fields, LBA range, write
-- protection.  The handler sees byte offsets: offset = LBA * block size.
--
-- The rarer commands (VERIFY, WRITE AND VERIFY, WRITE SAME, UNMAP, COMPARE
-- AND WRITE) take several handler calls; they run one at a time per device
-- as its "exclusive" command (core.acquire), so they can use the device's
-- scratch command and buffers, and so COMPARE AND WRITE is atomic.
local ffi = require('ffi')
local bit = require('bit')
local core = require('scsi.core')
local sense = require('scsi.sense')
local cdbf = require('scsi.cdb')
local D = require('scsi.dataops')

local band, rshift = bit.band, bit.rshift
local floor, min = math.floor, math.min
local u16, u32, u64 = cdbf.u16, cdbf.u32, cdbf.u64
local good, fail, invalid_cdb, invalid_param = core.good, core.fail, core.invalid_cdb, core.invalid_param
local run, finish, outcome = core.run, core.finish, core.outcome
local acquire, xend, defer, locked = core.acquire, core.xend, core.defer, core.locked
local reply, fetch = core.reply, core.fetch
local PENDING = core.PENDING
local LBA_OUT_OF_RANGE = sense.LBA_OUT_OF_RANGE
local WRITE_PROTECTED = sense.WRITE_PROTECTED
local STOPPED = sense.STOPPED
local MISCOMPARE = sense.MISCOMPARE
local PARAM_LIST_LENGTH = sense.PARAM_LIST_LENGTH
local field_pointer = sense.field_pointer

local M = {}

-- Limits advertised in the Block Limits VPD page (inquiry.lua reads them).
M.MAX_UNMAP_DESCRIPTORS = 256
M.MAX_UNMAP_BLOCKS = 0xFFFFFFFF
M.MAX_WRITE_SAME_BLOCKS = 0x10000
-- A handler without unmap: at most this many bytes of zeros per UNMAP.
M.ZERO_UNMAP_BYTES = 32 * 1024 * 1024

local mismatch = ffi.new('size_t[1]')	-- out-parameter of memcmp

------------------------------------------------------------------------
-- READ(6/10/12/16), SBC-3 5.7-5.10.
-- The handler fills the data-in buffer: read(dev, cmd, offset, length, 0).
local function read_blocks(dev, cmd, s, lba, n, tl_byte, protect)
	if protect and band(cmd.cdb[1], 0xE0) ~= 0 then
		return invalid_cdb(dev, cmd, 1, 7)	-- RDPROTECT: no protection information
	end
	if s.stopped then return fail(dev, cmd, STOPPED) end
	local info = s.info
	if lba + n > tonumber(info.num_blocks) then return fail(dev, cmd, LBA_OUT_OF_RANGE) end
	if n == 0 then return good(dev, cmd) end
	local max = info.max_xfer_blocks
	local bs = info.block_size
	local len = n * bs
	if (max ~= 0 and n > max) or len > tonumber(cmd.data_len) then
		return invalid_cdb(dev, cmd, tl_byte)
	end
	cmd.read_len = len
	local r, e, where = s.h_read(dev, cmd, lba * bs, len, 0)
	if r == PENDING then return end
	if e ~= nil or (r ~= true and r ~= nil) then return fail(dev, cmd, e or r, where) end
	return good(dev, cmd)
end

-- A WRITE's handler call finished: count it, let a waiting COMPARE AND
-- WRITE start, and flush when the data must be on the medium (FUA, or the
-- write cache is disabled: WCE=0).
local function write_done(dev, cmd, flush, sd, where)
	local s = dev.scsi
	s.wpending = s.wpending - 1
	if s.wpending == 0 and s.xwait ~= nil then
		local w = s.xwait
		s.xwait = nil
		w(dev, s.xowner, s)
	end
	if sd ~= nil then return fail(dev, cmd, sd, where) end
	if flush then return run(dev, cmd, nil, finish, s.h_flush, cmd) end
	return good(dev, cmd)
end

-- WRITE(6/10/12/16), SBC-3 5.35-5.38.
-- The handler stores the data-out buffer: write(dev, cmd, offset, length, 0).
local function write_blocks(dev, cmd, s, lba, n, tl_byte, protect)
	local cdb1 = cmd.cdb[1]
	if protect and band(cdb1, 0xE0) ~= 0 then
		return invalid_cdb(dev, cmd, 1, 7)	-- WRPROTECT
	end
	if s.stopped then return fail(dev, cmd, STOPPED) end
	local info = s.info
	if lba + n > tonumber(info.num_blocks) then return fail(dev, cmd, LBA_OUT_OF_RANGE) end
	if s.read_only then return fail(dev, cmd, WRITE_PROTECTED) end
	if n == 0 then return good(dev, cmd) end
	local max = info.max_xfer_blocks
	local bs = info.block_size
	local len = n * bs
	if (max ~= 0 and n > max) or len > tonumber(cmd.data_len) then
		return invalid_cdb(dev, cmd, tl_byte)
	end
	-- A COMPARE AND WRITE owns this range right now: wait for it.
	if s.xlock_n > 0 and locked(s, lba, n) then return defer(dev, cmd) end
	local flush = s.h_flush ~= nil and (not s.wce or (protect and band(cdb1, 0x08) ~= 0))
	local id = cmd.id
	s.wpending = s.wpending + 1
	s.cont[id] = write_done
	s.ctx[id] = flush
	local r, e, where = s.h_write(dev, cmd, lba * bs, len, 0)
	if r == PENDING then return end
	s.cont[id] = nil
	s.ctx[id] = nil
	return write_done(dev, cmd, flush, outcome(r, e), where)
end

-- READ(6)/WRITE(6): a 21-bit LBA; TRANSFER LENGTH 0 means 256 blocks.
local function lba6(cdb) return band(cdb[1], 0x1F) * 65536 + cdb[2] * 256 + cdb[3] end
local function len6(cdb) local n = cdb[4]; if n == 0 then return 256 end; return n end

-- SBC-3 5.7
local function read6(dev, cmd, s)
	local cdb = cmd.cdb
	return read_blocks(dev, cmd, s, lba6(cdb), len6(cdb), 4, false)
end
-- SBC-3 5.8
local function read10(dev, cmd, s)
	local cdb = cmd.cdb
	return read_blocks(dev, cmd, s, u32(cdb, 2), u16(cdb, 7), 7, true)
end
-- SBC-3 5.9
local function read12(dev, cmd, s)
	local cdb = cmd.cdb
	return read_blocks(dev, cmd, s, u32(cdb, 2), u32(cdb, 6), 6, true)
end
-- SBC-3 5.10
local function read16(dev, cmd, s)
	local cdb = cmd.cdb
	return read_blocks(dev, cmd, s, u64(cdb, 2), u32(cdb, 10), 10, true)
end
-- SBC-3 5.35
local function write6(dev, cmd, s)
	local cdb = cmd.cdb
	return write_blocks(dev, cmd, s, lba6(cdb), len6(cdb), 4, false)
end
-- SBC-3 5.36
local function write10(dev, cmd, s)
	local cdb = cmd.cdb
	return write_blocks(dev, cmd, s, u32(cdb, 2), u16(cdb, 7), 7, true)
end
-- SBC-3 5.37
local function write12(dev, cmd, s)
	local cdb = cmd.cdb
	return write_blocks(dev, cmd, s, u32(cdb, 2), u32(cdb, 6), 6, true)
end
-- SBC-3 5.38
local function write16(dev, cmd, s)
	local cdb = cmd.cdb
	return write_blocks(dev, cmd, s, u64(cdb, 2), u32(cdb, 10), 10, true)
end

------------------------------------------------------------------------
-- The verify loop, shared by VERIFY and WRITE AND VERIFY: read the range
-- into the scratch buffer a chunk at a time and, by BYTCHK,
--   0: just read it (a medium error fails the command),
--   1: compare it with the data-out buffer,
--   3: compare every block with the single block of data-out.
-- A difference ends the command with MISCOMPARE; INFORMATION holds the
-- offset of the first differing byte from the start of the verified range.
local verify_next

local function verify_check(dev, cmd, ctx, sd)
	if sd ~= nil then return xend(dev, cmd, ctx, sd) end
	local s = dev.scsi
	local bs = ctx.bs
	local at, nb = ctx.done, ctx.chunk
	if ctx.bytchk == 1 then
		if D.memcmp(cmd, ctx.data_off + at * bs, s.scratch_buf, nb * bs, mismatch) ~= 0 then
			return xend(dev, cmd, ctx, MISCOMPARE, at * bs + tonumber(mismatch[0]))
		end
	elseif ctx.bytchk == 3 then
		for k = 0, nb - 1 do
			if D.memcmp(cmd, 0, s.scratch_buf + k * bs, bs, mismatch) ~= 0 then
				return xend(dev, cmd, ctx, MISCOMPARE, (at + k) * bs + tonumber(mismatch[0]))
			end
		end
	end
	ctx.done = at + nb
	return verify_next(dev, cmd, ctx)
end

verify_next = function(dev, cmd, ctx)
	local s = dev.scsi
	local left = ctx.n - ctx.done
	if left == 0 then return xend(dev, cmd, ctx, nil) end
	local nb = min(left, floor(s.scratch_bytes / ctx.bs))
	ctx.chunk = nb
	return run(dev, cmd, ctx, verify_check, s.h_read, s.scratch,
		(ctx.lba + ctx.done) * ctx.bs, nb * ctx.bs, 0)
end

-- VERIFY(10/12/16), SBC-3 5.31-5.33.
local function verify(dev, cmd, s, lba, n, vl_byte)
	local cdb1 = cmd.cdb[1]
	if band(cdb1, 0xE0) ~= 0 then return invalid_cdb(dev, cmd, 1, 7) end	-- VRPROTECT
	local bytchk = band(rshift(cdb1, 1), 3)
	if bytchk == 2 then return invalid_cdb(dev, cmd, 1, 2) end
	if s.stopped then return fail(dev, cmd, STOPPED) end
	local info = s.info
	if lba + n > tonumber(info.num_blocks) then return fail(dev, cmd, LBA_OUT_OF_RANGE) end
	if n == 0 then return good(dev, cmd) end
	local bs = info.block_size
	local need = (bytchk == 1 and n * bs) or (bytchk == 3 and bs) or 0
	if need > tonumber(cmd.data_len) then return invalid_cdb(dev, cmd, vl_byte) end
	if not acquire(dev, cmd) then return end
	local ctx = { lba = lba, n = n, bs = bs, done = 0, bytchk = bytchk, data_off = 0 }
	return verify_next(dev, cmd, ctx)
end

local function verify10(dev, cmd, s)
	return verify(dev, cmd, s, u32(cmd.cdb, 2), u16(cmd.cdb, 7), 7)
end
local function verify12(dev, cmd, s)
	return verify(dev, cmd, s, u32(cmd.cdb, 2), u32(cmd.cdb, 6), 6)
end
local function verify16(dev, cmd, s)
	return verify(dev, cmd, s, u64(cmd.cdb, 2), u32(cmd.cdb, 10), 10)
end

------------------------------------------------------------------------
-- WRITE AND VERIFY(10/12/16), SBC-3 5.39-5.41: write, flush (the check is
-- against the medium), then read back and compare (BYTCHK=1) or just read
-- back (BYTCHK=0).
local function wv_written(dev, cmd, ctx, sd)
	if sd ~= nil then return xend(dev, cmd, ctx, sd) end
	local s = dev.scsi
	if s.h_flush and not ctx.flushed then
		ctx.flushed = true
		return run(dev, cmd, ctx, wv_written, s.h_flush, cmd)
	end
	return verify_next(dev, cmd, ctx)
end

local function write_verify(dev, cmd, s, lba, n, tl_byte)
	local cdb1 = cmd.cdb[1]
	if band(cdb1, 0xE0) ~= 0 then return invalid_cdb(dev, cmd, 1, 7) end	-- WRPROTECT
	local bytchk = band(rshift(cdb1, 1), 3)
	if bytchk > 1 then return invalid_cdb(dev, cmd, 1, 2) end
	if s.stopped then return fail(dev, cmd, STOPPED) end
	local info = s.info
	if lba + n > tonumber(info.num_blocks) then return fail(dev, cmd, LBA_OUT_OF_RANGE) end
	if s.read_only then return fail(dev, cmd, WRITE_PROTECTED) end
	if n == 0 then return good(dev, cmd) end
	local bs = info.block_size
	local max = info.max_xfer_blocks
	if (max ~= 0 and n > max) or n * bs > tonumber(cmd.data_len) then
		return invalid_cdb(dev, cmd, tl_byte)
	end
	if not acquire(dev, cmd) then return end
	local ctx = { lba = lba, n = n, bs = bs, done = 0, bytchk = bytchk, data_off = 0 }
	return run(dev, cmd, ctx, wv_written, s.h_write, cmd, lba * bs, n * bs, 0)
end

local function write_verify10(dev, cmd, s)
	return write_verify(dev, cmd, s, u32(cmd.cdb, 2), u16(cmd.cdb, 7), 7)
end
local function write_verify12(dev, cmd, s)
	return write_verify(dev, cmd, s, u32(cmd.cdb, 2), u32(cmd.cdb, 6), 6)
end
local function write_verify16(dev, cmd, s)
	return write_verify(dev, cmd, s, u64(cmd.cdb, 2), u32(cmd.cdb, 10), 10)
end

------------------------------------------------------------------------
-- PRE-FETCH(10/16), SBC-3 5.3-5.4.  There is no cache to load: check the
-- range and answer GOOD ("the cache could not hold it all"), never
-- CONDITION MET.
local function prefetch(dev, cmd, s, lba, n)
	if s.stopped then return fail(dev, cmd, STOPPED) end
	if lba + n > tonumber(s.info.num_blocks) then return fail(dev, cmd, LBA_OUT_OF_RANGE) end
	return good(dev, cmd)
end
local function prefetch10(dev, cmd, s) return prefetch(dev, cmd, s, u32(cmd.cdb, 2), u16(cmd.cdb, 7)) end
local function prefetch16(dev, cmd, s) return prefetch(dev, cmd, s, u64(cmd.cdb, 2), u32(cmd.cdb, 10)) end

------------------------------------------------------------------------
-- SYNCHRONIZE CACHE(10/16), SBC-3 5.22-5.23.  The handler's flush covers
-- the whole device; NUMBER OF LOGICAL BLOCKS 0 means "to the end".  IMMED
-- is honoured by finishing the flush before answering (allowed: it only
-- permits an earlier answer).  No flush callback: nothing is cached.
local function sync_cache(dev, cmd, s, lba, n)
	if s.stopped then return fail(dev, cmd, STOPPED) end
	if lba + n > tonumber(s.info.num_blocks) then return fail(dev, cmd, LBA_OUT_OF_RANGE) end
	if s.h_flush == nil then return good(dev, cmd) end
	return run(dev, cmd, nil, finish, s.h_flush, cmd)
end
local function sync10(dev, cmd, s) return sync_cache(dev, cmd, s, u32(cmd.cdb, 2), u16(cmd.cdb, 7)) end
local function sync16(dev, cmd, s) return sync_cache(dev, cmd, s, u64(cmd.cdb, 2), u32(cmd.cdb, 10)) end

------------------------------------------------------------------------
-- Unmap [off, off+len), then continue with k(dev, cmd, ctx, sense).  With
-- the handler's unmap that is one call.  A handler with only write gets
-- zeros, written through write from the zeroed scratch buffer a chunk at a
-- time (ctx.zoff, ctx.zleft: what is left), so the blocks read back as
-- zeros as LBPRZ promises; with the write cache off they are flushed too.
-- The caller owns the exclusive lock (the scratch buffer).
local zero_next

local function discard(dev, cmd, ctx, k, off, len)
	local s = dev.scsi
	if not s.zero_unmap then return run(dev, cmd, ctx, k, s.h_unmap, cmd, off, len) end
	if not ctx.zeroed then		-- once per command: UNMAP has many ranges
		ffi.fill(s.scratch_buf, s.scratch_bytes, 0)
		ctx.zeroed = true
	end
	ctx.zoff, ctx.zleft, ctx.zk, ctx.zflushed = off, len, k, false
	return zero_next(dev, cmd, ctx, nil)
end

zero_next = function(dev, cmd, ctx, sd)
	local s = dev.scsi
	if sd ~= nil then return ctx.zk(dev, cmd, ctx, sd) end
	local left = ctx.zleft
	if left == 0 then
		if s.h_flush and not s.wce and not ctx.zflushed then
			ctx.zflushed = true
			return run(dev, cmd, ctx, zero_next, s.h_flush, cmd)
		end
		return ctx.zk(dev, cmd, ctx, nil)
	end
	local bs = s.info.block_size
	local n = min(left, s.scratch_bytes - s.scratch_bytes % bs)
	local off = ctx.zoff
	ctx.zoff, ctx.zleft = off + n, left - n
	return run(dev, cmd, ctx, zero_next, s.h_write, s.scratch, off, n, 0)
end

------------------------------------------------------------------------
-- WRITE SAME(10/16), SBC-3 5.42-5.43: write one block of data-out (or
-- zeros with NDOB) to every block of the range; with UNMAP=1 and a zero
-- block, unmap the range instead.  A handler write_same() override gets the
-- whole range in one call.  Otherwise the block is replicated through the
-- scratch buffer and written a chunk at a time.
local ws_next_done
local function ws_next(dev, cmd, ctx, sd)
	if sd ~= nil then return xend(dev, cmd, ctx, sd) end
	local s = dev.scsi
	local left = ctx.n - ctx.done
	if left == 0 then
		if s.h_flush and not s.wce and not ctx.flushed then
			ctx.flushed = true
			return run(dev, cmd, ctx, xend, s.h_flush, cmd)
		end
		return xend(dev, cmd, ctx, nil)
	end
	local nb = min(left, ctx.chunk)
	local at = ctx.lba + ctx.done
	ctx.done = ctx.done + nb
	return run(dev, cmd, ctx, ws_next, s.h_write, s.scratch, at * ctx.bs, nb * ctx.bs, 0)
end

local function write_same(dev, cmd, s, lba, n, nb_byte, is16)
	local cdb1 = cmd.cdb[1]
	if band(cdb1, 0xE0) ~= 0 then return invalid_cdb(dev, cmd, 1, 7) end	-- WRPROTECT
	if band(cdb1, 0x10) ~= 0 then return invalid_cdb(dev, cmd, 1, 4) end	-- ANCHOR: ANC_SUP=0
	if band(cdb1, 0x04) ~= 0 then return invalid_cdb(dev, cmd, 1, 2) end	-- PBDATA
	if band(cdb1, 0x02) ~= 0 then return invalid_cdb(dev, cmd, 1, 1) end	-- LBDATA
	local unmap = band(cdb1, 0x08) ~= 0
	local ndob = is16 and band(cdb1, 0x01) ~= 0
	if unmap and not s.can_unmap then return invalid_cdb(dev, cmd, 1, 3) end	-- LBPWS=0
	if s.stopped then return fail(dev, cmd, STOPPED) end
	local info = s.info
	if lba + n > tonumber(info.num_blocks) then return fail(dev, cmd, LBA_OUT_OF_RANGE) end
	-- WSNZ=1 in the Block Limits page: zero blocks is an error, not "to the end".
	if n == 0 or n > M.MAX_WRITE_SAME_BLOCKS then return invalid_cdb(dev, cmd, nb_byte) end
	if s.read_only then return fail(dev, cmd, WRITE_PROTECTED) end
	local bs = info.block_size
	if not ndob and tonumber(cmd.data_len) < bs then return invalid_cdb(dev, cmd, nb_byte) end
	if not acquire(dev, cmd) then return end

	-- The block to write, in scratch_buf[0, bs): is it all zeros?
	local buf = s.scratch_buf
	local zero = true
	if ndob then
		ffi.fill(buf, bs, 0)
	else
		D.copy_from(cmd, 0, buf, bs)
		for i = 0, bs - 1 do
			if buf[i] ~= 0 then zero = false; break end
		end
	end
	local ctx = { lba = lba, n = n, bs = bs, done = 0 }
	if unmap and zero then return discard(dev, cmd, ctx, xend, lba * bs, n * bs) end
	if s.h_write_same then
		return run(dev, cmd, ctx, ws_next_done, s.h_write_same,
			ndob and s.scratch or cmd, lba * bs, n * bs, 0, unmap)
	end
	-- Replicate the block through the scratch buffer.
	local per = floor(s.scratch_bytes / bs)
	for k = 1, per - 1 do ffi.copy(buf + k * bs, buf, bs) end
	ctx.chunk = per
	return ws_next(dev, cmd, ctx, nil)
end

ws_next_done = function(dev, cmd, ctx, sd)
	ctx.done = ctx.n
	return ws_next(dev, cmd, ctx, sd)
end

local function write_same10(dev, cmd, s)
	return write_same(dev, cmd, s, u32(cmd.cdb, 2), u16(cmd.cdb, 7), 7, false)
end
local function write_same16(dev, cmd, s)
	return write_same(dev, cmd, s, u64(cmd.cdb, 2), u32(cmd.cdb, 10), 10, true)
end

------------------------------------------------------------------------
-- UNMAP, SBC-3 5.28: the parameter list is an 8-byte header and 16-byte
-- block descriptors {LBA(8), NUMBER OF LOGICAL BLOCKS(4), reserved(4)}.
-- All descriptors are checked before the first block is unmapped.
local function unmap_next(dev, cmd, ctx, sd)
	if sd ~= nil then return xend(dev, cmd, ctx, sd) end
	local s = dev.scsi
	local p = s.xbuf
	while ctx.i < ctx.count do
		local at = 8 + 16 * ctx.i
		ctx.i = ctx.i + 1
		local lba, nb = u64(p, at), u32(p, at + 8)
		if nb > 0 then return discard(dev, cmd, ctx, unmap_next, lba * ctx.bs, nb * ctx.bs) end
	end
	return xend(dev, cmd, ctx, nil)
end

local function unmap(dev, cmd, s)
	local cdb = cmd.cdb
	if band(cdb[1], 0x01) ~= 0 then return invalid_cdb(dev, cmd, 1, 0) end	-- ANCHOR
	local plen = u16(cdb, 7)
	if plen == 0 then return good(dev, cmd) end
	if plen < 8 then return fail(dev, cmd, PARAM_LIST_LENGTH) end
	if s.stopped then return fail(dev, cmd, STOPPED) end
	if s.read_only then return fail(dev, cmd, WRITE_PROTECTED) end
	if not acquire(dev, cmd) then return end
	local p = s.xbuf
	local got = fetch(cmd, p, plen)
	if got < 8 then return xend(dev, cmd, nil, PARAM_LIST_LENGTH) end
	-- Use what both the BLOCK DESCRIPTOR DATA LENGTH and the data allow;
	-- a partial last descriptor is ignored (SBC-3 5.28.2).
	local count = floor(min(u16(p, 2), got - 8) / 16)
	if count > M.MAX_UNMAP_DESCRIPTORS then
		return xend(dev, cmd, nil, sense.INVALID_FIELD_IN_PARAM, nil, field_pointer(false, 2))
	end
	-- MAXIMUM UNMAP LBA COUNT (VPD B0h) bounds the whole list, not
	-- each descriptor (SBC-3 5.28.1); point at the count that passes it.
	local cap, total = tonumber(s.info.num_blocks), 0
	for i = 0, count - 1 do
		local at = 8 + 16 * i
		local lba, nb = u64(p, at), u32(p, at + 8)
		if lba + nb > cap then return xend(dev, cmd, nil, LBA_OUT_OF_RANGE) end
		total = total + nb
		if total > s.max_unmap_blocks then
			return xend(dev, cmd, nil, sense.INVALID_FIELD_IN_PARAM, nil, field_pointer(false, at + 8))
		end
	end
	local ctx = { i = 0, count = count, bs = s.info.block_size }
	return unmap_next(dev, cmd, ctx, nil)
end

------------------------------------------------------------------------
-- COMPARE AND WRITE, SBC-3 5.2: the data-out holds 2N blocks, N to compare
-- with the medium and N to write if they matched.  Atomic: it owns the
-- exclusive lock and locks its range against WRITEs, and it starts only
-- once the WRITEs already given to an asynchronous handler have finished.
local caw_compare, caw_written, caw_start

local function caw(dev, cmd, s)
	local cdb = cmd.cdb
	if band(cdb[1], 0xE0) ~= 0 then return invalid_cdb(dev, cmd, 1, 7) end	-- WRPROTECT
	local lba, n = u64(cdb, 2), cdb[13]
	if s.stopped then return fail(dev, cmd, STOPPED) end
	if n > s.caw_max then return invalid_cdb(dev, cmd, 13) end
	local info = s.info
	if lba + n > tonumber(info.num_blocks) then return fail(dev, cmd, LBA_OUT_OF_RANGE) end
	if s.read_only then return fail(dev, cmd, WRITE_PROTECTED) end
	if n == 0 then return good(dev, cmd) end
	local bs = info.block_size
	if 2 * n * bs > tonumber(cmd.data_len) then return invalid_cdb(dev, cmd, 13) end
	if not acquire(dev, cmd) then return end
	local ctx = { lba = lba, n = n, len = n * bs, off = lba * bs,
		flush = s.h_flush ~= nil and (not s.wce or band(cdb[1], 0x08) ~= 0) }
	if s.wpending > 0 then
		-- Hold every new WRITE back until those in flight are done.
		s.xlock_lba, s.xlock_n = 0, math.huge
		s.xwait_ctx = ctx
		s.xwait = caw_start
		return
	end
	return caw_start(dev, cmd, s, ctx)
end

caw_start = function(dev, cmd, s, ctx)
	ctx = ctx or s.xwait_ctx
	s.xwait_ctx = nil
	s.xlock_lba, s.xlock_n = ctx.lba, ctx.n
	if s.h_caw then
		-- The handler does it all; a miscompare comes back as
		-- nil, scsi.sense.MISCOMPARE, offset.
		return run(dev, cmd, ctx, xend, s.h_caw, cmd, ctx.off, ctx.len)
	end
	return run(dev, cmd, ctx, caw_compare, s.h_read, s.scratch, ctx.off, ctx.len, 0)
end

caw_compare = function(dev, cmd, ctx, sd)
	if sd ~= nil then return xend(dev, cmd, ctx, sd) end
	local s = dev.scsi
	if D.memcmp(cmd, 0, s.scratch_buf, ctx.len, mismatch) ~= 0 then
		-- INFORMATION: offset of the first differing byte in the data-out.
		return xend(dev, cmd, ctx, MISCOMPARE, tonumber(mismatch[0]))
	end
	return run(dev, cmd, ctx, caw_written, s.h_write, cmd, ctx.off, ctx.len, ctx.len)
end

caw_written = function(dev, cmd, ctx, sd)
	if sd ~= nil then return xend(dev, cmd, ctx, sd) end
	if ctx.flush then return run(dev, cmd, ctx, xend, dev.scsi.h_flush, cmd) end
	return xend(dev, cmd, ctx, nil)
end

------------------------------------------------------------------------
-- GET LBA STATUS, SBC-3 5.6: which blocks from STARTING LBA on are mapped
-- or deallocated.  The handler's optional lba_status(dev, lba, max_blocks)
-- returns count, state (0 mapped, 1 deallocated, 2 anchored) for the run
-- of blocks starting at lba; without it every block is mapped.
local function get_lba_status(dev, cmd, s)
	local cdb = cmd.cdb
	local lba, alloc = u64(cdb, 2), u32(cdb, 10)
	local cap = tonumber(s.info.num_blocks)
	if lba >= cap then return fail(dev, cmd, LBA_OUT_OF_RANGE) end
	local p = s.buf
	ffi.fill(p, 8 + 16 * 64, 0)
	local maxd = min(64, floor((alloc - 8) / 16))
	if maxd < 1 then maxd = 1 end
	local k = 0
	local h = s.h_lba_status
	while k < maxd and lba < cap do
		local count, state = cap - lba, 0
		if h then
			local c, st = h(dev, lba, cap - lba)
			if c == nil or c < 1 then break end
			count, state = min(c, cap - lba), st or 0
		end
		count = min(count, 0xFFFFFFFF)
		local at = 8 + 16 * k
		cdbf.put64(p, at, lba)
		cdbf.put32(p, at + 8, count)
		p[at + 12] = band(state, 0x0F)
		lba = lba + count
		k = k + 1
	end
	cdbf.put32(p, 0, 4 + 16 * k)	-- PARAMETER DATA LENGTH (n - 3)
	return reply(dev, cmd, p, 8 + 16 * k, alloc)
end

M.commands = {
	[0x08] = read6, [0x28] = read10, [0xA8] = read12, [0x88] = read16,
	[0x0A] = write6, [0x2A] = write10, [0xAA] = write12, [0x8A] = write16,
	[0x2F] = verify10, [0xAF] = verify12, [0x8F] = verify16,
	[0x2E] = write_verify10, [0xAE] = write_verify12, [0x8E] = write_verify16,
	[0x34] = prefetch10, [0x90] = prefetch16,
	[0x35] = sync10, [0x91] = sync16,
	[0x41] = write_same10, [0x93] = write_same16,
	[0x42] = unmap,
	[0x89] = caw,
	[0x9E] = { [0x12] = get_lba_status },
}

return M
