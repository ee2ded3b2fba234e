-- scsi/cdb.lua: big-endian field readers and writers.
--
-- SCSI puts every multi-byte field most significant byte first.  These
-- helpers read such fields out of a uint8_t* (a CDB, a parameter list, a
-- response buffer) as plain Lua numbers.  Numbers are doubles, exact up to
-- 2^53: an LBA or byte offset above that is out of range for any device we
-- can serve, so nothing is lost that matters.  Everything here compiles
-- (no NYI) so the READ/WRITE path may use it.
local bit = require('bit')
local band, rshift = bit.band, bit.rshift
local floor = math.floor

local M = {}

function M.u16(p, i) return p[i] * 256 + p[i + 1] end
function M.u24(p, i) return (p[i] * 256 + p[i + 1]) * 256 + p[i + 2] end
function M.u32(p, i)
	return ((p[i] * 256 + p[i + 1]) * 256 + p[i + 2]) * 256 + p[i + 3]
end
function M.u64(p, i)
	return M.u32(p, i) * 4294967296 + M.u32(p, i + 4)
end

-- Bits hi..hi-n+1 of byte p[i] (bit 7 is the most significant).
function M.bits(p, i, hi, n)
	return band(rshift(p[i], hi - n + 1), 2 ^ n - 1)
end

-- The writers take a number 0 <= v < 2^53.  bit ops work modulo 2^32.
function M.put16(p, i, v)
	p[i] = band(rshift(v, 8), 255); p[i + 1] = band(v, 255)
end
function M.put24(p, i, v)
	p[i] = band(rshift(v, 16), 255); p[i + 1] = band(rshift(v, 8), 255)
	p[i + 2] = band(v, 255)
end
function M.put32(p, i, v)
	p[i] = band(rshift(v, 24), 255); p[i + 1] = band(rshift(v, 16), 255)
	p[i + 2] = band(rshift(v, 8), 255); p[i + 3] = band(v, 255)
end
function M.put64(p, i, v)
	local hi = floor(v / 4294967296)
	M.put32(p, i, hi)
	M.put32(p, i + 4, v - hi * 4294967296)
end

-- Copy a Lua string into p[i..i+n-1], padded with spaces (SPC ASCII fields).
function M.put_ascii(p, i, s, n)
	for k = 0, n - 1 do
		local c = s:byte(k + 1)
		p[i + k] = c or 0x20
	end
end

-- The CDB length of an operation code, from its group code (SPC-4 4.2.5.1).
-- Groups 3 (variable length) and 6/7 (vendor specific) return nil.
local group_len = { [0] = 6, 10, 10, nil, 16, 12 }
function M.length(opcode)
	return group_len[rshift(opcode, 5)]
end

return M
