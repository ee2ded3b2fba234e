-- scsi/inquiry.lua: INQUIRY (SPC-4 6.6) and the vital product data pages.
--
-- Standard INQUIRY data says what kind of device this is and which optional
-- features it has; each bit below matches what the library really does.
-- VPD pages (SPC-4 7.8, SBC-3 6.5):
--   0x00 Supported VPD pages        0x80 Unit Serial Number
--   0x83 Device Identification      0xB0 Block Limits
--   0xB1 Block Device Characteristics  0xB2 Logical Block Provisioning
-- The serial number and the NAA designator are derived from the device
-- name (unless configured), so they are stable for the life of the device.
local ffi = require('ffi')
local bit = require('bit')
local core = require('scsi.core')
local cdbf = require('scsi.cdb')
local rw = require('scsi.rw')

local band, bor, bxor, rshift, lshift, tobit = bit.band, bit.bor, bit.bxor, bit.rshift, bit.lshift, bit.tobit
local u16 = cdbf.u16
local put16, put32, put64, put_ascii = cdbf.put16, cdbf.put32, cdbf.put64, cdbf.put_ascii
local invalid_cdb, reply = core.invalid_cdb, core.reply

local M = {}

-- The IEEE company id in our NAA designators.  0x001405 is the one the
-- Linux target (LIO) uses for the devices it serves; configurable.
M.DEFAULT_OUI = 0x001405

-- FNV-1a, 32 bits, over string str starting from seed.
local function fnv1a(str, seed)
	local h = tobit(seed)
	for i = 1, #str do
		h = bxor(h, str:byte(i))
		h = tobit(lshift(h, 24) + h * 403)	-- h * 16777619 mod 2^32
	end
	return h
end

-- 16 bytes derived from str, as a Lua table 0..15.
local function derive16(str)
	local out = {}
	for k = 0, 3 do
		local h = fnv1a(str, 0x811C9DC5 + k * 0x01000193)
		for j = 0, 3 do out[k * 4 + j] = band(rshift(h, 24 - 8 * j), 255) end
	end
	return out
end

