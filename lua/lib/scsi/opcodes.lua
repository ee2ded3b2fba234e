-- scsi/opcodes.lua: the CDB layout of every command, in one table.
--
-- Each command lists its fields (SPC-4 / SBC-3 CDB tables).  Two users:
--   * decode.lua prints any CDB field by field;
--   * REPORT SUPPORTED OPERATION CODES (misc.lua) derives the CDB USAGE DATA
--     bit map from the same fields, so the map says exactly which bits the
--     code looks at.
-- A field is {name, byte, hi, nbits[, meaning]}: nbits bits starting at bit
-- hi of byte and running on into the following bytes (so a 4-byte LBA at
-- byte 2 is {'LOGICAL BLOCK ADDRESS', 2, 7, 32}).  meaning is a table
-- value -> text or a function(value) -> text, for the decoder.
local M = {}

local function F(name, byte, hi, nbits, meaning)
	return { name = name, byte = byte, hi = hi, nbits = nbits, meaning = meaning }
end
local function B(name, byte, nbytes, meaning) return F(name, byte, 7, nbytes * 8, meaning) end
M.F, M.B = F, B

-- Meanings shared by several commands.
M.PAGE_CONTROL = { [0] = 'current values', 'changeable values', 'default values', 'saved values' }
M.VPD_PAGES = {
	[0x00] = 'Supported VPD pages', [0x80] = 'Unit Serial Number',
	[0x83] = 'Device Identification', [0x86] = 'Extended INQUIRY Data',
	[0x87] = 'Mode Page Policy', [0x88] = 'SCSI Ports', [0x89] = 'ATA Information',
	[0x8F] = 'Third-party Copy', [0xB0] = 'Block Limits',
	[0xB1] = 'Block Device Characteristics', [0xB2] = 'Logical Block Provisioning',
	[0xB3] = 'Referrals',
}
M.MODE_PAGES = {
	[0x01] = 'Read-Write Error Recovery', [0x02] = 'Disconnect-Reconnect',
	[0x08] = 'Caching', [0x0A] = 'Control', [0x1A] = 'Power Condition',
	[0x1C] = 'Informational Exceptions Control', [0x2A] = 'CD/DVD Capabilities',
	[0x3F] = 'all pages',
}
local BYTCHK = { [0] = 'no data-out: verify the medium only',
	'compare the data-out with the medium', 'reserved',
	'compare one block of data-out with every block' }
local POWER_CONDITION = { [0] = 'START_VALID', 'ACTIVE', 'IDLE', 'STANDBY',
	[7] = 'LU_CONTROL', [0xA] = 'FORCE_IDLE_0', [0xB] = 'FORCE_STANDBY_0' }
local PR_TYPE = { [1] = 'Write Exclusive', [3] = 'Exclusive Access',
	[5] = 'Write Exclusive - Registrants Only', [6] = 'Exclusive Access - Registrants Only',
	[7] = 'Write Exclusive - All Registrants', [8] = 'Exclusive Access - All Registrants' }
local REPORTING_OPTIONS = { [0] = 'all commands', 'one command, no service action',
	'one command with service action', 'one command, service action if any' }

-- Fields that recur.
local function control(len) return F('CONTROL', len - 1, 7, 8) end
local function group(byte) return F('GROUP NUMBER', byte, 4, 5) end
local function protect(name) return F(name, 1, 7, 3) end
local DPO = F('DPO', 1, 4, 1, { [0] = 'cache normally', 'do not retain in cache' })
local FUA = F('FUA', 1, 3, 1, { [0] = 'cache allowed', 'force unit access' })
local RARC = F('RARC', 1, 2, 1)
local SA = F('SERVICE ACTION', 1, 4, 5)
local function lba4(byte) return B('LOGICAL BLOCK ADDRESS', byte, 4) end
local function lba8(byte) return B('LOGICAL BLOCK ADDRESS', byte, 8) end

