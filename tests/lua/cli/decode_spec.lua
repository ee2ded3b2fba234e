-- tcmu-lua decode, as a user runs it, and the hex helpers under it.
local S = require 'cli.support'
local hexdump = require 'tl.cli.hexdump'

local function lines_of(s)
  local t = {}
  for l in s:gmatch('([^\n]*)\n') do t[#t + 1] = l end
  return t
end

describe('tcmu-lua decode', function()
  it('explains a CDB one aligned field a line', function()
    local out, err, rc = S.run { 'decode', '28', '00', '00', '00', '10', '00', '00', '00', '08', '00' }
    assert.equals(0, rc, err)
    local l = lines_of(out)
    assert.equals('READ(10)  (SBC-3 5.8)', l[1])
    assert.equals('  bytes                  28 00 00 00 10 00 00 00 08 00', l[2])
    assert.truthy(out:find('\n  LOGICAL BLOCK ADDRESS  4096 (0x1000)\n', 1, true), out)
    assert.truthy(out:find('\n  TRANSFER LENGTH        8\n', 1, true), out)
    assert.truthy(out:find('\n  FUA                    0  cache allowed\n', 1, true), out)
    assert.truthy(out:find('\n  CONTROL                0\n', 1, true), out)
  end)

  it('explains fixed-format sense data', function()
    local out, err, rc = S.run { 'decode', '--sense',
      '70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 00 00 00' }
    assert.equals(0, rc, err)
    local l = lines_of(out)
    assert.equals('ILLEGAL REQUEST: INVALID FIELD IN CDB', l[1])
    assert.truthy(out:find('  sense key      0x5        ILLEGAL REQUEST\n', 1, true), out)
    assert.truthy(out:find('  asc/ascq       0x24/0x00  INVALID FIELD IN CDB\n', 1, true), out)
    assert.truthy(out:find('  information    not valid  VALID bit clear\n', 1, true), out)
    assert.truthy(out:find('  field pointer  not given  SKSV bit clear\n', 1, true), out)
    assert.truthy(out:find('meaning: the command or its parameters are wrong', 1, true), out)
  end)

  it('shows the information field and the field pointer when valid', function()
    local out, _, rc = S.run { 'decode', '--sense',
      'f0000500001000', '0a00000000210000cf0002' }
    assert.equals(0, rc)
    assert.truthy(out:find('information    4096 (0x1000)', 1, true), out)
    assert.truthy(out:find('field pointer  CDB byte 2, bit 7', 1, true), out)
  end)

  it('reads descriptor-format sense', function()
    local out, _, rc = S.run { 'decode', '--sense',
      '72 05 24 00 00 00 00 14 00 0a 80 00 00 00 00 00 00 00 10 00 02 06 00 00 c1 00 02 00' }
    assert.equals(0, rc)
    assert.truthy(out:find('descriptor format, current error', 1, true), out)
    assert.truthy(out:find('information    4096 (0x1000)', 1, true), out)
    assert.truthy(out:find('field pointer  CDB byte 2 ', 1, true), out)
  end)

  it('takes hex without spaces and with 0x prefixes', function()
    local a = S.run { 'decode', '12018300ff00' }
    local b = S.run { 'decode', '0x12', '0x01', '0x83', '0x00', '0xff', '0x00' }
    assert.equals(a, b)
    assert.truthy(a:find('PAGE CODE          131 (0x83)  Device Identification', 1, true), a)
  end)

  it('reads one CDB a line from stdin when given no bytes', function()
    local out, err, rc = S.run({ 'decode' }, '00 00 00 00 00 00\n# a comment\n\n25 00 00 00 00 00 00 00 00 00\n')
    assert.equals(0, rc, err)
    assert.truthy(out:find('^TEST UNIT READY'), out)
    assert.truthy(out:find('\n\nREAD CAPACITY%(10%)'), out)
  end)

  it('fails with a clear message on bad hex', function()
    local out, err, rc = S.run { 'decode', '28', 'zz' }
    assert.equals(1, rc)
    assert.equals('', out)
    assert.equals('tcmu-lua decode: arguments: bad hex: "zz" is not hex\n', err)
    out, err, rc = S.run({ 'decode' }, '28 00\n2800x\n')
    assert.equals(1, rc)
    assert.truthy(err:find('stdin line 2: bad hex', 1, true), err)
    _, err, rc = S.run { 'decode', '280' }
    assert.equals(1, rc)
    assert.truthy(err:find('odd number of hex digits', 1, true), err)
  end)

  it('fails when there is nothing to decode or it is not sense data', function()
    local _, err, rc = S.run({ 'decode' }, '')
    assert.equals(1, rc)
    assert.truthy(err:find('nothing to decode', 1, true), err)
    local out
    out, _, rc = S.run { 'decode', '--sense', '12 00 00' }
    assert.equals(1, rc)
    assert.truthy(out:find('not sense data', 1, true), out)
  end)

  it('names unknown opcodes and hints at sense data', function()
    local out, _, rc = S.run { 'decode', '70 00 05 00 00 00 00 0a 00' }
    assert.equals(0, rc)
    assert.truthy(out:find('UNKNOWN OPERATION CODE 0x70', 1, true), out)
    assert.truthy(out:find('try decode --sense', 1, true), out)
  end)

  it('notes a CDB of the wrong length', function()
    local out = S.run { 'decode', '28 00 00 00 10 00' }
    assert.truthy(out:find('READ(10) CDBs are 10 bytes long, this one has 6', 1, true), out)
  end)
end)

describe('tl.cli.hexdump', function()
  it('parses the ways people write hex', function()
    assert.equals('\40\0\16', hexdump.parse('28 00 10'))
    assert.equals('\40\0\16', hexdump.parse('280010'))
    assert.equals('\40\0\16', hexdump.parse('0x28,0x00,0x10'))
    assert.equals('\40\0\16', hexdump.parse('0x2800 10'))
    assert.equals('\40\0\0', hexdump.parse('28 0 0'))
    assert.equals('', hexdump.parse('  '))
    assert.is_nil(hexdump.parse('0x'))
    assert.is_nil(hexdump.parse('g0'))
  end)

  it('dumps offset, hex and ASCII, folding repeats and truncating', function()
    local data = 'hello' .. ('\0'):rep(507)
    local l = hexdump.dump(data)
    assert.same({
      '0000  68 65 6c 6c 6f 00 00 00  00 00 00 00 00 00 00 00  |hello...........|',
      '0010  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|',
      '*',
      '01f0  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|',
    }, l)
    -- max counts the bytes of printed lines: folded ones are free.
    assert.equals(4, #hexdump.dump(data, { max = 32 }))
    l = hexdump.dump(('A'):rep(40), { max = 20, collapse = false, indent = '  ' })
    assert.same({
      '  0000  41 41 41 41 41 41 41 41  41 41 41 41 41 41 41 41  |AAAAAAAAAAAAAAAA|',
      '  0010  41 41 41 41 41 41 41 41  41 41 41 41 41 41 41 41  |AAAAAAAAAAAAAAAA|',
      '  ... 8 more bytes not shown',
    }, l)
    l = hexdump.dump(('A'):rep(20))
    assert.equals('0010  41 41 41 41                                       |AAAA|', l[2])
  end)
end)
