-- The READ/WRITE path must stay compiled: run 100k commands through
-- scsi.execute and fail if any trace aborts inside scsi/rw.lua (or the
-- entry and the helpers it calls).
local S = dofile(debug.getinfo(1, 'S').source:match('^@(.-)[^/]*$') .. 'support.lua')
local jit = require('jit')
local util = require('jit.util')

describe('JIT', function()
	it('compiles READ and WRITE without trace aborts in the library', function()
		if not jit.status() then
			pending('the JIT is off')
			return
		end
		-- A handler that moves no data: what is measured is the library.
		local dev = S.device({ handler = {
			read = function() return true end,
			write = function() return true end,
		} })
		local rd = S.cmd(S.cdb10(0x28, 0, 0, 8), 4096)
		local wr = S.cmd(S.cdb10(0x2A, 0, 0, 8), 4096)
		local aborts = {}
		local function on_trace(what, tr, func, pc, otr, oex)
			if what == 'abort' then
				local info = util.funcinfo(func, pc)
				local src = info.source or '?'
				if src:find('lib/scsi/', 1, true) then
					aborts[#aborts + 1] = string.format('%s:%s %s', src,
						tostring(info.currentline), tostring(oex))
				end
			end
		end
		jit.flush()
		jit.attach(on_trace, 'trace')
		local execute = S.scsi.execute
		local ok, err = pcall(function()
			for i = 1, 100000 do
				local lba = i % 2000
				rd.cdb[5] = lba % 256; rd.cdb[4] = math.floor(lba / 256)
				wr.cdb[5] = lba % 256; wr.cdb[4] = math.floor(lba / 256)
				execute(dev, rd)
				execute(dev, wr)
			end
		end)
		jit.attach(on_trace)
		assert.is_true(ok, err)
		assert.are.equal(0, rd.status)
		assert.are.equal(4096, rd.read_len)
		assert.are.equal(0, wr.status)
		assert.are.same({}, aborts)
	end)
end)
