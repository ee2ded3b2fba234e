-- tests/lua/scsi/support.lua: a fake device and fake commands for the
-- scsi library specs.
--
-- Inside tcmu-lua the ABI is declared and ffi.C has the tl_ffi_* data
-- functions.  Under a plain luajit we ffi.cdef the ABI from
-- bindings/tl_abi.h and give the library pure-Lua copy/fill/memcmp (specs
-- only) through scsi.set_data_ops.
if package.loaded['scsi.spec_support'] then return package.loaded['scsi.spec_support'] end
local ffi = require('ffi')
local bit = require('bit')

local here = debug.getinfo(1, 'S').source:match('^@(.*)tests/lua/scsi/support%.lua$') or './'
if here == '' then here = './' end
package.path = here .. 'lua/lib/?.lua;' .. here .. 'lua/lib/?/init.lua;' .. package.path

local S = {}
S.root = here
package.loaded['scsi.spec_support'] = S

if not pcall(ffi.typeof, 'struct tl_cmd') then
	local f = assert(io.open(here .. 'bindings/tl_abi.h', 'r'))
	local text = f:read('*a')
	f:close()
	ffi.cdef(assert(text:match('/%* FFI%-BEGIN %*/(.-)/%* FFI%-END %*/')))
end

-- Pure-Lua equivalents of the tl_ffi_* data functions, walking the iovecs.
local function walk(cmd, off, len, fn)
	local done = 0
	for i = 0, cmd.iov_cnt - 1 do
		if done >= len then break end
		local l = tonumber(cmd.iov[i].len)
		if off >= l then
			off = off - l
		else
			local n = math.min(l - off, len - done)
			fn(cmd.iov[i].base + off, done, n)
			done = done + n
			off = 0
		end
	end
	return done
end

S.lua_ops = {
	copy_to = function(cmd, off, src, len)
		src = ffi.cast('const uint8_t *', src)
		return walk(cmd, off, len, function(p, at, n) ffi.copy(p, src + at, n) end)
	end,
	copy_from = function(cmd, off, dst, len)
		dst = ffi.cast('uint8_t *', dst)
		return walk(cmd, off, len, function(p, at, n) ffi.copy(dst + at, p, n) end)
	end,
	fill = function(cmd, off, byte, len)
		return walk(cmd, off, len, function(p, at, n) ffi.fill(p, n, byte) end)
	end,
	memcmp = function(cmd, off, buf, len, mismatch)
		buf = ffi.cast('const uint8_t *', buf)
		local found
		walk(cmd, off, len, function(p, at, n)
			if found then return end
			for k = 0, n - 1 do
				if p[k] ~= buf[at + k] then found = at + k; return end
			end
		end)
		if found then
			if mismatch ~= nil then mismatch[0] = found end
			return 1
		end
		return 0
	end,
}

S.native = pcall(function() return ffi.C.tl_ffi_copy_to end)
local scsi = require('scsi')
if not S.native then scsi.set_data_ops(S.lua_ops) end
S.scsi = scsi
local D = require('scsi.dataops')
S.D = D

------------------------------------------------------------------------
-- Byte helpers.

-- Big-endian bytes of v (n bytes) as a table.
function S.be(n, v)
	local t = {}
	for i = n, 1, -1 do
		t[i] = v % 256
		v = math.floor(v / 256)
	end
	return t
end