-- The commands this library implements.  impl = true marks them (others are
-- listed for the decoder only).  needs names the handler callback without
-- which the device does not offer the command.
M.list = {
	{ op = 0x00, name = 'TEST UNIT READY', len = 6, impl = true, section = 'SPC-4 6.47',
		fields = {} },
	{ op = 0x03, name = 'REQUEST SENSE', len = 6, impl = true, section = 'SPC-4 6.39',
		fields = { F('DESC', 1, 0, 1, { [0] = 'fixed format', 'descriptor format' }),
			B('ALLOCATION LENGTH', 4, 1) } },
	{ op = 0x04, name = 'FORMAT UNIT', len = 6, impl = true, section = 'SBC-3 5.2',
		fields = { F('FMTPINFO', 1, 7, 2), F('LONGLIST', 1, 5, 1), F('FMTDATA', 1, 4, 1),
			F('CMPLST', 1, 3, 1), F('DEFECT LIST FORMAT', 1, 2, 3) } },
	{ op = 0x08, name = 'READ(6)', len = 6, impl = true, needs = 'read', section = 'SBC-3 5.7',
		fields = { F('LOGICAL BLOCK ADDRESS', 1, 4, 21),
			B('TRANSFER LENGTH', 4, 1, function(v) return v == 0 and '256 blocks' or nil end) } },
	{ op = 0x0A, name = 'WRITE(6)', len = 6, impl = true, section = 'SBC-3 5.35',
		fields = { F('LOGICAL BLOCK ADDRESS', 1, 4, 21),
			B('TRANSFER LENGTH', 4, 1, function(v) return v == 0 and '256 blocks' or nil end) } },
	{ op = 0x12, name = 'INQUIRY', len = 6, impl = true, section = 'SPC-4 6.6',
		fields = { F('CMDDT (obsolete)', 1, 1, 1), F('EVPD', 1, 0, 1),
			B('PAGE CODE', 2, 1, M.VPD_PAGES), B('ALLOCATION LENGTH', 3, 2) } },
	{ op = 0x15, name = 'MODE SELECT(6)', len = 6, impl = true, section = 'SPC-4 6.9',
		fields = { F('PF', 1, 4, 1), F('SP', 1, 0, 1), B('PARAMETER LIST LENGTH', 4, 1) } },
	{ op = 0x1A, name = 'MODE SENSE(6)', len = 6, impl = true, section = 'SPC-4 6.11',
		fields = { F('DBD', 1, 3, 1), F('PC', 2, 7, 2, M.PAGE_CONTROL),
			F('PAGE CODE', 2, 5, 6, M.MODE_PAGES), B('SUBPAGE CODE', 3, 1),
			B('ALLOCATION LENGTH', 4, 1) } },
	{ op = 0x1B, name = 'START STOP UNIT', len = 6, impl = true, section = 'SBC-3 5.25',
		fields = { F('IMMED', 1, 0, 1), F('POWER CONDITION MODIFIER', 3, 3, 4),
			F('POWER CONDITION', 4, 7, 4, POWER_CONDITION), F('NO_FLUSH', 4, 2, 1),
			F('LOEJ', 4, 1, 1), F('START', 4, 0, 1) } },
	{ op = 0x1E, name = 'PREVENT ALLOW MEDIUM REMOVAL', len = 6, impl = true, section = 'SBC-3 5.5',
		fields = { F('PREVENT', 4, 1, 2, { [0] = 'allow', 'prevent' }) } },
	{ op = 0x25, name = 'READ CAPACITY(10)', len = 10, impl = true, section = 'SBC-3 5.15',
		fields = { lba4(2), F('PMI', 8, 0, 1) } },
	{ op = 0x28, name = 'READ(10)', len = 10, impl = true, needs = 'read', section = 'SBC-3 5.8',
		fields = { protect('RDPROTECT'), DPO, FUA, RARC, lba4(2), group(6),
			B('TRANSFER LENGTH', 7, 2) } },
	{ op = 0x2A, name = 'WRITE(10)', len = 10, impl = true, section = 'SBC-3 5.36',
		fields = { protect('WRPROTECT'), DPO, FUA, lba4(2), group(6),
			B('TRANSFER LENGTH', 7, 2) } },
	{ op = 0x2E, name = 'WRITE AND VERIFY(10)', len = 10, impl = true, needs = 'read', section = 'SBC-3 5.39',
		fields = { protect('WRPROTECT'), DPO, F('BYTCHK', 1, 2, 2, BYTCHK), lba4(2),
			group(6), B('TRANSFER LENGTH', 7, 2) } },
	{ op = 0x2F, name = 'VERIFY(10)', len = 10, impl = true, needs = 'read', section = 'SBC-3 5.31',
		fields = { protect('VRPROTECT'), DPO, F('BYTCHK', 1, 2, 2, BYTCHK), lba4(2),
			group(6), B('VERIFICATION LENGTH', 7, 2) } },
	{ op = 0x34, name = 'PRE-FETCH(10)', len = 10, impl = true, section = 'SBC-3 5.3',
		fields = { F('IMMED', 1, 1, 1), lba4(2), group(6), B('PREFETCH LENGTH', 7, 2) } },
	{ op = 0x35, name = 'SYNCHRONIZE CACHE(10)', len = 10, impl = true, section = 'SBC-3 5.22',
		fields = { F('IMMED', 1, 1, 1), lba4(2), group(6),
			B('NUMBER OF LOGICAL BLOCKS', 7, 2, function(v) return v == 0 and 'to the last block' or nil end) } },
	{ op = 0x41, name = 'WRITE SAME(10)', len = 10, impl = true, section = 'SBC-3 5.42',
		fields = { protect('WRPROTECT'), F('ANCHOR', 1, 4, 1), F('UNMAP', 1, 3, 1),
			F('PBDATA (obsolete)', 1, 2, 1), F('LBDATA (obsolete)', 1, 1, 1), lba4(2), group(6),
			B('NUMBER OF LOGICAL BLOCKS', 7, 2) } },
	{ op = 0x42, name = 'UNMAP', len = 10, impl = true, section = 'SBC-3 5.28', needs = 'unmap',
		fields = { F('ANCHOR', 1, 0, 1), group(6), B('PARAMETER LIST LENGTH', 7, 2) } },
	{ op = 0x55, name = 'MODE SELECT(10)', len = 10, impl = true, section = 'SPC-4 6.10',
		fields = { F('PF', 1, 4, 1), F('SP', 1, 0, 1), B('PARAMETER LIST LENGTH', 7, 2) } },
	{ op = 0x5A, name = 'MODE SENSE(10)', len = 10, impl = true, section = 'SPC-4 6.12',
		fields = { F('LLBAA', 1, 4, 1), F('DBD', 1, 3, 1), F('PC', 2, 7, 2, M.PAGE_CONTROL),
			F('PAGE CODE', 2, 5, 6, M.MODE_PAGES), B('SUBPAGE CODE', 3, 1),
			B('ALLOCATION LENGTH', 7, 2) } },
	{ op = 0x83, sa = 0x00, name = 'EXTENDED COPY(LID1)', len = 16, impl = true, needs = 'read', section = 'SPC-4 6.4',
		fields = { SA, B('PARAMETER LIST LENGTH', 10, 4) } },
	{ op = 0x84, sa = 0x00, name = 'RECEIVE COPY STATUS(LID1)', len = 16, impl = true, section = 'SPC-4 6.20',
		fields = { SA, B('LIST IDENTIFIER', 2, 1), B('ALLOCATION LENGTH', 10, 4) } },
	{ op = 0x84, sa = 0x03, name = 'RECEIVE COPY OPERATING PARAMETERS', len = 16, impl = true, section = 'SPC-4 6.22',
		fields = { SA, B('ALLOCATION LENGTH', 10, 4) } },
	{ op = 0x88, name = 'READ(16)', len = 16, impl = true, needs = 'read', section = 'SBC-3 5.10',
		fields = { protect('RDPROTECT'), DPO, FUA, RARC, lba8(2), B('TRANSFER LENGTH', 10, 4),
			group(14) } },
	{ op = 0x89, name = 'COMPARE AND WRITE', len = 16, impl = true, needs = 'read', section = 'SBC-3 5.2',
		fields = { protect('WRPROTECT'), DPO, FUA, lba8(2), B('NUMBER OF LOGICAL BLOCKS', 13, 1),
			group(14) } },
	{ op = 0x8A, name = 'WRITE(16)', len = 16, impl = true, section = 'SBC-3 5.38',
		fields = { protect('WRPROTECT'), DPO, FUA, lba8(2), B('TRANSFER LENGTH', 10, 4),
			group(14) } },
	{ op = 0x8E, name = 'WRITE AND VERIFY(16)', len = 16, impl = true, needs = 'read', section = 'SBC-3 5.41',
		fields = { protect('WRPROTECT'), DPO, F('BYTCHK', 1, 2, 2, BYTCHK), lba8(2),
			B('TRANSFER LENGTH', 10, 4), group(14) } },
	{ op = 0x8F, name = 'VERIFY(16)', len = 16, impl = true, needs = 'read', section = 'SBC-3 5.33',
		fields = { protect('VRPROTECT'), DPO, F('BYTCHK', 1, 2, 2, BYTCHK), lba8(2),
			B('VERIFICATION LENGTH', 10, 4), group(14) } },
	{ op = 0x90, name = 'PRE-FETCH(16)', len = 16, impl = true, section = 'SBC-3 5.4',
		fields = { F('IMMED', 1, 1, 1), lba8(2), B('PREFETCH LENGTH', 10, 4), group(14) } },
	{ op = 0x91, name = 'SYNCHRONIZE CACHE(16)', len = 16, impl = true, section = 'SBC-3 5.23',
		fields = { F('IMMED', 1, 1, 1), lba8(2),
			B('NUMBER OF LOGICAL BLOCKS', 10, 4, function(v) return v == 0 and 'to the last block' or nil end),
			group(14) } },
	{ op = 0x93, name = 'WRITE SAME(16)', len = 16, impl = true, section = 'SBC-3 5.43',
		fields = { protect('WRPROTECT'), F('ANCHOR', 1, 4, 1), F('UNMAP', 1, 3, 1),
			F('PBDATA (obsolete)', 1, 2, 1), F('LBDATA (obsolete)', 1, 1, 1),
			F('NDOB', 1, 0, 1, { [0] = 'data-out holds the block', 'no data-out: zeros' }),
			lba8(2), B('NUMBER OF LOGICAL BLOCKS', 10, 4), group(14) } },
	{ op = 0x9E, sa = 0x10, name = 'READ CAPACITY(16)', len = 16, impl = true, section = 'SBC-3 5.16',
		fields = { SA, lba8(2), B('ALLOCATION LENGTH', 10, 4), F('PMI', 14, 0, 1) } },
	{ op = 0x9E, sa = 0x12, name = 'GET LBA STATUS', len = 16, impl = true, section = 'SBC-3 5.6',
		fields = { SA, B('STARTING LOGICAL BLOCK ADDRESS', 2, 8), B('ALLOCATION LENGTH', 10, 4) } },
	{ op = 0xA3, sa = 0x0C, name = 'REPORT SUPPORTED OPERATION CODES', len = 12, impl = true, section = 'SPC-4 6.35',
		fields = { SA, F('RCTD', 2, 7, 1), F('REPORTING OPTIONS', 2, 2, 3, REPORTING_OPTIONS),
			B('REQUESTED OPERATION CODE', 3, 1), B('REQUESTED SERVICE ACTION', 4, 2),
			B('ALLOCATION LENGTH', 6, 4) } },
	{ op = 0xA3, sa = 0x0D, name = 'REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS', len = 12, impl = true, section = 'SPC-4 6.36',
		fields = { SA, F('REPD', 2, 7, 1), B('ALLOCATION LENGTH', 6, 4) } },
	{ op = 0xA8, name = 'READ(12)', len = 12, impl = true, needs = 'read', section = 'SBC-3 5.9',
		fields = { protect('RDPROTECT'), DPO, FUA, RARC, lba4(2), B('TRANSFER LENGTH', 6, 4),
			group(10) } },
	{ op = 0xAA, name = 'WRITE(12)', len = 12, impl = true, section = 'SBC-3 5.37',
		fields = { protect('WRPROTECT'), DPO, FUA, lba4(2), B('TRANSFER LENGTH', 6, 4),
			group(10) } },
	{ op = 0xAE, name = 'WRITE AND VERIFY(12)', len = 12, impl = true, needs = 'read', section = 'SBC-3 5.40',
		fields = { protect('WRPROTECT'), DPO, F('BYTCHK', 1, 2, 2, BYTCHK), lba4(2),
			B('TRANSFER LENGTH', 6, 4), group(10) } },
	{ op = 0xAF, name = 'VERIFY(12)', len = 12, impl = true, needs = 'read', section = 'SBC-3 5.32',
		fields = { protect('VRPROTECT'), DPO, F('BYTCHK', 1, 2, 2, BYTCHK), lba4(2),
			B('VERIFICATION LENGTH', 6, 4), group(10) } },

	-- Answered by the kernel, or not implemented: names for the decoder.
	{ op = 0x01, name = 'REZERO UNIT', len = 6, fields = {} },
	{ op = 0x16, name = 'RESERVE(6)', len = 6, fields = {} },
	{ op = 0x17, name = 'RELEASE(6)', len = 6, fields = {} },
	{ op = 0x1C, name = 'RECEIVE DIAGNOSTIC RESULTS', len = 6,
		fields = { F('PCV', 1, 0, 1), B('PAGE CODE', 2, 1), B('ALLOCATION LENGTH', 3, 2) } },
	{ op = 0x1D, name = 'SEND DIAGNOSTIC', len = 6,
		fields = { F('SELF-TEST CODE', 1, 7, 3), F('PF', 1, 4, 1), F('SELFTEST', 1, 2, 1),
			F('DEVOFFL', 1, 1, 1), F('UNITOFFL', 1, 0, 1), B('PARAMETER LIST LENGTH', 3, 2) } },
	{ op = 0x2B, name = 'SEEK(10)', len = 10, fields = { lba4(2) } },
	{ op = 0x37, name = 'READ DEFECT DATA(10)', len = 10, fields = { B('ALLOCATION LENGTH', 7, 2) } },
	{ op = 0x3B, name = 'WRITE BUFFER', len = 10,
		fields = { F('MODE', 1, 4, 5), B('BUFFER ID', 2, 1), B('BUFFER OFFSET', 3, 3),
			B('PARAMETER LIST LENGTH', 6, 3) } },
	{ op = 0x3C, name = 'READ BUFFER', len = 10,
		fields = { F('MODE', 1, 4, 5), B('BUFFER ID', 2, 1), B('BUFFER OFFSET', 3, 3),
			B('ALLOCATION LENGTH', 6, 3) } },
	{ op = 0x3E, name = 'READ LONG(10)', len = 10, fields = { lba4(2), B('BYTE TRANSFER LENGTH', 7, 2) } },
	{ op = 0x3F, name = 'WRITE LONG(10)', len = 10, fields = { lba4(2), B('BYTE TRANSFER LENGTH', 7, 2) } },
	{ op = 0x43, name = 'READ TOC/PMA/ATIP', len = 10,
		fields = { F('MSF', 1, 1, 1), F('FORMAT', 2, 3, 4), B('TRACK/SESSION NUMBER', 6, 1),
			B('ALLOCATION LENGTH', 7, 2) } },
	{ op = 0x46, name = 'GET CONFIGURATION', len = 10,
		fields = { F('RT', 1, 1, 2), B('STARTING FEATURE NUMBER', 2, 2), B('ALLOCATION LENGTH', 7, 2) } },
	{ op = 0x48, name = 'SANITIZE', len = 10, fields = { F('SERVICE ACTION', 1, 4, 5), B('PARAMETER LIST LENGTH', 7, 2) } },
	{ op = 0x4A, name = 'GET EVENT STATUS NOTIFICATION', len = 10,
		fields = { F('POLLED', 1, 0, 1), B('NOTIFICATION CLASS REQUEST', 4, 1), B('ALLOCATION LENGTH', 7, 2) } },
	{ op = 0x4C, name = 'LOG SELECT', len = 10,
		fields = { F('PCR', 1, 1, 1), F('SP', 1, 0, 1), F('PC', 2, 7, 2), F('PAGE CODE', 2, 5, 6),
			B('SUBPAGE CODE', 3, 1), B('PARAMETER LIST LENGTH', 7, 2) } },
	{ op = 0x4D, name = 'LOG SENSE', len = 10,
		fields = { F('SP', 1, 0, 1), F('PC', 2, 7, 2), F('PAGE CODE', 2, 5, 6), B('SUBPAGE CODE', 3, 1),
			B('PARAMETER POINTER', 5, 2), B('ALLOCATION LENGTH', 7, 2) } },
	{ op = 0x51, name = 'READ DISC INFORMATION', len = 10,
		fields = { F('DATA TYPE', 1, 2, 3), B('ALLOCATION LENGTH', 7, 2) } },
	{ op = 0x56, name = 'RESERVE(10)', len = 10, fields = {} },
	{ op = 0x57, name = 'RELEASE(10)', len = 10, fields = {} },
	{ op = 0x5E, sa = 0x00, name = 'PERSISTENT RESERVE IN (READ KEYS)', len = 10,
		fields = { SA, B('ALLOCATION LENGTH', 7, 2) } },
	{ op = 0x5E, sa = 0x01, name = 'PERSISTENT RESERVE IN (READ RESERVATION)', len = 10,
		fields = { SA, B('ALLOCATION LENGTH', 7, 2) } },
	{ op = 0x5E, sa = 0x02, name = 'PERSISTENT RESERVE IN (REPORT CAPABILITIES)', len = 10,
		fields = { SA, B('ALLOCATION LENGTH', 7, 2) } },
	{ op = 0x5E, sa = 0x03, name = 'PERSISTENT RESERVE IN (READ FULL STATUS)', len = 10,
		fields = { SA, B('ALLOCATION LENGTH', 7, 2) } },
	{ op = 0x5F, sa = 0x00, name = 'PERSISTENT RESERVE OUT (REGISTER)', len = 10,
		fields = { SA, F('SCOPE', 2, 7, 4), F('TYPE', 2, 3, 4, PR_TYPE), B('PARAMETER LIST LENGTH', 5, 4) } },
	{ op = 0x5F, sa = 0x01, name = 'PERSISTENT RESERVE OUT (RESERVE)', len = 10,
		fields = { SA, F('SCOPE', 2, 7, 4), F('TYPE', 2, 3, 4, PR_TYPE), B('PARAMETER LIST LENGTH', 5, 4) } },
	{ op = 0x5F, sa = 0x02, name = 'PERSISTENT RESERVE OUT (RELEASE)', len = 10,
		fields = { SA, F('SCOPE', 2, 7, 4), F('TYPE', 2, 3, 4, PR_TYPE), B('PARAMETER LIST LENGTH', 5, 4) } },
	{ op = 0x5F, sa = 0x03, name = 'PERSISTENT RESERVE OUT (CLEAR)', len = 10,
		fields = { SA, F('SCOPE', 2, 7, 4), F('TYPE', 2, 3, 4, PR_TYPE), B('PARAMETER LIST LENGTH', 5, 4) } },
	{ op = 0x5F, sa = 0x04, name = 'PERSISTENT RESERVE OUT (PREEMPT)', len = 10,
		fields = { SA, F('SCOPE', 2, 7, 4), F('TYPE', 2, 3, 4, PR_TYPE), B('PARAMETER LIST LENGTH', 5, 4) } },
	{ op = 0x5F, sa = 0x05, name = 'PERSISTENT RESERVE OUT (PREEMPT AND ABORT)', len = 10,
		fields = { SA, F('SCOPE', 2, 7, 4), F('TYPE', 2, 3, 4, PR_TYPE), B('PARAMETER LIST LENGTH', 5, 4) } },
	{ op = 0x5F, sa = 0x06, name = 'PERSISTENT RESERVE OUT (REGISTER AND IGNORE EXISTING KEY)', len = 10,
		fields = { SA, F('SCOPE', 2, 7, 4), F('TYPE', 2, 3, 4, PR_TYPE), B('PARAMETER LIST LENGTH', 5, 4) } },
	{ op = 0x5F, sa = 0x07, name = 'PERSISTENT RESERVE OUT (REGISTER AND MOVE)', len = 10,
		fields = { SA, F('SCOPE', 2, 7, 4), F('TYPE', 2, 3, 4, PR_TYPE), B('PARAMETER LIST LENGTH', 5, 4) } },
	{ op = 0x5F, sa = 0x08, name = 'PERSISTENT RESERVE OUT (REPLACE LOST RESERVATION)', len = 10,
		fields = { SA, F('SCOPE', 2, 7, 4), F('TYPE', 2, 3, 4, PR_TYPE), B('PARAMETER LIST LENGTH', 5, 4) } },
	{ op = 0x7F, name = 'VARIABLE LENGTH CDB', fields = { B('ADDITIONAL CDB LENGTH', 7, 1),
		B('SERVICE ACTION', 8, 2) } },
	{ op = 0x85, name = 'ATA PASS-THROUGH(16)', len = 16, fields = { F('PROTOCOL', 1, 4, 4) } },
	{ op = 0x9E, sa = 0x11, name = 'READ LONG(16)', len = 16, fields = { SA, lba8(2) } },
	{ op = 0x9E, sa = 0x13, name = 'REPORT REFERRALS', len = 16, fields = { SA, lba8(2) } },
	{ op = 0xA0, name = 'REPORT LUNS', len = 12, kernel = true, section = 'SPC-4 6.33',
		fields = { B('SELECT REPORT', 2, 1), B('ALLOCATION LENGTH', 6, 4) } },
	{ op = 0xA1, name = 'ATA PASS-THROUGH(12)', len = 12, fields = { F('PROTOCOL', 1, 4, 4) } },
	{ op = 0xA2, name = 'SECURITY PROTOCOL IN', len = 12,
		fields = { B('SECURITY PROTOCOL', 1, 1), B('SECURITY PROTOCOL SPECIFIC', 2, 2),
			B('ALLOCATION LENGTH', 6, 4) } },
	{ op = 0xA3, sa = 0x05, name = 'REPORT IDENTIFYING INFORMATION', len = 12, fields = { SA } },
	{ op = 0xA3, sa = 0x0A, name = 'REPORT TARGET PORT GROUPS', len = 12,
		fields = { SA, B('ALLOCATION LENGTH', 6, 4) } },
	{ op = 0xA3, sa = 0x0F, name = 'REPORT TIMESTAMP', len = 12, fields = { SA } },
	{ op = 0xA4, sa = 0x0A, name = 'SET TARGET PORT GROUPS', len = 12, fields = { SA } },
	{ op = 0xB5, name = 'SECURITY PROTOCOL OUT', len = 12,
		fields = { B('SECURITY PROTOCOL', 1, 1), B('SECURITY PROTOCOL SPECIFIC', 2, 2),
			B('TRANSFER LENGTH', 6, 4) } },
	{ op = 0xB7, name = 'READ DEFECT DATA(12)', len = 12, fields = { B('ALLOCATION LENGTH', 6, 4) } },
	{ op = 0xBB, name = 'SET CD SPEED', len = 12, fields = {} },
	{ op = 0xBD, name = 'MECHANISM STATUS', len = 12, fields = { B('ALLOCATION LENGTH', 8, 2) } },
	{ op = 0xBE, name = 'READ CD', len = 12,
		fields = { lba4(2), B('TRANSFER LENGTH', 6, 3) } },
}

