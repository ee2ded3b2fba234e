-- EXTENDED COPY(LID1) and RECEIVE COPY RESULTS.
local S = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'support.lua')
local be, cat = S.be, S.cat

-- Our NAA designator, read from VPD page 0x83.
local function naa(dev)
	local r = S.run(dev, { 0x12, 1, 0x83, 0, 255, 0 }, 255)
	local t = {}
	for i = 0, 15 do t[i + 1] = S.u8(r, 8 + i) end
	return t
end

local function cscd(id, bs)
	return cat(0xE4, 0x00, 0, 0, 0x01, 0x03, 0, 16, id, 0, 0, 0, 0, 0x00, be(3, bs or 512))
end
local function segment(src, dst, n, slba, dlba)
	return cat(0x02, 0, be(2, 0x18), be(2, src), be(2, dst), 0, 0, be(2, n), be(8, slba), be(8, dlba))
end
local function plist(list_id, usage, cscds, segs, inline)
	return cat(list_id, usage * 8, be(2, #cscds), 0, 0, 0, 0, be(4, #segs), be(4, inline or 0), cscds, segs)
end
local function xcopy(dev, data, plen)
	return S.run(dev, cat(0x83, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, be(4, plen or #data), 0, 0), S.tostr(data))
end

for _, mode in ipairs({ 'sync', 'async' }) do
describe('EXTENDED COPY (' .. mode .. ')', function()
	local dev, id
	before_each(function()
		dev = S.device({ async = mode == 'async' })
		id = naa(dev)
	end)

	it('copies block ranges within the device', function()
		local a, b = S.pattern(4 * 512, 1), S.pattern(2 * 512, 2)
		S.poke(dev, 0, a)
		S.poke(dev, 100 * 512, b)
		local data = plist(1, 0, cat(cscd(id), cscd(id)),
			cat(segment(0, 1, 4, 0, 500), segment(1, 0, 2, 100, 700)))
		local r = xcopy(dev, data)
		assert.are.equal(0, r.status)
		assert.are.equal(1, r.completions)
		assert.are.equal(a, S.peek(dev, 500 * 512, 4 * 512))
		assert.are.equal(b, S.peek(dev, 700 * 512, 2 * 512))
		-- RECEIVE COPY STATUS for list 1
		local st = S.run(dev, cat(0x84, 0x00, 1, 0, 0, 0, 0, 0, 0, 0, be(4, 12), 0, 0), 12)
		assert.are.equal(0, st.status)
		assert.are.equal(8, S.u32(st, 0))
		assert.are.equal(0, S.u8(st, 4))
		assert.are.equal(2, S.u16(st, 5))
		assert.are.equal(6 * 512, S.u32(st, 8))
	end)

	it('copies overlapping ranges as if read first', function()
		dev = S.device({ async = mode == 'async', conf = { scratch_kb = 1 } })
		id = naa(dev)
		local a = S.pattern(8 * 512, 3)
		S.poke(dev, 0, a)
		local r = xcopy(dev, plist(0, 3, cscd(id), segment(0, 0, 8, 0, 3)))
		assert.are.equal(0, r.status)
		assert.are.equal(a, S.peek(dev, 3 * 512, 8 * 512))
		S.poke(dev, 100 * 512, a)
		r = xcopy(dev, plist(0, 3, cscd(id), segment(0, 0, 8, 100, 97)))
		assert.are.equal(a, S.peek(dev, 97 * 512, 8 * 512))
	end)

	it('parameter list length 0 is GOOD; under 16 is PARAMETER LIST LENGTH ERROR', function()
		assert.are.equal(0, xcopy(dev, {}, 0).status)
		assert.are.equal(0x1A, xcopy(dev, { 0, 0, 0, 0 }).asc)
	end)

	it('descriptor lists longer than the parameter list are PARAMETER LIST LENGTH ERROR', function()
		local data = plist(0, 3, cscd(id), segment(0, 0, 1, 0, 1))
		data[12] = data[12] + 28	-- SEGMENT DESCRIPTOR LIST LENGTH too big
		assert.are.equal(0x1A, xcopy(dev, data).asc)
	end)

	it('another device\'s designator is COPY ABORTED, UNREACHABLE COPY TARGET', function()
		local other = {}
		for i = 1, 16 do other[i] = id[i] end
		other[16] = (other[16] + 1) % 256
		local r = xcopy(dev, plist(0, 3, cscd(other), segment(0, 0, 1, 0, 1)))
		assert.are.equal(0x0A, r.key)
		assert.are.equal(0x08, r.asc)
		assert.are.equal(0x04, r.ascq)
		assert.are.same({}, dev.calls)
	end)

	it('a CSCD type other than E4h is UNSUPPORTED TARGET DESCRIPTOR TYPE CODE', function()
		local d = cscd(id)
		d[1] = 0xE0
		local r = xcopy(dev, plist(0, 3, d, segment(0, 0, 1, 0, 1)))
		assert.are.equal(0x26, r.asc)
		assert.are.equal(0x07, r.ascq)
		assert.are.equal(16, S.sks(r).field)
	end)

	it('a segment type other than 02h is UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE', function()
		local s = segment(0, 0, 1, 0, 1)
		s[1] = 0x0A
		local r = xcopy(dev, plist(0, 3, cscd(id), s))
		assert.are.equal(0x26, r.asc)
		assert.are.equal(0x09, r.ascq)
		assert.are.equal(48, S.sks(r).field)
	end)

	it('too many CSCD or segment descriptors', function()
		local many = {}
		for _ = 1, 9 do many = cat(many, cscd(id)) end
		assert.are.equal(0x06, xcopy(dev, plist(0, 3, many, segment(0, 0, 1, 0, 1))).ascq)
		local segs = {}
		for _ = 1, 65 do segs = cat(segs, segment(0, 0, 1, 0, 1)) end
		assert.are.equal(0x08, xcopy(dev, plist(0, 3, cscd(id), segs)).ascq)
	end)

	it('a CSCD index past the list points at it', function()
		local r = xcopy(dev, plist(0, 3, cscd(id), segment(0, 1, 1, 0, 1)))
		assert.are.equal(0x26, r.asc)
		assert.are.equal(16 + 32 + 6, S.sks(r).field)
	end)

	it('a wrong disk block length points at it', function()
		local r = xcopy(dev, plist(0, 3, cscd(id, 4096), segment(0, 0, 1, 0, 1)))
		assert.are.equal(0x26, r.asc)
		assert.are.equal(16 + 29, S.sks(r).field)
	end)

	it('inline data is refused', function()
		local r = xcopy(dev, plist(0, 3, cscd(id), segment(0, 0, 1, 0, 1), 4))
		assert.are.equal(0x26, r.asc)
		assert.are.equal(12, S.sks(r).field)
	end)

	it('ranges past the end are LBA OUT OF RANGE before anything is copied', function()
		local r = xcopy(dev, plist(0, 3, cscd(id), cat(segment(0, 0, 1, 0, 1), segment(0, 0, 2, 0, 2047))))
		assert.are.equal(0x21, r.asc)
		assert.are.same({}, dev.calls)
	end)

	it('a read-only device is WRITE PROTECTED', function()
		dev = S.device({ read_only = true })
		assert.are.equal(0x27, xcopy(dev, plist(0, 3, cscd(naa(dev)), segment(0, 0, 1, 0, 1))).asc)
	end)

	it('a read error is reported and the copy status says so', function()
		dev.fail_read = S.scsi.sense.MEDIUM_ERROR
		local r = xcopy(dev, plist(7, 0, cscd(id), segment(0, 0, 1, 0, 1)))
		assert.are.equal(0x11, r.asc)
		local st = S.run(dev, cat(0x84, 0x00, 7, 0, 0, 0, 0, 0, 0, 0, be(4, 12), 0, 0), 12)
		assert.are.equal(1, S.u8(st, 4))
	end)
end)
end

describe('RECEIVE COPY RESULTS', function()
	it('OPERATING PARAMETERS lists the limits and descriptor types', function()
		local dev = S.device()
		local r = S.run(dev, cat(0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, be(4, 64), 0, 0), 64)
		assert.are.equal(0, r.status)
		assert.are.equal(46, r.read_len)
		assert.are.equal(42, S.u32(r, 0))
		assert.are.equal(1, S.u8(r, 4))
		assert.are.equal(8, S.u16(r, 8))
		assert.are.equal(64, S.u16(r, 10))
		assert.are.equal(2, S.u8(r, 43))
		assert.are.equal(0x02, S.u8(r, 44))
		assert.are.equal(0xE4, S.u8(r, 45))
	end)
	it('COPY STATUS of an unknown list is INVALID FIELD IN CDB at byte 2', function()
		local r = S.run(S.device(), cat(0x84, 0x00, 9, 0, 0, 0, 0, 0, 0, 0, be(4, 12), 0, 0), 12)
		assert.are.equal(0x24, r.asc)
		assert.are.equal(2, S.sks(r).field)
	end)
	it('an unsupported service action points at it', function()
		local r = S.run(S.device(), cat(0x84, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, be(4, 12), 0, 0), 12)
		assert.are.equal(0x24, r.asc)
		assert.are.equal(1, S.sks(r).field)
	end)
end)
