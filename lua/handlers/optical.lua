-- optical: a read-only CD/DVD-ROM drive (MMC) over an ISO image file.
--
-- The drive answers the multimedia commands itself, in handle(): the SCSI
-- library emulates a direct-access disk (peripheral device type 0, RMB=0,
-- SBC mode pages), which is not what an MMC initiator (Linux sr) wants.
-- It reuses the library's helpers: sense building (core.fail), replies
-- truncated to the allocation length (core.reply), the unit attention
-- queue (scsi.ua) and the identity strings/designators (dev.scsi.serial,
-- .naa, .vendor, ...).  Only REPORT LUNS is left to the library
-- (NOT_HANDLED); every other opcode the drive does not know is INVALID
-- COMMAND OPERATION CODE.
--
-- Commands (MMC-6 section numbers in docs/optical.md):
--   TEST UNIT READY, REQUEST SENSE, INQUIRY (type 5, RMB=1, VPD 00/80/83),
--   READ CAPACITY(10), READ(10), READ(12), START STOP UNIT (LoEj),
--   PREVENT ALLOW MEDIUM REMOVAL, GET CONFIGURATION, READ TOC/PMA/ATIP
--   (formats 0 and 1), READ DISC INFORMATION, READ TRACK INFORMATION,
--   GET EVENT STATUS NOTIFICATION (polled, media class), MECHANISM STATUS,
--   MODE SENSE(10)/(6), MODE SELECT(10)/(6) (pages 0x01, 0x2A, 0x3F),
--   READ DISC STRUCTURE (DVD: formats 0x00, 0x01, 0xFF).
-- Writes (WRITE(6/10/12/16), WRITE AND VERIFY, WRITE SAME, ...) end in
-- DATA PROTECT / WRITE PROTECTED with a medium in, NOT READY / MEDIUM NOT
-- PRESENT without.
local ffi = require 'ffi'
local bit = require 'bit'
local C = require('tl.abi').C
local sys = require 'tl.sys'
local scsi = require 'scsi'
local core = require 'scsi.core'
local sense = scsi.sense
local ua = require 'scsi.ua'
local cdbf = require 'scsi.cdb'

local band, bor, rshift, lshift = bit.band, bit.bor, bit.rshift, bit.lshift
local u16, u32 = cdbf.u16, cdbf.u32
local put16, put24, put32, put_ascii = cdbf.put16, cdbf.put24, cdbf.put32, cdbf.put_ascii
local good, fail, invalid_cdb, reply = core.good, core.fail, core.invalid_cdb, core.reply

local BLOCK = 2048
local CD_MAX_BLOCKS = 405000		-- ~90 minute CD; larger images are DVDs
local PROFILE_CD, PROFILE_DVD = 0x0008, 0x0010

-- Senses of MMC not in the library's list.
local function sd(name, key, asc, ascq)
	return { name = name, key = key, asc = asc, ascq = ascq, status = 2 }
end
local UA_MEDIUM_CHANGED = sd('UA_MEDIUM_CHANGED', 0x6, 0x28, 0x00)	-- NOT READY TO READY CHANGE
local REMOVAL_PREVENTED = sd('REMOVAL_PREVENTED', 0x5, 0x53, 0x02)	-- MEDIUM REMOVAL PREVENTED
local INCOMPATIBLE_FORMAT = sd('INCOMPATIBLE_FORMAT', 0x5, 0x30, 0x02)	-- CANNOT READ MEDIUM - INCOMPATIBLE FORMAT
local NO_MEDIUM, WRITE_PROTECTED = sense.NO_MEDIUM, sense.WRITE_PROTECTED

-- Opcodes that neither report nor clear a unit attention: SPC's INQUIRY,
-- REPORT LUNS, REQUEST SENSE, and MMC's GET CONFIGURATION and GET EVENT
-- STATUS NOTIFICATION.
local UA_EXEMPT = { [0x12] = true, [0xA0] = true, [0x03] = true, [0x46] = true, [0x4A] = true }