-- Opcodes whose byte 1 carries a service action.
M.has_sa = { [0x5E] = true, [0x5F] = true, [0x83] = true, [0x84] = true,
	[0x9E] = true, [0x9F] = true, [0xA3] = true, [0xA4] = true }

-- Lookup: M.by_op[op] for plain commands, M.by_op[op][sa] for service actions.
M.by_op = {}
for _, c in ipairs(M.list) do
	if c.len and not (c.fields[#c.fields] and c.fields[#c.fields].name == 'CONTROL') then
		c.fields[#c.fields + 1] = control(c.len)
	end
	if c.sa then
		M.by_op[c.op] = M.by_op[c.op] or { sa = {} }
		M.by_op[c.op].sa[c.sa] = c
	else
		M.by_op[c.op] = c
	end
end

-- The commands sorted by opcode, then service action (RSOC lists them so).
M.sorted = {}
for _, c in ipairs(M.list) do M.sorted[#M.sorted + 1] = c end
table.sort(M.sorted, function(a, b)
	if a.op ~= b.op then return a.op < b.op end
	return (a.sa or -1) < (b.sa or -1)
end)

-- The value of field f in CDB bytes get(i).
function M.field_value(get, f)
	local v = 0
	local start = f.byte * 8 + (7 - f.hi)
	for k = start, start + f.nbits - 1 do
		local byte, bitno = math.floor(k / 8), 7 - k % 8
		v = v * 2 + math.floor(get(byte) / 2 ^ bitno) % 2
	end
	return v
end

-- The CDB USAGE DATA bit map of a command (SPC-4 6.35.3): a table of
-- c.len numbers.  Byte 0 is the opcode itself; the CONTROL byte shows only NACA,
-- the one control bit we look at (and refuse).
function M.usage(c)
	local u = {}
	for i = 0, c.len - 1 do u[i] = 0 end
	u[0] = c.op	-- the first byte holds the operation code itself
	for _, f in ipairs(c.fields) do
		if f.name == 'CONTROL' then
			u[f.byte] = 0x04
		else
			local start = f.byte * 8 + (7 - f.hi)
			for k = start, start + f.nbits - 1 do
				local byte, bitno = math.floor(k / 8), 7 - k % 8
				if math.floor(u[byte] / 2 ^ bitno) % 2 == 0 then
					u[byte] = u[byte] + 2 ^ bitno
				end
			end
		end
	end
	return u
end

return M
