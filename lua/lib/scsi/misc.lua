-- scsi/misc.lua: the small commands of a disk.
--   TEST UNIT READY                    SPC-4 6.47
--   REQUEST SENSE                      SPC-4 6.39
--   START STOP UNIT                    SBC-3 5.25
--   PREVENT ALLOW MEDIUM REMOVAL       SBC-3 5.5
--   FORMAT UNIT                        SBC-3 5.2
--   REPORT SUPPORTED OPERATION CODES   SPC-4 6.35
--   REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS  SPC-4 6.36
local ffi = require('ffi')
local bit = require('bit')
local core = require('scsi.core')
local sense = require('scsi.sense')
local cdbf = require('scsi.cdb')
local ua = require('scsi.ua')
local opcodes = require('scsi.opcodes')

local band, bor, rshift = bit.band, bit.bor, bit.rshift
local u16, u32, put16, put32 = cdbf.u16, cdbf.u32, cdbf.put16, cdbf.put32
local good, fail, invalid_cdb, invalid_param, reply, fetch, run, finish =
	core.good, core.fail, core.invalid_cdb, core.invalid_param, core.reply, core.fetch,
	core.run, core.finish

local M = {}

-- TEST UNIT READY, SPC-4 6.47: GOOD when the medium is ready; NOT READY,
-- INITIALIZING COMMAND REQUIRED after a START STOP UNIT with START=0.
local function test_unit_ready(dev, cmd, s)
	if s.stopped then return fail(dev, cmd, sense.STOPPED) end
	return good(dev, cmd)
end

-- REQUEST SENSE, SPC-4 6.39: the sense data of a pending unit attention
-- (which it clears), or of the stopped state, or NO SENSE; in the format
-- DESC asks for.  The command itself ends GOOD.
local function request_sense(dev, cmd, s)
	local cdb = cmd.cdb
	local desc, alloc = band(cdb[1], 0x01) ~= 0, cdb[4]
	local sd = ua.take(s) or (s.stopped and sense.STOPPED) or sense.NO_ADDITIONAL
	local p = s.buf
	local n = sense.encode(p, desc, sd.key, sd.asc, sd.ascq)
	return reply(dev, cmd, p, n, alloc)
end

-- START STOP UNIT, SBC-3 5.25.  START=0 flushes the cache (unless
-- NO_FLUSH) and stops the medium: media commands then fail NOT READY until
-- START=1.  A POWER CONDITION other than 0 only names a power state, which
-- a virtual disk accepts and ignores (START and LOEJ are then ignored too).
-- LOEJ: there is no removable medium to load or eject.
local POWER_OK = { [0] = true, [1] = true, [2] = true, [3] = true, [7] = true,
	[0xA] = true, [0xB] = true }
local function stopped_now(dev, cmd, ctx, sd)
	if sd ~= nil then return fail(dev, cmd, sd) end
	dev.scsi.stopped = true
	return good(dev, cmd)
end
local function start_stop_unit(dev, cmd, s)
	local b4 = cmd.cdb[4]
	local pc = rshift(b4, 4)
	if not POWER_OK[pc] then return invalid_cdb(dev, cmd, 4, 7) end
	if pc ~= 0 then return good(dev, cmd) end
	if band(b4, 0x01) ~= 0 then		-- START
		s.stopped = false
		return good(dev, cmd)
	end
	if band(b4, 0x04) == 0 and s.h_flush then	-- not NO_FLUSH
		return run(dev, cmd, nil, stopped_now, s.h_flush, cmd)
	end
	return stopped_now(dev, cmd, nil, nil)
end

-- PREVENT ALLOW MEDIUM REMOVAL, SBC-3 5.5.  The medium is not removable
-- (RMB=0), so there is nothing to lock: 0 (allow) and 1 (prevent) are
-- accepted, the obsolete values 2 and 3 refused.
local function prevent_allow(dev, cmd, s)
	if band(cmd.cdb[4], 0x03) > 1 then return invalid_cdb(dev, cmd, 4, 1) end
	return good(dev, cmd)
end

