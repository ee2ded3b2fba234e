-- scsi/ua.lua: unit attention conditions (SAM-5 5.14, SPC-4 5.14).
--
-- A unit attention tells an initiator that something changed behind its
-- back: the capacity, the mode parameters, a reset.  It is reported once,
-- as CHECK CONDITION / UNIT ATTENTION on the next command (except INQUIRY,
-- REPORT LUNS and REQUEST SENSE, which do not consume it; REQUEST SENSE
-- returns it as its sense data and clears it).
--
-- The standard keeps one queue per I_T nexus (per initiator port).  TCMU
-- does not tell us which initiator sent a command, so this queue is per
-- device: the first initiator to send a command after the event sees the
-- unit attention, the others do not; and the initiator that sent a MODE
-- SELECT sees its own MODE PARAMETERS CHANGED.  That is all we can do.
local M = {}

local MAX = 8	-- SPC lets a device drop the oldest when the queue is full

-- Opcodes that never report (nor clear) a unit attention (SAM-5 5.14).
M.exempt = { [0x12] = true, [0xA0] = true, [0x03] = true }

function M.init(s)
	s.ua = {}
	s.ua_n = 0
end

-- Establish a unit attention (a sense table from scsi.sense), once.
function M.raise(s, sd)
	local q = s.ua
	for i = 1, #q do
		if q[i] == sd then return end
	end
	if #q >= MAX then table.remove(q, 1) end
	q[#q + 1] = sd
	s.ua_n = #q
end

-- Take the oldest pending unit attention, or nil.
function M.take(s)
	local q = s.ua
	if #q == 0 then return nil end
	local sd = table.remove(q, 1)
	s.ua_n = #q
	return sd
end

return M
