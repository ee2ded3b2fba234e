-- MODE SENSE(6/10), MODE SELECT(6/10), D_SENSE and WCE.
local S = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'support.lua')
local be, cat = S.be, S.cat

local function sense6(dev, b1, b2, sub, alloc)
	return S.run(dev, { 0x1A, b1, b2, sub or 0, alloc, 0 }, alloc)
end
local function sense10(dev, b1, b2, sub, alloc)
	return S.run(dev, cat(0x5A, b1, b2, sub or 0, 0, 0, 0, be(2, alloc), 0), alloc)
end
local function select6(dev, data, b1)
	return S.run(dev, { 0x15, b1 or 0x10, 0, 0, #data, 0 }, S.tostr(data))
end
local function select10(dev, data, b1)
	return S.run(dev, cat(0x55, b1 or 0x10, 0, 0, 0, 0, 0, be(2, #data), 0), S.tostr(data))
end

-- The current Caching page (20 bytes) as a table.
local function caching(dev)
	local r = sense6(dev, 0x08, 0x08, 0, 255)
	local t = {}
	for i = 0, 19 do t[i + 1] = S.u8(r, 4 + i) end
	return t
end

describe('MODE SENSE', function()
	local dev
	before_each(function() dev = S.device() end)

	it('(6) all pages: header, block descriptor, pages in ascending order', function()
		local r = sense6(dev, 0, 0x3F, 0, 255)
		assert.are.equal(0, r.status)
		local total = 4 + 8 + 12 + 20 + 12 + 12
		assert.are.equal(total, r.read_len)
		assert.are.equal(total - 1, S.u8(r, 0))	-- MODE DATA LENGTH
		assert.are.equal(0x10, S.u8(r, 2))		-- DPOFUA, not WP
		assert.are.equal(8, S.u8(r, 3))			-- block descriptor length
		assert.are.equal(2048, S.u32(r, 4))
		assert.are.equal(512, S.u32(r, 8))
		local pages, at = {}, 12
		while at < total do
			pages[#pages + 1] = S.u8(r, at)
			at = at + 2 + S.u8(r, at + 1)
		end
		assert.are.same({ 0x01, 0x08, 0x0A, 0x1C }, pages)
	end)

	it('DBD leaves out the block descriptor', function()
		local r = sense6(dev, 0x08, 0x0A, 0, 255)
		assert.are.equal(16, r.read_len)
		assert.are.equal(0, S.u8(r, 3))
		assert.are.equal(0x0A, S.u8(r, 4))
		assert.are.equal(0x0A, S.u8(r, 5))
		assert.are.equal(0x10, S.u8(r, 7))	-- QUEUE ALGORITHM MODIFIER 1
	end)

	it('WP is set on a read-only device', function()
		dev = S.device({ read_only = true })
		assert.are.equal(0x90, S.u8(sense6(dev, 0x08, 0x3F, 0, 255), 2))
	end)

	it('(10) with LLBAA returns a 16-byte block descriptor', function()
		local r = sense10(dev, 0x10, 0x08, 0, 255)
		assert.are.equal(8 + 16 + 20, r.read_len)
		assert.are.equal(8 + 16 + 20 - 2, S.u16(r, 0))
		assert.are.equal(0x01, S.u8(r, 4))	-- LONGLBA
		assert.are.equal(16, S.u16(r, 6))
		assert.are.equal(2048, S.u64(r, 8))
		assert.are.equal(512, S.u32(r, 20))
	end)

	it('(10) without LLBAA uses the short descriptor', function()
		local r = sense10(dev, 0, 0x01, 0, 255)
		assert.are.equal(8 + 8 + 12, r.read_len)
		assert.are.equal(0, S.u8(r, 4))
		assert.are.equal(8, S.u16(r, 6))
	end)

	it('changeable values: WCE and D_SENSE only', function()
		local r = sense6(dev, 0x08, 0x40 + 0x08, 0, 255)
		assert.are.equal(0x04, S.u8(r, 4 + 2))
		for i = 3, 19 do assert.are.equal(0, S.u8(r, 4 + i)) end
		r = sense6(dev, 0x08, 0x40 + 0x0A, 0, 255)
		assert.are.equal(0x04, S.u8(r, 4 + 2))
		assert.are.equal(0, S.u8(r, 4 + 3))
		r = sense6(dev, 0x08, 0x40 + 0x01, 0, 255)
		assert.are.equal(0, S.u8(r, 4 + 2))
	end)

	it('WCE is not changeable without a flush callback', function()
		dev = S.device({ no = { flush = true } })
		assert.are.equal(0, S.u8(sense6(dev, 0x08, 0x48, 0, 255), 6))
		assert.are.equal(0, S.u8(sense6(dev, 0x08, 0x08, 0, 255), 6))
	end)

	it('default values', function()
		dev = S.device({ write_cache = 0 })
		assert.are.equal(0, S.u8(sense6(dev, 0x08, 0x88, 0, 255), 6))
		assert.are.equal(0x08, S.u8(sense6(dev, 0x08, 0x9C, 0, 255), 6))	-- DEXCPT
	end)

	it('saved values are SAVING PARAMETERS NOT SUPPORTED', function()
		local r = sense6(dev, 0, 0xC8, 0, 255)
		assert.are.equal(2, r.status)
		assert.are.equal(0x05, r.key)
		assert.are.equal(0x39, r.asc)
	end)

	it('an unknown page is INVALID FIELD IN CDB at byte 2 bit 5', function()
		local r = sense6(dev, 0, 0x02, 0, 255)
		assert.are.equal(0x24, r.asc)
		assert.are.equal(2, S.sks(r).field)
		assert.are.equal(5, S.sks(r).bit)
	end)

	it('a subpage is INVALID FIELD IN CDB at byte 3, but FFh means all', function()
		local r = sense6(dev, 0, 0x08, 0x01, 255)
		assert.are.equal(0x24, r.asc)
		assert.are.equal(3, S.sks(r).field)
		assert.are.equal(0, sense6(dev, 0, 0x3F, 0xFF, 255).status)
	end)

	it('truncates to the allocation length but keeps MODE DATA LENGTH', function()
		local r = sense6(dev, 0, 0x3F, 0, 10)
		assert.are.equal(10, r.read_len)
		assert.are.equal(4 + 8 + 56 - 1, S.u8(r, 0))
	end)
end)

describe('MODE SELECT', function()
	local dev
	before_each(function() dev = S.device() end)

	it('turns the write cache off and on (WCE honoured)', function()
		local page = caching(dev)
		assert.are.equal(0x04, page[3])
		page[1] = 0x08
		page[3] = 0
		local r = select6(dev, cat(0, 0, 0, 0, page))
		assert.are.equal(0, r.status)
		-- the change is a unit attention: MODE PARAMETERS CHANGED, once
		local ua = S.run(dev, { 0, 0, 0, 0, 0, 0 }, 0)
		assert.are.equal(0x06, ua.key)
		assert.are.equal(0x2A, ua.asc)
		assert.are.equal(0x01, ua.ascq)
		assert.are.equal(0, S.run(dev, { 0, 0, 0, 0, 0, 0 }, 0).status)
		assert.are.equal(0, caching(dev)[3])
		-- WCE=0: plain writes are flushed
		S.run(dev, S.cdb10(0x2A, 0, 0, 1), S.pattern(512))
		assert.are.equal(1, dev.flushes)
		page[3] = 0x04
		assert.are.equal(0, select10(dev, cat(0, 0, 0, 0, 0, 0, 0, 0, page)).status)
		S.run(dev, { 0, 0, 0, 0, 0, 0 }, 0)
		assert.are.equal(0x04, caching(dev)[3])
	end)

	it('D_SENSE switches errors to descriptor format', function()
		local r = S.run(dev, { 0x12, 0, 0x80, 0, 36, 0 }, 36)
		assert.are.equal(0x70, r.sense[0])
		local ctl = { 0x0A, 0x0A, 0x04, 0x10, 0, 0, 0, 0, 0, 0, 0, 0 }
		assert.are.equal(0, select6(dev, cat(0, 0, 0, 0, ctl)).status)
		S.run(dev, { 0, 0, 0, 0, 0, 0 }, 0)	-- the unit attention
		r = S.run(dev, { 0x12, 0, 0x80, 0, 36, 0 }, 36)
		assert.are.equal(0x72, r.sense[0])
		assert.are.equal(0x05, r.sense[1])
		assert.are.equal(0x24, r.sense[2])
		assert.are.equal(0x00, r.sense[3])
		assert.are.equal(8, r.sense[7])		-- one SKS descriptor
		assert.are.equal(0x02, r.sense[8])
		assert.are.equal(0x06, r.sense[9])
		assert.are.equal(0xC0, r.sense[12])	-- SKSV, C/D
		assert.are.equal(2, r.sense[14])
		assert.are.equal(16, r.sense_len)
	end)

	it('a block descriptor restating capacity and block size is accepted', function()
		local r = select6(dev, cat(0, 0, 0, 8, be(4, 2048), 0, be(3, 512)))
		assert.are.equal(0, r.status)
		r = select6(dev, cat(0, 0, 0, 8, be(4, 0), 0, be(3, 512)))
		assert.are.equal(0, r.status)
	end)

	it('a different block size is INVALID FIELD IN PARAMETER LIST at its byte', function()
		local r = select6(dev, cat(0, 0, 0, 8, be(4, 0), 0, be(3, 4096)))
		assert.are.equal(0x26, r.asc)
		local sks = S.sks(r)
		assert.is_false(sks.cd)
		assert.are.equal(9, sks.field)
	end)

	it('a change to a bit that is not changeable points at the byte and bit', function()
		local page = caching(dev)
		page[1] = 0x08
		page[3] = 0x04 + 0x01	-- RCD is not changeable
		local r = select6(dev, cat(0, 0, 0, 0, page))
		assert.are.equal(2, r.status)
		assert.are.equal(0x26, r.asc)
		local sks = S.sks(r)
		assert.is_false(sks.cd)
		assert.is_true(sks.bpv)
		assert.are.equal(4 + 2, sks.field)
		assert.are.equal(0, sks.bit)
		assert.are.equal(0x04, caching(dev)[3])	-- nothing changed
	end)

	it('a wrong page length points at the length byte', function()
		local r = select6(dev, cat(0, 0, 0, 0, 0x08, 0x10, be(16, 0)))
		assert.are.equal(0x26, r.asc)
		assert.are.equal(5, S.sks(r).field)
	end)

	it('an unsupported page points at the page code', function()
		local r = select6(dev, cat(0, 0, 0, 0, 0x02, 0x0E, be(14, 0)))
		assert.are.equal(0x26, r.asc)
		assert.are.equal(4, S.sks(r).field)
	end)

	it('a page cut short is PARAMETER LIST LENGTH ERROR', function()
		local r = select6(dev, cat(0, 0, 0, 0, 0x08, 0x12, 0, 0))
		assert.are.equal(0x1A, r.asc)
		r = select6(dev, { 0, 0 })
		assert.are.equal(0x1A, r.asc)
	end)

	it('PF=0 and SP=1 are INVALID FIELD IN CDB', function()
		local r = select6(dev, { 0, 0, 0, 0 }, 0x00)
		assert.are.equal(0x24, r.asc)
		assert.are.equal(4, S.sks(r).bit)
		r = select6(dev, { 0, 0, 0, 0 }, 0x11)
		assert.are.equal(0x24, r.asc)
		assert.are.equal(0, S.sks(r).bit)
	end)

	it('an empty parameter list is GOOD and changes nothing', function()
		assert.are.equal(0, S.run(dev, { 0x15, 0x10, 0, 0, 0, 0 }, 0).status)
		assert.are.equal(0, S.run(dev, { 0, 0, 0, 0, 0, 0 }, 0).status)
	end)

	it('a LUN reset restores the defaults and is a unit attention', function()
		local page = caching(dev)
		page[1], page[3] = 0x08, 0
		select6(dev, cat(0, 0, 0, 0, page))
		S.run(dev, { 0, 0, 0, 0, 0, 0 }, 0)
		S.scsi.on_tmr(dev, 5, 0)
		local r = S.run(dev, { 0, 0, 0, 0, 0, 0 }, 0)
		assert.are.equal(0x29, r.asc)
		assert.are.equal(0x03, r.ascq)
		assert.are.equal(0x04, caching(dev)[3])
	end)
end)
