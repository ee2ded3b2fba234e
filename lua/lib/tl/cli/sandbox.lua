-- tcmu-lua sandbox: a SCSI playground on the built-in kernel simulator.
--
-- The configured handlers run exactly as in the daemon (their own worker
-- and lua_State, the real ring code); this module plays the initiator.
-- Each command shows its CDB decoded, the status, the sense data explained
-- and the data as a hex dump.  Commands come from a terminal (line editing
-- and history), from a file (--script) or from a pipe; in a script a line
-- "# expect: status GOOD" checks the command before it, so lessons are
-- tests too.
local T = require 'tl.testing'
local hexdump = require 'tl.cli.hexdump'
local show = require 'tl.cli.show'
local reply = require 'tl.cli.reply'
local config = require 'tl.cli.config'
local lineedit = require 'tl.cli.lineedit'
local decode = require 'scsi.decode'
local bit = require 'bit'

local fmt = string.format
local M = {}

M.USAGE = [[
usage: tcmu-lua sandbox [OPTIONS] CONFIG.yaml
       tcmu-lua sandbox [OPTIONS] HANDLER [SIZE]
       tcmu-lua sandbox [OPTIONS] --script LESSON.txt

Runs handlers on the built-in kernel simulator (no kernel, no root) and
lets you send them SCSI commands.  HANDLER is a handler name (ram, null,
file...) or a path to your own handler file (./mydisk.lua); SIZE is like
64M (default 64M).  Type 'help' at the prompt for the commands.

options:
  --script FILE       run the commands in FILE and exit (non-zero when a
                      "# expect:" line fails); "-" reads stdin
  --handler-dir DIR   look for handlers in DIR first (repeatable)
  --block-size N      logical block size for HANDLER (default 512)
  --option KEY=VALUE  an option for HANDLER's open() (repeatable)
  --dump N            show at most N bytes of data (default 256; 0: all)
  --no-history        do not read or write ~/.tcmu-lua_history
]]

local MAX_XFER = 8 * 1024 * 1024	-- bytes per command: the simulator's default limit
local DEFAULT_SIZE = 64 * 1024 * 1024

------------------------------------------------------------------------
-- Small parsers.

-- 123, 0x7b; nil when not a non-negative whole number.
local function number(s)
  if not s then return nil end
  if s:match('^0[xX]%x+$') then return tonumber(s:sub(3), 16) end
  if s:match('^%d+$') then return tonumber(s) end
  return nil
end
M.number = number

-- "text:hi\n", "pattern:a5", or hex -> {bytes = ...} or {fill = byte}.
local function data_spec(s)
  s = s:gsub('^%s+', '')
  local text = s:match('^text:(.*)$')
  if text then
    local bad
    text = text:gsub('\\(x?)(%x?%x?)', function(x, h)
      if x == 'x' then
        if #h ~= 2 then bad = true; return '' end
        return string.char(tonumber(h, 16))
      end
      return '\\' .. h
    end):gsub('\\([nt\\])', { n = '\n', t = '\t', ['\\'] = '\\' })
    if bad then return nil, 'text: \\x needs two hex digits' end
    return { bytes = text }
  end
  local p = s:match('^pattern:(%S+)%s*$')
  if p then
    local byte = hexdump.parse(p)
    if not byte or #byte ~= 1 then return nil, 'pattern: takes one byte in hex, e.g. pattern:a5' end
    return { fill = byte }
  end
  local bytes, err = hexdump.parse(s)
  if not bytes then return nil, err .. ' (data is hex, text:... or pattern:BYTE)' end
  return { bytes = bytes }
end
M.data_spec = data_spec

