-- scsi/decode.lua: CDBs and sense data explained, for `tcmu-lua decode`,
-- traces and logs.  Not on any hot path: clarity over speed.
--
--   decode.cdb(bytes, len)    -> name, { {field=, value=, meaning=}, ... }
--   decode.sense(bytes, len)  -> table (format, key, asc/ascq text, ...)
--   decode.format_cdb(bytes, len), decode.format_sense(bytes, len)
--                             -> lines of text (a Lua array of strings)
-- bytes: a Lua string, a Lua array of numbers (1-based), or a uint8_t
-- pointer / array cdata (0-based; then len is required).
local bit = require('bit')
local opcodes = require('scsi.opcodes')

local band, rshift = bit.band, bit.rshift
local fmt = string.format

local M = {}

-- A reader get(i) for byte i (0-based) and the length.
local function reader(bytes, len)
	local t = type(bytes)
	if t == 'string' then
		return function(i) return bytes:byte(i + 1) or 0 end, len or #bytes
	elseif t == 'table' then
		return function(i) return bytes[i + 1] or 0 end, len or #bytes
	elseif t == 'cdata' then
		assert(len, 'decode: a cdata buffer needs a length')
		return function(i) if i < len then return bytes[i] end return 0 end, len
	end
	error('decode: bytes must be a string, a table or a cdata pointer')
end

-- Names of service-action opcodes themselves.
local SA_GROUP = {
	[0x5E] = 'PERSISTENT RESERVE IN', [0x5F] = 'PERSISTENT RESERVE OUT',
	[0x83] = 'EXTENDED COPY', [0x84] = 'RECEIVE COPY RESULTS',
	[0x9E] = 'SERVICE ACTION IN(16)', [0x9F] = 'SERVICE ACTION OUT(16)',
	[0xA3] = 'MAINTENANCE IN', [0xA4] = 'MAINTENANCE OUT',
}

-- The opcodes.lua entry for a CDB, and its name.
function M.lookup(op, sa)
	local e = opcodes.by_op[op]
	if opcodes.has_sa[op] or (e and e.sa) then
		local c = e and e.sa and e.sa[sa]
		if c then return c, c.name end
		return nil, fmt('%s, SERVICE ACTION 0x%02X', SA_GROUP[op] or fmt('OPCODE 0x%02X', op), sa)
	end
	if e then return e, e.name end
	return nil, fmt('UNKNOWN OPERATION CODE 0x%02X', op)
end

local function meaning_of(f, v)
	local m = f.meaning
	if type(m) == 'table' then return m[v] end
	if type(m) == 'function' then return m(v) end
	return nil
end

