-- scsi/modes.lua: MODE SENSE(6/10) and MODE SELECT(6/10), SPC-4 6.9-6.12.
--
-- Mode pages are small byte arrays of device settings.  For each page we
-- keep three versions: current (in force), changeable (a mask: which bits
-- MODE SELECT may change) and default.  There are no saved values: asking
-- for them answers SAVING PARAMETERS NOT SUPPORTED.
--
--   0x01 Read-Write Error Recovery  (SBC-3 6.4.7)   nothing changeable
--   0x08 Caching                    (SBC-3 6.4.5)   WCE, if the handler flushes
--   0x0A Control                    (SPC-4 7.5.7)   D_SENSE: descriptor sense
--   0x1C Informational Exceptions   (SPC-4 7.5.10)  nothing changeable
--
-- Two settings matter to the rest of the library: WCE (s.wce: when 0,
-- every write is flushed before it completes) and D_SENSE (s.dsense).
local ffi = require('ffi')
local bit = require('bit')
local core = require('scsi.core')
local sense = require('scsi.sense')
local cdbf = require('scsi.cdb')
local ua = require('scsi.ua')

local band, bor, bxor, bnot, rshift = bit.band, bit.bor, bit.bxor, bit.bnot, bit.rshift
local u16, u24, u32, u64 = cdbf.u16, cdbf.u24, cdbf.u32, cdbf.u64
local put16, put24, put32, put64 = cdbf.put16, cdbf.put24, cdbf.put32, cdbf.put64
local good, fail, invalid_cdb, invalid_param, reply, fetch =
	core.good, core.fail, core.invalid_cdb, core.invalid_param, core.reply, core.fetch

local M = {}

M.ORDER = { 0x01, 0x08, 0x0A, 0x1C }	-- ascending, as 0x3F returns them

-- A page as a 0-based table of bytes: code, length, then fields.
local function page(code, len)
	local t = { [0] = code, len - 2 }
	for i = 2, len - 1 do t[i] = 0 end
	t.n = len
	return t
end

local function copy(t)
	local c = {}
	for i = 0, t.n - 1 do c[i] = t[i] end
	c.n = t.n
	return c
end

-- Default values and changeable masks for this device.
local function defaults(s, wce, dsense)
	local def, chg = {}, {}
	def[0x01], chg[0x01] = page(0x01, 12), page(0x01, 12)
	def[0x08], chg[0x08] = page(0x08, 20), page(0x08, 20)
	def[0x08][2] = wce and 0x04 or 0x00		-- WCE
	chg[0x08][2] = s.h_flush and 0x04 or 0x00
	def[0x0A], chg[0x0A] = page(0x0A, 12), page(0x0A, 12)
	def[0x0A][2] = dsense and 0x04 or 0x00		-- D_SENSE
	def[0x0A][3] = 0x10	-- QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
	chg[0x0A][2] = 0x04
	def[0x1C], chg[0x1C] = page(0x1C, 12), page(0x1C, 12)
	def[0x1C][2] = 0x08	-- DEXCPT: no informational exceptions
	for _, t in pairs(chg) do t[0], t[1] = 0, 0 end	-- code/length: not "changeable"
	return def, chg
end

-- Read WCE and D_SENSE from the current pages.
local function derive(s)
	s.wce = band(s.mode_cur[0x08][2], 0x04) ~= 0
	s.dsense = band(s.mode_cur[0x0A][2], 0x04) ~= 0
end

-- Build the pages (attach).  On a re-attach the current values stay, but
-- bits that are no longer changeable go back to their default.
function M.setup(dev, s, conf, first)
	local wce = dev.info.write_cache ~= 0 and s.h_flush ~= nil
	if conf.write_cache ~= nil then wce = conf.write_cache and s.h_flush ~= nil end
	local def, chg = defaults(s, wce, conf.descriptor_sense == true)
	local cur = {}
	for code, d in pairs(def) do
		local old = s.mode_cur and s.mode_cur[code]
		local c = copy(d)
		if old then
			for i = 2, c.n - 1 do
				c[i] = bor(band(d[i], bnot(chg[code][i])), band(old[i], chg[code][i]))
			end
		end
		cur[code] = c
	end
	s.mode_def, s.mode_chg, s.mode_cur = def, chg, cur
	derive(s)
end

-- Mode parameters go back to their defaults (LUN reset).
function M.reset(s)
	for code, d in pairs(s.mode_def) do s.mode_cur[code] = copy(d) end
	derive(s)
end

