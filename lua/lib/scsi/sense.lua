-- scsi/sense.lua: sense data (SPC-4 4.5) and the named errors of the library.
--
-- A "sense" here is a constant table {name, key, asc, ascq[, status]}.  The
-- library answers with them, and handlers return them from read/write/...:
--     return nil, scsi.sense.MEDIUM_ERROR
-- A sense with a status other than CHECK CONDITION (BUSY, TASK SET FULL)
-- carries no sense bytes: the initiator just retries.
--
-- build() writes the bytes into cmd.sense in the format the initiator asked
-- for through the D_SENSE bit of the Control mode page: fixed format (0x70,
-- SPC-4 4.5.3) by default, descriptor format (0x72, SPC-4 4.5.2) when set.
local ffi = require('ffi')
local bit = require('bit')
local band, rshift = bit.band, bit.rshift
local floor = math.floor

local M = {}

-- Sense keys (SPC-4 table 45).
M.KEY = {
	NO_SENSE = 0x0, RECOVERED_ERROR = 0x1, NOT_READY = 0x2, MEDIUM_ERROR = 0x3,
	HARDWARE_ERROR = 0x4, ILLEGAL_REQUEST = 0x5, UNIT_ATTENTION = 0x6,
	DATA_PROTECT = 0x7, BLANK_CHECK = 0x8, VENDOR_SPECIFIC = 0x9,
	COPY_ABORTED = 0xA, ABORTED_COMMAND = 0xB, VOLUME_OVERFLOW = 0xD,
	MISCOMPARE = 0xE, COMPLETED = 0xF,
}

local function def(name, key, asc, ascq, status)
	local s = { name = name, key = key, asc = asc, ascq = ascq, status = status or 2 }
	M[name] = s
	return s
end

-- Errors a handler may return.
def('MEDIUM_ERROR', 0x3, 0x11, 0x00)		-- UNRECOVERED READ ERROR
def('READ_ERROR', 0x3, 0x11, 0x00)
def('WRITE_ERROR', 0x3, 0x0C, 0x00)		-- WRITE ERROR
def('HARDWARE_ERROR', 0x4, 0x44, 0x00)		-- INTERNAL TARGET FAILURE
def('NO_SPACE', 0x7, 0x27, 0x07)		-- SPACE ALLOCATION FAILED WRITE PROTECT
def('NOT_READY', 0x2, 0x04, 0x00)		-- LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE
def('NO_MEDIUM', 0x2, 0x3A, 0x00)		-- MEDIUM NOT PRESENT
def('ABORTED_COMMAND', 0xB, 0x00, 0x00)
def('LUN_COMM_FAILURE', 0x4, 0x08, 0x00)	-- LOGICAL UNIT COMMUNICATION FAILURE
def('BUSY', 0, 0, 0, 0x08)			-- status BUSY, no sense
def('TASK_SET_FULL', 0, 0, 0, 0x28)		-- status TASK SET FULL, no sense
def('TASK_ABORTED', 0, 0, 0, 0x40)		-- status TASK ABORTED (after a TMR), no sense

