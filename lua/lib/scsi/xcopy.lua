-- scsi/xcopy.lua: EXTENDED COPY (LID1) and RECEIVE COPY RESULTS, SPC-4 6.4
-- and 6.18-6.22.
--
-- The initiator asks the device to copy blocks itself ("third-party copy")
-- instead of reading and writing them over the wire.  The parameter list:
--   16-byte header: LIST IDENTIFIER, LIST ID USAGE, CSCD DESCRIPTOR LIST
--       LENGTH (bytes 2-3), SEGMENT DESCRIPTOR LIST LENGTH (8-11), INLINE
--       DATA LENGTH (12-15)
--   CSCD descriptors, 32 bytes each: which devices take part.  We accept
--       only type E4h (identification descriptor) naming *this* device by
--       its NAA designator (VPD page 0x83).
--   segment descriptors: we accept type 02h (block device to block device),
--       28 bytes: source and destination CSCD index, NUMBER OF BLOCKS (10-11),
--       source LBA (12-19), destination LBA (20-27).
-- Everything is checked before the first block moves.  The copy then runs
-- through the scratch buffer: read a chunk, write it, repeat.  Overlapping
-- ranges with the destination after the source are copied backwards, so
-- the result is that of reading everything first.
local ffi = require('ffi')
local bit = require('bit')
local core = require('scsi.core')
local sense = require('scsi.sense')
local cdbf = require('scsi.cdb')

local band, rshift = bit.band, bit.rshift
local floor, min = math.floor, math.min
local u16, u24, u32, u64, put16, put32 = cdbf.u16, cdbf.u24, cdbf.u32, cdbf.u64, cdbf.put16, cdbf.put32
local good, fail, invalid_cdb, reply, fetch, run, acquire, xend =
	core.good, core.fail, core.invalid_cdb, core.reply, core.fetch, core.run, core.acquire, core.xend
local field_pointer = sense.field_pointer

local M = {}

-- Limits, reported by RECEIVE COPY OPERATING PARAMETERS.
M.MAX_CSCD = 8
M.MAX_SEGMENTS = 64
M.MAX_LIST_BYTES = M.MAX_CSCD * 32 + M.MAX_SEGMENTS * 28	-- descriptors
M.MAX_SEGMENT_BYTES = 256 * 1024 * 1024

local function param_error(dev, cmd, byte, bitno, s_)
	return xend(dev, cmd, nil, s_ or sense.INVALID_FIELD_IN_PARAM, nil,
		field_pointer(false, byte, bitno))
end

-- Remember how a copy ended, for RECEIVE COPY STATUS.
local function record(s, ctx, ok)
	if ctx.held then
		s.copy_results[ctx.list_id] = { ok = ok, segments = ctx.seg,
			bytes = ctx.copied * ctx.bs }
	end
end

local copy_next

local function copy_written(dev, cmd, ctx, sd)
	if sd ~= nil then record(dev.scsi, ctx, false); return xend(dev, cmd, ctx, sd) end
	ctx.left = ctx.left - ctx.chunk
	ctx.copied = ctx.copied + ctx.chunk
	if ctx.left == 0 then ctx.seg = ctx.seg + 1 end
	return copy_next(dev, cmd, ctx)
end

local function copy_read(dev, cmd, ctx, sd)
	if sd ~= nil then record(dev.scsi, ctx, false); return xend(dev, cmd, ctx, sd) end
	local s = dev.scsi
	return run(dev, cmd, ctx, copy_written, s.h_write, s.scratch,
		(ctx.dst + ctx.at) * ctx.bs, ctx.chunk * ctx.bs, 0)
end

