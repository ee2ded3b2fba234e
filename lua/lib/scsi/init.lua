-- scsi: SPC-4 / SBC-3 direct-access block device emulation for tcmu-lua.
--
-- The runtime calls:
--   scsi.attach(dev)            once after the handler's open, and again after
--                               a reload or resize: builds dev.scsi
--   scsi.execute(dev, cmd)      for every command (cmd: struct tl_cmd *);
--                               leads to exactly one dev:complete(cmd)
--   scsi.on_resize(dev)         the capacity changed (unit attention)
--   scsi.on_tmr(dev, type, n)   a task management function (LUN reset: UA)
-- Handlers see:
--   scsi.PENDING, scsi.NOT_HANDLED, scsi.sense.*, dev:done(cmd[, SENSE])
--
-- How to read the code: execute() below picks the function for the opcode
-- from a 256-entry table; each command lives in one function of
-- inquiry.lua, capacity.lua, modes.lua, rw.lua, misc.lua or xcopy.lua,
-- named after the command, with its standard section in the comment above.
local ffi = require('ffi')
local bit = require('bit')
local band = bit.band

if not pcall(ffi.typeof, 'struct tl_cmd') then
	error('scsi: the tl ABI (bindings/tl_abi.h) must be ffi.cdef-ed first')
end

local core = require('scsi.core')
local sense = require('scsi.sense')
local ua = require('scsi.ua')
local D = require('scsi.dataops')
local cdblen = require('scsi.cdb').length
local opcodes = require('scsi.opcodes')

local M = {}
M.PENDING = core.PENDING
M.NOT_HANDLED = core.NOT_HANDLED
M.sense = sense
M.done = core.done
M.set_data_ops = D.set		-- specs only: pure-Lua copy/fill/memcmp
M.SCRATCH_BYTES = 1024 * 1024	-- default size of the per-device scratch buffer
M.schema = require('scsi.options')	-- the dev.conf options this library reads

-- Tables indexed by cmd.id (1..65535), preallocated so that storing a
-- continuation on the WRITE path never allocates.
local ok_new, table_new = pcall(require, 'table.new')
local function by_id_table()
	if ok_new then return table_new(65536, 0) end
	return {}
end

-- The command modules, each a table of opcode -> function(dev, cmd, s), or
-- opcode -> {[service action] = function} for service-action opcodes.
local modules = {
	require('scsi.misc'), require('scsi.inquiry'), require('scsi.capacity'),
	require('scsi.modes'), require('scsi.rw'), require('scsi.xcopy'),
}
local modes = require('scsi.modes')
local inquiry = require('scsi.inquiry')

local commands, service_actions = {}, {}
for _, m in ipairs(modules) do
	for op, fn in pairs(m.commands) do
		if type(fn) == 'table' then
			service_actions[op] = service_actions[op] or {}
			for sa, f in pairs(fn) do service_actions[op][sa] = f end
		else
			commands[op] = fn
		end
	end
end

-- Which handler callback a command needs (opcodes.lua 'needs').
local needs = {}
for _, c in ipairs(opcodes.list) do
	if c.impl and c.needs then
		needs[c.op * 256 + (c.sa or 0)] = c.needs
	end
end

local fail, invalid_cdb = core.fail, core.invalid_cdb
local INVALID_OPCODE = sense.INVALID_OPCODE
local exempt = ua.exempt

-- Index of the CONTROL byte for each opcode (nil: variable or vendor).
local control_at = {}
for op = 0, 255 do
	local n = cdblen(op)
	control_at[op] = n and n - 1 or false
end

-- One command, after the unit attention check: pick and run its function.
local function dispatch_one(dev, cmd)
	local s = dev.scsi
	local cdb = cmd.cdb
	local op = cdb[0]
	local f = s.dispatch[op]
	if f == nil then return fail(dev, cmd, INVALID_OPCODE) end
	-- NACA (SAM-5 5.9.1.1): we do not support ACA (INQUIRY NORMACA=0).
	local ctl = control_at[op]
	if ctl and band(cdb[ctl], 0x04) ~= 0 then return invalid_cdb(dev, cmd, ctl, 2) end
	return f(dev, cmd, s)
end

-- A service-action opcode: dispatch again on SERVICE ACTION (byte 1, 4..0).
local function by_service_action(dev, cmd, s)
	local op, sa = cmd.cdb[0], band(cmd.cdb[1], 0x1F)
	local f = s.sa_dispatch[op][sa]
	if f == nil then return invalid_cdb(dev, cmd, 1, 4) end
	return f(dev, cmd, s)
end

function M.execute(dev, cmd)
	local s = dev.scsi
	if s.ua_n > 0 and not exempt[cmd.cdb[0]] then
		return fail(dev, cmd, ua.take(s))
	end
	return dispatch_one(dev, cmd)
end

-- Does the device offer command (op, sa)?  Used by REPORT SUPPORTED
-- OPERATION CODES.
function M.supports(s, op, sa)
	if sa == nil then return s.dispatch[op] ~= nil and not s.sa_dispatch[op] end
	local t = s.sa_dispatch[op]
	return t ~= nil and t[sa] ~= nil
end

local function has(h, name) return type(h[name]) == 'function' end

-- Can the handler serve a command that needs callback `need`?  UNMAP also
-- works with only `write`: the library then writes zeros (rw.lua).
local function can(h, need)
	return has(h, need) or (need == 'unmap' and has(h, 'write'))