-- Concatenate tables of bytes and numbers into one table.
function S.cat(...)
	local out = {}
	for _, x in ipairs({ ... }) do
		if type(x) == 'table' then
			for _, b in ipairs(x) do out[#out + 1] = b end
		else
			out[#out + 1] = x
		end
	end
	return out
end

-- CDB builders for the common shapes.
function S.cdb10(op, b1, lba, n, b6) return S.cat(op, b1 or 0, S.be(4, lba), b6 or 0, S.be(2, n), 0) end
function S.cdb12(op, b1, lba, n) return S.cat(op, b1 or 0, S.be(4, lba), S.be(4, n), 0, 0) end
function S.cdb16(op, b1, lba, n) return S.cat(op, b1 or 0, S.be(8, lba), S.be(4, n), 0, 0) end

function S.bytes_of(str)
	local t = {}
	for i = 1, #str do t[i] = str:byte(i) end
	return t
end

function S.tostr(t)
	local parts = {}
	for i = 1, #t do parts[i] = string.char(t[i]) end
	return table.concat(parts)
end

-- A string of n bytes, made from a seed so different calls differ.
function S.pattern(n, seed)
	local t = {}
	seed = seed or 1
	for i = 1, n do t[i] = string.char((i * 7 + seed * 13) % 251) end
	return table.concat(t)
end

------------------------------------------------------------------------
-- The fake device.

local PENDING = scsi.PENDING

-- opts: block_size (512), blocks (2048), read_only, write_cache (1),
-- max_xfer (0), name, conf, async (handler answers PENDING and queues),
-- no = {flush=true, unmap=true, write=true}, handler = extra callbacks.
function S.device(opts)
	opts = opts or {}
	local bs = opts.block_size or 512
	local blocks = opts.blocks or 2048
	local info = ffi.new('struct tl_dev_info')
	info.id = 1
	info.block_size = bs
	info.num_blocks = blocks
	info.size = bs * blocks
	info.max_xfer_blocks = opts.max_xfer or 0
	info.write_cache = opts.write_cache == nil and 1 or opts.write_cache
	info.read_only = opts.read_only and 1 or 0
	ffi.copy(info.name, opts.name or 'disk0')
	ffi.copy(info.subtype, opts.subtype or 'ram')
	local mem = ffi.new('uint8_t[?]', bs * blocks)
	local dev = { info = info, conf = opts.conf or {}, mem = mem, bs = bs,
		completions = {}, flushes = 0, unmaps = {}, queue = {}, calls = {} }
	local function finish_later(fn)
		dev.queue[#dev.queue + 1] = fn
		return PENDING
	end
	local h = {}
	function h.read(d, cmd, off, len, coff)
		dev.calls[#dev.calls + 1] = 'read'
		if dev.fail_read then return nil, dev.fail_read end
		if opts.async then
			return finish_later(function()
				D.copy_to(cmd, coff, mem + off, len)
				d:done(cmd)
			end)
		end
		D.copy_to(cmd, coff, mem + off, len)
		return true
	end
	function h.write(d, cmd, off, len, coff)
		dev.calls[#dev.calls + 1] = 'write'
		if dev.fail_write then return nil, dev.fail_write end
		if opts.async then
			return finish_later(function()
				D.copy_from(cmd, coff, mem + off, len)
				d:done(cmd)
			end)
		end
		D.copy_from(cmd, coff, mem + off, len)
		return true
	end
	function h.flush(d, cmd)
		dev.calls[#dev.calls + 1] = 'flush'
		dev.flushes = dev.flushes + 1
		if opts.async then return finish_later(function() d:done(cmd) end) end
		return true
	end
	function h.unmap(d, cmd, off, len)
		dev.calls[#dev.calls + 1] = 'unmap'
		dev.unmaps[#dev.unmaps + 1] = { off, len }
		ffi.fill(mem + off, len, 0)
		if opts.async then return finish_later(function() d:done(cmd) end) end
		return true
	end
	for name in pairs(opts.no or {}) do h[name] = nil end
	for name, fn in pairs(opts.handler or {}) do h[name] = fn end
	dev.handler = h
	function dev.complete(d, cmd)
		local id = cmd.id
		d.completions[id] = (d.completions[id] or 0) + 1
		d.last = cmd
	end
	scsi.attach(dev)
	return dev
end

-- Run the queued asynchronous completions (and those they queue), in order.
function S.drain(dev)
	while #dev.queue > 0 do
		local fn = table.remove(dev.queue, 1)
		fn()
	end
end

-- Device memory [off, off+len) as a string; set it from a string.
function S.peek(dev, off, len) return ffi.string(dev.mem + off, len) end
function S.poke(dev, off, str) ffi.copy(dev.mem + off, str, #str) end

------------------------------------------------------------------------
-- Fake commands.

local anchors = setmetatable({}, { __mode = 'k' })
local next_id = 0

-- A command with CDB cdb (table of bytes) and a data buffer: data is a
-- length (zeroed buffer) or a string (data-out content).  split: a list of
-- iovec sizes to cut the buffer into.
function S.cmd(cdb, data, split)
	local c = ffi.new('struct tl_cmd')
	next_id = next_id % 65535 + 1
	c.id = next_id
	c.cdb_len = #cdb
	c.opcode = cdb[1]
	for i = 1, #cdb do c.cdb[i - 1] = cdb[i] end
	local len = type(data) == 'string' and #data or (data or 0)
	local buf = ffi.new('uint8_t[?]', math.max(len, 1))
	if type(data) == 'string' then ffi.copy(buf, data, len) end
	anchors[c] = buf
	local sizes = split or { len }
	local at, k = 0, 0
	for _, n in ipairs(sizes) do
		if at >= len then break end
		n = math.min(n, len - at)
		c.iov[k].base = buf + at
		c.iov[k].len = n
		at, k = at + n, k + 1
	end
	if at < len then
		c.iov[k].base = buf + at
		c.iov[k].len = len - at
		k = k + 1
	end
	c.iov_cnt = k
	c.data_len = len
	c.read_len = 0
	return c, buf
end

-- What a completed command looks like, as plain Lua values.
function S.result(dev, c, buf)
	local r = {
		status = c.status,
		sense_len = c.sense_len,
		read_len = c.read_len,
		completions = dev.completions[c.id] or 0,
		cmd = c,
	}
	r.sense = {}
	for i = 0, c.sense_len - 1 do r.sense[i] = c.sense[i] end
	r.key = c.sense_len > 0 and (c.sense[0] == 0x72 and c.sense[1] or bit.band(c.sense[2], 0x0F)) or nil
	if c.sense_len > 0 then
		if c.sense[0] == 0x72 then
			r.asc, r.ascq = c.sense[2], c.sense[3]
		else
			r.asc, r.ascq = c.sense[12], c.sense[13]
		end
	end
	r.data = ffi.string(buf, c.read_len)
	r.buf = buf
	r.byte = function(i) return buf[i] end
	return r
end

-- Execute cdb with data on dev; return S.result (drains async handlers).
function S.run(dev, cdb, data, split)
	local c, buf = S.cmd(cdb, data, split)
	dev.completions[c.id] = nil
	scsi.execute(dev, c)
	S.drain(dev)
	return S.result(dev, c, buf)
end

-- Byte i (0-based) of a result's data.
function S.u8(r, i) return r.buf[i] end
function S.u16(r, i) return r.buf[i] * 256 + r.buf[i + 1] end
function S.u32(r, i) return S.u16(r, i) * 65536 + S.u16(r, i + 2) end
function S.u64(r, i) return S.u32(r, i) * 4294967296 + S.u32(r, i + 4) end

-- The sense-key-specific bytes (fixed format) as {sksv, cd, bpv, bit, field}.
function S.sks(r)
	local s = r.sense
	local b15, field
	if s[0] == 0x72 then
		local n = 8
		while n < 8 + s[7] do
			if s[n] == 0x02 then b15, field = s[n + 4], s[n + 5] * 256 + s[n + 6]; break end
			n = n + 2 + s[n + 1]
		end
		if not b15 then return nil end
	else
		b15, field = s[15], s[16] * 256 + s[17]
	end
	return {
		sksv = bit.band(b15, 0x80) ~= 0,
		cd = bit.band(b15, 0x40) ~= 0,
		bpv = bit.band(b15, 0x08) ~= 0,
		bit = bit.band(b15, 0x07),
		field = field,
	}
end

-- The INFORMATION field (nil when not valid).
function S.info(r)
	local s = r.sense
	if s[0] == 0x72 then
		local n = 8
		while n < 8 + s[7] do
			if s[n] == 0x00 then
				local v = 0
				for i = 4, 11 do v = v * 256 + s[n + i] end
				return v
			end
			n = n + 2 + s[n + 1]
		end
		return nil
	end
	if bit.band(s[0], 0x80) == 0 then return nil end
	return ((s[3] * 256 + s[4]) * 256 + s[5]) * 256 + s[6]
end

return S
