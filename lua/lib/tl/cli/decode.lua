-- tcmu-lua decode: explain a CDB or sense data given as hex.
--
--   tcmu-lua decode 28 00 00 00 10 00 00 00 08 00
--   tcmu-lua decode --sense 70 00 05 00 00 00 00 0a 00 00 00 00 24 00 00 00 00 00
--   echo 2a00000000200000080 | tcmu-lua decode      (one CDB per line)
local hexdump = require 'tl.cli.hexdump'
local show = require 'tl.cli.show'

local M = {}

M.USAGE = [[
usage: tcmu-lua decode [--sense] HEX...
       tcmu-lua decode [--sense] < FILE      (one CDB or sense per line)

Explains a SCSI CDB field by field, or with --sense, sense data: the
sense key, the additional sense code, the information and field pointer.
Hex may have spaces or not and 0x prefixes: "28 00 00", "280000",
"0x28 0x00 0x00" are the same bytes.
]]

local function explain(bytes, sense, out)
  if #bytes == 0 then return false, 'nothing to decode' end
  local lines, ok
  if sense then
    lines, ok = show.sense_lines(bytes)
  else
    lines, ok = show.cdb_lines(bytes), true
  end
  for _, l in ipairs(lines) do out(l .. '\n') end
  if not ok then return false end
  return true
end

-- args: the command-line words after "decode"; returns the exit status.
-- io is a table with out/err writers and read_stdin, for the specs.
function M.run(args, io_)
  local out, err = io_.out, io_.err
  local sense, words = false, {}
  for _, a in ipairs(args) do
    if a == '--sense' or a == '-s' then
      sense = true
    elseif a == '--cdb' then
      sense = false
    elseif a == '-h' or a == '--help' then
      out(M.USAGE)
      return 0
    elseif a:match('^%-%-') then
      err(('tcmu-lua decode: unknown option %s\n%s'):format(a, M.USAGE))
      return 2
    else
      words[#words + 1] = a
    end
  end

  local inputs = {}
  if #words > 0 then
    inputs[1] = { text = table.concat(words, ' '), where = 'arguments' }
  else
    local n = 0
    for line in io_.read_stdin() do
      n = n + 1
      local text = line:gsub('#.*', '')
      if text:find('%S') then
        inputs[#inputs + 1] = { text = text, where = 'stdin line ' .. n }
      end
    end
  end
  if #inputs == 0 then
    err('tcmu-lua decode: nothing to decode (give hex bytes as arguments or on stdin)\n')
    return 1
  end

  local status = 0
  for i, input in ipairs(inputs) do
    local bytes, why = hexdump.parse(input.text)
    if not bytes then
      err(('tcmu-lua decode: %s: %s\n'):format(input.where, why))
      return 1
    end
    if i > 1 then out('\n') end
    local ok, e = explain(bytes, sense, out)
    if not ok then
      if e then err(('tcmu-lua decode: %s: %s\n'):format(input.where, e)) end
      status = 1
    end
  end
  return status
end

function M.main(...)
  local rc = M.run({ ... }, {
    out = function(s) io.stdout:write(s) end,
    err = function(s) io.stderr:write(s) end,
    read_stdin = function() return io.stdin:lines() end,
  })
  io.stdout:flush()
  return rc
end

return M