copy_next = function(dev, cmd, ctx)
	local s = dev.scsi
	local p, bs = s.xbuf, ctx.bs
	-- Next segment with blocks to copy.
	while ctx.left == 0 do
		if ctx.seg == ctx.nseg then
			record(s, ctx, true)
			if s.h_flush and not s.wce and not ctx.flushed then
				ctx.flushed = true
				return run(dev, cmd, ctx, xend, s.h_flush, cmd)
			end
			return xend(dev, cmd, ctx, nil)
		end
		local at = ctx.seg_at + ctx.seg * 28
		ctx.n = u16(p, at + 10)
		ctx.src, ctx.dst = u64(p, at + 12), u64(p, at + 20)
		ctx.left = ctx.n
		ctx.backwards = ctx.dst > ctx.src and ctx.dst < ctx.src + ctx.n
		if ctx.n == 0 then ctx.seg = ctx.seg + 1 end
	end
	local chunk = min(ctx.left, floor(s.scratch_bytes / bs))
	ctx.chunk = chunk
	ctx.at = ctx.backwards and ctx.left - chunk or ctx.n - ctx.left
	return run(dev, cmd, ctx, copy_read, s.h_read, s.scratch,
		(ctx.src + ctx.at) * bs, chunk * bs, 0)
end

-- EXTENDED COPY(LID1), SPC-4 6.4.
local function extended_copy(dev, cmd, s)
	local plen = u32(cmd.cdb, 10)
	if plen == 0 then return good(dev, cmd) end
	if plen < 16 or plen > 16 + M.MAX_LIST_BYTES then
		return fail(dev, cmd, sense.PARAM_LIST_LENGTH)
	end
	if s.stopped then return fail(dev, cmd, sense.STOPPED) end
	if s.read_only then return fail(dev, cmd, sense.WRITE_PROTECTED) end
	if not acquire(dev, cmd) then return end
	local p = s.xbuf
	if fetch(cmd, p, plen) < plen then return xend(dev, cmd, nil, sense.PARAM_LIST_LENGTH) end
	local info = s.info
	local bs, cap = info.block_size, tonumber(info.num_blocks)

	-- Header.
	local list_id, usage = p[0], band(rshift(p[1], 3), 3)
	if usage == 1 then return param_error(dev, cmd, 1, 4) end	-- reserved
	if usage == 3 and list_id ~= 0 then return param_error(dev, cmd, 0) end
	local cscd_len, seg_len = u16(p, 2), u32(p, 8)
	if u32(p, 12) ~= 0 then return param_error(dev, cmd, 12) end	-- no inline data
	if 16 + cscd_len + seg_len > plen then
		return xend(dev, cmd, nil, sense.PARAM_LIST_LENGTH)
	end
	if cscd_len % 32 ~= 0 then return param_error(dev, cmd, 2) end
	local ncscd = cscd_len / 32
	if ncscd > M.MAX_CSCD then return xend(dev, cmd, nil, sense.TOO_MANY_CSCD) end

	-- CSCD descriptors: each must be an E4h naming this device.
	for i = 0, ncscd - 1 do
		local at = 16 + 32 * i
		if p[at] ~= 0xE4 then return param_error(dev, cmd, at, nil, sense.UNSUPPORTED_CSCD) end
		if band(p[at + 1], 0x1F) ~= 0 then return param_error(dev, cmd, at + 1, 4) end
		local ours = band(p[at + 4], 0x0F) == 1		-- CODE SET binary
			and band(p[at + 5], 0x30) == 0		-- ASSOCIATION logical unit
			and band(p[at + 5], 0x0F) == 3		-- DESIGNATOR TYPE NAA
			and p[at + 7] == 16
		if ours then
			for k = 0, 15 do
				if p[at + 8 + k] ~= s.naa[k] then ours = false; break end
			end
		end
		if not ours then return xend(dev, cmd, nil, sense.UNREACHABLE_TARGET) end
		if u24(p, at + 29) ~= bs then return param_error(dev, cmd, at + 29) end
	end

	-- Segment descriptors.
	local seg_at = 16 + cscd_len
	local stop = seg_at + seg_len
	local nseg = 0
	local pos = seg_at
	while pos < stop do
		if p[pos] ~= 0x02 then return param_error(dev, cmd, pos, nil, sense.UNSUPPORTED_SEGMENT) end
		if pos + 28 > stop or u16(p, pos + 2) ~= 0x18 then return param_error(dev, cmd, pos + 2) end
		nseg = nseg + 1
		if nseg > M.MAX_SEGMENTS then return xend(dev, cmd, nil, sense.TOO_MANY_SEGMENTS) end
		if u16(p, pos + 4) >= ncscd then return param_error(dev, cmd, pos + 4) end
		if u16(p, pos + 6) >= ncscd then return param_error(dev, cmd, pos + 6) end
		local n = u16(p, pos + 10)
		if n * bs > M.MAX_SEGMENT_BYTES then return param_error(dev, cmd, pos + 10) end
		if u64(p, pos + 12) + n > cap or u64(p, pos + 20) + n > cap then
			return xend(dev, cmd, nil, sense.LBA_OUT_OF_RANGE)
		end
		pos = pos + 28
	end

	local ctx = { bs = bs, seg_at = seg_at, nseg = nseg, seg = 0, left = 0, copied = 0,
		list_id = list_id, held = usage ~= 3 }
	return copy_next(dev, cmd, ctx)