-- Words of a line with where each starts, so a command can take "the
-- rest of the line" verbatim (text:with spaces).
local function words(line)
  local t = {}
  for start, w in line:gmatch('()(%S+)') do t[#t + 1] = { w = w, at = start } end
  return t
end

------------------------------------------------------------------------
-- CDB builders.

local be = T.be

local function rw_cdb(write, lba, n)
  if lba < 2 ^ 32 and n < 2 ^ 16 then
    return (write and T.write10 or T.read10)(lba, n)
  end
  return (write and T.write16 or T.read16)(lba, n)
end

------------------------------------------------------------------------
-- The session.

local Session = {}
Session.__index = Session

function Session:print(s)
  s = s or ''
  self.captured[#self.captured + 1] = s
  io.stdout:write(s, '\n')
end

function Session:lines(lines, indent)
  for _, l in ipairs(lines) do self:print((indent or '') .. l) end
end

-- A labelled block: "  label   first line", then the rest indented.
local LABEL = '  %-7s '
local CONT = (' '):rep(10)
function Session:block(label, first, rest)
  self:print(fmt(LABEL, label) .. first)
  for _, l in ipairs(rest or {}) do self:print(CONT .. l) end
end

function Session:dev()
  return self.devices[self.current]
end

-- Show the CDB: its bytes and name, then the fields.
function Session:show_cdb(cdb)
  local name, rows, _, zeros = show.cdb_rows(cdb, { brief = self.settings.fields == 'brief' })
  local lines = show.columns(rows)
  if #zeros > 0 then lines[#lines + 1] = 'zero: ' .. table.concat(zeros, ', ') end
  self:block('cdb', hexdump.spaced(cdb) .. '   ' .. name, lines)
end

function Session:dump(data)
  local max = self.settings.dump
  for _, l in ipairs(hexdump.dump(data, { max = max, indent = '    ' })) do self:print(l) end
end

function Session:show_sense(sense)
  local summary, r = show.sense_summary(sense)
  if not summary then
    self:block('sense', 'none (the status carries no sense data)')
    return
  end
  local n = show.sense_length(sense)
  local detail = {}
  detail[#detail + 1] = 'information: ' .. (r.info and show.value_text(r.info) or 'not valid')
  if r.sks and r.sks.field then
    detail[#detail] = detail[#detail] .. fmt('; field pointer: %s byte %d%s',
      r.sks.cd and 'CDB' or 'parameter list', r.sks.field,
      r.sks.bpv and fmt(', bit %d', r.sks.bit) or '')
  end
  local rest = { hexdump.spaced(sense:sub(1, n)), detail[1] }
  if show.KEY_HINT[r.key] then rest[#rest + 1] = show.KEY_HINT[r.key] end
  self:block('sense', summary, rest)
end

-- Send a CDB and show everything about it.  opts: data (data-out bytes)
-- or len (data-in bytes).  Returns the result table.
function Session:send(cdb, opts)
  opts = opts or {}
  local d = self:dev()
  self:show_cdb(cdb)
  if opts.data then
    self:block('out', fmt('%d bytes%s', #opts.data, opts.note or ''))
    self:dump(opts.data)
  end
  local r, err = d.dev:exec(cdb, opts.data and { data = opts.data } or { len = opts.len or 0 })
  if not r then error('the simulator did not run the command: ' .. tostring(err), 0) end
  r.cdb = cdb
  self:block('status', show.status_name(r.status))
  if r.status == 0x02 then self:show_sense(r.sense) end
  local data = r.data or ''
  if (opts.len or 0) > 0 then
    local what = fmt('%d bytes in', #data)
    if r.read_len_valid and r.residual > 0 then
      what = what .. fmt(' (asked for %d: residual %d)', opts.len, r.residual)
    end
    local rows = r.status == 0 and reply.rows(cdb, data)
    if rows and #rows > 0 then
      local lines = show.columns(rows)
      self:block('reply', table.remove(lines, 1), lines)
    end
    if r.status == 0 or #data > 0 then self:block('data', what) end
    if #data > 0 then self:dump(data) end
  end
  return r
end

------------------------------------------------------------------------
-- Commands.  Each is {usage, help, run = function(S, args, line)}; args
-- are the words after the command name, line the whole line.

local commands, order = {}, {}
local function command(name, usage, help, run, aliases)
  local c = { name = name, usage = usage, help = help, run = run }
  commands[name] = c
  order[#order + 1] = name
  for _, a in ipairs(aliases or {}) do commands[a] = c end
end

local function need(v, what)
  if v == nil then error(what, 0) end
  return v
end

local function lba_n(S, args, name)
  local lba = need(number(args[1] and args[1].w), fmt('usage: %s LBA N  (numbers, decimal or 0x hex)', name))
  local n = need(number(args[2] and args[2].w), fmt('usage: %s LBA N  (numbers, decimal or 0x hex)', name))
  return lba, n
end

command('inquiry', 'inquiry [vpd [PAGE]]',
  'INQUIRY: who the device is.  With vpd, a Vital Product Data page\n' ..
  '(0x00 lists them; 0x80 serial, 0x83 identifiers, 0xb0 limits, 0xb2 thin provisioning).',
  function(S, args)
    if args[1] then
      if args[1].w ~= 'vpd' then error('usage: inquiry [vpd [PAGE]]', 0) end
      local page = args[2] and need(number(args[2].w), 'PAGE is a number, e.g. 0x83') or 0
      if page > 255 then error('PAGE is one byte', 0) end
      return S:send('\18\1' .. string.char(page) .. '\4\0\0', { len = 1024 })
    end
    return S:send('\18\0\0\0\255\0', { len = 255 })
  end)

command('readcap', 'readcap', 'READ CAPACITY(10): the last LBA and the block size.',
  function(S)
    return S:send('\37' .. ('\0'):rep(9), { len = 8 })
  end)

command('readcap16', 'readcap16',
  'READ CAPACITY(16): also for disks over 2 TiB, with thin provisioning bits.',
  function(S)
    return S:send('\158\16' .. ('\0'):rep(8) .. be(32, 4) .. '\0\0', { len = 32 })
  end)

command('tur', 'tur', 'TEST UNIT READY: is the unit ready?  Also reports unit attentions.',
  function(S)
    return S:send(('\0'):rep(6))
  end)

command('read', 'read LBA N', 'READ(10) (READ(16) when LBA or N are large): N blocks from LBA.',
  function(S, args)
    local lba, n = lba_n(S, args, 'read')
    local len = n * S:dev().block_size
    if len > MAX_XFER then error(fmt('at most %d bytes per command in the sandbox', MAX_XFER), 0) end
    return S:send(rw_cdb(false, lba, n), { len = len })
  end)

command('write', 'write LBA N [hex...|pattern:BYTE|text:...]',
  'WRITE(10) (WRITE(16) when large): N blocks at LBA.  The data is hex bytes,\n' ..
  'pattern:a5 (every byte a5) or text:hello (\\n \\t \\xHH escapes); it is padded\n' ..
  'with zeros to N blocks.  No data: zeros.',
  function(S, args, line)
    local lba, n = lba_n(S, args, 'write')
    local bs = S:dev().block_size
    local len = n * bs
    if len > MAX_XFER then error(fmt('at most %d bytes per command in the sandbox', MAX_XFER), 0) end
    local data, note = ('\0'):rep(len), ''
    if args[3] then
      local spec = assert(data_spec(line:sub(args[3].at)))
      if spec.fill then
        data = spec.fill:rep(len)
      else
        if #spec.bytes > len then
          error(fmt('%d bytes of data do not fit in %d block%s (%d bytes)', #spec.bytes, n,
            n == 1 and '' or 's', len), 0)
        end
        if #spec.bytes < len then
          note = fmt(' (%d given, padded with zeros)', #spec.bytes)
        end
        data = spec.bytes .. ('\0'):rep(len - #spec.bytes)
      end
    end
    return S:send(rw_cdb(true, lba, n), { data = data, note = note })
  end)

command('mode-sense', 'mode-sense [PAGE [SUBPAGE]]',
  'MODE SENSE(10): the current values of a mode page (0x08 caching,\n' ..
  '0x0a control, 0x01 error recovery, 0x1c exceptions; 0x3f all, the default).',
  function(S, args)
    local page = args[1] and need(number(args[1].w), 'PAGE is a number, e.g. 0x08') or 0x3F
    local sub = args[2] and need(number(args[2].w), 'SUBPAGE is a number') or 0
    if page > 0x3F or sub > 255 then error('PAGE is 0..0x3f, SUBPAGE 0..0xff', 0) end
    return S:send('\90\0' .. string.char(page) .. string.char(sub) .. '\0\0\0' .. be(4096, 2) .. '\0',
      { len = 4096 })
  end)

command('unmap', 'unmap LBA N', 'UNMAP: tell the device N blocks from LBA are no longer used.',
  function(S, args)
    local lba, n = lba_n(S, args, 'unmap')
    if n >= 2 ^ 32 then error('N is at most 0xffffffff', 0) end
    -- Parameter list (SBC-3 5.28.2): 8-byte header, one 16-byte descriptor.
    local list = be(22, 2) .. be(16, 2) .. '\0\0\0\0' .. be(lba, 8) .. be(n, 4) .. '\0\0\0\0'
    return S:send('\66' .. ('\0'):rep(6) .. be(#list, 2) .. '\0', { data = list })
  end)

command('sync', 'sync [LBA N]',
  'SYNCHRONIZE CACHE(10): make written data durable (all of it by default).',
  function(S, args)
    local lba, n = 0, 0
    if args[1] then lba, n = lba_n(S, args, 'sync') end
    return S:send('\53\0' .. be(lba, 4) .. '\0' .. be(n, 2) .. '\0')
  end)

command('request-sense', 'request-sense',
  'REQUEST SENSE: ask for pending sense data (usually NO SENSE).',
  function(S)
    return S:send('\3\0\0\0\252\0', { len = 252 })
  end)

-- How much data-in a raw CDB wants: its ALLOCATION LENGTH, or its
-- TRANSFER LENGTH in blocks for a READ.
local function raw_len(S, cdb)
  local name, fields = decode.cdb(cdb)
  for _, f in ipairs(fields) do
    if f.field == 'ALLOCATION LENGTH' and type(f.value) == 'number' then return f.value end
  end
  if name:match('^READ%(') then
    for _, f in ipairs(fields) do
      if f.field == 'TRANSFER LENGTH' and type(f.value) == 'number' then
        local n = f.value
        if n == 0 and name == 'READ(6)' then n = 256 end
        return n * S:dev().block_size
      end
    end
  end
  return 0
end

command('raw', 'raw HEX... [--in LEN | --out DATA]',
  'Send any CDB.  --in LEN: expect LEN bytes of data-in (default: the\n' ..
  'ALLOCATION LENGTH, or TRANSFER LENGTH blocks for a READ).  --out DATA:\n' ..
  'send data-out (hex, pattern:BYTE with --len N, or text:..., the rest of the line).',
  function(S, args, line)
    local hex, len, out = {}, nil, nil
    local i = 1
    while i <= #args do
      local w = args[i].w
      if w == '--in' then
        len = need(number(args[i + 1] and args[i + 1].w), '--in takes a number of bytes')
        i = i + 2
      elseif w == '--out' then
        need(args[i + 1], '--out takes data: hex, text:... or pattern:BYTE')
        out = line:sub(args[i + 1].at)
        break
      elseif w:match('^%-%-') then
        error('unknown option ' .. w .. ' (raw takes --in LEN or --out DATA)', 0)
      else
        hex[#hex + 1] = w
        i = i + 1
      end
    end
    local cdb = assert(hexdump.parse(table.concat(hex, ' ')))
    if #cdb == 0 then error('usage: raw HEX... [--in LEN | --out DATA]', 0) end
    if #cdb > 260 then error('a CDB is at most 260 bytes', 0) end
    if out and len then error('--in and --out together (bidirectional) are not supported', 0) end
    if out then
      local spec, err = data_spec(out)
      if not spec then error(err, 0) end
      if spec.fill then
        local n = raw_len(S, cdb)
        if n == 0 then n = S:dev().block_size end
        spec.bytes = spec.fill:rep(n)
      end
      return S:send(cdb, { data = spec.bytes })
    end
    len = len or raw_len(S, cdb)
    if len > MAX_XFER then error(fmt('at most %d bytes per command in the sandbox', MAX_XFER), 0) end
    return S:send(cdb, { len = len })
  end)

command('decode', 'decode [--sense] HEX...', 'Explain a CDB or sense data without sending anything.',
  function(S, args)
    local sense, hex = false, {}
    for _, a in ipairs(args) do
      if a.w == '--sense' then sense = true else hex[#hex + 1] = a.w end
    end
    local bytes = assert(hexdump.parse(table.concat(hex, ' ')))
    if #bytes == 0 then error('usage: decode [--sense] HEX...', 0) end
    S:lines(sense and show.sense_lines(bytes) or show.cdb_lines(bytes), '  ')
  end)

command('devices', 'devices', 'List the devices; * marks the one commands go to.',
  function(S)
    local rows = {}
    for i, d in ipairs(S.devices) do
      rows[#rows + 1] = { (i == S.current and '* ' or '  ') .. d.name, d.handler,
        fmt('%s, %.0f blocks of %d bytes', reply.size_text(d.size), d.size / d.block_size, d.block_size) }
    end
    S:lines(show.columns(rows), '  ')
  end)

command('use', 'use NAME', 'Send the next commands to device NAME.',
  function(S, args)
    local name = need(args[1], 'usage: use NAME').w
    for i, d in ipairs(S.devices) do
      if d.name == name then
        S.current = i
        S:print(fmt('  now using %s (%s)', name, d.handler))
        return
      end
    end
    local names = {}
    for _, d in ipairs(S.devices) do names[#names + 1] = d.name end
    error(fmt('no device %q (devices: %s)', name, table.concat(names, ', ')), 0)
  end)

command('reload', 'reload',
  'Load the handler file of this device again, keeping the device and its data\n' ..
  'in place: edit your handler, reload, retry.  A broken file is refused and the\n' ..
  'old code keeps running.',
  function(S)
    local d = S:dev()
    local ok, err = d.dev:reload()
    if not ok then error('reload failed, the old handler keeps running:\n' .. err, 0) end
    S:print(fmt('  reloaded handler %s for %s', d.handler, d.name))
  end)

command('resize', 'resize SIZE',
  'Change the capacity (e.g. 128M), as the kernel does on a reconfig.  The next\n' ..
  'command gets a UNIT ATTENTION: CAPACITY DATA HAS CHANGED.',
  function(S, args)
    local d = S:dev()
    local size = need(args[1] and config.parse_size(args[1].w), 'usage: resize SIZE (like 128M)')
    if size == 0 or size % d.block_size ~= 0 then
      error(fmt('the size must be a non-zero multiple of the block size %d', d.block_size), 0)
    end
    local rc = d.dev:resize(size)
    if rc ~= 0 then error('resize failed: ' .. tostring(rc), 0) end
    d.size = size
    S:print(fmt('  %s is now %s (%.0f blocks)', d.name, reply.size_text(size), size / d.block_size))
  end)

command('reset', 'reset',
  'A LUN RESET task management function; the next command gets a UNIT ATTENTION.',
  function(S)
    S:dev().dev:tmr(5, {})
    S:print('  LUN RESET sent')
  end)

command('set', 'set [dump N|all] [fields brief|all]',
  'dump: how many bytes of data to show (0 or all: everything).\n' ..
  'fields: brief folds CDB fields that are zero flags into one line.',
  function(S, args)
    if #args == 0 then
      S:print(fmt('  dump %s, fields %s', S.settings.dump == 0 and 'all' or S.settings.dump,
        S.settings.fields))
      return
    end
    local key, v = args[1].w, args[2] and args[2].w
    if key == 'dump' then
      S.settings.dump = need(v == 'all' and 0 or number(v), 'usage: set dump N|all')
    elseif key == 'fields' and (v == 'brief' or v == 'all') then
      S.settings.fields = v
    else
      error('usage: set dump N|all, or set fields brief|all', 0)
    end
  end)

command('echo', 'echo TEXT', 'Print TEXT (for lessons).',
  function(S, args, line)
    S:print(args[1] and line:sub(args[1].at) or '')
  end)

command('help', 'help [COMMAND]', 'List the commands, or explain one.',
  function(S, args)
    if args[1] then
      local c = commands[args[1].w]
      if not c then error('no command ' .. args[1].w, 0) end
      S:print('  ' .. c.usage)
      for l in (c.help .. '\n'):gmatch('(.-)\n') do S:print('    ' .. l) end
      return
    end
    local rows = {}
    for _, name in ipairs(order) do
      local c = commands[name]
      rows[#rows + 1] = { c.usage, c.help:match('^[^\n]*') }
    end
    rows[#rows + 1] = { 'quit', 'Leave (also ctrl-d).' }
    S:lines(show.columns(rows), '  ')
    S:print('  Numbers are decimal or 0x hex.  In scripts, "# expect: ..." lines check')
    S:print('  the command before them: see docs/sandbox.md.')
  end)

------------------------------------------------------------------------
-- Expectations: "# expect: WHAT" after a command.

local function describe_result(r)
  local s = show.status_name(r.status)
  if r.status == 0x02 then
    local summary = show.sense_summary(r.sense)
    if summary then s = s .. ' (' .. summary .. ')' end
  end
  return s
end

-- Check one expectation against the last command; returns nil or why not.
function Session:check(what)
  local r, err = self.last, self.last_error
  local kind, rest = what:match('^(%S+)%s*(.-)%s*$')
  if not kind then return 'empty expectation' end
  kind = kind:lower()
  if kind == 'error' then
    if not err then return 'expected the command to fail, but it ran' end
    if rest ~= '' and not err:find(rest, 1, true) then
      return fmt('expected an error containing %q, got: %s', rest, err)
    end
    self.pending_error = nil
    return nil
  end
  if err then return 'the command failed: ' .. err end
  if kind == 'output' then
    local text = rest:match('^contains%s+(.*)$')
    if not text then return 'use: output contains TEXT' end
    if not self.last_output:find(text, 1, true) then
      return fmt('output does not contain %q', text)
    end
    return nil
  end
  if not r then return 'no command ran before this expectation' end
  if kind == 'status' then
    local want = rest:upper()
    local code = number(rest)
    if (code and r.status ~= code) or (not code and show.status_name(r.status) ~= want) then
      return fmt('expected status %s, got %s', rest, describe_result(r))
    end
  elseif kind == 'sense' then
    local summary, s = show.sense_summary(r.sense)
    if rest:lower() == 'none' then
      if r.status == 0x02 then return 'expected no sense, got ' .. tostring(summary) end
      return nil
    end
    if r.status ~= 0x02 or not s then
      return fmt('expected sense %s, got status %s', rest, describe_result(r))
    end
    -- "ILLEGAL REQUEST", or "ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE"
    local key, asc = rest:match('^(.-)%s*/%s*(.+)$')
    key = (key or rest):upper()
    if s.key_name ~= key or (asc and s.asc_text ~= asc:upper()) then
      return fmt('expected sense %s, got %s', rest, summary)
    end
  elseif kind == 'asc' then
    local a, q = rest:match('^(%S+)%s*(%S*)$')
    a, q = number(a), q ~= '' and number(q) or nil
    if not a then return 'use: asc 0x21 [0x00]' end
    if r.status ~= 0x02 or r.asc ~= a or (q and r.ascq ~= q) then
      return fmt('expected asc %s, got %s', rest, describe_result(r))
    end
  elseif kind == 'len' then
    local n = number(rest)
    if not n then return 'use: len N' end
    if #(r.data or '') ~= n then return fmt('expected %d bytes of data-in, got %d', n, #(r.data or '')) end
  elseif kind == 'residual' then
    local n = number(rest)
    if not n then return 'use: residual N' end
    if r.residual ~= n then return fmt('expected residual %d, got %d', n, r.residual) end
  elseif kind == 'data' then
    local data = r.data or ''
    local how, arg = rest:match('^(%S+)%s*(.*)$')
    if how == 'zero' then
      if data:find('[^%z]') then return 'expected only zero bytes in the data' end
      return nil
    end
    local off = 0
    if how == 'at' then
      local o, spec = arg:match('^(%S+)%s+(.*)$')
      off = number(o)
      if not off then return 'use: data at OFFSET DATA' end
      arg = spec
    elseif how ~= 'contains' and how ~= 'starts' then
      return 'use: data contains DATA, data starts DATA, data at OFFSET DATA, data zero'
    end
    local spec, e = data_spec(arg or '')
    if not spec or spec.fill then return e or 'pattern: cannot be searched for; use hex or text:' end
    if how == 'contains' then
      if not data:find(spec.bytes, 1, true) then return fmt('the data does not contain %q', spec.bytes) end
    elseif data:sub(off + 1, off + #spec.bytes) ~= spec.bytes then
      return fmt('expected %s at offset %d, found %s', hexdump.spaced(spec.bytes), off,
        hexdump.spaced(data:sub(off + 1, off + #spec.bytes)))
    end
  else
    return fmt('unknown expectation %q (status, sense, asc, len, residual, data, output, error)', kind)
  end
  return nil
end

------------------------------------------------------------------------
-- Running lines.

function Session:prompt()
  return (self:dev() and self:dev().name or 'sandbox') .. '> '
end

-- One input line.  Returns false to stop (quit), or nil, failure message
-- when a script must stop.
function Session:line(text, where)
  local expect = text:match('^%s*#%s*expect:%s*(.-)%s*$')
  if expect then
    if self.script then self:print(text) end
    local why = self:check(expect)
    self.expectations = self.expectations + 1
    if why then return nil, fmt('%s: %s', where, why) end
    return true
  end
  if text:match('^%s*#') or not text:find('%S') then
    if self.script then self:print(text) end
    return true
  end
  -- A failed command must be expected by the lines right after it.
  if self.pending_error then
    local e = self.pending_error
    self.pending_error = nil
    return nil, e
  end
  if self.script then self:print(self:prompt() .. text) end
  local ws = words(text)
  local name = table.remove(ws, 1).w
  if name == 'quit' or name == 'exit' or name == 'q' then return false end
  local c = commands[name]
  self.captured = {}
  self.last, self.last_error = nil, nil
  if not c then
    self.last_error = fmt('unknown command %q (try help)', name)
  else
    self.commands_run = self.commands_run + 1
    local ok, r = pcall(c.run, self, ws, text)
    if ok then
      self.last = type(r) == 'table' and r or nil
    else
      self.last_error = tostring(r)
    end
  end
  if self.last_error then
    local first = true
    for l in (self.last_error .. '\n'):gmatch('(.-)\n') do
      self:print((first and '  error: ' or '    ') .. l)
      first = false
    end
    if self.script then
      self.pending_error = fmt('%s: command failed: %s', where, self.last_error)
    end
  end
  self.last_output = table.concat(self.captured, '\n')
  return true
end

function Session:finish()
  if self.pending_error then return nil, self.pending_error end
  return true
end

------------------------------------------------------------------------
-- Setting up: arguments, devices.

local function parse_args(argv)
  local o = { handler_dirs = {}, options = {}, dump = 256 }
  local i = 1
  local function value(name)
    i = i + 1
    if argv[i] == nil then error(name .. ' needs a value', 0) end
    return argv[i]
  end
  local pos = {}
  while i <= #argv do
    local a = argv[i]
    if a == '-h' or a == '--help' then
      o.help = true
    elseif a == '--script' then
      o.script = value(a)
    elseif a == '--handler-dir' then
      o.handler_dirs[#o.handler_dirs + 1] = value(a)
    elseif a == '--block-size' then
      o.block_size = number(value(a))
      if not o.block_size then error('--block-size takes a number', 0) end
    elseif a == '--option' then
      local k, v = value(a):match('^([%w_]+)=(.*)$')
      if not k then error('--option takes KEY=VALUE', 0) end
      o.options[k] = v == 'true' or (v ~= 'false' and (tonumber(v) or v))
      if v == 'false' then o.options[k] = false end
    elseif a == '--dump' then
      o.dump = number(value(a))
      if not o.dump then error('--dump takes a number', 0) end
    elseif a == '--no-history' then
      o.no_history = true
    elseif a:match('^%-%-?%a') then
      error('unknown option ' .. a, 0)
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  o.target, o.size = pos[1], pos[2]
  if #pos > 2 then error('too many arguments: ' .. table.concat(pos, ' ', 3), 0) end
  return o
end

local function file_exists(path)
  local f = io.open(path, 'r')
  if f then f:close() end
  return f ~= nil
end

local function dirname(path)
  return path:match('^(.*)/[^/]*$') or '.'
end

-- The device list from the arguments: a YAML file or one handler.
local function device_specs(o)
  local t = o.target
  if t:match('%.ya?ml$') or (file_exists(t) and not t:match('%.lua$')) then
    if o.size then error('a size goes with a handler name, not with a config file', 0) end
    local cfg, err = config.load(t)
    if not cfg then error(err, 0) end
    if #cfg.devices == 0 then error(t .. ': no devices configured', 0) end
    for _, d in ipairs(cfg.devices) do d.where = fmt('%s:%d', t, d.line) end
    return cfg.devices, cfg.handler_dirs
  end
  local dirs, handler = {}, t
  if t:match('%.lua$') then
    if not file_exists(t) then error('no such handler file: ' .. t, 0) end
    dirs[1] = dirname(t)
    handler = t:match('([^/]+)%.lua$')
  end
  local size = DEFAULT_SIZE
  if o.size then
    size = config.parse_size(o.size)
    if not size or size == 0 then error(fmt('%q is not a size (like 64M)', o.size), 0) end
  end
  local bs = o.block_size or 512
  if size % bs ~= 0 then error(fmt('the size must be a multiple of the block size %d', bs), 0) end
  return { { name = handler .. '0', handler = handler, size = size, block_size = bs,
    options = o.options, where = 'command line' } }, dirs
end

local function open_devices(o, specs, cfg_dirs)
  local dirs = {}
  for _, d in ipairs(o.handler_dirs) do dirs[#dirs + 1] = d end
  for _, d in ipairs(cfg_dirs) do dirs[#dirs + 1] = d end
  for d in (TL_HANDLER_DIRS or ''):gmatch('[^;]+') do dirs[#dirs + 1] = d end
  local devices = {}
  for _, s in ipairs(specs) do
    local options = s.options or {}
    -- The simulator has no read-only switch; the SCSI library's read_only
    -- device option has the same effect (DATA PROTECT on writes, WP bit).
    if s.read_only and options.read_only == nil then options.read_only = true end
    local dev, err = T.device {
      name = s.name, handler = s.handler, size = s.size, block_size = s.block_size,
      config = options, handler_dirs = table.concat(dirs, ';'),
      write_cache = s.write_cache, max_xfer_blocks = s.hw_max_sectors,
    }
    if not dev then
      for _, d in ipairs(devices) do d.dev:close() end
      return nil, fmt('%s: device %s (handler %s): %s', s.where, s.name, s.handler, err)
    end
    devices[#devices + 1] = { name = s.name, handler = s.handler, size = s.size,
      block_size = s.block_size, dev = dev }
  end
  return devices
end

-- "# sandbox: ram 16M" in the first lines of a lesson says what to run it on.
local function script_header(text)
  local n = 0
  for line in text:gmatch('[^\n]*') do
    n = n + 1
    if n > 20 then break end
    local args = line:match('^#%s*sandbox:%s*(.-)%s*$')
    if args then
      local t = {}
      for w in args:gmatch('%S+') do t[#t + 1] = w end
      return t
    end
  end
end

local function history_file(o)
  if o.no_history then return nil end
  local home = os.getenv('HOME')
  return home and home ~= '' and (home .. '/.tcmu-lua_history') or nil
end

local function complete(word)
  local t = { 'quit' }
  for _, name in ipairs(order) do t[#t + 1] = name end
  return t
end

function M.run(argv)
  local ok, o = pcall(parse_args, argv)
  if not ok then
    io.stderr:write('tcmu-lua sandbox: ', o, '\n\n', M.USAGE)
    return 2
  end
  if o.help then io.stdout:write(M.USAGE); return 0 end

  -- The commands: a script file, a pipe, or a person.
  local script_text, script_name
  if o.script then
    script_name = o.script
    local f, err
    if o.script == '-' then
      f, script_name = io.stdin, '<stdin>'
    else
      f, err = io.open(o.script, 'r')
    end
    if not f then io.stderr:write('tcmu-lua sandbox: ', err, '\n'); return 2 end
    script_text = f:read('*a')
    if f ~= io.stdin then f:close() end
    if not o.target then
      local header = script_header(script_text)
      if not header then
        io.stderr:write(fmt('tcmu-lua sandbox: %s has no "# sandbox: ARGS" line; give a config or handler\n',
          o.script))
        return 2
      end
      local hok, h = pcall(parse_args, header)
      if not hok or not h.target then
        io.stderr:write(fmt('tcmu-lua sandbox: %s: bad "# sandbox:" line: %s\n', o.script, tostring(h)))
        return 2
      end
      -- Paths in the header are relative to the lesson.
      if (h.target:match('%.ya?ml$') or h.target:match('%.lua$')) and not h.target:match('^/') then
        h.target = dirname(o.script) .. '/' .. h.target
      end
      o.target, o.size = h.target, h.size
      for k, v in pairs(h.options) do o.options[k] = v end
      o.block_size = o.block_size or h.block_size
      for _, d in ipairs(h.handler_dirs) do
        o.handler_dirs[#o.handler_dirs + 1] = d:match('^/') and d or (dirname(o.script) .. '/' .. d)
      end
    end
  end
  if not o.target then
    io.stderr:write('tcmu-lua sandbox: give a config file or a handler name\n\n', M.USAGE)
    return 2
  end

  local sok, specs, cfg_dirs = pcall(device_specs, o)
  if not sok then
    io.stderr:write('tcmu-lua sandbox: ', specs, '\n')
    return 1
  end
  local devices, err = open_devices(o, specs, cfg_dirs)
  if not devices then
    io.stderr:write('tcmu-lua sandbox: ', err, '\n')
    return 1
  end

  local S = setmetatable({
    devices = devices, current = 1, settings = { dump = o.dump, fields = 'brief' },
    captured = {}, last_output = '', expectations = 0, commands_run = 0,
    script = script_text ~= nil,
  }, Session)

  local reader
  if script_text then
    local lines = {}
    for l in (script_text:gsub('\n$', '') .. '\n'):gmatch('(.-)\n') do lines[#lines + 1] = l end
    local i = 0
    reader = { read = function() i = i + 1; return lines[i], fmt('%s:%d', script_name, i) end,
      close = function() end }
  else
    local le = lineedit.new { history_file = history_file(o), complete = complete }
    if not le.interactive then
      S.script, script_name = true, '<stdin>'
      local n = 0
      reader = { read = function() n = n + 1; return io.read('*l'), fmt('<stdin>:%d', n) end,
        close = function() end }
    else
      reader = { read = function() return le:read(S:prompt()), nil end, close = le.close }
      local names = {}
      for _, d in ipairs(devices) do names[#names + 1] = fmt('%s (%s, %s)', d.name, d.handler,
        reply.size_text(d.size)) end
      io.stdout:write('tcmu-lua sandbox: ', table.concat(names, ', '),
        ' on the simulated kernel.\nType help for the commands, quit or ctrl-d to leave.\n')
    end
  end

  local status = 0
  while true do
    local line, where = reader:read()
    if not line then break end
    local go, why = S:line(line, where or 'line')
    io.stdout:flush()
    if go == false then break end
    if go == nil then
      if S.script then
        S:print('FAILED ' .. why)
        io.stderr:write('tcmu-lua sandbox: FAILED ', why, '\n')
        status = 1
        break
      end
      S:print('  ' .. why)
    end
  end
  if status == 0 and S.script then
    local good, why = S:finish()
    if not good then
      S:print('FAILED ' .. why)
      io.stderr:write('tcmu-lua sandbox: FAILED ', why, '\n')
      status = 1
    elseif S.expectations > 0 then
      S:print(fmt('ok: %d commands, %d expectations met', S.commands_run, S.expectations))
    end
  end
  reader.close()
  for _, d in ipairs(devices) do d.dev:close() end
  io.stdout:flush()
  return status
end

function M.main(...)
  return M.run({ ... })
end

return M
