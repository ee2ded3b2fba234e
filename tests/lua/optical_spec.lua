-- The optical handler: a read-only CD/DVD-ROM drive (MMC) over an ISO file.
--
-- The image is made here: 2048-byte sectors, each starting with its own
-- LBA, so every read can be checked (no genisoimage needed).
local T = require 'tl.testing'
local be = T.be

local BLOCKS = 300

local function make_image(blocks)
  local path = os.tmpname()
  local f = assert(io.open(path, 'wb'))
  for i = 0, blocks - 1 do
    local head = ('LBA%08d'):format(i)
    f:write(head, ('x'):rep(2048 - #head))
  end
  f:close()
  return path
end

local function sector(i)
  local head = ('LBA%08d'):format(i)
  return head .. ('x'):rep(2048 - #head)
end

local function byte(s, i) return s:byte(i + 1) end
local function u16(s, i) return byte(s, i) * 256 + byte(s, i + 1) end
local function u32(s, i) return u16(s, i) * 65536 + u16(s, i + 2) end

local function check(r, key, asc, ascq)
  assert.equals(2, r.status)
  assert.equals(key, r.sense_key)
  assert.equals(asc, r.asc)
  if ascq then assert.equals(ascq, r.ascq) end
end
local function ok(r) assert.equals(0, r.status) end

local TUR = '00 00 00 00 00 00'
local EJECT = '1b 00 00 00 02 00'
local LOAD = '1b 00 00 00 03 00'
local PREVENT = '1e 00 00 00 01 00'
local ALLOW = '1e 00 00 00 00 00'
local function gesn(class, alloc) return '\74\1\0\0' .. string.char(class) .. '\0\0' .. be(alloc or 8, 2) .. '\0' end
local function getconf(rt, start, alloc) return '\70' .. string.char(rt) .. be(start, 2) .. '\0\0\0' .. be(alloc or 1024, 2) .. '\0' end
local function toc(msf, format, track, alloc)
  return '\67' .. string.char(msf and 2 or 0, format, 0, 0, 0, track) .. be(alloc or 100, 2) .. '\0'
end
local function read12(lba, n) return '\168\0' .. be(lba, 4) .. be(n, 4) .. '\0\0' end
local function mode_sense10(pc, page, alloc)
  return '\90\8' .. string.char(pc * 64 + page) .. '\0\0\0\0' .. be(alloc or 255, 2) .. '\0'
end
local function rds(format, layer, alloc, mtype)
  return '\173' .. string.char(mtype or 0) .. '\0\0\0\0' .. string.char(layer or 0, format) .. be(alloc or 4096, 2) .. '\0\0'
end

-- Features of a GET CONFIGURATION reply: list of {code, current, body}.
local function parse_features(data)
  local out, n = {}, 8
  while n + 4 <= #data do
    local len = byte(data, n + 3)
    out[#out + 1] = { code = u16(data, n), current = byte(data, n + 2) % 2 == 1,
      ver = math.floor(byte(data, n + 2) / 4), body = data:sub(n + 5, n + 4 + len) }
    n = n + 4 + len
  end
  return out
end

describe('optical handler', function()
  local path, d
  local function open(config)
    config.path = config.path or path
    d = assert(T.device { handler = 'optical', size = BLOCKS * 2048, block_size = 2048,
      config = config })
  end
  before_each(function() path = make_image(BLOCKS) end)
  after_each(function()
    if d then d:close(); d = nil end
    os.remove(path)
  end)

  describe('with a CD loaded', function()
    before_each(function() open {} end)

    it('is a removable CD/DVD device in INQUIRY', function()
      local r = d:exec('12 00 00 00 60 00', { len = 96 })
      ok(r)
      assert.equals(0x05, byte(r.data, 0))
      assert.equals(0x80, byte(r.data, 1))
      assert.equals(74, #r.data)
      assert.equals(0x05E0, u16(r.data, 62))   -- MMC-6
      r = d:exec('12 00 00 00 05 00', { len = 96 })
      ok(r); assert.equals(5, #r.data)
      check(d:exec('12 02 00 00 60 00', { len = 96 }), 5, 0x24)
      check(d:exec('12 00 80 00 60 00', { len = 96 }), 5, 0x24)
    end)

    it('has VPD pages 00, 80 and 83 of type 5', function()
      local r = d:exec('12 01 00 00 ff 00', { len = 255 })
      ok(r)
      assert.equals(0x05, byte(r.data, 0))
      assert.equals('\0\128\131', r.data:sub(5, 7))
      r = d:exec('12 01 80 00 ff 00', { len = 255 }); ok(r)
      assert.equals(0x80, byte(r.data, 1))
      assert.is_true(u16(r.data, 2) > 0)
      r = d:exec('12 01 83 00 ff 00', { len = 255 }); ok(r)
      assert.equals(0x03, byte(r.data, 5))   -- NAA designator first
      check(d:exec('12 01 b0 00 ff 00', { len = 255 }), 5, 0x24)
    end)

    it('is ready and reports its capacity in 2048-byte blocks', function()
      ok(d:exec(TUR))
      local r = d:exec('25 00 00 00 00 00 00 00 00 00', { len = 8 })
      ok(r)
      assert.equals(BLOCKS - 1, u32(r.data, 0))
      assert.equals(2048, u32(r.data, 4))
    end)

    it('reads sectors with READ(10) and READ(12)', function()
      local r = d:exec(T.read10(5, 3), { len = 3 * 2048 })
      ok(r)
      assert.equals(sector(5) .. sector(6) .. sector(7), r.data)
      r = d:exec(read12(BLOCKS - 2, 2), { len = 2 * 2048 })
      ok(r)
      assert.equals(sector(BLOCKS - 2) .. sector(BLOCKS - 1), r.data)
      ok(d:exec(T.read10(0, 0)))
    end)

    it('refuses reads past the end', function()
      check(d:exec(T.read10(BLOCKS - 1, 2), { len = 4096 }), 5, 0x21, 0)
      check(d:exec(read12(BLOCKS, 1), { len = 2048 }), 5, 0x21, 0)
    end)

    it('is write protected', function()
      check(d:exec(T.write10(0, 1), { data = ('\0'):rep(2048) }), 7, 0x27, 0)
      check(d:exec('aa 00 00 00 00 00 00 00 00 01 00 00', { data = ('\0'):rep(2048) }), 7, 0x27)
      check(d:exec(T.write16(0, 1), { data = ('\0'):rep(2048) }), 7, 0x27)
      -- the image is untouched
      assert.equals(sector(0), d:exec(T.read10(0, 1), { len = 2048 }).data)
    end)

    it('answers unknown opcodes with INVALID COMMAND OPERATION CODE', function()
      check(d:exec('2f 00 00 00 00 00 00 00 01 00'), 5, 0x20)   -- VERIFY(10)
      check(d:exec('35 00 00 00 00 00 00 00 00 00'), 5, 0x20)   -- SYNCHRONIZE CACHE
      check(d:exec(T.read16(0, 1), { len = 2048 }), 5, 0x20)
      check(d:exec('9e 10 00 00 00 00 00 00 00 00 00 00 00 20 00 00', { len = 32 }), 5, 0x20)
    end)

    it('leaves REPORT LUNS to the library', function()
      local r = d:exec('a0 00 00 00 00 00 00 00 01 00 00 00', { len = 256 })
      assert.is_truthy(r)
    end)

    it('reports the CD-ROM profile in GET CONFIGURATION', function()
      local r = d:exec(getconf(0, 0), { len = 1024 })
      ok(r)
      assert.equals(#r.data - 4, u32(r.data, 0))
      assert.equals(0x0008, u16(r.data, 6))
      local f = parse_features(r.data)
      local codes = {}
      for i, x in ipairs(f) do codes[i] = x.code end
      assert.same({ 0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x001E, 0x001F }, codes)
      -- Profile List: DVD-ROM (not current), CD-ROM (current)
      assert.equals('\0\16\0\0\0\8\1\0', f[1].body)
      assert.is_true(f[6].current)      -- CD Read
      assert.is_false(f[7].current)     -- DVD Read
      assert.equals(2048, u32(f[5].body, 0))
      assert.equals(1, u16(f[5].body, 4))   -- blocking: 1 on a CD
    end)

    it('honours RT and STARTING FEATURE NUMBER', function()
      -- RT 1: current features only, from 0x0003 on
      local f = parse_features(d:exec(getconf(1, 3), { len = 1024 }).data)
      local codes = {}
      for i, x in ipairs(f) do codes[i] = x.code end
      assert.same({ 0x0003, 0x0010, 0x001E }, codes)
      -- RT 2: just the one feature
      f = parse_features(d:exec(getconf(2, 0x0002), { len = 1024 }).data)
      assert.equals(1, #f)
      assert.equals(0x0002, f[1].code)
      assert.equals(1, f[1].ver)
      -- RT 2 for a feature we do not have: the header only
      local r = d:exec(getconf(2, 0x0020), { len = 1024 })
      ok(r); assert.equals(8, #r.data); assert.equals(4, u32(r.data, 0))
      -- RT 0 from 0x0011: CD Read and DVD Read
      f = parse_features(d:exec(getconf(0, 0x11), { len = 1024 }).data)
      assert.equals(2, #f)
      -- RT 3 is reserved
      check(d:exec(getconf(3, 0), { len = 1024 }), 5, 0x24)
    end)

    it('truncates GET CONFIGURATION to the allocation length', function()
      local r = d:exec(getconf(0, 0, 8), { len = 1024 })
      ok(r)
      assert.equals(8, #r.data)
      assert.is_true(u32(r.data, 0) > 4)     -- still the full length
    end)

    it('reads the TOC in LBA and MSF form', function()
      local r = d:exec(toc(false, 0, 0), { len = 100 })
      ok(r)
      assert.equals(18, u16(r.data, 0))
      assert.equals(1, byte(r.data, 2)); assert.equals(1, byte(r.data, 3))
      assert.equals(0x14, byte(r.data, 5)); assert.equals(1, byte(r.data, 6))
      assert.equals(0, u32(r.data, 8))
      assert.equals(0xAA, byte(r.data, 14))
      assert.equals(BLOCKS, u32(r.data, 16))
      r = d:exec(toc(true, 0, 1), { len = 100 })
      ok(r)
      assert.equals('\0\0\2\0', r.data:sub(9, 12))   -- 00:02:00
      local f = BLOCKS + 150
      assert.equals(string.char(0, math.floor(f / 4500), math.floor(f / 75) % 60, f % 75),
        r.data:sub(17, 20))
      -- the lead-out alone
      r = d:exec(toc(false, 0, 0xAA), { len = 100 })
      ok(r); assert.equals(10, u16(r.data, 0)); assert.equals(0xAA, byte(r.data, 6))
      check(d:exec(toc(false, 0, 2), { len = 100 }), 5, 0x24)
      -- truncated
      r = d:exec(toc(false, 0, 0, 4), { len = 100 })
      ok(r); assert.equals(4, #r.data)
    end)

    it('reads the session information (format 1, also from byte 9)', function()
      local r = d:exec(toc(false, 1, 0), { len = 100 })
      ok(r)
      assert.equals(10, u16(r.data, 0))
      assert.equals(1, byte(r.data, 6))
      assert.equals(0, u32(r.data, 8))
      -- the old format field (Linux sr_get_last_session)
      r = d:exec('43 00 00 00 00 00 00 00 0c 40', { len = 12 })
      ok(r)
      assert.equals(10, u16(r.data, 0))
      check(d:exec(toc(false, 2, 0), { len = 100 }), 5, 0x24)
      check(d:exec(toc(false, 5, 0), { len = 100 }), 5, 0x24)
    end)

    it('reads the disc and track information', function()
      local r = d:exec('51 00 00 00 00 00 00 00 22 00', { len = 34 })
      ok(r)
      assert.equals(32, u16(r.data, 0))
      assert.equals(0x0E, byte(r.data, 2))
      assert.equals(1, byte(r.data, 4))
      check(d:exec('51 01 00 00 00 00 00 00 22 00', { len = 34 }), 5, 0x24)
      r = d:exec('52 01 00 00 00 01 00 00 24 00', { len = 36 })
      ok(r)
      assert.equals(BLOCKS, u32(r.data, 24))
      check(d:exec('52 01 00 00 00 02 00 00 24 00', { len = 36 }), 5, 0x24)
    end)

    it('answers MECHANISM STATUS', function()
      local r = d:exec('bd 00 00 00 00 00 00 00 00 08 00 00', { len = 8 })
      ok(r)
      assert.equals(8, #r.data)
      assert.equals(0, byte(r.data, 1))
    end)

    it('has the capabilities page 0x2A in MODE SENSE(10)', function()
      local r = d:exec(mode_sense10(0, 0x2A), { len = 255 })
      ok(r)
      assert.equals(#r.data - 2, u16(r.data, 0))
      assert.equals(0, u16(r.data, 6))       -- no block descriptors
      assert.equals(0x2A, byte(r.data, 8))
      assert.equals(0x1C, byte(r.data, 9))
      assert.equals(0x08, bit.band(byte(r.data, 10), 0x08))   -- DVD-ROM read
      assert.equals(0, byte(r.data, 11))                      -- no writing
      assert.equals(0x08, bit.band(byte(r.data, 14), 0x08))   -- eject
      assert.equals(1, math.floor(byte(r.data, 14) / 32))     -- tray
      ok(d:exec(PREVENT))
      r = d:exec(mode_sense10(0, 0x2A), { len = 255 })
      assert.equals(0x02, bit.band(byte(r.data, 14), 0x02))   -- locked
      r = d:exec(mode_sense10(0, 0x3F), { len = 255 })
      ok(r)
      assert.equals(0x01, byte(r.data, 8)); assert.equals(0x2A, byte(r.data, 20))
      r = d:exec(mode_sense10(1, 0x2A), { len = 255 })
      ok(r); assert.equals(0, byte(r.data, 10))
      check(d:exec(mode_sense10(3, 0x2A), { len = 255 }), 5, 0x39)
      check(d:exec(mode_sense10(0, 0x08), { len = 255 }), 5, 0x24)
      r = d:exec(mode_sense10(0, 0x2A, 10), { len = 255 })
      ok(r); assert.equals(10, #r.data)
      ok(d:exec('55 10 00 00 00 00 00 00 00 00'))
      check(d:exec('55 10 00 00 00 00 00 00 14 00', { data = ('\0'):rep(20) }), 5, 0x26)
    end)

    it('answers MODE SENSE(6) too (Linux sr asks with it first)', function()
      local r = d:exec('1a 00 2a 00 80 00', { len = 128 })
      ok(r)
      assert.equals(#r.data - 1, byte(r.data, 0))
      assert.equals(0, byte(r.data, 3))        -- no block descriptors
      assert.equals(0x2A, byte(r.data, 4))
      assert.equals(0x08, bit.band(byte(r.data, 6), 0x08))   -- DVD-ROM read
      r = d:exec('1a 00 3f 00 ff 00', { len = 255 })
      ok(r); assert.equals(4 + 12 + 30, #r.data)
      check(d:exec('1a 00 c0 00 ff 00', { len = 255 }), 5, 0x39)
      check(d:exec('1a 00 1c 00 ff 00', { len = 255 }), 5, 0x24)
      ok(d:exec('15 10 00 00 00 00'))
    end)

    it('refuses READ DISC STRUCTURE on a CD', function()
      check(d:exec(rds(0), { len = 4096 }), 5, 0x30, 0x02)
      ok(d:exec(rds(0xFF), { len = 4096 }))
    end)

    it('reports no media event until something happens', function()
      local r = d:exec(gesn(0x10), { len = 8 })
      ok(r)
      assert.equals(6, u16(r.data, 0))
      assert.equals(0x04, byte(r.data, 2))
      assert.equals(0x10, byte(r.data, 3))
      assert.equals(0, byte(r.data, 4))        -- NoChg
      assert.equals(0x02, byte(r.data, 5))     -- media present, tray closed
      -- a class we do not have: NEA
      r = d:exec(gesn(0x40), { len = 8 })
      ok(r)
      assert.equals(4, #r.data)
      assert.equals(0x80, byte(r.data, 2))
      -- asynchronous notification is not supported
      check(d:exec('4a 00 00 00 10 00 00 00 08 00', { len = 8 }), 5, 0x24)
    end)

    it('ejects, then is NOT READY / MEDIUM NOT PRESENT', function()
      ok(d:exec(EJECT))
      local r = d:exec(gesn(0x10), { len = 8 })
      assert.equals(3, byte(r.data, 4))        -- MediaRemoval
      assert.equals(0x01, byte(r.data, 5))     -- no media, tray open
      assert.equals(0, d:exec(gesn(0x10), { len = 8 }).data:byte(5))
      check(d:exec(TUR), 2, 0x3A, 0)
      check(d:exec(T.read10(0, 1), { len = 2048 }), 2, 0x3A)
      check(d:exec(read12(0, 1), { len = 2048 }), 2, 0x3A)
      check(d:exec('25 00 00 00 00 00 00 00 00 00', { len = 8 }), 2, 0x3A)
      check(d:exec(toc(false, 0, 0), { len = 100 }), 2, 0x3A)
      check(d:exec('51 00 00 00 00 00 00 00 22 00', { len = 34 }), 2, 0x3A)
      check(d:exec(T.write10(0, 1), { data = ('\0'):rep(2048) }), 2, 0x3A)
      r = d:exec('bd 00 00 00 00 00 00 00 00 08 00 00', { len = 8 })
      assert.equals(0x10, byte(r.data, 1))     -- door open
      -- no current profile; Random Readable is not current
      r = d:exec(getconf(0, 0), { len = 1024 })
      ok(r)
      assert.equals(0, u16(r.data, 6))
      local f = parse_features(r.data)
      assert.is_false(f[5].current)
      -- REQUEST SENSE tells why
      r = d:exec('03 00 00 00 12 00', { len = 18 })
      ok(r)
      assert.equals(2, byte(r.data, 2)); assert.equals(0x3A, byte(r.data, 12))
      -- INQUIRY still works
      ok(d:exec('12 00 00 00 24 00', { len = 36 }))
    end)

    it('reloads: NOT READY TO READY CHANGE once, then ready', function()
      ok(d:exec(EJECT))
      ok(d:exec(LOAD))
      local r = d:exec(gesn(0x10), { len = 8 })   -- GESN does not take the UA
      ok(r)
      assert.equals(3, byte(r.data, 4))        -- MediaRemoval, queued first
      r = d:exec(gesn(0x10), { len = 8 })
      assert.equals(2, byte(r.data, 4))        -- then NewMedia
      assert.equals(0x02, byte(r.data, 5))
      check(d:exec(TUR), 6, 0x28, 0)
      ok(d:exec(TUR))
      assert.equals(sector(9), d:exec(T.read10(9, 1), { len = 2048 }).data)
    end)

    it('reports the unit attention through REQUEST SENSE too', function()
      ok(d:exec(EJECT)); ok(d:exec(LOAD))
      local r = d:exec('03 00 00 00 12 00', { len = 18 })
      ok(r)
      assert.equals(6, byte(r.data, 2)); assert.equals(0x28, byte(r.data, 12))
      ok(d:exec(TUR))
      r = d:exec('03 00 00 00 12 00', { len = 18 })
      assert.equals(0, byte(r.data, 2))
    end)

    it('picks up a replaced image on load', function()
      ok(d:exec(EJECT))
      local f = assert(io.open(path, 'wb'))
      f:write(sector(42):rep(10))
      f:close()
      ok(d:exec(LOAD))
      check(d:exec(TUR), 6, 0x28)
      local r = d:exec('25 00 00 00 00 00 00 00 00 00', { len = 8 })
      assert.equals(9, u32(r.data, 0))
      assert.equals(sector(42), d:exec(T.read10(3, 1), { len = 2048 }).data)
    end)

    it('refuses to eject while removal is prevented', function()
      ok(d:exec(PREVENT))
      check(d:exec(EJECT), 5, 0x53, 0x02)
      local r = d:exec(gesn(0x10), { len = 8 })
      assert.equals(1, byte(r.data, 4))        -- EjectRequest
      ok(d:exec(TUR))                          -- still loaded
      ok(d:exec('1e 00 00 00 02 00'))          -- persistent prevent: no lock
      check(d:exec(EJECT), 5, 0x53, 0x02)
      ok(d:exec(ALLOW))
      ok(d:exec(EJECT))
      check(d:exec(TUR), 2, 0x3A)
    end)

    it('keeps the tray state across a hot reload', function()
      ok(d:exec(PREVENT))
      assert(d:reload())
      check(d:exec(EJECT), 5, 0x53, 0x02)
      ok(d:exec(ALLOW))
      ok(d:exec(EJECT))
      assert(d:reload())
      check(d:exec(TUR), 2, 0x3A)
    end)

    it('gives descriptor-format sense from REQUEST SENSE when asked', function()
      ok(d:exec(EJECT))
      local r = d:exec('03 01 00 00 20 00', { len = 32 })
      ok(r)
      assert.equals(0x72, byte(r.data, 0))
      assert.equals(2, byte(r.data, 1)); assert.equals(0x3A, byte(r.data, 2))
    end)

    it('accepts START STOP UNIT without LoEj and power conditions', function()
      ok(d:exec('1b 00 00 00 01 00'))
      ok(d:exec('1b 00 00 00 00 00'))
      ok(d:exec('1b 00 00 00 30 00'))
      ok(d:exec(TUR))
    end)
  end)

  describe('with a DVD', function()
    before_each(function() open { media = 'dvd' } end)

    it('reports the DVD-ROM profile', function()
      local r = d:exec(getconf(0, 0), { len = 1024 })
      ok(r)
      assert.equals(0x0010, u16(r.data, 6))
      local f = parse_features(r.data)
      assert.equals('\0\16\1\0\0\8\0\0', f[1].body)
      assert.is_false(f[6].current)
      assert.is_true(f[7].current)
      assert.equals(16, u16(f[5].body, 4))
    end)

    it('answers READ DISC STRUCTURE', function()
      local r = d:exec(rds(0), { len = 4096 })
      ok(r)
      assert.equals(2050, u16(r.data, 0))
      assert.equals(2052, #r.data)
      assert.equals(0x01, byte(r.data, 4))
      assert.equals(0x030000, u32(r.data, 8))
      assert.equals(0x030000 + BLOCKS - 1, u32(r.data, 12))
      r = d:exec(rds(1), { len = 4096 }); ok(r); assert.equals(8, #r.data)
      r = d:exec(rds(0xFF), { len = 4096 }); ok(r); assert.equals(16, #r.data)
      check(d:exec(rds(0, 1), { len = 4096 }), 5, 0x24)
      check(d:exec(rds(0x30), { len = 4096 }), 5, 0x24)
      check(d:exec(rds(0, 0, 4096, 1), { len = 4096 }), 5, 0x24)
      r = d:exec(rds(0, 0, 20), { len = 4096 }); ok(r); assert.equals(20, #r.data)
      ok(d:exec(EJECT))
      check(d:exec(rds(0), { len = 4096 }), 2, 0x3A)
    end)
  end)

  describe('with an empty tray', function()
    before_each(function() open { loaded = false } end)

    it('is NOT READY until loaded, then reports the change once', function()
      check(d:exec(TUR), 2, 0x3A, 0)
      local r = d:exec(gesn(0x10), { len = 8 })
      assert.equals(0, byte(r.data, 4)); assert.equals(0, byte(r.data, 5))
      ok(d:exec(LOAD))
      check(d:exec(TUR), 6, 0x28, 0)
      ok(d:exec(TUR))
      assert.equals(sector(1), d:exec(T.read10(1, 1), { len = 2048 }).data)
    end)

    it('chooses the profile by size when media is auto', function()
      ok(d:exec(LOAD))
      local r = d:exec(getconf(0, 0), { len = 1024 })
      assert.equals(0x0008, u16(r.data, 6))
    end)
  end)

  it('refuses a missing image', function()
    local dev, err = T.device { handler = 'optical', size = 2048 * 16, block_size = 2048,
      config = { path = '/nonexistent/disc.iso' } }
    assert.is_nil(dev)
    assert.matches('cannot open', err)
  end)

  it('loads nothing when the image vanished', function()
    open { loaded = false, path = '/nonexistent/disc.iso' }
    check(d:exec(LOAD), 2, 0x3A)
    check(d:exec(TUR), 2, 0x3A)
  end)
end)
