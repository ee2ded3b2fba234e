-- scsi/core.lua: what every command module shares.
--
--  * the PENDING and NOT_HANDLED sentinels;
--  * good()/fail()/invalid_cdb()/invalid_param(): the ways a command ends;
--  * reply(): return data-in bytes, truncated to the allocation length;
--  * run(): call a handler operation, then continue now or when the
--    handler calls dev:done(cmd) later (asynchronous handlers);
--  * the exclusive lock: multi-step commands (COMPARE AND WRITE, WRITE SAME,
--    VERIFY, UNMAP, EXTENDED COPY, ...) share one scratch command per device
--    and so run one at a time; writes that overlap a COMPARE AND WRITE wait.
--
-- Every command ends in exactly one dev:complete(cmd).
local ffi = require('ffi')
local sense = require('scsi.sense')
local D = require('scsi.dataops')

local M = {}

local function sentinel(name)
	return setmetatable({}, { __tostring = function() return name end })
end
-- A handler returns PENDING when it will call dev:done(cmd[, SENSE]) later.
M.PENDING = sentinel('scsi.PENDING')
-- A handler's handle(dev, cmd) returns NOT_HANDLED to get the emulation.
M.NOT_HANDLED = sentinel('scsi.NOT_HANDLED')
local PENDING = M.PENDING

local HARDWARE_ERROR = sense.HARDWARE_ERROR
local INVALID_FIELD_IN_CDB = sense.INVALID_FIELD_IN_CDB
local INVALID_FIELD_IN_PARAM = sense.INVALID_FIELD_IN_PARAM
local field_pointer = sense.field_pointer
local build = sense.build

-- The command succeeded.
function M.good(dev, cmd)
	cmd.status = 0
	cmd.sense_len = 0
	return dev:complete(cmd)
end
local good = M.good

-- Log through the runtime's dev:log(level, fmt, ...) when there is one.
function M.log(dev, level, msg)
	local log = dev.log
	if log then log(dev, level, '%s', msg) end
end

-- The command failed with sense s.  info: INFORMATION field, sks: a
-- sense.field_pointer() value.  Nothing was transferred: read_len = 0.
function M.fail(dev, cmd, s, info, sks)
	if type(s) ~= 'table' or s.status == nil or s.key == nil then
		M.log(dev, 'err', 'handler error: ' .. tostring(s))
		s = HARDWARE_ERROR
	end
	build(cmd, dev.scsi.dsense, s, info, sks)
	cmd.read_len = 0
	return dev:complete(cmd)
end
local fail = M.fail

-- INVALID FIELD IN CDB pointing at byte (and bit) of the CDB.
function M.invalid_cdb(dev, cmd, byte, bitno)
	return fail(dev, cmd, INVALID_FIELD_IN_CDB, nil, field_pointer(true, byte, bitno))
end

-- INVALID FIELD IN PARAMETER LIST pointing at byte (and bit) of the data-out.
function M.invalid_param(dev, cmd, byte, bitno, s)
	return fail(dev, cmd, s or INVALID_FIELD_IN_PARAM, nil, field_pointer(false, byte, bitno))
end

-- Good or failed, depending on s (nil: good).  The shape of a continuation.
function M.finish(dev, cmd, ctx, s, info)
	if s ~= nil then return fail(dev, cmd, s, info) end
	return good(dev, cmd)
end

-- Send len bytes of buf as data-in, at most alloc bytes (the CDB's
-- ALLOCATION LENGTH) and at most the command's buffer; GOOD.
function M.reply(dev, cmd, buf, len, alloc)
	local n = len
	if alloc < n then n = alloc end
	local room = tonumber(cmd.data_len)
	if room < n then n = room end
	if n > 0 then n = tonumber(D.copy_to(cmd, 0, buf, n)) end
	cmd.read_len = n
	return good(dev, cmd)
end

-- Copy up to len bytes of the command's data-out into buf; return how
-- many bytes there were.
function M.fetch(cmd, buf, len)
	local room = tonumber(cmd.data_len)
	if room < len then len = room end
	if len <= 0 then return 0 end
	return tonumber(D.copy_from(cmd, 0, buf, len))
end

-- Turn what a handler returned into nil (success), PENDING or a sense.
-- Handlers return true or nothing for success, nil + SENSE for failure.
-- Anything else is a handler bug: fail() logs it and answers HARDWARE ERROR.
function M.outcome(r, e)
	if r == PENDING then return PENDING end
	if e ~= nil then return e end
	if r ~= true and r ~= nil then return r == false and HARDWARE_ERROR or r end
	return nil