end

-- RECEIVE COPY STATUS(LID1), SPC-4 6.20: how the copy with this list
-- identifier ended.  Our copies finish before EXTENDED COPY completes, so
-- the answer is always "completed" (with or without errors).
local function copy_status(dev, cmd, s)
	local cdb = cmd.cdb
	local r = s.copy_results[cdb[2]]
	if r == nil then return invalid_cdb(dev, cmd, 2) end
	local p = s.buf
	ffi.fill(p, 12, 0)
	put32(p, 0, 8)					-- AVAILABLE DATA
	p[4] = r.ok and 0x00 or 0x01			-- COPY MANAGER STATUS
	put16(p, 5, r.segments)				-- SEGMENTS PROCESSED
	if r.bytes < 4294967296 then
		p[7] = 0x00; put32(p, 8, r.bytes)	-- TRANSFER COUNT in bytes
	else
		p[7] = 0x01; put32(p, 8, floor(r.bytes / 1024))	-- in KiB
	end
	return reply(dev, cmd, p, 12, u32(cdb, 10))
end

-- RECEIVE COPY OPERATING PARAMETERS, SPC-4 6.22: our limits.
local function operating_parameters(dev, cmd, s)
	local p = s.buf
	ffi.fill(p, 64, 0)
	p[4] = 0x01				-- SNLID: "no list identifier" is supported
	put16(p, 8, M.MAX_CSCD)			-- MAXIMUM CSCD DESCRIPTOR COUNT
	put16(p, 10, M.MAX_SEGMENTS)		-- MAXIMUM SEGMENT DESCRIPTOR COUNT
	put32(p, 12, M.MAX_LIST_BYTES)		-- MAXIMUM DESCRIPTOR LIST LENGTH
	put32(p, 16, M.MAX_SEGMENT_BYTES)	-- MAXIMUM SEGMENT LENGTH
	put32(p, 20, 0)				-- MAXIMUM INLINE DATA LENGTH
	put32(p, 24, 0)				-- HELD DATA LIMIT
	put32(p, 28, 0)				-- MAXIMUM STREAM DEVICE TRANSFER SIZE
	put16(p, 34, 1)				-- TOTAL CONCURRENT COPIES
	p[36] = 1				-- MAXIMUM CONCURRENT COPIES
	p[37] = 9				-- DATA SEGMENT GRANULARITY (log2)
	p[38] = 9				-- INLINE DATA GRANULARITY
	p[39] = 9				-- HELD DATA GRANULARITY
	p[43] = 2				-- IMPLEMENTED DESCRIPTOR LIST LENGTH
	p[44] = 0x02				-- block device to block device
	p[45] = 0xE4				-- identification descriptor CSCD
	put32(p, 0, 42)				-- AVAILABLE DATA (n - 3)
	return reply(dev, cmd, p, 46, u32(cmd.cdb, 10))
end

M.commands = {
	[0x83] = { [0x00] = extended_copy },
	[0x84] = { [0x00] = copy_status, [0x03] = operating_parameters },
}

return M