-- Compute the identity strings and designators once (attach).
function M.setup(dev, s, conf)
	local info = dev.info
	local name = ffi.string(info.name)
	local subtype = ffi.string(info.subtype)
	local id = derive16('tcmu-lua:' .. name)
	s.serial = conf.serial or string.format('%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x',
		id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7],
		id[8], id[9], id[10], id[11], id[12], id[13], id[14], id[15])
	s.vendor = (conf.vendor or 'LIO-ORG'):sub(1, 8)
	s.product = (conf.product or ('TCMU ' .. (subtype ~= '' and subtype or 'lua'))):sub(1, 16)
	s.revision = (conf.revision or '0001'):sub(1, 4)
	-- NAA 6 (IEEE Registered Extended, SPC-4 7.8.6.6.5): NAA(4) OUI(24)
	-- VENDOR SPECIFIC IDENTIFIER(36) + EXTENSION(64), from the serial.
	local naa = ffi.new('uint8_t[16]')
	if conf.wwn then
		local hex = conf.wwn:gsub('^naa%.', ''):gsub('[^%x]', '')
		assert(#hex == 32 and hex:sub(1, 1) == '6', 'scsi: wwn must be 32 hex digits of an NAA 6 name')
		for i = 0, 15 do naa[i] = tonumber(hex:sub(2 * i + 1, 2 * i + 2), 16) end
	else
		local oui = conf.naa_oui or M.DEFAULT_OUI
		local v = derive16('naa:' .. s.serial)
		naa[0] = bor(0x60, band(rshift(oui, 20), 0x0F))
		naa[1] = band(rshift(oui, 12), 255)
		naa[2] = band(rshift(oui, 4), 255)
		naa[3] = bor(lshift(band(oui, 0x0F), 4), band(v[0], 0x0F))
		for i = 4, 15 do naa[i] = v[i] end
	end
	s.naa = naa
	s.caw_max = math.min(255, math.floor(s.scratch_bytes / info.block_size))
	-- Zeros written for an UNMAP cost time: bound what one command asks.
	s.max_unmap_blocks = s.zero_unmap and math.floor(rw.ZERO_UNMAP_BYTES / info.block_size)
		or rw.MAX_UNMAP_BLOCKS
	s.rotation_rate = conf.rotation_rate or 1	-- 1: non-rotating medium
	s.unmap_granularity = conf.unmap_granularity or 1
	local pbs = conf.physical_block_size or info.block_size
	local e = 0
	while info.block_size * 2 ^ (e + 1) <= pbs do e = e + 1 end
	s.pb_exponent = e
end

-- Standard INQUIRY data (SPC-4 6.6.2): 74 bytes, version descriptors included.
local STD_LEN = 74
local function standard(s, p)
	ffi.fill(p, STD_LEN, 0)
	p[0] = 0x00		-- PERIPHERAL QUALIFIER 0, DEVICE TYPE 0: direct access block
	p[1] = 0x00		-- RMB=0: not removable
	p[2] = 0x06		-- VERSION: SPC-4
	p[3] = 0x12		-- HISUP=1, RESPONSE DATA FORMAT=2 (NORMACA=0: no ACA)
	p[4] = STD_LEN - 5	-- ADDITIONAL LENGTH, whatever the allocation length
	-- 3PC: EXTENDED COPY works when we can write.  TPGS=0: ALUA is the
	-- kernel's.  PROTECT=0: no protection information.
	p[5] = (s.h_write and s.h_read) and 0x08 or 0x00
	p[6] = 0x00
	p[7] = 0x02		-- CMDQUE=1: commands are queued
	put_ascii(p, 8, s.vendor, 8)
	put_ascii(p, 16, s.product, 16)
	put_ascii(p, 32, s.revision, 4)
	put16(p, 58, 0x00A0)	-- SAM-5
	put16(p, 60, 0x0460)	-- SPC-4
	put16(p, 62, 0x04C0)	-- SBC-3
	return STD_LEN
end

local vpd = {}

-- 0x00 Supported VPD Pages (SPC-4 7.8.13).
local PAGES = { 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2 }
vpd[0x00] = function(s, p)
	for i, code in ipairs(PAGES) do p[3 + i] = code end
	return 4 + #PAGES
end

-- 0x80 Unit Serial Number (SPC-4 7.8.15).
vpd[0x80] = function(s, p)
	put_ascii(p, 4, s.serial, #s.serial)
	return 4 + #s.serial
end

-- 0x83 Device Identification (SPC-4 7.8.6): two logical-unit designators.
vpd[0x83] = function(s, p)
	local n = 4
	-- NAA, binary (code set 1), association 0 (the logical unit), type 3.
	p[n] = 0x01; p[n + 1] = 0x03; p[n + 3] = 16
	ffi.copy(p + n + 4, s.naa, 16)
	n = n + 20
	-- T10 vendor ID, ASCII (code set 2), type 1: vendor + serial number.
	local id = string.format('%-8s%s', s.vendor, s.serial)
	p[n] = 0x02; p[n + 1] = 0x01; p[n + 3] = #id
	put_ascii(p, n + 4, id, #id)
	n = n + 4 + #id
	return n
end

-- 0xB0 Block Limits (SBC-3 6.5.3).
vpd[0xB0] = function(s, p)
	local info = s.info
	p[4] = 0x01				-- WSNZ: WRITE SAME of 0 blocks is refused
	p[5] = (s.h_write and s.h_read) and s.caw_max or 0	-- MAXIMUM COMPARE AND WRITE LENGTH
	put16(p, 6, 0)				-- OPTIMAL TRANSFER LENGTH GRANULARITY
	put32(p, 8, info.max_xfer_blocks)	-- MAXIMUM TRANSFER LENGTH (0: none)
	put32(p, 12, info.max_xfer_blocks)	-- OPTIMAL TRANSFER LENGTH
	put32(p, 16, 0)				-- MAXIMUM PREFETCH LENGTH
	if s.can_unmap then
		put32(p, 20, s.max_unmap_blocks)	-- MAXIMUM UNMAP LBA COUNT
		put32(p, 24, rw.MAX_UNMAP_DESCRIPTORS)	-- MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
		put32(p, 28, s.unmap_granularity)	-- OPTIMAL UNMAP GRANULARITY
	end
	put64(p, 36, rw.MAX_WRITE_SAME_BLOCKS)	-- MAXIMUM WRITE SAME LENGTH
	return 64
end

-- 0xB1 Block Device Characteristics (SBC-3 6.5.2).
vpd[0xB1] = function(s, p)
	put16(p, 4, s.rotation_rate)		-- MEDIUM ROTATION RATE
	return 64
end

-- 0xB2 Logical Block Provisioning (SBC-3 6.5.4).
vpd[0xB2] = function(s, p)
	if s.can_unmap then
		-- LBPU (UNMAP), LBPWS (WRITE SAME(16) UNMAP), LBPWS10, LBPRZ.
		p[5] = bor(0xE0, s.lbprz and 0x04 or 0)
		-- PROVISIONING TYPE: thin, or resource provisioned when unmapping
		-- writes zeros and gives nothing back.
		p[6] = s.zero_unmap and 0x01 or 0x02
	end
	return 8
end

-- INQUIRY, SPC-4 6.6.
local function inquiry(dev, cmd, s)
	local cdb = cmd.cdb
	local evpd, page, alloc = band(cdb[1], 0x01), cdb[2], u16(cdb, 3)
	if band(cdb[1], 0x02) ~= 0 then return invalid_cdb(dev, cmd, 1, 1) end	-- CMDDT (obsolete)
	local p = s.buf
	if evpd == 0 then
		if page ~= 0 then return invalid_cdb(dev, cmd, 2) end
		return reply(dev, cmd, p, standard(s, p), alloc)
	end
	local f = vpd[page]
	if f == nil then return invalid_cdb(dev, cmd, 2) end
	ffi.fill(p, 256, 0)
	p[0] = 0x00		-- peripheral qualifier/device type, as above
	p[1] = page
	local n = f(s, p)
	put16(p, 2, n - 4)	-- PAGE LENGTH
	return reply(dev, cmd, p, n, alloc)
end

M.vpd_pages = PAGES
M.commands = { [0x12] = inquiry }

return M