-- FORMAT UNIT, SBC-3 5.2.  A virtual medium has no defects to map and no
-- low-level format: the command validates its fields and leaves the data
-- alone.  Protection information (FMTPINFO) and an initialization pattern
-- (IP) are not supported.
local function format_unit(dev, cmd, s)
	local b1 = cmd.cdb[1]
	if band(b1, 0xC0) ~= 0 then return invalid_cdb(dev, cmd, 1, 7) end	-- FMTPINFO
	if s.read_only then return fail(dev, cmd, sense.WRITE_PROTECTED) end
	if band(b1, 0x10) ~= 0 then		-- FMTDATA: a parameter list follows
		local long = band(b1, 0x20) ~= 0
		local hdr = long and 8 or 4
		local p = s.buf
		if fetch(cmd, p, hdr) < hdr then return fail(dev, cmd, sense.PARAM_LIST_LENGTH) end
		if band(p[1], 0x08) ~= 0 then return invalid_param(dev, cmd, 1, 3) end	-- IP
	end
	if s.stopped then return fail(dev, cmd, sense.STOPPED) end
	return good(dev, cmd)
end

-- Does this device offer command c (an opcodes.lua entry)?
local function offered(s, c)
	if c.kernel then return true end
	if not c.impl then return false end
	if c.sa then
		local t = s.sa_dispatch[c.op]
		return t ~= nil and t[c.sa] ~= nil
	end
	return s.dispatch[c.op] ~= nil and s.sa_dispatch[c.op] == nil
end

-- The command timeouts descriptor (SPC-4 6.35.4): no timeouts advertised.
local function timeouts(p, n)
	put16(p, n, 0x0A)
	return n + 12
end

-- REPORT SUPPORTED OPERATION CODES, SPC-4 6.35.
-- REPORTING OPTIONS 0: every command (8-byte descriptors, 20 with RCTD);
-- 1: one opcode that has no service actions; 2: one opcode + service
-- action; 3: one opcode, with the service action if it has any.
-- The one-command answer carries the CDB USAGE DATA bit map.
local function rsoc(dev, cmd, s)
	local cdb = cmd.cdb
	local rctd = band(cdb[2], 0x80) ~= 0
	local opts = band(cdb[2], 0x07)
	local rop, rsa, alloc = cdb[3], u16(cdb, 4), u32(cdb, 6)
	local p = s.buf
	ffi.fill(p, 4096, 0)
	local n
	if opts == 0 then
		n = 4
		for _, c in ipairs(opcodes.sorted) do
			if offered(s, c) then
				p[n] = c.op
				if c.sa then put16(p, n + 2, c.sa) end
				p[n + 5] = bor(rctd and 0x02 or 0, c.sa and 0x01 or 0)	-- CTDP, SERVACTV
				put16(p, n + 6, c.len)
				n = n + 8
				if rctd then n = timeouts(p, n) end
			end
		end
		put32(p, 0, n - 4)		-- COMMAND DATA LENGTH
	elseif opts <= 3 then
		local entry = opcodes.by_op[rop]
		local with_sa = opcodes.has_sa[rop] or (entry ~= nil and entry.sa ~= nil)
		if opts == 1 and with_sa then return invalid_cdb(dev, cmd, 2, 2) end
		if opts == 2 and not with_sa then return invalid_cdb(dev, cmd, 2, 2) end
		local c = entry
		if with_sa then c = entry and entry.sa[rsa] end
		p[1] = rctd and 0x80 or 0		-- CTDP
		if c and offered(s, c) then
			p[1] = bor(p[1], 0x03)		-- SUPPORT: supported, as the standard says
			put16(p, 2, c.len)		-- CDB SIZE
			local use = opcodes.usage(c)
			for i = 0, c.len - 1 do p[4 + i] = use[i] end
			n = 4 + c.len
		else
			p[1] = bor(p[1], 0x01)		-- SUPPORT: not supported
			n = 4
		end
		if rctd then n = timeouts(p, n) end
	else
		return invalid_cdb(dev, cmd, 2, 2)
	end
	return reply(dev, cmd, p, n, alloc)
end

-- REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS, SPC-4 6.36.  The kernel does
-- task management for us: ABORT TASK, ABORT TASK SET, CLEAR TASK SET and
-- LOGICAL UNIT RESET.
local function rstmf(dev, cmd, s)
	local cdb = cmd.cdb
	local repd, alloc = band(cdb[2], 0x80) ~= 0, u32(cdb, 6)
	local p = s.buf
	ffi.fill(p, 16, 0)
	p[0] = 0x80 + 0x40 + 0x10 + 0x08	-- ATS, ATSS, CTSS, LURS
	local n = 4
	if repd then
		p[3] = 0x0C			-- ADDITIONAL DATA LENGTH
		n = 16
	end
	return reply(dev, cmd, p, n, alloc)
end

M.commands = {
	[0x00] = test_unit_ready,
	[0x03] = request_sense,
	[0x1B] = start_stop_unit,
	[0x1E] = prevent_allow,
	[0x04] = format_unit,
	[0xA3] = { [0x0C] = rsoc, [0x0D] = rstmf },
}

return M