function M.cdb(bytes, len)
	local get, n = reader(bytes, len)
	if n < 1 then return 'EMPTY CDB', {} end
	local op = get(0)
	local sa = band(get(1), 0x1F)
	local c, name = M.lookup(op, sa)
	local fields = { { field = 'OPERATION CODE', value = op, meaning = name } }
	if c then
		for _, f in ipairs(c.fields) do
			if f.byte < n then
				local v
				if f.nbits > 53 then	-- an 8-byte field: show it in hex
					local hex = {}
					for i = 0, f.nbits / 8 - 1 do hex[#hex + 1] = fmt('%02x', get(f.byte + i)) end
					v = '0x' .. table.concat(hex)
				else
					v = opcodes.field_value(get, f)
				end
				fields[#fields + 1] = { field = f.name, value = v, meaning = meaning_of(f, v) }
			end
		end
	end
	return name, fields, c
end

function M.format_cdb(bytes, len)
	local name, fields, c = M.cdb(bytes, len)
	local get, n = reader(bytes, len)
	local raw = {}
	for i = 0, n - 1 do raw[#raw + 1] = fmt('%02x', get(i)) end
	local lines = { fmt('%s%s: %s', name, c and c.section and (' [' .. c.section .. ']') or '',
		table.concat(raw, ' ')) }
	for i = 2, #fields do
		local f = fields[i]
		local v = type(f.value) == 'number' and fmt('%d (0x%X)', f.value, f.value) or tostring(f.value)
		lines[#lines + 1] = fmt('  %-34s %s%s', f.field, v, f.meaning and ('  ' .. f.meaning) or '')
	end
	return lines
end

------------------------------------------------------------------------
-- Sense data.

M.SENSE_KEYS = {
	[0x0] = 'NO SENSE', [0x1] = 'RECOVERED ERROR', [0x2] = 'NOT READY',
	[0x3] = 'MEDIUM ERROR', [0x4] = 'HARDWARE ERROR', [0x5] = 'ILLEGAL REQUEST',
	[0x6] = 'UNIT ATTENTION', [0x7] = 'DATA PROTECT', [0x8] = 'BLANK CHECK',
	[0x9] = 'VENDOR SPECIFIC', [0xA] = 'COPY ABORTED', [0xB] = 'ABORTED COMMAND',
	[0xC] = 'RESERVED', [0xD] = 'VOLUME OVERFLOW', [0xE] = 'MISCOMPARE', [0xF] = 'COMPLETED',
}

-- The additional sense codes a disk or an optical drive really reports,
-- keyed asc * 256 + ascq (SPC-4 table D.1 has the full list).
local ASC = {
	[0x0000] = 'NO ADDITIONAL SENSE INFORMATION',
	[0x0016] = 'OPERATION IN PROGRESS',
	[0x0200] = 'NO SEEK COMPLETE',
	[0x0400] = 'LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE',
	[0x0401] = 'LOGICAL UNIT IS IN PROCESS OF BECOMING READY',
	[0x0402] = 'LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED',
	[0x0403] = 'LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED',
	[0x0404] = 'LOGICAL UNIT NOT READY, FORMAT IN PROGRESS',
	[0x0407] = 'LOGICAL UNIT NOT READY, OPERATION IN PROGRESS',
	[0x0409] = 'LOGICAL UNIT NOT READY, SELF-TEST IN PROGRESS',
	[0x040A] = 'LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION',
	[0x040B] = 'LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE',
	[0x040C] = 'LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE',
	[0x0800] = 'LOGICAL UNIT COMMUNICATION FAILURE',
	[0x0804] = 'UNREACHABLE COPY TARGET',
	[0x0C00] = 'WRITE ERROR',
	[0x0C02] = 'WRITE ERROR - AUTO REALLOCATION FAILED',
	[0x0D02] = 'COPY TARGET DEVICE NOT REACHABLE',
	[0x1001] = 'LOGICAL BLOCK GUARD CHECK FAILED',
	[0x1002] = 'LOGICAL BLOCK APPLICATION TAG CHECK FAILED',
	[0x1003] = 'LOGICAL BLOCK REFERENCE TAG CHECK FAILED',
	[0x1100] = 'UNRECOVERED READ ERROR',
	[0x1104] = 'UNRECOVERED READ ERROR - AUTO REALLOCATE FAILED',
	[0x1105] = 'L-EC UNCORRECTABLE ERROR',
	[0x1106] = 'CIRC UNRECOVERED ERROR',
	[0x1401] = 'RECORD NOT FOUND',
	[0x1500] = 'RANDOM POSITIONING ERROR',
	[0x1A00] = 'PARAMETER LIST LENGTH ERROR',
	[0x1D00] = 'MISCOMPARE DURING VERIFY OPERATION',
	[0x2000] = 'INVALID COMMAND OPERATION CODE',
	[0x2100] = 'LOGICAL BLOCK ADDRESS OUT OF RANGE',
	[0x2400] = 'INVALID FIELD IN CDB',
	[0x2500] = 'LOGICAL UNIT NOT SUPPORTED',
	[0x2600] = 'INVALID FIELD IN PARAMETER LIST',
	[0x2601] = 'PARAMETER NOT SUPPORTED',
	[0x2602] = 'PARAMETER VALUE INVALID',
	[0x2606] = 'TOO MANY TARGET DESCRIPTORS',
	[0x2607] = 'UNSUPPORTED TARGET DESCRIPTOR TYPE CODE',
	[0x2608] = 'TOO MANY SEGMENT DESCRIPTORS',
	[0x2609] = 'UNSUPPORTED SEGMENT DESCRIPTOR TYPE CODE',
	[0x260B] = 'INLINE DATA LENGTH EXCEEDED',
	[0x2700] = 'WRITE PROTECTED',
	[0x2701] = 'HARDWARE WRITE PROTECTED',
	[0x2702] = 'LOGICAL UNIT SOFTWARE WRITE PROTECTED',
	[0x2707] = 'SPACE ALLOCATION FAILED WRITE PROTECT',
	[0x2800] = 'NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED',
	[0x2900] = 'POWER ON, RESET, OR BUS DEVICE RESET OCCURRED',
	[0x2901] = 'POWER ON OCCURRED',
	[0x2902] = 'SCSI BUS RESET OCCURRED',
	[0x2903] = 'BUS DEVICE RESET FUNCTION OCCURRED',
	[0x2904] = 'DEVICE INTERNAL RESET',
	[0x2907] = 'I_T NEXUS LOSS OCCURRED',
	[0x2A01] = 'MODE PARAMETERS CHANGED',
	[0x2A02] = 'LOG PARAMETERS CHANGED',
	[0x2A03] = 'RESERVATIONS PREEMPTED',
	[0x2A04] = 'RESERVATIONS RELEASED',
	[0x2A05] = 'REGISTRATIONS PREEMPTED',
	[0x2A06] = 'ASYMMETRIC ACCESS STATE CHANGED',
	[0x2A09] = 'CAPACITY DATA HAS CHANGED',
	[0x2C00] = 'COMMAND SEQUENCE ERROR',
	[0x2F00] = 'COMMANDS CLEARED BY ANOTHER INITIATOR',
	[0x3000] = 'INCOMPATIBLE MEDIUM INSTALLED',
	[0x3002] = 'CANNOT READ MEDIUM - INCOMPATIBLE FORMAT',
	[0x3100] = 'MEDIUM FORMAT CORRUPTED',
	[0x3807] = 'THIN PROVISIONING SOFT THRESHOLD REACHED',
	[0x3900] = 'SAVING PARAMETERS NOT SUPPORTED',
	[0x3A00] = 'MEDIUM NOT PRESENT',
	[0x3A01] = 'MEDIUM NOT PRESENT - TRAY CLOSED',
	[0x3A02] = 'MEDIUM NOT PRESENT - TRAY OPEN',
	[0x3E03] = 'LOGICAL UNIT FAILED SELF-TEST',
	[0x3F01] = 'MICROCODE HAS BEEN CHANGED',
	[0x3F03] = 'INQUIRY DATA HAS CHANGED',
	[0x3F0E] = 'REPORTED LUNS DATA HAS CHANGED',
	[0x4400] = 'INTERNAL TARGET FAILURE',
	[0x4700] = 'SCSI PARITY ERROR',
	[0x4B00] = 'DATA PHASE ERROR',
	[0x5302] = 'MEDIUM REMOVAL PREVENTED',
	[0x5503] = 'INSUFFICIENT RESOURCES',
	[0x5D00] = 'FAILURE PREDICTION THRESHOLD EXCEEDED',
	[0x5E00] = 'LOW POWER CONDITION ON',
	[0x6300] = 'END OF USER AREA ENCOUNTERED ON THIS TRACK',
	[0x6400] = 'ILLEGAL MODE FOR THIS TRACK',
	[0x6F00] = 'COPY PROTECTION KEY EXCHANGE FAILURE - AUTHENTICATION FAILURE',
}
M.ASC = ASC

function M.asc_text(asc, ascq)
	return ASC[asc * 256 + ascq] or fmt('ASC 0x%02X ASCQ 0x%02X', asc, ascq)
end

-- Sense-key-specific bytes (SPC-4 4.5.2.4): a field pointer for ILLEGAL
-- REQUEST, a progress indication for NOT READY / NO SENSE.
local function sense_key_specific(key, b0, b1, b2)
	if band(b0, 0x80) == 0 then return nil end
	local sks = { sksv = true, raw = (b0 * 256 + b1) * 256 + b2 }
	if key == 0x5 then
		sks.cd = band(b0, 0x40) ~= 0
		sks.bpv = band(b0, 0x08) ~= 0
		sks.bit = band(b0, 0x07)
		sks.field = b1 * 256 + b2
	elseif key == 0x0 or key == 0x2 then
		sks.progress = (b1 * 256 + b2) / 65536
	end
	return sks
end

function M.sense(bytes, len)
	local get, n = reader(bytes, len)
	local rc = band(get(0), 0x7F)
	local r = { response_code = rc, length = n }
	if rc == 0x70 or rc == 0x71 then
		r.format = 'fixed'
		r.deferred = rc == 0x71
		r.key = band(get(2), 0x0F)
		r.filemark = band(get(2), 0x80) ~= 0
		r.eom = band(get(2), 0x40) ~= 0
		r.ili = band(get(2), 0x20) ~= 0
		if band(get(0), 0x80) ~= 0 then
			r.info = ((get(3) * 256 + get(4)) * 256 + get(5)) * 256 + get(6)
		end
		r.command_specific = ((get(8) * 256 + get(9)) * 256 + get(10)) * 256 + get(11)
		r.asc, r.ascq = get(12), get(13)
		r.fru = get(14)
		if n >= 18 then r.sks = sense_key_specific(r.key, get(15), get(16), get(17)) end
	elseif rc == 0x72 or rc == 0x73 then
		r.format = 'descriptor'
		r.deferred = rc == 0x73
		r.key = band(get(1), 0x0F)
		r.asc, r.ascq = get(2), get(3)
		r.descriptors = {}
		local at, stop = 8, math.min(n, 8 + get(7))
		while at + 1 < stop do
			local typ, dlen = get(at), get(at + 1)
			r.descriptors[#r.descriptors + 1] = { type = typ, length = dlen }
			if typ == 0x00 and band(get(at + 2), 0x80) ~= 0 then
				local v = 0
				for i = 4, 11 do v = v * 256 + get(at + i) end
				r.info = v
			elseif typ == 0x01 then
				local v = 0
				for i = 4, 11 do v = v * 256 + get(at + i) end
				r.command_specific = v
			elseif typ == 0x02 then
				r.sks = sense_key_specific(r.key, get(at + 4), get(at + 5), get(at + 6))
			end
			at = at + 2 + dlen
		end
	else
		r.format = 'unknown'
		return r
	end
	r.key_name = M.SENSE_KEYS[r.key]
	r.asc_text = M.asc_text(r.asc, r.ascq)
	return r
end

function M.format_sense(bytes, len)
	local r = M.sense(bytes, len)
	if r.format == 'unknown' then
		return { fmt('sense: unknown response code 0x%02X', r.response_code) }
	end
	local lines = {
		fmt('%s sense (%s%s): %s, %s (0x%02X/0x%02X)', r.format,
			r.deferred and 'deferred' or 'current', '', r.key_name, r.asc_text, r.asc, r.ascq),
	}
	if r.info then lines[#lines + 1] = fmt('  INFORMATION %d (0x%X)', r.info, r.info) end
	if r.sks then
		if r.sks.field then
			lines[#lines + 1] = fmt('  field pointer: %s byte %d%s',
				r.sks.cd and 'CDB' or 'parameter list', r.sks.field,
				r.sks.bpv and fmt(' bit %d', r.sks.bit) or '')
		elseif r.sks.progress then
			lines[#lines + 1] = fmt('  progress %.1f%%', r.sks.progress * 100)
		end
	end
	if r.ili then lines[#lines + 1] = '  ILI: incorrect length' end
	return lines
end

return M