end

function M.attach(dev)
	local h = dev.handler or {}
	local info = dev.info
	assert(info ~= nil, 'scsi.attach: dev.info is missing')
	local conf = dev.conf or {}
	local s = dev.scsi
	local first = s == nil
	if first then
		-- State that lives as long as the device, across reloads.
		s = {}
		s.cont, s.ctx = by_id_table(), by_id_table()	-- continuation and context, by cmd.id
		s.deferred = {}		-- commands waiting for the exclusive lock
		s.kicking = false
		s.xowner = nil		-- the command owning the scratch (exclusive)
		s.xlock_lba, s.xlock_n = 0, 0	-- writes to this range wait
		s.xwait = nil		-- COMPARE AND WRITE waiting for writes to drain
		s.wpending = 0		-- WRITEs the handler answered PENDING to
		s.stopped = false	-- START STOP UNIT
		s.copy_results = {}	-- RECEIVE COPY RESULTS, by list identifier
		ua.init(s)
		-- Scratch: a command of our own whose data is a private buffer, for
		-- the steps whose data is not in the initiator's command.
		local bytes = (conf.scratch_kb and conf.scratch_kb * 1024) or M.SCRATCH_BYTES
		if bytes < info.block_size then bytes = info.block_size end
		s.scratch_buf = ffi.new('uint8_t[?]', bytes)
		s.scratch_cmd = ffi.new('struct tl_cmd')
		s.scratch = ffi.cast('struct tl_cmd *', s.scratch_cmd)
		s.scratch.iov_cnt = 1
		s.scratch.iov[0].base = s.scratch_buf
		s.scratch.iov[0].len = bytes
		s.scratch.data_len = bytes
		s.scratch_bytes = bytes
		-- Response buffer (filled and sent within one call) and parameter
		-- buffer (owned by the exclusive command while it runs).
		s.buf = ffi.new('uint8_t[?]', 65536 + 512)
		s.xbuf = ffi.new('uint8_t[?]', 65536 + 512)
		s.dispatch_one = dispatch_one
	end
	s.dev = dev
	s.info = info
	-- Handler callbacks, looked up once.
	-- A handler without read (one that handle()s everything itself) gets
	-- no READ-like commands: they answer INVALID COMMAND OPERATION CODE.
	s.h_read, s.h_write, s.h_flush, s.h_unmap = h.read, h.write, h.flush, h.unmap
	s.h_write_same = has(h, 'write_same') and h.write_same or nil
	s.h_caw = has(h, 'compare_and_write') and h.compare_and_write or nil
	s.h_lba_status = has(h, 'lba_status') and h.lba_status or nil
	if not has(h, 'write') then s.h_write = nil end
	if not has(h, 'flush') then s.h_flush = nil end
	if not has(h, 'unmap') or conf.zero_unmap == true then s.h_unmap = nil end
	s.read_only = info.read_only ~= 0 or s.h_write == nil or conf.read_only == true
	-- Logical block provisioning.  A handler with unmap is thin; one that
	-- can only write gets UNMAP and WRITE SAME with UNMAP as zeros written
	-- through write (zero_unmap), so Linux can discard and trim it, and
	-- unmapped blocks read back as zeros (LBPRZ) either way when they do.
	s.zero_unmap = s.h_unmap == nil and s.h_write ~= nil
	s.can_unmap = s.h_unmap ~= nil or s.zero_unmap
	s.lbprz = s.zero_unmap or
		(s.h_unmap ~= nil and (h.unmap_zeroes == true or conf.unmap_zeroes == true))

	-- Dispatch tables, without the commands this handler cannot serve.
	local dispatch, sa_dispatch = {}, {}
	for op = 0, 255 do
		local f = commands[op]
		if f and not (needs[op * 256] and not can(h, needs[op * 256])) then
			dispatch[op] = f
		end
		local sat = service_actions[op]
		if sat then
			sa_dispatch[op] = {}
			for sa, fn in pairs(sat) do
				local need = needs[op * 256 + sa]
				if not (need and not can(h, need)) then sa_dispatch[op][sa] = fn end
			end
			dispatch[op] = by_service_action
		end
	end
	s.dispatch, s.sa_dispatch = dispatch, sa_dispatch

	inquiry.setup(dev, s, conf)
	modes.setup(dev, s, conf, first)
	dev.scsi = s
	dev.done = core.done
	return s
end

-- The capacity changed (resize): tell the initiator.
function M.on_resize(dev)
	local s = dev.scsi
	if s then ua.raise(s, sense.UA_CAPACITY_CHANGED) end
end

-- Task management.  The runtime completes aborted commands; a LUN reset or
-- target reset returns the mode pages to their defaults (SAM-5 6.3.3: no
-- saved values) and is reported as a unit attention.
local TMR_LUN_RESET, TMR_TARGET_WARM, TMR_TARGET_COLD = 5, 6, 7
function M.on_tmr(dev, tmr_type, n_ids)
	local s = dev.scsi
	if not s then return end
	if tmr_type == TMR_LUN_RESET then
		ua.raise(s, sense.UA_LUN_RESET)
		modes.reset(s)
	elseif tmr_type == TMR_TARGET_WARM or tmr_type == TMR_TARGET_COLD then
		ua.raise(s, sense.UA_POWER_ON)
		modes.reset(s)
	end
end

return M
