-- INQUIRY (standard and VPD) and READ CAPACITY(10)/(16).
local S = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'support.lua')
local be, cat = S.be, S.cat

local function inquiry(dev, evpd, page, alloc)
	return S.run(dev, cat(0x12, evpd, page, be(2, alloc), 0), alloc)
end

describe('INQUIRY', function()
	local dev
	before_each(function() dev = S.device({ name = 'disk7' }) end)

	it('standard data describes a SPC-4 direct-access disk', function()
		local r = inquiry(dev, 0, 0, 255)
		assert.are.equal(0, r.status)
		assert.are.equal(74, r.read_len)
		assert.are.equal(0x00, S.u8(r, 0))		-- direct access block device
		assert.are.equal(0x00, S.u8(r, 1))		-- not removable
		assert.are.equal(0x06, S.u8(r, 2))		-- SPC-4
		assert.are.equal(0x12, S.u8(r, 3))		-- HISUP, response format 2
		assert.are.equal(69, S.u8(r, 4))		-- additional length
		assert.are.equal(0x08, S.u8(r, 5))		-- 3PC, TPGS=0, PROTECT=0
		assert.are.equal(0x02, S.u8(r, 7))		-- CMDQUE
		assert.are.equal('LIO-ORG ', r.data:sub(9, 16))
		assert.are.equal('TCMU ram        ', r.data:sub(17, 32))
		assert.are.equal('0001', r.data:sub(33, 36))
		assert.are.equal(0x0460, S.u16(r, 60))	-- SPC-4 version descriptor
	end)

	it('read-only (no write) devices do not claim 3PC', function()
		dev = S.device({ no = { write = true } })
		assert.are.equal(0x00, S.u8(inquiry(dev, 0, 0, 36), 5))
	end)

	it('conf vendor/product/revision/serial are used', function()
		dev = S.device({ conf = { vendor = 'ACME', product = 'Rocket', revision = '2', serial = 'SN42' } })
		local r = inquiry(dev, 0, 0, 36)
		assert.are.equal('ACME    Rocket          2   ', r.data:sub(9, 36))
		r = inquiry(dev, 1, 0x80, 64)
		assert.are.equal('SN42', r.data:sub(5))
	end)

	for _, alloc in ipairs({ 0, 1, 4, 5, 36, 73, 74, 200 }) do
		it('keeps ADDITIONAL LENGTH and truncates to allocation length ' .. alloc, function()
			local r = inquiry(dev, 0, 0, alloc)
			assert.are.equal(0, r.status)
			assert.are.equal(math.min(alloc, 74), r.read_len)
			if alloc > 4 then assert.are.equal(69, S.u8(r, 4)) end
		end)
	end

	it('page code without EVPD is INVALID FIELD IN CDB at byte 2', function()
		local r = inquiry(dev, 0, 0x80, 36)
		assert.are.equal(2, r.status)
		assert.are.equal(0x24, r.asc)
		assert.are.equal(2, S.sks(r).field)
		assert.is_true(S.sks(r).cd)
		assert.are.equal(0, r.read_len)
	end)

	it('an unknown VPD page is INVALID FIELD IN CDB at byte 2', function()
		local r = inquiry(dev, 1, 0x99, 255)
		assert.are.equal(0x24, r.asc)
		assert.are.equal(2, S.sks(r).field)
	end)

	it('CMDDT is INVALID FIELD IN CDB at byte 1 bit 1', function()
		local r = inquiry(dev, 2, 0, 36)
		assert.are.equal(0x24, r.asc)
		assert.are.equal(1, S.sks(r).field)
		assert.are.equal(1, S.sks(r).bit)
	end)

	it('VPD 0x00 lists the pages', function()
		local r = inquiry(dev, 1, 0, 255)
		assert.are.equal(10, r.read_len)
		assert.are.same({ 0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2 },
			{ S.u8(r, 4), S.u8(r, 5), S.u8(r, 6), S.u8(r, 7), S.u8(r, 8), S.u8(r, 9) })
		assert.are.equal(6, S.u16(r, 2))
	end)

	it('VPD 0x80 serial is stable per device name and differs between names', function()
		local a = inquiry(dev, 1, 0x80, 255)
		local b = inquiry(S.device({ name = 'disk7' }), 1, 0x80, 255)
		local c = inquiry(S.device({ name = 'disk8' }), 1, 0x80, 255)
		assert.are.equal(0x80, S.u8(a, 1))
		assert.are.equal(32, S.u16(a, 2))
		assert.are.equal(a.data, b.data)
		assert.are_not.equal(a.data, c.data)
	end)

	it('VPD 0x83 has an NAA 6 and a T10 vendor id designator', function()
		local r = inquiry(dev, 1, 0x83, 255)
		assert.are.equal(0x83, S.u8(r, 1))
		local len = S.u16(r, 2)
		assert.are.equal(r.read_len - 4, len)
		-- NAA: binary, LU association, type 3, 16 bytes, NAA 6 + OUI 001405
		assert.are.same({ 0x01, 0x03, 0x00, 16 }, { S.u8(r, 4), S.u8(r, 5), S.u8(r, 6), S.u8(r, 7) })
		assert.are.equal(0x60, bit.band(S.u8(r, 8), 0xF0))
		assert.are.equal(0x600140, S.u8(r, 8) * 65536 + S.u8(r, 9) * 256 + S.u8(r, 10))
		assert.are.equal(0x5, bit.rshift(S.u8(r, 11), 4))
		-- T10 vendor id: ASCII, type 1
		assert.are.equal(0x02, S.u8(r, 24))
		assert.are.equal(0x01, S.u8(r, 25))
		assert.are.equal(8 + 32, S.u8(r, 27))
		assert.are.equal('LIO-ORG ', r.data:sub(29, 36))
		-- stable
		assert.are.equal(r.data, inquiry(S.device({ name = 'disk7' }), 1, 0x83, 255).data)
	end)

	it('VPD 0x83 uses a configured wwn', function()
		dev = S.device({ conf = { wwn = 'naa.6001405aabbccddeeff0011223344556' } })
		local r = inquiry(dev, 1, 0x83, 255)
		assert.are.equal(0x60, S.u8(r, 8))
		assert.are.equal(0x56, S.u8(r, 23))
	end)

	it('VPD 0xB0 block limits', function()
		dev = S.device({ max_xfer = 128 })
		local r = inquiry(dev, 1, 0xB0, 255)
		assert.are.equal(64, r.read_len)
		assert.are.equal(0x3C, S.u16(r, 2))
		assert.are.equal(1, S.u8(r, 4))		-- WSNZ
		assert.are.equal(255, S.u8(r, 5))	-- MAXIMUM COMPARE AND WRITE LENGTH
		assert.are.equal(128, S.u32(r, 8))	-- MAXIMUM TRANSFER LENGTH
		assert.are.equal(0xFFFFFFFF, S.u32(r, 20))	-- MAXIMUM UNMAP LBA COUNT
		assert.are.equal(256, S.u32(r, 24))	-- MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
		assert.are.equal(1, S.u32(r, 28))
		assert.are.equal(0x10000, S.u64(r, 36))	-- MAXIMUM WRITE SAME LENGTH
	end)

	it('VPD 0xB0 without unmap and write reports no unmap limits', function()
		dev = S.device({ no = { unmap = true, write = true } })
		local r = inquiry(dev, 1, 0xB0, 255)
		assert.are.equal(0, S.u32(r, 20))
		assert.are.equal(0, S.u32(r, 24))
	end)

	it('VPD 0xB0 with write but no unmap bounds the zeros one UNMAP writes', function()
		dev = S.device({ no = { unmap = true } })
		local r = inquiry(dev, 1, 0xB0, 255)
		assert.are.equal(32 * 1024 * 1024 / 512, S.u32(r, 20))	-- MAXIMUM UNMAP LBA COUNT
		assert.are.equal(256, S.u32(r, 24))
		dev = S.device({ no = { unmap = true }, block_size = 4096, blocks = 64 })
		assert.are.equal(32 * 1024 * 1024 / 4096, S.u32(inquiry(dev, 1, 0xB0, 255), 20))
	end)

	it('VPD 0xB1 says non-rotating by default', function()
		local r = inquiry(dev, 1, 0xB1, 255)
		assert.are.equal(1, S.u16(r, 4))
		assert.are.equal(0x3C, S.u16(r, 2))
	end)

	it('VPD 0xB2 follows the unmap callback', function()
		local r = inquiry(dev, 1, 0xB2, 255)
		assert.are.equal(4, S.u16(r, 2))
		assert.are.equal(0xE0, S.u8(r, 5))	-- LBPU, LBPWS, LBPWS10
		assert.are.equal(0x02, S.u8(r, 6))	-- thin
		dev = S.device({ conf = { unmap_zeroes = true } })
		assert.are.equal(0xE4, S.u8(inquiry(dev, 1, 0xB2, 255), 5))	-- + LBPRZ
		-- Only write: UNMAP writes zeros, so LBPRZ; resource provisioned.
		dev = S.device({ no = { unmap = true } })
		r = inquiry(dev, 1, 0xB2, 255)
		assert.are.equal(0xE4, S.u8(r, 5))
		assert.are.equal(0x01, S.u8(r, 6))
		dev = S.device({ no = { unmap = true, write = true } })
		r = inquiry(dev, 1, 0xB2, 255)
		assert.are.equal(0, S.u8(r, 5))
		assert.are.equal(0, S.u8(r, 6))
	end)

	it('VPD pages truncate to the allocation length', function()
		local r = inquiry(dev, 1, 0xB0, 10)
		assert.are.equal(10, r.read_len)
		assert.are.equal(0x3C, S.u16(r, 2))
	end)
end)

