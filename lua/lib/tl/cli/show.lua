-- tl.cli.show: CDBs, statuses and sense data as text for people.
--
-- scsi.decode does the decoding (field values, names, ASC/ASCQ texts);
-- this module lays it out for the command line: one field a line, names
-- and values in aligned columns, and a sentence on what a sense key means
-- for the initiator.  Used by `tcmu-lua decode` and the sandbox.
local bit = require 'bit'
local decode = require 'scsi.decode'
local hexdump = require 'tl.cli.hexdump'

local fmt = string.format
local M = {}

-- SCSI status codes (SAM-5 5.3.1); scsi.decode has no table of them.
M.STATUS = {
  [0x00] = 'GOOD', [0x02] = 'CHECK CONDITION', [0x04] = 'CONDITION MET',
  [0x08] = 'BUSY', [0x10] = 'INTERMEDIATE', [0x14] = 'INTERMEDIATE-CONDITION MET',
  [0x18] = 'RESERVATION CONFLICT', [0x22] = 'COMMAND TERMINATED',
  [0x28] = 'TASK SET FULL', [0x30] = 'ACA ACTIVE', [0x40] = 'TASK ABORTED',
}

function M.status_name(s)
  return M.STATUS[s] or fmt('STATUS 0x%02X', s)
end

-- What each sense key tells an initiator to do: the part newcomers miss.
M.KEY_HINT = {
  [0x0] = 'nothing went wrong (or: see the other fields)',
  [0x1] = 'the command succeeded after the target recovered from an error',
  [0x2] = 'the unit cannot serve commands now; retry later or start it',
  [0x3] = 'the data on the medium could not be read or written',
  [0x4] = 'the target failed internally (a handler error lands here)',
  [0x5] = 'the command or its parameters are wrong; retrying will not help',
  [0x6] = 'something changed on the unit (reset, capacity, mode); the command was not run, retry it',
  [0x7] = 'the unit refuses the access (write protected, no space)',
  [0x8] = 'the medium is blank where data was expected',
  [0xA] = 'an EXTENDED COPY was aborted',
  [0xB] = 'the target aborted the command; the initiator may retry',
  [0xD] = 'the end of the medium was reached with data left over',
  [0xE] = 'the data compared differs from the medium (COMPARE AND WRITE, VERIFY)',
}

-- A field value as text: decimal, plus hex once hex says more.  decode
-- gives 8-byte fields as '0x...' strings; show them in decimal too when
-- the number is exact in a double.
function M.value_text(v)
  if type(v) == 'string' then
    local hex = v:match('^0x(%x+)$')
    if hex then
      local n = tonumber(hex, 16)
      hex = hex:gsub('^0+(%x)', '%1')
      if n and n < 2 ^ 53 then
        return n < 10 and tostring(n) or fmt('%.0f (0x%s)', n, hex:upper())
      end
      return '0x' .. hex:upper()
    end
    return v
  end
  if v < 10 then return tostring(v) end
  return fmt('%d (0x%X)', v, v)
end

