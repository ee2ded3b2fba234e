-- tl.cli.reply: what the data-in of common commands says, in words.
--
-- scsi.decode explains CDBs and sense data; nothing explains the answers
-- yet, and a student who sends READ CAPACITY wants to read "last LBA
-- 131071, 512-byte blocks", not hex.  This covers the replies a first
-- session meets: standard INQUIRY data, VPD pages 0x00 0x80 0x83 0xB0
-- 0xB1 0xB2, READ CAPACITY(10/16), MODE SENSE(6/10) and REQUEST SENSE.
-- Each decoder returns rows {name, value, meaning} for show.columns.
local bit = require 'bit'
local band, rshift = bit.band, bit.rshift
local fmt = string.format
local opcodes = require 'scsi.opcodes'

local M = {}

local function u(d, i, n)	-- big-endian unsigned, n bytes at offset i (0-based)
  local v = 0
  for k = 0, n - 1 do v = v * 256 + (d:byte(i + k + 1) or 0) end
  return v
end
local function b(d, i) return d:byte(i + 1) or 0 end
local function bitset(d, i, bitno) return band(rshift(b(d, i), bitno), 1) == 1 end
local function ascii(d, i, n) return (d:sub(i + 1, i + n):gsub('[^\32-\126]', '.'):gsub('%s+$', '')) end
local function hex(d, i, n) return (d:sub(i + 1, i + n):gsub('.', function(c) return fmt('%02x', c:byte()) end)) end
local function yesno(v) return v and 'yes' or 'no' end

-- Human sizes: 64 MiB, 1.5 GiB.
function M.size_text(bytes)
  local units = { 'bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB' }
  local i, v = 1, bytes
  while v >= 1024 and i < #units do v, i = v / 1024, i + 1 end
  if i == 1 then return fmt('%d bytes', bytes) end
  return (fmt('%.1f', v):gsub('%.0$', '')) .. ' ' .. units[i]
end

M.DEVICE_TYPES = {
  [0x00] = 'direct access block device (disk)', [0x01] = 'sequential access (tape)',
  [0x05] = 'CD/DVD device', [0x07] = 'optical memory device', [0x08] = 'medium changer',
  [0x0C] = 'storage array controller', [0x0D] = 'enclosure services',
  [0x0E] = 'simplified direct access', [0x1F] = 'unknown or no device type',
}
local VERSIONS = { [0] = 'no standard claimed', [3] = 'SPC', [4] = 'SPC-2',
  [5] = 'SPC-3', [6] = 'SPC-4', [7] = 'SPC-5' }