end
local outcome = M.outcome

--[[ Multi-step commands.

run(dev, cmd, ctx, nextfn, op, target, a, b, c, d) calls the handler
operation op(dev, target, a, b, c, d) on behalf of cmd (target is cmd itself
or the device's scratch command) and then calls
    nextfn(dev, cmd, ctx, sense_or_nil, info)
either at once, when op returned, or later from dev:done() when op returned
PENDING.  The continuation is registered before op is called, so a handler
that calls dev:done() before it even returns PENDING works too.  Sync
handlers make the steps tail calls: no stack grows however many steps.
]]
local ABORTED = 3	-- TL_CMD_ABORTED: the kernel gave up on it (TMR)
local ABORTED_COMMAND = sense.ABORTED_COMMAND

function M.run(dev, cmd, ctx, nextfn, op, target, a, b, c, d)
	-- An aborted command still completes, but its remaining steps are
	-- skipped: nobody waits for their result any more.
	if cmd.state == ABORTED then return nextfn(dev, cmd, ctx, ABORTED_COMMAND) end
	local s = dev.scsi
	local id = cmd.id
	s.cont[id] = nextfn
	s.ctx[id] = ctx
	local r, e, info = op(dev, target, a, b, c, d)
	if r == PENDING then return end
	s.cont[id] = nil
	s.ctx[id] = nil
	return nextfn(dev, cmd, ctx, outcome(r, e), info)
end

-- dev:done(cmd[, sense[, info]]): a handler finished an operation it had
-- answered PENDING to.  cmd may be the scratch command lent for it.
function M.done(dev, cmd, s_, info)
	local s = dev.scsi
	if cmd == s.scratch then
		cmd = s.xowner
		if cmd == nil then
			M.log(dev, 'err', 'dev:done on the scratch command with no command using it')
			return
		end
	end
	if s_ ~= nil and (type(s_) ~= 'table' or s_.status == nil or s_.key == nil) then
		M.log(dev, 'err', 'handler error: ' .. tostring(s_))
		s_ = HARDWARE_ERROR
	end
	local id = cmd.id
	local fn = s.cont[id]
	if fn == nil then
		-- A plain READ (or any single-step command): just end it.
		if s_ ~= nil then return fail(dev, cmd, s_, info) end
		return good(dev, cmd)
	end
	local ctx = s.ctx[id]
	s.cont[id] = nil
	s.ctx[id] = nil
	return fn(dev, cmd, ctx, s_, info)
end

--[[ The exclusive lock.

acquire(dev, cmd, lba, n) returns true when cmd may run now as the device's
single multi-step command (it owns the scratch command and, when n > 0,
blocks writes to [lba, lba+n)); otherwise it queues cmd and returns false:
cmd is executed again when the owner finishes.  The owner ends with xend().
]]
function M.acquire(dev, cmd, lba, n)
	local s = dev.scsi
	if s.xowner ~= nil then
		M.defer(dev, cmd)
		return false
	end
	s.xowner = cmd
	s.scratch.id = cmd.id
	s.xlock_lba, s.xlock_n = lba or 0, n or 0
	return true
end

-- Put cmd aside until the exclusive owner finishes.
function M.defer(dev, cmd)
	local s = dev.scsi
	local q = s.deferred
	q[#q + 1] = cmd
end

-- Does [lba, lba+n) overlap the locked range?
function M.locked(s, lba, n)
	local ln = s.xlock_n
	if ln == 0 then return false end
	local l0 = s.xlock_lba
	return lba < l0 + ln and l0 < lba + n
end

-- The exclusive owner ends (good or failed): release the lock first so the
-- commands waiting for it see it free, complete, then run the waiters.
function M.xend(dev, cmd, ctx, s_, info, sks)
	local s = dev.scsi
	if s.xowner == cmd then
		s.xowner = nil
		s.xlock_lba, s.xlock_n = 0, 0
		s.xwait = nil
	end
	if s_ ~= nil then fail(dev, cmd, s_, info, sks) else good(dev, cmd) end
	return M.kick(dev)
end

-- Re-dispatch the deferred commands, in arrival order (they may defer again).
function M.kick(dev)
	local s = dev.scsi
	local q = s.deferred
	if #q == 0 or s.kicking then return end
	s.kicking = true
	while #q > 0 and s.xowner == nil do
		s.deferred = {}
		for i = 1, #q do
			s.dispatch_one(dev, q[i])
		end
		q = s.deferred
	end
	s.kicking = false
end

return M