-- The decoded fields of a CDB: name, section and rows {field, value, meaning}.
-- opts.brief: fold zero flags and small codes (and CONTROL, GROUP NUMBER)
-- into one list of names, so the fields that say something stand out.
function M.cdb_rows(bytes, opts)
  opts = opts or {}
  local name, fields, c = decode.cdb(bytes)
  local width = {}
  for _, def in ipairs(c and c.fields or {}) do width[def.name] = def.nbits end
  local rows, zeros = {}, {}
  -- INQUIRY's PAGE CODE names a VPD page only when EVPD is set.
  local no_vpd = c and c.op == 0x12 and bit.band(bytes:byte(2) or 0, 1) == 0
  for i = 2, #fields do
    local f = fields[i]
    if no_vpd and f.field == 'PAGE CODE' then
      f.meaning = f.value == 0 and 'none: EVPD is 0, standard data' or 'must be 0 when EVPD is 0'
    end
    local zero = f.value == 0 or (type(f.value) == 'string' and not f.value:find('[1-9a-fA-F]', 3))
    local minor = (width[f.field] or 8) < 8 or f.field == 'CONTROL' or f.field == 'GROUP NUMBER'
    if opts.brief and zero and minor then
      zeros[#zeros + 1] = f.field
    else
      rows[#rows + 1] = { f.field, M.value_text(f.value), f.meaning }
    end
  end
  return name, rows, c, zeros
end

-- Rows -> lines with the name and value columns aligned.
function M.columns(rows, indent)
  local w1, w2 = 0, 0
  for _, r in ipairs(rows) do
    w1 = math.max(w1, #r[1])
    if r[3] then w2 = math.max(w2, #r[2]) end
  end
  local lines = {}
  for _, r in ipairs(rows) do
    local line = fmt('%s%-' .. w1 .. 's  %s', indent or '', r[1], r[2])
    if r[3] then
      line = fmt('%s%-' .. w1 .. 's  %-' .. w2 .. 's  %s', indent or '', r[1], r[2], r[3])
    end
    lines[#lines + 1] = line
  end
  return lines
end

-- Notes about a CDB that does not look like its command.
function M.cdb_notes(bytes, c)
  local notes = {}
  if c and c.len and #bytes ~= c.len then
    notes[#notes + 1] = fmt('note: %s CDBs are %d bytes long, this one has %d%s',
      c.name, c.len, #bytes, #bytes < c.len and '; missing fields are left out' or '')
  end
  if not c and #bytes >= 8 and bit.band(bytes:byte(1), 0x7e) == 0x70 then
    notes[#notes + 1] = 'note: this looks like sense data; try decode --sense'
  end
  return notes
end

-- `tcmu-lua decode` of a CDB: the full, stand-alone explanation.
function M.cdb_lines(bytes)
  local name, rows, c = M.cdb_rows(bytes)
  local lines = { fmt('%s%s', name, c and c.section and ('  (' .. c.section .. ')') or '') }
  table.insert(rows, 1, { 'OPERATION CODE', fmt('0x%02X', bytes:byte(1)), nil })
  table.insert(rows, 1, { 'bytes', hexdump.spaced(bytes), nil })
  for _, l in ipairs(M.columns(rows, '  ')) do lines[#lines + 1] = l end
  for _, n in ipairs(M.cdb_notes(bytes, c)) do lines[#lines + 1] = n end
  return lines
end

local DESCRIPTOR_TYPES = {
  [0x00] = 'information', [0x01] = 'command-specific information',
  [0x02] = 'sense key specific', [0x03] = 'field replaceable unit',
  [0x04] = 'stream commands', [0x05] = 'block commands', [0x06] = 'OSD object identification',
  [0x09] = 'ATA status return', [0x0A] = 'another progress indication',
  [0x0B] = 'user data segment referral', [0x0C] = 'forwarded sense data',
  [0x0D] = 'direct-access block device',
}

-- The length of the sense data that matters (fixed: 8 + additional length).
function M.sense_length(sense)
  local rc = bit.band(sense:byte(1) or 0, 0x7f)
  if rc ~= 0x70 and rc ~= 0x71 and rc ~= 0x72 and rc ~= 0x73 then return 0 end
  return math.min(#sense, 8 + (sense:byte(8) or 0))
end

-- The sense key and additional sense code in one line, or nil when the
-- bytes are not sense data.
function M.sense_summary(sense)
  local r = decode.sense(sense)
  if r.format == 'unknown' then return nil end
  return fmt('%s: %s (asc 0x%02X, ascq 0x%02X)', r.key_name or '?', r.asc_text, r.asc, r.ascq), r
end

-- The rows of a full sense explanation.
function M.sense_rows(sense)
  local r = decode.sense(sense)
  if r.format == 'unknown' then return nil, r end
  local rows = {}
  local function row(a, b, c) rows[#rows + 1] = { a, b, c } end
  row('response code', fmt('0x%02X', r.response_code),
    fmt('%s format, %s', r.format, r.deferred and 'deferred error' or 'current error'))
  row('sense key', fmt('0x%X', r.key), r.key_name)
  row('asc/ascq', fmt('0x%02X/0x%02X', r.asc, r.ascq), r.asc_text)
  if r.info then
    row('information', M.value_text(r.info), 'often the LBA where the error happened')
  else
    row('information', 'not valid', r.format == 'fixed' and 'VALID bit clear' or 'no information descriptor')
  end
  if r.sks and r.sks.field then
    row('field pointer', fmt('%s byte %d%s', r.sks.cd and 'CDB' or 'parameter list',
      r.sks.field, r.sks.bpv and fmt(', bit %d', r.sks.bit) or ''), 'the first wrong field')
  elseif r.sks and r.sks.progress then
    row('progress', fmt('%.1f%%', r.sks.progress * 100), nil)
  elseif r.sks then
    row('sense key specific', fmt('0x%06X', r.sks.raw), nil)
  else
    row('field pointer', 'not given', r.format == 'fixed' and 'SKSV bit clear' or nil)
  end
  if r.format == 'fixed' then
    if r.command_specific ~= 0 then row('command-specific', fmt('0x%08X', r.command_specific), nil) end
    if r.fru ~= 0 then row('FRU code', fmt('0x%02X', r.fru), nil) end
    local flags = {}
    if r.filemark then flags[#flags + 1] = 'FILEMARK' end
    if r.eom then flags[#flags + 1] = 'EOM' end
    if r.ili then flags[#flags + 1] = 'ILI (incorrect length)' end
    if #flags > 0 then row('flags', table.concat(flags, ', '), nil) end
  else
    for _, d in ipairs(r.descriptors or {}) do
      row('descriptor', fmt('0x%02X, %d bytes', d.type, d.length), DESCRIPTOR_TYPES[d.type] or 'vendor or reserved')
    end
  end
  return rows, r
end

-- `tcmu-lua decode --sense`: the full explanation.
function M.sense_lines(sense)
  local rows, r = M.sense_rows(sense)
  if not rows then
    return { fmt('not sense data: response code 0x%02X (sense data starts with 0x70-0x73)',
      r.response_code) }, false
  end
  local lines = { fmt('%s: %s', r.key_name, r.asc_text) }
  table.insert(rows, 1, { 'bytes', hexdump.spaced(sense), nil })
  for _, l in ipairs(M.columns(rows, '  ')) do lines[#lines + 1] = l end
  if M.KEY_HINT[r.key] then
    lines[#lines + 1] = '  meaning: ' .. M.KEY_HINT[r.key]
  end
  if r.format == 'fixed' and #sense < 18 then
    lines[#lines + 1] = fmt('note: fixed format sense is normally 18 bytes, this has %d', #sense)
  end
  return lines, true
end

return M