local function std_inquiry(d)
  local rows = {}
  local function row(...) rows[#rows + 1] = { ... } end
  local pq, pdt = rshift(b(d, 0), 5), band(b(d, 0), 0x1F)
  row('device type', fmt('0x%02X', pdt), M.DEVICE_TYPES[pdt])
  if pq ~= 0 then row('qualifier', tostring(pq), pq == 3 and 'no logical unit here' or 'not connected') end
  row('removable', yesno(bitset(d, 1, 7)), nil)
  row('version', fmt('0x%02X', b(d, 2)), VERSIONS[b(d, 2)])
  if #d >= 8 then
    local f = {}
    if bitset(d, 5, 3) then f[#f + 1] = '3PC (EXTENDED COPY)' end
    local tpgs = band(rshift(b(d, 5), 4), 3)
    if tpgs ~= 0 then f[#f + 1] = 'ALUA' end
    if bitset(d, 5, 0) then f[#f + 1] = 'PROTECT' end
    if bitset(d, 3, 4) then f[#f + 1] = 'HISUP' end
    if bitset(d, 7, 1) then f[#f + 1] = 'CMDQUE (command queuing)' end
    row('features', #f > 0 and table.concat(f, ', ') or 'none', nil)
  end
  if #d >= 16 then row('vendor', fmt('%q', ascii(d, 8, 8)), nil) end
  if #d >= 32 then row('product', fmt('%q', ascii(d, 16, 16)), nil) end
  if #d >= 36 then row('revision', fmt('%q', ascii(d, 32, 4)), nil) end
  return rows
end

local DESIGNATOR_TYPES = { [0] = 'vendor specific', 'T10 vendor ID', 'EUI-64', 'NAA',
  'relative target port', 'target port group', 'logical unit group', 'MD5 logical unit',
  'SCSI name string' }
local ASSOCIATION = { [0] = 'logical unit', 'target port', 'target device' }

local function vpd(page, d)
  local rows = {}
  local function row(...) rows[#rows + 1] = { ... } end
  local len = u(d, 2, 2)
  local stop = math.min(#d, 4 + len)
  row('page', fmt('0x%02X', b(d, 1)), opcodes.VPD_PAGES[b(d, 1)] or 'unknown page')
  if page == 0x00 then
    for i = 4, stop - 1 do
      row('supports', fmt('0x%02X', b(d, i)), opcodes.VPD_PAGES[b(d, i)] or 'unknown page')
    end
  elseif page == 0x80 then
    row('serial number', fmt('%q', ascii(d, 4, stop - 4)), nil)
  elseif page == 0x83 then
    local at = 4
    while at + 4 <= stop do
      local codeset, typ = band(b(d, at), 0x0F), band(b(d, at + 1), 0x0F)
      local assoc = band(rshift(b(d, at + 1), 4), 3)
      local n = b(d, at + 3)
      local text = (codeset == 2 or codeset == 3) and fmt('%q', ascii(d, at + 4, n))
        or hex(d, at + 4, n)
      if typ == 3 then text = 'naa.' .. text end
      row('designator', text, fmt('%s, %s', DESIGNATOR_TYPES[typ] or 'reserved',
        ASSOCIATION[assoc] or 'reserved'))
      at = at + 4 + n
    end
  elseif page == 0xB0 and #d >= 36 then
    row('max compare and write', tostring(b(d, 5)), 'blocks')
    row('max transfer length', tostring(u(d, 8, 4)), 'blocks (0: no limit)')
    row('optimal transfer length', tostring(u(d, 12, 4)), 'blocks')
    row('max unmap LBA count', tostring(u(d, 20, 4)), 'blocks')
    row('max unmap descriptors', tostring(u(d, 24, 4)), nil)
    row('unmap granularity', tostring(u(d, 28, 4)), 'blocks')
    if #d >= 44 then row('max write same length', tostring(u(d, 36, 8)), 'blocks') end
  elseif page == 0xB1 and #d >= 6 then
    local rate = u(d, 4, 2)
    row('rotation rate', tostring(rate), rate == 1 and 'non-rotating (solid state)'
      or rate == 0 and 'not reported' or 'rpm')
  elseif page == 0xB2 and #d >= 8 then
    local f = {}
    if bitset(d, 5, 7) then f[#f + 1] = 'UNMAP' end
    if bitset(d, 5, 6) then f[#f + 1] = 'WRITE SAME(16) unmap' end
    if bitset(d, 5, 5) then f[#f + 1] = 'WRITE SAME(10) unmap' end
    row('unmap by', #f > 0 and table.concat(f, ', ') or 'nothing', nil)
    local lbprz = band(rshift(b(d, 5), 2), 7)
    row('unmapped blocks read', lbprz ~= 0 and 'zeros' or 'anything', 'LBPRZ')
    local pt = band(b(d, 6), 7)
    row('provisioning', tostring(pt), ({ [0] = 'fully provisioned or not reported',
      'resource provisioned', 'thin provisioned' })[pt])
  end
  return rows
end

local function readcap(d, sixteen)
  local rows = {}
  local last = sixteen and u(d, 0, 8) or u(d, 0, 4)
  local bs = sixteen and u(d, 8, 4) or u(d, 4, 4)
  rows[#rows + 1] = { 'last LBA', fmt('%.0f', last), nil }
  rows[#rows + 1] = { 'block size', tostring(bs), 'bytes' }
  if not sixteen and last == 0xFFFFFFFF then
    rows[#rows + 1] = { 'capacity', 'too large for 10 bytes', 'use readcap16' }
  else
    rows[#rows + 1] = { 'capacity', fmt('%.0f blocks', last + 1), M.size_text((last + 1) * bs) }
  end
  if sixteen and #d >= 15 then
    local exp = band(b(d, 13), 0x0F)
    if exp > 0 then
      rows[#rows + 1] = { 'physical block', tostring(bs * 2 ^ exp), 'bytes' }
    end
    rows[#rows + 1] = { 'thin provisioning', yesno(bitset(d, 14, 7)), 'LBPME' }
    rows[#rows + 1] = { 'unmapped blocks read', bitset(d, 14, 6) and 'zeros' or 'anything', 'LBPRZ' }
    if bitset(d, 12, 0) then
      rows[#rows + 1] = { 'protection', 'type ' .. (band(rshift(b(d, 12), 1), 7) + 1), nil }
    end
  end
  return rows
end

-- Mode page fields worth naming; bit fields of byte 2 and 3.
local PAGE_BITS = {
  [0x01] = { { 2, 7, 'AWRE' }, { 2, 6, 'ARRE' }, { 2, 0, 'DCR' } },
  [0x08] = { { 2, 2, 'WCE', 'write cache enabled' }, { 2, 0, 'RCD', 'read cache disabled' } },
  [0x0A] = { { 2, 2, 'D_SENSE', 'descriptor format sense' }, { 2, 1, 'GLTSD' } },
  [0x1C] = { { 2, 3, 'DEXCPT', 'informational exceptions off' }, { 2, 2, 'TEST' } },
}

local function mode_sense(d, ten)
  local rows = {}
  local function row(...) rows[#rows + 1] = { ... } end
  local hlen = ten and 8 or 4
  if #d < hlen then return rows end
  local total = (ten and u(d, 0, 2) + 2 or b(d, 0) + 1)
  local dsp = b(d, ten and 3 or 2)
  local bdl = ten and u(d, 6, 2) or b(d, 3)
  row('mode data', fmt('%d bytes', total), #d < total and fmt('%d returned', #d) or nil)
  row('write protected', yesno(band(dsp, 0x80) ~= 0), 'WP')
  row('DPO and FUA', band(dsp, 0x10) ~= 0 and 'supported' or 'not supported', 'DPOFUA')
  if bdl >= 8 and #d >= hlen + 8 then
    local long = ten and bitset(d, 4, 0)
    local blocks = long and u(d, hlen, 8) or u(d, hlen + 1, 3)
    local bs = long and u(d, hlen + 12, 4) or u(d, hlen + 5, 3)
    row('block descriptor', fmt('%.0f blocks of %d bytes', blocks, bs), nil)
  end
  local at = hlen + bdl
  local stop = math.min(#d, total)
  while at + 2 <= stop do
    local code = band(b(d, at), 0x3F)
    local spf = bitset(d, at, 6)
    local plen = spf and u(d, at + 2, 2) + 4 or b(d, at + 1) + 2
    local name = opcodes.MODE_PAGES[code] or 'vendor or unknown'
    local bits = {}
    for _, f in ipairs(PAGE_BITS[code] or {}) do
      if at + f[1] < stop then
        bits[#bits + 1] = fmt('%s=%d', f[3], bitset(d, at + f[1], f[2]) and 1 or 0)
      end
    end
    row(fmt('page 0x%02X', code) .. (spf and fmt('/0x%02X', b(d, at + 1)) or ''),
      fmt('%d bytes', plen), name .. (#bits > 0 and (': ' .. table.concat(bits, ' ')) or ''))
    at = at + plen
  end
  return rows
end

-- Rows describing the data-in of cdb, or nil when there is nothing to say.
function M.rows(cdb, data)
  if not data or #data == 0 then return nil end
  local op = cdb:byte(1)
  if op == 0x12 then
    if band(cdb:byte(2) or 0, 1) == 1 then return vpd(cdb:byte(3) or 0, data) end
    return std_inquiry(data)
  elseif op == 0x25 and #data >= 8 then
    return readcap(data, false)
  elseif op == 0x9E and band(cdb:byte(2) or 0, 0x1F) == 0x10 and #data >= 12 then
    return readcap(data, true)
  elseif op == 0x1A or op == 0x5A then
    return mode_sense(data, op == 0x5A)
  elseif op == 0x03 then
    local show = require 'tl.cli.show'
    local summary = show.sense_summary(data)
    if summary then return { { 'pending sense', summary, nil } } end
  end
  return nil
end

return M