-- MODE SENSE(6) SPC-4 6.11 and MODE SENSE(10) SPC-4 6.12.
local function mode_sense(dev, cmd, s, ten)
	local cdb = cmd.cdb
	local dbd = band(cdb[1], 0x08) ~= 0
	local llbaa = ten and band(cdb[1], 0x10) ~= 0
	local pc, code, sub = rshift(cdb[2], 6), band(cdb[2], 0x3F), cdb[3]
	local alloc = ten and u16(cdb, 7) or cdb[4]
	if pc == 3 then return fail(dev, cmd, sense.SAVING_NOT_SUPPORTED) end
	if code ~= 0x3F and s.mode_cur[code] == nil then return invalid_cdb(dev, cmd, 2, 5) end
	-- No page has subpages: subpage 0, or FFh ("all subpages").
	if sub ~= 0 and sub ~= 0xFF then return invalid_cdb(dev, cmd, 3) end

	local p = s.buf
	local info = s.info
	local hdr = ten and 8 or 4
	local n = hdr
	ffi.fill(p, 1024, 0)
	-- Block descriptor (SPC-4 7.5.5, SBC-3 6.4.2): capacity and block length.
	local bdlen = 0
	if not dbd then
		local blocks = tonumber(info.num_blocks)
		if pc == 1 then blocks = 0 end		-- nothing changeable
		local bs = pc == 1 and 0 or info.block_size
		if llbaa then
			bdlen = 16
			put64(p, n, blocks)
			put32(p, n + 12, bs)
		else
			bdlen = 8
			put32(p, n, blocks > 0xFFFFFFFF and 0xFFFFFFFF or blocks)
			put24(p, n + 5, bs)
		end
		n = n + bdlen
	end
	-- The pages.
	local set = pc == 0 and s.mode_cur or pc == 1 and s.mode_chg or s.mode_def
	for _, c in ipairs(M.ORDER) do
		if code == 0x3F or code == c then
			local t = set[c]
			for i = 0, t.n - 1 do p[n + i] = t[i] end
			p[n] = c		-- PS=0: not savable
			p[n + 1] = t.n - 2
			n = n + t.n
		end
	end
	-- Header: MODE DATA LENGTH excludes itself; DEVICE-SPECIFIC PARAMETER
	-- has WP (write protected) and DPOFUA (DPO and FUA are supported).
	local dsp = bor(s.read_only and 0x80 or 0, 0x10)
	if ten then
		put16(p, 0, n - 2)
		p[3] = dsp
		p[4] = llbaa and bdlen == 16 and 0x01 or 0x00	-- LONGLBA
		put16(p, 6, bdlen)
	else
		p[0] = n - 1
		p[2] = dsp
		p[3] = bdlen
	end
	return reply(dev, cmd, p, n, alloc)
end

-- MODE SELECT(6) SPC-4 6.9 and MODE SELECT(10) SPC-4 6.10.  The whole
-- parameter list is checked before anything changes: a page we do not
-- have, a wrong page length, or a change to a bit that is not changeable
-- is INVALID FIELD IN PARAMETER LIST pointing at that byte and bit.
local function mode_select(dev, cmd, s, ten)
	local cdb = cmd.cdb
	local plen = ten and u16(cdb, 7) or cdb[4]
	if band(cdb[1], 0x10) == 0 then return invalid_cdb(dev, cmd, 1, 4) end	-- PF=0: vendor format
	if band(cdb[1], 0x01) ~= 0 then return invalid_cdb(dev, cmd, 1, 0) end	-- SP=1: cannot save
	if plen == 0 then return good(dev, cmd) end
	local hdr = ten and 8 or 4
	local PLL = sense.PARAM_LIST_LENGTH
	if plen < hdr then return fail(dev, cmd, PLL) end
	local p = s.buf
	if fetch(cmd, p, plen) < plen then return fail(dev, cmd, PLL) end
	local info = s.info

	-- Block descriptor: may only restate the current capacity and block size.
	local bdlen = ten and u16(p, 6) or p[3]
	local long = ten and band(p[4], 0x01) ~= 0
	if bdlen ~= 0 and bdlen ~= (long and 16 or 8) then
		return invalid_param(dev, cmd, ten and 6 or 3)
	end
	if hdr + bdlen > plen then return fail(dev, cmd, PLL) end
	if bdlen > 0 then
		local blocks, bs, at_bs
		if long then
			blocks, bs, at_bs = u64(p, hdr), u32(p, hdr + 12), hdr + 12
		else
			blocks, bs, at_bs = u32(p, hdr), u24(p, hdr + 5), hdr + 5
		end
		local cap = tonumber(info.num_blocks)
		if blocks ~= 0 and blocks ~= cap and not (not long and blocks == 0xFFFFFFFF and cap > blocks) then
			return invalid_param(dev, cmd, hdr)
		end
		if bs ~= info.block_size then return invalid_param(dev, cmd, at_bs) end
	end

	-- Pages, first pass: check.
	local first = hdr + bdlen
	local pos = first
	while pos < plen do
		if pos + 2 > plen then return fail(dev, cmd, PLL) end
		if band(p[pos], 0x40) ~= 0 then return invalid_param(dev, cmd, pos, 6) end	-- SPF
		local code = band(p[pos], 0x3F)
		local cur, chg = s.mode_cur[code], s.mode_chg[code]
		if cur == nil then return invalid_param(dev, cmd, pos, 5) end
		if p[pos + 1] ~= cur.n - 2 then return invalid_param(dev, cmd, pos + 1) end
		if pos + cur.n > plen then return fail(dev, cmd, PLL) end
		for i = 2, cur.n - 1 do
			local bad = band(bxor(p[pos + i], cur[i]), bnot(chg[i]), 0xFF)
			if bad ~= 0 then
				local b = 7
				while band(bad, 2 ^ b) == 0 do b = b - 1 end
				return invalid_param(dev, cmd, pos + i, b)
			end
		end
		pos = pos + cur.n
	end
	-- Second pass: apply.
	local changed = false
	pos = first
	while pos < plen do
		local cur = s.mode_cur[band(p[pos], 0x3F)]
		for i = 2, cur.n - 1 do
			if cur[i] ~= p[pos + i] then changed = true end
			cur[i] = p[pos + i]
		end
		pos = pos + cur.n
	end
	if changed then
		derive(s)
		ua.raise(s, sense.UA_MODE_CHANGED)
	end
	return good(dev, cmd)
end

M.commands = {
	[0x1A] = function(dev, cmd, s) return mode_sense(dev, cmd, s, false) end,
	[0x5A] = function(dev, cmd, s) return mode_sense(dev, cmd, s, true) end,
	[0x15] = function(dev, cmd, s) return mode_select(dev, cmd, s, false) end,
	[0x55] = function(dev, cmd, s) return mode_select(dev, cmd, s, true) end,
}

return M
