-- End to end on the core's kernel simulator (only inside tcmu-lua): the ram
-- handler served through the real ring, real tl_ffi_* data functions and
-- the real runtime, with the scsi library answering.
local S = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'support.lua')
local have, T = pcall(require, 'tl.testing')
if have and not S.native then have = false end

local function bytes(t) return S.tostr(t) end

describe('scsi on the simulator', function()
	if not have then
		it('needs tcmu-lua (tl.testing)', function() pending('run with build/tcmu-lua test') end)
		return
	end
	local d
	before_each(function()
		d = assert(T.device({ handler = 'ram', size = 4 * 1024 * 1024, block_size = 512,
			handler_dirs = TEST_HANDLER_DIRS }))
	end)
	after_each(function() d:close() end)

	it('INQUIRY reports a residual when the buffer is larger than the data', function()
		local r = assert(d:exec(bytes({ 0x12, 0, 0, 0, 255, 0 }), { len = 255 }))
		assert.are.equal(0, r.status)
		assert.are.equal(74, r.read_len)
		assert.are.equal(0x06, r.data:byte(3))
	end)

	it('WRITE then READ return the data', function()
		local data = S.pattern(4096, 11)
		assert.are.equal(0, assert(d:exec(T.write10(8, 8), { data = data })).status)
		local r = assert(d:exec(T.read10(8, 8), { len = 4096 }))
		assert.are.equal(0, r.status)
		assert.are.equal(data, r.data)
	end)

	it('READ past the end is LBA OUT OF RANGE', function()
		local r = assert(d:exec(T.read16(8192, 1), { len = 512 }))
		assert.are.equal(2, r.status)
		assert.are.equal(5, r.sense_key)
		assert.are.equal(0x21, r.asc)
	end)

	it('COMPARE AND WRITE compares and writes, and reports a miscompare offset', function()
		local old, new = S.pattern(512, 1), S.pattern(512, 2)
		assert(d:exec(T.write10(3, 1), { data = old }))
		local cdb = bytes(S.cat(0x89, 0, S.be(8, 3), 0, 0, 0, 1, 0, 0))
		assert.are.equal(0, assert(d:exec(cdb, { data = old .. new })).status)
		local r = assert(d:exec(cdb, { data = old .. new }))
		assert.are.equal(0x0E, r.sense_key)
		assert.are.equal(0x1D, r.asc)
		assert.are.equal(new, assert(d:exec(T.read10(3, 1), { len = 512 })).data)
	end)

	it('EXTENDED COPY copies within the device', function()
		local inq = assert(d:exec(bytes({ 0x12, 1, 0x83, 0, 255, 0 }), { len = 255 }))
		local naa = inq.data:sub(9, 24)
		local data = S.pattern(1024, 5)
		assert(d:exec(T.write10(0, 2), { data = data }))
		local cscd = string.char(0xE4, 0, 0, 0, 1, 3, 0, 16) .. naa .. string.char(0, 0, 0, 0, 0, 0, 2, 0)
		local seg = bytes(S.cat(0x02, 0, S.be(2, 0x18), S.be(2, 0), S.be(2, 0), 0, 0, S.be(2, 2),
			S.be(8, 0), S.be(8, 100)))
		local list = bytes(S.cat(0, 0x18, S.be(2, 32), 0, 0, 0, 0, S.be(4, 28), S.be(4, 0))) .. cscd .. seg
		local r = assert(d:exec(bytes(S.cat(0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, S.be(4, #list), 0, 0)),
			{ data = list }))
		assert.are.equal(0, r.status)
		assert.are.equal(data, assert(d:exec(T.read10(100, 2), { len = 1024 })).data)
	end)

	it('a resize is a CAPACITY DATA HAS CHANGED unit attention, then the new capacity', function()
		assert(d:resize(8 * 1024 * 1024) == 0)
		local r = assert(d:exec(bytes({ 0, 0, 0, 0, 0, 0 })))
		assert.are.equal(6, r.sense_key)
		assert.are.equal(0x2A, r.asc)
		assert.are.equal(0x09, r.ascq)
		r = assert(d:exec(bytes({ 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0 }), { len = 8 }))
		assert.are.equal(16383, (r.data:byte(3) * 256 + r.data:byte(4)))
	end)
end)