-- Media class events (GESN, MMC-6 6.6.2.6).
local EV_NOCHG, EV_EJECT_REQUEST, EV_NEW_MEDIA, EV_MEDIA_REMOVAL = 0, 1, 2, 3

local M = {
	description = 'read-only CD/DVD-ROM drive over an ISO image',
	cfgstring_key = 'path',
	schema = {
		path = { type = 'string', required = true, doc = 'ISO image (2048-byte sectors)' },
		media = { type = 'enum', values = { 'auto', 'cd', 'dvd' }, default = 'auto',
			doc = 'profile of the disc: cd, dvd, or auto (by size)' },
		loaded = { type = 'boolean', default = true,
			doc = 'start with the disc in the drive (false: empty tray)' },
	},
}

---------------------------------------------------------------- the medium

local function unload(st)
	if st.fd then C.close(st.fd) end
	st.fd, st.loaded, st.blocks = nil, false, 0
end

-- Open the image; nil, why when it cannot be read.
local function load(st)
	local fd = C.open(st.path, sys.O_RDONLY + sys.O_CLOEXEC, ffi.cast('int', 0))
	if fd < 0 then return nil, ('cannot open %s: %s'):format(st.path, sys.errstr()) end
	local size = tonumber(C.lseek(fd, 0, 2))
	if size < BLOCK then
		C.close(fd)
		return nil, ('%s holds no 2048-byte sector'):format(st.path)
	end
	if st.fd then C.close(st.fd) end
	st.fd, st.loaded = fd, true
	st.blocks = math.floor(size / BLOCK)
	local media = st.media
	if media == 'auto' then media = st.blocks <= CD_MAX_BLOCKS and 'cd' or 'dvd' end
	st.dvd = media == 'dvd'
	return true
end