-- Errors the library itself reports.
def('INVALID_OPCODE', 0x5, 0x20, 0x00)		-- INVALID COMMAND OPERATION CODE
def('INVALID_FIELD_IN_CDB', 0x5, 0x24, 0x00)
def('INVALID_FIELD_IN_PARAM', 0x5, 0x26, 0x00)	-- INVALID FIELD IN PARAMETER LIST
def('PARAM_LIST_LENGTH', 0x5, 0x1A, 0x00)	-- PARAMETER LIST LENGTH ERROR
def('LBA_OUT_OF_RANGE', 0x5, 0x21, 0x00)
def('SAVING_NOT_SUPPORTED', 0x5, 0x39, 0x00)	-- SAVING PARAMETERS NOT SUPPORTED
def('WRITE_PROTECTED', 0x7, 0x27, 0x00)
def('MISCOMPARE', 0xE, 0x1D, 0x00)		-- MISCOMPARE DURING VERIFY OPERATION
def('STOPPED', 0x2, 0x04, 0x02)			-- NOT READY, INITIALIZING COMMAND REQUIRED
def('NO_ADDITIONAL', 0x0, 0x00, 0x00)		-- NO SENSE (REQUEST SENSE, nothing pending)
-- Unit attentions (ua.lua queues them).
def('UA_POWER_ON', 0x6, 0x29, 0x00)		-- POWER ON, RESET, OR BUS DEVICE RESET OCCURRED
def('UA_LUN_RESET', 0x6, 0x29, 0x03)		-- BUS DEVICE RESET FUNCTION OCCURRED
def('UA_MODE_CHANGED', 0x6, 0x2A, 0x01)		-- MODE PARAMETERS CHANGED
def('UA_CAPACITY_CHANGED', 0x6, 0x2A, 0x09)	-- CAPACITY DATA HAS CHANGED
-- EXTENDED COPY (SPC-4 6.4).
def('TOO_MANY_CSCD', 0x5, 0x26, 0x06)		-- TOO MANY TARGET DESCRIPTORS
def('UNSUPPORTED_CSCD', 0x5, 0x26, 0x07)	-- UNSUPPORTED TARGET DESCRIPTOR TYPE CODE
def('TOO_MANY_SEGMENTS', 0x5, 0x26, 0x08)	-- TOO MANY SEGMENT DESCRIPTORS
def('UNSUPPORTED_SEGMENT', 0x5, 0x26, 0x09)	-- UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE
def('UNREACHABLE_TARGET', 0xA, 0x08, 0x04)	-- COPY ABORTED, UNREACHABLE COPY TARGET

-- The sense-key-specific field pointer (SPC-4 4.5.2.4.2) as a 24-bit number:
-- SKSV=1, C/D (1: the error is in the CDB, 0: in the parameter list), BPV and
-- BIT POINTER when a bit is named, and the FIELD POINTER (byte).
function M.field_pointer(in_cdb, byte, bitno)
	local v = 0x800000 + byte
	if in_cdb then v = v + 0x400000 end
	if bitno then v = v + 0x080000 + bitno * 0x10000 end
	return v
end

local function put32(p, i, v)
	p[i] = band(rshift(v, 24), 255); p[i + 1] = band(rshift(v, 16), 255)
	p[i + 2] = band(rshift(v, 8), 255); p[i + 3] = band(v, 255)
end

-- Write sense bytes for key/asc/ascq into the uint8_t buffer p; return the
-- length.  info: the INFORMATION field (nil: not valid).  sks: a
-- field_pointer() value or nil.  desc: true for descriptor format.
function M.encode(p, desc, key, asc, ascq, info, sks)
	if desc then
		ffi.fill(p, 32, 0)
		p[0] = 0x72; p[1] = key; p[2] = asc; p[3] = ascq
		local n = 8
		if info then		-- Information descriptor (SPC-4 4.5.2.2)
			p[n] = 0x00; p[n + 1] = 0x0A; p[n + 2] = 0x80
			local hi = floor(info / 4294967296)
			put32(p, n + 4, hi); put32(p, n + 8, info - hi * 4294967296)
			n = n + 12
		end
		if sks then		-- Sense key specific descriptor (SPC-4 4.5.2.4)
			p[n] = 0x02; p[n + 1] = 0x06
			p[n + 4] = band(rshift(sks, 16), 255)
			p[n + 5] = band(rshift(sks, 8), 255)
			p[n + 6] = band(sks, 255)
			n = n + 8
		end
		p[7] = n - 8
		return n
	end
	ffi.fill(p, 18, 0)
	p[0] = 0x70
	p[2] = key
	-- A fixed-format INFORMATION field holds 4 bytes; VALID says it is set.
	if info and info < 4294967296 then
		p[0] = 0xF0
		put32(p, 3, info)
	end
	p[7] = 10		-- ADDITIONAL SENSE LENGTH: 18 - 8
	p[12] = asc; p[13] = ascq
	if sks then
		p[15] = band(rshift(sks, 16), 255)
		p[16] = band(rshift(sks, 8), 255)
		p[17] = band(sks, 255)
	end
	return 18
end

-- Fill cmd.sense/sense_len/status for the sense table s.
function M.build(cmd, desc, s, info, sks)
	cmd.status = s.status
	if s.status ~= 2 then
		cmd.sense_len = 0
		return
	end
	cmd.sense_len = M.encode(cmd.sense, desc, s.key, s.asc, s.ascq, info, sks)
end

return M