describe('READ CAPACITY', function()
	it('(10) returns the last LBA and the block length', function()
		local dev = S.device({ blocks = 1000, block_size = 4096 })
		local r = S.run(dev, { 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 8)
		assert.are.equal(0, r.status)
		assert.are.equal(8, r.read_len)
		assert.are.equal(999, S.u32(r, 0))
		assert.are.equal(4096, S.u32(r, 4))
	end)

	it('(10) with LBA but no PMI is INVALID FIELD IN CDB at byte 2', function()
		local dev = S.device()
		local r = S.run(dev, { 0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0 }, 8)
		assert.are.equal(0x24, r.asc)
		assert.are.equal(2, S.sks(r).field)
		assert.are.equal(0, S.run(dev, { 0x25, 0, 0, 0, 0, 1, 0, 0, 1, 0 }, 8).status)
	end)

	it('(10) says FFFFFFFFh when the capacity needs READ CAPACITY(16)', function()
		local dev = S.device({ blocks = 16 })
		dev.info.num_blocks = 0x100000001ULL
		local r = S.run(dev, { 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, 8)
		assert.are.equal(0xFFFFFFFF, S.u32(r, 0))
		r = S.run(dev, cat(0x9E, 0x10, be(8, 0), be(4, 32), 0, 0), 32)
		assert.are.equal(0x100000000, S.u64(r, 0))
	end)

	it('(16) returns 32 bytes with LBPME and LBPRZ', function()
		local dev = S.device({ blocks = 2048, conf = { unmap_zeroes = true, physical_block_size = 4096 } })
		local r = S.run(dev, cat(0x9E, 0x10, be(8, 0), be(4, 32), 0, 0), 32)
		assert.are.equal(0, r.status)
		assert.are.equal(32, r.read_len)
		assert.are.equal(2047, S.u64(r, 0))
		assert.are.equal(512, S.u32(r, 8))
		assert.are.equal(3, S.u8(r, 13))	-- 8 logical blocks per physical
		assert.are.equal(0xC0, S.u8(r, 14))
	end)

	it('(16) without unmap and write has LBPME=0', function()
		local dev = S.device({ no = { unmap = true, write = true } })
		local r = S.run(dev, cat(0x9E, 0x10, be(8, 0), be(4, 32), 0, 0), 32)
		assert.are.equal(0, S.u8(r, 14))
	end)

	it('(16) with write but no unmap has LBPME=1 and LBPRZ=1 (zeros)', function()
		local dev = S.device({ no = { unmap = true } })
		local r = S.run(dev, cat(0x9E, 0x10, be(8, 0), be(4, 32), 0, 0), 32)
		assert.are.equal(0xC0, S.u8(r, 14))
	end)

	it('(16) truncates to the allocation length', function()
		local dev = S.device()
		local r = S.run(dev, cat(0x9E, 0x10, be(8, 0), be(4, 12), 0, 0), 12)
		assert.are.equal(12, r.read_len)
		assert.are.equal(512, S.u32(r, 8))
	end)

	it('(16) with LBA but no PMI is INVALID FIELD IN CDB', function()
		local r = S.run(S.device(), cat(0x9E, 0x10, be(8, 5), be(4, 32), 0, 0), 32)
		assert.are.equal(0x24, r.asc)
	end)

	it('an unknown SERVICE ACTION IN service action points at the service action', function()
		local r = S.run(S.device(), cat(0x9E, 0x1F, be(8, 0), be(4, 32), 0, 0), 32)
		assert.are.equal(0x24, r.asc)
		assert.are.equal(1, S.sks(r).field)
		assert.are.equal(4, S.sks(r).bit)
	end)
end)