local function queue_event(st, code)
	local q = st.events
	if #q >= 8 then table.remove(q, 1) end
	q[#q + 1] = code
end

function M.open(dev, conf)
	local st = { path = conf.path, media = conf.media, fd = nil, loaded = false,
		blocks = 0, dvd = conf.media == 'dvd', prevent = false, persistent = false,
		events = {} }
	if conf.loaded then
		local ok, err = load(st)
		if not ok then return nil, err end
	end
	return st
end

function M.close(dev)
	unload(dev.state)
end

-- Hot reload: keep the open image, the lock and the event queue.
function M.migrate(dev, old, conf)
	old.media = conf.media
	return old
end

---------------------------------------------------------------- helpers

local function lba_to_msf(p, i, lba)
	local f = lba + 150
	p[i] = 0
	p[i + 1] = math.floor(f / 4500)
	p[i + 2] = math.floor(f / 75) % 60
	p[i + 3] = f % 75
end

local function current_profile(st)
	if not st.loaded then return 0 end
	return st.dvd and PROFILE_DVD or PROFILE_CD
end

-- A command that needs the disc: nil when it is there, else it fails.
local function no_medium(dev, cmd, st)
	if st.loaded then return false end
	fail(dev, cmd, NO_MEDIUM)
	return true
end

---------------------------------------------------------------- commands

local H = {}

-- TEST UNIT READY (SPC-4 6.47, MMC-6 6.1 table): NOT READY 3A/00 without a disc.
H[0x00] = function(dev, cmd, st)
	if no_medium(dev, cmd, st) then return end
	return good(dev, cmd)
end

-- REQUEST SENSE (SPC-4 6.39): a pending unit attention (cleared), else the
-- not-ready state of an empty drive, else NO SENSE.
H[0x03] = function(dev, cmd, st, s)
	local cdb = cmd.cdb
	local desc = band(cdb[1], 0x01) ~= 0
	local x = ua.take(s) or (not st.loaded and NO_MEDIUM) or sense.NO_ADDITIONAL
	local p = s.buf
	local n = sense.encode(p, desc, x.key, x.asc, x.ascq)
	return reply(dev, cmd, p, n, cdb[4])
end

-- INQUIRY (SPC-4 6.6): peripheral device type 5 (CD/DVD), RMB=1.
local STD_LEN = 74
local VPD_PAGES = { 0x00, 0x80, 0x83 }
H[0x12] = function(dev, cmd, st, s)
	local cdb = cmd.cdb
	local alloc = u16(cdb, 3)
	if band(cdb[1], 0x02) ~= 0 then return invalid_cdb(dev, cmd, 1, 1) end	-- CMDDT
	local p = s.buf
	if band(cdb[1], 0x01) == 0 then
		if cdb[2] ~= 0 then return invalid_cdb(dev, cmd, 2) end
		ffi.fill(p, STD_LEN, 0)
		p[0] = 0x05		-- qualifier 0, type 5: CD/DVD device
		p[1] = 0x80		-- RMB: removable medium
		p[2] = 0x05		-- VERSION: SPC-3
		p[3] = 0x02		-- RESPONSE DATA FORMAT 2
		p[4] = STD_LEN - 5
		put_ascii(p, 8, s.vendor, 8)
		put_ascii(p, 16, s.product, 16)
		put_ascii(p, 32, s.revision, 4)
		put16(p, 58, 0x00A0)	-- SAM-5
		put16(p, 60, 0x0300)	-- SPC-3
		put16(p, 62, 0x05E0)	-- MMC-6
		return reply(dev, cmd, p, STD_LEN, alloc)
	end
	local page = cdb[2]
	ffi.fill(p, 256, 0)
	p[0] = 0x05
	p[1] = page
	local n
	if page == 0x00 then
		for i, code in ipairs(VPD_PAGES) do p[3 + i] = code end
		n = 4 + #VPD_PAGES
	elseif page == 0x80 then
		put_ascii(p, 4, s.serial, #s.serial)
		n = 4 + #s.serial
	elseif page == 0x83 then
		n = 4
		p[n] = 0x01; p[n + 1] = 0x03; p[n + 3] = 16	-- NAA, binary, LU
		ffi.copy(p + n + 4, s.naa, 16)
		n = n + 20
		local id = ('%-8s%s'):format(s.vendor, s.serial)
		p[n] = 0x02; p[n + 1] = 0x01; p[n + 3] = #id	-- T10 vendor ID, ASCII
		put_ascii(p, n + 4, id, #id)
		n = n + 4 + #id
	else
		return invalid_cdb(dev, cmd, 2)
	end
	put16(p, 2, n - 4)
	return reply(dev, cmd, p, n, alloc)
end

-- START STOP UNIT (MMC-6 6.39): LoEj with Start=0 ejects (unless PREVENT
-- ALLOW MEDIUM REMOVAL locked the tray), LoEj with Start=1 loads the image
-- again (it may have been replaced meanwhile).  A power condition only
-- names a power state: accepted, nothing else done.
H[0x1B] = function(dev, cmd, st, s)
	local b4 = cmd.cdb[4]
	if rshift(b4, 4) ~= 0 then return good(dev, cmd) end
	if band(b4, 0x02) == 0 then return good(dev, cmd) end	-- no LoEj: spin up/down
	if band(b4, 0x01) == 0 then		-- eject
		if st.prevent then
			queue_event(st, EV_EJECT_REQUEST)
			return fail(dev, cmd, REMOVAL_PREVENTED)
		end
		if st.loaded then
			unload(st)
			queue_event(st, EV_MEDIA_REMOVAL)
		end
		st.tray_open = true
		return good(dev, cmd)
	end
	st.tray_open = false
	if st.loaded then return good(dev, cmd) end
	local ok = load(st)
	if not ok then return fail(dev, cmd, NO_MEDIUM) end
	queue_event(st, EV_NEW_MEDIA)
	ua.raise(s, UA_MEDIUM_CHANGED)
	return good(dev, cmd)
end

-- PREVENT ALLOW MEDIUM REMOVAL (MMC-6 6.12): bit 0 locks the tray, bit 1
-- sets the persistent prevent state (which only changes event reporting).
H[0x1E] = function(dev, cmd, st)
	local v = band(cmd.cdb[4], 0x03)
	if v == 0 then st.prevent = false
	elseif v == 1 then st.prevent = true
	elseif v == 2 then st.persistent = true
	else st.persistent = false end
	return good(dev, cmd)
end

-- READ CAPACITY(10) (MMC-6 6.23): last LBA and 2048.
H[0x25] = function(dev, cmd, st, s)
	if no_medium(dev, cmd, st) then return end
	local p = s.buf
	put32(p, 0, st.blocks - 1)
	put32(p, 4, BLOCK)
	return reply(dev, cmd, p, 8, 8)
end

-- READ(10) (MMC-6 6.19), READ(12) (6.20).
local function read(dev, cmd, st, lba, n)
	if no_medium(dev, cmd, st) then return end
	if lba + n > st.blocks then return fail(dev, cmd, sense.LBA_OUT_OF_RANGE, lba) end
	if n == 0 then return good(dev, cmd) end
	local len = n * BLOCK
	local room = tonumber(cmd.data_len)
	if room < len then len = room end
	local got = tonumber(C.tl_ffi_pread(cmd, 0, len, st.fd, lba * BLOCK))
	if got < 0 then return fail(dev, cmd, sense.READ_ERROR, lba) end
	if got < len then C.tl_ffi_fill(cmd, got, 0, len - got) end
	return good(dev, cmd)
end
H[0x28] = function(dev, cmd, st) return read(dev, cmd, st, u32(cmd.cdb, 2), u16(cmd.cdb, 7)) end
H[0xA8] = function(dev, cmd, st) return read(dev, cmd, st, u32(cmd.cdb, 2), u32(cmd.cdb, 6)) end

-- Writes: a ROM disc is write protected.
local function refuse_write(dev, cmd, st)
	if no_medium(dev, cmd, st) then return end
	return fail(dev, cmd, WRITE_PROTECTED)
end
for _, op in ipairs { 0x0A, 0x2A, 0xAA, 0x8A, 0x2E, 0xAE, 0x8E, 0x41, 0x93, 0x89, 0x42 } do
	H[op] = refuse_write
end

-- GET CONFIGURATION (MMC-6 6.6).  Features: 0000 Profile List, 0001 Core,
-- 0002 Morphing, 0003 Removable Medium, 0010 Random Readable, 001E CD
-- Read, 001F DVD Read.  RT 0: all from STARTING FEATURE NUMBER on; RT 1:
-- the current ones only; RT 2: just that one.
local function features(st)
	local cd_now, dvd_now = st.loaded and not st.dvd, st.loaded and st.dvd
	return {
		{ code = 0x0000, ver = 0, persistent = true, current = true,
			body = { 0x00, 0x10, dvd_now and 1 or 0, 0, 0x00, 0x08, cd_now and 1 or 0, 0 } },
		{ code = 0x0001, ver = 0, persistent = true, current = true,
			body = { 0, 0, 0, 1 } },			-- physical interface: SCSI family
		{ code = 0x0002, ver = 1, persistent = true, current = true,
			body = { 0x02, 0, 0, 0 } },			-- OCEvent=1, ASYNC=0 (polling)
		{ code = 0x0003, ver = 0, persistent = true, current = true,
			body = { 0x29, 0, 0, 0 } },			-- tray, Eject=1, Lock=1
		{ code = 0x0010, ver = 0, persistent = false, current = st.loaded,
			body = { 0, 0, 0x08, 0x00, 0, st.dvd and 16 or 1, 0, 0 } },	-- 2048, blocking
		{ code = 0x001E, ver = 0, persistent = false, current = cd_now, body = { 0, 0, 0, 0 } },
		{ code = 0x001F, ver = 0, persistent = false, current = dvd_now, body = {} },
	}
end
H[0x46] = function(dev, cmd, st, s)
	local cdb = cmd.cdb
	local rt, start, alloc = band(cdb[1], 0x03), u16(cdb, 2), u16(cdb, 7)
	if rt == 3 then return invalid_cdb(dev, cmd, 1, 1) end
	local p = s.buf
	ffi.fill(p, 8, 0)
	put16(p, 6, current_profile(st))
	local n = 8
	for _, f in ipairs(features(st)) do
		local want
		if rt == 2 then want = f.code == start
		elseif rt == 1 then want = f.code >= start and f.current
		else want = f.code >= start end
		if want then
			put16(p, n, f.code)
			p[n + 2] = bor(lshift(f.ver, 2), f.persistent and 2 or 0, f.current and 1 or 0)
			p[n + 3] = #f.body
			for i, b in ipairs(f.body) do p[n + 3 + i] = b end
			n = n + 4 + #f.body
		end
	end
	put32(p, 0, n - 4)
	return reply(dev, cmd, p, n, alloc)
end

-- READ TOC/PMA/ATIP (MMC-6 6.26): format 0 (TOC: one data track and the
-- lead-out) and 1 (session information); the format may also come from
-- the old field in byte 9.
H[0x43] = function(dev, cmd, st, s)
	local cdb = cmd.cdb
	local msf = band(cdb[1], 0x02) ~= 0
	local format = band(cdb[2], 0x0F)
	if format == 0 then format = rshift(cdb[9], 6) end
	local track, alloc = cdb[6], u16(cdb, 7)
	if format > 1 then return invalid_cdb(dev, cmd, 2, 3) end
	if no_medium(dev, cmd, st) then return end
	local p = s.buf
	ffi.fill(p, 32, 0)
	local function addr(i, lba)
		if msf then lba_to_msf(p, i, lba) else put32(p, i, lba) end
	end
	local n = 4
	if format == 0 then
		if track > 1 and track ~= 0xAA then return invalid_cdb(dev, cmd, 6) end
		p[2], p[3] = 1, 1			-- first and last track
		if track <= 1 then
			p[n + 1] = 0x14; p[n + 2] = 1; addr(n + 4, 0)	-- ADR 1, data track
			n = n + 8
		end
		p[n + 1] = 0x14; p[n + 2] = 0xAA; addr(n + 4, st.blocks)	-- lead-out
		n = n + 8
	else
		p[2], p[3] = 1, 1			-- first and last session
		p[n + 1] = 0x14; p[n + 2] = 1; addr(n + 4, 0)	-- first track of the last session
		n = n + 8
	end
	put16(p, 0, n - 2)
	return reply(dev, cmd, p, n, alloc)
end

-- READ DISC INFORMATION (MMC-6 6.22): a finalized disc, one session, one track.
H[0x51] = function(dev, cmd, st, s)
	local cdb = cmd.cdb
	if band(cdb[1], 0x07) ~= 0 then return invalid_cdb(dev, cmd, 1, 2) end
	if no_medium(dev, cmd, st) then return end
	local p = s.buf
	ffi.fill(p, 34, 0)
	put16(p, 0, 32)
	p[2] = 0x0E		-- last session complete (3), disc finalized (2)
	p[3] = 1		-- first track on disc
	p[4] = 1		-- sessions (LSB)
	p[5] = 1		-- first track in last session (LSB)
	p[6] = 1		-- last track in last session (LSB)
	p[7] = 0x20		-- URU: unrestricted use
	p[8] = 0x00		-- disc type: CD-DA or CD-ROM
	put32(p, 16, 0xFFFFFFFF)	-- last session lead-in: none (finalized)
	put32(p, 20, 0xFFFFFFFF)	-- last possible lead-out: none
	return reply(dev, cmd, p, 34, u16(cdb, 7))
end

-- READ TRACK INFORMATION (MMC-6 6.27): track 1, by track (type 1) or by
-- LBA (type 0); session 1 (type 2); lead-in track 0 is refused.
H[0x52] = function(dev, cmd, st, s)
	local cdb = cmd.cdb
	local kind, num = band(cdb[1], 0x03), u32(cdb, 2)
	if no_medium(dev, cmd, st) then return end
	if kind == 3 or (kind == 0 and num >= st.blocks) or (kind ~= 0 and num ~= 1) then
		return invalid_cdb(dev, cmd, 2)
	end
	local p = s.buf
	ffi.fill(p, 36, 0)
	put16(p, 0, 34)
	p[2] = 1		-- track number (LSB)
	p[3] = 1		-- session number (LSB)
	p[5] = 0x04		-- track mode: data, uninterrupted
	p[6] = 0x01		-- data mode 1
	put32(p, 8, 0)		-- track start address
	put32(p, 24, st.blocks)	-- track size
	return reply(dev, cmd, p, 36, u16(cdb, 7))
end

-- GET EVENT STATUS NOTIFICATION (MMC-6 6.7): polled only; the media class
-- (bit 4): new media, eject request, media removal, from the event queue,
-- one per command; no event: NoChg with the current media status.
H[0x4A] = function(dev, cmd, st, s)
	local cdb = cmd.cdb
	if band(cdb[1], 0x01) == 0 then return invalid_cdb(dev, cmd, 1, 0) end	-- asynchronous
	local class, alloc = cdb[4], u16(cdb, 7)
	local p = s.buf
	ffi.fill(p, 8, 0)
	p[3] = 0x10		-- supported event classes: media
	if band(class, 0x10) == 0 then
		p[2] = 0x80	-- NEA: none of the requested classes is available
		put16(p, 0, 2)
		return reply(dev, cmd, p, 4, alloc)
	end
	p[2] = 0x04		-- notification class: media
	put16(p, 0, 6)
	p[4] = table.remove(st.events, 1) or EV_NOCHG
	p[5] = bor(st.loaded and 0x02 or 0, st.tray_open and 0x01 or 0)
	return reply(dev, cmd, p, 8, alloc)
end

-- MECHANISM STATUS (MMC-6 6.10): no changer, idle, the door state.
H[0xBD] = function(dev, cmd, st, s)
	local p = s.buf
	ffi.fill(p, 8, 0)
	p[1] = st.tray_open and 0x10 or 0x00	-- mechanism idle, door open
	put24(p, 2, 0)				-- current LBA (obsolete)
	return reply(dev, cmd, p, 8, u16(cmd.cdb, 8))
end

-- MODE SENSE(10) (SPC-4 6.12): page 0x01 Read/Write Error Recovery and page
-- 0x2A MM Capabilities and Mechanical Status (MMC-3 style, what Linux sr
-- reads); 0x3F returns both.  No block descriptors; nothing changeable.
local function page_01(p, n, pc)
	p[n] = 0x01; p[n + 1] = 0x0A
	return n + 12
end
local function page_2a(p, n, pc, st, s)
	ffi.fill(p + n, 30, 0)
	p[n] = 0x2A; p[n + 1] = 0x1C
	if pc == 1 then return n + 30 end	-- changeable: none
	p[n + 2] = 0x08 + 0x01			-- reads DVD-ROM, CD-R (and CD-ROM)
	p[n + 3] = 0x00			-- writes nothing
	p[n + 4] = 0x10			-- mode 2 form 1
	p[n + 5] = 0x00
	-- loading mechanism: tray (001); eject; lock; lock state
	p[n + 6] = bor(0x20, 0x08, 0x01, st.prevent and 0x02 or 0)
	put16(p, n + 8, 176 * 24)		-- maximum read speed (obsolete), kB/s
	put16(p, n + 12, 512)			-- buffer size, KB
	put16(p, n + 14, 176 * 24)		-- current read speed (obsolete)
	return n + 30
end
-- ten: MODE SENSE(10) (8-byte header) or MODE SENSE(6) (4-byte header).
-- MMC-6 names only the 10-byte command, but Linux sr asks for page 0x2A
-- with MODE SENSE(6) first (and calls the drive "scsi-1" without it).
local function mode_sense(dev, cmd, st, s, ten)
	local cdb = cmd.cdb
	local pc, page, sub = rshift(cdb[2], 6), band(cdb[2], 0x3F), cdb[3]
	local alloc = ten and u16(cdb, 7) or cdb[4]
	if pc == 3 then return fail(dev, cmd, sense.SAVING_NOT_SUPPORTED) end
	if sub ~= 0 and not (page == 0x3F and sub == 0xFF) then return invalid_cdb(dev, cmd, 3) end
	if page ~= 0x01 and page ~= 0x2A and page ~= 0x3F then return invalid_cdb(dev, cmd, 2, 5) end
	local p = s.buf
	local n = ten and 8 or 4	-- the mode parameter header; no block descriptors
	ffi.fill(p, n, 0)
	if page == 0x01 or page == 0x3F then
		ffi.fill(p + n, 12, 0); n = page_01(p, n, pc)
	end
	if page == 0x2A or page == 0x3F then n = page_2a(p, n, pc, st, s) end
	if ten then put16(p, 0, n - 2) else p[0] = n - 1 end
	return reply(dev, cmd, p, n, alloc)
end
H[0x5A] = function(dev, cmd, st, s) return mode_sense(dev, cmd, st, s, true) end
H[0x1A] = function(dev, cmd, st, s) return mode_sense(dev, cmd, st, s, false) end

-- MODE SELECT(10) and (6): nothing is changeable; an empty list (or a bare
-- header) is accepted, any page refused.
H[0x55] = function(dev, cmd, st, s)
	if u16(cmd.cdb, 7) <= 8 then return good(dev, cmd) end
	return core.invalid_param(dev, cmd, 8)
end
H[0x15] = function(dev, cmd, st, s)
	if cmd.cdb[4] <= 4 then return good(dev, cmd) end
	return core.invalid_param(dev, cmd, 4)
end

-- READ DISC STRUCTURE (MMC-6 6.24), DVD only: 0x00 physical format
-- information, 0x01 copyright (no protection), 0xFF the list of formats.
H[0xAD] = function(dev, cmd, st, s)
	local cdb = cmd.cdb
	local mtype, layer, format, alloc = band(cdb[1], 0x0F), cdb[6], cdb[7], u16(cdb, 8)
	if mtype ~= 0 then return invalid_cdb(dev, cmd, 1, 3) end
	if format ~= 0xFF then
		if no_medium(dev, cmd, st) then return end
		if not st.dvd then return fail(dev, cmd, INCOMPATIBLE_FORMAT) end
	end
	local p = s.buf
	local n
	if format == 0x00 then
		if layer ~= 0 then return invalid_cdb(dev, cmd, 6) end
		n = 4 + 2048
		ffi.fill(p, n, 0)
		p[4] = 0x01		-- book type DVD-ROM, part version 1
		p[5] = 0x02		-- 120 mm, maximum rate 10.08 Mbps
		p[6] = 0x01		-- one layer, parallel track path, embossed
		p[7] = 0x10		-- 0.267 um/bit, 0.74 um/track
		put32(p, 8, 0x030000)			-- starting physical sector
		put32(p, 12, 0x030000 + st.blocks - 1)	-- end physical sector of data
		put32(p, 16, 0)				-- end sector in layer 0
	elseif format == 0x01 then
		if layer ~= 0 then return invalid_cdb(dev, cmd, 6) end
		n = 8
		ffi.fill(p, n, 0)		-- no copy protection, all regions
	elseif format == 0xFF then
		n = 4 + 3 * 4
		ffi.fill(p, n, 0)
		local list = { { 0x00, 2048 + 4 }, { 0x01, 8 }, { 0xFF, n } }
		for i, e in ipairs(list) do
			local at = 4 * i
			p[at] = e[1]; p[at + 1] = 0x40	-- readable with READ DISC STRUCTURE
			put16(p, at + 2, e[2])
		end
	else
		return invalid_cdb(dev, cmd, 7)
	end
	put16(p, 0, n - 2)
	return reply(dev, cmd, p, n, alloc)
end

---------------------------------------------------------------- dispatch

function M.handle(dev, cmd)
	local s, st = dev.scsi, dev.state
	local op = cmd.cdb[0]
	if op == 0xA0 then return scsi.NOT_HANDLED end	-- REPORT LUNS: the library
	if s.ua_n > 0 and not UA_EXEMPT[op] then return fail(dev, cmd, ua.take(s)) end
	local f = H[op]
	if f == nil then return fail(dev, cmd, sense.INVALID_OPCODE) end
	f(dev, cmd, st, s)
end

M.BLOCK = BLOCK
return M
