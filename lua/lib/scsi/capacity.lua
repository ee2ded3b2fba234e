-- scsi/capacity.lua: READ CAPACITY(10) and (16), SBC-3 5.15-5.16.
local ffi = require('ffi')
local bit = require('bit')
local core = require('scsi.core')
local cdbf = require('scsi.cdb')

local band, bor = bit.band, bit.bor
local u32, u64, put32, put64 = cdbf.u32, cdbf.u64, cdbf.put32, cdbf.put64
local invalid_cdb, reply = core.invalid_cdb, core.reply

local M = {}

-- The LBA of the last block (0 for an empty device).
local function last_lba(s)
	local n = tonumber(s.info.num_blocks)
	return n > 0 and n - 1 or 0
end

-- READ CAPACITY(10), SBC-3 5.15.  PMI=0 requires LBA=0 (PMI is obsolete in
-- later revisions, but SBC-3 still says so).  A capacity beyond 32 bits
-- answers FFFFFFFFh: "use READ CAPACITY(16)".
local function read_capacity10(dev, cmd, s)
	local cdb = cmd.cdb
	if band(cdb[8], 0x01) == 0 and u32(cdb, 2) ~= 0 then return invalid_cdb(dev, cmd, 2) end
	local p = s.buf
	local last = last_lba(s)
	put32(p, 0, last > 0xFFFFFFFE and 0xFFFFFFFF or last)	-- RETURNED LOGICAL BLOCK ADDRESS
	put32(p, 4, s.info.block_size)			-- LOGICAL BLOCK LENGTH IN BYTES
	return reply(dev, cmd, p, 8, 8)
end

-- READ CAPACITY(16), SBC-3 5.16: 32 bytes, with thin provisioning bits.
local function read_capacity16(dev, cmd, s)
	local cdb = cmd.cdb
	if band(cdb[14], 0x01) == 0 and u64(cdb, 2) ~= 0 then return invalid_cdb(dev, cmd, 2) end
	local alloc = u32(cdb, 10)
	local p = s.buf
	ffi.fill(p, 32, 0)
	put64(p, 0, last_lba(s))
	put32(p, 8, s.info.block_size)
	p[12] = 0x00			-- P_TYPE/PROT_EN: no protection information
	p[13] = band(s.pb_exponent, 0x0F)	-- LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT
	-- LBPME: thin provisioning (UNMAP works); LBPRZ: unmapped blocks read 0.
	p[14] = bor(s.can_unmap and 0x80 or 0, s.lbprz and 0x40 or 0)
	return reply(dev, cmd, p, 32, alloc)
end

M.commands = {
	[0x25] = read_capacity10,
	[0x9E] = { [0x10] = read_capacity16 },
}

return M
