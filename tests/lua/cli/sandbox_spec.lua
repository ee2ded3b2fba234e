-- tcmu-lua sandbox in script mode: the lessons (which are tests), the
-- expectations, piped commands, reload, and the YAML config reader.
local S = require 'cli.support'
local config = require 'tl.cli.config'

local LESSONS = S.source_dir .. '/tests/lessons'
local HERE = S.source_dir .. '/tests/lua/cli'

local function tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, 'w'))
  f:write(text)
  f:close()
  return path
end

-- The first line where two texts differ, for a readable failure.
local function first_difference(want, got)
  local wl, gl = {}, {}
  for l in (want .. '\n'):gmatch('(.-)\n') do wl[#wl + 1] = l end
  for l in (got .. '\n'):gmatch('(.-)\n') do gl[#gl + 1] = l end
  for i = 1, math.max(#wl, #gl) do
    if wl[i] ~= gl[i] then
      return ('line %d:\n  expected: %s\n  got:      %s'):format(i, tostring(wl[i]), tostring(gl[i]))
    end
  end
end

describe('sandbox lessons', function()
  for _, name in ipairs { '01-first-disk', '02-unit-attention' } do
    it(name .. ' meets its expectations and prints its transcript', function()
      local out, err, rc = S.run { 'sandbox', '--no-history', '--script', LESSONS .. '/' .. name .. '.txt' }
      assert.equals(0, rc, err .. out)
      assert.truthy(out:find('\nok: %d+ commands, %d+ expectations met\n$'), out)
      local want = S.slurp(LESSONS .. '/' .. name .. '.out')
      if want ~= out then
        error(('transcript differs from tests/lessons/%s.out, %s\n' ..
          'If the change is intended: build/tcmu-lua sandbox --script tests/lessons/%s.txt ' ..
          '> tests/lessons/%s.out'):format(name, first_difference(want, out), name, name))
      end
    end)
  end
end)

describe('sandbox expectations', function()
  local function script(text, env)
    local path = tmpfile(text)
    local out, err, rc = S.run({ 'sandbox', 'ram', '1M', '--script', path }, nil, env)
    os.remove(path)
    return out, err, rc, path
  end

  it('stop the script with a message naming file:line', function()
    local out, err, rc, path = script('tur\n# expect: status GOOD\ntur\n# expect: status BUSY\ntur\n')
    assert.equals(1, rc)
    assert.truthy(err:find(path .. ':4: expected status BUSY, got GOOD', 1, true), err)
    assert.truthy(out:find('FAILED ' .. path .. ':4:', 1, true), out)
    -- Nothing after the failure runs.
    local _, n = out:gsub('> tur', '')
    assert.equals(2, n)
  end)

  it('check sense, asc, data, length, residual and output', function()
    local out, err, rc = script(table.concat({
      'read 2048 1',
      '# expect: status CHECK CONDITION',
      '# expect: sense ILLEGAL REQUEST',
      '# expect: sense illegal request / logical block address out of range',
      '# expect: asc 0x21',
      '# expect: asc 0x21 0',
      'write 3 1 de ad be ef',
      '# expect: sense none',
      'read 3 1',
      '# expect: data starts de ad be ef',
      '# expect: data at 2 be ef 00',
      '# expect: data contains adbe',
      '# expect: len 512',
      '# expect: residual 0',
      'inquiry',
      '# expect: residual 181',
      '# expect: output contains "LIO-ORG"',
    }, '\n'))
    assert.equals(0, rc, err .. out)
    assert.truthy(out:find('ok: 4 commands, 13 expectations met', 1, true), out)
  end)

  it('report what was found when data does not match', function()
    local _, err, rc = script('read 0 1\n# expect: data starts text:hi\n')
    assert.equals(1, rc)
    assert.truthy(err:find('expected 68 69 at offset 0, found 00 00', 1, true), err)
  end)

  it('fail a script whose command fails unless an error is expected', function()
    local out, err, rc = script('read 0\ntur\n')
    assert.equals(1, rc)
    assert.truthy(err:find(':1: command failed: usage: read LBA N', 1, true), err)
    assert.truthy(out:find('  error: usage: read LBA N', 1, true), out)
    out, err, rc = script('read 0\n# expect: error usage\nfrobnicate\n# expect: error unknown command "frobnicate"\n')
    assert.equals(0, rc, err .. out)
    _, err, rc = script('tur\n# expect: error\n')
    assert.equals(1, rc)
    assert.truthy(err:find('expected the command to fail, but it ran', 1, true), err)
  end)

  it('name an unknown expectation', function()
    local _, err, rc = script('tur\n# expect: colour blue\n')
    assert.equals(1, rc)
    assert.truthy(err:find('unknown expectation "colour"', 1, true), err)
  end)
end)

describe('sandbox commands', function()
  local function piped(text, args)
    return S.run(args or { 'sandbox', 'ram', '1M' }, text)
  end

  it('read piped commands when stdin is not a terminal', function()
    local out, err, rc = piped('tur\n# expect: status GOOD\nquit\ntur\n')
    assert.equals(0, rc, err)
    assert.truthy(out:find('ram0> tur\n  cdb     00 00 00 00 00 00   TEST UNIT READY\n', 1, true), out)
    local _, n = out:gsub('> tur', '')
    assert.equals(1, n)	-- quit stops
  end)

  it('write patterns and hex, and refuse data that does not fit', function()
    local out, err, rc = piped(table.concat({
      'write 0 2 pattern:a5',
      'read 1 1',
      '# expect: data starts a5 a5',
      '# expect: output contains 01f0  a5 a5',
      'write 0 1 0x01 0x02 0x03',
      'read 0 1',
      '# expect: data starts 01 02 03 00',
      'write 0 1 text:' .. ('x'):rep(513),
      '# expect: error 513 bytes of data do not fit in 1 block',
      'write 0 1 pattern:123',
      '# expect: error pattern: takes one byte',
    }, '\n'))
    assert.equals(0, rc, err .. out)
  end)

  it('send raw CDBs with data-in and data-out', function()
    local out, err, rc = piped(table.concat({
      'raw 2a 00 00 00 00 05 00 00 01 00 --out pattern:42',
      '# expect: status GOOD',
      'raw 28 00 00 00 00 05 00 00 01 00',
      '# expect: len 512',
      '# expect: data starts 42 42',
      'raw 12 00 00 00 24 00 --in 8',
      '# expect: len 8',
      'raw 0x12,0x00,0x00,0x00,0x24,0x00',
      '# expect: len 36',
      '# expect: output contains INQUIRY',
      'raw 28 00 --in 1 --out 00',
      '# expect: error --in and --out',
    }, '\n'))
    assert.equals(0, rc, err .. out)
  end)

  it('show the sense of a wrong field with its field pointer', function()
    local out, err, rc = piped('raw 12 00 01 00 24 00\n# expect: sense ILLEGAL REQUEST / INVALID FIELD IN CDB\n')
    assert.equals(0, rc, err .. out)
    assert.truthy(out:find('field pointer: CDB byte 2', 1, true), out)
  end)

  it('decode replies: capacity, VPD pages, mode pages', function()
    local out, err, rc = piped(table.concat({
      'readcap16', '# expect: output contains 2048 blocks  1 MiB',
      'inquiry vpd 0x80', '# expect: output contains serial number',
      'inquiry vpd 0xb2', '# expect: output contains provisioning',
      'mode-sense', '# expect: output contains page 0x0A',
      'request-sense', '# expect: output contains NO ADDITIONAL SENSE INFORMATION',
      'set dump 16', 'inquiry vpd 0x83', '# expect: output contains ... 52 more bytes not shown',
      'read 0 2', '# expect: output contains 03f0  00 00',
    }, '\n'))
    assert.equals(0, rc, err .. out)
  end)

  it('explain themselves', function()
    local out, _, rc = piped('help\nhelp write\n')
    assert.equals(0, rc)
    assert.truthy(out:find('write LBA N [hex...|pattern:BYTE|text:...]', 1, true), out)
    assert.truthy(out:find('padded', 1, true), out)
  end)

  it('reload the handler file, and keep the old one when the new one is broken', function()
    local counter = os.tmpname()
    local args = { 'sandbox', '--no-history', HERE .. '/handlers/reloadme.lua', '1M' }
    local out, err, rc = S.run(args, table.concat({
      'read 0 1', '# expect: data starts text:load 1',
      'reload', '# expect: output contains reloaded handler reloadme',
      'read 0 1', '# expect: data starts text:load 2',
    }, '\n'), { TL_RELOAD_COUNTER = counter })
    assert.equals(0, rc, err .. out)
    os.remove(counter)
    out, err, rc = S.run(args, table.concat({
      'reload', '# expect: error broken on purpose at load 2',
      'read 0 1', '# expect: data starts text:load 1',
    }, '\n'), { TL_RELOAD_COUNTER = counter, TL_RELOAD_BREAK = '1' })
    assert.equals(0, rc, err .. out)
    assert.truthy(out:find('reloadme.lua:%d+: broken on purpose'), out)
    os.remove(counter)
  end)

  it('refuse bad arguments with a usage message', function()
    local _, err, rc = S.run { 'sandbox' }
    assert.equals(2, rc)
    assert.truthy(err:find('give a config file or a handler name', 1, true), err)
    _, err, rc = S.run { 'sandbox', 'ram', 'big' }
    assert.equals(1, rc)
    assert.truthy(err:find('"big" is not a size', 1, true), err)
    _, err, rc = S.run { 'sandbox', 'nosuchhandler', '1M' }
    assert.equals(1, rc)
    assert.truthy(err:find('no handler "nosuchhandler"', 1, true), err)
    _, err, rc = S.run { 'sandbox', '--frob' }
    assert.equals(2, rc)
    assert.truthy(err:find('unknown option --frob', 1, true), err)
  end)
end)

describe('the sandbox config reader', function()
  local test = it

  test('reads the shipped examples as the daemon does', function()
    local cfg = assert(config.load(S.source_dir .. '/config.yaml.example'))
    assert.equals(2, #cfg.devices)
    assert.same({ '/etc/tcmu-lua/handlers' }, cfg.handler_dirs)
    local d = cfg.devices[2]
    assert.equals('img0', d.name)
    assert.equals('file', d.handler)
    assert.equals(10 * 2 ^ 30, d.size)
    assert.equals('/var/lib/tcmu-lua/img0.img', d.options.path)
    assert.equals(true, d.options.create)
  end)

  test('names file:line:column and the key, like the daemon', function()
    local name = S.source_dir .. '/tests/data/config/bad-size.yaml'
    local cfg, err = config.load(name)
    assert.is_nil(cfg)
    assert.equals(name .. ':12:11: devices[1].size: expected a size like 64M', err)
    cfg, err = config.parse('devices:\n  - name: a\n    handler: ram\n    size: 1M\n    colour: red\n', 'x.yaml')
    assert.is_nil(cfg)
    assert.truthy(err:find("^x.yaml:5:5: devices%[0%]: unknown key 'colour'"), err)
    cfg, err = config.parse('devices: [\n', 'x.yaml')
    assert.is_nil(cfg)
    assert.truthy(err:find('^x.yaml:2:1: YAML syntax error'), err)
    _, err = config.parse('devices:\n  - {name: a, handler: ram, size: 1000}\n', 'x.yaml')
    assert.truthy(err:find('1000 is not a multiple of the block size 512', 1, true), err)
  end)

  test('reads booleans and numbers the YAML 1.2 way', function()
    local cfg = assert(config.parse(table.concat({
      'devices:',
      '  - name: a',
      '    handler: ram',
      '    size: 1M',
      '    options: {n: 12, h: 0x10, f: 1.5, yes_is_text: yes, t: true, s: "12", nothing: ~}',
    }, '\n'), 'x.yaml'))
    assert.same({ n = 12, h = 16, f = 1.5, yes_is_text = 'yes', t = true, s = '12' },
      cfg.devices[1].options)
  end)

  it('parses sizes with binary units', function()
    assert.equals(64 * 2 ^ 20, config.parse_size('64M'))
    assert.equals(2 ^ 30, config.parse_size('1GiB'))
    assert.equals(2 ^ 30, config.parse_size('1GB'))
    assert.equals(4096, config.parse_size('4096'))
    assert.is_nil(config.parse_size('64Mb'))
    assert.is_nil(config.parse_size('1.5G'))
  end)

  test('read_only devices refuse writes', function()
    local path = tmpfile('devices:\n  - name: ro\n    handler: ram\n    size: 1M\n    read_only: true\n')
    local out, err, rc = S.run({ 'sandbox', path },
      'write 0 1\n# expect: sense DATA PROTECT / WRITE PROTECTED\nread 0 1\n# expect: status GOOD\n')
    os.remove(path)
    assert.equals(0, rc, err .. out)
  end)

  test('a config that names a missing handler fails at its line', function()
    local path = tmpfile('devices:\n  - name: x\n    handler: nope\n    size: 1M\n')
    local _, err, rc = S.run { 'sandbox', path }
    os.remove(path)
    assert.equals(1, rc)
    assert.truthy(err:find(path .. ':2: device x (handler nope): no handler "nope"', 1, true), err)
  end)
end)
